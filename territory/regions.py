"""Regional split: a national problem solved region by region on the Dask cluster, then reconciled.

``territory solve SCENARIO --split-by COLUMN`` (or :func:`solve_by_regions`) groups the reps by a column of
the reps table (a region, state or metro label; the column does not have to be mapped under
``columns.reps``) and solves in three steps:

1. **Coarse solve** (here): the same scenario with every region's reps of one segment preference merged into
   one "team" (FTE summed, home base at the FTE-weighted centre). It decides which region serves each account
   family, within half of each tolerance (``a = t / 2``) of the region's fair share; locked accounts go to
   their rep's region.
2. **Regions in parallel** (Dask tasks): each region's reps share the accounts its teams got, within the
   remaining tolerance ``b`` with ``(1 + a)(1 + b) <= 1 + t`` and ``(1 - a)(1 - b) >= 1 - t``; so every rep
   of the merged plan is within the scenario's own tolerance of its national target, and the merged plan
   keeps every hard rule of the whole problem.
3. **Reconcile** (here): if rounding left a rep of the merged plan outside a tolerance, single-unit moves
   restore it (:func:`optimizer.repair.repair`); then large-neighbourhood search over the whole problem
   (:func:`optimizer.lns.improve`): accounts near a border can move to a neighbouring region's rep when that
   shortens travel, every step keeping every rule.

Time: with a time limit ``L``, the coarse solve gets ``0.5 L`` (each family offered its 6 nearest teams), the
regions ``0.3 L`` together (in waves of one region per worker) and the reconciliation the rest; without one,
each step stops on deterministic work limits.
The plan carries no proven bound (the whole problem's LP relaxation is what the split avoids), so
``summary.json`` gives no gap; the quality lost against a single solve of the whole problem is measured in
``benchmarks/bench_sweep.py``.
Not supported with the split: hard move budgets (``continuity.max_moved_*``: a region cannot know the
others' moves), geographic units and centre-based compactness.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
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
from optimizer.result import Result, Status

logger = logging.getLogger(__name__)

#: Share of the time limit for the coarse solve and for each region (the rest reconciles).
COARSE_SHARE, REGION_SHARE = 0.5, 0.3
#: A region's time limit is never below this (seconds), however many regions share the workers.
MIN_REGION_SECONDS = 3.0
#: The coarse solve offers each account family only its nearest teams (plus its current one).
COARSE_CANDIDATES = 6
#: Shrinks the regions' tolerance a hair below the exact split, against rounding.
MARGIN = 0.999


@dataclass(frozen=True)
class RegionalSolve:
    """A plan solved region by region.

    Attributes
    ----------
    plan
        The reconciled plan of the whole problem.
    regions
        One row per region: ``region, reps, accounts, status, seconds, objective``.
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


def split_tolerances(tolerance_pct: float) -> tuple[float, float]:
    """The coarse and the regional tolerance (%) whose composition stays within ``tolerance_pct``.

    Examples
    --------
    >>> [round(t, 3) for t in split_tolerances(5.0)]
    [2.5, 2.437]
    """
    t, a = tolerance_pct / 100, tolerance_pct / 200
    b = min((1 + t) / (1 + a) - 1, 1 - (1 - t) / (1 - a)) if a < 1 else t
    return 100 * a, 100 * b * MARGIN


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


def _with_tolerances(dataset: Dataset, pick: int) -> Any:
    """The scenario with every tolerance split (``pick`` 0: coarse, 1: regional) and no move budgets."""
    scenario = dataset.scenario
    balance = {
        name: rule.model_copy(update={"tolerance_pct": split_tolerances(rule.tolerance_pct)[pick]})
        for name, rule in scenario.balance.items()
    }
    return scenario.model_copy(update={"balance": balance})


