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

The workbook is written column by column (:mod:`models.xlsx`): every
territory sheet's rows are made together, a block of territories at a time,
so a plan of a million accounts is written in seconds, not minutes.
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
import pyarrow as pa
import pyarrow.compute as pc

from models import xlsx
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
_HEADER_FILL = "#DDE3EA"
#: Territory columns that add up across territories (the rest are targets, shares, ratios, distances).
_NOT_ADDITIVE = re.compile(r"(_target|_deviation_pct|_pct|_km|^polsby_popper)$|^(mean|max)_")
#: Facts above each territory's accounts (then a blank row and the header).
_REP_FACTS = ("rep_id", "name", "segment", "fte")
#: Rows whose column widths are measured (the header and the first rows of each column).
_WIDTH_SAMPLE = 200
#: Account rows made at once (a block of whole territories): bounds the memory of the cells' text.
BLOCK_ROWS = 200_000


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

    header_row = len(facts) + 1 + 1 + len(summary["metrics"]) + 1 + 1  # facts, blank, metric table, blank, header
    widths = _widths(territories, [label for label, _, _ in facts])
    sheet = xlsx.Sheet(SUMMARY_SHEET, freeze=(header_row, 2), widths=widths)
    for label, value, key in facts:
        book.row(sheet, [label, value], ["", key], first="bold")
    sheet.skip()
    book.header(sheet, metric_columns)
    for name, entry in summary["metrics"].items():
        # loads in the metric's own format; deviations and tolerances as percentages
        keys = [name, name, name, "max_deviation_pct", "tolerance_pct", ""]
        book.row(sheet, [name, *(entry[c] for c in metric_columns[1:])], ["", *keys])
    sheet.skip()
    totals = _totals(territories, _additive(territories), np.zeros(len(territories), dtype=np.int64), 1)
    book.table(sheet, territories, totals)
    book.workbook.write(sheet)

    rep_names = territories["name"].astype("string").fillna("")
    pairs = zip(territories["rep_id"], rep_names, strict=True)
    names = sheet_names(f"{rep_id} {name}".strip() for rep_id, name in pairs)
    additive_accounts = [c for c in ("potential", "workload", *plan.metrics) if c in assignments and c != "accounts"]
    _territory_sheets(book, names, territories, assignments, list(dict.fromkeys(additive_accounts)))
    book.workbook.close()
    return 1 + len(names)


def _territory_sheets(
    book: _Book, names: list[str], territories: pd.DataFrame, assignments: pd.DataFrame, additive: list[str]
) -> None:
    """One sheet per territory: the rep's facts, a blank row, its accounts and their Total row.

    Every sheet has the same layout, so each fact row, the header and the Total rows are made for all territories
    at once, and the accounts for a block of territories at once (:data:`BLOCK_ROWS`).
    """
    n = len(territories)
    position = pd.Series(np.arange(n), index=pd.Index(territories["rep_id"].astype(str)))
    owner = position.reindex(assignments["rep_id"].astype(str)).to_numpy()
    kept = ~np.isnan(owner)
    order = np.flatnonzero(kept)[np.argsort(owner[kept], kind="stable")]
    accounts = assignments.iloc[order].reset_index(drop=True)
    owner = owner[order].astype(np.int64)
    counts = np.bincount(owner, minlength=n)
    first = np.concatenate([[0], np.cumsum(counts)])
    within = np.arange(len(accounts)) - first[owner]  # each account's row among its territory's

    facts = [book.fact_rows(k, label, territories[label]) for k, label in enumerate(_REP_FACTS)]
    top = len(_REP_FACTS) + 1  # the header's row (0-based): the facts, then a blank row
    columns = len(accounts.columns)
    header = book.header_xml(list(accounts.columns), top)
    total_rows = book.rows_xml(_totals(accounts, additive, owner, n), top + 1 + counts, style="bold")
    widths = _territory_widths(accounts, owner, within, n)
    done = 0
    while done < n:
        stop = int(np.searchsorted(first, first[done] + BLOCK_ROWS, side="right")) - 1
        stop = min(max(stop, done + 1), n)
        block = slice(int(first[done]), int(first[stop]))
        body = book.rows_xml(accounts.iloc[block], top + 1 + within[block])
        for t in range(done, stop):
            sheet = xlsx.Sheet(names[t], freeze=(top + 1, 1), widths=_capped(dict(enumerate(widths[t].tolist()))))
            for fact in facts:
                sheet.add(xlsx.joined_bytes(fact, t, t + 1), 1, 2)
            sheet.skip()
            sheet.add(header, 1, columns)
            begin, end = int(first[t]) - block.start, int(first[t + 1]) - block.start
            sheet.add(xlsx.joined_bytes(body, begin, end), end - begin, columns)
            sheet.add(xlsx.joined_bytes(total_rows, t, t + 1), 1, columns)
            book.workbook.write(sheet)
        done = stop


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


