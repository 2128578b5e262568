"""Command-line piece for ``lobsim report``: figures and an HTML page of a saved run.

Kept apart from :mod:`lobsim.cli.commands` so that the main parser only gains one
call; it only parses arguments, finds the config and calls
:func:`lobsim.report.html.write_report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lobsim.cli.output import check_output
from lobsim.cli.overrides import add_set_option, config_of
from lobsim.cli.scale import note, recorded_config
from lobsim.errors import UsageError
from lobsim.model.config import Config

if TYPE_CHECKING:  # a Dataset in signatures only: xarray loads when a command needs it
    import xarray as xr


def add_report_parser(sub: Any) -> None:
    """The ``report`` subcommand."""
    report = sub.add_parser(
        "report",
        help="write PNG figures and a self-contained HTML risk report of a saved run",
        description="Figures (return distributions, default probabilities, department fan "
                    "charts, control-group fits, tranche losses, risk contributions), key "
                    "tables, the config and the run's provenance, as PNGs and one HTML page "
                    "with everything embedded.",
    )
    report.add_argument("results", help="results file (.nc) or store (.zarr) of 'lobsim run'")
    report.add_argument("--out", required=True, metavar="DIR",
                        help="directory for report.html and the PNGs (created if missing)")
    report.add_argument("--config", help="the run's config (default: the file recorded in the "
                                         "results, if it is still there and unchanged)")
    report.add_argument("--force", action="store_true", help="overwrite an existing report in DIR")
    add_set_option(report, help="with --config: the --set overrides the run was made with "
                                "(default: those the results record)")
    report.set_defaults(func=cmd_report)


def _load_results(path: Path) -> xr.Dataset:
    from lobsim.cli.scale import load_results
    from lobsim.report.html import REQUIRED

    ds = load_results(path, need=REQUIRED, purpose="a report is drawn from")
    if "config_hash" not in ds.attrs:
        raise UsageError(f"{path}: not a lobsim results file (no config_hash attribute)")
    return ds


def _find_config(args: argparse.Namespace, ds: xr.Dataset, path: Path) -> Config:
    if args.config is None:
        if args.overrides:
            raise UsageError("--set needs --config: without it the config and its overrides "
                             "are those the results record")
        found, problem = recorded_config(ds, path)
        if found is None:
            raise UsageError(f"{problem}; pass --config CONFIG")
        note(problem)  # moved, found by its hash
        return found
    cfg = config_of(args)
    if cfg.hash != str(ds.attrs["config_hash"]):
        raise UsageError(f"{cfg.source} is not the config of {path} (config hash differs): "
                         "pass the config the run was made with (and its --set overrides)")
    return cfg


def cmd_report(args: argparse.Namespace) -> int:
    """``lobsim report``."""
    from lobsim.report.html import FIGURE_NAMES, HTML_NAME, write_report

    path = Path(args.results)
    out = Path(args.out)
    check_output(out, "--out", folder=True)
    names = (HTML_NAME, *(f"{f}.png" for f in FIGURE_NAMES))
    for name in names:
        check_output(out / name, "--out", force=args.force)
    existing = [out / n for n in names if (out / n).exists()]
    ds = _load_results(path)
    cfg = _find_config(args, ds, path)
    if args.force:  # a figure the new run does not make must not linger from the old one
        for old in existing:
            old.unlink()
    files = write_report(ds, cfg, out, results_name=str(path))
    for f in files:
        print(f"wrote {f}")
    return 0
