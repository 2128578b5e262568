r"""Exact synthetic-control weights by Lawson-Hanson NNLS, compiled with numba.

The problem
-----------
Synthetic control (Abadie, Diamond and Hainmueller 2010, "Synthetic Control
Methods for Comparative Case Studies", JASA 105(490)) builds a counterfactual
for a treated unit as a convex combination of donor units.  Given the treated
unit's pre-period vector ``X1`` (shape ``(m,)``), the donors' matrix ``X0``
(shape ``(m, J)``, one column per donor) and non-negative row weights ``v``
(the diagonal of ``V``: 1 for outcome rows, chosen weights for covariate rows),
the weights solve

.. math::

    \min_w \; \sum_i v_i \, (X_{1,i} - (X_0 w)_i)^2
    \quad \text{s.t.} \quad w \ge 0, \; 1^T w = 1.

Exact reformulation as non-negative least squares
-------------------------------------------------
Let ``C = sqrt(V) (X0 - X1 1^T)`` (shape ``(m, J)``).  On the simplex
``1^T w = 1``, so ``X1 = X1 1^T w`` and the residual is
``X1 - X0 w = -(X0 - X1 1^T) w``; the objective is therefore ``q(w) = ||C w||^2``.
Now consider the NNLS problem on the augmented ``(m + 1, J)`` system

.. math::

    \min_{u \ge 0} \left\| \begin{bmatrix} C \\ 1^T \end{bmatrix} u
        - \begin{bmatrix} 0 \\ 1 \end{bmatrix} \right\|^2
    = \|C u\|^2 + (1^T u - 1)^2 .                                   \qquad (*)

Every ``u >= 0, u != 0`` is uniquely ``u = s w`` with ``s = 1^T u > 0`` and
``w`` on the simplex, and then the objective of (*) is

.. math::

    g(s, w) = s^2 q(w) + (s - 1)^2 .

For fixed ``w`` this is a convex parabola in ``s``, minimised at
``s^* = 1 / (1 + q(w))`` with value ``q(w) / (1 + q(w)) < 1``; ``u = 0`` gives
the value 1, so it is never optimal.  Hence
``min (*) = min_w q(w) / (1 + q(w))``, and because ``q -> q / (1 + q)`` is
strictly increasing on ``q >= 0``, ``u^*`` solves (*) if and only if
``w^* = u^* / 1^T u^*`` solves the simplex problem (with ``1^T u^* = 1 / (1 + q(w^*))``).
The optimal NNLS residual is ``q^* / (1 + q^*)``.

The NNLS problem is solved with the Lawson-Hanson active-set algorithm
(Lawson and Hanson 1974, "Solving Least Squares Problems", Prentice-Hall,
ch. 23), which in exact arithmetic terminates finitely at a KKT point, i.e. at
the exact minimiser; here it is made robust in floating point by

* an exact power-of-two rescaling of ``C`` so its largest entry lies in
  ``[1/2, 1)``.  The simplex minimiser is invariant to ``C -> c C`` (the
  objective scales by ``c^2``), and a power of two changes no bits, so the
  augmented system is well scaled whatever the units of the data (values of
  1e6, row weights spanning 1e-6..1e6) and ``1^T u^* >= 1 / (1 + m)``;
* a QR factorisation of the passive columns with explicit orthogonal ``Q``,
  updated by a Householder reflector when a column enters and downdated by
  Givens rotations when columns leave: ``O((m + 1)^2)`` work per change,
  backward stable, no normal equations;
* Lawson and Hanson's entry tests: a candidate column is accepted only if it
  is numerically independent of the passive columns and its coefficient in
  the enlarged least-squares solution is positive; otherwise it is skipped
  for this round (duplicate and affinely collinear donors have a dual that
  is zero up to rounding, and would otherwise make the iteration cycle);
* a scale-aware tolerance on the dual ``a_j^T r``, ``r = b - A u``: a
  column may enter only if its dual exceeds ``eps (m + 1) max_j ||a_j|| ||r||``,
  the rounding level of a dual that is zero in exact arithmetic;
* an iteration cap of ``3 J`` least-squares solves (as in the original
  Fortran NNLS), after which the kernel reports failure instead of looping.

Kernels here trust their inputs (contiguous, finite float64, ``v >= 0``);
:func:`lobsim.model.synthetic_control.fit_synthetic_control` validates them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "MAXITER_PER_DONOR",
    "simplex_weights",
    "simplex_weights_batch",
]

# numba freezes module globals into the compiled code as constants.
_EPS = float(np.finfo(np.float64).eps)
# A column enters only if the part of it orthogonal to the passive columns is
# larger than this multiple of eps times its norm (Lawson and Hanson's
# independence test uses a factor 0.01 against the already-reduced norm,
# i.e. the same 100 eps).
_INDEP_FACTOR = 100.0 * _EPS
#: Iteration cap: at most this many least-squares solves per donor.
MAXITER_PER_DONOR = 3


# Explicit signature: called with literal ints in the first pass of type
# inference, numba would otherwise also compile a literal specialisation.
@njit(
    "boolean(float64[:, ::1], int64, float64, int64, float64[:, ::1], float64[:, ::1],"
    " float64[::1], float64[::1], float64[::1])",
    cache=True,
    nogil=True,
)
def _qr_insert(
    amat: np.ndarray,
    t: int,
    colnorm: float,
    k: int,
    qmat: np.ndarray,
    rmat: np.ndarray,
    qtb: np.ndarray,
    y: np.ndarray,
    qh: np.ndarray,
) -> bool:
    """Try to append column ``t`` of ``amat`` to the passive factorisation ``A_P = Q R``.

    ``Q`` is an explicit ``p x p`` orthogonal matrix, ``R`` the leading ``k x k``
    block of ``rmat`` and ``qtb = Q^T b``.  The column is accepted only if it
    passes Lawson and Hanson's entry tests: its part orthogonal to the
    ``k`` passive columns must exceed ``100 eps ||a_t||`` (numerical
    independence), and its coefficient in the enlarged least-squares solution,
    which is the last unknown of the triangular system ``(Q^T b)_k / R_kk``,
    must be positive.  On acceptance a Householder reflector on rows ``k:``
    updates ``Q``, ``R`` and ``qtb`` (cost ``O(p^2)``); on rejection only the
    scratch vectors ``y`` and ``qh`` change.
    """
    p = amat.shape[0]
    if k >= p:  # p independent columns already span the whole space
        return False
    # y = Q^T a_t, accumulated row by row so the inner loop vectorises.
    y[:] = 0.0
    for r in range(p):
        a = amat[r, t]
        for i in range(p):
            y[i] += a * qmat[r, i]
    ss = 0.0
    for i in range(k, p):
        ss += y[i] * y[i]
    sigma = math.sqrt(ss)
    if sigma <= _INDEP_FACTOR * colnorm:
        return False
    # Reflector H = I - beta h h^T mapping y[k:] to alpha e_1, h = y[k:] - alpha e_1;
    # the sign of alpha is chosen so that y[k] - alpha does not cancel.
    yk = y[k]
    alpha = -sigma if yk >= 0.0 else sigma
    beta = 1.0 / (sigma * (sigma + abs(yk)))
    y[k] = yk - alpha
    d = 0.0
    for i in range(k, p):
        d += y[i] * qtb[i]
    d *= beta
    if not (qtb[k] - d * y[k]) / alpha > 0.0:
        return False
    for i in range(k, p):
        qtb[i] -= d * y[i]
    # Q <- Q H, H acting on columns k: of Q.  qh = beta * Q[:, k:] h is
    # accumulated column by column so the p sums proceed independently.
    qh[:] = 0.0
    for i in range(k, p):
        yi = beta * y[i]
        for r in range(p):
            qh[r] += qmat[r, i] * yi
    for r in range(p):
        d = qh[r]
        for i in range(k, p):
            qmat[r, i] -= d * y[i]
    for i in range(k):
        rmat[i, k] = y[i]
    rmat[k, k] = alpha
    return True


@njit(cache=True, nogil=True)
def _qr_delete(
    pos: int, k: int, qmat: np.ndarray, rmat: np.ndarray, qtb: np.ndarray, pidx: np.ndarray
) -> bool:
    """Remove passive column ``pos`` (of ``k``) from ``A_P = Q R`` by Givens rotations.

    Deleting a column of ``R`` leaves an upper-Hessenberg block; rotations of
    rows ``(c, c + 1)`` for ``c = pos..k-2`` restore triangular form and are
    applied to ``qtb`` and (transposed) to the columns of ``Q``.
    Cost ``O(k^2 + p k)``.  Returns False if a zero pivot appears, which
    cannot happen for linearly independent columns.
    """
    p = qmat.shape[0]
    for c in range(pos, k - 1):
        pidx[c] = pidx[c + 1]
        for i in range(c + 2):
            rmat[i, c] = rmat[i, c + 1]
    for c in range(pos, k - 1):
        a = rmat[c, c]
        bb = rmat[c + 1, c]
        rho = math.hypot(a, bb)
        if rho == 0.0:
            return False
        cs = a / rho
        sn = bb / rho
        rmat[c, c] = rho
        rmat[c + 1, c] = 0.0
        for j in range(c + 1, k - 1):
            t1 = rmat[c, j]
            t2 = rmat[c + 1, j]
            rmat[c, j] = cs * t1 + sn * t2
            rmat[c + 1, j] = cs * t2 - sn * t1
        t1 = qtb[c]
        t2 = qtb[c + 1]
        qtb[c] = cs * t1 + sn * t2
        qtb[c + 1] = cs * t2 - sn * t1
        for r in range(p):
            t1 = qmat[r, c]
            t2 = qmat[r, c + 1]
            qmat[r, c] = cs * t1 + sn * t2
            qmat[r, c + 1] = cs * t2 - sn * t1
    return True


@njit(cache=True, nogil=True)
def _back_substitute(rmat: np.ndarray, qtb: np.ndarray, k: int, z: np.ndarray) -> None:
    """Solve the leading ``k x k`` upper-triangular system ``R z = (Q^T b)[:k]``.

    Column-oriented: once ``z[i]`` is known its column is eliminated from the
    right-hand side, so the inner updates are independent of one another.
    """
    for i in range(k):
        z[i] = qtb[i]
    for i in range(k - 1, -1, -1):
        zi = z[i] / rmat[i, i]
        z[i] = zi
        for j in range(i):
            z[j] -= rmat[j, i] * zi


@njit(cache=True, nogil=True)
def _nnls(amat: np.ndarray, b: np.ndarray, x: np.ndarray, maxiter: int, tol_factor: float) -> int:
    """Lawson-Hanson active-set NNLS: ``min ||A x - b||`` subject to ``x >= 0``.

    Lawson and Hanson (1974), "Solving Least Squares Problems", ch. 23,
    algorithm NNLS.  The least-squares subproblem on the passive columns is
    solved from a QR factorisation ``A_P = Q R`` with explicit orthogonal
    ``Q``, updated by a Householder reflector when a column enters and
    downdated by Givens rotations when columns leave (both backward stable,
    no normal equations).

    Parameters
    ----------
    amat : ndarray, shape (p, n)
        The matrix ``A``, C-contiguous.
    b : ndarray, shape (p,)
        Right-hand side.
    x : ndarray, shape (n,)
        Output: the solution (exact zeros off the passive set).
    maxiter : int
        Maximum number of least-squares solves.
    tol_factor : float
        A column may enter only if its dual ``a_j^T r`` exceeds
        ``tol_factor * ||r||``, ``r = b - A x`` (see :func:`simplex_weights`).

    Returns
    -------
    int
        Number of least-squares solves used, or -1 on failure: ``maxiter``
        was hit, or the factorisation broke down (a zero pivot when a column
        leaves, impossible for the independent columns the entry test admits).
    """
    p, n = amat.shape
    qmat = np.zeros((p, p))
    for i in range(p):
        qmat[i, i] = 1.0
    rmat = np.empty((p, p))
    qtb = b.copy()
    y = np.empty(p)
    qh = np.empty(p)
    z = np.empty(p)
    resid = np.empty(p)
    dual = np.empty(n)
    colnorm = np.zeros(n)
    for r in range(p):
        for j in range(n):
            colnorm[j] += amat[r, j] * amat[r, j]
    for j in range(n):
        colnorm[j] = math.sqrt(colnorm[j])
    pidx = np.empty(p, np.int64)  # passive columns, in factorisation order
    passive = np.zeros(n, np.bool_)
    skipped = np.zeros(n, np.bool_)
    x[:] = 0.0
    k = 0
    it = 0
    while True:
        # Dual (half the negative gradient) from a freshly computed residual.
        for r in range(p):
            resid[r] = b[r]
        for q in range(k):
            j = pidx[q]
            xj = x[j]
            for r in range(p):
                resid[r] -= xj * amat[r, j]
        rr = 0.0
        for r in range(p):
            rr += resid[r] * resid[r]
        dual_tol = tol_factor * math.sqrt(rr)
        # Row-wise accumulation: independent sums over j vectorise, and each
        # dual is still summed in row order.
        dual[:] = 0.0
        for r in range(p):
            rv = resid[r]
            for j in range(n):
                dual[j] += amat[r, j] * rv
        # Enter the column with the largest dual that passes the entry tests.
        skipped[:] = False
        entered = False
        while True:
            t = -1
            best = dual_tol
            for j in range(n):
                if dual[j] > best and not passive[j] and not skipped[j]:
                    best = dual[j]
                    t = j
            if t < 0:
                break
            if _qr_insert(amat, t, colnorm[t], k, qmat, rmat, qtb, y, qh):
                pidx[k] = t
                k += 1
                passive[t] = True
                entered = True
                break
            # Positive dual only through rounding (dependent column): skip it.
            skipped[t] = True
        if not entered:
            return it  # KKT conditions hold to within the tolerance
        while True:
            it += 1
            if it > maxiter:
                return -1
            _back_substitute(rmat, qtb, k, z)
            feasible = True
            for q in range(k):
                if z[q] <= 0.0:
                    feasible = False
                    break
            if feasible:
                for q in range(k):
                    x[pidx[q]] = z[q]
                break
            # Move from x towards z until the first passive coefficient hits
            # zero; every passive x is > 0 except a just-entered one, whose
            # z is > 0 by the entry test, so no division by zero.
            alpha = 2.0
            qmin = -1
            for q in range(k):
                if z[q] <= 0.0:
                    xq = x[pidx[q]]
                    a = xq / (xq - z[q])
                    if a < alpha:
                        alpha = a
                        qmin = q
            for q in range(k):
                j = pidx[q]
                x[j] += alpha * (z[q] - x[j])
            x[pidx[qmin]] = 0.0  # exactly, whatever the rounding of the step
            # Free every coefficient that is not positive (highest position
            # first, so lower positions stay valid).
            for q in range(k - 1, -1, -1):
                j = pidx[q]
                if x[j] <= 0.0:
                    x[j] = 0.0
                    passive[j] = False
                    if not _qr_delete(q, k, qmat, rmat, qtb, pidx):
                        return -1
                    k -= 1


@njit(cache=True, nogil=True)
def simplex_weights(x1: np.ndarray, x0: np.ndarray, v: np.ndarray, w_out: np.ndarray) -> float:
    """Synthetic-control weights on the simplex, exactly, for one treated unit.

    Minimises ``sum_i v[i] * (x1[i] - (x0 @ w)[i])**2`` subject to ``w >= 0``
    and ``sum(w) == 1`` by Lawson-Hanson NNLS on the exact augmented
    reformulation described in the module docstring.  jit-compiled
    (``numba.njit``, ``nogil``); inputs are trusted, not validated.

    When the minimiser is not unique (duplicate or affinely collinear donors,
    fewer rows than donors, an exact fit) the result is one minimiser,
    deterministic, with ties between donors broken towards the lower index.
    Donors outside the optimal support get weight exactly 0, except at
    degenerate optima (typically an exact fit, objective ~ 0), where
    coefficients that are zero in exact arithmetic come out at the rounding
    level, ``eps * cond``, with either sign, and the positive ones are kept.

    Parameters
    ----------
    x1 : ndarray of float64, shape (m,)
        Treated unit's pre-period predictors/outcomes, C-contiguous, finite.
    x0 : ndarray of float64, shape (m, J)
        Donors, one column per donor, C-contiguous, finite.
    v : ndarray of float64, shape (m,)
        Non-negative row weights (the diagonal of ``V``).
    w_out : ndarray of float64, shape (J,)
        Output: the weights, ``w_out >= 0`` exactly and ``sum(w_out) == 1`` to
        rounding.  Filled with NaN on failure.

    Returns
    -------
    float
        The minimised objective, evaluated as
        ``sum_i v[i] * (sum_j (x0[i, j] - x1[i]) * w[j])**2``: on the simplex
        this is algebraically the same as the definition and avoids the
        cancellation in ``x1 - x0 @ w`` when values are large.  NaN (and
        ``w_out`` all NaN) if the active-set iteration failed: its cap of
        ``3 J`` least-squares solves was hit (never observed; a guard against
        cycling) or the factorisation broke down.
    """
    m, n_donors = x0.shape
    p = m + 1
    # The augmented matrix A = [C; 1^T], C = sqrt(V) (X0 - X1 1^T).
    amat = np.empty((p, n_donors))
    cmax = 0.0
    for i in range(m):
        sv = math.sqrt(v[i])
        for j in range(n_donors):
            c = sv * (x0[i, j] - x1[i])
            amat[i, j] = c
            if abs(c) > cmax:
                cmax = abs(c)
    if cmax > 0.0:
        # Exact rescaling by a power of two: max |C| in [1/2, 1).
        _, e = math.frexp(cmax)
        f = math.ldexp(1.0, -e)
        for i in range(m):
            for j in range(n_donors):
                amat[i, j] *= f
    amat[m, :] = 1.0
    colnorm = 0.0
    for j in range(n_donors):
        ss = 0.0
        for i in range(p):
            ss += amat[i, j] * amat[i, j]
        if ss > colnorm:
            colnorm = ss
    colnorm = math.sqrt(colnorm)
    b = np.zeros(p)
    b[m] = 1.0
    # Dual test: a dual a_j^T r that is zero in exact arithmetic (a column in
    # the span of the passive ones) comes out at the rounding level
    # eps * p * ||a_j|| * ||r||, so that is the threshold.  It is relative to
    # the residual, not to ||b||: with badly scaled rows a genuine dual can be
    # far below eps * ||b|| and must still be acted on.  Spurious duals from
    # the absolute rounding floor of a near-exact fit (||r|| ~ eps) are
    # caught by the entry tests in _qr_insert instead.
    tol_factor = _EPS * p * colnorm
    u = np.empty(n_donors)
    it = _nnls(amat, b, u, MAXITER_PER_DONOR * n_donors, tol_factor)
    s = 0.0
    for j in range(n_donors):
        s += u[j]
    if it < 0 or not s > 0.0:
        for j in range(n_donors):
            w_out[j] = np.nan
        return np.nan
    for j in range(n_donors):
        w_out[j] = u[j] / s
    obj = 0.0
    for i in range(m):
        r = 0.0
        for j in range(n_donors):
            r += (x0[i, j] - x1[i]) * w_out[j]
        obj += v[i] * r * r
    return obj


@njit(cache=True, nogil=True)
def simplex_weights_batch(
    x1s: np.ndarray,
    x0s: np.ndarray,
    vs: np.ndarray,
    w_out: np.ndarray,
    obj_out: np.ndarray,
) -> None:
    """Fit many independent synthetic controls in one compiled call.

    jit-compiled (``numba.njit``, ``nogil``, serial); element ``k`` is exactly
    ``simplex_weights(x1s[k], x0s[k], vs[k], w_out[k])``.  Inputs are trusted.

    Parameters
    ----------
    x1s : ndarray of float64, shape (n, m)
        Treated vectors, C-contiguous.
    x0s : ndarray of float64, shape (n, m, J)
        Donor matrices, C-contiguous.
    vs : ndarray of float64, shape (n, m)
        Non-negative row weights.
    w_out : ndarray of float64, shape (n, J)
        Output: weights (NaN rows for failed fits).
    obj_out : ndarray of float64, shape (n,)
        Output: minimised objectives (NaN for failed fits).
    """
    for k in range(x1s.shape[0]):
        obj_out[k] = simplex_weights(x1s[k], x0s[k], vs[k], w_out[k])
