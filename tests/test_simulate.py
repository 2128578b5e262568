"""The simulator against exact references: the Appendix, closed forms, a stepped model.

Monte Carlo checks run at fixed seeds and use 5-sigma tolerances built from the
standard errors of the statistics compared (stated at each test): a correct
engine fails one of them with probability below about 6e-7 per comparison,
while the model errors they target (a wrong copula, a wrong k-step variance,
correlated draws that should be independent) move the statistics by many
standard errors.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from lobsim import load_config, simulate, summarize, term_sheet
from lobsim.analysis.setaside import bond_year_payments
from lobsim.cli.commands import main
from lobsim.errors import ConfigError
from lobsim.model.process import kstep_variance
from lobsim.model.world import build_world
from worlds import (
    ZERO_PROCESS,
    Universe,
    bond_dict,
    config_dict,
    intervention_dict,
    make_universe,
    parse,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Five sigma, two-sided: P(|N(0,1)| > 5) = 5.7e-7.
SIGMAS = 5.0
P_FIVE_SIGMA = 2.0 * stats.norm.sf(SIGMAS)


# ---------------------------------------------------------------------------
# 1. The degenerate world reproduces the Appendix exactly
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def degenerate_birmingham(tmp_path_factory):
    """configs/birmingham_jsa.toml with every source of randomness switched off."""
    u = make_universe(tmp_path_factory.mktemp("degenerate"), 6,
                      ids=["Birmingham", "d1", "d2", "d3", "d4", "d5"],
                      base=[50_000.0, 20_000.0, 30_000.0, 40_000.0, 45_000.0, 60_000.0])
    doc = tomllib.loads((CONFIGS / "birmingham_jsa.toml").read_text(encoding="utf-8"))
    doc["universe"] = {"areas": str(u.areas), "period": "year"}
    outcome = doc["outcomes"][0]
    outcome.update(history=str(u.history), state=str(u.state), process=dict(ZERO_PROCESS))
    doc["interventions"][0].update(success_mean=1.0, success_sd=0.0, rho_type=0.0,
                                   rho_global=0.0, ramp_years=0.0, relapse_rate=0.0)
    doc["providers"][0]["failure_hazard"] = 0.0
    return parse(doc)


def test_degenerate_world_reproduces_the_appendix_exactly(degenerate_birmingham):
    # Reference: report Appendix (Birmingham JSA) and docs/model.md section 2. With
    # no noise, theta = 1, no ramp, no relapse and no failure the simulator must
    # give the term-sheet figures in every scenario, bit for bit (==).
    cfg = degenerate_birmingham
    sheet = term_sheet(cfg).bonds[0]
    ds = simulate(cfg, scenarios=300, seed=7)
    bond = ds.sel(bond="bham-jsa")
    assert sheet.investor_payoff_at_target == 11_700_000
    for name, want in (("investor_payment", 11_700_000), ("paid_units", 5000),
                       ("true_units", 5000), ("measured_units", 5000), ("multiple", 1.17),
                       ("overpayment", 0.0)):
        values = bond[name].values
        assert (values == want).all(), (name, np.unique(values))
    assert (bond.investor_payment.values == sheet.investor_payoff_at_target).all()
    assert (bond.multiple.values == sheet.multiple_at_target).all()
    assert not bond.default.values.any()
    assert not bond.total_loss.values.any()
    # the IRR is a power computed in the kernel: equal to the sheet's to rounding
    np.testing.assert_allclose(bond.irr.values, sheet.irr_at_target, rtol=1e-14)

    # departments pay at the maturity year only: DWP 5,000 x 1,670, the partner 5,000 x 1,170
    pay = ds.department_payment
    year4 = pay.sel(year=4)
    assert (year4.sel(department="DWP").values == 8_350_000).all()
    assert (year4.sel(department="PARTNER_DEPT").values == 5_850_000).all()
    assert (pay.sel(year=[1, 2, 3]).values == 0.0).all()
    for dept, amount in sheet.department_pays_at_target.items():
        assert (year4.sel(department=dept).values == amount).all()
    # together 5,000 x (2,340 + 500) = 14,200,000 (docs/model.md section 2.1)
    assert (pay.sum(["department", "year"]).values == 14_200_000).all()
    # DWP saves 62 x 52 = 3,224 per claimant-year on 5,000 claimants, every year
    assert (ds.department_saving.sel(department="DWP").values == 5000 * 3224.0).all()


# ---------------------------------------------------------------------------
# Worlds of many identical bonds without area noise
# ---------------------------------------------------------------------------
def identical_bonds_world(directory: Path, n_bonds: int, *, mean: float, sd: float,
                          rho_global: float, payment: dict[str, Any] | None = None,
                          scenarios: int = 4096, seed: int = 0):
    """``n_bonds`` bonds in ``n_bonds`` areas (one shared donor), no area noise.

    Measured units then equal true units exactly, so a bond's fate depends on
    theta alone.
    """
    u = make_universe(directory, n_bonds + 1, base=10_000.0)
    bonds = [bond_dict(f"b{i:03d}", u.ids[i], target=100.0, maturity=3.0, payment=payment)
             for i in range(n_bonds)]
    doc = config_dict(u, bonds, interventions=[intervention_dict(
        mean=mean, sd=sd, rho_global=rho_global)], scenarios=scenarios, seed=seed)
    return parse(doc)


def beta_dist(mean: float, sd: float):
    kappa = mean * (1.0 - mean) / (sd * sd) - 1.0
    return stats.beta(mean * kappa, (1.0 - mean) * kappa)


# ---------------------------------------------------------------------------
# 2. Independent bonds: the number of defaults is Binomial(n, p)
# ---------------------------------------------------------------------------
def test_independent_bonds_default_count_is_binomial(tmp_path):
    # Reference: with rho_type = rho_global = 0 the copula normals are
    # independent (docs/model.md section 5.2), and with no area noise measured =
    # true = theta x target, so bond b defaults iff theta_b < cost/price
    # (the break-even fraction, docs/model.md section 2.2). The count of defaults per
    # scenario is Binomial(n, p) with p = F_Beta(cost/price).
    n, mean, sd, scenarios = 20, 0.85, 0.12, 6000
    cfg = identical_bonds_world(tmp_path, n, mean=mean, sd=sd, rho_global=0.0,
                                scenarios=scenarios, seed=2024)
    bond = cfg.bonds[0]
    p = float(beta_dist(mean, sd).cdf(bond.cost_per_unit / bond.price_per_unit))
    assert 0.2 < p < 0.8  # a distribution worth testing
    ds = simulate(cfg)
    np.testing.assert_array_equal(ds.measured_units.values, ds.true_units.values)
    counts = ds.default.values.sum(axis=1)

    # mean: se = sqrt(n p (1 - p) / N); 5 sigma
    se = math.sqrt(n * p * (1 - p) / scenarios)
    assert abs(counts.mean() - n * p) < SIGMAS * se, (counts.mean(), n * p, se)

    # chi-square goodness of fit, cells with expected count < 5 pooled into the
    # neighbouring cell; reject at the 5-sigma level (p-value < 5.7e-7)
    expected = stats.binom.pmf(np.arange(n + 1), n, p) * scenarios
    observed = np.bincount(counts, minlength=n + 1).astype(float)
    cells_o, cells_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected, strict=True):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 5.0:
            cells_o.append(acc_o)
            cells_e.append(acc_e)
            acc_o = acc_e = 0.0
    cells_o[-1] += acc_o
    cells_e[-1] += acc_e
    cells_e = np.array(cells_e) * (sum(cells_o) / sum(cells_e))  # exact total
    result = stats.chisquare(cells_o, cells_e)
    assert len(cells_o) >= 8
    assert result.pvalue > P_FIVE_SIGMA, result


# ---------------------------------------------------------------------------
# 3. Vasicek (1991): the large homogeneous portfolio limit
# ---------------------------------------------------------------------------
def vasicek_cdf(x: np.ndarray, p: float, rho: float) -> np.ndarray:
    """P(L <= x) for the limiting loss fraction (Vasicek 1991)."""
    return stats.norm.cdf((math.sqrt(1 - rho) * stats.norm.ppf(x) - stats.norm.ppf(p))
                          / math.sqrt(rho))


def vasicek_quantile(q: float, p: float, rho: float) -> float:
    return float(stats.norm.cdf((math.sqrt(rho) * stats.norm.ppf(q) + stats.norm.ppf(p))
                                / math.sqrt(1 - rho)))


def finite_portfolio_cdf(k: int, n: int, p: float, rho: float) -> float:
    """P(D <= k) for D defaults out of n: a Binomial(n, p(Z)) mixed over Z ~ N(0, 1)."""
    c = stats.norm.ppf(p)

    def integrand(z: float) -> float:
        pz = stats.norm.cdf((c - math.sqrt(rho) * z) / math.sqrt(1 - rho))
        return float(stats.binom.cdf(k, n, pz) * stats.norm.pdf(z))

    value, _ = integrate.quad(integrand, -12.0, 12.0, limit=200, epsabs=1e-12)
    return value


def test_vasicek_large_portfolio_limit(tmp_path):
    # Reference: Vasicek (1991), "Limiting loan loss probability distribution".
    # 200 binary bonds whose amount covers the principal default iff measured
    # units < trigger x target, i.e. (no area noise) iff theta < trigger, i.e.
    # iff Z_b < Phi^-1(p) with p = F_Beta(trigger) and
    # Z_b = sqrt(rho) Z_global + sqrt(1 - rho) eps_b (docs/model.md section 5.2).
    # The default fraction L then has P(L <= x) -> Phi((sqrt(1-rho) Phi^-1(x)
    # - Phi^-1(p)) / sqrt(rho)) as n -> infinity.
    #
    # Tolerances. (a) Against the exact finite-portfolio law (Binomial(n, p(Z))
    # mixed over Z, by quadrature) the only error is Monte Carlo:
    # se = sqrt(F (1 - F) / N), 5 sigma. (b) Against the limit, add the
    # finite-portfolio error |F_n(x) - F_inf(x)|, computed exactly; x is taken
    # mid-way between attainable fractions (k + 1/2)/n, where the binomial
    # smoothing is centred, so that error is O(1/n) (Gordy 2003): about 0.002 at
    # the median, 0.021 at the 5% quantile, where only 2 of 200 bonds default;
    # asserted below 0.025.
    n, mean, sd, rho, p, scenarios = 200, 0.6, 0.2, 0.2, 0.1, 16_384
    trigger = float(beta_dist(mean, sd).ppf(p))
    cfg = identical_bonds_world(tmp_path, n, mean=mean, sd=sd, rho_global=rho,
                                payment={"mechanism": "binary", "trigger": trigger},
                                scenarios=scenarios, seed=1991)
    assert cfg.bonds[0].payment.amount >= cfg.bonds[0].principal
    ds = simulate(cfg)
    defaults = ds.default.values
    assert (defaults == (ds.measured_units.values < trigger * 100.0)).all()
    frac = defaults.mean(axis=1)
    del ds, defaults

    # the mean default rate is p: se from the sample sd of L, 5 sigma
    assert abs(frac.mean() - p) < SIGMAS * frac.std(ddof=1) / math.sqrt(scenarios)

    for q in (0.05, 0.25, 0.5, 0.75, 0.95, 0.99):
        k = math.floor(vasicek_quantile(q, p, rho) * n)
        x = (k + 0.5) / n
        empirical = float((frac <= x).mean())
        exact_n = finite_portfolio_cdf(k, n, p, rho)
        limit = float(vasicek_cdf(np.array(x), p, rho))
        mc_se = math.sqrt(exact_n * (1 - exact_n) / scenarios)
        granularity = abs(exact_n - limit)
        assert granularity < 0.025, (q, exact_n, limit)
        assert abs(empirical - exact_n) < SIGMAS * mc_se, (q, x, empirical, exact_n, mc_se)
        assert abs(empirical - limit) < SIGMAS * mc_se + granularity, (q, x, empirical, limit)


# ---------------------------------------------------------------------------
# A rich world: noise, failures, ramps, relapse, cohorts, binaries, premiums
# ---------------------------------------------------------------------------
NOISY_PROCESS = {
    "national_phi": 0.85, "national_sigma": 0.05,
    "regional_phi": 0.7, "regional_sigma": 0.03,
    "area_phi": 0.6, "area_sigma": 0.03,
    "measurement_sigma": 0.01,
}


def rich_world_doc(u: Universe, *, block_size: int = 4096, scenarios: int = 2000,
                   seed: int = 11) -> dict[str, Any]:
    a = u.ids
    payers_1 = [{"agency": "A1", "share": 0.5, "agency_premium": 500.0},
                {"agency": "A3", "share": 0.5}]
    payers_2 = [{"agency": "A1", "share": 0.3, "agency_premium": 100.0},
                {"agency": "A2", "share": 0.7, "agency_premium": 50.0}]
    payers_3 = [{"agency": "A1", "share": 1 / 3, "agency_premium": 10.0},
                {"agency": "A2", "share": 1 / 3, "agency_premium": 20.0},
                {"agency": "A3", "share": 1 / 3, "agency_premium": 30.0}]
    bonds = [
        bond_dict("unit", a[0], outcome="claims", provider="p1", intervention="emp",
                  target=600.0, payers=payers_1, donors=3),
        bond_dict("thresh", a[1], outcome="claims", provider="p1", intervention="emp",
                  target=500.0, maturity=3.0, payers=payers_2, donors=4,
                  payment={"mechanism": "threshold", "threshold": 0.01, "cap": 600.0}),
        bond_dict("binary", a[2], outcome="claims", provider="p2", intervention="fam",
                  target=400.0, payers=[{"agency": "A2", "share": 0.6, "agency_premium": 200.0},
                                        {"agency": "A3", "share": 0.4}],
                  payment={"mechanism": "binary", "trigger": 0.8}),
        bond_dict("cohorts", a[3], outcome="claims", provider="p2", intervention="fam",
                  target=700.0, maturity=4.5, payers=payers_3, donors=5,
                  payment={"mechanism": "per_unit", "threshold": 0.005, "measurements": [
                      {"at": 2.0, "cap": 300.0, "threshold": 0.01},
                      {"at": 3.0, "cap": 500.0},
                      {"at": 4.5, "threshold": 0.0075}]}),
        bond_dict("pct", a[0], outcome="wait", provider="p1", intervention="emp",
                  target=4.0, cost=50_000.0, start=1.0, maturity=4.5,
                  payers=[{"agency": "A3", "share": 1.0, "agency_premium": 1000.0}], donors=3),
        bond_dict("pct-binary", a[4], outcome="wait", provider="p2", intervention="fam",
                  target=5.0, cost=40_000.0, maturity=3.0,
                  payers=[{"agency": "A1", "share": 0.25, "agency_premium": 300.0},
                          {"agency": "A2", "share": 0.75}],
                  payment={"mechanism": "binary", "trigger": 0.5, "amount": 300_000.0}),
    ]
    return config_dict(
        u, bonds, process=NOISY_PROCESS,
        interventions=[
            intervention_dict("emp", mean=0.9, sd=0.1, rho_type=0.3, rho_global=0.1,
                              ramp_years=1.5, relapse=0.05),
            intervention_dict("fam", mean=0.75, sd=0.15, rho_type=0.2, rho_global=0.1,
                              ramp_years=2.0, relapse=0.1),
        ],
        providers=[{"id": "p1", "failure_hazard": 0.05}, {"id": "p2", "failure_hazard": 0.1}],
        departments=("D1", "D2"),
        agencies={"A1": "D1", "A2": "D1", "A3": "D2"},
        outcomes={"claims": "count", "wait": "percent"},
        savings=[{"department": "D1", "amount": 3224.0, "basis": "per_unit_year"},
                 {"department": "D2", "amount": 500.0, "basis": "per_unit"}],
        baskets=[{"id": "counts", "bonds": ["unit", "thresh", "binary", "cohorts"]},
                 {"id": "everything", "where": {"regions": ["R0", "R1"]}}],
        scenarios=scenarios, seed=seed, block_size=block_size,
    )


@pytest.fixture(scope="module")
def rich_universe(tmp_path_factory) -> Universe:
    n = 14
    return make_universe(
        tmp_path_factory.mktemp("rich"), n,
        base=[20_000.0 + 1500.0 * i for i in range(n)],
        regions=["R0" if i % 2 == 0 else "R1" for i in range(n)],
        trend=[0.01 * ((i % 5) - 2) for i in range(n)],
        area_state=[0.02 * ((i % 3) - 1) for i in range(n)],
        regional_state={"R0": 0.03, "R1": -0.02}, national_state=0.04)


# ---------------------------------------------------------------------------
# 4. Conservation of money: departments pay investors' payments plus premiums
# ---------------------------------------------------------------------------
def check_conservation(cfg, ds: xr.Dataset, *, must_pay: bool = True) -> None:
    # Reference: docs/model.md section 7.2 (each department pays its agencies' shares
    # of every payment plus the agency premium per paid unit) and section 6
    # (a binary bond's paid units are its target when it pays). Exact up to
    # rounding and to the shares' own tolerance: shares may sum to 1 only
    # within 1e-9 (config.SHARE_TOLERANCE), so the per-unit shares of the price
    # reproduce the payment only to 1e-9 relative; float sums add ~1e-16 per term.
    premium = np.array([math.fsum(p.agency_premium for p in b.payers) for b in cfg.bonds])
    investors = ds.investor_payment.values.sum(axis=1)
    premiums = (ds.paid_units.values * premium).sum(axis=1)
    departments = ds.department_payment.values.sum(axis=(1, 2))
    np.testing.assert_allclose(departments, investors + premiums, rtol=1e-9, atol=1e-6)
    if must_pay:  # the check has something to check
        assert (ds.investor_payment.values > 0).any()
        assert (premiums > 0).any()


def test_conservation_on_a_custom_world_with_premiums(rich_universe):
    cfg = parse(rich_world_doc(rich_universe))
    ds = simulate(cfg)
    check_conservation(cfg, ds)
    # every mechanism pays in some scenarios and not in others
    paying = (ds.investor_payment > 0).mean("scenario").values
    assert ((paying > 0.01) & (paying < 0.99)).all(), dict(zip(ds.bond.values, paying,
                                                               strict=True))
    binary = ds.sel(bond=["binary", "pct-binary"])
    assert set(np.unique(binary.paid_units.values)) <= {0.0, 400.0, 5.0}


def test_conservation_on_basket_demo():
    path = CONFIGS / "basket_demo.toml"
    try:
        cfg = load_config(path)
        build_world(cfg)
    except (OSError, ConfigError) as exc:
        pytest.skip(f"configs/basket_demo.toml does not load yet: {exc}")
    ds = simulate(cfg, scenarios=2000, seed=3)
    check_conservation(cfg, ds)


# ---------------------------------------------------------------------------
# 5. Properties over random small worlds (hypothesis)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def property_universe(tmp_path_factory) -> Universe:
    n = 8
    return make_universe(tmp_path_factory.mktemp("prop"), n,
                         base=[5_000.0 + 700.0 * i for i in range(n)],
                         regions=["R0" if i < 4 else "R1" for i in range(n)],
                         trend=0.01, area_state=0.01, regional_state={"R1": -0.02},
                         national_state=0.01)


@st.composite
def small_worlds(draw, u: Universe) -> tuple[dict[str, Any], float]:
    """A config document with 1-3 bonds and a mean success to raise later."""
    sigma = st.floats(0.0, 0.1)
    process = {"national_phi": draw(st.floats(0.0, 1.0)), "national_sigma": draw(sigma),
               "regional_phi": draw(st.floats(0.0, 1.0)), "regional_sigma": draw(sigma),
               "area_phi": draw(st.floats(0.0, 1.0)), "area_sigma": draw(sigma),
               "measurement_sigma": draw(st.floats(0.0, 0.05))}
    kind = draw(st.sampled_from(["count", "percent"]))
    n_bonds = draw(st.integers(1, 3))
    bonds = []
    for i in range(n_bonds):
        target = draw(st.floats(1.0, 20.0)) if kind == "percent" else draw(
            st.floats(10.0, 800.0))
        start = draw(st.sampled_from([0.0, 0.5, 1.0]))
        maturity = start + draw(st.sampled_from([1.0, 2.0, 2.5, 4.0]))
        mechanism = draw(st.sampled_from(["per_unit", "threshold", "binary"]))
        payment: dict[str, Any] = {"mechanism": mechanism}
        if mechanism == "binary":
            payment["trigger"] = draw(st.floats(0.2, 1.2))
            if draw(st.booleans()):
                payment["amount"] = draw(st.floats(1_000.0, 5e6))
        else:
            cap = min(target * draw(st.floats(0.5, 1.5)), 100.0 if kind == "percent" else 1e9)
            payment["cap"] = cap
            if mechanism == "threshold":
                payment["threshold"] = draw(st.floats(0.0, 0.05))
            if draw(st.booleans()):
                first = start + (maturity - start) / 2
                payment["measurements"] = [{"at": first, "cap": cap / 2}, {"at": maturity}]
        premium = draw(st.floats(0.0, 1000.0))
        bonds.append(bond_dict(
            f"b{i}", u.ids[2 * i + draw(st.integers(0, 1))], target=target, start=start,
            maturity=maturity, cost=draw(st.floats(100.0, 5000.0)),
            basket_risk=draw(st.floats(0.0, 0.3)), return_premium=draw(st.floats(0.0, 0.2)),
            payment=payment, donors=draw(st.integers(1, 3)),
            payers=[{"agency": "AG", "share": 0.4, "agency_premium": premium},
                    {"agency": "AG2", "share": 0.6}]))
    mean = draw(st.floats(0.0, 0.9))
    ramp = draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    # a hazard on a bond delivering at once is warned about (it has no effect)
    hazard = draw(st.floats(0.0, 0.5)) if ramp > 0.0 else 0.0
    doc = config_dict(
        u, bonds, process=process, outcomes={"out": kind},
        interventions=[intervention_dict(
            mean=mean, sd=0.0, rho_type=0.0, rho_global=0.0,
            ramp_years=ramp, relapse=draw(st.floats(0.0, 0.5)))],
        providers=[{"id": "prov", "failure_hazard": hazard}],
        agencies={"AG": "DEPT", "AG2": "DEPT"}, scenarios=512, seed=draw(st.integers(0, 99)),
        block_size=128)
    return doc, draw(st.floats(0.01, 1.0))


def with_mean(doc: dict[str, Any], mean: float) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    out["interventions"][0]["success_mean"] = min(1.0, mean)
    return out


@settings(max_examples=25)
@given(data=st.data())
def test_more_true_success_never_lowers_payment(property_universe, data):
    # Reference: docs/model.md sections 4-6: measured units are the control group's
    # prediction error plus the observed effect, and every mechanism pays a
    # non-decreasing function of measured units. With common random numbers
    # (same world, same seed; only success_mean changes, sd 0 so theta = mean)
    # the prediction error is identical, so raising theta can only raise the
    # paid units (exactly: max/min/+/x are monotone in IEEE arithmetic) and the
    # payment (to rounding of the per-cohort increments, 1e-12 relative).
    doc, raise_by = data.draw(small_worlds(property_universe))
    mean = doc["interventions"][0]["success_mean"]
    lo = simulate(parse(doc))
    hi = simulate(parse(with_mean(doc, mean + raise_by)))
    assert (hi.true_units.values >= lo.true_units.values).all()
    assert (hi.measured_units.values >= lo.measured_units.values).all()
    assert (hi.paid_units.values >= lo.paid_units.values).all()
    slack = 1e-12 * lo.principal.values
    assert (hi.investor_payment.values >= lo.investor_payment.values - slack).all()


@settings(max_examples=25)
@given(data=st.data())
def test_payment_bounds_and_default_flags(property_universe, data):
    # Reference: docs/model.md section 6 (paid units clipped to [0, cap]; a binary
    # bond pays its amount or nothing) and section 7 (default is payment <
    # principal, total loss is payment == 0), exactly.
    doc, raise_by = data.draw(small_worlds(property_universe))
    cfg = parse(with_mean(doc, doc["interventions"][0]["success_mean"] + raise_by))
    ds = simulate(cfg)
    for b in cfg.bonds:
        r = ds.sel(bond=b.id)
        pay, paid = r.investor_payment.values, r.paid_units.values
        assert (pay >= 0.0).all() and (paid >= 0.0).all()
        if b.payment.mechanism == "binary":
            assert set(np.unique(pay)) <= {0.0, b.payment.amount}
            assert set(np.unique(paid)) <= {0.0, b.target_units}
        else:
            cap = b.payment.measurements[-1].cap
            assert (paid <= cap).all()
            assert (pay <= cap * b.price_per_unit * (1 + 1e-12)).all()
        assert (r.default.values == (pay < b.principal)).all()
        assert (r.total_loss.values == (pay == 0.0)).all()
    assert (ds.department_payment.values >= 0.0).all()
    # payments by date add up to each bond's total, and the set-asides' split of
    # the bonds by year (lobsim.analysis.setaside) to the kernel's department payments
    for bond_id in np.unique(ds.payment_bond.values):
        dated = ds.dated_payment.values[:, ds.payment_bond.values == bond_id]
        assert (dated >= 0.0).all()
        np.testing.assert_allclose(dated.sum(axis=1), ds.investor_payment.sel(bond=bond_id),
                                   rtol=1e-9, atol=1e-9)
    for j in range(ds.sizes["year"]):
        np.testing.assert_allclose(bond_year_payments(ds, 0, j).sum(axis=1),
                                   ds.department_payment.values[:, 0, j], rtol=1e-9, atol=1e-6)
    check_conservation(cfg, ds, must_pay=False)


# ---------------------------------------------------------------------------
# 6. Exact k-step transitions against a monthly stepped simulation
# ---------------------------------------------------------------------------
STEP_PROCESS = {
    "national_phi": 0.8, "national_sigma": 0.05,
    "regional_phi": 1.0, "regional_sigma": 0.03,
    "area_phi": 0.6, "area_sigma": 0.04,
    "measurement_sigma": 0.02,
    "national_loading": 1.3, "regional_loading": 0.7,
}


def monthly(phi: float, sigma: float) -> tuple[float, float]:
    """Monthly AR(1) coefficient and innovation sd whose 12 steps make one year.

    phi_m^12 = phi, and 12 monthly steps from 0 have variance sigma^2:
    s_m^2 (1 - phi_m^24) / (1 - phi_m^2) = sigma^2 (a random walk: sigma^2 / 12).
    """
    if phi == 1.0:
        return 1.0, sigma / math.sqrt(12.0)
    phi_m = phi ** (1.0 / 12.0)
    return phi_m, sigma * math.sqrt((1.0 - phi_m**2) / (1.0 - phi**2))


@pytest.fixture(scope="module")
def stepped_world(tmp_path_factory):
    """Treated A (region R1, measured at 1.5 years) and B (R2, at 2.5), one donor D (R1)."""
    u = make_universe(tmp_path_factory.mktemp("stepped"), 3, ids=["A", "B", "D"],
                      base=[50_000.0, 20_000.0, 30_000.0], regions=["R1", "R2", "R1"],
                      trend=[0.01, -0.02, 0.005], area_state=[0.01, -0.03, 0.02],
                      regional_state={"R1": -0.02, "R2": 0.03}, national_state=0.05)
    bonds = [bond_dict("bA", "A", maturity=1.5, donor_areas=["D"]),
             bond_dict("bB", "B", maturity=2.5, donor_areas=["D"])]
    doc = config_dict(u, bonds, process=STEP_PROCESS,
                      interventions=[intervention_dict(mean=0.0)], scenarios=20_000, seed=5)
    return parse(doc)


def test_k_step_coefficients_match_monthly_stepping(stepped_world):
    # Reference: docs/model.md section 10.1, S[t+k] = phi^k S[t] + sigma
    # sqrt((1 - phi^(2k)) / (1 - phi^2)) z, checked against the variance
    # recursion v <- phi_m^2 v + s_m^2 of the monthly process, stepped month by
    # month over each interval between measurement dates (exact arithmetic up
    # to rounding: 1e-12 relative).
    for phi in (0.0, 0.3, 0.6, 0.85, 0.999, 1.0):
        for months in (1, 6, 12, 18, 30, 61):
            phi_m, s_m = monthly(phi, 1.0)
            v = 0.0
            for _ in range(months):
                v = phi_m**2 * v + s_m**2
            assert kstep_variance(phi, months / 12) == pytest.approx(v, rel=1e-12, abs=1e-300)

    world = build_world(stepped_world)
    fa, sa = world.arrays.factors, world.arrays.series
    np.testing.assert_array_equal(fa.time, [1.5, 2.5])
    proc = STEP_PROCESS
    # factor order: national, then the regions as first touched (R1 by A, R2 by B)
    params = [(proc["national_phi"], proc["national_sigma"], 0.05),
              (proc["regional_phi"], proc["regional_sigma"], -0.02),
              (proc["regional_phi"], proc["regional_sigma"], 0.03)]
    assert fa.phik.shape == (3, 2)
    np.testing.assert_array_equal(fa.state0, [p[2] for p in params])
    for f, (phi, sigma, _) in enumerate(params):
        phi_m, s_m = monthly(phi, sigma)
        for d, months in enumerate((18, 12)):
            v, coef = 0.0, 1.0
            for _ in range(months):
                v = phi_m**2 * v + s_m**2
                coef *= phi_m
            assert fa.phik[f, d] == pytest.approx(coef, rel=1e-12)
            assert fa.sdk[f, d] == pytest.approx(math.sqrt(v), rel=1e-12)

    # the donor's area-specific states at both dates, with its measurement noise:
    # chol @ chol.T is their covariance, from the monthly recursion
    d = list(sa.treated).index(False)
    chol = sa.chol[d, :2, :2]
    phi_m, s_m = monthly(proc["area_phi"], proc["area_sigma"])
    v18 = 0.0
    for _ in range(18):
        v18 = phi_m**2 * v18 + s_m**2
    v30 = v18
    for _ in range(12):
        v30 = phi_m**2 * v30 + s_m**2
    noise = proc["measurement_sigma"] ** 2
    want = np.array([[v18 + noise, phi_m**12 * v18], [phi_m**12 * v18, v30 + noise]])
    np.testing.assert_allclose(chol @ chol.T, want, rtol=1e-12)
    # the donor's draw-free part, relative to its observed base log level:
    # mu t + (phi^t - 1) U0 - beta F0 - gamma G0 - s_e^2 / 2 (log_level = log base)
    t = np.array([1.5, 2.5])
    want_const = (0.005 * t + (0.6**t - 1.0) * 0.02 - proc["national_loading"] * 0.05
                  - proc["regional_loading"] * -0.02 - 0.5 * proc["measurement_sigma"] ** 2)
    np.testing.assert_allclose(sa.const[d, :2], want_const, rtol=1e-12, atol=1e-15)


def stepped_measured_units(n: int, seed: int) -> np.ndarray:
    """Measured units of bA and bB under no effect, by monthly stepping (plain numpy).

    docs/model.md sections 3-4: x = x0 + mu t + beta (F_t - F_0) + gamma (G_t - G_0)
    + (U_t - U_0); y_obs = exp(x) exp(s_e e - s_e^2 / 2); counterfactual
    yhat = y_obs[a, 0] y_obs[D, T] / y_obs[D, 0] (one donor of weight 1);
    measured units = yhat - y_obs[a, T].
    """
    rng = np.random.default_rng(seed)
    p = STEP_PROCESS
    x0 = {"A": math.log(50_000.0), "B": math.log(20_000.0), "D": math.log(30_000.0)}
    mu = {"A": 0.01, "B": -0.02, "D": 0.005}
    u0 = {"A": 0.01, "B": -0.03, "D": 0.02}
    region = {"A": "R1", "B": "R2", "D": "R1"}
    g0 = {"R1": -0.02, "R2": 0.03}
    f = np.full(n, 0.05)
    g = {r: np.full(n, v) for r, v in g0.items()}
    u = {a: np.full(n, v) for a, v in u0.items()}
    fm, gm, um = (monthly(p[k + "_phi"], p[k + "_sigma"])
                  for k in ("national", "regional", "area"))
    se = p["measurement_sigma"]
    y_obs: dict[tuple[str, int], np.ndarray] = {}
    for month in range(1, 31):
        f = fm[0] * f + fm[1] * rng.standard_normal(n)
        g = {r: gm[0] * v + gm[1] * rng.standard_normal(n) for r, v in g.items()}
        u = {a: um[0] * v + um[1] * rng.standard_normal(n) for a, v in u.items()}
        if month in (18, 30):
            t = month / 12
            for a in ("A", "B", "D"):
                x = (x0[a] + mu[a] * t + p["national_loading"] * (f - 0.05)
                     + p["regional_loading"] * (g[region[a]] - g0[region[a]]) + u[a] - u0[a])
                y_obs[a, month] = np.exp(x + se * rng.standard_normal(n) - se * se / 2)
    m_a = 50_000.0 * y_obs["D", 18] / 30_000.0 - y_obs["A", 18]
    m_b = 20_000.0 * y_obs["D", 30] / 30_000.0 - y_obs["B", 30]
    return np.stack([m_a, m_b], axis=1)


def moment_se(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Sample covariance of x and y and its standard error (delta method)."""
    dx, dy = x - x.mean(), y - y.mean()
    prod = dx * dy
    return float(prod.mean()), float(prod.std(ddof=1) / math.sqrt(x.size))


