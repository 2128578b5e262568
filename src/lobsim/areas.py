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
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the areas file: {exc}", source=source) from None
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
            try:
                x = float(text)
            except ValueError:
                x = math.nan
            if not math.isfinite(x):
                raise ConfigError(
                    f"covariate {names[c]!r} must be a finite number, got {text!r}",
                    source=source, path=where,
                )
            values[r, c] = x
    if not ids:
        raise ConfigError("lists no areas", source=source)
    if len(set(ids)) != len(ids):
        dup = next(a for a in ids if ids.count(a) > 1)
        raise ConfigError(f"lists area {dup!r} twice", source=source)
    return AreaTable(ids=tuple(ids), regions=tuple(regions), covariate_names=names,
                     covariates=values)
