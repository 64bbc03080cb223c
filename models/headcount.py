"""Headcount edits and baselines: who is on the team, and which plan is in force.

A rerun after a headcount change starts from the plan in force (the
*baseline*): the accounts' current-rep column, a previous plan folder, or the
plan of another scenario. :func:`apply_headcount` applies a scenario's
``headcount`` edits (reps leaving, open territories for hires, FTE and segment
changes) to the reps table read from disk, which itself is never changed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import InputError, IssueCollector
from models.scenario import Headcount
from models.tables import read_table, spreadsheet_row

logger = logging.getLogger(__name__)

#: The file of a plan folder that holds one row per account and its rep.
ASSIGNMENTS_FILE = "assignments.csv"


def apply_headcount(
    reps: pd.DataFrame, headcount: Headcount, scenario_path: Path
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Apply headcount edits to a validated reps table.

    Parameters
    ----------
    reps
        Output of :func:`models.dataset.read_reps` (``rep_id, name, latitude, longitude, segment, fte``).
    headcount
        The scenario's edits.
    scenario_path
        The scenario file, for messages.

    Returns
    -------
    tuple
        The edited table (hires appended in the order given) and the ids of the reps who leave.

    Raises
    ------
    InputError
        An edit names a rep the table does not hold, or a hire reuses an existing id; every such problem is
        listed with its scenario key.
    """
    issues = IssueCollector()
    known = set(reps["rep_id"])
    for i, rep in enumerate(headcount.remove):
        if rep not in known:
            issues.add(
                f"rep '{rep}' is not in the reps table",
                file=scenario_path,
                column=f"headcount.remove[{i}]",
                hint="use a rep id from the reps table (ids are case-sensitive)",
            )
    for rep in headcount.change:
        if rep not in known:
            issues.add(
                f"rep '{rep}' is not in the reps table",
                file=scenario_path,
                column=f"headcount.change.{rep}",
                hint="use a rep id from the reps table, or add the rep under headcount.add",
            )
    for i, hire in enumerate(headcount.add):
        if hire.id in known:
            issues.add(
                f"id '{hire.id}' is already a rep in the reps table",
                file=scenario_path,
                column=f"headcount.add[{i}].id",
                hint="give the open territory a new id (e.g. HIRE-1)",
            )
    needs_home = reps["latitude"].notna().any()
    for i, hire in enumerate(headcount.add):
        if needs_home and (hire.latitude is None or hire.longitude is None):
            issues.add(
                "an open territory needs a home base (latitude and longitude) like the other reps",
                file=scenario_path,
                column=f"headcount.add[{i}]",
                hint="give the city the hire will work from, e.g. latitude: 41.88, longitude: -87.63",
            )
    issues.raise_if_any()
    out = reps.copy()
    for rep, edit in headcount.change.items():
        row = out["rep_id"] == rep
        if edit.fte is not None:
            out.loc[row, "fte"] = edit.fte
        if edit.segment is not None:
            out.loc[row, "segment"] = edit.segment
    departed = tuple(headcount.remove)
    out = out[~out["rep_id"].isin(departed)]
    if headcount.add:
        hires = pd.DataFrame(
            {
                "rep_id": [h.id for h in headcount.add],
                "name": [h.name or h.id for h in headcount.add],
                "latitude": [np.nan if h.latitude is None else h.latitude for h in headcount.add],
                "longitude": [np.nan if h.longitude is None else h.longitude for h in headcount.add],
                "segment": [h.segment for h in headcount.add],
                "fte": [h.fte for h in headcount.add],
            }
        )
        out = pd.concat([out, hires.astype({"rep_id": out["rep_id"].dtype})], ignore_index=True)
    if out.empty:
        raise InputError.single(
            "no rep is left after headcount.remove",
            file=scenario_path,
            column="headcount.remove",
            hint="keep at least one rep, or add open territories under headcount.add",
        )
    if departed or headcount.add or headcount.change:
        logger.info(
            "headcount: %d leaving (%s), %d open territories added, %d changed",
            len(departed),
            ", ".join(departed) or "-",
            len(headcount.add),
            len(headcount.change),
        )
    return out.reset_index(drop=True), departed


