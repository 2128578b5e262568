"""The chunked kernel (lobsim.kernels.chunked, production) against the scalar
reference (lobsim.kernels.engine), scenario by scenario.

Both get generators with the same seed, so scenario ``r`` sees the same
normals and exponentials in both (checked: both generators end in the same
state). Two comparisons on every world and block size:

* **exact**: the chunked kernel compiled with ``math.exp`` in place of
  :func:`lobsim.kernels.fastexp.exp_one` (its source, with that one line
  replaced) does every operation of the reference in the same order, so every
  output is bit for bit the reference's (NaN and the sign of zero included);
* **production**: with the polynomial exp, at most ``EXP_ULP`` = 2 ulp from
  libm's. An exp enters a measurement as ``yhat - y_noisy`` (a cancellation),
  so its error is absolute, about ``3 x 2 ulp`` of the levels ``yhat``,
  ``y_noisy`` (order of the bond's base level); caps, prices, sums over
  measurements, bonds and payers propagate it linearly. The tolerance is
  ``TOL`` = 1e-12 of the output's scale (its largest absolute value in the
  bond's or department's column plus the bond's base level), about 2,000
  times that bound: generous for propagation, still far below any modelled
  difference. IRRs within 1e-10 absolute (the root-finders stop at about
  1e-14 of the payments). Boolean outputs must agree exactly: a flip needs a
  measurement within about 1e-15 relative of its threshold, which these fixed
  seeds do not produce (deterministic, so not flaky).

Worlds: the bundled configs (basket demo, Birmingham, Brighter Futures, the
GM ward bond: count and percent outcomes, binary, schedule and per unit
payments, caps, cap groups, coupons, dated bonds, relapse, ramps) and each
with its bond terms perturbed at random (every mechanism x kind, verified
outcomes, cap groups, shrunk payment bases: tests/test_kernel_phases.perturbed),
an importance-sampling tilt and providers that fail; each with its bonds
pooled at random (pooled basket measurement, docs/model.md section 6.13: a
pre-pass measures every pool before any bond is paid); and Birmingham on the
shrunk basis as lobsim fixes it at signing. Block sizes 1, 63, 64, 65 and 130
(not multiples of the chunk: a last, partial chunk).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config
from lobsim.kernels import chunked, chunked_bonds, engine
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import allocate_outputs, block_generator, simulate_rows
from lobsim.model.world import World, build_world
from test_kernel_phases import perturbed

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("basket_demo", "birmingham_jsa", "brighter_futures", "gm_ward_bond")
SIZES = (1, 63, 64, 65, 130)
TOL = 1e-12  # relative to the output's scale, see the module docstring
IRR_TOL = 1e-10


#: Where the math.exp kernel's source is written, so that numba caches it like the
#: production kernel (a minute's compile): a folder per version of the kernels'
#: sources, since numba's cache does not see a change in a callee's module.
_KERNEL_SOURCES = hashlib.sha256(b"".join(
    p.read_bytes() for p in sorted(Path(chunked.__file__).parent.glob("*.py")))).hexdigest()[:16]
LIBM_DIR = Path(__file__).with_name("__pycache__") / f"libm-kernel-{_KERNEL_SOURCES}"


def _file_module(name: str, src: str) -> types.ModuleType:
    """Import ``src`` as module ``name`` from a file in LIBM_DIR (rewritten only if changed)."""
    path = LIBM_DIR / f"{name}.py"
    if not path.is_file() or path.read_text(encoding="utf-8") != src:
        LIBM_DIR.mkdir(parents=True, exist_ok=True)
        for old in LIBM_DIR.parent.glob("libm-kernel-*"):
            if old != LIBM_DIR:
                shutil.rmtree(old, ignore_errors=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # xdist workers import this too
        tmp.write_text(src, encoding="utf-8")
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _exact_kernel() -> types.ModuleType:
    """lobsim.kernels.chunked compiled with math.exp instead of the polynomial."""
    bonds_src = Path(chunked_bonds.__file__).read_text(encoding="utf-8")
    old = "from lobsim.kernels.fastexp import exp_one\n"
    assert old in bonds_src
    bonds_mod = _file_module("lobsim_v2_libm_bonds", bonds_src.replace(old, (
        "import math\n"
        "@njit(nogil=True, inline='always')\n"
        "def exp_one(x):\n"
        "    return math.exp(x)\n")))
    src = Path(chunked.__file__).read_text(encoding="utf-8")
    old = "from lobsim.kernels.chunked_bonds import ("
    assert old in src
    return _file_module("lobsim_v2_libm", src.replace(old, f"from {bonds_mod.__name__} import ("))


EXACT = _exact_kernel()


def pooled(world: World, rng: np.random.Generator, n_pools: int = 2) -> World:
    """``world`` with its bonds in ``n_pools`` pools at random (about a third alone)."""
    bonds = world.arrays.bonds
    pool = rng.integers(-1, n_pools, bonds.start.size)
    total = {p: bonds.target[pool == p].sum() for p in range(n_pools)}
    return world.derive(bonds=bonds._replace(
        pool=pool, pool_target=np.array([total.get(p, 0.0) for p in pool])))


def _worlds() -> list[tuple[str, World]]:
    found = []
    for name in CONFIGS:
        world = build_world(load_config(ROOT / "configs" / f"{name}.toml"))
        found.append((name, world))
        found.append((f"{name}-pooled", pooled(world, np.random.default_rng(100 + len(found)))))
        rng = np.random.default_rng(len(found))
        for v in range(2):
            w = perturbed(world, rng)
            p = w.arrays.programme
            fails = rng.random(p.hazard.size) < 0.7
            found.append((f"{name}-perturbed{v}", w.derive(programme=p._replace(
                tilt_global=float(rng.normal()), tilt_type=rng.normal(size=p.n_types),
                hazard=np.where(fails, rng.uniform(0.05, 0.4, p.hazard.size), 0.0)))))
        found.append((f"{name}-perturbed-pooled", pooled(found[-1][1], rng)))
    # a bond on the shrunk payment basis as lobsim fixes it at signing (k, prior)
    found.append(("birmingham_jsa-shrunk", build_world(load_config(
        ROOT / "configs" / "birmingham_jsa.toml",
        overrides=("bonds[0].payment.basis=shrunk",)))))
    return found


WORLDS = _worlds()


def _run(kernel: object, world: World, n: int, seed: int) -> tuple[Outputs, dict]:
    out = allocate_outputs(world, n)
    for a in out:
        a[...] = 7  # stale values: every output must be written
    gen = block_generator(seed, n)
    kernel.simulate_block(gen, n, *world.arrays, out)  # type: ignore[attr-defined]
    return out, gen.bit_generator.state


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint8) if a.dtype == np.bool_ else a.view(np.int64)


@pytest.fixture(scope="module", params=WORLDS, ids=[name for name, _ in WORLDS])
def world(request: pytest.FixtureRequest) -> World:
    return request.param[1]


@pytest.mark.parametrize("n", SIZES)
def test_same_arithmetic_is_bit_identical(world: World, n: int) -> None:
    ref, ref_state = _run(engine, world, n, 11)
    got, got_state = _run(EXACT, world, n, 11)
    np.testing.assert_array_equal(got_state["state"]["state"], ref_state["state"]["state"])
    for field in Outputs._fields:
        a, b = getattr(ref, field), getattr(got, field)
        diff = np.argwhere(_bits(a) != _bits(b))
        assert diff.size == 0, f"{field} differs first at {diff[0].tolist()}"


def _scale(a: np.ndarray, world: World, field: str) -> np.ndarray:
    """The scale of each column (bond, department x year, basket) of an output."""
    col = np.abs(np.where(np.isfinite(a), a, 0.0)).max(axis=0, initial=0.0)
    if a.ndim == 2 and a.shape[1] == world.arrays.bonds.start.size and field != "dated_payment":
        col = col + np.abs(world.arrays.bonds.base_level)
    return col


@pytest.mark.parametrize("n", SIZES)
def test_polynomial_exp_within_its_bound(world: World, n: int) -> None:
    ref, ref_state = _run(engine, world, n, 23)
    got, got_state = _run(chunked, world, n, 23)
    np.testing.assert_array_equal(got_state["state"]["state"], ref_state["state"]["state"])
    for field in Outputs._fields:
        a, b = getattr(ref, field), getattr(got, field)
        if a.dtype == np.bool_:
            np.testing.assert_array_equal(b, a, err_msg=field)
            continue
        np.testing.assert_array_equal(np.isfinite(b), np.isfinite(a), err_msg=field)
        fin = np.isfinite(a)
        if field in ("irr", "basket_irr"):
            np.testing.assert_allclose(b[fin], a[fin], rtol=0.0, atol=IRR_TOL, err_msg=field)
            continue
        bound = TOL * np.broadcast_to(_scale(a, world, field), a.shape)
        assert (np.abs(b - a)[fin] <= bound[fin]).all(), field


def test_production_runs_the_chunked_kernel() -> None:
    """simulate_rows calls the chunked kernel: its results are the chunked
    kernel's bit for bit (and not the reference's, whose exp differs)."""
    name, world = WORLDS[0]
    assert name == "basket_demo"
    n = 200
    via_rows = allocate_outputs(world, n)
    simulate_rows(world, block_generator(4, 0), via_rows)
    direct_gen = allocate_outputs(world, n)
    chunked.simulate_block(block_generator(4, 0), n, *world.arrays, direct_gen)
    for field in Outputs._fields:
        np.testing.assert_array_equal(getattr(via_rows, field), getattr(direct_gen, field))
    ref_gen = allocate_outputs(world, n)
    engine.simulate_block(block_generator(4, 0), n, *world.arrays, ref_gen)
    assert not np.array_equal(_bits(ref_gen.measured_units), _bits(via_rows.measured_units))


def test_pooling_changes_payments_not_measurements() -> None:
    """A pooled bond measures what it measured alone (its own control group) and
    is paid on the pool's performance: the payments move, the measurements not."""
    (name, alone), (pooled_name, pool) = WORLDS[0], WORLDS[1]
    assert (name, pooled_name) == ("basket_demo", "basket_demo-pooled")
    n = 130
    a, _ = _run(chunked, alone, n, 5)
    b, _ = _run(chunked, pool, n, 5)
    for field in ("true_units", "measured_units", "prediction_error", "department_saving"):
        np.testing.assert_array_equal(getattr(b, field), getattr(a, field), err_msg=field)
    members = pool.arrays.bonds.pool >= 0
    assert not np.array_equal(a.paid_units[:, members], b.paid_units[:, members])
    np.testing.assert_array_equal(a.paid_units[:, ~members], b.paid_units[:, ~members])
