"""A risk report of a simulation run: PNG figures and one self-contained HTML page.

The page is meant for a risk committee that reads no Python. It leads with
the decision (:mod:`lobsim.report.decision`: per basket and bond the default
probability, multiple, losses as shares of principal, signal-to-noise, the
state's and the provider's risk; each department's 99% set-aside), for a run
with ``--parameter-uncertainty`` what it adds to each bond's default
probability, then the term sheet, the set-asides and the control groups, the key tables of
:func:`lobsim.summarize`, the figures of :mod:`lobsim.report.plot` embedded as
base64 PNGs, the run's provenance (config hash, seed, scenarios, versions) and
the config as run. It loads nothing from outside and runs no script, so it
opens the same from a mail attachment as from a web server.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from lobsim._version import __version__
from lobsim.analysis import pooling, stats
from lobsim.analysis.setaside import SetAsides
from lobsim.model.config import Config
from lobsim.report import decision, plot
from lobsim.report import pooling as pooled_report

#: Panels per figure of the grids (return distributions, departments, control fits).
MAX_BONDS, MAX_BASKETS, MAX_DEPARTMENTS, MAX_CONTROL_FITS = 4, 4, 6, 3
#: Bonds shown in the default-probability chart.
MAX_DEFAULT_BARS = 30
#: Every figure the report can write (``<name>.png``), in page order (the control
#: fits sit in the control-group section, before the other figures).
FIGURE_NAMES = ("control_fit", "default_probability_bonds", "default_probability_baskets",
                "returns_bonds", "returns_baskets", "department_payments", "tranche_losses",
                "risk_contributions", "measurement_noise")
HTML_NAME = "report.html"
#: Variables a results Dataset must have for a report.
REQUIRED = ("investor_payment", "principal", "irr", "multiple", "basket_payment",
            "department_payment", "department_saving", "prediction_error", "rmspe")


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report.

    Attributes
    ----------
    name : str
        File stem (one of :data:`FIGURE_NAMES`).
    title, caption : str
        Heading and one-paragraph reading guide on the page.
    figure : matplotlib.figure.Figure
    """

    name: str
    title: str
    caption: str
    figure: Figure


def check_config(ds: xr.Dataset, cfg: Config) -> None:
    """Raise ``ValueError`` unless ``cfg`` is the config ``ds`` was simulated from."""
    want = str(ds.attrs.get("config_hash", ""))
    if want != cfg.hash:
        raise ValueError(f"{cfg.source} is not the config of these results (config hash "
                         f"{cfg.hash[:12]}, results made with {want[:12] or 'unknown'})")


def _grid(n: int, cols: int, height: float) -> tuple[Figure, list]:
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(6.0 * cols, height * rows), layout="constrained")
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def repeats_bonds(ds: xr.Dataset) -> bool:
    """Whether the baskets add nothing to the bonds' figures: none, or one bond each."""
    if not ds.sizes.get("basket", 0):
        return True
    return "basket_member" in ds and bool(np.all(ds.basket_member.values.sum(axis=1) == 1))


