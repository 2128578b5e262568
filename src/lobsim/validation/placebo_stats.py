"""Statistics of placebo measurements: per control group, and real against simulated.

:func:`summarize_placebos` gives, per (weights, donors) and start, the
quantiles of the measured change, the false-positive rates, the share of
the target a capped per-unit bond pays when nothing was done and the
empirical minimum detectable effect (:mod:`lobsim.analysis.power`);
:func:`compare` sets the real placebos of :func:`lobsim.validation.backtest.placebo_backtest`
beside those simulated from a calibrated process
(:func:`lobsim.validation.backtest.simulate_placebos`), over all areas and per
size tercile. Each has a text or markdown table and a CSV writer.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lobsim.analysis import power
from lobsim.analysis.stats import Atoms
from lobsim.validation.backtest import (
    FALSE_POSITIVE_LEVELS,
    GROUPS,
    QUANTILES,
    Placebos,
    size_groups,
    tercile_cuts,
)


@dataclass(frozen=True)
class SummaryRow:
    """Statistics of the measured change of one group of placebos.

    ``false_positive[i]`` is the share of placebos measuring at least
    ``FALSE_POSITIVE_LEVELS[i]`` of their target; ``paid_share`` the mean of
    ``clip(M, 0, target) / target``: the share of the target a per-unit bond
    capped at its target pays when the programme does nothing. ``mde`` is
    the empirical minimum detectable effect, q95 - q20 of the change
    (percent of the counterfactual), and ``mde_share`` the same of ``M / T``
    (a share of the target): the placebos are the error distribution
    (:func:`lobsim.analysis.power.of_atoms`).
    """

    weights: str
    donors: int
    start: str
    n: int
    mean: float
    sd: float
    quantiles: tuple[float, ...]
    false_positive: tuple[float, ...]
    paid_share: float
    rmspe: float
    mde: float
    mde_share: float


def summarize_placebos(p: Placebos, by_start: bool = True) -> list[SummaryRow]:
    """Summary rows per (weights, donors), over all starts and (optionally) per start."""
    rows = []
    starts = ["all"] + (sorted(set(p.start.tolist())) if by_start else [])
    ratio = p.units / p.target
    for w in dict.fromkeys(p.weights.tolist()):
        for k in sorted(set(p.donors.tolist())):
            for s in starts:
                mask = p.select(w, k, None if s == "all" else s)
                c = p.change[mask]
                r = ratio[mask]
                rows.append(SummaryRow(
                    weights=w, donors=int(k), start=s, n=int(mask.sum()),
                    mean=float(c.mean()), sd=float(c.std(ddof=1)) if c.size > 1 else math.nan,
                    quantiles=tuple(float(v) for v in np.quantile(c, QUANTILES)),
                    false_positive=tuple(float(np.mean(r >= lv)) for lv in FALSE_POSITIVE_LEVELS),
                    paid_share=float(np.mean(np.clip(r, 0.0, 1.0))),
                    rmspe=float(np.mean(p.rmspe[mask])),
                    mde=power.of_atoms(Atoms.of(c)), mde_share=power.of_atoms(Atoms.of(r)),
                ))
    return rows


def summary_table(rows: Sequence[SummaryRow], markdown: bool = False) -> str:
    """The summary rows as a plain-text or markdown table."""
    head = (["weights", "k", "start", "n", "mean %", "sd %"]
            + [f"q{round(100 * q)} %" for q in QUANTILES]
            + [f"P(M>={round(100 * lv)}% T)" for lv in FALSE_POSITIVE_LEVELS]
            + ["E[paid/T]", "MDE %", "MDE/T", "RMSPE"])
    body = [[r.weights, str(r.donors), r.start, str(r.n), f"{r.mean:+.2f}", f"{r.sd:.2f}",
             *(f"{q:+.1f}" for q in r.quantiles), *(percent(f) for f in r.false_positive),
             percent(r.paid_share), f"{r.mde:.1f}", f"{r.mde_share:.2f}", f"{r.rmspe:.4f}"]
            for r in rows]
    return text_table(head, body, markdown)


def write_summary(rows: Sequence[SummaryRow], path: str | Path) -> None:
    """Write summary rows as CSV."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["weights", "donors", "start", "n", "mean_pct", "sd_pct",
                      *(f"q{round(100 * q)}_pct" for q in QUANTILES),
                      *(f"p_units_ge_{round(100 * lv)}pct_target" for lv in FALSE_POSITIVE_LEVELS),
                      "mean_paid_share", "mde_pct", "mde_share_of_target", "mean_rmspe"])
        for r in rows:
            out.writerow([r.weights, r.donors, r.start, r.n, f"{r.mean:.4f}", f"{r.sd:.4f}",
                          *(f"{q:.4f}" for q in r.quantiles),
                          *(f"{f:.4f}" for f in r.false_positive), f"{r.paid_share:.4f}",
                          f"{r.mde:.4f}", f"{r.mde_share:.4f}", f"{r.rmspe:.6f}"])


@dataclass(frozen=True)
class ComparisonRow:
    """Real against simulated placebo changes for one (weights, donors, group, model).

    ``group`` is ``all`` or a tercile of the areas' base values (``small``,
    ``middle``, ``large``, cut at the real placebos' terciles).
    """

    weights: str
    donors: int
    group: str
    model: str
    n_real: int
    n_model: int
    sd_real: float
    sd_model: float
    quantiles_real: tuple[float, ...]
    quantiles_model: tuple[float, ...]
    fp_real: float
    fp_model: float
    ks_statistic: float
    ks_pvalue: float


