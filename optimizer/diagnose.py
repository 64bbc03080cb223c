"""Why a scenario has no plan, and what would make it feasible.

Two levels:

* :func:`presolve_checks` finds the common causes in milliseconds, before any
  search: an account with no rep it may go to, a unit larger than every
  share it could join, locked accounts that overload a rep, a segment class
  whose reps cannot hold it.
* :func:`explain_infeasible` runs after CP-SAT proves infeasibility: it
  rebuilds the model with every rule group behind an assumption literal, asks
  CP-SAT for a sufficient set of conflicting rules, then tries looser
  tolerances for the balance rules in that set to name a relaxation that works.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from ortools.sat.python import cp_model

from optimizer.graph import pieces
from optimizer.model import build_cp_model
from optimizer.problem import MoveBudget, Problem, with_tolerance
from optimizer.result import InfeasibleError

if TYPE_CHECKING:
    from optimizer.settings import SolveSettings

logger = logging.getLogger(__name__)

#: Largest unit x rep count for which the assumption analysis runs.
MAX_ANALYSIS_PAIRS = 2_000_000
#: Above this many pairs, feasibility checks start from the LP relaxation.
LP_CHECK_PAIRS = 5_000
#: Tolerance multipliers tried when searching for a relaxation.
RELAX_STEPS = (1.5, 2.0, 3.0, 5.0, 10.0)
_SHOW = 5


def _names(ids: np.ndarray) -> str:
    shown = ", ".join(f"'{i}'" for i in ids[:_SHOW])
    return shown + (f" and {len(ids) - _SHOW} more" if len(ids) > _SHOW else "")


def _real(problem: Problem, metric_index: int, value: float) -> str:
    metric = problem.metrics[metric_index]
    real = value / metric.scale
    return f"{real:,.0f}" if abs(real) >= 100 else f"{real:,.4g}"


def _needed_pct(load: float, target: float) -> float:
    """Tolerance in % (rounded up to 0.1) at which ``load`` is within tolerance of ``target``."""
    return math.ceil(1000.0 * (load / target - 1.0) - 1e-6) / 10.0


def presolve_checks(problem: Problem) -> None:
    """Raise :class:`InfeasibleError` when a quick check proves there is no plan.

    Parameters
    ----------
    problem
        The problem about to be solved.
    """
    reasons: list[str] = []
    has_pair = np.bincount(problem.pair_unit, minlength=problem.num_units) > 0
    orphans = np.flatnonzero(~has_pair)
    clashing = orphans[problem.fixed_rep[orphans] >= 0]
    if len(clashing):
        shown = ", ".join(
            f"'{problem.unit_ids[u]}' to '{problem.rep_ids[problem.fixed_rep[u]]}'" for u in clashing[:_SHOW]
        )
        more = f" and {len(clashing) - _SHOW} more" if len(clashing) > _SHOW else ""
        reasons.append(
            f"{len(clashing)} account(s) are locked or pinned to a rep whose segment preference their hard segment "
            f"rule excludes ({shown}{more}); unlock or unpin them, or make the rule soft"
        )
    orphans = orphans[problem.fixed_rep[orphans] < 0]
    if len(orphans):
        classes = sorted({problem.class_names[c] for c in problem.unit_class[orphans]} - {""})
        cause = (
            f"hard segment rules for {', '.join(classes)} name no rep segment present in the reps table"
            if classes
            else "their candidate reps were all excluded"
        )
        reasons.append(
            f"{len(orphans)} account(s) have no rep they may go to ({_names(problem.unit_ids[orphans])}): {cause}; "
            "add a rep with a fitting segment preference or make the rule soft"
        )

    for m, metric in enumerate(problem.metrics):
        if metric.lo is None or metric.hi is None:
            continue
        crossed = np.flatnonzero(metric.lo > metric.hi)
        if len(crossed):
            reasons.append(
                f"balance of {metric.name}: ±{metric.tolerance * 100:g} % leaves no whole value between the bounds "
                f"of {_names(problem.rep_ids[crossed])}; loosen the tolerance"
            )
            continue
        shares = metric.values.sum() * problem.fte / problem.fte.sum()  # every rep's target, scaled
        # a unit larger than the upper bound of every rep it may join
        best_hi = np.zeros(problem.num_units, dtype=np.int64)
        np.maximum.at(best_hi, problem.pair_unit, metric.hi[problem.pair_rep])
        too_big = np.flatnonzero(has_pair & (metric.values > best_hi))
        if len(too_big):
            u = too_big[np.argmax(metric.values[too_big] / np.maximum(best_hi[too_big], 1))]
            # the real target (the rounded-down bound divided by 1 + tolerance understates it)
            target = shares[problem.pair_rep[problem.pair_unit == u]].max()
            needed = _needed_pct(metric.values[u], target)
            # with equal FTE, k territories give each a share of total / k: the largest k whose upper bound holds it
            fits_k = int(metric.values.sum() * (1 + metric.tolerance) // max(metric.values[u], 1))
            what = "account family" if problem.unit_edges.size == 0 else "unit"
            reasons.append(
                f"balance of {metric.name}: {what} {_names(problem.unit_ids[too_big])} alone holds more "
                f"than any territory it may join may hold (largest: {_real(problem, m, metric.values[u])} against "
                f"an upper bound of {_real(problem, m, best_hi[u])}); it fits with a tolerance of at least "
                f"{needed:.1f} %, or with at most {fits_k} territories of equal FTE sharing the total"
                + ("" if what == "account family" else ", or smaller units (a finer resolution or layer)")
            )
        # locked accounts that overload a rep
        locked = problem.fixed_rep >= 0
        locked_load = np.bincount(problem.fixed_rep[locked], weights=metric.values[locked], minlength=problem.num_reps)
        over = np.flatnonzero(locked_load > metric.hi)
        for r in over[:_SHOW]:
            reasons.append(
                f"balance of {metric.name}: accounts locked or pinned to rep '{problem.rep_ids[r]}' hold "
                f"{_real(problem, m, locked_load[r])}, above its upper bound {_real(problem, m, metric.hi[r])}; "
                f"unlock or unpin some, or loosen the tolerance to at least "
                f"{_needed_pct(locked_load[r], shares[r]):.1f} %"
            )
        # a hard segment class whose reps cannot hold the units that can only go to them
        for c, name in enumerate(problem.class_names):
            reps = problem.class_allowed[c]
            if not name or not reps.any():  # no rep at all: reported above as accounts with no rep
                continue
            # units whose class's reps all lie inside this class's (per class, not units x reps)
            inside = np.all(problem.class_allowed <= reps, axis=1)[problem.unit_class]
            need = metric.values[inside & ~locked].sum() + locked_load[reps].sum()
            room = metric.hi[reps].sum()
            if need > room:
                needed = _needed_pct(need, shares[reps].sum())
                loosen = f", loosen the tolerance to at least {needed:.1f} %" if needed < 100 else ""
                reasons.append(
                    f"balance of {metric.name}: '{name}' accounts may only go to {_names(problem.rep_ids[reps])}, "
                    f"who together may hold {_real(problem, m, room)} but must take {_real(problem, m, need)}; "
                    f"make the segment rule soft, add reps with that preference{loosen}, "
                    f"or balance {metric.name} within segments (balance.{metric.name}.within: segment)"
                )
    if problem.contiguous:
        reasons += _contiguity_conflicts(problem)
    if reasons:
        raise InfeasibleError("The scenario has no feasible plan:", reasons)


def _contiguity_conflicts(problem: Problem) -> list[str]:
    """Territories that cannot be one area: units locked to a rep that no chain of units open to it joins."""
    layer = problem.contiguity_layer
    out = []
    for r in range(problem.num_reps):
        open_to_r = np.zeros(problem.num_units, dtype=bool)
        open_to_r[problem.pair_unit[problem.pair_rep == r]] = True
        for number in np.unique(layer[(problem.fixed_rep == r) & (layer >= 0)]):
            locked = np.flatnonzero((problem.fixed_rep == r) & (layer == number))
            if len(locked) < 2:
                continue
            usable = open_to_r & (layer == number)
            piece = pieces(problem.adjacency, np.where(usable, 0, -1))
            groups = [sorted(problem.unit_ids[locked[piece[locked] == p]]) for p in np.unique(piece[locked])]
            if len(groups) > 1:
                where = f" on the {problem.layer_names[number]} layer" if len(problem.layer_names) > 1 else ""
                out.append(
                    f"contiguity: rep '{problem.rep_ids[r]}' has accounts locked in units{where} that no chain of "
                    f"units open to it connects ({'; '.join(', '.join(map(str, g[:3])) for g in groups)}); "
                    "unlock some, make them key accounts (units.key_accounts), or turn territories.contiguous off"
                )
    return out


def contiguity_verdict(
    problem: Problem,
    closest: np.ndarray | None,
    blockers: list[str],
    *,
    seconds: float,
    seed: int = 0,
    workers: int = 2,
) -> tuple[np.ndarray | None, list[str]]:
    """Why no connected plan was found: balance, or contiguity itself, and what would yield a plan.

    Called when the contiguous first plan (:func:`optimizer.contiguous.first_plan`) ran out of time.

    1. Balance alone: if no plan keeps the tolerances even with territories in pieces, the balance rules are
       what blocks, and :class:`InfeasibleError` says which (``explain_infeasible``).
    2. Contiguity: CP-SAT searches the exact model (flows), starting from the closest connected plan; it may
       find a plan (returned) or prove that none exists (:class:`InfeasibleError`, exit 1).
    3. Relaxations: looser tolerances and one territory fewer are tried with the first-plan search; the
       largest units are named as the ones to split.

    Parameters
    ----------
    problem
        The contiguous problem.
    closest
        The connected plan closest to the tolerances, or ``None``.
    blockers
        What that plan still breaks (``StartReport.blockers``).
    seconds
        Time the analysis may take.
    seed, workers
        CP-SAT settings.

    Returns
    -------
    tuple
        ``(plan, advice)``: a plan CP-SAT found (then ``advice`` is empty), or ``None`` and the advice.

    Raises
    ------
    InfeasibleError
        When balance alone, or balance with contiguity, is proven infeasible.
    """
    import time

    clock = time.perf_counter()
    loose = replace(problem, contiguous=False)
    alone = _feasible(loose, max(0.25 * seconds, 1.0))
    if alone is False:
        raise InfeasibleError(
            "The scenario has no feasible plan: its balance rules cannot hold even with territories in pieces.",
            _balance_reasons(loose, 0.25 * seconds),
        )
    parts = build_cp_model(problem, objective=False, hint=closest)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.35 * seconds, 1.0)
    solver.parameters.num_workers = max(workers, 1)
    solver.parameters.random_seed = seed
    code = solver.solve(parts.model)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        chosen = parts.pairs[np.array([solver.boolean_value(v) for v in parts.x], dtype=bool)]
        plan = np.full(problem.num_units, -1, dtype=np.int64)
        plan[problem.pair_unit[chosen]] = problem.pair_rep[chosen]
        return plan, []
    left = max(seconds - (time.perf_counter() - clock), 1.0)
    if code == cp_model.INFEASIBLE:
        raise InfeasibleError(
            "The scenario has no feasible plan: contiguity blocks it.",
            _contiguity_reasons(problem, alone, left, seed),
        )
    advice = [
        "contiguity, not balance, is what stands in the way: "
        + ("a plan within every tolerance exists when territories may be in pieces" if alone else "no plan was found")
        + (f"; the closest connected plan found still breaks: {'; '.join(blockers[:3])}" if blockers else ""),
        *_contiguity_relaxations(problem, left, seed),
        *_largest_units(problem),
        "a longer time limit helps little here: connected plans near these tolerances are rare, so loosen a "
        "rule above, or set units.islands / units.extra_edges where a ferry or bridge joins areas",
    ]
    return None, advice


def _balance_reasons(problem: Problem, seconds: float) -> list[str]:
    """The balance rules in conflict without contiguity, as the general analysis names them."""
    return explain_conflicts(problem, max(seconds, 1.0)).reasons


def _contiguity_relaxations(problem: Problem, seconds: float, seed: int) -> list[str]:
    """Looser tolerances, then one territory fewer, at which the first-plan search finds a connected plan."""
    import time

    from optimizer.contiguous import first_plan

    deadline = time.perf_counter() + seconds
    out = []
    steps = (1.5, 2.0, 3.0, 5.0)
    for number, step in enumerate(steps):
        left = deadline - time.perf_counter()
        if left <= 0.2:
            break
        looser = problem
        for metric in problem.metrics:
            looser = with_tolerance(looser, metric.name, min(metric.tolerance * 100 * step, 99.0))
        # a plan, where one exists, comes in well under a second: share the time over the steps left
        share = min(left / (len(steps) - number + 1), 5.0)
        report = first_plan(looser, seed=seed, deadline=time.perf_counter() + share)
        if report.plan is not None:
            now = ", ".join(f"±{m.tolerance * 100:g} %" for m in problem.metrics)
            then = ", ".join(f"±{min(m.tolerance * 100 * step, 99.0):g} %" for m in problem.metrics)
            out.append(f"a connected plan exists at {then} (now {now}): loosen the tolerances")
            break
    fewer = _one_territory_fewer(problem)
    left = deadline - time.perf_counter()
    if fewer is not None and left > 0.2:
        report = first_plan(fewer, seed=seed, deadline=time.perf_counter() + min(left, 10.0))
        if report.plan is not None:
            out.append(
                f"a connected plan exists with {problem.num_reps - 1} territories instead of {problem.num_reps}, "
                "tolerances unchanged"
            )
    return out


def _one_territory_fewer(problem: Problem) -> Problem | None:
    """The problem without its last rep, where reps are interchangeable (same FTE, no locks, budgets, groups)."""
    if (
        problem.num_reps < 3
        or problem.budgets
        or (problem.fixed_rep >= 0).any()
        or any(m.grouped for m in problem.metrics)
        or len(set(problem.fte.tolist())) > 1
    ):
        return None
    keep = problem.pair_rep < problem.num_reps - 1
    smaller = replace(
        problem.restrict_pairs(keep),
        rep_ids=problem.rep_ids[:-1],
        fte=problem.fte[:-1],
        fte_exact=problem.fte_exact[:-1],
        class_allowed=problem.class_allowed[:, :-1],
        metrics=tuple(replace(m, groups=m.groups[:-1]) for m in problem.metrics),
    )
    for metric in problem.metrics:
        smaller = with_tolerance(smaller, metric.name, metric.tolerance * 100)
    return smaller


def _largest_units(problem: Problem, shown: int = 3) -> list[str]:
    """The units largest against a territory's upper bound: the ones whose splitting frees the most room."""
    out = []
    for metric in problem.metrics:
        if metric.hi is None:
            continue
        share = metric.values / max(float(metric.hi.min()), 1.0)
        big = np.argsort(-share)[:shown]
        big = big[share[big] >= 0.3]
        if len(big):
            named = ", ".join(f"'{problem.unit_ids[u]}' ({share[u]:.0%} of a territory's upper bound)" for u in big)
            out.append(
                f"balance of {metric.name}: the largest units leave little room to fit whole units around them: "
                f"{named}; splitting them into smaller units (a finer layer) would help"
            )
    return out


