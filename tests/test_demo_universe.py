"""The bundled demo area universe (lobsim/data/demo) and its generator."""

from __future__ import annotations

import csv
import math
import tomllib
from collections import defaultdict
from dataclasses import asdict
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from lobsim.model.areas import read_areas
from lobsim.model.config import load_config
from lobsim.model.demo import (
    BIRMINGHAM,
    HISTORY_MONTHS,
    OUTCOMES,
    SEED,
    WORKING_AGE_SHARE,
    generate_demo_universe,
)
from lobsim.model.process import ar1_period_parameters, simulate_ar1

DEMO = Path(str(resources.files("lobsim") / "data" / "demo"))
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _rows(name: str) -> list[dict[str, str]]:
    with open(DEMO / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# -- (1) the stored files are the generator's output -------------------------
def test_regenerating_reproduces_the_stored_files_byte_for_byte(tmp_path):
    written = generate_demo_universe(tmp_path)
    stored = sorted(p.name for p in DEMO.iterdir() if p.is_file())
    assert sorted(written) == stored
    for name in stored:
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


def test_another_seed_gives_another_universe(tmp_path):
    generate_demo_universe(tmp_path, seed=SEED + 1)
    for name in ("claimants_state.csv", "referral_days_history.csv"):
        assert (tmp_path / name).read_bytes() != (DEMO / name).read_bytes()


def test_folder_is_small():
    assert sum(p.stat().st_size for p in DEMO.iterdir()) < 2_000_000


# -- (2) the per-year -> per-month conversion is exact -----------------------
@pytest.mark.parametrize(
    ("phi", "sigma", "years"),
    [
        (0.85, 0.05, 1),  # claimants, national
        (0.6, 0.03, 3),  # claimants, area
        (0.5, 0.05, 2),  # referral_days, area
        (0.3, 0.10, 1),  # strong mean reversion: a naive sigma^2/12 is far off
        (1.0, 0.04, 4),  # random walk: variance sigma^2 k
    ],
)
def test_monthly_ar1_matches_the_k_year_transition(phi, sigma, years):
    n_paths = 20_000
    phi_m, sigma_m = ar1_period_parameters(phi, sigma, 12)
    rng = np.random.Generator(np.random.PCG64(12345))
    shocks = rng.standard_normal((12 * years, n_paths))
    # Start at 0 (not stationary), so the k-year change is the state after 12 k months.
    change = simulate_ar1(phi_m, sigma_m, np.zeros(n_paths), shocks)[-1]
    expected = sigma**2 * years if phi == 1.0 else sigma**2 * (1 - phi ** (2 * years)) / (1 - phi**2)
    # The sample variance of n Gaussian draws has standard error var sqrt(2 / (n - 1)),
    # 1% here: 5 standard errors allow for chance (a 1 in 1.7 million event) but
    # catch a conversion off by 5% or more in variance (e.g. sigma^2/12 for phi < 1).
    se = expected * math.sqrt(2.0 / (n_paths - 1))
    assert abs(change.var(ddof=1) - expected) < 5 * se
    assert abs(change.mean()) < 5 * math.sqrt(expected / n_paths)


def test_conversion_formula_and_limits():
    phi_m, sigma_m = ar1_period_parameters(0.85, 0.05, 12)
    assert phi_m**12 == pytest.approx(0.85, rel=1e-14)
    # Twelve monthly steps accumulate sigma_m^2 (1 - phi_m^24) / (1 - phi_m^2) = sigma^2.
    assert sigma_m**2 * (1 - phi_m**24) / (1 - phi_m**2) == pytest.approx(0.05**2, rel=1e-12)
    # Continuous at phi -> 1 (no cancellation) and exact at the ends.
    near = ar1_period_parameters(1 - 1e-12, 0.12, 12)[1]
    assert near == pytest.approx(0.12 / math.sqrt(12), rel=1e-9)
    assert ar1_period_parameters(1.0, 0.12, 12) == (1.0, 0.12 / math.sqrt(12))
    assert ar1_period_parameters(0.0, 0.12, 12) == (0.0, 0.12)
    assert ar1_period_parameters(0.7, 0.03, 1) == pytest.approx((0.7, 0.03), rel=1e-15)
    with pytest.raises(ValueError, match="phi"):
        ar1_period_parameters(1.2, 0.1, 12)


# -- (3) the universe: Birmingham, areas.csv ----------------------------------
def test_areas_file_reads_and_has_the_expected_shape():
    table = read_areas(DEMO / "areas.csv")
    assert len(table.ids) == 200
    assert len(set(table.regions)) == 10
    assert table.covariate_names == (
        "population", "deprivation", "claimant_rate", "youth_share", "urban"
    )
    cov = dict(zip(table.covariate_names, table.covariates.T, strict=True))
    assert cov["population"].min() >= 20_000 and cov["population"].max() <= 1_100_000
    assert cov["deprivation"].min() >= 5 and cov["deprivation"].max() <= 50
    assert ((cov["urban"] >= 0) & (cov["urban"] <= 1)).all()
    assert ((cov["youth_share"] > 0.05) & (cov["youth_share"] < 0.25)).all()
    assert table.regions[table.index(BIRMINGHAM)] == "west_midlands"


def test_birmingham_has_about_50000_claimants_at_the_base_month():
    last = {r["area"]: float(r["value"]) for r in _rows("claimants_history.csv")}
    assert last[BIRMINGHAM] == pytest.approx(50_000, rel=0.02)
    # The largest area of the universe, as the real Birmingham is.
    table = read_areas(DEMO / "areas.csv")
    population = table.covariates[:, table.covariate_names.index("population")]
    assert table.ids[int(population.argmax())] == BIRMINGHAM


def test_claimant_rate_is_the_base_count_over_working_age_population():
    last = {r["area"]: float(r["value"]) for r in _rows("claimants_history.csv")}
    for row in _rows("areas.csv"):
        rate = 100 * last[row["area"]] / (WORKING_AGE_SHARE * float(row["population"]))
        assert float(row["claimant_rate"]) == pytest.approx(rate, abs=1e-4), row["area"]


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_history_is_monthly_long_format_ending_at_the_base_month(outcome):
    rows = _rows(f"{outcome}_history.csv")
    areas = _rows("areas.csv")
    assert len(rows) == len(areas) * HISTORY_MONTHS
    by_area = defaultdict(list)
    for r in rows:
        by_area[(r["area"], r["region"])].append(r["period"])
    assert list(by_area) == [(a["area"], a["region"]) for a in areas]
    periods = by_area[(areas[0]["area"], areas[0]["region"])]
    assert periods[0] == "2005-11" and periods[-1] == "2010-10"
    assert all(p == periods for p in by_area.values())
    values = np.array([float(r["value"]) for r in rows])
    if OUTCOMES[outcome][0] == "count":
        assert (values == np.rint(values)).all() and values.min() > 0
    else:  # average waiting times in days
        assert values.min() > 15 and values.max() < 130


# -- (4) state files ----------------------------------------------------------
@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_state_is_consistent_with_regions_and_the_last_observation(outcome):
    state = _rows(f"{outcome}_state.csv")
    regions = {r["area"]: r["region"] for r in _rows("areas.csv")}
    assert [r["area"] for r in state] == list(regions)
    assert len({r["national_state"] for r in state}) == 1
    per_region = defaultdict(set)
    for r in state:
        per_region[regions[r["area"]]].add(r["regional_state"])
    assert all(len(v) == 1 for v in per_region.values())
    assert len({next(iter(v)) for v in per_region.values()}) == len(per_region)

    # log y_obs[a,0] = log_level + sigma_e e - sigma_e^2 / 2 (+ rounding of the file):
    # the standardised noise must look like N(0, 1).
    sigma_e = OUTCOMES[outcome][1].measurement_sigma
    last = {r["area"]: float(r["value"]) for r in _rows(f"{outcome}_history.csv")}
    z = np.array([
        (math.log(last[r["area"]]) - float(r["log_level"]) + sigma_e**2 / 2) / sigma_e
        for r in state
    ])
    assert np.abs(z).max() < 5
    assert abs(z.mean()) < 5 / math.sqrt(len(z))
    assert 0.7 < z.std() < 1.3
    # The deviation states are of the size their stationary sd implies.
    process = OUTCOMES[outcome][1]
    u = np.array([float(r["area_state"]) for r in state])
    assert u.std() == pytest.approx(process.area_sigma / math.sqrt(1 - process.area_phi**2),
                                    rel=0.25)


# -- the basket demo config uses the generating process ----------------------
def test_process_toml_and_basket_demo_use_the_generating_parameters():
    with open(DEMO / "process.toml", "rb") as fh:
        documented = tomllib.load(fh)
    assert documented["seed"] == SEED
    config = load_config(CONFIGS / "basket_demo.toml")
    for outcome, (kind, process) in OUTCOMES.items():
        assert documented[outcome]["kind"] == kind
        assert documented[outcome]["process"] == asdict(process)
        configured = config.outcome(outcome)
        assert configured.kind == kind
        assert configured.process is not None
        assert {k: getattr(configured.process, k) for k in asdict(process)} == asdict(process)
        assert configured.state is not None and configured.state.name == f"{outcome}_state.csv"
