r"""The algebra of the outcome process's AR(1) components (docs/model.md section 3).

The national, regional and area-specific components F, G and U of an area's
log outcome are each an AR(1) ``S[t+1] = phi S[t] + sigma z`` with ``z``
standard normal, ``phi`` in [0, 1] (1: a random walk) and ``sigma >= 0``,
both per year in a config. Everything the package needs of that process is
here, in one place:

- its parameters at another period length, exactly (:func:`ar1_period_parameters`
  and its inverse :func:`ar1_year_parameters`);
- its moments over ``k`` steps given the start, ``E[S_k | S_0] = phi^k S_0``
  (:func:`conditional_mean`), ``Var[S_k | S_0] = sigma^2 (1 - phi^(2k)) /
  (1 - phi^2)`` (:func:`kstep_variance` per unit innovation variance; ``k``
  for a random walk) and ``Cov[S_j, S_k | S_0] = phi^(k-j) Var[S_j | S_0]``
  for ``j <= k`` (:func:`kstep_covariance`);
- its stationary sd ``sigma / sqrt(1 - phi^2)`` (:func:`stationary_sd`);
- paths stepped period by period (:func:`simulate_ar1`).

``k`` may be fractional (years between two dates): the k-step transition of
the yearly process is what the engine applies between measurement dates.
"""

from __future__ import annotations

import math

import numpy as np

from lobsim.arraytypes import Float64Array


def _check(phi: float, sigma: float, periods_per_year: int, suffix: str) -> None:
    if not 0.0 <= phi <= 1.0:
        raise ValueError(f"phi{suffix} must lie in [0, 1], got {phi!r}")
    if sigma < 0.0:
        raise ValueError(f"sigma{suffix} must be >= 0, got {sigma!r}")
    if periods_per_year < 1:
        raise ValueError(f"periods_per_year must be >= 1, got {periods_per_year!r}")


def ar1_period_parameters(phi: float, sigma: float, periods_per_year: int) -> tuple[float, float]:
    """Convert per-year AR(1) parameters exactly to a shorter period.

    An AR(1) ``S[t+1] = phi_p S[t] + sigma_p z`` stepped ``n = periods_per_year``
    times has the same ``n``-step transition as the yearly process
    ``S[t+1] = phi S[t] + sigma z``.

    Parameters
    ----------
    phi : float
        Persistence per year, in [0, 1]; 1 is a random walk.
    sigma : float
        Shock standard deviation per year, >= 0.
    periods_per_year : int
        Periods per year (12 for months).

    Returns
    -------
    phi_p, sigma_p : float
        ``phi_p = phi ** (1 / n)`` and
        ``sigma_p = sigma sqrt((1 - phi ** (2 / n)) / (1 - phi ** 2))``
        (``sigma / sqrt(n)`` when ``phi = 1``, ``sigma`` when ``phi = 0``).

    Examples
    --------
    >>> phi_m, sigma_m = ar1_period_parameters(1.0, 0.12, 12)
    >>> phi_m, round(sigma_m ** 2 * 12, 12)
    (1.0, 0.0144)
    """
    _check(phi, sigma, periods_per_year, "")
    n = periods_per_year
    if phi == 1.0:
        return 1.0, sigma / math.sqrt(n)
    if phi == 0.0:
        return 0.0, sigma
    # (1 - phi^(2/n)) / (1 - phi^2) without cancellation as phi -> 1.
    log_phi = math.log(phi)
    ratio = math.expm1(2.0 * log_phi / n) / math.expm1(2.0 * log_phi)
    return phi ** (1.0 / n), sigma * math.sqrt(ratio)


