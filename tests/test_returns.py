"""The two IRR conventions (lobsim.analysis.returns) and the summary's labels (issue 17)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate, summarize
from lobsim.analysis.pricing import solve_loading
from lobsim.analysis.returns import expected_flows_irr, flows_irr, single_payment_irr
from lobsim.cli.commands import main
from lobsim.model import tax
from lobsim.scale.runner import run

ROOT = Path(__file__).resolve().parents[1]
BHAM = ROOT / "configs" / "birmingham_jsa.toml"
DEMO = ROOT / "configs" / "basket_demo.toml"
N = 4000


@pytest.fixture(scope="module")
def bham():
    return simulate(load_config(BHAM), scenarios=N)


def test_closed_form_is_the_solver_on_a_single_payment_bond(bham):
    # one payment at maturity T: the IRR of E[flows] is E[multiple]^(1/T) - 1 exactly
    s = summarize(bham)
    paid_in, received = tax.instrument_flows(bham, "bond", "bham-jsa")
    solved = flows_irr(bham.time.values, received.mean(axis=0) - paid_in)
    closed = float(single_payment_irr(float(s.mean_multiple[0]), 4.0))
    assert solved == pytest.approx(closed, abs=1e-12)
    assert float(s.irr_expected_flows[0]) == pytest.approx(closed, abs=1e-12)
    # a single-bond basket has the same cash flows
    assert float(s.basket_irr_expected_flows[0]) == pytest.approx(closed, abs=1e-12)
    # and the check is not vacuous: E[IRR] is far below it
    assert float(s.mean_irr[0]) < closed - 0.05


def test_appendix_bond_has_both_conventions(bham):
    # Issue 17's figures for the report's Appendix bond (configs/birmingham_jsa.toml):
    # E[IRR] about -15.6%, E[multiple] 0.79, IRR of expected flows 0.79^(1/4) - 1 = -5.7%
    # ("about -5.8%"). Tolerances are about 3 Monte Carlo standard errors at 4,000
    # scenarios (sd of the IRR about 0.35, of the multiple about 0.4).
    s = summarize(bham)
    assert float(s.mean_multiple[0]) == pytest.approx(0.79, abs=0.02)
    assert float(s.mean_irr[0]) == pytest.approx(-0.156, abs=0.017)
    assert float(s.irr_expected_flows[0]) == pytest.approx(0.79 ** 0.25 - 1, abs=0.006)


def test_expected_flows_irr_and_its_delta_method_error():
    # Reference: for flows (-P at 0, M_i at T), r = (mean M / P)^(1/T) - 1 and the
    # delta method gives se(r) = sd(M) (1 + r) / (T mean(M) sqrt(n)).
    rng = np.random.default_rng(3)
    n, t_mat, principal = 5000, 3.0, 100.0
    paid = rng.gamma(4.0, 25.0, n)
    times = np.array([0.0, 1.0, t_mat])
    received = np.zeros((n, 3))
    received[:, 2] = paid
    r, se = expected_flows_irr(times, np.array([principal, 0.0, 0.0]), received)
    assert r == pytest.approx((paid.mean() / principal) ** (1 / t_mat) - 1, abs=1e-12)
    exact_se = paid.std(ddof=1) * (1 + r) / (t_mat * paid.mean() * math.sqrt(n))
    assert se == pytest.approx(exact_se, rel=1e-9)
    # two payment dates: the solver's root zeroes the NPV of the mean flows
    received[:, 1] = 0.3 * paid
    r2, _ = expected_flows_irr(times, np.array([principal, 0.0, 0.0]), received)
    mean = received.mean(axis=0)
    assert -principal + mean[1] / (1 + r2) + mean[2] / (1 + r2) ** t_mat == pytest.approx(
        0.0, abs=1e-9)
    assert flows_irr(times, np.array([-1.0, 0.0, 0.0])) == -1.0


def test_every_summary_variable_has_units_and_a_long_name(tmp_path):
    cfg = load_config(DEMO)  # baskets, tranches and investor classes
    ds = simulate(cfg, scenarios=600, seed=5)
    for s in (summarize(ds), run(cfg, scenarios=600, seed=5, stream=True)):
        missing = [name for name, v in s.data_vars.items()
                   if not v.attrs.get("units") or not v.attrs.get("long_name")]
        assert missing == [], missing
        assert {"tranche", "holding"} <= set(s.dims)
        assert s.expected_loss.attrs["units"] == "GBP"
        assert s.mean_irr.attrs["units"] == "1/year"
        assert "mean of scenarios" in s.mean_irr.attrs["long_name"]
        assert s.basket_loss_es_se.attrs["long_name"].startswith("Monte Carlo standard error")
    s = summarize(ds)
    assert "IRR of E[flows]" in s.irr_expected_flows.attrs["long_name"]
    # bonds paying at several dates: the IRR of the mean flows of lobsim.model.tax
    dated = sorted(set(ds.payment_bond.values.tolist()))
    assert dated
    for b in dated:
        paid_in, received = tax.instrument_flows(ds, "bond", b)
        expected = flows_irr(ds.time.values, received.mean(axis=0) - paid_in)
        assert float(s.irr_expected_flows.sel(bond=b)) == pytest.approx(expected, abs=1e-12), b


def test_price_solves_against_the_chosen_convention(capsys):
    cfg = load_config(BHAM)
    mean = solve_loading(cfg, target_irr=0.0, scenarios=2000)
    flows = solve_loading(cfg, target_irr=0.0, scenarios=2000, irr_convention="expected-flows")
    assert mean.irr_convention == "mean" and flows.irr_convention == "expected-flows"
    assert abs(flows.achieved) < 1e-6
    # IRR of E[flows] = 0 is E[multiple] = 1 for one payment: check on a fresh run at
    # the solved loading (same seed and scenarios: the same draws)
    from lobsim.analysis.pricing import with_loading

    at = simulate(with_loading(cfg, {"bham-jsa"}, flows.value), scenarios=2000)
    assert float(at.multiple.mean()) == pytest.approx(1.0, abs=1e-6)
    # the mean of scenario IRRs needs a much larger loading to reach 0
    assert mean.value > flows.value + 5 * (mean.value_se + flows.value_se)
    assert main(["price", str(BHAM), "--target-irr", "0", "--scenarios", "2000",
                 "--irr-convention", "expected-flows"]) == 0
    out = capsys.readouterr().out
    assert "target IRR of E[flows] = 0.000%" in out and "IRR convention: expected-flows" in out


def test_tranche_premiums_take_the_mean_convention_only(capsys):
    assert main(["price", str(DEMO), "--basket", "north", "--tranche", "senior=0.02",
                 "--irr-convention", "expected-flows", "--scenarios", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--irr-convention expected-flows" in err[0]
