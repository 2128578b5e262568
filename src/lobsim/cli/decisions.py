"""Command-line pieces for the decisions: ``lobsim maturity`` and ``lobsim setaside``.

Like the rest of the command line, these functions only parse arguments and
call the model layer (:mod:`lobsim.analysis.maturity`, :mod:`lobsim.analysis.setaside`);
docs/decisions.md describes what they compute.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lobsim.cli.argtypes import check_scenarios, finite_float, scenario_count, seed, thread_count
from lobsim.cli.overrides import add_set_option, config_of
from lobsim.cli.searches import png_target, write_plot
from lobsim.errors import UsageError
from lobsim.jsonio import dump as dump_json

if TYPE_CHECKING:  # a Dataset in signatures only: xarray loads when a command needs it
    import xarray as xr

#: Candidate maturities unless --years is given: this many whole years after the start.
DEFAULT_YEARS = 8


def maturity_years(text: str) -> list[float]:
    """``A..B`` (whole years A to B) or a comma-separated list of years (argparse type)."""
    from lobsim.analysis.maturity import LAST_YEAR

    try:
        if ".." in text:
            lo, hi = (int(part) for part in text.split("..", 1))
            years = [float(y) for y in range(lo, hi + 1)]
        else:
            years = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a range of whole years A..B (2..10) or a list (2,3,5), got {text!r}"
        ) from None
    if not years:  # only a range can be empty
        raise argparse.ArgumentTypeError(f"the range A..B runs backwards, got {text!r}")
    bad = [y for y in years if not (math.isfinite(y) and 0.0 < y <= LAST_YEAR)]
    if bad:
        raise argparse.ArgumentTypeError(
            f"years after the base year must lie in (0, {LAST_YEAR:g}], got {bad[0]:g} "
            f"in {text!r}")
    return years


def level(text: str) -> float:
    """A probability strictly between 0 and 1 (argparse type)."""
    value = finite_float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


def _cmd_maturity(args: argparse.Namespace) -> int:
    from lobsim.analysis.maturity import choose_maturity, format_maturity

    plot = png_target(args.plot, "the trade-off", force=args.force)
    check_scenarios(args.scenarios, "comparing maturities")
    cfg = config_of(args)
    ids = [b.id for b in cfg.bonds]
    if args.bond is None:
        if len(ids) > 1:
            raise UsageError(f"the config has {len(ids)} bonds; choose one with --bond "
                             f"({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
        args.bond = ids[0]
    cfg.bond(args.bond)  # an unknown id: UnknownIdError, as every lookup by id
    if cfg.universe is None:
        raise UsageError(f"{args.config}: choosing a maturity simulates the bond, which needs "
                         "a [universe]")
    start = cfg.bond(args.bond).start
    years = args.years or [math.floor(start) + k for k in range(1, DEFAULT_YEARS + 1)]
    early = [y for y in years if y <= start]
    if early:
        raise UsageError(f"--years: maturity {early[0]:g} is not after the bond's start "
                         f"({start:g})")
    try:
        choice = choose_maturity(cfg, args.bond, years, scenarios=args.scenarios, seed=args.seed,
                                 threads=args.threads)
    except ValueError as exc:
        raise UsageError(f"{args.config}: {exc}") from None
    if plot is not None:
        from lobsim.report.studies import maturity_tradeoff

        write_plot(maturity_tradeoff(choice), plot)
    if args.json:
        dump_json(choice.to_dict())
    else:
        print(format_maturity(choice))
        if args.plot:
            print(f"\ntrade-off plotted to {args.plot}")
    return 0


def load_results(path: Path) -> xr.Dataset:
    """Per-scenario results written by ``lobsim run --out`` (.nc or .zarr)."""
    from lobsim.cli.scale import load_results as load

    return load(path, need=("department_payment", "department_share", "department_premium",
                            "pays_in_year", "investor_payment", "paid_units", "dated_payment"),
                purpose="set-asides are computed from")


def _cmd_setaside(args: argparse.Namespace) -> int:
    from lobsim.analysis.setaside import compute_set_asides, format_set_asides
    from lobsim.cli.scale import note_config

    path = Path(args.results)
    ds = load_results(path)
    note_config(ds, path)
    try:
        s = compute_set_asides(ds, args.level)
    except ValueError as exc:  # importance-sampling weights
        raise UsageError(f"{args.results}: {exc}") from None
    if args.json:
        dump_json(s.to_dict())
    else:
        print(format_set_asides(s, by_bond=args.by_bond))
    return 0


def add_decision_parsers(sub: Any) -> None:
    """Register ``lobsim maturity`` and ``lobsim setaside``."""
    mat = sub.add_parser(
        "maturity", help="compare candidate maturities of a bond and recommend one",
        description="Re-price one bond at each candidate maturity on common random numbers: "
                    "signal-to-noise, P(default), E[IRR], the state's overpayment and the "
                    "provider's shortfall; recommends the lowest P(default), ties within Monte "
                    "Carlo error broken by the higher E[IRR] (docs/decisions.md).")
    mat.add_argument("config", help="TOML configuration file")
    mat.add_argument("--bond", metavar="ID", help="the bond (needed when the config has several)")
    mat.add_argument("--years", type=maturity_years, metavar="A..B|Y1,Y2,...",
                     help="candidate maturities, years after the base year (default: the "
                          f"{DEFAULT_YEARS} whole years after the bond's start)")
    mat.add_argument("--scenarios", type=scenario_count, help="scenarios (default: config)")
    mat.add_argument("--seed", type=seed, help="random seed (default: config)")
    mat.add_argument("--threads", type=thread_count, help="worker threads (default: all CPUs)")
    mat.add_argument("--plot", metavar="FILE.png", help="plot the trade-off to this PNG file")
    mat.add_argument("--force", action="store_true", help="overwrite an existing --plot file")
    mat.add_argument("--json", action="store_true", help="print the stable JSON layout")
    add_set_option(mat)
    mat.set_defaults(func=_cmd_maturity)

    sa = sub.add_parser(
        "setaside", help="departmental set-asides per year from a results file",
        description="Per department and year, the amount payments exceed with probability at "
                    "most 1 - LEVEL, for the whole book and bond by bond, and the "
                    "diversification benefit (docs/decisions.md).")
    sa.add_argument("results", help="results file (.nc) or store (.zarr) of 'lobsim run --out'")
    sa.add_argument("--level", type=level, default=0.99,
                    help="confidence level in (0, 1) (default: 0.99)")
    sa.add_argument("--by-bond", action="store_true", help="also list each bond's set-aside")
    sa.add_argument("--json", action="store_true", help="print the stable JSON layout")
    sa.set_defaults(func=_cmd_setaside)
