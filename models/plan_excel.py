"""``plan.xlsx``: a plan as a workbook, because plans are shared in Excel.

Sheets:

- ``Summary``: the scenario, how the solve ended, the per-metric balance
  figures, then one row per territory with every column of
  ``territories.csv`` and a ``Total`` row below them;
- one sheet per territory (named after the rep id and name, cut to Excel's
  31 characters and made unique): the rep's facts on top, then its accounts
  with every column of ``assignments.csv`` and a ``Total`` row.

Columns come from the plan's own tables, so metrics a scenario adds appear
without changes here. Values are written as numbers (no formulas), so any
reader, not only Excel, sees the totals; they equal ``territories.csv``. Each
number carries a display format (:func:`models.formatting.excel_format`):
thousands separators and the decimals the pages show, the full value kept in
the cell.

The workbook is written by xlsxwriter in constant-memory mode: each row goes
to disk once written, so a plan of a million accounts takes little memory.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterable, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from models.formatting import excel_format
from models.plan import Plan
from models.plan_io import write_atomic

logger = logging.getLogger(__name__)

SUMMARY_SHEET = "Summary"
#: Label in the first column of the totals rows.
TOTAL_LABEL = "Total"
#: Excel's limit on sheet names, and the characters it refuses in them.
MAX_SHEET_NAME = 31
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_HEADER = {"bold": True, "bg_color": "#DDE3EA", "pattern": 1}
_TOTAL = {"bold": True}
#: Territory columns that add up across territories (the rest are targets, shares, ratios, distances).
_NOT_ADDITIVE = re.compile(r"(_target|_deviation_pct|_pct|_km|^polsby_popper)$|^(mean|max)_")


def write_plan_excel(path: Path | str, plan: Plan) -> Path:
    """Write ``plan.xlsx``, whole or not at all.

    The signature fits :data:`models.plan_io.ExtraWriter`, so
    ``write_plan(plan, out, extra={"plan.xlsx": write_plan_excel})`` adds the
    workbook to a plan folder.

    Parameters
    ----------
    path
        The workbook to write.
    plan
        The plan.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    sheets: list[int] = []
    write_atomic(path, lambda tmp: sheets.append(write_workbook(tmp, plan)))
    logger.info("workbook written to %s (%d sheets)", path, sheets[0])
    return path


def write_workbook(path: Path, plan: Plan) -> int:
    """Write the workbook of :func:`write_plan_excel` (see the module description) to ``path``; return its sheets.

    Unlike :func:`write_plan_excel` it writes ``path`` in place (not whole or not at all).
    """
    summary = plan.summary()
    territories = plan.territories()
    assignments = plan.assignments()
    book = _Book(path)

    # label, value, the key its display format follows
    facts: list[tuple[str, Any, str]] = [
        ("Scenario", summary["scenario"], ""),
        ("Status", summary["status"] + (" (interrupted)" if summary.get("interrupted") else ""), ""),
        ("Gap", summary.get("gap"), "gap"),
        ("Objective", summary.get("objective"), "objective"),
        ("Objective unit", summary["solver"].get("objective_unit"), ""),
        ("Solve seconds", summary.get("solve_seconds"), "solve_seconds"),
        ("Accounts", summary["accounts"], "accounts"),
        ("Reps", summary["reps"], "reps"),
        ("Accounts set aside", summary["set_aside"]["accounts"], "accounts"),
        ("All balance rules met", summary["all_within_tolerance"], ""),
    ]
    moves = summary.get("moves") or {}
    if moves.get("baseline"):
        facts += [
            ("Accounts moved", moves["accounts_moved"], "accounts_moved"),
            ("Potential moved", moves["potential_moved"], "potential_moved"),
        ]
    metric_columns = ["metric", "total", "min", "max", "max_deviation_pct", "tolerance_pct", "within_tolerance"]

    sheet = book.sheet(SUMMARY_SHEET)
    header_row = len(facts) + 1 + 1 + len(summary["metrics"]) + 1 + 1  # facts, blank, metric table, blank, header
    sheet.freeze_panes(header_row, 2)
    _widths(sheet, territories, [label for label, _, _ in facts])
    for label, value, key in facts:
        book.row(sheet, [label, value], ["", key], first=book.bold)
    book.skip(sheet)
    book.header(sheet, metric_columns)
    for name, entry in summary["metrics"].items():
        # loads in the metric's own format; deviations and tolerances as percentages
        keys = [name, name, name, "max_deviation_pct", "tolerance_pct", ""]
        book.row(sheet, [name, *(entry[c] for c in metric_columns[1:])], ["", *keys])
    book.skip(sheet)
    book.table(sheet, territories, total_of=_additive(territories))

    rep_names = territories["name"].astype("string").fillna("")
    pairs = zip(territories["rep_id"], rep_names, strict=True)
    names = sheet_names(f"{rep_id} {name}".strip() for rep_id, name in pairs)
    members = {rep: frame for rep, frame in assignments.groupby("rep_id", sort=False)}
    additive_accounts = [c for c in ("potential", "workload", *plan.metrics) if c in assignments and c != "accounts"]
    for name, row in zip(names, territories.to_dict("records"), strict=True):
        rep_sheet = book.sheet(name)
        rep_sheet.freeze_panes(6, 1)  # four facts, a blank row, the header
        accounts = members.get(row["rep_id"], assignments.iloc[0:0])
        _widths(rep_sheet, accounts, ["segment"])
        for label in ("rep_id", "name", "segment", "fte"):
            book.row(rep_sheet, [label, row[label]], ["", label], first=book.bold)
        book.skip(rep_sheet)
        book.table(rep_sheet, accounts, total_of=list(dict.fromkeys(additive_accounts)))
    count = len(book.workbook.worksheets())
    book.workbook.close()
    return count


