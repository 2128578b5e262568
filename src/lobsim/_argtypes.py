"""Argument types shared by the command-line modules (argparse ``type=``)."""

from __future__ import annotations

import argparse
import math


def whole(text: str, *, low: int = 0) -> int:
    """A whole number (``_`` separators allowed) of at least ``low``."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < low:
        bound = "must not be negative" if low == 0 else f"must be at least {low}"
        raise argparse.ArgumentTypeError(f"{bound}, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (seeds)."""
    return whole(text, low=0)


def positive_int(text: str) -> int:
    """A whole number >= 1 (counts)."""
    return whole(text, low=1)


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
