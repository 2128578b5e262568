"""The decision layer of the risk report: what a committee decides from, as plain rows.

Per basket and per bond: the default probability with its 95% interval, the
mean money multiple, expected loss and 99% expected shortfall as shares of
principal, the signal-to-noise ratio (docs/model.md section 6.10) with a
plain-language flag below 1, the minimum detectable effect as a share of the
target (section 6.11), the state's expected overpayment and the
provider's expected shortfall; per department its 99% set-aside
(:mod:`lobsim.analysis.setaside`). Then the term sheet and the control
groups. Every number is read from the summary (:func:`lobsim.summarize`), the
term sheet or the set-asides, never recomputed here, and formatted by the
functions of this module, which :mod:`lobsim.report.html` only renders (and
the tests quote).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr

from lobsim.analysis import stats
from lobsim.analysis.power import NOISE_DOMINATED
from lobsim.analysis.setaside import SetAsides
from lobsim.analysis.tables import INTERVAL_NOTE
from lobsim.analysis.terms import BondTerms, term_sheet
from lobsim.model.config import Config

#: Set-aside level of the decision layer: payments exceed it with probability at most 1%.
SET_ASIDE_LEVEL = 0.99
#: The flag of a payment that the control group's prediction error dominates.
NOISE_FLAG = "the payment is mostly measurement noise"
#: The report's one uncertainty convention, stated once on the page.
CONVENTION = ("Intervals in parentheses, ± and bars are 95% intervals: Wilson intervals "
              "for probabilities, "
              "1.96 Monte Carlo standard errors for means, order statistics for "
              "set-asides.")
CURRENCY = "GBP"


# --------------------------------------------------------------------------
# formatters: one per kind of number, used by the page and its tests
# --------------------------------------------------------------------------
def money(x: float) -> str:
    """An amount in whole pounds with thousands separators (``12,345,678``)."""
    return f"{x:,.0f}"


def percent(x: float) -> str:
    """A fraction as a percentage with two decimals (``12.34%``)."""
    return f"{100 * x:.2f}%"


def interval(p: float, lo: float, hi: float) -> str:
    """A percentage with its 95% interval (``12.34% (11.02 to 13.79)``)."""
    return f"{percent(p)} ({100 * lo:.2f} to {100 * hi:.2f})"


def multiple(x: float) -> str:
    """A money multiple (``0.874``)."""
    return f"{x:.3f}"


def ratio(x: float) -> str:
    """A signal-to-noise ratio; ``∞`` for a bond with no measurement noise."""
    return "∞" if math.isinf(x) else f"{x:.2f}"


def mde_share(x: float | None) -> str:
    """A minimum detectable effect as a percentage of the target (``n/a`` if not reported)."""
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.0f}%"


def share(x: float, of: float) -> str:
    """``x`` as a percentage of ``of`` (a loss of principal)."""
    return percent(x / of) if of > 0 else "n/a"


# --------------------------------------------------------------------------
# rows
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class DecisionRow:
    """One basket or bond of the decision table (amounts in GBP).

    ``signal_to_noise`` of a basket is its noisiest bond's, and
    ``minimum_detectable_effect_share`` its bonds' largest (None for a summary
    without it); ``noisy`` counts the bonds (of the basket, or the bond
    itself) with signal-to-noise below 1.
    """

    kind: Literal["basket", "bond"]
    id: str
    principal: float
    default_probability: float
    default_low: float
    default_high: float
    mean_multiple: float
    expected_loss: float
    es99: float
    signal_to_noise: float
    minimum_detectable_effect_share: float | None
    bonds: int
    noisy: int
    expected_overpayment: float
    expected_shortfall: float | None

    @property
    def flag(self) -> str:
        """Plain-language reading of the signal-to-noise ratio."""
        if self.noisy == 0:
            return ""
        if self.kind == "bond":
            return NOISE_FLAG
        return f"{self.noisy} of {self.bonds} bonds: mostly measurement noise"

    def cells(self) -> list[str]:
        """The row as the page prints it, in the order of :data:`DECISION_HEAD`."""
        return [self.id, self.kind, money(self.principal),
                interval(self.default_probability, self.default_low, self.default_high),
                multiple(self.mean_multiple), share(self.expected_loss, self.principal),
                share(self.es99, self.principal), ratio(self.signal_to_noise),
                mde_share(self.minimum_detectable_effect_share), self.flag,
                money(self.expected_overpayment),
                "n/a" if self.expected_shortfall is None else money(self.expected_shortfall)]


DECISION_HEAD = ("", "", f"principal ({CURRENCY})", "P(default) (95% interval)",
                 "E[multiple]", "E[loss] (% of principal)", "ES99 loss (% of principal)",
                 "signal/noise", "MDE (% of T)", "",
                 f"state's E[overpayment] ({CURRENCY})",
                 f"provider's E[shortfall] ({CURRENCY})")


def decision_rows(s: xr.Dataset, ds: xr.Dataset) -> list[DecisionRow]:
    """The decision table of a run: its baskets, then its bonds, in config order.

    Parameters
    ----------
    s : xarray.Dataset
        :func:`lobsim.summarize` of ``ds``.
    ds : xarray.Dataset
        The results (for the principals and basket membership, which are terms).
    """
    n = int(ds.sizes["scenario"])
    bond_snr = s.signal_to_noise.values
    bond_mde = (s.minimum_detectable_effect_share.values if "minimum_detectable_effect_share" in s
                else None)
    shortfall = "expected_provider_shortfall_value" in s
    member = (ds.basket_member.values.astype(bool) if "basket_member" in ds
              else np.zeros((s.sizes["basket"], s.sizes["bond"]), bool))
    rows = []
    for kind, prefix, principal in (("basket", "basket_", ds.basket_principal.values),
                                    ("bond", "", ds.principal.values)):
        dim = kind
        p = s[prefix + "default_probability"].values
        lo, hi = stats.probability_interval(p, s[prefix + "default_probability_se"].values, n)
        es = s[prefix + "loss_es"].sel(level=0.99).values
        for i, key in enumerate(s[dim].values.tolist()):
            if kind == "bond":
                snr, size, noisy = float(bond_snr[i]), 1, int(bond_snr[i] < NOISE_DOMINATED)
                mde = None if bond_mde is None else float(bond_mde[i])
                over = float(s.expected_overpayment.values[i])
                short = float(s.expected_provider_shortfall_value.values[i]) if shortfall else None
            else:
                snr = float(s.basket_lowest_signal_to_noise.values[i])
                size = int(member[i].sum())
                noisy = int(np.count_nonzero(bond_snr[member[i]] < NOISE_DOMINATED))
                mde = (None if bond_mde is None or size == 0
                       else float(bond_mde[member[i]].max()))
                over = float(s.basket_expected_overpayment.values[i])
                short = (float(s.basket_expected_provider_shortfall_value.values[i])
                         if shortfall else None)
            rows.append(DecisionRow(
                kind=kind, id=str(key), principal=float(principal[i]),  # type: ignore[arg-type]
                default_probability=float(p[i]), default_low=float(lo[i]),
                default_high=float(hi[i]),
                mean_multiple=float(s[prefix + "mean_multiple"].values[i]),
                expected_loss=float(s[prefix + "expected_loss"].values[i]), es99=float(es[i]),
                signal_to_noise=snr, minimum_detectable_effect_share=mde, bonds=size,
                noisy=noisy, expected_overpayment=over,
                expected_shortfall=short))
    return rows


@dataclass(frozen=True)
class DepartmentRow:
    """A department's 99% set-aside in its peak year, with its 95% interval (GBP)."""

    department: str
    year: int
    set_aside: float
    low: float
    high: float
    expected_payment: float
    years: int

    def cells(self) -> list[str]:
        """The row as the page prints it, in the order of :data:`DEPARTMENT_HEAD`."""
        return [self.department, str(self.year), money(self.set_aside),
                f"{money(self.low)} to {money(self.high)}", money(self.expected_payment),
                str(self.years)]