def _full_pairs(problem: Problem) -> tuple[Problem, dict[str, np.ndarray]]:
    """The problem with every unit-rep pair offered, and the masks the rules forbid."""
    units, reps = np.meshgrid(np.arange(problem.num_units), np.arange(problem.num_reps), indexing="ij")
    pair_unit, pair_rep = units.ravel(), reps.ravel()
    full = replace(
        problem,
        pair_unit=pair_unit,
        pair_rep=pair_rep,
        pair_cost=np.zeros(len(pair_unit), dtype=np.int64),
        pair_compactness=np.zeros(len(pair_unit)),
        pair_penalty=np.zeros(len(pair_unit)),
        pair_continuity=None,
    )
    forbidden: dict[str, np.ndarray] = {}
    locked = problem.fixed_rep[pair_unit]
    mask = (locked >= 0) & (locked != pair_rep)
    if mask.any():
        forbidden["locked and pinned accounts"] = mask
    for c, name in enumerate(problem.class_names):
        if name:
            mask = (problem.unit_class[pair_unit] == c) & ~problem.class_allowed[c][pair_rep]
            if mask.any():
                forbidden[f"hard segment rule for '{name}' accounts"] = mask
    offered = np.zeros((problem.num_units, problem.num_reps), dtype=bool)
    offered[problem.pair_unit, problem.pair_rep] = True
    rules_allow = np.ones(len(pair_unit), dtype=bool)
    for mask in forbidden.values():
        rules_allow &= ~mask
    pruned = rules_allow & ~offered.ravel()
    if pruned.any():
        forbidden["candidate_reps limit"] = pruned
    return full, forbidden


