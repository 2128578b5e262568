"""Choosing the maturity of a bond: the trade-off between ramp-up and noise.

The social investment bank works out "the best maturity date of different
agreements" (Total Neighbourhood, section 5.2). Measured too early, the
programme has not delivered (the ramp is not complete); measured late,
relapse has eaten into the effect, the provider has had longer to fail, the
control group's prediction error has grown with the horizon, and the same
payment comes later. :func:`choose_maturity` re-prices one bond at each
candidate maturity and recommends the one with the lowest default
probability, ties within Monte Carlo error broken by the higher expected IRR.

Each candidate is simulated as a world holding that bond alone, with the
same price, prior, provider and comparison areas (the donors the bond gets in
the full config, pinned, since other bonds' areas cannot be donors there),
the same seed and the same block size: **common random numbers**. By the
draw order of the kernel (lobsim.kernels.engine: per scenario all normals, factors
then area states then programme factors, then one exponential per failing
provider), every candidate draws the same number of normals in the same
order, because a one-bond world with one measurement has one date whatever
it is. So scenario ``i`` of every candidate has the *same* success fraction
theta and provider failure time, and *comonotone* area shocks: the same
standard normals scaled to each horizon by the exact k-step AR(1)
transition. The area noise is therefore not one path observed at several
dates: CRN holds exactly for the programme, in rank for the noise. Paired
differences between candidates are then much less noisy than either.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lobsim.analysis import tables
from lobsim.analysis.stats import probability_interval
from lobsim.jsonio import number
from lobsim.model.areas import read_areas
from lobsim.model.config import Bond, Config
from lobsim.model.control import nearest_donors
from lobsim.model.derive import derive

#: Latest candidate maturity, in years after the base year (as for the config's dates).
LAST_YEAR = 100.0

#: Ties: a candidate whose default probability exceeds the lowest by at most
#: this many standard errors of the paired difference counts as tied (about
#: 95% two-sided).
TIE_SIGMAS = 2.0


@dataclass(frozen=True)
class Candidate:
    """The bond's risk at one candidate maturity (years after the base year).

    ``*_se`` are Monte Carlo standard errors. Shortfall: the provider's
    (:mod:`lobsim.model.shortfall`), in units and at the price per unit.
    """

    maturity: float
    signal_to_noise: float
    mean_prediction_error: float  # E[measured units with no effect]: the control group's bias
    default_probability: float
    default_probability_se: float
    mean_irr: float
    mean_irr_se: float
    expected_overpayment: float
    expected_overpayment_se: float
    shortfall_probability: float
    expected_shortfall: float
    expected_shortfall_value: float
    mean_true_share: float  # E[true units at maturity] / target
    irr_expected_flows: float = math.nan  # the second IRR convention (lobsim.analysis.returns)


@dataclass(frozen=True)
class MaturityChoice:
    """Candidates, the recommendation and the candidates tied with the best.

    ``tied`` holds the maturities whose default probability is within
    ``TIE_SIGMAS`` paired standard errors of the lowest; ``recommended`` is
    the one of them with the highest expected IRR (the earliest on equal IRR).
    """

    bond: str
    scenarios: int
    seed: int
    candidates: tuple[Candidate, ...]
    recommended: float
    tied: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready layout (``schema``: ``lobsim.maturity/1``)."""
        return {"schema": "lobsim.maturity/1", "bond": self.bond, "scenarios": self.scenarios,
                "seed": self.seed, "tie_sigmas": TIE_SIGMAS, "recommended": self.recommended,
                "tied": list(self.tied),
                "candidates": [{k: (number(v) if isinstance(v, float) else v)
                                for k, v in dataclasses.asdict(c).items()}
                               for c in self.candidates]}