def read_plan_assignments(folder: Path) -> pd.DataFrame:
    """Read the account -> rep table of a plan folder (the baseline of a rerun).

    Parameters
    ----------
    folder
        A plan folder written by ``territory solve``.

    Returns
    -------
    pandas.DataFrame
        Columns ``account_id, rep_id`` (strings), one row per account.

    Raises
    ------
    InputError
        The folder or its ``assignments.csv`` is missing, lacks the columns, or lists an account twice.
    """
    path = Path(folder) / ASSIGNMENTS_FILE
    if not path.is_file():
        raise InputError.single(
            f"the baseline plan folder has no {ASSIGNMENTS_FILE}",
            file=path,
            hint="point continuity.baseline.plan (or --baseline) at a folder written by `territory solve`",
        )
    raw = read_table(path)
    missing = [c for c in ("account_id", "rep_id") if c not in raw.columns]
    if missing:
        raise InputError.single(
            f"missing column(s) {', '.join(missing)}",
            file=path,
            row=1,
            hint="a plan's assignments.csv has account_id and rep_id columns",
        )
    table = pd.DataFrame(
        {"account_id": raw["account_id"].astype("string").str.strip(), "rep_id": raw["rep_id"].astype("string")}
    )
    twice = table["account_id"].duplicated(keep="first").to_numpy()
    issues = IssueCollector()
    for index in np.flatnonzero(twice)[:20]:
        issues.add(
            f"account '{table['account_id'].iloc[index]}' appears twice",
            file=path,
            row=spreadsheet_row(index),
            column="account_id",
            hint="a plan lists each account once; use the folder as `territory solve` wrote it",
        )
    issues.raise_if_any()
    return table


def baseline_owners(
    accounts: pd.DataFrame,
    plan: pd.DataFrame,
    valid_reps: set[str],
    label: str,
    where: tuple[Path, str] | None = None,
) -> pd.Series:
    """Current rep of every account according to a baseline plan.

    Parameters
    ----------
    accounts
        Validated accounts (``account_id, current_rep, locked`` ...).
    plan
        ``account_id, rep_id`` of the baseline plan.
    valid_reps
        Reps in the reps table plus reps who leave.
    label
        Where the plan came from (``plan folder DIR`` names its assignments.csv in messages).
    where
        The file and column (or scenario key) the plan's reps came from, for messages; rows (the plan's index,
        as read) are named when the file is a table. Default: the assignments.csv of the plan folder in
        ``label``, column ``rep_id``.

    Accounts the plan does not list (new since the plan) have no baseline,
    except locked ones, which keep the rep of the accounts table.

    Raises
    ------
    InputError
        The plan gives accounts to reps who are neither in the reps table nor leaving.
    """
    owner = plan.set_index("account_id")["rep_id"]
    mapped = accounts["account_id"].astype("string").map(owner).astype("string")
    locked = accounts["locked"].to_numpy(bool)
    mapped = mapped.where(~(locked & mapped.isna().to_numpy()), accounts["current_rep"])
    unknown = plan[~plan["rep_id"].isin(valid_reps) & plan["rep_id"].notna()]
    file, column = where or (Path(label.removeprefix("plan folder ")) / ASSIGNMENTS_FILE, "rep_id")
    if file.suffix.lower() != ".csv":  # a plan solved on the way: one message per rep, no rows to name
        unknown = unknown.drop_duplicates("rep_id")
    issues = IssueCollector()
    for index in unknown.index[:20]:
        issues.add(
            f"rep '{unknown.loc[index, 'rep_id']}' of the baseline plan is not in the reps table",
            file=file,
            row=spreadsheet_row(index) if file.suffix.lower() == ".csv" else None,
            column=column,
            hint="list the rep under headcount.remove if they left, or add them back to the reps table",
        )
    issues.raise_if_any()
    listed = int(mapped.notna().sum())
    logger.info("baseline %s: %d of %d accounts have a baseline rep", label, listed, len(accounts))
    return mapped


def release_departed_locks(accounts: pd.DataFrame, departed: tuple[str, ...]) -> list[str]:
    """Unlock accounts locked to reps who leave (they must move); return a note for each rep concerned."""
    if not departed:
        return []
    locked = accounts["locked"].to_numpy(bool) & accounts["current_rep"].isin(departed).to_numpy()
    notes = []
    for rep in departed:
        mine = locked & (accounts["current_rep"] == rep).to_numpy()
        if mine.any():
            ids = ", ".join(accounts.loc[mine, "account_id"].astype(str).head(5))
            more = "" if mine.sum() <= 5 else f" and {int(mine.sum()) - 5} more"
            notes.append(
                f"{int(mine.sum())} account(s) locked to departing rep '{rep}' were unlocked: they must move "
                f"({ids}{more})"
            )
            logger.warning(notes[-1])
    accounts.loc[locked, "locked"] = False
    return notes
