"""Benchmark the exact synthetic-control weight solver (``lobsim._synth``).

Usage::

    python benchmarks/bench_synth.py [--fits 2000] [--slsqp-fits 50] [--repeats 5]
                                     [--slsqp-ftol 1e-12] [--seed 1]

For donor pools of J = 10, 40 and 100 units and m = 20 pre-period points it
times, per fit:

(a) ``simplex_weights_batch``: numba Lawson-Hanson NNLS on the exact
    reformulation, the whole batch in one compiled call;
(a') ``simplex_weights`` called once per fit from a Python loop (what a
    caller fitting one unit at a time sees: dispatch overhead included);
(b) ``scipy.optimize.nnls`` on the same exact reformulation
    ``min_{u >= 0} ||[C; 1^T] u - [0; 1]||``, ``C = sqrt(V) (X0 - X1 1^T)``,
    ``w = u / sum(u)``, in a Python loop (building the system included);
(c) ``scipy.optimize.minimize(method="SLSQP")`` on the original simplex
    problem with the analytic gradient, ``w >= 0`` bounds and the equality
    ``sum(w) = 1`` with its Jacobian.

Problems are realistic: donors are indexed log outcome paths (cumulative sums
of small normal shocks with unit-specific drift, 0 at the first period), and
the treated unit is a noisy convex combination of a few donors, so the
optimum is generically unique and not an exact fit.  Times are the best of
``--repeats`` runs (the JIT is warmed first).  It prints a markdown table
with fits per second, the speed-ups of (a) over (b) and (c), and the largest
weight difference of (a) and of (c) against (b).
"""

from __future__ import annotations

import os

# Single-threaded BLAS for every contender, set before numpy loads OpenBLAS:
# the numba kernel is serial, and on a small or busy machine OpenBLAS threads
# on 20 x 40 matrices make SLSQP tens of times slower, which would flatter
# the comparison.  Override from the environment if wanted.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402 - after the BLAS thread settings on purpose
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import minimize, nnls  # noqa: E402

from lobsim._synth import simplex_weights, simplex_weights_batch  # noqa: E402

M_PRE = 20
DONOR_POOLS = (10, 40, 100)
# Tight enough that SLSQP's weights approach the optimum (its default
# ftol=1e-6 leaves errors of order 0.1 in the weights here, while being only
# 1.5-4x faster), capped so a slow fit ends; --slsqp-ftol overrides ftol.
SLSQP_OPTIONS: dict[str, float] = {"ftol": 1e-12, "maxiter": 500}


