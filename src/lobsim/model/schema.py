"""The configuration's schema: frozen, typed dataclasses, one per TOML table.

A :class:`Config` is the world of one run: departments and their agencies,
the evidence priors of intervention types, providers (one per LIOA),
outcomes and the area universe they are observed in, the bonds, the baskets
and the simulation settings. Configs are made by :func:`lobsim.load_config`
(reading, :mod:`lobsim.model.config`; cross-checks, :mod:`lobsim.model.checks`)
and changed only through :mod:`lobsim.model.derive`, which runs the same
checks again. The schema is documented field by field in ``docs/config.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from lobsim.errors import UnknownIdError

OutcomeKind = Literal["count", "percent"]
Mechanism = Literal["per_unit", "threshold", "binary", "schedule"]
PaymentBasis = Literal["point", "shrunk"]
WeightScheme = Literal["equal", "synthetic", "verified"]
SavingBasis = Literal["per_unit_year", "per_unit"]
Period = Literal["month", "quarter", "year"]

PERIODS_PER_YEAR: dict[str, int] = {"month": 12, "quarter": 4, "year": 1}
# Shares of a bond's price paid by its agencies must add up to one.
SHARE_TOLERANCE = 1e-9
#: how a basket's bonds are measured: each on its own, or pooled (section 6.13)
MEASUREMENTS = ("separate", "pooled")
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

    ``basis`` is what the rule pays on (docs/model.md section 6.12):
    ``"point"`` the measured units, ``"shrunk"`` ``k x measured + (1 - k) x
    prior``, with the prior and ``k`` fixed at signing (computed by
    :mod:`lobsim.model.shrinkage` unless ``prior_units`` or ``shrinkage``
    fix them by hand; ``None``: computed).
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
    basis: PaymentBasis = "point"
    prior_units: float | None = None
    shrinkage: float | None = None


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
        return self.price_with_loading(self.basket_risk)

    def price_with_loading(self, basket_risk: float) -> float:
        """The price per unit were the bond's ``basket_risk`` loading ``basket_risk``."""
        c = self.cost_per_unit
        return math.fsum((c, c * basket_risk, c * self.return_premium))

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
    #: "separate": each bond paid on its own measurement; "pooled": on the
    #: basket's summed measurement (docs/model.md section 6.13)
    measurement: str = "separate"


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
    #: ``--set PATH=VALUE`` applied to the file's document (lobsim.model.overrides)
    overrides: tuple[str, ...] = ()

    def department(self, id: str) -> Department:
        """The department ``id``; an unknown id is an :class:`~lobsim.errors.UnknownIdError`."""
        return _find(self, self.departments, id, "department")

    def agency(self, id: str) -> Agency:
        """The agency ``id``."""
        return _find(self, self.agencies, id, "agency")

    def intervention(self, id: str) -> InterventionType:
        """The intervention type ``id``."""
        return _find(self, self.interventions, id, "intervention type")

    def provider(self, id: str) -> Provider:
        """The provider ``id``."""
        return _find(self, self.providers, id, "provider")

    def outcome(self, id: str) -> Outcome:
        """The outcome ``id``."""
        return _find(self, self.outcomes, id, "outcome")

    def bond(self, id: str) -> Bond:
        """The bond ``id``."""
        return _find(self, self.bonds, id, "bond")

    def basket(self, id: str) -> Basket:
        """The basket ``id`` (as configured: risk bands unresolved)."""
        return _find(self, self.baskets, id, "basket")

    def tranche(self, basket: str, id: str) -> Tranche:
        """The tranche ``id`` of basket ``basket``."""
        return _find(self, self.basket(basket).tranches, id, f"tranche of basket {basket!r}")

    def cap_group(self, id: str) -> CapGroup:
        """The cap group ``id``."""
        return _find(self, self.cap_groups, id, "cap group")

    def investor_class(self, id: str) -> InvestorClass:
        """The investor class ``id``."""
        return _find(self, self.investor_classes, id, "investor class")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_Item = TypeVar("_Item", bound=_HasId)


def _find(cfg: Config, items: Iterable[_Item], id: str, what: str) -> _Item:
    items = tuple(items)
    for item in items:
        if item.id == id:
            return item
    raise UnknownIdError(what, id, [item.id for item in items], source=cfg.source)


def check_ids(cfg: Config, given: Iterable[str], known: Iterable[str], what: str,
              path: str | None = None) -> None:
    """Raise :class:`~lobsim.errors.UnknownIdError` for the first of ``given`` not in ``known``.

    For ids that arrive from outside the config (``simulate``'s ``tilt_types``,
    the command line's ``--bond``): the error names the config's file,
    ``path`` (the argument), a few of the known ids and the closest.
    """
    ids = list(known)
    for value in given:
        if value not in ids:
            raise UnknownIdError(what, value, ids, source=cfg.source, path=path)


def payment_years(bond: Bond) -> tuple[int, ...]:
    """Years (year k covers (k-1, k]) in which ``bond`` can pay: measurements and coupons."""
    dates = [m.at for m in bond.payment.measurements] + [c.at for c in bond.payment.coupons]
    return tuple(sorted({math.ceil(t) for t in dates}))
