r"""Per-area factor loadings ``beta[a]``, ``gamma[a]`` estimated on a calibrated panel.

The model of :mod:`lobsim.validation.calibrate` with each area's own
loadings on the national and regional factors (docs/model.md section 3.2)::

    Y[a,t] = alpha[a] + mu[a] t + beta[a] F[t] + gamma[a] G[r,t] + U[a,t] + e[a,t]

Method (docs/real_data.md, Per-area loadings), at the calibrated process:

1. *Factor paths, leaving the area out.* The BLUP of the paths of F and
   G[r] from the regional means with the area's own series removed from
   its region's mean (the calibration's step 4 model: common loadings,
   regional levels and a common trend fixed, trends random). Its own
   noise ``U[a] + e[a]`` is then independent of the regressors, and as
   ``F_hat = E[F | others]``, regressing on it is unbiased (regression
   calibration): the error ``F - F_hat`` is uncorrelated with ``F_hat``.
2. *Per-area GLS.* The area's series, projected off its level and trend
   (absorbed by ``alpha[a]``, ``mu[a]``), on the two projected paths, with
   one area's covariance ``K_W = sigma_U^2 Gamma(phi_U) + sigma_e^2 I``
   up to a scale fitted per area (the data say wards are not equally
   noisy): the raw estimates and their standard errors.
3. *Identification.* The factors' scales are not identified apart from the
   loadings (``beta F = (c beta) (F / c)``), and a region's mean national
   loading is confounded in step 2 with its own factor (the BLUP, with
   common loadings, puts a region's extra national swing into its G). So
   the slopes are scaled to mean 1 within each region (relative loadings),
   and a region's mean national loading comes from its regional mean's GLS
   slope on the national path predicted from the *other* regions (its own
   factor and noise, ``Sigma_G + K / n_r``, then independent of the
   regressor), scaled so that the area-weighted mean is the outcome's
   common value. ``beta[a]`` is the product of the two, ``gamma[a]`` the
   relative slope times the common value (a region's factor is its own, so
   its mean regional loading is its scale). The factor paths' own error is
   shared by the areas of a region and, to first order, moves their slopes
   by one factor, which the scaling removes; the standard errors are those
   of the GLS, scaled alike (the scale's own error, from 10-20 areas, left
   out). A factor whose sigma is 0 (on its boundary) has no path and
   identifies no loading; a region of one area (which the calibration
   refuses) no relative loading; fewer than three regions no regional mean
   national loading.
4. *Shrinkage.* 34 monthly periods give noisy individual slopes, and the
   engine uses a loading as if known (the reason the calibration treats
   trends as random). The loadings are random coefficients: their spread
   ``tau^2`` by moments (the variance of the scaled estimates about the
   common value over what their squared standard errors explain), and each
   area's loading its empirical-Bayes prediction ``c + w (b - c)``,
   ``w = tau^2 / (tau^2 + se^2)``, with posterior sd ``sqrt(w) se``; within
   regions about 1 (relative to the region's mean), between regions (the
   national loading only) about the common value, the two multiplied.
   The panel identifies a spread within regions if the relative slopes
   estimated on the two halves of the periods agree (their correlation
   over areas has a Fisher z above 2: the halves' errors are independent,
   so this does not rest on the standard errors, whose fitted covariance
   is off by a factor shared by a panel's areas), a spread between regions
   if the regions' mean loadings fail Cochran's homogeneity test (their
   squared z about the common value summed, against chi-square with
   ``R - 1`` degrees of freedom, p < 0.025). A spread not
   identified is taken as none, and the loadings keep their centre: every
   area the common value if neither is identified.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from lobsim.errors import ConfigError
from lobsim.model.areas import (
    LOADING_COLUMNS,
    AreaTable,
    OutcomeData,
    csv_rows,
    read_areas,
    read_outcome,
)
from lobsim.validation._reml import ar1_gamma, complement, level_and_trend
from lobsim.validation.calibrate import Calibration

#: The areas file with the loadings `lobsim calibrate --area-loadings` writes beside the universe.
AREAS_WITH_LOADINGS = "areas_loadings.csv"
#: ``|estimate - common| > SIGNIFICANT_SE * se`` counts as a loading that differs.
SIGNIFICANT_SE = 2.0
#: The panel identifies loadings that differ within regions if the halves'
#: agreement has a z above this, and between regions (or without halves) if
#: Cochran's homogeneity test has a p-value below this; else they are taken as equal.
IDENTIFIED_Z = 2.0
IDENTIFIED_P = 0.025
#: Fewest periods in each half of the panel for the split-half check.
MIN_HALF = 8


@dataclass(frozen=True, kw_only=True)
class LoadingEstimates:
    """Per-area estimates of one loading (national or regional).

    Attributes
    ----------
    name : str
        ``"national"`` or ``"regional"``.
    common : float
        The outcome's common value the loadings are scaled to.
    estimate, se : ndarray
        Per area, the scaled GLS estimate and its standard error (NaN where
        not identified).
    loading : ndarray
        Per area, the shrunk loading written to the areas file; NaN where
        the area keeps the common value (not identified, or no spread).
    posterior_sd : ndarray
        Per area, the sd of the shrunk loading about the true one; NaN with
        ``loading``.
    spread_within, spread_between : float
        The estimated sd of the true loadings within regions (relative to
        their region's mean) and of the regions' mean loadings about the
        common value; NaN where not identified (``spread_between`` of the
        regional loading: a region's factor is its own, so its mean loading
        is its scale).
    spread_within_se, spread_between_se : float
        Their standard errors (moments, the squared deviations taken as
        chi-square); NaN at 0 or not identified.
    split_half_r, split_half_z : float
        Correlation over areas of the relative loadings estimated on the
        first and the second half of the periods, and its Fisher z (about
        N(0, 1) with equal loadings); NaN with fewer than 16 periods.
    within_identified, between_identified : bool
        Whether the panel tells each spread from 0 (module docstring, step 4);
        a spread not identified is taken as 0 in the written loadings.
    """

    name: str
    common: float
    estimate: np.ndarray
    se: np.ndarray
    loading: np.ndarray
    posterior_sd: np.ndarray
    spread_within: float
    spread_within_se: float
    spread_between: float
    spread_between_se: float
    split_half_r: float
    split_half_z: float
    within_identified: bool
    between_identified: bool

    @property
    def identified(self) -> int:
        """Areas with an estimate of their own (a finite standard error)."""
        return int(np.isfinite(self.se).sum())

    @property
    def own(self) -> int:
        """Areas whose written loading is their own, not the common value."""
        return int(np.isfinite(self.loading).sum())

    @property
    def significant(self) -> int:
        """Areas whose estimate differs from the common value by more than 2 se."""
        z = np.abs(self.estimate - self.common) / self.se
        return int(np.sum(np.nan_to_num(z, nan=0.0) > SIGNIFICANT_SE))

    def summary(self) -> str:
        """One line: the estimates, how many differ by 2 se, the spreads, what is written."""
        n = self.estimate.size
        if self.identified == 0:
            return (f"{self.name} loading: not identified (no {self.name} factor), "
                    f"{self.common:g} for every area")
        ok = np.isfinite(self.se)
        q05, q95 = np.quantile(self.estimate[ok], [0.05, 0.95])
        chance = 0.0455 * self.identified  # outside 2 sd of a normal, two-sided
        halves = "" if math.isnan(self.split_half_r) else \
            f", halves agree r {self.split_half_r:.2f} (z {self.split_half_z:.1f})"
        parts = [f"{self.identified} areas estimated, {q05:.2f} to {q95:.2f} (5%-95%), median "
                 f"se {float(np.median(self.se[ok])):.2f}, {self.significant} differ from "
                 f"{self.common:g} by > 2 se (about {chance:.0f} by chance)",
                 f"sd within regions {_spread(self.spread_within, self.spread_within_se)}"
                 f"{halves}: {_verdict(self.within_identified)}"]
        if not math.isnan(self.spread_between):
            parts.append(f"between regions {_spread(self.spread_between, self.spread_between_se)}"
                         f": {_verdict(self.between_identified)}")
        written = self.loading[np.isfinite(self.loading)]
        parts.append(f"{self.own} of {n} get their own" + (
            f" ({written.min():.2f} to {written.max():.2f})" if written.size else ""))
        return f"{self.name} loading: " + "; ".join(parts)


def _verdict(identified: bool) -> str:
    return "identified" if identified else "not told from 0"


def _spread(value: float, se: float) -> str:
    return f"{value:.3f} (se {'bound' if math.isnan(se) else f'{se:.3f}'})"


@dataclass(frozen=True, kw_only=True)
class AreaLoadings:
    """Both loadings of every area, in the areas table's order."""

    areas: tuple[str, ...]
    regions: tuple[str, ...]
    national: LoadingEstimates
    regional: LoadingEstimates


def estimate_loadings(cal: Calibration, history: str | Path | OutcomeData,
                      areas: str | Path | AreaTable) -> AreaLoadings:
    """Per-area national and regional loadings at a calibration's process.

    Parameters
    ----------
    cal : Calibration
        :func:`lobsim.validation.calibrate.calibrate` of the same panel.
    history, areas
        As given to it.

    Returns
    -------
    AreaLoadings

    Notes
    -----
    The method is in the module docstring. About 1 s for 215 areas over 34
    months.
    """
    table = areas if isinstance(areas, AreaTable) else read_areas(areas)
    data = history if isinstance(history, OutcomeData) else read_outcome(
        history, None, table, cal.periods_per_year)
    y = np.asarray(data.log_history, dtype=float)
    if tuple(table.ids) != cal.areas or tuple(data.periods) != cal.periods:
        raise ValueError("the calibration is of other areas or periods than this panel")
    region_ids = list(dict.fromkeys(table.regions))
    rindex = np.array([region_ids.index(r) for r in table.regions])
    sizes = np.bincount(rindex, minlength=len(region_ids)).astype(float)
    t = y.shape[1]
    with threadpool_limits(1, "blas"):
        model = _Model.of(cal, t)
        raw, se = _area_slopes(model, y, rindex, sizes)
        region_raw, region_se = _region_slopes(model, y, rindex, sizes)
        halves = None
        if t >= 2 * MIN_HALF:
            half = _Model.of(cal, t // 2)
            halves = (_area_slopes(half, y[:, : t // 2], rindex, sizes)[0],
                      _area_slopes(half, y[:, t - t // 2:], rindex, sizes)[0])
    groups = [np.flatnonzero(rindex == r) for r in range(len(region_ids))]
    common = cal.process.national_loading, cal.process.regional_loading
    agree = [_split_half(halves[0][:, k], halves[1][:, k], groups) if halves else
             (math.nan, math.nan) for k in range(2)]
    national = _combine("national", raw[:, 0], se[:, 0], common[0], groups,
                        (region_raw, region_se, sizes), agree[0])
    regional = _combine("regional", raw[:, 1], se[:, 1], common[1], groups, None, agree[1])
    return AreaLoadings(areas=cal.areas, regions=cal.regions, national=national,
                        regional=regional)


@dataclass(frozen=True)
class _Model:
    """The calibrated covariances (per period) the paths are predicted with."""

    t: int
    sig_f: np.ndarray  # national factor
    sig_g: np.ndarray  # one region's factor and random trend
    noise_w: np.ndarray  # one area's own process, noise and random trend
    k_w: np.ndarray  # one area's own process and noise
    identified: np.ndarray  # (2,) national, regional factor present

    @classmethod
    def of(cls, cal: Calibration, t: int) -> _Model:
        """At the calibration's parameters, over ``t`` periods."""
        p, ppy = cal.per_period, cal.periods_per_year
        tau = level_and_trend(t)[:, 1]
        k_w = (p["area_sigma"] ** 2 * ar1_gamma(p["area_phi"], t)
               + cal.process.measurement_sigma ** 2 * np.eye(t))
        return cls(
            t=t, sig_f=p["national_sigma"] ** 2 * ar1_gamma(p["national_phi"], t),
            sig_g=(p["regional_sigma"] ** 2 * ar1_gamma(p["regional_phi"], t)
                   + (cal.trend_sd_region / ppy) ** 2 * np.outer(tau, tau)),
            noise_w=k_w + (cal.trend_sd_area / ppy) ** 2 * np.outer(tau, tau), k_w=k_w,
            identified=np.array([p["national_sigma"] > 0.0, p["regional_sigma"] > 0.0]))

    def predictor(self, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(Q, (Q^T V Q)^-1)`` of the regional means of regions of ``sizes`` areas.

        ``r = Q core Q^T m`` is ``V^-1`` of the means less their fixed regional
        levels and common trend; the BLUPs of the paths are ``Sigma_F sum_r
        r[r]`` and ``Sigma_G r[r]`` (the calibration's step 4).
        """
        n_r, t = sizes.size, self.t
        tau = level_and_trend(t)[:, 1]
        v = (np.kron(np.ones((n_r, n_r)), self.sig_f) + np.kron(np.eye(n_r), self.sig_g)
             + np.kron(np.diag(1.0 / sizes), self.noise_w))
        q = complement(np.column_stack([np.kron(np.eye(n_r), np.ones((t, 1))),
                                        np.tile(tau, n_r)]))
        return q, np.linalg.inv(q.T @ v @ q)


def _gls(y: np.ndarray, paths: np.ndarray, cov: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray] | None:
    """Slopes of ``y`` on ``paths`` (T, k), both off their level and trend, and their se.

    GLS with the covariance ``cov`` up to a scale fitted from the residuals;
    None if the paths do not determine the slopes.
    """
    q2 = complement(level_and_trend(y.size))
    white = np.linalg.solve(np.linalg.cholesky(q2.T @ cov @ q2), q2.T)
    x, z = white @ paths, white @ y
    xtx = x.T @ x
    if x.shape[1] == 0 or not np.linalg.cond(xtx) < 1e12:
        return None
    b = np.linalg.solve(xtx, x.T @ z)
    scale = float(np.sum((z - x @ b) ** 2)) / (x.shape[0] - x.shape[1])
    return b, np.sqrt(scale * np.diag(np.linalg.inv(xtx)))


def _area_slopes(model: _Model, y: np.ndarray, rindex: np.ndarray, sizes: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-2: each area's GLS slopes on the factor paths predicted without it."""
    n_a, t = y.shape
    n_r = sizes.size
    means = np.array([y[rindex == r].mean(axis=0) for r in range(n_r)])
    raw, se = np.full((n_a, 2), np.nan), np.full((n_a, 2), np.nan)
    for r in range(n_r):
        members = np.flatnonzero(rindex == r)
        if members.size < 2:
            continue  # no other area to see the regional factor in
        loo = sizes.copy()
        loo[r] -= 1.0
        q, core = model.predictor(loo)
        for a in members:
            m = means.copy()
            m[r] = (sizes[r] * means[r] - y[a]) / loo[r]
            resid = (q @ (core @ (q.T @ m.ravel()))).reshape(n_r, t)
            paths = np.column_stack([model.sig_f @ resid.sum(axis=0), model.sig_g @ resid[r]])
            fit = _gls(y[a], paths[:, model.identified], model.k_w)
            if fit is not None:
                raw[a, model.identified], se[a, model.identified] = fit
    return raw, se


def _region_slopes(model: _Model, y: np.ndarray, rindex: np.ndarray, sizes: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each region's mean slope on the national path predicted from the other regions.

    Its own factor is then independent of the regressor, and with its
    noise its covariance is ``Sigma_G + K / n_r``: what identifies a region's
    mean national loading apart from its factor.
    """
    n_r, t = sizes.size, model.t
    means = np.array([y[rindex == r].mean(axis=0) for r in range(n_r)])
    raw, se = np.full(n_r, np.nan), np.full(n_r, np.nan)
    if n_r < 3 or not model.identified[0]:
        return raw, se  # one other region cannot tell F from its own factor
    for r in range(n_r):
        others = np.arange(n_r) != r
        q, core = model.predictor(sizes[others])
        resid = (q @ (core @ (q.T @ means[others].ravel()))).reshape(n_r - 1, t)
        path = model.sig_f @ resid.sum(axis=0)
        fit = _gls(means[r], path[:, None], model.sig_g + model.noise_w / sizes[r])
        if fit is not None:
            raw[r], se[r] = fit[0][0], fit[1][0]
    return raw, se


def _relative(raw: np.ndarray, se: np.ndarray, groups: list[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and their se over their region's mean slope (NaN where none)."""
    rel, rel_se = np.full(raw.size, np.nan), np.full(raw.size, np.nan)
    for members in groups:
        ok = members[np.isfinite(se[members])]
        mean = float(raw[ok].mean()) if ok.size >= 2 else math.nan
        if abs(mean) > 1e-9:  # else the path is orthogonal to what the areas do: no scale
            rel[ok], rel_se[ok] = raw[ok] / mean, se[ok] / abs(mean)
    return rel, rel_se


def _split_half(first: np.ndarray, second: np.ndarray, groups: list[np.ndarray]
                ) -> tuple[float, float]:
    """Correlation over areas of the relative slopes of the two halves, and its z.

    The halves' errors are independent (an area's own process forgets within
    months), so with equal loadings the correlation is about 0, whatever the
    standard errors say; ``z = atanh(r) sqrt(n - 3)`` is about N(0, 1) then.
    """
    a, b = (_relative(x, np.where(np.isfinite(x), 1.0, np.nan), groups)[0]
            for x in (first, second))
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 4 or np.std(a[ok]) == 0.0 or np.std(b[ok]) == 0.0:
        return math.nan, math.nan
    r = float(np.corrcoef(a[ok], b[ok])[0, 1])
    return r, math.atanh(min(max(r, -0.999999), 0.999999)) * math.sqrt(ok.sum() - 3)


def _combine(name: str, raw: np.ndarray, se: np.ndarray, common: float,
             groups: list[np.ndarray],
             between: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
             agree: tuple[float, float]) -> LoadingEstimates:
    """Steps 3-4: relative loadings within regions times the regions' means, shrunk."""
    n = raw.size
    rel, rel_se = _relative(raw, se, groups)
    dof = int(np.isfinite(rel_se).sum()) - sum(bool(np.isfinite(rel_se[g]).any()) for g in groups)
    tau_w, tau_w_se, rel_hat, rel_post = _random_effects(rel, rel_se, 1.0, dof)
    # the regions' mean loadings, scaled to an area-weighted mean of the common value
    level, level_se = np.full(len(groups), float(common)), np.zeros(len(groups))
    tau_b, tau_b_se = math.nan, math.nan
    level_hat, level_post = level.copy(), level_se.copy()
    if between is not None and np.isfinite(between[1]).all():
        b_raw, b_se, sizes = between
        mean = float(np.sum(sizes * b_raw) / sizes.sum())
        if abs(mean) > 1e-9:
            level, level_se = common * b_raw / mean, abs(common / mean) * b_se
            tau_b, tau_b_se, level_hat, level_post = _random_effects(level, level_se, common,
                                                                     len(groups) - 1)
    region = np.empty(n, dtype=int)
    for r, members in enumerate(groups):
        region[members] = r
    est = level[region] * rel
    est_se = np.hypot(level_se[region] * rel, level[region] * rel_se)
    # a level whose spread the panel does not tell from 0 keeps its centre: within
    # regions, by the halves' agreement where the panel has two (the moment se
    # rests on the fitted covariance, off by a factor common to the panel's areas)
    within = tau_w > 0.0 and (_heterogeneous(rel, rel_se, 1.0, dof) if math.isnan(agree[1])
                              else agree[1] > IDENTIFIED_Z)
    across = tau_b > 0.0 and _heterogeneous(level, level_se, common, len(groups) - 1)
    if not across:
        level_hat, level_post = np.full(len(groups), float(common)), np.zeros(len(groups))
    own = np.isfinite(rel_se) & (within | across)
    rel_hat = np.where(np.isfinite(rel_hat) & within, rel_hat, 1.0)
    rel_post = np.where(within, np.nan_to_num(rel_post), 0.0)
    loading = np.where(own, level_hat[region] * rel_hat, np.nan)
    post = np.where(own, np.hypot(level_post[region] * rel_hat, level_hat[region] * rel_post),
                    np.nan)
    return LoadingEstimates(name=name, common=float(common), estimate=est, se=est_se,
                            loading=loading, posterior_sd=post, spread_within=tau_w,
                            spread_within_se=tau_w_se, spread_between=tau_b,
                            spread_between_se=tau_b_se, split_half_r=agree[0],
                            split_half_z=agree[1], within_identified=bool(within),
                            between_identified=bool(across))


def _heterogeneous(est: np.ndarray, se: np.ndarray, centre: float, dof: int) -> bool:
    """Cochran's test: do the estimates scatter about ``centre`` beyond their se?"""
    ok = np.isfinite(se) & (se > 0.0)
    q = float(np.sum(((est[ok] - centre) / se[ok]) ** 2))
    return dof >= 1 and float(stats.chi2.sf(q, dof)) < IDENTIFIED_P


def _random_effects(est: np.ndarray, se: np.ndarray, centre: float, dof: int
                    ) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Estimates as random coefficients about ``centre``: their sd, its se, predictions.

    The sd ``tau`` by moments (mean squared deviation over ``dof`` less the
    mean squared se, truncated at 0); each prediction ``centre + w (est -
    centre)`` with ``w = tau^2 / (tau^2 + se^2)`` and posterior sd ``sqrt(w)
    se``; NaN where ``se`` is.
    """
    ok = np.isfinite(se)
    if dof < 1 or not ok.any():
        return math.nan, math.nan, np.full(est.size, np.nan), np.full(est.size, np.nan)
    sampling = float(np.mean(se[ok] ** 2))
    excess = float(np.sum((est[ok] - centre) ** 2)) / dof - sampling
    tau = math.sqrt(max(excess, 0.0))
    tau_se = math.nan if excess <= 0.0 else \
        math.sqrt(2.0 / dof) * (excess + sampling) / (2.0 * tau)
    w = tau**2 / (tau**2 + se**2)
    return tau, tau_se, centre + w * (est - centre), np.sqrt(w) * se


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------
def write_areas_with_loadings(source: str | Path, loadings: AreaLoadings, out: str | Path
                              ) -> Path:
    """The areas file ``source`` with its loading columns set to ``loadings``.

    Every other column is copied as text, so the covariates (and the donors
    matched on them) are unchanged; an existing ``national_loading`` or
    ``regional_loading`` column is replaced. An area that keeps the common
    value has an empty cell (docs/config.md, Data files).
    """
    rows = csv_rows(source)
    header = [c.strip() for c in rows[0]]
    keep = [c for c, name in enumerate(header) if name not in LOADING_COLUMNS]
    index = {a: i for i, a in enumerate(loadings.areas)}
    lines = [",".join([*(rows[0][c] for c in keep), *LOADING_COLUMNS])]
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        area = row[0].strip()
        if area not in index:
            raise ConfigError(f"area {area!r} is not in the calibration", source=str(source))
        i = index[area]
        cells = [_cell(e.loading[i]) for e in (loadings.national, loadings.regional)]
        lines.append(",".join([*(_csv(row[c]) for c in keep), *cells]))
    path = Path(out)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_loading_estimates(loadings: AreaLoadings, out: str | Path) -> Path:
    """Per area, both loadings' estimates, standard errors and written values (a CSV)."""
    cols = ["area", "region"]
    for e in (loadings.national, loadings.regional):
        cols += [f"{e.name}_estimate", f"{e.name}_se", f"{e.name}_loading",
                 f"{e.name}_posterior_sd"]
    lines = [",".join(cols)]
    for i, (area, region) in enumerate(zip(loadings.areas, loadings.regions, strict=True)):
        cells = [_csv(area), _csv(region)]
        for e in (loadings.national, loadings.regional):
            cells += [_cell(v[i]) for v in (e.estimate, e.se, e.loading, e.posterior_sd)]
        lines.append(",".join(cells))
    path = Path(out)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _csv(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text
