"""Contiguous first plans: connected starts, then a balance repair that never breaks a territory apart.

CP-SAT alone rarely finds a first plan when every territory must be one connected area: balance and
connectivity together are hard to hit by search. This module finds one the way districting tools do, in
two stages that restart until a plan keeps every rule or the time is up:

1. **A connected start**, from one of three constructions, taken in turn:

   * *recursive tree splitting* (one team layer, as on a county map): a random spanning tree of the units
     splits into two connected sides at any tree edge; the cut is taken where both sides hold what their
     reps need on every metric, and each side is split again until every rep has a part. A side that
     cannot be split sends the search back to draw a new tree for its parent (backtracking); parts are then
     matched to reps by home-base cost, locks and segment rules.
   * *LP rounding* (home bases): the assignment LP (:mod:`optimizer.relaxation`) under every balance rule,
     segment rule, lock and move budget, rounded, then made connected: each territory keeps the piece holding
     its locked units (or its largest piece) and the other pieces join the cheapest neighbouring territory.
   * *growth from seeds*: every territory grows from its locked units and its home unit (else a spread-out
     seed) on its team's layer, the territory furthest below its share taking its cheapest neighbouring unit.

2. **Repair**: a tabu search that moves one border unit at a time to a neighbouring territory on the same
   layer, only where the unit's old territory stays connected (it is not a cut unit of it), choosing the move
   that most reduces how far the loads lie outside their tolerances (FTE targets, segment groups, move
   budgets), then the objective. Locked units never move; hard segment rules are never broken.

After the first plan the same moves, restricted to those that keep every rule, descend the objective
(:func:`descend_contiguous`) before the CP-SAT region search of :mod:`optimizer.lns`.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from optimizer.graph import (
    Adjacency,
    PatchTree,
    patch_labels,
    patch_tree,
    pieces,
    random_spanning_tree,
    touching,
)
from optimizer.problem import Problem, best_centres, group_ratio, with_fixed_centres
from optimizer.relaxation import LpSolution, solve_lp_or_none

logger = logging.getLogger(__name__)

#: Violation (in shares of a target) below which a plan counts as within every tolerance; the exact check
#: (:func:`optimizer.score.score`) decides in the end.
EPS = 1e-9
#: Repair iterations without a better violation before the search restarts from a new start.
PATIENCE = 400
#: Tabu tenure: a unit may not return to the territory it left for this many iterations (plus a random part).
TENURE = 7
#: Spanning trees drawn for the first cut, and for each later cut, before the split gives up on its side (a
#: side that does not split after a few trees is usually better cut again higher up).
TREES_PER_CUT = 60
TREES_PER_INNER_CUT = 12
#: Fraction of the room between its bounds that a side of several reps may use when it is cut off (the rest is
#: left to its own cuts, which must bring every rep within tolerance).
SIDE_SLACK = 0.4
#: Candidate new patches per (rep, layer) offered when a territory has no unit on a layer yet.
NEW_PATCH_CANDIDATES = 8
#: Moves touching a rep outside its bounds that are paired with each other when no single move helps.
PAIR_CANDIDATES = 80
#: Descent: moves whose own violation stays below this are paired with others (which may restore balance).
PAIR_SLACK = 0.2
#: Best pairs tried (for connectivity) before the search takes a single move instead.
PAIR_TRIES = 20
#: Spanning trees drawn in all by one recursive split of the map (bounds the backtracking).
TREES_PER_START = 400
#: Location-allocation rounds of :func:`relocate` at most (each re-draws every territory around fixed centres).
RELOCATE_ROUNDS = 8
#: Cut units whose branches are evaluated in one step of the repair, at most.
BRANCH_CANDIDATES = 120
#: Tree splits tried (each with its own budget of trees) before each LP or growth start, on one-layer maps.
TREE_STARTS = 4
#: A tree split's repair falls back on CP-SAT only when the violation left is below this (else the next start).
CP_REPAIR_BELOW = 0.05
#: Reps re-drawn at once by the CP-SAT repair (:func:`cp_repair`), and the seconds each attempt may take.
REPAIR_REPS = 4
REPAIR_SECONDS = 3.0
#: Share of the time left that the CP-SAT repair may spend on the whole problem.
WHOLE_SHARE = 0.4
#: Cheapest reps offered to each key-account unit (exempt from contiguity).
KEY_CANDIDATES = 6


@dataclass
class StartReport:
    """How the first contiguous plan was found, or what stood in the way.

    Attributes
    ----------
    plan
        Rep row per unit within every tolerance and connected, or ``None``.
    seconds
        Wall time spent.
    attempts
        Starts tried, by construction.
    best_violation
        Smallest total violation reached (0 with a plan), in shares of a target.
    blockers
        For the best plan without a plan found: the rules still broken, in the planner's words.
    best
        The least-violating connected assignment found (``plan`` when there is one).
    """

    plan: np.ndarray | None
    seconds: float
    attempts: dict[str, int] = field(default_factory=dict)
    best_violation: float = float("inf")
    blockers: list[str] = field(default_factory=list)
    best: np.ndarray | None = None


class Rules:
    """The problem's hard rules as dense arrays, for fast checks of one move.

    Metrics are held as floats of the integer scaled values; bounds of metrics balanced within segment groups
    are ratios of the group's total (``optimizer.problem.group_ratio``), pulled in by a hair so that a plan
    the float check accepts also passes the exact one.
    """

    def __init__(self, problem: Problem) -> None:
        n, k = problem.num_units, problem.num_reps
        self.problem = problem
        self.n, self.k = n, k
        self.values = np.array([m.values for m in problem.metrics], dtype=np.float64).reshape(-1, n)
        m_count = len(problem.metrics)
        self.lo = np.zeros((m_count, k))
        self.hi = np.zeros((m_count, k))
        self.grouped = np.zeros(m_count, dtype=bool)
        self.groups = np.zeros((m_count, k), dtype=np.int64)
        self.norm = np.ones((m_count, k))
        for i, metric in enumerate(problem.metrics):
            total = float(metric.values.sum())
            self.groups[i] = metric.groups
            if metric.lo is not None and metric.hi is not None:
                self.lo[i] = metric.lo
                self.hi[i] = metric.hi
                target = (metric.lo + metric.hi) / 2.0
            else:
                self.grouped[i] = True
                for r in range(k):
                    members = np.flatnonzero(metric.groups == metric.groups[r])
                    share = problem.fte_exact[r] / sum((problem.fte_exact[q] for q in members), Fraction(0))
                    num, den = group_ratio(metric, share, upper=True)
                    self.hi[i, r] = num / den * (1 - 1e-12)
                    num, den = group_ratio(metric, share, upper=False)
                    self.lo[i, r] = num / den * (1 + 1e-12)
                target = total * problem.fte / problem.fte.sum()
            self.norm[i] = np.maximum(target, max(total, 1.0) * 1e-9)
        self.num_groups = int(self.groups.max(initial=0)) + 1
        self.allowed = np.zeros((n, k), dtype=bool)
        self.allowed[problem.pair_unit, problem.pair_rep] = True
        self.cost = np.full((n, k), np.inf)
        self.cost[problem.pair_unit, problem.pair_rep] = problem.pair_cost.astype(np.float64)
        self.fixed = problem.fixed_rep
        self.movable = problem.fixed_rep < 0
        self.layer = problem.contiguity_layer
        self.num_layers = max(len(problem.layer_names), int(self.layer.max(initial=0)) + 1)
        self.adjacency: Adjacency = problem.adjacency
        self.budget_moved = [
            budget.moved(np.repeat(np.arange(n), k), np.tile(np.arange(k), n)).reshape(n, k).astype(np.float64)
            for budget in problem.budgets
        ]
        self.budget_limit = np.array([b.limit for b in problem.budgets], dtype=np.float64)
        self.budget_norm = np.maximum(self.budget_limit, 1.0)
        # centre-based compactness: weighted distance from each unit to any unit (centres held during a pass)
        self.centre = None
        if problem.centre_distance is not None and problem.unit_weight is not None:
            self.centre = (
                problem.compactness_weight * problem.cost_scale * problem.unit_weight[:, None] * problem.centre_distance
            )

    # ------------------------------------------------------------------ violation
    def violation_of(self, loads: np.ndarray) -> np.ndarray:
        """Violation of every (metric, rep): how far its load lies outside its bounds, in shares of its target.

        ``loads`` may carry leading candidate axes: ``(..., metrics, reps)``.
        """
        lo, hi = self.bounds_of(loads)
        return (np.maximum(loads - hi, 0.0) + np.maximum(lo - loads, 0.0)) / self.norm

    def bounds_of(self, loads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound of every (metric, rep) given the loads (groups' totals move the grouped ones)."""
        if not self.grouped.any():
            return self.lo, self.hi
        totals = np.zeros((*loads.shape[:-1], self.num_groups))
        for g in range(self.num_groups):
            totals[..., g] = np.where(self.groups == g, loads, 0.0).sum(axis=-1)
        group_total = np.take_along_axis(totals, np.broadcast_to(self.groups, loads.shape), axis=-1)
        lo = np.where(self.grouped[:, None], self.lo * group_total, self.lo)
        hi = np.where(self.grouped[:, None], self.hi * group_total, self.hi)
        return lo, hi


