"""Balance repair: move units one at a time until every rep is within tolerance.

A plan that is nearly balanced (a clustered LP spread back to its units, the
regions of a split problem put back together, last year's plan after a hire)
usually needs a few hundred single-unit moves to meet every tolerance. CP-SAT
finds those moves slowly on models with 100,000 units, so this module makes
them greedily:

* the *violation* of a plan is, summed over metrics and reps, how far each
  load lies outside its bounds, in units of that rep's tolerance band (so
  accounts, revenue and hours weigh alike);
* each step takes the rep with the largest violation and scores every move of
  a unit out of it (to any rep the unit may go to) and into it (from any
  rep), then makes the move that removes violation most cheaply: among the
  moves that remove at least half of the best reduction, the one with the
  smallest objective increase per unit of violation removed;
* when no single move helps, it tries swaps of two units between the worst
  rep and another;
* at a local minimum (no move or swap helps) it pulls every load harder
  towards the middle of its window, which makes room for the moves the other
  metrics need, and carries on.

Bounds follow the CP-SAT model exactly (:mod:`optimizer.model`): fixed
integer bounds for metrics balanced across all reps, and a rep's share of its
group's load for metrics balanced within a segment, so a repaired plan is a
valid start for the large-neighbourhood search. Locked units never move, and
every move uses an allowed pair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from optimizer.problem import Problem, expand_ranges, first_minimum, group_ratio

logger = logging.getLogger(__name__)

#: Moves kept when scoring swaps (the best ones out of and into the worst rep).
SWAP_CANDIDATES = 100
#: Weight of the pull towards the middle of each tolerance window, against 1 for the violation.
CENTRE_PULL = 0.3
#: The pull grows threefold at each local minimum, up to this weight.
MAX_PULL = 25.0
#: Steps a unit waits before it may move again after a move that did not help.
TABU_STEPS = 50
#: Relative safety margin on grouped bounds computed in floating point.
_MARGIN = 1e-12


class _Balance:
    """Loads and bounds of every metric and rep, updated move by move."""

    def __init__(self, problem: Problem, unit_rep: np.ndarray) -> None:
        self.problem = problem
        self.values = np.stack([m.values.astype(np.float64) for m in problem.metrics])  # (metrics, units)
        self.loads = np.stack(
            [np.bincount(unit_rep, weights=v, minlength=problem.num_reps) for v in self.values]
        )  # (metrics, reps)
        n_metrics, n_reps = len(problem.metrics), problem.num_reps
        self.fixed_lo = np.full((n_metrics, n_reps), np.nan)
        self.fixed_hi = np.full((n_metrics, n_reps), np.nan)
        self.ratio_lo = np.zeros((n_metrics, n_reps))
        self.ratio_hi = np.zeros((n_metrics, n_reps))
        self.groups = np.zeros((n_metrics, n_reps), dtype=np.int64)
        for i, metric in enumerate(problem.metrics):
            if metric.lo is not None and metric.hi is not None:
                self.fixed_lo[i], self.fixed_hi[i] = metric.lo, metric.hi
            if metric.grouped:
                self.groups[i] = metric.groups
                for r in range(n_reps):
                    members = np.flatnonzero(metric.groups == metric.groups[r])
                    share = problem.fte_exact[r] / sum((problem.fte_exact[q] for q in members), Fraction(0))
                    num, den = group_ratio(metric, share, upper=True)
                    self.ratio_hi[i, r] = num / den * (1 - _MARGIN)
                    num, den = group_ratio(metric, share, upper=False)
                    self.ratio_lo[i, r] = num / den * (1 + _MARGIN)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound of every metric's load for every rep, given the current group loads."""
        lo, hi = self.fixed_lo.copy(), self.fixed_hi.copy()
        for i, metric in enumerate(self.problem.metrics):
            if metric.grouped:
                group_load = np.bincount(self.groups[i], weights=self.loads[i])[self.groups[i]]
                lo[i] = np.fmax(lo[i], self.ratio_lo[i] * group_load)
                hi[i] = np.fmin(hi[i], self.ratio_hi[i] * group_load)
        return np.nan_to_num(lo, nan=-np.inf), np.nan_to_num(hi, nan=np.inf)


