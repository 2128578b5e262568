"""Synthetic-control weights: the numba solver against scipy (model.md §4.2, §10).

For donor pools of 10, 40 and 100 areas and 20 pre-period points: fits per
second of ``lobsim.kernels.synth.simplex_weights_batch`` (a batch of fits in one
compiled call), ``scipy.optimize.nnls`` on the exact reformulation and SLSQP
with the analytic gradient, on the same problems; the largest weight
difference to nnls goes in ``extra_info``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness import M_PRE, nnls_weights, slsqp_weights, synth_problems
from lobsim.kernels.synth import simplex_weights_batch

POOLS = (10, 40, 100)


@pytest.fixture(scope="module", params=POOLS)
def problems(request: pytest.FixtureRequest, sizes: Any) -> dict[str, Any]:
    j = request.param
    x1, x0, v = synth_problems(np.random.default_rng(j), sizes.synth_fits, M_PRE, j)
    ref = np.array([nnls_weights(x1[i], x0[i], v[i]) for i in range(len(x1))])
    simplex_weights_batch(x1[:2], x0[:2], v[:2], np.empty((2, j)), np.empty(2))  # warm the JIT
    return {"donors": j, "x1": x1, "x0": x0, "v": v, "nnls": ref}


def test_synth_numba_batch(benchmark: Any, problems: dict[str, Any], sizes: Any) -> None:
    benchmark.group = "synthetic control"
    x1, x0, v = problems["x1"], problems["x0"], problems["v"]
    w = np.empty((len(x1), problems["donors"]))
    obj = np.empty(len(x1))
    benchmark.pedantic(simplex_weights_batch, args=(x1, x0, v, w, obj), rounds=sizes.rounds * 2,
                       iterations=1)
    assert np.all(np.isfinite(obj)), "the numba solver reported a failure"
    benchmark.extra_info.update(kind="numba", donors=problems["donors"], fits=len(x1),
                                max_weight_diff=float(np.abs(w - problems["nnls"]).max()))


def test_synth_scipy_nnls(benchmark: Any, problems: dict[str, Any], sizes: Any) -> None:
    benchmark.group = "synthetic control"
    x1, x0, v = problems["x1"], problems["x0"], problems["v"]
    benchmark.pedantic(lambda: [nnls_weights(x1[i], x0[i], v[i]) for i in range(len(x1))],
                       rounds=sizes.rounds, iterations=1)
    benchmark.extra_info.update(kind="nnls", donors=problems["donors"], fits=len(x1),
                                max_weight_diff=0.0)


def test_synth_slsqp(benchmark: Any, problems: dict[str, Any], sizes: Any) -> None:
    benchmark.group = "synthetic control"
    n = min(sizes.slsqp_fits, len(problems["x1"]))
    x1, x0, v = problems["x1"][:n], problems["x0"][:n], problems["v"][:n]
    w = np.empty((n, problems["donors"]))

    def fit() -> None:
        for i in range(n):
            w[i] = slsqp_weights(x1[i], x0[i], v[i])

    benchmark.pedantic(fit, rounds=1, iterations=1)
    benchmark.extra_info.update(kind="slsqp", donors=problems["donors"], fits=n,
                                max_weight_diff=float(np.abs(w - problems["nnls"][:n]).max()))
