"""Standard errors of the calibration and its estimates on a boundary (issue 17)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from lobsim.cli.commands import main
from lobsim.model.process import simulate_ar1, stationary_sd
from lobsim.model.realdata import package_data
from lobsim.validation.calibrate import calibrate, calibrate_at
from lobsim.validation.universe_file import read_universe, write_universe

GM = package_data("gm")

#: Per-period parameters of the simulated panels, every one inside its
#: parameter space.
TRUTH = {"national_phi": 0.7, "national_sigma": 0.01, "regional_phi": 0.7,
         "regional_sigma": 0.01, "area_phi": 0.8, "area_sigma": 0.03,
         "measurement_sigma": 0.02}
#: Per-year trend mean and its sds between and within regions.
TRENDS = (0.01, 0.01, 0.02)


def _simulate(rng: np.random.Generator, truth: dict[str, float], regions: int,
              per_region: int, periods: int) -> np.ndarray:
    """Log outcomes (areas x periods) from the calibration's model, by the engine's AR(1)."""
    def component(name: str, series: int) -> np.ndarray:
        phi, sigma = truth[f"{name}_phi"], truth[f"{name}_sigma"]
        start = stationary_sd(phi, sigma) * rng.standard_normal(series)  # 0 for a walk
        return simulate_ar1(phi, sigma, start, rng.standard_normal((periods, series))).T

    n = regions * per_region
    region = np.repeat(np.arange(regions), per_region)
    mean, sd_region, sd_area = TRENDS
    trend = (mean + sd_region * rng.standard_normal(regions)[region]
             + sd_area * rng.standard_normal(n)) / 12
    level = 5.0 + 0.3 * rng.standard_normal(n)
    return (level[:, None] + trend[:, None] * np.arange(periods) + component("national", 1)
            + component("regional", regions)[region] + component("area", n)
            + truth["measurement_sigma"] * rng.standard_normal((n, periods)))


def _write_panel(folder: Path, logs: np.ndarray, per_region: int) -> tuple[Path, Path]:
    areas = ["area,region,x"]
    history = ["area,region,period,value"]
    for a, row in enumerate(logs):
        region = f"R{a // per_region}"
        areas.append(f"a{a:03d},{region},{a}")
        history += [f"a{a:03d},{region},{2000 + m // 12}-{m % 12 + 1:02d},{math.exp(v)!r}"
                    for m, v in enumerate(row)]
    (folder / "areas.csv").write_text("\n".join(areas) + "\n", encoding="utf-8")
    (folder / "history.csv").write_text("\n".join(history) + "\n", encoding="utf-8")
    return folder / "areas.csv", folder / "history.csv"


# -- the Hessian standard errors against a parametric bootstrap -------------------
#: Replicate panels of the bootstrap: 6 regions of 8 areas over 36 months, about
#: 0.25 s of CPU each.
REPLICATES = 30
#: The sd of the estimates over 30 replicates is itself uncertain by a relative
#: 1 / sqrt(2 (30 - 1)) = 0.13 (normal estimates), and the Hessian standard
#: error is an asymptotic approximation; 0.6 to 1.6 is about three of those
#: 0.13 either side of 1 plus the approximation's own error (measured on seeds
#: 17-19 of these panels: median se / sd 0.67-1.26 for these estimates), while
#: a wrong delta-method factor (a missing 2, a period for a year) is off by 2
#: to 12.
FACTOR = (0.6, 1.6)
#: Compared per period and per year. Left out: the national and regional
#: factors per year, where the delta method fails because their phi per period
#: is imprecise (se about 0.2: the yearly phi 0.7^12 = 0.014 is skewed, measured
#: ratios 0.02-0.26, and the yearly sigma depends on phi, 0.55-0.81;
#: docs/real_data.md says so), and the trend sd between 6 regions, on its
#: boundary in a third of the panels.
PER_PERIOD = ("national_phi", "national_sigma", "regional_phi", "regional_sigma",
              "area_phi", "area_sigma")
PER_YEAR = ("area_phi", "area_sigma", "measurement_sigma", "trend_mean", "trend_sd_area")


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory):
    rng = np.random.Generator(np.random.PCG64(17))
    folder = tmp_path_factory.mktemp("bootstrap")
    cals = []
    for _ in range(REPLICATES):
        areas, history = _write_panel(folder, _simulate(rng, TRUTH, 6, 8, 36), 8)
        cals.append(calibrate(history, areas, 12))
    return cals


def _estimate(cal, key: str, per_period: bool) -> float:
    if per_period:
        return cal.per_period[key]
    return getattr(cal.process, key) if hasattr(cal.process, key) else getattr(cal, key)


@pytest.mark.parametrize(("key", "per_period"), [(k, True) for k in PER_PERIOD]
                         + [(k, False) for k in PER_YEAR])
def test_hessian_standard_errors_match_the_bootstrap_sd(bootstrap, key, per_period):
    estimates = np.array([_estimate(c, key, per_period) for c in bootstrap])
    ses = np.array([(c.standard_errors_per_period if per_period else c.standard_errors)[key]
                    for c in bootstrap])
    # a standard error is NaN exactly when the estimate is on its boundary
    assert np.array_equal(np.isnan(ses), [key in c.on_boundary for c in bootstrap])
    assert np.isnan(ses).sum() <= 0.2 * REPLICATES
    ratio = float(np.nanmedian(ses)) / float(estimates.std(ddof=1))
    assert FACTOR[0] < ratio < FACTOR[1], (key, ratio)


# -- estimates on the boundary of their parameter space ---------------------------
def test_a_random_walk_factor_is_on_its_boundary_with_no_standard_error(tmp_path):
    # Regional factors simulated as random walks (phi = 1), 10 regions of 4
    # areas over 48 months: the REML estimate of phi lands on the bound in
    # about half of such panels (a parameter on its boundary; 3 of seeds 0-7),
    # for this seed exactly at 1, the rest well inside.
    truth = {**TRUTH, "regional_phi": 1.0}
    rng = np.random.Generator(np.random.PCG64(3))
    areas, history = _write_panel(tmp_path, _simulate(rng, truth, 10, 4, 48), 4)
    cal = calibrate(history, areas, 12)
    assert cal.per_period["regional_phi"] == 1.0 and cal.process.regional_phi == 1.0
    assert cal.on_boundary == ("regional_phi",)
    assert math.isnan(cal.standard_errors["regional_phi"])
    assert math.isnan(cal.standard_errors_per_period["regional_phi"])
    # the rest have standard errors, the regional sigma's given phi = 1
    for key, se in cal.standard_errors.items():
        assert key == "regional_phi" or (math.isfinite(se) and se > 0.0), key


def test_boundaries_at_given_parameters_name_the_estimates(tmp_path):
    # calibrate_at puts the parameters where a test wants them: a phi at 0, a
    # noise sd at 0 and a sigma at 0, whose phi is then not identified
    rng = np.random.Generator(np.random.PCG64(4))
    areas, history = _write_panel(tmp_path, _simulate(rng, TRUTH, 4, 6, 30), 6)
    per_period = {**TRUTH, "national_phi": 0.0, "regional_sigma": 0.0}
    del per_period["measurement_sigma"]
    cal = calibrate_at(history, areas, 12, per_period, measurement_sigma=0.0)
    assert cal.on_boundary[:3] == ("national_phi", "regional_sigma", "measurement_sigma")
    for key in ("national_phi", "regional_phi", "regional_sigma", "measurement_sigma"):
        assert math.isnan(cal.standard_errors[key]), key
    assert "regional_phi" not in cal.on_boundary  # not identified, not on a bound
    assert math.isfinite(cal.standard_errors["national_sigma"])


# -- the command line and the universe file ---------------------------------------
def test_cli_prints_standard_errors_and_one_warning_per_boundary(tmp_path, capsys):
    out = tmp_path / "u.toml"
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("component"))
    assert header.split() == ["component", "phi/year", "se", "sigma/year", "log", "se",
                              "phi/period", "se", "sigma/period", "log", "se"]
    rows = {line.split()[0]: line.split() for line in lines if line.split()
            and line.split()[0] in ("national", "regional", "area", "noise")}
    # Greater Manchester's authority factors are random walks (docs/real_data.md)
    assert rows["regional"][1:3] == ["1.0000", "bound"]
    assert rows["regional"][5:7] == ["1.0000", "bound"]
    assert float(rows["area"][2]) > 0 and float(rows["noise"][2]) > 0
    assert "(se " in next(line for line in lines if line.startswith("trend per year"))
    warnings = captured.err.splitlines()
    assert warnings == [
        "lobsim: warning: regional phi/year 1.0000 is on its boundary (a random walk within "
        "the 34-month history): its standard error is undefined and the simulation treats "
        "it as a unit root"]

    # the universe records them, and reads back as before
    doc = tomllib.loads(out.read_text(encoding="utf-8"))
    se = doc["calibration"]["standard_errors"]
    assert se["on_boundary"] == ["regional_phi"] and math.isnan(se["regional_phi"])
    assert se["area_sigma"] == pytest.approx(float(rows["area"][4]), abs=5e-5)
    assert set(se["per_period"]) == {"national_phi", "national_sigma", "regional_phi",
                                     "regional_sigma", "area_phi", "area_sigma"}
    assert read_universe(out).process.regional_phi == 1.0

    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out), "--force",
                 "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    assert out.is_file()


def test_standard_errors_are_written_with_full_precision(tmp_path):
    cal = calibrate(GM / "claimants_history.csv", GM / "areas.csv", 12)
    write_universe(cal, tmp_path / "u.toml", areas="lobsim:gm/areas.csv",
                   history="lobsim:gm/claimants_history.csv")
    se = tomllib.loads((tmp_path / "u.toml").read_text(encoding="utf-8"))[
        "calibration"]["standard_errors"]
    for key, value in cal.standard_errors.items():
        assert se[key] == value or (math.isnan(se[key]) and math.isnan(value)), key
