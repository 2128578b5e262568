"""Calibration of the outcome process (lobsim.validation.calibrate): conversions, recovery, I/O."""

from __future__ import annotations

import dataclasses
import math
import shutil
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lobsim.errors import ConfigError
from lobsim.model.areas import read_areas, read_outcome
from lobsim.model.demo import OUTCOMES
from lobsim.model.process import ar1_period_parameters, ar1_year_parameters
from lobsim.model.realdata import package_data
from lobsim.validation._reml import (
    STEP_TOL,
    ar1_gamma_dphi,
    between_objective,
    newton_polish,
    search_units,
    within_objective,
)
from lobsim.validation.calibrate import (
    _panel,
    ar1_gamma,
    calibrate,
    calibrate_at,
)
from lobsim.validation.universe_file import read_universe, write_universe

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


@pytest.mark.parametrize("phi", [0.0, 0.2, 0.7, 0.95, 0.999, 1.0])
def test_gamma_derivative_is_the_quotient_rule(phi):
    # d/dphi of (phi^k - 1) / (1 - phi^2) by the quotient rule, an independent
    # form of what ar1_gamma_dphi sums; its limits by hand: at phi = 0, 1 for
    # k = 1 and 0 otherwise; at phi = 1, -k (k - 2) / 4 (from -S_k / (1 + phi),
    # S_k(1) = k, S_k'(1) = k (k - 1) / 2).
    k = np.abs(np.subtract.outer(np.arange(12), np.arange(12))).astype(float)
    if phi == 1.0:
        expected = -k * (k - 2) / 4
    elif phi == 0.0:
        expected = (k == 1).astype(float)
    else:
        expected = ((k * phi ** (k - 1) * (1 - phi**2) + 2 * phi * (phi**k - 1))
                    / (1 - phi**2) ** 2)
    # the quotient rule loses log10(1 / (1 - phi^2)^2) digits: 5 at phi = 0.999
    np.testing.assert_allclose(ar1_gamma_dphi(phi, 12), expected, rtol=1e-9, atol=1e-10)


# -- the REML objectives: exact gradients, a polished optimum -----------------
GM = package_data("gm")


def _richardson(fun, x, i, h):
    """Central difference of fun's value along coordinate i, extrapolated in h."""
    def central(step):
        e = np.zeros_like(x)
        e[i] = step
        return (fun(x + e)[0] - fun(x - e)[0]) / (2 * step)
    return (4 * central(h) - central(2 * h)) / 3


@pytest.fixture(scope="module")
def gm_objectives():
    p = _panel(GM / "claimants_history.csv", GM / "areas.csv", 12)
    k_w = 0.002 * ar1_gamma(0.7, p.y.shape[1]) + 0.0003 * np.eye(p.y.shape[1])
    # search units (phi, var / 1e-4): every coordinate of order 1
    within = search_units(within_objective(p.dev, len(p.y) - len(p.region_ids)),
                          np.array([False, True, True]), 1e-4)
    between = search_units(between_objective(p.means, p.sizes, k_w),
                           np.array([False, True, False, True]), 1e-4)
    return {"within": within, "between": between}


@pytest.mark.parametrize(("step", "x"), [
    ("within", [0.6, 5.0, 1.5]),
    ("within", [0.9, 3.0, 2.0]),
    ("within", [1.0, 3.0, 2.0]),  # a random walk: the objective is smooth through phi = 1
    ("between", [0.5, 2.0, 0.9, 1.5]),
    ("between", [0.95, 1.0, 0.3, 2.5]),
    ("between", [0.7, 3.0, 1.0, 1.4]),
])
def test_reml_gradients_are_the_derivatives_of_the_objectives(gm_objectives, step, x):
    # Away from the optimum (gradients of 1 to 10,000 on Greater Manchester),
    # against Richardson-extrapolated central differences with h = 1e-4: the
    # truncation error O(h^4) is below 3e-9 even at a regional random walk,
    # where phi's derivatives are largest, and rounding is about eps |f| / h =
    # 2e-16 x 16,000 / 1e-4 = 3e-8 (measured: at most 1e-9 of max(1, |gradient|)
    # over these points). 1e-7 of it keeps that margin while any wrong term of
    # the formulas is an O(1) error.
    fun = gm_objectives[step]
    x = np.array(x)
    _, grad = fun(x)
    fd = np.array([_richardson(fun, x, i, 1e-4) for i in range(x.size)])
    assert np.abs(grad).max() > 1.0
    np.testing.assert_array_less(np.abs(grad - fd), 1e-7 * np.maximum(1.0, np.abs(grad)))


