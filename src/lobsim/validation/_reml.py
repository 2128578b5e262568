r"""REML objectives of the calibration, their analytic gradients and a Newton polish.

:mod:`lobsim.validation.calibrate` fits the outcome process in two REML steps (its
module docstring has the model). This module holds the two negative log
likelihoods, each with its exact gradient, and the search machinery both
use, so that the estimates are the optimum of the likelihood to a stated
precision rather than wherever a finite-difference search happened to stop
(whose last digits depend on the CPU's floating-point path).

For a Gaussian vector with covariance ``V(theta)`` the REML negative log
likelihood and its gradient are, up to a constant::

    nll = (log det V + m^T V^-1 m) / 2
    d nll / d theta = (tr(V^-1 dV) - a^T dV a) / 2,   a = V^-1 m

Parameters are per period: AR(1) persistences ``phi`` and variances
``var``. The searches run in units where both have the same scale: ``phi``
itself and ``var / var0``, ``var0`` the variance of a one-period change of
the data (:func:`search_units`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

#: A negative log likelihood with its gradient: parameters -> (value, gradient).
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

#: The polish stops when the Newton step, the estimated distance to the exact
#: optimum, is at most this in every searched coordinate (phi, var / var0).
STEP_TOL = 1e-10
_MAX_NEWTON = 30
# Relative step of the forward differences of the gradient that give the
# Hessian: the gradient is exact to about 1e-11 here, so the Hessian is good to
# 1e-5 relative, far more than a Newton iteration needs to converge.
_HESSIAN_STEP = 1e-6


def ar1_gamma(phi: float, size: int) -> np.ndarray:
    """AR(1) covariance per unit innovation variance, up to a constant.

    ``(phi^|i-j| - 1) / (1 - phi^2) + size``: the stationary covariance
    ``phi^|i-j| / (1 - phi^2)`` less a constant, which is continuous at the
    random walk (``-|i-j| / 2 + size``) and positive definite. Every use here
    has a fixed level, which absorbs any constant, so the constant is free.
    """
    k = np.abs(np.subtract.outer(np.arange(size), np.arange(size))).astype(float)
    if phi == 1.0:
        g = -0.5 * k
    elif phi == 0.0:
        g = np.where(k == 0.0, 0.0, -1.0)
    else:
        log_phi = math.log(phi)
        g = np.expm1(k * log_phi) / -math.expm1(2.0 * log_phi)
    return g + float(size)


def ar1_gamma_dphi(phi: float, size: int) -> np.ndarray:
    """Derivative of :func:`ar1_gamma` with respect to ``phi``, on [0, 1].

    ``(phi^k - 1) / (1 - phi^2) = -S_k / (1 + phi)`` with
    ``S_k = sum_{j<k} phi^j``, whose derivative
    ``-(S_k' (1 + phi) - S_k) / (1 + phi)^2`` is a sum of positive terms: no
    cancellation near the random walk, one-sided at ``phi = 1`` and ``0``.
    """
    j = np.arange(size)
    powers = float(phi) ** j.astype(float)  # phi^j; 0^0 = 1
    d_powers = np.concatenate([[0.0], j[1:] * powers[:-1]])  # j phi^(j-1)

    def below(v: np.ndarray) -> np.ndarray:  # sum over j < k, for k = 0 .. size-1
        return np.concatenate([[0.0], np.cumsum(v)[:-1]])

    s, ds = below(powers), below(d_powers)
    d = -(ds * (1.0 + phi) - s) / (1.0 + phi) ** 2
    return d[np.abs(np.subtract.outer(j, j))]


def complement(x: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the complement of the columns of ``x``."""
    q, _ = np.linalg.qr(x, mode="complete")
    return np.ascontiguousarray(q[:, x.shape[1]:])


def level_and_trend(t: int) -> np.ndarray:
    """The (T, 2) design of a level and a trend, ``tau = 0`` at the last period."""
    return np.column_stack([np.ones(t), np.arange(t, dtype=float) - (t - 1)])


# --------------------------------------------------------------------------
# Step 1: within regions
# --------------------------------------------------------------------------
def within_objective(dev: np.ndarray, reps: int) -> Objective:
    """REML of within-region deviations at ``(phi_U, var_U, var_e)``.

    ``reps`` independent series of covariance ``K = var_U Gamma(phi_U) +
    var_e I`` (projected off each series' level and trend) whose summed outer
    product is ``S = Q^T (sum_a D[a] D[a]^T) Q``: ``nll = (reps log det K +
    tr(K^-1 S)) / 2``, gradient ``tr(Z dK) / 2`` with ``Z = reps K^-1 - K^-1 S
    K^-1``.
    """
    t = dev.shape[1]
    q2 = complement(level_and_trend(t))
    scatter = q2.T @ (dev.T @ dev) @ q2
    eye = np.eye(q2.shape[1])

    def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
        phi, var_u, var_e = (float(v) for v in p)
        gam = q2.T @ ar1_gamma(phi, t) @ q2
        lam, vec = np.linalg.eigh(var_u * gam + var_e * eye)
        if lam[0] <= 0.0:
            return math.inf, np.zeros(3)
        k_inv = (vec / lam) @ vec.T
        z = reps * k_inv - k_inv @ scatter @ k_inv
        value = 0.5 * (reps * float(np.sum(np.log(lam))) + float(np.sum(k_inv * scatter)))
        d_gam = q2.T @ ar1_gamma_dphi(phi, t) @ q2
        grad = 0.5 * np.array([var_u * np.sum(z * d_gam), np.sum(z * gam), np.trace(z)])
        return float(value), grad

    return nll


# --------------------------------------------------------------------------
# Step 2: between regions
# --------------------------------------------------------------------------
def between_objective(means: np.ndarray, sizes: np.ndarray, k_w: np.ndarray) -> Objective:
    """REML of the regional means at ``(phi_F, var_F, phi_G, var_G)``.

    The projected covariance of the stacked means is ``W + U A_F U^T`` with
    ``W`` block diagonal (``A_G + B / n_r`` per region, ``B`` the projected
    within-region covariance ``k_w``) and ``U = 1 (x) I``. ``A_G`` and ``B``
    are diagonalised together (``B = L L^T``, ``L^-1 A_G L^-T = V diag(g)
    V^T``, ``P = V^T L^-1``), so every ``W_r`` is the diagonal ``D_r`` in one
    basis, and the Woodbury identity leaves one small solve: with ``C = A
    (I + diag(sum_r D_r^-1) A)^-1`` (``A`` is ``A_F`` in that basis) the
    ``(r, s)`` block of ``V^-1`` is ``delta_rs D_r^-1 - D_r^-1 C D_s^-1``. The
    gradient needs its sum over all blocks (for F, loaded by every region)
    and over the diagonal blocks (for G).
    """
    n_r, t = means.shape
    q2 = complement(level_and_trend(t))
    m = means @ q2  # (R, T - 2)
    chol_inv = np.linalg.inv(np.linalg.cholesky(q2.T @ k_w @ q2))
    logdet_b = -2.0 * float(np.sum(np.log(np.diag(chol_inv))))
    eye = np.eye(m.shape[1])
    inv_n = (1.0 / sizes)[:, None]

    # The searches move the persistences less often than the variances (a
    # profile grid holds them, a Hessian column moves one): keep what they fix.
    @functools.lru_cache(maxsize=64)
    def projected(phi: float) -> tuple[np.ndarray, np.ndarray]:
        return q2.T @ ar1_gamma(phi, t) @ q2, q2.T @ ar1_gamma_dphi(phi, t) @ q2

    @functools.lru_cache(maxsize=64)
    def basis(phi_g: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        gam, d_gam = projected(phi_g)
        g, vec = np.linalg.eigh(chol_inv @ gam @ chol_inv.T)
        to = vec.T @ chol_inv  # P
        return np.maximum(g, 0.0), to, m @ to.T, to @ d_gam @ to.T

    @functools.lru_cache(maxsize=64)
    def national(phi_f: float, phi_g: float) -> tuple[np.ndarray, np.ndarray]:
        gam, d_gam = projected(phi_f)
        to = basis(phi_g)[1]
        return to @ gam @ to.T, to @ d_gam @ to.T

    def nll(p: np.ndarray) -> tuple[float, np.ndarray]:
        phi_f, var_f, phi_g, var_g = (float(v) for v in p)
        g, _, mt, y_g = basis(phi_g)
        x_f, y_f = national(phi_f, phi_g)
        d_inv = 1.0 / (var_g * g[None, :] + inv_n)  # (R, T - 2): W_r^-1 in the joint basis
        ds = d_inv.sum(axis=0)
        h = (mt * d_inv).sum(axis=0)
        core = eye + ds[:, None] * (var_f * x_f)
        sign, logdet_core = np.linalg.slogdet(core)
        if sign <= 0:
            return math.inf, np.zeros(4)
        c = var_f * x_f @ np.linalg.inv(core)
        c = 0.5 * (c + c.T)
        ch = c @ h
        value = 0.5 * (n_r * logdet_b - float(np.sum(np.log(d_inv))) + logdet_core
                       + float(np.sum(mt * mt * d_inv)) - float(h @ ch))
        alpha = d_inv * (mt - ch[None, :])  # blocks of V^-1 m
        a = alpha.sum(axis=0)
        all_blocks = np.diag(ds) - ds[:, None] * c * ds[None, :]
        diagonal_blocks = np.diag(ds) - c * (d_inv.T @ d_inv)
        grad = 0.5 * np.array([
            var_f * (np.sum(all_blocks * y_f) - a @ y_f @ a),
            np.sum(all_blocks * x_f) - a @ x_f @ a,
            var_g * (np.sum(diagonal_blocks * y_g) - np.sum((alpha.T @ alpha) * y_g)),
            np.diag(diagonal_blocks) @ g - np.sum(alpha * alpha * g[None, :]),
        ])
        return float(value), grad

    return nll


# --------------------------------------------------------------------------
# Searching
# --------------------------------------------------------------------------
def within_unit(dev: np.ndarray, reps: int) -> float:
    """Step 1's variance unit: about the variance of a one-period change."""
    t = dev.shape[1]
    q2 = complement(level_and_trend(t))
    scatter = q2.T @ (dev.T @ dev) @ q2
    return float(np.trace(scatter)) / (reps * q2.shape[1] * t)


def between_unit(means: np.ndarray) -> float:
    """Step 2's variance unit: about the variance of a one-period change."""
    t = means.shape[1]
    m = means @ complement(level_and_trend(t))
    return float((m * m).mean()) / t


def search_units(nll: Objective, is_var: np.ndarray, var0: float) -> Objective:
    """``nll`` in search coordinates: ``phi`` as it is, a variance as ``var / var0``.

    Variances, not sds: at ``sd = 0`` the gradient along an sd vanishes
    whatever the data (``d/d sd = 2 sd d/d var``), a stationary point a search
    can stop at; along the variance it points back in when the component is
    there.
    """

    def in_units(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = nll(np.where(is_var, x * var0, x))
        return value, np.where(is_var, grad * var0, grad)

    return in_units


def from_search_units(x: np.ndarray, is_var: np.ndarray, var0: float) -> np.ndarray:
    """Parameters (phi, var) from search coordinates."""
    return np.where(is_var, x * var0, x)


def newton_polish(fun: Objective, x: np.ndarray, lower: np.ndarray, upper: np.ndarray
                  ) -> tuple[np.ndarray, int]:
    """Projected Newton iterations from near an optimum to the optimum itself.

    Coordinates at a bound whose gradient points outward are held there; on
    the others a Newton step with the Hessian from forward differences of the
    exact gradient (inward at a bound). Directions of no curvature (a
    persistence whose variance is 0) are left alone. A step that raises the
    objective by more than rounding is halved.

    Returns
    -------
    x : ndarray
        The polished point: the last Newton step, the estimated distance to
        the exact optimum, was at most :data:`STEP_TOL` in every coordinate.
    steps : int
        Newton steps taken; ``-1`` if that precision was not reached in
        ``_MAX_NEWTON`` steps (x is then the last accepted point).
    """
    x = np.clip(np.asarray(x, dtype=float), lower, upper)
    f, g = fun(x)
    for steps in range(_MAX_NEWTON):
        free = np.flatnonzero(~(((x <= lower) & (g > 0)) | ((x >= upper) & (g < 0))))
        if free.size == 0:
            return x, steps
        hess = np.empty((free.size, free.size))
        for col, i in enumerate(free):
            e = _HESSIAN_STEP * max(1.0, abs(x[i]))
            e = -e if x[i] + e > upper[i] else e
            xe = x.copy()
            xe[i] += e
            hess[:, col] = (fun(xe)[1][free] - g[free]) / e
        lam, vec = np.linalg.eigh(0.5 * (hess + hess.T))
        keep = lam > 1e-12 * max(float(lam.max()), 0.0)
        step = np.zeros_like(x)
        step[free] = -(vec[:, keep] / lam[keep]) @ (vec[:, keep].T @ g[free])
        size = float(np.max(np.abs(step)))
        t = 1.0
        while True:
            x_new = np.clip(x + t * step, lower, upper)
            f_new, g_new = fun(x_new)
            # near the optimum f changes by less than its rounding: accept
            if f_new <= f + 1e-12 * (1.0 + abs(f)) or t < 1e-6:
                break
            t *= 0.5
        if t < 1e-6:
            return x, -1
        x, f, g = x_new, f_new, g_new
        if size <= STEP_TOL:
            return x, steps + 1
    return x, -1


# --------------------------------------------------------------------------
# Standard errors
# --------------------------------------------------------------------------
#: A search coordinate within this of a bound (phi per period at 0 or 1, a
#: variance over its unit at 0) is an estimate on the boundary of its
#: parameter space: the likelihood's curvature there says nothing about its
#: sampling error, which is not normal (about half the mass sits on the bound).
BOUNDARY_TOL = 1e-6
# Relative step of the central differences of the exact gradient that give the
# observed information: truncation O(h^2) about 1e-8 relative, rounding of a
# gradient good to about 1e-11 relative over 2h about 1e-6; either far below
# the sampling error it measures.
_INFORMATION_STEP = 1e-4


def observed_information(fun: Objective, x: np.ndarray, free: np.ndarray,
                         lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Hessian of ``fun`` at ``x`` over the ``free`` coordinates, by central differences.

    Each column is the central difference of the exact gradient along one
    free coordinate, the step shrunk to half the distance to a bound so that
    both points lie in the parameter space; the result is symmetrised. At a
    REML optimum this is the observed information, whose inverse estimates
    the sampling covariance of the free coordinates (the others held at
    their values).
    """
    x = np.asarray(x, dtype=float)
    idx = np.flatnonzero(free)
    hess = np.empty((idx.size, idx.size))
    for col, i in enumerate(idx):
        room = min(x[i] - lower[i], upper[i] - x[i])
        e = min(_INFORMATION_STEP * max(1.0, abs(x[i])), 0.5 * room)
        up, down = x.copy(), x.copy()
        up[i] += e
        down[i] -= e
        hess[:, col] = (fun(up)[1][idx] - fun(down)[1][idx]) / (2.0 * e)
    return 0.5 * (hess + hess.T)
