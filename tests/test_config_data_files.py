"""Data files (areas, history, state, volatility): malformed ones are one line naming the
file, the row and what is wrong, through every command that reads them; period labels
sort in time; byte-order marks are accepted; what the config needs from its data
(pre-periods, period length, the log-level envelope) is checked when it loads.

Each case starts from a small valid universe written by :func:`universe` and breaks
one thing in one file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from lobsim.cli.commands import main
from lobsim.errors import ConfigError
from lobsim.model.areas import read_areas, read_outcome, read_volatility
from lobsim.model.config import load_config
from lobsim.model.realdata import package_data, read_gm_wards, ward_names
from lobsim.validation.calibrate import calibrate
from lobsim.validation.predictor_panel import PredictorPanel
from lobsim.validation.universe_file import read_universe, write_universe

AREAS = [(f"a{i}", f"R{i // 3}") for i in range(6)]
PERIODS = 12  # integer labels 1..12, unpadded: "10" must sort after "9"
BOM = "\ufeff"


def value(a: int, t: int) -> float:
    """A history with variation beyond straight lines (the calibration needs some)."""
    return 1000.0 + 100.0 * a + 5.0 * t + float((7 * a + 13 * t) % 11)


def files() -> dict[str, str]:
    areas = "area,region,x\n" + "".join(f"{a},{r},{i}\n" for i, (a, r) in enumerate(AREAS))
    history = "area,region,period,value\n" + "".join(
        f"{a},{r},{t},{value(i, t)!r}\n" for i, (a, r) in enumerate(AREAS)
        for t in range(1, PERIODS + 1))
    state = "area,trend,log_level,area_state,regional_state,national_state\n" + "".join(
        f"{a},0.01,{math.log(value(i, PERIODS))!r},0.0,0.0,0.0\n"
        for i, (a, _) in enumerate(AREAS))
    volatility = "area,region,volatility_scale\n" + "".join(f"{a},{r},1.0\n" for a, r in AREAS)
    return {"areas.csv": areas, "history.csv": history, "state.csv": state,
            "volatility.csv": volatility, "config.toml": CONFIG}


CONFIG = """\
[simulation]
scenarios = 64
seed = 3

[[departments]]
id = "DWP"

[[agencies]]
id = "JCP"
department = "DWP"

[[interventions]]
id = "prog"
success_mean = 0.8
success_sd = 0.1
ramp_years = 1.0

[[providers]]
id = "cso"
failure_hazard = 0.02

[universe]
areas = "areas.csv"
period = "month"

[[outcomes]]
id = "jsa"
kind = "count"
history = "history.csv"
state = "state.csv"
volatility = "volatility.csv"

[outcomes.process]
national_phi = 0.9
national_sigma = 0.05
regional_phi = 0.8
regional_sigma = 0.03
area_phi = 0.6
area_sigma = 0.03
measurement_sigma = 0.01

[[bonds]]
id = "b0"
provider = "cso"
area = "a0"
outcome = "jsa"
intervention = "prog"
target_units = 50
cost_per_unit = 2000.0
maturity = 3.0

[[bonds.payers]]
agency = "JCP"
share = 1.0

[bonds.control]
donors = 2
weights = "synthetic"
pre_periods = 6
"""


def universe(folder: Path, **changes: Callable[[str], str] | str) -> Path:
    """Write the valid universe into ``folder``, each named file changed; return the config."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files().items():
        change = changes.get(name.replace(".", "_"))
        if callable(change):
            text = change(text)
        elif change is not None:
            text = change
        (folder / name).write_text(text, encoding="utf-8")
    return folder / "config.toml"


def sub(old: str, new: str, count: int = 1) -> Callable[[str], str]:
    def apply(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, count)
    return apply


