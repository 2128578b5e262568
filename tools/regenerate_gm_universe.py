"""Regenerate the bundled Greater Manchester calibration, byte for byte (maintainers).

    python tools/regenerate_gm_universe.py           # compare; exit 1 if a file would change
    python tools/regenerate_gm_universe.py --write   # overwrite the bundled files

Runs the documented command, ``lobsim calibrate claimants_history.csv --out
universe.toml``, on copies of ``src/lobsim/data/gm/areas.csv`` and
``claimants_history.csv`` (so the paths it writes are the bundled ones), then
compares ``universe.toml``, ``claimants_state.csv`` and
``claimants_volatility.csv`` with the bundled files byte for byte and, where
they differ, says by how much.

The test suite does not compare bytes: a fresh calibration agrees with the
bundled one to about ten digits on any CPU, not to the last bit, and
``tests/test_real_data.py`` checks what the data determine (the likelihood,
the parameters within a thousandth of their sampling sd, the state at the
bundled parameters to 1e-10). Regenerate when the calibration method changes,
and say in the commit which outputs moved and on what machine.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

from lobsim.cli.commands import main as lobsim_main
from lobsim.model.realdata import package_data

OUTPUTS = ("universe.toml", "claimants_state.csv", "claimants_volatility.csv")


def _numbers(path: Path) -> dict[str, float]:
    """Every number in a universe TOML or state CSV, by a name for it."""
    if path.suffix == ".toml":
        out: dict[str, float] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}{k}.", v)
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(f"{prefix}{i}.", v)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[prefix.rstrip(".")] = float(value)

        walk("", tomllib.loads(path.read_text(encoding="utf-8")))
        return out
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {f"{row['area']}.{k}": float(v) for row in rows for k, v in row.items()
            if k not in ("area", "region")}


def _differences(new: Path, old: Path) -> str:
    a, b = _numbers(new), _numbers(old)
    if a.keys() != b.keys():
        return "different fields"
    def relative(k: str) -> float:
        return abs(a[k] - b[k]) / max(abs(b[k]), 1e-300)

    worst = max(a, key=relative)
    moved = sum(a[k] != b[k] for k in a)
    return (f"{moved} of {len(a)} numbers differ; most (relatively): {worst} {b[worst]!r} -> "
            f"{a[worst]!r} (relative {relative(worst):.2g})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="overwrite the bundled files")
    args = parser.parse_args(argv)
    gm = package_data("gm")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("areas.csv", "claimants_history.csv"):
            shutil.copy(gm / name, work / name)
        status = lobsim_main(["calibrate", str(work / "claimants_history.csv"),
                              "--out", str(work / "universe.toml")])
        if status:
            return status
        changed = [n for n in OUTPUTS if (work / n).read_bytes() != (gm / n).read_bytes()]
        for name in OUTPUTS:
            what = _differences(work / name, gm / name) if name in changed else "identical"
            print(f"{name}: {what}")
        if args.write:
            for name in changed:
                shutil.copy(work / name, gm / name)
                print(f"wrote {gm / name}")
            return 0
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
