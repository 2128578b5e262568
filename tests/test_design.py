"""``lobsim design``: the search recovers the brute-force best, skips invalid designs, CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from lobsim.analysis import design as design_module
from lobsim.analysis.design import SCHEMA, Lever, design, frontier, recommend
from lobsim.analysis.summary import summarize
from lobsim.cli.commands import main
from lobsim.model.config import load_config
from lobsim.model.simulate import simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BHAM = CONFIGS / "birmingham_jsa.toml"
N = 2000
SEED = 7
#: The candidates of the small world's search, and the fields they set by hand.
CANDIDATES = {"donors": ["3", "5", "10"], "cap": ["1", "1.2"], "threshold": ["0", "0.05"]}
TARGET = 5000  # configs/birmingham_jsa.toml: bonds[0].target_units
#: A bound some designs meet and some do not (they default in about half the scenarios).
BOUND = 0.56


def _by_hand(donors: str, cap: str, threshold: str) -> dict[str, float]:
    sets = [f"bonds[0].control.donors={donors}", f"bonds[0].payment.cap={float(cap) * TARGET}",
            f"bonds[0].payment.threshold={threshold}"]
    s = summarize(simulate(load_config(BHAM, sets), scenarios=N, seed=SEED)).isel(bond=0)
    return {name: float(s[name]) for name in ("default_probability", "expected_overpayment",
                                               "expected_provider_shortfall_value",
                                               "signal_to_noise", "expected_loss")}


@pytest.fixture(scope="module")
def brute_force():
    return {values: _by_hand(*values) for values in itertools.product(*CANDIDATES.values())}


@pytest.fixture(scope="module")
def full():
    return design(BHAM, bond="bham-jsa", levers=CANDIDATES, scenarios=N, seed=SEED,
                  max_default=BOUND, full_grid=True)


def test_the_search_recovers_the_brute_force_best(full, brute_force):
    ok = {k: v for k, v in brute_force.items() if v["default_probability"] <= BOUND}
    assert ok and len(ok) < len(brute_force)  # the criterion bites
    best = min(ok, key=lambda k: ok[k]["expected_overpayment"])
    i = int(full.attrs["recommended"])
    assert tuple(str(full[n].values[i]) for n in CANDIDATES) == best
    assert full.recommended.values.sum() == 1 and full.recommended.values[i]


def test_every_design_is_the_run_with_its_overrides(full, brute_force):
    # common random numbers: each design equals `run --set ...` bit for bit
    assert full.sizes["design"] == len(brute_force)
    for i in range(full.sizes["design"]):
        key = tuple(str(full[n].values[i]) for n in CANDIDATES)
        for name, value in brute_force[key].items():
            assert float(full[name].values[i]) == value, (key, name)
    assert full.label.values[0] == "contracted"


def test_the_default_search_is_one_at_a_time_then_a_grid_of_two(brute_force):
    d = design(BHAM, bond="bham-jsa", levers=CANDIDATES, scenarios=N, seed=SEED)
    now = ("5", "1", "0")  # the contracted design
    names = list(CANDIDATES)
    # influence by hand: the range of E[loss] + E[overpayment] over a lever's one-at-a-time
    # designs (one principal for all of them, so it scales out)
    score = {}
    for j, name in enumerate(names):
        own = [brute_force[(*now[:j], v, *now[j + 1:])] for v in CANDIDATES[name]]
        score[name] = sum(np.ptp([o[k] for o in own]) for k in ("expected_loss",
                                                                  "expected_overpayment"))
    grid = sorted(names, key=lambda n: -score[n])[:2]
    assert json.loads(d.attrs["grid_levers"]) == [n for n in names if n in grid]
    expected = {(*now[:j], v, *now[j + 1:]) for j, n in enumerate(names) for v in CANDIDATES[n]}
    a, b = (names.index(n) for n in grid)
    for va, vb in itertools.product(CANDIDATES[grid[0]], CANDIDATES[grid[1]]):
        key = list(now)
        key[a], key[b] = va, vb
        expected.add(tuple(key))
    got = [tuple(str(d[n].values[i]) for n in names) for i in range(d.sizes["design"])]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    for i, key in enumerate(got):
        assert float(d.default_probability.values[i]) == brute_force[key]["default_probability"]


def test_frontier_and_recommendation_by_hand():
    over = np.array([5.0, 3.0, 4.0, 3.0, 6.0])
    dflt = np.array([0.2, 0.3, 0.1, 0.35, 0.1])
    # 1 beats 3 (same overpayment, lower P); 2 beats 0 and 4 (at most as much of both)
    np.testing.assert_array_equal(frontier(over, dflt), [False, True, True, False, False])
    assert recommend(over, dflt, 0.25) == 2
    assert recommend(over, dflt, 0.3) == 1
    assert recommend(over, dflt, 0.05) == -1


def test_invalid_values_are_skipped_with_a_reason():
    d = design(BHAM, bond="bham-jsa", levers={"donors": ["3", "500"]}, scenarios=N, seed=SEED)
    skipped = json.loads(d.attrs["skipped"])
    assert list(skipped) == ["donors=500"]
    assert "199 untreated areas" in skipped["donors=500"] and "\n" not in skipped["donors=500"]
    assert sorted(d.donors.values.tolist()) == ["3", "5"]


def test_a_lever_the_schema_refuses_is_not_searched(monkeypatch):
    colour = Lever("colour", "colour", "bonds[{id}].payment.colour", ("red", "blue"),
                   lambda b: b.payment.colour)
    monkeypatch.setattr(design_module, "LEVERS", (*design_module.LEVERS[:1], colour))
    d = design(BHAM, bond="bham-jsa", scenarios=N, seed=SEED)
    assert json.loads(d.attrs["levers"]) == ["donors"]
    reason = json.loads(d.attrs["levers_not_searched"])["colour"]
    assert "not a known field" in reason


def test_a_basket_lever_sets_every_member():
    d = design(CONFIGS / "basket_demo.toml", basket="north", levers={"cap": ["1", "1.5"]},
               scenarios=N, seed=SEED)
    assert d.attrs["instrument_kind"] == "basket" and d.sizes["design"] == 2
    # a higher cap on every member pays more for noise: more overpayment, less default
    assert d.expected_overpayment.values[1] > d.expected_overpayment.values[0]
    assert d.default_probability.values[1] <= d.default_probability.values[0]


def test_cli_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "frontier.png"
    code = main(["design", str(BHAM), "--bond", "bham-jsa", "--lever", "donors=3,5",
                 "--lever", "cap=1,1.2", "--scenarios", str(N), "--json", "--plot", str(plot)])
    assert code == 0 and plot.stat().st_size > 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == SCHEMA and out["bond"] == "bham-jsa"
    assert out["levers"] == ["donors", "cap"] and len(out["designs"]) == 4
    assert out["designs"][0]["label"] == "contracted"
    assert out["units"]["expected_overpayment"] == "GBP"


def test_cli_table(tmp_path, capsys):
    code = main(["design", str(BHAM), "--bond", "bham-jsa", "--lever", "threshold=0,0.05",
                 "--scenarios", str(N), "--no-plot", "--max-default", "0.9"])
    out = capsys.readouterr().out
    assert code == 0
    assert "E[overpayment] GBP" in out and "P(default) %" in out
    assert "criterion: least E[overpayment] with investor P(default) <= 90%" in out
    assert "recommended: design 1 (threshold=0.05)" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--lever", "colour=red"], "--lever colour=red: no lever 'colour'"),
    (["--lever", "donors=3,"], "none may be empty"),
    (["--lever", "measurement"], "the measurement lever is a basket's"),
    (["--full-grid", "--max-designs", "3"], "more than the bound 3"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    code = main(["design", str(BHAM), "--bond", "bham-jsa", "--scenarios", str(N),
                 "--no-plot", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_a_relative_lever_of_a_basket_with_mixed_values_asks_for_values():
    d = design(CONFIGS / "basket_demo.toml", basket="north", levers={"maturity": None,
                                                                      "cap": ["1", "1.2"]},
               scenarios=N, seed=SEED)
    assert json.loads(d.attrs["levers"]) == ["cap"]
    assert "--lever maturity=V1,V2" in json.loads(d.attrs["levers_not_searched"])["maturity"]


def test_the_figure_joins_the_frontier_and_marks_the_recommendation(full):
    from lobsim.report.design import design_figure

    ax = design_figure(full).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    front = full.frontier.values
    np.testing.assert_array_equal(lines["frontier"].get_xdata(),
                                  np.sort(full.expected_overpayment.values[front]))
    best = int(full.attrs["recommended"])
    assert lines["recommended"].get_xdata()[0] == full.expected_overpayment.values[best]
    assert lines["contracted"].get_ydata()[0] == full.default_probability.values[0]


POOL = "pooled_referrals"  # configs/basket_demo.toml: six referral bonds a bank could pool


@pytest.fixture(scope="module")
def pooled():
    return design(CONFIGS / "basket_demo.toml", basket=POOL, levers={"measurement": None},
                  scenarios=N, seed=SEED)


def test_a_pooled_design_reports_the_pools_noise(pooled):
    assert pooled.measurement.values.tolist() == ["separate", "pooled"]
    assert pooled.pooled.values.tolist() == [False, True]
    # by hand on the run the pooled design is: the pool's summed prediction error
    ds = simulate(load_config(CONFIGS / "basket_demo.toml",
                              [f"baskets[{POOL}].measurement=pooled"]), scenarios=N, seed=SEED)
    member = ds.basket_member.sel(basket=POOL).values
    assert member.sum() == 6
    err = ds.prediction_error.values[:, member].sum(axis=1)
    target = ds.target_units.values[member].sum()
    assert float(pooled.signal_to_noise[1]) == pytest.approx(target / err.std(), rel=1e-12)
    # MDE: the 95% quantile less the 20% quantile, each the ceil(p n)-th smallest value
    # (docs/model.md sections 6.11 and 9.2)
    q = np.sort(err)[[int(np.ceil(round(p * N, 9))) - 1 for p in (0.95, 0.20)]]
    assert float(pooled.minimum_detectable_effect_share[1]) == pytest.approx(
        (q[0] - q[1]) / target, rel=1e-12)
    # measured separately: the noisiest bond's
    s = summarize(simulate(load_config(CONFIGS / "basket_demo.toml"), scenarios=N, seed=SEED))
    assert float(pooled.signal_to_noise[0]) == float(s.signal_to_noise.values[member].min())
    # independent-ish errors diversify: six bonds of signal-to-noise about 2.5 pool to about 6
    assert float(pooled.signal_to_noise[1]) > 2.0 * float(pooled.signal_to_noise[0])
    # the basket's money columns are its bonds' sums
    assert float(pooled.expected_overpayment[1]) == pytest.approx(
        ds.overpayment.values[:, member].sum(axis=1).mean(), rel=1e-12)


def test_the_pooled_table_says_whose_noise_and_the_cross_subsidy(pooled):
    out = design_module.format_design(pooled)
    assert "S/N and MDE of the pool's summed measurement in designs measured pooled" in out
    assert "cross-subsidy" in out and "sums of its bonds'" in out
    row = json.loads(json.dumps(design_module.design_dict(pooled)))["designs"][1]
    assert row["pooled"] is True and row["levers"] == {"measurement": "pooled"}
