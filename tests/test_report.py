"""``lobsim report``: the files it writes, its errors, and the page as a browser shows it."""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from lobsim import load_config
from lobsim.analysis import stats
from lobsim.analysis.summary import summarize, summary_dict
from lobsim.cli.commands import main
from lobsim.report import decision
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


def _table(page: str, start: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (cell texts) of the first table at or after ``start`` in ``page``."""
    at = page.index(start)
    body = page[page.index("<table", at):page.index("</table>", at)]
    head = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", body)]
    rows = [[html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("</thead>")[-1])]
    return head, rows


def _one_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lobsim: error: ")
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


#: figures of runs with a pooled basket only (the basket demo has none)
POOLED_FIGURES = ("measurement_noise",)
DEMO_FIGURES = tuple(f for f in FIGURE_NAMES if f not in POOLED_FIGURES)


def test_report_writes_every_figure_and_the_page(report_dir):
    # the basket demo has baskets, tranches and several departments: every figure type
    # but a pooled basket's (test_pooled.py)
    for name in DEMO_FIGURES:
        assert (report_dir / f"{name}.png").read_bytes()[:8] == PNG, name
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # self-contained: every image is embedded, nothing is fetched or run
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == len(DEMO_FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    for s, name in zip(sources, DEMO_FIGURES, strict=True):
        embedded = base64.b64decode(s.split(",", 1)[1])
        assert embedded == (report_dir / f"{name}.png").read_bytes()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # decision, departments' set-asides, terms, set-asides, control groups, departments,
    # baskets, tranches, bonds, provenance
    assert page.count("<table") == 10
    assert "north_east_11-jsa" in page and "north/senior" in page and "DWP" in page
    cfg = load_config(BASKET_DEMO)
    assert cfg.hash in page
    assert "<pre>" in page and "[[bonds]]" in page


def test_report_tables_quote_the_summary(results, report_dir):
    ds = xr.load_dataset(results)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    pd = float((ds.investor_payment.sel(bond="north_east_11-jsa")
                < ds.principal.sel(bond="north_east_11-jsa")).mean())
    head, rows = _table(page, "<h2 id='bonds'>")
    row = next(r for r in rows if r[0] == "north_east_11-jsa")
    assert row[1] == f"{float(ds.principal.sel(bond='north_east_11-jsa')):,.0f}"
    assert float(row[2].split("%")[0]) == pytest.approx(100 * pd, abs=0.006)
    # the provider's columns of the CLI's table, labelled as the provider's, money in GBP
    assert head[-3:] == ["provider's P(shortfall)", "provider's E[shortfall] (units)",
                         "provider's E[shortfall] value (GBP)"]
    assert "principal (GBP)" in head and "ES99 loss (% of principal)" in head
    s = summarize(ds).sel(bond="north_east_11-jsa")
    assert row[-1] == f"{float(s.expected_provider_shortfall_value):,.0f}"
    assert row[-2] == f"{float(s.expected_provider_shortfall):,.1f}"


def _decision_rows(ds: xr.Dataset) -> dict[str, list[str]]:
    """The decision table's expected cells, from summary_dict with the report's formatters."""
    d = summary_dict(summarize(ds))
    n = ds.sizes["scenario"]
    out = {}
    for kind, group, principals in (("basket", d["baskets"], ds.basket_principal),
                                    ("bond", d["bonds"], ds.principal)):
        for key, v in group.items():
            principal = float(principals.sel({kind: key}))
            p, se = v["default_probability"], v["default_probability_se"]
            lo, hi = stats.probability_interval(p, se, n)
            snr = v["signal_to_noise" if kind == "bond" else "lowest_signal_to_noise"]
            snr = math.inf if snr is None else snr  # summary_dict writes infinity as null
            if kind == "bond":
                mde = v["minimum_detectable_effect_share"]
            else:  # the basket's noisiest: its bonds' largest MDE share
                members = ds.bond.values[ds.basket_member.sel(basket=key).values.astype(bool)]
                mde = max(d["bonds"][str(b)]["minimum_detectable_effect_share"] for b in members)
            out[key] = [key, kind, decision.money(principal), decision.interval(p, lo, hi),
                        decision.multiple(v["mean_multiple"]),
                        decision.share(v["expected_loss"], principal),
                        decision.share(v["loss_es"]["0.99"], principal), decision.ratio(snr),
                        decision.mde_share(mde),
                        decision.money(v["expected_overpayment"]),
                        decision.money(v["expected_provider_shortfall_value"])]
    return out


def test_decision_table_leads_and_quotes_the_summary(results, report_dir):
    ds = xr.load_dataset(results)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # the first element after the title, and the first table of the page
    assert re.search(r"</h1>\s*<table id='decision'>", page)
    assert page.index("<table") == page.index("<table id='decision'>")
    head, rows = _table(page, "<table id='decision'>")
    assert head == list(decision.DECISION_HEAD)
    want = _decision_rows(ds)
    assert [r[0] for r in rows] == [*ds.basket.values.tolist(), *ds.bond.values.tolist()]
    for r in rows:
        flag = r.pop(9)
        assert r == want[r[0]]
        snr = float(r[7].replace("∞", "inf"))
        assert (decision.NOISE_FLAG.split("is ")[1] in flag) == (snr < 1.0), r
    # the demo has noise-dominated bonds, and the flag says so in plain words
    assert any(r[1] == "bond" and r[9] == decision.NOISE_FLAG
               for r in _table(page, "<table id='decision'>")[1])
    # each paying department's 99% set-aside, on the first screen too
    _, depts = _table(page, "<table id='decision-departments'>")
    assert {r[0] for r in depts} == {"DWP", "DH", "MoJ", "DfE", "CLG"} & {
        str(d) for d, p in zip(ds.department.values, ds.department_payment.values.any(axis=(0, 2)),
                               strict=True) if p}
    # then the term sheet, the set-asides and the control groups, in that order
    at = [page.index(f"id='{k}'") for k in ("decision", "terms", "set-asides", "control-groups",
                                            "bonds")]
    assert at == sorted(at)


def test_one_uncertainty_convention(report_dir, bham_report):
    for page in ((report_dir / "report.html").read_text(encoding="utf-8"),
                 (bham_report / "report.html").read_text(encoding="utf-8")):
        assert page.count(html.escape(decision.CONVENTION)) == 1
        assert page.count("95% intervals") == 1  # stated once
        for old in ("± se", "±2 se", "2 se", "Monte Carlo error bars"):
            assert old not in page


def test_control_groups_list_the_results_donors(results, report_dir):
    ds = xr.load_dataset(results)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    head, rows = _table(page, "<h2 id='control-groups'>")
    assert head == list(decision.CONTROL_HEAD)
    assert [r[0] for r in rows] == ds.bond.values.tolist()
    for i, r in enumerate(rows):
        donors = [str(a) for a in ds.control_donor.values[i]]
        weights = ds.control_weight.values[i]
        if not any(donors):  # a rate card (verified outcomes): no control group
            assert r[1:] == ["verified outcomes: no control group", "", "n/a"]
            continue
        listed = {a: float(w) for a, w in (x.rsplit(" ", 1) for x in r[1].split(", "))}
        assert listed == pytest.approx({a: round(float(w), 3) for a, w in
                                        zip(donors, weights, strict=True) if w > 0})
        assert r[3] == f"{float(ds.rmspe.values[i]):.4f}"
    # the control-fit figure sits in that section
    assert page.index("id='control-groups'") < page.index("id='control_fit'") < page.index(
        "id='bonds'")


@pytest.fixture(scope="module")
def bham_report(bham_results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bham_report") / "r"
    assert main(["report", str(bham_results), "--out", str(out)]) == 0
    return out


def test_one_bond_report_has_terms_and_no_repeated_figures(bham_report):
    page = (bham_report / "report.html").read_text(encoding="utf-8")
    _, rows = _table(page, "<table id='decision'>")
    assert [r[:2] for r in rows] == [["all", "basket"], ["bham-jsa", "bond"]]
    # its one-bond basket would draw the bond's figures again
    assert "default_probability_baskets" not in page and "returns_baskets" not in page
    # the Appendix's terms (docs/model.md section 2): price 2,340, principal 10,000,000,
    # break-even 2000 / 2340 = 85.47% of the target
    head, terms = _table(page, "<h2 id='terms'>")
    row = dict(zip(head, terms[0], strict=True))
    assert row["price per unit (GBP)"] == "2,340"
    assert row["principal (GBP)"] == "10,000,000"
    assert row["cap (units)"] == "5,000"
    assert row["break-even success"] == "85.47% of target"
    # its control group: equal weights on 5 donors, named in the legend's figure's table
    _, groups = _table(page, "<h2 id='control-groups'>")
    assert groups[0][2] == "5 of 5"


def test_report_of_one_bond_and_overwriting(bham_results, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(bham_results), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    # one bond in a one-bond basket: no tranches, no contributions to split, and no
    # basket figures that would repeat the bond's
    assert names == {"report.html", "default_probability_bonds.png", "returns_bonds.png",
                     "department_payments.png", "control_fit.png"}
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


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


#: Measures the page as laid out in the window: the decision tables' boxes at once,
#: the images once they are decoded (on load); written into the DOM for --dump-dom.
_MEASURE = """<script>
(function () {
  function box(id) {
    var e = document.getElementById(id);
    if (!e) return null;
    var r = e.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  }
  var table = document.getElementById('decision');
  var out = {viewport: [window.innerWidth, window.innerHeight], decision: box('decision'),
             departments: box('decision-departments'),
             decision_width: table ? [table.scrollWidth, table.clientWidth] : null};
  var pre = document.createElement('pre');
  pre.id = 'lobsim-measure';
  function write() { pre.textContent = JSON.stringify(out); }
  write();
  document.body.appendChild(pre);
  window.addEventListener('load', function () {
    out.images = Array.prototype.map.call(document.images, function (i) {
      return i.complete && i.naturalWidth > 0; });
    write();
  });
})();
</script>"""


def measure(page: Path, tmp: Path, width: int = 1280, height: int = 900) -> dict:
    """Lay ``page`` out in headless Chromium at ``width x height``; return :data:`_MEASURE`'s."""
    probe = tmp / "measured.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"),
                     encoding="utf-8")
    proc = _chromium(tmp / "profile-measure", f"--window-size={width},{height}", "--dump-dom",
                     probe.as_uri())
    found = re.search(r"<pre id=\"lobsim-measure\">(.*?)</pre>", proc.stdout, re.S)
    assert found is not None, proc.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))


