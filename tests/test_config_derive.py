"""Derived configs (lobsim.model.derive) and lookups by id.

A config built from a changed one runs the loader's checks again, names the
derived field in its errors, and gets a hash of its own that depends only on
the parent's hash and the change; an unknown id is one line naming a few of
the known ids and the closest.
"""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobsim import load_config, simulate
from lobsim.cli.commands import main
from lobsim.errors import KNOWN_IDS_LISTED, ConfigError, LobsimWarning, UnknownIdError
from lobsim.model.config import CapGroup, Config, Measurement, parse_config
from lobsim.model.derive import derive, derive_basket, derive_bond, to_document
from strategies import mutated_documents
from test_config_mutation import AREAS_CSV, HISTORY_CSV, RICH

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(ROOT.glob("configs/**/*.toml"))
BIRMINGHAM = ROOT / "configs" / "birmingham_jsa.toml"
DEMO = ROOT / "configs" / "basket_demo.toml"


def _write_rich(folder: Path) -> Path:
    (folder / "areas.csv").write_text(AREAS_CSV, encoding="utf-8")
    (folder / "history.csv").write_text(HISTORY_CSV, encoding="utf-8")
    path = folder / "rich.toml"
    path.write_text(RICH, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return load_config(_write_rich(tmp_path_factory.mktemp("rich")))


def _same_but_hash(a: Config, b: Config) -> bool:
    return dataclasses.replace(a, hash=b.hash) == b


# --------------------------------------------------------------------------
# The document round trip: what derive re-reads is the config itself
# --------------------------------------------------------------------------
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_derived_config_is_the_changed_config(path: Path) -> None:
    cfg = load_config(path)
    # a change the reader keeps as it is: the rest of the document is read back unchanged
    new = derive(cfg, name=cfg.name + " (derived)")
    assert _same_but_hash(dataclasses.replace(cfg, name=cfg.name + " (derived)"), new)
    assert new.hash != cfg.hash and new.source == cfg.source


def test_the_rich_document_round_trips(rich: Config) -> None:
    doc = to_document(rich)
    assert {"universe", "cap_groups", "investor_classes", "baskets"} <= doc.keys()
    assert _same_but_hash(dataclasses.replace(rich, name="x"), derive(rich, name="x"))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_loadable_mutation_round_trips(tmp_path_factory: pytest.TempPathFactory,
                                             data: st.DataObject) -> None:
    folder = tmp_path_factory.mktemp("mutated")
    _write_rich(folder)
    doc = data.draw(mutated_documents(tomllib.loads(RICH)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LobsimWarning)
            cfg = parse_config(doc, source="mutated.toml", base_dir=folder)
            derived = derive(cfg, name="renamed")
    except ConfigError:
        return
    assert _same_but_hash(dataclasses.replace(cfg, name="renamed"), derived)


def test_nothing_changed_is_the_parent_itself() -> None:
    cfg = load_config(BIRMINGHAM)
    assert derive(cfg) is cfg
    assert derive_bond(cfg, "bham-jsa", maturity=cfg.bonds[0].maturity) is cfg


# --------------------------------------------------------------------------
# Hashes
# --------------------------------------------------------------------------
def test_the_same_derivation_has_the_same_hash() -> None:
    a, b = load_config(BIRMINGHAM), load_config(BIRMINGHAM)
    one = derive_bond(a, "bham-jsa", return_premium=0.08)
    assert derive_bond(b, "bham-jsa", return_premium=0.08).hash == one.hash
    # however it is written: by id, or as a whole new bond
    bond = dataclasses.replace(a.bonds[0], return_premium=0.08)
    assert derive(a, bonds=(bond,)).hash == one.hash
    assert derive_bond(a, "bham-jsa", return_premium=0.09).hash not in {one.hash, a.hash}
    # a derivation of a derivation is one more step
    two = derive_bond(one, "bham-jsa", basket_risk=0.2)
    assert two.hash not in {one.hash, derive_bond(a, "bham-jsa", basket_risk=0.2).hash}
    assert derive_bond(derive_bond(b, "bham-jsa", return_premium=0.08), "bham-jsa",
                       basket_risk=0.2).hash == two.hash


def test_the_hash_does_not_depend_on_where_the_files_live(tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    a, b = load_config(_write_rich(here)), load_config(_write_rich(there))
    assert a.hash == b.hash
    bond = a.bonds[0].id
    assert (derive_bond(a, bond, return_premium=0.05).hash
            == derive_bond(b, bond, return_premium=0.05).hash)
    # a new data file counts by its content
    outcome = a.outcomes[0]
    copy = there / "copy.csv"
    shutil.copy(outcome.history, copy)  # type: ignore[arg-type]
    moved = derive(a, outcomes=(dataclasses.replace(outcome, history=copy), *a.outcomes[1:]))
    assert moved.hash != a.hash
    copy.write_text(copy.read_text(encoding="utf-8").replace(",1000\n", ",1001\n"),
                    encoding="utf-8")
    edited = derive(a, outcomes=(dataclasses.replace(outcome, history=copy), *a.outcomes[1:]))
    assert edited.hash != moved.hash


def test_screening_resolves_baskets_into_a_derived_config() -> None:
    from lobsim.model.screening import resolve_risk_bands

    cfg = load_config(DEMO)
    resolved = resolve_risk_bands(cfg, 500).config
    assert resolved.hash != cfg.hash
    banded = [i for i, k in enumerate(cfg.baskets) if k.risk_band is not None]
    assert banded and all(resolved.baskets[i].bonds for i in banded)
    assert all(k.risk_band is None for k in resolved.baskets)
    assert resolve_risk_bands(load_config(DEMO), 500).config.hash == resolved.hash


# --------------------------------------------------------------------------
# The checks of loading run again
# --------------------------------------------------------------------------
def _error(call: Any) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text
    return text


def test_errors_name_the_derived_field() -> None:
    cfg = load_config(BIRMINGHAM)
    src = f"derived from {cfg.source}"
    # a field check of the reader
    assert _error(lambda: derive_bond(cfg, "bham-jsa", maturity=0.001)).startswith(
        f"{src}: bonds[0].maturity: 0.001 must be at least a day")
    # a cross-check
    assert _error(lambda: derive_bond(cfg, "bham-jsa", provider="nobody")).startswith(
        f"{src}: bonds[0].provider: refers to provider 'nobody', which is not defined")
    # a data-file check: the history is 60 months long
    assert _error(lambda: derive_bond(cfg, "bham-jsa", control={"pre_periods": 61})).startswith(
        f"{src}: bonds[0].control.pre_periods: is 61, but the history of outcome")
    # a nested change by position
    assert "bonds[0].payment.measurements[0].at" in _error(lambda: derive_bond(
        cfg, "bham-jsa", payment={"measurements": ({"at": 99.0},)}))


def test_a_payment_beyond_the_engine_is_refused_when_derived() -> None:
    # the best case's return must stay representable, derived or loaded
    cfg = load_config(BIRMINGHAM)
    # 1.17 times the principal over two days: e^57 a year
    text = _error(lambda: derive_bond(cfg, "bham-jsa", maturity=0.005, payment={
        "measurements": (Measurement(at=0.005, threshold=0.0, cap=cfg.bonds[0].payment.cap),)}))
    assert "bonds[0].maturity" in text and "lengthen the term" in text


def test_changes_must_name_fields() -> None:
    cfg = load_config(BIRMINGHAM)
    with pytest.raises(TypeError, match=r"Bond has no field 'maturiy'.*maturity"):
        derive_bond(cfg, "bham-jsa", maturiy=3.0)
    with pytest.raises(TypeError, match="'hash' is not set by hand"):
        derive(cfg, hash="0" * 64)
    with pytest.raises(TypeError, match="2 changes for 1 items"):
        derive_bond(cfg, "bham-jsa", payment={"measurements": ({"at": 3.0}, {"at": 4.0})})
    with pytest.raises(UnknownIdError, match=r"no bond 'bham'.*did you mean 'bham-jsa'"):
        derive_bond(cfg, "bham", maturity=3.0)
    with pytest.raises(UnknownIdError, match="no basket 'nope'"):
        derive_basket(cfg, "nope", name="x")


def test_dropping_instruments_drops_what_holds_them() -> None:
    cfg = load_config(DEMO)
    assert any(ic.tranches for ic in cfg.investor_classes)
    alone = derive(cfg, baskets=())
    # the classes keep the bonds they hold; a class holding only tranches goes
    assert [(ic.id, ic.bonds, ic.tranches, ic.baskets) for ic in alone.investor_classes] == [
        ("sitr", ("birmingham-jsa",), (), ())]
    # a holding the parent never had is still an error
    bad = dataclasses.replace(cfg.investor_classes[0], tranches=("north/nope",))
    assert "investor_classes[0].tranches[0]: refers to tranche 'nope'" in _error(
        lambda: derive(cfg, investor_classes=(bad,)))


def test_dropping_a_bond_drops_it_from_its_cap_group(rich: Config) -> None:
    a, b, c = (bond.id for bond in rich.bonds[:3])
    grouped = derive(rich, cap_groups=(CapGroup(id="pair", bonds=(a, b), cap=1e6),
                                       CapGroup(id="one", bonds=(c,), cap=1e6)))
    # the baskets and classes that name the dropped bonds go first, by hand
    derived = derive(grouped, bonds=tuple(x for x in rich.bonds if x.id not in (a, c)),
                     baskets=(), investor_classes=())
    assert [(g.id, g.bonds) for g in derived.cap_groups] == [("pair", (b,))]


def test_a_warning_the_parent_gave_is_not_given_again(rich: Config) -> None:
    # an idle provider hazard warns once, when the config is loaded
    doc = tomllib.loads(RICH)
    doc["interventions"][0]["ramp_years"] = 0.0
    doc["interventions"][0].pop("ramp_profile", None)
    doc["providers"][0]["failure_hazard"] = 0.1
    folder = Path(str(rich.universe.areas)).parent  # type: ignore[union-attr]
    with pytest.warns(LobsimWarning, match="has no effect"):
        warned = parse_config(doc, source="idle.toml", base_dir=folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        derive(warned, name="renamed")
    # a derivation that makes a hazard idle warns, naming the derivation
    doc["providers"][0]["failure_hazard"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LobsimWarning)
        quiet = parse_config(doc, source="idle.toml", base_dir=folder)
    provider = dataclasses.replace(quiet.providers[0], failure_hazard=0.1)
    with pytest.warns(LobsimWarning, match="^derived from idle.toml: bonds"):
        derive(quiet, providers=(provider, *quiet.providers[1:]))


# --------------------------------------------------------------------------
# Lookups by id
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method, what", [
    ("bond", "bond"), ("basket", "basket"), ("department", "department"),
    ("agency", "agency"), ("outcome", "outcome"), ("provider", "provider"),
    ("intervention", "intervention type"), ("cap_group", "cap group"),
    ("investor_class", "investor class")])
def test_an_unknown_id_is_one_line_naming_the_known_ones(rich: Config, method: str,
                                                          what: str) -> None:
    with pytest.raises(UnknownIdError) as info:
        getattr(rich, method)("nope")
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, KeyError)
    text = str(err)
    assert text.startswith(f"{rich.source}: no {what} 'nope' (") and "\n" not in text
    known = err.known
    if not known:
        assert text.endswith("(there are none)")
        return
    assert all(repr(k) in text for k in known[:KNOWN_IDS_LISTED])
    assert getattr(rich, method)(known[0]).id == known[0]


def test_the_message_lists_a_handful_and_the_closest() -> None:
    err = UnknownIdError("bond", "bjsa-A3", [f"b-jsa-A{i}" for i in range(8)], source="x.toml")
    assert str(err) == ("x.toml: no bond 'bjsa-A3' (known: 'b-jsa-A0', 'b-jsa-A1', "
                        "'b-jsa-A2', 'b-jsa-A3', 'b-jsa-A4' and 3 more); did you mean "
                        "'b-jsa-A3'?")
    assert str(UnknownIdError("tranche of basket 'all'", "senior", [])) == (
        "no tranche of basket 'all' 'senior' (there are none)")
    assert "did you mean" not in str(UnknownIdError("bond", "zzz", ["bham-jsa"]))


def test_tranche_lookup_names_the_basket() -> None:
    cfg = load_config(DEMO)
    assert cfg.tranche("north", "junior").id == "junior"
    with pytest.raises(UnknownIdError, match=r"no tranche of basket 'north' 'junor'.*"
                                             "did you mean 'junior'"):
        cfg.tranche("north", "junor")


def test_unknown_tilt_types_are_refused() -> None:
    cfg = load_config(BIRMINGHAM)
    with pytest.raises(UnknownIdError, match=r"birmingham_jsa.toml: tilt_types: no "
                                             r"intervention type 'nope' \(known: "):
        simulate(cfg, scenarios=16, tilt_types={"nope": 1.0})


@pytest.mark.parametrize("argv, what", [
    (["price", str(DEMO), "--bond", "nope", "--target-irr", "0"], "bond"),
    (["maturity", str(DEMO), "--bond", "nope"], "bond"),
    (["price", str(DEMO), "--basket", "nope", "--target-irr", "0"], "basket"),
    (["price", str(DEMO), "--basket", "north", "--tranche", "nope=0.05"],
     "tranche of basket 'north'"),
])
def test_the_command_line_says_the_same_line(argv: list[str], what: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lobsim: error: {DEMO}: no {what} 'nope' (known: ")
    assert err.count("\n") == 1


def test_a_run_with_risk_bands_records_the_config_as_given() -> None:
    # the resolved config is derived (its own hash), but the run is of the loaded one:
    # `lobsim summary` and `lobsim report` compare the results with the file by this hash
    cfg = load_config(DEMO)
    ds = simulate(cfg, scenarios=64, seed=1)
    assert ds.attrs["config_hash"] == cfg.hash
