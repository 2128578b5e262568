"""What the commands that run a config many times share (``lobsim sweep``,
``lobsim design``, ``lobsim maturity``): their run and output options, and the
PNG their picture goes to, checked before anything runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lobsim.cli.argtypes import scenario_count, seed, thread_count
from lobsim.cli.output import check_output
from lobsim.errors import UsageError


def add_run_options(p: Any, *, each: str) -> None:
    """``--scenarios``, ``--seed``, ``--threads`` of every run (``each``: "point", "design")."""
    p.add_argument("--scenarios", type=scenario_count,
                   help=f"scenarios per {each} (default: config)")
    p.add_argument("--seed", type=seed, help=f"random seed of every {each} (default: config)")
    p.add_argument("--threads", type=thread_count, help="worker threads (default: all CPUs)")


def add_output_options(p: Any, *, picture: str, default: str, schema: str) -> None:
    """``--plot``/``--no-plot``/``--force``/``--json``; ``picture`` is what the PNG shows."""
    p.add_argument("--plot", metavar="FILE.png",
                   help=f"plot {picture} to this PNG file (default: {default}, none with --json)")
    p.add_argument("--no-plot", action="store_true", help="do not plot")
    p.add_argument("--force", action="store_true", help="overwrite an existing plot file")
    p.add_argument("--json", action="store_true", help=f"print JSON ({schema})")


def chosen_plot(args: argparse.Namespace, default: str, picture: str) -> Path | None:
    """The PNG of :func:`add_output_options`' options (None: no picture), checked."""
    if args.plot and args.no_plot:
        raise UsageError("--plot and --no-plot: give one")
    name = None if args.no_plot else args.plot or (None if args.json else default)
    return png_target(name, picture, force=args.force)


def png_target(name: str | None, picture: str, *, force: bool) -> Path | None:
    """``--plot NAME`` as a path that may be written (None if not given)."""
    if not name:
        return None
    plot = Path(name)
    if plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: {picture} is plotted as PNG; use a .png path")
    check_output(plot, "--plot", force=force)
    return plot


def write_plot(fig: Any, plot: Path) -> None:
    """Save ``fig`` to ``plot``; a path that cannot be written is the CLI's one line."""
    from lobsim.report.plot import save

    try:
        plot.parent.mkdir(parents=True, exist_ok=True)
        save(fig, plot, dpi=120)
    except OSError as exc:
        raise UsageError(f"--plot {plot}: cannot write it ({exc.strerror or exc})") from None
