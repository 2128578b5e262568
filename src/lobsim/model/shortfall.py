"""The provider's risk: units truly achieved but not paid for (docs/model.md section 7.5).

"Civil society organisations risk being undervalued for their outcomes"
(Total Neighbourhood, section 5.2). The state's overpayment pays for units
the programme did not cause; the mirror risk, carried by the provider and its
investors, is the *provider shortfall*

    shortfall = max(0, min(true_units, cap) - paid_units)

in outcome units: what the programme truly achieved at maturity, up to what
the contract could ever pay for, less what was paid. It comes from the
control group's prediction error (measured below true), thresholds and
triggers not reached, and cash caps (a maximum return, a cap group).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lobsim.kernels import flows
from lobsim.model.config import Bond


def cap_units(bond: Bond) -> float:
    """Most units ``bond`` can pay for: the final cumulative cap, the target for binary bonds.

    A binary bond pays for the whole target when triggered (its paid units
    are the target), so its cap in units is the target.
    """
    if bond.payment.mechanism == "binary":
        return bond.target_units
    return bond.payment.measurements[-1].cap


def provider_shortfall(true_units: np.ndarray, paid_units: np.ndarray,
                       bonds: Sequence[Bond]) -> np.ndarray:
    """``max(0, min(true, cap) - paid)`` per scenario and bond.

    Parameters
    ----------
    true_units, paid_units : ndarray, shape (scenarios, bonds)
        Units truly achieved at maturity and units paid for.
    bonds : sequence of Bond
        The bonds, in column order (their caps).

    Returns
    -------
    ndarray, shape (scenarios, bonds)

    Examples
    --------
    >>> from lobsim.model.config import load_config
    >>> bond = load_config("configs/birmingham_jsa.toml").bonds[0]  # doctest: +SKIP
    >>> provider_shortfall(np.array([[6000.0, 4000.0]]).T, np.array([[4500.0, 4200.0]]).T,
    ...                    [bond])  # doctest: +SKIP
    array([[500.], [0.]])
    """
    cap = np.array([cap_units(b) for b in bonds], float)
    true, paid = np.broadcast_arrays(np.asarray(true_units, float), np.asarray(paid_units, float))
    shape = true.shape
    true = true.reshape(-1, shape[-1])
    paid = paid.reshape(-1, shape[-1])
    out = np.empty(true.shape)
    # one compiled pass (kernels.flows), the bits of np.maximum(0, np.minimum(true, cap) - paid)
    flows.provider_shortfall(true, paid, np.broadcast_to(cap, shape[-1:]), out)
    return out.reshape(shape)
