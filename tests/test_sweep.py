"""``lobsim sweep``: points on common random numbers, the summary's statistics, JSON, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lobsim.analysis.stats import probability_interval
from lobsim.analysis.summary import summarize
from lobsim.analysis.sweep import SCHEMA, sweep
from lobsim.cli.commands import main
from lobsim.model.config import load_config
from lobsim.model.simulate import simulate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BHAM = CONFIGS / "birmingham_jsa.toml"
N = 2000
TARGETS = ["4000", "5000"]


@pytest.fixture(scope="module")
def two_points():
    return sweep(BHAM, [("bonds[0].target_units", TARGETS)], scenarios=N, seed=11)


def test_a_point_is_a_plain_run_with_the_same_set(two_points):
    # common random numbers: the point at 4000 is `run --set bonds[0].target_units=4000`
    for k, target in enumerate(TARGETS):
        cfg = load_config(BHAM, [f"bonds[0].target_units={target}"])
        s = summarize(simulate(cfg, scenarios=N, seed=11))
        at = two_points.isel({"bonds[0].target_units": k})
        for name in ("default_probability", "mean_multiple", "expected_overpayment",
                     "expected_provider_shortfall_value"):
            np.testing.assert_array_equal(at[name].values, s[name].values)
            np.testing.assert_array_equal(at[name + "_se"].values, s[name + "_se"].values)
        low, high = probability_interval(s.default_probability.values,
                                         s.default_probability_se.values, N)
        np.testing.assert_array_equal(at.default_probability_low.values, low)
        np.testing.assert_array_equal(at.default_probability_high.values, high)
        assert str(at.config_hash.values) == cfg.hash


def test_sweep_dataset_is_labelled(two_points):
    s = two_points
    assert s["bonds[0].target_units"].values.tolist() == [4000, 5000]
    assert s.default_probability.dims == ("bonds[0].target_units", "bond")
    assert s.expected_overpayment.attrs["units"] == "GBP"
    # principal = target x cost_per_unit (2,000 in configs/birmingham_jsa.toml, the
    # report's Appendix): 4,000 and 5,000 units
    assert s.principal.sel(bond="bham-jsa").values.tolist() == [8_000_000.0, 10_000_000.0]
    assert s.attrs["common_random_numbers"] == 1
    assert "basket" not in s.dims  # the config has no baskets: its "all" basket is the bond


def test_two_parameters_make_a_grid():
    s = sweep(BHAM, [("bonds[0].target_units", TARGETS), ("simulation.seed", ["1", "2"])],
              scenarios=500)
    assert s.default_probability.shape == (2, 2, 1)
    assert s.seed.values.tolist() == [[1, 2], [1, 2]]
    assert s.attrs["common_random_numbers"] == 0  # the seed is swept


def test_cli_sweep_json_and_plot(tmp_path, capsys):
    plot = tmp_path / "s.png"
    assert main(["sweep", str(BHAM), "--set", "bonds[0].target_units=4000,5000",
                 "--set", "bonds[0].payment.cap=6000", "--scenarios", "500", "--json",
                 "--plot", str(plot)]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["schema"] == SCHEMA
    assert doc["common_random_numbers"] is True
    assert doc["overrides"] == ["bonds[0].payment.cap=6000"]
    assert doc["parameters"] == [{"path": "bonds[0].target_units", "values": [4000, 5000]}]
    assert doc["units"]["expected_overpayment"] == "GBP"
    assert [p["values"] for p in doc["points"]] == [{"bonds[0].target_units": 4000},
                                                    {"bonds[0].target_units": 5000}]
    (row,) = doc["points"][0]["bonds"]
    lo, hi = row["default_probability_low"], row["default_probability_high"]
    assert lo <= row["default_probability"] <= hi
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"sweep plotted to {plot}" in err  # stdout stays JSON


def test_cli_sweep_table_writes_the_default_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", str(BHAM), "--set", "bonds[0].target_units=4000,5000",
                 "--scenarios", "500"]) == 0
    out = capsys.readouterr().out
    assert "P(default) %" in out and "E[overpayment] GBP" in out
    assert "common random numbers" in out
    assert "sweep plotted to sweep.png" in out
    assert (tmp_path / "sweep.png").is_file()
    # a second run does not overwrite it silently
    assert main(["sweep", str(BHAM), "--set", "bonds[0].target_units=4000,5000",
                 "--scenarios", "500"]) == 2
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize(("sets", "fragment"), [
    (["bonds[0].target_units=4000"], "nothing to sweep"),
    (["a=1,2", "b=1,2", "c=1,2"], "one or two parameters, got 3"),
    (["bonds[0].target_units=4000,4000"], "a value is repeated"),
    (["bonds[0].target_units=4000,-1"], "(set by --set bonds[0].target_units=-1)"),
    (["bonds[2].target_units=1,2"], "the config has 1 bond"),
])
def test_cli_sweep_errors_are_one_line(sets, fragment, capsys):
    argv = ["sweep", str(BHAM), "--scenarios", "200", "--no-plot"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("lobsim: error: "), err
    assert fragment in err
