"""Reading one ``[[bonds]]`` table: terms, payers, payment rule, control group, baseline.

The largest table of a config, read here for :func:`lobsim.model.config.parse_config`;
each reader checks what its table can check on its own (the cross-checks are
:mod:`lobsim.model.checks`).
"""

from __future__ import annotations

import math
from typing import Any

from lobsim.model._fields import Table
from lobsim.model._limits import (
    AMOUNT_MAX,
    COVARIATE_WEIGHT_MAX,
    DAY,
    POSITIVE_MIN,
    UNITS_MAX,
    YEARS_MAX,
)
from lobsim.model.checks import check_best_case
from lobsim.model.schema import (
    SHARE_TOLERANCE,
    Baseline,
    Bond,
    ControlGroup,
    Coupon,
    Measurement,
    Payer,
    Payment,
    PaymentBasis,
)


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
    basis, prior_units, shrinkage = _read_basis(t, measurements)
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
        basis=basis,
        prior_units=prior_units,
        shrinkage=shrinkage,
    )


def _read_basis(t: Table, measurements: tuple[Measurement, ...]
                ) -> tuple[PaymentBasis, float | None, float | None]:
    """The payment basis and the hand-fixed prior and shrinkage factor, if any."""
    basis: PaymentBasis = t.string("basis", "point", choices=("point", "shrunk"))
    prior_units = t.number("prior_units", None, low=0.0, high=UNITS_MAX)
    shrinkage = t.number("shrinkage", None, low=0.0, high=1.0)
    if basis == "point":
        for key in ("prior_units", "shrinkage"):
            if t.has(key):
                raise t.error(key, "applies only to basis = 'shrunk'; remove it or set "
                                   "basis = 'shrunk'")
    if prior_units is not None and len(measurements) > 1:
        # one number cannot be the prior of every cumulative measurement
        raise t.error("prior_units", "fixes the prior of a bond measured once; a bond "
                                     "measured at several dates takes lobsim's priors")
    return basis, prior_units, shrinkage


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


def read_bond(t: Table) -> Bond:
    """Read one ``[[bonds]]`` table: its terms, payers, payment rule and control group.

    Raises
    ------
    ConfigError
        Naming the field of ``t`` that is missing, mistyped, out of range or inconsistent.
    """
    id_ = t.identifier()
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
    check_best_case(t, payment, target * cost, price, maturity - start)
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


def _finish(t: Table, value: Any) -> Any:
    t.finish()
    return value