def make_problems(
    rng: np.random.Generator, n_fits: int, m: int, n_donors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random realistic problems: shapes (n, m), (n, m, J), (n, m)."""
    drift = rng.normal(0.0, 0.005, size=(n_fits, 1, n_donors))
    shocks = rng.normal(0.0, 0.02, size=(n_fits, m, n_donors)) + drift
    x0s = np.cumsum(shocks, axis=1)
    x0s -= x0s[:, :1, :]  # indexed: log path relative to the first period
    k = min(4, n_donors)
    w_true = np.zeros((n_fits, n_donors))
    for i in range(n_fits):
        w_true[i, rng.choice(n_donors, size=k, replace=False)] = rng.dirichlet(np.ones(k))
    x1s = np.einsum("nmj,nj->nm", x0s, w_true) + rng.normal(0.0, 0.01, size=(n_fits, m))
    vs = np.ones((n_fits, m))
    return np.ascontiguousarray(x1s), np.ascontiguousarray(x0s), vs


def nnls_weights(x1: np.ndarray, x0: np.ndarray, v: np.ndarray) -> np.ndarray:
    """scipy NNLS on the exact reformulation (with the same exact power-of-two scaling)."""
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
    """SLSQP on the simplex problem with analytic gradient and constraint Jacobian."""
    n_donors = x0.shape[1]

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        r = x1 - x0 @ w
        vr = v * r
        return float(r @ vr), -2.0 * (x0.T @ vr)

    res = minimize(
        fun,
        np.full(n_donors, 1.0 / n_donors),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * n_donors,
        constraints=[
            {
                "type": "eq",
                "fun": lambda w: np.sum(w) - 1.0,
                "jac": lambda w: np.ones_like(w),
            }
        ],
        options=SLSQP_OPTIONS,
    )
    return np.asarray(res.x)


def best_time(run: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_pool(
    rng: np.random.Generator, n_donors: int, n_fits: int, n_slsqp: int, repeats: int
) -> tuple[float, ...]:
    """Time (a), (a'), (b), (c) on one donor-pool size; return the table row."""
    x1s, x0s, vs = make_problems(rng, n_fits, M_PRE, n_donors)
    w_nb = np.empty((n_fits, n_donors))
    obj_nb = np.empty(n_fits)
    t_batch = best_time(lambda: simplex_weights_batch(x1s, x0s, vs, w_nb, obj_nb), repeats)
    assert np.all(np.isfinite(obj_nb)), "numba kernel reported a failure"

    w_one = np.empty(n_donors)

    def single_loop() -> None:
        for i in range(n_fits):
            simplex_weights(x1s[i], x0s[i], vs[i], w_one)

    t_single = best_time(single_loop, repeats)

    w_ref = np.empty((n_fits, n_donors))

    def nnls_loop() -> None:
        for i in range(n_fits):
            w_ref[i] = nnls_weights(x1s[i], x0s[i], vs[i])

    t_nnls = best_time(nnls_loop, max(1, repeats // 2))

    n_sq = min(n_slsqp, n_fits)
    w_sq = np.empty((n_sq, n_donors))

    def slsqp_loop() -> None:
        for i in range(n_sq):
            w_sq[i] = slsqp_weights(x1s[i], x0s[i], vs[i])

    t_slsqp = best_time(slsqp_loop, 1)

    rate_batch, rate_single = n_fits / t_batch, n_fits / t_single
    rate_nnls, rate_slsqp = n_fits / t_nnls, n_sq / t_slsqp
    return (
        n_donors,
        rate_batch,
        rate_single,
        rate_nnls,
        rate_slsqp,
        rate_batch / rate_nnls,
        rate_batch / rate_slsqp,
        float(np.abs(w_nb - w_ref).max()),
        float(np.abs(w_sq - w_ref[:n_sq]).max()),
        float(np.mean(np.count_nonzero(w_nb, axis=1))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fits", type=int, default=2000, help="fits per pool for (a), (b)")
    parser.add_argument("--slsqp-fits", type=int, default=50, help="fits per pool for (c)")
    parser.add_argument("--repeats", type=int, default=5, help="best of this many runs")
    parser.add_argument("--slsqp-ftol", type=float, default=SLSQP_OPTIONS["ftol"])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    SLSQP_OPTIONS["ftol"] = args.slsqp_ftol
    rng = np.random.default_rng(args.seed)

    # Warm the JIT (compiles, or loads the on-disk cache).
    x1w, x0w, vw = make_problems(rng, 2, M_PRE, 3)
    simplex_weights_batch(x1w, x0w, vw, np.empty((2, 3)), np.empty(2))
    simplex_weights(x1w[0], x0w[0], vw[0], np.empty(3))

    rows = [
        bench_pool(rng, n_donors, args.fits, args.slsqp_fits, args.repeats)
        for n_donors in DONOR_POOLS
    ]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Synthetic-control weights, m = {M_PRE} pre-period points; "
        f"{args.fits} fits per pool ({args.slsqp_fits} for SLSQP with {SLSQP_OPTIONS}), "
        f"best of {args.repeats}; "
        f"{platform.machine()}, {os.cpu_count()} cores, load average {load:.2f}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}\n"
    )
    print(
        "| J | numba batch fits/s | numba per-call fits/s | scipy nnls fits/s | SLSQP fits/s "
        "| numba/nnls | numba/SLSQP | max abs w diff numba vs nnls "
        "| max abs w diff SLSQP vs nnls | mean active donors |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for j, rb, rs, rn, rq, sn, sq, dnb, dsq, act in rows:
        print(
            f"| {j:.0f} | {rb:,.0f} | {rs:,.0f} | {rn:,.0f} | {rq:,.1f} | {sn:.1f}x | {sq:,.0f}x "
            f"| {dnb:.1e} | {dsq:.1e} | {act:.1f} |"
        )
    ok_nnls = all(r[5] >= 2.0 for r in rows)
    ok_slsqp = all(r[6] >= 100.0 for r in rows)
    ok_w = all(r[7] <= 1e-8 for r in rows)
    print(
        f"\nTargets: numba >= 2x nnls: {'met' if ok_nnls else 'NOT met'}; "
        f"numba >= 100x SLSQP: {'met' if ok_slsqp else 'NOT met'}; "
        f"weights within 1e-8 of nnls: {'met' if ok_w else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
