"""Risk-band baskets: members chosen by a screening simulation of the bonds alone.

A basket with a risk band holds the bonds whose stand-alone default
probability lies in the band (docs/model.md section 8.1); the probabilities
come from a first simulation of the bonds without baskets, on a stream of
its own (:func:`lobsim.model.basket.screening_seed`), so the run's own scenarios do not choose
their basket.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from lobsim.model.basket import RISK_BAND_SCENARIOS, basket_membership, screening_seed
from lobsim.model.config import Config
from lobsim.model.derive import derive
from lobsim.model.world import screen_bonds


@dataclass(frozen=True)
class RiskBands:
    """Baskets with risk bands resolved into explicit bond lists.

    Attributes
    ----------
    config : Config
        The config with every risk-band basket replaced by the explicit list
        of its members, derived (:mod:`lobsim.model.derive`: checked, and
        hashed from the config's hash and the members).
    default_probability, default_probability_se : ndarray, shape (bonds,)
        Stand-alone default probabilities of the screening run and their
        Monte Carlo standard errors.
    scenarios, seed : int
        Size and seed of the screening run (the seed of its own stream).
    source_hash : str
        The hash of the config as given: a run of it records this one (the
        resolution is part of running it, and the run is of that config).
    """

    config: Config
    default_probability: np.ndarray
    default_probability_se: np.ndarray
    scenarios: int
    seed: int
    source_hash: str


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
    bonds = cfg.bonds
    if not any(b.risk_band is not None for b in cfg.baskets):
        zeros = np.zeros(len(bonds))
        return RiskBands(cfg, zeros * np.nan, zeros * np.nan, 0, s, cfg.hash)
    pd, areas = screen_bonds(cfg, n, s)
    pd_se = np.sqrt(pd * (1.0 - pd) / max(n - 1, 1))
    _, member = basket_membership(cfg, areas, default_probability=pd)
    members = {b.id: {"bonds": tuple(bd.id for bd, m in zip(bonds, member[k], strict=True) if m),
                      "where": None, "risk_band": None}
               for k, b in enumerate(cfg.baskets) if b.risk_band is not None}
    return RiskBands(derive(cfg, changed_baskets=members), pd, pd_se, n, s, cfg.hash)
