"""Departmental set-asides: what to reserve to pay LOBs at maturity.

"The Treasury will need to make the relevant central government departments
'set aside' a proportion of their future budget" (Total Neighbourhood,
section 5.2). For a department, a year and a level ``p`` (0.99), the
set-aside is the amount that the department's LOB payments of that year
exceed with probability at most ``1 - p``.

**Quantile convention.** The set-aside is the VaR of
:func:`lobsim.analysis.stats.quantile`, the one quantile every output of
lobsim reports: the empirical ``p``-quantile by
inverting the empirical distribution function: the ``ceil(p n)``-th smallest
of the ``n`` scenario payments (numpy's ``method="inverted_cdf"``, with
``p n`` rounded to 9 decimals first so that 0.07 x 100 is rank 7, not 8). It
is always a simulated payment, and the share of scenarios paying more than it
is at most ``1 - p``, ties included; a bond that pays the same in every
scenario has that payment as its set-aside.

**Monte Carlo error.** A distribution-free 95% interval for the true
quantile from order statistics: with ``B ~ Binomial(n, p)``, the order
statistics of ranks ``l = F_B^-1(0.025)`` and ``u = F_B^-1(0.975) + 1``
bracket the true ``p``-quantile with probability at least 95% (exactly, for
continuous payments; David and Nagaraja, *Order Statistics*, 2003, 7.1).

**Book and bonds.** The *book* set-aside is the quantile of the department's
total payment of the year over every bond (``department_payment``), so the
bonds' joint behaviour (one programme prior, shared area factors, one
provider failing) is as simulated. A bond's own payments to a department are
the agencies' shares of what it pays plus the agencies' premiums per paid
unit, as the kernel forms them: for a bond paying at one date,
``department_share x investor_payment + department_premium x paid_units``
in its payment year; for a bond paying at several dates (cohort
measurements, coupons), date by date from ``dated_payment``: a measurement's
payment ``a`` counts ``a / price_per_unit`` units (per-unit and threshold
bonds, the only ones measured more than once; a bond measured once counts
its ``paid_units``) and a coupon is split by share only, with no premium.
The diversification benefit is the sum of the bonds' stand-alone set-asides
less the set-aside of their sum. Quantiles are not subadditive: the benefit
can be negative (for skewed, lumpy payments), and it is reported as it comes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from scipy.stats import binom

from lobsim.analysis import stats, tables
from lobsim.jsonio import number

#: Coverage of the order-statistic interval.
COVERAGE = 0.95


def set_aside_rank(n: int, level: float) -> int:
    """The 1-based rank ``ceil(level n)`` of the set-aside among ``n`` sorted payments.

    ``level x n`` is rounded to 9 decimals first, so that a product that is a
    whole number on paper (0.07 x 100) is not pushed to the next rank by
    floating point (7.000000000000001).

    Examples
    --------
    >>> set_aside_rank(100, 0.07), set_aside_rank(100, 0.071), set_aside_rank(10, 0.001)
    (7, 8, 1)
    """
    return min(max(math.ceil(round(level * n, 9)), 1), n)


def set_aside(payments: np.ndarray, level: float) -> np.ndarray:
    """The ``ceil(level n)``-th smallest of ``n`` payments along axis 0.

    Parameters
    ----------
    payments : ndarray, shape (scenarios, ...)
    level : float
        In (0, 1).

    Returns
    -------
    ndarray, shape (...)
        A simulated payment; at most ``1 - level`` of the scenarios pay more.

    Examples
    --------
    >>> float(set_aside(np.arange(1.0, 101.0), 0.99))
    99.0
    >>> float(set_aside(np.array([0.0, 0.0, 0.0, 5.0]), 0.75))  # an atom at 0
    0.0
    """
    # VaR of lobsim.analysis.stats: its rank is set_aside_rank's (tests/test_decisions.py)
    return np.asarray(stats.quantiles(np.asarray(payments, float), (level,))[0][0])


def order_stat_interval(sorted_payments: np.ndarray, level: float,
                        coverage: float = COVERAGE) -> tuple[np.ndarray, np.ndarray]:
    """Distribution-free interval for the ``level``-quantile from sorted samples (axis 0)."""
    n = sorted_payments.shape[0]
    lo_rank = int(binom.ppf((1.0 - coverage) / 2.0, n, level))
    hi_rank = int(binom.ppf((1.0 + coverage) / 2.0, n, level)) + 1
    lo = min(max(lo_rank, 1), n) - 1  # 1-based ranks to indices
    hi = min(max(hi_rank, 1), n) - 1
    return sorted_payments[lo], sorted_payments[hi]


@dataclass(frozen=True)
class SetAsides:
    """Set-asides of a run at one level, per department and year.

    Attributes
    ----------
    level : float
    scenarios : int
    departments, years : list
        Labels of the axes of the (department, year) arrays.
    expected_payment, expected_saving : ndarray, shape (departments, years)
        Mean payments by the department in the year (all bonds), mean savings.
    book, book_low, book_high : ndarray, shape (departments, years)
        The book set-aside and its 95% order-statistic interval.
    standalone_sum : ndarray, shape (departments, years)
        Sum of the stand-alone set-asides of the bonds paying in the year.
    split_book : ndarray, shape (departments, years)
        The set-aside of the sum of those bonds' payments (the book, up to
        rounding: the sum is formed bond by bond here).
    benefit, benefit_share : ndarray, shape (departments, years)
        ``standalone_sum - split_book`` and that as a share of ``standalone_sum``.
    bonds : dict
        department -> list of (bond id, year, expected payment, set-aside).
    """

    level: float
    scenarios: int
    departments: list[str]
    years: list[int]
    expected_payment: np.ndarray
    expected_saving: np.ndarray
    book: np.ndarray
    book_low: np.ndarray
    book_high: np.ndarray
    standalone_sum: np.ndarray
    split_book: np.ndarray
    benefit: np.ndarray
    benefit_share: np.ndarray
    bonds: dict[str, list[tuple[str, int, float, float]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready layout (``schema``: ``lobsim.setaside/2``); cells without payments left out."""
        cells: dict[str, Any] = {}
        for i, d in enumerate(self.departments):
            rows = {}
            for j, y in enumerate(self.years):
                if self.expected_payment[i, j] == 0.0 and self.book[i, j] == 0.0:
                    continue
                rows[str(y)] = {
                    "expected_payment": float(self.expected_payment[i, j]),
                    "expected_saving": float(self.expected_saving[i, j]),
                    "set_aside": float(self.book[i, j]),
                    "set_aside_interval": [float(self.book_low[i, j]),
                                           float(self.book_high[i, j])],
                    "standalone_sum": float(self.standalone_sum[i, j]),
                    "diversification_benefit": float(self.benefit[i, j]),
                    "diversification_benefit_share": number(self.benefit_share[i, j]),
                }
            cells[d] = {
                "years": rows,
                "bonds": {b: {"year": y, "expected_payment": m, "set_aside": q}
                          for b, y, m, q in self.bonds.get(d, [])},
            }
        return {"schema": "lobsim.setaside/2", "level": self.level,
                "scenarios": self.scenarios, "interval_coverage": COVERAGE,
                "departments": cells}


