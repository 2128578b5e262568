"""The builders of the kernel's groups (:mod:`lobsim.kernels.contract`), one per group.

:func:`lobsim.model.world.build_world` calls them in order on a
:class:`Layout` (the dates, series, donors and cash-flow grid they share):
factors (k-step AR(1) coefficients), series (Cholesky factors of each touched
area's states), the programme (Beta quantile tables, copula loadings,
providers), bond terms, measurements (ramp and relapse tables), department
savings and payments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from lobsim.kernels.contract import (
    KIND_COUNT,
    KIND_PERCENT,
    MECH_BINARY,
    MECH_SCHEDULE,
    MECH_UNITS,
    Bonds,
    Factors,
    Measurements,
    Payments,
    Programme,
    Savings,
    Series,
)
from lobsim.kernels.engine import effect_fraction
from lobsim.model.areas import AreaTable, OutcomeData
from lobsim.model.config import Bond, Config, InterventionType, OutcomeProcess
from lobsim.model.process import kstep_variance

# Beta quantile table on a grid in z (docs/model.md section 10.3): 4,097 points over [-8.3, 8.3].
Z_POINTS = 4097
Z_LO, Z_HI = -8.3, 8.3


@dataclass(frozen=True)
class Layout:
    """Indices shared by the builders: dates, series, donors and the cash-flow grid."""

    d_time: np.ndarray  #: global measurement dates (years after base)
    d_index: dict[float, int]
    series: list[tuple[int, str]]  #: (area index, outcome) of each series
    series_dates: list[list[int]]  #: sorted global date indices of each series
    series_treated: list[bool]
    #: position of each series' date in its row of states, -1 where not measured
    series_pos: np.ndarray
    dmax: int
    bond_series: list[int]
    bond_donors: list[list[tuple[int, float]]]  #: (series, weight) of positive weights
    t_grid_abs: np.ndarray  #: cash-flow times (years after base)
    t_index: dict[float, int]
    years: np.ndarray
    departments: tuple[str, ...]
    dep_index: dict[str, int]


def beta_table(t: InterventionType) -> np.ndarray:
    """``theta = F_Beta^-1(Phi(z))`` on the z grid (upper half via isf/sf)."""
    z = np.linspace(Z_LO, Z_HI, Z_POINTS)
    if t.success_sd == 0.0:
        return np.full(Z_POINTS, t.success_mean)
    m, s = t.success_mean, t.success_sd
    kappa = m * (1.0 - m) / (s * s) - 1.0
    dist = stats.beta(m * kappa, (1.0 - m) * kappa)
    lower = z < 0.0
    out = np.empty(Z_POINTS)
    out[lower] = dist.ppf(stats.norm.cdf(z[lower]))
    # Phi(z) rounds to 1 in the upper tail: use the survival functions there.
    out[~lower] = dist.isf(stats.norm.sf(z[~lower]))
    return out


def ramp_knots(t: InterventionType) -> tuple[np.ndarray, np.ndarray]:
    """Knot times (years after the start) and cumulative shares of the ramp.

    Linear over ``ramp_years`` (docs/model.md section 5.3), through a ``ramp_profile`` given at
    year ends, or everything at once (``ramp_years = 0``: one knot at 0).
    """
    if t.ramp_profile is not None:
        n = len(t.ramp_profile)
        return np.arange(n + 1.0), np.concatenate([[0.0], t.ramp_profile])
    if t.ramp_years == 0.0:
        return np.zeros(1), np.ones(1)
    return np.array([0.0, t.ramp_years]), np.array([0.0, 1.0])


def robust_cholesky(cov: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite matrix (zero pivots allowed)."""
    n = cov.shape[0]
    low = np.zeros_like(cov)
    scale = max(float(np.max(np.abs(np.diag(cov)))), 1e-300)
    for j in range(n):
        d = cov[j, j] - low[j, :j] @ low[j, :j]
        if d <= 1e-14 * scale:
            continue
        low[j, j] = math.sqrt(d)
        for i in range(j + 1, n):
            low[i, j] = (cov[i, j] - low[i, :j] @ low[j, :j]) / low[j, j]
    return low


