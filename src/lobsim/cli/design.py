"""Command-line piece for ``lobsim design``: a search over a bond's or basket's design.

It only parses arguments and calls :func:`lobsim.analysis.design.design` and
:func:`lobsim.report.design.design_figure`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lobsim.cli.argtypes import bounded, check_scenarios, probability
from lobsim.cli.overrides import assignment
from lobsim.cli.searches import add_output_options, add_run_options, chosen_plot, write_plot
from lobsim.errors import UsageError
from lobsim.jsonio import dump as dump_json

#: Most designs --max-designs may ask for.
MAX_DESIGNS_BOUND = 10_000
positive = bounded(1, MAX_DESIGNS_BOUND)
#: Where the frontier goes unless --plot (or --no-plot, or --json) says otherwise.
DEFAULT_PLOT = "design.png"


def add_design_parser(sub: Any) -> None:
    """The ``design`` subcommand."""
    from lobsim.analysis.design import LEVER_NAMES, MAX_DEFAULT, MAX_DESIGNS

    de = sub.add_parser(
        "design", help="search a bond's or basket's measurement design",
        description="Simulate the contracted design and its variations (control-group size "
                    "and weights, maturity, cap, threshold, ...) on common random numbers, "
                    "tabulate signal-to-noise, minimum detectable effect, investor P(default) "
                    "and E[multiple], the state's E[overpayment] and the provider's "
                    "E[shortfall], draw the frontier and recommend the least E[overpayment] "
                    "with P(default) at most --max-default.")
    de.add_argument("config", help="TOML configuration file")
    which = de.add_mutually_exclusive_group(required=True)
    which.add_argument("--bond", metavar="ID", help="the bond designed")
    which.add_argument("--basket", metavar="ID",
                       help="the basket designed (bond levers set every member bond)")
    de.add_argument("--lever", action="append", default=[], metavar="NAME[=V1,V2,...]",
                    help=f"search this lever ({', '.join(LEVER_NAMES)}), at these values "
                         "(default: its own); repeatable; default: every lever")
    de.add_argument("--set", dest="overrides", action="append", default=[], type=assignment,
                    metavar="PATH=VALUE", help="override a config field in every design")
    de.add_argument("--max-default", type=probability, default=MAX_DEFAULT, metavar="P",
                    help=f"criterion: investor P(default) at most P (default {MAX_DEFAULT})")
    de.add_argument("--full-grid", action="store_true",
                    help="search the full product of the levers' values (at most "
                         "--max-designs) instead of one lever at a time plus a grid of two")
    de.add_argument("--max-designs", type=positive, default=MAX_DESIGNS, metavar="N",
                    help=f"most designs simulated (default {MAX_DESIGNS})")
    add_run_options(de, each="design")
    add_output_options(de, picture="the frontier", default=DEFAULT_PLOT,
                       schema="lobsim.design/1")
    de.set_defaults(func=cmd_design)


def parse_levers(texts: list[str]) -> dict[str, list[str] | None] | None:
    """``--lever NAME=V1,V2`` (or ``NAME``) options as lever -> values (None: its own)."""
    from lobsim.analysis.design import LEVER_NAMES
    from lobsim.model.overrides import split_values

    if not texts:
        return None
    out: dict[str, list[str] | None] = {}
    for text in texts:
        name, eq, values = text.partition("=")
        name = name.strip()
        if name not in LEVER_NAMES:
            raise UsageError(f"--lever {text}: no lever {name!r}; the levers are "
                             f"{', '.join(LEVER_NAMES)}")
        if name in out:
            raise UsageError(f"--lever {name} is given twice; give its values in one --lever")
        parts = split_values(values) if eq else None
        if parts is not None and (not parts or any(p == "" for p in parts)):
            raise UsageError(f"--lever {text}: give the values as {name}=V1,V2,... "
                             "(none may be empty)")
        out[name] = parts
    return out


def cmd_design(args: argparse.Namespace) -> int:
    """``lobsim design``."""
    from lobsim.analysis.design import design, design_dict, format_design

    plot = chosen_plot(args, DEFAULT_PLOT, "the frontier")
    check_scenarios(args.scenarios, "a design search")
    levers = parse_levers(args.lever)
    try:
        d = design(args.config, bond=args.bond, basket=args.basket, levers=levers,
                   overrides=args.overrides, scenarios=args.scenarios, seed=args.seed,
                   threads=args.threads, max_default=args.max_default,
                   full_grid=args.full_grid, max_designs=args.max_designs, progress=_progress)
    except ValueError as exc:
        if hasattr(exc, "reason"):  # a ConfigError: the CLI's one line
            raise
        raise UsageError(f"{args.config}: {exc}") from None
    if plot is not None:
        from lobsim.report.design import design_figure

        write_plot(design_figure(d), plot)
    if args.json:
        dump_json(design_dict(d))
    else:
        print(format_design(d))
    if plot is not None:
        print(f"\nfrontier drawn to {plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _progress(k: int, label: str) -> None:
    if sys.stderr.isatty():  # dozens of designs at the config's scenarios take a while
        print(f"lobsim: design {k}: {label}", file=sys.stderr)
