"""Accounts and reps: read, map columns, validate, normalise.

The result is a :class:`Dataset` whose tables use the engine's vocabulary:

accounts
    ``account_id, name, latitude, longitude, segment, potential, workload,
    current_rep, locked, parent_id, family_id`` plus one float column per
    custom balance metric (named after the metric).
reps
    ``rep_id, name, latitude, longitude, segment, fte``.

Every problem found is collected and raised together as one
:class:`~models.errors.InputError` naming file, row and column.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.columns import (
    ACCOUNT_FIELDS,
    REP_FIELDS,
    check_blank_ids,
    check_duplicate_ids,
    closest_column,
    column_for,
    normalise_ids,
    normalise_labels,
    parse_flags,
    parse_numbers,
)
from models.errors import InputError, IssueCollector
from models.headcount import apply_headcount, baseline_owners, read_plan_assignments, release_departed_locks
from models.scenario import (
    ANY_SEGMENT,
    BUILTIN_METRICS,
    FORECAST_METRIC,
    AccountColumns,
    LoadedScenario,
    RepColumns,
    Scenario,
)
from models.tables import FIRST_DATA_ROW, read_table, spreadsheet_row

if TYPE_CHECKING:
    from models.forecast import ForecastResult
    from models.units import UnitLayer

logger = logging.getLogger(__name__)

SET_ASIDE_COLUMNS = ("account_id", "name", "row", "column", "reason")


@dataclass(frozen=True)
class Dataset:
    """Validated accounts and reps of one scenario.

    Attributes
    ----------
    accounts, reps
        Normalised tables (see the module docstring).
    scenario
        The scenario the data belong to.
    source
        Where the scenario file lies, when it came from one.
    units
        Basic units (polygons, hexagons, Voronoi cells) and their adjacency;
        ``None``: every account family is a unit and no adjacency is needed.
    set_aside
        Accounts left out of the plan (``data.unusable_accounts: set_aside``):
        ``account_id, name, row, column, reason``.
    forecast
        The opportunities with their win probability and expected revenue
        (``data.opportunities``); their sum per account is the accounts'
        ``expected_revenue`` column. ``None`` without opportunities.
    departed, hires
        Reps who leave (``headcount.remove``: their accounts must move) and
        open territories added for hires (``headcount.add``).
    baseline
        Where the accounts' ``current_rep`` (the plan in force) came from.
    pins
        The pins applied (``account_id, unit_id, rep_id, note, row``; see :mod:`models.pins`), or ``None``;
        the accounts then carry a ``pinned_rep`` column.
    notes
        Things the planner should know about the data (e.g. released locks).
    """

    accounts: pd.DataFrame
    reps: pd.DataFrame
    scenario: Scenario
    source: Path | None = None
    set_aside: pd.DataFrame = dataclasses.field(default_factory=lambda: pd.DataFrame(columns=list(SET_ASIDE_COLUMNS)))
    units: UnitLayer | None = None
    forecast: ForecastResult | None = None
    departed: tuple[str, ...] = ()
    hires: tuple[str, ...] = ()
    baseline: str = "current_rep column"
    pins: pd.DataFrame | None = None
    notes: tuple[str, ...] = ()

    def metric_values(self, metric: str) -> np.ndarray:
        """Per-account values of a balance metric, in input units."""
        return metric_values(self.accounts, metric)


def metric_values(accounts: pd.DataFrame, metric: str) -> np.ndarray:
    """Per-account values of a metric: 1 for ``accounts``, else the column."""
    if metric == "accounts":
        return np.ones(len(accounts), dtype=float)
    return accounts[metric].to_numpy(dtype=float)


def _find_columns(
    raw: pd.DataFrame,
    fields: tuple[str, ...],
    mapping: AccountColumns | RepColumns,
    table: str,
    *,
    file: Path,
    issues: IssueCollector,
    required: set[str],
) -> dict[str, str | None]:
    """Column of every field of a table (``None`` when absent), recording missing required ones."""
    cols: dict[str, str | None] = {}
    for field in fields:
        key = "id" if field in {"account_id", "rep_id"} else field  # the standard column name of ids is 'id'
        cols[field] = column_for(
            raw,
            getattr(mapping, key),
            "id" if key == "id" else field,
            file=file,
            mapping_key=f"columns.{table}.{key}",
            issues=issues,
            required=field in required,
        )
    return cols


def read_reps(path: Path, scenario: Scenario, sheet: str | None = None) -> pd.DataFrame:
    """Read and validate the reps table.

    Parameters
    ----------
    path
        The reps file.
    scenario
        Supplies the column mapping and the rules the reps must fit.
    sheet
        Excel sheet or GeoPackage layer.

    Returns
    -------
    pandas.DataFrame
        Columns ``rep_id, name, latitude, longitude, segment, fte``.

    Raises
    ------
    InputError
        Every problem found, each with file, row and column.
    """
    raw = read_table(path, sheet)
    issues = IssueCollector()
    mapping = scenario.columns.reps
    needs_segment = bool(scenario.segment_rules) or any(rule.within == "segment" for rule in scenario.balance.values())
    required = {"rep_id"}
    if scenario.objective.compactness > 0 and scenario.objective.compactness_measure == "home_base":
        required |= {"latitude", "longitude"}
    if needs_segment:
        required.add("segment")
    cols = _find_columns(raw, REP_FIELDS, mapping, "reps", file=path, issues=issues, required=required)
    issues.raise_if_any()
    if raw.empty:
        raise InputError.single("the reps table has no rows", file=path, hint="add at least one rep")
    out = pd.DataFrame(index=raw.index)
    out["rep_id"] = normalise_ids(raw[cols["rep_id"]])
    check_blank_ids(out["rep_id"], file=path, column=cols["rep_id"], issues=issues, what="rep")
    check_duplicate_ids(out["rep_id"], file=path, column=cols["rep_id"], issues=issues, what="rep")
    out["name"] = raw[cols["name"]].astype("string").fillna("") if cols["name"] else out["rep_id"]
    needs_home = scenario.objective.compactness > 0 and scenario.objective.compactness_measure == "home_base"
    for coord, limit in (("latitude", 90.0), ("longitude", 180.0)):
        if cols[coord] is None:
            out[coord] = np.nan
            continue
        out[coord] = parse_numbers(
            raw[cols[coord]],
            file=path,
            column=cols[coord],
            issues=issues,
            what=f"home-base {coord}",
            low=-limit,
            high=limit,
            blank_ok=True,
        )
        for index in np.flatnonzero(
            np.isnan(out[coord].to_numpy()) & raw[cols[coord]].isna().to_numpy()
            | (raw[cols[coord]].astype("string").fillna("").str.strip() == "").to_numpy()
        ):
            if needs_home:
                issues.add(
                    f"home-base {coord} is blank, and the compactness objective measures distance from it",
                    file=path,
                    row=spreadsheet_row(index),
                    column=cols[coord],
                    hint="fill in the rep's home base, or set objective.compactness_measure: centre (compactness "
                    "around each territory's centre) or objective.compactness: 0 to plan without home bases",
                )
    out["segment"] = normalise_labels(raw[cols["segment"]]) if cols["segment"] else ANY_SEGMENT
    out.loc[out["segment"] == "", "segment"] = ANY_SEGMENT
    if cols["fte"]:
        fte = parse_numbers(raw[cols["fte"]], file=path, column=cols["fte"], issues=issues, what="FTE", blank_ok=True)
        fte = np.where(np.isnan(fte), 1.0, fte)
        for index in np.flatnonzero(fte <= 0):
            issues.add(
                f"FTE {fte[index]:g} must be above zero",
                file=path,
                row=spreadsheet_row(index),
                column=cols["fte"],
                hint="use 1.0 for a full-time rep, 0.5 for half time; remove reps who have left",
            )
        out["fte"] = fte
    else:
        out["fte"] = 1.0
    for limit in ("quota_floor", "quota_cap"):  # optional per-rep quota limits (blank: the scenario's)
        if cols[limit]:
            out[limit] = parse_numbers(
                raw[cols[limit]], file=path, column=cols[limit], issues=issues, what=limit.replace("_", " "),
                low=0.0, blank_ok=True,
            )  # fmt: skip
    if scenario.segment_rules:
        known = {ANY_SEGMENT} | {rep for rule in scenario.segment_rules.values() for rep in rule.reps}
        for index, label in enumerate(out["segment"]):
            if label not in known:
                close = difflib.get_close_matches(label, sorted(known), n=1, cutoff=0.6)
                issues.add(
                    f"segment preference '{label}' is not named by any segment rule",
                    file=path,
                    row=spreadsheet_row(index),
                    column=cols["segment"],
                    hint=(f"did you mean '{close[0]}'? " if close else "") + f"use one of {', '.join(sorted(known))}",
                )
    issues.raise_if_any()
    return out.reset_index(drop=True)


def read_accounts(
    path: Path, scenario: Scenario, rep_ids: set[str], sheet: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate the accounts table.

    Parameters
    ----------
    path
        The accounts file.
    scenario
        Supplies the column mapping, workload rule, metrics and segment rules.
    rep_ids
        Ids of the reps, to check current owners.
    sheet
        Excel sheet or GeoPackage layer.

    Returns
    -------
    tuple of pandas.DataFrame
        The normalised accounts (see the module docstring), and the accounts
        set aside (empty unless ``data.unusable_accounts`` is ``set_aside``).

    Raises
    ------
    InputError
        Every problem found, each with file, row and column.
    """
    raw = read_table(path, sheet)
    issues = IssueCollector()
    values = IssueCollector()  # problems that make one account unusable (may be set aside)
    mapping = scenario.columns.accounts
    derived_workload = scenario.workload.by_segment is not None
    needs_segment = bool(scenario.segment_rules) or derived_workload
    required = {"account_id", "latitude", "longitude"}
    if needs_segment:
        required.add("segment")
    if "potential" in scenario.balance:
        required.add("potential")
    if "workload" in scenario.balance and not derived_workload:
        required.add("workload")
    cols = _find_columns(raw, ACCOUNT_FIELDS, mapping, "accounts", file=path, issues=issues, required=required)
    custom = {
        name: rule.column
        for name, rule in scenario.balance.items()
        if name not in BUILTIN_METRICS and name != FORECAST_METRIC  # the forecast fills expected_revenue
    }
    for name, column in custom.items():
        column_for(
            raw,
            column,
            column or name,
            file=path,
            mapping_key=f"balance.{name}.column",
            issues=issues,
            required=True,
        )
    issues.raise_if_any()
    if raw.empty:
        raise InputError.single("the accounts table has no rows", file=path, hint="add at least one account")

    out = pd.DataFrame(index=raw.index)
    out["account_id"] = normalise_ids(raw[cols["account_id"]])
    check_blank_ids(out["account_id"], file=path, column=cols["account_id"], issues=issues, what="account")
    check_duplicate_ids(out["account_id"], file=path, column=cols["account_id"], issues=issues, what="account")
    out["name"] = raw[cols["name"]].astype("string").fillna("") if cols["name"] else out["account_id"]
    for coord, limit in (("latitude", 90.0), ("longitude", 180.0)):
        out[coord] = parse_numbers(
            raw[cols[coord]], file=path, column=cols[coord], issues=values, what=coord, low=-limit, high=limit
        )
    out["segment"] = normalise_labels(raw[cols["segment"]]) if cols["segment"] else ""
    if cols["potential"]:
        out["potential"] = parse_numbers(
            raw[cols["potential"]], file=path, column=cols["potential"], issues=values, what="potential", low=0.0
        )
    else:
        out["potential"] = 0.0
    if cols["workload"]:  # a workload column wins over hours by segment
        out["workload"] = parse_numbers(
            raw[cols["workload"]], file=path, column=cols["workload"], issues=values, what="workload", low=0.0
        )
    elif derived_workload:
        hours = scenario.workload.by_segment or {}
        out["workload"] = out["segment"].map(hours).astype(float)
        seg_col = cols["segment"] or "segment"
        for index in np.flatnonzero(out["workload"].isna().to_numpy()):
            values.add(
                f"segment '{out['segment'].iloc[index]}' has no hours in workload.by_segment",
                file=path,
                row=spreadsheet_row(index),
                column=seg_col,
                hint=f"add it to workload.by_segment (has: {', '.join(sorted(hours))})",
            )
    else:
        out["workload"] = 0.0
    for name, column in custom.items():
        out[name] = parse_numbers(raw[column], file=path, column=column, issues=values, what=name, low=0.0)
    code = scenario.units.account_column
    if code is not None:  # the unit code joining accounts to a polygon layer (postal code, county ...)
        if code in raw.columns:
            out[code] = normalise_ids(raw[code])
        else:
            close = closest_column(code, list(raw.columns))
            issues.add(
                f"units.account_column names column '{code}', which the file does not have",
                file=path,
                column=code,
                hint=f"did you mean '{close}'?" if close else "name the accounts column holding the unit code",
            )

    if scenario.segment_rules:
        seg_col = cols["segment"] or "segment"
        for index, label in enumerate(out["segment"]):
            if label not in scenario.segment_rules:
                values.add(
                    f"segment '{label}' has no segment rule",
                    file=path,
                    row=spreadsheet_row(index),
                    column=seg_col,
                    hint=f"add segment_rules.{label or '<label>'} to the scenario, or fix the label "
                    f"(rules exist for: {', '.join(sorted(scenario.segment_rules))})",
                )

    out["current_rep"] = (
        normalise_ids(raw[cols["current_rep"]])
        if cols["current_rep"]
        else pd.Series(pd.NA, index=raw.index, dtype="string")
    )
    if cols["current_rep"]:
        unknown = out["current_rep"].notna() & ~out["current_rep"].isin(rep_ids)
        for index in np.flatnonzero(unknown.to_numpy()):
            issues.add(
                f"current rep '{out['current_rep'].iloc[index]}' is not in the reps table",
                file=path,
                row=spreadsheet_row(index),
                column=cols["current_rep"],
                hint="add the rep to the reps table, or blank the cell if the account is unowned",
            )
    out["locked"] = (
        parse_flags(raw[cols["locked"]], file=path, column=cols["locked"], issues=issues) if cols["locked"] else False
    )
    locked_unowned = out["locked"].to_numpy() & out["current_rep"].isna().to_numpy()
    for index in np.flatnonzero(locked_unowned):
        issues.add(
            "account is locked but has no current rep to keep",
            file=path,
            row=spreadsheet_row(index),
            column=cols["locked"] or "locked",
            hint="fill in the current rep or unlock the account",
        )
    out["parent_id"] = (
        normalise_ids(raw[cols["parent_id"]])
        if cols["parent_id"]
        else pd.Series(pd.NA, index=raw.index, dtype="string")
    )
    set_aside = pd.DataFrame(columns=list(SET_ASIDE_COLUMNS))
    if scenario.data.unusable_accounts == "fail":
        issues.extend(InputError(values.issues))
        if values:
            rows = {issue.row for issue in values.issues}
            issues.add(
                f"{len(rows)} account(s) have unusable values (listed above)",
                file=path,
                hint="fix them, or set data.unusable_accounts: set_aside in the scenario to plan without them "
                "(they are then listed in set_aside.csv)",
            )
    elif values:
        out, set_aside = _set_aside(out, values)
        if out.empty:
            issues.add(
                "every account was set aside as unusable",
                file=path,
                hint="fix the problems listed in set_aside.csv (run with data.unusable_accounts: fail to see them)",
            )
    issues.raise_if_any()
    out = out.reset_index(drop=True)
    out["family_id"] = _families(out, path, cols["parent_id"] or "parent_id")
    _check_family_locks(out, path, cols["locked"] or "locked")
    return out, set_aside


