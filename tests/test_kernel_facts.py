"""Machine-independent facts behind the engine's speed (issue 7's regression guard).

Speed itself lives in ``benchmarks/`` (a timed test on a shared CI machine
would be flaky). What can regress silently and is checked here: the number
of random draws a scenario costs (docs/model.md section 10.1: draw only what the payments
depend on) and that every kernel is compiled in nopython mode, without the
GIL, and cached on disk so that a second process starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

import lobsim
from lobsim import load_config
from lobsim.kernels.engine import simulate_block
from lobsim.model.blocks import OUTPUTS, allocate_outputs, block_generator
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
    ("configs/basket_demo.toml", 572, 18),
    ("configs/birmingham_jsa.toml", 14, 1),
])
def test_draws_per_scenario(config: str, normals: int, exponentials: int) -> None:
    world = build_world(load_config(ROOT / config))
    assert (world.n_normals, world.n_exponentials) == (normals, exponentials)
    # the kernel's generator ends exactly where drawing those counts ends
    n = 37
    gen = block_generator(5, 0)
    out = allocate_outputs(world, n)
    simulate_block(gen, n, *world.kernel_args, *[out[k] for k in OUTPUTS])
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
    a = dict(zip(simulate_block.py_func.__code__.co_varnames[2:], world.kernel_args,
                 strict=False))
    nd = a["s_ndates"]
    expected = (a["f_phik"].size + nd.sum() + nd[a["s_treated"].astype(bool)].sum() + 1
                + a["n_types"] + a["b_start"].size)
    assert world.n_normals == expected
    assert world.n_exponentials == int((a["p_hazard"] > 0).sum())


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
    simulate_block(block_generator(1, 0), 3, *world.kernel_args, *[out[k] for k in OUTPUTS])
    assert simulate_block.signatures
    for cres in simulate_block.overloads.values():
        assert not cres.objectmode
    assert np.isfinite(out["irr"]).all()
