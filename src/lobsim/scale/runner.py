"""Run a simulation at scale: in tasks, on threads or Dask, streamed or stored, resumable.

:func:`run` is what ``lobsim run`` calls for ``--stream``, ``--workers``,
``--scheduler``, ``--resume`` and ``.zarr`` output (docs/scale.md). A task is
a group of scenario blocks; block ``i`` always draws from
``block_generator(seed, i)`` and is labelled by
:func:`lobsim.model.simulate.finish_run` exactly as the rows of a whole run, so the
results are bit-identical to :func:`lobsim.simulate` whatever the executor,
the task size or the order in which tasks finish:

* *full* runs return (or store, block by block) the per-scenario Dataset;
* *streaming* runs reduce every block at once, straight from the kernel's
  outputs (:class:`~lobsim.scale.block_series.BlockSeries`, the series the
  labelled block would give, bit for bit), into a mergeable
  :class:`~lobsim.scale.streaming.Accumulator` (memory independent of the number of
  scenarios but for the exact tail sets) and return the summary Dataset.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import xarray as xr

from lobsim._version import __version__
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import allocate_outputs, block_generator, output_rows, simulate_rows
from lobsim.model.config import Config
from lobsim.model.screening import RiskBands, resolve_risk_bands
from lobsim.model.simulate import finish_run
from lobsim.model.world import World, build_world
from lobsim.scale.block_series import BlockSeries
from lobsim.scale.cluster import Executor, make_executor, run_tasks
from lobsim.scale.store import ResultStore, RunIdentity, StoreDamaged, StoreError, SummaryStore
from lobsim.scale.streaming import Accumulator, Plan

#: Blocks per task at most, by default: a streaming task ships one accumulator
#: state; a task of a stored run is written in one call per array.
STREAM_TASK_BLOCKS = 16
STORE_TASK_BLOCKS = 8


class Progress(Protocol):
    """A progress bar: ``update(scenarios)`` and ``close()`` (tqdm's interface)."""

    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


#: ``block_worlds(config, seed, n_blocks)``: the world of every block of a run.
BlockWorlds = Callable[[Config, int, int], Sequence[World]]

#: ``progress(total=..., initial=..., desc=...)`` makes a bar.
ProgressFactory = Callable[..., Progress]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True, eq=False)
class RunSpec:
    """Everything a worker needs to simulate blocks of a run (shared once per worker)."""

    world: World
    cfg: Config
    seed: int
    scenarios: int
    block_size: int
    bands: RiskBands | None = None
    plan: Plan | None = None
    #: how a streaming task computes its blocks' series from the kernel's outputs
    series: BlockSeries | None = None
    #: the world of each block when they differ (parameter uncertainty); else ``world``
    block_worlds: tuple[World, ...] | None = None
    token: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.scenarios / self.block_size)

    def world_of(self, block: int) -> World:
        """The world block ``block`` simulates."""
        return self.world if self.block_worlds is None else self.block_worlds[block]

    def rows(self, block: int) -> tuple[int, int]:
        lo = block * self.block_size
        return lo, min(lo + self.block_size, self.scenarios)


_local = threading.local()


@functools.lru_cache(maxsize=2)
def _world(cfg: Config) -> World:
    """``build_world(cfg)``, kept for the next run of the same config (it takes a while)."""
    return build_world(cfg)


def _slot(spec: RunSpec) -> dict[str, Any]:
    """This thread's reusable buffers for ``spec``'s run (fresh pages are slow)."""
    slot: dict[str, Any] | None = getattr(_local, "slot", None)
    if slot is None or slot["token"] != spec.token:
        slot = {"token": spec.token, "out": allocate_outputs(spec.world, spec.block_size), "acc": None}
        _local.slot = slot
    return slot


def _simulate(spec: RunSpec, block: int, out: Outputs) -> Outputs:
    """Simulate ``block`` into rows ``0..n-1`` of ``out``; returns those views."""
    lo, hi = spec.rows(block)
    views = output_rows(out, 0, hi - lo)
    simulate_rows(spec.world_of(block), block_generator(spec.seed, block), views)
    return views


def task_outputs(spec: RunSpec, blocks: tuple[int, ...]) -> list[tuple[int, Outputs]]:
    """Kernel outputs of ``blocks`` (fresh arrays: they leave the task)."""
    result = []
    for b in blocks:
        lo, hi = spec.rows(b)
        result.append((b, _simulate(spec, b, allocate_outputs(spec.world, hi - lo))))
    return result


