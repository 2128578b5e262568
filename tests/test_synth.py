"""Tests for the exact synthetic-control weight solver in ``lobsim.kernels.synth``.

References
----------
- Abadie, Diamond and Hainmueller (2010), "Synthetic Control Methods for
  Comparative Case Studies", JASA 105(490): the simplex-constrained,
  V-weighted least-squares problem for the donor weights.
- Lawson and Hanson (1974), "Solving Least Squares Problems", ch. 23: the
  active-set NNLS algorithm the kernel implements, and which
  ``scipy.optimize.nnls`` (the independent reference used here) also follows.

The kernel solves the simplex problem through the exact NNLS reformulation
``min_{u >= 0} ||[C; 1^T] u - [0; 1]||`` with ``C = sqrt(V) (X0 - X1 1^T)``
and ``w = u / sum(u)`` (derivation in the module docstring).  The reference
below builds the same augmented system, including the kernel's exact
power-of-two rescaling of ``C``, and hands it to scipy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import nnls

from lobsim.kernels.synth import (
    _nnls,
    _qr_insert,
    simplex_weights,
    simplex_weights_batch,
)
from lobsim.model import synthetic_control
from lobsim.model.synthetic_control import SyntheticFit, fit_synthetic_control

EPS = float(np.finfo(np.float64).eps)

# Tolerances, shared by every comparison with the reference.
OBJ_RTOL = 1e-10  # objective, relative
# Absolute floor on objective differences, in units of scale^2 with
# scale = max_ij |sqrt(v_i) (X0_ij - X1_i)| = max |C|.  Both solvers work in
# the exactly rescaled units where max |C| is in [1/2, 1) and the NNLS
# residual is at most 1; there residuals and duals carry absolute rounding
# errors of a few eps, so an optimum that is tiny compared with scale^2 (an
# exact or near-exact fit, or one whose error lives only in rows with v ~
# 1e-6) is determined only to a few eps * scale^2 (we observe up to ~10 eps).
# 1e-12 is about 4500 eps: far below any objective that matters, and well
# above that rounding level.
OBJ_ATOL_REL_SCALE2 = 1e-12
WEIGHT_ATOL = 1e-8  # weights, where the optimum is unique
# KKT residual of the NNLS reformulation in the exactly rescaled units, where
# duals are O(1) and rounding leaves them at ~1e-16 (observed <= 6.4e-16 over
# all problem families below): 1e-13 is ~450 eps.
KKT_ATOL = 1e-13
SUM_ATOL = 1e-12  # |sum(w) - 1|


# --------------------------------------------------------------------------
# Reference implementation and checks
# --------------------------------------------------------------------------


def _scaled_c(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
    """C = sqrt(V) (X0 - X1 1^T), rescaled by the power of two the kernel uses."""
    c = np.sqrt(v)[:, None] * (x0 - x1[:, None])
    cmax = float(np.abs(c).max())
    if cmax > 0.0:
        c = c * 2.0 ** -math.frexp(cmax)[1]  # exact: a power of two
    return c


def _augmented(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The augmented NNLS system ``A = [C; 1^T]``, ``b = [0; 1]``."""
    c = _scaled_c(x1, x0, v)
    a = np.vstack([c, np.ones((1, x0.shape[1]))])
    b = np.zeros(x0.shape[0] + 1)
    b[-1] = 1.0
    return a, b