DEPARTMENT_HEAD = ("department", "peak year", f"99% set-aside ({CURRENCY})",
                   "95% interval", f"E[payment] that year ({CURRENCY})", "years paying")


def department_rows(sa: SetAsides) -> list[DepartmentRow]:
    """Per paying department, the year of its largest 99% set-aside (:func:`compute_set_asides`)."""
    rows = []
    for i, d in enumerate(sa.departments):
        paying = (sa.expected_payment[i] != 0.0) | (sa.book[i] != 0.0)
        if not paying.any():
            continue
        j = int(np.argmax(np.where(paying, sa.book[i], -np.inf)))
        rows.append(DepartmentRow(d, sa.years[j], float(sa.book[i, j]), float(sa.book_low[i, j]),
                                  float(sa.book_high[i, j]), float(sa.expected_payment[i, j]),
                                  int(paying.sum())))
    return rows


SET_ASIDE_HEAD = ("department", "year", f"E[payment] ({CURRENCY})", f"E[saving] ({CURRENCY})",
                  f"99% set-aside ({CURRENCY})", "95% interval",
                  f"sum of bonds' set-asides ({CURRENCY})", f"diversification ({CURRENCY})")


def set_aside_rows(sa: SetAsides) -> list[list[str]]:
    """Every department and year with payments: the table of ``lobsim setaside``."""
    rows = []
    for i, d in enumerate(sa.departments):
        for j, y in enumerate(sa.years):
            if sa.expected_payment[i, j] == 0.0 and sa.book[i, j] == 0.0:
                continue
            rows.append([d, str(y), money(sa.expected_payment[i, j]),
                         money(sa.expected_saving[i, j]), money(sa.book[i, j]),
                         f"{money(sa.book_low[i, j])} to {money(sa.book_high[i, j])}",
                         money(sa.standalone_sum[i, j]), money(sa.benefit[i, j])])
    return rows


