"""The area universe: areas, their regions and covariates, read from CSV.

An areas file has a header ``area,region,<covariate>,...`` and one row per
area; covariates are numbers (deprivation, population, claimant rate, ...).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lobsim._typing import Float64Array2D
from lobsim.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class AreaTable:
    """The areas of a universe.

    Attributes
    ----------
    ids : tuple of str
        Area identifiers, in file order.
    regions : tuple of str
        The region of each area.
    covariate_names : tuple of str
        Names of the covariate columns.
    covariates : ndarray, shape (n_areas, n_covariates)
        Covariate values.
    """

    ids: tuple[str, ...]
    regions: tuple[str, ...]
    covariate_names: tuple[str, ...]
    covariates: Float64Array2D

    def index(self, area: str) -> int:
        """Position of ``area`` in the table."""
        return self.ids.index(area)


def read_areas(path: str | Path) -> AreaTable:
    """Read an areas CSV (``area,region,<covariates...>``).

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    AreaTable

    Raises
    ------
    ConfigError
        Naming the file, the row and the column of the first bad entry.
    """
    source = str(path)
    rows = _csv_rows(path)
    if not rows or [c.strip() for c in rows[0][:2]] != ["area", "region"]:
        raise ConfigError(
            "the header must start with 'area,region' followed by covariate columns",
            source=source, path="row 1",
        )
    header = [c.strip() for c in rows[0]]
    names = tuple(header[2:])
    if len(set(header)) != len(header):
        raise ConfigError("column names must be unique", source=source, path="row 1")
    ids: list[str] = []
    regions: list[str] = []
    values = np.empty((len(rows) - 1, len(names)))
    for r, row in enumerate(rows[1:]):
        where = f"row {r + 2}"
        if len(row) != len(header):
            raise ConfigError(
                f"has {len(row)} fields, the header has {len(header)}", source=source, path=where
            )
        area, region = row[0].strip(), row[1].strip()
        if not area or not region:
            raise ConfigError("area and region must not be empty", source=source, path=where)
        ids.append(area)
        regions.append(region)
        for c, text in enumerate(row[2:]):
            values[r, c] = _number(text, source, where, f"covariate {names[c]!r}",
                                   positive=False)
    if not ids:
        raise ConfigError("lists no areas", source=source)
    if len(set(ids)) != len(ids):
        dup = next(a for a in ids if ids.count(a) > 1)
        raise ConfigError(f"lists area {dup!r} twice", source=source)
    return AreaTable(ids=tuple(ids), regions=tuple(regions), covariate_names=names,
                     covariates=values)


@dataclass(frozen=True, kw_only=True)
class OutcomeData:
    """The observed history and base-year state of one outcome over all areas.

    Attributes
    ----------
    periods : tuple of str
        Period labels of the history, oldest first; the last is the base period.
    log_history : ndarray, shape (n_areas, n_periods)
        Log of the observed values.
    trend, log_level, area_state : ndarray, shape (n_areas,)
        Per area: trend ``mu`` per year, true log level ``x[a,0]`` and the
        area-specific state ``U[a,0]`` at the base period.
    regional_state : dict of str to float
        ``G[r,0]`` per region.
    national_state : float
        ``F[0]``.
    """

    periods: tuple[str, ...]
    log_history: Float64Array2D
    trend: np.ndarray
    log_level: np.ndarray
    area_state: np.ndarray
    regional_state: dict[str, float]
    national_state: float
    variance_scale: np.ndarray | None = None

    @property
    def log_base(self) -> np.ndarray:
        """Log of the observed value at the base period, per area."""
        return self.log_history[:, -1]


def _csv_rows(path: str | Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read the file: {exc}", source=str(path)) from None


def _read_rows(path: str | Path, header: list[str]) -> list[list[str]]:
    source = str(path)
    rows = _csv_rows(path)
    if not rows or [c.strip() for c in rows[0]] != header:
        raise ConfigError(f"the header must be {','.join(header)!r}", source=source, path="row 1")
    for r, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ConfigError(f"has {len(row)} fields, expected {len(header)}", source=source,
                              path=f"row {r + 2}")
    return rows[1:]


def _number(text: str, source: str, where: str, what: str, *, positive: bool) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or (positive and x <= 0.0):
        need = "a positive finite number" if positive else "a finite number"
        raise ConfigError(f"{what} must be {need}, got {text!r}", source=source, path=where)
    return x


def read_outcome(history: str | Path, state: str | Path | None, areas: AreaTable,
                 periods_per_year: int = 1) -> OutcomeData:
    """Read an outcome's history (``area,region,period,value``) and base state.

    Every area of ``areas`` needs a value in every period; regions must agree
    with the areas table. Without a state file the areas are taken to be on
    trend at the base period: the trend is the least-squares slope of the log
    history, the true level the last observed log value, and every deviation
    state zero (``lobsim calibrate`` estimates them properly).

    Raises
    ------
    ConfigError
        Naming the file and row of the first bad entry.
    """
    src = str(history)
    rows = _read_rows(history, ["area", "region", "period", "value"])
    index = {a: i for i, a in enumerate(areas.ids)}
    periods = sorted({row[2].strip() for row in rows})
    pindex = {p: j for j, p in enumerate(periods)}
    values = np.full((len(areas.ids), len(periods)), np.nan)
    for r, row in enumerate(rows):
        where = f"row {r + 2}"
        area, region, period = row[0].strip(), row[1].strip(), row[2].strip()
        if area not in index:
            raise ConfigError(f"area {area!r} is not in the areas table", source=src, path=where)
        if region != areas.regions[index[area]]:
            raise ConfigError(
                f"area {area!r} is in region {areas.regions[index[area]]!r} in the areas table, "
                f"not {region!r}", source=src, path=where)
        if not np.isnan(values[index[area], pindex[period]]):
            raise ConfigError(f"area {area!r} has two values for period {period!r}",
                              source=src, path=where)
        values[index[area], pindex[period]] = _number(row[3], src, where, "value",
                                                      positive=True)
    missing = np.argwhere(np.isnan(values))
    if missing.size:
        a, p = missing[0]
        raise ConfigError(f"area {areas.ids[a]!r} has no value for period {periods[p]!r}",
                          source=src)
    logs = np.log(values)
    if state is None:
        t = np.arange(len(periods), dtype=float)
        t -= t.mean()
        slope = (logs - logs.mean(axis=1, keepdims=True)) @ t / max(float(t @ t), 1.0)
        slope *= periods_per_year  # per period -> per year
        return OutcomeData(periods=tuple(periods), log_history=logs, trend=slope,
                           log_level=logs[:, -1].copy(), area_state=np.zeros(len(areas.ids)),
                           regional_state={r: 0.0 for r in set(areas.regions)},
                           national_state=0.0)
    return _with_state(state, areas, tuple(periods), logs)


def _with_state(state: str | Path, areas: AreaTable, periods: tuple[str, ...],
                logs: np.ndarray) -> OutcomeData:
    src = str(state)
    header = ["area", "trend", "log_level", "area_state", "regional_state", "national_state"]
    rows = _read_rows(state, header)
    index = {a: i for i, a in enumerate(areas.ids)}
    cols = np.full((len(areas.ids), 5), np.nan)
    for r, row in enumerate(rows):
        where = f"row {r + 2}"
        area = row[0].strip()
        if area not in index:
            raise ConfigError(f"area {area!r} is not in the areas table", source=src, path=where)
        cols[index[area]] = [
            _number(text, src, where, name, positive=False)
            for name, text in zip(header[1:], row[1:], strict=True)
        ]
    missing = np.flatnonzero(np.isnan(cols[:, 0]))
    if missing.size:
        raise ConfigError(f"has no row for area {areas.ids[missing[0]]!r}", source=src)
    regional: dict[str, float] = {}
    for i, region in enumerate(areas.regions):
        g = regional.setdefault(region, float(cols[i, 3]))
        if g != cols[i, 3]:
            raise ConfigError(f"regional_state differs within region {region!r}", source=src,
                              path=f"area {areas.ids[i]}")
    if np.ptp(cols[:, 4]) != 0.0:
        raise ConfigError("national_state must be the same on every row", source=src)
    return OutcomeData(periods=periods, log_history=logs, trend=cols[:, 0].copy(),
                       log_level=cols[:, 1].copy(), area_state=cols[:, 2].copy(),
                       regional_state=regional, national_state=float(cols[0, 4]))


def read_volatility(path: str | Path, areas: AreaTable) -> np.ndarray:
    """Per-area variance factors (``area,region,volatility_scale``).

    Each factor multiplies the variance of the area's own shocks and of its
    measurement noise (``sigma_U[a]``, docs/model.md section 3.2): a small ward is noisier
    than a large one. Areas missing from the file keep factor 1.

    Raises
    ------
    ConfigError
        Naming the file and row of the first bad entry.
    """
    src = str(path)
    rows = _read_rows(path, ["area", "region", "volatility_scale"])
    index = {a: i for i, a in enumerate(areas.ids)}
    scale = np.ones(len(areas.ids))
    for r, row in enumerate(rows):
        where = f"row {r + 2}"
        area = row[0].strip()
        if area not in index:
            raise ConfigError(f"area {area!r} is not in the areas table", source=src, path=where)
        scale[index[area]] = _number(row[2], src, where, "volatility_scale", positive=True)
    return scale
