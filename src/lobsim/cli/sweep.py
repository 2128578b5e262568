"""Command-line piece for ``lobsim sweep``: a sensitivity sweep over one or two parameters.

It only parses arguments and calls :func:`lobsim.analysis.sweep.sweep` and
:func:`lobsim.report.sweeps.sweep_figure`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lobsim.cli.argtypes import check_scenarios
from lobsim.cli.overrides import assignment
from lobsim.cli.searches import add_output_options, add_run_options, chosen_plot, write_plot
from lobsim.errors import UsageError
from lobsim.jsonio import dump as dump_json

#: Where the plot goes unless --plot (or --no-plot, or --json) says otherwise.
DEFAULT_PLOT = "sweep.png"


def add_sweep_parser(sub: Any) -> None:
    """The ``sweep`` subcommand."""
    sw = sub.add_parser(
        "sweep", help="re-run a config over values of one or two parameters",
        description="Simulate the config at each value (a grid for two parameters) on common "
                    "random numbers (every point: the same scenarios and seed) and tabulate, "
                    "per bond and basket, P(default) with its 95% interval, E[multiple], the "
                    "state's E[overpayment] and the provider's E[shortfall]; plots them.")
    sw.add_argument("config", help="TOML configuration file")
    sw.add_argument("--set", dest="overrides", action="append", default=[], type=assignment,
                    metavar="PATH=V1,V2,...", required=True,
                    help="a swept parameter and its values (bonds[0].target_units=4000,5000); "
                         "one or two of them; with a single value, a fixed override at every "
                         "point; repeatable")
    add_run_options(sw, each="point")
    add_output_options(sw, picture="the sweep", default=DEFAULT_PLOT, schema="lobsim.sweep/1")
    sw.add_argument("--instrument", metavar="ID",
                    help="with two parameters: the bond or basket plotted (default: the only "
                         "bond, else the first basket)")
    sw.set_defaults(func=cmd_sweep)


def split_sets(texts: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``--set`` options into swept parameters (two or more values) and fixed overrides."""
    from lobsim.model.overrides import split_assignment, split_values

    swept, fixed = [], []
    for text in texts:
        path, value = split_assignment(text)
        values = split_values(value)
        if len(values) > 1:
            swept.append((path, values))
        else:
            fixed.append(text)
    return swept, fixed


def cmd_sweep(args: argparse.Namespace) -> int:
    """``lobsim sweep``."""
    from lobsim.analysis.sweep import MAX_PARAMETERS, format_sweep, sweep, sweep_dict

    plot = chosen_plot(args, DEFAULT_PLOT, "the sweep")
    check_scenarios(args.scenarios, "a sweep")
    swept, fixed = split_sets(args.overrides)
    if not swept:
        raise UsageError("--set: nothing to sweep; give a parameter two or more values "
                         "(--set bonds[0].target_units=4000,5000)")
    if len(swept) > MAX_PARAMETERS:
        raise UsageError(f"--set: a sweep varies one or two parameters, got {len(swept)} "
                         f"({', '.join(p for p, _ in swept)})")
    if args.instrument is not None and len(swept) == 1:
        raise UsageError("--instrument chooses the line of a two-parameter plot; one parameter "
                         "plots every bond")
    try:
        s = sweep(args.config, swept, overrides=fixed, scenarios=args.scenarios, seed=args.seed,
                  threads=args.threads, progress=_progress)
    except ValueError as exc:
        raise UsageError(f"{args.config}: {exc}") from None
    if plot is not None:
        from lobsim.report.sweeps import sweep_figure

        try:
            fig = sweep_figure(s, instrument=args.instrument)
        except ValueError as exc:
            raise UsageError(f"--instrument: {exc}") from None
        write_plot(fig, plot)
    if args.json:
        dump_json(sweep_dict(s))
    else:
        print(format_sweep(s))
    if plot is not None:
        print(f"\nsweep plotted to {plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _progress(k: int, total: int, point: tuple[str, ...]) -> None:
    if sys.stderr.isatty():  # a sweep at the config's scenarios takes minutes
        print(f"lobsim: sweep point {k}/{total}: {', '.join(point)}", file=sys.stderr)
