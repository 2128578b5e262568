"""The zarr checkpoint store: results written as they are computed, runs resumed.

A store is a zarr group (``PATH.zarr``) that ``xarray.open_zarr`` reads as a
Dataset, plus a ``_lobsim`` subgroup with the checkpoint's bookkeeping:

* its attributes: the *run identity* (config hash, seed, scenarios, block
  size, what is stored, lobsim version) and whether the run is complete;
* a **results store** (per-scenario arrays) is chunked by block along
  ``scenario``; each block's chunks are written, then its checksum
  (BLAKE2b of the data) goes into ``_lobsim/block_checksum``, one chunk per
  block. zarr writes every chunk to a temporary file and renames it, so a
  block is either marked with the checksum of what was written or not marked
  at all; on resume every marked block is read back and verified, and a block
  whose marker is missing or wrong is simulated again;
* a **summary store** (a streaming run) holds snapshots of the merged
  accumulator (``_lobsim/state-NNNNNN``, arrays plus their checksum); the
  pointer to the current one is an attribute, switched only after the
  snapshot is complete, and the previous snapshot is deleted after that. At
  the end the summary Dataset is written into the store's root.

A store refuses to resume a run with another identity: a different config,
seed, number of scenarios or block size would not give the results of either.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

META = "_lobsim"
MARKER_BYTES = 16


class StoreError(Exception):
    """A store that cannot be written or resumed (one line; exit status 2 on the CLI)."""


@dataclass(frozen=True)
class RunIdentity:
    """What makes two runs give the same results, block for block."""

    config_hash: str
    seed: int
    scenarios: int
    block_size: int
    content: str  # "results" or "summary"
    version: str

    @property
    def hash(self) -> str:
        """A short hash of the identity."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        """One-line description naming the run and config hashes."""
        return (f"run {self.hash} (config {self.config_hash[:16]}, seed {self.seed}, "
                f"{self.scenarios} scenarios, block size {self.block_size}, {self.content}, "
                f"lobsim {self.version})")


@contextmanager
def _quiet_zarr() -> Iterator[None]:
    # fixed-length strings (bond ids) have no zarr v3 spec yet; we read them back ourselves
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def checksum(arrays: dict[str, np.ndarray]) -> bytes:
    """BLAKE2b digest of named arrays (names, dtypes, shapes and bytes)."""
    h = hashlib.blake2b(digest_size=MARKER_BYTES)
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        # row by row: a view of a large buffer is hashed without copying it
        for row in a.reshape(a.shape[0], -1) if a.ndim > 1 and a.shape[0] else (a,):
            h.update(np.ascontiguousarray(row).data)
    return h.digest()


class Store:
    """Common part of the two kinds of store: identity, creation and completion."""

    content = ""

    def __init__(self, path: Path, identity: RunIdentity) -> None:
        self.path = Path(path)
        self.identity = identity
        self._cache: dict[str, Any] | None = None
        self._writable = False

    @classmethod
    def open(cls, path: str | Path, identity: RunIdentity, *, resume: bool,
             force: bool) -> tuple[Any, bool]:
        """Open ``path`` for a run: ``(store, resumed)``.

        A missing store is created (also with ``resume``); an existing one
        is resumed with ``resume`` (if its identity matches), replaced with
        ``force``, and otherwise refused.
        """
        path = Path(path)
        store = cls(path, identity)
        if path.exists():
            if resume:
                store._check_identity()
                return store, True
            if not force:
                raise StoreError(f"--out {path}: the store exists; pass --resume to finish it "
                                 "or --force to overwrite it")
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return store, False

    def _meta(self, mode: Literal["r", "r+"] = "r") -> Any:
        import zarr

        return zarr.open_group(str(self.path / META), mode=mode)

    def _check_identity(self) -> None:
        try:
            attrs = dict(self._meta().attrs)
            stored = RunIdentity(**attrs["run"])
        except Exception:  # anything unreadable is not our store
            raise StoreError(f"--out {self.path}: not a lobsim checkpoint store (no readable "
                             f"{META} record); use another path or --force") from None
        if stored != self.identity:
            raise StoreError(f"--out {self.path}: written by {stored.describe()}; cannot resume "
                             f"{self.identity.describe()} (use another --out, or --force)")

    def initialize_meta(self) -> None:
        """Create the store's root group and its record of the run (first thing written)."""
        import zarr

        zarr.open_group(str(self.path), mode="w")
        zarr.open_group(str(self.path / META), mode="w",
                        attributes={"run": asdict(self.identity), "run_hash": self.identity.hash,
                                    "complete": False, "initialized": False})

    @property
    def initialized(self) -> bool:
        """Whether the store's arrays exist (a run may die before they are made)."""
        return bool(self._meta().attrs.get("initialized", False))

    @property
    def complete(self) -> bool:
        """Whether the run finished."""
        try:
            return bool(self._meta().attrs.get("complete", False))
        except Exception:
            return False

    def _mark_complete(self) -> None:
        import zarr

        self._meta("r+").attrs.update(complete=True)
        with _quiet_zarr():
            zarr.consolidate_metadata(str(self.path))


