"""The CP-SAT model: assign every unit to one rep, balanced, compact, fitting segments.

Model (one fixed order: variables, constraints, objective, solve, read back):

* ``x[p]`` boolean per allowed unit-rep pair ``p``;
* every unit in exactly one territory;
* ``load[m, r] = sum(value[m, u] * x[u, r])`` for every balanced metric;
  metrics balanced across all reps get fixed integer bounds from their
  FTE-scaled targets; metrics balanced within segment groups get
  ``den * load[m, r] <= num * sum(load[m, group])`` (and the lower mirror),
  with ``num / den = (1 +- tolerance) * fte_r / fte_group`` as exact fractions;
* minimise the integer pair costs (compactness + weighted segment penalties).

Locked units and hard segment rules never enter as variables: their pairs are
absent from the problem.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
from ortools.sat.python import cp_model

from optimizer.contiguous import Rules, descend_contiguous, first_plan, plan_from_groups, relocate
from optimizer.diagnose import contiguity_verdict, explain_infeasible, presolve_checks
from optimizer.disaggregation import Rounds, disaggregation_rounds, pdlp_price_rounds
from optimizer.lagrange import lagrangian_bound
from optimizer.lns import SearchLog, assignment_cost, improve, improve_regions, reproducible, run
from optimizer.model import build_cp_model
from optimizer.pmedian import pmedian_bound
from optimizer.problem import Problem
from optimizer.relaxation import LpInfeasibleError, centre_bound, lp_start, solve_lp
from optimizer.repair import descend
from optimizer.result import Result, Status
from optimizer.settings import ProgressCallback, ProgressEvent, SolveSettings
from optimizer.warmstart import greedy_assignment

logger = logging.getLogger(__name__)


class _Watcher(cp_model.CpSolverSolutionCallback):
    """Reports plans and bounds as they improve; remembers when the first plan came."""

    def __init__(self, scale: float, progress: ProgressCallback | None) -> None:
        super().__init__()
        self._scale = scale
        self._progress = progress
        self._start = time.perf_counter()
        self.solutions = 0
        self.first_solution_seconds: float | None = None
        self.objective: float | None = None
        self.bound = -np.inf

    def on_solution_callback(self) -> None:
        self.solutions += 1
        if self.first_solution_seconds is None:
            self.first_solution_seconds = time.perf_counter() - self._start
        self.objective = self.objective_value
        self.bound = max(self.bound, self.best_objective_bound)
        self._emit()

    def on_bound(self, bound: float) -> None:
        self.bound = max(self.bound, bound)
        self._emit()

    def _emit(self) -> None:
        if self._progress is None:
            return
        gap = _gap(self.objective, self.bound) if self.objective is not None else None
        self._progress(
            ProgressEvent(
                seconds=time.perf_counter() - self._start,
                objective=None if self.objective is None else self.objective / self._scale,
                bound=self.bound / self._scale,
                gap=gap,
                solutions=self.solutions,
            )
        )


def _gap(objective: float | None, bound: float) -> float:
    if objective is None or not np.isfinite(bound):
        return float("inf")
    if abs(objective) < 1e-9:
        return 0.0
    return max(0.0, (objective - bound) / abs(objective))


@dataclass
class _Stop:
    """Ctrl-C state: the flag, and the CP-SAT solver running now (to stop it)."""

    event: threading.Event
    solver: cp_model.CpSolver | None = None


@contextmanager
def _sigint_stops(cancel: threading.Event | None = None) -> Iterator[_Stop]:
    """While solving, Ctrl-C (or setting ``cancel``) stops the search and keeps the best plan so far.

    SIGTERM also stops the search at once; once the solver has returned, the
    signal is delivered again to whatever handled it before (the CLI exits
    writing nothing; Python's default ends the process). Off the main thread
    (the workbench solves in a worker thread) only ``cancel`` stops it.
    """
    stop = _Stop(cancel or threading.Event())
    with _relay_cancel(stop, cancel):
        if threading.current_thread() is not threading.main_thread():
            yield stop
            return
        with _signals_stop(stop):
            yield stop


@contextmanager
def _relay_cancel(stop: _Stop, cancel: threading.Event | None) -> Iterator[None]:
    """Stop the running CP-SAT solver as soon as ``cancel`` is set (the search loops check the event themselves)."""
    if cancel is None:
        yield
        return
    finished = threading.Event()

    def relay() -> None:
        while not finished.wait(CANCEL_POLL_S):
            if cancel.is_set() and stop.solver is not None:
                stop.solver.stop_search()

    watcher = threading.Thread(target=relay, name="solve-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()


@contextmanager
def _signals_stop(stop: _Stop) -> Iterator[None]:
    """Ctrl-C and SIGTERM set ``stop`` and stop the running solver (main thread only)."""
    terminated = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        stop.event.set()
        if stop.solver is not None:
            stop.solver.stop_search()

    def on_sigterm(signum: int, frame: object) -> None:
        terminated.set()
        on_sigint(signum, frame)

    previous_int = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        if terminated.is_set():
            os.kill(os.getpid(), signal.SIGTERM)


#: Seconds between checks of a caller's cancel event while CP-SAT runs.
CANCEL_POLL_S = 0.1
#: Contiguous or centre-based problems with at most this many pairs go straight to one CP-SAT model (which
#: proves such tiny ones optimal); larger ones take the region search (CP-SAT alone gave a plan 5 % less compact
#: than GerryChain's best on South Carolina's 46 counties in 4 territories).
SMALL_SHAPED_PAIRS = 60
#: Region-LNS steps in a row without improvement before restarting from a new contiguous plan.
RESTART_PATIENCE = 40
#: Without a time limit, seconds the centre-based bounds may take; with one, the share of the limit left at the end
#: for the stronger bound (SCIP on whole assignments, or the Lagrangian): region moves seldom gain much after the
#: first seconds, while the bound keeps rising.
BOUND_SECONDS, CENTRE_BOUND_SHARE = 30.0, 0.35
#: Share of the time limit the contiguous first-plan search may take before the analysis of what blocks it.
FIRST_PLAN_SHARE = 0.6
#: Contiguous problems with home-base compactness and at most this many pairs end with one CP-SAT model
#: (its bound can prove a small plan optimal); larger ones spend the whole time on the region search.
FULL_BOUND_PAIRS = 2_000
#: Problems with at most this many pairs go to one CP-SAT model (it proves optimality);
#: larger ones use LP bound + LP start + large-neighbourhood search.
FULL_MODEL_PAIRS = 5_000
#: Above this many pairs the first plan comes from clustered units (:mod:`optimizer.aggregate`): the LP over
#: every pair takes minutes (about 9 M pairs at 100,000 accounts and 100 reps).
AGGREGATE_PAIRS = 400_000
#: Shares of the time left after the first plan that very large problems spend on clustered LP rounds (bounds and
#: plans, :mod:`optimizer.disaggregation`), then (of what is left each time) on single-move descent and on the
#: Lagrangian search; the LNS gets the rest.
ROUNDS_SHARE, DESCENT_SHARE, BOUND_SHARE = 0.8, 0.4, 0.7
#: Seconds the Lagrangian search needs to be worth starting after clustered LP rounds gave a bound.
MIN_SEARCH_SECONDS = 10.0
#: Share of the time limit by which PDLP's price rounds (:func:`optimizer.disaggregation.pdlp_price_rounds`,
#: beside the first plan) must end; the bound waits for them until then.
PRICE_ROUNDS_SHARE = 0.9
#: What the bound of a clustered solve is (``statistics["bound"]``, and so ``summary.json``).
AGGREGATED_BOUND = (
    "Lagrangian relaxation of the balance rows over every allowed unit-rep pair (optimizer.lagrange): "
    "prices from the duals of clustered LPs split where units part from their cluster (optimizer.disaggregation) "
    "and from PDLP's duals of clustered LPs at the exact tolerances, split likewise (optimizer.disaggregation), "
    "the best of them improved by a cutting-plane search; a proven lower bound"
)


def solve(
    problem: Problem,
    settings: SolveSettings | None = None,
    progress: ProgressCallback | None = None,
    hint: np.ndarray | None = None,
    cancel: threading.Event | None = None,
) -> Result:
    """Solve a territory design problem with CP-SAT.

    Small problems (at most :data:`FULL_MODEL_PAIRS` unit-rep pairs) are one
    CP-SAT model, solved to proven optimality when time allows. Larger ones
    start from the LP relaxation (:mod:`optimizer.relaxation`: bound and first
    plan) and improve it by large-neighbourhood search with CP-SAT sub-models
    (:mod:`optimizer.lns`); the bound reported is the larger of the LP bound
    and CP-SAT's.

    Parameters
    ----------
    problem
        Built with :func:`optimizer.build_problem`.
    settings
        Time limit, seed, workers, gap limit.
    progress
        Called with each better plan or bound.
    hint
        Rep row per unit to start from (e.g. a previous plan); by default
        the LP start (large problems) or a greedy plan (small ones).
    cancel
        Set it (from another thread) to stop the search as Ctrl-C does: the result
        holds the best plan found so far, marked ``interrupted``.

    Returns
    -------
    Result
        Status OPTIMAL or FEASIBLE with an assignment, or UNKNOWN without one.

    Raises
    ------
    InfeasibleError
        When a quick check, the LP relaxation or CP-SAT proves that no plan
        exists; the error names the rules in conflict and what to relax.
    RuntimeError
        MODEL_INVALID: a bug in the engine.
    """
    settings = settings or SolveSettings()
    presolve_checks(problem)
    with _sigint_stops(cancel) as stop:
        if problem.diameter_distance is not None:
            from optimizer.diameter import solve_diameter

            return solve_diameter(problem, settings, progress, hint, stop)
        # contiguity and centre-based compactness live in the one-model formulation only
        shaped = problem.contiguous or problem.centre_distance is not None
        if shaped and len(problem.pair_unit) > SMALL_SHAPED_PAIRS:
            return _solve_regions(problem, settings, progress, hint, stop)
        if len(problem.pair_unit) <= FULL_MODEL_PAIRS or shaped:
            return _solve_full(problem, settings, progress, hint, stop)
        if len(problem.pair_unit) > AGGREGATE_PAIRS and problem.unit_latitude is not None:
            return _solve_aggregated(problem, settings, progress, hint, stop)
        return _solve_lns(problem, settings, progress, hint, stop)


def _solve_aggregated(
    problem: Problem,
    settings: SolveSettings,
    progress: ProgressCallback | None,
    hint: np.ndarray | None,
    stop: _Stop,
) -> Result:
    """Very large problems: a first plan from clustered units (:mod:`optimizer.aggregate`), clustered LP rounds
    (:mod:`optimizer.disaggregation`: bounds and better plans), then descent and LNS on the units.

    The bound is Lagrangian (:mod:`optimizer.lagrange`): at the duals of the rounds' LPs and at PDLP's duals of
    clustered LPs (:func:`optimizer.disaggregation.pdlp_price_rounds`, beside the first plan's LP, on the second
    core), then searched from the best of them for :data:`BOUND_SHARE` of the time left: the assignment LP, which
    bounds smaller problems, does not finish in time at this size.
    """
    finished = threading.Event()  # ends PDLP's price rounds (:func:`optimizer.disaggregation.pdlp_price_rounds`)
    try:
        return _solve_aggregated_until(problem, settings, progress, hint, stop, finished)
    finally:
        finished.set()


def _solve_aggregated_until(
    problem: Problem,
    settings: SolveSettings,
    progress: ProgressCallback | None,
    hint: np.ndarray | None,
    stop: _Stop,
    finished: threading.Event,
) -> Result:
    """:func:`_solve_aggregated`, whose PDLP price rounds end when ``finished`` is set."""
    from optimizer.aggregate import clustered_start

    clock = time.perf_counter()
    limit = settings.time_limit_s
    deadline = None if limit is None else clock + limit
    if progress is not None:
        progress(ProgressEvent(0.0, None, 0.0, None, 0, phase="first plan: clustered LP"))
    # a plan within tolerance matters more than time left for the search: the repair may use most of the limit
    # prices for the bound from PDLP over the first clustering, on the second core while GLOP finds the first plan
    priced_by = None if limit is None else clock + PRICE_ROUNDS_SHARE * limit
    beside = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pdlp-prices")
    pending: list[Future[tuple[float, np.ndarray] | None]] = []

    def price(cluster: np.ndarray) -> None:
        pending.append(beside.submit(pdlp_price_rounds, problem, cluster, priced_by, finished))

    first = clustered_start(problem, None if limit is None else clock + 0.9 * limit, on_clusters=price)
    beside.shutdown(wait=False)
    start = first.plan
    start = _cheaper_start(problem, start, hint)
    statistics: dict[str, object] = {
        "method": (
            "clustered LP start + balance repair + clustered LP rounds at the exact tolerances + single-move descent"
            " + CP-SAT large-neighbourhood search"
        ),
        "pairs": len(problem.pair_unit),
        "clusters": first.clusters,
        "cluster_pairs": first.cluster_pairs,
        "cluster_lp_tolerance_factor": first.tolerance_factor,
        "bound": AGGREGATED_BOUND,
    }
    if start is None:
        logger.warning("no plan within tolerance found from the clustered problem")
        return _no_plan(clock, stop, statistics)
    first_seconds = time.perf_counter() - clock
    if progress is not None:
        progress(ProgressEvent(first_seconds, problem.objective_of(start), 0.0, None, 1))
    rounds = None
    if first.cluster is not None:
        # clustered LPs at the exact tolerances, split where units part from their cluster: bounds and plans
        if progress is not None:
            phase = "bound and plans: clustered LP rounds"
            progress(ProgressEvent(first_seconds, problem.objective_of(start), 0.0, None, 1, phase=phase))

        def on_round(found: Rounds) -> None:
            if progress is not None:
                event_bound = found.bound / problem.cost_scale
                gap = _gap(found.cost, found.bound)
                seconds = time.perf_counter() - clock
                progress(ProgressEvent(seconds, found.cost / problem.cost_scale, event_bound, gap, found.rounds + 1))

        now = time.perf_counter()
        rounds = disaggregation_rounds(
            problem,
            first.cluster,
            start,
            deadline=None if deadline is None else now + ROUNDS_SHARE * (deadline - now),
            relative_gap=settings.relative_gap,
            on_round=on_round,
            stop=stop.event,
            expected_seconds=first.round_seconds,
        )
        start = rounds.plan
    # single moves: on a clustered plan they save more per second than CP-SAT neighbourhoods
    now = time.perf_counter()
    start = descend(problem, start, deadline=None if deadline is None else now + DESCENT_SHARE * (deadline - now))
    remaining = None if deadline is None else deadline - time.perf_counter()
    best_prices = () if rounds is None or rounds.prices is None else (rounds.prices,)
    seconds = BOUND_SHARE * (remaining if remaining is not None else 60.0)
    bound = rounds.bound if rounds is not None else -np.inf
    # (always when PDLP's prices are on their way: at 1,000,000 accounts they are most of the bound)
    if pending or not np.isfinite(bound) or seconds >= MIN_SEARCH_SECONDS:
        # (the search first sorts every pair and prices its starts: seconds at 100,000 accounts)
        if progress is not None:
            now = time.perf_counter() - clock
            progress(ProgressEvent(now, problem.objective_of(start), 0.0, None, 1, phase="bound: Lagrangian"))
        began = time.perf_counter()
        # PDLP's rounds may take until ``priced_by`` (the bound waits for them: they are most of it at this size)
        wait = seconds if priced_by is None else max(priced_by - began, 0.0)
        priced = _ready(pending[0] if pending else None, wait, stop.event)  # (evaluated again, with the margin)
        finished.set()  # (rounds still running are of no more use)
        bound = max(
            bound,
            lagrangian_bound(
                problem,
                (*(best_prices or first.prices), *(() if priced is None else (priced[1],))),
                upper=float(assignment_cost(problem, start)),
                seconds=seconds - (time.perf_counter() - began),
            ),
        )

    plan, cost, log = _improve_from(problem, settings, start, bound, clock, deadline, progress, stop, among_reps=True)
    objective = problem.real_cost(problem.pairs_of(plan))
    return Result(
        status=Status.FEASIBLE,
        unit_rep=plan,
        objective=objective,
        bound=_real_bound(problem, objective, cost, bound),
        gap=_gap(cost, bound),
        wall_seconds=time.perf_counter() - clock,
        interrupted=stop.event.is_set(),
        statistics={
            **statistics,
            "first_solution_seconds": first_seconds,
            "lns_steps": log.steps,
            "lns_improvements": log.improvements,
            "rounds": 0 if rounds is None else rounds.rounds,
            "round_clusters": None if rounds is None else rounds.clusters,
        },
    )


def _ready(
    pending: Future[tuple[float, np.ndarray] | None] | None, seconds: float, stop: threading.Event
) -> tuple[float, np.ndarray] | None:
    """What ``pending`` brings, waiting at most ``seconds`` for it, or until ``stop`` is set (``None`` when it has
    nothing by then)."""
    if pending is None:
        return None
    until = time.perf_counter() + max(seconds, 0.0)
    while not pending.done() and not stop.is_set() and time.perf_counter() < until:
        stop.wait(min(0.2, max(until - time.perf_counter(), 0.0)))
    if not pending.done():
        logger.info("PDLP's prices were not ready within %.1f s; the bound goes without them", seconds)
        return None
    return pending.result()


def _solve_regions(
    problem: Problem,
    settings: SolveSettings,
    progress: ProgressCallback | None,
    hint: np.ndarray | None,
    stop: _Stop,
) -> Result:
    """Contiguous or centre-based plans: a first plan, single-move descent, region LNS with restarts.

    Contiguous plans start from :func:`optimizer.contiguous.first_plan`; when it finds none in
    :data:`FIRST_PLAN_SHARE` of the time, :func:`optimizer.diagnose.contiguity_verdict` says whether
    balance or contiguity blocks, proves infeasibility where it can and names the relaxations that yield a
    plan. The bound is the LP relaxation of the assignment (home bases) or of a balanced p-median (centres),
    both valid with contiguity relaxed, and CP-SAT's own on small models.
    """
    clock = time.perf_counter()
    limit = settings.time_limit_s
    deadline = None if limit is None else clock + limit
    workers = settings.num_workers
    statistics: dict[str, object] = {
        "method": "contiguous first plan + single-move descent + region LNS with CP-SAT",
        "pairs": len(problem.pair_unit),
    }
    home_lp = None
    if problem.centre_distance is None:
        try:
            home_lp = solve_lp(problem)
        except LpInfeasibleError:
            raise explain_infeasible(problem, settings) from None
    start = hint if hint is not None and _is_feasible(problem, hint) else None
    if start is None and problem.contiguous:
        report = first_plan(
            problem,
            seed=settings.seed,
            deadline=None if deadline is None else clock + FIRST_PLAN_SHARE * limit,
            stop=stop.event,
            workers=workers,
            lp=home_lp,
        )
        statistics["first_plan_attempts"] = report.attempts
        start = report.plan
        if start is None and not stop.event.is_set():
            left = 60.0 if deadline is None else max(deadline - time.perf_counter(), 1.0)
            start, advice = contiguity_verdict(
                problem, report.best, report.blockers, seconds=left, seed=settings.seed, workers=workers
            )
            if start is None:
                return _no_plan(clock, stop, statistics, advice)
    elif start is None:
        try:
            start, _ = lp_start(problem, seconds=None if limit is None else 0.3 * limit, seed=settings.seed)
        except LpInfeasibleError:
            raise explain_infeasible(problem, settings) from None
    if start is None or not _is_feasible(problem, start):
        return _solve_full(problem, settings, progress, start, stop)
    first_seconds = time.perf_counter() - clock

    def report_cost(cost: float) -> None:
        if progress is not None:
            progress(ProgressEvent(time.perf_counter() - clock, cost, 0.0, None, 0))

    report_cost(problem.objective_of(start))
    rules = Rules(problem)
    rng = np.random.default_rng(settings.seed)
    plan = descend_contiguous(rules, start, deadline=deadline, stop=stop.event)
    plan = relocate(rules, plan, rng, deadline=deadline, stop=stop.event)
    best = problem.objective_of(plan)
    report_cost(best)
    # bounds: valid with contiguity relaxed; the cheap LP now, a stronger centre-based bound after the search
    lp_bound = None
    bound_kind = ""
    stronger = problem.centre_distance is not None
    if stronger:
        lp_bound = centre_bound(problem, seconds=BOUND_SECONDS if limit is None else CENTRE_BOUND_SHARE * limit)
        bound_kind = "LP of the balanced p-median (contiguity relaxed)" if lp_bound is not None else ""
    if home_lp is not None:
        lp_bound = _real_bound(problem, best, assignment_cost(problem, plan), home_lp.objective)
    small = len(problem.pair_unit) <= FULL_BOUND_PAIRS and problem.centre_distance is None
    search_share = 0.75 if small else (1.0 - CENTRE_BOUND_SHARE if stronger else 1.0)
    lns_deadline = None if limit is None else clock + search_share * limit
    log = SearchLog()
    for restart in range(4 if limit is None else 10**6):
        if restart:
            # restarts from new connected plans when the search stalls: local optima of region moves are common
            if (
                not problem.contiguous
                or stop.event.is_set()
                or (lns_deadline is not None and time.perf_counter() > lns_deadline - 0.5)
            ):
                break
            again = first_plan(
                problem,
                seed=settings.seed + restart,
                deadline=None if lns_deadline is None else min(lns_deadline, time.perf_counter() + 0.2 * limit),
                stop=stop.event,
                workers=workers,
                max_attempts=3,
            ).plan
            if again is None:
                continue  # no new plan this time: the next restart draws again (the deadline ends the loop)
            again = descend_contiguous(rules, again, deadline=lns_deadline, stop=stop.event)
            again = relocate(rules, again, rng, deadline=lns_deadline, stop=stop.event)
        candidate, cost, more = improve_regions(
            problem,
            plan if not restart else again,
            deadline=lns_deadline,
            seed=settings.seed + restart,
            workers=workers,
            on_improve=report_cost if not restart else None,
            stop=stop.event,
            work_limit=0.75 * settings.work_limit / 4,
            patience=RESTART_PATIENCE,
        )
        log.steps += more.steps
        log.improvements += more.improvements
        if cost < best - 1e-9 or not restart:
            if cost < best - 1e-9 and restart:
                report_cost(cost)
            plan, best = candidate, cost
        if lp_bound is not None and best <= lp_bound * (1 + max(settings.relative_gap, 1e-9)):
            break
    if stronger and not stop.event.is_set() and (lp_bound is None or lp_bound < best * (1 - settings.relative_gap)):
        seconds = BOUND_SECONDS if deadline is None else max(deadline - time.perf_counter(), 1.0)
        found = _stronger_centre_bound(problem, rules, plan, lp_bound, seconds)
        if found.bound is not None and (lp_bound is None or found.bound > lp_bound):
            lp_bound, bound_kind = found.bound, found.kind
        # SCIP stops by the clock: its plan is taken only under a time limit (without one, plans are reproducible)
        if found.plan is not None and limit is not None and problem.objective_of(found.plan) < best - 1e-9:
            plan, best = found.plan, problem.objective_of(found.plan)
            report_cost(best)
    result = None
    if small and not stop.event.is_set():
        remaining = SolveSettings(
            time_limit_s=None if limit is None else max(clock + limit - time.perf_counter(), 0.5),
            seed=settings.seed,
            workers=settings.workers,
            relative_gap=settings.relative_gap,
            work_limit=0.25 * settings.work_limit,
        )
        result = _solve_full(problem, remaining, None, plan, stop)
    if result is None or result.unit_rep is None or result.objective > problem.objective_of(plan):
        objective = problem.objective_of(plan)
        bound = min(result.bound, objective) if result is not None else 0.0
        result = Result(
            status=Status.FEASIBLE,
            unit_rep=plan,
            objective=objective,
            bound=bound,
            gap=_gap(objective, bound),
            wall_seconds=time.perf_counter() - clock,
            interrupted=stop.event.is_set(),
        )
    bound_source = "CP-SAT"
    if lp_bound is not None and result.unit_rep is not None and lp_bound > result.bound:
        bound = min(lp_bound, result.objective)
        gap = _gap(result.objective, bound)
        status = Status.OPTIMAL if gap <= 1e-9 else result.status  # the bound proves the plan best
        result = replace(result, bound=bound, gap=gap, status=status)
        bound_source = bound_kind or "LP of the assignment (contiguity relaxed)"
    return replace(
        result,
        wall_seconds=time.perf_counter() - clock,
        statistics={
            **result.statistics,
            **statistics,
            "bound": bound_source,
            "lp_bound": lp_bound,
            "first_solution_seconds": first_seconds,
            "region_lns_steps": log.steps,
            "region_lns_improvements": log.improvements,
        },
    )


def _solve_lns(
    problem: Problem,
    settings: SolveSettings,
    progress: ProgressCallback | None,
    hint: np.ndarray | None,
    stop: _Stop,
) -> Result:
    clock = time.perf_counter()
    limit = settings.time_limit_s
    deadline = None if limit is None else clock + limit
    workers = settings.num_workers
    try:
        start, lp = lp_start(
            problem, seconds=None if limit is None else 0.3 * limit, seed=settings.seed, workers=workers
        )
    except LpInfeasibleError:
        raise explain_infeasible(problem, settings) from None
    bound = lp.objective if lp is not None else 0.0
    start = _cheaper_start(problem, start, hint)
    first_seconds = time.perf_counter() - clock if start is not None else None
    if start is None:
        # no plan from the LP: let one CP-SAT model search for the rest of the time
        remaining = SolveSettings(
            time_limit_s=None if deadline is None else max(deadline - time.perf_counter(), 0.1),
            seed=settings.seed,
            workers=settings.workers,
            relative_gap=settings.relative_gap,
            work_limit=settings.work_limit,
        )
        return _solve_full(problem, remaining, progress, greedy_assignment(problem), stop)

    plan, cost, log = _improve_from(problem, settings, start, bound, clock, deadline, progress, stop)
    # an integer objective at the LP bound rounded up is optimal, and so is a plan CP-SAT closed with every unit free
    optimal = log.proven_optimal or cost <= math.ceil(bound - 1e-6 * max(abs(bound), 1.0))
    chosen = problem.pairs_of(plan)
    objective = problem.real_cost(chosen)
    return Result(
        status=Status.OPTIMAL if optimal else Status.FEASIBLE,
        unit_rep=plan,
        objective=objective,
        bound=objective if optimal else _real_bound(problem, objective, cost, bound),
        gap=0.0 if optimal else _gap(cost, bound),
        wall_seconds=time.perf_counter() - clock,
        interrupted=stop.event.is_set(),
        statistics={
            "method": "LP bound + LP start + CP-SAT large-neighbourhood search",
            "pairs": len(problem.pair_unit),
            "first_solution_seconds": first_seconds,
            "lp_bound": None if lp is None else lp.objective / problem.cost_scale,
            "lns_steps": log.steps,
            "lns_improvements": log.improvements,
            "lns_optimal_steps": log.optimal_steps,
        },
    )


def _improve_from(
    problem: Problem,
    settings: SolveSettings,
    start: np.ndarray,
    bound: float,
    clock: float,
    deadline: float | None,
    progress: ProgressCallback | None,
    stop: _Stop,
    *,
    among_reps: bool = False,
) -> tuple[np.ndarray, int, SearchLog]:
    """Large-neighbourhood search from a feasible plan, reporting each better plan with the (fixed) bound."""

    plans = [0]

    def report(cost: int) -> None:
        plans[0] += 1
        if progress is not None:
            progress(
                ProgressEvent(
                    seconds=time.perf_counter() - clock,
                    objective=cost / problem.cost_scale,
                    bound=bound / problem.cost_scale,
                    gap=_gap(cost, bound),
                    solutions=plans[0],
                )
            )

    report(assignment_cost(problem, start))
    plan, cost, log = improve(
        problem,
        start,
        deadline=deadline,
        bound=bound,
        relative_gap=max(settings.relative_gap, 1e-9),
        work_limit=settings.work_limit,
        seed=settings.seed,
        workers=settings.num_workers,
        on_improve=report,
        stop=stop.event,
        among_reps=among_reps,
    )
    return plan, cost, log


@dataclass(frozen=True)
class _CentreBound:
    bound: float | None
    kind: str
    plan: np.ndarray | None


def _stronger_centre_bound(
    problem: Problem, rules: Rules, plan: np.ndarray, lp_bound: float | None, seconds: float
) -> _CentreBound:
    """After the search: SCIP on the integer balanced p-median where the LP was solved (its partition may also be a
    plan), else the p-median's Lagrangian (too many units for the LP)."""
    if lp_bound is None:
        bound = pmedian_bound(problem, upper=problem.objective_of(plan), seconds=seconds, plan=plan)
        return _CentreBound(bound, "Lagrangian of the balanced p-median (contiguity relaxed)", None)
    # whole assignments close much of the LP's gap on maps of large units (a split county costs the LP nothing)
    found: list[np.ndarray] = []
    bound = centre_bound(problem, seconds=seconds, integer=True, sink=found, plan=plan)
    # SCIP's own partition is a plan when its groups happen to be connected and fit their reps
    plan = plan_from_groups(rules, found[0]) if found else None
    return _CentreBound(bound, "integer balanced p-median, SCIP's bound (contiguity relaxed)", plan)


def _no_plan(clock: float, stop: _Stop, statistics: dict[str, object], advice: list[str] | None = None) -> Result:
    """Status UNKNOWN: no plan in time, with what the search found in the way."""
    return Result(
        status=Status.UNKNOWN,
        unit_rep=None,
        objective=float("nan"),
        bound=0.0,
        gap=float("inf"),
        wall_seconds=time.perf_counter() - clock,
        interrupted=stop.event.is_set(),
        statistics=statistics,
        advice=tuple(advice or ()),
    )


def _real_bound(problem: Problem, objective: float, cost: float, bound: float) -> float:
    """The integer model's bound in the objective's real units: the real objective less the integer gap.

    Dividing the integer bound by the cost scale alone would compare rounded pair costs with the plan's
    exact cost, and could report a bound above the objective of a proven optimal plan.
    """
    return objective - max(cost - bound, 0.0) / problem.cost_scale


def _cheaper_start(problem: Problem, start: np.ndarray | None, hint: np.ndarray | None) -> np.ndarray | None:
    """The caller's hint instead of the engine's first plan when it keeps every rule and costs less."""
    if (
        hint is not None
        and _is_feasible(problem, hint)
        and (start is None or assignment_cost(problem, hint) < assignment_cost(problem, start))
    ):
        return hint
    return start


def _is_feasible(problem: Problem, unit_rep: np.ndarray) -> bool:
    from optimizer.score import score

    return len(unit_rep) == problem.num_units and score(problem, unit_rep).feasible


def _solve_full(
    problem: Problem,
    settings: SolveSettings,
    progress: ProgressCallback | None,
    hint: np.ndarray | None,
    stop: _Stop,
) -> Result:
    start = hint
    if start is None and problem.contiguous:
        start = first_plan(problem, seed=settings.seed, max_attempts=3, stop=stop.event).plan
    if start is None:
        start = greedy_assignment(problem)
    parts = build_cp_model(problem, hint=start)
    model, x = parts.model, parts.x

    solver = cp_model.CpSolver()
    params = solver.parameters
    params.num_workers = settings.num_workers
    if settings.time_limit_s is not None:
        params.max_time_in_seconds = settings.time_limit_s
    else:  # no wall-clock limit: bounded, reproducible work
        reproducible(params, settings.work_limit)
    params.random_seed = settings.seed
    params.relative_gap_limit = settings.relative_gap
    params.catch_sigint_signal = False
    params.log_search_progress = logger.isEnabledFor(logging.DEBUG)
    if params.log_search_progress:
        solver.log_callback = logger.debug

    watcher = _Watcher(problem.cost_scale, progress)
    solver.best_bound_callback = watcher.on_bound
    logger.info(
        "solving one CP-SAT model of %d pairs with %d workers, limit %ss, seed %d",
        len(x),
        settings.num_workers,
        settings.time_limit_s,
        settings.seed,
    )
    stop.solver = solver
    code = run(solver, model, watcher)
    stop.solver = None
    wall = solver.wall_time
    stats = {
        "method": "one CP-SAT model",
        "conflicts": int(solver.num_conflicts),
        "branches": int(solver.num_branches),
        "booleans": int(solver.num_booleans),
        "solutions": watcher.solutions,
        "first_solution_seconds": watcher.first_solution_seconds,
        "pairs": len(x),
        "solution_info": solver.solution_info(),
    }
    if code == cp_model.MODEL_INVALID:
        raise RuntimeError(f"CP-SAT rejected the model as invalid (engine bug): {model.validate()}")
    if code == cp_model.INFEASIBLE:
        raise explain_infeasible(problem, settings)
    if code == cp_model.UNKNOWN and _is_feasible(problem, start):
        # CP-SAT did not take up the hint in time, but the start plan keeps every rule: report it
        logger.info("CP-SAT found no plan of its own in time; keeping the feasible start plan")
        return Result(
            status=Status.FEASIBLE,
            unit_rep=start,
            objective=problem.objective_of(start),
            bound=solver.best_objective_bound / problem.cost_scale,
            gap=_gap(problem.objective_of(start) * problem.cost_scale, solver.best_objective_bound),
            wall_seconds=wall,
            interrupted=stop.event.is_set(),
            statistics={**stats, "solution_info": "start plan (CP-SAT found none in time)"},
        )
    if code == cp_model.UNKNOWN:
        return Result(
            status=Status.UNKNOWN,
            unit_rep=None,
            objective=float("nan"),
            bound=solver.best_objective_bound / problem.cost_scale,
            gap=float("inf"),
            wall_seconds=wall,
            interrupted=stop.event.is_set(),
            statistics=stats,
        )
    chosen = np.array([solver.boolean_value(v) for v in x], dtype=bool)
    unit_rep = np.full(problem.num_units, -1, dtype=np.int64)
    unit_rep[problem.pair_unit[chosen]] = problem.pair_rep[chosen]
    status = Status.OPTIMAL if code == cp_model.OPTIMAL else Status.FEASIBLE
    objective = problem.objective_of(unit_rep)
    result = Result(
        status=status,
        unit_rep=unit_rep,
        objective=objective,
        bound=_real_bound(problem, objective, solver.objective_value, solver.best_objective_bound),
        gap=0.0 if status is Status.OPTIMAL else _gap(solver.objective_value, solver.best_objective_bound),
        wall_seconds=wall,
        interrupted=stop.event.is_set(),
        statistics=stats,
    )
    logger.info(
        "%s: objective %.1f, bound %.1f, gap %.3f%% in %.1fs",
        status.value,
        result.objective,
        result.bound,
        100 * result.gap,
        wall,
    )
    return result
