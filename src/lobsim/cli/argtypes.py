"""Argument types shared by the command-line modules (argparse ``type=``).

Every whole-number option has an upper bound as well as a lower one: the
bounds of its config counterpart where there is one (``--seed``,
``--scenarios``), otherwise a generous limit that still keeps a typo from
reaching the engine (a seed past int64 simulated, then failed to be saved).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from lobsim.model.config import MAX_SCENARIOS, MAX_SEED

#: Threads of one process, and processes of a local Dask cluster: far beyond any
#: machine's cores (each worker process holds a copy of the world).
MAX_THREADS = 1024
MAX_WORKERS = 256
#: Periods, panels, donor pools: far more than any history has.
MAX_COUNT = 10**6


def whole(text: str, *, low: int = 0, high: int | None = None, why: str = "") -> int:
    """A whole number (``_`` separators allowed) in ``low..high``; ``why`` explains ``high``."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < low:
        bound = "must not be negative" if low == 0 else f"must be at least {low}"
        raise argparse.ArgumentTypeError(f"{bound}, got {text}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be at most {high}{why}, got {text}")
    return value


def bounded(low: int, high: int, why: str = "") -> Callable[[str], int]:
    """The argparse type of a whole number in ``low..high``."""

    def parse(text: str) -> int:
        return whole(text, low=low, high=high, why=why)

    return parse


#: ``--seed``: as ``[simulation] seed`` (results record it as an int64).
seed = bounded(0, MAX_SEED, " (2**63 - 1, as [simulation] seed)")
#: ``--scenarios``, ``--chunk-size``, ``--pilot-scenarios``: as ``[simulation] scenarios``
#: (:func:`check_scenarios` asks for 2 where an error bar is printed).
scenario_count = bounded(1, MAX_SCENARIOS, " (as [simulation] scenarios)")
thread_count = bounded(1, MAX_THREADS)
worker_count = bounded(1, MAX_WORKERS)
#: Periods (``--pre``, ``--horizon``, ``--step``) and simulated panels.
count = bounded(1, MAX_COUNT)


def check_scenarios(n: int | None, what: str) -> None:
    """``--scenarios`` given as 1: no Monte Carlo error can be estimated from one."""
    from lobsim.errors import UsageError

    if n is not None and n < 2:
        raise UsageError(f"--scenarios: {what} needs at least 2 scenarios (their Monte Carlo "
                         f"errors), got {n}")


def finite_float(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (seconds)."""
    value = finite_float(text)
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def probability(text: str) -> float:
    """A probability in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
    return value
