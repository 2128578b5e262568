"""Configs derived from configs: changed, checked again and given their own hash.

Pricing moves a bond's loading, the maturity advisor moves a bond's maturity,
risk bands resolve a basket's members, the risk tools keep one basket. Each
such config is built here, never by ``dataclasses.replace`` on a loaded one:

- :func:`derive` changes top-level fields (``bonds``, ``baskets``, ...) and,
  by id, fields of bonds and baskets; :func:`derive_bond` and
  :func:`derive_basket` change one; a nested dataclass field takes a dict
  of changes (``derive_bond(cfg, "bham-jsa", maturity=4.0, payment={"coupons": ()})``).
- The changed config is written back to the document it would load from
  (:func:`to_document`) and read by :func:`~lobsim.model.config.parse_config`:
  the same field checks, cross-checks and data-file checks as loading. An
  error names the derived field: ``derived from FILE: bonds[0].maturity: ...``.
- Its hash is the SHA-256 of the parent's hash and of the canonical change
  (the fields of the document that differ, data files by content), so the
  same derivation of the same config has the same hash wherever and whenever
  it runs: a resumed derived run finds its store. A derivation that changes
  nothing returns the parent itself.

The derived config keeps the parent's ``source`` (the file a run names in its
results); warnings the parent's load gave already are not given again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lobsim.model.checks import warn_idle_hazards
from lobsim.model.config import parse_config
from lobsim.model.schema import Config, ControlGroup, InterventionType, InvestorClass, Payment

# Fields of Config that are not part of the document.
_NOT_IN_DOCUMENT = ("source", "hash", "overrides")
_DERIVED_PREFIX = "derived from "


def to_document(cfg: Config) -> dict[str, Any]:
    """The TOML document, as :func:`tomllib.loads` gives it, that loads as ``cfg``.

    Defaults are written out (a bond's single measurement at maturity, a
    tranche's zero premium); data files are the :class:`~pathlib.Path` the
    config resolved them to. ``parse_config(to_document(cfg))`` equals
    ``cfg`` but for ``source`` and ``hash`` (tests/test_config_derive.py).

    Parameters
    ----------
    cfg : Config

    Returns
    -------
    dict
        Tables as dicts, arrays of tables as lists of dicts.
    """
    doc = _encode(cfg)
    for key in _NOT_IN_DOCUMENT:
        del doc[key]
    if not doc["description"]:  # the default; an empty string is refused
        del doc["description"]
    return doc


def derive(cfg: Config, *, changed_bonds: Mapping[str, Mapping[str, Any]] | None = None,
           changed_baskets: Mapping[str, Mapping[str, Any]] | None = None,
           **changes: Any) -> Config:
    """``cfg`` with fields changed, checked as loading checks it, and re-hashed.

    Parameters
    ----------
    cfg : Config
        The parent.
    changed_bonds, changed_baskets : mapping, optional
        Bond (basket) id -> changes to its fields, applied after ``changes``
        (so to a bond that ``bonds=`` keeps).
    **changes
        New values of :class:`Config` fields (``bonds=``, ``baskets=``,
        ``providers=``, ...). A nested dataclass field takes a dict of changes
        to it (``simulation={"seed": 2}``); a tuple of dataclasses, a tuple of
        dicts of changes to each (``measurements=({"at": 4.0},)``).

    Returns
    -------
    Config
        The derived config, or ``cfg`` itself when nothing changed. Holdings
        of investor classes and members of cap groups that name a bond,
        basket or tranche the derivation dropped are dropped with it (a class
        or group left empty goes too).

    Raises
    ------
    ConfigError
        When the derived config would not load: ``derived from FILE: PATH: ...``.
    UnknownIdError
        When ``changed_bonds`` or ``changed_baskets`` names an id it does not have.
    TypeError
        When a change names a field the dataclass does not have.

    Examples
    --------
    >>> from lobsim import load_config
    >>> cfg = load_config("configs/basket_demo.toml")  # doctest: +SKIP
    >>> derive(cfg, baskets=()).hash != cfg.hash  # doctest: +SKIP
    True
    """
    for key in _NOT_IN_DOCUMENT:
        if key in changes:
            raise TypeError(f"a derived config's {key!r} is not set by hand: it follows from "
                            "the parent's and the change")
    candidate = _changed(cfg, changes)
    for field, by_id in (("bonds", changed_bonds), ("baskets", changed_baskets)):
        if by_id:
            items = getattr(candidate, field)
            lookup = candidate.bond if field == "bonds" else candidate.basket
            for item_id in by_id:
                lookup(item_id)  # an unknown id: UnknownIdError naming the known ones
            candidate = dataclasses.replace(candidate, **{field: tuple(
                _changed(item, by_id[item.id]) if item.id in by_id else item for item in items)})
    return _rebuild(cfg, _pruned(cfg, candidate))


def derive_bond(cfg: Config, bond_id: str, **changes: Any) -> Config:
    """``cfg`` with the fields of bond ``bond_id`` changed (see :func:`derive`).

    ``payment``, ``control`` and ``baseline`` take a dict of changes to the
    bond's own (``payment={"coupons": ()}``) or a whole new value.

    Raises
    ------
    UnknownIdError
        If the config has no bond ``bond_id``.
    ConfigError
        When the derived config would not load.
    """
    return derive(cfg, changed_bonds={bond_id: changes})


def derive_basket(cfg: Config, basket_id: str, **changes: Any) -> Config:
    """``cfg`` with the fields of basket ``basket_id`` changed (see :func:`derive`).

    Raises
    ------
    UnknownIdError
        If the config has no basket ``basket_id``.
    ConfigError
        When the derived config would not load.
    """
    return derive(cfg, changed_baskets={basket_id: changes})


# --------------------------------------------------------------------------
# Changing, re-reading, hashing
# --------------------------------------------------------------------------
def _changed(obj: Any, changes: Mapping[str, Any]) -> Any:
    """``obj`` with ``changes``; a dict given for a dataclass field changes that field's fields."""
    names = [f.name for f in dataclasses.fields(obj)]
    for key in changes:
        if key not in names:
            raise TypeError(f"{type(obj).__name__} has no field {key!r} "
                            f"(fields: {', '.join(names)})")
    resolved = {}
    for key, value in changes.items():
        current = getattr(obj, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            value = _changed(current, value)
        elif (isinstance(value, tuple) and isinstance(current, tuple) and value
              and all(isinstance(v, dict) for v in value)):
            if len(value) != len(current):
                raise TypeError(f"{key}: {len(value)} changes for {len(current)} items; give "
                                "the items themselves to change their number")
            value = tuple(_changed(c, v) for c, v in zip(current, value, strict=True))
        resolved[key] = value
    return dataclasses.replace(obj, **resolved)


def _pruned(parent: Config, cfg: Config) -> Config:
    """``cfg`` without holdings and cap-group members of instruments it dropped from ``parent``."""
    def instruments(c: Config) -> dict[str, set[str]]:
        return {"bonds": {b.id for b in c.bonds}, "baskets": {k.id for k in c.baskets},
                "tranches": {f"{k.id}/{t.id}" for k in c.baskets for t in k.tranches}}

    had, has = instruments(parent), instruments(cfg)
    dropped = {kind: had[kind] - has[kind] for kind in had}
    if not any(dropped.values()):
        return cfg
    classes = []
    for ic in cfg.investor_classes:
        kept: dict[str, Any] = {kind: tuple(i for i in getattr(ic, kind)
                                            if i not in dropped[kind]) for kind in dropped}
        if any(kept.values()):
            classes.append(dataclasses.replace(ic, **kept))
    groups = []
    for g in cfg.cap_groups:
        members = tuple(b for b in g.bonds if b not in dropped["bonds"])
        if members:
            groups.append(dataclasses.replace(g, bonds=members))
    return dataclasses.replace(cfg, investor_classes=tuple(classes), cap_groups=tuple(groups))


def _rebuild(parent: Config, candidate: Config) -> Config:
    before, after = to_document(parent), to_document(candidate)
    change = _difference(before, after)
    if not change:
        return parent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        checked = parse_config(_as_toml(after), source=_DERIVED_PREFIX + parent.source)
    _warn_new(parent, caught)
    digest = hashlib.sha256(b"lobsim derived config\0")
    digest.update(parent.hash.encode())
    digest.update(json.dumps(change, sort_keys=True, separators=(",", ":")).encode())
    return dataclasses.replace(checked, source=parent.source, hash=digest.hexdigest(),
                               overrides=parent.overrides)


def _warn_new(parent: Config, caught: list[warnings.WarningMessage]) -> None:
    """Warn again what the derived config's checks warned, unless the parent's did too."""
    with warnings.catch_warnings(record=True) as known:
        warnings.simplefilter("always")
        warn_idle_hazards(parent)
    # a bond's index moves when bonds are dropped; its id names it
    def key(text: str) -> str:
        return re.sub(r"bonds\[\d+\] ", "", text.replace(_DERIVED_PREFIX, "", 1))

    seen = {key(str(w.message)) for w in known}
    for w in caught:
        if key(str(w.message)) not in seen:
            warnings.warn(w.message, stacklevel=4)


def _difference(old: Any, new: Any, path: str = "") -> list[list[Any]]:
    """The canonical change from ``old`` to ``new``: ``[path, value]`` per changed leaf.

    Tables are compared key by key and arrays of the same length item by
    item; a removed key is ``[path]``; data files count by their content, so
    the hash does not depend on where the checkout lives.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[list[Any]] = []
        for key in sorted(old.keys() | new.keys()):
            sub = f"{path}.{key}" if path else key
            if key not in new:
                out.append([sub])
            elif key not in old:
                out.append([sub, _canonical(new[key])])
            else:
                out.extend(_difference(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in _difference(a, b, f"{path}[{i}]")]
    if type(old) is type(new) and old == new:
        return []
    return [[path, _canonical(new)]]


def _canonical(value: Any) -> Any:
    if isinstance(value, Path):
        return {"file": value.name, "sha256": hashlib.sha256(value.read_bytes()).hexdigest()}
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _as_toml(value: Any) -> Any:
    """The document with data files as the strings a TOML file holds."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _as_toml(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_toml(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Config -> document
# --------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        table = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        _omit_implied(value, table)
        return {k: _encode(v) for k, v in table.items() if v is not None}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def _omit_implied(obj: Any, table: dict[str, Any]) -> None:
    """Drop (or reshape) the fields a reader fills in itself or refuses alongside others."""
    if isinstance(obj, InterventionType) and obj.ramp_profile is not None:
        del table["ramp_years"]  # one or the other
    elif isinstance(obj, ControlGroup):
        if obj.donor_areas is not None:
            del table["donors"]  # the number of donor areas
        table["covariate_weights"] = dict(obj.covariate_weights) or None
    elif isinstance(obj, Payment):
        rule = obj.mechanism in ("binary", "schedule")
        if rule:  # their rule has no threshold, at any date
            del table["threshold"]
            table["measurements"] = [{"at": m.at, "cap": m.cap} for m in obj.measurements]
        if obj.mechanism != "binary":  # the reader sets trigger 1 and amount target x price
            del table["trigger"], table["amount"]
        if obj.mechanism != "schedule":
            del table["grid"]
    elif isinstance(obj, InvestorClass):
        for key in ("bonds", "tranches", "baskets"):
            if not table[key]:
                del table[key]
