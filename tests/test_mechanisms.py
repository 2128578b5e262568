"""Payment mechanisms beyond per unit: return grids, return caps, coupons,
cap groups and verified outcomes; and the real structures that need them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate, term_sheet
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def universe(tmp_path_factory):
    # a noiseless world (worlds.ZERO_PROCESS): measured units = true units exactly
    return make_universe(tmp_path_factory.mktemp("mech"), 4, ids=["A", "B", "C", "D"],
                         base=[10_000.0, 12_000.0, 9_000.0, 11_000.0])


def _run(universe, bonds, mean=1.0, **kw):
    doc = config_dict(universe, bonds, interventions=[intervention_dict(mean=mean)], **kw)
    cfg = parse(doc)
    return cfg, simulate(cfg, scenarios=64, seed=3)


GRID = [[0.0, -0.5], [0.6, 0.0], [0.8, 0.05], [1.0, 0.10]]


@pytest.mark.parametrize(("mean", "annual"), [(1.0, 0.10), (0.9, 0.05), (0.7, 0.0),
                                              (0.3, -0.5)])
def test_schedule_pays_the_step_reached(universe, mean, annual):
    # Newpin-style grid: the highest step reached by measured performance sets
    # the annual return; principal x (1 + r)^term is paid at maturity.
    bond = bond_dict("s", "A", target=500, cost=1000.0, maturity=4.0,
                     payment={"mechanism": "schedule", "grid": GRID})
    cfg, ds = _run(universe, [bond], mean=mean)
    want = 500 * 1000.0 * (1.0 + annual) ** 4
    np.testing.assert_allclose(ds.investor_payment.values, want, rtol=1e-12)
    np.testing.assert_allclose(ds.irr.values, annual, rtol=1e-9, atol=1e-12)
    assert (ds.overpayment.values == 0.0).all()  # measured = true: nothing unearned
    if mean == 1.0:
        assert term_sheet(cfg).bonds[0].investor_payoff_at_target == pytest.approx(want)


def test_max_return_caps_cumulative_payments(universe):
    # Peterborough-style cap: payments never exceed principal x (1 + 13%)^t.
    bond = bond_dict("p", "A", target=500, cost=1000.0, basket_risk=1.0, return_premium=0.0,
                     maturity=3.0, payment={"mechanism": "per_unit", "max_return": 0.13})
    _, ds = _run(universe, [bond])
    np.testing.assert_allclose(ds.investor_payment.values, 500_000 * 1.13**3, rtol=1e-12)
    np.testing.assert_allclose(ds.irr.values, 0.13, rtol=1e-9)
    # the cap cuts the units paid for too, and departments pay what investors get
    np.testing.assert_allclose(ds.paid_units.values, 500_000 * 1.13**3 / 2000.0, rtol=1e-12)
    np.testing.assert_allclose(ds.department_payment.sum(("department", "year")).values,
                               ds.investor_payment.values[:, 0], rtol=1e-12)


def test_coupons_are_paid_whatever_the_outcome(universe):
    bond = bond_dict("c", "A", target=500, cost=1000.0, maturity=3.0,
                     payment={"mechanism": "per_unit",
                              "coupons": [{"at": 1.0, "rate": 0.05}, {"at": 2.0, "rate": 0.05}]})
    _, ds = _run(universe, [bond], mean=0.0)  # the programme achieves nothing
    np.testing.assert_allclose(ds.investor_payment.values, 2 * 0.05 * 500_000, rtol=1e-12)
    assert not ds.total_loss.values.any()
    pay = ds.department_payment.isel(department=0).values
    np.testing.assert_allclose(pay[:, :2], 25_000.0, rtol=1e-12)  # years 1 and 2
    assert (pay[:, 2] == 0.0).all()
    # IRR of -500,000 then 25,000 twice and nothing at year 3: by root-finding
    r = ds.irr.values[0, 0]
    npv = -500_000 + 25_000 / (1 + r) + 25_000 / (1 + r) ** 2
    assert abs(npv) < 1e-6


def test_cap_group_caps_combined_payments(universe):
    # A rate card's per-person cap: two outcome bonds share one cap.
    bonds = [bond_dict("x", "A", outcome="o1", target=100, cost=1000.0, basket_risk=0.0,
                       return_premium=0.0),
             bond_dict("y", "A", outcome="o2", target=100, cost=1000.0, basket_risk=0.0,
                       return_premium=0.0)]
    doc = config_dict(universe, bonds, outcomes={"o1": "count", "o2": "count"})
    doc["cap_groups"] = [{"id": "pp", "bonds": ["x", "y"], "cap": 150_000.0}]
    ds = simulate(parse(doc), scenarios=32, seed=1)
    pay = ds.investor_payment.values
    np.testing.assert_allclose(pay.sum(axis=1), 150_000.0, rtol=1e-12)
    np.testing.assert_allclose(pay[:, 0], 100_000.0)  # taken in bond order
    np.testing.assert_allclose(pay[:, 1], 50_000.0)


def test_verified_outcomes_measure_the_true_units(tmp_path):
    # weights = "verified": no comparison group; measured = true even with noise
    noisy = {"national_phi": 0.8, "national_sigma": 0.1, "regional_phi": 0.8,
             "regional_sigma": 0.1, "area_phi": 0.5, "area_sigma": 0.2,
             "measurement_sigma": 0.05}
    u = make_universe(tmp_path, 3, ids=["A", "B", "C"], base=[5000.0, 6000.0, 7000.0])
    bond = bond_dict("v", "A", target=300)
    bond["control"] = {"weights": "verified"}
    cfg = parse(config_dict(u, [bond], process=noisy,
                            interventions=[intervention_dict(mean=0.7, sd=0.2)]))
    ds = simulate(cfg, scenarios=500, seed=2)
    np.testing.assert_array_equal(ds.measured_units.values, ds.true_units.values)
    assert (ds.prediction_error.values == 0.0).all()
    assert ds.true_units.std() > 0


@pytest.mark.parametrize("name", ["peterborough", "newpin", "dwp_innovation_fund"])
def test_real_structures_load_and_simulate(name):
    cfg = load_config(CONFIGS / "real" / f"{name}.toml")
    ds = simulate(cfg, scenarios=2000, seed=11)
    pay = ds.investor_payment.values
    assert np.isfinite(pay).all() and (pay >= 0).all()
    assert 0.0 < float(ds.default.mean()) < 1.0  # neither certain nor impossible
    if name == "peterborough":
        bond = cfg.bonds[0]
        assert len(bond.payment.measurements) == 4
        # never more than 13% a year (the cap holds at maturity)
        assert pay.max() <= bond.principal * 1.13 ** bond.term * (1 + 1e-12)
    if name == "newpin":
        # the three 5% coupons are always paid
        assert pay.min() >= 0.15 * cfg.bonds[0].principal * (1 - 1e-12)
    if name == "dwp_innovation_fund":
        assert (pay.sum(axis=1) <= cfg.cap_groups[0].cap * (1 + 1e-12)).all()
