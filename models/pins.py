"""Pins: the planner's decisions that a solve must keep ("Acme stays with Jordan").

A scenario names a pins table (``pins: pins.csv``; .csv, .xlsx or .parquet) with one row per decision:

``account_id`` or ``unit_id``
    The account (its whole family moves with it) or the unit (every account in it) that is pinned.
``rep_id``
    The rep it stays with: any rep of the plan, open territories for hires included.
``note``
    Optional: why (shown to whoever reads the file next).

A pin is a hard lock to the pinned rep: it enters the solver exactly as a locked account does
(``Problem.fixed_rep``), and wins over the accounts table's own lock (with a note). The workbench
(``territory serve``) writes every edit the planner makes as a pin, so a saved scenario holds them too.

Bad pins are refused all at once, each with file, row and column: an unknown account, unit or rep, a
rep who leaves (``headcount.remove``), two pins for one account, two pins sending one unit to different
reps, and a pin breaking a hard rule (a hard segment rule, ``territories.max_distance_km``). A pin set
that only makes the balance impossible is explained by the solver's infeasibility analysis, like locks.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.columns import closest_column, normalise_ids
from models.errors import IssueCollector
from models.geo import haversine_km
from models.scenario import ANY_SEGMENT, Scenario
from models.tables import read_table, spreadsheet_row

logger = logging.getLogger(__name__)

#: Columns of a pins table (``account_id`` and ``unit_id``: one of them per row).
PIN_COLUMNS = ("account_id", "unit_id", "rep_id", "note")
#: The accounts column holding the rep each account is pinned to (missing where it is not pinned).
PINNED_COLUMN = "pinned_rep"


def read_pins(path: Path) -> pd.DataFrame:
    """Read a pins table and check its shape (ids are checked against the data by :func:`resolve_pins`).

    Parameters
    ----------
    path
        The pins file.

    Returns
    -------
    pandas.DataFrame
        ``account_id, unit_id, rep_id, note, row``: ids as strings (missing where blank), ``row`` the spreadsheet
        row of each pin.

    Raises
    ------
    InputError
        Missing columns, rows naming neither or both of an account and a unit, blank reps, an account or unit
        pinned twice; every problem with its row and column.
    """
    raw = read_table(path)
    issues = IssueCollector()
    columns = list(raw.columns)
    for name in ("rep_id",):
        if name not in columns:
            issues.add(f"required column '{name}' is missing", file=path, column=name, hint=_column_hint(name, columns))
    if "account_id" not in columns and "unit_id" not in columns:
        issues.add(
            "the pins table needs an 'account_id' or a 'unit_id' column",
            file=path,
            column="account_id",
            hint=_column_hint("account_id", columns),
        )
    unknown = [c for c in columns if c not in PIN_COLUMNS]
    for name in unknown:
        close = difflib.get_close_matches(name, PIN_COLUMNS, n=1, cutoff=0.6)
        issues.add(
            f"unknown column '{name}'",
            file=path,
            column=name,
            hint=f"did you mean '{close[0]}'?" if close else f"a pins table has the columns {', '.join(PIN_COLUMNS)}",
        )
    issues.raise_if_any()
    out = pd.DataFrame(index=raw.index)
    for name in ("account_id", "unit_id", "rep_id"):
        out[name] = normalise_ids(raw[name]) if name in columns else pd.Series(pd.NA, index=raw.index, dtype="string")
    out["note"] = raw["note"].astype("string").fillna("") if "note" in columns else ""
    out["row"] = [spreadsheet_row(i) for i in range(len(raw))]
    for i, (account, unit, rep) in enumerate(zip(out["account_id"], out["unit_id"], out["rep_id"], strict=True)):
        row = spreadsheet_row(i)
        if pd.isna(account) and pd.isna(unit):
            issues.add("the pin names no account and no unit", file=path, row=row, column="account_id",
                       hint="fill in the account id (or the unit id), or remove the row")  # fmt: skip
        elif not pd.isna(account) and not pd.isna(unit):
            issues.add("the pin names both an account and a unit", file=path, row=row, column="unit_id",
                       hint="one pin per row: keep the account id or the unit id")  # fmt: skip
        if pd.isna(rep):
            issues.add("rep id is blank", file=path, row=row, column="rep_id", hint="fill in the rep to pin to")
    for name in ("account_id", "unit_id"):
        ids = out[name]
        first: dict[str, int] = {}
        for i, value in enumerate(ids):
            if pd.isna(value):
                continue
            if value in first:
                what = "account" if name == "account_id" else "unit"
                issues.add(
                    f"two pins for {what} '{value}' (first at row {first[value]})",
                    file=path,
                    row=spreadsheet_row(i),
                    column=name,
                    hint=f"keep one pin per {what}",
                )
            else:
                first[value] = spreadsheet_row(i)
    issues.raise_if_any()
    return out.reset_index(drop=True)


def _column_hint(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'? (rename the column to '{name}')"
    return f"a pins table has the columns {', '.join(PIN_COLUMNS)}; the file has: {', '.join(columns[:20]) or 'none'}"


def resolve_pins(
    pins: pd.DataFrame,
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    scenario: Scenario,
    *,
    unit_ids: np.ndarray,
    unit_of_account: np.ndarray,
    departed: tuple[str, ...] = (),
    set_aside: set[str] | None = None,
    file: Path | str | None = None,
) -> tuple[pd.Series, list[str]]:
    """The rep every account is pinned to: each pin covers its account's whole unit.

    Parameters
    ----------
    pins
        From :func:`read_pins` (or built by the workbench: the same columns).
    accounts, reps
        The validated tables of the dataset (``models.dataset``), headcount edits applied.
    scenario
        Supplies the hard segment rules and ``territories.max_distance_km``.
    unit_ids, unit_of_account
        The units accounts move in: account families (named by their top account), or geographic units.
    departed
        Reps who leave (pins to them are refused with that reason).
    set_aside
        Ids of accounts set aside as unusable: their pins are skipped with a note.
    file
        The pins file, for messages.

    Returns
    -------
    (pandas.Series, list of str)
        The pinned rep id of every account row (missing where not pinned), and notes for the planner
        (locks overridden, pins skipped).

    Raises
    ------
    InputError
        Every bad pin, with its row and column.
    """
    issues = IssueCollector()
    notes: list[str] = []
    account_row = {a: i for i, a in enumerate(accounts["account_id"].to_numpy(dtype=object))}
    unit_row = {str(u): i for i, u in enumerate(unit_ids)}
    rep_ids = reps["rep_id"].to_numpy(dtype=object)
    rep_row = {r: i for i, r in enumerate(rep_ids)}
    unit_rep = np.full(len(unit_ids), -1, dtype=np.int64)
    unit_pin_row = np.zeros(len(unit_ids), dtype=np.int64)
    set_aside = set_aside or set()
    for account, unit, rep, row in zip(pins["account_id"], pins["unit_id"], pins["rep_id"], pins["row"], strict=True):
        row = int(row)
        if pd.isna(rep):
            continue  # reported by read_pins
        if not pd.isna(account):
            column, target = "account_id", account_row.get(account)
            if target is None and account in set_aside:
                notes.append(f"pin of account '{account}' skipped: the account was set aside as unusable")
                continue
            if target is None:
                issues.add(f"account '{account}' is not in the accounts table", file=file, row=row, column=column,
                           hint="use an account id of the accounts table (ids are case-sensitive)")  # fmt: skip
                continue
            u = int(unit_of_account[target])
        else:
            column, u = "unit_id", unit_row.get(str(unit))
            if u is None:
                issues.add(f"unit '{unit}' is not a unit of this plan", file=file, row=row, column=column,
                           hint=_unit_hint(scenario))  # fmt: skip
                continue
        if rep not in rep_row:
            if rep in departed:
                issues.add(f"rep '{rep}' leaves (headcount.remove): no account can be pinned to them", file=file,
                           row=row, column="rep_id", hint="pin to a rep who stays, or keep the rep")  # fmt: skip
            else:
                close = closest_column(str(rep), [str(r) for r in rep_ids])
                issues.add(f"rep '{rep}' is not in the reps table", file=file, row=row, column="rep_id",
                           hint=f"did you mean '{close}'?" if close else "use a rep id of the reps table, "
                           "or an open territory of headcount.add")  # fmt: skip
            continue
        r = rep_row[rep]
        if unit_rep[u] >= 0 and unit_rep[u] != r:
            what = "account family" if scenario.units.source == "accounts" else "unit"
            issues.add(
                f"{what} '{unit_ids[u]}' is pinned to '{rep}' here and to '{rep_ids[unit_rep[u]]}' at row "
                f"{unit_pin_row[u]}; its accounts move as one",
                file=file,
                row=row,
                column="rep_id",
                hint=f"pin the {what} to one rep",
            )
            continue
        unit_rep[u], unit_pin_row[u] = r, row
    issues.raise_if_any()
    pinned_account = unit_rep[unit_of_account] if len(unit_of_account) else np.zeros(0, dtype=np.int64)
    _check_rules(unit_pin_row[unit_of_account], pinned_account, accounts, reps, scenario, file, issues)
    issues.raise_if_any()
    out = pd.Series(pd.NA, index=accounts.index, dtype="string")
    pinned = np.flatnonzero(pinned_account >= 0)
    out.iloc[pinned] = rep_ids[pinned_account[pinned]].astype(str)
    locked = accounts["locked"].to_numpy(bool)
    current = accounts["current_rep"].to_numpy(object, na_value=None)
    overridden = [i for i in pinned if locked[i] and current[i] != out.iloc[i]]
    if overridden:
        shown = ", ".join(f"'{accounts['account_id'].iloc[i]}' ({current[i]} -> {out.iloc[i]})" for i in overridden[:5])
        more = f" and {len(overridden) - 5} more" if len(overridden) > 5 else ""
        notes.append(f"pins move {len(overridden)} locked account(s) away from their current rep: {shown}{more}")
    for note in notes:
        logger.warning(note)
    logger.info("%d pins hold %d accounts in %d units", len(pins), len(pinned), int((unit_rep >= 0).sum()))
    return out, notes


def _unit_hint(scenario: Scenario) -> str:
    if scenario.units.source == "accounts":
        return "units are account families here, named by their top account's id: pin by account_id instead"
    return "use a unit id of the unit layer (assignments.csv of a plan lists each account's unit)"


def _check_rules(
    pin_row: np.ndarray,
    pinned_account: np.ndarray,
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    scenario: Scenario,
    file: Path | str | None,
    issues: IssueCollector,
) -> None:
    """Record pins that break a hard segment rule or the largest distance from a home base.

    ``pin_row`` is the pins-file row of every account's pin, ``pinned_account`` its pinned rep row (-1: none).
    """
    rows = np.flatnonzero(pinned_account >= 0)
    if not len(rows):
        return
    rep_segment = reps["segment"].to_numpy(dtype=object)
    rep_ids = reps["rep_id"].to_numpy(dtype=object)
    top = (accounts["account_id"] == accounts["family_id"]).to_numpy(bool)
    segments = accounts["segment"].to_numpy(dtype=object)
    ids = accounts["account_id"].to_numpy(dtype=object)
    reported: set[int] = set()  # one message per pin row
    hard = {label: rule for label, rule in scenario.segment_rules.items() if rule.mode == "hard"}
    for i in rows[top[rows]]:
        rule = hard.get(segments[i])
        r = pinned_account[i]
        if rule is None or rep_segment[r] == ANY_SEGMENT or rep_segment[r] in rule.reps:
            continue
        if pin_row[i] in reported:
            continue
        reported.add(int(pin_row[i]))
        issues.add(
            f"account '{ids[i]}' is {segments[i]}, whose hard segment rule allows only {' or '.join(rule.reps)} "
            f"reps; '{rep_ids[r]}' prefers {rep_segment[r]}",
            file=file,
            row=int(pin_row[i]),
            column="rep_id",
            hint=f"pin it to a rep preferring {' or '.join(rule.reps)}, or make segment_rules.{segments[i]} soft",
        )
    limit = scenario.territories.max_distance_km
    if limit is None:
        return
    lat, lon = accounts["latitude"].to_numpy(float)[rows], accounts["longitude"].to_numpy(float)[rows]
    home_lat, home_lon = reps["latitude"].to_numpy(float), reps["longitude"].to_numpy(float)
    far = haversine_km(lat, lon, home_lat[pinned_account[rows]], home_lon[pinned_account[rows]]) > limit
    seen: set[int] = set()
    for i in rows[far]:
        u_row = int(pin_row[i])
        if u_row in seen:
            continue
        seen.add(u_row)
        issues.add(
            f"account '{ids[i]}' lies more than {limit:g} km (territories.max_distance_km) from the home base of "
            f"'{rep_ids[pinned_account[i]]}'",
            file=file,
            row=u_row,
            column="rep_id",
            hint="pin it to a nearer rep, or raise territories.max_distance_km",
        )
