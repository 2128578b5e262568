"""Run-time warnings: one line each on stderr, never a traceback, none with --quiet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from lobsim.analysis.power import noise_warning
from lobsim.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
BOOK = str(ROOT / "configs" / "basket_demo.toml")
BHAM = str(ROOT / "configs" / "birmingham_jsa.toml")


def _summary(snr: list[float]) -> xr.Dataset:
    return xr.Dataset({"signal_to_noise": (("bond",), np.array(snr))},
                      coords={"bond": [f"b{i}" for i in range(len(snr))]})


def test_the_noise_warning_names_exactly_the_bonds_below_one():
    line = noise_warning(_summary([0.99, 1.0, np.inf, 0.3]))
    assert line is not None and line.startswith("2 of 4 bonds have signal-to-noise below 1")
    assert "b0 (0.99)" in line and "b3 (0.30)" in line and "b1" not in line and "b2" not in line
    assert noise_warning(_summary([1.0, 2.5, np.inf])) is None
    many = noise_warning(_summary([0.5] * 9))
    assert many is not None and "and 3 more" in many and "\n" not in many


def test_run_warns_of_noise_dominated_bonds_in_one_line(capsys):
    assert main(["run", BOOK, "--scenarios", "2048", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    warned = [ln for ln in err.splitlines() if ln.startswith("lobsim: warning: ")]
    # the demo book keeps four noise-dominated claimant bonds (tools/size_basket_demo.py)
    assert len(warned) == 1 and warned[0].startswith("lobsim: warning: 4 of 60 bonds")
    for bond in ("north_west_18-jsa", "east_of_england_04-jsa", "east_of_england_08-jsa",
                 "south_west_13-jsa"):
        assert bond in warned[0]


def test_quiet_runs_print_nothing_and_a_clean_bond_no_warning(capsys):
    assert main(["run", BOOK, "--scenarios", "2048", "--threads", "1", "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    # the Appendix bond: signal-to-noise about 1.6 (docs/model.md section 6.10)
    assert main(["run", BHAM, "--scenarios", "2048", "--threads", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