def bond_alone_at(cfg: Config, bond_id: str, maturity: float) -> Config:
    """``cfg`` reduced to bond ``bond_id`` measured and paid at ``maturity``.

    The bond keeps its price, prior, provider, payers and the donor areas
    it has in ``cfg`` (pinned as an explicit list). Its cap group, if any,
    keeps its cap with this bond alone; baskets and investor classes go.

    Raises
    ------
    ValueError
        If the bond pays at several dates, or ``maturity`` is not after its start.
    """
    index = [b.id for b in cfg.bonds].index(bond_id)
    bond = cfg.bonds[index]
    pay = bond.payment
    if len(pay.measurements) > 1 or pay.coupons:
        raise ValueError(f"bond {bond_id!r} pays at several dates (cohort measurements or "
                         "coupons); choosing the maturity needs a single measurement at maturity")
    if not bond.start < maturity <= LAST_YEAR:
        raise ValueError(f"maturity {maturity:g} must be after the bond's start "
                         f"({bond.start:g}) and at most {LAST_YEAR:g}")
    # cap groups keep this bond alone (derive drops the members it drops)
    return derive(cfg, bonds=(bond,), baskets=(), providers=(cfg.provider(bond.provider),),
                  investor_classes=(), changed_bonds={bond_id: {
                      "maturity": maturity, "payment": {"measurements": ({"at": maturity},)},
                      "control": _pinned_control(cfg, bond, index)}})


def _pinned_control(cfg: Config, bond: Bond, index: int) -> Any:
    control = bond.control
    if control.weights == "verified" or control.donor_areas is not None or cfg.universe is None:
        return control
    areas = read_areas(cfg.universe.areas)
    treated = {b.area for b in cfg.bonds}
    donors = nearest_donors(bond, areas, treated, cfg.source, f"bonds[{index}]")
    ids = tuple(areas.ids[int(i)] for i in donors)
    return {"donor_areas": ids, "donors": len(ids)}  # changes, for derive


def recommend(default: np.ndarray, mean_irr: np.ndarray,
              sigmas: float = TIE_SIGMAS) -> tuple[int, list[int]]:
    """Index of the recommended candidate and of those tied with the lowest P(default).

    Parameters
    ----------
    default : ndarray of bool, shape (scenarios, candidates)
        Default indicators on common random numbers.
    mean_irr : ndarray, shape (candidates,)
    sigmas : float
        Tie width in standard errors of the paired difference of default
        indicators (zero width when the candidates agree in every scenario).
    """
    d = default.astype(float)
    p = d.mean(axis=0)
    best = int(np.argmin(p))
    n = d.shape[0]
    diff = d - d[:, [best]]
    se = diff.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros(p.size)
    tied = [j for j in range(p.size) if p[j] - p[best] <= sigmas * se[j]]
    # highest E[IRR]; among equal IRRs the earliest (candidates in increasing order)
    pick = max(tied, key=lambda j: (mean_irr[j], -j))
    return pick, tied


