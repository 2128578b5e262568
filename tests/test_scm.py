"""Tests for the classic synthetic control with predictors, ``lobsim.validation.scm``.

References
----------
- Abadie and Gardeazabal (2003), "The Economic Costs of Conflict: A Case Study
  of the Basque Country", AER 93(1): synthetic Basque Country = Cataluna
  0.851 + Madrid 0.149, with the predictor specification reproduced in the
  documented Basque example of the R package Synth (Abadie, Diamond and
  Hainmueller 2011, "Synth: An R Package for Synthetic Control Methods in
  Comparative Case Studies", J. Stat. Softw. 42(13), section 3).
- Abadie, Diamond and Hainmueller (2015), "Comparative Politics and the
  Synthetic Control Method", AJPS 59(2): West Germany; Table 1 (predictor
  means), Table 2 (synthetic control weights: Austria 0.42, USA 0.22, Japan
  0.16, Switzerland 0.11, Netherlands 0.09), cross-validated predictor
  weights (section "Estimation" and the replication code: V chosen with
  1971-1980 predictors and a 1981-1990 validation period, W refitted on
  1981-1990 predictors).
- Kloessner, Kaul, Pfeifer and Schieler (2018), Swiss J. Econ. Stat. 154:11:
  the cross-validated V is not unique.

Data: tests/data/scm (see its README), as distributed with pysyncon (MIT).

Findings pinned here (details in docs/scm.md):

- Basque: the published weights are the local optimum that Synth's own
  procedure (local searches from equal weights and from the regression-based
  start) reaches, and we reproduce it with that procedure.  It is not the
  global optimum of the nested problem: the outcome-only simplex fit
  (Baleares, Madrid, Rioja) is reachable by some V, so it is the certified
  global optimum, with pre-period RMSPE 0.0642 against 0.0942.
- West Germany: the cross-validated fit reproduces the published weights, with
  a main-period RMSPE no larger than that of the published weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from lobsim.model.synthetic_control import fit_synthetic_control
from lobsim.validation._scm_nested import NestedProblem
from lobsim.validation.predictor_panel import PredictorPanel
from lobsim.validation.scm import (
    ClassicSyntheticControl,
    fit_cross_validated,
    fit_predictor_weights,
    placebo_in_space,
)

DATA = Path(__file__).parent / "data" / "scm"
WEIGHT_TOL = 0.03  # the tolerance the issue asks for, absolute, per donor

# --------------------------------------------------------------------------
# Basque Country (Abadie and Gardeazabal 2003)
# --------------------------------------------------------------------------

BASQUE = "Basque Country (Pais Vasco)"
BASQUE_PUBLISHED = {"Cataluna": 0.851, "Madrid (Comunidad De)": 0.149}
_SIX = range(1964, 1970)
_ODD = range(1961, 1970, 2)
BASQUE_SPECS: list[tuple[str, range | list[int]]] = [
    *[
        (v, _SIX)
        for v in (
            "school.illit",
            "school.prim",
            "school.med",
            "school.high",
            "school.post.high",
            "invest",
        )
    ],
    ("gdpcap", range(1960, 1970)),
    *[
        (v, _ODD)
        for v in (
            "sec.agriculture",
            "sec.energy",
            "sec.industry",
            "sec.construction",
            "sec.services.venta",
            "sec.services.nonventa",
        )
    ],
    ("popdens", [1969]),
]


@pytest.fixture(scope="module")
def basque() -> dict:
    panel = PredictorPanel.from_csv(DATA / "basque.csv", unit="regionname", time="year")
    donors = [u for u in panel.units if u not in (BASQUE, "Spain (Espana)")]
    arrays = panel.design(BASQUE, donors, BASQUE_SPECS, "gdpcap", range(1960, 1970))
    names = {"predictor_names": [s[0] for s in BASQUE_SPECS], "donor_names": donors}
    return {"arrays": arrays, "donors": donors, "names": names}


@pytest.fixture(scope="module")
def basque_global(basque: dict) -> ClassicSyntheticControl:
    return fit_predictor_weights(*basque["arrays"], **basque["names"])


@pytest.fixture(scope="module")
def basque_synth_procedure(basque: dict) -> ClassicSyntheticControl:
    """Synth's own procedure: local searches from its two starts only."""
    return fit_predictor_weights(
        *basque["arrays"],
        starts=("equal", "regression"),
        n_random=0,
        certify=False,
        **basque["names"],
    )


