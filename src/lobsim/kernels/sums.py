"""Sums of a summary's columns in one compiled pass each (numba only).

Two kinds, each for a promise the summary keeps:

* **Correctly rounded sums** (:func:`exact_sum`, :func:`exact_prefix_sums`):
  Shewchuk's non-overlapping partials with the final round-half-even fix-up,
  the algorithm of CPython's ``math.fsum``. A correctly rounded sum is
  unique, so the result is ``math.fsum``'s bit for bit, and a function of the
  multiset of values alone: the tail statistics of
  :mod:`lobsim.analysis.stats` sum atoms with it so that a streaming summary
  (which keeps only the tail's atoms) gets the same bits as the full sample.
  Non-finite summands and intermediate overflow are reported by a status,
  and the caller hands those rare inputs to ``math.fsum`` for its exact
  result or error.
* **numpy's own summation order** (:func:`column_moments`, :func:`pairwise_sum`):
  a mean and standard deviation per column computed with the additions
  numpy's ``mean``/``std`` perform on a C-ordered array (rows added one by
  one along axis 0; numpy's pairwise blocks of 8 along the last axis), so
  that the compiled summary gives the bits of the plain numpy one, in one
  pass per column and without copies or casts.

Imports nothing of lobsim.
"""

import math

import numpy as np
from numba import njit

#: Room for the partials: non-overlapping float64 partials of finite summands
#: number at most about (2098 exponent bits + 53) / 53 = 41.
_MAX_PARTIALS = 96
#: Status of :func:`exact_sum`: a NaN or infinity among the summands, or an
#: intermediate overflow (``math.fsum`` decides what that gives).
NOT_FINITE = 1


