"""A bond's measurement risk under other control groups, as the engine simulates it.

:func:`bond_sensitivity` re-runs one bond of a config with each control
group in turn (``k`` nearest donors, equal or synthetic-control weights) and,
optionally, with the area volatility a size-dependent process gives an area
of the bond's size (:func:`lobsim.validation.backtest.size_scale`): the
default probability and the probability that the measurement reaches the
target with no true effect. It is the engine's view of what the placebo
backtest (:mod:`lobsim.validation.backtest`) measures on real data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lobsim.model.config import parse_config
from lobsim.validation.backtest import DONORS, FALSE_POSITIVE_LEVELS, WEIGHTS
from lobsim.validation.placebo_stats import percent, text_table


@dataclass(frozen=True)
class SensitivityRow:
    """One control-group variant of a bond, simulated by the engine.

    ``p_default`` is under the config's evidence prior; ``p_false_positive``
    the probability that the measurement with no true effect (the engine's
    ``prediction_error``) reaches ``FALSE_POSITIVE_LEVELS[0]`` of the target,
    ``p_full_target`` that it reaches the whole target; ``noise_mean`` and
    ``noise_sd`` its mean (the drift the base-period state and the trends
    predict) and sd in units of the target (the sd is the inverse of the
    signal-to-noise ratio).
    """

    weights: str
    donors: int
    volatility: str
    p_default: float
    p_default_se: float
    p_false_positive: float
    p_full_target: float
    noise_mean: float
    noise_sd: float
    rmspe: float


def bond_sensitivity(config: str | Path, *, bond: str | None = None,
                     donors: Iterable[int] = DONORS, weights: Iterable[str] = WEIGHTS,
                     volatility_scale: float | None = None, scenarios: int | None = None,
                     seed: int | None = None) -> list[SensitivityRow]:
    """Default and false-positive probabilities of a bond under each control group.

    Parameters
    ----------
    config : str or Path
        A config file; its ``bond`` (default: the first) gets each control
        group in turn (``donors`` nearest neighbours, ``weights``), nothing
        else changes.
    volatility_scale : float, optional
        Also run every variant with the outcome's ``area_sigma`` and
        ``measurement_sigma`` scaled by ``sqrt(volatility_scale)``: the
        variance a size-dependent process gives areas of the bond's size
        (:func:`lobsim.validation.backtest.size_scale`), which the config's pooled process cannot.
    scenarios, seed : int, optional
        Override the config's.

    Returns
    -------
    list of SensitivityRow
    """
    import copy
    import tomllib

    from lobsim.model.config import load_config
    from lobsim.model.simulate import simulate

    path = Path(config)
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    # an unknown id: the config's one-line error naming the known ones
    if bond is None:
        index = 0
    else:
        cfg = load_config(path)
        index = cfg.bonds.index(cfg.bond(bond))
    outcome = doc["bonds"][index]["outcome"]
    scales = [("pooled", 1.0)]
    if volatility_scale is not None:
        scales.append(("size-scaled", float(volatility_scale)))
    rows = []
    for label, scale in scales:
        for w in weights:
            for k in donors:
                variant = copy.deepcopy(doc)
                variant["bonds"][index]["control"] = {"donors": int(k), "weights": w}
                for o in variant["outcomes"]:
                    if o["id"] == outcome and scale != 1.0:
                        o["process"]["area_sigma"] *= math.sqrt(scale)
                        o["process"]["measurement_sigma"] *= math.sqrt(scale)
                cfg = parse_config(variant, source=str(path), base_dir=path.parent)
                ds = simulate(cfg, scenarios=scenarios, seed=seed)
                target = float(cfg.bonds[index].target_units)
                err = ds["prediction_error"].values[:, index]
                dflt = ds["default"].values[:, index]
                rows.append(SensitivityRow(
                    weights=w, donors=int(k), volatility=label, p_default=float(dflt.mean()),
                    p_default_se=float(dflt.std() / math.sqrt(dflt.size)),
                    p_false_positive=float(np.mean(err >= FALSE_POSITIVE_LEVELS[0] * target)),
                    p_full_target=float(np.mean(err >= target)),
                    noise_mean=float(err.mean() / target), noise_sd=float(err.std() / target), rmspe=float(ds["rmspe"].values[index])))
    return rows


def sensitivity_table(rows: Sequence[SensitivityRow], markdown: bool = False) -> str:
    """Sensitivity rows as a table."""
    head = ["weights", "k", "volatility", "P(default)", "P(M>=10% T), no effect",
            "P(M>=T), no effect", "E[M]/T", "sd(M)/T", "RMSPE"]
    body = [[r.weights, str(r.donors), r.volatility,
             f"{100 * r.p_default:.1f}% ±{100 * r.p_default_se:.1f}", percent(r.p_false_positive),
             percent(r.p_full_target), f"{r.noise_mean:+.2f}", f"{r.noise_sd:.2f}",
             f"{r.rmspe:.4f}"] for r in rows]
    return text_table(head, body, markdown)
