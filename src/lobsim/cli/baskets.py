"""Command-line pieces for baskets: ``lobsim price`` and the tail options of ``run``.

Kept apart from :mod:`lobsim.cli.commands` so that the main parser only gains a few
calls; like the rest of the command line, these functions only parse
arguments and call the model layer.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from lobsim.cli.argtypes import check_scenarios, finite_float, scenario_count, seed, thread_count
from lobsim.cli.overrides import add_set_option, config_of
from lobsim.errors import UsageError
from lobsim.jsonio import dump as dump_json
from lobsim.model.config import Config

if TYPE_CHECKING:  # a Dataset in signatures only: xarray loads when a command needs it
    import xarray as xr

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
        compare_tails,
        format_contributions,
        format_tail_comparison,
        format_tilt,
        importance_sampled_run,
        risk_contributions,
    )
    from lobsim.model.basket import basket_composition, format_composition

    if args.composition:
        print("\nBasket composition\n" + format_composition(basket_composition(ds)))
    tail_ds = ds
    if args.importance_sampling:
        try:
            tilt, tail_ds = importance_sampled_run(
                cfg, ds, args.tail_basket, pilot_scenarios=args.pilot_scenarios,
                chunk_size=args.chunk_size, threads=args.threads)
        except ValueError as exc:
            raise UsageError(f"--tail-basket: {exc}") from None
        rows = compare_tails(ds, tail_ds, TAIL_LEVELS)
        print("\n" + format_tail_comparison(rows, int(tail_ds.sizes["scenario"]),
                                            format_tilt(tilt)))
    if args.contributions:
        for basket in ds.basket.values.tolist():
            print("\n" + format_contributions(risk_contributions(tail_ds, basket, 0.99)))


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
                       help="target expected IRR (0.05 is 5%% a year), in the convention "
                            "--irr-convention")
    price.add_argument("--irr-convention", choices=("mean", "expected-flows"), default="mean",
                       help="which expected IRR --target-irr means: 'mean' (default), the mean "
                            "of the scenario IRRs, a total loss counting as -100%%; "
                            "'expected-flows', the IRR of the expected cash flows")
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
    add_set_option(price)
    price.set_defaults(func=cmd_price)


def cmd_price(args: argparse.Namespace) -> int:
    """``lobsim price``."""
    from lobsim.analysis.pricing import format_solution, solve_loading, solve_tranche_premiums

    cfg = config_of(args)
    check_scenarios(args.scenarios, "pricing")
    n = args.scenarios or PRICE_SCENARIOS
    try:
        if args.tranche:
            if args.basket is None:
                raise UsageError("--tranche needs --basket")
            if args.target_default_prob is not None:
                raise UsageError("tranche premiums are solved for a target IRR, not a default "
                             "probability")
            if args.irr_convention != "mean":
                raise UsageError("--irr-convention expected-flows: tranche premiums are solved "
                                 "for E[IRR] (mean of scenarios) only")
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
                                       threads=args.threads,
                                       irr_convention=args.irr_convention)]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        dump_json({"schema": "lobsim.price/1", "solutions": [s.to_dict() for s in solutions]})
    else:
        print("\n\n".join(format_solution(s) for s in solutions))
    return 0
