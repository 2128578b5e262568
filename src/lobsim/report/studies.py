"""Figures of studies beyond one run: the placebo backtest and the maturity trade-off.

:mod:`lobsim.report.plot` draws the results of a run; the figures here draw
what :mod:`lobsim.validation.backtest` and :mod:`lobsim.analysis.maturity`
compute, each on an explicit :class:`~matplotlib.figure.Figure` (no pyplot:
nothing global changes in a notebook that calls them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from lobsim.analysis.stats import probability_interval
from lobsim.model.simulate import CURRENCY

if TYPE_CHECKING:
    from lobsim.analysis.maturity import MaturityChoice
    from lobsim.validation.backtest import Placebos


def placebo_qq(real: Placebos, models: dict[str, Placebos], *, donors: int | None = None,
               fig: Figure | None = None) -> Figure:
    """QQ plots of placebo measured changes, real against each simulated model.

    One row per weight scheme at donor-pool size ``donors`` (default: the
    middle size run); columns: all areas, the smallest and the largest third
    by base value (:func:`lobsim.validation.backtest.size_groups`). Points on the 45
    degree line mean the model reproduces the real measurement error.

    Parameters
    ----------
    real : lobsim.validation.backtest.Placebos
        :func:`lobsim.validation.backtest.placebo_backtest` on the real panel.
    models : dict of str to Placebos
        :func:`lobsim.validation.backtest.simulate_placebos` runs, by name.
    donors : int, optional
    fig : matplotlib.figure.Figure, optional
        Figure to draw the grid on.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from lobsim.validation.backtest import size_groups, tercile_cuts

    ks = sorted(set(real.donors.tolist()))
    k = donors if donors is not None else ks[len(ks) // 2]
    schemes = list(dict.fromkeys(real.weights.tolist()))
    groups = ("all", "small", "large")
    titles = {"all": "all areas", "small": "smallest third", "large": "largest third"}
    if fig is None:
        fig = Figure(figsize=(4.6 * len(groups), 4.3 * len(schemes)))
    axes = fig.subplots(len(schemes), len(groups), squeeze=False)
    levels = np.linspace(0.005, 0.995, 199)
    for row, scheme in zip(axes, schemes, strict=True):
        sel = real.select(scheme, k)
        cuts = tercile_cuts(real, sel)
        real_groups = size_groups(real, cuts)
        for ax, g in zip(row, groups, strict=True):
            qa = np.quantile(real.change[sel & real_groups[g]], levels)
            lo, hi = float(qa.min()), float(qa.max())
            for (name, sim), marker in zip(models.items(), "o^sv", strict=False):
                mask = sim.select(scheme, k) & size_groups(sim, cuts)[g]
                qb = np.quantile(sim.change[mask], levels)
                ax.plot(qb, qa, marker, ms=2.5, label=f"model: {name}")
                lo, hi = min(lo, float(qb.min())), max(hi, float(qb.max()))
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, label="45 degrees")
            ax.set_xlabel("simulated placebo change (%)")
            ax.set_ylabel("real placebo change (%)")
            ax.set_title(f"{scheme}, k = {k}, {titles[g]}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Placebo measured change at a horizon of {real.horizon} periods: "
                 "real against simulated", fontsize=11)
    fig.tight_layout()
    return fig


def maturity_tradeoff(choice: MaturityChoice, fig: Figure | None = None) -> Figure:
    """The maturity trade-off of :func:`lobsim.analysis.maturity.choose_maturity`.

    Top: P(default) (with its 95% Wilson interval) and E[IRR] by candidate
    maturity, the recommended one marked; bottom: E[overpayment] (the
    state's risk), E[shortfall] x price (the provider's) and signal to noise.

    Parameters
    ----------
    choice : MaturityChoice
        The candidates and the recommendation.
    fig : matplotlib.figure.Figure, optional
        Figure to draw on (a new 7 x 7 inch one by default).

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`lobsim.report.plot.save` (the CLI uses ``dpi=120``).
    """
    c = choice.candidates
    t = np.array([x.maturity for x in c])
    if fig is None:
        fig = Figure(figsize=(7, 7))
    top, bottom = fig.subplots(2, 1, sharex=True)
    p = np.array([x.default_probability for x in c])
    lo, hi = probability_interval(p, np.array([x.default_probability_se for x in c]),
                                  choice.scenarios)
    # the Wilson interval holds p, up to rounding at p = 0 or 1
    top.errorbar(t, p, yerr=np.maximum(np.vstack([p - lo, hi - p]), 0.0), marker="o",
                 color="C3", label="P(default) (95% interval)")
    top.set_ylabel("P(default)")
    top.axvline(choice.recommended, color="grey", linestyle=":", label="recommended")
    irr_ax = top.twinx()
    irr_ax.plot(t, [100 * x.mean_irr for x in c], marker="s", color="C0",
                label="E[IRR] (mean of scenarios)")
    irr_ax.set_ylabel("E[IRR] (%)")
    lines = top.get_legend_handles_labels()
    more = irr_ax.get_legend_handles_labels()
    top.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize="small")
    top.set_title(f"Bond {choice.bond}: maturity trade-off ({choice.scenarios} scenarios)")
    # GBP million, not matplotlib's "1e6" offset on a bare "amount"
    bottom.plot(t, [x.expected_overpayment / 1e6 for x in c], marker="o", color="C1",
                label="state E[overpayment]")
    bottom.plot(t, [x.expected_shortfall_value / 1e6 for x in c], marker="o", color="C2",
                label="provider E[shortfall] x price")
    bottom.set_ylabel(f"{CURRENCY} million")
    bottom.set_xlabel("maturity (years after the base year)")
    snr_ax = bottom.twinx()
    snr = np.array([x.signal_to_noise for x in c])
    # an infinite signal to noise (no noise at all) is left out of the line
    snr_ax.plot(t, np.where(np.isfinite(snr), snr, np.nan), marker="^", color="k",
                linestyle="--", label="signal/noise")
    snr_ax.set_ylabel("signal / noise")
    lines = bottom.get_legend_handles_labels()
    more = snr_ax.get_legend_handles_labels()
    bottom.legend(lines[0] + more[0], lines[1] + more[1], loc="best", fontsize="small")
    fig.tight_layout()
    return fig
