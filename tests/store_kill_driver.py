"""Kill a real ``lobsim run --out X.zarr`` at every write point of its store.

Run by tests/test_store_safety.py as a child interpreter::

    python tests/store_kill_driver.py SPECS.json RESULTS.json

SPECS: a list of ``{"workdir": DIR, "store": "x.zarr", "initial": DIR or null,
"argv": [...], "resume": [...], "profile": "ci" or "full"}`` (the first may
say ``"warm": {"config": PATH, "scenarios": N}``). Every case starts in a
fresh folder (a copy of ``initial``, or empty) and runs
``lobsim.cli.commands.main(argv)`` there in a forked child (lobsim imported and its
world built once, here).

1. **Enumerate** the write points: a child runs ``argv`` with every file
   system mutation recorded: ``open`` for writing, ``os.replace``,
   ``rename``, ``link``, ``unlink``, ``rmdir``, ``mkdir`` (what zarr's
   atomic writes, ``shutil.rmtree`` and ``pathlib`` call), on paths in the
   case folder, from any thread (but a ``mkdir`` of an existing folder,
   which changes nothing). A mutation's *point* is the lobsim call stack of
   the main thread at that moment (zarr's I/O threads write while the main
   thread waits in the store call that asked for it), so every call site in
   the store code, reached by any path, is a point of its own; nothing is
   listed by hand. Mutations inside a hidden sibling folder (a store being
   built, before it is renamed into place) change nothing a reader sees: they
   are one point, named by the outermost store call.
2. **Kill** at each point: a fresh child kills itself with SIGKILL at the
   point's first mutation, or (profile "full") at every mutation, each
   primitive a point of its own: just after a file is opened for writing
   (an empty or truncated file: a torn write) or just before the other
   mutations.
3. **Resume**: a child runs ``resume`` (``argv`` with ``--resume``), then
   reads the store with :func:`lobsim.scale.store.read_store` (every checksum
   verified) and digests every variable, values and attributes.

RESULTS: per spec ``{"reference": digest, "points": [...]}``: the uninterrupted
run's digest, and per point how the first child ended (``-9``: killed),
the resume's exit status, the digest and any temporary files left behind.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import os
import shutil
import signal
import sys
import threading
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import lobsim
from lobsim.cli.commands import main

LOBSIM = str(Path(lobsim.__file__).resolve().parent)
_PATH_CALLS = ("replace", "rename", "link", "unlink", "remove", "rmdir", "mkdir")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Hooks:
    """File system mutations under ``root``, recorded or counted to a kill."""

    def __init__(self, root: Path, target: tuple[str, int] | None = None,
                 by_primitive: bool = False) -> None:
        self.root = str(root.resolve())
        self.target = target
        self.by_primitive = by_primitive
        self.events: list[str] = []
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.main = threading.main_thread().ident

    def point(self, primitive: str, hidden: bool) -> str:
        frame: Any = sys._current_frames().get(self.main)
        stack = []
        while frame is not None:
            code = frame.f_code
            if code.co_filename.startswith(LOBSIM):
                rel = os.path.relpath(code.co_filename, LOBSIM)
                stack.append(f"{rel}:{code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        if hidden and not self.by_primitive:
            # a folder nobody reads yet: its mutations are one point, the outermost store call
            store = [i for i, f in enumerate(stack) if f.startswith("scale/store.py:")]
            stack = ["(hidden folder)", *stack[store[-1]:]] if store else stack
        where = " < ".join(stack or ["?"])
        return f"{primitive} @ {where}" if self.by_primitive else where

    def _abs(self, path: Any, dir_fd: int | None) -> str:
        p = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
        if dir_fd is not None and not os.path.isabs(p):
            p = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), p)
        return os.path.abspath(p)

    def event(self, primitive: str, *paths: str) -> None:
        """A mutation of ``paths`` (absolute; a rename's source and destination)."""
        if not any(p.startswith(self.root) for p in paths):
            return
        if primitive == "mkdir" and os.path.isdir(paths[0]):
            return  # changes nothing
        # in a store being made or replaced (a hidden sibling) only
        hidden = all(os.path.relpath(p, self.root).startswith(".") for p in paths)
        key = self.point(primitive, hidden)
        with self.lock:
            self.events.append(key)
            self.counts[key] += 1
            hit = self.target is not None and self.target == (key, self.counts[key])
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self) -> None:
        for name in _PATH_CALLS:
            orig = getattr(os, name)

            def wrapped(*args: Any, _orig: Any = orig, _name: str = name, **kw: Any) -> Any:
                paths = [self._abs(args[0] if args else kw.get("path", kw.get("src")),
                                   kw.get("dir_fd", kw.get("src_dir_fd")))]
                if _name in ("replace", "rename", "link"):
                    paths.append(self._abs(args[1] if len(args) > 1 else kw.get("dst"),
                                           kw.get("dst_dir_fd")))
                self.event(_name, *paths)
                return _orig(*args, **kw)

            setattr(os, name, wrapped)
        orig_open, orig_os_open = io.open, os.open

        def opened(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
            f = orig_open(file, mode, *args, **kw)
            if any(c in mode for c in "wax+") and not isinstance(file, int):
                self.event("open-write", self._abs(file, None))
            return f

        def os_opened(path: Any, flags: int, *args: Any, **kw: Any) -> int:
            fd = orig_os_open(path, flags, *args, **kw)
            if flags & _WRITE_FLAGS:
                self.event("open-write", self._abs(path, kw.get("dir_fd")))
            return fd

        io.open = builtins.open = opened  # type: ignore[assignment]
        os.open = os_opened  # type: ignore[assignment]


def child(case: Path, argv: list[str], log: str, hooks: Hooks | None = None,
          store: str | None = None) -> int:
    """Run ``main(argv)`` in a forked child in ``case``; its exit status (-9: killed).

    With ``store``, the child then writes the store's :func:`digest` to
    ``digest.json`` (an error if a reader refuses it).
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            fd = os.open(case / log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(case)
            if hooks is not None:
                hooks.install()
            code = main(argv)
            if hooks is not None and hooks.target is None:
                (case / "events.json").write_text(json.dumps(hooks.events))
            if store is not None and code == 0:
                try:
                    d = digest(case / store)
                except Exception as exc:
                    d = {"error": f"{type(exc).__name__}: {exc}"}
                (case / "digest.json").write_text(json.dumps(d))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def digest(store: Path) -> dict[str, str]:
    """Digest of every variable of the store as :func:`read_store` reads it (values, attrs)."""
    import numpy as np

    from lobsim.scale.store import read_store

    ds = read_store(store)
    d = {"attrs": json.dumps(ds.attrs, sort_keys=True, default=str)}
    for name, v in ds.variables.items():
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([v.dims, str(v.dtype), v.attrs], sort_keys=True, default=str).encode())
        a = np.asarray(v.values)
        h.update(a.tobytes() if a.dtype.kind in "biuf" else
                 "\0".join(map(str, a.ravel().tolist())).encode())
        d[str(name)] = h.hexdigest()
    return d


def litter(case: Path, store: str) -> list[str]:
    """Temporary files and folders a run left in the case folder."""
    left = [p.name for p in case.iterdir() if p.name.startswith(f".{store}.")]
    left += [str(p.relative_to(case)) for p in (case / store).rglob("*.partial")]
    return sorted(left)


def fresh(workdir: Path, name: str, initial: str | None) -> Path:
    case = workdir / name
    if initial:
        shutil.copytree(initial, case, symlinks=True)
    else:
        case.mkdir(parents=True)
    return case


def run(spec: dict[str, Any]) -> dict[str, Any]:
    workdir, store = Path(spec["workdir"]), spec["store"]
    full = spec.get("profile") == "full"
    ref = fresh(workdir, "reference", spec["initial"])
    status = child(ref, spec["argv"], "run.log", Hooks(ref, by_primitive=full), store)
    if status != 0:
        raise SystemExit(f"the uninterrupted run failed ({status}): {(ref / 'run.log').read_text()}")
    events = json.loads((ref / "events.json").read_text())
    result: dict[str, Any] = {"reference": json.loads((ref / "digest.json").read_text()),
                              "events": len(events), "points": []}
    for key, count in sorted(Counter(events).items()):
        # every mutation in the full profile; else each point's first
        for k in range(1, count + 1) if full else (1,):
            case = fresh(workdir, f"case{len(result['points']):04d}", spec["initial"])
            killed = child(case, spec["argv"], "run.log", Hooks(case, (key, k), full))
            resumed = child(case, spec["resume"], "resume.log", store=store)
            result["points"].append({
                "point": key, "occurrence": k, "of": count, "killed": killed,
                "resume_exit": resumed, "resume_log": (case / "resume.log").read_text()[-2000:],
                "digest": (json.loads((case / "digest.json").read_text())
                           if (case / "digest.json").exists() else {}),
                "litter": litter(case, store)})
            shutil.rmtree(case)
    return result


if __name__ == "__main__":
    specs = json.loads(Path(sys.argv[1]).read_text())
    warm = specs[0].get("warm")
    if warm:  # numba's compiled kernels and the world, built once before any fork
        from lobsim import load_config
        from lobsim.scale.runner import run as run_lobsim

        run_lobsim(load_config(warm["config"]), scenarios=warm["scenarios"], threads=1)
    Path(sys.argv[2]).write_text(json.dumps([run(spec) for spec in specs]))