def build_factors(cfg: Config, areas: AreaTable, data: dict[str, OutcomeData],
                  layout: Layout) -> tuple[Factors, dict[tuple[str, str | None], int]]:
    """National (per outcome) and regional (per touched outcome-region) factors, with
    the index of each (outcome, region or None)."""
    process = _processes(cfg)
    factors: dict[tuple[str, str | None], int] = {}
    f_phi, f_sigma, f_state = [], [], []
    for area, outcome in layout.series:
        proc, od = process[outcome], data[outcome]
        region = areas.regions[area]
        for key, phi, sigma, state in (
            ((outcome, None), proc.national_phi, proc.national_sigma, od.national_state),
            ((outcome, region), proc.regional_phi, proc.regional_sigma,
             od.regional_state[region]),
        ):
            if key not in factors:
                factors[key] = len(factors)
                f_phi.append(phi)
                f_sigma.append(sigma)
                f_state.append(state)
    steps = np.diff(np.concatenate([[0.0], layout.d_time]))
    phik = np.array([[phi**k for k in steps] for phi in f_phi])
    sdk = np.array([[sig * math.sqrt(kstep_variance(phi, k)) for k in steps]
                    for phi, sig in zip(f_phi, f_sigma, strict=True)])
    return Factors(time=layout.d_time, phik=phik, sdk=sdk, state0=np.array(f_state)), factors


def build_series(cfg: Config, areas: AreaTable, data: dict[str, OutcomeData], layout: Layout,
                 factors: Factors, factor_index: dict[tuple[str, str | None], int]) -> Series:
    """States of every touched series at its dates, jointly through a Cholesky factor."""
    process = _processes(cfg)
    n_s, dmax = len(layout.series), layout.dmax
    s_nat = np.empty(n_s, np.int64)
    s_reg = np.empty(n_s, np.int64)
    s_beta, s_gamma, s_mu, s_x0, s_xobs0, s_u0, s_sige = (np.empty(n_s) for _ in range(7))
    s_ndates = np.empty(n_s, np.int64)
    s_didx = np.zeros((n_s, dmax), np.int64)
    s_const = np.zeros((n_s, dmax))
    s_chol = np.zeros((n_s, dmax, dmax))
    f_state0 = factors.state0
    # per area: its own loadings where the areas file gives them, else the outcome's
    loadings = {o: areas.loadings(p.national_loading, p.regional_loading)
                for o, p in process.items()}
    for s, (area, outcome) in enumerate(layout.series):
        proc, od = process[outcome], data[outcome]
        treated = layout.series_treated[s]
        s_nat[s] = factor_index[(outcome, None)]
        s_reg[s] = factor_index[(outcome, areas.regions[area])]
        s_beta[s], s_gamma[s] = loadings[outcome][0][area], loadings[outcome][1][area]
        s_mu[s], s_x0[s], s_u0[s] = od.trend[area], od.log_level[area], od.area_state[area]
        s_xobs0[s] = od.log_base[area]
        # a per-area variance factor scales its own shocks and its noise
        vscale = 1.0 if od.variance_scale is None else float(od.variance_scale[area])
        s_sige[s] = proc.measurement_sigma * math.sqrt(vscale)
        idx = layout.series_dates[s]
        s_ndates[s] = len(idx)
        s_didx[s, : len(idx)] = idx
        t = layout.d_time[idx]
        phi, sig = proc.area_phi, proc.area_sigma
        var = np.array([vscale * sig * sig * kstep_variance(phi, ti) for ti in t])
        cov = np.empty((len(t), len(t)))
        for i in range(len(t)):
            for j in range(len(t)):
                lo, hi = min(i, j), max(i, j)
                cov[i, j] = phi ** (t[hi] - t[lo]) * var[lo]
        if not treated:
            cov += np.eye(len(t)) * s_sige[s] ** 2  # noise folded into the donor's draw
        # x[t] = x0 + mu t + beta (F_t - F0) + gamma (G_t - G0) + (U_t - U0), with
        # E[U_t | U0] = phi^t U0; donors are kept relative to their observed
        # base log level, with the noise's mean correction (model.md §3.4, §4.4)
        const = (s_x0[s] + s_mu[s] * t + phi**t * s_u0[s] - s_u0[s]
                 - s_beta[s] * f_state0[s_nat[s]] - s_gamma[s] * f_state0[s_reg[s]])
        if not treated:
            const = const - 0.5 * s_sige[s] ** 2 - s_xobs0[s]
        s_const[s, : len(t)] = const
        s_chol[s, : len(t), : len(t)] = robust_cholesky(cov)
    return Series(national=s_nat, regional=s_reg, beta=s_beta, gamma=s_gamma, noise_sd=s_sige,
                  treated=np.array(layout.series_treated, np.bool_), ndates=s_ndates,
                  dates=s_didx, const=s_const, chol=s_chol)