def sheet_names(wanted: Iterable[str]) -> list[str]:
    """Valid, unique Excel sheet names: bad characters replaced, cut to 31 characters, numbered when taken.

    Examples
    --------
    >>> sheet_names(["R1 Ana", "R1 Ana", "a/b"])
    ['R1 Ana', 'R1 Ana (2)', 'a-b']
    """
    taken = {SUMMARY_SHEET.lower()}
    out = []
    for text in wanted:
        base = _BAD_SHEET_CHARS.sub("-", str(text)).strip().strip("'") or "Territory"
        name = base[:MAX_SHEET_NAME]
        k = 1
        while name.lower() in taken:
            k += 1
            suffix = f" ({k})"
            name = base[: MAX_SHEET_NAME - len(suffix)] + suffix
        taken.add(name.lower())
        out.append(name)
    return out


def _additive(territories: pd.DataFrame) -> list[str]:
    numeric = territories.select_dtypes("number").columns
    return [c for c in numeric if c != "fte" and not _NOT_ADDITIVE.search(c)] + ["fte"]


class _Book:
    """An xlsxwriter workbook in constant-memory mode, its cell formats, and the next row of every sheet."""

    def __init__(self, path: Path) -> None:
        self.workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        self.rows: dict[str, int] = {}
        self._formats: dict[tuple[str | None, str], Format] = {}
        self.bold = "bold"
        self.number_format = functools.lru_cache(maxsize=None)(self._number_format)

    def sheet(self, name: str) -> Worksheet:
        self.rows[name] = 0
        return self.workbook.add_worksheet(name)

    def skip(self, sheet: Worksheet) -> None:
        self.rows[sheet.name] += 1

    def format(self, number_format: str | None, style: str = "") -> Format | None:
        """The cell format of a display format and a style (``""``, ``"bold"``, ``"header"``), made once."""
        if number_format is None and not style:
            return None
        key = (number_format, style)
        if key not in self._formats:
            properties: dict[str, Any] = dict(_HEADER if style == "header" else _TOTAL if style == "bold" else {})
            if number_format is not None:
                properties["num_format"] = number_format
            self._formats[key] = self.workbook.add_format(properties)
        return self._formats[key]

    @staticmethod
    def _number_format(key: str, integral: bool, whole: bool, size: int) -> str | None:
        """:func:`models.formatting.excel_format` of a value described by what its format depends on."""
        sample = 0 if integral else float({0: 1, 1: 10, 2: 100}[size]) + (0.0 if whole else 0.5)
        return excel_format(key, sample)

    def cell(self, sheet: Worksheet, row: int, col: int, value: Any, key: str, style: str = "") -> None:
        """Write one value: a number with the display format of column ``key``, text, a boolean or nothing."""
        value = _cell(value)
        if value is None:
            if style:
                sheet.write_blank(row, col, None, self.format(None, style))
            return
        if isinstance(value, bool):
            sheet.write_boolean(row, col, value, self.format(None, style))
        elif isinstance(value, Integral | float):
            size = abs(float(value))
            integral = isinstance(value, Integral)
            number_format = self.number_format(
                key, integral, not integral and float(value).is_integer(), 2 if size >= 100 else 1 if size >= 10 else 0
            )
            sheet.write_number(row, col, value, self.format(number_format, style))
        else:
            sheet.write_string(row, col, str(value), self.format(None, style))

    def row(self, sheet: Worksheet, values: Sequence[Any], keys: Sequence[str], *, first: str = "") -> None:
        """Append a row; ``first``: the style of its first cell."""
        row = self.rows[sheet.name]
        for col, (value, key) in enumerate(zip(values, keys, strict=True)):
            self.cell(sheet, row, col, value, key, first if col == 0 else "")
        self.rows[sheet.name] = row + 1

    def header(self, sheet: Worksheet, columns: Sequence[str]) -> None:
        row = self.rows[sheet.name]
        for col, column in enumerate(columns):
            sheet.write_string(row, col, str(column), self.format(None, "header"))
        self.rows[sheet.name] = row + 1

    def table(self, sheet: Worksheet, frame: pd.DataFrame, *, total_of: Sequence[str]) -> None:
        """Append a header, the rows and a ``Total`` row (sums of ``total_of``)."""
        columns = list(frame.columns)
        self.header(sheet, columns)
        row = self.rows[sheet.name]
        cell = self.cell
        for values in frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None):
            for col, (key, value) in enumerate(zip(columns, values, strict=True)):
                cell(sheet, row, col, value, key)
            row += 1
        self.rows[sheet.name] = row
        totals: list[Any] = [TOTAL_LABEL, *[None] * (len(columns) - 1)]
        for column in total_of:
            if column in columns[1:]:
                totals[columns.index(column)] = float(pd.to_numeric(frame[column], errors="coerce").sum())
        for col, (key, value) in enumerate(zip(columns, totals, strict=True)):
            cell(sheet, row, col, value, key, "bold")
        self.rows[sheet.name] = row + 1


def _widths(sheet: Worksheet, frame: pd.DataFrame, first_column: Sequence[str]) -> None:
    """Column widths from the header and the first rows of each column (capped)."""
    sample = frame.head(200).astype("string")
    for k, column in enumerate(frame.columns):
        width = max([len(str(column)), *(len(v) for v in sample[column].dropna())])
        if k == 0:
            width = max([width, *(len(str(v)) for v in first_column)])
        sheet.set_column(k, k, min(max(width + 2, 8), 40))


def _cell(value: Any) -> Any:
    """A value a cell holds: numpy scalars unwrapped, missing values as empty cells."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):  # per-segment targets
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value
