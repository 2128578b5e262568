"""A risk report of a simulation run: PNG figures and one self-contained HTML page.

The page is meant for a risk committee that reads no Python: the figures of
:mod:`lobsim.report.plot` embedded as base64 PNGs, the key tables of
:func:`lobsim.summarize`, the config as run and the run's provenance (config
hash, seed, scenarios, versions). It loads nothing from outside and runs no
script, so it opens the same from a mail attachment as from a web server.
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
from lobsim.analysis import stats
from lobsim.model.config import Config
from lobsim.report import plot

#: Panels per figure of the grids (return distributions, departments, control fits).
MAX_BONDS, MAX_BASKETS, MAX_DEPARTMENTS, MAX_CONTROL_FITS = 4, 4, 6, 3
#: Bonds shown in the default-probability chart.
MAX_DEFAULT_BARS = 30
#: Every figure the report can write (``<name>.png``), in page order.
FIGURE_NAMES = ("default_probability_bonds", "default_probability_baskets", "returns_bonds",
                "returns_baskets", "department_payments", "control_fit", "tranche_losses",
                "risk_contributions")
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


def _expected_loss(ds: xr.Dataset, dim: str) -> np.ndarray:
    """E[loss] per bond or basket, as the summary's ``expected_loss`` (lobsim.analysis.stats)."""
    if dim == "bond":
        loss = ds.principal.values - ds.investor_payment.values
    else:
        loss = ds.basket_principal.values - ds.basket_payment.values
    return stats.mean_se(np.maximum(loss, 0.0), stats.run_weights(ds))[0]


