"""plan.xlsx: a summary sheet plus one sheet per territory, whose totals equal territories.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from models import plan_excel, xlsx
from models.plan_excel import SUMMARY_SHEET, TOTAL_LABEL, sheet_names, write_plan_excel
from models.plan_io import write_plan
from tests.test_maps import custom_metric_plan, three_cities_plan


def _tables(sheet: openpyxl.worksheet.worksheet.Worksheet, first_column: str) -> tuple[pd.DataFrame, dict]:
    """The table whose header starts with ``first_column``, and its Total row (column -> value)."""
    rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
    start = next(i for i, row in enumerate(rows) if row[:1] == (first_column,))
    header = [c for c in rows[start] if c is not None]
    width = len(header)
    end = next(i for i in range(start + 1, len(rows)) if rows[i][:1] == (TOTAL_LABEL,))
    padded = [(row + (None,) * width)[:width] for row in rows[start + 1 : end + 1]]
    body = pd.DataFrame(padded[:-1], columns=header)
    return body, dict(zip(header, padded[-1], strict=True))


@pytest.mark.parametrize("make_plan", [three_cities_plan, custom_metric_plan], ids=["three_cities", "custom_metric"])
def test_totals_equal_territories_csv(make_plan, tmp_path: Path) -> None:
    plan = make_plan()
    folder = write_plan(plan, tmp_path / "plan", extra={"plan.xlsx": write_plan_excel})
    territories = pd.read_csv(folder / "territories.csv", dtype={"rep_id": str})
    workbook = openpyxl.load_workbook(folder / "plan.xlsx", read_only=True)
    assert workbook.sheetnames == [SUMMARY_SHEET, "R1 Ana Lima", "R2 Bruno Costa", "R3 Carla Reis"]

    summary, total = _tables(workbook[SUMMARY_SHEET], "rep_id")
    assert list(summary.columns) == list(territories.columns)
    pd.testing.assert_frame_equal(
        summary.astype(territories.dtypes.to_dict()), territories, check_exact=False, check_dtype=False
    )
    metrics = plan.metrics
    for metric in metrics:
        assert total[metric] == pytest.approx(territories[metric].sum())
        assert total[f"{metric}_target"] is None  # targets do not add up
    assert total["fte"] == pytest.approx(territories["fte"].sum())

    for name, row in zip(workbook.sheetnames[1:], territories.to_dict("records"), strict=True):
        accounts, account_total = _tables(workbook[name], "account_id")
        assert len(accounts) == row["accounts"]
        assert set(accounts["rep_id"]) == {row["rep_id"]}
        for metric in metrics:
            if metric != "accounts":
                assert account_total[metric] == pytest.approx(row[metric])
                assert accounts[metric].sum() == pytest.approx(row[metric])


def test_summary_sheet_holds_status_and_metric_figures(tmp_path: Path) -> None:
    path = write_plan_excel(tmp_path / "plan.xlsx", three_cities_plan())
    sheet = openpyxl.load_workbook(path)[SUMMARY_SHEET]
    facts = {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if row[0] is not None}
    assert facts["Scenario"] == "t" and facts["Status"] == "optimal" and facts["Accounts"] == 9
    assert facts["Accounts moved"] == 1
    rows = [row for row in sheet.iter_rows(values_only=True) if row[0] in ("accounts", "potential", "workload")]
    assert [r[0] for r in rows] == ["accounts", "potential", "workload"]
    assert rows[0][1] == 9 and rows[0][5] == 10  # total, tolerance
    assert [p.name for p in tmp_path.iterdir()] == ["plan.xlsx"]


def test_sheet_names_are_valid_and_unique() -> None:
    names = sheet_names(["R1 Ana", "R1 Ana", "a/b:c*d?[e]", "x" * 40, "x" * 40, "summary", ""])
    assert names[:3] == ["R1 Ana", "R1 Ana (2)", "a-b-c-d--e-"]
    assert names[3] == "x" * 31 and names[4] == "x" * 27 + " (2)"
    assert names[5] == "summary (2)"  # the summary sheet's name is taken, whatever the case
    assert names[6] == "Territory"
    assert len({n.lower() for n in names}) == len(names)


def test_territories_written_in_blocks_give_the_same_workbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Account rows are made a block of territories at a time; blocks of any size give the same cells."""
    plan = three_cities_plan()
    whole = write_plan_excel(tmp_path / "whole.xlsx", plan)
    monkeypatch.setattr(plan_excel, "BLOCK_ROWS", 3)
    blocks = write_plan_excel(tmp_path / "blocks.xlsx", plan)
    first, second = openpyxl.load_workbook(whole), openpyxl.load_workbook(blocks)
    assert first.sheetnames == second.sheetnames
    for name in first.sheetnames:
        cells = [[(c.value, c.number_format, c.font.b) for c in row] for row in first[name].iter_rows()]
        assert cells == [[(c.value, c.number_format, c.font.b) for c in row] for row in second[name].iter_rows()]
        assert first[name].freeze_panes == second[name].freeze_panes


def test_cells_keep_text_numbers_and_booleans(tmp_path: Path) -> None:
    """Text is escaped (``&``, ``<``, leading spaces kept), empty text and non-finite numbers leave the cell
    empty, numbers keep their display format, and the sheet name may hold ``&`` and quotes."""
    book = xlsx.Workbook(tmp_path / "cells.xlsx")
    bold, tenths = book.style(xlsx.CellStyle(bold=True)), book.style(xlsx.CellStyle("#,##0.0"))
    # a pyarrow-backed column in two chunks (as pandas makes by concatenating), written as one
    halves = [pd.Series(part, dtype="string[pyarrow]") for part in (["a & b <c>", " padded "], ["", None, "é ü 日本"])]
    texts = pd.concat(halves, ignore_index=True)
    rows = xlsx.row_text(np.arange(len(texts)) + 1)
    cells = [
        xlsx.text_cells(xlsx.text_of(texts), bold, 0, rows),
        xlsx.number_cells(np.array([1.5, np.nan, np.inf, 1e20, 0.1]), np.full(len(texts), tenths), 1, rows),
        xlsx.bool_cells(np.array([True, False, True, False, True]), np.array([0, 0, 0, 0, 1], dtype=bool), 0, 2, rows),
    ]
    sheet = xlsx.Sheet("R&D 'north'", freeze=(1, 0), widths={0: 12})
    sheet.skip()
    sheet.add(xlsx.joined_bytes(xlsx.row_xml(rows, cells)), len(texts), 3)
    book.write(sheet)
    book.close()
    read = openpyxl.load_workbook(tmp_path / "cells.xlsx")
    assert read.sheetnames == ["R&D 'north'"]
    values = [row for row in read.worksheets[0].iter_rows(values_only=True)]
    assert values == [
        (None, None, None),
        ("a & b <c>", 1.5, True),
        (" padded ", None, False),
        (None, None, True),
        (None, 1e20, False),
        ("é ü 日本", 0.1, None),
    ]
    assert read.worksheets[0]["B2"].number_format == "#,##0.0" and read.worksheets[0]["A2"].font.b
    assert read.worksheets[0].freeze_panes == "A2"