def _reference(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference weights from scipy's NNLS on the exact reformulation; also returns u."""
    a, b = _augmented(x1, x0, v)
    u, _ = nnls(a, b, maxiter=50 * x0.shape[1])
    return u / u.sum(), u


def _objective(x1: np.ndarray, x0: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
    """sum_i v_i (X1_i - (X0 w)_i)^2, in the cancellation-free form used on the simplex."""
    return float(np.sum(v * ((x0 - x1[:, None]) @ w) ** 2))


def _scale(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> float:
    return float(np.abs(np.sqrt(v)[:, None] * (x0 - x1[:, None])).max())


def _unique_certificate(x1: np.ndarray, x0: np.ndarray, v: np.ndarray, u: np.ndarray) -> bool:
    """Whether the NNLS solution ``u`` is (robustly) the unique minimiser.

    The fitted value ``A u`` of a least-squares problem is unique, hence so is
    the dual ``d = A^T (b - A u)``.  Any other minimiser ``u'`` satisfies the
    KKT conditions with the same ``d``, so it is supported on ``{j: d_j = 0}``.
    With strict complementarity (``d_j < 0`` off the support ``S`` of ``u``)
    that set is ``S``, and ``A_S (u' - u) = 0`` forces ``u' = u`` when ``A_S``
    has full column rank.  Margins make the certificate robust to rounding;
    ``w = u / sum(u)`` is then unique too, and both solvers must find it to
    about eps * cond(A_S) <= 1e-9.
    """
    a, b = _augmented(x1, x0, v)
    support = u > 0.0
    dual = a.T @ (b - a @ u)
    if np.any(dual[~support] > -1e-9):
        return False
    sv = np.linalg.svd(a[:, support], compute_uv=False)
    return bool(sv[-1] > 1e-7 * sv[0])


def _assert_kkt(x1: np.ndarray, x0: np.ndarray, v: np.ndarray, w: np.ndarray) -> None:
    """Optimality certificate, independent of any other solver.

    ``u = w / (1 + q)``, ``q = ||C w||^2`` (scaled units), is the NNLS point
    corresponding to ``w``.  It minimises ``||A u - b||`` over ``u >= 0`` iff the
    dual ``d = A^T (b - A u)`` satisfies ``d <= 0``, with ``d_j = 0`` wherever
    ``u_j > 0`` (Lawson and Hanson 1974, ch. 23, theorem 23.4).
    """
    a, b = _augmented(x1, x0, v)
    u = w / (1.0 + np.sum((a[:-1] @ w) ** 2))
    dual = a.T @ (b - a @ u)
    assert dual.max() <= KKT_ATOL, dual.max()
    if np.any(w > 0.0):
        assert np.abs(dual[w > 0.0]).max() <= KKT_ATOL, dual[w > 0.0]


def _check_against_reference(
    x1: np.ndarray, x0: np.ndarray, v: np.ndarray, *, require_unique: bool = False
) -> bool:
    """Solve with the kernel and compare with scipy; return whether weights were compared."""
    x1 = np.ascontiguousarray(x1, dtype=np.float64)
    x0 = np.ascontiguousarray(x0, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    w = np.empty(x0.shape[1])
    obj = simplex_weights(x1, x0, v, w)

    # Feasibility, always: exact non-negativity and the budget constraint.
    assert np.all(w >= 0.0), w
    assert abs(w.sum() - 1.0) <= SUM_ATOL, w.sum()
    _assert_kkt(x1, x0, v, w)

    scale = _scale(x1, x0, v)
    floor = OBJ_ATOL_REL_SCALE2 * scale**2
    # The returned objective is the objective of the returned weights.
    assert obj == pytest.approx(_objective(x1, x0, v, w), rel=1e-12, abs=1e-3 * floor)

    w_ref, u_ref = _reference(x1, x0, v)
    obj_ref = _objective(x1, x0, v, w_ref)
    assert abs(obj - obj_ref) <= OBJ_RTOL * obj_ref + floor, (obj, obj_ref, scale)

    unique = _unique_certificate(x1, x0, v, u_ref)
    if require_unique:
        assert unique, "problem expected to have a well-conditioned unique optimum"
    if unique:
        np.testing.assert_allclose(w, w_ref, rtol=0.0, atol=WEIGHT_ATOL)
    return unique


# --------------------------------------------------------------------------
# Random problem families, including degenerate and badly scaled ones
# --------------------------------------------------------------------------

KINDS = (
    "generic_tall",  # m >= J, full column rank: strictly convex, unique optimum
    "generic_wide",  # m < J
    "log_paths",  # indexed log outcome paths, treated = noisy convex combination
    "in_hull",  # treated an exact convex combination: zero objective
    "treated_is_donor",
    "duplicates",  # repeated donor columns
    "collinear",  # donors that are affine combinations of others
    "constant_rows",  # rows where treated and all donors are equal
    "zero_variance",  # all donors identical
    "bad_rows",  # v spanning 1e-6 .. 1e6
    "huge",  # values ~ 1e6
    "offset",  # level 1e6, differences O(1)
    "tiny",  # values ~ 1e-6
    "single_donor",  # J = 1
    "single_row",  # m = 1
    "zero_v",  # some rows switched off (v = 0)
    "ties",  # small integer grid: many exact ties
    "mixed",  # several of the above at once
)
PROBLEMS_PER_KIND = 200  # 18 kinds: 3600 problems
# Minimum share of problems per family whose optimum is certified unique (so
# that weights are compared too); families with duplicate donors or exact
# fits are mostly non-unique and are checked on the objective only.
MIN_UNIQUE_SHARE = {
    "generic_tall": 1.0,
    "single_donor": 1.0,
    "generic_wide": 0.6,
    "log_paths": 0.6,
    "constant_rows": 0.6,
    "bad_rows": 0.6,
    "huge": 0.6,
    "offset": 0.6,
    "tiny": 0.6,
    "zero_v": 0.6,
    "ties": 0.6,
    "collinear": 0.3,
    "mixed": 0.2,
    "single_row": 0.15,
}


def _random_problem(
    rng: np.random.Generator, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = int(rng.integers(2, 25))
    n = int(rng.integers(2, 40))
    x0 = rng.normal(size=(m, n))
    x1 = 1.5 * rng.normal(size=m)
    v = np.ones(m)
    if kind == "generic_tall":
        n = int(rng.integers(1, 12))
        m = n + int(rng.integers(0, 10))
        x0 = rng.normal(size=(m, n))
        x1 = 1.5 * rng.normal(size=m)
        v = rng.uniform(0.2, 2.0, size=m)
    elif kind == "generic_wide":
        m = int(rng.integers(1, 10))
        n = m + int(rng.integers(1, 40))
        x0 = rng.normal(size=(m, n))
        x1 = 1.5 * rng.normal(size=m)
        v = np.ones(m)
    elif kind == "log_paths":
        x0 = np.cumsum(rng.normal(0.0, 0.02, size=(m, n)), axis=0)
        x1 = x0 @ rng.dirichlet(np.full(n, 0.3)) + rng.normal(0.0, 0.01, size=m)
    elif kind == "in_hull":
        weights = rng.dirichlet(np.ones(n)) * (rng.random(n) < 0.5)
        weights[int(rng.integers(n))] += 0.1
        x1 = x0 @ (weights / weights.sum())
    elif kind == "treated_is_donor":
        x1 = x0[:, int(rng.integers(n))].copy()
    elif kind == "duplicates":
        base = rng.normal(size=(m, max(1, n // 3)))
        x0 = base[:, rng.integers(base.shape[1], size=n)]
        if rng.random() < 0.5:
            x1 = base[:, 0].copy()
    elif kind == "collinear":
        for j in range(2, n, 2):
            p, q = rng.integers(j, size=2)
            a = rng.uniform(-1.0, 2.0)
            x0[:, j] = a * x0[:, p] + (1.0 - a) * x0[:, q]
    elif kind == "constant_rows":
        rows = rng.random(m) < 0.4
        level = rng.normal(size=m) * 10.0
        x0[rows] = level[rows, None]
        x1[rows] = level[rows]
    elif kind == "zero_variance":
        x0 = np.repeat(rng.normal(size=(m, 1)), n, axis=1)
    elif kind == "bad_rows":
        v = 10.0 ** rng.uniform(-6.0, 6.0, size=m)
    elif kind == "huge":
        x0 *= 1e6
        x1 *= 1e6
    elif kind == "offset":
        x0 += 1e6
        x1 += 1e6
    elif kind == "tiny":
        x0 *= 1e-6
        x1 *= 1e-6
    elif kind == "single_donor":
        x0 = x0[:, :1].copy()
    elif kind == "single_row":
        x0 = x0[:1].copy()
        x1 = x1[:1].copy()
        v = v[:1].copy()
    elif kind == "zero_v":
        v = rng.uniform(0.0, 2.0, size=m) * (rng.random(m) < 0.6)
    elif kind == "ties":
        x0 = rng.integers(-2, 3, size=(m, n)).astype(np.float64)
        x1 = rng.integers(-2, 3, size=m).astype(np.float64)
    elif kind == "mixed":
        if rng.random() < 0.5:
            x0[:, rng.integers(n, size=n // 2)] = x0[:, : n // 2]
        if rng.random() < 0.5:
            x1 = x0 @ rng.dirichlet(np.ones(n))
        v = 10.0 ** rng.uniform(-6.0, 6.0, size=m) * (rng.random(m) < 0.8)
        level = 10.0 ** rng.uniform(-6.0, 6.0)
        x0 *= level
        x1 *= level
    else:  # pragma: no cover - guards the KINDS list
        raise AssertionError(kind)
    return x1, x0, v


@pytest.mark.parametrize("kind", KINDS)
def test_matches_scipy_nnls_reference(kind: str) -> None:
    rng = np.random.default_rng([20240611, KINDS.index(kind)])
    compared = 0
    for _ in range(PROBLEMS_PER_KIND):
        x1, x0, v = _random_problem(rng, kind)
        compared += _check_against_reference(x1, x0, v, require_unique=kind == "generic_tall")
    # The weight comparison must not be vacuous where optima are generically unique.
    assert compared >= MIN_UNIQUE_SHARE.get(kind, 0.0) * PROBLEMS_PER_KIND, compared


# Row weights drawn from a few decades, including exact zeros.
_V_ELEMENTS = st.sampled_from([0.0, 1e-6, 1e-3, 1.0, 1e3, 1e6]) | st.floats(0.0, 10.0)
_X_ELEMENTS = st.floats(-100.0, 100.0, allow_nan=False, allow_subnormal=False) | st.integers(
    -3, 3
).map(float)


@settings(deadline=None)
@given(data=st.data())
def test_matches_scipy_nnls_reference_hypothesis(data: Any) -> None:
    m = data.draw(st.integers(1, 8), label="m")
    n = data.draw(st.integers(1, 8), label="J")
    x0 = data.draw(arrays(np.float64, (m, n), elements=_X_ELEMENTS), label="x0")
    x1 = data.draw(arrays(np.float64, (m,), elements=_X_ELEMENTS), label="x1")
    v = data.draw(arrays(np.float64, (m,), elements=_V_ELEMENTS), label="v")
    if n > 1 and data.draw(st.booleans(), label="duplicate donor"):
        x0[:, -1] = x0[:, 0]
    if data.draw(st.booleans(), label="treated is a donor"):
        x1 = x0[:, data.draw(st.integers(0, n - 1))].copy()
    scale = data.draw(st.sampled_from([1e-6, 1.0, 1e6]), label="scale")
    _check_against_reference(x1 * scale, x0 * scale, v)


# --------------------------------------------------------------------------
# Exact recovery and known answers
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_recovers_convex_combination_exactly(seed: int) -> None:
    # With m >= J generic donors, X0 has full column rank, so X0 w = X1 has a
    # unique solution and it is the unique zero-objective point of the simplex.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    m = n + int(rng.integers(0, 8))
    x0 = np.cumsum(rng.normal(0.0, 0.05, size=(m, n)), axis=0) + rng.normal(size=n)
    w_true = rng.dirichlet(np.ones(n)) * (rng.random(n) < 0.6)
    w_true[int(rng.integers(n))] += 0.2
    w_true /= w_true.sum()
    x1 = x0 @ w_true
    v = 10.0 ** rng.uniform(-2.0, 2.0, size=m)
    w = np.empty(n)
    obj = simplex_weights(x1, x0, v, w)
    np.testing.assert_allclose(w, w_true, rtol=0.0, atol=1e-10)
    assert obj <= 1e-24 * _scale(x1, x0, v) ** 2


def test_treated_equal_to_a_donor_gets_all_the_weight() -> None:
    rng = np.random.default_rng(7)
    x0 = rng.normal(size=(12, 6))
    for j in range(6):
        w = np.empty(6)
        obj = simplex_weights(x0[:, j].copy(), x0, np.ones(12), w)
        # Exact fit: a degenerate optimum where the other donors' zero
        # coefficients are only determined to rounding (~eps * cond).
        np.testing.assert_allclose(w, np.eye(6)[j], rtol=0.0, atol=1e-14)
        assert obj <= 1e-28


def test_single_donor() -> None:
    x1 = np.array([1.0, 2.0, 4.0])
    x0 = np.array([[0.5], [2.5], [3.0]])
    v = np.array([1.0, 2.0, 0.5])
    w = np.empty(1)
    obj = simplex_weights(x1, x0, v, w)
    assert w[0] == 1.0
    assert obj == pytest.approx(0.25 + 2 * 0.25 + 0.5 * 1.0, rel=1e-15)


def test_single_row() -> None:
    x0 = np.array([[1.0, 3.0, 7.0, 9.0]])
    w = np.empty(4)
    # Outside the donors' range: the nearest donor, alone.
    obj = simplex_weights(np.array([10.0]), x0, np.ones(1), w)
    np.testing.assert_array_equal(w, [0.0, 0.0, 0.0, 1.0])
    assert obj == 1.0
    # Inside: an exact fit.
    obj = simplex_weights(np.array([5.0]), x0, np.ones(1), w)
    assert obj <= 1e-28
    assert float(x0[0] @ w) == pytest.approx(5.0, rel=1e-14)


def test_duplicate_donors_share_the_weight() -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(8, 4))
    x0 = base[:, [0, 1, 2, 0, 3]]  # donors 0 and 3 identical
    w = np.empty(5)
    obj = simplex_weights(base[:, 0].copy(), x0, np.ones(8), w)
    assert obj == 0.0
    assert w[0] + w[3] == pytest.approx(1.0, abs=1e-15)
    assert np.all(w[[1, 2, 4]] == 0.0)


def test_all_donors_identical() -> None:
    x0 = np.repeat(np.array([[1.0], [2.0], [3.0]]), 4, axis=1)
    x1 = np.array([2.0, 2.0, 2.0])
    w = np.empty(4)
    obj = simplex_weights(x1, x0, np.ones(3), w)
    assert obj == pytest.approx(2.0, rel=1e-15)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert np.all(w >= 0.0)


def test_treated_equal_to_every_donor_picks_the_first() -> None:
    # Every weight vector is optimal; the documented tie-break is the lowest index.
    x0 = np.ones((3, 4))
    w = np.empty(4)
    obj = simplex_weights(np.ones(3), x0, np.ones(3), w)
    assert obj == 0.0
    np.testing.assert_array_equal(w, [1.0, 0.0, 0.0, 0.0])


# --------------------------------------------------------------------------
# Invariances
# --------------------------------------------------------------------------


def _generic(seed: int, m: int = 15, n: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x0 = np.cumsum(rng.normal(0.0, 0.05, size=(m, n)), axis=0)
    x1 = x0 @ rng.dirichlet(np.full(n, 0.5)) + rng.normal(0.0, 0.02, size=m)
    return x1, x0, rng.uniform(0.5, 2.0, size=m)


def _solve(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, float]:
    w = np.empty(x0.shape[1])
    obj = simplex_weights(
        np.ascontiguousarray(x1), np.ascontiguousarray(x0), np.ascontiguousarray(v), w
    )
    return w, obj


@pytest.mark.parametrize("seed", range(10))
def test_power_of_two_rescaling_is_exact(seed: int) -> None:
    # The kernel rescales by a power of two itself, so scaling the data by one
    # gives bit-identical weights and an objective scaled exactly by its square.
    x1, x0, v = _generic(seed)
    w, obj = _solve(x1, x0, v)
    for k in (-40, -3, 5, 60):
        wk, objk = _solve(x1 * 2.0**k, x0 * 2.0**k, v)
        np.testing.assert_array_equal(wk, w)
        assert objk == pytest.approx(obj * 4.0**k, rel=1e-14)


@pytest.mark.parametrize("seed", range(10))
def test_invariances(seed: int) -> None:
    x1, x0, v = _generic(seed)
    w, obj = _solve(x1, x0, v)
    # Units: any positive factor.
    wk, objk = _solve(x1 * 1e6, x0 * 1e6, v)
    np.testing.assert_allclose(wk, w, rtol=0.0, atol=1e-9)
    assert objk == pytest.approx(obj * 1e12, rel=1e-8)
    # Row weights: scaling V scales the objective only.
    wv, objv = _solve(x1, x0, v * 3.0)
    np.testing.assert_allclose(wv, w, rtol=0.0, atol=1e-9)
    assert objv == pytest.approx(3.0 * obj, rel=1e-8)
    # Rows where treated and donors coincide carry no information.
    extra = np.full((3, x0.shape[1]), 4.25)
    wc, objc = _solve(np.r_[x1, [4.25] * 3], np.vstack([x0, extra]), np.r_[v, [1.0] * 3])
    np.testing.assert_allclose(wc, w, rtol=0.0, atol=1e-12)
    assert objc == pytest.approx(obj, rel=1e-12)
    # Relabelling donors relabels the weights.
    perm = np.random.default_rng(seed).permutation(x0.shape[1])
    wp, objp = _solve(x1, x0[:, perm], v)
    np.testing.assert_allclose(wp, w[perm], rtol=0.0, atol=1e-12)
    assert objp == pytest.approx(obj, rel=1e-12)


# --------------------------------------------------------------------------
# Batch kernel, failure flag and the validated wrapper
# --------------------------------------------------------------------------


def test_batch_equals_single_fits() -> None:
    rng = np.random.default_rng(11)
    n_fits, m, n = 25, 12, 9
    x0s = np.cumsum(rng.normal(0.0, 0.05, size=(n_fits, m, n)), axis=1)
    x1s = np.einsum("kmj,kj->km", x0s, rng.dirichlet(np.ones(n), size=n_fits))
    x1s += rng.normal(0.0, 0.01, size=(n_fits, m))
    vs = 10.0 ** rng.uniform(-3.0, 3.0, size=(n_fits, m))
    w_out = np.empty((n_fits, n))
    obj_out = np.empty(n_fits)
    simplex_weights_batch(x1s, x0s, vs, w_out, obj_out)
    for k in range(n_fits):
        w, obj = _solve(x1s[k], x0s[k], vs[k])
        np.testing.assert_array_equal(w_out[k], w)
        assert obj_out[k] == obj


def test_entry_tests_reject_dependent_and_negative_columns() -> None:
    # Lawson and Hanson's entry tests (ch. 23): after column 0 is passive, a
    # candidate enters only if it is numerically independent of it and gets
    # a positive coefficient in the enlarged least-squares solution.
    amat = np.array(
        [
            # a0   a1=a0  a2    a3    a4 = a0 + 1e-17 e_2
            [1.0, 1.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0, -1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 1e-17],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    b = np.array([1.0, 1.0, 1e-3, 0.0])
    norms = np.linalg.norm(amat, axis=0)
    qmat, rmat, qtb = np.eye(4), np.zeros((4, 4)), b.copy()
    y, qh = np.empty(4), np.empty(4)
    assert _qr_insert(amat, 0, norms[0], 0, qmat, rmat, qtb, y, qh)
    state = (qmat.copy(), rmat.copy(), qtb.copy())
    # a1 duplicates a0; a4 differs from it by 1e-17 relative, below 100 eps,
    # although its coefficient 1e-3 / 1e-17 would be positive; a3's would be -1.
    for t in (1, 4, 3):
        assert not _qr_insert(amat, t, norms[t], 1, qmat, rmat, qtb, y, qh), t
        for before, after in zip(state, (qmat, rmat, qtb), strict=True):
            np.testing.assert_array_equal(after, before)
    # a2 is independent with coefficient +1: it enters, and Q R reproduces A_P.
    assert _qr_insert(amat, 2, norms[2], 1, qmat, rmat, qtb, y, qh)
    np.testing.assert_allclose(qmat[:, :2] @ np.triu(rmat[:2, :2]), amat[:, [0, 2]], atol=1e-15)
    np.testing.assert_allclose(qmat.T @ qmat, np.eye(4), atol=1e-15)
    np.testing.assert_allclose(qtb, qmat.T @ b, atol=1e-15)


def test_iteration_cap_reports_failure() -> None:
    # Lawson and Hanson cap the number of least-squares solves (3 J here);
    # when the cap is hit the kernel must say so rather than return an iterate.
    x1, x0, v = _generic(5, m=15, n=10)
    a, b = _augmented(x1, x0, v)
    x = np.empty(x0.shape[1])
    solves = _nnls(np.ascontiguousarray(a), b, x, 3 * x0.shape[1], EPS * a.shape[0] * 2.0)
    assert solves >= 2
    assert np.count_nonzero(x) >= 2
    assert _nnls(np.ascontiguousarray(a), b, x, solves - 1, EPS * a.shape[0] * 2.0) == -1


def test_wrapper_reports_kernel_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_kernel(x1: np.ndarray, x0: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
        w[:] = np.nan
        return math.nan

    monkeypatch.setattr(synthetic_control, "simplex_weights", failing_kernel)
    with pytest.raises(RuntimeError, match="active-set NNLS failed"):
        fit_synthetic_control(np.zeros(3), np.ones((3, 2)))


def test_wrapper_result() -> None:
    x1, x0, v = _generic(2)
    fit = fit_synthetic_control(x1.tolist(), x0.tolist(), v)
    assert isinstance(fit, SyntheticFit)
    w, obj = _solve(x1, x0, v)
    np.testing.assert_array_equal(fit.weights, w)
    assert fit.objective == obj
    assert fit.rmspe == pytest.approx(math.sqrt(obj / v.sum()), rel=1e-15)
    assert not fit.weights.flags.writeable
    with pytest.raises(AttributeError):
        fit.objective = 0.0  # type: ignore[misc]
    # Default v: outcome rows only, so rmspe is the plain root mean squared error.
    fit1 = fit_synthetic_control(x1, x0)
    resid = x1 - x0 @ fit1.weights
    assert fit1.rmspe == pytest.approx(math.sqrt(np.mean(resid**2)), rel=1e-9)


@pytest.mark.parametrize(
    ("treated", "donors", "v", "message"),
    [
        ([1.0, math.nan], [[1.0], [2.0]], None, "treated contains NaN"),
        ([1.0, 2.0], [[1.0], [math.inf]], None, "donors contains NaN or infinite"),
        ([1.0, 2.0], [[1.0], [2.0]], [1.0, math.nan], "v contains NaN"),
        ([1.0, 2.0], [[1.0], [2.0]], [1.0, -1e-9], "v must be non-negative"),
        ([1.0, 2.0], [[1.0], [2.0]], [0.0, 0.0], "at least one positive"),
        ([1.0, 2.0], [[1.0], [2.0]], [1.0, 1.0, 1.0], r"v must have shape \(2,\)"),
        ([1.0, 2.0, 3.0], [[1.0], [2.0]], None, r"donors must have shape \(m, J\) = \(3, J\)"),
        ([1.0, 2.0], [1.0, 2.0], None, "donors must have shape"),
        ([1.0, 2.0], np.empty((2, 0)), None, "J >= 1"),
        ([[1.0], [2.0]], [[1.0], [2.0]], None, "treated must be a non-empty 1-D array"),
        ([], np.empty((0, 2)), None, "treated must be a non-empty 1-D array"),
        ([1e300, 0.0], [[-1e300], [0.0]], [4e10, 1.0], "overflows"),
        ([1.7e308, 0.0], [[-1.7e308], [0.0]], None, "overflows"),
        ([1.0, 2.0], [[1.0], [2.0]], [1e308, 1e308], r"sum\(v\) overflows"),
    ],
)
def test_wrapper_rejects_bad_input(treated: Any, donors: Any, v: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_synthetic_control(treated, donors, v)
