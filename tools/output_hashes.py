"""Hashes of what lobsim outputs, to show that a refactoring changes no result.

Runs ``lobsim run`` on every bundled config at a few seeds (and ``summary
--json``, ``price``, ``maturity``, ``setaside`` on some of them), then hashes
each output: every variable and coordinate of a results file by its values,
dtype and dims (attributes that name the version, the time or the path of the
config are left out); every JSON output after dropping the same provenance
keys. A before/after comparison is then one command:

    python tools/output_hashes.py --write tools/output_hashes.json   # before
    python tools/output_hashes.py --check tools/output_hashes.json   # after

``--check`` lists every output whose hash changed (by variable for a results
file), so a change that is meant (a fixed statistic) can be named one by one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
LOBSIM = [str(Path(sys.executable).with_name("lobsim"))]

#: provenance that differs between two identical runs (or two checkouts)
VOLATILE = {"version", "lobsim_version", "created", "config_path", "command", "elapsed",
            "elapsed_s", "path", "results", "config_file", "wall_time"}

CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.toml"))
SEEDS = (1, 7)
SCENARIOS = "3000"

#: (name, argv, kind): kind "nc" hashes the file written to {out}, "json" stdout
def commands() -> list[tuple[str, list[str], str]]:
    cmds = []
    for cfg in CONFIGS:
        for seed in SEEDS:
            cmds.append((f"run {cfg} seed={seed}",
                         ["run", cfg, "--scenarios", SCENARIOS, "--seed", str(seed),
                          "--quiet", "--out", "{out}"], "nc"))
    cmds += [
        ("run basket_demo stream", ["run", "configs/basket_demo.toml", "--scenarios", "4096",
                                    "--seed", "3", "--stream", "--quiet", "--out", "{zarr}"], "zarr"),
        ("run basket_demo contributions", ["run", "configs/basket_demo.toml", "--scenarios",
                                           "3000", "--seed", "5", "--contributions",
                                           "--quiet", "--out", "{out}"], "nc"),
        ("summary birmingham", ["summary", "{prev:run configs/birmingham_jsa.toml seed=1}",
                                "--json"], "json"),
        ("summary basket_demo", ["summary", "{prev:run configs/basket_demo.toml seed=7}",
                                 "--json"], "json"),
        ("setaside basket_demo", ["setaside", "{prev:run configs/basket_demo.toml seed=7}",
                                  "--by-bond", "--json"], "json"),
        ("price birmingham irr", ["price", "configs/birmingham_jsa.toml", "--target-irr", "0.05",
                                  "--scenarios", "2000", "--seed", "2", "--json"], "json"),
        ("price basket_demo p", ["price", "configs/basket_demo.toml", "--basket", "all",
                                 "--target-default-prob", "0.1", "--scenarios", "2000",
                                 "--seed", "2", "--json"], "json"),
        ("maturity birmingham", ["maturity", "configs/birmingham_jsa.toml", "--years", "3..6",
                                 "--scenarios", "2000", "--seed", "2", "--json"], "json"),
        ("terms basket_demo", ["terms", "configs/basket_demo.toml", "--json"], "json"),
    ]
    return cmds


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:16]


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def hash_dataset(ds: xr.Dataset) -> dict[str, str]:
    out = {}
    for name in sorted(map(str, ds.variables)):
        v = ds[name]
        values = np.ascontiguousarray(v.values)
        if values.dtype == object:
            raw = json.dumps(values.tolist(), default=str).encode()
        else:
            raw = values.tobytes()
        attrs = json.dumps(_clean({k: str(a) for k, a in v.attrs.items()}), sort_keys=True)
        out[name] = _digest(str(values.dtype).encode(), repr(v.dims).encode(), raw, attrs.encode())
    attrs = _clean({k: str(a) for k, a in ds.attrs.items()})
    attrs.pop("config_hash", None)  # hashes the config text: changes only if the config does
    out["@attrs"] = _digest(json.dumps(attrs, sort_keys=True).encode())
    return out


def run_all() -> dict[str, dict[str, str]]:
    results: dict[str, dict[str, str]] = {}
    outs: dict[str, str] = {}
    env = {**os.environ, "LOBSIM_NO_PROGRESS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, argv, kind) in enumerate(commands()):
            out = os.path.join(tmp, f"{i}.nc")
            zarr = os.path.join(tmp, f"{i}.zarr")
            args = []
            for a in argv:
                if a.startswith("{prev:"):
                    a = outs[a[6:-1]]
                args.append(a.replace("{out}", out).replace("{zarr}", zarr))
            proc = subprocess.run(LOBSIM + args, cwd=ROOT, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                results[name] = {"@error": _digest(proc.stderr.strip().splitlines()[-1].encode())
                                 if proc.stderr.strip() else f"rc {proc.returncode}"}
                print(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}", file=sys.stderr)
                continue
            if kind == "json":
                results[name] = {"@json": _digest(json.dumps(_clean(json.loads(proc.stdout)),
                                                             sort_keys=True).encode())}
            elif kind == "nc":
                with xr.open_dataset(out) as ds:
                    results[name] = hash_dataset(ds.load())
                outs[name] = out
            else:
                with xr.open_zarr(zarr) as ds:
                    results[name] = hash_dataset(ds.load())
            print(f"{name}: {len(results[name])} hashes", file=sys.stderr)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--write", metavar="JSON")
    g.add_argument("--check", metavar="JSON")
    args = ap.parse_args()
    now = run_all()
    if args.write:
        Path(args.write).write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"wrote {sum(map(len, now.values()))} hashes of {len(now)} outputs to {args.write}")
        return 0
    before = json.loads(Path(args.check).read_text())
    changed = 0
    for name in sorted(set(before) | set(now)):
        b, n = before.get(name, {}), now.get(name, {})
        for key in sorted(set(b) | set(n)):
            if b.get(key) != n.get(key):
                changed += 1
                print(f"CHANGED {name} :: {key}  {b.get(key)} -> {n.get(key)}")
    total = sum(map(len, before.values()))
    print(f"{total - changed} of {total} hashes equal; {changed} changed")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
