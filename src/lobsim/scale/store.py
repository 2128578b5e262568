"""The zarr checkpoint store: results written as they are computed, runs resumed.

A store is a zarr group (``PATH.zarr``) that ``xarray.open_zarr`` reads as a
Dataset, plus a ``_lobsim`` subgroup whose attributes are the store's
*record*: the run identity (config hash, seed, scenarios, block size, what is
stored, lobsim version), the store format and whether the run is complete.

Every change of a store's state is one atomic step, so that a process killed
at any moment leaves a store that ``--resume`` completes (docs/scale.md):

* a store is **created** whole in a hidden sibling folder (arrays, record,
  checksums of the arrays that are not per scenario), which is then renamed
  to ``PATH.zarr``; a store it replaces (``--force``) is renamed away first
  and deleted after. ``PATH.zarr`` is therefore either absent or a store
  with its record;
* zarr writes every chunk and every metadata document to a temporary file
  and renames it, so each chunk and each record update is atomic;
* a **results store** (per-scenario arrays) is chunked by block along
  ``scenario``; each block's chunks are written, then the BLAKE2b checksum of
  each of its variables goes into ``_lobsim/block_checksum`` (one chunk per
  block). A block is intact when every variable matches its checksum:
  ``--resume`` verifies every block and simulates again the ones that are
  missing, half-written or damaged (blocks are seeded by index, so the
  result is bit-identical);
* a **summary store** (a streaming run) holds snapshots of the merged
  accumulator (``_lobsim/state-NNNNNN``, arrays plus their checksum); the
  pointer to the current one is an attribute of the record, switched only
  after the snapshot is complete. At the end the final state is saved, the
  summary written into the store's root and checksummed;
* at the end the metadata are consolidated, and **the last write** marks the
  record complete (with the summary's checksums, in the same write).

Readers (:func:`read_store`) verify every checksum and refuse, in one line
naming the store, the variable and the block, a store with anything missing
or damaged; ``--resume`` repairs it.

A store refuses to resume a run with another identity: a different config,
seed, number of scenarios or block size would not give the results of either.

The module is a little over 600 lines because the two store kinds share one
protocol (atomic creation, records, checksums, identity) whose steps stay
private to it: splitting them would make that protocol public.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

META = "_lobsim"
MARKER_BYTES = 16
#: Format of the store layout. 2: per-variable block checksums, atomic creation.
FORMAT = 2


class StoreError(Exception):
    """A store that cannot be written, read or resumed (one line; exit status 2 on the CLI)."""


class StoreDamaged(StoreError):
    """A store with missing or damaged data, which ``--resume`` recomputes."""


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
        if a.flags.c_contiguous:
            h.update(a.reshape(-1).view(np.uint8).data)  # one call: hashing is the cost
        else:  # row by row: a view of a large buffer is hashed without copying it
            for row in a.reshape(a.shape[0], -1):
                h.update(np.ascontiguousarray(row).data)
    return h.digest()


def _group(path: Path, mode: str = "r") -> Any:
    """A zarr group, never through consolidated metadata (which may be stale)."""
    import zarr

    with _quiet_zarr():
        return zarr.open_group(str(path), mode=mode, use_consolidated=False)  # type: ignore[arg-type]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _record(path: Path) -> dict[str, Any]:
    """The store's record (``_lobsim`` attributes); StoreError if unreadable."""
    try:
        return dict(_group(path / META).attrs)
    except Exception:  # anything unreadable is not our store
        raise StoreError(f"{path}: not a lobsim store (no readable {META} record)") from None


def _resume_hint(path: Path, run: dict[str, Any]) -> str:
    """The command that finishes or repairs the store at ``path``."""
    try:
        config = _group(path).attrs.get("config_source") or "CONFIG"
    except Exception:
        config = "CONFIG"
    stream = " --stream" if run.get("content") == "summary" else ""
    return (f"lobsim run {config} --scenarios {run.get('scenarios', 'N')} --seed "
            f"{run.get('seed', 'S')}{stream} --out {path} --resume")


