"""Results carry the control group of every bond (issue 15 item 5): ``control_donor``
and ``control_weight`` over (bond, donor), beside the pre-period fit ``rmspe``;
:func:`lobsim.report.plot.control_fit` draws the control group the results carry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate
from lobsim.model.world import build_world
from lobsim.report import plot

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def basket():
    cfg = load_config(ROOT / "configs" / "basket_demo_noisy.toml")
    return simulate(cfg, scenarios=64), cfg


def test_results_carry_the_fitted_control_groups(basket):
    ds, cfg = basket
    world = build_world(cfg)
    assert ds.control_donor.dims == ("bond", "donor") == ds.control_weight.dims
    assert ds.control_weight.attrs["units"] == "1"
    assert "long_name" in ds.control_donor.attrs
    width = ds.sizes["donor"]
    assert width == max(len(fit.donors) for fit in world.controls)
    for i, fit in enumerate(world.controls):
        k = len(fit.donors)
        ids = list(ds.control_donor.values[i])
        assert ids[:k] == [world.areas.ids[a] for a in fit.donors]
        assert ids[k:] == [""] * (width - k)
        np.testing.assert_array_equal(ds.control_weight.values[i, :k], fit.weights)
        np.testing.assert_array_equal(ds.control_weight.values[i, k:], 0.0)
        assert ds.control_weight.values[i].sum() == pytest.approx(1.0, rel=1e-12)


def test_verified_outcomes_have_no_control_group():
    cfg = load_config(ROOT / "configs" / "real" / "dwp_innovation_fund.toml")
    verified = [b.control.weights == "verified" for b in cfg.bonds]
    assert any(verified)
    ds = simulate(cfg, scenarios=16)
    for i, v in enumerate(verified):
        if v:
            assert set(ds.control_donor.values[i]) == {""}
            assert not ds.control_weight.values[i].any()
        else:
            assert ds.control_weight.values[i].sum() == pytest.approx(1.0, rel=1e-12)


def test_control_fit_draws_the_results_control_group(basket):
    ds, cfg = basket
    bond = "north_east_11-jsa"
    i = list(ds.bond.values).index(bond)
    before = plot.control_fit(ds, cfg, bond).axes[0].lines[1].get_ydata()
    # every weight on the first donor: the picture follows the results (and so
    # must their pre-period fit, which the plot checks against the history)
    w = np.zeros(ds.sizes["donor"])
    w[0] = 1.0
    moved = ds.copy(deep=True)
    moved.control_weight.values[i] = w
    with pytest.raises(ValueError, match="does not match the results"):
        plot.control_fit(moved, cfg, bond)
    from lobsim.model.areas import read_areas, read_outcome
    from lobsim.model.config import PERIODS_PER_YEAR

    b = cfg.bond(bond)
    outcome = cfg.outcome(b.outcome)
    assert cfg.universe is not None and outcome.history is not None
    areas = read_areas(cfg.universe.areas)
    data = read_outcome(outcome.history, outcome.state, areas,
                        PERIODS_PER_YEAR[cfg.universe.period])
    window = data.log_history if b.control.pre_periods is None else data.log_history[
        :, -b.control.pre_periods:]
    me, first = areas.index(b.area), areas.index(str(ds.control_donor.values[i, 0]))
    err = (window[me] - window[me, -1]) - (window[first] - window[first, -1])
    moved.rmspe.values[i] = float(np.sqrt(np.mean(err**2)))
    after = plot.control_fit(moved, cfg, bond).axes[0].lines[1].get_ydata()
    treated = np.exp(window[me])
    np.testing.assert_allclose(after, treated[-1] * np.exp(window[first] - window[first, -1]))
    assert not np.allclose(after, before)


def test_control_fit_needs_results_with_control_groups(basket):
    ds, cfg = basket
    with pytest.raises(ValueError, match="carry no control groups"):
        plot.control_fit(ds.drop_vars(["control_donor", "control_weight"]), cfg,
                         "north_east_11-jsa")
