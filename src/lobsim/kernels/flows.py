"""Per-scenario cash flows after the engine: provider shortfall, tranche waterfall, tax, IRRs.

Jit-compiled loops over scenarios for what :mod:`lobsim.model.shortfall`,
:mod:`lobsim.model.waterfall` and :mod:`lobsim.model.tax` derive from the
engine's outputs (their docstrings state the rules; docs/model.md sections
7.5 and 8.3, docs/decisions.md). Each performs, per element, the IEEE
operations of the plain-numpy version it replaced, in the same order (the
twins in tests/post_twins.py), so results are the same bits: ``np.minimum``
and ``np.maximum`` as :func:`_np_min` / :func:`_np_max` (a NaN propagates),
``cumsum`` and ``maximum.accumulate`` as running sums and maxima, a sum
along a short last axis as numpy's pairwise sum
(:func:`lobsim.kernels.sums.pairwise_sum`). Powers (``growth**dt``) and the
per-date coupons, which do not depend on the scenario, come in precomputed.
Imports only lobsim.kernels.
"""

import numpy as np
from numba import njit

from lobsim.kernels.irr import irr_guess, solve_irr
from lobsim.kernels.sums import block_sum, pairwise_sum


@njit(cache=True, nogil=True)
def _np_min(a, b):
    """``np.minimum(a, b)`` of two floats: ``a`` if ``a <= b`` or ``a`` is NaN."""
    return a if (a <= b or a != a) else b


@njit(cache=True, nogil=True)
def _np_max(a, b):
    """``np.maximum(a, b)`` of two floats: ``a`` if ``a >= b`` or ``a`` is NaN."""
    return a if (a >= b or a != a) else b


@njit(cache=True, nogil=True)
def provider_shortfall(true_units, paid_units, cap, out):
    """``max(0, min(true, cap) - paid)`` of (scenarios, bonds) arrays into ``out``; jit-compiled.

    ``cap`` (bonds,): the most units each bond can pay for.
    """
    n, m = true_units.shape
    for r in range(n):
        for j in range(m):
            out[r, j] = _np_max(0.0, _np_min(true_units[r, j], cap[j]) - paid_units[r, j])


@njit(cache=True, nogil=True)
def after_tax_flows(capital, paid_in, received, keep, tax_rate, out):
    """Net after-tax flows of each scenario (row of ``received``) into ``out``; jit-compiled.

    ``capital`` (T,): capital paid in before each date; ``paid_in`` (T,);
    ``received`` (n, T); ``keep`` is ``1 - relief``. The gain taxed by a date
    is the running maximum of ``max(0, received so far - capital)``, the tax
    ``tax_rate`` times its increase; ``out`` (n, T) is ``received - tax -
    keep x paid_in``.
    """
    n, n_t = received.shape
    for r in range(n):
        got = 0.0
        gain = 0.0
        for t in range(n_t):
            got = received[r, 0] if t == 0 else got + received[r, t]
            g = _np_max(got - capital[t], 0.0)
            prev = gain
            gain = g if t == 0 else _np_max(gain, g)
            out[r, t] = (received[r, t] - tax_rate * (gain - prev)) - keep * paid_in[t]


@njit(cache=True, nogil=True)
def holding_flows(capital, paid_in, received, keep, tax_rate, threshold, pre, post, loss):
    """A holding's pre- and after-tax flows and after-tax loss per scenario; jit-compiled.

    ``pre`` (n, T): ``received - paid_in``; ``post`` (n, T):
    :func:`after_tax_flows`; ``loss`` (n,): the after-tax flows sum (numpy's
    pairwise order) below ``threshold``. ``pre`` and ``post`` may be strided
    views (a holding's slice of a (scenarios, holdings, times) array).
    """
    n, n_t = received.shape
    # the loop of after_tax_flows fused with the pre-tax flows and the loss: one pass
    # over the rows instead of two, the after-tax row summed from a scratch row rather
    # than from a view of ``post`` made per row; the same operations in the same order
    row = np.empty(n_t)
    for r in range(n):
        got = 0.0
        gain = 0.0
        for t in range(n_t):
            got = received[r, 0] if t == 0 else got + received[r, t]
            g = _np_max(got - capital[t], 0.0)
            prev = gain
            gain = g if t == 0 else _np_max(gain, g)
            row[t] = (received[r, t] - tax_rate * (gain - prev)) - keep * paid_in[t]
            post[r, t] = row[t]
            pre[r, t] = received[r, t] - paid_in[t]
        # block_sum itself for a short row: a call to the dispatcher is not inlined
        loss[r] = (block_sum(row, 0, n_t) if n_t <= 128 else pairwise_sum(row, 0, n_t)) < threshold


