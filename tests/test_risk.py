"""Tail risk: the tail measure, Euler contributions and importance sampling.

References: expected shortfall of a discrete sample with the fractional
boundary scenario (Acerbi and Tasche 2002); Euler allocation, whose
contributions add up to the total and never exceed the stand-alone risk
(Tasche 1999, 2008); mean-shift importance sampling of the copula factors
(Glasserman and Li 2005) with the cross-entropy shift (Rubinstein and Kroese
2004). Monte Carlo comparisons use 5-sigma tolerances.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lobsim import simulate
from lobsim.analysis.risk import (
    cross_entropy_tilt,
    format_contributions,
    risk_contributions,
    tail_estimate,
    tail_measure,
)
from lobsim.cli.commands import main
from toml_doc import dumps
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

SIGMAS = 5.0


def test_tail_measure_by_hand():
    # Acerbi and Tasche (2002): ES_a = (1 / (n (1 - a))) (sum of the losses
    # above VaR + VaR x the fraction of the boundary scenario in the tail).
    loss = np.random.default_rng(0).permutation(np.arange(1.0, 101.0))
    # tail mass 5: the five largest; VaR is the 95th smallest (5 losses above it)
    est = tail_estimate(loss, 0.95)
    assert (est.var, est.es) == (95.0, 98.0)
    est = tail_estimate(loss, 0.955)  # tail mass 4.5: 97..100 and half of 96
    assert est.var == 96.0
    assert est.es == pytest.approx((97 + 98 + 99 + 100 + 0.5 * 96) / 4.5, rel=1e-15)
    # ties at the VaR share the boundary fraction
    tied = np.r_[np.zeros(90), np.full(10, 10.0)]
    var, q = tail_measure(tied, 0.95)
    assert var == 10.0 and q.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(q[90:], 0.1)


def test_weighted_tail_equals_the_replicated_sample():
    # An importance-sampling sample represents a distribution with weights:
    # values v_j, each once, with weight k p_j (mean weight 1), have the same
    # VaR and ES as a plain sample holding v_j in proportion p_j.
    rng = np.random.default_rng(1)
    values = rng.normal(size=40) * 10
    counts = rng.integers(1, 50, size=40)
    p = counts / counts.sum()
    weighted = tail_estimate(values, 0.97, np.log(40 * p))
    plain = tail_estimate(np.repeat(values, counts), 0.97)
    assert weighted.var == plain.var
    assert weighted.es == pytest.approx(plain.es, rel=1e-12)


@pytest.fixture(scope="module")
def factor_doc(tmp_path_factory):
    """Twenty bonds, two evidence types, copula-driven losses (no area noise).

    theta ~ Beta(0.8, 0.2) per bond, with rho_type 0.4 and rho_global 0.3:
    the basket's loss tail is a bad draw of the global and type factors.
    Bonds in two regions, four providers, two payer departments.
    """
    u = make_universe(tmp_path_factory.mktemp("factor"), 44,
                      regions=["north"] * 22 + ["south"] * 22)
    bonds = [bond_dict(f"b{i:02d}", f"a{2 * i:03d}", intervention=("ta", "tb")[i % 2],
                       provider=f"p{i % 4}", target=50.0 + 5 * i,
                       payers=[{"agency": "AG", "share": 0.6},
                               {"agency": "AH", "share": 0.4}])
             for i in range(20)]
    doc = config_dict(u, bonds, departments=("D1", "D2"), agencies={"AG": "D1", "AH": "D2"},
                      providers=[{"id": f"p{j}", "failure_hazard": 0.0} for j in range(4)],
                      interventions=[intervention_dict(t, mean=0.8, sd=0.2, rho_type=0.4,
                                                       rho_global=0.3) for t in ("ta", "tb")],
                      block_size=2048)
    return doc


@pytest.fixture(scope="module")
def factor_world(factor_doc):
    return parse(factor_doc)


def test_contributions_sum_to_the_totals_exactly(factor_world):
    # Euler allocation (Tasche 1999) with one tail measure for every bond:
    # contributions add up to the basket's ES and VaR, in every grouping, up
    # to floating-point rounding; and each ES contribution is at most the
    # bond's stand-alone ES (the basket's tail measure is one of those the
    # stand-alone ES maximises over; Tasche 2008).
    plain = simulate(factor_world, scenarios=4096, seed=3)
    tilted = simulate(factor_world, scenarios=4096, seed=3, tilt_global=-1.0,
                      tilt_types={"ta": -0.5})
    for ds in (plain, tilted):
        for level in (0.9, 0.99, 0.995):
            c = risk_contributions(ds, "all", level)
            es, var = float(c.expected_shortfall), float(c.value_at_risk)
            assert es > 0 and var > 0
            assert math.fsum(c.es_contribution.values) == pytest.approx(es, rel=1e-12, abs=0)
            assert math.fsum(c.var_contribution.values) == pytest.approx(var, rel=1e-12, abs=0)
            for group in ("provider", "intervention", "region", "department"):
                assert math.fsum(c[f"es_by_{group}"].values) == pytest.approx(es, rel=1e-12)
                assert math.fsum(c[f"var_by_{group}"].values) == pytest.approx(var, rel=1e-12)
            assert np.all(c.es_contribution.values <= c.standalone_es.values * (1 + 1e-12))
            assert float(c.diversification_benefit) > 0
    # departments split each bond by its payers' shares (0.6 / 0.4 here)
    np.testing.assert_allclose(c.es_by_department.values,
                               [0.6 * es, 0.4 * es], rtol=1e-12)
    assert "diversification benefit" in format_contributions(c)


def test_importance_sampling_matches_plain_sampling_with_less_variance(factor_world):
    # The cross-entropy shift of the copula factors (Glasserman and Li 2005,
    # first step; Rubinstein and Kroese 2004) must give the same 99.5% ES as
    # plain sampling within error, with a smaller standard error at the same
    # number of scenarios. Replications are the scenario blocks (2,048 each,
    # independent streams by block index), so the variance of each estimator
    # is measured directly, not taken from a formula.
    level, reps, size = 0.995, 24, 2048
    tilt = cross_entropy_tilt(factor_world, "all", level, pilot_scenarios=4096, seed=5)
    assert tilt.global_shift < 0 and all(v < 0 for v in tilt.type_shifts.values())
    plain = simulate(factor_world, scenarios=reps * size, seed=101)
    tilted = simulate(factor_world, scenarios=reps * size, seed=202, **tilt.kwargs())

    def per_block(ds):
        loss = float(ds.basket_principal[0]) - ds.basket_payment.values[:, 0]
        lw = ds.log_weight.values
        ests = [tail_estimate(loss[i * size:(i + 1) * size], level,
                              lw[i * size:(i + 1) * size]) for i in range(reps)]
        return np.array([e.es for e in ests]), np.array([e.es_se for e in ests])

    es_p, se_p = per_block(plain)
    es_t, se_t = per_block(tilted)
    # smaller variance at equal cost: the variance ratio of 24 replications
    # is F(23, 23)-distributed around the true ratio (about 300 here); 20 is
    # an order of magnitude at least, and F(23, 23) falls below 20/300 with
    # probability far under 1e-6
    ratio = es_p.var(ddof=1) / es_t.var(ddof=1)
    assert ratio > 20.0, ratio
    # the reported standard errors track the measured spread (the plain one is
    # optimistic with only ~10 tail scenarios per replication)
    assert 0.5 < se_t.mean() / es_t.std(ddof=1) < 2.0
    assert 0.5 < se_p.mean() / es_p.std(ddof=1) < 2.0
    # same answer: the whole samples agree within 5 sigma of their errors
    p = tail_estimate(float(plain.basket_principal[0]) - plain.basket_payment.values[:, 0],
                      level)
    t = tail_estimate(float(tilted.basket_principal[0]) - tilted.basket_payment.values[:, 0],
                      level, tilted.log_weight.values)
    assert abs(t.es - p.es) < SIGMAS * math.hypot(p.es_se, t.es_se), (t, p)
    assert t.es_se < p.es_se / 4


def test_cli_run_with_importance_sampling_and_contributions(factor_doc, tmp_path, capsys):
    path = tmp_path / "factor.toml"
    path.write_text(dumps(factor_doc), encoding="utf-8")
    assert main(["run", str(path), "--scenarios", "4096", "--importance-sampling",
                 "--pilot-scenarios", "2048", "--contributions"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("Tail of basket losses by importance sampling"):]
    row = next(line for line in table.splitlines() if line.startswith("all ")
               and "0.995" in line)
    assert float(row.split()[-1].rstrip("x")) > 3.0  # the measured variance reduction
    assert "Risk contributions to basket all at 0.99" in out
    assert main(["run", str(path), "--scenarios", "64", "--importance-sampling",
                 "--tail-basket", "nope"]) == 2
    assert "no basket 'nope'" in capsys.readouterr().err
