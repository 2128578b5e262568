"""The Monte Carlo kernel: one block of scenarios of a whole world.

Named groups of arrays in (:mod:`lobsim.kernels.contract`), a preallocated
:class:`~lobsim.kernels.contract.Outputs` last (STYLE 2); jit-compiled with
numba (``nogil`` so that blocks run in parallel on a thread pool). The model
layer (:mod:`lobsim.model.world`) builds every group from a config; this module
imports nothing from lobsim outside the kernels. :func:`simulate_block` is a
sequence of phases, each a small jitted function with an independently written
plain-Python twin in :mod:`lobsim.kernels.twins` (tests/test_kernel_phases.py
checks each pair on random inputs).

What is drawn (docs/model.md sections 9.4 and 10), per scenario and in this order:

1. every factor (national per outcome, regional per touched outcome-region)
   at every measurement date, by its exact k-step AR(1) transition;
2. every touched series (area x outcome) at the dates it is measured: one
   normal per date through a Cholesky factor of its area-specific states
   (donors: with the measurement noise folded in; treated series: the noise
   separately, since the programme's effect sits between state and noise);
3. the programme: a global factor, one factor per intervention type, one
   idiosyncratic normal per bond; then one exponential per provider with a
   positive failure hazard.

Everything else is arithmetic on precomputed tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from lobsim.kernels.contract import KIND_COUNT, MECH_BINARY, MECH_SCHEDULE, MECH_UNITS
from lobsim.kernels.irr import irr_guess, solve_irr, solve_irr_years


@njit(cache=True, nogil=True)
def ramp_value(x, kt, kv):
    """Cumulative share delivered ``x`` years after the start.

    The ramp is piecewise linear through the knots ``(kt[i], kv[i])`` (times
    increasing from 0, values ending at 1), 0 before any time has passed and 1
    after the last knot.
    """
    if x <= 0.0:
        return 0.0
    n = kt.shape[0]
    if x >= kt[n - 1]:
        return 1.0
    i = 1
    while kt[i] < x:
        i += 1
    return kv[i - 1] + (x - kt[i - 1]) / (kt[i] - kt[i - 1]) * (kv[i] - kv[i - 1])


@njit(cache=True, nogil=True)
def effect_fraction(h, horizon, kt, kv, relpow):
    """Share of ``target x theta`` standing at ``horizon`` years after the start.

    Delivery follows the ramp (:func:`ramp_value`) but stops ``h`` years
    after the start (provider failure) and is counted up to ``horizon`` at
    most (a failure after the date cannot add to it); what was delivered in
    year s survives with ``relpow[s - 1] = (1 - lambda)^max(0, horizon - s)``
    (docs/model.md section 5.4).
    """
    total = 0.0
    prev = 0.0
    n_years = math.ceil(horizon)
    for s in range(1, n_years + 1):
        x = min(float(s), h, horizon)
        cum = ramp_value(x, kt, kv)
        total += (cum - prev) * relpow[s - 1]
        prev = cum
        if x >= h:
            break
    return total


@njit(cache=True, nogil=True)
def schedule_amount(performance, perf, amount, n):
    """Payment of a return grid: the highest step ``perf[k] <= performance``."""
    out = 0.0
    for k in range(n):
        if performance >= perf[k]:
            out = amount[k]
    return out


# ---------------------------------------------------------------------------
# The phases of a scenario, in the order simulate_block runs them. Each has a
# plain-Python twin in lobsim.kernels.twins, tested against it.
#
# Phases that allocate nothing are compiled without reference counting
# (``_nrt=False``): each field read from a group is otherwise an atomic
# incref/decref pair, and the per-bond phases read dozens per bond and
# scenario (the basket demo ran 5-8x slower with them).
# ---------------------------------------------------------------------------
_no_refcount = njit(cache=True, nogil=True, _nrt=False)  # type: ignore[call-overload]


@_no_refcount
def draw_scenario(gen, zbuf, fail, programme):
    """Every random number of a scenario: ``zbuf.size`` normals, then one
    exponential per provider with a positive hazard (``fail``: its failure time
    in years after base, inf for a provider that never fails)."""
    for k in range(zbuf.shape[0]):
        zbuf[k] = gen.standard_normal()
    hazard = programme.hazard
    for p in range(hazard.shape[0]):
        if hazard[p] > 0.0:
            fail[p] = programme.origin[p] + gen.standard_exponential() / hazard[p]
        else:
            fail[p] = np.inf


@_no_refcount
def factor_paths(factors, zbuf, c, fac):
    """1. Every factor at every global date by its exact k-step transition,
    into ``fac`` (F, D); returns the cursor past the normals used."""
    n_f, n_d = factors.phik.shape
    for f in range(n_f):
        state = factors.state0[f]
        for d in range(n_d):
            state = factors.phik[f, d] * state + factors.sdk[f, d] * zbuf[c]
            c += 1
            fac[f, d] = state
    return c


@_no_refcount
def series_states(series, fac, zbuf, c, xs, es):
    """2. Log states of every series at its dates, flattened into ``xs`` (series
    ``s``, date ``j`` at ``s * Dmax + j``); a treated series' noise normals into
    ``es``. Donors draw their states and noise jointly (the noise is folded into
    their Cholesky factor). Returns the cursor."""
    dmax = series.dates.shape[1]
    for s in range(series.national.shape[0]):
        nd = series.ndates[s]
        fn = series.national[s]
        fg = series.regional[s]
        for j in range(nd):
            acc = series.const[s, j]
            for i in range(j + 1):
                acc += series.chol[s, j, i] * zbuf[c + i]
            d = series.dates[s, j]
            xs[s * dmax + j] = acc + series.beta[s] * fac[fn, d] + series.gamma[s] * fac[fg, d]
        c += nd
        if series.treated[s]:
            for j in range(nd):
                es[s * dmax + j] = zbuf[c + j]
            c += nd
    return c


@_no_refcount
def programme_factors(programme, zbuf, c):
    """3. The copula's global and type factors, shifted for importance sampling.

    The type factors are shifted in place in ``zbuf``. Returns the global
    factor, the scenario's log likelihood ratio (of N(0,1) to N(m,1) at z:
    ``-m z + m^2 / 2``), the position of the first type factor and the cursor
    (at the bonds' own normals).
    """
    tg = programme.tilt_global
    zglob = zbuf[c] + tg
    logw = -tg * zglob + 0.5 * tg * tg
    c += 1
    ctype = c
    for ty in range(programme.n_types):
        m = programme.tilt_type[ty]
        zbuf[c] += m
        logw += -m * zbuf[c] + 0.5 * m * m
        c += 1
    return zglob, logw, ctype, c


@_no_refcount
def success_share(programme, b, zb):
    """theta = F_Beta^-1(Phi(zb)) of bond ``b``'s type, by linear interpolation
    in its z table (clamped at the ends)."""
    table = programme.theta_table
    ty = programme.bond_type[b]
    n_tab = table.shape[1]
    u = (zb - programme.z_lo) / programme.z_step
    if u <= 0.0:
        return table[ty, 0]
    if u >= n_tab - 1:
        return table[ty, n_tab - 1]
    iu = int(u)
    return table[ty, iu] + (u - iu) * (table[ty, iu + 1] - table[ty, iu])


@_no_refcount
def yearly_savings(savings, bonds, b, scale, stop, full, sv_dense, dsav):
    """Department savings of bond ``b`` in every year, added to ``dsav``
    (flat department x year). Without a failure they are ``scale`` times a
    fixed table (``sv_dense``, from :func:`dense_savings`); with one, the
    effect standing at each year end is computed (savings counted once at
    maturity are added by :func:`maturity_savings`)."""
    n_years = savings.year_horizon.shape[1]
    if full:
        for q in range(dsav.shape[0]):
            dsav[q] += scale * sv_dense[b, q]
        return
    for y in range(n_years):
        hz = savings.year_horizon[b, y]
        if hz <= 0.0:
            continue
        e_y = scale * effect_fraction(stop, hz, bonds.ramp_time[b], bonds.ramp_share[b],
                                      savings.year_relapse[b, y])
        for q in range(savings.n[b]):
            if not savings.once[b, q]:
                dsav[savings.department[b, q] * n_years + y] += savings.amount[b, q] * e_y


@_no_refcount
def maturity_savings(savings, bonds, b, e_t, dsav):
    """Savings counted once (per unit at maturity) of a bond whose provider failed."""
    n_years = savings.year_horizon.shape[1]
    for q in range(savings.n[b]):
        if savings.once[b, q]:
            dsav[savings.department[b, q] * n_years + bonds.maturity_year[b]] += (
                savings.amount[b, q] * e_t)


@njit(cache=True, nogil=True)
def dense_savings(savings, n_dep):
    """(B, departments x Y) fixed saving rates of a bond delivering in full: one
    contiguous multiply-add per bond instead of a scatter."""
    n_b = savings.fast_n.shape[0]
    n_years = savings.year_horizon.shape[1]
    sv_dense = np.zeros((n_b, n_dep * n_years))
    for b in range(n_b):
        for q in range(savings.fast_n[b]):
            sv_dense[b, savings.fast_department[b, q] * n_years + savings.fast_year[b, q]] += (
                savings.fast_rate[b, q])
    return sv_dense


@_no_refcount
def true_units(bonds, measurements, b, i, scale, stop, full):
    """True units standing at measurement ``i``: ``scale`` (success x target) times
    the share delivered, the full one unless the provider failed ``stop`` years in."""
    if full:
        return scale * measurements.full_share[b, i]
    return scale * effect_fraction(stop, measurements.horizon[b, i], bonds.ramp_time[b],
                                   bonds.ramp_share[b], measurements.relapse[b, i])


@_no_refcount
def measure(series, bonds, measurements, b, i, e_t, xs, es):
    """4. What measurement ``i`` of bond ``b`` measures when ``e_t`` units are truly
    achieved. Returns (measured units, prediction error of the control group,
    threshold reached).

    The observed outcome is the no-programme path less the true effect, times
    the noise. The gap is written as the control group's prediction error plus
    the observed effect, so that a world without noise measures exactly the
    true units.
    """
    jt = measurements.state[b, i]
    sig = series.noise_sd[bonds.series[b]]
    log_noise = sig * es[jt] - 0.5 * sig * sig
    y_noisy = math.exp(xs[jt] + log_noise)
    lc = 0.0
    for j in range(bonds.ndonors[b]):
        lc += bonds.weight[b, j] * xs[measurements.donor_state[b, i, j]]
    yhat = bonds.base_level[b] * math.exp(lc)
    gap = yhat - y_noisy
    thr = measurements.threshold[b, i]
    if bonds.verified[b]:
        # a rate card: no comparison group, the true units are measured and paid for
        meas = e_t
        reached = meas >= thr * (bonds.base_level[b] if bonds.kind[b] == KIND_COUNT else 100.0)
        return meas, 0.0, reached
    if bonds.kind[b] == KIND_COUNT:
        if e_t > 0.0:
            noise = math.exp(log_noise)
            meas = gap + min(e_t, y_noisy / noise) * noise
        else:
            meas = gap
        return meas, gap, meas >= thr * yhat
    err = 100.0 * gap / yhat
    meas = err + min(e_t, 100.0) * (y_noisy / yhat)
    return meas, err, meas >= 100.0 * thr


@_no_refcount
def shrunk_basis(bonds, measurements, b, i, meas, xs):
    """4b. What a shrunk bond pays on at measurement ``i``, ``k meas + (1 - k) prior``
    (in this order: ``k = 1`` gives ``meas`` bit for bit), and whether it reaches
    the threshold (:func:`basis_reached`: the contract tests what it pays on)."""
    k = bonds.shrink_k[b]
    basis = k * meas + (1.0 - k) * measurements.prior[b, i]
    return basis, basis_reached(bonds, measurements, b, i, basis, xs)


@_no_refcount
def basis_reached(bonds, measurements, b, i, basis, xs):
    """Whether what a bond pays on (a shrunk or pooled ``basis``) reaches the
    threshold :func:`measure` tests the measurement against."""
    thr = measurements.threshold[b, i]
    count = bonds.kind[b] == KIND_COUNT
    if bonds.verified[b]:
        return basis >= thr * (bonds.base_level[b] if count else 100.0)
    if count:
        lc = 0.0
        for j in range(bonds.ndonors[b]):
            lc += bonds.weight[b, j] * xs[measurements.donor_state[b, i, j]]
        return basis >= thr * (bonds.base_level[b] * math.exp(lc))
    return basis >= 100.0 * thr


@_no_refcount
def payment(bonds, measurements, payments, b, i, meas, reached, paid, cash, gpaid):
    """5. The payment of measurement ``i`` of bond ``b``: returns (units paid
    for, cash, cumulative units paid for after it).

    ``paid`` and ``cash`` are the bond's units and cash so far; caps in cash (a
    maximum return, and a cap shared by a group of bonds, taken in bond order
    within a scenario: ``gpaid`` is updated) cut the payment.
    """
    units = 0.0
    amount = 0.0
    mech = bonds.mechanism[b]
    if mech == MECH_BINARY:
        if meas >= bonds.trigger[b] * bonds.target[b]:
            units = bonds.target[b]
            amount = bonds.amount[b]
    elif mech == MECH_SCHEDULE:
        units = min(max(meas, 0.0), measurements.cap[b, i])
        amount = schedule_amount(meas / bonds.target[b], bonds.grid_performance[b],
                                 bonds.grid_amount[b], bonds.ngrid[b])
    new_paid = paid
    if mech == MECH_UNITS and reached:
        cum = min(max(meas, 0.0), measurements.cap[b, i])
        if cum > paid:
            units = cum - paid
            amount = units * bonds.price[b]
            new_paid = cum
    room = measurements.cash_cap[b, i] - cash
    grp = bonds.cap_group[b]
    if grp >= 0:
        room = min(room, payments.group_cap[grp] - gpaid[grp])
    if amount > room:
        amount = max(room, 0.0)
        if mech == MECH_UNITS:
            units = amount / bonds.price[b]
            new_paid = paid + units
    if grp >= 0:
        gpaid[grp] += amount
    if mech != MECH_UNITS:
        new_paid = units if amount > 0.0 else 0.0
    return units, amount, new_paid


@_no_refcount
def charge_departments(payments, b, mech, year, units, amount, dpay, n_years):
    """6. Split a payment of bond ``b`` (mechanism ``mech``) in payment year
    ``year`` over its payers' departments (``dpay``: flat department x year):
    per unit for a units bond, by share of the cash plus a premium per unit
    otherwise."""
    for q in range(payments.npayers[b]):
        if mech == MECH_UNITS:
            dp = payments.per_unit[b, q] * units
        else:
            dp = payments.share[b, q] * amount + payments.premium[b, q] * units
        dpay[payments.department[b, q] * n_years + year] += dp


@_no_refcount
def overpayment(bonds, b, e_t, paid, cash, last_cash):
    """What bond ``b`` paid beyond what the true effect ``e_t`` would have earned
    (``last_cash``: the payment of its last measurement, for a return grid)."""
    mech = bonds.mechanism[b]
    if mech == MECH_BINARY:
        return cash if e_t < bonds.trigger[b] * bonds.target[b] else 0.0
    if mech == MECH_SCHEDULE:
        earned = schedule_amount(e_t / bonds.target[b], bonds.grid_performance[b],
                                 bonds.grid_amount[b], bonds.ngrid[b])
        return max(0.0, last_cash - earned)
    return max(0.0, paid - e_t) * bonds.price[b]


@_no_refcount
def bond_irr(principal, cash, btime, bflow, nf):
    """The investor IRR of one bond from its flows ``1..nf-1`` at ``btime``
    (years after its start); -1 if nothing is paid. One payment has a closed
    form; several need the root-finder (flow 0 becomes the principal)."""
    if cash <= 0.0:
        return -1.0
    if nf == 2:
        return (cash / principal) ** (1.0 / btime[1]) - 1.0
    bflow[0] = -principal
    btime[0] = 0.0
    return solve_irr(btime, bflow, nf, irr_guess(btime, bflow, nf))


@_no_refcount
def basket_flows(baskets, bonds, measurements, payments, bcash, kflow, out, r):
    """7. Every basket's cash flows on the shared time grid, its payments and IRR
    into row ``r`` of ``out`` (a basket with mixed starts and maturities needs
    a real root-finder; whole-year grids a polynomial one)."""
    n_t = baskets.time.shape[0]
    for k in range(baskets.size.shape[0]):
        for t in range(n_t):
            kflow[t] = 0.0
        paid_k = 0.0
        for jb in range(baskets.size[k]):
            b = baskets.members[k, jb]
            kflow[bonds.start_time[b]] -= bonds.principal[b]
            for i in range(bonds.nmeas[b]):
                kflow[measurements.time_index[b, i]] += bcash[b, i]
                paid_k += bcash[b, i]
            for i in range(payments.ncoupons[b]):
                kflow[payments.coupon_time_index[b, i]] += payments.coupon_amount[b, i]
                paid_k += payments.coupon_amount[b, i]
        for t in range(n_t):
            out.basket_cashflow[r, k, t] = kflow[t] + baskets.principal_at[k, t]  # payments only
        out.basket_payment[r, k] = paid_k
        guess = irr_guess(baskets.time, kflow, n_t)
        if baskets.whole_years:
            out.basket_irr[r, k] = solve_irr_years(baskets.steps, baskets.time, kflow, n_t, guess)
        else:
            out.basket_irr[r, k] = solve_irr(baskets.time, kflow, n_t, guess)


@_no_refcount
def pooled_sums(programme, series, bonds, measurements, zbuf, ctype, zglob, fail, xs, es, psum):
    """Pooled measurement (docs/model.md 6.13): ``psum`` (pool x measurement), the
    members' measured units summed in bond order, as the bond loop measures them."""
    for q in range(psum.shape[0]):
        for i in range(psum.shape[1]):
            psum[q, i] = 0.0
    c0 = ctype + programme.n_types
    for b in range(bonds.pool.shape[0]):
        p = bonds.pool[b]
        if p < 0:
            continue
        zb = (programme.load_type[b] * zbuf[ctype + programme.bond_type[b]]
              + programme.load_global[b] * zglob + programme.load_own[b] * zbuf[c0 + b])
        scale = success_share(programme, b, zb) * bonds.target[b]
        stop = fail[programme.bond_provider[b]] - bonds.start[b]
        full = stop >= bonds.horizon[b]
        for i in range(bonds.nmeas[b]):
            e_t = true_units(bonds, measurements, b, i, scale, stop, full)
            meas, _, _ = measure(series, bonds, measurements, b, i, e_t, xs, es)
            psum[p, i] += meas


