"""The figure of a design search (:func:`lobsim.analysis.design.design`).

One panel: every design's investor P(default) (with its 95% Wilson interval)
against the state's E[overpayment], on common random numbers; the frontier
(no design better on both) joined by a line, the contracted and the
recommended designs marked, and the criterion's P(default) bound drawn.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

#: Designs labelled by their number beside their point, up to this many.
MAX_LABELS = 40


def design_figure(d: xr.Dataset, *, fig: Figure | None = None) -> Figure:
    """Draw the frontier of a design search.

    Parameters
    ----------
    d : xarray.Dataset
        :func:`lobsim.analysis.design.design`.
    fig : matplotlib.figure.Figure, optional
        Figure to draw on (a new 7.5 x 5.5 inch one by default).

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`lobsim.report.plot.save`.
    """
    if fig is None:
        fig = Figure(figsize=(7.5, 5.5), layout="constrained")
    ax = fig.subplots()
    x = d.expected_overpayment.values
    y = d.default_probability.values
    err = np.vstack([y - d.default_probability_low.values, d.default_probability_high.values - y])
    ax.errorbar(x, y, yerr=err, fmt="o", color="C0", alpha=0.6, markersize=4, linewidth=0.8,
                label="design (95% interval)")
    front = np.flatnonzero(d.frontier.values)
    order = front[np.argsort(x[front])]
    ax.plot(x[order], y[order], "-", color="C1", marker="o", label="frontier")
    ax.plot(x[0], y[0], "s", color="k", markersize=9, fillstyle="none", label="contracted")
    best = int(d.attrs["recommended"])
    if best >= 0:
        ax.plot(x[best], y[best], "*", color="C3", markersize=14, label="recommended")
    cap = float(d.attrs["max_default"])
    ax.axhline(cap, color="C3", linestyle="--", linewidth=0.8,
               label=f"criterion: P(default) <= {100 * cap:g}%")
    if d.sizes["design"] <= MAX_LABELS:
        for i in range(d.sizes["design"]):
            ax.annotate(str(i), (x[i], y[i]), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(f"state's E[overpayment] ({d.attrs['currency']})")
    ax.set_ylabel("investor P(default)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="x-small")
    fig.suptitle(f"Design of {d.attrs['instrument_kind']} {d.attrs['instrument']} "
                 f"({d.attrs['config']})\n{d.sizes['design']} designs, "
                 f"{d.attrs['scenarios']:,} scenarios each on common random numbers; "
                 "numbers: the design table's", fontsize=10)
    return fig
