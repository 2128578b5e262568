"""numba's on-disk cache under pytest-xdist: a locked index, and a warm-up before the workers.

Used by tests/conftest.py; also a script, one warm-up part per process::

    python tests/numba_cache.py chunked|engine

A clean clone has an empty cache (``__pycache__/*.nbi``, ``*.nbc`` beside each kernel).
Without a warm-up, every xdist worker (and every ``lobsim`` subprocess a test
starts) compiles the same kernels at once: the same minute of work on each core.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Warm-up parts, each run in a process of its own (in parallel): the production
#: kernel with the streamed reductions, and the scalar reference kernel.
PARTS = ("chunked", "engine")


def lock_index() -> None:
    """Make numba's cache-index updates atomic across processes.

    ``IndexDataCacheFile.save`` reads the index, takes the first data file name
    it does not list and writes the index back: two processes saving different
    signatures of one function at once can both take ``f.1.nbc``, and the index
    then names the other signature's machine code (a crash, or wrong numbers, on
    the next load). An exclusive ``flock`` beside the index around each save
    makes the read-and-write one step; compiling itself stays parallel.
    """
    from numba.core import caching

    save = caching.IndexDataCacheFile.save
    if getattr(save, "locked", False):
        return

    def locked(self: Any, key: Any, data: Any) -> None:
        with open(f"{self._index_path}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            save(self, key, data)

    locked.locked = True  # type: ignore[attr-defined]
    caching.IndexDataCacheFile.save = locked


def warm(part: str) -> None:
    """Compile (or load) the kernels of ``part`` for the signatures the suite uses most."""
    from lobsim import load_config

    cfg = load_config(ROOT / "configs" / "basket_demo.toml")  # tranches, holdings, dates
    if part == "chunked":
        from lobsim import simulate, summarize
        from lobsim.scale.runner import run

        summarize(simulate(cfg, scenarios=64))
        run(cfg, scenarios=300, stream=True, threads=1)
    elif part == "engine":
        from lobsim.kernels import engine
        from lobsim.model.blocks import allocate_outputs, block_generator
        from lobsim.model.world import build_world

        world = build_world(cfg)
        engine.simulate_block(block_generator(1, 0), 4, *world.arrays, allocate_outputs(world, 4))
    else:
        raise SystemExit(f"numba_cache.py: unknown part {part!r}; use one of {', '.join(PARTS)}")


def warm_in_parallel() -> str | None:
    """Run every part in its own process, at once; None, or what failed (stderr's tail)."""
    procs = [subprocess.Popen([sys.executable, __file__, part], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for part in PARTS]
    failed = [f"{part}: {err[-2000:]}" for part, p in zip(PARTS, procs, strict=True)
              for _, err in [p.communicate()] if p.returncode != 0]
    return "\n".join(failed) or None


if __name__ == "__main__":
    lock_index()
    for name in sys.argv[1:]:
        warm(name)
