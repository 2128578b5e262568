"""Baskets: which bonds belong to which basket, and what a basket is made of.

A basket is an explicit list of bonds, grouping rules (region, intervention
type, provider, outcome, maturity band), a risk band on the bonds' simulated
stand-alone default probability, or a combination (docs/model.md section 8.1). The social
investment bank packages "baskets of LOBs that share both geographical,
maturity and risk similarities" (Total Neighbourhood, section 5.2).

Membership rule: the *candidates* of a basket are its listed bonds plus the
bonds matching its ``where`` rules (every bond when it has neither); a
``risk_band = [low, high]`` then keeps the candidates whose stand-alone
default probability lies in ``[low, high]``. The probabilities come from a
first, screening simulation (:func:`resolve_risk_bands`): at most
``RISK_BAND_SCENARIOS`` scenarios on a stream derived from the config's seed
but independent of any run's, so that membership is a property of the config
(the same for every run, whatever its scenario count or seed) and is not
decided by the very scenarios the basket is then measured on.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from lobsim.areas import AreaTable
from lobsim.config import Basket, Config
from lobsim.errors import ConfigError

#: Spawn key that separates the screening stream of risk bands from the run's
#: blocks (which use spawn keys ``(block,)``).
SCREENING_KEY = 0x7FFF_FFFF
#: Scenarios of the screening run (fewer if the config asks for fewer): the
#: standard error of a default probability is then at most 0.005.
RISK_BAND_SCENARIOS = 10_000


def _candidates(basket: Basket, cfg: Config, areas: AreaTable) -> np.ndarray:
    """Listed bonds or bonds matching the rules; every bond if neither is given."""
    bonds = cfg.bonds
    if basket.bonds is None and basket.where is None:
        return np.ones(len(bonds), np.bool_)
    out = np.zeros(len(bonds), np.bool_)
    for i, b in enumerate(bonds):
        listed = basket.bonds is not None and b.id in basket.bonds
        matched = False
        w = basket.where
        if w is not None:
            region = areas.regions[areas.index(b.area)]
            matched = (
                (w.regions is None or region in w.regions)
                and (w.interventions is None or b.intervention in w.interventions)
                and (w.providers is None or b.provider in w.providers)
                and (w.outcomes is None or b.outcome in w.outcomes)
                and (w.maturity_min is None or b.maturity >= w.maturity_min)
                and (w.maturity_max is None or b.maturity <= w.maturity_max)
            )
        out[i] = listed or matched
    return out


def basket_membership(cfg: Config, areas: AreaTable, *,
                      default_probability: Sequence[float] | np.ndarray | None = None,
                      ) -> tuple[tuple[str, ...], np.ndarray]:
    """Basket ids and a (baskets, bonds) membership matrix.

    A config without baskets gets one basket, ``all``, holding every bond.

    Parameters
    ----------
    cfg : Config
    areas : AreaTable
        The universe (for the bonds' regions).
    default_probability : array of float, optional
        Stand-alone default probability of each bond, in config order, for
        baskets with a ``risk_band``; by default the screening run of
        :func:`resolve_risk_bands` estimates them.

    Raises
    ------
    ConfigError
        If a basket has no bond.
    """
    bonds = cfg.bonds
    if not cfg.baskets:
        return ("all",), np.ones((1, len(bonds)), np.bool_)
    pd = None if default_probability is None else np.asarray(default_probability, float)
    if pd is None and any(b.risk_band is not None for b in cfg.baskets):
        pd = resolve_risk_bands(cfg).default_probability
    member = np.zeros((len(cfg.baskets), len(bonds)), np.bool_)
    for k, basket in enumerate(cfg.baskets):
        member[k] = _candidates(basket, cfg, areas)
        band = basket.risk_band
        if band is not None and pd is not None:
            member[k] &= (pd >= band[0]) & (pd <= band[1])
        if not member[k].any():
            why = "no bond matches this basket's rules"
            if band is not None and pd is not None:
                why += (f" (risk band [{band[0]:g}, {band[1]:g}]; the candidates' stand-alone "
                        f"default probabilities range from {pd.min():.4g} to {pd.max():.4g})")
            raise ConfigError(why, source=cfg.source, path=f"baskets[{k}]")
    return tuple(b.id for b in cfg.baskets), member


@dataclass(frozen=True)
class RiskBands:
    """Baskets with risk bands resolved into explicit bond lists.

    Attributes
    ----------
    config : Config
        The config with every risk-band basket replaced by the explicit list
        of its members (same hash: the resolution is a function of the
        config, the scenario count and the seed).
    default_probability, default_probability_se : ndarray, shape (bonds,)
        Stand-alone default probabilities of the screening run and their
        Monte Carlo standard errors.
    scenarios, seed : int
        Size and seed of the screening run (the seed of its own stream).
    """

    config: Config
    default_probability: np.ndarray
    default_probability_se: np.ndarray
    scenarios: int
    seed: int


def screening_seed(seed: int) -> int:
    """Seed of the screening run of a run with ``seed``: an independent stream."""
    state = np.random.SeedSequence(seed, spawn_key=(SCREENING_KEY,)).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def resolve_risk_bands(cfg: Config, scenarios: int | None = None,
                       seed: int | None = None) -> RiskBands:
    """Decide the members of risk-band baskets by a first, screening simulation.

    Each bond's stand-alone default probability ``P(payment < principal)`` is
    estimated on ``scenarios`` scenarios of a stream derived from ``seed``
    (:func:`screening_seed`), independent of any run's own scenarios. Results
    are cached per config.

    Parameters
    ----------
    cfg : Config
    scenarios : int, optional
        Default: the config's scenario count, at most ``RISK_BAND_SCENARIOS``.
    seed : int, optional
        Default: the config's seed.

    Returns
    -------
    RiskBands

    Examples
    --------
    >>> from lobsim import load_config
    >>> bands = resolve_risk_bands(load_config("configs/basket_demo.toml"), 2000)  # doctest: +SKIP
    >>> bands.config.baskets[-1].bonds  # doctest: +SKIP
    """
    n = min(cfg.simulation.scenarios, RISK_BAND_SCENARIOS) if scenarios is None else scenarios
    s = screening_seed(cfg.simulation.seed if seed is None else seed)
    return _resolve(cfg, n, s)


@functools.lru_cache(maxsize=16)
def _resolve(cfg: Config, n: int, s: int) -> RiskBands:
    from lobsim.simulate import run_blocks
    from lobsim.world import build_world

    bonds = cfg.bonds
    if not any(b.risk_band is not None for b in cfg.baskets):
        zeros = np.zeros(len(bonds))
        return RiskBands(cfg, zeros * np.nan, zeros * np.nan, 0, s)
    # bonds do not depend on baskets: screen without them
    world = build_world(dataclasses.replace(cfg, baskets=()))
    out = run_blocks(world, n, s, cfg.simulation.block_size)
    pd = out["default"].mean(axis=0)
    pd.flags.writeable = False  # cached: shared by every caller
    pd_se = np.sqrt(pd * (1.0 - pd) / max(n - 1, 1))
    _, member = basket_membership(cfg, world.areas, default_probability=pd)
    baskets = tuple(
        b if b.risk_band is None else dataclasses.replace(
            b, bonds=tuple(bd.id for bd, m in zip(bonds, member[k], strict=True) if m),
            where=None, risk_band=None)
        for k, b in enumerate(cfg.baskets))
    return RiskBands(dataclasses.replace(cfg, baskets=baskets), pd, pd_se, n, s)


# --------------------------------------------------------------------------
# Composition report
# --------------------------------------------------------------------------
GROUPS = ("region", "provider", "intervention", "maturity")


def basket_composition(ds: xr.Dataset) -> xr.Dataset:
    """What each basket is made of.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate` (needs ``basket_member``).

    Returns
    -------
    xarray.Dataset
        Per basket: ``bonds`` (count), ``principal``, ``mean_default_probability``
        (simple mean of the members' stand-alone default probabilities, from
        this run) and ``weighted_default_probability`` (principal-weighted);
        ``principal_by_<group>`` (basket, <group>) for region, provider,
        intervention type and maturity (years); ``members`` (basket, bond).
    """
    member = ds.basket_member.values.astype(bool)
    principal = ds.principal.values
    pd = _default_probability(ds)
    w = member * principal
    total = w.sum(axis=1)
    data: dict[str, Any] = {
        "members": (("basket", "bond"), member),
        "bonds": (("basket",), member.sum(axis=1)),
        "principal": (("basket",), total, {"units": ds.principal.attrs.get("units", "")}),
        "mean_default_probability": (("basket",), (member * pd).sum(axis=1)
                                     / np.maximum(member.sum(axis=1), 1)),
        "weighted_default_probability": (("basket",), (w * pd).sum(axis=1)
                                         / np.where(total > 0, total, 1.0)),
    }
    coords: dict[str, Any] = {"basket": ds.basket.values, "bond": ds.bond.values}
    for group in GROUPS:
        labels = ds[group].values
        keys = sorted(set(labels.tolist()))
        onehot = np.array([[lab == key for key in keys] for lab in labels], float)
        data[f"principal_by_{group}"] = ((("basket", f"{group}_group")), w @ onehot)
        coords[f"{group}_group"] = keys
    return xr.Dataset(data, coords=coords)


def _default_probability(ds: xr.Dataset) -> np.ndarray:
    d = ds["default"].values.astype(float)
    if "log_weight" in ds and np.any(ds.log_weight.values != 0.0):
        w = np.exp(ds.log_weight.values)
        return np.asarray((w @ d) / w.sum())
    return np.asarray(d.mean(axis=0))


def format_composition(comp: xr.Dataset, top: int = 3) -> str:
    """Plain-text composition of each basket: size, risk and largest groups."""
    lines = [f"{'':<16}{'bonds':>6}{'principal':>14}{'mean PD':>9}{'wtd PD':>9}  largest groups "
             "(share of principal)"]
    for k, key in enumerate(comp.basket.values.tolist()):
        total = float(comp.principal[k])
        parts = []
        for group in GROUPS:
            by = comp[f"principal_by_{group}"].values[k]
            names = comp[f"{group}_group"].values
            order = np.argsort(-by, kind="stable")[:top]
            label = "maturity" if group == "maturity" else group
            items = [f"{_fmt_group(names[j], group)} {by[j] / total:.0%}"
                     for j in order if by[j] > 0]
            parts.append(f"{label}: " + ", ".join(items))
        lines.append(f"{str(key)[:16]:<16}{int(comp.bonds[k]):>6}{total:>14,.0f}"
                     f"{float(comp.mean_default_probability[k]):>9.4f}"
                     f"{float(comp.weighted_default_probability[k]):>9.4f}  " + parts[0])
        lines += [f"{'':<56}{p}" for p in parts[1:]]
    return "\n".join(lines)


def _fmt_group(name: Any, group: str) -> str:
    if group == "maturity":
        return f"{float(name):g}y" if math.isfinite(float(name)) else str(name)
    return str(name)
