"""The command line turns a ConfigError into one line on stderr and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lobsim.cli.commands import main
from test_config_errors import AREAS_CSV, BASE, NHS_SHARE, UNIVERSE, edit

BAD_SHARE = edit((NHS_SHARE, 'agency = "NHS"\nshare = -0.5'))
BAD_SHARE_PATH = "bonds[0].payers[1].share"
PREFIX = "lobsim: error: "


def _assert_one_error_line(err: str, *fragments: str) -> str:
    assert err.endswith("\n"), repr(err)
    lines = err.splitlines()
    assert len(lines) == 1, repr(err)
    (line,) = lines
    assert line.startswith(PREFIX), line
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def test_terms_bad_config_in_process(write_config, capsys) -> None:
    path = write_config(BAD_SHARE, name="bad_share.toml")
    status = main(["terms", str(path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    line = _assert_one_error_line(err, str(path), BAD_SHARE_PATH, "-0.5")
    assert line == f"{PREFIX}{path}: {BAD_SHARE_PATH}: must be greater than 0, got -0.5"


def test_terms_bad_config_subprocess(write_config, tmp_path: Path) -> None:
    path = write_config(BAD_SHARE, name="bad_share.toml")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "lobsim.cli", "terms", str(path)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _assert_one_error_line(proc.stderr, "bad_share.toml", BAD_SHARE_PATH, "-0.5")


def test_terms_missing_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "does_not_exist.toml"
    status = main(["terms", str(path)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    _assert_one_error_line(err, str(path), "cannot read the file")


@pytest.mark.parametrize(
    "text,fragments",
    [
        (edit(("maturity = 4.0", "maturity = = 4.0")), ("is not valid TOML", "line")),
        (edit(("basket_risk = 0.1", "basket_rsk = 0.1")), ("bonds[0].basket_rsk", "did you mean")),
        (edit(("success_sd = 0.1", "success_sd = nan")), ("interventions[0].success_sd", "nan")),
        (edit(add=UNIVERSE.replace("areas.csv", "missing.csv")), ("universe.areas", "missing.csv")),
    ],
    ids=["syntax", "typo", "nan", "missing-data-file"],
)
def test_terms_other_config_errors_are_one_line(text: str, fragments: tuple[str, ...],
                                                write_config, capsys) -> None:
    path = write_config(text)
    assert main(["terms", str(path)]) == 2
    _, err = capsys.readouterr()
    _assert_one_error_line(err, str(path), *fragments)


def test_terms_bad_areas_csv_names_the_csv(write_config, tmp_path: Path, capsys) -> None:
    path = write_config(edit(add=UNIVERSE),
                        files={"areas.csv": AREAS_CSV.replace("A2,north,0.5", "A2,north,x")})
    assert main(["terms", str(path)]) == 2
    _, err = capsys.readouterr()
    _assert_one_error_line(err, str(tmp_path / "areas.csv"), "row 3", "'x'")


def test_terms_valid_config_succeeds(write_config, capsys) -> None:
    """The counterpart: a valid config exits 0 and prints nothing on stderr."""
    path = write_config(BASE)
    assert main(["terms", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "b0" in out


@pytest.mark.parametrize(
    "text",
    [
        edit(('name = "error-test base"', 'name = "error-test base"\n"na\\nme" = 1')),
        edit(add=UNIVERSE.replace('"areas.csv"', '"data\\nfile.csv"')),
    ],
    ids=["newline-in-key", "newline-in-data-path"],
)
def test_error_with_newline_is_still_one_line(text: str, write_config, capsys) -> None:
    path = write_config(text)
    assert main(["terms", str(path)]) == 2
    _, err = capsys.readouterr()
    _assert_one_error_line(err, str(path))


@pytest.mark.parametrize("command", [["run"], ["price", "--target-irr", "0"]])
def test_one_scenario_is_refused(write_config, capsys, command: list[str]) -> None:
    # one scenario has no Monte Carlo error: the summary would print +-nan
    path = write_config(BASE, name="ok.toml")
    status = main([command[0], str(path), "--scenarios", "1", *command[1:]])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    _assert_one_error_line(err, "--scenarios", "at least 2 scenarios", "got 1")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["run", "c.toml", "--scenarios", "x"], "argument --scenarios: must be a whole number"),
    (["nope"], "invalid choice: 'nope'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_argument_errors_are_one_line(capsys, argv: list[str], fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    line = capsys.readouterr().err
    assert len(line.splitlines()) == 1 and fragment in line and "--help" in line, line
