"""After-tax returns of investor classes (Total Neighbourhood, section 5.2).

The report expects tax incentives to bring investors in: Social Finance's
proposals to make payments on social impact bonds tax exempt and to give
charitable investors a rebate (Bolton and Savell 2010, p. 25); the UK later
introduced Social Investment Tax Relief (2014), income tax relief of 30% of
the amount invested. The engine takes the rates from the config
(``[[investor_classes]]``, docs/config.md); each class holds bonds directly
(those paying at several dates too, date by date), tranches of baskets, or
whole baskets, and each (class, instrument) pair is a *holding*.

The rules (docs/decisions.md), on the instrument's own cash-flow dates:

- **Relief** on the amount invested: ``relief x paid_in`` comes back at the
  date the capital is paid in.
- **Tax on the return**, capital first: what is received counts as a return
  of capital until the capital paid in so far is back; beyond that it is
  taxed at ``tax_rate`` when received. With ``C(t)`` the capital paid in
  before ``t`` (at a date, payments come before pay-ins, as in the
  waterfall) and ``R(t)`` the payments received up to ``t``, the gain taxed
  by ``t`` is
  ``G(t) = max over s <= t of max(0, R(s) - C(s))``, and the tax at ``t`` is
  ``tax_rate x (G(t) - G(t-))``. A loss is not relieved.

After-tax IRR is the IRR of ``received - tax - (1 - relief) x paid_in`` per
scenario; the *default-adjusted return* is the IRR of the expected cash
flows (mean over scenarios at each date), the return a holder of many such
claims earns, defaults included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from lobsim.kernels import flows as K
from lobsim.model.config import Config
from lobsim.model.waterfall import basket_paid_in, rows_on_threads

#: Relative size of a net after-tax cash shortfall below which it is rounding.
LOSS_ROUNDING = 1e-9


@dataclass(frozen=True)
class Holding:
    """What one investor class holds of one instrument, and its tax treatment."""

    investor_class: str
    instrument: str
    kind: str  # "bond", "tranche" or "basket"
    relief: float
    tax_rate: float

    @property
    def label(self) -> str:
        """``class:instrument``, the coordinate of the ``holding`` dimension."""
        return f"{self.investor_class}:{self.instrument}"


def holdings(cfg: Config) -> list[Holding]:
    """Every (investor class, instrument) pair of ``cfg``, classes in config order.

    A loaded config holds only instruments it defines; a config derived from
    it in code (pricing keeps one basket, :mod:`lobsim.analysis.maturity` one bond)
    may have dropped some, and their holdings are left out of its runs.
    """
    present = {"bond": {b.id for b in cfg.bonds}, "basket": {k.id for k in cfg.baskets},
               "tranche": {f"{k.id}/{t.id}" for k in cfg.baskets for t in k.tranches}}
    return [Holding(ic.id, inst, kind, ic.relief, ic.tax_rate)
            for ic in cfg.investor_classes
            for kind, insts in (("bond", ic.bonds), ("tranche", ic.tranches),
                                ("basket", ic.baskets))
            for inst in insts if inst in present[kind]]


def instrument_flows(ds: xr.Dataset, kind: str, instrument: str) -> tuple[np.ndarray, np.ndarray]:
    """Capital paid in and payments received by an instrument on the ``time`` grid.

    Returns
    -------
    paid_in : ndarray, shape (times,)
    received : ndarray, shape (scenarios, times)
        A bond held directly pays at maturity, or date by date
        (``dated_payment``) if it pays at several dates.
    """
    times = ds.time.values
    if kind == "bond":
        b = list(ds.bond.values).index(instrument)
        paid_in = np.where(times == ds.start.values[b], ds.principal.values[b], 0.0)
        received = np.zeros((ds.sizes["scenario"], times.size))
        # results written before dated_payment hold only bonds paying at one date
        slots = (np.flatnonzero(ds.payment_bond.values == instrument)
                 if "payment_bond" in ds.coords else np.zeros(0, np.int64))
        if slots.size == 0:
            received[:, int(np.searchsorted(times, ds.maturity.values[b]))] = \
                ds.investor_payment.values[:, b]
        for slot in slots.tolist():  # every payment date is on the time grid (lobsim.model.world)
            received[:, int(np.searchsorted(times, ds.payment_time.values[slot]))] += \
                ds.dated_payment.values[:, slot]
        return paid_in, received
    if kind == "tranche":
        k = list(ds.tranche.values).index(instrument)
        return ds.tranche_paid_in.values[k], ds.tranche_cashflow.values[:, k, :]
    k = list(ds.basket.values).index(instrument)
    return basket_paid_in(ds)[k], ds.basket_cashflow.values[:, k, :]


def instrument_irr(ds: xr.Dataset, kind: str, instrument: str) -> np.ndarray:
    """The pre-tax IRR the run already holds for an instrument, shape (scenarios,)."""
    name, dim = {"bond": ("irr", "bond"), "tranche": ("tranche_irr", "tranche"),
                 "basket": ("basket_irr", "basket")}[kind]
    return np.asarray(ds[name].sel({dim: instrument}).values)


def instrument_default(ds: xr.Dataset, kind: str, instrument: str) -> np.ndarray:
    """Whether the instrument paid back less than its principal, shape (scenarios,)."""
    if kind == "bond":
        return np.asarray(ds.default.sel(bond=instrument).values)
    prefix = f"{kind}_"
    sel = {kind: instrument}
    return np.asarray(ds[prefix + "payment"].sel(sel).values
                      < ds[prefix + "principal"].sel(sel).values)


def after_tax_flows(paid_in: np.ndarray, received: np.ndarray, relief: float,
                    tax_rate: float) -> np.ndarray:
    """Net after-tax cash flows, shape (scenarios, times) (rules in the module docstring).

    Examples
    --------
    >>> after_tax_flows(np.array([100.0, 0.0]), np.array([[0.0, 121.0]]), 0.3, 0.2)
    array([[-70. , 116.8]])
    """
    paid_in = np.asarray(paid_in, float)
    rec = np.asarray(received, float)
    flat = rec.reshape(-1, rec.shape[-1])
    out = np.empty(flat.shape)
    K.after_tax_flows(_capital_before(paid_in), paid_in, flat, 1.0 - relief, tax_rate, out)
    return out.reshape(rec.shape)


def _capital_before(paid_in: np.ndarray) -> np.ndarray:
    """Capital paid in before each date: at a date, payments come before pay-ins
    (as in the waterfall), so capital paid in that day cannot shelter them."""
    return np.asarray(np.cumsum(paid_in) - paid_in)


def irr(times: np.ndarray, flows: np.ndarray) -> np.ndarray:
    """IRR of cash flows at ``times`` (years), per row of ``flows`` (or of one 1-D row).

    Times are taken from the first date with a flow, so that the grid of a
    whole run can be used for an instrument that starts later.

    Examples
    --------
    >>> float(irr(np.array([0.0, 2.0]), np.array([-100.0, 121.0])).round(12))
    0.1
    """
    f = np.atleast_2d(np.asarray(flows, float))
    used = np.flatnonzero((f != 0.0).any(axis=0))
    first = int(used[0]) if used.size else 0
    rel = np.ascontiguousarray(times[first:] - times[first], float)
    out = np.empty(f.shape[0])
    rows_on_threads(K.irr_rows, f.shape[0], rel, np.ascontiguousarray(f[:, first:]), out)
    return out if np.ndim(flows) == 2 else out[0]


def add_after_tax(ds: xr.Dataset, cfg: Config) -> xr.Dataset:
    """Add the after-tax results of every investor class of ``cfg`` to ``ds``.

    New dimension ``holding`` (labels ``class:instrument``) with coordinates
    ``holding_class``, ``holding_instrument``, ``holding_kind``,
    ``holding_relief`` and ``holding_tax_rate``; variables
    ``holding_paid_in`` (holding, time), the capital paid in before relief,
    and ``after_tax_irr`` (scenario, holding). ``ds`` is returned unchanged
    without investor classes.
    """
    hs = holdings(cfg)
    if not hs:
        return ds
    times = ds.time.values
    paid = np.empty((len(hs), times.size))
    after = np.empty((ds.sizes["scenario"], len(hs)))
    for h, hold in enumerate(hs):
        paid[h], received = instrument_flows(ds, hold.kind, hold.instrument)
        after[:, h] = irr(times, after_tax_flows(paid[h], received, hold.relief, hold.tax_rate))
    money = {"units": ds.principal.attrs.get("units", "")}
    data: dict[str, Any] = {
        "holding_paid_in": (("holding", "time"), paid, {
            **money, "long_name": "capital the holding pays in at each time, before relief"}),
        "after_tax_irr": (("scenario", "holding"), after, {
            "units": "1/year", "long_name": "investor IRR after relief and tax on the return"}),
    }
    coords = {
        "holding": [h.label for h in hs],
        "holding_class": ("holding", [h.investor_class for h in hs]),
        "holding_instrument": ("holding", [h.instrument for h in hs]),
        "holding_kind": ("holding", [h.kind for h in hs]),
        "holding_relief": ("holding", np.array([h.relief for h in hs]), {"units": "1"}),
        "holding_tax_rate": ("holding", np.array([h.tax_rate for h in hs]), {"units": "1"}),
    }
    return ds.assign_coords(coords).assign(data)


def holding_series(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-scenario series of every holding that the summaries reduce.

    Returns
    -------
    dict
        ``irr`` and ``after_tax_irr`` (scenarios, holdings); ``loss``, the
        instrument's default (less back than its principal), and
        ``after_tax_loss``, whether the after-tax flows sum to less than
        nothing (scenarios, holdings); ``flow`` and
        ``after_tax_flow`` (scenarios, holdings, times), net cash flows.
    """
    times = ds.time.values
    n, n_h = ds.sizes["scenario"], ds.sizes["holding"]
    out = {name: np.empty((n, n_h)) for name in ("irr", "after_tax_irr")}
    out.update({name: np.empty((n, n_h), np.bool_) for name in ("loss", "after_tax_loss")})
    out.update({name: np.empty((n, n_h, times.size)) for name in ("flow", "after_tax_flow")})
    for h in range(n_h):
        kind = str(ds.holding_kind.values[h])
        inst = str(ds.holding_instrument.values[h])
        paid, received = instrument_flows(ds, kind, inst)
        paid = np.ascontiguousarray(paid, float)
        out["irr"][:, h] = instrument_irr(ds, kind, inst)
        out["after_tax_irr"][:, h] = ds.after_tax_irr.values[:, h]
        out["loss"][:, h] = instrument_default(ds, kind, inst)
        # pre- and after-tax flows written in place, and the after-tax loss: less back
        # than put in; a tranche made whole by its guarantee gets its principal back
        # exactly, which a sum over dates may miss by rounding (kernels.flows.holding_flows)
        K.holding_flows(_capital_before(paid), paid, np.asarray(received, float),
                        1.0 - float(ds.holding_relief.values[h]),
                        float(ds.holding_tax_rate.values[h]), -LOSS_ROUNDING * paid.sum(),
                        out["flow"][:, h], out["after_tax_flow"][:, h],
                        out["after_tax_loss"][:, h])
    return out


def default_adjusted_returns(times: np.ndarray, mean_flows: np.ndarray) -> np.ndarray:
    """IRR of each holding's expected cash flows, ``mean_flows`` (holdings, times)."""
    return np.array([irr(times, row) for row in mean_flows])
