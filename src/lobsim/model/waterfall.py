"""The payment waterfall of a basket's tranches (docs/model.md section 8.3).

The social investment bank "distributes returns with a range of premiums"
(Total Neighbourhood, section 5.2): a basket's outcome payments are shared
among classes of investors (tranches) by seniority. The rules, at each
cash-flow date ``t`` of the basket, in this order (docs/baskets.md):

1. **Accrue.** Each tranche has a *balance*: what it is owed. It grows at the
   tranche's premium, ``B <- B (1 + premium)^(t - t_prev)``, so a tranche
   paid its whole balance earns exactly its premium as IRR.
2. **Interest round** (only tranches with an ``early_coupon``): in seniority
   order, each is paid its coupon for the period, ``early_coupon x principal
   paid in x (t - t_prev)``, at most its balance. Coupons are paid before any
   principal, as interest before principal in a CDO's priority of payments;
   what cannot be paid is not lost but capitalised (it stays in the balance).
3. **Principal round**: in seniority order (1 first), each is paid up to its
   balance (sequential pay).
4. **Residual**: what is left when every balance is paid goes to the most
   junior tranche (its upside, as the E class of the Benevolent Society bond).
5. **Pay-in**: principal that bonds starting at ``t`` raise is paid in by the
   tranches in proportion to their shares and joins their balances. Cash is
   passed through at once: there is no reserve account.
6. **At the basket's final date** (its last maturity), after the rounds:
   a protected tranche's principal shortfall (principal less everything it
   received, undiscounted) is made whole by its protector, outside the
   waterfall (the P class of the Benevolent Society bond); then the
   first-loss guarantee pays ``min(cap, total principal shortfall of the
   at-risk tranches)``, covering shortfalls in seniority order, so that the
   guarantee absorbs investors' losses before any tranche does and what it
   cannot cover stays with the most junior (the Rikers Island bond: Bloomberg
   Philanthropies guaranteed 7.2 of Goldman Sachs' 9.6 million loan).

The waterfall runs scenario by scenario in a jit-compiled loop
(:func:`lobsim.kernels.flows.waterfall`; what does not depend on the
scenario, the accrual factors and coupons per date, is computed here once);
tranche IRRs are found by the engine's root-finder in a jit-compiled loop
(:func:`lobsim.kernels.flows.tranche_irr_rows`), its rows split among
threads (:func:`rows_on_threads`; each row alone, so the same bits).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import xarray as xr

from lobsim.kernels import flows
from lobsim.model.config import Config, Tranche


@dataclass(frozen=True)
class WaterfallResult:
    """Cash flows of a basket's tranches, in the tranches' given order.

    Attributes
    ----------
    received : ndarray, shape (scenarios, tranches, times)
        What each tranche receives at each date, guarantee and protection
        included (they are paid at the final date).
    guarantee, protection : ndarray, shape (scenarios, tranches)
        What the first-loss guarantee and a protected tranche's protector pay
        to each tranche.
    paid_in : ndarray, shape (tranches, times)
        Principal each tranche pays in at each date.
    payment : ndarray, shape (scenarios, tranches)
        Total received, undiscounted; exactly the principal when a top-up
        made the tranche whole (a sum of dates could miss it by rounding and
        flag a default that did not happen).
    """

    received: np.ndarray
    guarantee: np.ndarray
    protection: np.ndarray
    paid_in: np.ndarray
    payment: np.ndarray

    @property
    def principal(self) -> np.ndarray:
        """Principal of each tranche, shape (tranches,)."""
        return np.asarray(self.paid_in.sum(axis=1))


def run_waterfall(cash: np.ndarray, paid_in: np.ndarray, times: np.ndarray,
                  tranches: Sequence[Tranche], guarantee_cap: float | None = None,
                  final: int | None = None) -> WaterfallResult:
    """Share a basket's payments among its tranches (rules in the module docstring).

    Parameters
    ----------
    cash : ndarray, shape (scenarios, times)
        Basket outcome payments at each date.
    paid_in : ndarray, shape (times,)
        Principal the basket raises at each date (bonds starting then).
    times : ndarray, shape (times,)
        Dates in years, increasing.
    tranches : sequence of Tranche
        Shares summing to 1, distinct seniorities.
    guarantee_cap : float, optional
        Cap of the first-loss guarantee (none if not given).
    final : int, optional
        Index of the basket's final date (default: the last date).

    Returns
    -------
    WaterfallResult

    Examples
    --------
    >>> from lobsim.model.config import Tranche
    >>> t = [Tranche(id="senior", share=0.7, seniority=1, premium=0.05, early_coupon=0.0,
    ...              protected=False),
    ...      Tranche(id="junior", share=0.3, seniority=2, premium=0.10, early_coupon=0.0,
    ...              protected=False)]
    >>> w = run_waterfall(np.array([[0.0, 90.0]]), np.array([100.0, 0.0]), np.array([0.0, 4.0]), t)
    >>> w.payment.round(4).tolist()   # senior: 70 x 1.05^4; junior: the rest
    [[85.0854, 4.9146]]
    """
    cash = np.asarray(cash, float)
    n, n_t = cash.shape
    n_k = len(tranches)
    last = n_t - 1 if final is None else final
    share = np.array([t.share for t in tranches])
    growth = 1.0 + np.array([t.premium for t in tranches])
    coupon = np.array([t.early_coupon for t in tranches])
    order = sorted(range(n_k), key=lambda k: tranches[k].seniority)
    junior = order[-1]
    tranche_in = np.outer(share, paid_in)

    # per date, what every scenario shares: whether balances accrue, by how much, and
    # the interest round's coupons (on the principal paid in before the date)
    accrue = np.zeros(n_t, np.bool_)
    factor = np.ones((n_t, n_k))
    due = np.zeros((n_t, n_k))
    paid_principal = np.zeros(n_k)
    prev = float(times[0])
    for j in range(last + 1):
        dt = float(times[j]) - prev
        prev = float(times[j])
        if dt > 0.0:
            accrue[j] = True
            factor[j] = growth**dt
        due[j] = coupon * paid_principal * dt
        paid_principal += tranche_in[:, j]

    received = np.zeros((n, n_k, n_t))
    protection = np.empty((n, n_k))
    guarantee = np.empty((n, n_k))
    payment = np.empty((n, n_k))
    flows.waterfall(np.ascontiguousarray(cash), tranche_in, accrue, factor, due,
                    np.array(order, np.int64), junior, last, tranche_in.sum(axis=1),
                    np.array([t.protected for t in tranches], np.bool_),
                    guarantee_cap is not None,
                    0.0 if guarantee_cap is None else float(guarantee_cap),
                    received, guarantee, protection, payment)
    return WaterfallResult(received=received, guarantee=guarantee, protection=protection,
                           paid_in=tranche_in, payment=payment)


#: Fewest rows a thread of :func:`rows_on_threads` gets: below that, one thread.
MIN_ROWS_PER_THREAD = 4096


def rows_on_threads(kernel: Callable[..., None], n: int, *args: Any) -> None:
    """Run ``kernel(*args, r0, r1)`` over rows ``0:n`` split among the CPUs available.

    ``kernel`` is a ``nogil`` jit-compiled loop that treats each row alone
    (lobsim.kernels.flows.irr_rows), so the result is the same bits for any
    split; the threads are as many as :func:`lobsim.model.blocks.run_blocks`
    uses by default.
    """
    threads = min(len(os.sched_getaffinity(0)), max(1, n // MIN_ROWS_PER_THREAD))
    if threads <= 1:
        kernel(*args, 0, n)
        return
    bounds = np.linspace(0, n, threads + 1).astype(np.int64).tolist()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for done in [pool.submit(kernel, *args, a, b) for a, b in pairwise(bounds)]:
            done.result()


def tranche_irr(result: WaterfallResult, times: np.ndarray) -> np.ndarray:
    """IRR of every tranche in every scenario, shape (scenarios, tranches)."""
    rel = np.ascontiguousarray(times - times[0], float)
    n, n_k, _ = result.received.shape
    out = np.empty((n, n_k))
    rows_on_threads(flows.tranche_irr_rows, n, rel, np.ascontiguousarray(result.paid_in, float),
                    np.ascontiguousarray(result.received, float), out)
    return out


def basket_paid_in(ds: xr.Dataset) -> np.ndarray:
    """Principal each basket raises at each date, shape (basket, time)."""
    member = ds.basket_member.values.astype(float)
    onehot = (ds.start.values[:, None] == ds.time.values[None, :]).astype(float)
    return np.asarray((member * ds.principal.values) @ onehot)


def basket_final_index(ds: xr.Dataset) -> np.ndarray:
    """Index in ``time`` of each basket's final date (its last maturity)."""
    member = ds.basket_member.values.astype(bool)
    last = np.array([ds.maturity.values[m].max() for m in member])
    return np.searchsorted(ds.time.values, last)


