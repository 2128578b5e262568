"""After-tax returns of investor classes (lobsim.model.tax; docs/decisions.md).

Reference values are computed by hand in the comments above them, from the
rules in the lobsim.model.tax docstring: relief of ``relief x capital`` when the
capital is paid in; tax at ``tax_rate`` on what is received beyond the
capital paid in so far (capital first), when it is received.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim import simulate, summarize
from lobsim.analysis.summary import format_summary, summary_dict
from lobsim.model.tax import after_tax_flows, default_adjusted_returns, irr
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

TIMES = np.array([0.0, 2.0])


def _irr(paid: float, received: float, relief: float, rate: float, term: float = 2.0) -> float:
    flows = after_tax_flows(np.array([paid, 0.0]), np.array([[0.0, received]]), relief, rate)
    return float(irr(np.array([0.0, term]), flows)[0])


# ---------------------------------------------------------------------------
# 1. Hand-computed cash flows
# ---------------------------------------------------------------------------
def test_relief_and_tax_by_hand():
    # 100 in at year 0, 121 back at year 2: 10% a year before tax
    assert _irr(100.0, 121.0, 0.0, 0.0) == pytest.approx(0.10, abs=1e-12)
    # 30% relief: 70 in, 121 back: sqrt(121 / 70) - 1 = 31.475...%
    assert _irr(100.0, 121.0, 0.30, 0.0) == pytest.approx(math.sqrt(121 / 70) - 1, abs=1e-12)
    # 20% tax on the 21 gain: 121 - 4.2 = 116.8 back: sqrt(1.168) - 1 = 8.074...%
    assert _irr(100.0, 121.0, 0.0, 0.20) == pytest.approx(math.sqrt(1.168) - 1, abs=1e-12)
    # a default: 50 back, no gain, no tax; with relief sqrt(50 / 70) - 1 = -15.49...%
    assert _irr(100.0, 50.0, 0.30, 0.40) == pytest.approx(math.sqrt(50 / 70) - 1, abs=1e-12)
    # nothing back: -1 whatever the relief
    assert _irr(100.0, 0.0, 0.30, 0.40) == -1.0


def test_tax_is_on_the_return_beyond_capital_first():
    # 100 in at 0; 60 at 1 and 60 at 2: the first 100 received is capital, the
    # 20 beyond it is taxed at 25% when received (5 at year 2)
    flows = after_tax_flows(np.array([100.0, 0.0, 0.0]), np.array([[0.0, 60.0, 60.0]]), 0.0,
                            0.25)
    np.testing.assert_allclose(flows, [[-100.0, 60.0, 55.0]])
    # a basket with a later start: 100 in at 0, 150 back at 1 (50 taxed: the 100
    # more paid in at 1 comes after that day's payments), 100 back at 2:
    # receipts 250 less capital 200 is still the 50 already taxed, nothing more due
    flows = after_tax_flows(np.array([100.0, 100.0, 0.0]), np.array([[0.0, 150.0, 100.0]]),
                            0.1, 0.2)
    np.testing.assert_allclose(flows, [[-90.0, 150.0 - 10.0 - 90.0, 100.0]])


def test_a_loss_is_not_relieved():
    # 100 in, 80 back at year 2: a 20 loss. No tax is due, and none is refunded:
    # the after-tax IRR is sqrt(0.8) - 1 = -10.56% at every tax rate
    for rate in (0.0, 0.2, 0.45, 1.0):
        flows = after_tax_flows(np.array([100.0, 0.0]), np.array([[0.0, 80.0]]), 0.0, rate)
        np.testing.assert_array_equal(flows, [[-100.0, 80.0]])
        assert _irr(100.0, 80.0, 0.0, rate) == pytest.approx(math.sqrt(0.8) - 1, abs=1e-12)
    # with 30% relief the holder is ahead (70 in, 80 back), yet nothing is taxed:
    # tax is on what comes back beyond the capital, before relief
    assert _irr(100.0, 80.0, 0.3, 0.4) == pytest.approx(math.sqrt(80 / 70) - 1, abs=1e-12)


def test_after_tax_irr_of_staggered_flows_by_hand():
    # the basket of test_tax_is_on_the_return_beyond_capital_first: net flows
    # -90, 50, 100 at years 0, 1, 2. With x = 1 / (1 + r):
    # 100 x^2 + 50 x - 90 = 0, x = (-50 + sqrt(50^2 + 4 x 100 x 90)) / 200
    flows = after_tax_flows(np.array([100.0, 100.0, 0.0]), np.array([[0.0, 150.0, 100.0]]),
                            0.1, 0.2)
    x = (-50.0 + math.sqrt(50.0 ** 2 + 4 * 100.0 * 90.0)) / 200.0
    assert float(irr(np.array([0.0, 1.0, 2.0]), flows)[0]) == pytest.approx(1 / x - 1,
                                                                           abs=1e-10)
    # on a run's grid, an instrument starting later is timed from its own start
    later = np.array([[0.0, -100.0, 0.0, 121.0]])
    assert float(irr(np.array([0.0, 1.5, 2.5, 3.5]), later)[0]) == pytest.approx(0.1, abs=1e-12)


def test_default_adjusted_return_is_the_irr_of_expected_flows():
    # two equally likely scenarios, 121 or nothing at year 2 for 100 at 0:
    # E[flows] = (-100, 60.5), IRR sqrt(0.605) - 1 = -22.2%; E[IRR] is
    # (10% - 100%) / 2 = -45%: the mean of rates punishes the total loss more
    flows = np.array([[-100.0, 121.0], [-100.0, 0.0]])
    da = default_adjusted_returns(TIMES, flows.mean(axis=0)[None, :])
    assert da[0] == pytest.approx(math.sqrt(0.605) - 1, abs=1e-12)
    assert irr(TIMES, flows).mean() == pytest.approx(-0.45, abs=1e-12)


# ---------------------------------------------------------------------------
# 2. Properties
# ---------------------------------------------------------------------------
@settings(max_examples=200)
@given(st.floats(1.0, 1e7), st.just(0.0) | st.floats(1e-3, 3.0), st.floats(0.5, 10.0),
       st.floats(0.0, 0.95), st.floats(0.0, 0.95), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_after_tax_irr_rises_with_relief_and_falls_with_tax(principal, multiple, term, r1, r2,
                                                            t1, t2):
    received = principal * multiple
    lo_r, hi_r = sorted((r1, r2))
    lo_t, hi_t = sorted((t1, t2))
    if received == 0.0:
        return  # -1 whatever the rates
    tol = 1e-9
    assert _irr(principal, received, hi_r, lo_t, term) >= _irr(principal, received, lo_r, lo_t,
                                                                 term) - tol
    assert _irr(principal, received, lo_r, hi_t, term) <= _irr(principal, received, lo_r, lo_t,
                                                                 term) + tol
    # no relief and no tax: the pre-tax IRR in closed form
    assert _irr(principal, received, 0.0, 0.0, term) == pytest.approx(
        multiple ** (1 / term) - 1, rel=1e-9, abs=1e-12)


@settings(max_examples=200)
@given(st.floats(1.0, 1e6), st.lists(st.floats(0.0, 1e6), min_size=1, max_size=5),
       st.floats(0.0, 0.95), st.floats(0.0, 1.0))
def test_tax_is_the_rate_on_the_gain_and_never_negative(principal, receipts, relief, rate):
    # one pay-in at the first date, receipts after it: the tax over all dates is
    # rate x max(0, total received - principal), none of it negative
    received = np.array([[0.0, *receipts]])
    paid = np.zeros(received.shape[1])
    paid[0] = principal
    flows = after_tax_flows(paid, received, relief, rate)
    tax = received - (1.0 - relief) * paid - flows
    assert (tax >= -1e-9 * principal).all()
    assert tax.sum() == pytest.approx(rate * max(0.0, sum(receipts) - principal),
                                      rel=1e-9, abs=1e-9 * principal)


@settings(max_examples=200)
@given(st.floats(1.0, 1e7), st.floats(1e-3, 3.0), st.floats(0.5, 10.0), st.floats(0.0, 0.95),
       st.floats(0.0, 1.0))
def test_relief_alone_raises_and_tax_alone_lowers_the_pre_tax_irr(principal, multiple, term,
                                                                  relief, rate):
    received = principal * multiple
    pre = _irr(principal, received, 0.0, 0.0, term)
    assert _irr(principal, received, relief, 0.0, term) >= pre - 1e-9
    assert _irr(principal, received, 0.0, rate, term) <= pre + 1e-9
    if multiple <= 1.0:  # no gain, no tax: the rate does not matter
        assert _irr(principal, received, relief, rate, term) == pytest.approx(
            _irr(principal, received, relief, 0.0, term), abs=1e-12)


# ---------------------------------------------------------------------------
# 3. In a simulated world, through the config, the Dataset and the summary
# ---------------------------------------------------------------------------
def _world(tmp_path, **kw):
    u = make_universe(tmp_path, 8, base=10_000.0)
    bonds = [bond_dict(f"b{i}", u.ids[2 * i], target=100.0, maturity=4.0) for i in range(3)]
    basket = {"id": "k", "bonds": ["b0", "b1", "b2"],
              "tranches": [{"id": "senior", "share": 0.7, "seniority": 1, "premium": 0.02},
                           {"id": "junior", "share": 0.3, "seniority": 2, "premium": 0.08}]}
    doc = config_dict(u, bonds, baskets=[basket], **kw)
    doc["investor_classes"] = [
        {"id": "sitr", "relief": 0.3, "tax_rate": 0.4, "bonds": ["b0"],
         "tranches": ["k/junior"]},
        {"id": "exempt", "bonds": ["b0"], "tranches": ["k/senior", "k/junior"],
         "baskets": ["k"]},
    ]
    return doc


def test_deterministic_bond_after_tax_by_hand(tmp_path):
    # No noise, theta = 1: b0 pays 100 x 2,340 = 234,000 at year 4 for 200,000.
    # Pre-tax IRR 1.17^(1/4) - 1 = 4.0035%. SITR holder: 140,000 in (30%
    # relief), 234,000 - 0.4 x 34,000 = 220,400 back: (220,400 / 140,000)^(1/4) - 1
    # = 12.01%. Nothing is random: E[IRR] and the default-adjusted return agree.
    ds = simulate(parse(_world(tmp_path)), scenarios=200, seed=1)
    assert list(ds.holding.values) == ["sitr:b0", "sitr:k/junior", "exempt:b0",
                                       "exempt:k/senior", "exempt:k/junior", "exempt:k"]
    want = (220_400 / 140_000) ** 0.25 - 1
    np.testing.assert_allclose(ds.after_tax_irr.sel(holding="sitr:b0").values, want, rtol=1e-12)
    s = summarize(ds)
    h = s.sel(holding="sitr:b0")
    assert float(h.holding_mean_irr) == pytest.approx(1.17 ** 0.25 - 1, rel=1e-12)
    assert float(h.holding_after_tax_mean_irr) == pytest.approx(want, rel=1e-12)
    assert float(h.holding_default_adjusted_return) == pytest.approx(1.17 ** 0.25 - 1, rel=1e-9)
    assert float(h.holding_after_tax_default_adjusted_return) == pytest.approx(want, rel=1e-9)
    assert float(h.holding_loss_probability) == 0.0
    # the senior tranche earns its 2% premium: 140,000 x 1.02^4 back, the junior the rest
    senior = float(s.holding_mean_irr.sel(holding="exempt:k/senior"))
    assert senior == pytest.approx(0.02, abs=1e-9)
    paid_to_junior = 3 * 234_000 - 420_000 * 1.02 ** 4
    junior_pre = (paid_to_junior / 180_000) ** 0.25 - 1
    junior_post = ((paid_to_junior - 0.4 * (paid_to_junior - 180_000)) / 126_000) ** 0.25 - 1
    assert float(s.holding_mean_irr.sel(holding="sitr:k/junior")) == pytest.approx(junior_pre,
                                                                                   rel=1e-9)
    assert float(s.holding_after_tax_mean_irr.sel(holding="sitr:k/junior")) == pytest.approx(
        junior_post, rel=1e-9)


def test_exempt_holdings_match_the_pre_tax_irr(tmp_path):
    # No relief and no tax: the after-tax IRR is the run's own IRR of the bond,
    # the tranches and the basket, scenario by scenario, in a noisy world
    process = {"national_phi": 0.8, "national_sigma": 0.02, "regional_phi": 0.7,
               "regional_sigma": 0.02, "area_phi": 0.6, "area_sigma": 0.03,
               "measurement_sigma": 0.01}
    doc = _world(tmp_path, process=process,
                 interventions=[intervention_dict(mean=0.85, sd=0.15, rho_type=0.5)])
    ds = simulate(parse(doc), scenarios=2000, seed=3)
    for label, pre in (("exempt:b0", ds.irr.sel(bond="b0")),
                       ("exempt:k/senior", ds.tranche_irr.sel(tranche="k/senior")),
                       ("exempt:k/junior", ds.tranche_irr.sel(tranche="k/junior")),
                       ("exempt:k", ds.basket_irr.sel(basket="k"))):
        np.testing.assert_allclose(ds.after_tax_irr.sel(holding=label).values, pre.values,
                                   rtol=1e-9, atol=1e-12, err_msg=label)
    s = summarize(ds)
    junior = s.sel(holding="exempt:k/junior")
    assert 0.0 < float(junior.holding_loss_probability) < 1.0
    # before tax a loss is a default; with no relief and no tax, so is it after
    for label, default in (("exempt:b0", s.default_probability.sel(bond="b0")),
                           ("exempt:k/junior", s.tranche_default_probability.sel(
                               tranche="k/junior")),
                           ("exempt:k", s.basket_default_probability.sel(basket="k"))):
        h = s.sel(holding=label)
        assert float(h.holding_loss_probability) == float(default), label
        assert float(h.holding_after_tax_loss_probability) == float(default), label
    # relief makes losing less likely, after tax, than before
    sitr = s.sel(holding="sitr:k/junior")
    assert float(sitr.holding_after_tax_loss_probability) < float(sitr.holding_loss_probability)
    doc_json = summary_dict(s)
    row = doc_json["holdings"]["sitr:k/junior"]
    assert row["relief"] == 0.3 and row["tax_rate"] == 0.4
    assert {"mean_irr", "after_tax_mean_irr", "default_adjusted_return",
            "after_tax_default_adjusted_return", "after_tax_loss_probability"} <= set(row)
    text = format_summary(s)
    assert "Investor classes" in text and "\nsitr:k/junior " in text


def test_streaming_summary_reports_the_same_holdings_and_shortfall(tmp_path):
    # lobsim.scale.streaming mirrors summarize statistic by statistic: the holdings'
    # means (and the default-adjusted returns solved from mean cash flows) and
    # the provider's shortfall agree to rounding, block by block
    from lobsim.scale import streaming

    doc = _world(tmp_path, interventions=[intervention_dict(mean=0.85, sd=0.15, rho_type=0.5)],
                 process={"national_phi": 0.8, "national_sigma": 0.02, "regional_phi": 0.7,
                          "regional_sigma": 0.02, "area_phi": 0.6, "area_sigma": 0.03,
                          "measurement_sigma": 0.01}, block_size=256)
    ds = simulate(parse(doc), scenarios=1000, seed=8)
    full = summarize(ds)
    plan = streaming.Plan.from_template(ds, 1000, 256)
    acc = streaming.Accumulator(plan)
    for b, lo in enumerate(range(0, 1000, 256)):
        acc.add_block(b, ds.isel(scenario=slice(lo, lo + 256)))
    got = acc.summary()
    names = [n for n in full.data_vars if str(n).startswith(("holding_", "expected_provider",
                                                             "provider_shortfall"))]
    assert len(names) == 18  # 6 of the shortfall, 12 of the holdings
    for name in names:
        np.testing.assert_allclose(got[name].values, full[name].values, rtol=1e-10, atol=1e-14,
                                   err_msg=str(name))