def _scenario_vars(ds: xr.Dataset) -> list[str]:
    return sorted(str(k) for k, v in ds.variables.items()
                  if "scenario" in v.dims and k != "scenario")


class ResultStore(Store):
    """Per-scenario results, one zarr chunk per block along ``scenario``."""

    content = "results"

    def initialize(self, template: xr.Dataset, scenarios: int, block_size: int) -> None:
        """Create the arrays of a run labelled like ``template`` (one scenario is enough)."""
        import dask.array as da

        n_blocks = -(-scenarios // block_size)
        data = {}
        for name in _scenario_vars(template):
            v = template[name].variable
            shape = (scenarios, *v.shape[1:])
            if v.dims[0] != "scenario":
                raise StoreError(f"variable {name}: scenario must be its first dimension")
            data[name] = (v.dims, da.zeros(shape, dtype=v.dtype, chunks=(block_size, *v.shape[1:])),
                          v.attrs)
        lazy = template.drop_vars([*_scenario_vars(template), "scenario"]).assign(data)
        lazy = lazy.assign_coords(scenario=np.arange(scenarios))
        lazy.attrs.update(template.attrs, scenarios=scenarios)
        import zarr

        root = zarr.open_group(str(self.path), mode="r+")
        for key in list(root.array_keys()):  # left by a run that died while making them
            del root[key]
        with _quiet_zarr():
            lazy.to_zarr(str(self.path), mode="a", compute=False, consolidated=False)
            meta = self._meta("r+")
            meta.create_array("block_checksum", shape=(n_blocks, MARKER_BYTES), dtype="uint8",
                              chunks=(1, MARKER_BYTES), fill_value=0, overwrite=True)
            meta.attrs.update(initialized=True)
        for k, a in self._arrays().items():
            if a.dtype != template[k].dtype or {"scale_factor", "add_offset"} & set(a.attrs):
                raise StoreError(f"{self.path}: variable {k} would not be stored as it is")

    def _markers(self, mode: Literal["r", "r+"] = "r") -> Any:
        return self._meta(mode)["block_checksum"]

    def _arrays(self, mode: Literal["r", "r+"] = "r") -> dict[str, Any]:
        """The per-scenario zarr arrays, written and read directly (xarray's region
        writes cost a tenth of a second each; the stored values are the values:
        float64 with a NaN fill value, bool, int64, no scaling).
        """
        import zarr

        if self._cache is None or (mode == "r+" and not self._writable):
            root: Any = zarr.open_group(str(self.path), mode=mode)
            self._cache = {k: root[k] for k in root.array_keys()
                           if "scenario" in (root[k].metadata.dimension_names or ())
                           and k != "scenario"}
            self._writable = mode == "r+"
        return self._cache

    def verified_blocks(self, block_size: int, scenarios: int) -> np.ndarray:
        """Which blocks are written and match their checksum (the others are redone)."""
        marks = np.asarray(self._markers()[...])
        done = np.asarray(marks.any(axis=1), np.bool_)
        arrays = self._arrays()
        marked = np.flatnonzero(done).tolist()
        while marked:
            # read runs of consecutive marked blocks at once (a zarr read call costs milliseconds)
            run = [marked.pop(0)]
            while marked and marked[0] == run[-1] + 1 and len(run) < 64:
                run.append(marked.pop(0))
            lo0 = run[0] * block_size
            data = {k: np.asarray(a[lo0:min((run[-1] + 1) * block_size, scenarios)])
                    for k, a in arrays.items()}
            for b in run:
                lo, hi = b * block_size - lo0, min((b + 1) * block_size, scenarios) - lo0
                if checksum({k: v[lo:hi] for k, v in data.items()}) != marks[b].tobytes():
                    done[b] = False
        return done

    def write_blocks(self, blocks: list[tuple[int, int, xr.Dataset]]) -> None:
        """Write consecutive labelled blocks ``(block, first row, dataset)``, then mark them.

        One write per array for all of them (a zarr write call costs
        milliseconds); the markers go last, so that a block is only marked
        complete when its data are.
        """
        if not blocks:
            return
        arrays = self._arrays("r+")
        first = blocks[0][0]
        for i, (b, _, _) in enumerate(blocks):
            if b != first + i:
                raise ValueError("write_blocks needs consecutive blocks")
        values = [{k: ds[k].values for k in arrays} for _, _, ds in blocks]
        markers = self._markers("r+")
        last = first + len(blocks)
        markers[first:last, :] = 0  # blocks being rewritten are not complete
        lo = blocks[0][1]
        hi = blocks[-1][1] + blocks[-1][2].sizes["scenario"]
        for k, a in arrays.items():
            a[lo:hi] = np.concatenate([v[k] for v in values])
        markers[first:last, :] = np.stack([np.frombuffer(checksum(v), np.uint8)
                                           for v in values])

    def finish(self) -> None:
        """Mark the run complete."""
        self._mark_complete()

    def open_dataset(self) -> xr.Dataset:
        """The results (lazy, dask-backed)."""
        with _quiet_zarr():
            return xr.open_zarr(str(self.path), consolidated=False)


class SummaryStore(Store):
    """Snapshots of a streaming run's accumulator, then its summary."""

    content = "summary"

    def initialize(self) -> None:
        """Prepare for snapshots."""
        self._meta("r+").attrs.update(initialized=True, state=None, state_checksum=None)

    def load_state(self) -> dict[str, np.ndarray] | None:
        """The last complete snapshot, verified; None if there is none (or it is damaged)."""
        import zarr

        attrs = dict(self._meta().attrs)
        name = attrs.get("state")
        if not name or not attrs.get("initialized"):
            return None
        try:
            group: Any = zarr.open_group(str(self.path / META / name), mode="r")
            state = {k: np.asarray(group[k][...]) for k in group.array_keys()}
        except Exception:  # a damaged snapshot: start over
            return None
        if checksum(state).hex() != attrs.get("state_checksum"):
            return None
        return state

    def save_state(self, state: dict[str, np.ndarray]) -> None:
        """Write a snapshot, then point to it, then delete the previous one."""
        import zarr

        meta = self._meta("r+")
        old = meta.attrs.get("state")
        counter = int(old.rsplit("-", 1)[1]) + 1 if old else 1
        name = f"state-{counter:06d}"
        group = zarr.open_group(str(self.path / META / name), mode="w")
        for key, arr in state.items():
            a = np.asarray(arr)
            # about 8 MB a chunk (a tail row of a long run is a chunk of its own)
            rows = max(1, (1 << 20) // max(1, int(np.prod(a.shape[1:], dtype=np.int64))))
            chunk = (max(1, min(a.shape[0], rows)), *a.shape[1:])
            z = group.create_array(key, shape=a.shape, dtype=a.dtype, chunks=chunk)
            if a.size:
                z[...] = a
        meta.attrs.update(state=name, state_checksum=checksum(state).hex())
        if old:
            shutil.rmtree(self.path / META / old, ignore_errors=True)

    def finish(self, summary: xr.Dataset) -> None:
        """Write the summary into the store's root and mark the run complete."""
        with _quiet_zarr():
            summary.to_zarr(str(self.path), mode="a", consolidated=False)
        self._mark_complete()


def read_results(path: str | Path) -> xr.Dataset:
    """Load a complete store (results or a streaming summary) into memory.

    Raises
    ------
    StoreError
        If ``path`` is not a lobsim store or its run did not finish.
    """
    import zarr

    path = Path(path)
    try:
        attrs: dict[str, Any] = dict(zarr.open_group(str(path / META), mode="r").attrs)
    except Exception:
        raise StoreError(f"{path}: not a lobsim results store") from None
    if not attrs.get("complete"):
        run = attrs.get("run", {})
        raise StoreError(f"{path}: the run did not finish ({run.get('content', '?')} of "
                         f"{run.get('scenarios', '?')} scenarios); finish it with "
                         "'lobsim run ... --resume'")
    with _quiet_zarr():
        return xr.load_dataset(str(path), engine="zarr", consolidated=True)
