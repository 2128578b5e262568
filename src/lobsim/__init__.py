"""lobsim: a Monte Carlo risk engine for Local Outcome Bonds.

The core API (``load_config``, ``term_sheet``, ``simulate``, ``summarize``)
is reachable from the package and imported when first used (so that
``import lobsim``, and the command line, does not load scipy.stats, xarray
or the world builder before a command needs them). The rest lives in packages by layer, each
importing only the layers below it (tests/test_layers.py, ``lint-imports``):

- ``lobsim.kernels``: compiled numba kernels over plain arrays;
- ``lobsim.model``: config, area universe, control groups, world, simulate;
- ``lobsim.analysis``: statistics, tail risk, pricing, maturity, set-asides, terms;
- ``lobsim.scale``: threads or Dask, crash-safe stores, streaming summaries;
- ``lobsim.validation``: synthetic control, placebo backtests, calibration;
- ``lobsim.report``: figures and the HTML report;
- ``lobsim.cli``: the command line.

Every package and module is an attribute that imports itself on first use
(PEP 562): ``import lobsim`` then ``lobsim.analysis.risk.risk_contributions(...)``
works, tab completion lists them, and ``import lobsim`` does not pay for
matplotlib, Dask or zarr until they are used.
"""

from typing import TYPE_CHECKING

from lobsim._lazy import lazy_submodules
from lobsim._version import __version__
from lobsim.errors import ConfigError, LobsimWarning

if TYPE_CHECKING:  # imported on first use at run time (_API)
    from lobsim._api import simulate
    from lobsim.analysis.summary import summarize
    from lobsim.analysis.terms import TermSheet, term_sheet
    from lobsim.model.config import Config, load_config, parse_config

#: The layers and the shared modules, reachable as ``lobsim.<name>``;
#: tests/test_lazy_modules.py checks this against the package's files.
_SUBMODULES = ("analysis", "arraytypes", "cli", "errors", "jsonio", "kernels", "model",
               "report", "scale", "validation")

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


#: The core API: each name and the module defining it, imported on first use.
_API = {"summarize": "lobsim.analysis.summary", "TermSheet": "lobsim.analysis.terms",
        "term_sheet": "lobsim.analysis.terms", "Config": "lobsim.model.config",
        "load_config": "lobsim.model.config", "parse_config": "lobsim.model.config",
        "simulate": "lobsim._api"}  # the model's simulate, and parameter uncertainty

__getattr__, __dir__ = lazy_submodules(__name__, _SUBMODULES, extra=__all__, attributes=_API)
