"""Territories of the smallest largest diameter: threshold models in CP-SAT, searched by large neighbourhoods.

A territory's diameter is the largest distance between two of its units; the
objective is the largest diameter over all territories (``objective.compactness_measure:
diameter``; the delivery territory design benchmark's objective).

The building block is a CP-SAT *threshold model*: can the units go to
territories within every hard rule of the :class:`~optimizer.problem.Problem`
(balance, locks, hard segment rules, move budgets, contiguity: the engine's own
:func:`optimizer.model.build_cp_model` without objective) so that no two units
farther apart than ``D`` share a territory? Per territory it adds the
implications ``x[i, t] => not x[j, t]`` for every pair ``d(i, j) > D``. What
makes it small is symmetry breaking that also prunes: units pairwise farther
apart than ``D`` (a greedy clique of the conflict graph) must lie in distinct
territories, so when territories are interchangeable each is fixed to its own
territory and every unit farther than ``D`` from a territory's fixed unit loses
that territory (on the DTDP instances each unit keeps 3-4 of 10). Locked units
prune the same way. The optimum is one of the pairwise distances, so ``D``
runs over those levels.

The search:

1. a first plan: the LP start (:func:`optimizer.relaxation.lp_start`) of a
   balanced assignment to ``k`` medoids, costing squared distances;
2. threshold large-neighbourhood search: take a target ``D`` below the
   largest diameter, free a territory above it and its nearest 3 territories,
   and solve the threshold model on their units (the rest stays); accept when
   the largest diameter or the number of territories above the target falls.
   The target step starts at 1 %, doubles after each neighbourhood that
   brings every territory within it, up to 2 % or, far above the lower
   bound, 0.3 times the relative gap (:func:`step_cap`: 15 % at twice the
   bound). A neighbourhood that runs out of time, or proven-infeasible
   neighbourhoods while the step is above 1 %, bring the target closer;
   proven-infeasible neighbourhoods at a 1 % step grow (4, 6, 8, all
   territories); when the target is one level away, a few neighbourhoods are
   re-drawn at the same diameter (CP-SAT without hint gives another split)
   and the search goes on;
3. the last 15 % of the time: models of the whole problem just below the
   best plan (better plans, or the proof that it is optimal).

With two workers, two disjoint neighbourhoods are solved side by side, one
CP-SAT worker each, and both changes are kept when they help: on four DTDP
instances at 60 s under heavy machine load the mean largest diameter went
from 44.30 to 44.15 (two better, two worse: within the noise of a shared
machine, kept because a second CP-SAT worker adds little to such small
feasibility models).

The wide first steps: the LP start is far from good (largest diameter 89 on
DTDP ``planar600_G4``, best known 42.7; 60 on ``planar500_G2``), and 1-2 %
steps took most of a loaded run to come down from it (600_G4: 89 to 46.5 in
17 s of a 30 s run). A wide step that proved its neighbourhoods infeasible
used to grow them to the whole problem, one model that ran out of time; a
closer target first avoids that. Measured with a fixed deterministic CP-SAT
budget (``work_limit`` 6 s, about what a 60 s run gets on the loaded shared
machine, so the comparison does not depend on the load) on 7 DTDP instances
x 2 seeds: the ratio to best known summed over the 14 runs fell from 14.98
(worst 1.54) to 14.13 (worst 1.046); 4 territories per neighbourhood beat 5
(14.30) and 6 (14.37); a second neighbourhood around the same territory
instead of a disjoint one was worse (14.26). At 60 s wall the change finds
the same plans sooner (planar600_G5 at 10.5 s instead of 59.7 s); at 20 s wall
(2 seeds) it was a draw, so what is left under load is runs that stall at a
local optimum of these neighbourhoods. The full benchmark at 60 s with a load
average of 1.7-3.0 reached the best known within 3 % on all 20 instances
(mean ratio 1.0004, 14 proven optimal; ``benchmarks/README.md``).

Chosen by measurement on DTDP ``planar500_G0`` (500 units, 10 territories,
±5 % on three activities; shared 2-core machine): an LNS re-splitting the
territory of largest diameter with one neighbour (binary search of
2-territory CP-SAT models) stalled at 46.5 in 60 s; a bisection on ``D`` with
whole-problem models found 43.0 in 9 s and proved 42.5 infeasible in 8 s on a
quiet machine, but under load its probes ran out of time (no plan in 60 s),
because CP-SAT's presolve alone took 4-12 s per whole model; the threshold LNS
reaches 42.7-43.9 in 60 s under the same load (best known 42.555). CP-SAT's
presolve is off for models of more than 300 free units: merging their
conflict clauses into cliques cost more than it saved.

Lower bounds, valid for any plan: ``k + 1`` units pairwise farther apart than
``m`` cannot fit in ``k`` territories, so the optimum is at least the smallest
pairwise distance of such a set (greedy cliques); every unit's territory lies
within the diameter of it and must reach its balance minimum (the radius
around each unit that holds it); and every threshold whose whole-problem model
CP-SAT proves infeasible.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from optimizer.lns import reproducible
from optimizer.model import build_cp_model
from optimizer.problem import MetricData, Problem, load_bounds
from optimizer.relaxation import LpInfeasibleError, lp_start
from optimizer.result import Result, Status
from optimizer.score import score, territory_diameters
from optimizer.settings import ProgressCallback, ProgressEvent, SolveSettings

logger = logging.getLogger(__name__)

#: Relative slack when comparing distances (distances are floats; levels are exact pair distances).
EPS = 1e-9
#: Randomised greedy starts per clique search.
CLIQUE_TRIES = 40
#: Share of the time limit for the first plan (balanced assignment to spread-out medoids).
INITIAL_SHARE = 0.05
#: Share of the time limit kept for the final whole-problem probe just below the best plan.
FINAL_SHARE = 0.15
#: Solve two disjoint neighbourhoods side by side (one CP-SAT worker each) when there are two workers.
PARALLEL = True
#: Models with more free units than this skip CP-SAT's presolve.
PRESOLVE_MAX_UNITS = 300
#: Deterministic work charged per probe besides CP-SAT's own (keeps reproducible runs finite).
PROBE_WORK = 0.01
#: Shortest time limit of a probe, seconds.
MIN_PROBE_SECONDS = 1.0
#: Territories re-split together in one neighbourhood.
NEIGHBOURHOOD = 4
#: Randomness in picking neighbours, as a share of the largest diameter added to their distance.
NEIGHBOUR_NOISE = 0.15
#: Time limit of one neighbourhood model, seconds.
SUB_PROBE_SECONDS = 3.0
#: First target below the largest diameter, as a share of it (grows on success, halves after failures).
TARGET_STEP = 0.01
MAX_TARGET_STEP = 0.02
#: Factor by which the target step grows after a neighbourhood that brought every territory within the target.
TARGET_GROWTH = 2.0
#: Far above the lower bound the step may grow to this share of the relative gap between them (fast first descent).
GAP_STEP = 0.3
#: Below this step the search re-draws ``SHAKES`` neighbourhoods at the same largest diameter and starts over.
MIN_TARGET_STEP = 0.002
SHAKES = 3
#: Failed neighbourhoods in a row before they grow (by this many territories), then before the target moves closer.
PATIENCE = 4
NEIGHBOURHOOD_GROWTH = 2


@dataclass(frozen=True)
class Probe:
    """One threshold tried: ``outcome`` is ``plan``, ``infeasible`` or ``unknown`` (time ran out)."""

    threshold: float
    outcome: str
    seconds: float
    diameter: float | None = None
    fixed_units: int = 0
    pairs: int = 0


@dataclass
class _Search:
    """State of the threshold search."""

    levels: np.ndarray
    lower: float
    best: np.ndarray | None = None
    best_diameter: float = math.inf
    first_seconds: float | None = None
    best_seconds: float | None = None
    probes: list[Probe] = field(default_factory=list)


def far_clique(
    distance: np.ndarray, threshold: float, size: int, rng: np.random.Generator, tries: int = CLIQUE_TRIES
) -> np.ndarray:
    """Units pairwise farther apart than ``threshold``: a greedy clique of the conflict graph, at most ``size``.

    Among cliques of the largest size found, the one with the fewest units within ``threshold`` of its
    members is kept: fixing it leaves the fewest unit-territory pairs.

    Parameters
    ----------
    distance
        Unit-to-unit distances.
    threshold
        Pairs strictly farther apart than this conflict.
    size
        Stop growing a clique at this size.
    rng
        Random generator of the randomised starts.
    tries
        Greedy starts (the first from the unit farthest from all others).

    Returns
    -------
    numpy.ndarray
        Unit rows of the clique.
    """
    n = len(distance)
    far = distance > threshold * (1 + EPS)
    best: tuple[tuple[int, int], list[int]] | None = None
    first = int(distance.sum(axis=0).argmax())
    for attempt in range(tries):
        clique = [first if attempt == 0 else int(rng.integers(n))]
        candidates = far[clique[0]].copy()
        while candidates.any() and len(clique) < size:
            idx = np.flatnonzero(candidates)
            # the candidate conflicting with most other candidates keeps the clique growing
            degree = far[np.ix_(idx, idx)].sum(axis=1) + rng.random(len(idx))
            pick = int(idx[degree.argmax()]) if rng.random() < 0.8 else int(rng.choice(idx))
            clique.append(pick)
            candidates &= far[pick]
        key = (len(clique), -int((~far[clique]).sum()))
        if best is None or key > best[0]:
            best = (key, clique)
    assert best is not None
    return np.array(best[1], dtype=np.int64)


def clique_bound(distance: np.ndarray, num_reps: int, rng: np.random.Generator) -> float:
    """Lower bound on the largest diameter: the best ``num_reps + 1`` units pairwise far apart found.

    Two of ``k + 1`` units share one of ``k`` territories, so every plan's largest diameter is at least
    the smallest pairwise distance among them.
    """
    n = len(distance)
    if n <= num_reps:
        return 0.0
    low, high, bound = 0.0, float(distance.max()), 0.0
    for _ in range(14):
        mid = 0.5 * (low + high)
        clique = far_clique(distance, mid, num_reps + 1, rng, tries=CLIQUE_TRIES // 2)
        if len(clique) > num_reps:
            sub = distance[np.ix_(clique, clique)]
            bound = max(bound, float(sub[np.triu_indices(len(clique), 1)].min()))
            low = max(mid, bound)
        else:
            high = mid
    return bound


def radius_bound(distance: np.ndarray, values: np.ndarray, minimum: np.ndarray) -> float:
    """Lower bound: every unit's territory lies within the diameter of it and must hold its balance minimum.

    Parameters
    ----------
    distance
        Unit-to-unit distances, ``(n, n)``.
    values
        ``(metrics, n)`` integer values.
    minimum
        ``(metrics, n)``: the smallest load any territory the unit may join must reach, per metric.

    Returns
    -------
    float
        The largest, over units, of the radius around the unit that first holds every minimum.
    """
    order = np.argsort(distance, axis=1, kind="stable")
    reached = np.ones(distance.shape, dtype=bool)
    for m in range(values.shape[0]):
        reached &= np.cumsum(values[m][order], axis=1) >= minimum[m][:, None]
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), distance.shape[1] - 1)
    rows = np.arange(len(distance))
    return float(distance[rows, order[rows, first]].max()) if len(distance) else 0.0


def check_supported(problem: Problem) -> None:
    """Refuse what the diameter search does not model.

    Raises
    ------
    ValueError
        The problem has no unit distances for diameters.
    """
    if problem.diameter_distance is None:
        raise ValueError("the problem has no unit distances: build it with objective.compactness_measure: diameter")
    if problem.diameter_distance.shape != (problem.num_units, problem.num_units):
        raise ValueError(
            f"diameter_distance must be ({problem.num_units}, {problem.num_units}), "
            f"got {problem.diameter_distance.shape}"
        )


def _lower_bound(problem: Problem, rng: np.random.Generator) -> float:
    """Largest of the clique and radius bounds."""
    distance = problem.diameter_distance
    assert distance is not None
    bound = clique_bound(distance, problem.num_reps, rng)
    ungrouped = [m for m in problem.metrics if m.lo is not None]
    if ungrouped:
        allowed = np.zeros((problem.num_units, problem.num_reps), dtype=bool)
        allowed[problem.pair_unit, problem.pair_rep] = True
        values = np.array([m.values for m in ungrouped])
        minimum = np.array(
            [np.where(allowed, np.asarray(m.lo)[None, :], np.iinfo(np.int64).max).min(axis=1) for m in ungrouped]
        )
        bound = max(bound, radius_bound(distance, values, minimum))
    return bound


_CHARGE_LOCK = threading.Lock()


@dataclass
class _Budget:
    """Time left: wall-clock seconds, or without a time limit CP-SAT's deterministic time (reproducible)."""

    limit: float
    wall: bool
    start: float = field(default_factory=time.perf_counter)
    work: float = 0.0

    def used(self) -> float:
        return time.perf_counter() - self.start if self.wall else self.work

    def left(self) -> float:
        return self.limit - self.used()

    def configure(self, params: Any, seconds: float, settings: SolveSettings) -> None:
        if self.wall:
            params.max_time_in_seconds = max(seconds, 0.05)
        else:
            reproducible(params, max(seconds, 0.05))

    def charge(self, solver: cp_model.CpSolver | None) -> None:
        # every probe costs a little, so that a loop of instant refusals still ends
        with _CHARGE_LOCK:
            self.work += PROBE_WORK + (0.0 if solver is None else solver.deterministic_time)


