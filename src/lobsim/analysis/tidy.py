"""Tidy tables of a run, for a financial model's review (``lobsim export``, docs/export.md).

One row per observation, one column per variable, units in the column names
(``_gbp``, ``p_`` for probabilities, ``_units`` for outcome units): the
bonds' and departments' cash flows by year, the summary tables, the control
groups, what ``--parameter-uncertainty`` added (empty for a run without it), the
provenance, and a contents table and column dictionary.

The summary tables (bonds, baskets, tranches, holdings) and the departments'
mean payments are flattened from :func:`lobsim.analysis.summary.summary_dict`
of the same summary that ``lobsim summary --json`` prints, so their numbers
are that output's by construction; set-asides are those of
:mod:`lobsim.analysis.setaside`. Tables that need the per-scenario results
(the cash flows by bond) are listed in ``contents`` as not available for the
summary of a ``--stream`` run, never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from lobsim._version import __version__
from lobsim.analysis import setaside, stats, summary
from lobsim.analysis.summary import summary_dict

#: The tables of an export, in order (``--csv`` writes ``NAME.csv`` of each).
TABLE_NAMES = ("contents", "columns", "bond_cashflows", "bond_department_cashflows",
               "department_cashflows", "bonds", "baskets", "tranches", "holdings",
               "parameter_uncertainty", "control_groups", "provenance")
#: Quantiles of the yearly investor payment of a bond (bond_cashflows).
CASHFLOW_QUANTILES = (0.05, 0.5, 0.95)
#: Levels of the departments' set-asides (department_cashflows).
SET_ASIDE_LEVELS = (0.95, 0.99)

#: Summary statistics in money (by their key in summary_dict), from the summary's one table.
_MONEY = {k for k, (units, _) in summary.STATISTICS.items() if units == summary.MONEY}
_RENAME = {"expected_provider_shortfall_value": "expected_provider_shortfall",
           "expected_provider_shortfall": "expected_provider_shortfall_units",
           "minimum_detectable_effect": "minimum_detectable_effect_units",
           "rmspe": "rmspe_log_points"}


@dataclass(frozen=True)
class Table:
    """One tidy table: ``rows`` of values (float, int, str or None) under ``columns``."""

    name: str
    description: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    #: why a table is empty ("" when it was built)
    missing: str = ""


def column_units(name: str) -> str:
    """The units of a column, read off its name (the naming convention of this module)."""
    if name.endswith("_gbp"):
        return "GBP"
    if name.startswith("p_"):
        return "probability"
    if name.endswith("_units"):
        return "outcome units"
    if name.endswith("_log_points"):
        return "log points"
    if "irr" in name or name.endswith(("_return", "_premium")) or name == "premium":
        return "1/year (fraction)"
    if name in ("start_years", "maturity_years"):
        return "years after the base year"
    if name in ("seniority", "donor_rank"):
        return "rank (1 first)"
    if "multiple" in name or name in ("share", "relief", "tax_rate", "signal_to_noise",
                                      "minimum_detectable_effect_share", "weight"):
        return "1"
    return ""


def _label(key: str, dict_key: str) -> str:
    """Column suffix of one entry of a summary statistic over quantiles or levels."""
    pct = f"{100 * float(dict_key):.10g}".replace(".", "_")
    return f"q{int(pct):02d}" if key.endswith("_quantile") and pct.isdigit() else pct


def summary_column(key: str, dict_key: str | None = None) -> str:
    """The column of summary statistic ``key`` (``dict_key``: its quantile or level).

    Examples
    --------
    >>> summary_column("default_probability"), summary_column("expected_loss_se")
    ('p_default', 'expected_loss_se_gbp')
    >>> summary_column("irr_quantile", "0.05"), summary_column("loss_es", "0.995")
    ('irr_q05', 'loss_es_99_5_gbp')
    """
    se = key.endswith("_se")
    base = key.removesuffix("_se")
    unit = "_gbp" if base in _MONEY else ""
    stem = _RENAME.get(base, base)
    for suffix in ("_units", "_log_points"):
        if stem.endswith(suffix):
            stem, unit = stem.removesuffix(suffix), suffix
    if stem.endswith("_probability"):
        stem = "p_" + stem.removesuffix("_probability")
    elif stem.startswith("probability_"):
        stem = "p_" + stem.removeprefix("probability_")
    if dict_key is not None:
        stem = f"{stem.removesuffix('_quantile')}_{_label(base, dict_key)}"
    return f"{stem}{'_se' if se else ''}{unit}"


def _cell(x: Any) -> Any:
    """A value as a table cell: numbers stay numbers, non-finite ones become empty."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _flatten(rows: dict[str, dict[str, Any]], first: str) -> tuple[list[str], list[list[Any]]]:
    """summary_dict rows (id -> statistic -> value or {label: value}) as a tidy table."""
    columns: dict[str, None] = {first: None}
    flat: list[dict[str, Any]] = []
    for key, row in rows.items():
        out: dict[str, Any] = {first: key}
        for stat, value in row.items():
            if isinstance(value, dict):
                for label, v in value.items():
                    out[summary_column(stat, label)] = v
            else:
                out[summary_column(stat)] = value
        columns.update(dict.fromkeys(out))
        flat.append(out)
    names = list(columns)
    return names, [[_cell(r.get(c)) for c in names] for r in flat]


