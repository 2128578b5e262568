"""From a config to the named groups of arrays the kernel runs on (the simulation's world).

Everything that does not depend on the random draws is computed once, one
builder per group of :mod:`lobsim.kernels.contract`: here donor pools and their
weights (:func:`build_controls`), the dates and series they touch
(:func:`build_layout`), basket membership and the cash-flow time grid
(:func:`build_baskets`); in :mod:`lobsim.model.world_groups` the factors,
series, programme, bond terms, measurements, savings and payments.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lobsim.errors import ConfigError
from lobsim.kernels.contract import Baskets, Bonds, WorldArrays
from lobsim.model.areas import AreaTable, OutcomeData, read_areas, read_outcome, read_volatility
from lobsim.model.basket import (
    RISK_BAND_SCENARIOS,
    basket_membership,
    pooled_terms,
    screening_seed,
)
from lobsim.model.blocks import run_blocks
from lobsim.model.config import PERIODS_PER_YEAR, Bond, Config
from lobsim.model.control import ControlFit, fit_control, nearest_donors
from lobsim.model.derive import derive
from lobsim.model.schema import check_ids
from lobsim.model.shrinkage import ShrinkTerms, at_signing, with_shrinkage
from lobsim.model.world_groups import (
    Layout,
    build_bonds,
    build_factors,
    build_measurements,
    build_payments,
    build_programme,
    build_savings,
    build_series,
)


@dataclass(kw_only=True)
class World:
    """The kernel's groups of arrays of a config, with the labels the results need."""

    arrays: WorldArrays
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
    #: payment slots of bonds paying at several dates (kernel output ``dated_payment``):
    #: bond index, time (years after base) and payment year index (year k - 1
    #: covers (k-1, k], as ``years``) of each slot
    slot_bond: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    slot_year: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot_coupon: np.ndarray = field(default_factory=lambda: np.zeros(0, np.bool_))
    #: per bond, its shrinkage terms fixed at signing (None: paid on the point basis)
    shrinkage: tuple[ShrinkTerms | None, ...] = ()

    def derive(self, **groups: Any) -> World:
        """This world with some kernel groups replaced by name (``programme=...``).

        The labels stay; only what the kernel reads changes, so a derived
        world must describe the same bonds, baskets and dates.
        """
        return dataclasses.replace(self, arrays=self.arrays._replace(**groups))


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


def read_outcomes(cfg: Config, areas: AreaTable) -> dict[str, OutcomeData]:
    """The histories (and variance factors) of the outcomes the bonds use."""
    assert cfg.universe is not None
    ppy = PERIODS_PER_YEAR[cfg.universe.period]
    data: dict[str, OutcomeData] = {}
    for o in cfg.outcomes:
        if o.history is not None and any(b.outcome == o.id for b in cfg.bonds):
            data[o.id] = read_outcome(o.history, o.state, areas, ppy)
            if o.volatility is not None:
                data[o.id] = dataclasses.replace(
                    data[o.id], variance_scale=read_volatility(o.volatility, areas))
    return data


def build_controls(cfg: Config, areas: AreaTable,
                   data: dict[str, OutcomeData]) -> list[ControlFit]:
    """Each bond's control group, fitted once at signing.

    Raises
    ------
    ConfigError
        If a listed donor is itself treated on the outcome, or is the bond's own area.
    """
    treated = {b.area for b in cfg.bonds}
    treated_pairs = {(b.area, b.outcome) for b in cfg.bonds}
    controls = []
    for i, b in enumerate(cfg.bonds):
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
    return controls


def build_layout(cfg: Config, areas: AreaTable, controls: list[ControlFit]) -> Layout:
    """Dates, series (treated areas and donors with positive weight) and the cash-flow grid."""
    bonds = cfg.bonds
    d_time = np.array(sorted({m.at for b in bonds for m in b.payment.measurements}))
    d_index = {t: i for i, t in enumerate(d_time)}
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
    sorted_dates = [sorted(d) for d in s_dates]
    dmax = max(len(d) for d in sorted_dates)
    s_pos = np.full((len(series), d_time.size), -1, np.int64)
    for s, idx in enumerate(sorted_dates):
        s_pos[s, idx] = np.arange(len(idx))
    coupon_dates = {c.at for b in bonds for c in b.payment.coupons}
    t_grid_abs = np.array(sorted({b.start for b in bonds} | set(d_time.tolist()) | coupon_dates))
    deps = tuple(d.id for d in cfg.departments)
    return Layout(
        d_time=d_time, d_index=d_index, series=list(series), series_dates=sorted_dates,
        series_treated=s_treated, series_pos=s_pos, dmax=dmax, bond_series=b_series,
        bond_donors=b_donors, t_grid_abs=t_grid_abs,
        t_index={t: i for i, t in enumerate(t_grid_abs)},
        years=np.arange(1, math.ceil(max(b.maturity for b in bonds)) + 1),
        departments=deps, dep_index={d: i for i, d in enumerate(deps)})


