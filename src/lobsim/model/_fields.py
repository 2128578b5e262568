"""Typed, path-aware reading of one TOML table, for the config loader.

Every value is read through a :class:`Table`, which knows the file and the TOML
path it came from, checks the type and range of each field, and, when the
table is finished, rejects any key nobody asked for, so that a typo is an
error and never a silently ignored field.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from lobsim.errors import ConfigError

T = TypeVar("T")
_MISSING: Any = object()
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# An id: letters, digits, "_", "." or "-", starting with a letter or digit.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def quote_key(key: str) -> str:
    """A key as TOML would write it: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _describe(value: object) -> str:
    """Quote a value for an error message, shortened."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


class Table:
    """A TOML table being read: typed getters that record the keys they use.

    Parameters
    ----------
    data : dict
        The parsed table.
    path : str
        Its TOML path, for example ``"bonds[2]"`` (``""`` for the top level).
    source : str
        The file it came from, for error messages.
    """

    def __init__(self, data: dict[str, Any], path: str, source: str):
        self.data = data
        self.path = path
        self.source = source
        self._used: set[str] = set()

    # -- errors --------------------------------------------------------------
    def key_path(self, key: str, *, literal: bool = False) -> str:
        """The TOML path of ``key`` in this table.

        ``key`` is a path written by lobsim (``payers[0].share``) unless
        ``literal``: then it is a key from the file, quoted when it is not
        bare (``"a.b"``, ``""``, a newline), so the path stays one line.
        """
        if literal:
            key = quote_key(key)
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | None, message: str, *, literal: bool = False) -> ConfigError:
        path = self.key_path(key, literal=literal) if key is not None else (self.path or None)
        return ConfigError(message, source=self.source, path=path)

    # -- raw access ------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.data

    def _raw(self, key: str, default: Any) -> Any:
        self._used.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            unknown = [k for k in self.data if k not in self._used]
            close = difflib.get_close_matches(key, unknown, n=1)
            if close:
                raise self.error(key, f"is required but missing; found {close[0]!r}: "
                                      f"did you mean {key!r}?")
            raise self.error(key, "is required but missing; add it to the table")
        return default

    def value(self, key: str, default: Any = _MISSING) -> Any:
        """The raw value of ``key`` (for shapes the typed getters do not cover)."""
        return self._raw(key, default)

    # -- scalars ---------------------------------------------------------------
    def string(
        self, key: str, default: Any = _MISSING, *, choices: tuple[str, ...] | None = None
    ) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {_describe(value)}")
        if choices is not None and value not in choices:
            raise self.error(
                key, f"must be one of {', '.join(map(repr, choices))}, got {_describe(value)}"
            )
        return value

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        floor: float | None = None,
    ) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        return self.check_number(key, value, low, high, low_open, high_open, floor=floor)

    def check_number(
        self,
        key: str,
        value: object,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        literal: bool = False,
        floor: float | None = None,
    ) -> float:
        """``value`` as a float in range; ``floor``: it is 0 or at least ``floor``."""

        def fail(message: str) -> ConfigError:
            return self.error(key, message, literal=literal)

        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"must be a number, got {_type_name(value)} {_describe(value)}")
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            raise fail(f"must be a finite number, got {_describe(value)}")
        if low is not None and (x < low or (low_open and x == low)):
            bound = "greater than" if low_open else "at least"
            raise fail(f"must be {bound} {low:g}, got {x:g}")
        if high is not None and (x > high or (high_open and x == high)):
            bound = "less than" if high_open else "at most"
            raise fail(f"must be {bound} {high:g}, got {x:g}")
        if floor is not None and 0.0 < x < floor:
            raise fail(f"must be 0 or at least {floor:g}, got {x:g}")
        return x

    def integer(
        self, key: str, default: Any = _MISSING, *, low: int | None = None, high: int | None = None
    ) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {_type_name(value)} {_describe(value)}")
        if low is not None and value < low:
            raise self.error(key, f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise self.error(key, f"must be at most {high}, got {value}")
        return value

    def identifier(self, key: str = "id") -> str:
        """The id in ``key``: a non-empty string of letters, digits, '_', '.' or '-'."""
        value: str = self.string(key)
        if not _ID.fullmatch(value):
            raise self.error(
                key,
                f"{value!r} is not a valid id; use letters, digits, '_', '.' or '-', "
                "starting with a letter or digit",
            )
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, got {_describe(value)}")
        return value

    # -- containers ------------------------------------------------------------
    def strings(self, key: str, default: Any = _MISSING, *, nonempty: bool = True) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        if not isinstance(value, list):
            raise self.error(key, f"must be an array of strings, got {_type_name(value)}")
        if nonempty and not value:
            raise self.error(key, "must not be empty")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.error(f"{key}[{i}]", f"must be a non-empty string, got {_describe(item)}")
        if len(set(value)) != len(value):
            dup = next(v for v in value if value.count(v) > 1)
            raise self.error(key, f"lists {dup!r} twice; list each entry once")
        return tuple(value)

    def numbers(self, key: str, default: Any = _MISSING, **bounds: Any) -> Any:
        value = self._raw(key, default)
        if value is default and key not in self.data:
            return value
        if not isinstance(value, list) or not value:
            raise self.error(key, f"must be a non-empty array of numbers, got {_describe(value)}")
        return tuple(self.check_number(f"{key}[{i}]", v, **bounds) for i, v in enumerate(value))

    def table(self, key: str, *, required: bool = False) -> Table | None:
        value = self._raw(key, _MISSING if required else None)
        if value is None and key not in self.data:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table, got {_type_name(value)} {_describe(value)}")
        return Table(value, self.key_path(key), self.source)

    def tables(self, key: str, *, required: bool = False) -> list[Table]:
        value = self._raw(key, _MISSING if required else [])
        if not isinstance(value, list):
            raise self.error(
                key, f"must be an array of tables ([[{self.key_path(key)}]]), got {_type_name(value)}"
            )
        if required and not value:
            raise self.error(key, "must list at least one entry")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.error(f"{key}[{i}]", f"must be a table, got {_type_name(item)}")
            out.append(Table(item, f"{self.key_path(key)}[{i}]", self.source))
        return out

    def read_all(self, key: str, read: Callable[[Table], T], *, required: bool = False) -> tuple[T, ...]:
        """Read every table of an array of tables with ``read``, then finish each."""
        out = []
        for sub in self.tables(key, required=required):
            out.append(read(sub))
            sub.finish()
        return tuple(out)

    def items(self) -> Iterator[tuple[str, Any]]:
        """All key/value pairs, marking every key as used (for free-form maps)."""
        self._used.update(self.data)
        return iter(self.data.items())

    # -- closing ---------------------------------------------------------------
    def finish(self) -> None:
        """Reject keys that were never read: typos must not pass silently."""
        unknown = [k for k in self.data if k not in self._used]
        if unknown:
            key = unknown[0]
            known = sorted(self._used)
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
            raise self.error(key, f"is not a known field{hint}", literal=True)
