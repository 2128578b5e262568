"""The per-scenario series a streaming summary reduces, straight from the kernel's outputs.

A streaming run used to label every block as an xarray Dataset
(:func:`lobsim.model.simulate.finish_run`) and then read its series back
(:meth:`lobsim.scale.streaming.Plan.block_arrays`); labelling, and the
derived quantities computed twice (after-tax flows in
:func:`lobsim.model.tax.add_after_tax` and again in
:func:`lobsim.model.tax.holding_series`), cost more than the reductions.
:class:`BlockSeries` computes the same series from the block's
:class:`~lobsim.kernels.contract.Outputs`: everything that does not depend on
the scenarios (principals, tranche terms, each holding's capital paid in and
where its payments fall) is fixed once from the run's labelled one-scenario
template; the derived per-scenario quantities come from the model's public
functions (:func:`lobsim.model.shortfall.provider_shortfall`,
:func:`lobsim.model.waterfall.run_waterfall` and
:func:`~lobsim.model.waterfall.tranche_irr`,
:func:`lobsim.model.tax.after_tax_flows` and :func:`~lobsim.model.tax.irr`)
on the same arrays as the labelled path, so every series is bit for bit what
``Plan.block_arrays(finish_run(...))`` gives (tests/test_block_series.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from lobsim.analysis.pooling import summed_errors
from lobsim.kernels.contract import Outputs
from lobsim.model import tax as _tax
from lobsim.model.config import Config, Tranche
from lobsim.model.shortfall import provider_shortfall
from lobsim.model.waterfall import basket_final_index, basket_paid_in, run_waterfall, tranche_irr
from lobsim.model.world import World


@dataclass(frozen=True)
class TranchedBasket:
    """A basket with tranches: what :func:`lobsim.model.waterfall.basket_waterfall` reads."""

    index: int  # in the basket dimension
    tranches: tuple[Tranche, ...]
    guarantee_cap: float | None
    paid_in: np.ndarray  # (time,)
    final: int


@dataclass(frozen=True)
class HoldingFlows:
    """Where a holding's cash comes from (:func:`lobsim.model.tax.instrument_flows`).

    ``kind`` ``bond``: the bond's payment at ``maturity_time``, or its
    ``dated_payment`` ``slots`` at ``slot_times`` (in slot order) if it pays
    at several dates; ``tranche`` / ``basket``: column ``index`` of the
    tranche or basket cash flows.
    """

    kind: str
    index: int
    paid_in: np.ndarray  # (time,)
    relief: float
    tax_rate: float
    maturity_time: int = -1
    slots: tuple[int, ...] = ()
    slot_times: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class BlockSeries:
    """The per-scenario series of a run's blocks, computed from kernel outputs.

    Build with :meth:`of_run`; :meth:`arrays` returns the dict of
    :meth:`lobsim.scale.streaming.Plan.block_arrays` for one block.
    """

    world: World
    principal: np.ndarray
    basket_principal: np.ndarray
    price_per_unit: np.ndarray
    times: np.ndarray
    baskets: tuple[TranchedBasket, ...]
    tranche_principal: np.ndarray
    holdings: tuple[HoldingFlows, ...]

    @classmethod
    def of_run(cls, world: World, cfg: Config, template: xr.Dataset) -> BlockSeries:
        """The series of a run of ``world`` built from ``cfg``, labelled like ``template``.

        ``template``: the run's labelled rows (:func:`lobsim.model.simulate.finish_run`;
        one scenario is enough, only the scenario-free variables are read).
        """
        times = template.time.values
        baskets = []
        for spec in (b for b in cfg.baskets if b.tranches):
            # in cfg order, as add_tranches concatenates them (the tranche dimension)
            k = list(template.basket.values).index(spec.id)
            baskets.append(TranchedBasket(
                index=k, tranches=tuple(spec.tranches),
                guarantee_cap=None if spec.guarantee is None else spec.guarantee.cap,
                paid_in=np.asarray(basket_paid_in(template)[k]),
                final=int(basket_final_index(template)[k])))
        holdings = []
        if "holding" in template.dims:
            for h in range(template.sizes["holding"]):
                kind = str(template.holding_kind.values[h])
                inst = str(template.holding_instrument.values[h])
                paid, _ = _tax.instrument_flows(template, kind, inst)
                maturity = -1
                slots: tuple[int, ...] = ()
                slot_times: tuple[int, ...] = ()
                if kind == "bond":
                    index = list(template.bond.values).index(inst)
                    maturity = int(np.searchsorted(times, template.maturity.values[index]))
                    slots = tuple(np.flatnonzero(template.payment_bond.values == inst).tolist())
                    slot_times = tuple(
                        int(np.searchsorted(times, template.payment_time.values[slot]))
                        for slot in slots)
                else:
                    index = list(template[kind].values).index(inst)  # tranche or basket
                holdings.append(HoldingFlows(
                    kind=kind, index=index, paid_in=paid,
                    relief=float(template.holding_relief.values[h]),
                    tax_rate=float(template.holding_tax_rate.values[h]),
                    maturity_time=maturity, slots=slots, slot_times=slot_times))
        tranche_principal = (template.tranche_principal.values.astype(float)
                             if "tranche" in template.dims else np.zeros(0))
        return cls(world=world, principal=template.principal.values,
                   basket_principal=template.basket_principal.values,
                   price_per_unit=template.price_per_unit.values, times=times,
                   baskets=tuple(baskets), tranche_principal=tranche_principal,
                   holdings=tuple(holdings))

    # -- per block ------------------------------------------------------------
    def _tranches(self, out: Outputs) -> dict[str, np.ndarray] | None:
        """Tranche cash flows and results, concatenated as :func:`add_tranches` does."""
        if not self.baskets:
            return None
        parts = []
        for tb in self.baskets:
            result = run_waterfall(out.basket_cashflow[:, tb.index, :], tb.paid_in, self.times,
                                   list(tb.tranches), tb.guarantee_cap, tb.final)
            parts.append((result, tranche_irr(result, self.times)))
        cat = {name: np.concatenate([getattr(r, name) for r, _ in parts], axis=1)
               for name in ("received", "guarantee", "protection", "payment")}
        cat["irr"] = np.concatenate([i for _, i in parts], axis=1)
        return cat

    def _received(self, hold: HoldingFlows, out: Outputs,
                  tranches: dict[str, np.ndarray] | None) -> np.ndarray:
        """A holding's payments on the time grid, as :func:`lobsim.model.tax.instrument_flows`."""
        if hold.kind == "tranche":
            assert tranches is not None
            return tranches["received"][:, hold.index, :]
        if hold.kind == "basket":
            return out.basket_cashflow[:, hold.index, :]
        received = np.zeros((out.investor_payment.shape[0], self.times.size))
        if not hold.slots:
            received[:, hold.maturity_time] = out.investor_payment[:, hold.index]
        for slot, t in zip(hold.slots, hold.slot_times, strict=True):
            received[:, t] += out.dated_payment[:, slot]
        return received

    def _holdings(self, out: Outputs, tranches: dict[str, np.ndarray] | None
                  ) -> dict[str, np.ndarray]:
        """The series of :func:`lobsim.model.tax.holding_series`; after-tax flows computed once."""
        n, n_h, n_t = out.irr.shape[0], len(self.holdings), self.times.size
        res = {name: np.empty((n, n_h)) for name in ("irr", "after_tax_irr")}
        res.update({name: np.empty((n, n_h), np.bool_) for name in ("loss", "after_tax_loss")})
        res.update({name: np.empty((n, n_h, n_t)) for name in ("flow", "after_tax_flow")})
        for h, hold in enumerate(self.holdings):
            received = self._received(hold, out, tranches)
            post = _tax.after_tax_flows(hold.paid_in, received, hold.relief, hold.tax_rate)
            if hold.kind == "bond":
                pre_irr, loss = out.irr[:, hold.index], out.default[:, hold.index]
            elif hold.kind == "tranche":
                assert tranches is not None
                pre_irr = tranches["irr"][:, hold.index]
                loss = tranches["payment"][:, hold.index] < self.tranche_principal[hold.index]
            else:
                pre_irr = out.basket_irr[:, hold.index]
                loss = out.basket_payment[:, hold.index] < self.basket_principal[hold.index]
            res["irr"][:, h] = pre_irr
            res["after_tax_irr"][:, h] = _tax.irr(self.times, post)
            res["loss"][:, h] = loss
            res["after_tax_loss"][:, h] = (post.sum(axis=1)
                                           < -_tax.LOSS_ROUNDING * hold.paid_in.sum())
            res["flow"][:, h] = received - hold.paid_in
            res["after_tax_flow"][:, h] = post
        return res

    def arrays(self, out: Outputs, dims: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The series of one block (``out``'s rows), keyed as ``Plan.block_arrays``.

        ``dims``: the dimensions of the plan's investor groups (``bond``,
        ``basket``, ``tranche``).
        """
        tranches = self._tranches(out)
        arrays: dict[str, np.ndarray] = {}
        for dim in dims:
            if dim == "bond":
                payment, principal, irr = out.investor_payment, self.principal, out.irr
            elif dim == "basket":
                payment, principal, irr = out.basket_payment, self.basket_principal, out.basket_irr
            else:
                assert tranches is not None
                payment, principal, irr = (tranches["payment"], self.tranche_principal,
                                           tranches["irr"])
            # the expressions of lobsim.analysis.summary._investor_stats, element by element
            loss = principal - payment
            arrays[f"{dim}.default"] = payment < principal
            arrays[f"{dim}.total_loss"] = payment == 0.0
            arrays[f"{dim}.loss_pos"] = np.maximum(loss, 0.0)
            arrays[f"{dim}.multiple"] = payment / principal
            arrays[f"{dim}.irr"] = irr
            arrays[f"{dim}.loss"] = loss
        arrays["bond.overpayment"] = out.overpayment
        arrays["bond.prediction_error"] = out.prediction_error
        if (self.world.arrays.bonds.pool >= 0).any():  # a pooled basket's signal-to-noise
            arrays["basket.pooled_prediction_error"] = summed_errors(out.prediction_error,
                                                                     self.world.basket_members)
        # the series of lobsim.analysis.summary.shortfall_series
        units = provider_shortfall(out.true_units, out.paid_units, self.world.bonds)
        arrays["bond.provider_shortfall_probability"] = (units > 0.0).astype(float)
        arrays["bond.expected_provider_shortfall"] = units
        arrays["bond.expected_provider_shortfall_value"] = units * self.price_per_unit
        if self.holdings:
            arrays.update({f"holding.{k}": x for k, x in self._holdings(out, tranches).items()})
        pay, save = out.department_payment, out.department_saving
        arrays["department.pay"] = pay
        arrays["department.save"] = save
        arrays["department.net"] = save - pay
        arrays["department.pays_more"] = pay > save
        arrays["basket.cashflow"] = out.basket_cashflow
        if out.dated_payment.shape[1]:
            arrays["bond.dated"] = out.dated_payment
        if tranches is not None:
            arrays["tranche.guarantee"] = tranches["guarantee"]
            arrays["tranche.protection"] = tranches["protection"]
        return arrays

