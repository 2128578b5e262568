"""Every CLI table says its units, names its conventions and prints ids whole (issue 17).

The check reads each table's header cells (separated by two or more spaces,
lobsim.analysis.tables) and requires every known money or count column to
carry its unit token; a list of forbidden headers catches the old names
(quantiles that read like rates, an unlabelled E[IRR], the provider's
columns without "provider").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lobsim.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
BHAM = ROOT / "configs" / "birmingham_jsa.toml"
DEMO = ROOT / "configs" / "basket_demo.toml"
N = "2000"
#: A bond id longer than any column the tables used to cut at (24 characters).
LONG_ID = "birmingham-jsa-employment-support-2009-x"

#: Header cell (its start) -> the unit token it must contain.
UNITS = {
    "E[loss]": "GBP", "ES99 loss": "GBP", "ES99 basket": "GBP", "sum ES99 alone": "GBP",
    "state E[overpayment]": "GBP", "E[overpayment]": "GBP", "provider value": "GBP",
    "provider E[shortfall]": "units", "E[shortfall]": "units", "E[error]": "units",
    "E[payment]": "GBP", "payment q99": "GBP", "E[saving]": "GBP", "set-aside": "GBP",
    "sum alone": "GBP", "benefit": "GBP", "E[guarantee]": "GBP", "E[protection]": "GBP",
    "95% interval": "GBP", "principal": "GBP", "ES contrib": "GBP", "VaR contrib": "GBP",
    "ES alone": "GBP", "VaR (IS)": "GBP", "ES (IS)": "GBP", "ES (plain)": "GBP",
    "sigma/year": "log", "sigma/period": "log",
}
#: Header cells that must not appear: the names issue 17 replaced.
FORBIDDEN = [re.compile(p) for p in (
    r"^IRR \d+%$",  # a quantile that reads like a rate: IRR q05
    r"^E\[IRR\]$",  # which convention? E[IRR] (mean of scenarios)
    r"^value$", r"^P\(shortfall\)$", r"^E\[shortfall\]$",  # the provider's, say so
)]
#: A header line: its first cell is one of these (each table's id or first column).
FIRST = {"bond", "basket", "tranche", "holding", "department", "maturity year", "component"}


def header_cells(text: str) -> list[list[str]]:
    """The header cells of every table in ``text``."""
    out = []
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) > 2 and cells[0] in FIRST:
            out.append(cells)
    return out


def unit_problems(text: str) -> list[str]:
    """What is wrong with the headers of ``text``'s tables (empty if nothing)."""
    problems = []
    for cells in header_cells(text):
        for cell in cells:
            if any(p.search(cell) for p in FORBIDDEN):
                problems.append(f"{cell!r} is an old, ambiguous name")
            words = cell.split()
            stem = next((s for s in sorted(UNITS, key=len, reverse=True)
                         if words[:len(s.split())] == s.split()), None)
            if stem is not None and UNITS[stem] not in words:
                problems.append(f"{cell!r} does not say {UNITS[stem]}")
    return problems


def test_the_check_fails_on_the_old_headers():
    old = ("bond                 P(default)  P(total loss)  E[loss]  E[multiple]  E[IRR]  IRR 5%"
           "  IRR 50%  ES99 loss\n"
           "bond  E[overpayment]  signal/noise  RMSPE  P(shortfall)  E[shortfall]  value\n")
    problems = unit_problems(old)
    for needle in ("'E[loss]'", "'E[IRR]'", "'IRR 5%'", "'value'", "'P(shortfall)'",
                   "'E[overpayment]'", "'ES99 loss'"):
        assert any(needle in p for p in problems), needle
    assert unit_problems("bond  E[loss] GBP  IRR q05  provider value GBP\n") == []


def _cli(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0, argv
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def long_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.toml"
    text = BHAM.read_text(encoding="utf-8")
    assert 'id = "bham-jsa"' in text
    path.write_text(text.replace('id = "bham-jsa"', f'id = "{LONG_ID}"'), encoding="utf-8")
    return path


def test_every_table_carries_its_units_and_ids_are_whole(long_config, tmp_path, capsys):
    results = tmp_path / "r.nc"
    outputs = {
        "terms": _cli(capsys, "terms", str(long_config)),
        "run": _cli(capsys, "run", str(long_config), "--scenarios", N, "--out", str(results)),
        "summary": _cli(capsys, "summary", str(results)),
        "setaside": _cli(capsys, "setaside", str(results), "--by-bond"),
        "maturity": _cli(capsys, "maturity", str(long_config), "--scenarios", N,
                         "--years", "3..4"),
        "price": _cli(capsys, "price", str(long_config), "--target-irr", "0",
                      "--scenarios", N),
        "calibrate": _cli(capsys, "calibrate", "lobsim:gm/claimants_history.csv", "--out",
                          str(tmp_path / "u.toml")),
    }
    for name, text in outputs.items():
        assert unit_problems(text) == [], name
        assert "±" not in text, name  # one convention: 95% intervals
    for name in ("run", "summary", "setaside", "maturity", "calibrate"):
        assert header_cells(outputs[name]), name  # the check saw the tables
    for name in ("run", "summary", "setaside"):
        rows = [line.split()[0] for line in outputs[name].splitlines() if line.strip()]
        assert LONG_ID in rows, name  # the whole id starts a row: it pastes into --bond
    for name in ("terms", "price"):
        assert LONG_ID in outputs[name], name
    for name in ("run", "summary", "maturity"):
        text = outputs[name]
        assert "E[IRR] (mean of scenarios)" in text and "IRR of E[flows]" in text, name
        assert "IRR q05" in text or name == "maturity", name
        assert "95% Monte Carlo intervals" in text, name
    assert "GBP" in outputs["terms"] and "units (claimants)" in outputs["terms"]
    assert "IRR convention: mean" in outputs["price"]


def test_basket_tables_carry_their_units(tmp_path, capsys):
    # tranches, diversification and investor classes (the "sitr:" rows, explained),
    # composition, importance sampling and risk contributions
    text = _cli(capsys, "run", str(DEMO), "--scenarios", "1000", "--out", str(tmp_path / "b.nc"),
                "--composition", "--contributions", "--importance-sampling",
                "--pilot-scenarios", "500")
    assert unit_problems(text) == []
    assert "±" not in text
    assert "ES contrib GBP" in text and "principal GBP" in text and "ES (IS) GBP" in text
    firsts = {cells[0] for cells in header_cells(text)}
    assert {"bond", "basket", "tranche", "holding", "department"} <= firsts
    assert "sitr for Social Investment Tax Relief" in text
    assert "\nsitr:" in text