def report_figures(ds: xr.Dataset, cfg: Config) -> list[ReportFigure]:
    """The report's figures of a run (a subset of :data:`FIGURE_NAMES`, in that order).

    Large runs are cut to what a page can hold, and the caption says how:
    return distributions of the bonds with the largest expected loss and of
    the largest baskets, control-group fits of the bonds with the lowest
    signal-to-noise, risk contributions to the largest basket.

    Parameters
    ----------
    ds : xarray.Dataset
        Results of :func:`lobsim.simulate`.
    cfg : Config
        The config of the run (for the control-group histories).

    Returns
    -------
    list of ReportFigure
    """
    out: list[ReportFigure] = []
    bonds = [str(b) for b in ds.bond.values.tolist()]
    baskets = [str(b) for b in ds.basket.values.tolist()]

    def add(name: str, title: str, caption: str, make: Callable[[], Figure]) -> None:
        out.append(ReportFigure(name, title, caption, make()))

    n_bars = min(len(bonds), MAX_DEFAULT_BARS)
    add("default_probability_bonds", "Default probability by bond",
        "P(investors get back less than their principal), with 95% Monte Carlo error bars"
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

    worst = [bonds[j] for j in np.argsort(-_expected_loss(ds, "bond"), kind="stable")]
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

    noise = ds.prediction_error.std("scenario").values
    with np.errstate(divide="ignore"):
        snr = ds.target_units.values / noise
    fits = [bonds[j] for j in np.argsort(snr, kind="stable")
            if np.isfinite(snr[j])][:MAX_CONTROL_FITS]
    if fits:
        def control() -> Figure:
            fig = Figure(figsize=(6.5 * len(fits), 6.4), layout="constrained")
            subs = fig.subfigures(1, len(fits), squeeze=False)
            for sub, bond in zip(subs.ravel(), fits, strict=True):
                plot.control_fit(ds, cfg, bond, axes=sub.subplots(2, 1, sharex=True))
            return fig

        add("control_fit", "Control groups",
            "Top: the treated area and its control group (synthetic or equal weights) over "
            "the pre-period the weights were fitted on. Bottom: the improvement the measurement shows, over the pre-period "
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
    return out


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------
_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1250px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #2e6da4; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #1b4f72; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #eef3f8; }
td:first-child, th:first-child { text-align: left; white-space: nowrap; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; max-width: 60em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: .8em; }
.note { color: #555; font-size: .9em; }
table.kv td { text-align: left; }
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    thead = f"<thead><tr>{cells}</tr></thead>" if any(head) else ""
    return f"<table class='{css}'>{thead}<tbody>{body}</tbody></table>"


def _pct(x: float, se: float | None = None) -> str:
    return f"{100 * x:.2f}%" + (f" ± {100 * se:.2f}" if se is not None else "")


def _investor_rows(s: xr.Dataset, dim: str, prefix: str) -> list[list[str]]:
    rows = []
    for i, key in enumerate(s[dim].values.tolist()):
        v = s.isel({dim: i})
        irr = v[prefix + "irr_quantile"]
        rows.append([str(key), _pct(float(v[prefix + "default_probability"]),
                                    float(v[prefix + "default_probability_se"])),
                     _pct(float(v[prefix + "total_loss_probability"])),
                     f"{float(v[prefix + 'expected_loss']):,.0f}",
                     f"{float(v[prefix + 'mean_multiple']):.3f}",
                     _pct(float(v[prefix + "mean_irr"])),
                     _pct(float(irr.sel(quantile=0.05))), _pct(float(irr.sel(quantile=0.5))),
                     f"{float(v[prefix + 'loss_es'].sel(level=0.99)):,.0f}"])
    return rows


_INVESTOR_HEAD = ["", "P(default) ± se", "P(total loss)", "E[loss]", "E[multiple]", "E[IRR]",
                  "IRR 5%", "IRR 50%", "ES99 loss"]


def _tables(ds: xr.Dataset) -> str:
    from lobsim.analysis.summary import summarize

    s = summarize(ds)
    bonds = ["<h2>Bonds</h2>", _table(
        [*_INVESTOR_HEAD, "E[overpayment]", "signal/noise", "RMSPE"],
        [[*row, f"{float(s.expected_overpayment[i]):,.0f}",
          f"{float(s.signal_to_noise[i]):.2f}", f"{float(s.rmspe[i]):.4f}"]
         for i, row in enumerate(_investor_rows(s, "bond", ""))])]
    parts = ["<p class='note'>Money in GBP. Default: payment below principal. ES99: mean "
             "loss in the worst 1% of scenarios. Signal/noise: target over the standard "
             "deviation of the units measured with no true effect (docs/model.md section 6.10). RMSPE: the "
             "control group's pre-period fit, log points.</p>"]
    if s.sizes.get("basket", 0):
        parts += ["<h2>Baskets</h2>", _table(
            [*_INVESTOR_HEAD, "sum of stand-alone ES99", "diversification benefit"],
            [[*row, f"{float(s.basket_standalone_es_sum.sel(level=0.99)[i]):,.0f}",
              f"{float(s.basket_diversification_benefit.sel(level=0.99)[i]):,.0f}"]
             for i, row in enumerate(_investor_rows(s, "basket", "basket_"))])]
    if "tranche" in s.dims:
        parts += ["<h2>Tranches</h2>", _table(
            [*_INVESTOR_HEAD, "share", "premium", "E[guarantee]", "E[protection]"],
            [[*row, f"{float(s.tranche_share[i]):.2f}", _pct(float(s.tranche_premium[i])),
              f"{float(s.tranche_expected_guarantee[i]):,.0f}",
              f"{float(s.tranche_expected_protection[i]):,.0f}"]
             for i, row in enumerate(_investor_rows(s, "tranche", "tranche_"))])]
    rows = []
    for d in s.department.values.tolist():
        for y in s.year.values.tolist():
            v = s.sel(department=d, year=y)
            pay, save = float(v.department_payment_mean), float(v.department_saving_mean)
            if pay == 0.0 and save == 0.0:
                continue
            rows.append([str(d), str(y), f"{pay:,.0f}",
                         f"{float(v.department_payment_quantile.sel(department_quantile=0.99)):,.0f}",
                         f"{save:,.0f}", f"{float(v.net_fiscal_position):,.0f}",
                         _pct(float(v.probability_pays_more_than_saves))])
    parts += ["<h2>Departments</h2>", _table(
        ["department", "year", "E[payment]", "payment q99", "E[saving]", "E[net position]",
         "P(pays more than saves)"], rows)]
    return "\n".join(parts + bonds)  # the longest table last


def _png(fig: Figure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def report_html(ds: xr.Dataset, cfg: Config, figures: Sequence[tuple[ReportFigure, bytes]], *,
                config_text: str, results_name: str = "") -> str:
    """The report page: provenance, key tables, figures (base64 PNG) and the config.

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

    Returns
    -------
    str
        A complete HTML document with no external resources.
    """
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
    contents = "".join(f"<li><a href='#{f.name}'>{html.escape(f.title)}</a></li>"
                       for f, _ in figures)
    figs = "\n".join(
        f"<h2 id='{f.name}'>{html.escape(f.title)}</h2><figure><img alt='{html.escape(f.title)}'"
        f" src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
        for f, png in figures)
    description = html.escape(" ".join(cfg.description.split())) if cfg.description else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>lobsim risk report: {title}</title><style>{_CSS}</style></head>
<body>
<h1>Risk report: {title}</h1>
<p>{description}</p>
<h2>Provenance</h2>
{provenance}
<p class='note'>The same config, seed and block size reproduce these results bit for bit
(<code>lobsim run CONFIG --scenarios N --seed S</code>).</p>
{_tables(ds)}
<h2>Figures</h2><ul>{contents}</ul>
{figs}
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
    written = []
    pngs = []
    for f in report_figures(ds, cfg):
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
                                results_name=results_name), encoding="utf-8")
    return [*written, page]
