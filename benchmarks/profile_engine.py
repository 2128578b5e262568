"""Where the engine's time goes: the kernel with pieces removed, against the RNG floor.

Run from the repository root (about a minute)::

    python benchmarks/profile_engine.py [--config configs/basket_demo.toml] [--blocks 6]

The kernel's source (src/lobsim/kernels/engine.py) is compiled again with one piece
of work cut out at a time (the source file itself is not touched); each
variant runs the same blocks into the same preallocated outputs, so the
difference to the full kernel is what that piece costs. Variants whose anchor
text is no longer in the kernel are reported as ``n/a``. Removing a piece can
make other work dead code that the compiler drops too (removing the
measurements drops the area states they read), so savings do not add up
exactly. The rounds are interleaved and the best of each is kept.

Writes benchmarks/results/engine_profile.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numba import njit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import lobsim.kernels.engine as engine  # noqa: E402
from harness import machine, rng_floor  # noqa: E402
from lobsim import load_config  # noqa: E402
from lobsim.model.blocks import allocate_outputs, block_generator, output_rows  # noqa: E402
from lobsim.model.world import build_world  # noqa: E402

# piece -> (what it is, [(text in the kernel, replacement)]); the anchors are in
# simulate_block or in its phases (one module: a variant compiles them all)
EDITS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "basket IRR": ("root-finding on each basket's aggregated cash flows", [
        ("out.basket_irr[r, k] = solve_irr_years(baskets.steps, baskets.time, kflow, n_t, guess)",
         "out.basket_irr[r, k] = kflow[0]"),
        ("out.basket_irr[r, k] = solve_irr(baskets.time, kflow, n_t, guess)",
         "out.basket_irr[r, k] = kflow[0]")]),
    "baskets": ("basket aggregation and IRR", [
        ("        basket_flows(baskets, bonds, measurements, payments, bcash, kflow, out, r)\n",
         "")]),
    "bond IRR": ("per-bond IRR: pow for one payment date, solve_irr for several", [
        ("out.irr[r, b] = bond_irr(principal, cash, btime, bflow, nf)", "out.irr[r, b] = cash")]),
    "savings": ("true effect at each year end and department savings", [
        ("            yearly_savings(savings, bonds, b, scale, stop, full, sv_dense, dsav)\n", "")]),
    "payers": ("department payments per payer", [
        ("for q in range(payments.npayers[b]):\n        if mech == MECH_UNITS:",
         "for q in range(0):\n        if mech == MECH_UNITS:")]),
    "measurements": ("measurement loop: counterfactual, measured units, payments", [
        ("for i in range(nm):\n                bcash[b, i] = 0.0",
         "for i in range(0):\n                bcash[b, i] = 0.0")]),
    "area states": ("series states: factor terms and Cholesky rows (draws kept; a stand-in "
                    "const + L[j,j] z[j] keeps the values and branches realistic)", [
        ("""            acc = series.const[s, j]
            for i in range(j + 1):
                acc += series.chol[s, j, i] * zbuf[c + i]
            d = series.dates[s, j]
            xs[s * dmax + j] = acc + series.beta[s] * fac[fn, d] + series.gamma[s] * fac[fg, d]""",
         "            xs[s * dmax + j] = series.const[s, j] + series.chol[s, j, j] * zbuf[c + j]")]),
}
ALL_BUT_DRAWS = ["baskets", "bond IRR", "savings", "measurements", "area states"]


def variant(source: str, pieces: list[str]) -> Callable[..., object] | None:
    """The kernel compiled without ``pieces``; None if an anchor is missing."""
    for piece in pieces:
        for old, new in EDITS[piece][1]:
            if old not in source:
                return None
            source = source.replace(old, new)
    module = types.ModuleType("lobsim_engine_variant")
    exec(compile(source, "<engine variant>", "exec"), module.__dict__)
    return module.simulate_block


@njit(nogil=True)
def exp_loop(x, n):  # pragma: no cover - jitted
    acc = 0.0
    for i in range(n):
        acc += math.exp(x[i & 1023])
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/basket_demo.toml")
    ap.add_argument("--blocks", type=int, default=6, help="blocks of scenarios per run")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "results" / "engine_profile.md"))
    args = ap.parse_args(argv)

    cfg = load_config(ROOT / args.config)
    world = build_world(cfg)
    bs = cfg.simulation.block_size
    n = args.blocks * bs
    out = allocate_outputs(world, n)
    for a in out:
        a.fill(0)
    source = Path(engine.__file__).read_text(encoding="utf-8").replace("cache=True, ", "")

    def kernel_case(fn: Callable[..., object]) -> Callable[[], None]:
        def run() -> None:
            for blk in range(args.blocks):
                fn(block_generator(1, blk), bs, *world.arrays,
                   output_rows(out, blk * bs, (blk + 1) * bs))
        fn(block_generator(1, 0), 8, *world.arrays, output_rows(out, 0, 8))  # compile
        return run

    def floor_case() -> None:
        for blk in range(args.blocks):
            rng_floor(block_generator(1, blk), bs, world.n_normals, world.n_exponentials)

    rng_floor(block_generator(1, 0), 8, 3, 1)
    cases: dict[str, Callable[[], None] | None] = {
        "RNG floor": floor_case,
        "full kernel (lobsim.kernels.engine)": kernel_case(engine.simulate_block),
    }
    fn = variant(source, [])
    assert fn is not None
    cases["full kernel"] = kernel_case(fn)  # compiled here, like the variants
    for piece in EDITS:
        fn = variant(source, [piece])
        cases[f"without {piece}"] = None if fn is None else kernel_case(fn)
    fn = variant(source, ALL_BUT_DRAWS)
    cases["draws only (all of the above removed)"] = None if fn is None else kernel_case(fn)
    print(f"{args.config}: {len(world.bonds)} bonds, {n:,} scenarios a run; compiled "
          f"{sum(c is not None for c in cases.values())} variants", flush=True)

    best = {k: math.inf for k in cases}
    for _ in range(args.rounds):
        for k, run in cases.items():
            if run is None:
                continue
            t = time.thread_time()
            run()
            best[k] = min(best[k], time.thread_time() - t)
    us = {k: v / n * 1e6 for k, v in best.items()}

    x = np.random.default_rng(0).standard_normal(1024) * 0.1
    exp_loop(x, 10)
    t = time.thread_time()
    exp_loop(x, 10_000_000)
    ns_exp = (time.thread_time() - t) / 10_000_000 * 1e9

    full, floor = us["full kernel"], us["RNG floor"]
    n_meas = sum(len(b.payment.measurements) for b in world.bonds)
    lines = [
        "# Where the engine's time goes",
        "",
        f"`python benchmarks/profile_engine.py --config {args.config}`: {len(world.bonds)} bonds, "
        f"{world.n_normals} normals + {world.n_exponentials} exponentials a scenario, "
        f"{n:,} scenarios a run, best of {args.rounds} interleaved rounds, CPU time of the "
        "calling thread, outputs preallocated.",
        "",
        *[f"- {k}: {v}" for k, v in machine().items()],
        f"- one `math.exp` in a numba loop: {ns_exp:.1f} ns; the measurements need 3 a "
        f"measurement date, {3 * n_meas} a scenario: about {3 * n_meas * ns_exp / 1000:.1f} us",
        "",
        "| variant | us / scenario | x RNG floor | saves vs full kernel (us) | what is removed |",
        "|---|---:|---:|---:|---|",
    ]
    for k in cases:
        piece = k.removeprefix("without ")
        what = EDITS[piece][0] if piece in EDITS else ""
        if cases[k] is None:
            lines.append(f"| {k} | n/a | | | anchor not found: the kernel changed |")
            continue
        saves = "" if k in ("RNG floor", "full kernel", "full kernel (lobsim.kernels.engine)") else f"{full - us[k]:.2f}"
        lines.append(f"| {k} | {us[k]:.2f} | {us[k] / floor:.2f} | {saves} | {what} |")
    text = "\n".join(lines) + "\n"
    print(text)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
