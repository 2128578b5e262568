"""A streaming block's series straight from the kernel's outputs (lobsim.scale.block_series).

The promise: :meth:`BlockSeries.arrays` of a block's outputs is, key by key
and bit for bit, :meth:`Plan.block_arrays` of the same block labelled by
:func:`lobsim.model.simulate.finish_run` (tranches, after-tax flows, provider
shortfall included), so a streaming run that skips the labelling reduces the
same numbers and its accumulator state is the same.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config
from lobsim.kernels.contract import Outputs
from lobsim.model.blocks import allocate_outputs, block_generator, simulate_rows
from lobsim.model.screening import resolve_risk_bands
from lobsim.model.simulate import finish_run
from lobsim.model.world import build_world
from lobsim.scale.block_series import BlockSeries
from lobsim.scale.streaming import Accumulator, Plan, states_identical
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BLOCK = 300


def _run_parts(cfg, n_blocks: int, seed: int = 5):
    bands = resolve_risk_bands(cfg) if any(b.risk_band is not None for b in cfg.baskets) else None
    cfg_run = bands.config if bands is not None else cfg
    world = build_world(cfg_run)
    zeros = Outputs(*(np.zeros_like(a) for a in allocate_outputs(world, 1)))
    template = finish_run(world, cfg_run, zeros, seed=seed, bands=bands)
    plan = Plan.from_template(template, n_blocks * BLOCK, BLOCK)
    blocks = []
    for b in range(n_blocks):
        out = allocate_outputs(world, BLOCK)
        simulate_rows(world, block_generator(seed, b), out)
        blocks.append(out)
    return world, cfg_run, bands, template, plan, blocks


def _dated_world(tmp_path: Path):
    """Two noisy bonds, one paying at three dates (two cohorts and a coupon), each held
    directly by a taxed class: the bond holdings that read ``dated_payment``."""
    u = make_universe(tmp_path, 8, base=20_000.0)
    payers = [{"agency": "AG", "share": 1.0}]
    bonds = [bond_dict("dated", u.ids[0], target=100.0, maturity=4.0, payers=payers,
                       payment={"measurements": [{"at": 2.0, "cap": 50.0}, {"at": 4.0}],
                                "coupons": [{"at": 1.0, "rate": 0.05}]}, donors=2),
             bond_dict("once", u.ids[3], target=80.0, maturity=3.0, payers=payers, donors=2)]
    doc = config_dict(u, bonds, process={"national_phi": 0.8, "national_sigma": 0.02,
                                         "regional_phi": 0.7, "regional_sigma": 0.02,
                                         "area_phi": 0.6, "area_sigma": 0.03,
                                         "measurement_sigma": 0.01},
                      departments=("DEPT",), agencies={"AG": "DEPT"},
                      interventions=[intervention_dict(mean=0.8, sd=0.2, rho_type=0.5,
                                                       ramp_years=4.0)])
    doc["investor_classes"] = [{"id": "sitr", "relief": 0.3, "tax_rate": 0.4,
                                "bonds": ["dated", "once"]}]
    return parse(doc)


def _assert_same_series(cfg, n_blocks: int) -> None:
    world, cfg_run, bands, template, plan, blocks = _run_parts(cfg, n_blocks)
    series = BlockSeries.of_run(world, cfg_run, template)
    dims = tuple(g.dim for g in plan.groups)
    for out in blocks:
        want = plan.block_arrays(finish_run(world, cfg_run, out, seed=5, bands=bands))
        got = series.arrays(out, dims)
        assert got.keys() == want.keys()
        for key, w in want.items():
            g = np.asarray(got[key])
            assert g.dtype == w.dtype and g.shape == w.shape, key
            np.testing.assert_array_equal(g, w, err_msg=key)
            # bit for bit: signed zeros and NaNs too
            assert np.ascontiguousarray(g).tobytes() == np.ascontiguousarray(w).tobytes(), key


def test_series_of_basket_demo_are_those_of_the_labelled_block():
    # tranches with guarantees and protection, risk bands, holdings of bonds,
    # tranches and baskets, every payment mechanism
    _assert_same_series(load_config(CONFIGS / "basket_demo.toml"), 2)


def test_series_of_directly_held_dated_bonds_are_those_of_the_labelled_block(tmp_path):
    cfg = _dated_world(tmp_path)
    _, _, _, template, _, _ = _run_parts(cfg, 1)
    assert template.payment_bond.values.tolist() == ["dated"] * 3  # the dated path is used
    _assert_same_series(cfg, 2)


def test_accumulator_from_outputs_is_the_accumulator_of_labelled_blocks():
    cfg = load_config(CONFIGS / "basket_demo.toml")
    world, cfg_run, bands, template, plan, blocks = _run_parts(cfg, 3)
    series = BlockSeries.of_run(world, cfg_run, template)
    labelled, direct = Accumulator(plan), Accumulator(plan)
    for b, out in enumerate(blocks):
        labelled.add_block(b, finish_run(world, cfg_run, out, seed=5, bands=bands))
    for b in (2, 0, 1):  # any order
        direct.add_outputs(b, blocks[b], series)
    assert states_identical(labelled.state(), direct.state())
    with pytest.raises(ValueError, match="already"):
        direct.add_outputs(0, blocks[0], series)


def test_outputs_with_importance_weights_are_refused():
    cfg = load_config(CONFIGS / "birmingham_jsa.toml")
    world, cfg_run, _, template, plan, blocks = _run_parts(cfg, 1)
    series = BlockSeries.of_run(world, cfg_run, template)
    blocks[0].log_weight[3] = 0.25
    with pytest.raises(ValueError, match="importance-sampling"):
        Accumulator(plan).add_outputs(0, blocks[0], series)


def test_streamed_run_is_the_summary_of_its_labelled_blocks():
    # the runner reduces outputs directly; its summary is that of the labelled blocks
    from lobsim.scale.runner import run

    cfg = load_config(CONFIGS / "basket_demo.toml")
    cfg = dataclasses.replace(cfg, simulation=dataclasses.replace(cfg.simulation,
                                                                   block_size=BLOCK))
    world, cfg_run, bands, _, plan, blocks = _run_parts(cfg, 3)
    labelled = Accumulator(plan)
    for b, out in enumerate(blocks):
        labelled.add_block(b, finish_run(world, cfg_run, out, seed=5, bands=bands))
    got = run(cfg, scenarios=3 * BLOCK, seed=5, stream=True, threads=2, chunk_size=BLOCK)
    assert got.identical(labelled.summary())


def test_moments_reduced_column_block_by_column_block_are_those_of_the_matrix():
    # add_arrays reduces each named series apart: a column's sums depend on that
    # column alone, non-finite and huge values (the slow path) included
    from lobsim.kernels import reductions as K

    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 9)) * 10.0 ** rng.integers(-8, 8, (500, 9))
    x[7, 2], x[9, 4], x[11, 4], x[3, 6] = np.nan, np.inf, -np.inf, 1e200
    whole = [np.zeros((9, K.N_DIGITS), np.int64), np.zeros((9, K.N_DIGITS), np.int64),
             np.zeros((9, 4), np.int64)]
    K.reduce_moments(x, 480, *whole)
    parts = [np.zeros_like(a) for a in whole]
    for lo, hi in ((0, 3), (3, 4), (4, 9)):
        K.reduce_moments(np.ascontiguousarray(x[:, lo:hi]), 480, *(a[lo:hi] for a in parts))
    for a, b in zip(whole, parts, strict=True):
        assert a.tobytes() == b.tobytes()
    assert whole[2][2, 0] == 1 and whole[2][4, 1] == 1 and whole[2][6, 3] == 1


def test_series_of_a_pooled_basket_are_those_of_the_labelled_block(tmp_path):
    """A pooled basket adds its summed prediction error (its signal-to-noise)."""
    u = make_universe(tmp_path, 8, base=20_000.0)
    bonds = [bond_dict(f"b{i}", u.ids[i], target=100.0, donor_areas=[u.ids[4 + i]])
             for i in range(3)]
    doc = config_dict(u, bonds, process={"national_phi": 0.8, "national_sigma": 0.02,
                                         "regional_phi": 0.7, "regional_sigma": 0.02,
                                         "area_phi": 0.6, "area_sigma": 0.03,
                                         "measurement_sigma": 0.01},
                      baskets=[{"id": "pool", "bonds": ["b0", "b1"], "measurement": "pooled"},
                               {"id": "all", "bonds": ["b0", "b1", "b2"]}])
    cfg = parse(doc)
    _, _, _, _, plan, _ = _run_parts(cfg, 1)
    assert "basket.pooled_prediction_error" in plan.moments.offsets
    _assert_same_series(cfg, 2)