def _territory_classes(problem: Problem) -> np.ndarray:
    """A class label per territory: territories of one class are interchangeable (same pairs, bounds and FTE)."""
    if problem.budgets:  # moves are counted against each rep's own baseline
        return np.arange(problem.num_reps)
    allowed = np.zeros((problem.num_reps, problem.num_units), dtype=bool)
    allowed[problem.pair_rep, problem.pair_unit] = True
    keys: dict[tuple[Any, ...], int] = {}
    labels = []
    for r in range(problem.num_reps):
        bounds = tuple(
            (int(m.groups[r]), None if m.lo is None else int(m.lo[r]), None if m.hi is None else int(m.hi[r]))
            for m in problem.metrics
        )
        labels.append(keys.setdefault((allowed[r].tobytes(), problem.fte_exact[r], bounds), len(keys)))
    return np.array(labels, dtype=np.int64)


def _probe(
    problem: Problem,
    threshold: float,
    seconds: float,
    settings: SolveSettings,
    rng: np.random.Generator,
    stop: Any,
    *,
    budget: _Budget,
    classes: np.ndarray,
    hint: np.ndarray | None = None,
    reps: np.ndarray | None = None,
    fresh: bool = False,
) -> tuple[str, np.ndarray | None, Probe]:
    """One CP-SAT feasibility model: every territory of ``reps`` (all by default) within ``threshold``.

    With ``reps``, only the units of these territories in ``hint`` move, among these territories; every
    other unit stays where ``hint`` has it. Returns the outcome, the plan (if any) and a record.
    """
    clock = time.perf_counter()
    distance = problem.diameter_distance
    assert distance is not None
    n, k = problem.num_units, problem.num_reps
    limit = threshold * (1 + EPS)
    open_reps = np.ones(k, dtype=bool) if reps is None else np.asarray(reps, dtype=bool)
    free = np.ones(n, dtype=bool) if reps is None or hint is None else open_reps[hint]
    chosen = np.flatnonzero(open_reps)

    # -------------------------------------------- fixed units: locks and seeds
    fixed_rep = np.full(n, -1, dtype=np.int64)
    counts = np.bincount(problem.pair_unit, minlength=n)
    single = np.flatnonzero(counts == 1)
    fixed_rep[single] = problem.pair_rep[np.searchsorted(problem.pair_unit, single)]
    fixed_rep[~free] = -1
    relabel = np.arange(k)
    if len(set(classes[chosen].tolist())) == 1 and not (fixed_rep >= 0).any():
        # interchangeable territories: units pairwise farther apart than the threshold go one to each
        inside = np.flatnonzero(free)
        seeds = inside[far_clique(distance[np.ix_(inside, inside)], threshold, len(chosen) + 1, rng)]
        if len(seeds) > len(chosen):
            budget.charge(None)
            return "infeasible", None, Probe(threshold, "infeasible", time.perf_counter() - clock)
        fixed_rep[seeds] = chosen[: len(seeds)]
        if hint is not None:
            # name the hint's territories after the seeds they hold, so the hint agrees with the fixed seeds
            mapping: dict[int, int] = {}
            for label, unit in zip(chosen, seeds, strict=False):
                mapping.setdefault(int(hint[unit]), int(label))
            spare = [int(t) for t in chosen if t not in mapping.values()]
            for r in chosen:
                if int(r) not in mapping:
                    mapping[int(r)] = spare.pop(0)
            for r, label in mapping.items():
                relabel[r] = label
    # ---------------------------------------------- pairs left at threshold
    keep = np.ones(len(problem.pair_unit), dtype=bool)
    anchored = np.flatnonzero(fixed_rep >= 0)
    for r in chosen:
        anchors = anchored[fixed_rep[anchored] == r]
        if len(anchors):
            too_far = (distance[anchors] > limit).any(axis=0)
            keep &= ~((problem.pair_rep == r) & too_far[problem.pair_unit])
    keep &= (fixed_rep[problem.pair_unit] < 0) | (fixed_rep[problem.pair_unit] == problem.pair_rep)
    keep &= ~free[problem.pair_unit] | open_reps[problem.pair_rep]
    if np.bincount(problem.pair_unit[keep & free[problem.pair_unit]], minlength=n)[free].min(initial=1) == 0:
        budget.charge(None)
        record = Probe(threshold, "infeasible", time.perf_counter() - clock, fixed_units=len(anchored))
        return "infeasible", None, record
    sub = problem.restrict_pairs(keep)
    model_hint = None if hint is None else relabel[hint]
    if reps is None:
        parts = build_cp_model(sub, objective=False, hint=None if fresh else model_hint)
    else:
        parts = build_cp_model(
            sub, objective=False, hint=None if fresh else model_hint, free=free, base=model_hint, reps=open_reps
        )
    model, x = parts.model, parts.x
    pair_unit, pair_rep = sub.pair_unit[parts.pairs], sub.pair_rep[parts.pairs]

    # ------------------------------------------------ conflict implications
    pair_of = np.full((n, k), -1, dtype=np.int64)
    pair_of[pair_unit, pair_rep] = np.arange(len(pair_unit))
    for r in chosen:
        members = np.flatnonzero(pair_of[:, r] >= 0)
        if len(members) < 2:
            continue
        conflict = np.triu(distance[np.ix_(members, members)] > limit, 1)
        for a in np.flatnonzero(conflict.any(axis=1)):
            others = members[np.flatnonzero(conflict[a])]
            model.add_bool_and([~x[p] for p in pair_of[others, r]]).only_enforce_if(x[pair_of[members[a], r]])

    solver = cp_model.CpSolver()
    params = solver.parameters
    params.num_workers = settings.num_workers  # before configure: a reproducible budget uses one worker
    budget.configure(params, seconds - (time.perf_counter() - clock if budget.wall else 0.0), settings)
    params.random_seed = int(rng.integers(2**31 - 1))
    params.catch_sigint_signal = False
    # on large models presolve took most of a probe (clique merging of the conflict clauses: 4-12 s on 600 units
    # under load); the plain clause model finds plans sooner (DTDP planar600_G5, D = 46.5: 5-24 s instead of none
    # in 30 s); small neighbourhoods keep it
    params.cp_model_presolve = int(free.sum()) <= PRESOLVE_MAX_UNITS
    if stop is not None:
        stop.solver = solver
    code = solver.solve(model)
    budget.charge(solver)
    if stop is not None:
        stop.solver = None
    if code == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the diameter model as invalid (engine bug): {model.validate()}")
    info = {"fixed_units": len(anchored), "pairs": len(x)}
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        taken = np.array([solver.boolean_value(v) for v in x], dtype=bool)
        unit_rep = np.full(n, -1, dtype=np.int64) if model_hint is None else model_hint.copy()
        unit_rep[pair_unit[taken]] = pair_rep[taken]
        diameter = float(territory_diameters(distance, unit_rep, k).max())
        return "plan", unit_rep, Probe(threshold, "plan", time.perf_counter() - clock, diameter, **info)
    outcome = "infeasible" if code == cp_model.INFEASIBLE else "unknown"
    return outcome, None, Probe(threshold, outcome, time.perf_counter() - clock, **info)


