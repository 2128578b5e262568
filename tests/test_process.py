"""The AR(1) algebra of lobsim.model.process against closed forms and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim.model.process import (
    ar1_period_parameters,
    ar1_year_parameters,
    conditional_mean,
    kstep_covariance,
    kstep_variance,
    simulate_ar1,
    stationary_sd,
)

PHI = st.floats(0.0, 1.0)
# kstep_variance loses digits as phi -> 1 (see its docstring): below 0.999, or a walk
PHI_K = st.one_of(st.floats(0.0, 0.999), st.just(1.0))
SIGMA = st.floats(0.0, 2.0)
PERIODS = st.sampled_from([1, 2, 4, 12, 52])


@given(phi=PHI, sigma=SIGMA, n=PERIODS)
def test_period_parameters_compound_to_the_year(phi, sigma, n):
    # n steps of the per-period process are one step of the yearly one
    phi_p, sigma_p = ar1_period_parameters(phi, sigma, n)
    assert phi_p**n == pytest.approx(phi, rel=1e-12, abs=1e-15)
    var = sigma_p**2 * sum(phi_p ** (2 * k) for k in range(n))
    assert var == pytest.approx(sigma**2, rel=1e-9, abs=1e-15)
    back = ar1_year_parameters(phi_p, sigma_p, n)
    assert back[0] == pytest.approx(phi, rel=1e-9, abs=1e-12)
    assert back[1] == pytest.approx(sigma, rel=1e-9, abs=1e-12)


@given(phi=st.floats(0.0, 0.999), k=st.integers(0, 60))
def test_kstep_variance_is_the_sum_of_decayed_shocks(phi, k):
    assert kstep_variance(phi, k) == pytest.approx(
        math.fsum(phi ** (2 * j) for j in range(k)), rel=1e-9, abs=1e-15)


@given(phi=PHI_K, j=st.floats(0.0, 10.0), k=st.floats(0.0, 10.0))
def test_kstep_variance_composes_over_two_intervals(phi, j, k):
    # Var[S_{j+k}] = phi^(2k) Var[S_j] + Var[S_k]: the Markov property
    assert kstep_variance(phi, j + k) == pytest.approx(
        phi ** (2 * k) * kstep_variance(phi, j) + kstep_variance(phi, k), rel=1e-9, abs=1e-12)


def test_closed_forms_at_the_ends():
    assert kstep_variance(1.0, 2.5) == 2.5  # a random walk: variance grows with time
    assert kstep_variance(0.0, 3.0) == 1.0  # white noise: one shock
    assert stationary_sd(1.0, 0.3) == 0.0
    assert stationary_sd(0.6, 0.4) == pytest.approx(0.5, rel=1e-15)
    assert ar1_period_parameters(1.0, 0.12, 12) == (1.0, 0.12 / math.sqrt(12))
    assert ar1_year_parameters(0.0, 0.02, 12) == (0.0, 0.02)
    assert conditional_mean(0.5, 2.0, 4.0) == 1.0
    assert kstep_covariance(0.5, 2.0, 3.0, 1.0) == pytest.approx(0.25 * 4.0 * 1.0)


@given(phi=st.floats(0.0, 0.99), sigma=st.floats(0.01, 2.0))
def test_stationary_sd_is_the_limit_of_the_kstep_sd(phi, sigma):
    assert sigma * math.sqrt(kstep_variance(phi, 5_000.0)) == pytest.approx(
        stationary_sd(phi, sigma), rel=1e-9)


@pytest.mark.parametrize(("bad", "needle"), [((1.5, 0.1, 12), "phi must lie in"),
                                              ((0.5, -0.1, 12), "sigma must be >= 0"),
                                              ((0.5, 0.1, 0), "periods_per_year")])
def test_bad_parameters_are_refused(bad, needle):
    with pytest.raises(ValueError, match=needle):
        ar1_period_parameters(*bad)
    with pytest.raises(ValueError, match=needle.replace("phi", "phi_p").replace(
            "sigma", "sigma_p")):
        ar1_year_parameters(*bad)


@settings(max_examples=25, deadline=None)
@given(phi=PHI, sigma=st.floats(0.05, 1.0), k=st.integers(1, 24),
       j=st.integers(0, 24), start=st.floats(-2.0, 2.0), seed=st.integers(0, 2**32 - 1))
def test_a_simulation_has_the_closed_form_moments(phi, sigma, k, j, start, seed):
    # 40,000 paths stepped period by period: mean, variance and covariance at
    # steps j <= k within 5 standard errors of the closed forms
    j = min(j, k)
    n = 40_000
    rng = np.random.default_rng(seed)
    paths = simulate_ar1(phi, sigma, np.full(n, start), rng.standard_normal((k, n)))
    s_k = paths[k - 1]
    var = sigma**2 * kstep_variance(phi, k)
    assert abs(s_k.mean() - conditional_mean(phi, k, start)) <= 5 * math.sqrt(var / n)
    # the sample variance of a normal has sd var sqrt(2 / n)
    assert abs(s_k.var() - var) <= 5 * var * math.sqrt(2.0 / n)
    if j > 0:
        s_j = paths[j - 1]
        cov = kstep_covariance(phi, sigma, j, k)
        sd = math.sqrt((s_j.var() * s_k.var() + cov**2) / n)
        assert abs(np.cov(s_j, s_k)[0, 1] - cov) <= 5 * sd + 1e-12


def test_monthly_steps_reproduce_the_yearly_transition():
    # 12 monthly steps of converted parameters: the yearly k-step moments
    phi, sigma, years = 0.85, 0.3, 3
    phi_m, sigma_m = ar1_period_parameters(phi, sigma, 12)
    n = 100_000
    rng = np.random.default_rng(7)
    end = simulate_ar1(phi_m, sigma_m, np.ones(n), rng.standard_normal((12 * years, n)))[-1]
    var = sigma**2 * kstep_variance(phi, years)
    assert abs(end.mean() - conditional_mean(phi, years, 1.0)) <= 5 * math.sqrt(var / n)
    assert abs(end.var() - var) <= 5 * var * math.sqrt(2.0 / n)