def build_programme(cfg: Config, tilt_global: float,
                    tilt_types: dict[str, float]) -> Programme:
    """Success tables and copula loadings per type, providers' failure hazards."""
    bonds = cfg.bonds
    types = [cfg.intervention(tid) for tid in dict.fromkeys(b.intervention for b in bonds)]
    type_index = {t.id: i for i, t in enumerate(types)}
    providers = list(dict.fromkeys(b.provider for b in bonds))
    p_index = {p: i for i, p in enumerate(providers)}
    its = [cfg.intervention(b.intervention) for b in bonds]
    return Programme(
        n_types=len(types),
        theta_table=np.array([beta_table(t) for t in types]),
        z_lo=Z_LO,
        z_step=(Z_HI - Z_LO) / (Z_POINTS - 1),
        tilt_global=float(tilt_global),
        tilt_type=np.array([tilt_types.get(t.id, 0.0) for t in types], float),
        bond_type=np.array([type_index[t.id] for t in its], np.int64),
        load_type=np.array([math.sqrt(t.rho_type) for t in its], float),
        load_global=np.array([math.sqrt(t.rho_global) for t in its], float),
        load_own=np.array([math.sqrt(max(0.0, 1.0 - t.rho_type - t.rho_global)) for t in its],
                          float),
        bond_provider=np.array([p_index[b.provider] for b in bonds], np.int64),
        hazard=np.array([cfg.provider(p).failure_hazard for p in providers]),
        origin=np.array([min(b.start for b in bonds if b.provider == p) for p in providers]))


def build_bonds(cfg: Config, areas: AreaTable, data: dict[str, OutcomeData],
                layout: Layout) -> Bonds:
    """Per-bond terms: prices and triggers, control groups, ramps, grids, cap groups, slots."""
    bonds = cfg.bonds
    n_b = len(bonds)
    kmax = max(1, max(len(d) for d in layout.bond_donors))
    b_donor = np.zeros((n_b, kmax), np.int64)
    b_weight = np.zeros((n_b, kmax))
    for i, pairs in enumerate(layout.bond_donors):
        for j, (s, w) in enumerate(pairs):
            b_donor[i, j], b_weight[i, j] = s, w
    verified = np.array([b.control.weights == "verified" for b in bonds], np.bool_)
    knots = [ramp_knots(cfg.intervention(b.intervention)) for b in bonds]
    kn_len = max(kt.size for kt, _ in knots)
    # padding repeats the last knot, which the ramp treats as "after the end"
    ramp_time = np.zeros((n_b, kn_len))
    ramp_share = np.ones((n_b, kn_len))
    for i, (kt, kv) in enumerate(knots):
        ramp_time[i, : kt.size], ramp_time[i, kt.size:] = kt, kt[-1]
        ramp_share[i, : kv.size] = kv
    gmax = max(1, max(len(b.payment.grid) for b in bonds))
    grid_perf = np.zeros((n_b, gmax))
    grid_amount = np.zeros((n_b, gmax))
    for i, b in enumerate(bonds):
        for k, (perf, annual) in enumerate(b.payment.grid):
            grid_perf[i, k] = perf
            grid_amount[i, k] = b.principal * (1.0 + annual) ** b.term
    group_of = {bid: g for g, grp in enumerate(cfg.cap_groups) for bid in grp.bonds}
    n_dates = [len(b.payment.measurements) + len(b.payment.coupons) for b in bonds]
    dated = np.array([n > 1 for n in n_dates], np.bool_)
    slot = np.zeros(n_b, np.int64)
    slot[dated] = np.cumsum([0] + [n for n, d in zip(n_dates, dated, strict=True) if d])[:-1]
    mechanism = {"binary": MECH_BINARY, "schedule": MECH_SCHEDULE}
    return Bonds(
        start=np.array([b.start for b in bonds], float),
        target=np.array([b.target_units for b in bonds], float),
        price=np.array([b.price_per_unit for b in bonds], float),
        principal=np.array([b.principal for b in bonds], float),
        kind=np.array([KIND_COUNT if cfg.outcome(b.outcome).kind == "count" else KIND_PERCENT
                       for b in bonds], np.int64),
        mechanism=np.array([mechanism.get(b.payment.mechanism, MECH_UNITS) for b in bonds],
                           np.int64),
        trigger=np.array([b.payment.trigger for b in bonds], float),
        amount=np.array([b.payment.amount for b in bonds], float),
        series=np.array(layout.bond_series, np.int64),
        base_level=np.array([math.exp(data[b.outcome].log_base[areas.index(b.area)])
                             for b in bonds], float),
        verified=verified,
        ndonors=np.array([0 if v else len(d) for v, d in zip(verified, layout.bond_donors,
                                                            strict=True)], np.int64),
        donor=b_donor, weight=b_weight,
        nmeas=np.array([len(b.payment.measurements) for b in bonds], np.int64),
        start_time=np.array([layout.t_index[b.start] for b in bonds], np.int64),
        ramp_time=ramp_time, ramp_share=ramp_share,
        horizon=np.array([b.maturity - b.start for b in bonds]),
        maturity_year=np.array([math.ceil(b.maturity) - 1 for b in bonds], np.int64),
        cap_group=np.array([group_of.get(b.id, -1) for b in bonds], np.int64),
        ngrid=np.array([len(b.payment.grid) for b in bonds], np.int64),
        grid_performance=grid_perf, grid_amount=grid_amount, dated=dated, slot=slot,
        # the shrunk basis is filled in once the world is built (lobsim.model.shrinkage),
        # pooled baskets by lobsim.model.basket.pooled_terms once members are known
        shrunk=np.zeros(n_b, np.bool_), shrink_k=np.ones(n_b),
        pool=np.full(n_b, -1, np.int64), pool_target=np.zeros(n_b))


