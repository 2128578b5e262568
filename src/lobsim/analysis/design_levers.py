"""The levers of a design search (:mod:`lobsim.analysis.design`): named config fields.

A lever is a field of the bond designed (of every member bond, for a basket)
or of the basket, with the values the search tries; the values are ``--set``
texts, applied by :mod:`lobsim.model.overrides` exactly as ``lobsim run
--set`` applies them. This module holds the table of levers and the
arithmetic from a lever's value to its overrides; it loads nothing heavy (the
command line builds its parser from :data:`LEVERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lobsim.model.overrides import parse_value

#: A basket's contracted value of a bond lever its bonds do not share.
MIXED = "as configured"


@dataclass(frozen=True)
class Lever:
    """One lever of a design: a named field and the values it is searched over.

    ``path`` names the field with ``{id}`` for the bond's (or basket's) id;
    ``candidates`` are ``--set`` values, or a function of the contracted
    value giving them; ``current`` reads the contracted value off the
    bond (or basket) of the validated config. With ``per_target`` a value
    is a multiple of the bond's target units.
    """

    name: str
    header: str
    path: str
    candidates: tuple[str, ...] | Callable[[Any], tuple[str, ...]]
    current: Callable[[Any], Any]
    scope: str = "bond"  # "bond": a bond field (every member's, for a basket); "basket"
    per_target: bool = False


def _around(now: float) -> tuple[str, ...]:
    """Maturities one year shorter to two years longer than the contracted one."""
    return tuple(f"{now + d:g}" for d in (-1.0, 0.0, 1.0, 2.0) if now + d > 0.0)


#: The levers, in the order they are tabulated. A lever the schema does not
#: accept (a field it does not know) is reported as not searched.
LEVERS: tuple[Lever, ...] = (
    Lever("donors", "donors k", "bonds[{id}].control.donors", ("3", "5", "10", "20"),
          lambda b: b.control.donors),
    Lever("weights", "weights", "bonds[{id}].control.weights", ("equal", "synthetic"),
          lambda b: b.control.weights),
    Lever("maturity", "maturity year", "bonds[{id}].maturity", _around, lambda b: b.maturity),
    Lever("cap", "cap x target", "bonds[{id}].payment.cap", ("1", "1.2", "1.5"),
          lambda b: b.payment.cap / b.target_units, per_target=True),
    Lever("threshold", "threshold", "bonds[{id}].payment.threshold", ("0", "0.02", "0.05"),
          lambda b: b.payment.threshold),
    Lever("basis", "basis", "bonds[{id}].payment.basis", ("point", "shrunk"),
          lambda b: b.payment.basis),
    Lever("measurement", "measurement", "baskets[{id}].measurement", ("separate", "pooled"),
          lambda k: k.measurement, scope="basket"),
)
LEVER_NAMES = tuple(lever.name for lever in LEVERS)


def canonical(value: Any) -> str:
    """A lever value as one canonical text (``1.0`` and ``1`` are one value)."""
    if isinstance(value, str):
        value = parse_value(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{float(value):g}"


def default_values(lever: Lever, now: str) -> tuple[str, ...]:
    """The lever's own candidates around the contracted value ``now``."""
    if callable(lever.candidates):
        return lever.candidates(float(now))
    return lever.candidates


def contracted_value(lever: Lever, cfg: Any, kind: str, ident: str,
                     members: Sequence[str]) -> str:
    """The contracted value (:data:`MIXED` when a basket's members differ)."""
    if lever.scope == "basket":
        return canonical(lever.current(cfg.basket(ident)))
    try:
        values = {canonical(lever.current(cfg.bond(b))) for b in members}
    except AttributeError:  # a field this schema does not have: the search refuses the lever
        return MIXED
    return values.pop() if len(values) == 1 else MIXED


def overrides_for(lever: Lever, value: str, cfg: Any, ident: str,
                  members: Sequence[str]) -> list[str]:
    """The ``PATH=VALUE`` overrides that give ``lever`` the value ``value``."""
    if lever.scope == "basket":
        return [f"{lever.path.format(id=ident)}={value}"]
    out = []
    for b in members:
        v = value
        if lever.per_target:
            v = repr(float(value) * cfg.bond(b).target_units)
        out.append(f"{lever.path.format(id=b)}={v}")
    return out
