"""Pooled basket measurement (docs/model.md section 6.13; issue 18, item 3).

The diversification of measurement noise: the pooled prediction error of n
independent identical bonds has sqrt(n) times one bond's sd, of n bonds on one
control group n times; the pooled payment conserves the pooled measurement;
the config's rules are checked with clear errors.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lobsim
from lobsim.analysis import pooling, summary
from lobsim.analysis.sweep import sweep
from lobsim.errors import ConfigError
from lobsim.model.derive import derive
from lobsim.model.world import build_world
from lobsim.report.html import write_report
from toml_doc import dumps
from worlds import bond_dict, config_dict, make_universe, parse

#: area-specific states and measurement noise only: no national or regional factor,
#: so bonds on disjoint areas and donors have independent prediction errors
NOISY = {"national_phi": 1.0, "national_sigma": 0.0, "regional_phi": 1.0,
         "regional_sigma": 0.0, "area_phi": 0.8, "area_sigma": 0.05,
         "measurement_sigma": 0.04}
#: regional factors only: bonds of one region measured against one donor in another
#: have one and the same prediction error
REGIONAL = {**NOISY, "regional_phi": 0.9, "regional_sigma": 0.05, "area_sigma": 0.0,
            "measurement_sigma": 0.0}
N_BONDS = 4
SCENARIOS = 4000


def _sd_se(x: np.ndarray) -> float:
    """Monte Carlo standard error of the sample sd of ``x``: ``sd sqrt((kurtosis - 1) / (4 N))``
    (the delta method on the variance's standard error, e.g. Kendall and Stuart,
    The Advanced Theory of Statistics, vol. 1, 10.5); 1 / sqrt(2 N) of the sd for a normal."""
    c = x - x.mean()
    kurt = float(np.mean(c**4) / np.mean(c**2) ** 2)
    return float(x.std() * math.sqrt((kurt - 1.0) / (4.0 * x.size)))


def _world(tmp_path: Path, *, shared: bool, measurement: str = "pooled",
           targets: tuple[float, ...] = (100.0,) * N_BONDS, cap: float | None = None,
           scenarios: int = SCENARIOS) -> lobsim.Config:
    """n bonds in one pooled basket: on disjoint areas and donors (area states and
    noise: independent errors), or (``shared``) all in one region measured
    against one donor in another, the regional factors the only randomness."""
    n = len(targets)
    u = make_universe(tmp_path, 2 * n, regions=["R1"] * n + ["R0"] * n)
    payment = None if cap is None else {"cap": cap}
    bonds = [bond_dict(f"b{i}", u.ids[i], target=t, payment=payment,
                       donor_areas=[u.ids[n if shared else n + i]])
             for i, t in enumerate(targets)]
    baskets = [{"id": "pool", "bonds": [b["id"] for b in bonds], "measurement": measurement}]
    return parse(config_dict(u, bonds, process=REGIONAL if shared else NOISY, baskets=baskets,
                             scenarios=scenarios))


def test_independent_errors_pool_as_sqrt_n(tmp_path: Path) -> None:
    ds = lobsim.simulate(_world(tmp_path, shared=False), seed=3)
    err = ds.prediction_error.values
    pooled = pooling.pooled_prediction_error(ds).sel(basket="pool").values
    np.testing.assert_allclose(pooled, err.sum(axis=1), rtol=1e-12, atol=1e-9)
    one = float(np.sqrt(np.mean(err.var(axis=0))))  # the bonds are identical: pool their sds
    ratio = pooled.std() / one
    # 4 standard errors of the pooled sd (the single bonds' sd, from 4x the draws,
    # adds half as much again in quadrature: taken into the 4)
    tol = 4.0 * math.sqrt(_sd_se(pooled) ** 2 + N_BONDS * np.mean(
        [_sd_se(err[:, b]) ** 2 for b in range(N_BONDS)])) / one
    assert abs(ratio - math.sqrt(N_BONDS)) <= tol, (ratio, tol)
    # and the bonds are not noiseless: the test would not tell sqrt(n) from n otherwise
    assert N_BONDS - math.sqrt(N_BONDS) > 10 * tol
    s = summary.summarize(ds)
    snr = float(s.basket_pooled_signal_to_noise.sel(basket="pool"))
    own = s.signal_to_noise.values
    assert snr == pytest.approx(math.sqrt(N_BONDS) * np.mean(own), rel=tol)


def test_one_control_group_pools_as_n(tmp_path: Path) -> None:
    """Bonds whose errors all come from one control group (and one common factor)
    have the same error: pooling adds it n times and diversifies nothing."""
    ds = lobsim.simulate(_world(tmp_path, shared=True), seed=3)
    err = ds.prediction_error.values
    assert err[:, 0].std() > 1.0  # noisy, and the same for every bond
    np.testing.assert_allclose(err, err[:, :1].repeat(N_BONDS, axis=1), rtol=1e-12)
    pooled = pooling.pooled_prediction_error(ds).sel(basket="pool").values
    assert pooled.std() == pytest.approx(N_BONDS * err[:, 0].std(), rel=1e-9)
    s = summary.summarize(ds)
    assert float(s.basket_pooled_signal_to_noise.sel(basket="pool")) == pytest.approx(
        float(s.signal_to_noise[0]), rel=1e-9)


def test_separate_measurement_has_no_pooled_statistics(tmp_path: Path) -> None:
    ds = lobsim.simulate(_world(tmp_path, shared=False, measurement="separate",
                                scenarios=500), seed=3)
    assert not pooling.is_pooled(ds).any()
    assert "basket_pooled_signal_to_noise" not in summary.summarize(ds)


@settings(max_examples=15, deadline=None)
@given(targets=st.lists(st.floats(20.0, 400.0), min_size=2, max_size=5),
       seed=st.integers(0, 2**16))
def test_pooled_payment_conserves_the_pooled_measurement(tmp_path_factory: pytest.TempPathFactory,
                                                         targets: list[float], seed: int) -> None:
    """With no cap binding, the members' paid units add up to the pooled measured
    units (the sum of their own measurements) where that sum is positive, and to
    nothing otherwise; each member is paid its target's share of it."""
    tmp = tmp_path_factory.mktemp("conserve")
    cfg = _world(tmp, shared=False, targets=tuple(targets), cap=100.0 * max(targets),
                 scenarios=200)
    ds = lobsim.simulate(cfg, seed=seed)
    measured = ds.measured_units.values.sum(axis=1)
    paid = ds.paid_units.values
    np.testing.assert_allclose(paid.sum(axis=1), np.maximum(measured, 0.0), rtol=1e-12,
                               atol=1e-9)
    share = np.asarray(targets) / math.fsum(targets)
    np.testing.assert_allclose(paid, np.maximum(measured, 0.0)[:, None] * share, rtol=1e-12,
                               atol=1e-9)