def report_figures(ds: xr.Dataset, cfg: Config,
                   summary: xr.Dataset | None = None) -> list[ReportFigure]:
    """The report's figures of a run (a subset of :data:`FIGURE_NAMES`, in that order).

    Large runs are cut to what a page can hold, and the caption says how:
    return distributions of the bonds with the largest expected loss and of
    the largest baskets, control-group fits of the bonds with the lowest
    signal-to-noise, risk contributions to the largest basket. Baskets of one
    bond each would repeat the bonds' figures: they get none.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    cfg : Config
        The config of the run (for the control-group histories).
    summary : xarray.Dataset, optional
        :func:`lobsim.summarize` of ``ds`` (computed if not given).

    Returns
    -------
    list of ReportFigure
    """
    from lobsim.analysis.summary import summarize

    s = summarize(ds) if summary is None else summary
    out: list[ReportFigure] = []
    bonds = [str(b) for b in ds.bond.values.tolist()]
    baskets = [] if repeats_bonds(ds) else [str(b) for b in ds.basket.values.tolist()]

    def add(name: str, title: str, caption: str, make: Callable[[], Figure]) -> None:
        out.append(ReportFigure(name, title, caption, make()))

    n_bars = min(len(bonds), MAX_DEFAULT_BARS)
    add("default_probability_bonds", "Default probability by bond",
        "P(investors get back less than their principal), with its 95% interval"
        + (f"; the {n_bars} highest of {len(bonds)} bonds." if n_bars < len(bonds) else "."),
        lambda: plot.figure_of(plot.default_probability(ds, top=MAX_DEFAULT_BARS)))
    if baskets:
        add("default_probability_baskets", "Default probability by basket",
            "The same for each basket's investors taken together, before any tranching.",
            lambda: plot.figure_of(plot.default_probability(ds, dim="basket")))

    def returns(dim: str, keys: list[str]) -> Figure:
        fig, axes = _grid(2 * len(keys), 2, 3.6)
        for k, key in enumerate(keys):
            for j, measure in enumerate(("multiple", "irr")):
                plot.return_distribution(ds, **{dim: key}, measure=measure,  # type: ignore[arg-type]
                                         ax=axes[2 * k + j])
        return fig

    worst = [bonds[j] for j in np.argsort(-s.expected_loss.values, kind="stable")]
    shown = worst[:MAX_BONDS]
    add("returns_bonds", "Investor returns by bond",
        "Distribution of the money multiple (left) and IRR (right); red bars are the scenarios "
        "in which investors lose money, the dashed line is break-even"
        + (f"; the {len(shown)} bonds with the largest expected loss." if len(shown) < len(bonds)
           else "."), lambda: returns("bond", shown))
    if baskets:
        big = [baskets[j] for j in np.argsort(-ds.basket_principal.values, kind="stable")]
        shown_b = big[:MAX_BASKETS]
        add("returns_baskets", "Investor returns by basket",
            "The same for each basket as a whole"
            + (f"; the {len(shown_b)} largest baskets." if len(shown_b) < len(baskets) else "."),
            lambda: returns("basket", shown_b))

    pay = ds.department_payment.values
    active = [str(d) for j, d in enumerate(ds.department.values.tolist())
              if np.any(pay[:, j] != 0.0) or np.any(ds.department_saving.values[:, j] != 0.0)]
    if active:
        depts = active[:MAX_DEPARTMENTS]

        def departments() -> Figure:
            fig, axes = _grid(len(depts), 2, 4.4)
            for d, ax in zip(depts, axes, strict=True):
                plot.department_fan(ds, d, ax=ax)
            return fig

        add("department_payments", "Department payments and savings by year",
            "What each department pays its agencies in each year (outcome payments plus agency "
            "premiums; median, 50% and 90% bands) against what it saves on the units truly "
            "achieved (mean and 90% band).", departments)

    snr = s.signal_to_noise.values
    fits = [bonds[j] for j in np.argsort(snr, kind="stable")
            if np.isfinite(snr[j])][:MAX_CONTROL_FITS]
    if fits:
        def control() -> Figure:
            fig = Figure(figsize=(6.5 * len(fits), 6.4), layout="constrained")
            subs = fig.subfigures(1, len(fits), squeeze=False)
            for sub, bond in zip(subs.ravel(), fits, strict=True):
                plot.control_fit(ds, cfg, bond, axes=sub.subplots(2, 1, sharex=True))
            return fig

        add("control_fit", "Control-group fits",
            "Top: the treated area and its control group (synthetic or equal weights) over "
            "the pre-period the weights were fitted on (the legend names the weighted "
            "donors; the table above lists them all). Bottom: the improvement the "
            "measurement shows, over the pre-period "
            "(the fit's error) and simulated at maturity with no programme (the prediction "
            "error alone) and with it; payment starts below the break-even line. Bonds with "
            f"the lowest signal-to-noise ratio{'' if len(fits) == len(bonds) else ' first'}.",
            control)

    if "tranche" in ds.dims:
        with_tranches = list(dict.fromkeys(str(b) for b in ds.tranche_basket.values.tolist()))

        def tranches() -> Figure:
            fig, axes = _grid(len(with_tranches), 2, 4.8)
            for b, ax in zip(with_tranches, axes, strict=True):
                plot.tranche_losses(ds, b, ax=ax)
            return fig

        add("tranche_losses", "Tranche losses",
            "Probability that a tranche loses more than x% of its principal (log scale), "
            "guarantees and protection included; the dashed line is the whole basket before "
            "the waterfall.", tranches)

    sizes = ds.basket_member.values.sum(axis=1) if "basket_member" in ds else np.zeros(0)
    multi = [j for j in np.argsort(-ds.basket_principal.values, kind="stable") if sizes[j] > 1]
    if multi:
        from lobsim.analysis.risk import risk_contributions

        basket = baskets[multi[0]]
        contrib = risk_contributions(ds, basket, 0.99)

        def contributions() -> Figure:
            fig, axes = _grid(4, 2, 5.0)
            for by, ax in zip(("bond", "provider", "intervention", "region"), axes,
                              strict=True):
                plot.risk_contributions(contrib, by=by, ax=ax)  # type: ignore[arg-type]
            return fig

        add("risk_contributions", f"Risk contributions to basket {basket}",
            "Each bond's Euler contribution to the basket's 99% expected shortfall of loss "
            "(they add up to it), and the same summed by provider, intervention type and "
            "region; outlines are stand-alone expected shortfalls, the gap is the "
            f"diversification benefit ({float(contrib.diversification_benefit):,.0f}). "
            f"The largest basket of {len(multi)} with more than one bond.", contributions)
    pooled = [str(b) for b, p in zip(ds.basket.values.tolist(), pooling.is_pooled(ds),
                                     strict=True) if p]
    if pooled:
        def noise() -> Figure:
            fig, axes = _grid(len(pooled), 2, 4.6)
            for b, ax in zip(pooled, axes, strict=True):
                pooled_report.measurement_noise(ds, b, ax=ax)
            return fig

        add("measurement_noise", "Measurement noise of the pooled baskets",
            "A pooled basket is paid on its bonds' summed measured units (docs/model.md "
            "section 6.13): the sd of that sum's prediction error per unit of summed target as "
            "its bonds are pooled one by one, against the 1/sqrt(n) fall of independent "
            "errors; the gap is the noise the bonds share (donors, regional and national "
            "factors).", noise)
    return sorted(out, key=lambda f: FIGURE_NAMES.index(f.name))


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------
_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1em auto;
       max-width: 1250px; color: #222; line-height: 1.35; padding: 0 1em; }
