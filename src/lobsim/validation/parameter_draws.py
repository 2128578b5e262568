r"""Parameter uncertainty: each scenario block simulates a process drawn from its estimate's sampling distribution.

``lobsim run --parameter-uncertainty`` (docs/real_data.md, Parameter
uncertainty). For every simulated outcome the calibration of its history
(:func:`lobsim.validation.calibrate.calibrate`) gives the REML estimates and,
by the inverse of each REML step's observed information in its search units
(``phi`` per period and ``var / var0``;
:func:`lobsim.validation.standard_errors.search_covariance`), their
approximate normal sampling distribution: the two steps independent, step
2's conditional on step 1's ``K_W``, as for the standard errors. Block ``i``
of a run with seed ``s`` draws one parameter set from it with the generator
of :func:`parameter_generator` (spawn key ``(PARAMETER_KEY, i)``, disjoint
from the scenario blocks' ``(i,)``), so a block's world does not depend on
who simulates it: results are bit-identical for any chunking, thread count
or Dask partition. :func:`lobsim.validation.calibrate.calibrate_at` gives
the BLUP base state at the drawn parameters, and the block draws the state
from its conditional distribution given the panel at those parameters:
normal about the BLUP with its exact prediction error covariance
(:mod:`lobsim.validation.state_error`), from a sub-stream of the block's own
(:func:`state_generator`, spawn key ``(PARAMETER_KEY, i, 0)``), so the
parameter draws are those made without it.

What a block simulates is the config's process and state *shifted* by what
the draw changes: ``config value + (value at the draw - value at the
estimate)``, both sides computed by ``calibrate_at``. At the estimate the
shift is exactly zero, so a config whose process and state were edited by
hand keeps its centre, and a zero covariance reproduces the run without
parameter uncertainty bit for bit.

The draws are made in an unbounded scale: the logit of each phi (on
``(0, 1)``) and the log of each variance, with the covariance carried there
from the search units by the delta method, ``J C J`` with ``J`` the diagonal
of ``1 / (phi (1 - phi))`` and ``1 / var``, and mapped back. No draw leaves
the parameter space and nothing is clipped (a normal draw in the search units
would put GM's monthly national phi, 0.70 with se 0.17, above 1 in about 4%
of draws). The shift onto the config's process is made in the same scale
(logit of each per-year phi, log of each sigma), so a process edited by hand
stays inside the space too. The search's upper bound on a sigma
(:data:`~lobsim.validation.standard_errors.SIGMA_MAX` per period) is a
limit of the search, not of the parameter space, and is not imposed.

Held, not drawn: an estimate on the boundary of its parameter space (a phi
at 0 or 1, a variance at 0; :attr:`Calibration.on_boundary`, e.g. GM's
``regional_phi = 1``) has no Hessian, and a phi whose sigma is 0 is not
identified: they stay at the estimate, which understates the uncertainty
along them (their sampling distribution is not normal; a parametric
bootstrap would give it). A random walk's base state (GM's authorities) is
not drawn: it is not identified apart from the levels, and the engine uses
only its changes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

from lobsim.analysis.parameter_uncertainty import COUNTS, FIXED, FIXED_COUNTS, FIXED_PROBABILITY
from lobsim.errors import ConfigError
from lobsim.model.areas import OutcomeData, read_areas
from lobsim.model.config import PERIODS_PER_YEAR, Config, OutcomeProcess
from lobsim.model.world import World, build_world, read_outcomes
from lobsim.validation.calibrate import Calibration, calibrate, calibrate_at, reml_steps
from lobsim.validation.standard_errors import search_covariance
from lobsim.validation.state_error import StateError, state_prediction

#: Spawn key word of the parameter draws' stream: block ``i`` draws from
#: ``SeedSequence(seed, spawn_key=(PARAMETER_KEY, i))``, never a scenario
#: block's ``(i,)``, the risk-band screening's ``(0x7FFF_FFFF,)`` nor the
#: importance-sampling pilot's ``(0x7FFF_FFFE,)``.
PARAMETER_KEY = 0x7FFF_FFFD
#: How the run's attrs name the method.
METHOD = ("normal approximation of the REML estimates in an unbounded scale (logit of each "
          "phi, log of each variance; covariance: the inverse observed information in search "
          "units, carried there by the delta method), one draw per scenario block; estimates "
          "on a boundary held at the estimate; base state: drawn from its conditional normal "
          "distribution given the panel at the drawn parameters (the BLUP and its exact "
          "prediction error covariance), a random walk's state not drawn")

#: Search coordinates, in order: step 1's (phi_U, var_U, var_e), step 2's
#: (phi_F, var_F, phi_G, var_G); variances per period.
COORDINATES = ("area_phi", "area_var", "measurement_var", "national_phi", "national_var",
               "regional_phi", "regional_var")
_PROCESS_FIELDS = ("national_phi", "national_sigma", "regional_phi", "regional_sigma",
                   "area_phi", "area_sigma", "measurement_sigma")


def parameter_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of block ``block``'s parameter draw (a stream of its own)."""
    return np.random.Generator(np.random.SFC64(
        np.random.SeedSequence(seed, spawn_key=(PARAMETER_KEY, block))))


