"""One scoring function for any assignment: ours, a greedy one, or a peer's.

Balance is measured on real (unscaled) values with the same target rule as
the plan's KPIs (:mod:`models.balance`), so a score and a ``summary.json``
agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.balance import deviation_pct, targets
from optimizer.graph import split_patches
from optimizer.problem import Problem

#: Slack when comparing deviations to tolerances.
EPS = 1e-9


@dataclass(frozen=True)
class Score:
    """Quality of one assignment.

    Attributes
    ----------
    max_deviation_pct
        Per metric, the largest absolute deviation from target in %.
    within_tolerance
        Per metric, whether every rep is within the tolerance.
    compactness
        Workload-weighted distance to home bases, workload-hour x km.
    penalty
        Soft segment penalties, workload-hour x km.
    objective
        ``compactness_weight * compactness + preference_weight * penalty`` plus the move penalties
        (``continuity.move_penalty_km``).
    violations
        Hard rules broken (pairs not allowed: locks, hard segment rules, candidate limits).
    diameter
        Largest territory diameter (largest distance between two units of one territory) when the problem
        measures compactness by diameter (``compactness_measure: diameter``), else ``None``.
    """

    max_deviation_pct: dict[str, float]
    within_tolerance: dict[str, bool]
    compactness: float
    penalty: float
    objective: float
    violations: list[str] = field(default_factory=list)
    diameter: float | None = None

    @property
    def feasible(self) -> bool:
        """Every metric within tolerance and no hard rule broken."""
        return all(self.within_tolerance.values()) and not self.violations


def disconnected(problem: Problem, unit_rep: np.ndarray) -> list[int]:
    """Reps whose territory is not one connected piece of the adjacency graph on each of its team layers.

    Key-account units are exempt; with ``units.team_layers`` a territory may hold one piece on every layer.
    """
    split = split_patches(problem.adjacency, np.asarray(unit_rep, dtype=np.int64), problem.contiguity_layer)
    return sorted({rep for rep, _ in split})


def score(problem: Problem, unit_rep: np.ndarray) -> Score:
    """Score an assignment of units to reps.

    Parameters
    ----------
    problem
        The problem the assignment answers.
    unit_rep
        Rep row of every unit.

    Returns
    -------
    Score
    """
    unit_rep = np.asarray(unit_rep, dtype=np.int64)
    devs: dict[str, float] = {}
    within: dict[str, bool] = {}
    for metric in problem.metrics:
        loads = np.bincount(unit_rep, weights=metric.real, minlength=problem.num_reps)
        dev = np.abs(deviation_pct(loads, targets(loads, problem.fte, metric.groups)))
        devs[metric.name] = float(dev.max())
        within[metric.name] = bool(devs[metric.name] <= metric.tolerance * 100 + EPS)
    pairs = problem.pairs_of(unit_rep)
    violations = [
        f"account family '{problem.unit_ids[u]}' may not go to rep '{problem.rep_ids[unit_rep[u]]}'"
        for u in np.flatnonzero(pairs < 0)
    ]
    ok = pairs[pairs >= 0]
    if problem.contiguous:
        violations += [
            f"territory of rep '{problem.rep_ids[r]}' is not connected" for r in disconnected(problem, unit_rep)
        ]
    for budget in problem.budgets:
        moved = budget.moved_by(unit_rep)
        if moved > budget.limit:
            violations.append(
                f"move budget on {budget.name} exceeded: {moved / budget.scale:g} moved, at most "
                f"{budget.real_limit:g} allowed"
            )
    compactness = float(problem.pair_compactness[ok].sum()) + problem.centre_cost(unit_rep)
    penalty = float(problem.pair_penalty[ok].sum())
    return Score(
        max_deviation_pct=devs,
        within_tolerance=within,
        compactness=compactness,
        penalty=penalty,
        objective=problem.compactness_weight * compactness
        + problem.preference_weight * penalty
        + (0.0 if problem.pair_continuity is None else float(problem.pair_continuity[ok].sum())),
        violations=violations,
        diameter=max_diameter(problem, unit_rep),
    )


def max_diameter(problem: Problem, unit_rep: np.ndarray) -> float | None:
    """Largest distance between two units of one territory (``None`` without unit distances for diameters)."""
    if problem.diameter_distance is None:
        return None
    return float(territory_diameters(problem.diameter_distance, unit_rep, problem.num_reps).max(initial=0.0))


def territory_diameters(distance: np.ndarray, unit_rep: np.ndarray, num_reps: int) -> np.ndarray:
    """Largest distance between two units of each territory (0 for empty or single-unit territories).

    Parameters
    ----------
    distance
        Unit-to-unit distances, ``(n, n)``.
    unit_rep
        Territory of every unit.
    num_reps
        Number of territories.

    Returns
    -------
    numpy.ndarray
        One diameter per territory.
    """
    unit_rep = np.asarray(unit_rep, dtype=np.int64)
    out = np.zeros(num_reps)
    for r in range(num_reps):
        members = np.flatnonzero(unit_rep == r)
        if len(members) > 1:
            out[r] = float(distance[np.ix_(members, members)].max())
    return out
