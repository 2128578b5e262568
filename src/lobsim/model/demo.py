"""The bundled demo area universe, generated once from a fixed seed.

The demo universe is a synthetic world of 200 areas in 10 English and Welsh
regions with two outcomes, a JSA-style claimant count (``claimants``, a count)
and an average referral waiting time in days (``referral_days``, a percent
outcome). Its history is simulated once, month by month, by the outcome
process of docs/model.md section 3, and then stored in ``lobsim/data/demo/`` and
treated as observed data::

    x[a,t] = alpha[a] + mu[a] t + beta F[t] + gamma G[r(a),t] + U[a,t]
    y_obs  = exp(x) exp(sigma_e e - sigma_e^2 / 2)

with F, G and U AR(1) processes whose per-year parameters are converted
exactly to the month (:func:`lobsim.model.process.ar1_period_parameters`).
The state at the base month (trend, true log level, U, G, F) is stored next
to the history: it is what the engine simulates the future from.

Regenerate the stored files with ``python -m lobsim.model.demo``; a test checks that
the generator reproduces them byte for byte. Transcendental functions are
evaluated with the :mod:`math` module (the platform's C library) rather than
numpy's SIMD kernels, and outputs are written with fixed formats, so that the
files do not depend on the CPU's vector extensions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lobsim.arraytypes import Float64Array
from lobsim.model.config import OutcomeProcess
from lobsim.model.process import ar1_period_parameters, simulate_ar1, stationary_sd

#: Seed of the stored demo universe (15 November 2010: the report's month).
SEED = 20101115
#: Months per year: the demo history is monthly.
PERIODS_PER_YEAR = 12
#: Length of the pre-period, in months, ending at the base month.
HISTORY_MONTHS = 60
#: Months simulated (from the stationary distribution) before the pre-period.
BURN_IN_MONTHS = 120
#: The base month (year, month): the last row of every history, t = 0.
BASE_PERIOD = (2010, 10)
#: Areas per region.
AREAS_PER_REGION = 20
#: Share of the population aged 16 to 64 (the claimant-rate denominator).
WORKING_AGE_SHARE = 0.63

# Region-level covariate means (illustrative, loosely after 2009-10 figures):
# mean IMD-like deprivation score, claimant-rate multiplier, urban share,
# median population, mean share of residents aged 16 to 24.
_REGIONS: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("north_east", 29.0, 1.15, 0.70, 140_000.0, 0.125),
    ("north_west", 27.0, 1.05, 0.72, 150_000.0, 0.124),
    ("yorkshire_humber", 25.0, 1.05, 0.68, 160_000.0, 0.126),
    ("east_midlands", 20.0, 0.95, 0.58, 110_000.0, 0.121),
    ("west_midlands", 25.0, 1.10, 0.68, 130_000.0, 0.122),
    ("east_of_england", 15.0, 0.85, 0.55, 110_000.0, 0.110),
    ("london", 27.0, 1.00, 0.97, 230_000.0, 0.130),
    ("south_east", 13.0, 0.80, 0.60, 120_000.0, 0.112),
    ("south_west", 16.0, 0.80, 0.50, 100_000.0, 0.113),
    ("wales", 22.0, 1.00, 0.50, 90_000.0, 0.118),
)
#: Region ids, in file order.
REGIONS: tuple[str, ...] = tuple(r[0] for r in _REGIONS)

# Birmingham (the report's Appendix): about 50,000 JSA claimants in a city of
# about a million people. Its claimant level is fixed at the base month.
BIRMINGHAM = "Birmingham"
_BIRMINGHAM_REGION = "west_midlands"
_BIRMINGHAM_POPULATION = 1_028_700
_BIRMINGHAM_DEPRIVATION = 38.1
_BIRMINGHAM_CLAIMANTS = 50_000.0
_BIRMINGHAM_YOUTH_SHARE = 0.145
_BIRMINGHAM_URBAN = 1.0


#: The demo outcomes: id -> (kind, process).
OUTCOMES: dict[str, tuple[str, OutcomeProcess]] = {
    "claimants": (
        "count",
        OutcomeProcess(
            national_phi=0.85, national_sigma=0.05,
            regional_phi=0.7, regional_sigma=0.03,
            area_phi=0.6, area_sigma=0.03,
            measurement_sigma=0.01, national_loading=1.0, regional_loading=1.0,
        ),
    ),
    "referral_days": (
        "percent",
        OutcomeProcess(
            national_phi=0.7, national_sigma=0.03,
            regional_phi=0.6, regional_sigma=0.03,
            area_phi=0.5, area_sigma=0.05,
            measurement_sigma=0.02, national_loading=1.0, regional_loading=1.0,
        ),
    ),
}

# Trends mu[a] (log change per year): mean and sd per outcome.
_TRENDS = {"claimants": (-0.01, 0.015), "referral_days": (0.01, 0.02)}


def _elementwise(fn: Callable[[float], float], values: Float64Array) -> Float64Array:
    """Apply a :mod:`math` function elementwise (portable, unlike SIMD kernels)."""
    flat = [fn(float(v)) for v in np.ravel(values)]
    return np.array(flat, dtype=np.float64).reshape(np.shape(values))


def _period_labels() -> list[str]:
    year, month = BASE_PERIOD
    index = year * 12 + (month - 1) - (HISTORY_MONTHS - 1)
    labels = []
    for _ in range(HISTORY_MONTHS):
        labels.append(f"{index // 12:04d}-{index % 12 + 1:02d}")
        index += 1
    return labels


@dataclass(frozen=True)
class _Universe:
    areas: list[str]
    region_index: np.ndarray
    population: np.ndarray
    deprivation: np.ndarray
    youth_share: np.ndarray
    urban: np.ndarray
    claimant_rate: np.ndarray  # percent; the intended long-run rate (alpha)
    referral_log_level: np.ndarray  # alpha of referral_days
    birmingham: int


def _draw_universe(rng: np.random.Generator) -> _Universe:
    n_regions = len(_REGIONS)
    n = n_regions * AREAS_PER_REGION
    region_effect = 0.12 * rng.standard_normal(n_regions)
    z = rng.standard_normal((n, 6))
    areas: list[str] = []
    region_index = np.repeat(np.arange(n_regions), AREAS_PER_REGION)
    population = np.empty(n)
    deprivation = np.empty(n)
    rate = np.empty(n)
    urban = np.empty(n)
    youth = np.empty(n)
    referral = np.empty(n)
    birmingham = -1
    for a in range(n):
        r = int(region_index[a])
        name, dep_mean, rate_mult, urban_mean, pop_median, youth_mean = _REGIONS[r]
        within = a % AREAS_PER_REGION
        if name == _BIRMINGHAM_REGION and within == 0:
            birmingham = a
            areas.append(BIRMINGHAM)
        else:
            number = within if name == _BIRMINGHAM_REGION else within + 1
            areas.append(f"{name}_{number:02d}")
        log_size = 0.6 * z[a, 0]  # log(population / regional median)
        pop = round(pop_median * math.exp(log_size))
        population[a] = min(max(pop, 20_000), 1_100_000)
        deprivation[a] = min(max(dep_mean + 6.0 * z[a, 1] + 2.5 * log_size, 5.0), 50.0)
        rate[a] = (0.4 + 0.15 * deprivation[a]) * rate_mult * math.exp(0.12 * z[a, 2])
        urban[a] = min(max(urban_mean + 0.15 * log_size + 0.12 * z[a, 3], 0.05), 1.0)
        youth[a] = min(max(youth_mean + 0.012 * (urban[a] - 0.6) + 0.008 * z[a, 4], 0.08), 0.18)
        log_days = (math.log(48.0) + 0.015 * (deprivation[a] - 22.0)
                    + 0.10 * (urban[a] - 0.6) + region_effect[r] + 0.15 * z[a, 5])
        referral[a] = min(max(log_days, math.log(25.0)), math.log(100.0))
    b = birmingham
    population[b] = _BIRMINGHAM_POPULATION
    deprivation[b] = _BIRMINGHAM_DEPRIVATION
    urban[b] = _BIRMINGHAM_URBAN
    youth[b] = _BIRMINGHAM_YOUTH_SHARE
    rate[b] = 100.0 * _BIRMINGHAM_CLAIMANTS / (WORKING_AGE_SHARE * _BIRMINGHAM_POPULATION)
    return _Universe(areas=areas, region_index=region_index, population=population,
                     deprivation=deprivation, youth_share=youth, urban=urban,
                     claimant_rate=rate, referral_log_level=referral, birmingham=b)


@dataclass(frozen=True)
class _OutcomePaths:
    trend: np.ndarray  # (A,)
    x: np.ndarray  # (A, M) true log levels
    y: np.ndarray  # (A, M) observed values as written
    area_state: np.ndarray  # (A,) U at the base month
    regional_state: np.ndarray  # (R,) G at the base month
    national_state: float  # F at the base month


def _simulate_outcome(rng: np.random.Generator, outcome: str, process: OutcomeProcess,
                      kind: str, alpha: np.ndarray, region_index: np.ndarray,
                      birmingham: int) -> _OutcomePaths:
    n_areas = alpha.shape[0]
    n_regions = len(_REGIONS)
    mean, sd = _TRENDS[outcome]
    trend = mean + sd * rng.standard_normal((n_areas,))
    components = (
        (process.national_phi, process.national_sigma, slice(0, 1)),
        (process.regional_phi, process.regional_sigma, slice(1, 1 + n_regions)),
        (process.area_phi, process.area_sigma, slice(1 + n_regions, 1 + n_regions + n_areas)),
    )
    width = 1 + n_regions + n_areas
    start = rng.standard_normal(width)
    shocks = rng.standard_normal((BURN_IN_MONTHS + HISTORY_MONTHS, width))
    paths = []
    for phi, sigma, cols in components:
        phi_m, sigma_m = ar1_period_parameters(phi, sigma, PERIODS_PER_YEAR)
        s0 = stationary_sd(phi, sigma) * start[cols]
        paths.append(simulate_ar1(phi_m, sigma_m, s0, shocks[:, cols])[BURN_IN_MONTHS:])
    national, regional, area = paths  # (M, 1), (M, R), (M, A)
    noise = rng.standard_normal((HISTORY_MONTHS, n_areas))
    sigma_e = process.measurement_sigma
    log_noise = sigma_e * noise - 0.5 * sigma_e * sigma_e  # (M, A)

    t = (np.arange(HISTORY_MONTHS, dtype=np.float64) - (HISTORY_MONTHS - 1)) / PERIODS_PER_YEAR
    deviation = (process.national_loading * national
                 + process.regional_loading * regional[:, region_index] + area)  # (M, A)
    alpha = np.array(alpha, dtype=np.float64)
    if kind == "count":
        # Birmingham's level is set so that its observed base month is the
        # Appendix's 50,000 claimants (t = 0, so the trend plays no part).
        alpha[birmingham] = (math.log(_BIRMINGHAM_CLAIMANTS) - deviation[-1, birmingham]
                             - log_noise[-1, birmingham])
    x = (alpha[None, :] + trend[None, :] * t[:, None]) + deviation  # (M, A)
    raw = _elementwise(math.exp, x + log_noise)
    y = np.rint(raw) if kind == "count" else np.round(raw, 2)
    return _OutcomePaths(trend=trend, x=x.T.copy(), y=y.T.copy(), area_state=area[-1].copy(),
                         regional_state=regional[-1].copy(), national_state=float(national[-1, 0]))


def _write(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def _process_toml(seed: int) -> list[str]:
    lines = [
        "# Process parameters of the bundled demo universe (docs/model.md section 3),",
        "# per year, exactly as they appear in a config's [outcomes.process] table.",
        "# Written by `python -m lobsim.model.demo`; the history is monthly, and the",
        "# per-year AR(1) parameters were converted exactly to the month:",
        "#   phi_m = phi^(1/12), sigma_m^2 = sigma^2 (1 - phi^(2/12)) / (1 - phi^2).",
        f"seed = {seed}",
        'period = "month"',
        f'base_period = "{BASE_PERIOD[0]:04d}-{BASE_PERIOD[1]:02d}"',
        f"history_months = {HISTORY_MONTHS}",
        f"burn_in_months = {BURN_IN_MONTHS}",
    ]
    for outcome, (kind, process) in OUTCOMES.items():
        mean, sd = _TRENDS[outcome]
        lines += [
            "",
            f"[{outcome}]",
            f'kind = "{kind}"',
            f"# trend mu[a] ~ N({mean!r}, {sd!r}^2), log change per year",
            f"trend_mean = {mean!r}",
            f"trend_sd = {sd!r}",
            "",
            f"[{outcome}.process]",
        ]
        lines += [f"{key} = {value!r}" for key, value in asdict(process).items()]
    return lines


def _readme(seed: int) -> list[str]:
    base = f"{BASE_PERIOD[0]:04d}-{BASE_PERIOD[1]:02d}"
    n_areas = len(_REGIONS) * AREAS_PER_REGION
    return [
        "# The lobsim demo area universe",
        "",
        "Synthetic data, not official statistics. Generated once by",
        f"`python -m lobsim.model.demo` (`lobsim.model.demo.generate_demo_universe`) with seed {seed};",
        "`tests/test_demo_universe.py` checks that the generator reproduces these",
        "files byte for byte. Do not edit them by hand: change the generator and",
        "regenerate.",
        "",
        f"- {n_areas} areas in {len(_REGIONS)} regions ({', '.join(REGIONS)}),",
        f"  {AREAS_PER_REGION} per region. One West Midlands area is `Birmingham`, with",
        f"  {_BIRMINGHAM_CLAIMANTS:,.0f} claimants at the base month (the report's Appendix).",
        "- `areas.csv`: `area,region,population,deprivation,claimant_rate,youth_share,urban`.",
        "  deprivation is an IMD-like score (5 to 50); claimant_rate is the base-month",
        f"  claimant count as a percentage of 16-64 residents ({WORKING_AGE_SHARE} x population);",
        "  youth_share is the share of residents aged 16 to 24; urban is an urban share (0 to 1).",
        "- `claimants_history.csv` (count, whole claimants) and `referral_days_history.csv`",
        "  (average referral waiting time in days, a percent outcome): `area,region,period,value`,",
        f"  monthly, {HISTORY_MONTHS} months ending at the base month {base} (t = 0).",
        "  The last period is the observed base value.",
        "- `claimants_state.csv`, `referral_days_state.csv`:",
        "  `area,trend,log_level,area_state,regional_state,national_state`: the trend mu",
        "  (log change per year), the true log level x[a,0] (without measurement noise),",
        "  U[a,0], G[r(a),0] and F[0] at the base month. The engine simulates the future",
        "  from this state.",
        "- `process.toml`: the per-year process parameters of each outcome, as written in",
        "  a config's `[outcomes.process]` table, and the seed.",
        "",
        "Model (docs/model.md section 3), simulated month by month:",
        "",
        "    x[a,t] = alpha[a] + mu[a] t + beta F[t] + gamma G[r(a),t] + U[a,t]",
        "    y_obs  = exp(x) exp(sigma_e e - sigma_e^2 / 2)",
        "",
        "F, G and U are AR(1) processes with per-year phi and sigma converted exactly",
        "to the month (phi_m = phi^(1/12), sigma_m^2 = sigma^2 (1 - phi^(2/12)) / (1 - phi^2)),",
        f"started from their stationary distributions and burnt in for {BURN_IN_MONTHS} months.",
    ]


def generate_demo_universe(out_dir: str | Path, seed: int = SEED) -> dict[str, Path]:
    """Simulate the demo area universe and write it as CSV files.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing). The bundled copy lives in
        ``lobsim/data/demo`` and is written by ``python -m lobsim.model.demo``.
    seed : int
        Seed of the random streams (``numpy.random.SeedSequence``, PCG64): one
        stream for the covariates and one per outcome. The same seed gives the
        same files byte for byte.

    Returns
    -------
    dict of str to Path
        The files written, by file name: ``areas.csv``, ``<outcome>_history.csv``
        and ``<outcome>_state.csv`` for each outcome, ``process.toml`` and
        ``README.md``.

    Notes
    -----
    Each outcome follows docs/model.md section 3, stepped month by month: the
    national, regional and area AR(1) components start from their stationary
    distributions, run a burn-in of ``BURN_IN_MONTHS`` months, then the
    ``HISTORY_MONTHS``-month pre-period ending at the base month ``t = 0``.
    Observed values carry log-normal measurement noise with mean one;
    counts are rounded to whole numbers and waiting times to 0.01 days, and
    the rounded last value is the observed base value. Birmingham's level is
    set so that its observed base-month claimant count is 50,000; the
    ``claimant_rate`` covariate is the observed base-month count over
    ``0.63 x population``, in percent.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    universe_seq, *outcome_seqs = np.random.SeedSequence(seed).spawn(1 + len(OUTCOMES))
    universe = _draw_universe(np.random.Generator(np.random.PCG64(universe_seq)))
    regions = [REGIONS[r] for r in universe.region_index]
    labels = _period_labels()
    alphas = {
        "claimants": _elementwise(
            math.log, WORKING_AGE_SHARE * universe.population * universe.claimant_rate / 100.0),
        "referral_days": universe.referral_log_level,
    }
    written: dict[str, Path] = {}
    simulated: dict[str, _OutcomePaths] = {}
    for (outcome, (kind, process)), seq in zip(OUTCOMES.items(), outcome_seqs, strict=True):
        rng = np.random.Generator(np.random.PCG64(seq))
        paths = _simulate_outcome(rng, outcome, process, kind, alphas[outcome],
                                  universe.region_index, universe.birmingham)
        simulated[outcome] = paths
        value = (lambda v: f"{v:.0f}") if kind == "count" else (lambda v: f"{v:.2f}")
        history = ["area,region,period,value"]
        for a, area in enumerate(universe.areas):
            history += [f"{area},{regions[a]},{label},{value(paths.y[a, m])}"
                        for m, label in enumerate(labels)]
        state = ["area,trend,log_level,area_state,regional_state,national_state"]
        for a, area in enumerate(universe.areas):
            r = int(universe.region_index[a])
            fields = (paths.trend[a], paths.x[a, -1], paths.area_state[a],
                      paths.regional_state[r], paths.national_state)
            state.append(",".join([area, *(repr(float(v)) for v in fields)]))
        for suffix, lines in (("history", history), ("state", state)):
            path = out / f"{outcome}_{suffix}.csv"
            _write(path, lines)
            written[path.name] = path

    base_claimants = simulated["claimants"].y[:, -1]
    claimant_rate = 100.0 * base_claimants / (WORKING_AGE_SHARE * universe.population)
    areas = ["area,region,population,deprivation,claimant_rate,youth_share,urban"]
    for a, area in enumerate(universe.areas):
        areas.append(
            f"{area},{regions[a]},{universe.population[a]:.0f},{universe.deprivation[a]:.2f},"
            f"{claimant_rate[a]:.4f},{universe.youth_share[a]:.4f},{universe.urban[a]:.3f}"
        )
    for name, lines in (("areas.csv", areas), ("process.toml", _process_toml(seed)),
                        ("README.md", _readme(seed))):
        _write(out / name, lines)
        written[name] = out / name
    return dict(sorted(written.items()))


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / "data" / "demo"
    for path in generate_demo_universe(target).values():
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