class State:
    """An assignment with its loads, violations and the cut units of its patches, updated move by move."""

    def __init__(self, rules: Rules, unit_rep: np.ndarray, centres: np.ndarray | None = None) -> None:
        self.rules = rules
        self.assign = np.asarray(unit_rep, dtype=np.int64).copy()
        k = rules.k
        self.loads = np.stack([np.bincount(self.assign, weights=v, minlength=k) for v in rules.values]).reshape(-1, k)
        self.viol = rules.violation_of(self.loads)
        n = rules.n
        self.moved = np.array([m[np.arange(n), self.assign].sum() for m in rules.budget_moved], dtype=np.float64)
        self.patch_size = np.bincount(
            patch_labels(self.assign, rules.layer, rules.num_layers)[rules.layer >= 0],
            minlength=k * rules.num_layers,
        )
        self._trees: dict[int, PatchTree] = {}
        self._inside = np.zeros(n, dtype=bool)
        self.centres = centres

    @property
    def violation(self) -> float:
        """Total violation: balance outside tolerance plus move budgets exceeded."""
        over = np.maximum(self.moved - self.rules.budget_limit, 0.0) / self.rules.budget_norm
        return float(self.viol.sum() + over.sum())

    def tree_of(self, rep: int, layer: int) -> PatchTree:
        """Depth-first tree of a patch from its anchor (cached until the patch changes).

        The anchor is a locked unit of the patch, else the territory's centre or the unit nearest the home base.
        """
        label = rep * self.rules.num_layers + layer
        found = self._trees.get(label)
        if found is None:
            rules = self.rules
            members = np.flatnonzero((self.assign == rep) & (rules.layer == layer))
            locked = members[~rules.movable[members]]
            if len(locked):
                root = int(locked[0])
            elif self.centres is not None and self.centres[rep] in set(members.tolist()):
                root = int(self.centres[rep])
            else:
                root = int(members[int(np.argmin(rules.cost[members, rep]))])
            self._inside[members] = True
            found = patch_tree(rules.adjacency, members, self._inside, root)
            self._inside[members] = False
            self._trees[label] = found
        return found

    def can_leave(self, u: int) -> bool:
        """Whether unit ``u`` may leave its territory alone without splitting it on its layer."""
        layer = self.rules.layer[u]
        if layer < 0:
            return True
        return u not in self.tree_of(int(self.assign[u]), int(layer)).hanging

    def branch(self, u: int) -> np.ndarray:
        """Unit ``u`` with every unit of its territory that would fall away from the territory with it."""
        layer = self.rules.layer[u]
        if layer < 0:
            return np.array([u], dtype=np.int64)
        return self.tree_of(int(self.assign[u]), int(layer)).branch(u)

    def move_many(self, units: np.ndarray, b: int) -> None:
        """Move units (a branch: one territory's, on one layer) to rep ``b``, one by one."""
        for u in units.tolist():
            self.move(u, b)

    def move(self, u: int, b: int) -> None:
        """Move unit ``u`` to rep ``b``."""
        rules = self.rules
        a = int(self.assign[u])
        self.assign[u] = b
        self.loads[:, a] -= rules.values[:, u]
        self.loads[:, b] += rules.values[:, u]
        self.viol = rules.violation_of(self.loads)
        for i, moved in enumerate(rules.budget_moved):
            self.moved[i] += moved[u, b] - moved[u, a]
        layer = int(rules.layer[u])
        if layer >= 0:
            self.patch_size[a * rules.num_layers + layer] -= 1
            self.patch_size[b * rules.num_layers + layer] += 1
            self._trees.pop(a * rules.num_layers + layer, None)
            self._trees.pop(b * rules.num_layers + layer, None)

    # ------------------------------------------------------------------ candidate moves
    def candidates(self, new_patches: dict[tuple[int, int], np.ndarray], keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """Moves ``(unit, to rep)`` that keep the destination connected: border units, new patches, key units."""
        rules = self.rules
        edges = rules.adjacency.edges
        i, j = edges[:, 0], edges[:, 1]
        ri, rj = self.assign[i], self.assign[j]
        border = ri != rj
        units = np.concatenate([i[border], j[border]])
        reps = np.concatenate([rj[border], ri[border]])
        extra_u, extra_r = [], []
        for (rep, layer), order in new_patches.items():
            if self.patch_size[rep * rules.num_layers + layer] == 0:
                free = order[rules.movable[order] & (self.assign[order] != rep)][:NEW_PATCH_CANDIDATES]
                extra_u.append(free)
                extra_r.append(np.full(len(free), rep))
        if len(keys):
            extra_u.append(keys[:, 0])
            extra_r.append(keys[:, 1])
        if extra_u:
            units = np.concatenate([units, *extra_u])
            reps = np.concatenate([reps, *extra_r])
        keep = rules.movable[units] & rules.allowed[units, reps] & (self.assign[units] != reps)
        code = np.unique(units[keep] * rules.k + reps[keep])
        return code // rules.k, code % rules.k

    def evaluate(self, units: np.ndarray, reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Change of the violation and of the objective if each unit moved to its rep."""
        rules = self.rules
        c = len(units)
        if c == 0:
            return np.zeros(0), np.zeros(0)
        src = self.assign[units]
        rows = np.arange(c)
        loads = np.broadcast_to(self.loads, (c, *self.loads.shape)).copy()  # (c, metrics, reps)
        moved_values = rules.values[:, units].T  # (c, metrics)
        loads[rows, :, src] -= moved_values
        loads[rows, :, reps] += moved_values
        delta_v = rules.violation_of(loads).sum(axis=(1, 2)) - self.viol.sum()
        if len(rules.budget_moved):
            before = np.maximum(self.moved - rules.budget_limit, 0.0) / rules.budget_norm
            for b, moved in enumerate(rules.budget_moved):
                after = self.moved[b] + moved[units, reps] - moved[units, src]
                delta_v += np.maximum(after - rules.budget_limit[b], 0.0) / rules.budget_norm[b] - before[b]
        delta_c = rules.cost[units, reps] - rules.cost[units, src]
        if rules.centre is not None and self.centres is not None:
            delta_c = delta_c + rules.centre[units, self.centres[reps]] - rules.centre[units, self.centres[src]]
        return delta_v, delta_c

    def refresh_centres(self) -> None:
        """Put every territory's centre at its best member (centre-based compactness)."""
        if self.rules.centre is not None:
            self.centres = best_centres(self.rules.problem, self.assign)


# ---------------------------------------------------------------------------- the search


@dataclass
class _Moves:
    """Fixed candidate lists: where a territory may start a patch on a layer, and key-account options."""

    new_patches: dict[tuple[int, int], np.ndarray]
    keys: np.ndarray


def _fixed_moves(rules: Rules) -> _Moves:
    new_patches: dict[tuple[int, int], np.ndarray] = {}
    if rules.num_layers > 1:
        for layer in range(rules.num_layers):
            members = np.flatnonzero((rules.layer == layer) & rules.movable)
            for r in range(rules.k):
                ok = members[rules.allowed[members, r]]
                if len(ok):
                    new_patches[(r, layer)] = ok[np.argsort(rules.cost[ok, r], kind="stable")]
    keys = np.flatnonzero((rules.layer < 0) & rules.movable)
    pairs = []
    for u in keys:
        options = np.flatnonzero(rules.allowed[u])
        options = options[np.argsort(rules.cost[u, options], kind="stable")][:KEY_CANDIDATES]
        pairs += [(int(u), int(r)) for r in options]
    return _Moves(new_patches, np.array(pairs, dtype=np.int64).reshape(-1, 2))


def repair(
    rules: Rules,
    start: np.ndarray,
    rng: np.random.Generator,
    *,
    deadline: float | None,
    stop: threading.Event | None = None,
    patience: int = PATIENCE,
) -> tuple[np.ndarray, float]:
    """Tabu search over single-unit moves that keep every territory connected, towards zero violation.

    Parameters
    ----------
    rules
        The problem's rules (:class:`Rules`).
    start
        A connected assignment (every patch one piece; locked units with their reps).
    rng
        Random generator (tabu tenures, ties).
    deadline
        ``time.perf_counter()`` value to stop at, or ``None``.
    stop
        Set by the caller to stop.
    patience
        Iterations without a better violation before giving up.

    Returns
    -------
    tuple
        ``(best assignment, its violation)``; a violation of zero means every tolerance and budget holds.
    """
    state = State(rules, start)
    state.refresh_centres()
    moves = _fixed_moves(rules)
    best, best_v = state.assign.copy(), state.violation
    tabu = np.zeros((rules.n, rules.k), dtype=np.int64)
    idle = 0
    iteration = 0
    while best_v > EPS and idle < patience:
        if stop is not None and stop.is_set():
            break
        if deadline is not None and iteration % 16 == 0 and time.perf_counter() > deadline:
            break
        iteration += 1
        units, reps = state.candidates(moves.new_patches, moves.keys)
        if not len(units):
            break
        delta_v, delta_c = state.evaluate(units, reps)
        current = state.violation
        if delta_v.min() >= -EPS and (
            _pair_move(state, units, reps, delta_v, tabu, iteration, rng)
            or _branch_move(state, units, reps, tabu, iteration, rng)
        ):
            value = state.violation
            if value < best_v - EPS:
                best, best_v, idle = state.assign.copy(), value, 0
            else:
                idle += 1
            continue
        # lexicographic: violation first, then objective; random keys break ties
        order = np.lexsort((rng.random(len(units)), delta_c, np.round(delta_v, 12)))
        chosen = -1
        for position in order:
            u, b = int(units[position]), int(reps[position])
            aspiring = current + delta_v[position] < best_v - EPS
            if tabu[u, b] > iteration and not aspiring:
                continue
            if not state.can_leave(u):
                continue
            chosen = position
            break
        if chosen < 0:
            break
        u, b = int(units[chosen]), int(reps[chosen])
        tabu[u, int(state.assign[u])] = iteration + TENURE + int(rng.integers(0, TENURE))
        state.move(u, b)
        value = state.violation
        if value < best_v - EPS:
            best, best_v, idle = state.assign.copy(), value, 0
        else:
            idle += 1
        if iteration % 50 == 0:
            state.refresh_centres()
    return best, max(best_v, 0.0)


def _pair_move(
    state: State,
    units: np.ndarray,
    reps: np.ndarray,
    delta_v: np.ndarray,
    tabu: np.ndarray,
    iteration: int,
    rng: np.random.Generator,
) -> bool:
    """Where no single move lowers the violation, try two moves at once (one rep gives, another refills).

    A rep above one bound and at another (potential too high, workload at its floor) cannot shed a unit
    alone: it must give one and take another. Pairs are drawn from the moves that touch a rep outside its
    bounds, the :data:`PAIR_CANDIDATES` least harmful of them; the best pair that lowers the violation is
    applied if both moves keep every territory connected.
    """
    bad = np.flatnonzero(state.viol.sum(axis=0) > EPS)
    if not len(bad):
        return False
    src = state.assign[units]
    pool = np.flatnonzero(np.isin(src, bad) | np.isin(reps, bad))
    pool = pool[np.argsort(delta_v[pool] + 1e-9 * rng.random(len(pool)), kind="stable")][:PAIR_CANDIDATES]
    first, second, pair_v, _ = _pairs_of(state, units, reps, pool, np.zeros(len(units)))
    for pick in np.argsort(pair_v, kind="stable")[:PAIR_TRIES]:
        if pair_v[pick] >= -EPS:
            return False
        one, two = first[pick], second[pick]
        if tabu[units[one], reps[one]] > iteration and tabu[units[two], reps[two]] > iteration:
            continue
        left = (int(state.assign[units[one]]), int(state.assign[units[two]]))
        if _apply_pair(state, units, reps, one, two):
            tenure = iteration + TENURE + int(rng.integers(0, TENURE))
            tabu[units[one], left[0]] = tabu[units[two], left[1]] = tenure
            return True
    return False


def _branch_move(
    state: State, units: np.ndarray, reps: np.ndarray, tabu: np.ndarray, iteration: int, rng: np.random.Generator
) -> bool:
    """Move a cut unit together with everything that hangs on it, where that lowers the violation.

    A unit whose leaving would split its territory (a cut unit: a bridge on a tree-like map of sparse cells, a
    peninsula's neck) can still go with the units beyond it, which then join the neighbour through it. Only
    branches without locked units, all of whose units the neighbour may take, are considered.
    """
    rules = state.rules
    cut = np.array([not state.can_leave(int(u)) for u in units], dtype=bool)
    if not cut.any():
        return False
    positions = np.flatnonzero(cut)
    branches, keep = [], []
    for position in positions[rng.permutation(len(positions))][:BRANCH_CANDIDATES]:
        branch = state.branch(int(units[position]))
        b = int(reps[position])
        if rules.movable[branch].all() and rules.allowed[branch, b].all():
            branches.append(branch)
            keep.append(position)
    if not keep:
        return False
    keep_a = np.array(keep)
    src = state.assign[units[keep_a]]
    change = np.zeros((len(keep), *state.loads.shape))
    for i, branch in enumerate(branches):
        moved = rules.values[:, branch].sum(axis=1)
        change[i, :, src[i]] -= moved
        change[i, :, reps[keep_a[i]]] += moved
    delta = rules.violation_of(state.loads[None] + change).sum(axis=(1, 2)) - state.viol.sum()
    for b_index, weights in enumerate(rules.budget_moved):
        before = max(state.moved[b_index] - rules.budget_limit[b_index], 0.0)
        for i, branch in enumerate(branches):
            after = state.moved[b_index] + weights[branch, reps[keep_a[i]]].sum() - weights[branch, src[i]].sum()
            delta[i] += (max(after - rules.budget_limit[b_index], 0.0) - before) / rules.budget_norm[b_index]
    best = int(np.argmin(delta))
    if delta[best] >= -EPS:
        return False
    b = int(reps[keep_a[best]])
    for u in branches[best].tolist():
        tabu[u, int(state.assign[u])] = iteration + TENURE + int(rng.integers(0, TENURE))
    state.move_many(branches[best], b)
    return True


def _pairs_of(
    state: State, units: np.ndarray, reps: np.ndarray, pool: np.ndarray, delta_c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of moves of ``pool`` (positions into ``units``/``reps``) with their joint change of violation
    and of the objective: ``(first, second, delta_violation, delta_objective)``."""
    rules = state.rules
    src = state.assign[units[pool]]
    c = len(pool)
    moved = rules.values[:, units[pool]].T  # (c, metrics)
    change = np.zeros((c, *state.loads.shape))
    rows = np.arange(c)
    change[rows, :, src] -= moved
    change[rows, :, reps[pool]] += moved
    first, second = np.triu_indices(c, k=1)
    distinct = units[pool][first] != units[pool][second]
    first, second = first[distinct], second[distinct]
    loads = state.loads[None] + change[first] + change[second]
    delta = rules.violation_of(loads).sum(axis=(1, 2)) - state.viol.sum()
    if len(rules.budget_moved):
        before = np.maximum(state.moved - rules.budget_limit, 0.0) / rules.budget_norm
        for b, weights in enumerate(rules.budget_moved):
            step = weights[units[pool], reps[pool]] - weights[units[pool], src]
            after = state.moved[b] + step[first] + step[second]
            delta += np.maximum(after - rules.budget_limit[b], 0.0) / rules.budget_norm[b] - before[b]
    return pool[first], pool[second], delta, delta_c[pool][first] + delta_c[pool][second]


def _apply_pair(state: State, units: np.ndarray, reps: np.ndarray, one: int, two: int) -> bool:
    """Make both moves if each keeps every territory connected when it is made (else make neither)."""
    u1, b1, u2, b2 = int(units[one]), int(reps[one]), int(units[two]), int(reps[two])
    a2 = int(state.assign[u2])
    if state.assign[u1] == b1 or a2 == b2 or not state.can_leave(u1) or not _touches(state, u1, b1):
        return False
    a1 = int(state.assign[u1])
    state.move(u1, b1)
    if state.assign[u2] == a2 and state.can_leave(u2) and _touches(state, u2, b2):
        state.move(u2, b2)
        return True
    state.move(u1, a1)
    return False


def cp_repair(
    rules: Rules,
    plan: np.ndarray,
    rng: np.random.Generator,
    *,
    deadline: float | None,
    stop: threading.Event | None = None,
    workers: int = 1,
) -> tuple[np.ndarray, float]:
    """Let CP-SAT re-draw the territories around the reps still outside their bounds, every rule exact.

    The reps outside a bound and the reps bordering them (:data:`REPAIR_REPS` at first, then twice as many)
    get every one of their movable units freed; CP-SAT finds a plan of those units with contiguity, balance,
    segment rules and budgets modelled exactly while every other territory stays as it is.

    Returns
    -------
    tuple
        ``(assignment, violation)``: the repaired plan with violation 0, or ``plan`` unchanged.
    """
    from optimizer.lns import solve_neighbourhood

    problem = rules.problem
    state = State(rules, plan)
    bad = list(np.flatnonzero(state.viol.sum(axis=0) > EPS))
    if not bad:
        bad = list(range(rules.k))  # a move budget is exceeded: every rep may give back
    touch = touching(rules.k, rules.adjacency.edges, state.assign)
    for size in (REPAIR_REPS, 2 * REPAIR_REPS, rules.k):
        if (stop is not None and stop.is_set()) or (deadline is not None and time.perf_counter() > deadline - 0.2):
            break
        chosen = set(bad)
        weight = touch[bad].sum(axis=0)
        for r in np.argsort(-weight - 1e-6 * rng.random(rules.k), kind="stable"):
            if len(chosen) >= max(size, len(bad)):
                break
            chosen.add(int(r))
        reps = np.zeros(rules.k, dtype=bool)
        reps[list(chosen)] = True
        # locked units are freed too: their only pair is with their rep, and the neighbourhood then holds every
        # unit of its reps, as modelling their contiguity needs
        free = reps[state.assign]
        seconds: float | None = None  # no deadline: bounded by deterministic work, reproducible
        if deadline is not None:
            left = deadline - time.perf_counter()
            # the whole problem at once, last: CP-SAT's exact model may take longer, but it settles small maps
            seconds = min(max(REPAIR_SECONDS, WHOLE_SHARE * left) if reps.all() else REPAIR_SECONDS, left)
            if seconds <= 0.1:
                break
        candidate, _ = solve_neighbourhood(
            problem, state.assign, free, seconds, int(rng.integers(2**31 - 1)), workers, stop, reps=reps
        )
        if candidate is not None and _keeps_every_rule(problem, candidate):
            return candidate, 0.0
        if size >= rules.k:
            break
    return plan, state.violation


def descend_contiguous(
    rules: Rules,
    start: np.ndarray,
    *,
    deadline: float | None,
    stop: threading.Event | None = None,
    max_rounds: int = 50,
) -> np.ndarray:
    """Improve a plan that keeps every rule by single moves that keep every rule and lower the objective.

    Centre-based compactness moves each territory's centre to its best member between rounds (a
    location-allocation alternation; the objective with the best centres never rises).

    Parameters
    ----------
    rules
        The problem's rules.
    start
        A plan within every tolerance, every territory connected.
    deadline, stop
        When to stop.
    max_rounds
        Rounds of candidate evaluation at most.

    Returns
    -------
    numpy.ndarray
        The improved plan (still within every rule).
    """
    state = State(rules, start)
    state.refresh_centres()
    moves = _fixed_moves(rules)
    base = state.violation
    for _ in range(max_rounds):
        if (stop is not None and stop.is_set()) or (deadline is not None and time.perf_counter() > deadline):
            break
        units, reps = state.candidates(moves.new_patches, moves.keys)
        delta_v, delta_c = state.evaluate(units, reps)
        good = np.flatnonzero((delta_v <= EPS) & (delta_c < -1e-9))
        moved = 0
        for position in good[np.argsort(delta_c[good], kind="stable")]:
            u, b = int(units[position]), int(reps[position])
            if state.assign[u] == b or not state.can_leave(u):
                continue
            # other moves of this round changed the loads: check this one again before taking it
            again_v, again_c = state.evaluate(np.array([u]), np.array([b]))
            if again_v[0] > EPS or again_c[0] >= -1e-9:
                continue
            if rules.layer[u] >= 0 and not _touches(state, u, b):
                continue
            state.move(u, b)
            moved += 1
        if not moved:
            moved = _descend_pairs(state, units, reps, delta_v, delta_c)
        state.refresh_centres()
        if not moved:
            break
    assert state.violation <= base + 1e-6
    return state.assign


def _descend_pairs(state: State, units: np.ndarray, reps: np.ndarray, delta_v: np.ndarray, delta_c: np.ndarray) -> int:
    """Pairs of moves that together keep every rule and lower the objective (a swap across a border, or a
    unit passed on while another comes back); the best ones that do not share a rep are applied."""
    pool = np.flatnonzero(delta_v < PAIR_SLACK)
    pool = pool[np.argsort(delta_c[pool], kind="stable")][: PAIR_CANDIDATES * 2]
    if len(pool) < 2:
        return 0
    first, second, pair_v, pair_c = _pairs_of(state, units, reps, pool, delta_c)
    good = np.flatnonzero((pair_v <= EPS) & (pair_c < -1e-9))
    moved = 0
    touched: set[int] = set()
    for pick in good[np.argsort(pair_c[good], kind="stable")][: PAIR_TRIES * 4]:
        one, two = first[pick], second[pick]
        reps_of = {int(state.assign[units[one]]), int(reps[one]), int(state.assign[units[two]]), int(reps[two])}
        if reps_of & touched:
            continue  # loads changed since the pair was evaluated
        if _apply_pair(state, units, reps, one, two):
            if state.violation > EPS:  # cannot happen for disjoint reps; undo to stay safe
                raise AssertionError("a pair move broke a rule")
            touched |= reps_of
            moved += 1
    return moved


def relocate(
    rules: Rules,
    plan: np.ndarray,
    rng: np.random.Generator,
    *,
    deadline: float | None,
    stop: threading.Event | None = None,
    rounds: int = RELOCATE_ROUNDS,
) -> np.ndarray:
    """Location-allocation rounds for centre-based compactness: hold the centres, re-draw, move the centres.

    With every territory's centre held at its best unit, the balanced assignment LP (distances from the
    centres, every balance rule, segment rule, lock and budget) re-draws all territories at once; rounded,
    made connected, repaired and descended, the plan replaces the current one when it costs less, and the
    centres move to the new best units. Single moves and region re-draws only shift borders; these rounds
    move whole territories.

    Returns
    -------
    numpy.ndarray
        The best plan found (``plan`` when no round improved it).
    """
    problem = rules.problem
    if rules.centre is None:
        return plan
    best, cost = plan, problem.objective_of(plan)
    for _ in range(rounds):
        if (stop is not None and stop.is_set()) or (deadline is not None and time.perf_counter() > deadline):
            break
        fixed = with_fixed_centres(problem, best_centres(problem, best))
        lp = solve_lp_or_none(fixed)
        if lp is None:
            break
        fixed_rules = Rules(fixed)
        start = make_connected(fixed_rules, lp.rounded(fixed), rng)
        if start is None:
            break
        candidate, violation = repair(fixed_rules, start, rng, deadline=deadline, stop=stop)
        if violation > EPS or not _keeps_every_rule(problem, candidate):
            break
        candidate = descend_contiguous(rules, candidate, deadline=deadline, stop=stop)
        value = problem.objective_of(candidate)
        if value >= cost * (1 - 1e-9):
            break
        best, cost = candidate, value
    return best


def _touches(state: State, u: int, b: int) -> bool:
    """Whether unit ``u`` borders rep ``b``'s patch on its layer, or that patch is empty."""
    rules = state.rules
    layer = int(rules.layer[u])
    if layer < 0 or state.patch_size[b * rules.num_layers + layer] == 0:
        return True
    return bool((state.assign[rules.adjacency.of_unit(u)] == b).any())


# ---------------------------------------------------------------------------- connected starts


def make_connected(rules: Rules, unit_rep: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Turn an assignment into one whose every patch is one piece (locked units stay with their reps).

    First every rep's locked units on a layer are joined by chains of units (:func:`connect_locks`); then
    each patch keeps its piece holding those, or else its heaviest piece, and the units of the other pieces
    join the cheapest neighbouring territory allowed to take them, growing from the kept pieces.

    Returns
    -------
    numpy.ndarray or None
        ``None`` when the locked units could not be joined, or some unit could not be given to a territory.
    """
    assign = np.asarray(unit_rep, dtype=np.int64).copy()
    protected = connect_locks(rules, assign, rng)
    if protected is None:
        return None
    held = protected >= 0
    assign[held] = protected[held]
    layer, adjacency = rules.layer, rules.adjacency
    weight = (rules.values / np.maximum(rules.values.sum(axis=1, keepdims=True), 1.0)).sum(axis=0) + 1e-9
    for _ in range(6):
        label = patch_labels(assign, layer, rules.num_layers)
        piece = pieces(adjacency, label)
        keep = label < 0
        for lab in np.unique(label[label >= 0]):
            members = np.flatnonzero(label == lab)
            parts = piece[members]
            names = np.unique(parts)
            if len(names) == 1:
                keep[members] = True
                continue
            anchored = np.unique(parts[held[members]])
            if len(anchored):
                kept = anchored
            else:
                sums = np.bincount(np.searchsorted(names, parts), weights=weight[members])
                kept = names[[int(sums.argmax())]]
            keep[members[np.isin(parts, kept)]] = True
        if keep.all():
            return assign
        assign[~keep] = -1
        if not _grow(rules, assign, rng):
            return None
    return None


def connect_locks(rules: Rules, assign: np.ndarray, rng: np.random.Generator, tries: int = 12) -> np.ndarray | None:
    """Join every rep's locked units on each layer by chains of units that no other rep needs.

    Reps are taken in turn (in a random order, tried again in others on failure); each grows a tree from
    one locked unit to the nearest of its others through units open to it (its layer, its segment rules, not
    locked or held for another rep), preferring units it holds in ``assign``. The tree's units are then held
    for the rep, so that the next reps route around them: disjoint connected sets, as contiguity needs.

    Returns
    -------
    numpy.ndarray or None
        Rep row of every held unit (-1 elsewhere), or ``None`` when no order joined every rep's locks.
    """
    held = np.where(rules.movable, -1, rules.fixed).astype(np.int64)
    jobs = []
    for r in range(rules.k):
        for layer in range(rules.num_layers):
            terminals = np.flatnonzero((rules.fixed == r) & (rules.layer == layer))
            if len(terminals) > 1:
                jobs.append((r, layer, terminals))
    if not jobs:
        return held
    for attempt in range(tries):
        out = held.copy()
        order = range(len(jobs)) if attempt == 0 else rng.permutation(len(jobs))
        if all(_join(rules, out, assign, *jobs[j]) for j in order):
            return out
    logger.info("locked units of some reps could not all be joined (%d orders tried)", tries)
    return None


def _join(rules: Rules, held: np.ndarray, assign: np.ndarray, rep: int, layer: int, terminals: np.ndarray) -> bool:
    """Grow rep ``rep``'s tree over its locked ``terminals`` (shortest chains, multi-source Dijkstra)."""
    open_unit = (rules.layer == layer) & rules.allowed[:, rep] & ((held < 0) | (held == rep))
    step = np.where(assign == rep, 1.0, 1.5)  # prefer units the rep holds already
    tree = {int(terminals[0])}
    remaining = {int(t) for t in terminals[1:]}
    adjacency = rules.adjacency
    while remaining:
        distance = dict.fromkeys(tree, 0.0)
        previous: dict[int, int] = {}
        heap = [(0.0, u) for u in tree]
        found = -1
        while heap:
            d, u = heapq.heappop(heap)
            if d > distance.get(u, np.inf):
                continue
            if u in remaining:
                found = u
                break
            for v in adjacency.of_unit(u):
                v = int(v)
                if not open_unit[v]:
                    continue
                nd = d + float(step[v])
                if nd < distance.get(v, np.inf):
                    distance[v] = nd
                    previous[v] = u
                    heapq.heappush(heap, (nd, v))
        if found < 0:
            return False
        node = found
        while node not in tree:
            tree.add(node)
            node = previous[node]
        remaining -= tree
    held[list(tree)] = rep
    return True


def _grow(rules: Rules, assign: np.ndarray, rng: np.random.Generator) -> bool:
    """Give every unassigned unit (-1) to a neighbouring territory on its layer, cheapest first."""
    adjacency = rules.adjacency
    heap: list[tuple[float, float, int, int]] = []

    def push(u: int) -> None:
        for v in adjacency.of_unit(u):
            v = int(v)
            if assign[v] < 0 and rules.allowed[v, assign[u]]:
                heapq.heappush(heap, (float(rules.cost[v, assign[u]]), float(rng.random()), v, int(assign[u])))

    for u in np.flatnonzero(assign >= 0):
        push(int(u))
    while heap:
        _, _, v, r = heapq.heappop(heap)
        if assign[v] >= 0:
            continue
        assign[v] = r
        push(v)
    left = np.flatnonzero(assign < 0)
    for u in left:  # a unit no neighbouring territory may take: its cheapest allowed rep (a new patch)
        options = np.flatnonzero(rules.allowed[u])
        if not len(options):
            return False
        assign[u] = options[int(np.argmin(rules.cost[u, options]))]
    return True


def lp_rounded_start(
    problem: Problem, rules: Rules, rng: np.random.Generator, lp: LpSolution | None = None
) -> np.ndarray | None:
    """The assignment LP's plan, rounded and made connected (home-base compactness)."""
    lp = lp or solve_lp_or_none(problem)
    return None if lp is None else make_connected(rules, lp.rounded(problem), rng)


def seeded_start(rules: Rules, rng: np.random.Generator) -> np.ndarray | None:
    """Grow every territory from its seeds on its home layer, the territory furthest below its share first.

    Seeds: a rep's locked units, and its home unit (its cheapest unit on the layer whose units only its team
    may take) or, for reps without a home base, units spread over the layer (farthest first).
    """
    problem = rules.problem
    n, k = rules.n, rules.k
    assign = np.full(n, -1, dtype=np.int64)
    assign[~rules.movable] = rules.fixed[~rules.movable]
    home_layer = _home_layers(rules)
    has_home = np.isfinite(rules.cost).any(axis=0) & (rules.cost.max(axis=0, where=rules.allowed, initial=0) > 0)
    lat = problem.unit_latitude if problem.unit_latitude is not None else np.zeros(n)
    lon = problem.unit_longitude if problem.unit_longitude is not None else np.zeros(n)
    for r in rng.permutation(k):
        layer = home_layer[r]
        if layer < 0 or ((assign == r) & (rules.layer == layer)).any():
            continue
        options = np.flatnonzero((rules.layer == layer) & (assign < 0) & rules.allowed[:, r])
        if not len(options):
            continue
        if has_home[r]:
            noise = 1.0 + 0.05 * rng.random(len(options))
            assign[options[int(np.argmin(rules.cost[options, r] * noise))]] = r
        else:
            taken = np.flatnonzero((assign >= 0) & (rules.layer == layer))
            if len(taken):
                d = _plane_distance(lat, lon, options, taken).min(axis=1)
                pick = options[int(np.argmax(d * (0.8 + 0.4 * rng.random(len(options)))))]
            else:
                pick = int(rng.choice(options))
            assign[pick] = r
    target = rules.norm.copy()
    loads = np.stack([np.bincount(assign[assign >= 0], weights=v[assign >= 0], minlength=k) for v in rules.values])
    heaps: list[list[tuple[float, float, int]]] = [[] for _ in range(k)]

    def push(u: int) -> None:
        r = int(assign[u])
        for v in rules.adjacency.of_unit(u):
            v = int(v)
            if assign[v] < 0 and rules.allowed[v, r]:
                heapq.heappush(heaps[r], (_growth_cost(rules, v, r, assign), float(rng.random()), v))

    for u in np.flatnonzero((assign >= 0) & (rules.layer >= 0)):
        push(int(u))
    while True:
        deficit = ((target - loads) / target).max(axis=0)
        order = np.argsort(-deficit, kind="stable")
        grown = False
        for r in order:
            heap = heaps[r]
            while heap and assign[heap[0][2]] >= 0:
                heapq.heappop(heap)
            if not heap:
                continue
            if deficit[r] <= 0 and (deficit[[q for q in order if heaps[q]]] > 0).any():
                continue
            _, _, v = heapq.heappop(heap)
            assign[v] = r
            loads[:, r] += rules.values[:, v]
            push(v)
            grown = True
            break
        if not grown:
            break
    if (assign < 0).any() and not _grow(rules, assign, rng):
        return None
    return make_connected(rules, assign, rng)


def _growth_cost(rules: Rules, v: int, r: int, assign: np.ndarray) -> float:
    cost = float(rules.cost[v, r])
    if rules.centre is not None:
        members = np.flatnonzero(assign == r)
        cost += float(rules.centre[v, members].min()) if len(members) else 0.0
    return cost


def _plane_distance(lat: np.ndarray, lon: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scale = np.cos(np.radians(float(np.mean(lat)))) if len(lat) else 1.0
    dx = (lon[a, None] - lon[None, b]) * scale
    dy = lat[a, None] - lat[None, b]
    return np.hypot(dx, dy)


def _home_layers(rules: Rules) -> np.ndarray:
    """Each rep's home layer: the layer holding the most units that only its team (the fewest reps) may take."""
    out = np.full(rules.k, -1, dtype=np.int64)
    best = np.full(rules.k, np.inf)
    for layer in range(rules.num_layers):
        members = np.flatnonzero(rules.layer == layer)
        if not len(members):
            continue
        allowed = rules.allowed[members]
        team = allowed.mean(axis=0) > 0.5
        width = float(allowed.sum(axis=1).mean())
        better = team & (width < best)
        out[better] = layer
        best[better] = width
    return out


def tree_split_start(rules: Rules, rng: np.random.Generator, deadline: float | None) -> np.ndarray | None:
    """Recursive spanning-tree bisection of a one-layer map, parts matched to reps.

    Needs every contiguous unit on one layer. Key-account units go first to the allowed rep least loaded
    for its FTE; the tree cuts then share out what is left, on the metrics balanced across all reps.
    """
    if rules.num_layers != 1:
        return None
    problem = rules.problem
    k = rules.k
    assign = np.full(rules.n, -1, dtype=np.int64)
    keys = np.flatnonzero(rules.layer < 0)
    pre = np.zeros((len(rules.values), k))
    share = rules.values / np.maximum(rules.values.sum(axis=1, keepdims=True), 1.0)
    fill = np.zeros(k)
    for u in keys[np.argsort(-share[:, keys].sum(axis=0), kind="stable")]:
        options = np.flatnonzero(rules.allowed[u])
        if rules.fixed[u] >= 0:
            options = np.array([rules.fixed[u]])
        if not len(options):
            return None
        load = (fill[options] + share[:, u].sum()) / problem.fte[options]
        r = int(options[np.lexsort((rules.cost[u, options], load))[0]])
        assign[u] = r
        fill[r] += share[:, u].sum()
        pre[:, r] += rules.values[:, u]
    nodes = np.flatnonzero(rules.layer >= 0)
    if not len(nodes):
        return assign
    fixed_metrics = ~rules.grouped
    lo, hi = rules.lo[fixed_metrics] - pre[fixed_metrics], rules.hi[fixed_metrics] - pre[fixed_metrics]
    values = rules.values[fixed_metrics]
    if not fixed_metrics.any():
        # no fixed bounds: split on each grouped metric's FTE shares of its total (the repair adjusts groups)
        values = rules.values
        total = values.sum(axis=1, keepdims=True)
        target = total * problem.fte[None, :] / problem.fte.sum()
        tolerance = np.array([m.tolerance for m in problem.metrics])[:, None]
        lo, hi = target * (1 - tolerance) - pre, target * (1 + tolerance) - pre
    reps = _rep_order(rules, rng)
    parts = _split(rules, values, lo, hi, nodes, reps, rng, deadline, [TREES_PER_START])
    if parts is None:
        return None
    for r, members in parts.items():
        assign[members] = r
    return _match_to_reps(rules, assign, nodes)


def _rep_order(rules: Rules, rng: np.random.Generator) -> np.ndarray:
    """Reps in an order whose halves lie apart: along the main axis of their home bases, else at random.

    A rep's home base stands as the unit it reaches most cheaply; reps without one (open territories) and
    problems without unit points are shuffled.
    """
    problem = rules.problem
    k = rules.k
    homes = np.isfinite(rules.cost).all(axis=0) & (np.nan_to_num(rules.cost, posinf=0.0).max(axis=0) > 0)
    if problem.unit_latitude is None or problem.unit_longitude is None or homes.sum() < 2:
        return rng.permutation(k)
    nearest = np.argmin(np.where(rules.allowed, rules.cost, np.inf), axis=0)
    points = np.column_stack([problem.unit_longitude[nearest], problem.unit_latitude[nearest]])
    points = points - points.mean(axis=0)
    axis = np.linalg.svd(points, full_matrices=False)[2][0]
    position = points @ axis + 1e-6 * rng.random(k)
    return np.argsort(position, kind="stable")


def _split(
    rules: Rules,
    values: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    nodes: np.ndarray,
    reps: np.ndarray,
    rng: np.random.Generator,
    deadline: float | None,
    budget: list[int],
) -> dict[int, np.ndarray] | None:
    """Split ``nodes`` (connected) into one connected part per rep of ``reps`` within ``lo``..``hi`` per metric.

    ``budget`` holds the spanning trees the whole recursion may still draw (shared, decremented).
    """
    if len(reps) == 1:
        load = values[:, nodes].sum(axis=1)
        r = int(reps[0])
        return {r: nodes} if bool(np.all(load >= lo[:, r] - 1e-9) & np.all(load <= hi[:, r] + 1e-9)) else None
    half = len(reps) // 2
    side_a, side_b = reps[:half], reps[half:]
    lo_a, hi_a = lo[:, side_a].sum(axis=1), hi[:, side_a].sum(axis=1)
    lo_b, hi_b = lo[:, side_b].sum(axis=1), hi[:, side_b].sum(axis=1)
    total = values[:, nodes].sum(axis=1)
    # the subtree taken as side A must hold [lo_a, hi_a] and leave [lo_b, hi_b] for side B; a side of several reps
    # keeps near its proportional share (within SIDE_SLACK of its room), so that its own cuts keep their room
    mid = (lo_a + hi_a) / 2.0 * total / np.maximum((lo_a + hi_a + lo_b + hi_b) / 2.0, 1e-9)
    slack_a = 1.0 if len(side_a) == 1 else SIDE_SLACK
    slack_b = 1.0 if len(side_b) == 1 else SIDE_SLACK
    low_s = np.maximum(mid - slack_a * (mid - lo_a), mid - slack_b * (hi_b - (total - mid)))
    low_s = np.maximum(low_s, np.maximum(lo_a, total - hi_b))
    high_s = np.minimum(mid + slack_a * (hi_a - mid), mid + slack_b * ((total - mid) - lo_b))
    high_s = np.minimum(high_s, np.minimum(hi_a, total - lo_b))
    if np.any(low_s > high_s + 1e-9):
        return None
    width = np.maximum(high_s - low_s, 1e-9)
    top = len(reps) == rules.k
    for _ in range(TREES_PER_CUT if top else TREES_PER_INNER_CUT):
        if budget[0] <= 0 or (deadline is not None and time.perf_counter() > deadline):
            return None
        budget[0] -= 1
        tree = random_spanning_tree(rules.adjacency, nodes, rng)
        root = int(rng.choice(nodes))
        order, parent = _tree_order(tree, root)
        if len(order) != len(nodes):
            return None  # not connected
        sums = values[:, order].T.copy()  # (nodes, metrics), in BFS order
        position = {int(u): i for i, u in enumerate(order)}
        for i in range(len(order) - 1, 0, -1):
            sums[position[int(parent[order[i]])]] += sums[i]
        as_a = np.all((sums >= low_s) & (sums <= high_s), axis=1)
        as_b = np.all((total - sums >= low_s) & (total - sums <= high_s), axis=1)
        as_a[0] = as_b[0] = False  # the root's subtree is everything
        side = np.where(as_a[:, None], sums, total - sums)
        off = np.abs(side - mid).max(axis=1) / width.max() if len(mid) else np.zeros(len(side))
        fits = np.flatnonzero(as_a | as_b)
        # nearest the share first, with some spread so that a map whose sides do not split draws other cuts
        fits = fits[np.argsort(off[fits] + 0.3 * rng.random(len(fits)), kind="stable")]
        for pick in fits[:2]:
            below = _subtree(tree, order, parent, int(order[pick]))
            inside_a = below if as_a[pick] else np.setdiff1d(nodes, below, assume_unique=True)
            inside_b = np.setdiff1d(nodes, inside_a, assume_unique=True)
            first = _split(rules, values, lo, hi, inside_a, side_a, rng, deadline, budget)
            if first is None:
                continue
            second = _split(rules, values, lo, hi, inside_b, side_b, rng, deadline, budget)
            if second is None:
                continue
            return {**first, **second}
    return None


def _tree_order(tree: Adjacency, root: int) -> tuple[np.ndarray, np.ndarray]:
    """BFS order of a tree from ``root`` and the parent of every node (-1 for the root and unreached)."""
    parent = np.full(tree.num_units, -1, dtype=np.int64)
    seen = np.zeros(tree.num_units, dtype=bool)
    seen[root] = True
    order = [root]
    for node in order:
        for nxt in tree.of_unit(node):
            nxt = int(nxt)
            if not seen[nxt]:
                seen[nxt] = True
                parent[nxt] = node
                order.append(nxt)
    return np.array(order, dtype=np.int64), parent


def _subtree(tree: Adjacency, order: np.ndarray, parent: np.ndarray, top: int) -> np.ndarray:
    """Nodes of the subtree below ``top`` (``top`` included)."""
    below = [top]
    for node in below:
        for nxt in tree.of_unit(node):
            nxt = int(nxt)
            if parent[nxt] == node:
                below.append(nxt)
    return np.array(below, dtype=np.int64)


def plan_from_groups(rules: Rules, groups: np.ndarray) -> np.ndarray | None:
    """A plan from a partition of the units (such as a p-median's), if it keeps every rule once given to reps.

    The groups go to reps by the matching that tree splits use (home-base cost, locks and segment rules); the
    plan is returned only when it is connected and within every tolerance.

    Parameters
    ----------
    rules
        The problem's rules.
    groups
        A group label per unit, at most one group per rep.

    Returns
    -------
    numpy.ndarray or None
    """
    labels, assign = np.unique(groups, return_inverse=True)
    if len(labels) != rules.k:
        return None
    plan = _match_to_reps(rules, assign.astype(np.int64), np.arange(rules.n))
    return plan if plan is not None and _keeps_every_rule(rules.problem, plan) else None


def _match_to_reps(rules: Rules, assign: np.ndarray, nodes: np.ndarray) -> np.ndarray | None:
    """Relabel the parts cut for reps of equal FTE so each goes to the rep it suits best.

    Parts cut for reps of the same FTE (and key-account load) are interchangeable: a minimum-cost matching
    puts them near home bases, with locked units and hard segment rules as hard conditions. ``None`` when
    no matching keeps the locks and segment rules.
    """
    from ortools.graph.python import linear_sum_assignment

    problem = rules.problem
    k = rules.k
    part_of = assign[nodes]
    cost = np.zeros((k, k))  # part x rep
    big = 1e18
    for part in range(k):
        members = nodes[part_of == part]
        if not len(members):
            continue
        ok = rules.allowed[members].all(axis=0)
        locked = rules.fixed[members]
        locked = locked[locked >= 0]
        if len(locked):
            ok &= np.isin(np.arange(k), locked) & (len(np.unique(locked)) == 1)
        costs = np.where(np.isfinite(rules.cost[members]), rules.cost[members], 0.0).sum(axis=0)
        cost[part] = np.where(ok, costs, big)
    key_load = np.zeros(k)
    keys = rules.layer < 0
    np.add.at(key_load, assign[keys & (assign >= 0)], 1.0)
    signature = [(float(problem.fte[r]), key_load[r]) for r in range(k)]
    new_label = np.arange(k)
    for kind in set(signature):
        group = np.array([r for r in range(k) if signature[r] == kind])
        if len(group) < 2:
            if cost[group[0], group[0]] >= big:
                return None
            continue
        scale = max(float(cost[np.ix_(group, group)][cost[np.ix_(group, group)] < big].max(initial=1.0)), 1.0)
        solver = linear_sum_assignment.SimpleLinearSumAssignment()
        for i, part in enumerate(group):
            for j, rep in enumerate(group):
                value = cost[part, rep]
                solver.add_arc_with_cost(i, j, (2**50) if value >= big else int(value / scale * 1e9))
        if solver.solve() != solver.OPTIMAL:
            return None
        for i, part in enumerate(group):
            j = solver.right_mate(i)
            if cost[part, group[j]] >= big:
                return None
            new_label[part] = group[j]
    out = assign.copy()
    out[nodes] = new_label[part_of]
    return out


# ---------------------------------------------------------------------------- the first plan


def first_plan(
    problem: Problem,
    *,
    seed: int = 0,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    max_attempts: int | None = None,
    workers: int = 1,
    lp: LpSolution | None = None,
) -> StartReport:
    """Find a plan that keeps every rule with every territory connected, restarting until one is found.

    Parameters
    ----------
    problem
        A problem with ``contiguous`` set and its unit adjacency.
    seed
        Seed of every random choice.
    deadline
        ``time.perf_counter()`` value to give up at (``None``: until ``max_attempts``).
    stop
        Set by the caller to stop.
    max_attempts
        Starts to try at most (default: 40 without a deadline, unlimited with one).
    workers
        CP-SAT workers of the neighbourhood repair.
    lp
        The assignment LP when the caller solved it already (home-base compactness), for the LP start.

    Returns
    -------
    StartReport
    """
    clock = time.perf_counter()
    rng = np.random.default_rng(seed)
    rules = Rules(problem)
    report = StartReport(plan=None, seconds=0.0)
    limit = max_attempts if max_attempts is not None else (40 if deadline is None else 10**9)
    homes = bool(np.isfinite(rules.cost).any() and (problem.pair_compactness > 0).any())
    methods = _methods(rules, homes)
    attempt = 0
    lp_tried = False
    while attempt < limit:
        if (stop is not None and stop.is_set()) or (deadline is not None and time.perf_counter() > deadline):
            break
        method = methods[attempt % len(methods)]
        attempt += 1
        if method == "lp" and lp_tried:
            method = "growth"
        report.attempts[method] = report.attempts.get(method, 0) + 1
        if method == "tree":
            start = tree_split_start(rules, rng, deadline)
        elif method == "lp":
            lp_tried = True
            start = lp_rounded_start(problem, rules, rng, lp)
        else:
            start = seeded_start(rules, rng)
        if start is None:
            continue
        plan, violation = repair(rules, start, rng, deadline=deadline, stop=stop)
        if violation > EPS and (violation < CP_REPAIR_BELOW or method != "tree"):
            plan, violation = cp_repair(rules, plan, rng, deadline=deadline, stop=stop, workers=workers)
        if violation < report.best_violation:
            report.best_violation, report.best = violation, plan
        if violation <= EPS and _keeps_every_rule(problem, plan):
            report.plan = plan
            report.best_violation = 0.0
            break
    report.seconds = time.perf_counter() - clock
    if report.plan is None and report.best is not None:
        report.blockers = explain_violation(rules, report.best)
    logger.info(
        "contiguous first plan: %s after %s in %.2f s",
        "found" if report.plan is not None else f"none (violation {report.best_violation:.4f})",
        ", ".join(f"{v} {k}" for k, v in report.attempts.items()) or "no start",
        report.seconds,
    )
    return report


def _methods(rules: Rules, homes: bool) -> list[str]:
    """The order in which starts are tried: cheap tree splits first (one layer), the LP (home bases), growth."""
    out = ["tree"] * TREE_STARTS if rules.num_layers == 1 else []
    if homes:
        out.append("lp")
    out.append("growth")
    return out


def _keeps_every_rule(problem: Problem, plan: np.ndarray) -> bool:
    from optimizer.score import score

    return score(problem, plan).feasible


def explain_violation(rules: Rules, plan: np.ndarray) -> list[str]:
    """The rules a connected plan still breaks, in the planner's words (largest first)."""
    problem = rules.problem
    state = State(rules, plan)
    out = []
    lo, hi = rules.bounds_of(state.loads)
    for i, metric in enumerate(problem.metrics):
        for r in np.argsort(-state.viol[i])[:3]:
            if state.viol[i, r] <= EPS:
                break
            load = state.loads[i, r] / metric.scale
            side = "above" if state.loads[i, r] > hi[i, r] else "below"
            bound = (hi[i, r] if side == "above" else lo[i, r]) / metric.scale
            out.append(
                f"balance of {metric.name}: territory of '{problem.rep_ids[r]}' holds {load:,.0f}, {side} its "
                f"bound {bound:,.0f} (±{metric.tolerance * 100:g} %)"
            )
    for b, budget in enumerate(problem.budgets):
        if state.moved[b] > rules.budget_limit[b]:
            out.append(f"move budget on {budget.name}: {state.moved[b] / budget.scale:,.0f} moved")
    return out
