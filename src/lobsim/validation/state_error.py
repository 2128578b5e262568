r"""The prediction error of the calibration's base state, given its parameters.

:func:`lobsim.validation.calibrate.calibrate_at` gives the BLUP of the state
at the base period (docs/model.md section 3; steps 3 and 4 of
:mod:`lobsim.validation.calibrate`). Under the Gaussian model at those
parameters the state's conditional (posterior) distribution given the panel
is normal about the BLUP, with the *prediction error covariance* (PEV)
computed here exactly, by Henderson's formula for the best linear unbiased
predictor of ``w = L b + s`` with fixed effects ``b`` (flat prior, estimated
by GLS)::

    PEV = C_ss - C_sy V^-1 C_ys + (L - C_sy V^-1 X) (X' V^-1 X)^-1 (L - C_sy V^-1 X)'

It depends on the design and the parameters, not on the observed values.

Structure (why 215 areas are cheap). The regional means and the
within-region contrasts are exactly independent, and so are the states they
inform: the regional parts (``F[0]``, ``G[r,0]``, the regional means of
``U[a,0]`` and of the noise at the base, and each region's trend
``mu_bar + nu[r] + mean omega``) are predicted from the ``R T`` regional
means, and an area's deviations from its region's means (of ``U[a,0]``, the
noise and ``omega[a]``) from its region's contrasts, whose rows are
independent series of one area's covariance. So the PEV is one ``(1 + 4R)``
block from an ``R T`` system and one 3 x 3 block from a ``T`` system, shared
by every area: an area's deviation errors are ``(I - J / n_r)`` times iid
draws of that block (the region mean of iid draws taken out). The true log
level is the last observation less its noise, so its error is minus the
noise's.

A random walk (phi = 1) has no stationary variance: its base state is not
identified apart from the levels, which are fixed effects, and the engine
uses only its changes (``G[r,t] - G[r,0]``, docs/model.md section 3.2), so
its state error is not drawn; the other targets' PEV does not depend on the
constant by which :func:`lobsim.validation._reml.ar1_gamma` shifts it (the
levels absorb any constant).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
from threadpoolctl import threadpool_limits

from lobsim.validation._reml import ar1_gamma, level_and_trend
from lobsim.validation.calibrate import Calibration

P = ParamSpec("P")
R = TypeVar("R")


def _one_blas_thread(f: Callable[P, R]) -> Callable[P, R]:
    """Run ``f`` on one BLAS thread, as calibrate_at: a draw goes through an
    eigendecomposition of a semi-definite covariance, whose basis (and so the
    draw) follows the last digits of the products before it, and those follow
    the BLAS thread count; one thread makes a block's draw the same for every
    caller (a thread pool, a Dask worker, a test) on a machine."""

    @functools.wraps(f)
    def one(*args: P.args, **kwargs: P.kwargs) -> R:
        with threadpool_limits(1, "blas"):
            return f(*args, **kwargs)

    return one


def _ar1(phi: float, var: float, t: int) -> np.ndarray:
    """Covariance of ``t`` consecutive values of an AR(1): stationary, or a random walk's up
    to a constant (absorbed by the levels) at ``phi = 1``."""
    if phi >= 1.0:
        return var * ar1_gamma(1.0, t)
    k = np.abs(np.subtract.outer(np.arange(t), np.arange(t))).astype(float)
    return var * phi**k / (1.0 - phi * phi)


def _henderson(c_ss: np.ndarray, c_sy: np.ndarray, v: np.ndarray, x: np.ndarray,
               lmat: np.ndarray) -> np.ndarray:
    """PEV of the BLUP of ``L b + s`` from ``y = X b + (random of cov V)``, ``Cov(s, y) = C_sy``."""
    v_inv_c = np.linalg.solve(v, np.column_stack([c_sy.T, x]))
    a, v_inv_x = v_inv_c[:, :c_sy.shape[0]], v_inv_c[:, c_sy.shape[0]:]
    m = lmat - c_sy @ v_inv_x
    pev = c_ss - c_sy @ a + m @ np.linalg.solve(x.T @ v_inv_x, m.T)
    return 0.5 * (pev + pev.T)


@dataclass(frozen=True)
class StateError:
    """One draw of the base state's prediction error, as :class:`lobsim.model.areas.OutcomeData`
    holds the state: per area ``trend`` (per year), ``log_level``, ``area_state``; each
    region's ``regional_state``; the ``national_state``."""

    trend: np.ndarray
    log_level: np.ndarray
    area_state: np.ndarray
    regional_state: dict[str, float]
    national_state: float


