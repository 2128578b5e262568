"""The ``lobsim`` command line: parses arguments and calls the Python API.

Every :class:`~lobsim.errors.ConfigError` becomes one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import lobsim
from lobsim.config import load_config
from lobsim.errors import ConfigError
from lobsim.terms import format_term_sheet, term_sheet


def _cmd_terms(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    sheet = term_sheet(cfg)
    if args.json:
        json.dump(sheet.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_term_sheet(sheet, cfg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lobsim`` command."""
    parser = argparse.ArgumentParser(
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
    terms.set_defaults(func=_cmd_terms)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.func(args)
    except ConfigError as exc:
        print(f"lobsim: error: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
