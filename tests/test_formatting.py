"""Numbers and names for people (:mod:`models.formatting`), terminal tables that fit, Excel display formats."""

from __future__ import annotations

import math
import re

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from models.formatting import cell, compact, excel_format, label, number, percent, plain, quantity, setting
from models.plan_excel import SUMMARY_SHEET, write_plan_excel
from territory.terminal_table import fit_table
from tests.test_maps import three_cities_plan

SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")
figures = st.floats(min_value=-1e13, max_value=1e13, allow_nan=False, allow_infinity=False)


def read_compact(text: str) -> float:
    """The number a compact figure stands for (``3.91 M`` -> 3910000)."""
    scale = {"k": 1e3, "M": 1e6, "bn": 1e9}
    head, _, suffix = text.partition(" ")
    return float(head.replace(",", "")) * scale.get(suffix, 1.0)


@given(figures)
def test_figures_are_never_scientific_and_compact_forms_keep_three_digits(value: float) -> None:
    for text in (number(value), number(value, 2), compact(value), plain(value), cell(value, "workload_km")):
        assert not SCIENTIFIC.search(text), text
    assert read_compact(compact(value)) == pytest.approx(value, rel=5e-3, abs=5e-3)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [(3_800_000, 50_000, "3.8 M"), (3_850_000, 50_000, "3.85 M"), (0.0, 1e6, "0"), (250, 50, "250"), (2.5, 0.5, "2.5")],
)
def test_ticks_read_differently_at_their_step(value: float, step: float, expected: str) -> None:
    assert compact(value, step=step) == expected


def test_missing_values_show_a_dash_or_nothing() -> None:
    for value in (None, float("nan"), math.inf, pd.NA, np.nan):
        assert number(value) == "\u2013"
        assert cell(value, "potential") in ("", "\u2013")
    assert cell(np.True_, "all_within_tolerance") == "yes" and cell(False, "x") == "no"


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("workload_km", "travel, workload-hour × km"),
        ("potential_max_deviation_pct", "potential worst deviation, %"),
        ("expected_revenue_tolerance_pct", "expected revenue tolerance, %"),
        ("accounts:rep_leaves", "accounts"),
        ("workload_target", "workload target"),
        ("mean_distance_km", "mean distance to home base, km"),
        ("balance.potential.tolerance_pct", "potential tolerance, %"),
        ("segment_rules.smb.penalty_km", "smb misfit penalty, km"),
        ("continuity.max_moved_accounts", "move budget, accounts"),
        ("solver.time_limit_s", "time limit, s"),
        ("some_new_column", "some new column"),
    ],
)
def test_labels_speak_the_planners_words(key: str, text: str) -> None:
    assert label(key).text == text


def test_settings_and_quantities_as_sentences() -> None:
    assert setting("balance.potential.tolerance_pct", 5) == "potential tolerance = 5 %"
    assert setting("balance.potential.tolerance_pct", 2.5) == "potential tolerance = 2.5 %"
    assert setting("team", "r010-leaves") == "team = r010-leaves"
    assert setting("continuity.max_moved_accounts", "none") == "move budget = none"
    assert quantity("workload_km", 3906012.4) == "travel = 3,906,012 workload-hour × km"
    assert percent(4.9166, signed=True) == "+4.9 %"


@pytest.mark.parametrize(
    ("key", "value", "cell_text", "excel"),
    [
        ("potential", 307000563.4, "307,000,563", "#,##0"),
        ("accounts", 2000, "2,000", "#,##0"),
        ("workload", 2076.0, "2,076.0", "#,##0.0"),
        ("mean_distance_km", 128.456, "128.5", "#,##0.0"),
        ("potential_deviation_pct", -4.8361, "-4.84", "#,##0.00"),
        ("tolerance_pct", 5.0, "5", "#,##0"),
        ("fte", 0.5, "0.50", "#,##0.00"),
        ("gap", 0.0025, "0.00", "0.00%"),
    ],
)
def test_pages_and_workbooks_show_a_column_alike(key: str, value: float, cell_text: str, excel: str) -> None:
    assert cell(value, key) == cell_text
    assert excel_format(key, value) == excel
    assert excel_format(key, "text") is None and excel_format(key, True) is None


def test_workbook_cells_keep_numbers_with_thousands_separators(tmp_path) -> None:
    sheet = openpyxl.load_workbook(write_plan_excel(tmp_path / "plan.xlsx", three_cities_plan()))[SUMMARY_SHEET]
    formats = {}
    header = None
    for row in sheet.iter_rows():
        if row[0].value == "rep_id":
            header = [c.value for c in row]
        elif header and row[0].value not in (None, "Total"):
            cells = dict(zip(header, row, strict=False))
            formats.update({h: c.number_format for h, c in cells.items() if c.value is not None})
            assert isinstance(cells["potential"].value, int | float)  # a number, not its text
    assert formats["potential"] == "#,##0" and formats["workload_km"] == "#,##0"
    assert formats["potential_deviation_pct"] == "#,##0.00" and formats["mean_distance_km"] == "#,##0.0"


@pytest.mark.parametrize("width", [80, 100, 64])
def test_terminal_tables_fit_their_width_with_every_figure_whole(width: int) -> None:
    frame = pd.DataFrame(
        {
            "metric": ["accounts", "potential", "workload"],
            "total": [2000, 307000563.4, 22872.2],
            "min": [70, 5748606.0, 1044.0],
            "max": [239, 58250831.0, 2084.0],
            "max_deviation_pct": [9.09, 4.92, 4.98],
            "tolerance_pct": [10, 5, 5],
            "within_tolerance": [True, True, False],
        }
    )
    console = Console(width=width, record=True)
    console.print(fit_table(frame, width, title="Midwest annual plan: feasible, gap 0.251 %"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "\u2026" not in text
    full = all(figure in text for figure in ("307,000,563", "5,748,606", "58,250,831"))
    short = all(figure in text for figure in ("307 M", "5.75 M", "58.3 M"))
    assert full if width >= 80 else (full or short)