def test_measured_units_match_monthly_stepping(stepped_world):
    # Reference: a step-by-step monthly simulation of the same AR(1) process
    # (docs/model.md section 3.2, parameters converted exactly to months), against the
    # engine's one-draw-per-date exact transitions (section 10). Compared: the
    # means, variances and the covariance of the two bonds' measured units under
    # no effect (theta = 0); the covariance comes from the donor measured at both
    # dates and the shared national factor. 5 sigma of the combined standard
    # errors of the two independent samples.
    n = stepped_world.simulation.scenarios
    ds = simulate(stepped_world)
    assert (ds.true_units.values == 0.0).all()
    engine = ds.measured_units.values
    ref = stepped_measured_units(n, seed=99)
    for i in range(2):
        e, r = engine[:, i], ref[:, i]
        se = math.hypot(e.std(ddof=1), r.std(ddof=1)) / math.sqrt(n)
        assert abs(e.mean() - r.mean()) < SIGMAS * se, (i, e.mean(), r.mean(), se)
        ve, se_e = moment_se(e, e)
        vr, se_r = moment_se(r, r)
        assert abs(ve - vr) < SIGMAS * math.hypot(se_e, se_r), (i, ve, vr)
    ce, se_e = moment_se(engine[:, 0], engine[:, 1])
    cr, se_r = moment_se(ref[:, 0], ref[:, 1])
    assert abs(ce - cr) < SIGMAS * math.hypot(se_e, se_r), (ce, cr, se_e, se_r)
    # the covariance is material, so the check has power
    assert abs(cr) > 10 * se_r


