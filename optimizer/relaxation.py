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
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from ortools.linear_solver import pywraplp

from optimizer.lns import solve_neighbourhood
from optimizer.problem import Problem, best_centres, group_ratio, with_tolerance

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


def solve_lp(problem: Problem) -> LpSolution | None:
    """Solve the LP relaxation with GLOP.

    Parameters
    ----------
    problem
        The problem (tolerances as they stand in it).

    Returns
    -------
    LpSolution or None
        ``None`` when GLOP failed (numerics, limits).

    Raises
    ------
    LpInfeasibleError
        When the LP is infeasible: then so is the problem.
    """
    solver = pywraplp.Solver.CreateSolver("GLOP")
    # dual simplex: about 10x faster than primal on these assignment LPs (0.5 s vs 4.3 s on the example)
    solver.SetSolverSpecificParametersAsString("use_dual_simplex: true")
    n_pairs = len(problem.pair_unit)
    x = [solver.NumVar(0.0, 1.0, "") for _ in range(n_pairs)]
    order = np.argsort(problem.pair_unit, kind="stable")
    starts = np.searchsorted(problem.pair_unit[order], np.arange(problem.num_units + 1))
    for u in range(problem.num_units):
        row = solver.Constraint(1.0, 1.0)
        for p in order[starts[u] : starts[u + 1]]:
            row.SetCoefficient(x[p], 1.0)
    by_rep = [np.flatnonzero(problem.pair_rep == r) for r in range(problem.num_reps)]
    links: list[tuple[int, int, pywraplp.Constraint, float]] = []
    for m, metric in enumerate(problem.metrics):
        # rows scaled so the largest unit is 1: GLOP ended ABNORMAL on 100k-account problems whose metrics
        # run to 1e10 (scaling a row and its bounds together leaves the feasible set unchanged)
        row_scale = max(float(metric.values.max(initial=1)), 1.0)
        values = metric.values.astype(float) / row_scale
        loads = []
        for r in range(problem.num_reps):
            pairs = by_rep[r]
            load = solver.NumVar(0.0, solver.infinity(), "")
            row = solver.Constraint(0.0, 0.0)
            links.append((m, r, row, row_scale))
            row.SetCoefficient(load, -1.0)
            for p, v in zip(pairs, values[problem.pair_unit[pairs]], strict=True):
                row.SetCoefficient(x[p], float(v))
            if metric.lo is not None and metric.hi is not None:
                load.SetBounds(float(metric.lo[r]) / row_scale, float(metric.hi[r]) / row_scale)
            loads.append(load)
        if metric.grouped:
            for g in np.unique(metric.groups):
                members = np.flatnonzero(metric.groups == g)
                group_fte = sum((problem.fte_exact[r] for r in members), Fraction(0))
                # the group's total as a variable: two sparse rows per rep, not rows over every member (a
                # 333-rep group made 220,000 nonzeros per metric, and GLOP minutes at 1M accounts)
                total = solver.NumVar(0.0, solver.infinity(), "")
                row = solver.Constraint(0.0, 0.0)
                row.SetCoefficient(total, -1.0)
                for q in members:
                    row.SetCoefficient(loads[q], 1.0)
                for r in members:
                    share = problem.fte_exact[r] / group_fte
                    for sign, upper in ((1, True), (-1, False)):
                        num, den = group_ratio(metric, share, upper=upper)
                        row = solver.Constraint(-solver.infinity(), 0.0)
                        row.SetCoefficient(loads[r], float(sign))
                        row.SetCoefficient(total, -sign * num / den)
    for budget in problem.budgets:
        moved = budget.moved(problem.pair_unit, problem.pair_rep)
        row_scale = max(float(moved.max(initial=1)), 1.0)
        row = solver.Constraint(-solver.infinity(), float(budget.limit) / row_scale)
        for p, w in enumerate(moved):
            if w:
                row.SetCoefficient(x[p], float(w) / row_scale)
    objective = solver.Objective()
    cost_factor = max(float(problem.pair_cost.max(initial=1)), 1.0) / 1000.0
    for p, c in enumerate(problem.pair_cost):
        objective.SetCoefficient(x[p], float(c) / cost_factor)
    objective.SetMinimization()
    status = solver.Solve()
    if status == pywraplp.Solver.INFEASIBLE:
        raise LpInfeasibleError("the LP relaxation has no solution")
    if status != pywraplp.Solver.OPTIMAL:
        logger.warning("LP relaxation ended with status %d; continuing without it", status)
        return None
    values = np.array([v.solution_value() for v in x])
    duals = np.zeros((len(problem.metrics), problem.num_reps))
    for m, r, row, row_scale in links:
        duals[m, r] = row.dual_value() * cost_factor / row_scale
    return LpSolution(x=np.clip(values, 0.0, 1.0), objective=objective.Value() * cost_factor, link_duals=duals)


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
