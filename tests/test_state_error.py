"""The base state's prediction error (lobsim.validation.state_error).

Reference: the structured PEV is checked against the dense computation on the
whole panel (every area's series jointly, Henderson's formula for the BLUP
with fixed effects: Henderson (1975), Biometrics 31, 423-447), which also
checks that calibrate_at's BLUP is the dense model's; the draws against the
PEV within Monte Carlo error.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lobsim.model.areas import AreaTable, OutcomeData
from lobsim.validation._reml import level_and_trend
from lobsim.validation.calibrate import calibrate_at
from lobsim.validation.state_error import _ar1, _henderson, state_prediction

REGIONS, PER_REGION, T = 4, 3, 14
N = REGIONS * PER_REGION
# per month; all stationary (a random walk's state is not drawn)
PARAMS = {"national_phi": 0.8, "national_sigma": 0.03, "regional_phi": 0.9,
          "regional_sigma": 0.02, "area_phi": 0.7, "area_sigma": 0.03}
NOISE = 0.015


def _panel(seed: int = 3):
    """A small panel drawn from the model itself, with a spread of trends."""
    rng = np.random.default_rng(seed)
    regions = tuple(f"r{i // PER_REGION}" for i in range(N))
    rindex = np.arange(N) // PER_REGION
    tau = level_and_trend(T)[:, 1]

    def path(phi, sigma, n):
        return rng.multivariate_normal(np.zeros(T), _ar1(phi, sigma**2, T), size=n)

    y = (rng.uniform(5, 8, N)[:, None]
         + (0.002 + rng.normal(0, 0.004, REGIONS)[rindex] + rng.normal(0, 0.006, N))[:, None]
         * tau + path(PARAMS["national_phi"], PARAMS["national_sigma"], 1)
         + path(PARAMS["regional_phi"], PARAMS["regional_sigma"], REGIONS)[rindex]
         + path(PARAMS["area_phi"], PARAMS["area_sigma"], N) + rng.normal(0, NOISE, (N, T)))
    table = AreaTable(ids=tuple(f"a{i:02d}" for i in range(N)), regions=regions,
                      covariate_names=("x",), covariates=np.zeros((N, 1)))
    zeros = np.zeros(N)
    data = OutcomeData(periods=tuple(f"2020-{i + 1:02d}" if i < 12 else f"2021-{i - 11:02d}"
                                     for i in range(T)),
                       log_history=y, trend=zeros, log_level=zeros, area_state=zeros,
                       regional_state={}, national_state=0.0)
    return y, rindex, calibrate_at(data, table, 12, PARAMS, NOISE)


def _dense(y, rindex, cal):
    """BLUP and PEV of (F0, G0[r], U0[a], e0[a], mu[a] per period) from the whole panel."""
    ppy = 12
    tau = level_and_trend(T)[:, 1]
    tau_a2, tau_r2 = (cal.trend_sd_area / ppy) ** 2, (cal.trend_sd_region / ppy) ** 2
    s_f = _ar1(PARAMS["national_phi"], PARAMS["national_sigma"] ** 2, T)
    s_g = _ar1(PARAMS["regional_phi"], PARAMS["regional_sigma"] ** 2, T)
    s_u = _ar1(PARAMS["area_phi"], PARAMS["area_sigma"] ** 2, T)
    same = (rindex[:, None] == rindex[None, :]).astype(float)
    tt = np.outer(tau, tau)
    v = (np.kron(np.ones((N, N)), s_f) + np.kron(same, s_g + tau_r2 * tt)
         + np.kron(np.eye(N), s_u + NOISE**2 * np.eye(T) + tau_a2 * tt))
    x = np.column_stack([np.kron(np.eye(N), np.ones((T, 1))), np.tile(tau, N)])
    member = np.eye(REGIONS)[rindex].T  # (R, N)
    last = np.eye(T)[-1]
    c_ss = np.zeros((1 + REGIONS + 3 * N,) * 2)
    c_ss[0, 0] = s_f[-1, -1]
    g, u, e, m = (slice(1, 1 + REGIONS), slice(1 + REGIONS, 1 + REGIONS + N),
                  slice(1 + REGIONS + N, 1 + REGIONS + 2 * N), slice(1 + REGIONS + 2 * N, None))
    c_ss[g, g] = s_g[-1, -1] * np.eye(REGIONS)
    c_ss[u, u] = s_u[-1, -1] * np.eye(N)
    c_ss[e, e] = NOISE**2 * np.eye(N)
    c_ss[m, m] = tau_r2 * same + tau_a2 * np.eye(N)
    c_sy = np.vstack([np.tile(s_f[-1], N)[None], np.kron(member, s_g[-1]),
                      np.kron(np.eye(N), s_u[-1]), np.kron(np.eye(N), NOISE**2 * last),
                      np.kron(tau_r2 * same + tau_a2 * np.eye(N), tau)])
    lmat = np.zeros((c_ss.shape[0], N + 1))
    lmat[m, -1] = 1.0
    vec = y.ravel()
    v_inv_x = np.linalg.solve(v, x)
    b = np.linalg.solve(x.T @ v_inv_x, v_inv_x.T @ vec)
    blup = c_sy @ np.linalg.solve(v, vec - x @ b) + lmat @ b
    return blup, _henderson(c_ss, c_sy, v, x, lmat)


def _structured_cov(sp):
    """The PEV of (F0, G0, U0, e0, mu per period) implied by state_prediction's blocks."""
    n_r, r = REGIONS, sp.rindex
    a_b = np.zeros((1 + n_r + 3 * N, 1 + 4 * n_r))
    a_b[0, 0] = 1.0
    a_b[1:1 + n_r, 1:1 + n_r] = np.eye(n_r)
    for k in range(3):  # U0, e0, mu of each area: its region's part
        a_b[1 + n_r + k * N + np.arange(N), 1 + (k + 1) * n_r + r] = 1.0
    cov = a_b @ sp.between @ a_b.T
    centre = np.eye(N) - (r[:, None] == r[None, :]) / PER_REGION
    for i in range(3):
        for j in range(3):
            cov[1 + n_r + i * N:1 + n_r + (i + 1) * N,
                1 + n_r + j * N:1 + n_r + (j + 1) * N] += sp.within[i, j] * centre
    return cov


