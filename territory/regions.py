"""Regional split: a national problem solved region by region on the Dask cluster, then reconciled.

``territory solve SCENARIO --split-by COLUMN`` (or :func:`solve_by_regions`) groups the reps by a column of
the reps table (a region, state or metro label; the column does not have to be mapped under
``columns.reps``) and solves in three steps:

1. **Coarse solve** (here): the same scenario with every region's reps of one segment preference merged into
   one "team" (FTE summed, home base at the FTE-weighted centre), each tolerance cut to
   :data:`COARSE_TOLERANCE` of itself. It decides which region serves each account family; locked accounts
   go to their rep's region.
2. **Regions in parallel** (Dask tasks): each region is a sub-problem cut out of the national
   :class:`~optimizer.problem.Problem` (:func:`subproblem`): its units and reps, the national pairs between
   them, and fixed load bounds for every rep (:func:`region_bounds`): the national bounds for metrics balanced
   across all reps, and for metrics balanced within segments the rep's FTE share of its national group's total
   in the coarse plan, within :data:`REGION_MARGIN` of the tolerance. So every rep of the merged plan is
   within the national rules, save the small drift of the group totals when a region moves accounts between
   its reps of different segments. Regions of many reps offer each family only its cheapest reps
   (:func:`thin_pairs`); a region whose LP is large (:data:`LARGE_REGION_LP`), or that :func:`optimizer.solve`
   finds no plan for, takes its rounded LP repaired by single moves (:func:`rounded_lp_plan`); a region still
   without a plan gives each of its accounts its cheapest rep in the region, and the reconciliation restores
   the balance.
3. **Reconcile** (here): if a rep of the merged plan broke a tolerance, single-unit moves restore it
   (:func:`optimizer.repair.repair`); single-move descent (:func:`optimizer.repair.descend`) and
   large-neighbourhood search over the whole problem (:func:`optimizer.lns.improve`, among competing reps on
   large problems) then let accounts near a border move to a neighbouring region's rep when that shortens
   travel, every step keeping every rule.

Time: with a time limit ``L``, the coarse solve gets ``COARSE_SHARE * L`` (if it finds no plan in that time, a
large one is solved again on work limits, a smaller one rounded from its LP and repaired); the regions are solved on
deterministic work limits (their share ``REGION_SHARE`` of the scenario's ``work_limit``, by the size of their LP,
never less than :data:`MIN_REGION_WORK`), stopping once within the scenario's gap of their LP bound, so their
plans do not depend on the machine's load; the reconciliation gets what is left of ``L``, and at least
:data:`RECONCILE_SHARE` of it (the balance repair, when needed, at least :data:`REPAIR_SHARE`). Without a time
limit, each step stops on deterministic work limits.
The plan carries no proven bound (the whole problem's relaxation is what the split avoids), so
``summary.json`` gives no gap; the quality lost against a single solve of the whole problem is measured in
``benchmarks/bench_sweep.py``.
Not supported with the split: hard move budgets (``continuity.max_moved_*``: a region cannot know the
others' moves), geographic units and centre-based compactness.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.dataset import Dataset
from models.errors import InputError
from models.plan import Plan
from models.tables import read_table
from optimizer import SolveSettings, build_problem, solve
from optimizer.aggregate import cheapest_rep
from optimizer.problem import Problem
from optimizer.result import Result, Status
from optimizer.solver import AGGREGATE_PAIRS

logger = logging.getLogger(__name__)

#: Share of the time limit for the coarse solve and for all the regions (the rest reconciles).
COARSE_SHARE, REGION_SHARE = 0.5, 0.3
#: A region's deterministic work limit (CP-SAT deterministic seconds of its search) is never below this.
MIN_REGION_WORK = 2.0
#: With a time limit, the reconciliation gets at least this share of it, even past the limit.
RECONCILE_SHARE = 0.15
#: The coarse solve offers each account family only its nearest teams (plus its current one).
COARSE_CANDIDATES = 6
#: Each team of the coarse solve stays within this fraction of each tolerance of its target: the rest leaves
#: its region room to share the team's load between its reps.
COARSE_TOLERANCE = 0.5
#: A rep's bounds in its region, for metrics balanced within segments: this fraction of the tolerance around
#: its share of the national group total, so that the totals' drift after the regions rarely breaks a rule.
REGION_MARGIN = 0.9
#: Regions with more reps offer each account family only its cheapest ones (:func:`thin_pairs`), and each rep
#: its cheapest families up to :data:`REP_COVER` times its mean load.
REGION_CANDIDATES, REP_COVER = 6, 3.0
#: Regions whose LP has more pairs x reps than this are solved by :func:`rounded_lp_plan` (only Chicago, 2.8 M,
#: on the 100k instance; the next largest held 0.6 M).
LARGE_REGION_LP = 1_500_000
#: Share of the reconciliation's time left after any balance repair for single-move descent (LNS: the rest).
DESCENT_SHARE = 0.3
#: The balance repair may run this share of the time limit even past it: a plan matters more than the limit.
REPAIR_SHARE = 0.25


@dataclass(frozen=True)
class RegionalSolve:
    """A plan solved region by region.

    Attributes
    ----------
    plan
        The reconciled plan of the whole problem.
    regions
        One row per region: ``region, reps, accounts, status, seconds, objective, method, note`` (``method``:
        ``solve`` or ``rounded LP + repair``; ``note``: why a region has no plan of its own, its accounts then
        starting with their cheapest rep in the region).
    coarse_seconds, regions_seconds, reconcile_seconds
        Wall time of each step (``regions_seconds``: all regions, in parallel).
    merged_objective
        Objective of the merged regional plans, before reconciling the borders.
    """

    plan: Plan
    regions: pd.DataFrame
    coarse_seconds: float
    regions_seconds: float
    reconcile_seconds: float
    merged_objective: float


def rep_regions(prepared: Any, column: str) -> pd.Series:
    """Region label of every rep of the dataset, read from ``column`` of the reps table.

    Hires (``headcount.add``) take the region of the nearest rep in the table.

    Raises
    ------
    InputError
        The column is missing (naming the file and the columns there) or a rep's region is blank (naming the row).
    """
    loaded, dataset = prepared.loaded, prepared.dataset
    scenario = loaded.scenario
    path = loaded.data_path(scenario.data.reps)
    table = read_table(path, scenario.data.reps_sheet)
    id_column = scenario.columns.reps.id
    if column not in table.columns:
        raise InputError.single(
            f"no column '{column}' to split the reps by",
            file=path,
            column=column,
            hint=f"name one of the reps table's columns: {', '.join(map(str, table.columns))}",
        )
    labels = table[column].astype("string").str.strip()
    blank = labels.isna() | (labels == "")
    if blank.any():
        row = int(np.flatnonzero(blank.to_numpy())[0]) + 2
        raise InputError.single(
            f"the region of {int(blank.sum())} rep(s) is blank", file=path, row=row, column=column, hint="fill it in"
        )
    by_id = pd.Series(labels.to_numpy(), index=table[id_column].astype(str).str.strip())
    reps = dataset.reps
    regions = reps["rep_id"].map(by_id)
    for i in np.flatnonzero(regions.isna().to_numpy()):
        known = regions.notna().to_numpy()
        d = (reps["latitude"][known] - reps["latitude"].iloc[i]) ** 2 + (
            reps["longitude"][known] - reps["longitude"].iloc[i]
        ) ** 2
        regions.iloc[i] = regions[known].iloc[int(np.argmin(d.to_numpy()))]
    return pd.Series(regions.to_numpy(), index=reps["rep_id"].to_numpy(), name="region")


def coarse_dataset(dataset: Dataset, regions: pd.Series) -> Dataset:
    """The dataset with each region's reps of one segment preference merged into one team (id ``region|segment``).

    Every tolerance is cut to :data:`COARSE_TOLERANCE` of itself and move budgets are dropped. Accounts' current
    reps become their team, so locked accounts stay in their rep's region.
    """
    reps = dataset.reps.copy()
    reps["team"] = [f"{regions[r]}|{s}" for r, s in zip(reps["rep_id"], reps["segment"], strict=True)]
    weight = reps["fte"]
    grouped = reps.assign(wlat=reps["latitude"] * weight, wlon=reps["longitude"] * weight).groupby("team", sort=False)
    teams = pd.DataFrame(
        {
            "rep_id": list(grouped.groups),
            "name": list(grouped.groups),
            "latitude": (grouped["wlat"].sum() / grouped["fte"].sum()).to_numpy(),
            "longitude": (grouped["wlon"].sum() / grouped["fte"].sum()).to_numpy(),
            "segment": grouped["segment"].first().to_numpy(),
            "fte": grouped["fte"].sum().to_numpy(),
        }
    )
    team_of = pd.Series(reps["team"].to_numpy(), index=reps["rep_id"].to_numpy())
    accounts = dataset.accounts.copy()
    accounts["current_rep"] = accounts["current_rep"].map(team_of).astype(accounts["current_rep"].dtype)
    scenario = dataset.scenario
    balance = {
        name: rule.model_copy(update={"tolerance_pct": rule.tolerance_pct * COARSE_TOLERANCE})
        for name, rule in scenario.balance.items()
    }
    candidates = min(scenario.solver.candidate_reps or COARSE_CANDIDATES, COARSE_CANDIDATES)
    scenario = scenario.model_copy(update={"balance": balance}).with_solver(candidate_reps=candidates)
    return replace(dataset, accounts=accounts, reps=teams, scenario=scenario, hires=())


def group_totals(problem: Problem, unit_rep: np.ndarray) -> list[np.ndarray]:
    """Integer total of every balance group of every metric in a plan (one entry per metric).

    Parameters
    ----------
    problem
        The national problem.
    unit_rep
        A rep row for every unit: any rep of the balance groups the unit counts in (for the coarse plan, a
        member of the unit's team).

    Returns
    -------
    list of numpy.ndarray
        For each metric, the total of each group (index: group number; one group for metrics balanced across
        all reps).
    """
    unit_rep = np.asarray(unit_rep, dtype=np.int64)
    return [
        np.bincount(m.groups[unit_rep], weights=m.values, minlength=int(m.groups.max()) + 1) for m in problem.metrics
    ]


def region_bounds(
    problem: Problem, reps: np.ndarray, totals: Sequence[np.ndarray], margin: float = REGION_MARGIN
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed integer load bounds of some reps for every metric, from the national problem.

    A metric balanced across all reps keeps the reps' national bounds ``lo, hi``. A metric balanced within
    segment groups has no fixed bounds nationally (a rep's target is its FTE share of what its group holds);
    here the group's total is taken from ``totals`` and the rep may hold its target within ``margin`` of the
    tolerance: ``target_r = fte_r / fte(group of r) * total(group of r)``, bounds
    ``ceil(target_r * (1 - margin * t))`` and ``floor(target_r * (1 + margin * t))``.

    Parameters
    ----------
    problem
        The national problem.
    reps
        Rep rows.
    totals
        Integer total of each balance group of each metric (:func:`group_totals`).
    margin
        Fraction of each tolerance the bounds of grouped metrics allow.

    Returns
    -------
    list of tuple
        ``(lo, hi)`` per metric, each an integer array over ``reps``.

    Examples
    --------
    Two reps of one group (FTE 1 and 0.5) that hold 300 accounts, balanced within 10 %:

    >>> from types import SimpleNamespace
    >>> metric = SimpleNamespace(lo=None, hi=None, groups=np.array([0, 0]), tolerance=0.1)
    >>> toy = SimpleNamespace(metrics=(metric,), fte=np.array([1.0, 0.5]))
    >>> [b.tolist() for b in region_bounds(toy, np.array([0, 1]), [np.array([300])], margin=1.0)[0]]
    [[180, 90], [220, 110]]
    """
    reps = np.asarray(reps, dtype=np.int64)
    out = []
    for metric, total in zip(problem.metrics, totals, strict=True):
        if metric.lo is not None and metric.hi is not None:
            out.append((metric.lo[reps].copy(), metric.hi[reps].copy()))
            continue
        group_fte = np.bincount(metric.groups, weights=problem.fte)
        target = problem.fte[reps] / group_fte[metric.groups[reps]] * np.asarray(total, float)[metric.groups[reps]]
        slack = margin * metric.tolerance
        # a load exactly at the bound is allowed (float error aside); the margin keeps it inside the tolerance
        lo = np.ceil(target * (1 - slack) - 1e-9).astype(np.int64)
        hi = np.floor(target * (1 + slack) + 1e-9).astype(np.int64)
        out.append((lo, hi))
    return out


def subproblem(
    problem: Problem, units: np.ndarray, reps: np.ndarray, bounds: Sequence[tuple[np.ndarray, np.ndarray]]
) -> Problem:
    """The part of a problem made of some units and reps, re-indexed, every rep's loads within fixed bounds.

    Pairs are the problem's pairs between the units and the reps, with the same costs (``pair_cost``,
    ``cost_scale``, compactness, penalty and continuity cut alike), so the sub-problem's objective of a plan is
    its share of the whole problem's objective. Every metric gets the given fixed bounds (and one balance
    group): the sub-problem's plans then keep whatever rule the bounds were derived from, whatever the other
    parts hold. Unit-level arrays (locks, current reps, hard classes, points, adjacency) are cut to the units,
    rep-level ones to the reps.

    Note that :func:`optimizer.score.score` measures a sub-plan's balance against the sub-problem's own mean;
    its bounds are what the solver keeps (:func:`optimizer.repair.violation` measures against them).

    Parameters
    ----------
    problem
        The whole problem (without move budgets: a budget spans every part).
    units, reps
        Unit and rep rows of the part, in increasing order.
    bounds
        ``(lo, hi)`` integer arrays over ``reps`` for every metric of the problem (:func:`region_bounds`).

    Returns
    -------
    Problem
        Unit ``i`` of the part is ``units[i]`` of the problem; rep ``j`` is ``reps[j]``.

    Raises
    ------
    ValueError
        Rows not increasing, bounds of the wrong shape, move budgets, a unit with no pair to any of the reps,
        or a unit locked to a rep outside the part.
    """
    units = np.asarray(units, dtype=np.int64)
    reps = np.asarray(reps, dtype=np.int64)
    if (np.diff(units) <= 0).any() or (np.diff(reps) <= 0).any():
        raise ValueError("a sub-problem's unit and rep rows must be increasing")
    if len(bounds) != len(problem.metrics) or any(len(lo) != len(reps) or len(hi) != len(reps) for lo, hi in bounds):
        raise ValueError("a sub-problem needs (lo, hi) over its reps for every metric")
    if problem.budgets:
        raise ValueError("a move budget spans the whole problem: it cannot be cut into parts")
    unit_pos = np.full(problem.num_units, -1, dtype=np.int64)
    unit_pos[units] = np.arange(len(units))
    rep_pos = np.full(problem.num_reps, -1, dtype=np.int64)
    rep_pos[reps] = np.arange(len(reps))
    part = problem.restrict_pairs((unit_pos[problem.pair_unit] >= 0) & (rep_pos[problem.pair_rep] >= 0))
    orphans = units[np.bincount(unit_pos[part.pair_unit], minlength=len(units)) == 0]
    if len(orphans):
        shown = ", ".join(f"'{u}'" for u in problem.unit_ids[orphans[:5]])
        raise ValueError(
            f"{len(orphans)} account famil{'y has' if len(orphans) == 1 else 'ies have'} no allowed rep among the "
            f"part's {len(reps)} reps ({shown}{' ...' if len(orphans) > 5 else ''})"
        )
    fixed = problem.fixed_rep[units]
    outside = units[(fixed >= 0) & (rep_pos[np.maximum(fixed, 0)] < 0)]
    if len(outside):
        raise ValueError(f"account family '{problem.unit_ids[outside[0]]}' is locked to a rep outside the part")

    def rows_of(rep_rows: np.ndarray) -> np.ndarray:
        """Rep rows of the part (-1 where the problem's row is -1 or outside the part)."""
        return np.where(rep_rows >= 0, rep_pos[np.maximum(rep_rows, 0)], -1)

    metrics = tuple(
        replace(
            m,
            values=m.values[units],
            real=m.real[units],
            groups=np.zeros(len(reps), dtype=np.int64),
            lo=np.asarray(lo, dtype=np.int64),
            hi=np.asarray(hi, dtype=np.int64),
        )
        for m, (lo, hi) in zip(problem.metrics, bounds, strict=True)
    )
    in_part = unit_pos[problem.unit_of_account] >= 0
    edges = problem.unit_edges
    edges = unit_pos[edges[(unit_pos[edges[:, 0]] >= 0) & (unit_pos[edges[:, 1]] >= 0)]]

    def cut(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else values[units]

    def square(distance: np.ndarray | None) -> np.ndarray | None:
        return None if distance is None else distance[np.ix_(units, units)]

    return replace(
        part,
        unit_ids=problem.unit_ids[units],
        unit_of_account=unit_pos[problem.unit_of_account[in_part]],
        rep_ids=problem.rep_ids[reps],
        fte=problem.fte[reps],
        fte_exact=tuple(problem.fte_exact[r] for r in reps),
        metrics=metrics,
        pair_unit=unit_pos[part.pair_unit],
        pair_rep=rep_pos[part.pair_rep],
        unit_class=problem.unit_class[units],
        class_allowed=problem.class_allowed[:, reps],
        fixed_rep=rows_of(fixed),
        current_rep=rows_of(problem.current_rep[units]),
        unit_edges=edges.reshape(-1, 2),
        unit_key=cut(problem.unit_key),
        centre_distance=square(problem.centre_distance),
        unit_weight=cut(problem.unit_weight),
        unit_latitude=cut(problem.unit_latitude),
        unit_longitude=cut(problem.unit_longitude),
        diameter_distance=square(problem.diameter_distance),
    )


def thin_pairs(problem: Problem, k: int, cover: float) -> Problem:
    """The problem with fewer pairs: every unit's ``k`` cheapest reps and its current rep, and every rep's cheapest
    units (per unit of load) until they hold ``cover`` times its mean load.

    The LP that starts a solve grows with the pairs (GLOP took 18 s on a metro of 19,600 account families and 19
    reps, 1 s on 6,800 and 7); a rep surrounded by nearer reps keeps enough units to fill its territory.

    Parameters
    ----------
    problem
        The problem (pairs sorted by unit then rep, as built).
    k
        Cheapest reps each unit keeps.
    cover
        Multiple of its mean load (on every metric together) each rep's kept units hold at least.

    Returns
    -------
    Problem
        The same units and reps; locked units keep their only pair.
    """
    unit, rep, cost = problem.pair_unit, problem.pair_rep, problem.pair_cost
    by_unit = np.lexsort((cost, unit))
    starts = np.searchsorted(unit[by_unit], np.arange(problem.num_units))
    rank = np.empty(len(unit), dtype=np.int64)
    rank[by_unit] = np.arange(len(unit)) - np.repeat(starts, np.diff(np.append(starts, len(unit))))
    keep = (rank < k) | (rep == problem.current_rep[unit])
    size = np.zeros(problem.num_units)  # a unit's share of a mean rep load, summed over metrics
    for metric in problem.metrics:
        size += metric.values / max(float(metric.values.sum()) / problem.num_reps, 1.0)
    by_rep = np.lexsort((cost / np.maximum(size[unit], 1e-12), rep))
    held = np.cumsum(size[unit[by_rep]])
    rep_start = np.searchsorted(rep[by_rep], np.arange(problem.num_reps))
    before = held - size[unit[by_rep]] - np.concatenate([[0.0], held])[rep_start[rep[by_rep]]]
    keep[by_rep[before < cover * max(len(problem.metrics), 1)]] = True
    return problem.restrict_pairs(keep)


def rounded_lp_plan(problem: Problem) -> np.ndarray | None:
    """A plan from the LP relaxation: every unit with its largest LP fraction, then balance repair and descent.

    :func:`optimizer.solve` rounds its LP start with CP-SAT over the fractional units; on a metro with many reps
    (19 in Chicago on the 100k instance) the LP's vertex leaves those reps at their bounds and no rounding was
    found, while single-unit moves (:func:`optimizer.repair.repair`) restore the balance in about a hundred moves
    (2 s, objective 0.03 % above the LP bound).

    Parameters
    ----------
    problem
        A problem without contiguity or centre-based compactness.

    Returns
    -------
    numpy.ndarray or None
        Rep row of every unit, within every bound; ``None`` when the LP fails or the repair gets stuck.
    """
    from optimizer.relaxation import solve_lp_or_none
    from optimizer.repair import descend, repair

    lp = solve_lp_or_none(problem)
    if lp is None:
        return None
    plan = repair(problem, lp.rounded(problem))
    return None if plan is None else descend(problem, plan)


def solve_region(problem: Problem, settings: SolveSettings) -> dict[str, Any]:
    """Solve one region's sub-problem (the Dask task): its plan, or why there is none.

    Regions whose LP has more than :data:`LARGE_REGION_LP` pairs x reps, and regions :func:`optimizer.solve`
    finds no plan for, take :func:`rounded_lp_plan`.

    Returns
    -------
    dict
        ``status``, ``seconds``, ``method``, ``note`` (empty, or why there is no plan) and, with a plan,
        ``unit_rep`` (rep row of the sub-problem for each of its units) and ``objective``.
    """
    clock = time.perf_counter()
    answer: dict[str, Any] = {"status": "unknown", "note": "", "method": "solve"}
    if len(problem.pair_unit) * problem.num_reps <= LARGE_REGION_LP:
        try:
            result = solve(problem, settings)
            answer["status"] = result.status.value
            if result.unit_rep is not None:
                answer.update(unit_rep=result.unit_rep, objective=result.objective)
        except Exception as exc:  # reported per region; a rounded LP or the region's cheapest reps stand in
            answer.update(status="failed", note=f"{type(exc).__name__}: {exc}")
    if "unit_rep" not in answer:
        try:
            plan = rounded_lp_plan(problem)
        except Exception as exc:
            plan, answer["note"] = None, f"{answer['note']}; {type(exc).__name__}: {exc}".strip("; ")
        answer["method"] = "rounded LP + repair"
        if plan is not None:
            answer.update(status="feasible", unit_rep=plan, objective=problem.objective_of(plan), note="")
        elif not answer["note"]:
            answer["note"] = "no plan found"
    answer["seconds"] = time.perf_counter() - clock
    return answer


#: The coarse solve only decides which region serves whom: it stops once within this gap of its bound.
COARSE_GAP = 0.01


def _settings(base: SolveSettings, share: float, workers: int, gap: float = 0.0) -> SolveSettings:
    """The scenario's settings for one step: ``share`` of its time (or of its work, without a time limit)."""
    limit = None if base.time_limit_s is None else base.time_limit_s * share
    return SolveSettings(
        time_limit_s=limit,
        seed=base.seed,
        workers=workers,
        relative_gap=max(base.relative_gap, gap),
        work_limit=base.work_limit * share,
    )


def _check_supported(prepared: Any) -> None:
    scenario = prepared.dataset.scenario
    where = prepared.loaded.path
    continuity = scenario.continuity
    if continuity.max_moved_accounts is not None or continuity.max_moved_potential_pct is not None:
        raise InputError.single(
            "a regional split cannot hold a move budget (each region would need the others' moves)",
            file=where,
            column="continuity.max_moved_accounts",
            hint="solve without --split-by, or use continuity.move_penalty_km instead of a hard budget",
        )
    if prepared.dataset.units is not None or scenario.objective.compactness_measure != "home_base":
        raise InputError.single(
            "a regional split needs account-level plans measured from home bases",
            file=where,
            column="units",
            hint="solve without --split-by",
        )
    if prepared.dataset.reps[["latitude", "longitude"]].isna().any().any():
        raise InputError.single(
            "a regional split needs every rep's home base", file=where, hint="give hires a latitude and longitude"
        )


def solve_by_regions(
    prepared: Any,
    column: str,
    *,
    address: str | None = None,
    workers: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> RegionalSolve:
    """Solve a prepared scenario region by region on a Dask cluster and reconcile the borders.

    Parameters
    ----------
    prepared
        :class:`territory.pipeline.Prepared` (its solver settings give the time limit, seed and workers).
    column
        Column of the reps table holding each rep's region.
    address
        A running Dask scheduler; default ``$TERRITORY_SCHEDULER``, else a local cluster started here.
    workers
        Worker processes of the local cluster (default: the cores).
    on_step
        Called with a short description before each step (progress display).

    Returns
    -------
    RegionalSolve

    Raises
    ------
    InputError
        Missing column, blank regions, or a scenario the split does not support.
    optimizer.InfeasibleError
        The coarse solve proves the scenario has no plan.
    """
    from territory.pipeline import plan_from_result

    _check_supported(prepared)
    begin = time.perf_counter()
    dataset, problem = prepared.dataset, prepared.problem
    config = dataset.scenario.solver
    base = SolveSettings(
        time_limit_s=config.time_limit_s,
        seed=config.seed,
        workers=config.workers,
        relative_gap=config.relative_gap,
        work_limit=config.work_limit,
    )
    regions = rep_regions(prepared, column)
    labels = list(dict.fromkeys(regions))

    def step(text: str) -> None:
        logger.info(text)
        if on_step is not None:
            on_step(text)

    step(f"coarse solve: {len(labels)} regions")
    clock = time.perf_counter()
    unit_region, unit_team_rep = _coarse_split(dataset, problem, regions, labels, base)
    coarse_seconds = time.perf_counter() - clock

    step(f"solving {len(labels)} regions in parallel")
    clock = time.perf_counter()
    totals = group_totals(problem, unit_team_rep)
    region_of_rep = regions.to_numpy()
    parts: dict[str, tuple[np.ndarray, np.ndarray, Problem | None]] = {}
    for i, label in enumerate(labels):
        units, reps = np.flatnonzero(unit_region == i), np.flatnonzero(region_of_rep == label)
        if not len(units):
            parts[label] = (units, reps, None)
            continue
        try:
            part = subproblem(problem, units, reps, region_bounds(problem, reps, totals, REGION_MARGIN))
            if len(reps) > REGION_CANDIDATES:
                part = thin_pairs(part, REGION_CANDIDATES, REP_COVER)
        except ValueError as exc:  # the coarse solve only offers teams the whole problem's pairs reach
            raise RuntimeError(f"region '{label}': {exc}") from exc
        parts[label] = (units, reps, part)
    answers = _solve_parts(parts, base, address, workers)
    regions_seconds = time.perf_counter() - clock

    step("reconciling the borders")
    clock = time.perf_counter()
    unit_rep = np.full(problem.num_units, -1, dtype=np.int64)
    for label, (units, reps, part) in parts.items():
        local = answers[label].get("unit_rep")
        if local is None and part is not None:
            logger.warning("region %s: %s; its accounts start with their cheapest rep", label, answers[label]["note"])
            local = cheapest_rep(part)
        if part is not None:
            unit_rep[units] = reps[np.asarray(local, dtype=np.int64)]
    deadline = None
    if base.time_limit_s is not None:
        deadline = max(begin + base.time_limit_s, time.perf_counter() + RECONCILE_SHARE * base.time_limit_s)
    result = _reconcile(problem, unit_rep, base, deadline)
    reconcile_seconds = time.perf_counter() - clock

    accounts_per_unit = np.bincount(problem.unit_of_account, minlength=problem.num_units)
    table = pd.DataFrame(
        [
            {
                "region": label,
                "reps": len(reps),
                "accounts": int(accounts_per_unit[units].sum()),
                "status": answers[label]["status"],
                "seconds": round(answers[label]["seconds"], 3),
                "objective": answers[label].get("objective", math.nan),
                "method": answers[label].get("method", ""),
                "note": answers[label]["note"],
            }
            for label, (units, reps, _) in parts.items()
        ]
    )
    statistics = {
        **result.statistics,
        "method": f"regional split by '{column}': coarse solve, {len(labels)} regions on Dask, border LNS",
        "regions": len(labels),
        "regions_without_plan": int((table["note"] != "").sum()),
        "coarse_seconds": round(coarse_seconds, 3),
        "regions_seconds": round(regions_seconds, 3),
        "reconcile_seconds": round(reconcile_seconds, 3),
        "merged_objective": problem.objective_of(unit_rep),
    }
    wall = coarse_seconds + regions_seconds + reconcile_seconds
    result = replace(result, wall_seconds=wall, statistics=statistics)
    return RegionalSolve(
        plan=plan_from_result(prepared, result),
        regions=table,
        coarse_seconds=coarse_seconds,
        regions_seconds=regions_seconds,
        reconcile_seconds=reconcile_seconds,
        merged_objective=statistics["merged_objective"],
    )


def _coarse_split(
    dataset: Dataset, problem: Problem, regions: pd.Series, labels: list[str], base: SolveSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The coarse solve: the region (index into ``labels``) of every unit, and a rep of the unit's team.

    When :func:`optimizer.solve` finds no plan in its time, a large coarse problem is solved again on work limits,
    a smaller one is rounded from its LP and repaired (:func:`rounded_lp_plan`).

    The teams a unit may join are cut to those holding a rep the whole problem pairs it with, so every unit has
    a pair in its region.
    """
    from territory.pipeline import NoPlanError

    coarse = coarse_dataset(dataset, regions)
    coarse_problem = build_problem(coarse)
    if not np.array_equal(coarse_problem.unit_ids, problem.unit_ids):
        raise RuntimeError("the coarse problem's account families differ from the whole problem's")
    team_ids = coarse.reps["rep_id"].to_numpy()
    team_row = {team: i for i, team in enumerate(team_ids)}
    rep_team = np.array(
        [team_row[f"{regions[r]}|{s}"] for r, s in zip(dataset.reps["rep_id"], dataset.reps["segment"], strict=True)]
    )
    n_teams = len(team_ids)
    reached = np.unique(problem.pair_unit * n_teams + rep_team[problem.pair_rep])
    coarse_problem = coarse_problem.restrict_pairs(
        np.isin(coarse_problem.pair_unit * n_teams + coarse_problem.pair_rep, reached)
    )
    settings = _settings(base, COARSE_SHARE, base.workers, COARSE_GAP)
    result = solve(coarse_problem, settings)
    unit_team = result.unit_rep
    if unit_team is None and len(coarse_problem.pair_unit) > AGGREGATE_PAIRS:
        # the clustered start's repair ran out of time on the loaded machine (100k): once more, on work limits
        logger.warning("the coarse solve found no plan in its time; solving it again on work limits")
        # one CP-SAT worker: with interleaved workers on work limits, CP-SAT 9.15 aborted ("Check failed:
        # heuristics.fixed_search != nullptr") on the 10k coarse problem
        retry = replace(settings, time_limit_s=None, work_limit=MIN_REGION_WORK, workers=1)
        unit_team = solve(coarse_problem, retry).unit_rep
    elif unit_team is None:
        # its LP start found no rounding (10k accounts): the rounded LP, repaired by single moves
        logger.warning("the coarse solve found no plan in its time; rounding its LP and repairing it")
        unit_team = rounded_lp_plan(coarse_problem)
    if unit_team is None:
        raise NoPlanError(
            "The coarse solve found no split of the accounts between regions in time; try a longer time limit."
        )
    label_row = {label: i for i, label in enumerate(labels)}
    team_region = np.array([label_row[team.rsplit("|", 1)[0]] for team in team_ids])
    team_rep = np.zeros(n_teams, dtype=np.int64)
    team_rep[rep_team[::-1]] = np.arange(len(rep_team))[::-1]  # the first rep of every team
    return team_region[unit_team], team_rep[unit_team]


def _solve_parts(
    parts: dict[str, tuple[np.ndarray, np.ndarray, Problem | None]],
    base: SolveSettings,
    address: str | None,
    workers: int | None,
) -> dict[str, dict[str, Any]]:
    """Solve the regions' sub-problems as Dask tasks: one answer (:func:`solve_region`) per region."""
    import os

    from territory.sweep import SCHEDULER_ENV, cluster_workers, dask_client

    answers = {
        label: {"status": "empty", "seconds": 0.0, "note": "no accounts"}
        for label, (_, _, part) in parts.items()
        if part is None
    }
    address = address or os.environ.get(SCHEDULER_ENV)
    with dask_client(address, workers) as client:
        per_task = max((os.cpu_count() or 1) // cluster_workers(client), 1) if not address else 1
        # the regions run side by side, one per worker, on deterministic work limits rather than wall time: the
        # LP start's LP is not timed (GLOP took 2 s on 44,000 pairs x 7 reps, 18 s on 145,000 x 19, several times
        # that on the loaded machine), and a wall-clock limit then left its rounding no time (regions without a
        # plan). Each region gets its share of the regions' work by the size of its LP (pairs x reps) and stops
        # as soon as it is within the scenario's gap of its LP bound (at once on the 100k instance).
        size = {label: len(part.pair_unit) * part.num_reps for label, (_, _, part) in parts.items() if part is not None}
        total = sum(size.values())
        futures = {}
        for label, (_, _, part) in parts.items():
            if part is None:
                continue
            share = REGION_SHARE * cluster_workers(client) * size[label] / max(total, 1)
            settings = SolveSettings(
                time_limit_s=None,
                seed=base.seed,
                workers=per_task,
                relative_gap=base.relative_gap,
                work_limit=max(share * base.work_limit, MIN_REGION_WORK),
            )
            # the largest regions first, so that they do not run alone at the end
            futures[label] = client.submit(
                solve_region, part, settings, key=f"region-{label}", pure=False, priority=size[label]
            )
        answers.update({label: future.result() for label, future in futures.items()})
    return answers


def _reconcile(problem: Problem, unit_rep: np.ndarray, base: SolveSettings, deadline: float | None) -> Result:
    """The merged plan within every rule (repaired if need be), improved across borders until ``deadline``."""
    from optimizer.lns import improve
    from optimizer.repair import descend, repair
    from optimizer.score import score
    from territory.pipeline import NoPlanError

    def until(share: float) -> float | None:
        """``share`` of the time left (at least a second)."""
        return None if deadline is None else time.perf_counter() + share * max(deadline - time.perf_counter(), 1.0)

    share = 1 - COARSE_SHARE - REGION_SHARE
    within = score(problem, unit_rep).feasible
    repaired = False
    if not within:
        # a group total drifted, or a region fell back to its cheapest reps: single-unit moves restore the balance
        stop_at = until(1.0)
        if stop_at is not None and base.time_limit_s is not None:
            stop_at = max(stop_at, time.perf_counter() + REPAIR_SHARE * base.time_limit_s)
        fixed = repair(problem, unit_rep, deadline=stop_at)
        if fixed is not None:
            unit_rep, repaired = fixed, True
    if not within and not repaired:
        logger.warning("the merged regional plan breaks a rule and the repair failed; solving the whole problem")
        remaining = None if deadline is None else max(deadline - time.perf_counter(), 1.0)
        settings = replace(_settings(base, share, base.workers), time_limit_s=remaining)
        result = solve(problem, settings, hint=unit_rep)
        if result.unit_rep is None:
            raise NoPlanError("No plan after reconciling the regions; try a longer time limit.")
        return replace(result, statistics={**result.statistics, "merged_within_tolerance": False})
    unit_rep = descend(problem, unit_rep, deadline=until(DESCENT_SHARE))
    plan, _, log = improve(
        problem,
        unit_rep,
        deadline=until(1.0),
        bound=0.0,
        relative_gap=0.0,
        seed=base.seed,
        workers=base.num_workers,
        work_limit=share * base.work_limit,
        among_reps=len(problem.pair_unit) > AGGREGATE_PAIRS,
    )
    return Result(
        status=Status.FEASIBLE,
        unit_rep=plan,
        objective=problem.objective_of(plan),
        bound=math.nan,
        gap=math.nan,
        wall_seconds=0.0,
        statistics={
            "lns_steps": log.steps,
            "lns_improvements": log.improvements,
            "merged_within_tolerance": within,
            "merged_plan_repaired": repaired,
        },
    )


def regional_scenario(scenario_path: Path | str, column: str, **kwargs: Any) -> RegionalSolve:
    """Prepare a scenario file and solve it region by region (see :func:`solve_by_regions`)."""
    from territory.pipeline import prepare

    solver = {k: kwargs.pop(k) for k in ("time_limit_s", "seed", "no_time_limit") if k in kwargs}
    return solve_by_regions(prepare(scenario_path, **solver), column, **kwargs)
