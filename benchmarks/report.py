"""Turn a pytest-benchmark JSON file into ``results/REPORT.md`` and plots.

Usage (``make bench`` and ``make bench-quick`` call it)::

    python benchmarks/report.py RESULTS.json [--out benchmarks/results]

Every figure is a ratio of two timings from the same run, or a throughput
printed next to the machine's description. Times are the best (minimum)
round of each benchmark. Each target of docs/model.md section 10.6 / issue 7 is shown
as measured, with whether it is met; the targets of issue 16 (``targets16.py``)
come first.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from targets16 import issue16_section

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    what: str
    measured: float
    goal: float
    higher_is_better: bool
    fmt: str = ".2f"

    @property
    def met(self) -> bool:
        return self.measured >= self.goal if self.higher_is_better else self.measured <= self.goal

    def row(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return (f"| {self.what} | {self.measured:{self.fmt}} | {sign} {self.goal:{self.fmt}} "
                f"| {'met' if self.met else '**missed**'} |")


def rate(x: float) -> str:
    return f"{x / 1e6:,.2f} M" if x >= 1e6 else f"{x / 1e3:,.1f} k"


class Run:
    """The benchmarks of one JSON file, looked up by what they measured."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.benches: list[dict[str, Any]] = data["benchmarks"]

    def find(self, **info: Any) -> dict[str, Any]:
        for b in self.benches:
            if all(b["extra_info"].get(k) == v for k, v in info.items()):
                return b
        raise KeyError(info)

    def t(self, **info: Any) -> float:
        return float(self.find(**info)["stats"]["min"])


# --------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------