@dataclass(frozen=True)
class StatePrediction:
    """The prediction error covariance of a calibration's base state (module docstring).

    ``between`` is over ``(F[0], G[r,0] for r, mean U[r], mean noise[r], trend[r])``,
    regions in :attr:`region_ids` order, per period; ``within`` over an area's
    deviations from its region's ``(U[a,0], noise[a,0], omega[a])``.
    """

    region_ids: tuple[str, ...]
    rindex: np.ndarray
    periods_per_year: int
    between: np.ndarray
    within: np.ndarray

    @_one_blas_thread
    def draw(self, gen: np.random.Generator) -> StateError:
        """One draw of the state's error: what to add to the BLUP."""
        n_r, n_a = len(self.region_ids), self.rindex.size
        b = _mvn(gen, self.between)
        w = _mvn(gen, self.within, n_a)  # (n_a, 3) iid, then less their region's mean
        sizes = np.bincount(self.rindex, minlength=n_r)
        w -= (np.stack([np.bincount(self.rindex, w[:, j], n_r) for j in range(3)], axis=1)
              / sizes[:, None])[self.rindex]
        g, u, e, mu = (b[1 + i * n_r:1 + (i + 1) * n_r] for i in range(4))
        noise = e[self.rindex] + w[:, 1]
        return StateError(trend=self.periods_per_year * (mu[self.rindex] + w[:, 2]),
                          log_level=-noise, area_state=u[self.rindex] + w[:, 0],
                          regional_state=dict(zip(self.region_ids, g.tolist(), strict=True)),
                          national_state=float(b[0]))


def _mvn(gen: np.random.Generator, cov: np.ndarray, n: int | None = None) -> np.ndarray:
    """Normal draws of covariance ``cov`` (positive semi-definite) by its eigendecomposition.

    A coordinate without variance (a random walk's state) is exactly 0.
    """
    free = np.flatnonzero(np.diag(cov) > 0.0)
    lam, vec = np.linalg.eigh(cov[np.ix_(free, free)])
    root = np.zeros((cov.shape[0], free.size))
    root[free] = vec * np.sqrt(np.maximum(lam, 0.0))
    z = gen.standard_normal(free.size if n is None else (n, free.size))
    return root @ z if n is None else z @ root.T


@_one_blas_thread
def state_prediction(cal: Calibration) -> StatePrediction:
    """The PEV of ``cal``'s base state at its parameters (module docstring)."""
    ppy, p = cal.periods_per_year, cal.per_period
    t = len(cal.periods)
    region_ids = tuple(dict.fromkeys(cal.regions))
    rindex = np.array([region_ids.index(r) for r in cal.regions])
    n_r = len(region_ids)
    sizes = np.bincount(rindex, minlength=n_r).astype(float)
    var_e = cal.process.measurement_sigma ** 2
    tau_a2, tau_r2 = (cal.trend_sd_area / ppy) ** 2, (cal.trend_sd_region / ppy) ** 2
    tau = level_and_trend(t)[:, 1]
    s_f = _ar1(p["national_phi"], p["national_sigma"] ** 2, t)
    s_g = _ar1(p["regional_phi"], p["regional_sigma"] ** 2, t)
    s_u = _ar1(p["area_phi"], p["area_sigma"] ** 2, t)
    last = np.eye(t)[-1]
    k_area = s_u + var_e * np.eye(t) + tau_a2 * np.outer(tau, tau)  # one area, about its level

    # within: one contrast series, its level fixed; targets (U[0], noise[0], omega)
    c_ww = np.diag([s_u[-1, -1], var_e, tau_a2])
    c_wy = np.stack([s_u[-1], var_e * last, tau_a2 * tau])
    within = _henderson(c_ww, c_wy, k_area, np.ones((t, 1)), np.zeros((3, 1)))

    # between: the regional means, levels per region and the mean trend fixed
    v = (np.kron(np.ones((n_r, n_r)), s_f) + np.kron(np.eye(n_r), s_g + tau_r2 * np.outer(tau, tau))
         + np.kron(np.diag(1.0 / sizes), k_area))
    x = np.column_stack([np.kron(np.eye(n_r), np.ones((t, 1))), np.tile(tau, n_r)])
    eye = np.eye(n_r)
    c_ss = np.diag(np.concatenate([[s_f[-1, -1]], np.full(n_r, s_g[-1, -1]),
                                   s_u[-1, -1] / sizes, var_e / sizes, tau_r2 + tau_a2 / sizes]))
    c_sy = np.vstack([np.tile(s_f[-1], n_r)[None, :], np.kron(eye, s_g[-1]),
                      np.kron(np.diag(1.0 / sizes), s_u[-1]),
                      np.kron(np.diag(var_e / sizes), last),
                      np.kron(np.diag(tau_r2 + tau_a2 / sizes), tau)])
    lmat = np.zeros((1 + 4 * n_r, n_r + 1))
    lmat[1 + 3 * n_r:, -1] = 1.0  # a region's trend includes the mean trend, a fixed effect
    between = _henderson(c_ss, c_sy, v, x, lmat)
    # a random walk's state is not identified apart from the levels, nor used (docstring)
    for i, name in ((slice(0, 1), "national"), (slice(1, 1 + n_r), "regional")):
        if p[f"{name}_phi"] >= 1.0:
            between[i, :] = 0.0
            between[:, i] = 0.0
    if p["area_phi"] >= 1.0:
        between[1 + n_r:1 + 2 * n_r, :] = between[:, 1 + n_r:1 + 2 * n_r] = 0.0
        within[0, :] = within[:, 0] = 0.0
    return StatePrediction(region_ids=region_ids, rindex=rindex, periods_per_year=ppy,
                           between=between, within=within)