def _totals(frame: pd.DataFrame, additive: Sequence[str], group: np.ndarray, n: int) -> pd.DataFrame:
    """``Total`` rows: the sums of the ``additive`` columns of each of ``n`` groups of rows, empty elsewhere."""
    totals = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in frame.columns})
    totals[frame.columns[0]] = TOTAL_LABEL
    for column in additive:
        if column in list(frame.columns[1:]):
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            totals[column] = np.bincount(group, weights=np.nan_to_num(values), minlength=n).astype(float)
    return totals


class _Book:
    """The workbook, its cell styles, and the cells of every column made at once."""

    def __init__(self, path: Path) -> None:
        self.workbook = xlsx.Workbook(path)
        self.number_format = functools.lru_cache(maxsize=None)(self._number_format)

    def style(self, number_format: str | None, style: str = "") -> int:
        """The cell style of a display format and a style (``""``, ``"bold"``, ``"header"``)."""
        fill = _HEADER_FILL if style == "header" else None
        return self.workbook.style(xlsx.CellStyle(number_format, bold=style in ("bold", "header"), fill=fill))

    @staticmethod
    def _number_format(key: str, integral: bool, whole: bool, size: int) -> str | None:
        """:func:`models.formatting.excel_format` of a value described by what its format depends on."""
        sample = 0 if integral else float({0: 1, 1: 10, 2: 100}[size]) + (0.0 if whole else 0.5)
        return excel_format(key, sample)

    def cells(self, values: pd.Series, key: str, column: int, rows: pa.Array, style: str = "") -> pa.Array:
        """The cells of one column: numbers with the display format of column ``key``, text, booleans; a missing
        value makes no cell, or an empty one carrying ``style``."""
        kind = values.dtype.kind if isinstance(values.dtype, np.dtype) else None
        if kind == "b" or isinstance(values.dtype, pd.BooleanDtype):
            flags, missing = values.fillna(False).to_numpy(dtype=bool), values.isna().to_numpy()
            out = xlsx.bool_cells(flags, missing, self.style(None, style), column, rows)
        elif pd.api.types.is_integer_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
            out = self._numbers(numbers, np.ones(len(values), dtype=bool), key, column, rows, style)
        elif pd.api.types.is_float_dtype(values.dtype):
            numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
            out = self._numbers(numbers, np.zeros(len(values), dtype=bool), key, column, rows, style)
        elif kind == "O":
            out = self._mixed(values, key, column, rows, style)
        else:
            out = xlsx.text_cells(xlsx.text_of(values), self.style(None, style), column, rows)
        if style:
            out = pc.coalesce(out, xlsx.blank_cells(self.style(None, style), column, rows))
        return out

    def _numbers(
        self, numbers: np.ndarray, integral: np.ndarray, key: str, column: int, rows: pa.Array, style: str
    ) -> pa.Array:
        size = np.where(np.abs(numbers) >= 100, 2, np.where(np.abs(numbers) >= 10, 1, 0))
        whole = np.isfinite(numbers) & (numbers == np.floor(np.nan_to_num(numbers)))
        # one of 12 formats per cell, looked up by code (np.unique sorted every column of every territory sheet)
        code = integral.astype(np.int64) * 6 + whole.astype(np.int64) * 3 + size
        ids = np.zeros(12, dtype=np.int64)
        for c in np.flatnonzero(np.bincount(code, minlength=12)):
            ids[c] = self.style(self.number_format(key, c >= 6, c % 6 >= 3, c % 3), style)
        return xlsx.number_cells(numbers, ids[code], column, rows)

    def _mixed(self, values: pd.Series, key: str, column: int, rows: pa.Array, style: str) -> pa.Array:
        """Cells of a column of Python objects: each a number, a boolean, text or nothing (:func:`_cell`)."""
        items = [_cell(v) for v in values.tolist()]
        is_bool = np.array([isinstance(v, bool) for v in items], dtype=bool)
        integral = np.array([isinstance(v, Integral) for v in items], dtype=bool) & ~is_bool
        is_number = integral | np.array([isinstance(v, float) for v in items], dtype=bool)
        numbers = np.array([float(v) if n else np.nan for v, n in zip(items, is_number, strict=True)], dtype=float)
        flags = np.array([bool(v) if b else False for v, b in zip(items, is_bool, strict=True)], dtype=bool)
        other = (v is not None and not b and not n for v, b, n in zip(items, is_bool, is_number, strict=True))
        texts = pa.array([str(v) if o else None for v, o in zip(items, other, strict=True)], type=pa.large_string())
        plain = self.style(None, style)
        return pc.coalesce(
            self._numbers(numbers, integral, key, column, rows, style),
            xlsx.bool_cells(flags, ~is_bool, plain, column, rows),
            xlsx.text_cells(texts, plain, column, rows),
        )

    def rows_xml(self, frame: pd.DataFrame, rows: np.ndarray, *, style: str = "") -> pa.Array:
        """One ``<row>`` per record of ``frame`` (its columns keyed by their names), at rows ``rows`` (0-based)."""
        text = xlsx.row_text(rows)
        frame = frame.reset_index(drop=True)
        return xlsx.row_xml(text, [self.cells(frame[c], str(c), k, text, style) for k, c in enumerate(frame.columns)])

    def fact_rows(self, row: int, label: str, values: pd.Series) -> pa.Array:
        """Row ``row`` (0-based) of every territory sheet: ``label`` in bold, then the territory's value."""
        text = xlsx.row_text(np.full(len(values), row))
        labels = pa.array([label] * len(values), type=pa.large_string())
        first = xlsx.text_cells(labels, self.style(None, "bold"), 0, text)
        return xlsx.row_xml(text, [first, self.cells(values.reset_index(drop=True), label, 1, text)])

    def header_xml(self, columns: Sequence[str], row: int) -> bytes:
        """A header row: every column name in the header style."""
        text = xlsx.row_text(np.array([row]))
        style = self.style(None, "header")
        names = [pa.array([str(c)], type=pa.large_string()) for c in columns]
        return xlsx.joined_bytes(xlsx.row_xml(text, [xlsx.text_cells(c, style, k, text) for k, c in enumerate(names)]))

    def row(self, sheet: xlsx.Sheet, values: Sequence[Any], keys: Sequence[str], *, first: str = "") -> None:
        """Append a row; ``first``: the style of its first cell."""
        text = xlsx.row_text(np.array([sheet.rows]))
        cells = [
            self.cells(pd.Series([_cell(v)], dtype=object), key, k, text, first if k == 0 else "")
            for k, (v, key) in enumerate(zip(values, keys, strict=True))
        ]
        sheet.add(xlsx.joined_bytes(xlsx.row_xml(text, cells)), 1, len(values))

    def header(self, sheet: xlsx.Sheet, columns: Sequence[str]) -> None:
        sheet.add(self.header_xml(columns, sheet.rows), 1, len(columns))

    def table(self, sheet: xlsx.Sheet, frame: pd.DataFrame, totals: pd.DataFrame) -> None:
        """Append a header, the rows and a ``Total`` row (``totals``: one record)."""
        self.header(sheet, list(frame.columns))
        body = self.rows_xml(frame, sheet.rows + np.arange(len(frame)))
        sheet.add(xlsx.joined_bytes(body), len(frame), len(frame.columns))
        total = self.rows_xml(totals, np.array([sheet.rows]), style="bold")
        sheet.add(xlsx.joined_bytes(total), 1, len(frame.columns))