def _set_aside(accounts: pd.DataFrame, values: IssueCollector) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop accounts with unusable values, and their family members below them; list why."""
    rows: dict[int, list[tuple[str, str]]] = {}
    for issue in values.issues:
        if issue.row is not None:
            rows.setdefault(issue.row - FIRST_DATA_ROW, []).append((issue.column or "", issue.message))
    drop = np.zeros(len(accounts), dtype=bool)
    drop[list(rows)] = True
    # children follow their parent: an account whose parent is set aside goes too
    ids = accounts["account_id"].to_numpy(dtype=object)
    parents = accounts["parent_id"].to_numpy(dtype=object, na_value=None)
    while True:
        gone = set(ids[drop])
        follow = np.array([p is not None and p in gone for p in parents]) & ~drop
        if not follow.any():
            break
        for index in np.flatnonzero(follow):
            rows[int(index)] = [("parent_id", f"its parent account '{parents[index]}' is set aside")]
        drop |= follow
    listed = pd.DataFrame(
        [
            {
                "account_id": ids[index],
                "name": accounts["name"].iloc[index],
                "row": index + FIRST_DATA_ROW,
                "column": "; ".join(dict.fromkeys(c for c, _ in reasons)),
                "reason": "; ".join(m for _, m in reasons),
            }
            for index, reasons in sorted(rows.items())
        ],
        columns=list(SET_ASIDE_COLUMNS),
    )
    logger.warning("%d accounts set aside as unusable (listed in set_aside.csv)", len(listed))
    return accounts[~drop], listed


def _families(accounts: pd.DataFrame, path: Path, parent_column: str) -> pd.Series:
    """Return each account's family root id, following parent links; reject unknown parents and cycles."""
    issues = IssueCollector()
    ids = accounts["account_id"].to_numpy(dtype=object)
    parents = accounts["parent_id"].to_numpy(dtype=object, na_value=None)
    # every parent looked up at once (ids are unique: checked before); a loop over a dict took 0.8 s at 1,000,000
    has_parent = np.array(accounts["parent_id"].notna(), dtype=bool)
    has_parent[has_parent] = parents[has_parent] != ids[has_parent]
    parent_index = np.full(len(ids), -1, dtype=np.int64)
    found = pd.Index(ids).get_indexer(parents[has_parent])
    parent_index[has_parent] = found
    for i in np.flatnonzero(has_parent)[found < 0]:
        issues.add(
            f"parent account '{parents[i]}' is not in the accounts table",
            file=path,
            row=spreadsheet_row(i),
            column=parent_column,
            hint="fix the parent id or blank it",
        )
    issues.raise_if_any()
    # pointer jumping: each round doubles the distance a pointer covers, so log2(depth) rounds reach the root
    # (top parents point at themselves); a cycle never reaches one
    root = np.where(parent_index < 0, np.arange(len(ids)), parent_index)
    for _ in range(64):
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    cyclic = parent_index[root] >= 0
    for i in np.flatnonzero(cyclic)[:20]:
        issues.add(
            f"account '{ids[i]}' is part of a parent cycle",
            file=path,
            row=spreadsheet_row(i),
            column=parent_column,
            hint="an account family needs one top parent with a blank parent id",
        )
    issues.raise_if_any()
    return pd.Series(ids[root], index=accounts.index, dtype="string")