def bond_department_payments(ds: xr.Dataset, department: int) -> np.ndarray:
    """What each bond pays one department in total, shape (scenarios, bonds).

    For a bond paying at one date that is its payment in its payment year
    (the module docstring gives the rule; :func:`bond_year_payments` splits
    bonds paying at several dates by year).
    """
    share = ds.department_share.values[:, department]
    premium = ds.department_premium.values[:, department]
    return np.asarray(share * ds.investor_payment.values + premium * ds.paid_units.values)


def bond_year_payments(ds: xr.Dataset, department: int, year: int) -> np.ndarray:
    """What each bond pays one department in one year, shape (scenarios, bonds).

    Parameters
    ----------
    ds : xarray.Dataset
        Per-scenario results with ``dated_payment``.
    department, year : int
        Positions along ``department`` and ``year``.
    """
    share = ds.department_share.values[:, department]
    premium = ds.department_premium.values[:, department]
    bond_ids = [str(b) for b in ds.bond.values]
    slot_bond = np.array([bond_ids.index(str(b)) for b in ds.payment_bond.values], np.int64)
    dated = np.zeros(len(bond_ids), np.bool_)
    dated[slot_bond] = True
    out = bond_department_payments(ds, department)
    out[:, dated | ~ds.pays_in_year.values[:, year]] = 0.0
    y = ds.year.values[year]
    price = ds.price_per_unit.values
    measured = np.bincount(slot_bond[~ds.payment_coupon.values], minlength=len(bond_ids))
    for k in np.flatnonzero(ds.payment_year.values == y):
        b = int(slot_bond[k])
        amount = ds.dated_payment.values[:, k]
        if ds.payment_coupon.values[k]:
            units = 0.0  # a coupon carries no agency premium
        elif measured[b] == 1:
            units = ds.paid_units.values[:, b]  # the one measurement's units (any mechanism)
        else:
            units = amount / price[b]  # per-unit mechanisms: amount = units x price
        out[:, b] += share[b] * amount + premium[b] * units
    return out