def _violation(loads: np.ndarray, lo: np.ndarray, hi: np.ndarray, band: np.ndarray) -> np.ndarray:
    """How far loads lie outside their bounds, in tolerance bands (same shape as ``loads``)."""
    return (np.maximum(loads - hi, 0.0) + np.maximum(lo - loads, 0.0)) / band


def _energy(loads: np.ndarray, lo: np.ndarray, hi: np.ndarray, band: np.ndarray, pull: float) -> np.ndarray:
    """What the moves minimise: the violation plus a small pull of every load towards its window's middle.

    Loads sitting on a bound block moves the other metrics need (a rep over on accounts but at its lowest
    workload can give away no account alone); the pull makes room first, a step at a time.
    """
    middle = np.where(np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi), loads)
    return _violation(loads, lo, hi, band) + pull * ((loads - middle) / band) ** 2


def violation(problem: Problem, unit_rep: np.ndarray) -> float:
    """Total balance violation of an assignment, in tolerance bands (0: every rep within tolerance).

    Parameters
    ----------
    problem
        The problem.
    unit_rep
        Rep row of every unit.

    Returns
    -------
    float
    """
    state = _Balance(problem, np.asarray(unit_rep, dtype=np.int64))
    lo, hi = state.bounds()
    return float(_violation(state.loads, lo, hi, _band(lo, hi, state.loads)).sum())


def _band(lo: np.ndarray, hi: np.ndarray, loads: np.ndarray) -> np.ndarray:
    """Width of every tolerance window (the mean load where a bound is missing), never below 1."""
    width = hi - lo
    fallback = np.broadcast_to(loads.mean(axis=1, keepdims=True), loads.shape)
    return np.maximum(np.where(np.isfinite(width), width, fallback), 1.0)


def repair(
    problem: Problem,
    unit_rep: np.ndarray,
    *,
    deadline: float | None = None,
    max_steps: int | None = None,
) -> np.ndarray | None:
    """Move units until every metric of every rep is within its bounds.

    Parameters
    ----------
    problem
        A problem without contiguity (moves do not keep territories connected).
    unit_rep
        Rep row of every unit; every unit's pair must be allowed.
    deadline
        ``time.perf_counter()`` value to give up at.
    max_steps
        Most moves to make (default: twice the number of units).

    Returns
    -------
    numpy.ndarray or None
        The repaired assignment (a copy), or ``None`` when the search got stuck or ran out of time.

    Raises
    ------
    ValueError
        When the assignment uses a pair the problem does not allow.
    """
    current = np.asarray(unit_rep, dtype=np.int64).copy()
    cur_pair = problem.pairs_of(current)
    if (cur_pair < 0).any():
        raise ValueError("the assignment to repair uses a pair the problem does not allow")
    n_units, n_reps = problem.num_units, problem.num_reps
    state = _Balance(problem, current)
    movable = problem.fixed_rep < 0
    rep_order = np.argsort(problem.pair_rep, kind="stable")
    rep_start = np.searchsorted(problem.pair_rep[rep_order], np.arange(n_reps + 1))
    cost = problem.pair_cost.astype(np.float64)
    tabu = np.zeros(n_units, dtype=np.int64)
    limit = 2 * n_units if max_steps is None else max_steps
    steps = moves = 0
    pull = CENTRE_PULL
    measure = _Measure.of(state, pull)
    start_total = measure.total
    while measure.total > 0:
        if steps >= limit or (deadline is not None and time.perf_counter() > deadline):
            logger.info("repair stopped after %d steps with violation %.3g bands left", steps, measure.total)
            return None
        steps += 1
        worst = int(np.argmax(measure.viol.sum(axis=0)))
        # moves out of the worst rep: every other allowed rep of each of its movable units
        members = np.flatnonzero((current == worst) & movable & (tabu <= steps))
        out_pairs, _ = expand_ranges(problem.unit_start[members], problem.unit_start[members + 1])
        out_pairs = out_pairs[problem.pair_rep[out_pairs] != worst]
        # moves into the worst rep: its allowed pairs whose units are elsewhere
        in_pairs = rep_order[rep_start[worst] : rep_start[worst + 1]]
        in_units = problem.pair_unit[in_pairs]
        in_pairs = in_pairs[(current[in_units] != worst) & movable[in_units] & (tabu[in_units] <= steps)]
        pairs = np.concatenate([out_pairs, in_pairs])
        if not len(pairs):
            logger.info("repair stuck: rep %s has no unit it can give or take", problem.rep_ids[worst])
            return None
        units = problem.pair_unit[pairs]
        gain = _move_gain(state, measure, units, current[units], problem.pair_rep[pairs])
        extra = cost[pairs] - cost[cur_pair[units]]
        choice = _pick(gain, extra)
        if choice is None:
            swap = _best_swap(state, measure, pairs, gain, extra, current, problem, worst)
            if swap is None and pull < MAX_PULL:
                # a local minimum: pull loads harder towards the middle of their windows to make room
                pull *= 3
                measure = _Measure.of(state, pull)
                continue
            if swap is None:
                logger.info(
                    "repair stuck at violation %.3g bands (rep %s): no move or swap reduces it",
                    measure.total,
                    problem.rep_ids[worst],
                )
                return None
            chosen = list(swap)
        else:
            chosen = [int(pairs[choice])]
        undo = [
            (int(problem.pair_unit[p]), int(current[problem.pair_unit[p]]), int(cur_pair[problem.pair_unit[p]]))
            for p in chosen
        ]
        for p in chosen:
            u = int(problem.pair_unit[p])
            _apply(state, u, int(current[u]), int(problem.pair_rep[p]))
            current[u], cur_pair[u] = problem.pair_rep[p], p
        after = _Measure.of(state, pull)
        if after.energy_total < measure.energy_total - 1e-12:
            measure = after
            moves += len(chosen)
            continue
        # a move across balance groups shifts every target of both groups: it may not help after all
        for u, rep, pair in reversed(undo):
            _apply(state, u, int(current[u]), rep)
            current[u], cur_pair[u] = rep, pair
            tabu[u] = steps + TABU_STEPS
        measure = _Measure.of(state, pull)
    logger.info("repair: violation %.3g -> 0 bands in %d moves (%d steps)", start_total, moves, steps)
    return current