def coarse_dataset(dataset: Dataset, regions: pd.Series) -> Dataset:
    """The dataset with each region's reps of one segment preference merged into one team (id ``region|segment``).

    Accounts' current reps become their team, so locked accounts stay in their rep's region.
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
    scenario = _with_tolerances(dataset, 0)
    candidates = min(scenario.solver.candidate_reps or COARSE_CANDIDATES, COARSE_CANDIDATES)
    scenario = scenario.with_solver(candidate_reps=candidates)
    coarse = replace(dataset, accounts=accounts, reps=teams, scenario=scenario, hires=())
    return coarse


def region_dataset(dataset: Dataset, reps: pd.Series, accounts: np.ndarray) -> Dataset:
    """The reps of one region (``reps``: a boolean mask) with the accounts (row positions) its teams got."""
    sub_reps = dataset.reps[reps.to_numpy()].reset_index(drop=True)
    sub_accounts = dataset.accounts.iloc[accounts].reset_index(drop=True)
    inside = sub_accounts["current_rep"].isin(set(sub_reps["rep_id"]))
    sub_accounts["current_rep"] = sub_accounts["current_rep"].where(inside)
    return replace(
        dataset,
        accounts=sub_accounts,
        reps=sub_reps,
        scenario=_with_tolerances(dataset, 1),
        forecast=None,
        hires=tuple(h for h in dataset.hires if h in set(sub_reps["rep_id"])),
    )


def solve_region(dataset: Dataset, settings: SolveSettings) -> dict[str, Any]:
    """Solve one region (the Dask task): the rep id of each of its accounts, or why there is none."""
    clock = time.perf_counter()
    try:
        problem = build_problem(dataset)
        result = solve(problem, settings)
    except Exception as exc:  # reported per region; the caller decides
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - clock}
    if result.unit_rep is None:
        return {"status": result.status.value, "error": "no plan in time", "seconds": time.perf_counter() - clock}
    rep_ids = dataset.reps["rep_id"].to_numpy()[result.unit_rep[problem.unit_of_account]]
    return {
        "status": result.status.value,
        "account_id": dataset.accounts["account_id"].to_numpy(),
        "rep_id": rep_ids,
        "objective": result.objective,
        "seconds": time.perf_counter() - clock,
        "error": "",
    }


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
    import os

    from optimizer.lns import improve
    from optimizer.repair import repair
    from optimizer.score import score
    from optimizer.solver import AGGREGATE_PAIRS
    from territory.pipeline import NoPlanError, plan_from_result
    from territory.sweep import SCHEDULER_ENV, cluster_workers, dask_client

    def step(text: str) -> None:
        logger.info(text)
        if on_step is not None:
            on_step(text)

    _check_supported(prepared)
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

    step(f"coarse solve: {len(labels)} regions")
    clock = time.perf_counter()
    coarse = coarse_dataset(dataset, regions)
    coarse_problem = build_problem(coarse)
    coarse_result = solve(coarse_problem, _settings(base, COARSE_SHARE, base.workers, COARSE_GAP))
    if coarse_result.unit_rep is None:
        raise NoPlanError(
            "The coarse solve found no split of the accounts between regions in time; try a longer time limit."
        )
    team_ids = coarse.reps["rep_id"].to_numpy()
    account_team = team_ids[coarse_result.unit_rep[coarse_problem.unit_of_account]]
    team_region = {team: team.rsplit("|", 1)[0] for team in team_ids}
    account_region = np.array([team_region[t] for t in account_team], dtype=object)
    coarse_seconds = time.perf_counter() - clock

    step(f"solving {len(labels)} regions in parallel")
    clock = time.perf_counter()
    address = address or os.environ.get(SCHEDULER_ENV)
    with dask_client(address, workers) as client:
        per_task = max((os.cpu_count() or 1) // cluster_workers(client), 1) if not address else 1
        # the regions run in waves of one per worker: each gets its wave's share of the regional time
        waves = math.ceil(len(labels) / cluster_workers(client))
        settings = _settings(base, REGION_SHARE / waves, per_task)
        if settings.time_limit_s is not None and settings.time_limit_s < MIN_REGION_SECONDS:
            settings = replace(settings, time_limit_s=MIN_REGION_SECONDS)
        parts = {
            label: region_dataset(
                dataset, regions.eq(label).reset_index(drop=True), np.flatnonzero(account_region == label)
            )
            for label in labels
        }
        futures = {
            label: client.submit(solve_region, part, settings, key=f"region-{label}", pure=False)
            for label, part in parts.items()
        }
        answers = {label: future.result() for label, future in futures.items()}
    regions_seconds = time.perf_counter() - clock
    failed = {label: a["error"] for label, a in answers.items() if "rep_id" not in a}
    if failed:
        raise NoPlanError(
            "Some regions have no plan: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())
            + ". Try a longer time limit, or solve without --split-by."
        )

    step("reconciling the borders")
    clock = time.perf_counter()
    rep_row = {rep: i for i, rep in enumerate(dataset.reps["rep_id"])}
    merged = pd.Series(
        np.concatenate([a["rep_id"] for a in answers.values()]),
        index=np.concatenate([a["account_id"] for a in answers.values()]),
    )
    rep_index = dataset.accounts["account_id"].map(merged).map(rep_row).to_numpy(dtype=np.int64)
    unit_rep = np.full(problem.num_units, -1, dtype=np.int64)
    unit_rep[problem.unit_of_account] = rep_index
    merged_objective = problem.objective_of(unit_rep)
    remaining = None if base.time_limit_s is None else max(base.time_limit_s * (1 - COARSE_SHARE - REGION_SHARE), 1)
    repaired = False
    if not score(problem, unit_rep).feasible and not problem.budgets:
        # rounding let a rep slip out of tolerance at a region's edge: a few single-unit moves restore it
        fixed = repair(problem, unit_rep, deadline=None if remaining is None else time.perf_counter() + remaining / 2)
        if fixed is not None:
            unit_rep, repaired = fixed, True
    if score(problem, unit_rep).feasible:
        plan_units, _, log = improve(
            problem,
            unit_rep,
            deadline=None if remaining is None else time.perf_counter() + remaining,
            bound=0.0,
            relative_gap=0.0,
            seed=base.seed,
            workers=base.num_workers,
            work_limit=(1 - COARSE_SHARE - REGION_SHARE) * base.work_limit,
            among_reps=len(problem.pair_unit) > AGGREGATE_PAIRS,
        )
        objective = problem.objective_of(plan_units)
        result = Result(
            status=Status.FEASIBLE,
            unit_rep=plan_units,
            objective=objective,
            bound=math.nan,
            gap=math.nan,
            wall_seconds=0.0,
            statistics={"lns_steps": log.steps, "lns_improvements": log.improvements, "merged_plan_repaired": repaired},
        )
    else:  # rounding let a rep slip out of tolerance: one solve of the whole problem from the merged plan
        logger.warning("the merged regional plan breaks a rule; solving the whole problem from it")
        result = solve(problem, _settings(base, 1 - COARSE_SHARE - REGION_SHARE, base.workers), hint=unit_rep)
        if result.unit_rep is None:
            raise NoPlanError("No plan after reconciling the regions; try a longer time limit.")
    reconcile_seconds = time.perf_counter() - clock
    table = pd.DataFrame(
        [
            {
                "region": label,
                "reps": int(regions.eq(label).sum()),
                "accounts": len(answers[label]["account_id"]),
                "status": answers[label]["status"],
                "seconds": round(answers[label]["seconds"], 3),
                "objective": answers[label]["objective"],
            }
            for label in labels
        ]
    )
    statistics = {
        **result.statistics,
        "method": f"regional split by '{column}': coarse solve, {len(labels)} regions on Dask, border LNS",
        "regions": len(labels),
        "coarse_seconds": round(coarse_seconds, 3),
        "regions_seconds": round(regions_seconds, 3),
        "reconcile_seconds": round(reconcile_seconds, 3),
        "merged_objective": merged_objective,
    }
    wall = coarse_seconds + regions_seconds + reconcile_seconds
    result = replace(result, wall_seconds=wall, statistics=statistics)
    return RegionalSolve(
        plan=plan_from_result(prepared, result),
        regions=table,
        coarse_seconds=coarse_seconds,
        regions_seconds=regions_seconds,
        reconcile_seconds=reconcile_seconds,
        merged_objective=merged_objective,
    )


def regional_scenario(scenario_path: Path | str, column: str, **kwargs: Any) -> RegionalSolve:
    """Prepare a scenario file and solve it region by region (see :func:`solve_by_regions`)."""
    from territory.pipeline import prepare

    solver = {k: kwargs.pop(k) for k in ("time_limit_s", "seed", "no_time_limit") if k in kwargs}
    return solve_by_regions(prepare(scenario_path, **solver), column, **kwargs)
