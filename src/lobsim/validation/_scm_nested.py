"""The nested V/W problem of classic synthetic control, and its searches.

For predictor weights ``v`` the inner problem (the donor weights ``W*(v)`` on
the simplex) is solved exactly by :func:`lobsim.kernels.synth.simplex_weights`;
:class:`NestedProblem` evaluates the outer objective, the outcome MSPE
``L(v)``, and its gradient where the support of ``W`` is locally fixed.
:func:`reach_lower_bound` asks a linear program for a ``v`` attaining the
outcome-optimal ``W`` (a certified global optimum), :func:`search` runs the
local searches from named and random starts, and :func:`closest_to_equal`
picks the canonical ``v`` among those giving the same ``W``.
:func:`lobsim.validation.scm.fit_predictor_weights` combines them; its module
docstring gives the method and references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linprog, minimize

from lobsim.arraytypes import Float64Array
from lobsim.kernels.synth import simplex_weights

#: Named starts of the local searches: equal weights, and Synth's regression-based one.
START_NAMES = ("equal", "regression")
_THETA_BOUND = 30.0  # |theta| cap: v ratios up to e^60 are plenty
#: Relative slack when comparing MSPEs (the certificate, the canonical v).
REL_TOL = 1e-9


def _softmax(theta: Float64Array) -> Float64Array:
    e = np.exp(theta - theta.max())
    return np.asarray(e / e.sum())


class NestedProblem:
    """Outer objective on normalised predictors; losses are divided by ``norm``."""

    def __init__(
        self, x1s: Float64Array, x0s: Float64Array, z1: Float64Array, z0: Float64Array
    ) -> None:
        self.x1s, self.x0s, self.z1, self.z0 = x1s, x0s, z1, z0
        self.k, self.n_donors = x0s.shape
        self.t = z0.shape[0]
        # Typical single-donor MSPE: puts the optimisers' objective near O(1).
        self.norm = float(np.mean((z0 - z1[:, None]) ** 2)) or 1.0
        self._w = np.empty(self.n_donors)

    def inner(self, v: Float64Array) -> tuple[Float64Array, float]:
        """Exact inner weights and their predictor loss."""
        w = np.empty(self.n_donors)
        obj = simplex_weights(self.x1s, self.x0s, np.ascontiguousarray(v), w)
        if math.isnan(obj):
            raise RuntimeError("synthetic-control inner solver failed (active-set NNLS)")
        return w, float(obj)

    def mspe(self, w: Float64Array) -> float:
        res = self.z1 - self.z0 @ w
        return float(res @ res) / self.t

    def value(self, theta: Float64Array) -> float:
        """Normalised ``L(softmax(theta))``, for Nelder-Mead."""
        w = self._w
        if math.isnan(simplex_weights(self.x1s, self.x0s, _softmax(theta), w)):
            return math.inf
        return self.mspe(w) / self.norm

    def value_grad(self, theta: Float64Array) -> tuple[float, Float64Array]:
        """Normalised ``L`` and its gradient in ``theta`` (for a locally fixed support)."""
        v = _softmax(theta)
        w = self._w
        if math.isnan(simplex_weights(self.x1s, self.x0s, v, w)):
            return math.inf, np.zeros(self.k)
        res = self.z1 - self.z0 @ w
        support = np.flatnonzero(w > 0.0)
        a = self.x0s[:, support]
        s = support.size
        kkt = np.zeros((s + 1, s + 1))
        kkt[:s, :s] = a.T @ (v[:, None] * a)
        kkt[:s, s] = 1.0
        kkt[s, :s] = 1.0
        # KKT matrix M = [[A'VA, 1], [1', 0]] is symmetric, so the first block of
        # M^-1 [grad_S f; 0] is P grad_S f, and dL/dv_i = r_i a_i' P grad_S f.
        grad_f = np.append(-(2.0 / self.t) * (self.z0[:, support].T @ res), 0.0)
        try:
            y = np.linalg.solve(kkt, grad_f)[:s]
        except np.linalg.LinAlgError:
            y = np.linalg.lstsq(kkt, grad_f, rcond=None)[0][:s]
        g = (self.x1s - a @ w[support]) * (a @ y)  # dL/dv
        grad = v * (g - v @ g)  # chain rule through the softmax
        return float(res @ res) / self.t / self.norm, grad / self.norm

    def kkt_rows(self, w: Float64Array) -> tuple[Float64Array, Float64Array]:
        """Linear conditions on ``v`` under which ``w`` solves the inner problem.

        With ``C = X0 - X1 1'`` and ``r = -C w``, the simplex KKT conditions of
        ``min |sqrt(V) C w|^2`` at ``w`` read ``h_j(v) = c(v)`` on the support
        and ``h_j(v) <= c(v)`` off it, where ``h_j(v) = sum_i v_i C_ij r_i`` and
        ``c(v) = -sum_i v_i r_i^2``: linear in ``v``.  Returns
        ``(eq, ub)`` with ``eq @ v = 0`` and ``ub @ v <= 0``, rows scaled to unit
        max-norm.
        """
        c = self.x0s - self.x1s[:, None]
        r = -(c @ w)
        h = (c * r[:, None]).T  # (J, k)
        support = np.flatnonzero(w > 0.0)
        off = np.flatnonzero(w <= 0.0)
        # Sum of w_j (h_j - c) is identically 0, so equal h_j on the support suffice.
        eq = h[support[1:]] - h[support[0]]
        ub = h[off] + r**2
        return _unit_rows(eq), _unit_rows(ub)


def _unit_rows(a: Float64Array) -> Float64Array:
    if a.size == 0:
        return a
    m = np.abs(a).max(axis=1, keepdims=True)
    return np.asarray(a / np.where(m > 0.0, m, 1.0))


def reach_lower_bound(nested: NestedProblem, w: Float64Array) -> Float64Array | None:
    """A ``v`` whose inner solution is ``w`` with the largest KKT margin, or None.

    Linear program in ``(v, t)``: maximise ``t`` subject to ``eq v = 0``,
    ``ub v + t <= 0``, ``v >= 0``, ``sum(v) = 1``.  Requires a positive margin.
    """
    eq, ub = nested.kkt_rows(w)
    k = nested.k
    a_eq = np.vstack([np.hstack([eq, np.zeros((eq.shape[0], 1))]), np.append(np.ones(k), 0.0)])
    b_eq = np.append(np.zeros(eq.shape[0]), 1.0)
    a_ub = np.hstack([ub, np.ones((ub.shape[0], 1))]) if ub.size else None
    b_ub = np.zeros(ub.shape[0]) if ub.size else None
    cost = np.append(np.zeros(k), -1.0)
    lp = linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=[(0.0, None)] * k + [(None, 1.0)],
        method="highs",
    )
    if lp.status != 0 or not lp.x[-1] > 1e-9:
        return None
    v = np.clip(lp.x[:k], 0.0, None)
    return np.asarray(v / v.sum())


def closest_to_equal(nested: NestedProblem, v: Float64Array, w: Float64Array) -> Float64Array:
    """The ``v`` closest to equal weights among those with the same inner solution ``w``."""
    eq, ub = nested.kkt_rows(w)
    k = nested.k
    target = np.full(k, 1.0 / k)
    cons: list[dict[str, Any]] = [
        {"type": "eq", "fun": lambda x: x.sum() - 1.0, "jac": lambda x: np.ones((1, k))}
    ]
    if eq.size:
        cons.append({"type": "eq", "fun": lambda x: eq @ x, "jac": lambda x: eq})
    if ub.size:
        cons.append({"type": "ineq", "fun": lambda x: -(ub @ x), "jac": lambda x: -ub})
    res = minimize(
        lambda x: float((x - target) @ (x - target)),
        v,
        jac=lambda x: 2.0 * (x - target),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * k,
        constraints=cons,
        options={"maxiter": 500, "ftol": 1e-14},
    )
    # SLSQP meets the equalities only to ~1e-13; project back onto them exactly
    # (least-squares correction), since W reacts to their residual.
    e = np.vstack([eq, np.ones((1, k))])
    rhs = np.append(np.zeros(eq.shape[0]), 1.0)
    x = np.where(res.x > 1e-12, res.x, 0.0)
    free = x > 0.0  # zeros stay zeros, so the correction cannot make them negative
    x[free] -= np.linalg.lstsq(e[:, free], e @ x - rhs, rcond=None)[0]
    x = np.clip(x, 0.0, None)
    return np.asarray(x / x.sum()) if x.sum() > 0.0 else v


def _regression_start(
    x1s: Float64Array, x0s: Float64Array, z1: Float64Array, z0: Float64Array
) -> Float64Array | None:
    """Synth's second start: ``diag(B B')`` for the OLS of outcomes on predictors."""
    xall = np.column_stack([np.ones(x0s.shape[1] + 1), np.column_stack([x1s, x0s]).T])
    zall = np.column_stack([z1, z0]).T
    if xall.shape[0] <= xall.shape[1] or np.linalg.matrix_rank(xall) < xall.shape[1]:
        return None
    beta = np.linalg.lstsq(xall, zall, rcond=None)[0][1:]
    sv = np.sum(beta**2, axis=1)
    return np.asarray(sv / sv.sum()) if sv.sum() > 0.0 else None


def _theta(v: Float64Array) -> Float64Array:
    return np.asarray(np.clip(np.log(np.maximum(v, 1e-300)), -_THETA_BOUND, 0.0))


def _lbfgs(nested: NestedProblem, theta: Float64Array) -> Float64Array:
    res = minimize(
        nested.value_grad,
        theta,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_THETA_BOUND, _THETA_BOUND)] * nested.k,
        options={"maxiter": 1000},
    )
    return np.asarray(res.x)


def _nelder_mead_lbfgs(nested: NestedProblem, theta: Float64Array) -> Float64Array:
    res = minimize(
        nested.value,
        theta,
        method="Nelder-Mead",
        options={"maxfev": 400 * nested.k + 1000, "xatol": 1e-7, "fatol": 1e-13, "adaptive": True},
    )
    return _lbfgs(nested, np.asarray(res.x))


def search(
    nested: NestedProblem, starts: Sequence[str], n_random: int, rng: np.random.Generator
) -> tuple[Float64Array, list[tuple[str, float]]]:
    """Multi-start local search; returns the best ``v`` and every local optimum."""
    k = nested.k
    runs: list[tuple[str, Float64Array]] = []
    for name in starts:
        if name == "equal":
            v0: Float64Array | None = np.full(k, 1.0 / k)
        else:
            v0 = _regression_start(nested.x1s, nested.x0s, nested.z1, nested.z0)
        if v0 is not None:
            runs.append((name, _nelder_mead_lbfgs(nested, _theta(v0))))
    for i in range(n_random):
        runs.append((f"random {i}", _lbfgs(nested, _theta(rng.dirichlet(np.ones(k))))))
    values = [nested.value(th) for _, th in runs]
    best = runs[int(np.argmin(values))][1]
    polished = _nelder_mead_lbfgs(nested, best)
    if nested.value(polished) < min(values):
        runs.append(("polish", polished))
        values.append(nested.value(polished))
        best = polished
    log = [(name, val * nested.norm) for (name, _), val in zip(runs, values, strict=True)]
    return _softmax(best), log


