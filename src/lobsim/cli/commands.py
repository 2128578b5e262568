"""The ``lobsim`` command line: parses arguments and calls the Python API.

Every :class:`~lobsim.errors.ConfigError` becomes one line on stderr and exit
status 2, never a traceback; Ctrl-C one line and exit status 130.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import lobsim
from lobsim.analysis.terms import format_term_sheet, term_sheet
from lobsim.cli.argtypes import check_scenarios, scenario_count, seed, thread_count
from lobsim.cli.baskets import add_price_parser, add_run_options, run_extras
from lobsim.cli.decisions import add_decision_parsers
from lobsim.cli.design import add_design_parser
from lobsim.cli.export import add_export_parser
from lobsim.cli.interrupt import INTERRUPTED, interrupted_line, quiet_interrupt
from lobsim.cli.output import check_output, write_netcdf
from lobsim.cli.overrides import add_set_option, config_of
from lobsim.cli.parameter_uncertainty import (
    add_parameter_uncertainty_option,
    check_parameter_uncertainty_args,
    run_with_parameter_uncertainty,
)
from lobsim.cli.realdata import add_realdata_parsers
from lobsim.cli.report import add_report_parser
from lobsim.cli.scale import (
    add_scale_options,
    check_scale_args,
    load_results,
    note_config,
    progress_bar,
    run_scaled,
    wants_scale,
)
from lobsim.cli.sweep import add_sweep_parser
from lobsim.errors import ConfigError, LobsimWarning, UsageError, format_warning
from lobsim.jsonio import dump as dump_json

if TYPE_CHECKING:  # a Dataset in signatures only: xarray loads when a command needs it
    import xarray as xr


def _cmd_terms(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    sheet = term_sheet(cfg)
    if args.json:
        dump_json(sheet.to_dict())
    else:
        print(format_term_sheet(sheet, cfg))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    # imported here, the summary's after the run: the first block comes sooner
    from lobsim.model.simulate import simulate

    check_scenarios(args.scenarios, "a run's summary")
    cfg = config_of(args)
    out = Path(args.out) if args.out else None
    check_scale_args(args, out)
    check_parameter_uncertainty_args(args, out)
    if out is not None:
        if out.suffix not in (".nc", ".zarr"):
            raise UsageError(f"--out {out}: results are written as netCDF (.nc) or zarr (.zarr)")
        # a store may exist: --resume finishes it, --force replaces it (lobsim.scale.store)
        check_output(out, "--out", force=args.force, folder=out.suffix == ".zarr")
    if args.parameter_uncertainty:  # two runs on common random numbers
        ds, summarized = run_with_parameter_uncertainty(args, cfg), args.stream
    elif wants_scale(args, out):  # --stream, --workers, --scheduler, --resume, .zarr
        ds, summarized = run_scaled(args, cfg, out)
    else:
        with progress_bar(args, cfg) as update:
            ds = simulate(cfg, scenarios=args.scenarios, seed=args.seed,
                          chunk_size=args.chunk_size, threads=args.threads, progress=update)
        summarized = False
    if out is not None and out.suffix == ".nc":
        write_netcdf(ds, out)
    if not args.quiet:
        from lobsim.analysis.power import noise_warning
        from lobsim.analysis.summary import format_summary, summarize

        s = ds if summarized else summarize(ds.load())
        print(format_summary(s))
        if (line := noise_warning(s)) is not None:  # one line; --quiet drops it
            print(f"lobsim: warning: {line}", file=sys.stderr)
        _print_parameter_uncertainty(ds)
        if not summarized:
            run_extras(args, cfg, ds)  # --importance-sampling, --contributions
        if out is not None:
            print(f"\nresults written to {out}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from lobsim.analysis.parameter_uncertainty import (
        has_parameter_uncertainty,
        parameter_uncertainty_dict,
        parameter_uncertainty_effect,
    )
    from lobsim.analysis.summary import format_summary, summarize, summary_dict
    from lobsim.scale.results import is_summary

    path = Path(args.results)
    ds = load_results(path, need=("investor_payment", "principal", "irr", "basket_payment"))
    note_config(ds, path)
    s = ds if is_summary(ds) else summarize(ds)  # a --stream run wrote its summary
    if args.json:
        doc = summary_dict(s)
        if has_parameter_uncertainty(ds):  # lobsim run --parameter-uncertainty
            doc["parameter_uncertainty"] = parameter_uncertainty_dict(
                parameter_uncertainty_effect(ds))
        dump_json(doc)
    else:
        print(format_summary(s))
        _print_parameter_uncertainty(ds)
    return 0


def _print_parameter_uncertainty(ds: xr.Dataset) -> None:
    """The table of what --parameter-uncertainty added, if the run had it."""
    from lobsim.analysis.parameter_uncertainty import (
        format_parameter_uncertainty,
        has_parameter_uncertainty,
        parameter_uncertainty_effect,
    )

    if has_parameter_uncertainty(ds):
        print("\n" + format_parameter_uncertainty(parameter_uncertainty_effect(ds)))


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line errors of the rest of the CLI (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lobsim`` command."""
    parser = _Parser(
        prog="lobsim",
        description="Monte Carlo risk engine for Local Outcome Bonds.",
    )
    parser.add_argument("--version", action="version", version=f"lobsim {lobsim.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    terms = sub.add_parser(
        "terms",
        help="print the term sheet of every bond at full target",
        description="Price per unit, principal, payoffs, break-even and who pays what.",
    )
    terms.add_argument("config", help="TOML configuration file")
    terms.add_argument("--json", action="store_true", help="print the stable JSON layout")
    add_set_option(terms)
    terms.set_defaults(func=_cmd_terms)

    run = sub.add_parser(
        "run",
        help="simulate a config and print its summary",
        description="Monte Carlo simulation of every bond, basket and department.",
    )
    run.add_argument("config", help="TOML configuration file")
    run.add_argument("--scenarios", type=scenario_count, help="number of scenarios (default: config)")
    run.add_argument("--seed", type=seed, help="random seed (default: config)")
    run.add_argument("--out", help="write the results to this netCDF file (.nc, at the end) or "
                                   "zarr store (.zarr, as blocks finish; resumable)")
    run.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    run.add_argument("--chunk-size", type=scenario_count,
                     help="scenarios per task, rounded up to whole blocks; never changes results")
    run.add_argument("--threads", type=thread_count, help="worker threads (default: all CPUs)")
    run.add_argument("--quiet", action="store_true", help="print nothing (and no progress bar)")
    add_set_option(run)
    add_run_options(run)
    add_scale_options(run)  # --stream, --workers, --scheduler, --resume (lobsim.cli.scale)
    add_parameter_uncertainty_option(run)  # lobsim.cli.parameter_uncertainty
    run.set_defaults(func=_cmd_run)

    summary = sub.add_parser("summary", help="summarise a results file written by 'run --out'")
    summary.add_argument("results", help="results file (.nc) or store (.zarr)")
    summary.add_argument("--json", action="store_true", help="print the stable JSON layout")
    summary.set_defaults(func=_cmd_summary)

    add_price_parser(sub)  # lobsim price (lobsim.cli.baskets)
    add_realdata_parsers(sub)  # lobsim calibrate, lobsim backtest (lobsim.cli.realdata)
    add_decision_parsers(sub)  # lobsim maturity, lobsim setaside (lobsim.cli.decisions)
    add_report_parser(sub)  # lobsim report (lobsim.cli.report)
    add_sweep_parser(sub)  # lobsim sweep (lobsim.cli.sweep)
    add_design_parser(sub)  # lobsim design (lobsim.cli.design)
    add_export_parser(sub)  # lobsim export (lobsim.cli.export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = format_warning  # one line each, as errors are
    try:
        with quiet_interrupt(), warnings.catch_warnings():
            if getattr(args, "quiet", False):  # --quiet: no warnings either
                warnings.simplefilter("ignore", LobsimWarning)
            status: int = args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback
        print(interrupted_line(parser, args), file=sys.stderr)
        return INTERRUPTED
    except (ConfigError, UsageError) as exc:
        print(f"lobsim: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    return status


