"""Baskets: which bonds belong to which basket.

A basket is an explicit list of bonds, grouping rules (region, intervention
type, provider, outcome, maturity band), or both (DESIGN 8).
"""

from __future__ import annotations

import numpy as np

from lobsim.areas import AreaTable
from lobsim.config import Config
from lobsim.errors import ConfigError


def basket_membership(cfg: Config, areas: AreaTable) -> tuple[tuple[str, ...], np.ndarray]:
    """Basket ids and a (baskets, bonds) membership matrix.

    A config without baskets gets one basket, ``all``, holding every bond.
    """
    bonds = cfg.bonds
    if not cfg.baskets:
        return ("all",), np.ones((1, len(bonds)), np.bool_)
    member = np.zeros((len(cfg.baskets), len(bonds)), np.bool_)
    for k, basket in enumerate(cfg.baskets):
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
            member[k, i] = listed or matched
        if not member[k].any():
            raise ConfigError("no bond matches this basket's rules", source=cfg.source,
                              path=f"baskets[{k}]")
    return tuple(b.id for b in cfg.baskets), member