def test_newton_polish_finds_a_bounded_quadratic_minimum_exactly():
    # f = (x - c)^T A (x - c) / 2 on [0, 1]^2 with c = (1.5, 0.3): x1 held at
    # its bound 1 (gradient -0.875 there), x2 = 0.3 - A12 (1 - 1.5) / A22 = 0.55.
    a, c = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([1.5, 0.3])

    def fun(x):
        return 0.5 * float((x - c) @ a @ (x - c)), a @ (x - c)

    x, steps = newton_polish(fun, np.array([0.2, 0.9]), np.zeros(2), np.ones(2))
    assert steps > 0
    np.testing.assert_allclose(x, [1.0, 0.55], rtol=0, atol=1e-12)


def test_the_calibration_is_the_optimum_whatever_the_start():
    # The answer is where the exact gradient vanishes, not where a search
    # stopped: polished again from starts 1e-3 away (search units), both REML
    # steps return the same parameters to the stated Newton step tolerance
    # (times 100 for the conversion to per-year values; measured: 1e-14).
    cal = calibrate(GM / "claimants_history.csv", GM / "areas.csv", 12)
    p = _panel(GM / "claimants_history.csv", GM / "areas.csv", 12)
    pp = cal.per_period
    t = p.y.shape[1]
    var_u, var_e = pp["area_sigma"] ** 2, cal.process.measurement_sigma ** 2
    k_w = var_u * ar1_gamma(pp["area_phi"], t) + var_e * np.eye(t)
    steps = {
        "within": (within_objective(p.dev, len(p.y) - len(p.region_ids)),
                   [pp["area_phi"], var_u, var_e], np.array([False, True, True])),
        "between": (between_objective(p.means, p.sizes, k_w),
                    [pp["national_phi"], pp["national_sigma"] ** 2, pp["regional_phi"],
                     pp["regional_sigma"] ** 2], np.array([False, True, False, True])),
    }
    for nll, optimum, is_var in steps.values():
        var0 = 1e-4
        x0 = np.where(is_var, np.array(optimum) / var0, optimum)
        fun = search_units(nll, is_var, var0)
        upper = np.where(is_var, np.inf, 1.0)
        assert np.abs(fun(x0)[1][x0 < upper]).max() < 1e-6  # stationary
        for sign in (1.0, -1.0):
            x, steps_taken = newton_polish(fun, np.minimum(x0 + sign * 1e-3, upper),
                                           np.zeros(x0.size), upper)
            assert steps_taken > 0
            np.testing.assert_allclose(x, x0, rtol=0, atol=100 * STEP_TOL)


def test_calibrate_at_its_own_estimates_reproduces_the_calibration():
    cal = calibrate(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12)
    again = calibrate_at(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12,
                         cal.per_period, cal.process.measurement_sigma)
    # the same code on the same machine: exact, but for the variances
    # squared back from their sds (an ulp, moved through the BLUP's solves:
    # measured 3e-14 at most, on states of order 0.01 to 5)
    assert again.process == cal.process
    for key in ("trend", "log_level", "area_state", "volatility_scale"):
        np.testing.assert_allclose(getattr(again, key), getattr(cal, key), rtol=0, atol=1e-12)
    assert again.loglik_within == pytest.approx(cal.loglik_within, rel=1e-14)
    assert again.loglik_between == pytest.approx(cal.loglik_between, rel=1e-14)
    with pytest.raises(ValueError, match="national_phi"):
        calibrate_at(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12,
                     {**cal.per_period, "national_phi": 1.5}, 0.01)
    with pytest.raises(ValueError, match="lacks 'area_sigma'"):
        calibrate_at(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12,
                     {k: v for k, v in cal.per_period.items() if k != "area_sigma"}, 0.01)


def test_a_search_that_does_not_converge_is_one_clear_error(monkeypatch):
    # never seen on a real or simulated panel; forced here to see the message
    monkeypatch.setattr("lobsim.validation.calibrate.newton_polish", lambda fun, x, lower, upper: (x, -1))
    with pytest.raises(ConfigError, match="did not converge to a Newton step") as info:
        calibrate(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12)
    assert "claimants_history.csv" in str(info.value) and "\n" not in str(info.value)


