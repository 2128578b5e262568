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
first, screening simulation (:func:`lobsim.model.screening.resolve_risk_bands`): at most
``RISK_BAND_SCENARIOS`` scenarios on a stream derived from the config's seed
but independent of any run's, so that membership is a property of the config
(the same for every run, whatever its scenario count or seed) and is not
decided by the very scenarios the basket is then measured on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from lobsim.errors import ConfigError
from lobsim.model.areas import AreaTable
from lobsim.model.config import Basket, Config

#: Spawn key that separates the screening stream of risk bands from the run's
#: blocks (which use spawn keys ``(block,)``).
SCREENING_KEY = 0x7FFF_FFFF
#: Scenarios of the screening run (fewer if the config asks for fewer): the
#: standard error of a default probability is then at most 0.005.
RISK_BAND_SCENARIOS = 10_000


def screening_seed(seed: int) -> int:
    """Seed of the screening run of a run with ``seed``: an independent stream."""
    state = np.random.SeedSequence(seed, spawn_key=(SCREENING_KEY,)).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


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
        baskets with a ``risk_band`` (from the screening run of
        :func:`lobsim.model.screening.resolve_risk_bands`); needed if a basket
        has one.

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
        # the screening simulation needs a world, so it runs above this layer
        raise ValueError("a risk-band basket needs the bonds' default probabilities: build "
                         "the world from lobsim.model.screening.resolve_risk_bands(cfg).config")
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


def pooled_terms(cfg: Config, member: np.ndarray, target: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each bond's pooled basket (numbered from 0 in config order; -1 if none) and
    the pool's summed target (docs/model.md section 6.13).

    Parameters
    ----------
    cfg : Config
    member : (baskets, bonds) bool
        Membership, as :func:`basket_membership` returns it.
    target : (bonds,) float
        Target units of each bond.

    Raises
    ------
    ConfigError
        If a pooled basket holds a bond that is not paid per measured unit or is
        on the shrunk basis, bonds of different outcome kinds or measurement dates, or a bond already pooled in
        another basket.
    """
    n_b = member.shape[1]
    pool = np.full(n_b, -1, np.int64)
    pool_target = np.zeros(n_b)
    n_pools = 0
    for k, basket in enumerate(cfg.baskets):
        if basket.measurement != "pooled":
            continue
        where = np.flatnonzero(member[k])
        path = f"baskets[{k}].measurement"
        first = cfg.bonds[where[0]]
        kind = cfg.outcome(first.outcome).kind
        dates = [m.at for m in first.payment.measurements]
        for i in where:
            b = cfg.bonds[i]
            if b.payment.mechanism not in ("per_unit", "threshold"):
                raise ConfigError(f"a pooled basket pays per measured unit: bond {b.id!r} has "
                                  f"mechanism {b.payment.mechanism!r} (use per_unit or "
                                  "threshold, or measurement = \"separate\")",
                                  source=cfg.source, path=path)
            if b.payment.basis == "shrunk":
                # one basis per bond: shrinking a pooled share of the pool's measurement
                # is a different contract from either rule, not built
                raise ConfigError(f"a pooled basket pays its bonds on the pool's measurement: "
                                  f"bond {b.id!r} has basis \"shrunk\" (use basis = "
                                  "\"point\", or measurement = \"separate\")",
                                  source=cfg.source, path=path)
            if cfg.outcome(b.outcome).kind != kind:
                raise ConfigError(f"a pooled basket adds units of one outcome kind: bond "
                                  f"{b.id!r} measures a {cfg.outcome(b.outcome).kind} outcome, "
                                  f"bond {first.id!r} a {kind} one", source=cfg.source,
                                  path=path)
            at = [m.at for m in b.payment.measurements]
            if at != dates:
                raise ConfigError(f"a pooled basket's bonds are measured at the same dates: "
                                  f"bond {b.id!r} at {at}, bond {first.id!r} at {dates}",
                                  source=cfg.source, path=path)
            if pool[i] >= 0:
                raise ConfigError(f"bond {b.id!r} is already in pooled basket "
                                  f"{_pooled_ids(cfg)[pool[i]]!r}; a bond can be measured in "
                                  "one pool at most", source=cfg.source, path=path)
            pool[i] = n_pools
        pool_target[where] = math.fsum(target[where].tolist())
        n_pools += 1
    return pool, pool_target


def _pooled_ids(cfg: Config) -> list[str]:
    return [b.id for b in cfg.baskets if b.measurement == "pooled"]


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
    """Plain-text composition of each basket: size, risk and largest groups.

    The id column is as wide as the longest basket id: ids are never cut.
    """
    w = max([len(str(k)) for k in comp.basket.values.tolist()] + [6]) + 2
    lines = [f"{'basket':<{w}}{'bonds':>6}{'principal GBP':>15}{'mean PD':>9}{'wtd PD':>9}  "
             "largest groups (share of principal; PD: P(default))"]
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
        lines.append(f"{key!s:<{w}}{int(comp.bonds[k]):>6}{total:>15,.0f}"
                     f"{float(comp.mean_default_probability[k]):>9.4f}"
                     f"{float(comp.weighted_default_probability[k]):>9.4f}  " + parts[0])
        lines += [f"{'':<{w + 41}}{p}" for p in parts[1:]]
    return "\n".join(lines)


def _fmt_group(name: Any, group: str) -> str:
    if group == "maturity":
        return f"{float(name):g}y" if math.isfinite(float(name)) else str(name)
    return str(name)
