"""Scenario blocks: the random stream of each block and the kernel run over many blocks.

Block ``i`` of a run with seed ``s`` draws from ``block_generator(s, i)``
whatever runs it (threads here, tasks of :mod:`lobsim.scale.runner`), so
results are bit-identical for any thread count or chunking (docs/model.md
section 9.4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from lobsim.kernels.engine import simulate_block

if TYPE_CHECKING:  # the world imports this module: its screening run simulates blocks
    from lobsim.model.world import World


def block_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of scenario block ``block`` (independent of workers)."""
    return np.random.Generator(np.random.SFC64(np.random.SeedSequence(seed, spawn_key=(block,))))


def allocate_outputs(world: World, n: int) -> dict[str, np.ndarray]:
    """Fresh output arrays of the kernel for ``n`` scenarios of ``world``, by name."""
    n_b = len(world.bonds)
    shape_d = (n, len(world.departments), world.years.size)
    out: dict[str, np.ndarray] = {name: np.empty((n, n_b)) for name in (
        "true_units", "measured_units", "prediction_error", "paid_units", "investor_payment",
        "overpayment", "irr")}
    out["default"] = np.empty((n, n_b), np.bool_)
    out["total_loss"] = np.empty((n, n_b), np.bool_)
    out["department_payment"] = np.empty(shape_d)
    out["department_saving"] = np.empty(shape_d)
    out["basket_payment"] = np.empty((n, len(world.baskets)))
    out["basket_irr"] = np.empty((n, len(world.baskets)))
    out["basket_cashflow"] = np.empty((n, len(world.baskets), world.times.size))
    out["log_weight"] = np.empty(n)
    out["dated_payment"] = np.empty((n, world.slot_bond.size))
    return out


#: The kernel's output arrays, in the order :func:`simulate_block` takes them.
OUTPUTS = ("true_units", "measured_units", "prediction_error", "paid_units", "investor_payment", "overpayment", "irr",
          "default", "total_loss", "department_payment", "department_saving", "basket_payment",
          "basket_irr", "basket_cashflow", "log_weight", "dated_payment")


def run_blocks(world: World, scenarios: int, seed: int, block_size: int,
               chunk_size: int | None = None, threads: int | None = None,
               progress: Callable[[int], Any] | None = None) -> dict[str, np.ndarray]:
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
    """
    out = allocate_outputs(world, scenarios)
    n_blocks = math.ceil(scenarios / block_size)
    per_task = max(1, math.ceil((chunk_size or block_size) / block_size))
    tasks = [range(i, min(i + per_task, n_blocks)) for i in range(0, n_blocks, per_task)]

    def run(blocks: range) -> None:
        for blk in blocks:
            lo = blk * block_size
            hi = min(lo + block_size, scenarios)
            views = [out[name][lo:hi] for name in OUTPUTS]
            simulate_block(block_generator(seed, blk), hi - lo, *world.kernel_args, *views)
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