class Store:
    """Common part of the two kinds of store: identity, creation, repair, completion."""

    content = ""

    def __init__(self, path: Path, identity: RunIdentity) -> None:
        self.path = Path(path)
        self.identity = identity
        #: whether the run continues a store on disk (else :meth:`create` makes one)
        self.existing = False

    @classmethod
    def open(cls, path: str | Path, identity: RunIdentity, *, resume: bool,
             force: bool) -> Any:
        """A store for a run at ``path``, nothing written yet.

        A missing store is created (also with ``resume``); an existing one
        is resumed with ``resume`` (if its identity matches; a folder that
        holds no data, left by a run killed while creating it, is created
        again), replaced with ``force`` (once the new one exists), and
        otherwise refused.
        """
        store = cls(Path(path), identity)
        if not (store.path.exists() or store.path.is_symlink()):
            return store
        if resume:
            store.existing = store._resumable()
        elif not force:
            raise StoreError(f"--out {path}: the store exists; pass --resume to finish it "
                             "or --force to overwrite it")
        return store

    def _resumable(self) -> bool:
        """Whether the store on disk continues this run; False if it holds nothing."""
        try:
            rec = _record(self.path)
            stored = RunIdentity(**rec["run"])
        except Exception:
            if self._holds_nothing():
                return False
            raise StoreError(f"--out {self.path}: not a lobsim checkpoint store (no readable "
                             f"{META} record); use another path or --force") from None
        if stored != self.identity:
            raise StoreError(f"--out {self.path}: written by {stored.describe()}; cannot resume "
                             f"{self.identity.describe()} (use another --out, or --force)")
        if rec.get("format") != FORMAT:
            if not rec.get("initialized", False):  # an earlier lobsim died creating it
                return False
            raise StoreError(f"--out {self.path}: written by an earlier lobsim (store format "
                             f"{rec.get('format', 1)}); finish it with that version or start "
                             "over with --force")
        return True

    def _holds_nothing(self) -> bool:
        """Whether the folder holds no data: at most an empty group and temporary files."""
        if not self.path.is_dir():
            return False
        for p in self.path.rglob("*"):
            rel = p.relative_to(self.path).as_posix()
            if p.is_dir() or p.name.endswith(".partial") or rel == f"{META}/zarr.json":
                continue  # (a readable record was read before)
            if rel == "zarr.json":
                try:
                    if not json.loads(p.read_text(encoding="utf-8")).get("attributes"):
                        continue
                except (OSError, ValueError):
                    continue  # half-written metadata of an empty group
            return False
        return True

    # -- atomic steps -------------------------------------------------------
    def _create(self, build: Callable[[Path], None]) -> None:
        """Build the store in a hidden sibling folder, then rename it into place."""
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True)
        for stale in (*parent.glob(f".{self.path.name}.*.new"),
                      *parent.glob(f".{self.path.name}.*.old")):
            _remove(stale)  # left by a run killed while creating or replacing a store
        tag = uuid.uuid4().hex[:12]
        new = parent / f".{self.path.name}.{tag}.new"
        try:
            build(new)
        except BaseException:
            _remove(new)
            raise
        if self.path.exists() or self.path.is_symlink():  # --force, or a store holding nothing
            old = parent / f".{self.path.name}.{tag}.old"
            os.rename(self.path, old)
            os.rename(new, self.path)
            _remove(old)
        else:
            os.rename(new, self.path)
        self.existing = True

    def _new_record(self, new: Path, **extra: Any) -> None:
        _group(new / META, "w").attrs.update(
            {"run": asdict(self.identity), "run_hash": self.identity.hash, "format": FORMAT,
             "complete": False, **extra})

    def _update_record(self, **attrs: Any) -> None:
        _group(self.path / META, "r+").attrs.update(attrs)

    def sweep(self) -> None:
        """Delete the temporary files of writes a killed run left unfinished."""
        for p in self.path.rglob("*.partial"):
            _remove(p)

    @property
    def complete(self) -> bool:
        """Whether the run finished (its data may still have been damaged since)."""
        return bool(_record(self.path).get("complete", False))

    def mark_incomplete(self) -> None:
        """Before a repair: the store is not complete until it is finished again."""
        if self.complete:
            self._update_record(complete=False)

    def _finish(self, **attrs: Any) -> None:
        """Consolidate the metadata, then mark the run complete: the last write."""
        import zarr

        with _quiet_zarr():
            zarr.consolidate_metadata(str(self.path))
        self._update_record(complete=True, **attrs)

    def _damage(self, what: str) -> StoreDamaged:
        run = _record(self.path).get("run", {})
        return StoreDamaged(f"{self.path}: {what}; recompute it with "
                            f"'{_resume_hint(self.path, run)}'")

    def read(self) -> xr.Dataset:
        """The complete store, every checksum verified, loaded into memory."""
        raise NotImplementedError


def _scenario_vars(ds: xr.Dataset) -> list[str]:
    return sorted(str(k) for k, v in ds.variables.items()
                  if "scenario" in v.dims and k != "scenario")


def _read_array(a: Any, lo: int | None = None, hi: int | None = None) -> np.ndarray | None:
    """Rows ``lo:hi`` of a zarr array; None if a chunk cannot be decoded."""
    try:
        return np.asarray(a[lo:hi])
    except Exception:  # a truncated or altered chunk
        return None


class ResultStore(Store):
    """Per-scenario results, one zarr chunk per block along ``scenario``."""

    content = "results"

    def __init__(self, path: Path, identity: RunIdentity) -> None:
        super().__init__(path, identity)
        self._cache: dict[str, Any] | None = None

    @property
    def n_blocks(self) -> int:
        return -(-self.identity.scenarios // self.identity.block_size)

    def _rows(self, block: int) -> tuple[int, int]:
        lo = block * self.identity.block_size
        return lo, min(lo + self.identity.block_size, self.identity.scenarios)

    def _layout(self, template: xr.Dataset) -> xr.Dataset:
        """The run's Dataset with lazy per-scenario arrays (what a new store holds)."""
        import dask.array as da

        n, bs = self.identity.scenarios, self.identity.block_size
        data = {}
        for name in _scenario_vars(template):
            v = template[name].variable
            if v.dims[0] != "scenario":
                raise StoreError(f"variable {name}: scenario must be its first dimension")
            data[name] = (v.dims, da.zeros((n, *v.shape[1:]), dtype=v.dtype,
                                           chunks=(bs, *v.shape[1:])), v.attrs)
        lazy = template.drop_vars([*_scenario_vars(template), "scenario"]).assign(data)
        lazy = lazy.assign_coords(scenario=np.arange(n))
        lazy.attrs.update(template.attrs, scenarios=n)
        return lazy

    def create(self, template: xr.Dataset) -> None:
        """Create the store of a run labelled like ``template`` (one scenario is enough)."""
        names = _scenario_vars(template)

        def build(new: Path) -> None:
            with _quiet_zarr():
                self._layout(template).to_zarr(str(new), mode="w", compute=False,
                                               consolidated=False)
            root = _group(new)
            for k in names:
                a = root[k]
                if a.dtype != template[k].dtype or {"scale_factor", "add_offset"} & set(a.attrs):
                    raise StoreError(f"{self.path}: variable {k} would not be stored as it is")
            static = {k: checksum({k: np.asarray(root[k][...])}).hex()
                      for k in sorted(root.array_keys()) if k not in names}
            self._new_record(new, variables=names, static_checksums=static)
            _group(new / META, "r+").create_array(
                "block_checksum", shape=(self.n_blocks, len(names), MARKER_BYTES),
                dtype="uint8", chunks=(1, len(names), MARKER_BYTES), fill_value=0)

        self._create(build)

    def _arrays(self) -> dict[str, Any]:
        """The per-scenario zarr arrays, written and read directly (xarray's region
        writes cost a tenth of a second each; the stored values are the values:
        float64 with a NaN fill value, bool, int64, no scaling).
        """
        if self._cache is None:
            root = _group(self.path, "r+")
            self._cache = {k: root[k] for k in _record(self.path)["variables"]}
        return self._cache

    def _markers(self) -> np.ndarray:
        return np.asarray(_group(self.path / META)["block_checksum"][...])

    # -- verification -------------------------------------------------------
    def _block_damage(self, keep: bool = False) -> tuple[dict[str, list[int]],
                                                         dict[str, np.ndarray]]:
        """Blocks of each variable that are missing or differ from their checksum.

        With ``keep``, also the verified arrays (one read per variable).
        """
        marks = self._markers()
        names = _record(self.path)["variables"]
        arrays = self._arrays()

        def damaged(j: int, whole: np.ndarray | None) -> list[int]:
            out = []
            for b in range(self.n_blocks):
                lo, hi = self._rows(b)
                rows = whole[lo:hi] if whole is not None else _read_array(arrays[names[j]], lo, hi)
                if rows is None or checksum({names[j]: rows}) != marks[b, j].tobytes():
                    out.append(b)
            return out

        data: dict[str, np.ndarray] = {}
        # hash one variable while the next is read (hashlib and zarr release the GIL)
        with ThreadPoolExecutor(1) as pool:
            checks = []
            for j, name in enumerate(names):
                whole = _read_array(arrays[name])
                checks.append(pool.submit(damaged, j, whole))
                if keep and whole is not None:
                    data[name] = whole
            bad = {name: blocks for name, c in zip(names, checks, strict=True)
                   if (blocks := c.result())}
        return bad, data

    def _static_damage(self) -> list[str]:
        root = _group(self.path)
        bad = []
        for k, digest in _record(self.path)["static_checksums"].items():
            try:
                ok = checksum({k: np.asarray(root[k][...])}).hex() == digest
            except Exception:
                ok = False
            if not ok:
                bad.append(k)
        return bad

    def repair(self, template: xr.Dataset) -> np.ndarray:
        """Before a resumed run: rewrite damaged labels, return the intact blocks."""
        self.sweep()
        static = self._static_damage()
        bad, _ = self._block_damage()
        done = np.ones(self.n_blocks, np.bool_)
        for blocks in bad.values():
            done[blocks] = False
        if static or not done.all():
            self.mark_incomplete()
        if static:
            lazy = self._layout(template)
            root = _group(self.path, "r+")
            for k in static:
                root[k][...] = np.asarray(lazy[k].values)
            if self._static_damage():
                raise StoreError(f"--out {self.path}: cannot rewrite {', '.join(static)}; "
                                 "start over with --force")
        return done

    def read(self) -> xr.Dataset:
        rec = _record(self.path)
        static = self._static_damage()
        if static:
            raise self._damage(f"variable {static[0]} is missing or damaged (checksum differs)")
        bad, data = self._block_damage(keep=True)
        if bad:
            block, name = min((b, k) for k, blocks in bad.items() for b in blocks)
            lo, hi = self._rows(block)
            more = sum(map(len, bad.values())) - 1
            raise self._damage(
                f"block {block} (scenarios {lo}-{hi - 1}) of {name} is missing or damaged "
                f"(checksum differs){f', and {more} more' if more else ''}")
        with _quiet_zarr():
            ds = xr.open_zarr(str(self.path), consolidated=False)
        ds = ds.assign({k: ds[k].copy(data=data[k]) for k in rec["variables"]})
        return ds.load()

    # -- writing ------------------------------------------------------------
    def write_blocks(self, blocks: list[tuple[int, int, xr.Dataset]]) -> None:
        """Write consecutive labelled blocks ``(block, first row, dataset)``, then mark them.

        One write per array for all of them (a zarr write call costs
        milliseconds); the checksums go last, so that a block is only marked
        intact when its data are. (A block rewritten after damage keeps its
        old checksums meanwhile: they are those of the same data.)
        """
        if not blocks:
            return
        arrays = self._arrays()
        first = blocks[0][0]
        for i, (b, _, _) in enumerate(blocks):
            if b != first + i:
                raise ValueError("write_blocks needs consecutive blocks")
        values = [{k: ds[k].values for k in arrays} for _, _, ds in blocks]
        lo = blocks[0][1]
        hi = blocks[-1][1] + blocks[-1][2].sizes["scenario"]
        for k, a in arrays.items():
            a[lo:hi] = np.concatenate([v[k] for v in values])
        marks = np.array([[np.frombuffer(checksum({k: v[k]}), np.uint8) for k in arrays]
                          for v in values])
        _group(self.path / META, "r+")["block_checksum"][first:first + len(blocks)] = marks

    def finish(self) -> None:
        """Consolidate and mark the run complete."""
        self._finish()

    def open_dataset(self) -> xr.Dataset:
        """The results (lazy, dask-backed; not verified: see :meth:`read`)."""
        with _quiet_zarr():
            return xr.open_zarr(str(self.path), consolidated=False)


class SummaryStore(Store):
    """Snapshots of a streaming run's accumulator, then its summary."""

    content = "summary"

    def create(self, config_source: str) -> None:
        """Create an empty store for snapshots (of a run of the config at ``config_source``)."""

        def build(new: Path) -> None:
            _group(new, "w").attrs.update(config_source=config_source)
            self._new_record(new, state=None, state_checksum=None)

        self._create(build)

    def load_state(self) -> dict[str, np.ndarray] | None:
        """The last complete snapshot, verified; None if there is none (or it is damaged).

        Snapshots a killed run left half-written or undeleted are deleted.
        """
        self.sweep()
        rec = _record(self.path)
        name = rec.get("state")
        for old in (self.path / META).glob("state-*"):
            if old.name != name:
                _remove(old)
        if not name:
            return None
        try:
            group = _group(self.path / META / name)
            state = {k: np.asarray(group[k][...]) for k in group.array_keys()}
        except Exception:  # a damaged snapshot: start over
            return None
        if checksum(state).hex() != rec.get("state_checksum"):
            return None
        return state

    def save_state(self, state: dict[str, np.ndarray]) -> None:
        """Write a snapshot, then point to it, then delete the previous one."""
        old = _record(self.path).get("state")
        counter = int(old.rsplit("-", 1)[1]) + 1 if old else 1
        name = f"state-{counter:06d}"
        group = _group(self.path / META / name, "w")
        for key, arr in state.items():
            a = np.asarray(arr)
            # about 8 MB a chunk (a tail row of a long run is a chunk of its own)
            rows = max(1, (1 << 20) // max(1, int(np.prod(a.shape[1:], dtype=np.int64))))
            chunk = (max(1, min(a.shape[0], rows)), *a.shape[1:])
            z = group.create_array(key, shape=a.shape, dtype=a.dtype, chunks=chunk)
            if a.size:
                z[...] = a
        self._update_record(state=name, state_checksum=checksum(state).hex())
        if old:
            _remove(self.path / META / old)

    def finish(self, summary: xr.Dataset, state: dict[str, np.ndarray]) -> None:
        """Save the final ``state``, write the ``summary`` into the root, mark complete.

        A run killed while writing the summary is finished again from the
        final state, simulating nothing.
        """
        if checksum(state).hex() != _record(self.path).get("state_checksum"):
            self.save_state(state)
        root = _group(self.path, "r+")
        for k in list(root.array_keys()):  # left by a finish that was killed
            del root[k]
        with _quiet_zarr():
            summary.to_zarr(str(self.path), mode="a", consolidated=False)
        root = _group(self.path)
        sums = {k: checksum({k: np.asarray(root[k][...])}).hex()
                for k in sorted(root.array_keys())}
        self._finish(summary_checksums=sums)

    def read(self) -> xr.Dataset:
        sums = _record(self.path).get("summary_checksums", {})
        root = _group(self.path)
        for k, digest in sums.items():
            try:
                ok = checksum({k: np.asarray(root[k][...])}).hex() == digest
            except Exception:
                ok = False
            if not ok:
                raise self._damage(f"variable {k} is missing or damaged (checksum differs)")
        with _quiet_zarr():
            return xr.load_dataset(str(self.path), engine="zarr", consolidated=False)


def read_store(path: str | Path) -> xr.Dataset:
    """Load a complete store (results or a streaming summary), every checksum verified.

    Raises
    ------
    StoreError
        If ``path`` is not a lobsim store, or its run did not finish
        (:class:`StoreDamaged` if data are missing or damaged: the message
        gives the ``--resume`` command that recomputes them).
    """
    path = Path(path)
    rec = _record(path)
    run = rec.get("run", {})
    if rec.get("format") != FORMAT:
        raise StoreError(f"{path}: written by an earlier lobsim (store format "
                         f"{rec.get('format', 1)}), whose blocks cannot be verified; make it "
                         "again with 'lobsim run ... --force'")
    if not rec.get("complete"):
        raise StoreError(f"{path}: the run did not finish ({run.get('content', '?')} of "
                         f"{run.get('scenarios', '?')} scenarios); finish it with "
                         f"'{_resume_hint(path, run)}'")
    kind = SummaryStore if run.get("content") == "summary" else ResultStore
    store = kind(path, RunIdentity(**run))
    try:
        return store.read()
    except StoreError:
        raise
    except Exception as exc:  # unreadable metadata
        raise StoreError(f"{path}: unreadable ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
