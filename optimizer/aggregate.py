"""Aggregation of small units into clusters: the first plan of very large problems.

At 100,000 accounts and 100 reps the assignment LP has millions of columns and
GLOP does not finish in minutes on two cores (measured: no plan in 400 s with 8
candidate reps per account), so the LP start of :mod:`optimizer.relaxation`
cannot be the first step. Instead:

1. units that may go to the same reps (same hard segment class and lock) and
   have a similar mix of metrics (:func:`optimizer.problem.metric_profile`) are
   ordered along a Morton (Z-order) curve of their coordinates and cut into
   consecutive clusters, each small against the balance window (every metric of
   a cluster at most a fraction of the smallest rep's tolerance band); where
   every unit is offered every eligible rep, a few thousand such clusters come
   first (their LP takes seconds), and only when their LP has no solution, or
   units are offered their nearest reps only, are clusters also kept within
   one cheapest rep's area (many more clusters, a slower LP);
2. the clustered problem (a few thousand clusters, each allowed only the reps
   every member may go to) is an ordinary :class:`~optimizer.problem.Problem`
   whose LP GLOP solves in seconds;
3. :func:`refine` holds what the LP gave wholly to a rep, cuts the clusters it
   left fractional finer and solves again (at 1,000,000 accounts those
   clusters held half the units);
4. :func:`spread` gives every unit its cluster's rep, and splits the few
   clusters the LP leaves fractional between their reps;
5. :mod:`optimizer.repair` fixes what the split left outside a tolerance, and
   the large-neighbourhood search improves the plan on the original units.

Clusters never mix hard segment classes or locks, so the plan keeps every hard
rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from optimizer.problem import (
    COARSE_CELL_DEG,
    MoveBudget,
    Problem,
    first_minimum,
    metric_profile,
    smallest_pairs,
    unique_keys,
)
from optimizer.relaxation import LpInfeasibleError, LpSolution, shrink_tolerances, solve_lp

logger = logging.getLogger(__name__)

#: A cluster's metric may be at most this fraction of the smallest rep's tolerance band.
BAND_FRACTION = 0.5
#: Shares of each tolerance the clustered LP keeps (the rest is headroom for splitting clusters), tried in turn:
#: the next when the split plan's repair fails, the looser ones only when the LP has no solution. Headroom costs:
#: at 1,000,000 accounts the LP at 80 % of each tolerance cost 14 % more than at 100 %, the first plan from 90 %
#: 7 % less than from 80 % (repaired in 24 moves); from 100 % the repair got stuck 2.96 bands off.
LP_TOLERANCE_FACTORS = (0.9, 0.8, 1.0)
#: Share of :data:`REPAIR_SECONDS` the repair gets while a factor with more headroom is left to try.
EARLY_REPAIR_SHARE = 0.5
#: Most clusters (caps grow until the clustered LP is at most this big).
MAX_CLUSTERS = 12_000
#: Most clusters of the first try, whose clusters are not kept within one cheapest rep's area: their LP is much
#: smaller (100,000 accounts / 100 reps: 2,748 clusters, LP 1.3 s, against 10,615 clusters and 40-50 s), and
#: :func:`refine` cuts the clusters it leaves fractional.
FIRST_CLUSTERS = 2_000
#: Most units in one cluster.
MAX_MEMBERS = 400
#: Each rep keeps its cheapest clusters until they hold this many times its mean load.
REP_COVER = 3.0
#: Rounds of :func:`refine` after the clustered LP (one took a 1M plan from 84 to 0.17 bands off; a second, none).
REFINE_ROUNDS = 1
#: Seconds the repair of the split plan always gets, past the deadline if need be: a plan a little after the
#: time limit is worth more than none (1,000,000 accounts under load: the clustered LP took the whole 120 s limit,
#: then 4 moves would have made a plan within tolerance).
REPAIR_SECONDS = 30.0
#: LP values this close to 0 or 1 count as 0 or 1.
_LP_ZERO = 1e-6
#: Clustered LPs with at least this many load rows (reps x metrics) are solved by HiGHS' interior point method
#: and crossover, smaller ones by GLOP's dual simplex (:func:`solve_clustered_lp`). Measured at 90 % of each
#: tolerance, GLOP against interior point: 1,000,000 accounts / 500 reps (11,654 clusters) 42 s against 27 s,
#: its refined LP (21,715 pieces) 5.7 s against 3.9 s; 300,000 / 300 (11,672 clusters) 23.3 s against 21.3 s;
#: 100,000 / 100 (2,748 clusters) 0.8 s against 2.5 s, and 10,615 clusters 11 s against 20 s.
INTERIOR_LOAD_ROWS = 1_200
#: Candidate reps kept per cluster (cheapest per unit of workload), besides its current rep.
CLUSTER_CANDIDATES = 20


def _morton(lat: np.ndarray, lon: np.ndarray, bits: int = 16) -> np.ndarray:
    """Z-order keys of coordinates: nearby points mostly get nearby keys."""
    scale = (1 << bits) - 1

    def norm(values: np.ndarray) -> np.ndarray:
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        span = high - low if high > low else 1.0
        return np.nan_to_num((values - low) / span * scale).astype(np.uint64)

    x, y = norm(lon), norm(lat)
    key = np.zeros(len(lat), dtype=np.uint64)
    for bit in range(bits):
        key |= ((x >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit)
        key |= ((y >> np.uint64(bit)) & np.uint64(1)) << np.uint64(2 * bit + 1)
    return key


def _caps(problem: Problem) -> np.ndarray:
    """Largest integer value of each metric one cluster may hold."""
    caps = []
    for metric in problem.metrics:
        total = float(metric.values.sum())
        target = total * float(problem.fte.min()) / float(problem.fte.sum())
        band = max(2.0 * metric.tolerance * target, 1.0)
        caps.append(max(BAND_FRACTION * band, 1.0))
    return np.array(caps)


def cheapest_rep(problem: Problem) -> np.ndarray:
    """Rep row of every unit's cheapest allowed pair (the first of equals)."""
    _, first = first_minimum(problem.pair_cost, problem.pair_unit, problem.unit_start[:-1])
    return problem.pair_rep[first]