def _check_family_locks(accounts: pd.DataFrame, path: Path, locked_column: str) -> None:
    locked = accounts[accounts["locked"]]
    if locked.empty:
        return
    owners = locked.groupby("family_id")["current_rep"].nunique()
    issues = IssueCollector()
    for family in owners[owners > 1].index:
        members = locked[locked["family_id"] == family]
        index = int(members.index[0])
        issues.add(
            f"account family '{family}' has members locked to different reps "
            f"({', '.join(sorted(members['current_rep'].astype(str).unique()))})",
            file=path,
            row=spreadsheet_row(index),
            column=locked_column,
            hint="a family moves as one: lock its members to one rep",
        )
    issues.raise_if_any()


def load_dataset(
    loaded: LoadedScenario,
    baseline: pd.DataFrame | None = None,
    baseline_label: str = "",
    baseline_source: tuple[Path, str] | None = None,
    pins: pd.DataFrame | None = None,
) -> Dataset:
    """Read, validate and normalise the accounts and reps of a scenario.

    Parameters
    ----------
    loaded
        A scenario loaded with :func:`models.scenario.load_scenario`.
    baseline, baseline_label
        The plan in force (``account_id, rep_id``) and where it came from, when the caller solved or read it
        (``continuity.baseline.scenario``, ``--baseline``); by default the scenario's ``continuity.baseline``.
    baseline_source
        The file and column (or scenario key) the given baseline's reps came from, named in messages
        (see :func:`models.headcount.baseline_owners`).
    pins
        Pins to apply instead of the scenario's ``pins`` file (the workbench's edits; see :mod:`models.pins`).

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        All problems found in the reps table, or, if it is sound, in the
        accounts table.
    """
    scenario = loaded.scenario
    reps = read_reps(loaded.data_path(scenario.data.reps), scenario, scenario.data.reps_sheet)
    reps, departed = apply_headcount(reps, scenario.headcount, loaded.path)
    if scenario.quota is not None:  # floors and caps against the target do not depend on the plan
        from models.quota import check_quota_limits

        mapped = scenario.columns.reps
        check_quota_limits(
            reps,
            scenario.quota,
            reps_file=loaded.data_path(scenario.data.reps),
            scenario_file=loaded.path,
            columns=(mapped.quota_floor or "quota_floor", mapped.quota_cap or "quota_cap"),
        )
    accounts, set_aside = read_accounts(
        loaded.data_path(scenario.data.accounts),
        scenario,
        set(reps["rep_id"]) | set(departed),
        scenario.data.accounts_sheet,
    )
    choice = scenario.continuity.baseline
    label = "current_rep column"
    if baseline is None and not isinstance(choice, str) and choice.plan is not None:
        folder = loaded.data_path(choice.plan)
        baseline, baseline_label = read_plan_assignments(folder), f"plan folder {folder}"
    if baseline is not None:
        owners = baseline_owners(
            accounts, baseline, set(reps["rep_id"]) | set(departed), baseline_label, baseline_source
        )
        accounts = accounts.assign(current_rep=owners)
        label = baseline_label or "given baseline"
    elif not isinstance(choice, str) and choice.scenario is not None:
        label = f"current_rep column (the baseline scenario {choice.scenario} was not solved)"
    notes = release_departed_locks(accounts, departed)
    logger.info("dataset: %d accounts (%d set aside), %d reps", len(accounts), len(set_aside), len(reps))
    forecast = None
    if scenario.data.opportunities is not None:
        from models.forecast import forecast_dataset

        forecast = forecast_dataset(loaded, accounts, set(set_aside["account_id"]))
        accounts = accounts.assign(**{FORECAST_METRIC: forecast.by_account(accounts["account_id"])})
    units = None
    needs_edges = scenario.territories.contiguous or scenario.objective.distance == "graph"
    if scenario.units.source != "accounts" or needs_edges:
        from models.units import build_units, team_of_segments

        teams = team_of_segments({label: (rule.mode, rule.reps) for label, rule in scenario.segment_rules.items()})
        units = build_units(accounts, scenario.units, loaded.base_dir, need_edges=needs_edges, teams=teams)
    pins_file = loaded.data_path(scenario.pins) if scenario.pins is not None else None
    if pins is None and pins_file is not None:
        from models.pins import read_pins

        pins = read_pins(pins_file)
    if pins is not None:
        from models.pins import PINNED_COLUMN, resolve_pins

        if units is not None:
            unit_ids, unit_of_account = units.unit_ids, units.unit_of_account
        else:
            unit_ids, unit_of_account = np.unique(accounts["family_id"].to_numpy(dtype=object), return_inverse=True)
        pinned, pin_notes = resolve_pins(
            pins,
            accounts,
            reps,
            scenario,
            unit_ids=unit_ids,
            unit_of_account=unit_of_account,
            departed=departed,
            set_aside=set(set_aside["account_id"]),
            file=pins_file,
        )
        accounts = accounts.assign(**{PINNED_COLUMN: pinned})
        notes = [*notes, *pin_notes]
    return Dataset(
        departed=departed,
        hires=tuple(h.id for h in scenario.headcount.add),
        baseline=label,
        pins=pins,
        notes=tuple(notes),
        accounts=accounts,
        reps=reps,
        scenario=scenario,
        source=loaded.path,
        set_aside=set_aside,
        units=units,
        forecast=forecast,
    )
