"""The placebo backtest (lobsim.validation.backtest) and its model check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lobsim.errors import ConfigError
from lobsim.model.areas import AreaTable, OutcomeData, read_areas
from lobsim.model.control import fit_control, nearest_donors
from lobsim.model.realdata import package_data
from lobsim.validation.backtest import (
    FALSE_POSITIVE_LEVELS,
    ObservedPanel,
    control_weights,
    donor_pools_for,
    placebo_backtest,
    placebo_bond,
    read_panel,
    simulate_panel,
    simulate_placebos,
    size_scale,
    start_indices,
)
from lobsim.validation.calibrate import calibrate
from lobsim.validation.placebo_stats import compare, summarize_placebos
from lobsim.validation.universe_file import read_universe

GM = package_data("gm")


@pytest.fixture(scope="module")
def gm_panel() -> ObservedPanel:
    return read_panel(GM / "claimants_history.csv", GM / "areas.csv")


def _months(n: int, first: int = 2015 * 12) -> tuple[str, ...]:
    return tuple(f"{(first + m) // 12}-{(first + m) % 12 + 1:02d}" for m in range(n))


def _table(n: int, per_region: int = 10) -> AreaTable:
    # one covariate, the position: an area's nearest neighbours are next to it
    return AreaTable(ids=tuple(f"a{i:03d}" for i in range(n)),
                     regions=tuple(f"R{i // per_region}" for i in range(n)),
                     covariate_names=("x",), covariates=np.arange(n, dtype=float)[:, None])


# -- the control group is the contract's ---------------------------------------
@pytest.mark.parametrize("scheme", ["equal", "synthetic"])
@pytest.mark.parametrize("k", [3, 10])
def test_batch_weights_are_those_of_control_fit_control(gm_panel, scheme, k):
    # at the start 2016-03 with a 12-month pre-period, every ward's donors,
    # weights and RMSPE equal what lobsim.model.control gives a bond signed then
    s, pre = gm_panel.periods.index("2016-03"), 12
    areas = gm_panel.areas
    pools = donor_pools_for(areas, [k])[k]
    w, rmspe = control_weights(gm_panel.logs[:, s - pre + 1: s + 1], pools, scheme)
    seen = OutcomeData(periods=gm_panel.periods[: s + 1], log_history=gm_panel.logs[:, : s + 1],
                       trend=np.zeros(len(areas.ids)), log_level=np.zeros(len(areas.ids)),
                       area_state=np.zeros(len(areas.ids)), regional_state={},
                       national_state=0.0)
    for a, area in enumerate(areas.ids):
        bond = placebo_bond(area, k, scheme, pre)
        donors = nearest_donors(bond, areas, {area}, "<t>", "b")
        fit = fit_control(bond, areas, seen, donors)
        np.testing.assert_array_equal(pools[a], fit.donors)
        np.testing.assert_allclose(w[a], fit.weights, rtol=0, atol=1e-12)
        assert rmspe[a] == pytest.approx(fit.rmspe, rel=1e-9, abs=1e-15)


def test_measurement_is_design_section_4_on_a_hand_panel():
    # three areas; area 0's nearest donor (k = 1) is area 1
    values = np.array([[100.0, 100.0, 90.0],
                       [200.0, 210.0, 220.0],
                       [50.0, 60.0, 70.0]])
    panel = ObservedPanel(areas=_table(3), periods=_months(3), values=values)
    p = placebo_backtest(panel, pre=2, horizon=1, donors=[1], weights=["equal"])
    row = p.select("equal", 1) & (p.area == "a000")
    # yhat = y[a,s] exp(log y[j,s+h] - log y[j,s]) = 100 * 220 / 210; M = yhat - 90
    yhat = 100.0 * 220.0 / 210.0
    assert p.counterfactual[row][0] == pytest.approx(yhat, rel=1e-14)
    assert p.units[row][0] == pytest.approx(yhat - 90.0, rel=1e-12)
    assert p.change[row][0] == pytest.approx(100 * (yhat - 90.0) / yhat, rel=1e-12)
    assert p.start[row][0] == "2015-02"


# -- a planted effect is measured ------------------------------------------------
def _noisy_panel(n: int, t: int, sigma: float, seed: int) -> np.ndarray:
    """Shared factor, regional walks and area noise around 200 (log scale)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    common = np.cumsum(0.02 * rng.standard_normal(t))
    regional = np.cumsum(0.005 * rng.standard_normal((n // 10, t)), axis=1).repeat(10, axis=0)
    return np.exp(math.log(200) + common + regional + sigma * rng.standard_normal((n, t)))


@pytest.mark.parametrize("scheme", ["equal", "synthetic"])
def test_a_planted_step_is_measured_exactly_without_noise(scheme):
    # Every area moves with one common factor; area 7 drops 10% after the
    # start. The control group predicts its no-programme path exactly, so it
    # measures 10% of the counterfactual and nothing anywhere else.
    n, t, start, horizon = 30, 24, 11, 6
    values = _noisy_panel(n, t, 0.0, 1)
    values = values[:1].repeat(n, axis=0) * np.linspace(1.0, 3.0, n)[:, None]
    values[7, start + 1:] *= 0.9
    panel = ObservedPanel(areas=_table(n), periods=_months(t), values=values)
    p = placebo_backtest(panel, pre=12, horizon=horizon, donors=[3, 5], weights=[scheme],
                         starts=[panel.periods[start]])
    treated = p.area == "a007"
    np.testing.assert_allclose(p.change[treated], 10.0, rtol=1e-9)
    np.testing.assert_allclose(p.units[treated], 0.1 * p.counterfactual[treated], rtol=1e-9)
    # donors of the others may include area 7, whose drop reads as a rise: only
    # pools without it measure nothing
    clean = ~treated & np.array(["a007" not in d for d in p.donor_ids])
    assert clean.sum() > 40
    np.testing.assert_allclose(p.change[clean], 0.0, atol=1e-9)


@pytest.mark.parametrize("scheme", ["equal", "synthetic"])
def test_a_planted_step_is_measured_within_the_noise(scheme):
    # With 1.5% noise a month, a -10% step in area 25 after the start
    # measures 10% give or take the placebo noise of the other areas (an sd
    # of about 2%): the planted effect lies within 4 of their sds, and at
    # least 2 sds from zero.
    n, t = 60, 30
    values = _noisy_panel(n, t, 0.015, 2)
    start = 17
    values[25, start + 1:] *= 0.9
    panel = ObservedPanel(areas=_table(n), periods=_months(t), values=values)
    p = placebo_backtest(panel, pre=12, horizon=12, donors=[10], weights=[scheme],
                         starts=[panel.periods[start]])
    treated = p.area == "a025"
    placebo = ~treated & np.array(["a025" not in d for d in p.donor_ids])
    sd = p.change[placebo].std(ddof=1)
    assert abs(p.change[placebo].mean()) < 4 * sd / math.sqrt(placebo.sum())
    measured = float(p.change[treated][0])
    assert abs(measured - 10.0) < 4 * sd
    assert measured > 2 * sd


# -- summaries ---------------------------------------------------------------------
def test_summary_counts_false_positives(gm_panel):
    p = placebo_backtest(gm_panel, donors=[5], weights=["equal"], starts=["2016-01"])
    (row, by_start) = summarize_placebos(p)
    assert row.start == "all" and by_start.start == "2016-01"
    assert row.n == len(gm_panel.areas.ids) == 215
    ratio = p.units / (0.1 * p.base)
    for level, share in zip(FALSE_POSITIVE_LEVELS, row.false_positive, strict=True):
        assert share == pytest.approx(np.mean(ratio >= level))
    assert row.paid_share == pytest.approx(np.mean(np.clip(ratio, 0, 1)))
    assert row.sd == pytest.approx(p.change.std(ddof=1))
    assert row.quantiles[2] == pytest.approx(np.median(p.change))


def test_start_dates_default_and_errors():
    periods = _months(34)
    assert start_indices(periods, pre=12, horizon=12) == [11, 14, 17, 20]
    assert start_indices(periods, pre=12, horizon=12, starts=["2016-06", "2016-01"]) == [12, 17]
    with pytest.raises(ConfigError, match="do not fit"):
        start_indices(periods, pre=24, horizon=12)
    with pytest.raises(ConfigError, match="leaves no room"):
        start_indices(periods, pre=12, horizon=12, starts=["2015-06"])
    with pytest.raises(ConfigError, match="not a period"):
        start_indices(periods, pre=12, horizon=12, starts=["2030-01"])


def test_bad_backtest_options_are_clear_errors(gm_panel):
    with pytest.raises(ConfigError, match="between 1 and 214"):
        placebo_backtest(gm_panel, donors=[215])
    with pytest.raises(ConfigError, match="not in the areas table"):
        placebo_backtest(gm_panel, donors=[5], match_on=["deprivation"])
    with pytest.raises(ConfigError, match="use 'equal' or 'synthetic'"):
        placebo_backtest(gm_panel, donors=[5], weights=["median"])


# -- the model check ------------------------------------------------------------
def test_simulated_panels_follow_the_calibrated_process(tmp_path):
    # A panel drawn by simulate_panel and calibrated again gives back the
    # area-level parameters it was drawn with (tolerances as in
    # tests/test_calibrate.py, which has the sampling sds).
    u = read_universe("lobsim:gm/universe.toml")
    values = simulate_panel(u, np.random.Generator(np.random.PCG64(3)))
    assert values.shape == u.data.log_history.shape and (values > 0).all()
    data = OutcomeData(periods=u.data.periods, log_history=np.log(values),
                       trend=np.zeros(values.shape[0]), log_level=np.zeros(values.shape[0]),
                       area_state=np.zeros(values.shape[0]), regional_state={},
                       national_state=0.0)
    cal = calibrate(data, u.areas, 12)
    assert cal.process.area_sigma == pytest.approx(u.process.area_sigma, rel=0.2)
    assert cal.process.measurement_sigma == pytest.approx(u.process.measurement_sigma, rel=0.3)
    assert abs(cal.volatility_slope) < 0.4
    scaled = simulate_panel(u, np.random.Generator(np.random.PCG64(3)), size_scaled=True)
    assert calibrate(data.__class__(**{**data.__dict__, "log_history": np.log(scaled)}),
                     u.areas, 12).volatility_slope < -0.6


def test_size_scale_is_a_mean_one_decreasing_fit():
    u = read_universe("lobsim:gm/universe.toml")
    s = size_scale(u)
    assert s.mean() == pytest.approx(1.0)
    level = u.data.log_history.mean(axis=1)
    order = np.argsort(level)
    assert (np.diff(s[order]) <= 1e-12).all()  # bigger wards are relatively quieter


def test_model_check_on_gm_compares_and_plots(gm_panel, tmp_path):
    u = read_universe("lobsim:gm/universe.toml")
    options = dict(donors=[5], weights=["equal"], starts=["2016-01", "2016-06"])
    real = placebo_backtest(gm_panel, **options)
    pooled = simulate_placebos(u, replicates=2, seed=1, **options)
    again = simulate_placebos(u, replicates=2, seed=1, **options)
    np.testing.assert_array_equal(pooled.counterfactual, again.counterfactual)
    assert pooled.area.size == 2 * real.area.size
    rows = compare(real, {"pooled": pooled})
    assert [r.group for r in rows] == ["all", "small", "middle", "large"]
    whole = rows[0]
    assert whole.n_real == real.area.size and 0.0 <= whole.ks_statistic <= 1.0
    # the calibrated process reproduces the spread of real placebo errors
    # overall (docs/real_data.md: within 5% at every pool size)...
    assert whole.sd_model == pytest.approx(whole.sd_real, rel=0.25)
    # ...but not across sizes: real errors of the smallest third are far
    # larger than those of the largest, the pooled model's about equal
    small, large = rows[1], rows[3]
    assert small.sd_real > 1.5 * large.sd_real
    assert small.sd_model < 1.25 * large.sd_model
    from lobsim.report.studies import placebo_qq

    png = tmp_path / "qq.png"
    placebo_qq(real, {"pooled": pooled}).savefig(png, dpi=100)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gm_areas_predate_every_default_start():
    # the covariates are 2015 means; the earliest default start is 2015-12
    periods = read_panel(GM / "claimants_history.csv", GM / "areas.csv").periods
    first = start_indices(periods, pre=12, horizon=12)[0]
    assert periods[first] == "2015-12"
    assert read_areas(GM / "areas.csv").covariate_names == ("claimant_rate_2015",
                                                             "log_count_2015")


def test_placebo_csv_lists_donors_and_names(gm_panel, tmp_path):
    p = placebo_backtest(gm_panel, donors=[3], weights=["synthetic"], starts=["2016-01"])
    path = tmp_path / "p.csv"
    p.write_csv(path, {"E05000704": "Harpurhey"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 216
    row = next(line for line in lines if line.startswith("2016-01,synthetic,3,E05000704,"))
    assert ",Harpurhey,Manchester," in row
    weights = [float(x.split(":")[1]) for x in row.split(",")[-1].split()]
    assert sum(weights) == pytest.approx(1.0, abs=2e-3)


def test_read_panel_rejects_bad_values(tmp_path: Path):
    (tmp_path / "areas.csv").write_text("area,region,x\na,R,1\nb,R,2\n", encoding="utf-8")
    (tmp_path / "h.csv").write_text("area,region,period,value\na,R,2015-01,0\n",
                                    encoding="utf-8")
    with pytest.raises(ConfigError, match=r"value must be a number in \[1e-06, 1e\+12\]") as info:
        read_panel(tmp_path / "h.csv", tmp_path / "areas.csv")
    assert "\n" not in str(info.value)
