"""Pooled basket measurement: the noise a pooled basket is paid on (docs/model.md 6.13).

A pooled basket pays its bonds on the sum of their measured units, each bond
measured against its own control group. What it measures with no true effect
is therefore the sum of its members' prediction errors (the kernel's
``prediction_error``, per bond at maturity), and its signal-to-noise is the
summed target over the sd of that sum (:func:`lobsim.analysis.power.signal_to_noise`,
the one definition). Independent errors add in variance, so the pooled
signal-to-noise of ``n`` like bonds grows as ``sqrt(n)``; errors that share
donors or regional and national factors add in sd and do not diversify.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from lobsim.analysis import power, tables

#: ``basket_measurement`` of a pooled basket (results coordinate; lobsim.model.schema).
POOLED = "pooled"


def is_pooled(ds: xr.Dataset) -> np.ndarray:
    """(basket,) whether each basket is measured pooled (False for results without it)."""
    if "basket_measurement" not in ds.coords:
        return np.zeros(ds.sizes["basket"], bool)
    return np.asarray(ds.basket_measurement.values == POOLED)


def summed_errors(prediction_error: np.ndarray, member: np.ndarray) -> np.ndarray:
    """(scenarios, baskets): each basket's members' prediction errors summed, from
    (scenarios, bonds) errors and a (baskets, bonds) membership (the streaming
    summary sums a block's kernel outputs with it)."""
    return np.nan_to_num(prediction_error) @ np.asarray(member, float).T


def pooled_prediction_error(ds: xr.Dataset) -> xr.DataArray:
    """(scenario, basket) the sum of each basket's members' prediction errors.

    What a pooled basket measures at maturity with no true effect, in outcome
    units (meaningful for a basket of one outcome kind: a pooled one).
    """
    err = xr.DataArray(summed_errors(ds.prediction_error.transpose("scenario", "bond").values,
                                     ds.basket_member.values),
                       dims=("scenario", "basket"), coords={"basket": ds.basket.values})
    return err.rename("pooled_prediction_error").assign_attrs(
        units=ds.prediction_error.attrs.get("units", ""),
        long_name="sum of the members' units measured at maturity with no true effect")


def summed_target(ds: xr.Dataset) -> np.ndarray:
    """(basket,) the sum of each basket's members' target units."""
    return np.asarray(ds.basket_member.values.astype(float) @ ds.target_units.values)


def pooled_signal_to_noise(ds: xr.Dataset, sd: np.ndarray | None = None) -> np.ndarray:
    """(basket,) the summed target over the sd of :func:`pooled_prediction_error`
    (``sd``, if given: the streaming summary's); NaN for a basket measured separately."""
    if sd is None:
        sd = pooled_prediction_error(ds).std("scenario").values
    return np.where(is_pooled(ds), power.signal_to_noise(summed_target(ds), sd), np.nan)


def pooled_minimum_detectable_effect(ds: xr.Dataset, w: np.ndarray | None = None) -> np.ndarray:
    """(basket,) the minimum detectable effect of :func:`pooled_prediction_error`
    (:func:`lobsim.analysis.power.minimum_detectable_effect`, importance weights ``w``),
    in outcome units; NaN for a basket measured separately."""
    mde = power.minimum_detectable_effect(pooled_prediction_error(ds), w)
    return np.where(is_pooled(ds), mde, np.nan)


def diversification(ds: xr.Dataset, basket: str) -> xr.Dataset:
    """How the measurement noise of ``basket`` falls as its bonds are pooled.

    For ``n = 1 .. size`` the first ``n`` members (in bond order) pooled: the sd
    of their summed prediction error per unit of their summed target
    (``noise_per_target``), and the independent-errors reference: the mean of
    the members' own sd per target over ``sqrt(n)`` (``independent``).
    Equal, independent bonds follow the reference; shared donors and common
    factors keep the curve above it.
    """
    k = list(ds.basket.values).index(basket)
    members = np.flatnonzero(ds.basket_member.values[k])
    err = np.nan_to_num(ds.prediction_error.values[:, members])
    target = ds.target_units.values[members]
    n = np.arange(1, members.size + 1)
    pooled = np.cumsum(err, axis=1).std(axis=0) / np.cumsum(target)
    own = float(np.mean(err.std(axis=0) / target))
    units = "1"
    return xr.Dataset(
        {"noise_per_target": ("bonds_pooled", pooled, {
            "units": units, "long_name": "sd of the pooled prediction error per unit of target"}),
         "independent": ("bonds_pooled", own / np.sqrt(n), {
             "units": units, "long_name": "independent errors: one bond's sd per target "
                                          "over sqrt(n)"})},
        coords={"bonds_pooled": n, "bond": ("bonds_pooled", ds.bond.values[members])},
        attrs={"basket": basket})


def pooled_lines(s: xr.Dataset) -> list[str]:
    """Terminal lines: each pooled basket's signal-to-noise against its noisiest
    bond's (docs/model.md section 6.13); none if no basket is pooled."""
    if "basket_pooled_signal_to_noise" not in s:
        return []
    pooled = s.basket_pooled_signal_to_noise.values
    rows = [[str(key), f"{pooled[i]:.2f}", f"{float(s.basket_lowest_signal_to_noise[i]):.2f}"]
            for i, key in enumerate(s.basket.values.tolist()) if np.isfinite(pooled[i])]
    return ["", "Pooled measurement (the basket paid on its bonds' summed measured units)",
            *tables.render(["basket", "pooled signal/noise", "lowest bond signal/noise"], rows)]
