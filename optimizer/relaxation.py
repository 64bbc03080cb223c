"""LP relaxation (GLOP): a lower bound and a nearly integral starting plan.

Assignment with a few balance rows is an LP whose basic optimal solutions are
integral for all but at most one unit per balance row. CP-SAT alone finds
first plans slowly on such models (its portfolio found none in 30 s on the
2,000-account example with two cores), so the solve starts here:

1. solve the LP;
2. keep every unit the LP assigns integrally, and let a small CP-SAT model
   place the few fractional ones under the true tolerances (a RENS-style
   sub-MIP); if that fails, free more units, then retry from an LP with the
   tolerances pulled in (headroom for rounding);
3. hand the plan to the large-neighbourhood search (:mod:`optimizer.lns`).

The LP with the true tolerances is also a valid lower bound of the objective.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from ortools.linear_solver import pywraplp

from optimizer.lns import solve_neighbourhood
from optimizer.problem import Problem, best_centres, group_ratio, with_tolerance
from optimizer.sparse_lp import LpStatus, SparseLp

logger = logging.getLogger(__name__)

_INTEGRAL = 1 - 1e-6


class LpInfeasibleError(Exception):
    """The LP relaxation is infeasible, which proves the problem infeasible."""


@dataclass(frozen=True)
class LpSolution:
    """An optimal LP solution.

    Attributes
    ----------
    x
        Value of every pair of the problem, in [0, 1].
    objective
        LP objective in the problem's integer cost units.
    link_duals
        Dual value of every metric's load rows (metrics x reps), in integer cost units per integer metric
        unit: the LP's price of one more unit of load on a rep (:mod:`optimizer.lagrange` starts from it).
    """

    x: np.ndarray
    objective: float
    link_duals: np.ndarray | None = None

    def integral_units(self, problem: Problem) -> np.ndarray:
        """Rep row of units the LP assigns integrally, -1 for fractional ones."""
        out = np.full(problem.num_units, -1, dtype=np.int64)
        whole = self.x >= _INTEGRAL
        out[problem.pair_unit[whole]] = problem.pair_rep[whole]
        return out

    def rounded(self, problem: Problem) -> np.ndarray:
        """Rep row of every unit: its largest LP fraction."""
        order = np.lexsort((-self.x, problem.pair_unit))
        first = np.ones(len(order), dtype=bool)
        first[1:] = problem.pair_unit[order][1:] != problem.pair_unit[order][:-1]
        out = np.full(problem.num_units, -1, dtype=np.int64)
        out[problem.pair_unit[order[first]]] = problem.pair_rep[order[first]]
        return out


def solve_lp(
    problem: Problem,
    seconds: float | None = None,
    *,
    tolerance: float | None = None,
    stop: threading.Event | None = None,
    interior: bool = False,
) -> LpSolution | None:
    """Solve the LP relaxation with GLOP, HiGHS' interior point method, or approximately with PDLP.

    Parameters
    ----------
    problem
        The problem (tolerances as they stand in it).
    seconds
        Time the solver may take (``None``: no limit); past it, no solution.
    tolerance
        Solve with PDLP to this relative tolerance instead (:meth:`~optimizer.sparse_lp.SparseLp.solve_approximately`,
        which ``stop`` ends): values and objective are then approximate, but its duals, off a simplex vertex,
        price units far better in :mod:`optimizer.lagrange`. ``None``: exactly.
    interior
        Solve exactly with HiGHS' interior point method and crossover
        (:meth:`~optimizer.sparse_lp.SparseLp.solve_interior`) instead of GLOP's dual simplex: a vertex as well,
        sooner on large clustered LPs.

    Returns
    -------
    LpSolution or None
        ``None`` when the solver failed (numerics, limits).

    Raises
    ------
    LpInfeasibleError
        When the LP is infeasible: then so is the problem.
    """
    n_reps = problem.num_reps
    lp = SparseLp()
    cost_factor = max(float(problem.pair_cost.max(initial=1)), 1.0) / 1000.0
    x = lp.columns(0.0, 1.0, problem.pair_cost / cost_factor, count=len(problem.pair_unit))
    lp.coefficients(lp.rows(1.0, 1.0, count=problem.num_units)[problem.pair_unit], x, 1.0)
    links: list[tuple[np.ndarray, float]] = []
    for metric in problem.metrics:
        # rows scaled so the largest unit is 1: GLOP ended ABNORMAL on 100k-account problems whose metrics
        # run to 1e10 (scaling a row and its bounds together leaves the feasible set unchanged)
        row_scale = max(float(metric.values.max(initial=1)), 1.0)
        if metric.lo is not None and metric.hi is not None:
            loads = lp.columns(metric.lo / row_scale, metric.hi / row_scale)
        else:
            loads = lp.columns(0.0, np.inf, count=n_reps)
        link = lp.rows(0.0, 0.0, count=n_reps)
        lp.coefficients(link, loads, -1.0)
        lp.coefficients(link[problem.pair_rep], x, metric.values[problem.pair_unit] / row_scale)
        links.append((link, row_scale))
        if metric.grouped:
            for g in np.unique(metric.groups):
                members = np.flatnonzero(metric.groups == g)
                group_fte = sum((problem.fte_exact[r] for r in members), Fraction(0))
                # the group's total as a column: two sparse rows per rep, not rows over every member (a
                # 333-rep group made 220,000 nonzeros per metric, and GLOP minutes at 1M accounts)
                shares = [problem.fte_exact[r] / group_fte for r in members]
                upper, lower = ([_ratio(group_ratio(metric, s, upper=up)) for s in shares] for up in (True, False))
                lp.group_rows(loads[members], np.array(upper), np.array(lower))
    for budget in problem.budgets:
        moved = budget.moved(problem.pair_unit, problem.pair_rep)
        row_scale = max(float(moved.max(initial=1)), 1.0)
        row = lp.rows(-np.inf, float(budget.limit) / row_scale, count=1)
        used = np.flatnonzero(moved)
        lp.coefficients(np.repeat(row, len(used)), x[used], moved[used] / row_scale)
    if tolerance is not None:
        answer = lp.solve_approximately(tolerance, seconds=seconds, stop=stop)
    elif interior:
        answer = lp.solve_interior(seconds)
    else:
        answer = lp.solve(seconds=seconds)
    if answer.status is LpStatus.INFEASIBLE:
        raise LpInfeasibleError("the LP relaxation has no solution")
    if answer.status is not LpStatus.OPTIMAL:
        logger.warning("LP relaxation ended without an optimal solution; continuing without it")
        return None
    duals = np.stack([answer.duals[link] * cost_factor / row_scale for link, row_scale in links]).reshape(-1, n_reps)
    return LpSolution(x=np.clip(answer.values[x], 0.0, 1.0), objective=answer.objective * cost_factor, link_duals=duals)


def _ratio(fraction: tuple[int, int]) -> float:
    return fraction[0] / fraction[1]


def solve_lp_or_none(problem: Problem) -> LpSolution | None:
    """:func:`solve_lp`, with ``None`` both when GLOP fails and when the LP has no solution (callers that only
    want a starting point, and learn of infeasibility elsewhere)."""
    try:
        return solve_lp(problem)
    except LpInfeasibleError:
        return None


def shrink_tolerances(problem: Problem, factor: float) -> Problem:
    """Problem with every tolerance multiplied by ``factor`` (headroom for rounding)."""
    for metric in problem.metrics:
        problem = with_tolerance(problem, metric.name, metric.tolerance * 100 * factor)
    return problem


def lp_start(
    problem: Problem, seconds: float | None, seed: int = 0, workers: int = 2
) -> tuple[np.ndarray | None, LpSolution | None]:
    """A feasible starting plan from the LP, and the LP itself (its objective bounds the problem).

    Parameters
    ----------
    problem
        The problem.
    seconds
        Time budget for the repair steps; ``None``: no wall-clock limit, each
        repair bounded by deterministic time (reproducible).
    seed, workers
        CP-SAT settings of the repair.

    Returns
    -------
    tuple
        ``(assignment or None, LP solution or None)``; the LP is ``None``
        when GLOP failed.

    Raises
    ------
    LpInfeasibleError
        When the LP relaxation proves the problem infeasible.
    """
    bound_lp = solve_lp(problem)
    if bound_lp is None:
        return None, None
    rng = np.random.default_rng(seed)
    deadline = None if seconds is None else time.perf_counter() + seconds
    for factor in (1.0, 0.5):
        try:
            lp = bound_lp if factor == 1.0 else solve_lp(shrink_tolerances(problem, factor))
        except LpInfeasibleError:
            continue
        if lp is None:
            continue
        start = lp.rounded(problem)
        fractional = lp.integral_units(problem) < 0
        for widen in (0.0, 0.1, 0.3):
            step: float | None = None
            if deadline is not None and seconds is not None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None, bound_lp
                step = min(remaining, max(2.0, seconds / 4))
            free = fractional | (rng.random(problem.num_units) < widen)
            free &= problem.fixed_rep < 0
            plan, _ = solve_neighbourhood(problem, start, free, step, seed, workers)
            if plan is not None:
                logger.info(
                    "LP start: %d fractional units placed (tolerance x%.1f, %.0f %% of units freed)",
                    int(fractional.sum()),
                    factor,
                    100 * widen,
                )
                return plan, bound_lp
    return None, bound_lp


#: Largest number of units for which the centre-based LP bound is computed (its LP has units^2 columns and rows:
#: 1 s for North Carolina's 100 counties, 80 s for Texas's 254); larger problems use :mod:`optimizer.pmedian`.
CENTRE_BOUND_UNITS = 150
#: Seconds GLOP may take for the centre-based LP bound.
CENTRE_BOUND_SECONDS = 10.0


def centre_bound(
    problem: Problem,
    seconds: float = CENTRE_BOUND_SECONDS,
    *,
    integer: bool = False,
    sink: list[np.ndarray] | None = None,
    plan: np.ndarray | None = None,
) -> float | None:
    """A lower bound for centre-based compactness: the LP of a balanced p-median over the units.

    With ``integer``, SCIP solves the same p-median with whole assignments (units not split between centres)
    and its dual bound, where the time runs out too, is the bound: on Florida's 67 counties in 4 territories it
    closed the LP's 7.9 % gap to the plan in 8 s (the plan was optimal; the LP split large counties).

    Every plan gives each non-empty territory a centre unit among its members; relaxing which rep a territory
    belongs to leaves a p-median: ``x[u, c]`` (unit ``u`` is served by centre ``c``), ``y[c]`` (``c`` is a
    centre, ``x[c, c] >= y[c]``), at most one centre per rep, and every metric with fixed bounds keeps each
    centre's load between the smallest and the largest rep bound. Its LP optimum bounds the centre term from
    below; the pair costs (segment penalties) add the cheapest allowed pair of every unit. Contiguity, locks
    and segment rules are relaxed, so the bound is valid for every plan of the problem.

    Parameters
    ----------
    problem
        A problem with ``centre_distance`` (``objective.compactness_measure: centre``).
    seconds
        Time GLOP or SCIP may take.
    integer
        Solve the p-median with whole assignments (SCIP) and return its dual bound.
    plan
        With ``integer``: a plan to start from (rep row per unit). SCIP reports its dual bound only once it holds
        a solution, which on contiguous maps it may not find by itself in the time given.
    sink
        With ``integer``: SCIP's best solution is appended, as the centre serving each unit (a partition into at
        most ``num_reps`` groups that keeps every fixed metric between the loosest bounds, not yet given to reps).

    Returns
    -------
    float or None
        The bound in the objective's real units (workload-hour x km); ``None`` when the problem is not
        centre-based, has more than :data:`CENTRE_BOUND_UNITS` units, or GLOP fails or runs out of ``seconds``.
    """
    if problem.centre_distance is None or problem.unit_weight is None or problem.num_units > CENTRE_BOUND_UNITS:
        return None
    n = problem.num_units
    solver = pywraplp.Solver.CreateSolver("SCIP" if integer else "GLOP")
    if solver is None:
        return None
    y = [solver.IntVar(0.0, 1.0, "") if integer else solver.NumVar(0.0, 1.0, "") for _ in range(n)]
    x = [[solver.IntVar(0.0, 1.0, "") if integer else solver.NumVar(0.0, 1.0, "") for _ in range(n)] for _ in range(n)]
    solver.Add(solver.Sum(y) <= problem.num_reps)
    for u in range(n):
        solver.Add(solver.Sum(x[u]) == 1)
        for c in range(n):
            solver.Add(x[u][c] <= y[c])
    for c in range(n):
        solver.Add(x[c][c] >= y[c])
    for metric in problem.metrics:
        if metric.lo is None or metric.hi is None:
            continue
        for c in range(n):
            load = solver.Sum([float(metric.values[u]) * x[u][c] for u in range(n) if metric.values[u]])
            solver.Add(load >= float(metric.lo.min()) * y[c])
            solver.Add(load <= float(metric.hi.max()) * y[c])
    weighted = problem.unit_weight[:, None] * problem.centre_distance
    objective = solver.Objective()
    for u in range(n):
        for c in range(n):
            if weighted[u, c] > 0:
                objective.SetCoefficient(x[u][c], float(weighted[u, c]))
    objective.SetMinimization()
    if integer and plan is not None:
        centres = best_centres(problem, plan)
        assert centres is not None
        chosen = set(centres[np.unique(plan)].tolist())
        variables = [y[c] for c in range(n)] + [x[u][c] for u in range(n) for c in range(n)]
        values = [float(c in chosen) for c in range(n)] + [
            float(c == centres[plan[u]]) for u in range(n) for c in range(n)
        ]
        solver.SetHint(variables, values)
    solver.SetTimeLimit(max(int(seconds * 1000), 1))
    status = solver.Solve()
    if integer:
        # SCIP's dual bound holds when stopped by the time limit too (every branch left open is bounded by it)
        value = objective.BestBound()
        if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE, pywraplp.Solver.NOT_SOLVED):
            return None
        if not np.isfinite(value) or value <= 0:
            return None
        if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE) and sink is not None:
            served = np.array([[v.solution_value() for v in row] for row in x])
            sink.append(served.argmax(axis=1))  # the centre each unit is served by
    elif status != pywraplp.Solver.OPTIMAL:
        return None
    else:
        value = objective.Value()
    cheapest = np.full(n, np.inf)
    pair_real = (
        problem.preference_weight * problem.pair_penalty
        + (0.0 if problem.pair_continuity is None else problem.pair_continuity)
        + problem.compactness_weight * problem.pair_compactness
    )
    np.minimum.at(cheapest, problem.pair_unit, pair_real)
    cheapest[~np.isfinite(cheapest)] = 0.0
    return problem.compactness_weight * value + float(cheapest.sum())
