"""Streaming summaries: mergeable accumulators of a run's statistics (model.md §9, §10).

A streaming run never holds the per-scenario arrays. Each block of scenarios
is simulated into a reusable buffer, labelled like a full run
(:func:`lobsim.model.simulate.finish_run`) and reduced at once by jit-compiled
loops into an :class:`Accumulator`:

* **Moments** (means, probabilities and their standard errors): per block a
  compensated (TwoSum) sum of ``x`` and of ``x**2`` (with the exact rounding
  error of each square, Dekker's product), whose float parts are then added
  *exactly* into a fixed-point superaccumulator (70 signed 32-bit digits
  covering every float64 from 2**-1126 up). Integer addition is associative,
  so merging accumulators in any grouping or order gives the same bits.
* **Histograms** for the quantiles of multiples, IRRs and department
  payments: fixed bins, ``2**k`` per binade of ``|x|`` in
  ``[2**HIST_LOW, 2**HIST_HIGH)`` (sign-symmetric), one bin for smaller
  ``|x|`` and one overflow bin per sign. Each bin keeps its count and the
  minimum and maximum value seen in it (merged exactly). Bins are allocated
  a page (one binade of one series) at a time: memory follows the binades
  the data occupy, never the number of scenarios.
* **Exact tail sets** for VaR and expected shortfall of loss: per series the
  largest ``m`` values, ties at the boundary kept as (value, count), where
  ``m`` covers every order statistic :func:`lobsim.analysis.summary.summarize` reads
  at the reported levels for the run's number of scenarios (about
  ``(1 - 0.95) n + sqrt(n)``). The kept multiset is a function of the data
  alone, whatever the partition.

Quantile error bound. A quantile is numpy's linear interpolation between
two order statistics; each is estimated from its bin as the midpoint of the
bin's observed ``[min, max]`` (exactly ``min`` or ``max`` at the bin's first
and last rank; exact whenever the bin holds a single value, as an atom such
as "no payment" usually does).
The estimate of an order statistic ``x`` therefore errs by at most
``(max - min) / 2 <= 2**-(k+1) |x|`` when ``2**HIST_LOW <= |x| < 2**HIST_HIGH``
and by at most ``2**HIST_LOW`` below; so a reported quantile errs by at most
``2**-(k+1) max(|x_lo|, |x_hi|) + 2**HIST_LOW`` (``x_lo``, ``x_hi`` the two
order statistics it interpolates): 0.195% relative plus 6e-8 for ``k = 8``.
Values of ``2**40`` (1.1e12) or more are not bounded. VaR and ES come from
exact tail sets, means and probabilities from exact sums: they agree with
:func:`~lobsim.analysis.summary.summarize` to rounding (VaR and its standard error bit
for bit).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from numba import njit

from lobsim.analysis import summary as _summary
from lobsim.model import tax as _tax

N_DIGITS = 70  # 32-bit digits of the superaccumulator: 2240 bits
EXP_OFFSET = 1126  # bit 0 of the superaccumulator is 2**-1126 (frexp of the least subnormal)
HIST_MANTISSA_BITS = 8
HIST_LOW = -24
HIST_HIGH = 40
_DEKKER = 134217729.0  # 2**27 + 1, Veltkamp's splitter
_SQUARE_LIMIT = 1e150  # beyond this a square may overflow: its moments are not tracked


# ---------------------------------------------------------------------------
# Jit-compiled reductions
# ---------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _add_float(acc, row, x):
    """Add the finite float ``x`` exactly to superaccumulator ``acc[row]``."""
    if x == 0.0 or not math.isfinite(x):
        return
    f, e = math.frexp(x)
    m = np.int64(f * 9007199254740992.0)  # f * 2**53: an exact integer
    sign = np.int64(1)
    if m < 0:
        sign = np.int64(-1)
        m = -m
    pos = e - 53 + EXP_OFFSET
    i = pos >> 5
    s = pos & 31
    one = np.int64(1)
    lo = (m & ((one << (32 - s)) - one)) << s
    rest = m >> (32 - s)
    acc[row, i] += sign * lo
    acc[row, i + 1] += sign * (rest & np.int64(0xFFFFFFFF))
    acc[row, i + 2] += sign * (rest >> 32)


@njit(cache=True, nogil=True)
def _normalize(acc):
    """Propagate carries: digits 0..K-2 in [0, 2**32), the top one signed (unique form)."""
    for r in range(acc.shape[0]):
        for k in range(acc.shape[1] - 1):
            c = acc[r, k] >> 32
            if c != 0:
                acc[r, k] -= c << 32
                acc[r, k + 1] += c


@njit(cache=True, nogil=True)
def _moments_column(x, n, j, acc1, acc2, flags):
    """The slow path of :func:`_reduce_moments` for a column with a non-finite or huge value."""
    s1 = 0.0
    c1 = 0.0
    s2 = 0.0
    c2 = 0.0
    e2 = 0.0
    for r in range(n):
        v = x[r, j]
        if not math.isfinite(v):
            if v != v:
                flags[j, 0] += 1
            elif v > 0.0:
                flags[j, 1] += 1
            else:
                flags[j, 2] += 1
            continue
        t = s1 + v
        bp = t - s1
        c1 += (s1 - (t - bp)) + (v - bp)
        s1 = t
        if abs(v) > _SQUARE_LIMIT:
            flags[j, 3] += 1
            continue
        p = v * v
        a = _DEKKER * v
        hi = a - (a - v)
        lo = v - hi
        e2 += ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
        t = s2 + p
        bp = t - s2
        c2 += (s2 - (t - bp)) + (p - bp)
        s2 = t
    _add_float(acc1, j, s1)
    _add_float(acc1, j, c1)
    _add_float(acc2, j, s2)
    _add_float(acc2, j, c2)
    _add_float(acc2, j, e2)


@njit(cache=True, nogil=True)
def _reduce_moments(x, n, acc1, acc2, flags):
    """Exact sums of ``x`` and ``x**2`` over rows ``0..n-1`` of every column of ``x``.

    Per column, compensated sums (Knuth's branch-free TwoSum, so that the loop
    over columns vectorises) of ``x``, of ``fl(x * x)`` and of the exact
    rounding error of each square (Veltkamp-Dekker); their float parts are
    then added exactly into the superaccumulators ``acc1``, ``acc2``.
    ``flags[j]``: NaN, +inf, -inf counts and squares too large to track.
    """
    n_s = x.shape[1]
    s1 = np.zeros(n_s)
    c1 = np.zeros(n_s)
    s2 = np.zeros(n_s)
    c2 = np.zeros(n_s)
    e2 = np.zeros(n_s)
    for r in range(n):
        for j in range(n_s):
            v = x[r, j]
            t = s1[j] + v
            bp = t - s1[j]
            c1[j] += (s1[j] - (t - bp)) + (v - bp)
            s1[j] = t
            p = v * v
            a = _DEKKER * v
            hi = a - (a - v)
            lo = v - hi
            e2[j] += ((hi * hi - p) + 2.0 * hi * lo) + lo * lo
            t = s2[j] + p
            bp = t - s2[j]
            c2[j] += (s2[j] - (t - bp)) + (p - bp)
            s2[j] = t
    for j in range(n_s):
        if not (math.isfinite(c1[j]) and math.isfinite(c2[j]) and math.isfinite(e2[j])
                and math.isfinite(s2[j])):
            _moments_column(x, n, j, acc1, acc2, flags)  # rare: redo the column carefully
            continue
        _add_float(acc1, j, s1[j])
        _add_float(acc1, j, c1[j])
        _add_float(acc2, j, s2[j])
        _add_float(acc2, j, c2[j])
        _add_float(acc2, j, e2[j])
    _normalize(acc1)
    _normalize(acc2)


@njit(cache=True, nogil=True, inline="always")  # hot: a call costs more than the work
def _hist_bin(bits, kbits, tiny_bits, huge_bits, h):
    """Page and offset of the float64 whose bit pattern is ``bits``.

    Pages: 0 the negative overflow, ``1..h`` negative binades (largest
    magnitude first), ``h + 1`` the values near zero, ``h + 2..2h + 1``
    positive binades, ``2h + 2`` the positive overflow; ``2**k`` bins a page.
    ``page * 2**k + offset`` increases with the value. The bit patterns of
    positive floats increase with their values, so the offset from
    ``2**low`` shifted right by ``52 - k`` is the binade index times ``2**k``
    plus the top ``k`` bits of the mantissa.
    """
    a = bits & np.int64(0x7FFFFFFFFFFFFFFF)
    if a < tiny_bits:
        return h + 1, 0
    if a >= huge_bits:
        return (0, 0) if bits < 0 else (2 * h + 2, 0)
    u = (a - tiny_bits) >> (52 - kbits)
    binade = u >> kbits
    sub = u & ((1 << kbits) - 1)
    if bits >= 0:
        return h + 2 + binade, sub
    return h - binade, (1 << kbits) - 1 - sub


@njit(cache=True, nogil=True, inline="always")  # hot: a call costs more than the work
def _hist_put(hdir, pool, used, j, page, off, c, lo, hi):
    """Add ``c`` values in ``[lo, hi]`` to a bin of series ``j``; False if out of pages."""
    slot = hdir[j, page]
    if slot < 0:
        if used[0] == pool.shape[0]:
            return False
        slot = used[0]
        used[0] += 1
        hdir[j, page] = slot
    if pool[slot, off, 0] == 0.0:
        pool[slot, off, 1] = lo
        pool[slot, off, 2] = hi
    else:
        if lo < pool[slot, off, 1]:
            pool[slot, off, 1] = lo
        if hi > pool[slot, off, 2]:
            pool[slot, off, 2] = hi
    pool[slot, off, 0] += c
    return True


@njit(cache=True, nogil=True)
def _reduce_hist(xt, n, hdir, pool, used, nan, kbits, low, high, j0, r0):
    """Histogram rows ``0..n-1`` of each series ``xt[j]``, from ``(j0, r0)`` on.

    Returns where it stopped: ``(series, row)``, ``series == len(xt)`` when
    done, else the page pool is full (the caller grows it and calls again).
    """
    bits = xt.view(np.int64)
    tiny_bits = np.int64(1023 + low) << 52  # the bit pattern of 2**low
    huge_bits = np.int64(1023 + high) << 52
    h = high - low
    for j in range(j0, xt.shape[0]):
        for i in range(r0 if j == j0 else 0, n):
            v = xt[j, i]
            if v != v:
                nan[j] += 1
                continue
            v += 0.0  # -0.0 -> 0.0: one canonical zero
            page, off = _hist_bin(bits[j, i], kbits, tiny_bits, huge_bits, h)
            if not _hist_put(hdir, pool, used, j, page, off, 1.0, v, v):
                return j, i
    return xt.shape[0], 0


@njit(cache=True, nogil=True)
def _merge_hist(hdir, pool, used, idx, count, vmin, vmax, kbits, n_bins, i0):
    """Add sparse bins (flat index ``series * n_bins + bin``) from ``i0`` on; see _reduce_hist."""
    per = 1 << kbits
    for i in range(i0, idx.shape[0]):
        j = idx[i] // n_bins
        b = idx[i] % n_bins
        if not _hist_put(hdir, pool, used, j, b // per, b % per, float(count[i]), vmin[i],
                         vmax[i]):
            return i
    return idx.shape[0]


@njit(cache=True, nogil=True)
def _hist_export(hdir, pool, per):
    """Occupied bins in increasing flat index: (index, count, min, max)."""
    n = 0
    for j in range(hdir.shape[0]):
        for page in range(hdir.shape[1]):
            slot = hdir[j, page]
            if slot >= 0:
                for off in range(per):
                    if pool[slot, off, 0] > 0.0:
                        n += 1
    idx = np.empty(n, np.int64)
    count = np.empty(n, np.int64)
    vmin = np.empty(n)
    vmax = np.empty(n)
    k = 0
    n_bins = hdir.shape[1] * per
    for j in range(hdir.shape[0]):
        for page in range(hdir.shape[1]):
            slot = hdir[j, page]
            if slot >= 0:
                for off in range(per):
                    if pool[slot, off, 0] > 0.0:
                        idx[k] = j * n_bins + page * per + off
                        count[k] = np.int64(pool[slot, off, 0])
                        vmin[k] = pool[slot, off, 1]
                        vmax[k] = pool[slot, off, 2]
                        k += 1
    return idx, count, vmin, vmax


@njit(cache=True, nogil=True)
def _kth_smallest(a, k):
    """The ``k``-th smallest (from 0) of ``a``, which it reorders: Hoare's quickselect.

    (``np.partition`` does the same but takes numba ten seconds to compile.)
    """
    lo = 0
    hi = a.shape[0] - 1
    while lo < hi:
        x, y, z = a[lo], a[(lo + hi) >> 1], a[hi]  # median of three
        pivot = max(min(x, y), min(max(x, y), z))
        i = lo
        j = hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return a[k]  # between j and i: equal to the pivot
    return a[k]


@njit(cache=True, nogil=True)
def _tail_compact(buf, nv, bval, bcnt, j, m):
    """Keep the ``m`` largest values of series ``j``, ties at the boundary as a count.

    Values ``> bval[j]`` are in ``buf[j, :nv[j]]``; ``bcnt[j]`` copies of
    ``bval[j]`` (0 until the series has ``m`` values).
    """
    k = nv[j]
    if k < m:
        return  # fewer than m values above the boundary: nothing to drop
    tmp = buf[j, :k].copy()
    b = _kth_smallest(tmp, k - m)  # the m-th largest; above the old boundary, which goes
    keep = 0
    eq = 0
    for i in range(k):
        v = tmp[i]
        if v > b:
            buf[j, keep] = v
            keep += 1
        elif v == b:
            eq += 1
    nv[j] = keep
    bval[j] = b
    bcnt[j] = eq


@njit(cache=True, nogil=True, inline="always")  # hot: a call costs more than the work
def _tail_insert(buf, nv, bval, bcnt, j, v, m):
    if bcnt[j] > 0:
        if v < bval[j]:
            return
        if v == bval[j]:
            bcnt[j] += 1
            return
    if nv[j] == buf.shape[1]:
        _tail_compact(buf, nv, bval, bcnt, j, m)
        if bcnt[j] > 0:
            if v < bval[j]:
                return
            if v == bval[j]:
                bcnt[j] += 1
                return
    buf[j, nv[j]] = v
    nv[j] += 1


@njit(cache=True, nogil=True)
def _reduce_tails(xt, n, buf, nv, bval, bcnt, nan, floor, m):
    for j in range(xt.shape[0]):
        for r in range(n):
            v = xt[j, r] + 0.0
            if v != v:
                nan[j] += 1
            elif v >= floor[j]:
                _tail_insert(buf, nv, bval, bcnt, j, v, m)


@njit(cache=True, nogil=True)
def _merge_tails(buf, nv, bval, bcnt, values, lengths, obval, obcnt, m):
    """Merge canonical tail sets (series ``j``: ``values[j, :lengths[j]]``, boundary)."""
    for j in range(buf.shape[0]):
        k = lengths[j]
        swap = obcnt[j] > 0 and (bcnt[j] == 0 or obval[j] > bval[j])
        if swap:
            # the other's boundary is higher: start from its state, add ours (our
            # own boundary copies, if any, are below the new boundary)
            add = buf[j, :nv[j]].copy()
            for i in range(k):  # a loop: numba compiles slice assignment for seconds
                buf[j, i] = values[j, i]
            nv[j] = k
            bval[j] = obval[j]
            bcnt[j] = obcnt[j]
        else:
            add = values[j, :k].copy()
        for i in range(add.shape[0]):  # one call site: the inlined insert compiles once
            _tail_insert(buf, nv, bval, bcnt, j, add[i], m)
        if not swap and obcnt[j] > 0 and obval[j] == bval[j]:
            bcnt[j] += obcnt[j]


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

    The lowest order statistic :func:`lobsim.analysis.summary._quantile_se` touches:
    the lower neighbour of numpy's quantile index and the lower end of the
    spacing used for the standard error; plus the boundary's ties (kept as a
    count, not here).
    """
    lowest = n - 1
    h = max(1, int(math.sqrt(n)))
    for p in levels:
        v = (n - 1) * np.float64(p)
        prev = n - 1 if v >= n - 1 else math.floor(v)
        lo = min(max(int(p * n) - h, 0), n - 1)
        lowest = min(lowest, prev, lo)
    return n - lowest


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
                      hist_bits: int = HIST_MANTISSA_BITS) -> Plan:
        """The plan of a run of ``scenarios`` scenarios labelled like ``template``.

        Parameters
        ----------
        template : xarray.Dataset
            A labelled run (any number of scenarios; only its layout is used).
        scenarios, block_size : int
            The run's size and block size.
        hist_bits : int
            ``k``: histogram bins per binade are ``2**k``.
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
        moments += [(f"bond.{k}", n_b) for k in _summary.shortfall_series(tpl)]
        dy = (tpl.sizes["department"], tpl.sizes["year"])
        moments += [(f"department.{k}", dy) for k in ("pay", "save", "net", "pays_more")]
        hists.append(("department.pay", dy))
        if "tranche_payment" in tpl:
            n_t = (tpl.sizes["tranche"],)
            moments += [("tranche.guarantee", n_t), ("tranche.protection", n_t)]
        if "holding" in tpl.dims:
            n_h = tpl.sizes["holding"]
            moments += [(f"holding.{k}", (n_h,)) for k in _summary.HOLDING_MEANS]
            moments += [(f"holding.{k}", (n_h, tpl.sizes["time"]))
                        for k in ("flow", "after_tax_flow")]
        keep = min(scenarios, tail_size(scenarios, _summary.TAIL_LEVELS) + 2)
        return cls(scenarios=scenarios, block_size=block_size, template=tpl.load(),
                   groups=tuple(groups), moments=Columns(tuple(moments)),
                   hists=Columns(tuple(hists)), tails=Columns(tuple(tails)), tail_keep=keep,
                   hist_bits=hist_bits)

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
        arrays.update({f"bond.{k}": x for k, x in _summary.shortfall_series(ds).items()})
        if "holding" in ds.dims:
            arrays.update({f"holding.{k}": x for k, x in _tax.holding_series(ds).items()})
        pay = ds.department_payment.values
        save = ds.department_saving.values
        arrays["department.pay"] = pay
        arrays["department.save"] = save
        arrays["department.net"] = save - pay
        arrays["department.pays_more"] = pay > save
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
        if self.blocks[block]:
            raise ValueError(f"block {block} is already in this accumulator")
        p = self.plan
        n = ds.sizes["scenario"]
        arrays = p.block_arrays(ds)
        x = _fill(p.moments, arrays, n, "moments", p.block_size)
        _reduce_moments(x, n, self.sum1, self.sum2, self.flags)
        x = _fill(p.hists, arrays, n, "hists", p.block_size, series_major=True)
        j, r = 0, 0
        while True:
            j, r = _reduce_hist(x, n, self.hist_dir, self.hist_pool, self.hist_used,
                                self.hist_nan, p.hist_bits, p.hist_low, p.hist_high, j, r)
            if j == x.shape[0]:
                break
            self._grow_pool()
        x = _fill(p.tails, arrays, n, "tails", p.block_size, series_major=True)
        self._room(n)
        _reduce_tails(x, n, self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt,
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
        _normalize(self.sum1)
        _normalize(self.sum2)
        self.flags += state["flags"]
        idx = np.asarray(state["hist_index"], np.int64)
        i = 0
        while True:
            i = _merge_hist(self.hist_dir, self.hist_pool, self.hist_used, idx,
                            state["hist_count"], state["hist_min"], state["hist_max"],
                            self.plan.hist_bits, self.plan.n_bins, i)
            if i == idx.size:
                break
            self._grow_pool()
        self.hist_nan += state["hist_nan"]
        lengths = np.asarray(state["tail_length"], np.int64)
        self._room(int(lengths.max(initial=0)))
        _merge_tails(self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt,
                     np.asarray(state["tail_values"], float), lengths,
                     np.asarray(state["tail_boundary"], float),
                     np.asarray(state["tail_boundary_count"], np.int64), self.plan.tail_keep)
        self.tail_nan += state["tail_nan"]
        return self

    def _grow_pool(self) -> None:
        pool = np.zeros((2 * self.hist_pool.shape[0], *self.hist_pool.shape[1:]))
        pool[:self.hist_pool.shape[0]] = self.hist_pool
        self.hist_pool = pool

    def _compact(self) -> None:
        for j in range(self.tail_nv.size):
            _tail_compact(self.tail_buf, self.tail_nv, self.tail_bval, self.tail_bcnt, j,
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
        idx, count, vmin, vmax = _hist_export(self.hist_dir, self.hist_pool,
                                              1 << self.plan.hist_bits)
        lengths = self.tail_nv.copy()
        width = int(lengths.max(initial=0))
        for j in range(lengths.size):  # sorted in place, NaN after the end: no copy of the tails
            self.tail_buf[j, :lengths[j]].sort()
            self.tail_buf[j, lengths[j]:width] = np.nan
        values = self.tail_buf[:, :width]
        return {
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
                  self.tail_nv, self.tail_bcnt, self.tail_nan):
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
        return _Finalizer(self).dataset()


def states_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two :meth:`Accumulator.state` dicts are bit for bit the same."""
    return a.keys() == b.keys() and all(
        np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
        and np.asarray(a[k]).shape == np.asarray(b[k]).shape
        and np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes() for k in a)


