"""Pricing: the risk loading or tranche premium that meets a target (docs/model.md section 8.4).

The Appendix prices a unit as ``cost x (1 + basket_risk + return_premium)``;
the social investment bank sets ``basket_risk`` so that investors expect a
target return, or so that a bond (or basket) defaults with a target
probability. :func:`solve_loading` finds that loading by simulation:

- **Common random numbers.** Every evaluation re-simulates the world at a
  trial loading with the *same* seed. The draws do not depend on the price,
  so the sample metric is a deterministic, monotone function of the loading
  and the root-finder converges deterministically. Re-simulating (instead of
  rescaling one run's payments) keeps every payment rule exact: a binary
  bond's ``amount`` scales with the price only when it is the default
  ``target x price`` (an explicit amount is a fixed sum); cash caps
  (``max_return``) and fixed coupons do not scale at all.
- **Uncertainty by the delta method.** The solution ``r`` solves
  ``m(r) = target`` for a sample mean ``m``; its Monte Carlo standard error is
  ``se(m(r)) / |m'(r)|``, with ``m'`` a finite difference on the same
  common-random-number sample (for a default probability, a secant spanning
  at least 100 scenarios that change status).

:func:`solve_tranche_premium` does the same for a tranche's premium against a
target expected IRR, on one simulation's basket cash flows (the waterfall is
post-processing, so no re-simulation is needed).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize

from lobsim.analysis.returns import CONVENTIONS, expected_flows_irr
from lobsim.analysis.stats import normal_interval
from lobsim.jsonio import number
from lobsim.model.config import Basket, Bond, Config
from lobsim.model.derive import derive
from lobsim.model.screening import resolve_risk_bands

if TYPE_CHECKING:  # the world is built lazily (it imports the simulation)
    from lobsim.model.world import World

#: Loadings searched: the config's own range starts at 0; 10 is a 1,000% loading.
LOADING_BOUNDS = (0.0, 10.0)
#: Premiums searched (the config's range for tranche premiums).
PREMIUM_BOUNDS = (0.0, 10.0)
#: A default-probability slope is a secant over at least this many scenarios
#: changing status (relative error of the slope about 1/sqrt(100) = 10%).
MIN_SWITCHES = 100


@dataclass(frozen=True)
class Solution:
    """A solved loading or premium with its Monte Carlo uncertainty.

    Attributes
    ----------
    parameter : str
        ``"basket_risk"`` or ``"premium"``.
    subject : str
        What was priced: ``"bond ID"``, ``"basket ID"`` or ``"tranche BASKET/ID"``.
    target : str
        ``"irr"`` (expected IRR) or ``"default_probability"``.
    irr_convention : str
        For an IRR target, which expected IRR (:mod:`lobsim.analysis.returns`):
        ``"mean"``, the mean of the scenario IRRs (a total loss counting as
        -100%), or ``"expected-flows"``, the IRR of the expected cash flows.
    target_value : float
    value, value_se : float
        The solution and its Monte Carlo standard error (delta method).
    achieved, achieved_se : float
        The metric at the solution on the solving sample, and its standard error.
    slope : float
        d metric / d parameter at the solution.
    scenarios, seed : int
        The common-random-number sample.
    evaluations : int
        Simulations (loading) or waterfall runs (premium) used.
    price_per_unit : dict
        Bond id -> price per unit at the solved loading (loadings only).
    """

    parameter: str
    subject: str
    target: str
    target_value: float
    value: float
    value_se: float
    achieved: float
    achieved_se: float
    slope: float
    scenarios: int
    seed: int
    evaluations: int
    price_per_unit: dict[str, float] = field(default_factory=dict)
    irr_convention: str = "mean"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``value_se`` is None when the metric does not move (slope 0)."""
        return {**dataclasses.asdict(self), "value_se": number(self.value_se)}


def with_loading(cfg: Config, bonds: set[str] | frozenset[str], basket_risk: float) -> Config:
    """``cfg`` with ``basket_risk`` set on ``bonds``.

    A binary bond's ``amount`` follows the price when it is the default
    ``target x price``; an explicit amount stays a fixed sum.
    """
    changes: dict[str, dict[str, Any]] = {}
    for b in cfg.bonds:
        if b.id in bonds:
            changes[b.id] = {"basket_risk": basket_risk}
            pay = b.payment
            if pay.mechanism == "binary" and pay.amount == b.target_units * b.price_per_unit:
                changes[b.id]["payment"] = {
                    "amount": b.target_units * b.price_with_loading(basket_risk)}
    return derive(cfg, changed_bonds=changes)


