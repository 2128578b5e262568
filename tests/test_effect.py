"""The true effect standing at a date: ramp, relapse and provider failure
(docs/model.md sections 5.3-5.5), checked on hand-computed values and as
properties of :func:`lobsim.kernels.engine.effect_fraction`."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lobsim.kernels.engine import effect_fraction

NEVER = math.inf


def _relpow(lam: float, horizon: float) -> np.ndarray:
    # (1 - lambda)^max(0, horizon - s) for s = 1 .. ceil(horizon), as world.py builds it
    s = np.arange(1, math.ceil(horizon) + 1, dtype=float)
    return (1.0 - lam) ** np.maximum(0.0, horizon - s)


LINEAR4 = (np.array([0.0, 4.0]), np.array([0.0, 1.0]))  # a linear ramp over 4 years


@pytest.mark.parametrize(("fail", "horizon", "expected"), [
    # hand-computed: a linear ramp delivers a quarter a year; no relapse
    (NEVER, 2.5, 0.625),
    (4.0, 2.5, 0.625),  # a failure after the date changes nothing at that date
    (3.0, 2.5, 0.625),
    (2.5, 2.5, 0.625),
    (2.2, 2.5, 0.55),   # delivery stops at 2.2 years
    (2.0, 2.5, 0.5),
    (0.5, 2.5, 0.125),
    (NEVER, 5.0, 1.0),
    (3.0, 5.0, 0.75),
])
def test_effect_at_a_date_with_and_without_failure(fail, horizon, expected):
    kt, kv = LINEAR4
    got = effect_fraction(fail, horizon, kt, kv, _relpow(0.0, horizon))
    assert got == pytest.approx(expected, rel=1e-15)


def test_relapse_at_a_date_between_year_ends():
    # docs/model.md section 5.4's example: a linear ramp over 2 years,
    # lambda = 0.2: E(2.5) = 0.5 x 0.8^1.5 + 0.5 x 0.8^0.5, whether the
    # provider fails after the date or never
    kt, kv = np.array([0.0, 2.0]), np.array([0.0, 1.0])
    expected = 0.5 * 0.8**1.5 + 0.5 * 0.8**0.5
    for fail in (NEVER, 2.7, 4.0):
        got = effect_fraction(fail, 2.5, kt, kv, _relpow(0.2, 2.5))
        assert got == pytest.approx(expected, rel=1e-14)


@st.composite
def _ramps(draw):
    n = draw(st.integers(1, 4))
    steps = draw(st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n))
    incs = draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n))
    kt = np.concatenate([[0.0], np.cumsum(steps)])
    kv = np.concatenate([[0.0], np.cumsum(incs) / np.sum(incs)])
    kv[-1] = 1.0
    return kt, kv


@given(ramp=_ramps(), lam=st.floats(0.0, 0.9), horizon=st.floats(0.05, 12.0),
       f1=st.floats(0.0, 15.0), f2=st.floats(0.0, 15.0))
def test_a_later_failure_never_leaves_less_effect(ramp, lam, horizon, f1, f2):
    # every delivered unit adds a non-negative amount, so stopping delivery
    # later can only add to the effect, and stopping after the date is the
    # same as never stopping
    kt, kv = ramp
    rp = _relpow(lam, horizon)
    lo, hi = sorted((f1, f2))
    e_lo = effect_fraction(lo, horizon, kt, kv, rp)
    e_hi = effect_fraction(hi, horizon, kt, kv, rp)
    e_never = effect_fraction(NEVER, horizon, kt, kv, rp)
    assert 0.0 <= e_lo <= e_hi + 1e-15
    assert e_hi <= e_never + 1e-15
    if hi >= horizon:
        assert e_hi == e_never
