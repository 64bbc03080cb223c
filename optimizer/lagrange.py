"""A Lagrangian lower bound for problems too large for the assignment LP.

Relax the rows that tie each rep's load to the units it holds,
``load[m, r] = sum(value[m, u] * x[u, r])``, with a price ``mu[m, r]`` per
metric and rep. What is left splits in two easy parts:

* **units**: every unit takes its cheapest pair at the priced cost
  ``cost[u, r] + sum_m mu[m, r] * value[m, u]`` (one pass over the pairs);
* **loads**: the loads minimise ``-sum mu[m, r] * load[m, r]`` under the
  balance rules and ``sum_r load[m, r] = total[m]`` (which every plan meets):
  a continuous knapsack per metric; for metrics balanced within segment
  groups, one knapsack per group at unit scale, then one over the groups'
  totals, each within what its reps can hold in any plan (:func:`group_ranges`).

For any prices the sum of both parts is at most the cost of every plan, so it
is a proven lower bound. The prices improve by a trust-region cutting-plane
method (a simple bundle method): every evaluation adds a cut ``L(mu) <=
L(mu_k) + g_k . (mu - mu_k)`` to a small GLOP model, which proposes the next
prices inside a box around the best ones so far; the box widens after a good
step and shrinks after a bad one. Prices are measured in cost per mean load
per rep, so accounts and revenue share one box. (Plain subgradient steps
barely moved the bound in 400 steps on 10,000 accounts.) Move budgets are dropped, which only weakens the bound. At best
the bound equals the LP relaxation's over all units, which GLOP cannot solve
in time at this size.

Above :data:`SEARCH_FROM` pairs the search prices each unit's few cheapest
pairs only, which overrates the Lagrangian once prices make another pair the
cheapest; the bound returned is the best exact value (over every pair) of the
prices checked: at intervals growing by :data:`CHECK_GROWTH` from a few exact
evaluations' time, whenever the search's value passes a plan's cost, and at
the end; each check adds the pairs it chose to the search. At 100,000 accounts / 100 reps: 587.0 M after
200 steps, 607.1 M after 400, 622.2 M after 1,000 (plan 679.4 M); unchecked,
1,000 steps had ended at prices worth less than zero prices, and checks after
100, 200, 400 ... steps came too late at 1,000,000 accounts (1.2 s a step),
where the search had drifted below the value it had reached after 38 steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from ortools.linear_solver import pywraplp

from optimizer.problem import MetricData, Problem, first_minimum, smallest_pairs

logger = logging.getLogger(__name__)

#: Above this many pairs the price search looks at each unit's :data:`SEARCH_PAIRS` cheapest pairs only.
SEARCH_FROM, SEARCH_PAIRS = 1_000_000, 12
#: With that restriction, the search evaluates its centre over every pair (a check) once this many times the
#: time from the check before to the end of the last one has passed (the first after a few exact evaluations'
#: time): checks come early, when the search moves most, and grow sparser about fivefold each; and at the end.
CHECK_GROWTH = 4.0
#: The search starts only when the time left holds this many exact evaluations; else the bound is the best exact
#: value of the prices given (and of zero prices).
MIN_SEARCH_EVALUATIONS = 20
#: Relative safety margin taken off the bound for floating-point error.
_MARGIN = 1e-9


def _knapsack(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float) -> np.ndarray:
    """Loads in ``[lo, hi]`` summing to ``total`` that minimise ``coef @ loads`` (fills cheapest first)."""
    order = np.argsort(coef, kind="stable")
    room = (hi - lo)[order]
    rest = total - float(lo.sum())
    fill = np.clip(rest - (np.cumsum(room) - room), 0.0, room)
    loads = lo.astype(float).copy()
    loads[order] += fill
    return loads


class _LoadSide:
    """The loads' part of the Lagrangian: balance rules without the units.

    For a metric balanced within segment groups, each group's total lies in a range every plan keeps
    (:func:`group_ranges`); without it the whole total went to the group whose priced unit load was cheapest,
    and prices that differ between groups (an LP's over clusters) lost most of the bound.
    """

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.totals = [float(m.values.sum()) for m in problem.metrics]
        self.shares: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
        self.ranges: list[tuple[np.ndarray, np.ndarray] | None] = []
        for metric in problem.metrics:
            groups = []
            if metric.grouped:
                for g in range(int(metric.groups.max()) + 1):
                    members = np.flatnonzero(metric.groups == g)
                    group_fte = sum((problem.fte_exact[r] for r in members), Fraction(0))
                    share = np.array([float(problem.fte_exact[r] / group_fte) for r in members])
                    tol = float(metric.tolerance_exact)
                    groups.append((members, (1 - tol) * share, (1 + tol) * share))
            self.shares.append(groups)
            self.ranges.append(group_ranges(problem, metric) if metric.grouped else None)

    def solve(self, mu: np.ndarray) -> tuple[float, np.ndarray]:
        """Minimum of ``-sum mu * loads`` over the balance rules, and the loads that reach it."""
        loads = np.zeros_like(mu)
        for m, metric in enumerate(self.problem.metrics):
            total = self.totals[m]
            if metric.lo is not None and metric.hi is not None:
                loads[m] = _knapsack(-mu[m], metric.lo.astype(float), metric.hi.astype(float), total)
            ranges = self.ranges[m]
            if ranges is not None:
                # each group's loads per unit of its total, then the totals: cheapest groups fill first
                units = [_knapsack(-mu[m, members], low, high, 1.0) for members, low, high in self.shares[m]]
                per_unit = np.array([float(-mu[m, g[0]] @ unit) for g, unit in zip(self.shares[m], units, strict=True)])
                group_totals = _knapsack(per_unit, ranges[0], ranges[1], total)
                loads[m] = 0.0
                for (members, _, _), unit, group_total in zip(self.shares[m], units, group_totals, strict=True):
                    loads[m, members] = group_total * unit
        return float(-(mu * loads).sum()), loads


def group_ranges(problem: Problem, metric: MetricData) -> tuple[np.ndarray, np.ndarray]:
    """Least and most of a metric balanced within segment groups that each group can hold in any plan.

    A group holds at least the units that have pairs with its reps only and at most those that have any; and
    against every metric with fixed bounds (workload across all reps), at most what the richest units in this
    metric per unit of the other fill up to the group's upper bounds, at least what the poorest fill up to its
    lower bounds (fractional knapsacks: relaxations, so every plan's totals lie in between).

    Parameters
    ----------
    problem
        The problem.
    metric
        One of its grouped metrics.

    Returns
    -------
    tuple of numpy.ndarray
        ``(low, high)`` per group, in the metric's integer units (widened by a hair against rounding).
    """
    n_groups = int(metric.groups.max()) + 1
    value = metric.values.astype(np.float64)
    pairs = np.bincount(problem.pair_unit, minlength=problem.num_units)
    pair_group = metric.groups[problem.pair_rep]
    low, high = np.zeros(n_groups), np.zeros(n_groups)
    for g in range(n_groups):
        members = metric.groups == g
        inside = np.bincount(problem.pair_unit[pair_group == g], minlength=problem.num_units)
        forced, free = (inside == pairs) & (pairs > 0), (inside > 0) & (inside < pairs)
        low[g], high[g] = value[forced].sum(), value[forced | free].sum()
        if value.min(initial=0) < 0:
            continue
        for other in problem.metrics:
            weight = other.values.astype(np.float64)
            if other.lo is None or other.hi is None or weight.min(initial=0) < 0:
                continue
            room = float(other.hi[members].sum()) - weight[forced].sum()
            need = float(other.lo[members].sum()) - weight[forced].sum()
            high[g] = min(high[g], value[forced].sum() + _fill(value[free], weight[free], room, most=True))
            low[g] = max(low[g], value[forced].sum() + _fill(value[free], weight[free], need, most=False))
    slack = 1e-9 * max(float(value.sum()), 1.0)
    return low - slack, np.maximum(high, low) + slack


def _fill(value: np.ndarray, weight: np.ndarray, amount: float, *, most: bool) -> float:
    """Most value of items (fractions allowed) weighing at most ``amount``, or least value weighing at least it.

    Items of non-negative value and weight; weightless items are all taken for the most and none for the least.
    When the items cannot weigh ``amount`` (no plan exists), every item counts.
    """
    weightless = weight <= 0
    taken = float(value[weightless].sum()) if most else 0.0
    value, weight = value[~weightless], weight[~weightless]
    order = np.argsort(-value / weight if most else value / weight, kind="stable")
    before = np.cumsum(weight[order]) - weight[order]
    fraction = np.clip((max(amount, 0.0) - before) / weight[order], 0.0, 1.0)
    if not most and before[-1:].sum() + weight[order][-1:].sum() < amount:
        fraction[:] = 1.0
    return taken + float(value[order] @ fraction)


def lagrangian_bound(
    problem: Problem,
    start: np.ndarray | Sequence[np.ndarray] | None,
    *,
    upper: float,
    seconds: float,
    max_steps: int = 5000,
) -> float:
    """A proven lower bound of the integer objective (``pair_cost`` units).

    Parameters
    ----------
    problem
        A problem without centre-based compactness or contiguity (both are outside the relaxation).
    start
        Prices to start from (metrics x reps, cost units per integer metric unit), e.g. an LP's duals, or several
        such arrays (the search starts from the best); each is tried with both signs, and so are zero prices (the
        bound is then at least every unit's cheapest pair). The duals of an LP over clustered units price the
        units well: at 200,000 accounts their exact Lagrangian was within 2 % of that LP, where 150 steps from
        zero prices reached 14 % below it.
    upper
        Cost of a known plan (sets the step sizes; the search stops once the bound is within 0.01 % of it).
    seconds
        Wall-clock budget; at zero or less, the bound at zero prices only (every unit's cheapest pair).
    max_steps
        Most steps (the time budget usually ends the search first).

    Returns
    -------
    float
        The best bound found.
    """
    clock = time.perf_counter()
    if seconds <= 0 and len(problem.pair_unit):
        # no time at all: zero prices, whose Lagrangian is every unit's cheapest pair (one pass)
        cheapest = float(np.minimum.reduceat(problem.pair_cost, problem.unit_start[:-1]).astype(np.float64).sum())
        bound = cheapest - _MARGIN * abs(cheapest)
        logger.info("Lagrangian bound %.6g at zero prices: every unit's cheapest pair (no time left)", bound)
        return bound
    n_metrics = len(problem.metrics)
    loads_side = _LoadSide(problem)
    # measure each metric in mean loads per rep: prices of accounts and of revenue then move alike
    scale = np.array([max(t / problem.num_reps, 1.0) for t in loads_side.totals])
    every = LagrangianEvaluator(problem, loads_side, None)
    shape = (n_metrics, problem.num_reps)
    starts = [] if start is None else [start] if isinstance(start, np.ndarray) else list(start)
    candidates = [np.zeros(shape), *(sign * s for s in starts for sign in (1.0, -1.0))]
    centre, proven = candidates[0], -np.inf  # the best exact value so far, and its prices
    began = time.perf_counter()
    for trial in candidates:
        value, _ = every.evaluate(trial)
        if value > proven:
            centre, proven = trial.copy(), value
    per_evaluation = (time.perf_counter() - began) / len(candidates)
    if time.perf_counter() - clock + MIN_SEARCH_EVALUATIONS * per_evaluation > seconds:
        # too little time for a search to gain (at 1,000,000 accounts its set-up alone took 10 s)
        bound = proven - _MARGIN * abs(proven)
        logger.info("Lagrangian bound %.6g at the best of %d prices (%.1f s)", bound, len(candidates),
                    time.perf_counter() - clock)  # fmt: skip
        return bound
    # the search prices each unit's few cheapest pairs only (9x faster at 100,000 units); the bound returned
    # is the best exact value, over every pair, of the prices checked (:func:`_check`)
    search = LagrangianEvaluator(problem, loads_side, SEARCH_PAIRS) if len(problem.pair_unit) > SEARCH_FROM else every
    best, gradient = search.evaluate(centre)
    # prices in cost per mean load (nu = mu * scale): a trust region of one box size fits every metric
    master = _Master(centre * scale[:, None], radius=_first_radius(problem, scale))
    master.add_cut(best, gradient / scale[:, None], centre * scale[:, None])

    def centre_prices() -> np.ndarray:
        return master.centre.reshape(shape) / scale[:, None]

    checked = time.perf_counter()
    wait = CHECK_GROWTH * per_evaluation  # the first check: after a few exact evaluations' time
    steps = 0
    while steps < max_steps and time.perf_counter() - clock < seconds and upper - proven > 1e-4 * abs(upper):
        proposal = master.propose()
        if proposal is None:
            break
        nu, predicted = proposal
        value, grad = search.evaluate(nu / scale[:, None])
        steps += 1
        master.add_cut(value, grad / scale[:, None], nu)
        if value >= best + 0.1 * (predicted - best):
            # serious step: move the centre, widen the region
            best = max(best, value)
            master.recentre(nu, grow=True)
        else:
            master.recentre(None, grow=False)
        if search is every:
            proven = best
        elif best > upper or time.perf_counter() - checked >= wait:
            # (above a plan's cost: the few pairs misled the search)
            exact, grown = _check(every, search, centre_prices())
            proven = max(proven, exact)
            if grown:  # the search's function fell where the new pairs are cheapest
                best = min(best, search.evaluate(centre_prices())[0])
            now = time.perf_counter()
            wait, checked = CHECK_GROWTH * (now - checked), now
        if predicted - best <= 1e-7 * abs(best):
            break  # the model cannot promise more: the bound is (nearly) the LP's
    if search is not every:
        proven = max(proven, every.evaluate(centre_prices())[0])
    bound = proven - _MARGIN * abs(proven)
    logger.info("Lagrangian bound %.6g after %d steps (%.1f s)", bound, steps, time.perf_counter() - clock)
    return bound


def _check(every: LagrangianEvaluator, search: LagrangianEvaluator, mu: np.ndarray) -> tuple[float, bool]:
    """The Lagrangian at prices ``mu`` over every pair, and whether the search took in new pairs.

    Over a unit's cheapest few pairs the Lagrangian is too high wherever prices make another pair the
    cheapest, and the search drifts there: at 100,000 accounts 1,000 unchecked steps ended at prices whose
    exact value was below that of zero prices (539.9 M, against 606.2 M after 400 steps). So the search takes
    in every pair the exact evaluation chose.
    """
    value, _ = every.evaluate(mu)
    return value, search.add(every.last_chosen) > 0


class LagrangianEvaluator:
    """The Lagrangian at given prices, over every pair or over each unit's cheapest few."""

    def __init__(self, problem: Problem, loads_side: _LoadSide | None = None, per_unit: int | None = None) -> None:
        self.problem = problem
        self.loads_side = loads_side if loads_side is not None else _LoadSide(problem)
        pairs = np.arange(len(problem.pair_unit))
        if per_unit is not None:
            pairs = smallest_pairs(problem.pair_unit, problem.pair_cost, per_unit)
        self._use(pairs)
        self.last_chosen = np.zeros(0, dtype=np.int64)

    def _use(self, pairs: np.ndarray) -> None:
        problem = self.problem
        self.pairs = pairs
        self.unit = problem.pair_unit[pairs]
        self.rep = problem.pair_rep[pairs]
        self.cost = problem.pair_cost[pairs].astype(np.float64)
        # every pair's metric values, gathered once (the gather cost 6x the rest of an evaluation)
        self.values = np.stack([m.values.astype(np.float64)[self.unit] for m in problem.metrics])
        self.starts = np.searchsorted(self.unit, np.arange(problem.num_units))

    def add(self, pairs: np.ndarray) -> int:
        """Take in more pairs (positions in the problem's pair arrays); returns how many were new."""
        mask = np.zeros(len(self.problem.pair_unit), dtype=bool)
        mask[self.pairs] = True
        mask[pairs] = True
        merged = np.flatnonzero(mask)  # (np.union1d hashed 12 M pairs for 13 s at 1,000,000 accounts)
        grown = len(merged) - len(self.pairs)
        if grown:
            self._use(merged)
        return grown

    def evaluate(self, mu: np.ndarray) -> tuple[float, np.ndarray]:
        """The Lagrangian's value at prices ``mu`` and a supergradient (held loads less the load side's)."""
        priced = self.cost.copy()
        for m in range(len(self.values)):
            priced += mu[m][self.rep] * self.values[m]
        cheapest, chosen = first_minimum(priced, self.unit, self.starts)
        self.last_chosen = self.pairs[chosen]
        held = np.stack(
            [np.bincount(self.rep[chosen], weights=v[chosen], minlength=self.problem.num_reps) for v in self.values]
        )
        side, loads = self.loads_side.solve(mu)
        return float(cheapest.sum()) + side, held - loads


def _first_radius(problem: Problem, scale: np.ndarray) -> float:
    """A first trust region: what moving a rep's whole mean load one pair further costs, roughly."""
    mean_cost = float(problem.pair_cost.mean()) if len(problem.pair_cost) else 1.0
    return max(mean_cost * problem.num_units / max(problem.num_reps, 1), 1.0)


class _Master:
    """The cutting-plane model of the Lagrangian, maximised by GLOP inside a box around the centre."""

    def __init__(self, centre: np.ndarray, radius: float) -> None:
        self.shape = centre.shape
        self.centre = centre.ravel().copy()
        self.radius = radius
        self.solver = pywraplp.Solver.CreateSolver("GLOP")
        infinity = self.solver.infinity()
        self.nu = [self.solver.NumVar(-infinity, infinity, "") for _ in range(self.centre.size)]
        self.t = self.solver.NumVar(-infinity, infinity, "")
        self.solver.Objective().SetCoefficient(self.t, 1.0)
        self.solver.Objective().SetMaximization()
        self._bound_box()

    def _bound_box(self) -> None:
        for var, c in zip(self.nu, self.centre, strict=True):
            var.SetBounds(float(c - self.radius), float(c + self.radius))

    def add_cut(self, value: float, gradient: np.ndarray, at: np.ndarray) -> None:
        """``t <= value + gradient . (nu - at)``: the Lagrangian is concave, so every cut lies above it."""
        g = gradient.ravel()
        row = self.solver.Constraint(-self.solver.infinity(), float(value - g @ at.ravel()))
        row.SetCoefficient(self.t, 1.0)
        for var, coefficient in zip(self.nu, g, strict=True):
            if coefficient:
                row.SetCoefficient(var, float(-coefficient))

    def propose(self) -> tuple[np.ndarray, float] | None:
        """The model's best prices in the box and the value it predicts, or ``None`` if GLOP fails."""
        if self.solver.Solve() != pywraplp.Solver.OPTIMAL:
            return None
        nu = np.array([v.solution_value() for v in self.nu]).reshape(self.shape)
        return nu, self.t.solution_value()

    def recentre(self, centre: np.ndarray | None, *, grow: bool) -> None:
        """Move the box to a new centre and widen it (serious step), or shrink it around the old one."""
        if centre is not None:
            self.centre = centre.ravel().copy()
        self.radius *= 1.5 if grow else 0.7
        self._bound_box()
