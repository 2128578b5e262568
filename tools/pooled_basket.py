"""Pooled against separate measurement of a basket, on common random numbers.

Adds to a config a basket of its bonds that can be pooled (paid per measured
unit, one outcome, the commonest measurement dates: docs/model.md section
6.13) and simulates it twice on the same seed, measured separately and pooled;
prints for each the basket's investor P(default), E[multiple], the state's
E[overpayment], the providers' E[shortfall] value, and the signal-to-noise.

    PYTHONPATH=src python tools/pooled_basket.py configs/basket_demo.toml --outcome claimants
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

import lobsim
from lobsim.analysis import pooling
from lobsim.model.config import Basket, Config


def poolable(cfg: Config, outcome: str, measured_only: bool) -> tuple[str, ...]:
    """The bonds of ``outcome`` paid per measured unit at its commonest measurement
    dates (``measured_only``: without verified outcomes, which have no control group)."""
    groups: dict[tuple[float, ...], list[str]] = {}
    for b in cfg.bonds:
        if measured_only and b.control.weights == "verified":
            continue
        if b.outcome == outcome and b.payment.mechanism in ("per_unit", "threshold"):
            groups.setdefault(tuple(m.at for m in b.payment.measurements), []).append(b.id)
    return tuple(max(groups.values(), key=len))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--outcome", default="claimants")
    ap.add_argument("--scenarios", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--measured-only", action="store_true",
                    help="leave out verified bonds (no control group)")
    args = ap.parse_args()
    cfg = lobsim.load_config(args.config)
    members = poolable(cfg, args.outcome, args.measured_only)
    print(f"{args.config}: basket 'pool' of {len(members)} {args.outcome} bonds, "
          f"{args.scenarios} scenarios, seed {args.seed}")
    head = ("measurement", "P(default)", "E[multiple]", "E[overpayment] GBP",
            "E[shortfall] GBP", "signal/noise")
    print("  ".join(f"{h:>18}" for h in head))
    for rule in ("separate", "pooled"):
        basket = Basket(id="pool", name="pool", bonds=members, where=None, risk_band=None,
                        tranches=(), guarantee=None, measurement=rule)
        run = dataclasses.replace(cfg, baskets=(basket,))
        ds = lobsim.simulate(run, scenarios=args.scenarios, seed=args.seed)
        s = lobsim.summarize(ds)
        v = s.sel(basket="pool")
        own = s.signal_to_noise.values[ds.basket_member.values[0]]
        snr = (f"{float(v.basket_pooled_signal_to_noise):.2f} pooled" if rule == "pooled" else
               f"{np.min(own):.2f}-{np.max(own[np.isfinite(own)]):.2f} own")
        print("  ".join(f"{c:>18}" for c in (
            rule, f"{float(v.basket_default_probability):.4f}",
            f"{float(v.basket_mean_multiple):.4f}",
            f"{float(v.basket_expected_overpayment):,.0f}",
            f"{float(v.basket_expected_provider_shortfall_value):,.0f}", snr)))
        if rule == "pooled":
            d = pooling.diversification(ds, "pool")
            print("noise per target, first n pooled:",
                  " ".join(f"{x:.3f}" for x in d.noise_per_target.values),
                  "| independent:", " ".join(f"{x:.3f}" for x in d.independent.values))


if __name__ == "__main__":
    main()
