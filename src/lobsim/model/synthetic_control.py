"""Synthetic-control donor weights for one treated unit: the validated entry to the NNLS kernel.

:func:`fit_synthetic_control` checks shapes, finiteness and the row weights,
then solves ``min_w sum_i v_i (X1_i - (X0 w)_i)^2`` over the simplex with
:func:`lobsim.kernels.synth.simplex_weights` (which trusts its inputs). The
control groups of :mod:`lobsim.model.control` and the synthetic-control
estimator of :mod:`lobsim.validation.scm` are built on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lobsim.kernels.synth import MAXITER_PER_DONOR, simplex_weights

__all__ = ["SyntheticFit", "fit_synthetic_control"]


# eq=False: a generated __eq__ would compare the weight arrays elementwise and
# fail on the ambiguous truth value; fits compare by identity instead.
@dataclass(frozen=True, eq=False)
class SyntheticFit:
    """Result of :func:`fit_synthetic_control`.

    Attributes
    ----------
    weights : ndarray of float64, shape (J,)
        Donor weights (read-only), non-negative and summing to one.
    objective : float
        Minimised ``sum_i v_i (X1_i - (X0 w)_i)^2``.
    rmspe : float
        ``sqrt(objective / sum(v))``: the v-weighted root mean squared
        pre-period prediction error, which is the usual RMSPE when ``v`` is
        all ones (outcome rows only).
    """

    weights: npt.NDArray[np.float64]
    objective: float
    rmspe: float


def fit_synthetic_control(
    treated: npt.ArrayLike,
    donors: npt.ArrayLike,
    v: npt.ArrayLike | None = None,
) -> SyntheticFit:
    """Synthetic-control donor weights for one treated unit (validated wrapper).

    Solves ``min_w sum_i v_i (X1_i - (X0 w)_i)^2`` subject to ``w >= 0``,
    ``sum(w) = 1`` exactly (Abadie, Diamond and Hainmueller 2010) with the
    jit-compiled :func:`lobsim.kernels.synth.simplex_weights`.

    Parameters
    ----------
    treated : array_like, shape (m,)
        Treated unit's pre-period predictors/outcomes ``X1``.
    donors : array_like, shape (m, J)
        Donor matrix ``X0``, one column per donor.
    v : array_like, shape (m,), optional
        Non-negative row weights (the diagonal of ``V``), not all zero.
        Defaults to ones.

    Returns
    -------
    SyntheticFit
        Weights, objective and ``rmspe = sqrt(objective / sum(v))``.

    Raises
    ------
    ValueError
        If shapes are inconsistent, arrays are empty, values are not finite,
        ``v`` is negative or all zero, or the objective could overflow.
    RuntimeError
        If the active-set iteration fails (iteration cap or factorisation
        breakdown: guards, never observed).
    """
    x1 = np.ascontiguousarray(treated, dtype=np.float64)
    x0 = np.ascontiguousarray(donors, dtype=np.float64)
    if x1.ndim != 1 or x1.shape[0] == 0:
        raise ValueError(
            f"treated must be a non-empty 1-D array of shape (m,), got shape {x1.shape}"
        )
    m = x1.shape[0]
    if x0.ndim != 2 or x0.shape[0] != m or x0.shape[1] == 0:
        raise ValueError(
            f"donors must have shape (m, J) = ({m}, J) with J >= 1 (one column per donor), "
            f"got shape {x0.shape}"
        )
    if v is None:
        vv = np.ones(m)
    else:
        vv = np.ascontiguousarray(v, dtype=np.float64)
        if vv.shape != (m,):
            raise ValueError(f"v must have shape ({m},) like treated, got shape {vv.shape}")
    for name, arr in (("treated", x1), ("donors", x0), ("v", vv)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(vv < 0.0):
        raise ValueError(f"v must be non-negative, got minimum {vv.min()!r}")
    with np.errstate(over="ignore"):
        vsum = float(vv.sum())
    if not vsum > 0.0:
        raise ValueError("v must have at least one positive entry")
    if not math.isfinite(vsum):
        raise ValueError("sum(v) overflows float64; rescale v (only its proportions matter)")
    # Every objective value is at most sum_i v_i max_j (X0_ij - X1_i)^2; if
    # that bound overflows, so could the kernel's arithmetic.
    with np.errstate(over="ignore", invalid="ignore"):
        bound = np.sum(vv * np.max((x0 - x1[:, None]) ** 2, axis=1))
    if not np.isfinite(bound):
        raise ValueError(
            "sum_i v_i max_j (donors_ij - treated_i)^2 overflows float64; rescale the data"
        )
    w = np.empty(x0.shape[1])
    obj = float(simplex_weights(x1, x0, vv, w))
    if math.isnan(obj):
        raise RuntimeError(
            "synthetic-control weights: the active-set NNLS failed (hit its cap of "
            f"{MAXITER_PER_DONOR} * J = {MAXITER_PER_DONOR * x0.shape[1]} least-squares "
            "solves, or its QR factorisation broke down)"
        )
    w.setflags(write=False)
    return SyntheticFit(weights=w, objective=obj, rmspe=math.sqrt(obj / vsum))
