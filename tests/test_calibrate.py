"""Calibration of the outcome process (lobsim.calibrate): conversions, recovery, I/O."""

from __future__ import annotations

import math
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lobsim.areas import read_areas, read_outcome
from lobsim.calibrate import (
    ar1_gamma,
    ar1_year_parameters,
    calibrate,
    read_universe,
    write_universe,
)
from lobsim.demo import OUTCOMES, ar1_period_parameters
from lobsim.errors import ConfigError

DEMO = Path(str(resources.files("lobsim") / "data" / "demo"))


# -- per-period <-> per-year conversion -------------------------------------
@given(phi=st.floats(0.0, 1.0), sigma=st.floats(0.0, 2.0), n=st.sampled_from([1, 4, 12, 52]))
def test_year_parameters_invert_the_period_conversion(phi, sigma, n):
    phi_p, sigma_p = ar1_period_parameters(phi, sigma, n)
    back_phi, back_sigma = ar1_year_parameters(phi_p, sigma_p, n)
    assert back_phi == pytest.approx(phi, rel=1e-9, abs=1e-12)
    assert back_sigma == pytest.approx(sigma, rel=1e-9, abs=1e-12)


def test_year_parameters_formula_and_limits():
    # 12 monthly steps of phi_p = 0.9, sigma_p = 0.01: the brief's formula
    phi, sigma = ar1_year_parameters(0.9, 0.01, 12)
    assert phi == pytest.approx(0.9**12, rel=1e-14)
    assert sigma**2 == pytest.approx(0.01**2 * (1 - 0.9**24) / (1 - 0.9**2), rel=1e-12)
    assert ar1_year_parameters(1.0, 0.01, 12) == (1.0, 0.01 * math.sqrt(12))
    assert ar1_year_parameters(0.0, 0.02, 12) == (0.0, 0.02)
    # continuous at the random walk
    assert ar1_year_parameters(1 - 1e-12, 0.01, 12)[1] == pytest.approx(0.01 * math.sqrt(12),
                                                                        rel=1e-9)
    with pytest.raises(ValueError, match="phi_p"):
        ar1_year_parameters(1.5, 0.01, 12)


@pytest.mark.parametrize("phi", [0.0, 0.3, 0.9, 0.999999, 1.0])
def test_gamma_has_the_ar1_variogram_and_is_positive_definite(phi):
    g = ar1_gamma(phi, 30)
    assert np.linalg.eigvalsh(g).min() > 0
    # Var(S_i - S_j) per unit innovation variance: 2 (1 - phi^k) / (1 - phi^2), k for a walk
    k = np.abs(np.subtract.outer(np.arange(30), np.arange(30)))
    expected = k.astype(float) if phi == 1.0 else 2 * (1 - phi**k) / (1 - phi**2)
    variogram = np.diag(g)[:, None] + np.diag(g)[None, :] - 2 * g
    np.testing.assert_allclose(variogram, expected, rtol=1e-6, atol=1e-9)


# -- recovery of known parameters ---------------------------------------------
# The bundled demo universe was simulated by the engine's own process
# (lobsim.demo, docs/model.md section 3) with the parameters in lobsim.demo.OUTCOMES,
# 200 areas in 10 regions over 60 months, and its true base-month state is
# stored beside it. The tolerances come from the sampling distribution of each
# estimate over 40 universes generated with seeds 1000-1039
# (tests/mc_calibration.py; the table is in docs/real_data.md): about 4
# standard deviations, and never less than the largest error seen there.
# A correct calibration passes; a per-period / per-year mix-up (a sigma off by
# sqrt(12)), a biased noise or trend-spread estimate fails. Regional and
# national persistence are not tested: with 10 regions and one national series
# over five years their sampling sds are 0.26 and 0.40.
TOLERANCE = {
    "area_phi": 0.42,  # sd 0.11 (claimants), 0.06; largest error 0.40 (an estimate of 1)
    "area_sigma": 0.010,  # sd 0.0021, 0.0023; largest error 0.0082
    "measurement_sigma": 0.0012,  # sd 0.0001, 0.0002; largest error 0.0006
    "regional_sigma": 0.022,  # sd 0.0049, 0.0053; largest error 0.0107
}
TREND_SD_TOLERANCE = 0.008  # sd 0.0019, 0.0018; largest error 0.0063
#: Per-year sd of the area trends the demo drew (lobsim.demo._TRENDS).
DEMO_TREND_SD = {"claimants": 0.015, "referral_days": 0.02}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_calibration_recovers_the_demo_process(outcome):
    areas = read_areas(DEMO / "areas.csv")
    cal = calibrate(DEMO / f"{outcome}_history.csv", areas, 12)
    truth = OUTCOMES[outcome][1]
    for key, tol in TOLERANCE.items():
        assert abs(getattr(cal.process, key) - getattr(truth, key)) < tol, (
            key, getattr(cal.process, key), getattr(truth, key))
    assert abs(cal.trend_sd_area - DEMO_TREND_SD[outcome]) < TREND_SD_TOLERANCE
    for key in ("national_phi", "regional_phi", "area_phi"):
        assert 0.0 <= getattr(cal.process, key) <= 1.0
    assert 0.0 < cal.process.national_sigma < 3 * truth.national_sigma
    # the demo's noise is homogeneous: no size effect in the volatility
    assert abs(cal.volatility_slope) < 0.3

    # The state: the BLUP of the true log level beats the last observation
    # (in all 40 Monte Carlo universes: RMSE ratio 0.67 to 0.92), and the
    # predicted trends and states track the true ones (correlations at least
    # 0.55 for trends, 0.36 for area states there).
    state = read_outcome(DEMO / f"{outcome}_history.csv", DEMO / f"{outcome}_state.csv",
                         areas, 12)
    rmse = float(np.sqrt(np.mean((cal.log_level - state.log_level) ** 2)))
    naive = float(np.sqrt(np.mean((state.log_base - state.log_level) ** 2)))
    assert rmse < 0.95 * naive
    assert np.corrcoef(cal.trend, state.trend)[0, 1] > 0.45
    assert np.corrcoef(cal.area_state, state.area_state)[0, 1] > 0.25


