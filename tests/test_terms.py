"""The term-sheet calculator against the report's Appendix and section 3.2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lobsim import load_config, term_sheet
from lobsim.cli.commands import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def birmingham():
    return term_sheet(load_config(CONFIGS / "birmingham_jsa.toml")).bonds[0]


# Reference values: "Total Neighbourhood" (Localis 2010), Appendix, Central
# Department-Local Agency Funding Agreement Example (Birmingham JSA caseload,
# November 2009). Every figure must be reproduced exactly, not approximately.
def test_appendix_price_and_investors(birmingham):
    assert birmingham.price_per_unit == 2340  # "Total payment per case is £2340"
    assert birmingham.investor_principal == 10_000_000  # 5000 units x £2000
    assert birmingham.investor_payoff_at_target == 5000 * 2340
    assert birmingham.maturity == 4  # "Year 4 (maturity of bond for year one)"


def test_appendix_agency_and_department_payments(birmingham):
    jcp = next(p for p in birmingham.payers if p.agency == "JCP")
    assert jcp.department == "DWP"
    assert jcp.pays_per_unit == 1170  # "JCP pays (1/2)2340 = £1170"
    assert jcp.department_pays_per_unit == 1670  # "£1170 + £500 = £1670"
    assert jcp.department_pays_at_target == 8_350_000  # "5,000 x £1670 = £8,350,000"
    assert jcp.discretionary_at_target == 2_500_000  # "5,000 x £500 = £2,500,000"
    assert jcp.pays_at_target == 5_850_000  # "5000 x £1170" to investors


def test_appendix_baseline_funding_and_saving(birmingham):
    b = birmingham.baseline
    assert b.base_year_funding == 161_200_000  # 50,000 x (£62.00 x 52)
    assert b.maturity_year_funding == 145_080_000  # 45,000 x (£62.00 x 52)
    assert b.total_at_maturity == 153_430_000  # "£153,430,000 paid by DWP to JCP"
    assert b.saving == 7_770_000  # "a saving of £7,770,000"


def test_appendix_break_even(birmingham):
    # docs/model.md section 2.2: investors break even at 2000/2340 = 85.47% of target.
    assert birmingham.break_even_fraction == pytest.approx(2000 / 2340, rel=1e-15)
    assert f"{100 * birmingham.break_even_fraction:.2f}" == "85.47"


def test_both_departments_pay_price_plus_premium(birmingham):
    # docs/model.md section 2.1: the two departments together pay 5,000 x (2,340 + 500).
    assert sum(birmingham.department_pays_at_target.values()) == 14_200_000


def test_terms_json_contains_every_appendix_figure(capsys):
    assert main(["terms", str(CONFIGS / "birmingham_jsa.toml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "lobsim.terms/1"
    bond = doc["bonds"][0]
    jcp = bond["payers"][0]
    figures = {
        "price_per_unit": (bond["price_per_unit"], 2340),
        "jcp pays": (jcp["pays_per_unit"], 1170),
        "dwp pays jcp": (jcp["department_pays_per_unit"], 1670),
        "principal": (bond["investor_principal"], 10_000_000),
        "base year": (bond["baseline"]["base_year_funding"], 161_200_000),
        "year 4": (bond["baseline"]["maturity_year_funding"], 145_080_000),
        "outcome payment": (jcp["department_pays_at_target"], 8_350_000),
        "total": (bond["baseline"]["total_at_maturity"], 153_430_000),
        "saving": (bond["baseline"]["saving"], 7_770_000),
        "discretionary": (jcp["discretionary_at_target"], 2_500_000),
        "to investors": (jcp["pays_at_target"], 5_850_000),
    }
    for name, (got, want) in figures.items():
        assert got == want, name
    assert round(100 * bond["break_even_fraction"], 2) == 85.47


def test_terms_text_prints_every_appendix_figure(capsys):
    assert main(["terms", str(CONFIGS / "birmingham_jsa.toml")]) == 0
    out = capsys.readouterr().out
    for figure in ("2,340", "1,170", "1,670", "10,000,000", "161,200,000", "145,080,000",
                   "8,350,000", "153,430,000", "7,770,000", "2,500,000", "5,850,000", "85.47%"):
        assert figure in out, figure


def test_brighter_futures_shares_follow_savings():
    # Report section 3.2: per successful case the council saves £425,404, PCTs
    # £93,112 and schools £41,910; each agency pays its share of the saving.
    cfg = load_config(CONFIGS / "brighter_futures.toml")
    bond = term_sheet(cfg).bonds[0]
    savings = {"BCC": 425_404, "PCT": 93_112, "SCHOOLS": 41_910}
    total = sum(savings.values())
    for payer in bond.payers:
        assert payer.share == pytest.approx(savings[payer.agency] / total, rel=1e-15)
        assert payer.pays_per_unit == pytest.approx(
            bond.price_per_unit * savings[payer.agency] / total, rel=1e-14)
    assert math.fsum(p.pays_per_unit for p in bond.payers) == pytest.approx(
        bond.price_per_unit, rel=1e-14)
    saved = {s.department: s.per_unit for s in bond.savings}
    assert saved == {"CLG": 425_404, "DH": 93_112, "DfE": 41_910}


def test_cap_below_target_limits_payoff(tmp_path):
    text = (CONFIGS / "birmingham_jsa.toml").read_text().replace("cap = 5000", "cap = 4000")
    path = tmp_path / "capped.toml"
    path.write_text(text)
    bond = term_sheet(load_config(path)).bonds[0]
    assert bond.paid_units_at_target == 4000
    assert bond.investor_payoff_at_target == 4000 * 2340
    assert bond.payers[0].department_pays_at_target == 4000 * 1670
