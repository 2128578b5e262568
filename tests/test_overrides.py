"""``--set PATH=VALUE``: parsed, applied to the document, validated as the file, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xarray as xr

from lobsim.cli.commands import main
from lobsim.errors import ConfigError
from lobsim.model.config import load_config
from lobsim.model.overrides import apply_overrides, parse_override, parse_path, split_values

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BHAM = CONFIGS / "birmingham_jsa.toml"
PREFIX = "lobsim: error: "


# -- syntax -------------------------------------------------------------------
def test_paths_parse_into_keys_indices_and_ids():
    assert parse_path("simulation.scenarios") == ("simulation", "scenarios")
    assert parse_path("bonds[0].payment.cap") == ("bonds", 0, "payment", "cap")
    assert parse_path("bonds[bham-jsa].payers[1].share") == (
        "bonds", ("bham-jsa",), "payers", 1, "share")


@pytest.mark.parametrize("path", ["", "a..b", "a.", "bonds[0]x", "bonds[]", "x y", ".a"])
def test_malformed_paths_are_refused(path):
    with pytest.raises(ValueError, match="not a TOML path"):
        parse_path(path)


@pytest.mark.parametrize(("text", "value"), [
    ("a=4000", 4000), ("a=1.2", 1.2), ("a=true", True), ('a="x y"', "x y"),
    ("a=binary", "binary"), ("a=[0.5, 1.0]", [0.5, 1.0]), ("a=1_000", 1000),
    ("a=x\nb = 1", "x\nb = 1"),  # one value, never a second key
])
def test_values_are_toml_or_else_bare_strings(text, value):
    assert parse_override(text).value == value


def test_assignment_needs_an_equals_sign():
    with pytest.raises(ValueError, match="PATH=VALUE"):
        parse_override("bonds[0].target_units")


def test_sweep_values_split_outside_brackets_and_quotes():
    assert split_values("4000,5000, 6000") == ["4000", "5000", "6000"]
    assert split_values('[0,1],[1,2],"a,b"') == ["[0,1]", "[1,2]", '"a,b"']


# -- applying -----------------------------------------------------------------
def test_apply_copies_the_document_and_creates_missing_tables():
    doc = {"bonds": [{"id": "a", "x": 1}, {"id": "b", "x": 2}]}
    new, paths = apply_overrides(doc, [parse_override("bonds[b].x=5"),
                                       parse_override("simulation.seed=3")], source="f.toml")
    assert new == {"bonds": [{"id": "a", "x": 1}, {"id": "b", "x": 5}], "simulation": {"seed": 3}}
    assert doc["bonds"][1]["x"] == 2
    assert paths == ("bonds[1].x", "simulation.seed")


def test_load_config_applies_and_records_overrides():
    sets = ("bonds[0].target_units=4000", "simulation.scenarios=5000")
    cfg = load_config(BHAM, overrides=sets)
    assert cfg.bonds[0].target_units == 4000
    assert cfg.simulation.scenarios == 5000
    assert cfg.overrides == sets
    by_id = load_config(BHAM, overrides=("bonds[bham-jsa].target_units=4000",
                                         "simulation.scenarios=5000"))
    assert by_id.hash == cfg.hash  # the same document


def test_hash_is_that_of_the_overridden_document():
    plain = load_config(BHAM)
    assert load_config(BHAM, ["bonds[0].target_units=4000"]).hash != plain.hash
    assert (load_config(BHAM, ["bonds[0].target_units=4000"]).hash
            != load_config(BHAM, ["bonds[0].target_units=4500"]).hash)
    # the file's own value: the same document, the same hash
    assert load_config(BHAM, ["bonds[0].target_units=5000"]).hash == plain.hash


@pytest.mark.parametrize(("text", "message"), [
    ("bonds[3].x=1", "--set bonds[3].x=1: the config has 1 bond (bonds[0])"),
    ("bonds[nope].x=1", "--set bonds[nope].x=1: no bond 'nope'"),
    ("name.x=1", "--set name.x=1: name is a string, not a table"),
    ("bonds.x=1", "--set bonds.x=1: bonds is an array, not a table"),
    ("bonds[0].payers[5].share=1", "bonds[0].payers has 2 entries"),
    ("bonds[0].target_units=-5",
     "bonds[0].target_units: must be at least 1e-06, got -5 (set by --set "
     "bonds[0].target_units=-5)"),
    ("bonds[0].payment.cap=abc",
     "bonds[0].payment.cap: must be a number, got string 'abc' (set by --set "
     "bonds[0].payment.cap=abc)"),
    ("bonds[0].colour=3", "bonds[0].colour: is not a known field"),
])
def test_bad_overrides_name_the_option(text, message):
    with pytest.raises(ConfigError) as info:
        load_config(BHAM, [text])
    assert str(info.value).startswith(f"{BHAM}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["terms", str(BHAM), "--set", "bonds[3].x=1"], "the config has 1 bond"),
    (["run", str(BHAM), "--scenarios", "100", "--set", "bonds[0].target_units=0"],
     "(set by --set bonds[0].target_units=0)"),
    (["price", str(BHAM), "--target-irr", "0.05", "--set", "simulation.seed=-1"],
     "simulation.seed"),
    (["maturity", str(BHAM), "--set", "bonds[x].maturity=3"], "no bond 'x'"),
])
def test_cli_bad_override_is_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(PREFIX), err
    assert fragment in err


def test_cli_malformed_path_is_an_argument_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["terms", str(BHAM), "--set", "bonds[0]x=1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "argument --set" in err and "not a TOML path" in err


def test_terms_set_changes_the_term_sheet(capsys):
    assert main(["terms", str(BHAM), "--json", "--set", "bonds[0].target_units=4000"]) == 0
    sheet = json.loads(capsys.readouterr().out)
    (bond,) = sheet["bonds"]
    assert bond["target_units"] == 4000
    assert bond["investor_principal"] == pytest.approx(8_000_000)  # 4000 x cost 2000


# -- results ------------------------------------------------------------------
def test_run_set_equals_running_an_edited_copy(tmp_path, capsys):
    text = BHAM.read_text(encoding="utf-8")
    assert text.count("target_units = 5000") == 1
    edited = tmp_path / "edited.toml"
    edited.write_text(text.replace("target_units = 5000", "target_units = 4000"),
                      encoding="utf-8")
    a, b = tmp_path / "set.nc", tmp_path / "edited.nc"
    common = ["--scenarios", "2000", "--quiet"]
    assert main(["run", str(BHAM), *common, "--out", str(a),
                 "--set", "bonds[0].target_units=4000"]) == 0
    assert main(["run", str(edited), *common, "--out", str(b)]) == 0
    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        assert json.loads(x.attrs["overrides"]) == ["bonds[0].target_units=4000"]
        assert "overrides" not in y.attrs
        assert x.attrs["config_hash"] != str(load_config(BHAM).hash)
        for ds in (x, y):  # provenance differs; every number must not
            for key in ("overrides", "config_hash", "config_source", "config_path", "title"):
                ds.attrs.pop(key, None)
        xr.testing.assert_identical(x.load(), y.load())


def test_report_finds_the_config_with_its_recorded_overrides(tmp_path, capsys):
    results = tmp_path / "r.nc"
    sets = ["--set", "bonds[0].target_units=4000"]
    assert main(["run", str(BHAM), "--scenarios", "2000", "--quiet", "--out", str(results),
                 *sets]) == 0
    assert main(["summary", str(results)]) == 0
    assert "note" not in capsys.readouterr().err  # found, unchanged, with its overrides
    # --config without the run's --set is not the run's config; with it, it is
    assert main(["report", str(results), "--out", str(tmp_path / "a"), "--config",
                 str(BHAM)]) == 2
    assert "config hash differs" in capsys.readouterr().err
    assert main(["report", str(results), "--out", str(tmp_path / "b"), "--config",
                 str(BHAM), *sets]) == 0
    assert (tmp_path / "b" / "report.html").is_file()


def test_stores_record_overrides_and_derived_configs_keep_them(tmp_path):
    from lobsim.analysis.maturity import bond_alone_at

    sets = ["--set", "bonds[0].target_units=4000"]
    for extra, name in (([], "r.zarr"), (["--stream"], "s.zarr")):
        out = tmp_path / name
        assert main(["run", str(BHAM), "--scenarios", "600", "--quiet", "--out", str(out),
                     *extra, *sets]) == 0
        with xr.open_zarr(out) as ds:
            assert json.loads(ds.attrs["overrides"]) == ["bonds[0].target_units=4000"]
    cfg = load_config(BHAM, ["bonds[0].target_units=4000"])
    assert bond_alone_at(cfg, "bham-jsa", 3.0).overrides == cfg.overrides


def test_report_provenance_lists_the_overrides(tmp_path):
    results = tmp_path / "r.nc"
    assert main(["run", str(BHAM), "--scenarios", "600", "--quiet", "--out", str(results),
                 "--set", "bonds[0].target_units=4000"]) == 0
    assert main(["report", str(results), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "overrides (--set)" in page and "bonds[0].target_units=4000" in page


@pytest.mark.parametrize("command", [
    ["price", str(BHAM), "--bond", "bham-jsa", "--target-default-prob", "0.5",
     "--scenarios", "400"],
    ["maturity", str(BHAM), "--years", "3,4", "--scenarios", "400"],
])
def test_price_and_maturity_read_the_overridden_config(command, capsys):
    # the seed set in the config is the seed given by --seed: the same numbers
    assert main([*command, "--json", "--set", "simulation.seed=3"]) == 0
    by_set = json.loads(capsys.readouterr().out)
    assert main([*command, "--json", "--seed", "3"]) == 0
    by_seed = json.loads(capsys.readouterr().out)
    assert by_set == by_seed
    assert main([*command, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) != by_set