def state_generator(seed: int, block: int) -> np.random.Generator:
    """The generator of block ``block``'s base-state draw (a sub-stream of its parameters')."""
    return np.random.Generator(np.random.SFC64(
        np.random.SeedSequence(seed, spawn_key=(PARAMETER_KEY, block, 0))))


@dataclass(frozen=True)
class SamplingDistribution:
    """The approximate sampling distribution of one outcome's calibration.

    Coordinates are :data:`COORDINATES` in search units: a value is
    ``centre * scale`` in per-period parameters (phi, variance). Draws are
    made in the unbounded scale of :meth:`unbounded` (logit of a phi, log of
    a variance), normal with mean :attr:`unbounded_centre` and covariance
    :attr:`unbounded_cov`.
    """

    outcome: str
    history: str
    areas: str
    periods_per_year: int
    centre: np.ndarray
    cov: np.ndarray
    scale: np.ndarray
    #: which coordinates are variances (the others are phis)
    is_var: np.ndarray
    #: whether a block draws the base state about its BLUP (False: the BLUP itself)
    draw_state: bool = True

    def with_covariance(self, cov: np.ndarray, *, draw_state: bool | None = None
                        ) -> SamplingDistribution:
        """The same distribution with another covariance (a zero one and ``draw_state=False``:
        no uncertainty); ``draw_state`` unchanged unless given."""
        return dataclasses.replace(self, cov=np.asarray(cov, float),
                                   draw_state=self.draw_state if draw_state is None
                                   else bool(draw_state))

    def parameters(self, x: np.ndarray) -> tuple[dict[str, float], float]:
        """Per-period ``calibrate_at`` arguments (``per_period``, ``measurement_sigma``) at ``x``."""
        v = dict(zip(COORDINATES, (np.asarray(x) * self.scale).tolist(), strict=True))
        per_period = {"area_phi": v["area_phi"], "area_sigma": math.sqrt(v["area_var"]),
                      "national_phi": v["national_phi"],
                      "national_sigma": math.sqrt(v["national_var"]),
                      "regional_phi": v["regional_phi"],
                      "regional_sigma": math.sqrt(v["regional_var"])}
        return per_period, math.sqrt(v["measurement_var"])

    @property
    def free(self) -> np.ndarray:
        """Which coordinates are drawn (the others are held at the estimate)."""
        return np.diag(self.cov) > 0.0

    @property
    def held(self) -> tuple[str, ...]:
        """Parameters held at the estimate (on a bound, or a phi without variance, or all
        with a zero covariance), named as the process's fields."""
        return tuple(c.replace("_var", "_sigma")
                     for c, f in zip(COORDINATES, self.free, strict=True) if not f)

    def unbounded(self, x: np.ndarray) -> np.ndarray:
        """Search units to the unbounded scale: logit of a phi, log of a variance."""
        x = np.asarray(x, float)
        phi = ~self.is_var
        with np.errstate(divide="ignore"):  # a held phi at 0 or 1, or variance at 0: +-inf
            z = np.log(x)
            z[..., phi] -= np.log1p(-x[..., phi])
        return z

    def bounded(self, z: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`unbounded`: inside the parameter space for any finite ``z``."""
        z = np.asarray(z, float)
        with np.errstate(over="ignore"):  # the exp of a phi's z, not used
            return np.where(self.is_var, np.exp(z), 0.5 * (1.0 + np.tanh(0.5 * z)))  # expit

    @property
    def unbounded_centre(self) -> np.ndarray:
        """The estimates in the unbounded scale."""
        return self.unbounded(self.centre)

    @property
    def unbounded_cov(self) -> np.ndarray:
        """The covariance in the unbounded scale, by the delta method: ``J cov J``."""
        free, x = self.free, self.centre
        # d logit(phi) / d phi = 1 / (phi (1 - phi)), d log(v) / d v = 1 / v; held: no variance
        jac = np.zeros(x.size)
        v, p = free & self.is_var, free & ~self.is_var
        jac[v], jac[p] = 1.0 / x[v], 1.0 / (x[p] * (1.0 - x[p]))
        return jac[:, None] * self.cov * jac[None, :]

    def normal(self, gen: np.random.Generator) -> np.ndarray:
        """One normal draw in the unbounded scale (held coordinates at the estimate)."""
        free = np.flatnonzero(self.free)
        z = self.unbounded_centre
        if free.size:
            root = np.linalg.cholesky(self.unbounded_cov[np.ix_(free, free)])
            z[free] += root @ gen.standard_normal(free.size)
        return z

    def draw(self, gen: np.random.Generator) -> np.ndarray:
        """One parameter draw in search units: :meth:`normal` mapped back by :meth:`bounded`.

        Held coordinates are the estimate exactly (no round trip through the
        unbounded scale), so a zero covariance draws the estimate bit for bit.
        """
        x = self.centre.copy()
        free = self.free
        x[free] = self.bounded(self.normal(gen))[free]
        return x

    def calibration_at(self, x: np.ndarray) -> Calibration:
        """``calibrate_at`` the history at the search-unit point ``x``."""
        per_period, noise = self.parameters(x)
        return calibrate_at(self.history, self.areas, self.periods_per_year, per_period, noise)


def sampling_distribution(outcome: str, history: str, areas: str,
                          periods_per_year: int) -> SamplingDistribution:
    """Calibrate ``history`` and return its estimates' sampling distribution.

    Raises
    ------
    ConfigError
        If the history cannot be calibrated, or the likelihood's curvature at
        the optimum is not that of a maximum (no sampling distribution).
    """
    cal = calibrate(history, areas, periods_per_year)
    within, between = reml_steps(history, areas, periods_per_year, cal)
    with threadpool_limits(1, "blas"):  # small matrices: as the calibration itself
        c_w, cov_w, _ = search_covariance(within.nll, within.params, within.is_var,
                                          within.var0, within.components)
        c_b, cov_b, _ = search_covariance(between.nll, between.params, between.is_var,
                                          between.var0, between.components)
    cov = np.zeros((7, 7))
    cov[:3, :3], cov[3:, 3:] = cov_w, cov_b
    if np.isnan(cov).any():
        raise ConfigError("the REML likelihood is not at a maximum (its observed information "
                          "is not positive definite): no sampling distribution to draw "
                          "parameters from", source=str(history))
    is_var = np.concatenate([within.is_var, between.is_var])
    scale = np.where(is_var, np.repeat([within.var0, between.var0], [3, 4]), 1.0)
    return SamplingDistribution(
        outcome=outcome, history=str(history), areas=str(areas),
        periods_per_year=periods_per_year, centre=np.concatenate([c_w, c_b]), cov=cov,
        scale=scale, is_var=is_var)


def distributions(cfg: Config) -> dict[str, SamplingDistribution]:
    """The sampling distribution of every outcome the bonds simulate.

    Raises
    ------
    ConfigError
        If a simulated outcome has no ``history`` (nothing to estimate the
        uncertainty from) or the config has no universe.
    """
    if cfg.universe is None:
        raise ConfigError("has no [universe]; parameter uncertainty needs the outcomes' "
                          "histories", source=cfg.source, path="universe")
    ppy = PERIODS_PER_YEAR[cfg.universe.period]
    used = {b.outcome for b in cfg.bonds}
    out = {}
    for i, o in enumerate(cfg.outcomes):
        if o.id not in used:
            continue
        if o.history is None:
            raise ConfigError(f"outcome {o.id!r} has no history: parameter uncertainty "
                              "draws its process from the calibration of a history",
                              source=cfg.source, path=f"outcomes[{i}].history")
        out[o.id] = sampling_distribution(o.id, str(o.history), str(cfg.universe.areas), ppy)
    return out


@dataclass(frozen=True)
class BlockDraw:
    """One block's drawn process and base state of one outcome."""

    process: OutcomeProcess
    data: OutcomeData
    #: the drawn per-year process parameters (before the shift onto the config's)
    drawn: dict[str, float]


def _moved(value: float, centre: float, at: float, phi: bool) -> float:
    """``value`` moved by ``at - centre`` in the unbounded scale (logit of a phi, log of a sigma).

    Exactly ``value`` where the draw does not move the field, so a zero
    covariance reproduces the config bit for bit.
    """
    if at == centre:
        return value
    if not phi:
        return value * (at / centre)  # centre > 0: a sigma at 0 is held, never moved
    if not 0.0 < value < 1.0:  # a phi set by hand to 0 or 1 stays there
        return value
    # at and centre are inside (0, 1): a phi at a bound is held, never moved
    z = _logit(value) + _logit(at) - _logit(centre)
    return 0.5 * (1.0 + math.tanh(0.5 * z))  # expit


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def _shifted(cfg_process: OutcomeProcess, data: OutcomeData, centre: Calibration,
             at: Calibration, error: StateError | None = None) -> BlockDraw:
    """The config's process and state shifted by what the draw changes (nothing at the centre).

    The process in the unbounded scale (:func:`_moved`), the state, which is
    unbounded, by ``at - centre`` plus the drawn prediction ``error``
    (:meth:`lobsim.validation.state_error.StatePrediction.draw`), if any.
    """
    if error is not None:
        at = dataclasses.replace(
            at, trend=at.trend + error.trend, log_level=at.log_level + error.log_level,
            area_state=at.area_state + error.area_state,
            regional_state={r: v + error.regional_state[r]
                            for r, v in at.regional_state.items()},
            national_state=at.national_state + error.national_state)
    changes = {f: _moved(getattr(cfg_process, f), getattr(centre.process, f),
                         getattr(at.process, f), f.endswith("_phi")) for f in _PROCESS_FIELDS}
    regional = {r: v + (at.regional_state[r] - centre.regional_state[r])
                for r, v in data.regional_state.items()}
    state = dataclasses.replace(
        data, trend=data.trend + (at.trend - centre.trend),
        log_level=data.log_level + (at.log_level - centre.log_level),
        area_state=data.area_state + (at.area_state - centre.area_state),
        regional_state=regional,
        national_state=data.national_state + (at.national_state - centre.national_state))
    return BlockDraw(process=dataclasses.replace(cfg_process, **changes), data=state,
                     drawn={f: float(getattr(at.process, f)) for f in _PROCESS_FIELDS})


@dataclass(frozen=True)
class ParameterUncertainty:
    """The parameter draws of a run: per block, each outcome's process and state."""

    distributions: dict[str, SamplingDistribution]
    blocks: tuple[dict[str, BlockDraw], ...]

    def config_of(self, cfg: Config, block: int) -> Config:
        """``cfg`` with block ``block``'s processes."""
        draws = self.blocks[block]
        outcomes = tuple(dataclasses.replace(o, process=draws[o.id].process) if o.id in draws
                         else o for o in cfg.outcomes)
        return dataclasses.replace(cfg, outcomes=outcomes)

    def worlds(self, cfg: Config) -> tuple[World, ...]:
        """The world of every block of a run of ``cfg`` (risk bands resolved); a shrunk
        bond keeps the terms it was signed on, those of ``cfg``'s own world."""
        signing = (build_world(cfg).shrinkage
                   if any(b.payment.basis == "shrunk" for b in cfg.bonds) else None)
        return tuple(build_world(self.config_of(cfg, i), signing=signing,
                                 outcome_data={k: d.data for k, d in draws.items()})
                     for i, draws in enumerate(self.blocks))

    def attrs(self) -> dict[str, str]:
        """Provenance attrs of the run: the option, its method and what is held."""
        held = {k: list(d.held) for k, d in self.distributions.items()}
        return {"parameter_uncertainty": json.dumps(
            {"method": METHOD, "blocks": len(self.blocks), "held_at_estimate": held,
             "state_drawn": [k for k, d in self.distributions.items() if d.draw_state]})}

    def draws_table(self) -> tuple[list[str], np.ndarray]:
        """Names (``outcome.field``) and the (block, name) per-year drawn parameters."""
        names = [f"{k}.{f}" for k in self.distributions for f in _PROCESS_FIELDS]
        values = np.array([[b[k].drawn[f] for k in self.distributions for f in _PROCESS_FIELDS]
                           for b in self.blocks])
        return names, values.reshape(len(self.blocks), len(names))


def draw_blocks(cfg: Config, seed: int, n_blocks: int,
                dists: dict[str, SamplingDistribution] | None = None) -> ParameterUncertainty:
    """Draw every block's parameters once, up front (workers never recalibrate).

    Parameters
    ----------
    cfg : Config
    seed : int
        The run's seed; block ``i`` draws from :func:`parameter_generator`.
    n_blocks : int
    dists : dict, optional
        The sampling distributions (default: :func:`distributions` of ``cfg``).
    """
    dists = distributions(cfg) if dists is None else dists
    assert cfg.universe is not None
    areas = read_areas(cfg.universe.areas)
    data_of = read_outcomes(cfg, areas)  # with their volatility factors
    base = {}
    for k, d in dists.items():
        o = cfg.outcome(k)
        assert o.process is not None
        data = data_of[k]
        centre = d.calibration_at(d.centre)
        if tuple(centre.areas) != tuple(areas.ids):
            raise ConfigError("the calibration's areas differ from the universe's",
                              source=str(o.history))
        base[k] = (o.process, data, centre)
    blocks = [_block_draws(dists, base, seed, i) for i in range(n_blocks)]
    return ParameterUncertainty(distributions=dists, blocks=tuple(blocks))


def _block_draws(dists: dict[str, SamplingDistribution], base: dict[str, Any], seed: int,
                 i: int) -> dict[str, BlockDraw]:
    """Block ``i``'s draw of every outcome (in the config's order: one stream per block)."""
    gen, state_gen = parameter_generator(seed, i), state_generator(seed, i)
    draws = {}
    for k, d in dists.items():
        cfg_process, data, centre = base[k]
        at = d.calibration_at(d.draw(gen))
        error = state_prediction(at).draw(state_gen) if d.draw_state else None
        draws[k] = _shifted(cfg_process, data, centre, at, error)
    return draws


class BlockDrawer:
    """The ``block_worlds`` hook of a run (``lobsim.scale.runner.run``,
    ``lobsim.model.simulate.simulate``): draws every block's parameters once,
    up front, gives their worlds and keeps the draws in :attr:`drawn`."""

    def __init__(self, dists: dict[str, SamplingDistribution] | None = None) -> None:
        self.dists = dists
        self.drawn: ParameterUncertainty | None = None

    def __call__(self, cfg: Config, seed: int, n_blocks: int) -> tuple[World, ...]:
        self.drawn = draw_blocks(cfg, seed, n_blocks, self.dists)
        return self.drawn.worlds(cfg)

    def result(self, drawn: xr.Dataset, fixed: xr.Dataset) -> xr.Dataset:
        """:func:`with_parameter_uncertainty` of the run this hook drew for."""
        if self.drawn is None:
            raise RuntimeError("the run did not call its block_worlds hook")
        return with_parameter_uncertainty(drawn, fixed, self.drawn)


def with_parameter_uncertainty(drawn: xr.Dataset, fixed: xr.Dataset,
                               pu: ParameterUncertainty) -> xr.Dataset:
    """The run of ``--parameter-uncertainty``: ``drawn`` with ``fixed``'s defaults and the draws.

    ``drawn`` and ``fixed`` are per-scenario results of the same config,
    seed and scenarios (common random numbers), at ``pu``'s worlds and at
    the estimated parameters, or both their streaming summaries with the
    blocks' default counts (``lobsim.scale.runner.run(..., stream=True,
    block_defaults=True)``); what they give is read by
    :func:`lobsim.analysis.parameter_uncertainty.parameter_uncertainty_effect`.
    """
    ds = drawn.copy()
    if COUNTS in fixed:  # streaming summaries: the fixed run's counts and P(default)
        ds[FIXED_COUNTS] = fixed[COUNTS].assign_attrs(
            long_name="defaults of each bond in each scenario block at the estimated "
                      "parameters (same scenario draws)")
        for k in ("", "_se"):
            ds[FIXED_PROBABILITY + k] = fixed["default_probability" + k].assign_attrs(
                long_name=f"{fixed['default_probability' + k].attrs.get('long_name', '')} "
                          "at the estimated parameters")
    else:
        ds[FIXED] = fixed["default"].assign_attrs(
            long_name="the bond defaults at the estimated parameters (same scenario draws)")
    names, values = pu.draws_table()
    ds["parameter_draw"] = (("parameter_block", "parameter"), values,
                            {"long_name": "drawn per-year process parameters of each scenario "
                                          "block, before the shift onto the config's",
                             "units": "1 (phi per year; sigma in log points per year)"})
    ds = ds.assign_coords(parameter=("parameter", np.array(names, str)),
                          parameter_block=np.arange(values.shape[0]))
    ds.attrs.update(pu.attrs())
    return ds
