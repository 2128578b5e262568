"""Payments by date of bonds paying at several dates (``dated_payment``).

The kernel writes each measurement's payment and each coupon of a bond with
more than one payment (cohort measurements, coupons) into its own slot; the
set-asides split such bonds by year from it and investor classes hold them
directly (docs/decisions.md). Reference values are worked out by hand in
the comments above them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate
from lobsim.analysis.setaside import bond_year_payments, compute_set_asides
from lobsim.model.tax import instrument_flows
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

NOISY = {"national_phi": 0.8, "national_sigma": 0.02, "regional_phi": 0.7,
         "regional_sigma": 0.02, "area_phi": 0.6, "area_sigma": 0.03,
         "measurement_sigma": 0.01}

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Two cohorts and a coupon on a bond of 100 target units for 200,000 (cost
# 2,000 a unit; price 2,000 x 1.17 = 2,340): the cohort measured at year 2
# is capped at 50 units, the catch-up at maturity (year 4) at 100; a 5%
# coupon (10,000) at year 1.
TWO_DATES = {"measurements": [{"at": 2.0, "cap": 50.0}, {"at": 4.0}],
             "coupons": [{"at": 1.0, "rate": 0.05}]}
PAYERS = [{"agency": "AG", "share": 0.5, "agency_premium": 500.0},
          {"agency": "AG2", "share": 0.5}]


def _world(tmp_path: Path, *, noise: bool = False, theta_sd: float = 0.0,
           investor_classes: list[dict] | None = None) -> dict:
    """A deterministic (or noisy) world: the two-date bond ``dated`` and a
    one-date bond ``once``, both paid half by DEPT (with a 500 premium per
    unit) and half by D2. The programme ramps in linearly over 4 years."""
    u = make_universe(tmp_path, 8, base=20_000.0)
    bonds = [bond_dict("dated", u.ids[0], target=100.0, maturity=4.0, payers=PAYERS,
                       payment=TWO_DATES, donors=2),
             bond_dict("once", u.ids[3], target=80.0, maturity=3.0, payers=PAYERS, donors=2)]
    doc = config_dict(u, bonds, process=NOISY if noise else None,
                      departments=("DEPT", "D2"), agencies={"AG": "DEPT", "AG2": "D2"},
                      interventions=[intervention_dict(mean=0.85 if theta_sd else 1.0,
                                                       sd=theta_sd, rho_type=0.5,
                                                       ramp_years=4.0)])
    if investor_classes:
        doc["investor_classes"] = investor_classes
    return doc


def test_noiseless_cohort_payments_by_hand(tmp_path):
    # No noise, theta = 1, linear 4-year ramp: at year 2 half the target is
    # delivered (50 units, the cohort cap), all 100 at year 4. Per unit at
    # 2,340: 50 x 2,340 = 117,000 at year 2, the 50 more units at year 4 pay
    # 117,000 again; the coupon is 0.05 x 200,000 = 10,000 at year 1. The
    # one-date bond ("once", 80 units, maturity 3) has 3/4 of its target:
    # 60 units, 140,400 at year 3.
    ds = simulate(parse(_world(tmp_path)), scenarios=50, seed=3)
    assert ds.dated_payment.dims == ("scenario", "payment")
    assert ds.dated_payment.attrs["units"] == "GBP"
    # slots: the measurements in order, then the coupons; "once" has none
    assert ds.payment_bond.values.tolist() == ["dated"] * 3
    assert ds.payment_time.values.tolist() == [2.0, 4.0, 1.0]
    assert ds.payment_year.values.tolist() == [2, 4, 1]
    assert ds.payment_coupon.values.tolist() == [False, False, True]
    want = np.array([117_000.0, 117_000.0, 10_000.0])
    np.testing.assert_allclose(ds.dated_payment.values, np.tile(want, (50, 1)), rtol=1e-12)
    np.testing.assert_allclose(ds.investor_payment.sel(bond="dated").values, 244_000.0,
                               rtol=1e-12)
    np.testing.assert_allclose(ds.investor_payment.sel(bond="once").values, 140_400.0,
                               rtol=1e-12)


def test_no_slots_without_bonds_paying_at_several_dates(tmp_path):
    doc = _world(tmp_path)
    doc["bonds"] = doc["bonds"][1:]
    ds = simulate(parse(doc), scenarios=20, seed=1)
    assert ds.sizes["payment"] == 0 and ds.dated_payment.shape == (20, 0)


def _check_sums(ds) -> None:
    """dated_payment sums to investor_payment per bond and scenario (1e-9 relative)."""
    bonds = np.unique(ds.payment_bond.values)
    assert bonds.size > 0
    for b in bonds:
        total = ds.dated_payment.values[:, ds.payment_bond.values == b].sum(axis=1)
        np.testing.assert_allclose(total, ds.investor_payment.sel(bond=b).values, rtol=1e-9,
                                   atol=1e-9, err_msg=str(b))


def test_dated_payments_sum_to_the_investor_payment_on_the_basket_demo():
    # its Peterborough-style cohort bond pays at years 2, 3, 4 and 5
    ds = simulate(load_config(CONFIGS / "basket_demo.toml"), scenarios=2000, seed=5)
    assert "north_west_18-referral" in ds.payment_bond.values
    assert ds.payment_time.values[ds.payment_bond.values == "north_west_18-referral"].tolist() \
        == [2.0, 3.0, 4.0, 5.0]
    _check_sums(ds)
    assert ds.dated_payment.values.sum() > 0.0


def test_dated_payments_sum_to_the_investor_payment_on_peterborough():
    cfg = load_config(CONFIGS / "real" / "peterborough.toml")
    t0 = time.perf_counter()
    ds = simulate(cfg, scenarios=2000, seed=5)
    assert time.perf_counter() - t0 < 120.0
    _check_sums(ds)


def test_noisy_split_adds_up_to_the_department_book(tmp_path):
    # The set-aside split of each bond by year, formed from dated_payment,
    # must add up to the kernel's own department payments of every year and
    # department: measurements at share x a + premium x a / price, the
    # one-date bond at share x payment + premium x paid units, coupons by
    # share only. A binary bond with a coupon checks the "measured once" rule.
    doc = _world(tmp_path, noise=True, theta_sd=0.15)
    u = make_universe(tmp_path, 8, base=20_000.0)
    doc["bonds"].append(bond_dict(
        "binary", u.ids[6], target=60.0, maturity=3.0, payers=PAYERS, donors=1,
        payment={"mechanism": "binary", "trigger": 0.7,
                 "coupons": [{"at": 2.0, "rate": 0.03}]}))
    ds = simulate(parse(doc), scenarios=3000, seed=7)
    assert set(ds.payment_bond.values) == {"dated", "binary"}
    _check_sums(ds)
    for i in range(ds.sizes["department"]):
        for j in range(ds.sizes["year"]):
            np.testing.assert_allclose(bond_year_payments(ds, i, j).sum(axis=1),
                                       ds.department_payment.values[:, i, j], rtol=1e-12,
                                       atol=1e-6, err_msg=f"department {i}, year {j}")
    # every bond is in the stand-alone comparison of the cells it pays into
    s = compute_set_asides(ds, 0.95)
    assert {b for b, *_ in s.bonds["DEPT"]} == {"dated", "once", "binary"}
    np.testing.assert_allclose(s.split_book, s.book, rtol=1e-9, atol=1e-6)


def test_deterministic_two_date_bond_sets_aside_its_payment_each_year(tmp_path):
    # The payments of the first test: DEPT pays half the price plus a 500
    # premium per unit, D2 half the price. Year 1 (the coupon, no premium):
    # 5,000 each. Years 2 and 4 (50 units, 117,000): DEPT
    # 0.5 x 117,000 + 500 x 50 = 83,500, D2 58,500. The one-date bond pays
    # 60 x 2,340 = 140,400 at year 3: DEPT 70,200 + 500 x 60 = 100,200, D2
    # 70,200. Nothing is random: the set-aside is the payment at any level,
    # bond by bond too, and there is no diversification benefit.
    ds = simulate(parse(_world(tmp_path)), scenarios=200, seed=2)
    want = {("DEPT", 1): 5_000.0, ("D2", 1): 5_000.0,
            ("DEPT", 2): 83_500.0, ("D2", 2): 58_500.0,
            ("DEPT", 3): 100_200.0, ("D2", 3): 70_200.0,
            ("DEPT", 4): 83_500.0, ("D2", 4): 58_500.0}
    for level in (0.5, 0.99):
        s = compute_set_asides(ds, level)
        for (d, y), amount in want.items():
            i, j = s.departments.index(d), s.years.index(y)
            assert s.book[i, j] == pytest.approx(amount, rel=1e-12), (d, y)
            assert s.standalone_sum[i, j] == pytest.approx(amount, rel=1e-12), (d, y)
            assert s.benefit[i, j] == pytest.approx(0.0, abs=1e-6)
        assert s.bonds["DEPT"] == [
            ("dated", 1, pytest.approx(5_000.0), pytest.approx(5_000.0)),
            ("dated", 2, pytest.approx(83_500.0), pytest.approx(83_500.0)),
            ("once", 3, pytest.approx(100_200.0), pytest.approx(100_200.0)),
            ("dated", 4, pytest.approx(83_500.0), pytest.approx(83_500.0))]
    text = s.to_dict()
    assert text["schema"] == "lobsim.setaside/2"
    assert "not_split_by_year" not in text["departments"]["DEPT"]["years"]["2"]


def test_after_tax_irr_of_a_directly_held_two_date_bond_by_hand(tmp_path):
    # SITR holder (30% relief, 40% tax) of the two-date bond: 200,000 in at
    # year 0, 140,000 after relief. Received 10,000 (year 1), 117,000
    # (year 2), 117,000 (year 4): 244,000 in all. Capital first: by year 2
    # 127,000 of the 200,000 is back, no gain; at year 4 the gain is 44,000,
    # taxed 17,600. Net flows -140,000, 10,000, 117,000, 99,400 at years
    # 0, 1, 2, 4: with v = 1 / (1 + r),
    # 99,400 v^4 + 117,000 v^2 + 10,000 v - 140,000 = 0; its one positive root
    # (the coefficients change sign once) by numpy's polynomial roots.
    # Tax exempt, no relief: -200,000, 10,000, 117,000, 117,000.
    classes = [{"id": "sitr", "relief": 0.3, "tax_rate": 0.4, "bonds": ["dated"]},
               {"id": "exempt", "bonds": ["dated"]}]
    ds = simulate(parse(_world(tmp_path, investor_classes=classes)), scenarios=100, seed=1)

    def rate(coefs: list[float]) -> float:
        roots = np.roots(coefs)
        v = [z.real for z in roots if abs(z.imag) < 1e-12 and z.real > 0.0]
        assert len(v) == 1
        return 1.0 / v[0] - 1.0

    sitr = rate([99_400.0, 0.0, 117_000.0, 10_000.0, -140_000.0])
    exempt = rate([117_000.0, 0.0, 117_000.0, 10_000.0, -200_000.0])
    assert 0.05 < exempt < sitr < 0.2  # relief lifts the return more than tax cuts it
    np.testing.assert_allclose(ds.after_tax_irr.sel(holding="sitr:dated").values, sitr,
                               rtol=1e-9)
    np.testing.assert_allclose(ds.after_tax_irr.sel(holding="exempt:dated").values, exempt,
                               rtol=1e-9)
    # and exempt is the bond's own pre-tax IRR from the kernel
    np.testing.assert_allclose(ds.irr.sel(bond="dated").values, exempt, rtol=1e-9)
    paid = ds.holding_paid_in.sel(holding="sitr:dated").values
    assert paid.tolist() == [200_000.0 if t == 0.0 else 0.0 for t in ds.time.values]


def test_results_without_dated_payments_still_give_one_date_flows(tmp_path):
    # Results written before dated_payment existed hold only bonds paying at
    # one date directly (the config refused the others): their flows are the
    # total payment at maturity, 140,400 at year 3 for "once".
    ds = simulate(parse(_world(tmp_path)), scenarios=10, seed=1)
    old = ds.drop_vars(["dated_payment", "payment_bond", "payment_time", "payment_year",
                        "payment_coupon"])
    paid_in, received = instrument_flows(old, "bond", "once")
    times = ds.time.values.tolist()
    assert paid_in.tolist() == [160_000.0 if t == 0.0 else 0.0 for t in times]
    np.testing.assert_allclose(received[:, times.index(3.0)], 140_400.0, rtol=1e-12)
    assert received.sum() == pytest.approx(10 * 140_400.0, rel=1e-12)
