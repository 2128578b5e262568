"""From a config to the plain arrays the kernel runs on (the simulation's world).

Everything that does not depend on the random draws is computed here, once:
donor pools and their weights, k-step AR(1) coefficients, Cholesky factors of
each touched area's states, Beta quantile tables, ramp and relapse tables,
payer and saving tables, basket membership and the cash-flow time grid.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from lobsim.errors import ConfigError
from lobsim.kernels.engine import (
    KIND_COUNT,
    KIND_PERCENT,
    MECH_BINARY,
    MECH_SCHEDULE,
    MECH_UNITS,
    effect_fraction,
)
from lobsim.model._limits import ar_variance
from lobsim.model.areas import AreaTable, OutcomeData, read_areas, read_outcome, read_volatility
from lobsim.model.basket import RISK_BAND_SCENARIOS, basket_membership, screening_seed
from lobsim.model.blocks import run_blocks
from lobsim.model.config import PERIODS_PER_YEAR, Bond, Config, InterventionType, OutcomeProcess
from lobsim.model.control import ControlFit, fit_control, nearest_donors
from lobsim.model.derive import derive
from lobsim.model.schema import check_ids

# Beta quantile table on a grid in z (docs/model.md section 10.3): 4,097 points over [-8.3, 8.3].
Z_POINTS = 4097
Z_LO, Z_HI = -8.3, 8.3


@dataclass(kw_only=True)
class World:
    """Kernel arrays of a config, with the labels the results need."""

    kernel_args: tuple[Any, ...]
    bonds: tuple[Bond, ...]
    departments: tuple[str, ...]
    baskets: tuple[str, ...]
    years: np.ndarray
    controls: tuple[ControlFit, ...]
    areas: AreaTable
    basket_members: np.ndarray
    times: np.ndarray
    n_normals: int = field(default=0)
    n_exponentials: int = field(default=0)
    #: payment slots of bonds paying at several dates (kernel output ``out_dpaid``):
    #: bond index, time (years after base) and payment year index (year k - 1
    #: covers (k-1, k], as ``years``) of each slot
    slot_bond: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slot_year: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot_coupon: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))


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


def _require(cfg: Config) -> None:
    if cfg.universe is None:
        raise ConfigError("has no [universe]; simulation needs areas, histories and a process",
                          source=cfg.source, path="universe")
    used = {b.outcome for b in cfg.bonds}
    for i, o in enumerate(cfg.outcomes):
        if o.id not in used:
            continue
        for key in ("history", "process"):
            if getattr(o, key) is None:
                raise ConfigError(f"is required to simulate outcome {o.id!r}", source=cfg.source,
                                  path=f"outcomes[{i}].{key}")


def build_world(cfg: Config, *, tilt_global: float = 0.0,
                tilt_types: dict[str, float] | None = None) -> World:
    """Build the kernel's arrays for ``cfg``.

    ``tilt_global`` and ``tilt_types`` (intervention type id -> shift) shift
    the means of the copula's global and type factors for importance
    sampling; each scenario then carries its log likelihood ratio.

    Raises
    ------
    ConfigError
        If the config cannot be simulated (no universe, missing history, too
        few donors, a donor list that contains a treated area).
    """
    _require(cfg)
    assert cfg.universe is not None
    tilt_types = tilt_types or {}
    check_ids(cfg, tilt_types, (t.id for t in cfg.interventions), "intervention type",
              path="tilt_types")
    ppy = PERIODS_PER_YEAR[cfg.universe.period]
    areas = read_areas(cfg.universe.areas)
    data: dict[str, OutcomeData] = {}
    for o in cfg.outcomes:
        if o.history is not None and any(b.outcome == o.id for b in cfg.bonds):
            data[o.id] = read_outcome(o.history, o.state, areas, ppy)
            if o.volatility is not None:
                data[o.id] = dataclasses.replace(
                    data[o.id], variance_scale=read_volatility(o.volatility, areas))
    process: dict[str, OutcomeProcess] = {o.id: o.process for o in cfg.outcomes
                                           if o.process is not None}
    bonds = cfg.bonds
    treated = {b.area for b in bonds}
    treated_pairs = {(b.area, b.outcome) for b in bonds}

    # -- control groups, fitted once at signing ------------------------------------
    controls = []
    for i, b in enumerate(bonds):
        for j, a in enumerate(b.control.donor_areas or ()):
            if (a, b.outcome) in treated_pairs:
                raise ConfigError(
                    f"donor {a!r} is itself treated on outcome {b.outcome!r}; its programme "
                    "would contaminate the comparison: choose another donor",
                    source=cfg.source, path=f"bonds[{i}].control.donor_areas[{j}]")
            if a == b.area:
                raise ConfigError("a bond's own area cannot be its donor", source=cfg.source,
                                  path=f"bonds[{i}].control.donor_areas[{j}]")
        donors = nearest_donors(b, areas, treated, cfg.source, f"bonds[{i}]")
        controls.append(fit_control(b, areas, data[b.outcome], donors))

    # -- dates -----------------------------------------------------------------------
    d_time = np.array(sorted({m.at for b in bonds for m in b.payment.measurements}))
    d_index = {t: i for i, t in enumerate(d_time)}

    # -- series: treated areas and donors with positive weight ------------------------
    series: dict[tuple[int, str], int] = {}
    s_dates: list[set[int]] = []
    s_treated: list[bool] = []

    def add_series(area: int, outcome: str, dates: set[int], is_treated: bool) -> int:
        key = (area, outcome)
        if key not in series:
            series[key] = len(series)
            s_dates.append(set())
            s_treated.append(is_treated)
        s = series[key]
        s_dates[s] |= dates
        return s

    b_series = []
    b_donors: list[list[tuple[int, float]]] = []
    for b in bonds:
        dates = {d_index[m.at] for m in b.payment.measurements}
        b_series.append(add_series(areas.index(b.area), b.outcome, dates, True))
    for b, fit in zip(bonds, controls, strict=True):
        dates = {d_index[m.at] for m in b.payment.measurements}
        pairs = [(add_series(int(a), b.outcome, dates, False), float(w))
                 for a, w in zip(fit.donors, fit.weights, strict=True) if w > 0.0]
        b_donors.append(pairs)
    n_s = len(series)
    keys = list(series)

    # -- factors: national per outcome, regional per touched (outcome, region) ------
    factors: dict[tuple[str, str | None], int] = {}
    f_phi, f_sigma, f_state = [], [], []
    for area, outcome in keys:
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
    n_d = d_time.size
    steps = np.diff(np.concatenate([[0.0], d_time]))
    f_phik = np.array([[phi**k for k in steps] for phi in f_phi])
    f_sdk = np.array([[sig * math.sqrt(ar_variance(phi, k)) for k in steps]
                      for phi, sig in zip(f_phi, f_sigma, strict=True)])
    f_state0 = np.array(f_state)

    # -- series arrays: states at their dates, jointly through a Cholesky factor ----
    dmax = max(len(d) for d in s_dates)
    s_nat = np.empty(n_s, np.int64)
    s_reg = np.empty(n_s, np.int64)
    s_beta, s_gamma, s_mu, s_x0, s_xobs0, s_u0, s_sige = (np.empty(n_s) for _ in range(7))
    s_ndates = np.empty(n_s, np.int64)
    s_didx = np.zeros((n_s, dmax), np.int64)
    s_const = np.zeros((n_s, dmax))
    s_chol = np.zeros((n_s, dmax, dmax))
    s_pos = np.full((n_s, n_d), -1, np.int64)
    for s, (area, outcome) in enumerate(keys):
        proc, od = process[outcome], data[outcome]
        s_nat[s] = factors[(outcome, None)]
        s_reg[s] = factors[(outcome, areas.regions[area])]
        s_beta[s], s_gamma[s] = proc.national_loading, proc.regional_loading
        s_mu[s], s_x0[s], s_u0[s] = od.trend[area], od.log_level[area], od.area_state[area]
        s_xobs0[s] = od.log_base[area]
        # a per-area variance factor scales its own shocks and its noise
        vscale = 1.0 if od.variance_scale is None else float(od.variance_scale[area])
        s_sige[s] = proc.measurement_sigma * math.sqrt(vscale)
        idx = sorted(s_dates[s])
        s_ndates[s] = len(idx)
        s_didx[s, : len(idx)] = idx
        s_pos[s, idx] = np.arange(len(idx))
        t = d_time[idx]
        phi, sig = proc.area_phi, proc.area_sigma
        var = np.array([vscale * sig * sig * ar_variance(phi, ti) for ti in t])
        cov = np.empty((len(t), len(t)))
        for i in range(len(t)):
            for j in range(len(t)):
                lo, hi = min(i, j), max(i, j)
                cov[i, j] = phi ** (t[hi] - t[lo]) * var[lo]
        if not s_treated[s]:
            cov += np.eye(len(t)) * s_sige[s] ** 2  # noise folded into the donor's draw
        # x[t] = x0 + mu t + beta (F_t - F0) + gamma (G_t - G0) + (U_t - U0), with
        # E[U_t | U0] = phi^t U0; donors are kept relative to their observed
        # base log level, with the noise's mean correction (model.md §3.4, §4.4)
        const = (s_x0[s] + s_mu[s] * t + phi**t * s_u0[s] - s_u0[s]
                 - s_beta[s] * f_state0[s_nat[s]] - s_gamma[s] * f_state0[s_reg[s]])
        if not s_treated[s]:
            const = const - 0.5 * s_sige[s] ** 2 - s_xobs0[s]
        s_const[s, : len(t)] = const
        s_chol[s, : len(t), : len(t)] = robust_cholesky(cov)

    # -- programme -----------------------------------------------------------------
    types = [cfg.intervention(tid) for tid in dict.fromkeys(b.intervention for b in bonds)]
    type_index = {t.id: i for i, t in enumerate(types)}
    theta_table = np.array([beta_table(t) for t in types])
    z_step = (Z_HI - Z_LO) / (Z_POINTS - 1)
    providers = list(dict.fromkeys(b.provider for b in bonds))
    p_index = {p: i for i, p in enumerate(providers)}
    p_hazard = np.array([cfg.provider(p).failure_hazard for p in providers])
    p_origin = np.array([min(b.start for b in bonds if b.provider == p) for p in providers])

    # -- bonds -----------------------------------------------------------------------
    n_b = len(bonds)
    mmax = max(len(b.payment.measurements) for b in bonds)
    kmax = max(1, max(len(d) for d in b_donors))
    horizon_max = max(b.maturity - b.start for b in bonds)
    smax = max(1, math.ceil(horizon_max))
    years = np.arange(1, math.ceil(max(b.maturity for b in bonds)) + 1)
    n_y = years.size
    knots = [ramp_knots(cfg.intervention(b.intervention)) for b in bonds]
    kn_len = max(kt.size for kt, _ in knots)
    # padding repeats the last knot, which the ramp treats as "after the end"
    b_kt = np.zeros((n_b, kn_len))
    b_kv = np.ones((n_b, kn_len))
    for i, (kt, kv) in enumerate(knots):
        b_kt[i, : kt.size], b_kt[i, kt.size:] = kt, kt[-1]
        b_kv[i, : kv.size] = kv

    def relpow(bond: Bond, horizon: float) -> np.ndarray:
        q = 1.0 - cfg.intervention(bond.intervention).relapse_rate
        s = np.arange(1, smax + 1)
        return q ** np.maximum(0.0, horizon - s)

    coupon_dates = {c.at for b in bonds for c in b.payment.coupons}
    t_grid_abs = np.array(sorted({b.start for b in bonds} | set(d_time.tolist()) | coupon_dates))
    t_index = {t: i for i, t in enumerate(t_grid_abs)}
    deps = tuple(d.id for d in cfg.departments)
    dep_index = {d: i for i, d in enumerate(deps)}
    pmax = max(len(b.payers) for b in bonds)
    qmax = max(1, max(len(cfg.outcome(b.outcome).savings) for b in bonds))

    fa = {name: np.zeros(n_b) for name in (
        "start", "target", "price", "principal", "trigger", "amount", "yobs0", "atype", "aglob",
        "aeps")}
    ia = {name: np.zeros(n_b, np.int64) for name in (
        "type", "provider", "kind", "mech", "series", "ndonors", "nmeas", "tstart", "npay",
        "nsav", "matyear")}
    b_donor = np.zeros((n_b, kmax), np.int64)
    b_weight = np.zeros((n_b, kmax))
    m_year = np.zeros((n_b, mmax), np.int64)
    m_tidx = np.zeros((n_b, mmax), np.int64)
    m_tpos = np.zeros((n_b, mmax), np.int64)
    m_dpos = np.zeros((n_b, mmax, kmax), np.int64)
    m_time, m_thr, m_cap, m_horizon, m_gfull = (np.zeros((n_b, mmax)) for _ in range(5))
    m_relpow = np.ones((n_b, mmax, smax))
    y_horizon, y_gfull = np.zeros((n_b, n_y)), np.zeros((n_b, n_y))
    y_relpow = np.ones((n_b, n_y, smax))
    pay_dept = np.zeros((n_b, pmax), np.int64)
    pay_unit, pay_share, pay_prem = (np.zeros((n_b, pmax)) for _ in range(3))
    sav_dept = np.zeros((n_b, qmax), np.int64)
    sav_amount = np.zeros((n_b, qmax))
    sav_once = np.zeros((n_b, qmax), np.bool_)
    for i, b in enumerate(bonds):
        itype = cfg.intervention(b.intervention)
        fa["start"][i], fa["target"][i], fa["price"][i] = b.start, b.target_units, b.price_per_unit
        fa["principal"][i] = b.principal
        fa["trigger"][i], fa["amount"][i] = b.payment.trigger, b.payment.amount
        fa["yobs0"][i] = math.exp(data[b.outcome].log_base[areas.index(b.area)])
        fa["atype"][i], fa["aglob"][i] = math.sqrt(itype.rho_type), math.sqrt(itype.rho_global)
        fa["aeps"][i] = math.sqrt(max(0.0, 1.0 - itype.rho_type - itype.rho_global))
        ia["type"][i], ia["provider"][i] = type_index[itype.id], p_index[b.provider]
        ia["kind"][i] = KIND_COUNT if cfg.outcome(b.outcome).kind == "count" else KIND_PERCENT
        ia["mech"][i] = {"binary": MECH_BINARY, "schedule": MECH_SCHEDULE}.get(
            b.payment.mechanism, MECH_UNITS)
        ia["series"][i] = b_series[i]
        # -1 marks verified outcomes: measured units are the true units
        ia["ndonors"][i] = -1 if b.control.weights == "verified" else len(b_donors[i])
        for j, (s, w) in enumerate(b_donors[i]):
            b_donor[i, j], b_weight[i, j] = s, w
        ia["nmeas"][i] = len(b.payment.measurements)
        ia["tstart"][i] = t_index[b.start]
        for j, m in enumerate(b.payment.measurements):
            d = d_index[m.at]
            # flat positions of the states in the kernel's (series x date) buffer
            m_tpos[i, j] = b_series[i] * dmax + s_pos[b_series[i], d]
            for k, (sd, _) in enumerate(b_donors[i]):
                m_dpos[i, j, k] = sd * dmax + s_pos[sd, d]
            m_year[i, j] = math.ceil(m.at) - 1
            m_tidx[i, j] = t_index[m.at]
            m_time[i, j], m_thr[i, j], m_cap[i, j] = m.at, m.threshold, m.cap
            m_horizon[i, j] = m.at - b.start
            m_relpow[i, j] = relpow(b, m_horizon[i, j])
            m_gfull[i, j] = effect_fraction(m_horizon[i, j], m_horizon[i, j], b_kt[i], b_kv[i],
                                            m_relpow[i, j])
        for y, end in enumerate(years):
            hz = min(float(end), b.maturity) - b.start
            if hz > 0.0 and end - 1 < b.maturity:
                y_horizon[i, y] = hz
                y_relpow[i, y] = relpow(b, hz)
                y_gfull[i, y] = effect_fraction(hz, hz, b_kt[i], b_kv[i], y_relpow[i, y])
        ia["npay"][i] = len(b.payers)
        for j, p in enumerate(b.payers):
            pay_dept[i, j] = dep_index[cfg.agency(p.agency).department]
            pay_share[i, j], pay_prem[i, j] = p.share, p.agency_premium
            pay_unit[i, j] = p.share * b.price_per_unit + p.agency_premium
        savings = cfg.outcome(b.outcome).savings
        ia["nsav"][i] = len(savings)
        for j, sv in enumerate(savings):
            sav_dept[i, j] = dep_index[sv.department]
            sav_amount[i, j] = sv.amount
            sav_once[i, j] = sv.basis == "per_unit"
        ia["matyear"][i] = math.ceil(b.maturity) - 1

    # savings without a provider failure: scale x rate into (department, year)
    b_hmax = np.array([b.maturity - b.start for b in bonds])
    fast: list[list[tuple[int, int, float]]] = []
    for i in range(n_b):
        rates: dict[tuple[int, int], float] = {}
        for q in range(ia["nsav"][i]):
            dep = int(sav_dept[i, q])
            if sav_once[i, q]:
                slot = (dep, int(ia["matyear"][i]))
                last = ia["nmeas"][i] - 1
                rates[slot] = rates.get(slot, 0.0) + sav_amount[i, q] * m_gfull[i, last]
            else:
                for y in range(n_y):
                    if y_horizon[i, y] > 0.0:
                        rate = sav_amount[i, q] * y_gfull[i, y]
                        rates[(dep, y)] = rates.get((dep, y), 0.0) + rate
        fast.append([(dep, y, rate) for (dep, y), rate in rates.items()])
    vmax = max(1, max(len(f) for f in fast))
    sv_n = np.array([len(f) for f in fast], np.int64)
    sv_dep = np.zeros((n_b, vmax), np.int64)
    sv_year = np.zeros((n_b, vmax), np.int64)
    sv_rate = np.zeros((n_b, vmax))
    for i, f in enumerate(fast):
        for q, (dep, y, rate) in enumerate(f):
            sv_dep[i, q], sv_year[i, q], sv_rate[i, q] = dep, y, rate

    # return grids, cash caps, coupons, cap groups
    gmax = max(1, max(len(b.payment.grid) for b in bonds))
    b_ng = np.array([len(b.payment.grid) for b in bonds], np.int64)
    g_perf = np.zeros((n_b, gmax))
    g_amount = np.zeros((n_b, gmax))
    m_cashcap = np.full((n_b, mmax), np.inf)
    cmax = max(1, max(len(b.payment.coupons) for b in bonds))
    b_ncoup = np.array([len(b.payment.coupons) for b in bonds], np.int64)
    c_amount, c_time = np.zeros((n_b, cmax)), np.zeros((n_b, cmax))
    c_tidx, c_year = np.zeros((n_b, cmax), np.int64), np.zeros((n_b, cmax), np.int64)
    group_of = {bid: g for g, grp in enumerate(cfg.cap_groups) for bid in grp.bonds}
    b_group = np.array([group_of.get(b.id, -1) for b in bonds], np.int64)
    g_cap = np.array([grp.cap for grp in cfg.cap_groups] or [np.inf])
    for i, b in enumerate(bonds):
        pay = b.payment
        for k, (perf, annual) in enumerate(pay.grid):
            g_perf[i, k] = perf
            g_amount[i, k] = b.principal * (1.0 + annual) ** b.term
        if pay.max_return is not None:
            for j, m in enumerate(pay.measurements):
                m_cashcap[i, j] = b.principal * (1.0 + pay.max_return) ** (m.at - b.start)
        for k, c in enumerate(pay.coupons):
            c_amount[i, k], c_time[i, k] = c.rate * b.principal, c.at
            c_tidx[i, k], c_year[i, k] = t_index[c.at], math.ceil(c.at) - 1

    pd = None
    if any(b.risk_band is not None for b in cfg.baskets):
        # risk-band members from the config's own screening run (as the fallback
        # of lobsim.model.screening.resolve_risk_bands: its default size and seed)
        pd = screen_bonds(cfg, min(cfg.simulation.scenarios, RISK_BAND_SCENARIOS),
                          screening_seed(cfg.simulation.seed))[0]
    basket_ids, k_member = basket_membership(cfg, areas, default_probability=pd)
    t_grid = t_grid_abs - t_grid_abs[0]
    k_size = k_member.sum(axis=1).astype(np.int64)
    k_list = np.zeros((k_member.shape[0], max(1, int(k_size.max()))), np.int64)
    k_principal_at = np.zeros((k_member.shape[0], t_grid.size))
    for k, members in enumerate(k_member):
        where = np.flatnonzero(members)
        k_list[k, : where.size] = where
        np.add.at(k_principal_at[k], ia["tstart"][where], fa["principal"][where])
    # whole-year dates let the basket IRR be found by a polynomial in 1/(1+r)
    whole = np.all(t_grid == np.round(t_grid))
    t_steps = (np.diff(np.concatenate([[0.0], t_grid])).astype(np.int64) if whole
               else np.full(t_grid.size, -1, np.int64))
    # m_tidx / b_tstart index t_grid; m_time stays absolute for bond IRRs

    # payment slots of the bonds that pay at several dates: measurements, then
    # coupons, bond by bond (the results otherwise hold only a bond's total)
    b_doff = np.full(n_b, -1, np.int64)
    slot_bond: list[int] = []
    slot_time: list[float] = []
    slot_coupon: list[bool] = []
    for i, b in enumerate(bonds):
        pay_dates = [m.at for m in b.payment.measurements] + [c.at for c in b.payment.coupons]
        if len(pay_dates) > 1:
            b_doff[i] = len(slot_bond)
            slot_bond += [i] * len(pay_dates)
            slot_time += pay_dates
            slot_coupon += [False] * len(b.payment.measurements) + [True] * len(b.payment.coupons)

    kernel_args = (
        f_phik, f_sdk, f_state0,
        s_nat, s_reg, s_beta, s_gamma, s_sige, np.array(s_treated, np.bool_), s_ndates, s_didx,
        s_const, s_chol, d_time,
        len(types), ia["type"], fa["atype"], fa["aglob"], fa["aeps"], theta_table, Z_LO, z_step,
        tilt_global, np.array([tilt_types.get(t.id, 0.0) for t in types]),
        ia["provider"], p_hazard, p_origin,
        fa["start"], fa["target"], fa["price"], fa["principal"], ia["kind"], ia["mech"],
        fa["trigger"], fa["amount"], ia["series"], fa["yobs0"], ia["ndonors"], b_donor, b_weight,
        ia["nmeas"], m_tpos, m_dpos, m_time, m_thr, m_cap, m_year, m_tidx, ia["tstart"],
        b_kt, b_kv, m_horizon, m_gfull, m_relpow,
        b_hmax, sv_n, sv_dep, sv_year, sv_rate,
        y_horizon, y_relpow, ia["nsav"], sav_dept, sav_amount, sav_once, ia["matyear"],
        ia["npay"], pay_dept, pay_unit, pay_share, pay_prem,
        b_ng, g_perf, g_amount, m_cashcap, b_ncoup, c_amount, c_time, c_tidx, c_year,
        b_group, g_cap,
        k_member, k_size, k_list, k_principal_at, t_grid, t_steps,
        b_doff,
    )
    n_normals = (f_phik.size + int(s_ndates.sum())
                 + int(s_ndates[np.array(s_treated, bool)].sum()) + 1 + len(types) + n_b)
    return World(
        kernel_args=kernel_args,
        bonds=bonds,
        departments=deps,
        baskets=basket_ids,
        years=years,
        controls=tuple(controls),
        areas=areas,
        basket_members=k_member,
        times=t_grid_abs,
        n_normals=n_normals,
        n_exponentials=int((p_hazard > 0).sum()),
        slot_bond=np.array(slot_bond, np.int64),
        slot_time=np.array(slot_time, float),
        slot_year=np.array([math.ceil(t) - 1 for t in slot_time], np.int64),
        slot_coupon=np.array(slot_coupon, np.bool_),
    )


@functools.lru_cache(maxsize=16)
def screen_bonds(cfg: Config, scenarios: int, seed: int) -> tuple[np.ndarray, AreaTable]:
    """The screening run of risk bands: each bond's stand-alone default probability.

    The bonds are simulated without baskets (bonds do not depend on them) on
    ``scenarios`` scenarios of the stream ``seed``; returns the probabilities
    (read-only: cached and shared by every caller) and the world's areas.
    """
    world = build_world(derive(cfg, baskets=()))
    out = run_blocks(world, scenarios, seed, cfg.simulation.block_size)
    pd = out["default"].mean(axis=0)
    pd.flags.writeable = False
    return pd, world.areas
