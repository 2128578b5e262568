"""Placebo backtest of the control-group measurement, and its model check.

A *placebo bond* is a bond on an area where nothing was done. Its control
group is fitted on the pre-period exactly as a contract would fit it
(:func:`lobsim.model.control.nearest_donors` and :func:`lobsim.model.control.fit_control`:
the k nearest areas on standardised covariates, equal or synthetic-control
weights on the indexed log path), and the measurement of docs/model.md section 4 is
taken at the horizon:

    yhat = y_obs[a,s] exp(sum_j w_j (log y_obs[j,s+h] - log y_obs[j,s]))
    units M = yhat - y_obs[a,s+h],   change = 100 M / yhat (percent)

Every area in turn is the placebo, at several start dates ``s`` (in-time
placebos). With no true effect, M is pure measurement error: its
distribution is what investors are paid on when a programme does nothing.
The target is sized like the report's Appendix, 10% of the area's base
count (5,000 of Birmingham's 50,000), and the false-positive rates are the
shares of placebos measuring at least 10%, 50% and 100% of that target.

:func:`simulate_placebos` runs the same experiment on panels simulated from
a calibrated process (:mod:`lobsim.validation.calibrate`);
:func:`lobsim.validation.placebo_stats.compare` sets the two distributions side
by side (quantiles, two-sample Kolmogorov-Smirnov test; the QQ plot is
:func:`lobsim.report.studies.placebo_qq`), and :mod:`lobsim.validation.sensitivity`
asks the engine the same question of one bond.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from lobsim.errors import ConfigError
from lobsim.kernels.synth import simplex_weights_batch
from lobsim.model.areas import AreaTable, read_areas, read_outcome
from lobsim.model.config import PERIODS_PER_YEAR, Bond, Config, WeightScheme, parse_config
from lobsim.model.control import nearest_donors
from lobsim.model.derive import derive_bond
from lobsim.model.process import ar1_period_parameters, simulate_ar1, stationary_sd
from lobsim.validation.universe_file import CalibratedUniverse

#: Target as a share of the area's base count (Appendix: 5,000 of 50,000).
TARGET_SHARE = 0.10
#: Shares of the target whose measurement by a placebo counts as a false positive.
FALSE_POSITIVE_LEVELS = (0.10, 0.50, 1.00)
#: Quantiles reported of the measured change.
QUANTILES = (0.05, 0.25, 0.50, 0.75, 0.95)
WEIGHTS: tuple[WeightScheme, ...] = ("equal", "synthetic")
DONORS = (3, 5, 10, 20)


@dataclass(frozen=True)
class ObservedPanel:
    """An observed panel: the areas table and values, areas x periods.

    Attributes
    ----------
    areas : AreaTable
    periods : tuple of str
        Period labels, oldest first.
    values : ndarray, shape (n_areas, n_periods)
        Observed values (positive), in the areas table's order.
    """

    areas: AreaTable
    periods: tuple[str, ...]
    values: np.ndarray

    @property
    def logs(self) -> np.ndarray:
        """Log of the values."""
        return np.log(self.values)


def read_panel(history: str | Path, areas: str | Path | AreaTable) -> ObservedPanel:
    """Read a history CSV (``area,region,period,value``) on an areas table."""
    table = areas if isinstance(areas, AreaTable) else read_areas(areas)
    data = read_outcome(history, None, table)
    return ObservedPanel(areas=table, periods=data.periods, values=np.exp(data.log_history))


@dataclass
class Placebos:
    """Placebo measurements, one row per (start, weights, donors, area).

    Columns are arrays of equal length; ``base`` is ``y_obs`` at the start,
    ``counterfactual`` the control group's prediction at the horizon,
    ``observed`` the area's value there, ``units`` their difference and
    ``change`` its percentage of the counterfactual. ``target`` is
    :data:`TARGET_SHARE` of ``base``.
    """

    start: np.ndarray
    weights: np.ndarray
    donors: np.ndarray
    area: np.ndarray
    region: np.ndarray
    base: np.ndarray
    counterfactual: np.ndarray
    observed: np.ndarray
    rmspe: np.ndarray
    horizon: int
    pre: int
    periods_per_year: int = 12
    donor_ids: list[str] = field(default_factory=list)

    @property
    def units(self) -> np.ndarray:
        """Measured units ``yhat - y_obs`` at the horizon."""
        return self.counterfactual - self.observed

    @property
    def change(self) -> np.ndarray:
        """Measured change, percent of the counterfactual."""
        return 100.0 * self.units / self.counterfactual

    @property
    def target(self) -> np.ndarray:
        """The target a bond would have: :data:`TARGET_SHARE` of the base value."""
        return TARGET_SHARE * self.base

    def select(self, weights: str | None = None, donors: int | None = None,
               start: str | None = None) -> np.ndarray:
        """Boolean mask of the rows with the given weights, donors and start."""
        mask = np.ones(self.area.size, dtype=bool)
        if weights is not None:
            mask &= self.weights == weights
        if donors is not None:
            mask &= self.donors == donors
        if start is not None:
            mask &= self.start == start
        return mask

    def write_csv(self, path: str | Path, names: dict[str, str] | None = None) -> None:
        """Write one row per placebo (``names``: area id -> name, optional)."""
        names = names or {}
        with open(path, "w", encoding="utf-8", newline="") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(["start", "weights", "donors", "area", "name", "region", "base",
                          "counterfactual", "observed", "units", "change_pct",
                          "units_over_target", "rmspe", "donor_areas"])
            units, change, target = self.units, self.change, self.target
            for i in range(self.area.size):
                out.writerow([
                    self.start[i], self.weights[i], int(self.donors[i]), self.area[i],
                    names.get(str(self.area[i]), ""), self.region[i],
                    f"{self.base[i]:.6g}", f"{self.counterfactual[i]:.6g}",
                    f"{self.observed[i]:.6g}", f"{units[i]:.6g}", f"{change[i]:.4f}",
                    f"{units[i] / target[i]:.4f}", f"{self.rmspe[i]:.6f}",
                    self.donor_ids[i] if self.donor_ids else "",
                ])


@functools.lru_cache(maxsize=256)
def _template(donors: int, weights: str, pre: int, match_on: tuple[str, ...] | None) -> Config:
    # a bond parsed from a minimal config: the control-group fields are the
    # contract's own, whatever else a Bond holds
    control: dict[str, object] = {"donors": donors, "weights": weights, "pre_periods": pre}
    if match_on:
        control["match_on"] = list(match_on)
    doc = {
        "departments": [{"id": "dept"}],
        "agencies": [{"id": "agency", "department": "dept"}],
        "interventions": [{"id": "none", "success_mean": 0.0, "success_sd": 0.0}],
        "providers": [{"id": "none"}],
        "outcomes": [{"id": "placebo", "kind": "count"}],
        "bonds": [{"id": "placebo", "provider": "none", "area": "placebo",
                   "outcome": "placebo", "intervention": "none", "target_units": 1.0,
                   "cost_per_unit": 1.0, "maturity": 1.0,
                   "payers": [{"agency": "agency", "share": 1.0}], "control": control}],
    }
    return parse_config(doc, source="<placebo>")


def placebo_bond(area: str, donors: int, weights: str, pre: int,
                 match_on: Sequence[str] | None = None) -> Bond:
    """A zero-effect bond on ``area``: only its control group matters.

    ``donors`` nearest neighbours, ``weights`` equal or synthetic fitted on
    ``pre`` periods, matched on ``match_on`` (default: every covariate).
    """
    template = _template(int(donors), str(weights), int(pre),
                         tuple(match_on) if match_on else None)
    return derive_bond(template, "placebo", id=f"placebo-{area}", area=area).bonds[0]


def start_indices(periods: Sequence[str], *, pre: int, horizon: int,
                  starts: Sequence[str] | None = None, step: int = 3,
                  source: str = "<panel>") -> list[int]:
    """Indices of the placebo start periods (the base period of each placebo).

    By default every ``step``-th period from the first with ``pre`` periods of
    history up to the last with ``horizon`` periods after it.
    """
    n = len(periods)
    first, last = pre - 1, n - 1 - horizon
    if pre < 2:
        raise ConfigError(f"--pre {pre}: the pre-period needs at least 2 periods", source=source)
    if horizon < 1:
        raise ConfigError(f"--horizon {horizon}: must be at least 1 period", source=source)
    if first > last:
        raise ConfigError(
            f"has {n} periods: a pre-period of {pre} and a horizon of {horizon} do not fit; "
            "shorten them", source=source)
    if starts is None:
        if step < 1:
            raise ConfigError(f"--step {step}: must be at least 1", source=source)
        return list(range(first, last + 1, step))
    index = {p: i for i, p in enumerate(periods)}
    out = []
    for s in starts:
        if s not in index:
            raise ConfigError(f"start {s!r} is not a period of the history "
                              f"({periods[0]} to {periods[-1]})", source=source)
        i = index[s]
        if not first <= i <= last:
            raise ConfigError(
                f"start {s!r} leaves no room: starts must lie between {periods[first]} and "
                f"{periods[last]} for --pre {pre} and --horizon {horizon}", source=source)
        out.append(i)
    return sorted(set(out))


def placebo_backtest(panel: ObservedPanel, *, pre: int = 12, horizon: int = 12,
                     donors: Iterable[int] = DONORS, weights: Iterable[str] = WEIGHTS,
                     starts: Sequence[str] | None = None, step: int = 3,
                     match_on: Sequence[str] | None = None, periods_per_year: int = 12,
                     source: str = "<panel>", donor_pools: dict[int, np.ndarray] | None = None,
                     describe_donors: bool = True) -> Placebos:
    """Measure every area as a zero-effect bond at each start date.

    Parameters
    ----------
    panel : ObservedPanel
        The observed history and the areas table (covariates for the donor
        choice; they must be known at every start, e.g. means over a window
        before the first start).
    pre : int
        Periods of pre-period the synthetic weights are fitted on, ending at
        the start (the contract's ``pre_periods``).
    horizon : int
        Periods from the start to the measurement.
    donors : iterable of int
        Donor-pool sizes k.
    weights : iterable of str
        ``"equal"`` and/or ``"synthetic"``.
    starts : sequence of str, optional
        Start periods; default every ``step`` periods (:func:`start_indices`).
    match_on : sequence of str, optional
        Covariates for the nearest-neighbour distance (default: all).
    periods_per_year : int
        For labelling only.
    source : str
        Name of the data in error messages.
    donor_pools : dict, optional
        Precomputed pools, k -> (n_areas, k) area indices (they depend only
        on the covariates; :func:`simulate_placebos` reuses them).
    describe_donors : bool
        Keep each placebo's donors and weights as text (for the CSV).

    Returns
    -------
    Placebos
    """
    areas = panel.areas
    n_a = len(areas.ids)
    ks = sorted(set(int(k) for k in donors))
    schemes = list(dict.fromkeys(weights))
    for w in schemes:
        if w not in WEIGHTS:
            raise ConfigError(f"weights {w!r}: use 'equal' or 'synthetic'", source=source)
    if not ks or ks[0] < 1 or ks[-1] > n_a - 1:
        raise ConfigError(f"donor-pool sizes must lie between 1 and {n_a - 1} (the other "
                          f"areas), got {','.join(map(str, ks))}", source=source)
    for name in match_on or ():
        if name not in areas.covariate_names:
            raise ConfigError(f"covariate {name!r} is not in the areas table (columns: "
                              f"{', '.join(areas.covariate_names)})", source=source)
    idx = start_indices(panel.periods, pre=pre, horizon=horizon, starts=starts, step=step,
                        source=source)
    logs = panel.logs
    values = panel.values
    pools = donor_pools if donor_pools is not None else donor_pools_for(areas, ks, match_on)
    blocks: dict[str, list[np.ndarray]] = {k: [] for k in (
        "start", "weights", "donors", "area", "region", "base", "counterfactual", "observed",
        "rmspe")}
    donor_ids: list[str] = []
    ids, regions = np.array(areas.ids), np.array(areas.regions)
    with threadpool_limits(1, "blas"):
        for s in idx:
            # the contract sees the history up to its start only
            window = logs[:, s - pre + 1: s + 1]
            change = logs[:, s + horizon] - logs[:, s]
            for scheme in schemes:
                for k in ks:
                    pool = pools[k]
                    wts, rmspe = control_weights(window, pool, scheme)
                    yhat = values[:, s] * np.exp(np.sum(wts * change[pool], axis=1))
                    for name, col in (("start", np.full(n_a, panel.periods[s])),
                                      ("weights", np.full(n_a, scheme)),
                                      ("donors", np.full(n_a, k)), ("area", ids),
                                      ("region", regions), ("base", values[:, s]),
                                      ("counterfactual", yhat),
                                      ("observed", values[:, s + horizon]), ("rmspe", rmspe)):
                        blocks[name].append(col)
                    if describe_donors:
                        donor_ids += [" ".join(f"{areas.ids[j]}:{v:.3f}"
                                               for j, v in zip(pool[a], wts[a], strict=True)
                                               if v > 0) for a in range(n_a)]
    cols = {name: np.concatenate(parts) for name, parts in blocks.items()}
    return Placebos(
        start=cols["start"], weights=cols["weights"], donors=cols["donors"].astype(np.int64),
        area=cols["area"], region=cols["region"], base=cols["base"].astype(float),
        counterfactual=cols["counterfactual"].astype(float),
        observed=cols["observed"].astype(float), rmspe=cols["rmspe"].astype(float),
        horizon=horizon, pre=pre, periods_per_year=periods_per_year, donor_ids=donor_ids)


def control_weights(window: np.ndarray, pools: np.ndarray, scheme: str
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Weights of every area's donors fitted on ``window``, and their RMSPE.

    The logic of :func:`lobsim.model.control.fit_control` (which a test holds it
    to), for all areas at once: the indexed log paths ``x[t] - x[base]`` over
    the window (the base is its last period), equal weights or the exact
    synthetic-control simplex weights of :func:`lobsim.kernels.synth.simplex_weights`.

    Parameters
    ----------
    window : ndarray, shape (n_areas, pre)
        Observed log values over the pre-period, ending at the start.
    pools : ndarray of int, shape (n_areas, k)
        Each area's donors.
    scheme : str
        ``"equal"`` or ``"synthetic"``.

    Returns
    -------
    weights : ndarray, shape (n_areas, k)
    rmspe : ndarray, shape (n_areas,)
    """
    path = window - window[:, -1:]
    path0 = np.ascontiguousarray(np.transpose(path[pools], (0, 2, 1)))  # (A, pre, k)
    n_a, k = pools.shape
    if scheme == "equal":
        w = np.full((n_a, k), 1.0 / k)
    else:
        w = np.empty((n_a, k))
        obj = np.empty(n_a)
        simplex_weights_batch(np.ascontiguousarray(path), path0, np.ones_like(path), w, obj)
        if np.isnan(obj).any():
            raise RuntimeError("synthetic-control weights: the active-set NNLS failed")
    err = path - np.einsum("atk,ak->at", path0, w)
    return w, np.sqrt(np.mean(err**2, axis=1))


def donor_pools_for(areas: AreaTable, ks: Iterable[int],
                    match_on: Sequence[str] | None = None) -> dict[int, np.ndarray]:
    """Nearest-neighbour donor pools of every area for each pool size k."""
    pools = {}
    for k in ks:
        pools[k] = np.array([
            nearest_donors(placebo_bond(a, k, "equal", 2, match_on), areas, {a}, "<areas>",
                           "placebo")
            for a in areas.ids])
    return pools


# --------------------------------------------------------------------------
# The model check: the same experiment on simulated panels
# --------------------------------------------------------------------------
def simulate_panel(universe: CalibratedUniverse, rng: np.random.Generator, *, size_scaled: bool = False
                   ) -> np.ndarray:
    """One panel of values drawn from a calibrated process (docs/model.md section 3).

    Same areas, regions and number of periods as the universe's history,
    stepped period by period with the per-year parameters converted exactly
    (:func:`lobsim.model.process.ar1_period_parameters`); F, G and U start from their
    stationary distributions (at 0 for a random walk); trends are drawn from
    the calibrated spread around the mean trend; levels are the areas'
    observed mean log levels; the loadings are each area's own where the
    universe's areas file gives them (docs/model.md section 3.2), else the
    outcome's common ones. With ``size_scaled`` the area shocks and noise
    of each area are scaled by its fitted volatility scale
    (``exp(c + b log-level)``, normalised to mean 1): the heterogeneity the
    pooled process leaves out.

    Returns
    -------
    ndarray, shape (n_areas, n_periods)
        Simulated observed values, ``exp(x + sigma_e e - sigma_e^2 / 2)``.
    """
    u = universe
    proc, ppy = u.process, u.periods_per_year
    areas = u.areas
    logs = u.data.log_history
    n_a, t = logs.shape
    regions = list(dict.fromkeys(areas.regions))
    rindex = np.array([regions.index(r) for r in areas.regions])
    scale = size_scale(u) if size_scaled else np.ones(n_a)
    sd = np.sqrt(scale)
    parts = []
    for phi, sigma, width, mult in (
        (proc.national_phi, proc.national_sigma, 1, np.ones(1)),
        (proc.regional_phi, proc.regional_sigma, len(regions), np.ones(len(regions))),
        (proc.area_phi, proc.area_sigma, n_a, sd),
    ):
        phi_p, sig_p = ar1_period_parameters(phi, sigma, ppy)
        start = stationary_sd(phi, sigma) * rng.standard_normal(width) * mult
        shocks = rng.standard_normal((t, width)) * mult
        parts.append(simulate_ar1(phi_p, sig_p, start, shocks))
    national, regional, area = parts
    tau = (np.arange(t) - (t - 1) / 2.0) / ppy
    trend = (u.trend_mean + u.trend_sd_region * rng.standard_normal(len(regions))[rindex]
             + u.trend_sd_area * rng.standard_normal(n_a))
    sig_e = proc.measurement_sigma * sd
    noise = sig_e[:, None] * rng.standard_normal((n_a, t)) - 0.5 * sig_e[:, None] ** 2
    # each area's own loadings where the areas file gives them, as the engine's world does
    beta, gamma = areas.loadings(proc.national_loading, proc.regional_loading)
    x = (logs.mean(axis=1)[:, None] + trend[:, None] * tau[None, :]
         + beta[:, None] * national.T + gamma[:, None] * regional.T[rindex]
         + area.T)
    return np.exp(x + noise)


def size_scale(universe: CalibratedUniverse) -> np.ndarray:
    """Per-area variance multiplier fitted on the log level (mean 1).

    ``exp(c + b level)`` with ``b``, ``c`` the least-squares line of the log of
    the calibration's per-area ``volatility_scale`` on the area's mean log
    level, normalised to mean 1 over the areas.
    """
    level = universe.data.log_history.mean(axis=1)
    b, c = np.polyfit(level, np.log(np.maximum(universe.volatility_scale, 1e-300)), 1)
    fitted = np.exp(c + b * level)
    return np.asarray(fitted / fitted.mean())


def simulate_placebos(universe: CalibratedUniverse, *, replicates: int = 10, seed: int = 0,
                      size_scaled: bool = False, pre: int = 12, horizon: int = 12,
                      donors: Iterable[int] = DONORS, weights: Iterable[str] = WEIGHTS,
                      starts: Sequence[str] | None = None, step: int = 3,
                      match_on: Sequence[str] | None = None) -> Placebos:
    """The placebo backtest on ``replicates`` panels simulated from a calibrated universe.

    The design arguments are those of :func:`placebo_backtest`; the donor
    pools are those of the real covariates. Replicate ``i`` draws from
    ``SeedSequence(seed).spawn``'s ``i``-th child, so a replicate does not
    depend on how many are run.
    """
    ks = sorted(set(int(k) for k in donors))
    pools = donor_pools_for(universe.areas, ks, match_on)
    runs = []
    for child in np.random.SeedSequence(seed).spawn(replicates):
        rng = np.random.Generator(np.random.PCG64(child))
        values = simulate_panel(universe, rng, size_scaled=size_scaled)
        panel = ObservedPanel(areas=universe.areas, periods=universe.data.periods, values=values)
        runs.append(placebo_backtest(
            panel, pre=pre, horizon=horizon, donors=ks, weights=weights, starts=starts,
            step=step, match_on=match_on, periods_per_year=universe.periods_per_year,
            donor_pools=pools, describe_donors=False))
    return concat(runs)


def concat(runs: Sequence[Placebos]) -> Placebos:
    """Stack placebo tables of the same design."""
    first = runs[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in runs])

    return Placebos(start=cat("start"), weights=cat("weights"), donors=cat("donors"),
                    area=cat("area"), region=cat("region"), base=cat("base"),
                    counterfactual=cat("counterfactual"), observed=cat("observed"),
                    rmspe=cat("rmspe"), horizon=first.horizon, pre=first.pre,
                    periods_per_year=first.periods_per_year,
                    donor_ids=[d for r in runs for d in r.donor_ids])