def subs(*pairs: tuple[str, str]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        for old, new in pairs:
            text = sub(old, new)(text)
        return text
    return apply


def drop_rows(predicate: Callable[[str], bool]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        lines = text.splitlines(keepends=True)
        return lines[0] + "".join(line for line in lines[1:] if not predicate(line))
    return apply


def history_row(a: int, t: int) -> int:
    """CSV row number (header = row 1) of area ``a``, period ``t`` in the history."""
    return 2 + a * PERIODS + (t - 1)


RUN = ("run",)
CALIBRATE = ("calibrate",)
BACKTEST = ("backtest",)
EVERY = RUN + CALIBRATE + BACKTEST


class Case(NamedTuple):
    changes: dict[str, Callable[[str], str] | str]
    commands: tuple[str, ...]
    file: str  # the file the message names
    where: str | None  # "row N" or a TOML path
    fragment: str
    latin1: str | None = None  # a file re-encoded as latin-1


H, S, V, A = "history_csv", "state_csv", "volatility_csv", "areas_csv"

CASES: dict[str, Case] = {
    # -- history -------------------------------------------------------------------
    "history-header-only": Case({H: "area,region,period,value\n"}, EVERY, "history.csv", None,
                                "has no data rows; a history needs at least 3 periods"),
    "history-bad-header": Case({H: sub("area,region,period,value", "area,region,month,value")},
                               EVERY, "history.csv", "row 1",
                               "the header must be 'area,region,period,value', got "
                               "'area,region,month,value'"),
    "history-short-row": Case({H: sub("a0,R0,3,", "a0,R0,")}, EVERY, "history.csv",
                              f"row {history_row(0, 3)}", "has 3 fields, expected 4"),
    "history-unknown-area": Case({H: sub("a1,R0,5,", "zz,R0,5,")}, EVERY, "history.csv",
                                 f"row {history_row(1, 5)}",
                                 "area 'zz' is not in the areas table"),
    "history-wrong-region": Case({H: sub("a4,R1,2,", "a4,R0,2,")}, EVERY, "history.csv",
                                 f"row {history_row(4, 2)}",
                                 "area 'a4' is in region 'R1' in the areas table, not 'R0'"),
    "history-duplicate-period": Case(
        {H: sub("a2,R0,7,", "a2,R0,6,")}, EVERY, "history.csv", f"row {history_row(2, 7)}",
        f"area 'a2' has a second value for period '6' (first at row {history_row(2, 6)})"),
    "history-subnormal-value": Case(
        {H: sub(f"a0,R0,4,{value(0, 4)!r}", "a0,R0,4,5e-324")}, EVERY, "history.csv",
        f"row {history_row(0, 4)}", "value must be a number in [1e-06, 1e+12], got '5e-324'"),
    "history-huge-value": Case(
        {H: sub(f"a3,R1,9,{value(3, 9)!r}", "a3,R1,9,1e300")}, EVERY, "history.csv",
        f"row {history_row(3, 9)}", "value must be a number in [1e-06, 1e+12], got '1e300'"),
    "history-text-value": Case(
        {H: sub(f"a5,R1,1,{value(5, 1)!r}", "a5,R1,1,many")}, EVERY, "history.csv",
        f"row {history_row(5, 1)}", "value must be a number in [1e-06, 1e+12], got 'many'"),
    "history-missing-value": Case(
        {H: drop_rows(lambda line: line.startswith("a1,R0,8,"))}, EVERY, "history.csv", None,
        "area 'a1' has no value for period '8'"),
    "history-text-label": Case(
        {H: lambda text: text.replace(",1,", ",p1,")}, EVERY, "history.csv",
        f"row {history_row(0, 1)}", "period 'p1' is neither a whole number nor an ISO date"),
    "history-mixed-labels": Case(
        {H: sub("a0,R0,2,", "a0,R0,2015-02,")}, EVERY, "history.csv",
        f"row {history_row(0, 2)}",
        f"period '2015-02' is a month, but row {history_row(0, 1)} has the integer '1'"),
    "history-gap": Case(
        {H: lambda text: drop_rows(lambda line: line.split(",")[2] == "5")(text)}, EVERY,
        "history.csv", None, "has no period between '4' and '6'; periods must be consecutive"),
    "history-two-periods": Case(
        {H: drop_rows(lambda line: int(line.split(",")[2]) > 2)}, EVERY, "history.csv", None,
        "has 2 periods; a history needs at least 3"),
    "history-not-utf8": Case(
        {H: sub("a0,R0,1,", "a\xe90,R0,1,")}, EVERY, "history.csv", None,
        "is not UTF-8 text; save it as UTF-8", latin1="history.csv"),
    # -- state -----------------------------------------------------------------------
    "state-duplicate-area": Case(
        {S: lambda text: text + text.splitlines(keepends=True)[2]}, RUN, "state.csv", "row 8",
        "area 'a1' has a second row (first at row 3)"),
    "state-huge-log-level": Case(
        {S: sub(f"a2,0.01,{math.log(value(2, PERIODS))!r}", "a2,0.01,800")}, RUN, "state.csv",
        "row 4", "log_level must be a number in [-20, 30], got '800'"),
    "state-huge-trend": Case({S: sub("a3,0.01,", "a3,1e300,")}, RUN, "state.csv", "row 5",
                             "trend must be a number in [-1, 1], got '1e300'"),
    "state-missing-area": Case({S: drop_rows(lambda line: line.startswith("a4,"))}, RUN,
                               "state.csv", None, "has no row for area 'a4'"),
    # -- volatility ------------------------------------------------------------------
    "volatility-duplicate-area": Case(
        {V: lambda text: text + "a0,R0,2.0\n"}, RUN, "volatility.csv", "row 8",
        "area 'a0' has a second row (first at row 2)"),
    "volatility-wrong-region": Case({V: sub("a5,R1,", "a5,R0,")}, RUN, "volatility.csv",
                                    "row 7", "area 'a5' is in region 'R1' in the areas table"),
    "volatility-huge-scale": Case({V: sub("a1,R0,1.0", "a1,R0,1e30")}, RUN, "volatility.csv",
                                  "row 3", "volatility_scale must be a number in [0, 100]"),
    # -- areas -----------------------------------------------------------------------
    "areas-duplicate-area": Case({A: lambda text: text + "a1,R0,9\n"}, EVERY, "areas.csv",
                                 "row 8", "lists area 'a1' again (first at row 3)"),
    "areas-huge-covariate": Case({A: sub("a2,R0,2", "a2,R0,1e300")}, EVERY, "areas.csv",
                                 "row 4", "covariate 'x' must be a number in [-1e+15, 1e+15]"),
    "areas-unnamed-column": Case({A: lambda text: text.replace("\n", ",\n")}, EVERY,
                                 "areas.csv", "row 1", "column 4 has no name"),
    # -- the config against its data -------------------------------------------------
    "pre-periods-beyond-history": Case(
        {"config_toml": sub("pre_periods = 6", "pre_periods = 100000")}, RUN, "config.toml",
        "bonds[0].control.pre_periods",
        "is 100000, but the history of outcome 'jsa' has 12 periods (1 to 12); use at most 12"),
    "monthly-labels-in-a-yearly-universe": Case(
        {"config_toml": sub('period = "month"', 'period = "year"'),
         H: lambda text: "".join(
             line if i == 0 else line.replace(f",{line.split(',')[2]},",
                                              f",2015-{int(line.split(',')[2]):02d},")
             for i, line in enumerate(text.splitlines(keepends=True)))},
        RUN, "config.toml", "universe.period",
        "is 'year', but the history of outcome 'jsa' has monthly periods (2015-12): "
        "set period = 'month'"),
    # a random walk of sd 5 a year over 30 years: sd^2 = 25 x 30 + 0.05^2 (1 - 0.9^60) /
    # 0.19 + 0.03^2 (1 - 0.8^60) / 0.36 + 0.01^2 = 750.0157 (docs/config.md, the
    # envelope), 12 sd = 328.64, plus the trend 0.01 x 30 and half the noise variance
    "log-level-envelope": Case(
        {"config_toml": subs(("area_phi = 0.6", "area_phi = 1.0"),
                             ("area_sigma = 0.03", "area_sigma = 5.0"),
                             ("maturity = 3.0", "maturity = 30.0"))},
        RUN, "config.toml", "outcomes[0].process",
        "in area 'a0' the simulated log level can move 328.9 from its observed base within "
        "the 30 years of the bonds on outcome 'jsa' (trend 0.3, states 0, 12 sd 329); lobsim "
        "keeps it within 150"),
    # -- what the calibration needs ---------------------------------------------------
    "calibration-constant-history": Case(
        {H: lambda text: "".join(line if i == 0 else ",".join(line.split(",")[:3]) + ",100\n"
                                 for i, line in enumerate(text.splitlines(keepends=True)))},
        CALIBRATE, "history.csv", None,
        "has no variation of the areas about their regional means beyond straight lines"),
}


def _command(name: str, config: Path, out: Path) -> list[str]:
    folder = config.parent
    if name == "run":
        return ["run", str(config), "--quiet"]
    data = [str(folder / "history.csv"), "--areas", str(folder / "areas.csv"),
            "--period", "month"]
    if name == "calibrate":
        return ["calibrate", *data, "--out", str(out / "u.toml")]
    return ["backtest", *data, "--pre", "3", "--horizon", "2", "--donors", "2"]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_data_is_one_line(case: Case, tmp_path: Path, capsys) -> None:
    config = universe(tmp_path / "u", **case.changes)
    if case.latin1 is not None:
        path = config.parent / case.latin1
        path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    for command in case.commands:
        status = main(_command(command, config, tmp_path / "out"))
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert status == 2 and len(lines) == 1, (command, captured.err)
        where = f"{config.parent / case.file}: " + (f"{case.where}: " if case.where else "")
        assert lines[0].startswith(f"lobsim: error: {where}"), (command, lines[0])
        assert case.fragment in lines[0], (command, lines[0])


def test_the_valid_universe_runs_calibrates_and_backtests(tmp_path: Path, capsys) -> None:
    """The starting point of every case above is valid for every command."""
    config = universe(tmp_path / "u")
    for command in EVERY:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning on a successful command
            assert main(_command(command, config, tmp_path / "out")) == 0, command
        err = capsys.readouterr().err.splitlines()
        # a 12-month panel of 8 areas puts estimates on their boundary: calibrate
        # says so, one line each (docs/real_data.md, Standard errors)
        assert all(line.startswith("lobsim: warning: ") and "is on its boundary" in line
                   for line in err) and (command == "calibrate" or not err), (command, err)


# --------------------------------------------------------------------------
# Period labels sort in time
# --------------------------------------------------------------------------
def test_unpadded_integer_labels_sort_as_numbers(tmp_path: Path) -> None:
    config = universe(tmp_path / "u")
    areas = read_areas(config.parent / "areas.csv")
    data = read_outcome(config.parent / "history.csv", None, areas, 12)
    # as text, "9" > "12" and the base period would be "9"
    assert data.periods == tuple(str(t) for t in range(1, PERIODS + 1))
    np.testing.assert_array_equal(data.log_base,
                                  np.log([value(a, PERIODS) for a in range(len(AREAS))]))


@pytest.mark.parametrize("label", [
    lambda t: f"{t - 12}",                                  # -11 .. 0
    lambda t: f"{2009 + (t + 8) // 12}-{(t + 8) % 12 + 1:02d}",  # 2009-10 .. 2010-09
    lambda t: f"{2000 + (t - 1) // 4}-Q{(t - 1) % 4 + 1}",  # 2000-Q1 .. 2002-Q4
    lambda t: f"2015-{1 + (t - 1) // 2:02d}-{1 + 14 * ((t - 1) % 2):02d}",  # days
], ids=["negative-integers", "months-across-a-year", "quarters", "days"])
def test_labels_in_any_row_order_sort_in_time(label, tmp_path: Path) -> None:
    rows = [f"{a},{r},{label(t)},{value(i, t)!r}" for i, (a, r) in enumerate(AREAS)
            for t in range(1, PERIODS + 1)]
    rows.reverse()  # newest first in the file
    path = tmp_path / "h.csv"
    path.write_text("area,region,period,value\n" + "\n".join(rows) + "\n", encoding="utf-8")
    universe(tmp_path / "u")
    data = read_outcome(path, None, read_areas(tmp_path / "u" / "areas.csv"), 12)
    assert data.periods == tuple(label(t) for t in range(1, PERIODS + 1))
    np.testing.assert_array_equal(data.log_history[0],
                                  np.log([value(0, t) for t in range(1, PERIODS + 1)]))


def test_the_same_period_written_two_ways_is_one_period(tmp_path: Path) -> None:
    config = universe(tmp_path / "u", history_csv=sub("a0,R0,3,", "a0,R0,03,"))
    data = read_outcome(config.parent / "history.csv", None,
                        read_areas(config.parent / "areas.csv"), 12)
    # one period, labelled as first written (area a0's row comes first)
    assert len(data.periods) == PERIODS and data.periods[2] == "03"


# --------------------------------------------------------------------------
# Byte-order marks (Excel's "CSV UTF-8")
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["areas.csv", "history.csv", "state.csv", "volatility.csv"])
def test_a_byte_order_mark_changes_nothing(name: str, tmp_path: Path) -> None:
    plain = load_config(universe(tmp_path / "plain"))
    key = name.replace(".", "_")
    marked = universe(tmp_path / "bom", **{key: lambda text: BOM + text})
    assert (marked.parent / name).read_bytes().startswith(b"\xef\xbb\xbf")
    cfg = load_config(marked)
    areas = read_areas(marked.parent / "areas.csv")
    assert plain.universe is not None
    reference = read_areas(plain.universe.areas)
    assert (areas.ids, areas.regions, areas.covariate_names) == (
        reference.ids, reference.regions, reference.covariate_names)
    np.testing.assert_array_equal(areas.covariates, reference.covariates)
    a = read_outcome(marked.parent / "history.csv", marked.parent / "state.csv", areas, 12)
    b = read_outcome(tmp_path / "plain" / "history.csv", tmp_path / "plain" / "state.csv",
                     areas, 12)
    assert a.periods == b.periods
    for field in ("log_history", "trend", "log_level", "area_state"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(read_volatility(marked.parent / "volatility.csv", areas),
                                  read_volatility(tmp_path / "plain" / "volatility.csv", areas))
    assert cfg.bonds == plain.bonds


def _with_bom(source: Path, target: Path) -> Path:
    target.write_bytes(b"\xef\xbb\xbf" + source.read_bytes())
    return target


def test_byte_order_marks_in_the_real_data_readers(tmp_path: Path) -> None:
    gm = package_data("gm")
    head = (gm / "source" / "wards_monthly.csv").read_text(encoding="utf-8").splitlines()[:69]
    (tmp_path / "src.csv").write_text("\n".join(head) + "\n", encoding="utf-8")
    wards = read_gm_wards(_with_bom(tmp_path / "src.csv", tmp_path / "src_bom.csv"))
    assert wards == read_gm_wards(tmp_path / "src.csv")
    assert ward_names(_with_bom(gm / "wards.csv", tmp_path / "w.csv")) == ward_names()


def test_byte_order_mark_in_a_synthetic_control_panel(tmp_path: Path) -> None:
    text = "unit,year,y\na,2000,1\na,2001,2\nb,2000,3\nb,2001,4\n"
    (tmp_path / "p.csv").write_text(BOM + text, encoding="utf-8")
    panel = PredictorPanel.from_csv(tmp_path / "p.csv", unit="unit", time="year")
    np.testing.assert_array_equal(panel.values("y", [2000, 2001]), [[1, 3], [2, 4]])


@pytest.mark.parametrize("text,fragment", [
    ("unit,year,y\na,2000,1\na,2000,2\n", "row 3: unit 'a' has a second row for 2000 (first "
                                          "at row 2)"),
    ("unit,year,y\na,2000.5,1\n", "row 2: year must be a whole year, got '2000.5'"),
    ("unit,year,y\na,2000\n", "row 2: has a different number of fields"),
    ("unit,y\na,1\n", "row 1: has no column 'year'"),
], ids=["duplicate", "fractional-year", "short-row", "no-time-column"])
def test_bad_synthetic_control_panels_are_one_line(text: str, fragment: str,
                                                   tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        PredictorPanel.from_csv(tmp_path / "p.csv", unit="unit", time="year")
    assert str(info.value).startswith(f"{tmp_path / 'p.csv'}: ") and fragment in str(info.value)


def test_a_calibrated_universe_with_byte_order_marks_reads_back(tmp_path: Path) -> None:
    config = universe(tmp_path / "u")
    cal = calibrate(config.parent / "history.csv", config.parent / "areas.csv", 12)
    out = tmp_path / "cal" / "universe.toml"
    out.parent.mkdir()
    files = write_universe(cal, out, areas=str(config.parent / "areas.csv"),
                           history=str(config.parent / "history.csv"), outcome="jsa",
                           kind="count", unit="claimant")
    plain = read_universe(out)
    for path in files.values():
        if path.suffix == ".csv":
            path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked = read_universe(out)
    np.testing.assert_array_equal(marked.volatility_scale, plain.volatility_scale)
    np.testing.assert_array_equal(marked.data.trend, plain.data.trend)


# --------------------------------------------------------------------------
# No RuntimeWarning from a calibration whose input has a degenerate part
# --------------------------------------------------------------------------
def test_areas_at_one_mean_level_calibrate_without_warnings(tmp_path: Path) -> None:
    # Every area's mean log level equal: the volatility's slope on size has no
    # spread to fit (np.polyfit's RankWarning before); it is reported as 0.
    def centred(text: str) -> str:
        out = [text.splitlines()[0]]
        for i, (a, r) in enumerate(AREAS):
            logs = np.log([value(i, t) for t in range(1, PERIODS + 1)])
            logs += 7.0 - logs.mean()
            out += [f"{a},{r},{t + 1},{math.exp(v)!r}" for t, v in enumerate(logs)]
        return "\n".join(out) + "\n"

    config = universe(tmp_path / "u", history_csv=centred)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = calibrate(config.parent / "history.csv", config.parent / "areas.csv", 12)
    assert cal.volatility_slope == 0.0
    assert all(math.isfinite(v) for v in cal.per_period.values())
