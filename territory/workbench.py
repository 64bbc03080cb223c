"""The planner's workbench: one plan being edited, its figures kept current, undo and redo, re-solves, saving.

A :class:`Workbench` holds a plan of one scenario while a planner works on it (``territory serve`` puts a web
page in front of it; :mod:`territory.serve` only translates HTTP to these calls, so everything here works from
Python as well)::

    bench = open_workbench("plans/example")           # a plan folder, or a scenario file (solved first)
    bench.assign(bench.units_of(["A0000001"]), "R003")  # moves the account's family and pins it to R003
    bench.undo()
    job = bench.start_solve(budget=50)                  # pins held, at most 50 accounts moved from this plan
    job.wait(); bench.accept(job)
    bench.save("plans/example-edited")                  # plan folder + pins.csv + scenario.yaml

Every edit moves whole units (account families, or geographic units) and pins them to their new rep: later
solves keep them there (:mod:`models.pins`). Edits are checked against the hard rules the solver keeps (hard
segment rules, ``territories.max_distance_km``, candidate limits): they are the pairs of a problem built
without locks or pins, whose pair costs also give the plan's objective (one scorer for edits and solves).

The figures are kept incrementally: an edit changes the per-rep sums by the moved accounts' values only, and
recomputes the largest distance of the reps it touched, so an edit of a few accounts costs microseconds at any
size; :meth:`Workbench.kpis` then derives targets and deviations from the per-rep sums.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from models.balance import balance_groups, deviation_pct, targets
from models.dataset import Dataset, metric_values
from models.errors import InputError
from models.geo import haversine_km
from models.pins import PIN_COLUMNS, PINNED_COLUMN
from models.plan import TOLERANCE_EPS, Plan
from models.scenario import ANY_SEGMENT, BUILTIN_METRICS
from optimizer import InfeasibleError, Problem, ProgressEvent, SolveSettings, build_problem, solve
from optimizer.problem import expand_ranges
from optimizer.result import Result, Status
from territory.pipeline import prepare, solve_prepared, solve_settings

logger = logging.getLogger(__name__)

#: File of a saved folder recording which save wrote it (the version check between tabs and apps).
SAVE_RECORD = "workbench.json"
#: Files a save adds to the plan folder.
PINS_FILE, SCENARIO_FILE = "pins.csv", "scenario.yaml"
#: Status written for a plan changed by hand since its last solve.
EDITED = "edited"
#: Extra account columns with at most this many values become filters of the page.
MAX_FACET_VALUES = 60
#: Territory areas are padded by this share of the map's diagonal (as the plan map pads them).
AREA_PAD_SHARE = 0.015
#: Share of a re-solve's time limit that repairing the plan on screen may take (the first plan of a re-solve).
REPAIR_SHARE = 0.5
#: Unit polygons are simplified to this many degrees for the page.
UNIT_SIMPLIFY_DEG = 0.002


class WorkbenchError(Exception):
    """A request the workbench refuses; nothing changed. ``status`` is the HTTP status the web layer answers."""

    status = 400


class NotFoundError(WorkbenchError):
    """An unknown rep, account, unit or job."""

    status = 404


class ConflictError(WorkbenchError):
    """A stale version: the plan changed (another tab, another save) since the caller last saw it."""

    status = 409


class RuleBrokenError(WorkbenchError):
    """An edit that breaks a hard rule (a hard segment rule, the largest distance from a home base)."""

    status = 422


@dataclass(frozen=True)
class Change:
    """One undoable step: units moved (and pinned or unpinned) from ``before`` to ``after``."""

    label: str
    units: np.ndarray
    before: np.ndarray
    after: np.ndarray
    pins_before: np.ndarray
    pins_after: np.ndarray


@dataclass
class SolveJob:
    """A re-solve running in a worker thread: its progress, and the proposal it ends with.

    Attributes
    ----------
    id
        Job id (the web layer's handle).
    version
        The plan version the solve started from; accepting it needs the plan still at that version.
    budget
        Accounts that may leave the rep they have in the plan (``None``: no limit).
    events
        Progress (seconds, objective, bound, gap) as the search improves.
    state
        ``running``, ``done`` (a proposal), ``failed`` (``message`` says why), ``accepted``, ``rejected``.
    proposal
        Rep row of every unit in the plan found.
    """

    id: str
    version: int
    budget: int | None
    cancel: threading.Event = field(default_factory=threading.Event)
    events: list[dict[str, Any]] = field(default_factory=list)
    state: str = "running"
    message: str = ""
    proposal: np.ndarray | None = None
    result: Result | None = None
    started: float = field(default_factory=time.perf_counter)
    thread: threading.Thread | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the solve to end; whether it did."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self.state != "running"


class Workbench:
    """A plan being edited; see the module docstring.

    Parameters
    ----------
    plan
        The plan to start from; its dataset holds the scenario, the data, the baseline, locks and pins.
    source
        The plan folder or scenario file opened.
    """

    def __init__(self, plan: Plan, source: Path) -> None:
        self.dataset: Dataset = plan.dataset
        self.source = Path(source).resolve()
        self.report = plan.report
        #: Held by every step that reads or changes the plan (the web server answers from several threads).
        self.lock = threading.RLock()
        data = self.dataset
        acc, reps = data.accounts, data.reps
        # the problem of the hard rules alone (no locks, no pins): its pairs are what an edit may do, its pair
        # costs the objective of any plan
        free = acc.assign(locked=False).drop(columns=[PINNED_COLUMN], errors="ignore")
        self.rules: Problem = build_problem(dataclasses.replace(data, accounts=free))
        self.unit_of_account = self.rules.unit_of_account
        self.num_units, self.num_reps = self.rules.num_units, len(reps)
        self.rep_ids = reps["rep_id"].astype(str).to_numpy(dtype=object)
        self._rep_row = {rep: i for i, rep in enumerate(self.rep_ids)}
        self._account_row = {a: i for i, a in enumerate(acc["account_id"].astype(str))}
        self._unit_row = {str(u): i for i, u in enumerate(self.rules.unit_ids)}
        order = np.argsort(self.unit_of_account, kind="stable")
        self._accounts_by_unit = order
        self._unit_start = np.searchsorted(self.unit_of_account[order], np.arange(self.num_units + 1))
        self.unit_rep = np.full(self.num_units, -1, dtype=np.int64)
        self.unit_rep[self.unit_of_account] = plan.rep_index
        if (self.unit_rep < 0).any():  # units without accounts (a polygon layer): the plan's own units
            empty = self.unit_rep < 0
            self.unit_rep[empty] = plan.unit_rep[empty] if plan.unit_rep is not None else 0
        self.pins = np.full(self.num_units, -1, dtype=np.int64)
        if PINNED_COLUMN in acc:
            pinned = acc[PINNED_COLUMN].notna().to_numpy()
            self.pins[self.unit_of_account[pinned]] = [self._rep_row[r] for r in acc.loc[pinned, PINNED_COLUMN]]
        self.version = 0
        self.undo_stack: list[Change] = []
        self.redo_stack: list[Change] = []
        self.jobs: dict[str, SolveJob] = {}
        self.saved: dict[Path, str] = {}  # folder -> fingerprint of what this session last read or wrote there
        if self.source.is_dir():
            self.saved[self.source] = folder_fingerprint(self.source)
        self._static_arrays()
        self._recompute()
        self._static_json: str | None = None

    # ------------------------------------------------------------------ data kept per account and per rep
    def _static_arrays(self) -> None:
        """Per-account values the figures need, computed once."""
        acc, reps = self.dataset.accounts, self.dataset.reps
        self.metrics = list(dict.fromkeys([*BUILTIN_METRICS, *self.dataset.scenario.balance, *self._plan_metrics()]))
        self.values = np.stack([metric_values(acc, m) for m in self.metrics])  # metrics x accounts
        self.lat, self.lon = acc["latitude"].to_numpy(float), acc["longitude"].to_numpy(float)
        self.home_lat, self.home_lon = reps["latitude"].to_numpy(float), reps["longitude"].to_numpy(float)
        self.workload = acc["workload"].to_numpy(float)
        self.potential = acc["potential"].to_numpy(float)
        current = acc["current_rep"].to_numpy(object, na_value=None)
        # baseline rep row of every account: -1 none, -2 a rep who leaves (always moves)
        self.baseline = np.array([-1 if c is None else self._rep_row.get(c, -2) for c in current], dtype=np.int64)
        rules = self.dataset.scenario.segment_rules
        labels = sorted(rules) if rules else []
        label_of = {label: k for k, label in enumerate(labels)}
        rep_segments = reps["segment"].to_numpy(dtype=object)
        fits = np.ones((len(labels) + 1, self.num_reps), dtype=bool)  # the last row: no rule
        for label, k in label_of.items():
            fits[k] = [s == ANY_SEGMENT or s in rules[label].reps for s in rep_segments]
        self._fits = fits
        self._segment_class = np.array(
            [label_of.get(s, len(labels)) for s in acc["segment"].to_numpy(dtype=object)], dtype=np.int64
        )
        self.groups = {
            m: balance_groups(list(reps["segment"]), rule.within) for m, rule in self.dataset.scenario.balance.items()
        }
        self.fte = reps["fte"].to_numpy(float)

    def _plan_metrics(self) -> list[str]:
        return Plan(self.dataset, np.zeros(len(self.dataset.accounts), dtype=np.int64), self.report).metrics

    def _recompute(self) -> None:
        """Every per-rep sum from scratch (at start, after undo of big steps it is not needed)."""
        rep = self.unit_rep[self.unit_of_account]
        self.account_rep = rep
        n = self.num_reps
        self.loads = np.stack([np.bincount(rep, weights=v, minlength=n) for v in self.values])
        self.distance = haversine_km(self.lat, self.lon, self.home_lat[rep], self.home_lon[rep])
        self.dist_sum = np.bincount(rep, weights=np.nan_to_num(self.distance), minlength=n)
        self.workload_km = np.bincount(rep, weights=np.nan_to_num(self.distance * self.workload), minlength=n)
        self.max_distance = np.zeros(n)
        with np.errstate(invalid="ignore"):
            np.maximum.at(self.max_distance, rep, np.nan_to_num(self.distance))
        moved = self._moved(rep, np.arange(len(rep)))
        self.moved = moved
        self.gained = np.bincount(rep[moved], minlength=n)
        self.lost = np.bincount(self.baseline[moved & (self.baseline >= 0)], minlength=n)
        self.moved_potential = float(self.potential[moved].sum())
        self.matches = np.bincount(rep, weights=self._fits[self._segment_class, rep].astype(float), minlength=n)
        self.unit_cost = self._costs(np.arange(self.num_units), self.unit_rep)

    def _moved(self, rep: np.ndarray, rows: np.ndarray) -> np.ndarray:
        base = self.baseline[rows]
        return (base != -1) & (base != rep)

    def _costs(self, units: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Objective of each unit with its rep (workload-hour x km, as the solver counts it); NaN where the
        problem offers no such pair."""
        pairs = self._pairs(units, reps)
        rules = self.rules
        cost = np.full(len(units), np.nan)
        ok = pairs >= 0
        p = pairs[ok]
        cost[ok] = rules.compactness_weight * rules.pair_compactness[p]
        cost[ok] += rules.preference_weight * rules.pair_penalty[p]
        if rules.pair_continuity is not None:
            cost[ok] += rules.pair_continuity[p]
        return cost

    def _pairs(self, units: np.ndarray, reps: np.ndarray) -> np.ndarray:
        """Pair position of each ``(unit, rep)`` in the rules problem, -1 where it is not offered."""
        units = np.asarray(units, dtype=np.int64)
        reps = np.asarray(reps, dtype=np.int64)
        start = self.rules.unit_start
        positions, owner = expand_ranges(start[units], start[units + 1])
        hit = self.rules.pair_rep[positions] == reps[owner]
        out = np.full(len(units), -1, dtype=np.int64)
        out[owner[hit]] = positions[hit]
        return out

    def accounts_of(self, units: np.ndarray) -> np.ndarray:
        """Account rows of the given units."""
        units = np.asarray(units, dtype=np.int64)
        positions, _ = expand_ranges(self._unit_start[units], self._unit_start[units + 1])
        return self._accounts_by_unit[positions]

    # ------------------------------------------------------------------ lookups
    def rep_row(self, rep_id: str) -> int:
        """Row of a rep id (raises :class:`NotFoundError`)."""
        row = self._rep_row.get(str(rep_id))
        if row is None:
            raise NotFoundError(f"rep '{rep_id}' is not in this plan (its reps: {', '.join(self.rep_ids[:12])} ...)")
        return row

    def units_of(self, account_ids: Sequence[str] = (), unit_ids: Sequence[str] = ()) -> np.ndarray:
        """Unit rows holding the given accounts and units (raises :class:`NotFoundError` naming the unknown ones)."""
        missing = [a for a in account_ids if str(a) not in self._account_row]
        missing_units = [u for u in unit_ids if str(u) not in self._unit_row]
        if missing or missing_units:
            shown = ", ".join([*(f"account '{a}'" for a in missing[:5]), *(f"unit '{u}'" for u in missing_units[:5])])
            raise NotFoundError(f"not in this plan: {shown}")
        rows = np.array([self._account_row[str(a)] for a in account_ids], dtype=np.int64)
        units = [*self.unit_of_account[rows].tolist(), *(self._unit_row[str(u)] for u in unit_ids)]
        return np.unique(np.array(units, dtype=np.int64))

    def check_version(self, version: int | None) -> None:
        """Raise :class:`ConflictError` when the caller's version is not the plan's (``None``: no check)."""
        if version is not None and int(version) != self.version:
            raise ConflictError(
                f"the plan changed since this page loaded it (this page shows version {version}, the plan is at "
                f"version {self.version}, edited in another tab or window): reload the page to see the plan as it is"
            )

    # ------------------------------------------------------------------ edits
    def assign(self, units: np.ndarray, rep_id: str, *, version: int | None = None) -> dict[str, Any]:
        """Move units to a rep and pin them there (one undoable step).

        Raises
        ------
        NotFoundError
            Unknown rep or unit.
        RuleBrokenError
            A unit may not go to the rep (a hard rule); nothing moves.
        ConflictError
            ``version`` is stale.
        """
        with self.lock:
            self.check_version(version)
            units = self._valid_units(units)
            r = self.rep_row(rep_id)
            self._check_rules(units, r)
            after = np.full(len(units), r, dtype=np.int64)
            change = Change("assign", units, self.unit_rep[units].copy(), after, self.pins[units].copy(), after)
            return self._record(change)

    def unpin(self, units: np.ndarray, *, version: int | None = None) -> dict[str, Any]:
        """Release the pins of units (they stay where they are; later solves may move them)."""
        with self.lock:
            self.check_version(version)
            units = self._valid_units(units)
            none = np.full(len(units), -1, dtype=np.int64)
            change = Change("unpin", units, self.unit_rep[units].copy(), self.unit_rep[units].copy(),
                            self.pins[units].copy(), none)  # fmt: skip
            return self._record(change)

    def undo(self, *, version: int | None = None) -> dict[str, Any]:
        """Take back the last step (raises :class:`ConflictError` when there is none)."""
        with self.lock:
            self.check_version(version)
            if not self.undo_stack:
                raise ConflictError("nothing to undo")
            change = self.undo_stack.pop()
            back = Change(f"undo {change.label}", change.units, change.after, change.before, change.pins_after,
                          change.pins_before)  # fmt: skip
            self.redo_stack.append(change)
            return self._apply(back)

    def redo(self, *, version: int | None = None) -> dict[str, Any]:
        """Do again the last step taken back (raises :class:`ConflictError` when there is none)."""
        with self.lock:
            self.check_version(version)
            if not self.redo_stack:
                raise ConflictError("nothing to redo")
            change = self.redo_stack.pop()
            self.undo_stack.append(change)
            return self._apply(change)

    def _record(self, change: Change) -> dict[str, Any]:
        """Apply a new step: it goes on the undo stack and ends what could be redone."""
        self.undo_stack.append(change)
        self.redo_stack.clear()
        return self._apply(change)

    def _valid_units(self, units: Any) -> np.ndarray:
        units = np.unique(np.asarray(units, dtype=np.int64).ravel())
        if not len(units):
            raise WorkbenchError("select at least one account or unit first")
        if units.min() < 0 or units.max() >= self.num_units:
            raise NotFoundError(f"unit numbers run from 0 to {self.num_units - 1}")
        return units

    def _check_rules(self, units: np.ndarray, rep: int) -> None:
        """Refuse moves the solver could never make: pairs the rules problem does not offer."""
        missing = units[self._pairs(units, np.full(len(units), rep)) < 0]
        if not len(missing):
            return
        u = int(missing[0])
        accounts = self.accounts_of(np.array([u]))
        ids = self.dataset.accounts["account_id"].to_numpy(dtype=object)
        cls = self.rules.unit_class[u]
        name = self.rules.class_names[cls]
        rep_id = self.rep_ids[rep]
        if name and not self.rules.class_allowed[cls, rep]:
            segment = self.dataset.reps["segment"].iloc[rep]
            why = f"its hard segment rule ({name}) does not allow a rep preferring {segment}"
        elif self.dataset.scenario.territories.max_distance_km is not None:
            why = f"it lies more than {self.dataset.scenario.territories.max_distance_km:g} km from the home base"
        else:
            why = "the rep is not among its candidate reps (solver.candidate_reps)"
        more = f" ({len(missing) - 1} more selected units too)" if len(missing) > 1 else ""
        raise RuleBrokenError(f"account '{ids[accounts[0]]}' cannot go to '{rep_id}': {why}{more}; nothing moved")

    def _apply(self, change: Change) -> dict[str, Any]:
        """Apply a change (the caller keeps the undo and redo stacks), update the figures by its accounts, and
        return what the page needs."""
        units, after = change.units, change.after
        moving = after != self.unit_rep[units]
        rows = self.accounts_of(units[moving])
        old = self.account_rep[rows]
        new = np.repeat(after[moving], np.diff(self._unit_start)[units[moving]])
        # accounts_of lists each unit's accounts in unit order, so ``new`` lines up with ``rows``
        self._move_accounts(rows, old, new)
        self.unit_rep[units] = after
        self.unit_cost[units] = self._costs(units, after)
        self.pins[units] = change.pins_after
        self.version += 1
        logger.info("%s: %d units, %d accounts moved (version %d)", change.label, len(units), len(rows), self.version)
        return self.update(units)

    def _move_accounts(self, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        if not len(rows):
            return
        n = self.num_reps

        def delta(new_weights: np.ndarray | None, old_weights: np.ndarray | None = None) -> np.ndarray:
            """Per-rep change: what the accounts bring to their new reps less what they took from the old."""
            taken = new_weights if old_weights is None else old_weights
            return np.bincount(new, weights=new_weights, minlength=n) - np.bincount(old, weights=taken, minlength=n)

        for k in range(len(self.metrics)):
            self.loads[k] += delta(self.values[k, rows])
        old_dist = np.nan_to_num(self.distance[rows])
        self.distance[rows] = haversine_km(self.lat[rows], self.lon[rows], self.home_lat[new], self.home_lon[new])
        new_dist = np.nan_to_num(self.distance[rows])
        w = self.workload[rows]
        self.dist_sum += delta(new_dist, old_dist)
        self.workload_km += delta(new_dist * w, old_dist * w)
        cls = self._segment_class[rows]
        self.matches += delta(self._fits[cls, new].astype(float), self._fits[cls, old].astype(float))
        was, now = self.moved[rows], self._moved(new, rows)
        base = self.baseline[rows]
        self.gained += delta(now.astype(float), was.astype(float)).astype(np.int64)
        gone_now, gone_was = now & (base >= 0), was & (base >= 0)
        self.lost += np.bincount(base[gone_now], minlength=n) - np.bincount(base[gone_was], minlength=n)
        self.moved_potential += float(self.potential[rows][now].sum() - self.potential[rows][was].sum())
        self.moved[rows] = now
        self.account_rep[rows] = new
        touched = np.unique(np.concatenate([old, new]))
        members = np.isin(self.account_rep, touched)
        self.max_distance[touched] = 0.0
        np.maximum.at(self.max_distance, self.account_rep[members], np.nan_to_num(self.distance[members]))

    # ------------------------------------------------------------------ figures
    def update(self, units: np.ndarray | None = None) -> dict[str, Any]:
        """What the page redraws after a step: the version, the units changed with their reps and pins, KPIs."""
        out: dict[str, Any] = {"version": self.version, "kpis": self.kpis(), "undo": len(self.undo_stack),
                               "redo": len(self.redo_stack)}  # fmt: skip
        if units is not None:
            out["units"] = np.asarray(units).tolist()
            out["reps"] = self.unit_rep[units].tolist()
            out["pins"] = self.pins[units].tolist()
        return out

    def objective(self) -> float:
        """Objective of the plan in workload-hour x km, as the solver counts it (NaN if a pair is unknown)."""
        return float(self.unit_cost.sum())

    def kpis(self) -> dict[str, Any]:
        """Each rep's loads against target (out-of-tolerance cells flagged), totals, objective, gap and moves."""
        balance = self.dataset.scenario.balance
        columns = []
        rows: list[dict[str, Any]] = [
            {"rep_id": r, "name": name, "segment": seg, "fte": float(fte)}
            for r, name, seg, fte in zip(
                self.rep_ids, self.dataset.reps["name"], self.dataset.reps["segment"], self.fte, strict=True
            )
        ]
        totals: dict[str, Any] = {"rep_id": "total", "name": f"{self.num_reps} reps", "fte": float(self.fte.sum())}
        within_all = True
        worst: dict[str, float] = {}
        for k, metric in enumerate(self.metrics):
            loads = self.loads[k]
            rule = balance.get(metric)
            columns.append({"key": metric, "tolerance_pct": None if rule is None else rule.tolerance_pct})
            totals[metric] = float(loads.sum())
            if rule is None:
                for row, load in zip(rows, loads, strict=True):
                    row[metric] = _clean(load)
                continue
            target = targets(loads, self.fte, self.groups[metric])
            dev = deviation_pct(loads, target)
            out = np.abs(dev) > rule.tolerance_pct + TOLERANCE_EPS
            within_all &= not bool(out.any())
            worst[metric] = float(np.max(np.abs(dev))) if len(dev) else 0.0
            for row, load, t, d, o in zip(rows, loads, target, dev, out, strict=True):
                row[metric] = _clean(load)
                row[f"{metric}_target"] = _clean(t)
                row[f"{metric}_deviation_pct"] = _clean(d, 4)
                row[f"{metric}_out"] = bool(o)
        counts = self.loads[0]
        pins_per_rep = np.bincount(self.pins[self.pins >= 0], minlength=self.num_reps)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_distance = self.dist_sum / counts
        for i, row in enumerate(rows):
            row.update(
                workload_km=_clean(self.workload_km[i], 0),
                mean_distance_km=_clean(mean_distance[i], 1),
                max_distance_km=_clean(self.max_distance[i], 1),
                gained=int(self.gained[i]),
                lost=int(self.lost[i]),
                pinned_units=int(pins_per_rep[i]),
            )
        objective = self.objective()
        bound = self.report.bound
        gap = (objective - bound) / objective if objective > 0 and math.isfinite(bound) else None
        total_potential = float(self.potential.sum())
        totals.update(
            workload_km=_clean(self.workload_km.sum(), 0),
            mean_distance_km=_clean(self.dist_sum.sum() / max(len(self.distance), 1), 1),
            max_distance_km=_clean(self.max_distance.max(initial=0.0), 1),
            gained=int(self.gained.sum()),
            lost=int(self.lost.sum()),
            pinned_units=int((self.pins >= 0).sum()),
        )
        return {
            "columns": columns,
            "rows": rows,
            "totals": totals,
            "summary": {
                "status": self.status,
                "objective": _clean(objective, 1),
                "bound": _clean(bound, 1),
                "gap_pct": None if gap is None else round(100.0 * max(gap, 0.0), 3),
                "all_within_tolerance": within_all,
                "max_deviation_pct": {m: round(v, 2) for m, v in worst.items()},
                "accounts_moved": int(self.moved.sum()),
                "potential_moved_pct": round(100.0 * self.moved_potential / total_potential, 2)
                if total_potential > 0
                else 0.0,
                "segment_match_pct": round(100.0 * float(self.matches.sum()) / max(len(self.distance), 1), 2),
                "pinned_units": int((self.pins >= 0).sum()),
                "pinned_accounts": int(np.diff(self._unit_start)[self.pins >= 0].sum()),
                "baseline": self.dataset.baseline,
                "disconnected": self._disconnected(),
            },
        }

    def _disconnected(self) -> list[str] | None:
        """Reps whose territory is no longer one connected area (contiguous scenarios; ``None`` otherwise)."""
        if not self.rules.contiguous:
            return None
        from optimizer.score import disconnected

        return [str(self.rep_ids[r]) for r in disconnected(self.rules, self.unit_rep)]

    @property
    def status(self) -> str:
        """The last solve's status, or ``edited`` once the plan was changed by hand after it."""
        return EDITED if self.undo_stack and self.undo_stack[-1].label != "re-optimise" else self.report.status

    def plan(self) -> Plan:
        """The plan as it stands, as a :class:`~models.plan.Plan` (for files, maps and comparisons)."""
        with self.lock:
            objective = self.objective()
            bound = self.report.bound
            gap = (objective - bound) / objective if objective > 0 and math.isfinite(bound) else float("nan")
            report = dataclasses.replace(self.report, status=self.status, objective=objective, gap=max(gap, 0.0))
            return Plan(self.dataset, self.unit_rep[self.unit_of_account].copy(), report, self._unit_rep_or_none())

    def _unit_rep_or_none(self) -> np.ndarray | None:
        return self.unit_rep.copy() if self.dataset.units is not None else None

    def pins_frame(self) -> pd.DataFrame:
        """The pins as a pins table (:mod:`models.pins`): by account (the family's top account) or by unit."""
        units = np.flatnonzero(self.pins >= 0)
        by_unit = self.dataset.units is not None
        ids = self.rules.unit_ids[units].astype(str)
        frame = pd.DataFrame(
            {
                "account_id": pd.Series([None] * len(units) if by_unit else ids, dtype="string"),
                "unit_id": pd.Series(ids if by_unit else [None] * len(units), dtype="string"),
                "rep_id": self.rep_ids[self.pins[units]].astype(str),
                "note": "workbench",
            }
        )
        return frame[list(PIN_COLUMNS)]

    # ------------------------------------------------------------------ what the page draws
    def page_json(self) -> str:
        """:meth:`page_data` as JSON; the parts that never change (accounts, reps, filters) are serialised once."""
        if self._static_json is None:
            self._static_json = json.dumps(self._static_page(), allow_nan=False)
        with self.lock:
            dynamic = json.dumps(
                {"unit_rep": self.unit_rep.tolist(), "pins": self.pins.tolist(), **self.update()}, allow_nan=False
            )
        return self._static_json[:-1] + ", " + dynamic[1:]

    def page_data(self) -> dict[str, Any]:
        """Everything the page needs once: reps, accounts as columns, the plan, pins, figures, filters."""
        return json.loads(self.page_json())

    def _static_page(self) -> dict[str, Any]:
        from maps.palette import territory_colors

        with self.lock:
            acc, reps = self.dataset.accounts, self.dataset.reps
            segments = acc["segment"].astype(str).to_numpy(dtype=object)
            labels, segment_code = np.unique(segments, return_inverse=True)
            colors = territory_colors(self.num_reps)
            return {
                "name": self.dataset.scenario.name,
                "source": str(self.source),
                "default_folder": str(self.default_folder()),
                "metrics": self.metrics,
                "reps": [
                    {
                        "rep_id": r,
                        "name": str(n),
                        "segment": str(sg),
                        "fte": float(f),
                        "lat": _clean(la, 5),
                        "lon": _clean(lo, 5),
                        "color": c,
                    }
                    for r, n, sg, f, la, lo, c in zip(
                        self.rep_ids,
                        reps["name"],
                        reps["segment"],
                        self.fte,
                        self.home_lat,
                        self.home_lon,
                        colors,
                        strict=True,
                    )
                ],
                "accounts": {
                    "id": acc["account_id"].astype(str).tolist(),
                    "name": acc["name"].astype(str).tolist(),
                    "lat": np.round(np.nan_to_num(self.lat), 5).tolist(),
                    "lon": np.round(np.nan_to_num(self.lon), 5).tolist(),
                    "unit": self.unit_of_account.tolist(),
                    "segments": labels.tolist(),
                    "segment": segment_code.tolist(),
                    "baseline": self.baseline.tolist(),
                    "locked": np.flatnonzero(acc["locked"].to_numpy(bool)).tolist(),
                    "potential": np.round(np.nan_to_num(self.potential), 0).tolist(),
                },
                "facets": self._facets(),
                "unit_ids": self.rules.unit_ids.astype(str).tolist() if self.dataset.units is not None else None,
                "max_budget": len(acc),
            }

    def _facets(self) -> dict[str, list[Any]]:
        """Extra columns of the accounts table with few distinct values (a metro, a region): filters for the
        page, as ``{column: [values, code of every account]}``. Empty when the table cannot be read again."""
        from models.tables import read_table

        scenario = self.dataset.scenario
        mapped = {v for v in scenario.columns.accounts.model_dump().values() if v}
        try:
            raw = read_table(self.dataset.source.parent / scenario.data.accounts, scenario.data.accounts_sheet)
        except (InputError, OSError, TypeError):
            return {}
        id_column = scenario.columns.accounts.id or "id"
        if id_column not in raw:
            return {}
        raw = raw.drop_duplicates(id_column).set_index(raw[id_column].astype(str).str.strip())
        raw = raw.reindex(self.dataset.accounts["account_id"].astype(str))
        out: dict[str, list[Any]] = {}
        for column in raw.columns:
            if column in mapped or column == id_column or column in {"id", "name", "segment", "current_rep"}:
                continue
            values = raw[column].astype("string").fillna("")
            distinct = values.unique()
            if 1 < len(distinct) <= MAX_FACET_VALUES:
                labels, codes = np.unique(values.to_numpy(dtype=object).astype(str), return_inverse=True)
                out[str(column)] = [labels.tolist(), codes.tolist()]
        return out

    def areas(self, rows: Sequence[int] | None = None) -> dict[str, Any]:
        """Each rep's territory as an area around its accounts (GeoJSON), for the reps given (default: all)."""
        from shapely.geometry import mapping

        from maps.plan_map import territory_area

        with self.lock:
            rows = range(self.num_reps) if rows is None else rows
            features = []
            finite = np.isfinite(self.lat) & np.isfinite(self.lon)
            if not finite.any():
                return {"type": "FeatureCollection", "features": []}
            lat, lon = self.lat[finite], self.lon[finite]
            diagonal = math.hypot(float(lat.max() - lat.min()), float(lon.max() - lon.min()))
            pad = min(max(AREA_PAD_SHARE * diagonal, 0.003), 0.25)
            scale = math.cos(math.radians(float(lat.mean())))
            for r in rows:
                members = np.flatnonzero((self.account_rep == r) & finite)
                area = territory_area(self.lon[members], self.lat[members], pad=pad, lon_scale=scale)
                geometry = None if area is None else mapping(area)
                features.append({"type": "Feature", "geometry": geometry,
                                 "properties": {"rep": int(r), "rep_id": self.rep_ids[r]}})  # fmt: skip
            return {"type": "FeatureCollection", "features": features}

    def unit_shapes(self) -> dict[str, Any]:
        """The unit polygons (GeoJSON, simplified for the screen) with each unit's row; none without a layer."""
        layer = self.dataset.units
        if layer is None or layer.geometry is None:
            return {"type": "FeatureCollection", "features": []}
        shapes = layer.geometry.simplify(UNIT_SIMPLIFY_DEG, preserve_topology=True)
        features = [
            {"type": "Feature", "geometry": json.loads(json.dumps(shape.__geo_interface__)), "properties": {"unit": i}}
            for i, shape in enumerate(shapes)
            if shape is not None and not shape.is_empty
        ]
        return {"type": "FeatureCollection", "features": features}

    def compare_page(self, folder: Path) -> str:
        """The plan beside another plan folder, as ``territory compare`` shows them (synchronised panes)."""
        from maps import build_compare_map, page_html
        from territory.compare import load_plan_folder

        other = load_plan_folder(folder)
        figure = build_compare_map([self.plan(), other], ["workbench", Path(folder).name or "other"], offline=True)
        return page_html(figure, offline=True)

    # ------------------------------------------------------------------ re-solving
    def start_solve(
        self,
        *,
        budget: int | None = None,
        time_limit_s: float | None = None,
        version: int | None = None,
    ) -> SolveJob:
        """Solve again in a worker thread: pins as hard locks, at most ``budget`` accounts moved from this plan.

        With a budget, the plan on screen is the baseline the budget counts against (and the search starts
        from it); without one the scenario's own baseline stays, so the saved scenario's ``territory solve``
        solves the same problem.

        Raises
        ------
        ConflictError
            Another solve is running, or ``version`` is stale.
        """
        with self.lock:
            self.check_version(version)
            if any(job.state == "running" for job in self.jobs.values()):
                raise ConflictError("a solve is already running: wait for it or cancel it")
            if budget is not None and budget < 0:
                raise WorkbenchError("the move budget is a number of accounts, zero or more")
            problem = self._solve_problem(budget)
            settings = self._settings(time_limit_s)
            hint = self.unit_rep.copy() if (budget is not None or settings.time_limit_s is not None) else None
            job = SolveJob(id=uuid.uuid4().hex[:12], version=self.version, budget=budget)
            self.jobs[job.id] = job
        job.thread = threading.Thread(
            target=self._run_solve, args=(job, problem, settings, hint), name=f"solve-{job.id}", daemon=True
        )
        job.thread.start()
        return job

    def _solve_problem(self, budget: int | None) -> Problem:
        data = self.dataset
        acc = data.accounts
        pinned_rows = self.pins[self.unit_of_account]
        pinned = pd.Series(pd.NA, index=acc.index, dtype="string")
        has = np.flatnonzero(pinned_rows >= 0)
        pinned.iloc[has] = self.rep_ids[pinned_rows[has]].astype(str)
        acc = acc.assign(**{PINNED_COLUMN: pinned})
        scenario = data.scenario
        if budget is not None:
            acc = acc.assign(current_rep=pd.Series(self.rep_ids[self.account_rep].astype(str), dtype="string"))
            continuity = scenario.continuity.model_copy(update={"max_moved_accounts": int(budget)})
            scenario = scenario.model_copy(update={"continuity": continuity})
        return build_problem(dataclasses.replace(data, accounts=acc, scenario=scenario))

    def _settings(self, time_limit_s: float | None) -> SolveSettings:
        return solve_settings(self.dataset.scenario.with_solver(time_limit_s=time_limit_s))

    def _run_solve(self, job: SolveJob, problem: Problem, settings: SolveSettings, hint: np.ndarray | None) -> None:
        clock = time.perf_counter()
        offset = [0.0]  # the solver counts its seconds from its own start; the page, from the request

        def progress(event: ProgressEvent) -> None:
            gap = None if event.gap is None or not math.isfinite(event.gap) else round(100 * event.gap, 3)
            job.events.append(
                {
                    "seconds": round(offset[0] + event.seconds, 2),
                    "objective": _clean(event.objective, 1),
                    "bound": _clean(event.bound, 1),
                    "gap_pct": gap,
                }
            )

        try:
            start = _quick_start(problem, hint, settings)
            if start is not None:  # a plan keeping every rule and pin at once; the solver improves on it
                progress(ProgressEvent(time.perf_counter() - clock, problem.objective_of(start), math.nan, None, 1))
                hint = start
            offset[0] = time.perf_counter() - clock
            result = solve(problem, settings, progress=progress, hint=hint, cancel=job.cancel)
            if start is not None and (result.unit_rep is None or result.objective > problem.objective_of(start)):
                result = Result(
                    status=Status.FEASIBLE,
                    unit_rep=start,
                    objective=problem.objective_of(start),
                    bound=math.nan,
                    gap=math.nan,
                    wall_seconds=time.perf_counter() - clock,
                    interrupted=result.interrupted,
                    statistics={"method": "the plan on screen repaired to every tolerance (optimizer.repair)"},
                )
            if result.unit_rep is None:
                job.state = "failed"
                job.message = (
                    "no plan was found in the time given, and none was proven impossible: give it more time, "
                    "a larger move budget, or fewer pins"
                )
                return
            job.result = result
            job.proposal = np.asarray(result.unit_rep, dtype=np.int64)
            job.state = "done"
        except InfeasibleError as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # a bug: the page must hear of it rather than wait forever
            logger.exception("solve %s failed", job.id)
            job.state, job.message = "failed", f"the solve failed (a bug in territory): {exc}"

    def job(self, job_id: str) -> SolveJob:
        """A solve job by id (raises :class:`NotFoundError`)."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no solve '{job_id}'")
        return job

    def proposal_changes(self, job: SolveJob) -> dict[str, Any]:
        """What accepting a finished solve would change: the moved accounts and the figures before and after."""
        if job.proposal is None or job.result is None:
            raise ConflictError(
                f"the solve has no plan to show ({job.state}{': ' + job.message if job.message else ''})"
            )
        from territory.compare import ComparedPlan, kpi_table

        with self.lock:
            current = self.plan()
        units = np.flatnonzero(job.proposal != self.unit_rep)
        rows = np.sort(self.accounts_of(units))
        acc = self.dataset.accounts
        changes = pd.DataFrame(
            {
                "account_id": acc["account_id"].to_numpy(object)[rows],
                "name": acc["name"].to_numpy(object)[rows],
                "segment": acc["segment"].to_numpy(object)[rows],
                "from_rep": self.rep_ids[self.account_rep[rows]],
                "to_rep": self.rep_ids[job.proposal[self.unit_of_account[rows]]],
                "potential": acc["potential"].to_numpy(float)[rows],
                "workload": acc["workload"].to_numpy(float)[rows],
            }
        )
        report = dataclasses.replace(
            self.report,
            status=job.result.status.value,
            objective=job.result.objective,
            bound=job.result.bound,
            gap=job.result.gap,
            solve_seconds=job.result.wall_seconds,
            interrupted=job.result.interrupted,
        )
        proposed = Plan(self.dataset, job.proposal[self.unit_of_account], report, self._proposal_units(job))
        plans = [
            ComparedPlan("current", self.source, current, solved=False),
            ComparedPlan("proposed", self.source, proposed, solved=True),
        ]
        kpis = kpi_table(plans).drop(columns=["source"]).set_index("plan").T.reset_index(names="kpi")
        return {
            "job": job.id,
            "state": job.state,
            "status": job.result.status.value,
            "interrupted": job.result.interrupted,
            "accounts_moved": len(rows),
            "changes": json.loads(changes.head(500).to_json(orient="records")),
            "kpis": json.loads(kpis.to_json(orient="records")),
        }

    def _proposal_units(self, job: SolveJob) -> np.ndarray | None:
        return None if self.dataset.units is None or job.proposal is None else job.proposal.copy()

    def accept(self, job: SolveJob, *, version: int | None = None) -> dict[str, Any]:
        """Make a finished solve's plan the current one (one undoable step; pins unchanged).

        Raises
        ------
        ConflictError
            The plan changed since the solve started, or the solve has no plan.
        """
        with self.lock:
            self.check_version(version)
            if job.state != "done" or job.proposal is None or job.result is None:
                raise ConflictError(f"the solve has no plan to accept ({job.state})")
            if job.version != self.version:
                raise ConflictError("the plan was edited while the solve ran: re-optimise again from the plan as it is")
            units = np.flatnonzero(job.proposal != self.unit_rep)
            change = Change("re-optimise", units, self.unit_rep[units].copy(), job.proposal[units].copy(),
                            self.pins[units].copy(), self.pins[units].copy())  # fmt: skip
            self.report = dataclasses.replace(
                self.report,
                status=job.result.status.value,
                objective=job.result.objective,
                bound=job.result.bound,
                gap=job.result.gap,
                solve_seconds=job.result.wall_seconds,
                interrupted=job.result.interrupted,
                statistics=job.result.statistics,
            )
            job.state = "accepted"
            return self._record(change)

    def reject(self, job: SolveJob) -> None:
        """Drop a solve's plan (a running solve is cancelled first)."""
        job.cancel.set()
        job.wait(30)
        job.state = "rejected"

    # ------------------------------------------------------------------ saving
    def default_folder(self) -> Path:
        """Where a save goes unless told: the plan folder opened, or ``plans/<scenario name>`` beside it."""
        if self.source.is_dir():
            return self.source
        return self.source.parent / "plans" / self.source.stem

    def save(self, folder: Path | str | None = None, *, version: int | None = None, offline: bool = True) -> Path:
        """Write the plan folder (whole or not at all) with ``pins.csv`` and a scenario holding the pins.

        The scenario (``scenario.yaml`` in the folder) extends the scenario the plan came from and names
        ``pins.csv``; ``territory solve`` on it solves with the pins held, and ``territory serve FOLDER``
        reopens this plan. ``summary.json`` names it as the plan's scenario.

        Raises
        ------
        ConflictError
            ``version`` is stale (another tab edited the plan), or the folder was written by another save
            since this session last read or wrote it.
        InputError
            The folder cannot be written (e.g. it is a file).
        """
        from territory.pipeline import write_plan_folder

        with self.lock:
            self.check_version(version)
            target = Path(folder or self.default_folder()).expanduser().resolve()
            if target.exists() and (target / "summary.json").is_file():
                now = folder_fingerprint(target)
                if self.saved.get(target) != now:
                    raise ConflictError(
                        f"{target} holds a plan this workbench did not write or read (or it was saved again since, "
                        "by another tab or app): save to another folder, or reopen that plan to work on it"
                    )
            elif target.exists() and any(target.iterdir()):
                raise ConflictError(f"{target} is a folder holding other files: save to a new or plan folder")
            base = self.dataset.source
            if base is None:
                raise InputError.single("the plan has no scenario file to extend", hint="open a scenario file")
            plan = self.plan()
            scenario_path = target / SCENARIO_FILE
            plan = dataclasses.replace(plan, dataset=dataclasses.replace(plan.dataset, source=scenario_path))
            pins = self.pins_frame()
            record = {"saved_id": uuid.uuid4().hex, "version": self.version, "opened": str(self.source)}
            scenario = {
                "name": self.dataset.scenario.name,
                "description": f"Saved from the workbench (territory serve {self.source}): the plan of "
                f"{base.name} with {len(pins)} pins.",
                "extends": os.path.relpath(base, target) if Path(base) != scenario_path else None,
                "pins": PINS_FILE,
            }
            if scenario["extends"] is None:  # saving over the folder it came from: extend what that one extended
                scenario["extends"] = _extends_of(base, target)
            extra = {
                PINS_FILE: lambda path, _plan: pins.to_csv(path, index=False),
                SCENARIO_FILE: lambda path, _plan: path.write_text(yaml.safe_dump(scenario, sort_keys=False)),
                SAVE_RECORD: lambda path, _plan: path.write_text(json.dumps(record, indent=2) + "\n"),
            }
            written = write_plan_folder(plan, target, offline=offline, extra=extra)
            self.saved[written] = folder_fingerprint(written)
            logger.info("workbench saved version %d to %s", self.version, written)
            return written


def _extends_of(scenario: Path, target: Path) -> str:
    """The ``extends`` of a saved scenario, made relative to ``target`` (saving again into the same folder)."""
    data = yaml.safe_load(Path(scenario).read_text())
    if not isinstance(data, dict) or not data.get("extends"):
        raise InputError.single(
            "the plan's scenario extends no other scenario, so a save cannot replace it",
            file=scenario,
            hint="save to another folder",
        )
    parent = (Path(scenario).parent / str(data["extends"])).resolve()
    return os.path.relpath(parent, target)


def _quick_start(problem: Problem, hint: np.ndarray | None, settings: SolveSettings) -> np.ndarray | None:
    """The plan on screen repaired to every tolerance by single moves and swaps (``optimizer.repair``), when
    that keeps every rule (pins, budget); ``None`` otherwise, or for shapes repair does not keep (contiguity,
    centres, diameters) and for deterministic solves (no hint: the saved scenario must solve the same way)."""
    from optimizer.repair import repair
    from optimizer.score import score

    if hint is None or problem.contiguous or problem.centre_distance is not None:
        return None
    if problem.diameter_distance is not None or (problem.pairs_of(hint) < 0).any():
        return None
    limit = settings.time_limit_s or 30.0
    fixed = repair(problem, hint, deadline=time.perf_counter() + REPAIR_SHARE * limit)
    return fixed if fixed is not None and score(problem, fixed).feasible else None


def folder_fingerprint(folder: Path) -> str:
    """What a saved folder holds now: its save record and summary, as one string (``''`` when absent)."""
    parts = []
    for name in (SAVE_RECORD, "summary.json"):
        path = folder / name
        parts.append(path.read_text(encoding="utf-8") if path.is_file() else "")
    return "\n".join(parts)


def _clean(value: float | None, digits: int = 3) -> float | None:
    """A number for JSON: rounded, ``None`` for NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def open_workbench(
    source: Path | str,
    *,
    time_limit_s: float | None = None,
    progress: Any = None,
) -> Workbench:
    """Open a plan folder (as it is) or a scenario file (solved first) in a workbench.

    Parameters
    ----------
    source
        A folder written by ``territory solve`` (or saved by the workbench), or a scenario YAML file.
    time_limit_s
        Time limit of the first solve of a scenario (default: the scenario's).
    progress
        Progress callback of that solve.

    Raises
    ------
    InputError
        Not a plan folder or scenario, or bad data.
    optimizer.InfeasibleError, territory.pipeline.NoPlanError
        The scenario has no plan.
    """
    from territory.compare import load_plan_folder

    source = Path(source)
    if source.is_dir():
        return Workbench(load_plan_folder(source), source)
    if not source.is_file():
        raise InputError.single("no such plan folder or scenario file", file=source,
                                hint="give a folder written by 'territory solve' or a scenario .yaml")  # fmt: skip
    return Workbench(solve_prepared(prepare(source, time_limit_s=time_limit_s), progress=progress), source)


__all__ = [
    "Change",
    "ConflictError",
    "NotFoundError",
    "RuleBrokenError",
    "SolveJob",
    "Workbench",
    "WorkbenchError",
    "folder_fingerprint",
    "open_workbench",
]