def _feasible(problem: Problem, seconds: float) -> bool | None:
    """Whether a plan exists: True (one found), False (proven none) or None (not known in time).

    Large problems try the LP start first (GLOP, then CP-SAT places the fractional units): CP-SAT alone often
    finds no first plan of a large model in the seconds an analysis can spend.
    """
    if len(problem.pair_unit) > LP_CHECK_PAIRS:
        from optimizer.relaxation import LpInfeasibleError, lp_start

        try:
            plan, _ = lp_start(problem, seconds=seconds)
        except LpInfeasibleError:
            return False
        if plan is not None:
            return True
    parts = build_cp_model(problem, objective=False)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = seconds
    solver.parameters.num_workers = 2
    code = solver.solve(parts.model)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return True
    return False if code == cp_model.INFEASIBLE else None


def explain_infeasible(problem: Problem, settings: SolveSettings) -> InfeasibleError:
    """Explain a CP-SAT infeasibility proof in terms of the scenario's rules.

    Parameters
    ----------
    problem
        The infeasible problem.
    settings
        The solve settings (the analysis uses at most their time limit).

    Returns
    -------
    InfeasibleError
        With the conflicting rules and, where one was found, a relaxation.
    """
    budget = min(settings.time_limit_s or 30.0, 30.0)
    if problem.contiguous:
        loose = replace(problem, contiguous=False)
        alone = _feasible(loose, budget / 4)
        if alone is False:
            return explain_conflicts(loose, budget)  # balance alone has no plan: name those rules
        return InfeasibleError(
            "The scenario has no feasible plan: contiguity blocks it.",
            _contiguity_reasons(problem, alone, 0.75 * budget, seed=settings.seed),
        )
    return explain_conflicts(problem, budget)