@dataclass(frozen=True)
class _Measure:
    """Bounds, violation and energy of the current loads."""

    lo: np.ndarray
    hi: np.ndarray
    band: np.ndarray
    viol: np.ndarray
    energy: np.ndarray
    pull: float

    @classmethod
    def of(cls, state: _Balance, pull: float) -> _Measure:
        lo, hi = state.bounds()
        band = _band(lo, hi, state.loads)
        return cls(lo, hi, band, _violation(state.loads, lo, hi, band), _energy(state.loads, lo, hi, band, pull), pull)

    @property
    def total(self) -> float:
        return float(self.viol.sum())

    @property
    def energy_total(self) -> float:
        return float(self.energy.sum())

    def energy_at(self, loads: np.ndarray, reps: np.ndarray | list[int]) -> np.ndarray:
        """Energy of the given loads (metrics x candidates) held by the given reps."""
        return _energy(loads, self.lo[:, reps], self.hi[:, reps], self.band[:, reps], self.pull)


def _apply(state: _Balance, unit: int, src: int, dst: int) -> None:
    """Move one unit's metrics from ``src`` to ``dst``."""
    state.loads[:, src] -= state.values[:, unit]
    state.loads[:, dst] += state.values[:, unit]


def _move_gain(state: _Balance, measure: _Measure, units: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Energy removed by moving each unit from ``src`` to ``dst`` (bounds held where they are)."""
    v = state.values[:, units]
    after = measure.energy_at(state.loads[:, src] - v, src) + measure.energy_at(state.loads[:, dst] + v, dst)
    return (measure.energy[:, src] + measure.energy[:, dst] - after).sum(axis=0)


def _pick(gain: np.ndarray, extra: np.ndarray) -> int | None:
    """The cheapest move per violation removed among those removing at least half the best reduction."""
    best = float(gain.max(initial=0.0))
    if best <= 1e-12:
        return None
    good = np.flatnonzero(gain >= 0.5 * best)
    return int(good[np.argmin(extra[good] / gain[good])])


def _best_swap(
    state: _Balance,
    measure: _Measure,
    pairs: np.ndarray,
    gain: np.ndarray,
    extra: np.ndarray,
    current: np.ndarray,
    problem: Problem,
    worst: int,
) -> tuple[int, int] | None:
    """Two moves between the worst rep and another that together reduce the energy, or ``None``.

    Candidates are the best single moves out of and into the worst rep (by energy removed, then cost);
    every pairing of one out-move with one in-move from the same rep is scored exactly.
    """
    units = problem.pair_unit[pairs]
    out = np.flatnonzero(current[units] == worst)
    into = np.flatnonzero(current[units] != worst)
    if not len(out) or not len(into):
        return None
    out = out[np.lexsort((extra[out], -gain[out]))][:SWAP_CANDIDATES]
    into = into[np.lexsort((extra[into], -gain[into]))][:SWAP_CANDIDATES]
    best: tuple[float, float, int, int] | None = None
    for i in out:
        other = int(problem.pair_rep[pairs[i]])
        same = into[current[units[into]] == other]
        if not len(same):
            continue
        flow = state.values[:, units[i]][:, None] - state.values[:, units[same]]  # net load worst -> other
        after = measure.energy_at(state.loads[:, [worst]] - flow, [worst]) + measure.energy_at(
            state.loads[:, [other]] + flow, [other]
        )
        swap_gain = ((measure.energy[:, worst] + measure.energy[:, other])[:, None] - after).sum(axis=0)
        j = int(np.argmax(swap_gain))
        if swap_gain[j] > 1e-12:
            key = (-float(swap_gain[j]), float(extra[i] + extra[same[j]]))
            if best is None or key < best[:2]:
                best = (key[0], key[1], int(pairs[i]), int(pairs[same[j]]))
    return None if best is None else (best[2], best[3])


def descend(problem: Problem, unit_rep: np.ndarray, *, deadline: float | None = None, rounds: int = 50) -> np.ndarray:
    """Cheaper plan by single-unit moves that keep every rep within its bounds (a steepest-descent pass).

    Each round scores, for every movable unit, its cheapest other rep, then makes the improving moves in order
    of saving while both reps stay within every bound. Moves stay inside each balance group of the metrics
    balanced within segments, so group loads (and the bounds that depend on them) do not change; moves across
    groups and swaps are left to the large-neighbourhood search. On a clustered LP start (which leaves a fifth
    of every tolerance free) this takes a few seconds at 100,000 units and saves more than many LNS steps.

    Parameters
    ----------
    problem
        The problem.
    unit_rep
        A plan within every tolerance.
    deadline
        ``time.perf_counter()`` value to stop at.
    rounds
        Most rounds.

    Returns
    -------
    numpy.ndarray
        The improved plan (a copy); every bound and hard rule still holds.
    """
    current = np.asarray(unit_rep, dtype=np.int64).copy()
    state = _Balance(problem, current)
    movable = problem.fixed_rep < 0
    cost = problem.pair_cost.astype(np.float64)
    same_group = np.ones((problem.num_reps, problem.num_reps), dtype=bool)
    for metric in problem.metrics:
        if metric.grouped:
            same_group &= metric.groups[:, None] == metric.groups[None, :]
    saved = 0.0
    for _ in range(rounds):
        if deadline is not None and time.perf_counter() > deadline:
            break
        lo, hi = state.bounds()
        now = problem.pairs_of(current)
        extra = cost - cost[now][problem.pair_unit]
        ok = (
            movable[problem.pair_unit]
            & (problem.pair_rep != current[problem.pair_unit])
            & same_group[current[problem.pair_unit], problem.pair_rep]
        )
        extra[~ok] = np.inf
        best, first = first_minimum(extra, problem.pair_unit, problem.unit_start[:-1])
        units = np.flatnonzero(best < 0)
        if not len(units):
            break
        pairs = first[units][np.argsort(best[units], kind="stable")]
        moved = 0
        for p in pairs:
            u, dst = int(problem.pair_unit[p]), int(problem.pair_rep[p])
            src = int(current[u])
            v = state.values[:, u]
            if np.all(state.loads[:, src] - v >= lo[:, src]) and np.all(state.loads[:, dst] + v <= hi[:, dst]):
                _apply(state, u, src, dst)
                current[u] = dst
                saved -= float(extra[p])
                moved += 1
        if not moved:
            break
    logger.info("descent: %.6g saved by single moves", saved)
    return current