_SUMMARY_TABLES = {
    "bonds": ("bond", "per bond: investor, state and provider statistics of `lobsim summary` "
                      "with their Monte Carlo standard errors (_se)"),
    "baskets": ("basket", "per basket: the investor statistics of `lobsim summary`, "
                          "diversification benefit"),
    "tranches": ("tranche", "per tranche after the waterfall: investor statistics, guarantee "
                            "and protection received, terms"),
    "holdings": ("holding", "per holding of an investor class: pre- and after-tax returns"),
}


def summary_tables(doc: dict[str, Any]) -> list[Table]:
    """bonds, baskets, tranches, holdings from a summary_dict (absent groups: empty tables)."""
    out = []
    for name, (first, description) in _SUMMARY_TABLES.items():
        if name not in doc:
            out.append(Table(name, description, [first], missing=f"the run has no {name}"))
            continue
        columns, rows = _flatten(doc[name], first)
        out.append(Table(name, description, columns, rows))
    return out


def _year_payments(ds: xr.Dataset) -> np.ndarray:
    """Each bond's investor payment in each year, shape (scenario, bond, year).

    A bond paying at several dates (``dated_payment``) pays by date, the others
    their ``investor_payment`` in their payment year (the split of
    :func:`lobsim.analysis.setaside.bond_year_payments`).
    """
    bonds = [str(b) for b in ds.bond.values]
    years = ds.year.values
    slot_bond = np.array([bonds.index(str(b)) for b in ds.payment_bond.values], np.int64)
    out = ds.investor_payment.values[:, :, None] * ds.pays_in_year.values[None, :, :]
    out[:, np.unique(slot_bond), :] = 0.0
    for k, b in enumerate(slot_bond):
        out[:, b, int(np.flatnonzero(years == ds.payment_year.values[k])[0])] += (
            ds.dated_payment.values[:, k])
    return np.asarray(out, float)


def cashflow_tables(ds: xr.Dataset) -> tuple[Table, Table]:
    """bond_cashflows (bond x year) and bond_department_cashflows (bond x department x year).

    Rows for the years a bond can pay in. The state pays each bond its
    investor payment plus the agencies' premiums per paid unit; by department
    that is :func:`lobsim.analysis.setaside.bond_year_payments`, whose sum over
    bonds is the department's payment of the year.
    """
    w = stats.run_weights(ds)
    pay = _year_payments(ds)
    mean, se = stats.mean_se(pay, w)
    q = stats.quantiles(pay, CASHFLOW_QUANTILES, w)[0]
    deps = [str(d) for d in ds.department.values]
    shape = (ds.sizes["bond"], len(deps), ds.sizes["year"])
    dep_mean, dep_pays = np.zeros(shape), np.zeros(shape, np.bool_)
    state = np.zeros_like(pay)  # what the departments pay for each bond, by year
    for i in range(len(deps)):
        for j in range(shape[2]):
            by_bond = setaside.bond_year_payments(ds, i, j)  # (scenario, bond)
            dep_mean[:, i, j] = stats.mean_se(by_bond, w)[0]
            dep_pays[:, i, j] = np.any(by_bond != 0.0, axis=0)
            state[:, :, j] += by_bond
    state_mean = stats.mean_se(state, w)[0]
    years = [int(y) for y in ds.year.values]
    bond_cols = ["bond", "year", "expected_investor_payment_gbp", "expected_investor_payment_se_gbp",
                 *(f"investor_payment_{_label('x_quantile', str(p))}_gbp"
                   for p in CASHFLOW_QUANTILES),
                 "expected_state_payment_gbp", "expected_agency_premium_gbp",
                 "principal_gbp", "price_per_unit_gbp", "target_units", "start_years",
                 "maturity_years"]
    bond_rows, dep_rows = [], []
    can_pay = np.abs(pay).max(axis=0) > 0.0
    can_pay |= ds.pays_in_year.values
    for b, bond in enumerate(str(x) for x in ds.bond.values):
        terms = [float(ds.principal.values[b]), float(ds.price_per_unit.values[b]),
                 float(ds.target_units.values[b]), float(ds.start.values[b]),
                 float(ds.maturity.values[b])]
        for j, year in enumerate(years):
            if not can_pay[b, j]:
                continue
            bond_rows.append([_cell(x) for x in (
                bond, year, mean[b, j], se[b, j], *q[:, b, j], state_mean[b, j],
                state_mean[b, j] - mean[b, j], *terms)])
            dep_rows += [[bond, d, year, _cell(dep_mean[b, i, j])] for i, d in enumerate(deps)
                         if dep_pays[b, i, j]]
    return (
        Table("bond_cashflows", "per bond and year it can pay in: the investor payment (mean, "
              "its standard error, quantiles), what the state pays in all (investor payment "
              "plus agency premiums), the bond's terms", bond_cols, bond_rows),
        Table("bond_department_cashflows", "per bond, paying department and year: the expected "
              "payment by the department's agencies (share of the investor payment plus "
              "premiums per paid unit); summed over bonds it is department_cashflows' "
              "expected_payment_gbp", ["bond", "department", "year", "expected_payment_gbp"],
              dep_rows),
    )