def _contiguity_reasons(problem: Problem, alone: bool | None, seconds: float, seed: int) -> list[str]:
    """Why contiguity blocks a proven-infeasible scenario, and the relaxations that yield a plan."""
    return [
        ("every tolerance can hold with territories in pieces (a plan was found)" if alone else "")
        + (", but " if alone else "")
        + "no plan keeps every territory one connected area (CP-SAT proved it)",
        *_contiguity_relaxations(problem, seconds, seed),
        *_largest_units(problem),
    ]


def explain_conflicts(problem: Problem, budget: float) -> InfeasibleError:
    """The rules in conflict and the relaxations found, within ``budget`` seconds (see :func:`explain_infeasible`)."""
    headline = "The scenario has no feasible plan: its hard rules cannot all hold together."
    reasons: list[str] = []
    core: list[str] = [f"balance:{m.name}" for m in problem.metrics] + [f"budget:{b.name}" for b in problem.budgets]
    if problem.num_units * problem.num_reps <= MAX_ANALYSIS_PAIRS:
        full, forbidden = _full_pairs(problem)
        parts = build_cp_model(full, switchable=True, forbidden=forbidden, objective=False)
        names = list(parts.switches)
        parts.model.add_assumptions([parts.switches[n] for n in names])
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = budget
        solver.parameters.num_workers = 1
        code = solver.solve(parts.model)
        if code == cp_model.INFEASIBLE:
            indices = set(solver.sufficient_assumptions_for_infeasibility())
            core = [n for n in names if parts.switches[n].index in indices]
            logger.info("conflicting rules: %s", core)
    described = []
    for name in core:
        if name.startswith("balance:"):
            metric = next(m for m in problem.metrics if m.name == name.split(":", 1)[1])
            described.append(f"balance of {metric.name} (±{metric.tolerance * 100:g} %)")
        elif name.startswith("budget:"):
            described.append(_budget_text(problem, name.split(":", 1)[1]))
        else:
            described.append(name)
    reasons.append("rules in conflict: " + "; ".join(described))
    for name in core:
        if not name.startswith("balance:"):
            continue
        metric = next(m for m in problem.metrics if m.name == name.split(":", 1)[1])
        current = metric.tolerance * 100
        for step in RELAX_STEPS:
            looser = min(current * step, 99.0)
            if _feasible(with_tolerance(problem, metric.name, looser), budget / len(RELAX_STEPS)):
                reasons.append(
                    f"balance of {metric.name}: a plan exists at ±{looser:g} % (now ±{current:g} %), "
                    "other rules unchanged"
                )
                break
            if looser >= 99.0:
                break
    for name in core:
        if name.startswith("budget:"):
            reasons.append(_looser_budget(problem, name.split(":", 1)[1], budget))
    reasons.append(
        "loosen a tolerance or move budget above, make hard segment rules soft, or unlock or unpin accounts, "
        "then solve again"
    )
    return InfeasibleError(headline, reasons)


