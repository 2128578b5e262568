"""Figures of lobsim.report.plot: each draws what its docstring promises, from the results."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.colors as mcolors
import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle, StepPatch

from lobsim import load_config, simulate
from lobsim.analysis import stats
from lobsim.analysis.risk import risk_contributions
from lobsim.report import plot, studies
from lobsim.validation.backtest import Placebos

ROOT = Path(__file__).resolve().parents[1]
#: Small runs: the figures' statistics are checked against the same arrays,
#: so no Monte Carlo tolerance is involved.
SCENARIOS = 2000


@pytest.fixture(scope="module")
def bham() -> tuple[xr.Dataset, object]:
    cfg = load_config(ROOT / "configs" / "birmingham_jsa.toml")
    return simulate(cfg, scenarios=SCENARIOS), cfg


@pytest.fixture(scope="module")
def basket() -> tuple[xr.Dataset, object]:
    cfg = load_config(ROOT / "configs" / "basket_demo_noisy.toml")
    return simulate(cfg, scenarios=SCENARIOS), cfg


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def _steps(ax) -> list[StepPatch]:
    return [p for p in ax.patches if isinstance(p, StepPatch)]


def _shown_pd(text: str) -> tuple[float, float, float]:
    """P(default) and its 95% interval as written on a plot, in percent."""
    m = re.search(r"P\(default\) ([\d.]+)%(?: \(([\d.]+) to ([\d.]+)\))?", text)
    assert m is not None, text
    return float(m.group(1)), float(m.group(2) or "nan"), float(m.group(3) or "nan")


def _vlines_at(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines
            if len(set(np.atleast_1d(line.get_xdata()))) == 1]


# --------------------------------------------------------------------------
# return distributions
# --------------------------------------------------------------------------
@pytest.mark.parametrize(("measure", "breakeven", "scale"), [("multiple", 1.0, 1.0),
                                                             ("irr", 0.0, 100.0)])
def test_return_distribution_marks_breakeven_and_default(bham, measure, breakeven, scale):
    ds, _ = bham
    ax = plot.return_distribution(ds, bond="bham-jsa", measure=measure, bins=40)
    loss, gain = _steps(ax)
    assert loss.get_label() == "default (below break-even)"
    assert mcolors.to_hex(loss.get_facecolor()) == plot.LOSS
    assert mcolors.to_hex(gain.get_facecolor()) == plot.GAIN
    (lv, edges, _), (gv, gedges, _) = loss.get_data(), gain.get_data()
    assert 40 <= len(lv) <= 42  # 40 bins, shifted to put break-even on an edge
    np.testing.assert_array_equal(edges, gedges)
    assert np.min(np.abs(edges - breakeven)) < 1e-9
    # heights are shares of scenarios: they add up to one
    assert lv.sum() + gv.sum() == pytest.approx(1.0)
    x = ds[measure].values[:, 0] * scale
    assert edges[0] <= x.min() and x.max() <= edges[-1]
    # bins below break-even are in the loss patch, the others in the gain patch;
    # the loss patch holds exactly the scenarios below break-even
    below = (edges[:-1] + edges[1:]) / 2 < breakeven
    assert np.all(gv[below] == 0) and np.all(lv[~below] == 0)
    assert lv.sum() == pytest.approx(np.mean(x < breakeven))
    assert breakeven in _vlines_at(ax)
    pd = float(ds.default.values[:, 0].mean())
    se = np.sqrt(pd * (1 - pd) / (SCENARIOS - 1))  # sd with ddof 1 over sqrt n, as summarize
    (text,) = ax.texts
    shown, lo, hi = _shown_pd(text.get_text())
    assert shown == pytest.approx(100 * pd, abs=0.051)  # printed to 0.1 points
    # the report's one convention: the 95% Wilson interval (Wilson 1927)
    want = stats.probability_interval(pd, se, SCENARIOS)
    assert [lo, hi] == pytest.approx([100 * float(want[0]), 100 * float(want[1])], abs=0.051)
    assert "bham-jsa" in ax.get_title()
    assert ax.get_xlabel() == ("IRR (% a year)" if measure == "irr"
                               else "money multiple (payment / principal)")
    assert ax.get_ylabel() == "share of scenarios"


def test_return_distribution_of_a_basket_and_bad_arguments(basket):
    ds, _ = basket
    ax = plot.return_distribution(ds, basket="north")
    pd = float((ds.basket_payment.sel(basket="north")
                < ds.basket_principal.sel(basket="north")).mean())
    assert _shown_pd(ax.texts[0].get_text())[0] == pytest.approx(100 * pd, abs=0.051)
    assert ax.get_title() == "basket north: investor multiple"
    with pytest.raises(ValueError, match="give one of"):
        plot.return_distribution(ds, bond="x", basket="north")
    with pytest.raises(ValueError, match="no bond 'nope'"):
        plot.return_distribution(ds, bond="nope")


def test_return_distribution_weights_importance_sampled_runs(bham):
    ds, _ = bham
    lw = np.linspace(-1.0, 1.0, SCENARIOS)
    lw -= np.log(np.exp(lw).mean())  # likelihood ratios: mean weight one
    tilted = ds.assign(log_weight=("scenario", lw))
    ax = plot.return_distribution(tilted, bond="bham-jsa")
    # lobsim.analysis.stats: sum w 1{default} / n, not self-normalised
    pd = float((np.exp(lw) * ds.default.values[:, 0]).mean())
    assert _shown_pd(ax.texts[0].get_text())[0] == pytest.approx(100 * pd, abs=0.051)
    loss, gain = _steps(ax)
    assert loss.get_data()[0].sum() + gain.get_data()[0].sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------
# default probabilities
# --------------------------------------------------------------------------
def test_default_probability_sorted_with_error_bars(basket):
    ds, _ = basket
    ax = plot.default_probability(ds, top=10)
    bars = _bars(ax)
    assert len(bars) == 10
    pd = ds.default.values.mean(axis=0)
    top = np.sort(pd)[::-1][:10]
    # highest at the top (largest y), widths in percent
    by_y = sorted(bars, key=lambda b: -b.get_y())
    np.testing.assert_allclose([b.get_width() for b in by_y], 100 * top)
    labels = [t.get_text() for t in ax.get_yticklabels()]  # top to bottom
    np.testing.assert_allclose(pd[[list(ds.bond.values).index(k) for k in labels]], top)
    (errors,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    ends = sorted((min(seg[0][0], seg[1][0]), max(seg[0][0], seg[1][0]))
                  for seg in errors.get_segments())
    se = np.sqrt(top * (1 - top) / (SCENARIOS - 1))  # sd with ddof 1 over sqrt n, as summarize
    # the bars are the 95% Wilson interval of the tables, not p -+ 1.96 se
    lo, hi = stats.probability_interval(top, se, SCENARIOS)
    np.testing.assert_allclose(ends, sorted(zip(100 * lo, 100 * hi, strict=True)), atol=1e-9)
    assert "highest 10 of 60" in ax.get_title()
    assert ax.get_xlabel().startswith("P(default) (%)")


def test_default_probability_of_baskets(basket):
    ds, _ = basket
    ax = plot.default_probability(ds, dim="basket")
    assert len(_bars(ax)) == ds.sizes["basket"]
    assert ax.get_title() == "Default probability by basket"


# --------------------------------------------------------------------------
# departments
# --------------------------------------------------------------------------
def test_department_fan_bands_and_savings(bham):
    ds, _ = bham
    ax = plot.department_fan(ds, "DWP")
    pay = ds.department_payment.sel(department="DWP").values
    save = ds.department_saving.sel(department="DWP").values
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["payments, median"].get_ydata(),
                               np.quantile(pay, 0.5, axis=0, method="inverted_cdf"))
    np.testing.assert_allclose(lines["savings, mean"].get_ydata(), save.mean(axis=0))
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert {c.get_label() for c in bands} == {"payments, 90% band", "payments, 50% band"}
    # the 90% band's top edge in the maturity year is the 95% quantile
    top90 = bands[0].get_paths()[0].vertices[:, 1].max()
    assert top90 == pytest.approx(np.quantile(pay[:, -1], 0.95, method="inverted_cdf"))
    assert ax.get_xlabel() == "year after the base year"
    assert ax.get_ylabel() == "GBP per year"
    assert "DWP" in ax.get_title()


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(-1e6, 1e6)),
       st.floats(0.01, 0.99))
def test_weighted_quantiles_with_equal_weights_are_inverted_cdf(x, q):
    w = np.full(x.size, 1.0 / x.size)
    got = plot._quantiles(x[:, None], w, [q])[0, 0]
    k = q * x.size
    if abs(k - round(k)) < 1e-9:
        # a level on a jump of the cdf: which side it lands on is rounding
        # (in numpy's q n as in our cumulative weights), so either neighbour
        xs = np.sort(x)
        j = round(k)
        assert got in {xs[max(j - 1, 0)], xs[min(j, x.size - 1)]}
    else:
        assert got == np.quantile(x, q, method="inverted_cdf")


def test_weighted_quantile_on_a_jump_is_the_smallest_value_reaching_the_level():
    # inverted cdf: the smallest x with F(x) >= q; F(-1) = 3/9 = 1/3 exactly,
    # though 3 x (1/9) in floating point is one ulp below 1/3
    x = np.array([-1.0] * 3 + [0.0] * 6)
    got = plot._quantiles(x[:, None], np.full(9, 1 / 9), [1 / 3])[0, 0]
    assert got == -1.0


# --------------------------------------------------------------------------
# control groups
# --------------------------------------------------------------------------
def test_control_label_names_the_weighted_donors():
    w = np.array([0.0, 0.41, 0.33, 0.26])
    assert (plot.control_label(["A", "B", "C", "D"], w, "synthetic")
            == "synthetic control: 0.41 B + 0.33 C + 0.26 D")
    five = np.full(5, 0.2)
    assert (plot.control_label(list("ABCDE"), five, "equal")
            == "equal-weight control of 5 donors (1/5 each)")
    assert (plot.control_label(list("ABCDE"), five, "synthetic")
            == "synthetic control: weighted control of 5 donors")


def test_control_fit_pre_period_and_simulated_bands(bham):
    ds, cfg = bham
    fig = plot.control_fit(ds, cfg, "bham-jsa")
    top, bottom = fig.axes
    treated, synthetic = top.lines[:2]
    # both start from the treated area's base value (50,000 claimants, Appendix)
    assert treated.get_ydata()[-1] == pytest.approx(50_000, rel=0.01)
    assert synthetic.get_ydata()[-1] == treated.get_ydata()[-1]
    assert treated.get_xdata()[-1] == 0.0 and treated.get_xdata()[0] < 0.0
    assert f"RMSPE {float(ds.rmspe[0]):.3f}" in top.get_title()
    # the legend shows the weighted control, not a plain mean
    assert synthetic.get_label() == plot.control_label(
        [str(a) for a in ds.control_donor.values[0]], ds.control_weight.values[0],
        cfg.bonds[0].control.weights)
    assert "mean of" not in synthetic.get_label()
    # the gap is the synthetic control less the treated area over the pre-period
    gap = bottom.lines[0]
    np.testing.assert_allclose(gap.get_ydata(), synthetic.get_ydata() - treated.get_ydata())
    # boxes at maturity: medians of prediction error and measured units
    medians = sorted(seg[0][1] for c in bottom.collections if isinstance(c, LineCollection)
                     for seg in c.get_segments() if seg[0][1] == seg[1][1])
    want = sorted(np.quantile(ds[v].values[:, 0], 0.5, method="inverted_cdf")
                  for v in ("prediction_error", "measured_units"))
    np.testing.assert_allclose(medians, want)
    hlines = {line.get_label(): line.get_ydata()[0] for line in bottom.lines[1:]}
    assert hlines["target 5,000"] == 5000
    # Appendix: break-even at 2000/2340 of the target
    assert hlines["break-even 4,274"] == pytest.approx(5000 * 2000 / 2340)
    assert "claimants" in bottom.get_ylabel()


def test_control_fit_of_a_percentage_outcome(basket):
    ds, cfg = basket
    fig = plot.control_fit(ds, cfg, "north_east_11-referral")
    top, bottom = fig.axes
    treated, synthetic = (line.get_ydata() for line in top.lines[:2])
    np.testing.assert_allclose(bottom.lines[0].get_ydata(),
                               100 * (synthetic - treated) / synthetic)
    assert "% of control" in bottom.get_ylabel()


def test_control_fit_refuses_another_config(bham, basket):
    ds, _ = bham
    _, other = basket
    with pytest.raises(ValueError, match="no bond"):
        plot.control_fit(ds, other, "north_east_11-jsa")
    ds_b, cfg_b = basket
    shifted = ds_b.assign(rmspe=ds_b.rmspe + 0.01)
    with pytest.raises(ValueError, match="does not match the results"):
        plot.control_fit(shifted, cfg_b, "north_east_11-jsa")


# --------------------------------------------------------------------------
# baskets
# --------------------------------------------------------------------------
def test_tranche_losses_start_at_default_probability(basket):
    ds, _ = basket
    ax = plot.tranche_losses(ds, "north")
    tranches = np.flatnonzero(ds.tranche_basket.values == "north")
    assert len(ax.lines) == tranches.size + 1  # and the whole basket
    for line in ax.lines[:-1]:
        t = next(t for t in tranches if line.get_label().startswith(
            str(ds.tranche_id.values[t]) + " "))
        principal = float(ds.tranche_principal.values[t])
        pd = float((ds.tranche_payment.values[:, t] < principal).mean())
        # P(loss > 0) is the default probability (up to losses below 1e-9 of principal)
        assert line.get_ydata()[0] == pytest.approx(pd, abs=1.5 / SCENARIOS)
        assert np.all(np.diff(line.get_ydata()) <= 1e-12)  # a survival function
        assert _shown_pd(line.get_label())[0] == pytest.approx(100 * pd, abs=0.051)
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "loss x (% of principal)"
    with pytest.raises(ValueError, match="no tranches"):
        plot.tranche_losses(ds, "south")


@pytest.mark.parametrize("by", ["bond", "provider", "intervention", "region"])
def test_risk_contributions_add_up_to_expected_shortfall(basket, by):
    ds, _ = basket
    c = risk_contributions(ds, "north", 0.99)
    ax = plot.risk_contributions(c, by=by, top=5)
    filled = [b for b in _bars(ax) if b.get_facecolor()[3] > 0]
    n = c.sizes["bond" if by == "bond" else f"by_{by}"]
    assert len(filled) == min(n, 6)  # five largest and the others summed
    assert sum(b.get_width() for b in filled) == pytest.approx(float(c.expected_shortfall))
    outlines = [b for b in _bars(ax) if b.get_facecolor()[3] == 0]
    assert len(outlines) == (len(filled) if by == "bond" else 0)
    assert f"by {by}" in ax.get_title()
    assert "ES99" in ax.get_xlabel()


# --------------------------------------------------------------------------
# the placebo backtest
# --------------------------------------------------------------------------
def _placebos(change: np.ndarray, base: np.ndarray) -> Placebos:
    n = change.size
    counterfactual = base * 1.0
    return Placebos(start=np.full(n, "2016-01"), weights=np.full(n, "equal"),
                    donors=np.full(n, 5), area=np.array([f"a{i}" for i in range(n)]),
                    region=np.full(n, "r"), base=base, counterfactual=counterfactual,
                    observed=counterfactual * (1 - change / 100), rmspe=np.zeros(n),
                    horizon=12, pre=12)


def test_placebo_qq_plots_quantiles_against_each_other():
    rng = np.random.default_rng(0)
    base = np.exp(rng.uniform(5, 9, 300))
    real = _placebos(rng.normal(0, 3, 300), base)
    model = _placebos(rng.normal(0, 1, 300), base)
    fig = studies.placebo_qq(real, {"pooled": model})
    assert isinstance(fig, Figure)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["equal, k = 5, all areas",
                                               "equal, k = 5, smallest third",
                                               "equal, k = 5, largest third"]
    points, diagonal = axes[0].lines
    levels = np.linspace(0.005, 0.995, 199)
    np.testing.assert_allclose(points.get_xdata(), np.quantile(model.change, levels))
    np.testing.assert_allclose(points.get_ydata(), np.quantile(real.change, levels))
    assert diagonal.get_label() == "45 degrees"
    # real errors are three times as wide: the points are steeper than the diagonal
    slope = np.polyfit(points.get_xdata(), points.get_ydata(), 1)[0]
    assert 2.0 < slope < 4.5
    assert isinstance(points, Line2D)


def test_save_writes_png(tmp_path, bham):
    ds, _ = bham
    path = tmp_path / "x.png"
    plot.save(plot.default_probability(ds), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
