"""Start-up: what importing the package and the command line loads (machine-independent).

A warm ``lobsim run`` must reach its first block quickly (issue 16); the
command line and ``import lobsim`` therefore load no statistics, dataset or
distributed stack until a command needs it. Checked in fresh interpreters
(in this process other tests have imported most modules already); no timing.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Loaded only by the commands that use them (scipy.stats: summaries and the
#: world's Beta tables; xarray/pandas: labelled results; Dask: clusters).
HEAVY = ("scipy.stats", "scipy", "xarray", "pandas", "dask", "distributed", "zarr",
         "matplotlib", "numba", "lobsim.analysis.summary", "lobsim.model.simulate",
         "lobsim.model.world")

SCRIPT = """
import json, sys
{statement}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _loaded(statement: str) -> list[str]:
    code = SCRIPT.format(statement=statement, heavy=HEAVY)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    return list(json.loads(proc.stdout))


@pytest.mark.parametrize("statement", [
    "import lobsim",
    "import lobsim.cli",
    "from lobsim.cli.commands import build_parser; build_parser()",
])
def test_command_line_loads_nothing_heavy(statement):
    assert _loaded(statement) == []


def test_the_core_api_imports_on_first_use():
    # the names are there, and reading one imports its module (and only then)
    loaded = _loaded("import lobsim; assert 'simulate' in dir(lobsim); "
                     "f = lobsim.simulate; from lobsim import summarize, load_config; "
                     "assert f is lobsim.simulate and callable(summarize)")
    assert {"lobsim.model.simulate", "lobsim.analysis.summary", "xarray"} <= set(loaded)


@pytest.mark.parametrize("module", ["lobsim", "lobsim.cli"])
def test_python_dash_m_is_the_lobsim_command(module):
    done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("lobsim "), done.stderr
