"""A calibrated universe on disk: the TOML and CSVs `lobsim calibrate` writes, read back.

:func:`write_universe` writes a :class:`~lobsim.validation.calibrate.Calibration`
as ``universe.toml`` (``[universe]``, an ``[[outcomes]]`` entry with its
per-year process, and ``[calibration]`` diagnostics) with the base-period
state and the per-area volatility scales beside it; :func:`read_universe`
reads it back as a :class:`CalibratedUniverse`, through the same data-file
readers (and range checks) as a config. docs/real_data.md describes the files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lobsim.errors import ConfigError
from lobsim.model.areas import (
    VOLATILITY_SCALE_MAX,
    AreaTable,
    OutcomeData,
    read_areas,
    read_outcome,
    read_volatility,
)
from lobsim.model.config import PACKAGE_DATA_PREFIX, OutcomeProcess
from lobsim.validation.calibrate import Calibration

if TYPE_CHECKING:
    from lobsim.validation.area_loadings import AreaLoadings

_PROCESS_KEYS = ("national_phi", "national_sigma", "regional_phi", "regional_sigma",
                 "area_phi", "area_sigma", "measurement_sigma", "national_loading",
                 "regional_loading")
_PERIOD_NAMES = {12: "month", 4: "quarter", 1: "year"}


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_float(value: float) -> str:
    return "nan" if math.isnan(value) else repr(float(value))


def _write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def data_reference(path: str | Path, toml_dir: Path) -> str:
    """How a universe file names a data file: ``lobsim:`` names kept, else relative."""
    text = str(path)
    if text.startswith(PACKAGE_DATA_PREFIX):
        return text
    return Path(os.path.relpath(Path(text).resolve(), toml_dir.resolve())).as_posix()


def _check_volatility_scale(cal: Calibration, history: str) -> None:
    """Refuse a calibration whose volatility file the data-file reader would reject."""
    scale = np.asarray(cal.volatility_scale, dtype=float)
    bad = np.flatnonzero(~((scale >= 0.0) & (scale <= VOLATILITY_SCALE_MAX)))
    if bad.size:
        i = int(bad[np.argmax(np.nan_to_num(scale[bad], nan=math.inf))])
        more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
        raise ConfigError(
            f"area {cal.areas[i]!r}: volatility_scale = {float(scale[i]):.6g} is outside "
            f"[0, {VOLATILITY_SCALE_MAX:g}], the range a volatility file may hold{more}; "
            "its variance about the region is far from the pooled model's: check its "
            "history, or leave the area out", source=history)


def write_universe(cal: Calibration, out: str | Path, *, areas: str, history: str,
                   outcome: str = "claimants", kind: str = "count", unit: str = "claimant",
                   name: str | None = None, loadings: AreaLoadings | None = None
                   ) -> dict[str, Path]:
    """Write a calibration as a universe file with its state and diagnostics.

    Parameters
    ----------
    cal : Calibration
    out : str or Path
        The universe TOML to write; ``<outcome>_state.csv`` and
        ``<outcome>_volatility.csv`` are written next to it.
    areas, history : str
        How the TOML refers to the areas and history files (relative to the
        TOML's folder, absolute, or ``lobsim:...``; see :func:`data_reference`).
    outcome, kind, unit, name : str
        The ``[[outcomes]]`` entry's id, kind, unit and name.
    loadings : AreaLoadings, optional
        Per-area loadings (:mod:`lobsim.validation.area_loadings`), whose
        summary goes into ``[calibration.loadings]``; ``areas`` should then
        name the areas file written with them.

    Returns
    -------
    dict of str to Path
        The files written, by name.

    Raises
    ------
    ConfigError
        If an area's volatility scale is above ``VOLATILITY_SCALE_MAX`` (100),
        the most a volatility file may hold (docs/config.md, Numeric ranges):
        nothing is written.

    Notes
    -----
    The TOML holds ``[universe]`` and an ``[[outcomes]]`` entry with its
    per-year ``[outcomes.process]``, ready to copy into a config (paths are
    relative to the TOML, as a config's are relative to the config), and a
    ``[calibration]`` table of diagnostics: per-period parameters, the trend
    spread, the volatility slope, the REML log likelihoods and
    ``[calibration.standard_errors]`` (per year, with ``on_boundary`` and a
    ``per_period`` table), which :func:`read_universe` ignores.
    """
    # refused before anything is written: a volatility file the loader rejects
    # would leave a universe no config can use
    _check_volatility_scale(cal, history)
    path = Path(out)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    state_name, vol_name = f"{outcome}_state.csv", f"{outcome}_volatility.csv"
    period = _PERIOD_NAMES.get(cal.periods_per_year)
    if period is None:
        raise ValueError(f"no config period has {cal.periods_per_year} periods a year")
    lines = [
        f"# lobsim calibration of {history} (docs/model.md section 3), written by",
        "# `lobsim calibrate`: REML on within-region deviations and regional means,",
        "# BLUP of the base-period state (docs/real_data.md). Paths are relative to",
        "# this file. To use it, copy [universe] and [[outcomes]] (with its",
        "# [outcomes.process], per year) into a config and adjust the paths.",
        "",
        "[universe]",
        f"areas = {_toml_string(areas)}",
        f"period = {_toml_string(period)}",
        "",
        "[[outcomes]]",
        f"id = {_toml_string(outcome)}",
        f"name = {_toml_string(name or outcome)}",
        f"kind = {_toml_string(kind)}",
        f"unit = {_toml_string(unit)}",
        f"history = {_toml_string(history)}",
        f"state = {_toml_string(state_name)}",
        "",
        "[outcomes.process]",
        *(f"{k} = {getattr(cal.process, k)!r}" for k in _PROCESS_KEYS),
        "",
        "[calibration]",
        'method = "reml-blup"',
        f"areas = {len(cal.areas)}",
        f"regions = {len(cal.regional_state)}",
        f"periods = {len(cal.periods)}",
        f"periods_per_year = {cal.periods_per_year}",
        f"first_period = {_toml_string(cal.periods[0])}",
        f"base_period = {_toml_string(cal.periods[-1])}",
        "# area trends mu[a] = mean + regional + area deviation, log change per year",
        f"trend_mean = {cal.trend_mean!r}",
        f"trend_sd_region = {cal.trend_sd_region!r}",
        f"trend_sd_area = {cal.trend_sd_area!r}",
        "# slope of log(area variance / pooled variance) on the log level",
        f"volatility_slope = {cal.volatility_slope!r}",
        f"volatility = {_toml_string(vol_name)}",
        f"loglik_within = {cal.loglik_within!r}",
        f"loglik_between = {cal.loglik_between!r}",
        "",
        "[calibration.per_period]",
        *(f"{k} = {v!r}" for k, v in cal.per_period.items()),
        "",
        "# Standard errors of the per-year estimates (docs/real_data.md, Standard errors):",
        "# observed information of the REML likelihoods, GLS and moments for the trends;",
        "# nan for an estimate on its boundary (listed in on_boundary) or not identified.",
        "# Diagnostics only: nothing reads them back.",
        "[calibration.standard_errors]",
        f"on_boundary = [{', '.join(_toml_string(k) for k in cal.on_boundary)}]",
        *(f"{k} = {_toml_float(v)}" for k, v in cal.standard_errors.items()),
        "",
        "[calibration.standard_errors.per_period]",
        *(f"{k} = {_toml_float(v)}" for k, v in cal.standard_errors_per_period.items()),
    ]
    if loadings is not None:
        lines += ["", "# Per-area loadings (docs/real_data.md, Per-area loadings), in the areas",
                  "# file: sd of the true loadings within and between regions, the halves'",
                  "# agreement, whether each spread is told from 0, areas with an estimate,",
                  "# those written (the rest keep the common value), those more than 2 se",
                  "# from it. Diagnostics only.",
                  "[calibration.loadings]"]
        for est in (loadings.national, loadings.regional):
            lines += [f"{est.name}_spread_within = {_toml_float(est.spread_within)}",
                      f"{est.name}_spread_within_se = {_toml_float(est.spread_within_se)}",
                      f"{est.name}_spread_between = {_toml_float(est.spread_between)}",
                      f"{est.name}_spread_between_se = {_toml_float(est.spread_between_se)}",
                      f"{est.name}_split_half_r = {_toml_float(est.split_half_r)}",
                      f"{est.name}_split_half_z = {_toml_float(est.split_half_z)}",
                      f"{est.name}_within_identified = {str(est.within_identified).lower()}",
                      f"{est.name}_between_identified = {str(est.between_identified).lower()}",
                      f"{est.name}_identified = {est.identified}",
                      f"{est.name}_own = {est.own}",
                      f"{est.name}_beyond_2se = {est.significant}"]
    _write_lines(path, lines)
    state = ["area,trend,log_level,area_state,regional_state,national_state"]
    vol = ["area,region,volatility_scale"]
    for i, (area, region) in enumerate(zip(cal.areas, cal.regions, strict=True)):
        fields = (cal.trend[i], cal.log_level[i], cal.area_state[i],
                  cal.regional_state[region], cal.national_state)
        state.append(",".join([area, *(repr(float(v)) for v in fields)]))
        vol.append(f"{area},{region},{float(cal.volatility_scale[i])!r}")
    _write_lines(folder / state_name, state)
    _write_lines(folder / vol_name, vol)
    return {path.name: path, state_name: folder / state_name, vol_name: folder / vol_name}


@dataclass(frozen=True, kw_only=True)
class CalibratedUniverse:
    """A calibrated universe read back from its TOML (:func:`read_universe`).

    Attributes
    ----------
    path : Path
        The TOML file.
    areas : AreaTable
    data : OutcomeData
        History and base-period state.
    process : OutcomeProcess
        Per-year parameters.
    periods_per_year : int
    trend_mean, trend_sd_region, trend_sd_area : float
        Per year.
    volatility_scale : ndarray
        Per area, in the areas table's order.
    outcome : dict
        The ``[[outcomes]]`` entry as written.
    """

    path: Path
    areas: AreaTable
    data: OutcomeData
    process: OutcomeProcess
    periods_per_year: int
    trend_mean: float
    trend_sd_region: float
    trend_sd_area: float
    volatility_scale: np.ndarray
    outcome: dict[str, object]


def read_universe(path: str | Path) -> CalibratedUniverse:
    """Read a universe TOML written by :func:`write_universe`.

    Raises
    ------
    ConfigError
        If the file is missing, not TOML, or lacks a table this needs.
    """
    import tomllib

    from lobsim.model.realdata import resolve_data_path

    source = str(path)
    p = resolve_data_path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"is not valid TOML: {exc}", source=source) from None
    try:
        universe, (outcome,), cal = doc["universe"], doc["outcomes"], doc["calibration"]
        process = OutcomeProcess(**{k: float(outcome["process"][k]) for k in _PROCESS_KEYS})
        ppy = int(cal["periods_per_year"])
        trends = tuple(float(cal[k]) for k in ("trend_mean", "trend_sd_region",
                                                "trend_sd_area"))
        refs = (universe["areas"], outcome["history"], outcome["state"], cal["volatility"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"is not a universe written by `lobsim calibrate` ({exc!r} is "
                          "missing or malformed)", source=source) from None

    def locate(ref: str) -> Path:
        return resolve_data_path(ref) if ref.startswith(PACKAGE_DATA_PREFIX) else p.parent / ref

    areas_path, history_path, state_path, vol_path = (locate(str(r)) for r in refs)
    table = read_areas(areas_path)
    data = read_outcome(history_path, state_path, table, ppy)
    scale = read_volatility(vol_path, table)
    return CalibratedUniverse(path=p, areas=table, data=data, process=process, periods_per_year=ppy,
                    trend_mean=trends[0], trend_sd_region=trends[1], trend_sd_area=trends[2],
                    volatility_scale=scale, outcome=dict(outcome))
