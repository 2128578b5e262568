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

The panel the predictors come from is :class:`lobsim.validation.predictor_panel.PredictorPanel`;
the nested problem and its searches (steps 1 to 3) are in
``lobsim.validation._scm_nested``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lobsim.arraytypes import Float64Array
from lobsim.kernels.synth import simplex_weights
from lobsim.validation._scm_nested import (
    REL_TOL,
    START_NAMES,
    NestedProblem,
    closest_to_equal,
    reach_lower_bound,
    search,
)

__all__ = [
    "ClassicSyntheticControl",
    "PlaceboInSpace",
    "fit_cross_validated",
    "fit_predictor_weights",
    "placebo_in_space",
]


ProblemArrays = tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]


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
    nested = NestedProblem(x1a / scale, np.ascontiguousarray(x0a / scale[:, None]), z1a, z0a)

    # Lower bound: the outcome-only fit, i.e. the inner problem on (Z1, Z0), v = 1.
    w_lb = np.empty(n_donors)
    if math.isnan(simplex_weights(z1a, z0a, np.ones(z1a.shape[0]), w_lb)):
        raise RuntimeError("synthetic-control inner solver failed (active-set NNLS)")
    lower = nested.mspe(w_lb)
    log: list[tuple[str, float]] = []

    def no_worse(v_new: Float64Array, target: float) -> bool:
        return nested.mspe(nested.inner(v_new)[0]) <= target * (1.0 + REL_TOL) + (
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
        v_cert = reach_lower_bound(nested, w_lb) if certify else None
        if v_cert is not None and no_worse(v_cert, lower):
            v_best = v_cert
            log.append(("lower-bound certificate", nested.mspe(nested.inner(v_cert)[0])))
        else:
            if not (starts or n_random):
                raise ValueError("no starts: give starts or n_random > 0")
            rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            v_best, runs = search(nested, starts, n_random, rng)
            log.extend(runs)
        if canonical_v:
            w_best, _ = nested.inner(v_best)
            v_can = closest_to_equal(nested, v_best, w_best)
            if no_worse(v_can, nested.mspe(w_best)):
                v_best = v_can
    w, pred_loss = nested.inner(v_best)
    mspe = nested.mspe(w)
    certified = v is None and mspe <= lower * (1.0 + REL_TOL) + 1e-15 * nested.norm
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
