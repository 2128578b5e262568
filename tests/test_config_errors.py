"""Hand-written malformed configs: each must raise ConfigError naming the file,
the exact TOML path of the field, the bad value and the fix.

Every case is the small valid ``BASE`` config below with one fragment replaced
or added (``edit``), so that the failure is caused by that fragment alone:
``test_valid_variants_load`` checks that the base and the valid building blocks
the cases start from (a universe, a second bond, payments, baskets) all load.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from lobsim.errors import ConfigError
from lobsim.model.config import SHARE_TOLERANCE, Config, load_config

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "configs" / "birmingham_jsa.toml"

BASE = """\
name = "error-test base"

[simulation]
scenarios = 1000
seed = 7

[[departments]]
id = "DWP"

[[departments]]
id = "DH"

[[agencies]]
id = "JCP"
department = "DWP"

[[agencies]]
id = "NHS"
department = "DH"

[[interventions]]
id = "employment"
success_mean = 0.8
success_sd = 0.1
rho_type = 0.3
rho_global = 0.2
ramp_years = 2.0

[[providers]]
id = "cso"
failure_hazard = 0.05

[[outcomes]]
id = "jsa"
kind = "count"

[[outcomes.savings]]
department = "DWP"
amount = 3224.0

[[outcomes]]
id = "wait"
kind = "percent"

[[bonds]]
id = "b0"
provider = "cso"
area = "A1"
outcome = "jsa"
intervention = "employment"
target_units = 1000
cost_per_unit = 2000.0
basket_risk = 0.1
maturity = 4.0

[[bonds.payers]]
agency = "JCP"
share = 0.5
agency_premium = 500.0

[[bonds.payers]]
agency = "NHS"
share = 0.5
"""

# A second valid bond, appended after the base (another area, same outcome).
SECOND_BOND = """
[[bonds]]
id = "b1"
provider = "cso"
area = "A2"
outcome = "jsa"
intervention = "employment"
target_units = 500
cost_per_unit = 1000.0
maturity = 3.0

[[bonds.payers]]
agency = "JCP"
share = 1.0
"""

UNIVERSE = """
[universe]
areas = "areas.csv"
"""

AREAS_CSV = """\
area,region,deprivation,population
A1,north,0.3,50000
A2,north,0.5,42000
A3,south,0.1,61000
A4,south,0.7,39000
"""
AREAS = {"areas.csv": AREAS_CSV}


def edit(*pairs: tuple[str, str], add: str = "", text: str = BASE) -> str:
    """``text`` with each ``old`` (which must occur exactly once) replaced by ``new``."""
    for old, new in pairs:
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"fragment {old!r} occurs {count} times in the base")
        text = text.replace(old, new)
    return text + add


def line_of(text: str, needle: str) -> int:
    """1-based number of the line of ``text`` containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


class Case(NamedTuple):
    text: str
    path: str | None  # exact TOML path (or CSV row) expected in the message
    fragments: tuple[str, ...]  # distinctive parts of the message / bad value
    files: dict[str, str] | None = None
    source: str | None = None  # file named in the message, if not the config


# An investor class, its holdings formatted in.
INVESTOR = """
[[investor_classes]]
id = "sitr"
relief = 0.3
tax_rate = 0.4
{}
"""

BAD_SYNTAX = edit(("maturity = 4.0", "maturity = = 4.0"))
NHS_SHARE = 'agency = "NHS"\nshare = 0.5'

