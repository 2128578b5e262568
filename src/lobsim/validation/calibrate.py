r"""Calibrate the outcome process of docs/model.md section 3 on an observed panel.

The model, per period, of the observed log outcome of area ``a`` in region
``r``::

    Y[a,t] = alpha[a] + mu[a] t + F[t] + G[r,t] + U[a,t] + e[a,t]

with F, G and U zero-mean AR(1) processes (a random walk when phi = 1),
``e`` white measurement noise, and area trends
``mu[a] = mu_bar + nu[r] + omega[a]`` scattered around their regional and
overall means. Parameters are pooled: one (phi, sigma) per component, one
noise sd.

Method: restricted maximum likelihood (REML) on two exactly independent
parts of the panel, then the best linear unbiased predictor (BLUP) of the
state at the base period.

1. *Within regions.* Deviations from the regional mean, ``D[a] = Y[a] -
   mean over r(a)``, are free of F and G. The ``n_r - 1`` orthonormal
   contrasts of a region's areas are independent series with the covariance
   ``K_W = sigma_U^2 Gamma(phi_U) + sigma_e^2 I`` of one area (the factor
   ``1 - 1/n_r`` of a single deviation is the price of the mean). Their
   summed outer product is ``sum_a D[a] D[a]^T``, so the REML likelihood of
   (phi_U, sigma_U, sigma_e), with each series' level and trend as fixed
   effects, needs only that T x T matrix: ``N - R`` replicates.
2. *Between regions.* The regional means ``M[r] = a[r] + b[r] t + F + G[r] +
   eta[r]``, ``Cov(eta[r]) = K_W / n_r``, are independent of the contrasts.
   Their joint REML likelihood (R T values, regional levels and trends fixed)
   gives (phi_F, sigma_F, phi_G, sigma_G) with step 1's K_W held fixed.
3. *Trend spread*, by moments: the spread of the GLS trends of the
   deviations (and of the regional means) over what their sampling variance
   explains gives sd(omega) and sd(nu).
4. *State*: with the trends as random effects (so a short noisy history does
   not extrapolate a noisy trend), the BLUP of F, G, U, the noise and each
   area's trend, evaluated at the base period (the last one). The true log
   level is the last observation less its predicted noise.

*Convergence.* Both REML likelihoods are searched on their exact gradients
(:mod:`lobsim.validation._reml`), the variances as variances in units of ``var0``, the
variance of about a one-period change, and persistences per period: step 1
from a grid over ``phi_U``, step 2 from a grid over both ``phi_F`` and
``phi_G`` (the national likelihood, from one series, is flat and has local
optima). Each ends with Newton steps until the step, the estimated distance
to the exact optimum, is at most ``1e-10`` in every coordinate (a bound
holds a coordinate whose gradient points out of it). The estimates are
thus the likelihood's optimum to about ten digits on any CPU, however flat
the likelihood is along a parameter the data barely determine; a search
that cannot get there raises :class:`~lobsim.errors.ConfigError`.
:func:`calibrate_at` runs steps 3 and 4 at parameters given instead, and
:func:`reml_steps` gives both REML steps at an estimate (what the sampling
distribution of ``lobsim.validation.parameter_draws`` is computed from). The
module is a little over 600 lines because all of these read the validated
panel, which is private to it.

*Standard errors* (:attr:`Calibration.standard_errors`, :attr:`Calibration.on_boundary`):
:mod:`lobsim.validation.standard_errors`.

Per-period AR(1) parameters are converted exactly to the year:
``phi_year = phi_p^n``, ``sigma_year^2 = sigma_p^2 (1 - phi_p^(2n)) / (1 - phi_p^2)``
with ``n`` periods a year (:func:`lobsim.model.process.ar1_year_parameters`); ``measurement_sigma``
is the sd of one observation's log noise, the same at any period length.

Limits, stated in ``docs/real_data.md``: pooled volatilities (every area
equally noisy), Gaussian shocks, loadings fixed at 1 (per-area loadings are
estimated afterwards at this process by :mod:`lobsim.validation.area_loadings`),
trends linear, the
national factor estimated from a single series (its phi and sigma are
imprecise; it cancels from every control-group measurement).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from lobsim.errors import ConfigError
from lobsim.model.areas import AreaTable, OutcomeData, read_areas, read_outcome
from lobsim.model.config import OutcomeProcess
from lobsim.model.process import ar1_year_parameters
from lobsim.validation._reml import (
    STEP_TOL,
    Objective,
    ar1_gamma,
    between_objective,
    between_unit,
    complement,
    from_search_units,
    level_and_trend,
    newton_polish,
    search_units,
    within_objective,
    within_unit,
)
from lobsim.validation.standard_errors import (
    SE_KEYS,
    SIGMA_MAX,
    moment_sd_se,
    reml_standard_errors,
)

#: Fewest periods and areas the calibration accepts.
MIN_PERIODS = 8
MIN_AREAS_PER_REGION = 2
# Bounds of the volatilities searched (log points per period).
# Per-year phi grid of the 1-D search of the within-region step.
_PHI_GRID = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """A calibrated outcome process and the state at the base period.

    Attributes
    ----------
    process : OutcomeProcess
        Per-year parameters, as a config's ``[outcomes.process]`` takes them.
    per_period : dict of str to float
        The same AR(1) parameters per period (``*_phi``, ``*_sigma``).
    periods_per_year : int
    areas, regions : tuple of str
        Area ids and each area's region, in the areas table's order.
    periods : tuple of str
        Period labels; the last is the base period.
    trend : ndarray
        Per area, the predicted trend ``mu`` (log change per year).
    log_level, area_state : ndarray
        Per area, the true log level ``x[a,0]`` and ``U[a,0]`` at the base period.
    regional_state : dict of str to float
        ``G[r,0]``.
    national_state : float
        ``F[0]``.
    trend_mean, trend_sd_region, trend_sd_area : float
        Mean trend and the sd of regional and within-region trend deviations,
        per year.
    volatility_scale : ndarray
        Per area, its within-region variance relative to the pooled model
        (mean about 1; >1: noisier than the model says).
    volatility_slope : float
        Slope of log ``volatility_scale`` on the log of the area's mean level
        (-1: variance inversely proportional to the size, as for counts of
        independent events; 0: the pooled model's homogeneity).
    loglik_within, loglik_between : float
        Maximised REML log likelihoods of steps 1 and 2.
    standard_errors : dict of str to float
        Standard error of each per-year estimate, keyed as the
        :class:`~lobsim.model.config.OutcomeProcess` fields (``national_phi``
        ... ``measurement_sigma``) and ``trend_mean``, ``trend_sd_region``,
        ``trend_sd_area``; NaN for an estimate on its boundary or not
        identified (module docstring, *Standard errors*).
    standard_errors_per_period : dict of str to float
        The same for :attr:`per_period`, keyed as it is.
    on_boundary : tuple of str
        The estimates (keys of :attr:`standard_errors`) on a boundary of their
        parameter space: a phi at 0 or 1, a sigma at 0.
    """

    process: OutcomeProcess
    per_period: dict[str, float]
    periods_per_year: int
    areas: tuple[str, ...]
    regions: tuple[str, ...]
    periods: tuple[str, ...]
    trend: np.ndarray
    log_level: np.ndarray
    area_state: np.ndarray
    regional_state: dict[str, float]
    national_state: float
    trend_mean: float
    trend_sd_region: float
    trend_sd_area: float
    volatility_scale: np.ndarray
    volatility_slope: float
    loglik_within: float
    loglik_between: float
    standard_errors: dict[str, float]
    standard_errors_per_period: dict[str, float]
    on_boundary: tuple[str, ...]


# --------------------------------------------------------------------------
# Step 1: within regions
# --------------------------------------------------------------------------
def _within_nll(phi: float, q2: np.ndarray, proj_scatter: np.ndarray, reps: int
                ) -> tuple[float, float, float]:
    """Profile REML at ``phi``: (nll, var_u, var_e).

    In the eigenbasis of the projected AR(1) covariance ``G = Q^T Gamma Q``
    the model covariance is diagonal, ``s^2 (rho lam_i / mean(lam) + 1 - rho)``;
    the overall scale ``s^2`` has a closed form, leaving a 1-D search over
    the share ``rho`` in [0, 1].
    """
    lam, vec = np.linalg.eigh(q2.T @ ar1_gamma(phi, q2.shape[0]) @ q2)
    lam = np.maximum(lam, 0.0)
    a = np.sum(vec * (proj_scatter @ vec), axis=0)
    scale = max(float(lam.mean()), 1e-300)
    lam = lam / scale
    m = lam.size

    def profile(rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.maximum(rho[:, None] * lam[None, :] + (1.0 - rho[:, None]), 1e-300)
        s2 = np.maximum((a[None, :] / w).sum(axis=1) / (reps * m), 1e-300)
        nll = 0.5 * (reps * m * np.log(s2) + reps * np.log(w).sum(axis=1) + reps * m)
        return nll, s2

    grid = np.linspace(0.0, 1.0, 41)
    values, _ = profile(grid)
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda r: float(profile(np.array([r]))[0][0]),
                                   bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
    rho = float(res.x) if res.fun < values[i] else float(grid[i])
    nll, s2 = profile(np.array([rho]))
    return float(nll[0]), float(s2[0]) * rho / scale, float(s2[0]) * (1.0 - rho)


def _fit_within(dev: np.ndarray, reps: int, ppy: int) -> tuple[float, float, float]:
    """REML (phi_U, var_U, var_e) per period from within-region deviations.

    A grid of yearly persistences profiles the likelihood (the optimum over
    the variances has a 1-D search), bounded Brent refines the best, and
    :func:`lobsim.validation._reml.newton_polish` takes it to the optimum of the full
    likelihood on its exact gradient.
    """
    t = dev.shape[1]
    q2 = complement(level_and_trend(t))
    scatter = q2.T @ (dev.T @ dev) @ q2
    phis = _PHI_GRID ** (1.0 / ppy)
    values = [_within_nll(float(p), q2, scatter, reps)[0] for p in phis]
    i = int(np.argmin(values))
    lo, hi = phis[max(i - 1, 0)], phis[min(i + 1, len(phis) - 1)]
    res = optimize.minimize_scalar(lambda p: _within_nll(p, q2, scatter, reps)[0],
                                   bounds=(lo, hi), method="bounded",
                                   options={"xatol": 1e-9})
    phi = float(res.x) if res.fun < values[i] else float(phis[i])
    _, var_u, var_e = _within_nll(phi, q2, scatter, reps)
    var0 = within_unit(dev, reps)
    x = np.array([phi, var_u / var0, var_e / var0])
    phi, var_u, var_e = _polish(within_objective(dev, reps), x, _WITHIN_VARIANCES, var0,
                                "areas of a region")
    return phi, var_u, var_e


# --------------------------------------------------------------------------
# Step 2: between regions
# --------------------------------------------------------------------------
def _fit_between(means: np.ndarray, sizes: np.ndarray, k_w: np.ndarray
                 ) -> tuple[float, float, float, float]:
    """REML (phi_F, var_F, phi_G, var_G) per period from regional means.

    The national factor is seen in a single series: its likelihood is flat
    and has several local optima in the two persistences (on 83 panels, the
    80 of tests/mc_calibration.py, the demo's two and Greater Manchester, 9
    L-BFGS-B starts missed the best in 2). So the likelihood is profiled on
    a grid of both persistences (the variances fitted at each, warm-started
    along the grid), L-BFGS-B on the exact gradient
    (:func:`lobsim.validation._reml.between_objective`) frees all four from the best
    two grid points, and :func:`lobsim.validation._reml.newton_polish` finishes the
    better. On those panels this found the best of 100 starts every time.
    """
    nll = between_objective(means, sizes, k_w)
    # variances in units of var0, about a one-period change, so that all four
    # coordinates have the same scale
    var0 = between_unit(means)
    fun = search_units(nll, _BETWEEN_VARIANCES, var0)
    var_bound = (0.0, SIGMA_MAX**2 / var0)
    cells = []
    for phi_f in _BETWEEN_GRID:
        v = np.ones(2)
        for phi_g in _BETWEEN_GRID:
            def profile(v: np.ndarray, phi_f: float = phi_f, phi_g: float = phi_g
                        ) -> tuple[float, np.ndarray]:
                value, grad = fun(np.array([phi_f, v[0], phi_g, v[1]]))
                return value, grad[1::2]

            res = optimize.minimize(profile, v, jac=True, method="L-BFGS-B",
                                    bounds=[var_bound] * 2,
                                    options={"ftol": 1e-10, "gtol": 1e-6})
            v = res.x
            cells.append((float(res.fun), np.array([phi_f, v[0], phi_g, v[1]])))
    cells.sort(key=lambda c: c[0])
    best = None
    for _, x0 in cells[:2]:
        res = optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                bounds=[(0.0, 1.0), var_bound] * 2,
                                options={"ftol": 1e-15, "gtol": 1e-10})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    phi_f, var_f, phi_g, var_g = _polish(nll, best.x, _BETWEEN_VARIANCES, var0, "regions")
    return phi_f, var_f, phi_g, var_g


# Per-period persistences of step 2's profile grid, for both factors.
_BETWEEN_GRID = (0.0, 0.4, 0.7, 0.87, 0.95, 0.985, 1.0)
# Which search coordinates are variances (searched as var / var0): step 1 has
# (phi_U, var_U, var_e), step 2 (phi_F, var_F, phi_G, var_G).
_WITHIN_VARIANCES = np.array([False, True, True])
_BETWEEN_VARIANCES = np.array([False, True, False, True])
# The components of each step's coordinates: (name, phi index or None, variance index).
_WITHIN_COMPONENTS = (("area", 0, 1), ("measurement", None, 2))
_BETWEEN_COMPONENTS = (("national", 0, 1), ("regional", 2, 3))


class _NoConvergence(Exception):
    """A REML search did not reach its Newton step tolerance."""


def _polish(nll: Objective, x: np.ndarray, is_var: np.ndarray, var0: float, step: str
            ) -> tuple[float, ...]:
    """:func:`lobsim.validation._reml.newton_polish` within the search bounds; parameters back."""
    upper = np.where(is_var, SIGMA_MAX**2 / var0, 1.0)
    x, steps = newton_polish(search_units(nll, is_var, var0), x, np.zeros(x.size), upper)
    if steps < 0:
        raise _NoConvergence(f"the REML search between {step} did not converge to a Newton "
                             f"step of {STEP_TOL:g}: the likelihood is too flat to calibrate "
                             "this panel")
    return tuple(float(v) for v in from_search_units(x, is_var, var0))


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Panel:
    """A validated panel: log outcomes by area and period, areas by region."""

    source: str
    data: OutcomeData
    table: AreaTable
    ppy: int
    y: np.ndarray  # (N, T)
    region_ids: list[str]
    rindex: np.ndarray  # (N,) region of each area
    sizes: np.ndarray  # (R,) areas per region
    means: np.ndarray  # (R, T) regional means
    dev: np.ndarray  # (N, T) deviations from them


def _panel(history: str | Path | OutcomeData, areas: str | Path | AreaTable,
           periods_per_year: int) -> _Panel:
    ppy = int(periods_per_year)
    if ppy < 1:
        raise ValueError(f"periods_per_year must be >= 1, got {periods_per_year!r}")
    table = areas if isinstance(areas, AreaTable) else read_areas(areas)
    data = history if isinstance(history, OutcomeData) else read_outcome(history, None,
                                                                          table, ppy)
    y = np.asarray(data.log_history, dtype=float)
    src = data.source or "<history>"
    t = y.shape[1]
    if t < MIN_PERIODS:
        raise ConfigError(f"has {t} periods; calibration needs at least {MIN_PERIODS}",
                          source=src)
    region_ids = list(dict.fromkeys(table.regions))
    rindex = np.array([region_ids.index(r) for r in table.regions])
    sizes = np.bincount(rindex, minlength=len(region_ids)).astype(float)
    if len(region_ids) < 2:
        raise ConfigError("has a single region; the regional and national factors cannot be "
                          "told apart: give at least two regions", source=src)
    small = [r for r, n in zip(region_ids, sizes, strict=True) if n < MIN_AREAS_PER_REGION]
    if small:
        raise ConfigError(f"region {small[0]!r} has fewer than {MIN_AREAS_PER_REGION} areas; "
                          "merge it with a neighbour", source=src)
    means = np.array([y[rindex == r].mean(axis=0) for r in range(len(region_ids))])
    dev = y - means[rindex]
    # step 1 fits the areas' variation about their region beyond a straight line:
    # a panel without any (constant, or areas moving in parallel lines) has none
    detrended = dev @ complement(level_and_trend(t))
    if not np.any(np.abs(detrended) > 1e-12 * (1.0 + float(np.abs(y).max()))):
        raise ConfigError("has no variation of the areas about their regional means beyond "
                          "straight lines, so the area-specific process cannot be estimated; "
                          "is the history constant or generated?", source=src)
    return _Panel(source=src, data=data, table=table, ppy=ppy, y=y, region_ids=region_ids,
                  rindex=rindex, sizes=sizes, means=means, dev=dev)


@dataclass(frozen=True)
class _Parameters:
    """Per-period parameters of steps 1 and 2."""

    phi_u: float
    var_u: float
    var_e: float
    phi_f: float
    var_f: float
    phi_g: float
    var_g: float


def calibrate(history: str | Path | OutcomeData, areas: str | Path | AreaTable,
              periods_per_year: int) -> Calibration:
    """Estimate the outcome process and base-period state from an observed panel.

    Parameters
    ----------
    history : str, Path or OutcomeData
        The history CSV (``area,region,period,value``, positive values), or its
        parsed form (:func:`lobsim.model.areas.read_outcome`).
    areas : str, Path or AreaTable
        The areas table the history is observed on.
    periods_per_year : int
        12 for monthly data, 4 quarterly, 1 yearly.

    Returns
    -------
    Calibration
        Per-year parameters and the state the engine simulates forward from.

    Raises
    ------
    ConfigError
        If the panel is too short (fewer than 8 periods), a region has fewer
        than two areas, or there is a single region; or if a REML search does
        not converge (never seen on the demo, Monte Carlo or real panels).

    Notes
    -----
    See the module docstring for the method and its convergence: the
    estimates are the REML optimum to a Newton step of ``1e-10`` (in ``phi``
    per period and ``var / var0``), the same to about ten digits on any CPU.
    Runs in about 0.2 s for 215 areas over 34 months.
    """
    with threadpool_limits(1, "blas"):
        panel = _panel(history, areas, periods_per_year)
        t = panel.y.shape[1]
        try:
            phi_u, var_u, var_e = _fit_within(panel.dev, len(panel.y) - len(panel.region_ids),
                                              panel.ppy)
            k_w = var_u * ar1_gamma(phi_u, t) + var_e * np.eye(t)
            between = _fit_between(panel.means, panel.sizes, k_w)
        except _NoConvergence as exc:
            raise ConfigError(str(exc), source=panel.source) from None
        return _at_parameters(panel, _Parameters(phi_u, var_u, var_e, *between))


def calibrate_at(history: str | Path | OutcomeData, areas: str | Path | AreaTable,
                 periods_per_year: int, per_period: Mapping[str, float],
                 measurement_sigma: float) -> Calibration:
    """The calibration at given process parameters instead of their REML estimates.

    Runs steps 3 and 4 of the module docstring (trend spread, base-period
    state) and evaluates both REML log likelihoods at the parameters given:
    what :func:`calibrate` does after its searches. ``calibrate_at(h, a, n,
    cal.per_period, cal.process.measurement_sigma)`` reproduces ``cal =
    calibrate(h, a, n)``.

    Parameters
    ----------
    history, areas, periods_per_year
        As for :func:`calibrate`.
    per_period : mapping of str to float
        ``national_phi``, ``national_sigma``, ``regional_phi``,
        ``regional_sigma``, ``area_phi``, ``area_sigma`` per period, as
        :attr:`Calibration.per_period` and a universe's
        ``[calibration.per_period]`` hold them.
    measurement_sigma : float
        The sd of one observation's log noise.

    Returns
    -------
    Calibration
    """
    try:
        p = {k: float(per_period[k]) for k in _PER_PERIOD_KEYS}
    except KeyError as exc:
        raise ValueError(f"per_period lacks {exc.args[0]!r}: give {', '.join(_PER_PERIOD_KEYS)}"
                         ) from None
    bad = [k for k in _PER_PERIOD_KEYS if not (0.0 <= p[k] <= (1.0 if "phi" in k else math.inf))]
    if bad or not measurement_sigma >= 0.0:
        what = f"per_period[{bad[0]!r}] = {p[bad[0]]!r}" if bad else \
            f"measurement_sigma = {measurement_sigma!r}"
        raise ValueError(f"{what}: a phi must lie in [0, 1] and a sigma be >= 0")
    params = _Parameters(p["area_phi"], p["area_sigma"] ** 2, float(measurement_sigma) ** 2,
                         p["national_phi"], p["national_sigma"] ** 2,
                         p["regional_phi"], p["regional_sigma"] ** 2)
    with threadpool_limits(1, "blas"):
        return _at_parameters(_panel(history, areas, periods_per_year), params)


_PER_PERIOD_KEYS = ("national_phi", "national_sigma", "regional_phi", "regional_sigma",
                    "area_phi", "area_sigma")


def _at_parameters(panel: _Panel, p: _Parameters) -> Calibration:
    """Steps 3 and 4, and the log likelihoods of steps 1 and 2, at ``p``."""
    y, rindex, sizes, dev, ppy = panel.y, panel.rindex, panel.sizes, panel.dev, panel.ppy
    n_a, t = y.shape
    n_r = len(panel.region_ids)
    reps = n_a - n_r
    x2 = level_and_trend(t)
    tau = x2[:, 1]  # periods; 0 at the base period
    var_u, var_e, var_f, var_g = p.var_u, p.var_e, p.var_f, p.var_g
    gam_u = ar1_gamma(p.phi_u, t)
    k_w = var_u * gam_u + var_e * np.eye(t)
    within = within_objective(dev, reps)
    between = between_objective(panel.means, sizes, k_w)
    x_w, x_b = np.array([p.phi_u, var_u, var_e]), np.array([p.phi_f, var_f, p.phi_g, var_g])
    ll_w, ll_b = -within(x_w)[0], -between(x_b)[0]
    se_w = reml_standard_errors(within, x_w, _WITHIN_VARIANCES, within_unit(dev, reps),
                                 ppy, _WITHIN_COMPONENTS)
    se_b = reml_standard_errors(between, x_b, _BETWEEN_VARIANCES, between_unit(panel.means),
                                 ppy, _BETWEEN_COMPONENTS)

    # 3. within-region trend spread, by moments on the GLS trends of the deviations
    k_inv_x = np.linalg.solve(k_w, x2)
    cov_b = np.linalg.inv(x2.T @ k_inv_x)
    slopes = dev @ (k_inv_x @ cov_b)[:, 1]
    tau_a2 = max(0.0, float(slopes @ slopes) / reps - float(cov_b[1, 1]))
    se_sd_area = moment_sd_se(tau_a2, float(cov_b[1, 1]), reps)
    # per-area variance relative to the model (E = 1 under the pooled model)
    q2 = complement(x2)
    proj = q2 @ np.linalg.solve(q2.T @ k_w @ q2, q2.T)
    quad = np.einsum("at,ts,as->a", dev, proj, dev)
    vol = quad / ((1.0 - 1.0 / sizes[rindex]) * (t - 2))
    size = y.mean(axis=1)
    # with every area at the same mean level there is no slope on size to fit: the
    # data cannot contradict the pooled model's homogeneity (slope 0)
    spread = float(np.ptp(size)) > 1e-9 * (1.0 + float(np.abs(size).max()))
    vol_slope = (float(np.polyfit(size, np.log(np.maximum(vol, 1e-300)), 1)[0]) if spread
                 else 0.0)

    gam_f, gam_g = ar1_gamma(p.phi_f, t), ar1_gamma(p.phi_g, t)
    sig_f, sig_g = var_f * gam_f, var_g * gam_g
    noise_w = k_w + tau_a2 * np.outer(tau, tau)
    v0 = (np.kron(np.ones((n_r, n_r)), sig_f) + np.kron(np.eye(n_r), sig_g)
          + np.kron(np.diag(1.0 / sizes), noise_w))
    # 3. regional trend spread, by moments on the GLS trends of the regional means
    xr = np.kron(np.eye(n_r), x2)
    v0_inv_x = np.linalg.solve(v0, xr)
    cov_br = np.linalg.inv(xr.T @ v0_inv_x)
    br = (cov_br @ (v0_inv_x.T @ panel.means.ravel()))[1::2]
    cov_slopes = cov_br[1::2, 1::2]
    centre = np.eye(n_r) - 1.0 / n_r
    tau_r2 = max(0.0, (float(br @ centre @ br) - float(np.trace(centre @ cov_slopes)))
                 / (n_r - 1))
    sampling_r = float(np.trace(centre @ cov_slopes)) / (n_r - 1)
    se_sd_region = moment_sd_se(tau_r2, sampling_r, n_r - 1)

    # 4. BLUP of the state, trends as random effects
    vf = v0 + np.kron(np.eye(n_r), tau_r2 * np.outer(tau, tau))
    xf = np.column_stack([np.kron(np.eye(n_r), np.ones((t, 1))), np.tile(tau, n_r)])
    qf = complement(xf)
    m = panel.means.ravel()
    r = (qf @ np.linalg.solve(qf.T @ vf @ qf, qf.T @ m)).reshape(n_r, t)
    f_hat = sig_f @ r.sum(axis=0)
    g_hat = r @ sig_g  # (R, T); sig_g is symmetric
    nu_hat = tau_r2 * (r @ tau)
    fixed = m - vf @ r.ravel()
    mu_bar = float(np.linalg.lstsq(xf, fixed, rcond=None)[0][-1])
    # its GLS standard error, given the variance parameters
    se_mu_bar = math.sqrt(float(np.linalg.inv(xf.T @ np.linalg.solve(vf, xf))[-1, -1]))
    u_bar0 = (r @ (var_u * gam_u[:, -1])) / sizes
    e_bar0 = var_e * r[:, -1] / sizes
    om_bar = tau_a2 * (r @ tau) / sizes

    q1 = complement(np.ones((t, 1)))
    kf = k_w + tau_a2 * np.outer(tau, tau)
    rw = dev @ (q1 @ np.linalg.solve(q1.T @ kf @ q1, q1.T))
    omega = tau_a2 * (rw @ tau)
    u0 = var_u * (rw @ gam_u[:, -1]) + u_bar0[rindex]
    e0 = var_e * rw[:, -1] + e_bar0[rindex]
    trend = ppy * (mu_bar + nu_hat[rindex] + om_bar[rindex] + omega)
    log_level = y[:, -1] - e0 + 0.5 * var_e

    per_period = {
        "national_phi": p.phi_f, "national_sigma": math.sqrt(var_f),
        "regional_phi": p.phi_g, "regional_sigma": math.sqrt(var_g),
        "area_phi": p.phi_u, "area_sigma": math.sqrt(var_u),
    }
    yearly = {}
    for name in ("national", "regional", "area"):
        phi_y, sig_y = ar1_year_parameters(per_period[f"{name}_phi"],
                                           per_period[f"{name}_sigma"], ppy)
        yearly[f"{name}_phi"], yearly[f"{name}_sigma"] = phi_y, sig_y
    process = OutcomeProcess(**yearly, measurement_sigma=math.sqrt(var_e),
                             national_loading=1.0, regional_loading=1.0)
    trend_se = {"trend_mean": ppy * se_mu_bar, "trend_sd_region": ppy * se_sd_region,
                "trend_sd_area": ppy * se_sd_area}
    on_boundary = [*se_w[2], *se_b[2]] + [k for k in ("trend_sd_region", "trend_sd_area")
                                          if math.isnan(trend_se[k])]
    se_year = {k: {**se_w[0], **se_b[0], **trend_se}[k] for k in SE_KEYS}
    se_period = {k: {**se_w[1], **se_b[1]}[k] for k in _PER_PERIOD_KEYS}
    return Calibration(
        process=process, per_period=per_period, periods_per_year=ppy,
        areas=tuple(panel.table.ids), regions=tuple(panel.table.regions),
        periods=tuple(panel.data.periods),
        trend=trend, log_level=log_level, area_state=u0,
        regional_state={reg: float(g_hat[i, -1]) for i, reg in enumerate(panel.region_ids)},
        national_state=float(f_hat[-1]),
        trend_mean=ppy * mu_bar, trend_sd_region=ppy * math.sqrt(tau_r2),
        trend_sd_area=ppy * math.sqrt(tau_a2),
        volatility_scale=vol, volatility_slope=vol_slope,
        loglik_within=ll_w, loglik_between=ll_b,
        standard_errors=se_year, standard_errors_per_period=se_period,
        on_boundary=tuple(k for k in SE_KEYS if k in on_boundary),
    )



class RemlStep(NamedTuple):
    """One REML step at an estimate: the arguments of
    :func:`lobsim.validation.standard_errors.search_covariance`."""

    nll: Objective
    params: np.ndarray  # per period: (phi_U, var_U, var_e) or (phi_F, var_F, phi_G, var_G)
    is_var: np.ndarray
    var0: float
    components: tuple[tuple[str, int | None, int], ...]


def reml_steps(history: str | Path | OutcomeData, areas: str | Path | AreaTable,
               periods_per_year: int, cal: Calibration) -> tuple[RemlStep, RemlStep]:
    """Both REML steps of the panel at ``cal``'s estimates (step 2 given step 1's ``K_W``)."""
    panel, p = _panel(history, areas, periods_per_year), cal.per_period
    x_w = np.array([p["area_phi"], p["area_sigma"] ** 2, cal.process.measurement_sigma ** 2])
    x_b = np.array([p["national_phi"], p["national_sigma"] ** 2, p["regional_phi"],
                    p["regional_sigma"] ** 2])
    k_w = x_w[1] * ar1_gamma(float(x_w[0]), panel.y.shape[1]) + x_w[2] * np.eye(panel.y.shape[1])
    reps = len(panel.y) - len(panel.region_ids)
    return (RemlStep(within_objective(panel.dev, reps), x_w, _WITHIN_VARIANCES,
                     within_unit(panel.dev, reps), _WITHIN_COMPONENTS),
            RemlStep(between_objective(panel.means, panel.sizes, k_w), x_b, _BETWEEN_VARIANCES,
                     between_unit(panel.means), _BETWEEN_COMPONENTS))
