"""Where a run's tasks execute: a local thread pool or a Dask distributed cluster.

Both executors offer the same small interface (:class:`Executor`): ``share``
an object with every task once (Dask scatters it to the workers), ``submit``
a task and ``wait`` for any of them. :func:`run_tasks` keeps a bounded number
of tasks in flight and yields results as they finish, so that neither the
client nor the cluster holds more than a few tasks' results at a time.

Results never depend on the executor: tasks are groups of scenario blocks
and every block draws from its own stream (``block_generator(seed, block)``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol


class Executor(Protocol):
    """What :func:`run_tasks` needs from an executor."""

    workers: int

    def share(self, obj: Any) -> Any:
        """A handle on ``obj`` to pass to every task."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Start ``fn(*args)``; returns a future."""

    def wait(self, futures: list[Any]) -> list[Any]:
        """Block until at least one of ``futures`` is done; return the done ones."""

    def close(self) -> None:
        """Release the workers (and a cluster this executor started)."""


class ThreadExecutor:
    """Tasks on a local thread pool (the kernel releases the GIL)."""

    def __init__(self, threads: int | None = None) -> None:
        self.workers = threads or len(os.sched_getaffinity(0))
        self._pool = cf.ThreadPoolExecutor(max_workers=self.workers)

    def share(self, obj: Any) -> Any:
        return obj

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(fn, *args)

    def wait(self, futures: list[Any]) -> list[Any]:
        done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster: a local one, or one at a scheduler address.

    Parameters
    ----------
    client : distributed.Client
    cluster : distributed.LocalCluster, optional
        A cluster this executor started and closes.
    """

    def __init__(self, client: Any, cluster: Any = None) -> None:
        self.client = client
        self._cluster = cluster
        info = client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))

    @classmethod
    def local(cls, workers: int, *, processes: bool = True) -> DaskExecutor:
        """Start a local cluster of ``workers`` single-threaded workers."""
        from distributed import Client, LocalCluster

        cluster = client = None
        try:
            with _sigint_held():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=processes, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
                client = Client(cluster)
            return cls(client, cluster)
        except BaseException:  # a Ctrl-C held back until the cluster was up
            if client is not None:
                client.close()
            if cluster is not None:
                cluster.close()
            raise

    @classmethod
    def connect(cls, address: str, timeout: float = 30.0) -> DaskExecutor:
        """Connect to the scheduler at ``address`` (``tcp://host:port``)."""
        from distributed import Client

        try:
            client = Client(address, timeout=timeout)
        except OSError as exc:
            raise ConnectionError(f"--scheduler {address}: cannot connect ({exc})") from None
        client.wait_for_workers(1, timeout=timeout)
        return cls(client)

    def share(self, obj: Any) -> Any:
        # one copy per worker instead of one per task
        return self.client.scatter(obj, broadcast=True, hash=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, pure=False)

    def wait(self, futures: list[Any]) -> list[Any]:
        from distributed import wait

        done, _ = wait(futures, return_when="FIRST_COMPLETED")
        return list(done)

    def close(self) -> None:
        if self._cluster is not None and isinstance(sys.exception(), KeyboardInterrupt):
            # Ctrl-C: the workers' complaints about the tasks and transfers cut short
            # (tracebacks, whole results dumped) are noise to whoever pressed it
            with contextlib.suppress(Exception):
                self.client.run(_mute)
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _mute() -> None:
    """Send this process's stdout and stderr to /dev/null (in a worker of our own cluster)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back while the cluster starts, and make its workers ignore it for good.

    A terminal sends SIGINT to the whole process group, workers included;
    processes started while SIGINT is ignored keep ignoring it (Python only
    turns it into KeyboardInterrupt where the parent left it alone), so Ctrl-C
    stops the client alone, which then closes the cluster. Blocked meanwhile
    in this thread, a SIGINT stays pending (Linux never discards a blocked
    signal) and is raised as KeyboardInterrupt once the handler is back; but
    if another thread takes it (zarr's I/O thread, with a store open), it is
    ignored like the workers' copies: a Ctrl-C in the seconds the cluster
    takes to start can be lost.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: the handler is not ours to change
        handler = None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def make_executor(*, threads: int | None = None, workers: int | None = None,
                  scheduler: str | None = None, processes: bool = True) -> Executor:
    """A Dask executor for ``scheduler`` or ``workers``, else a thread pool."""
    if scheduler:
        return DaskExecutor.connect(scheduler)
    if workers:
        return DaskExecutor.local(workers, processes=processes)
    return ThreadExecutor(threads)


def run_tasks(executor: Executor, fn: Callable[..., Any], shared: Any, tasks: Iterable[Any], *,
              window: int | None = None,
              extra: Callable[[], tuple[Any, ...]] = tuple) -> Iterator[tuple[Any, Any]]:
    """Run ``fn(shared, task, *extra())`` for every task; yield ``(task, result)`` as done.

    At most ``window`` tasks (default: twice the workers) are in flight;
    ``extra`` is called at each submission (for arguments that change as
    results arrive). The first failing task's exception is raised.
    """
    window = window or 2 * executor.workers
    it = iter(tasks)
    pending: dict[Any, Any] = {}

    def fill() -> None:
        while len(pending) < window:
            task = next(it, None)
            if task is None:
                return
            pending[executor.submit(fn, shared, task, *extra())] = task

    fill()
    while pending:
        for fut in executor.wait(list(pending)):
            task = pending.pop(fut)
            yield task, fut.result()
        fill()
