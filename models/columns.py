"""Reading the columns of an input table: find them, normalise ids and labels, parse numbers and flags.

Shared by the accounts and reps readers (:mod:`models.dataset`) and the
opportunities reader (:mod:`models.opportunities`). Checks never raise: they
record every bad cell in an :class:`~models.errors.IssueCollector` (file, row,
column and what to do), so a reader reports all problems of a table at once.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import IssueCollector
from models.tables import spreadsheet_row

#: The engine's fields of the accounts and reps tables.
ACCOUNT_FIELDS = (
    "account_id",
    "name",
    "latitude",
    "longitude",
    "segment",
    "potential",
    "workload",
    "current_rep",
    "locked",
    "parent_id",
)
REP_FIELDS = ("rep_id", "name", "latitude", "longitude", "segment", "fte", "quota_floor", "quota_cap")
#: Standard column names of those fields (ids are read from a column named ``id``).
_STANDARD_NAMES = {"id"} | (set(ACCOUNT_FIELDS) | set(REP_FIELDS)) - {"account_id", "rep_id"}
_TRUE = {"true", "yes", "y", "1", "x", "locked", "t"}
_FALSE = {"false", "no", "n", "0", "", "f", "nan", "none"}


def closest_column(name: str, columns: list[str]) -> str | None:
    """The column most like ``name``, ignoring case (``Fte`` finds ``FTE``), or ``None``.

    Parameters
    ----------
    name
        The column asked for.
    columns
        The table's columns.

    Returns
    -------
    str or None
        A column of ``columns`` to suggest, or ``None`` when none is close.
    """
    by_lower: dict[str, str] = {}
    for column in columns:
        by_lower.setdefault(column.lower(), column)
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def column_for(
    frame: pd.DataFrame,
    mapped: str | None,
    default: str,
    *,
    file: Path,
    mapping_key: str,
    issues: IssueCollector,
    required: bool,
) -> str | None:
    """Find the column holding a field; record an issue when it must exist and does not.

    Parameters
    ----------
    frame
        The table as read.
    mapped
        The column the scenario maps the field to, or ``None`` when unmapped.
    default
        The field's standard column name, used when unmapped.
    file
        The table's file, named in issues.
    mapping_key
        The scenario key that maps the field (``columns.accounts.fte``), named in hints.
    issues
        Where a missing column is recorded.
    required
        Whether a missing unmapped column is an issue (a mapped one always is).

    Returns
    -------
    str or None
        The column's name, or ``None`` when the table does not have it.
    """
    columns = list(frame.columns)
    if mapped is not None:
        if mapped in columns:
            return mapped
        close = closest_column(mapped, columns)
        hint = f"did you mean '{close}'?" if close else f"the file has: {', '.join(columns[:30])}"
        issues.add(
            f"the scenario maps {mapping_key} to column '{mapped}', which the file does not have",
            file=file,
            column=mapped,
            hint=hint,
        )
        return None
    if default in columns:
        return default
    if required:
        # never suggest a column that already holds another field under its standard name
        taken = {name.lower() for name in _STANDARD_NAMES} - {default.lower()}
        close = closest_column(default, [c for c in columns if c.lower() not in taken])
        hint = (
            f"map it in the scenario: {mapping_key}: {close or '<column name>'}"
            if columns
            else "the file has no header row"
        )
        issues.add(f"required column '{default}' is missing", file=file, column=default, hint=hint)
    return None


def normalise_ids(series: pd.Series) -> pd.Series:
    """Normalise ids to strings (``101.0`` from Excel becomes ``'101'``; blanks become NA).

    Parameters
    ----------
    series
        An id column as read.

    Returns
    -------
    pandas.Series
        ``string`` dtype, stripped, NA where blank.
    """

    if pd.api.types.infer_dtype(series, skipna=True) in {"string", "empty"}:
        # text only (CSV, Parquet): the same rules column-wise; value by value took 4 s of 1,000,000 accounts
        text = series.astype("string").str.strip()
        blank = text.isna() | (text == "") | text.str.lower().isin(["nan", "none"])
        return text.mask(blank, pd.NA)

    def one(value: object) -> object:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return pd.NA
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        text = str(value).strip()
        return text if text and text.lower() not in {"nan", "none"} else pd.NA

    return series.map(one).astype("string")


def normalise_labels(series: pd.Series) -> pd.Series:
    """Labels (segments, stages) stripped and lower-cased; blanks become ``''``.

    Parameters
    ----------
    series
        A label column as read.

    Returns
    -------
    pandas.Series
        ``string`` dtype.
    """
    return series.astype("string").fillna("").str.strip().str.lower()


def parse_numbers(
    series: pd.Series,
    *,
    file: Path,
    column: str,
    issues: IssueCollector,
    what: str,
    low: float | None = None,
    high: float | None = None,
    blank_ok: bool = False,
) -> np.ndarray:
    """Convert a column to floats, recording blank, text and out-of-range cells.

    Parameters
    ----------
    series
        The column as read; thousands separators (``1,200``) are accepted.
    file, column
        Named in issues, with each bad cell's spreadsheet row.
    issues
        Where bad cells are recorded.
    what
        What the column holds, for messages (``FTE``, ``potential``).
    low, high
        Inclusive limits, when there are any.
    blank_ok
        Blank cells are NaN without an issue.

    Returns
    -------
    numpy.ndarray
        ``float`` per row, NaN where a cell is blank or bad.
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        # numbers already (Parquet, Excel): no text to clean (the text path took seconds at 1,000,000 rows)
        values = series.to_numpy(dtype=float, na_value=np.nan)
        blank = series.isna().to_numpy()
    else:
        raw = series.astype("string").str.strip().str.replace(",", "", regex=False)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        blank = series.isna().to_numpy() | (raw.fillna("") == "").to_numpy()
    for index in np.flatnonzero(~np.isfinite(values)):
        if blank[index]:
            if blank_ok:
                continue
            issues.add(
                f"{what} is blank", file=file, row=spreadsheet_row(index), column=column, hint=f"fill in the {what}"
            )
        else:
            issues.add(
                f"{what} '{series.iloc[index]}' is not a number",
                file=file,
                row=spreadsheet_row(index),
                column=column,
                hint="use digits only, with '.' as the decimal point",
            )
    finite = np.isfinite(values)
    if low is not None:
        for index in np.flatnonzero(finite & (values < low)):
            issues.add(
                f"{what} {values[index]:g} is below {low:g}",
                file=file,
                row=spreadsheet_row(index),
                column=column,
                hint=f"{what} must be between {low:g} and {high:g}" if high is not None else f"use {low:g} or more",
            )
    if high is not None:
        for index in np.flatnonzero(finite & (values > high)):
            issues.add(
                f"{what} {values[index]:g} is above {high:g}",
                file=file,
                row=spreadsheet_row(index),
                column=column,
                hint=f"{what} must be between {low:g} and {high:g}" if low is not None else f"use {high:g} or less",
            )
    return values


