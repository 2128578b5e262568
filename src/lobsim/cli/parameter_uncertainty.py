"""``lobsim run --parameter-uncertainty``: the option, its usage errors and its two runs.

The run with the option is the run of the drawn parameters
(:mod:`lobsim.validation.parameter_draws`), with the default of the same
scenarios at the estimated parameters beside it (common random numbers), so
that :mod:`lobsim.analysis.parameter_uncertainty` can say what the
uncertainty adds; with ``--stream``, both runs' summaries and each block's
default counts.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lobsim.errors import UsageError
from lobsim.model.config import Config

if TYPE_CHECKING:
    import xarray as xr


def add_parameter_uncertainty_option(run: argparse.ArgumentParser) -> None:
    """The ``--parameter-uncertainty`` option of ``lobsim run``."""
    run.add_argument("--parameter-uncertainty", action="store_true",
                     help="each block of scenarios draws the process parameters and base state "
                          "from their calibration's sampling distribution; the summary shows "
                          "what this adds to each bond's P(default) (docs/real_data.md)")


def check_parameter_uncertainty_args(args: argparse.Namespace, out: Path | None) -> None:
    """Usage errors of ``--parameter-uncertainty`` with options it does not combine with."""
    if not getattr(args, "parameter_uncertainty", False):
        return
    for flag, on in (("--resume", args.resume),
                     ("--importance-sampling", args.importance_sampling),
                     ("--contributions", args.contributions),
                     ("--out PATH.zarr", out is not None and out.suffix == ".zarr")):
        if on:
            raise UsageError(f"--parameter-uncertainty is not supported with {flag}: it "
                             "compares two plain runs held in memory, not a store (use --out "
                             "PATH.nc)")


def run_with_parameter_uncertainty(args: argparse.Namespace, cfg: Config) -> xr.Dataset:
    """The run at drawn parameters, with ``default_fixed_parameters`` and the draws.

    With ``--stream``, the two runs' summaries, keeping each block's default
    counts (what the comparison needs of the scenarios).
    """
    from lobsim.cli.scale import progress_factory
    from lobsim.scale.runner import run
    from lobsim.validation.parameter_draws import BlockDrawer

    drawer = BlockDrawer()
    common = {"scenarios": args.scenarios, "seed": args.seed, "chunk_size": args.chunk_size,
              "threads": args.threads, "workers": args.workers, "scheduler": args.scheduler,
              "progress": progress_factory(args.quiet), "stream": args.stream,
              "block_defaults": args.stream}
    try:
        fixed = run(cfg, **common)
        ds = run(cfg, **common, block_worlds=drawer)
    except ConnectionError as exc:
        raise UsageError(str(exc)) from None
    return drawer.result(ds, fixed)
