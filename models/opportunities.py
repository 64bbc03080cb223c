"""The opportunities table: read, map columns, validate, normalise.

An opportunity is a deal with one account: an amount, the date it was
opened, a sales stage and, once it is over, the date it was closed and whether
it was won. Open deals make the pipeline the forecast weighs
(:mod:`models.forecast`); closed deals with both dates tell how long the sales
cycle takes.

The normalised table has the columns

``opportunity_id, account_id, amount, opened, stage, expected_close, closed, won, is_open, row``

with dates as ``datetime64`` (NaT when blank), ``won`` as a nullable boolean
(NA when the table has no won column), ``is_open`` true while ``closed`` is
blank, and ``row`` the spreadsheet row (header = row 1) of each deal, so later
steps can still name it. Every problem found is collected and raised together
as one :class:`~models.errors.InputError` naming file, row and column.
"""

from __future__ import annotations

import datetime
import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.columns import (
    check_blank_ids,
    check_duplicate_ids,
    column_for,
    normalise_ids,
    normalise_labels,
    parse_flags,
    parse_numbers,
)
from models.errors import IssueCollector
from models.scenario import Scenario
from models.tables import read_table, spreadsheet_row

logger = logging.getLogger(__name__)

#: Engine field -> key of ``columns.opportunities`` (its standard column name too).
OPPORTUNITY_FIELDS = {
    "opportunity_id": "id",
    "account_id": "account_id",
    "amount": "amount",
    "opened": "opened",
    "stage": "stage",
    "expected_close": "expected_close",
    "closed": "closed",
    "won": "won",
}
OPPORTUNITY_COLUMNS = (*OPPORTUNITY_FIELDS, "is_open", "row")
_BLANK_TEXT = {"", "nan", "nat", "none", "null"}
_DATE_HINT = "write dates as YYYY-MM-DD (e.g. 2026-03-31)"


def _date_text(value: object) -> object:
    """Date-like cells (Excel, Parquet) as ISO text; anything else unchanged."""
    if isinstance(value, datetime.date | pd.Timestamp):
        return value.isoformat()
    return value