def _budget_text(problem: Problem, name: str) -> str:
    budget = next(b for b in problem.budgets if b.name == name)
    return f"move budget (continuity.{_budget_key(name)}: at most {_shown(budget, budget.limit)} moved)"


def _budget_key(name: str) -> str:
    return "max_moved_accounts" if name == "accounts" else "max_moved_potential_pct"


def _shown(budget: MoveBudget, limit: int) -> str:
    """A budget limit as the scenario writes it: accounts, or % of the total potential."""
    real = limit / budget.scale
    if budget.name == "accounts":
        return f"{real:g} account" if real == 1 else f"{real:g} accounts"
    return f"{100.0 * real / budget.reference:.4g} % of potential" if budget.reference > 0 else f"{real:g} potential"


def _looser_budget(problem: Problem, name: str, seconds: float) -> str:
    """Name the smallest budget found at which a plan exists (other rules unchanged), and one proven too small."""
    budget = next(b for b in problem.budgets if b.name == name)
    most = int(budget.unit_total.sum())
    key = _budget_key(name)

    def at(limit: int) -> bool | None:
        looser = replace(problem, budgets=tuple(replace(b, limit=limit) if b is budget else b for b in problem.budgets))
        return _feasible(looser, seconds / 4)

    works, too_small = None, None
    # a budget of 0 grows from a twentieth of what could move (multiples of 0 would try nothing larger)
    start = budget.limit if budget.limit > 0 else max(most // 20, 1)
    for factor in (2.0, 5.0, 10.0):
        limit = min(max(int(start * factor), budget.limit + 1), most)
        found = at(limit)
        if found:
            works = limit
            break
        if found is False:
            too_small = limit
        if limit >= most:
            break
    if works is None:
        without = replace(problem, budgets=tuple(b for b in problem.budgets if b is not budget))
        if _feasible(without, seconds / 5):
            return (
                f"continuity.{key}: no budget up to 10 times the current one was shown to work; "
                "without it a plan exists"
            )
        return f"continuity.{key}: even without this budget no plan was found; other rules conflict too"
    low = too_small if too_small is not None else budget.limit
    for _ in range(3):  # bisect towards the smallest budget that works
        if works - low <= max(1, works // 50):
            break
        middle = (low + works) // 2
        found = at(middle)
        if found:
            works = middle
        elif found is False:
            low, too_small = middle, middle
        else:
            break
    text = f"continuity.{key}: a plan exists at {_shown(budget, works)} (now {_shown(budget, budget.limit)})"
    if too_small is not None:
        text += f"; none exists at {_shown(budget, too_small)}"
    return text
