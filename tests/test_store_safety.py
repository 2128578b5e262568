"""Crash-safe stores, verified reads and checked results files.

References: the protocol in the lobsim.scale.store docstring (every state change
of a store is one atomic step, ``complete`` the last write; a checksum per
block and variable, verified by every reader) and the layout and value
ranges of lobsim.scale.results; docs/scale.md ("Checkpoint and resume"). Blocks
draw from ``block_generator(seed, block)`` (docs/model.md section 9.4), so a
block simulated again is bit-identical: every comparison here is exact.

The kill-injection test runs tests/store_kill_driver.py, which enumerates
the store's write points from a real run and SIGKILLs a real ``lobsim run``
at each. ``LOBSIM_KILL_PROFILE=full`` kills at every file-system mutation
instead of each point's first (about 2,200 kills, two hours on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import lobsim.scale.runner
from lobsim import load_config, simulate, summarize
from lobsim.cli.commands import main
from lobsim.scale.results import (
    RESULTS_LAYOUT,
    SUMMARY_LAYOUT,
    ResultsError,
    check_results,
    open_results,
)
from lobsim.scale.runner import run
from lobsim.scale.store import StoreError, read_store
from store_kill_driver import digest

ROOT = Path(__file__).resolve().parents[1]
DRIVER = Path(__file__).with_name("store_kill_driver.py")
PROFILE = os.environ.get("LOBSIM_KILL_PROFILE", "ci")
N, BLOCK = 1000, 256  # four blocks, the last one short
READERS = ("summary", "setaside", "report")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("stores")


@pytest.fixture(scope="module")
def bham(work) -> Path:
    """configs/birmingham_jsa.toml in blocks of 256 scenarios."""
    text = (ROOT / "configs" / "birmingham_jsa.toml").read_text(encoding="utf-8")
    assert "block_size = 4096" in text
    path = work / "bham.toml"
    path.write_text(text.replace("block_size = 4096", f"block_size = {BLOCK}"), encoding="utf-8")
    return path


def _args(config: Path, store: Path | str, *extra: str) -> list[str]:
    return ["run", str(config), "--scenarios", str(N), "--out", str(store), "--threads", "1",
            "--quiet", *extra]


STREAM = ("--stream", "--checkpoint-interval", "0")  # a snapshot after every task


@pytest.fixture(scope="module")
def stores(work, bham) -> dict[str, Path]:
    """Complete stores of an uninterrupted run: results and --stream."""
    out = {"results": work / "intact" / "x.zarr", "stream": work / "intact-stream" / "x.zarr"}
    assert main(_args(bham, out["results"], "--chunk-size", str(2 * BLOCK))) == 0
    assert main(_args(bham, out["stream"], "--chunk-size", str(BLOCK), *STREAM)) == 0
    return out


def test_stores_hold_the_uninterrupted_results(stores, bham):
    cfg = load_config(bham)
    xr.testing.assert_identical(read_store(stores["results"]), simulate(cfg, scenarios=N))
    xr.testing.assert_identical(read_store(stores["stream"]),
                                run(cfg, scenarios=N, stream=True, threads=1))


# ---------------------------------------------------------------------------
# Damage
# ---------------------------------------------------------------------------
def _chunk(store: Path, var: str, block: int = 0) -> Path:
    """The file of ``var``'s chunk ``block`` along its first dimension."""
    files = sorted(p for p in (store / var / "c" / str(block)).rglob("*") if p.is_file())
    if not files and (store / var / "c" / str(block)).is_file():
        return store / var / "c" / str(block)
    assert files, f"{var} has no chunk {block}"
    return files[0]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _damage_results(store: Path) -> None:
    """A deleted chunk, a changed byte in a block and in a label, a stray temporary file."""
    _chunk(store, "investor_payment", 1).unlink()
    _flip(_chunk(store, "department_payment", 2))
    _flip(_chunk(store, "principal"))
    (store / "irr" / "zarr.0123abcd.partial").write_bytes(b"half")


def _damage_stream(store: Path) -> None:
    _chunk(store, "loss_es").unlink()
    _flip(_chunk(store, "department_payment_mean"))
    (store / "_lobsim" / "zarr.0123abcd.partial").write_bytes(b"half")


def _copy(src: Path, dst: Path) -> Path:
    if dst.parent.exists():
        shutil.rmtree(dst.parent)
    shutil.copytree(src.parent, dst.parent)
    return dst


