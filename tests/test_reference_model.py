"""The engine against a plain-numpy reference of the same model (benchmarks/reference_numpy.py).

The reference steps every period (month or year) with per-period AR(1)
parameters converted exactly from the per-year ones, uses scipy's Beta
quantiles and draws its own random numbers; the engine draws the states at
measurement dates directly. On the same world (the same donors and weights)
their summaries must be statistically indistinguishable: per bond, mean
investor payment, default probability and mean true units agree within
5 combined standard errors.
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config
from lobsim.model.blocks import run_blocks
from lobsim.model.config import Basket, Bond, Config
from lobsim.model.world import build_world

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from reference_numpy import simulate_reference  # noqa: E402
from toml_doc import dumps  # noqa: E402

N = 20_000
Z_MAX = 5.0
COMPARED = ("investor_payment", "default", "true_units")


def _mixed_subset(cfg: Config) -> Config:
    """A small multi-bond world from the basket demo, one bond per feature."""
    kind = {o.id: o.kind for o in cfg.outcomes}
    features: list[Callable[[Bond], bool]] = [
        lambda b: len(b.payment.measurements) > 1,  # cohorts and a catch-up
        lambda b: b.payment.mechanism == "binary",
        lambda b: b.payment.mechanism == "threshold" and kind[b.outcome] == "count",
        lambda b: b.start > 0.0,
        lambda b: cfg.intervention(b.intervention).ramp_profile is not None,
        lambda b: b.control.weights == "synthetic" and kind[b.outcome] == "count",
        lambda b: kind[b.outcome] == "percent" and b.payment.mechanism == "per_unit",
        lambda b: b.control.weights == "verified" and b.payment.mechanism == "threshold",
        lambda b: b.control.weights == "verified" and kind[b.outcome] == "count",
    ]
    chosen: list[Bond] = []
    for feature in features:
        bond = next((b for b in cfg.bonds if feature(b)), None)
        if bond is not None and bond not in chosen:
            chosen.append(bond)
    # a second bond of one provider, so that a failure hits two bonds at once
    provider = chosen[0].provider
    chosen += [b for b in cfg.bonds if b.provider == provider and b not in chosen][:1]
    return dataclasses.replace(cfg, bonds=tuple(chosen), baskets=())


def _per_area_loadings(directory: Path) -> Config:
    """Birmingham with per-area loadings in its areas file: a national loading
    rising with deprivation (a recession hits deprived areas harder) and
    Birmingham's at 2, far above its comparators', so that the national
    factor moves its measurement; a regional one on every other area (the
    rest keep the outcome's 1)."""
    doc = tomllib.loads((ROOT / "configs" / "birmingham_jsa.toml").read_text(encoding="utf-8"))
    bundled = load_config(ROOT / "configs" / "birmingham_jsa.toml").universe
    assert bundled is not None
    lines = Path(bundled.areas).read_text(encoding="utf-8").splitlines()
    deprivation = lines[0].split(",").index("deprivation")
    rows = [lines[0] + ",national_loading,regional_loading"]
    for i, line in enumerate(lines[1:]):
        cells = line.split(",")
        beta = 2.0 if cells[0] == "Birmingham" else 0.4 + float(cells[deprivation]) / 40.0
        rows.append(f"{line},{beta:.3f},{'0.5' if i % 2 else ''}")
    areas = directory / "areas.csv"
    areas.write_text("\n".join(rows) + "\n", encoding="utf-8")
    doc["universe"]["areas"] = str(areas)
    path = directory / "config.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    return load_config(path)


def _shrunk(cfg: Config) -> Config:
    """``cfg`` with every bond paid on the shrunk basis (k and priors fixed at signing)."""
    return dataclasses.replace(cfg, bonds=tuple(
        dataclasses.replace(b, payment=dataclasses.replace(b.payment, basis="shrunk"))
        for b in cfg.bonds))


def _pooled(cfg: Config) -> Config:
    """The basket demo's claimants bonds paid per measured unit at its commonest
    measurement dates, in one pooled basket (docs/model.md section 6.13)."""
    groups: dict[tuple[float, ...], list[Bond]] = {}
    for b in cfg.bonds:
        if b.outcome == "claimants" and b.payment.mechanism in ("per_unit", "threshold"):
            groups.setdefault(tuple(m.at for m in b.payment.measurements), []).append(b)
    members = tuple(max(groups.values(), key=len))
    pool = Basket(id="pool", name="pool", bonds=tuple(b.id for b in members), where=None,
                  risk_band=None, tranches=(), guarantee=None, measurement="pooled")
    return dataclasses.replace(cfg, bonds=members, baskets=(pool,))


CASES: dict[str, tuple[Callable[[Path], Config], str]] = {
    "birmingham-monthly": (lambda _: load_config(ROOT / "configs" / "birmingham_jsa.toml"),
                           "month"),
    "basket-subset-monthly": (
        lambda _: _mixed_subset(load_config(ROOT / "configs" / "basket_demo.toml")), "month"),
    "basket-yearly": (lambda _: load_config(ROOT / "configs" / "basket_demo.toml"), "year"),
    "birmingham-per-area-loadings-yearly": (_per_area_loadings, "year"),
    "basket-subset-shrunk-yearly": (
        lambda _: _shrunk(_mixed_subset(load_config(ROOT / "configs" / "basket_demo.toml"))),
        "year"),
    "basket-pooled-monthly": (
        lambda _: _pooled(load_config(ROOT / "configs" / "basket_demo.toml")), "month"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reference_and_engine_agree(case: str, tmp_path: Path) -> None:
    make, period = CASES[case]
    cfg = make(tmp_path)
    world = build_world(cfg)
    engine = run_blocks(world, N, 1234, cfg.simulation.block_size, threads=1)
    reference = simulate_reference(cfg, N, 5678, period=period, world=world)
    failures = []
    for name in COMPARED:
        a = getattr(engine, name).astype(float)
        b = reference[name].astype(float)
        diff = a.mean(axis=0) - b.mean(axis=0)
        se = np.sqrt(a.var(axis=0, ddof=1) / N + b.var(axis=0, ddof=1) / N)
        tiny = 1e-9 * (1.0 + np.abs(a).mean(axis=0))  # both constant: must agree exactly
        for i in np.flatnonzero(np.abs(diff) > Z_MAX * se + tiny):
            failures.append(f"{world.bonds[i].id} {name}: engine {a[:, i].mean():.6g}, "
                            f"reference {b[:, i].mean():.6g}, z = {diff[i] / se[i]:.1f}")
    assert not failures, "\n".join(failures)


def test_mixed_subset_covers_the_features() -> None:
    cfg = _mixed_subset(load_config(ROOT / "configs" / "basket_demo.toml"))
    mechanisms = {b.payment.mechanism for b in cfg.bonds}
    assert {"per_unit", "threshold", "binary"} <= mechanisms
    assert any(len(b.payment.measurements) > 1 for b in cfg.bonds)
    assert any(b.start > 0.0 for b in cfg.bonds)
    assert len({b.provider for b in cfg.bonds}) < len(cfg.bonds)
    assert {b.control.weights for b in cfg.bonds} == {"equal", "synthetic", "verified"}


@pytest.mark.parametrize(
    "ramp_years",
    [1.0, 2.0, 3.0, 1.5, 2.25])
def test_engine_ramp_is_linear_over_ramp_years(ramp_years: float) -> None:
    from lobsim.kernels.engine import effect_fraction
    from lobsim.model.world_groups import ramp_knots
    from reference_numpy import ramp

    cfg = load_config(ROOT / "configs" / "birmingham_jsa.toml")
    itype = dataclasses.replace(cfg.interventions[0], ramp_years=ramp_years, ramp_profile=None,
                                relapse_rate=0.0)
    kt, kv = ramp_knots(itype)
    stops = np.linspace(0.05, 4.0, 80)  # delivery stops here (provider failure)
    engine = [effect_fraction(h, 5.0, kt, kv, np.ones(5)) for h in stops]
    np.testing.assert_allclose(engine, ramp(itype, stops), atol=1e-12)
