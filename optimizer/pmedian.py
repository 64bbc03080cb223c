"""A lower bound for centre-based compactness at any size: the Lagrangian of a balanced p-median.

Every plan gives each territory a centre unit among its members; relaxing which rep a territory belongs to,
contiguity, locks and segment rules leaves a p-median in which every centre serves a load between the
smallest and the largest bound of one balanced metric. Pricing each unit's assignment row with a multiplier
``lambda[u]`` splits it into one small problem per candidate centre, a continuous knapsack solved by sorting:

    rho[c] = min sum_u (w[u] d[u, c] - lambda[u]) x[u]   subject to   lo <= sum_u v[u] x[u] <= hi,  x[c] = 1

and ``L(lambda) = sum_u lambda[u] + (sum of the p smallest rho[c])`` is a valid lower bound for every
``lambda`` (a Lagrangian relaxation). Subgradient steps (Polyak's rule against the plan's own cost) raise it
towards the LP bound of :func:`optimizer.relaxation.centre_bound`, which needs ``units^2`` LP rows and so
stops being practical beyond a few hundred units; this one scales to census tracts (thousands of units):
each centre looks at its nearest units only when no farther unit could change its knapsack.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from optimizer.problem import Problem

logger = logging.getLogger(__name__)

#: Candidate units per centre: this many times the mean territory size (plus a margin), at most all units.
NEAR_FACTOR = 4.0
NEAR_MARGIN = 50
#: Subgradient iterations without a better bound before the step factor halves, and its smallest value.
HALVE_AFTER = 15
MIN_FACTOR = 1e-4


def pmedian_bound(problem: Problem, upper: float, seconds: float, iterations: int = 2000) -> float | None:
    """A valid lower bound of the objective of a centre-based problem (Lagrangian of a balanced p-median).

    Parameters
    ----------
    problem
        A problem with ``centre_distance`` and ``unit_weight`` (``compactness_measure: centre``).
    upper
        The objective of a known plan (real units): Polyak's step aims at it.
    seconds
        Time the subgradient search may take.
    iterations
        Subgradient steps at most.

    Returns
    -------
    float or None
        The best bound found, in the objective's real units; ``None`` when the problem is not centre-based.
    """
    if problem.centre_distance is None or problem.unit_weight is None:
        return None
    clock = time.perf_counter()
    n, p = problem.num_units, problem.num_reps
    distance = problem.centre_distance
    weight = problem.unit_weight.astype(np.float64)
    value, lo, hi = _knapsack_metric(problem)
    near = min(n, int(NEAR_FACTOR * n / max(p, 1)) + NEAR_MARGIN)
    # nearest units of every centre (columns), by distance; the centre itself comes first (distance 0)
    order = np.argsort(distance, axis=0, kind="stable")[:near]  # (near, n)
    cost = weight[order] * np.take_along_axis(distance, order, axis=0)  # w[u] d[u, c]
    reach = np.take_along_axis(distance, order[-1:], axis=0)[0] if near < n else np.full(n, np.inf)
    extra = _extra_cost(problem)
    target = problem.compactness_weight
    centre_upper = max((upper - extra) / max(target, 1e-300), 0.0)
    lam = np.zeros(n)
    best = -np.inf
    factor = 2.0
    stale = 0
    for _ in range(iterations):
        if time.perf_counter() - clock > seconds:
            break
        value_l, served = _lagrangian(lam, order, cost, weight, value, lo, hi, p, reach, distance)
        if not np.isfinite(best) or value_l > best + 1e-9 * max(abs(best), 1.0):
            best, stale = value_l, 0
        else:
            stale += 1
            if stale >= HALVE_AFTER:
                factor, stale = factor / 2.0, 0
                if factor < MIN_FACTOR:
                    break
        gradient = 1.0 - served
        norm = float(gradient @ gradient)
        if norm < 1e-12:
            break  # every unit served once: the relaxed solution is a plan, the bound is tight
        lam += factor * max(centre_upper - value_l, 1e-9 * max(centre_upper, 1.0)) / norm * gradient
    if not np.isfinite(best):
        return None
    logger.info("p-median Lagrangian bound %.6g after %.1f s", best, time.perf_counter() - clock)
    return target * max(best, 0.0) + extra


def _knapsack_metric(problem: Problem) -> tuple[np.ndarray, float, float]:
    """The metric whose bounds limit each centre's load: the one with fixed bounds and the smallest tolerance."""
    fixed = [m for m in problem.metrics if m.lo is not None and m.hi is not None]
    if not fixed:
        return np.zeros(problem.num_units), 0.0, 0.0
    metric = min(fixed, key=lambda m: m.tolerance)
    assert metric.lo is not None and metric.hi is not None
    return metric.values.astype(np.float64), float(metric.lo.min()), float(metric.hi.max())


def _extra_cost(problem: Problem) -> float:
    """What every plan pays besides the centre term, at least: each unit's cheapest allowed pair."""
    pair_real = (
        problem.preference_weight * problem.pair_penalty
        + (0.0 if problem.pair_continuity is None else problem.pair_continuity)
        + problem.compactness_weight * problem.pair_compactness
    )
    cheapest = np.full(problem.num_units, np.inf)
    np.minimum.at(cheapest, problem.pair_unit, pair_real)
    return float(np.where(np.isfinite(cheapest), cheapest, 0.0).sum())


