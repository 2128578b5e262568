"""Tidy tables on disk: one CSV file per table, or one Excel workbook with a sheet per table.

The tables are :func:`lobsim.analysis.tidy.build_tables`'; numbers are
written as numbers (a float as its shortest round-tripping repr, in a CSV
file and in an Excel cell, which also gets a display format), an empty cell where a value
has no finite meaning. Each file is written beside its target and renamed,
so an interrupted export leaves no half-written file.
"""

from __future__ import annotations

import csv
import math
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lobsim.analysis.tidy import Table, column_units

#: Widest column of a sheet, in characters (longer text wraps in the cell).
MAX_WIDTH = 60


def csv_names(tables: Iterable[Table]) -> list[str]:
    """The file names :func:`write_csv` writes."""
    return [f"{t.name}.csv" for t in tables]


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(tables: list[Table], folder: Path) -> list[Path]:
    """One ``NAME.csv`` per table in ``folder`` (header row, then the rows); returns the paths."""
    paths = []
    for table, name in zip(tables, csv_names(tables), strict=True):
        path = folder / name
        with _atomic(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f)
            out.writerow(table.columns)
            # csv writes a float as repr: the shortest text that reads back to the same float
            out.writerows([("" if v is None else v) for v in row] for row in table.rows)
        paths.append(path)
    return paths


def _number_format(column: str) -> str:
    units = column_units(column)
    if units == "GBP":
        return "#,##0"
    if units == "probability":
        return "0.0000"
    if units.startswith("1/year"):
        return "0.00%"
    return "General"


def _text_width(v: Any) -> int:
    if isinstance(v, float):
        return len(f"{v:,.4f}")
    return len(str(v))


@contextmanager
def _exact_floats() -> Iterator[None]:
    """Cells written with ``repr(float)``, the shortest text that reads back to the same float.

    openpyxl writes a number as ``"%.16g"``, which can drop the 17th
    significant digit (0.010321101567603214 becomes 0.01032110156760321), so
    a sheet would not carry ``summary --json``'s numbers exactly; Excel reads
    17 digits as the same double. The writer's formatter is swapped for the
    save only.
    """
    from openpyxl.cell import _writer

    plain = _writer.safe_string

    def exact(value: Any) -> str:
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
        return str(plain(value))

    _writer.safe_string = exact
    try:
        yield
    finally:
        _writer.safe_string = plain


def write_xlsx(tables: list[Table], path: Path) -> Path:
    """One workbook at ``path`` with a sheet per table, header row frozen, widths to fit."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    wb.remove(wb.active)
    for table in tables:
        ws = wb.create_sheet(table.name[:31])  # Excel's limit on sheet names
        ws.append(table.columns)
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            ws.append(row)
        ws.freeze_panes = "B2"  # the header row and the id column stay in view
        for j, column in enumerate(table.columns, start=1):
            letter = get_column_letter(j)
            fmt = _number_format(column)
            values = [row[j - 1] for row in table.rows]
            width = max([len(column), *(_text_width(v) for v in values[:500])]) + 2
            ws.column_dimensions[letter].width = min(width, MAX_WIDTH)
            for cell in ws[letter][1:]:
                if fmt != "General" and isinstance(cell.value, float):
                    cell.number_format = fmt
                elif width > MAX_WIDTH and isinstance(cell.value, str):
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
    with _atomic(path) as tmp, _exact_floats():
        wb.save(tmp)
    return path