CASES: dict[str, Case] = {
    # -- the document ----------------------------------------------------------
    "invalid-toml-syntax": Case(
        BAD_SYNTAX, None,
        ("is not valid TOML", f"(at line {line_of(BAD_SYNTAX, 'maturity = =')}, column"),
    ),
    "unknown-top-level-key": Case(
        edit(('name = "error-test base"', 'name = "error-test base"\ncolour = "red"')),
        "colour", ("is not a known field",),
    ),
    "unknown-simulation-key": Case(
        edit(("seed = 7", "seed = 7\nthreads = 4")),
        "simulation.threads", ("is not a known field",),
    ),
    "bonds-as-plain-table": Case(
        edit(("[[bonds]]", "[bonds]")),
        "bonds", ("must be an array of tables ([[bonds]]), got table",),
    ),
    "no-bonds": Case(
        BASE.split("[[bonds]]")[0], "bonds", ("is required but missing",),
    ),
    # -- keys and types --------------------------------------------------------
    "bond-key-typo": Case(
        edit(("basket_risk = 0.1", "basket_rsk = 0.1")),
        "bonds[0].basket_rsk", ("is not a known field", "did you mean 'basket_risk'?"),
    ),
    "missing-maturity": Case(
        edit(("maturity = 4.0\n", "")),
        "bonds[0].maturity", ("is required but missing; add it",),
    ),
    "missing-agency-department": Case(
        edit(('department = "DH"\n', "")),
        "agencies[1].department", ("is required but missing",),
    ),
    "string-for-number": Case(
        edit(("cost_per_unit = 2000.0", 'cost_per_unit = "2000"')),
        "bonds[0].cost_per_unit", ("must be a number, got string '2000'",),
    ),
    "bool-for-number": Case(
        edit(("target_units = 1000", "target_units = true")),
        "bonds[0].target_units", ("must be a number, got boolean True",),
    ),
    "number-for-string": Case(
        edit(('provider = "cso"', "provider = 42")),
        "bonds[0].provider", ("must be a non-empty string, got 42",),
    ),
    "float-for-integer": Case(
        edit(("scenarios = 1000", "scenarios = 1e5")),
        "simulation.scenarios", ("must be an integer, got number 100000.0",),
    ),
    "zero-scenarios": Case(
        edit(("scenarios = 1000", "scenarios = 0")),
        "simulation.scenarios", ("must be at least 2, got 0",),
    ),
    "invalid-id": Case(
        edit(('id = "b0"', 'id = "b 0"')),
        "bonds[0].id", ("'b 0' is not a valid id",),
    ),
    "wrong-outcome-kind": Case(
        edit(('kind = "count"', 'kind = "ratio"')),
        "outcomes[0].kind", ("must be one of 'count', 'percent', got 'ratio'",),
    ),
    # -- ranges ----------------------------------------------------------------
    "nan-success-sd": Case(
        edit(("success_sd = 0.1", "success_sd = nan")),
        "interventions[0].success_sd", ("must be a finite number, got nan",),
    ),
    "inf-cost": Case(
        edit(("cost_per_unit = 2000.0", "cost_per_unit = inf")),
        "bonds[0].cost_per_unit", ("must be a finite number, got inf",),
    ),
    "negative-cost": Case(
        edit(("cost_per_unit = 2000.0", "cost_per_unit = -2000.0")),
        "bonds[0].cost_per_unit", ("must be at least 1e-06, got -2000",),
    ),
    "zero-target": Case(
        edit(("target_units = 1000", "target_units = 0")),
        "bonds[0].target_units", ("must be at least 1e-06, got 0",),
    ),
    "negative-hazard": Case(
        edit(("failure_hazard = 0.05", "failure_hazard = -0.05")),
        "providers[0].failure_hazard", ("must be at least 0, got -0.05",),
    ),
    "relapse-rate-one": Case(
        edit(("ramp_years = 2.0", "ramp_years = 2.0\nrelapse_rate = 1.0")),
        "interventions[0].relapse_rate", ("must be less than 1, got 1",),
    ),
    "maturity-equals-start": Case(
        edit(("maturity = 4.0", "start = 4.0\nmaturity = 4.0")),
        "bonds[0].maturity", ("4 must be at least a day (0.00273973 years) after the start (4)",),
    ),
    "maturity-before-start": Case(
        edit(("maturity = 4.0", "start = 5.0\nmaturity = 4.0")),
        "bonds[0].maturity", ("4 must be at least a day (0.00273973 years) after the start (5)",),
    ),
    "success-sd-too-large": Case(
        edit(("success_sd = 0.1", "success_sd = 0.5")),
        "interventions[0].success_sd",
        ("0.5 is too large for success_mean 0.8", "success_sd < sqrt(m (1 - m)) = 0.4"),
    ),
    "rho-sum-above-one": Case(
        edit(("rho_global = 0.2", "rho_global = 0.8")),
        "interventions[0].rho_global", ("rho_type + rho_global = 1.1 exceeds 1",),
    ),
    "zero-payer-share": Case(
        edit((NHS_SHARE, 'agency = "NHS"\nshare = 0.0')),
        "bonds[0].payers[1].share", ("must be greater than 0, got 0",),
    ),
    "negative-agency-premium": Case(
        edit(("agency_premium = 500.0", "agency_premium = -500.0")),
        "bonds[0].payers[0].agency_premium", ("must be at least 0, got -500",),
    ),
    "ramp-profile-not-ending-at-one": Case(
        edit(("ramp_years = 2.0", "ramp_profile = [0.3, 0.6, 0.9]")),
        "interventions[0].ramp_profile", ("must end at 1, got 0.9",),
    ),
    "ramp-profile-decreasing": Case(
        edit(("ramp_years = 2.0", "ramp_profile = [0.6, 0.3, 1.0]")),
        "interventions[0].ramp_profile", ("must be non-decreasing, got [0.6, 0.3, 1.0]",),
    ),
    "ramp-years-and-profile": Case(
        edit(("ramp_years = 2.0", "ramp_years = 2.0\nramp_profile = [0.5, 1.0]")),
        "interventions[0].ramp_profile", ("give either ramp_years or ramp_profile, not both",),
    ),
    # -- payer shares ----------------------------------------------------------
    "shares-sum-0.9": Case(
        edit((NHS_SHARE, 'agency = "NHS"\nshare = 0.4')),
        "bonds[0].payers", ("shares sum to 0.9, not 1 (within 1e-09)",),
    ),
    "shares-sum-1-plus-1e-8": Case(
        edit((NHS_SHARE, 'agency = "NHS"\nshare = 0.50000001')),
        "bonds[0].payers", ("shares sum to 1.00000001, not 1",),
    ),
    "duplicate-payer-agency": Case(
        edit(('agency = "NHS"', 'agency = "JCP"')),
        "bonds[0].payers", ("names agency 'JCP' twice",),
    ),
    # -- ids and cross-references ----------------------------------------------
    "duplicate-bond-id": Case(
        edit(add=SECOND_BOND.replace('id = "b1"', 'id = "b0"')),
        "bonds[1].id", ("duplicate id 'b0'",),
    ),
    "duplicate-department-id": Case(
        edit(('id = "DH"', 'id = "DWP"'), ('department = "DH"', 'department = "DWP"')),
        "departments[1].id", ("duplicate id 'DWP'", "[[departments]]"),
    ),
    "unknown-provider": Case(
        edit(('provider = "cso"', 'provider = "nobody"')),
        "bonds[0].provider", ("provider 'nobody', which is not defined (defined: cso)",),
    ),
    "unknown-intervention": Case(
        edit(('intervention = "employment"', 'intervention = "mentoring"')),
        "bonds[0].intervention",
        ("intervention type 'mentoring', which is not defined (defined: employment)",),
    ),
    "unknown-outcome": Case(
        edit(('outcome = "jsa"', 'outcome = "teen_pregnancy"')),
        "bonds[0].outcome", ("outcome 'teen_pregnancy', which is not defined",),
    ),
    "unknown-payer-agency": Case(
        edit(('agency = "NHS"', 'agency = "NHX"')),
        "bonds[0].payers[1].agency", ("agency 'NHX', which is not defined (defined: JCP, NHS)",),
    ),
    "unknown-agency-department": Case(
        edit(('department = "DH"', 'department = "DHSC"')),
        "agencies[1].department", ("department 'DHSC', which is not defined (defined: DH, DWP)",),
    ),
    "unknown-savings-department": Case(
        edit(('department = "DWP"\namount', 'department = "DfE"\namount')),
        "outcomes[0].savings[0].department", ("department 'DfE', which is not defined",),
    ),
    "unknown-baseline-agency": Case(
        edit(add='\n[bonds.baseline]\ndepartment = "DWP"\nagency = "JCX"\nunits = 50000\n'
             "cost_per_unit_year = 3224.0\n"),
        "bonds[0].baseline.agency", ("agency 'JCX', which is not defined",),
    ),
    "two-bonds-same-area-outcome": Case(
        edit(add=SECOND_BOND.replace('area = "A2"', 'area = "A1"')),
        "bonds[1].area", ("bond 'b1' measures outcome 'jsa' in area 'A1', as bond 'b0'",
                          "merge them into one bond"),
    ),
    # -- payment ---------------------------------------------------------------
    "threshold-without-threshold": Case(
        edit(add='\n[bonds.payment]\nmechanism = "threshold"\n'),
        "bonds[0].payment.threshold", ("is required but missing",),
    ),
    "threshold-for-binary": Case(
        edit(add='\n[bonds.payment]\nmechanism = "binary"\ntrigger = 0.8\nthreshold = 0.1\n'),
        "bonds[0].payment.threshold", ("does not apply to mechanism 'binary'",),
    ),
    "threshold-for-schedule-measurement": Case(
        edit(add='\n[bonds.payment]\nmechanism = "schedule"\ngrid = [[0.0, 0.0], [1.0, 0.05]]\n'
                 '[[bonds.payment.measurements]]\nat = 4\nthreshold = 0.1\n'),
        "bonds[0].payment.measurements[0].threshold", ("does not apply to mechanism 'schedule'",),
    ),
    "trigger-for-per-unit": Case(
        edit(add='\n[bonds.payment]\nmechanism = "per_unit"\ntrigger = 0.8\n'),
        "bonds[0].payment.trigger", ("applies only to mechanism 'binary', not 'per_unit'",),
    ),
    "binary-without-trigger": Case(
        edit(add='\n[bonds.payment]\nmechanism = "binary"\n'),
        "bonds[0].payment.trigger", ("is required but missing",),
    ),
    "unknown-mechanism": Case(
        edit(add='\n[bonds.payment]\nmechanism = "lottery"\n'),
        "bonds[0].payment.mechanism",
        ("must be one of 'per_unit', 'threshold', 'binary', 'schedule', got 'lottery'",),
    ),
    "measurements-not-ending-at-maturity": Case(
        edit(add="\n[[bonds.payment.measurements]]\nat = 2.0\n"
                 "\n[[bonds.payment.measurements]]\nat = 3.0\n"),
        "bonds[0].payment.measurements",
        ("the last measurement (3) must be at maturity (4)",),
    ),
    "measurements-not-increasing": Case(
        edit(add="\n[[bonds.payment.measurements]]\nat = 3.0\n"
                 "\n[[bonds.payment.measurements]]\nat = 2.0\n"
                 "\n[[bonds.payment.measurements]]\nat = 4.0\n"),
        "bonds[0].payment.measurements[1].at", ("measurement dates must strictly increase",),
    ),
    "measurement-after-maturity": Case(
        edit(add="\n[[bonds.payment.measurements]]\nat = 5.0\n"),
        "bonds[0].payment.measurements[0].at",
        ("5 must lie after the start (0) and no later than maturity (4)",),
    ),
    "percent-cap-above-100": Case(
        edit(('outcome = "jsa"', 'outcome = "wait"'), ("target_units = 1000", "target_units = 20"),
             add="\n[bonds.payment]\ncap = 150\n"),
        "bonds[0].payment.cap", ("cap 150 exceeds 100 percentage points",),
    ),
    # -- control group -----------------------------------------------------------
    "donors-and-donor-areas": Case(
        edit(add='\n[bonds.control]\ndonors = 3\ndonor_areas = ["A2", "A3"]\n'),
        "bonds[0].control.donor_areas", ("give either donors (nearest neighbours) or donor_areas",),
    ),
    "covariate-weights-with-equal-weights": Case(
        edit(add='\n[bonds.control]\nweights = "equal"\ncovariate_weights = { deprivation = 1.0 }\n'),
        "bonds[0].control.covariate_weights", ("apply only to weights = 'synthetic'",),
    ),
    "negative-covariate-weight": Case(
        edit(add='\n[bonds.control]\nweights = "synthetic"\n'
                 "covariate_weights = { deprivation = -1.0 }\n"),
        "bonds[0].control.covariate_weights.deprivation", ("must be at least 0, got -1",),
    ),
    # -- universe and areas file -----------------------------------------------
    "universe-areas-file-missing": Case(
        edit(add=UNIVERSE.replace("areas.csv", "missing.csv")),
        "universe.areas", ("data file 'missing.csv' not found",),
    ),
    "areas-csv-bad-header": Case(
        edit(add=UNIVERSE), "row 1", ("the header must start with 'area,region'",),
        files={"areas.csv": AREAS_CSV.replace("area,region", "name,region")},
        source="areas.csv",
    ),
    "areas-csv-non-numeric-covariate": Case(
        edit(add=UNIVERSE), "row 3", ("covariate 'deprivation' must be a number in [-1e+15, 1e+15], got 'high'",),
        files={"areas.csv": AREAS_CSV.replace("A2,north,0.5", "A2,north,high")},
        source="areas.csv",
    ),
    "areas-csv-short-row": Case(
        edit(add=UNIVERSE), "row 4", ("has 3 fields, the header has 4",),
        files={"areas.csv": AREAS_CSV.replace("A3,south,0.1,61000", "A3,south,0.1")},
        source="areas.csv",
    ),
    "bond-area-not-in-universe": Case(
        edit(('area = "A1"', 'area = "Z9"'), add=UNIVERSE),
        "bonds[0].area", ("refers to area 'Z9', which is not defined (defined: A1, A2, A3, A4)",),
        files=AREAS,
    ),
    "donor-area-not-in-universe": Case(
        edit(add=UNIVERSE + '\n[[bonds]]\nid = "b1"\nprovider = "cso"\narea = "A2"\n'
             'outcome = "jsa"\nintervention = "employment"\ntarget_units = 10\n'
             'cost_per_unit = 1.0\nmaturity = 2.0\ncontrol = { donor_areas = ["A3", "Q7"] }\n'
             '\n[[bonds.payers]]\nagency = "JCP"\nshare = 1.0\n'),
        "bonds[1].control.donor_areas[1]", ("refers to area 'Q7'",),
        files=AREAS,
    ),
    "match-on-unknown-covariate": Case(
        edit(add='\n[bonds.control]\nmatch_on = ["deprivation", "income"]\n' + UNIVERSE),
        "bonds[0].control.match_on[1]", ("refers to covariate 'income', which is not defined",),
        files=AREAS,
    ),
    # -- baskets ---------------------------------------------------------------
    "basket-unknown-bond": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nbonds = ["b0", "b7"]\n'),
        "baskets[0].bonds[1]", ("refers to bond 'b7', which is not defined (defined: b0)",),
    ),
    "empty-basket": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nbonds = []\n'),
        "baskets[0].bonds", ("must not be empty",),
    ),
    "basket-without-bonds-or-rules": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nname = "nothing in it"\n'),
        "baskets[0]", ("a basket needs a 'bonds' list, a [where] table of rules, a risk_band",),
    ),
    "basket-rule-unknown-provider": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nwhere = { providers = ["cso", "acme"] }\n'),
        "baskets[0].where.providers[1]", ("refers to provider 'acme'",),
    ),
    "basket-lists-bond-twice": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nbonds = ["b0", "b0"]\n'),
        "baskets[0].bonds", ("lists 'b0' twice",),
    ),
    # -- investor classes (after-tax returns) ------------------------------------
    "investor-class-unknown-bond": Case(
        edit(add=INVESTOR.format('bonds = ["b9"]')),
        "investor_classes[0].bonds[0]", ("refers to bond 'b9', which is not defined",),
    ),
    "investor-class-relief-of-one": Case(
        edit(add=INVESTOR.format('bonds = ["b0"]').replace("relief = 0.3", "relief = 1.0")),
        "investor_classes[0].relief", ("must be less than 1, got 1",),
    ),
    "investor-class-tax-rate-above-one": Case(
        edit(add=INVESTOR.format('bonds = ["b0"]').replace("tax_rate = 0.4", "tax_rate = 1.5")),
        "investor_classes[0].tax_rate", ("must be at most 1, got 1.5",),
    ),
    "investor-class-holds-nothing": Case(
        edit(add=INVESTOR.format("")),
        "investor_classes[0]", ("an investor class must hold something",),
    ),
    "investor-class-key-typo": Case(
        edit(add=INVESTOR.format('bonds = ["b0"]').replace("relief =", "relif =")),
        "investor_classes[0].relif", ("is not a known field", "did you mean 'relief'?"),
    ),
    "investor-class-tranche-without-basket": Case(
        edit(add=INVESTOR.format('tranches = ["senior"]')),
        "investor_classes[0].tranches[0]", ('must name a tranche as "basket/tranche"',
                                            "got 'senior'"),
    ),
    "investor-class-unknown-tranche": Case(
        edit(add='\n[[baskets]]\nid = "bk"\nbonds = ["b0"]\n'
             + INVESTOR.format('tranches = ["bk/senior"]')),
        "investor_classes[0].tranches[0]", ("refers to tranche 'senior' of basket 'bk'",
                                            "none: the basket has no tranches"),
    ),
    "investor-class-unknown-basket": Case(
        edit(add=INVESTOR.format('baskets = ["north"]')),
        "investor_classes[0].baskets[0]", ("refers to basket 'north', which is not defined",),
    ),
    "investor-class-duplicate-id": Case(
        edit(add=INVESTOR.format('bonds = ["b0"]') * 2),
        "investor_classes[1].id", ("duplicate id 'sitr'",),
    ),
    "investor-class-bond-and-basket-sharing-an-id": Case(
        edit(add='\n[[baskets]]\nid = "b0"\nbonds = ["b0"]\n'
             + INVESTOR.format('bonds = ["b0"]\nbaskets = ["b0"]')),
        "investor_classes[0].baskets[0]", ("holds bond 'b0' and basket 'b0', which share an id",),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_config_raises_config_error(case: Case, write_config) -> None:
    path = write_config(case.text, files=case.files)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    exc = info.value
    msg = str(exc)
    source = path if case.source is None else path.parent / case.source
    assert exc.source == str(source)
    assert exc.path == case.path
    # "<file>: <toml path>: <message>", with the exact path right after the file.
    where = f"{source}: {case.path}: " if case.path else f"{source}: "
    assert msg.startswith(where), msg
    for fragment in case.fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    assert "\n" not in msg


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 30


# --------------------------------------------------------------------------
# The starting points of the cases are valid
# --------------------------------------------------------------------------
VALID_VARIANTS: dict[str, tuple[str, dict[str, str] | None]] = {
    "base": (BASE, None),
    "second-bond": (edit(add=SECOND_BOND), None),
    "universe": (edit(add=UNIVERSE), AREAS),
    "threshold-payment": (
        edit(add='\n[bonds.payment]\nmechanism = "threshold"\nthreshold = 0.1\n'), None),
    "binary-payment": (edit(add='\n[bonds.payment]\nmechanism = "binary"\ntrigger = 0.8\n'), None),
    "measurements": (
        edit(add="\n[[bonds.payment.measurements]]\nat = 2.0\n"
                 "\n[[bonds.payment.measurements]]\nat = 4.0\n"), None),
    # a bond paying at two dates held directly (after-tax flows from dated_payment)
    "investor-class-bond-paying-at-two-dates": (
        edit(add="\n[[bonds.payment.measurements]]\nat = 2.0\n"
                 "\n[[bonds.payment.measurements]]\nat = 4.0\n"
             + INVESTOR.format('bonds = ["b0"]')), None),
    "percent-cap-100": (
        edit(('outcome = "jsa"', 'outcome = "wait"'), ("target_units = 1000", "target_units = 20"),
             add="\n[bonds.payment]\ncap = 100\n"), None),
    "ramp-profile": (edit(("ramp_years = 2.0", "ramp_profile = [0.3, 0.6, 1.0]")), None),
    "donor-areas": (edit(add='\n[bonds.control]\ndonor_areas = ["A2", "A3"]\n'), None),
    "synthetic-covariate-weights": (
        edit(add='\n[bonds.control]\nweights = "synthetic"\nmatch_on = ["deprivation"]\n'
                 "covariate_weights = { deprivation = 1.0 }\n" + UNIVERSE), AREAS),
    "basket": (edit(add='\n[[baskets]]\nid = "bk"\nbonds = ["b0"]\n'
                    'where = { providers = ["cso"] }\n'), None),
    "baseline": (edit(add='\n[bonds.baseline]\ndepartment = "DWP"\nagency = "JCP"\n'
                      "units = 50000\ncost_per_unit_year = 3224.0\n"), None),
    "investor-class": (edit(add='\n[[baskets]]\nid = "bk"\nbonds = ["b0"]\n'
                            '\n[[baskets.tranches]]\nid = "senior"\nshare = 1.0\nseniority = 1\n'
                            + INVESTOR.format('bonds = ["b0"]\ntranches = ["bk/senior"]\n'
                                              'baskets = ["bk"]')), None),
}


@pytest.mark.parametrize("text,files", VALID_VARIANTS.values(), ids=VALID_VARIANTS.keys())
def test_valid_variants_load(text: str, files: dict[str, str] | None, write_config) -> None:
    tomllib.loads(text)
    cfg = load_config(write_config(text, files=files))
    assert isinstance(cfg, Config)
    assert cfg.bonds[0].id == "b0"


def test_base_values_are_read(write_config) -> None:
    """The base is read as written (so the cases above edit what they think they edit)."""
    cfg = load_config(write_config(BASE))
    bond = cfg.bonds[0]
    assert (bond.target_units, bond.cost_per_unit, bond.maturity, bond.start) == (1000, 2000, 4, 0)
    assert bond.price_per_unit == 2200.0
    assert [(p.agency, p.share, p.agency_premium) for p in bond.payers] == [
        ("JCP", 0.5, 500.0), ("NHS", 0.5, 0.0)]
    assert cfg.intervention("employment").rho_type == 0.3
    assert cfg.outcome("wait").kind == "percent"


# --------------------------------------------------------------------------
# Payer-share tolerance
# --------------------------------------------------------------------------
def test_share_tolerance_is_1e_9() -> None:
    assert SHARE_TOLERANCE == 1e-9


@pytest.mark.parametrize(
    "nhs_share", ["0.5000000001", "0.4999999999", "0.5000000009"],
    ids=["1+1e-10", "1-1e-10", "1+9e-10"],
)
def test_shares_within_tolerance_are_accepted(nhs_share: str, write_config) -> None:
    cfg = load_config(write_config(edit((NHS_SHARE, f'agency = "NHS"\nshare = {nhs_share}'))))
    assert cfg.bonds[0].payers[1].share == float(nhs_share)


@pytest.mark.parametrize("nhs_share", ["0.500000002", "0.499999998"], ids=["1+2e-9", "1-2e-9"])
def test_shares_just_outside_tolerance_are_rejected(nhs_share: str, write_config) -> None:
    path = write_config(edit((NHS_SHARE, f'agency = "NHS"\nshare = {nhs_share}')))
    with pytest.raises(ConfigError, match=r"bonds\[0\]\.payers: shares sum to"):
        load_config(path)


# --------------------------------------------------------------------------
# Positive properties of a loaded config
# --------------------------------------------------------------------------
def test_bundled_config_loads() -> None:
    cfg = load_config(BUNDLED)
    assert isinstance(cfg, Config)
    assert cfg.source == str(BUNDLED)
    (bond,) = cfg.bonds
    assert bond.price_per_unit == 2340.0  # 2000 x (1 + 0.10 + 0.07), docs/model.md section 2
    assert bond.principal == 10_000_000.0
    assert {p.agency: p.share for p in bond.payers} == {"JCP": 0.5, "PARTNER": 0.5}
    assert cfg.agency("JCP").department == "DWP"
    assert cfg.simulation.seed == 20091130


def test_data_paths_resolve_relative_to_config_not_cwd(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "areas.csv").write_text(AREAS_CSV, encoding="utf-8")
    history = "area,region,period,value\n" + "".join(
        f"{a},{r},{t},{100 + t}\n" for a, r in (("A1", "north"), ("A2", "north"),
                                                 ("A3", "south"), ("A4", "south"))
        for t in range(3))
    (project / "data" / "jsa_history.csv").write_text(history, encoding="utf-8")
    text = edit(('kind = "count"', 'kind = "count"\nhistory = "data/jsa_history.csv"'),
                add=UNIVERSE.replace("areas.csv", "data/areas.csv"))
    config_path = project / "config.toml"
    config_path.write_text(text, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    cfg = load_config(config_path)
    assert cfg.universe is not None
    assert cfg.universe.areas.resolve() == (project / "data" / "areas.csv").resolve()
    history = cfg.outcome("jsa").history
    assert history is not None
    assert history.resolve() == (project / "data" / "jsa_history.csv").resolve()

    # Loading through a relative config path from another folder works too.
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("project") / "config.toml")
    assert cfg.universe is not None
    assert cfg.universe.areas.resolve() == (project / "data" / "areas.csv").resolve()


def test_data_path_in_cwd_is_not_used(tmp_path: Path, monkeypatch) -> None:
    """A data file next to the CWD but not next to the config is 'not found'."""
    (tmp_path / "config_dir").mkdir()
    config_path = tmp_path / "config_dir" / "config.toml"
    config_path.write_text(edit(add=UNIVERSE), encoding="utf-8")
    (tmp_path / "areas.csv").write_text(AREAS_CSV, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"universe\.areas: data file 'areas\.csv' not found"):
        load_config(config_path)


def test_config_is_frozen() -> None:
    cfg = load_config(BUNDLED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "changed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bonds[0].target_units = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bonds[0].payers[0].share = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.simulation.seed = 1  # type: ignore[misc]
    # Collections are tuples, not lists, so they cannot be changed in place either.
    assert isinstance(cfg.bonds, tuple)
    assert isinstance(cfg.bonds[0].payers, tuple)
    assert isinstance(cfg.bonds[0].payment.measurements, tuple)


def test_config_hash_is_stable_across_loads() -> None:
    first, second = load_config(BUNDLED), load_config(BUNDLED)
    assert re.fullmatch(r"[0-9a-f]{64}", first.hash)
    assert first.hash == second.hash


def test_config_hash_changes_when_a_value_changes(write_config) -> None:
    original = load_config(write_config(BASE, name="a.toml"))
    same = load_config(write_config(BASE, name="b.toml"))
    changed = load_config(write_config(edit(("cost_per_unit = 2000.0", "cost_per_unit = 2001.0")),
                                       name="c.toml"))
    assert original.hash == same.hash
    assert changed.hash != original.hash


def test_config_hash_changes_when_a_data_file_changes(tmp_path: Path, write_config) -> None:
    path = write_config(edit(add=UNIVERSE), files=AREAS)
    before = load_config(path).hash
    (tmp_path / "areas.csv").write_text(AREAS_CSV.replace("50000", "50001"), encoding="utf-8")
    after = load_config(path).hash
    assert before != after


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: cannot read the file")


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(BASE.replace("error-test base", "caf\xe9").encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


# --------------------------------------------------------------------------
# Edge cases that once escaped as raw exceptions or multi-line messages
# --------------------------------------------------------------------------
def _expect_config_error(write_config, text: str, path: str,
                         files: dict[str, str] | None = None) -> ConfigError:
    """Load ``text``; it must raise ConfigError at TOML path ``path``."""
    config_path = write_config(text, files=files)
    with pytest.raises(ConfigError) as info:
        load_config(config_path)
    assert info.value.path == path, str(info.value)
    return info.value


def test_huge_integer_is_config_error(write_config) -> None:
    _expect_config_error(
        write_config, edit(("cost_per_unit = 2000.0", "cost_per_unit = 1" + "0" * 400)),
        "bonds[0].cost_per_unit")


def test_price_overflow_is_config_error(write_config) -> None:
    _expect_config_error(
        write_config, edit(("cost_per_unit = 2000.0", "cost_per_unit = 1e308"),
                           ("basket_risk = 0.1", "basket_risk = 1.0")),
        "bonds[0].cost_per_unit")


def test_infinite_principal_is_rejected(write_config) -> None:
    text = edit(("target_units = 1000", "target_units = 1e200"),
                ("cost_per_unit = 2000.0", "cost_per_unit = 1e200"))
    with pytest.raises(ConfigError):
        load_config(write_config(text))


def test_overlong_data_path_is_config_error(write_config) -> None:
    _expect_config_error(write_config, edit(add=UNIVERSE.replace("areas.csv", "a" * 300 + ".csv")),
                         "universe.areas")


def test_oversized_csv_field_is_config_error(write_config) -> None:
    csv_text = AREAS_CSV.replace("A4,south", "A4," + "s" * 200_000)
    config_path = write_config(edit(add=UNIVERSE), files={"areas.csv": csv_text})
    try:
        load_config(config_path)
    except ConfigError as exc:
        assert "areas.csv" in str(exc)
    else:
        pytest.fail("loaded a CSV with a 200,000-character field")


def test_deeply_nested_toml_is_config_error(write_config) -> None:
    text = BASE + "deep = " + "[" * 2000 + "]" * 2000 + "\n"
    with pytest.raises(ConfigError):
        load_config(write_config(text))


def test_id_with_trailing_newline_is_rejected(write_config) -> None:
    _expect_config_error(write_config, edit(('id = "DWP"', 'id = "DWP\\n"')), "departments[0].id")


def test_percent_measurement_cap_above_100_is_rejected(write_config) -> None:
    text = edit(('outcome = "jsa"', 'outcome = "wait"'), ("target_units = 1000", "target_units = 20"),
                add="\n[[bonds.payment.measurements]]\nat = 2.0\ncap = 500\n"
                    "\n[[bonds.payment.measurements]]\nat = 4.0\ncap = 600\n")
    _expect_config_error(write_config, text, "bonds[0].payment.measurements[0].cap")


def test_typo_in_required_key_names_the_typo(write_config) -> None:
    path = write_config(edit(("target_units = 1000", "target_unit = 1000")))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "'target_unit'" in str(info.value)


@pytest.mark.parametrize(
    "text,key",
    [
        (edit(('name = "error-test base"', 'name = "error-test base"\n"" = 1')), ""),
        (edit(("maturity = 4.0", 'maturity = 4.0\n"a.b" = 1')), "a.b"),
    ],
    ids=["empty-key", "dotted-key"],
)
def test_unusual_unknown_keys_are_quoted_in_the_path(text: str, key: str,
                                                        write_config) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    exc = info.value
    assert "is not a known field" in str(exc)
    assert exc.path is not None
    # The key appears quoted ("a.b" or 'a.b', "" or ''), however the fix renders it.
    assert f'"{key}"' in exc.path or f"'{key}'" in exc.path, exc.path
