"""Each phase of the engine against its plain-numpy twin (lobsim.kernels.twins).

The inputs are the bundled configs' worlds with random draws, and with their
bond terms perturbed at random (mechanism, outcome kind, verified outcomes, cap
groups) so that every branch of a phase is taken. Where the twin does the same
operations in the same order the comparison is exact; where it sums in
another order or uses another algorithm (matrix products, ``np.interp``,
Brent's method) the tolerance is stated at the assertion: relative 1e-12 for
rearranged sums of a few terms, 1e-8 for IRRs (the engine's Newton iteration
stops at 1e-14 of the payments, Brent's method at its own bracket).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config
from lobsim.kernels import engine, twins
from lobsim.kernels.contract import (
    KIND_COUNT,
    KIND_PERCENT,
    MECH_BINARY,
    MECH_SCHEDULE,
    MECH_UNITS,
    Outputs,
)
from lobsim.model.blocks import block_generator
from lobsim.model.world import World, build_world

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("basket_demo", "birmingham_jsa", "brighter_futures")
SEEDS = range(12)
REL = 1e-12  # rearranged sums of a few terms


@pytest.fixture(scope="module", params=CONFIGS)
def world(request: pytest.FixtureRequest) -> World:
    return build_world(load_config(ROOT / "configs" / f"{request.param}.toml"))


def perturbed(world: World, rng: np.random.Generator) -> World:
    """``world`` with its bonds' mechanisms, kinds, verified flags, cap groups and
    payment bases (shrunk, with k of 0, 1 or between, and priors) drawn."""
    bonds = world.arrays.bonds
    meas = world.arrays.measurements
    n_b = bonds.start.size
    n_groups = world.arrays.payments.group_cap.size
    verified = rng.random(n_b) < 0.3
    mechanism = rng.choice([MECH_UNITS, MECH_BINARY, MECH_SCHEDULE], n_b)
    kind = rng.choice([KIND_COUNT, KIND_PERCENT], n_b)
    cap_group = rng.integers(-1, n_groups, n_b)
    shrunk = rng.random(n_b) < 0.5
    # k = 0 (pays the prior), k = 1 (the measurement) or between
    which = rng.integers(0, 3, n_b)
    k = np.where(shrunk, np.select([which == 0, which == 1], [0.0, 1.0],
                                   rng.uniform(0.05, 0.95, n_b)), 1.0)
    prior = rng.uniform(0.0, 1.2, meas.time.shape) * bonds.target[:, None]
    return world.derive(bonds=bonds._replace(
        mechanism=mechanism, kind=kind, verified=verified,
        ndonors=np.where(verified, 0, bonds.ndonors), cap_group=cap_group,
        shrunk=shrunk, shrink_k=k), measurements=meas._replace(prior=prior))


def scenario(world: World, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A scenario's normals, factor paths and flat series states (from the twins)."""
    a = world.arrays
    z = np.random.default_rng(seed).standard_normal(world.n_normals)
    fac = twins.factor_paths(a.factors, z)
    xs, es, _ = twins.series_states(a.series, fac, z[a.factors.phik.size:])
    return z, fac, xs.ravel(), es.ravel()


@pytest.mark.parametrize("seed", SEEDS)
def test_draw_scenario(world: World, seed: int) -> None:
    p = world.arrays.programme
    n_norm = world.n_normals
    zbuf, fail = np.empty(n_norm), np.empty(p.hazard.size)
    gen = block_generator(seed, 3)
    engine.draw_scenario(gen, zbuf, fail, p)
    z, fail_twin = twins.draw_scenario(block_generator(seed, 3), n_norm, p)
    np.testing.assert_array_equal(zbuf, z)
    np.testing.assert_array_equal(fail, fail_twin)


@pytest.mark.parametrize("seed", SEEDS)
def test_factor_paths_and_series_states(world: World, seed: int) -> None:
    a = world.arrays
    z = np.random.default_rng(seed).standard_normal(world.n_normals)
    fac = np.empty(a.factors.phik.shape)
    c = engine.factor_paths(a.factors, z, 0, fac)
    assert c == a.factors.phik.size
    np.testing.assert_array_equal(fac, twins.factor_paths(a.factors, z))  # same operations

    n_s, dmax = a.series.dates.shape
    xs, es = np.empty(n_s * dmax), np.zeros(n_s * dmax)
    c_end = engine.series_states(a.series, fac, z, c, xs, es)
    want_xs, want_es, used = twins.series_states(a.series, fac, z[c:])
    assert c_end == c + used
    real = np.arange(dmax)[None, :] < a.series.ndates[:, None]
    # the Cholesky row is summed term by term in the engine, by a matrix product here
    np.testing.assert_allclose(xs.reshape(n_s, dmax)[real], want_xs[real], rtol=REL, atol=1e-13)
    np.testing.assert_array_equal(es.reshape(n_s, dmax), want_es)


