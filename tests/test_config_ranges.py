"""Numeric ranges by what the model needs (docs/config.md, Numeric ranges), the best-case
return rule, and the warning for a failure hazard that cannot bite.

The reproductions of issue 14 (one line of the bundled Birmingham config changed) each
crashed or gave NaN/inf before; each is now one ConfigError line at the field.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from lobsim import simulate
from lobsim.analysis.summary import summarize
from lobsim.analysis.terms import term_sheet
from lobsim.errors import ConfigError, LobsimWarning
from lobsim.model.config import load_config

REPO = Path(__file__).resolve().parents[1]
BIRMINGHAM = (REPO / "configs" / "birmingham_jsa.toml").read_text(encoding="utf-8")


def birmingham(tmp_path: Path, old: str, new: str) -> Path:
    """The bundled config with one line changed (its data paths are package paths)."""
    assert BIRMINGHAM.count(old) == 1, old
    path = tmp_path / "bham.toml"
    path.write_text(BIRMINGHAM.replace(old, new), encoding="utf-8")
    return path


@pytest.mark.parametrize("old,new,field,message", [
    ("success_sd = 0.08", "success_sd = 1e-200", "interventions[0].success_sd",
     "must be 0 or at least 1e-06, got 1e-200"),  # was ZeroDivisionError building the world
    ("success_sd = 0.08", "success_sd = 1e-9", "interventions[0].success_sd",
     "must be 0 or at least 1e-06, got 1e-09"),  # was 32 s and every true_units NaN
    ("maturity = 4.0 ", "maturity = 0.00001 ", "bonds[0].maturity",
     "must be at least a day (0.00273973 years) after the start (0)"),  # OverflowError
    ("maturity = 4.0 ", "maturity = 5e-324 ", "bonds[0].maturity",
     "must be at least a day"),  # irr_at_target = inf
    ("cost_per_unit = 2000.0", "cost_per_unit = 1e307", "bonds[0].cost_per_unit",
     "must be at most 1e+15, got 1e+307"),
    ("return_premium = 0.07", "return_premium = 1e308", "bonds[0].return_premium",
     "must be at most 100, got 1e+308"),
    ("amount = 3224.0", "amount = 1e308", "outcomes[0].savings[0].amount",
     "must be at most 1e+15, got 1e+308"),  # was inf department savings
    ("agency_premium = 500.0", "agency_premium = 1e308", "bonds[0].payers[0].agency_premium",
     "must be at most 1e+15, got 1e+308"),  # was inf department payments
    ("target_units = 5000 ", "target_units = 1e300 ", "bonds[0].target_units",
     "must be at most 1e+09, got 1e+300"),  # was inf standard errors
    ("cost_per_unit_year = 3224.0", "cost_per_unit_year = 1e300",
     "bonds[0].baseline.cost_per_unit_year", "must be at most 1e+15, got 1e+300"),
    ("ramp_years = 2.0", "ramp_years = 1e-9", "interventions[0].ramp_years",
     "must be 0 or at least 0.00273973, got 1e-09"),
])
def test_issue_reproductions_are_one_line(tmp_path, old, new, field, message) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(birmingham(tmp_path, old, new))
    assert info.value.path == field, str(info.value)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("old,new", [
    ("success_sd = 0.08", "success_sd = 1e-6"),  # the smallest non-zero sd
    ("success_sd = 0.08", "success_sd = 0"),
    ("ramp_years = 2.0", f"ramp_years = {1 / 365!r}"),  # one day
    ("cost_per_unit = 2000.0", "cost_per_unit = 1e15"),
    ("target_units = 5000 ", "target_units = 1e9 "),
])
def test_the_ends_of_the_ranges_load_and_simulate_finite(tmp_path, old, new) -> None:
    cfg = load_config(birmingham(tmp_path, old, new))
    ds = simulate(cfg, scenarios=64, seed=1)
    for name in ("true_units", "measured_units", "investor_payment", "irr",
                 "department_payment", "department_saving"):
        assert np.isfinite(ds[name].values).all(), name
    s = summarize(ds)
    for name in s.data_vars:
        if s[name].dtype.kind == "f" and name != "signal_to_noise":
            assert np.isfinite(s[name].values).all(), name


# --------------------------------------------------------------------------
# The best-case return: log(M) / term <= 20 (docs/config.md)
# --------------------------------------------------------------------------
def test_the_shortest_term_is_log_of_the_best_multiple_over_20(tmp_path) -> None:
    # Birmingham's best case: 5,000 capped units at 2,340 for a principal of
    # 5,000 x 2,000, M = 1.17; the shortest term is log(1.17) / 20 years.
    shortest = math.log(1.17) / 20.0
    with pytest.raises(ConfigError) as info:
        load_config(birmingham(tmp_path, "maturity = 4.0 ", f"maturity = {shortest * 0.99!r} "))
    assert info.value.path == "bonds[0].maturity"
    assert (f"at best the bond pays 1.17 times its principal over a term of {shortest * 0.99:g} "
            "years") in str(info.value)
    assert f"lengthen the term to at least {shortest:.4g} years" in str(info.value)
    cfg = load_config(birmingham(tmp_path, "maturity = 4.0 ", f"maturity = {shortest * 1.01!r} "))
    irr = term_sheet(cfg).bonds[0].irr_at_target
    # by hand: 1.17^(1 / term) - 1, below e^20 - 1
    assert irr == pytest.approx(1.17 ** (1.0 / (shortest * 1.01)) - 1.0, rel=1e-12)
    assert math.isfinite(irr) and irr < math.exp(20.0) - 1.0
    ds = simulate(cfg, scenarios=64, seed=2)
    assert np.isfinite(ds.irr.values).all() and (ds.irr.values < math.exp(20.0)).all()


def test_a_binary_bond_paying_far_more_than_its_principal_needs_years(tmp_path) -> None:
    # amount / principal = 1e15 / (1 x 1) = 1e15: log(1e15) / 20 = 1.727 years
    text = BIRMINGHAM.replace('mechanism = "per_unit"       # investors are paid per successful unit\ncap = 5000',
                              'mechanism = "binary"\ntrigger = 0.5\namount = 1e15')
    text = text.replace("target_units = 5000 ", "target_units = 1 ").replace(
        "cost_per_unit = 2000.0", "cost_per_unit = 1.0").replace("maturity = 4.0 ",
                                                                 "maturity = 1.5 ")
    path = tmp_path / "binary.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"at least 1\.727 years") as info:
        load_config(path)
    assert info.value.path == "bonds[0].maturity"


# --------------------------------------------------------------------------
# A failure hazard that cannot bite (docs/model.md section 5.5)
# --------------------------------------------------------------------------
INSTANT = ("ramp_years = 2.0", "ramp_years = 0.0")


def test_a_hazard_with_instant_delivery_warns_one_line(tmp_path) -> None:
    path = birmingham(tmp_path, *INSTANT)
    with pytest.warns(LobsimWarning) as record:
        load_config(path)
    assert len(record) == 1
    text = str(record[0].message)
    assert text.startswith(f"{path}: bonds[0] ('bham-jsa'): provider 'bham_cso' has "
                           "failure_hazard 0.02 a year, but intervention 'employment_support' "
                           "delivers everything at once (ramp_years = 0)")
    assert "the hazard has no effect on this bond" in text and "\n" not in text


def test_the_cli_prints_the_warning_as_one_line(tmp_path) -> None:
    # in a child process: pytest records warnings instead of printing them
    path = birmingham(tmp_path, *INSTANT)
    done = subprocess.run([sys.executable, "-m", "lobsim.cli", "terms", str(path)],
                          capture_output=True, text=True, check=True)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lobsim: warning: {path}: bonds[0] "), lines
    assert "Birmingham" in done.stdout  # and the term sheet is printed


@pytest.mark.parametrize("old,new", [
    ("failure_hazard = 0.02", "failure_hazard = 0.0"),  # no hazard
    ("ramp_years = 2.0", "ramp_profile = [1.0]"),  # delivered over the first year
], ids=["no-hazard", "ramp-profile"])
def test_no_warning_when_the_hazard_bites_or_is_zero(tmp_path, old, new) -> None:
    text = BIRMINGHAM.replace(*INSTANT).replace(old, new) if old.startswith("failure") else \
        BIRMINGHAM.replace(old, new)
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LobsimWarning)
        load_config(path)


def test_a_later_bond_of_the_provider_is_not_warned_about(tmp_path) -> None:
    # Failures are drawn from the provider's first start: a bond starting a year
    # later loses everything if the provider fails in between, so only the first
    # bond's hazard is idle. Check it in the engine too.
    second = BIRMINGHAM[BIRMINGHAM.index("[[bonds]]"):].replace('id = "bham-jsa"',
                                                                 'id = "later"')
    second = second.replace('area = "Birmingham"', 'area = "west_midlands_13"').replace(
        "start = 0.0 ", "start = 1.0 ").replace("maturity = 4.0 ", "maturity = 5.0 ")
    text = BIRMINGHAM.replace(*INSTANT).replace("failure_hazard = 0.02", "failure_hazard = 0.5")
    path = tmp_path / "two.toml"
    path.write_text(text + "\n" + second, encoding="utf-8")
    with pytest.warns(LobsimWarning) as record:
        cfg = load_config(path)
    assert [str(w.message).split(": ")[1] for w in record] == ["bonds[0] ('bham-jsa')"]
    ds = simulate(cfg, scenarios=2000, seed=5)
    theta_target = ds.true_units.sel(bond="bham-jsa").values
    later = ds.true_units.sel(bond="later").values
    # the first bond always delivers; the later one loses everything when the
    # provider fails within its first year, P = 1 - exp(-0.5)
    assert (theta_target > 0).all()
    p = 1.0 - math.exp(-0.5)
    lost = float((later == 0.0).mean())
    assert abs(lost - p) < 5 * math.sqrt(p * (1 - p) / 2000)  # 5 binomial standard errors
