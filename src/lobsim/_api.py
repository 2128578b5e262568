"""``lobsim.simulate``: :func:`lobsim.model.simulate.simulate`, with parameter uncertainty on request.

Drawing the process parameters needs the calibration
(:mod:`lobsim.validation.parameter_draws`), a layer above the model, so the
package's ``simulate`` is this function and not the model's: with
``parameter_uncertainty=True`` it makes the run of ``lobsim run
--parameter-uncertainty`` (docs/real_data.md, Parameter uncertainty),
without it it is the model's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lobsim.model import simulate as model

if TYPE_CHECKING:
    import xarray as xr

    from lobsim.model.config import Config


def simulate(cfg: Config, *, scenarios: int | None = None, seed: int | None = None,
             chunk_size: int | None = None, threads: int | None = None,
             tilt_global: float = 0.0, tilt_types: dict[str, float] | None = None,
             progress: Callable[[int], Any] | None = None,
             parameter_uncertainty: bool = False) -> xr.Dataset:
    """Simulate a configuration and return labelled results.

    Parameters as for :func:`lobsim.model.simulate.simulate`, and

    parameter_uncertainty : bool
        Each block of scenarios draws the process parameters and base state
        from their calibration's sampling distribution, as ``lobsim run
        --parameter-uncertainty``: the results are those of the drawn
        parameters, with ``default_fixed_parameters`` (the same scenarios at
        the estimated ones), ``parameter_draw`` and the attrs that
        :func:`lobsim.analysis.parameter_uncertainty.parameter_uncertainty_effect`
        reads. Two runs: ``progress`` counts each scenario twice. Not with
        importance sampling (``tilt_global``, ``tilt_types``).

    Raises
    ------
    ValueError
        ``parameter_uncertainty`` with a tilt.
    lobsim.errors.ConfigError
        ``parameter_uncertainty`` and a simulated outcome without a history.

    Examples
    --------
    >>> cfg = load_config("configs/gm_ward_bond.toml")  # doctest: +SKIP
    >>> ds = simulate(cfg, scenarios=2000, parameter_uncertainty=True)  # doctest: +SKIP
    >>> parameter_uncertainty_effect(ds).default_probability_added  # doctest: +SKIP
    """
    run: dict[str, Any] = {"scenarios": scenarios, "seed": seed, "chunk_size": chunk_size,
                           "threads": threads, "progress": progress}
    if not parameter_uncertainty:
        return model.simulate(cfg, tilt_global=tilt_global, tilt_types=tilt_types, **run)
    if tilt_global or tilt_types:
        raise ValueError("parameter_uncertainty is not supported with importance sampling "
                         "(tilt_global, tilt_types): it compares plain runs")
    from lobsim.validation.parameter_draws import BlockDrawer

    drawer = BlockDrawer()
    fixed = model.simulate(cfg, **run)
    return drawer.result(model.simulate(cfg, block_worlds=drawer, **run), fixed)
