"""Output paths of the command line: checked before any work starts, results written atomically.

Every command that writes (``run --out``, ``calibrate --out``, ``backtest
--out``, ``report --out``, ``maturity --plot``) calls :func:`check_output` on
each path first, so that a mistake costs one line (exit status 2) instead of
a finished simulation; missing folders are created when the output is
written, after the work.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lobsim.errors import UsageError

if TYPE_CHECKING:
    import xarray as xr


def check_output(path: Path, option: str, *, force: bool = False, folder: bool = False) -> None:
    """Refuse, with one line, an output ``path`` that cannot be written.

    A file (``folder`` False) must not be a folder, and must not exist
    unless ``force``; a ``folder`` may exist (the caller checks the files it
    writes in it). The nearest existing folder at or above the output must
    accept a new file (tried: permission bits do not tell root, nor a
    read-only or virtual file system, what it may write).

    Raises
    ------
    UsageError
        Naming ``option``, the path and what to do.
    """
    where = f"{option} {path}"
    try:
        exists = path.exists()
        if exists and folder and not path.is_dir():
            raise UsageError(f"{where}: exists and is not a directory; remove it or choose another "
                             "name")
        if exists and not folder and path.is_dir():
            raise UsageError(f"{where}: is a directory; give a file name")
        if exists and not folder and not force:
            raise UsageError(f"{where}: the file exists; pass --force to overwrite it")
        base = path if exists and folder else path.parent
        while not base.exists():  # missing folders are created when the output is written
            base = base.parent
        if not base.is_dir():
            raise UsageError(f"{where}: {base} is not a directory")
    except OSError as exc:  # a folder on the way that cannot be searched
        raise UsageError(f"{where}: cannot reach it ({exc.strerror or exc})") from None
    probe = base / f".lobsim-probe-{uuid.uuid4().hex}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{where}: cannot create a file in {base} "
                         f"({exc.strerror or exc})") from None


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` atomically: a temporary file beside it, then a rename.

    An interrupted or failed write leaves ``path`` as it was (absent, or the
    file ``--force`` was replacing), never a truncated netCDF.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
