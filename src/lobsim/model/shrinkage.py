"""The shrinkage payment basis fixed at signing (docs/model.md section 6.12).

A bond on ``basis = "shrunk"`` pays on ``k x measured + (1 - k) x prior``
instead of the measured units. Everything here is derived from the world
before any scenario is drawn (closed forms and a deterministic quadrature, no
Monte Carlo):

- ``prior`` (per measurement): the mean of the units under the evidence base,
  ``target x success_mean x E[delivered share]``; the share is the ramp and
  relapse standing at the measurement, cut by the provider's exponential
  failure (no failure: the share at full delivery);
- ``tau``: the sd of the units at maturity under the same model, from the Beta
  success (``success_sd``) and the failure time, independent of each other:
  ``tau^2 = target^2 (E[theta^2] E[F^2] - E[theta]^2 E[F]^2)``;
- ``sigma``: the sd of the control group's prediction error at maturity (the
  ``prediction_error`` output, whose sd is also the denominator of the
  signal-to-noise ratio), exactly from the joint normal law of the log states
  of the treated area and the donors: national and regional factors at the
  date, each series' own states and the measurement noise. 0 for a verified
  bond;
- ``k = tau^2 / (tau^2 + sigma^2)`` (1 when both are 0: nothing to shrink).

``prior_units`` and ``shrinkage`` in the config fix the prior and ``k`` by
hand; tau and sigma are still reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lobsim.kernels.contract import KIND_COUNT, Bonds, Factors, Measurements, Programme, Series
from lobsim.kernels.engine import effect_fraction
from lobsim.model.config import Config

#: trapezoid nodes over the delivery horizon for the failure-time expectations
QUADRATURE_NODES = 4001


@dataclass(frozen=True, kw_only=True)
class ShrinkTerms:
    """The shrinkage terms of one bond on the shrunk basis, fixed at signing."""

    #: (M,) prior mean of the units at each measurement (the last at maturity)
    prior: np.ndarray
    #: prior sd of the units at maturity
    tau: float
    #: sd of the control group's prediction error at maturity
    sigma: float
    #: shrinkage factor paid on: ``k x measured + (1 - k) x prior``
    k: float
    #: prior or k fixed in the config rather than computed
    prior_fixed: bool
    k_fixed: bool


def shrinkage_factor(tau: float, sigma: float) -> float:
    """``k = tau^2 / (tau^2 + sigma^2)``; 1 when both are 0 (an exact measurement)."""
    total = tau * tau + sigma * sigma
    return 1.0 if total == 0.0 else tau * tau / total


def delivered_moments(programme: Programme, bonds: Bonds, measurements: Measurements,
                      b: int, i: int) -> tuple[float, float]:
    """``E[F]`` and ``E[F^2]`` of the share ``F`` of ``target x theta`` standing at
    measurement ``i`` of bond ``b``, over the provider's failure time (the
    kernel's rule: full delivery if it fails after the bond's horizon)."""
    p = programme.bond_provider[b]
    hazard = float(programme.hazard[p])
    full = float(measurements.full_share[b, i])
    if hazard <= 0.0:
        return full, full * full
    # stop = failure - start = (origin - start) + Exponential(hazard)
    s0 = float(programme.origin[p] - bonds.start[b])
    big_h = float(bonds.horizon[b])
    p_full = math.exp(-hazard * (big_h - s0))
    lo = max(s0, 0.0)  # no delivery before the start
    if lo >= big_h:
        return full * p_full, full * full * p_full
    s = np.linspace(lo, big_h, QUADRATURE_NODES)
    f = np.array([effect_fraction(x, measurements.horizon[b, i], bonds.ramp_time[b],
                                  bonds.ramp_share[b], measurements.relapse[b, i]) for x in s])
    dens = hazard * np.exp(-hazard * (s - s0))
    return (float(np.trapezoid(f * dens, s)) + full * p_full,
            float(np.trapezoid(f * f * dens, s)) + full * full * p_full)


def _factor_moments(factors: Factors) -> tuple[np.ndarray, np.ndarray]:
    """(F, D) mean and variance of every factor at every date (exact AR(1) steps)."""
    n_f, n_d = factors.phik.shape
    mean = np.empty((n_f, n_d))
    var = np.empty((n_f, n_d))
    m, v = factors.state0.astype(float), np.zeros(n_f)
    for d in range(n_d):
        m = factors.phik[:, d] * m
        v = factors.phik[:, d] ** 2 * v + factors.sdk[:, d] ** 2
        mean[:, d], var[:, d] = m, v
    return mean, var


def _log_state(series: Series, fmean: np.ndarray,
               pos: int) -> tuple[float, np.ndarray, float, int]:
    """Mean, (F,) factor loadings, own variance and global date of the log state at
    flat position ``pos`` of the kernel's (series x date) buffer."""
    s, jd = divmod(int(pos), series.dates.shape[1])
    d = int(series.dates[s, jd])
    load = np.zeros(fmean.shape[0])
    load[series.national[s]] += series.beta[s]
    load[series.regional[s]] += series.gamma[s]
    own = float(np.sum(series.chol[s, jd, : jd + 1] ** 2))
    return float(series.const[s, jd] + load @ fmean[:, d]), load, own, d


