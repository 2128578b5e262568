"""Monte Carlo of the calibration's sampling error (not collected by pytest).

Generates demo universes (lobsim.model.demo, the engine's own process: 200 areas in
10 regions, 60 months) with seeds FIRST..FIRST+N-1, calibrates each outcome
and prints, per parameter, the mean and sd of the estimates against the
generating values, and the state's errors. tests/test_calibrate.py takes its
tolerances from this table (docs/real_data.md shows it):

    OPENBLAS_NUM_THREADS=1 python tests/mc_calibration.py 40 1000
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from lobsim.model.areas import read_areas, read_outcome
from lobsim.model.demo import _TRENDS, OUTCOMES, generate_demo_universe
from lobsim.validation.calibrate import calibrate

KEYS = ("national_phi", "national_sigma", "regional_phi", "regional_sigma", "area_phi",
        "area_sigma", "measurement_sigma")


def run(n: int, first: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {o: {} for o in OUTCOMES}
    for seed in range(first, first + n):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            generate_demo_universe(folder, seed=seed)
            areas = read_areas(folder / "areas.csv")
            for outcome in OUTCOMES:
                history = folder / f"{outcome}_history.csv"
                truth = read_outcome(history, folder / f"{outcome}_state.csv", areas, 12)
                cal = calibrate(history, areas, 12)
                rec = out[outcome]
                for key in KEYS:
                    rec.setdefault(key, []).append(getattr(cal.process, key))
                rec.setdefault("trend_mean", []).append(cal.trend_mean)
                rec.setdefault("trend_sd_region", []).append(cal.trend_sd_region)
                rec.setdefault("trend_sd_area", []).append(cal.trend_sd_area)
                rmse = np.sqrt(np.mean((cal.log_level - truth.log_level) ** 2))
                naive = np.sqrt(np.mean((truth.log_base - truth.log_level) ** 2))
                rec.setdefault("level_rmse_ratio", []).append(float(rmse / naive))
                rec.setdefault("trend_corr", []).append(
                    float(np.corrcoef(cal.trend, truth.trend)[0, 1]))
                rec.setdefault("area_state_corr", []).append(
                    float(np.corrcoef(cal.area_state, truth.area_state)[0, 1]))
                regions = list(truth.regional_state)
                rec.setdefault("regional_state_corr", []).append(float(np.corrcoef(
                    [cal.regional_state[r] for r in regions],
                    [truth.regional_state[r] for r in regions])[0, 1]))
                rec.setdefault("volatility_slope", []).append(cal.volatility_slope)
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    first = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    out = run(n, first)
    print(f"{n} universes, seeds {first} to {first + n - 1}")
    for outcome, rec in out.items():
        process = OUTCOMES[outcome][1]
        truth = {k: getattr(process, k) for k in KEYS}
        # the demo draws each area's trend around one mean: no regional spread
        truth["trend_mean"], truth["trend_sd_area"] = _TRENDS[outcome]
        truth["trend_sd_region"] = 0.0
        print(f"\n{outcome}\n| quantity | true | mean | sd | min | max |\n| --- | --- | --- | --- | --- | --- |")
        for key, values in rec.items():
            v = np.array(values)
            t = f"{truth[key]:g}" if key in truth else ""
            print(f"| {key} | {t} | {v.mean():.4f} | {v.std(ddof=1):.4f} | {v.min():.4f} "
                  f"| {v.max():.4f} |")


if __name__ == "__main__":
    main()
