"""The numeric range of every input, chosen so that every output stays finite.

A config that loads simulates to finite outputs: the loader
(:mod:`lobsim.model.config`) and the data-file readers (:mod:`lobsim.model.areas`) take
their bounds from here, and ``docs/config.md`` (section Numeric ranges)
explains each one. Products of values in range cannot overflow: a payment is
at most ``UNITS_MAX x AMOUNT_MAX x 201`` (price = cost x (1 + two premiums of
at most 100)), about 2e26, so its square and its sum over 1e11 scenarios stay
far below the largest float. Two bounds join several fields:

- a bond's best case, its largest possible payments over its principal, may
  earn at most ``exp(RETURN_LOG_MAX)`` a year (:func:`annual_log_return`);
- an area's simulated log level may move at most ``LOG_CHANGE_MAX`` away from
  its observed base over the bonds' lives (:mod:`lobsim.model._datacheck`).
"""

from __future__ import annotations

import math

#: Money: costs, premiums, savings, fixed sums and cash caps (below a quadrillion).
AMOUNT_MAX = 1e15
#: Outcome units: targets, unit caps, baseline units (counts or percentage points).
UNITS_MAX = 1e9
#: The least value of a target, cost, unit cap or fixed sum that must be positive,
#: and the least non-zero success sd: below it a product or a Beta quantile
#: table underflows.
POSITIVE_MIN = 1e-6
#: Times are years after the base year, in [0, YEARS_MAX].
YEARS_MAX = 100.0
#: The shortest term of a bond and the shortest non-zero ramp: one day.
DAY = 1.0 / 365.0
#: log(1 + IRR) of a bond's best case, at most: the ceiling of the engine's IRR
#: solver (lobsim.kernels.engine.solve_irr brackets log(1 + r) in [.., 20]), an annual
#: return of about 4.9e8.
RETURN_LOG_MAX = 20.0
#: Per-year volatilities of the outcome process and |loadings|.
SIGMA_MAX = 5.0
LOADING_MAX = 10.0
#: Relative weight of a covariate row in a synthetic-control fit (each
#: pre-period counts 1).
COVARIATE_WEIGHT_MAX = 1e6

# -- data files -------------------------------------------------------------
#: Observed outcome values (history files): positive, at most a trillion.
VALUE_MIN, VALUE_MAX = 1e-6, 1e12
#: A state file's true log level x[a,0]: the log of a value in range, with room
#: for the measurement noise between the true and the observed level.
LOG_LEVEL_MIN, LOG_LEVEL_MAX = -20.0, 30.0
#: |trend| in log points a year (a factor e a year).
TREND_MAX = 1.0
#: |U[a,0]|, |G[r,0]|, |F[0]|: deviation states of the log level.
STATE_MAX = 5.0
#: Per-area variance factors (volatility files).
VOLATILITY_SCALE_MAX = 100.0
#: |covariate| in an areas file (so that squares and sums stay finite).
COVARIATE_MAX = 1e15
#: Fewest periods of a history: the base period and two before it, so that a
#: trend fitted to it has a residual and a control group's pre-period fit is
#: judged on more than one change.
MIN_PERIODS = 3

# -- the log-level envelope ---------------------------------------------------
#: How far, in log points, an area's simulated level may move from its observed
#: base value: 150 keeps levels below e^(28 + 150), their squares and sums over
#: 1e11 scenarios finite, and a treated area's level over its control group's
#: (a ratio of two such moves, squared in a standard error) below e^600.
LOG_CHANGE_MAX = 150.0
#: Standard deviations of a draw counted in the envelope: a normal beyond 12 sd
#: has probability 4e-33, never met in the 1e16 draws of the largest run.
ENVELOPE_SDS = 12.0


def annual_log_return(best_multiple: float, term: float) -> float:
    """log(1 + IRR) of receiving ``best_multiple`` times the principal after ``term`` years."""
    return math.log(best_multiple) / term if best_multiple > 0.0 else -math.inf