def test_blup_and_prediction_covariance_match_the_dense_model():
    y, rindex, cal = _panel()
    assert cal.trend_sd_area > 0 and cal.trend_sd_region > 0  # the trend terms are exercised
    blup, pev = _dense(y, rindex, cal)
    ours = np.concatenate([[cal.national_state], [cal.regional_state[f"r{i}"]
                                                   for i in range(REGIONS)],
                           cal.area_state, y[:, -1] - cal.log_level + 0.5 * NOISE**2,
                           cal.trend / 12])
    np.testing.assert_allclose(ours, blup, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_structured_cov(state_prediction(cal)), pev, rtol=0,
                               atol=1e-9 * np.abs(pev).max())


def test_draws_have_the_prediction_covariance():
    _, _, cal = _panel()
    sp = state_prediction(cal)
    gen = np.random.default_rng(11)
    n = 4000
    draws = []
    for _ in range(n):
        d = sp.draw(gen)
        draws.append(np.concatenate([[d.national_state], list(d.regional_state.values()),
                                     d.area_state, -d.log_level, d.trend / 12]))
    x = np.array(draws)
    cov = _structured_cov(sp)
    sd = np.sqrt(np.diag(cov))
    # means: 0 within 4.5 se (every coordinate; ~70 of them)
    assert np.all(np.abs(x.mean(axis=0)) <= 4.5 * sd / np.sqrt(n) + 1e-15)
    # covariances: the se of a sample covariance is sqrt((s_ii s_jj + s_ij^2) / n)
    se = np.sqrt((np.outer(sd, sd) ** 2 + cov**2) / n)
    assert np.all(np.abs(np.cov(x.T) - cov) <= 5.0 * se + 1e-15)


def test_a_random_walk_state_is_not_drawn():
    _, _, cal = _panel()
    rw = dataclasses.replace(cal, per_period={**cal.per_period, "regional_phi": 1.0})
    sp = state_prediction(rw)
    d = sp.draw(np.random.default_rng(0))
    assert all(v == 0.0 for v in d.regional_state.values())
    assert d.national_state != 0.0 and np.all(d.log_level != 0.0)

    for m in (sp.between, sp.within):  # positive semi-definite
        assert np.all(np.linalg.eigvalsh(m) > -1e-12 * np.abs(m).max())
