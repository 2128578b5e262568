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
            with _interrupt_deferred(), _workers_ignore_sigint():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=processes, dashboard_address=":0",
                                       silence_logs=logging.ERROR)
                client = Client(cluster)
            return cls(client, cluster)
        except BaseException:  # Ctrl-C, held while it started
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
def _interrupt_deferred() -> Iterator[None]:
    """Hold a Ctrl-C pressed meanwhile until the block ends, then deliver it.

    A cluster interrupted inside its constructor cannot be closed cleanly
    (distributed asserts on its half-started workers, at exit too); once
    started, it closes like any other.
    """
    pressed: list[int] = []

    def later(signum: int, frame: Any) -> None:
        pressed.append(signum)

    try:
        old = signal.signal(signal.SIGINT, later)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pressed:
        signal.raise_signal(signal.SIGINT)  # to the handler of before: KeyboardInterrupt


@contextlib.contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Worker processes started meanwhile ignore Ctrl-C from their first statement.

    A terminal sends SIGINT to the whole process group, workers included:
    each would print a KeyboardInterrupt traceback. Ignoring it, they leave
    Ctrl-C to the client, which closes the cluster. multiprocessing starts
    them (``spawn``) as ``python -c "...spawn_main(...)"``; the command is
    prefixed with ``signal.signal(SIGINT, SIG_IGN)``. This process's own
    handling is untouched (ignoring SIGINT here while they start would lose
    a Ctrl-C pressed meanwhile to any other thread, numpy's BLAS threads
    included).
    """
    from multiprocessing import spawn

    original = spawn.get_command_line

    def command_line(**kwds: Any) -> list[str]:
        line: list[str] = original(**kwds)
        if "-c" in line:  # not a frozen executable
            k = line.index("-c") + 1
            line[k] = "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); " + line[k]
        return line

    spawn.get_command_line = command_line
    try:
        yield
    finally:
        spawn.get_command_line = original


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
