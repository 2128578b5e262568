"""Output paths are checked before any work starts, and integer options are bounded.

Every case is one line on stderr and exit status 2, and none of them may
start the work it would lose: the simulation, calibration, backtest or
report functions are replaced by ones that fail the test if called.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import xarray as xr

from lobsim.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "birmingham_jsa.toml")
HISTORY = "lobsim:gm/claimants_history.csv"
PREFIX = "lobsim: error: "

#: Where each command's work starts (module, function).
WORK = [("lobsim.model.simulate", "simulate"), ("lobsim.scale.runner", "run"),
        ("lobsim.validation.calibrate", "calibrate"), ("lobsim.model.areas", "read_outcome"),
        ("lobsim.validation.backtest", "read_panel"), ("lobsim.analysis.maturity", "choose_maturity"),
        ("lobsim.cli.scale", "load_results")]


@pytest.fixture
def no_work(monkeypatch):
    def started(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    # every module imported before any is patched: a module first imported while
    # another is patched (backtest's ``from lobsim.model.areas import read_outcome``)
    # would keep the stand-in after monkeypatch has undone it
    modules = [importlib.import_module(module) for module, _ in WORK]
    for module, (_, name) in zip(modules, WORK, strict=True):
        monkeypatch.setattr(module, name, started)


@pytest.fixture
def place(tmp_path, monkeypatch) -> Path:
    """A working directory with FILE, DIR.nc, u.toml/ (a folder), EXISTING.{nc,png,toml}
    and bt/summary.csv."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "DIR.nc").mkdir()
    (tmp_path / "DIR.png").mkdir()
    (tmp_path / "u.toml").mkdir()
    for name in ("EXISTING.nc", "EXISTING.png", "EXISTING.toml"):
        (tmp_path / name).write_text("keep me")
    (tmp_path / "bt").mkdir()
    (tmp_path / "bt" / "summary.csv").write_text("keep me")
    return tmp_path


# (argv, what the one line says)
CASES = [
    (["run", CONFIG, "--out", "FILE/x.nc"], "--out FILE/x.nc: FILE is not a directory"),
    (["run", CONFIG, "--out", "FILE/sub/x.nc"], "--out FILE/sub/x.nc: FILE is not a directory"),
    (["run", CONFIG, "--out", "/proc/x.nc"], "--out /proc/x.nc: cannot create a file in /proc"),
    (["run", CONFIG, "--out", "/sys/x.nc"], "--out /sys/x.nc: cannot create a file in /sys"),
    (["run", CONFIG, "--force", "--out", "DIR.nc"], "--out DIR.nc: is a directory"),
    (["run", CONFIG, "--out", "EXISTING.nc"],
     "--out EXISTING.nc: the file exists; pass --force to overwrite it"),
    (["run", CONFIG, "--out", "FILE/x.zarr"], "--out FILE/x.zarr: FILE is not a directory"),
    (["run", CONFIG, "--out", "FILE", "--force"], "results are written as netCDF (.nc) or zarr"),
    (["run", CONFIG, "--out", "/proc/x.zarr", "--stream"], "cannot create a file in /proc"),
    (["calibrate", HISTORY, "--out", "/proc/u.toml"],
     "--out /proc/u.toml: cannot create a file in /proc"),
    (["calibrate", HISTORY, "--out", "FILE/u.toml"], "--out FILE/u.toml: FILE is not a directory"),
    (["calibrate", HISTORY, "--out", "EXISTING.toml"], "EXISTING.toml: the file exists"),
    (["calibrate", HISTORY, "--out", "u.toml", "--force"], "--out u.toml: is a directory"),
    (["backtest", HISTORY, "--out", "FILE"], "--out FILE: exists and is not a directory"),
    (["backtest", HISTORY, "--out", "FILE/sub"], "--out FILE/sub: FILE is not a directory"),
    (["backtest", HISTORY, "--out", "/proc/bt"], "--out /proc/bt: cannot create a file in /proc"),
    (["backtest", HISTORY, "--out", "bt"], "--out bt/summary.csv: the file exists; pass --force"),
    (["report", "x.nc", "--out", "FILE/sub"], "--out FILE/sub: FILE is not a directory"),
    (["report", "x.nc", "--out", "FILE"], "--out FILE: exists and is not a directory"),
    (["report", "x.nc", "--out", "/proc/r"], "--out /proc/r: cannot create a file in /proc"),
    (["maturity", CONFIG, "--plot", "EXISTING.png"],
     "--plot EXISTING.png: the file exists; pass --force to overwrite it"),
    (["maturity", CONFIG, "--plot", "FILE/t.png"], "--plot FILE/t.png: FILE is not a directory"),
    (["maturity", CONFIG, "--plot", "DIR.png", "--force"], "--plot DIR.png: is a directory"),
    (["maturity", CONFIG, "--plot", "/proc/t.png"], "cannot create a file in /proc"),
]


