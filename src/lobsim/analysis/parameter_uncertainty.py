"""What parameter uncertainty adds to each bond's default probability.

A run with ``--parameter-uncertainty`` (:mod:`lobsim.validation.parameter_draws`)
holds, beside its ``default``, ``default_fixed_parameters``: the default of
the same scenarios (same seed, same scenario draws: common random numbers)
simulated at the estimated parameters. The difference is paired per
scenario, so its Monte Carlo error is that of the scenarios where the two
differ. Scenarios of one block share its parameter draw: the standard
errors of what depends on the draws are clustered by block
(:func:`lobsim.analysis.stats.block_sums_se`), and with a few dozen blocks
they are what limits the precision of the added probability (a smaller
``[simulation] block_size`` gives more draws). Everything is computed from
the blocks' default counts, which a ``--stream`` run's summary keeps
(``default_count_by_block``; :mod:`lobsim.scale.streaming`), so the
per-scenario results and the streaming summary give the same table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from lobsim.analysis import tables
from lobsim.analysis.stats import (
    block_sizes,
    block_sums_se,
    block_t_factor,
    normal_interval,
    probability_interval,
    probability_se,
)

#: Fewer parameter draws (blocks) than this and the table says its intervals are rough.
FEW_DRAWS = 20
#: The variable a run with parameter uncertainty adds.
FIXED = "default_fixed_parameters"
#: A streaming run's summary keeps, per block and bond, the defaults at drawn and at fixed
#: parameters (lobsim.scale.streaming.Plan.block_defaults), and the fixed run's
#: P(default) and its standard error.
COUNTS, FIXED_COUNTS = "default_count_by_block", "default_count_by_block_fixed"
FIXED_PROBABILITY = "default_probability_fixed_parameters"


def has_parameter_uncertainty(ds: xr.Dataset) -> bool:
    """Whether ``ds`` is a run with ``--parameter-uncertainty`` (results or streaming summary)."""
    return (FIXED in ds and "default" in ds) or (FIXED_COUNTS in ds and COUNTS in ds)


def parameter_uncertainty_effect(ds: xr.Dataset) -> xr.Dataset:
    """Per bond: P(default) at fixed and at drawn parameters and the difference, with 95% intervals.

    Parameters
    ----------
    ds : xarray.Dataset
        Per-scenario results of a run with ``--parameter-uncertainty``, or
        the summary of such a run with ``--stream``. Both give the blocks'
        default counts, from which everything but the fixed run's own
        P(default) and standard error is computed (those are the fixed run's,
        :func:`lobsim.analysis.stats.probability_se`, and its streaming
        summary's): the two agree to rounding.

    Returns
    -------
    xarray.Dataset
        Over ``bond``: ``default_probability_fixed``, ``default_probability``
        and ``default_probability_added`` (drawn minus fixed, the paired mean
        of the per-scenario differences), each with ``_lo`` and ``_hi``
        (Wilson for the probabilities, normal for the difference), and
        ``default_probability_draw_sd``.
    """
    if not has_parameter_uncertainty(ds):
        raise ValueError(f"not a run with --parameter-uncertainty: no {FIXED!r}")
    block = int(ds.attrs["block_size"])
    if FIXED in ds:  # per-scenario results
        n = int(ds.sizes["scenario"])
        starts = np.arange(0, n, block)
        drawn, fixed = (np.add.reduceat(ds[k].transpose("scenario", "bond").values.astype(
            np.int64), starts, axis=0) for k in ("default", FIXED))
        p_fixed = probability_se(ds[FIXED].transpose("scenario", "bond").values)
    else:  # a streaming summary
        n = int(ds.attrs["scenarios"])
        drawn, fixed = (ds[k].transpose("block", "bond").values for k in (COUNTS, FIXED_COUNTS))
        p_fixed = (ds[FIXED_PROBABILITY].values, ds[FIXED_PROBABILITY + "_se"].values)
    sizes = block_sizes(n, block)
    out = {}
    # at drawn parameters the scenarios of a block share its draw: the block-clustered se,
    # estimated from the blocks, so its intervals take Student's t with blocks - 1 df
    widen = block_t_factor(sizes.size)
    p_drawn, se_drawn = block_sums_se(drawn, sizes)
    for name, (p, se) in (("default_probability_fixed", p_fixed),
                          ("default_probability", (p_drawn, se_drawn * widen))):
        lo, hi = probability_interval(p, se, n)
        out[name], out[f"{name}_lo"], out[f"{name}_hi"] = p, lo, hi
    added, se = block_sums_se(drawn - fixed, sizes)
    lo, hi = normal_interval(added, se * widen)
    out["default_probability_added"] = added
    out["default_probability_added_lo"], out["default_probability_added_hi"] = lo, hi
    spread = count_spread(drawn, sizes)
    long = {"default_probability_fixed": "P(default) at the estimated parameters",
            "default_probability": "P(default) with parameter uncertainty",
            "default_probability_added": "P(default) added by parameter uncertainty (paired)"}
    data = {}
    for k, v in out.items():
        base = k.removesuffix("_lo").removesuffix("_hi")
        what = {"_lo": "lower end of the 95% interval of ",
                "_hi": "upper end of the 95% interval of "}.get(k[len(base):], "")
        data[k] = ("bond", np.asarray(v, float), {"units": "1", "long_name": what + long[base]})
    data["default_probability_draw_sd"] = ("bond", spread, {
        "units": "1", "long_name": "sd of the P(default) of one parameter draw across draws "
                                   "(the blocks' Monte Carlo noise removed)"})
    return xr.Dataset(data, coords={"bond": ds.bond.values},
                      attrs={"scenarios": n,
                             "parameter_uncertainty": ds.attrs.get("parameter_uncertainty", "")})


def parameter_uncertainty_dict(e: xr.Dataset) -> dict[str, object]:
    """The JSON layout of :func:`parameter_uncertainty_effect` (``summary --json``)."""
    info = json.loads(str(e.attrs.get("parameter_uncertainty") or "{}"))
    bonds = {}
    for i, bond in enumerate(e.bond.values.tolist()):
        v = e.isel(bond=i)
        bonds[str(bond)] = {k: float(v[k]) for k in e.data_vars}
    return {"method": info.get("method"), "blocks": info.get("blocks"),
            "held_at_estimate": info.get("held_at_estimate"), "bonds": bonds}


def draw_spread(event: np.ndarray, block_size: int) -> np.ndarray:
    """How far one parameter draw moves a probability: :func:`count_spread` of ``event``'s blocks.

    ``event`` is (scenario, ...) boolean, in blocks of ``block_size``
    consecutive scenarios.
    """
    e = np.asarray(event, dtype=np.int64)
    starts = np.arange(0, e.shape[0], block_size)
    return count_spread(np.add.reduceat(e, starts, axis=0), block_sizes(e.shape[0], block_size))


def count_spread(counts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The sd across blocks of their probabilities, their Monte Carlo noise removed.

    The variance of the blocks' frequencies ``p_b = counts_b / n_b`` less
    what their Monte Carlo noise explains, ``mean(p_b (1 - p_b) / (n_b - 1))``
    (unbiased for binomial noise), truncated at 0; NaN with fewer than two
    blocks of two scenarios or more. ``counts`` is block-first.
    """
    c = np.asarray(counts, dtype=float)
    w = np.asarray(sizes, dtype=float)
    keep = w >= 2
    if keep.sum() < 2:
        return np.full(c.shape[1:], np.nan)
    w = w[keep].reshape((-1,) + (1,) * (c.ndim - 1))
    p = c[keep] / w
    noise = (p * (1 - p) / (w - 1)).mean(axis=0)
    return np.sqrt(np.maximum(p.var(axis=0, ddof=1) - noise, 0.0))


@dataclass(frozen=True)
class ParameterUncertaintyTable:
    """The printed table of :func:`parameter_uncertainty_effect`: the terminal's and the report's."""

    #: what was drawn and what held (the terminal prints it after the heading, in parentheses)
    method: str
    header: list[str]
    rows: list[list[str]]
    #: how to read the columns (printed under the table, with the intervals' note)
    reading: str


def parameter_uncertainty_table(e: xr.Dataset) -> ParameterUncertaintyTable:
    """Per bond the cells of :func:`parameter_uncertainty_effect` as printed (percent, points)."""
    info = json.loads(str(e.attrs.get("parameter_uncertainty") or "{}"))
    held = [f"{k}.{c}" for k, cs in info.get("held_at_estimate", {}).items() for c in cs]
    method = (f"each of {info.get('blocks', '?')} scenario blocks draws the process and base "
              "state from the calibration's sampling distribution; held at the estimate: "
              f"{', '.join(held) or 'none'}")
    header = ["bond", "P(default) fixed %", "95% interval", "P(default) drawn %",
              "95% interval", "added pp", "95% interval", "sd over draws pp"]
    rows = []
    for i, bond in enumerate(e.bond.values.tolist()):
        v = e.isel(bond=i)
        row = [str(bond)]
        for k, sign in (("default_probability_fixed", ""), ("default_probability", ""),
                        ("default_probability_added", "+")):
            row += [f"{100 * float(v[k]):{sign}.2f}",
                    tables.interval(100 * float(v[f"{k}_lo"]), 100 * float(v[f"{k}_hi"]),
                                    f"{sign}.2f")]
        row.append(f"{100 * float(v.default_probability_draw_sd):.2f}")
        rows.append(row)
    reading = ("added: drawn minus fixed on common random numbers, the same scenarios at the "
               "estimated parameters; sd over draws: how far the P(default) of one parameter "
               "draw lies from another's; pp = percentage points; the intervals of drawn and "
               "added count blocks, which share a draw, not scenarios (Student's t on "
               "blocks - 1 degrees of freedom)")
    blocks = info.get("blocks")
    if isinstance(blocks, int) and blocks < FEW_DRAWS:
        reading += (f"; only {blocks} draws: the spread of P(default) across draws is "
                    f"estimated from few of them and the intervals are wide; give at least "
                    f"{FEW_DRAWS} with a smaller block size (--set simulation.block_size=N)")
    return ParameterUncertaintyTable(method, header, rows, reading)


def format_parameter_uncertainty(e: xr.Dataset) -> str:
    """The terminal table of :func:`parameter_uncertainty_effect`."""
    t = parameter_uncertainty_table(e)
    return "\n".join([f"Parameter uncertainty ({t.method})", *tables.render(t.header, t.rows),
                      f"({t.reading})", tables.INTERVAL_NOTE])
