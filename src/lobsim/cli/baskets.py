"""Command-line pieces for baskets: ``lobsim price`` and the tail options of ``run``.

Kept apart from :mod:`lobsim.cli.commands` so that the main parser only gains a few
calls; like the rest of the command line, these functions only parse
arguments and call the model layer.
"""

from __future__ import annotations

import argparse
from typing import Any

import xarray as xr

from lobsim.cli.argtypes import check_scenarios, finite_float, scenario_count, seed, thread_count
from lobsim.errors import UsageError
from lobsim.jsonio import dump as dump_json
from lobsim.model.config import Config, load_config

#: Scenarios of ``lobsim price`` unless --scenarios is given: each solver
#: evaluation is a simulation, and the reported standard error says whether
#: more are needed.
PRICE_SCENARIOS = 20_000
#: Levels of the importance-sampling tail table.
TAIL_LEVELS = (0.99, 0.995)


# --------------------------------------------------------------------------
# lobsim run: importance sampling and risk contributions
# --------------------------------------------------------------------------
def add_run_options(run: argparse.ArgumentParser) -> None:
    """Tail options of ``lobsim run``."""
    run.add_argument("--importance-sampling", action="store_true",
                     help="also estimate basket VaR and expected shortfall by importance "
                          "sampling (copula factors shifted towards the loss tail)")
    run.add_argument("--tail-basket", metavar="ID",
                     help="basket whose tail the importance sampling targets (default: the "
                          "largest by principal)")
    run.add_argument("--pilot-scenarios", type=scenario_count, default=5000,
                     help="scenarios of each pilot run choosing the shift (default: 5000)")
    run.add_argument("--contributions", action="store_true",
                     help="print each basket's Euler risk contributions at 99%%")
    run.add_argument("--composition", action="store_true",
                     help="print what each basket is made of (bonds, principal by region, "
                          "provider, type and maturity, mean stand-alone default probability)")


def run_extras(args: argparse.Namespace, cfg: Config, ds: xr.Dataset) -> None:
    """Print what the tail options of ``lobsim run`` ask for."""
    from lobsim.analysis.risk import (
        cross_entropy_tilt,
        format_contributions,
        format_tilt,
        risk_contributions,
    )
    from lobsim.model.basket import basket_composition, format_composition
    from lobsim.model.simulate import simulate

    if args.composition:
        print("\nBasket composition\n" + format_composition(basket_composition(ds)))
    tail_ds = ds
    if args.importance_sampling:
        n = int(ds.sizes["scenario"])
        seed = int(ds.attrs["seed"])
        try:
            tilt = cross_entropy_tilt(cfg, args.tail_basket, 0.995,
                                      pilot_scenarios=args.pilot_scenarios, seed=seed,
                                      threads=args.threads)
        except ValueError as exc:
            raise UsageError(f"--tail-basket: {exc}") from None
        tail_ds = simulate(cfg, scenarios=n, seed=seed, chunk_size=args.chunk_size,
                           threads=args.threads, **tilt.kwargs())
        print("\n" + format_importance_table(ds, tail_ds, format_tilt(tilt)))
    if args.contributions:
        for basket in ds.basket.values.tolist():
            print("\n" + format_contributions(risk_contributions(tail_ds, basket, 0.99)))


def format_importance_table(plain: xr.Dataset, tilted: xr.Dataset, header: str) -> str:
    """Basket VaR and ES by importance sampling beside plain sampling."""
    from lobsim.analysis.risk import tail_estimate

    lines = [f"Tail of basket losses by importance sampling ({tilted.sizes['scenario']:,} "
             "scenarios, as the plain run)", f"  {header}",
             f"{'':<16}{'level':>7}{'VaR (IS)':>14}{'ES (IS)':>14}{'± se':>11}"
             f"{'ES (plain)':>14}{'± se':>11}{'variance reduction':>20}"]
    principal = plain.basket_principal.values
    worse = False
    for k, key in enumerate(plain.basket.values.tolist()):
        for level in TAIL_LEVELS:
            p = tail_estimate(principal[k] - plain.basket_payment.values[:, k], level)
            t = tail_estimate(principal[k] - tilted.basket_payment.values[:, k], level,
                              tilted.log_weight.values)
            ratio = (p.es_se / t.es_se) ** 2 if t.es_se > 0 else float("inf")
            worse |= ratio < 1.0
            lines.append(f"{str(key)[:16]:<16}{level:>7.3f}{t.var:>14,.0f}{t.es:>14,.0f}"
                         f"{t.es_se:>11,.0f}{p.es:>14,.0f}{p.es_se:>11,.0f}{ratio:>19.2f}x")
    if worse:
        lines.append("  a variance reduction below 1x: that tail is driven by risks the shift does "
                     "not move (control-group noise, provider failure); prefer the plain estimate")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# lobsim price