def _one_line(capsys: Any, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lobsim: error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def _record_tasks(monkeypatch: Any, name: str) -> list[int]:
    done: list[int] = []
    task = getattr(lobsim.scale.runner, name)

    def recording(spec: Any, blocks: tuple[int, ...], *rest: Any) -> Any:
        done.extend(blocks)
        return task(spec, blocks, *rest)

    monkeypatch.setattr(lobsim.scale.runner, name, recording)
    return done


def test_a_damaged_results_store_is_refused_then_repaired_block_by_block(
        stores, bham, work, capsys, monkeypatch):
    store = _copy(stores["results"], work / "damaged" / "x.zarr")
    _damage_results(store)
    for reader in READERS:
        extra = ["--out", str(work / "report")] if reader == "report" else []
        assert main([reader, str(store), *extra]) == 2
        # the label first (the blocks are only read once the labels are intact)
        _one_line(capsys, str(store), "variable principal is missing or damaged",
                  f"'lobsim run {bham} --scenarios {N} --seed ", f"--out {store} --resume'")
    with pytest.raises(StoreError, match="principal"):
        read_store(store)
    shutil.copy(_chunk(stores["results"], "principal"), _chunk(store, "principal"))
    assert main(["summary", str(store)]) == 2
    _one_line(capsys, f"{store}: block 1 (scenarios 256-511) of investor_payment is missing or "
                      "damaged (checksum differs), and 1 more; recompute it with 'lobsim run ")
    _flip(_chunk(store, "principal"))

    done = _record_tasks(monkeypatch, "task_outputs")
    assert main(_args(bham, store, "--resume")) == 0
    assert sorted(done) == [1, 2]  # exactly the damaged blocks
    xr.testing.assert_identical(read_store(store), read_store(stores["results"]))
    assert not list(store.rglob("*.partial"))
    done.clear()
    assert main(_args(bham, store, "--resume")) == 0  # complete and intact: nothing to do
    assert done == []
    assert main(["summary", str(store)]) == 0


def test_a_damaged_stream_store_is_refused_then_finished_again(stores, bham, work, capsys,
                                                               monkeypatch):
    store = _copy(stores["stream"], work / "damaged-stream" / "x.zarr")
    _damage_stream(store)
    assert main(["summary", str(store)]) == 2
    _one_line(capsys, str(store), "is missing or damaged (checksum differs)", "--stream",
              f"--out {store} --resume'")
    done = _record_tasks(monkeypatch, "task_stream")
    assert main(_args(bham, store, "--resume", *STREAM)) == 0
    assert done == []  # the summary is recomputed from the final state: nothing simulated
    xr.testing.assert_identical(read_store(store), read_store(stores["stream"]))

    # a damaged snapshot too: the run starts over, and ends the same
    _damage_stream(store)
    meta = store / "_lobsim"
    (state,) = [p for p in meta.iterdir() if p.name.startswith("state-")]
    _flip(_chunk(state, "sum1"))
    assert main(_args(bham, store, "--resume", *STREAM)) == 0
    assert sorted(done) == [0, 1, 2, 3]
    xr.testing.assert_identical(read_store(store), read_store(stores["stream"]))
    assert not list(store.rglob("*.partial"))


def test_a_folder_left_by_a_killed_creation_is_resumed_without_force(stores, bham, work,
                                                                      capsys):
    case = work / "creation"
    # an empty folder; the root group an earlier lobsim wrote before its record
    for name, content in (("empty.zarr", None), ("group.zarr", '{"zarr_format": 3, '
                                                '"node_type": "group", "attributes": {}}')):
        store = case / name
        store.mkdir(parents=True)
        if content:
            (store / "zarr.json").write_text(content)
        assert main(_args(bham, store, "--chunk-size", str(2 * BLOCK))) == 2
        _one_line(capsys, "the store exists; pass --resume")
        assert main(_args(bham, store, "--resume")) == 0
        assert digest(store) == digest(stores["results"])
    # a folder with data that is not a lobsim store is never replaced without --force
    foreign = case / "foreign.zarr"
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_zarr(foreign, consolidated=False)
    before = sorted(p.relative_to(foreign) for p in foreign.rglob("*"))
    assert main(_args(bham, foreign, "--resume")) == 2
    _one_line(capsys, "not a lobsim checkpoint store", "--force")
    assert sorted(p.relative_to(foreign) for p in foreign.rglob("*")) == before
    assert main(["summary", str(foreign)]) == 2
    _one_line(capsys, f"{foreign}: not a lobsim store (no readable _lobsim record)")


def test_force_keeps_the_old_store_until_the_new_one_exists(stores, bham, work, monkeypatch):
    store = _copy(stores["results"], work / "forced" / "x.zarr")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", fail)
    with pytest.raises(OSError, match="disk full"):
        main(_args(bham, store, "--force", "--seed", "7"))
    assert digest(store) == digest(stores["results"])
    assert [p.name for p in store.parent.iterdir()] == ["x.zarr"]  # the half-made one is gone
    monkeypatch.undo()
    assert main(_args(bham, store, "--force", "--seed", "7")) == 0
    assert read_store(store).attrs["seed"] == 7
    assert sorted(p.name for p in store.parent.iterdir()) == ["x.zarr"]


def test_a_store_of_an_earlier_format_is_refused(stores, bham, work, capsys):
    import zarr

    store = _copy(stores["results"], work / "format1" / "x.zarr")
    meta = zarr.open_group(str(store / "_lobsim"), mode="r+", use_consolidated=False)
    del meta.attrs["format"]  # as an earlier lobsim wrote it
    meta.attrs["initialized"] = True
    assert main(["summary", str(store)]) == 2
    _one_line(capsys, "written by an earlier lobsim (store format 1)")
    assert main(_args(bham, store, "--resume")) == 2
    _one_line(capsys, "written by an earlier lobsim (store format 1)", "--force")


# ---------------------------------------------------------------------------
# Kill injection: every write point of the store code, results and --stream
# ---------------------------------------------------------------------------
#: (name, initial store maker, argv) of each phase: fresh runs, and the repair
#: of a damaged complete store (whose own write points a fresh run never reaches).
PHASES = ("results", "stream", "results repair", "stream repair")


@pytest.fixture(scope="module")
def killed(stores, bham, work) -> dict[str, Any]:
    initial = {"results repair": _copy(stores["results"], work / "kill-init-r" / "x.zarr"),
               "stream repair": _copy(stores["stream"], work / "kill-init-s" / "x.zarr")}
    _damage_results(initial["results repair"])
    _damage_stream(initial["stream repair"])
    specs = []
    for phase in PHASES:
        stream = STREAM if "stream" in phase else ()
        fresh = _args(bham, "x.zarr", "--chunk-size", str((1 if stream else 2) * BLOCK), *stream)
        resume = _args(bham, "x.zarr", "--resume", *stream)
        specs.append({"workdir": str(work / f"kill {phase}"), "store": "x.zarr",
                      "initial": str(initial[phase].parent) if phase in initial else None,
                      "argv": resume if phase in initial else fresh, "resume": resume,
                      "profile": PROFILE})
    specs[0]["warm"] = {"config": str(bham), "scenarios": 300}
    (work / "specs.json").write_text(json.dumps(specs))
    proc = subprocess.run([sys.executable, str(DRIVER), str(work / "specs.json"),
                           str(work / "kills.json")], capture_output=True, text=True,
                          timeout=None if PROFILE == "full" else 1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(zip(PHASES, json.loads((work / "kills.json").read_text()), strict=True))


#: Steps of the protocol each phase must have reached (a floor, not the list:
#: the points are the call stacks the driver recorded).
STEPS = {"results": {"create", "_create", "write_blocks", "_finish"},
         "stream": {"create", "save_state", "finish", "_finish"},
         "results repair": {"sweep", "mark_incomplete", "repair", "write_blocks", "_finish"},
         "stream repair": {"sweep", "mark_incomplete", "finish", "_finish"}}


@pytest.mark.parametrize("phase", PHASES)
def test_a_kill_at_any_write_point_resumes_to_the_uninterrupted_store(killed, stores, phase):
    result = killed[phase]
    intact = digest(stores["stream" if "stream" in phase else "results"])
    assert result["reference"] == intact  # the uninterrupted run (or repair) in the driver
    points = result["points"]
    reached = {frame.split(":")[1] for p in points for frame in p["point"].split(" < ")
               if frame.startswith("scale/store.py:")}
    assert STEPS[phase] <= reached, STEPS[phase] - reached
    for p in points:
        where = f"{p['point']} (mutation {p['occurrence']} of {p['of']})"
        assert p["killed"] == -9, f"not killed at {where}"
        assert p["resume_exit"] == 0, f"{where}: {p['resume_log']}"
        assert p["digest"] == intact, f"{where}: " + str(
            p["digest"].get("error") or sorted(k for k in intact if p["digest"].get(k) != intact[k]))
        assert p["litter"] == [], f"{where}: {p['litter']}"
    print(f"{phase}: {len(points)} kills at {len({p['point'] for p in points})} points "
          f"({result['events']} mutations in an uninterrupted run)")


# ---------------------------------------------------------------------------
# Results files: layout and values
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_results() -> xr.Dataset:
    """configs/basket_demo.toml: tranches, holdings and dated payments."""
    return simulate(load_config(ROOT / "configs" / "basket_demo.toml"), scenarios=64)


def test_the_layout_is_what_lobsim_writes(demo_results, stores):
    ds = demo_results
    for dim, group in RESULTS_LAYOUT.items():
        assert dim is None or dim in ds.dims
        for name, dims in group.items():
            assert ds[name].dims == dims, name
    assert check_results(ds, "demo.nc") is ds
    for summary in (summarize(ds), read_store(stores["stream"])):
        for name, dims in SUMMARY_LAYOUT.items():
            assert summary[name].dims == dims, name
        assert check_results(summary, "summary.nc") is summary


@pytest.fixture(scope="module")
def nc_files(work, bham) -> dict[str, Path]:
    out = {"results": work / "nc" / "r.nc", "summary": work / "nc" / "s.nc"}
    assert main(["run", str(bham), "--scenarios", "300", "--out", str(out["results"]),
                 "--quiet"]) == 0
    assert main(["run", str(bham), "--scenarios", "300", "--stream", "--out",
                 str(out["summary"]), "--quiet"]) == 0
    return out


def _tampered(nc_files: dict[str, Path], work: Path) -> list[tuple[str, Path, list[str]]]:
    """(case, file, fragments of the one-line error)."""
    d = work / "tampered"
    d.mkdir(exist_ok=True)
    ds = xr.load_dataset(nc_files["results"])
    cases = []

    def write(name: str, tampered: xr.Dataset, *fragments: str) -> None:
        tampered.to_netcdf(d / name)
        cases.append((name, d / name, list(fragments)))

    nan = ds.copy(deep=True)
    nan.investor_payment.values[3, 0] = np.nan
    write("nan.nc", nan, "investor_payment is nan at scenario 3, bond ",
          "payments are finite and non-negative")
    neg = ds.copy(deep=True)
    neg.department_payment.values[7, 0, 1] = -1.0
    write("negative.nc", neg, "department_payment is -1.0 at scenario 7, department ")
    inf = ds.copy(deep=True)
    inf.irr.values[5, 0] = np.inf
    write("inf.nc", inf, "irr is inf at scenario 5", "results are finite")
    principal = ds.copy(deep=True)
    principal.principal.values[0] = np.nan
    write("principal.nc", principal, "principal is nan at bond ")
    write("no_department_payment.nc", ds.drop_vars("department_payment"),
          "not a lobsim results file (no department_payment)")
    write("short.nc", ds.isel(scenario=slice(0, 200)),
          "holds 200 scenarios, not the 300 it was written with")
    write("dims.nc", ds.assign(irr=ds.irr.T), "irr has dimensions ('bond', 'scenario')")
    truncated = d / "truncated.nc"
    data = nc_files["results"].read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    cases.append(("truncated.nc", truncated, ["not a lobsim results file ("]))
    s = xr.load_dataset(nc_files["summary"])
    bad = s.copy(deep=True)
    bad.default_probability.values[0] = 1.5
    write("summary_probability.nc", bad, "default_probability is 1.5 at bond ",
          "probabilities lie in [0, 1]")
    return cases


def test_tampered_results_files_are_refused_by_every_reader(nc_files, work, capsys):
    for name, path, fragments in _tampered(nc_files, work):
        readers = ("summary",) if name.startswith("summary") else READERS
        for reader in readers:
            extra = ["--out", str(work / "report-nc")] if reader == "report" else []
            assert main([reader, str(path), *extra]) == 2, (name, reader)
            _one_line(capsys, str(path), *fragments)
        with pytest.raises(ResultsError):  # the Python API reads them the same way
            open_results(path)
    for path in nc_files.values():  # the intact files are read
        assert main(["summary", str(path)]) == 0
    capsys.readouterr()
