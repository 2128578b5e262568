"""Builders of small custom worlds for simulation tests.

A *universe* here is three CSV files written into a directory: the areas
(``area,region,x`` with one covariate ``x`` = the area's position, so that the
nearest neighbours of an area are the areas next to it in the file), a flat
observed history (``area,region,period,value``: every period equals the area's
base value) and a base-year state (``area,trend,log_level,area_state,
regional_state,national_state``). The state's ``log_level`` is written as the
exact ``repr`` of the log of the base value *as the loader computes it*
(:func:`lobsim.model.areas.read_outcome`), so that with zero trends, zero states and
zero volatilities the simulated no-programme level equals the observed base
level bit for bit and a noiseless world measures exactly the true units.

Config documents are plain dicts (what :func:`tomllib.loads` returns) passed to
:func:`lobsim.parse_config`; data files are referenced by absolute path.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lobsim import Config, parse_config
from lobsim.model.areas import read_areas, read_outcome

#: Process of a world with no randomness in the outcomes at all.
ZERO_PROCESS: dict[str, float] = {
    "national_phi": 1.0,
    "national_sigma": 0.0,
    "regional_phi": 1.0,
    "regional_sigma": 0.0,
    "area_phi": 1.0,
    "area_sigma": 0.0,
    "measurement_sigma": 0.0,
}


@dataclass(frozen=True)
class Universe:
    """Paths of a universe's files and its area ids, in file order."""

    areas: Path
    history: Path
    state: Path
    ids: tuple[str, ...]
    regions: tuple[str, ...]


def _per_area(value: float | Sequence[float], n: int) -> list[float]:
    if isinstance(value, int | float):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"expected {n} values, got {len(values)}")
    return values


def make_universe(
    directory: Path,
    n_areas: int,
    *,
    ids: Sequence[str] | None = None,
    base: float | Sequence[float] = 1000.0,
    regions: Sequence[str] | None = None,
    trend: float | Sequence[float] = 0.0,
    area_state: float | Sequence[float] = 0.0,
    regional_state: Mapping[str, float] | None = None,
    national_state: float = 0.0,
    periods: int = 6,
    name: str = "u",
) -> Universe:
    """Write a universe of ``n_areas`` areas into ``directory`` and return its paths.

    Parameters
    ----------
    directory : Path
        Where the CSV files go (``{name}_areas.csv`` and so on).
    n_areas : int
        Number of areas; ids default to ``a000``, ``a001``, ...
    base : float or sequence
        Observed (and true) base-year level of each area; the history is flat.
    regions : sequence of str, optional
        Region of each area (default: all in ``R0``).
    trend, area_state : float or sequence
        Per-area trend ``mu`` and area-specific state ``U[a,0]``.
    regional_state : mapping, optional
        ``G[r,0]`` per region (default 0).
    national_state : float
        ``F[0]``.
    periods : int
        Number of history periods.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    area_ids = tuple(ids) if ids is not None else tuple(f"a{i:03d}" for i in range(n_areas))
    if len(area_ids) != n_areas:
        raise ValueError("ids must have n_areas entries")
    region_ids = tuple(regions) if regions is not None else ("R0",) * n_areas
    bases = _per_area(base, n_areas)
    trends = _per_area(trend, n_areas)
    states = _per_area(area_state, n_areas)
    g0 = dict(regional_state or {})

    areas = directory / f"{name}_areas.csv"
    rows = ["area,region,x"]
    rows += [f"{a},{r},{i}" for i, (a, r) in enumerate(zip(area_ids, region_ids, strict=True))]
    areas.write_text("\n".join(rows) + "\n", encoding="utf-8")

    history = directory / f"{name}_history.csv"
    rows = ["area,region,period,value"]
    for a, r, y in zip(area_ids, region_ids, bases, strict=True):
        rows += [f"{a},{r},{t},{y!r}" for t in range(periods)]
    history.write_text("\n".join(rows) + "\n", encoding="utf-8")

    # log levels exactly as the loader takes the log of the observed base value
    log_base = read_outcome(history, None, read_areas(areas)).log_base
    state = directory / f"{name}_state.csv"
    rows = ["area,trend,log_level,area_state,regional_state,national_state"]
    for i, (a, r) in enumerate(zip(area_ids, region_ids, strict=True)):
        rows.append(f"{a},{trends[i]!r},{float(log_base[i])!r},{states[i]!r},"
                    f"{float(g0.get(r, 0.0))!r},{float(national_state)!r}")
    state.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Universe(areas=areas, history=history, state=state, ids=area_ids,
                    regions=region_ids)


def intervention_dict(id: str = "prog", *, mean: float = 1.0, sd: float = 0.0,
                      rho_type: float = 0.0, rho_global: float = 0.0, ramp_years: float = 0.0,
                      relapse: float = 0.0) -> dict[str, Any]:
    """An ``[[interventions]]`` entry."""
    return {"id": id, "success_mean": mean, "success_sd": sd, "rho_type": rho_type,
            "rho_global": rho_global, "ramp_years": ramp_years, "relapse_rate": relapse}


def bond_dict(
    id: str,
    area: str,
    *,
    provider: str = "prov",
    outcome: str = "out",
    intervention: str = "prog",
    target: float = 100.0,
    cost: float = 2000.0,
    basket_risk: float = 0.10,
    return_premium: float = 0.07,
    start: float = 0.0,
    maturity: float = 4.0,
    payment: Mapping[str, Any] | None = None,
    payers: Sequence[Mapping[str, Any]] | None = None,
    donors: int | None = 1,
    donor_areas: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A ``[[bonds]]`` entry (default: per unit, cap at target, one payer ``AG``)."""
    control: dict[str, Any] = {"weights": "equal"}
    if donor_areas is not None:
        control["donor_areas"] = list(donor_areas)
    elif donors is not None:
        control["donors"] = donors
    bond: dict[str, Any] = {
        "id": id, "provider": provider, "area": area, "outcome": outcome,
        "intervention": intervention, "target_units": target, "cost_per_unit": cost,
        "basket_risk": basket_risk, "return_premium": return_premium, "start": start,
        "maturity": maturity,
        "payers": [dict(p) for p in payers] if payers else [{"agency": "AG", "share": 1.0}],
        "control": control,
    }
    if payment is not None:
        bond["payment"] = copy.deepcopy(dict(payment))
    return bond


