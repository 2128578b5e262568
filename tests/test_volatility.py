"""Per-area variance factors (sigma_U[a] of docs/model.md section 3.2) from a volatility file."""

from __future__ import annotations

import pytest

from lobsim import simulate
from lobsim.errors import ConfigError
from worlds import bond_dict, config_dict, intervention_dict, make_universe, parse

NOISY = {"national_phi": 0.8, "national_sigma": 0.0, "regional_phi": 0.8,
         "regional_sigma": 0.0, "area_phi": 0.5, "area_sigma": 0.01,
         "measurement_sigma": 0.005}


def _world(tmp_path, scale_rows):
    u = make_universe(tmp_path, 3, ids=["A", "B", "C"], base=[10_000.0, 12_000.0, 11_000.0])
    doc = config_dict(u, [bond_dict("b", "A", donor_areas=["B"])], process=NOISY,
                      interventions=[intervention_dict(mean=0.0)])
    if scale_rows is not None:
        path = tmp_path / "vol.csv"
        path.write_text("area,region,volatility_scale\n" + scale_rows)
        doc["outcomes"][0]["volatility"] = str(path)
    return parse(doc)


def test_variance_factor_scales_the_prediction_error(tmp_path):
    # With only area shocks and noise, a variance factor of 4 on every area
    # doubles each shock, so (to first order in these 1% shocks) the sd of
    # the prediction error doubles: common random numbers, 2% tolerance for
    # the log-normal's curvature.
    plain = simulate(_world(tmp_path / "a", None), scenarios=4000, seed=9)
    (tmp_path / "b").mkdir()
    scaled = simulate(_world(tmp_path / "b", "A,R0,4\nB,R0,4\nC,R0,4\n"), scenarios=4000, seed=9)
    ratio = float(scaled.prediction_error.std() / plain.prediction_error.std())
    assert ratio == pytest.approx(2.0, rel=0.02)


def test_bad_volatility_file_is_a_config_error(tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(ConfigError, match=r"volatility_scale must be a number in \[0, 100\]"):
        _world(tmp_path / "c", "A,R0,-1\n")
