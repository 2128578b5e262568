"""Runs at scale: streaming accumulators, Dask, checkpoint and resume, progress.

References: docs/model.md section 9.4 (the same config and seed give bit-identical
results whatever the threads, chunks or workers; scenarios are drawn in
fixed-size blocks with streams spawned by block index) and the module
docstrings of lobsim.scale.streaming (exactness of sums and tail sets, the quantile
error bound) and lobsim.scale.store (the checkpoint protocol); docs/scale.md.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import tomllib
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import lobsim.scale.runner
from lobsim import load_config, simulate, summarize
from lobsim.analysis.summary import QUANTILES
from lobsim.cli.commands import main
from lobsim.cli.scale import progress_factory
from lobsim.kernels import reductions as R
from lobsim.scale import finalize as F
from lobsim.scale import streaming as S
from lobsim.scale.cluster import DaskExecutor
from lobsim.scale.runner import run
from lobsim.scale.store import RunIdentity, StoreError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)


def _with_block_size(path: Path, block_size: int) -> Any:
    cfg = load_config(path)
    return dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation,
                                                                   block_size=block_size))


@pytest.fixture(scope="module")
def demo():
    """configs/basket_demo.toml (tranches, risk bands, every mechanism) in blocks of 512."""
    return _with_block_size(CONFIGS / "basket_demo.toml", 512)


@pytest.fixture(scope="module")
def cluster():
    """A real two-worker Dask cluster (threads in this process: fast to start)."""
    ex = DaskExecutor.local(2, processes=False)
    yield ex
    ex.close()


# ---------------------------------------------------------------------------
# 1. The primitives: exact sums, histogram bins
# ---------------------------------------------------------------------------
def _exact(digits: np.ndarray) -> Fraction:
    return Fraction(F.to_int(digits), 2 ** R.EXP_OFFSET)


@settings(max_examples=200)
@given(st.lists(FINITE, max_size=40), st.randoms(use_true_random=False))
def test_superaccumulator_is_exact_in_any_order(xs, rnd):
    acc = np.zeros((1, R.N_DIGITS), np.int64)
    for x in xs:
        R.add_float(acc, 0, x)
    R.normalize(acc)
    assert _exact(acc[0]) == sum((Fraction(x) for x in xs), Fraction(0))
    # another order, split in two accumulators and merged: the same bits
    ys = list(xs)
    rnd.shuffle(ys)
    k = rnd.randint(0, len(ys))
    a = np.zeros((1, R.N_DIGITS), np.int64)
    b = np.zeros((1, R.N_DIGITS), np.int64)
    for x in ys[:k]:
        R.add_float(a, 0, x)
    for x in ys[k:]:
        R.add_float(b, 0, x)
    R.normalize(a)
    R.normalize(b)
    a += b
    R.normalize(a)
    np.testing.assert_array_equal(a, acc)


@settings(max_examples=100)
@given(st.lists(st.floats(-1e12, 1e12) | st.sampled_from([0.0, 1.0, -1.0]), min_size=1,
                max_size=40))
def test_block_moments_are_exact_sums(xs):
    # per block, compensated sums of x and of the exact squares, added exactly:
    # for a short block the sums are exact (TwoSum errors are exact; the
    # compensation of up to 40 terms holds them exactly in these ranges)
    x = np.array(xs)[:, None]
    acc1 = np.zeros((1, R.N_DIGITS), np.int64)
    acc2 = np.zeros((1, R.N_DIGITS), np.int64)
    flags = np.zeros((1, 4), np.int64)
    R.reduce_moments(x, x.shape[0], acc1, acc2, flags)
    s1 = sum((Fraction(v) for v in xs), Fraction(0))
    s2 = sum((Fraction(v) ** 2 for v in xs), Fraction(0))
    scale = max(sum(abs(Fraction(v)) for v in xs), Fraction(1))
    assert abs(_exact(acc1[0]) - s1) <= scale * Fraction(2) ** -100
    assert abs(_exact(acc2[0]) - s2) <= scale * scale * Fraction(2) ** -100
    assert not flags.any()


def test_non_finite_values_are_counted_not_summed():
    x = np.array([[1.0], [np.nan], [np.inf], [2.0]])
    acc1 = np.zeros((1, R.N_DIGITS), np.int64)
    acc2 = np.zeros((1, R.N_DIGITS), np.int64)
    flags = np.zeros((1, 4), np.int64)
    R.reduce_moments(x, 4, acc1, acc2, flags)
    assert flags[0].tolist() == [1, 1, 0, 0]
    assert _exact(acc1[0]) == 3


def _bin(v: float, k: int = S.HIST_MANTISSA_BITS) -> int:
    bits = int(np.float64(v).view(np.int64))
    page, off = R.hist_bin(bits, k, (1023 + S.HIST_LOW) << 52, (1023 + S.HIST_HIGH) << 52,
                            S.HIST_HIGH - S.HIST_LOW)
    assert 0 <= off < 2 ** k
    return int(page) * 2 ** k + int(off)


@settings(max_examples=300)
@given(FINITE, FINITE)
def test_histogram_bins_are_ordered_and_narrow(a, b):
    lo, hi = min(a, b), max(a, b)
    assert _bin(lo) <= _bin(hi)
    k = S.HIST_MANTISSA_BITS
    if 2.0 ** S.HIST_LOW <= abs(a) < 2.0 ** (S.HIST_HIGH - 1):
        # a bin is at most 2**-k |a| wide: anything farther from a is in another bin
        step = abs(a) * 2.0 ** -k * (1 + 1e-12)
        assert _bin(a + step) > _bin(a)
        assert _bin(a - step) < _bin(a)
    elif abs(a) < 2.0 ** S.HIST_LOW:
        assert _bin(a) == _bin(0.0)


# ---------------------------------------------------------------------------
# 2. Streaming summary against the full-array summary
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_full(demo):
    return simulate(demo, scenarios=6000, seed=11)


def _blocks(ds: xr.Dataset, block_size: int) -> list[xr.Dataset]:
    n = ds.sizes["scenario"]
    return [ds.isel(scenario=slice(lo, min(lo + block_size, n)))
            for lo in range(0, n, block_size)]


def _quantile_bound(x: np.ndarray, levels: tuple[float, ...]) -> np.ndarray:
    """The stated bound: 2**-(k+1) |x_(ceil(p n))| + 2**HIST_LOW per level."""
    n = x.shape[0]
    xs = np.sort(x, axis=0)
    out = []
    for p in levels:
        k = n - math.floor(round(n * (1.0 - p), 9)) - 1  # index of the order statistic
        a = np.abs(xs[min(max(k, 0), n - 1)])
        out.append(2.0 ** -(S.HIST_MANTISSA_BITS + 1) * a + 2.0 ** S.HIST_LOW)
    return np.array(out)


def test_streaming_summary_matches_summarize(demo, demo_full):
    ds = demo_full
    full = summarize(ds)
    plan = S.Plan.from_template(ds, ds.sizes["scenario"], demo.simulation.block_size)
    assert plan.tail_keep < ds.sizes["scenario"]  # tail sets really are truncated
    acc = S.Accumulator(plan)
    for b, blk in enumerate(_blocks(ds, plan.block_size)):
        acc.add_block(b, blk)
    got = acc.summary()
    assert set(got.data_vars) == set(full.data_vars)
    assert set(got.coords) == set(full.coords)
    for name, var in full.data_vars.items():
        assert got[name].dims == var.dims, name
    for name, coord in full.coords.items():
        np.testing.assert_array_equal(got[name].values, coord.values, err_msg=str(name))
    assert got.attrs["scenarios"] == ds.sizes["scenario"]

    exact = [v for v in full.data_vars if v.endswith(("default_probability",
                                                      "total_loss_probability", "loss_var",
                                                      "loss_var_se"))]
    exact += ["probability_pays_more_than_saves", "rmspe", "tranche_share"]
    for name in exact:  # counts and exact tail sets: bit for bit
        np.testing.assert_array_equal(got[name].values, full[name].values, err_msg=name)
    quantiles = {"multiple_quantile", "irr_quantile", "department_payment_quantile",
                 "minimum_detectable_effect", "minimum_detectable_effect_share"}
    for name in full.data_vars:
        base = str(name).removeprefix("basket_").removeprefix("tranche_")
        if name in exact or base in quantiles or base.removesuffix("_se") in quantiles:
            continue
        # exact sums against numpy's float sums: rounding only
        a, b = got[name].values, full[name].values
        scale = np.nanmax(np.abs(b)) if np.isfinite(b).any() else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12 * scale, err_msg=name)

    # histogram quantiles: within the stated bound of numpy's
    groups = [("", ds.investor_payment.values, ds.principal.values, ds.irr.values),
              ("basket_", ds.basket_payment.values, ds.basket_principal.values,
               ds.basket_irr.values),
              ("tranche_", ds.tranche_payment.values, ds.tranche_principal.values,
               ds.tranche_irr.values)]
    checked = 0
    for prefix, pay, principal, irr in groups:
        for name, x in (("multiple_quantile", pay / principal), ("irr_quantile", irr)):
            err = np.abs(got[prefix + name].values - full[prefix + name].values)
            bound = _quantile_bound(x, QUANTILES)
            assert (err <= bound).all(), (prefix + name, (err - bound).max())
            checked += err.size
    # the MDE, q95 - q20 of the prediction error: within the sum of the two quantiles' bounds
    pe = ds.prediction_error.values
    err = np.abs(got.minimum_detectable_effect.values - full.minimum_detectable_effect.values)
    bound = _quantile_bound(pe, (0.95, 0.2)).sum(axis=0)
    assert (err <= bound).all() and (full.minimum_detectable_effect.values > 0).any()
    target = ds.target_units.values
    err = np.abs(got.minimum_detectable_effect_share.values
                 - full.minimum_detectable_effect_share.values)
    assert (err <= bound / target * (1 + 1e-12)).all()
    pay = ds.department_payment.values
    err = np.abs(got.department_payment_quantile.values - full.department_payment_quantile.values)
    assert (err <= _quantile_bound(pay, (0.5, 0.95, 0.99))).all()
    # an atom (no payment at all) is reported exactly
    zero = full.department_payment_quantile.values == 0.0
    assert zero.any() and (got.department_payment_quantile.values[zero] == 0.0).all()
    assert checked > 300


def test_merges_are_bit_identical_for_any_partition_and_order(demo, demo_full):
    ds = demo_full
    plan = S.Plan.from_template(ds, ds.sizes["scenario"], demo.simulation.block_size)
    blocks = _blocks(ds, plan.block_size)
    reference = S.Accumulator(plan)
    for b, blk in enumerate(blocks):
        reference.add_block(b, blk)
    ref_state = {k: v.copy() for k, v in reference.state().items()}
    rng = np.random.default_rng(5)
    for trial in range(3):
        order = rng.permutation(len(blocks))
        cuts = np.sort(rng.choice(np.arange(1, len(blocks)), size=3, replace=False))
        merged = S.Accumulator(plan)
        for group in np.split(order, cuts):
            # a task: its own accumulator, floored by what is merged so far
            task = S.Accumulator(plan, floor=merged.tail_floor() if trial else None)
            for b in group:
                task.add_block(int(b), blocks[b])
            state = pickle.loads(pickle.dumps(task)).state() if trial == 2 else task.state()
            merged.merge_state(state)
        assert S.states_identical(merged.state(), ref_state), trial
    xr.testing.assert_identical(merged.summary(), reference.summary())
    # a different block set is a different state (the comparison can fail)
    partial = S.Accumulator(plan)
    for b, blk in enumerate(blocks[:-1]):
        partial.add_block(b, blk)
    assert not S.states_identical(partial.state(), ref_state)
    with pytest.raises(ValueError, match="in both"):
        partial.merge(reference)


@settings(max_examples=200)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 5.0]) | FINITE, min_size=1, max_size=80),
       st.data())
def test_quickselect_finds_the_kth_smallest(xs, data):
    k = data.draw(st.integers(0, len(xs) - 1))
    a = np.array(xs)
    assert R.kth_smallest(a, k) == np.sort(xs)[k]
    assert sorted(a.tolist()) == sorted(xs)  # a permutation


def test_tail_sets_keep_ties_at_the_boundary():
    # many equal losses (a total loss) around the VaR: the boundary's count is exact
    m = 5
    buf = np.empty((1, 8))
    nv, bval = np.zeros(1, np.int64), np.full(1, -np.inf)
    bcnt = np.zeros(1, np.int64)
    values = [3.0, 7.0, 7.0, 1.0, 7.0, 9.0, 7.0, 2.0, 7.0, 8.0, 7.0, 0.5]
    for v in values:
        R.tail_insert(buf, nv, bval, bcnt, 0, v, m)
    R.tail_compact(buf, nv, bval, bcnt, 0, m)
    kept = sorted(buf[0, :nv[0]].tolist())
    # the five largest are 9, 8, 7, 7, 7: boundary 7 with all six of its copies
    assert kept == [8.0, 9.0] and bval[0] == 7.0 and bcnt[0] == 6


# ---------------------------------------------------------------------------
# 3. Executors: threads, chunk sizes, a real Dask cluster, a scheduler address
# ---------------------------------------------------------------------------
def test_full_results_are_bit_identical_on_every_executor(demo, cluster, tmp_path):
    n, seed = 2000, 4
    reference = simulate(demo, scenarios=n, seed=seed, threads=1)
    runs = {
        "threads=2, 3 blocks a task": run(demo, scenarios=n, seed=seed, threads=2,
                                          chunk_size=1500),
        "2 Dask workers": run(demo, scenarios=n, seed=seed, executor=cluster),
        "scheduler address": run(demo, scenarios=n, seed=seed,
                                 scheduler=cluster.client.scheduler.address),
        "zarr store, Dask": run(demo, scenarios=n, seed=seed, executor=cluster,
                                out=tmp_path / "r.zarr", chunk_size=1024).load(),
    }
    for label, ds in runs.items():
        assert ds.identical(reference), label
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "r.zarr").load(), reference)


def test_streaming_is_bit_identical_on_every_executor(demo, cluster, tmp_path):
    n, seed = 2000, 4
    reference = run(demo, scenarios=n, seed=seed, stream=True, threads=1, chunk_size=512)
    for label, kwargs in {
        "threads=2, 2 blocks a task": dict(threads=2, chunk_size=1024),
        "2 Dask workers": dict(executor=cluster, chunk_size=512),
        "a LocalCluster of its own": dict(workers=2, processes=False),
        "scheduler address": dict(scheduler=cluster.client.scheduler.address),
        "zarr store": dict(threads=2, out=tmp_path / "s.zarr"),
    }.items():
        got = run(demo, scenarios=n, seed=seed, stream=True, **kwargs)
        assert got.identical(reference), label
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "s.zarr").load(), reference)
    other = run(demo, scenarios=n, seed=seed + 1, stream=True, threads=2)
    assert not other.identical(reference)


def test_progress_counts_every_scenario(demo, cluster):
    calls: list[tuple[str, int, int]] = []

    class Bar:
        def __init__(self, total: int, initial: int = 0, desc: str = "") -> None:
            self.desc, self.total, self.done = desc, total, initial

        def update(self, k: int) -> None:
            self.done += k

        def close(self) -> None:
            calls.append((self.desc, self.total, self.done))

    for kwargs in (dict(threads=2), dict(executor=cluster)):
        calls.clear()
        run(demo, scenarios=2000, seed=1, stream=True, progress=Bar, **kwargs)
        assert calls == [("scenarios", 2000, 2000)]
    # quiet when asked, and when not on a terminal (as under pytest)
    assert progress_factory(quiet=True) is None
    assert progress_factory(quiet=False) is None
    tty = type("TTY", (), {"isatty": lambda self: True, "write": lambda self, s: len(s),
                           "flush": lambda self: None})()
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = tty
    try:
        make = progress_factory(quiet=False)
        assert make is not None
        bar = make(total=10)
        bar.update(10)
        bar.close()
    finally:
        sys.stdout, sys.stderr = old


# ---------------------------------------------------------------------------
# 4. Checkpoint and resume
# ---------------------------------------------------------------------------
def _write_config(tmp_path: Path, block_size: int) -> Path:
    text = (CONFIGS / "birmingham_jsa.toml").read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    assert doc["simulation"]["block_size"] == 4096
    path = tmp_path / "bham.toml"
    path.write_text(text.replace("block_size = 4096", f"block_size = {block_size}"),
                    encoding="utf-8")
    return path


def _marked(store: Path) -> np.ndarray:
    import zarr

    try:
        marks = zarr.open_group(str(store / "_lobsim"), mode="r")["block_checksum"][...]
    except Exception:  # not created yet
        return np.zeros(0, bool)
    return np.asarray(marks).any(axis=(1, 2))  # (block, variable, digest)


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, capsys, monkeypatch):
    block, n = 256, 256 * 40
    config = _write_config(tmp_path, block)
    store = tmp_path / "bham.zarr"
    cmd = [sys.executable, "-m", "lobsim.cli", "run", str(config), "--scenarios", str(n),
           "--out", str(store), "--threads", "1", "--chunk-size", str(2 * block), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 120
    try:
        while _marked(store).sum() < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no block recorded in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    marked = _marked(store)
    assert 4 <= marked.sum() < marked.size == 40, marked.sum()

    # a half-written block: data changed under its marker (it must be redone)
    import zarr

    bad = int(np.flatnonzero(marked)[1])
    pay = zarr.open_group(str(store), mode="r+")["investor_payment"]
    pay[bad * block:(bad + 1) * block] = -1.0
    assert main(["summary", str(store)]) == 2  # not complete: refused
    assert "did not finish" in capsys.readouterr().err

    # another seed is another run: refused with both hashes, one line, exit 2
    assert main(["run", str(config), "--scenarios", str(n), "--seed", "1", "--out", str(store),
                 "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    cfg = load_config(config)
    ids = [RunIdentity(cfg.hash, seed, n, block, "results", lobsim.__version__)
           for seed in (cfg.simulation.seed, 1)]
    assert len(err.strip().splitlines()) == 1 and err.startswith("lobsim: error:")
    assert ids[0].hash in err and ids[1].hash in err

    done: list[int] = []
    task = lobsim.scale.runner.task_outputs

    def recording(spec: Any, blocks: tuple[int, ...]) -> Any:
        done.extend(blocks)
        return task(spec, blocks)

    monkeypatch.setattr(lobsim.scale.runner, "task_outputs", recording)
    assert main(["run", str(config), "--scenarios", str(n), "--out", str(store), "--resume",
                 "--chunk-size", str(8 * block), "--quiet"]) == 0
    expected = set(np.flatnonzero(~marked).tolist()) | {bad}
    assert sorted(done) == sorted(expected)  # only the missing blocks and the bad one
    resumed = xr.open_zarr(store).load()
    xr.testing.assert_identical(resumed, simulate(cfg, scenarios=n))
    assert main(["summary", str(store), "--json"]) == 0
    assert '"lobsim.summary/1"' in capsys.readouterr().out


def test_interrupted_stream_resumes_from_its_checkpoint(demo, tmp_path):
    import shutil

    import zarr

    n, seed = 2048, 2
    store, damaged = tmp_path / "s.zarr", tmp_path / "damaged.zarr"
    reference = run(demo, scenarios=n, seed=seed, stream=True, threads=1)

    class Interrupt(Exception):
        pass

    class Bar:
        stop = True
        initial = -1

        def __init__(self, total: int, initial: int = 0, desc: str = "") -> None:
            self.done = Bar.initial = initial

        def update(self, k: int) -> None:
            self.done += k
            if self.done >= n // 2 and Bar.stop:
                raise Interrupt

        def close(self) -> None:
            pass

    with pytest.raises(Interrupt):  # checkpoints after every task, then dies half-way
        run(demo, scenarios=n, seed=seed, stream=True, threads=1, chunk_size=512, out=store,
            progress=Bar, checkpoint_interval=0.0)
    shutil.copytree(store, damaged)
    meta = zarr.open_group(str(damaged / "_lobsim"), mode="r+")
    snapshot = zarr.open_group(str(damaged / "_lobsim" / meta.attrs["state"]), mode="r+")
    snapshot["sum1"][0, 0] = 12345  # a snapshot that does not match its checksum
    Bar.stop = False
    got = run(demo, scenarios=n, seed=seed, stream=True, threads=2, chunk_size=1024, out=store,
              resume=True, progress=Bar)
    assert 0 < Bar.initial < n  # it started from the checkpoint
    xr.testing.assert_identical(got, reference)
    xr.testing.assert_identical(xr.open_zarr(store).load(), reference)
    got = run(demo, scenarios=n, seed=seed, stream=True, threads=2, out=damaged, resume=True,
              progress=Bar)
    assert Bar.initial == 0  # the damaged snapshot was not merged: it started over
    xr.testing.assert_identical(got, reference)
    with pytest.raises(StoreError, match="exists"):
        run(demo, scenarios=n, seed=seed, stream=True, out=store)


def test_cli_stream_and_zarr_round_trip(tmp_path, capsys, cluster):
    config = str(CONFIGS / "birmingham_jsa.toml")
    assert main(["run", config, "--scenarios", "3000", "--stream", "--out",
                 str(tmp_path / "s.nc"), "--quiet"]) == 0
    assert main(["summary", str(tmp_path / "s.nc")]) == 0
    text = capsys.readouterr().out
    assert "bham-jsa" in text and "3000 scenarios" in text
    assert main(["run", config, "--scenarios", "3000", "--stream", "--out",
                 str(tmp_path / "d.nc"), "--scheduler", cluster.client.scheduler.address]) == 0
    assert "bham-jsa" in capsys.readouterr().out
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "d.nc"),
                                xr.load_dataset(tmp_path / "s.nc"))
    assert main(["run", config, "--scenarios", "3000", "--resume"]) == 2
    assert "--resume needs --out" in capsys.readouterr().err
    assert main(["run", config, "--scenarios", "3000", "--out", str(tmp_path / "x.csv")]) == 2
    capsys.readouterr()
