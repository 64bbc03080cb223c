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
each centre looks at its nearest units, and at every unit only when a farther one could change its knapsack
(checked exactly, centre by centre, at every step).

Units without weight cost nothing wherever they go: those without load either are left out (their multiplier
stays 0, which keeps the bound valid), and those with load join every centre's list, since distance does not
change their price.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from optimizer.problem import Problem, best_centres

logger = logging.getLogger(__name__)

#: Candidate units per centre: this many times the mean territory size (plus a margin), at most all units.
NEAR_FACTOR = 2.0
NEAR_MARGIN = 50
#: Polyak's step factor at the start, the iterations without a better bound before it halves, and its smallest
#: value. Measured on Illinois's 3,121 tracts in 25 territories (20 s, from the first plan's prices): 0.5 and 5
#: reach 66 % of the first plan's cost, where 2.0 and 15 (the textbook setting) stayed at the bound of zero prices
#: (12 %); on Texas's 254 counties the two differ by 3 %.
START_FACTOR = 0.5
HALVE_AFTER = 5
MIN_FACTOR = 1e-4


def pmedian_bound(
    problem: Problem, upper: float, seconds: float, iterations: int = 2000, plan: np.ndarray | None = None
) -> float | None:
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
    plan
        Rep row of every unit in a known plan: the search then starts from each unit's price in it (its weight
        times its distance to its territory's best centre), near where the bound peaks, instead of from zero.

    Returns
    -------
    float or None
        The best bound found, in the objective's real units; ``None`` when the problem is not centre-based.
    """
    if problem.centre_distance is None or problem.unit_weight is None:
        return None
    clock = time.perf_counter()
    p = problem.num_reps
    distance = problem.centre_distance.astype(np.float64)
    weight = problem.unit_weight.astype(np.float64)
    value, lo, hi = _knapsack_metric(problem)
    lists = _Lists(distance, weight, value, p)
    extra = _extra_cost(problem)
    target = problem.compactness_weight
    centre_upper = max((upper - extra) / max(target, 1e-300), 0.0)
    lam = np.zeros(len(weight))
    centres = None if plan is None else best_centres(problem, plan)
    if centres is not None:
        lam = np.where(lists.ignored, 0.0, weight * distance[np.arange(len(weight)), centres[plan]])
    best = -np.inf
    factor = START_FACTOR
    stale = 0
    steps = 0
    while steps < iterations and time.perf_counter() - clock <= seconds:
        steps += 1
        value_l, served = _lagrangian(lam, lists, lo, hi, p)
        if not np.isfinite(best) or value_l > best + 1e-9 * max(abs(best), 1.0):
            best, stale = value_l, 0
        else:
            stale += 1
            if stale >= HALVE_AFTER:
                factor, stale = factor / 2.0, 0
                if factor < MIN_FACTOR:
                    break
        gradient = np.where(lists.ignored, 0.0, 1.0 - served)
        norm = float(gradient @ gradient)
        if norm < 1e-12:
            break  # every unit served once: the relaxed solution is a plan, the bound is tight
        lam += factor * max(centre_upper - value_l, 1e-9 * max(centre_upper, 1.0)) / norm * gradient
    if not np.isfinite(best):
        return None
    logger.info("p-median Lagrangian bound %.6g after %d steps, %.1f s", best, steps, time.perf_counter() - clock)
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


class _Lists:
    """Every centre's candidate units (columns of ``order``, the centre first) and what lies beyond them.

    ``ignored`` units (no weight, no load) take part nowhere; ``anywhere`` units (no weight, some load) are on
    every list; the rest are listed nearest first, up to the list's size; ``listed[u, c]`` says whether unit
    ``u`` is on centre ``c``'s list.
    """

    def __init__(self, distance: np.ndarray, weight: np.ndarray, value: np.ndarray, p: int) -> None:
        n = len(weight)
        self.distance, self.weight, self.value = distance, weight, value
        self.ignored = (weight <= 0) & (value <= 0)
        anywhere = (weight <= 0) & (value > 0)
        self.regular = ~self.ignored & ~anywhere
        regular = int(self.regular.sum())
        near = min(regular, int(NEAR_FACTOR * n / max(p, 1)) + NEAR_MARGIN)
        self.size = 1 + near + int(anywhere.sum())
        self.order = self.columns(np.arange(n), self.size)
        self.complete = near >= regular
        self.cost = self.costs(self.order, np.arange(n))
        self.listed = np.zeros((n, n), dtype=bool)
        np.put_along_axis(self.listed, self.order, True, axis=0)

    def columns(self, centres: np.ndarray, size: int) -> np.ndarray:
        """The first ``size`` candidates of each centre (a column per centre, the centre first)."""
        key = np.where(self.regular[:, None], self.distance[:, centres], np.inf)
        key[np.flatnonzero(~self.regular & ~self.ignored), :] = -1.0
        key[centres, np.arange(len(centres))] = -2.0
        return np.argsort(key, axis=0, kind="stable")[:size]

    def costs(self, order: np.ndarray, centres: np.ndarray) -> np.ndarray:
        """``w[u] d[u, c]`` of every listed unit ``u = order[i, j]`` and its centre ``c = centres[j]``."""
        return self.weight[order] * self.distance[order, centres[None, :]]


def _lagrangian(lam: np.ndarray, lists: _Lists, lo: float, hi: float, p: int) -> tuple[float, np.ndarray]:
    """``L(lambda)`` and how much of every unit the chosen centres serve (the subgradient's part)."""
    n = len(lam)
    value = lists.value
    knapsacks = _centres(lists.order, lists.cost - lam[lists.order], value[lists.order], lo, hi)
    rho = knapsacks.rho
    exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if not lists.complete:
        extras = _beyond(lam, lists, knapsacks.last)
        short = np.flatnonzero(~np.isfinite(rho))  # the list cannot reach the smallest load: every unit
        if len(short):
            order = lists.columns(short, n)
            full = _centres(order, lists.costs(order, short) - lam[order], value[order], lo, hi)
            rho[short] = full.rho
            exact.update({int(c): full.members(i) for i, c in enumerate(short.tolist())})
        grown = [c for c in extras if np.isfinite(knapsacks.rho[c]) and c not in exact]
        if grown:
            # a knapsack over its list and every unit beyond it priced below what it paid is the knapsack over
            # all units: the sorted prefix that reaches its load never goes past that price
            # padded with the centre itself at no price and no load, which no knapsack takes
            width = lists.size + max(len(extras[c]) for c in grown)
            order = np.repeat(np.array(grown)[None, :], width, axis=0)
            padding = np.ones(order.shape, dtype=bool)
            for j, c in enumerate(grown):
                units = np.concatenate([lists.order[:, c], extras[c]])
                order[: len(units), j] = units
                padding[: len(units), j] = False
            price = np.where(padding, 0.0, lists.costs(order, np.array(grown)) - lam[order])
            more = _centres(order, price, np.where(padding, 0.0, value[order]), lo, hi)
            rho[grown] = more.rho
            exact.update({c: more.members(j) for j, c in enumerate(grown)})
    count = min(p, int(np.isfinite(rho).sum()))
    if count == 0:
        return -np.inf, np.zeros(n)
    chosen = np.argpartition(rho, count - 1)[:count] if count < n else np.arange(n)
    served = np.zeros(n)
    for c in chosen.tolist():
        units, amount = exact[c] if c in exact else knapsacks.members(c)
        np.add.at(served, units, amount)
    return float(lam.sum() + rho[chosen].sum()), served


#: Centres checked at once against every unit beyond their lists (bounds the memory of the check).
CHECK_CHUNK = 256


def _beyond(lam: np.ndarray, lists: _Lists, last: np.ndarray) -> dict[int, np.ndarray]:
    """For every centre whose knapsack a unit beyond its list could change, those units: each one priced per
    load below the highest price the knapsack paid (or below zero, where it would join for its own sake), and
    each one without load at a negative price."""
    n = len(lam)
    found: dict[int, np.ndarray] = {}
    regular = np.flatnonzero(lists.regular)
    w, v, lam_r = lists.weight[regular, None], lists.value[regular], lam[regular, None]
    loaded = v > 0
    per_load = np.where(loaded, 1.0 / np.where(loaded, v, 1.0), 0.0)[:, None]
    for start in range(0, n, CHECK_CHUNK):
        block = slice(start, min(start + CHECK_CHUNK, n))
        beyond = ~lists.listed[regular, block]
        price = w * lists.distance[regular, block] - lam_r
        threshold = np.maximum(last[block], 0.0)[None, :]
        joins = beyond & np.where(loaded[:, None], price * per_load < threshold, price < 0)
        for j in np.flatnonzero(joins.any(axis=0)).tolist():
            found[start + j] = regular[joins[:, j]]
    return found


class _Knapsacks:
    """Every centre's continuous knapsack over its listed units (``order[:, j]``, the centre first).

    The optimum takes units in increasing price per load (``a / v``) until the load reaches the amount where
    prices turn negative-to-positive, clipped into ``[lo, hi]`` (a convex piecewise-linear cost of the load);
    units without load join when their price is negative. ``rho`` is every knapsack's optimum (``inf`` where no
    load in ``[lo, hi]`` is reachable) and ``last`` the highest price per load it paid.
    """

    def __init__(
        self,
        order: np.ndarray,
        sort: np.ndarray,
        count: np.ndarray,
        fraction: np.ndarray,
        nxt: np.ndarray,
        rho: np.ndarray,
        last: np.ndarray,
    ) -> None:
        self.order, self.sort, self.count, self.fraction, self.nxt = order, sort, count, fraction, nxt
        self.rho, self.last = rho, last

    def members(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """The units knapsack ``j`` takes (its centre first) and how much of each."""
        units = self.order[self.sort[: self.count[j], j] + 1, j]
        amount = np.ones(len(units))
        if self.fraction[j] > 0:
            units = np.append(units, self.order[self.sort[self.nxt[j], j] + 1, j])
            amount = np.append(amount, self.fraction[j])
        return np.append(self.order[0, j], units), np.append(1.0, amount)


def _centres(order: np.ndarray, price: np.ndarray, load: np.ndarray, lo: float, hi: float) -> _Knapsacks:
    """Solve every centre's continuous knapsack over its listed units (see :class:`_Knapsacks`): ``order`` the
    units (the centre first), ``price`` each one's ``w[u] d[u, c] - lambda[u]`` and ``load`` its load."""
    m = order.shape[1]
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
    return _Knapsacks(order, sort, count, fraction, nxt, rho, last)
