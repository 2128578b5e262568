"""The Monte Carlo kernel v2: one block of scenarios in chunks of ``CHUNK``,
structure of arrays.

:func:`simulate_block` has the signature, inputs and outputs of
:func:`lobsim.kernels.engine.simulate_block` (the reference twin, kept
unchanged) and computes the same model: the chunk's random numbers are drawn
first in the engine's stream order (scenario by scenario: its normals, then
its exponentials), so scenario ``r`` sees the same numbers in both kernels
and blocks, seeds, threads and chunk sizes stay bit-identical. Then every
phase runs over the whole chunk: buffers are shaped (quantity, chunk) and the
inner loop runs over the chunk's scenarios, so that LLVM vectorises it (the
scenario-level phases here, the per-bond ones in
:mod:`lobsim.kernels.chunked_bonds`).

The arithmetic of each scenario is the reference's, operation by operation,
except ``exp`` in the measurements (:mod:`lobsim.kernels.fastexp`, at most 2
ulp from libm's): outputs downstream of a measurement may differ from the
reference's in their last bits (tests/test_kernel_v2.py states the bound).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lobsim.kernels.chunked_bonds import (
    bond_irr_chunk,
    bond_outputs,
    book_payment,
    copula_share,
    coupons_chunk,
    delivery_stop,
    maturity_savings_chunk,
    measure_chunk,
    payment_chunk,
    pooled_basis_chunk,
    pooled_sums_chunk,
    savings_chunk,
    shrunk_chunk,
    true_effect,
)
from lobsim.kernels.engine import dense_savings
from lobsim.kernels.irr import irr_guess, solve_irr, solve_irr_years

#: scenarios of a chunk: 64 x 8 bytes is a few AVX2 vectors per row and keeps a
#: chunk's buffers (a few hundred kB on the basket demo) in the L2 cache
CHUNK = 64

# error_model="numpy": a float division by zero gives inf or NaN instead of a
# test and a raise per element, which would stop the chunk loops vectorising
_no_refcount = njit(cache=True, nogil=True, _nrt=False,  # type: ignore[call-overload]
                    error_model="numpy")


@_no_refcount
def draw_chunk(gen, m, z, fail, programme):
    """Every random number of ``m`` scenarios, scenario by scenario as the engine
    draws them: column ``j`` of ``z`` gets scenario ``j``'s normals, of ``fail``
    its providers' failure times (inf for a provider that never fails)."""
    hazard = programme.hazard
    n_norm = z.shape[0]
    for j in range(m):
        for k in range(n_norm):
            z[k, j] = gen.standard_normal()
        for p in range(hazard.shape[0]):
            if hazard[p] > 0.0:
                fail[p, j] = programme.origin[p] + gen.standard_exponential() / hazard[p]
            else:
                fail[p, j] = np.inf


@_no_refcount
def factor_chunk(factors, z, m, fac):
    """1. Every factor at every global date (row ``f * D + d`` of ``fac``) by its
    exact k-step AR(1) transition; returns the cursor past the normals used."""
    n_f, n_d = factors.phik.shape
    for f in range(n_f):
        state0 = factors.state0[f]
        for d in range(n_d):
            row = f * n_d + d
            phi = factors.phik[f, d]
            sd = factors.sdk[f, d]
            if d == 0:
                for j in range(m):
                    fac[row, j] = phi * state0 + sd * z[row, j]
            else:
                for j in range(m):
                    fac[row, j] = phi * fac[row - 1, j] + sd * z[row, j]
    return n_f * n_d


@_no_refcount
def series_chunk(series, factors, fac, z, c, m, xs, es):
    """2. Log states of every series at its dates (row ``s * Dmax + j`` of ``xs``),
    the Cholesky draws summed in the engine's order; a treated series' noise
    normals into ``es``. Returns the cursor."""
    dmax = series.dates.shape[1]
    n_d = factors.phik.shape[1]
    for s in range(series.national.shape[0]):
        nd = series.ndates[s]
        beta = series.beta[s]
        gamma = series.gamma[s]
        for jd in range(nd):
            row = s * dmax + jd
            const = series.const[s, jd]
            for j in range(m):
                xs[row, j] = const
            for i in range(jd + 1):
                w = series.chol[s, jd, i]
                for j in range(m):
                    xs[row, j] += w * z[c + i, j]
            d = series.dates[s, jd]
            fn = series.national[s] * n_d + d
            fg = series.regional[s] * n_d + d
            for j in range(m):
                xs[row, j] = xs[row, j] + beta * fac[fn, j] + gamma * fac[fg, j]
        c += nd
        if series.treated[s]:
            for jd in range(nd):
                for j in range(m):
                    es[s * dmax + jd, j] = z[c + jd, j]
            c += nd
    return c


