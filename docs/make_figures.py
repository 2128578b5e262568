"""Make the README's figures, one of each type of lobsim.report.plot, in docs/figures/.

Run from the repository root: ``.venv/bin/python docs/make_figures.py``
(about a minute). Seeds are the configs', so the figures are reproducible.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from matplotlib.figure import Figure

from lobsim import load_config, simulate
from lobsim.analysis.risk import risk_contributions
from lobsim.model.config import Basket
from lobsim.model.realdata import resolve_data_path
from lobsim.report import plot, pooling, studies
from lobsim.validation import backtest
from lobsim.validation.universe_file import read_universe

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures"
DPI = 80


def pooled_noise() -> Figure:
    """The noisy basket demo's claimants bonds paid per unit at their commonest dates,
    pooled in one basket (docs/model.md section 6.13; tools/pooled_basket.py)."""
    cfg = load_config(ROOT / "configs" / "basket_demo_noisy.toml")
    groups: dict[tuple[float, ...], list[str]] = {}
    for b in cfg.bonds:
        if b.outcome == "claimants" and b.payment.mechanism in ("per_unit", "threshold"):
            groups.setdefault(tuple(m.at for m in b.payment.measurements), []).append(b.id)
    pool = Basket(id="claimants", name="claimants", bonds=tuple(max(groups.values(), key=len)),
                  where=None, risk_band=None, tranches=(), guarantee=None, measurement="pooled")
    ds = simulate(dataclasses.replace(cfg, baskets=(pool,)), scenarios=20_000)
    return plot.figure_of(pooling.measurement_noise(ds, "claimants"))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    bham_cfg = load_config(ROOT / "configs" / "birmingham_jsa.toml")
    bham = simulate(bham_cfg, scenarios=20_000)
    demo = simulate(load_config(ROOT / "configs" / "basket_demo.toml"), scenarios=10_000)

    figures = {
        "return_distribution": plot.return_distribution(bham, bond="bham-jsa"),
        "default_probability": plot.default_probability(demo, top=15),
        "department_fan": plot.department_fan(bham, "DWP"),
        "control_fit": plot.control_fit(bham, bham_cfg, "bham-jsa"),
        "tranche_losses": plot.tranche_losses(demo, "north"),
        "risk_contributions": plot.risk_contributions(risk_contributions(demo, "all", 0.99),
                                                      by="bond", top=12),
    }
    history = resolve_data_path("lobsim:gm/claimants_history.csv")
    panel = backtest.read_panel(history, resolve_data_path("lobsim:gm/areas.csv"))
    design = dict(pre=12, horizon=12, donors=(10,), weights=("synthetic",))
    real = backtest.placebo_backtest(panel, **design)
    universe = read_universe(resolve_data_path("lobsim:gm/universe.toml"))
    model = backtest.simulate_placebos(universe, replicates=5, seed=1, **design)
    figures["placebo_qq"] = studies.placebo_qq(real, {"pooled": model})
    figures["measurement_noise"] = pooled_noise()

    for name, fig in figures.items():
        plot.save(fig, OUT / f"{name}.png", dpi=DPI)
        print(f"wrote {OUT / name}.png")


if __name__ == "__main__":
    main()
