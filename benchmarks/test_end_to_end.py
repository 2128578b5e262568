"""A user's run end to end, against the RNG floor of its draws (issue 16).

Each ``lobsim run`` is a new process (``harness.timed_lobsim``), timed from
its spawn to its exit, with the start of its first block and the end of its
last noted, so start-up, the blocks and what follows them are reported
apart. The floor is the run's own draws (every block's normals and
exponentials, its generators) on the same threads (2). Also: peak RSS of a
long streamed run, and a first process on an empty numba cache against a
second one on it (warm start: spawn to the first block).

One round each (the runs are long; the floor is the best of three).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import pytest

from harness import ROOT, rng_floor, run_floor, timed_lobsim
from lobsim import load_config
from lobsim.model.blocks import block_generator
from lobsim.model.world import World, build_world

DEMO = "configs/basket_demo_noisy.toml"
THREADS = 2


@pytest.fixture(scope="module")
def demo() -> tuple[World, int, int]:
    cfg = load_config(ROOT / DEMO)
    world = build_world(cfg)
    rng_floor(block_generator(0, 0), 4, 3, 1)  # warm
    # warm the page cache and the JIT cache's files for the timed processes
    timed_lobsim("run", DEMO, "--scenarios", "4096", "--quiet", "--stream")
    return world, cfg.simulation.seed, cfg.simulation.block_size


def floor_seconds(world: World, n: int, seed: int, block_size: int, threads: int) -> float:
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        run_floor(world, n, seed, block_size, threads)
        best = min(best, time.perf_counter() - t)
    return best


@pytest.mark.parametrize("mode", ["stream", "full"])
def test_end_to_end(benchmark: Any, sizes: Any, demo: tuple[World, int, int], mode: str) -> None:
    benchmark.group = "end to end"
    world, seed, bs = demo
    n = sizes.e2e_stream if mode == "stream" else sizes.e2e_full
    flags = ["--stream"] if mode == "stream" else []
    marks: dict[str, float] = {}

    def measure() -> None:
        marks.update(timed_lobsim("run", DEMO, "--scenarios", str(n), "--quiet",
                                  "--threads", str(THREADS), *flags))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="end_to_end", mode=mode, scenarios=n, threads=THREADS,
                                floor_seconds=floor_seconds(world, n, seed, bs, THREADS),
                                draws=n * (world.n_normals + world.n_exponentials), **marks)


def test_streamed_peak_memory(benchmark: Any, sizes: Any, demo: tuple[World, int, int]) -> None:
    benchmark.group = "end to end"
    n = sizes.rss_stream
    marks: dict[str, float] = {}

    def measure() -> None:
        marks.update(timed_lobsim("run", DEMO, "--scenarios", str(n), "--quiet", "--stream"))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="stream_rss", scenarios=n, **marks)


def test_start_up(benchmark: Any, demo: tuple[World, int, int]) -> None:
    """A first process on an empty numba cache, then a second one on that cache."""
    benchmark.group = "start-up"
    args = ("run", DEMO, "--scenarios", "4096", "--quiet")
    marks: dict[str, dict[str, float]] = {}

    def measure() -> None:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            for label in ("cold", "warm"):
                marks[label] = timed_lobsim(*args, env=env)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="start_up", command="lobsim " + " ".join(args), **marks)
