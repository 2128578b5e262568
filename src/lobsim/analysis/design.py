"""Design search: a bond's (or basket's) measurement design chosen on common random numbers.

A *design* is the config with named-field overrides (:mod:`lobsim.model.overrides`,
as ``--set`` and :mod:`lobsim.analysis.sweep` apply them) of a few *levers*:
the control group's size and weights, the maturity, the cap as a multiple
of the target, the threshold, the payment basis, a basket's pooled
measurement: whatever lever of :data:`lobsim.analysis.design_levers.LEVERS`
the config's schema accepts. Every design is loaded, validated and simulated
as ``lobsim run --set`` would (same scenarios, same seed: its differences
from another design are those the levers make, not Monte Carlo noise) and
reduced by :func:`lobsim.analysis.summary.summarize`, one definition of each
statistic.

The default search is one lever at a time around the contracted design,
then the grid of the two most *influential* levers (the largest range,
over their one-at-a-time designs, of the investor's expected loss plus the
state's expected overpayment, both as shares of the principal): dozens of
designs, not the full product (``full_grid`` gives that, bounded by
``max_designs``). The *frontier* is the set of designs no other beats on
both investor P(default) and the state's E[overpayment]; the
*recommendation* is the least E[overpayment] among the designs whose
investor P(default) is at most ``max_default`` (the point estimate).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lobsim.analysis import tables
from lobsim.analysis.design_levers import (
    LEVER_NAMES,
    LEVERS,
    MIXED,
    Lever,
    canonical,
    contracted_value,
    default_values,
    overrides_for,
)
from lobsim.errors import ConfigError
from lobsim.jsonio import number
from lobsim.model.overrides import parse_value

# the statistics, the loader and xarray are imported where used: the command line
# builds its parser from LEVERS and loads nothing heavy (tests/test_startup_imports)
if TYPE_CHECKING:
    import xarray as xr

#: The schema of ``lobsim design --json``.
SCHEMA = "lobsim.design/1"
#: Default criterion: the investor's P(default) a recommended design may have at most.
MAX_DEFAULT = 0.10
#: Default bound on the number of designs simulated.
MAX_DESIGNS = 60
#: Levers crossed in a grid after the one-at-a-time search.
GRID_LEVERS = 2


#: Per design: the statistic, its units and what it is.
STATISTICS = {
    "signal_to_noise": ("1", "target over the sd of measured units with no effect (a "
                             "basket: its noisiest bond's; measured pooled: the pool's)"),
    "minimum_detectable_effect_share": ("1", "minimum detectable effect as a share of the "
                                             "target (a basket: its noisiest bond's; "
                                             "measured pooled: the pool's)"),
    "default_probability": ("1", "investor P(payment below principal)"),
    "mean_multiple": ("1", "investor expected money multiple"),
    "expected_loss": ("GBP", "investor expected loss (principal minus payment, if positive)"),
    "expected_overpayment": ("GBP", "the state's expected payment for units the programme "
                                    "did not cause"),
    "expected_provider_shortfall_value": ("GBP", "the provider's expected shortfall (units "
                                                 "achieved but not paid, at the price)"),
    "principal": ("GBP", "investor principal"),
}
_WITH_SE = ("default_probability", "mean_multiple", "expected_loss", "expected_overpayment",
            "expected_provider_shortfall_value")


def design(config: str | Path, *, bond: str | None = None, basket: str | None = None,
           levers: Mapping[str, Sequence[str] | None] | None = None,
           overrides: Sequence[str] = (), scenarios: int | None = None,
           seed: int | None = None, threads: int | None = None,
           max_default: float = MAX_DEFAULT, full_grid: bool = False,
           max_designs: int = MAX_DESIGNS,
           progress: Callable[[int, str], Any] | None = None) -> xr.Dataset:
    """Search the measurement designs of one bond or basket.

    Parameters
    ----------
    config : str or Path
        The TOML file.
    bond, basket : str
        The instrument designed (exactly one). A basket's bond levers set
        the field of every member bond.
    levers : mapping of str to sequence of str or None, optional
        Lever names of :data:`LEVERS` and their candidate values (``None``:
        the lever's own); default every lever of the instrument's scope.
    overrides : sequence of str
        ``PATH=VALUE`` applied to every design, the contracted one included.
    scenarios, seed, threads : int, optional
        As :func:`lobsim.simulate`; the same for every design.
    max_default : float
        The criterion: least E[overpayment] with investor P(default) at most this.
    full_grid : bool
        Search the full product of the levers' values instead of one at a
        time plus the grid of the two most influential.
    max_designs : int
        Most designs simulated; a larger full grid is refused.
    progress : callable, optional
        Called as ``progress(k, label)`` before design ``k`` (from 1).

    Returns
    -------
    xarray.Dataset
        Dimension ``design`` (design 0 is the contracted one); a coordinate per
        searched lever (its value as text); the :data:`STATISTICS` with
        ``_se`` companions, ``default_probability_low``/``_high`` (95% Wilson),
        ``frontier`` and ``recommended`` flags. ``attrs`` hold the levers
        searched and not searched (with the reason), the designs skipped
        (with the reason), the criterion and the run's scenarios and seed.

    Raises
    ------
    ConfigError
        If the config (with ``overrides``) does not load or has no such instrument.
    ValueError
        For a bad choice of instrument or levers, or a full grid above ``max_designs``.
    """
    from lobsim.model.config import load_config
    from lobsim.model.simulate import simulate

    if (bond is None) == (basket is None):
        raise ValueError("give the bond or the basket to design (one of them)")
    if not 0.0 <= max_default <= 1.0:
        raise ValueError(f"the criterion's P(default) bound must be in [0, 1], got {max_default}")
    base = load_config(config, overrides=overrides)
    kind, ident = ("bond", bond) if bond is not None else ("basket", basket)
    assert ident is not None
    if kind == "bond":
        base.bond(ident)  # an unknown id: a one-line UnknownIdError
    else:
        base.basket(ident)
    contracted = simulate(base, scenarios=scenarios, seed=seed, threads=threads)
    members = ([ident] if kind == "bond" else [
        str(b) for b, m in zip(contracted.bond.values, contracted.basket_member.sel(
            basket=ident).values, strict=True) if m])
    chosen = _choose(levers, kind)
    searched: list[tuple[Lever, str, list[str]]] = []  # (lever, contracted value, others)
    not_searched: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for lever, values in chosen:
        now = contracted_value(lever, base, kind, ident, members)
        if values is None and callable(lever.candidates) and now == MIXED:
            not_searched[lever.name] = (f"the basket's bonds differ in {lever.name}, and its "
                                        f"candidates are relative to one value; give them "
                                        f"(--lever {lever.name}=V1,V2,...)")
            continue
        texts = list(dict.fromkeys(canonical(v) for v in (
            values if values is not None else default_values(lever, now))))
        valid, reasons = [], []
        for v in texts:
            if v == now:
                continue
            try:
                load_config(config, overrides=(*overrides, *overrides_for(lever, v, base, ident,
                                                                  members)))
            except ConfigError as exc:
                reasons.append(exc.reason)
                skipped[f"{lever.name}={v}"] = exc.reason
                continue
            valid.append(v)
        if not valid:
            where = lever.path.format(id=ident if kind == "bond" or lever.scope == "basket"
                                      else members[0])
            not_searched[lever.name] = (
                f"the config refuses {where}: {_own(reasons[0])}" if reasons else
                f"no value other than the contracted {now}")
            for v in texts:
                skipped.pop(f"{lever.name}={v}", None)
            continue
        searched.append((lever, now, valid))
    if not searched:
        raise ValueError("no lever to search: " + "; ".join(
            f"{k}: {v}" for k, v in not_searched.items()))
    now_of = {lever.name: now for lever, now, _ in searched}

    rows: list[tuple[dict[str, str], dict[str, float]]] = []
    seen: set[tuple[str, ...]] = set()

    def run(setting: dict[str, str]) -> None:
        key = tuple(setting[lever.name] for lever, _, _ in searched)
        if key in seen:
            return
        seen.add(key)
        label = _label(setting, now_of)
        if progress is not None:
            progress(len(seen), label)
        if not any(setting[n] != now_of[n] for n in now_of):
            ds = contracted
        else:
            sets = [s for lever, _, _ in searched if setting[lever.name] != now_of[lever.name]
                    for s in overrides_for(lever, setting[lever.name], base, ident, members)]
            try:
                cfg = load_config(config, overrides=(*overrides, *sets))
                ds = simulate(cfg, scenarios=scenarios, seed=seed, threads=threads)
            except ValueError as exc:  # ConfigError too: a combination the validator refuses
                skipped[label] = getattr(exc, "reason", str(exc)).splitlines()[0]
                return
        reason = _same_instrument(ds, kind, ident, members)
        if reason:
            skipped[label] = reason
            return
        rows.append((dict(setting), _statistics(ds, kind, ident)))

    grid_levers = list(now_of)
    if full_grid:
        grid = list(itertools.product(*([now, *others] for _, now, others in searched)))
        if len(grid) > max_designs:
            raise ValueError(f"the full grid has {len(grid)} designs, more than the bound "
                             f"{max_designs}; raise it or give fewer lever values")
        for values in grid:
            run(dict(zip(now_of, values, strict=True)))
    else:
        run(dict(now_of))
        for lever, _, others in searched:
            for v in others:
                if len(seen) < max_designs:
                    run({**now_of, lever.name: v})
        pair = _influential(rows, searched)
        grid_levers = [lever.name for lever in pair] if len(pair) == GRID_LEVERS else []
        if grid_levers:
            a, b = pair
            for va, vb in itertools.product([now_of[a.name], *_others(searched, a)],
                                            [now_of[b.name], *_others(searched, b)]):
                if len(seen) < max_designs:
                    run({**now_of, a.name: va, b.name: vb})
    out = _dataset(rows, searched, not_searched, skipped, kind, ident, contracted,
                   max_default, str(config), overrides, full_grid)
    out.attrs["grid_levers"] = json.dumps(grid_levers)
    return out


def _choose(levers: Mapping[str, Sequence[str] | None] | None,
            kind: str) -> list[tuple[Lever, Sequence[str] | None]]:
    by_name = {lever.name: lever for lever in LEVERS}
    if levers is None:
        return [(lever, None) for lever in LEVERS if lever.scope == "bond" or kind == "basket"]
    out = []
    for name, values in levers.items():
        if name not in by_name:
            raise ValueError(f"no lever {name!r}; the levers are {', '.join(LEVER_NAMES)}")
        if by_name[name].scope == "basket" and kind == "bond":
            raise ValueError(f"the {name} lever is a basket's; design a basket (--basket)")
        out.append((by_name[name], values))
    return out


def _own(reason: str) -> str:
    """A validator's reason without the note on the ``--set`` that caused it (the search's)."""
    return reason.split(" (set by --set ")[0]


def _others(searched: Sequence[tuple[Lever, str, list[str]]], lever: Lever) -> list[str]:
    return next(others for lv, _, others in searched if lv is lever)


def _label(setting: Mapping[str, str], now: Mapping[str, str]) -> str:
    changed = [f"{k}={v}" for k, v in setting.items() if v != now[k]]
    return ", ".join(changed) if changed else "contracted"


def _same_instrument(ds: xr.Dataset, kind: str, ident: str, members: Sequence[str]) -> str:
    """Why a design's results do not describe the same instrument ("" if they do)."""
    if kind == "bond":
        return ""
    if ident not in ds.basket.values:
        return f"the basket {ident} has no bond left"
    now = [str(b) for b, m in zip(ds.bond.values, ds.basket_member.sel(basket=ident).values,
                                  strict=True) if m]
    if now != list(members):
        return f"the basket {ident} would hold other bonds ({', '.join(now)})"
    return ""


def _statistics(ds: xr.Dataset, kind: str, ident: str) -> dict[str, float]:
    """The design's statistics of the instrument, read off its summary."""
    from lobsim.analysis import pooling, power
    from lobsim.analysis.stats import probability_interval, run_weights
    from lobsim.analysis.summary import summarize

    s = summarize(ds)
    out: dict[str, float] = {}
    if kind == "bond":
        v = s.sel(bond=ident)
        out["signal_to_noise"] = float(v.signal_to_noise)
        out["minimum_detectable_effect_share"] = float(v.minimum_detectable_effect_share)
        out["principal"] = float(ds.principal.sel(bond=ident))
        for name in _WITH_SE:
            out[name] = float(v[name]) if name in v else np.nan
            out[name + "_se"] = float(v[name + "_se"]) if name + "_se" in v else np.nan
    else:
        v = s.sel(basket=ident)
        k = list(ds.basket.values).index(ident)
        out["pooled"] = float(pooling.is_pooled(ds)[k])
        if out["pooled"]:  # paid on the pool's summed measurement: its noise (section 6.13)
            out["signal_to_noise"] = float(v.basket_pooled_signal_to_noise)
            out["minimum_detectable_effect_share"] = float(power.share(
                pooling.pooled_minimum_detectable_effect(ds, run_weights(ds))[k],
                pooling.summed_target(ds)[k]))
        else:
            member = ds.basket_member.sel(basket=ident).values
            out["signal_to_noise"] = float(v.basket_lowest_signal_to_noise)
            out["minimum_detectable_effect_share"] = float(
                s.minimum_detectable_effect_share.values[member].max())
        out["principal"] = float(ds.basket_principal.sel(basket=ident))
        for name in _WITH_SE:
            key = "basket_" + name
            out[name] = float(v[key]) if key in v else np.nan
            # the sums over member bonds have no standard error (the members are correlated)
            out[name + "_se"] = float(v[key + "_se"]) if key + "_se" in v else np.nan
    low, high = probability_interval(out["default_probability"], out["default_probability_se"],
                                     int(ds.sizes["scenario"]))
    out["default_probability_low"], out["default_probability_high"] = float(low), float(high)
    return out


def _influential(rows: Sequence[tuple[dict[str, str], dict[str, float]]],
                 searched: Sequence[tuple[Lever, str, list[str]]]) -> list[Lever]:
    """The ``GRID_LEVERS`` levers whose one-at-a-time designs differ most (module docstring)."""
    now = {lever.name: v for lever, v, _ in searched}
    score = {}
    for lever, _, _ in searched:
        mine = [st for setting, st in rows
                if all(setting[k] == now[k] for k in now if k != lever.name)]
        if len(mine) < 2:
            continue
        loss = [st["expected_loss"] / st["principal"] for st in mine]
        over = [st["expected_overpayment"] / st["principal"] for st in mine]
        score[lever.name] = float(np.ptp(loss) + np.ptp(over))
    best = sorted(score, key=lambda n: -score[n])[:GRID_LEVERS]
    return [lever for lever, _, _ in searched if lever.name in best]


def frontier(overpayment: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Designs no other design beats on both (at least as good on both, better on one)."""
    x, y = np.asarray(overpayment, float), np.asarray(default, float)
    out = np.ones(x.size, bool)
    for i in range(x.size):
        out[i] = not np.any((x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i])))
    return out


def recommend(overpayment: np.ndarray, default: np.ndarray, max_default: float) -> int:
    """Index of the least overpayment with P(default) at most ``max_default``; -1 for none."""
    ok = np.flatnonzero(np.asarray(default, float) <= max_default)
    if ok.size == 0:
        return -1
    return int(ok[np.argmin(np.asarray(overpayment, float)[ok])])  # ties: the first design


def _dataset(rows: Sequence[tuple[dict[str, str], dict[str, float]]],
             searched: Sequence[tuple[Lever, str, list[str]]], not_searched: dict[str, str],
             skipped: dict[str, str], kind: str, ident: str, contracted: xr.Dataset,
             max_default: float, config: str, overrides: Sequence[str],
             full_grid: bool) -> xr.Dataset:
    import xarray as xr

    n = len(rows)
    data: dict[str, Any] = {}
    for name, (units, long_name) in STATISTICS.items():
        data[name] = (("design",), np.array([st[name] for _, st in rows]),
                      {"units": units, "long_name": long_name})
        if name in _WITH_SE:
            data[name + "_se"] = (("design",), np.array([st[name + "_se"] for _, st in rows]),
                                  {"units": units, "long_name": "Monte Carlo standard error"})
    for side in ("low", "high"):
        data[f"default_probability_{side}"] = (
            ("design",), np.array([st[f"default_probability_{side}"] for _, st in rows]),
            {"units": "1", "long_name": f"95% Wilson interval of P(default), {side} end"})
    if kind == "basket":
        data["pooled"] = (("design",), np.array([bool(st["pooled"]) for _, st in rows]), {
            "long_name": "measured pooled: S/N and MDE are the pool's summed measurement's "
                         "(else the noisiest bond's)"})
    over = data["expected_overpayment"][1]
    dflt = data["default_probability"][1]
    front = frontier(over, dflt)
    best = recommend(over, dflt, max_default)
    data["frontier"] = (("design",), front, {
        "long_name": "on the frontier: no design has both a lower P(default) and a lower "
                     "E[overpayment]"})
    data["recommended"] = (("design",), np.arange(n) == best, {
        "long_name": f"least E[overpayment] with P(default) <= {max_default:g}"})
    coords: dict[str, Any] = {"design": np.arange(n)}
    for lever, _, _ in searched:
        where = lever.path.format(id=ident if kind == "bond" or lever.scope == "basket"
                                  else "each member")
        coords[lever.name] = ("design", np.array([s[lever.name] for s, _ in rows]),
                              {"long_name": lever.header, "path": where})
    now = {lever.name: v for lever, v, _ in searched}
    coords["label"] = ("design", np.array([_label(s, now) for s, _ in rows]))
    return xr.Dataset(data, coords=coords, attrs={
        "title": f"lobsim design: {kind} {ident}",
        "config": str(contracted.attrs.get("config", "")),
        "config_source": config,
        "instrument_kind": kind,
        "instrument": ident,
        "levers": json.dumps([lever.name for lever, _, _ in searched]),
        "levers_not_searched": json.dumps(not_searched),
        "skipped": json.dumps(skipped),
        "overrides": json.dumps(list(overrides)),
        "search": "full grid" if full_grid else "one lever at a time, then the grid of the "
                                                "two most influential",
        "max_default": max_default,
        "recommended": best,
        "scenarios": int(contracted.sizes["scenario"]),
        "seed": int(contracted.attrs["seed"]),
        "currency": "GBP",
        "confidence": 0.95,
        "common_random_numbers": 1,
    })


def design_dict(d: xr.Dataset) -> dict[str, Any]:
    """JSON-ready layout of a design search (``schema``: ``lobsim.design/1``)."""
    levers = json.loads(d.attrs["levers"])
    units = {name: units for name, (units, _) in STATISTICS.items()}
    designs = []
    for i in range(d.sizes["design"]):
        at = d.isel(design=i)
        row: dict[str, Any] = {"design": i, "label": str(at.label.values),
                               "levers": {n: _plain(at[n].values) for n in levers}}
        for name in d.data_vars:
            value = at[name].values.item()
            row[str(name)] = bool(value) if isinstance(value, bool) else number(float(value))
        designs.append(row)
    best = int(d.attrs["recommended"])
    return {"schema": SCHEMA, "config": d.attrs["config"],
            "config_source": d.attrs["config_source"],
            d.attrs["instrument_kind"]: d.attrs["instrument"],
            "scenarios": d.attrs["scenarios"], "seed": d.attrs["seed"],
            "common_random_numbers": True, "overrides": json.loads(d.attrs["overrides"]),
            "search": d.attrs["search"], "levers": levers,
            "grid_levers": json.loads(d.attrs.get("grid_levers", "[]")),
            "levers_not_searched": json.loads(d.attrs["levers_not_searched"]),
            "skipped": json.loads(d.attrs["skipped"]), "currency": d.attrs["currency"],
            "confidence": d.attrs["confidence"], "units": units,
            "criterion": {"max_default_probability": d.attrs["max_default"],
                          "minimise": "expected_overpayment"},
            "recommended": best if best >= 0 else None, "contracted": 0, "designs": designs}


def _plain(value: Any) -> Any:
    item = parse_value(str(np.asarray(value).item()))
    return number(item) if isinstance(item, float) else item


def format_design(d: xr.Dataset) -> str:
    """The design table, the levers searched, the skipped designs and the recommendation."""
    levers = json.loads(d.attrs["levers"])
    what = f"{d.attrs['instrument_kind']} {d.attrs['instrument']}"
    lines = [f"Design of {what} in {d.attrs['config']!r} ({d.attrs['scenarios']:,} scenarios, "
             f"seed {d.attrs['seed']}, common random numbers); {d.sizes['design']} designs: "
             f"{d.attrs['search']}"]
    fixed = json.loads(d.attrs["overrides"])
    if fixed:
        lines.append("every design: " + ", ".join(f"--set {o}" for o in fixed))
    lines.append("levers searched: " + ", ".join(
        f"{n} ({d[n].attrs['path']})" for n in levers))
    grid = json.loads(d.attrs.get("grid_levers", "[]"))
    if grid and d.attrs["search"] != "full grid":
        lines.append("grid of: " + " x ".join(grid) + " (the two most influential levers)")
    for name, reason in json.loads(d.attrs["levers_not_searched"]).items():
        lines.append(f"not searched: {name}: {reason}")
    head = ["design", *(str(d[n].attrs["long_name"]) for n in levers), "S/N", "MDE % target",
            "P(default) %", "95% interval %", "E[multiple]", "E[loss] GBP",
            "E[overpayment] GBP", "provider E[shortfall] GBP", "note"]
    rows = []
    for i in range(d.sizes["design"]):
        v = d.isel(design=i)
        note = ", ".join(w for w, flag in (("contracted", i == 0), ("frontier", bool(v.frontier)),
                                           ("RECOMMENDED", bool(v.recommended))) if flag)
        rows.append([str(i), *(str(v[n].values) for n in levers),
                     f"{float(v.signal_to_noise):.2f}",
                     f"{100 * float(v.minimum_detectable_effect_share):.0f}",
                     f"{100 * float(v.default_probability):.2f}",
                     tables.interval(100 * float(v.default_probability_low),
                                     100 * float(v.default_probability_high), ".2f"),
                     _pm(v, "mean_multiple", 4), _pm(v, "expected_loss", 0),
                     _pm(v, "expected_overpayment", 0),
                     _pm(v, "expected_provider_shortfall_value", 0), note])
    lines += ["", *tables.render(head, rows, left=1 + len(levers))]
    lines += ["", tables.INTERVAL_NOTE + "; S/N and MDE " + _noise_note(d) + "; frontier: "
              "no other design has both a lower P(default) and a lower E[overpayment]"]
    if d.attrs["instrument_kind"] == "basket":
        lines.append(BASKET_NOTE + (POOLED_NOTE if bool(d.pooled.any()) else ""))
    for label, reason in json.loads(d.attrs["skipped"]).items():
        lines.append(f"skipped {label}: {reason}")
    lines += ["", *recommendation_lines(d)]
    return "\n".join(lines)


#: What a basket's money columns are (format_design's note).
BASKET_NOTE = ("a basket's E[overpayment] and E[shortfall] are the sums of its bonds' (no "
               "interval: the bonds are correlated)")
#: Pooling moves money between the member bonds (docs/model.md section 6.13).
POOLED_NOTE = ("; measured pooled, each bond is paid on its target times the pool's "
               "measured share of target, so a bond that delivered less than the pool is "
               "paid for more than its own effect and one that delivered more for less: "
               "pooling moves money between the bonds, and the sums include that "
               "cross-subsidy")


def _noise_note(d: xr.Dataset) -> str:
    if d.attrs["instrument_kind"] == "bond":
        return "of the bond's measurement"
    pooled = d.pooled.values
    if pooled.all():
        return "of the pool's summed measurement"
    if pooled.any():
        return ("of the pool's summed measurement in designs measured pooled, else of the "
                "basket's noisiest bond")
    return "of the basket's noisiest bond"


def recommendation_lines(d: xr.Dataset) -> list[str]:
    """The criterion and the recommended design against the contracted one."""
    cap = float(d.attrs["max_default"])
    best = int(d.attrs["recommended"])
    criterion = f"criterion: least E[overpayment] with investor P(default) <= {100 * cap:g}%"
    if best < 0:
        low = int(np.argmin(d.default_probability.values))
        return [criterion, f"no design meets it; the lowest P(default) is design {low} "
                           f"({d.label.values[low]}): {_brief(d, low)}"]
    if best == 0:
        return [criterion, f"recommended: the contracted design: {_brief(d, 0)}"]
    return [criterion, f"recommended: design {best} ({d.label.values[best]}): {_brief(d, best)}",
            f"contracted:  design 0: {_brief(d, 0)}"]


def _brief(d: xr.Dataset, i: int) -> str:
    v = d.isel(design=i)
    return (f"P(default) {100 * float(v.default_probability):.2f}%, E[overpayment] "
            f"{float(v.expected_overpayment):,.0f} GBP, provider E[shortfall] "
            f"{float(v.expected_provider_shortfall_value):,.0f} GBP, E[multiple] "
            f"{float(v.mean_multiple):.4f}")


def _pm(v: xr.Dataset, name: str, digits: int) -> str:
    """A mean and the half-width of its 95% interval (the mean alone without a se)."""
    from lobsim.analysis.stats import Z95

    m, se = float(v[name]), float(v[name + "_se"])
    if not np.isfinite(se):
        return f"{m:,.{digits}f}"
    return f"{m:,.{digits}f} ±{Z95 * se:,.{digits}f}"