def _is_plan(problem: Problem, unit_rep: np.ndarray | None) -> bool:
    return unit_rep is not None and len(unit_rep) == problem.num_units and score(problem, unit_rep).feasible


def _initial_plan(problem: Problem, seconds: float | None, settings: SolveSettings) -> np.ndarray | None:
    """A first plan: balanced assignment to ``k`` spread-out medoids minimising squared distances (CP-SAT)."""
    distance = problem.diameter_distance
    assert distance is not None
    n, k = problem.num_units, problem.num_reps
    medoids = [int(distance.sum(axis=0).argmax())]
    while len(medoids) < min(k, n):
        medoids.append(int(distance[medoids].min(axis=0).argmax()))
    medoids_arr = np.array(medoids)
    for _ in range(20):  # k-medoids (alternating): tighter cells than the farthest-point seeds
        nearest = distance[medoids_arr].argmin(axis=0)
        update = medoids_arr.copy()
        for t in range(len(medoids_arr)):
            members = np.flatnonzero(nearest == t)
            if len(members):
                update[t] = members[distance[np.ix_(members, members)].sum(axis=0).argmin()]
        if (update == medoids_arr).all():
            break
        medoids_arr = update
    squared = distance[medoids_arr][problem.pair_rep % len(medoids_arr), problem.pair_unit] ** 2
    top = float(squared.max()) if len(squared) else 1.0
    costed = replace(problem, pair_cost=np.round(squared / max(top, EPS) * 10_000).astype(np.int64))
    try:
        start, _ = lp_start(costed, seconds=seconds, seed=settings.seed, workers=settings.num_workers)
    except LpInfeasibleError:
        return None
    return start


