"""The shrinkage payment basis (docs/model.md section 6.12, lobsim.model.shrinkage).

A shrunk bond pays on ``k x measured + (1 - k) x prior``: with k = 1 it is the
point rule bit for bit, with k = 0 it pays the prior whatever happens, and in
a world without measurement noise (sigma = 0, so k = 1) it pays the true
units. The terms fixed at signing (prior, tau, sigma) are closed forms checked
against the simulated distributions they describe.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim import load_config, term_sheet
from lobsim.errors import ConfigError
from lobsim.kernels import engine
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import run_blocks
from lobsim.model.config import Config
from lobsim.model.shrinkage import shrinkage_factor
from lobsim.model.world import build_world
from worlds import ZERO_PROCESS, make_universe, parse

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BHAM = CONFIGS / "birmingham_jsa.toml"
N = 2000
SEED = 11


def _birmingham(*overrides: str) -> Config:
    return load_config(BHAM, overrides=overrides)


def _run(cfg: Config, n: int = N) -> Outputs:
    return run_blocks(build_world(cfg), n, SEED, cfg.simulation.block_size)


def test_k_one_is_the_point_rule_bit_for_bit():
    point = _run(_birmingham())
    shrunk = _run(_birmingham("bonds[0].payment.basis=shrunk", "bonds[0].payment.shrinkage=1"))
    for name in Outputs._fields:
        a, b = getattr(point, name), getattr(shrunk, name)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def test_k_zero_pays_the_prior_whatever_happens():
    # hand-computed: 4,500 units at 2,340 GBP = 10,530,000 GBP in every scenario
    # (below the 5,000-unit cap, threshold 0 reached by any non-negative basis)
    cfg = _birmingham("bonds[0].payment.basis=shrunk", "bonds[0].payment.shrinkage=0",
                      "bonds[0].payment.prior_units=4500")
    out = _run(cfg)
    assert np.unique(out.measured_units).size > N // 2  # the measurement still varies
    assert (out.paid_units == 4500.0).all()
    assert (out.investor_payment == 4500.0 * 2340.0).all()
    assert not out.default.any()
    # the overpayment is what the prior pays beyond the true units
    np.testing.assert_allclose(out.overpayment, np.maximum(4500.0 - out.true_units, 0) * 2340.0,
                               rtol=1e-12)


def test_k_zero_above_the_cap_pays_the_cap():
    cfg = _birmingham("bonds[0].payment.basis=shrunk", "bonds[0].payment.shrinkage=0",
                      "bonds[0].payment.prior_units=7000")
    assert (_run(cfg, 300).paid_units == 5000.0).all()


@pytest.fixture(scope="module")
def noiseless(tmp_path_factory) -> Config:
    """Birmingham with no measurement or area noise and no factors (sigma = 0), but
    an uncertain programme (success sd 0.15, a ramp and relapse) and failures."""
    u = make_universe(tmp_path_factory.mktemp("noiseless"), 6,
                      ids=["Birmingham", "d1", "d2", "d3", "d4", "d5"],
                      base=[50_000.0, 20_000.0, 30_000.0, 40_000.0, 45_000.0, 60_000.0])
    doc = tomllib.loads(BHAM.read_text(encoding="utf-8"))
    doc["universe"] = {"areas": str(u.areas), "period": "year"}
    doc["outcomes"][0].update(history=str(u.history), state=str(u.state),
                              process=dict(ZERO_PROCESS))
    doc["interventions"][0].update(success_mean=0.8, success_sd=0.15, ramp_years=2.0,
                                   relapse_rate=0.05)
    doc["providers"][0]["failure_hazard"] = 0.1
    doc["bonds"][0]["payment"]["basis"] = "shrunk"
    return parse(doc)


def test_a_noiseless_world_pays_the_true_units(noiseless):
    world = build_world(noiseless)
    terms = world.shrinkage[0]
    assert terms is not None
    assert terms.sigma == 0.0 and terms.tau > 0.0 and terms.k == 1.0
    out = run_blocks(world, N, SEED, 4096)
    assert np.ptp(out.true_units) > 1000.0  # the programme's outcome varies
    np.testing.assert_allclose(out.paid_units, np.minimum(out.true_units, 5000.0),
                               rtol=1e-12, atol=1e-9)


def test_prior_and_tau_are_the_moments_of_the_true_units(noiseless):
    # the prior is E[true units] and tau their sd (Beta success x delivered share
    # under exponential failure): 5-sigma Monte Carlo bounds at 40,000 scenarios
    n = 40_000
    world = build_world(noiseless)
    terms = world.shrinkage[0]
    assert terms is not None
    units = run_blocks(world, n, SEED, 4096).true_units[:, 0]
    assert abs(units.mean() - terms.prior[-1]) < 5.0 * units.std() / math.sqrt(n)
    # se of a sample sd: sd sqrt((kurtosis - 1) / (4 n))
    kurt = np.mean((units - units.mean()) ** 4) / units.var() ** 2
    assert abs(units.std() - terms.tau) < 5.0 * units.std() * math.sqrt((kurt - 1) / (4 * n))


def test_prior_without_failure_is_target_x_mean_success_x_delivered_share():
    cfg = _birmingham("bonds[0].payment.basis=shrunk", "providers[0].failure_hazard=0")
    world = build_world(cfg)
    terms = world.shrinkage[0]
    assert terms is not None
    it = cfg.intervention(cfg.bonds[0].intervention)
    share = world.arrays.measurements.full_share[0, 0]
    assert terms.prior[-1] == pytest.approx(5000 * it.success_mean * share, rel=1e-12)
    assert world.arrays.bonds.shrink_k[0] == terms.k == shrinkage_factor(terms.tau, terms.sigma)
    assert world.arrays.measurements.prior[0, 0] == terms.prior[-1]


def test_sigma_is_the_sd_of_the_simulated_prediction_error():
    # the closed form against the sd the signal-to-noise ratio reads; the error is
    # near normal (se of a sample sd ~ sd / sqrt(2 n)): a 5-sigma bound at 40,000
    n = 40_000
    cfg = _birmingham("bonds[0].payment.basis=shrunk")
    world = build_world(cfg)
    terms = world.shrinkage[0]
    assert terms is not None
    err = run_blocks(world, n, SEED, 4096).prediction_error[:, 0]
    kurt = np.mean((err - err.mean()) ** 4) / err.var() ** 2
    assert abs(err.std() - terms.sigma) < 5.0 * err.std() * math.sqrt((kurt - 1) / (4 * n))


def test_percent_bond_sigma_matches_the_simulated_error():
    cfg = load_config(CONFIGS / "basket_demo.toml")
    pct = {o.id for o in cfg.outcomes if o.kind == "percent"}
    bond = next(b for b in cfg.bonds if b.outcome in pct and b.control.weights != "verified")
    cfg = dataclasses.replace(cfg, baskets=(), bonds=(dataclasses.replace(
        bond, payment=dataclasses.replace(bond.payment, basis="shrunk")),))
    n = 40_000
    world = build_world(cfg)
    terms = world.shrinkage[0]
    assert terms is not None and terms.sigma > 0.0
    err = run_blocks(world, n, SEED, 4096).prediction_error[:, 0]
    kurt = np.mean((err - err.mean()) ** 4) / err.var() ** 2
    assert abs(err.std() - terms.sigma) < 5.0 * err.std() * math.sqrt((kurt - 1) / (4 * n))


@pytest.fixture(scope="module")
def shrunk_world():
    return build_world(_birmingham("bonds[0].payment.basis=shrunk", "bonds[0].payment.shrinkage=0.4"))


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-20_000.0, 20_000.0), b=st.floats(-20_000.0, 20_000.0))
def test_paid_units_lie_in_zero_to_cap_and_rise_with_the_measurement(shrunk_world, a, b):
    w = shrunk_world.arrays
    xs = np.zeros(w.series.national.size * w.series.dates.shape[1])
    cap = w.measurements.cap[0, 0]

    def paid(meas: float) -> float:
        basis, reached = engine.shrunk_basis(w.bonds, w.measurements, 0, 0, meas, xs)
        return engine.payment(w.bonds, w.measurements, w.payments, 0, 0, basis, reached, 0.0,
                              0.0, np.zeros(w.payments.group_cap.size))[2]

    lo, hi = sorted((a, b))
    assert 0.0 <= paid(lo) <= paid(hi) <= cap


def test_term_sheet_shows_the_shrinkage_terms():
    sheet = term_sheet(_birmingham("bonds[0].payment.basis=shrunk")).to_dict()
    sh = sheet["bonds"][0]["shrinkage"]
    assert sheet["bonds"][0]["basis"] == "shrunk"
    assert sh["k"] == pytest.approx(sh["tau"] ** 2 / (sh["tau"] ** 2 + sh["sigma"] ** 2))
    assert sh["paid_on_at_target"] == pytest.approx(
        sh["k"] * 5000 + (1 - sh["k"]) * sh["prior_units"])
    assert term_sheet(_birmingham()).bonds[0].shrinkage is None


@pytest.mark.parametrize(("overrides", "message"), [
    (("bonds[0].payment.basis=median",), r"payment\.basis: must be one of 'point', 'shrunk'"),
    (("bonds[0].payment.shrinkage=0.5",), r"payment\.shrinkage: applies only to basis"),
    (("bonds[0].payment.prior_units=10",), r"payment\.prior_units: applies only to basis"),
    (("bonds[0].payment.basis=shrunk", "bonds[0].payment.shrinkage=1.5"),
     r"payment\.shrinkage: must be at most 1"),
    (("bonds[0].payment.basis=shrunk", "bonds[0].payment.prior_units=-1"),
     r"payment\.prior_units: must be at least 0"),
])
def test_bad_basis_fields_are_one_line_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _birmingham(*overrides)


def test_a_fixed_prior_needs_a_single_measurement():
    cfg = load_config(CONFIGS / "basket_demo.toml")
    i = next(i for i, b in enumerate(cfg.bonds) if len(b.payment.measurements) > 1)
    with pytest.raises(ConfigError, match=r"prior_units: fixes the prior of a bond measured once"):
        load_config(CONFIGS / "basket_demo.toml",
                    overrides=(f"bonds[{i}].payment.basis=shrunk",
                               f"bonds[{i}].payment.prior_units=100"))


def test_the_reports_term_sheet_shows_the_basis(tmp_path):
    from lobsim.cli.commands import main

    results = tmp_path / "shrunk.nc"
    assert main(["run", str(BHAM), "--set", "bonds[0].payment.basis=shrunk", "--scenarios",
                 "500", "--quiet", "--out", str(results)]) == 0
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    terms = page[page.index("<h2 id='terms'>"):page.index("<h2 id='set-asides'>")]
    sh = term_sheet(_birmingham("bonds[0].payment.basis=shrunk")).bonds[0].shrinkage
    assert sh is not None
    assert "payment basis (prior, tau, sigma in units)" in terms
    assert (f"shrunk: k = {sh.k:.3f}, prior {sh.prior_units:,.0f}, tau {sh.tau:,.0f}, "
            f"sigma {sh.sigma:,.0f}") in terms


def test_sweep_compares_the_bases_on_common_random_numbers(capsys):
    # a string-valued --set path: each point is the plain run of its config (same seed)
    import json

    from lobsim import simulate
    from lobsim.cli.commands import main

    assert main(["sweep", str(BHAM), "--set", "bonds[0].payment.basis=point,shrunk",
                 "--scenarios", str(N), "--no-plot", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["values"]["bonds[0].payment.basis"] for p in points] == ["point", "shrunk"]
    for p in points:
        basis = p["values"]["bonds[0].payment.basis"]
        ds = simulate(_birmingham(f"bonds[0].payment.basis={basis}"), scenarios=N,
                      seed=p["seed"])
        assert p["bonds"][0]["default_probability"] == float(ds.default.mean())
    assert points[1]["bonds"][0]["default_probability"] < points[0]["bonds"][0][
        "default_probability"]
