"""``--parameter-uncertainty``: per-block parameter draws, bit-identity, what they add.

References: lobsim.validation.parameter_draws (the method: one draw per
scenario block from the normal approximation of the REML estimates, seeded
by block index; the config's process and state shifted by what the draw
changes, exactly zero at the estimate), docs/model.md section 9.4 (results
bit-identical for any partition) and docs/real_data.md, Parameter uncertainty.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import lobsim
from lobsim import load_config, summarize
from lobsim.analysis.parameter_uncertainty import (
    COUNTS,
    FIXED,
    FIXED_COUNTS,
    draw_spread,
    parameter_uncertainty_effect,
    parameter_uncertainty_table,
)
from lobsim.analysis.stats import block_mean_se, mean_se
from lobsim.analysis.tidy import build_tables
from lobsim.cli.commands import main
from lobsim.errors import ConfigError
from lobsim.model.blocks import block_generator
from lobsim.model.simulate import simulate
from lobsim.report.html import report_html
from lobsim.scale.runner import run
from lobsim.validation.parameter_draws import (
    BlockDrawer,
    _moved,
    distributions,
    draw_blocks,
    parameter_generator,
    state_generator,
)
from lobsim.validation.state_error import state_prediction

GM = Path(__file__).resolve().parents[1] / "configs" / "gm_ward_bond.toml"
BLOCK = 512
N = 4 * BLOCK


@pytest.fixture(scope="module")
def cfg():
    return load_config(GM, overrides=(f"simulation.block_size={BLOCK}",))


@pytest.fixture(scope="module")
def dists(cfg):
    return distributions(cfg)


def _equal(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for k in a.data_vars:
        assert np.array_equal(a[k].values, b[k].values, equal_nan=a[k].dtype.kind == "f"), k


def test_results_are_bit_identical_for_any_partition_and_threads(cfg, dists):
    one = run(cfg, scenarios=N, threads=1, chunk_size=BLOCK, block_worlds=BlockDrawer(dists))
    other = run(cfg, scenarios=N, threads=2, chunk_size=3 * BLOCK, block_worlds=BlockDrawer(dists))
    _equal(one, other)
    # the draws matter: the run differs from the one at the estimated parameters
    fixed = run(cfg, scenarios=N, threads=1)
    assert not np.array_equal(one.measured_units.values, fixed.measured_units.values)


def test_zero_covariance_changes_nothing_bit_for_bit(cfg, dists):
    zero = {k: d.with_covariance(np.zeros_like(d.cov), draw_state=False)
            for k, d in dists.items()}
    drawn = run(cfg, scenarios=N, threads=2, block_worlds=BlockDrawer(zero))
    _equal(drawn, run(cfg, scenarios=N, threads=2))
    # what the run records as held follows the covariance: all seven, not the bound's one
    assert len(zero["claimants"].held) == 7 and "regional_phi" in zero["claimants"].held


def test_the_base_state_is_drawn_about_the_blup_from_a_sub_stream(cfg, dists):
    with_state = draw_blocks(cfg, 5, 3, dists)
    without = draw_blocks(cfg, 5, 3, {k: d.with_covariance(d.cov, draw_state=False)
                                      for k, d in dists.items()})
    d = dists["claimants"]
    plain = without.blocks[0]["claimants"].data
    for i in range(3):
        a, b = with_state.blocks[i]["claimants"], without.blocks[i]["claimants"]
        # the parameter draws are those made without the state's
        assert a.drawn == b.drawn and a.process == b.process
        # the state is the BLUP's (shifted onto the config's) plus one draw of its
        # prediction error at the block's parameters, from the block's state stream
        at = d.calibration_at(d.draw(parameter_generator(5, i)))
        err = state_prediction(at).draw(state_generator(5, i))
        np.testing.assert_allclose(a.data.log_level - b.data.log_level, err.log_level,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.data.trend - b.data.trend, err.trend, rtol=0, atol=1e-12)
        np.testing.assert_allclose(a.data.area_state - b.data.area_state, err.area_state,
                                   rtol=0, atol=1e-12)
        assert a.data.national_state - b.data.national_state == pytest.approx(
            err.national_state, abs=1e-12)
        # GM's authorities are random walks: their state is not drawn
        assert a.data.regional_state == b.data.regional_state
        assert np.all(a.data.log_level != plain.log_level)


def test_draws_have_the_estimated_mean_and_covariance_in_the_unbounded_scale(dists):
    d = dists["claimants"]
    n = 4000
    z = np.array([d.normal(parameter_generator(7, i)) for i in range(n)])
    # GM's regional_phi is on its bound (1): held, never drawn
    assert d.held == ("regional_phi",)
    free = d.free
    assert free.sum() == 6 and np.all(z[:, ~free] == d.unbounded_centre[~free])
    # the delta method by hand: logit'(phi) = 1 / (phi (1 - phi)), log'(v) = 1 / v
    phi, v = d.centre[3], d.centre[4]  # national phi and variance (search units)
    np.testing.assert_allclose(d.unbounded_cov[3, 3], d.cov[3, 3] / (phi * (1 - phi)) ** 2,
                               rtol=1e-12)
    np.testing.assert_allclose(d.unbounded_cov[3, 4], d.cov[3, 4] / (phi * (1 - phi) * v),
                               rtol=1e-12)
    # the normal draws in the unbounded scale: their mean within 4 Monte Carlo se of the
    # estimate's logit / log, their covariance, once whitened by the delta-method one, the
    # identity within 4 sd of each entry (sqrt(2/n) on the diagonal, 1/sqrt(n) off it)
    cov_z = d.unbounded_cov[np.ix_(free, free)]
    sd = np.sqrt(np.diag(cov_z))
    zf = z[:, free]
    assert np.all(np.abs(zf.mean(axis=0) - d.unbounded_centre[free]) < 4 * sd / np.sqrt(n))
    low = np.linalg.cholesky(cov_z)
    cov = np.cov(np.linalg.solve(low, (zf - zf.mean(axis=0)).T))
    eye = np.eye(cov.shape[0])
    tol = 4 * np.where(eye == 1, np.sqrt(2 / n), 1 / np.sqrt(n))
    assert np.all(np.abs(cov - eye) < tol)
    # a parameter draw is the normal one mapped back: inside the space, never clipped
    x = np.array([d.draw(parameter_generator(7, i)) for i in range(n)])
    np.testing.assert_allclose(x[:, free], d.bounded(z)[:, free], rtol=1e-14)
    assert np.all(x[:, ~free] == d.centre[~free])
    phis = x[:, ~d.is_var & free]
    assert np.all((phis > 0) & (phis < 1)) and np.all(x[:, d.is_var] > 0)
    # the national phi (0.70, se 0.17 per month) would leave (0, 1) in ~4% of normal
    # draws in search units; here its draws come close to 1 but stay below it
    assert (x[:, 3] > 0.95).any()


def test_a_hand_set_process_is_moved_in_the_unbounded_scale():
    # logit(0.99) + logit(0.5) - logit(0.2) = 4.595 + 0 + 1.386: expit 0.99748, inside (0, 1)
    # where the additive shift 0.99 + 0.3 would leave it
    assert _moved(0.99, 0.2, 0.5, phi=True) == pytest.approx(0.997481, abs=1e-6)
    assert _moved(0.03, 0.02, 0.04, phi=False) == pytest.approx(0.06, rel=1e-14)
    assert _moved(0.9, 0.2, 0.2, phi=True) == 0.9 and _moved(1.0, 0.2, 0.5, phi=True) == 1.0


def test_parameter_stream_is_not_the_scenario_stream():
    a = parameter_generator(1, 0).standard_normal(4)
    assert not np.array_equal(a, block_generator(1, 0).standard_normal(4))
    assert np.array_equal(a, parameter_generator(1, 0).standard_normal(4))


def test_block_se_of_single_scenario_blocks_is_the_plain_se():
    x = np.random.default_rng(3).standard_normal((1000, 2))
    m, se = block_mean_se(x, 1)
    m0, se0 = mean_se(x)
    np.testing.assert_allclose(m, m0, rtol=1e-12)
    np.testing.assert_allclose(se, se0, rtol=1e-10)


def test_outcome_without_history_is_a_config_error(cfg):
    bare = dataclasses.replace(cfg, outcomes=tuple(dataclasses.replace(o, history=None)
                                                   for o in cfg.outcomes))
    with pytest.raises(ConfigError, match=r"outcome 'claimants' has no history"):
        distributions(bare)


@pytest.fixture(scope="module")
def pu_run(cfg):
    return lobsim.simulate(cfg, scenarios=N, parameter_uncertainty=True)


def test_cli_runs_and_summarises(tmp_path, capsys, pu_run):
    out = tmp_path / "pu.nc"
    assert main(["run", str(GM), "--scenarios", str(N), "--set",
                 f"simulation.block_size={BLOCK}", "--parameter-uncertainty",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Parameter uncertainty" in printed and "held at the estimate: claimants.regional_phi" in printed
    ds = xr.open_dataset(out)
    info = json.loads(ds.attrs["parameter_uncertainty"])
    assert info["blocks"] == 4 and info["held_at_estimate"] == {"claimants": ["regional_phi"]}
    assert ds.parameter_draw.shape == (4, 7)
    e = parameter_uncertainty_effect(ds)
    added = e.default_probability_added.values
    np.testing.assert_allclose(added, ds["default"].mean("scenario").values
                               - ds[FIXED].mean("scenario").values, atol=1e-12)
    # the Python entry point is the same run (the CLI's goes through lobsim.scale.runner)
    for k in ("default", FIXED, "parameter_draw", "irr"):
        np.testing.assert_array_equal(ds[k].values, pu_run[k].values, err_msg=k)
    assert ds.attrs["parameter_uncertainty"] == pu_run.attrs["parameter_uncertainty"]
    assert main(["summary", str(out)]) == 0
    assert "P(default) drawn %" in capsys.readouterr().out


def test_python_api_without_the_option_is_the_model_run(cfg):
    _equal(lobsim.simulate(cfg, scenarios=BLOCK), simulate(cfg, scenarios=BLOCK))
    with pytest.raises(ValueError, match="not supported with importance sampling"):
        lobsim.simulate(cfg, scenarios=BLOCK, tilt_global=0.5, parameter_uncertainty=True)


def test_report_and_export_show_the_table(cfg, pu_run):
    e = parameter_uncertainty_effect(pu_run)
    t = parameter_uncertainty_table(e)
    page = report_html(pu_run, cfg, [], config_text="")
    section = page[page.index("<h2 id='parameter-uncertainty'>"):page.index("<h2 id='terms'>")]
    # after the decision's sections, the terminal's cells (one definition)
    assert page.index("id='decision-departments'") < page.index("id='parameter-uncertainty'")
    for cell in (*t.header, *t.rows[0]):
        assert f">{html.escape(cell)}<" in section, cell
    tables = {x.name: x for x in build_tables(summarize(pu_run), pu_run, source="pu.nc",
                                              exported_at="now")}
    table = tables["parameter_uncertainty"]
    assert not table.missing and table.rows[0][0] == "harpurhey-jsa"
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["p_default_added"] == float(e.default_probability_added[0])
    assert row["p_default_fixed_lo"] == float(e.default_probability_fixed_lo[0])
    assert row["p_default_draw_sd"] == float(e.default_probability_draw_sd[0])
    # a run without the option: the table is there, empty, saying why
    plain = simulate(cfg, scenarios=BLOCK)
    assert "parameter-uncertainty" not in report_html(plain, cfg, [], config_text="")
    empty = {x.name: x for x in build_tables(summarize(plain), plain, source="p.nc",
                                             exported_at="now")}["parameter_uncertainty"]
    assert empty.rows == [] and "--parameter-uncertainty" in empty.missing


def test_cli_refuses_a_store(capsys):
    assert main(["run", str(GM), "--scenarios", "1000", "--parameter-uncertainty",
                 "--out", "x.zarr"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not supported with --out PATH.zarr" in err


def test_stream_keeps_the_block_counts_and_gives_the_same_table(tmp_path, capsys, pu_run):
    out = tmp_path / "pu_stream.nc"
    assert main(["run", str(GM), "--scenarios", str(N), "--set",
                 f"simulation.block_size={BLOCK}", "--parameter-uncertainty", "--stream",
                 "--threads", "2", "--out", str(out)]) == 0
    assert "P(default) drawn %" in capsys.readouterr().out
    s = xr.open_dataset(out)
    assert "scenario" not in s.dims
    # the blocks' default counts are the per-scenario run's, exactly (integers)
    starts = np.arange(0, N, BLOCK)
    for k, var in ((COUNTS, "default"), (FIXED_COUNTS, FIXED)):
        np.testing.assert_array_equal(
            s[k].values, np.add.reduceat(pu_run[var].values.astype(int), starts, axis=0))
    # so the table is the same, to rounding (the fixed run's se: its streaming summary's)
    a, b = parameter_uncertainty_effect(s), parameter_uncertainty_effect(pu_run)
    for k in a.data_vars:
        np.testing.assert_allclose(a[k].values, b[k].values, rtol=1e-12, atol=1e-15, err_msg=k)
    assert main(["summary", str(out)]) == 0
    assert "P(default) drawn %" in capsys.readouterr().out
    table = {x.name: x for x in build_tables(s, None, source=str(out), exported_at="now")}
    assert len(table["parameter_uncertainty"].rows) == 1


def test_draw_spread_recovers_the_spread_of_block_probabilities():
    rng = np.random.default_rng(11)
    blocks, size, sd = 400, 1000, 0.05
    p = np.repeat(0.5 + sd * rng.standard_normal(blocks), size)
    event = (rng.random(blocks * size) < p)[:, None]
    # 400 blocks estimate the sd to about 4% (sqrt(1/(2 * 399)) of the variance, halved),
    # so 20% is over 5 of its se
    assert abs(float(draw_spread(event, size)[0]) - sd) < 0.2 * sd
    # with one probability for all blocks only Monte Carlo noise is left: 0 or near it
    iid = (rng.random(blocks * size) < 0.5)[:, None]
    assert float(draw_spread(iid, size)[0]) < 0.2 * sd


def test_block_intervals_take_student_t_on_the_blocks():
    # t quantiles: scipy.stats.t.ppf(0.975, df) for df = 4 is 2.7764451051977987
    # (and 1.96 in the limit); the se of a mean over B blocks has B - 1 df
    from lobsim.analysis.stats import Z95, block_t_factor

    assert block_t_factor(5) == pytest.approx(2.7764451051977987 / Z95, rel=1e-12)
    assert 1.0 < block_t_factor(1000) < 1.002
    assert np.isnan(block_t_factor(1))


def test_few_draws_are_said_under_the_table():
    from lobsim.analysis.parameter_uncertainty import FEW_DRAWS, parameter_uncertainty_table

    def table(blocks):
        v = {k: ("bond", [0.5]) for k in (
            "default_probability_fixed", "default_probability", "default_probability_added",
            "default_probability_draw_sd")}
        v.update({f"{k}_{e}": ("bond", [0.5]) for k in (
            "default_probability_fixed", "default_probability", "default_probability_added")
            for e in ("lo", "hi")})
        e = xr.Dataset(v, coords={"bond": ["b"]},
                       attrs={"parameter_uncertainty": f'{{"blocks": {blocks}}}'})
        return parameter_uncertainty_table(e).reading

    assert "only 5 draws" in table(5)
    assert "only" not in table(FEW_DRAWS)


def test_a_shrunk_bond_keeps_the_terms_it_was_signed_on_in_every_block(dists):
    # k and the prior are contract terms fixed at signing: a block's drawn process
    # changes the prediction error's sd, not what the contract pays on
    signed = load_config(GM, overrides=(f"simulation.block_size={BLOCK}",
                                        "bonds[0].payment.basis=shrunk"))
    base = lobsim.model.world.build_world(signed)
    worlds = draw_blocks(signed, 7, 3, dists).worlds(signed)
    for w in worlds:
        assert w.shrinkage == base.shrinkage
        assert np.array_equal(w.arrays.bonds.shrink_k, base.arrays.bonds.shrink_k)
        assert np.array_equal(w.arrays.measurements.prior, base.arrays.measurements.prior)
    # the blocks' processes do differ: their own signing would give other terms
    own = lobsim.model.world.build_world(draw_blocks(signed, 7, 3, dists).config_of(signed, 0))
    assert own.shrinkage[0].sigma != base.shrinkage[0].sigma
