"""Real area data shipped with lobsim: Greater Manchester ward claimant counts.

The bundled real universe (``lobsim/data/gm/``) holds the monthly claimant
count of the 215 electoral wards (2015 boundaries) of the ten Greater
Manchester local authorities, January 2015 to October 2017 (DWP via Nomis,
Open Government Licence v3.0; see ``lobsim/data/gm/README.md``). The published
file is kept verbatim in ``lobsim/data/gm/source/``; :func:`convert_gm` turns
it into lobsim's universe format and is the only way the converted files are
made (a test re-runs it on the shipped copy and compares bytes):

- ``areas.csv``: ``area,region,claimant_rate_2015,log_count_2015``. Areas are
  wards (id: the ward code ``wd15cd``), regions are local authorities (id:
  the authority's name). The covariates are 2015 means (the first twelve
  months), so they predate every placebo start the backtest uses and a donor
  choice never peeks at the period it is judged on.
- ``claimants_history.csv``: ``area,region,period,value``, monthly periods
  ``2015-01`` ... ``2017-10``, value = claimant count.
- ``wards.csv``: ``area,name,region,lad15cd``: ward names (not unique across
  authorities: ids are codes) and authority codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lobsim.errors import ConfigError
from lobsim.model.areas import csv_rows
from lobsim.model.config import PACKAGE_DATA_PREFIX

#: The published columns of the ward file.
GM_COLUMNS = ("date", "count", "rate", "wd15cd", "wd15nm", "lad15cd", "lad15nm")
#: Months whose means are the covariates (calendar 2015: before every placebo start).
COVARIATE_MONTHS = 12
#: The outcome id of the converted history.
GM_OUTCOME = "claimants"
#: Folder of the bundled Greater Manchester universe under ``lobsim/data``.
GM_DIR = "gm"


def package_data(name: str) -> Path:
    """Path of a data file shipped inside the package (``lobsim/data/<name>``)."""
    return Path(str(resources.files("lobsim") / "data" / name))


def resolve_data_path(value: str | Path) -> Path:
    """A user-given data path; ``lobsim:<name>`` names a file shipped in the package."""
    text = str(value)
    if text.startswith(PACKAGE_DATA_PREFIX):
        return package_data(text[len(PACKAGE_DATA_PREFIX):])
    return Path(text)


@dataclass(frozen=True)
class Ward:
    """One ward of the published file: ids, names and its monthly counts."""

    code: str
    name: str
    lad_code: str
    lad_name: str
    counts: dict[str, int]
    rates: dict[str, float]


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_gm` wrote and what it left out.

    Attributes
    ----------
    files : dict of str to Path
        The files written, by name.
    dropped : dict of str to str
        Ward code -> reason, for wards left out (wards with a zero count).
    periods : tuple of str
        The monthly periods, oldest first.
    """

    files: dict[str, Path]
    dropped: dict[str, str]
    periods: tuple[str, ...]


def read_gm_wards(path: str | Path) -> dict[str, Ward]:
    """Read the published ward file (``date,count,rate,wd15cd,wd15nm,lad15cd,lad15nm``).

    Raises
    ------
    ConfigError
        Naming the file and row of the first bad entry, or a ward with a
        missing month.
    """
    src = str(path)
    rows = csv_rows(path)
    if not rows or tuple(c.strip() for c in rows[0]) != GM_COLUMNS:
        raise ConfigError(f"the header must be {','.join(GM_COLUMNS)!r}", source=src,
                          path="row 1")
    wards: dict[str, Ward] = {}
    for r, row in enumerate(rows[1:]):
        where = f"row {r + 2}"
        if len(row) != len(GM_COLUMNS):
            raise ConfigError(f"has {len(row)} fields, expected {len(GM_COLUMNS)}",
                              source=src, path=where)
        date, count, rate, code, name, lad_code, lad_name = (c.strip() for c in row)
        if len(date) != 10 or date[4] != "-" or date[7] != "-" or not date.endswith("-01"):
            raise ConfigError(f"date must be the first of a month (YYYY-MM-01), got {date!r}",
                              source=src, path=where)
        try:
            n = int(count)
            x = float(rate)
        except ValueError:
            raise ConfigError(f"count and rate must be numbers, got {count!r}, {rate!r}",
                              source=src, path=where) from None
        if n < 0 or not math.isfinite(x) or x < 0.0:
            raise ConfigError(f"count and rate must not be negative, got {count!r}, {rate!r}",
                              source=src, path=where)
        ward = wards.setdefault(code, Ward(code, name, lad_code, lad_name, {}, {}))
        if (ward.name, ward.lad_code, ward.lad_name) != (name, lad_code, lad_name):
            raise ConfigError(f"ward {code!r} changes its name or authority", source=src,
                              path=where)
        period = date[:7]
        if period in ward.counts:
            raise ConfigError(f"ward {code!r} has two rows for {period}", source=src,
                              path=where)
        ward.counts[period] = n
        ward.rates[period] = x
    if not wards:
        raise ConfigError("lists no wards", source=src)
    periods = sorted({p for w in wards.values() for p in w.counts})
    for w in wards.values():
        if len(w.counts) != len(periods):
            gap = next(p for p in periods if p not in w.counts)
            raise ConfigError(f"ward {w.code!r} has no row for {gap}", source=src)
    return wards