def department_table(s: xr.Dataset, doc: dict[str, Any], ds: xr.Dataset | None) -> Table:
    """department_cashflows: per department and year, payments, savings and set-asides.

    Means and quantiles from the summary (``doc``, its summary_dict); the
    set-aside at a level is the summary's payment quantile (the VaR of
    :mod:`lobsim.analysis.stats`, as :func:`lobsim.analysis.setaside.set_aside`),
    its 95% order-statistic interval from
    :func:`lobsim.analysis.setaside.compute_set_asides` where the per-scenario,
    unweighted results are there.
    """
    intervals = {}
    if ds is not None and stats.run_weights(ds) is None:
        intervals = {p: setaside.compute_set_asides(ds, p) for p in SET_ASIDE_LEVELS}
    levels = {f"{p:g}" for p in s.department_quantile.values.tolist()}
    cols = ["department", "year", "expected_payment_gbp", "expected_payment_se_gbp",
            "payment_median_gbp",
            *(c for p in SET_ASIDE_LEVELS if f"{p:g}" in levels
              for c in (f"set_aside_{_label('', str(p))}_gbp",
                        *((f"set_aside_{_label('', str(p))}_low_gbp",
                           f"set_aside_{_label('', str(p))}_high_gbp") if intervals else ()))),
            "expected_saving_gbp", "expected_saving_se_gbp", "net_fiscal_position_gbp",
            "net_fiscal_position_se_gbp", "p_pays_more_than_saves"]
    rows = []
    for i, d in enumerate(s.department.values.tolist()):
        for j, y in enumerate(s.year.values.tolist()):
            cell = doc["departments"][str(d)][str(y)]
            q = cell["payment_quantile"]
            sets: list[Any] = []
            for p in SET_ASIDE_LEVELS:
                if f"{p:g}" not in levels:
                    continue
                sets.append(q[str(p)])
                if intervals:
                    sets += [intervals[p].book_low[i, j], intervals[p].book_high[i, j]]
            saving_se = s.department_saving_mean_se.values[i, j]
            rows.append([_cell(x) for x in (
                d, int(y), cell["payment_mean"], cell["payment_mean_se"], q["0.5"], *sets,
                cell["saving_mean"], saving_se, cell["net_fiscal_position"],
                cell["net_fiscal_position_se"], cell["probability_pays_more_than_saves"])])
    return Table("department_cashflows", "per department and year: expected payments to "
                 "agencies and their standard error, the median and the set-asides (the "
                 "payment exceeded with probability at most 5% and 1%, with 95% "
                 "order-statistic intervals), savings on true units, the net fiscal position "
                 "(saving minus payment)", cols, rows)


