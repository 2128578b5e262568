"""``lobsim export``: tidy tables as CSV files and one workbook (issue 17, docs/export.md).

The summary tables must carry the numbers of ``lobsim summary --json``
exactly (they are flattened from it), the cash flows must add up across
bonds and departments, and the files read back to the same numbers.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from lobsim.analysis.setaside import compute_set_asides
from lobsim.analysis.summary import summarize
from lobsim.analysis.tidy import TABLE_NAMES, build_tables, column_units, summary_column
from lobsim.cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "lobsim: error: "


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The issue's Done-when: ``lobsim run configs/basket_demo.toml --out b.nc`` (2000 scenarios)."""
    d = tmp_path_factory.mktemp("export")
    out = d / "b.nc"
    assert main(["run", str(ROOT / "configs" / "basket_demo.toml"), "--scenarios", "2000",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def results(run):
    return xr.load_dataset(run)


@pytest.fixture(scope="module")
def tables(results, run):
    return {t.name: t for t in build_tables(summarize(results), results, source=str(run),
                                            exported_at="2026-01-01T00:00:00+00:00")}


def _summary_json(path: Path, capsys) -> dict:
    capsys.readouterr()
    assert main(["summary", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _records(columns: list, rows: list) -> list[dict]:
    return [dict(zip(columns, r, strict=True)) for r in rows]


def _expected_cells(doc_rows: dict) -> dict[tuple[str, str], float | None]:
    """(id, column) -> value of every statistic of a summary --json group."""
    out = {}
    for key, row in doc_rows.items():
        for stat, value in row.items():
            if isinstance(value, dict):
                out.update({(key, summary_column(stat, k)): v for k, v in value.items()})
            else:
                out[(key, summary_column(stat))] = value
    return out


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_the_workbook_reads_back_with_the_numbers_of_summary_json(run, tmp_path, capsys):
    from openpyxl import load_workbook

    folder = tmp_path / "x"
    assert main(["export", str(run), "--to", str(folder), "--xlsx"]) == 0
    wb = load_workbook(folder / "b.xlsx")
    assert wb.sheetnames == list(TABLE_NAMES)
    doc = _summary_json(run, capsys)
    for sheet, group in (("bonds", "bonds"), ("baskets", "baskets"), ("tranches", "tranches"),
                         ("holdings", "holdings")):
        ws = wb[sheet]
        assert ws.freeze_panes == "B2"  # header row (and the id column) frozen
        values = list(ws.values)
        got = {(r[0], c): v for r in values[1:] for c, v in zip(values[0], r, strict=True)}
        want = _expected_cells(doc[group])
        assert want, sheet
        for cell, v in want.items():
            assert got[cell] == v, (sheet, cell)  # exactly: a float round trip
            assert v is None or isinstance(got[cell], float)  # numbers, not text
        assert len(values) - 1 == len(doc[group])


def test_every_csv_table_is_written_and_reads_back_equal(run, tables, tmp_path):
    folder = tmp_path / "csv"
    assert main(["export", str(run), "--to", str(folder), "--csv"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.csv" for n in TABLE_NAMES)
    for name in TABLE_NAMES:
        header, rows = _read_csv(folder / f"{name}.csv")
        table = tables[name]
        assert header == table.columns, name
        if name == "provenance":
            continue  # its export time differs
        assert len(rows) == len(table.rows), name
        for got, want in zip(rows, table.rows, strict=True):
            for g, w in zip(got, want, strict=True):
                if w is None:
                    assert g == ""
                elif isinstance(w, float):
                    assert float(g) == w  # repr round-trips exactly
                else:
                    assert g == str(w)
    contents = {r[0]: r for r in _read_csv(folder / "contents.csv")[1]}
    assert set(contents) == set(TABLE_NAMES) - {"contents", "columns"}
    assert int(contents["bonds"][1]) == 60 and "GBP" in contents["bonds"][3]


def test_cash_flows_add_up_over_bonds_and_departments(tables, results):
    bonds = _records(tables["bond_cashflows"].columns, tables["bond_cashflows"].rows)
    by_dep = _records(tables["bond_department_cashflows"].columns,
                      tables["bond_department_cashflows"].rows)
    deps = _records(tables["department_cashflows"].columns, tables["department_cashflows"].rows)
    assert bonds and by_dep and deps
    # summed over bonds: each department's expected payment of the year
    for d in deps:
        total = sum(r["expected_payment_gbp"] for r in by_dep
                    if (r["department"], r["year"]) == (d["department"], d["year"]))
        assert total == pytest.approx(d["expected_payment_gbp"], rel=1e-9, abs=1e-6)
    # summed over departments: what the state pays for the bond (investor payment + premiums)
    for b in bonds:
        total = sum(r["expected_payment_gbp"] for r in by_dep
                    if (r["bond"], r["year"]) == (b["bond"], b["year"]))
        assert total == pytest.approx(b["expected_state_payment_gbp"], rel=1e-9, abs=1e-6)
        assert b["expected_agency_premium_gbp"] >= -1e-6 * max(1.0, total)
    # summed over years: the bond's expected investor payment
    mean = results.investor_payment.mean("scenario")
    for bond in results.bond.values.tolist():
        total = sum(r["expected_investor_payment_gbp"] for r in bonds if r["bond"] == bond)
        assert total == pytest.approx(float(mean.sel(bond=bond)), rel=1e-9, abs=1e-6)
    # the bonds paying at several dates are split into several years
    dated = set(results.payment_bond.values.tolist())
    assert dated and all(sum(r["bond"] == b for r in bonds) > 1 for b in dated)


def test_set_asides_are_those_of_lobsim_setaside(tables, results):
    deps = _records(tables["department_cashflows"].columns, tables["department_cashflows"].rows)
    for level, col in ((0.95, "set_aside_95"), (0.99, "set_aside_99")):
        s = compute_set_asides(results, level)
        for r in deps:
            i, j = s.departments.index(r["department"]), s.years.index(r["year"])
            assert r[f"{col}_gbp"] == s.book[i, j]
            assert (r[f"{col}_low_gbp"], r[f"{col}_high_gbp"]) == (s.book_low[i, j],
                                                                   s.book_high[i, j])


def test_control_groups_are_the_fitted_donors_and_weights(tables, results):
    rows = _records(tables["control_groups"].columns, tables["control_groups"].rows)
    for b, bond in enumerate(results.bond.values.tolist()):
        mine = [r for r in rows if r["bond"] == bond]
        donors = [str(a) for a in results.control_donor.values[b] if str(a)]
        if not donors:  # a verified outcome (a rate card): one row without donor
            assert [(r["donor_area"], r["weight"]) for r in mine] == [(None, None)]
            continue
        assert sorted(r["donor_area"] for r in mine) == sorted(donors)
        assert sum(r["weight"] for r in mine) == pytest.approx(1.0, abs=1e-9)
        weights = [r["weight"] for r in mine]
        assert weights == sorted(weights, reverse=True)  # ranked by weight
        assert [r["donor_rank"] for r in mine] == list(range(1, len(mine) + 1))
        assert all(r["rmspe_log_points"] == float(results.rmspe.values[b]) for r in mine)


def test_column_names_carry_units(tables):
    assert summary_column("expected_provider_shortfall") == "expected_provider_shortfall_units"
    assert summary_column("expected_provider_shortfall_value") == "expected_provider_shortfall_gbp"
    assert summary_column("probability_pays_more_than_saves") == "p_pays_more_than_saves"
    assert summary_column("multiple_quantile", "0.01") == "multiple_q01"
    assert summary_column("loss_es_se", "0.99") == "loss_es_99_se_gbp"
    for name in ("bond_cashflows", "department_cashflows", "bonds", "baskets"):
        money = [c for c in tables[name].columns if column_units(c) == "GBP"]
        assert len(money) >= 4, name
    bonds = tables["bonds"].columns
    assert {"p_default", "expected_loss_gbp", "loss_es_99_gbp", "expected_overpayment_gbp",
            "rmspe_log_points", "irr_q05"} <= set(bonds)


def test_existing_files_need_force(run, tmp_path, capsys):
    folder = tmp_path / "f"
    assert main(["export", str(run), "--to", str(folder), "--csv"]) == 0
    before = (folder / "bonds.csv").read_text()
    (folder / "bonds.csv").write_text("stale")
    capsys.readouterr()
    assert main(["export", str(run), "--to", str(folder), "--csv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(PREFIX) and err.count("\n") == 1 and "--force" in err
    assert (folder / "bonds.csv").read_text() == "stale"  # refused before anything was written
    assert main(["export", str(run), "--to", str(folder), "--csv", "--force"]) == 0
    assert (folder / "bonds.csv").read_text() == before


@pytest.mark.parametrize("make", ["config", "missing", "text"])
def test_a_file_that_is_not_results_is_one_line(tmp_path, capsys, make):
    path = {"config": ROOT / "configs" / "birmingham_jsa.toml", "missing": tmp_path / "no.nc",
            "text": tmp_path / "t.nc"}[make]
    if make == "text":
        path.write_text("not netcdf")
    assert main(["export", str(path), "--to", str(tmp_path / "out"), "--csv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(PREFIX) and err.count("\n") == 1 and str(path) in err
    assert not (tmp_path / "out").exists()


def test_csv_and_xlsx_are_exclusive_and_one_is_needed(run, tmp_path, capsys):
    for extra in ([], ["--csv", "--xlsx"]):
        with pytest.raises(SystemExit) as exc:
            main(["export", str(run), "--to", str(tmp_path), *extra])
        assert exc.value.code == 2
    capsys.readouterr()


def test_a_stream_summary_exports_what_it_holds(tmp_path, capsys):
    store = tmp_path / "s.zarr"
    assert main(["run", str(ROOT / "configs" / "birmingham_jsa.toml"), "--scenarios", "2000",
                 "--stream", "--out", str(store), "--quiet"]) == 0
    folder = tmp_path / "x"
    assert main(["export", str(store), "--to", str(folder), "--csv"]) == 0
    contents = {r[0]: r for r in _read_csv(folder / "contents.csv")[1]}
    assert contents["bond_cashflows"][1] == "0" and "--stream" in contents["bond_cashflows"][2]
    assert int(contents["department_cashflows"][1]) > 0
    header, rows = _read_csv(folder / "control_groups.csv")
    assert rows and math.isclose(sum(float(r[header.index("weight")]) for r in rows), 1.0)
    header, rows = _read_csv(folder / "bonds.csv")
    doc = _summary_json(store, capsys)
    want = _expected_cells(doc["bonds"])
    got = {(r[0], c): v for r in rows for c, v in zip(header, r, strict=True)}
    for cell, v in want.items():
        assert got[cell] == ("" if v is None else repr(v)), cell
    assert np.isfinite([float(x) for x in rows[0][1:] if x]).all()