# ---------------------------------------------------------------------------
# 7. Reproducibility: blocks, chunks and threads never change results
# ---------------------------------------------------------------------------
def test_results_do_not_depend_on_chunks_or_threads(rich_universe):
    # Reference: docs/model.md section 9.4 (bit-identical whatever the threads or
    # chunks: one stream per fixed-size block, spawned by block index).
    block, scenarios = 64, 1000  # 15 full blocks and one of 40
    cfg = parse(rich_world_doc(rich_universe, block_size=block, scenarios=scenarios, seed=77))
    reference = simulate(cfg, chunk_size=None, threads=1)
    assert reference.sizes["scenario"] == scenarios
    for chunk in (block, 3 * block, scenarios):
        for threads in (1, 2):
            ds = simulate(cfg, chunk_size=chunk, threads=threads)
            xr.testing.assert_identical(ds, reference)
    # a shorter run is a prefix of a longer one: streams belong to blocks
    short = simulate(cfg, scenarios=500, threads=2)
    xr.testing.assert_identical(
        short.drop_attrs(), reference.isel(scenario=slice(0, 500)).drop_attrs())
    other = simulate(cfg, seed=78, threads=2)
    for name in ("measured_units", "investor_payment", "department_payment"):
        assert not np.array_equal(other[name].values, reference[name].values), name
    assert other.attrs["seed"] == 78 and reference.attrs["seed"] == 77


