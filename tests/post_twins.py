"""Plain-numpy twins of the compiled steps after the engine (issue 16).

The code each compiled loop of lobsim.kernels.flows and lobsim.kernels.sums
replaced, kept verbatim as the reference that tests/test_post_kernels.py
compares the compiled versions to, bit for bit, on the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from lobsim.analysis import stats
from lobsim.kernels.irr import irr_guess, solve_irr
from lobsim.model.config import Tranche
from lobsim.model.waterfall import WaterfallResult


def provider_shortfall(true_units: np.ndarray, paid_units: np.ndarray,
                       cap: np.ndarray) -> np.ndarray:
    """lobsim.model.shortfall.provider_shortfall before issue 16 (caps given)."""
    return np.maximum(0.0, np.minimum(true_units, cap) - paid_units)


def after_tax_flows(paid_in: np.ndarray, received: np.ndarray, relief: float,
                    tax_rate: float) -> np.ndarray:
    """lobsim.model.tax.after_tax_flows before issue 16."""
    capital = np.cumsum(paid_in) - paid_in
    gain = np.maximum.accumulate(np.maximum(np.cumsum(received, axis=1) - capital, 0.0), axis=1)
    tax = tax_rate * np.diff(gain, axis=1, prepend=0.0)
    return np.asarray(received - tax - (1.0 - relief) * paid_in)


def holding_flows(paid: np.ndarray, received: np.ndarray, relief: float, tax_rate: float,
                  rounding: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One holding's (pre, post, after_tax_loss) of lobsim.model.tax.holding_series before issue 16."""
    pre = received - paid
    post = after_tax_flows(paid, received, relief, tax_rate)
    return pre, post, post.sum(axis=1) < -rounding * paid.sum()


def run_waterfall(cash: np.ndarray, paid_in: np.ndarray, times: np.ndarray,
                  tranches: Sequence[Tranche], guarantee_cap: float | None = None,
                  final: int | None = None) -> WaterfallResult:
    """lobsim.model.waterfall.run_waterfall before issue 16 (vectorised over scenarios)."""
    cash = np.asarray(cash, float)
    n, n_t = cash.shape
    n_k = len(tranches)
    last = n_t - 1 if final is None else final
    share = np.array([t.share for t in tranches])
    growth = 1.0 + np.array([t.premium for t in tranches])
    coupon = np.array([t.early_coupon for t in tranches])
    order = sorted(range(n_k), key=lambda k: tranches[k].seniority)
    junior = order[-1]
    tranche_in = np.outer(share, paid_in)

    received = np.zeros((n, n_k, n_t))
    balance = np.zeros((n, n_k))
    paid_principal = np.zeros(n_k)
    prev = float(times[0])
    for j in range(last + 1):
        dt = float(times[j]) - prev
        prev = float(times[j])
        if dt > 0.0:
            balance *= growth**dt
        avail = cash[:, j].copy()
        due = coupon * paid_principal * dt
        for k in order:
            if due[k] > 0.0:
                x = np.minimum(np.minimum(due[k], balance[:, k]), avail)
                _pay(received, balance, avail, x, k, j)
        for k in order:
            x = np.minimum(balance[:, k], avail)
            _pay(received, balance, avail, x, k, j)
        received[:, junior, j] += avail
        balance += tranche_in[:, j]
        paid_principal += tranche_in[:, j]

    principal = tranche_in.sum(axis=1)
    from_cash = received.sum(axis=2)
    shortfall = np.maximum(principal - from_cash, 0.0)
    protection = np.zeros((n, n_k))
    guarantee = np.zeros((n, n_k))
    for k in range(n_k):
        if tranches[k].protected:
            protection[:, k] = shortfall[:, k]
    if guarantee_cap is not None:
        room = np.full(n, float(guarantee_cap))
        for k in order:
            if not tranches[k].protected:
                guarantee[:, k] = np.minimum(shortfall[:, k], room)
                room -= guarantee[:, k]
    top_up = protection + guarantee
    received[:, :, last] += top_up
    whole = (shortfall > 0.0) & (top_up >= shortfall)
    payment = np.where(whole, principal, from_cash + top_up)
    return WaterfallResult(received=received, guarantee=guarantee, protection=protection,
                           paid_in=tranche_in, payment=payment)


def _pay(received: np.ndarray, balance: np.ndarray, avail: np.ndarray, x: np.ndarray, k: int,
         j: int) -> None:
    received[:, k, j] += x
    balance[:, k] -= x
    avail -= x


