"""``import lobsim`` then ``lobsim.risk``, ``lobsim.plot``, ...: lazy submodules (PEP 562).

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
PUBLIC = sorted(m.name for m in pkgutil.iter_modules([str(PACKAGE)])
                if not m.name.startswith("_") and m.name != "simulate")
#: What ``import lobsim`` must not load: the plotting and distributed stacks.
HEAVY = ("matplotlib", "dask", "distributed", "zarr", "lobsim.plot", "lobsim.report")

SCRIPT = """
import importlib, json, sys
import lobsim
out = {"loaded_by_import": [m for m in HEAVY if m in sys.modules], "dir": dir(lobsim)}
out["same_module"] = {n: getattr(lobsim, n, None) is importlib.import_module("lobsim." + n)
                      for n in PUBLIC}
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
    assert {"risk", "plot", "pricing", "report", "scm", "backtest"} <= set(PUBLIC)


def test_import_lobsim_stays_cheap(fresh):
    assert fresh["loaded_by_import"] == []


def test_dir_lists_every_public_module_and_the_api(fresh):
    import lobsim

    listed = set(fresh["dir"])
    assert set(PUBLIC) <= listed
    assert set(lobsim.__all__) <= listed


def test_every_public_module_is_an_attribute(fresh):
    assert fresh["same_module"] == dict.fromkeys(PUBLIC, True)
    assert fresh["simulate_is_function"]


def test_an_unknown_attribute_still_raises(fresh):
    assert fresh["unknown"] == "module 'lobsim' has no attribute 'no_such_module'"
    assert fresh["hasattr_unknown"] is False