def render(page: Path, screenshot: Path, profile: Path, height: int = 6000) -> list[str]:
    """Render ``page`` in headless Chromium to ``screenshot``; return its console messages.

    With ``--enable-logging=stderr`` Chromium logs every console message of the
    page (``console.error``, uncaught exceptions, failed resource loads) as a
    ``:CONSOLE`` line. The background-networking flags keep it from waiting on
    a closed network; a fresh profile keeps runs independent.
    """
    proc = _chromium(profile, f"--window-size=1280,{height}", f"--screenshot={screenshot}",
                     page.as_uri())
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
    # ...and every figure was decoded
    images = measure(report_dir / "report.html", tmp_path)["images"]
    assert len(images) == len(DEMO_FIGURES) and all(images)


@needs_chromium
@pytest.mark.parametrize("size", [(1280, 900), (1920, 1080)])
def test_decision_table_is_on_the_first_screen(report_dir, tmp_path, size):
    # issue 17's done-when: the basket demo's report (60 bonds, 7 baskets) opens on its
    # decision table, the whole of it (it scrolls in its own box) inside the first screen
    m = measure(report_dir / "report.html", tmp_path, *size)
    # the page's viewport: the window less the browser's own bars, as on a desk
    width, height = m["viewport"]
    assert width == size[0] and 0.75 * size[1] <= height <= size[1]
    box = m["decision"]
    assert 0 <= box["top"] < box["bottom"] <= height, box
    assert 0 <= box["left"] < box["right"] <= width, box
    # every column is in view: the table scrolls down, never sideways
    scroll, client = m["decision_width"]
    assert scroll <= client, m
    # the departments' set-asides start on it too
    assert m["departments"]["top"] < height, m


@needs_chromium
def test_first_screen_check_can_fail(report_dir, tmp_path):
    # the same measure on a window too small for the title and the table sees it overflow
    m = measure(report_dir / "report.html", tmp_path, 1280, 120)
    assert m["decision"]["bottom"] > m["viewport"][1]


def test_basket_sums_of_the_summary(results):
    # summarize's basket statistics that the decision table reads: expectations add, so a
    # basket's E[overpayment] is the mean of its bonds' summed overpayment per scenario
    ds = xr.load_dataset(results)
    s = summarize(ds)
    member = ds.basket_member.values.astype(bool)
    for k, m in enumerate(member):
        over = ds.overpayment.values[:, m].sum(axis=1).mean()
        assert float(s.basket_expected_overpayment[k]) == pytest.approx(over, rel=1e-9)
        value = (ds.provider_shortfall.values[:, m] * ds.price_per_unit.values[m]).sum(axis=1)
        assert float(s.basket_expected_provider_shortfall_value[k]) == pytest.approx(
            value.mean(), rel=1e-9)
        assert float(s.basket_lowest_signal_to_noise[k]) == s.signal_to_noise.values[m].min()
