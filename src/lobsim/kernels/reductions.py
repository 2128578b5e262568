"""Mergeable, partition-independent reductions of a streaming summary (numba only).

The jit-compiled loops that :mod:`lobsim.scale.streaming` reduces each block
of scenarios with, and merges accumulators by: an exact fixed-point
superaccumulator for sums (:func:`add_float`, :func:`reduce_moments`),
paged histograms with per-bin minimum and maximum (:func:`reduce_hist`,
:func:`merge_hist`, :func:`hist_export`) and exact tail sets of the largest
values with ties at the boundary kept as a count (:func:`reduce_tails`,
:func:`merge_tails`). Each result is a function of the multiset of values
alone, whatever the partition into blocks and the order of merges. Imports
nothing of lobsim.
"""

import math

import numpy as np
from numba import njit

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
def add_float(acc, row, x):
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
def normalize(acc):
    """Propagate carries: digits 0..K-2 in [0, 2**32), the top one signed (unique form)."""
    for r in range(acc.shape[0]):
        for k in range(acc.shape[1] - 1):
            c = acc[r, k] >> 32
            if c != 0:
                acc[r, k] -= c << 32
                acc[r, k + 1] += c


@njit(cache=True, nogil=True)
def _moments_column(x, n, j, acc1, acc2, flags):
    """The slow path of :func:`reduce_moments` for a column with a non-finite or huge value."""
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
    add_float(acc1, j, s1)
    add_float(acc1, j, c1)
    add_float(acc2, j, s2)
    add_float(acc2, j, c2)
    add_float(acc2, j, e2)


@njit(cache=True, nogil=True)
def reduce_moments(x, n, acc1, acc2, flags):
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
        add_float(acc1, j, s1[j])
        add_float(acc1, j, c1[j])
        add_float(acc2, j, s2[j])
        add_float(acc2, j, c2[j])
        add_float(acc2, j, e2[j])
    normalize(acc1)
    normalize(acc2)


@njit(cache=True, nogil=True, inline="always")  # hot: a call costs more than the work
def hist_bin(bits, kbits, tiny_bits, huge_bits, h):
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
def reduce_hist(xt, n, hdir, pool, used, nan, kbits, low, high, j0, r0):
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
            page, off = hist_bin(bits[j, i], kbits, tiny_bits, huge_bits, h)
            if not _hist_put(hdir, pool, used, j, page, off, 1.0, v, v):
                return j, i
    return xt.shape[0], 0


@njit(cache=True, nogil=True)
def merge_hist(hdir, pool, used, idx, count, vmin, vmax, kbits, n_bins, i0):
    """Add sparse bins (flat index ``series * n_bins + bin``) from ``i0`` on; see reduce_hist."""
    per = 1 << kbits
    for i in range(i0, idx.shape[0]):
        j = idx[i] // n_bins
        b = idx[i] % n_bins
        if not _hist_put(hdir, pool, used, j, b // per, b % per, float(count[i]), vmin[i],
                         vmax[i]):
            return i
    return idx.shape[0]


@njit(cache=True, nogil=True)
def hist_export(hdir, pool, per):
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
def kth_smallest(a, k):
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
def tail_compact(buf, nv, bval, bcnt, j, m):
    """Keep the ``m`` largest values of series ``j``, ties at the boundary as a count.

    Values ``> bval[j]`` are in ``buf[j, :nv[j]]``; ``bcnt[j]`` copies of
    ``bval[j]`` (0 until the series has ``m`` values).
    """
    k = nv[j]
    if k < m:
        return  # fewer than m values above the boundary: nothing to drop
    tmp = buf[j, :k].copy()
    b = kth_smallest(tmp, k - m)  # the m-th largest; above the old boundary, which goes
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
def tail_insert(buf, nv, bval, bcnt, j, v, m):
    if bcnt[j] > 0:
        if v < bval[j]:
            return
        if v == bval[j]:
            bcnt[j] += 1
            return
    if nv[j] == buf.shape[1]:
        tail_compact(buf, nv, bval, bcnt, j, m)
        if bcnt[j] > 0:
            if v < bval[j]:
                return
            if v == bval[j]:
                bcnt[j] += 1
                return
    buf[j, nv[j]] = v
    nv[j] += 1


@njit(cache=True, nogil=True)
def reduce_tails(xt, n, buf, nv, bval, bcnt, nan, floor, m):
    for j in range(xt.shape[0]):
        for r in range(n):
            v = xt[j, r] + 0.0
            if v != v:
                nan[j] += 1
            elif v >= floor[j]:
                tail_insert(buf, nv, bval, bcnt, j, v, m)


@njit(cache=True, nogil=True)
def merge_tails(buf, nv, bval, bcnt, values, lengths, obval, obcnt, m):
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
            tail_insert(buf, nv, bval, bcnt, j, add[i], m)
        if not swap and obcnt[j] > 0 and obval[j] == bval[j]:
            bcnt[j] += obcnt[j]
