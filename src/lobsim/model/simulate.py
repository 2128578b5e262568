"""Run the Monte Carlo: blocks of scenarios on a thread pool, labelled results.

Scenarios are drawn in fixed-size blocks; block ``i`` has its own generator,
``SFC64(SeedSequence(seed, spawn_key=(i,)))`` (the ``i``-th child that
``SeedSequence(seed).spawn`` would give), so results are bit-identical
whatever the number of threads or the chunk size (docs/model.md section 9.4).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from lobsim._version import __version__
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import run_blocks
from lobsim.model.config import Config, payment_years
from lobsim.model.screening import resolve_risk_bands
from lobsim.model.shortfall import provider_shortfall
from lobsim.model.tax import add_after_tax
from lobsim.model.waterfall import add_tranches
from lobsim.model.world import World, build_world

CURRENCY = "GBP"


def simulate(cfg: Config, *, scenarios: int | None = None, seed: int | None = None,
             chunk_size: int | None = None, threads: int | None = None,
             tilt_global: float = 0.0, tilt_types: dict[str, float] | None = None,
             progress: Callable[[int], Any] | None = None,
             block_worlds: Callable[[Config, int, int], Sequence[World]] | None = None
             ) -> xr.Dataset:
    """Simulate a configuration and return labelled results.

    Parameters
    ----------
    cfg : Config
        A validated configuration with a universe.
    scenarios, seed : int, optional
        Override ``[simulation]`` of the config.
    chunk_size : int, optional
        Scenarios per task (rounded up to whole blocks); results do not depend on it.
    threads : int, optional
        Worker threads; results do not depend on it.
    tilt_global, tilt_types : float, dict, optional
        Importance sampling: shift the mean of the copula's global factor and
        of type factors (id -> shift). Each scenario's ``log_weight`` is then
        its log likelihood ratio; weighted statistics stay unbiased.
    progress : callable, optional
        Called with the number of scenarios of each finished block.
    block_worlds : callable, optional
        ``block_worlds(config, seed, n_blocks)`` gives the world of every
        block, as for :func:`lobsim.scale.runner.run`; ``lobsim.simulate(...,
        parameter_uncertainty=True)`` passes the parameter draws' (its
        worlds must describe the same bonds and dates).

    Returns
    -------
    xarray.Dataset
        Dimensions ``scenario``, ``bond``, ``department``, ``year``, ``basket``;
        see the README, section Results. Baskets with a ``risk_band`` get
        their members from the config's screening run
        (:func:`lobsim.model.screening.resolve_risk_bands`); baskets with tranches add
        a ``tranche`` dimension (:func:`lobsim.model.waterfall.add_tranches`,
        docs/baskets.md); investor classes a ``holding`` dimension with
        after-tax IRRs (:func:`lobsim.model.tax.add_after_tax`, docs/decisions.md).

    Examples
    --------
    >>> from lobsim import load_config, simulate
    >>> ds = simulate(load_config("configs/birmingham_jsa.toml"), scenarios=1000)  # doctest: +SKIP
    >>> float(ds.default.mean())  # doctest: +SKIP
    """
    n = cfg.simulation.scenarios if scenarios is None else scenarios
    s = cfg.simulation.seed if seed is None else seed
    if n < 1:
        raise ValueError(f"scenarios must be at least 1, got {n}")
    bands = None
    if any(b.risk_band is not None for b in cfg.baskets):
        # risk bands: members decided by the config's screening run (own stream)
        bands = resolve_risk_bands(cfg)
        cfg = bands.config
    world = build_world(cfg, tilt_global=tilt_global, tilt_types=tilt_types)
    bs = cfg.simulation.block_size
    worlds = None if block_worlds is None else block_worlds(cfg, s, math.ceil(n / bs))
    out = run_blocks(world, n, s, bs, chunk_size, threads, progress, worlds)
    return finish_run(world, cfg, out, seed=s, bands=bands)


def finish_run(world: World, cfg: Config, out: Outputs, *, seed: int,
               bands: Any = None) -> xr.Dataset:
    """Label kernel outputs and add what is derived from them (screening, tranches).

    Row-wise: applied to any block of scenarios it gives those rows of the
    whole run (lobsim.scale.runner labels blocks with it).

    Parameters
    ----------
    world : World
    cfg : Config
        The config the world was built from (risk bands resolved).
    out : Outputs
        Kernel outputs (:func:`lobsim.model.blocks.run_blocks`), any number of scenarios.
    seed : int
    bands : lobsim.model.screening.RiskBands, optional
        The risk-band screening, if the config has risk-band baskets.
    """
    ds = label(world, cfg, out, seed=seed, version=__version__)
    if bands is not None:
        ds.attrs["config_hash"] = bands.source_hash  # a run of the config as given
        ds["screening_default_probability"] = ("bond", bands.default_probability, {
            "units": "1", "long_name": "stand-alone default probability of the risk-band "
                                       f"screening run ({bands.scenarios} scenarios)"})
    return add_after_tax(add_tranches(ds, cfg), cfg)  # after-tax returns: lobsim.model.tax


def label(world: World, cfg: Config, outputs: Outputs, *, seed: int,
          version: str) -> xr.Dataset:
    """Wrap kernel outputs in an :class:`xarray.Dataset` with coords and units.

    Each output becomes the variable of its name (:class:`lobsim.kernels.contract.Outputs`).
    """
    out = outputs._asdict()
    bonds = world.bonds
    principal = np.array([b.principal for b in bonds])
    n = out["irr"].shape[0]
    basket_principal = world.basket_members.astype(float) @ principal
    sb = ("scenario", "bond")
    units = {"units": "outcome units (percentage points for percent outcomes)"}
    money = {"units": CURRENCY}
    data: dict[str, Any] = {
        "true_units": (sb, out["true_units"], {**units, "long_name": "units truly achieved at maturity"}),
        "measured_units": (sb, out["measured_units"],
                           {**units, "long_name": "units measured against the control group at maturity"}),
        "prediction_error": (sb, out["prediction_error"], {
            **units, "long_name": "units measured at maturity with no true effect"}),
        "paid_units": (sb, out["paid_units"], {**units, "long_name": "units paid for"}),
        "investor_payment": (sb, out["investor_payment"], {**money, "long_name": "outcome payments to investors"}),
        "multiple": (sb, out["investor_payment"] / principal, {"units": "1", "long_name": "money multiple"}),
        "irr": (sb, out["irr"], {"units": "1/year", "long_name": "investor internal rate of return"}),
        "default": (sb, out["default"], {"long_name": "investor payment below principal"}),
        "total_loss": (sb, out["total_loss"], {"long_name": "nothing paid"}),
        "overpayment": (sb, out["overpayment"],
                        {**money, "long_name": "payments for units the programme did not cause"}),
        "provider_shortfall": (sb, provider_shortfall(out["true_units"], out["paid_units"], bonds),
                               {**units, "long_name": "units truly achieved (up to the cap) "
                                                      "but not paid for"}),
        "department_payment": (("scenario", "department", "year"), out["department_payment"],
                               {**money, "long_name": "department payments to agencies"}),
        "department_saving": (("scenario", "department", "year"), out["department_saving"],
                              {**money, "long_name": "department savings on true units"}),
        "basket_payment": (("scenario", "basket"), out["basket_payment"], money),
        "basket_multiple": (("scenario", "basket"), out["basket_payment"] / basket_principal,
                            {"units": "1"}),
        "basket_irr": (("scenario", "basket"), out["basket_irr"], {"units": "1/year"}),
        "basket_cashflow": (("scenario", "basket", "time"), out["basket_cashflow"], {
            **money, "long_name": "basket outcome payments at each cash-flow time"}),
        "dated_payment": (("scenario", "payment"), out["dated_payment"], {
            **money, "long_name": "payments by date of the bonds paying at several dates"}),
        "log_weight": (("scenario",), out["log_weight"], {
            "units": "1", "long_name": "log likelihood ratio (0 without importance sampling)"}),
        "rmspe": (("bond",), np.array([c.rmspe for c in world.controls]),
                  {"units": "log points", "long_name": "pre-period RMSPE of the control group"}),
        **control_groups(world),
    }
    coords = {
        "scenario": np.arange(n),
        "bond": [b.id for b in bonds],
        "department": list(world.departments),
        "year": world.years,
        "basket": list(world.baskets),
        "provider": ("bond", [b.provider for b in bonds]),
        "area": ("bond", [b.area for b in bonds]),
        "outcome": ("bond", [b.outcome for b in bonds]),
        "intervention": ("bond", [b.intervention for b in bonds]),
        "principal": ("bond", principal, money),
        "price_per_unit": ("bond", np.array([b.price_per_unit for b in bonds]), money),
        "target_units": ("bond", np.array([b.target_units for b in bonds])),
        "start": ("bond", np.array([b.start for b in bonds]), {"units": "years after base"}),
        "maturity": ("bond", np.array([b.maturity for b in bonds]), {"units": "years after base"}),
        "basket_principal": ("basket", basket_principal, money),
        # the slots of dated_payment: a bond's measurements, then its coupons
        "payment_bond": ("payment", np.array([bonds[int(i)].id for i in world.slot_bond], str)),
        "payment_time": ("payment", world.slot_time, {"units": "years after base"}),
        "payment_year": ("payment", world.years[world.slot_year],
                         {"long_name": "year of the payment (as the year coordinate)"}),
        "payment_coupon": ("payment", world.slot_coupon,
                           {"long_name": "a fixed coupon (otherwise a measurement's payment)"}),
        "time": ("time", world.times, {"units": "years after base",
                                       "long_name": "cash-flow dates (starts and measurements)"}),
    }
    if (world.arrays.bonds.pool >= 0).any():
        # docs/model.md section 6.13: "separate" or "pooled" (lobsim.analysis.pooling);
        # absent from runs without a pooled basket, whose baskets are all separate
        coords["basket_measurement"] = ("basket", np.array(
            [cfg.basket(k).measurement for k in world.baskets], str))
    # baskets, tranches and risk contributions (lobsim.model.basket, .waterfall, .risk)
    data["basket_member"] = (("basket", "bond"), world.basket_members.astype(np.bool_),
                             {"long_name": "bond belongs to basket"})
    bd = ("bond", "department")
    data["department_share"] = (bd, _department_terms(cfg, world, "share"), {
        "units": "1", "long_name": "share of the bond's price paid by the department's agencies"})
    data["department_premium"] = (bd, _department_terms(cfg, world, "agency_premium"), {
        **money, "long_name": "agency premiums per paid unit paid by the department"})
    # the years a bond can pay in (year k covers (k-1, k]): lobsim.analysis.setaside splits
    # the payments of a bond paying in one year only
    data["pays_in_year"] = (("bond", "year"), np.array(
        [np.isin(world.years, payment_years(b)) for b in bonds], np.bool_).reshape(
            len(bonds), world.years.size), {"long_name": "the bond can pay in the year"})
    coords["region"] = ("bond", [world.areas.regions[world.areas.index(b.area)] for b in bonds])
    ds = xr.Dataset(data, coords=coords)
    ds["year"].attrs["long_name"] = "year after the base year (year k covers (k-1, k])"
    ds.attrs.update(
        title=f"lobsim results: {cfg.name}",
        config=cfg.name,
        config_source=cfg.source,  # as typed, for display
        config_path=config_path(cfg),
        config_hash=cfg.hash,
        seed=seed,
        scenarios=n,
        block_size=cfg.simulation.block_size,
        lobsim_version=version,
        currency=CURRENCY,
        normals_per_scenario=world.n_normals,
    )
    if cfg.overrides:  # --set PATH=VALUE on top of the file (its hash is the changed one's)
        ds.attrs["overrides"] = json.dumps(list(cfg.overrides))
    return ds


def control_groups(world: World) -> dict[str, Any]:
    """``control_donor`` and ``control_weight`` over (bond, donor): each bond's donor
    pool (area ids, "" where a bond has fewer donors than the largest pool) and
    the weights fitted at signing (0 where padded). Bonds with verified outcomes
    have no control group."""
    pools = [([], []) if b.control.weights == "verified"
             else ([world.areas.ids[int(a)] for a in fit.donors], list(fit.weights))
             for b, fit in zip(world.bonds, world.controls, strict=True)]
    width = max(1, max(len(ids) for ids, _ in pools))
    donors = np.array([ids + [""] * (width - len(ids)) for ids, _ in pools], str).reshape(
        len(pools), width)
    weights = np.array([w + [0.0] * (width - len(w)) for _, w in pools], float).reshape(
        len(pools), width)
    bd = ("bond", "donor")
    return {
        "control_donor": (bd, donors, {
            "units": "area id", "long_name": "donor areas of the bond's control group "
                                             "(\"\" pads a smaller pool)"}),
        "control_weight": (bd, weights, {
            "units": "1", "long_name": "weight of each donor in the bond's control group "
                                       "(fitted at signing; 0 where padded)"}),
    }


def config_path(cfg: Config) -> str:
    """The absolute path of ``cfg``'s file ("" for a config not read from a file).

    Results record it (attrs ``config_path``) beside the hash, so that
    ``lobsim report`` finds the config from any working directory; a relative
    source is resolved against the working directory of the run.
    """
    path = Path(cfg.source)
    return str(path.resolve()) if path.is_file() else ""


def _department_terms(cfg: Config, world: World, term: str) -> np.ndarray:
    """(bond, department): a payer term (``"share"`` of the price, or
    ``"agency_premium"`` per paid unit) summed over each department's agencies."""
    out = np.zeros((len(world.bonds), len(world.departments)))
    index = {d: i for i, d in enumerate(world.departments)}
    for i, b in enumerate(world.bonds):
        for p in b.payers:
            out[i, index[cfg.agency(p.agency).department]] += getattr(p, term)
    return out