@njit(cache=True, nogil=True)
def waterfall(cash, tranche_in, accrue, factor, due, order, junior, last, principal,
              protected, has_cap, cap, received, guarantee, protection, payment):
    """A basket's tranche waterfall, scenario by scenario (lobsim.model.waterfall); jit-compiled.

    Parameters
    ----------
    cash : (n, T) basket outcome payments; tranche_in : (K, T) principal paid in.
    accrue : (T,) bool, the balances grow at the date; factor : (T, K)
        ``(1 + premium)**dt``; due : (T, K) the interest round's coupons.
    order : (K,) tranches by seniority; junior, last : the residual's
        tranche and the final date's index; principal : (K,) ``tranche_in``
        summed; protected : (K,) bool; has_cap, cap : the first-loss guarantee.
    received : (n, K, T) zeros on entry; guarantee, protection, payment :
        (n, K) outputs.
    """
    n, n_t = cash.shape
    n_k = tranche_in.shape[0]
    balance = np.zeros(n_k)
    shortfall = np.zeros(n_k)
    from_cash = np.zeros(n_k)
    row = np.empty(n_t)
    for r in range(n):
        balance[:] = 0.0
        for j in range(last + 1):
            if accrue[j]:
                for k in range(n_k):
                    balance[k] *= factor[j, k]
            avail = cash[r, j]
            # interest round: current coupons before any principal
            for i in range(n_k):
                k = order[i]
                if due[j, k] > 0.0:
                    x = _np_min(_np_min(due[j, k], balance[k]), avail)
                    received[r, k, j] += x
                    balance[k] -= x
                    avail -= x
            # principal round: sequential, senior first
            for i in range(n_k):
                k = order[i]
                x = _np_min(balance[k], avail)
                received[r, k, j] += x
                balance[k] -= x
                avail -= x
            received[r, junior, j] += avail  # residual: the junior's upside
            for k in range(n_k):
                balance[k] += tranche_in[k, j]
        for k in range(n_k):
            for t in range(n_t):  # a scratch row, not a view (a reference count each)
                row[t] = received[r, k, t]
            from_cash[k] = block_sum(row, 0, n_t) if n_t <= 128 else pairwise_sum(row, 0, n_t)
            shortfall[k] = _np_max(principal[k] - from_cash[k], 0.0)
            protection[r, k] = shortfall[k] if protected[k] else 0.0
            guarantee[r, k] = 0.0
        if has_cap:
            room = cap
            for i in range(n_k):
                k = order[i]
                if not protected[k]:
                    guarantee[r, k] = _np_min(shortfall[k], room)
                    room -= guarantee[r, k]
        for k in range(n_k):
            top_up = protection[r, k] + guarantee[r, k]
            received[r, k, last] += top_up
            whole = shortfall[k] > 0.0 and top_up >= shortfall[k]
            payment[r, k] = principal[k] if whole else from_cash[k] + top_up


@njit(cache=True, nogil=True)
def irr_rows(times, flows, out, r0, r1):
    """IRR of rows ``r0:r1`` of ``flows`` (n, T) at ``times`` (T,) into ``out`` (n,); jit-compiled.

    -1 when nothing comes back, as for bonds. A row range, so that the model
    layer can split the rows among threads (``nogil``): each row is solved
    alone, so the result does not depend on the split.
    """
    n_t = times.shape[0]
    for r in range(r0, r1):
        row = flows[r]
        out[r] = solve_irr(times, row, n_t, irr_guess(times, row, n_t))


@njit(cache=True, nogil=True)
def tranche_irr_rows(times, paid_in, received, out, r0, r1):
    """IRR of every tranche, rows ``r0:r1``: flows ``received[r, k] - paid_in[k]``; jit-compiled.

    ``times`` (T,) years from the first date; ``paid_in`` (K, T);
    ``received`` (n, K, T); ``out`` (n, K). Nothing received gives -1.
    """
    n_k, n_t = paid_in.shape
    row = np.empty(n_t)
    for r in range(r0, r1):
        for k in range(n_k):
            for t in range(n_t):
                row[t] = received[r, k, t] - paid_in[k, t]
            out[r, k] = solve_irr(times, row, n_t, irr_guess(times, row, n_t))
