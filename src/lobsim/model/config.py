"""Loading a configuration: TOML to a validated :class:`~lobsim.model.schema.Config`.

:func:`load_config` reads the file, :func:`parse_config` reads each table
through a :class:`~lobsim.model._fields.Table` (types, ranges, unknown keys:
the checks one table can make on its own) and then runs the cross-checks of
:mod:`lobsim.model.checks`. Either a :class:`Config` comes back or a
:class:`~lobsim.errors.ConfigError` naming the file, the TOML path of the
field, the bad value and the fix. The schema is documented field by field in
``docs/config.md``; :mod:`lobsim.model.derive` builds a config from a changed
one through the same readers and checks.

The schema's names (``Config``, ``Bond``, ``PERIODS_PER_YEAR``, ...) are
importable from here too, as they were before the schema had its own module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from lobsim.errors import ConfigError
from lobsim.model._bonds import read_bond
from lobsim.model._fields import Table
from lobsim.model._limits import (
    AMOUNT_MAX,
    DAY,
    LOADING_MAX,
    POSITIVE_MIN,
    SIGMA_MAX,
    YEARS_MAX,
)
from lobsim.model.checks import check_references
from lobsim.model.overrides import annotate, apply_overrides, parse_override
from lobsim.model.schema import (
    MAX_SCENARIOS,
    MAX_SEED,
    MEASUREMENTS,
    MIN_SCENARIOS,
    PACKAGE_DATA_PREFIX,
    PERIODS_PER_YEAR,
    SHARE_TOLERANCE,
    Agency,
    Baseline,
    Basket,
    BasketRule,
    Bond,
    CapGroup,
    Config,
    ControlGroup,
    Coupon,
    Department,
    Guarantee,
    InterventionType,
    InvestorClass,
    Measurement,
    Mechanism,
    Outcome,
    OutcomeKind,
    OutcomeProcess,
    Payer,
    Payment,
    Period,
    Provider,
    Saving,
    SavingBasis,
    Simulation,
    Tranche,
    Universe,
    WeightScheme,
    payment_years,
)

__all__ = [
    "MAX_SCENARIOS", "MAX_SEED", "MIN_SCENARIOS", "PACKAGE_DATA_PREFIX", "PERIODS_PER_YEAR",
    "SHARE_TOLERANCE", "Agency", "Baseline", "Basket", "BasketRule", "Bond", "CapGroup",
    "Config", "ControlGroup", "Coupon", "Department", "Guarantee", "InterventionType",
    "InvestorClass", "Measurement", "Mechanism", "Outcome", "OutcomeKind", "OutcomeProcess",
    "Payer", "Payment", "Period", "Provider", "Saving", "SavingBasis", "Simulation", "Tranche",
    "Universe", "WeightScheme", "load_config", "parse_config", "payment_years",
]

def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Load and validate a TOML configuration file.

    Parameters
    ----------
    path : str or Path
        The TOML file. Data files named inside it resolve relative to it.
    overrides : sequence of str
        ``PATH=VALUE`` changes applied to the document before it is validated
        (``--set`` on the command line; :mod:`lobsim.model.overrides`). The
        config records them, and its hash is that of the changed document.

    Returns
    -------
    Config
        The frozen, validated configuration.

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, or any field is missing, unknown,
        of the wrong type, out of range or inconsistent.

    Examples
    --------
    >>> from lobsim import load_config
    >>> cfg = load_config("configs/birmingham_jsa.toml")  # doctest: +SKIP
    >>> cfg.bonds[0].price_per_unit  # doctest: +SKIP
    2340.0
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text; save it as UTF-8", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"is not valid TOML: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError("is not valid TOML: nested too deeply", source=source) from None
    if not overrides:
        return parse_config(data, source=source, base_dir=path.parent)
    changes = []
    for text in overrides:
        try:
            changes.append(parse_override(text))
        except ValueError as exc:
            raise ConfigError(str(exc), source=source, path=f"--set {text}") from None
    data, paths = apply_overrides(data, changes, source=source)
    try:
        cfg = parse_config(data, source=source, base_dir=path.parent)
    except ConfigError as exc:
        raise annotate(exc, changes, paths) from None
    return dataclasses.replace(cfg, overrides=tuple(overrides))


def parse_config(
    data: dict[str, Any], *, source: str = "<config>", base_dir: str | Path = "."
) -> Config:
    """Validate an already parsed TOML document (a dict) into a :class:`Config`.

    Parameters
    ----------
    data : dict
        The document, as :func:`tomllib.loads` returns it.
    source : str
        Name used for the file in error messages.
    base_dir : str or Path
        Folder that relative data paths resolve against.

    Returns
    -------
    Config
    """
    if not isinstance(data, dict):
        raise ConfigError("the document must be a TOML table", source=source)
    top = Table(data, "", source)
    base = Path(base_dir)
    name = top.string("name", "unnamed")
    description = top.string("description", "")
    simulation = _read_simulation(top.table("simulation"), top)
    departments = top.read_all("departments", _read_department, required=True)
    agencies = top.read_all("agencies", _read_agency, required=True)
    interventions = top.read_all("interventions", _read_intervention, required=True)
    providers = top.read_all("providers", _read_provider, required=True)
    outcomes = top.read_all("outcomes", lambda t: _read_outcome(t, base), required=True)
    universe_table = top.table("universe")
    universe = None
    if universe_table is not None:
        universe = _read_universe(universe_table, base)
        universe_table.finish()
    bonds = top.read_all("bonds", read_bond, required=True)
    baskets = top.read_all("baskets", _read_basket)
    cap_groups = top.read_all("cap_groups", _read_cap_group)
    investor_classes = top.read_all("investor_classes", _read_investor_class)
    top.finish()

    config = Config(
        source=source,
        name=name,
        description=description,
        simulation=simulation,
        departments=departments,
        agencies=agencies,
        interventions=interventions,
        providers=providers,
        outcomes=outcomes,
        universe=universe,
        bonds=bonds,
        baskets=baskets,
        cap_groups=cap_groups,
        hash=_config_hash(data, outcomes, universe),
        investor_classes=investor_classes,
    )
    check_references(config)
    return config


# --------------------------------------------------------------------------
# Readers, one per table
# --------------------------------------------------------------------------
def _read_simulation(t: Table | None, top: Table) -> Simulation:
    if t is None:
        return Simulation(scenarios=10_000, seed=0, block_size=4096)
    sim = Simulation(
        scenarios=t.integer("scenarios", 10_000, low=MIN_SCENARIOS, high=MAX_SCENARIOS),
        seed=t.integer("seed", 0, low=0, high=MAX_SEED),
        block_size=t.integer("block_size", 4096, low=1, high=10**7),
    )
    t.finish()
    return sim


def _read_department(t: Table) -> Department:
    id_ = t.identifier()
    return Department(id=id_, name=t.string("name", id_))


def _read_agency(t: Table) -> Agency:
    id_ = t.identifier()
    return Agency(id=id_, name=t.string("name", id_), department=t.string("department"))


def _read_intervention(t: Table) -> InterventionType:
    id_ = t.identifier()
    # a Beta quantile table needs sd = 0 (fixed theta) or sd >= 1e-6
    # (docs/model.md section 10.3)
    sd = t.number("success_sd", low=0.0, floor=POSITIVE_MIN)
    mean = t.number("success_mean", low=0.0, high=1.0)
    # A Beta with mean m and sd s exists only when s^2 < m (1 - m) (docs/model.md section 5.1).
    if sd > 0.0 and not sd * sd < mean * (1.0 - mean):
        limit = math.sqrt(mean * (1.0 - mean))
        raise t.error(
            "success_sd",
            f"{sd:g} is too large for success_mean {mean:g}: a Beta prior needs "
            f"success_sd < sqrt(m (1 - m)) = {limit:.6g}; lower it (or set 0 for a fixed theta)",
        )
    rho_type = t.number("rho_type", 0.0, low=0.0, high=1.0)
    rho_global = t.number("rho_global", 0.0, low=0.0, high=1.0)
    if rho_type + rho_global > 1.0:
        raise t.error(
            "rho_global",
            f"rho_type + rho_global = {rho_type + rho_global:g} exceeds 1; the copula "
            "loadings must leave a non-negative idiosyncratic part",
        )
    if t.has("ramp_years") and t.has("ramp_profile"):
        raise t.error("ramp_profile", "give either ramp_years or ramp_profile, not both")
    ramp_years = t.number("ramp_years", 0.0, low=0.0, high=50.0, floor=DAY)
    profile = t.numbers("ramp_profile", None, low=0.0, high=1.0)
    if profile is not None:
        if any(b < a for a, b in itertools.pairwise(profile)):
            raise t.error("ramp_profile", f"must be non-decreasing, got {list(profile)}")
        if profile[-1] != 1.0:
            raise t.error(
                "ramp_profile",
                f"is the cumulative share delivered by the end of each year and must end at 1, "
                f"got {profile[-1]:g}",
            )
    return InterventionType(
        id=id_,
        name=t.string("name", id_),
        success_mean=mean,
        success_sd=sd,
        rho_type=rho_type,
        rho_global=rho_global,
        ramp_years=ramp_years,
        ramp_profile=profile,
        relapse_rate=t.number("relapse_rate", 0.0, low=0.0, high=1.0, high_open=True),
    )


def _read_provider(t: Table) -> Provider:
    id_ = t.identifier()
    return Provider(
        id=id_,
        name=t.string("name", id_),
        failure_hazard=t.number("failure_hazard", 0.0, low=0.0, high=100.0),
    )


def _read_saving(t: Table) -> Saving:
    return Saving(
        department=t.string("department"),
        amount=t.number("amount", low=0.0, high=AMOUNT_MAX),
        basis=t.string("basis", "per_unit_year", choices=("per_unit_year", "per_unit")),
    )


def _read_process(t: Table) -> OutcomeProcess:
    # Per-year parameters (docs/model.md section 3.2). phi = 1 is a random walk; phi < 0 has no
    # k-year transition for fractional k, so persistence is in [0, 1].
    def phi(key: str) -> float:
        value: float = t.number(key, low=0.0, high=1.0)
        return value

    def sigma(key: str) -> float:
        value: float = t.number(key, low=0.0, high=SIGMA_MAX)
        return value

    def loading(key: str) -> float:
        value: float = t.number(key, 1.0, low=-LOADING_MAX, high=LOADING_MAX)
        return value

    return OutcomeProcess(
        national_phi=phi("national_phi"),
        national_sigma=sigma("national_sigma"),
        regional_phi=phi("regional_phi"),
        regional_sigma=sigma("regional_sigma"),
        area_phi=phi("area_phi"),
        area_sigma=sigma("area_sigma"),
        measurement_sigma=t.number("measurement_sigma", 0.0, low=0.0, high=SIGMA_MAX),
        national_loading=loading("national_loading"),
        regional_loading=loading("regional_loading"),
    )


def _read_outcome(t: Table, base: Path) -> Outcome:
    id_ = t.identifier()
    history = _resolve_data_path(t, "history", base) if t.has("history") else None
    state = _resolve_data_path(t, "state", base) if t.has("state") else None
    volatility = _resolve_data_path(t, "volatility", base) if t.has("volatility") else None
    process_table = t.table("process")
    process = None
    if process_table is not None:
        process = _read_process(process_table)
        process_table.finish()
    savings = t.read_all("savings", _read_saving)
    departments = [s.department for s in savings]
    if len(set(departments)) != len(departments):
        dup = next(d for d in departments if departments.count(d) > 1)
        raise t.error("savings", f"names department {dup!r} twice; give one saving per department")
    return Outcome(
        id=id_,
        name=t.string("name", id_),
        kind=t.string("kind", choices=("count", "percent")),
        unit=t.string("unit", "unit"),
        history=history,
        state=state,
        volatility=volatility,
        process=process,
        savings=savings,
    )


def _read_universe(t: Table, base: Path) -> Universe:
    return Universe(
        areas=_resolve_data_path(t, "areas", base),
        period=t.string("period", "year", choices=tuple(PERIODS_PER_YEAR)),
    )


def _resolve_data_path(t: Table, key: str, base: Path) -> Path:
    """Resolve a data file relative to the config, or inside the package."""
    value: str = t.string(key)
    if value.startswith(PACKAGE_DATA_PREFIX):
        path = Path(str(resources.files("lobsim") / "data" / value[len(PACKAGE_DATA_PREFIX):]))
    else:
        path = Path(value)
        if not path.is_absolute():
            path = base / path
    try:
        found = path.is_file()
    except OSError:  # e.g. a name too long for the file system
        found = False
    if not found:
        raise t.error(key, f"data file {value!r} not found (looked for {str(path)!r})")
    return path


def _read_cap_group(t: Table) -> CapGroup:
    return CapGroup(id=t.identifier(), bonds=t.strings("bonds"),
                    cap=t.number("cap", low=POSITIVE_MIN, high=AMOUNT_MAX))


def _read_tranche(t: Table) -> Tranche:
    return Tranche(
        id=t.identifier(),
        # a tranche's principal is share x the basket's (>= 1e-12): never 0
        share=t.number("share", low=POSITIVE_MIN, high=1.0),
        seniority=t.integer("seniority", low=1, high=1000),
        premium=t.number("premium", 0.0, low=0.0, high=10.0),
        early_coupon=t.number("early_coupon", 0.0, low=0.0, high=10.0),
        protected=t.boolean("protected", False),
    )


def _read_tranches(t: Table) -> tuple[Tranche, ...]:
    tranches = t.read_all("tranches", _read_tranche)
    if not tranches:
        return tranches
    total = math.fsum(tr.share for tr in tranches)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise t.error("tranches", f"shares sum to {total:.12g}, not 1; the tranches must "
                                  "split the whole principal")
    levels = [tr.seniority for tr in tranches]
    if len(set(levels)) != len(levels):
        dup = next(v for v in levels if levels.count(v) > 1)
        raise t.error("tranches", f"two tranches have seniority {dup}; give each its own rank")
    ids = [tr.id for tr in tranches]
    if len(set(ids)) != len(ids):
        raise t.error("tranches", "tranche ids must be unique within a basket")
    return tranches


def _read_basket(t: Table) -> Basket:
    id_ = t.identifier()
    tranches = _read_tranches(t)
    guarantee_table = t.table("guarantee")
    guarantee = None
    if guarantee_table is not None:
        guarantee = Guarantee(cap=guarantee_table.number("cap", low=0.0, low_open=True,
                                                          high=AMOUNT_MAX))
        guarantee_table.finish()
    where_table = t.table("where")
    where = None
    if where_table is not None:
        w = where_table
        where = BasketRule(
            regions=w.strings("regions", None),
            interventions=w.strings("interventions", None),
            providers=w.strings("providers", None),
            outcomes=w.strings("outcomes", None),
            maturity_min=w.number("maturity_min", None, low=0.0, high=YEARS_MAX),
            maturity_max=w.number("maturity_max", None, low=0.0, high=YEARS_MAX),
        )
        w.finish()
    bonds = t.strings("bonds", None)
    band = t.numbers("risk_band", None, low=0.0, high=1.0)
    if band is not None and (len(band) != 2 or band[0] > band[1]):
        raise t.error("risk_band", f"must be [low, high] with low <= high, got {list(band)}")
    if bonds is None and where is None and band is None:
        raise t.error(None, "a basket needs a 'bonds' list, a [where] table of rules, a "
                            "risk_band, or a combination")
    return Basket(id=id_, name=t.string("name", id_), bonds=bonds, where=where,
                  risk_band=None if band is None else (band[0], band[1]), tranches=tranches,
                  guarantee=guarantee,
                  measurement=t.string("measurement", "separate", choices=MEASUREMENTS))


def _read_investor_class(t: Table) -> InvestorClass:
    id_ = t.identifier()
    holdings = {key: t.strings(key, ()) for key in ("bonds", "tranches", "baskets")}
    if not any(holdings.values()):
        raise t.error(None, "an investor class must hold something: give 'bonds', 'tranches' "
                            "(as \"basket/tranche\") or 'baskets'")
    for i, label in enumerate(holdings["tranches"]):
        if label.count("/") != 1 or not all(label.split("/")):
            raise t.error(f"tranches[{i}]", f"must name a tranche as \"basket/tranche\", "
                                            f"got {label!r}")
    return InvestorClass(
        id=id_,
        name=t.string("name", id_),
        # relief of 1 would make the investment free and its return infinite
        relief=t.number("relief", 0.0, low=0.0, high=1.0, high_open=True),
        tax_rate=t.number("tax_rate", 0.0, low=0.0, high=1.0),
        **holdings,
    )


def _config_hash(data: dict[str, Any], outcomes: tuple[Outcome, ...],
                 universe: Universe | None) -> str:
    """SHA-256 of the document's content and of every data file it reads."""
    digest = hashlib.sha256()
    digest.update(json.dumps(data, sort_keys=True, default=str).encode())
    files = [p for o in outcomes for p in (o.history, o.state, o.volatility) if p is not None]
    if universe is not None:
        files.append(universe.areas)
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()
