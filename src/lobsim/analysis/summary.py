"""Reduce simulation results to the statistics a risk team reads (docs/model.md section 9).

Every statistic, and its Monte Carlo standard error where one exists, is the
estimator of :mod:`lobsim.analysis.stats`: means and probabilities, quantiles
(VaR, the inverse of the empirical distribution function), Acerbi-Tasche
expected shortfall with fractional ties, the diversification benefit. An
importance-sampling run is weighted by its likelihood ratios
(``exp(log_weight)``, not self-normalised), so its summary is unbiased.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from lobsim.analysis import pooling, power, stats, tables
from lobsim.analysis.returns import irr_expected_flows
from lobsim.analysis.stats import mean_se
from lobsim.jsonio import number
from lobsim.model import tax

QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)
TAIL_LEVELS = (0.95, 0.99, 0.995)
DEPARTMENT_QUANTILES = (0.5, 0.95, 0.99)
#: The IRR quantiles the terminal tables show, named as quantiles (IRR q05, not IRR 5%).
IRR_SHOWN = (0.05, 0.5)
IRR_COLUMNS = [f"IRR {tables.quantile_label(q)}" for q in IRR_SHOWN]


def _investor_stats(payment: xr.DataArray, principal: xr.DataArray, irr: xr.DataArray,
                    dim: str, w: np.ndarray | None) -> dict[str, Any]:
    """Investor statistics of one group (bonds, baskets, tranches), reduced over ``scenario``."""
    payment, principal = xr.broadcast(payment, principal)
    payment = payment.transpose("scenario", dim)
    principal = principal.transpose("scenario", dim)
    multiple = payment / principal
    loss = principal - payment
    out: dict[str, Any] = {}
    for name, x in (("default_probability", payment < principal),
                    ("total_loss_probability", payment == 0.0),
                    ("expected_loss", np.maximum(loss, 0.0)),
                    ("mean_multiple", multiple), ("mean_irr", irr)):
        m, se = mean_se(x, w)  # booleans too: mean_se reads them as 0 and 1
        out[name] = ((dim,), m)
        out[name + "_se"] = ((dim,), se)
    for name, x in (("multiple_quantile", multiple), ("irr_quantile", irr)):
        q, se = stats.quantiles(x, QUANTILES, w)
        out[name] = (("quantile", dim), q)
        out[name + "_se"] = (("quantile", dim), se)
    var, var_se, es, es_se = stats.tails(loss, TAIL_LEVELS, w)
    out["loss_var"] = (("level", dim), var)
    out["loss_var_se"] = (("level", dim), var_se)
    out["loss_es"] = (("level", dim), es)
    out["loss_es_se"] = (("level", dim), es_se)
    return out


def summarize(ds: xr.Dataset) -> xr.Dataset:
    """Statistics of a results Dataset from :func:`lobsim.simulate`.

    Parameters
    ----------
    ds : xarray.Dataset
        Simulation results.

    Returns
    -------
    xarray.Dataset
        Per bond and per basket (prefix ``basket_``): default and total-loss
        probabilities, expected loss, mean multiple, E[IRR] (the mean of the
        scenario IRRs) and the IRR of the expected cash flows
        (``irr_expected_flows``, :mod:`lobsim.analysis.returns`), quantiles at
        ``quantile``, VaR and expected shortfall of loss (principal minus
        payment) at ``level``; per bond the expected overpayment and the
        provider's shortfall (probability, units, value; lobsim.model.shortfall),
        per basket their sums over its bonds and its lowest signal-to-noise
        (:func:`basket_bond_sums`), and a pooled basket's own signal-to-noise
        (``basket_pooled_signal_to_noise``, :mod:`lobsim.analysis.pooling`; NaN
        for the baskets measured separately, absent if none is pooled);
        per holding of an investor class (dimension ``holding``, if the run
        has investor classes) pre- and after-tax E[IRR], default-adjusted
        returns and loss probabilities (:func:`add_holding_stats`); per
        department and year the mean and quantiles of payments and savings,
        the mean net fiscal position (saving minus payment) and the
        probability of paying more than is saved. ``*_se`` variables are the
        Monte Carlo standard errors. Every variable has ``units`` and
        ``long_name`` attributes (:func:`label`). The bonds' control groups
        (``control_donor``, ``control_weight``) are kept as coordinates.
    """
    w = stats.run_weights(ds)
    bond = _investor_stats(ds.investor_payment, ds.principal, ds.irr, "bond", w)
    basket = _investor_stats(ds.basket_payment, ds.basket_principal, ds.basket_irr, "basket", w)
    data: dict[str, Any] = dict(bond)
    data.update({f"basket_{k}": v for k, v in basket.items()})
    # the second IRR convention, beside E[IRR] (lobsim.analysis.returns)
    bond_flows, basket_flows = irr_expected_flows(ds, w)
    data["irr_expected_flows"] = (("bond",), bond_flows)
    data["basket_irr_expected_flows"] = (("basket",), basket_flows)
    # the state's overpayment and the provider's mirror risk: units truly achieved but
    # not paid (lobsim.model.shortfall)
    for name, x in {"expected_overpayment": ds.overpayment, **shortfall_series(ds)}.items():
        m, se = mean_se(x, w)
        data[name] = (("bond",), m)
        data[name + "_se"] = (("bond",), se)
    data["rmspe"] = (("bond",), ds.rmspe.values)
    # docs/model.md section 6.10: target over the sd of measured units under no effect
    data["signal_to_noise"] = (("bond",), power.signal_to_noise(
        ds.target_units.values, ds.prediction_error.std("scenario").values))
    if pooling.is_pooled(ds).any():  # docs/model.md section 6.13
        data["basket_pooled_signal_to_noise"] = (("basket",), pooling.pooled_signal_to_noise(ds))
    # evaluation power (lobsim.analysis.power, docs/model.md section 6.11)
    mde = power.minimum_detectable_effect(ds.prediction_error, w)
    data["minimum_detectable_effect"] = (("bond",), mde)
    data["minimum_detectable_effect_share"] = (("bond",), power.share(mde, ds.target_units.values))

    pay = ds.department_payment
    save = ds.department_saving
    dy = ("department", "year")
    for name, x in (("department_payment_mean", pay), ("department_saving_mean", save),
                    ("net_fiscal_position", save - pay)):
        m, se = mean_se(x, w)
        data[name] = (dy, m)
        data[name + "_se"] = (dy, se)
    q, q_se = stats.quantiles(pay, DEPARTMENT_QUANTILES, w)
    data["department_payment_quantile"] = (("department_quantile", *dy), q)
    data["department_payment_quantile_se"] = (("department_quantile", *dy), q_se)
    m, se = stats.probability_se(pay > save, w)
    data["probability_pays_more_than_saves"] = (dy, m)
    data["probability_pays_more_than_saves_se"] = (dy, se)

    coords = {
        "bond": ds.bond.values, "basket": ds.basket.values,
        "department": ds.department.values, "year": ds.year.values,
        "quantile": list(QUANTILES), "level": list(TAIL_LEVELS),
        "department_quantile": list(DEPARTMENT_QUANTILES),
    }
    out = xr.Dataset(data, coords=coords).assign_coords(control_coords(ds))
    out = _add_structure_stats(out, ds, w)
    if "holding" in ds.dims:
        means = {k: mean_se(x, w) for k, x in tax.holding_series(ds).items()}
        out = add_holding_stats(out, ds, means)
    out.attrs.update(ds.attrs)
    return label(out, outcome_units=outcome_units(ds))


#: units and long_name of every summary statistic, by its name without the group prefix
#: ("basket_", "tranche_", "holding_") and without "_se". MONEY and OUTCOME stand for
#: the run's currency and outcome unit.
MONEY, OUTCOME = "MONEY", "OUTCOME"
STATISTICS: dict[str, tuple[str, str]] = {
    "default_probability": ("1", "P(default): probability that the payment is below the principal"),
    "total_loss_probability": ("1", "P(total loss): probability that nothing is paid"),
    "expected_loss": (MONEY, "expected loss: mean of max(principal - payment, 0)"),
    "mean_multiple": ("1", "E[multiple]: mean money multiple (payment / principal)"),
    "mean_irr": ("1/year", "E[IRR] (mean of scenarios): mean of the scenario IRRs, "
                           "-100% for a total loss"),
    "irr_expected_flows": ("1/year", "IRR of E[flows]: IRR of the mean cash flow at each date"),
    "multiple_quantile": ("1", "quantile of the money multiple"),
    "irr_quantile": ("1/year", "quantile of the scenario IRR"),
    "loss_var": (MONEY, "VaR of loss (principal - payment) at level"),
    "loss_es": (MONEY, "expected shortfall of loss (principal - payment) at level"),
    "expected_overpayment": (MONEY, "state's expected overpayment: payments for units the "
                                    "programme did not cause"),
    "provider_shortfall_probability": ("1", "provider P(shortfall): probability that units "
                                            "truly achieved go unpaid"),
    "expected_provider_shortfall": (OUTCOME, "provider E[shortfall]: expected units truly "
                                             "achieved (up to the cap) but not paid for"),
    "expected_provider_shortfall_value": (MONEY, "provider value: expected shortfall units "
                                                 "times the price per unit"),
    "rmspe": ("log points", "pre-period RMSPE of the control group"),
    "signal_to_noise": ("1", "signal/noise: target units over the sd of the measurement "
                             "error at maturity"),
    "minimum_detectable_effect": (OUTCOME, "minimum detectable effect: the least true effect "
                                           "a one-sided 5% test of the measured units detects "
                                           "with 80% power (q95 - q20 of the prediction error)"),
    "minimum_detectable_effect_share": ("1", "minimum detectable effect as a share of the "
                                             "target units"),
    "pooled_signal_to_noise": ("1", "pooled signal/noise: the summed target over the sd of "
                                    "the summed prediction error of a pooled basket"),
    "lowest_signal_to_noise": ("1", "lowest signal/noise of the member bonds (the "
                                    "noisiest bond's)"),
    "department_payment_mean": (MONEY, "department's mean payment in the year"),
    "department_saving_mean": (MONEY, "department's mean saving in the year"),
    "net_fiscal_position": (MONEY, "department's mean saving minus payment in the year"),
    "department_payment_quantile": (MONEY, "quantile of the department's payment in the year"),
    "probability_pays_more_than_saves": ("1", "probability that the department pays more "
                                              "than it saves in the year"),
    "standalone_es_sum": (MONEY, "sum of the members' stand-alone expected shortfalls"),
    "diversification_benefit": (MONEY, "diversification benefit: sum of the members' "
                                       "stand-alone ES less the basket's"),
    "expected_guarantee": (MONEY, "expected guarantee paid to the tranche"),
    "expected_protection": (MONEY, "expected first-loss protection paid to the tranche"),
    "share": ("1", "tranche's share of the basket principal"),
    "premium": ("1", "tranche premium over its principal"),
    "seniority": ("1", "tranche seniority (0 is the most senior)"),
    "principal": (MONEY, "tranche principal"),
    "after_tax_mean_irr": ("1/year", "after-tax E[IRR] (mean of scenarios)"),
    "loss_probability": ("1", "probability of getting back less than was put in"),
    "after_tax_loss_probability": ("1", "probability that the after-tax flows sum to less "
                                        "than nothing"),
    "default_adjusted_return": ("1/year", "default-adjusted return: IRR of E[flows]"),
    "after_tax_default_adjusted_return": ("1/year", "after-tax IRR of E[flows]"),
    "relief": ("1", "tax relief on the amount invested"),
    "tax_rate": ("1", "tax rate on the return"),
}
_GROUPS = {"basket_": "basket", "tranche_": "tranche", "holding_": "holding"}


def label(out: xr.Dataset, currency: str | None = None, outcome_units: str = "units") -> xr.Dataset:
    """Give every known summary variable ``units`` and ``long_name`` attributes (in place).

    ``currency`` defaults to the run's ``currency`` attribute (GBP);
    ``outcome_units`` is what the provider's shortfall is counted in.
    """
    money = currency or str(out.attrs.get("currency", "GBP"))
    for name, var in out.data_vars.items():
        key, se = str(name), False
        if key.endswith("_se"):
            key, se = key[:-3], True
        group = next((g for p, g in _GROUPS.items() if key.startswith(p)
                      and key[len(p):] in STATISTICS), None)
        if group is not None:
            key = key[len(group) + 1:]
        if key not in STATISTICS:
            continue
        units, long_name = STATISTICS[key]
        units = {MONEY: money, OUTCOME: outcome_units}.get(units, units)
        if group is not None and group != "holding":
            long_name = f"{group} {long_name}"
        if se:
            long_name = f"Monte Carlo standard error of {long_name}"
        var.attrs.update(units=units, long_name=long_name)
    return out


def control_coords(ds: xr.Dataset) -> dict[str, xr.Variable]:
    """Each bond's control group (``control_donor``, ``control_weight``), kept by a summary.

    Coordinates over (bond, donor), so that a ``--stream`` run's summary still
    names the donors (``lobsim export``); none for results written before
    lobsim recorded them.
    """
    return {k: ds[k].variable for k in ("control_donor", "control_weight") if k in ds.variables}


def outcome_units(ds: xr.Dataset) -> str:
    """The unit of outcome counts of a run (claimants, ...), from its ``true_units``."""
    return str(ds.true_units.attrs.get("units", "units")) if "true_units" in ds else "units"


def shortfall_series(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-scenario series of the provider shortfall whose means the summary reports.

    Empty for results written before lobsim reported the shortfall.
    """
    if "provider_shortfall" not in ds:
        return {}
    units = ds.provider_shortfall.values
    return {"provider_shortfall_probability": (units > 0.0).astype(float),
            "expected_provider_shortfall": units,
            "expected_provider_shortfall_value": units * ds.price_per_unit.values}


