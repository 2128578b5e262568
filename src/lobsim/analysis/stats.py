"""One estimator per statistic, with optional importance weights (docs/model.md section 9.3).

Every output of lobsim that reports a mean, a probability, a quantile (VaR),
an expected shortfall or a diversification benefit computes it here:
:func:`lobsim.analysis.summary.summarize`, the streaming summary
(:mod:`lobsim.scale.streaming`, on its accumulated tail sets and histograms),
risk contributions, set-asides, the report's tables and plots.

**Weights.** A scenario of an importance-sampling run carries its likelihood
ratio ``w = exp(log_weight)``; a plain run has ``w = 1``. Estimators are
*not* self-normalised: a mean is ``sum w x / n``, the tail mass above ``x``
is ``sum w 1{L > x} / n``. That tail mass is unbiased on its own, while
self-normalising divides it by ``sum w / n``, whose noise comes from the
whole sample rather than the tail the tilt was chosen for (Glasserman 2004,
section 4.6). With ``w = 1`` every estimator is exactly the plain one.

**Quantile (VaR).** ``VaR_a = min{x : sum w 1{L > x} / n <= 1 - a}``: for a
plain run the ``ceil(a n)``-th smallest of the ``n`` values (the inverse of
the empirical distribution function, always a simulated value).

**Expected shortfall** (Acerbi and Tasche 2002). The tail at level ``a`` is
the weight ``n (1 - a)`` of the largest losses: the scenarios above VaR in
full and those *at* VaR with the fraction that makes up the rest. ES is the
loss averaged over that tail, ``(sum_{L > VaR} w L + (n (1 - a) - sum_{L >
VaR} w) VaR) / (n (1 - a))``. LOB losses are atoms (nothing, or the whole
principal), so many scenarios tie at VaR; averaging over ``L >= VaR`` (all
ties in) would give a measure that is not subadditive, while the fractional
tie keeps ES coherent, so that a basket's diversification benefit (the sum
of its members' stand-alone ES less its own) is never negative.

**Standard errors.** Means: ``sd(w x) / sqrt n``. ES: the first-order
(envelope) variance of the Rockafellar-Uryasev form, ``sd(w (L - VaR)^+) /
((1 - a) sqrt n)`` (Sun and Hong 2010). VaR: ``sd(w 1{L > VaR}) / sqrt n``
over the loss density near VaR, the density from the weighted spacing of
the distinct values within ``VAR_WINDOW`` of the tail mass; 0 when the
window holds a single value (VaR sits on an atom, whose density is infinite).

Every tail statistic is a function of the sample's *atoms*: its distinct
values in decreasing order with their summed weights (:class:`Atoms`). The
streaming summary keeps only the largest atoms of a series, which is all
these functions read, so it gets the same bits as the full sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from lobsim.kernels import sums

#: Half-width of the window of tail mass in which VaR's density (and the VaR
#: contributions, lobsim.analysis.risk) are estimated, as a fraction of the tail mass.
VAR_WINDOW = 0.25
#: Relative tolerance of tail-mass comparisons: ``n (1 - a)`` of 0.07 x 100 is 7, not 6.99...
_MASS_TOL = 1e-12


def weights(log_weight: Any) -> np.ndarray | None:
    """Scenario weights ``exp(log_weight)``, or None for a plain run (absent or all zero)."""
    if log_weight is None:
        return None
    lw = np.asarray(log_weight, float)
    if not np.any(lw != 0.0):
        return None
    return np.exp(lw)


def run_weights(ds: Any) -> np.ndarray | None:
    """:func:`weights` of a results Dataset (its ``log_weight``, if any)."""
    return weights(ds.log_weight.values) if "log_weight" in ds else None


def _scenario_first(x: Any, dim: str) -> np.ndarray:
    """The values of ``x`` with the scenario axis first (by name for a DataArray)."""
    if hasattr(x, "get_axis_num"):
        return np.moveaxis(np.asarray(x.values), x.get_axis_num(dim), 0)
    return np.asarray(x)


def mean_se(x: Any, w: np.ndarray | None = None,
            dim: str = "scenario") -> tuple[np.ndarray, np.ndarray]:
    """Mean over scenarios and its standard error ``sd(w x) / sqrt n``.

    Parameters
    ----------
    x : DataArray or ndarray
        A DataArray is reduced over its dimension ``dim``; an array over axis 0.
    w : ndarray, shape (scenarios,), optional
        Importance weights (:func:`weights`); None for a plain run.

    Returns
    -------
    mean, se : ndarray
        NaN standard errors for a single scenario.
    """
    a = _scenario_first(x, dim)
    n, shape = a.shape[0], a.shape[1:]
    cols = a.reshape(n, -1)
    if (cols.shape[1] < 2 or n == 0 or cols.dtype.kind not in "biuf"
            or not a.flags.c_contiguous):
        # numpy sums one column, or any axis that is contiguous in memory, pairwise:
        # column_moments has numpy's order only for rows of a C-ordered array
        return _mean_se_numpy(a, w)
    mean = np.empty(cols.shape[1])
    sd = np.empty(cols.shape[1])
    ww = np.empty(0) if w is None else np.ascontiguousarray(w, float)
    # numpy's additions in numpy's order (kernels.sums): the bits of _mean_se_numpy,
    # in one pass over the rows, without a float copy of booleans or of the weighted values
    sums.column_moments(cols, ww, w is not None, mean, sd)
    se = sd / math.sqrt(n)
    return mean.reshape(shape), se.reshape(shape)


def _mean_se_numpy(a: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mean_se` of the scenario-first array ``a`` in plain numpy (its twin in tests)."""
    a = a.astype(float)
    if w is not None:
        a = a * np.asarray(w, float).reshape((-1,) + (1,) * (a.ndim - 1))
    n = a.shape[0]
    mean = a.mean(axis=0)
    se = a.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.full_like(mean, np.nan)
    return mean, se


