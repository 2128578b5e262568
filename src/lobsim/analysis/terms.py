"""The term-sheet calculator: what every party pays and gets at full target.

This is the deterministic arithmetic of the report's Appendix (docs/model.md
section 2): price per unit, investor principal and payoff, break-even success, what
each agency pays, what each parent department pays its agencies (share plus
agency premium), the agencies' discretionary money and, where the config gives
a department's baseline spend in the area, its base-year and maturity-year
funding and its saving. The simulator reproduces these figures exactly in a
world with no noise (tested). A bond on the shrunk payment basis also shows
the prior, tau, sigma and k fixed at signing (:mod:`lobsim.model.shrinkage`,
derived from the config's world, which is built only then).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lobsim.model.config import Bond, Config

if TYPE_CHECKING:  # the shrinkage module imports the kernels (numba): not for the CLI parser
    from lobsim.model.shrinkage import ShrinkTerms

#: Version of the ``--json`` layout; bump it when a field changes meaning.
TERMS_SCHEMA = "lobsim.terms/1"


@dataclass(frozen=True, kw_only=True)
class PayerTerms:
    """One paying agency of a bond, at full target.

    Attributes
    ----------
    agency, department : str
        The agency and its parent department.
    share : float
        Share of the price the agency pays.
    pays_per_unit : float
        ``share x price_per_unit``: the agency's payment to investors per unit.
    pays_at_target : float
        ``pays_per_unit x paid units at target``.
    agency_premium_per_unit : float
        Discretionary premium the department adds per unit.
    department_pays_per_unit : float
        ``pays_per_unit + agency_premium_per_unit``: department to agency.
    department_pays_at_target : float
        ``department_pays_per_unit x paid units at target``.
    discretionary_at_target : float
        ``agency_premium_per_unit x paid units at target``.
    """

    agency: str
    department: str
    share: float
    pays_per_unit: float
    pays_at_target: float
    agency_premium_per_unit: float
    department_pays_per_unit: float
    department_pays_at_target: float
    discretionary_at_target: float


@dataclass(frozen=True, kw_only=True)
class BaselineTerms:
    """A department's funding of an agency in the bond's area (Appendix).

    The maturity-year funding assumes the target is met: it funds
    ``units - target`` units (Appendix: 45,000 = 50,000 - 5,000 claimants).
    """

    department: str
    agency: str
    base_year_units: float
    cost_per_unit_year: float
    base_year_funding: float
    maturity_year_units: float
    maturity_year_funding: float
    outcome_payment: float
    total_at_maturity: float
    saving: float


@dataclass(frozen=True, kw_only=True)
class SavingTerms:
    """What a department saves per unit of the outcome, and at full target."""

    department: str
    basis: str
    per_unit: float
    at_target: float


@dataclass(frozen=True, kw_only=True)
class ShrinkageTerms:
    """What a bond on the shrunk basis pays on, fixed at signing (docs/model.md 6.12).

    It pays on ``k x measured + (1 - k) x prior`` (:mod:`lobsim.model.shrinkage`):
    ``prior_units`` (at maturity) is ``target x success_mean x E[delivered share]``,
    ``tau`` the prior sd of the units, ``sigma`` the sd of the control group's
    prediction error, ``k = tau^2 / (tau^2 + sigma^2)``; ``*_fixed`` when the
    config fixes them by hand. ``paid_on_at_target``: the basis when the
    measurement shows the target exactly.
    """

    prior_units: float
    prior_fixed: bool
    tau: float
    sigma: float
    k: float
    k_fixed: bool
    paid_on_at_target: float


@dataclass(frozen=True, kw_only=True)
class BondTerms:
    """The term sheet of one bond at full target; see :func:`term_sheet`."""

    bond: str
    provider: str
    area: str
    outcome: str
    outcome_kind: str
    intervention: str
    mechanism: str
    start: float
    maturity: float
    target_units: float
    paid_units_at_target: float
    cost_per_unit: float
    basket_risk: float
    return_premium: float
    price_per_unit: float
    investor_principal: float
    investor_payoff_at_target: float
    multiple_at_target: float
    irr_at_target: float
    break_even_fraction: float | None
    payers: tuple[PayerTerms, ...]
    department_pays_at_target: dict[str, float]
    savings: tuple[SavingTerms, ...]
    baseline: BaselineTerms | None
    basis: str = "point"
    shrinkage: ShrinkageTerms | None = None


@dataclass(frozen=True, kw_only=True)
class TermSheet:
    """Term sheets of every bond of a config, with totals per department."""

    config: str
    config_hash: str
    bonds: tuple[BondTerms, ...]
    total_principal: float
    total_investor_payoff_at_target: float
    department_pays_at_target: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON layout (``schema`` = :data:`TERMS_SCHEMA`); ``basis`` and
        ``shrinkage`` appear only for a bond on the shrunk basis (a point bond's
        layout is unchanged)."""
        d = {"schema": TERMS_SCHEMA, **asdict(self)}
        for bond in d["bonds"]:
            if bond["shrinkage"] is None:
                del bond["basis"], bond["shrinkage"]
        return d