def _write(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")


def convert_gm(source: str | Path, out_dir: str | Path) -> Conversion:
    """Convert the published Greater Manchester ward file to lobsim's universe format.

    Parameters
    ----------
    source : str or Path
        The published ``wards_monthly.csv`` (a verbatim copy ships in
        ``lobsim/data/gm/source/``).
    out_dir : str or Path
        Folder for ``areas.csv``, ``claimants_history.csv`` and ``wards.csv``
        (created if missing).

    Returns
    -------
    Conversion
        The files written, the wards dropped and why, and the periods.

    Notes
    -----
    Rows keep the published order of wards (by authority, then ward code);
    values are written as published (whole counts, rates to one decimal).
    A ward with a published count of 0 in any month is dropped: counts are
    rounded to the nearest 5, so a 0 means 0 to 2 claimants; the outcome model
    works on logs, and a relative measurement on two or fewer claimants cannot
    carry a target. (No ward of the January 2015 - October 2017 file has a
    zero: the smallest count is 20.) The covariates are means over the first
    :data:`COVARIATE_MONTHS` months: ``claimant_rate_2015`` (claimants per 100
    residents aged 16-64) and ``log_count_2015`` (mean log count, the ward's
    size on the outcome's own scale).
    """
    wards = read_gm_wards(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    periods = tuple(sorted({p for w in wards.values() for p in w.counts}))
    if len(periods) < COVARIATE_MONTHS:
        raise ConfigError(f"has {len(periods)} months; the covariates need the first "
                          f"{COVARIATE_MONTHS}", source=str(source))
    window = periods[:COVARIATE_MONTHS]
    dropped = {w.code: "a published count of 0 (0-2 claimants after rounding to 5)"
               for w in wards.values() if min(w.counts.values()) == 0}
    kept = [w for w in wards.values() if w.code not in dropped]
    areas = ["area,region,claimant_rate_2015,log_count_2015"]
    history = ["area,region,period,value"]
    names = ["area,name,region,lad15cd"]
    for w in kept:
        rate = math.fsum(w.rates[p] for p in window) / len(window)
        size = math.fsum(math.log(w.counts[p]) for p in window) / len(window)
        areas.append(f"{w.code},{w.lad_name},{rate:.4f},{size:.6f}")
        history += [f"{w.code},{w.lad_name},{p},{w.counts[p]}" for p in periods]
        quoted = f'"{w.name}"' if "," in w.name else w.name
        names.append(f"{w.code},{quoted},{w.lad_name},{w.lad_code}")
    files: dict[str, Path] = {}
    for name, lines in (("areas.csv", areas), (f"{GM_OUTCOME}_history.csv", history),
                        ("wards.csv", names)):
        _write(out / name, lines)
        files[name] = out / name
    return Conversion(files=files, dropped=dropped, periods=periods)


def ward_names(path: str | Path | None = None) -> dict[str, str]:
    """Ward code -> ward name, from ``wards.csv`` (default: the bundled one)."""
    path = package_data(f"{GM_DIR}/wards.csv") if path is None else Path(path)
    rows = csv_rows(path)
    header = [c.strip() for c in rows[0]] if rows else []
    if header != ["area", "name", "region", "lad15cd"]:
        raise ConfigError("the header must be 'area,name,region,lad15cd'", source=str(path),
                          path="row 1")
    return {row[0]: row[1] for row in rows[1:] if row}


if __name__ == "__main__":
    target = package_data(GM_DIR)
    result = convert_gm(target / "source" / "wards_monthly.csv", target)
    for file in result.files.values():
        print(f"wrote {file} ({file.stat().st_size:,} bytes)")
    for code, reason in result.dropped.items():
        print(f"dropped {code}: {reason}")