# ---------------------------------------------------------------------------
# 8. End to end through the command line
# ---------------------------------------------------------------------------
def test_cli_run_and_summary(tmp_path, capsys):
    # Reference: docs/model.md section 9 (netCDF results, summary statistics) and
    # the CLI contract in lobsim.cli.commands (config errors and usage errors are one
    # line on stderr with exit status 2).
    config = str(CONFIGS / "birmingham_jsa.toml")
    out = tmp_path / "results" / "bham.nc"
    assert main(["run", config, "--scenarios", "2000", "--out", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()

    assert main(["run", config, "--scenarios", "2000", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lobsim: error:"), captured.err
    assert "--force" in lines[0]

    assert main(["summary", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "lobsim.summary/1"
    ds = xr.load_dataset(out)
    assert ds.sizes["scenario"] == 2000
    for bond in ds.bond.values.tolist():
        want = float(ds.default.sel(bond=bond).mean())
        assert doc["bonds"][bond]["default_probability"] == want
    # the file holds what the API computes for the same config and seed
    direct = simulate(load_config(config), scenarios=2000)
    np.testing.assert_array_equal(ds.investor_payment.values, direct.investor_payment.values)
    np.testing.assert_array_equal(ds.default.values, direct.default.values)


# ---------------------------------------------------------------------------
# 9. Provider failure: one exponential time per LIOA, shared by its bonds
# ---------------------------------------------------------------------------
def test_provider_failure_is_exponential_and_shared(tmp_path):
    # Reference: docs/model.md section 5.5 (each provider fails at an exponential
    # time with annual hazard h, one draw shared by all its bonds; nothing is
    # delivered after it). With theta = 1, a one-year linear ramp, no relapse
    # and no noise, true units / target = min(T_fail, 1), so
    # P(fraction < 1) = 1 - exp(-h) and E[fraction] = (1 - exp(-h)) / h.
    # 5 sigma of the binomial / sample standard errors.
    h, n = 0.7, 20_000
    u = make_universe(tmp_path, 4, base=10_000.0)
    bonds = [bond_dict("p1-a", u.ids[0], provider="p1", maturity=3.0),
             bond_dict("p1-b", u.ids[1], provider="p1", maturity=3.0),
             bond_dict("p2", u.ids[2], provider="p2", maturity=3.0)]
    doc = config_dict(u, bonds, interventions=[intervention_dict(ramp_years=1.0)],
                      providers=[{"id": "p1", "failure_hazard": h},
                                 {"id": "p2", "failure_hazard": h}], scenarios=n, seed=31)
    ds = simulate(parse(doc))
    frac = ds.true_units.values / 100.0
    np.testing.assert_array_equal(frac[:, 0], frac[:, 1])  # one LIOA fails at once
    p_fail = 1.0 - math.exp(-h)
    for b in (0, 2):
        failed = frac[:, b] < 1.0
        assert abs(failed.mean() - p_fail) < SIGMAS * math.sqrt(p_fail * (1 - p_fail) / n)
        se = frac[:, b].std(ddof=1) / math.sqrt(n)
        assert abs(frac[:, b].mean() - p_fail / h) < SIGMAS * se
    # the two providers fail independently: correlation within 5 / sqrt(n)
    assert abs(np.corrcoef(frac[:, 0], frac[:, 2])[0, 1]) < SIGMAS / math.sqrt(n)


# ---------------------------------------------------------------------------
# 11. Ramp and relapse in a noiseless world
# ---------------------------------------------------------------------------
def test_ramp_and_relapse_follow_the_design_formula(tmp_path):
    # Reference: docs/model.md section 5.4, E(t) = sum_{s <= t} d(s) (1 - lambda)^(t - s)
    # with cumulative delivery target x theta x ramp(t). theta = 1, a 2-year
    # linear ramp (d(1) = d(2) = 50 of a 100 target), lambda = 0.2, no noise,
    # no failure: E(1) = 50, E(2) = 90, E(3) = 72, E(4) = 57.6; measured = true
    # = paid at maturity, and DEPT saves 10 per unit-year on E(t) each year.
    # Rounding only: 1e-12 relative.
    u = make_universe(tmp_path, 3, base=10_000.0)
    doc = config_dict(u, [bond_dict("b", u.ids[0], maturity=4.0)],
                      interventions=[intervention_dict(ramp_years=2.0, relapse=0.2)],
                      savings=[{"department": "DEPT", "amount": 10.0,
                                "basis": "per_unit_year"}], scenarios=50)
    ds = simulate(parse(doc)).sel(bond="b")
    effect = [50.0, 50.0 * 0.8 + 50.0, (50.0 * 0.8 + 50.0) * 0.8, (50.0 * 0.8 + 50.0) * 0.64]
    for name in ("true_units", "measured_units", "paid_units"):
        np.testing.assert_allclose(ds[name].values, effect[-1], rtol=1e-12)
    np.testing.assert_allclose(ds.investor_payment.values, 57.6 * 2340.0, rtol=1e-12)
    saving = ds.department_saving.sel(department="DEPT").values
    np.testing.assert_allclose(saving, np.tile(np.array(effect) * 10.0, (50, 1)), rtol=1e-12)


# ---------------------------------------------------------------------------
# 10. Signal to noise is measured under no effect
# ---------------------------------------------------------------------------
def test_signal_to_noise_is_measured_under_no_effect(tmp_path):
    # Reference: docs/model.md section 6.10 (every summary reports per bond the
    # signal-to-noise ratio, target over the sd of the units measured with no effect).
    # With common random numbers (same world and seed, theta = 0 instead of a
    # Beta prior) the no-effect run measures exactly the first run's
    # prediction_error, so the summary's ratio must equal target / sd of it.
    u = make_universe(tmp_path, 4, base=50_000.0)
    process = {**ZERO_PROCESS, "area_phi": 0.6, "area_sigma": 0.01, "measurement_sigma": 0.005}
    bond = bond_dict("b", u.ids[0], target=2000.0, donors=3)

    def run(mean: float, sd: float) -> xr.Dataset:
        doc = config_dict(u, [bond], process=process, scenarios=4000, seed=8,
                          interventions=[intervention_dict(mean=mean, sd=sd)])
        return simulate(parse(doc))

    with_effect, no_effect = run(0.5, 0.3), run(0.0, 0.0)
    np.testing.assert_array_equal(with_effect.prediction_error.values,
                                  no_effect.measured_units.values)
    noise_sd = float(no_effect.measured_units.sel(bond="b").std("scenario"))
    effect_sd = float(with_effect.measured_units.sel(bond="b").std("scenario"))
    assert effect_sd > 1.2 * noise_sd  # the programme's own variation is material
    got = float(summarize(with_effect).signal_to_noise.sel(bond="b"))
    assert got == pytest.approx(2000.0 / noise_sd, rel=1e-12)