@_no_refcount
def programme_chunk(programme, z, c, m, zglob, logw):
    """3. The copula's global factor (``zglob``) and type factors (shifted in
    place in ``z``) with the importance-sampling tilt, and each scenario's log
    likelihood ratio ``logw``; returns the row of the first type factor."""
    tg = programme.tilt_global
    half = 0.5 * tg * tg
    for j in range(m):
        zg = z[c, j] + tg
        zglob[j] = zg
        logw[j] = -tg * zg + half
    ctype = c + 1
    for ty in range(programme.n_types):
        shift = programme.tilt_type[ty]
        half_t = 0.5 * shift * shift
        row = ctype + ty
        for j in range(m):
            z[row, j] += shift
            logw[j] += -shift * z[row, j] + half_t
    return ctype


@_no_refcount
def basket_chunk(baskets, bonds, measurements, payments, bcash, kflow, out, r0, m):
    """7. Every basket's cash flows on the shared time grid, its payments and
    IRR, per scenario (``kflow``: (chunk, T), a scenario's flows contiguous for
    the root-finder)."""
    n_t = baskets.time.shape[0]
    m_max = measurements.time.shape[1]
    for k in range(baskets.size.shape[0]):
        for j in range(m):
            for t in range(n_t):
                kflow[j, t] = 0.0
        for j in range(m):
            out.basket_payment[r0 + j, k] = 0.0
        for jb in range(baskets.size[k]):
            b = baskets.members[k, jb]
            st = bonds.start_time[b]
            principal = bonds.principal[b]
            for j in range(m):
                kflow[j, st] -= principal
            for i in range(bonds.nmeas[b]):
                ti = measurements.time_index[b, i]
                row = b * m_max + i
                for j in range(m):
                    kflow[j, ti] += bcash[row, j]
                    out.basket_payment[r0 + j, k] += bcash[row, j]
            for i in range(payments.ncoupons[b]):
                ti = payments.coupon_time_index[b, i]
                amount = payments.coupon_amount[b, i]
                for j in range(m):
                    kflow[j, ti] += amount
                    out.basket_payment[r0 + j, k] += amount
        for j in range(m):
            r = r0 + j
            flows = kflow[j]
            for t in range(n_t):
                out.basket_cashflow[r, k, t] = flows[t] + baskets.principal_at[k, t]
            guess = irr_guess(baskets.time, flows, n_t)
            if baskets.whole_years:
                out.basket_irr[r, k] = solve_irr_years(baskets.steps, baskets.time, flows, n_t,
                                                       guess)
            else:
                out.basket_irr[r, k] = solve_irr(baskets.time, flows, n_t, guess)


@_no_refcount
def scenario_outputs(dsav, dpay, zero_rows, logw, out, r0, m):
    """Departments' payments and savings and the log weight into rows ``r0 ..``;
    the chunk's accumulators are reset for the next chunk."""
    n_dep = out.department_saving.shape[1]
    n_years = out.department_saving.shape[2]
    for j in range(m):
        r = r0 + j
        out.log_weight[r] = logw[j]
        for dep in range(n_dep):
            for y in range(n_years):
                out.department_payment[r, dep, y] = dpay[dep * n_years + y, j]
                out.department_saving[r, dep, y] = dsav[dep * n_years + y, j]
    for q in range(dsav.shape[0]):
        for j in range(dsav.shape[1]):
            dsav[q, j] = 0.0
            dpay[q, j] = 0.0
    for g in range(zero_rows.shape[0]):
        for j in range(zero_rows.shape[1]):
            zero_rows[g, j] = 0.0