# -- recovery of known parameters ---------------------------------------------
# The bundled demo universe was simulated by the engine's own process
# (lobsim.model.demo, docs/model.md section 3) with the parameters in lobsim.model.demo.OUTCOMES,
# 200 areas in 10 regions over 60 months, and its true base-month state is
# stored beside it. The tolerances come from the sampling distribution of each
# estimate over 40 universes generated with seeds 1000-1039
# (tests/mc_calibration.py; the table is in docs/real_data.md): about 4
# standard deviations, and never less than the largest error seen there.
# A correct calibration passes; a per-period / per-year mix-up (a sigma off by
# sqrt(12)), a biased noise or trend-spread estimate fails. Regional and
# national persistence are not tested: with 10 regions and one national series
# over five years their sampling sds are 0.25-0.26 and 0.39.
TOLERANCE = {
    "area_phi": 0.42,  # sd 0.11 (claimants), 0.06; largest error 0.40 (an estimate of 1)
    "area_sigma": 0.010,  # sd 0.0021, 0.0023; largest error 0.0082
    "measurement_sigma": 0.0012,  # sd 0.0001, 0.0002; largest error 0.0006
    "regional_sigma": 0.022,  # sd 0.0048, 0.0051; largest error 0.0108
}
TREND_SD_TOLERANCE = 0.008  # sd 0.0019, 0.0018; largest error 0.0063
#: Per-year sd of the area trends the demo drew (lobsim.model.demo._TRENDS).
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


def test_a_volatility_scale_beyond_the_loaders_limit_is_refused(tmp_path):
    # the volatility file is read back with scales in [0, 100] (docs/config.md):
    # a calibration with an area beyond that is refused before anything is written
    cal = calibrate(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12)
    scale = np.array(cal.volatility_scale)
    scale[[3, 7]] = [250.0, 101.0]
    noisy = dataclasses.replace(cal, volatility_scale=scale)
    out = tmp_path / "u" / "universe.toml"
    with pytest.raises(ConfigError) as info:
        write_universe(noisy, out, areas="../areas.csv", history="h.csv")
    message = str(info.value)
    assert message.startswith(f"h.csv: area {cal.areas[3]!r}: volatility_scale = 250 ")
    assert "outside [0, 100]" in message and "(and 1 more)" in message and "\n" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())
    # at the limit it is written, and reads back
    scale[[3, 7]] = 100.0
    write_universe(dataclasses.replace(cal, volatility_scale=scale), out, areas=str(
        DEMO / "areas.csv"), history=str(DEMO / "claimants_history.csv"))
    assert read_universe(out).volatility_scale[3] == 100.0


def test_reading_something_else_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("[universe]\nareas = 'a.csv'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a universe written by") as info:
        read_universe(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        read_universe(tmp_path / "missing.toml")


# -- one BLAS thread ----------------------------------------------------------
def test_calibration_and_backtest_run_blas_on_one_thread(monkeypatch):
    # OpenBLAS's threads cost far more than they save on these small matrices
    # (docs/real_data.md): inside the fits every BLAS threadpoolctl finds, numpy's
    # and scipy's own copy, runs one thread, and the setting is restored after
    from threadpoolctl import threadpool_info

    from lobsim.validation import backtest
    from lobsim.validation import calibrate as calibration

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    seen: list[list[int]] = []

    def spy(fn):
        def wrapped(*args, **kwargs):
            seen.append(blas_threads())
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(calibration, "_fit_within", spy(calibration._fit_within))
    monkeypatch.setattr(calibration, "_at_parameters", spy(calibration._at_parameters))
    monkeypatch.setattr(backtest, "control_weights", spy(backtest.control_weights))
    cal = calibrate(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12)
    calibrate_at(DEMO / "claimants_history.csv", DEMO / "areas.csv", 12, cal.per_period,
                 cal.process.measurement_sigma)
    panel = backtest.read_panel(DEMO / "claimants_history.csv", DEMO / "areas.csv")
    backtest.placebo_backtest(panel, donors=(5,), weights=("synthetic",),
                              starts=(panel.periods[30],), describe_donors=False)
    assert len(seen) >= 4 and all(s and set(s) == {1} for s in seen), seen
    assert blas_threads() == before
