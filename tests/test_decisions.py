"""The decisions of issue 9: maturity, set-asides, the provider's shortfall.

References: docs/model.md sections 5 (ramp, relapse, provider failure), 6 (the cap
turns noise into loss; signal-to-noise), 7 (who pays what; overpayment and
its mirror, the provider's shortfall) and the report's section 5.2 ("working
out the best maturity date", departments "set aside a proportion of their
future budget", "civil society organisations risk being undervalued for
their outcomes"); docs/decisions.md for the conventions tested here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lobsim import load_config, simulate, summarize
from lobsim.analysis.maturity import bond_alone_at, choose_maturity, recommend
from lobsim.analysis.setaside import (
    bond_department_payments,
    compute_set_asides,
    format_set_asides,
    order_stat_interval,
    set_aside,
)
from lobsim.analysis.summary import summary_dict
from lobsim.cli.commands import main
from lobsim.errors import UnknownIdError
from lobsim.model.shortfall import cap_units, provider_shortfall
from toml_doc import dumps
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NOISY = {"national_phi": 0.8, "national_sigma": 0.02, "regional_phi": 0.7,
         "regional_sigma": 0.02, "area_phi": 0.6, "area_sigma": 0.03,
         "measurement_sigma": 0.01}


# ---------------------------------------------------------------------------
# 1. The provider's shortfall: max(0, min(true, cap) - paid)
# ---------------------------------------------------------------------------
def test_shortfall_by_hand_and_caps(tmp_path):
    u = make_universe(tmp_path, 3, base=1000.0)
    doc = config_dict(u, [
        bond_dict("unit", u.ids[0], target=100.0, payment={"cap": 80.0}),
        bond_dict("bin", u.ids[1], target=100.0,
                  payment={"mechanism": "binary", "trigger": 0.5}),
    ])
    unit, binary = parse(doc).bonds
    assert cap_units(unit) == 80.0 and cap_units(binary) == 100.0  # binary: the target
    true = np.array([[90.0, 40.0], [50.0, 100.0], [70.0, 100.0]])
    paid = np.array([[60.0, 0.0], [55.0, 100.0], [70.0, 0.0]])
    # min(90, 80) - 60 = 20; binary unpaid: min(40, 100) - 0 = 40; paid more than
    # achieved: 0; a triggered binary pays the target: 0; exact: 0; unpaid: 100
    np.testing.assert_array_equal(provider_shortfall(true, paid, [unit, binary]),
                                  [[20.0, 40.0], [0.0, 0.0], [0.0, 100.0]])


@pytest.fixture(scope="module")
def template_bond(tmp_path_factory):
    u = make_universe(tmp_path_factory.mktemp("u"), 2)
    return parse(config_dict(u, [bond_dict("b", u.ids[0])])).bonds[0]


@settings(max_examples=200)
@given(hnp.arrays(float, (6, 2), elements=st.floats(-1e6, 1e6)),
       hnp.arrays(float, (6, 2), elements=st.floats(0, 1e6)),
       st.floats(1.0, 1e6))
def test_shortfall_is_between_zero_and_what_could_be_paid(template_bond, true, paid, cap):
    pay = template_bond.payment
    bond = dataclasses.replace(template_bond, payment=dataclasses.replace(
        pay, measurements=(dataclasses.replace(pay.measurements[0], cap=cap),)))
    s = provider_shortfall(true, paid, [bond, bond])
    assert (s >= 0.0).all()
    assert (s <= np.maximum(np.minimum(true, cap), 0.0)).all()


@settings(max_examples=200)
@given(hnp.arrays(float, (5, 1), elements=st.floats(0, 1e4)),
       hnp.arrays(float, (5, 1), elements=st.floats(0, 1e4)),
       st.floats(0, 1e3), st.floats(1.0, 1e4))
def test_shortfall_falls_as_more_is_paid_and_closes_the_gap(template_bond, true, paid, more,
                                                            cap):
    # paying more never raises the shortfall, by at most what is added; paid plus
    # shortfall covers min(true, cap); no shortfall exactly when that much is paid
    pay = template_bond.payment
    bond = dataclasses.replace(template_bond, payment=dataclasses.replace(
        pay, measurements=(dataclasses.replace(pay.measurements[0], cap=cap),)))
    s = provider_shortfall(true, paid, [bond])
    s_more = provider_shortfall(true, paid + more, [bond])
    assert (s_more <= s).all() and (s - s_more <= more + 1e-9).all()
    assert (paid + s >= np.minimum(true, cap) - 1e-9).all()
    np.testing.assert_array_equal(s == 0.0, paid >= np.minimum(true, cap))


# No noise, theta = 1, bonds of 100 units at 2,340 for 200,000 (bond_dict):
# each truly achieves and measures its 100 units at year 4. Hand-computed
# shortfalls (units), the cap in units being the target:
CASH_CAP_CASES = {
    # Peterborough-style maximum return of 2% a year: at most 200,000 x 1.02^4 =
    # 216,486.43 is paid, 92.515 units; 7.485 units (17,513.57) go unpaid
    "max-return": ({"max_return": 0.02}, None, [100.0 - 200_000 * 1.02 ** 4 / 2340]),
    # a cap group of 300,000 over both bonds, taken in bond order: b0 is paid
    # its 234,000, b1 the 66,000 left, 28.205 units of its 100
    "cap-group": (None, 300_000.0, [0.0, 100.0 - 66_000 / 2340]),
    # binary, trigger at 120% of the target: never reached, nothing paid, the
    # whole target unpaid; at 50% it is reached and the target is paid
    "binary-missed": ({"mechanism": "binary", "trigger": 1.2}, None, [100.0]),
    "binary-reached": ({"mechanism": "binary", "trigger": 0.5}, None, [0.0]),
}


@pytest.mark.parametrize("case", CASH_CAP_CASES, ids=list(CASH_CAP_CASES))
def test_shortfall_by_hand_through_the_engine(tmp_path, case):
    payment, group_cap, want = CASH_CAP_CASES[case]
    u = make_universe(tmp_path, 6, base=1000.0)
    bonds = [bond_dict(f"b{i}", u.ids[2 * i], payment=payment) for i in range(len(want))]
    doc = config_dict(u, bonds)
    if group_cap is not None:
        doc["cap_groups"] = [{"id": "g", "bonds": ["b0", "b1"], "cap": group_cap}]
    ds = simulate(parse(doc), scenarios=16, seed=1)
    np.testing.assert_allclose(ds.true_units.values, 100.0, rtol=1e-12)
    np.testing.assert_allclose(ds.provider_shortfall.values, np.tile(want, (16, 1)),
                               rtol=1e-9, atol=1e-9)
    s = summarize(ds)
    np.testing.assert_allclose(s.expected_provider_shortfall_value.values,
                               np.array(want) * 2340.0, rtol=1e-9, atol=1e-6)
    np.testing.assert_array_equal(s.provider_shortfall_probability.values,
                                  np.array(want) > 0.0)


def test_verified_outcomes_leave_no_shortfall_in_a_noisy_world(tmp_path):
    # a rate card (weights = "verified"): the true units are measured, so a
    # per-unit bond pays min(true, cap) and the provider is never short, however
    # noisy the areas; the same bond measured by a control group is
    u = make_universe(tmp_path, 6, base=20_000.0)
    verified = bond_dict("v", u.ids[0], target=1000.0, donors=None)
    verified["control"] = {"weights": "verified"}
    doc = config_dict(u, [verified, bond_dict("c", u.ids[1], target=1000.0, donors=3)],
                      process=NOISY, interventions=[intervention_dict(mean=0.8, sd=0.2)])
    ds = simulate(parse(doc), scenarios=2000, seed=6)
    v, c = ds.isel(bond=0), ds.isel(bond=1)
    np.testing.assert_allclose(v.paid_units.values, np.minimum(v.true_units.values, 1000.0),
                               rtol=1e-12)
    assert (v.provider_shortfall.values == 0.0).all()
    assert (c.provider_shortfall.values > 0.0).mean() > 0.1


def test_threshold_not_reached_leaves_the_whole_effect_unpaid(tmp_path):
    # No noise, theta = 1, a two-year ramp, maturity 1: half the target (50
    # units, 5% of the 1,000 counterfactual) is truly achieved and measured; a
    # 10% threshold is not reached, so nothing is paid and the provider's
    # shortfall is the 50 units, worth 50 x 2,340.
    u = make_universe(tmp_path, 3, base=1000.0)
    doc = config_dict(u, [bond_dict("b", u.ids[0], target=100.0, maturity=1.0,
                                    payment={"mechanism": "threshold", "threshold": 0.1})],
                      interventions=[intervention_dict(ramp_years=2.0)])
    ds = simulate(parse(doc), scenarios=64, seed=1)
    assert np.allclose(ds.true_units.values, 50.0)
    assert (ds.paid_units.values == 0.0).all()
    np.testing.assert_allclose(ds.provider_shortfall.values, 50.0)
    s = summarize(ds)
    assert float(s.provider_shortfall_probability[0]) == 1.0
    assert float(s.expected_provider_shortfall[0]) == pytest.approx(50.0)
    assert float(s.expected_provider_shortfall_value[0]) == pytest.approx(50.0 * 2340.0)
    assert float(s.expected_overpayment[0]) == 0.0


def test_shortfall_mirrors_overpayment_in_a_noisy_world(tmp_path):
    # measured = true + prediction error, paid = clip(measured, 0, cap): in each
    # scenario at most one of the two risks is positive, and their difference
    # (in units) is paid - min(true, cap) wherever the measurement is inside [0, cap]
    u = make_universe(tmp_path, 6, base=20_000.0)
    doc = config_dict(u, [bond_dict("b", u.ids[0], target=1000.0, donors=3)], process=NOISY,
                      interventions=[intervention_dict(mean=0.8, sd=0.1)])
    ds = simulate(parse(doc), scenarios=4000, seed=5)
    b = ds.isel(bond=0)
    short = b.provider_shortfall.values
    over_units = b.overpayment.values / float(b.price_per_unit)
    assert ((short > 0) & (over_units > 1e-9)).sum() == 0
    assert 0.05 < (short > 0).mean() < 0.95  # both risks occur
    assert (short <= np.minimum(b.true_units.values, 1000.0) + 1e-9).all()
    s = summarize(ds)
    assert float(s.expected_provider_shortfall[0]) == pytest.approx(short.mean(), rel=1e-12)
    assert float(s.provider_shortfall_probability[0]) == (short > 0).mean()
    row = summary_dict(s)["bonds"]["b"]
    assert row["expected_provider_shortfall_value"] == pytest.approx(short.mean() * 2340.0)


# ---------------------------------------------------------------------------
# 2. Set-asides
# ---------------------------------------------------------------------------
@settings(max_examples=200)
@given(hnp.arrays(float, st.integers(1, 300), elements=st.floats(0, 1e9)),
       st.floats(0.001, 0.999), st.floats(0.001, 0.999))
def test_set_aside_is_exceeded_at_most_one_minus_level_and_monotone(x, a, b):
    lo, hi = sorted((a, b))
    q_lo, q_hi = float(set_aside(x, lo)), float(set_aside(x, hi))
    assert q_lo <= q_hi
    assert q_hi in x  # an order statistic: a simulated payment
    assert (x > q_hi).mean() <= 1.0 - hi + 1e-12
    low, high = order_stat_interval(np.sort(x), hi)
    assert low <= q_hi <= high


# Ten payments with ties, sorted 0 0 1 2 3 3 3 4 5 10: the set-aside is the
# ceil(10 p)-th smallest, and at most 1 - p of the payments exceed it
TIED = np.array([5.0, 1.0, 3.0, 3.0, 3.0, 2.0, 4.0, 10.0, 0.0, 0.0])
TIED_BY_HAND = {0.05: 0.0, 0.2: 0.0, 0.21: 1.0, 0.3: 1.0, 0.5: 3.0, 0.7: 3.0, 0.71: 4.0,
                0.9: 5.0, 0.91: 10.0, 0.99: 10.0}


@pytest.mark.parametrize("level", TIED_BY_HAND)
def test_set_aside_by_hand_on_tied_payments(level):
    pay = TIED.copy()
    q = float(set_aside(pay, level))
    assert q == TIED_BY_HAND[level]
    assert (pay > q).mean() <= 1.0 - level + 1e-12
    # and nothing smaller would do: the next payment down is exceeded too often
    below = pay[pay < q]
    if below.size:
        assert (pay > below.max()).mean() > 1.0 - level


def test_set_aside_rank_is_not_moved_by_floating_point():
    # 0.07 x 100 is 7.000000000000001 in floating point: still the 7th smallest
    assert float(set_aside(np.arange(1.0, 101.0), 0.07)) == 7.0
    assert float(set_aside(np.arange(1.0, 101.0), 0.071)) == 8.0
    # per column, along the scenario axis
    np.testing.assert_array_equal(set_aside(np.arange(12.0).reshape(6, 2), 0.5), [4.0, 5.0])


def test_order_statistic_interval_covers_the_true_quantile():
    # Distribution-free 95% interval: over 400 samples of 500 uniforms its
    # coverage of the true 0.9-quantile is at least 95% up to 5 binomial sigma
    rng = np.random.default_rng(3)
    hits = 0
    trials = 400
    for _ in range(trials):
        low, high = order_stat_interval(np.sort(rng.random(500)), 0.9)
        hits += low <= 0.9 <= high
    assert hits / trials >= 0.95 - 5 * math.sqrt(0.95 * 0.05 / trials)


def _premium_world(tmp_path: Path, *, noise: bool, theta_sd: float = 0.0):
    u = make_universe(tmp_path, 8, base=20_000.0)
    payers = [{"agency": "AG", "share": 0.5, "agency_premium": 500.0},
              {"agency": "AG2", "share": 0.5}]
    bonds = [bond_dict("b0", u.ids[0], target=1000.0, maturity=3.0, payers=payers, donors=2),
             bond_dict("b1", u.ids[3], target=800.0, maturity=3.0, payers=payers, donors=2),
             bond_dict("b2", u.ids[6], target=500.0, maturity=4.0, donors=1)]
    return config_dict(u, bonds, process=NOISY if noise else None,
                       departments=("DEPT", "D2"), agencies={"AG": "DEPT", "AG2": "D2"},
                       interventions=[intervention_dict(mean=0.85 if theta_sd else 1.0,
                                                        sd=theta_sd, rho_type=0.5)])


def test_single_deterministic_bond_sets_aside_its_payment(tmp_path):
    # No noise, theta = 1: the bond pays 1,000 x 2,340 in year 3 every time;
    # DEPT (through AG: half the price plus a 500 premium) pays
    # 1,000 x (1,170 + 500) = 1,670,000 and D2 pays 1,170,000 (Appendix-style
    # split): the set-aside at any level is that payment, with no uncertainty
    doc = _premium_world(tmp_path, noise=False)
    doc["bonds"] = doc["bonds"][:1]
    ds = simulate(parse(doc), scenarios=500, seed=2)
    for level in (0.5, 0.99, 0.999):
        s = compute_set_asides(ds, level)
        y = s.years.index(3)
        for d, want in (("DEPT", 1_670_000.0), ("D2", 1_170_000.0)):
            i = s.departments.index(d)
            assert s.book[i, y] == pytest.approx(want, rel=1e-12)
            assert s.book_low[i, y] == s.book_high[i, y] == s.book[i, y]
            assert s.standalone_sum[i, y] == pytest.approx(want, rel=1e-12)
            assert s.benefit[i, y] == pytest.approx(0.0, abs=1e-6)
            assert s.bonds[d] == [("b0", 3, pytest.approx(want), pytest.approx(want))]


def test_book_is_the_sum_of_the_bonds_and_benefit_as_defined(tmp_path):
    doc = _premium_world(tmp_path, noise=True, theta_sd=0.1)
    ds = simulate(parse(doc), scenarios=3000, seed=4)
    for i, d in enumerate(ds.department.values.tolist()):
        by_bond = bond_department_payments(ds, i)
        for j, y in enumerate(ds.year.values.tolist()):
            in_year = ds.pays_in_year.values[:, j]
            np.testing.assert_allclose(by_bond[:, in_year].sum(axis=1),
                                       ds.department_payment.values[:, i, j], rtol=1e-12,
                                       err_msg=f"{d} year {y}")
    s = compute_set_asides(ds, 0.95)
    i, y = s.departments.index("DEPT"), s.years.index(3)
    pay = bond_department_payments(ds, i)[:, :2]
    # the 2,850th smallest of 3,000 (0.95 x 3,000), by sorting
    alone = [float(np.sort(pay[:, k])[2849]) for k in range(2)]
    book = float(np.sort(pay.sum(axis=1))[2849])
    assert (pay.sum(axis=1) > book).sum() <= 150
    assert s.book[i, y] == pytest.approx(book)
    assert s.standalone_sum[i, y] == pytest.approx(sum(alone))
    assert s.benefit[i, y] == pytest.approx(sum(alone) - book)
    assert s.benefit_share[i, y] == pytest.approx((sum(alone) - book) / sum(alone))
    # monotone in the level, cell by cell
    levels = (0.5, 0.9, 0.99)
    books = [compute_set_asides(ds, p).book for p in levels]
    assert all((a <= b).all() for a, b in itertools.pairwise(books))


def test_bonds_paying_in_several_years_are_split_by_year(tmp_path):
    # b2 (paid by DEPT alone) has cohorts measured at years 2 and 4: it enters
    # the stand-alone comparison of both years, with its payment of each year
    # (tests/test_dated_payments.py checks the split by hand)
    doc = _premium_world(tmp_path, noise=True)
    doc["bonds"][2]["payment"] = {"measurements": [{"at": 2.0}, {"at": 4.0}]}
    ds = simulate(parse(doc), scenarios=500, seed=4)
    s = compute_set_asides(ds, 0.9)
    i = s.departments.index("DEPT")
    for y in (2, 4):
        j = s.years.index(y)
        assert [b for b, yy, *_ in s.bonds["DEPT"] if yy == y] == ["b2"]
        assert s.standalone_sum[i, j] == pytest.approx(s.book[i, j], rel=1e-12)
        assert s.book[i, j] > 0.0
    assert "*" not in format_set_asides(s)


def test_set_asides_refuse_weighted_scenarios(tmp_path):
    ds = simulate(parse(_premium_world(tmp_path, noise=False)), scenarios=50, seed=1)
    with pytest.raises(ValueError, match="importance-sampling weights"):
        compute_set_asides(ds.assign(log_weight=ds.log_weight + 0.1), 0.9)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        compute_set_asides(ds, 1.0)


def test_cli_setaside(tmp_path, capsys):
    out = tmp_path / "r.nc"
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(_premium_world(tmp_path, noise=True, theta_sd=0.1)))
    assert main(["run", str(cfg), "--scenarios", "1000", "--out", str(out), "--quiet"]) == 0
    assert main(["setaside", str(out), "--level", "0.95", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "lobsim.setaside/2" and doc["level"] == 0.95
    cell = doc["departments"]["DEPT"]["years"]["3"]
    low, high = cell["set_aside_interval"]
    assert low <= cell["set_aside"] <= high
    assert set(doc["departments"]["DEPT"]["bonds"]) == {"b0", "b1", "b2"}
    assert main(["setaside", str(out), "--by-bond"]) == 0
    text = capsys.readouterr().out
    assert "Set-asides at level 0.99" in text and "\nb0 " in text
    # mistakes: one line on stderr, exit 2
    for argv in (["setaside", str(tmp_path / "none.nc")],
                 ["setaside", str(cfg)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("lobsim: error:"), err
    stripped = tmp_path / "old.nc"
    xr.load_dataset(out).drop_vars("pays_in_year").to_netcdf(stripped)
    assert main(["setaside", str(stripped)]) == 2
    assert "pays_in_year" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# 3. Choosing the maturity
# ---------------------------------------------------------------------------
def test_recommend_breaks_ties_within_error_by_irr():
    rng = np.random.default_rng(0)
    n = 10_000
    base = rng.random(n) < 0.30
    # k more defaults than candidate 0 (and none fewer): a difference of k / n
    # with a paired standard error of about sqrt(k) / n, tied while k <= 4.
    # Candidate 1 has 3 more (tied), candidate 2 has 600 more (not)
    c1 = base.copy()
    c1[np.flatnonzero(~base)[:3]] = True
    c2 = base.copy()
    c2[np.flatnonzero(~base)[:600]] = True
    pick, tied = recommend(np.stack([base, c1, c2], axis=1), np.array([0.01, 0.02, 0.05]))
    assert tied == [0, 1] and pick == 1
    # identical candidates tie exactly; equal IRRs go to the earliest
    pick, tied = recommend(np.stack([c2, base, base], axis=1), np.array([0.0, 0.03, 0.03]))
    assert tied == [1, 2] and pick == 1


def _ramp_world(tmp_path: Path, hazard: float = 0.0, **prior: float):
    u = make_universe(tmp_path, 6, base=10_000.0)
    return config_dict(u, [bond_dict("b", u.ids[0], target=500.0, donors=2, maturity=4.0),
                           bond_dict("other", u.ids[1], target=300.0, donors=2)],
                       interventions=[intervention_dict(ramp_years=3.0, relapse=0.0, **prior)],
                       providers=[{"id": "prov", "failure_hazard": hazard}])


@pytest.mark.parametrize("prior", [{}, {"mean": 0.95, "sd": 0.03}],
                         ids=["theta=1", "beta-prior"])
def test_no_noise_no_relapse_recommends_the_end_of_the_ramp(tmp_path, prior):
    # docs/model.md section 5.4: with no relapse the effect stays at target x theta once the
    # three-year ramp is complete; with no area noise it is measured exactly.
    # Before year 3 only part of it is paid (more defaults); from year 3 on
    # every candidate defaults in the same scenarios (common random numbers:
    # the same theta), and the earliest pays soonest, so has the highest
    # E[IRR] (the prior is tight enough that most scenarios earn a positive
    # IRR, which a later payment lowers; a defaulted one's rises).
    cfg = parse(_ramp_world(tmp_path, **prior))
    choice = choose_maturity(cfg, "b", [1, 2, 3, 4, 5, 6], scenarios=2000, seed=9)
    assert choice.recommended == 3.0
    by_year = {c.maturity: c for c in choice.candidates}
    assert by_year[1.0].default_probability > by_year[3.0].default_probability
    assert len({by_year[t].default_probability for t in (3.0, 4.0, 5.0, 6.0)}) == 1
    assert math.isinf(by_year[3.0].signal_to_noise)  # no noise at all
    # strict JSON: an infinite signal-to-noise ratio is null
    doc = json.loads(json.dumps(choice.to_dict(), allow_nan=False))
    assert doc["candidates"][2]["signal_to_noise"] is None
    assert by_year[3.0].mean_irr > by_year[4.0].mean_irr > by_year[6.0].mean_irr
    assert choice.tied == (3.0, 4.0, 5.0, 6.0)


def test_candidates_share_random_numbers_and_donors(tmp_path):
    doc = _ramp_world(tmp_path, hazard=0.1, mean=0.8, sd=0.15)
    doc["outcomes"][0]["process"] = NOISY
    cfg = parse(doc)
    three = bond_alone_at(cfg, "b", 3.0)
    assert [b.id for b in three.bonds] == ["b"] and three.baskets == ()
    # the donors the bond has in the full config (area 1 is treated there): pinned
    assert three.bonds[0].control.donor_areas == ("a002", "a003")
    runs = [simulate(bond_alone_at(cfg, "b", t), scenarios=1000, seed=3) for t in (3.0, 5.0)]
    # same theta and failure time in every scenario: the same true units
    np.testing.assert_array_equal(runs[0].true_units.values, runs[1].true_units.values)
    # comonotone noise: the prediction errors move together
    e3, e5 = (r.prediction_error.values[:, 0] for r in runs)
    assert np.corrcoef(e3, e5)[0, 1] > 0.6


def test_maturity_rejects_bonds_paying_at_several_dates(tmp_path):
    doc = _ramp_world(tmp_path)
    doc["bonds"][0]["payment"] = {"measurements": [{"at": 2.0}, {"at": 4.0}]}
    with pytest.raises(ValueError, match="several dates"):
        bond_alone_at(parse(doc), "b", 5.0)
    with pytest.raises(ValueError, match="after the bond's start"):
        bond_alone_at(parse(_ramp_world(tmp_path)), "b", 0.0)


def test_the_maturity_plot_leaves_matplotlib_state_alone(tmp_path):
    # A library must not switch a notebook user's backend (issue 15): the
    # trade-off is drawn on an explicit Figure, without pyplot.
    import matplotlib

    from lobsim.report.plot import save
    from lobsim.report.studies import maturity_tradeoff

    cfg = load_config(CONFIGS / "birmingham_jsa.toml")
    choice = choose_maturity(cfg, "bham-jsa", [3, 5], scenarios=200, seed=1)
    backend = matplotlib.get_backend()
    fig = maturity_tradeoff(choice)
    assert len(fig.axes) == 4  # two panels, each with a twin axis
    save(fig, tmp_path / "m.png", dpi=120)
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
    src = Path(__file__).resolve().parents[1] / "src" / "lobsim"
    for path in src.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "matplotlib.use(" not in text and "import matplotlib.pyplot" not in text, path


def test_cli_maturity_on_birmingham(tmp_path, capsys):
    # Done-when of issue 9: the Birmingham bond over 2 to 8 years, a recommendation, a plot
    png = tmp_path / "maturity.png"
    config = str(CONFIGS / "birmingham_jsa.toml")
    assert main(["maturity", config, "--years", "2..8", "--scenarios", "3000",
                 "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "recommended maturity: year " in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["maturity", config, "--years", "2,4", "--scenarios", "1000", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "lobsim.maturity/1"
    assert [c["maturity"] for c in doc["candidates"]] == [2.0, 4.0]
    assert doc["recommended"] in (2.0, 4.0)
    for argv, needle in ((["maturity", config, "--bond", "nope"], "no bond 'nope' (known: 'bham-jsa')"),
                         (["maturity", config, "--scenarios", "1"], "at least 2 scenarios"),
                         (["maturity", config, "--plot", str(tmp_path / "t.txt")],
                          "plotted as PNG; use a .png path"),
                         (["maturity", str(CONFIGS / "basket_demo.toml")], "choose one")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err
    for years, needle in (("0..3", "must lie in (0, 100], got 0"),
                          ("8..2", "the range A..B runs backwards"),
                          ("2,200", "got 200"), ("2,x", "must be a range of whole years")):
        with pytest.raises(SystemExit) as exit_:  # argparse: usage and the error, exit 2
            main(["maturity", config, "--years", years])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "argument --years: " in err and needle in err, err


def test_an_unknown_bond_of_choose_maturity_is_one_line():
    cfg = load_config(CONFIGS / "birmingham_jsa.toml")
    with pytest.raises(UnknownIdError, match=r"no bond 'bham' \(known: 'bham-jsa'\).*did you mean"):
        choose_maturity(cfg, "bham", [3.0], scenarios=10)


def test_birmingham_maturity_numbers_match_a_plain_run():
    # at the config's own maturity (4) the one-bond world is the config itself:
    # the candidate's statistics are the run's
    cfg = load_config(CONFIGS / "birmingham_jsa.toml")
    choice = choose_maturity(cfg, "bham-jsa", [4.0], scenarios=2000)
    s = summarize(simulate(cfg, scenarios=2000))
    c = choice.candidates[0]
    assert c.default_probability == float(s.default_probability.squeeze())
    assert c.mean_irr == pytest.approx(float(s.mean_irr.squeeze()), rel=1e-12)
    assert c.signal_to_noise == pytest.approx(float(s.signal_to_noise.squeeze()), rel=1e-9)
