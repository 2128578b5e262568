"""What a risk team reads off the results: statistics, tail risk, prices and decisions.

``stats`` holds the one estimator of every statistic (means, probabilities,
quantiles, Acerbi-Tasche expected shortfall, with importance weights) that
every output uses; ``summary`` reduces results to statistics with standard
errors; ``power`` the minimum detectable effect of a bond's measurement;
``returns`` the two expected returns (E[IRR] and the IRR of expected flows); ``tables`` the terminal tables' layout and unit conventions; ``risk``
gives basket VaR, expected shortfall, risk contributions and importance
sampling; ``pricing`` solves for the loading a target needs; ``maturity`` and
``setaside`` are the bank's and the departments' decisions;
``parameter_uncertainty`` what a run's parameter draws add to P(default); ``sweep`` re-runs
a config over values of one or two parameters, ``design`` searches a bond's
or basket's design over the named levers of ``design_levers``; ``pooling`` is pooled basket measurement;
``terms`` is the term-sheet
arithmetic at full target; ``tidy`` the tidy tables of an export.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "design", "design_levers", "maturity", "parameter_uncertainty", "pooling", "power", "pricing", "returns",
    "risk", "setaside", "stats", "summary", "sweep", "tables", "tidy", "terms"))