def test_a_noise_free_random_walk_panel_has_no_measurement_noise(tmp_path):
    # Areas that are pure random walks around a trend: the noise estimate must
    # go to (nearly) zero, the area process to a walk with the simulated sigma.
    rng = np.random.Generator(np.random.PCG64(5))
    n_r, per, t = 4, 30, 48
    sigma_p = 0.02
    walks = np.cumsum(sigma_p * rng.standard_normal((n_r * per, t)), axis=1)
    logs = 5.0 + walks + 0.01 * rng.standard_normal((n_r, t)).cumsum(axis=1).repeat(per, axis=0)
    areas, history = _write_panel(tmp_path, logs, per)
    cal = calibrate(history, areas, 12)
    assert cal.per_period["area_phi"] > 0.97
    assert cal.per_period["area_sigma"] == pytest.approx(sigma_p, rel=0.1)
    assert cal.process.measurement_sigma < 0.2 * sigma_p


def _write_panel(folder: Path, logs: np.ndarray, per_region: int) -> tuple[Path, Path]:
    n_a, _t = logs.shape
    areas = ["area,region,x"]
    history = ["area,region,period,value"]
    for a in range(n_a):
        region = f"R{a // per_region}"
        areas.append(f"a{a:03d},{region},{a}")
        history += [f"a{a:03d},{region},{2000 + m // 12}-{m % 12 + 1:02d},{math.exp(v)!r}"
                    for m, v in enumerate(logs[a])]
    (folder / "areas.csv").write_text("\n".join(areas) + "\n", encoding="utf-8")
    (folder / "history.csv").write_text("\n".join(history) + "\n", encoding="utf-8")
    return folder / "areas.csv", folder / "history.csv"


@pytest.mark.parametrize(("per_region", "n_regions", "periods", "match"), [
    (5, 1, 20, "single region"),
    (1, 4, 20, "fewer than 2 areas"),
    (5, 3, 6, "at least 8"),
])
def test_panels_the_calibration_cannot_use_are_refused(tmp_path, per_region, n_regions,
                                                         periods, match):
    logs = 5.0 + 0.01 * np.arange(per_region * n_regions * periods).reshape(-1, periods) % 0.1
    areas, history = _write_panel(tmp_path, logs, per_region)
    with pytest.raises(ConfigError, match=match) as info:
        calibrate(history, areas, 12)
    assert "\n" not in str(info.value)


# -- writing and reading a universe -------------------------------------------
def test_written_universe_reads_back_and_loads_in_a_config(tmp_path):
    for name in ("areas.csv", "claimants_history.csv"):
        shutil.copy(DEMO / name, tmp_path / name)
    cal = calibrate(tmp_path / "claimants_history.csv", tmp_path / "areas.csv", 12)
    files = write_universe(cal, tmp_path / "u" / "universe.toml", areas="../areas.csv",
                           history="../claimants_history.csv")
    assert sorted(files) == ["claimants_state.csv", "claimants_volatility.csv",
                             "universe.toml"]
    u = read_universe(tmp_path / "u" / "universe.toml")
    assert u.process == cal.process
    np.testing.assert_array_equal(u.data.trend, cal.trend)
    np.testing.assert_array_equal(u.data.log_level, cal.log_level)
    np.testing.assert_array_equal(u.data.area_state, cal.area_state)
    assert u.data.regional_state == cal.regional_state
    assert u.data.national_state == cal.national_state
    np.testing.assert_array_equal(u.volatility_scale, cal.volatility_scale)

    # [universe] and [[outcomes]] drop into a config as they are
    from lobsim import parse_config, simulate

    doc = tomllib.loads((tmp_path / "u" / "universe.toml").read_text(encoding="utf-8"))
    config = {
        "universe": doc["universe"], "outcomes": doc["outcomes"],
        "departments": [{"id": "D"}], "agencies": [{"id": "A", "department": "D"}],
        "interventions": [{"id": "none", "success_mean": 0.0, "success_sd": 0.0}],
        "providers": [{"id": "p"}],
        "bonds": [{"id": "b", "provider": "p", "area": "Birmingham", "outcome": "claimants",
                   "intervention": "none", "target_units": 5000, "cost_per_unit": 2000,
                   "maturity": 1.0, "payers": [{"agency": "A", "share": 1.0}]}],
    }
    cfg = parse_config(config, source="<test>", base_dir=tmp_path / "u")
    ds = simulate(cfg, scenarios=2000, seed=1)
    # no programme: measured units are the prediction error, centred near zero
    err = ds["prediction_error"].values[:, 0]
    assert abs(err.mean()) < 0.5 * err.std()


def test_reading_something_else_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[universe]\nareas = 'a.csv'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a universe written by") as info:
        read_universe(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_universe(tmp_path / "missing.toml")
