"""Per-area loadings estimated by the calibration (lobsim.validation.area_loadings)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from lobsim.cli.commands import main
from lobsim.model.areas import AreaTable, OutcomeData, read_areas
from lobsim.model.config import OutcomeProcess
from lobsim.model.process import ar1_year_parameters
from lobsim.validation.area_loadings import (
    estimate_loadings,
    write_areas_with_loadings,
    write_loading_estimates,
)
from lobsim.validation.backtest import simulate_panel
from lobsim.validation.calibrate import calibrate
from lobsim.validation.universe_file import CalibratedUniverse, read_universe

REGIONS, PER_REGION, PERIODS = 6, 10, 48
N = REGIONS * PER_REGION


def _universe(beta: np.ndarray | None, gamma: np.ndarray | None) -> CalibratedUniverse:
    """A monthly universe whose factors are strong against the areas' own noise.

    Per month: national phi 0.9, sigma 0.03; regional 0.9, 0.03; area 0.8,
    0.02; noise 0.01 (the engine takes them per year, converted exactly).
    """
    ids = tuple(f"a{i:02d}" for i in range(N))
    regions = tuple(f"r{i // PER_REGION}" for i in range(N))
    table = AreaTable(ids=ids, regions=regions, covariate_names=("x",),
                      covariates=np.arange(N, dtype=float)[:, None],
                      national_loading=beta, regional_loading=gamma)
    periods = tuple(f"{2010 + i // 12}-{i % 12 + 1:02d}" for i in range(PERIODS))
    levels = np.random.default_rng(7).uniform(5.0, 8.0, N)
    zeros = np.zeros(N)
    data = OutcomeData(periods=periods, log_history=np.tile(levels[:, None], (1, PERIODS)),
                       trend=zeros, log_level=zeros, area_state=zeros,
                       regional_state=dict.fromkeys(regions, 0.0), national_state=0.0)
    params = {}
    for name, (phi, sigma) in {"national": (0.9, 0.03), "regional": (0.9, 0.03),
                               "area": (0.8, 0.02)}.items():
        params[f"{name}_phi"], params[f"{name}_sigma"] = ar1_year_parameters(phi, sigma, 12)
    process = OutcomeProcess(**params, measurement_sigma=0.01, national_loading=1.0,
                             regional_loading=1.0)
    return CalibratedUniverse(path=Path("<synthetic>"), areas=table, data=data, process=process,
                              periods_per_year=12, trend_mean=0.0, trend_sd_region=0.01,
                              trend_sd_area=0.02, volatility_scale=np.ones(N), outcome={})


def _estimate(universe: CalibratedUniverse, seed: int):
    # the panel drawn by the model's own process, with the areas file's loadings
    values = simulate_panel(universe, np.random.default_rng(seed))
    zeros = np.zeros(N)
    history = OutcomeData(periods=universe.data.periods, log_history=np.log(values),
                          trend=zeros, log_level=zeros, area_state=zeros, regional_state={},
                          national_state=0.0)
    plain = AreaTable(ids=universe.areas.ids, regions=universe.areas.regions,
                      covariate_names=("x",), covariates=universe.areas.covariates)
    cal = calibrate(history, plain, 12)
    return estimate_loadings(cal, history, plain)


def _normalised(true: np.ndarray, regions: tuple[str, ...], per_region: bool) -> np.ndarray:
    """The true loadings on the estimates' scale: mean 1 overall or within each region."""
    if not per_region:
        return true / true.mean()
    r = np.array(regions)
    return true / np.array([true[r == g].mean() for g in regions])