@pytest.mark.parametrize("seed", SEEDS)
def test_programme_factors(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = world.arrays.programme
    p = p._replace(tilt_global=float(rng.normal()), tilt_type=rng.normal(size=p.n_types))
    z = rng.standard_normal(1 + p.n_types + 3)
    zbuf = z.copy()
    zglob, logw, ctype, c = engine.programme_factors(p, zbuf, 0)
    twin_glob, twin_logw, twin_types = twins.programme_factors(p, z)
    assert (ctype, c) == (1, 1 + p.n_types)
    assert zglob == twin_glob
    np.testing.assert_array_equal(zbuf[ctype:c], twin_types)
    assert logw == pytest.approx(twin_logw, rel=REL, abs=1e-14)  # summed in another order


@pytest.mark.parametrize("seed", SEEDS)
def test_success_share(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = world.arrays.programme
    for b in range(p.bond_type.size):
        for zb in (*rng.normal(scale=3.0, size=4), -9.0, 9.0, p.z_lo):
            got = engine.success_share(p, b, zb)
            # np.interp forms the same weights with another rounding
            assert got == pytest.approx(twins.success_share(p, b, zb), rel=REL, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_effect_fraction(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bonds, m = world.arrays.bonds, world.arrays.measurements
    for b in range(bonds.start.size):
        for i in range(bonds.nmeas[b]):
            horizon = m.horizon[b, i]
            for h in (*rng.uniform(-1.0, horizon + 2.0, 3), horizon, np.inf):
                args = (h, horizon, bonds.ramp_time[b], bonds.ramp_share[b], m.relapse[b, i])
                assert engine.effect_fraction(*args) == pytest.approx(
                    twins.effect_fraction(*args), rel=REL, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_savings(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = world.arrays
    n_dep = len(world.departments)
    n_years = a.savings.year_horizon.shape[1]
    dense = engine.dense_savings(a.savings, n_dep)
    for b in range(a.bonds.start.size):
        scale = rng.uniform(0.0, 2.0) * a.bonds.target[b]
        stop = rng.uniform(-1.0, a.bonds.horizon[b] + 1.0)
        full = bool(stop >= a.bonds.horizon[b])
        e_t = rng.uniform(0.0, scale)
        dsav = np.zeros(n_dep * n_years)
        engine.yearly_savings(a.savings, a.bonds, b, scale, stop, full, dense, dsav)
        if not full:
            engine.maturity_savings(a.savings, a.bonds, b, e_t, dsav)
        want = twins.bond_savings(a.savings, a.bonds, b, scale, stop, full, e_t, n_dep)
        # the engine scales a summed rate table; the twin sums scaled rates
        np.testing.assert_allclose(dsav.reshape(n_dep, n_years), want, rtol=REL,
                                   atol=REL * np.abs(want).max(initial=1.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_measure_and_pay(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = perturbed(world, rng)
    a = w.arrays
    _, _, xs, es = scenario(w, seed)
    n_dep, n_years = len(w.departments), a.savings.year_horizon.shape[1]
    for b in range(a.bonds.start.size):
        target = a.bonds.target[b]
        for i in range(a.bonds.nmeas[b]):
            e_t = rng.uniform(0.0, 1.5 * target) if rng.random() < 0.8 else 0.0
            got = engine.measure(a.series, a.bonds, a.measurements, b, i, e_t, xs, es)
            want = twins.measure(a.series, a.bonds, a.measurements, b, i, e_t, xs, es)
            scale = max(abs(want[0]), target)
            assert got[0] == pytest.approx(want[0], rel=REL, abs=REL * scale)
            assert got[1] == pytest.approx(want[1], rel=REL, abs=REL * scale)
            assert got[2] == want[2]
            if a.bonds.shrunk[b]:
                basis = engine.shrunk_basis(a.bonds, a.measurements, b, i, got[0], xs)
                t_basis = twins.shrunk_basis(a.bonds, a.measurements, b, i, got[0], xs)
                assert basis[0] == t_basis[0]  # the same two products and sum
                assert basis[1] == t_basis[1]

            meas = rng.uniform(-0.5, 1.5) * target
            reached = bool(rng.random() < 0.7)
            cap = a.measurements.cap[b, i]
            paid = rng.uniform(0.0, min(cap, 2.0 * target))
            cash = rng.uniform(0.0, 1.5) * a.bonds.principal[b]
            gpaid = rng.uniform(0.0, 1.0, a.payments.group_cap.size) * np.where(
                np.isfinite(a.payments.group_cap), a.payments.group_cap, a.bonds.principal[b])
            gpaid_kernel = gpaid.copy()
            units, amount, new_paid = engine.payment(a.bonds, a.measurements, a.payments, b, i,
                                                     meas, reached, paid, cash, gpaid_kernel)
            t_units, t_amount, t_paid, t_gpaid = twins.payment(
                a.bonds, a.measurements, a.payments, b, i, meas, reached, paid, cash, gpaid)
            assert (units, amount) == pytest.approx((t_units, t_amount), rel=REL)
            # capped units bonds: paid + units here, the cumulative measure there
            assert new_paid == pytest.approx(t_paid, rel=REL, abs=REL * target)
            np.testing.assert_allclose(gpaid_kernel, t_gpaid, rtol=REL)

            mech = int(a.bonds.mechanism[b])
            year = int(a.measurements.year[b, i])
            dpay = np.zeros(n_dep * n_years)
            engine.charge_departments(a.payments, b, mech, year, units, amount, dpay, n_years)
            np.testing.assert_allclose(dpay.reshape(n_dep, n_years), twins.charge_departments(
                a.payments, b, mech, year, units, amount, n_dep, n_years), rtol=REL)
            over = engine.overpayment(a.bonds, b, e_t, new_paid, cash, amount)
            assert over == pytest.approx(
                twins.overpayment(a.bonds, b, e_t, new_paid, cash, amount), rel=REL)


@pytest.mark.parametrize("seed", SEEDS)
def test_pooled_basis(world: World, seed: int) -> None:
    """A pooled bond's basis and threshold (engine.pooled_basis, from pool sums made
    here from every bond's measurement) against the twin's; engine.pooled_sums itself
    is checked through the whole kernel (tests/test_kernel_v2.py, pooled worlds)."""
    rng = np.random.default_rng(seed)
    w = perturbed(world, rng)
    bonds = w.arrays.bonds
    pool = rng.integers(-1, 2, bonds.start.size)
    bonds = bonds._replace(pool=pool, pool_target=np.array(
        [bonds.target[pool == p].sum() if p >= 0 else 0.0 for p in pool]))
    a = w.derive(bonds=bonds).arrays
    xs = scenario(w, seed)[2]
    for i in range(int(a.bonds.nmeas.min())):
        measured = rng.uniform(-0.5, 1.5, bonds.start.size) * bonds.target
        psum = np.zeros((2, a.measurements.time.shape[1]))
        for b in np.flatnonzero(pool >= 0):
            psum[pool[b], i] += measured[b]
        for b in np.flatnonzero(pool >= 0):
            got = engine.pooled_basis(a.bonds, a.measurements, b, i, psum, xs)
            want = twins.pooled_basis(a.series, a.bonds, a.measurements, b, i, measured, xs)
            # the pool's sum in bond order here, numpy's pairwise order there
            assert got[0] == pytest.approx(want[0], rel=REL, abs=REL * bonds.target[b])
            assert got[1] == want[1]


@pytest.mark.parametrize("seed", SEEDS)
def test_bond_irr(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n_pay in (1, 2, 5):
        principal = rng.uniform(1e5, 1e7)
        times = np.sort(rng.uniform(0.5, 10.0, n_pay))
        flows = rng.uniform(0.0, 2.5, n_pay) * principal / n_pay
        flows[rng.random(n_pay) < 0.2] = 0.0
        cash = flows.sum()
        btime, bflow = np.empty(n_pay + 1), np.empty(n_pay + 1)
        btime[1:], bflow[1:] = times, flows
        got = engine.bond_irr(principal, cash, btime, bflow, n_pay + 1)
        assert got == pytest.approx(twins.bond_irr(principal, cash, times, flows),
                                    rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_basket_flows(world: World, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = world.arrays
    n_b, m_max = a.measurements.time.shape
    bcash = rng.uniform(0.0, 1.5, (n_b, m_max)) * a.bonds.principal[:, None] / m_max
    bcash[rng.random(bcash.shape) < 0.3] = 0.0
    n_k, n_t = a.baskets.member.shape[0], a.baskets.time.size
    out = engine_outputs(n_k, n_t)
    engine.basket_flows(a.baskets, a.bonds, a.measurements, a.payments, bcash, np.empty(n_t),
                        out, 0)
    flows, total, rates = twins.basket_flows(a.baskets, a.bonds, a.measurements, a.payments,
                                             bcash)
    big = a.bonds.principal.sum()
    # the engine adds the principals back to the net flows
    np.testing.assert_allclose(out.basket_cashflow[0], flows, rtol=REL, atol=REL * big)
    np.testing.assert_allclose(out.basket_payment[0], total, rtol=REL)
    np.testing.assert_allclose(out.basket_irr[0], rates, rtol=1e-8, atol=1e-10)


def engine_outputs(n_k: int, n_t: int) -> Outputs:
    """One scenario's basket outputs (the other outputs empty)."""
    empty = np.empty((1, 0))
    return Outputs(empty, empty, empty, empty, empty, empty, empty, empty.astype(bool),
                   empty.astype(bool), np.empty((1, 0, 0)), np.empty((1, 0, 0)),
                   np.empty((1, n_k)), np.empty((1, n_k)), np.empty((1, n_k, n_t)),
                   np.empty(1), empty)
