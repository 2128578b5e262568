"""Ctrl-C: one line on stderr, exit status 130, no traceback; a stopped store resumes exactly.

A real ``lobsim run`` process gets SIGINT (sent to its whole process group,
as a terminal does, so that Dask workers get it too) once its store holds a
few blocks; the exact command its line prints then finishes the run, and the
store equals an uninterrupted run's variable by variable (blocks are seeded
by their index, docs/scale.md, so equality is exact).
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate
from lobsim.cli.commands import build_parser, main
from lobsim.scale.store import read_store
from test_scale import _marked, _write_config

ROOT = Path(__file__).resolve().parents[1]
BLOCK, BLOCKS = 256, 160
LOBSIM = [sys.executable, "-m", "lobsim.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _interrupt(argv: list[str], store: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``lobsim argv`` in a new process group; SIGINT the group once 4 blocks are stored.

    Returns the finished process and its process group.
    """
    proc = subprocess.Popen([*LOBSIM, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while _marked(store).sum() < 4:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no block stored in time"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), proc.pid


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    """Whether every process of the group (Dask workers included) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _assert_equal_variable_by_variable(got, want) -> None:
    assert sorted(got.variables) == sorted(want.variables)
    for name in want.variables:
        a, b = got[name], want[name]
        assert a.dims == b.dims, name
        assert np.array_equal(a.values, b.values, equal_nan=a.dtype.kind == "f"), name
    assert got.attrs == want.attrs


@pytest.fixture
def spaced(tmp_path: Path) -> tuple[Path, Path]:
    """A config and a store path with a space and a quote: the command must quote them."""
    folder = tmp_path / "Bob's runs"
    folder.mkdir()
    config = _write_config(folder, BLOCK)
    return config, folder / "bham run.zarr"


@pytest.mark.parametrize("executor", [["--threads", "1"], ["--workers", "2"]],
                         ids=["threads", "workers"])
def test_ctrl_c_is_one_line_and_the_printed_command_resumes_exactly(spaced, executor):
    """With --workers the group's SIGINT reaches the workers too: none may print, none stay."""
    config, store = spaced
    n = BLOCK * BLOCKS
    argv = ["run", str(config), "--scenarios", str(n), "--out", str(store), "--quiet",
            "--chunk-size", str(2 * BLOCK), *executor]
    proc, group = _interrupt(argv, store)
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    head, _, command = lines[0].partition("; resume with: ")
    assert head == (f"lobsim: interrupted: run of {config} stopped; {store} keeps every "
                    "block finished")
    words = shlex.split(command)
    assert words[:2] == ["lobsim", "run"]
    assert vars(build_parser().parse_args(words[1:])) == vars(
        build_parser().parse_args([*argv, "--resume"]))
    assert _group_gone(group), "a Dask worker outlived the interrupted client"
    assert 4 <= _marked(store).sum() < BLOCKS  # stopped part way

    resumed = subprocess.run([*LOBSIM, *words[1:]], capture_output=True, text=True, env=ENV,
                             timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr == ""
    _assert_equal_variable_by_variable(read_store(store).load(),
                                       simulate(load_config(config), scenarios=n))


def test_ctrl_c_while_a_local_cluster_starts_is_held_until_it_started():
    """distributed cannot close a cluster interrupted inside its constructor (it asserts
    on the half-started workers, at exit too): the Ctrl-C waits for the start, then the
    whole cluster is closed and KeyboardInterrupt raised."""
    import distributed  # noqa: F401  (imported: the signal lands in the constructor)
    from distributed.core import Status
    from distributed.deploy.spec import SpecCluster

    from lobsim.scale.cluster import DaskExecutor

    before = set(SpecCluster._instances)
    # worker processes take well over a second to start; the signal comes at 0.2 s
    killer = subprocess.Popen(["sh", "-c", f"sleep 0.2; kill -INT {os.getpid()}"])
    try:
        try:
            DaskExecutor.local(2).close()
        except KeyboardInterrupt:
            outcome = "raised once started"
        else:
            outcome = "started before the signal"
        killer.wait()
        time.sleep(0.2)
    except KeyboardInterrupt:  # must not happen: it would have left the cluster behind
        outcome = "raised elsewhere"
    assert outcome == "raised once started"
    new = set(SpecCluster._instances) - before
    assert new and all(c.status == Status.closed for c in new)


def test_ctrl_c_of_a_run_without_a_store_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    config = _write_config(tmp_path, BLOCK)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("lobsim.model.simulate"), "simulate", interrupted)
    out = tmp_path / "x.nc"
    assert main(["run", str(config), "--scenarios", "1000", "--out", str(out)]) == 130
    assert capsys.readouterr().err == f"lobsim: interrupted: run of {config} stopped (nothing " \
                                      "written)\n"
    assert not out.exists() and list(tmp_path.iterdir()) == [config]


def test_an_interrupted_netcdf_write_leaves_no_file(tmp_path, monkeypatch, capsys):
    """The .nc is written to a temporary name and renamed: Ctrl-C mid-write leaves nothing."""
    import xarray as xr

    config = _write_config(tmp_path, BLOCK)
    real = xr.Dataset.to_netcdf

    def cut(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)  # the whole file, under its temporary name
        assert Path(path).parent == tmp_path and Path(path).name.startswith(".x.nc.")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", cut)
    assert main(["run", str(config), "--scenarios", "600", "--out", str(tmp_path / "x.nc"),
                 "--quiet"]) == 130
    assert "nothing written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [config.name]


LONG_COMMANDS = {
    "price": (["price", "{config}", "--target-irr", "0.03"], "lobsim.analysis.pricing.solve_loading"),
    "maturity": (["maturity", "{config}"], "lobsim.analysis.maturity.choose_maturity"),
    "calibrate": (["calibrate", "lobsim:gm/claimants_history.csv", "--out", "{tmp}/u.toml"],
                  "lobsim.validation.calibrate.calibrate"),
    "backtest": (["backtest", "lobsim:gm/claimants_history.csv"],
                 "lobsim.validation.backtest.placebo_backtest"),
    "report": (["report", "{results}", "--out", "{tmp}/r"], "lobsim.report.html.write_report"),
}


@pytest.mark.parametrize("command", sorted(LONG_COMMANDS))
def test_ctrl_c_of_the_other_long_commands_is_one_line(command, tmp_path, monkeypatch, capsys):
    argv, where = LONG_COMMANDS[command]
    config = ROOT / "configs" / "birmingham_jsa.toml"
    results = tmp_path / "bham.nc"
    if command == "report":
        assert main(["run", str(config), "--scenarios", "600", "--quiet", "--out",
                     str(results)]) == 0
    args = [a.format(config=config, tmp=tmp_path, results=results) for a in argv]

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(where, interrupted)
    assert main(args) == 130
    assert capsys.readouterr().err == f"lobsim: interrupted: {command} of {args[1]} stopped\n"


@pytest.mark.parametrize("argv", [
    ["run", "c d.toml", "--out", "o'x.zarr", "--force", "--scenarios", "1_000", "--seed", "0"],
    ["run", "c.toml", "--out=x.zarr", "--forc", "--stream", "--checkpoint-interval", "5",
     "--workers", "3", "--contributions", "--pilot-scenarios", "200", "--tail-basket", "a b"],
    ["run", "c.toml", "--out", "$HOME/x.zarr", "--resume", "--threads", "2",
     "--chunk-size", "512", "--importance-sampling", "--quiet"],
], ids=["quotes", "abbreviations", "shell-characters"])
def test_the_resume_command_parses_back_to_the_same_run(argv):
    """Whatever was typed (abbreviated, quoted, ``=``), the command printed is the run
    again with ``--resume`` and without ``--force``."""
    from lobsim.cli.interrupt import interrupted_line

    parser = build_parser()
    args = parser.parse_args(argv)
    line = interrupted_line(parser, args)
    command = line.partition("; resume with: ")[2]
    words = shlex.split(command)
    assert words[:2] == ["lobsim", "run"]
    again = build_parser().parse_args(words[1:])
    assert vars(again) == {**vars(args), "force": False, "resume": True, "func": again.func}
    if args.stream:
        assert "keeps its last checkpoint" in line
