"""Checks of the model against real data: synthetic control, placebo backtests, calibration.

``scm`` is the classic synthetic-control estimator with predictors, on a
``predictor_panel``;
``backtest`` measures real placebo bonds and simulated ones from a calibrated model,
``placebo_stats`` summarises and compares them, ``sensitivity`` asks the engine;
``calibrate`` fits the outcome process to an observed panel (REML), ``standard_errors``
gives its estimates' standard errors and says what an estimate on its boundary means,
``parameter_draws`` draws each scenario block's process from their sampling distribution
and its base state about the BLUP with ``state_error``'s prediction error covariance;
``area_loadings`` estimates each area's factor loadings;
``universe_file`` writes a calibration as a universe file and reads it back.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "area_loadings", "backtest", "calibrate", "parameter_draws", "placebo_stats",
    "predictor_panel", "scm", "sensitivity", "standard_errors", "state_error",
    "universe_file"))
