"""The figure of a sensitivity sweep (:func:`lobsim.analysis.sweep.sweep`).

Three panels over the swept parameter: P(default) with its 95% Wilson
interval, E[multiple] and the money at stake (the state's E[overpayment],
the provider's E[shortfall]) with their 95% intervals, all on common random
numbers. One parameter: a line per bond (per basket when the config has
more bonds than a figure can tell apart). Two: the first on the x axis and
a line per value of the second, for one instrument.
"""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from lobsim.analysis.stats import normal_interval

#: Lines one panel can show apart; with more bonds the baskets are drawn.
MAX_LINES = 8
#: Swept values up to this many are the x ticks themselves.
MAX_TICKS = 12


def sweep_figure(s: xr.Dataset, *, instrument: str | None = None,
                 fig: Figure | None = None) -> Figure:
    """Draw a sweep.

    Parameters
    ----------
    s : xarray.Dataset
        :func:`lobsim.analysis.sweep.sweep`.
    instrument : str, optional
        With two parameters, the bond or basket drawn (default: the only bond,
        else the first basket, else the first bond).
    fig : matplotlib.figure.Figure, optional
        Figure to draw on (a new 7.5 x 9 inch one by default).

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`lobsim.report.plot.save`.
    """
    params = json.loads(s.attrs["parameters"])
    if fig is None:
        fig = Figure(figsize=(7.5, 9), layout="constrained")
    p_ax, m_ax, g_ax = fig.subplots(3, 1, sharex=True)
    x_name = params[0]
    x, ticks = _positions(s[x_name].values)
    if len(params) == 1:
        dim, names = _lines_of(s)
        series = [(str(n), s.sel({dim: n})) for n in names]
        what = f"by {dim}"
    else:
        dim, ident = _instrument(s, instrument)
        one = s.sel({dim: ident})
        series = [(f"{params[1]} = {_label(v)}", one.sel({params[1]: v}))
                  for v in s[params[1]].values]
        what = f"{dim} {ident}"
    prefix = "basket_" if dim == "basket" else ""
    for k, (label, at) in enumerate(series):
        colour = f"C{k % 10}"
        p = at[f"{prefix}default_probability"].values
        p_ax.plot(x, p, marker="o", color=colour, label=label)
        p_ax.fill_between(x, at[f"{prefix}default_probability_low"].values,
                          at[f"{prefix}default_probability_high"].values, color=colour,
                          alpha=0.2, linewidth=0)
        _band(m_ax, x, at, f"{prefix}mean_multiple", colour, label)
        if dim == "bond":
            _band(g_ax, x, at, "expected_overpayment", colour, f"{label}: state's overpayment")
            if "expected_provider_shortfall_value" in at:
                _band(g_ax, x, at, "expected_provider_shortfall_value", colour,
                      f"{label}: provider's shortfall", linestyle="--", marker="s")
    if dim == "basket":  # money is per bond: the book's totals (sums of means)
        total = s if len(params) == 1 else s.sel({params[1]: s[params[1]].values[0]})
        g_ax.plot(x, total.expected_overpayment.sum("bond").values, marker="o", color="k",
                  label="state's overpayment, all bonds")
        if "expected_provider_shortfall_value" in total:
            g_ax.plot(x, total.expected_provider_shortfall_value.sum("bond").values, marker="s",
                      color="k", linestyle="--", label="provider's shortfall, all bonds")
    p_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    p_ax.set_ylabel("P(default)")
    m_ax.set_ylabel("E[multiple]")
    g_ax.set_ylabel("expected amount (GBP)")
    g_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    g_ax.set_xlabel(x_name)
    if ticks is not None or x.size <= MAX_TICKS:  # the swept values themselves
        g_ax.set_xticks(x, ticks or [_label(v) for v in s[x_name].values])
    for ax in (p_ax, m_ax, g_ax):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="x-small")
    fig.suptitle(f"Sweep of {s.attrs['config']}, {what}\n{s.attrs['scenarios']:,} scenarios "
                 "per point on common random numbers; bands: 95% intervals", fontsize=10)
    return fig


def _band(ax: Axes, x: np.ndarray, at: xr.Dataset, name: str, colour: str, label: str,
          linestyle: str = "-", marker: str = "o") -> None:
    mean = at[name].values
    low, high = normal_interval(mean, at[name + "_se"].values)
    ax.plot(x, mean, marker=marker, color=colour, linestyle=linestyle, label=label)
    ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)


def _lines_of(s: xr.Dataset) -> tuple[str, list[str]]:
    """The instruments one parameter's lines are drawn for."""
    bonds = s.bond.values.tolist()
    if len(bonds) <= MAX_LINES or "basket" not in s.dims:
        return "bond", bonds[:MAX_LINES]
    return "basket", s.basket.values.tolist()[:MAX_LINES]


def _instrument(s: xr.Dataset, ident: str | None) -> tuple[str, str]:
    if ident is None:
        if s.sizes["bond"] == 1 or "basket" not in s.dims:
            return "bond", str(s.bond.values[0])
        return "basket", str(s.basket.values[0])
    for dim in ("bond", "basket"):
        if dim in s.dims and ident in s[dim].values.tolist():
            return dim, ident
    raise ValueError(f"no bond or basket {ident!r} in the sweep")


def _positions(values: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """Numbers as they are; anything else at 0, 1, ... with its values as tick labels."""
    if np.issubdtype(values.dtype, np.number) and not np.issubdtype(values.dtype, np.bool_):
        return values.astype(float), None
    return np.arange(values.size, dtype=float), [_label(v) for v in values]


def _label(value: object) -> str:
    item = np.asarray(value).item()
    return f"{item:g}" if isinstance(item, float) else str(item)
