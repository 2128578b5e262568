"""One value everywhere: a quantity printed by several outputs is the same in each (issue 15).

On a plain and on an importance-sampled run of the basket demo, each basket's
ES99 of loss, the sum of its members' stand-alone ES99, its diversification
benefit and a bond's P(default) are compared across :func:`summarize`,
``summary --json``, the tables of ``lobsim run --contributions`` (and
``--importance-sampling``), risk contributions, the streaming summary of the
same run, ``setaside --json`` (the department quantile and mean it shares with
the summary) and the HTML report's table and caption (numbers parsed from the
text). Machine outputs (JSON, Datasets) must agree bit for bit; printed text
must be the same digits.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lobsim import load_config, summarize
from lobsim.analysis.risk import compare_tails, importance_sampled_run, risk_contributions
from lobsim.analysis.setaside import compute_set_asides
from lobsim.cli.commands import main
from lobsim.cli.output import write_netcdf
from lobsim.report.html import write_report
from lobsim.scale.runner import run

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "basket_demo.toml"
N, SEED, PILOT = 3000, 7, 1000


def _money(x: float) -> str:
    return f"{x:,.0f}"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _contribution_lines(text: str) -> dict[str, tuple[str, str, str]]:
    """Basket -> (ES, sum of stand-alone ES, benefit) as printed by format_contributions."""
    pat = re.compile(r"Risk contributions to basket (\S+) at 0\.99 .*\n  ES ([-\d,]+) GBP "
                     r"\(95% interval [^)]*\)\s+VaR [-\d,]+ GBP\s+sum of stand-alone ES "
                     r"([-\d,]+) GBP\s+diversification benefit ([-\d,]+) GBP")
    return {m[0]: (m[1], m[2], m[3]) for m in pat.findall(text)}


def _diversification_rows(text: str) -> dict[str, list[str]]:
    """Basket -> its cells in the Diversification table of ``lobsim run``."""
    table = text.split("\nDiversification\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {cells[0]: cells[1:] for cells in (line.split() for line in table)}


def _html_baskets(page: str) -> dict[str, tuple[str, str, str]]:
    """Basket -> (ES99, sum of stand-alone ES99, benefit) from the report's Baskets table."""
    table = page.split("<h2 id='baskets'>Baskets</h2>", 1)[1].split("</table>", 1)[0]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table):
        cells = [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
        if cells:
            out[cells[0]] = (cells[-3], cells[-2], cells[-1])
    return out


def _html_caption_benefit(page: str) -> tuple[str, str]:
    m = re.search(r"Risk contributions to basket (\S+?)<.*?diversification benefit \(([-\d,]+)\)",
                  page, re.S)
    assert m, "no risk-contribution caption"
    return m[1], m[2]


def _check_summary_json(doc: dict, s: xr.Dataset) -> None:
    for k in s.basket.values.tolist():
        row = doc["baskets"][k]
        v = s.sel(basket=k, level=0.99)
        assert row["loss_es"]["0.99"] == float(v.basket_loss_es)
        assert row["standalone_es_sum"]["0.99"] == float(v.basket_standalone_es_sum)
        assert row["diversification_benefit"]["0.99"] == float(v.basket_diversification_benefit)
    for b in s.bond.values.tolist():
        assert doc["bonds"][b]["default_probability"] == float(s.default_probability.sel(bond=b))


def _check_contributions(ds: xr.Dataset, s: xr.Dataset) -> dict[str, xr.Dataset]:
    out = {}
    for k in s.basket.values.tolist():
        c = risk_contributions(ds, k, 0.99)
        v = s.sel(basket=k, level=0.99)
        assert float(c.expected_shortfall) == float(v.basket_loss_es), k
        assert float(c.standalone_es_sum) == float(v.basket_standalone_es_sum), k
        assert float(c.diversification_benefit) == float(v.basket_diversification_benefit), k
        out[k] = c
    return out


def _check_report(ds: xr.Dataset, s: xr.Dataset, cfg, folder: Path) -> None:
    write_report(ds, cfg, folder, dpi=20)
    page = (folder / "report.html").read_text()
    rows = _html_baskets(page)
    for k in s.basket.values.tolist():
        v = s.sel(basket=k, level=0.99)
        assert rows[k] == (_money(float(v.basket_loss_es)),
                           _money(float(v.basket_standalone_es_sum)),
                           _money(float(v.basket_diversification_benefit))), k
    basket, benefit = _html_caption_benefit(page)
    assert benefit == rows[basket][2]


@pytest.fixture(scope="module")
def cfg():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def plain(cfg, tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "run.nc"
    from lobsim import simulate

    ds = simulate(cfg, scenarios=N, seed=SEED)
    write_netcdf(ds, path)
    return ds, path


def test_one_value_on_a_plain_run(cfg, plain, tmp_path, capsys):
    ds, path = plain
    s = summarize(ds)
    # the run's CLI tables: Baskets, Diversification, contributions
    text = _cli(capsys, "run", str(CONFIG), "--scenarios", str(N), "--seed", str(SEED),
                "--contributions")
    printed = _contribution_lines(text)
    for k in s.basket.values.tolist():
        v = s.sel(basket=k, level=0.99)
        es, alone, benefit = (_money(float(x)) for x in (
            v.basket_loss_es, v.basket_standalone_es_sum, v.basket_diversification_benefit))
        assert printed[k] == (es, alone, benefit), k
        if float(ds.basket_member.sel(basket=k).sum()) > 0:
            assert _diversification_rows(text)[k] == [es, alone, benefit], k
    # summary --json of the saved results
    _check_summary_json(json.loads(_cli(capsys, "summary", str(path), "--json")), s)
    # risk contributions
    _check_contributions(ds, s)
    # the streaming summary of the same run: bit for bit
    streamed = run(cfg, scenarios=N, seed=SEED, stream=True)
    for name in ("basket_loss_es", "basket_standalone_es_sum", "basket_diversification_benefit",
                 "loss_es", "loss_var", "default_probability", "basket_default_probability"):
        np.testing.assert_array_equal(streamed[name].values, s[name].values, err_msg=name)
    # setaside --json: the department quantile and mean it shares with the summary
    doc = json.loads(_cli(capsys, "setaside", str(path), "--json"))
    checked = 0
    for d, cell in doc["departments"].items():
        for y, row in cell["years"].items():
            v = s.sel(department=d, year=int(y))
            assert row["set_aside"] == float(
                v.department_payment_quantile.sel(department_quantile=0.99)), (d, y)
            assert row["expected_payment"] == float(v.department_payment_mean), (d, y)
            checked += 1
    assert checked
    # the HTML report's table and caption
    _check_report(ds, s, cfg, tmp_path / "report")


def test_one_value_on_an_importance_sampled_run(cfg, plain, tmp_path, capsys):
    ds, _ = plain
    _, tilted = importance_sampled_run(cfg, ds, pilot_scenarios=PILOT)
    assert np.any(tilted.log_weight.values != 0.0)
    s = summarize(tilted)
    # summarize weights the scenarios: it is not the unweighted summary of the same draws
    unweighted = summarize(tilted.drop_vars("log_weight"))
    assert not np.array_equal(s.basket_loss_es.values, unweighted.basket_loss_es.values)
    # the CLI's importance-sampling table and its contributions (on the tilted run)
    text = _cli(capsys, "run", str(CONFIG), "--scenarios", str(N), "--seed", str(SEED),
                "--importance-sampling", "--pilot-scenarios", str(PILOT), "--contributions")
    rows = compare_tails(ds, tilted, (0.99,))
    printed = _contribution_lines(text)
    for r in rows:
        v = s.sel(basket=r.basket, level=0.99)
        assert r.tilted.es == float(v.basket_loss_es), r.basket
        assert r.tilted.var == float(v.basket_loss_var), r.basket
        cells = [f"{0.99:.3f}", f"{r.tilted.var:,.0f}", f"{r.tilted.es:,.0f}"]
        assert any(line.split()[:4] == [r.basket, *cells] for line in text.splitlines()), r.basket
        assert printed[r.basket] == (_money(float(v.basket_loss_es)),
                                     _money(float(v.basket_standalone_es_sum)),
                                     _money(float(v.basket_diversification_benefit))), r.basket
    # summary --json of the tilted results
    path = tmp_path / "tilted.nc"
    write_netcdf(tilted, path)
    _check_summary_json(json.loads(_cli(capsys, "summary", str(path), "--json")), s)
    _check_contributions(tilted, s)
    # set-asides and streaming summaries refuse weighted scenarios, with a reason
    with pytest.raises(ValueError, match="importance-sampling weights"):
        compute_set_asides(tilted, 0.99)
    assert main(["setaside", str(path), "--json"]) != 0
    assert "importance-sampling" in capsys.readouterr().err
    _check_report(tilted, s, cfg, tmp_path / "report")
