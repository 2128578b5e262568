"""Command-line pieces for runs at scale: the scale options of ``lobsim run``.

``--stream``, ``--workers``, ``--scheduler``, ``--resume``, ``.zarr`` output
and the progress bar (docs/scale.md). Kept apart from :mod:`lobsim.cli.commands` so
that the main parser only gains a few calls; these functions only parse
arguments and call :func:`lobsim.scale.runner.run`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lobsim.cli.argtypes import non_negative_float, worker_count
from lobsim.errors import UsageError
from lobsim.model.config import Config

if TYPE_CHECKING:  # a Dataset in signatures only: xarray loads when a command needs it
    import xarray as xr


def add_scale_options(run: argparse.ArgumentParser) -> None:
    """Scale options of ``lobsim run``."""
    run.add_argument("--stream", action="store_true",
                     help="keep only mergeable statistics, never the per-scenario results "
                          "(memory does not grow with --scenarios); --out gets the summary")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--workers", type=worker_count, metavar="N",
                       help="run on a local Dask cluster of N worker processes")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of the scheduler at ADDRESS (tcp://host:port)")
    run.add_argument("--resume", action="store_true",
                     help="finish the run recorded in --out PATH.zarr (same config, seed and "
                          "scenarios), simulating only the blocks it lacks")
    run.add_argument("--checkpoint-interval", type=non_negative_float, default=30.0, metavar="SECONDS",
                     help="seconds between checkpoints of a --stream run in --out PATH.zarr "
                          "(default: 30)")


def wants_scale(args: argparse.Namespace, out: Path | None) -> bool:
    """Whether ``run`` goes through :func:`lobsim.scale.runner.run` (any scale option or .zarr)."""
    return bool(args.stream or args.workers or args.scheduler or args.resume
                or (out is not None and out.suffix == ".zarr"))


def check_scale_args(args: argparse.Namespace, out: Path | None) -> None:
    """Usage errors of the scale options, before anything runs."""
    if args.resume and (out is None or out.suffix != ".zarr"):
        raise UsageError("--resume needs --out PATH.zarr")
    if args.resume and args.force:
        raise UsageError("--resume and --force contradict each other")
    if args.stream and (getattr(args, "importance_sampling", False)
                        or getattr(args, "contributions", False)):
        raise UsageError("--importance-sampling and --contributions need the per-scenario "
                     "results: not with --stream")


def progress_factory(quiet: bool) -> Callable[..., Any] | None:
    """A tqdm bar factory on stderr, or None when quiet or not on a terminal."""
    if quiet or not (sys.stdout.isatty() and sys.stderr.isatty()):
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    def make(*, total: int, initial: int = 0, desc: str = "scenarios") -> Any:
        return tqdm(total=total, initial=initial, desc=desc, unit=" scenarios", unit_scale=True,
                    file=sys.stderr, dynamic_ncols=True, smoothing=0.05)

    return make


@contextmanager
def progress_bar(args: argparse.Namespace, cfg: Config) -> Iterator[Callable[[int], Any] | None]:
    """``update(scenarios)`` of a bar over the run's scenarios (None when there is none)."""
    make = progress_factory(args.quiet)
    if make is None:
        yield None
        return
    bar = make(total=args.scenarios or cfg.simulation.scenarios)
    try:
        yield bar.update
    finally:
        bar.close()


def run_scaled(args: argparse.Namespace, cfg: Config, out: Path | None) -> tuple[xr.Dataset, bool]:
    """Run with the scale options: ``(dataset, is_summary)``."""
    from lobsim.scale.results import is_summary
    from lobsim.scale.runner import run
    from lobsim.scale.store import StoreError

    try:
        ds = run(cfg, scenarios=args.scenarios, seed=args.seed, stream=args.stream,
                 out=out if out is not None and out.suffix == ".zarr" else None,
                 resume=args.resume, force=args.force, chunk_size=args.chunk_size,
                 threads=args.threads, workers=args.workers, scheduler=args.scheduler,
                 progress=progress_factory(args.quiet),
                 checkpoint_interval=args.checkpoint_interval)
    except (StoreError, ConnectionError) as exc:
        raise UsageError(str(exc)) from None
    return ds, is_summary(ds)


def load_results(path: Path, *, need: Iterable[str], purpose: str | None = None) -> xr.Dataset:
    """Results written by ``lobsim run --out`` (.nc or .zarr), checked, or a one-line error.

    ``need``: variables the caller reads. ``purpose``: what the caller needs
    per-scenario results for; None accepts a ``--stream`` run's summary too
    (:func:`lobsim.scale.results.open_results`).
    """
    from lobsim.scale.results import ResultsError, open_results

    try:
        return open_results(path, need=need, purpose=purpose)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None


def recorded_config(ds: xr.Dataset, results: Path) -> tuple[Config | None, str]:
    """The config ``results`` were simulated from, found by its recorded path and hash.

    Results record the config's absolute path (attrs ``config_path``) and
    hash; results written before that recorded only the path as typed
    (``config_source``), which is tried against the working directory and
    the results' folder. A file counts only if its hash is the recorded one.

    Returns
    -------
    (config, problem)
        The config (None if not found) and one line saying why not, or that
        it was found elsewhere than recorded ("" when all is well).
    """
    from lobsim.errors import ConfigError
    from lobsim.model.config import load_config

    want = str(ds.attrs.get("config_hash", ""))
    overrides = tuple(json.loads(str(ds.attrs.get("overrides", "[]"))))  # a run's --set
    typed = str(ds.attrs.get("config_source", ""))
    recorded = str(ds.attrs.get("config_path", "")) or typed
    candidates = [Path(recorded)] if recorded else []
    if typed and not Path(typed).is_absolute():
        candidates += [Path.cwd() / typed, results.resolve().parent / typed]
    problem = f"{results}: its config {recorded or '(unrecorded)'} is not there"
    for path in dict.fromkeys(c.resolve() for c in candidates if c.is_file()):
        try:
            cfg = load_config(path, overrides=overrides)
        except ConfigError as exc:
            problem = f"{results}: its config changed since the run and no longer loads ({exc})"
            continue
        if cfg.hash == want:
            moved = "config_path" in ds.attrs and path != Path(recorded)
            return cfg, (f"{results}: its config moved from {recorded} to {path} (same config "
                         "hash)") if moved else ""
        problem = f"{results}: its config {path} changed since the run (config hash differs)"
    return None, problem


def note(text: str) -> None:
    """One line on stderr that does not stop the command."""
    if text:
        print(f"lobsim: note: {text}", file=sys.stderr)


def note_config(ds: xr.Dataset, results: Path) -> None:
    """For readers that do not need the config (summary, setaside): say if it moved or changed."""
    if "config_hash" in ds.attrs:
        note(recorded_config(ds, results)[1])
