"""Internal rates of return of cash flows: Newton's method inside a bisection bracket.

Used by the engine (bond and basket IRRs), the waterfall (tranche IRRs) and
the after-tax returns; jitted, ``nogil``, importing nothing of lobsim.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def solve_irr(times, flows, n, guess):
    """Rate r with sum_k flows[k] (1 + r)^-times[k] = 0; -1 if nothing comes back.

    ``times`` are years from the first flow. Newton's method in x = log(1 + r)
    from ``guess``, inside a bisection bracket (the principals come first, the
    payments later, so the discounted value falls as x rises). For x < 0 the
    sum is scaled by exp(x t_max), which keeps its sign and avoids overflow.
    """
    positive = 0.0
    t_max = 0.0
    for k in range(n):
        if flows[k] > 0.0:
            positive += flows[k]
        t_max = max(t_max, times[k])
    if positive <= 0.0:
        return -1.0
    lo = -40.0 / max(t_max, 1.0)
    hi = 20.0
    x = min(max(guess, lo), hi)
    for _ in range(300):
        tref = t_max if x < 0.0 else 0.0
        f = 0.0
        df = 0.0
        for k in range(n):
            if flows[k] == 0.0:
                continue
            e = flows[k] * math.exp(-x * (times[k] - tref))
            f += e
            df -= (times[k] - tref) * e
        if f > 0.0:
            lo = x
        else:
            hi = x
        if abs(f) <= 1e-14 * positive or hi - lo < 1e-15:
            break
        xn = x - f / df if df < 0.0 else 0.5 * (lo + hi)
        if not lo < xn < hi:
            xn = 0.5 * (lo + hi)
        x = xn
    return math.expm1(x)


@njit(cache=True, nogil=True)
def solve_irr_years(steps, times, flows, n, guess):
    """:func:`solve_irr` when every flow falls on a whole year: ``steps[k]`` is
    the number of years from flow ``k - 1`` to flow ``k`` (``steps[0] = 0``).

    With v = 1 / (1 + r) the discounted value is the polynomial
    sum_k flows[k] v^t_k: Newton's method on v needs no exp at all. ``guess``
    is log(1 + r), as for :func:`solve_irr` (:func:`irr_guess` is exact for one
    outflow and one inflow, so such baskets converge at the first step).
    """
    positive = 0.0
    first = 0.0
    for k in range(n):
        if flows[k] > 0.0:
            positive += flows[k]
        if first == 0.0:
            first = flows[k]
    if positive <= 0.0:
        return -1.0
    if first >= 0.0:  # a payment before any principal: the general solver copes
        return solve_irr(times, flows, n, guess)
    v = math.exp(-min(max(guess, -20.0), 20.0))
    lo = 0.0
    hi = np.inf
    for _ in range(200):
        f = 0.0
        df = 0.0
        vt = 1.0  # v^t_k
        dvt = 0.0  # t_k v^(t_k - 1)
        for k in range(n):
            for _j in range(steps[k]):
                dvt = dvt * v + vt
                vt *= v
            f += flows[k] * vt
            df += flows[k] * dvt
        # f < 0 for small v (the principal comes first), > 0 for large v
        if f < 0.0:
            lo = v
        else:
            hi = v
        if abs(f) <= 1e-14 * positive * max(vt, 1.0):
            break
        vn = v - f / df if df > 0.0 else -1.0
        if not lo < vn < hi:
            vn = 0.5 * (lo + hi) if hi < np.inf else 2.0 * v + 1.0
        if abs(vn - v) <= 1e-15 * v:
            v = vn
            break
        v = vn
    return 1.0 / v - 1.0


@njit(cache=True, nogil=True)
def irr_guess(times, flows, n):
    """log(1 + r) of a single-period equivalent: log(multiple) / duration."""
    paid = 0.0
    paid_t = 0.0
    put = 0.0
    put_t = 0.0
    for k in range(n):
        if flows[k] > 0.0:
            paid += flows[k]
            paid_t += flows[k] * times[k]
        elif flows[k] < 0.0:
            put -= flows[k]
            put_t -= flows[k] * times[k]
    if paid <= 0.0 or put <= 0.0:
        return 0.0
    duration = paid_t / paid - put_t / put
    return math.log(paid / put) / duration if duration > 0.0 else 0.0