# --------------------------------------------------------------------------
def add_price_parser(sub: Any) -> None:
    """The ``price`` subcommand."""
    price = sub.add_parser(
        "price",
        help="solve for the risk loading (or a tranche premium) that meets a target",
        description="Solve for the basket_risk loading of a bond or basket that gives a "
                    "target expected IRR or default probability, or for tranche premiums "
                    "that give target expected IRRs, on common random numbers; reports the "
                    "Monte Carlo standard error of the solution.",
    )
    price.add_argument("config", help="TOML configuration file")
    price.add_argument("--target-irr", type=finite_float, metavar="X",
                       help="target expected IRR (0.05 is 5%% a year)")
    price.add_argument("--target-default-prob", type=finite_float, metavar="P",
                       help="target default probability P(payment < principal)")
    what = price.add_mutually_exclusive_group()
    what.add_argument("--bond", metavar="ID", help="price this bond")
    what.add_argument("--basket", metavar="ID",
                      help="price this basket (one loading for all its bonds)")
    price.add_argument("--tranche", action="append", metavar="ID[=IRR]", default=[],
                       help="with --basket: solve this tranche's premium instead (target "
                            "--target-irr, or the IRR given after '='); repeatable")
    price.add_argument("--scenarios", type=scenario_count,
                       help=f"scenarios of the common-random-number sample "
                            f"(default: {PRICE_SCENARIOS:,})")
    price.add_argument("--seed", type=seed, help="random seed (default: config)")
    price.add_argument("--threads", type=thread_count, help="worker threads (default: all CPUs)")
    price.add_argument("--json", action="store_true", help="print JSON (lobsim.price/1)")
    price.set_defaults(func=cmd_price)


def cmd_price(args: argparse.Namespace) -> int:
    """``lobsim price``."""
    from lobsim.analysis.pricing import format_solution, solve_loading, solve_tranche_premiums

    cfg = load_config(args.config)
    check_scenarios(args.scenarios, "pricing")
    n = args.scenarios or PRICE_SCENARIOS
    try:
        if args.tranche:
            if args.basket is None:
                raise UsageError("--tranche needs --basket")
            if args.target_default_prob is not None:
                raise UsageError("tranche premiums are solved for a target IRR, not a default "
                             "probability")
            targets = {}
            for item in args.tranche:
                tid, _, value = item.partition("=")
                if value:
                    targets[tid] = finite_float(value)
                elif args.target_irr is not None:
                    targets[tid] = args.target_irr
                else:
                    raise UsageError(f"--tranche {tid}: give its target as {tid}=IRR or "
                                 "--target-irr")
            solutions = solve_tranche_premiums(cfg, args.basket, targets, scenarios=n,
                                               seed=args.seed, threads=args.threads)
        else:
            if (args.target_irr is None) == (args.target_default_prob is None):
                raise UsageError("give one target: --target-irr X or --target-default-prob P")
            p = args.target_default_prob
            if p is not None and not 0.0 < p < 1.0:
                raise UsageError(f"--target-default-prob must lie in (0, 1), got {p}")
            solutions = [solve_loading(cfg, target_irr=args.target_irr,
                                       target_default_probability=p, bond=args.bond,
                                       basket=args.basket, scenarios=n, seed=args.seed,
                                       threads=args.threads)]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        dump_json({"schema": "lobsim.price/1", "solutions": [s.to_dict() for s in solutions]})
    else:
        print("\n\n".join(format_solution(s) for s in solutions))
    return 0
