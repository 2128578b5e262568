"""The compiled steps after the engine against their plain-numpy twins (issue 16).

Each compiled loop (lobsim.kernels.flows, lobsim.kernels.sums) performs the
twin's IEEE operations in the twin's order, so the comparisons are exact:
no FMA or SIMD reassociation can enter (numba compiles without fast-math,
and the sums' order is fixed by the loops). tests/post_twins.py holds the
twins, the code the compiled versions replaced.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lobsim
import post_twins as twin
from lobsim import load_config, simulate
from lobsim.analysis import stats
from lobsim.kernels import sums
from lobsim.model import tax, waterfall
from lobsim.model.config import Tranche
from lobsim.model.shortfall import cap_units, provider_shortfall

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _hard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Values over many binades with cancellations: sums whose rounding order matters."""
    x = rng.standard_normal(n) * 10.0 ** rng.integers(-200, 200, n)
    return np.concatenate([x, -x[: n // 3] * (1 + 2.0**-52), rng.standard_normal(n // 2)])


@pytest.mark.parametrize("seed", range(20))
def test_exact_sum_is_fsum(seed):
    rng = np.random.default_rng(seed)
    x = _hard(rng, int(rng.integers(0, 300)))
    rng.shuffle(x)
    assert stats.exact_sum(x) == math.fsum(x.tolist())
    ends = rng.integers(0, x.size + 1, 5)
    assert stats.exact_prefix_sums(x, ends).tolist() == [math.fsum(x[:e].tolist())
                                                        for e in ends.tolist()]


def test_exact_sum_half_way_and_non_finite():
    # round half to even decided by the partials below: fsum's correction step
    for x in ([1.0, 2.0**-53, 2.0**-106], [1.0, 2.0**-53, -(2.0**-106)], [1e308, -1e308, 1e308],
              [2.0**53, 1.0, 2.0**-60], []):
        assert stats.exact_sum(np.array(x)) == math.fsum(x)
    assert math.isnan(stats.exact_sum(np.array([1.0, math.nan])))
    assert stats.exact_sum(np.array([1.0, math.inf])) == math.inf
    with pytest.raises(ValueError):
        stats.exact_sum(np.array([math.inf, -math.inf]))
    with pytest.raises(OverflowError):
        stats.exact_sum(np.array([1e308, 1e308]))
    assert sums.exact_sum(np.array([1e308, 1e308]))[1] == sums.NOT_FINITE


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 16, 17, 127, 128, 129, 300, 1000, 4099])
def test_pairwise_sum_is_numpys(n):
    rng = np.random.default_rng(n)
    x = _hard(rng, n)[:n]
    rows = x.reshape(1, -1)
    assert sums.pairwise_sum(x, 0, x.size) == rows.sum(axis=1)[0]


@pytest.mark.parametrize("shape", [(500, 2), (3000, 60), (1, 4), (2, 3), (400, 5, 7), (600,),
                                   (300, 1)])
@pytest.mark.parametrize("kind", ["float", "bool", "weighted", "nan"])
def test_mean_se_is_numpys(shape, kind):
    rng = np.random.default_rng(len(shape) + shape[0])
    a = rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 4, shape)
    w = None
    if kind == "bool":
        a = a > 0.3
    elif kind == "weighted":
        w = np.exp(0.3 * rng.standard_normal(shape[0]))
    elif kind == "nan" and a.size > 1:
        a.flat[1] = math.nan
    m, se = stats.mean_se(a, w)
    m0, se0 = stats._mean_se_numpy(a, w)
    np.testing.assert_array_equal(m, m0)
    np.testing.assert_array_equal(se, se0)
    # a transposed view (scenario not the first axis in memory) goes to numpy itself
    if a.ndim == 2:
        t = np.ascontiguousarray(a.T).T
        np.testing.assert_array_equal(stats.mean_se(t, w)[0], stats._mean_se_numpy(t, w)[0])


