"""Every ``--json`` output is strict JSON: no NaN or Infinity, on every bundled config.

A strict parser (``json.loads`` with a ``parse_constant`` that refuses
``NaN``, ``Infinity`` and ``-Infinity``) reads the output of every command
that has ``--json``, on every config under ``configs/`` that the command
supports; values without a finite meaning are ``null`` (README, section
JSON output).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pytest

from lobsim import load_config
from lobsim.analysis.pricing import Solution
from lobsim.cli.commands import build_parser, main
from lobsim.jsonio import dump

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.toml"))
SCENARIOS = "600"
JSON_COMMANDS = ("terms", "summary", "setaside", "price", "maturity", "sweep", "design")


def strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def _single_date(bond: Any) -> bool:
    return len(bond.payment.measurements) <= 1 and not bond.payment.coupons


def _cases() -> list[tuple[str, str, Any]]:
    """(config, command, bond) for every command a config supports."""
    cases = []
    for path in CONFIGS:
        cfg = load_config(path)
        name = str(path.relative_to(ROOT / "configs"))
        cases.append((name, "terms", None))
        if cfg.universe is None:  # terms only: nothing to simulate
            continue
        cases += [(name, "summary", None), (name, "summary --stream", None),
                  (name, "setaside", None), (name, "sweep", None),
                  (name, "design", cfg.bonds[0].id)]
        # a schedule's return does not depend on the price: no loading meets a target
        priced = next((b for b in cfg.bonds if b.payment.mechanism != "schedule"), None)
        if priced is not None:
            cases.append((name, "price", priced.id))
        # choosing a maturity needs a bond paid once, at maturity
        single = next((b for b in cfg.bonds if _single_date(b)), None)
        if single is not None:
            cases.append((name, "maturity", (single.id, single.start)))
    return cases


CASES = _cases()


def test_the_cases_cover_every_command_with_json():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    with_json = {name for name, p in sub.choices.items()
                 if any("--json" in a.option_strings for a in p._actions)}
    assert with_json == set(JSON_COMMANDS)
    assert {c.split()[0] for _, c, _ in CASES} == with_json
    assert "real/dwp_innovation_fund.toml" in {n for n, _, _ in CASES}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[tuple[str, bool], Path]:
    """Results of each simulating config (per-scenario .nc, and a --stream store)."""
    folder = tmp_path_factory.mktemp("json")
    out = {}
    for name in sorted({n for n, c, _ in CASES if c == "summary"}):
        for stream in (False, True):
            path = folder / (name.replace("/", "_") + (".zarr" if stream else ".nc"))
            argv = ["run", str(ROOT / "configs" / name), "--scenarios", SCENARIOS, "--quiet",
                    "--out", str(path)]
            assert main(argv + (["--stream"] if stream else [])) == 0
            out[name, stream] = path
    return out


def _json_of(argv: list[str], capsys) -> Any:
    assert main(argv) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert err == ""
    return strict(out)


@pytest.mark.parametrize(("name", "command", "bond"), CASES,
                         ids=[f"{c}-{n}" for n, c, _ in CASES])
def test_json_output_is_strict(name, command, bond, saved, capsys):
    config = str(ROOT / "configs" / name)
    if command == "terms":
        doc = _json_of(["terms", config, "--json"], capsys)
    elif command.startswith("summary"):
        doc = _json_of(["summary", str(saved[name, "stream" in command]), "--json"], capsys)
    elif command == "setaside":
        doc = _json_of(["setaside", str(saved[name, False]), "--json"], capsys)
    elif command == "sweep":  # a parameter every config has
        doc = _json_of(["sweep", config, "--set", "simulation.seed=1,2", "--scenarios",
                        SCENARIOS, "--json"], capsys)
    elif command == "design":  # levers every bond has; a value may be skipped, not fail
        doc = _json_of(["design", config, "--bond", bond, "--lever", "donors=3,5",
                        "--lever", "maturity", "--scenarios", SCENARIOS, "--json"], capsys)
    elif command == "price":
        # the target its own loading meets: E[IRR] of the saved run (same seed, scenarios)
        summary = _json_of(["summary", str(saved[name, False]), "--json"], capsys)
        target = summary["bonds"][bond]["mean_irr"]
        doc = _json_of(["price", config, "--bond", bond, "--target-irr", repr(target),
                        "--scenarios", SCENARIOS, "--json"], capsys)
    else:
        bond_id, start = bond
        years = f"{math.floor(start) + 1},{math.floor(start) + 2}"
        doc = _json_of(["maturity", config, "--bond", bond_id, "--years", years,
                        "--scenarios", SCENARIOS, "--json"], capsys)
    assert doc["schema"].startswith("lobsim.")


@pytest.mark.parametrize("stream", [False, True], ids=["results", "stream"])
def test_a_verified_outcome_has_null_signal_to_noise(stream, saved, capsys):
    """configs/real/dwp_innovation_fund.toml: outcomes verified case by case have no
    measurement noise, so their signal-to-noise is infinite, written as null; measured
    against a control group (the Appendix bond) it stays a number."""
    for name, noiseless in (("real/dwp_innovation_fund.toml", True),
                            ("birmingham_jsa.toml", False)):
        cfg = load_config(ROOT / "configs" / name)
        assert {b.control.weights == "verified" for b in cfg.bonds} == {noiseless}
        doc = _json_of(["summary", str(saved[name, stream]), "--json"], capsys)
        for row in doc["bonds"].values():
            if noiseless:
                assert row["signal_to_noise"] is None
            else:
                assert isinstance(row["signal_to_noise"], float) and row["signal_to_noise"] > 0
            # and any effect is detectable without noise (docs/model.md section 6.11)
            mde = row["minimum_detectable_effect_share"]
            assert (mde == 0.0) if noiseless else (mde > 0.5)
            assert (row["minimum_detectable_effect"] == 0.0) == noiseless


def test_an_unmoved_metric_has_a_null_standard_error(capsys):
    """A loading that does not move the metric (slope 0) has no finite standard error."""
    solution = Solution(parameter="basket_risk", subject="bond b", target="irr",
                               target_value=0.1, value=0.0, value_se=math.inf, achieved=0.1,
                               achieved_se=0.01, slope=0.0, scenarios=10, seed=0, evaluations=3)
    dump(solution.to_dict())
    assert strict(capsys.readouterr().out)["value_se"] is None


def test_dump_refuses_what_is_not_json(capsys):
    with pytest.raises(ValueError, match="JSON compliant"):
        dump({"x": math.nan})
