"""Run small dense linear algebra on one BLAS thread.

The calibration and the backtest do thousands of factorisations of matrices
of a few dozen rows. OpenBLAS splits even those over its threads, whose
spin-waiting costs far more than the arithmetic: measured on the project's
2-core machines with another process busy, the calibration of the demo
universe took 17.9 s of wall time with 2 BLAS threads and 1.3 s with one.
:func:`single_threaded_blas` sets OpenBLAS to one thread for a block and
restores it after (what ``threadpoolctl`` does, without the dependency);
with another BLAS, or none found, it does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np  # noqa: F401  (loads numpy's OpenBLAS before the search)

# numpy's wheels ship OpenBLAS with prefixed, ILP64 symbol names, scipy's with
# prefixed 32-bit ones (its own copy, which L-BFGS-B uses); others are plain.
_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


def _openblas() -> list[tuple[Any, Any]]:
    found: list[tuple[Any, Any]] = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:  # not Linux
        return found
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in _SYMBOLS:
            if hasattr(lib, get) and hasattr(lib, set_):
                found.append((getattr(lib, get), getattr(lib, set_)))
                break
    return found


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Context manager: OpenBLAS on one thread inside the block."""
    libs = _openblas()
    saved = [int(get()) for get, _ in libs]
    for _, set_ in libs:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), n in zip(libs, saved, strict=True):
            set_(n)