def _widths(frame: pd.DataFrame, first_column: Sequence[str]) -> dict[int, float]:
    """Column widths from the header and the first rows of each column (capped)."""
    sample = frame.head(_WIDTH_SAMPLE).astype("string")
    widths = {}
    for k, column in enumerate(frame.columns):
        width = max([len(str(column)), *(len(v) for v in sample[column].dropna())])
        if k == 0:
            width = max([width, *(len(str(v)) for v in first_column)])
        widths[k] = width
    return _capped(widths)


def _territory_widths(accounts: pd.DataFrame, owner: np.ndarray, within: np.ndarray, n: int) -> np.ndarray:
    """Each territory sheet's column widths (territories x columns, before capping): the header and the first rows
    of each column, the first column also the facts' labels."""
    sampled = within < _WIDTH_SAMPLE
    out = np.tile([len(str(c)) for c in accounts.columns], (n, 1)).astype(np.int64)
    out[:, 0] = np.maximum(out[:, 0], max(len(f) for f in _REP_FACTS))
    for k, column in enumerate(accounts.columns):
        text = accounts[column][sampled].astype("string")
        lengths = text.str.len().fillna(0).to_numpy(dtype=np.int64)
        np.maximum.at(out[:, k], owner[sampled], lengths)
    return out


def _capped(widths: dict[int, float]) -> dict[int, float]:
    return {k: min(max(w + 2, 8), 40) for k, w in widths.items()}


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
