"""Streaming summaries: mergeable accumulators of a run's statistics (model.md §9, §10).

A streaming run never holds the per-scenario arrays. Each block of scenarios
is simulated into a reusable buffer, its series computed from the kernel's
outputs as a labelled run would give them (:class:`lobsim.scale.block_series.BlockSeries`;
:meth:`Accumulator.add_block` takes a block labelled by
:func:`lobsim.model.simulate.finish_run`) and reduced at once by jit-compiled
loops into an :class:`Accumulator`:

* **Moments** (means, probabilities and their standard errors): per block a
  compensated (TwoSum) sum of ``x`` and of ``x**2`` (with the exact rounding
  error of each square, Dekker's product), whose float parts are then added
  *exactly* into a fixed-point superaccumulator (70 signed 32-bit digits
  covering every float64 from 2**-1126 up). Integer addition is associative,
  so merging accumulators in any grouping or order gives the same bits.
* **Histograms** for the quantiles of multiples, IRRs, department
  payments and the bonds' prediction errors (whose q95 - q20 is the
  minimum detectable effect, :mod:`lobsim.analysis.power`): fixed bins,
  ``2**k`` per binade of ``|x|`` in ``[2**HIST_LOW, 2**HIST_HIGH)``
  (sign-symmetric), one bin for smaller ``|x|`` and one overflow bin per
  sign. Each bin keeps its count and the minimum and maximum value seen in
  it (merged exactly). Bins are allocated
  a page (one binade of one series) at a time: memory follows the binades
  the data occupy, never the number of scenarios.
* **Exact tail sets** for VaR and expected shortfall of loss: per series the
  largest ``m`` values, ties at the boundary kept as (value, count), where
  ``m`` covers every atom :func:`lobsim.analysis.stats.tail` reads at the
  reported levels for the run's number of scenarios
  (:func:`tail_size`, about ``1.25 (1 - 0.95) n``). The kept multiset is a
  function of the data alone, whatever the partition.

* **Block counts** (only a ``--parameter-uncertainty`` run's,
  :attr:`Plan.block_defaults`): each block's defaults per bond, integers.

The jit-compiled reductions are in :mod:`lobsim.kernels.reductions`; the
summary Dataset is built by :mod:`lobsim.scale.finalize`, which hands the
accumulated state to the estimators of :mod:`lobsim.analysis.stats`.

Quantile error bound. A quantile is an order statistic (the inverse of the
empirical distribution function, :func:`lobsim.analysis.stats.quantile`),
estimated from its bin as the midpoint of the bin's observed ``[min, max]``
(exactly ``min`` or ``max`` at the bin's first and last rank; exact whenever
the bin holds a single value, as an atom such as "no payment" usually does).
The estimate of an order statistic ``x`` therefore errs by at most
``(max - min) / 2 <= 2**-(k+1) |x|`` when ``2**HIST_LOW <= |x| < 2**HIST_HIGH``
and by at most ``2**HIST_LOW`` below: 0.195% relative plus 6e-8 for
``k = 8``. Values of ``2**40`` (1.1e12) or more are not bounded. The
minimum detectable effect, a difference of two such quantiles, errs by at
most the sum of their two bounds. VaR and ES come from exact tail sets,
means and probabilities from exact sums: VaR, ES, their standard errors and
the diversification benefit are those of
:func:`~lobsim.analysis.summary.summarize` bit for bit; means agree to rounding.
Importance-sampling weights are not accumulated: a tilted run is refused.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from lobsim.analysis import pooling, stats
from lobsim.analysis import summary as _summary
from lobsim.kernels import reductions as K
from lobsim.kernels.reductions import HIST_HIGH, HIST_LOW, HIST_MANTISSA_BITS, N_DIGITS
from lobsim.model import tax as _tax

if TYPE_CHECKING:
    from lobsim.kernels.contract import Outputs
    from lobsim.scale.block_series import BlockSeries


# ---------------------------------------------------------------------------
# What is accumulated: the plan
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """An investor group of :func:`lobsim.analysis.summary.summarize` (bonds, baskets, tranches)."""

    prefix: str
    dim: str
    payment: str
    principal: str
    irr: str


@dataclass(frozen=True)
class Columns:
    """Named blocks of columns of one kind of statistic: name -> (offset, shape)."""

    entries: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def offsets(self) -> dict[str, tuple[int, tuple[int, ...]]]:
        out: dict[str, tuple[int, tuple[int, ...]]] = {}
        off = 0
        for name, shape in self.entries:
            out[name] = (off, shape)
            off += int(np.prod(shape, dtype=np.int64))
        return out

    @property
    def width(self) -> int:
        return sum(int(np.prod(s, dtype=np.int64)) for _, s in self.entries)


def tail_size(n: int, levels: tuple[float, ...]) -> int:
    """How many of the largest of ``n`` values the VaR and ES at ``levels`` read.

    :func:`lobsim.analysis.stats.tail` reads the atoms down to the tail mass
    ``n (1 - level)`` widened by ``VAR_WINDOW`` (the density of VaR's
    standard error), and one atom below it; ties at the boundary are kept as
    a count, not here.
    """
    p = 1.0 - min(levels)
    return min(n, math.ceil(n * p * (1.0 + stats.VAR_WINDOW) * (1.0 + 1e-9)) + 1)


@dataclass(frozen=True, eq=False)  # holds a Dataset: identity, not ==
class Plan:
    """The statistics of a streaming run and how its blocks map to them.

    Built from a one-scenario labelled template of the run
    (:func:`lobsim.model.simulate.finish_run`), so that new variables of a run need
    no change here unless :func:`lobsim.analysis.summary.summarize` reads them.
    """

    scenarios: int
    block_size: int
    template: xr.Dataset
    groups: tuple[Group, ...]
    moments: Columns
    hists: Columns
    tails: Columns
    tail_keep: int
    hist_bits: int = HIST_MANTISSA_BITS
    hist_low: int = HIST_LOW
    hist_high: int = HIST_HIGH
    quantiles: tuple[float, ...] = _summary.QUANTILES
    tail_levels: tuple[float, ...] = _summary.TAIL_LEVELS
    department_quantiles: tuple[float, ...] = _summary.DEPARTMENT_QUANTILES
    #: keep each block's count of defaults per bond (``--parameter-uncertainty``, whose
    #: blocks draw their own parameters: lobsim.analysis.parameter_uncertainty)
    block_defaults: bool = False

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.scenarios / self.block_size)

    @property
    def n_pages(self) -> int:
        """Histogram pages of a series: two per binade (a sign each) and three more."""
        return 2 * (self.hist_high - self.hist_low) + 3

    @property
    def n_bins(self) -> int:
        return self.n_pages << self.hist_bits

    @classmethod
    def from_template(cls, template: xr.Dataset, scenarios: int, block_size: int, *,
                      hist_bits: int = HIST_MANTISSA_BITS, block_defaults: bool = False) -> Plan:
        """The plan of a run of ``scenarios`` scenarios labelled like ``template``.

        Parameters
        ----------
        template : xarray.Dataset
            A labelled run (any number of scenarios; only its layout is used).
        scenarios, block_size : int
            The run's size and block size.
        hist_bits : int
            ``k``: histogram bins per binade are ``2**k``.
        block_defaults : bool
            Keep each block's count of defaults per bond (:attr:`block_defaults`).
        """
        tpl = template.isel(scenario=slice(0, 1))
        groups = [Group("", "bond", "investor_payment", "principal", "irr"),
                  Group("basket_", "basket", "basket_payment", "basket_principal", "basket_irr")]
        if "tranche_payment" in tpl:
            groups.append(Group("tranche_", "tranche", "tranche_payment", "tranche_principal",
                                "tranche_irr"))
        moments: list[tuple[str, tuple[int, ...]]] = []
        hists: list[tuple[str, tuple[int, ...]]] = []
        tails: list[tuple[str, tuple[int, ...]]] = []
        for g in groups:
            size = (tpl.sizes[g.dim],)
            moments += [(f"{g.dim}.{k}", size) for k in
                        ("default", "total_loss", "loss_pos", "multiple", "irr")]
            hists += [(f"{g.dim}.multiple", size), (f"{g.dim}.irr", size)]
            tails.append((f"{g.dim}.loss", size))
        n_b = (tpl.sizes["bond"],)
        moments += [("bond.overpayment", n_b), ("bond.prediction_error", n_b)]
        hists.append(("bond.prediction_error", n_b))  # its quantiles: the MDE (analysis.power)
        if pooling.is_pooled(tpl).any():  # a pooled basket's signal-to-noise
            moments.append(("basket.pooled_prediction_error", (tpl.sizes["basket"],)))
        moments += [(f"bond.{k}", n_b) for k in _summary.shortfall_series(tpl)]
        dy = (tpl.sizes["department"], tpl.sizes["year"])
        moments += [(f"department.{k}", dy) for k in ("pay", "save", "net", "pays_more")]
        hists.append(("department.pay", dy))
        if "tranche_payment" in tpl:
            n_t = (tpl.sizes["tranche"],)
            moments += [("tranche.guarantee", n_t), ("tranche.protection", n_t)]
        # the mean cash flows of the IRR of expected flows (lobsim.analysis.returns)
        moments.append(("basket.cashflow", (tpl.sizes["basket"], tpl.sizes["time"])))
        if tpl.sizes.get("payment", 0):
            moments.append(("bond.dated", (tpl.sizes["payment"],)))
        if "holding" in tpl.dims:
            n_h = tpl.sizes["holding"]
            moments += [(f"holding.{k}", (n_h,)) for k in _summary.HOLDING_MEANS]
            moments += [(f"holding.{k}", (n_h, tpl.sizes["time"]))
                        for k in ("flow", "after_tax_flow")]
        keep = min(scenarios, tail_size(scenarios, _summary.TAIL_LEVELS) + 2)
        return cls(scenarios=scenarios, block_size=block_size, template=tpl.load(),
                   groups=tuple(groups), moments=Columns(tuple(moments)),
                   hists=Columns(tuple(hists)), tails=Columns(tuple(tails)), tail_keep=keep,
                   hist_bits=hist_bits, block_defaults=block_defaults)

    def block_arrays(self, ds: xr.Dataset) -> dict[str, np.ndarray]:
        """The per-scenario series of a labelled block, as ``summarize`` computes them."""
        arrays: dict[str, np.ndarray] = {}
        for g in self.groups:
            payment = ds[g.payment].values
            principal = ds[g.principal].values
            # the same expressions as lobsim.analysis.summary._investor_stats, element by element
            multiple = payment / principal
            loss = principal - payment
            arrays[f"{g.dim}.default"] = payment < principal
            arrays[f"{g.dim}.total_loss"] = payment == 0.0
            arrays[f"{g.dim}.loss_pos"] = np.maximum(loss, 0.0)
            arrays[f"{g.dim}.multiple"] = multiple
            arrays[f"{g.dim}.irr"] = ds[g.irr].values
            arrays[f"{g.dim}.loss"] = loss
        arrays["bond.overpayment"] = ds.overpayment.values
        arrays["bond.prediction_error"] = ds.prediction_error.values
        if pooling.is_pooled(ds).any():
            arrays["basket.pooled_prediction_error"] = pooling.summed_errors(
                ds.prediction_error.values, ds.basket_member.values)
        arrays.update({f"bond.{k}": x for k, x in _summary.shortfall_series(ds).items()})
        if "holding" in ds.dims:
            arrays.update({f"holding.{k}": x for k, x in _tax.holding_series(ds).items()})
        pay = ds.department_payment.values
        save = ds.department_saving.values
        arrays["department.pay"] = pay
        arrays["department.save"] = save
        arrays["department.net"] = save - pay
        arrays["department.pays_more"] = pay > save
        arrays["basket.cashflow"] = ds.basket_cashflow.values
        if ds.sizes.get("payment", 0):
            arrays["bond.dated"] = ds.dated_payment.values
        if "tranche_guarantee" in ds:
            arrays["tranche.guarantee"] = ds.tranche_guarantee.values
            arrays["tranche.protection"] = ds.tranche_protection.values
        return arrays


_local = threading.local()


def _scratch(key: str, shape: tuple[int, int]) -> np.ndarray:
    """A per-thread buffer reused across blocks (fresh pages cost as much as the work)."""
    cache: dict[str, np.ndarray] = _local.__dict__.setdefault("scratch", {})
    buf = cache.get(key)
    if buf is None or buf.shape != shape:
        buf = np.empty(shape)
        cache[key] = buf
    return buf


def _fill(columns: Columns, arrays: dict[str, np.ndarray], n: int, key: str, block_size: int,
          *, series_major: bool = False) -> np.ndarray:
    """Copy the named series of a block into one (rows, columns) or (columns, rows) array."""
    shape = (columns.width, block_size) if series_major else (block_size, columns.width)
    x = _scratch(key, shape)
    for name, (off, sh) in columns.offsets.items():
        size = int(np.prod(sh, dtype=np.int64))
        a = arrays[name].reshape(n, size)
        if series_major:
            x[off:off + size, :n] = a.T
        else:
            x[:n, off:off + size] = a
    return x


# ---------------------------------------------------------------------------
# The accumulator
# ---------------------------------------------------------------------------
@dataclass(eq=False)
class Accumulator:
    """Mergeable statistics of the blocks of a run it has seen.

    Parameters
    ----------
    plan : Plan
    floor : ndarray, optional
        Per tail series, a value below which nothing can enter the run's tail
        set (:meth:`tail_floor` of an accumulator this one will be merged
        into): saves memory, never changes the merged result, but the
        accumulator alone no longer has a valid summary.
    reserve : bool
        Reserve the largest tail buffer at once (for the accumulator a whole
        run merges into).

    Notes
    -----
    Histogram bins are allocated a page (a binade of one series) at a time
    from a pool that grows on demand: a series uses a few dozen pages,
    whatever the number of scenarios. Workers reuse one accumulator per
    thread and ship each task's contribution with :meth:`take_state`.

    Examples
    --------
    >>> acc = Accumulator(plan)                      # doctest: +SKIP
    >>> acc.add_block(0, labelled_block_dataset)     # doctest: +SKIP
    >>> acc.merge(other).summary()                   # doctest: +SKIP
    """

    plan: Plan
    floor: np.ndarray | None = None
    reserve: bool = False
    scenarios: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        p = self.plan
        n_m, n_h, n_t = p.moments.width, p.hists.width, p.tails.width
        self.blocks = np.zeros(p.n_blocks, np.bool_)
        self.sum1 = np.zeros((n_m, N_DIGITS), np.int64)
        self.sum2 = np.zeros((n_m, N_DIGITS), np.int64)
        self.flags = np.zeros((n_m, 4), np.int64)
        # pages of bins; count, min, max of a bin side by side: one cache line per update
        self.hist_dir = np.full((n_h, p.n_pages), -1, np.int32)
        self.hist_pool = np.zeros((max(16, 4 * n_h), 1 << p.hist_bits, 3))
        self.hist_used = np.zeros(1, np.int64)
        self.hist_nan = np.zeros(n_h, np.int64)
        # a run's main accumulator reserves its largest tail buffer at once (untouched
        # pages cost nothing; growing by copies would need both buffers at once)
        self.tail_buf = np.empty((n_t, self._tail_cap_max if self.reserve else 0))
        self.tail_nv = np.zeros(n_t, np.int64)
        self.tail_bval = np.full(n_t, -np.inf)
        self.tail_bcnt = np.zeros(n_t, np.int64)
        self.tail_nan = np.zeros(n_t, np.int64)
        # per block and bond, its scenarios' defaults (integers: merged exactly)
        self.block_default = np.zeros((p.n_blocks, p.template.sizes["bond"])
                                      if p.block_defaults else (0, 0), np.int64)
        self.partial = self.floor is not None and bool(np.isfinite(self.floor).any())
        if self.floor is None:
            self.floor = np.full(n_t, -np.inf)

    # -- building ---------------------------------------------------------
    @property
    def _tail_cap_max(self) -> int:
        m = self.plan.tail_keep
        return m + max(self.plan.block_size, m // 8) + 1

    def _room(self, extra: int) -> None:
        """Grow the tail buffers so that ``extra`` more values fit (compaction does the rest)."""
        need = int(self.tail_nv.max(initial=0)) + extra
        cap = self.tail_buf.shape[1]
        if need <= cap or cap >= self._tail_cap_max:
            return
        new = np.empty((self.tail_buf.shape[0], min(self._tail_cap_max, max(need, 2 * cap))))
        new[:, :cap] = self.tail_buf
        self.tail_buf = new

    def add_block(self, block: int, ds: xr.Dataset) -> Accumulator:
        """Reduce the labelled scenarios of block ``block`` into the accumulator."""
        self._unweighted("log_weight" in ds and bool(np.any(ds.log_weight.values != 0.0)))
        return self.add_arrays(block, self.plan.block_arrays(ds), ds.sizes["scenario"])

    def add_outputs(self, block: int, out: Outputs, series: BlockSeries) -> Accumulator:
        """Reduce block ``block`` straight from the kernel's outputs (no labelling).

        The same reduction as :meth:`add_block` of the block labelled by
        :func:`lobsim.model.simulate.finish_run`, bit for bit.
        """
        self._unweighted(bool(np.any(out.log_weight != 0.0)))
        dims = tuple(g.dim for g in self.plan.groups)
        return self.add_arrays(block, series.arrays(out, dims), out.irr.shape[0])

    @staticmethod
    def _unweighted(weighted: bool) -> None:
        if weighted:
            raise ValueError("block carries importance-sampling weights (log_weight); a "
                             "streaming summary accumulates plain runs only: summarize the "
                             "full results")

    def add_arrays(self, block: int, arrays: dict[str, np.ndarray], n: int) -> Accumulator:
        """Reduce the ``n`` scenarios of block ``block``, given as :meth:`Plan.block_arrays`."""
        if self.blocks[block]:
            raise ValueError(f"block {block} is already in this accumulator")
        p = self.plan
        # moments series by series, straight from the block's arrays: each column's sums
        # depend on that column alone, so this is the reduction of the whole matrix
        # without copying it (the copy cost as much as the sums)
        for name, (off, shape) in p.moments.offsets.items():
            size = int(np.prod(shape, dtype=np.int64))
            x = np.ascontiguousarray(arrays[name].reshape(n, size), dtype=np.float64)
            K.reduce_moments(x, n, self.sum1[off:off + size], self.sum2[off:off + size],
                             self.flags[off:off + size])
        x = _fill(p.hists, arrays, n, "hists", p.block_size, series_major=True)
        j, r = 0, 0
        while True:
            j, r = K.reduce_hist(x, n, self.hist_dir, self.hist_pool, self.hist_used,
                                self.hist_nan, p.hist_bits, p.hist_low, p.hist_high, j, r)
            if j == x.shape[0]:
                break
            self._grow_pool()
        x = _fill(p.tails, arrays, n, "tails", p.block_size, series_major=True)
        if p.block_defaults:
            self.block_default[block] = np.count_nonzero(arrays["bond.default"], axis=0)
        self._room(n)
        K.reduce_tails(x, n, self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt,
                      self.tail_nan, self.floor, p.tail_keep)
        self.blocks[block] = True
        self.scenarios += n
        return self

    def merge(self, other: Accumulator) -> Accumulator:
        """Add ``other`` (disjoint blocks of the same plan) into this accumulator, exactly."""
        return self.merge_state(other.state())

    def merge_state(self, state: dict[str, np.ndarray]) -> Accumulator:
        """Add a :meth:`state` of disjoint blocks of the same plan, exactly."""
        blocks = np.asarray(state["blocks"], np.bool_)
        if blocks.size != self.blocks.size or state["sum1"].shape != self.sum1.shape:
            raise ValueError("accumulators of different runs cannot be merged")
        both = np.flatnonzero(self.blocks & blocks)
        if both.size:
            raise ValueError(f"blocks {both[:5].tolist()} are in both accumulators")
        self.blocks |= blocks
        self.scenarios += int(state["scenarios"][0])
        self.sum1 += state["sum1"]
        self.sum2 += state["sum2"]
        K.normalize(self.sum1)
        K.normalize(self.sum2)
        self.flags += state["flags"]
        idx = np.asarray(state["hist_index"], np.int64)
        i = 0
        while True:
            i = K.merge_hist(self.hist_dir, self.hist_pool, self.hist_used, idx,
                            state["hist_count"], state["hist_min"], state["hist_max"],
                            self.plan.hist_bits, self.plan.n_bins, i)
            if i == idx.size:
                break
            self._grow_pool()
        self.hist_nan += state["hist_nan"]
        lengths = np.asarray(state["tail_length"], np.int64)
        self._room(int(lengths.max(initial=0)))
        K.merge_tails(self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt,
                     np.asarray(state["tail_values"], float), lengths,
                     np.asarray(state["tail_boundary"], float),
                     np.asarray(state["tail_boundary_count"], np.int64), self.plan.tail_keep)
        self.tail_nan += state["tail_nan"]
        if self.plan.block_defaults:
            self.block_default += state["block_default"]
        return self

    def _grow_pool(self) -> None:
        pool = np.zeros((2 * self.hist_pool.shape[0], *self.hist_pool.shape[1:]))
        pool[:self.hist_pool.shape[0]] = self.hist_pool
        self.hist_pool = pool

    def _compact(self) -> None:
        for j in range(self.tail_nv.size):
            K.tail_compact(self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt, j,
                          self.plan.tail_keep)

    def tail_floor(self) -> np.ndarray:
        """Per tail series, the value below which no new value can matter (-inf: any)."""
        return np.where(self.tail_bcnt > 0, self.tail_bval, -np.inf)

    # -- canonical state --------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """The accumulator as plain arrays, canonical: equal data give equal arrays.

        Histograms are stored sparsely (occupied bins) and tail sets sorted,
        one row a series padded with NaN; this is what is pickled,
        checkpointed, shipped and compared. ``tail_values`` is a view of the
        accumulator's buffer (tails are its largest part): copy the state to
        keep it while the accumulator changes.
        """
        self._compact()
        idx, count, vmin, vmax = K.hist_export(self.hist_dir, self.hist_pool,
                                              1 << self.plan.hist_bits)
        lengths = self.tail_nv.copy()
        width = int(lengths.max(initial=0))
        for j in range(lengths.size):  # sorted in place, NaN after the end: no copy of the tails
            self.tail_buf[j, :lengths[j]].sort()
            self.tail_buf[j, lengths[j]:width] = np.nan
        values = self.tail_buf[:, :width]
        extra = {"block_default": self.block_default.copy()} if self.plan.block_defaults else {}
        return extra | {
            "scenarios": np.array([self.scenarios], np.int64),
            "blocks": self.blocks.copy(),
            "sum1": self.sum1.copy(), "sum2": self.sum2.copy(), "flags": self.flags.copy(),
            "hist_index": idx, "hist_count": count, "hist_min": vmin, "hist_max": vmax,
            "hist_nan": self.hist_nan.copy(),
            "tail_values": values, "tail_length": lengths,
            "tail_boundary": self.tail_bval.copy(),
            "tail_boundary_count": self.tail_bcnt.copy(),
            "tail_nan": self.tail_nan.copy(),
        }

    def take_state(self) -> dict[str, np.ndarray]:
        """:meth:`state`, then empty the accumulator for reuse (keeping its memory)."""
        st = self.state()
        st["tail_values"] = st["tail_values"].copy()  # the buffer is reused by the next task
        self.hist_pool[:int(self.hist_used[0])] = 0.0
        self.hist_dir[...] = -1
        for a in (self.blocks, self.sum1, self.sum2, self.flags, self.hist_used, self.hist_nan,
                  self.tail_nv, self.tail_bcnt, self.tail_nan, self.block_default):
            a[...] = 0
        self.tail_bval[...] = -np.inf
        self.scenarios = 0
        return st

    @classmethod
    def from_state(cls, plan: Plan, state: dict[str, np.ndarray], *,
                   reserve: bool = False) -> Accumulator:
        """Rebuild an accumulator from :meth:`state`."""
        if np.asarray(state["blocks"]).size != plan.n_blocks:
            raise ValueError("state of another run's blocks")
        return cls(plan, reserve=reserve).merge_state(state)

    def identical(self, other: Accumulator) -> bool:
        """Whether two accumulators hold bit-identical canonical states."""
        return states_identical(self.state(), other.state())

    def __getstate__(self) -> dict[str, Any]:
        # ship the compact canonical state, not dense bins and buffers
        return {"plan": self.plan, "state": self.state(), "partial": self.partial}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__dict__.update(Accumulator.from_state(d["plan"], d["state"]).__dict__)
        self.partial = d["partial"]

    # -- statistics -------------------------------------------------------
    def summary(self) -> xr.Dataset:
        """The statistics of :func:`lobsim.analysis.summary.summarize`, from the accumulated blocks."""
        if self.partial:
            raise ValueError("an accumulator with a tail floor has no summary of its own; "
                             "merge it into the accumulator the floor came from")
        from lobsim.scale.finalize import Finalizer  # finalize imports this module's types only

        return Finalizer(self).dataset()


def states_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two :meth:`Accumulator.state` dicts are bit for bit the same."""
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
        and np.asarray(a[k]).shape == np.asarray(b[k]).shape
        and np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() for k in a)