@njit(cache=True, nogil=True)
def _add_partial(p, n, x):
    """Add ``x`` to the ``n`` partials ``p`` (Shewchuk's grow-expansion); returns the new n.

    A non-finite result is left as the last partial: the caller checks it.
    """
    i = 0
    for j in range(n):
        y = p[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            p[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        p[i] = x
        i += 1
    return i


@njit(cache=True, nogil=True)
def _round_partials(p, n):
    """The correctly rounded value of the partials ``p[:n]`` (round half to even)."""
    if n == 0:
        return 0.0
    n -= 1
    hi = p[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = p[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    # a half-way case: the partials below decide the direction of rounding
    if n > 0 and ((lo < 0.0 and p[n - 1] < 0.0) or (lo > 0.0 and p[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


@njit(cache=True, nogil=True)
def exact_sum(x):
    """Correctly rounded sum of the 1-d array ``x``; returns (sum, status); jit-compiled.

    ``status`` is 0, or :data:`NOT_FINITE` when a summand is not finite or a
    partial overflows (the sum is then meaningless).
    """
    p = np.empty(_MAX_PARTIALS)
    n = 0
    for k in range(x.shape[0]):
        v = x[k]
        if not math.isfinite(v):
            return math.nan, NOT_FINITE
        n = _add_partial(p, n, v)
        if n and not math.isfinite(p[n - 1]):
            return math.nan, NOT_FINITE
    return _round_partials(p, n), 0


@njit(cache=True, nogil=True)
def exact_prefix_sums(x, ends, out):
    """Correctly rounded sums of ``x[:e]`` for each ``e`` of ``ends`` (increasing) into ``out``.

    One pass over ``x[:ends[-1]]`` for all prefixes; returns the status of
    :func:`exact_sum` (``out`` is meaningless unless it is 0); jit-compiled.
    """
    p = np.empty(_MAX_PARTIALS)
    n = 0
    k = 0
    for i in range(ends.shape[0]):
        while k < ends[i]:
            v = x[k]
            if not math.isfinite(v):
                return NOT_FINITE
            n = _add_partial(p, n, v)
            if n and not math.isfinite(p[n - 1]):
                return NOT_FINITE
            k += 1
        out[i] = _round_partials(p, n)
    return 0


@njit(cache=True, nogil=True)
def column_moments(x, w, weighted, mean, sd):
    """Mean and sample sd (ddof 1) of each column of ``x`` (n, k), as numpy computes them.

    ``x`` any real or boolean dtype, values taken as float64 and multiplied by
    ``w[r]`` (n,) if ``weighted``. numpy reduces axis 0 of a C-ordered (n, k)
    array with k > 1 by adding the rows in order, starting from row 0, and
    ``std`` is the square root of ``sum((x - mean)**2) / (n - 1)``: the same
    operations in the same order here, so the bits are numpy's (a single
    column, which numpy sums pairwise, is not this function's case). ``sd``
    is NaN for one row. jit-compiled.
    """
    n, k = x.shape
    for j in range(k):
        mean[j] = np.float64(x[0, j]) * w[0] if weighted else np.float64(x[0, j])
    for r in range(1, n):
        for j in range(k):
            v = np.float64(x[r, j]) * w[r] if weighted else np.float64(x[r, j])
            mean[j] += v
    for j in range(k):
        mean[j] /= n
    if n < 2:
        for j in range(k):
            sd[j] = math.nan
        return
    for j in range(k):
        v = np.float64(x[0, j]) * w[0] if weighted else np.float64(x[0, j])
        d = v - mean[j]
        sd[j] = d * d
    for r in range(1, n):
        for j in range(k):
            v = np.float64(x[r, j]) * w[r] if weighted else np.float64(x[r, j])
            d = v - mean[j]
            sd[j] += d * d
    for j in range(k):
        sd[j] = math.sqrt(sd[j] / (n - 1))


@njit(cache=True, nogil=True)
def block_sum(x, start, n):
    """numpy's sum of at most 128 values ``x[start:start + n]``: 8 accumulators; jit-compiled."""
    if n < 8:
        s = 0.0
        for i in range(n):
            s += x[start + i]
        return s
    r0 = x[start]
    r1 = x[start + 1]
    r2 = x[start + 2]
    r3 = x[start + 3]
    r4 = x[start + 4]
    r5 = x[start + 5]
    r6 = x[start + 6]
    r7 = x[start + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += x[start + i]
        r1 += x[start + i + 1]
        r2 += x[start + i + 2]
        r3 += x[start + i + 3]
        r4 += x[start + i + 4]
        r5 += x[start + i + 5]
        r6 += x[start + i + 6]
        r7 += x[start + i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        s += x[start + i]
        i += 1
    return s


#: Depth of :func:`pairwise_sum`'s explicit stack: halving 2**63 values down
#: to blocks of 128 takes 57 levels.
_PAIRWISE_DEPTH = 64


@njit(cache=True, nogil=True)
def pairwise_sum(x, start, n):
    """numpy's pairwise sum of ``x[start:start + n]`` (blocks of 8 accumulators); jit-compiled.

    The additions of numpy's ``pairwise_sum`` (``loops_utils.h``), which
    ``ndarray.sum`` performs along a contiguous last axis: blocks of at most
    128 summed by :func:`block_sum`, longer runs split at half (rounded
    down to a multiple of 8) and the halves' sums added. The recursion runs
    on an explicit stack: a cached numba function that calls a recursive one
    crashes when it is loaded from the cache (seen here: a segmentation
    fault in the second process of ``flows.waterfall``).
    """
    return block_sum(x, start, n) if n <= 128 else _pairwise_tree(x, start, n)


@njit(cache=True, nogil=True)
def _pairwise_tree(x, start, n):
    """:func:`pairwise_sum` of more than 128 values: numpy's split tree, walked on a stack.

    Apart from the short case so that :func:`pairwise_sum`, called once per
    row by the kernels of lobsim.kernels.flows, stays small enough to inline.
    """
    # post-order walk of numpy's split tree: node (start, size, stage), value stack
    node_start = np.empty(_PAIRWISE_DEPTH, np.int64)
    node_size = np.empty(_PAIRWISE_DEPTH, np.int64)
    node_stage = np.empty(_PAIRWISE_DEPTH, np.int64)
    value = np.empty(_PAIRWISE_DEPTH + 1)
    top = 0
    nv = 0
    node_start[0] = start
    node_size[0] = n
    node_stage[0] = 0
    while top >= 0:
        m = node_size[top]
        if m <= 128:
            value[nv] = block_sum(x, node_start[top], m)
            nv += 1
            top -= 1
            continue
        half = m // 2
        half -= half % 8
        stage = node_stage[top]
        node_stage[top] = stage + 1
        if stage == 0:  # the first half
            node_start[top + 1] = node_start[top]
            node_size[top + 1] = half
        elif stage == 1:  # the second half
            node_start[top + 1] = node_start[top] + half
            node_size[top + 1] = m - half
        else:  # both halves summed: their sum replaces them
            value[nv - 2] = value[nv - 2] + value[nv - 1]
            nv -= 1
            top -= 1
            continue
        node_stage[top + 1] = 0
        top += 1
    return value[0]