def _published_rmspe(arrays: tuple, donors: list[str], published: dict[str, float]) -> float:
    _, _, z1, z0 = arrays
    w = np.array([published.get(d, 0.0) for d in donors])
    return math.sqrt(float(np.mean((z1 - z0 @ w) ** 2)))


def _assert_weights(fit: ClassicSyntheticControl, published: dict[str, float]) -> None:
    got = dict(zip(fit.donor_names, fit.weights, strict=True))
    assert set(published) <= set(got)
    for donor, w in got.items():
        assert abs(w - published.get(donor, 0.0)) <= WEIGHT_TOL, (donor, w, fit.weights_by_donor())


def test_basque_published_weights_from_synths_procedure(basque, basque_synth_procedure):
    fit = basque_synth_procedure
    _assert_weights(fit, BASQUE_PUBLISHED)
    theirs = _published_rmspe(basque["arrays"], basque["donors"], BASQUE_PUBLISHED)
    # Published weights (3 decimals): RMSPE 0.094152; ours 0.094152.
    assert fit.rmspe <= theirs * (1 + 1e-4), (fit.rmspe, theirs)
    # ... and it is only a local optimum: the bound is not attained.
    assert not fit.certified
    assert fit.mspe > 2.0 * fit.mspe_lower_bound


def _outcome_only_simplex_fit(z1: np.ndarray, z0: np.ndarray) -> np.ndarray:
    """min |z1 - z0 w|^2 over the simplex, by SLSQP (independent of the kernel)."""
    j = z0.shape[1]
    res = minimize(
        lambda w: float(np.sum((z1 - z0 @ w) ** 2)),
        np.full(j, 1.0 / j),
        jac=lambda w: -2.0 * z0.T @ (z1 - z0 @ w),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * j,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert res.success, res.message
    return np.asarray(res.x)


def test_basque_global_optimum_is_certified(basque, basque_global, basque_synth_procedure):
    x1, x0, z1, z0 = basque["arrays"]
    fit = basque_global
    assert fit.certified
    w_ref = _outcome_only_simplex_fit(z1, z0)
    mspe_ref = float(np.mean((z1 - z0 @ w_ref) ** 2))
    # No V beats the outcome-only fit; ours attains it, with its weights.
    assert fit.mspe == pytest.approx(mspe_ref, rel=1e-7)
    np.testing.assert_allclose(fit.weights, w_ref, atol=1e-4)
    # The returned v really gives these weights in the inner problem.
    sd = np.std(np.column_stack([x1, x0]), axis=1, ddof=1)
    inner = fit_synthetic_control(x1 / sd, x0 / sd[:, None], fit.v)
    np.testing.assert_allclose(inner.weights, fit.weights, atol=1e-9)
    assert set(fit.weights_by_donor(0.01)) == {
        "Baleares (Islas)",
        "Madrid (Comunidad De)",
        "Rioja (La)",
    }
    # RMSPE 0.0642 against the published 0.0942.
    assert fit.rmspe < 0.7 * basque_synth_procedure.rmspe


def test_basque_multistart_beats_a_single_start(basque, basque_synth_procedure):
    single = fit_predictor_weights(*basque["arrays"], starts=("equal",), n_random=0, certify=False)
    multi = fit_predictor_weights(*basque["arrays"], certify=False)  # 2 named + 50 random
    assert single.mspe == pytest.approx(basque_synth_procedure.mspe, rel=1e-9)
    assert multi.mspe < 0.5 * single.mspe
    assert multi.mspe >= multi.mspe_lower_bound * (1 - 1e-12)


# --------------------------------------------------------------------------
# West Germany (Abadie, Diamond and Hainmueller 2015)
# --------------------------------------------------------------------------

GERMANY_PUBLISHED = {
    "Austria": 0.42,
    "USA": 0.22,
    "Japan": 0.16,
    "Switzerland": 0.11,
    "Netherlands": 0.09,
}


def _germany_specs(first: int, schooling: list[int], invest: str) -> list:
    years = range(first, first + 10)
    return [
        ("gdp", years),
        ("trade", years),
        ("infrate", years),
        ("industry", years),
        ("schooling", schooling),
        (invest, [1980]),
    ]


@pytest.fixture(scope="module")
def germany() -> dict:
    panel = PredictorPanel.from_csv(DATA / "germany.csv", unit="country", time="year")
    donors = [u for u in panel.units if u != "West Germany"]
    training = panel.design(
        "West Germany",
        donors,
        _germany_specs(1971, [1970, 1975], "invest70"),
        "gdp",
        range(1981, 1991),
    )
    main = panel.design(
        "West Germany",
        donors,
        _germany_specs(1981, [1980, 1985], "invest80"),
        "gdp",
        range(1960, 1990),
    )
    names = {
        "predictor_names": ["gdp", "trade", "infrate", "industry", "schooling", "invest"],
        "donor_names": donors,
    }
    train_fit, main_fit = fit_cross_validated(training, main, **names)
    return {
        "training": training,
        "main": main,
        "donors": donors,
        "names": names,
        "train_fit": train_fit,
        "main_fit": main_fit,
    }


def test_germany_predictors_match_table_1(germany):
    # ADH (2015), Table 1, West Germany column (1981-1990 averages; schooling
    # 1980/1985; investment 1980).
    x1 = germany["main"][0]
    np.testing.assert_allclose(np.round(x1, 1), [15808.9, 56.8, 2.6, 34.5, 55.5, 27.0])


def test_germany_cross_validated_weights_match_table_2(germany):
    fit = germany["main_fit"]
    _assert_weights(fit, GERMANY_PUBLISHED)
    theirs = _published_rmspe(germany["main"], germany["donors"], GERMANY_PUBLISHED)
    # 1960-1989 RMSPE: published weights (2 decimals) 122.29; ours 121.43.
    assert fit.rmspe <= theirs * (1 + 1e-3), (fit.rmspe, theirs)
    # The final weights use the training v on the main predictors.
    np.testing.assert_allclose(fit.v, germany["train_fit"].v, rtol=1e-14)
    assert fit.local_optima == ()


def test_germany_training_v_is_canonical(germany):
    """The training optimum fixes W but not v; we return the v closest to equal weights."""
    train = germany["train_fit"]
    raw = fit_predictor_weights(*germany["training"], canonical_v=False, **germany["names"])
    np.testing.assert_allclose(train.weights, raw.weights, atol=1e-8)
    assert train.mspe == pytest.approx(raw.mspe, rel=1e-9)
    equal = np.full(train.v.size, 1.0 / train.v.size)
    assert np.sum((train.v - equal) ** 2) < np.sum((raw.v - equal) ** 2) - 1e-3
    # Five donors for six predictors: a one-dimensional set of optimal v.
    assert np.count_nonzero(train.weights) == 5
    # Independent check that the canonical v gives the same inner weights.
    x1, x0 = germany["training"][:2]
    sd = np.std(np.column_stack([x1, x0]), axis=1, ddof=1)
    inner = fit_synthetic_control(x1 / sd, x0 / sd[:, None], train.v)
    np.testing.assert_allclose(inner.weights, train.weights, atol=1e-9)


def test_balance_table_and_synthetic_predictors(germany):
    fit = germany["main_fit"]
    x0 = germany["main"][1]
    np.testing.assert_allclose(fit.x_synthetic, x0 @ fit.weights, rtol=1e-12)
    np.testing.assert_allclose(fit.x_donor_mean, x0.mean(axis=1), rtol=1e-12)
    table = fit.balance_table()
    assert all(name in table for name in fit.predictor_names)
    assert abs(fit.v.sum() - 1.0) < 1e-12 and abs(fit.weights.sum() - 1.0) < 1e-12


def test_gradient_matches_finite_differences(germany):
    x1, x0, z1, z0 = germany["training"]
    sd = np.std(np.column_stack([x1, x0]), axis=1, ddof=1)
    nested = NestedProblem(x1 / sd, np.ascontiguousarray(x0 / sd[:, None]), z1, z0)
    rng = np.random.default_rng(3)
    for _ in range(5):
        theta = np.log(rng.dirichlet(np.ones(x1.size)))
        _, grad = nested.value_grad(theta)
        h = 1e-6
        num = np.array(
            [
                (nested.value(theta + h * e) - nested.value(theta - h * e)) / (2 * h)
                for e in np.eye(x1.size)
            ]
        )
        np.testing.assert_allclose(grad, num, rtol=1e-4, atol=1e-8 * np.abs(num).max())


# --------------------------------------------------------------------------
# A constructed problem with local optima
# --------------------------------------------------------------------------

# Two predictors, five donors, six fit periods (generated once at random and
# rounded); the outer loss over v = (t, 1 - t) has a local optimum around equal
# weights and the global one near t = 1.
LOCAL_X1 = np.array([0.5, 0.1])
LOCAL_X0 = np.array([[0.3, 1.0, 0.3, 1.6, -2.0], [1.2, 0.2, -0.4, -0.1, -0.3]])
LOCAL_Z1 = np.array([-0.4, -0.4, -0.3, -0.4, -0.4, -0.2])
LOCAL_Z0 = np.array(
    [
        [1.4, 0.4, 1.9, 1.0, -1.0],
        [-0.9, -1.5, 0.5, -0.1, -0.8],
        [-0.1, -0.2, 0.1, 0.3, -0.3],
        [1.0, -0.2, 0.0, -1.0, -1.6],
        [0.5, -1.7, -0.6, -1.2, -0.4],
        [0.3, -0.3, -0.0, 0.2, -0.8],
    ]
)


def test_multistart_finds_the_global_optimum_off_the_equal_weights_plateau():
    args = (LOCAL_X1, LOCAL_X0, LOCAL_Z1, LOCAL_Z0)
    single = fit_predictor_weights(*args, starts=("equal",), n_random=0, certify=False)
    multi = fit_predictor_weights(*args, n_random=10, certify=False)
    # Brute force over v = (t, 1 - t) with the validated inner solver.
    sd = np.std(np.column_stack([LOCAL_X1, LOCAL_X0]), axis=1, ddof=1)
    ts = np.linspace(0.0, 1.0, 10001)
    loss = np.array(
        [
            np.mean(
                (
                    LOCAL_Z1
                    - LOCAL_Z0
                    @ fit_synthetic_control(
                        LOCAL_X1 / sd, LOCAL_X0 / sd[:, None], [t, 1.0 - t]
                    ).weights
                )
                ** 2
            )
            for t in ts
        ]
    )
    assert multi.mspe <= loss.min() * (1 + 1e-9)
    # Equal weights lie on a plateau of the outer loss: for t in [0.4, 0.6] the
    # inner weights do not change (flat to 2e-15 relative, brute force), at 3.4
    # times the global minimum, so a local search from there has no gradient
    # to follow. It usually stops on the plateau; with OpenBLAS's Prescott
    # kernels rounding noise lets Nelder-Mead walk off it to the global optimum.
    # Either is a correct local search, so the test accepts both (relative
    # 1e-6: the searches stop within 1e-9 of an optimum's value).
    near = np.abs(ts - 0.5) <= 0.1
    plateau = loss[near]
    assert plateau.max() - plateau.min() <= 1e-12 * plateau.min()
    assert plateau.min() > 3.0 * multi.mspe
    assert (single.mspe == pytest.approx(plateau.min(), rel=1e-6)
            or single.mspe == pytest.approx(multi.mspe, rel=1e-6)), single.mspe
    assert not multi.certified  # the bound is not attainable here
    assert multi.mspe > 1.5 * multi.mspe_lower_bound


# --------------------------------------------------------------------------
# Placebo inference in space
# --------------------------------------------------------------------------


def _factor_panel(effect: float, seed: int = 0, n: int = 12, t0: int = 15, t1: int = 8):
    """Two-factor panel; unit 0 lies inside the donors' hull; ``effect`` added after t0."""
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.0, 1.0, size=(n, 2))
    mu[0] = mu[1:].mean(axis=0) + rng.normal(scale=0.05, size=2)
    lam = rng.normal(size=(t0 + t1, 2)).cumsum(axis=0) * 0.3
    y = 5.0 + 0.1 * np.arange(t0 + t1)[:, None] + lam @ mu.T
    y += rng.normal(scale=0.05, size=y.shape)
    y[t0:, 0] += effect
    x = np.vstack([mu.T + rng.normal(scale=0.05, size=(2, n)), y[:t0].mean(axis=0)])
    return x, y[:t0], y[t0:]


