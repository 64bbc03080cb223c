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
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

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
    """The workbook of :func:`write_plan_excel` (see the module description), in write-only mode (fast, lean)."""
    summary = plan.summary()
    territories = plan.territories()
    assignments = plan.assignments()
    workbook = Workbook(write_only=True)

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

    sheet = workbook.create_sheet(SUMMARY_SHEET)
    header_row = len(facts) + 1 + 1 + len(summary["metrics"]) + 1 + 1  # facts, blank, metric table, blank, header
    sheet.freeze_panes = f"C{header_row + 1}"
    _widths(sheet, territories, [label for label, _, _ in facts])
    for label, value, key in facts:
        sheet.append([_styled(sheet, label, _HEADER_FONT), _number(sheet, value, key)])
    sheet.append([])
    _header(sheet, metric_columns)
    for name, entry in summary["metrics"].items():
        # loads in the metric's own format; deviations and tolerances as percentages
        keys = [name, name, name, "max_deviation_pct", "tolerance_pct", ""]
        sheet.append([name, *(_number(sheet, entry[c], k) for c, k in zip(metric_columns[1:], keys, strict=True))])
    sheet.append([])
    _table(sheet, territories, total_of=_additive(territories))

    rep_names = territories["name"].astype("string").fillna("")
    pairs = zip(territories["rep_id"], rep_names, strict=True)
    names = sheet_names(f"{rep_id} {name}".strip() for rep_id, name in pairs)
    members = {rep: frame for rep, frame in assignments.groupby("rep_id", sort=False)}
    additive_accounts = [c for c in ("potential", "workload", *plan.metrics) if c in assignments and c != "accounts"]
    for name, row in zip(names, territories.to_dict("records"), strict=True):
        rep_sheet = workbook.create_sheet(name)
        rep_sheet.freeze_panes = "B7"  # four facts, a blank row, the header
        accounts = members.get(row["rep_id"], assignments.iloc[0:0])
        _widths(rep_sheet, accounts, ["segment"])
        for label in ("rep_id", "name", "segment", "fte"):
            rep_sheet.append([_styled(rep_sheet, label, _HEADER_FONT), _number(rep_sheet, row[label], label)])
        rep_sheet.append([])
        _table(rep_sheet, accounts, total_of=list(dict.fromkeys(additive_accounts)))
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


def _table(sheet: WriteOnlyWorksheet, frame: pd.DataFrame, *, total_of: Sequence[str]) -> None:
    """Append a header, the rows and a ``Total`` row (sums of ``total_of``)."""
    columns = list(frame.columns)
    _header(sheet, columns)
    for values in frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None):
        sheet.append([_number(sheet, v, c) for c, v in zip(columns, values, strict=True)])
    totals: list[Any] = [TOTAL_LABEL, *[None] * (len(columns) - 1)]
    for column in total_of:
        if column in columns[1:]:
            totals[columns.index(column)] = _cell(float(pd.to_numeric(frame[column], errors="coerce").sum()))
    pairs = zip(columns, totals, strict=True)
    sheet.append([_styled(sheet, value, _TOTAL_FONT, number_format=excel_format(c, value)) for c, value in pairs])


def _header(sheet: WriteOnlyWorksheet, columns: Sequence[str]) -> None:
    sheet.append([_styled(sheet, column, _HEADER_FONT, _HEADER_FILL) for column in columns])


def _styled(
    sheet: WriteOnlyWorksheet,
    value: Any,
    font: Font,
    fill: PatternFill | None = None,
    *,
    number_format: str | None = None,
) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.font = font
    if fill is not None:
        cell.fill = fill
    if number_format is not None:
        cell.number_format = number_format
    return cell


def _number(sheet: WriteOnlyWorksheet, value: Any, key: str) -> Any:
    """A value for column ``key``: a number as a cell with its display format (thousands separators), else as is."""
    value = _cell(value)
    number_format = excel_format(key, value)
    if number_format is None:
        return value
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = number_format
    return cell


def _widths(sheet: WriteOnlyWorksheet, frame: pd.DataFrame, first_column: Sequence[str]) -> None:
    """Column widths from the header and the first rows of each column (capped); set before any row is written."""
    sample = frame.head(200).astype("string")
    for k, column in enumerate(frame.columns, start=1):
        width = max([len(str(column)), *(len(v) for v in sample[column].dropna())])
        if k == 1:
            width = max([width, *(len(str(v)) for v in first_column)])
        sheet.column_dimensions[get_column_letter(k)].width = min(max(width + 2, 8), 40)


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
