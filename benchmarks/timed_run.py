"""Run one ``lobsim`` command line in this process and say when its blocks ran.

Usage (``harness.timed_lobsim`` calls it in a fresh process)::

    python benchmarks/timed_run.py REPORT.json run configs/basket_demo.toml --stream ...

The CLI has no hook that marks its first scenario block, so this wraps
``lobsim.model.blocks.simulate_rows`` (every block of a run goes through it,
whichever kernel it calls) in each ``lobsim`` module that imported it, and
notes ``time.monotonic()`` (system-wide on Linux, so the parent can subtract
its own spawn time) at the start of the run's first block and the end of its
last. A risk-band basket's screening run (``lobsim.model.world.run_blocks``,
the only caller there) happens before the run's own blocks and is start-up:
its blocks are not counted as the run's, its time is noted on its own, as
are the imports and the run's own ``build_world`` calls.

Importing ``lobsim.scale.runner`` and ``lobsim.model.simulate`` up front (to
wrap their names) moves their import before the CLI's own lazy one; both are
imported before any block either way, so the start-up time is the same.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

T_CHILD = time.monotonic()


def _wrap(marks: dict[str, Any]) -> None:
    import lobsim.cli.commands  # imported here so that its names are wrapped too
    import lobsim.model.blocks as blocks
    import lobsim.model.simulate
    import lobsim.model.world as world_mod
    import lobsim.scale.runner  # noqa: F401

    rows: Callable[..., None] = blocks.simulate_rows
    screen: Callable[..., Any] = world_mod.run_blocks
    lock = threading.Lock()
    screening = [0]  # > 0 while the screening run runs (its blocks are on other threads)

    def simulate_rows(*args: Any, **kwargs: Any) -> None:
        t0 = time.monotonic()
        rows(*args, **kwargs)
        t1 = time.monotonic()
        if screening[0]:
            return
        with lock:
            if marks["first_block"] is None or t0 < marks["first_block"]:
                marks["first_block"] = t0
            marks["last_block_end"] = max(marks["last_block_end"] or t1, t1)
            marks["blocks"] += 1
            marks["kernel_thread_seconds"] += t1 - t0

    def run_screening(*args: Any, **kwargs: Any) -> Any:
        screening[0] += 1
        t0 = time.monotonic()
        try:
            return screen(*args, **kwargs)
        finally:
            marks["screening_seconds"] += time.monotonic() - t0
            screening[0] -= 1

    build: Callable[..., Any] = world_mod.build_world

    def build_world(*args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic()
        try:
            return build(*args, **kwargs)
        finally:
            marks["world_seconds"] += time.monotonic() - t0

    for name, mod in list(sys.modules.items()):
        if not name.startswith("lobsim"):
            continue
        if getattr(mod, "simulate_rows", None) is rows:
            mod.simulate_rows = simulate_rows  # type: ignore[attr-defined]
        # the run's own worlds; the screening run's (inside lobsim.model.world) is screening
        if mod is not world_mod and getattr(mod, "build_world", None) is build:
            mod.build_world = build_world  # type: ignore[attr-defined]
    world_mod.run_blocks = run_screening
    marks["imported"] = time.monotonic()


def main(argv: list[str]) -> int:
    report, args = argv[0], argv[1:]
    marks: dict[str, Any] = {"child_start": T_CHILD, "first_block": None,
                             "last_block_end": None, "blocks": 0,
                             "kernel_thread_seconds": 0.0, "screening_seconds": 0.0,
                             "world_seconds": 0.0}
    _wrap(marks)
    from lobsim.cli.commands import main as lobsim_main

    code = lobsim_main(args)
    marks["end"] = time.monotonic()
    marks["exit_status"] = code
    marks["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open(report, "w", encoding="utf-8") as f:
        json.dump(marks, f)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