@pytest.fixture(scope="module")
def placebos():
    options = {"starts": ("equal",), "n_random": 5}
    out = {}
    for effect in (0.0, 3.0):
        x, pre, post = _factor_panel(effect)
        out[effect] = placebo_in_space(x, pre, post, **options)
    return out


def test_placebo_planted_effect_ranks_first(placebos):
    res = placebos[3.0]
    n = len(res.unit_names)
    assert res.rank == 1
    assert res.p_value == pytest.approx(1 / n)
    assert res.ratio[0] > 5.0 * np.delete(res.ratio, 0).max()


def test_placebo_without_effect_is_not_significant(placebos):
    res = placebos[0.0]
    assert res.p_value >= 0.25, res.ratio
    assert res.rank == int(np.sum(res.ratio >= res.ratio[res.treated]))


def test_placebo_donor_pools_exclude_the_treated_unit(placebos):
    with_effect, without = placebos[3.0], placebos[0.0]
    for fit in with_effect.fits:
        assert "u0" not in fit.donor_names
    # The treated unit's post-period outcomes reach no placebo fit.
    np.testing.assert_array_equal(with_effect.ratio[1:], without.ratio[1:])
    # Ratios are post/pre RMSPE of each unit's own fit.
    x, pre, post = _factor_panel(3.0)
    donors = list(range(1, x.shape[1]))
    w = with_effect.fits[0].weights
    pre_rmspe = math.sqrt(np.mean((pre[:, 0] - pre[:, donors] @ w) ** 2))
    post_rmspe = math.sqrt(np.mean((post[:, 0] - post[:, donors] @ w) ** 2))
    assert with_effect.ratio[0] == pytest.approx(post_rmspe / pre_rmspe, rel=1e-12)