def _basket_doc(tmp_path: Path, bonds: list[dict], baskets: list[dict],
                outcomes: dict[str, str] | None = None) -> dict:
    u = make_universe(tmp_path, 8)
    return config_dict(u, bonds, baskets=baskets, outcomes=outcomes, scenarios=100)


def _bonds(**kw: dict) -> list[dict]:
    return [bond_dict(f"b{i}", f"a{i:03d}", donor_areas=[f"a{4 + i:03d}"], **kw.get(str(i), {}))
            for i in range(3)]


@pytest.mark.parametrize(("change", "message"), [
    ({"1": {"payment": {"mechanism": "binary", "trigger": 0.5}}},
     "pays per measured unit: bond 'b1' has mechanism 'binary'"),
    ({"2": {"maturity": 5.0}}, "measured at the same dates: bond 'b2' at [5.0]"),
    ({"1": {"outcome": "rate"}}, "one outcome kind: bond 'b1' measures a percent outcome"),
])
def test_pooled_basket_rules(tmp_path: Path, change: dict, message: str) -> None:
    doc = _basket_doc(tmp_path, _bonds(**change),
                      [{"id": "p", "bonds": ["b0", "b1", "b2"], "measurement": "pooled"}],
                      outcomes={"out": "count", "rate": "percent"})
    with pytest.raises(ConfigError, match=r"baskets\[0\]\.measurement") as info:
        build_world(parse(doc))
    assert message in str(info.value)


def test_a_bond_is_pooled_once(tmp_path: Path) -> None:
    doc = _basket_doc(tmp_path, _bonds(), [
        {"id": "p", "bonds": ["b0", "b1"], "measurement": "pooled"},
        {"id": "all", "bonds": ["b0", "b1", "b2"]},  # a separate basket may hold it too
        {"id": "q", "bonds": ["b1", "b2"], "measurement": "pooled"}])
    with pytest.raises(ConfigError, match=r"baskets\[2\]\.measurement.*'b1' is already in "
                                          "pooled basket 'p'"):
        build_world(parse(doc))
    doc["baskets"].pop()
    world = build_world(parse(doc))
    np.testing.assert_array_equal(world.arrays.bonds.pool, [0, 0, -1])
    np.testing.assert_array_equal(world.arrays.bonds.pool_target, [200.0, 200.0, 0.0])


