"""The configuration: frozen, typed dataclasses loaded and validated from TOML.

A config describes the world of one run: departments and their agencies, the
evidence priors of intervention types, providers (one per LIOA), outcomes and
the area universe they are observed in, the bonds, the baskets and the
simulation settings. :func:`load_config` either returns a :class:`Config` or
raises :class:`~lobsim.errors.ConfigError` naming the file, the TOML path of
the field, the bad value and the fix. The schema is documented field by field
in ``docs/config.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from lobsim.errors import ConfigError, LobsimWarning
from lobsim.model._datacheck import check_outcome_data
from lobsim.model._fields import Table, quote_key
from lobsim.model._limits import (
    AMOUNT_MAX,
    COVARIATE_WEIGHT_MAX,
    DAY,
    LOADING_MAX,
    POSITIVE_MIN,
    RETURN_LOG_MAX,
    SIGMA_MAX,
    UNITS_MAX,
    YEARS_MAX,
    annual_log_return,
)
from lobsim.model.areas import read_areas

OutcomeKind = Literal["count", "percent"]
Mechanism = Literal["per_unit", "threshold", "binary", "schedule"]
WeightScheme = Literal["equal", "synthetic", "verified"]
SavingBasis = Literal["per_unit_year", "per_unit"]
Period = Literal["month", "quarter", "year"]

PERIODS_PER_YEAR: dict[str, int] = {"month": 12, "quarter": 4, "year": 1}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
# Shares of a bond's price paid by its agencies must add up to one.
SHARE_TOLERANCE = 1e-9
# A path starting with this prefix names a data file shipped inside the package.
PACKAGE_DATA_PREFIX = "lobsim:"
# Bounds of [simulation] (the command line's --scenarios and --seed share them): a seed
# fits the int64 of the results' attrs; 2 scenarios at least give an error bar.
MIN_SCENARIOS, MAX_SCENARIOS = 2, 10**11
MAX_SEED = 2**63 - 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Department:
    """A central government department that funds agencies (e.g. DWP)."""

    id: str
    name: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Agency:
    """A local agency that pays LOBs and is paid by its parent department."""

    id: str
    name: str
    department: str


@dataclass(frozen=True, kw_only=True, slots=True)
class InterventionType:
    """An intervention type and its evidence prior on the success fraction theta.

    theta ~ Beta with mean ``success_mean`` and sd ``success_sd``; bonds of the
    type are correlated through a Gaussian copula with loadings ``rho_type``
    (evidence-base risk) and ``rho_global``. Delivery ramps up linearly over
    ``ramp_years`` or follows ``ramp_profile`` (cumulative fraction delivered by
    the end of each year); delivered units relapse at ``relapse_rate`` a year.
    """

    id: str
    name: str
    success_mean: float
    success_sd: float
    rho_type: float
    rho_global: float
    ramp_years: float
    ramp_profile: tuple[float, ...] | None
    relapse_rate: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Provider:
    """A civil society organisation; its bonds form one LIOA and fail together."""

    id: str
    name: str
    failure_hazard: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Saving:
    """What a department saves per unit of an outcome truly achieved."""

    department: str
    amount: float
    basis: SavingBasis


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeProcess:
    """Per-year parameters of the log-outcome process (docs/model.md section 3.2)."""

    national_phi: float
    national_sigma: float
    regional_phi: float
    regional_sigma: float
    area_phi: float
    area_sigma: float
    measurement_sigma: float
    national_loading: float
    regional_loading: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """A measurable outcome, counted in units or measured as a percentage."""

    id: str
    name: str
    kind: OutcomeKind
    unit: str
    history: Path | None
    state: Path | None
    volatility: Path | None
    process: OutcomeProcess | None
    savings: tuple[Saving, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Universe:
    """The areas bonds live in: a covariates table and the period of the data."""

    areas: Path
    period: Period


@dataclass(frozen=True, kw_only=True, slots=True)
class Payer:
    """An agency paying ``share`` of a bond's price, plus its agency premium."""

    agency: str
    share: float
    agency_premium: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """One measurement date of a bond, in years after the base year.

    At each date the bond pays for the measured units above what it has already
    paid, up to ``cap`` cumulative units, if the measured improvement reaches
    ``threshold`` (a fraction of the counterfactual).
    """

    at: float
    threshold: float
    cap: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Coupon:
    """A fixed payment of ``rate x principal`` at year ``at``, whatever the outcome."""

    at: float
    rate: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Payment:
    """How a bond pays (docs/model.md section 6).

    ``per_unit`` (the LOB) and ``threshold`` pay per measured unit; ``binary``
    a fixed sum on a trigger; ``schedule`` a return grid: measured performance
    (measured units / target) at maturity picks the annual return of the
    highest step it reaches, ``grid`` holding ``(performance, annual return)``
    pairs (Newpin's grid). ``max_return`` caps cumulative payments at
    ``principal x (1 + max_return)^(t - start)`` (Peterborough's 13% a year);
    ``coupons`` are fixed payments whatever the outcome.
    """

    mechanism: Mechanism
    cap: float
    threshold: float
    trigger: float
    amount: float
    measurements: tuple[Measurement, ...]
    grid: tuple[tuple[float, float], ...]
    max_return: float | None
    coupons: tuple[Coupon, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ControlGroup:
    """How the comparison areas of a bond are chosen and weighted."""

    donors: int
    donor_areas: tuple[str, ...] | None
    weights: WeightScheme
    match_on: tuple[str, ...] | None
    pre_periods: int | None
    covariate_weights: tuple[tuple[str, float], ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Baseline:
    """A department's baseline spend in the bond's area (Appendix: JSA funding)."""

    department: str
    agency: str
    units: float
    cost_per_unit_year: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Bond:
    """One Local Outcome Bond: one outcome in one area, with a target."""

    id: str
    provider: str
    area: str
    outcome: str
    intervention: str
    target_units: float
    cost_per_unit: float
    basket_risk: float
    return_premium: float
    start: float
    maturity: float
    payment: Payment
    payers: tuple[Payer, ...]
    control: ControlGroup
    baseline: Baseline | None

    @property
    def price_per_unit(self) -> float:
        """``cost_per_unit x (1 + basket_risk + return_premium)``.

        Summed term by term so that round figures stay exact
        (2000 x (1 + 0.10 + 0.07) is 2340.0, not 2340.0000000000005).
        """
        c = self.cost_per_unit
        return math.fsum((c, c * self.basket_risk, c * self.return_premium))

    @property
    def principal(self) -> float:
        """What investors pay up front: ``target_units x cost_per_unit``."""
        return self.target_units * self.cost_per_unit

    @property
    def term(self) -> float:
        """Years from the investors' payment to maturity."""
        return self.maturity - self.start


@dataclass(frozen=True, kw_only=True, slots=True)
class BasketRule:
    """Static grouping rules; a bond joins when it matches every rule given."""

    regions: tuple[str, ...] | None
    interventions: tuple[str, ...] | None
    providers: tuple[str, ...] | None
    outcomes: tuple[str, ...] | None
    maturity_min: float | None
    maturity_max: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Tranche:
    """A class of a basket's investors in its payment waterfall.

    ``share`` of the basket's principal; ``seniority`` 1 is paid first;
    ``premium`` is the target annual return (its coupon); ``early_coupon`` an
    optional fixed annual coupon paid from the start (as Newpin's 5% minimum);
    a ``protected`` class has its principal guaranteed (as Benevolent
    Society's P class), the others are at risk.
    """

    id: str
    share: float
    seniority: int
    premium: float
    early_coupon: float
    protected: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Guarantee:
    """A first-loss guarantee: covers basket losses up to ``cap`` before any tranche."""

    cap: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Basket:
    """A named portfolio of bonds: an explicit list, grouping rules, or both."""

    id: str
    name: str
    bonds: tuple[str, ...] | None
    where: BasketRule | None
    risk_band: tuple[float, float] | None
    tranches: tuple[Tranche, ...]
    guarantee: Guarantee | None


@dataclass(frozen=True, kw_only=True, slots=True)
class CapGroup:
    """Bonds whose combined payments are capped (a rate card's per-person cap
    times the participants: several outcomes of the same people)."""

    id: str
    bonds: tuple[str, ...]
    cap: float


@dataclass(frozen=True, kw_only=True, slots=True)
class InvestorClass:
    """A class of investors with its own tax treatment, and what it holds.

    ``relief`` is the share of the amount invested returned as tax relief
    when it is invested (the UK's Social Investment Tax Relief: 30% of the
    amount, as income tax relief); ``tax_rate`` is the tax on the return,
    what is received beyond the capital paid in, when it is received.
    Holdings are bonds held directly, tranches (``"basket/tranche"``) and
    whole baskets (docs/decisions.md, section After-tax returns).
    """

    id: str
    name: str
    relief: float
    tax_rate: float
    bonds: tuple[str, ...]
    tranches: tuple[str, ...]
    baskets: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Simulation:
    """Monte Carlo settings."""

    scenarios: int
    seed: int
    block_size: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """A validated lobsim configuration (see ``docs/config.md``)."""

    source: str
    name: str
    description: str
    simulation: Simulation
    departments: tuple[Department, ...]
    agencies: tuple[Agency, ...]
    interventions: tuple[InterventionType, ...]
    providers: tuple[Provider, ...]
    outcomes: tuple[Outcome, ...]
    universe: Universe | None
    bonds: tuple[Bond, ...]
    baskets: tuple[Basket, ...]
    cap_groups: tuple[CapGroup, ...]
    hash: str = field(repr=False)
    investor_classes: tuple[InvestorClass, ...] = ()

    def department(self, id: str) -> Department:
        return next(d for d in self.departments if d.id == id)

    def agency(self, id: str) -> Agency:
        return next(a for a in self.agencies if a.id == id)

    def intervention(self, id: str) -> InterventionType:
        return next(t for t in self.interventions if t.id == id)

    def provider(self, id: str) -> Provider:
        return next(p for p in self.providers if p.id == id)

    def outcome(self, id: str) -> Outcome:
        return next(o for o in self.outcomes if o.id == id)

    def bond(self, id: str) -> Bond:
        return next(b for b in self.bonds if b.id == id)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------
def load_config(path: str | Path) -> Config:
    """Load and validate a TOML configuration file.

    Parameters
    ----------
    path : str or Path
        The TOML file. Data files named inside it resolve relative to it.

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
    return parse_config(data, source=source, base_dir=path.parent)


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
    bonds = top.read_all("bonds", _read_bond, required=True)
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
    _check_references(config, top)
    return config


# --------------------------------------------------------------------------
# Readers, one per table
# --------------------------------------------------------------------------
def _read_id(t: Table) -> str:
    value: str = t.string("id")
    if not _ID.fullmatch(value):
        raise t.error(
            "id",
            f"{value!r} is not a valid id; use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
    return value


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
    id_ = _read_id(t)
    return Department(id=id_, name=t.string("name", id_))


def _read_agency(t: Table) -> Agency:
    id_ = _read_id(t)
    return Agency(id=id_, name=t.string("name", id_), department=t.string("department"))


def _read_intervention(t: Table) -> InterventionType:
    id_ = _read_id(t)
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
    id_ = _read_id(t)
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
    id_ = _read_id(t)
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


def _read_payer(t: Table) -> Payer:
    return Payer(
        agency=t.string("agency"),
        share=t.number("share", low=0.0, high=1.0, low_open=True),
        agency_premium=t.number("agency_premium", 0.0, low=0.0, high=AMOUNT_MAX),
    )


def _read_measurement(t: Table, threshold: float, cap: float) -> Measurement:
    return Measurement(
        at=t.number("at", low=0.0, high=YEARS_MAX),
        threshold=t.number("threshold", threshold, low=0.0, high=1.0, high_open=True),
        cap=t.number("cap", cap, low=POSITIVE_MIN, high=UNITS_MAX),
    )


def _read_payment(t: Table | None, bond: Table, target: float, price: float, start: float,
                  maturity: float) -> Payment:
    if t is None:
        t = Table({}, bond.key_path("payment"), bond.source)
    mechanism = t.string("mechanism", "per_unit",
                         choices=("per_unit", "threshold", "binary", "schedule"))
    cap = t.number("cap", target, low=POSITIVE_MIN, high=UNITS_MAX)
    if mechanism == "threshold":
        threshold = t.number("threshold", low=0.0, high=1.0, high_open=True)
    elif mechanism in ("binary", "schedule"):
        # their rules (a trigger, a return grid) have no threshold to apply
        for table in (t, *t.tables("measurements")):
            if table.has("threshold"):
                raise table.error("threshold", f"does not apply to mechanism {mechanism!r} "
                                               "(its payment rule has no threshold); remove it")
        threshold = 0.0
    else:
        threshold = t.number("threshold", 0.0, low=0.0, high=1.0, high_open=True)
    if mechanism == "binary":
        trigger = t.number("trigger", low=0.0, low_open=True, high=100.0)
        amount = t.number("amount", target * price, low=POSITIVE_MIN, high=AMOUNT_MAX)
    else:
        for key in ("trigger", "amount"):
            if t.has(key):
                raise t.error(key, f"applies only to mechanism 'binary', not {mechanism!r}")
        trigger, amount = 1.0, target * price
    grid: tuple[tuple[float, float], ...] = ()
    if mechanism == "schedule":
        grid = _read_grid(t)
    elif t.has("grid"):
        raise t.error("grid", f"applies only to mechanism 'schedule', not {mechanism!r}")
    max_return = t.number("max_return", None, low=0.0, high=10.0)
    coupons = tuple(
        _finish(c, Coupon(at=c.number("at", low=0.0, high=YEARS_MAX),
                          rate=c.number("rate", low=0.0, high=10.0, low_open=True)))
        for c in t.tables("coupons")
    )
    for i, c in enumerate(coupons):
        if not start < c.at <= maturity:
            raise t.error(f"coupons[{i}].at", f"{c.at:g} must lie after the start ({start:g}) "
                                              f"and no later than maturity ({maturity:g})")
    measurements = tuple(
        _finish(m, _read_measurement(m, threshold, cap)) for m in t.tables("measurements")
    )
    if not measurements:
        measurements = (Measurement(at=maturity, threshold=threshold, cap=cap),)
    if mechanism in ("binary", "schedule") and len(measurements) > 1:
        raise t.error("measurements", f"a {mechanism} bond has a single measurement, at maturity")
    dates = [m.at for m in measurements]
    for i, m in enumerate(measurements):
        if not start < m.at <= maturity:
            raise t.error(
                f"measurements[{i}].at",
                f"{m.at:g} must lie after the start ({start:g}) and no later than maturity "
                f"({maturity:g})",
            )
        if i and m.at <= dates[i - 1]:
            raise t.error(f"measurements[{i}].at", "measurement dates must strictly increase")
        if i and m.cap < measurements[i - 1].cap:
            raise t.error(f"measurements[{i}].cap", "cumulative caps must not decrease")
    if dates[-1] != maturity:
        raise t.error(
            "measurements",
            f"the last measurement ({dates[-1]:g}) must be at maturity ({maturity:g}): it is "
            "the final catch-up over all cohorts",
        )
    t.finish()
    return Payment(
        mechanism=mechanism,
        cap=cap,
        threshold=threshold,
        trigger=trigger,
        amount=amount,
        measurements=measurements,
        grid=grid,
        max_return=max_return,
        coupons=coupons,
    )


def _best_multiple(pay: Payment, principal: float, price: float, term: float) -> float:
    """The most a bond can pay over its principal: every cap reached, every coupon paid."""
    if pay.mechanism == "binary":
        best = pay.amount
    elif pay.mechanism == "schedule":
        best = principal * (1.0 + max(annual for _, annual in pay.grid)) ** term
    else:
        best = max(m.cap for m in pay.measurements) * price
    if pay.max_return is not None:
        best = min(best, principal * (1.0 + pay.max_return) ** term)
    return best / principal + math.fsum(c.rate for c in pay.coupons)


def _check_best_case(t: Table, pay: Payment, principal: float, price: float,
                     term: float) -> None:
    """The best case's IRR must be one the engine represents (lobsim.model._limits.RETURN_LOG_MAX)."""
    best = _best_multiple(pay, principal, price, term)
    rate = annual_log_return(best, term)
    if rate > RETURN_LOG_MAX:
        shortest = math.log(best) / RETURN_LOG_MAX
        raise t.error(
            "maturity",
            f"at best the bond pays {best:.6g} times its principal over a term of {term:g} "
            f"years, an annual return of e^{rate:.4g}; lobsim's IRRs stop at "
            f"e^{RETURN_LOG_MAX:g} a year: lengthen the term to at least {shortest:.4g} years "
            "or lower the caps, amounts or coupons")


def _read_grid(t: Table) -> tuple[tuple[float, float], ...]:
    """``grid = [[performance, annual_return], ...]`` with rising performance."""
    raw = t.value("grid")
    if not isinstance(raw, list) or not raw:
        raise t.error("grid", "must be a non-empty array of [performance, annual_return] pairs")
    pairs: list[tuple[float, float]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, list) or len(pair) != 2:
            raise t.error(f"grid[{i}]", "must be a pair [performance, annual_return]")
        perf = t.check_number(f"grid[{i}][0]", pair[0], low=0.0, high=10.0)
        ret = t.check_number(f"grid[{i}][1]", pair[1], low=-1.0, high=10.0)
        if pairs and perf <= pairs[-1][0]:
            raise t.error(f"grid[{i}][0]", "performance levels must strictly increase")
        pairs.append((perf, ret))
    return tuple(pairs)


def _read_cap_group(t: Table) -> CapGroup:
    return CapGroup(id=_read_id(t), bonds=t.strings("bonds"),
                    cap=t.number("cap", low=POSITIVE_MIN, high=AMOUNT_MAX))


def _read_control(t: Table | None, bond: Table) -> ControlGroup:
    if t is None:
        t = Table({}, bond.key_path("control"), bond.source)
    if t.has("donors") and t.has("donor_areas"):
        raise t.error("donor_areas", "give either donors (nearest neighbours) or donor_areas")
    donor_areas = t.strings("donor_areas", None)
    cov_table = t.table("covariate_weights")
    covariate_weights: tuple[tuple[str, float], ...] = ()
    if cov_table is not None:
        covariate_weights = tuple(
            (key, cov_table.check_number(key, value, low=0.0, high=COVARIATE_WEIGHT_MAX,
                                         literal=True))
            for key, value in cov_table.items()
        )
    control = ControlGroup(
        donors=t.integer("donors", 5, low=1, high=10_000)
        if donor_areas is None
        else len(donor_areas),
        donor_areas=donor_areas,
        weights=t.string("weights", "equal", choices=("equal", "synthetic", "verified")),
        match_on=t.strings("match_on", None),
        pre_periods=t.integer("pre_periods", None, low=2, high=100_000),
        covariate_weights=covariate_weights,
    )
    if covariate_weights and control.weights != "synthetic":
        raise t.error("covariate_weights", "apply only to weights = 'synthetic'")
    t.finish()
    return control


def _read_baseline(t: Table) -> Baseline:
    baseline = Baseline(
        department=t.string("department"),
        agency=t.string("agency"),
        units=t.number("units", low=0.0, high=UNITS_MAX),
        cost_per_unit_year=t.number("cost_per_unit_year", low=0.0, high=AMOUNT_MAX),
    )
    t.finish()
    return baseline


def _read_bond(t: Table) -> Bond:
    id_ = _read_id(t)
    target = t.number("target_units", low=POSITIVE_MIN, high=UNITS_MAX)
    cost = t.number("cost_per_unit", low=POSITIVE_MIN, high=AMOUNT_MAX)
    basket_risk = t.number("basket_risk", 0.0, low=0.0, high=100.0)
    premium = t.number("return_premium", 0.0, low=0.0, high=100.0)
    start = t.number("start", 0.0, low=0.0, high=YEARS_MAX)
    maturity = t.number("maturity", low=0.0, high=YEARS_MAX)
    if maturity - start < DAY:
        raise t.error("maturity", f"{maturity:g} must be at least a day ({DAY:.6g} years) after "
                                  f"the start ({start:g})")
    price = math.fsum((cost, cost * basket_risk, cost * premium))
    payers = t.read_all("payers", _read_payer, required=True)
    total = math.fsum(p.share for p in payers)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise t.error(
            "payers",
            f"shares sum to {total:.12g}, not 1 (within {SHARE_TOLERANCE:g}); adjust the "
            "share of each payer so they add up to 1",
        )
    agencies = [p.agency for p in payers]
    if len(set(agencies)) != len(agencies):
        dup = next(a for a in agencies if agencies.count(a) > 1)
        raise t.error("payers", f"names agency {dup!r} twice; merge its shares")
    baseline_table = t.table("baseline")
    payment = _read_payment(t.table("payment"), t, target, price, start, maturity)
    _check_best_case(t, payment, target * cost, price, maturity - start)
    return Bond(
        id=id_,
        provider=t.string("provider"),
        area=t.string("area"),
        outcome=t.string("outcome"),
        intervention=t.string("intervention"),
        target_units=target,
        cost_per_unit=cost,
        basket_risk=basket_risk,
        return_premium=premium,
        start=start,
        maturity=maturity,
        payment=payment,
        payers=payers,
        control=_read_control(t.table("control"), t),
        baseline=None if baseline_table is None else _read_baseline(baseline_table),
    )


def _read_tranche(t: Table) -> Tranche:
    return Tranche(
        id=_read_id(t),
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
    id_ = _read_id(t)
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
                  guarantee=guarantee)


def _read_investor_class(t: Table) -> InvestorClass:
    id_ = _read_id(t)
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


def _finish(t: Table, value: Any) -> Any:
    t.finish()
    return value


# --------------------------------------------------------------------------
# Cross-references and hashing
# --------------------------------------------------------------------------
def _unique(top: Table, key: str, items: tuple[Any, ...]) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise ConfigError(
                f"duplicate id {item.id!r}; every entry of [[{key}]] needs its own id",
                source=top.source,
                path=f"{key}[{i}].id",
            )
        seen.add(item.id)
    return seen


def _must_exist(source: str, path: str, value: str, known: set[str], what: str) -> None:
    if value not in known:
        listed = ", ".join(sorted(known)) or "none"
        raise ConfigError(
            f"refers to {what} {value!r}, which is not defined (defined: {listed})",
            source=source,
            path=path,
        )


def _check_references(cfg: Config, top: Table) -> None:
    src = cfg.source
    departments = _unique(top, "departments", cfg.departments)
    agencies = _unique(top, "agencies", cfg.agencies)
    interventions = _unique(top, "interventions", cfg.interventions)
    providers = _unique(top, "providers", cfg.providers)
    outcomes = _unique(top, "outcomes", cfg.outcomes)
    bonds = _unique(top, "bonds", cfg.bonds)
    _unique(top, "baskets", cfg.baskets)

    for i, a in enumerate(cfg.agencies):
        _must_exist(src, f"agencies[{i}].department", a.department, departments, "department")
    for i, o in enumerate(cfg.outcomes):
        for j, s in enumerate(o.savings):
            _must_exist(src, f"outcomes[{i}].savings[{j}].department", s.department,
                        departments, "department")
    seen_pairs: dict[tuple[str, str], str] = {}
    for i, b in enumerate(cfg.bonds):
        p = f"bonds[{i}]"
        _must_exist(src, f"{p}.provider", b.provider, providers, "provider")
        _must_exist(src, f"{p}.intervention", b.intervention, interventions, "intervention type")
        _must_exist(src, f"{p}.outcome", b.outcome, outcomes, "outcome")
        for j, payer in enumerate(b.payers):
            _must_exist(src, f"{p}.payers[{j}].agency", payer.agency, agencies, "agency")
        if b.baseline is not None:
            _must_exist(src, f"{p}.baseline.department", b.baseline.department, departments,
                        "department")
            _must_exist(src, f"{p}.baseline.agency", b.baseline.agency, agencies, "agency")
        if cfg.outcome(b.outcome).kind == "percent":
            if b.payment.cap > 100.0:
                raise ConfigError(
                    f"cap {b.payment.cap:g} exceeds 100 percentage points for a percent outcome",
                    source=src, path=f"{p}.payment.cap",
                )
            for j, m in enumerate(b.payment.measurements):
                if m.cap > 100.0:
                    raise ConfigError(
                        f"cap {m.cap:g} exceeds 100 percentage points for a percent outcome",
                        source=src, path=f"{p}.payment.measurements[{j}].cap",
                    )
        # docs/model.md section 4.6: the control-group measurement cannot tell such bonds apart.
        pair = (b.area, b.outcome)
        if pair in seen_pairs:
            raise ConfigError(
                f"bond {b.id!r} measures outcome {b.outcome!r} in area {b.area!r}, as bond "
                f"{seen_pairs[pair]!r} already does; their effects cannot be told apart by the "
                "control-group measurement: merge them into one bond",
                source=src, path=f"{p}.area",
            )
        seen_pairs[pair] = b.id
    _unique(top, "cap_groups", cfg.cap_groups)
    grouped: dict[str, str] = {}
    for i, g in enumerate(cfg.cap_groups):
        for j, bond_id in enumerate(g.bonds):
            _must_exist(src, f"cap_groups[{i}].bonds[{j}]", bond_id, bonds, "bond")
            if bond_id in grouped:
                raise ConfigError(f"bond {bond_id!r} is already in cap group {grouped[bond_id]!r}; "
                                  "a bond belongs to one cap group", source=src,
                                  path=f"cap_groups[{i}].bonds[{j}]")
            grouped[bond_id] = g.id
    if cfg.universe is not None:
        _check_areas(cfg)
    _check_investor_classes(cfg, top)
    _warn_idle_hazards(cfg)
    for i, basket in enumerate(cfg.baskets):
        for j, bond_id in enumerate(basket.bonds or ()):
            _must_exist(src, f"baskets[{i}].bonds[{j}]", bond_id, bonds, "bond")
        if basket.where is not None:
            w = basket.where
            for key, values, known, what in (
                ("interventions", w.interventions, interventions, "intervention type"),
                ("providers", w.providers, providers, "provider"),
                ("outcomes", w.outcomes, outcomes, "outcome"),
            ):
                for j, v in enumerate(values or ()):
                    _must_exist(src, f"baskets[{i}].where.{key}[{j}]", v, known, what)


def _warn_idle_hazards(cfg: Config) -> None:
    """docs/model.md section 5.5: with instantaneous delivery a provider failure after the start changes
    nothing. Failures are drawn from the provider's first start, so the hazard still
    bites a bond that starts later (the provider may fail before it)."""
    first = {p: min(b.start for b in cfg.bonds if b.provider == p)
             for p in {b.provider for b in cfg.bonds}}
    for i, b in enumerate(cfg.bonds):
        hazard = cfg.provider(b.provider).failure_hazard
        itype = cfg.intervention(b.intervention)
        instant = itype.ramp_profile is None and itype.ramp_years == 0.0
        if hazard > 0.0 and instant and b.start == first[b.provider]:
            warnings.warn(LobsimWarning(
                f"{cfg.source}: bonds[{i}] ({b.id!r}): provider {b.provider!r} has "
                f"failure_hazard {hazard:g} a year, but intervention {itype.id!r} delivers "
                "everything at once (ramp_years = 0), so a failure after the start cannot cut "
                "delivery: the hazard has no effect on this bond (docs/model.md section 5.5); "
                "give the intervention a ramp, or set failure_hazard = 0"), stacklevel=2)


def payment_years(bond: Bond) -> tuple[int, ...]:
    """Years (year k covers (k-1, k]) in which ``bond`` can pay: measurements and coupons."""
    dates = [m.at for m in bond.payment.measurements] + [c.at for c in bond.payment.coupons]
    return tuple(sorted({math.ceil(t) for t in dates}))


def _check_investor_classes(cfg: Config, top: Table) -> None:
    src = cfg.source
    _unique(top, "investor_classes", cfg.investor_classes)
    bonds = {b.id for b in cfg.bonds}
    baskets = {k.id: k for k in cfg.baskets}
    for i, ic in enumerate(cfg.investor_classes):
        p = f"investor_classes[{i}]"
        for j, bond_id in enumerate(ic.bonds):
            _must_exist(src, f"{p}.bonds[{j}]", bond_id, bonds, "bond")
        for j, label in enumerate(ic.tranches):
            basket_id, tranche_id = label.split("/")
            _must_exist(src, f"{p}.tranches[{j}]", basket_id, set(baskets), "basket")
            known = {t.id for t in baskets[basket_id].tranches}
            if tranche_id not in known:
                listed = ", ".join(sorted(known)) or "none: the basket has no tranches"
                raise ConfigError(f"refers to tranche {tranche_id!r} of basket {basket_id!r}, "
                                  f"which is not defined (defined: {listed})", source=src,
                                  path=f"{p}.tranches[{j}]")
        for j, basket_id in enumerate(ic.baskets):
            _must_exist(src, f"{p}.baskets[{j}]", basket_id, set(baskets), "basket")
            if basket_id in ic.bonds:
                # both holdings would be labelled "class:id" (lobsim.model.tax.Holding.label)
                raise ConfigError(f"holds bond {basket_id!r} and basket {basket_id!r}, which "
                                  "share an id: rename the basket", source=src,
                                  path=f"{p}.baskets[{j}]")


def _check_areas(cfg: Config) -> None:
    """Bonds, donors, covariates and basket regions must exist in the universe."""
    assert cfg.universe is not None
    table = read_areas(cfg.universe.areas)
    areas, covariates = set(table.ids), set(table.covariate_names)
    src = cfg.source
    for i, b in enumerate(cfg.bonds):
        p = f"bonds[{i}]"
        _must_exist(src, f"{p}.area", b.area, areas, "area")
        for j, donor in enumerate(b.control.donor_areas or ()):
            _must_exist(src, f"{p}.control.donor_areas[{j}]", donor, areas, "area")
        for j, name in enumerate(b.control.match_on or ()):
            _must_exist(src, f"{p}.control.match_on[{j}]", name, covariates, "covariate")
        for name, _ in b.control.covariate_weights:
            _must_exist(src, f"{p}.control.covariate_weights.{quote_key(name)}", name, covariates,
                        "covariate")
    for i, basket in enumerate(cfg.baskets):
        for j, region in enumerate(basket.where.regions or () if basket.where else ()):
            _must_exist(src, f"baskets[{i}].where.regions[{j}]", region, set(table.regions),
                        "region")
    check_outcome_data(cfg, table, PERIODS_PER_YEAR[cfg.universe.period])


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
