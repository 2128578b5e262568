"""Parallel runs: a warm local Dask cluster of 1 and of 2 workers, and the
bit-identity promise across threads, chunk sizes and workers (issue 16).

Warm: the cluster started, the world shared and every kernel loaded on every
worker by a first run before the timed one. The runs are streamed
(``lobsim.scale.runner.run(..., stream=True)``, what ``lobsim run --stream
--workers N`` does) and include the client's serial work of a run (the
screening run of the risk-band basket, the template, the final summary).

The identity checks are cheap (a few blocks and a partial one) and compare
every bit: the kernel's outputs of ``run_blocks`` on 1 and 2 threads and
two chunk sizes; streamed summaries on 1 and 2 threads and two chunk sizes;
and the 1- and 2-worker Dask summaries of the timed runs against a threaded
run of the same scenarios.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from harness import ROOT, SEED, datasets_equal, outputs_equal
from lobsim import load_config
from lobsim.model.blocks import run_blocks
from lobsim.model.world import build_world
from lobsim.scale.cluster import DaskExecutor
from lobsim.scale.runner import run

DEMO = "configs/basket_demo_noisy.toml"


def test_dask_workers(benchmark: Any, sizes: Any) -> None:
    benchmark.group = "parallel"
    cfg = load_config(ROOT / DEMO)
    bs = cfg.simulation.block_size
    n = sizes.dask_blocks * bs
    seconds: dict[str, float] = {}
    summaries = {}

    def measure() -> None:
        for workers in (1, 2):
            ex = DaskExecutor.local(workers)
            try:
                run(cfg, scenarios=2 * bs * workers, seed=SEED, stream=True, executor=ex)
                best = float("inf")
                for _ in range(1 if sizes.quick else 2):
                    t = time.perf_counter()
                    summaries[workers] = run(cfg, scenarios=n, seed=SEED, stream=True,
                                             executor=ex)
                    best = min(best, time.perf_counter() - t)
                seconds[str(workers)] = best
            finally:
                ex.close()

    benchmark.pedantic(measure, rounds=1, iterations=1)
    threaded = run(cfg, scenarios=n, seed=SEED, stream=True, threads=2)
    benchmark.extra_info.update(
        kind="dask", scenarios=n, seconds=seconds,
        identical_workers=datasets_equal(summaries[1], summaries[2])
        and datasets_equal(summaries[1], threaded))


def test_bit_identity(benchmark: Any, sizes: Any) -> None:
    benchmark.group = "parallel"
    cfg = load_config(ROOT / DEMO)
    world = build_world(cfg)
    bs = cfg.simulation.block_size
    n = sizes.identity_scenarios
    result: dict[str, bool] = {}

    def check() -> None:
        one = run_blocks(world, n, SEED, bs, threads=1)
        result["kernel: threads 1 / 2"] = outputs_equal(
            one, run_blocks(world, n, SEED, bs, threads=2))
        result["kernel: chunk sizes 1 / 3 blocks"] = outputs_equal(
            one, run_blocks(world, n, SEED, bs, chunk_size=3 * bs, threads=2))
        s1 = run(cfg, scenarios=n, seed=SEED, stream=True, threads=1, chunk_size=bs)
        result["stream: threads 1 / 2"] = datasets_equal(
            s1, run(cfg, scenarios=n, seed=SEED, stream=True, threads=2, chunk_size=bs))
        result["stream: chunk sizes 1 / 3 blocks"] = datasets_equal(
            s1, run(cfg, scenarios=n, seed=SEED, stream=True, threads=2, chunk_size=3 * bs))

    benchmark.pedantic(check, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="identity", scenarios=n, checks=result)


@pytest.fixture(autouse=True)
def _quiet_dask_logs() -> None:
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
