"""Command-line pieces for real data: ``lobsim calibrate`` and ``lobsim backtest``.

Kept apart from :mod:`lobsim.cli.commands` so that the main parser only gains one
call; these functions parse arguments and call :mod:`lobsim.validation.calibrate` and
:mod:`lobsim.validation.backtest` and
:mod:`lobsim.validation.placebo_stats`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lobsim.cli.argtypes import MAX_COUNT, count, seed
from lobsim.cli.output import check_output
from lobsim.errors import LobsimWarning, UsageError, format_warning
from lobsim.model.config import PACKAGE_DATA_PREFIX, PERIODS_PER_YEAR

if TYPE_CHECKING:
    from lobsim.validation.calibrate import Calibration


def _data_file(text: str, what: str) -> Path:
    from lobsim.model.realdata import resolve_data_path

    path = resolve_data_path(text)
    if not path.is_file():
        raise UsageError(f"{text}: no such {what} file")
    return path


def _areas_for(args: argparse.Namespace, history: Path) -> tuple[Path, str]:
    """The areas file and how to name it: --areas, or areas.csv beside the history."""
    if args.areas is not None:
        return _data_file(args.areas, "areas"), args.areas
    path = history.parent / "areas.csv"
    if not path.is_file():
        raise UsageError(f"{args.history}: no --areas given and no areas.csv beside it")
    text = str(args.history)
    if text.startswith(PACKAGE_DATA_PREFIX):
        # bundled data keeps its package name: lobsim:gm/x_history.csv -> lobsim:gm/areas.csv
        folder = text[len(PACKAGE_DATA_PREFIX):].rpartition("/")[0]
        return path, PACKAGE_DATA_PREFIX + (f"{folder}/" if folder else "") + "areas.csv"
    return path, str(path)


def _periods_per_year(args: argparse.Namespace, periods: tuple[str, ...]) -> int:
    from lobsim.validation.backtest import periods_per_year_of

    if args.period is not None:
        return PERIODS_PER_YEAR[args.period]
    try:
        return periods_per_year_of(periods)
    except ValueError as exc:
        raise UsageError(f"{args.history}: {exc}") from None


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} {text}: give whole numbers separated by commas") from None
    if not values or min(values) < 1 or max(values) > MAX_COUNT:
        raise UsageError(f"{option} {text}: give whole numbers from 1 to {MAX_COUNT}, separated "
                         "by commas")
    return values


# --------------------------------------------------------------------------
# lobsim calibrate
# --------------------------------------------------------------------------
def _cmd_calibrate(args: argparse.Namespace) -> int:
    from lobsim.model.areas import read_areas, read_outcome
    from lobsim.validation.area_loadings import (
        AREAS_WITH_LOADINGS,
        estimate_loadings,
        write_areas_with_loadings,
        write_loading_estimates,
    )
    from lobsim.validation.calibrate import calibrate
    from lobsim.validation.standard_errors import boundary_message
    from lobsim.validation.universe_file import data_reference, write_universe

    history = _data_file(args.history, "history")
    areas_path, areas_name = _areas_for(args, history)
    out = Path(args.out)
    if out.suffix != ".toml":
        raise UsageError(f"--out {out}: the universe is written as TOML; use a .toml path")
    outcome = args.outcome or history.stem.removesuffix("_history") or "outcome"
    written = [out, out.parent / f"{outcome}_state.csv", out.parent / f"{outcome}_volatility.csv"]
    if args.area_loadings:
        written += [out.parent / AREAS_WITH_LOADINGS, out.parent / f"{outcome}_loadings.csv"]
    for path in written:
        check_output(path, "--out", force=args.force)
    table = read_areas(areas_path)
    data = read_outcome(history, None, table)
    ppy = _periods_per_year(args, data.periods)
    started = time.perf_counter()
    cal = calibrate(data, table, ppy)
    loadings = estimate_loadings(cal, data, table) if args.area_loadings else None
    elapsed = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    areas_ref = data_reference(areas_name, out.parent)
    extra: dict[str, Path] = {}
    if loadings is not None:
        # the universe names the areas file with the loadings, written beside it
        extra[AREAS_WITH_LOADINGS] = write_areas_with_loadings(
            areas_path, loadings, out.parent / AREAS_WITH_LOADINGS)
        extra[f"{outcome}_loadings.csv"] = write_loading_estimates(
            loadings, out.parent / f"{outcome}_loadings.csv")
        areas_ref = AREAS_WITH_LOADINGS
    files = write_universe(cal, out, areas=areas_ref,
                           history=data_reference(args.history, out.parent), outcome=outcome,
                           kind=args.kind, unit=args.unit, loadings=loadings)
    files.update(extra)
    if args.quiet:
        return 0
    p, q = cal.process, cal.per_period
    print(f"Calibrated {len(cal.areas)} areas in {len(cal.regional_state)} regions over "
          f"{len(cal.periods)} periods ({cal.periods[0]} to {cal.periods[-1]}) in {elapsed:.1f} s")
    print()
    print(f"{'component':<12}{'phi/year':>10}{'se':>8}{'sigma/year log':>16}{'se':>8}"
          f"{'phi/period':>12}{'se':>8}{'sigma/period log':>18}{'se':>8}")
    for name in ("national", "regional", "area"):
        phi, sigma = f"{name}_phi", f"{name}_sigma"
        print(f"{name:<12}{getattr(p, phi):>10.4f}{_se(cal, phi):>8}"
              f"{getattr(p, sigma):>16.4f}{_se(cal, sigma):>8}"
              f"{q[phi]:>12.4f}{_se(cal, phi, per_period=True):>8}"
              f"{q[sigma]:>18.4f}{_se(cal, sigma, per_period=True):>8}")
    print(f"{'noise':<12}{'':>18}{p.measurement_sigma:>16.4f}{_se(cal, 'measurement_sigma'):>8}"
          "   (sd of one observation's log)")
    print("phi: AR(1) persistence of the log level; sigma: sd of its shocks, in log points")
    print()
    print(f"trend per year: mean {cal.trend_mean:+.4f} (se {_se(cal, 'trend_mean')}), sd between "
          f"regions {cal.trend_sd_region:.4f} (se {_se(cal, 'trend_sd_region')}), within "
          f"regions {cal.trend_sd_area:.4f} (se {_se(cal, 'trend_sd_area')})")
    print(f"volatility slope on log level: {cal.volatility_slope:+.2f} "
          "(0: as pooled; -1: variance inversely proportional to size)")
    print("se: standard errors from the observed information of the REML likelihoods within "
          "regions (area, noise)\n    and between them (national, regional), per year by the "
          "delta method, which understates\n    them where phi/period is imprecise; GLS and "
          "moments for the trends;\n    bound: on its boundary, no se; n/a: not identified (docs/real_data.md)")
    if loadings is not None:
        print()
        print(f"per-area loadings ({AREAS_WITH_LOADINGS}; estimates and se in "
              f"{outcome}_loadings.csv; docs/real_data.md, Per-area loadings):")
        for est in (loadings.national, loadings.regional):
            print(f"  {est.summary()}")
    for key in cal.on_boundary:
        print(format_warning(boundary_message(cal, key), LobsimWarning, "", 0), end="",
              file=sys.stderr)
    print()
    for path in files.values():
        print(f"wrote {path}")
    return 0


def _se(cal: Calibration, key: str, per_period: bool = False) -> str:
    """A standard error as the calibrate table prints it: 4 decimals, or why there is none."""
    value = (cal.standard_errors_per_period if per_period else cal.standard_errors)[key]
    if key in cal.on_boundary:
        return "bound"
    return "n/a" if math.isnan(value) else f"{value:.4f}"


# --------------------------------------------------------------------------
# lobsim backtest
# --------------------------------------------------------------------------
def _cmd_backtest(args: argparse.Namespace) -> int:
    from lobsim.model.realdata import ward_names
    from lobsim.validation import backtest as bt
    from lobsim.validation import placebo_stats as ps
    from lobsim.validation.universe_file import read_universe

    history = _data_file(args.history, "history")
    areas_path, _ = _areas_for(args, history)
    donors = _int_list(args.donors, "--donors")
    weights = [w.strip() for w in args.weights.split(",") if w.strip()]
    for w in weights:
        if w not in bt.WEIGHTS:
            raise UsageError(f"--weights {args.weights}: use equal, synthetic or both")
    starts = [s.strip() for s in args.starts.split(",") if s.strip()] if args.starts else None
    match_on = [c.strip() for c in args.match_on.split(",")] if args.match_on else None
    out = Path(args.out) if args.out else None
    names = ["placebos.csv", "summary.csv", "summary.md"]
    if args.model:
        names += ["model_check.csv", "model_check.md", "qq.png"]
    if out is not None:
        check_output(out, "--out", folder=True)
        for n in names:
            check_output(out / n, "--out", force=args.force)

    started = time.perf_counter()
    panel = bt.read_panel(history, areas_path)
    ppy = _periods_per_year(args, panel.periods)
    options = dict(pre=args.pre, horizon=args.horizon, donors=donors, weights=weights,
                   starts=starts, step=args.step, match_on=match_on)
    real = bt.placebo_backtest(panel, periods_per_year=ppy, source=args.history,
                               **options)
    rows = ps.summarize_placebos(real)
    totals = [r for r in rows if r.start == "all"]
    k_mid = sorted(donors)[len(donors) // 2]
    per_start = [r for r in rows if r.start != "all" and r.donors == k_mid]
    print(f"Placebo backtest of {args.history}: {len(panel.areas.ids)} areas, each a bond with "
          f"no true effect; pre-period {args.pre}, horizon {args.horizon} periods; starts "
          f"{', '.join(sorted(set(real.start.tolist())))}.")
    print("Change: (counterfactual - observed) / counterfactual, percent. Target T = "
          f"{round(100 * bt.TARGET_SHARE)}% of the base value (the Appendix's 5,000 of 50,000).")
    print()
    print(ps.summary_table(totals))
    print()
    print(f"By start, {k_mid} donors:")
    print(ps.summary_table(per_start))

    comparison = []
    models: dict[str, bt.Placebos] = {}
    if args.model:
        universe = read_universe(args.model)
        if universe.areas.ids != panel.areas.ids:
            raise UsageError(f"--model {args.model}: its areas are not those of {args.history}")
        for name, scaled in (("pooled", False), ("size-scaled", True)):
            models[name] = bt.simulate_placebos(universe, replicates=args.replicates,
                                                seed=args.seed, size_scaled=scaled,
                                                **options)
        comparison = ps.compare(real, models)
        print()
        print(f"Model check: the same placebos on {args.replicates} panels simulated from "
              f"{args.model} (pooled: as calibrated; size-scaled: each area's variance "
              "scaled by its fitted size effect)")
        print(ps.comparison_table([r for r in comparison if r.group == "all"]))
        print()
        print("Sd of the change by size (terciles of the base value):")
        print(ps.tercile_table(comparison))
    elapsed = time.perf_counter() - started

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        labels = ward_names() if _is_gm(areas_path) else {}
        real.write_csv(out / "placebos.csv", labels)
        ps.write_summary(rows, out / "summary.csv")
        md = [f"# Placebo backtest of `{args.history}`", "",
              f"Pre-period {args.pre} periods, horizon {args.horizon} periods, donors "
              f"{', '.join(map(str, sorted(donors)))}, weights {', '.join(weights)}. "
              f"Change in percent of the counterfactual; T = "
              f"{round(100 * bt.TARGET_SHARE)}% of the base value.", "",
              ps.summary_table(totals, markdown=True), "", f"By start, {k_mid} donors:", "",
              ps.summary_table(per_start, markdown=True), ""]
        (out / "summary.md").write_text("\n".join(md), encoding="utf-8")
        if models:
            ps.write_comparison(comparison, out / "model_check.csv")
            md = [f"# Model check: `{args.history}` against `{args.model}`", "",
                  ps.comparison_table([r for r in comparison if r.group == "all"],
                                      markdown=True), "",
                  "Sd of the change by size (terciles of the base value):", "",
                  ps.tercile_table(comparison, markdown=True), ""]
            (out / "model_check.md").write_text("\n".join(md), encoding="utf-8")
            from lobsim.report.studies import placebo_qq  # matplotlib: only when a model is checked

            placebo_qq(real, models).savefig(out / "qq.png", dpi=100)
        print()
        for n in names:
            print(f"wrote {out / n}")
    print(f"\n{elapsed:.1f} s")
    return 0


def _is_gm(areas: Path) -> bool:
    from lobsim.model.realdata import GM_DIR, package_data

    try:
        return areas.resolve() == (package_data(GM_DIR) / "areas.csv").resolve()
    except OSError:
        return False


def add_realdata_parsers(sub: argparse._SubParsersAction) -> None:
    """``lobsim calibrate`` and ``lobsim backtest``."""
    cal = sub.add_parser(
        "calibrate", help="estimate the outcome process and base state from a history",
        description="Estimate the per-year parameters of docs/model.md section 3 and the state at "
                    "the last period from a history CSV (area,region,period,value); write a "
                    "universe TOML with the state CSV beside it.")
    cal.add_argument("history", help="history CSV (a lobsim: name for bundled data)")
    cal.add_argument("--out", required=True, help="universe TOML to write")
    cal.add_argument("--areas", help="areas CSV (default: areas.csv beside the history)")
    cal.add_argument("--period", choices=tuple(PERIODS_PER_YEAR),
                     help="period of the history (default: from the period labels)")
    cal.add_argument("--outcome", help="outcome id (default: the history's file name less "
                                       "_history)")
    cal.add_argument("--kind", choices=("count", "percent"), default="count",
                     help="outcome kind (default: count)")
    cal.add_argument("--unit", default="claimant", help="what one unit is (default: claimant)")
    cal.add_argument("--area-loadings", action="store_true",
                     help="also estimate each area's national and regional loadings (shrunk "
                          "towards 1) and write them in a copy of the areas file, "
                          "areas_loadings.csv, that the universe names")
    cal.add_argument("--force", action="store_true", help="overwrite existing files")
    cal.add_argument("--quiet", action="store_true",
                     help="print nothing but errors (no table, no boundary warnings)")
    cal.set_defaults(func=_cmd_calibrate)

    bt = sub.add_parser(
        "backtest", help="placebo backtest of the control-group measurement",
        description="Treat every area in turn as a bond with no true effect, fit its control "
                    "group on the pre-period as a contract would, and measure it at the "
                    "horizon; optionally compare with the same experiment simulated from a "
                    "calibrated universe.")
    bt.add_argument("history", help="history CSV (a lobsim: name for bundled data)")
    bt.add_argument("--areas", help="areas CSV (default: areas.csv beside the history); its "
                                    "covariates must predate every start")
    bt.add_argument("--pre", type=count, default=12, help="pre-period, periods (default 12)")
    bt.add_argument("--horizon", type=count, default=12,
                    help="periods from start to measurement (default 12)")
    bt.add_argument("--donors", default="3,5,10,20",
                    help="donor-pool sizes, comma separated (default 3,5,10,20)")
    bt.add_argument("--weights", default="equal,synthetic",
                    help="weight schemes, comma separated (default equal,synthetic)")
    bt.add_argument("--starts", help="start periods, comma separated (default: every --step "
                                     "periods from the first that fits)")
    bt.add_argument("--step", type=count, default=3, help="periods between starts (default 3)")
    bt.add_argument("--match-on", help="covariates for the donor choice (default: all)")
    bt.add_argument("--period", choices=tuple(PERIODS_PER_YEAR),
                    help="period of the history (default: from the period labels)")
    bt.add_argument("--model", help="universe TOML from `lobsim calibrate`: also simulate the "
                                    "placebos from it and compare")
    bt.add_argument("--replicates", type=count, default=10,
                    help="simulated panels for --model (default 10)")
    bt.add_argument("--seed", type=seed, default=0, help="seed of the simulated panels")
    bt.add_argument("--out", help="folder for placebos.csv, summary.csv/.md and, with "
                                  "--model, model_check.csv/.md and qq.png")
    bt.add_argument("--force", action="store_true", help="overwrite existing files in --out")
    bt.set_defaults(func=_cmd_backtest)