def task_stream(spec: RunSpec, blocks: tuple[int, ...], floor: np.ndarray) -> dict[str, np.ndarray]:
    """The accumulator state of ``blocks``, reduced as they are simulated."""
    if spec.plan is None or spec.series is None:
        raise ValueError("a streaming task needs a plan and its block series")
    slot = _slot(spec)
    if slot["acc"] is None:
        slot["acc"] = Accumulator(spec.plan)
    acc: Accumulator = slot["acc"]
    acc.floor = floor
    try:
        for b in blocks:
            views = _simulate(spec, b, slot["out"])
            acc.add_outputs(b, views, spec.series)  # no labelling: the same series, bit for bit
    except BaseException:
        slot["acc"] = None  # half a task must never reach the next one
        raise
    return acc.take_state()


def _tasks(blocks: np.ndarray, per_task: int) -> list[tuple[int, ...]]:
    """Consecutive runs of ``blocks`` cut into tasks of at most ``per_task`` blocks."""
    tasks: list[tuple[int, ...]] = []
    cur: list[int] = []
    for b in blocks.tolist():
        if cur and (b != cur[-1] + 1 or len(cur) == per_task):
            tasks.append(tuple(cur))
            cur = []
        cur.append(b)
    if cur:
        tasks.append(tuple(cur))
    return tasks


def run(cfg: Config, *, scenarios: int | None = None, seed: int | None = None,
        stream: bool = False, out: str | Path | None = None, resume: bool = False,
        force: bool = False, chunk_size: int | None = None, threads: int | None = None,
        workers: int | None = None, scheduler: str | None = None, processes: bool = True,
        executor: Executor | None = None, progress: ProgressFactory | None = None,
        checkpoint_interval: float = 30.0,
        block_worlds: BlockWorlds | None = None, block_defaults: bool = False) -> xr.Dataset:
    """Simulate ``cfg`` in tasks and return its results or (``stream``) its summary.

    Parameters
    ----------
    cfg : Config
    scenarios, seed : int, optional
        Override ``[simulation]``.
    stream : bool
        Keep only mergeable accumulators and return the summary
        (:func:`lobsim.analysis.summary.summarize`'s layout) instead of the results.
    out : path, optional
        A ``.zarr`` store written as blocks finish (and resumable); other
        paths are the caller's business.
    resume : bool
        Finish the run recorded in ``out`` (same config, seed, scenarios and
        block size), simulating only the blocks it lacks.
    force : bool
        Replace an existing ``out``.
    chunk_size : int, optional
        Scenarios per task, rounded up to whole blocks.
    threads, workers, scheduler, processes :
        Local threads; or ``workers`` processes (threads if not
        ``processes``) of a local Dask cluster; or the Dask scheduler at
        ``scheduler``.
    executor : Executor, optional
        Use this executor (not closed here) instead.
    progress : callable, optional
        ``progress(total=, initial=, desc=)`` returning a bar with
        ``update(n)`` and ``close()`` (e.g. ``tqdm.tqdm``).
    checkpoint_interval : float
        Seconds between snapshots of a streaming run's accumulator in ``out``.
    block_worlds : callable, optional
        ``block_worlds(config, seed, n_blocks)`` gives the world of every
        block (``--parameter-uncertainty``:
        :mod:`lobsim.validation.parameter_draws`), computed once here and
        shipped with the run; the config is the one simulated (risk bands
        resolved). Its worlds must describe the same bonds and dates.
    block_defaults : bool
        A streaming summary keeps each block's count of defaults per bond
        (``default_count_by_block``; :attr:`lobsim.scale.streaming.Plan.block_defaults`).

    Returns
    -------
    xarray.Dataset
        The results (lazy, from the store, with a ``.zarr`` ``out``), or the
        summary of a streaming run.

    Raises
    ------
    StoreError
        If ``out`` exists and is not resumed or replaced, or records another run.
    """

    n = cfg.simulation.scenarios if scenarios is None else scenarios
    s = cfg.simulation.seed if seed is None else seed
    if n < 1:
        raise ValueError(f"scenarios must be at least 1, got {n}")
    bs = cfg.simulation.block_size
    progress = progress or (lambda **_: _NoBar())
    identity = RunIdentity(cfg.hash, s, n, bs, "summary" if stream else "results",
                           __version__)
    store: ResultStore | SummaryStore | None = None
    if out is not None and Path(out).suffix == ".zarr":
        kind = SummaryStore if stream else ResultStore
        store = kind.open(out, identity, resume=resume, force=force)
        if store.existing and store.complete:
            try:
                ds = store.read()
                store.sweep()  # temporary files of a run killed after its last write
                return ds
            except StoreDamaged:
                pass  # repaired below: only what is damaged is computed again
    elif resume:
        raise StoreError("--resume needs --out PATH.zarr")

    own = executor is None
    ex = executor or make_executor(threads=threads, workers=workers, scheduler=scheduler,
                                   processes=processes)
    try:
        n_blocks = math.ceil(n / bs)
        if chunk_size:
            per_task = max(1, math.ceil(chunk_size / bs))
        else:
            # a few blocks per task: a streaming task ships one accumulator state, a
            # stored one writes its blocks in one call per array
            per_task = max(1, min(STREAM_TASK_BLOCKS if stream else STORE_TASK_BLOCKS,
                                  math.ceil(n_blocks / (4 * ex.workers))))
            if not stream and store is None:
                per_task = 1
        bands = None
        if any(b.risk_band is not None for b in cfg.baskets):
            # as lobsim.simulate does: members from the config's own screening run
            bands = resolve_risk_bands(cfg)
        cfg_run = bands.config if bands is not None else cfg
        world = _world(cfg_run)
        zeros = Outputs(*(np.zeros_like(a) for a in allocate_outputs(world, 1)))
        template = finish_run(world, cfg_run, zeros, seed=s, bands=bands)
        plan = (Plan.from_template(template, n, bs, block_defaults=block_defaults)
                if stream else None)
        series = BlockSeries.of_run(world, cfg_run, template) if stream else None
        worlds = None if block_worlds is None else tuple(block_worlds(cfg_run, s, n_blocks))
        spec = RunSpec(world, cfg_run, s, n, bs, bands, plan, series, worlds)
        if stream:
            assert plan is not None and not isinstance(store, ResultStore)
            return _run_stream(spec, plan, ex, store, per_task, progress, checkpoint_interval)
        assert not isinstance(store, SummaryStore)
        return _run_full(spec, template, ex, store, per_task, progress)
    finally:
        if own:
            ex.close()


