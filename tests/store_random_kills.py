"""SIGKILL ``lobsim run --out X.zarr`` at random moments, resume, compare (by hand, not in CI).

    python tests/store_random_kills.py configs/basket_demo.toml --scenarios 400000 \\
        --kills 4 --dir /tmp/kills [--stream] [--seed 1]

Runs the config once uninterrupted (``ref.zarr``), then ``--kills`` times:
starts the same run, SIGKILLs it after a random fraction of the reference's
wall time, starts ``--resume`` and SIGKILLs that too at a random moment,
then resumes to the end; and compares the store with the reference
variable by variable (values bit for bit, attributes), after ``lobsim
summary`` has read it (every checksum verified). Prints one line per kill.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr


def lobsim(*args: str) -> list[str]:
    return [sys.executable, "-m", "lobsim.cli", *args]


def state(store: Path) -> str:
    """What a killed run left: no store, or its record and how many blocks are marked."""
    import zarr

    if not store.exists():
        hidden = [p.name for p in store.parent.iterdir() if p.name.startswith(f".{store.name}.")]
        return f"no store{' (a hidden one being built)' if hidden else ''}"
    meta = zarr.open_group(str(store / "_lobsim"), mode="r", use_consolidated=False)
    attrs = dict(meta.attrs)
    if "block_checksum" in meta:
        marks = np.asarray(meta["block_checksum"][...]).any(axis=2).all(axis=1)
        done = f"{int(marks.sum())}/{marks.size} blocks"
    else:
        done = f"snapshot {attrs.get('state')}"
    return f"{done}, complete={attrs.get('complete')}"


def timed_kill(cmd: list[str], after: float) -> tuple[float, bool]:
    """Run ``cmd``, SIGKILL it after ``after`` seconds; (seconds run, whether it was killed)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=after)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return time.monotonic() - t0, proc.returncode == -signal.SIGKILL


def differences(a: Path, b: Path) -> list[str]:
    """Variables (and attributes) that differ between two stores."""
    x = xr.open_zarr(a, consolidated=False)
    y = xr.open_zarr(b, consolidated=False)
    out = [] if x.attrs == y.attrs else ["attrs"]
    if set(x.variables) != set(y.variables):
        out.append("variable names")
    for name in sorted(set(x.variables) & set(y.variables)):
        u, v = np.asarray(x[name].values), np.asarray(y[name].values)
        if (u.dtype, u.shape) != (v.dtype, v.shape) or x[name].attrs != y[name].attrs or (
                u.tobytes() != v.tobytes() if u.dtype.kind in "biuf" else not np.array_equal(u, v)):
            out.append(str(name))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--scenarios", type=int, required=True)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    a.dir.mkdir(parents=True, exist_ok=True)
    extra = ["--stream", "--checkpoint-interval", "5"] if a.stream else []

    def args(store: Path, *more: str) -> list[str]:
        return lobsim("run", a.config, "--scenarios", str(a.scenarios), "--out", str(store),
                      "--quiet", *extra, *more)

    ref = a.dir / "ref.zarr"
    if not (ref / "_lobsim").exists():
        shutil.rmtree(ref, ignore_errors=True)
        t0 = time.monotonic()
        subprocess.run(args(ref), check=True)
        (a.dir / "ref.json").write_text(json.dumps({"seconds": time.monotonic() - t0}))
    wall = json.loads((a.dir / "ref.json").read_text())["seconds"]
    print(f"uninterrupted: {wall:.0f} s", flush=True)
    for i in range(a.kills):
        store = a.dir / f"k{i}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        t1 = rng.uniform(0.0, 1.05 * wall)
        ran, killed = timed_kill(args(store), t1)
        left = state(store)
        t2 = rng.uniform(0.0, 0.5 * wall)
        ran2, killed2 = timed_kill(args(store, "--resume"), t2)
        left2 = state(store)
        t0 = time.monotonic()
        subprocess.run(args(store, "--resume"), check=True)
        resumed = time.monotonic() - t0
        readable = subprocess.run(lobsim("summary", str(store)), capture_output=True).returncode
        diff = differences(ref, store)
        print(f"kill {i}: run killed at {ran:.1f} s ({'killed' if killed else 'had finished'}: "
              f"{left}); resume killed at {ran2:.1f} s ({'killed' if killed2 else 'finished'}: "
              f"{left2}); resumed in {resumed:.0f} s; summary exit {readable}; "
              f"{'identical to the uninterrupted run' if not diff else f'DIFFERS: {diff}'}",
              flush=True)
        if not diff and readable == 0:
            shutil.rmtree(store)


if __name__ == "__main__":
    main()