def _members(cfg: Config, bond: str | None, basket: str | None) -> tuple[str, tuple[Bond, ...]]:
    ids = [b.id for b in cfg.bonds]
    if bond is not None and basket is not None:
        raise ValueError("price either a bond or a basket, not both")
    if bond is not None:
        return f"bond {bond}", (cfg.bond(bond),)  # an unknown id: UnknownIdError
    if basket is None:
        if len(ids) != 1:
            raise ValueError("the config has several bonds: choose a bond or a basket to price "
                             "(--bond ID or --basket ID)")
        return f"bond {ids[0]}", cfg.bonds
    cfg.basket(basket)  # an unknown id: UnknownIdError
    keys = [k.id for k in cfg.baskets]
    resolved = resolve_risk_bands(cfg).config
    from lobsim.model.world import build_world

    world = build_world(resolved)
    k = keys.index(basket)
    return f"basket {basket}", tuple(b for b, m in zip(cfg.bonds, world.basket_members[k],
                                                       strict=True) if m)


def solve_loading(cfg: Config, *, target_irr: float | None = None,
                  target_default_probability: float | None = None, bond: str | None = None,
                  basket: str | None = None, scenarios: int | None = None,
                  seed: int | None = None, threads: int | None = None,
                  xtol: float = 1e-6, irr_convention: str = "mean") -> Solution:
    """Solve for the ``basket_risk`` loading that meets a target.

    Parameters
    ----------
    cfg : Config
    target_irr : float, optional
        Target expected investor IRR (of the bond, or of the basket's
        aggregated cash flows), in the convention ``irr_convention``.
    target_default_probability : float, optional
        Target probability that the payment falls below the principal. Give
        exactly one target.
    bond, basket : str, optional
        What to price; a basket's loading is common to all its bonds. Default:
        the config's only bond.
    scenarios, seed : int, optional
        The common-random-number sample (default: the config's).
    threads : int, optional
    xtol : float
        Absolute tolerance of the loading (far below its Monte Carlo error).
    irr_convention : {"mean", "expected-flows"}
        ``"mean"`` (default): E[IRR], the mean of the scenario IRRs;
        ``"expected-flows"``: the IRR of the expected cash flows
        (:mod:`lobsim.analysis.returns`).

    Returns
    -------
    Solution

    Raises
    ------
    ValueError
        If the target cannot be met for a loading in ``LOADING_BOUNDS``.

    Examples
    --------
    >>> from lobsim import load_config
    >>> cfg = load_config("configs/birmingham_jsa.toml")
    >>> sol = solve_loading(cfg, target_irr=0.0, scenarios=20_000)  # doctest: +SKIP
    >>> sol.value, sol.value_se  # doctest: +SKIP
    """
    from lobsim.model.blocks import run_blocks
    from lobsim.model.world import build_world

    if (target_irr is None) == (target_default_probability is None):
        raise ValueError("give exactly one target: target_irr or target_default_probability")
    if irr_convention not in CONVENTIONS:
        raise ValueError(f"irr_convention must be one of {', '.join(CONVENTIONS)}, "
                         f"got {irr_convention!r}")
    flows = target_irr is not None and irr_convention == "expected-flows"
    n = cfg.simulation.scenarios if scenarios is None else scenarios
    s = cfg.simulation.seed if seed is None else seed
    subject, members = _members(cfg, bond, basket)
    ids = frozenset(b.id for b in members)
    principal = math.fsum(b.principal for b in members)
    # one basket of just the priced bonds: the kernel aggregates its cash flows; the
    # config's other pooled baskets stay, since they decide what their bonds are paid
    measurement = "separate" if basket is None else cfg.basket(basket).measurement
    one = Basket(id="priced", name=subject, bonds=tuple(b.id for b in members), where=None,
                 risk_band=None, tranches=(), guarantee=None, measurement=measurement)
    pooled = tuple(k for k in cfg.baskets if k.measurement == "pooled" and k.id != basket)
    base = derive(cfg, baskets=(one, *pooled))
    single = len(members) == 1
    index = [b.id for b in cfg.bonds].index(members[0].id)

    world_at = _affine_worlds(lambda r: build_world(with_loading(base, ids, r)))

    times = world_at(0.0).times
    # the priced bonds' principals at their starts (the priced basket's paid-in)
    paid_in = np.array([math.fsum(b.principal for b in members if b.start == t) for t in times])

    def sample(r: float) -> np.ndarray:
        out = run_blocks(world_at(r), n, s, cfg.simulation.block_size, threads=threads)
        if flows:  # the priced basket's cash flows, one bond or several alike
            return np.asarray(out.basket_cashflow[:, 0, :])
        if target_irr is not None:
            return out.irr[:, index] if single else out.basket_irr[:, 0]
        paid = out.investor_payment[:, index] if single else out.basket_payment[:, 0]
        return (paid < principal).astype(float)

    if target_irr is not None:
        target, kind = float(target_irr), "irr"
    else:
        assert target_default_probability is not None
        target, kind = float(target_default_probability), "default_probability"
    # a sample default probability is a step function: a tolerance finer than
    # its steps only buys evaluations
    tol = xtol if kind == "irr" else max(xtol, 1e-5)
    metric = (lambda received: expected_flows_irr(times, paid_in, received)) if flows else None
    value, se, achieved, a_se, slope, evals = _solve(sample, target, LOADING_BOUNDS, kind,
                                                     "basket_risk", tol, metric)
    prices = {b.id: b.price_with_loading(value) for b in members}
    return Solution(parameter="basket_risk", subject=subject, target=kind, target_value=target,
                    value=value, value_se=se, achieved=achieved, achieved_se=a_se, slope=slope,
                    scenarios=n, seed=s, evaluations=evals, price_per_unit=prices,
                    irr_convention=irr_convention if kind == "irr" else "mean")


