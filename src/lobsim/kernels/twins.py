"""Plain-numpy twins of the engine's phases (:mod:`lobsim.kernels.engine`).

Each twin is written independently of its jitted phase (vectorised where the
phase loops, with numpy and scipy where the phase hand-codes: interpolation,
root-finding), takes the same named groups (:mod:`lobsim.kernels.contract`)
and returns what the phase writes instead of writing it in place. They are the
reference the phases are tested against on random inputs
(tests/test_kernel_phases.py): exactly where the arithmetic is the same
operation by operation, to a stated tolerance where the order of a sum or the
algorithm differs. They are slow and never run in a simulation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from lobsim.kernels.contract import (
    KIND_COUNT,
    MECH_BINARY,
    MECH_SCHEDULE,
    MECH_UNITS,
    Baskets,
    Bonds,
    Factors,
    Measurements,
    Payments,
    Programme,
    Savings,
    Series,
)


def draw_scenario(gen: np.random.Generator, n_normals: int,
                  programme: Programme) -> tuple[np.ndarray, np.ndarray]:
    """The normals of a scenario and each provider's failure time (inf: never)."""
    z = gen.standard_normal(n_normals)
    fails = programme.hazard > 0.0
    fail = np.full(programme.hazard.shape, np.inf)
    fail[fails] = (programme.origin[fails]
                   + gen.standard_exponential(int(fails.sum())) / programme.hazard[fails])
    return z, fail


def factor_paths(factors: Factors, z: np.ndarray) -> np.ndarray:
    """(F, D) factor states from (F x D) normals, all factors stepped together."""
    n_f, n_d = factors.phik.shape
    shocks = z[: n_f * n_d].reshape(n_f, n_d)
    fac = np.empty((n_f, n_d))
    state = factors.state0.copy()
    for d in range(n_d):
        state = factors.phik[:, d] * state + factors.sdk[:, d] * shocks[:, d]
        fac[:, d] = state
    return fac


