"""Per-area factor loadings (beta[a], gamma[a] of docs/model.md section 3.2) from the areas file."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from lobsim import load_config, simulate
from lobsim.errors import ConfigError
from lobsim.model.areas import read_areas
from lobsim.model.control import nearest_donors
from lobsim.model.process import kstep_variance
from lobsim.model.world import build_world
from toml_doc import dumps
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

ROOT = Path(__file__).resolve().parents[1]
BIRMINGHAM = ROOT / "configs" / "birmingham_jsa.toml"


def _birmingham_with_areas(tmp_path: Path, transform) -> Path:
    """A copy of the Birmingham config whose areas file is ``transform(lines)``."""
    doc = tomllib.loads(BIRMINGHAM.read_text(encoding="utf-8"))
    bundled = load_config(BIRMINGHAM).universe
    assert bundled is not None
    lines = Path(bundled.areas).read_text(encoding="utf-8").splitlines()
    areas = tmp_path / "areas.csv"
    areas.write_text("\n".join(transform(lines)) + "\n", encoding="utf-8")
    doc["universe"]["areas"] = str(areas)
    path = tmp_path / "config.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    return path


def _with_columns(cells):
    """Append ``national_loading,regional_loading`` with ``cells(row index)`` as values."""
    def transform(lines):
        out = [lines[0] + ",national_loading,regional_loading"]
        out += [f"{line},{cells(i)}" for i, line in enumerate(lines[1:])]
        return out
    return transform


def test_loadings_equal_to_the_common_value_change_nothing(tmp_path):
    # Birmingham's process has both loadings at the default 1; give every area
    # 1 explicitly, or leave every third cell empty (the common value).
    plain = simulate(load_config(BIRMINGHAM), scenarios=2000, seed=3)
    cfg = load_config(_birmingham_with_areas(
        tmp_path, _with_columns(lambda i: "," if i % 3 == 0 else "1.0,1")))
    loaded = simulate(cfg, scenarios=2000, seed=3)
    # the provenance names the other areas file; every result is the same
    assert loaded.drop_attrs(deep=False).identical(plain.drop_attrs(deep=False))


def test_loadings_are_not_covariates(tmp_path):
    path = _birmingham_with_areas(tmp_path, _with_columns(lambda i: "1.5,0.5"))
    cfg = load_config(path)
    assert cfg.universe is not None
    areas = read_areas(cfg.universe.areas)
    bundled = load_config(BIRMINGHAM).universe
    assert bundled is not None
    plain = read_areas(bundled.areas)
    assert areas.covariate_names == plain.covariate_names
    np.testing.assert_array_equal(areas.covariates, plain.covariates)
    bond = cfg.bonds[0]
    assert (nearest_donors(bond, areas, {bond.area}, "", "").tolist()
            == nearest_donors(bond, plain, {bond.area}, "", "").tolist())
    beta, gamma = areas.loadings(1.0, 1.0)
    assert set(beta) == {1.5} and set(gamma) == {0.5}


# Birmingham's per-year national factor, with only small area shocks and noise
# besides (docs/model.md section 3.2).
PROCESS = {"national_phi": 0.85, "national_sigma": 0.05, "regional_phi": 0.7,
           "regional_sigma": 0.0, "area_phi": 0.6, "area_sigma": 0.01,
           "measurement_sigma": 0.005}
BASE = 50_000.0
MATURITY = 4.0


def _loaded_world(tmp_path: Path, treated_loading: str):
    u = make_universe(tmp_path, 6, base=BASE)
    lines = u.areas.read_text(encoding="utf-8").splitlines()
    rows = [lines[0] + ",national_loading"]
    rows += [f"{line},{treated_loading if i == 0 else '1.0'}"
             for i, line in enumerate(lines[1:])]
    u.areas.write_text("\n".join(rows) + "\n", encoding="utf-8")
    doc = config_dict(u, [bond_dict("b", "a000", donors=5, maturity=MATURITY)],
                      process=PROCESS, interventions=[intervention_dict(mean=0.0)])
    return parse(doc)


def _national_error_variance(v: float, donors: float, treated: float) -> float:
    """Var(exp(donors X) - exp(treated X)) for X ~ N(0, v), from the log-normal
    moments E[exp(c X)] = exp(c^2 v / 2)."""
    def m(c: float) -> float:
        return math.exp(c * c * v / 2.0)
    second = m(2.0 * donors) - 2.0 * m(donors + treated) + m(2.0 * treated)
    return second - (m(donors) - m(treated)) ** 2


def test_a_treated_area_loaded_more_adds_the_national_factor_to_the_error(tmp_path):
    # With every state 0 at the base and the national factor the only large
    # shock, the prediction error at maturity T (docs/model.md sections 3.2,
    # 4.4, 4.5) is BASE (exp(1.0 X + W) - exp(1.6 X + V)) with X = F[T] - F[0]
    # ~ N(0, sigma_F^2 A(phi_F, T)) and W, V the donors' and the treated area's
    # small area shocks and noise, independent of X. With common loadings
    # (1.6 -> 1.0) X cancels; loaded, the error's variance grows by
    # BASE^2 Var(exp(X) - exp(1.6 X)), which is 0.6^2 Var(X) to first order
    # (here 5.7% more: the log-normal's curvature). What is left out, the
    # exp(X) factor on W - V, adds about 2 Var(X) Var(err) ~ 0.1% of it.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    n = 20_000
    common = simulate(_loaded_world(tmp_path / "a", "1.0"), scenarios=n, seed=11)
    loaded = simulate(_loaded_world(tmp_path / "b", "1.6"), scenarios=n, seed=11)
    e0 = common.prediction_error.values[:, 0]
    e1 = loaded.prediction_error.values[:, 0]
    var_x = PROCESS["national_sigma"] ** 2 * kstep_variance(PROCESS["national_phi"], MATURITY)
    expected = BASE**2 * _national_error_variance(var_x, 1.0, 1.6)
    assert expected == pytest.approx(BASE**2 * 0.6**2 * var_x, rel=0.06)
    growth = e1.var() - e0.var()
    # Monte Carlo se of the two sample variances (common random numbers make
    # them correlated; adding the two se's is conservative)
    se = sum(math.sqrt(np.var((e - e.mean()) ** 2) / n) for e in (e0, e1))
    assert abs(growth - expected) < 4.0 * se + 0.005 * expected, (growth, expected, se)


def test_the_world_uses_each_areas_loading(tmp_path):
    cfg = _loaded_world(tmp_path, "1.6")
    series = build_world(cfg).arrays.series
    assert set(series.beta[series.treated]) == {1.6}
    assert set(series.beta[~series.treated]) == {1.0}
    assert set(series.gamma) == {1.0}  # no column: the outcome's common value


@pytest.mark.parametrize(("cell", "message"), [
    ("abc", r"row 3: national_loading must be a number in \[-10, 10\], got 'abc'"),
    ("nan", r"row 3: national_loading must be a number in \[-10, 10\], got 'nan'"),
    ("inf", r"row 3: national_loading must be a number in \[-10, 10\], got 'inf'"),
    ("11", r"row 3: national_loading must be a number in \[-10, 10\], got '11'"),
])
def test_bad_loading_cells_are_one_line_config_errors(tmp_path, cell, message):
    path = tmp_path / "areas.csv"
    path.write_text(f"area,region,x,national_loading\nA,R0,1,1.2\nB,R0,2,{cell}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        read_areas(path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text


def test_a_bad_loading_fails_at_load_time(tmp_path):
    path = _birmingham_with_areas(
        tmp_path, _with_columns(lambda i: "1.0,x" if i == 4 else "1.0,1.0"))
    with pytest.raises(ConfigError, match=r"row 6: regional_loading must be a number"):
        load_config(path)


def test_the_envelope_check_uses_each_areas_loading(tmp_path):
    # A random walk with sigma_F 5 over 4 years: sd 10 beta, 12 sd = 120 at
    # beta 1 (within the 150 of docs/config.md, The log-level envelope); an
    # area loaded 2 reaches 240 and is named.
    process = dict(PROCESS, national_phi=1.0, national_sigma=5.0)

    def world(loading: str):
        u = make_universe(tmp_path / loading, 3, ids=["A", "B", "C"])
        lines = u.areas.read_text(encoding="utf-8").splitlines()
        rows = [lines[0] + ",national_loading", lines[1] + ",", lines[2] + ",",
                lines[3] + f",{loading}"]
        u.areas.write_text("\n".join(rows) + "\n", encoding="utf-8")
        return parse(config_dict(u, [bond_dict("b", "A", donor_areas=["B"])], process=process))

    world("1.0")
    with pytest.raises(ConfigError, match=r"in area 'C' the simulated log level can move 24"):
        world("2.0")
