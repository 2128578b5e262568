"""The area universe and its outcome data, read from CSV: areas, histories,
states and volatility factors.

An areas file has a header ``area,region,<covariate>,...`` and one row per
area; covariates are numbers (deprivation, population, claimant rate, ...).
Two column names are reserved, not covariates: ``national_loading`` and
``regional_loading``, the area's loadings ``beta[a]``, ``gamma[a]`` on the
national and regional factors (docs/model.md section 3.2); an empty cell or a
missing column means the outcome's common loading.
Every reader accepts UTF-8 with or without a byte-order mark, refuses a
repeated key (area, or area and period), checks every declared column and
every value against its range (:mod:`lobsim.model._limits`, docs/config.md, Data
files), and fails with one :class:`~lobsim.errors.ConfigError` line naming
the file and the row.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import itertools
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from lobsim.arraytypes import Float64Array2D
from lobsim.errors import ConfigError
from lobsim.model._limits import (
    COVARIATE_MAX,
    LOADING_MAX,
    LOG_LEVEL_MAX,
    LOG_LEVEL_MIN,
    MIN_PERIODS,
    STATE_MAX,
    TREND_MAX,
    VALUE_MAX,
    VALUE_MIN,
    VOLATILITY_SCALE_MAX,
)


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
    national_loading, regional_loading : ndarray, shape (n_areas,), or None
        Each area's own factor loading, nan where the outcome's common value
        applies; None without the column.
    """

    ids: tuple[str, ...]
    regions: tuple[str, ...]
    covariate_names: tuple[str, ...]
    covariates: Float64Array2D
    national_loading: np.ndarray | None = None
    regional_loading: np.ndarray | None = None

    def index(self, area: str) -> int:
        """Position of ``area`` in the table."""
        return self.ids.index(area)

    def loadings(self, national: float, regional: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-area ``(beta, gamma)``: the area's own loadings where the file gives
        them, else an outcome's common ``national`` and ``regional`` loadings."""
        out = []
        for own, common in ((self.national_loading, national),
                            (self.regional_loading, regional)):
            values = np.full(len(self.ids), float(common))
            if own is not None:
                given = ~np.isnan(own)
                values[given] = own[given]
            out.append(values)
        return out[0], out[1]


#: Reserved columns of an areas file: per-area factor loadings, not covariates.
LOADING_COLUMNS = ("national_loading", "regional_loading")


def read_areas(path: str | Path) -> AreaTable:
    """Read an areas CSV (``area,region,<covariates...>``).

    Parameters
    ----------
    path : str or Path
        The CSV file (UTF-8, with or without a byte-order mark).

    Returns
    -------
    AreaTable

    Raises
    ------
    ConfigError
        Naming the file, the row and the column of the first bad entry.
    """
    source = str(path)
    rows = csv_rows(path)
    if not rows or [c.strip() for c in rows[0][:2]] != ["area", "region"]:
        found = ",".join(rows[0]) if rows else ""
        raise ConfigError(
            "the header must start with 'area,region' followed by covariate columns, "
            f"got {_shorten(found)!r}", source=source, path="row 1")
    header = [c.strip() for c in rows[0]]
    for c, name in enumerate(header[2:]):
        if not name:
            raise ConfigError(f"column {c + 3} has no name", source=source, path="row 1")
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise ConfigError(f"column {dup!r} appears twice; column names must be unique",
                          source=source, path="row 1")
    covariate_cols = [c for c in range(2, len(header)) if header[c] not in LOADING_COLUMNS]
    names = tuple(header[c] for c in covariate_cols)
    loading_cols = {name: header.index(name) for name in LOADING_COLUMNS if name in header}
    body = _data_rows(rows, len(header), source, "the header has")
    ids: list[str] = []
    regions: list[str] = []
    first: dict[str, str] = {}
    values = np.empty((len(body), len(names)))
    loadings = {name: np.full(len(body), math.nan) for name in loading_cols}
    for r, (where, row) in enumerate(body):
        area, region = row[0].strip(), row[1].strip()
        if not area or not region:
            raise ConfigError("area and region must not be empty", source=source, path=where)
        if area in first:
            raise ConfigError(f"lists area {area!r} again (first at {first[area]}); list each "
                              "area once", source=source, path=where)
        first[area] = where
        ids.append(area)
        regions.append(region)
        for c, col in enumerate(covariate_cols):
            values[r, c] = _number(row[col], source, where, f"covariate {names[c]!r}",
                                   -COVARIATE_MAX, COVARIATE_MAX)
        for name, col in loading_cols.items():
            if row[col].strip():  # empty: the outcome's common loading
                loadings[name][r] = _number(row[col], source, where, name,
                                            -LOADING_MAX, LOADING_MAX)
    if not ids:
        raise ConfigError("lists no areas", source=source)
    return AreaTable(ids=tuple(ids), regions=tuple(regions), covariate_names=names,
                     covariates=values,
                     national_loading=loadings.get("national_loading"),
                     regional_loading=loadings.get("regional_loading"))


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
    #: The history file, for messages about it ("" when built in memory).
    source: str = ""

    @property
    def log_base(self) -> np.ndarray:
        """Log of the observed value at the base period, per area."""
        return self.log_history[:, -1]


def _shorten(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _read_text(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=str(path)) from None


def _parse_csv(raw: bytes, source: str) -> list[list[str]]:
    """Rows of a CSV file's bytes; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text; save it as UTF-8 (Excel: CSV UTF-8)",
                          source=source) from None
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfigError(f"cannot read the file: {exc}", source=source) from None


def csv_rows(path: str | Path) -> list[list[str]]:
    """Every row of a CSV file, UTF-8 with or without a byte-order mark.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not UTF-8 or is not CSV.
    """
    return _parse_csv(_read_text(path), str(path))


def _data_rows(rows: list[list[str]], width: int, source: str,
               expected: str = "expected") -> list[tuple[str, list[str]]]:
    """The rows after the header with their positions (``"row 2"``, ...); blank lines skipped."""
    out = []
    for r, row in enumerate(rows[1:]):
        where = f"row {r + 2}"
        if not row:
            continue
        if len(row) != width:
            raise ConfigError(f"has {len(row)} fields, {expected} {width}", source=source,
                              path=where)
        out.append((where, row))
    return out


def _read_rows(rows: list[list[str]], header: list[str], source: str
               ) -> list[tuple[str, list[str]]]:
    found = [c.strip() for c in rows[0]] if rows else []
    if found != header:
        raise ConfigError(f"the header must be {','.join(header)!r}, got "
                          f"{_shorten(','.join(found))!r}", source=source, path="row 1")
    return _data_rows(rows, len(header), source)


def _number(text: str, source: str, where: str, what: str, low: float, high: float) -> float:
    """A number in ``[low, high]``; the message states the range."""
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not low <= x <= high:  # also refuses nan
        raise ConfigError(f"{what} must be a number in [{low:g}, {high:g}], got "
                          f"{_shorten(text.strip())!r}", source=source, path=where)
    return x


def _area_index(areas: AreaTable) -> dict[str, int]:
    return {a: i for i, a in enumerate(areas.ids)}


def _known_area(row: list[str], index: dict[str, int], areas: AreaTable, source: str,
                where: str, region: str | None = None) -> int:
    """The area of a row, which must be in the areas table (and in its region there)."""
    area = row[0].strip()
    if area not in index:
        raise ConfigError(f"area {area!r} is not in the areas table", source=source, path=where)
    a = index[area]
    if region is not None and region != areas.regions[a]:
        raise ConfigError(f"area {area!r} is in region {areas.regions[a]!r} in the areas "
                          f"table, not {region!r}", source=source, path=where)
    return a


# -- period labels ------------------------------------------------------------
_INTEGER = re.compile(r"[+-]?\d+")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-Q([1-4])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Label kinds whose consecutive periods are consecutive keys.
_COUNTED = ("integer", "month", "quarter")


def period_key(label: str) -> tuple[str, int] | None:
    """``(kind, position in time)`` of a period label, or None if it is neither kind.

    Kinds: ``integer`` (``1``, ``-3``, ``2015``), ``month`` (``2015-01``),
    ``quarter`` (``2015-Q1``) and ``date`` (``2015-01-31``). Labels sort by the
    position, never as text: ``9`` comes before ``10``.
    """
    if _INTEGER.fullmatch(label):
        return "integer", int(label)
    m = _MONTH.fullmatch(label)
    if m and 1 <= int(m[2]) <= 12:
        return "month", int(m[1]) * 12 + int(m[2]) - 1
    m = _QUARTER.fullmatch(label)
    if m:
        return "quarter", int(m[1]) * 4 + int(m[2]) - 1
    if _DATE.fullmatch(label):
        try:
            return "date", date.fromisoformat(label).toordinal()
        except ValueError:
            return None
    return None


def period_kind(periods: tuple[str, ...]) -> str:
    """The kind of a history's period labels (:func:`period_key`)."""
    key = period_key(periods[-1])
    assert key is not None, "periods come from read_outcome"
    return key[0]


class _Periods:
    """The period labels of a history as rows name them: parsed, checked, ordered."""

    def __init__(self, source: str):
        self.source = source
        self.kind: tuple[str, str, str] | None = None  # kind, label, row of the first label
        self.labels: dict[int, str] = {}  # position in time -> label as first written

    def position(self, label: str, where: str) -> int:
        key = period_key(label)
        if key is None:
            raise ConfigError(
                f"period {_shorten(label)!r} is neither a whole number nor an ISO date (2015, "
                "2015-01, 2015-Q1, 2015-01-31); label periods so that they sort in time",
                source=self.source, path=where)
        kind, pos = key
        if self.kind is None:
            self.kind = (kind, label, where)
        elif kind != self.kind[0]:
            first_kind, first_label, first_where = self.kind
            raise ConfigError(f"period {label!r} is a {kind}, but {first_where} has the "
                              f"{first_kind} {first_label!r}; label every period the same way",
                              source=self.source, path=where)
        self.labels.setdefault(pos, label)
        return pos

    def ordered(self) -> list[int]:
        """Positions oldest first; counted kinds must have no gap."""
        order = sorted(self.labels)
        if self.kind is not None and self.kind[0] in _COUNTED:
            for a, b in itertools.pairwise(order):
                if b != a + 1:
                    raise ConfigError(
                        f"has no period between {self.labels[a]!r} and {self.labels[b]!r}; "
                        "periods must be consecutive", source=self.source)
        return order


@functools.lru_cache(maxsize=16)
def _parse_outcome(history: str, history_raw: bytes, state: str | None,
                   state_raw: bytes | None, ids: tuple[str, ...], regions: tuple[str, ...],
                   periods_per_year: int) -> OutcomeData:
    """:func:`read_outcome` on the files' contents (cached: a config's loader and its
    world read the same files)."""
    areas = AreaTable(ids=ids, regions=regions, covariate_names=(),
                      covariates=np.empty((len(ids), 0)))
    rows = _read_rows(_parse_csv(history_raw, history), ["area", "region", "period", "value"],
                      history)
    if not rows:
        raise ConfigError(f"has no data rows; a history needs at least {MIN_PERIODS} periods "
                          "of every area", source=history)
    index = _area_index(areas)
    periods = _Periods(history)
    cells: dict[tuple[int, int], tuple[float, str]] = {}
    for where, row in rows:
        a = _known_area(row, index, areas, history, where, region=row[1].strip())
        pos = periods.position(row[2].strip(), where)
        if (a, pos) in cells:
            raise ConfigError(f"area {ids[a]!r} has a second value for period "
                              f"{periods.labels[pos]!r} (first at {cells[(a, pos)][1]})",
                              source=history, path=where)
        cells[(a, pos)] = (_number(row[3], history, where, "value", VALUE_MIN, VALUE_MAX), where)
    order = periods.ordered()
    if len(order) < MIN_PERIODS:
        raise ConfigError(f"has {len(order)} period{'s' * (len(order) != 1)}; a history needs "
                          f"at least {MIN_PERIODS} (the base period and two before it)",
                          source=history)
    values = np.empty((len(ids), len(order)))
    for a in range(len(ids)):
        for j, pos in enumerate(order):
            if (a, pos) not in cells:
                raise ConfigError(f"area {ids[a]!r} has no value for period "
                                  f"{periods.labels[pos]!r}", source=history)
            values[a, j] = cells[(a, pos)][0]
    labels = tuple(periods.labels[pos] for pos in order)
    logs = np.log(values)
    if state is None:
        t = np.arange(len(order), dtype=float)
        t -= t.mean()
        slope = (logs - logs.mean(axis=1, keepdims=True)) @ t / float(t @ t)
        slope *= periods_per_year  # per period -> per year
        data = OutcomeData(periods=labels, log_history=logs, trend=slope,
                           log_level=logs[:, -1].copy(), area_state=np.zeros(len(ids)),
                           regional_state={r: 0.0 for r in set(regions)}, national_state=0.0,
                           source=history)
    else:
        assert state_raw is not None
        data = dataclasses.replace(
            _with_state(state, _parse_csv(state_raw, state), areas, labels, logs),
            source=history)
    for array in (data.log_history, data.trend, data.log_level, data.area_state):
        array.setflags(write=False)  # shared by every caller of the cache
    return data


def read_outcome(history: str | Path, state: str | Path | None, areas: AreaTable,
                 periods_per_year: int = 1) -> OutcomeData:
    """Read an outcome's history (``area,region,period,value``) and base state.

    Every area of ``areas`` needs a value in every period; regions must agree
    with the areas table. Period labels are whole numbers or ISO dates
    (:func:`period_key`), all of one kind, sorted in time; months, quarters
    and whole numbers must be consecutive. Values lie in
    ``[VALUE_MIN, VALUE_MAX]`` (:mod:`lobsim.model._limits`). Without a state file
    the areas are taken to be on trend at the base period: the trend is the
    least-squares slope of the log history, the true level the last observed
    log value, and every deviation state zero (``lobsim calibrate`` estimates
    them properly). The arrays returned are read-only.

    Raises
    ------
    ConfigError
        Naming the file and row of the first bad entry.
    """
    return _parse_outcome(str(history), _read_text(history),
                          None if state is None else str(state),
                          None if state is None else _read_text(state),
                          areas.ids, areas.regions, int(periods_per_year))


#: The state file's numeric columns and their ranges (lobsim.model._limits).
STATE_COLUMNS: dict[str, tuple[float, float]] = {
    "trend": (-TREND_MAX, TREND_MAX),
    "log_level": (LOG_LEVEL_MIN, LOG_LEVEL_MAX),
    "area_state": (-STATE_MAX, STATE_MAX),
    "regional_state": (-STATE_MAX, STATE_MAX),
    "national_state": (-STATE_MAX, STATE_MAX),
}


def _with_state(src: str, raw_rows: list[list[str]], areas: AreaTable, periods: tuple[str, ...],
                logs: np.ndarray) -> OutcomeData:
    rows = _read_rows(raw_rows, ["area", *STATE_COLUMNS], src)
    index = _area_index(areas)
    cols = np.empty((len(areas.ids), len(STATE_COLUMNS)))
    seen: dict[int, str] = {}
    for where, row in rows:
        a = _known_area(row, index, areas, src, where)
        if a in seen:
            raise ConfigError(f"area {areas.ids[a]!r} has a second row (first at {seen[a]}); "
                              "give each area one state", source=src, path=where)
        seen[a] = where
        cols[a] = [_number(text, src, where, name, *bounds)
                   for (name, bounds), text in zip(STATE_COLUMNS.items(), row[1:], strict=True)]
    missing = [a for a in range(len(areas.ids)) if a not in seen]
    if missing:
        raise ConfigError(f"has no row for area {areas.ids[missing[0]]!r}", source=src)
    regional: dict[str, float] = {}
    for i, region in enumerate(areas.regions):
        g = regional.setdefault(region, float(cols[i, 3]))
        if g != cols[i, 3]:
            raise ConfigError(f"regional_state differs within region {region!r}", source=src,
                              path=seen[i])
    if np.ptp(cols[:, 4]) != 0.0:
        raise ConfigError("national_state must be the same on every row", source=src)
    return OutcomeData(periods=periods, log_history=logs, trend=cols[:, 0].copy(),
                       log_level=cols[:, 1].copy(), area_state=cols[:, 2].copy(),
                       regional_state=regional, national_state=float(cols[0, 4]))


def read_volatility(path: str | Path, areas: AreaTable) -> np.ndarray:
    """Per-area variance factors (``area,region,volatility_scale``), in [0, 100].

    Each factor multiplies the variance of the area's own shocks and of its
    measurement noise (``sigma_U[a]``, docs/model.md section 3.2): a small ward is noisier
    than a large one. Areas missing from the file keep factor 1.

    Raises
    ------
    ConfigError
        Naming the file and row of the first bad entry.
    """
    src = str(path)
    rows = _read_rows(csv_rows(path), ["area", "region", "volatility_scale"], src)
    index = _area_index(areas)
    scale = np.ones(len(areas.ids))
    seen: dict[int, str] = {}
    for where, row in rows:
        a = _known_area(row, index, areas, src, where, region=row[1].strip())
        if a in seen:
            raise ConfigError(f"area {areas.ids[a]!r} has a second row (first at {seen[a]}); "
                              "give each area one factor", source=src, path=where)
        seen[a] = where
        scale[a] = _number(row[2], src, where, "volatility_scale", 0.0, VOLATILITY_SCALE_MAX)
    return scale
