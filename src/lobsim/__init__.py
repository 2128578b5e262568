"""lobsim: a Monte Carlo risk engine for Local Outcome Bonds."""

from importlib.metadata import PackageNotFoundError, version

from lobsim.config import Config, load_config, parse_config
from lobsim.errors import ConfigError, LobsimWarning
from lobsim.simulate import simulate
from lobsim.summary import summarize
from lobsim.terms import TermSheet, term_sheet

try:
    __version__ = version("lobsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

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