def quantile_se(a: stats.Atoms, level: float) -> float:
    """lobsim.analysis.stats.quantile_se before issue 16 (math.fsum, one level a call)."""
    if a.nan or a.value.size == 0:
        return math.nan
    n = a.scenarios
    mass = stats._mass(a, level)
    j, cum = stats._var_index(a, mass)
    p = 1.0 - level
    lo = min(int(np.searchsorted(cum, n * p * (1.0 - stats.VAR_WINDOW))), a.value.size - 1)
    hi = min(int(np.searchsorted(cum, n * p * (1.0 + stats.VAR_WINDOW))), a.value.size - 1)
    spread = float(a.value[lo] - a.value[hi])
    if n < 2:
        return math.nan
    if not spread > 0.0:
        return 0.0
    density = float(cum[hi] - cum[lo]) / n / spread
    sd = stats._sd_mean(math.fsum(a.weight[:j]), math.fsum(a.weight2[:j]), n)
    return sd / math.sqrt(n) / density


def tail(a: stats.Atoms, level: float) -> tuple[float, float, float, float]:
    """(VaR, its se, ES, its se) of lobsim.analysis.stats.tail before issue 16 (math.fsum)."""
    n = a.scenarios
    if a.nan or a.value.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mass = stats._mass(a, level)
    j, cum = stats._var_index(a, mass)
    var = float(a.value[j])
    above = float(cum[j - 1]) if j > 0 else 0.0
    rest = max(mass - above, 0.0)
    v, wt, wt2 = a.value[:j], a.weight[:j], a.weight2[:j]
    es = (math.fsum(wt * v) + rest * var) / mass
    excess = v - var
    es_sd = stats._sd_mean(math.fsum(wt * excess), math.fsum(wt2 * excess * excess), n)
    es_se = es_sd / ((1.0 - level) * math.sqrt(n)) if n > 1 else math.nan
    return var, quantile_se(a, level), es, es_se


def atoms_of(x: np.ndarray, w: np.ndarray | None) -> stats.Atoms:
    """lobsim.analysis.stats.Atoms.of before issue 16 (reduceat of ones, math.fsum total)."""
    x = np.asarray(x, float).ravel()
    n = x.size
    if np.isnan(x).any():
        return stats.Atoms(np.empty(0), np.empty(0), np.empty(0), n, float(n), True)
    if w is None:
        xs = np.sort(x)[::-1]
        ws = np.ones(n)
    else:
        w = np.asarray(w, float)
        order = np.lexsort((w, -x))
        xs, ws = x[order], w[order]
    if n == 0:
        return stats.Atoms(xs, ws, ws, 0, 0.0)
    starts = np.concatenate(([0], np.flatnonzero(xs[1:] != xs[:-1]) + 1))
    weight = np.add.reduceat(ws, starts)
    weight2 = weight if w is None else np.add.reduceat(ws * ws, starts)
    total = float(n) if w is None else math.fsum(ws)
    return stats.Atoms(xs[starts], weight, weight2, n, total)


@njit(nogil=True)
def tax_irr_rows(times, flows, out):
    """lobsim.model.tax._irr_rows before issue 16 (one thread, all rows)."""
    n_t = times.shape[0]
    for r in range(flows.shape[0]):
        row = flows[r]
        out[r] = solve_irr(times, row, n_t, irr_guess(times, row, n_t))


@njit(nogil=True)
def waterfall_irr_rows(times, paid_in, received, out):
    """lobsim.model.waterfall._irr_rows before issue 16 (one tranche's rows)."""
    n_t = times.shape[0]
    flows = np.empty(n_t)
    for r in range(received.shape[0]):
        for t in range(n_t):
            flows[t] = received[r, t] - paid_in[t]
        out[r] = solve_irr(times, flows, n_t, irr_guess(times, flows, n_t))


def tranche_irr(result: WaterfallResult, times: np.ndarray) -> np.ndarray:
    """lobsim.model.waterfall.tranche_irr before issue 16 (a tranche at a time, one thread)."""
    rel = np.ascontiguousarray(times - times[0], float)
    n, n_k, _ = result.received.shape
    out = np.empty((n, n_k))
    for k in range(n_k):
        col = np.empty(n)
        waterfall_irr_rows(rel, np.ascontiguousarray(result.paid_in[k]),
                           np.ascontiguousarray(result.received[:, k, :]), col)
        out[:, k] = col
    return out