# --------------------------------------------------------------------------
# term sheet and control groups
# --------------------------------------------------------------------------
TERMS_HEAD = ("", "mechanism", "years", "target (units)", f"price per unit ({CURRENCY})",
              f"principal ({CURRENCY})", "cap (units)", "threshold", "break-even success",
              f"payoff at target ({CURRENCY})")


#: the payment basis column, shown when a bond pays on the shrunk basis (docs/model.md 6.12)
BASIS_HEAD = "payment basis (prior, tau, sigma in units)"


def _shrunk(cfg: Config) -> bool:
    return any(b.payment.basis == "shrunk" for b in cfg.bonds)


def terms_head(cfg: Config) -> tuple[str, ...]:
    """The term table's columns: :data:`TERMS_HEAD`, and the basis when a bond is shrunk."""
    return (*TERMS_HEAD, BASIS_HEAD) if _shrunk(cfg) else TERMS_HEAD


def basis_cell(t: BondTerms) -> str:
    """A bond's payment basis: ``point``, or the shrunk basis' k, prior, tau and sigma."""
    sh = t.shrinkage
    if sh is None:
        return t.basis
    return (f"shrunk: k = {sh.k:.3f}{' (fixed)' if sh.k_fixed else ''}, prior "
            f"{sh.prior_units:,.0f}{' (fixed)' if sh.prior_fixed else ''}, tau {sh.tau:,.0f}, "
            f"sigma {sh.sigma:,.0f}")


def term_rows(cfg: Config) -> list[list[str]]:
    """Per bond: the terms a committee signs (:func:`lobsim.analysis.terms.term_sheet`)."""
    sheet = term_sheet(cfg)
    shrunk = _shrunk(cfg)
    payments = {b.id: b.payment for b in cfg.bonds}
    rows = []
    for t in sheet.bonds:
        pay = payments[t.bond]
        threshold = (percent(pay.threshold) + " of the counterfactual"
                     if pay.mechanism == "threshold" else "n/a")
        rows.append([t.bond, t.mechanism, f"{t.start:g} to {t.maturity:g}",
                     f"{t.target_units:,.0f}", money(t.price_per_unit),
                     money(t.investor_principal),
                     f"{pay.cap:,.0f}" if pay.mechanism in ("per_unit", "threshold") else "n/a",
                     threshold,
                     "never" if t.break_even_fraction is None
                     else f"{percent(t.break_even_fraction)} of target",
                     money(t.investor_payoff_at_target),
                     *([basis_cell(t)] if shrunk else [])])
    return rows


@dataclass(frozen=True)
class ControlGroup:
    """A bond's control group in the results: donors with positive weight, largest first."""

    bond: str
    donors: tuple[str, ...]
    weights: tuple[float, ...]
    pool: int
    rmspe: float

    def cells(self) -> list[str]:
        """The row as the page prints it, in the order of :data:`CONTROL_HEAD`."""
        if not self.pool:
            return [self.bond, "verified outcomes: no control group", "", "n/a"]
        group = ", ".join(f"{a} {w:.3f}" for a, w in zip(self.donors, self.weights, strict=True))
        return [self.bond, group, f"{len(self.donors)} of {self.pool}", f"{self.rmspe:.4f}"]


CONTROL_HEAD = ("", "donor areas and weights", "donors weighted", "pre-period RMSPE (log)")


def control_groups(ds: xr.Dataset) -> list[ControlGroup]:
    """Each bond's donors and weights (``control_donor``, ``control_weight``) and its RMSPE."""
    out = []
    for i, bond in enumerate(ds.bond.values.tolist()):
        ids = [str(a) for a in ds.control_donor.values[i]]
        w = np.asarray(ds.control_weight.values[i], float)
        pool = [j for j, a in enumerate(ids) if a != ""]
        used = sorted((j for j in pool if w[j] > 0.0), key=lambda j: (-w[j], j))
        out.append(ControlGroup(str(bond), tuple(ids[j] for j in used),
                                tuple(float(w[j]) for j in used), len(pool),
                                float(ds.rmspe.values[i])))
    return out


def parameter_uncertainty_section(ds: xr.Dataset, table: Callable[..., str]) -> str:
    """The table ``--parameter-uncertainty`` adds to the summary, cell for cell, if the run
    had it (``table`` renders a head and rows, as the page's other tables)."""
    from lobsim.analysis import parameter_uncertainty as pu

    if not pu.has_parameter_uncertainty(ds):
        return ""
    t = pu.parameter_uncertainty_table(pu.parameter_uncertainty_effect(ds))
    return "\n".join([
        "<h2 id='parameter-uncertainty'>Parameter uncertainty</h2>",
        f"<p class='note'>What the estimation error of the process parameters adds to each "
        f"bond's P(default): {html.escape(t.method)} (docs/real_data.md, Parameter "
        "uncertainty).</p>",
        table(t.header, t.rows, ident="parameter-uncertainty-table", text=(0,)),
        "<p class='note'>" + ". ".join(html.escape(x[:1].upper() + x[1:])
                                       for x in (t.reading, INTERVAL_NOTE)) + ".</p>"])
