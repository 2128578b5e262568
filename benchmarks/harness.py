"""What the benchmark suite measures with: the RNG floor (1 or more threads),
the production and reference kernels on reused outputs, world variants for
the scaling curves, the synthetic-control contenders, a peak-memory probe, a
timed ``lobsim`` process (start-up, blocks, after), bit-for-bit comparisons and
the machine's description.

Every function here is plain code the benchmarks (``benchmarks/test_*.py``)
time; none of it is timed against a hard-coded number.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy
from numba import njit
from scipy.optimize import minimize, nnls

from lobsim import Config, parse_config
from lobsim.kernels import engine
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import allocate_outputs, block_generator, output_rows, simulate_rows
from lobsim.model.world import World

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = 20100101

# --------------------------------------------------------------------------
# The RNG floor (docs/model.md section 10): the engine's own draws and nothing else
# --------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def rng_floor(gen, n, n_normals, n_exponentials):  # pragma: no cover - jitted
    """Draw what the engine draws for ``n`` scenarios, in its order, and nothing else."""
    acc = 0.0
    for _ in range(n):
        for _ in range(n_normals):
            acc += gen.standard_normal()
        for _ in range(n_exponentials):
            acc += gen.standard_exponential()
    return acc


def run_floor(world: World, scenarios: int, seed: int, block_size: int,
              threads: int = 1) -> float:
    """The floor over the same blocks and generators as ``run_blocks``.

    With ``threads`` > 1 the blocks go to a thread pool (``rng_floor`` is
    ``nogil``), as a run's blocks do: the floor of a run on that many threads.
    """
    def block(blk: int) -> float:
        n = min(block_size, scenarios - blk * block_size)
        return float(rng_floor(block_generator(seed, blk), n, world.n_normals,
                               world.n_exponentials))

    blocks = range(-(-scenarios // block_size))
    if threads == 1:
        return sum(map(block, blocks))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return sum(pool.map(block, blocks))


def touched_outputs(world: World, scenarios: int) -> Outputs:
    """Fresh output arrays of ``scenarios`` scenarios, every page written once.

    Timing this alone is the allocation and first-touch (page-fault) cost that
    a run into fresh arrays pays on top of the kernel.
    """
    out = allocate_outputs(world, scenarios)
    for a in out:
        a.fill(0)
    return out


def reference_rows(world: World, gen: np.random.Generator, out: Outputs) -> None:
    """The reference kernel (the scalar scenario-major ``lobsim.kernels.engine``) on
    the same contract as ``simulate_rows``, whatever kernel production runs."""
    engine.simulate_block(gen, out.irr.shape[0], *world.arrays, out)


#: Kernels a benchmark can time: production is whatever ``simulate_rows`` runs.
KERNELS: dict[str, Callable[[World, np.random.Generator, Outputs], None]] = {
    "production": lambda w, g, o: simulate_rows(w, g, o),
    "reference": reference_rows,
}


def kernel_on_reused_outputs(world: World, scenarios: int, block_size: int,
                             kernel: str = "production") -> Callable[[int, int], None]:
    """A kernel alone (``KERNELS[kernel]``), block by block, into outputs allocated
    and touched once.

    Returns ``run(seed, threads)``; with 2 threads the blocks go to a thread
    pool, as in ``run_blocks``.
    """
    out = touched_outputs(world, scenarios)
    rows = KERNELS[kernel]

    def block(seed: int, blk: int) -> None:
        lo = blk * block_size
        hi = min(lo + block_size, scenarios)
        rows(world, block_generator(seed, blk), output_rows(out, lo, hi))

    def run(seed: int, threads: int) -> None:
        blocks = range(-(-scenarios // block_size))
        if threads == 1:
            for blk in blocks:
                block(seed, blk)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda b: block(seed, b), blocks))

    return run


# --------------------------------------------------------------------------
# World variants for the scaling curves, cut from a config's TOML document
# --------------------------------------------------------------------------


def config_doc(path: str | Path) -> dict[str, Any]:
    with open(ROOT / path, "rb") as f:
        return tomllib.load(f)


def variant_config(path: str | Path, *, bonds: int | None = None, donors: int | None = None,
                   dates: int | None = None) -> Config:
    """``path``'s config with the first ``bonds`` bonds, ``donors`` equal-weight
    donors per bond, or ``dates`` evenly spaced per-unit measurements per bond.

    Baskets are dropped when bonds are cut (they name the bonds), investor
    classes always.
    """
    doc = copy.deepcopy(config_doc(path))
    doc.pop("investor_classes", None)  # after-tax returns: not the engine's work
    if bonds is not None and bonds < len(doc["bonds"]):
        doc["bonds"] = doc["bonds"][:bonds]
        doc.pop("baskets", None)  # they name bonds
    for bond in doc["bonds"]:
        if donors is not None:
            bond["control"] = {"donors": donors, "weights": "equal"}
        if dates is not None:
            span = bond["maturity"] - bond.get("start", 0.0)
            target = bond["target_units"]
            bond["payment"] = {"mechanism": "per_unit", "cap": target, "measurements": [
                {"at": bond.get("start", 0.0) + span * (j + 1) / dates, "threshold": 0.0,
                 "cap": target * (j + 1) / dates} for j in range(dates)]}
    return parse_config(doc, source=str(path), base_dir=(ROOT / path).parent)


# --------------------------------------------------------------------------
# Synthetic-control weights: the problems and the scipy contenders
# --------------------------------------------------------------------------

M_PRE = 20  # pre-period points per fit
# Tight enough that SLSQP's weights approach the optimum (its default
# ftol=1e-6 leaves errors of order 0.1 in the weights here).
SLSQP_OPTIONS: dict[str, float] = {"ftol": 1e-12, "maxiter": 500}


def synth_problems(rng: np.random.Generator, n_fits: int, m: int,
                   n_donors: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realistic problems: shapes (n, m), (n, m, J), (n, m).

    Donors are indexed log outcome paths (cumulative sums of small normal
    shocks with unit-specific drift); the treated unit is a noisy convex
    combination of four donors, so the optimum is unique and not an exact fit.
    """
    drift = rng.normal(0.0, 0.005, size=(n_fits, 1, n_donors))
    x0s = np.cumsum(rng.normal(0.0, 0.02, size=(n_fits, m, n_donors)) + drift, axis=1)
    x0s -= x0s[:, :1, :]
    k = min(4, n_donors)
    w_true = np.zeros((n_fits, n_donors))
    for i in range(n_fits):
        w_true[i, rng.choice(n_donors, size=k, replace=False)] = rng.dirichlet(np.ones(k))
    x1s = np.einsum("nmj,nj->nm", x0s, w_true) + rng.normal(0.0, 0.01, size=(n_fits, m))
    return np.ascontiguousarray(x1s), np.ascontiguousarray(x0s), np.ones((n_fits, m))


