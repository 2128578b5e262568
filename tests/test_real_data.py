"""The bundled Greater Manchester data, its calibration, the real example and the CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import sys
import tomllib
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from lobsim.cli.commands import main
from lobsim.errors import ConfigError, UnknownIdError
from lobsim.model.areas import read_areas, read_outcome
from lobsim.model.config import load_config
from lobsim.model.realdata import convert_gm, package_data, read_gm_wards, ward_names
from lobsim.validation.calibrate import calibrate, calibrate_at
from lobsim.validation.sensitivity import bond_sensitivity
from lobsim.validation.universe_file import read_universe

GM = package_data("gm")
SOURCE = GM / "source" / "wards_monthly.csv"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gm_ward_bond.toml"
PREFIX = "lobsim: error: "


# -- (1) the data in the product ---------------------------------------------------
def test_converting_the_shipped_source_reproduces_the_stored_files(tmp_path):
    result = convert_gm(SOURCE, tmp_path)
    assert result.dropped == {}
    assert sorted(result.files) == ["areas.csv", "claimants_history.csv", "wards.csv"]
    for name in result.files:
        assert (tmp_path / name).read_bytes() == (GM / name).read_bytes(), name


def test_the_source_is_the_published_file_with_its_attribution():
    # The published README (Trafford Data Lab's compilation of DWP / Nomis
    # figures) ships verbatim beside the data, with the licence statement.
    readme = (GM / "source" / "README.md").read_text(encoding="utf-8")
    assert "Open Government Licence v3.0" in readme
    ours = (GM / "README.md").read_text(encoding="utf-8")
    assert "Contains public sector information licensed under the Open Government Licence v3.0" in ours
    header = SOURCE.read_text(encoding="utf-8").splitlines()[0]
    assert header == "date,count,rate,wd15cd,wd15nm,lad15cd,lad15nm"


def test_universe_shape_and_values():
    # 215 wards in 10 authorities, 34 months (the source README), counts
    # rounded to 5 as published, none zero (the smallest is 20)
    areas = read_areas(GM / "areas.csv")
    assert len(areas.ids) == 215 and len(set(areas.regions)) == 10
    assert set(areas.regions) == {"Bolton", "Bury", "Manchester", "Oldham", "Rochdale",
                                  "Salford", "Stockport", "Tameside", "Trafford", "Wigan"}
    data = read_outcome(GM / "claimants_history.csv", None, areas, 12)
    assert data.periods[0] == "2015-01" and data.periods[-1] == "2017-10"
    assert len(data.periods) == 34
    counts = np.rint(np.exp(data.log_history))
    assert (counts % 5 == 0).all() and counts.min() == 20
    names = ward_names()
    assert names["E05000704"] == "Harpurhey"
    assert sorted(names) == sorted(areas.ids)


def test_covariates_are_2015_means_of_the_source():
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    with open(SOURCE, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["date"].startswith("2015-"):
                s = sums[row["wd15cd"]]
                s[0] += float(row["rate"])
                s[1] += math.log(float(row["count"]))
                s[2] += 1
    areas = read_areas(GM / "areas.csv")
    for i, area in enumerate(areas.ids):
        rate, log_count, n = sums[area]
        assert n == 12
        assert areas.covariates[i, 0] == pytest.approx(rate / n, abs=5e-5)
        assert areas.covariates[i, 1] == pytest.approx(log_count / n, abs=5e-7)


def _source(rows: list[str]) -> str:
    return "date,count,rate,wd15cd,wd15nm,lad15cd,lad15nm\n" + "\n".join(rows) + "\n"


def _ward_rows(code: str, counts: list[int], lad: str = "Bolton") -> list[str]:
    return [f"2015-{m + 1:02d}-01,{c},1.0,{code},Ward {code},E0800000{len(lad)},{lad}"
            for m, c in enumerate(counts)]


def test_a_ward_with_a_zero_count_is_dropped_with_its_reason(tmp_path):
    rows = (_ward_rows("W1", [10] * 12) + _ward_rows("W2", [5] * 11 + [0])
            + _ward_rows("W3", [20] * 12, "Bury"))
    (tmp_path / "src.csv").write_text(_source(rows), encoding="utf-8")
    result = convert_gm(tmp_path / "src.csv", tmp_path / "out")
    assert list(result.dropped) == ["W2"] and "0" in result.dropped["W2"]
    areas = read_areas(tmp_path / "out" / "areas.csv")
    assert areas.ids == ("W1", "W3") and areas.regions == ("Bolton", "Bury")
    assert areas.covariates[1, 1] == pytest.approx(math.log(20))


@pytest.mark.parametrize(("rows", "match"), [
    (_ward_rows("W1", [10] * 12) + _ward_rows("W2", [10] * 11), "has no row for 2015-12"),
    ([*_ward_rows("W1", [10] * 11), "2015-12-01,x,1.0,W1,Ward W1,E08000006,Bolton"],
     "must be numbers"),
    ([*_ward_rows("W1", [10] * 11), "2015-12-15,10,1.0,W1,Ward W1,E08000006,Bolton"],
     "first of a month"),
    ([*_ward_rows("W1", [10] * 12), "2015-12-01,10,1.0,W1,Ward W1,E08000006,Bolton"],
     "two rows"),
])
def test_bad_source_files_are_one_line_errors(tmp_path, rows, match):
    (tmp_path / "src.csv").write_text(_source(rows), encoding="utf-8")
    with pytest.raises(ConfigError, match=match) as info:
        read_gm_wards(tmp_path / "src.csv")
    assert "\n" not in str(info.value) and "src.csv" in str(info.value)


# -- (2) the bundled calibration -----------------------------------------------
# The bundled universe is one run of the calibrator on one machine. A fresh run
# elsewhere must agree with it in what the data determine, not in an
# optimizer's last digits (byte-for-byte regeneration is a maintainer's job:
# tools/regenerate_gm_universe.py, see src/lobsim/data/gm/README.md).
#
# Sampling sd per year of each estimate, from the project's Monte Carlo
# calibration study (`python tests/mc_calibration.py 40 1000`, the claimants
# table of docs/real_data.md: 200 areas in 10 regions over 60 months). Greater
# Manchester's 34 months give larger sds, so these are on the strict side.
SAMPLING_SD = {
    "national_phi": 0.39, "national_sigma": 0.014, "regional_phi": 0.25,
    "regional_sigma": 0.0048, "area_phi": 0.11, "area_sigma": 0.0021,
    "measurement_sigma": 0.0001, "trend_mean": 0.022, "trend_sd_region": 0.0047,
    "trend_sd_area": 0.0019,
}
#: A fresh estimate may differ from the bundled one by this fraction of its
#: sampling sd, or a relative 1e-3: differences no output could show (the
#: calibration is the likelihood's optimum to about 1e-10, docs/real_data.md),
#: while another local optimum of the national likelihood or a changed method
#: moves estimates by a good part of an sd.
SD_FRACTION = 1e-3


@pytest.fixture(scope="module")
def fresh():
    return calibrate(GM / "claimants_history.csv", GM / "areas.csv", 12)


@pytest.fixture(scope="module")
def bundled():
    doc = tomllib.loads((GM / "universe.toml").read_text(encoding="utf-8"))
    return read_universe("lobsim:gm/universe.toml"), doc["calibration"]


def _estimate(cal_or_universe, calibration_table, key):
    if key.startswith("trend"):
        return calibration_table[key] if calibration_table else getattr(cal_or_universe, key)
    return getattr(cal_or_universe.process, key)


def test_a_fresh_calibration_is_at_least_as_likely_as_the_bundled_one(fresh, bundled):
    _, stored = bundled
    for step in ("within", "between"):
        assert getattr(fresh, f"loglik_{step}") >= stored[f"loglik_{step}"] - 1e-6, step


def test_a_fresh_calibration_agrees_with_the_bundled_one_within_sampling_error(fresh, bundled):
    u, stored = bundled
    for key, sd in SAMPLING_SD.items():
        ours, theirs = _estimate(fresh, None, key), _estimate(u, stored, key)
        assert abs(ours - theirs) <= max(SD_FRACTION * sd, 1e-3 * abs(theirs)), (key, ours,
                                                                                   theirs)
    assert fresh.process.national_loading == fresh.process.regional_loading == 1.0


def test_the_bundled_state_is_the_calibration_at_the_bundled_parameters(bundled):
    # Steps 3 and 4 at the stored per-period parameters: linear algebra on
    # well-conditioned matrices, so any CPU gives the stored state to far
    # better than 1e-10 (measured: 1e-13 for the area states, 1e-15 for the
    # rest, across OpenBLAS's kernels); the REML objectives at those
    # parameters give the stored log likelihoods to 1e-8, a relative 1e-12 of
    # sums of 7,000 terms (measured: 0).
    u, stored = bundled
    at = calibrate_at(GM / "claimants_history.csv", GM / "areas.csv", 12,
                      stored["per_period"], u.process.measurement_sigma)
    for key in ("loglik_within", "loglik_between"):
        assert getattr(at, key) == pytest.approx(stored[key], rel=0, abs=1e-8), key
    # per-year parameters: the same scalar conversion of the same numbers
    for key, value in asdict(u.process).items():
        assert getattr(at.process, key) == pytest.approx(value, rel=1e-12), key
    for key in ("trend", "log_level", "area_state"):
        np.testing.assert_allclose(getattr(at, key), getattr(u.data, key), rtol=0, atol=1e-10)
    assert at.regional_state.keys() == u.data.regional_state.keys()
    for region, value in u.data.regional_state.items():
        assert at.regional_state[region] == pytest.approx(value, rel=0, abs=1e-10), region
    assert at.national_state == pytest.approx(u.data.national_state, rel=0, abs=1e-10)
    np.testing.assert_allclose(at.volatility_scale, u.volatility_scale, rtol=0, atol=1e-10)
    for key in ("trend_mean", "trend_sd_region", "trend_sd_area", "volatility_slope"):
        assert getattr(at, key) == pytest.approx(stored[key], rel=0, abs=1e-10), key


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="OPENBLAS_CORETYPE names x86 kernels")
def test_the_calibration_does_not_depend_on_the_blas_kernels(fresh):
    # OpenBLAS picks its kernels by CPU (SkylakeX on the Xeon of issue 13,
    # Haswell on the AMD EPYC the bundled file came from);
    # OPENBLAS_CORETYPE=Prescott forces its SSE3 ones, which add in another
    # order and do not fuse multiply-adds. The estimates are the likelihood's
    # optimum to a Newton step of 1e-10 (in phi, and in a variance over its
    # unit, where the variances are 1 to 10 here), so they agree to 1e-9
    # relative, or 1e-12 absolute for a parameter near 0 (measured: 1e-14).
    code = ("import json; from lobsim.validation.calibrate import calibrate; "
            "from lobsim.model.realdata import package_data; g = package_data('gm'); "
            "c = calibrate(g / 'claimants_history.csv', g / 'areas.csv', 12); "
            "print(json.dumps({**c.per_period, 'noise': c.process.measurement_sigma}))")
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott"}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    other = json.loads(run.stdout)
    ours = {**fresh.per_period, "noise": fresh.process.measurement_sigma}
    for key, value in ours.items():
        assert other[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_gm_calibration_findings():
    # What docs/real_data.md reports: authority factors drift as random
    # walks, ward deviations are short-lived, and the variance of a ward is
    # inversely proportional to its size (slope near -1, not 0).
    u = read_universe("lobsim:gm/universe.toml")
    assert u.process.regional_phi > 0.95
    assert u.process.area_phi < 0.2
    doc = tomllib.loads((GM / "universe.toml").read_text(encoding="utf-8"))
    assert -1.4 < doc["calibration"]["volatility_slope"] < -0.7


# -- (5) the real example -------------------------------------------------------------
def test_gm_ward_bond_uses_the_calibration_and_the_appendix_terms():
    cfg = load_config(CONFIG)
    u = read_universe("lobsim:gm/universe.toml")
    (bond,) = cfg.bonds
    outcome = cfg.outcome(bond.outcome)
    assert outcome.process == u.process
    assert outcome.state == GM / "claimants_state.csv"
    # Harpurhey's October 2017 count, and a target of 10% of it (Appendix: 5,000 of 50,000)
    base = math.exp(u.data.log_base[u.areas.index(bond.area)])
    assert bond.area == "E05000704" and base == pytest.approx(580)
    assert bond.target_units == pytest.approx(0.10 * base)
    assert bond.price_per_unit == 2340.0  # 2000 x (1 + 0.10 + 0.07), Appendix
    assert bond.baseline is not None and bond.baseline.units == base


def test_an_unknown_bond_of_the_sensitivity_is_one_line():
    with pytest.raises(UnknownIdError, match=r"no bond 'gm-ward' \(known: 'harpurhey-jsa'"):
        bond_sensitivity(CONFIG, bond="gm-ward", donors=[5], weights=["equal"], scenarios=10)


def test_gm_ward_bond_sensitivity_runs_on_the_engine():
    rows = bond_sensitivity(CONFIG, donors=[5, 20], weights=["equal"], scenarios=4000, seed=3)
    assert [(r.weights, r.donors) for r in rows] == [("equal", 5), ("equal", 20)]
    for r in rows:
        assert 0.2 < r.p_default < 0.8
        # a programme that does nothing is paid for at least 10% of the target
        # a third of the time or more: the backtest's 45% (docs/real_data.md)
        assert 0.3 < r.p_false_positive < 0.65
        assert r.p_full_target < r.p_false_positive
        assert 0.5 < r.noise_sd < 2.0


# -- the command line -------------------------------------------------------------------
def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    return lines[0]


def test_cli_calibrate_writes_a_universe(tmp_path, capsys, fresh):
    out = tmp_path / "u" / "universe.toml"
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Calibrated 215 areas in 10 regions over 34 periods" in text
    doc = tomllib.loads(out.read_text(encoding="utf-8"))
    assert doc["universe"] == {"areas": "lobsim:gm/areas.csv", "period": "month"}
    assert doc["outcomes"][0]["history"] == "lobsim:gm/claimants_history.csv"
    # the calibrator's output on this machine, written and read back exactly
    written = read_universe(out)
    assert written.process == fresh.process
    np.testing.assert_array_equal(written.data.log_level, fresh.log_level)
    # never overwritten without --force
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out)]) == 2
    assert "pass --force" in _one_line(capsys.readouterr().err)
    assert main(["calibrate", "lobsim:gm/claimants_history.csv", "--out", str(out),
                 "--force"]) == 0


def test_cli_backtest_writes_tables_and_the_model_check(tmp_path, capsys):
    out = tmp_path / "bt"
    status = main(["backtest", "lobsim:gm/claimants_history.csv", "--donors", "3,10",
                   "--starts", "2016-01,2016-06", "--model", "lobsim:gm/universe.toml",
                   "--replicates", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert status == 0
    assert "P(M>=10% T)" in text and "Model check" in text
    for name in ("placebos.csv", "summary.csv", "summary.md", "model_check.csv",
                 "model_check.md", "qq.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "summary.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["weights"], r["donors"], r["start"]) for r in rows} >= {
        ("equal", "3", "all"), ("synthetic", "10", "2016-06")}
    assert "Harpurhey" in (out / "placebos.csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(("args", "fragment"), [
    (["backtest", "missing.csv"], "no such history file"),
    (["backtest", "lobsim:gm/claimants_history.csv", "--donors", "3,x"], "whole numbers"),
    (["backtest", "lobsim:gm/claimants_history.csv", "--donors", "500"], "between 1 and 214"),
    (["backtest", "lobsim:gm/claimants_history.csv", "--weights", "equal,median"],
     "use equal, synthetic"),
    (["backtest", "lobsim:gm/claimants_history.csv", "--pre", "30"], "do not fit"),
    (["backtest", "lobsim:gm/claimants_history.csv", "--starts", "2030-01"], "not a period"),
    (["calibrate", "lobsim:gm/claimants_history.csv", "--out", "x.txt"], "use a .toml path"),
])
def test_cli_bad_input_is_one_line(args, fragment, capsys):
    assert main(args) == 2
    assert fragment in _one_line(capsys.readouterr().err)


def test_cli_bad_history_file_is_one_line(tmp_path, capsys):
    (tmp_path / "areas.csv").write_text("area,region,x\na,R,1\nb,R,2\n", encoding="utf-8")
    (tmp_path / "h.csv").write_text("area,region,period,value\na,R,2015-01,-3\n",
                                    encoding="utf-8")
    assert main(["calibrate", str(tmp_path / "h.csv"), "--out", str(tmp_path / "u.toml")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "h.csv: row 2: value must be a number in [1e-06, 1e+12], got '-3'" in line
