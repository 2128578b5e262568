"""The vectorisable exp of the chunked kernel (lobsim.kernels.fastexp) against math.exp.

The bound is ``EXP_ULP`` ulp of the result for every finite, normal result
(measured: 1); subnormal results within 2 units of the smallest subnormal;
the domain's ends and special values exactly as math.exp (0 for large negative
arguments, inf for large positive ones, NaN for NaN).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lobsim.kernels.fastexp import EXP_ULP, exp_into

TINY = 5e-324  # the smallest subnormal


def fast(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    exp_into(x, out, x.size)
    return out


def libm(x: np.ndarray) -> np.ndarray:
    return np.array([math.exp(v) if v < 709.78 else math.inf for v in x])


@pytest.mark.parametrize(("lo", "hi"), [
    (-1.0, 1.0),  # measurement noise and small log ratios
    (-40.0, 40.0),  # log levels, log predicted outcomes and IRR discounting in the kernel
    (-708.0, 709.0),  # every normal result
])
def test_exp_within_the_ulp_bound(lo: float, hi: float) -> None:
    x = np.random.default_rng(16).uniform(lo, hi, 200_000)
    got, want = fast(x), libm(x)
    ulp = np.abs(got - want) / np.spacing(want)
    assert ulp.max() <= EXP_ULP


def test_exp_near_the_reduction_boundaries() -> None:
    """Arguments next to (k + 1/2) ln2, where the rounding of k switches."""
    k = np.arange(-1000, 1000)
    mid = (k + 0.5) * math.log(2.0)
    x = np.concatenate([np.nextafter(mid, -np.inf), mid, np.nextafter(mid, np.inf)])
    got, want = fast(x), libm(x)
    assert (np.abs(got - want) / np.spacing(want)).max() <= EXP_ULP


def test_exp_subnormal_results() -> None:
    x = np.linspace(-745.1, -708.5, 10_001)
    got, want = fast(x), libm(x)
    assert np.abs(got - want).max() <= 2 * TINY


def test_exp_edge_cases() -> None:
    x = np.array([0.0, -0.0, 1e-300, -1e-300, TINY, 1.0, 709.78, 709.8, 1e6, np.inf,
                  -745.2, -1e6, -np.inf, np.nan])
    got = fast(x)
    assert got[0] == got[1] == 1.0  # exactly: a noiseless world's exp(0)
    assert (got[2:5] == 1.0).all()
    assert got[5] == math.exp(1.0) or abs(got[5] - math.e) <= EXP_ULP * math.ulp(math.e)
    assert abs(got[6] - math.exp(709.78)) <= EXP_ULP * math.ulp(math.exp(709.78))
    assert (got[7:10] == np.inf).all()
    assert (got[10:13] == 0.0).all()
    assert np.isnan(got[13])


def test_exp_in_place() -> None:
    x = np.random.default_rng(3).uniform(-5.0, 5.0, 67)  # not a multiple of the vector width
    want = fast(x)
    exp_into(x, x, x.size)
    np.testing.assert_array_equal(x, want)