def _neighbours(distance: np.ndarray, unit_rep: np.ndarray, k: int) -> np.ndarray:
    """``gap[s, t]``: the shortest distance between a unit of territory ``s`` and one of ``t``."""
    near = np.full((len(unit_rep), k), np.inf)
    for t in range(k):
        members = np.flatnonzero(unit_rep == t)
        if len(members):
            near[:, t] = distance[:, members].min(axis=1)
    gap = np.full((k, k), np.inf)
    for s in range(k):
        members = np.flatnonzero(unit_rep == s)
        if len(members):
            gap[s] = near[members].min(axis=0)
    np.fill_diagonal(gap, np.inf)
    return gap


def solve_diameter(
    problem: Problem,
    settings: SolveSettings | None = None,
    progress: ProgressCallback | None = None,
    hint: np.ndarray | None = None,
    stop: Any = None,
) -> Result:
    """Minimise the largest territory diameter: threshold search with CP-SAT feasibility models.

    Parameters
    ----------
    problem
        With ``diameter_distance`` (``objective.compactness_measure: diameter``, or :func:`diameter_problem`).
    settings
        Time limit, seed, workers (``workers=2`` uses both cores of a 2-core machine), relative gap.
    progress
        Called with each better plan or bound (objective and bound in distance units).
    hint
        A plan to start from; used when it keeps every hard rule.
    stop
        The engine's Ctrl-C state (``event`` and ``solver`` attributes), or ``None``.

    Returns
    -------
    Result
        ``objective`` is the largest diameter, ``bound`` the best lower bound proven; status OPTIMAL when
        they meet, FEASIBLE otherwise, UNKNOWN without a plan. ``statistics`` lists the probes.

    Raises
    ------
    InfeasibleError
        No plan keeps the balance and hard rules even with no limit on diameters.
    """
    from optimizer.diagnose import explain_infeasible

    settings = settings or SolveSettings()
    check_supported(problem)
    clock = time.perf_counter()
    wall = settings.time_limit_s is not None
    limit = settings.time_limit_s if settings.time_limit_s is not None else settings.work_limit
    budget = _Budget(limit=limit, wall=wall)
    event: threading.Event | None = getattr(stop, "event", None)
    rng = np.random.default_rng(settings.seed)
    distance = problem.diameter_distance
    assert distance is not None
    k = problem.num_reps
    classes = _territory_classes(problem)
    if problem.pair_penalty.any() or (problem.pair_continuity is not None and problem.pair_continuity.any()):
        logger.warning(
            "compactness_measure: diameter minimises the largest diameter only: soft segment-rule and "
            "continuity penalties are not part of it (hard rules, locks and move budgets still hold)"
        )
    levels = np.unique(distance[np.triu_indices(problem.num_units, 1)])
    search = _Search(levels=levels if len(levels) else np.zeros(1), lower=_lower_bound(problem, rng))
    logger.info(
        "diameter search: %d units, %d territories in %d interchangeable classes, lower bound %.3f after %.1fs",
        problem.num_units,
        k,
        len(set(classes.tolist())),
        search.lower,
        time.perf_counter() - clock,
    )

    def emit() -> None:
        if progress is not None:
            progress(
                ProgressEvent(
                    seconds=time.perf_counter() - clock,
                    objective=None if search.best is None else search.best_diameter,
                    bound=search.lower,
                    gap=_gap(search.best_diameter, search.lower) if search.best is not None else None,
                    solutions=sum(p.outcome == "plan" for p in search.probes),
                )
            )

    def accept(unit_rep: np.ndarray) -> None:
        diameter = float(territory_diameters(distance, unit_rep, k).max())
        if diameter < search.best_diameter - EPS:
            search.best, search.best_diameter = unit_rep, diameter
            search.best_seconds = time.perf_counter() - clock
            if search.first_seconds is None:
                search.first_seconds = search.best_seconds
            emit()

    def stopped(reserve: float = 0.0) -> bool:
        return (event is not None and event.is_set()) or budget.left() < reserve

    def done() -> bool:
        below = search.levels[(search.levels >= search.lower * (1 - EPS)) & (search.levels < search.best_diameter)]
        return len(below) == 0 or _gap(search.best_diameter, search.lower) <= settings.relative_gap

    def whole(threshold: float, start: np.ndarray | None) -> tuple[str, np.ndarray | None]:
        """One model of the whole problem at ``threshold`` with the time left."""
        outcome, unit_rep, record = _probe(
            problem, threshold, budget.left(), settings, rng, stop, budget=budget, classes=classes, hint=start
        )
        search.probes.append(record)
        return outcome, unit_rep

    if hint is not None and _is_plan(problem, hint):
        accept(np.asarray(hint, dtype=np.int64))
    if search.best is None:
        start = _initial_plan(problem, max(1.0, INITIAL_SHARE * limit) if wall else None, settings)
        if start is None:
            # no balanced plan at all in time: a probe without any diameter limit settles it
            outcome, start = whole(float(search.levels[-1]), None)
            if outcome == "infeasible":
                raise explain_infeasible(problem, settings)
        if start is not None:
            accept(start)
    if search.best is not None:
        _improve(problem, search, settings, rng, stop, classes, budget, FINAL_SHARE * limit, accept, done)
    # last: models of the whole problem just below the best plan (better plans, or a proof of optimality)
    while search.best is not None and not done() and not stopped(reserve=MIN_PROBE_SECONDS):
        threshold = float(search.levels[np.searchsorted(search.levels, search.best_diameter * (1 - EPS)) - 1])
        if threshold < search.lower * (1 - EPS):
            break
        outcome, unit_rep = whole(threshold, search.best)
        if outcome == "plan" and unit_rep is not None:
            accept(unit_rep)
            continue
        if outcome == "infeasible":
            search.lower = search.best_diameter
            emit()
        break
    return _result(problem, search, time.perf_counter() - clock, event)