#: Summary variable of each per-holding mean (lobsim.model.tax.holding_series).
HOLDING_MEANS = {"irr": "holding_mean_irr", "after_tax_irr": "holding_after_tax_mean_irr",
                 "loss": "holding_loss_probability",
                 "after_tax_loss": "holding_after_tax_loss_probability"}


def add_holding_stats(out: xr.Dataset, ds: xr.Dataset,
                      means: dict[str, tuple[np.ndarray, np.ndarray]]) -> xr.Dataset:
    """Pre- and after-tax returns per holding, from the means of ``tax.holding_series``.

    ``means`` maps each series to its (mean, standard error) over scenarios
    (:func:`summarize` and the streaming summary compute them their own way).
    Variables: E[IRR] (``holding_mean_irr``, ``holding_after_tax_mean_irr``),
    the probability of getting back less than was put in
    (``holding_loss_probability``, ``holding_after_tax_loss_probability``),
    each with ``_se``; the default-adjusted returns, IRRs of the expected
    cash flows (``holding_default_adjusted_return``,
    ``holding_after_tax_default_adjusted_return``); relief and tax rate.
    """
    h = ("holding",)
    data: dict[str, Any] = {}
    for key, name in HOLDING_MEANS.items():
        data[name] = (h, means[key][0])
        data[name + "_se"] = (h, means[key][1])
    times = ds.time.values
    data["holding_default_adjusted_return"] = (h, tax.default_adjusted_returns(
        times, means["flow"][0]))
    data["holding_after_tax_default_adjusted_return"] = (h, tax.default_adjusted_returns(
        times, means["after_tax_flow"][0]))
    data["holding_relief"] = (h, ds.holding_relief.values.astype(float))
    data["holding_tax_rate"] = (h, ds.holding_tax_rate.values.astype(float))
    coords = {"holding": ds.holding.values, "holding_class": ("holding", ds.holding_class.values),
              "holding_instrument": ("holding", ds.holding_instrument.values)}
    return out.assign_coords(coords).assign(data)