def _affine_worlds(build: Callable[[float], World]) -> Callable[[float], World]:
    """Worlds at any loading from three builds, when the kernel arrays are affine in it.

    Prices, binary amounts and agency payments per unit are affine in the
    loading; everything else (donor fits, tables) does not depend on it. The
    fields that move between the builds at 0 and 1 are found by name (group,
    field), interpolated, and checked against a third build; if the check
    fails (a future payment rule that is not affine), every loading is built
    afresh.
    """
    w0, w1, w2 = build(0.0), build(1.0), build(2.5)

    def value(w: World, group: str, name: str) -> np.ndarray:
        return np.asarray(getattr(getattr(w.arrays, group), name))

    moving = [(group, name) for group, fields in w0.arrays._asdict().items()
              for name in fields._fields
              if not np.array_equal(value(w0, group, name), value(w1, group, name))]

    def interpolate(r: float) -> World:
        changed: dict[str, Any] = {}
        for group in dict.fromkeys(g for g, _ in moving):
            fields = {name: value(w0, group, name) + r * (value(w1, group, name)
                                                          - value(w0, group, name))
                      for g, name in moving if g == group}
            changed[group] = getattr(w0.arrays, group)._replace(**fields)
        return w0.derive(**changed)

    check = interpolate(2.5)
    exact = all(np.allclose(value(check, g, name), value(w2, g, name), rtol=1e-12, atol=0.0)
                for g, name in moving)
    exact = exact and all(value(w0, g, name).dtype.kind == "f" for g, name in moving)
    return interpolate if exact else build