def _improve(
    problem: Problem,
    search: _Search,
    settings: SolveSettings,
    rng: np.random.Generator,
    stop: Any,
    classes: np.ndarray,
    budget: _Budget,
    reserve: float,
    accept: Any,
    done: Any,
) -> None:
    """Threshold large-neighbourhood search: re-split the territories above a target with some neighbours."""
    distance = problem.diameter_distance
    assert distance is not None and search.best is not None
    k = problem.num_reps
    current = search.best.copy()
    diam = territory_diameters(distance, current, k)
    step = TARGET_STEP
    failures = 0
    size = min(k, NEIGHBOURHOOD)
    event: threading.Event | None = getattr(stop, "event", None)
    while not (event is not None and event.is_set()) and budget.left() > reserve + 0.2 and not done():
        top = float(diam.max())
        candidates = search.levels[(search.levels < top * (1 - EPS)) & (search.levels >= search.lower * (1 - EPS))]
        if len(candidates) == 0:
            return
        step = min(step, step_cap(top, search.lower))
        target = float(candidates[max(np.searchsorted(candidates, top * (1 - step), side="right") - 1, 0)])
        bad = np.flatnonzero(diam > target * (1 + EPS))
        gap = _neighbours(distance, current, k)
        first = _pick(int(rng.choice(bad)), size, gap, np.zeros(k, dtype=bool), rng, top)
        plans = [first]
        if PARALLEL and settings.num_workers > 1 and k - size >= size:
            # a second, disjoint neighbourhood solved side by side (one worker each): both can be kept
            others = [t for t in bad.tolist() if not first[t]] or [t for t in range(k) if not first[t]]
            plans.append(_pick(int(rng.choice(others)), size, gap, first, rng, top))
        seconds = min(SUB_PROBE_SECONDS * size / NEIGHBOURHOOD, max(budget.left() - reserve, 0.1))
        results = _probe_many(problem, target, seconds, settings, rng, stop, budget, classes, current, plans)
        outcomes = [outcome for outcome, _, _ in results]
        search.probes.extend(record for _, _, record in results)
        if outcomes[0] == "infeasible" and first.all():
            # the whole problem was free: no plan has every territory within the target
            search.lower = max(search.lower, float(search.levels[np.searchsorted(search.levels, target, "right")]))
        candidates_plans = [plan for _, plan, _ in results if plan is not None]
        if len(candidates_plans) == 2:
            merged = current.copy()
            for reps_mask, plan in zip(plans, candidates_plans, strict=True):
                moved = reps_mask[current]
                merged[moved] = plan[moved]
            candidates_plans.append(merged)
        best_key = (diam.max(), len(bad))
        chosen_plan: np.ndarray | None = None
        for plan in candidates_plans:
            new = territory_diameters(distance, plan, k)
            key = (new.max(), int((new > target * (1 + EPS)).sum()))
            if key < best_key and score(problem, plan).feasible:
                best_key, chosen_plan = key, plan
        if chosen_plan is not None:
            current = chosen_plan
            diam = territory_diameters(distance, current, k)
            accept(current)
            failures = 0
            if diam.max() <= target * (1 + EPS):
                step = min(step_cap(float(diam.max()), search.lower), step * TARGET_GROWTH)
                size = max(min(k, NEIGHBOURHOOD), size - 1)
            continue
        outcome = "unknown" if "unknown" in outcomes else outcomes[0]
        failures += 1
        if outcome == "unknown" or failures >= PATIENCE or size == k:
            # proven-infeasible neighbourhoods: a target more than one first step away moves closer first, then
            # neighbourhoods grow, then the target moves closer; a neighbourhood that ran out of time says the
            # target is hard: closer target at once (a wide step growing the neighbourhood to the whole problem
            # spent the rest of the time on one whole model)
            failures = 0
            if size < k and outcome != "unknown" and step <= TARGET_STEP:
                size = min(k, size + NEIGHBOURHOOD_GROWTH)
            else:
                step, size = step / 2, min(k, NEIGHBOURHOOD)
            if step < MIN_TARGET_STEP:
                # stuck at a local optimum of these moves: re-draw a few neighbourhoods at the same largest
                # diameter (no hint: CP-SAT's first plan is a different split), then aim lower again
                current, diam = _shake(problem, current, diam, settings, rng, stop, budget, classes, reserve)
                step = TARGET_STEP


