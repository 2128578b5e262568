"""A unit x year panel of numeric variables, and the predictors synthetic control matches on.

:class:`PredictorPanel` reads a long-format CSV (one row per unit and year,
as the R package Synth's examples are shipped), averages variables over
chosen years into predictors (missing years ignored, as Synth's
``dataprep``) and builds the ``(X1, X0, Z1, Z0)`` design of
:func:`lobsim.validation.scm.fit_predictor_weights` (docs/scm.md).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lobsim.arraytypes import Float64Array
from lobsim.errors import ConfigError


@dataclass(frozen=True, eq=False)
class PredictorPanel:
    """A balanced unit x year panel of numeric variables (NaN where missing).

    Attributes
    ----------
    units : tuple of str
        Unit names, in order of first appearance in the source.
    years : ndarray of int64, shape (n_years,)
        Sorted years.
    variables : dict of str to ndarray of float64, shape (n_units, n_years)
        The variables, NaN where missing.
    """

    units: tuple[str, ...]
    years: npt.NDArray[np.int64]
    variables: dict[str, Float64Array]

    @classmethod
    def from_csv(cls, path: str | Path, unit: str, time: str) -> PredictorPanel:
        """Read a long-format CSV (one row per unit and year).

        Parameters
        ----------
        path : str or Path
            The file.
        unit, time : str
            Names of the unit and year columns.  Every other column whose
            non-empty entries all parse as numbers becomes a variable; empty
            and ``NA`` entries are missing.

        Returns
        -------
        PredictorPanel

        Raises
        ------
        ConfigError
            (a ValueError) naming the file and row: a missing column, a row
            of the wrong length, a year that is not whole, a unit with two
            rows for one year.
        """
        source = str(path)
        try:  # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is not part of the header
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                rows = list(reader)
                header = reader.fieldnames or []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"cannot read the file: {exc}", source=source) from None
        for col in (unit, time):
            if col not in header:
                raise ConfigError(f"has no column {col!r} (columns: {', '.join(header)})",
                                  source=source, path="row 1")
        if not rows:
            raise ConfigError("has no data rows", source=source)
        seen: dict[tuple[str, int], str] = {}
        row_years = []
        for i, row in enumerate(rows):
            where = f"row {i + 2}"
            if None in row or None in row.values():  # csv.DictReader's rest key and value
                raise ConfigError(f"has a different number of fields than the header's "
                                  f"{len(header)}", source=source, path=where)
            try:
                year = float(row[time])
            except ValueError:
                year = math.nan
            if not year.is_integer():
                raise ConfigError(f"{time} must be a whole year, got {row[time]!r}",
                                  source=source, path=where)
            key = (row[unit], int(year))
            if key in seen:
                raise ConfigError(f"{unit} {key[0]!r} has a second row for {key[1]} (first at "
                                  f"{seen[key]})", source=source, path=where)
            seen[key] = where
            row_years.append(int(year))
        units = tuple(dict.fromkeys(r[unit] for r in rows))
        years = np.array(sorted(set(row_years)), dtype=np.int64)
        uidx = {u: i for i, u in enumerate(units)}
        yidx = {int(y): t for t, y in enumerate(years)}
        variables: dict[str, Float64Array] = {}
        for col in rows[0]:
            if col in (unit, time):
                continue
            arr = np.full((len(units), len(years)), np.nan)
            try:
                for r, year in zip(rows, row_years, strict=True):
                    s = r[col].strip()
                    if s not in ("", "NA"):
                        arr[uidx[r[unit]], yidx[year]] = float(s)
            except ValueError:
                continue  # a text column
            variables[col] = arr
        return cls(units=units, years=years, variables=variables)

    def index(self, unit: str) -> int:
        """Position of ``unit`` in :attr:`units`."""
        try:
            return self.units.index(unit)
        except ValueError:
            raise KeyError(f"unknown unit {unit!r}") from None

    def _columns(self, years: Sequence[int]) -> npt.NDArray[np.intp]:
        ys = np.asarray(list(years), dtype=np.int64)
        pos = np.searchsorted(self.years, ys)
        bad = (pos >= len(self.years)) | (self.years[np.minimum(pos, len(self.years) - 1)] != ys)
        if ys.size == 0 or np.any(bad):
            raise KeyError(f"years not in the panel: {ys[bad].tolist() or 'none given'}")
        return pos

    def _variable(self, variable: str) -> Float64Array:
        try:
            return self.variables[variable]
        except KeyError:
            raise KeyError(f"unknown variable {variable!r}") from None

    def values(self, variable: str, years: Sequence[int]) -> Float64Array:
        """Values of ``variable`` in ``years``, shape ``(len(years), n_units)``."""
        return np.ascontiguousarray(self._variable(variable)[:, self._columns(years)].T)

    def mean(self, variable: str, years: Sequence[int]) -> Float64Array:
        """Mean of ``variable`` over ``years`` per unit, ignoring missing years.

        As Synth's ``dataprep`` (``na.rm = TRUE``).  Raises ValueError if a
        unit has no value in any of the years.
        """
        block = self._variable(variable)[:, self._columns(years)]
        n = np.sum(~np.isnan(block), axis=1)
        if np.any(n == 0):
            missing = [self.units[i] for i in np.flatnonzero(n == 0)]
            raise ValueError(f"{variable} has no value in {list(years)} for {missing}")
        return np.asarray(np.nansum(block, axis=1) / n, dtype=np.float64)

    def predictors(self, specs: Sequence[tuple[str, Sequence[int]]]) -> Float64Array:
        """Predictor matrix, shape ``(len(specs), n_units)``: row ``i`` is the mean of
        ``specs[i][0]`` over the years ``specs[i][1]``."""
        return np.array([self.mean(var, yrs) for var, yrs in specs])

    def design(
        self,
        treated: str,
        donors: Sequence[str],
        specs: Sequence[tuple[str, Sequence[int]]],
        outcome: str,
        fit_years: Sequence[int],
    ) -> tuple[Float64Array, Float64Array, Float64Array, Float64Array]:
        """``(X1, X0, Z1, Z0)`` for :func:`fit_predictor_weights`.

        Parameters
        ----------
        treated : str
            The treated unit.
        donors : sequence of str
            The donor pool, in the column order of ``X0`` and ``Z0``.
        specs : sequence of (variable, years)
            Predictors: each the mean of a variable over some years.
        outcome : str
            The outcome variable.
        fit_years : sequence of int
            Years whose outcomes the outer problem fits.

        Returns
        -------
        tuple of ndarray
            ``X1 (k,)``, ``X0 (k, J)``, ``Z1 (T,)``, ``Z0 (T, J)``.
        """
        t = self.index(treated)
        d = [self.index(u) for u in donors]
        x = self.predictors(specs)
        z = self.values(outcome, fit_years)
        return x[:, t].copy(), x[:, d].copy(), z[:, t].copy(), z[:, d].copy()


