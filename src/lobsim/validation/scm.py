r"""Classic synthetic control with predictors: nested V/W optimisation and placebos.

The estimator (Abadie and Gardeazabal 2003, AER 93(1); Abadie, Diamond and
Hainmueller 2010, JASA 105(490); the R package Synth, Abadie, Diamond and
Hainmueller 2011, J. Stat. Softw. 42(13)) matches a treated unit on ``k``
predictors (each an average of a variable over chosen years) and on its
pre-period outcome path:

* predictors ``X1`` (``k``), ``X0`` (``k x J``) are divided row-wise by their
  standard deviation over treated and donors, as Synth does;
* inner problem: for diagonal ``V = diag(v)``, ``v >= 0``, ``sum(v) = 1``,
  ``W*(V) = argmin_W (X1 - X0 W)' V (X1 - X0 W)`` over the simplex, solved
  exactly by :func:`lobsim.kernels.synth.simplex_weights`;
* outer problem: ``v`` minimises the outcome MSPE over the fit period,
  ``L(v) = |Z1 - Z0 W*(V)|^2 / T``.

``L`` is non-convex and piecewise smooth, and published software often stops
in a local optimum.  :func:`fit_predictor_weights` therefore

1. computes the lower bound ``L* = min_W |Z1 - Z0 W|^2 / T`` over the simplex
   (no ``v`` can do better) and solves a linear program for a ``v`` whose inner
   solution is that outcome-optimal ``W``: the inner KKT conditions are linear
   in ``v`` for fixed ``W``.  If one exists the bound is attained and the
   result is a certified global optimum;
2. otherwise runs local searches in ``theta`` with ``v = softmax(theta)``:
   Nelder-Mead (derivative-free) followed by L-BFGS from the named starts
   (equal weights, and Synth's regression-based start), L-BFGS from random
   Dirichlet starts, and a final Nelder-Mead + L-BFGS polish of the best.
   L-BFGS uses the exact gradient of ``L`` where the support ``S`` of ``W``
   is locally constant: from the inner KKT system,
   ``dL/dv_i = r_i a_i' P grad_S f``, with ``a_i`` row ``i`` of ``X0[:, S]``,
   ``r = X1 - X0 W`` and ``P`` the leading block of
   ``[[X0_S' V X0_S, 1], [1', 0]]^{-1}``;
3. picks a canonical ``v``.  ``L`` depends on ``v`` only through ``W``, and
   when ``W`` has fewer donors than there are predictors, every ``v`` in a
   polytope (the inner KKT conditions again) gives the same ``W``: the
   optimal ``v`` is not unique (Kloessner, Kaul, Pfeifer and Schieler 2018,
   Swiss J. Econ. Stat. 154:11).  Among those ``v`` the one closest to equal
   weights (Euclidean) is returned.  This matters when ``v`` is reused on
   other predictors, as in the cross-validation of Abadie, Diamond and
   Hainmueller (2015, AJPS 59(2)); see :func:`fit_cross_validated`.

:func:`placebo_in_space` refits with every donor in turn as the treated unit
and ranks the ratios of post- to pre-period RMSPE (Abadie et al. 2010, 2015).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import linprog, minimize

from lobsim.arraytypes import Float64Array
from lobsim.errors import ConfigError
from lobsim.kernels.synth import simplex_weights

__all__ = [
    "ClassicSyntheticControl",
    "Panel",
    "PlaceboInSpace",
    "fit_cross_validated",
    "fit_predictor_weights",
    "placebo_in_space",
]

START_NAMES = ("equal", "regression")
_THETA_BOUND = 30.0  # |theta| cap: v ratios up to e^60 are plenty
_REL_TOL = 1e-9  # relative slack when comparing MSPEs (certificate, canonical v)

ProblemArrays = tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]


# --------------------------------------------------------------------------
# Panel data
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Panel:
    """A balanced unit x year panel of numeric variables (NaN where missing).

    Attributes
    ----------
    units : tuple of str
        Unit names, in order of first appearance in the source.
    years : ndarray of int64, shape (n_years,)
        Sorted years.
    variables : dict of str to ndarray of float64, shape (n_units, n_years)
        The variables, NaN where missing.
    """

    units: tuple[str, ...]
    years: npt.NDArray[np.int64]
    variables: dict[str, Float64Array]

    @classmethod
    def from_csv(cls, path: str | Path, unit: str, time: str) -> Panel:
        """Read a long-format CSV (one row per unit and year).

        Parameters
        ----------
        path : str or Path
            The file.
        unit, time : str
            Names of the unit and year columns.  Every other column whose
            non-empty entries all parse as numbers becomes a variable; empty
            and ``NA`` entries are missing.

        Returns
        -------
        Panel

        Raises
        ------
        ConfigError
            (a ValueError) naming the file and row: a missing column, a row
            of the wrong length, a year that is not whole, a unit with two
            rows for one year.
        """
        source = str(path)
        try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the header
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                header = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"cannot read the file: {exc}", source=source) from None
        for col in (unit, time):
            if col not in header:
                raise ConfigError(f"has no column {col!r} (columns: {', '.join(header)})",
                                  source=source, path="row 1")
        if not rows:
            raise ConfigError("has no data rows", source=source)
        seen: dict[tuple[str, int], str] = {}
        row_years = []
        for i, row in enumerate(rows):
            where = f"row {i + 2}"
            if None in row or None in row.values():  # csv.DictReader's rest key and value
                raise ConfigError(f"has a different number of fields than the header's "
                                  f"{len(header)}", source=source, path=where)
            try:
                year = float(row[time])
            except ValueError:
                year = math.nan
            if not year.is_integer():
                raise ConfigError(f"{time} must be a whole year, got {row[time]!r}",
                                  source=source, path=where)
            key = (row[unit], int(year))
            if key in seen:
                raise ConfigError(f"{unit} {key[0]!r} has a second row for {key[1]} (first at "
                                  f"{seen[key]})", source=source, path=where)
            seen[key] = where
            row_years.append(int(year))
        units = tuple(dict.fromkeys(r[unit] for r in rows))
        years = np.array(sorted(set(row_years)), dtype=np.int64)
        uidx = {u: i for i, u in enumerate(units)}
        yidx = {int(y): t for t, y in enumerate(years)}
        variables: dict[str, Float64Array] = {}
        for col in rows[0]:
            if col in (unit, time):
                continue
            arr = np.full((len(units), len(years)), np.nan)
            try:
                for r, year in zip(rows, row_years, strict=True):
                    s = r[col].strip()
                    if s not in ("", "NA"):
                        arr[uidx[r[unit]], yidx[year]] = float(s)
            except ValueError:
                continue  # a text column
            variables[col] = arr
        return cls(units=units, years=years, variables=variables)

    def index(self, unit: str) -> int:
        """Position of ``unit`` in :attr:`units`."""
        try:
            return self.units.index(unit)
        except ValueError:
            raise KeyError(f"unknown unit {unit!r}") from None

    def _columns(self, years: Sequence[int]) -> npt.NDArray[np.intp]:
        ys = np.asarray(list(years), dtype=np.int64)
        pos = np.searchsorted(self.years, ys)
        bad = (pos >= len(self.years)) | (self.years[np.minimum(pos, len(self.years) - 1)] != ys)
        if ys.size == 0 or np.any(bad):
            raise KeyError(f"years not in the panel: {ys[bad].tolist() or 'none given'}")
        return pos

    def _variable(self, variable: str) -> Float64Array:
        try:
            return self.variables[variable]
        except KeyError:
            raise KeyError(f"unknown variable {variable!r}") from None

    def values(self, variable: str, years: Sequence[int]) -> Float64Array:
        """Values of ``variable`` in ``years``, shape ``(len(years), n_units)``."""
        return np.ascontiguousarray(self._variable(variable)[:, self._columns(years)].T)

    def mean(self, variable: str, years: Sequence[int]) -> Float64Array:
        """Mean of ``variable`` over ``years`` per unit, ignoring missing years.

        As Synth's ``dataprep`` (``na.rm = TRUE``).  Raises ValueError if a
        unit has no value in any of the years.
        """
        block = self._variable(variable)[:, self._columns(years)]
        n = np.sum(~np.isnan(block), axis=1)
        if np.any(n == 0):
            missing = [self.units[i] for i in np.flatnonzero(n == 0)]
            raise ValueError(f"{variable} has no value in {list(years)} for {missing}")
        return np.asarray(np.nansum(block, axis=1) / n, dtype=np.float64)

    def predictors(self, specs: Sequence[tuple[str, Sequence[int]]]) -> Float64Array:
        """Predictor matrix, shape ``(len(specs), n_units)``: row ``i`` is the mean of
        ``specs[i][0]`` over the years ``specs[i][1]``."""
        return np.array([self.mean(var, yrs) for var, yrs in specs])

    def design(
        self,
        treated: str,
        donors: Sequence[str],
        specs: Sequence[tuple[str, Sequence[int]]],
        outcome: str,
        fit_years: Sequence[int],
    ) -> tuple[Float64Array, Float64Array, Float64Array, Float64Array]:
        """``(X1, X0, Z1, Z0)`` for :func:`fit_predictor_weights`.

        Parameters
        ----------
        treated : str
            The treated unit.
        donors : sequence of str
            The donor pool, in the column order of ``X0`` and ``Z0``.
        specs : sequence of (variable, years)
            Predictors: each the mean of a variable over some years.
        outcome : str
            The outcome variable.
        fit_years : sequence of int
            Years whose outcomes the outer problem fits.

        Returns
        -------
        tuple of ndarray
            ``X1 (k,)``, ``X0 (k, J)``, ``Z1 (T,)``, ``Z0 (T, J)``.
        """
        t = self.index(treated)
        d = [self.index(u) for u in donors]
        x = self.predictors(specs)
        z = self.values(outcome, fit_years)
        return x[:, t].copy(), x[:, d].copy(), z[:, t].copy(), z[:, d].copy()


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


# eq=False: a generated __eq__ would compare arrays elementwise.
@dataclass(frozen=True, eq=False)
class ClassicSyntheticControl:
    """Result of :func:`fit_predictor_weights`.

    Attributes
    ----------
    weights : ndarray of float64, shape (J,)
        Donor weights ``W``, non-negative, summing to one.
    v : ndarray of float64, shape (k,)
        Predictor weights (diagonal of ``V``) on the normalised predictors,
        summing to one.
    mspe : float
        Outcome MSPE over the fit period, ``|Z1 - Z0 W|^2 / T`` (Synth's
        ``loss.v``).
    rmspe : float
        ``sqrt(mspe)``: the pre-period (fit period) RMSPE.
    predictor_loss : float
        ``(X1 - X0 W)' V (X1 - X0 W)`` on the normalised predictors (Synth's
        ``loss.w``).
    mspe_lower_bound : float
        ``min_W |Z1 - Z0 W|^2 / T`` over the simplex: no ``v`` does better.
    certified : bool
        Whether ``mspe`` attains ``mspe_lower_bound`` (to a relative 1e-9), so
        the nested optimum is proven global.  False when ``v`` was given.
    x_treated, x_synthetic, x_donor_mean : ndarray of float64, shape (k,)
        Predictor balance, unnormalised: treated unit, synthetic control
        ``X0 W``, and the unweighted donor mean.
    scale : ndarray of float64, shape (k,)
        The divisors used to normalise the predictors.
    predictor_names, donor_names : tuple of str
        Labels.
    local_optima : tuple of (str, float)
        Each local search run (start label and the MSPE it reached), in order.
    """

    weights: Float64Array
    v: Float64Array
    mspe: float
    rmspe: float
    predictor_loss: float
    mspe_lower_bound: float
    certified: bool
    x_treated: Float64Array
    x_synthetic: Float64Array
    x_donor_mean: Float64Array
    scale: Float64Array
    predictor_names: tuple[str, ...]
    donor_names: tuple[str, ...]
    local_optima: tuple[tuple[str, float], ...]

    def weights_by_donor(self, threshold: float = 0.0) -> dict[str, float]:
        """Donor weights above ``threshold``, largest first."""
        order = np.argsort(-self.weights, kind="stable")
        return {
            self.donor_names[j]: float(self.weights[j])
            for j in order
            if self.weights[j] > threshold
        }

    def synthetic(self, y0: npt.ArrayLike) -> Float64Array:
        """The synthetic control's path ``Y0 W`` for donor outcomes ``y0`` (T', J)."""
        return np.asarray(np.asarray(y0, dtype=np.float64) @ self.weights)

    def balance_table(self) -> str:
        """Predictor balance as text: v, treated, synthetic and donor mean per predictor."""
        width = max([9, *(len(n) for n in self.predictor_names)])
        lines = [
            f"{'predictor':<{width}}  {'v':>6}  {'treated':>12}  {'synthetic':>12}"
            f"  {'donor mean':>12}"
        ]
        for i, name in enumerate(self.predictor_names):
            lines.append(
                f"{name:<{width}}  {self.v[i]:6.3f}  {self.x_treated[i]:12.6g}"
                f"  {self.x_synthetic[i]:12.6g}  {self.x_donor_mean[i]:12.6g}"
            )
        return "\n".join(lines)


@dataclass(frozen=True, eq=False)
class PlaceboInSpace:
    """Result of :func:`placebo_in_space`.

    Attributes
    ----------
    unit_names : tuple of str
        All units; ``unit_names[treated]`` is the treated one.
    treated : int
        Index of the treated unit.
    pre_rmspe, post_rmspe : ndarray of float64, shape (n_units,)
        RMSPE of each unit's synthetic control before and after treatment.
    ratio : ndarray of float64, shape (n_units,)
        ``post_rmspe / pre_rmspe`` (inf if a pre-period fit is exact, NaN if
        both are zero; a NaN never counts as at least as large).
    rank : int
        Rank of the treated unit's ratio, 1 = largest; ties count against the
        treated unit (``rank = #{units with ratio >= treated's}``).
    p_value : float
        ``rank / n_units``: the share of units with a ratio at least as large.
    fits : tuple of ClassicSyntheticControl
        Each unit's fit (donor pool: every other unit except the treated one).
    """

    unit_names: tuple[str, ...]
    treated: int
    pre_rmspe: Float64Array
    post_rmspe: Float64Array
    ratio: Float64Array
    rank: int
    p_value: float
    fits: tuple[ClassicSyntheticControl, ...]


# --------------------------------------------------------------------------
# The nested problem
# --------------------------------------------------------------------------


def _softmax(theta: Float64Array) -> Float64Array:
    e = np.exp(theta - theta.max())
    return np.asarray(e / e.sum())


class _Nested:
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


def _reach(nested: _Nested, w: Float64Array) -> Float64Array | None:
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


def _closest_to_equal(nested: _Nested, v: Float64Array, w: Float64Array) -> Float64Array:
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


def _lbfgs(nested: _Nested, theta: Float64Array) -> Float64Array:
    res = minimize(
        nested.value_grad,
        theta,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_THETA_BOUND, _THETA_BOUND)] * nested.k,
        options={"maxiter": 1000},
    )
    return np.asarray(res.x)


def _nelder_mead_lbfgs(nested: _Nested, theta: Float64Array) -> Float64Array:
    res = minimize(
        nested.value,
        theta,
        method="Nelder-Mead",
        options={"maxfev": 400 * nested.k + 1000, "xatol": 1e-7, "fatol": 1e-13, "adaptive": True},
    )
    return _lbfgs(nested, np.asarray(res.x))


def _search(
    nested: _Nested, starts: Sequence[str], n_random: int, rng: np.random.Generator
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


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _as_float(name: str, a: npt.ArrayLike, ndim: int) -> Float64Array:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def fit_predictor_weights(
    x1: npt.ArrayLike,
    x0: npt.ArrayLike,
    z1: npt.ArrayLike,
    z0: npt.ArrayLike,
    *,
    v: npt.ArrayLike | None = None,
    starts: Sequence[str] = START_NAMES,
    n_random: int = 50,
    seed: int | np.random.Generator | None = 0,
    certify: bool = True,
    canonical_v: bool = True,
    predictor_names: Sequence[str] | None = None,
    donor_names: Sequence[str] | None = None,
) -> ClassicSyntheticControl:
    """Synthetic control with predictor weights ``V`` chosen by the nested optimisation.

    See the module docstring for the method.

    Parameters
    ----------
    x1 : array_like, shape (k,)
        Treated unit's predictors.
    x0 : array_like, shape (k, J)
        Donors' predictors, one column per donor.
    z1 : array_like, shape (T,)
        Treated unit's outcomes over the fit period.
    z0 : array_like, shape (T, J)
        Donors' outcomes over the fit period.
    v : array_like, shape (k,), optional
        Fixed predictor weights (Synth's ``custom.v``), non-negative, not all
        zero; normalised to sum one.  Skips the outer search.
    starts : sequence of {"equal", "regression"}
        Named starts for Nelder-Mead + L-BFGS searches: equal weights, and
        Synth's regression-based start (skipped when the regression is not
        identified).
    n_random : int
        Number of random Dirichlet(1) starts for L-BFGS searches.
    seed : int, Generator or None
        Seed for the random starts.
    certify : bool
        Try the lower-bound certificate first; when it succeeds no search is run.
    canonical_v : bool
        Replace the optimal ``v`` by the one closest to equal weights that
        gives the same ``W``.
    predictor_names, donor_names : sequence of str, optional
        Labels (defaults ``x0``, ``x1``, ... and ``d0``, ``d1``, ...).

    Returns
    -------
    ClassicSyntheticControl

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite values, a bad ``v`` or bad options.
    RuntimeError
        If the inner solver fails (a guard, never observed).
    """
    x1a = _as_float("x1", x1, 1)
    x0a = _as_float("x0", x0, 2)
    z1a = _as_float("z1", z1, 1)
    z0a = _as_float("z0", z0, 2)
    k, n_donors = x0a.shape
    if x1a.shape != (k,):
        raise ValueError(f"x1 has shape {x1a.shape}, x0 has shape {x0a.shape}: need (k,), (k, J)")
    if z0a.shape != (z1a.shape[0], n_donors):
        raise ValueError(
            f"z0 must have shape (T, J) = ({z1a.shape[0]}, {n_donors}), got {z0a.shape}"
        )
    unknown = [s for s in starts if s not in START_NAMES]
    if unknown:
        raise ValueError(f"unknown starts {unknown}; choose from {list(START_NAMES)}")
    if n_random < 0:
        raise ValueError(f"n_random must be >= 0, got {n_random}")
    pnames = (
        tuple(predictor_names) if predictor_names is not None else tuple(f"x{i}" for i in range(k))
    )
    dnames = (
        tuple(donor_names) if donor_names is not None else tuple(f"d{j}" for j in range(n_donors))
    )
    if len(pnames) != k or len(dnames) != n_donors:
        raise ValueError(
            f"need {k} predictor names and {n_donors} donor names, "
            f"got {len(pnames)} and {len(dnames)}"
        )

    # Synth's normalisation: divide by the sd over treated and donors (constant rows: 1).
    sd = np.std(np.column_stack([x1a, x0a]), axis=1, ddof=1)
    scale = np.where(sd > 0.0, sd, 1.0)
    nested = _Nested(x1a / scale, np.ascontiguousarray(x0a / scale[:, None]), z1a, z0a)

    # Lower bound: the outcome-only fit, i.e. the inner problem on (Z1, Z0), v = 1.
    w_lb = np.empty(n_donors)
    if math.isnan(simplex_weights(z1a, z0a, np.ones(z1a.shape[0]), w_lb)):
        raise RuntimeError("synthetic-control inner solver failed (active-set NNLS)")
    lower = nested.mspe(w_lb)
    log: list[tuple[str, float]] = []

    def no_worse(v_new: Float64Array, target: float) -> bool:
        return nested.mspe(nested.inner(v_new)[0]) <= target * (1.0 + _REL_TOL) + (
            1e-15 * nested.norm
        )

    if v is not None:
        vv = np.ascontiguousarray(v, dtype=np.float64)
        if vv.shape != (k,) or not np.all(np.isfinite(vv)) or np.any(vv < 0.0) or vv.sum() <= 0:
            raise ValueError(f"v must be {k} finite non-negative numbers, not all zero")
        v_best = vv / vv.sum()
    elif n_donors == 1:
        v_best = np.full(k, 1.0 / k)
    else:
        v_cert = _reach(nested, w_lb) if certify else None
        if v_cert is not None and no_worse(v_cert, lower):
            v_best = v_cert
            log.append(("lower-bound certificate", nested.mspe(nested.inner(v_cert)[0])))
        else:
            if not (starts or n_random):
                raise ValueError("no starts: give starts or n_random > 0")
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            v_best, runs = _search(nested, starts, n_random, rng)
            log.extend(runs)
        if canonical_v:
            w_best, _ = nested.inner(v_best)
            v_can = _closest_to_equal(nested, v_best, w_best)
            if no_worse(v_can, nested.mspe(w_best)):
                v_best = v_can
    w, pred_loss = nested.inner(v_best)
    mspe = nested.mspe(w)
    certified = v is None and mspe <= lower * (1.0 + _REL_TOL) + 1e-15 * nested.norm
    w.setflags(write=False)
    v_best.setflags(write=False)
    return ClassicSyntheticControl(
        weights=w,
        v=v_best,
        mspe=mspe,
        rmspe=math.sqrt(mspe),
        predictor_loss=pred_loss,
        mspe_lower_bound=lower,
        certified=certified,
        x_treated=x1a,
        x_synthetic=x0a @ w,
        x_donor_mean=x0a.mean(axis=1),
        scale=scale,
        predictor_names=pnames,
        donor_names=dnames,
        local_optima=tuple(log),
    )


def fit_cross_validated(
    training: ProblemArrays,
    main: ProblemArrays,
    **options: Any,
) -> tuple[ClassicSyntheticControl, ClassicSyntheticControl]:
    """Choose ``V`` on a training period, then ``W`` on the main predictors with that ``V``.

    The cross-validation of Abadie, Diamond and Hainmueller (2015, AJPS 59(2),
    section "Estimation"): ``v`` minimises the outcome MSPE over a validation
    period given predictors measured in a training period; the final weights
    solve the inner problem on later predictors with that ``v`` (Synth's
    ``custom.v``).  ``v`` is the canonical one (closest to equal weights) unless
    ``canonical_v=False``, because the training optimum usually fixes ``W``
    but not ``v``.

    Parameters
    ----------
    training : tuple (X1, X0, Z1, Z0)
        Training predictors and validation-period outcomes.
    main : tuple (X1, X0, Z1, Z0)
        Final predictors (same rows) and the fit-period outcomes used to
        report the final MSPE.
    **options
        Keyword arguments of :func:`fit_predictor_weights` (not ``v``).

    Returns
    -------
    (training_fit, main_fit) : tuple of ClassicSyntheticControl
    """
    if "v" in options:
        raise ValueError("fit_cross_validated chooses v itself; do not pass v")
    train = fit_predictor_weights(*training, **options)
    final = fit_predictor_weights(*main, v=train.v, **options)
    return train, final


def placebo_in_space(
    predictors: npt.ArrayLike,
    fit_outcomes: npt.ArrayLike,
    post_outcomes: npt.ArrayLike,
    *,
    pre_outcomes: npt.ArrayLike | None = None,
    treated: int = 0,
    unit_names: Sequence[str] | None = None,
    **options: Any,
) -> PlaceboInSpace:
    """In-space placebo inference: refit with every unit as the treated one.

    Each unit's synthetic control uses every other unit except the actually
    treated one as donors (Abadie, Diamond and Hainmueller 2010, section 4;
    2015, "Placebo studies").  The statistic is the ratio of post- to
    pre-period RMSPE; the treated unit's ``p_value`` is its rank (1 = largest)
    divided by the number of units.

    Parameters
    ----------
    predictors : array_like, shape (k, n_units)
        Predictors of all units.
    fit_outcomes : array_like, shape (T, n_units)
        Outcomes over the fit period (the outer problem's ``Z``).
    post_outcomes : array_like, shape (T1, n_units)
        Outcomes after treatment.
    pre_outcomes : array_like, shape (T0, n_units), optional
        Pre-treatment outcomes for the pre-period RMSPE; default ``fit_outcomes``.
    treated : int
        Column of the treated unit.
    unit_names : sequence of str, optional
        Labels (default ``u0``, ``u1``, ...).
    **options
        Keyword arguments of :func:`fit_predictor_weights` (``v``, ``n_random``,
        ``seed``, ...), used for every fit.

    Returns
    -------
    PlaceboInSpace
    """
    x = _as_float("predictors", predictors, 2)
    z = _as_float("fit_outcomes", fit_outcomes, 2)
    post = _as_float("post_outcomes", post_outcomes, 2)
    pre = z if pre_outcomes is None else _as_float("pre_outcomes", pre_outcomes, 2)
    n = x.shape[1]
    if n < 3:
        raise ValueError(f"need at least 3 units (treated and 2 donors), got {n}")
    for name, arr in (("fit_outcomes", z), ("post_outcomes", post), ("pre_outcomes", pre)):
        if arr.shape[1] != n:
            raise ValueError(f"{name} has {arr.shape[1]} units, predictors have {n}")
    if not 0 <= treated < n:
        raise ValueError(f"treated must index a unit in 0..{n - 1}, got {treated}")
    names = tuple(unit_names) if unit_names is not None else tuple(f"u{i}" for i in range(n))
    if len(names) != n:
        raise ValueError(f"need {n} unit names, got {len(names)}")
    fits: list[ClassicSyntheticControl] = []
    pre_rmspe = np.empty(n)
    post_rmspe = np.empty(n)
    for u in range(n):
        donors = [j for j in range(n) if j != u and j != treated]
        fit = fit_predictor_weights(
            x[:, u],
            x[:, donors],
            z[:, u],
            z[:, donors],
            donor_names=[names[j] for j in donors],
            **options,
        )
        fits.append(fit)
        pre_rmspe[u] = math.sqrt(float(np.mean((pre[:, u] - pre[:, donors] @ fit.weights) ** 2)))
        post_rmspe[u] = math.sqrt(float(np.mean((post[:, u] - post[:, donors] @ fit.weights) ** 2)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = post_rmspe / pre_rmspe
    rank = int(np.sum(ratio >= ratio[treated]))
    for arr in (pre_rmspe, post_rmspe, ratio):
        arr.setflags(write=False)
    return PlaceboInSpace(
        unit_names=names,
        treated=treated,
        pre_rmspe=pre_rmspe,
        post_rmspe=post_rmspe,
        ratio=ratio,
        rank=rank,
        p_value=rank / n,
        fits=tuple(fits),
    )