def cluster_units(
    problem: Problem,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    by_cheapest_rep: bool = True,
    max_clusters: int = MAX_CLUSTERS,
) -> np.ndarray:
    """Cluster of every unit: same hard class, metric profile, lock, cheapest rep and grid cell, consecutive
    along a Morton curve.

    Sharing the cheapest rep keeps the reps every member may go to (a cluster's pairs) close to each member's
    own: with candidate limits (each unit offered its nearest reps only), clusters across rep boundaries kept
    too few common reps and made the clustered LP infeasible at 1,000,000 accounts. Sharing the grid cell of
    :data:`optimizer.problem.COARSE_CELL_DEG` keeps the reps the automatic candidate limit offers a whole cell.
    Sharing the metric profile (:func:`optimizer.problem.metric_profile`) lets the LP choose units by their mix
    of metrics: mixed clusters left the 1,000,000-account LP 1.8 % short of one enterprise rep's potential rule.
    Each cluster is small against the balance window (:data:`BAND_FRACTION`); when that makes more than
    ``max_clusters`` clusters, the caps double until it does not (the LP's time grows faster than its
    size: 48,600 clusters took GLOP over 3 minutes). The cut is vectorised: a cluster ends where the running
    sum of any metric (or the member count) crosses a multiple of its cap.

    Parameters
    ----------
    problem
        The problem.
    lat, lon
        A point of every unit (degrees).
    by_cheapest_rep
        Keep each cluster within one cheapest rep's area (needed where units are offered their nearest reps
        only); without it, far fewer clusters.
    max_clusters
        Most clusters (unless the keys alone make more).

    Returns
    -------
    numpy.ndarray
        Cluster index per unit, ``0..k-1``.
    """
    n = problem.num_units
    cell_lat = np.floor(np.nan_to_num(lat) / COARSE_CELL_DEG).astype(np.int64)
    cell_lon = np.floor(np.nan_to_num(lon) / COARSE_CELL_DEG).astype(np.int64)
    profile = metric_profile([m.values for m in problem.metrics])
    nearest = cheapest_rep(problem) if by_cheapest_rep else np.zeros(n, dtype=np.int64)
    keys = (problem.unit_class, profile, problem.fixed_rep, nearest, cell_lat, cell_lon)
    order = np.lexsort((_morton(lat, lon), *reversed(keys)))
    group = np.zeros(n, dtype=bool)
    group[0] = True
    for key in keys:
        group[1:] |= key[order][1:] != key[order][:-1]
    cut = _Cut([m.values for m in problem.metrics], order, group)
    caps, members = _caps(problem), MAX_MEMBERS
    while True:
        new = cut.starts(caps, members)
        if int(new.sum()) <= max_clusters or int(new.sum()) == int(group.sum()):
            break
        caps, members = 2 * caps, 2 * members
    cluster = np.empty(n, dtype=np.int64)
    cluster[order] = np.cumsum(new) - 1
    return cluster