@_no_refcount
def pooled_basis(bonds, measurements, b, i, psum, xs):
    """What pooled member ``b`` is paid on at measurement ``i`` and whether it
    reaches its threshold: its target times the pool's performance (summed
    measured over summed target), the threshold against its own control
    group's prediction, as in :func:`measure`."""
    basis = bonds.target[b] * (psum[bonds.pool[b], i] / bonds.pool_target[b])
    return basis, basis_reached(bonds, measurements, b, i, basis, xs)


@njit(cache=True, nogil=True)
def simulate_block(gen, n, factors, series, programme, bonds, measurements, savings, payments,
                   baskets, out):
    """Simulate ``n`` scenarios into rows ``0..n-1`` of ``out``.

    The world's groups and the :class:`~lobsim.kernels.contract.Outputs` are
    described in :mod:`lobsim.kernels.contract`. A scenario runs the phases in
    order: draw every random number (:func:`draw_scenario`), factor paths,
    series states, programme factors; then bond by bond its success share,
    savings, measurements and payments (with department charges, coupons,
    overpayment and IRR); last the baskets. ``out.log_weight`` is the log
    likelihood ratio of each scenario when the global and type factors are
    drawn with shifted means (importance sampling, Glasserman and Li 2005;
    zero without shifts); ``out.dated_payment`` the payment of each slot of
    the bonds paying at several dates (bond ``b``'s measurements at
    ``bonds.slot[b] + i``, then its coupons).
    """
    n_f, n_d = factors.phik.shape
    n_s = series.national.shape[0]
    n_b = bonds.start.shape[0]
    n_t = baskets.time.shape[0]
    n_years = savings.year_horizon.shape[1]
    dmax = series.dates.shape[1]
    m_max = measurements.time.shape[1]
    n_dep = out.department_saving.shape[1]

    # every normal of a scenario is drawn first, in one tight loop
    n_norm = n_f * n_d + 1 + programme.n_types + n_b
    for s in range(n_s):
        n_norm += series.ndates[s] * (2 if series.treated[s] else 1)
    zbuf = np.empty(n_norm)
    fac = np.empty((n_f, n_d))
    xs = np.empty(n_s * dmax)
    es = np.zeros(n_s * dmax)
    fail = np.empty(programme.hazard.shape[0])
    bflow = np.empty(m_max + payments.coupon_amount.shape[1] + 1)
    btime = np.empty(m_max + payments.coupon_amount.shape[1] + 1)
    gpaid = np.zeros(payments.group_cap.shape[0])
    kflow = np.empty(n_t)
    bcash = np.zeros((n_b, m_max))
    sv_dense = dense_savings(savings, n_dep)
    dsav = np.empty(n_dep * n_years)
    dpay = np.empty(n_dep * n_years)
    n_pools = 0
    for b in range(n_b):
        n_pools = max(n_pools, bonds.pool[b] + 1)
    psum = np.zeros((max(n_pools, 1), m_max))

    for r in range(n):
        draw_scenario(gen, zbuf, fail, programme)
        c = factor_paths(factors, zbuf, 0, fac)
        c = series_states(series, fac, zbuf, c, xs, es)
        zglob, logw, ctype, c = programme_factors(programme, zbuf, c)
        out.log_weight[r] = logw

        dsav[:] = 0.0
        dpay[:] = 0.0
        for g in range(gpaid.shape[0]):
            gpaid[g] = 0.0
        if n_pools > 0:
            pooled_sums(programme, series, bonds, measurements, zbuf, ctype, zglob, fail, xs,
                        es, psum)

        for b in range(n_b):
            zb = (programme.load_type[b] * zbuf[ctype + programme.bond_type[b]]
                  + programme.load_global[b] * zglob + programme.load_own[b] * zbuf[c])
            c += 1
            scale = success_share(programme, b, zb) * bonds.target[b]
            # delivery horizon cut by the provider's failure
            stop = fail[programme.bond_provider[b]] - bonds.start[b]
            full = stop >= bonds.horizon[b]
            yearly_savings(savings, bonds, b, scale, stop, full, sv_dense, dsav)

            paid = 0.0
            cash = 0.0
            e_t = 0.0
            meas = 0.0
            err = 0.0
            mech = bonds.mechanism[b]
            shrunk = bonds.shrunk[b]
            nm = bonds.nmeas[b]
            for i in range(nm):
                bcash[b, i] = 0.0
                e_t = true_units(bonds, measurements, b, i, scale, stop, full)
                meas, err, reached = measure(series, bonds, measurements, b, i, e_t, xs, es)
                pay_on = meas
                if bonds.pool[b] >= 0:
                    pay_on, reached = pooled_basis(bonds, measurements, b, i, psum, xs)
                elif shrunk:
                    pay_on, reached = shrunk_basis(bonds, measurements, b, i, meas, xs)
                units, amount, paid = payment(bonds, measurements, payments, b, i, pay_on,
                                              reached, paid, cash, gpaid)
                if amount > 0.0:
                    bcash[b, i] = amount
                    cash += amount
                    charge_departments(payments, b, mech, measurements.year[b, i], units,
                                       amount, dpay, n_years)
                bflow[i + 1] = amount
                btime[i + 1] = measurements.time[b, i] - bonds.start[b]
            # fixed coupons, whatever the outcome, split by payer share
            nf = nm + 1
            for k in range(payments.ncoupons[b]):
                amount = payments.coupon_amount[b, k]
                cash += amount
                for q in range(payments.npayers[b]):
                    dpay[payments.department[b, q] * n_years + payments.coupon_year[b, k]] += (
                        payments.share[b, q] * amount)
                bflow[nf] = amount
                btime[nf] = payments.coupon_time[b, k] - bonds.start[b]
                nf += 1

            # payments by date of bonds paying at several dates (no draws here)
            if bonds.dated[b]:
                off = bonds.slot[b]
                for i in range(nm):
                    out.dated_payment[r, off + i] = bcash[b, i]
                for k in range(payments.ncoupons[b]):
                    out.dated_payment[r, off + nm + k] = payments.coupon_amount[b, k]
            if not full:
                maturity_savings(savings, bonds, b, e_t, dsav)

            principal = bonds.principal[b]
            out.true_units[r, b] = e_t
            out.measured_units[r, b] = meas
            out.prediction_error[r, b] = err
            out.paid_units[r, b] = paid
            out.investor_payment[r, b] = cash
            out.default[r, b] = cash < principal
            out.total_loss[r, b] = cash == 0.0
            out.overpayment[r, b] = overpayment(bonds, b, e_t, paid, cash, bcash[b, nm - 1])
            out.irr[r, b] = bond_irr(principal, cash, btime, bflow, nf)

        for dep in range(n_dep):
            for y in range(n_years):
                out.department_payment[r, dep, y] = dpay[dep * n_years + y]
                out.department_saving[r, dep, y] = dsav[dep * n_years + y]
        basket_flows(baskets, bonds, measurements, payments, bcash, kflow, out, r)
    return 0