def compare(real: Placebos, models: dict[str, Placebos]) -> list[ComparisonRow]:
    """Quantiles, sds, false-positive rates and two-sample KS tests, real vs each model.

    Per (weights, donors), over all areas and per tercile of the base value:
    a pooled process gives every area the same relative noise, so a
    disagreement that depends on the area's size shows in the terciles.
    The KS p-value treats placebos as independent; they are not (areas share
    donors and shocks, starts overlap), so it overstates the evidence: read
    the statistic as a distance and the quantiles as the substance.
    """
    from scipy import stats

    rows = []
    for w in dict.fromkeys(real.weights.tolist()):
        for k in sorted(set(real.donors.tolist())):
            sel = real.select(w, k)
            cuts = tercile_cuts(real, sel)
            real_groups = size_groups(real, cuts)
            for name, sim in models.items():
                sim_sel = sim.select(w, k)
                sim_groups = size_groups(sim, cuts)
                for g in GROUPS:
                    ma, mb = sel & real_groups[g], sim_sel & sim_groups[g]
                    a, b = real.change[ma], sim.change[mb]
                    if a.size < 2 or b.size < 2:
                        continue
                    ks = stats.ks_2samp(a, b)
                    rows.append(ComparisonRow(
                        weights=w, donors=int(k), group=g, model=name, n_real=a.size,
                        n_model=b.size, sd_real=float(a.std(ddof=1)),
                        sd_model=float(b.std(ddof=1)),
                        quantiles_real=tuple(float(v) for v in np.quantile(a, QUANTILES)),
                        quantiles_model=tuple(float(v) for v in np.quantile(b, QUANTILES)),
                        fp_real=_fp(real, ma), fp_model=_fp(sim, mb),
                        ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue)))
    return rows


def _fp(p: Placebos, mask: np.ndarray) -> float:
    return float(np.mean(p.units[mask] >= FALSE_POSITIVE_LEVELS[0] * p.target[mask]))


def comparison_table(rows: Sequence[ComparisonRow], markdown: bool = False) -> str:
    """Real vs model rows as a table."""
    head = (["weights", "k", "group", "model", "sd real", "sd model"]
            + [f"q{round(100 * q)} real/model" for q in QUANTILES]
            + ["P(M>=10% T) real/model", "KS D", "KS p"])
    body = [[r.weights, str(r.donors), r.group, r.model, f"{r.sd_real:.2f}",
             f"{r.sd_model:.2f}",
             *(f"{a:+.1f} / {b:+.1f}" for a, b in zip(r.quantiles_real, r.quantiles_model,
                                                      strict=True)),
             f"{percent(r.fp_real)} / {percent(r.fp_model)}", f"{r.ks_statistic:.3f}",
             f"{r.ks_pvalue:.2g}"] for r in rows]
    return text_table(head, body, markdown, left=4)


def tercile_table(rows: Sequence[ComparisonRow], markdown: bool = False) -> str:
    """The sd of the measured change per size tercile, real against each model."""
    keyed = {(r.weights, r.donors, r.model, r.group): r for r in rows}
    head = ["weights", "k", "model", "sd real: small / middle / large",
            "sd model: small / middle / large"]
    body = []
    for (w, k, model, g) in keyed:
        if g != "all":
            continue
        parts = [keyed.get((w, k, model, t)) for t in GROUPS[1:]]
        if any(p is None for p in parts):
            continue
        body.append([w, str(k), model,
                     " / ".join(f"{p.sd_real:.1f}" for p in parts if p is not None),
                     " / ".join(f"{p.sd_model:.1f}" for p in parts if p is not None)])
    return text_table(head, body, markdown, left=3)


def write_comparison(rows: Sequence[ComparisonRow], path: str | Path) -> None:
    """Write comparison rows as CSV."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["weights", "donors", "group", "model", "n_real", "n_model", "sd_real_pct",
                      "sd_model_pct",
                      *(f"q{round(100 * q)}_real_pct" for q in QUANTILES),
                      *(f"q{round(100 * q)}_model_pct" for q in QUANTILES),
                      "p_fp10_real", "p_fp10_model", "ks_statistic", "ks_pvalue"])
        for r in rows:
            out.writerow([r.weights, r.donors, r.group, r.model, r.n_real, r.n_model,
                          f"{r.sd_real:.4f}", f"{r.sd_model:.4f}",
                          *(f"{q:.4f}" for q in r.quantiles_real),
                          *(f"{q:.4f}" for q in r.quantiles_model),
                          f"{r.fp_real:.4f}", f"{r.fp_model:.4f}",
                          f"{r.ks_statistic:.4f}", f"{r.ks_pvalue:.4g}"])


def percent(x: float) -> str:
    """A share as a percentage with one decimal (``0.123`` -> ``12.3%``)."""
    return f"{100 * x:.1f}%"


def text_table(head: list[str], body: list[list[str]], markdown: bool, left: int = 3) -> str:
    """Rows as a markdown table, or aligned plain text with the first ``left`` columns left-aligned."""
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i < left else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*row) for row in body])