def step_cap(top: float, lower: float) -> float:
    """Largest target step of the LNS, as a share of the largest diameter: wider far above the lower bound.

    Parameters
    ----------
    top
        The current largest diameter.
    lower
        The lower bound proven so far.

    Returns
    -------
    float
        :data:`GAP_STEP` times the relative gap ``1 - lower / top``, at least :data:`MAX_TARGET_STEP`.
    """
    return max(MAX_TARGET_STEP, GAP_STEP * (1 - lower / max(top, EPS)))


def _pick(
    focus: int, size: int, gap: np.ndarray, exclude: np.ndarray, rng: np.random.Generator, top: float
) -> np.ndarray:
    """A neighbourhood: ``focus`` and its nearest territories (with some noise), none of ``exclude``."""
    k = len(gap)
    order = np.argsort(gap[focus] + rng.random(k) * NEIGHBOUR_NOISE * max(top, EPS))
    members = [focus, *[int(t) for t in order if t != focus and not exclude[t]][: size - 1]]
    reps = np.zeros(k, dtype=bool)
    reps[members] = True
    return reps


class _Group:
    """Stops every solver of probes running side by side (the engine's Ctrl-C calls ``stop_search``)."""

    def __init__(self, event: threading.Event | None) -> None:
        self.event = event
        self.slots: list[_Slot] = []

    def stop_search(self) -> None:
        for slot in self.slots:
            if slot.solver is not None:
                slot.solver.stop_search()