def compute_set_asides(ds: xr.Dataset, level: float) -> SetAsides:
    """Set-asides per department and year, for the book and bond by bond.

    Parameters
    ----------
    ds : xarray.Dataset
        Per-scenario results of :func:`lobsim.simulate` (not a streaming summary).
    level : float
        In (0, 1): payments exceed the set-aside with probability at most ``1 - level``.

    Returns
    -------
    SetAsides
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if stats.run_weights(ds) is not None:
        # the weighted VaR itself is valid (lobsim.analysis.stats), but the order-statistic
        # interval above is a binomial argument about equally likely scenarios
        raise ValueError("the scenarios carry importance-sampling weights: the set-asides' "
                         "order-statistic interval holds for plain runs only (lobsim run "
                         "without a tilt)")
    pay = ds.department_payment.values
    n = pay.shape[0]
    years = [int(y) for y in ds.year.values]
    deps = [str(d) for d in ds.department.values]
    shape = (len(deps), len(years))
    sorted_pay = np.sort(pay, axis=0)
    book = set_aside(sorted_pay, level)
    low, high = order_stat_interval(sorted_pay, level)
    in_year = ds.pays_in_year.values  # (bond, year)
    bond_ids = [str(b) for b in ds.bond.values]
    standalone = np.zeros(shape)
    split_book = np.zeros(shape)
    per_bond: dict[str, list[tuple[str, int, float, float]]] = {}
    for i, d in enumerate(deps):
        pays = (ds.department_share.values[:, i] > 0.0) | (ds.department_premium.values[:, i] > 0.0)
        for j, y in enumerate(years):
            cols = np.flatnonzero(pays & in_year[:, j])
            if cols.size == 0:
                continue
            bond_pay = bond_year_payments(ds, i, j)[:, cols]
            alone = set_aside(bond_pay, level)
            standalone[i, j] = alone.sum()
            split_book[i, j] = set_aside(bond_pay.sum(axis=1), level)
            means = stats.mean_se(bond_pay)[0]
            per_bond.setdefault(d, []).extend(
                (bond_ids[b], y, float(m), float(q)) for b, m, q in zip(cols, means, alone,
                                                                       strict=True))
    benefit = standalone - split_book
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(standalone > 0.0, benefit / standalone, np.nan)
    return SetAsides(level=level, scenarios=n, departments=deps, years=years,
                     expected_payment=stats.mean_se(ds.department_payment)[0],
                     expected_saving=stats.mean_se(ds.department_saving)[0],
                     book=book, book_low=low, book_high=high, standalone_sum=standalone,
                     split_book=split_book, benefit=benefit, benefit_share=share,
                     bonds=per_bond)


def format_set_asides(s: SetAsides, *, by_bond: bool = False) -> str:
    """Plain-text table of :func:`compute_set_asides` for the terminal (lobsim.analysis.tables)."""
    from lobsim.model.simulate import CURRENCY

    pct = 100 * (1 - s.level)
    cur = CURRENCY
    header = ["department", "year", f"E[payment] {cur}", f"E[saving] {cur}",
              f"set-aside {cur}", f"95% interval {cur}", f"sum alone {cur}", f"benefit {cur}",
              "benefit/sum alone %"]
    rows = []
    for i, d in enumerate(s.departments):
        for j, y in enumerate(s.years):
            if s.expected_payment[i, j] == 0.0 and s.book[i, j] == 0.0:
                continue
            share = s.benefit_share[i, j]
            rows.append([
                str(d), str(y), f"{s.expected_payment[i, j]:,.0f}",
                f"{s.expected_saving[i, j]:,.0f}", f"{s.book[i, j]:,.0f}",
                f"{s.book_low[i, j]:,.0f}-{s.book_high[i, j]:,.0f}",
                f"{s.standalone_sum[i, j]:,.0f}", f"{s.benefit[i, j]:,.0f}",
                "" if math.isnan(share) else f"{100 * share:.1f}%"])
    lines = [f"Set-asides at level {s.level:g}: payments exceed them with probability at most "
             f"{pct:g}% ({s.scenarios} scenarios; 95% order-statistic interval)", "",
             *tables.render(header, rows, left=2)]
    if by_bond:
        rows = [[b, str(d), str(y), f"{m:,.0f}", f"{q:,.0f}"]
                for d, bond_rows in s.bonds.items() for b, y, m, q in bond_rows]
        lines += ["", *tables.render(["bond", "department", "year", f"E[payment] {cur}",
                                      f"set-aside {cur}"], rows, left=3)]
    return "\n".join(lines)