def _dates(
    series: pd.Series, *, file: Path, column: str, issues: IssueCollector, what: str, blank_ok: bool
) -> pd.Series:
    """Parse a date column (ISO text or real dates) to day-precision ``datetime64``; record bad cells.

    Time of day and time zones are dropped: the forecast counts whole days.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series.dt.tz_localize(None) if getattr(series.dt, "tz", None) is not None else series
        return pd.Series(pd.to_datetime(parsed).dt.normalize().to_numpy(), index=series.index)
    text = series.map(_date_text).astype("string").str.strip()
    blank = text.isna() | text.str.lower().isin(_BLANK_TEXT).fillna(False)
    parsed = pd.to_datetime(text.where(~blank), format="ISO8601", errors="coerce", utc=True).dt.tz_localize(None)
    for index in np.flatnonzero((parsed.isna() & ~blank).to_numpy()):
        issues.add(
            f"{what} '{series.iloc[index]}' is not a date",
            file=file,
            row=spreadsheet_row(index),
            column=column,
            hint=_DATE_HINT,
        )
    if not blank_ok:
        for index in np.flatnonzero(blank.to_numpy()):
            issues.add(
                f"{what} is blank", file=file, row=spreadsheet_row(index), column=column, hint=f"fill in the {what}"
            )
    return pd.Series(parsed.dt.normalize().to_numpy(), index=series.index)


def _day(value: pd.Timestamp) -> str:
    return value.date().isoformat()


def read_opportunities(
    path: Path,
    scenario: Scenario,
    account_ids: set[str],
    *,
    as_of: datetime.date,
    set_aside_ids: set[str] | None = None,
    sheet: str | None = None,
) -> pd.DataFrame:
    """Read and validate the opportunities table.

    Parameters
    ----------
    path
        The opportunities file (.csv, .xlsx or .parquet).
    scenario
        Supplies the column mapping (``columns.opportunities``) and the
        forecast settings (stage weights, which need a stage column).
    account_ids
        Ids of the accounts in the plan; a deal with any other account is refused.
    as_of
        The date the forecast is made: no deal may be opened or closed after it.
    set_aside_ids
        Accounts set aside as unusable (``data.unusable_accounts: set_aside``):
        their deals are dropped with a warning rather than refused.
    sheet
        Excel sheet.

    Returns
    -------
    pandas.DataFrame
        The normalised deals (see the module docstring), in file order.

    Raises
    ------
    InputError
        Every problem found, each with file, row, column and what to do: unknown or blank
        account, negative or non-numeric amount, blank, unparseable or future dates, a deal
        closed before it was opened, duplicate ids, an open deal in a stage without a weight.
    """
    raw = read_table(path, sheet)
    issues = IssueCollector()
    mapping = scenario.columns.opportunities
    settings = scenario.forecast_settings
    required = {"opportunity_id", "account_id", "amount", "opened"}
    if settings.model == "stage_weights":
        required.add("stage")
    cols: dict[str, str | None] = {
        field: column_for(
            raw,
            getattr(mapping, key),
            key,
            file=path,
            mapping_key=f"columns.opportunities.{key}",
            issues=issues,
            required=field in required,
        )
        for field, key in OPPORTUNITY_FIELDS.items()
    }
    issues.raise_if_any()
    out = pd.DataFrame(index=raw.index)
    if raw.empty:
        logger.warning("the opportunities table %s has no rows: every account's expected revenue is 0", path)
        return _empty()

    id_col, account_col = cols["opportunity_id"], cols["account_id"]
    assert id_col is not None and account_col is not None  # required columns were found
    out["opportunity_id"] = normalise_ids(raw[id_col])
    check_blank_ids(out["opportunity_id"], file=path, column=id_col, issues=issues, what="opportunity")
    check_duplicate_ids(out["opportunity_id"], file=path, column=id_col, issues=issues, what="opportunity")
    out["account_id"] = normalise_ids(raw[account_col])
    set_aside_ids = set_aside_ids or set()
    for index, account in enumerate(out["account_id"]):
        if account is pd.NA:
            issues.add(
                "account id is blank",
                file=path,
                row=spreadsheet_row(index),
                column=account_col,
                hint="fill in the id of the account the deal belongs to",
            )
        elif account not in account_ids and account not in set_aside_ids:
            issues.add(
                f"account '{account}' is not in the accounts table",
                file=path,
                row=spreadsheet_row(index),
                column=account_col,
                hint="fix the account id, add the account to the accounts table, or remove the deal",
            )
    out["amount"] = parse_numbers(raw[cols["amount"]], file=path, column=str(cols["amount"]), issues=issues,
                                  what="amount", low=0.0)  # fmt: skip
    opened_col = str(cols["opened"])
    out["opened"] = _dates(raw[opened_col], file=path, column=opened_col, issues=issues, what="opened date",
                           blank_ok=False)  # fmt: skip
    for field, what in (("expected_close", "expected close date"), ("closed", "closed date")):
        column = cols[field]
        out[field] = (
            _dates(raw[column], file=path, column=column, issues=issues, what=what, blank_ok=True)
            if column
            else pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
        )
    out["stage"] = normalise_labels(raw[cols["stage"]]) if cols["stage"] else ""
    if cols["won"]:
        out["won"] = pd.array(
            parse_flags(raw[cols["won"]], file=path, column=cols["won"], issues=issues, what="won flag"),
            dtype="boolean",
        )
    else:
        out["won"] = pd.array([pd.NA] * len(raw), dtype="boolean")
    out["is_open"] = out["closed"].isna()
    out["row"] = [spreadsheet_row(i) for i in range(len(raw))]
    _check_dates(out, cols, as_of, path, issues)
    if cols["won"]:
        for index in np.flatnonzero((out["won"].fillna(False) & out["is_open"]).to_numpy()):
            issues.add(
                "deal is marked won but has no closed date",
                file=path,
                row=spreadsheet_row(index),
                column=cols["closed"] or "closed",
                hint="fill in the date it was won (map columns.opportunities.closed), or clear the won flag",
            )
    if settings.model == "stage_weights":
        _check_stages(out, settings.stage_weights or {}, path, str(cols["stage"]), issues)
    issues.raise_if_any()

    dropped = out["account_id"].isin(set_aside_ids).to_numpy()
    if dropped.any():
        logger.warning(
            "%d opportunities of accounts set aside as unusable are left out of the forecast", int(dropped.sum())
        )
        out = out[~dropped]
    logger.info("read %d opportunities (%d open) from %s", len(out), int(out["is_open"].sum()), path)
    return out.reset_index(drop=True)[list(OPPORTUNITY_COLUMNS)]


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "opportunity_id": pd.Series(dtype="string"),
            "account_id": pd.Series(dtype="string"),
            "amount": pd.Series(dtype=float),
            "opened": pd.Series(dtype="datetime64[ns]"),
            "stage": pd.Series(dtype="string"),
            "expected_close": pd.Series(dtype="datetime64[ns]"),
            "closed": pd.Series(dtype="datetime64[ns]"),
            "won": pd.Series(dtype="boolean"),
            "is_open": pd.Series(dtype=bool),
            "row": pd.Series(dtype=np.int64),
        }
    )


def _check_dates(
    out: pd.DataFrame, cols: dict[str, str | None], as_of: datetime.date, path: Path, issues: IssueCollector
) -> None:
    """Dates must be in order: opened <= closed <= as_of, opened <= expected close."""
    limit = pd.Timestamp(as_of)
    opened = out["opened"]
    checks = (
        ("opened", opened > limit, "opened date {value} is after the forecast date {as_of}",
         "fix the date, or set forecast.as_of to the date the data were exported"),
        ("closed", out["closed"] > limit, "closed date {value} is after the forecast date {as_of}",
         "fix the date, or blank it if the deal is still open"),
        ("closed", out["closed"] < opened, "closed date {value} is before the opened date {opened}",
         "fix one of the two dates"),
        ("expected_close", out["expected_close"] < opened,
         "expected close date {value} is before the opened date {opened}", "fix one of the two dates"),
    )  # fmt: skip
    for field, bad, message, hint in checks:
        for index in np.flatnonzero(bad.fillna(False).to_numpy()):
            issues.add(
                message.format(
                    value=_day(out[field].iloc[index]), as_of=as_of.isoformat(), opened=_day(opened.iloc[index])
                ),
                file=path,
                row=spreadsheet_row(index),
                column=cols[field] or field,
                hint=hint,
            )


def _check_stages(
    out: pd.DataFrame, weights: dict[str, float], path: Path, column: str, issues: IssueCollector
) -> None:
    """Every open deal's stage needs a weight (closed deals are not forecast, so their stage is free)."""
    known = sorted(weights)
    for index in np.flatnonzero(out["is_open"].to_numpy()):
        stage = out["stage"].iloc[index]
        if stage in weights:
            continue
        close = difflib.get_close_matches(stage, known, n=1, cutoff=0.6)
        issues.add(
            f"stage '{stage}' has no weight in forecast.stage_weights" if stage else "stage is blank",
            file=path,
            row=spreadsheet_row(index),
            column=column,
            hint=(f"did you mean '{close[0]}'? " if close else "")
            + f"use one of {', '.join(known)}, or add forecast.stage_weights.{stage or '<stage>'}",
        )


__all__ = ["OPPORTUNITY_COLUMNS", "read_opportunities"]