def engine_section(run: Run, out: Path) -> tuple[list[str], list[Target]]:
    configs = sorted({b["extra_info"]["config"] for b in run.benches
                      if b["extra_info"].get("kind") == "engine"},
                     key=lambda c: c != "basket_demo")
    if not configs:  # a partial run: write_report says the section is skipped
        raise KeyError("kind=engine")
    cols: dict[str, dict[str, float]] = {}
    for c in configs:
        e1 = run.find(config=c, kind="engine", threads=1)["extra_info"]
        n, bonds = e1["scenarios"], e1["bonds"]
        draws = e1["normals"] + e1["exponentials"]
        r = {"n": n, "bonds": bonds, "normals": e1["normals"], "exps": e1["exponentials"]}
        for kind in ("engine", "kernel"):
            for th in (1, 2):
                r[f"{kind}{th}"] = run.t(config=c, kind=kind, threads=th)
        r["floor"] = run.t(config=c, kind="floor")
        r["outputs"] = run.t(config=c, kind="outputs")
        r["sys1"] = run.find(config=c, kind="engine", threads=1)["extra_info"]["system_seconds"]
        for p in ("month", "year"):
            b = run.find(config=c, kind=f"reference_{p}")
            r[f"ref_{p}"] = b["stats"]["min"] / b["extra_info"]["scenarios"] * n
            r[f"n_ref_{p}"] = b["extra_info"]["scenarios"]
        r["draw_rate"] = n * draws / r["floor"]
        cols[c] = r

    rows: list[tuple[str, Callable[[dict[str, float]], str]]] = [
        ("bonds; normals + exponentials per scenario",
         lambda r: f"{r['bonds']:.0f}; {r['normals']:.0f} + {r['exps']:.0f}"),
        ("normals per bond-scenario", lambda r: f"{r['normals'] / r['bonds']:.1f}"),
        ("scenarios per run", lambda r: f"{r['n']:,.0f}"),
        ("engine, 1 thread: bond-scenarios/s", lambda r: rate(r["n"] * r["bonds"] / r["engine1"])),
        ("engine, 2 threads: bond-scenarios/s", lambda r: rate(r["n"] * r["bonds"] / r["engine2"])),
        ("RNG floor, 1 thread: draws/s", lambda r: rate(r["draw_rate"])),
        ("engine (fresh outputs) / RNG floor, 1 thread",
         lambda r: f"**{r['engine1'] / r['floor']:.2f}**"),
        ("kernel on reused outputs / RNG floor, 1 thread",
         lambda r: f"**{r['kernel1'] / r['floor']:.2f}**"),
        ("allocation + first touch of fresh outputs / engine time",
         lambda r: f"{r['outputs'] / r['engine1']:.0%}"),
        ("system CPU time per engine run (mean of rounds) / best engine time, 1 thread",
         lambda r: f"{r['sys1'] / r['engine1']:.0%}"),
        ("reference stepping monthly / engine, per scenario, 1 core",
         lambda r: f"**{r['ref_month'] / r['engine1']:,.0f}x** (N = {r['n_ref_month']:,.0f})"),
        ("reference stepping yearly / engine, per scenario, 1 core",
         lambda r: f"**{r['ref_year'] / r['engine1']:,.0f}x** (N = {r['n_ref_year']:,.0f})"),
        ("2-thread speed-up, engine", lambda r: f"**{r['engine1'] / r['engine2']:.2f}**"),
        ("2-thread speed-up, kernel on reused outputs",
         lambda r: f"**{r['kernel1'] / r['kernel2']:.2f}**"),
    ]
    lines = ["## Engine", "",
             "| figure | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {label} | " + " | ".join(f(cols[c]) for c in cols) + " |" for label, f in rows]
    lines += ["",
              "Engine: `run_blocks` as a user calls it, into fresh output arrays. Kernel: "
              "`simulate_block` alone, block by block, into outputs allocated and first "
              "touched once. Allocation + first touch: `np.empty` and one write of every page "
              "of the same outputs, alone. System CPU time: the kernel's page faults on "
              "fresh outputs; it varies from run to run with the cost of getting huge pages "
              "(a best-of time hides it, the mean shows it). RNG floor: a numba loop drawing "
              "exactly the "
              "engine's normals and exponentials per scenario with the same generator "
              "(`numpy.random.Generator(SFC64)` per 4,096-scenario block). Reference: "
              "`benchmarks/reference_numpy.py`, the same model in plain numpy stepping every "
              "month or year (single-threaded; its time is scaled to the engine's N).", ""]

    targets: list[Target] = []
    if "basket_demo" in cols:
        r = cols["basket_demo"]
        per_bond = r["normals"] / r["bonds"]
        targets += [
            Target("kernel on reused outputs / RNG floor, 1 thread", r["kernel1"] / r["floor"],
                   1.7, False),
            Target("engine with fresh outputs / RNG floor, 1 thread", r["engine1"] / r["floor"],
                   2.0, False),
            Target("bond-scenarios/s, 1 thread (M)", r["n"] * r["bonds"] / r["engine1"] / 1e6,
                   20.0, True),
            Target("bond-scenarios/s, 1 thread (M), against this machine's draw rate: "
                   f"0.55 x {r['draw_rate'] / 1e6:.0f} M / {per_bond:.1f}",
                   r["n"] * r["bonds"] / r["engine1"] / 1e6,
                   0.55 * r["draw_rate"] / 1e6 / per_bond, True),
            Target("bond-scenarios/s, 2 threads (M)", r["n"] * r["bonds"] / r["engine2"] / 1e6,
                   38.0, True),
            Target("reference stepping monthly / engine, per core", r["ref_month"] / r["engine1"],
                   500.0, True, ",.0f"),
            Target("reference stepping yearly / engine, per core", r["ref_year"] / r["engine1"],
                   40.0, True, ",.0f"),
            Target("2-thread speed-up of the engine", r["engine1"] / r["engine2"], 1.85, True),
        ]
    _engine_plot(cols, out / "engine.png")
    lines += ["![engine time per scenario against the RNG floor](engine.png)", ""]
    return lines, targets


