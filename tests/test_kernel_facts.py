"""Machine-independent facts behind the engine's speed (issue 7's regression guard).

Speed itself lives in ``benchmarks/`` (a timed test on a shared CI machine
would be flaky). What can regress silently and is checked here: the number
of random draws a scenario costs (docs/model.md section 10.1: draw only what the payments
depend on) and that every kernel is compiled in nopython mode, without the
GIL, and cached on disk so that a second process starts fast.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

import lobsim
from lobsim import load_config
from lobsim.kernels.chunked import simulate_block
from lobsim.model.blocks import allocate_outputs, block_generator, simulate_rows
from lobsim.model.world import build_world

ROOT = Path(__file__).resolve().parents[1]


@njit
def _draw(gen, n, n_normals, n_exponentials):
    """What the engine is allowed to draw, in its order: normals, then exponentials."""
    for _ in range(n):
        for _ in range(n_normals):
            gen.standard_normal()
        for _ in range(n_exponentials):
            gen.standard_exponential()


@pytest.mark.parametrize(("config", "normals", "exponentials"), [
    # the totals the benchmarks divide by (about 9.5 normals per bond-scenario
    # on the demo, docs/model.md section 10); a change to either is a change to the model
    ("configs/basket_demo_noisy.toml", 572, 18),
    # the demo book: its 41 rate-card bonds read no donor series
    ("configs/basket_demo.toml", 418, 18),
    ("configs/birmingham_jsa.toml", 14, 1),
])
def test_draws_per_scenario(config: str, normals: int, exponentials: int) -> None:
    world = build_world(load_config(ROOT / config))
    assert (world.n_normals, world.n_exponentials) == (normals, exponentials)
    # the kernel's generator ends exactly where drawing those counts ends
    n = 37
    gen = block_generator(5, 0)
    simulate_rows(world, gen, allocate_outputs(world, n))
    expected = block_generator(5, 0)
    _draw(expected, n, normals, exponentials)
    got, want = gen.bit_generator.state, expected.bit_generator.state
    np.testing.assert_array_equal(got["state"]["state"], want["state"]["state"])
    assert (got["has_uint32"], got["uinteger"]) == (want["has_uint32"], want["uinteger"])


def test_draws_per_scenario_formula() -> None:
    """One normal per factor and date, per series and date (twice for treated
    series: state and noise), one global, one per type, one per bond; one
    exponential per provider with a failure hazard."""
    world = build_world(load_config(ROOT / "configs/basket_demo.toml"))
    a = world.arrays
    nd = a.series.ndates
    expected = (a.factors.phik.size + nd.sum() + nd[a.series.treated].sum() + 1
                + a.programme.n_types + a.bonds.start.size)
    assert world.n_normals == expected
    assert world.n_exponentials == int((a.programme.hazard > 0).sum())


def _dispatchers() -> list[tuple[str, CPUDispatcher]]:
    found = []
    for mod in pkgutil.walk_packages(lobsim.__path__, "lobsim."):
        if mod.name.endswith(".__main__"):  # runs the command line when imported
            continue
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                found.append((f"{module.__name__}.{name}", obj))
    return found


def test_kernels_are_nopython_nogil_and_cached() -> None:
    found = _dispatchers()
    assert len(found) >= 20  # the engine, synth, streaming, waterfall kernels
    for name, d in found:
        assert d.targetoptions.get("nopython", True), name
        assert d.targetoptions.get("nogil"), f"{name} holds the GIL: threads would serialise"
        assert not isinstance(d._cache, NullCache), f"{name} is not cached on disk"


def test_engine_compiles_without_object_mode() -> None:
    world = build_world(load_config(ROOT / "configs/birmingham_jsa.toml"))
    out = allocate_outputs(world, 3)
    simulate_rows(world, block_generator(1, 0), out)
    assert simulate_block.signatures
    for cres in simulate_block.overloads.values():
        assert not cres.objectmode
    assert np.isfinite(out.irr).all()


def test_engine_is_cached_for_a_second_process(tmp_path: Path) -> None:
    """The named groups are typed tuples numba can cache: a fresh process loads the
    compiled kernel from disk instead of compiling it again."""
    script = tmp_path / "second.py"
    script.write_text(
        "from lobsim import load_config\n"
        "from lobsim.kernels.chunked import simulate_block\n"
        "from lobsim.model.blocks import allocate_outputs, block_generator, simulate_rows\n"
        "from lobsim.model.world import build_world\n"
        f"world = build_world(load_config({str(ROOT / 'configs/birmingham_jsa.toml')!r}))\n"
        "simulate_rows(world, block_generator(1, 0), allocate_outputs(world, 3))\n"
        "print(sum(simulate_block.stats.cache_hits.values()),"
        " sum(simulate_block.stats.cache_misses.values()))\n", encoding="utf-8")
    for _ in range(2):  # the first may compile (a cold cache); the second must not
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    hits, misses = map(int, done.stdout.split())
    assert (hits, misses) == (1, 0)
