"""``lobsim report``: the files it writes, its errors, and the page as a browser shows it."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from lobsim import load_config
from lobsim.cli.commands import main
from lobsim.report.html import FIGURE_NAMES

ROOT = Path(__file__).resolve().parents[1]
BASKET_DEMO = ROOT / "configs" / "basket_demo.toml"
SCENARIOS = 2000
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A saved basket-demo run (every figure type: baskets, tranches, departments)."""
    path = tmp_path_factory.mktemp("run") / "basket.nc"
    assert main(["run", str(BASKET_DEMO), "--scenarios", str(SCENARIOS), "--quiet",
                 "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def report_dir(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report"
    assert main(["report", str(results), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def bham_results(tmp_path_factory) -> Path:
    """A saved run of the Appendix bond: one bond, no tranches (a quick report)."""
    path = tmp_path_factory.mktemp("bham") / "bham.nc"
    assert main(["run", str(ROOT / "configs" / "birmingham_jsa.toml"), "--scenarios", "1000",
                 "--quiet", "--out", str(path)]) == 0
    return path


def _one_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lobsim: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def test_report_writes_every_figure_and_the_page(report_dir):
    # the basket demo has baskets, tranches and several departments: every figure type
    for name in FIGURE_NAMES:
        assert (report_dir / f"{name}.png").read_bytes()[:8] == PNG, name
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # self-contained: every image is embedded, nothing is fetched or run
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == len(FIGURE_NAMES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for s, name in zip(sources, FIGURE_NAMES, strict=True):
        embedded = base64.b64decode(s.split(",", 1)[1])
        assert embedded == (report_dir / f"{name}.png").read_bytes()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # key tables, provenance and the config as run
    assert page.count("<table") == 5  # provenance, bonds, baskets, tranches, departments
    assert "north_east_11-jsa" in page and "north/senior" in page and "DWP" in page
    cfg = load_config(BASKET_DEMO)
    assert cfg.hash in page
    assert "<pre>" in page and "[[bonds]]" in page


def test_report_tables_quote_the_summary(results, report_dir):
    ds = xr.load_dataset(results)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    pd = float((ds.investor_payment.sel(bond="north_east_11-jsa")
                < ds.principal.sel(bond="north_east_11-jsa")).mean())
    row = re.search(r"<tr><td>north_east_11-jsa</td><td>([\d.]+)% ± ", page)
    assert row is not None
    assert float(row.group(1)) == pytest.approx(100 * pd, abs=0.006)


def test_report_of_one_bond_and_overwriting(bham_results, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(bham_results), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    # one bond in a one-bond basket: no tranches, no contributions to split
    assert names == {"report.html", "default_probability_bonds.png",
                     "default_probability_baskets.png", "returns_bonds.png",
                     "returns_baskets.png", "department_payments.png", "control_fit.png"}
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"wrote {out / 'report.html'}"

    assert main(["report", str(bham_results), "--out", str(out)]) == 2
    _one_error(capsys, "report.html: the file exists; pass --force")
    stale = out / "tranche_losses.png"  # a figure this run does not make
    stale.write_bytes(PNG)
    before = (out / "report.html").stat().st_mtime_ns
    assert main(["report", str(bham_results), "--out", str(out), "--force"]) == 0
    assert (out / "report.html").stat().st_mtime_ns > before
    assert not stale.exists()


def test_report_bad_inputs_are_one_line_errors(bham_results, tmp_path, capsys):
    results = bham_results
    assert main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "missing.nc: no such results file")

    junk = tmp_path / "junk.nc"
    junk.write_text("not netcdf\n")
    assert main(["report", str(junk), "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "junk.nc: not a lobsim results file")

    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", np.arange(3.0))}).to_netcdf(other)
    assert main(["report", str(other), "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "other.nc: not a lobsim results file (no investor_payment")

    summary_only = tmp_path / "stream.zarr"
    assert main(["run", str(ROOT / "configs" / "birmingham_jsa.toml"), "--scenarios", "1000",
                 "--stream", "--quiet", "--out", str(summary_only)]) == 0
    assert main(["report", str(summary_only), "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "holds the statistics of a --stream run")

    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["report", str(results), "--out", str(afile)]) == 2
    _one_error(capsys, "exists and is not a directory")

    wrong = BASKET_DEMO
    assert main(["report", str(results), "--out", str(tmp_path / "o"), "--config",
                 str(wrong)]) == 2
    _one_error(capsys, "is not the config of", "config hash differs")

    moved = xr.load_dataset(results)
    moved.attrs["config_source"] = moved.attrs["config_path"] = str(tmp_path / "gone.toml")
    moved_path = tmp_path / "moved.nc"
    moved.to_netcdf(moved_path)
    assert main(["report", str(moved_path), "--out", str(tmp_path / "o")]) == 2
    _one_error(capsys, "gone.toml is not there; pass --config")
    # the config given explicitly is checked and used
    assert main(["report", str(moved_path), "--out", str(tmp_path / "o"), "--config",
                 str(ROOT / "configs" / "birmingham_jsa.toml")]) == 0
    assert (tmp_path / "o" / "report.html").is_file()


# --------------------------------------------------------------------------
# the page in a browser
# --------------------------------------------------------------------------
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                       "google-chrome")) if p), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run "
                             "installs it)")


def render(page: Path, screenshot: Path, profile: Path, height: int = 6000) -> list[str]:
    """Render ``page`` in headless Chromium to ``screenshot``; return its console messages.

    With ``--enable-logging=stderr`` Chromium logs every console message of the
    page (``console.error``, uncaught exceptions, failed resource loads) as a
    ``:CONSOLE`` line. The background-networking flags keep it from waiting on
    a closed network; a fresh profile keeps runs independent.
    """
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
           f"--window-size=1280,{height}", f"--screenshot={screenshot}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@needs_chromium
def test_console_errors_are_detected(tmp_path):
    # the check below can fail: a page with a script error is caught
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><link rel='icon' href='data:,'></head><body>"
                    "<p>x</p><script>console.error('boom'); notDefined();</script></body></html>")
    messages = render(page, tmp_path / "bad.png", tmp_path / "profile", height=400)
    assert any("boom" in m for m in messages)
    assert any("notDefined" in m for m in messages)


@needs_chromium
def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    shot = tmp_path / "report.png"
    messages = render(report_dir / "report.html", shot, tmp_path / "profile")
    assert messages == []
    img = imread(shot)  # float RGB(A) in [0, 1]
    assert img.shape[0] == 6000 and img.shape[1] == 1280
    rgb = img[..., :3]
    # not blank: text, tables and figures cover a good part of the page...
    assert np.mean(np.any(rgb < 0.9, axis=-1)) > 0.02
    # ...and the figures were decoded: the loss-red bars (#c0392b, drawn translucent)
    # are on the page; the text and tables have no red
    red = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.5) & (rgb[..., 2] < 0.5)
    assert red.sum() > 5000