def basket_waterfall(ds: xr.Dataset, cfg: Config, basket: str,
                     premiums: dict[str, float] | None = None) -> tuple[WaterfallResult, np.ndarray]:
    """Run one basket's waterfall on simulated results; returns it and tranche IRRs.

    ``premiums`` (tranche id -> premium) overrides the config's premiums, for
    pricing (:mod:`lobsim.analysis.pricing`).
    """
    import dataclasses

    spec = next(b for b in cfg.baskets if b.id == basket)
    tranches = [dataclasses.replace(t, premium=(premiums or {}).get(t.id, t.premium))
                for t in spec.tranches]
    k = list(ds.basket.values).index(basket)
    times = ds.time.values
    result = run_waterfall(ds.basket_cashflow.values[:, k, :], basket_paid_in(ds)[k], times,
                           tranches, None if spec.guarantee is None else spec.guarantee.cap,
                           int(basket_final_index(ds)[k]))
    return result, tranche_irr(result, times)


def add_tranches(ds: xr.Dataset, cfg: Config) -> xr.Dataset:
    """Add the tranche results of every basket with tranches to ``ds``.

    New dimension ``tranche`` (labels ``basket/tranche``) with coordinates
    ``tranche_basket``, ``tranche_id``, ``tranche_share``,
    ``tranche_seniority``, ``tranche_premium``, ``tranche_early_coupon``,
    ``tranche_protected``, ``tranche_principal``; variables
    ``tranche_cashflow`` (scenario, tranche, time), ``tranche_payment``,
    ``tranche_irr``, ``tranche_guarantee``, ``tranche_protection`` (scenario,
    tranche) and ``tranche_paid_in`` (tranche, time); ``guarantee_cap``
    (basket; 0 for a basket without a guarantee: its guarantor pays nothing). ``ds`` is returned unchanged if no
    basket has tranches.
    """
    with_tranches = [b for b in cfg.baskets if b.tranches]
    if not with_tranches:
        return ds
    parts = []
    for spec in with_tranches:
        result, irr = basket_waterfall(ds, cfg, spec.id)
        parts.append((spec, result, irr))
    labels = [f"{s.id}/{t.id}" for s, _, _ in parts for t in s.tranches]
    cat = {name: np.concatenate([getattr(r, name) for _, r, _ in parts], axis=1)
           for name in ("received", "guarantee", "protection", "payment")}
    paid_in = np.concatenate([r.paid_in for _, r, _ in parts], axis=0)
    irr = np.concatenate([i for _, _, i in parts], axis=1)
    tr = [t for s, _, _ in parts for t in s.tranches]
    money = {"units": ds.principal.attrs.get("units", "")}
    st = ("scenario", "tranche")
    data: dict[str, Any] = {
        "tranche_cashflow": (("scenario", "tranche", "time"), cat["received"], {
            **money, "long_name": "payments to each tranche at each cash-flow time "
                                  "(guarantee and protection included)"}),
        "tranche_payment": (st, cat["payment"], {
            **money, "long_name": "total payments to the tranche"}),
        "tranche_irr": (st, irr, {"units": "1/year", "long_name": "tranche investors' IRR"}),
        "tranche_guarantee": (st, cat["guarantee"], {
            **money, "long_name": "first-loss guarantee paid to the tranche"}),
        "tranche_protection": (st, cat["protection"], {
            **money, "long_name": "principal protection paid to a protected tranche"}),
        "tranche_paid_in": (("tranche", "time"), paid_in, {
            **money, "long_name": "principal the tranche pays in at each time"}),
        "guarantee_cap": (("basket",), np.array([
            next((b.guarantee.cap for b in cfg.baskets if b.id == key and b.guarantee), 0.0)
            for key in ds.basket.values.tolist()]), money),
    }
    coords = {
        "tranche": labels,
        "tranche_basket": ("tranche", [s.id for s, _, _ in parts for _ in s.tranches]),
        "tranche_id": ("tranche", [t.id for t in tr]),
        "tranche_share": ("tranche", np.array([t.share for t in tr])),
        "tranche_seniority": ("tranche", np.array([t.seniority for t in tr])),
        "tranche_premium": ("tranche", np.array([t.premium for t in tr]), {"units": "1/year"}),
        "tranche_early_coupon": ("tranche", np.array([t.early_coupon for t in tr]),
                                 {"units": "1/year"}),
        "tranche_protected": ("tranche", np.array([t.protected for t in tr])),
        "tranche_principal": ("tranche", paid_in.sum(axis=1), money),
    }
    return ds.assign_coords(coords).assign(data)