# --------------------------------------------------------------------------
# Fixed v, validation and the panel reader
# --------------------------------------------------------------------------


def test_fixed_v_skips_the_search():
    v = np.array([0.3, 0.7])
    fit = fit_predictor_weights(LOCAL_X1, LOCAL_X0, LOCAL_Z1, LOCAL_Z0, v=2.0 * v)
    sd = np.std(np.column_stack([LOCAL_X1, LOCAL_X0]), axis=1, ddof=1)
    ref = fit_synthetic_control(LOCAL_X1 / sd, LOCAL_X0 / sd[:, None], v)
    np.testing.assert_allclose(fit.weights, ref.weights, atol=1e-12)
    np.testing.assert_allclose(fit.v, v, rtol=1e-12)
    assert fit.local_optima == () and not fit.certified


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x1": np.zeros(3)}, "x1 has shape"),
        ({"z0": np.zeros((6, 4))}, "z0 must have shape"),
        ({"v": [1.0, -1.0]}, "v must be"),
        ({"starts": ("equal", "genoud")}, "unknown starts"),
        ({"n_random": -1}, "n_random"),
        ({"z1": np.array([np.nan, 0, 0, 0, 0, 0])}, "NaN"),
        ({"donor_names": ["a"]}, "donor names"),
    ],
)
def test_invalid_input_is_rejected(kwargs, match):
    args = {"x1": LOCAL_X1, "x0": LOCAL_X0, "z1": LOCAL_Z1, "z0": LOCAL_Z0}
    options = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_predictor_weights(args["x1"], args["x0"], args["z1"], args["z0"], **options)


def test_panel_means_skip_missing_years(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "unit,year,y,label\na,2000,1,x\na,2001,,x\nb,2000,2,x\nb,2001,4,x\n", encoding="utf-8"
    )
    panel = PredictorPanel.from_csv(path, unit="unit", time="year")
    assert set(panel.variables) == {"y"}  # the text column is not a variable
    np.testing.assert_allclose(panel.mean("y", [2000, 2001]), [1.0, 3.0])
    with pytest.raises(ValueError, match="no value"):
        panel.mean("y", [2001])
    with pytest.raises(KeyError, match="1999"):
        panel.values("y", [1999, 2000])
