"""Any config that loads simulates to finite outputs (issue 14; docs/config.md, Numeric ranges).

Configs and data files are drawn with every numeric field in its documented range,
the ends of each range included (``strategies.ranged_documents``). Each either is
refused by the loader with one ConfigError line, or loads, and then its term sheet,
its results at 64 scenarios and their summary are finite: every float, except
``signal_to_noise``, which is infinite exactly when the prediction error has no
spread (no noise; null in JSON).

Runs in the suite with the ``finite-ci`` profile (60 derandomised examples, about
20 s); for a deeper local run (2,000 random examples, about 5 minutes):

    LOBSIM_FINITE_PROFILE=finite-deep .venv/bin/python -m pytest tests/test_config_finite.py
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, note, settings

from lobsim import simulate
from lobsim.analysis.summary import summarize
from lobsim.analysis.terms import term_sheet
from lobsim.errors import ConfigError, LobsimWarning
from lobsim.model.config import parse_config
from strategies import ranged_documents

settings.register_profile("finite-ci", deadline=None, max_examples=60, derandomize=True,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("finite-deep", deadline=None, max_examples=2000, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile(os.environ.get("LOBSIM_FINITE_PROFILE", "finite-ci"))
SOURCE = "drawn.toml"


def _numbers(value: Any, where: str = "") -> list[tuple[str, float]]:
    """Every float in a nested dict / list / tuple, with where it is."""
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _numbers(v, f"{where}.{k}")]
    if isinstance(value, list | tuple):
        return [x for i, v in enumerate(value) for x in _numbers(v, f"{where}[{i}]")]
    if isinstance(value, float):
        return [(where, value)]
    return []


@settings(PROFILE)
@given(drawn=ranged_documents())
def test_a_config_in_range_loads_and_simulates_finite_or_is_refused(drawn) -> None:
    doc, files = drawn
    with tempfile.TemporaryDirectory() as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", LobsimWarning)
            try:
                cfg = parse_config(doc, source=SOURCE, base_dir=folder)
            except ConfigError as exc:
                text = str(exc)
                assert "\n" not in text and exc.reason, text
                event(f"refused: {exc.path or 'data file'}".split("[")[0])
                note(text)
                return
        for w in caught:  # a valid config may warn: one line naming it
            assert issubclass(w.category, LobsimWarning) and "\n" not in str(w.message)
        event("loaded")
        sheet = term_sheet(cfg).to_dict()
        for where, x in _numbers(sheet):
            assert math.isfinite(x), f"term sheet {where} = {x}"
        ds = simulate(cfg, scenarios=64)
    for name, var in ds.data_vars.items():
        if var.dtype.kind != "f":
            continue
        values = var.values
        assert np.isfinite(values).all(), f"results {name} is not finite"
    s = summarize(ds)
    for name, var in s.data_vars.items():
        if var.dtype.kind != "f":
            continue
        values = var.values
        if name == "signal_to_noise":  # infinite only with no noise at all
            spread = ds.prediction_error.std("scenario").values
            assert (np.isfinite(values) | (spread == 0.0)).all(), (values, spread)
            assert not np.isnan(values).any()
        elif name == "basket_lowest_signal_to_noise":  # infinite only if all its bonds are
            member = ds.basket_member.values.astype(bool)
            bond_snr = s.signal_to_noise.values
            noisy = np.array([np.isfinite(bond_snr[m]).any() for m in member], bool)
            assert (np.isfinite(values) == noisy).all(), (values, bond_snr)
        else:
            assert np.isfinite(values).all(), f"summary {name} is not finite"