# The tolerances of the two recovery tests hold on each of 50 panels (seeds 100-149 and
# 200-249 of these designs); the tests use one panel each.
def test_known_loadings_are_recovered_within_their_standard_errors():
    rng = np.random.default_rng(1)
    beta, gamma = rng.uniform(0.5, 1.5, N), rng.uniform(0.5, 1.5, N)
    universe = _universe(beta, gamma)
    est = _estimate(universe, seed=100)
    for e, true, per_region in ((est.national, beta, False), (est.regional, gamma, True)):
        target = _normalised(true, universe.areas.regions, per_region)
        z = (e.estimate - target) / e.se
        assert e.identified == N and e.own == N, e.name
        # the standard errors describe the errors: mean z about 0 (its sd about 0.13 for
        # 60 areas; more with the errors shared within a region), mean z^2 about 1 (sd
        # about 0.2 for independent errors; the fitted covariance the se rest on is off
        # by a factor shared by a panel's areas: on 100 panels mean 1.06, 0.45 to 2.95)
        assert abs(z.mean()) < 0.5, e.name
        assert 0.3 < np.mean(z**2) < 3.0, e.name
        assert np.mean(np.abs(z) > 3.0) < 0.1, e.name
        # the spread of the true loadings (sd 0.27 about 1) within 3 of its se
        assert abs(e.spread_within - np.std(target)) < 3.0 * e.spread_within_se, e.name
        # shrinkage towards 1 predicts the true loadings better than the raw estimates
        rmse_raw = np.sqrt(np.mean((e.estimate - target) ** 2))
        rmse_shrunk = np.sqrt(np.mean((e.loading - target) ** 2))
        assert rmse_shrunk < rmse_raw, e.name
        assert np.corrcoef(e.loading, target)[0, 1] > 0.6, e.name
        # the posterior sds describe the shrunk loadings' errors (mean z^2 about 1)
        assert 0.3 < np.mean(((e.loading - target) / e.posterior_sd) ** 2) < 3.0, e.name


def test_equal_loadings_are_estimated_as_the_common_value():
    est = _estimate(_universe(None, None), seed=200)
    for e in (est.national, est.regional):
        z = (e.estimate - 1.0) / e.se
        assert 0.3 < np.mean(z**2) < 3.0, e.name
        # no spread worth the name: the heterogeneous panel's is 0.27, its se about 0.04
        assert e.spread_within < 0.15, e.name
        # about 5% expected, more on a panel where errors shared within regions are large
        assert e.significant <= 0.25 * N, e.name
        # written loadings, where any (the tests of step 4 take equal loadings for
        # unequal on 3 of 40 such panels for the national, 1 for the regional), stay
        # close to the common value
        assert np.all(np.isnan(e.loading) | (np.abs(e.loading - 1.0) < 0.5)), e.name
    assert math.isnan(est.regional.spread_between)  # a region's factor is its own scale


def test_written_areas_file_round_trips_through_the_loader(tmp_path):
    source = tmp_path / "areas.csv"
    lines = ["area,region,deprivation,national_loading"]
    lines += [f"a{i:02d},r{i // PER_REGION},{i * 0.5},9" for i in range(N)]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rng = np.random.default_rng(1)
    est = _estimate(_universe(rng.uniform(0.5, 1.5, N), rng.uniform(0.5, 1.5, N)), seed=100)
    out = write_areas_with_loadings(source, est, tmp_path / "areas_loadings.csv")
    table, before = read_areas(out), read_areas(source)
    # covariates copied as they were; the old loading column replaced
    assert table.ids == before.ids and table.regions == before.regions
    assert table.covariate_names == ("deprivation",)
    np.testing.assert_array_equal(table.covariates, before.covariates)
    assert table.national_loading is not None and table.regional_loading is not None
    np.testing.assert_array_equal(table.national_loading, est.national.loading)
    np.testing.assert_array_equal(table.regional_loading, est.regional.loading)
    # the estimates table has a row per area and reads as numbers
    rows = write_loading_estimates(est, tmp_path / "est.csv").read_text().splitlines()
    assert len(rows) == N + 1 and rows[0].startswith("area,region,national_estimate,")
    assert float(rows[1].split(",")[3]) == est.national.se[0]