def error_sd(factors: Factors, series: Series, bonds: Bonds, measurements: Measurements,
             b: int) -> float:
    """The sd of bond ``b``'s prediction error at maturity (its last measurement).

    ``u = log yhat`` and ``v = log y_noisy`` are jointly normal; a count bond's
    error is ``e^u - e^v``, a percent bond's ``100 (1 - e^(v - u))``, whose
    variances are the lognormal closed forms.
    """
    if bonds.verified[b]:
        return 0.0
    fmean, fvar = _factor_moments(factors)
    i = int(bonds.nmeas[b]) - 1
    mu_v, load_v, own_v, d = _log_state(series, fmean, measurements.state[b, i])
    sig = float(series.noise_sd[bonds.series[b]])
    mu_v -= 0.5 * sig * sig
    own_v += sig * sig
    mu_u, load_u, own_u = math.log(bonds.base_level[b]), np.zeros(fmean.shape[0]), 0.0
    for k in range(int(bonds.ndonors[b])):
        w = float(bonds.weight[b, k])
        mk, lk, ok, _ = _log_state(series, fmean, measurements.donor_state[b, i, k])
        mu_u += w * mk
        load_u += w * lk
        own_u += w * w * ok
    fv = fvar[:, d]  # factors are independent of each other and of the own states
    var_u = float(load_u**2 @ fv) + own_u
    var_v = float(load_v**2 @ fv) + own_v
    cov = float((load_u * load_v) @ fv)
    if bonds.kind[b] == KIND_COUNT:
        ea = math.exp(2.0 * mu_u + var_u) * math.expm1(var_u)
        eb = math.exp(2.0 * mu_v + var_v) * math.expm1(var_v)
        eab = math.exp(mu_u + mu_v + 0.5 * (var_u + var_v)) * math.expm1(cov)
        return math.sqrt(max(ea + eb - 2.0 * eab, 0.0))
    mu_w, var_w = mu_v - mu_u, var_u + var_v - 2.0 * cov
    return 100.0 * math.sqrt(max(math.exp(2.0 * mu_w + var_w) * math.expm1(var_w), 0.0))


def at_signing(cfg: Config, factors: Factors, series: Series, programme: Programme,
               bonds: Bonds, measurements: Measurements) -> tuple[ShrinkTerms | None, ...]:
    """The shrinkage terms of every bond (``None`` for a bond on the point basis)."""
    terms: list[ShrinkTerms | None] = []
    for b, bond in enumerate(cfg.bonds):
        pay = bond.payment
        if pay.basis != "shrunk":
            terms.append(None)
            continue
        it = cfg.intervention(bond.intervention)
        nm = int(bonds.nmeas[b])
        moments = [delivered_moments(programme, bonds, measurements, b, i) for i in range(nm)]
        target = float(bonds.target[b])
        prior = np.array([target * it.success_mean * m1 for m1, _ in moments])
        m1, m2 = moments[-1]
        e_theta2 = it.success_sd**2 + it.success_mean**2
        tau = target * math.sqrt(max(e_theta2 * m2 - (it.success_mean * m1) ** 2, 0.0))
        sigma = error_sd(factors, series, bonds, measurements, b)
        if pay.prior_units is not None:
            prior = np.array([pay.prior_units])
        k = shrinkage_factor(tau, sigma) if pay.shrinkage is None else pay.shrinkage
        terms.append(ShrinkTerms(prior=prior, tau=tau, sigma=sigma, k=k,
                                 prior_fixed=pay.prior_units is not None,
                                 k_fixed=pay.shrinkage is not None))
    return tuple(terms)


def with_shrinkage(bonds: Bonds, measurements: Measurements,
                   terms: tuple[ShrinkTerms | None, ...]) -> tuple[Bonds, Measurements]:
    """The kernel's groups with the shrunk bonds' flag, ``k`` and priors filled in."""
    shrunk = np.array([t is not None for t in terms], np.bool_)
    k = np.array([1.0 if t is None else t.k for t in terms])
    prior = np.zeros(measurements.time.shape)
    for b, t in enumerate(terms):
        if t is not None:
            prior[b, : t.prior.size] = t.prior
    return (bonds._replace(shrunk=shrunk, shrink_k=k), measurements._replace(prior=prior))