class _Cut:
    """Units in a sorted order, in groups (``group``: a group starts there), cut where loads cross caps."""

    def __init__(self, values: list[np.ndarray], order: np.ndarray, group: np.ndarray) -> None:
        self.group = group
        group_start = np.flatnonzero(group)[np.cumsum(group) - 1]  # first sorted position of each unit's group
        self.position = np.arange(len(order)) - group_start
        self.loads = []
        for value in values:
            running = np.cumsum(value[order].astype(np.float64))
            before = running - value[order]  # the group's load before each unit
            self.loads.append(before - np.concatenate([[0.0], running])[group_start])

    def starts(self, caps: np.ndarray, members: int) -> np.ndarray:
        """Where a cluster starts: a new group, or a metric's load (or the member count) crossing its cap."""
        new = self.group.copy()
        new[1:] |= (self.position[1:] // members) != (self.position[:-1] // members)
        for within, cap in zip(self.loads, caps, strict=True):
            bucket = np.floor(within / cap)
            new[1:] |= bucket[1:] != bucket[:-1]
        return new


def refine(problem: Problem, cluster: np.ndarray, coarse: Problem, x: np.ndarray) -> tuple[np.ndarray, Problem]:
    """Clusters for a second LP: each rep's integral clusters as one piece held by it, fractional ones cut finer.

    The clustered LP leaves at most one fractional cluster per balance row, but at 1,000,000 accounts those
    clusters are as large as a tolerance band (12,000 clusters for 500 reps' bands) and held half the units,
    so splitting them kept the plan far outside the tolerances. Here the units of every fractional cluster
    are cut again along the Morton curve with the caps of :data:`BAND_FRACTION` (no doubling), each piece
    offered only its parent's reps; everything the LP gave wholly to a rep becomes one piece offered only
    that rep. The LP over these pieces has the previous solution among its own, stays small (one column per
    held piece) and leaves fractional only pieces smaller than a band.

    Parameters
    ----------
    problem
        The problem over units.
    cluster, coarse, x
        Clusters, the clustered problem and its LP solution.

    Returns
    -------
    tuple
        ``(cluster, clustered problem)`` of the pieces; unchanged when no cluster is fractional.
    """
    fractional = np.zeros(coarse.num_units, dtype=bool)
    fractional[coarse.pair_unit[_fractional(x)]] = True
    if not fractional.any():
        return cluster, coarse
    main = _main_rep(coarse, x)
    split = fractional[cluster]
    lat, lon = problem.unit_latitude, problem.unit_longitude
    units = np.flatnonzero(split)
    morton = _morton(lat[units], lon[units]) if lat is not None and lon is not None else np.zeros(len(units))
    sorted_units = units[np.lexsort((morton, cluster[units]))]
    group = np.ones(len(sorted_units), dtype=bool)
    group[1:] = cluster[sorted_units][1:] != cluster[sorted_units][:-1]
    cut = _Cut([m.values for m in problem.metrics], sorted_units, group)
    pieces = np.cumsum(cut.starts(_caps(problem), MAX_MEMBERS)) - 1
    n_reps = problem.num_reps
    piece = np.where(split, -1, main[cluster])  # held pieces: the rep's row
    piece[sorted_units] = n_reps + pieces
    _, piece = np.unique(piece, return_inverse=True)
    refined = aggregate(problem, piece, cheapest=False)
    # offered pairs: a held piece its rep, a cut piece its parent's LP reps
    parent = np.full(refined.num_units, -1, dtype=np.int64)
    parent[piece[units]] = cluster[units]
    held = np.full(refined.num_units, -1, dtype=np.int64)
    held[piece[~split]] = main[cluster[~split]]
    on = (x > _LP_ZERO) & fractional[coarse.pair_unit]
    lp_pairs = np.unique(coarse.pair_unit[on] * n_reps + coarse.pair_rep[on])
    keep = np.where(
        parent[refined.pair_unit] >= 0,
        np.isin(parent[refined.pair_unit] * n_reps + refined.pair_rep, lp_pairs),
        held[refined.pair_unit] == refined.pair_rep,
    )
    return piece, refined.restrict_pairs(keep)


def aggregate(problem: Problem, cluster: np.ndarray, *, cheapest: bool = True) -> Problem:
    """The problem over clusters: metrics and pair costs summed, pairs allowed for every member.

    Parameters
    ----------
    problem
        A problem without contiguity or centre-based compactness.
    cluster
        Cluster index per unit (:func:`cluster_units`).
    cheapest
        Keep only each cluster's cheapest pairs and each rep's cheapest clusters (:func:`_cheapest`); else
        every pair allowed for all members.

    Returns
    -------
    Problem
        ``unit_ids`` are ``c<index>``; ``unit_of_account`` maps accounts to clusters.
    """
    k, n_reps = int(cluster.max()) + 1, problem.num_reps
    size = np.bincount(cluster, minlength=k)
    keys = cluster[problem.pair_unit] * n_reps + problem.pair_rep
    unique, inverse, counts = unique_keys(keys, k * n_reps)
    allowed = counts == size[unique // n_reps]

    def summed(values: np.ndarray) -> np.ndarray:
        return np.bincount(inverse, weights=values.astype(float), minlength=len(unique))[allowed]

    pair_unit, pair_rep = (unique // n_reps)[allowed], (unique % n_reps)[allowed]
    pair_cost = np.round(summed(problem.pair_cost)).astype(np.int64)
    compactness, penalty = summed(problem.pair_compactness), summed(problem.pair_penalty)
    continuity = None if problem.pair_continuity is None else summed(problem.pair_continuity)
    keep = _cheapest(pair_unit, pair_rep, pair_cost, problem, cluster, k) if cheapest else slice(None)
    first = np.zeros(k, dtype=np.int64)
    first[cluster[::-1]] = np.arange(problem.num_units)[::-1]  # a member of every cluster
    metrics = tuple(
        replace(m, values=np.bincount(cluster, weights=m.values, minlength=k).astype(np.int64),
                real=np.bincount(cluster, weights=m.real, minlength=k))
        for m in problem.metrics
    )  # fmt: skip
    current = np.full(k, -1, dtype=np.int64)
    has = problem.current_rep >= 0
    current[cluster[has]] = problem.current_rep[has]
    return replace(
        problem,
        unit_ids=np.array([f"c{i}" for i in range(k)], dtype=object),
        unit_of_account=cluster[problem.unit_of_account],
        metrics=metrics,
        pair_unit=pair_unit[keep],
        pair_rep=pair_rep[keep],
        pair_cost=pair_cost[keep],
        pair_compactness=compactness[keep],
        pair_penalty=penalty[keep],
        pair_continuity=None if continuity is None else continuity[keep],
        unit_class=problem.unit_class[first],
        fixed_rep=problem.fixed_rep[first],
        current_rep=current,
        unit_edges=np.zeros((0, 2), dtype=np.int64),
        unit_key=None,
        budgets=tuple(_aggregate_budget(b, cluster, k) for b in problem.budgets),
    )


def _cheapest(
    pair_unit: np.ndarray, pair_rep: np.ndarray, cost: np.ndarray, problem: Problem, cluster: np.ndarray, k: int
) -> np.ndarray:
    """Pairs the clustered problem keeps: every cluster's cheapest reps, every rep's cheapest clusters.

    Each cluster keeps its :data:`CLUSTER_CANDIDATES` cheapest reps and its members' current reps; each rep
    keeps its cheapest clusters (per unit of size) until they hold :data:`REP_COVER` times its mean load, so
    that a rep whose neighbours are all closer to every account (many reps in one metro) can still fill its
    territory.
    """
    keep = np.zeros(len(pair_unit), dtype=bool)
    keep[smallest_pairs(pair_unit, cost, CLUSTER_CANDIDATES)] = True
    if offered_few(problem):
        # units already offered few reps (a candidate limit): keep them all, since the costly far ones are the
        # reps a coarse plan added so that an over-full metro can hand accounts to another metro's reps
        keep[:] = True
    has = problem.current_rep >= 0
    if has.any():
        owned = np.unique(cluster[has] * problem.num_reps + problem.current_rep[has])
        keep |= np.isin(pair_unit * problem.num_reps + pair_rep, owned)
    # size of a cluster: its share of a mean rep load, summed over metrics
    size = np.zeros(k)
    for metric in problem.metrics:
        mean = max(float(metric.values.sum()) / problem.num_reps, 1.0)
        size += np.bincount(cluster, weights=metric.values.astype(np.float64), minlength=k) / mean
    per_size = cost / np.maximum(size[pair_unit], 1e-12)
    by_rep = np.lexsort((per_size, pair_rep))
    held = np.cumsum(size[pair_unit[by_rep]])
    rep_start = np.searchsorted(pair_rep[by_rep], np.arange(problem.num_reps))
    before = held - size[pair_unit[by_rep]] - np.concatenate([[0.0], held])[rep_start[pair_rep[by_rep]]]
    keep[by_rep[before < REP_COVER * len(problem.metrics)]] = True
    return keep


def solve_clustered_lp(problem: Problem, seconds: float | None = None) -> LpSolution | None:
    """:func:`optimizer.relaxation.solve_lp` of a clustered problem, by the method :data:`INTERIOR_LOAD_ROWS`
    picks for its size.

    Parameters
    ----------
    problem
        A clustered problem (:func:`aggregate`, :func:`refine`).
    seconds
        Time the solver may take (``None``: no limit).

    Returns
    -------
    LpSolution or None
        As :func:`~optimizer.relaxation.solve_lp`, which raises ``LpInfeasibleError`` when there is no solution.
    """
    interior = problem.num_reps * len(problem.metrics) >= INTERIOR_LOAD_ROWS
    return solve_lp(problem, seconds, interior=interior)


def offered_few(problem: Problem) -> bool:
    """Whether units are offered only a few reps each (a candidate limit), not every eligible rep."""
    return len(problem.pair_unit) <= 2 * CLUSTER_CANDIDATES * problem.num_units


def _aggregate_budget(budget: MoveBudget, cluster: np.ndarray, k: int) -> MoveBudget:
    """A move budget over clusters: what each cluster's members hold with each baseline rep, summed."""
    units, reps = budget.stay_key // budget.num_reps, budget.stay_key % budget.num_reps
    keys = cluster[units] * budget.num_reps + reps
    unique, inverse = np.unique(keys, return_inverse=True)
    return replace(
        budget,
        stay_key=unique,
        stay_weight=np.bincount(inverse, weights=budget.stay_weight, minlength=len(unique)).astype(np.int64),
        unit_total=np.bincount(cluster, weights=budget.unit_total, minlength=k).astype(np.int64),
    )


def _fractional(x: np.ndarray) -> np.ndarray:
    """Which LP values are neither 0 nor 1 (up to :data:`_LP_ZERO`)."""
    return (x > _LP_ZERO) & (x < 1 - _LP_ZERO)


def _main_rep(coarse: Problem, x: np.ndarray) -> np.ndarray:
    """Rep row of every cluster's largest LP value (the first of equals)."""
    _, first = first_minimum(-x, coarse.pair_unit, coarse.unit_start[:-1])
    return coarse.pair_rep[first]


def spread(problem: Problem, coarse: Problem, cluster: np.ndarray, x: np.ndarray) -> np.ndarray:
    """An assignment of the units from a fractional assignment of their clusters.

    A cluster the LP gives wholly to one rep sends every member there. The members of a fractional cluster go,
    largest first, to whichever of its reps leaves the smallest squared shortfall: a rep's target is its LP
    share of the cluster on every metric plus what the fractional clusters split before gave it too little or
    too much, errors counted in its tolerance bands. On one LP of 1,000,000 accounts whose fractional clusters
    held half the units, splitting by one summed size per cluster left 143 tolerance bands of violation over
    all reps and metrics (potential 1.9 bands off at one rep); this split left 84.

    Parameters
    ----------
    problem
        The problem over units.
    coarse
        The clustered problem (:func:`aggregate`).
    cluster
        Cluster of every unit.
    x
        Value of every pair of ``coarse`` (an LP solution).

    Returns
    -------
    numpy.ndarray
        Rep row of every unit (every pair allowed, since a cluster's pairs are allowed for all its members).
    """
    main = _main_rep(coarse, x)
    out = main[cluster]
    used = np.flatnonzero(_fractional(x))
    if not len(used):
        return out
    mean = np.array([max(float(m.values.sum()) / problem.num_reps, 1.0) for m in problem.metrics])
    values = np.stack([m.values.astype(float) for m in problem.metrics], axis=1) / mean  # (units, metrics)
    totals = np.stack([m.values.astype(float) for m in coarse.metrics], axis=1) / mean  # (clusters, metrics)
    carry = np.zeros((problem.num_reps, len(problem.metrics)))  # target minus given, clusters split so far
    # errors weigh in units of each rep's tolerance band around its LP load: a mean over all reps would let
    # small groups' loads (SMB reps' potential) drift by bands while others' matched exactly
    loads = np.zeros_like(carry)
    np.add.at(loads, coarse.pair_rep, x[:, None] * totals[coarse.pair_unit])
    tolerance = np.array([m.tolerance for m in problem.metrics])
    weight = 1.0 / np.maximum(tolerance * loads, 1e-9) ** 2
    members_of = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[members_of], np.arange(coarse.num_units + 1))
    by_cluster = np.argsort(coarse.pair_unit[used], kind="stable")
    for mine in np.split(used[by_cluster], np.flatnonzero(np.diff(coarse.pair_unit[used][by_cluster])) + 1):
        c, reps = int(coarse.pair_unit[mine[0]]), coarse.pair_rep[mine]
        rest = (x[mine] / x[mine].sum())[:, None] * totals[c] + carry[reps]  # (reps, metrics) still to give
        members = members_of[starts[c] : starts[c + 1]]
        member_values = values[members]
        for i in np.argsort(-member_values.sum(axis=1), kind="stable"):
            v = member_values[i]
            k = int(np.argmin((weight[reps] * v * (v - 2.0 * rest)).sum(axis=1)))  # |rest - v|^2 - |rest|^2
            rest[k] -= v
            out[members[i]] = reps[k]
        carry[reps] = rest
    return out


@dataclass(frozen=True)
class ClusteredStart:
    """A first plan of a very large problem and how it was made.

    Attributes
    ----------
    plan
        Rep row of every unit, within every tolerance; ``None`` when none was found in time.
    clusters, cluster_pairs
        Size of the clustered problem.
    tolerance_factor
        Share of each tolerance the clustered LP kept (headroom for the split), ``None`` when the LP failed.
    repair_moves_needed
        Whether the split plan broke a tolerance that :func:`optimizer.repair.repair` then restored.
    prices
        The load rows' duals of every clustered LP solved on the way (metrics x reps, cost units per integer
        metric unit): prices from which :func:`optimizer.lagrange.lagrangian_bound` starts.
    cluster
        Cluster of every unit in the clustered LP that gave the plan (before :func:`refine`), ``None`` when none
        did: where :func:`optimizer.disaggregation.disaggregation_rounds` start.
    round_seconds
        How long that LP, its refinement, split and repair took: what a round of
        :func:`optimizer.disaggregation.disaggregation_rounds` over the same clusters (an LP and a plan from it)
        is expected to take.
    """

    plan: np.ndarray | None
    clusters: int
    cluster_pairs: int
    tolerance_factor: float | None
    repair_moves_needed: bool
    prices: tuple[np.ndarray, ...] = ()
    cluster: np.ndarray | None = None
    round_seconds: float = 0.0


def deadline_or(deadline: float | None, seconds: float) -> float:
    """``deadline``, but at least ``seconds`` from now (``None``: exactly that)."""
    now = time.perf_counter()
    return now + seconds if deadline is None else max(deadline, now + seconds)


def clustered_start(
    problem: Problem, deadline: float | None, *, on_clusters: Callable[[np.ndarray], None] | None = None
) -> ClusteredStart:
    """A plan within tolerance from the clustered LP, split back to units and repaired.

    The LP keeps :data:`LP_TOLERANCE_FACTORS` of each tolerance in turn, leaving room for the split: the next
    factor when the split plan's repair fails, a looser one only when the LP has no solution. If no clustered LP
    is feasible (clusters too coarse for the rules), the plan that keeps every unit with its current rep (else
    its cheapest) is repaired instead.

    Parameters
    ----------
    problem
        A problem with unit points (``unit_latitude``), without contiguity or centre-based compactness.
    deadline
        ``time.perf_counter()`` value by which the repair should finish (it always gets
        :data:`REPAIR_SECONDS`).
    on_clusters
        Called with the first clustering (cluster of every unit) as soon as it is made, before any LP: work that
        starts from it (:func:`optimizer.disaggregation.pdlp_price_rounds` on a second thread) overlaps the LPs.

    Returns
    -------
    ClusteredStart
    """
    from optimizer.repair import repair, violation

    if problem.unit_latitude is None or problem.unit_longitude is None:
        raise ValueError("clustering needs a point of every unit")
    # few large clusters first (an LP of seconds); clusters within one cheapest rep's area when units are offered
    # their nearest reps only (large clusters then share too few reps: no LP solution at 1,000,000 accounts) or
    # when the large clusters' LP has no solution
    tries = [(True, MAX_CLUSTERS)] if offered_few(problem) else [(False, FIRST_CLUSTERS), (True, MAX_CLUSTERS)]
    start, used, prices, base, round_seconds = None, None, [], None, 0.0
    repaired: np.ndarray | None = None
    broken = False
    for by_cheapest_rep, most in tries:
        cluster = cluster_units(
            problem, problem.unit_latitude, problem.unit_longitude, by_cheapest_rep=by_cheapest_rep, max_clusters=most
        )
        coarse = aggregate(problem, cluster)
        if on_clusters is not None:
            on_clusters(cluster)
            on_clusters = None
        logger.info(
            "clustered %d units into %d clusters (%d pairs)",
            problem.num_units,
            coarse.num_units,
            len(coarse.pair_unit),
        )
        infeasible_at = 0.0  # the LP has no solution at this share of the tolerances, nor at any smaller one
        for i, factor in enumerate(LP_TOLERANCE_FACTORS):
            if factor <= infeasible_at:
                continue
            began = time.perf_counter()
            try:
                lp = solve_clustered_lp(shrink_tolerances(coarse, factor))
            except LpInfeasibleError:
                logger.info("clustered LP infeasible with %.0f %% of each tolerance", 100 * factor)
                infeasible_at = max(infeasible_at, factor)
                continue
            if lp is None:
                continue
            x, pieces_of, pieces = lp.x, cluster, coarse
            prices.append(lp.link_duals)
            for _ in range(REFINE_ROUNDS):
                cut, refined = refine(problem, pieces_of, pieces, x)
                if refined is pieces:
                    break
                finer = solve_clustered_lp(shrink_tolerances(refined, factor))  # the last solution is one of its own
                if finer is None:
                    break
                logger.info("refined the clustered LP's fractional clusters: %d pieces", refined.num_units)
                pieces_of, pieces, x = cut, refined, finer.x
            start, used, base, clustered = spread(problem, pieces, pieces_of, x), factor, cluster, pieces
            more = [f for f in LP_TOLERANCE_FACTORS[i + 1 :] if f > infeasible_at]
            broken = bool(violation(problem, start) > 0)
            if not broken:
                repaired, round_seconds = start, time.perf_counter() - began
                break
            # with a factor left to try: a short repair, then that factor if it fails
            until = time.perf_counter() + EARLY_REPAIR_SHARE * REPAIR_SECONDS if more else None
            repaired = repair(problem, start, deadline=until or deadline_or(deadline, REPAIR_SECONDS))
            round_seconds = time.perf_counter() - began
            if repaired is not None or not more:
                break
            logger.info("the split plan at %.0f %% of each tolerance could not be repaired; trying %.0f %%",
                        100 * factor, 100 * more[0])  # fmt: skip
        if start is not None:
            break
    if start is None:
        clustered = coarse
        # every unit with its current rep where allowed, else its cheapest (greedy_assignment's first step,
        # without its per-pair Python set, which took gigabytes at 1,000,000 units)
        start = cheapest_rep(problem)
        keep = problem.current_rep >= 0
        keep[keep] = problem.pairs_of(np.where(keep, problem.current_rep, 0))[keep] >= 0
        start[keep] = problem.current_rep[keep]
        broken = bool(violation(problem, start) > 0)
        repaired = repair(problem, start, deadline=deadline_or(deadline, REPAIR_SECONDS)) if broken else start
    return ClusteredStart(
        plan=repaired,
        clusters=clustered.num_units,
        cluster_pairs=len(clustered.pair_unit),
        tolerance_factor=used,
        repair_moves_needed=broken,
        prices=tuple(p for p in prices if p is not None),
        cluster=base,
        round_seconds=round_seconds,
    )