def config_dict(
    universe: Universe,
    bonds: Sequence[Mapping[str, Any]],
    *,
    process: Mapping[str, float] | None = None,
    interventions: Sequence[Mapping[str, Any]] | None = None,
    providers: Sequence[Mapping[str, Any]] | None = None,
    departments: Sequence[str] = ("DEPT",),
    agencies: Mapping[str, str] | None = None,
    outcomes: Mapping[str, str] | None = None,
    savings: Sequence[Mapping[str, Any]] = (),
    baskets: Sequence[Mapping[str, Any]] = (),
    scenarios: int = 1000,
    seed: int = 1,
    block_size: int = 4096,
    period: str = "year",
) -> dict[str, Any]:
    """A whole config document on ``universe``.

    ``agencies`` maps agency id to its department (default ``{"AG": "DEPT"}``);
    ``outcomes`` maps outcome id to kind (default ``{"out": "count"}``), all
    observed on the universe's history with the same ``process`` (default: no
    randomness) and ``savings``. Providers default to one, ``prov``, that never
    fails; interventions to one, ``prog``, with theta = 1.
    """
    doc: dict[str, Any] = {
        "name": "test world",
        "simulation": {"scenarios": scenarios, "seed": seed, "block_size": block_size},
        "departments": [{"id": d} for d in departments],
        "agencies": [{"id": a, "department": d}
                     for a, d in (agencies or {"AG": "DEPT"}).items()],
        "interventions": [dict(t) for t in (interventions or [intervention_dict()])],
        "providers": [dict(p) for p in (providers or [{"id": "prov", "failure_hazard": 0.0}])],
        "universe": {"areas": str(universe.areas), "period": period},
        "outcomes": [
            {"id": o, "kind": kind, "history": str(universe.history),
             "state": str(universe.state), "process": dict(process or ZERO_PROCESS),
             "savings": [dict(s) for s in savings]}
            for o, kind in (outcomes or {"out": "count"}).items()
        ],
        "bonds": [copy.deepcopy(dict(b)) for b in bonds],
    }
    if baskets:
        doc["baskets"] = [dict(k) for k in baskets]
    return doc


def parse(doc: Mapping[str, Any]) -> Config:
    """Validate a config document (its data paths are absolute)."""
    return parse_config(copy.deepcopy(dict(doc)), source="<test world>", base_dir=".")