def parameter_uncertainty_table(results: xr.Dataset) -> Table:
    """parameter_uncertainty: per bond, what ``--parameter-uncertainty`` adds to P(default).

    The columns of
    :func:`lobsim.analysis.parameter_uncertainty.parameter_uncertainty_effect`
    (``default_probability_*`` named ``p_default_*``), from the per-scenario
    results or a ``--stream`` summary: an empty table for a run without the
    option.
    """
    from lobsim.analysis.parameter_uncertainty import (
        has_parameter_uncertainty,
        parameter_uncertainty_effect,
    )

    description = ("per bond: P(default) at the estimated and at drawn process parameters "
                   "(lobsim run --parameter-uncertainty), the difference on common random "
                   "numbers, with 95% intervals (_lo, _hi), and the sd of one draw's "
                   "P(default) across draws")
    if not has_parameter_uncertainty(results):
        return Table("parameter_uncertainty", description, ["bond"],
                     missing="the run was not made with --parameter-uncertainty")
    e = parameter_uncertainty_effect(results)
    names = [str(k) for k in e.data_vars]
    cols = ["bond", *("p_default" + k.removeprefix("default_probability") for k in names)]
    rows = [[str(b), *(_cell(float(e[k].values[i])) for k in names)]
            for i, b in enumerate(e.bond.values.tolist())]
    return Table("parameter_uncertainty", description, cols, rows)


def control_table(src: xr.Dataset) -> Table:
    """control_groups: per bond, its donor areas, their weights and the pre-period RMSPE."""
    cols = ["bond", "donor_rank", "donor_area", "weight", "rmspe_log_points"]
    description = ("per bond and donor area of its synthetic control: the weight fitted at "
                   "signing (donors ranked by weight) and the bond's pre-period RMSPE; a bond "
                   "with a verified outcome has one row without donor")
    if "control_weight" not in src.variables:
        return Table("control_groups", description, cols,
                     missing="these results do not record the control groups (written before "
                             "lobsim stored them: run again)")
    rows = []
    for b, bond in enumerate(str(x) for x in src.bond.values):
        donors = [str(a) for a in src.control_donor.values[b]]
        weights = src.control_weight.values[b]
        rmspe = _cell(src.rmspe.values[b])
        kept = [k for k in np.argsort(-weights, kind="stable") if donors[k]]
        if not kept:
            rows.append([bond, None, None, None, rmspe])
        rows += [[bond, r + 1, donors[k], _cell(weights[k]), rmspe] for r, k in enumerate(kept)]
    return Table("control_groups", description, cols, rows)


def provenance_table(s: xr.Dataset, *, source: str, exported_at: str) -> Table:
    """provenance: where the numbers come from (key, value)."""
    a = s.attrs
    items = [("config", a.get("config", "")), ("config_source", a.get("config_source", "")),
             ("config_hash", a.get("config_hash", "")), ("seed", a.get("seed")),
             ("scenarios", a.get("scenarios")), ("run_lobsim_version", a.get("lobsim_version")),
             ("summary_method", a.get("summary_method", "exact (per-scenario results)")),
             ("currency", a.get("currency", "GBP")), ("results_file", source),
             ("exported_at", exported_at), ("export_lobsim_version", __version__)]
    return Table("provenance", "the run these tables come from and the export itself",
                 ["key", "value"], [[k, _cell(v.item() if hasattr(v, "item") else v)]
                                    for k, v in items])


def build_tables(summary: xr.Dataset, results: xr.Dataset | None, *, source: str,
                 exported_at: str) -> list[Table]:
    """Every table of an export, ``contents`` and ``columns`` first.

    Parameters
    ----------
    summary : xarray.Dataset
        The run's summary: :func:`lobsim.analysis.summary.summarize` of
        ``results``, or the summary a ``--stream`` run wrote.
    results : xarray.Dataset or None
        The per-scenario results (None for a ``--stream`` summary).
    source : str
        The results file, for the provenance.
    exported_at : str
        The time of the export (ISO 8601), for the provenance.
    """
    doc = summary_dict(summary)
    stream = "not available: the summary of a --stream run keeps no per-scenario cash flows"
    if results is not None:
        cash = list(cashflow_tables(results))
    else:
        cash = [Table("bond_cashflows", "per bond and year: investor and state payments",
                      ["bond", "year"], missing=stream),
                Table("bond_department_cashflows", "per bond, paying department and year",
                      ["bond", "department", "year"], missing=stream)]
    tables = [*cash, department_table(summary, doc, results), *summary_tables(doc),
              parameter_uncertainty_table(results if results is not None else summary),
              control_table(results if results is not None else summary),
              provenance_table(summary, source=source, exported_at=exported_at)]
    contents = Table("contents", "the tables of this export", ["table", "rows", "description",
                                                                 "units"],
                     [[t.name, len(t.rows), t.missing or t.description,
                       ", ".join(dict.fromkeys(u for u in map(column_units, t.columns) if u))]
                      for t in tables])
    columns = Table("columns", "every column of every table and its units",
                    ["table", "column", "units"],
                    [[t.name, c, column_units(c)] for t in tables for c in t.columns])
    return [contents, columns, *tables]
