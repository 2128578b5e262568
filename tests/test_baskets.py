"""Baskets and their waterfalls: membership (risk bands), composition, tranches.

Waterfall reference values are computed by hand from the rules in
docs/baskets.md (sequential pay senior first, balances accruing at the
premium, residual to the most junior, guarantee and protection at the final
date); each test writes the arithmetic out.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim import load_config, simulate, summarize
from lobsim.analysis.summary import summary_dict
from lobsim.cli.commands import main
from lobsim.errors import ConfigError
from lobsim.model.basket import basket_composition, format_composition
from lobsim.model.config import Tranche
from lobsim.model.screening import resolve_risk_bands
from lobsim.model.waterfall import run_waterfall, tranche_irr
from lobsim.model.world import build_world
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tranche(id: str, share: float, seniority: int, premium: float, *, coupon: float = 0.0,
            protected: bool = False) -> Tranche:
    return Tranche(id=id, share=share, seniority=seniority, premium=premium,
                   early_coupon=coupon, protected=protected)


# ---------------------------------------------------------------------------
# Membership: rules and risk bands
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def banded_world(tmp_path_factory):
    """Six bonds in two regions: three certain to pay, three certain to default.

    theta = 1 exactly ("sure"): the payment is target x price > principal, so
    the default probability is 0; theta = 0.5 ("weak"): 0.5 x 1.17 < 1, so it
    is 1 (docs/model.md section 2.2: default below 2000/2340 = 85.5% success).
    """
    u = make_universe(tmp_path_factory.mktemp("banded"), 12,
                      regions=["north"] * 6 + ["south"] * 6)
    kinds = ["sure", "weak", "sure", "weak", "sure", "weak"]
    areas = ["a000", "a002", "a004", "a006", "a008", "a010"]
    bonds = [bond_dict(f"b{i}", a, intervention=k, target=100.0 + 10 * i,
                       maturity=3.0 + (i % 2))
             for i, (a, k) in enumerate(zip(areas, kinds, strict=True))]
    doc = config_dict(u, bonds, interventions=[intervention_dict("sure", mean=1.0),
                                               intervention_dict("weak", mean=0.5)],
                      baskets=[
                          {"id": "safe", "risk_band": [0.0, 0.5]},
                          {"id": "risky_north", "risk_band": [0.5, 1.0],
                           "where": {"regions": ["north"]}},
                          {"id": "listed", "bonds": ["b0", "b1"]},
                      ], scenarios=500)
    return doc


def test_risk_band_baskets_hold_the_bonds_in_the_band(banded_world):
    cfg = parse(banded_world)
    bands = resolve_risk_bands(cfg)
    assert bands.scenarios == 500  # the config's count, below RISK_BAND_SCENARIOS
    np.testing.assert_array_equal(bands.default_probability, [0, 1, 0, 1, 0, 1])
    assert bands.config.baskets[0].bonds == ("b0", "b2", "b4")
    # where and band together: north (a000..a005 -> b0, b1, b2) and risky
    assert bands.config.baskets[1].bonds == ("b1",)
    ds = simulate(cfg, scenarios=300, seed=5)
    member = ds.basket_member.sel(basket="safe").values
    np.testing.assert_array_equal(member, [True, False, True, False, True, False])
    np.testing.assert_array_equal(ds.screening_default_probability.values, [0, 1, 0, 1, 0, 1])
    assert float(ds.basket_payment.sel(basket="safe").min()) > 0


def test_a_band_without_bonds_names_the_probabilities(banded_world):
    doc = dict(banded_world)
    doc["baskets"] = [{"id": "middle", "risk_band": [0.2, 0.8]}]
    with pytest.raises(ConfigError, match=r"baskets\[0\]: no bond matches.*range from 0 to 1"):
        simulate(parse(doc), scenarios=200)


def test_membership_is_a_property_of_the_config(banded_world):
    # the screening run depends on the config only (its seed, at most
    # RISK_BAND_SCENARIOS scenarios), so a world built directly, and runs of
    # any size or seed, put the same bonds in a risk-band basket
    cfg = parse(banded_world)
    direct = build_world(cfg).basket_members
    for n, seed in ((100, 1), (300, 2)):
        np.testing.assert_array_equal(simulate(cfg, scenarios=n, seed=seed).basket_member.values,
                                      direct)


def test_composition_report(banded_world):
    cfg = parse(banded_world)
    ds = simulate(cfg, scenarios=300, seed=5)
    comp = basket_composition(ds)
    listed = comp.sel(basket="listed")
    # b0 (target 100) and b1 (target 110), cost 2000: principals 200,000 and 220,000
    assert int(listed.bonds) == 2
    assert float(listed.principal) == 420_000.0
    assert float(listed.mean_default_probability) == 0.5
    assert float(listed.weighted_default_probability) == pytest.approx(220 / 420, abs=1e-15)
    by_type = listed.principal_by_intervention.to_series().to_dict()
    assert by_type == {"sure": 200_000.0, "weak": 220_000.0}
    by_maturity = comp.sel(basket="safe").principal_by_maturity.to_series().to_dict()
    # b0, b2, b4 have maturities 3, 3, 3 (i even)
    assert by_maturity == {3.0: 200_000.0 + 240_000.0 + 280_000.0, 4.0: 0.0}
    text = format_composition(comp)
    assert "safe" in text and "region: north" in text


# ---------------------------------------------------------------------------
# The waterfall by hand
# ---------------------------------------------------------------------------
SENIOR_JUNIOR = [tranche("senior", 0.7, 1, 0.05), tranche("junior", 0.3, 2, 0.10)]


def test_sequential_pay_residual_and_first_loss_guarantee():
    # 100 paid in at t = 0; one payment at t = 4 in three scenarios.
    cash = np.array([[0.0, 90.0], [0.0, 50.0], [0.0, 200.0]])
    w = run_waterfall(cash, np.array([100.0, 0.0]), np.array([0.0, 4.0]), SENIOR_JUNIOR,
                      guarantee_cap=20.0)
    senior_due = 70 * 1.05**4  # 85.0854375
    # 90: the senior gets its balance, the junior the rest (4.91), short by
    # 25.09 of its 30; the guarantee covers 20 of it
    np.testing.assert_allclose(w.payment[0], [senior_due, 90 - senior_due + 20], rtol=1e-14)
    np.testing.assert_allclose(w.guarantee[0], [0.0, 20.0])
    # 50: the senior is short 20, the junior gets nothing (short 30); the
    # guarantee absorbs the first 20 of the 50 lost, the junior the other 30:
    # the senior is made whole, the junior loses everything
    np.testing.assert_allclose(w.guarantee[1], [20.0, 0.0])
    np.testing.assert_array_equal(w.payment[1], [70.0, 0.0])
    # 200: the junior takes the residual beyond its own balance 30 x 1.1^4
    np.testing.assert_allclose(w.payment[2], [senior_due, 200 - senior_due], rtol=1e-14)
    assert w.payment[2, 1] > 30 * 1.1**4
    np.testing.assert_array_equal(w.guarantee[2], [0.0, 0.0])


def test_protected_class_beside_a_first_loss_class():
    # Benevolent Society style: P (75%, protected, 5%) and E (25%, 15%), 5 years
    cash = np.array([[0.0, 50.0], [0.0, 120.0]])
    pe = [tranche("P", 0.75, 1, 0.05, protected=True), tranche("E", 0.25, 2, 0.15)]
    w = run_waterfall(cash, np.array([100.0, 0.0]), np.array([0.0, 5.0]), pe)
    # 50: P gets it all and its protector the missing 25; E loses everything
    np.testing.assert_array_equal(w.payment[0], [75.0, 0.0])
    np.testing.assert_array_equal(w.protection[0], [25.0, 0.0])
    # 120: P gets 75 x 1.05^5, E the rest
    np.testing.assert_allclose(w.payment[1], [75 * 1.05**5, 120 - 75 * 1.05**5], rtol=1e-14)
    irr = tranche_irr(w, np.array([0.0, 5.0]))
    assert irr[0, 0] == pytest.approx(0.0, abs=1e-12)  # principal back, no more
    assert irr[0, 1] == -1.0
    assert irr[1, 0] == pytest.approx(0.05, abs=1e-12)


def test_early_coupon_is_paid_before_senior_principal():
    # senior 60% at 4%; junior 40% at 8% with a 5% early coupon; 100 paid in
    # at 0; cash 10 at t = 2 and 100 at t = 4
    tr = [tranche("senior", 0.6, 1, 0.04), tranche("junior", 0.4, 2, 0.08, coupon=0.05)]
    w = run_waterfall(np.array([[0.0, 10.0, 100.0]]), np.array([100.0, 0.0, 0.0]),
                      np.array([0.0, 2.0, 4.0]), tr)
    coupon = 0.05 * 40 * 2  # 4 per two-year period, paid first
    senior_2 = 60 * 1.04**2 - (10 - coupon)  # the senior takes the other 6
    senior_4 = senior_2 * 1.04**2
    np.testing.assert_allclose(w.received[0, :, 1], [10 - coupon, coupon], rtol=1e-14)
    np.testing.assert_allclose(w.received[0, :, 2], [senior_4, 100 - senior_4], rtol=1e-14)


def test_a_tranche_paid_its_balance_earns_its_premium():
    # principal paid in at 0 and at 1 (two bonds starting), cash at 3 and 5
    # ample enough to pay both balances: both IRRs equal the premiums
    times = np.array([0.0, 1.0, 3.0, 5.0])
    paid_in = np.array([60.0, 40.0, 0.0, 0.0])
    tr = [tranche("a", 0.5, 1, 0.03), tranche("b", 0.3, 2, 0.07), tranche("c", 0.2, 3, 0.2)]
    w = run_waterfall(np.array([[0.0, 0.0, 40.0, 150.0]]), paid_in, times, tr)
    irr = tranche_irr(w, times)
    np.testing.assert_allclose(irr[0, :2], [0.03, 0.07], atol=1e-12)
    assert irr[0, 2] > 0.2  # the junior's residual beats its premium here


@settings(max_examples=60)
@given(data=st.data())
def test_waterfall_conserves_cash_and_respects_caps(data):
    n_t = data.draw(st.integers(2, 5))
    cash = np.array(data.draw(st.lists(st.lists(st.floats(0, 200), min_size=n_t, max_size=n_t),
                                       min_size=1, max_size=6)))
    cash[:, 0] = 0.0
    k = data.draw(st.integers(1, 4))
    raw = np.array(data.draw(st.lists(st.floats(0.05, 1.0), min_size=k, max_size=k)))
    shares = raw / raw.sum()
    tr = [tranche(f"t{i}", float(shares[i]), i + 1, data.draw(st.floats(0, 0.3)),
                  coupon=data.draw(st.sampled_from([0.0, 0.0, 0.05])),
                  protected=data.draw(st.booleans()))
          for i in range(k)]
    cap = data.draw(st.one_of(st.none(), st.floats(1.0, 80.0)))
    times = np.cumsum(np.r_[0.0, data.draw(st.lists(st.floats(0.5, 3.0), min_size=n_t - 1,
                                                    max_size=n_t - 1))])
    w = run_waterfall(cash, np.r_[100.0, np.zeros(n_t - 1)], times, tr, guarantee_cap=cap)
    from_cash = w.received.sum(axis=2) - w.guarantee - w.protection
    # every unit of basket cash goes to some tranche, none is created
    np.testing.assert_allclose(from_cash.sum(axis=1), cash.sum(axis=1), rtol=1e-12, atol=1e-9)
    assert np.all(from_cash >= -1e-12)
    assert np.all(w.guarantee.sum(axis=1) <= (cap or 0.0) + 1e-9)
    protected = np.array([t.protected for t in tr])
    assert np.all(w.payment[:, protected] >= w.principal[protected] * (1 - 1e-12))
    # top-ups never exceed a tranche's principal shortfall
    assert np.all(w.payment <= np.maximum(from_cash, w.principal) * (1 + 1e-12) + 1e-9)


# ---------------------------------------------------------------------------
# Tranches in a simulation, the summary and the command line
# ---------------------------------------------------------------------------
def test_simulated_tranches_share_the_basket_payments(tmp_path):
    u = make_universe(tmp_path, 8)
    bonds = [bond_dict(f"b{i}", f"a{2 * i:03d}", maturity=3.0 + i) for i in range(3)]
    doc = config_dict(u, bonds, interventions=[intervention_dict(mean=0.85, sd=0.1,
                                                                 rho_type=0.3)],
                      baskets=[{"id": "all3", "bonds": ["b0", "b1", "b2"],
                                "tranches": [{"id": "senior", "share": 0.6, "seniority": 1,
                                              "premium": 0.03},
                                             {"id": "junior", "share": 0.4, "seniority": 2,
                                              "premium": 0.1}],
                                "guarantee": {"cap": 20_000.0}}])
    ds = simulate(parse(doc), scenarios=2000, seed=3)
    assert list(ds.tranche.values) == ["all3/senior", "all3/junior"]
    from_cash = (ds.tranche_payment - ds.tranche_guarantee - ds.tranche_protection).sum("tranche")
    np.testing.assert_allclose(from_cash.values, ds.basket_payment.sel(basket="all3").values,
                               rtol=1e-12)
    loss = ds.tranche_principal - ds.tranche_payment
    # the senior never loses more than the junior's whole principal has already gone
    senior_loses = loss.sel(tranche="all3/senior") > 0
    assert bool((loss.sel(tranche="all3/junior")[senior_loses] == 0.4 * 600_000).all())
    s = summarize(ds)
    assert float(s.tranche_default_probability.sel(tranche="all3/senior")) < float(
        s.tranche_default_probability.sel(tranche="all3/junior"))
    doc_json = summary_dict(s)
    assert set(doc_json["tranches"]) == {"all3/senior", "all3/junior"}
    assert math.isclose(doc_json["tranches"]["all3/junior"]["share"], 0.4)


def test_a_basket_without_a_guarantee_has_a_cap_of_zero():
    # a number, not NaN: results hold no NaN (the guarantor of such a basket pays nothing)
    cfg = load_config(CONFIGS / "basket_demo.toml")
    ds = simulate(cfg, scenarios=64, seed=1)
    has = [b.guarantee is not None for b in cfg.baskets]
    cap = ds.guarantee_cap.values
    assert np.isfinite(cap).all() and any(has) and not all(has)
    assert (cap[np.logical_not(has)] == 0.0).all() and (cap[has] > 0).all()


def test_cli_run_reports_tranche_results(capsys):
    # Done-when of issue 5: `lobsim run configs/basket_demo.toml` reports tranches
    assert main(["run", str(CONFIGS / "basket_demo.toml"), "--scenarios", "1000",
                 "--composition"]) == 0
    out = capsys.readouterr().out
    assert "\nBasket composition\n" in out and "low_risk" in out
    section = out[out.index("\nTranches\n"):]
    for label in ("north/senior", "north/mezzanine", "north/junior", "low_risk/P",
                  "low_risk/E"):
        assert f"\n{label} " in section, label
    assert "E[guarantee]" in section and "E[protection]" in section
    assert "Diversification" in out