def _engine_plot(cols: dict[str, dict[str, float]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(cols), figsize=(5.5 * len(cols), 3.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], cols.items(), strict=True):
        labels = ["RNG floor", "kernel\n(reused)", "engine\n(fresh)", "engine\n2 threads"]
        us = [r[k] / r["n"] * 1e6 for k in ("floor", "kernel1", "engine1", "engine2")]
        ax.bar(labels, us, color=["0.6", "C0", "C1", "C2"])
        for x, (label, v) in enumerate(zip(("1.7x floor", "2.0x floor"), (1.7, 2.0),
                                           strict=True)):
            ax.axhline(v * us[0], ls="--", lw=1, color=f"C{3 + x}", label=label)
        ax.set_ylabel("microseconds per scenario (wall)")
        ax.set_title(f"{name}: {r['bonds']:.0f} bond(s), {r['normals']:.0f} normals a scenario")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------
# Synthetic control
# --------------------------------------------------------------------------


def synth_section(run: Run) -> tuple[list[str], list[Target]]:
    pools = sorted({b["extra_info"]["donors"] for b in run.benches
                    if b["extra_info"].get("kind") == "numba"})
    lines = ["## Synthetic-control weights", "",
             "| donors | numba batch fits/s | scipy nnls fits/s | SLSQP fits/s | numba / nnls "
             "| numba / SLSQP | max weight diff numba vs nnls | max weight diff SLSQP vs nnls |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    targets: list[Target] = []
    for j in pools:
        rates, diffs = {}, {}
        for kind in ("numba", "nnls", "slsqp"):
            b = run.find(kind=kind, donors=j)
            rates[kind] = b["extra_info"]["fits"] / b["stats"]["min"]
            diffs[kind] = b["extra_info"]["max_weight_diff"]
        lines.append(f"| {j} | {rates['numba']:,.0f} | {rates['nnls']:,.0f} | "
                     f"{rates['slsqp']:,.1f} | **{rates['numba'] / rates['nnls']:.1f}x** | "
                     f"**{rates['numba'] / rates['slsqp']:,.0f}x** | {diffs['numba']:.1e} | "
                     f"{diffs['slsqp']:.1e} |")
        targets += [
            Target(f"synthetic control, {j} donors: numba / SLSQP", rates["numba"] / rates["slsqp"],
                   100.0, True, ",.0f"),
            Target(f"synthetic control, {j} donors: numba / nnls", rates["numba"] / rates["nnls"],
                   2.0, True),
            Target(f"synthetic control, {j} donors: max weight difference to nnls",
                   diffs["numba"], 1e-8, False, ".1e"),
        ]
    lines += ["", "20 pre-period points; the same problems for every solver (donors: indexed "
              "log outcome paths; the treated area a noisy mix of four). numba: "
              "`lobsim.kernels.synth.simplex_weights_batch`, a batch in one compiled call; nnls: "
              "`scipy.optimize.nnls` on the exact reformulation, one call per fit; SLSQP: "
              "`scipy.optimize.minimize` with the analytic gradient (ftol 1e-12), one call "
              "per fit. BLAS single-threaded for all.", ""]
    return lines, targets


# --------------------------------------------------------------------------
# Scaling and memory
# --------------------------------------------------------------------------


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``y = a + b x`` and its R^2."""
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    return float(a), float(b), 1.0 - float((resid ** 2).sum()) / ss if ss > 0 else 1.0


def scaling_section(run: Run, out: Path) -> tuple[list[str], list[Target]]:
    axes_names = ("scenarios", "bonds", "donors", "dates")
    found = {a: sorted((b for b in run.benches if b["extra_info"].get("axis") == a),
                       key=lambda b: b["extra_info"]["x"]) for a in axes_names}
    found = {a: bs for a, bs in found.items() if bs}
    what = {"scenarios": "scenarios (basket demo)", "bonds": "bonds (the demo's first k)",
            "donors": "equal-weight donors per bond", "dates": "measurement dates per bond"}
    lines = ["## Scaling", "",
             "1 thread, fresh outputs; the basket demo and variants of it "
             "(`harness.variant_config`); a linear fit `t = a + b x` per axis with its R^2. "
             "Cost must grow linearly in scenarios and bonds.", "",
             "| axis | x | normals / scenario | time (s) | per unit | fit R^2 |",
             "|---|---:|---:|---:|---:|---:|"]
    targets: list[Target] = []
    fig, axs = plt.subplots(1, max(1, len(found)), figsize=(4.2 * max(1, len(found)), 3.5),
                            squeeze=False)
    for ax, (axis, bs) in zip(axs[0], found.items(), strict=False):
        x = np.array([b["extra_info"]["x"] for b in bs], float)
        t = np.array([b["stats"]["min"] for b in bs])
        a, slope, r2 = linear_fit(x, t)
        for i, b in enumerate(bs):
            n = b["extra_info"]["scenarios"]
            per = t[i] / n * 1e6
            unit = f"{per:.1f} us/scenario" + (
                f", {per / x[i] * 1e3:.0f} ns/bond-scenario" if axis == "bonds" else "")
            lines.append(f"| {axis} | {x[i]:,.0f} | {b['extra_info']['normals']} | {t[i]:.3f} "
                         f"| {unit} | {r2:.3f} |")
        ax.plot(x, t, "o", label="measured")
        xx = np.linspace(0, x.max(), 50)
        ax.plot(xx, a + slope * xx, "-", lw=1, label=f"linear fit, R$^2$ = {r2:.3f}")
        ax.set_xlabel(what[axis])
        ax.set_ylabel("seconds (best round)")
        ax.legend(frameon=False, fontsize=8)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        if axis in ("scenarios", "bonds"):
            targets.append(Target(f"cost linear in {axis}: R^2 of the linear fit", r2, 0.98,
                                  True, ".3f"))
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=110)
    plt.close(fig)
    lines += ["", "![time against scenarios, bonds, donors and dates](scaling.png)", ""]

    mem = [b for b in run.benches if b["extra_info"].get("kind") == "memory"]
    if mem:
        lines += ["### Peak memory", "", "`lobsim run configs/basket_demo.toml --scenarios N "
                  "--quiet [--stream]`, one process per point, peak RSS from `getrusage`.", "",
                  "| mode | " + " | ".join(f"N = {int(n):,}" for n in
                                          mem[0]["extra_info"]["peak_rss_mib"]) + " | MiB per "
                  "100,000 scenarios (slope) |",
                  "|---|" + "---:|" * (len(mem[0]["extra_info"]["peak_rss_mib"]) + 1)]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for b in sorted(mem, key=lambda b: b["extra_info"]["mode"]):
            pts = b["extra_info"]["peak_rss_mib"]
            n = np.array([float(k) for k in pts])
            m = np.array(list(pts.values()))
            slope = np.polyfit(n, m, 1)[0] * 1e5 if len(n) > 1 else math.nan
            lines.append(f"| {b['extra_info']['mode']} | " + " | ".join(f"{v:,.0f} MiB"
                                                                         for v in m)
                         + f" | {slope:,.0f} |")
            ax.plot(n, m, "o-", label=b["extra_info"]["mode"])
        ax.set_xlabel("scenarios")
        ax.set_ylabel("peak RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.legend(frameon=False)
        fig.tight_layout()
        fig.savefig(out / "memory.png", dpi=110)
        plt.close(fig)
        lines += ["", "![peak memory against scenarios](memory.png)", ""]
    return lines, targets


def start_section(run: Run) -> list[str]:
    try:
        b = run.find(kind="start_up")["extra_info"]
    except KeyError:
        return []
    cold, warm = b["cold"], b["warm"]
    return ["## Start-up", "",
            f"`{b['command']}` in a new process with an empty numba cache "
            "(`NUMBA_CACHE_DIR` a new temporary folder), then again on that cache "
            "(`cache=True` on every kernel). Start-up: spawn to the start of the run's "
            "first block, of which the risk-band screening run.", "",
            "| process | wall | start-up | of which screening | blocks | after the blocks "
            "| peak RSS |", "|---|---:|---:|---:|---:|---:|---:|",
            *[f"| {label} | {m['wall']:.1f} s | {m['start_up']:.2f} s | {m['screening']:.2f} s "
              f"| {m['blocks']:.2f} s | {m['after_blocks']:.2f} s | {m['peak_rss_mib']:,.0f} MiB |"
              for label, m in (("first (empty cache)", cold), ("second (warm cache)", warm))],
            ""]


def write_report(data: dict[str, Any], out: Path, command: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    run = Run(data)
    info = data["machine_info"].get("lobsim_machine", {})
    parts: list[str] = ["# Benchmark report", "",
                        f"`{command}`, {data['datetime'][:19]} UTC"
                        f"{' (quick sizes)' if data['machine_info'].get('lobsim_quick') else ''}. "
                        "Times are the best round of each benchmark (pytest-benchmark).", "",
                        *[f"- {k}: {v}" for k, v in info.items()], ""]
    targets: list[Target] = []
    body: list[str] = []
    for section in (lambda: engine_section(run, out), lambda: synth_section(run),
                    lambda: scaling_section(run, out)):
        try:
            lines, t = section()
        except KeyError as missing:  # a partial run (-k): report what is there
            lines, t = [f"(section skipped: no benchmark with {missing})", ""], []
        body += lines
        targets += t
    body += start_section(run)
    parts += issue16_section(run.benches, out, data["datetime"][:19])
    parts += ["## Issue 7 targets", "", "| target | measured | goal | |", "|---|---:|---:|---|",
              *[t.row() for t in targets], "",
              f"{sum(t.met for t in targets)} of {len(targets)} met. Where a target is missed, "
              "benchmarks/README.md says where the time goes and what bounds it.", ""]
    text = "\n".join(parts + body)
    (out / "REPORT.md").write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("json", type=Path)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--command", default="make bench")
    args = ap.parse_args(argv)
    data = json.loads(args.json.read_text(encoding="utf-8"))
    text = write_report(data, args.out, args.command)
    print(text)
    print(f"written to {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
