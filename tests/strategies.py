"""Hypothesis strategies that mutate a parsed TOML document (nested dicts and lists),
and that draw valid documents with every number in its documented range.

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


# --------------------------------------------------------------------------
# Valid documents: every numeric field drawn from its documented range
# --------------------------------------------------------------------------
# The ranges of docs/config.md (Numeric ranges, Data files), written out here
# rather than imported from lobsim.model._limits, so that the property test draws at
# the documented extremes whatever the code's constants say.
DAY = 1.0 / 365.0
YEARS = 100.0
AMOUNT = 1e15
UNITS = 1e9
SMALL = 1e-6


def in_range(lo: float, hi: float) -> st.SearchStrategy[float]:
    """A float in [lo, hi], often exactly an end or next to it."""
    ends = [lo, hi, math.nextafter(lo, hi), math.nextafter(hi, lo)]
    return st.one_of(st.sampled_from(ends), st.floats(lo, hi, allow_nan=False))


def either(full: st.SearchStrategy[float], usual: st.SearchStrategy[float]
           ) -> st.SearchStrategy[float]:
    """The whole range or its usual part: extremes are drawn, and so are configs whose
    fields are extreme one or two at a time (all at once, the loader refuses most)."""
    return st.one_of(full, usual, usual, usual, usual)


def zero_or(floor: float, hi: float) -> st.SearchStrategy[float]:
    """0, or a float in [floor, hi] (the "0 or at least" fields)."""
    return st.one_of(st.just(0.0), in_range(floor, hi))


def _labels(kind: str, n: int) -> list[str]:
    if kind == "integer":
        return [str(t - n + 1) for t in range(n)]  # ..., -1, 0
    if kind == "month":
        return [f"{2000 + (t + 5) // 12}-{(t + 5) % 12 + 1:02d}" for t in range(n)]
    return [f"{2000 + t // 4}-Q{t % 4 + 1}" for t in range(n)]


@st.composite
def ranged_data_files(draw: st.DrawFn, areas: list[tuple[str, str]]) -> dict[str, Any]:
    """Areas, history, and maybe state and volatility files, values in range."""
    n = draw(st.integers(3, 12))
    kind = draw(st.sampled_from(["integer", "month", "quarter"]))
    labels = _labels(kind, n)
    files = {"areas.csv": "area,region,x\n" + "".join(
        f"{a},{r},{draw(in_range(-1e15, 1e15))!r}\n" for a, r in areas)}
    history, log_base = ["area,region,period,value"], []
    for a, r in areas:
        base = draw(in_range(SMALL, 1e12))
        wiggle = draw(st.sampled_from([0.0, 0.001, 0.1]))
        values = [min(max(base * math.exp(wiggle * math.sin(3.0 * t + len(a))), SMALL), 1e12)
                  for t in range(n)]
        history += [f"{a},{r},{p},{v!r}" for p, v in zip(labels, values, strict=True)]
        log_base.append(math.log(values[-1]))
    files["history.csv"] = "\n".join(history) + "\n"
    if draw(st.booleans()):
        state = either(in_range(-5.0, 5.0), in_range(-0.2, 0.2))
        regional = {r: draw(state) for r in sorted({r for _, r in areas})}
        national = draw(state)
        rows = ["area,trend,log_level,area_state,regional_state,national_state"]
        for (a, r), lb in zip(areas, log_base, strict=True):
            level = draw(either(in_range(-20.0, 30.0), st.just(min(max(lb, -20.0), 30.0))))
            trend = draw(either(in_range(-1.0, 1.0), in_range(-0.05, 0.05)))
            rows.append(f"{a},{trend!r},{level!r},"
                        f"{draw(state)!r},{regional[r]!r},{national!r}")
        files["state.csv"] = "\n".join(rows) + "\n"
    if draw(st.booleans()):
        files["volatility.csv"] = "area,region,volatility_scale\n" + "".join(
            f"{a},{r},{draw(either(in_range(0.0, 100.0), in_range(0.0, 3.0)))!r}\n"
            for a, r in areas)
    return {"files": files, "period": {"integer": "year", "month": "month",
                                       "quarter": "quarter"}[kind], "periods": n}


@st.composite
def _payment(draw: st.DrawFn, target: float, start: float, maturity: float,
             percent: bool) -> dict[str, Any]:
    mechanism = draw(st.sampled_from(["per_unit", "threshold", "binary", "schedule"]))
    top = 100.0 if percent else UNITS
    cap = draw(either(in_range(SMALL, top), in_range(0.5, 2.0).map(
        lambda f: min(max(f * target, SMALL), top))))
    pay: dict[str, Any] = {"mechanism": mechanism}
    if mechanism == "binary":
        pay["trigger"] = draw(in_range(0.0, 100.0).filter(lambda x: x > 0.0))
        if draw(st.booleans()):
            pay["amount"] = draw(in_range(SMALL, AMOUNT))
    else:
        pay["cap"] = cap
    if mechanism == "threshold":
        pay["threshold"] = draw(in_range(0.0, 1.0).filter(lambda x: x < 1.0))
    if mechanism == "schedule":
        steps = sorted(set(draw(st.lists(in_range(0.0, 10.0), min_size=1, max_size=3))))
        pay["grid"] = [[p, draw(in_range(-1.0, 10.0))] for p in steps]
    if draw(st.booleans()):
        pay["max_return"] = draw(in_range(0.0, 10.0))
    if draw(st.booleans()):
        pay["coupons"] = [{"at": draw(in_range(start, maturity).filter(lambda x: x > start)),
                           "rate": draw(in_range(0.0, 10.0).filter(lambda x: x > 0.0))}]
    if mechanism in ("per_unit", "threshold") and draw(st.booleans()):
        first = draw(in_range(start, maturity).filter(lambda x: start < x < maturity))
        pay["measurements"] = [{"at": first, "cap": draw(in_range(SMALL, cap))},
                               {"at": maturity}]
    return pay


@st.composite
def ranged_documents(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """A config document and its data files, every number in its documented range.

    Cross-field rules (a Beta prior's sd below sqrt(m (1 - m)), shares adding up to
    1, dates in order) are mostly met by construction; the two rules joining many
    fields (the best-case return, the log-level envelope) are left to the loader.
    """
    areas = [(f"a{i}", f"R{i // 3}") for i in range(6)]
    data = draw(ranged_data_files(areas))
    mean = draw(in_range(0.0, 1.0))
    limit = math.sqrt(mean * (1.0 - mean))
    sd = 0.0
    if limit > 2.0 * SMALL:  # sd < sqrt(m (1 - m)) (a Beta prior)
        sd = draw(st.one_of(st.just(0.0), st.just(SMALL),
                            st.floats(SMALL, limit, exclude_max=True)))
    rho_type = draw(in_range(0.0, 1.0))
    intervention: dict[str, Any] = {
        "id": "prog", "success_mean": mean, "success_sd": sd, "rho_type": rho_type,
        "rho_global": draw(in_range(0.0, 1.0 - rho_type)),
        "relapse_rate": draw(in_range(0.0, 1.0).filter(lambda x: x < 1.0))}
    ramp = draw(st.sampled_from(["years", "profile", "none"]))
    if ramp == "years":
        intervention["ramp_years"] = draw(zero_or(DAY, 50.0))
    elif ramp == "profile":
        steps = sorted(draw(st.lists(in_range(0.0, 1.0), max_size=3)))
        intervention["ramp_profile"] = [*steps, 1.0]
    percent = draw(st.booleans())
    process = {name: draw(in_range(0.0, 1.0)) for name in
               ("national_phi", "regional_phi", "area_phi")}
    process |= {name: draw(either(in_range(0.0, 5.0), in_range(0.0, 0.1))) for name in
                ("national_sigma", "regional_sigma", "area_sigma", "measurement_sigma")}
    process |= {name: draw(either(in_range(-10.0, 10.0), in_range(-2.0, 2.0))) for name in
                ("national_loading", "regional_loading")}
    outcome: dict[str, Any] = {
        "id": "out", "kind": "percent" if percent else "count", "history": "history.csv",
        "process": process,
        "savings": [{"department": "D1", "amount": draw(in_range(0.0, AMOUNT)),
                     "basis": draw(st.sampled_from(["per_unit_year", "per_unit"]))}]}
    for name in ("state", "volatility"):
        if f"{name}.csv" in data["files"]:
            outcome[name] = f"{name}.csv"
    bonds = []
    for i in range(draw(st.integers(1, 2))):
        start = draw(either(in_range(0.0, YEARS - DAY), in_range(0.0, 5.0)))
        maturity = draw(either(in_range(start + DAY, YEARS), in_range(1.0, 10.0).map(
            lambda term, start=start: min(start + term, YEARS))))
        target = draw(in_range(SMALL, 100.0 if percent else UNITS))
        share = draw(in_range(0.0, 1.0).filter(lambda x: 0.0 < x < 1.0))
        control: dict[str, Any] = {
            "weights": draw(st.sampled_from(["equal", "synthetic", "verified"])),
            "donors": draw(st.integers(1, 4)),
            "pre_periods": draw(st.integers(2, data["periods"]))}
        if control["weights"] == "synthetic" and draw(st.booleans()):
            control["covariate_weights"] = {"x": draw(in_range(0.0, 1e6))}
        bond: dict[str, Any] = {
            "id": f"b{i}", "provider": "prov", "area": areas[3 * i][0], "outcome": "out",
            "intervention": "prog", "target_units": target,
            "cost_per_unit": draw(in_range(SMALL, AMOUNT)),
            "basket_risk": draw(in_range(0.0, 100.0)),
            "return_premium": draw(in_range(0.0, 100.0)), "start": start, "maturity": maturity,
            "payment": draw(_payment(target, start, maturity, percent)),
            "payers": [{"agency": "A1", "share": share,
                        "agency_premium": draw(in_range(0.0, AMOUNT))},
                       {"agency": "A2", "share": 1.0 - share}],
            "control": control}
        if draw(st.booleans()):
            bond["baseline"] = {"department": "D1", "agency": "A1",
                                "units": draw(in_range(0.0, UNITS)),
                                "cost_per_unit_year": draw(in_range(0.0, AMOUNT))}
        bonds.append(bond)
    ids = [b["id"] for b in bonds]
    senior = draw(in_range(SMALL, 1.0 - SMALL))
    basket: dict[str, Any] = {
        "id": "all", "bonds": ids,
        "where": {"maturity_min": 0.0, "maturity_max": YEARS},
        "tranches": [{"id": "senior", "share": senior, "seniority": 1,
                      "premium": draw(in_range(0.0, 10.0)),
                      "early_coupon": draw(in_range(0.0, 10.0))},
                     {"id": "junior", "share": 1.0 - senior, "seniority": draw(
                         st.integers(2, 1000)), "premium": draw(in_range(0.0, 10.0)),
                      "protected": draw(st.booleans())}]}
    if draw(st.booleans()):
        basket["guarantee"] = {"cap": draw(in_range(0.0, AMOUNT).filter(lambda x: x > 0.0))}
    doc: dict[str, Any] = {
        "simulation": {"scenarios": draw(st.integers(2, 10**11)),
                       "seed": draw(st.integers(0, 2**63 - 1)),
                       "block_size": draw(st.sampled_from([1, 7, 64, 10**7]))},
        "departments": [{"id": "D1"}, {"id": "D2"}],
        "agencies": [{"id": "A1", "department": "D1"}, {"id": "A2", "department": "D2"}],
        "interventions": [intervention],
        "providers": [{"id": "prov", "failure_hazard": draw(in_range(0.0, 100.0))}],
        "outcomes": [outcome],
        "universe": {"areas": "areas.csv", "period": data["period"]},
        "bonds": bonds, "baskets": [basket],
        "investor_classes": [{"id": "inv", "relief": draw(in_range(0.0, 1.0).filter(
            lambda x: x < 1.0)), "tax_rate": draw(in_range(0.0, 1.0)), "bonds": ids[:1],
            "baskets": ["all"]}]}
    if draw(st.booleans()):
        doc["cap_groups"] = [{"id": "g", "bonds": ids, "cap": draw(in_range(SMALL, AMOUNT))}]
    return doc, data["files"]