def _relapse(cfg: Config, bond: Bond, horizon: float, smax: int) -> np.ndarray:
    """Survival at ``horizon`` of what was delivered in each year 1..smax after the start."""
    q = 1.0 - cfg.intervention(bond.intervention).relapse_rate
    s = np.arange(1, smax + 1)
    return q ** np.maximum(0.0, horizon - s)


def _smax(cfg: Config) -> int:
    return max(1, math.ceil(max(b.maturity - b.start for b in cfg.bonds)))


def build_measurements(cfg: Config, layout: Layout, bond_terms: Bonds) -> Measurements:
    """Each bond's measurements: state positions, thresholds, caps and effect tables."""
    bonds = cfg.bonds
    n_b = len(bonds)
    mmax = max(len(b.payment.measurements) for b in bonds)
    kmax = bond_terms.donor.shape[1]
    smax = _smax(cfg)
    dmax, s_pos = layout.dmax, layout.series_pos
    m = {name: np.zeros((n_b, mmax), np.int64) for name in ("state", "year", "time_index")}
    f = {name: np.zeros((n_b, mmax)) for name in (
        "time", "threshold", "cap", "horizon", "full_share")}
    donor_state = np.zeros((n_b, mmax, kmax), np.int64)
    relapse = np.ones((n_b, mmax, smax))
    cash_cap = np.full((n_b, mmax), np.inf)
    for i, b in enumerate(bonds):
        sb = layout.bond_series[i]
        for j, meas in enumerate(b.payment.measurements):
            d = layout.d_index[meas.at]
            # flat positions of the states in the kernel's (series x date) buffer
            m["state"][i, j] = sb * dmax + s_pos[sb, d]
            for k, (sd, _) in enumerate(layout.bond_donors[i]):
                donor_state[i, j, k] = sd * dmax + s_pos[sd, d]
            m["year"][i, j] = math.ceil(meas.at) - 1
            m["time_index"][i, j] = layout.t_index[meas.at]
            f["time"][i, j], f["threshold"][i, j], f["cap"][i, j] = meas.at, meas.threshold, meas.cap
            f["horizon"][i, j] = meas.at - b.start
            relapse[i, j] = _relapse(cfg, b, f["horizon"][i, j], smax)
            f["full_share"][i, j] = effect_fraction(f["horizon"][i, j], f["horizon"][i, j],
                                                    bond_terms.ramp_time[i],
                                                    bond_terms.ramp_share[i], relapse[i, j])
            if b.payment.max_return is not None:
                cash_cap[i, j] = b.principal * (1.0 + b.payment.max_return) ** (meas.at - b.start)
    return Measurements(state=m["state"], donor_state=donor_state, time=f["time"],
                        threshold=f["threshold"], cap=f["cap"], cash_cap=cash_cap,
                        year=m["year"], time_index=m["time_index"], horizon=f["horizon"],
                        full_share=f["full_share"], relapse=relapse, prior=np.zeros((n_b, mmax)))


def build_savings(cfg: Config, layout: Layout, bond_terms: Bonds,
                  measurements: Measurements) -> Savings:
    """Department savings: each outcome's saving rows, the effect at each year end,
    and the fixed (department, year) rates of a bond delivering in full."""
    bonds = cfg.bonds
    n_b, n_y, smax = len(bonds), layout.years.size, _smax(cfg)
    qmax = max(1, max(len(cfg.outcome(b.outcome).savings) for b in bonds))
    y_horizon, y_gfull = np.zeros((n_b, n_y)), np.zeros((n_b, n_y))
    y_relpow = np.ones((n_b, n_y, smax))
    nsav = np.zeros(n_b, np.int64)
    sav_dept = np.zeros((n_b, qmax), np.int64)
    sav_amount = np.zeros((n_b, qmax))
    sav_once = np.zeros((n_b, qmax), np.bool_)
    for i, b in enumerate(bonds):
        for y, end in enumerate(layout.years):
            hz = min(float(end), b.maturity) - b.start
            if hz > 0.0 and end - 1 < b.maturity:
                y_horizon[i, y] = hz
                y_relpow[i, y] = _relapse(cfg, b, hz, smax)
                y_gfull[i, y] = effect_fraction(hz, hz, bond_terms.ramp_time[i],
                                                bond_terms.ramp_share[i], y_relpow[i, y])
        savings = cfg.outcome(b.outcome).savings
        nsav[i] = len(savings)
        for j, sv in enumerate(savings):
            sav_dept[i, j] = layout.dep_index[sv.department]
            sav_amount[i, j] = sv.amount
            sav_once[i, j] = sv.basis == "per_unit"

    # savings without a provider failure: scale x rate into (department, year)
    fast: list[list[tuple[int, int, float]]] = []
    for i in range(n_b):
        rates: dict[tuple[int, int], float] = {}
        for q in range(nsav[i]):
            dep = int(sav_dept[i, q])
            if sav_once[i, q]:
                slot = (dep, int(bond_terms.maturity_year[i]))
                last = bond_terms.nmeas[i] - 1
                rates[slot] = rates.get(slot, 0.0) + sav_amount[i, q] * measurements.full_share[
                    i, last]
            else:
                for y in range(n_y):
                    if y_horizon[i, y] > 0.0:
                        rate = sav_amount[i, q] * y_gfull[i, y]
                        rates[(dep, y)] = rates.get((dep, y), 0.0) + rate
        fast.append([(dep, y, rate) for (dep, y), rate in rates.items()])
    vmax = max(1, max(len(f) for f in fast))
    sv_dep = np.zeros((n_b, vmax), np.int64)
    sv_year = np.zeros((n_b, vmax), np.int64)
    sv_rate = np.zeros((n_b, vmax))
    for i, f in enumerate(fast):
        for q, (dep, y, rate) in enumerate(f):
            sv_dep[i, q], sv_year[i, q], sv_rate[i, q] = dep, y, rate
    return Savings(fast_n=np.array([len(f) for f in fast], np.int64), fast_department=sv_dep,
                   fast_year=sv_year, fast_rate=sv_rate, year_horizon=y_horizon,
                   year_relapse=y_relpow, n=nsav, department=sav_dept, amount=sav_amount,
                   once=sav_once)


def build_payments(cfg: Config, layout: Layout) -> Payments:
    """Department payers of each bond, its fixed coupons, and cap groups' caps."""
    bonds = cfg.bonds
    n_b = len(bonds)
    pmax = max(len(b.payers) for b in bonds)
    pay_dept = np.zeros((n_b, pmax), np.int64)
    pay_unit, pay_share, pay_prem = (np.zeros((n_b, pmax)) for _ in range(3))
    cmax = max(1, max(len(b.payment.coupons) for b in bonds))
    c_amount, c_time = np.zeros((n_b, cmax)), np.zeros((n_b, cmax))
    c_tidx, c_year = np.zeros((n_b, cmax), np.int64), np.zeros((n_b, cmax), np.int64)
    for i, b in enumerate(bonds):
        for j, p in enumerate(b.payers):
            pay_dept[i, j] = layout.dep_index[cfg.agency(p.agency).department]
            pay_share[i, j], pay_prem[i, j] = p.share, p.agency_premium
            pay_unit[i, j] = p.share * b.price_per_unit + p.agency_premium
        for k, c in enumerate(b.payment.coupons):
            c_amount[i, k], c_time[i, k] = c.rate * b.principal, c.at
            c_tidx[i, k], c_year[i, k] = layout.t_index[c.at], math.ceil(c.at) - 1
    return Payments(
        npayers=np.array([len(b.payers) for b in bonds], np.int64), department=pay_dept,
        per_unit=pay_unit, share=pay_share, premium=pay_prem,
        ncoupons=np.array([len(b.payment.coupons) for b in bonds], np.int64),
        coupon_amount=c_amount, coupon_time=c_time, coupon_time_index=c_tidx,
        coupon_year=c_year,
        group_cap=np.array([grp.cap for grp in cfg.cap_groups] or [np.inf]))


def _processes(cfg: Config) -> dict[str, OutcomeProcess]:
    return {o.id: o.process for o in cfg.outcomes if o.process is not None}