def exact_sum(x: Any) -> float:
    """``math.fsum(x)``: the correctly rounded sum, compiled (:func:`lobsim.kernels.sums.exact_sum`).

    A NaN, an infinity or an intermediate overflow goes to ``math.fsum``
    itself, for its result or its error.
    """
    a = np.ascontiguousarray(x, float).ravel()
    s, status = sums.exact_sum(a)
    return math.fsum(a.tolist()) if status else float(s)


def exact_prefix_sums(x: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``[math.fsum(x[:e]) for e in ends]``, in one compiled pass (``ends`` any order)."""
    a = np.ascontiguousarray(x, float)
    ends = np.asarray(ends, np.int64)
    order = np.argsort(ends, kind="stable")
    out = np.empty(ends.size)
    if sums.exact_prefix_sums(a, ends[order], out):
        return np.array([math.fsum(a[:e].tolist()) for e in ends.tolist()], float)
    result = np.empty(ends.size)
    result[order] = out
    return result


def probability_se(event: Any, w: np.ndarray | None = None,
                   dim: str = "scenario") -> tuple[np.ndarray, np.ndarray]:
    """Probability of ``event`` (a boolean per scenario) and its standard error."""
    return mean_se(_scenario_first(event, dim), w)


def block_mean_se(x: Any, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over scenarios and its standard error when blocks of scenarios share a draw.

    Under ``--parameter-uncertainty`` the scenarios of one block share its
    parameter draw, so they are not independent: the standard error is the
    cluster-robust one over the blocks of ``block_size`` consecutive rows
    (:func:`block_sums_se` of the blocks' sums). ``x`` is scenario-first (an
    array over axis 0).
    """
    a = np.asarray(x, dtype=float)
    starts = np.arange(0, a.shape[0], block_size)
    return block_sums_se(np.add.reduceat(a, starts, axis=0), block_sizes(a.shape[0], block_size))


def block_sizes(scenarios: int, block_size: int) -> np.ndarray:
    """The scenarios of each block of a run (the last may be short)."""
    starts = np.arange(0, scenarios, block_size)
    return np.diff(np.append(starts, scenarios))


def block_sums_se(sums: Any, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and cluster-robust standard error from the blocks' sums (block-first).

    ``sqrt(B / (B - 1) sum_b (S_b - n_b mean)^2) / n`` over the ``B``
    blocks of ``n_b`` scenarios whose values sum to ``S_b`` (NaN for a
    single block): what a streaming run keeps is enough.
    """
    s = np.asarray(sums, dtype=float)
    w = np.asarray(sizes, dtype=float).reshape((-1,) + (1,) * (s.ndim - 1))
    n, n_blocks = float(w.sum()), s.shape[0]
    mean = s.sum(axis=0) / n
    if n_blocks < 2:
        return mean, np.full_like(mean, np.nan)
    dev = s - w * mean
    return mean, np.sqrt(n_blocks / (n_blocks - 1) * (dev * dev).sum(axis=0)) / n


def block_t_factor(n_blocks: int) -> float:
    """``t_{B-1}(0.975) / Z95``: how much wider a 95% interval is when its standard
    error is estimated from ``B`` blocks (:func:`block_sums_se`, ``B - 1`` degrees of
    freedom) than from a normal se; near 1 for many blocks, 1.4 for 5, NaN for 1."""
    if n_blocks < 2:
        return math.nan
    from scipy.stats import t  # only runs that cluster by block need it

    return float(t.ppf(0.975, n_blocks - 1)) / Z95


#: The one uncertainty convention of every printed interval: two-sided 95%.
CONFIDENCE = 0.95
#: Its normal quantile, Phi^-1(0.975) (scipy.stats.norm.ppf(0.975)).
Z95 = 1.959963984540054


def normal_interval(mean: Any, se: Any) -> tuple[np.ndarray, np.ndarray]:
    """The 95% interval ``mean -+ Z95 se`` of a Monte Carlo mean (CLT)."""
    m, e = np.asarray(mean, dtype=float), np.asarray(se, dtype=float)
    return m - Z95 * e, m + Z95 * e


def probability_interval(p: Any, se: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 95% Wilson score interval of a probability estimated on ``n`` scenarios.

    Wilson (1927), not ``p -+ 1.96 se``: it stays inside [0, 1] and is not
    empty at ``p = 0`` or ``1`` (a bond that never defaulted in 10,000
    scenarios gets [0, 3.8e-4], not [0, 0]). With importance weights the
    count is the effective one, ``p (1 - p) / se^2``, which is ``n`` for a
    plain run; where that is undefined (``se = 0``) ``n`` itself.
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(se > 0, p * (1.0 - p) / np.where(se > 0, se, 1.0) ** 2, float(n))
    n_eff = np.where(n_eff > 0, n_eff, float(n))
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = Z95 / (1 + z2 / n_eff) * np.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff * n_eff))
    return np.maximum(centre - half, 0.0), np.minimum(centre + half, 1.0)


# --------------------------------------------------------------------------
# Atoms: what every tail statistic reads
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Atoms:
    """Distinct values of a sample in decreasing order with their weights.

    ``weight`` sums ``w``, ``weight2`` sums ``w**2`` over the scenarios of
    each value (both the counts for a plain run). ``scenarios`` is the
    sample's size ``n`` and ``total`` its whole weight (``n`` for a plain
    run); the atoms may be only the largest of the sample, as long as they
    hold the tail that is read. ``nan``: the sample has a NaN (every
    statistic is then NaN).
    """

    value: np.ndarray
    weight: np.ndarray
    weight2: np.ndarray
    scenarios: int
    total: float
    nan: bool = False

    @classmethod
    def of(cls, x: Any, w: np.ndarray | None = None) -> Atoms:
        """The atoms of a sample ``x`` (1-d) with weights ``w``."""
        x = np.asarray(x, float).ravel()
        n = x.size
        if np.isnan(x).any():
            return cls(np.empty(0), np.empty(0), np.empty(0), n, float(n), True)
        if w is None:
            xs = np.sort(x)[::-1]
            if n == 0:
                return cls(xs, xs, xs, 0, 0.0)
            # the counts of the distinct values: the sums of ones np.add.reduceat would give
            starts = np.concatenate(([0], np.flatnonzero(xs[1:] != xs[:-1]) + 1))
            count = np.diff(starts, append=n).astype(float)
            return cls(xs[starts], count, count, n, float(n))
        else:
            w = np.asarray(w, float)
            order = np.lexsort((w, -x))  # ties ordered by weight: a function of the multiset
            xs, ws = x[order], w[order]
        if n == 0:
            return cls(xs, ws, ws, 0, 0.0)
        starts = np.concatenate(([0], np.flatnonzero(xs[1:] != xs[:-1]) + 1))
        weight = np.add.reduceat(ws, starts)
        weight2 = weight if w is None else np.add.reduceat(ws * ws, starts)
        total = float(n) if w is None else exact_sum(ws)
        return cls(xs[starts], weight, weight2, n, total)

    @cached_property
    def cumulative(self) -> np.ndarray:
        """Cumulative weight from the largest atom down (``np.cumsum(weight)``), computed once.

        Every tail statistic at every level searches it (a frozen dataclass
        still caches: the value goes to the instance's ``__dict__``).
        """
        return np.cumsum(self.weight)

    @classmethod
    def of_counts(cls, value: np.ndarray, count: np.ndarray, scenarios: int,
                  nan: bool = False) -> Atoms:
        """Atoms of a plain sample from distinct ``value`` (any order) and their counts."""
        value = np.asarray(value, float)
        order = np.argsort(-value, kind="stable")
        c = np.asarray(count, float)[order]
        return cls(value[order], c, c, scenarios, float(scenarios), nan)


def _mass(a: Atoms, level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    # rounded to 9 decimals, as set-aside ranks are: 100 x (1 - 0.95) is 5, not 5.000000000000004
    return min(round(a.scenarios * (1.0 - level), 9), a.total)


def _var_index(a: Atoms, mass: float) -> tuple[int, np.ndarray]:
    """Index of the VaR atom (the first whose cumulative weight exceeds ``mass``), and the cums."""
    cum = a.cumulative
    j = int(np.searchsorted(cum, mass * (1.0 + _MASS_TOL), side="right"))
    return min(j, a.value.size - 1), cum


def quantile(a: Atoms, level: float) -> float:
    """``VaR_level``: the least ``x`` with weight at most ``n (1 - level)`` above it."""
    if a.nan or a.value.size == 0:
        return math.nan
    j, _ = _var_index(a, _mass(a, level))
    return float(a.value[j])


def _sd_mean(s1: float, s2: float, n: int) -> float:
    """Sample sd (ddof 1) of ``n`` values with sum ``s1`` and sum of squares ``s2``."""
    if n < 2:
        return math.nan
    return math.sqrt(max(s2 - s1 * s1 / n, 0.0) / (n - 1))


def quantile_se(a: Atoms, level: float) -> float:
    """Standard error of :func:`quantile` (see the module docstring)."""
    return float(quantile_ses(a, (level,))[0])


def quantile_ses(a: Atoms, levels: tuple[float, ...]) -> np.ndarray:
    """:func:`quantile_se` at each of ``levels``, the weight sums above VaR in one pass."""
    out = np.full(len(levels), math.nan)
    n = a.scenarios
    if a.nan or a.value.size == 0 or n < 2:
        return out
    cum = a.cumulative
    last = a.value.size - 1
    found = []
    for i, level in enumerate(levels):
        mass = _mass(a, level)
        j = min(int(np.searchsorted(cum, mass * (1.0 + _MASS_TOL), side="right")), last)
        p = 1.0 - level
        lo = min(int(np.searchsorted(cum, n * p * (1.0 - VAR_WINDOW))), last)
        hi = min(int(np.searchsorted(cum, n * p * (1.0 + VAR_WINDOW))), last)
        spread = float(a.value[lo] - a.value[hi])
        if not spread > 0.0:
            out[i] = 0.0  # VaR sits on an atom: the density there is infinite
            continue
        found.append((i, j, float(cum[hi] - cum[lo]) / n / spread))
    if not found:
        return out
    ends = np.array([j for _, j, _ in found], np.int64)
    s1 = exact_prefix_sums(a.weight, ends)
    # a plain run's squared weights are its weights (one array): sum them once
    s2 = s1 if a.weight2 is a.weight else exact_prefix_sums(a.weight2, ends)
    for k, (i, _, density) in enumerate(found):
        out[i] = _sd_mean(float(s1[k]), float(s2[k]), n) / math.sqrt(n) / density
    return out


@dataclass(frozen=True)
class TailEstimate:
    """VaR and expected shortfall of a loss at one level, with standard errors.

    ``tail_ess`` is the effective number of scenarios in the tail,
    ``(sum q)^2 / sum q^2`` over the tail measure: ``n (1 - level)`` for
    plain sampling (up to the fractional tie), more when importance sampling
    puts more weight-light scenarios there.
    """

    level: float
    var: float
    var_se: float
    es: float
    es_se: float
    scenarios: int
    tail_ess: float


def tail(a: Atoms, level: float) -> TailEstimate:
    """VaR, Acerbi-Tasche expected shortfall and their standard errors from atoms."""
    n = a.scenarios
    if a.nan or a.value.size == 0:
        return TailEstimate(level, math.nan, math.nan, math.nan, math.nan, n, math.nan)
    mass = _mass(a, level)
    j, cum = _var_index(a, mass)
    var = float(a.value[j])
    above = float(cum[j - 1]) if j > 0 else 0.0
    rest = max(mass - above, 0.0)  # the fractional tie at VaR
    v, wt, wt2 = a.value[:j], a.weight[:j], a.weight2[:j]
    es = (exact_sum(wt * v) + rest * var) / mass
    excess = v - var
    es_sd = _sd_mean(exact_sum(wt * excess), exact_sum(wt2 * excess * excess), n)
    es_se = es_sd / ((1.0 - level) * math.sqrt(n)) if n > 1 else math.nan
    frac = rest / float(a.weight[j])
    sq = exact_sum(wt2) + frac * frac * float(a.weight2[j])
    ess = mass * mass / sq if sq > 0.0 else 0.0
    return TailEstimate(level=level, var=var, var_se=quantile_se(a, level), es=es,
                        es_se=es_se, scenarios=n, tail_ess=ess)


def expected_shortfall(a: Atoms, level: float) -> float:
    """Acerbi-Tasche expected shortfall at ``level`` (see the module docstring)."""
    return tail(a, level).es


def tail_estimate(loss: np.ndarray, level: float,
                  log_weight: np.ndarray | None = None) -> TailEstimate:
    """VaR and expected shortfall of a sample of losses at ``level``, with standard errors."""
    return tail(Atoms.of(loss, weights(log_weight)), level)


def tail_measure(loss: np.ndarray, level: float,
                 log_weight: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """VaR and the tail measure ``q`` (``sum q = 1``) of ``loss`` at ``level``.

    ``q`` is ``w / (n (1 - level))`` above VaR, the common fraction of that
    at VaR which makes up the tail's weight, 0 below: the expected shortfall
    is ``q @ loss`` up to rounding (:func:`tail` sums it exactly), and
    ``q @ x`` is the mean of any ``x`` over the same tail (Euler
    contributions, the cross-entropy tilt).
    """
    loss = np.asarray(loss, float)
    w = weights(log_weight)
    a = Atoms.of(loss, w)
    mass = _mass(a, level)
    j, cum = _var_index(a, mass)
    var = float(a.value[j])
    above = float(cum[j - 1]) if j > 0 else 0.0
    frac = max(mass - above, 0.0) / float(a.weight[j])
    ww = np.ones(loss.size) if w is None else w
    q = np.where(loss > var, ww, 0.0) + np.where(loss == var, ww * frac, 0.0)
    return var, q / mass


def var_window(loss: np.ndarray, level: float, w: np.ndarray | None = None) -> np.ndarray:
    """Weights of the scenarios whose tail position lies within VAR_WINDOW of VaR's."""
    loss = np.asarray(loss, float)
    n = loss.size
    ww = np.ones(n) if w is None else np.asarray(w, float)
    order = np.argsort(-loss, kind="stable")
    cum = np.cumsum(ww[order]) / n
    p = 1.0 - level
    inside = (cum >= p * (1.0 - VAR_WINDOW)) & (cum - ww[order] / n <= p * (1.0 + VAR_WINDOW))
    out = np.zeros(n)
    out[order[inside]] = ww[order[inside]]
    return out


# --------------------------------------------------------------------------
# Column-wise, for summaries
# --------------------------------------------------------------------------
def _columns(x: Any, dim: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """The series of ``x`` as contiguous float rows, shape (series, scenarios), and their shape."""
    a = _scenario_first(x, dim)
    # one transposing copy: each series is then a contiguous row (Atoms.of copies nothing)
    return np.ascontiguousarray(a.reshape(a.shape[0], -1).T, dtype=float), a.shape[1:]


def quantiles(x: Any, levels: tuple[float, ...], w: np.ndarray | None = None,
              dim: str = "scenario") -> tuple[np.ndarray, np.ndarray]:
    """:func:`quantile` and :func:`quantile_se` of every column, shape (levels, ...)."""
    cols, shape = _columns(x, dim)
    q = np.empty((len(levels), cols.shape[0]))
    se = np.empty_like(q)
    for c in range(cols.shape[0]):
        a = Atoms.of(cols[c], w)
        for i, p in enumerate(levels):
            q[i, c] = quantile(a, p)
        se[:, c] = quantile_ses(a, levels)
    return q.reshape(len(levels), *shape), se.reshape(len(levels), *shape)


def tails(x: Any, levels: tuple[float, ...], w: np.ndarray | None = None,
          dim: str = "scenario") -> tuple[np.ndarray, ...]:
    """VaR, its se, ES and its se of every column of ``x``, each shape (levels, ...)."""
    cols, shape = _columns(x, dim)
    return tails_of([Atoms.of(cols[c], w) for c in range(cols.shape[0])], levels, shape)


def tails_of(atoms: list[Atoms], levels: tuple[float, ...],
             shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """VaR, its se, ES and its se of each series' atoms, each shape (levels, *shape)."""
    out = np.empty((4, len(levels), len(atoms)))
    for c, a in enumerate(atoms):
        for i, p in enumerate(levels):
            t = tail(a, p)
            out[:, i, c] = (t.var, t.var_se, t.es, t.es_se)
    return tuple(out[k].reshape(len(levels), *shape) for k in range(4))


def standalone_sum(es: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Sum of stand-alone ES of each basket's members, exactly rounded.

    ``es`` (..., bond), ``member`` (basket, bond) booleans; returns (..., basket).
    """
    es = np.asarray(es, float)
    member = np.asarray(member, bool)
    out = np.empty((*es.shape[:-1], member.shape[0]))
    for k in range(member.shape[0]):
        sel = es[..., member[k]]
        out[..., k] = np.apply_along_axis(math.fsum, -1, sel) if sel.shape[-1] else 0.0
    return out


def diversification_benefit(standalone: Any, basket_es: Any) -> Any:
    """The sum of the members' stand-alone ES less the basket's (never negative for ES)."""
    return standalone - basket_es