@dataclass
class _Slot:
    """One probe's place in a :class:`_Group` (``_probe`` sets ``solver`` while it runs)."""

    event: threading.Event | None
    solver: cp_model.CpSolver | None = None


def _probe_many(
    problem: Problem,
    target: float,
    seconds: float,
    settings: SolveSettings,
    rng: np.random.Generator,
    stop: Any,
    budget: _Budget,
    classes: np.ndarray,
    current: np.ndarray,
    plans: list[np.ndarray],
) -> list[tuple[str, np.ndarray | None, Probe]]:
    """Threshold models of several disjoint neighbourhoods; side by side (one worker each) when more than one."""
    if len(plans) == 1:
        return [
            _probe(
                problem,
                target,
                seconds,
                settings,
                rng,
                stop,
                budget=budget,
                classes=classes,
                hint=current,
                reps=plans[0],
            )
        ]
    from concurrent.futures import ThreadPoolExecutor

    event = getattr(stop, "event", None)
    group = _Group(event)
    group.slots = [_Slot(event) for _ in plans]
    single = replace(settings, workers=max(1, settings.num_workers // len(plans)))
    streams = rng.spawn(len(plans))
    if stop is not None:
        stop.solver = group
    try:
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            futures = [
                pool.submit(
                    _probe,
                    problem,
                    target,
                    seconds,
                    single,
                    stream,
                    slot,
                    budget=budget,
                    classes=classes,
                    hint=current,
                    reps=reps,
                )
                for reps, stream, slot in zip(plans, streams, group.slots, strict=True)
            ]
            return [future.result() for future in futures]
    finally:
        if stop is not None:
            stop.solver = None


def _shake(
    problem: Problem,
    current: np.ndarray,
    diam: np.ndarray,
    settings: SolveSettings,
    rng: np.random.Generator,
    stop: Any,
    budget: _Budget,
    classes: np.ndarray,
    reserve: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-split a few random neighbourhoods within the current largest diameter, without a hint."""
    distance = problem.diameter_distance
    assert distance is not None
    k = problem.num_reps
    top = float(diam.max())
    for _ in range(SHAKES):
        if budget.left() < reserve + 0.5:
            break
        gap = _neighbours(distance, current, k)
        reps = _pick(int(rng.integers(k)), min(k, NEIGHBOURHOOD), gap, np.zeros(k, dtype=bool), rng, top)
        seconds = min(SUB_PROBE_SECONDS, budget.left() - reserve)
        # the hint only fixes the units outside the neighbourhood; inside, CP-SAT starts afresh
        outcome, unit_rep, _ = _probe(
            problem,
            top,
            seconds,
            settings,
            rng,
            stop,
            budget=budget,
            classes=classes,
            hint=current,
            reps=reps,
            fresh=True,
        )
        if outcome == "plan" and unit_rep is not None:
            new = territory_diameters(distance, unit_rep, k)
            if new.max() <= top * (1 + EPS):
                current, diam = unit_rep, new
    return current, diam


def _gap(objective: float, bound: float) -> float:
    if not math.isfinite(objective):
        return math.inf
    if objective <= 0:
        return 0.0
    return max(0.0, (objective - bound) / objective)


def _result(problem: Problem, search: _Search, wall: float, event: threading.Event | None) -> Result:
    statistics: dict[str, Any] = {
        "method": "threshold search on the largest diameter, CP-SAT feasibility models with fixed far-apart seeds",
        "first_solution_seconds": search.first_seconds,
        "best_solution_seconds": search.best_seconds,
        "probes": [
            {"threshold": p.threshold, "outcome": p.outcome, "seconds": round(p.seconds, 3), "diameter": p.diameter}
            for p in search.probes
        ],
    }
    interrupted = event is not None and event.is_set()
    if search.best is None:
        return Result(Status.UNKNOWN, None, math.nan, search.lower, math.inf, wall, interrupted, statistics)
    bound = min(search.lower, search.best_diameter)
    below = search.levels[(search.levels >= bound * (1 - EPS)) & (search.levels < search.best_diameter)]
    optimal = len(below) == 0
    if optimal:
        bound = search.best_diameter
    return Result(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        unit_rep=search.best,
        objective=search.best_diameter,
        bound=bound,
        gap=0.0 if optimal else _gap(search.best_diameter, bound),
        wall_seconds=wall,
        interrupted=interrupted,
        statistics=statistics,
    )


def diameter_problem(
    values: dict[str, np.ndarray],
    tolerance_pct: float | dict[str, float],
    num_territories: int,
    distance: np.ndarray,
    *,
    edges: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> Problem:
    """A :class:`Problem` from plain arrays: metric values per unit, a tolerance, a distance matrix.

    Every territory's target is the mean ``sum / num_territories``; a load is allowed in
    ``[(1 - tol) * mean, (1 + tol) * mean]`` (bounds rounded inwards to integers, exactly).

    Parameters
    ----------
    values
        Metric name -> integer value per unit.
    tolerance_pct
        Allowed deviation in %, for all metrics or per metric.
    num_territories
        Number of territories ``k``.
    distance
        Unit-to-unit distances ``(n, n)``, symmetric.
    edges
        Unit adjacency pairs (for contiguity scores), optional.
    allowed
        ``(n, k)`` unit-territory pairs allowed (default: all).

    Returns
    -------
    Problem
    """
    distance = np.asarray(distance, dtype=float)
    n, k = len(distance), int(num_territories)
    if distance.shape != (n, n):
        raise ValueError(f"distance must be a square matrix, got shape {distance.shape}")
    if k < 1:
        raise ValueError("num_territories must be at least 1")
    fte = np.ones(k)
    fte_exact = tuple(Fraction(1) for _ in range(k))
    metrics = []
    for name, raw in values.items():
        real = np.asarray(raw, dtype=float)
        if real.shape != (n,):
            raise ValueError(f"metric '{name}' must have one value per unit ({n}), got shape {real.shape}")
        if np.any(np.abs(real - np.round(real)) > 1e-9):
            raise ValueError(f"metric '{name}' must hold integers (scale it first)")
        ints = np.round(real).astype(np.int64)
        pct = tolerance_pct[name] if isinstance(tolerance_pct, dict) else tolerance_pct
        tol_exact = Fraction(str(pct)) / 100
        lo, hi = load_bounds(ints, 1.0, True, fte, float(pct) / 100, fte_exact, tol_exact)
        metrics.append(
            MetricData(
                name=name,
                values=ints,
                real=real,
                scale=1.0,
                exact=True,
                tolerance=float(pct) / 100,
                tolerance_exact=tol_exact,
                groups=np.zeros(k, dtype=np.int64),
                lo=lo,
                hi=hi,
            )
        )
    allowed = np.ones((n, k), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    pair_unit, pair_rep = np.nonzero(allowed)
    zeros = np.zeros(len(pair_unit))
    return Problem(
        unit_ids=np.array([str(i) for i in range(n)], dtype=object),
        unit_of_account=np.arange(n, dtype=np.int64),
        rep_ids=np.array([f"T{t + 1}" for t in range(k)], dtype=object),
        fte=fte,
        fte_exact=fte_exact,
        metrics=tuple(metrics),
        pair_unit=pair_unit.astype(np.int64),
        pair_rep=pair_rep.astype(np.int64),
        pair_cost=np.zeros(len(pair_unit), dtype=np.int64),
        pair_compactness=zeros,
        pair_penalty=zeros,
        cost_scale=1.0,
        unit_class=np.zeros(n, dtype=np.int64),
        class_allowed=np.ones((1, k), dtype=bool),
        class_names=("",),
        fixed_rep=np.full(n, -1, dtype=np.int64),
        current_rep=np.full(n, -1, dtype=np.int64),
        compactness_weight=1.0,
        preference_weight=0.0,
        unit_edges=np.zeros((0, 2), dtype=np.int64) if edges is None else np.asarray(edges, dtype=np.int64),
        diameter_distance=distance,
    )