def test_measurement_must_be_a_known_rule(tmp_path: Path) -> None:
    doc = _basket_doc(tmp_path, _bonds(), [{"id": "p", "bonds": ["b0"], "measurement": "joint"}])
    with pytest.raises(ConfigError, match=r"baskets\[0\]\.measurement.*'separate', 'pooled'"):
        parse(doc)


def test_summary_and_report_show_the_pooled_basket(tmp_path: Path) -> None:
    cfg = _world(tmp_path, shared=False, scenarios=1000)
    ds = lobsim.simulate(cfg, seed=2)
    s = summary.summarize(ds)
    text = summary.format_summary(s)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Pooled measurement"))
    row = next(line for line in lines[at:] if line.startswith("pool "))
    pooled, lowest = (float(x) for x in row.split()[1:3])
    assert pooled == pytest.approx(float(s.basket_pooled_signal_to_noise[0]), abs=0.005)
    assert pooled > 1.5 * lowest  # four independent bonds: about twice (sqrt 4)
    d = pooling.diversification(ds, "pool")
    assert d.noise_per_target.values[-1] < 0.6 * d.noise_per_target.values[0]
    files = write_report(ds, cfg, tmp_path / "report")
    assert tmp_path / "report" / "measurement_noise.png" in files
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h2 id='pooled'>Pooled measurement</h2>" in page


def test_sweep_compares_separate_and_pooled(tmp_path: Path) -> None:
    """``lobsim sweep CONFIG --set baskets[0].measurement=separate,pooled``: common random
    numbers, so the bonds' true units and measurements are the same at both points and
    only their payments move."""
    u = make_universe(tmp_path, 2 * N_BONDS)
    bonds = [bond_dict(f"b{i}", u.ids[i], donor_areas=[u.ids[N_BONDS + i]])
             for i in range(N_BONDS)]
    doc = config_dict(u, bonds, process=NOISY, scenarios=1000,
                      baskets=[{"id": "pool", "bonds": [b["id"] for b in bonds]}])
    path = tmp_path / "pool.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    s = sweep(path, [("baskets[0].measurement", ["separate", "pooled"])])
    np.testing.assert_array_equal(s.signal_to_noise.values[0], s.signal_to_noise.values[1])
    separate, pooled = s.basket_default_probability.sel(basket="pool").values
    assert separate != pooled


def test_tail_risk_keeps_the_pooled_measurement(tmp_path: Path) -> None:
    """The tail analyses rebuild a config around one basket: they keep its measurement
    and the config's other pooled baskets (they decide what their bonds are paid)."""
    from lobsim.analysis.risk import _one_basket

    cfg = _world(tmp_path, shared=False, scenarios=500)
    cfg = derive(cfg, baskets=(*cfg.baskets, dataclasses.replace(
        cfg.baskets[0], id="all", measurement="separate")))
    one, _ = _one_basket(cfg, "pool")
    assert [(k.id, k.measurement) for k in one.baskets] == [("pool", "pooled")]
    other, _ = _one_basket(cfg, "all")
    assert [(k.id, k.measurement) for k in other.baskets] == [("all", "separate"),
                                                              ("pool", "pooled")]


def test_streaming_summary_has_the_pooled_signal_to_noise(tmp_path: Path) -> None:
    from lobsim.scale import streaming

    ds = lobsim.simulate(_world(tmp_path, shared=False, scenarios=1000), seed=4)
    plan = streaming.Plan.from_template(ds, ds.sizes["scenario"], 300)
    acc = streaming.Accumulator(plan)
    for b, lo in enumerate(range(0, ds.sizes["scenario"], 300)):
        acc.add_block(b, ds.isel(scenario=slice(lo, lo + 300)))
    got = acc.summary().basket_pooled_signal_to_noise.values
    # exact sums against numpy's float sums: rounding only (tests/test_scale.py)
    np.testing.assert_allclose(got, summary.summarize(ds).basket_pooled_signal_to_noise.values,
                               rtol=1e-10)
