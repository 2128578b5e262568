"""Load-time checks of a config's data files against what its bonds need from them.

The readers (:mod:`lobsim.model.areas`) check each file on its own; here the files
meet the config: the history's period labels agree with ``[universe]
period``, it is long enough for every bond's pre-period, and every area's
simulated log level stays within the envelope that keeps ``exp()`` finite
over the bonds' lives (:func:`log_change_bound`). The loader
runs these once, so that a config that loads simulates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lobsim.errors import ConfigError
from lobsim.model._limits import ENVELOPE_SDS, LOG_CHANGE_MAX
from lobsim.model.areas import AreaTable, OutcomeData, period_kind, read_outcome, read_volatility
from lobsim.model.process import kstep_variance

if TYPE_CHECKING:
    from lobsim.model.schema import Config, Outcome

#: Label kinds that name the period length, and the ``[universe] period`` they need.
_LABEL_PERIOD = {"month": "month", "quarter": "quarter"}


def check_outcome_data(cfg: Config, areas: AreaTable, periods_per_year: int) -> None:
    """Read every outcome's history, state and volatility files and check them
    against the config's universe, bonds and process.

    Raises
    ------
    ConfigError
        Naming the file or the config field, the bad value and the fix.
    """
    assert cfg.universe is not None
    for i, outcome in enumerate(cfg.outcomes):
        if outcome.history is None:
            continue
        data = read_outcome(outcome.history, outcome.state, areas, periods_per_year)
        kind = period_kind(data.periods)
        needed = _LABEL_PERIOD.get(kind)
        if needed is not None and needed != cfg.universe.period:
            raise ConfigError(
                f"is {cfg.universe.period!r}, but the history of outcome {outcome.id!r} has "
                f"{kind}ly periods ({data.periods[-1]}): set period = {needed!r}",
                source=cfg.source, path="universe.period")
        scale = (None if outcome.volatility is None
                 else read_volatility(outcome.volatility, areas))
        bonds = [(j, b) for j, b in enumerate(cfg.bonds) if b.outcome == outcome.id]
        n = len(data.periods)
        for j, b in bonds:
            pre = b.control.pre_periods
            if pre is not None and pre > n:
                raise ConfigError(
                    f"is {pre}, but the history of outcome {outcome.id!r} has {n} periods "
                    f"({data.periods[0]} to {data.periods[-1]}); use at most {n}",
                    source=cfg.source, path=f"bonds[{j}].control.pre_periods")
        if outcome.process is not None and bonds:
            years = max(b.maturity for _, b in bonds)
            _check_envelope(cfg, i, outcome, data, areas, scale, years)


def log_change_bound(*, level_gap: np.ndarray, trend: np.ndarray, states: np.ndarray,
                     sd: np.ndarray, noise_var: np.ndarray, years: float) -> np.ndarray:
    """The most each area's simulated log level can move from its observed base.

    ``level_gap`` is |x[a,0] - log y_obs| (true against observed level),
    ``states`` the sum of |U[a,0]|, |beta F[0]| and |gamma G[r,0]| (each
    decays towards zero with its phi: together they move the level by at most
    their sum), ``sd`` the sd of the log level ``years`` after the base (the
    three AR(1) components and the noise) and ``noise_var`` the noise
    variance, whose mean correction is ``-noise_var / 2`` (docs/model.md section 3.4). A draw
    counts up to ENVELOPE_SDS sd.
    """
    return (level_gap + np.abs(trend) * years + states + 0.5 * noise_var
            + ENVELOPE_SDS * sd)


def _check_envelope(cfg: Config, index: int, outcome: Outcome, data: OutcomeData,
                    areas: AreaTable, scale: np.ndarray | None, years: float) -> None:
    """Every area's log level, ``years`` after the base, within LOG_CHANGE_MAX of its base.

    Every area, not only the treated ones and their donors: donors are chosen
    when the world is built, and a config is valid or not whatever they are.
    """
    p = outcome.process
    assert p is not None
    s = np.ones(len(areas.ids)) if scale is None else scale
    beta, gamma = areas.loadings(p.national_loading, p.regional_loading)
    common = (beta**2 * p.national_sigma**2 * kstep_variance(p.national_phi, years)
              + gamma**2 * p.regional_sigma**2 * kstep_variance(p.regional_phi, years))
    noise_var = s * p.measurement_sigma**2
    sd = np.sqrt(common + s * p.area_sigma**2 * kstep_variance(p.area_phi, years) + noise_var)
    regional = np.array([data.regional_state[r] for r in areas.regions])
    states = (np.abs(data.area_state) + np.abs(beta * data.national_state)
              + np.abs(gamma * regional))
    gap = np.abs(data.log_level - data.log_base)
    bound = log_change_bound(level_gap=gap, trend=data.trend, states=states, sd=sd,
                             noise_var=noise_var, years=years)
    worst = int(np.argmax(bound))
    if bound[worst] > LOG_CHANGE_MAX:
        raise ConfigError(
            f"in area {areas.ids[worst]!r} the simulated log level can move "
            f"{bound[worst]:.4g} from its observed base within the {years:g} years of the "
            f"bonds on outcome {outcome.id!r} (trend {abs(data.trend[worst]) * years:.3g}, "
            f"states {states[worst] + gap[worst]:.3g}, {ENVELOPE_SDS:g} sd "
            f"{ENVELOPE_SDS * sd[worst]:.3g}); lobsim keeps it within {LOG_CHANGE_MAX:g} so "
            "that exp() stays finite: lower the sigmas or loadings, the area's volatility "
            "scale or trend, or the maturity", source=cfg.source,
            path=f"outcomes[{index}].process")
