"""How cost grows: time against scenarios, bonds, donors per bond and
measurement dates (1 thread, fresh outputs, the basket demo's world and
variants of it); peak memory against scenarios for full and streaming runs.
(A first process's start on an empty numba cache: ``test_end_to_end.py``.)
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from harness import SEED, lobsim_cmd, peak_rss_mib, variant_config
from lobsim.model.blocks import run_blocks
from lobsim.model.world import World, build_world

DEMO = "configs/basket_demo_noisy.toml"
BLOCK = 4096
AXES = {
    "scenarios": (1, 2, 4, 8),  # in blocks of 4,096
    "bonds": (8, 15, 30, 60),
    "donors": (2, 5, 10, 20),
    "dates": (1, 2, 4, 8),
}


@functools.cache
def world(axis: str, x: int) -> World:
    return build_world(variant_config(DEMO, **{axis: x}))


def run_timed(benchmark: Any, w: World, scenarios: int, rounds: int, **info: Any) -> None:
    run_blocks(w, BLOCK, SEED, BLOCK, threads=1)  # warm (a new world may need no compile)
    benchmark.pedantic(lambda: run_blocks(w, scenarios, SEED, BLOCK, threads=1),
                       rounds=max(2, rounds - 1), iterations=1)
    benchmark.extra_info.update(scenarios=scenarios, bonds=len(w.bonds), normals=w.n_normals,
                                exponentials=w.n_exponentials, **info)


@pytest.mark.parametrize(("axis", "x"), [(a, x) for a, xs in AXES.items() for x in xs])
def test_scaling(benchmark: Any, sizes: Any, axis: str, x: int) -> None:
    benchmark.group = f"scaling: {axis}"
    if axis == "scenarios":
        run_timed(benchmark, world("bonds", 60), x * BLOCK, sizes.rounds, axis=axis,
                  x=x * BLOCK)
    else:
        run_timed(benchmark, world(axis, x), sizes.axis_blocks * BLOCK, sizes.rounds,
                  axis=axis, x=x)


@pytest.mark.parametrize("mode", ["full", "stream"])
def test_peak_memory(benchmark: Any, sizes: Any, mode: str) -> None:
    """Peak RSS of ``lobsim run`` (a process per point) against scenarios."""
    benchmark.group = "memory"
    flags = ["--stream"] if mode == "stream" else []
    rss: dict[str, float] = {}

    def measure() -> None:
        for n in sizes.memory_scenarios:
            rss[str(n)] = peak_rss_mib(lobsim_cmd("run", DEMO, "--scenarios", str(n),
                                                  "--quiet", *flags))

    benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="memory", mode=mode, peak_rss_mib=rss)