def ar1_year_parameters(phi_p: float, sigma_p: float, periods_per_year: int) -> tuple[float, float]:
    """Convert per-period AR(1) parameters exactly to the year.

    The inverse of :func:`ar1_period_parameters`: ``n`` steps of
    ``S[t+1] = phi_p S[t] + sigma_p z`` are one step of the yearly process.

    Parameters
    ----------
    phi_p : float
        Persistence per period, in [0, 1].
    sigma_p : float
        Shock sd per period, >= 0.
    periods_per_year : int
        ``n``, periods per year.

    Returns
    -------
    phi, sigma : float
        ``phi = phi_p^n``, ``sigma^2 = sigma_p^2 (1 - phi_p^(2n)) / (1 - phi_p^2)``
        (``n sigma_p^2`` for a random walk, ``sigma_p^2`` when ``phi_p = 0``).
    """
    _check(phi_p, sigma_p, periods_per_year, "_p")
    n = periods_per_year
    if phi_p == 1.0:
        return 1.0, sigma_p * math.sqrt(n)
    if phi_p == 0.0:
        return 0.0, sigma_p
    log_phi = math.log(phi_p)
    # (1 - phi^(2n)) / (1 - phi^2) without cancellation as phi -> 1
    ratio = math.expm1(2.0 * n * log_phi) / math.expm1(2.0 * log_phi)
    return phi_p**n, sigma_p * math.sqrt(ratio)


def kstep_variance(phi: float, k: float) -> float:
    """Variance of ``S_k`` given ``S_0``, per unit innovation variance.

    Parameters
    ----------
    phi : float
        Persistence per step, in [0, 1].
    k : float
        Steps (may be fractional: years between two dates), >= 0.

    Returns
    -------
    float
        ``(1 - phi^(2k)) / (1 - phi^2)``, the sum of ``phi^(2j)`` over the
        ``k`` steps; ``k`` for a random walk (``phi = 1``).

    Notes
    -----
    The quotient loses digits as ``phi`` nears 1 (a relative error of about
    ``1e-16 / (1 - phi)``); it is kept in this form, not as a ratio of
    ``expm1``, because the engine's bundled results were computed with it.
    """
    if phi == 1.0:
        return k
    return (1.0 - phi ** (2.0 * k)) / (1.0 - phi * phi)


def conditional_mean(phi: float, k: float, start: float | Float64Array) -> float | Float64Array:
    """``E[S_k | S_0 = start] = phi^k start``: the zero-mean state decays at ``phi`` a step."""
    return phi**k * start


def kstep_covariance(phi: float, sigma: float, j: float, k: float) -> float:
    """``Cov[S_j, S_k | S_0]``: ``phi^|k - j| sigma^2 kstep_variance(phi, min(j, k))``.

    The later state is the earlier one decayed by ``phi^|k - j|`` plus shocks
    independent of it, so the two share the variance of the earlier one.
    """
    lo, hi = min(j, k), max(j, k)
    return phi ** (hi - lo) * sigma * sigma * kstep_variance(phi, lo)


def stationary_sd(phi: float, sigma: float) -> float:
    """Standard deviation of an AR(1)'s stationary distribution (0 for a random walk).

    Parameters
    ----------
    phi, sigma : float
        Persistence and shock sd, per year (or per period: the result is the same
        for exactly converted parameters).

    Returns
    -------
    float
        ``sigma / sqrt(1 - phi^2)``, the limit of ``sigma sqrt(kstep_variance(phi, k))``
        as ``k`` grows, or 0 when ``phi = 1`` (the walk starts at 0).
    """
    if phi >= 1.0:
        return 0.0
    return sigma / math.sqrt(1.0 - phi * phi)


def simulate_ar1(phi_p: float, sigma_p: float, start: Float64Array,
                 shocks: Float64Array) -> Float64Array:
    """Step AR(1) processes period by period.

    Parameters
    ----------
    phi_p, sigma_p : float
        Per-period persistence and shock sd (see :func:`ar1_period_parameters`).
    start : ndarray, shape (n,)
        The states before the first step.
    shocks : ndarray, shape (steps, n)
        Standard normal shocks, one row per step.

    Returns
    -------
    ndarray, shape (steps, n)
        The states after each step: ``S[k] = phi_p S[k-1] + sigma_p shocks[k]``.
    """
    out = np.empty(shocks.shape, dtype=np.float64)
    state = np.array(start, dtype=np.float64)
    for k in range(shocks.shape[0]):
        state = phi_p * state + sigma_p * shocks[k]
        out[k] = state
    return out
