"""Every config shipped in configs/ (and configs/real/) gives a term sheet and simulates.

The configs are found by glob, so a new one is covered without editing this
file. Each is run through the CLI as a user would (``lobsim run CONFIG
--scenarios N --out FILE.nc``) at a few scenarios, and the saved results are
checked to be finite and labelled by the config's own ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lobsim import load_config
from lobsim.cli.commands import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BUNDLED = sorted(CONFIGS.rglob("*.toml"))
#: A few hundred: enough for every statistic, few enough that all the configs
#: together run in seconds (not a whole block: a partial block must work too).
SCENARIOS = 600


def _id(path: Path) -> str:
    return str(path.relative_to(CONFIGS).with_suffix(""))


def test_the_glob_finds_the_bundled_configs():
    names = {_id(p) for p in BUNDLED}
    assert {"birmingham_jsa", "brighter_futures", "basket_demo", "gm_ward_bond",
            "real/peterborough", "real/newpin", "real/dwp_innovation_fund"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=_id)
def test_bundled_config_gives_a_term_sheet(path: Path, capsys):
    assert main(["terms", str(path)]) == 0
    assert "price per unit" in capsys.readouterr().out


@pytest.mark.parametrize("path", BUNDLED, ids=_id)
def test_bundled_config_simulates(path: Path, tmp_path: Path, capsys):
    out = tmp_path / "results.nc"
    assert main(["run", str(path), "--scenarios", str(SCENARIOS), "--out", str(out),
                 "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    ds = xr.load_dataset(out)
    cfg = load_config(path)

    # labelled: the config's own ids on every dimension, provenance in the attrs
    assert ds.sizes["scenario"] == SCENARIOS
    assert list(ds.bond.values) == [b.id for b in cfg.bonds]
    assert set(ds.department.values) == {d.id for d in cfg.departments}
    assert {b.id for b in cfg.baskets} <= set(ds.basket.values)
    assert int(ds.attrs["seed"]) == cfg.simulation.seed
    for key in ("config_hash", "lobsim_version", "title"):
        assert ds.attrs[key], key

    # finite, with units, for every per-scenario number
    per_scenario = [v for v in ds.data_vars.values() if "scenario" in v.dims]
    assert {"investor_payment", "multiple", "irr", "department_payment"} <= {
        v.name for v in per_scenario}
    for var in per_scenario:
        if var.dtype.kind == "b":
            continue
        assert var.attrs.get("units"), f"{var.name} has no units"
        assert np.isfinite(var.values).all(), f"{var.name} has non-finite values"
    principal = ds.principal.values
    assert (ds.investor_payment.values >= 0).all()
    assert np.isfinite(principal).all() and (principal > 0).all()
