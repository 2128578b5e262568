"""The one definition of every statistic (lobsim.analysis.stats): by hand and by property."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim.analysis import stats
from lobsim.analysis.stats import Atoms

LEVELS = (0.5, 0.9, 0.95, 0.99, 0.995)


# --------------------------------------------------------------------------
# by hand, on atomic losses
# --------------------------------------------------------------------------
def test_expected_shortfall_of_an_atom_by_hand():
    # 10 scenarios: 8 repay (loss 0), 2 lose the whole principal 100.
    # Level 0.85: tail mass 10 x 0.15 = 1.5 scenarios. VaR: the least x with at
    # most 1.5 scenarios above it: 100 (none above); the tail is 1.5 of the 2
    # scenarios at 100, so ES = 100. Averaging over L >= VaR gives 100 too.
    # Level 0.75: mass 2.5: VaR 0 (2 above it), ES = (2 x 100 + 0.5 x 0) / 2.5 = 80,
    # where "L >= VaR" would average all 10 scenarios: 20.
    loss = np.r_[np.zeros(8), 100.0, 100.0]
    a = Atoms.of(loss)
    assert a.value.tolist() == [100.0, 0.0] and a.weight.tolist() == [2.0, 8.0]
    t = stats.tail(a, 0.85)
    assert (t.var, t.es) == (100.0, 100.0)
    t = stats.tail(a, 0.75)
    assert (t.var, t.es) == (0.0, 80.0)


def test_subadditive_on_two_atoms_by_hand():
    # Two bonds of principal 100, 20 scenarios: A loses in scenario 0 only, B in
    # scenario 1 only. Level 0.95: mass 1. Stand-alone: VaR 0 (1 above), ES 100 each.
    # Basket (A + B): losses 100, 100, 0 x 18: VaR 100 (1 above it? no: 2 above 0,
    # so VaR is 100 with none above), ES = 100. Sum alone 200, benefit 100 >= 0.
    a = np.zeros(20)
    b = np.zeros(20)
    a[0] = b[1] = 100.0
    alone = [stats.tail_estimate(x, 0.95).es for x in (a, b)]
    basket = stats.tail_estimate(a + b, 0.95)
    assert alone == [100.0, 100.0]
    assert (basket.var, basket.es) == (100.0, 100.0)
    total = stats.standalone_sum(np.array(alone), np.ones((1, 2), bool))[0]
    assert stats.diversification_benefit(total, basket.es) == 100.0


def test_weighted_estimators_by_hand():
    # Weights 0.5, 0.5, 2, 1 (mean 1) on losses 10, 0, 0, 20; n = 4.
    # Mean: (0.5 x 10 + 0 + 0 + 1 x 20) / 4 = 6.25 (not self-normalised: the weights
    # sum to 4 here anyway). P(loss > 0) = (0.5 + 1) / 4 = 0.375.
    # Level 0.75: tail mass 4 x 0.25 = 1: VaR 10 (weight 1 above it; above 0 is
    # 1.5 > 1), ES = (1 x 20 + 0 x 10) / 1 = 20.
    # Level 0.5: mass 2: above 20 weight 0, above 10 weight 1, above 0 weight 1.5
    # <= 2: VaR 0, ES = (20 + 0.5 x 10 + 0.5 x 0) / 2 = 12.5.
    loss = np.array([10.0, 0.0, 0.0, 20.0])
    w = np.array([0.5, 0.5, 2.0, 1.0])
    assert stats.mean_se(loss, w)[0] == 6.25
    assert stats.probability_se(loss > 0, w)[0] == 0.375
    lw = np.log(w)
    t = stats.tail_estimate(loss, 0.75, lw)
    assert (t.var, t.es) == (10.0, 20.0)
    t = stats.tail_estimate(loss, 0.5, lw)
    assert t.var == 0.0 and t.es == pytest.approx(12.5, rel=1e-15)


def test_quantile_is_the_inverted_cdf_and_the_set_aside_rank():
    from lobsim.analysis.setaside import set_aside_rank

    x = np.arange(1.0, 101.0)
    for level in (0.07, 0.071, 0.5, 0.93, 0.95, 0.99, 0.999):
        a = Atoms.of(x)
        assert stats.quantile(a, level) == x[set_aside_rank(100, level) - 1], level
        if abs(level * 100 - round(level * 100)) > 1e-9:  # numpy's 0.07 x 100 is 7.000000000000001
            assert stats.quantile(a, level) == np.quantile(x, level, method="inverted_cdf")


def test_nan_and_atoms_from_counts():
    assert math.isnan(stats.tail_estimate(np.array([1.0, np.nan]), 0.5).es)
    a = Atoms.of_counts(np.array([0.0, 5.0]), np.array([3, 1]), 4)
    b = Atoms.of(np.array([0.0, 5.0, 0.0, 0.0]))
    assert a.value.tolist() == b.value.tolist() and a.weight.tolist() == b.weight.tolist()
    assert stats.tail(a, 0.9) == stats.tail(b, 0.9)


def test_tail_measure_sums_to_one_and_gives_es():
    rng = np.random.default_rng(3)
    loss = rng.choice([0.0, 50.0, 100.0], size=200, p=[0.9, 0.06, 0.04])
    var, q = stats.tail_measure(loss, 0.97)
    t = stats.tail_estimate(loss, 0.97)
    assert var == t.var
    assert q.sum() == pytest.approx(1.0, rel=1e-12)
    assert q @ loss == pytest.approx(t.es, rel=1e-12)


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------
atomic = st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 2.5, 10.0, 100.0]) | st.floats(0, 1e3, allow_subnormal=False),
                  min_size=2, max_size=80)
levels = st.sampled_from(LEVELS)


@settings(max_examples=200, deadline=None)
@given(atomic, levels)
def test_es_is_at_least_var(xs, level):
    t = stats.tail_estimate(np.array(xs), level)
    assert t.es >= t.var * (1 - 1e-12)


@settings(max_examples=200, deadline=None)
@given(atomic)
def test_es_is_monotone_in_the_level(xs):
    es = [stats.tail_estimate(np.array(xs), p).es for p in LEVELS]
    assert all(b >= a * (1 - 1e-12) for a, b in itertools.pairwise(es))


@settings(max_examples=200, deadline=None)
@given(atomic, levels)
def test_weights_of_one_are_the_plain_estimator(xs, level):
    x = np.array(xs)
    plain = stats.tail(Atoms.of(x), level)
    ones = stats.tail(Atoms.of(x, np.ones(x.size)), level)
    assert plain == ones
    m0, s0 = stats.mean_se(x)
    m1, s1 = stats.mean_se(x, np.ones(x.size))
    assert (m0, s0) == (m1, s1)
    # a log_weight of zeros is a plain run
    assert stats.tail_estimate(x, level, np.zeros(x.size)) == plain


@settings(max_examples=200, deadline=None)
@given(atomic, levels, st.randoms(use_true_random=False),
       st.lists(st.floats(0.1, 3.0), min_size=80, max_size=80))
def test_invariant_to_scenario_order(xs, level, rnd, ws):
    x = np.array(xs)
    w = np.array(ws[:x.size])
    perm = list(range(x.size))
    rnd.shuffle(perm)
    assert stats.tail(Atoms.of(x), level) == stats.tail(Atoms.of(x[perm]), level)
    assert stats.tail(Atoms.of(x, w), level) == stats.tail(Atoms.of(x[perm], w[perm]), level)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0.0, 100.0]), min_size=20, max_size=60),
       st.lists(st.sampled_from([0.0, 50.0]), min_size=60, max_size=60), levels)
def test_es_is_subadditive_on_atoms(a, b, level):
    x = np.array(a)
    y = np.array(b[:x.size])
    es_x, es_y = (stats.tail_estimate(v, level).es for v in (x, y))
    assert stats.tail_estimate(x + y, level).es <= (es_x + es_y) * (1 + 1e-12)


def test_weighted_tail_equals_the_replicated_sample():
    # weights proportional to replication counts: the same VaR and ES
    rng = np.random.default_rng(1)
    values = rng.choice([0.0, 5.0, 7.0, 30.0], size=40)
    counts = rng.integers(1, 50, size=40)
    w = 40 * counts / counts.sum()
    for level in LEVELS:
        weighted = stats.tail_estimate(values, level, np.log(w))
        plain = stats.tail_estimate(np.repeat(values, counts), level)
        assert weighted.var == plain.var
        assert weighted.es == pytest.approx(plain.es, rel=1e-12)


def test_wilson_interval_against_published_values():
    # Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson):
    # 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605; 0/20 -> 0 to 0.1611.
    for k, n, lo, hi in [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                         (0, 20, 0.0, 0.1611)]:
        p = k / n
        se = math.sqrt(p * (1 - p) / n)
        got = stats.probability_interval(p, se, n)
        assert abs(float(got[0]) - lo) < 5e-5 and abs(float(got[1]) - hi) < 5e-5


def test_normal_interval_is_z95_se():
    lo, hi = stats.normal_interval(1.0, 0.5)
    assert float(hi) - 1.0 == pytest.approx(1.0 - float(lo)) == pytest.approx(0.5 * 1.959963984540054)
