"""``import lobsim`` then ``lobsim.analysis.risk``, ``lobsim.report.plot``, ...: lazy submodules (PEP 562).

Checked in a fresh interpreter, where nothing but ``import lobsim`` has run
(in this process other tests have imported most modules already).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "lobsim"
#: Every public module of the package, found from its files: a new module is
#: covered without editing this test. ``simulate`` is the function of that name.
PUBLIC = sorted(m.name.removeprefix("lobsim.")
                for m in pkgutil.walk_packages([str(PACKAGE)], prefix="lobsim.")
                if not any(part.startswith("_") for part in m.name.split(".")))
#: What ``import lobsim`` must not load: the plotting and distributed stacks.
HEAVY = ("matplotlib", "dask", "distributed", "zarr", "lobsim.report.plot", "lobsim.report.html")

SCRIPT = """
import importlib, json, sys
import lobsim
out = {"loaded_by_import": [m for m in HEAVY if m in sys.modules], "dir": dir(lobsim)}
def attribute(name):
    obj = lobsim
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj
out["same_module"] = {n: attribute(n) is importlib.import_module("lobsim." + n) for n in PUBLIC}
out["top_dir"] = dir(lobsim)
out["package_dirs"] = {n: dir(attribute(n)) for n in PUBLIC if "." not in n}
out["simulate_is_function"] = callable(lobsim.simulate) and not hasattr(lobsim.simulate, "__path__")
try:
    lobsim.no_such_module
except AttributeError as e:
    out["unknown"] = str(e)
out["hasattr_unknown"] = hasattr(lobsim, "no_such_module")
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fresh() -> dict:
    code = f"HEAVY = {HEAVY!r}\nPUBLIC = {PUBLIC!r}\n{SCRIPT}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(proc.stdout)


def test_there_are_public_modules():
    assert {"analysis.risk", "report.plot", "analysis.pricing", "report.html",
            "validation.scm", "model.simulate", "kernels.engine"} <= set(PUBLIC)


def test_import_lobsim_stays_cheap(fresh):
    assert fresh["loaded_by_import"] == []


def test_dir_lists_every_public_module_and_the_api(fresh):
    import lobsim

    listed = set(fresh["dir"])
    assert {n for n in PUBLIC if "." not in n} <= listed
    assert set(lobsim.__all__) <= listed
    for package, names in fresh["package_dirs"].items():
        assert {n.split(".", 1)[1] for n in PUBLIC if n.startswith(package + ".")} <= set(names)


def test_every_public_module_is_an_attribute(fresh):
    assert fresh["same_module"] == dict.fromkeys(PUBLIC, True)
    assert fresh["simulate_is_function"]


def test_an_unknown_attribute_still_raises(fresh):
    assert fresh["unknown"] == "module 'lobsim' has no attribute 'no_such_module'"
    assert fresh["hasattr_unknown"] is False

