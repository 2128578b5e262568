"""The benchmark suite's settings: ``--quick`` sizes, the machine's description.

Run with ``make bench`` or ``make bench-quick`` (pytest-benchmark writes the
JSON, ``benchmarks/report.py`` turns it into ``results/REPORT.md`` and plots).
"""

from __future__ import annotations

import os

# Single-threaded BLAS for every contender, set before numpy loads OpenBLAS:
# the numba kernels are serial per thread, and OpenBLAS threads on 20 x 40
# matrices make SLSQP much slower on a 2-core machine, flattering the engine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import sys  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine  # noqa: E402


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; ``--quick`` divides it."""

    quick: bool
    rounds: int  # timed rounds per benchmark (the minimum is reported)
    blocks: int  # 4,096-scenario blocks per engine run on the basket demo
    bham_scenarios: int  # scenarios per engine run on the one-bond config
    ref_month: tuple[int, int]  # reference scenarios (basket demo, Birmingham), monthly
    ref_year: tuple[int, int]
    synth_fits: int
    slsqp_fits: int
    axis_blocks: int  # blocks per run on the bonds, donors and dates axes
    memory_scenarios: tuple[int, ...]
    e2e_stream: int  # `lobsim run --stream` scenarios, end to end against the floor
    e2e_full: int  # the same without --stream
    rss_stream: int  # the streamed run whose peak RSS must stay under 1 GB
    dask_blocks: int  # 4,096-scenario blocks per timed Dask run
    identity_scenarios: int  # scenarios of the bit-identity checks (not whole blocks)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true",
                     help="smaller runs: the whole suite in under two minutes")


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    if request.config.getoption("--quick"):
        return Sizes(True, 3, 5, 200_000, (800, 20_000), (2_000, 20_000), 400, 8, 1,
                     (10_000, 30_000), 200_000, 50_000, 1_000_000, 8, 5 * 4096 + 1000)
    return Sizes(False, 5, 25, 1_000_000, (4_000, 100_000), (10_000, 100_000), 2_000, 40, 8,
                 (25_000, 50_000, 100_000, 200_000), 1_000_000, 200_000, 10_000_000, 64,
                 9 * 4096 + 1000)


def pytest_benchmark_update_machine_info(config: pytest.Config,
                                         machine_info: dict[str, Any]) -> None:
    machine_info["lobsim_machine"] = machine()
    machine_info["lobsim_quick"] = bool(config.getoption("--quick"))
