"""Evaluation power: the minimum detectable effect (lobsim.analysis.power, docs/model.md 6.11)."""

from __future__ import annotations

import numpy as np
import pytest

from lobsim import simulate
from lobsim.analysis import power
from lobsim.analysis.stats import Atoms
from lobsim.analysis.summary import format_summary, summarize
from lobsim.validation.backtest import Placebos
from lobsim.validation.placebo_stats import summarize_placebos, summary_table
from worlds import ZERO_PROCESS, bond_dict, config_dict, intervention_dict, make_universe, parse


def test_normal_factor_is_the_sum_of_the_two_normal_quantiles():
    # Reference: z_0.95 = 1.6448536..., z_0.80 = 0.8416212... (scipy.stats.norm.ppf),
    # so a normal error of sd s has MDE = 2.4864749 s (Bloom 1995, "Minimum detectable effects").
    from scipy.stats import norm

    assert norm.ppf(0.95) + norm.ppf(0.80) == pytest.approx(power.NORMAL_FACTOR, rel=1e-15)
    assert power.normal(2.0) == pytest.approx(2 * 2.4864748605, rel=1e-10)


def test_inverse_edf_quantiles_on_a_hand_made_sample():
    # 0, 1, ..., 99 in any order: q95 is the 95th smallest (94), q20 the 20th (19): MDE 75
    x = np.random.default_rng(0).permutation(100).astype(float)
    assert power.of_atoms(Atoms.of(x)) == 75.0
    both = np.stack([x, 2 * x], axis=1)  # columns are series
    np.testing.assert_array_equal(power.minimum_detectable_effect(both), [75.0, 150.0])
    assert power.of_atoms(Atoms.of(np.zeros(50))) == 0.0  # no error: everything detectable


def test_large_normal_sample_matches_the_closed_form():
    # 200,000 draws of N(0, 3^2): the quantile difference has a Monte Carlo sd of
    # about 0.0054 s (asymptotic order-statistic variances), so 0.03 s is > 5 sd.
    s = 3.0
    x = np.random.default_rng(1).normal(0.0, s, 200_000)
    got = float(power.minimum_detectable_effect(x))
    assert got == pytest.approx(float(power.normal(s)), abs=0.03 * s)


def test_importance_weights_give_the_target_distribution():
    # Draws from N(0, 1.5^2) weighted by the likelihood ratio of N(0, 1) to them,
    # 1.5 exp(-x^2 / 2 + x^2 / 4.5), estimate the quantiles of N(0, 1): MDE 2.486
    # (tolerance ~5 sd), not the sample's own 1.5 x 2.486 = 3.73.
    x = np.random.default_rng(2).normal(0.0, 1.5, 200_000)
    w = 1.5 * np.exp(-x * x / 2 + x * x / 4.5)
    assert float(power.minimum_detectable_effect(x, w)) == pytest.approx(power.NORMAL_FACTOR,
                                                                          abs=0.05)
    assert float(power.minimum_detectable_effect(x)) == pytest.approx(1.5 * power.NORMAL_FACTOR,
                                                                       abs=0.05)


def test_world_with_a_normal_prediction_error(tmp_path):
    # Only 1% area shocks and 0.5% measurement noise: the prediction error is normal to
    # first order (its log-normal curvature is ~1e-4 of it). 4000 scenarios: the MDE's
    # Monte Carlo sd is about 1.5% of it, the sd's about 1.1%; 7% is over 4 of them.
    u = make_universe(tmp_path, 4, base=50_000.0)
    process = {**ZERO_PROCESS, "area_phi": 0.6, "area_sigma": 0.01, "measurement_sigma": 0.005}
    doc = config_dict(u, [bond_dict("b", u.ids[0], target=2000.0, donors=3)], process=process,
                      scenarios=4000, seed=8, interventions=[intervention_dict(mean=0.5, sd=0.3)])
    ds = simulate(parse(doc))
    s = summarize(ds).sel(bond="b")
    sd = float(ds.prediction_error.sel(bond="b").std("scenario"))
    mde = float(s.minimum_detectable_effect)
    assert mde == pytest.approx(float(power.normal(sd)), rel=0.07)
    assert float(s.minimum_detectable_effect_share) == pytest.approx(mde / 2000.0, rel=1e-12)
    assert s.minimum_detectable_effect.attrs["units"] == ds.true_units.attrs["units"]
    assert s.minimum_detectable_effect_share.attrs["units"] == "1"
    # shown beside signal/noise in the run's bonds table, in units and % of target
    text = format_summary(summarize(ds))
    assert "MDE units" in text and "MDE % of target" in text
    assert f"{mde:,.0f}" in text


def test_verified_bond_detects_any_effect(tmp_path):
    u = make_universe(tmp_path, 3, ids=["A", "B", "C"], base=[5000.0, 6000.0, 7000.0])
    bond = bond_dict("v", "A", target=300)
    bond["control"] = {"weights": "verified"}
    noisy = {**ZERO_PROCESS, "area_sigma": 0.2, "measurement_sigma": 0.05}
    ds = simulate(parse(config_dict(u, [bond], process=noisy,
                                    interventions=[intervention_dict(mean=0.7, sd=0.2)])),
                  scenarios=300, seed=2)
    s = summarize(ds)
    assert float(s.minimum_detectable_effect.sel(bond="v")) == 0.0
    assert float(s.minimum_detectable_effect_share.sel(bond="v")) == 0.0


def test_placebo_mde_on_a_hand_made_placebo_set():
    # 100 placebos of one (weights, donors, start), each ward of base 1,000 (T = 100)
    # predicted at 1,000 and observed at 1,000 - M with M = 0, ..., 99 (shuffled): the
    # change is M / 10 %, so q95 - q20 is 9.4 - 1.9 = 7.5 % and (94 - 19) / 100 = 0.75 T.
    n = 100
    m = np.random.default_rng(3).permutation(n).astype(float)
    p = Placebos(start=np.full(n, "2016-01"), weights=np.full(n, "equal"),
                 donors=np.full(n, 5), area=np.array([f"a{i}" for i in range(n)]),
                 region=np.full(n, "R"), base=np.full(n, 1000.0),
                 counterfactual=np.full(n, 1000.0), observed=1000.0 - m,
                 rmspe=np.full(n, 0.01), horizon=12, pre=12)
    rows = summarize_placebos(p)
    assert [r.start for r in rows] == ["all", "2016-01"]
    for r in rows:
        assert r.mde == pytest.approx(7.5, rel=1e-12)
        assert r.mde_share == pytest.approx(0.75, rel=1e-12)
    table = summary_table(rows)
    assert "MDE %" in table and "MDE/T" in table and "0.75" in table
