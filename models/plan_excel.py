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
reader, not only Excel, sees the totals; they equal ``territories.csv``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from models.plan import Plan
from models.plan_io import write_atomic

logger = logging.getLogger(__name__)

SUMMARY_SHEET = "Summary"
#: Label in the first column of the totals rows.
TOTAL_LABEL = "Total"
#: Excel's limit on sheet names, and the characters it refuses in them.
MAX_SHEET_NAME = 31
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDE3EA")
_TOTAL_FONT = Font(bold=True)
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
    workbook = build_workbook(plan)
    write_atomic(path, lambda tmp: workbook.save(tmp))
    logger.info("workbook written to %s (%d sheets)", path, len(workbook.sheetnames))
    return path


def build_workbook(plan: Plan) -> Workbook:
    """The workbook of :func:`write_plan_excel` (see the module description)."""
    summary = plan.summary()
    territories = plan.territories()
    assignments = plan.assignments()
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SUMMARY_SHEET

    facts: list[tuple[str, Any]] = [
        ("Scenario", summary["scenario"]),
        ("Status", summary["status"] + (" (interrupted)" if summary.get("interrupted") else "")),
        ("Gap", summary.get("gap")),
        ("Objective", summary.get("objective")),
        ("Objective unit", summary["solver"].get("objective_unit")),
        ("Solve seconds", summary.get("solve_seconds")),
        ("Accounts", summary["accounts"]),
        ("Reps", summary["reps"]),
        ("Accounts set aside", summary["set_aside"]["accounts"]),
        ("All balance rules met", summary["all_within_tolerance"]),
    ]
    moves = summary.get("moves") or {}
    if moves.get("baseline"):
        facts += [("Accounts moved", moves["accounts_moved"]), ("Potential moved", moves["potential_moved"])]
    for label, value in facts:
        sheet.append([label, _cell(value)])
        sheet.cell(sheet.max_row, 1).font = _HEADER_FONT

    sheet.append([])
    metric_columns = ["metric", "total", "min", "max", "max_deviation_pct", "tolerance_pct", "within_tolerance"]
    _header(sheet, metric_columns)
    for name, entry in summary["metrics"].items():
        sheet.append([name, *(_cell(entry[c]) for c in metric_columns[1:])])

    sheet.append([])
    territory_header_row = _table(sheet, territories, total_of=_additive(territories))
    sheet.freeze_panes = sheet.cell(territory_header_row + 1, 3)
    _widths(sheet)

    rep_names = territories["name"].astype("string").fillna("")
    pairs = zip(territories["rep_id"], rep_names, strict=True)
    names = sheet_names(f"{rep_id} {name}".strip() for rep_id, name in pairs)
    members = {rep: frame for rep, frame in assignments.groupby("rep_id", sort=False)}
    additive_accounts = [c for c in ("potential", "workload", *plan.metrics) if c in assignments and c != "accounts"]
    for name, row in zip(names, territories.to_dict("records"), strict=True):
        rep_sheet = workbook.create_sheet(name)
        for label in ("rep_id", "name", "segment", "fte"):
            rep_sheet.append([label, _cell(row[label])])
            rep_sheet.cell(rep_sheet.max_row, 1).font = _HEADER_FONT
        rep_sheet.append([])
        accounts = members.get(row["rep_id"], assignments.iloc[0:0])
        header_row = _table(rep_sheet, accounts, total_of=list(dict.fromkeys(additive_accounts)))
        rep_sheet.freeze_panes = rep_sheet.cell(header_row + 1, 2)
        _widths(rep_sheet)
    return workbook


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


def _table(sheet: Worksheet, frame: pd.DataFrame, *, total_of: Sequence[str]) -> int:
    """Append a header, the rows and a ``Total`` row (sums of ``total_of``); return the header's row number."""
    columns = list(frame.columns)
    _header(sheet, columns)
    header_row = sheet.max_row
    for values in frame.itertuples(index=False):
        sheet.append([_cell(v) for v in values])
    totals: list[Any] = [TOTAL_LABEL, *[None] * (len(columns) - 1)]
    for column in total_of:
        if column in columns:
            values = pd.to_numeric(frame[column], errors="coerce")
            totals[columns.index(column)] = _cell(float(values.sum()))
    if columns and columns[0] in total_of:  # never overwrite the label
        totals[0] = TOTAL_LABEL
    sheet.append(totals)
    for cell in sheet[sheet.max_row]:
        cell.font = _TOTAL_FONT
    return header_row


def _header(sheet: Worksheet, columns: Sequence[str]) -> None:
    sheet.append(list(columns))
    for cell in sheet[sheet.max_row]:
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL


def _widths(sheet: Worksheet) -> None:
    """Column widths from the longest text in each column (capped)."""
    widths: dict[int, int] = {}
    for row in sheet.iter_rows(max_row=min(sheet.max_row, 200)):
        for cell in row:
            if cell.value is not None:
                widths[cell.column] = max(widths.get(cell.column, 0), len(str(cell.value)))
    for column, width in widths.items():
        sheet.column_dimensions[get_column_letter(column)].width = min(max(width + 2, 8), 40)


def _cell(value: Any) -> Any:
    """A value openpyxl writes: numpy scalars unwrapped, missing values as empty cells."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):  # per-segment targets
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value