def nnls_weights(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
    """scipy NNLS on the exact reformulation ``min_{u>=0} ||[C; 1^T] u - [0; 1]||``,
    ``C = sqrt(V) (X0 - x1 1^T)``, ``w = u / sum(u)`` (same power-of-two scaling)."""
    c = np.sqrt(v)[:, None] * (x0 - x1[:, None])
    cmax = float(np.abs(c).max())
    if cmax > 0.0:
        c *= 2.0 ** -math.frexp(cmax)[1]
    a = np.vstack([c, np.ones((1, x0.shape[1]))])
    b = np.zeros(x0.shape[0] + 1)
    b[-1] = 1.0
    u, _ = nnls(a, b)
    return u / u.sum()


def slsqp_weights(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
    """SLSQP on the simplex problem with the analytic gradient and constraint Jacobian."""
    n_donors = x0.shape[1]

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = x1 - x0 @ w
        vr = v * r
        return float(r @ vr), -2.0 * (x0.T @ vr)

    res = minimize(fun, np.full(n_donors, 1.0 / n_donors), jac=True, method="SLSQP",
                   bounds=[(0.0, 1.0)] * n_donors,
                   constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0,
                                 "jac": lambda w: np.ones_like(w)}],
                   options=SLSQP_OPTIONS)
    return np.asarray(res.x)