def summary_dict(s: xr.Dataset) -> dict[str, Any]:
    """A JSON-ready layout of a summary (``schema``: ``lobsim.summary/1``)."""

    def per(dim: str, prefix: str = "") -> dict[str, Any]:
        rows = {}
        for i, key in enumerate(s[dim].values.tolist()):
            row: dict[str, Any] = {}
            for name, var in s.data_vars.items():
                if dim not in var.dims or (prefix and not str(name).startswith(prefix)):
                    continue
                if not prefix and str(name).startswith("basket_"):
                    continue
                v = var.isel({dim: i})
                label = str(name)[len(prefix):]
                if v.ndim == 0:
                    # no measurement noise (a verified outcome): infinite, encoded as null
                    row[label] = (number(float(v)) if label.endswith("signal_to_noise")
                                  else float(v))
                else:
                    other = v.dims[0]
                    if v.ndim == 1:
                        row[label] = {str(k): float(x) for k, x in
                                      zip(s[other].values.tolist(), v.values, strict=True)}
            rows[str(key)] = row
        return rows

    departments: dict[str, Any] = {}
    for d in s.department.values.tolist():
        years = {}
        for y in s.year.values.tolist():
            sel = s.sel(department=d, year=y)
            years[str(y)] = {
                "payment_mean": float(sel.department_payment_mean),
                "payment_mean_se": float(sel.department_payment_mean_se),
                "payment_quantile": {str(q): float(x) for q, x in zip(
                    s.department_quantile.values.tolist(),
                    sel.department_payment_quantile.values, strict=True)},
                "saving_mean": float(sel.department_saving_mean),
                "net_fiscal_position": float(sel.net_fiscal_position),
                "net_fiscal_position_se": float(sel.net_fiscal_position_se),
                "probability_pays_more_than_saves": float(sel.probability_pays_more_than_saves),
            }
        departments[str(d)] = years
    return {
        "schema": "lobsim.summary/1",
        "attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in s.attrs.items()},
        "bonds": per("bond"),
        "baskets": per("basket", "basket_"),
        **({"tranches": per("tranche", "tranche_")} if "tranche" in s.dims else {}),
        **({"holdings": per("holding", "holding_")} if "holding" in s.dims else {}),
        "departments": departments,
    }


def format_summary(s: xr.Dataset) -> str:
    """Plain-text tables of a summary for the terminal (conventions: :mod:`lobsim.analysis.tables`)."""
    n = s.attrs.get("scenarios", "?")
    cur = _currency(s)
    lines = [f"{s.attrs.get('title', 'lobsim results')}: {n} scenarios, seed {s.attrs.get('seed')}",
             ""]
    lines.append("Bonds")
    lines += _investor_table(s, "bond", "")
    lines.append("")
    shortfall = "provider_shortfall_probability" in s
    header = ["bond", f"state E[overpayment] {cur}", "signal/noise", "MDE units",
              "MDE % of target", "RMSPE log"]
    if shortfall:  # the provider's risk, beside the state's (lobsim.model.shortfall)
        header += ["provider P(shortfall)", "provider E[shortfall] units", f"provider value {cur}"]
    rows = []
    for i, key in enumerate(s.bond.values.tolist()):
        v = s.isel(bond=i)
        rm = float(v.rmspe) if "rmspe" in v else float("nan")
        row = [str(key), f"{float(v.expected_overpayment):,.0f}",
               f"{float(v.signal_to_noise):.2f}", *_mde_cells(v), f"{rm:.4f}"]
        if shortfall:
            row += [f"{float(v.provider_shortfall_probability):.4f}",
                    f"{float(v.expected_provider_shortfall):,.1f}",
                    f"{float(v.expected_provider_shortfall_value):,.0f}"]
        rows.append(row)
    lines += tables.render(header, rows)
    lines += ["", "Baskets"]
    lines += _investor_table(s, "basket", "basket_")
    lines += _structure_lines(s)
    lines += pooling.pooled_lines(s)
    if "holding" in s.dims:
        lines += ["", "Investor classes (rows: class:instrument, the id of an "
                      "[[investor_classes]] entry, e.g. sitr for Social Investment Tax Relief, "
                      "then the bond, basket or basket/tranche it holds)", *_holding_table(s)]
    lines += ["", f"Departments (per year; payments and savings in {cur})"]
    header = ["department", "year", f"E[payment] {cur}", f"payment q99 {cur}",
              f"E[saving] {cur}", "P(pays more than saves)"]
    rows = []
    for d in s.department.values.tolist():
        for y in s.year.values.tolist():
            v = s.sel(department=d, year=y)
            pay = float(v.department_payment_mean)
            save = float(v.department_saving_mean)
            if pay == 0.0 and save == 0.0:
                continue
            q99 = float(v.department_payment_quantile.sel(department_quantile=0.99))
            rows.append([str(d), str(y), f"{pay:,.0f}", f"{q99:,.0f}", f"{save:,.0f}",
                         f"{float(v.probability_pays_more_than_saves):.4f}"])
    lines += tables.render(header, rows, left=2)
    lines += ["", tables.INTERVAL_NOTE]
    return "\n".join(lines)


def _mde_cells(v: xr.Dataset) -> list[str]:
    """A bond's MDE in units and in % of its target (lobsim.analysis.power); n/a if absent."""
    if "minimum_detectable_effect" not in v:  # a summary written before lobsim reported it
        return ["n/a", "n/a"]
    return [f"{float(v.minimum_detectable_effect):,.0f}",
            f"{100.0 * float(v.minimum_detectable_effect_share):.0f}%"]


def _currency(s: xr.Dataset) -> str:
    return str(s.attrs.get("currency", "GBP"))


def _scenarios(s: xr.Dataset) -> int:
    try:
        return int(s.attrs.get("scenarios", 0))
    except (TypeError, ValueError):
        return 0


def _investor_table(s: xr.Dataset, dim: str, prefix: str) -> list[str]:
    """Investor statistics of each bond or basket, both IRR conventions labelled."""
    cur = _currency(s)
    flows = prefix + "irr_expected_flows" in s  # absent from summaries saved before it existed
    header = [dim, "P(default)", "P(default) 95%", "P(total loss)", f"E[loss] {cur}",
              "E[multiple]", "E[IRR] (mean of scenarios)",
              *(["IRR of E[flows]"] if flows else []), *IRR_COLUMNS, f"ES99 loss {cur}"]
    rows = []
    n = _scenarios(s)
    for i, key in enumerate(s[dim].values.tolist()):
        v = s.isel({dim: i})

        def g(name: str, _v: xr.Dataset = v) -> float:
            return float(_v[prefix + name])

        lo, hi = stats.probability_interval(g("default_probability"),
                                            g("default_probability_se"), n)
        irr_q = v[prefix + "irr_quantile"]
        rows.append([
            str(key), f"{g('default_probability'):.4f}", tables.interval(float(lo), float(hi)),
            f"{g('total_loss_probability'):.4f}", f"{g('expected_loss'):,.0f}",
            f"{g('mean_multiple'):.4f}", f"{100 * g('mean_irr'):.2f}%",
            *([f"{100 * g('irr_expected_flows'):.2f}%"] if flows else []),
            *(f"{100 * float(irr_q.sel(quantile=q)):.2f}%" for q in IRR_SHOWN),
            f"{float(v[prefix + 'loss_es'].sel(level=0.99)):,.0f}"])
    return tables.render(header, rows)


# --------------------------------------------------------------------------
# Tranches and diversification (model.md §8; lobsim.model.waterfall, docs/baskets.md)
# --------------------------------------------------------------------------
def _add_structure_stats(out: xr.Dataset, ds: xr.Dataset, w: np.ndarray | None) -> xr.Dataset:
    """Tranche statistics and each basket's diversification benefit, if the run has them.

    ``tranche_*``: the investor statistics of :func:`summarize` per tranche,
    plus the expected guarantee and protection paid to it, its share and
    premium. ``basket_diversification_benefit`` (level, basket): the sum of
    the members' stand-alone expected shortfalls less the basket's.
    """
    data: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if "basket_member" in ds:
        data.update(diversification(out, ds.basket_member.values))
        data.update(basket_bond_sums(out, ds.basket_member.values))
    if "tranche_payment" in ds:
        tranche = _investor_stats(ds.tranche_payment, ds.tranche_principal, ds.tranche_irr,
                                  "tranche", w)
        data.update({f"tranche_{k}": v for k, v in tranche.items()})
        for name in ("guarantee", "protection"):
            m, se = mean_se(ds[f"tranche_{name}"], w)
            data[f"tranche_expected_{name}"] = (("tranche",), m)
            data[f"tranche_expected_{name}_se"] = (("tranche",), se)
        for name in ("share", "premium", "seniority", "principal"):
            data[f"tranche_{name}"] = (("tranche",), ds[f"tranche_{name}"].values.astype(float))
        coords = {"tranche": ds.tranche.values, "tranche_basket": ("tranche",
                                                                   ds.tranche_basket.values)}
    return out.assign_coords(coords).assign(data) if data else out


def diversification(out: xr.Dataset, member: np.ndarray) -> dict[str, Any]:
    """Each basket's stand-alone ES sum and diversification benefit from a summary's ES.

    ``member`` (basket, bond) booleans. Used by :func:`summarize` and the
    streaming summary alike (:func:`lobsim.analysis.stats.standalone_sum`).
    """
    alone = stats.standalone_sum(out.loss_es.values, np.asarray(member, bool))
    return {"basket_standalone_es_sum": (("level", "basket"), alone),
            "basket_diversification_benefit": (("level", "basket"), stats.diversification_benefit(
                alone, out.basket_loss_es.values))}


def basket_bond_sums(out: xr.Dataset, member: np.ndarray) -> dict[str, Any]:
    """Each basket's statistics that follow from its bonds' in a summary.

    ``basket_expected_overpayment`` and ``basket_expected_provider_shortfall_value``
    (if the bonds have it): sums of the members' means, since expectations
    add (no standard error: the members' are correlated).
    ``basket_lowest_signal_to_noise``: its noisiest bond's signal-to-noise
    (docs/model.md section 6.10). Used by :func:`summarize` and the streaming
    summary alike.
    """
    m = np.asarray(member, bool)
    data: dict[str, Any] = {}
    for name in ("expected_overpayment", "expected_provider_shortfall_value"):
        if name in out:
            data[f"basket_{name}"] = (("basket",), m.astype(float) @ out[name].values)
    snr = np.where(m, out.signal_to_noise.values[None, :], np.inf)
    data["basket_lowest_signal_to_noise"] = (("basket",), snr.min(axis=1, initial=np.inf))
    return data


def _structure_lines(s: xr.Dataset) -> list[str]:
    """Terminal lines: diversification per basket and the tranche tables."""
    lines: list[str] = []
    cur = _currency(s)
    if "basket_diversification_benefit" in s:
        rows = []
        for i, key in enumerate(s.basket.values.tolist()):
            v = s.isel(basket=i).sel(level=0.99)
            rows.append([str(key), f"{float(v.basket_loss_es):,.0f}",
                         f"{float(v.basket_standalone_es_sum):,.0f}",
                         f"{float(v.basket_diversification_benefit):,.0f}"])
        lines += ["", "Diversification", *tables.render(
            ["basket", f"ES99 basket {cur}", f"sum ES99 alone {cur}", f"benefit {cur}"], rows)]
    if "tranche" not in s.dims:
        return lines
    return [*lines, "", "Tranches", *_tranche_table(s)]


def _tranche_table(s: xr.Dataset) -> list[str]:
    cur = _currency(s)
    header = ["tranche", "P(default)", "P(default) 95%", f"E[loss] {cur}",
              "E[IRR] (mean of scenarios)", *IRR_COLUMNS, f"ES99 loss {cur}", "share",
              "premium", f"E[guarantee] {cur}", f"E[protection] {cur}"]
    rows = []
    n = _scenarios(s)
    for i, key in enumerate(s.tranche.values.tolist()):
        v = s.isel(tranche=i)
        q = v.tranche_irr_quantile
        p = float(v.tranche_default_probability)
        lo, hi = stats.probability_interval(p, float(v.tranche_default_probability_se), n)
        rows.append([
            str(key), f"{p:.4f}", tables.interval(float(lo), float(hi)),
            f"{float(v.tranche_expected_loss):,.0f}", f"{100 * float(v.tranche_mean_irr):.2f}%",
            *(f"{100 * float(q.sel(quantile=x)):.2f}%" for x in IRR_SHOWN),
            f"{float(v.tranche_loss_es.sel(level=0.99)):,.0f}", f"{float(v.tranche_share):.2f}",
            f"{100 * float(v.tranche_premium):.2f}%",
            f"{float(v.tranche_expected_guarantee):,.0f}",
            f"{float(v.tranche_expected_protection):,.0f}"])
    return tables.render(header, rows)


def _holding_table(s: xr.Dataset) -> list[str]:
    header = ["holding", "relief", "tax", "E[IRR] (mean of scenarios)", "after tax",
              "IRR of E[flows]", "after tax", "P(loss)", "after tax"]
    rows = []
    for i, key in enumerate(s.holding.values.tolist()):
        v = s.isel(holding=i)

        def pct(name: str, _v: xr.Dataset = v, digits: int = 2) -> str:
            return f"{100 * float(_v[name]):.{digits}f}%"

        rows.append([
            str(key), pct("holding_relief", digits=0), pct("holding_tax_rate", digits=0),
            pct("holding_mean_irr"), pct("holding_after_tax_mean_irr"),
            pct("holding_default_adjusted_return"),
            pct("holding_after_tax_default_adjusted_return"),
            f"{float(v.holding_loss_probability):.4f}",
            f"{float(v.holding_after_tax_loss_probability):.4f}"])
    return tables.render(header, rows)
