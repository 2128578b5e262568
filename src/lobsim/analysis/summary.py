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

from lobsim.analysis import stats
from lobsim.analysis.stats import mean_se
from lobsim.jsonio import number
from lobsim.model import tax

QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)
TAIL_LEVELS = (0.95, 0.99, 0.995)
DEPARTMENT_QUANTILES = (0.5, 0.95, 0.99)


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
        probabilities, expected loss, mean multiple and IRR, their quantiles at
        ``quantile``, VaR and expected shortfall of loss (principal minus
        payment) at ``level``; per bond the expected overpayment and the
        provider's shortfall (probability, units, value; lobsim.model.shortfall),
        per basket their sums over its bonds and its lowest signal-to-noise
        (:func:`basket_bond_sums`);
        per holding of an investor class (dimension ``holding``, if the run
        has investor classes) pre- and after-tax E[IRR], default-adjusted
        returns and loss probabilities (:func:`add_holding_stats`); per
        department and year the mean and quantiles of payments and savings,
        the mean net fiscal position (saving minus payment) and the
        probability of paying more than is saved. ``*_se`` variables are the
        Monte Carlo standard errors.
    """
    w = stats.run_weights(ds)
    bond = _investor_stats(ds.investor_payment, ds.principal, ds.irr, "bond", w)
    basket = _investor_stats(ds.basket_payment, ds.basket_principal, ds.basket_irr, "basket", w)
    data: dict[str, Any] = dict(bond)
    data.update({f"basket_{k}": v for k, v in basket.items()})
    over, over_se = mean_se(ds.overpayment, w)
    data["expected_overpayment"] = (("bond",), over)
    data["expected_overpayment_se"] = (("bond",), over_se)
    # the provider's mirror risk: units truly achieved but not paid (lobsim.model.shortfall)
    for name, x in shortfall_series(ds).items():
        m, se = mean_se(x, w)
        data[name] = (("bond",), m)
        data[name + "_se"] = (("bond",), se)
    data["rmspe"] = (("bond",), ds.rmspe.values)
    # docs/model.md section 6.10: target over the sd of measured units under no effect
    noise = ds.prediction_error.std("scenario").values
    with np.errstate(divide="ignore"):  # verified outcomes have no noise: infinite
        data["signal_to_noise"] = (("bond",), ds.target_units.values / noise)

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
    out = xr.Dataset(data, coords=coords)
    out = _add_structure_stats(out, ds, w)
    if "holding" in ds.dims:
        means = {k: mean_se(x, w) for k, x in tax.holding_series(ds).items()}
        out = add_holding_stats(out, ds, means)
    out.attrs.update(ds.attrs)
    return out


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
    """Plain-text tables of a summary for the terminal."""
    n = s.attrs.get("scenarios", "?")
    lines = [f"{s.attrs.get('title', 'lobsim results')}: {n} scenarios, seed {s.attrs.get('seed')}",
             ""]

    def investor_table(dim: str, prefix: str) -> None:
        lines.append(f"{'':<24}{'P(default)':>16}{'P(total loss)':>15}{'E[loss]':>14}"
                     f"{'E[multiple]':>13}{'E[IRR]':>10}{'IRR 5%':>9}{'IRR 50%':>9}"
                     f"{'ES99 loss':>14}")
        for i, key in enumerate(s[dim].values.tolist()):
            v = s.isel({dim: i})

            def g(name: str, _v: xr.Dataset = v) -> float:
                return float(_v[prefix + name])

            irr_q = v[prefix + "irr_quantile"]
            es = v[prefix + "loss_es"].sel(level=0.99)
            lines.append(
                f"{str(key)[:24]:<24}{g('default_probability'):>9.4f} ±{g('default_probability_se'):.4f}"
                f"{g('total_loss_probability'):>15.4f}{g('expected_loss'):>14,.0f}"
                f"{g('mean_multiple'):>13.4f}{100 * g('mean_irr'):>9.2f}%"
                f"{100 * float(irr_q.sel(quantile=0.05)):>8.2f}%"
                f"{100 * float(irr_q.sel(quantile=0.5)):>8.2f}%{float(es):>14,.0f}"
            )

    lines.append("Bonds")
    investor_table("bond", "")
    lines.append("")
    shortfall = "provider_shortfall_probability" in s
    lines.append(f"{'':<24}{'E[overpayment]':>16}{'signal/noise':>14}{'RMSPE':>9}"
                 + (f"{'P(shortfall)':>14}{'E[shortfall]':>14}{'value':>14}" if shortfall else ""))
    for i, key in enumerate(s.bond.values.tolist()):
        v = s.isel(bond=i)
        rm = float(v.rmspe) if "rmspe" in v else float("nan")
        line = (f"{str(key)[:24]:<24}{float(v.expected_overpayment):>16,.0f}"
                f"{float(v.signal_to_noise):>14.2f}{rm:>9.4f}")
        if shortfall:  # the provider's risk, beside the state's (lobsim.model.shortfall)
            line += (f"{float(v.provider_shortfall_probability):>14.4f}"
                     f"{float(v.expected_provider_shortfall):>14,.1f}"
                     f"{float(v.expected_provider_shortfall_value):>14,.0f}")
        lines.append(line)
    lines += ["", "Baskets"]
    investor_table("basket", "basket_")
    lines += _structure_lines(s)
    if "holding" in s.dims:
        lines += ["", "Investor classes (E[IRR]; DA: default-adjusted return, the IRR of the "
                      "expected cash flows)", *_holding_table(s)]
    lines += ["", "Departments (per year: mean payment, 99% quantile, mean saving, "
              "P(pays more than saves))"]
    for d in s.department.values.tolist():
        for y in s.year.values.tolist():
            v = s.sel(department=d, year=y)
            pay = float(v.department_payment_mean)
            save = float(v.department_saving_mean)
            if pay == 0.0 and save == 0.0:
                continue
            lines.append(
                f"  {d:<14} year {y:<3} pays {pay:>14,.0f}  q99 "
                f"{float(v.department_payment_quantile.sel(department_quantile=0.99)):>14,.0f}"
                f"  saves {save:>14,.0f}  P {float(v.probability_pays_more_than_saves):.4f}")
    return "\n".join(lines)


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
    if "basket_diversification_benefit" in s:
        lines += ["", f"{'Diversification':<24}{'ES99 basket':>14}{'sum ES99 alone':>16}"
                      f"{'benefit':>14}"]
        for i, key in enumerate(s.basket.values.tolist()):
            v = s.isel(basket=i).sel(level=0.99)
            lines.append(f"{str(key)[:24]:<24}{float(v.basket_loss_es):>14,.0f}"
                         f"{float(v.basket_standalone_es_sum):>16,.0f}"
                         f"{float(v.basket_diversification_benefit):>14,.0f}")
    if "tranche" not in s.dims:
        return lines
    return [*lines, "", "Tranches", *_tranche_table(s)]


def _tranche_table(s: xr.Dataset) -> list[str]:
    lines = [f"{'':<24}{'P(default)':>16}{'E[loss]':>14}{'E[IRR]':>10}{'IRR 5%':>9}"
             f"{'IRR 50%':>9}{'ES99 loss':>14}{'share':>7}{'premium':>9}{'E[guarantee]':>14}"
             f"{'E[protection]':>15}"]
    for i, key in enumerate(s.tranche.values.tolist()):
        v = s.isel(tranche=i)
        q = v.tranche_irr_quantile
        lines.append(
            f"{str(key)[:24]:<24}{float(v.tranche_default_probability):>9.4f} "
            f"±{float(v.tranche_default_probability_se):.4f}"
            f"{float(v.tranche_expected_loss):>14,.0f}{100 * float(v.tranche_mean_irr):>9.2f}%"
            f"{100 * float(q.sel(quantile=0.05)):>8.2f}%{100 * float(q.sel(quantile=0.5)):>8.2f}%"
            f"{float(v.tranche_loss_es.sel(level=0.99)):>14,.0f}{float(v.tranche_share):>7.2f}"
            f"{100 * float(v.tranche_premium):>8.2f}%"
            f"{float(v.tranche_expected_guarantee):>14,.0f}"
            f"{float(v.tranche_expected_protection):>15,.0f}")
    return lines


def _holding_table(s: xr.Dataset) -> list[str]:
    lines = [f"{'':<32}{'relief':>7}{'tax':>6}{'E[IRR]':>9}{'after tax':>10}{'DA':>9}"
             f"{'DA after tax':>13}{'P(loss)':>9}{'after tax':>10}"]
    for i, key in enumerate(s.holding.values.tolist()):
        v = s.isel(holding=i)

        def pct(name: str, _v: xr.Dataset = v) -> float:
            return 100 * float(_v[name])

        lines.append(
            f"{str(key)[:32]:<32}{pct('holding_relief'):>6.0f}%{pct('holding_tax_rate'):>5.0f}%"
            f"{pct('holding_mean_irr'):>8.2f}%{pct('holding_after_tax_mean_irr'):>9.2f}%"
            f"{pct('holding_default_adjusted_return'):>8.2f}%"
            f"{pct('holding_after_tax_default_adjusted_return'):>12.2f}%"
            f"{float(v.holding_loss_probability):>9.4f}"
            f"{float(v.holding_after_tax_loss_probability):>10.4f}")
    return lines
