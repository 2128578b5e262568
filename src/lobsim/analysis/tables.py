"""Plain-text tables of the terminal: columns as wide as their widest cell.

Every CLI table is built here, so that no id is ever cut (a printed bond id
must paste back into ``--bond``) and every header names its unit. The
header words follow one convention:

- money columns end in the currency (``E[payment] GBP``);
- counts of outcome units end in ``units`` (``provider E[shortfall] units``);
- rates and probabilities printed as percentages end in ``%``;
- quantiles are ``q05``, ``q50`` (``IRR q05``), never ``5%``;
- an interval is the 95% one of :mod:`lobsim.analysis.stats`, said once
  under the table (:data:`INTERVAL_NOTE`).
"""

from __future__ import annotations

from collections.abc import Sequence

#: The one line under a table with intervals.
INTERVAL_NOTE = ("intervals: 95% Monte Carlo intervals (Wilson score for probabilities, "
                 "mean -+ 1.96 se otherwise)")


def quantile_label(level: float) -> str:
    """``q05`` for 0.05, ``q50`` for 0.5, ``q995`` for 0.995."""
    digits = f"{level:.3f}".split(".")[1].rstrip("0")
    return "q" + (digits.ljust(2, "0") if digits else "100")


def interval(lo: float, hi: float, fmt: str = ".4f") -> str:
    """``[lo, hi]`` of an interval cell."""
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


def render(header: Sequence[str], rows: Sequence[Sequence[str]], *, gap: int = 2,
           left: int = 1) -> list[str]:
    """Lines of a table: the first ``left`` columns left-aligned, the rest right-aligned.

    Each column is as wide as its header or its widest cell, whichever is
    wider, so nothing is truncated.
    """
    widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(w) if j < left else c.rjust(w)
                 for j, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return (" " * gap).join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]