# --------------------------------------------------------------------------
# Processes: peak memory and start-up time of a command
# --------------------------------------------------------------------------

_PEAK = ("import resource, subprocess, sys; "
         "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
         "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mib(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Peak resident memory of ``cmd`` in MiB (a wrapper process with one child,
    so that ``RUSAGE_CHILDREN`` is that child's own peak)."""
    res = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True)
    code, kib = res.stdout.split()
    if code != "0":
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}: {res.stderr[-2000:]}")
    return int(kib) / 1024


def lobsim_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "lobsim.cli.commands", *args]


def timed_lobsim(*args: str, env: dict[str, str] | None = None) -> dict[str, float]:
    """``lobsim ARGS`` in a new process (``timed_run.py``), timed from its spawn.

    Returns seconds: ``wall`` (spawn to exit), ``start_up`` (spawn to the start
    of the run's first block: interpreter, imports, config, world, a risk-band
    screening run, the JIT's cache load), of which ``interpreter``, ``imports``
    (lobsim's CLI, model and runner) and ``world`` (the run's ``build_world``), ``blocks`` (first block's start to
    last block's end), ``after_blocks`` (last block's end to exit: labelling,
    summaries, output), ``screening``, ``kernel_thread_seconds`` (the blocks'
    own time summed over threads); and ``peak_rss_mib`` of the process.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "marks.json"
        t0 = time.monotonic()
        res = subprocess.run([sys.executable, str(HERE / "timed_run.py"), str(report), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=ROOT)
        t1 = time.monotonic()
        if res.returncode != 0 or not report.exists():
            raise RuntimeError(f"lobsim {' '.join(args)} exited with {res.returncode}: "
                               f"{res.stderr[-2000:]}")
        m = json.loads(report.read_text(encoding="utf-8"))
    if m["first_block"] is None:
        raise RuntimeError(f"lobsim {' '.join(args)} ran no block through simulate_rows")
    return {"wall": t1 - t0, "start_up": m["first_block"] - t0,
            "interpreter": m["child_start"] - t0, "imports": m["imported"] - m["child_start"],
            "world": m["world_seconds"],
            "blocks": m["last_block_end"] - m["first_block"],
            "after_blocks": t1 - m["last_block_end"], "screening": m["screening_seconds"],
            "kernel_thread_seconds": m["kernel_thread_seconds"], "n_blocks": m["blocks"],
            "peak_rss_mib": m["peak_rss_mib"]}


def datasets_equal(a: Any, b: Any) -> bool:
    """Two xarray Datasets with the same variables, coordinates and bits (NaN = NaN)."""
    if set(a.variables) != set(b.variables):
        return False
    for name in a.variables:
        x, y = a[name].values, b[name].values
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if not _same_bits(x, y):
            return False
    return True


def _same_bits(x: np.ndarray, y: np.ndarray) -> bool:
    if x.dtype.kind in "fciub":  # bits, not values: -0.0 is not 0.0, NaN is NaN
        return x.shape == y.shape and x.dtype == y.dtype and x.tobytes() == y.tobytes()
    return bool(np.array_equal(x, y))


def outputs_equal(a: Outputs, b: Outputs) -> bool:
    """Kernel outputs equal bit for bit (NaN = NaN)."""
    return all(_same_bits(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model and clock, cores, versions: what a throughput must be read with."""
    model, mhz = "unknown", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("cpu MHz") and not mhz:
                mhz = f", {float(line.split(':', 1)[1]):.0f} MHz"
    except (OSError, ValueError):
        pass
    return {
        "CPU": model + mhz,
        "cores (os.cpu_count / usable)": f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}",
        "Python": platform.python_version(),
        "numpy / numba / scipy": f"{np.__version__} / {numba.__version__} / {scipy.__version__}",
        "platform": platform.platform(),
        # other work on the machine: every timing of the run shares the cores with it
        "load average (1, 5, 15 min) at the start": " / ".join(f"{x:.2f}"
                                                           for x in os.getloadavg()),
    }


def system_seconds() -> float:
    """System (kernel) CPU time of this process so far: page faults show up here."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime
