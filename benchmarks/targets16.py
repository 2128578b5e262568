"""The table "Issue 16 targets" of ``results/REPORT.md``: every target, met or missed.

Each figure is a ratio of two timings taken in the same ``make bench`` run
(or a size or a time, where the target is one), next to the machine's CPU
and its RNG floor. For a missed target a note says where the time went in
this run (the phases this run measured) and what bounds it.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GB_MIB = 1e9 / 2 ** 20  # 1 GB (10^9 bytes) in MiB: the stricter reading of "1 GB"


@dataclass(frozen=True)
class Goal:
    """One target: ``ratio`` (the figure compared) against ``goal``."""

    what: str
    measured: str
    ratio: float
    goal: float
    higher_is_better: bool = False
    unit: str = "x"
    fmt: str = ".2f"
    twin: bool = False  # the reference kernel's figure, for comparison: not a target


    @property
    def met(self) -> bool:
        if math.isnan(self.ratio):
            return False
        return self.ratio >= self.goal if self.higher_is_better else self.ratio <= self.goal

    def row(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (f"| {self.what} | {self.measured} | {self.ratio:{self.fmt}}{self.unit} "
                f"| {sign} {self.goal:{self.fmt}}{self.unit} "
                f"| {'(reference twin)' if self.twin else 'met' if self.met else '**missed**'} |")


class Benches:
    def __init__(self, benches: list[dict[str, Any]]) -> None:
        self.benches = benches

    def info(self, **match: Any) -> dict[str, Any]:
        for b in self.benches:
            if all(b["extra_info"].get(k) == v for k, v in match.items()):
                return {**b["extra_info"], "min": float(b["stats"]["min"])}
        raise KeyError(match)

    def t(self, **match: Any) -> float:
        return self.info(**match)["min"]


def _us(seconds: float, n: float) -> str:
    return f"{seconds / n * 1e6:.2f} us"


def _kernel_goals(b: Benches, config: str, label: str, fresh_goal: float | None,
                  goal: float) -> tuple[list[Goal], list[str]]:
    e = b.info(config=config, kind="engine", threads=1)
    n = e["scenarios"]
    floor = b.t(config=config, kind="floor")
    kernel = b.t(config=config, kind="kernel", threads=1)
    ref = b.t(config=config, kind="kernel_reference", threads=1)
    goals = [Goal(f"{label}: production kernel on reused outputs / RNG floor, 1 thread",
                  f"{_us(kernel, n)} vs {_us(floor, n)} a scenario", kernel / floor, goal),
             Goal(f"{label}: reference kernel (kernels.engine) on reused outputs / RNG floor, "
                  "1 thread", f"{_us(ref, n)} vs {_us(floor, n)} a scenario", ref / floor, goal,
                  twin=True)]
    if fresh_goal is not None:
        goals.append(Goal(f"{label}: engine with fresh outputs (`run_blocks`) / RNG floor, "
                          "1 thread", f"{_us(e['min'], n)} vs {_us(floor, n)} a scenario",
                          e["min"] / floor, fresh_goal))
    notes = []
    if not goals[0].met:
        notes.append(
            f"- {label}, production kernel: {_us(kernel, n)} a scenario, of which the draws "
            f"(RNG floor) {_us(floor, n)}; the other {_us(kernel - floor, n)} is the "
            "kernel's own arithmetic. The reference kernel, the same model scalar and "
            f"scenario-major, takes {_us(ref, n)} (production / reference "
            f"{kernel / ref:.2f}).")
    return goals, notes


def _start_parts(m: dict[str, float]) -> str:
    rest = m["start_up"] - m["interpreter"] - m["imports"] - m["screening"] - m["world"]
    return (f"interpreter {m['interpreter']:.2f} s, imports {m['imports']:.2f} s, risk-band "
            f"screening {m['screening']:.2f} s, the run's world {m['world']:.2f} s, the rest "
            f"(config, template, first block's scheduling) {rest:.2f} s")


def _profile_note(out: Path, run_time: str) -> list[str]:
    notes = []
    for name in ("engine_profile.md", "engine_profile_birmingham.md"):
        p = out / name
        if p.exists():
            when = datetime.datetime.fromtimestamp(p.stat().st_mtime, datetime.UTC)
            stale = when.isoformat()[:19] < run_time
            notes.append(f"- Phase by phase: [{name}]({name}) (`benchmarks/profile_engine.py`, "
                         f"written {when:%Y-%m-%d %H:%M} UTC"
                         + (", before this run: run it again to profile this machine)"
                            if stale else ")"))
    return notes


def issue16_section(benches: list[dict[str, Any]], out: Path, run_time: str) -> list[str]:
    """The section's lines; targets whose benchmarks did not run are said to be missing."""
    b = Benches(benches)
    goals: list[Goal] = []
    notes: list[str] = []
    absent: list[str] = []
    header: list[str] = []

    def part(name: str, fn: Any) -> None:
        try:
            fn()
        except KeyError as missing:  # a partial run (-k)
            absent.append(f"{name} (no benchmark with {missing})")

    def engine() -> None:
        e = b.info(config="basket_demo", kind="engine", threads=1)
        n, bonds = e["scenarios"], e["bonds"]
        floor = b.t(config="basket_demo", kind="floor")
        rate = n * (e["normals"] + e["exponentials"]) / floor
        header.append(f"RNG floor of this run: {rate / 1e6:.0f} M draws/s, 1 thread (the basket "
                      f"demo's {e['normals']} normals + {e['exponentials']} exponentials a "
                      "scenario, `numpy.random.Generator(SFC64)` in a numba loop).")
        g, nt = _kernel_goals(b, "basket_demo", "basket demo", 2.0, 1.7)
        goals.extend(g)
        notes.extend(nt)
        per_bond = e["normals"] / bonds
        bsps = n * bonds / e["min"]
        goals.append(Goal("basket demo: bond-scenarios/s per core (engine, 1 thread) against "
                          f"0.55 x {rate / 1e6:.0f} M draws/s / {per_bond:.2f} normals a "
                          "bond-scenario", f"{bsps / 1e6:.2f} M/s vs "
                          f"{0.55 * rate / per_bond / 1e6:.2f} M/s",
                          bsps / (rate / per_bond), 0.55, True))
        for period, goal in (("month", 500.0), ("year", 40.0)):
            r = b.info(config="basket_demo", kind=f"reference_{period}")
            ref = r["min"] / r["scenarios"]
            goals.append(Goal(f"basket demo: plain-numpy reference stepping every {period} / "
                              "engine, per core", f"{ref * 1e3:.2f} ms vs "
                              f"{_us(e['min'], n)} a scenario", ref / (e["min"] / n), goal,
                              True, "x", ",.0f"))
        e2 = b.t(config="basket_demo", kind="engine", threads=2)
        k1 = b.t(config="basket_demo", kind="kernel", threads=1)
        k2 = b.t(config="basket_demo", kind="kernel", threads=2)
        goals.append(Goal("basket demo: 2-thread speed-up (engine, fresh outputs)",
                          f"{e['min']:.2f} s / {e2:.2f} s (kernel on reused outputs: "
                          f"{k1 / k2:.2f})", e["min"] / e2, 1.85, True))
        if not goals[-1].met:
            notes.append(f"- 2 threads: the engine {e['min'] / e2:.2f}x, the kernel alone on "
                         f"reused outputs {k1 / k2:.2f}x; system CPU time per 1-thread engine "
                         f"run {e['system_seconds'] / e['min']:.0%} of it (page faults of "
                         "fresh outputs). A speed-up under 1 means the second thread got no "
                         "core of its own: see the load average.")
        if bsps < 0.55 * rate / per_bond:
            notes.append(f"- Throughput and the reference ratios are bounded by the engine's "
                         f"{_us(e['min'], n)} a scenario against {_us(floor, n)} of draws: "
                         f"at the floor the engine would do {n * bonds / floor / 1e6:.2f} M "
                         "bond-scenarios/s, "
                         f"{n * bonds / floor / (rate / per_bond):.2f}x the draw rate per "
                         "normal a bond-scenario (the target asks 0.55x).")

    def birmingham() -> None:
        g, nt = _kernel_goals(b, "birmingham_jsa", "Birmingham (1 bond)", None, 2.0)
        goals.extend(g)
        notes.extend(nt)

    def end_to_end() -> None:
        for mode, flag in (("stream", " --stream"), ("full", "")):
            r = b.info(kind="end_to_end", mode=mode)
            what = (f"`lobsim run configs/basket_demo.toml --scenarios {r['scenarios']:,}{flag}"
                    f" --quiet --threads {r['threads']}` / RNG floor of its draws on "
                    f"{r['threads']} threads, start-up included")
            g = Goal(what, f"{r['wall']:.2f} s (start-up {r['start_up']:.2f} s) vs "
                     f"{r['floor_seconds']:.2f} s", r["wall"] / r["floor_seconds"], 4.0)
            goals.append(g)
            if not g.met:
                notes.append(
                    f"- {mode} run of {r['scenarios']:,} scenarios, {r['wall']:.2f} s: start-up "
                    f"{r['start_up']:.2f} s ({_start_parts(r)}), the blocks {r['blocks']:.2f} s "
                    f"({r['blocks'] / r['floor_seconds']:.2f}x the floor; "
                    f"{r['kernel_thread_seconds']:.2f} thread-seconds in `simulate_rows`, "
                    f"{r['kernel_thread_seconds'] / max(r['blocks'] * r['threads'], 1e-9):.0%} "
                    "of the threads' time while blocks ran), after the last block "
                    f"{r['after_blocks']:.2f} s (summary or labelling, output, exit).")

    def dask() -> None:
        r = b.info(kind="dask")
        s1, s2 = r["seconds"]["1"], r["seconds"]["2"]
        g = Goal(f"2-worker / 1-worker local Dask cluster, warm, {r['scenarios']:,} streamed "
                 "scenarios: speed-up", f"{s1:.2f} s / {s2:.2f} s", s1 / s2, 1.7, True)
        goals.append(g)
        if not g.met:
            notes.append("- Dask: the timed run includes the client's serial part of a run "
                         "(risk-band screening, template, summary) and moving every task's "
                         "accumulator state; both workers share the machine's cores with "
                         "the client and the scheduler.")

    def rss() -> None:
        r = b.info(kind="stream_rss")
        goals.append(Goal(f"peak RSS of `lobsim run configs/basket_demo.toml --scenarios "
                          f"{r['scenarios']:,} --stream --quiet`"
                          + (" (quick size; the target is at 10,000,000)"
                             if r["scenarios"] < 10_000_000 else ""),
                          f"{r['peak_rss_mib']:,.0f} MiB in {r['wall']:.1f} s",
                          r["peak_rss_mib"] / GB_MIB, 1.0, False, " GB", ".2f"))

    def start() -> None:
        r = b.info(kind="start_up")
        cold, warm = r["cold"], r["warm"]
        g = Goal(f"first process on an empty numba cache: `{r['command']}` wall",
                 f"{cold['wall']:.1f} s (start-up {cold['start_up']:.1f} s)",
                 cold["wall"], 20.0, False, " s", ".1f")
        goals.append(g)
        g2 = Goal("warm start of the same `lobsim run` on that cache: spawn to the first block",
                  f"{warm['start_up']:.2f} s (screening {warm['screening']:.2f} s)",
                  warm["start_up"], 1.5, False, " s")
        goals.append(g2)
        if not (g.met and g2.met):
            notes.append(f"- Start-up: cold {cold['start_up']:.1f} s to the first block "
                         f"({_start_parts(cold)}; the screening run's first kernel calls "
                         f"compile); warm {warm['start_up']:.2f} s ({_start_parts(warm)}).")

    def identity() -> None:
        checks = dict(b.info(kind="identity")["checks"])
        try:
            checks["Dask: 1 / 2 workers / 2 threads"] = b.info(kind="dask")["identical_workers"]
        except KeyError:
            absent.append("bit identity across Dask workers (no Dask benchmark)")
        bad = [k for k, v in checks.items() if not v]
        goals.append(Goal("bit-identical outputs across threads, chunk sizes and workers "
                          f"({len(checks)} comparisons)",
                          "all equal" if not bad else "differ: " + "; ".join(bad),
                          float(len(checks) - len(bad)), float(len(checks)), True, "", ".0f"))

    for name, fn in (("engine", engine), ("Birmingham", birmingham),
                     ("end to end", end_to_end), ("Dask", dask), ("peak RSS", rss),
                     ("start-up", start), ("bit identity", identity)):
        part(name, fn)
    targets = [g for g in goals if not g.twin]
    lines = ["## Issue 16 targets", "", *header, "",
             "| target | measured | ratio | goal | |", "|---|---|---:|---:|---|",
             *[g.row() for g in goals], "",
             f"{sum(g.met for g in targets)} of {len(targets)} targets met (the reference "
             "kernel's rows are the twin's, for comparison: the target is the production "
             "kernel's). Each "
             "ratio is of timings from this run; the machine's cores were shared with "
             "whatever the load average above shows.", ""]
    if absent:
        lines += ["Not measured in this run: " + "; ".join(absent) + ".", ""]
    if any(not g.met for g in targets):
        lines += ["### Where the time goes (missed targets, this run)", "", *notes,
                  *_profile_note(out, run_time), ""]
    return lines