def schedule_payment(bond: Bond, performance: float) -> float:
    """Payment of a ``schedule`` bond at a measured performance (units / target).

    The highest grid step reached sets the annual return; below the first
    step nothing is paid.
    """
    rate = None
    for perf, annual in bond.payment.grid:
        if performance >= perf:
            rate = annual
    return 0.0 if rate is None else bond.principal * (1.0 + rate) ** bond.term


def bond_terms(cfg: Config, bond: Bond, shrink: ShrinkTerms | None = None) -> BondTerms:
    """Compute the term sheet of one bond of ``cfg`` at full target.

    Parameters
    ----------
    cfg : Config
        The configuration the bond belongs to (for agencies and departments).
    bond : Bond
        The bond.
    shrink : ShrinkTerms, optional
        A shrunk bond's terms fixed at signing (``World.shrinkage``); the
        figures at target stay those of the measured units.

    Returns
    -------
    BondTerms
    """
    price = bond.price_per_unit
    principal = bond.principal
    pay = bond.payment
    coupons = math.fsum(c.rate * principal for c in pay.coupons)
    if pay.mechanism == "binary":
        paid_units = bond.target_units
        payoff = pay.amount
        # A binary bond breaks even at its trigger, if its fixed sum covers the principal.
        break_even = pay.trigger if pay.amount >= principal else None
    elif pay.mechanism == "schedule":
        paid_units = min(bond.target_units, pay.cap)
        payoff = schedule_payment(bond, paid_units / bond.target_units)
        # the lowest step whose payment and coupons return the principal
        break_even = next((perf for perf, _ in pay.grid
                           if schedule_payment(bond, perf) + coupons >= principal), None)
    else:
        paid_units = min(bond.target_units, pay.cap)
        payoff = paid_units * price
        # Appendix: 2000 / 2340 = 85.47% of the target must be paid for.
        break_even = principal / (bond.target_units * price)
    if pay.max_return is not None:
        payoff = min(payoff, principal * (1.0 + pay.max_return) ** bond.term)
    payoff += coupons
    multiple = payoff / principal
    irr = multiple ** (1.0 / bond.term) - 1.0

    payers = []
    by_department: dict[str, float] = {}
    for p in bond.payers:
        department = cfg.agency(p.agency).department
        per_unit = p.share * price
        dept_per_unit = per_unit + p.agency_premium
        # each agency pays its share of what investors get; premiums are per unit
        pays = p.share * payoff
        dept_pays = pays + p.agency_premium * paid_units
        by_department[department] = by_department.get(department, 0.0) + dept_pays
        payers.append(
            PayerTerms(
                agency=p.agency,
                department=department,
                share=p.share,
                pays_per_unit=per_unit,
                pays_at_target=pays,
                agency_premium_per_unit=p.agency_premium,
                department_pays_per_unit=dept_per_unit,
                department_pays_at_target=dept_pays,
                discretionary_at_target=p.agency_premium * paid_units,
            )
        )

    outcome = cfg.outcome(bond.outcome)
    savings = tuple(
        SavingTerms(department=s.department, basis=s.basis, per_unit=s.amount,
                    at_target=s.amount * bond.target_units)
        for s in outcome.savings
    )

    baseline = None
    if bond.baseline is not None:
        b = bond.baseline
        base_funding = b.units * b.cost_per_unit_year
        maturity_units = max(b.units - bond.target_units, 0.0)
        maturity_funding = maturity_units * b.cost_per_unit_year
        outcome_payment = sum(
            pt.department_pays_at_target
            for pt in payers
            if pt.agency == b.agency and pt.department == b.department
        )
        total = maturity_funding + outcome_payment
        baseline = BaselineTerms(
            department=b.department,
            agency=b.agency,
            base_year_units=b.units,
            cost_per_unit_year=b.cost_per_unit_year,
            base_year_funding=base_funding,
            maturity_year_units=maturity_units,
            maturity_year_funding=maturity_funding,
            outcome_payment=outcome_payment,
            total_at_maturity=total,
            saving=base_funding - total,
        )

    return BondTerms(
        bond=bond.id,
        provider=bond.provider,
        area=bond.area,
        outcome=bond.outcome,
        outcome_kind=outcome.kind,
        intervention=bond.intervention,
        mechanism=pay.mechanism,
        start=bond.start,
        maturity=bond.maturity,
        target_units=bond.target_units,
        paid_units_at_target=paid_units,
        cost_per_unit=bond.cost_per_unit,
        basket_risk=bond.basket_risk,
        return_premium=bond.return_premium,
        price_per_unit=price,
        investor_principal=principal,
        investor_payoff_at_target=payoff,
        multiple_at_target=multiple,
        irr_at_target=irr,
        break_even_fraction=break_even,
        payers=tuple(payers),
        department_pays_at_target=by_department,
        savings=savings,
        baseline=baseline,
        basis=pay.basis,
        shrinkage=None if shrink is None else ShrinkageTerms(
            prior_units=float(shrink.prior[-1]), prior_fixed=shrink.prior_fixed,
            tau=shrink.tau, sigma=shrink.sigma, k=shrink.k, k_fixed=shrink.k_fixed,
            paid_on_at_target=shrink.k * bond.target_units
            + (1.0 - shrink.k) * float(shrink.prior[-1])),
    )


def term_sheet(cfg: Config) -> TermSheet:
    """Compute the term sheets of every bond in ``cfg``.

    Parameters
    ----------
    cfg : Config
        A validated configuration.

    Returns
    -------
    TermSheet

    Examples
    --------
    >>> from lobsim import load_config, term_sheet
    >>> sheet = term_sheet(load_config("configs/birmingham_jsa.toml"))  # doctest: +SKIP
    >>> sheet.bonds[0].price_per_unit  # doctest: +SKIP
    2340.0
    """
    shrink: tuple[ShrinkTerms | None, ...] = (None,) * len(cfg.bonds)
    if any(b.payment.basis == "shrunk" for b in cfg.bonds):
        # the shrinkage terms are derived from the world at signing
        from lobsim.model.world import build_world
        shrink = build_world(cfg).shrinkage
    bonds = tuple(bond_terms(cfg, b, s) for b, s in zip(cfg.bonds, shrink, strict=True))
    departments: dict[str, float] = {d.id: 0.0 for d in cfg.departments}
    for bt in bonds:
        for dept, amount in bt.department_pays_at_target.items():
            departments[dept] += amount
    return TermSheet(
        config=cfg.name,
        config_hash=cfg.hash,
        bonds=bonds,
        total_principal=math.fsum(b.investor_principal for b in bonds),
        total_investor_payoff_at_target=math.fsum(b.investor_payoff_at_target for b in bonds),
        department_pays_at_target=departments,
    )


# --------------------------------------------------------------------------
# Text rendering
# --------------------------------------------------------------------------
def money(x: float) -> str:
    """Format an amount with thousands separators, pence only when present."""
    if math.isclose(x, round(x), rel_tol=0.0, abs_tol=5e-7):
        return f"{round(x):,}"
    return f"{x:,.2f}"


def percent(x: float) -> str:
    """Format a fraction as a percentage with two decimals."""
    return f"{100.0 * x:.2f}%"


def shrinkage_lines(bt: BondTerms) -> list[str]:
    """The payment basis lines of a shrunk bond's term sheet (none on the point basis)."""
    sh = bt.shrinkage
    if sh is None:
        return []
    return [
        f"  payment basis                shrunk: pays on k x measured + (1 - k) x prior, "
        f"k = {sh.k:.4f}" + (" (fixed)" if sh.k_fixed else " = tau^2 / (tau^2 + sigma^2)"),
        f"    prior units at maturity    {money(sh.prior_units)}"
        + (" (fixed)" if sh.prior_fixed else " (target x mean success x delivered share)"),
        f"    tau (prior sd of units)    {money(sh.tau)}",
        f"    sigma (sd of the error)    {money(sh.sigma)}  (the control group's prediction "
        "error at maturity)",
        f"    paid on at target          {money(sh.paid_on_at_target)} units",
    ]


def format_term_sheet(sheet: TermSheet, cfg: Config) -> str:
    """Render a :class:`TermSheet` as plain text for the terminal (money in GBP)."""
    from lobsim.model.simulate import CURRENCY

    def gbp(x: float) -> str:
        return f"{money(x)} {CURRENCY}"

    lines = [f"Term sheet: {sheet.config}", ""]
    for bt in sheet.bonds:
        unit = cfg.outcome(bt.outcome).unit
        units = f"units ({unit}s)" if bt.outcome_kind == "count" else "units"
        lines += [
            f"Bond {bt.bond}  ({bt.outcome} in {bt.area}; provider {bt.provider}; "
            f"{bt.intervention}; {bt.mechanism})",
            f"  term                         years {bt.start:g} to {bt.maturity:g}",
            f"  target                       {money(bt.target_units)} {units}",
            f"  cost per unit                {gbp(bt.cost_per_unit)}",
            f"  basket risk / return premium {percent(bt.basket_risk)} / "
            f"{percent(bt.return_premium)}",
            f"  price per unit               {gbp(bt.price_per_unit)}",
            f"  investor principal           {gbp(bt.investor_principal)}",
            f"  investor payoff at target    {gbp(bt.investor_payoff_at_target)}  "
            f"(multiple {bt.multiple_at_target:.4f}, IRR {percent(bt.irr_at_target)})",
            "  break-even success           "
            + ("never" if bt.break_even_fraction is None
               else f"{percent(bt.break_even_fraction)} of target"),
            *shrinkage_lines(bt),
            "  payers:",
        ]
        for p in bt.payers:
            lines += [
                f"    {p.agency} (parent {p.department}): share {p.share:.6g}, pays "
                f"{gbp(p.pays_per_unit)} per unit, {gbp(p.pays_at_target)} in total",
                f"      {p.department} pays {p.agency} {money(p.pays_per_unit)} + "
                f"{money(p.agency_premium_per_unit)} = {gbp(p.department_pays_per_unit)} per "
                f"unit, {gbp(p.department_pays_at_target)} in total; discretionary "
                f"{gbp(p.discretionary_at_target)}",
            ]
        for s in bt.savings:
            per = "per unit-year" if s.basis == "per_unit_year" else "per unit"
            lines.append(
                f"  saving to {s.department}: {gbp(s.per_unit)} {per}, "
                f"{gbp(s.at_target)} at target" + (" a year" if s.basis == "per_unit_year" else "")
            )
        if bt.baseline is not None:
            b = bt.baseline
            lines += [
                f"  baseline {b.department} -> {b.agency}:",
                f"    base year     {money(b.base_year_units)} {units} x "
                f"{gbp(b.cost_per_unit_year)} = {gbp(b.base_year_funding)}",
                f"    maturity year {money(b.maturity_year_units)} {units} x "
                f"{gbp(b.cost_per_unit_year)} = {gbp(b.maturity_year_funding)}",
                f"    outcome payment {gbp(b.outcome_payment)}; total "
                f"{gbp(b.total_at_maturity)}; saving {gbp(b.saving)}",
            ]
        lines.append("")
    lines.append(f"Total investor principal        {gbp(sheet.total_principal)}")
    lines.append(f"Total investor payoff at target {gbp(sheet.total_investor_payoff_at_target)}")
    for dept, amount in sheet.department_pays_at_target.items():
        lines.append(f"  {cfg.department(dept).name} ({dept}) pays at target {gbp(amount)}")
    return "\n".join(lines)
