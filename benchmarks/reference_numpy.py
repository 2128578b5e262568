"""A plain-numpy reference implementation of the lobsim model (model.md §3-7).

This is what a careful analyst would write first: vectorised over scenarios
with numpy, stepping every period (month by default, or year) in a Python
loop, and looping over bonds in Python inside it. It simulates the same model
as the numba engine (:mod:`lobsim.kernels.engine`) but shares none of its tricks
(no k-step transitions, no Cholesky factors, no Beta tables) and none of its
random numbers:

- national, regional and area-specific AR(1) components of every touched
  series (treated areas and their donors with positive weight), loaded by the
  area's own ``national_loading`` / ``regional_loading`` (areas file) where
  given, else the outcome's, stepped every period with per-period parameters
  converted exactly from the per-year ones, ``phi_p = phi^(1/ppy)``,
  ``sigma_p^2 = sigma^2 (1 - phi^(2/ppy)) / (1 - phi^2)``
  (``sigma^2 / ppy`` for a random walk; :func:`lobsim.model.process.ar1_period_parameters`,
  the package's one definition of the conversion);
- measurement noise ``y_obs = y exp(sigma_e e - sigma_e^2 / 2)`` at each
  measurement date, independent across dates and series;
- Beta success fractions through a Gaussian copula,
  ``theta = scipy.stats.beta.ppf(norm.cdf(z))``;
- delivery stepped every period along the ramp, cut by the provider's
  exponential failure time, with yearly delivery cohorts relapsing at
  ``lambda`` a year (``E(t) = sum_s d(s) (1 - lambda)^(t - s)``);
- the control-group counterfactual with the donors and weights of
  ``build_world(cfg).controls`` (so a comparison is on the same world), or
  none for verified outcomes (a rate card: the true units are measured);
- per_unit / threshold / binary payments with cumulative caps over
  measurement dates, on the measured units or, for a bond on the shrunk
  basis, on ``k x measured + (1 - k) x prior`` with the world's ``k`` and
  prior (terms of the contract, fixed at signing), and the investors'
  payment and default indicator; a pooled basket's bonds paid on
  ``target x`` the basket's summed measured units over its summed target.

It reproduces per-bond outputs only (no departments, savings or baskets).

Usage::

    from lobsim import load_config
    from reference_numpy import simulate_reference
    out = simulate_reference(load_config("configs/birmingham_jsa.toml"), 20_000, seed=1)
    out["investor_payment"].mean(axis=0), out["default"].mean(axis=0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from lobsim.model.areas import OutcomeData, read_outcome
from lobsim.model.config import PERIODS_PER_YEAR, Config, InterventionType, OutcomeProcess
from lobsim.model.process import ar1_period_parameters
from lobsim.model.world import World, build_world

__all__ = ["ramp", "simulate_reference"]

OUTPUTS = ("true_units", "measured_units", "paid_units", "investor_payment", "default")


def ramp(t: InterventionType, tau: np.ndarray) -> np.ndarray:
    """Cumulative share of ``target x theta`` delivered ``tau`` years after the start.

    Linear over ``ramp_years`` (all at once if 0), or the piecewise-linear
    ``ramp_profile`` (cumulative shares at the end of years 1, 2, ...; 1 after).
    """
    tau = np.asarray(tau, dtype=float)
    if t.ramp_profile is not None:
        knots = np.concatenate([[0.0], t.ramp_profile])
        out = np.interp(tau, np.arange(knots.size), knots)
        out = np.where(tau >= knots.size - 1, 1.0, out)
    elif t.ramp_years == 0.0:
        out = (tau > 0.0).astype(float)
    else:
        out = np.minimum(1.0, tau / t.ramp_years)
    return np.where(tau <= 0.0, 0.0, out)


@dataclass
class _Outcome:
    """The touched series of one outcome and its process."""

    proc: OutcomeProcess
    data: OutcomeData
    areas: list[int]  # area index per series
    regions: list[str]  # touched regions
    s_region: np.ndarray  # region position per series
    beta: np.ndarray = field(default_factory=lambda: np.empty(0))  # loadings
    gamma: np.ndarray = field(default_factory=lambda: np.empty(0))  # per series


def _on_grid(t: float, ppy: int, what: str) -> int:
    k = round(t * ppy)
    if abs(k - t * ppy) > 1e-9:
        raise ValueError(f"{what} {t:g} is not on the grid of {ppy} periods a year")
    return k


def simulate_reference(cfg: Config, scenarios: int, seed: int, *, period: str = "month",
                       world: World | None = None, chunk: int = 20_000) -> dict[str, np.ndarray]:
    """Simulate ``scenarios`` scenarios of ``cfg`` stepping every ``period``.

    Parameters
    ----------
    cfg : Config
    scenarios, seed : int
    period : {"month", "quarter", "year"}
        The simulation step; the model's parameters are per year and converted
        exactly, so every step gives the same distribution at measurement dates.
    world : World, optional
        ``build_world(cfg)``, for its control groups (donors and weights).
    chunk : int
        Scenarios simulated at once (memory only).

    Returns
    -------
    dict of str to ndarray, each (scenarios, bonds)
        ``true_units`` and ``measured_units`` at maturity, cumulative
        ``paid_units``, ``investor_payment`` and ``default`` (payment < principal).
    """
    if world is None:
        world = build_world(cfg)
    assert cfg.universe is not None
    rng = np.random.default_rng(seed)
    out = {name: np.empty((scenarios, len(cfg.bonds))) for name in OUTPUTS[:-1]}
    out["default"] = np.empty((scenarios, len(cfg.bonds)), np.bool_)
    model = _Model(cfg, world, PERIODS_PER_YEAR[period])
    for lo in range(0, scenarios, chunk):
        hi = min(lo + chunk, scenarios)
        part = model.run(rng, hi - lo)
        for name in OUTPUTS:
            out[name][lo:hi] = part[name]
    return out


class _Model:
    """Everything about a config that does not depend on the draws."""

    def __init__(self, cfg: Config, world: World, ppy: int) -> None:
        assert cfg.universe is not None
        self.cfg, self.ppy = cfg, ppy
        areas = world.areas
        data_ppy = PERIODS_PER_YEAR[cfg.universe.period]
        self.bonds = cfg.bonds
        # touched series per outcome: treated areas, then donors with positive weight
        self.outcomes: dict[str, _Outcome] = {}
        self.series: dict[tuple[str, int], int] = {}
        self.donors: list[list[tuple[int, float]]] = []
        for b in self.bonds:
            self._touch(cfg, areas, data_ppy, b.outcome, areas.index(b.area))
        for b, fit in zip(self.bonds, world.controls, strict=True):
            self.donors.append([(self._touch(cfg, areas, data_ppy, b.outcome, int(a)), float(w))
                                for a, w in zip(fit.donors, fit.weights, strict=True)
                                if w > 0.0])
        for o in self.outcomes.values():
            o.s_region = np.array([o.regions.index(areas.regions[a]) for a in o.areas])
            # an area's own loadings (areas file) where given, else the outcome's
            own = {"national_loading": areas.national_loading,
                   "regional_loading": areas.regional_loading}
            for name, attr in (("national_loading", "beta"), ("regional_loading", "gamma")):
                common, col = getattr(o.proc, name), own[name]
                setattr(o, attr, np.array([
                    common if col is None or np.isnan(col[a]) else col[a] for a in o.areas]))
        self.treated = [self.series[(b.outcome, areas.index(b.area))] for b in self.bonds]
        # the shrunk payment basis: the terms fixed at signing are the contract's
        self.shrink_k = world.arrays.bonds.shrink_k
        self.prior = world.arrays.measurements.prior
        # time grid
        self.n_periods = max(_on_grid(b.maturity, ppy, "maturity") for b in self.bonds)
        self.measure_at: dict[int, list[tuple[int, int]]] = {}
        for i, b in enumerate(self.bonds):
            _on_grid(b.start, ppy, "start")
            for j, m in enumerate(b.payment.measurements):
                self.measure_at.setdefault(_on_grid(m.at, ppy, "measurement"), []).append((i, j))
        self.types = list(dict.fromkeys(b.intervention for b in self.bonds))
        self.providers = list(dict.fromkeys(b.provider for b in self.bonds))
        self.origin = {p: min(b.start for b in self.bonds if b.provider == p)
                       for p in self.providers}
        # pooled baskets (measured together, all due at the same dates): bond -> its pool
        self.pool_of: dict[int, list[int]] = {}
        for k, basket in enumerate(cfg.baskets):
            if basket.measurement == "pooled":
                members = np.flatnonzero(world.basket_members[k]).tolist()
                self.pool_of.update({i: members for i in members})

    def _touch(self, cfg: Config, areas, data_ppy: int, outcome: str, area: int) -> int:
        key = (outcome, area)
        if key not in self.series:
            o = self.outcomes.get(outcome)
            if o is None:
                spec = cfg.outcome(outcome)
                assert spec.process is not None and spec.history is not None
                o = _Outcome(proc=spec.process,
                             data=read_outcome(spec.history, spec.state, areas, data_ppy),
                             areas=[], regions=[], s_region=np.empty(0, np.int64))
                self.outcomes[outcome] = o
            region = areas.regions[area]
            if region not in o.regions:
                o.regions.append(region)
            self.series[key] = len(o.areas)
            o.areas.append(area)
        return self.series[key]

    def run(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        cfg, ppy, bonds = self.cfg, self.ppy, self.bonds
        n_b = len(bonds)

        # -- programme: copula, Beta success fractions, provider failure times -------
        zglob = rng.standard_normal(n)
        ztype = {t: rng.standard_normal(n) for t in self.types}
        fail = {}
        for p in self.providers:
            h = cfg.provider(p).failure_hazard
            fail[p] = self.origin[p] + rng.exponential(1.0 / h, n) if h > 0.0 else np.full(n, np.inf)
        scale, stop, itype = [], [], []
        for b in bonds:
            t = cfg.intervention(b.intervention)
            z = (math.sqrt(t.rho_type) * ztype[t.id] + math.sqrt(t.rho_global) * zglob
                 + math.sqrt(max(0.0, 1.0 - t.rho_type - t.rho_global)) * rng.standard_normal(n))
            if t.success_sd == 0.0:
                theta = np.full(n, t.success_mean)
            else:
                m, s = t.success_mean, t.success_sd
                kappa = m * (1.0 - m) / (s * s) - 1.0
                theta = stats.beta.ppf(stats.norm.cdf(z), m * kappa, (1.0 - m) * kappa)
            scale.append(b.target_units * theta)
            stop.append(fail[b.provider] - b.start)  # delivery ends this long after the start
            itype.append(t)
        stock = [np.zeros(n) for _ in bonds]  # relapsing units from completed years
        bucket = [np.zeros(n) for _ in bonds]  # units delivered in the current year
        effect = [np.zeros(n) for _ in bonds]

        # -- area processes: state at the base period ---------------------------------
        state = {}
        steps = {}
        for oid, o in self.outcomes.items():
            p, d = o.proc, o.data
            f0 = d.national_state
            g0 = np.array([d.regional_state[r] for r in o.regions])
            u0 = d.area_state[o.areas]
            state[oid] = [np.full(n, f0), np.tile(g0, (n, 1)), np.tile(u0, (n, 1))]
            steps[oid] = tuple(ar1_period_parameters(phi, sigma, ppy) for phi, sigma in (
                (p.national_phi, p.national_sigma), (p.regional_phi, p.regional_sigma),
                (p.area_phi, p.area_sigma)))

        paid = np.zeros((n, n_b))
        cash = np.zeros((n, n_b))
        meas = np.zeros((n, n_b))
        for k in range(1, self.n_periods + 1):
            t = k / ppy
            # 1. every component one period on
            for oid in self.outcomes:
                f, g, u = state[oid]
                (pf, sf), (pg, sg), (pu, su) = steps[oid]
                state[oid] = [pf * f + sf * rng.standard_normal(n),
                              pg * g + sg * rng.standard_normal(g.shape),
                              pu * u + su * rng.standard_normal(u.shape)]
            # 2. delivery over (t - 1/ppy, t], relapse at the end of each bond year
            for i, b in enumerate(bonds):
                tau = t - b.start
                if tau <= 0.0 or t > b.maturity + 1e-12:
                    continue
                prev = tau - 1.0 / ppy
                ty = itype[i]
                bucket[i] += scale[i] * (ramp(ty, np.minimum(tau, stop[i]))
                                         - ramp(ty, np.minimum(prev, stop[i])))
                q = 1.0 - ty.relapse_rate
                whole = round(tau)
                if abs(tau - whole) < 1e-9:  # a bond year ends: survivors relapse a year
                    stock[i] = stock[i] * q + bucket[i]
                    bucket[i] = np.zeros(n)
                    effect[i] = stock[i]
                else:
                    effect[i] = stock[i] * q ** (tau - math.floor(tau)) + bucket[i]
            # 3. measurements due now
            due = self.measure_at.get(k)
            if not due:
                continue
            logs, noise = {}, {}
            for oid, o in self.outcomes.items():
                f, g, u = state[oid]
                p, d = o.proc, o.data
                a = np.asarray(o.areas)
                g0 = np.array([d.regional_state[r] for r in o.regions])
                logs[oid] = (d.log_level[a] + d.trend[a] * t
                             + o.beta * (f - d.national_state)[:, None]
                             + o.gamma * (g - g0)[:, o.s_region]
                             + (u - d.area_state[a]))
                noise[oid] = rng.standard_normal(u.shape)
            seen = {}  # bond -> (measured units, what its threshold is a share of)
            for i, _ in due:
                b = bonds[i]
                o = self.outcomes[b.outcome]
                sig = o.proc.measurement_sigma
                x, e = logs[b.outcome], noise[b.outcome]
                s = self.treated[i]
                y_nat = np.exp(x[:, s])
                y_obs_noise = np.exp(sig * e[:, s] - 0.5 * sig * sig)
                lc = np.zeros(n)
                for sd, w in self.donors[i]:
                    x_obs = x[:, sd] + sig * e[:, sd] - 0.5 * sig * sig
                    lc += w * (x_obs - o.data.log_base[o.areas[sd]])
                yhat = math.exp(o.data.log_base[o.areas[s]]) * np.exp(lc)
                e_t = effect[i]
                count = cfg.outcome(b.outcome).kind == "count"
                if b.control.weights == "verified":
                    # a rate card: the true units are measured, against no comparison
                    m = e_t.copy()
                    per = math.exp(o.data.log_base[o.areas[s]]) if count else 100.0
                elif count:
                    y_obs = (y_nat - np.minimum(e_t, y_nat)) * y_obs_noise
                    m = yhat - y_obs
                    per = yhat
                else:
                    y_obs = y_nat * (1.0 - np.minimum(e_t, 100.0) / 100.0) * y_obs_noise
                    m = 100.0 * (yhat - y_obs) / yhat
                    per = 100.0
                meas[:, i] = m
                seen[i] = (m, per)
            for i, j in due:
                b = bonds[i]
                m, per = seen[i]
                members = self.pool_of.get(i)
                if members is not None:
                    # pooled: paid on target x the pool's summed measured over summed target
                    total = sum(seen[q][0] for q in members)
                    m = b.target_units * total / sum(bonds[q].target_units for q in members)
                pay = b.payment
                if members is None and pay.basis == "shrunk":
                    # paid on k x measured + (1 - k) x prior, k and prior fixed at signing
                    # (lobsim.model.shrinkage, as the world holds them)
                    ks = self.shrink_k[i]
                    m = ks * m + (1.0 - ks) * self.prior[i, j]
                improvement = m / per
                if pay.mechanism == "binary":
                    hit = m >= pay.trigger * b.target_units
                    paid[:, i] = np.where(hit, b.target_units, paid[:, i])
                    cash[:, i] += np.where(hit, pay.amount, 0.0)
                else:
                    mj = pay.measurements[j]
                    cum = np.where(improvement >= mj.threshold, np.clip(m, 0.0, mj.cap), 0.0)
                    units = np.maximum(cum - paid[:, i], 0.0)
                    paid[:, i] += units
                    cash[:, i] += units * b.price_per_unit
        principal = np.array([b.principal for b in bonds])
        return {
            "true_units": np.column_stack(effect),
            "measured_units": meas,
            "paid_units": paid,
            "investor_payment": cash,
            "default": cash < principal,
        }