#: Groups of the model check: all areas, and terciles of the base value.
GROUPS = ("all", "small", "middle", "large")


def tercile_cuts(p: Placebos, sel: np.ndarray) -> tuple[float, float]:
    """Cuts of the log base value into terciles, over the placebos ``sel`` of ``p``."""
    lo, hi = np.quantile(np.log(p.base[sel]), [1 / 3, 2 / 3])
    return float(lo), float(hi)


def size_groups(p: Placebos, cuts: Sequence[float]) -> dict[str, np.ndarray]:
    """Masks of :data:`GROUPS`: terciles of the log base value at ``cuts``."""
    lvl = np.log(p.base)
    return {"all": np.ones(lvl.size, dtype=bool), "small": lvl < cuts[0],
            "middle": (lvl >= cuts[0]) & (lvl < cuts[1]), "large": lvl >= cuts[1]}


def periods_per_year_of(periods: Sequence[str]) -> int:
    """Infer the period length from labels: ``YYYY-MM`` month, ``YYYY-Qn`` quarter, ``YYYY`` year."""
    p = periods[-1]
    if len(p) == 7 and p[4] == "-" and p[5:].isdigit():
        return PERIODS_PER_YEAR["month"]
    if len(p) == 7 and p[4:6] == "-Q":
        return PERIODS_PER_YEAR["quarter"]
    if len(p) == 4 and p.isdigit():
        return PERIODS_PER_YEAR["year"]
    raise ValueError(f"cannot tell the period length from {p!r}; give --period")
