"""A parametric bootstrap of the regional phi of a calibrated universe (docs/real_data.md).

``--parameter-uncertainty`` holds an estimate on its boundary (GM's regional
phi = 1) at the estimate. This measures what a parametric bootstrap would
give in its place: for each true regional phi per period given, ``B`` panels
are drawn from the universe's calibrated process with that phi (the regional
sigma per period kept; ``lobsim.validation.backtest.simulate_panel``), each is
recalibrated (``lobsim.validation.calibrate.calibrate``), and the script
prints how often the estimate lands on the bound, the estimates' quantiles and
the seconds per replicate::

    python tools/boundary_bootstrap.py lobsim:gm/universe.toml --replicates 40 --phi 1 0.97 0.9 0.8
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from lobsim.model.areas import AreaTable, OutcomeData
from lobsim.model.process import ar1_period_parameters, ar1_year_parameters
from lobsim.validation.backtest import simulate_panel
from lobsim.validation.calibrate import calibrate
from lobsim.validation.universe_file import read_universe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("universe")
    ap.add_argument("--replicates", type=int, default=40)
    ap.add_argument("--phi", type=float, nargs="+", default=[1.0],
                    help="true regional phi per period of the simulated panels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    u = read_universe(args.universe)
    ppy = u.periods_per_year
    plain = AreaTable(ids=u.areas.ids, regions=u.areas.regions,
                      covariate_names=u.areas.covariate_names, covariates=u.areas.covariates)
    phi_year, sigma_year = u.process.regional_phi, u.process.regional_sigma
    _, sigma_p = ar1_period_parameters(phi_year, sigma_year, ppy)  # the calibrated, per period
    zeros = np.zeros(len(u.areas.ids))
    print(f"{args.universe}: regional phi per year {phi_year:.4f}, sigma per period "
          f"{sigma_p:.4f}; {args.replicates} replicates per true phi")
    for phi in args.phi:
        py, sy = ar1_year_parameters(phi, sigma_p, ppy)
        world = dataclasses.replace(u, process=dataclasses.replace(
            u.process, regional_phi=py, regional_sigma=sy))
        rng = np.random.default_rng([args.seed, round(phi * 1e6)])
        t0 = time.perf_counter()
        est = []
        for _ in range(args.replicates):
            h = OutcomeData(periods=u.data.periods, log_history=np.log(simulate_panel(world, rng)),
                            trend=zeros, log_level=zeros, area_state=zeros, regional_state={},
                            national_state=0.0)
            est.append(calibrate(h, plain, ppy).per_period["regional_phi"])
        e = np.array(est)
        q = np.quantile(e, [0.05, 0.25, 0.5, 0.75])
        print(f"true phi per period {phi:.3f} (per year {py:.3f}): estimate at 1 in "
              f"{np.mean(e >= 1.0):.0%}; quantiles 5/25/50/75% {q.round(3).tolist()} "
              f"(per year {(q ** ppy).round(3).tolist()}); "
              f"{(time.perf_counter() - t0) / args.replicates:.2f} s per replicate")


if __name__ == "__main__":
    main()
