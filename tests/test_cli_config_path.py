"""Results find their config from any working directory, by absolute path and hash.

``report`` needs the config (one line, exit 2, when it is gone or changed);
``summary`` and ``setaside`` do not, and say in one line on stderr when it
moved or changed. Results written before the absolute path was recorded
(only the path as typed) stay readable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import xarray as xr

from lobsim.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
NOTE = "lobsim: note: "


@pytest.fixture
def project(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """A project folder holding configs/b.toml (the Appendix bond) and results/b.nc, run
    from inside it with relative paths; the working directory then moves elsewhere."""
    home = tmp_path / "project"
    (home / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "birmingham_jsa.toml", home / "configs" / "b.toml")
    monkeypatch.chdir(home)
    assert main(["run", "configs/b.toml", "--scenarios", "500", "--quiet", "--out",
                 "results/b.nc"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home, home / "results" / "b.nc"


def _notes(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_results_record_the_config_by_absolute_path_and_hash(project):
    home, results = project
    attrs = xr.load_dataset(results).attrs
    assert attrs["config_source"] == "configs/b.toml"  # as typed
    assert attrs["config_path"] == str((home / "configs" / "b.toml").resolve())
    assert len(attrs["config_hash"]) == 64


@pytest.mark.parametrize("command", ["summary", "setaside"])
def test_readers_find_the_config_from_elsewhere_and_say_nothing(project, command, capsys):
    _, results = project
    assert main([command, str(results)]) == 0
    assert capsys.readouterr().err == ""


def test_report_finds_the_config_from_elsewhere(project, tmp_path, capsys):
    _, results = project
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "r" / "report.html").is_file()


def test_a_changed_config_is_named_in_one_line(project, tmp_path, capsys):
    home, results = project
    config = home / "configs" / "b.toml"
    config.write_text(config.read_text().replace("scenarios = 100_000", "scenarios = 99_999"))
    said = f"{results}: its config {config} changed since the run (config hash differs)"
    for command in ("summary", "setaside"):
        assert main([command, str(results), "--json"]) == 0  # the numbers stand
        assert _notes(capsys) == [NOTE + said]
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 2
    assert _notes(capsys) == [f"lobsim: error: {said}; pass --config CONFIG"]


def test_a_config_that_no_longer_loads_is_named_in_one_line(project, tmp_path, capsys):
    home, results = project
    (home / "configs" / "b.toml").write_text("name = 'broken\n")
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 2
    (line,) = _notes(capsys)
    assert "its config changed since the run and no longer loads" in line
    assert "is not valid TOML" in line and line.endswith("; pass --config CONFIG")


def test_a_removed_config_is_named_in_one_line(project, tmp_path, capsys):
    home, results = project
    config = home / "configs" / "b.toml"
    config.unlink()
    said = f"{results}: its config {config} is not there"
    assert main(["summary", str(results)]) == 0
    assert _notes(capsys) == [NOTE + said]
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 2
    assert _notes(capsys) == [f"lobsim: error: {said}; pass --config CONFIG"]


def test_a_moved_project_is_found_by_its_typed_path_and_hash(project, tmp_path, monkeypatch,
                                                             capsys):
    """The whole project moved: the absolute path is gone, but the path as typed, from the
    new working directory, holds a config with the recorded hash."""
    home, _ = project
    moved = tmp_path / "moved"
    home.rename(moved)
    monkeypatch.chdir(moved)
    results = moved / "results" / "b.nc"
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 0
    out_err = capsys.readouterr()
    assert out_err.err == (f"{NOTE}{results}: its config moved from "
                           f"{home / 'configs' / 'b.toml'} to {moved / 'configs' / 'b.toml'} "
                           "(same config hash)\n")


def test_results_written_before_the_absolute_path_stay_readable(project, tmp_path,
                                                                 monkeypatch, capsys):
    """Old results recorded only the path as typed (relative to where the run was made):
    it is tried from the working directory and from the results' folder."""
    home, results = project
    old = xr.load_dataset(results)
    del old.attrs["config_path"]
    for where in (home, home / "configs"):  # the run's folder; beside the config
        legacy = where / "old.nc"
        old.to_netcdf(legacy)
        for cwd, found in ((home, True), (tmp_path, where == home)):
            monkeypatch.chdir(cwd)
            out = tmp_path / "r"
            shutil.rmtree(out, ignore_errors=True)
            assert (main(["report", str(legacy), "--out", str(out)]) == 0) is found
            err = capsys.readouterr().err
            if found:
                assert err == ""
            else:
                assert err == (f"lobsim: error: {legacy}: its config configs/b.toml is not "
                               "there; pass --config CONFIG\n")
