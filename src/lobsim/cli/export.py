"""Command-line piece for ``lobsim export``: a saved run's tidy tables as CSV files or a workbook.

Kept apart from :mod:`lobsim.cli.commands` so that the main parser only gains
one call; it only parses arguments, checks the outputs and calls
:func:`lobsim.analysis.tidy.build_tables` and :mod:`lobsim.report.workbook`
(docs/export.md).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lobsim.cli.output import check_output


def add_export_parser(sub: Any) -> None:
    """The ``export`` subcommand."""
    export = sub.add_parser(
        "export",
        help="write a saved run's tables as CSV files or one Excel workbook",
        description="Tidy tables of a saved run for a financial model's review: cash flows by "
                    "bond, department and year, the summary tables (as 'lobsim summary "
                    "--json'), set-asides, control groups and provenance (docs/export.md).",
    )
    export.add_argument("results", help="results file (.nc) or store (.zarr) of 'lobsim run'")
    export.add_argument("--to", required=True, metavar="DIR",
                        help="directory for the files (created if missing)")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", action="store_true", help="one CSV file per table")
    fmt.add_argument("--xlsx", action="store_true",
                     help="one workbook RESULTS-NAME.xlsx with a sheet per table")
    export.add_argument("--force", action="store_true", help="overwrite existing files in DIR")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """``lobsim export``."""
    from lobsim.analysis.tidy import TABLE_NAMES

    path = Path(args.results)
    folder = Path(args.to)
    names = [f"{n}.csv" for n in TABLE_NAMES] if args.csv else [f"{path.stem}.xlsx"]
    check_output(folder, "--to", folder=True)
    for name in names:
        check_output(folder / name, "--to", force=args.force)

    from lobsim.analysis.summary import summarize
    from lobsim.analysis.tidy import build_tables
    from lobsim.cli.scale import load_results, note_config
    from lobsim.report import workbook
    from lobsim.scale.results import is_summary

    # what the cash flows read (a --stream summary is checked against its own layout)
    ds = load_results(path, need=("pays_in_year", "dated_payment", "department_share",
                                  "department_premium", "paid_units", "investor_payment"))
    note_config(ds, path)
    summary = ds if is_summary(ds) else None
    tables = build_tables(summary if summary is not None else summarize(ds),
                          None if summary is not None else ds, source=str(path),
                          exported_at=datetime.now(UTC).isoformat(timespec="seconds"))
    if args.csv:
        written = workbook.write_csv(tables, folder)
    else:
        written = [workbook.write_xlsx(tables, folder / names[0])]
    for line in [f"{t.name}: {len(t.rows)} rows" + (f" ({t.missing})" if t.missing else "")
                 for t in tables]:
        print(line)
    print(f"\nwritten to {folder}: {', '.join(p.name for p in written)}")
    return 0
