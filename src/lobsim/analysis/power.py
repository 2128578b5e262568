"""Evaluation power: the minimum detectable effect of a bond's measurement (docs/model.md 6.11).

A bond measures units as the true effect plus the control group's prediction
error ``err`` (section 4.5). A one-sided test at significance ``SIGNIFICANCE``
rejects "no effect" when the measured units exceed ``c = q_{1 - SIGNIFICANCE}(err)``;
an effect ``d`` is detected with probability ``P(d + err >= c)``, so the
smallest effect detected with probability ``POWER`` is

    MDE = q_{1 - SIGNIFICANCE}(err) - q_{1 - POWER}(err)    (q95 - q20)

in the bond's outcome units (no normality assumed: the quantiles are those of
the simulated or observed error). For a normal error of sd ``s`` it is
``(z_0.95 + z_0.80) s = NORMAL_FACTOR s``. A verified bond (no control
group) has no error and an MDE of 0.

Every output that prints an MDE (the summary, the streaming summary, the
report's decision table, the backtest's placebo cross-check) computes it here,
from quantiles of :mod:`lobsim.analysis.stats`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lobsim.analysis import stats

#: One-sided significance level of the test "no effect".
SIGNIFICANCE = 0.05
#: Probability of detecting the minimum detectable effect.
POWER = 0.80
#: The quantile levels of the error the MDE reads: the critical value's and the power's.
LEVELS = (1.0 - SIGNIFICANCE, 1.0 - POWER)
#: ``z_0.95 + z_0.80``: scipy.stats.norm.ppf(0.95) + scipy.stats.norm.ppf(0.80).
NORMAL_FACTOR = 1.6448536269514722 + 0.8416212335729143


def from_quantiles(critical: Any, power_quantile: Any) -> np.ndarray:
    """MDE from the error's ``LEVELS`` quantiles (``q95``, ``q20``), elementwise."""
    return np.asarray(critical, float) - np.asarray(power_quantile, float)


def of_atoms(a: stats.Atoms) -> float:
    """MDE of one error sample given by its atoms (:class:`lobsim.analysis.stats.Atoms`)."""
    return float(from_quantiles(stats.quantile(a, LEVELS[0]), stats.quantile(a, LEVELS[1])))


def minimum_detectable_effect(err: Any, w: np.ndarray | None = None,
                              dim: str = "scenario") -> np.ndarray:
    """MDE of every column of ``err`` (scenarios along ``dim``), with importance weights ``w``."""
    q, _ = stats.quantiles(err, LEVELS, w, dim)
    return from_quantiles(q[0], q[1])


def normal(sd: Any) -> np.ndarray:
    """MDE of a normal error of standard deviation ``sd``: ``NORMAL_FACTOR sd``."""
    return NORMAL_FACTOR * np.asarray(sd, float)


def share(mde: Any, target: Any) -> np.ndarray:
    """MDE as a share of the target (``inf`` for a zero target with a positive MDE)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(mde, float) / np.asarray(target, float)


def signal_to_noise(target: Any, noise_sd: Any) -> np.ndarray:
    """Signal-to-noise (docs/model.md section 6.10): target units over the sd of the
    prediction error (what is measured with no true effect), elementwise; ``inf``
    for a bond with no noise (verified outcomes). The one definition: bonds,
    pooled baskets and the streaming summary all use it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(target, float) / np.asarray(noise_sd, float)


#: Below this signal-to-noise a bond's payment is mostly measurement noise (section 6.10).
NOISE_DOMINATED = 1.0


def noise_warning(s: Any) -> str | None:
    """One line naming the bonds whose signal-to-noise is below 1, or None.

    Read from a summary (``signal_to_noise`` per bond): those bonds pay on the
    comparison's prediction error more than on the programme (docs/model.md
    section 6.10), which a run should say rather than print a default rate
    without comment."""
    if "signal_to_noise" not in s:
        return None
    snr = s.signal_to_noise.values
    low = [(str(b), float(x)) for b, x in zip(s.bond.values, snr, strict=True)
           if x < NOISE_DOMINATED]
    if not low:
        return None
    shown = ", ".join(f"{b} ({x:.2f})" for b, x in low[:6])
    more = f" and {len(low) - 6} more" if len(low) > 6 else ""
    return (f"{len(low)} of {snr.size} bonds have signal-to-noise below 1, so their "
            f"payments are mostly measurement noise: {shown}{more} "
            "(docs/model.md section 6.10)")