def test_an_area_keeping_the_common_value_has_an_empty_cell(tmp_path):
    source = tmp_path / "areas.csv"
    source.write_text("area,region,x\n" + "".join(f"a{i:02d},r{i // PER_REGION},{i}\n"
                                                  for i in range(N)), encoding="utf-8")
    est = _estimate(_universe(None, None), seed=200)
    out = write_areas_with_loadings(source, est, tmp_path / "out.csv")
    table = read_areas(out)
    beta, gamma = table.loadings(0.8, 1.0)
    for e, got, common in ((est.national, beta, 0.8), (est.regional, gamma, 1.0)):
        own = np.isfinite(e.loading)
        np.testing.assert_array_equal(got[~own], common)
        np.testing.assert_array_equal(got[own], e.loading[own])


def test_simulated_placebo_panels_use_the_areas_files_loadings():
    common = _universe(None, None)
    beta = np.ones(N)
    beta[3] = 2.0
    own = _universe(beta, None)
    a = simulate_panel(common, np.random.default_rng(5))
    b = simulate_panel(own, np.random.default_rng(5))
    moved = np.flatnonzero(np.any(a != b, axis=1))
    assert moved.tolist() == [3]
    # loadings all equal to the common value: the same panel, bit for bit
    same = simulate_panel(_universe(np.ones(N), np.ones(N)), np.random.default_rng(5))
    np.testing.assert_array_equal(same, a)


def test_cli_area_loadings_on_greater_manchester(tmp_path, capsys):
    out = tmp_path / "u.toml"
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out),
                 "--area-loadings"]) == 0
    text = capsys.readouterr().out
    lines = [line.strip() for line in text.splitlines()]
    national = next(line for line in lines if line.startswith("national loading:"))
    regional = next(line for line in lines if line.startswith("regional loading:"))
    assert "differ from 1 by > 2 se" in national
    # docs/real_data.md, Per-area loadings: on Greater Manchester only the authorities'
    # mean national loadings are told apart; every ward gets its authority's
    assert "halves agree" in national and ": not told from 0; between regions" in national
    assert "): identified; 215 of 215 get their own" in national
    assert regional.endswith("not told from 0; 0 of 215 get their own")
    assert f"wrote {tmp_path / 'areas_loadings.csv'}" in lines
    universe = read_universe(out)
    beta = universe.areas.national_loading
    assert beta is not None and universe.areas.regional_loading is not None
    assert np.isnan(universe.areas.regional_loading).all()
    regions = np.array(universe.areas.regions)
    assert all(np.unique(beta[regions == r]).size == 1 for r in set(regions))
    doc = tomllib.loads(out.read_text(encoding="utf-8"))
    assert doc["universe"]["areas"] == "areas_loadings.csv"
    assert doc["calibration"]["loadings"]["national_identified"] == 215
    # the covariates the donors are matched on are the bundled file's
    written = read_areas(tmp_path / "areas_loadings.csv")
    assert written.covariate_names == ("claimant_rate_2015", "log_count_2015")
    # without the option, the universe names the areas file it was given
    plain = tmp_path / "plain" / "u.toml"
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(plain),
                 "--quiet"]) == 0
    assert tomllib.loads(plain.read_text())["universe"]["areas"] == "lobsim:gm/areas.csv"
    assert not (plain.parent / "areas_loadings.csv").exists()


def test_loadings_need_the_calibration_of_the_same_areas():
    est_universe = _universe(None, None)
    values = simulate_panel(est_universe, np.random.default_rng(0))
    zeros = np.zeros(N)
    history = OutcomeData(periods=est_universe.data.periods, log_history=np.log(values),
                          trend=zeros, log_level=zeros, area_state=zeros, regional_state={},
                          national_state=0.0)
    cal = calibrate(history, est_universe.areas, 12)
    other = AreaTable(ids=tuple(reversed(est_universe.areas.ids)),
                      regions=tuple(reversed(est_universe.areas.regions)),
                      covariate_names=("x",), covariates=est_universe.areas.covariates)
    with pytest.raises(ValueError, match="other areas or periods"):
        estimate_loadings(cal, history, other)
