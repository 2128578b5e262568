"""Command-line overrides of a config: ``--set PATH=VALUE``.

An override changes the parsed TOML document before it is validated, so a
value set on the command line is checked exactly as the same value in the
file, and the config hash (taken over the document) tells two overridden
runs apart. The syntax (docs/config.md, section Overrides):

- ``PATH`` is a TOML dotted key with array indices: ``simulation.scenarios``,
  ``bonds[0].target_units``, ``bonds[0].payment.cap``. An array of tables
  may also be indexed by the ``id`` of its table: ``bonds[bham-jsa].maturity``.
  A missing key or table is created (the validator then says if the field
  is unknown); a missing array entry is an error: arrays are extended in the
  file, not on the command line.
- ``VALUE`` is a TOML value (``4000``, ``1.2``, ``true``, ``"linear"``,
  ``[0.2, 1.0]``); anything that is not one is taken as a bare string, so
  ``--set bonds[0].payment.mechanism=binary`` needs no quotes.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lobsim.errors import ConfigError, UnknownIdError

#: A bare TOML key, and what may stand between brackets (an index or an id).
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_.\-]*)\]")

Step = str | int | tuple[str]  # a key, a list index, or ("id",): an entry found by id


@dataclass(frozen=True)
class Override:
    """One parsed ``PATH=VALUE``: the text as given, the path's steps and the value."""

    text: str
    path: str
    steps: tuple[Step, ...]
    value: Any


def split_assignment(text: str) -> tuple[str, str]:
    """``PATH=VALUE`` into its two sides; a ``ValueError`` saying what is wrong."""
    path, eq, value = text.partition("=")
    path = path.strip()
    if not eq or not path:
        raise ValueError(f"must be PATH=VALUE (bonds[0].target_units=4000), got {text!r}")
    return path, value.strip()


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a dotted path with indices; a ``ValueError`` if it is malformed."""
    steps: list[Step] = []
    pos = 0
    while True:
        key = _KEY.match(path, pos)
        if key is None:
            raise ValueError(f"{path!r} is not a TOML path: expected a key at character "
                             f"{pos + 1} (keys are letters, digits, '_' and '-')")
        steps.append(key.group())
        pos = key.end()
        while (index := _INDEX.match(path, pos)) is not None:
            inside = index.group(1)
            steps.append(int(inside) if inside.isdigit() else (inside,))
            pos = index.end()
        if pos == len(path):
            return tuple(steps)
        if path[pos] != ".":
            raise ValueError(f"{path!r} is not a TOML path: unexpected {path[pos]!r} at "
                             f"character {pos + 1} (write a.b, a[0].b or a[id].b)")
        pos += 1


def parse_value(text: str) -> Any:
    """A TOML value, or ``text`` itself as a bare string when it is not one."""
    if "\n" not in text:
        try:
            doc = tomllib.loads(f"v = {text}")
        except tomllib.TOMLDecodeError:
            pass
        else:
            if list(doc) == ["v"]:
                return doc["v"]
    return text


def parse_override(text: str) -> Override:
    """Parse ``PATH=VALUE``; a ``ValueError`` with a one-line reason if it is malformed."""
    path, value = split_assignment(text)
    return Override(text=text, path=path, steps=parse_path(path), value=parse_value(value))


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override], *,
                    source: str) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A copy of the document ``data`` with ``overrides`` applied, in order.

    Returns
    -------
    (document, paths)
        The changed document, and the canonical TOML path each override set
        (indices as numbers, as the validator names fields: ``bonds[0].maturity``).

    Raises
    ------
    ConfigError
        ``FILE: --set TEXT: ...`` for a path that crosses a value that is not
        a table or array, an index past the end or an id no entry has.
    """
    doc = copy.deepcopy(data)
    paths = tuple(_apply(doc, o, source) for o in overrides)
    return doc, paths


def annotate(exc: ConfigError, overrides: Sequence[Override], paths: Sequence[str]) -> ConfigError:
    """``exc`` (raised validating an overridden document) saying which ``--set`` caused it.

    An error on a field an override set, or inside a table it set, names
    that override; any other error is said to hold with the overrides given,
    since a cross-check can fail on a value set on the command line.
    """
    if not overrides:
        return exc
    where = exc.path or ""
    mine = [o.text for o, p in zip(overrides, paths, strict=True)
            if where == p or where.startswith((p + ".", p + "["))]
    if mine:
        note = f"(set by --set {mine[-1]})"
    else:
        note = "(with " + ", ".join(f"--set {o.text}" for o in overrides) + ")"
    return ConfigError(f"{exc.reason} {note}", source=exc.source, path=exc.path)


def _apply(doc: dict[str, Any], o: Override, source: str) -> str:
    where = f"--set {o.text}"
    node: Any = doc
    canonical = ""
    for k, step in enumerate(o.steps):
        last = k == len(o.steps) - 1
        if isinstance(step, str):
            if not isinstance(node, dict):
                raise ConfigError(f"{canonical} is {_kind(node)}, not a table, so it has no key "
                                  f"{step!r}", source=source, path=where)
            canonical = f"{canonical}.{step}" if canonical else step
            if last:
                node[step] = o.value
            elif step not in node:
                if not isinstance(o.steps[k + 1], str):
                    raise ConfigError(f"the config has no {canonical} to index; arrays are "
                                      "extended in the file", source=source, path=where)
                node[step] = {}
            node = node.get(step) if not last else None
            continue
        if not isinstance(node, list):
            raise ConfigError(f"{canonical} is {_kind(node)}, not an array, so it cannot be "
                              "indexed", source=source, path=where)
        index = _index(node, step, canonical, source, where)
        canonical = f"{canonical}[{index}]"
        if last:
            node[index] = o.value
        else:
            node = node[index]
    return canonical


def _index(items: list[Any], step: int | tuple[str], canonical: str, source: str,
           where: str) -> int:
    """The position ``step`` names in ``items`` (an index, or the id of a table)."""
    name = canonical.rsplit(".", 1)[-1]
    singular = name[:-1] if name.endswith("s") else name
    if isinstance(step, int):
        if step < len(items):
            return step
        owner = "the config" if "." not in canonical and "[" not in canonical else canonical
        count = f"{len(items)} {singular}{'' if len(items) == 1 else 's'}"
        if owner == "the config":
            last = f" to {name}[{len(items) - 1}]" if len(items) > 1 else ""
            raise ConfigError(f"the config has {count} ({name}[0]{last})"
                              if items else f"the config has no {name}",
                              source=source, path=where)
        raise ConfigError(f"{owner} has {len(items)} entries" if items else f"{owner} is empty",
                          source=source, path=where)
    ids = [t.get("id") for t in items if isinstance(t, dict)]
    if step[0] in ids:
        return ids.index(step[0])
    raise UnknownIdError(singular, step[0], [str(i) for i in ids if i is not None],
                         source=source, path=where)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a table"


def split_values(text: str) -> list[str]:
    """``V1,V2,...`` split at the commas outside brackets and quotes (``[0,1],[1,2]``: two)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts
