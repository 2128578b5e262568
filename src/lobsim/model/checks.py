"""Cross-checks of a config: what no single table can check on its own.

Ids are unique and every reference names something defined; a bond's caps
fit its outcome's kind; two bonds never measure the same outcome in the same
area; the areas, donors, covariates and regions exist in the universe, and
the data files fit the bonds (:mod:`lobsim.model._datacheck`); a bond's
best case stays within the returns the engine represents. Loading
(:mod:`lobsim.model.config`) and deriving (:mod:`lobsim.model.derive`) run
them alike.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from lobsim.errors import ConfigError, LobsimWarning
from lobsim.model._datacheck import check_outcome_data
from lobsim.model._fields import Table, quote_key
from lobsim.model._limits import RETURN_LOG_MAX, annual_log_return
from lobsim.model.areas import read_areas
from lobsim.model.schema import PERIODS_PER_YEAR, Config, Payment


def _unique(source: str, key: str, items: tuple[Any, ...]) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.id in seen:
            raise ConfigError(
                f"duplicate id {item.id!r}; every entry of [[{key}]] needs its own id",
                source=source,
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


def check_references(cfg: Config) -> None:
    """Every id a config refers to exists, once; the data files fit the bonds.

    Raises
    ------
    ConfigError
        Naming ``cfg.source``, the TOML path of the reference and the ids defined.
    """
    src = cfg.source
    departments = _unique(cfg.source, "departments", cfg.departments)
    agencies = _unique(cfg.source, "agencies", cfg.agencies)
    interventions = _unique(cfg.source, "interventions", cfg.interventions)
    providers = _unique(cfg.source, "providers", cfg.providers)
    outcomes = _unique(cfg.source, "outcomes", cfg.outcomes)
    bonds = _unique(cfg.source, "bonds", cfg.bonds)
    _unique(cfg.source, "baskets", cfg.baskets)

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
    _unique(cfg.source, "cap_groups", cfg.cap_groups)
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
    _check_investor_classes(cfg)
    warn_idle_hazards(cfg)
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


def warn_idle_hazards(cfg: Config) -> None:
    """Warn of a provider hazard that cannot bite (docs/model.md section 5.5).

    With instantaneous delivery a provider failure after the start changes
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


def _check_investor_classes(cfg: Config) -> None:
    src = cfg.source
    _unique(cfg.source, "investor_classes", cfg.investor_classes)
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


def check_best_case(t: Table, pay: Payment, principal: float, price: float,
                     term: float) -> None:
    """The best case's IRR must be one the engine represents (``_limits.RETURN_LOG_MAX``).

    Raises
    ------
    ConfigError
        At the bond's ``maturity``, with the shortest term that would do.
    """
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
