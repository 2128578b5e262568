"""Figures of simulation results (docs/model.md section 9): one function per figure.

Every function takes the results (a :func:`lobsim.simulate` Dataset, or the
object the figure is about) and an optional matplotlib ``ax`` to draw on.
Single-panel figures return their ``Axes``; figures of several panels
(:func:`control_fit`) return their ``Figure``. Without
``ax`` a new :class:`matplotlib.figure.Figure` is made directly, not through
``pyplot``, so nothing needs a display or closing: save it with
``fig.savefig("x.png")`` (Agg), or let Jupyter show it.

Statistics are those of :mod:`lobsim.analysis.stats`, weighted by the
likelihood ratios ``exp(log_weight)`` when the run was importance-sampled
(not self-normalised), as :func:`lobsim.summarize` weights them.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from lobsim.analysis import stats

if TYPE_CHECKING:
    from lobsim.model.config import Config

#: Colours: what investors lose is red, what they get back blue; savings green.
LOSS, GAIN, NEUTRAL, SAVING = "#c0392b", "#2e6da4", "#7f8c8d", "#27ae60"
#: Central bands of the fan charts and boxes: 50% and 90%.
BANDS = ((0.25, 0.75), (0.05, 0.95))

Measure = Literal["multiple", "irr"]
Group = Literal["bond", "provider", "intervention", "region", "department"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def figure_of(ax: Axes) -> Figure:
    """The figure an Axes is drawn on (the top-level one, for subfigures)."""
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    return fig


def axes_for(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax``, or the axes of a new figure of ``size`` (inches) when it is None."""
    if ax is not None:
        return ax
    return Figure(figsize=size, layout="constrained").add_subplot()


def scenario_weights(ds: xr.Dataset) -> np.ndarray:
    """Each scenario's share in the estimators: ``exp(log_weight) / n`` (``1 / n`` if plain).

    Not self-normalised (:mod:`lobsim.analysis.stats`): under importance
    sampling the shares sum to about one, not exactly.
    """
    n = int(ds.sizes["scenario"])
    w = stats.run_weights(ds)
    return np.full(n, 1.0 / n) if w is None else w / n


def _estimator_weights(share: np.ndarray) -> np.ndarray | None:
    """The weights of :mod:`lobsim.analysis.stats` from :func:`scenario_weights` shares."""
    return None if np.all(share == share[0]) else share * share.size


