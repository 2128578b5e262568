"""The two IRR conventions of an investor's return (docs/model.md section 7.1).

- **E[IRR]** (``mean_irr`` of the summary): the mean over scenarios of each
  scenario's IRR, a total loss counting as -100%. It is what one investor
  holding one bond should expect, and a few total losses drag it far down.
- **IRR of expected flows** (``irr_expected_flows``): the IRR of the mean cash
  flow at each date, the return a holder of many such bonds earns, defaults
  included (what :mod:`lobsim.model.tax` calls the default-adjusted return).
  For one payment at maturity ``T`` years after the start with expected
  multiple ``m`` it is exactly ``m**(1 / T) - 1``.

The report's Appendix bond (configs/birmingham_jsa.toml) shows the gap: E[IRR]
about -15.6%, IRR of expected flows about -5.8% (E[multiple] 0.79).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lobsim.analysis.stats import mean_se
from lobsim.kernels.irr import irr_guess, solve_irr
from lobsim.model.waterfall import basket_paid_in

#: The ``--irr-convention`` names of ``lobsim price`` and what each is.
CONVENTIONS = {"mean": "E[IRR] (mean of scenarios)",
               "expected-flows": "IRR of E[flows]"}


def single_payment_irr(multiple: Any, term: Any) -> np.ndarray:
    """``multiple**(1 / term) - 1``: the IRR of one payment ``term`` years after the principal."""
    m = np.asarray(multiple, float)
    t = np.asarray(term, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(m > 0.0, np.power(np.maximum(m, 0.0), 1.0 / t) - 1.0, -1.0)


def flows_irr(times: np.ndarray, flows: np.ndarray) -> float:
    """IRR of one row of cash flows at ``times`` (years) by :func:`lobsim.kernels.irr.solve_irr`.

    Times count from the first date with a flow, so that a run's time grid
    serves an instrument that starts later. -1 if nothing comes back.
    """
    f = np.asarray(flows, float)
    used = np.flatnonzero(f != 0.0)
    if used.size == 0:
        return -1.0
    rel = np.ascontiguousarray(np.asarray(times, float)[used[0]:] - times[used[0]])
    row = np.ascontiguousarray(f[used[0]:])
    return float(solve_irr(rel, row, row.size, irr_guess(rel, row, row.size)))


def expected_flows_irr(times: np.ndarray, paid_in: np.ndarray, received: np.ndarray,
                       w: np.ndarray | None = None) -> tuple[float, float]:
    """IRR of the expected cash flows and its Monte Carlo standard error (delta method).

    Parameters
    ----------
    times : ndarray, shape (T,)
        Dates of the flows (years).
    paid_in : ndarray, shape (T,)
        Principal paid in at each date (the same in every scenario).
    received : ndarray, shape (scenarios, T)
        Payments received at each date.
    w : ndarray, optional
        Importance weights (:func:`lobsim.analysis.stats.weights`).

    Returns
    -------
    irr, se : float
        ``se`` linearises the root ``r`` of ``NPV(r) = 0`` in the mean flows:
        ``sd(PV_r of a scenario's payments) / sqrt(n) / |NPV'(r)|``.
    """
    received = np.asarray(received, float)
    mean = mean_se(received, w)[0]
    flows = mean - np.asarray(paid_in, float)
    r = flows_irr(times, flows)
    if r <= -1.0:
        return r, math.nan
    used = np.flatnonzero(flows != 0.0)
    t = np.asarray(times, float) - times[used[0]]
    disc = (1.0 + r) ** -t
    slope = float(np.sum(-t * flows * disc)) / (1.0 + r)  # d NPV / d r
    pv = received @ disc
    se = mean_se(pv, w)[1]
    return r, float(se) / abs(slope) if slope != 0.0 else math.inf


def irr_expected_flows(ds: Any, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """IRR of expected flows per bond and per basket of a results Dataset.

    Returns
    -------
    bond, basket : ndarray
        Rates a year, in the order of ``ds.bond`` and ``ds.basket``
        (:func:`irr_of_mean_flows` of the run's means).
    """
    dated = (mean_se(ds.dated_payment, w)[0] if "dated_payment" in ds
             and ds.sizes.get("payment", 0) else np.zeros(0))
    return irr_of_mean_flows(ds, mean_se(ds.multiple, w)[0], dated,
                             mean_se(ds.basket_cashflow, w)[0])


def irr_of_mean_flows(ds: Any, mean_multiple: np.ndarray, mean_dated: np.ndarray,
                      mean_basket_cashflow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IRR of expected flows from the means a summary holds (:func:`summarize` or streaming).

    A bond paying once (at maturity) takes the closed form
    :func:`single_payment_irr` of its mean multiple; a bond paying at several
    dates the IRR of its mean payment at each date (``mean_dated``, by slot
    of ``ds.payment_bond``); a basket that of its mean cash flow at each date
    (``mean_basket_cashflow``, (basket, time)) less its principals.
    ``ds`` supplies only the layout (times, starts, principals, slots).
    """
    times = ds.time.values
    slots = (ds.payment_bond.values if "payment_bond" in ds.coords and mean_dated.size
             else np.zeros(0, str))
    bond = np.empty(ds.sizes["bond"])
    for i, b in enumerate(ds.bond.values.tolist()):
        mine = np.flatnonzero(slots == b)
        if mine.size:
            flows = np.zeros(times.size)
            flows[times == ds.start.values[i]] -= ds.principal.values[i]
            for slot in mine.tolist():  # every payment date is on the time grid
                flows[int(np.searchsorted(times, ds.payment_time.values[slot]))] += \
                    mean_dated[slot]
            bond[i] = flows_irr(times, flows)
        else:
            bond[i] = single_payment_irr(mean_multiple[i],
                                         ds.maturity.values[i] - ds.start.values[i])
    paid = basket_paid_in(ds)
    basket = np.array([flows_irr(times, np.asarray(mean_basket_cashflow[k]) - paid[k])
                       for k in range(paid.shape[0])])
    return bond, basket