@pytest.mark.parametrize(("argv", "says"), CASES, ids=[" ".join(a[:1] + a[2:]) for a, _ in CASES])
def test_a_bad_output_path_is_one_line_before_any_work(argv, says, place, no_work, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(PREFIX) and says in err, err
    # nothing was touched
    assert (place / "EXISTING.nc").read_text() == "keep me"
    assert (place / "bt" / "summary.csv").read_text() == "keep me"
    assert not list(place.glob(".*"))  # no probe or temporary file left behind


def test_missing_folders_are_created_and_the_nc_replaced_whole(place, capsys):
    """The counterpart: a missing parent is made, --force replaces a file by a rename."""
    out = place / "new" / "sub" / "x.nc"
    assert main(["run", CONFIG, "--scenarios", "500", "--quiet", "--out", str(out)]) == 0
    first = xr.load_dataset(out)
    assert main(["run", CONFIG, "--scenarios", "600", "--quiet", "--force", "--out",
                 str(out)]) == 0
    assert xr.load_dataset(out).sizes["scenario"] == 600 and first.sizes["scenario"] == 500
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.nc"]  # no temporary left
    assert capsys.readouterr().err == ""


def test_maturity_plot_overwrites_only_with_force(place, capsys):
    argv = ["maturity", CONFIG, "--years", "3,4", "--scenarios", "400", "--plot", "EXISTING.png"]
    assert main(argv) == 2
    assert (place / "EXISTING.png").read_text() == "keep me"
    assert main([*argv, "--force"]) == 0
    assert (place / "EXISTING.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()


TOO_BIG_SEED = "1180591620717411303424"  # 2**70: simulated, then could not be saved


@pytest.mark.parametrize(("argv", "says"), [
    (["run", CONFIG, "--seed", TOO_BIG_SEED],
     "argument --seed: must be at most 9223372036854775807 (2**63 - 1, as [simulation] seed)"),
    (["price", CONFIG, "--target-irr", "0", "--seed", TOO_BIG_SEED], "argument --seed: must be"),
    (["maturity", CONFIG, "--seed", TOO_BIG_SEED], "argument --seed: must be at most"),
    (["backtest", HISTORY, "--seed", TOO_BIG_SEED], "argument --seed: must be at most"),
    (["price", CONFIG, "--target-irr", "0", "--seed", "-1"], "--seed: must not be negative"),
    (["run", CONFIG, "--scenarios", "100_000_000_001"],
     "--scenarios: must be at most 100000000000 (as [simulation] scenarios)"),
    (["run", CONFIG, "--chunk-size", "0"], "--chunk-size: must be at least 1"),
    (["run", CONFIG, "--chunk-size", "10**12"], "--chunk-size: must be a whole number"),
    (["run", CONFIG, "--threads", "1025"], "--threads: must be at most 1024"),
    (["run", CONFIG, "--workers", "257"], "--workers: must be at most 256"),
    (["run", CONFIG, "--workers", "0"], "--workers: must be at least 1"),
    (["run", CONFIG, "--pilot-scenarios", "1" + "0" * 12], "--pilot-scenarios: must be at most"),
    (["maturity", CONFIG, "--threads", "99999"], "--threads: must be at most 1024"),
    (["price", CONFIG, "--target-irr", "0", "--scenarios", "0"], "--scenarios: must be at least 1"),
    (["backtest", HISTORY, "--replicates", "10000001"], "--replicates: must be at most 1000000"),
    (["backtest", HISTORY, "--pre", "0"], "--pre: must be at least 1"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_integer_options_are_bounded(argv, says, no_work, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err


def test_donor_pool_sizes_are_bounded(no_work, capsys):
    assert main(["backtest", HISTORY, "--donors", "3,10000001"]) == 2
    assert "--donors 3,10000001: give whole numbers from 1 to 1000000" in capsys.readouterr().err
