"""Hypothesis strategies that mutate a parsed TOML document (nested dicts and lists).

A *location* is the tuple of keys and indices leading to a value, for example
``("bonds", 2, "payers", 0, "share")``. :func:`mutated_documents` draws one to
three mutations, each at a random location of the document as it stands after
the previous ones:

- ``drop``: delete the key (or list entry);
- ``rename``: rename the key, with a typo of it or random text;
- ``retype``: replace the value by one of another TOML type;
- ``perturb``: negate, zero, enlarge, shrink or nudge a number, or make it nan
  or inf; misspell, blank or pad a string;
- ``duplicate``: repeat an entry of a list.

Generated values stay inside what TOML can express: 64-bit integers (the TOML
spec's limit), floats, strings, booleans, dates and times, arrays and tables.
Finite floats span the whole float range, so overflow in derived amounts
(target x price) is searched for too; explicit edge cases (huge integers,
over-long file names) live in ``test_config_errors.py``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import strategies as st

Location = tuple[str | int, ...]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_BOUND = 1.7976931348623157e308  # the largest float
MUTATIONS = ("drop", "rename", "retype", "perturb", "duplicate")


# --------------------------------------------------------------------------
# Walking the document
# --------------------------------------------------------------------------
def locations(doc: Any) -> list[Location]:
    """Every location below the root, parents before children."""
    out: list[Location] = []

    def walk(node: Any, here: Location) -> None:
        children: Any
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            return
        for key, value in children:
            out.append((*here, key))
            walk(value, (*here, key))

    walk(doc, ())
    return out


def get(doc: Any, location: Location) -> Any:
    """The value at ``location``."""
    node = doc
    for key in location:
        node = node[key]
    return node


def parent_of(doc: Any, location: Location) -> tuple[Any, str | int]:
    """The container holding ``location`` and the key or index in it."""
    if not location:
        raise ValueError("the root has no parent")
    return get(doc, location[:-1]), location[-1]


def type_name(value: Any) -> str:
    """The TOML type of a value (bool before int: True is an int in Python)."""
    for name, types in (("boolean", bool), ("integer", int), ("float", float), ("string", str),
                        ("array", list), ("table", dict)):
        if isinstance(value, types):
            return name
    return type(value).__name__  # dates and times


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------
toml_integers = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
toml_floats = st.one_of(
    st.floats(min_value=-FLOAT_BOUND, max_value=FLOAT_BOUND, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324]),
)
toml_strings = st.text(max_size=20)
toml_keys = st.text(max_size=12)
toml_scalars = st.one_of(
    toml_integers, toml_floats, toml_strings, st.booleans(), st.datetimes(), st.dates(),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(toml_keys, inner, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def typos(draw: st.DrawFn, word: str) -> str:
    """A misspelling of ``word`` (or random text), never ``word`` itself."""
    kind = draw(st.sampled_from(["delete", "insert", "replace", "swap", "case", "suffix", "text"]))
    letters = st.characters(codec="utf-8", categories=("L", "N", "P", "Zs"))
    out = word
    if kind == "delete" and word:
        i = draw(st.integers(0, len(word) - 1))
        out = word[:i] + word[i + 1:]
    elif kind == "insert":
        i = draw(st.integers(0, len(word)))
        out = word[:i] + draw(letters) + word[i:]
    elif kind == "replace" and word:
        i = draw(st.integers(0, len(word) - 1))
        out = word[:i] + draw(letters) + word[i + 1:]
    elif kind == "swap" and len(word) > 1:
        i = draw(st.integers(0, len(word) - 2))
        out = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    elif kind == "case":
        out = word.swapcase()
    elif kind == "suffix":
        out = word + draw(st.sampled_from(["s", "_", " ", "2", "\t"]))
    elif kind == "text":
        out = draw(toml_keys)
    return out if out != word else word + "_x"


@st.composite
def perturbed_numbers(draw: st.DrawFn, x: int | float) -> int | float:
    """``x`` negated, zeroed, enlarged, shrunk, nudged, or made non-finite."""
    options: list[int | float] = [
        -x, 0, 0.0, -1, 1, math.nan, math.inf, -math.inf, FLOAT_BOUND, -FLOAT_BOUND,
        1e-300, -1e-300, INT64_MAX, INT64_MIN,
    ]
    if isinstance(x, int):
        options += [x + 1, x - 1, x * 1000 if abs(x) < 2**50 else x // 1000, float(x)]
    else:
        options += [
            x * 1e6 if abs(x) < 1e290 else x / 1e6, x / 1e6, x + 1e-9, x - 1e-9,
            x * (1 + 1e-12), x * (1 - 1e-12), x + 1.0, x - 1.0, math.nextafter(x, math.inf),
            math.nextafter(x, -math.inf),
        ]
        if math.isfinite(x) and x == int(x) and abs(x) < 2**53:
            options.append(int(x))
    # Always a change, also by type: 1 -> 1.0 or 0 -> -0.0 count, 0 -> 0 does not.
    return draw(st.sampled_from([o for o in options if repr(o) != repr(x)]))


@st.composite
def perturbed_strings(draw: st.DrawFn, s: str) -> str:
    """A misspelt, blanked or padded variant of ``s``, never ``s`` itself."""
    variants = [v for v in ("", " ", s.upper(), " " + s, s + "\n") if v != s]
    return draw(st.one_of(typos(s), st.sampled_from(variants)))


# --------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------
def _applicable(doc: Any, location: Location) -> list[str]:
    parent, _ = parent_of(doc, location)
    value = get(doc, location)
    kinds = ["drop", "retype"]
    if isinstance(parent, dict):
        kinds.append("rename")
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        kinds.append("perturb")
    if isinstance(value, list) and value:
        kinds.append("duplicate")
    return kinds


@st.composite
def mutate_once(draw: st.DrawFn, doc: dict[str, Any]) -> str:
    """Apply one mutation to ``doc`` in place; return a description of it."""
    where = locations(doc)
    if not where:  # everything was dropped: add a stray key
        doc[draw(toml_keys)] = draw(toml_values)
        return "add to empty document"
    location = draw(st.sampled_from(where))
    kind = draw(st.sampled_from(_applicable(doc, location)))
    parent, key = parent_of(doc, location)
    value = parent[key]
    if kind == "drop":
        del parent[key]
    elif kind == "rename":
        assert isinstance(key, str)
        new_key = draw(typos(key))
        parent[new_key] = parent.pop(key)
        return f"rename {location} -> {new_key!r}"
    elif kind == "retype":
        original = type_name(value)
        parent[key] = draw(toml_values.filter(lambda v: type_name(v) != original))
    elif kind == "perturb":
        if isinstance(value, str):
            parent[key] = draw(perturbed_strings(value))
        else:
            parent[key] = draw(perturbed_numbers(value))
    elif kind == "duplicate":
        i = draw(st.integers(0, len(value) - 1))
        value.insert(draw(st.integers(0, len(value))), copy.deepcopy(value[i]))
    if kind in ("retype", "perturb"):
        return f"{kind} {location}: {value!r} -> {parent[key]!r}"
    return f"{kind} {location}"


@st.composite
def mutated_documents(draw: st.DrawFn, doc: dict[str, Any], max_mutations: int = 3
                      ) -> tuple[dict[str, Any], list[str]]:
    """A deep copy of ``doc`` with 1 to ``max_mutations`` mutations, and their descriptions."""
    out = copy.deepcopy(doc)
    n = draw(st.integers(1, max_mutations))
    log = [draw(mutate_once(out)) for _ in range(n)]
    return out, log
