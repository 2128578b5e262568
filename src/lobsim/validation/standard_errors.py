"""Standard errors of the calibration's estimates, and what an estimate on its boundary means.

:func:`reml_standard_errors` inverts the observed information (the Hessian
of a REML step's negative log likelihood at its optimum, in the search units
of :mod:`lobsim.validation._reml`) and carries it to per-period and per-year
units by the delta method; :func:`moment_sd_se` is the sampling error of a
trend sd estimated by moments. An estimate at a bound of its parameter space
has no such standard error (NaN), and :func:`boundary_message` says in one
line what it means for the simulation (docs/real_data.md, Standard errors).

Of :func:`lobsim.validation.calibrate.calibrate`: The six AR(1)
parameters and the noise sd come from the inverse of each REML likelihood's
observed information (the Hessian of the negative log likelihood at the
optimum, central differences of its exact gradient in the search units),
carried to the reported units by the delta method: step 1's likelihood for
the area process and the noise, step 2's for the national and regional
ones (conditional on step 1's K_W, which its ``N - R`` replicates determine
far better). The trend mean's is its GLS standard error; the trend sds'
that of their moment estimators, treating the squared GLS trends as
chi-square with ``N - R`` (areas) and ``R - 1`` (regions) degrees of
freedom. The volatility slope is a descriptive regression, not a likelihood
estimate, and has none. An estimate on the boundary of its parameter space
(a phi at 0 or 1, a sigma at 0, within :data:`~lobsim.validation._reml.BOUNDARY_TOL`
in search units) has no Hessian standard error: it is NaN, the estimate is
named in :attr:`Calibration.on_boundary`, and the other parameters of its
likelihood are given conditionally on it; a phi whose sigma is 0 is not
identified and its standard error is NaN too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from lobsim.validation._reml import BOUNDARY_TOL, Objective, observed_information, search_units

if TYPE_CHECKING:
    from lobsim.validation.calibrate import Calibration

#: Largest sigma per period the REML search allows (its bound in search units).
SIGMA_MAX = 5.0


def search_covariance(nll: Objective, params: np.ndarray, is_var: np.ndarray, var0: float,
                      components: tuple[tuple[str, int | None, int], ...]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampling covariance of one REML step's estimates in its search units.

    ``params`` and ``components`` as for :func:`reml_standard_errors`.
    Returns the estimates in search units (``phi``, ``var / var0``), the
    inverse of the observed information over the free coordinates (zero rows
    and columns for the coordinates held: at a bound, or a phi whose sigma is
    0; NaN everywhere if the Hessian is not positive definite) and which
    coordinates are at a bound.
    """
    x = np.where(is_var, params / var0, params)
    lower, upper = np.zeros(x.size), np.where(is_var, SIGMA_MAX**2 / var0, 1.0)
    at_bound = (x <= BOUNDARY_TOL) | (~is_var & (x >= 1.0 - BOUNDARY_TOL))
    free = ~at_bound
    for _, i, j in components:
        if i is not None and at_bound[j]:
            free[i] = False  # no curvature along a phi whose sigma is 0
    # coordinates held (at a bound, or not identified) add no variance to the others:
    # the free ones' covariance is conditional on them
    cov = np.zeros((x.size, x.size))
    if free.any():
        hess = observed_information(search_units(nll, is_var, var0), x, free, lower, upper)
        if np.linalg.eigvalsh(hess).min() > 0.0:
            cov[np.ix_(free, free)] = np.linalg.inv(hess)
        else:  # not a maximum: no standard error means anything
            cov[:] = np.nan
    return x, cov, at_bound