def parse_flags(
    series: pd.Series, *, file: Path, column: str, issues: IssueCollector, what: str = "locked flag"
) -> np.ndarray:
    """Convert a yes/no column to booleans, recording cells that are neither.

    Parameters
    ----------
    series
        The column as read: true/false, yes/no, 1/0 (any case); blank is false.
    file, column
        Named in issues, with each bad cell's spreadsheet row.
    issues
        Where bad cells are recorded.
    what
        What the column holds, for messages.

    Returns
    -------
    numpy.ndarray
        ``bool`` per row (false where a cell is bad).
    """
    text = series.astype("string").fillna("").str.strip().str.lower()
    out = text.isin(_TRUE).to_numpy(dtype=bool)
    for index in np.flatnonzero(~out & ~text.isin(_FALSE).to_numpy(dtype=bool)):
        issues.add(
            f"{what} '{series.iloc[index]}' is not true or false",
            file=file,
            row=spreadsheet_row(index),
            column=column,
            hint="use true/false, yes/no or 1/0",
        )
    return out


def check_blank_ids(ids: pd.Series, *, file: Path, column: str, issues: IssueCollector, what: str) -> None:
    """Record every blank id (from :func:`normalise_ids`) with its row.

    Parameters
    ----------
    ids
        Normalised ids.
    file, column
        Named in issues.
    issues
        Where blank ids are recorded.
    what
        What the rows are (``account``, ``rep``), for messages.
    """
    for index in np.flatnonzero(ids.isna().to_numpy()):
        issues.add(f"{what} id is blank", file=file, row=spreadsheet_row(index), column=column, hint="fill in the id")


def check_duplicate_ids(ids: pd.Series, *, file: Path, column: str, issues: IssueCollector, what: str) -> None:
    """Record every repeated id with its row and the row where it came first.

    Parameters
    ----------
    ids
        Normalised ids; blanks are not repeats.
    file, column
        Named in issues.
    issues
        Where repeats are recorded.
    what
        What the rows are (``account``, ``rep``), for messages.
    """
    dup = ids.duplicated(keep="first") & ids.notna()
    for index in np.flatnonzero(dup.to_numpy()):
        first = int(np.flatnonzero((ids == ids.iloc[index]).fillna(False).to_numpy())[0])
        issues.add(
            f"duplicate {what} id '{ids.iloc[index]}' (first at row {spreadsheet_row(first)})",
            file=file,
            row=spreadsheet_row(index),
            column=column,
            hint=f"give every {what} its own id, or remove the repeated row",
        )