@njit(cache=True, nogil=True)
def simulate_block(gen, n, factors, series, programme, bonds, measurements, savings, payments,
                   baskets, out):
    """Simulate ``n`` scenarios into rows ``0..n-1`` of ``out``, ``CHUNK`` at a time.

    Same contract and results as :func:`lobsim.kernels.engine.simulate_block`
    (whose docstring describes the model's steps), up to the exp bound of
    :mod:`lobsim.kernels.fastexp` in what depends on a measurement.
    """
    n_f, n_d = factors.phik.shape
    n_s = series.national.shape[0]
    n_b = bonds.start.shape[0]
    n_t = baskets.time.shape[0]
    n_years = savings.year_horizon.shape[1]
    dmax = series.dates.shape[1]
    m_max = measurements.time.shape[1]
    n_dep = out.department_saving.shape[1]
    n_flows = m_max + payments.coupon_amount.shape[1] + 1

    n_norm = n_f * n_d + 1 + programme.n_types + n_b
    for s in range(n_s):
        n_norm += series.ndates[s] * (2 if series.treated[s] else 1)
    z = np.empty((n_norm, CHUNK))
    fail = np.empty((programme.hazard.shape[0], CHUNK))
    fac = np.empty((n_f * n_d, CHUNK))
    xs = np.empty((n_s * dmax, CHUNK))
    es = np.zeros((n_s * dmax, CHUNK))
    zglob = np.empty(CHUNK)
    logw = np.empty(CHUNK)
    # per bond: success x target, failure, true and measured units, payments
    scale = np.empty(CHUNK)
    stop = np.empty(CHUNK)
    full = np.empty(CHUNK, np.bool_)
    e_t = np.empty(CHUNK)
    lc = np.empty(CHUNK)
    meas = np.empty(CHUNK)
    basis = np.empty(CHUNK)
    err = np.empty(CHUNK)
    reached = np.empty(CHUNK, np.bool_)
    units = np.empty(CHUNK)
    amount = np.empty(CHUNK)
    paid = np.empty(CHUNK)
    cash = np.empty(CHUNK)
    bflow = np.empty((CHUNK, n_flows))
    btime = np.empty(n_flows)
    # the last row: the bonds in no cap group (infinite cap)
    gpaid = np.zeros((payments.group_cap.shape[0] + 1, CHUNK))
    bcash = np.zeros((n_b * m_max, CHUNK))
    kflow = np.empty((CHUNK, n_t))
    sv_dense = dense_savings(savings, n_dep)
    dsav = np.zeros((n_dep * n_years, CHUNK))
    dpay = np.zeros((n_dep * n_years, CHUNK))
    # pooled baskets: each pool's summed measured units (pool x measurement) and
    # the basis a pooled member is paid on
    n_pools = 0
    for b in range(n_b):
        n_pools = max(n_pools, bonds.pool[b] + 1)
    psum = np.zeros((max(n_pools, 1) * m_max, CHUNK))

    for r0 in range(0, n, CHUNK):
        m = min(CHUNK, n - r0)
        draw_chunk(gen, m, z, fail, programme)
        c = factor_chunk(factors, z, m, fac)
        c = series_chunk(series, factors, fac, z, c, m, xs, es)
        ctype = programme_chunk(programme, z, c, m, zglob, logw)
        c = ctype + programme.n_types
        if n_pools > 0:
            pooled_sums_chunk(programme, series, bonds, measurements, z, ctype, zglob, fail, xs,
                              es, m, scale, stop, full, e_t, lc, meas, err, reached, psum)
        for b in range(n_b):
            copula_share(programme, bonds, b, z, ctype, c, zglob, m, scale)
            c += 1
            early = delivery_stop(programme, bonds, b, fail, m, stop, full)
            savings_chunk(savings, bonds, b, scale, stop, full, early, sv_dense, dsav, m)
            for j in range(m):
                paid[j] = 0.0
                cash[j] = 0.0
                e_t[j] = 0.0
                meas[j] = 0.0
                err[j] = 0.0
            nm = bonds.nmeas[b]
            # a pooled or shrunk bond pays on ``basis``, the others on the measurement
            # (a bond is never both: lobsim.model.basket.pooled_terms refuses it)
            pooled = bonds.pool[b] >= 0
            shrunk = bonds.shrunk[b]
            pay_on = basis if pooled or shrunk else meas
            for i in range(nm):
                true_effect(measurements, bonds, b, i, scale, stop, full, early, m, e_t)
                measure_chunk(series, bonds, measurements, b, i, e_t, xs, es, m, lc, meas, err,
                              reached)
                if pooled:
                    pooled_basis_chunk(bonds, measurements, b, i, psum, lc, m, basis, reached)
                elif shrunk:  # pays on the shrunk basis, not the measurement
                    shrunk_chunk(bonds, measurements, b, i, meas, lc, m, basis, reached)
                payment_chunk(bonds, measurements, payments, b, i, pay_on, reached, paid, cash,
                              gpaid, m, units, amount)
                book_payment(payments, bonds, measurements, b, i, units, amount, cash, bcash,
                             bflow, btime, dpay, n_years, m)
            nf = coupons_chunk(payments, bonds, b, nm, cash, bflow, btime, dpay, n_years, m)
            if bonds.dated[b]:  # payments by date of bonds paying at several dates
                off = bonds.slot[b]
                for j in range(m):
                    for i in range(nm):
                        out.dated_payment[r0 + j, off + i] = bcash[b * m_max + i, j]
                    for k in range(payments.ncoupons[b]):
                        out.dated_payment[r0 + j, off + nm + k] = payments.coupon_amount[b, k]
            if early:
                maturity_savings_chunk(savings, bonds, b, full, e_t, dsav, m)
            bond_outputs(bonds, b, nm, e_t, meas, err, paid, cash, bcash, m_max, out, r0, m)
            bond_irr_chunk(bonds, b, cash, btime, bflow, nf, out, r0, m)
        basket_chunk(baskets, bonds, measurements, payments, bcash, kflow, out, r0, m)
        scenario_outputs(dsav, dpay, gpaid, logw, out, r0, m)
    return 0