def reml_standard_errors(nll: Objective, params: np.ndarray, is_var: np.ndarray,
                         var0: float, ppy: int, components: tuple[tuple[str, int | None, int], ...]
                         ) -> tuple[dict[str, float], dict[str, float], list[str]]:
    """Per-year and per-period standard errors of one REML step's estimates.

    ``params`` are per period (phi, var); ``components`` name each (phi
    index or None, variance index): ``("area", 0, 1)`` gives ``area_phi`` and
    ``area_sigma``, ``("measurement", None, 2)`` ``measurement_sigma``.
    Returns the two dicts and the estimates on their boundary.
    """
    x, cov, at_bound = search_covariance(nll, params, is_var, var0, components)
    year: dict[str, float] = {}
    period: dict[str, float] = {}
    boundary: list[str] = []
    for name, i, j in components:
        var = float(params[j])
        d_var = var0 / (2.0 * math.sqrt(var)) if var > 0.0 else math.nan  # d sigma / d x_j
        sigma_key = f"{name}_sigma"
        period[sigma_key] = year[sigma_key] = d_var * math.sqrt(cov[j, j])
        if at_bound[j]:
            boundary.append(sigma_key)
            period[sigma_key] = year[sigma_key] = math.nan
        if i is None:
            continue
        phi = float(params[i])
        phi_key = f"{name}_phi"
        # sigma_year^2 = var h(phi), h = sum_{k<n} phi^(2k) (ar1_year_parameters)
        k = np.arange(ppy, dtype=float)
        h = float(np.sum(phi ** (2 * k)))
        dh = float(np.sum(2 * k[1:] * phi ** (2 * k[1:] - 1)))
        jac_phi = np.zeros(x.size)
        jac_phi[i] = ppy * phi ** (ppy - 1)
        jac_sigma = np.zeros(x.size)
        jac_sigma[i] = math.sqrt(var) * dh / (2.0 * math.sqrt(h))
        jac_sigma[j] = math.sqrt(h) * d_var
        period[phi_key] = math.sqrt(cov[i, i])
        year[phi_key] = math.sqrt(float(jac_phi @ cov @ jac_phi))
        if not at_bound[j]:
            year[sigma_key] = math.sqrt(float(jac_sigma @ cov @ jac_sigma))
        if at_bound[i] and not at_bound[j]:  # with sigma 0, phi is not identified instead
            boundary.append(phi_key)
        if at_bound[i] or at_bound[j]:
            period[phi_key] = year[phi_key] = math.nan
    return year, period, boundary


#: The estimates with a standard error, in the order they are reported.
SE_KEYS = ("national_phi", "national_sigma", "regional_phi", "regional_sigma", "area_phi",
            "area_sigma", "measurement_sigma", "trend_mean", "trend_sd_region",
            "trend_sd_area")


def moment_sd_se(excess: float, sampling: float, dof: int) -> float:
    """Standard error of ``sqrt(excess)``, a trend sd by moments; NaN on its boundary.

    ``excess = mean(b^2) - sampling`` over ``dof`` squared GLS trends ``b``
    whose variance is ``excess + sampling``: as a chi-square, the mean has the
    variance ``2 (excess + sampling)^2 / dof``; the delta method takes it to
    the sd. An excess within ``BOUNDARY_TOL`` of the sampling variance of 0
    (truncated there) is on its boundary.
    """
    if excess <= BOUNDARY_TOL * sampling:
        return math.nan
    return math.sqrt(2.0 / dof) * (excess + sampling) / (2.0 * math.sqrt(excess))


_PERIOD_NAMES = {12: "month", 4: "quarter", 1: "year"}
#: How output names each estimate with a standard error.
ESTIMATE_LABELS = {
    "national_phi": "national phi/year", "national_sigma": "national sigma/year",
    "regional_phi": "regional phi/year", "regional_sigma": "regional sigma/year",
    "area_phi": "area phi/year", "area_sigma": "area sigma/year",
    "measurement_sigma": "noise sigma", "trend_mean": "trend mean/year",
    "trend_sd_region": "trend sd/year between regions",
    "trend_sd_area": "trend sd/year within regions",
}


def boundary_message(cal: Calibration, key: str) -> str:
    """One line on an estimate on its boundary: what it means and what the engine does.

    ``key`` is one of :attr:`Calibration.on_boundary`.
    """
    period = _PERIOD_NAMES.get(cal.periods_per_year, "period")
    history = f"the {len(cal.periods)}-{period} history"
    value = getattr(cal, key) if key.startswith("trend") else getattr(cal.process, key)
    what = f"{ESTIMATE_LABELS[key]} {value:.4f} is on its boundary"
    undefined = "its standard error is undefined"
    component = key.split("_")[0]
    if key.endswith("_phi"):
        if cal.per_period[key] >= 0.5:
            return (f"{what} (a random walk within {history}): {undefined} and the "
                    "simulation treats it as a unit root")
        return (f"{what} (no persistence from one period to the next within {history}): "
                f"{undefined} and the simulation treats the {component} component as "
                "white noise")
    if key == "measurement_sigma":
        return (f"{what} (no measurement noise told apart within {history}): {undefined} "
                "and the simulation measures without noise")
    if key.endswith("_sigma"):
        return (f"{what} (no {component} variation within {history}): {undefined}, its "
                "phi is not identified, and the simulation leaves the component out")
    if key == "trend_sd_region":
        return (f"{what} (no spread of regional trends beyond their sampling error): "
                f"{undefined} and every region's predicted trend is the overall mean")
    if key == "trend_sd_area":
        return (f"{what} (no spread of area trends beyond their sampling error): "
                f"{undefined} and every area's predicted trend is its region's")
    raise ValueError(f"no boundary for {key!r}: use one of {', '.join(ESTIMATE_LABELS)}")