# ---------------------------------------------------------------------------
# From accumulators to the summary Dataset
# ---------------------------------------------------------------------------
def _to_int(digits: np.ndarray) -> int:
    return sum(int(d) << (32 * k) for k, d in enumerate(digits.tolist()))


def _ratio(num: int, den: int) -> float:
    """``num / den`` correctly rounded (Python's integer true division)."""
    try:
        return num / den
    except OverflowError:
        return math.copysign(math.inf, num)


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation in ``np.quantile`` (numpy.lib._function_base_impl._lerp)."""
    d = b - a
    return b - d * (1.0 - t) if t >= 0.5 else a + d * t


def np_quantile(order_stat: Any, n: int, p: float) -> float:
    """``np.quantile(x, p)`` (method 'linear') from a function giving ``x``'s order statistics."""
    v = float((n - 1) * np.float64(p))
    if v >= n - 1:
        return float(order_stat(n - 1))
    prev = math.floor(v)
    return _lerp(float(order_stat(prev)), float(order_stat(prev + 1)), v - prev)


class _Finalizer:
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
        v1 = _to_int(self.acc.sum1[j])
        v2 = _to_int(self.acc.sum2[j])
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
    def _hist_order_stat(self, j: int) -> Any:
        per = 1 << self.plan.hist_bits
        dense = np.zeros((self.plan.n_bins, 3))
        for page in np.flatnonzero(self.acc.hist_dir[j] >= 0):
            dense[page * per:(page + 1) * per] = self.acc.hist_pool[self.acc.hist_dir[j, page]]
        count = dense[:, 0].astype(np.int64)
        cum = np.cumsum(count)
        vmin = dense[:, 1]
        vmax = dense[:, 2]

        def stat(r: int) -> float:
            b = int(np.searchsorted(cum, r, side="right"))
            first = int(cum[b] - count[b])
            lo, hi = float(vmin[b]), float(vmax[b])
            if r == first:
                return lo
            if r == cum[b] - 1:
                return hi
            return lo + (hi - lo) * 0.5

        return stat

    def _quantile_se(self, stat: Any, levels: tuple[float, ...],
                     nan: bool) -> tuple[np.ndarray, np.ndarray]:
        """:func:`lobsim.analysis.summary._quantile_se` for one series from its order statistics."""
        n = self.n
        q = np.empty(len(levels))
        se = np.empty(len(levels))
        if nan:
            q[:] = np.nan
            se[:] = np.nan
            return q, se
        for i, p in enumerate(levels):
            q[i] = np_quantile(stat, n, p)
            h = max(1, int(math.sqrt(n)))
            lo = min(max(int(p * n) - h, 0), n - 1)
            hi = min(max(int(p * n) + h, 0), n - 1)
            spacing = (np.float64(stat(hi)) - np.float64(stat(lo))) / max(hi - lo, 1) * n
            se[i] = math.sqrt(p * (1.0 - p) / n) * spacing
        return q, se

    def quantiles(self, name: str, levels: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
        off, shape = self.h_off[name]
        size = int(np.prod(shape, dtype=np.int64))
        qs, ses = [], []
        for i in range(size):
            j = off + i
            q, se = self._quantile_se(self._hist_order_stat(j), levels,
                                      bool(self.acc.hist_nan[j]))
            qs.append(q)
            ses.append(se)
        return (np.stack(qs, axis=-1).reshape(len(levels), *shape),
                np.stack(ses, axis=-1).reshape(len(levels), *shape))

    # VaR and ES from tail sets --------------------------------------------
    def tail(self, name: str, levels: tuple[float, ...]) -> tuple[np.ndarray, ...]:
        off, shape = self.t_off[name]
        size = int(np.prod(shape, dtype=np.int64))
        out = np.empty((4, len(levels), size))
        acc = self.acc
        for i in range(size):
            j = off + i
            vals = np.sort(acc.tail_buf[j, :acc.tail_nv[j]])
            bval, bcnt = float(acc.tail_bval[j]), int(acc.tail_bcnt[j])
            kept = vals.size + bcnt
            first = self.n - kept  # rank of the lowest kept value

            def stat(r: int, _v: np.ndarray = vals, _b: float = bval, _c: int = bcnt,
                     _f: int = first) -> float:
                k = r - _f
                if k < 0:
                    raise AssertionError("order statistic below the tail set")
                return _b if k < _c else float(_v[k - _c])

            var, var_se = self._quantile_se(stat, levels, bool(acc.tail_nan[j]))
            out[0, :, i] = var
            out[1, :, i] = var_se
            for li, level_var in enumerate(var):
                if math.isnan(level_var):
                    out[2:, li, i] = np.nan
                    continue
                sel = vals[vals >= level_var]
                nb = bcnt if bval >= level_var else 0
                count = sel.size + nb
                exact = np.zeros((1, N_DIGITS), np.int64)
                for v in sel:
                    _add_float(exact, 0, float(v))
                _normalize(exact)
                total = _to_int(exact[0]) + (nb * _to_int(_float_digits(bval)) if nb else 0)
                es = _ratio(total, max(count, 1) << EXP_OFFSET)
                sq = float(((sel - es) ** 2).sum()) + nb * (bval - es) ** 2
                out[2, li, i] = es
                out[3, li, i] = math.sqrt(sq / max(count - 1, 1) / max(count, 1))
        return tuple(out[k].reshape(len(levels), *shape) for k in range(4))

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
        # mirrors lobsim.analysis.summary.summarize, statistic by statistic
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
        data["rmspe"] = (("bond",), tpl.rmspe.values)
        _, _, noise = self.moments("bond.prediction_error")
        with np.errstate(divide="ignore"):
            data["signal_to_noise"] = (("bond",), tpl.target_units.values / noise)
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
        out = xr.Dataset(data, coords=coords)
        out = self._structure(out, groups)
        if "holding" in tpl.dims:  # mirrors the holdings part of summarize
            means = {k: self.moments(f"holding.{k}")[:2]
                     for k in (*_summary.HOLDING_MEANS, "flow", "after_tax_flow")}
            out = _summary.add_holding_stats(out, tpl, means)
        out.attrs.update(tpl.attrs)
        out.attrs.update(
            scenarios=self.n, summary_method="streaming",
            quantile_relative_error=2.0 ** -(self.plan.hist_bits + 1),
            quantile_absolute_error=2.0 ** self.plan.hist_low)
        return out

    def _structure(self, out: xr.Dataset, groups: dict[str, Group]) -> xr.Dataset:
        # mirrors lobsim.analysis.summary._add_structure_stats
        tpl = self.plan.template
        data: dict[str, Any] = {}
        coords: dict[str, Any] = {}
        if "basket_member" in tpl:
            member = tpl.basket_member.values.astype(float)
            alone = out.loss_es.values @ member.T
            data["basket_standalone_es_sum"] = (("level", "basket"), alone)
            data["basket_diversification_benefit"] = (("level", "basket"),
                                                      alone - out.basket_loss_es.values)
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


def _float_digits(x: float) -> np.ndarray:
    d = np.zeros((1, N_DIGITS), np.int64)
    _add_float(d, 0, x)
    _normalize(d)
    return d[0]