def choose_maturity(cfg: Config, bond_id: str, maturities: Sequence[float], *,
                    scenarios: int | None = None, seed: int | None = None,
                    threads: int | None = None) -> MaturityChoice:
    """Re-price a bond at each candidate maturity and recommend one.

    Parameters
    ----------
    cfg : Config
        A config with a universe.
    bond_id : str
        The bond.
    maturities : sequence of float
        Candidate maturities in years after the base year, each after the
        bond's start (sorted and deduplicated here).
    scenarios, seed : int, optional
        Default: the config's.
    threads : int, optional
        Worker threads (results do not depend on them).

    Returns
    -------
    MaturityChoice

    Examples
    --------
    >>> from lobsim import load_config
    >>> cfg = load_config("configs/birmingham_jsa.toml")                 # doctest: +SKIP
    >>> choose_maturity(cfg, "bham-jsa", range(1, 9), scenarios=20_000).recommended  # doctest: +SKIP
    """
    from lobsim.analysis.summary import summarize
    from lobsim.model.simulate import simulate

    cfg.bond(bond_id)  # an unknown id: one line naming the known ones
    dates = sorted({float(t) for t in maturities})
    if not dates:
        raise ValueError("give at least one candidate maturity")
    n = cfg.simulation.scenarios if scenarios is None else scenarios
    if n < 2:
        raise ValueError(f"comparing maturities needs at least 2 scenarios (their Monte Carlo "
                         f"errors), got {n}")
    s = cfg.simulation.seed if seed is None else seed
    bond = cfg.bond(bond_id)
    candidates = []
    defaults = np.empty((n, len(dates)), np.bool_)
    for k, t in enumerate(dates):
        ds = simulate(bond_alone_at(cfg, bond_id, t), scenarios=n, seed=s, threads=threads)
        v = ds.isel(bond=0)
        defaults[:, k] = v.default.values
        # the statistics are those of lobsim summary, computed the same way
        st = summarize(ds).isel(bond=0)
        candidates.append(Candidate(
            maturity=t,
            signal_to_noise=float(st.signal_to_noise),
            mean_prediction_error=float(v.prediction_error.mean()),
            default_probability=float(st.default_probability),
            default_probability_se=float(st.default_probability_se),
            mean_irr=float(st.mean_irr), mean_irr_se=float(st.mean_irr_se),
            expected_overpayment=float(st.expected_overpayment),
            expected_overpayment_se=float(st.expected_overpayment_se),
            shortfall_probability=float(st.provider_shortfall_probability),
            expected_shortfall=float(st.expected_provider_shortfall),
            expected_shortfall_value=float(st.expected_provider_shortfall_value),
            mean_true_share=float(v.true_units.mean()) / bond.target_units,
            irr_expected_flows=float(st.irr_expected_flows)))
    pick, tied = recommend(defaults, np.array([c.mean_irr for c in candidates]))
    return MaturityChoice(bond=bond_id, scenarios=n, seed=s, candidates=tuple(candidates),
                          recommended=dates[pick], tied=tuple(dates[j] for j in tied))


def format_maturity(choice: MaturityChoice) -> str:
    """Plain-text table of the candidates and the recommendation (lobsim.analysis.tables)."""
    from lobsim.model.simulate import CURRENCY

    header = ["maturity year", "E[true]/target", "E[error] units", "signal/noise", "P(default)",
              "P(default) 95%", "E[IRR] (mean of scenarios)", "IRR of E[flows]",
              f"state E[overpayment] {CURRENCY}", "provider P(shortfall)",
              "provider E[shortfall] units", f"provider value {CURRENCY}", ""]
    rows = []
    for c in choice.candidates:
        lo, hi = probability_interval(c.default_probability, c.default_probability_se,
                                      choice.scenarios)
        rows.append([
            f"{c.maturity:g}", f"{c.mean_true_share:.3f}", f"{c.mean_prediction_error:,.0f}",
            f"{c.signal_to_noise:.2f}", f"{c.default_probability:.4f}",
            tables.interval(float(lo), float(hi)), f"{100 * c.mean_irr:.2f}%",
            f"{100 * c.irr_expected_flows:.2f}%", f"{c.expected_overpayment:,.0f}",
            f"{c.shortfall_probability:.4f}", f"{c.expected_shortfall:,.1f}",
            f"{c.expected_shortfall_value:,.0f}",
            "<" if c.maturity == choice.recommended else ""])
    lines = [f"Maturity of bond {choice.bond}: {choice.scenarios} scenarios, seed {choice.seed}, "
             "common random numbers across candidates", "",
             *tables.render(header, rows, left=0), "", tables.INTERVAL_NOTE]
    others = [f"{t:g}" for t in choice.tied if t != choice.recommended]
    tie = (f"; tied within {TIE_SIGMAS:g} paired standard errors: {', '.join(others)}"
           if others else "")
    lines += ["", f"recommended maturity: year {choice.recommended:g} (lowest P(default), ties "
                  f"broken by the higher E[IRR] (mean of scenarios)){tie}"]
    return "\n".join(lines)

