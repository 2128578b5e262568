"""Where the engine's time goes: the chunked kernel with pieces removed, against the RNG floor.

Run from the repository root (about a minute)::

    python benchmarks/profile_engine.py [--config configs/basket_demo_noisy.toml] [--blocks 6]

The production kernel (src/lobsim/kernels/chunked.py, :func:`simulate_block`
over chunks of scenarios) is compiled again with one phase call cut out of
its driver at a time (the source file itself is not touched; the phases are
the compiled ones of lobsim.kernels.chunked_bonds); each variant runs the same
blocks into the same preallocated outputs, so the difference to the full
kernel is what that phase costs. Variants whose anchor text is no longer in
the driver are reported as ``n/a``. Removing a phase can make other work dead
code that the compiler drops too, so savings do not add up exactly. The
reference kernel (lobsim.kernels.engine) is timed alongside. The rounds are
interleaved and the best of each is kept.

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

import lobsim.kernels.chunked as chunked  # noqa: E402
import lobsim.kernels.engine as engine  # noqa: E402
from harness import machine, rng_floor  # noqa: E402
from lobsim import load_config  # noqa: E402
from lobsim.model.blocks import allocate_outputs, block_generator, output_rows  # noqa: E402
from lobsim.model.world import build_world  # noqa: E402

# piece -> (what it is, [(text in the driver, replacement)])
EDITS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "baskets": ("basket aggregation and IRR (scalar root-finder per scenario)", [
        ("        basket_chunk(baskets, bonds, measurements, payments, bcash, kflow, out, r0, m)\n",
         "")]),
    "bond IRR": ("per-bond IRR: pow for one payment date, solve_irr for several", [
        ("            bond_irr_chunk(bonds, b, cash, btime, bflow, nf, out, r0, m)\n", "")]),
    "bond outputs": ("per-bond outputs (strided rows) and overpayment", [
        ("            bond_outputs(bonds, b, nm, e_t, meas, err, paid, cash, bcash, m_max, out, r0, m)\n",
         "")]),
    "savings": ("department savings (dense rows; exact yearly path after a failure)", [
        ("            savings_chunk(savings, bonds, b, scale, stop, full, early, sv_dense, dsav, m)\n",
         "")]),
    "payments": ("payment rules, cash caps and department charges", [
        ("""                payment_chunk(bonds, measurements, payments, b, i, meas, reached, paid, cash,
                              gpaid, m, units, amount)
                book_payment(payments, bonds, measurements, b, i, units, amount, cash, bcash,
                             bflow, btime, dpay, n_years, m)
""", "")]),
    "measurements": ("true effect, counterfactual and measured units (3 exp a date), payments", [
        ("for i in range(nm):\n                true_effect", "for i in range(0):\n                true_effect")]),
    "area states": ("series states: factor terms and Cholesky rows", [
        ("        c = series_chunk(series, factors, fac, z, c, m, xs, es)\n",
         "        c = c + (z.shape[0] - c - 1 - programme.n_types - n_b)\n")]),
    "copula": ("programme copula and the z-grid Beta table", [
        ("            copula_share(programme, bonds, b, z, ctype, c, zglob, m, scale)\n", "")]),
}
ALL_BUT_DRAWS = ["baskets", "bond IRR", "bond outputs", "savings", "measurements", "area states",
                 "copula"]


def variant(source: str, pieces: list[str]) -> Callable[..., object] | None:
    """The kernel compiled without ``pieces``; None if an anchor is missing."""
    for piece in pieces:
        for old, new in EDITS[piece][1]:
            if old not in source:
                return None
            source = source.replace(old, new)
    module = types.ModuleType("lobsim_chunked_variant")
    exec(compile(source, "<chunked variant>", "exec"), module.__dict__)
    return module.simulate_block


@njit(nogil=True)
def exp_loop(x, n):  # pragma: no cover - jitted
    acc = 0.0
    for i in range(n):
        acc += math.exp(x[i & 1023])
    return acc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/basket_demo_noisy.toml")
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
    source = Path(chunked.__file__).read_text(encoding="utf-8").replace("cache=True, ", "")

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
        "reference kernel (lobsim.kernels.engine)": kernel_case(engine.simulate_block),
        "full kernel (lobsim.kernels.chunked)": kernel_case(chunked.simulate_block),
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
        "# Where the engine's time goes (the chunked kernel)",
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
    fixed = ("RNG floor", "full kernel", "reference kernel (lobsim.kernels.engine)",
             "full kernel (lobsim.kernels.chunked)")
    for k in cases:
        piece = k.removeprefix("without ")
        what = EDITS[piece][0] if piece in EDITS else ""
        if cases[k] is None:
            lines.append(f"| {k} | n/a | | | anchor not found: the kernel changed |")
            continue
        saves = "" if k in fixed else f"{full - us[k]:.2f}"
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
