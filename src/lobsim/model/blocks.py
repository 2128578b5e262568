"""Scenario blocks: the random stream of each block and the kernel run over many blocks.

Block ``i`` of a run with seed ``s`` draws from ``block_generator(s, i)``
whatever runs it (threads here, tasks of :mod:`lobsim.scale.runner`), so
results are bit-identical for any thread count or chunking (docs/model.md
section 9.4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from lobsim.kernels.chunked import simulate_block
from lobsim.kernels.contract import Outputs

if TYPE_CHECKING:  # the world imports this module: its screening run simulates blocks
    from lobsim.model.world import World


def block_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of scenario block ``block`` (independent of workers)."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(block,))))


def allocate_outputs(world: World, n: int) -> Outputs:
    """Fresh output arrays of the kernel for ``n`` scenarios of ``world``."""
    n_b = len(world.bonds)
    n_k = len(world.baskets)
    shape_d = (n, len(world.departments), world.years.size)
    return Outputs(
        true_units=np.empty((n, n_b)),
        measured_units=np.empty((n, n_b)),
        prediction_error=np.empty((n, n_b)),
        paid_units=np.empty((n, n_b)),
        investor_payment=np.empty((n, n_b)),
        overpayment=np.empty((n, n_b)),
        irr=np.empty((n, n_b)),
        default=np.empty((n, n_b), np.bool_),
        total_loss=np.empty((n, n_b), np.bool_),
        department_payment=np.empty(shape_d),
        department_saving=np.empty(shape_d),
        basket_payment=np.empty((n, n_k)),
        basket_irr=np.empty((n, n_k)),
        basket_cashflow=np.empty((n, n_k, world.times.size)),
        log_weight=np.empty(n),
        dated_payment=np.empty((n, world.slot_bond.size)),
    )


def output_rows(out: Outputs, lo: int, hi: int) -> Outputs:
    """Rows ``lo..hi-1`` of every output (views: the kernel writes through them)."""
    return Outputs(*(a[lo:hi] for a in out))


def simulate_rows(world: World, gen: np.random.Generator, out: Outputs) -> None:
    """Simulate ``len(out.irr)`` scenarios of ``world`` from ``gen`` into ``out``.

    The production kernel is the chunked one (:mod:`lobsim.kernels.chunked`);
    :mod:`lobsim.kernels.engine` is its scalar reference twin
    (tests/test_kernel_v2.py).
    """
    simulate_block(gen, out.irr.shape[0], *world.arrays, out)


def run_blocks(world: World, scenarios: int, seed: int, block_size: int,
               chunk_size: int | None = None, threads: int | None = None,
               progress: Callable[[int], Any] | None = None,
               block_worlds: Sequence[World] | None = None) -> Outputs:
    """Simulate ``scenarios`` scenarios of ``world`` into fresh output arrays.

    Parameters
    ----------
    world : World
    scenarios, seed, block_size : int
        The random streams are fixed by ``seed`` and ``block_size``.
    chunk_size : int, optional
        Scenarios per task, rounded up to whole blocks (memory and
        scheduling only; it never changes the results).
    threads : int, optional
        Worker threads; default: the CPUs available.
    progress : callable, optional
        Called with the number of scenarios of each finished block (from
        the worker threads; a progress bar's ``update``).
    block_worlds : sequence of World, optional
        The world of each block when they differ (parameter uncertainty,
        :mod:`lobsim.validation.parameter_draws`); ``world`` sizes the outputs.
    """
    out = allocate_outputs(world, scenarios)
    n_blocks = math.ceil(scenarios / block_size)
    per_task = max(1, math.ceil((chunk_size or block_size) / block_size))
    tasks = [range(i, min(i + per_task, n_blocks)) for i in range(0, n_blocks, per_task)]

    def run(blocks: range) -> None:
        for blk in blocks:
            lo = blk * block_size
            hi = min(lo + block_size, scenarios)
            simulate_rows(world if block_worlds is None else block_worlds[blk],
                          block_generator(seed, blk), output_rows(out, lo, hi))
            if progress is not None:
                progress(hi - lo)

    threads = threads or len(os.sched_getaffinity(0))
    if threads == 1 or len(tasks) == 1:
        for task in tasks:
            run(task)
    else:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, tasks))
    return out