h1 { font-size: 1.45em; border-bottom: 2px solid #2e6da4; padding-bottom: .2em;
     margin: .3em 0 .5em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #1b4f72; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #eef3f8; }
td:first-child, th:first-child { text-align: left; white-space: nowrap; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; max-width: 60em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .8em; }
.note { color: #555; font-size: .9em; margin: .3em 0; }
table.kv td { text-align: left; }
div.wide { overflow-x: auto; } div.wide table { font-size: .8em; }
td.text { text-align: left; }
/* the decision table scrolls inside the first screen when a book has many bonds */
table#decision { display: block; max-height: 58vh; overflow: auto; margin: 0 0 .4em;
                 font-size: .78em; }
table#decision thead th { position: sticky; top: 0; z-index: 1; }
table#decision tr.flagged td { background: #fdecea; }
/* columns of decision.DECISION_HEAD: the kind greyed, the interval on one line, the flag wide */
table#decision td:nth-child(2) { color: #666; }
table#decision td:nth-child(4) { white-space: nowrap; }
table#decision td:nth-child(10) { min-width: 11em; }
table#decision th, table#decision td { padding: .25em .45em; }
table#decision-departments { font-size: .8em; margin: .3em 0 .5em; }
@media print { table#decision { display: table; max-height: none; overflow: visible; } }
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "",
           ident: str = "", text: Sequence[int] = (),
           row_css: Sequence[str] | None = None) -> str:
    """An HTML table; ``text`` columns are left-aligned, ``row_css`` classes each row."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        (f"<tr class='{row_css[k]}'>" if row_css and row_css[k] else "<tr>")
        + "".join(f"<td class='text'>{html.escape(c)}</td>" if j in text
                  else f"<td>{html.escape(c)}</td>" for j, c in enumerate(r)) + "</tr>"
        for k, r in enumerate(rows))
    thead = f"<thead><tr>{cells}</tr></thead>" if any(head) else ""
    attrs = (f" id='{ident}'" if ident else "") + (f" class='{css}'" if css else "")
    return f"<table{attrs}>{thead}<tbody>{body}</tbody></table>"


def _wide(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of many columns, scrolling sideways in its own box rather than the page."""
    return f"<div class='wide'>{_table(head, rows)}</div>"


def _investor_rows(s: xr.Dataset, dim: str, prefix: str, principal: np.ndarray,
                   n: int) -> list[list[str]]:
    """Investor columns of :data:`_INVESTOR_HEAD`: losses as shares of ``principal``.

    ``n``: the scenarios of the run (for the Wilson interval).
    """
    p = s[prefix + "default_probability"].values
    lo, hi = stats.probability_interval(p, s[prefix + "default_probability_se"].values, n)
    rows = []
    for i, key in enumerate(s[dim].values.tolist()):
        v = s.isel({dim: i})
        irr = v[prefix + "irr_quantile"]
        of = float(principal[i])
        rows.append([str(key), decision.money(of), decision.interval(float(p[i]), lo[i], hi[i]),
                     decision.percent(float(v[prefix + "total_loss_probability"])),
                     decision.share(float(v[prefix + "expected_loss"]), of),
                     decision.multiple(float(v[prefix + "mean_multiple"])),
                     decision.percent(float(v[prefix + "mean_irr"])),
                     decision.percent(float(irr.sel(quantile=0.05))),
                     decision.percent(float(irr.sel(quantile=0.5))),
                     decision.share(float(v[prefix + "loss_es"].sel(level=0.99)), of)])
    return rows


_GBP = decision.CURRENCY
_INVESTOR_HEAD = ["", f"principal ({_GBP})", "P(default) (95% interval)", "P(total loss)",
                  "E[loss] (% of principal)", "E[multiple]", "E[IRR] (mean of scenario IRRs)",
                  "IRR q05", "IRR q50", "ES99 loss (% of principal)"]


def _tables(s: xr.Dataset, ds: xr.Dataset) -> str:
    """The detail tables: departments, baskets, tranches, then the bonds (the longest)."""
    shortfall = "provider_shortfall_probability" in s
    n = int(ds.sizes["scenario"])
    bond_rows = []
    for i, row in enumerate(_investor_rows(s, "bond", "", ds.principal.values, n)):
        v = s.isel(bond=i)
        row += [decision.money(float(v.expected_overpayment)),
                decision.ratio(float(v.signal_to_noise))]
        if "minimum_detectable_effect" in v:  # docs/model.md section 6.11
            row += [f"{float(v.minimum_detectable_effect):,.0f}",
                    decision.mde_share(float(v.minimum_detectable_effect_share))]
        row.append(f"{float(v.rmspe):.4f}")
        if shortfall:  # the provider's risk, as the CLI prints it (analysis/summary.py)
            row += [decision.percent(float(v.provider_shortfall_probability)),
                    f"{float(v.expected_provider_shortfall):,.1f}",
                    decision.money(float(v.expected_provider_shortfall_value))]
        bond_rows.append(row)
    bonds = ["<h2 id='bonds'>Bonds</h2>", _wide(
        [*_INVESTOR_HEAD, f"state's E[overpayment] ({_GBP})", "signal/noise",
         *(["MDE (units)", "MDE (% of target)"] if "minimum_detectable_effect" in s else []),
         "RMSPE (log)",
         *(["provider's P(shortfall)", "provider's E[shortfall] (units)",
            f"provider's E[shortfall] value ({_GBP})"] if shortfall else [])], bond_rows)]
    parts = ["<p class='note'>Default: payment below principal. ES99: mean loss in the worst "
             "1% of scenarios. IRR q05, q50: the 5% and 50% quantiles of the scenario IRRs. "
             "Signal/noise: target over the standard deviation of the units measured with no "
             "true effect (docs/model.md section 6.10). MDE: the minimum detectable effect, "
             "the least true effect a one-sided 5% test detects with 80% power (section "
             "6.11). RMSPE: the control group's pre-period "
             "fit, log points. The provider's shortfall: units truly achieved but not paid "
             "for, in the outcome's units, and their value at the price per unit.</p>"]
    if s.sizes.get("basket", 0):
        principal = ds.basket_principal.values
        parts += ["<h2 id='baskets'>Baskets</h2>", _wide(
            [*_INVESTOR_HEAD, f"ES99 loss ({_GBP})", f"sum of stand-alone ES99 ({_GBP})",
             f"diversification benefit ({_GBP})"],
            [[*row, decision.money(float(s.basket_loss_es.sel(level=0.99)[i])),
              decision.money(float(s.basket_standalone_es_sum.sel(level=0.99)[i])),
              decision.money(float(s.basket_diversification_benefit.sel(level=0.99)[i]))]
             for i, row in enumerate(_investor_rows(s, "basket", "basket_", principal, n))])]
    parts += pooled_report.pooled_section(s, ds, _table)
    if "tranche" in s.dims:
        parts += ["<h2 id='tranches'>Tranches</h2>", _wide(
            [*_INVESTOR_HEAD, "share", "premium", f"E[guarantee] ({_GBP})",
             f"E[protection] ({_GBP})"],
            [[*row, f"{float(s.tranche_share[i]):.2f}",
              decision.percent(float(s.tranche_premium[i])),
              decision.money(float(s.tranche_expected_guarantee[i])),
              decision.money(float(s.tranche_expected_protection[i]))]
             for i, row in enumerate(_investor_rows(s, "tranche", "tranche_",
                                                    s.tranche_principal.values, n))])]
    rows = []
    for d in s.department.values.tolist():
        for y in s.year.values.tolist():
            v = s.sel(department=d, year=y)
            pay, save = float(v.department_payment_mean), float(v.department_saving_mean)
            if pay == 0.0 and save == 0.0:
                continue
            rows.append([str(d), str(y), decision.money(pay), decision.money(
                float(v.department_payment_quantile.sel(department_quantile=0.99))),
                decision.money(save), decision.money(float(v.net_fiscal_position)),
                decision.percent(float(v.probability_pays_more_than_saves))])
    parts += ["<h2 id='departments'>Departments</h2>", _table(
        ["department", "year", f"E[payment] ({_GBP})", f"payment q99 ({_GBP})",
         f"E[saving] ({_GBP})", f"E[net position] ({_GBP})", "P(pays more than saves)"], rows)]
    return "\n".join(parts + bonds)  # the longest table last


def _decision(s: xr.Dataset, ds: xr.Dataset, set_asides: SetAsides | None) -> str:
    """The first screen: the decision table, the convention, the departments' set-asides."""
    rows = decision.decision_rows(s, ds)
    table = _table(decision.DECISION_HEAD, [r.cells() for r in rows], ident="decision",
                   text=(1, 9), row_css=["flagged" if r.noisy else "" for r in rows])
    note = (f"<p class='note'>{html.escape(decision.CONVENTION)} Money in {_GBP}. Signal/noise "
            "below 1 (shaded): the control group's prediction error is larger than the "
            "target, so whether investors are paid depends mostly on the measurement, not on "
            "the programme. MDE: the least true effect a one-sided 5% test of the "
            "measurement detects with 80% power, q95 - q20 of the prediction error, as a "
            "share of the target T. A basket's signal/noise is its noisiest bond's, its MDE its "
            "bonds' largest. "
            "The state's "
            "overpayment: payments for units the programme did not cause; the provider's "
            "shortfall: units achieved but not paid for, at the price per unit.</p>")
    if set_asides is None:
        depts = ("<p class='note'>No set-asides: the scenarios carry importance-sampling "
                 "weights (lobsim setaside needs a plain run).</p>")
    else:
        depts = _table(decision.DEPARTMENT_HEAD,
                       [r.cells() for r in decision.department_rows(set_asides)],
                       ident="decision-departments")
    return "\n".join([table, note, depts])


def _png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def report_html(ds: xr.Dataset, cfg: Config, figures: Sequence[tuple[ReportFigure, bytes]], *,
                config_text: str, results_name: str = "",
                summary: xr.Dataset | None = None) -> str:
    """The report page: the decision, terms, set-asides, control groups, tables, figures.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    cfg : Config
        Its config.
    figures : sequence of (ReportFigure, bytes)
        Figures and their PNG bytes.
    config_text : str
        The config file as run.
    results_name : str
        Name of the results file, for the provenance table.
    summary : xarray.Dataset, optional
        :func:`lobsim.summarize` of ``ds`` (computed if not given).

    Returns
    -------
    str
        A complete HTML document with no external resources.
    """
    from lobsim.analysis.setaside import compute_set_asides
    from lobsim.analysis.summary import summarize

    s = summarize(ds) if summary is None else summary
    try:
        set_asides: SetAsides | None = compute_set_asides(ds, decision.SET_ASIDE_LEVEL)
    except ValueError:  # importance-sampled: no order-statistic interval
        set_asides = None
    a = ds.attrs
    made = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    provenance = _table(["", ""], [
        ["config", str(a.get("config", cfg.name))],
        ["config file", str(cfg.source)],
        ["config hash (SHA-256)", str(a.get("config_hash", ""))],
        *([["overrides (--set)", ", ".join(cfg.overrides)]] if cfg.overrides else []),
        ["results file", results_name],
        ["scenarios", f"{int(a.get('scenarios', ds.sizes['scenario'])):,}"],
        ["seed", str(a.get("seed", ""))],
        ["block size", str(a.get("block_size", ""))],
        ["simulated with lobsim", str(a.get("lobsim_version", ""))],
        ["report made with lobsim", f"{__version__}, {made}"],
    ], css="kv")
    title = html.escape(str(a.get("config", cfg.name)))

    def figure(f: ReportFigure, png: bytes) -> str:
        return (f"<h2 id='{f.name}'>{html.escape(f.title)}</h2><figure><img "
                f"alt='{html.escape(f.title)}' "
                f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>")

    fits = [figure(f, png) for f, png in figures if f.name == "control_fit"]
    rest = [(f, png) for f, png in figures if f.name != "control_fit"]
    contents = "".join(f"<li><a href='#{f.name}'>{html.escape(f.title)}</a></li>"
                       for f, _ in rest)
    figs = "\n".join(figure(f, png) for f, png in rest)
    description = html.escape(" ".join(cfg.description.split())) if cfg.description else ""
    set_aside_part = ("<p class='note'>Not computed: the scenarios carry importance-sampling "
                      "weights.</p>" if set_asides is None else
                      f"<p class='note'>What each department must reserve for the year's LOB "
                      f"payments so that they exceed it with probability at most 1% "
                      f"({set_asides.scenarios:,} scenarios; lobsim setaside). The sum of "
                      "the bonds' own set-asides less the book's is the diversification."
                      "</p>" + _table(decision.SET_ASIDE_HEAD,
                                      decision.set_aside_rows(set_asides)))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>lobsim risk report: {title}</title><style>{_CSS}</style></head>
<body>
<h1>Risk report: {title}</h1>
{_decision(s, ds, set_asides)}
{decision.parameter_uncertainty_section(ds, _table)}
<p>{description}</p>
<h2 id='terms'>Term sheet</h2>
<p class='note'>At full target (lobsim terms): break-even success is the share of the target
that must be paid for to return the principal.</p>
{_table(decision.terms_head(cfg), decision.term_rows(cfg), text=(1, 2, 7, 8, 10))}
<h2 id='set-asides'>Department set-asides</h2>
{set_aside_part}
<h2 id='control-groups'>Control groups</h2>
<p class='note'>The donor areas each bond is measured against, with the weights fitted at
signing (largest first; donors of zero weight left out) and the fit's pre-period RMSPE.</p>
{_table(decision.CONTROL_HEAD, [c.cells() for c in decision.control_groups(ds)], text=(1,))}
{"".join(fits)}
{_tables(s, ds)}
<h2>Figures</h2><ul>{contents}</ul>
{figs}
<h2 id='provenance'>Provenance</h2>
{provenance}
<p class='note'>The same config, seed and block size reproduce these results bit for bit
(<code>lobsim run CONFIG --scenarios N --seed S</code>).</p>
<h2>Config as run</h2>
<pre>{html.escape(config_text)}</pre>
</body></html>
"""


def write_report(ds: xr.Dataset, cfg: Config, out: str | Path, *, results_name: str = "",
                 dpi: int = 90) -> list[Path]:
    """Write the report's PNG figures and ``report.html`` into the directory ``out``.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    cfg : Config
        The config of the run (checked against the results' config hash).
    out : str or Path
        Directory, created if missing; existing files of the same names are
        overwritten (the command line asks for ``--force`` first).
    results_name : str
        Name of the results file, for the provenance table.
    dpi : int
        Resolution of the PNGs.

    Returns
    -------
    list of Path
        The files written, ``report.html`` last.

    Raises
    ------
    ValueError
        If ``cfg`` is not the config of ``ds``.

    Examples
    --------
    >>> ds = simulate(cfg, scenarios=2000)  # doctest: +SKIP
    >>> write_report(ds, cfg, "report/")  # doctest: +SKIP
    """
    check_config(ds, cfg)
    missing = [v for v in REQUIRED if v not in ds.variables]
    if missing:
        raise ValueError(f"not simulation results (no {', '.join(missing)})")
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    from lobsim.analysis.summary import summarize

    summary = summarize(ds)
    written = []
    pngs = []
    for f in report_figures(ds, cfg, summary):
        png = _png(f.figure, dpi)
        path = directory / f"{f.name}.png"
        path.write_bytes(png)
        written.append(path)
        pngs.append((f, png))
    try:
        config_text = Path(cfg.source).read_text(encoding="utf-8")
    except OSError:  # a config built in Python has no file
        config_text = f"(no config file: {cfg.source})"
    page = directory / HTML_NAME
    page.write_text(report_html(ds, cfg, pngs, config_text=config_text,
                                results_name=results_name, summary=summary),
                    encoding="utf-8")
    return [*written, page]
