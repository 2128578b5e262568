"""Control groups: donor pools and their weights, fixed at signing (docs/model.md section 4).

A bond's comparison areas are its ``k`` nearest neighbours on standardised
covariates (CIPFA-style), excluding every area that any bond of the run
treats, or an explicit list. Their weights are equal (the report's method) or
synthetic-control weights fitted once on the observed pre-period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lobsim.errors import ConfigError
from lobsim.model.areas import AreaTable, OutcomeData
from lobsim.model.config import Bond
from lobsim.model.synthetic_control import fit_synthetic_control


@dataclass(frozen=True, kw_only=True)
class ControlFit:
    """The comparison group of one bond.

    Attributes
    ----------
    donors : ndarray of int, shape (k,)
        Area indices of the donor pool.
    weights : ndarray, shape (k,)
        Non-negative weights summing to one.
    rmspe : float
        Root mean squared error of the weighted donors' indexed log path
        against the treated area's over the pre-period.
    """

    donors: np.ndarray
    weights: np.ndarray
    rmspe: float


def nearest_donors(bond: Bond, areas: AreaTable, treated: set[str], source: str,
                   path: str) -> np.ndarray:
    """The donor pool of ``bond``: an explicit list or its nearest neighbours.

    Distances are Euclidean on covariates standardised over the universe
    (constant columns dropped); ties go to the earlier area in the table.
    """
    control = bond.control
    if control.weights == "verified":  # outcomes verified one by one: no comparison group
        return np.zeros(0, dtype=np.int64)
    if control.donor_areas is not None:
        return np.array([areas.index(a) for a in control.donor_areas], dtype=np.int64)
    names = control.match_on or areas.covariate_names
    cols = [areas.covariate_names.index(c) for c in names]
    x = areas.covariates[:, cols]
    sd = x.std(axis=0)
    keep = sd > 0.0
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / sd[keep]
    me = areas.index(bond.area)
    dist = np.sqrt(((z - z[me]) ** 2).sum(axis=1))
    eligible = np.array([a not in treated for a in areas.ids])
    order = [i for i in np.argsort(dist, kind="stable") if eligible[i]]
    if len(order) < control.donors:
        raise ConfigError(
            f"asks for {control.donors} donors but only {len(order)} untreated areas exist; "
            "lower control.donors", source=source, path=f"{path}.control.donors")
    return np.array(order[: control.donors], dtype=np.int64)


def fit_control(bond: Bond, areas: AreaTable, data: OutcomeData, donors: np.ndarray) -> ControlFit:
    """Weights of the donors of ``bond`` on the observed pre-period.

    Parameters
    ----------
    bond : Bond
    areas : AreaTable
    data : OutcomeData
        The observed history of the bond's outcome.
    donors : ndarray of int
        Area indices of the pool.

    Returns
    -------
    ControlFit
    """
    control = bond.control
    if control.weights == "verified":
        return ControlFit(donors=donors, weights=np.zeros(0), rmspe=0.0)
    me = areas.index(bond.area)
    logs = data.log_history
    n_pre = logs.shape[1] if control.pre_periods is None else min(control.pre_periods,
                                                                  logs.shape[1])
    window = logs[:, -n_pre:]
    # indexed log paths x[a,t] - x[a,0]: the base period is the last one
    path1 = window[me] - window[me, -1]
    path0 = (window[donors] - window[donors, -1:]).T  # (n_pre, k)
    if control.weights == "equal":
        weights = np.full(donors.size, 1.0 / donors.size)
    else:
        rows1, rows0, v = [path1], [path0], [np.ones(n_pre)]
        for name, weight in control.covariate_weights:
            c = areas.covariates[:, areas.covariate_names.index(name)]
            sd = c.std() or 1.0
            z = (c - c.mean()) / sd
            rows1.append(z[[me]])
            rows0.append(z[donors][None, :])
            v.append(np.array([weight]))
        fit = fit_synthetic_control(np.concatenate(rows1), np.vstack(rows0), np.concatenate(v))
        weights = np.asarray(fit.weights, dtype=float)
    err = path1 - path0 @ weights
    return ControlFit(donors=donors, weights=weights, rmspe=float(np.sqrt(np.mean(err**2))))