def _solve(sample: Callable[[float], np.ndarray], target: float, bounds: tuple[float, float],
           kind: str, name: str, xtol: float,
           metric: Callable[[np.ndarray], tuple[float, float]] | None = None,
           ) -> tuple[float, float, float, float, float, int]:
    """Root of ``mean(sample(x)) = target`` with its delta-method standard error.

    ``sample(x)`` returns per-scenario values (IRRs or default indicators) on
    common random numbers, so the mean is monotone in ``x``: increasing for
    IRRs, decreasing for default indicators. ``metric``, if given, replaces
    the mean: it maps ``sample(x)`` to the metric and its standard error (the
    IRR of the expected cash flows, also increasing in ``x``).
    """
    memo: dict[float, np.ndarray] = {}

    def at(x: float) -> np.ndarray:
        if x not in memo:
            memo[x] = sample(x)
        return memo[x]

    def f(x: float) -> float:
        if metric is not None:
            return metric(at(x))[0] - target
        return float(at(x).mean()) - target

    lo, hi = bounds
    f_lo, f_hi = f(lo), f(hi)
    what = ("the default probability" if kind != "irr" else
            "E[IRR] (mean of scenarios)" if metric is None else "the IRR of E[flows]")
    if kind == "irr" and not f_lo <= 0.0 <= f_hi:
        where = (f"at {name} {lo:g} it is already {f_lo + target:.6g}" if f_lo > 0
                 else f"at {name} {hi:g} it is only {f_hi + target:.6g}")
        raise ValueError(f"no {name} in [{lo:g}, {hi:g}] gives {what} = {target:.6g}: {where}")
    if kind != "irr" and not f_hi <= 0.0 <= f_lo:
        where = (f"at {name} {lo:g} it is already {f_lo + target:.6g}" if f_lo < 0
                 else f"at {name} {hi:g} it is still {f_hi + target:.6g} (scenarios that pay "
                      "nothing default whatever the price)")
        raise ValueError(f"no {name} in [{lo:g}, {hi:g}] gives {what} = {target:.6g}: {where}")
    x = float(optimize.brentq(f, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps))
    if kind != "irr":
        # a step function: take the smallest evaluated x that meets the target
        ok = [k for k in memo if f(k) <= 0.0 and k >= x - 2 * xtol]
        x = min(ok) if ok else x
    values = at(x)
    n = values.shape[0]
    if metric is not None:
        achieved, achieved_se = metric(values)
    else:
        achieved = float(values.mean())
        achieved_se = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    if kind == "irr":
        h = 1e-3
        a, b = max(lo, x - h), min(hi, x + h)
        slope = (f(b) - f(a)) / (b - a)
    else:
        slope = _secant(at, x, bounds, n)
        achieved_se = math.sqrt(max(achieved * (1.0 - achieved), 1.0 / n) / n)
    se = achieved_se / abs(slope) if slope != 0.0 else math.inf
    return x, se, achieved, achieved_se, slope, len(memo)


def _secant(at: Callable[[float], np.ndarray], x: float, bounds: tuple[float, float],
            n: int) -> float:
    """Slope of a sample default probability around ``x``: a secant spanning
    at least ``MIN_SWITCHES`` scenarios that change status (or the bounds)."""
    lo, hi = bounds
    h = 0.005
    while True:
        a, b = max(lo, x - h), min(hi, x + h)
        pa, pb = at(a), at(b)
        switched = float(np.sum(pa != pb))
        if switched >= MIN_SWITCHES or (a == lo and b == hi):
            return float(pb.mean() - pa.mean()) / (b - a)
        h *= 2.0


# --------------------------------------------------------------------------
# Tranche premiums
# --------------------------------------------------------------------------
def solve_tranche_premium(cfg: Config, basket: str, tranche: str, target_irr: float, *,
                          scenarios: int | None = None, seed: int | None = None,
                          threads: int | None = None, ds: Any = None,
                          premiums: Mapping[str, float] | None = None,
                          xtol: float = 1e-7) -> Solution:
    """Solve for the premium that gives a tranche a target expected IRR.

    The other tranches keep their premiums (or ``premiums``). The most junior
    tranche takes the residual, so its IRR does not depend on its premium:
    it cannot be priced this way.

    Parameters
    ----------
    cfg : Config
    basket, tranche : str
        Ids of the basket and of its tranche.
    target_irr : float
        Target expected IRR of the tranche.
    scenarios, seed, threads : int, optional
        The simulation (default: the config's), unless ``ds`` is given.
    ds : xarray.Dataset, optional
        Results of :func:`lobsim.simulate` for ``cfg`` to reuse.
    premiums : mapping, optional
        Premiums of other tranches (id -> premium) overriding the config.
    xtol : float
        Absolute tolerance of the premium.

    Returns
    -------
    Solution
    """
    from lobsim.model.simulate import simulate
    from lobsim.model.waterfall import basket_waterfall

    spec = cfg.basket(basket)
    if not spec.tranches:
        raise ValueError(f"basket {basket!r} has no tranches")
    cfg.tranche(basket, tranche)  # an unknown id: UnknownIdError
    ids = [t.id for t in spec.tranches]
    junior = max(spec.tranches, key=lambda t: t.seniority).id
    if tranche == junior and len(ids) > 1:
        raise ValueError(f"tranche {tranche!r} is the most junior: it takes the residual, so "
                         "its IRR does not depend on its premium")
    if ds is None:
        ds = simulate(cfg, scenarios=scenarios, seed=seed, threads=threads)
    fixed = dict(premiums or {})
    k = ids.index(tranche)

    def sample(p: float) -> np.ndarray:
        _, irr = basket_waterfall(ds, cfg, basket, {**fixed, tranche: p})
        return np.asarray(irr[:, k])

    value, se, achieved, a_se, slope, evals = _solve(sample, float(target_irr), PREMIUM_BOUNDS,
                                                     "irr", "premium", xtol)
    return Solution(parameter="premium", subject=f"tranche {basket}/{tranche}", target="irr",
                    target_value=float(target_irr), value=value, value_se=se, achieved=achieved,
                    achieved_se=a_se, slope=slope, scenarios=int(ds.sizes["scenario"]),
                    seed=int(ds.attrs.get("seed", -1)), evaluations=evals)


