"""Aggregation-disaggregation rounds: a bound close to the units' LP, and plans close to it, for very large problems.

An LP over clusters of units (:mod:`optimizer.aggregate`) is a restriction: each cluster moves whole, so its
optimum is no bound. Its duals are prices, though, and the Lagrangian at any prices, evaluated over every unit
(:mod:`optimizer.lagrange`), is a proven bound. There each unit takes its cheapest priced pair; where the members
of one cluster take different reps, the cluster was too coarse for these prices, so it splits along their
choices and the next LP is closer to the units' own LP. When no cluster splits, the clustered LP's optimum is
the Lagrangian's value: the units' LP optimum.

Each round's LP also yields a plan, as the first plan does (:func:`optimizer.aggregate.refine`, split, repair)
but at the exact tolerances. At 100,000 accounts / 100 reps (every pair offered), starting from the first
plan's 2,748 clusters with every pair they allow:

====== ======== =========== ============ ==========
round  clusters clustered LP bound        plan
====== ======== =========== ============ ==========
0      2,748    676.6 M     614.4 M      669.6 M
1      4,364    652.8 M     644.5 M      656.4 M
2      6,176    648.4 M     646.7 M      652.6 M
====== ======== =========== ============ ==========

against a first plan of 697.3 M after descent and a bound of 522 M from 20 s of the cutting-plane search.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from optimizer.aggregate import aggregate, refine, solve_clustered_lp, spread
from optimizer.lagrange import LagrangianEvaluator
from optimizer.lns import assignment_cost
from optimizer.problem import Problem, unique_keys
from optimizer.relaxation import LpInfeasibleError, solve_lp
from optimizer.repair import repair, violation

logger = logging.getLogger(__name__)

#: Most rounds (each LP is larger than the one before: at 100,000 accounts 1.8 s, 4.3 s, 8.8 s).
MAX_ROUNDS = 6
#: Most seconds the repair of a round's plan gets (the rounds already hold a plan, so one that does not come
#: quickly is not worth the wait): at 1,000,000 accounts a round's split at the exact tolerances was still 2.96
#: bands off when the rounds' deadline stopped its repair (the round took 62.8 s), and the descent after it had
#: 7 s instead of 35.
ROUND_REPAIR_SECONDS = 15.0
#: A round starts only if this many times the previous round's time is left before the deadline.
ROUND_GROWTH = 1.6
#: Most rounds of :func:`pdlp_price_rounds`, and how many times the previous PDLP's time a round is expected to
#: take (it starts only if that much is left).
PRICE_ROUNDS, PRICE_ROUND_GROWTH = 3, 2.0
#: PDLP's relative tolerance in the first round and in the later ones. At 1,000,000 accounts / 500 reps the
#: second round's LP (27,781 clusters) took 80 s at 1e-3 (Lagrangian 410.6 M), 44 s at 3e-3 (408.8 M); started
#: from the first round's solution it was slower still (75 s at 1e-3, 77 s at 3e-3), so every round starts cold.
FIRST_TOLERANCE, LATER_TOLERANCE = 1e-3, 3e-3


@dataclass(frozen=True)
class Rounds:
    """What the rounds found.

    Attributes
    ----------
    bound
        Best proven bound (integer cost units), ``-inf`` when no round ran.
    prices
        The prices that gave it (metrics x reps), or ``None``.
    plan, cost
        The cheapest plan within every tolerance: a round's, or the one given when none was cheaper.
    rounds, clusters
        Rounds run and the clusters of the last one.
    """

    bound: float
    prices: np.ndarray | None
    plan: np.ndarray
    cost: int
    rounds: int
    clusters: int


def disaggregation_rounds(
    problem: Problem,
    cluster: np.ndarray,
    plan: np.ndarray,
    *,
    deadline: float | None,
    relative_gap: float = 0.0,
    on_round: Callable[[Rounds], None] | None = None,
    stop: threading.Event | None = None,
    max_rounds: int = MAX_ROUNDS,
    expected_seconds: float = 0.0,
) -> Rounds:
    """Clustered LPs at the exact tolerances, each a bound (its duals' Lagrangian) and a plan, clusters split between.

    Parameters
    ----------
    problem
        A problem without contiguity or centre-based compactness.
    cluster
        Cluster of every unit to start from (e.g. the first plan's).
    plan
        A plan within every tolerance (kept unless a round finds a cheaper one).
    deadline
        ``time.perf_counter()`` value after which no round starts (one is expected to take
        :data:`ROUND_GROWTH` times the one before); ``None``: :data:`MAX_ROUNDS` rounds.
    relative_gap
        Stop once the best plan is proven within this share of optimal.
    on_round
        Called after each round with what has been found so far.
    stop
        Set it to stop after the current step.
    max_rounds
        Most rounds.
    expected_seconds
        How long the first round is expected to take (e.g. the first plan's clustered LP and plan): it starts only if
        :data:`ROUND_GROWTH` times that is left before the deadline.

    Returns
    -------
    Rounds
    """
    # made when a round runs (over every pair: a gigabyte at 1,000,000 accounts)
    evaluator: LagrangianEvaluator | None = None
    found = Rounds(-np.inf, None, plan, assignment_cost(problem, plan), 0, int(cluster.max()) + 1)
    last = expected_seconds
    for k in range(max_rounds):
        began = time.perf_counter()
        if stop is not None and stop.is_set():
            break
        if deadline is not None and began + ROUND_GROWTH * last > deadline:
            break
        coarse = aggregate(problem, cluster, cheapest=False)
        try:
            lp = solve_clustered_lp(coarse, None if deadline is None else deadline - began)
        except LpInfeasibleError:
            logger.info("round %d: the LP over %d clusters has no solution", k, coarse.num_units)
            break
        if lp is None or lp.link_duals is None:
            break
        evaluator = evaluator or LagrangianEvaluator(problem)
        value, sign, chosen = _priced_at(evaluator, lp.link_duals)
        bound, prices = (value, sign * lp.link_duals) if value > found.bound else (found.bound, found.prices)
        best, cost = found.plan, found.cost
        if lp.objective < cost and (deadline is None or time.perf_counter() < deadline):
            # (a plan from this LP seldom costs less than the LP: none is tried when that is no better)
            candidate = _plan_from(problem, cluster, coarse, lp.x, deadline)
            if candidate is not None and assignment_cost(problem, candidate) < cost:
                best, cost = candidate, assignment_cost(problem, candidate)
        # units of one cluster that take different reps at these prices part ways
        cluster = _parted(problem, cluster, chosen)
        found = Rounds(bound, prices, best, cost, k + 1, coarse.num_units)
        logger.info(
            "round %d: %d clusters, LP %.6g, bound %.6g, plan %.6g (%.1f s)",
            k, coarse.num_units, lp.objective, bound, cost, time.perf_counter() - began,
        )  # fmt: skip
        if on_round is not None:
            on_round(found)
        if int(cluster.max()) + 1 == coarse.num_units or cost - bound <= relative_gap * abs(cost):
            break  # no cluster split (the LP is the units' LP), or the plan is proven good enough
        last = time.perf_counter() - began
    return found


def pdlp_price_rounds(
    problem: Problem, cluster: np.ndarray, deadline: float | None, stop: threading.Event | None = None
) -> tuple[float, np.ndarray] | None:
    """Prices for the Lagrangian bound from PDLP, over clusters split where units part at the prices.

    The rounds of :func:`disaggregation_rounds` without plans, and with PDLP (:func:`optimizer.relaxation.solve_lp`
    with a ``tolerance``) at the exact tolerances: its duals are off a simplex vertex, which units of one
    cluster share far better than GLOP's (at 1,000,000 accounts / 500 reps the Lagrangian at GLOP's duals of the
    clustered LP was 176.6 M, below zero prices' 324.9 M, at PDLP's 396.3 M; one round more, 408.8 M). Meant
    for a second thread: PDLP runs in a process of its own, and the evaluation is numpy.

    Parameters
    ----------
    problem
        A problem without contiguity or centre-based compactness.
    cluster
        Cluster of every unit to start from (:func:`optimizer.aggregate.cluster_units`).
    deadline
        ``time.perf_counter()`` value by which PDLP must stop (a round starts only when it is expected to end
        before); ``None``: :data:`PRICE_ROUNDS` rounds.
    stop
        When set, the rounds end (a running PDLP at once) with the best prices so far.

    Returns
    -------
    tuple or None
        The best Lagrangian value found over every pair (a proven bound) and its prices (metrics x reps);
        ``None`` when PDLP gave no prices in time.
    """
    began = time.perf_counter()
    coarse = aggregate(problem, cluster, cheapest=False)

    def left() -> float | None:
        return None if deadline is None else deadline - time.perf_counter()

    try:
        lp = solve_lp(coarse, left(), tolerance=FIRST_TOLERANCE, stop=stop)
    except LpInfeasibleError:
        return None
    if lp is None or lp.link_duals is None:
        logger.info("PDLP gave no prices over %d clusters in time", coarse.num_units)
        return None
    last = time.perf_counter() - began
    evaluator = LagrangianEvaluator(problem)
    best: tuple[float, np.ndarray] | None = None
    for k in range(PRICE_ROUNDS + 1):
        value, sign, chosen = _priced_at(evaluator, lp.link_duals)
        logger.info(
            "PDLP prices, round %d: %d clusters, Lagrangian %.6g (%.1f s)",
            k, coarse.num_units, value, time.perf_counter() - began,
        )  # fmt: skip
        if best is None or value > best[0]:
            best = (value, sign * lp.link_duals)
        now = time.perf_counter()
        if k == PRICE_ROUNDS or (deadline is not None and now + PRICE_ROUND_GROWTH * last > deadline):
            break
        if stop is not None and stop.is_set():
            break
        finer = _parted(problem, cluster, chosen)
        if int(finer.max()) + 1 == coarse.num_units:
            break  # no cluster splits: the prices are the clustered LP's, as good as PDLP makes them
        finer_problem = aggregate(problem, finer, cheapest=False)
        try:
            finer_lp = solve_lp(finer_problem, left(), tolerance=LATER_TOLERANCE, stop=stop)
        except LpInfeasibleError:
            break
        if finer_lp is None or finer_lp.link_duals is None:
            break
        cluster, coarse, lp, last = finer, finer_problem, finer_lp, time.perf_counter() - now
    return best


def _parted(problem: Problem, cluster: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Clusters split where their units part: a new cluster per old cluster and the rep of each unit's ``chosen``
    pair, numbered in that order."""
    _, parted, _ = unique_keys(
        cluster * problem.num_reps + problem.pair_rep[chosen], (int(cluster.max()) + 1) * problem.num_reps
    )
    return parted


def _priced_at(evaluator: LagrangianEvaluator, duals: np.ndarray) -> tuple[float, float, np.ndarray]:
    """The Lagrangian at an LP's duals, with the sign that gives more (conventions differ), that sign, and the pair
    each unit takes there."""
    value, sign, chosen = max(
        ((*evaluator.evaluate(sign * duals)[:1], sign, evaluator.last_chosen) for sign in (1.0, -1.0)),
        key=lambda tried: tried[0],
    )
    return value, sign, chosen


def _plan_from(
    problem: Problem, cluster: np.ndarray, coarse: Problem, x: np.ndarray, deadline: float | None
) -> np.ndarray | None:
    """A plan within every tolerance and move budget from a clustered LP solution (fractional clusters cut finer,
    split, repaired), or ``None``."""
    pieces, refined = refine(problem, cluster, coarse, x)
    if refined is not coarse:
        try:
            finer = solve_clustered_lp(refined, None if deadline is None else max(deadline - time.perf_counter(), 1.0))
        except LpInfeasibleError:
            finer = None
        if finer is None:
            return None
        cluster, coarse, x = pieces, refined, finer.x
    start = spread(problem, coarse, cluster, x)
    if violation(problem, start) > 0:
        until = time.perf_counter() + ROUND_REPAIR_SECONDS
        plan = repair(problem, start, deadline=until if deadline is None else min(deadline, until))
    else:
        plan = start
    return plan if plan is not None and _within_budgets(problem, plan) else None


def _within_budgets(problem: Problem, plan: np.ndarray) -> bool:
    """Whether a plan keeps every move budget (the repair moves units without looking at them)."""
    return all(budget.moved_by(plan) <= budget.limit for budget in problem.budgets)
