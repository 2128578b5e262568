"""The report's view of pooled basket measurement (docs/model.md section 6.13): the
pooled signal-to-noise table and the figure of measurement noise as bonds are pooled."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.ticker import PercentFormatter

from lobsim.analysis import pooling
from lobsim.report import decision
from lobsim.report.plot import LOSS, NEUTRAL, axes_for, legend_below


def pooled_section(s: xr.Dataset, ds: xr.Dataset, table: Callable[..., str]) -> list[str]:
    """HTML parts: each pooled basket's signal-to-noise against its bonds' own
    (``s``: :func:`lobsim.analysis.summary.summarize` of ``ds``; ``table``
    renders a head and rows); none if no basket is pooled."""
    if "basket_pooled_signal_to_noise" not in s:
        return []
    pooled = s.basket_pooled_signal_to_noise.values
    snr = s.signal_to_noise.values
    member = ds.basket_member.values.astype(bool)
    return ["<h2 id='pooled'>Pooled measurement</h2>", table(
        ["basket", "bonds", "pooled signal/noise", "lowest bond signal/noise",
         "median bond signal/noise"],
        [[str(key), str(int(member[i].sum())), decision.ratio(float(pooled[i])),
          decision.ratio(float(snr[member[i]].min())),
          decision.ratio(float(np.median(snr[member[i]])))]
         for i, key in enumerate(s.basket.values.tolist()) if np.isfinite(pooled[i])]),
        "<p class='note'>A pooled basket pays its bonds on their summed measured units, "
        "each bond measured against its own control group: independent prediction errors "
        "partly cancel, shared ones (donors, regional and national factors) do not.</p>"]


def measurement_noise(ds: xr.Dataset, basket: str, *, ax: Axes | None = None) -> Axes:
    """Diversification of measurement noise in a basket (docs/model.md section 6.13).

    The sd of the pooled prediction error per unit of pooled target as the
    basket's bonds are pooled one by one (:func:`lobsim.analysis.pooling.diversification`),
    against the ``1 / sqrt(n)`` fall of independent errors: the gap is the
    noise the bonds share (donors, regional and national factors).

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    basket : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = pooling.diversification(ds, basket)
    ax = axes_for(ax, (6.0, 4.2))
    n = d.bonds_pooled.values
    ax.plot(n, 100.0 * d.noise_per_target.values, "o-", color=LOSS, lw=1.6,
            label="pooled: the first n bonds (in config order)")
    ax.plot(n, 100.0 * d.independent.values, "--", color=NEUTRAL, lw=1.2,
            label="independent errors: one bond's over sqrt(n)")
    ax.set_xlabel("bonds pooled n")
    ax.set_ylabel("sd of the pooled error (% of pooled target)")
    ax.yaxis.set_major_formatter(PercentFormatter())
    ax.set_ylim(bottom=0.0)
    ax.set_title(f"Basket {basket}: measurement noise as bonds are pooled")
    ax.grid(alpha=0.3)
    legend_below(ax, 1)
    return ax