def series_states(series: Series, fac: np.ndarray,
                  z: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(S, Dmax) log states and treated series' noise normals; the normals used."""
    n_s, dmax = series.dates.shape
    xs = np.zeros((n_s, dmax))
    es = np.zeros((n_s, dmax))
    c = 0
    for s in range(n_s):
        nd = int(series.ndates[s])
        dates = series.dates[s, :nd]
        xs[s, :nd] = (series.const[s, :nd] + series.chol[s, :nd, :nd] @ z[c: c + nd]
                      + series.beta[s] * fac[series.national[s], dates]
                      + series.gamma[s] * fac[series.regional[s], dates])
        c += nd
        if series.treated[s]:
            es[s, :nd] = z[c: c + nd]
            c += nd
    return xs, es, c


def programme_factors(programme: Programme, z: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Shifted global and type factors from their raw normals ``z[0]``, ``z[1:]``
    and the log likelihood ratio of the shifted normal densities to N(0, 1)."""
    shift = np.concatenate([[programme.tilt_global], programme.tilt_type])
    shifted = z[: shift.size] + shift
    # log N(x; 0, 1) - log N(x; m, 1) = -m x + m^2 / 2
    logw = float(np.sum(-shift * shifted + 0.5 * shift**2))
    return float(shifted[0]), logw, shifted[1:]


def success_share(programme: Programme, b: int, zb: float) -> float:
    """theta of bond ``b`` at copula value ``zb`` (``np.interp`` in its type's table)."""
    row = programme.theta_table[programme.bond_type[b]]
    grid = programme.z_lo + programme.z_step * np.arange(row.size)
    return float(np.interp(zb, grid, row))


def effect_fraction(h: float, horizon: float, ramp_time: np.ndarray, ramp_share: np.ndarray,
                    relapse: np.ndarray) -> float:
    """Share of target x theta standing ``horizon`` years after the start when
    delivery stops at ``h``: the ramp's yearly increments, each decayed by the
    relapse factor of its year."""
    # year ends, cut at the failure and the horizon; after a failure the ramp
    # stands still, so later increments are zero
    ends = np.minimum(np.arange(1, math.ceil(horizon) + 1, dtype=float), min(h, horizon))
    cum = np.interp(ends, ramp_time, ramp_share)
    cum[ends >= ramp_time[-1]] = 1.0
    cum[ends <= 0.0] = 0.0
    steps = np.diff(np.concatenate([[0.0], cum]))
    return float(np.sum(steps * relapse[: steps.size]))


def bond_savings(savings: Savings, bonds: Bonds, b: int, scale: float, stop: float,
                 full: bool, e_t: float, n_dep: int) -> np.ndarray:
    """(departments, Y) savings of bond ``b``: yearly ones on the effect at each
    year end, once-only ones on the effect at maturity ``e_t``."""
    n_years = savings.year_horizon.shape[1]
    out = np.zeros((n_dep, n_years))
    if full:
        k = int(savings.fast_n[b])
        np.add.at(out, (savings.fast_department[b, :k], savings.fast_year[b, :k]),
                  scale * savings.fast_rate[b, :k])
        return out
    rows = np.arange(int(savings.n[b]))
    yearly, once = rows[~savings.once[b, rows]], rows[savings.once[b, rows]]
    for y in np.flatnonzero(savings.year_horizon[b] > 0.0):
        e_y = scale * effect_fraction(stop, savings.year_horizon[b, y], bonds.ramp_time[b],
                                      bonds.ramp_share[b], savings.year_relapse[b, y])
        np.add.at(out[:, y], savings.department[b, yearly], savings.amount[b, yearly] * e_y)
    np.add.at(out[:, bonds.maturity_year[b]], savings.department[b, once],
              savings.amount[b, once] * e_t)
    return out


def measure(series: Series, bonds: Bonds, measurements: Measurements, b: int, i: int,
            e_t: float, xs: np.ndarray, es: np.ndarray) -> tuple[float, float, bool]:
    """(measured units, control-group prediction error, threshold reached).

    ``xs``, ``es`` flat as the kernel's buffers. The observed outcome is the
    no-programme level times the noise, less the true effect seen through the
    same noise (at most the whole level); the control group predicts the
    no-programme level from its donors' states.
    """
    pos = measurements.state[b, i]
    sd = series.noise_sd[bonds.series[b]]
    noise = math.exp(sd * es[pos] - 0.5 * sd**2)
    level = math.exp(xs[pos])
    k = int(bonds.ndonors[b])
    donors = xs[measurements.donor_state[b, i, :k]]
    predicted = bonds.base_level[b] * math.exp(float(np.dot(bonds.weight[b, :k], donors)))
    thr = measurements.threshold[b, i]
    count = bonds.kind[b] == KIND_COUNT
    if bonds.verified[b]:
        return e_t, 0.0, bool(e_t >= thr * (bonds.base_level[b] if count else 100.0))
    observed = level * noise
    if count:
        err = predicted - observed
        seen = min(e_t, level) * noise if e_t > 0.0 else 0.0
        return err + seen, err, bool(err + seen >= thr * predicted)
    err = 100.0 * (predicted - observed) / predicted
    meas = err + min(e_t, 100.0) * observed / predicted
    return meas, err, bool(meas >= 100.0 * thr)


def shrunk_basis(bonds: Bonds, measurements: Measurements, b: int, i: int, meas: float,
                 xs: np.ndarray) -> tuple[float, bool]:
    """(what a shrunk bond pays on, threshold reached): ``k meas + (1 - k) prior``,
    tested against the level :func:`measure` tests the measurement against."""
    k = bonds.shrink_k[b]
    basis = k * meas + (1.0 - k) * measurements.prior[b, i]
    return basis, _reached(bonds, measurements, b, i, basis, xs)


def pooled_basis(series: Series, bonds: Bonds, measurements: Measurements, b: int, i: int,
                 measured: np.ndarray, xs: np.ndarray) -> tuple[float, bool]:
    """(basis, threshold reached) of pooled bond ``b`` at measurement ``i``, from
    every bond's measured units ``measured`` (B,) at that measurement: the pool's
    summed measured units over its summed target, times the bond's target; the
    threshold as :func:`measure` sets it, on the basis."""
    members = bonds.pool == bonds.pool[b]
    performance = measured[members].sum() / bonds.target[members].sum()
    basis = float(bonds.target[b] * performance)
    return basis, _reached(bonds, measurements, b, i, basis, xs)


def _reached(bonds: Bonds, measurements: Measurements, b: int, i: int, basis: float,
             xs: np.ndarray) -> bool:
    """Whether ``basis`` reaches the threshold :func:`measure` tests the measurement against."""
    thr = measurements.threshold[b, i]
    count = bonds.kind[b] == KIND_COUNT
    if bonds.verified[b]:
        return bool(basis >= thr * (bonds.base_level[b] if count else 100.0))
    if not count:
        return bool(basis >= 100.0 * thr)
    n = int(bonds.ndonors[b])
    donors = xs[measurements.donor_state[b, i, :n]]
    predicted = bonds.base_level[b] * math.exp(float(np.dot(bonds.weight[b, :n], donors)))
    return bool(basis >= thr * predicted)


def payment(bonds: Bonds, measurements: Measurements, payments: Payments, b: int, i: int,
            meas: float, reached: bool, paid: float, cash: float,
            group_paid: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(units, cash, cumulative units paid for, group payments after it)."""
    mech = bonds.mechanism[b]
    cap = measurements.cap[b, i]
    if mech == MECH_BINARY:
        hit = meas >= bonds.trigger[b] * bonds.target[b]
        units, amount = (bonds.target[b], bonds.amount[b]) if hit else (0.0, 0.0)
    elif mech == MECH_SCHEDULE:
        units = float(np.clip(meas, 0.0, cap))
        k = int(bonds.ngrid[b])
        steps = np.flatnonzero(meas / bonds.target[b] >= bonds.grid_performance[b, :k])
        amount = float(bonds.grid_amount[b, steps[-1]]) if steps.size else 0.0
    else:
        cum = float(np.clip(meas, 0.0, cap))
        units = cum - paid if reached and cum > paid else 0.0
        amount = units * bonds.price[b]
    group_paid = group_paid.copy()
    g = bonds.cap_group[b]
    room = measurements.cash_cap[b, i] - cash
    if g >= 0:
        room = min(room, payments.group_cap[g] - group_paid[g])
    if amount > room:
        amount = max(room, 0.0)
        if mech == MECH_UNITS:
            units = amount / bonds.price[b]
    if g >= 0:
        group_paid[g] += amount
    if mech == MECH_UNITS:
        return units, amount, paid + units, group_paid
    return units, amount, (units if amount > 0.0 else 0.0), group_paid


def charge_departments(payments: Payments, b: int, mech: int, year: int, units: float,
                       amount: float, n_dep: int, n_years: int) -> np.ndarray:
    """(departments, Y) payments of one payment of bond ``b`` by its payers."""
    k = int(payments.npayers[b])
    if mech == MECH_UNITS:
        due = payments.per_unit[b, :k] * units
    else:
        due = payments.share[b, :k] * amount + payments.premium[b, :k] * units
    out = np.zeros((n_dep, n_years))
    np.add.at(out[:, year], payments.department[b, :k], due)
    return out


def overpayment(bonds: Bonds, b: int, e_t: float, paid: float, cash: float,
                last_cash: float) -> float:
    """Cash paid beyond what the true effect ``e_t`` would have earned."""
    mech = bonds.mechanism[b]
    if mech == MECH_BINARY:
        return cash if e_t < bonds.trigger[b] * bonds.target[b] else 0.0
    if mech == MECH_SCHEDULE:
        k = int(bonds.ngrid[b])
        steps = np.flatnonzero(e_t / bonds.target[b] >= bonds.grid_performance[b, :k])
        earned = float(bonds.grid_amount[b, steps[-1]]) if steps.size else 0.0
        return max(0.0, last_cash - earned)
    return max(0.0, paid - e_t) * bonds.price[b]


def irr(times: np.ndarray, flows: np.ndarray) -> float:
    """Rate r with sum flows (1 + r)^-times = 0 (Brent's method in log(1 + r)); -1 if
    nothing comes back."""
    if not np.any(flows > 0.0):
        return -1.0
    t_max = max(float(times.max()), 1.0)

    def value(x: float) -> float:
        # scaled by exp(x t_max) below zero: same sign, no overflow
        return float(np.sum(flows * np.exp(-x * (times - (t_max if x < 0.0 else 0.0)))))

    x = optimize.brentq(value, -40.0 / t_max, 20.0, xtol=1e-15, rtol=1e-15, maxiter=500)
    return math.expm1(x)


def bond_irr(principal: float, cash: float, times: np.ndarray, flows: np.ndarray) -> float:
    """The investor IRR of one bond paying ``flows`` at ``times`` (years after its start)."""
    if cash <= 0.0:
        return -1.0
    return irr(np.concatenate([[0.0], times]), np.concatenate([[-principal], flows]))


def basket_flows(baskets: Baskets, bonds: Bonds, measurements: Measurements, payments: Payments,
                 bond_cash: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, T) payments at each time, (K,) total payments and IRR of every basket."""
    n_k, n_t = baskets.member.shape[0], baskets.time.size
    flows = np.zeros((n_k, n_t))
    total = np.zeros(n_k)
    for k in range(n_k):
        for b in np.flatnonzero(baskets.member[k]):
            m, c = int(bonds.nmeas[b]), int(payments.ncoupons[b])
            np.add.at(flows[k], measurements.time_index[b, :m], bond_cash[b, :m])
            np.add.at(flows[k], payments.coupon_time_index[b, :c], payments.coupon_amount[b, :c])
            total[k] += bond_cash[b, :m].sum() + payments.coupon_amount[b, :c].sum()
    net = flows - baskets.principal_at
    rates = np.array([irr(baskets.time, net[k]) for k in range(n_k)])
    return flows, total, rates