def solve_tranche_premiums(cfg: Config, basket: str, targets: Mapping[str, float], *,
                           scenarios: int | None = None, seed: int | None = None,
                           threads: int | None = None, ds: Any = None) -> list[Solution]:
    """Premiums of several tranches, senior first, each given those above it.

    A junior tranche's cash depends on the premiums of the tranches above it
    and not the other way round (sequential pay), so solving in seniority
    order meets every target at once.
    """
    from lobsim.model.simulate import simulate

    spec = cfg.basket(basket)
    if not spec.tranches:
        raise ValueError(f"basket {basket!r} has no tranches")
    for tranche in targets:  # before any simulation
        cfg.tranche(basket, tranche)
    if ds is None:
        ds = simulate(cfg, scenarios=scenarios, seed=seed, threads=threads)
    solved: dict[str, float] = {}
    out = []
    for t in sorted(spec.tranches, key=lambda t: t.seniority):
        if t.id in targets:
            sol = solve_tranche_premium(cfg, basket, t.id, targets[t.id], ds=ds,
                                        premiums=solved)
            solved[t.id] = sol.value
            out.append(sol)
    return out


def format_solution(sol: Solution) -> str:
    """Plain-text report of a solution; uncertainties are 95% intervals (lobsim.analysis.stats)."""
    metric = CONVENTIONS[sol.irr_convention] if sol.target == "irr" else "P(default)"

    def fmt(x: float) -> str:
        return f"{100 * x:.3f}%" if sol.target == "irr" else f"{x:.4f}"

    v_lo, v_hi = (float(x) for x in normal_interval(sol.value, sol.value_se))
    a_lo, a_hi = (float(x) for x in normal_interval(sol.achieved, sol.achieved_se))
    lines = [
        f"{sol.parameter} for {sol.subject}: target {metric} = {fmt(sol.target_value)}",
        f"  {sol.parameter} = {sol.value:.6f}  (95% interval [{v_lo:.6f}, {v_hi:.6f}]: Monte "
        f"Carlo, delta method; {sol.scenarios:,} scenarios, seed {sol.seed}, "
        f"{sol.evaluations} evaluations on common random numbers)",
        f"  at the solution: {metric} = {fmt(sol.achieved)}  (95% interval [{fmt(a_lo)}, "
        f"{fmt(a_hi)}] on this sample); d {metric} / d {sol.parameter} = {sol.slope:.4g}",
    ]
    if sol.target == "irr":
        other = next(c for c in CONVENTIONS if c != sol.irr_convention)
        lines.append(f"  IRR convention: {sol.irr_convention} ({metric}); "
                     f"--irr-convention {other} solves for the {CONVENTIONS[other]}")
    if sol.price_per_unit:
        from lobsim.model.simulate import CURRENCY

        prices = sorted(sol.price_per_unit.items())
        shown = ", ".join(f"{k} {v:,.2f} {CURRENCY}" for k, v in prices[:4])
        more = f" and {len(prices) - 4} more" if len(prices) > 4 else ""
        lines.append(f"  price per unit: {shown}{more}")
    return "\n".join(lines)
