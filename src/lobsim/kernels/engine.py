"""The Monte Carlo kernel: one block of scenarios of a whole world.

Plain arrays in, preallocated outputs last (STYLE 2); jit-compiled with numba
(``nogil`` so that blocks run in parallel on a thread pool). The model layer
(:mod:`lobsim.model.simulate`) builds every array here from a config; this module
imports nothing else from lobsim.

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

MECH_UNITS = 0  # per_unit and threshold: pay per measured unit
MECH_BINARY = 1  # a fixed sum on a trigger
MECH_SCHEDULE = 2  # a return grid on measured performance
KIND_COUNT = 0
KIND_PERCENT = 1


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


@njit(cache=True, nogil=True)
def schedule_amount(performance, perf, amount, n):
    """Payment of a return grid: the highest step ``perf[k] <= performance``."""
    out = 0.0
    for k in range(n):
        if performance >= perf[k]:
            out = amount[k]
    return out


@njit(cache=True, nogil=True)
def simulate_block(
    gen,
    n,
    # factors: k-step AR(1) coefficients and sds per global date, base states
    f_phik, f_sdk, f_state0,
    # series (touched area x outcome): states at their dates
    s_nat, s_reg, s_beta, s_gamma, s_sige, s_treated, s_ndates, s_dates, s_const, s_chol,
    d_time,
    # programme (and the importance-sampling shifts of its factors' means)
    n_types, b_type, b_atype, b_aglob, b_aeps, theta_table, z_lo, z_step, is_glob, is_type,
    b_provider, p_hazard, p_origin,
    # bonds
    b_start, b_target, b_price, b_principal, b_kind, b_mech, b_trigger, b_amount,
    b_series, b_yobs0, b_ndonors, b_donor, b_weight,
    b_nmeas, m_tpos, m_dpos, m_time, m_thr, m_cap, m_year, m_tidx, b_tstart,
    b_kt, b_kv, m_horizon, m_gfull, m_relpow,
    # department savings: fast path (no failure) and the exact slow path
    b_hmax, sv_n, sv_dep, sv_year, sv_rate,
    y_horizon, y_relpow, b_nsav, sav_dept, sav_amount, sav_once, b_matyear,
    # department payments
    b_npay, pay_dept, pay_unit, pay_share, pay_prem,
    # schedules (return grids), cash caps, coupons and cap groups
    b_ng, g_perf, g_amount, m_cashcap, b_ncoup, c_amount, c_time, c_tidx, c_year,
    b_group, g_cap,
    # baskets (members listed) and the cash-flow time grid; t_steps[0] < 0
    # unless every date is a whole number of years
    k_member, k_size, k_list, k_principal_at, t_grid, t_steps,
    # payment slots: offset of each bond paying at several dates, -1 otherwise
    b_doff,
    # outputs
    out_true, out_meas, out_err, out_paid, out_pay, out_over, out_irr, out_default, out_loss,
    out_dpay, out_dsav, out_kpay, out_kirr, out_kcash, out_logw, out_dpaid,
):
    """Simulate ``n`` scenarios into rows ``0..n-1`` of the outputs.

    Shapes: F factors, D global dates, S series, B bonds, M measurements per
    bond at most, Y years, P providers, K baskets, T cash-flow times.
    ``s_const[s, j]`` is everything in series ``s``'s log level at its
    ``j``-th date that does not depend on the draws (for donors less their
    observed base log level and the noise's mean correction).
    Outputs: ``out_*`` of bonds ``(n, B)`` (``out_err``: what the bond would
    measure at maturity with no true effect, the control group's prediction
    error); ``out_dpay``/``out_dsav`` ``(n, departments, Y)``;
    ``out_kpay``/``out_kirr`` ``(n, K)``; ``out_kcash`` ``(n, K, T)``: basket
    payments at each cash-flow time; ``out_logw`` ``(n,)``: the log likelihood
    ratio of each scenario when the global and type factors are drawn with
    shifted means ``is_glob``, ``is_type`` (importance sampling, Glasserman
    and Li 2005; zero without shifts); ``out_dpaid`` ``(n, P)``: the payment
    of each slot of the bonds paying at several dates (bond ``b``'s
    measurements at ``b_doff[b] + i``, then its coupons; P may be 0).
    """
    n_f, n_d = f_phik.shape
    n_s = s_nat.shape[0]
    n_b = b_start.shape[0]
    n_p = p_hazard.shape[0]
    n_k = k_member.shape[0]
    n_t = t_grid.shape[0]
    n_years = y_horizon.shape[1]
    n_tab = theta_table.shape[1]
    dmax = s_dates.shape[1]

    # every normal of a scenario is drawn first, in one tight loop
    n_norm = n_f * n_d + 1 + n_types + n_b
    for s in range(n_s):
        n_norm += s_ndates[s] * (2 if s_treated[s] else 1)
    zbuf = np.empty(n_norm)
    fac = np.empty((n_f, n_d))
    # states flattened: series s, date j at s * dmax + j (positions precomputed)
    xs = np.empty(n_s * dmax)
    es = np.zeros(n_s * dmax)
    fail = np.empty(n_p)
    bflow = np.empty(m_time.shape[1] + c_amount.shape[1] + 1)
    btime = np.empty(m_time.shape[1] + c_amount.shape[1] + 1)
    gpaid = np.zeros(g_cap.shape[0])
    kflow = np.empty(n_t)
    bcash = np.zeros((n_b, m_time.shape[1]))
    # department savings of a bond delivering in full are its true units times
    # fixed rates: a dense (bond, department x year) table makes them one
    # contiguous multiply-add per bond instead of a scatter
    n_dep = out_dsav.shape[1]
    sv_dense = np.zeros((n_b, n_dep * n_years))
    for b in range(n_b):
        for q in range(sv_n[b]):
            sv_dense[b, sv_dep[b, q] * n_years + sv_year[b, q]] += sv_rate[b, q]
    dsav = np.empty(n_dep * n_years)
    dpay = np.empty(n_dep * n_years)

    for r in range(n):
        for k in range(n_norm):
            zbuf[k] = gen.standard_normal()
        for p in range(n_p):
            if p_hazard[p] > 0.0:
                fail[p] = p_origin[p] + gen.standard_exponential() / p_hazard[p]
            else:
                fail[p] = np.inf
        c = 0  # cursor into zbuf

        # 1. factors at every global date, exact k-step transitions
        for f in range(n_f):
            state = f_state0[f]
            for d in range(n_d):
                state = f_phik[f, d] * state + f_sdk[f, d] * zbuf[c]
                c += 1
                fac[f, d] = state
        # 2. series: area-specific states (and, for donors, noise) jointly
        for s in range(n_s):
            nd = s_ndates[s]
            fn = s_nat[s]
            fg = s_reg[s]
            for j in range(nd):
                acc = s_const[s, j]
                for i in range(j + 1):
                    acc += s_chol[s, j, i] * zbuf[c + i]
                d = s_dates[s, j]
                xs[s * dmax + j] = acc + s_beta[s] * fac[fn, d] + s_gamma[s] * fac[fg, d]
            c += nd
            if s_treated[s]:
                for j in range(nd):
                    es[s * dmax + j] = zbuf[c + j]
                c += nd
        # 3. programme: copula factors, shifted for importance sampling; the
        # likelihood ratio of N(0,1) to N(m,1) at z is exp(-m z + m^2 / 2)
        zglob = zbuf[c] + is_glob
        logw = -is_glob * zglob + 0.5 * is_glob * is_glob
        c += 1
        ctype = c
        for ty in range(n_types):
            zbuf[c] += is_type[ty]
            logw += -is_type[ty] * zbuf[c] + 0.5 * is_type[ty] * is_type[ty]
            c += 1
        out_logw[r] = logw

        dsav[:] = 0.0
        dpay[:] = 0.0
        for g in range(g_cap.shape[0]):
            gpaid[g] = 0.0

        for b in range(n_b):
            ty = b_type[b]
            zb = b_atype[b] * zbuf[ctype + ty] + b_aglob[b] * zglob + b_aeps[b] * zbuf[c]
            c += 1
            # theta = F_Beta^-1(Phi(zb)) by linear interpolation in the z table
            u = (zb - z_lo) / z_step
            if u <= 0.0:
                theta = theta_table[ty, 0]
            elif u >= n_tab - 1:
                theta = theta_table[ty, n_tab - 1]
            else:
                iu = int(u)
                theta = theta_table[ty, iu] + (u - iu) * (
                    theta_table[ty, iu + 1] - theta_table[ty, iu])
            scale = theta * b_target[b]
            stop = fail[b_provider[b]] - b_start[b]  # delivery horizon cut by failure
            full = stop >= b_hmax[b]

            # true effect at each year end, for savings
            if full:
                for q in range(n_dep * n_years):
                    dsav[q] += scale * sv_dense[b, q]

            else:
                for y in range(n_years):
                    hz = y_horizon[b, y]
                    if hz <= 0.0:
                        continue
                    e_y = scale * effect_fraction(stop, hz, b_kt[b], b_kv[b], y_relpow[b, y])
                    for q in range(b_nsav[b]):
                        if not sav_once[b, q]:
                            dsav[sav_dept[b, q] * n_years + y] += sav_amount[b, q] * e_y

            # measurements and payments
            sb = b_series[b]
            paid = 0.0
            cash = 0.0
            e_t = 0.0
            meas = 0.0
            err = 0.0
            nm = b_nmeas[b]
            for i in range(nm):
                bcash[b, i] = 0.0
                if full:
                    e_t = scale * m_gfull[b, i]
                else:
                    e_t = scale * effect_fraction(stop, m_horizon[b, i], b_kt[b], b_kv[b],
                                                  m_relpow[b, i])
                jt = m_tpos[b, i]
                sig = s_sige[sb]
                log_noise = sig * es[jt] - 0.5 * sig * sig
                y_noisy = math.exp(xs[jt] + log_noise)
                lc = 0.0
                for j in range(b_ndonors[b]):
                    lc += b_weight[b, j] * xs[m_dpos[b, i, j]]
                yhat = b_yobs0[b] * math.exp(lc)
                # The observed outcome is the no-programme path less the true
                # effect, times the noise. The gap is written as the control
                # group's prediction error plus the observed effect, so that a
                # world without noise measures exactly the true units.
                gap = yhat - y_noisy
                if b_ndonors[b] < 0:
                    # verified outcomes (a rate card): no comparison group, the
                    # true units are what is measured and paid for
                    err = 0.0
                    meas = e_t
                    reached = meas >= m_thr[b, i] * (b_yobs0[b] if b_kind[b] == KIND_COUNT
                                                      else 100.0)
                elif b_kind[b] == KIND_COUNT:
                    err = gap
                    if e_t > 0.0:
                        noise = math.exp(log_noise)
                        meas = gap + min(e_t, y_noisy / noise) * noise
                    else:
                        meas = gap
                    reached = meas >= m_thr[b, i] * yhat
                else:
                    err = 100.0 * gap / yhat
                    meas = err + min(e_t, 100.0) * (y_noisy / yhat)
                    reached = meas >= 100.0 * m_thr[b, i]
                units = 0.0
                amount = 0.0
                mech = b_mech[b]
                if mech == MECH_BINARY:
                    if meas >= b_trigger[b] * b_target[b]:
                        units = b_target[b]
                        amount = b_amount[b]
                elif mech == MECH_SCHEDULE:
                    units = min(max(meas, 0.0), m_cap[b, i])
                    amount = schedule_amount(meas / b_target[b], g_perf[b], g_amount[b], b_ng[b])
                new_paid = paid
                if mech == MECH_UNITS and reached:
                    cum = min(max(meas, 0.0), m_cap[b, i])
                    if cum > paid:
                        units = cum - paid
                        amount = units * b_price[b]
                        new_paid = cum
                # caps in cash: a maximum return, and a cap shared by a group of
                # bonds (taken in bond order within a scenario)
                room = m_cashcap[b, i] - cash
                grp = b_group[b]
                if grp >= 0:
                    room = min(room, g_cap[grp] - gpaid[grp])
                if amount > room:
                    amount = max(room, 0.0)
                    if mech == MECH_UNITS:
                        units = amount / b_price[b]
                        new_paid = paid + units
                if grp >= 0:
                    gpaid[grp] += amount
                if mech != MECH_UNITS:
                    new_paid = units if amount > 0.0 else 0.0
                paid = new_paid
                if amount > 0.0:
                    bcash[b, i] = amount
                    cash += amount
                    yr = m_year[b, i]
                    for q in range(b_npay[b]):
                        if mech == MECH_UNITS:
                            dp = pay_unit[b, q] * units
                        else:
                            dp = pay_share[b, q] * amount + pay_prem[b, q] * units
                        dpay[pay_dept[b, q] * n_years + yr] += dp
                bflow[i + 1] = amount
                btime[i + 1] = m_time[b, i] - b_start[b]
            # fixed coupons, whatever the outcome, split by payer share
            nf = nm + 1
            for k in range(b_ncoup[b]):
                amount = c_amount[b, k]
                cash += amount
                for q in range(b_npay[b]):
                    dpay[pay_dept[b, q] * n_years + c_year[b, k]] += pay_share[b, q] * amount
                bflow[nf] = amount
                btime[nf] = c_time[b, k] - b_start[b]
                nf += 1

            # payments by date of bonds paying at several dates (no draws here)
            off = b_doff[b]
            if off >= 0:
                for i in range(nm):
                    out_dpaid[r, off + i] = bcash[b, i]
                for k in range(b_ncoup[b]):
                    out_dpaid[r, off + nm + k] = c_amount[b, k]

            if not full:
                for q in range(b_nsav[b]):
                    if sav_once[b, q]:
                        dsav[sav_dept[b, q] * n_years + b_matyear[b]] += sav_amount[b, q] * e_t

            principal = b_principal[b]
            out_true[r, b] = e_t
            out_meas[r, b] = meas
            out_err[r, b] = err
            out_paid[r, b] = paid
            out_pay[r, b] = cash
            out_default[r, b] = cash < principal
            out_loss[r, b] = cash == 0.0
            # what was paid beyond what the true effect would have earned
            if b_mech[b] == MECH_BINARY:
                out_over[r, b] = cash if e_t < b_trigger[b] * b_target[b] else 0.0
            elif b_mech[b] == MECH_SCHEDULE:
                earned = schedule_amount(e_t / b_target[b], g_perf[b], g_amount[b], b_ng[b])
                out_over[r, b] = max(0.0, bcash[b, nm - 1] - earned)
            else:
                out_over[r, b] = max(0.0, paid - e_t) * b_price[b]
            if cash <= 0.0:
                out_irr[r, b] = -1.0
            elif nf == 2:
                out_irr[r, b] = (cash / principal) ** (1.0 / btime[1]) - 1.0
            else:
                bflow[0] = -principal
                btime[0] = 0.0
                out_irr[r, b] = solve_irr(btime, bflow, nf, irr_guess(btime, bflow, nf))

        for dep in range(n_dep):
            for y in range(n_years):
                out_dpay[r, dep, y] = dpay[dep * n_years + y]
                out_dsav[r, dep, y] = dsav[dep * n_years + y]

        # 4. baskets: aggregate member cash flows on the shared time grid (a
        # basket with mixed starts and maturities needs a real root-finder)
        for k in range(n_k):
            for t in range(n_t):
                kflow[t] = 0.0
            paid_k = 0.0
            for jb in range(k_size[k]):
                b = k_list[k, jb]
                kflow[b_tstart[b]] -= b_principal[b]
                for i in range(b_nmeas[b]):
                    kflow[m_tidx[b, i]] += bcash[b, i]
                    paid_k += bcash[b, i]
                for i in range(b_ncoup[b]):
                    kflow[c_tidx[b, i]] += c_amount[b, i]
                    paid_k += c_amount[b, i]
            for t in range(n_t):
                out_kcash[r, k, t] = kflow[t] + k_principal_at[k, t]  # payments only
            out_kpay[r, k] = paid_k
            guess = irr_guess(t_grid, kflow, n_t)
            if t_steps[0] >= 0:
                out_kirr[r, k] = solve_irr_years(t_steps, t_grid, kflow, n_t, guess)
            else:
                out_kirr[r, k] = solve_irr(t_grid, kflow, n_t, guess)
    return 0
