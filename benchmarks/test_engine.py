"""Engine throughput against its RNG floor and a plain-numpy reference (model.md §10).

Per config (the 60-bond basket demo and the one-bond Birmingham bond), in
one run: the engine as a user calls it (``run_blocks``, fresh outputs) on 1
and 2 threads; the production kernel (whatever ``simulate_rows`` runs) alone
on reused outputs on 1 and 2 threads, and the reference kernel
(``lobsim.kernels.engine.simulate_block``) on 1; the
allocation and first touch of fresh outputs alone; the RNG floor (exactly
the engine's draws with the same generator in a numba loop); the reference
model stepping every month and every year. ``report.py`` forms the ratios.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from harness import (
    ROOT,
    SEED,
    kernel_on_reused_outputs,
    reference_rows,
    rng_floor,
    run_floor,
    system_seconds,
    touched_outputs,
)
from lobsim import Config, load_config
from lobsim.model.blocks import allocate_outputs, block_generator, run_blocks
from lobsim.model.world import World, build_world
from reference_numpy import simulate_reference

CONFIGS = {"basket_demo": "configs/basket_demo_noisy.toml",
           "birmingham_jsa": "configs/birmingham_jsa.toml"}


@dataclass
class Case:
    name: str
    cfg: Config
    world: World
    scenarios: int
    block_size: int

    def info(self, **extra: Any) -> dict[str, Any]:
        return {"config": self.name, "scenarios": self.scenarios,
                "bonds": len(self.world.bonds), "normals": self.world.n_normals,
                "exponentials": self.world.n_exponentials, **extra}


@pytest.fixture(scope="module", params=list(CONFIGS))
def case(request: pytest.FixtureRequest, sizes: Any) -> Case:
    cfg = load_config(ROOT / CONFIGS[request.param])
    world = build_world(cfg)
    bs = cfg.simulation.block_size
    n = sizes.blocks * bs if len(world.bonds) > 1 else sizes.bham_scenarios
    # warm: JIT (cache load or compile), the thread pool, the floor, the reference
    run_blocks(world, 2 * bs, SEED, bs, threads=2)
    reference_rows(world, block_generator(SEED, 0), allocate_outputs(world, 4))
    rng_floor(block_generator(SEED, 0), 4, 3, 1)
    simulate_reference(cfg, 16, SEED, period="year", world=world)
    return Case(request.param, cfg, world, n, bs)


def timed(benchmark: Any, fn: Any, rounds: int, info: dict[str, Any]) -> None:
    """Best of ``rounds``; also the system CPU seconds per round (page faults)."""
    s0 = system_seconds()
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(info, system_seconds=(system_seconds() - s0) / rounds)


@pytest.mark.parametrize("threads", [1, 2])
def test_engine(benchmark: Any, case: Case, sizes: Any, threads: int) -> None:
    benchmark.group = f"engine {case.name}"
    timed(benchmark, lambda: run_blocks(case.world, case.scenarios, SEED, case.block_size,
                                        threads=threads),
          sizes.rounds, case.info(kind="engine", threads=threads))


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_reused_outputs(benchmark: Any, case: Case, sizes: Any, threads: int) -> None:
    """The production kernel: whatever ``simulate_rows`` runs."""
    benchmark.group = f"engine {case.name}"
    run = kernel_on_reused_outputs(case.world, case.scenarios, case.block_size)
    timed(benchmark, lambda: run(SEED, threads), sizes.rounds,
          case.info(kind="kernel", threads=threads))


def test_reference_kernel_reused_outputs(benchmark: Any, case: Case, sizes: Any) -> None:
    """The reference twin, ``lobsim.kernels.engine.simulate_block``, 1 thread."""
    benchmark.group = f"engine {case.name}"
    run = kernel_on_reused_outputs(case.world, case.scenarios, case.block_size, "reference")
    timed(benchmark, lambda: run(SEED, 1), sizes.rounds,
          case.info(kind="kernel_reference", threads=1))


def test_fresh_outputs(benchmark: Any, case: Case, sizes: Any) -> None:
    benchmark.group = f"engine {case.name}"
    timed(benchmark, lambda: touched_outputs(case.world, case.scenarios), sizes.rounds,
          case.info(kind="outputs", threads=1))


def test_rng_floor(benchmark: Any, case: Case, sizes: Any) -> None:
    benchmark.group = f"engine {case.name}"
    timed(benchmark, lambda: run_floor(case.world, case.scenarios, SEED, case.block_size),
          sizes.rounds, case.info(kind="floor", threads=1))


@pytest.mark.parametrize("period", ["month", "year"])
def test_reference(benchmark: Any, case: Case, sizes: Any, period: str) -> None:
    benchmark.group = f"engine {case.name}"
    n = (sizes.ref_month if period == "month" else sizes.ref_year)[case.name != "basket_demo"]
    timed(benchmark, lambda: simulate_reference(case.cfg, n, SEED, period=period,
                                                world=case.world),
          1, {**case.info(kind=f"reference_{period}", threads=1), "scenarios": n})