def build_baskets(cfg: Config, areas: AreaTable, layout: Layout,
                  bond_terms: Bonds) -> tuple[tuple[str, ...], Baskets]:
    """Basket ids and members (risk bands from the config's screening run) on the
    cash-flow time grid (years after its first time)."""
    pd = None
    if any(b.risk_band is not None for b in cfg.baskets):
        # risk-band members from the config's own screening run (as the fallback
        # of lobsim.model.screening.resolve_risk_bands: its default size and seed)
        pd = screen_bonds(cfg, min(cfg.simulation.scenarios, RISK_BAND_SCENARIOS),
                          screening_seed(cfg.simulation.seed))[0]
    basket_ids, member = basket_membership(cfg, areas, default_probability=pd)
    t_grid = layout.t_grid_abs - layout.t_grid_abs[0]
    size = member.sum(axis=1).astype(np.int64)
    members = np.zeros((member.shape[0], max(1, int(size.max()))), np.int64)
    principal_at = np.zeros((member.shape[0], t_grid.size))
    for k, row in enumerate(member):
        where = np.flatnonzero(row)
        members[k, : where.size] = where
        np.add.at(principal_at[k], bond_terms.start_time[where], bond_terms.principal[where])
    # whole-year dates let the basket IRR be found by a polynomial in 1/(1+r)
    whole = bool(np.all(t_grid == np.round(t_grid)))
    steps = (np.diff(np.concatenate([[0.0], t_grid])).astype(np.int64) if whole
             else np.zeros(t_grid.size, np.int64))
    return basket_ids, Baskets(member=member, size=size, members=members,
                               principal_at=principal_at, time=t_grid, whole_years=whole,
                               steps=steps)


def build_world(cfg: Config, *, tilt_global: float = 0.0,
                tilt_types: dict[str, float] | None = None,
                outcome_data: Mapping[str, OutcomeData] | None = None,
                signing: tuple[ShrinkTerms | None, ...] | None = None) -> World:
    """Build the kernel's groups of arrays for ``cfg``.

    ``tilt_global`` and ``tilt_types`` (intervention type id -> shift) shift
    the means of the copula's global and type factors for importance
    sampling; each scenario then carries its log likelihood ratio.
    ``outcome_data`` (outcome id -> history and base state) replaces what
    the config's files give for those outcomes: a block's drawn base state
    under parameter uncertainty (:mod:`lobsim.validation.parameter_draws`).
    ``signing`` gives the shrunk bonds' terms (``World.shrinkage`` of the
    world they were signed in) instead of deriving them from this one: a
    block's drawn process changes sigma, but not a contract fixed at signing.

    Raises
    ------
    ConfigError
        If the config cannot be simulated (no universe, missing history, too
        few donors, a donor list that contains a treated area).
    """
    _require(cfg)
    assert cfg.universe is not None
    check_ids(cfg, tilt_types or {}, (t.id for t in cfg.interventions), "intervention type",
              path="tilt_types")
    areas = read_areas(cfg.universe.areas)
    data = {**read_outcomes(cfg, areas), **(outcome_data or {})}
    controls = build_controls(cfg, areas, data)
    layout = build_layout(cfg, areas, controls)
    factors, factor_index = build_factors(cfg, areas, data, layout)
    series = build_series(cfg, areas, data, layout, factors, factor_index)
    programme = build_programme(cfg, tilt_global, tilt_types or {})
    bond_terms = build_bonds(cfg, areas, data, layout)
    measurements = build_measurements(cfg, layout, bond_terms)
    savings = build_savings(cfg, layout, bond_terms, measurements)
    payments = build_payments(cfg, layout)
    basket_ids, baskets = build_baskets(cfg, areas, layout, bond_terms)
    shrink = (at_signing(cfg, factors, series, programme, bond_terms, measurements)
              if signing is None else signing)
    bond_terms, measurements = with_shrinkage(bond_terms, measurements, shrink)
    pool, pool_target = pooled_terms(cfg, baskets.member, bond_terms.target)
    bond_terms = bond_terms._replace(pool=pool, pool_target=pool_target)
    arrays = WorldArrays(factors=factors, series=series, programme=programme,
                         bonds=bond_terms, measurements=measurements, savings=savings,
                         payments=payments, baskets=baskets)
    # payment slots of the bonds that pay at several dates: measurements, then
    # coupons, bond by bond (the results otherwise hold only a bond's total)
    slot_bond: list[int] = []
    slot_time: list[float] = []
    slot_coupon: list[bool] = []
    for i, b in enumerate(cfg.bonds):
        if bond_terms.dated[i]:
            pay = b.payment
            slot_bond += [i] * (len(pay.measurements) + len(pay.coupons))
            slot_time += [m.at for m in pay.measurements] + [c.at for c in pay.coupons]
            slot_coupon += [False] * len(pay.measurements) + [True] * len(pay.coupons)
    nd = series.ndates
    return World(
        arrays=arrays,
        bonds=cfg.bonds,
        departments=layout.departments,
        baskets=basket_ids,
        years=layout.years,
        controls=tuple(controls),
        areas=areas,
        basket_members=baskets.member,
        times=layout.t_grid_abs,
        n_normals=(factors.phik.size + int(nd.sum()) + int(nd[series.treated].sum()) + 1
                   + programme.n_types + len(cfg.bonds)),
        n_exponentials=int((programme.hazard > 0).sum()),
        slot_bond=np.array(slot_bond, np.int64),
        slot_time=np.array(slot_time, float),
        slot_year=np.array([math.ceil(t) - 1 for t in slot_time], np.int64),
        slot_coupon=np.array(slot_coupon, np.bool_),
        shrinkage=shrink,
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
    pd = out.default.mean(axis=0)
    pd.flags.writeable = False
    return pd, world.areas
