"""Large-neighbourhood search around CP-SAT.

A plan is improved by freeing a neighbourhood (every unit of a few reps that
compete for the same accounts, or a random sample) and letting CP-SAT
re-optimise it with everything else held fixed. Each sub-model is small, so
CP-SAT solves it to optimality in a fraction of a second, and every accepted
step keeps every hard rule: loads of reps outside the neighbourhood enter the
balance constraints as constants.

Why not one big CP-SAT model: on the 2,000-account example with two cores,
CP-SAT's own portfolio spent 25 s in presolve and root LP before it even
reported the hinted plan; the sub-models here improve the plan from the first
second on. The LP relaxation (:mod:`optimizer.relaxation`) supplies the bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optimizer.graph import touching
from optimizer.model import build_cp_model
from optimizer.problem import Problem, best_centres, expand_ranges, first_minimum, with_fixed_centres

logger = logging.getLogger(__name__)

#: Smallest and largest neighbourhood, in units.
MIN_FREE = 60
MAX_FREE = 1500
#: Seconds one sub-model may take.
STEP_SECONDS = 3.0
#: Without a time limit (deterministic mode): deterministic time one sub-model may take,
#: and how many steps in a row without improvement end the search.
STEP_DTIME = 2.0
PATIENCE = 25


def run(solver: cp_model.CpSolver, model: cp_model.CpModel, callback: cp_model.CpSolverSolutionCallback | None = None):
    """Solve; if CP-SAT fails on the solution hint, solve again without it.

    OR-Tools 9.15 raises ``IndexError: absl::btree_map::at`` on some models whose complete, valid
    hint it cannot map through presolve (seen with element constraints in region neighbourhoods).
    """
    try:
        return solver.solve(model, callback)
    except IndexError:
        logger.debug("CP-SAT failed on the solution hint; solving again without it")
        model.clear_hints()
        return solver.solve(model, callback)


def reproducible(params: Any, work: float) -> None:
    """Bound a solve by deterministic work on one worker, so that the same model gives the same plan.

    One worker, not ``interleave_search`` over several: OR-Tools 9.15 aborted the whole process ("Check failed:
    heuristics.fixed_search != nullptr") on some interleaved LNS sub-models and coarse regional models.
    """
    params.max_deterministic_time = work
    params.num_workers = 1
    params.interleave_search = False


def configure(solver: cp_model.CpSolver, seconds: float | None, seed: int, workers: int) -> None:
    """Set a sub-model's limits: wall seconds, or deterministic time (reproducible) when ``seconds`` is None."""
    params = solver.parameters
    params.num_workers = workers
    if seconds is None:
        reproducible(params, STEP_DTIME)
    else:
        params.max_time_in_seconds = seconds
    params.random_seed = seed
    params.catch_sigint_signal = False


@dataclass
class SearchLog:
    """What the search did."""

    steps: int = 0
    improvements: int = 0
    optimal_steps: int = 0
    proven_optimal: bool = False
    history: list[tuple[float, float]] = field(default_factory=list)

    def improved(self, cost: float, on_improve: Callable[[Any], None] | None) -> None:
        """Record an accepted, better plan and tell the caller."""
        self.improvements += 1
        self.history.append((time.perf_counter(), cost))
        if on_improve is not None:
            on_improve(cost)


def assignment_cost(problem: Problem, unit_rep: np.ndarray) -> int:
    """Integer objective of an assignment (every pair must be allowed)."""
    pairs = problem.pairs_of(unit_rep)
    if (pairs < 0).any():
        raise ValueError("the assignment uses a pair the problem does not allow")
    return int(problem.pair_cost[pairs].sum())


def rep_affinity(problem: Problem, top: int = 3) -> np.ndarray:
    """How many units have both reps among their ``top`` cheapest (reps competing for accounts)."""
    affinity = np.zeros((problem.num_reps, problem.num_reps))
    cost = problem.pair_cost.astype(np.float64)
    best = np.full((problem.num_units, top), -1, dtype=np.int64)
    for i in range(top):
        # the next cheapest pair of every unit, in one pass over the pairs (pairs are sorted by unit)
        cheapest, first = first_minimum(cost, problem.pair_unit, problem.unit_start[:-1])
        left = np.isfinite(cheapest)
        best[left, i] = problem.pair_rep[first[left]]
        cost[first[left]] = np.inf
    for i in range(top):
        for j in range(i + 1, top):
            both = (best[:, i] >= 0) & (best[:, j] >= 0)
            np.add.at(affinity, (best[both, i], best[both, j]), 1)
    return affinity + affinity.T


def solve_neighbourhood(
    problem: Problem,
    current: np.ndarray,
    free: np.ndarray,
    seconds: float | None,
    seed: int,
    workers: int,
    stop: threading.Event | None = None,
    work: list[float] | None = None,
    reps: np.ndarray | None = None,
) -> tuple[np.ndarray | None, bool]:
    """Re-optimise the ``free`` units, the others held where ``current`` has them.

    ``seconds`` limits the wall time; ``None`` limits deterministic time
    instead, so that the step is reproducible. The deterministic time used is
    appended to ``work`` when given. With ``reps`` (a mask), the free units may
    only go to those reps and the hint is complete (flows, roots, centres), as
    region neighbourhoods of contiguous plans need.

    Returns
    -------
    tuple
        ``(assignment or None, proven optimal for the neighbourhood)``.
    """
    if reps is None:
        parts = build_cp_model(problem, free=free, base=current)
        for k, p in enumerate(parts.pairs):
            if current[problem.pair_unit[p]] == problem.pair_rep[p]:
                parts.model.add_hint(parts.x[k], True)
    else:
        parts = build_cp_model(problem, free=free, base=current, hint=current, reps=reps)
    solver = cp_model.CpSolver()
    configure(solver, seconds, seed, workers)
    if stop is not None and stop.is_set():
        return None, False
    code = run(solver, parts.model)
    if work is not None:
        work.append(solver.deterministic_time)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, False
    chosen = parts.pairs[np.array([solver.boolean_value(v) for v in parts.x], dtype=bool)]
    out = current.copy()
    out[problem.pair_unit[chosen]] = problem.pair_rep[chosen]
    return out, code == cp_model.OPTIMAL


def improve(
    problem: Problem,
    start: np.ndarray,
    *,
    deadline: float | None,
    bound: float,
    relative_gap: float,
    seed: int,
    workers: int,
    on_improve: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
    work_limit: float = float("inf"),
    among_reps: bool = False,
) -> tuple[np.ndarray, int, SearchLog]:
    """Improve a feasible plan until the deadline, the gap target, or a stop request.

    Parameters
    ----------
    problem
        The problem.
    start
        A feasible assignment (rep row per unit).
    deadline
        ``time.perf_counter()`` value to stop at; ``None``: no time limit,
        the search is reproducible and ends after :data:`PATIENCE` steps in a
        row without improvement.
    bound
        Lower bound of the integer objective (the search stops when it is reached).
    relative_gap
        Stop once ``(cost - bound) / cost`` is at most this.
    seed, workers
        CP-SAT settings of the sub-models.
    on_improve
        Called with the new integer cost after each improvement.
    stop
        Set by the caller (Ctrl-C) to stop after the running step.
    work_limit
        Without a deadline: deterministic time all steps may use together.
    among_reps
        Free units may only move between the neighbourhood's reps. Keeps sub-models small when every unit
        has many allowed reps (100,000 units with 90 reps each made sub-models CP-SAT could not solve in a
        step's time).

    Returns
    -------
    tuple
        ``(best assignment, its integer cost, search log)``.
    """
    rng = np.random.default_rng(seed)
    current = start.copy()
    cost = assignment_cost(problem, current)
    log = SearchLog()
    log.history.append((time.perf_counter(), cost))
    movable = problem.fixed_rep < 0
    if not movable.any():
        return current, cost, log
    affinity = rep_affinity(problem)
    size = min(max(MIN_FREE, problem.num_units // 8), MAX_FREE)
    idle = 0
    work: list[float] = []
    while not (stop is not None and stop.is_set()):
        if cost <= 0 or (cost - bound) / cost <= relative_gap:
            break
        seconds: float | None = None
        if deadline is None:
            if idle >= PATIENCE or sum(work) >= work_limit:
                break
        else:
            seconds = min(STEP_SECONDS, deadline - time.perf_counter())
            if seconds <= 0.05:
                break
        free, reps = _neighbourhood(problem, current, affinity, movable, size, rng, among_reps)
        candidate, optimal = solve_neighbourhood(
            problem, current, free, seconds, int(rng.integers(0, 2**31 - 1)), workers, stop, work, reps
        )
        log.steps += 1
        idle += 1
        if candidate is not None:
            new_cost = assignment_cost(problem, candidate)
            if new_cost < cost:
                current, cost = candidate, new_cost
                idle = 0
                log.improved(cost, on_improve)
        if optimal and reps is None and free[movable].all():
            # every movable unit was free and CP-SAT closed the model: the plan is optimal, stop searching
            log.optimal_steps += 1
            log.proven_optimal = True
            break
        # adapt: grow neighbourhoods CP-SAT closes quickly, shrink the ones it cannot finish
        if optimal:
            log.optimal_steps += 1
            size = min(int(size * 1.15) + 1, MAX_FREE, problem.num_units)
        else:
            size = max(int(size * 0.7), MIN_FREE)
    logger.info("LNS: %d steps, %d improvements, final cost %d (bound %.0f)", log.steps, log.improvements, cost, bound)
    return current, cost, log


def _neighbourhood(
    problem: Problem,
    current: np.ndarray,
    affinity: np.ndarray,
    movable: np.ndarray,
    size: int,
    rng: np.random.Generator,
    among_reps: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Free the units of a few competing reps (mostly) or a random sample (sometimes).

    Returns the free units and, with ``among_reps``, the mask of reps they may go to (else ``None``).
    """
    free = np.zeros(problem.num_units, dtype=bool)
    candidates = np.flatnonzero(movable)
    if not among_reps and (rng.random() < 0.2 or problem.num_reps < 3):
        pick = rng.choice(candidates, size=min(size, len(candidates)), replace=False)
        free[pick] = True
        return free, None
    seed_rep = int(rng.integers(0, problem.num_reps))
    weights = affinity[seed_rep].copy()
    weights[seed_rep] = 0
    chosen = [seed_rep]
    held = np.bincount(current[movable], minlength=problem.num_reps)
    while weights.sum() > 0 and held[chosen].sum() < size and len(chosen) < problem.num_reps:
        nxt = int(rng.choice(problem.num_reps, p=weights / weights.sum()))
        chosen.append(nxt)
        weights[nxt] = 0
        weights += 0.5 * affinity[nxt]
        weights[chosen] = 0
    pool = np.flatnonzero(np.isin(current, chosen) & movable)
    reps = np.zeros(problem.num_reps, dtype=bool)
    reps[chosen] = True
    if len(pool) > size and among_reps:
        # half the neighbourhood on the borders (units another chosen rep would take at the least extra
        # cost), half at random: with a thousand units per rep a random sample mostly frees inner units
        border = _border_units(problem, current, pool, reps, size // 2)
        rest = np.setdiff1d(pool, border, assume_unique=True)
        pool = np.concatenate([border, rng.choice(rest, size=min(size - len(border), len(rest)), replace=False)])
    elif len(pool) > size:
        pool = rng.choice(pool, size=size, replace=False)
    free[pool] = True
    return free, reps if among_reps else None


def _border_units(problem: Problem, current: np.ndarray, pool: np.ndarray, reps: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` units of ``pool`` that another of ``reps`` would take at the smallest extra cost."""
    pairs, owner = expand_ranges(problem.unit_start[pool], problem.unit_start[pool + 1])
    other = reps[problem.pair_rep[pairs]] & (problem.pair_rep[pairs] != current[pool][owner])
    extra = np.full(len(pool), np.inf)
    np.minimum.at(extra, owner[other], problem.pair_cost[pairs[other]].astype(np.float64))
    extra -= problem.pair_cost[problem.pairs_of(current)[pool]]
    return pool[np.argsort(extra, kind="stable")[:count]]


def improve_regions(
    problem: Problem,
    start: np.ndarray,
    *,
    deadline: float | None,
    seed: int,
    workers: int,
    on_improve: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
    work_limit: float = float("inf"),
    patience: int = PATIENCE,
) -> tuple[np.ndarray, float, SearchLog]:
    """LNS for contiguous or centre-based plans: re-optimise 2-3 neighbouring territories at a time.

    Every unit of the chosen reps is freed and may go to any of them, so their
    contiguity and centres are modelled exactly inside the neighbourhood while
    all other territories stay as they are; every accepted step keeps every rule.

    Returns
    -------
    tuple
        ``(best assignment, its objective in workload-hour x km, search log)``.
    """
    rng = np.random.default_rng(seed)
    current = start.copy()
    cost = problem.objective_of(current)
    log = SearchLog()
    idle = 0
    work: list[float] = []
    while not (stop is not None and stop.is_set()):
        seconds: float | None = None
        if idle >= patience:
            break
        if deadline is None:
            if sum(work) >= work_limit:
                break
        else:
            seconds = min(STEP_SECONDS, deadline - time.perf_counter())
            if seconds <= 0.05:
                break
        touch = touching(problem.num_reps, problem.unit_edges, current)
        chosen = [int(rng.integers(problem.num_reps))]
        for _ in range(int(rng.integers(1, 4))):
            weights = touch[chosen].sum(axis=0)
            weights[chosen] = 0
            if weights.sum() <= 0:
                break
            chosen.append(int(rng.choice(problem.num_reps, p=weights / weights.sum())))
        reps = np.zeros(problem.num_reps, dtype=bool)
        reps[chosen] = True
        # locked units of the chosen reps are freed too (their only pair is with their rep): the neighbourhood
        # then holds every unit of its reps, so their contiguity and centres are modelled
        free = np.isin(current, chosen)
        candidate, optimal = solve_neighbourhood(
            with_fixed_centres(problem, best_centres(problem, current)),
            current,
            free,
            seconds,
            int(rng.integers(0, 2**31 - 1)),
            workers,
            stop,
            work,
            reps=reps,
        )
        log.steps += 1
        idle += 1
        if candidate is not None:
            new_cost = problem.objective_of(candidate)
            if new_cost < cost - 1e-9:
                current, cost = candidate, new_cost
                idle = 0
                log.improved(cost, on_improve)
            if optimal:
                log.optimal_steps += 1
    logger.info("region LNS: %d steps, %d improvements, objective %.1f", log.steps, log.improvements, cost)
    return current, cost, log
