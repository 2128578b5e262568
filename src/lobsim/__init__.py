"""lobsim: a Monte Carlo risk engine for Local Outcome Bonds.

The core API (``load_config``, ``term_sheet``, ``simulate``, ``summarize``)
is imported with the package. Every other public module is an attribute
that imports itself on first use (PEP 562), so ``import lobsim`` then
``lobsim.risk.risk_contributions(...)`` or ``lobsim.plot.return_distribution(...)``
works, tab completion lists them, and ``import lobsim`` does not pay for
matplotlib, Dask or zarr until they are used.

``lobsim.simulate`` is the function; its module is ``sys.modules["lobsim.simulate"]``
(``from lobsim.simulate import ...``).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from lobsim.config import Config, load_config, parse_config
from lobsim.errors import ConfigError, LobsimWarning
from lobsim.simulate import simulate
from lobsim.summary import summarize
from lobsim.terms import TermSheet, term_sheet

try:
    __version__ = version("lobsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: Public modules reachable as ``lobsim.<name>`` without importing them first
#: (``simulate`` is left out: the name is the function). tests/test_lazy_modules.py
#: checks this against the package's files, so a new module cannot be missed.
_SUBMODULES = (
    "areas", "backtest", "basket", "calibrate", "cli", "cluster", "config", "control",
    "demo", "errors", "maturity", "plot", "pricing", "realdata", "report", "results", "risk",
    "runner", "scm", "setaside", "shortfall", "store", "streaming", "summary", "tax",
    "terms", "waterfall", "world",
)


def __getattr__(name: str) -> ModuleType:
    # Only called for names not already set: importing a submodule binds it on
    # the package, so each one is imported once.
    if name in _SUBMODULES:
        return import_module(f"lobsim.{name}")
    raise AttributeError(f"module 'lobsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    # what tab completion offers: the API and the modules, not this file's helpers
    return sorted({*__all__, *_SUBMODULES})


__all__ = [
    "Config",
    "ConfigError",
    "LobsimWarning",
    "TermSheet",
    "__version__",
    "load_config",
    "parse_config",
    "simulate",
    "summarize",
    "term_sheet",
]