def _probability(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Probability of a boolean array and its standard error (lobsim.analysis.stats)."""
    p, se = stats.probability_se(np.asarray(x, bool), _estimator_weights(w))
    return float(p), float(se)


def _probability_interval(x: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Probability of a boolean array and its 95% Wilson interval (lobsim.analysis.stats)."""
    p, se = _probability(x, w)
    lo, hi = stats.probability_interval(p, se, w.size)
    return p, float(lo), float(hi)


def _mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over scenarios (axis 0) of lobsim.analysis.stats."""
    return stats.mean_se(x, _estimator_weights(w))[0]


def _quantiles(x: np.ndarray, w: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Quantiles along axis 0: the VaR of lobsim.analysis.stats (the inverse of the cdf)."""
    return stats.quantiles(x, tuple(levels), _estimator_weights(w))[0]


def _money_axis(ax: Axes, axis: str, currency: str) -> None:
    """Tick labels in millions when the numbers are large (GBP 1.5m, not 1500000)."""
    lim = ax.get_ylim() if axis == "y" else ax.get_xlim()
    big = max(abs(lim[0]), abs(lim[1])) >= 1e6
    fmt = FuncFormatter(lambda v, _: f"{v / 1e6:,.4g}m" if big else f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def legend_below(ax: Axes, ncol: int = 2) -> None:
    """The legend under the axes, where it hides no data."""
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=ncol)


def _index(ds: xr.Dataset, dim: str, key: str) -> int:
    keys = [str(k) for k in ds[dim].values.tolist()]
    if key not in keys:
        raise ValueError(f"no {dim} {key!r} in the results (there are: {', '.join(keys[:8])}"
                         f"{', ...' if len(keys) > 8 else ''})")
    return keys.index(key)


# --------------------------------------------------------------------------
# investors: return distributions and default probabilities
# --------------------------------------------------------------------------
def return_distribution(ds: xr.Dataset, bond: str | None = None, basket: str | None = None, *,
                        measure: Measure = "multiple", bins: int = 50,
                        ax: Axes | None = None) -> Axes:
    """Histogram of a bond's or basket's investor multiple or IRR.

    Bars below break-even (multiple 1, IRR 0) are the scenarios in which
    investors default; the break-even line is drawn and the default
    probability (with its 95% interval), the total-loss probability and the
    mean are written on the plot.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    bond, basket : str
        The bond or basket (give one).
    measure : {"multiple", "irr"}
        Money multiple (payment / principal) or IRR (percent a year).
    bins : int
        Histogram bins.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> ax = return_distribution(ds, bond="bham-jsa", measure="irr")  # doctest: +SKIP
    >>> ax.figure.savefig("bham_irr.png")  # doctest: +SKIP
    """
    if (bond is None) == (basket is None):
        raise ValueError("give one of bond= or basket=")
    if measure not in ("multiple", "irr"):
        raise ValueError(f"measure must be 'multiple' or 'irr', got {measure!r}")
    if bond is not None:
        i, name, prefix = _index(ds, "bond", bond), bond, ""
        payment, principal = ds.investor_payment.values[:, i], float(ds.principal.values[i])
    else:
        assert basket is not None
        i, name, prefix = _index(ds, "basket", basket), f"basket {basket}", "basket_"
        payment = ds.basket_payment.values[:, i]
        principal = float(ds.basket_principal.values[i])
    x = ds[prefix + measure].values[:, i].astype(float)
    scale, breakeven = (100.0, 0.0) if measure == "irr" else (1.0, 1.0)
    x = x * scale
    w = scenario_weights(ds)
    ok = np.isfinite(x)
    pd, pd_lo, pd_hi = _probability_interval(payment < principal, w)
    total, _ = _probability((payment == 0.0).astype(float), w)

    ax = axes_for(ax, (6.0, 3.6))
    heights, edges = np.histogram(x[ok], bins=_edges(x[ok], bins, breakeven), weights=w[ok])
    below = 0.5 * (edges[:-1] + edges[1:]) < breakeven
    # two step patches, the bins below break-even and the rest (one patch per bar is slow)
    ax.stairs(np.where(below, heights, 0.0), edges, fill=True, color=LOSS, alpha=0.85,
              label="default (below break-even)")
    ax.stairs(np.where(below, 0.0, heights), edges, fill=True, color=GAIN, alpha=0.85,
              label="principal repaid")
    ax.axvline(breakeven, color="black", lw=1.2, ls="--", label="break-even")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    label = "IRR (% a year)" if measure == "irr" else "money multiple (payment / principal)"
    ax.set_xlabel(label)
    ax.set_ylabel("share of scenarios")
    ax.set_title(f"{name}: investor {'IRR' if measure == 'irr' else 'multiple'}")
    mean = float(_mean(x[ok], w[ok]))
    unit = "%" if measure == "irr" else "x"
    ax.text(0.98, 0.95, f"P(default) {100 * pd:.1f}% ({100 * pd_lo:.1f} to {100 * pd_hi:.1f})\n"
                        f"P(total loss) {100 * total:.1f}%\nmean {mean:.2f}{unit}",
            transform=ax.transAxes, ha="right", va="top", fontsize=9,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_ylim(0, 1.35 * heights.max())  # room for the legend and the text box
    ax.set_yticks([t for t in ax.get_yticks() if 0.0 <= t <= 1.0])
    return ax


def _edges(x: np.ndarray, bins: int, at: float) -> np.ndarray:
    """About ``bins`` equal bins over ``x`` with ``at`` on an edge, so no bin straddles it."""
    lo, hi = float(x.min()), float(x.max())
    width = (hi - lo) / bins if hi > lo else 1.0
    first = np.floor((lo - at) / width)
    last = max(np.ceil((hi - at) / width), first + 1)
    edges = at + width * np.arange(first, last + 1)
    # rounding must not push the extremes out (np.histogram's last bin is closed)
    edges[0], edges[-1] = min(edges[0], lo), max(edges[-1], hi)
    return edges


def default_probability(ds: xr.Dataset, *, dim: Literal["bond", "basket"] = "bond",
                        top: int | None = None, ax: Axes | None = None) -> Axes:
    """Default probability of each bond (or basket), sorted, with 95% error bars.

    The error bars are the 95% Wilson interval of the probability
    ``P(payment < principal)`` (:func:`lobsim.analysis.stats.probability_interval`),
    as every table of the report gives it.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    dim : {"bond", "basket"}
    top : int, optional
        Show only the ``top`` highest.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if dim == "bond":
        default = ds.investor_payment.values < ds.principal.values
    else:
        default = ds.basket_payment.values < ds.basket_principal.values
    w = scenario_weights(ds)
    keys = [str(k) for k in ds[dim].values.tolist()]
    pd = np.array([_probability_interval(default[:, j], w)
                   for j in range(len(keys))]).reshape(-1, 3)
    order = np.argsort(-pd[:, 0], kind="stable")[:top]
    ax = axes_for(ax, (6.5, 1.2 + 0.22 * len(order)))
    y = np.arange(len(order))[::-1]  # highest at the top
    p = pd[order, 0]
    # the Wilson interval holds p, up to rounding at p = 0 or 1
    err = np.maximum(np.array([p - pd[order, 1], pd[order, 2] - p]), 0.0)
    ax.barh(y, 100 * p, xerr=100 * err, color=LOSS,
            alpha=0.8, error_kw={"ecolor": "black", "capsize": 2, "lw": 0.8})
    ax.set_yticks(y, [keys[j] for j in order], fontsize=8 if len(order) > 12 else 9)
    ax.set_xlabel("P(default) (%), with 95% intervals")
    shown = "" if top is None or top >= len(keys) else f" (highest {len(order)} of {len(keys)})"
    ax.set_title(f"Default probability by {dim}{shown}")
    ax.set_xlim(0, max(1.0, 100 * float(pd[order, 2].max()) * 1.1))
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.grid(axis="x", alpha=0.3)
    return ax


# --------------------------------------------------------------------------
# departments
# --------------------------------------------------------------------------
def department_fan(ds: xr.Dataset, department: str, *, ax: Axes | None = None) -> Axes:
    """Fan chart of a department's payments by year against its savings.

    Payments to its agencies (outcome payments plus agency premiums): median,
    50% and 90% bands over scenarios; savings on the units truly achieved:
    mean and 90% band.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    department : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    d = _index(ds, "department", department)
    years = ds.year.values
    pay = ds.department_payment.values[:, d, :]
    save = ds.department_saving.values[:, d, :]
    w = scenario_weights(ds)
    ax = axes_for(ax, (6.0, 4.4))
    q = _quantiles(pay, w, [BANDS[1][0], BANDS[0][0], 0.5, BANDS[0][1], BANDS[1][1]])
    ax.fill_between(years, q[0], q[4], color=LOSS, alpha=0.15, lw=0, label="payments, 90% band")
    ax.fill_between(years, q[1], q[3], color=LOSS, alpha=0.35, lw=0, label="payments, 50% band")
    ax.plot(years, q[2], color=LOSS, marker="o", ms=3, label="payments, median")
    s = _quantiles(save, w, [BANDS[1][0], BANDS[1][1]])
    ax.plot(years, _mean(save, w), color=SAVING, marker="s", ms=3, label="savings, mean")
    ax.plot(years, s[0], color=SAVING, ls=":", lw=1, label="savings, 90% band")
    ax.plot(years, s[1], color=SAVING, ls=":", lw=1)
    ax.set_xlabel("year after the base year")
    currency = str(ds.attrs.get("currency", "GBP"))
    ax.set_ylabel(f"{currency} per year")
    ax.set_title(f"{department}: payments to its agencies vs savings")
    ax.set_xticks(years)
    _money_axis(ax, "y", currency)
    ax.grid(alpha=0.3)
    legend_below(ax, 3)
    return ax


# --------------------------------------------------------------------------
# control groups
# --------------------------------------------------------------------------
def control_fit(ds: xr.Dataset, cfg: Config, bond: str, *,
                axes: Sequence[Axes] | None = None) -> Figure:
    """A bond's control group: its pre-period fit and the simulated measurement.

    Top: the treated area's observed outcome and its control (the donors'
    weighted indexed log path, synthetic-control or equal weights, started
    from the treated area's base value) over the pre-period the weights were
    fitted on. Bottom: the
    improvement a measurement would show, control minus treated (units, or
    percent of the control for percentage outcomes): over the pre-period the
    fit's error, and at maturity the simulated band (median, 50% and 90%)
    with no programme (the prediction error) and with it (measured units),
    against the target and the break-even number of units.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate` run on ``cfg``: the control group's
        donors and weights (``control_donor``, ``control_weight``) and its
        pre-period fit (``rmspe``) are read from them.
    cfg : Config
        The config of the run (for the outcome history of the treated area and
        its donors).
    bond : str
    axes : pair of matplotlib.axes.Axes, optional
        Top and bottom axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lobsim.model.areas import read_areas, read_outcome
    from lobsim.model.config import PERIODS_PER_YEAR

    i = _index(ds, "bond", bond)
    b = next(b for b in cfg.bonds if b.id == bond)
    if b.control.weights == "verified":
        raise ValueError(f"bond {bond!r} has verified outcomes: it has no control group")
    if cfg.universe is None:
        raise ValueError("the config has no [universe]: no history to plot")
    donor_ids, weights = _control_group(ds, i, bond)
    outcome = next(o for o in cfg.outcomes if o.id == b.outcome)
    assert outcome.history is not None
    ppy = PERIODS_PER_YEAR[cfg.universe.period]
    areas = read_areas(cfg.universe.areas)
    data = read_outcome(outcome.history, outcome.state, areas, ppy)
    unknown = [a for a in donor_ids if a not in areas.ids]
    if unknown:
        raise ValueError(f"bond {bond!r}: donor {unknown[0]!r} of the results is not in "
                         f"{cfg.universe.areas}; pass the config the run was made with")
    donors = np.array([areas.index(a) for a in donor_ids], np.int64)
    rmspe = float(ds.rmspe.values[i])

    n_pre = data.log_history.shape[1] if b.control.pre_periods is None else min(
        b.control.pre_periods, data.log_history.shape[1])
    window = data.log_history[:, -n_pre:]
    me = areas.index(b.area)
    # the results' weights on this history must give the results' pre-period fit
    err = (window[me] - window[me, -1]) - (window[donors] - window[donors, -1:]).T @ weights
    if not np.isclose(float(np.sqrt(np.mean(err**2))), rmspe, rtol=1e-9, atol=1e-12):
        raise ValueError(f"bond {bond!r}: the config's outcome history does not match the "
                         "results (different RMSPE); pass the config the run was made with")
    t = (np.arange(n_pre) - (n_pre - 1)) / ppy
    treated_y = np.exp(window[me])
    synthetic = treated_y[-1] * np.exp((window[donors] - window[donors, -1:]).T @ weights)
    if outcome.kind == "percent":
        gap = 100.0 * (synthetic - treated_y) / synthetic
        gap_label = "control - treated (% of control)"
    else:
        gap = synthetic - treated_y
        gap_label = f"control - treated ({outcome.unit}s)"

    if axes is None:
        fig = Figure(figsize=(6.5, 6.4), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.2))
    else:
        top, bottom = axes
        fig = figure_of(top)
    top.plot(t, treated_y, color="black", lw=1.4, label=f"treated: {b.area}")
    top.plot(t, synthetic, color=GAIN, lw=1.4, ls="--",
             label=control_label(donor_ids, weights, b.control.weights))
    name = f"{outcome.name} ({outcome.unit}s)" if outcome.kind == "count" else outcome.name
    top.set_ylabel(textwrap.fill(name, 28))
    top.set_title(f"{bond}: pre-period fit, RMSPE {rmspe:.3f} (log points)")
    top.legend(fontsize=8, frameon=False)
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    top.grid(alpha=0.3)

    maturity = float(ds.maturity.values[i])
    bottom.plot(t, gap, color=NEUTRAL, lw=1.2, label="pre-period fit error")
    width = max(0.12 * maturity, 0.2)
    for offset, name, colour, label in ((-0.6, "prediction_error", NEUTRAL, "no programme"),
                                        (0.6, "measured_units", GAIN, "with the programme")):
        _box(bottom, maturity + offset * width, width, ds[name].values[:, i],
             scenario_weights(ds), colour, f"simulated at maturity, {label}")
    target = float(ds.target_units.values[i])
    breakeven = float(ds.principal.values[i] / ds.price_per_unit.values[i])
    bottom.axhline(target, color=GAIN, ls="--", lw=1, label=f"target {target:,.0f}")
    bottom.axhline(breakeven, color=LOSS, ls=":", lw=1.2, label=f"break-even {breakeven:,.0f}")
    bottom.axhline(0.0, color="black", lw=0.6)
    lo, hi = bottom.get_ylim()  # axhline does not autoscale: keep the target in view
    bottom.set_ylim(lo, max(hi, target + 0.08 * (max(hi, target) - lo)))
    bottom.axvspan(0.0, maturity + 2 * width, color="0.93", zorder=0)
    bottom.set_xlabel("years from the base period (contract period shaded)")
    bottom.set_ylabel(gap_label)
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    bottom.set_title("measured improvement: pre-period and simulated at maturity")
    legend_below(bottom, 2)
    bottom.grid(alpha=0.3)
    return fig


#: Donors a control-fit legend names one by one; more are summarised.
MAX_LEGEND_DONORS = 4


def control_label(donors: Sequence[str], weights: np.ndarray, scheme: str) -> str:
    """The weighted control as a legend reads it: ``synthetic control: 0.41 A + 0.33 B``.

    Donors of zero weight are left out; with more than
    :data:`MAX_LEGEND_DONORS` the legend says how many (the report's
    control-group table lists them).
    """
    kind = "synthetic control" if scheme == "synthetic" else "equal-weight control"
    used = sorted((j for j in range(len(donors)) if weights[j] > 0.0),
                  key=lambda j: (-weights[j], j))
    if len(used) > MAX_LEGEND_DONORS:
        return (f"synthetic control: weighted control of {len(used)} donors"
                if scheme == "synthetic" else
                f"equal-weight control of {len(used)} donors (1/{len(used)} each)")
    terms = " + ".join(f"{weights[j]:.2f} {donors[j]}" for j in used)
    return textwrap.fill(f"{kind}: {terms}", 60)


def _control_group(ds: xr.Dataset, i: int, bond: str) -> tuple[list[str], np.ndarray]:
    """Donor area ids and weights of bond ``i``'s control group in the results."""
    if "control_donor" not in ds:
        raise ValueError("the results carry no control groups (control_donor): they were "
                         "made by an older lobsim; simulate again")
    ids = [str(a) for a in ds.control_donor.values[i]]
    weights = np.asarray(ds.control_weight.values[i], float)
    keep = np.array([a != "" for a in ids], bool)
    return [a for a, k in zip(ids, keep, strict=True) if k], weights[keep]


def _box(ax: Axes, x: float, width: float, values: np.ndarray, w: np.ndarray, colour: str,
         label: str) -> None:
    """A box of the 50% and 90% bands and the median at ``x``."""
    q = _quantiles(values, w, [BANDS[1][0], BANDS[0][0], 0.5, BANDS[0][1], BANDS[1][1]])
    ax.vlines(x, q[0], q[4], color=colour, lw=1.2)
    ax.bar(x, q[3] - q[1], bottom=q[1], width=width, color=colour, alpha=0.6, label=label)
    ax.hlines(q[2], x - width / 2, x + width / 2, color="black", lw=1.5)


# --------------------------------------------------------------------------
# baskets: tranches and risk contributions
# --------------------------------------------------------------------------
def tranche_losses(ds: xr.Dataset, basket: str, *, ax: Axes | None = None) -> Axes:
    """Loss distribution of each tranche of a basket: ``P(loss > x)`` against x.

    Loss is principal less everything received (guarantee and protection
    included), as a percentage of the tranche's principal; the curve's left
    end is the tranche's default probability. The whole basket's loss is
    drawn for comparison.

    Parameters
    ----------
    ds : xarray.Dataset
        Results with tranches (:func:`lobsim.model.waterfall.add_tranches`).
    basket : str
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if "tranche" not in ds.dims or basket not in ds.tranche_basket.values.tolist():
        raise ValueError(f"basket {basket!r} has no tranches in these results")
    w = scenario_weights(ds)
    n = w.size
    ax = axes_for(ax, (6.0, 4.8))
    grid = np.linspace(0.0, 100.0, 401)

    def exceedance(loss_pct: np.ndarray) -> np.ndarray:
        order = np.argsort(loss_pct)
        tail = np.cumsum(w[order][::-1])[::-1]  # weight of scenarios with loss >= each
        pos = np.searchsorted(loss_pct[order], grid, side="right")
        return np.where(pos < n, tail[np.minimum(pos, n - 1)], 0.0)

    sel = np.flatnonzero(ds.tranche_basket.values == basket)
    sel = sel[np.argsort(ds.tranche_seniority.values[sel])]
    cmap = ["#1b4f72", "#2e86c1", "#f39c12", "#c0392b", "#7d3c98", "#1e8449"]
    for j, t in enumerate(sel):
        principal = float(ds.tranche_principal.values[t])
        loss = 100.0 * np.maximum(principal - ds.tranche_payment.values[:, t], 0.0) / principal
        pd, _ = _probability((ds.tranche_payment.values[:, t] < principal).astype(float), w)
        ax.step(grid, exceedance(loss), where="post", color=cmap[j % len(cmap)], lw=1.6,
                label=f"{ds.tranche_id.values[t]} (seniority {ds.tranche_seniority.values[t]}, "
                      f"{100 * ds.tranche_premium.values[t]:.1f}%): P(default) {100 * pd:.1f}%")
    k = _index(ds, "basket", basket)
    bp = float(ds.basket_principal.values[k])
    whole = 100.0 * np.maximum(bp - ds.basket_payment.values[:, k], 0.0) / bp
    ax.step(grid, exceedance(whole), where="post", color="black", ls="--", lw=1,
            label="whole basket, before the waterfall")
    ax.set_yscale("log")
    ax.set_ylim(max(0.5 / n, 1e-6), 1.05)
    ax.set_xlim(0, 100)
    ax.set_xlabel("loss x (% of principal)")
    ax.set_ylabel("P(loss > x)")
    ax.set_title(f"Basket {basket}: tranche loss distributions")
    ax.grid(alpha=0.3, which="both")
    legend_below(ax, 1)
    return ax


def risk_contributions(contrib: xr.Dataset, *, by: Group = "bond", top: int = 15,
                       ax: Axes | None = None) -> Axes:
    """Euler contributions to a basket's expected shortfall, by bond or group.

    By bond, each bar's outline is the bond's stand-alone expected shortfall:
    the gap between them is what diversification takes off.

    Parameters
    ----------
    contrib : xarray.Dataset
        :func:`lobsim.analysis.risk.risk_contributions` of one basket.
    by : {"bond", "provider", "intervention", "region", "department"}
    top : int
        Show the ``top`` largest; the rest are summed into one bar.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if by == "bond":
        keys, values = contrib.bond.values, contrib.es_contribution.values
        alone: np.ndarray | None = contrib.standalone_es.values
    else:
        keys, values, alone = contrib[f"by_{by}"].values, contrib[f"es_by_{by}"].values, None
    order = np.argsort(-values, kind="stable")
    labels = [str(keys[j]) for j in order[:top]]
    shown = values[order[:top]]
    alone_shown = None if alone is None else alone[order[:top]]
    if order.size > top:
        labels.append(f"{order.size - top} others")
        shown = np.append(shown, values[order[top:]].sum())
        if alone_shown is not None and alone is not None:
            alone_shown = np.append(alone_shown, alone[order[top:]].sum())
    ax = axes_for(ax, (6.0, 1.8 + 0.25 * len(labels)))
    y = np.arange(len(labels))[::-1]
    if alone_shown is not None:
        ax.barh(y, alone_shown, facecolor="none", edgecolor=NEUTRAL, lw=1,
                label="stand-alone ES")
    ax.barh(y, shown, color=LOSS, alpha=0.8, height=0.6, label="contribution to basket ES")
    ax.set_yticks(y, labels, fontsize=8)
    level = float(contrib.attrs.get("level", 0.99))
    es = float(contrib.expected_shortfall)
    ax.set_xlabel(f"GBP (basket ES{100 * level:g} = {es:,.0f})")
    ax.set_title(f"Basket {contrib.attrs.get('basket', '')}: ES{100 * level:g} "
                 f"contributions by {by}")
    _money_axis(ax, "x", "GBP")
    ax.axvline(0.0, color="black", lw=0.6)
    ax.grid(axis="x", alpha=0.3)
    legend_below(ax, 2)
    return ax


def save(fig: Figure | Axes, path: Any, *, dpi: int = 100) -> None:
    """Save a figure (or the figure of an Axes) as PNG with the Agg renderer."""
    figure = figure_of(fig) if isinstance(fig, Axes) else fig
    figure.savefig(path, dpi=dpi, format="png")
