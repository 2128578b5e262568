"""Tail risk of baskets: weighted VaR and expected shortfall, Euler risk
contributions, and importance sampling of the copula factors (docs/model.md sections 8.5, 9.3).

Loss is ``principal - payment`` (undiscounted, as in :mod:`lobsim.analysis.summary`);
a basket's loss is the sum of its bonds' losses.

**Tail measure.** With scenario weights ``w`` (likelihood ratios under
importance sampling, 1 otherwise) the tail at level ``a`` is the set of the
largest losses holding weight ``n (1 - a)``: scenarios above the VaR in full
and the scenarios *at* the VaR with the fraction that makes up the rest
(Acerbi and Tasche 2002). Expected shortfall is the loss averaged over that
tail measure ``q`` (``sum q = 1``); it equals the Rockafellar-Uryasev form
``VaR + sum w (L - VaR)^+ / (n (1 - a))``. The weights are *not*
self-normalised: the tail mass of importance sampling, ``sum w 1{L > x} / n``,
is unbiased on its own, while normalising would divide by ``sum w / n``,
whose noise comes from the whole sample, not the tail (Glasserman 2004,
section 4.6). The standard error of expected shortfall is
``sd(w (L - VaR)^+) / ((1 - a) sqrt n)``, the first-order (envelope)
variance of the Rockafellar-Uryasev estimator (Sun and Hong 2010).

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

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from lobsim.kernels.contract import Outputs
from lobsim.model.config import Basket, Config

#: Half-width of the VaR-contribution window, as a fraction of the tail mass.
VAR_WINDOW = 0.25
#: Spawn key of the pilot stream of importance sampling.
PILOT_KEY = 0x7FFF_FFFE
#: Step used to read the factor draws back from the log likelihood ratios.
_EPS = 1e-5


@dataclass(frozen=True)
class TailEstimate:
    """VaR and expected shortfall of a loss at one level, with standard errors.

    ``tail_ess`` is the effective number of scenarios in the tail,
    ``(sum w)^2 / sum w^2`` over the tail: ``n (1 - level)`` for plain
    sampling, more when importance sampling puts more weight-light scenarios
    there.
    """

    level: float
    var: float
    var_se: float
    es: float
    es_se: float
    scenarios: int
    tail_ess: float


def _weights(log_weight: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if log_weight is None else np.exp(np.asarray(log_weight, float))


def tail_measure(loss: np.ndarray, level: float,
                 log_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """VaR and the tail measure ``q`` (``sum q = 1``) of ``loss`` at ``level``.

    Parameters
    ----------
    loss : ndarray, shape (scenarios,)
    level : float
        In (0, 1), e.g. 0.995.
    log_weight : ndarray, optional
        Log likelihood ratios of an importance-sampling run.

    Returns
    -------
    var : float
    q : ndarray, shape (scenarios,)
        Weight of each scenario in the tail: ``w / (n (1 - level))`` above the
        VaR, a common fraction of that at the VaR, 0 below.
    """
    loss = np.asarray(loss, float)
    n = loss.size
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    w = _weights(log_weight, n)
    mass = min(n * (1.0 - level), float(w.sum()))
    order = np.argsort(-loss, kind="stable")
    cum = np.cumsum(w[order])
    j = min(int(np.searchsorted(cum, mass * (1.0 - 1e-12))), n - 1)
    var = float(loss[order[j]])
    above = loss > var
    at = loss == var
    rest = mass - float(w[above].sum())
    frac = rest / float(w[at].sum())
    q = np.where(above, w, 0.0) + np.where(at, w * frac, 0.0)
    return var, q / mass


def tail_estimate(loss: np.ndarray, level: float,
                  log_weight: np.ndarray | None = None) -> TailEstimate:
    """VaR and expected shortfall of ``loss`` at ``level`` with standard errors.

    See the module docstring for the estimators. Works for plain samples
    (``log_weight`` None or zero) and importance-sampling runs alike.
    """
    loss = np.asarray(loss, float)
    n = loss.size
    w = _weights(log_weight, n)
    var, q = tail_measure(loss, level, log_weight)
    es = float(q @ loss)
    excess = w * np.maximum(loss - var, 0.0)
    es_se = float(excess.std(ddof=1) / ((1.0 - level) * math.sqrt(n))) if n > 1 else math.nan
    # VaR: sd of the tail indicator over the loss density near the VaR, the
    # density from the weighted spacing of the losses around it
    order = np.argsort(-loss, kind="stable")
    cum = np.cumsum(w[order]) / n
    p = 1.0 - level
    lo_i = min(int(np.searchsorted(cum, p * (1.0 - VAR_WINDOW))), n - 1)
    hi_i = min(int(np.searchsorted(cum, p * (1.0 + VAR_WINDOW))), n - 1)
    spread = float(loss[order[lo_i]] - loss[order[hi_i]])
    ind = w * (loss > var)
    if spread > 0.0 and n > 1:
        density = (cum[hi_i] - cum[lo_i]) / spread
        var_se = float(ind.std(ddof=1) / math.sqrt(n) / density)
    else:
        var_se = math.nan
    tail = q > 0
    ess = float(q[tail].sum() ** 2 / (q[tail] ** 2).sum()) if tail.any() else 0.0
    return TailEstimate(level=level, var=var, var_se=var_se, es=es, es_se=es_se, scenarios=n,
                        tail_ess=ess)


def _var_window(loss: np.ndarray, level: float, w: np.ndarray) -> np.ndarray:
    """Weights of the scenarios whose tail position lies within VAR_WINDOW of the VaR's."""
    n = loss.size
    order = np.argsort(-loss, kind="stable")
    cum = np.cumsum(w[order]) / n
    p = 1.0 - level
    inside = (cum >= p * (1.0 - VAR_WINDOW)) & (cum - w[order] / n <= p * (1.0 + VAR_WINDOW))
    out = np.zeros(n)
    out[order[inside]] = w[order[inside]]
    return out


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
    w = _weights(lw, n)
    total = loss_i.sum(axis=1)
    est = tail_estimate(total, level, lw)
    _, q = tail_measure(total, level, lw)
    es_i = q @ loss_i
    window = _var_window(total, level, w)
    denom = float(window @ total)
    share = (window @ loss_i) / denom if denom != 0.0 else np.full(members.size, 1.0 / members.size)
    var_i = est.var * share
    alone = [tail_estimate(loss_i[:, j], level, lw) for j in range(members.size)]
    alone_es = np.array([a.es for a in alone])
    el = (w @ loss_i) / n
    bonds = ds.bond.values[members]
    data: dict[str, Any] = {
        "es_contribution": (("bond",), es_i),
        "var_contribution": (("bond",), var_i),
        "standalone_es": (("bond",), alone_es),
        "standalone_var": (("bond",), np.array([a.var for a in alone])),
        "expected_loss": (("bond",), el),
        "expected_shortfall": ((), est.es), "expected_shortfall_se": ((), est.es_se),
        "value_at_risk": ((), est.var), "value_at_risk_se": ((), est.var_se),
        "standalone_es_sum": ((), float(alone_es.sum())),
        "diversification_benefit": ((), float(alone_es.sum()) - est.es),
        "diversification_ratio": ((), est.es / float(alone_es.sum())
                                   if alone_es.sum() != 0 else math.nan),
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
    """Plain-text report of :func:`risk_contributions`."""
    lvl = float(c.attrs["level"])
    lines = [
        f"Risk contributions to basket {c.attrs['basket']} at {lvl:.3g} "
        f"(Euler allocation; they sum to the basket's totals)",
        f"  ES {float(c.expected_shortfall):,.0f} ± {float(c.expected_shortfall_se):,.0f}   "
        f"VaR {float(c.value_at_risk):,.0f}   "
        f"sum of stand-alone ES {float(c.standalone_es_sum):,.0f}   diversification benefit "
        f"{float(c.diversification_benefit):,.0f} ({1 - float(c.diversification_ratio):.1%})",
        f"  {'bond':<30}{'ES contrib':>14}{'VaR contrib':>14}{'ES alone':>14}",
    ]
    order = np.argsort(-c.es_contribution.values, kind="stable")
    for j in order[:top]:
        lines.append(f"  {str(c.bond.values[j])[:30]:<30}{float(c.es_contribution[j]):>14,.0f}"
                     f"{float(c.var_contribution[j]):>14,.0f}{float(c.standalone_es[j]):>14,.0f}")
    if order.size > top:
        rest = order[top:]
        lines.append(f"  {f'{rest.size} more':<30}{float(c.es_contribution.values[rest].sum()):>14,.0f}"
                     f"{float(c.var_contribution.values[rest].sum()):>14,.0f}")
    for group in ("provider", "intervention", "region", "department"):
        es = c[f"es_by_{group}"].values
        keys = c[f"by_{group}"].values
        o = np.argsort(-es, kind="stable")[:4]
        lines.append(f"  ES by {group}: " + ", ".join(f"{keys[j]} {es[j]:,.0f}" for j in o))
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
    """``cfg`` reduced to one basket (risk bands resolved), and its id."""
    from lobsim.model.screening import resolve_risk_bands
    from lobsim.model.world import build_world

    if cfg.baskets:
        resolved = resolve_risk_bands(cfg).config
        world = build_world(resolved)
        ids = list(world.baskets)
        if basket is None:  # the largest basket by principal
            principal = np.array([b.principal for b in cfg.bonds])
            basket = ids[int(np.argmax(world.basket_members @ principal))]
        if basket not in ids:
            raise ValueError(f"no basket {basket!r} (baskets: {', '.join(ids)})")
        k = ids.index(basket)
        members = tuple(b.id for b, m in zip(cfg.bonds, world.basket_members[k], strict=True)
                        if m)
    else:
        if basket not in (None, "all"):
            raise ValueError(f"no basket {basket!r}: the config has no baskets (only 'all')")
        basket, members = "all", tuple(b.id for b in cfg.bonds)
    one = Basket(id=basket, name=basket, bonds=members, where=None, risk_band=None,
                 tranches=(), guarantee=None)
    return dataclasses.replace(cfg, baskets=(one,)), basket


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


def format_tilt(t: Tilt) -> str:
    """One line describing a tilt."""
    shifts = ", ".join(f"{k} {v:+.3f}" for k, v in t.type_shifts.items())
    return (f"factor mean shifts for basket {t.basket} at {t.level:g}: global "
            f"{t.global_shift:+.3f}; types {shifts} (cross-entropy; pilot "
            f"{t.pilot_scenarios:,} scenario-runs)")
