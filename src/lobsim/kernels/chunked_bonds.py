"""The per-bond phases of the chunked kernel (:mod:`lobsim.kernels.chunked`).

Each phase does one step of one bond for every scenario of a chunk: buffers
are shaped (quantity, chunk) or (chunk,), the inner loop runs over the chunk's
``m`` scenarios, and everything that depends only on the bond (its mechanism,
kind, verified flag, cap group, payers) is decided once, outside that loop, so
the loop has no branch on a constant and LLVM vectorises it. Data-dependent
choices (a threshold reached, a cap hit) are selects, not jumps.

Each phase computes, scenario by scenario, exactly the arithmetic of its scalar
twin in :mod:`lobsim.kernels.engine` (same operations in the same order), with
one exception: ``exp`` is :func:`lobsim.kernels.fastexp.exp_one` (at most
``EXP_ULP`` ulp from ``math.exp``) instead of libm's, which cannot vectorise.
tests/test_kernel_v2.py compares the two kernels scenario by scenario.

A cap group is a row of ``gpaid`` (groups + 1, chunk): a bond in no group
uses the last row, whose cap is infinite, so ``min(room, inf - x)`` leaves the
room as it was and no branch is needed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lobsim.kernels.contract import KIND_COUNT, MECH_BINARY, MECH_SCHEDULE, MECH_UNITS
from lobsim.kernels.engine import effect_fraction
from lobsim.kernels.fastexp import exp_one
from lobsim.kernels.irr import irr_guess, solve_irr

# without reference counting: these phases allocate nothing (see engine.py);
# error_model="numpy": a float division by zero gives inf or NaN instead of a
# test and a raise per element, which would stop the chunk loops vectorising
_no_refcount = njit(cache=True, nogil=True, _nrt=False,  # type: ignore[call-overload]
                    error_model="numpy")


@_no_refcount
def copula_share(programme, bonds, b, z, ctype, c, zglob, m, scale):
    """Success share x target of bond ``b`` in each scenario (``scale``): the copula
    value from the type, global and own normals, then ``theta`` by linear
    interpolation in the type's z table, clamped at its ends (as
    :func:`lobsim.kernels.engine.success_share`, with selects)."""
    ty = programme.bond_type[b]
    lt = programme.load_type[b]
    lg = programme.load_global[b]
    lo = programme.load_own[b]
    table = programme.theta_table
    n_tab = table.shape[1]
    top = n_tab - 1
    z_lo = programme.z_lo
    z_step = programme.z_step
    target = bonds.target[b]
    first = table[ty, 0]
    last = table[ty, top]
    for j in range(m):
        zb = lt * z[ctype + ty, j] + lg * zglob[j] + lo * z[c, j]
        u = (zb - z_lo) / z_step
        uc = min(max(u, 0.0), top - 1.0)
        iu = int(uc)
        inner = table[ty, iu] + (u - iu) * (table[ty, iu + 1] - table[ty, iu])
        theta = first if u <= 0.0 else (last if u >= top else inner)
        scale[j] = theta * target


@_no_refcount
def delivery_stop(programme, bonds, b, fail, m, stop, full):
    """Years from the start to the provider's failure (``stop``) and whether the
    bond delivers in full (``full``); returns whether any scenario failed early."""
    p = programme.bond_provider[b]
    start = bonds.start[b]
    horizon = bonds.horizon[b]
    early = 0
    for j in range(m):
        s = fail[p, j] - start
        stop[j] = s
        full[j] = s >= horizon
        early += 0 if s >= horizon else 1
    return early > 0


@_no_refcount
def savings_chunk(savings, bonds, b, scale, stop, full, early, sv_dense, dsav, m):
    """Department savings of bond ``b`` (``dsav``: department x year, chunk). A
    bond delivering in full adds ``scale`` times its fixed row (the others add
    0 there); scenarios with an early failure take the exact yearly path of
    :func:`lobsim.kernels.engine.yearly_savings`."""
    n_q = dsav.shape[0]
    for q in range(n_q):
        rate = sv_dense[b, q]
        if rate == 0.0:
            continue
        for j in range(m):
            dsav[q, j] += (scale[j] if full[j] else 0.0) * rate
    if not early:
        return
    n_years = savings.year_horizon.shape[1]
    for j in range(m):
        if full[j]:
            continue
        for y in range(n_years):
            hz = savings.year_horizon[b, y]
            if hz <= 0.0:
                continue
            e_y = scale[j] * effect_fraction(stop[j], hz, bonds.ramp_time[b],
                                             bonds.ramp_share[b], savings.year_relapse[b, y])
            for q in range(savings.n[b]):
                if not savings.once[b, q]:
                    dsav[savings.department[b, q] * n_years + y, j] += (
                        savings.amount[b, q] * e_y)


@_no_refcount
def maturity_savings_chunk(savings, bonds, b, full, e_t, dsav, m):
    """Savings counted once at maturity of the scenarios whose provider failed."""
    n_years = savings.year_horizon.shape[1]
    for j in range(m):
        if full[j]:
            continue
        for q in range(savings.n[b]):
            if savings.once[b, q]:
                dsav[savings.department[b, q] * n_years + bonds.maturity_year[b], j] += (
                    savings.amount[b, q] * e_t[j])


@_no_refcount
def true_effect(measurements, bonds, b, i, scale, stop, full, early, m, e_t):
    """True units standing at measurement ``i`` in each scenario."""
    share = measurements.full_share[b, i]
    for j in range(m):
        e_t[j] = scale[j] * share
    if early:
        for j in range(m):
            if not full[j]:
                e_t[j] = scale[j] * effect_fraction(stop[j], measurements.horizon[b, i],
                                                    bonds.ramp_time[b], bonds.ramp_share[b],
                                                    measurements.relapse[b, i])


@_no_refcount
def measure_chunk(series, bonds, measurements, b, i, e_t, xs, es, m, lc, meas, err, reached):
    """Measured units, the control group's prediction error and whether the
    threshold is reached, per scenario (:func:`lobsim.kernels.engine.measure`)."""
    thr = measurements.threshold[b, i]
    base = bonds.base_level[b]
    count = bonds.kind[b] == KIND_COUNT
    if bonds.verified[b]:
        # a rate card: the true units are measured (no states are read)
        level = thr * (base if count else 100.0)
        for j in range(m):
            meas[j] = e_t[j]
            err[j] = 0.0
            reached[j] = e_t[j] >= level
        return
    jt = measurements.state[b, i]
    sig = series.noise_sd[bonds.series[b]]
    half_var = 0.5 * sig * sig
    for j in range(m):
        lc[j] = 0.0
    for k in range(bonds.ndonors[b]):
        w = bonds.weight[b, k]
        row = measurements.donor_state[b, i, k]
        for j in range(m):
            lc[j] += w * xs[row, j]
    if count:
        for j in range(m):
            log_noise = sig * es[jt, j] - half_var
            y_noisy = exp_one(xs[jt, j] + log_noise)
            yhat = base * exp_one(lc[j])
            gap = yhat - y_noisy
            noise = exp_one(log_noise)
            seen = gap + min(e_t[j], y_noisy / noise) * noise
            mj = seen if e_t[j] > 0.0 else gap
            meas[j] = mj
            err[j] = gap
            reached[j] = mj >= thr * yhat
    else:
        level = 100.0 * thr
        for j in range(m):
            log_noise = sig * es[jt, j] - half_var
            y_noisy = exp_one(xs[jt, j] + log_noise)
            yhat = base * exp_one(lc[j])
            gap = yhat - y_noisy
            ej = 100.0 * gap / yhat
            mj = ej + min(e_t[j], 100.0) * (y_noisy / yhat)
            meas[j] = mj
            err[j] = ej
            reached[j] = mj >= level


@_no_refcount
def shrunk_chunk(bonds, measurements, b, i, meas, lc, m, basis, reached):
    """What a bond on the shrunk basis pays on (``basis``) and whether it reaches
    the threshold, per scenario, from :func:`measure_chunk`'s ``meas`` and ``lc``
    (:func:`lobsim.kernels.engine.shrunk_basis`); ``meas`` stays the measurement."""
    k = bonds.shrink_k[b]
    rest = 1.0 - k
    for j in range(m):
        basis[j] = k * meas[j] + rest * measurements.prior[b, i]
    basis_reached_chunk(bonds, measurements, b, i, basis, lc, m, reached)


@_no_refcount
def basis_reached_chunk(bonds, measurements, b, i, basis, lc, m, reached):
    """Whether what a bond pays on (a shrunk or pooled ``basis``) reaches the
    threshold :func:`measure_chunk` tests the measurement against (``lc`` as it
    left it: the control group's log prediction), per scenario."""
    thr = measurements.threshold[b, i]
    base = bonds.base_level[b]
    if bonds.verified[b] or bonds.kind[b] != KIND_COUNT:
        level = thr * (base if bonds.verified[b] and bonds.kind[b] == KIND_COUNT else 100.0)
        for j in range(m):
            reached[j] = basis[j] >= level
        return
    for j in range(m):
        reached[j] = basis[j] >= thr * (base * exp_one(lc[j]))


@_no_refcount
def payment_chunk(bonds, measurements, payments, b, i, meas, reached, paid, cash, gpaid, m,
                  units, amount):
    """Units paid for and cash of measurement ``i`` per scenario; ``paid`` (the
    cumulative units paid for) and the cap group's row of ``gpaid`` are
    updated (:func:`lobsim.kernels.engine.payment`, with selects)."""
    mech = bonds.mechanism[b]
    cap = measurements.cap[b, i]
    cash_cap = measurements.cash_cap[b, i]
    grp = bonds.cap_group[b]
    g = grp if grp >= 0 else gpaid.shape[0] - 1
    group_cap = payments.group_cap[grp] if grp >= 0 else np.inf
    price = bonds.price[b]
    target = bonds.target[b]
    if mech == MECH_UNITS:
        for j in range(m):
            cum = min(max(meas[j], 0.0), cap)
            pay = reached[j] & (cum > paid[j])
            u = cum - paid[j] if pay else 0.0
            a = u * price if pay else 0.0
            new_paid = cum if pay else paid[j]
            room = min(cash_cap - cash[j], group_cap - gpaid[g, j])
            capped = a > room
            a_c = max(room, 0.0)
            u_c = a_c / price
            amount[j] = a_c if capped else a
            units[j] = u_c if capped else u
            paid[j] = paid[j] + u_c if capped else new_paid
            gpaid[g, j] += a_c if capped else a
        return
    if mech == MECH_BINARY:
        level = bonds.trigger[b] * target
        fixed = bonds.amount[b]
        for j in range(m):
            hit = meas[j] >= level
            units[j] = target if hit else 0.0
            amount[j] = fixed if hit else 0.0
    else:  # MECH_SCHEDULE: the highest grid step reached
        for j in range(m):
            units[j] = min(max(meas[j], 0.0), cap)
            amount[j] = 0.0
        for k in range(bonds.ngrid[b]):
            perf = bonds.grid_performance[b, k]
            step = bonds.grid_amount[b, k]
            for j in range(m):
                amount[j] = step if meas[j] / target >= perf else amount[j]
    for j in range(m):
        room = min(cash_cap - cash[j], group_cap - gpaid[g, j])
        a = amount[j]
        a = max(room, 0.0) if a > room else a
        amount[j] = a
        gpaid[g, j] += a
        paid[j] = units[j] if a > 0.0 else 0.0


@_no_refcount
def book_payment(payments, bonds, measurements, b, i, units, amount, cash, bcash, bflow, btime,
                 dpay, n_years, m):
    """Cash of measurement ``i`` into the bond's flows (``bcash``, ``bflow``), its
    total ``cash`` and the payers' departments (``dpay``), per scenario
    (:func:`lobsim.kernels.engine.charge_departments`): nothing is charged
    when nothing is paid, as a select on the scenario's units and cash."""
    m_max = measurements.time.shape[1]
    row = b * m_max + i
    for j in range(m):
        a = amount[j]
        paid_cash = a if a > 0.0 else 0.0
        bcash[row, j] = paid_cash
        cash[j] += paid_cash
        bflow[j, i + 1] = a
    btime[i + 1] = measurements.time[b, i] - bonds.start[b]
    year = measurements.year[b, i]
    units_mech = bonds.mechanism[b] == MECH_UNITS
    for q in range(payments.npayers[b]):
        drow = payments.department[b, q] * n_years + year
        per_unit = payments.per_unit[b, q]
        share = payments.share[b, q]
        premium = payments.premium[b, q]
        if units_mech:
            for j in range(m):
                u = units[j] if amount[j] > 0.0 else 0.0
                dpay[drow, j] += per_unit * u
        else:
            for j in range(m):
                pos = amount[j] > 0.0
                a = amount[j] if pos else 0.0
                u = units[j] if pos else 0.0
                dpay[drow, j] += share * a + premium * u


@_no_refcount
def coupons_chunk(payments, bonds, b, nm, cash, bflow, btime, dpay, n_years, m):
    """Fixed coupons of bond ``b``, whatever the outcome, split by payer share;
    returns the number of the bond's flows (principal, payments, coupons)."""
    nf = nm + 1
    for k in range(payments.ncoupons[b]):
        amount = payments.coupon_amount[b, k]
        year = payments.coupon_year[b, k]
        for j in range(m):
            cash[j] += amount
        for q in range(payments.npayers[b]):
            drow = payments.department[b, q] * n_years + year
            due = payments.share[b, q] * amount
            for j in range(m):
                dpay[drow, j] += due
        for j in range(m):
            bflow[j, nf] = amount
        btime[nf] = payments.coupon_time[b, k] - bonds.start[b]
        nf += 1
    return nf


@_no_refcount
def schedule_step(value, perf, amount, n):
    """Payment of a return grid at performance ``value`` (the highest step reached)."""
    out = 0.0
    for k in range(n):
        out = amount[k] if value >= perf[k] else out
    return out


@_no_refcount
def bond_outputs(bonds, b, nm, e_t, meas, err, paid, cash, bcash, m_max, out, r0, m):
    """Row ``r0 + j`` of the bond's per-scenario outputs and its overpayment (cash
    beyond what the true effect would have earned,
    :func:`lobsim.kernels.engine.overpayment`)."""
    principal = bonds.principal[b]
    price = bonds.price[b]
    mech = bonds.mechanism[b]
    for j in range(m):
        r = r0 + j
        out.true_units[r, b] = e_t[j]
        out.measured_units[r, b] = meas[j]
        out.prediction_error[r, b] = err[j]
        out.paid_units[r, b] = paid[j]
        out.investor_payment[r, b] = cash[j]
        out.default[r, b] = cash[j] < principal
        out.total_loss[r, b] = cash[j] == 0.0
    if mech == MECH_BINARY:
        level = bonds.trigger[b] * bonds.target[b]
        for j in range(m):
            out.overpayment[r0 + j, b] = cash[j] if e_t[j] < level else 0.0
    elif mech == MECH_SCHEDULE:
        last = b * m_max + nm - 1 if nm > 0 else b * m_max + m_max - 1
        target = bonds.target[b]
        for j in range(m):
            earned = schedule_step(e_t[j] / target, bonds.grid_performance[b],
                                   bonds.grid_amount[b], bonds.ngrid[b])
            out.overpayment[r0 + j, b] = max(0.0, bcash[last, j] - earned)
    else:
        for j in range(m):
            out.overpayment[r0 + j, b] = max(0.0, paid[j] - e_t[j]) * price


@_no_refcount
def bond_irr_chunk(bonds, b, cash, btime, bflow, nf, out, r0, m):
    """Investor IRR of bond ``b`` per scenario: -1 if nothing is paid, a closed
    form for one payment, the root-finder on the scenario's flows otherwise
    (:func:`lobsim.kernels.engine.bond_irr`)."""
    principal = bonds.principal[b]
    if nf == 2:
        power = 1.0 / btime[1]
        for j in range(m):
            c = cash[j]
            out.irr[r0 + j, b] = (c / principal) ** power - 1.0 if c > 0.0 else -1.0
        return
    btime[0] = 0.0
    for j in range(m):
        if cash[j] <= 0.0:
            out.irr[r0 + j, b] = -1.0
            continue
        flows = bflow[j]
        flows[0] = -principal
        out.irr[r0 + j, b] = solve_irr(btime, flows, nf, irr_guess(btime, flows, nf))


@_no_refcount
def pooled_sums_chunk(programme, series, bonds, measurements, z, ctype, zglob, fail, xs, es, m,
                      scale, stop, full, e_t, lc, meas, err, reached, psum):
    """Pooled measurement (docs/model.md section 6.13): each pool's measured
    units at each measurement, summed over its members in bond order (row
    ``pool * M + i`` of ``psum``), before any bond is paid. Each member's
    measurement is recomputed from the chunk's draws by the phases the bond
    loop runs (same arithmetic, so the same values); the buffers from
    ``scale`` to ``reached`` are scratch, reset by the bond loop."""
    m_max = measurements.time.shape[1]
    for q in range(psum.shape[0]):
        for j in range(m):
            psum[q, j] = 0.0
    c0 = ctype + programme.n_types
    for b in range(bonds.pool.shape[0]):
        p = bonds.pool[b]
        if p < 0:
            continue
        copula_share(programme, bonds, b, z, ctype, c0 + b, zglob, m, scale)
        early = delivery_stop(programme, bonds, b, fail, m, stop, full)
        for i in range(bonds.nmeas[b]):
            true_effect(measurements, bonds, b, i, scale, stop, full, early, m, e_t)
            measure_chunk(series, bonds, measurements, b, i, e_t, xs, es, m, lc, meas, err,
                          reached)
            row = p * m_max + i
            for j in range(m):
                psum[row, j] += meas[j]


@_no_refcount
def pooled_basis_chunk(bonds, measurements, b, i, psum, lc, m, basis, reached):
    """What pooled member ``b`` is paid on at measurement ``i``: its target times
    the pool's performance (summed measured over summed target), its threshold
    against its own control group's prediction (``lc`` as
    :func:`measure_chunk` left it for this bond and measurement)."""
    m_max = measurements.time.shape[1]
    row = bonds.pool[b] * m_max + i
    target = bonds.target[b]
    pool_target = bonds.pool_target[b]
    for j in range(m):
        basis[j] = target * (psum[row, j] / pool_target)
    basis_reached_chunk(bonds, measurements, b, i, basis, lc, m, reached)
