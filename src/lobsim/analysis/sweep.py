"""Sensitivity sweeps: a config simulated at each value of one or two ``--set`` parameters.

Each point of the sweep is the config with its overrides
(:mod:`lobsim.model.overrides`), loaded and validated as ``lobsim run --set``
loads it, and simulated with the same scenarios and seed: common random
numbers, so the differences between points are those the parameter makes
and not the Monte Carlo noise of independent runs (a point equals
``lobsim run CONFIG --set PATH=VALUE`` bit for bit). The statistics are
those of :func:`lobsim.analysis.summary.summarize`, one definition each;
default probabilities carry their 95% Wilson interval
(:func:`lobsim.analysis.stats.probability_interval`), means their standard
error (95% interval: ``Z95`` of them either side).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from lobsim.analysis.stats import Z95, probability_interval
from lobsim.analysis.tables import interval
from lobsim.jsonio import number
from lobsim.model.config import load_config
from lobsim.model.overrides import parse_value

#: The schema of ``lobsim sweep --json``.
SCHEMA = "lobsim.sweep/1"
#: Swept parameters at most: a line plot for one, a grid for two.
MAX_PARAMETERS = 2
#: Summary statistics per bond (and, prefixed ``basket_``, per basket), with their units.
#: Each has a ``_se`` companion in the summary.
BOND_STATISTICS = {
    "default_probability": "1",
    "mean_multiple": "1",
    "expected_overpayment": "GBP",
    "expected_provider_shortfall_value": "GBP",
}
BASKET_STATISTICS = {"basket_default_probability": "1", "basket_mean_multiple": "1"}
_LONG_NAMES = {
    "default_probability": "P(investor payment below principal)",
    "mean_multiple": "expected money multiple",
    "expected_overpayment": "the state's expected payment for units the programme did not cause",
    "expected_provider_shortfall_value": "the provider's expected shortfall (units achieved "
                                         "but not paid, at the price per unit)",
    "basket_default_probability": "P(basket payment below principal)",
    "basket_mean_multiple": "expected money multiple of the basket",
}

Parameter = tuple[str, Sequence[str]]  # (PATH, [VALUE text, ...])


def sweep(config: str | Path, parameters: Sequence[Parameter], *,
          overrides: Sequence[str] = (), scenarios: int | None = None, seed: int | None = None,
          threads: int | None = None,
          progress: Callable[[int, int, tuple[str, ...]], Any] | None = None) -> xr.Dataset:
    """Simulate ``config`` at every point of a grid of one or two parameters.

    Parameters
    ----------
    config : str or Path
        The TOML file.
    parameters : sequence of (str, sequence of str)
        One or two swept parameters: a TOML path (``bonds[0].target_units``)
        and the values it takes, as ``--set`` would give them (``"4000"``).
    overrides : sequence of str
        ``PATH=VALUE`` applied at every point, before the swept ones.
    scenarios, seed : int, optional
        Default: each point's config (the same at every point unless a
        parameter is ``simulation.scenarios`` or ``simulation.seed``).
    threads : int, optional
        Worker threads; results do not depend on them.
    progress : callable, optional
        Called as ``progress(k, points, overrides)`` before point ``k`` (from 1).

    Returns
    -------
    xarray.Dataset
        A dimension per parameter (named by its path, coordinates its values)
        and ``bond`` (and ``basket`` if the config has baskets); per point
        and bond the statistics of :data:`BOND_STATISTICS` with ``_se``, the
        95% interval ``default_probability_low``/``_high``, ``principal`` and
        ``signal_to_noise``; per point ``config_hash``, ``seed`` and
        ``scenarios``. ``attrs["common_random_numbers"]`` says whether every
        point ran the same scenarios with the same seed.

    Raises
    ------
    ConfigError
        If a point's config does not load (naming the ``--set`` that broke it).
    ValueError
        For no parameter or more than two, a repeated or empty one, or
        points whose bonds or baskets differ.

    Examples
    --------
    >>> from lobsim.analysis.sweep import sweep
    >>> s = sweep("configs/birmingham_jsa.toml", [("bonds[0].target_units", ["4000", "5000"])],
    ...           scenarios=2000)  # doctest: +SKIP
    >>> s.default_probability.sel(bond="bham-jsa").values  # doctest: +SKIP
    """
    from lobsim.analysis.summary import summarize
    from lobsim.model.simulate import simulate

    _check_parameters(parameters)
    paths = [p for p, _ in parameters]
    grid = list(itertools.product(*(range(len(v)) for _, v in parameters)))
    shape = tuple(len(v) for _, v in parameters)
    points: list[tuple[tuple[str, ...], xr.Dataset, Any]] = []
    for k, index in enumerate(grid, start=1):
        point = tuple(f"{p}={parameters[d][1][i]}" for d, (p, i) in enumerate(
            zip(paths, index, strict=True)))
        if progress is not None:
            progress(k, len(grid), point)
        cfg = load_config(config, overrides=(*overrides, *point))
        ds = simulate(cfg, scenarios=scenarios, seed=seed, threads=threads)
        summary = summarize(ds)
        summary["principal"] = ("bond", ds.principal.values)  # the run's, as labelled
        for name, dim in (("default_probability", "bond"),
                          ("basket_default_probability", "basket")):
            low, high = probability_interval(summary[name].values, summary[name + "_se"].values,
                                             int(ds.sizes["scenario"]))
            summary[name + "_low"], summary[name + "_high"] = (dim, low), (dim, high)
        points.append((point, summary, cfg))
    first = points[0][1]
    has_baskets = bool(points[0][2].baskets)
    for point, s, _ in points[1:]:
        for dim in ("bond", "basket") if has_baskets else ("bond",):
            if list(s[dim].values) != list(first[dim].values):
                raise ValueError(f"--set {', '.join(point)} changes the config's {dim}s "
                                 f"({', '.join(map(str, s[dim].values))}); a sweep compares "
                                 "the same instruments")

    def gather(name: str, dim: str) -> np.ndarray:
        return np.stack([s[name].values for _, s, _ in points]).reshape(
            *shape, first.sizes[dim])

    dims = tuple(paths)
    data: dict[str, Any] = {}
    stats = dict(BOND_STATISTICS)
    if "expected_provider_shortfall_value" not in first:  # results before the shortfall
        del stats["expected_provider_shortfall_value"]
    groups = [("bond", stats)] + ([("basket", BASKET_STATISTICS)] if has_baskets else [])
    n = np.array([int(s.attrs["scenarios"]) for _, s, _ in points]).reshape(shape)
    for dim, names in groups:
        for name, units in names.items():
            attrs = {"units": units, "long_name": _LONG_NAMES[name]}
            data[name] = ((*dims, dim), gather(name, dim), attrs)
            data[name + "_se"] = ((*dims, dim), gather(name + "_se", dim),
                                  {"units": units, "long_name": "Monte Carlo standard error"})
        p = f"{'basket_' if dim == 'basket' else ''}default_probability"
        for side in ("low", "high"):
            data[f"{p}_{side}"] = ((*dims, dim), gather(f"{p}_{side}", dim), {
                "units": "1", "long_name": f"95% Wilson interval of {p}, {side} end"})
    data["principal"] = ((*dims, "bond"), gather("principal", "bond"),
                         {"units": "GBP", "long_name": "investor principal"})
    data["signal_to_noise"] = ((*dims, "bond"), gather("signal_to_noise", "bond"),
                               {"units": "1", "long_name": "target over the sd of measured "
                                                           "units with no effect"})
    data["config_hash"] = (dims, np.array([str(s.attrs["config_hash"])
                                           for _, s, _ in points]).reshape(shape))
    data["seed"] = (dims, np.array([int(s.attrs["seed"]) for _, s, _ in points]).reshape(shape))
    data["scenarios"] = (dims, n)
    coords: dict[str, Any] = {p: _coordinate(v) for p, v in parameters}
    coords["bond"] = first.bond.values
    if has_baskets:
        coords["basket"] = first.basket.values
    out = xr.Dataset(data, coords=coords)
    blocks = {int(s.attrs["block_size"]) for _, s, _ in points}  # blocks draw the streams
    crn = bool(np.all(out.seed == out.seed.values.flat[0])
               and np.all(out.scenarios == out.scenarios.values.flat[0]) and len(blocks) == 1)
    out.attrs.update(
        title=f"lobsim sweep: {first.attrs.get('config', '')}",
        config=str(first.attrs.get("config", "")),
        config_source=str(config),
        parameters=json.dumps(paths),
        overrides=json.dumps(list(overrides)),
        seed=int(out.seed.values.flat[0]),
        scenarios=int(n.flat[0]),
        common_random_numbers=int(crn),
        currency="GBP",
        confidence=0.95,
        z95=Z95,
    )
    return out


def _check_parameters(parameters: Sequence[Parameter]) -> None:
    if not 1 <= len(parameters) <= MAX_PARAMETERS:
        raise ValueError(f"a sweep varies one or two parameters, got {len(parameters)}")
    paths = [p for p, _ in parameters]
    if len(set(paths)) != len(paths):
        raise ValueError(f"{paths[0]} is swept twice; give its values in one --set")
    for p, values in parameters:
        if not values or any(v == "" for v in values):
            raise ValueError(f"--set {p}: give the values as {p}=V1,V2,... (none may be empty)")
        if len(set(values)) != len(values):
            raise ValueError(f"--set {p}: a value is repeated")


def _coordinate(values: Sequence[str]) -> np.ndarray:
    """The values as numbers (or strings, booleans) when they all are, else as typed."""
    parsed = [parse_value(v) for v in values]
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in parsed):
        return np.array(parsed, dtype=float if any(isinstance(v, float) for v in parsed)
                        else np.int64)
    if all(isinstance(v, str) for v in parsed) or all(isinstance(v, bool) for v in parsed):
        return np.array(parsed)
    return np.array(list(values))  # arrays, tables, a mixture: as typed


def sweep_dict(s: xr.Dataset) -> dict[str, Any]:
    """JSON-ready layout of a sweep (``schema``: ``lobsim.sweep/1``; README, section JSON)."""
    params = json.loads(s.attrs["parameters"])
    units = {str(name): s[name].attrs["units"] for name in s.data_vars
             if "units" in s[name].attrs and not str(name).endswith(("_se", "_low", "_high"))}
    points = []
    for index in itertools.product(*(range(s.sizes[p]) for p in params)):
        at = s.isel(dict(zip(params, index, strict=True)))
        point: dict[str, Any] = {
            "values": {p: _plain(at[p].values) for p in params},
            "config_hash": str(at.config_hash.values), "seed": int(at.seed),
            "scenarios": int(at.scenarios),
        }
        for dim in ("bond", "basket"):
            if dim not in s.dims:
                continue
            rows = []
            for j, ident in enumerate(s[dim].values.tolist()):
                row: dict[str, Any] = {dim: ident}
                for name in s.data_vars:
                    if dim in s[name].dims:
                        row[str(name).removeprefix("basket_")] = number(at[name].values[j])
                rows.append(row)
            point[f"{dim}s"] = rows
        points.append(point)
    return {"schema": SCHEMA, "config": s.attrs["config"], "config_source": s.attrs[
                "config_source"],
            "scenarios": s.attrs["scenarios"], "seed": s.attrs["seed"],
            "common_random_numbers": bool(s.attrs["common_random_numbers"]),
            "overrides": json.loads(s.attrs["overrides"]), "confidence": s.attrs["confidence"],
            "currency": s.attrs["currency"], "units": units,
            "parameters": [{"path": p, "values": [_plain(v) for v in s[p].values]}
                           for p in params],
            "points": points}


def _plain(value: Any) -> Any:
    item = np.asarray(value).item()
    return number(item) if isinstance(item, float) else item


def format_sweep(s: xr.Dataset) -> str:
    """Plain-text table: a row per point and bond (then per point and basket)."""
    params = json.loads(s.attrs["parameters"])
    crn = ("common random numbers: every point simulates the same scenarios with the same seed"
           if s.attrs["common_random_numbers"] else
           "NOT common random numbers: the points differ in seed, scenarios or block size")
    lines = [f"Sweep of {s.attrs['config']!r} ({s.attrs['scenarios']:,} scenarios, seed "
             f"{s.attrs['seed']}); {crn}"]
    fixed = json.loads(s.attrs["overrides"])
    if fixed:
        lines.append("at every point: " + ", ".join(f"--set {o}" for o in fixed))
    width = [max(len(p), *(len(_text(v)) for v in s[p].values)) + 2 for p in params]
    for dim, prefix in (("bond", ""), ("basket", "basket_")):
        if dim not in s.dims:
            continue
        idw = max(len(dim), *(len(str(i)) for i in s[dim].values)) + 2
        head = "".join(f"{p:<{w}}" for p, w in zip(params, width, strict=True))
        money = dim == "bond"
        cols = (f"{dim:<{idw}}{'P(default) %':>13}{'95% interval %':>18}{'E[multiple]':>19}"
                + (f"{'E[overpayment] GBP':>28}{'provider E[shortfall] GBP':>30}" if money else ""))
        lines += ["", f"{dim.capitalize()}s", head + cols]
        for index in itertools.product(*(range(s.sizes[p]) for p in params)):
            at = s.isel(dict(zip(params, index, strict=True)))
            key = "".join(f"{_text(at[p].values):<{w}}" for p, w in zip(params, width,
                                                                       strict=True))
            for j, ident in enumerate(s[dim].values.tolist()):
                v = {name: at[prefix + name].values[j] for name in
                     ("default_probability", "default_probability_low",
                      "default_probability_high", "mean_multiple", "mean_multiple_se")}
                row = (f"{key}{ident:<{idw}}{100 * v['default_probability']:>13.2f}"
                       f"{interval(100 * v['default_probability_low'], 100 * v['default_probability_high'], '.2f'):>18}"
                       f"{_pm(v['mean_multiple'], v['mean_multiple_se'], 4):>19}")
                if money:
                    row += f"{_pm_of(at, 'expected_overpayment', j):>28}"
                    if "expected_provider_shortfall_value" in s:
                        row += f"{_pm_of(at, 'expected_provider_shortfall_value', j):>30}"
                lines.append(row)
    lines += ["", "± and intervals are 95% (Wilson for P(default)); E[overpayment] is the "
                  "state's, E[shortfall] the provider's (units achieved but not paid, at the "
                  "price per unit)"]
    return "\n".join(lines)


def _text(value: Any) -> str:
    item = np.asarray(value).item()
    return f"{item:g}" if isinstance(item, float) else str(item)


def _pm(mean: float, se: float, digits: int) -> str:
    """A mean and the half-width of its 95% interval."""
    return f"{mean:,.{digits}f} ±{Z95 * se:,.{digits}f}"


def _pm_of(at: xr.Dataset, name: str, j: int) -> str:
    """An amount in GBP (whole pounds) of bond ``j`` and its 95% half-width."""
    return _pm(float(at[name].values[j]), float(at[name + "_se"].values[j]), 0)