def _lagrangian(
    lam: np.ndarray,
    order: np.ndarray,
    cost: np.ndarray,
    weight: np.ndarray,
    value: np.ndarray,
    lo: float,
    hi: float,
    p: int,
    reach: np.ndarray,
    distance: np.ndarray,
) -> tuple[float, np.ndarray]:
    """``L(lambda)`` and how much of every unit the chosen centres serve (the subgradient's part)."""
    n = len(lam)
    rho, taken, last = _centres(lam, order, cost, value, lo, hi)
    if np.isfinite(reach).any():
        # a unit beyond a centre's list costs at least w * reach - lambda: it could join that centre's knapsack
        # only at a price per load below this floor; where the knapsack used a dearer unit, solve it in full
        per_load = np.where(value > 0, 1.0 / np.maximum(value, 1e-300), 0.0)
        floor = reach * float(np.min(np.where(value > 0, weight * per_load, np.inf))) - float(np.max(lam * per_load))
        pull = float(np.max(lam / np.maximum(weight, 1e-300)))
        unsure = np.flatnonzero((reach <= pull) | (last > floor) | ~np.isfinite(rho))
        if len(unsure):
            full = np.argsort(distance[:, unsure], axis=0, kind="stable")
            full_cost = weight[full] * np.take_along_axis(distance[:, unsure], full, axis=0)
            rho[unsure], exact, _ = _centres(lam, full, full_cost, value, lo, hi)
            for i, c in enumerate(unsure.tolist()):
                taken[c] = exact[i]
    count = min(p, int(np.isfinite(rho).sum()))
    if count == 0:
        return -np.inf, np.zeros(n)
    chosen = np.argpartition(rho, count - 1)[:count] if count < n else np.arange(n)
    served = np.zeros(n)
    for c in chosen.tolist():
        units, amount = taken[c]
        np.add.at(served, units, amount)
    return float(lam.sum() + rho[chosen].sum()), served


def _centres(
    lam: np.ndarray, order: np.ndarray, cost: np.ndarray, value: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Every centre's continuous knapsack over its listed units (``order[:, j]``, the centre first).

    The optimum takes units in increasing price per load (``a / v``) until the load reaches the amount where
    prices turn negative-to-positive, clipped into ``[lo, hi]`` (a convex piecewise-linear cost of the load);
    units without load join when their price is negative.

    Returns
    -------
    tuple
        ``(rho, taken, last)``: every knapsack's optimum (``inf`` where no load in ``[lo, hi]`` is reachable),
        the units and amounts it takes (by column), and the highest price per load it paid.
    """
    m = order.shape[1]
    price = cost - lam[order]  # (listed, m): w[u] d[u, c] - lambda[u]
    load = value[order]
    centre_price, centre_load = price[0], load[0]
    price, load = price[1:], load[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(load > 0, price / np.where(load > 0, load, 1.0), np.where(price < 0, -np.inf, np.inf))
    sort = np.argsort(ratio, axis=0, kind="stable")
    price_s = np.take_along_axis(price, sort, axis=0)
    load_s = np.take_along_axis(load, sort, axis=0)
    ratio_s = np.take_along_axis(ratio, sort, axis=0)
    cum_load = np.cumsum(load_s, axis=0)
    cum_price = np.cumsum(price_s, axis=0)
    room_lo, room_hi = lo - centre_load, hi - centre_load
    goal = np.clip(np.where(ratio_s < 0, load_s, 0.0).sum(axis=0), np.maximum(room_lo, 0.0), np.maximum(room_hi, 0.0))
    whole = (cum_load <= goal[None, :] * (1 + 1e-12) + 1e-9) & (ratio_s < np.inf)
    count = whole.sum(axis=0)  # a prefix: cumulative loads grow and infinite ratios come last
    size = len(price_s)
    at = np.maximum(count - 1, 0)[None, :]
    taken_load = np.where(count > 0, np.take_along_axis(cum_load, at, axis=0)[0], 0.0) if size else np.zeros(m)
    taken_price = np.where(count > 0, np.take_along_axis(cum_price, at, axis=0)[0], 0.0) if size else np.zeros(m)
    nxt = np.minimum(count, max(size - 1, 0))
    next_load = np.take_along_axis(load_s, nxt[None, :], axis=0)[0] if size else np.zeros(m)
    next_price = np.take_along_axis(price_s, nxt[None, :], axis=0)[0] if size else np.zeros(m)
    next_ratio = np.take_along_axis(ratio_s, nxt[None, :], axis=0)[0] if size else np.full(m, np.inf)
    rest = np.maximum(goal - taken_load, 0.0)
    usable = (count < size) & (rest > 1e-9) & (next_load > 0) & np.isfinite(next_ratio)
    fraction = np.where(usable, np.minimum(rest / np.where(next_load > 0, next_load, 1.0), 1.0), 0.0)
    rho = centre_price + taken_price + fraction * next_price
    reached = taken_load + fraction * next_load
    feasible = (room_hi >= -1e-9 * max(abs(hi), 1.0)) & (reached >= room_lo - 1e-9 * max(abs(lo), 1.0))
    rho = np.where(feasible, rho, np.inf)
    last_whole = (
        np.where(count > 0, np.take_along_axis(ratio_s, at, axis=0)[0], -np.inf) if size else np.full(m, -np.inf)
    )
    last = np.where(fraction > 0, next_ratio, last_whole)
    taken: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j in range(m):
        units = order[sort[: count[j], j] + 1, j]
        amount = np.ones(len(units))
        if fraction[j] > 0:
            units = np.append(units, order[sort[nxt[j], j] + 1, j])
            amount = np.append(amount, fraction[j])
        taken[j] = (np.append(order[0, j], units), np.append(1.0, amount))
    return rho, taken, last
