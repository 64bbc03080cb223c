"""Starting assignments that CP-SAT repairs into a plan (solution hints)."""

from __future__ import annotations

import numpy as np

from optimizer.problem import Problem


def greedy_assignment(problem: Problem) -> np.ndarray:
    """Keep each unit with its current rep where allowed, else send it to its cheapest rep.

    Then, for metrics balanced across all reps, move units from reps above
    their upper bound to the cheapest allowed rep still below its target,
    largest units first. The result is a hint, not a promise: it may still
    break balance, and CP-SAT repairs it.

    Parameters
    ----------
    problem
        The problem.

    Returns
    -------
    numpy.ndarray
        Rep row per unit.
    """
    n_units = problem.num_units
    best_cost = np.full(n_units, np.iinfo(np.int64).max)
    choice = np.full(n_units, -1, dtype=np.int64)
    order = np.lexsort((problem.pair_cost, problem.pair_unit))
    first = np.ones(len(order), dtype=bool)
    first[1:] = problem.pair_unit[order][1:] != problem.pair_unit[order][:-1]
    cheapest = order[first]
    choice[problem.pair_unit[cheapest]] = problem.pair_rep[cheapest]
    best_cost[problem.pair_unit[cheapest]] = problem.pair_cost[cheapest]

    allowed = set(zip(problem.pair_unit.tolist(), problem.pair_rep.tolist(), strict=True))
    for u in np.flatnonzero(problem.current_rep >= 0):
        if (int(u), int(problem.current_rep[u])) in allowed:
            choice[u] = problem.current_rep[u]

    fixed = [m for m in problem.metrics if m.hi is not None]
    if not fixed:
        return choice
    pairs_of: dict[int, list[tuple[int, int]]] = {}
    for p in np.argsort(problem.pair_cost, kind="stable"):
        pairs_of.setdefault(int(problem.pair_unit[p]), []).append((int(problem.pair_rep[p]), int(problem.pair_cost[p])))
    loads = {m.name: np.bincount(choice, weights=m.values, minlength=problem.num_reps) for m in fixed}
    targets = {m.name: (m.lo + m.hi) / 2 for m in fixed}
    locked = problem.fixed_rep >= 0
    for _ in range(3):
        moved = False
        for metric in fixed:
            over = np.flatnonzero(loads[metric.name] > metric.hi)
            for r in over:
                units = np.flatnonzero((choice == r) & ~locked)
                units = units[np.argsort(-metric.values[units], kind="stable")]
                for u in units:
                    if loads[metric.name][r] <= metric.hi[r]:
                        break
                    for rep, _cost in pairs_of.get(int(u), []):
                        if rep == r:
                            continue
                        if all(loads[m.name][rep] + m.values[u] <= targets[m.name][rep] for m in fixed):
                            for m in fixed:
                                loads[m.name][r] -= m.values[u]
                                loads[m.name][rep] += m.values[u]
                            choice[u] = rep
                            moved = True
                            break
        if not moved:
            break
    return choice
