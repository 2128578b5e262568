"""Reading results files: what ``lobsim run --out`` wrote, checked before it is used.

:func:`open_results` reads a netCDF file (``.nc``) or a zarr store
(``.zarr``, every block's checksum verified by :func:`lobsim.scale.store.read_store`)
and checks that it is a lobsim results file of a known layout, in one pass
over the values:

* **per-scenario results** carry lobsim's attributes, as many scenarios as
  they announce, and the variables of :data:`RESULTS_LAYOUT` with their
  dimensions (the groups of a dimension the file has: tranches, holdings,
  dated payments); every floating-point variable along ``scenario`` is
  finite, and every payment (a variable named ``*payment``) non-negative,
  as are the bonds' principals, prices and payer terms (the results Dataset
  of docs/model.md section 9.1: the kernel writes no NaN, payments are
  amounts paid);
* a **summary** (of a ``--stream`` run) carries its attributes and the
  statistics a summary prints; probabilities lie in [0, 1], payment
  statistics are finite and non-negative.

Anything else is a :class:`ResultsError`: one line naming the file, the
variable and where it is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr
from numba import njit

S, B, D, Y, K, T = "scenario", "bond", "department", "year", "basket", "time"

#: Variables of per-scenario results and their dimensions: ``None`` those of
#: every file, else those of a file with that dimension.
RESULTS_LAYOUT: dict[str | None, dict[str, tuple[str, ...]]] = {
    None: {
        "investor_payment": (S, B), "irr": (S, B), "multiple": (S, B), "default": (S, B),
        "total_loss": (S, B), "overpayment": (S, B), "prediction_error": (S, B),
        "true_units": (S, B), "measured_units": (S, B), "paid_units": (S, B),
        "department_payment": (S, D, Y), "department_saving": (S, D, Y),
        "basket_payment": (S, K), "basket_irr": (S, K), "basket_multiple": (S, K),
        "basket_cashflow": (S, K, T),
        "principal": (B,), "price_per_unit": (B,), "target_units": (B,), "rmspe": (B,),
        "basket_principal": (K,), "department_share": (B, D), "department_premium": (B, D),
    },
    "tranche": {
        "tranche_payment": (S, "tranche"), "tranche_irr": (S, "tranche"),
        "tranche_guarantee": (S, "tranche"), "tranche_protection": (S, "tranche"),
        "tranche_principal": ("tranche",), "tranche_share": ("tranche",),
        "tranche_premium": ("tranche",), "tranche_seniority": ("tranche",),
        "tranche_basket": ("tranche",), "tranche_cashflow": (S, "tranche", T),
        "tranche_paid_in": ("tranche", T),
    },
    "holding": {
        "after_tax_irr": (S, "holding"), "holding_kind": ("holding",),
        "holding_instrument": ("holding",), "holding_relief": ("holding",),
        "holding_tax_rate": ("holding",), "holding_paid_in": ("holding", T),
    },
    "payment": {
        "dated_payment": (S, "payment"), "payment_bond": ("payment",),
        "payment_time": ("payment",), "payment_year": ("payment",),
        "payment_coupon": ("payment",),
    },
}
#: Statistics every summary holds (``lobsim.analysis.summary.summarize``'s layout).
SUMMARY_LAYOUT: dict[str, tuple[str, ...]] = {
    **{f"{p}{name}": (dim,) for p, dim in (("", B), ("basket_", K))
       for name in ("default_probability", "total_loss_probability", "expected_loss",
                    "mean_multiple", "mean_irr")},
    **{f"{p}{name}": (q, dim) for p, dim in (("", B), ("basket_", K))
       for name, q in (("multiple_quantile", "quantile"), ("irr_quantile", "quantile"),
                       ("loss_var", "level"), ("loss_es", "level"))},
    "expected_overpayment": (B,), "signal_to_noise": (B,), "rmspe": (B,),
    "department_payment_mean": (D, Y), "department_saving_mean": (D, Y),
    "net_fiscal_position": (D, Y), "department_payment_quantile": ("department_quantile", D, Y),
    "probability_pays_more_than_saves": (D, Y),
}
_RESULTS_ATTRS = ("lobsim_version", "config_hash", "seed", "scenarios")
#: Terms of the bonds that the readers divide or multiply by.
_TERMS = ("principal", "price_per_unit", "basket_principal", "tranche_principal",
          "department_share", "department_premium")
_MAX = float(np.finfo(np.float64).max)


class ResultsError(Exception):
    """A results file that cannot be used (one line; exit status 2 on the CLI)."""


def is_summary(ds: xr.Dataset) -> bool:
    """Whether ``ds`` is a summary (a streaming run's result) rather than per-scenario results."""
    return "scenario" not in ds.dims and "default_probability" in ds


@njit(cache=True, nogil=True)
def _count_outside(x, lo, hi):
    """How many values of the 1-D array ``x`` are not in ``[lo, hi]`` (NaN is not).

    A count rather than the first index: the loop vectorises (memory speed).
    """
    n = 0
    for i in range(x.shape[0]):
        v = x[i]
        n += not (v >= lo and v <= hi)
    return n


def _check_values(path: Path, ds: xr.Dataset, name: str, lo: float, hi: float,
                  rule: str) -> None:
    v = ds[name]
    x = np.asarray(v.values)
    if x.dtype != np.float64:
        x = x.astype(np.float64)
    flat = x.reshape(-1)
    if not (flat.size and _count_outside(flat, lo, hi)):
        return
    i = int(np.flatnonzero(~((flat >= lo) & (flat <= hi)))[0])
    where = ", ".join(f"{d} {ds[d].values[j] if d in ds.coords else j}"
                      for d, j in zip(v.dims, np.unravel_index(i, x.shape), strict=True))
    raise ResultsError(f"{path}: {name} is {float(flat[i])!r} at {where}; {rule} "
                       "(the file is damaged or not written by lobsim: run 'lobsim run' again)")


def _check_layout(path: Path, ds: xr.Dataset, layout: dict[str, tuple[str, ...]],
                  need: Iterable[str]) -> None:
    missing = [k for k in dict.fromkeys((*layout, *need)) if k not in ds.variables]
    if missing:
        raise ResultsError(f"{path}: not a lobsim results file (no "
                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
    for k, dims in layout.items():
        if ds[k].dims != dims:
            raise ResultsError(f"{path}: not a lobsim results file of a known layout ({k} has "
                               f"dimensions {ds[k].dims}, not {dims})")


def check_results(ds: xr.Dataset, path: str | Path, *, need: Iterable[str] = ()) -> xr.Dataset:
    """Check that ``ds`` (read from ``path``) is lobsim results or a summary; returns it.

    Raises
    ------
    ResultsError
        If it is not, or a value is out of its range (see the module docstring).
    """
    path = Path(path)
    summary = is_summary(ds)
    if summary:
        _check_layout(path, ds, SUMMARY_LAYOUT, ())
    else:
        _check_layout(path, ds, {k: v for dim, group in RESULTS_LAYOUT.items()
                                 if dim is None or dim in ds.dims for k, v in group.items()}, need)
    lacking = [a for a in _RESULTS_ATTRS if a not in ds.attrs]
    if lacking:
        raise ResultsError(f"{path}: not a lobsim results file (no {lacking[0]} attribute)")
    if summary:
        for name in map(str, ds.data_vars):
            if name.endswith("_se"):
                continue
            if "probability" in name:
                _check_values(path, ds, name, 0.0, 1.0, "probabilities lie in [0, 1]")
            elif name.startswith("department_payment"):
                _check_values(path, ds, name, 0.0, _MAX, "payments are finite and non-negative")
        return ds
    if ds.sizes.get("scenario") != ds.attrs["scenarios"]:
        raise ResultsError(f"{path}: holds {ds.sizes.get('scenario', 0)} scenarios, not the "
                           f"{ds.attrs['scenarios']} it was written with (the file is "
                           "truncated or damaged: run 'lobsim run' again)")
    for name in map(str, ds.variables):
        if ds[name].dtype.kind != "f":
            continue
        if name in _TERMS:
            _check_values(path, ds, name, 0.0, _MAX, "the bonds' terms are finite and "
                          "non-negative")
        elif "scenario" not in ds[name].dims:
            continue
        elif name.endswith("payment"):
            _check_values(path, ds, name, 0.0, _MAX, "payments are finite and non-negative")
        else:
            _check_values(path, ds, name, -_MAX, _MAX, "results are finite")
    return ds


def open_results(path: str | Path, *, need: Iterable[str] = (),
                 purpose: str | None = None) -> xr.Dataset:
    """Results written by ``lobsim run --out`` (``.nc`` or ``.zarr``), loaded and checked.

    Parameters
    ----------
    path : path
    need : iterable of str
        Variables the caller reads beyond :data:`RESULTS_LAYOUT`.
    purpose : str, optional
        What the caller needs per-scenario results for ("set-asides are
        computed from"); None accepts a ``--stream`` run's summary too.

    Raises
    ------
    ResultsError
        If the file is missing, unreadable, damaged (a store's checksums) or
        not lobsim results of a known layout.
    """
    from lobsim.scale.store import StoreError, read_store

    path = Path(path)
    if path.suffix == ".zarr" and path.is_dir():
        try:
            ds = read_store(path)
        except StoreError as exc:
            raise ResultsError(str(exc)) from None
    elif not path.is_file():
        raise ResultsError(f"{path}: no such results file")
    else:
        try:
            ds = xr.load_dataset(path)
        except Exception as exc:  # netCDF4/HDF5 raise many kinds on a damaged file
            reason = str(exc).splitlines()[0].split(". ")[0] if str(exc) else type(exc).__name__
            raise ResultsError(f"{path}: not a lobsim results file ({reason})") from None
    if is_summary(ds) and purpose is not None:
        raise ResultsError(f"{path}: holds the statistics of a --stream run, not the scenarios "
                           f"{purpose}; run 'lobsim run' again without --stream")
    return check_results(ds, path, need=need)
