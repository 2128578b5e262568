"""From a streaming accumulator to the summary Dataset (model.md §9, §10).

The layout is :func:`lobsim.analysis.summary.summarize`'s, variable by
variable; every statistic is computed by :mod:`lobsim.analysis.stats` on the
accumulated state (exact sums, tail sets, histograms), never re-derived here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from lobsim.analysis import pooling, power, stats
from lobsim.analysis import summary as _summary
from lobsim.analysis.returns import irr_of_mean_flows
from lobsim.kernels.reductions import EXP_OFFSET

if TYPE_CHECKING:
    from lobsim.scale.streaming import Accumulator, Group


def to_int(digits: np.ndarray) -> int:
    return sum(int(d) << (32 * k) for k, d in enumerate(digits.tolist()))


def _ratio(num: int, den: int) -> float:
    """``num / den`` correctly rounded (Python's integer true division)."""
    try:
        return num / den
    except OverflowError:
        return math.copysign(math.inf, num)


class Finalizer:
    """The summary Dataset of an accumulator, each statistic from :mod:`lobsim.analysis.stats`.

    Means and probabilities come from the exact sums, VaR and expected
    shortfall from the tail sets' atoms (the same bits as
    :func:`lobsim.analysis.summary.summarize`), quantiles of multiples, IRRs
    and department payments from the histograms' atoms (within the bound in
    :mod:`lobsim.scale.streaming`).
    """


    def __init__(self, acc: Accumulator) -> None:
        self.acc = acc
        self.plan = acc.plan
        self.n = acc.scenarios
        if self.n < 1:
            raise ValueError("no scenarios accumulated")
        self.m_off = self.plan.moments.offsets
        self.h_off = self.plan.hists.offsets
        self.t_off = self.plan.tails.offsets
        self.acc._compact()

    # moments -------------------------------------------------------------
    def _moment(self, j: int) -> tuple[float, float, float]:
        """Mean, its standard error (sd with ddof 1 over sqrt n) and sd with ddof 0."""
        n = self.n
        nan, pinf, ninf, big = (int(v) for v in self.acc.flags[j])
        v1 = to_int(self.acc.sum1[j])
        v2 = to_int(self.acc.sum2[j])
        if nan or (pinf and ninf):
            return math.nan, math.nan, math.nan
        if pinf or ninf:
            return (math.inf if pinf else -math.inf), math.nan, math.nan
        mean = _ratio(v1, n << EXP_OFFSET)
        if big:
            return mean, math.nan, math.nan
        # n sum x^2 - (sum x)^2, scaled by 2**(2 O); >= 0 but for the rounding of the
        # per-block compensated sums (a constant series can come out a hair below 0)
        num = max(0, n * v2 * (1 << EXP_OFFSET) - v1 * v1)
        scale = 1 << (2 * EXP_OFFSET)
        sd0 = math.sqrt(_ratio(num, n * n * scale))
        if n < 2:
            return mean, math.nan, sd0
        se = math.sqrt(_ratio(num, n * (n - 1) * scale)) / math.sqrt(n)
        return mean, se, sd0

    def moments(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        off, shape = self.m_off[name]
        size = int(np.prod(shape, dtype=np.int64))
        rows = np.array([self._moment(off + i) for i in range(size)]).reshape(size, 3)
        return tuple(rows[:, k].reshape(shape) for k in range(3))  # type: ignore[return-value]

    # quantiles from histograms --------------------------------------------
    def _hist_atoms(self, j: int) -> stats.Atoms:
        """A series' atoms as its histogram estimates them.

        A bin holding ``c`` values stands for its observed minimum (once), its
        maximum (once) and their midpoint (``c - 2`` times): exact for a bin of
        one value, within half the bin's width otherwise.
        """
        per = 1 << self.plan.hist_bits
        dense = np.zeros((self.plan.n_bins, 3))
        for page in np.flatnonzero(self.acc.hist_dir[j] >= 0):
            dense[page * per:(page + 1) * per] = self.acc.hist_pool[self.acc.hist_dir[j, page]]
        b = np.flatnonzero(dense[:, 0] > 0)
        count = dense[b, 0].astype(np.int64)
        lo, hi = dense[b, 1], dense[b, 2]
        mid = lo + (hi - lo) * 0.5
        values = np.concatenate([lo, hi[count > 1], mid[count > 2]])
        counts = np.concatenate([np.ones(b.size, np.int64), np.ones(int((count > 1).sum()),
                                                                   np.int64),
                                 count[count > 2] - 2])
        distinct, inverse = np.unique(values, return_inverse=True)
        return stats.Atoms.of_counts(distinct, np.bincount(inverse, weights=counts), self.n,
                                     nan=bool(self.acc.hist_nan[j]))

    def quantiles(self, name: str, levels: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        off, shape = self.h_off[name]
        size = int(np.prod(shape, dtype=np.int64))
        q = np.empty((len(levels), size))
        se = np.empty_like(q)
        for i in range(size):
            a = self._hist_atoms(off + i)
            for li, p in enumerate(levels):
                q[li, i] = stats.quantile(a, p)
                se[li, i] = stats.quantile_se(a, p)
        return q.reshape(len(levels), *shape), se.reshape(len(levels), *shape)

    # VaR and ES from tail sets --------------------------------------------
    def _tail_atoms(self, j: int) -> stats.Atoms:
        """The largest atoms of a series: its tail set (every copy of each kept value)."""
        acc = self.acc
        vals = acc.tail_buf[j, :acc.tail_nv[j]]
        if acc.tail_bcnt[j] > 0:
            vals = np.append(vals, acc.tail_bval[j])
        distinct, inverse = np.unique(vals, return_inverse=True)
        counts = np.bincount(inverse).astype(float)
        if acc.tail_bcnt[j] > 0:  # the boundary's copies: one is in vals already
            counts[np.searchsorted(distinct, acc.tail_bval[j])] += int(acc.tail_bcnt[j]) - 1
        return stats.Atoms.of_counts(distinct, counts, self.n, nan=bool(acc.tail_nan[j]))

    def tail(self, name: str, levels: tuple[float, ...]) -> tuple[np.ndarray, ...]:
        off, shape = self.t_off[name]
        size = int(np.prod(shape, dtype=np.int64))
        return stats.tails_of([self._tail_atoms(off + i) for i in range(size)], levels, shape)

    # the Dataset -----------------------------------------------------------
    def _investor(self, g: Group) -> dict[str, Any]:
        dim = g.dim
        out: dict[str, Any] = {}
        for name, key in (("default_probability", "default"),
                          ("total_loss_probability", "total_loss"),
                          ("expected_loss", "loss_pos"), ("mean_multiple", "multiple"),
                          ("mean_irr", "irr")):
            m, se, _ = self.moments(f"{dim}.{key}")
            out[name] = ((dim,), m)
            out[name + "_se"] = ((dim,), se)
        for name, key in (("multiple_quantile", "multiple"), ("irr_quantile", "irr")):
            q, se = self.quantiles(f"{dim}.{key}", self.plan.quantiles)
            out[name] = (("quantile", dim), q)
            out[name + "_se"] = (("quantile", dim), se)
        var, var_se, es, es_se = self.tail(f"{dim}.loss", self.plan.tail_levels)
        out["loss_var"] = (("level", dim), var)
        out["loss_var_se"] = (("level", dim), var_se)
        out["loss_es"] = (("level", dim), es)
        out["loss_es_se"] = (("level", dim), es_se)
        return out

    def dataset(self) -> xr.Dataset:
        # the layout of lobsim.analysis.summary.summarize; every statistic from lobsim.analysis.stats
        tpl = self.plan.template
        groups = {g.dim: g for g in self.plan.groups}
        data: dict[str, Any] = dict(self._investor(groups["bond"]))
        data.update({f"basket_{k}": v for k, v in self._investor(groups["basket"]).items()})
        over, over_se, _ = self.moments("bond.overpayment")
        data["expected_overpayment"] = (("bond",), over)
        data["expected_overpayment_se"] = (("bond",), over_se)
        for name in _summary.shortfall_series(tpl):
            m, se, _ = self.moments(f"bond.{name}")
            data[name] = (("bond",), m)
            data[name + "_se"] = (("bond",), se)
        # the second IRR convention, from the accumulated mean cash flows
        dated = self.moments("bond.dated")[0] if "bond.dated" in self.m_off else np.zeros(0)
        bond_flows, basket_flows = irr_of_mean_flows(
            tpl, self.moments("bond.multiple")[0], dated, self.moments("basket.cashflow")[0])
        data["irr_expected_flows"] = (("bond",), bond_flows)
        data["basket_irr_expected_flows"] = (("basket",), basket_flows)
        data["rmspe"] = (("bond",), tpl.rmspe.values)
        _, _, noise = self.moments("bond.prediction_error")
        data["signal_to_noise"] = (("bond",), power.signal_to_noise(tpl.target_units.values,
                                                                     noise))
        if "basket.pooled_prediction_error" in self.m_off:  # as analysis.summary
            _, _, pooled_sd = self.moments("basket.pooled_prediction_error")
            data["basket_pooled_signal_to_noise"] = (
                ("basket",), pooling.pooled_signal_to_noise(tpl, pooled_sd))
        # the MDE from the error's histogram quantiles: within the histograms' bound
        q, _ = self.quantiles("bond.prediction_error", power.LEVELS)
        mde = power.from_quantiles(q[0], q[1])
        data["minimum_detectable_effect"] = (("bond",), mde)
        data["minimum_detectable_effect_share"] = (("bond",),
                                                   power.share(mde, tpl.target_units.values))
        dy = ("department", "year")
        for name, key in (("department_payment_mean", "pay"), ("department_saving_mean", "save"),
                          ("net_fiscal_position", "net")):
            m, se, _ = self.moments(f"department.{key}")
            data[name] = (dy, m)
            data[name + "_se"] = (dy, se)
        q, q_se = self.quantiles("department.pay", self.plan.department_quantiles)
        data["department_payment_quantile"] = (("department_quantile", *dy), q)
        data["department_payment_quantile_se"] = (("department_quantile", *dy), q_se)
        m, se, _ = self.moments("department.pays_more")
        data["probability_pays_more_than_saves"] = (dy, m)
        data["probability_pays_more_than_saves_se"] = (dy, se)
        coords = {
            "bond": tpl.bond.values, "basket": tpl.basket.values,
            "department": tpl.department.values, "year": tpl.year.values,
            "quantile": list(self.plan.quantiles), "level": list(self.plan.tail_levels),
            "department_quantile": list(self.plan.department_quantiles),
        }
        out = xr.Dataset(data, coords=coords).assign_coords(_summary.control_coords(tpl))
        out = self._structure(out, groups)
        if "holding" in tpl.dims:
            means = {k: self.moments(f"holding.{k}")[:2]
                     for k in (*_summary.HOLDING_MEANS, "flow", "after_tax_flow")}
            out = _summary.add_holding_stats(out, tpl, means)
        if self.plan.block_defaults:  # lobsim.analysis.parameter_uncertainty reads them
            out["default_count_by_block"] = (("block", "bond"), self.acc.block_default.copy(), {
                "units": "scenarios", "long_name": "defaults of each bond in each scenario "
                                                   "block"})
        out.attrs.update(tpl.attrs)
        out.attrs.update(
            scenarios=self.n, summary_method="streaming",
            quantile_relative_error=2.0 ** -(self.plan.hist_bits + 1),
            quantile_absolute_error=2.0 ** self.plan.hist_low)
        return _summary.label(out, outcome_units=_summary.outcome_units(tpl))

    def _structure(self, out: xr.Dataset, groups: dict[str, Group]) -> xr.Dataset:
        # the layout of lobsim.analysis.summary._add_structure_stats
        tpl = self.plan.template
        data: dict[str, Any] = {}
        coords: dict[str, Any] = {}
        if "basket_member" in tpl:
            data.update(_summary.diversification(out, tpl.basket_member.values))
            data.update(_summary.basket_bond_sums(out, tpl.basket_member.values))
        if "tranche" in groups:
            data.update({f"tranche_{k}": v for k, v in self._investor(groups["tranche"]).items()})
            for name in ("guarantee", "protection"):
                m, se, _ = self.moments(f"tranche.{name}")
                data[f"tranche_expected_{name}"] = (("tranche",), m)
                data[f"tranche_expected_{name}_se"] = (("tranche",), se)
            for name in ("share", "premium", "seniority", "principal"):
                data[f"tranche_{name}"] = (("tranche",), tpl[f"tranche_{name}"].values.astype(float))
            coords = {"tranche": tpl.tranche.values,
                      "tranche_basket": ("tranche", tpl.tranche_basket.values)}
        return out.assign_coords(coords).assign(data) if data else out