@pytest.mark.parametrize("weighted", [False, True])
def test_tails_and_quantiles_are_the_fsum_twins(weighted):
    rng = np.random.default_rng(5)
    n = 4000
    # atoms (ties) and a continuous part, as LOB losses and IRRs
    x = np.where(rng.random(n) < 0.3, 0.0, np.round(rng.gamma(2.0, 1e5, n), -2))
    w = np.exp(0.5 * rng.standard_normal(n)) if weighted else None
    a = stats.Atoms.of(x, w)
    a0 = twin.atoms_of(x, w)
    for name in ("value", "weight", "weight2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(a0, name))
    assert (a.scenarios, a.total) == (a0.scenarios, a0.total)
    levels = (0.01, 0.5, 0.9, 0.95, 0.99, 0.995)
    np.testing.assert_array_equal(stats.quantile_ses(a, levels),
                                  [twin.quantile_se(a0, p) for p in levels])
    for p in levels:
        t = stats.tail(a, p)
        assert (t.var, t.var_se, t.es, t.es_se) == pytest.approx(twin.tail(a0, p), abs=0, rel=0)


def _random_flows(rng, n, n_t):
    received = np.where(rng.random((n, n_t)) < 0.5, 0.0, rng.gamma(1.5, 60.0, (n, n_t)))
    paid = np.zeros(n_t)
    paid[: max(1, n_t // 3)] = rng.uniform(10.0, 100.0, max(1, n_t // 3))
    return paid, received


@pytest.mark.parametrize("n_t", [1, 2, 8, 9, 20])
def test_after_tax_flows_are_the_twins(n_t):
    rng = np.random.default_rng(n_t)
    paid, received = _random_flows(rng, 3000, n_t)
    received[0, 0] = math.nan  # a NaN propagates as in numpy
    for relief, rate in ((0.0, 0.0), (0.3, 0.2), (0.5, 0.45)):
        np.testing.assert_array_equal(tax.after_tax_flows(paid, received, relief, rate),
                                      twin.after_tax_flows(paid, received, relief, rate))


def test_holding_series_and_shortfall_on_a_run():
    cfg = load_config(CONFIGS / "basket_demo.toml")
    ds = simulate(cfg, scenarios=1500, seed=11)
    cap = np.array([cap_units(b) for b in cfg.bonds if b.id in set(ds.bond.values.tolist())])
    np.testing.assert_array_equal(
        ds.provider_shortfall.values,
        twin.provider_shortfall(ds.true_units.values, ds.paid_units.values, cap))
    series = tax.holding_series(ds)
    for h in range(ds.sizes["holding"]):
        paid, received = tax.instrument_flows(ds, str(ds.holding_kind.values[h]),
                                              str(ds.holding_instrument.values[h]))
        pre, post, loss = twin.holding_flows(paid, received, float(ds.holding_relief.values[h]),
                                             float(ds.holding_tax_rate.values[h]),
                                             tax.LOSS_ROUNDING)
        np.testing.assert_array_equal(series["flow"][:, h], pre)
        np.testing.assert_array_equal(series["after_tax_flow"][:, h], post)
        np.testing.assert_array_equal(series["after_tax_loss"][:, h], loss)
    # the tranche waterfall of every tranched basket, as the twin gives it
    for spec in (b for b in cfg.baskets if b.tranches):
        k = list(ds.basket.values).index(spec.id)
        args = (ds.basket_cashflow.values[:, k, :], waterfall.basket_paid_in(ds)[k],
                ds.time.values, spec.tranches,
                None if spec.guarantee is None else spec.guarantee.cap,
                int(waterfall.basket_final_index(ds)[k]))
        _same_waterfall(waterfall.run_waterfall(*args), twin.run_waterfall(*args))


def _same_waterfall(got: waterfall.WaterfallResult, want: waterfall.WaterfallResult) -> None:
    for name in ("received", "guarantee", "protection", "paid_in", "payment"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)


@pytest.mark.parametrize("seed", range(6))
def test_waterfall_is_the_twin_on_random_terms(seed):
    rng = np.random.default_rng(seed)
    n_t, n_k = int(rng.integers(2, 12)), int(rng.integers(1, 5))
    times = np.cumsum(np.concatenate(([0.0], rng.choice([0.0, 0.5, 1.0, 2.0], n_t - 1))))
    paid_in = np.where(rng.random(n_t) < 0.4, rng.uniform(50.0, 200.0, n_t), 0.0)
    paid_in[0] = 100.0
    cash = np.where(rng.random((2000, n_t)) < 0.4, 0.0, rng.gamma(1.2, 40.0, (2000, n_t)))
    share = rng.dirichlet(np.ones(n_k))
    seniority = rng.permutation(n_k) + 1
    tranches = [Tranche(id=f"t{k}", share=float(share[k]), seniority=int(seniority[k]),
                        premium=float(rng.uniform(0.0, 0.12)),
                        early_coupon=float(rng.choice([0.0, 0.03])),
                        protected=bool(rng.random() < 0.3)) for k in range(n_k)]
    for cap in (None, 0.0, 30.0):
        for final in (None, int(rng.integers(0, n_t))):
            args = (cash, paid_in, times, tranches, cap, final)
            _same_waterfall(waterfall.run_waterfall(*args), twin.run_waterfall(*args))
    # a NaN payment propagates as numpy's minimum propagates it
    bad = cash.copy()
    bad[3, 1] = math.nan
    _same_waterfall(waterfall.run_waterfall(bad, paid_in, times, tranches, 30.0),
                    twin.run_waterfall(bad, paid_in, times, tranches, 30.0))
    assert dataclasses.is_dataclass(tranches[0])


def test_provider_shortfall_shapes_and_nan():
    cfg = load_config(CONFIGS / "birmingham_jsa.toml")
    bond = cfg.bonds[0]
    true = np.array([[6000.0, 4000.0, math.nan, -0.0]]).T
    paid = np.array([[4500.0, 4200.0, 1.0, 0.0]]).T
    cap = np.array([cap_units(bond)])
    got = provider_shortfall(true, paid, [bond])
    np.testing.assert_array_equal(got, twin.provider_shortfall(true, paid, cap))
    assert got.shape == (4, 1)


_FROM_CACHE = """
import numpy as np
from lobsim.kernels import flows, sums
x = np.arange(300.0)
assert sums.pairwise_sum(x, 0, 300) == x.reshape(1, -1).sum(axis=1)[0]
paid = np.array([10.0, 0.0, 0.0])
post = np.empty((2, 3)); pre = np.empty((2, 3)); loss = np.empty(2, np.bool_)
flows.holding_flows(np.cumsum(paid) - paid, paid, np.ones((2, 3)), 1.0, 0.2, -1e-9,
                    pre, post, loss)
print(int(loss.sum()))
"""


def test_cached_callers_of_the_pairwise_sum_load(tmp_path):
    # a cached numba function calling a recursive one crashed when loaded from the
    # cache (a segmentation fault in the second process): compile, then load
    src = str(Path(lobsim.__file__).resolve().parents[1])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", _FROM_CACHE], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == "2"  # 3 back for 10 in: both rows lose


@pytest.mark.parametrize("rows_per_thread", [1, 7, 4096])
def test_irrs_on_threads_are_the_one_thread_twins(monkeypatch, rows_per_thread):
    # each row is solved alone: any split among threads gives the twin's bits
    monkeypatch.setattr(waterfall, "MIN_ROWS_PER_THREAD", rows_per_thread)
    rng = np.random.default_rng(rows_per_thread)
    times = np.array([0.0, 1.0, 2.5, 3.0, 5.0])
    flows = np.where(rng.random((3001, 5)) < 0.4, 0.0, rng.gamma(1.5, 50.0, (3001, 5)))
    flows[:, 0] = -100.0
    flows[5] = 0.0  # nothing back: -1
    want = np.empty(flows.shape[0])
    twin.tax_irr_rows(times, flows, want)
    np.testing.assert_array_equal(tax.irr(times, flows), want)
    assert want[5] == -1.0
    t = [Tranche(id="s", share=0.6, seniority=1, premium=0.04, early_coupon=0.0,
                 protected=False),
         Tranche(id="j", share=0.4, seniority=2, premium=0.09, early_coupon=0.02,
                 protected=False)]
    result = waterfall.run_waterfall(flows[:, 1:] * 2.0, np.array([100.0, 50.0, 0.0, 0.0]),
                                     times[1:], t, 20.0)
    np.testing.assert_array_equal(waterfall.tranche_irr(result, times[1:]),
                                  twin.tranche_irr(result, times[1:]))
