"""Tail risk of baskets: weighted VaR and expected shortfall, Euler risk
contributions, and importance sampling of the copula factors (docs/model.md sections 8.5, 9.3).

Loss is ``principal - payment`` (undiscounted, as in :mod:`lobsim.analysis.summary`);
a basket's loss is the sum of its bonds' losses.

**Tail measure.** VaR, expected shortfall (Acerbi-Tasche, fractional ties),
their standard errors and the weighting convention of importance sampling
(likelihood ratios, not self-normalised) are those of
:mod:`lobsim.analysis.stats`, the one definition every output uses.

**Euler contributions** (Tasche 1999): ``ES_i = E[L_i | L in the tail]``,
averaged over the *same* tail measure for every bond, so that the
contributions sum to the basket's expected shortfall exactly (up to floating
point rounding). VaR contributions ``E[L_i | L = VaR]`` are estimated in a
window of scenarios around the VaR and rescaled to sum to the VaR exactly
(the smoothing of Tasche 2009; Glasserman 2005).

**Importance sampling.** The copula's global and type factors drive the
joint failure of programmes. Shifting their means towards the loss region
(Glasserman and Li 2005, first step) puts more scenarios in the tail; each
scenario carries its likelihood ratio. The shift is chosen by the
cross-entropy method (Rubinstein and Kroese 2004): for a Gaussian mean
family the optimal shift is the factors' conditional mean in the tail,
``mu = E[Z | L >= VaR]``, estimated on a pilot run (two stages: a plain pilot
at a level with enough tail scenarios, then a tilted one at the target
level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from lobsim.analysis import stats, tables
from lobsim.analysis.stats import (
    VAR_WINDOW,
    TailEstimate,
    normal_interval,
    tail_estimate,
    tail_measure,
)
from lobsim.kernels.contract import Outputs
from lobsim.model.config import Basket, Config
from lobsim.model.derive import derive
from lobsim.model.schema import check_ids

__all__ = ["VAR_WINDOW", "TailComparison", "TailEstimate", "Tilt", "bond_losses",
           "compare_tails", "cross_entropy_tilt", "format_contributions", "format_tail_comparison",
           "format_tilt", "importance_sampled_run", "pilot_seed", "risk_contributions",
           "tail_estimate", "tail_measure"]

#: Spawn key of the pilot stream of importance sampling.
PILOT_KEY = 0x7FFF_FFFE
#: Step used to read the factor draws back from the log likelihood ratios.
_EPS = 1e-5

# --------------------------------------------------------------------------
# Euler contributions
# --------------------------------------------------------------------------
def bond_losses(ds: xr.Dataset, basket: str) -> tuple[np.ndarray, np.ndarray]:
    """Member indices and their losses ``principal - payment``, shape (scenarios, members)."""
    k = list(ds.basket.values).index(basket)
    members = np.flatnonzero(ds.basket_member.values[k])
    loss = ds.principal.values[members] - ds.investor_payment.values[:, members]
    return members, loss


def risk_contributions(ds: xr.Dataset, basket: str, level: float = 0.99) -> xr.Dataset:
    """Each bond's Euler contribution to a basket's expected shortfall and VaR.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate` (plain or importance-sampled: the
        ``log_weight`` are used).
    basket : str
    level : float
        Tail level, e.g. 0.99.

    Returns
    -------
    xarray.Dataset
        Over the basket's bonds: ``es_contribution`` and ``var_contribution``
        (they sum to ``expected_shortfall`` and ``value_at_risk``), ``standalone_es``,
        ``standalone_var``, ``expected_loss``; the same contributions summed
        ``by_provider``, ``by_intervention``, ``by_region`` and
        ``by_department`` (a bond's contribution split by the share of its
        price each department's agencies pay); scalars ``expected_shortfall``,
        ``value_at_risk`` and their ``_se``, ``standalone_es_sum``,
        ``diversification_benefit`` (the sum of stand-alone expected
        shortfalls less the basket's) and ``diversification_ratio``.

    Examples
    --------
    >>> c = risk_contributions(ds, "all", 0.99)  # doctest: +SKIP
    >>> float(c.es_contribution.sum()) - float(c.expected_shortfall)  # doctest: +SKIP
    0.0
    """
    members, loss_i = bond_losses(ds, basket)
    lw = ds.log_weight.values if "log_weight" in ds else None
    n = loss_i.shape[0]
    w = stats.weights(lw)
    k = list(ds.basket.values).index(basket)
    # the basket's loss as the summary forms it, so that both report the same ES
    total = float(ds.basket_principal.values[k]) - ds.basket_payment.values[:, k]
    est = tail_estimate(total, level, lw)
    _, q = tail_measure(total, level, lw)
    es_i = q @ loss_i
    window = stats.var_window(total, level, w)
    denom = float(window @ total)
    share = (window @ loss_i) / denom if denom != 0.0 else np.full(members.size, 1.0 / members.size)
    var_i = est.var * share
    alone = [tail_estimate(loss_i[:, j], level, lw) for j in range(members.size)]
    alone_es = np.array([a.es for a in alone])
    alone_sum = float(stats.standalone_sum(alone_es, np.ones((1, members.size), bool))[0])
    el = stats.mean_se(loss_i, w)[0]
    bonds = ds.bond.values[members]
    data: dict[str, Any] = {
        "es_contribution": (("bond",), es_i),
        "var_contribution": (("bond",), var_i),
        "standalone_es": (("bond",), alone_es),
        "standalone_var": (("bond",), np.array([a.var for a in alone])),
        "expected_loss": (("bond",), el),
        "expected_shortfall": ((), est.es), "expected_shortfall_se": ((), est.es_se),
        "value_at_risk": ((), est.var), "value_at_risk_se": ((), est.var_se),
        "standalone_es_sum": ((), alone_sum),
        "diversification_benefit": ((), stats.diversification_benefit(alone_sum, est.es)),
        "diversification_ratio": ((), est.es / alone_sum if alone_sum != 0 else math.nan),
    }
    coords: dict[str, Any] = {"bond": bonds}
    for group in ("provider", "intervention", "region"):
        labels = ds[group].values[members]
        keys = sorted(set(labels.tolist()))
        onehot = np.array([[lab == key for key in keys] for lab in labels], float)
        data[f"es_by_{group}"] = ((f"by_{group}",), es_i @ onehot)
        data[f"var_by_{group}"] = ((f"by_{group}",), var_i @ onehot)
        coords[f"by_{group}"] = keys
    dshare = ds.department_share.values[members]
    data["es_by_department"] = (("by_department",), es_i @ dshare)
    data["var_by_department"] = (("by_department",), var_i @ dshare)
    coords["by_department"] = ds.department.values
    out = xr.Dataset(data, coords=coords)
    out.attrs.update(basket=basket, level=level, scenarios=n,
                     importance_sampling=int(lw is not None and bool(np.any(lw != 0.0))))
    return out


def format_contributions(c: xr.Dataset, top: int = 8) -> str:
    """Plain-text report of :func:`risk_contributions` (money in GBP, 95% intervals)."""
    from lobsim.model.simulate import CURRENCY as cur

    lvl = float(c.attrs["level"])
    es = float(c.expected_shortfall)
    lo, hi = normal_interval(es, float(c.expected_shortfall_se))
    lines = [
        f"Risk contributions to basket {c.attrs['basket']} at {lvl:.3g} "
        f"(Euler allocation; they sum to the basket's totals)",
        f"  ES {es:,.0f} {cur} (95% interval [{float(lo):,.0f}, {float(hi):,.0f}])   "
        f"VaR {float(c.value_at_risk):,.0f} {cur}   "
        f"sum of stand-alone ES {float(c.standalone_es_sum):,.0f} {cur}   diversification "
        f"benefit {float(c.diversification_benefit):,.0f} {cur} "
        f"({1 - float(c.diversification_ratio):.1%})",
    ]
    order = np.argsort(-c.es_contribution.values, kind="stable")
    rows = [[str(c.bond.values[j]), f"{float(c.es_contribution[j]):,.0f}",
             f"{float(c.var_contribution[j]):,.0f}", f"{float(c.standalone_es[j]):,.0f}"]
            for j in order[:top]]
    if order.size > top:
        rest = order[top:]
        rows.append([f"{rest.size} more", f"{float(c.es_contribution.values[rest].sum()):,.0f}",
                     f"{float(c.var_contribution.values[rest].sum()):,.0f}", ""])
    lines += ["  " + line for line in tables.render(
        ["bond", f"ES contrib {cur}", f"VaR contrib {cur}", f"ES alone {cur}"], rows)]
    for group in ("provider", "intervention", "region", "department"):
        by = c[f"es_by_{group}"].values
        keys = c[f"by_{group}"].values
        o = np.argsort(-by, kind="stable")[:4]
        lines.append(f"  ES by {group} ({cur}): "
                     + ", ".join(f"{keys[j]} {by[j]:,.0f}" for j in o))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Importance sampling
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Tilt:
    """Mean shifts of the copula factors for importance sampling.

    Pass ``**tilt.kwargs()`` to :func:`lobsim.simulate`.
    """

    global_shift: float
    type_shifts: dict[str, float] = field(default_factory=dict)
    basket: str = ""
    level: float = 0.995
    pilot_scenarios: int = 0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`lobsim.simulate`."""
        return {"tilt_global": self.global_shift, "tilt_types": dict(self.type_shifts)}


def pilot_seed(seed: int) -> int:
    """Seed of the pilot runs of a run with ``seed``: an independent stream."""
    state = np.random.SeedSequence(seed, spawn_key=(PILOT_KEY,)).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def _one_basket(cfg: Config, basket: str | None) -> tuple[Config, str]:
    """``cfg`` reduced to one basket (risk bands resolved; the pooled baskets kept
    after it), and its id."""
    from lobsim.model.screening import resolve_risk_bands
    from lobsim.model.world import build_world

    if cfg.baskets:
        resolved = resolve_risk_bands(cfg).config
        world = build_world(resolved)
        ids = list(world.baskets)
        if basket is None:  # the largest basket by principal
            principal = np.array([b.principal for b in cfg.bonds])
            basket = ids[int(np.argmax(world.basket_members @ principal))]
        check_ids(cfg, [basket], ids, "basket")  # resolved ids: an UnknownIdError
        k = ids.index(basket)
        members = tuple(b.id for b, m in zip(cfg.bonds, world.basket_members[k], strict=True)
                        if m)
    else:
        if basket not in (None, "all"):
            raise ValueError(f"no basket {basket!r}: the config has no baskets (only 'all')")
        basket, members = "all", tuple(b.id for b in cfg.bonds)
    # the config's pooled baskets decide what their bonds are paid: they stay, after it
    given = [k for k in cfg.baskets if k.id == basket]
    one = Basket(id=basket, name=basket, bonds=members, where=None, risk_band=None,
                 tranches=(), guarantee=None,
                 measurement=given[0].measurement if given else "separate")
    pooled = tuple(k for k in cfg.baskets if k.measurement == "pooled" and k.id != basket)
    return derive(cfg, baskets=(one, *pooled)), basket


def cross_entropy_tilt(cfg: Config, basket: str | None = None, level: float = 0.995, *,
                       pilot_scenarios: int = 5000, seed: int | None = None,
                       iterations: int = 2, threads: int | None = None,
                       max_shift: float = 4.0) -> Tilt:
    """Mean shifts of the global and type factors towards a basket's loss tail.

    Cross-entropy (Rubinstein and Kroese 2004): the shift is the factors'
    mean over the tail measure of the basket's loss on a pilot run, first at
    a level with about 50 tail scenarios (or ``level`` if it has them), then
    again under that shift at ``level``. The factor draws are read back from
    the kernel's log likelihood ratios: a run whose shift of factor ``f``
    differs by ``eps`` has a log ratio that differs by
    ``-eps (z_f + eps / 2)``, with ``z_f`` the factor as drawn (common random
    numbers). One pilot stage costs ``1 + factors`` runs of
    ``pilot_scenarios`` scenarios, on a stream independent of the main run's.

    Parameters
    ----------
    cfg : Config
    basket : str, optional
        Default: the largest basket by principal.
    level : float
        The tail level the shift targets.
    pilot_scenarios : int
    seed : int, optional
        The main run's seed; the pilot uses :func:`pilot_seed` of it.
    iterations : int
        Cross-entropy stages.
    threads : int, optional
    max_shift : float
        Bound on each shift (a guard against a degenerate pilot).

    Returns
    -------
    Tilt
    """
    from lobsim.model.blocks import run_blocks
    from lobsim.model.world import build_world

    one, basket = _one_basket(cfg, basket)
    s = pilot_seed(cfg.simulation.seed if seed is None else seed)
    types = list(dict.fromkeys(b.intervention for b in cfg.bonds))
    principal = math.fsum(b.principal for b in cfg.bonds if b.id in (one.baskets[0].bonds or ()))
    mu = np.zeros(1 + len(types))
    n = pilot_scenarios

    world = build_world(one)
    # the world's type factors are in the order of the bonds' first use, as ``types``
    programme = world.arrays.programme

    def run(shift: np.ndarray) -> Outputs:
        tilted = programme._replace(tilt_global=float(shift[0]),
                                    tilt_type=np.array([float(m) for m in shift[1:]]))
        return run_blocks(world.derive(programme=tilted), n, s, cfg.simulation.block_size,
                          threads=threads)

    for it in range(iterations):
        base = run(mu)
        loss = principal - base.basket_payment[:, 0]
        lw = base.log_weight
        stage = level if it == iterations - 1 else min(level, 1.0 - 50.0 / n)
        _, q = tail_measure(loss, stage, lw)
        z = np.empty((n, mu.size))
        for f in range(mu.size):
            bumped = mu.copy()
            bumped[f] += _EPS
            delta = run(bumped).log_weight - lw
            # delta = -eps x - mu eps - eps^2/2 for the raw normal x; z = x + mu
            z[:, f] = -(delta + _EPS * _EPS / 2.0) / _EPS
        mu = np.clip(q @ z, -max_shift, max_shift)
    return Tilt(global_shift=float(mu[0]),
                type_shifts={t: float(m) for t, m in zip(types, mu[1:], strict=True)},
                basket=basket, level=level, pilot_scenarios=n * iterations * (1 + mu.size))


@dataclass(frozen=True)
class TailComparison:
    """A basket's VaR and ES at one level by importance sampling beside plain sampling."""

    basket: str
    level: float
    tilted: TailEstimate
    plain: TailEstimate

    @property
    def variance_reduction(self) -> float:
        """The variance of plain ES over that of importance-sampled ES (inf if the latter is 0)."""
        t = self.tilted.es_se
        return (self.plain.es_se / t) ** 2 if t > 0 else math.inf


def importance_sampled_run(cfg: Config, plain: xr.Dataset, basket: str | None = None, *,
                           level: float = 0.995, pilot_scenarios: int = 5000,
                           chunk_size: int | None = None,
                           threads: int | None = None) -> tuple[Tilt, xr.Dataset]:
    """The twin of a plain run under the cross-entropy tilt towards a basket's tail.

    Same number of scenarios and seed as ``plain``; the pilot runs use an
    independent stream (:func:`pilot_seed`).

    Parameters
    ----------
    cfg : Config
        The config of ``plain``.
    plain : xarray.Dataset
        The plain run's results.
    basket : str, optional
        Basket whose tail the tilt targets (default: the largest by principal).
    level, pilot_scenarios, threads
        As :func:`cross_entropy_tilt`.
    chunk_size : int, optional
        As :func:`lobsim.simulate`.

    Returns
    -------
    tilt : Tilt
    tilted : xarray.Dataset
        Results carrying the likelihood ratios (``log_weight``).
    """
    from lobsim.model.simulate import simulate

    n = int(plain.sizes["scenario"])
    seed = int(plain.attrs["seed"])
    tilt = cross_entropy_tilt(cfg, basket, level, pilot_scenarios=pilot_scenarios, seed=seed,
                              threads=threads)
    tilted = simulate(cfg, scenarios=n, seed=seed, chunk_size=chunk_size, threads=threads,
                      **tilt.kwargs())
    return tilt, tilted


def compare_tails(plain: xr.Dataset, tilted: xr.Dataset,
                  levels: tuple[float, ...] = (0.99, 0.995)) -> list[TailComparison]:
    """Every basket's VaR and ES at ``levels`` on an importance-sampled run and a plain one.

    The basket's loss is the summary's, ``basket_principal - basket_payment``.
    """
    out = []
    lw = tilted.log_weight.values if "log_weight" in tilted else None
    for k, key in enumerate(plain.basket.values.tolist()):
        p_loss = float(plain.basket_principal.values[k]) - plain.basket_payment.values[:, k]
        t_loss = float(tilted.basket_principal.values[k]) - tilted.basket_payment.values[:, k]
        for level in levels:
            out.append(TailComparison(basket=str(key), level=level,
                                      tilted=tail_estimate(t_loss, level, lw),
                                      plain=tail_estimate(p_loss, level)))
    return out


def format_tail_comparison(rows: list[TailComparison], scenarios: int, header: str) -> str:
    """Plain-text table of :func:`compare_tails` (money in GBP, 95% intervals)."""
    from lobsim.model.simulate import CURRENCY as cur

    def ci(est: TailEstimate) -> str:
        lo, hi = normal_interval(est.es, est.es_se)
        return f"{float(lo):,.0f}-{float(hi):,.0f}"

    body = []
    worse = False
    for r in rows:
        t, p = r.tilted, r.plain
        worse |= r.variance_reduction < 1.0
        body.append([r.basket, f"{r.level:.3f}", f"{t.var:,.0f}", f"{t.es:,.0f}", ci(t),
                     f"{p.es:,.0f}", ci(p), f"{r.variance_reduction:.2f}x"])
    lines = [f"Tail of basket losses by importance sampling ({scenarios:,} "
             "scenarios, as the plain run)", f"  {header}",
             *tables.render(["basket", "level", f"VaR (IS) {cur}", f"ES (IS) {cur}",
                             f"ES (IS) 95% interval {cur}", f"ES (plain) {cur}",
                             f"ES (plain) 95% interval {cur}", "variance reduction"], body)]
    if worse:
        lines.append("  a variance reduction below 1x: that tail is driven by risks the shift does "
                     "not move (control-group noise, provider failure); prefer the plain estimate")
    lines.append(tables.INTERVAL_NOTE)
    return "\n".join(lines)


def format_tilt(t: Tilt) -> str:
    """One line describing a tilt."""
    shifts = ", ".join(f"{k} {v:+.3f}" for k, v in t.type_shifts.items())
    return (f"factor mean shifts for basket {t.basket} at {t.level:g}: global "
            f"{t.global_shift:+.3f}; types {shifts} (cross-entropy; pilot "
            f"{t.pilot_scenarios:,} scenario-runs)")