def _run_stream(spec: RunSpec, plan: Plan, ex: Executor, store: SummaryStore | None,
                per_task: int, progress: ProgressFactory,
                checkpoint_interval: float) -> xr.Dataset:
    acc = Accumulator(plan, reserve=True)
    if store is not None and store.existing:
        store.mark_incomplete()  # complete here means damaged: it is finished again
        state = store.load_state()
        if state is not None:
            acc = Accumulator.from_state(plan, state, reserve=True)
    elif store is not None:
        store.create(spec.cfg.source)
    tasks = _tasks(np.flatnonzero(~acc.blocks), per_task)
    bar = progress(total=spec.scenarios, initial=acc.scenarios, desc="scenarios")
    last = time.monotonic()
    try:
        for _, state in run_tasks(ex, task_stream, ex.share(spec), tasks,
                                  extra=lambda: (acc.tail_floor(),)):
            acc.merge_state(state)
            bar.update(int(state["scenarios"][0]))
            if store is not None and time.monotonic() - last >= checkpoint_interval:
                store.save_state(acc.state())
                last = time.monotonic()
    finally:
        bar.close()
    summary = acc.summary()
    if store is not None:
        store.finish(summary, acc.state())
    return summary


def _run_full(spec: RunSpec, template: xr.Dataset, ex: Executor, store: ResultStore | None,
              per_task: int, progress: ProgressFactory) -> xr.Dataset:
    n = spec.scenarios
    done = np.zeros(spec.n_blocks, np.bool_)
    if store is not None and store.existing:
        done = store.repair(template)
    elif store is not None:
        store.create(template)
    out = allocate_outputs(spec.world, n) if store is None else None
    initial = sum(hi - lo for lo, hi in map(spec.rows, np.flatnonzero(done).tolist()))
    bar = progress(total=n, initial=initial, desc="scenarios")
    try:
        for _, results in run_tasks(ex, task_outputs, ex.share(spec),
                                    _tasks(np.flatnonzero(~done), per_task)):
            if store is not None:
                store.write_blocks([
                    (b, spec.rows(b)[0],
                     finish_run(spec.world, spec.cfg, o, seed=spec.seed, bands=spec.bands))
                    for b, o in results])
            else:
                assert out is not None
                for b, o in results:
                    lo, hi = spec.rows(b)
                    for whole, rows in zip(out, o, strict=True):
                        whole[lo:hi] = rows
            bar.update(sum(hi - lo for lo, hi in (spec.rows(b) for b, _ in results)))
    finally:
        bar.close()
    if store is not None:
        store.finish()
        return store.open_dataset()
    assert out is not None
    return finish_run(spec.world, spec.cfg, out, seed=spec.seed, bands=spec.bands)
