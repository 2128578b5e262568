"""The kernel contract: the world and the outputs of :func:`lobsim.kernels.engine.simulate_block`
as named groups of arrays.

Each group is a :class:`typing.NamedTuple` (numba compiles them as typed
tuples, with ``cache=True`` and ``nogil``); the model layer
(:mod:`lobsim.model.world`) fills them by keyword and the kernel reads them by
attribute, so a field has one name on both sides. Derived worlds are built with
``group._replace(field=...)`` (pricing's loadings, importance-sampling tilts).

Shapes: F factors, D global measurement dates, S series (touched area x
outcome), B bonds, M measurements of a bond at most, Q saving or payer rows of
a bond at most, Y payment years, P providers, K baskets, T cash-flow times.
Ragged rows are padded; a count per row says how many entries are real.

Sentinels are spelled out: a verified-outcome bond has ``verified[b]`` (and no
donors), a bond paying at several dates has ``dated[b]`` (its slots start at
``slot[b]``), whole-year basket dates have ``Baskets.whole_years``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# payment mechanisms (Bonds.mechanism)
MECH_UNITS = 0  # per_unit and threshold: pay per measured unit
MECH_BINARY = 1  # a fixed sum on a trigger
MECH_SCHEDULE = 2  # a return grid on measured performance
# outcome kinds (Bonds.kind)
KIND_COUNT = 0
KIND_PERCENT = 1


class Factors(NamedTuple):
    """National (per outcome) and regional (per touched outcome-region) AR(1) factors."""

    #: (D,) years after base of the global measurement dates
    time: np.ndarray
    #: (F, D) k-step AR(1) coefficient from the previous date (from base for the first)
    phik: np.ndarray
    #: (F, D) k-step innovation sd
    sdk: np.ndarray
    #: (F,) state at base
    state0: np.ndarray


class Series(NamedTuple):
    """Touched series (area x outcome): their states at the dates they are measured."""

    #: (S,) index of the series' national and regional factor
    national: np.ndarray
    regional: np.ndarray
    #: (S,) factor loadings
    beta: np.ndarray
    gamma: np.ndarray
    #: (S,) measurement noise sd (a treated series draws its noise apart)
    noise_sd: np.ndarray
    #: (S,) a treated area (else a donor, its noise folded into its states)
    treated: np.ndarray
    #: (S,) dates of the series; (S, Dmax) their global date indices
    ndates: np.ndarray
    dates: np.ndarray
    #: (S, Dmax) the draw-free part of the log level at each date
    const: np.ndarray
    #: (S, Dmax, Dmax) lower Cholesky factor of the area-specific states (and donor noise)
    chol: np.ndarray


class Programme(NamedTuple):
    """Programme success (a Gaussian copula on Beta marginals) and provider failure."""

    #: intervention types
    n_types: int
    #: (types, Z) success share on the z grid (``F_Beta^-1(Phi(z))``)
    theta_table: np.ndarray
    z_lo: float
    z_step: float
    #: importance-sampling shift of the global factor's mean; (types,) of type factors
    tilt_global: float
    tilt_type: np.ndarray
    #: (B,) type of each bond and its copula loadings (type, global, own)
    bond_type: np.ndarray
    load_type: np.ndarray
    load_global: np.ndarray
    load_own: np.ndarray
    #: (B,) provider of each bond; (P,) failure hazard per year and first start
    bond_provider: np.ndarray
    hazard: np.ndarray
    origin: np.ndarray


class Bonds(NamedTuple):
    """Per-bond terms and control groups."""

    start: np.ndarray  #: (B,) years after base
    target: np.ndarray  #: (B,) target units
    price: np.ndarray  #: (B,) price per unit
    principal: np.ndarray
    kind: np.ndarray  #: (B,) KIND_COUNT or KIND_PERCENT
    mechanism: np.ndarray  #: (B,) MECH_*
    trigger: np.ndarray  #: (B,) binary trigger as a share of target
    amount: np.ndarray  #: (B,) binary payment
    series: np.ndarray  #: (B,) the bond's treated series
    base_level: np.ndarray  #: (B,) observed outcome at base
    verified: np.ndarray  #: (B,) verified outcomes: the true units are measured
    ndonors: np.ndarray  #: (B,) donors with positive weight (0 when verified)
    donor: np.ndarray  #: (B, Kmax) donor series
    weight: np.ndarray  #: (B, Kmax) donor weights
    nmeas: np.ndarray  #: (B,) measurements
    start_time: np.ndarray  #: (B,) index of the start in Baskets.time
    ramp_time: np.ndarray  #: (B, knots) ramp knots (years after start), padded with the last
    ramp_share: np.ndarray  #: (B, knots) cumulative shares at the knots
    horizon: np.ndarray  #: (B,) maturity - start: delivery in full if no failure before
    maturity_year: np.ndarray  #: (B,) payment-year index of the maturity
    cap_group: np.ndarray  #: (B,) index into Payments.group_cap; -1: in no group
    ngrid: np.ndarray  #: (B,) steps of the return grid
    grid_performance: np.ndarray  #: (B, G) performance of each grid step
    grid_amount: np.ndarray  #: (B, G) payment of each grid step
    dated: np.ndarray  #: (B,) pays at several dates: its slots are in Outputs.dated_payment
    slot: np.ndarray  #: (B,) first slot of a dated bond (0 otherwise)
    shrunk: np.ndarray  #: (B,) pays on the shrunk basis k x measured + (1 - k) x prior
    shrink_k: np.ndarray  #: (B,) shrinkage factor k fixed at signing (1 for a point bond)
    pool: np.ndarray  #: (B,) the bond's pooled basket, numbered from 0 (-1: measured alone)
    pool_target: np.ndarray  #: (B,) summed target of the bond's pool (0 if none)


class Measurements(NamedTuple):
    """The measurements of each bond, (B, M)."""

    state: np.ndarray  #: flat position of the treated state in the (series x date) buffer
    donor_state: np.ndarray  #: (B, M, Kmax) flat positions of the donors' states
    time: np.ndarray  #: years after base
    threshold: np.ndarray
    cap: np.ndarray  #: cap in units
    cash_cap: np.ndarray  #: cumulative cap in cash (a maximum return; inf if none)
    year: np.ndarray  #: payment-year index
    time_index: np.ndarray  #: index in Baskets.time
    horizon: np.ndarray  #: years after the start
    full_share: np.ndarray  #: share of target x theta standing, without failure
    relapse: np.ndarray  #: (B, M, smax) survival of each year's delivery
    prior: np.ndarray  #: prior mean of the units fixed at signing (a shrunk bond's; else 0)


class Savings(NamedTuple):
    """Department savings on true units: a fast table without failure, exact rows with one."""

    fast_n: np.ndarray  #: (B,) entries of the fast table
    fast_department: np.ndarray  #: (B, V)
    fast_year: np.ndarray  #: (B, V)
    fast_rate: np.ndarray  #: (B, V) saving per unit of target x theta
    year_horizon: np.ndarray  #: (B, Y) years after start at each year end (0: not counted)
    year_relapse: np.ndarray  #: (B, Y, smax)
    n: np.ndarray  #: (B,) saving rows of the bond's outcome
    department: np.ndarray  #: (B, Q)
    amount: np.ndarray  #: (B, Q) saving per unit
    once: np.ndarray  #: (B, Q) counted once at maturity (per_unit), else every year


class Payments(NamedTuple):
    """Who pays: department payers, fixed coupons and cap groups."""

    npayers: np.ndarray  #: (B,)
    department: np.ndarray  #: (B, Q)
    per_unit: np.ndarray  #: (B, Q) paid per unit of a units bond (share x price + premium)
    share: np.ndarray  #: (B, Q) share of the cash of other bonds
    premium: np.ndarray  #: (B, Q) agency premium per paid unit
    ncoupons: np.ndarray  #: (B,)
    coupon_amount: np.ndarray  #: (B, C)
    coupon_time: np.ndarray  #: (B, C) years after base
    coupon_time_index: np.ndarray  #: (B, C) index in Baskets.time
    coupon_year: np.ndarray  #: (B, C) payment-year index
    group_cap: np.ndarray  #: (groups,) cash cap shared by a group of bonds


class Baskets(NamedTuple):
    """Baskets and the shared cash-flow time grid."""

    member: np.ndarray  #: (K, B) bool
    size: np.ndarray  #: (K,)
    members: np.ndarray  #: (K, max size) member bond indices
    principal_at: np.ndarray  #: (K, T) principal put in at each time
    time: np.ndarray  #: (T,) years after the first time
    whole_years: bool  #: every time a whole number of years: ``steps`` is valid
    steps: np.ndarray  #: (T,) years from the previous time (0 first)


class WorldArrays(NamedTuple):
    """Every group of a world, in the order :func:`~lobsim.kernels.engine.simulate_block`
    takes them: ``simulate_block(gen, n, *world.arrays, out)``."""

    factors: Factors
    series: Series
    programme: Programme
    bonds: Bonds
    measurements: Measurements
    savings: Savings
    payments: Payments
    baskets: Baskets


class Outputs(NamedTuple):
    """What the kernel writes, row ``r`` per scenario; the names of the results' variables."""

    true_units: np.ndarray  #: (n, B)
    measured_units: np.ndarray  #: (n, B)
    prediction_error: np.ndarray  #: (n, B) measured at maturity with no true effect
    paid_units: np.ndarray  #: (n, B)
    investor_payment: np.ndarray  #: (n, B)
    overpayment: np.ndarray  #: (n, B)
    irr: np.ndarray  #: (n, B)
    default: np.ndarray  #: (n, B) bool
    total_loss: np.ndarray  #: (n, B) bool
    department_payment: np.ndarray  #: (n, departments, Y)
    department_saving: np.ndarray  #: (n, departments, Y)
    basket_payment: np.ndarray  #: (n, K)
    basket_irr: np.ndarray  #: (n, K)
    basket_cashflow: np.ndarray  #: (n, K, T)
    log_weight: np.ndarray  #: (n,) log likelihood ratio of the tilt
    dated_payment: np.ndarray  #: (n, slots)
