"""Strict JSON output: what every ``--json`` of the command line prints.

``NaN`` and ``Infinity`` are not JSON (RFC 8259) and strict parsers refuse
them, so every document is dumped with ``allow_nan=False``; a value with no
finite meaning is encoded as ``null`` by the ``to_dict`` that knows what it
means (README, section JSON output, lists each such field).
"""

from __future__ import annotations

import json
import math
import sys
from typing import IO, Any


def number(x: float) -> float | None:
    """``x`` as a JSON number, or None (``null``) where it is not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


def dump(doc: Any, stream: IO[str] | None = None) -> None:
    """Print ``doc`` as strict, indented JSON and a newline (on stdout by default)."""
    stream = sys.stdout if stream is None else stream
    json.dump(doc, stream, indent=2, allow_nan=False)
    stream.write("\n")
