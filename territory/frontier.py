"""The disruption frontier: how much each extra move buys in compactness and balance.

``territory frontier SCENARIO --out DIR`` first solves the scenario with no
limit on discretionary moves (the accounts of departing reps always move),
then again under growing budgets (``continuity.max_moved_accounts``), from the
fewest moves any balanced plan needs (the LP relaxation's minimum) up to what
the unlimited plan moved. The scenario's move penalty is set to zero, so that
each plan is the most compact one its budget allows. Each budget gives a plan within every
tolerance, or none (the LP relaxation proves no plan exists, or the time ran
out). The folder holds ``frontier.csv`` (one row per budget),
``frontier.html`` (the table and two charts: travel and worst deviation against
accounts moved) and a plan folder per budget with a plan, so the planner can
open the one they choose.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.formatting import label
from models.plan import Plan
from models.plan_io import write_atomic, write_folder
from optimizer import InfeasibleError, Problem, build_problem
from optimizer.relaxation import LpInfeasibleError, lp_start, solve_lp

if TYPE_CHECKING:
    from territory.pipeline import Prepared

logger = logging.getLogger(__name__)

#: Default budgets, as fractions of what the unlimited plan moves.
DEFAULT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class FrontierPoint:
    """One budget of the frontier.

    Attributes
    ----------
    budget
        Largest number of discretionary moves allowed; ``None`` for the unlimited solve.
    status
        ``optimal``, ``feasible``, ``infeasible`` (proven) or ``no plan in time``.
    plan
        The plan, when one was found.
    note
        Why there is no plan, when there is none.
    """

    budget: int | None
    status: str
    plan: Plan | None
    note: str = ""


def default_budgets(fewest: int, moved: int) -> list[int]:
    """Budgets from the fewest moves any plan needs to just under what the unlimited plan moves.

    Parameters
    ----------
    fewest
        A lower bound on the discretionary moves of any plan (:func:`fewest_moves`).
    moved
        Discretionary moves of the plan solved without a budget.
    """
    fewest = min(fewest, moved)
    return sorted({round(fewest + (moved - fewest) * f) for f in DEFAULT_FRACTIONS} - {moved})


def fewest_moves(problem: Problem, seconds: float | None = 10.0) -> tuple[int, np.ndarray | None]:
    """Fewest discretionary moves a plan within every tolerance needs, and a plan that moves few.

    The LP relaxation with "accounts moved" as its objective bounds the fewest moves from below; rounding it
    (:func:`optimizer.relaxation.lp_start`) gives a plan within every tolerance that moves nearly as few: a
    starting plan for tight budgets, where the usual start often finds nothing in time.

    Parameters
    ----------
    problem
        A problem with an accounts budget (its limit is ignored).
    seconds
        Time for rounding the LP into a plan (``None``: bounded by deterministic work).

    Returns
    -------
    tuple
        The LP's minimum, rounded up (0 when the LP fails), and the plan (``None`` when none was found).
    """
    budget = next((b for b in problem.budgets if b.name == "accounts"), None)
    if budget is None:
        return 0, None
    moved = budget.moved(problem.pair_unit, problem.pair_rep)
    fewest = replace(problem, pair_cost=moved.astype(np.int64), budgets=())
    try:
        plan, lp = lp_start(fewest, seconds=seconds)
    except LpInfeasibleError:
        return 0, None
    return (0 if lp is None else max(math.ceil(lp.objective - 1e-6), 0)), plan


def solve_frontier(
    scenario_path: Path | str,
    budgets: Sequence[int] | None = None,
    *,
    time_limit_s: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    baseline_plan: Path | str | None = None,
    on_step: Callable[[str], None] | None = None,
) -> list[FrontierPoint]:
    """Solve a scenario without a move budget and then under each budget.

    Parameters
    ----------
    scenario_path
        The scenario (its own ``max_moved_accounts`` is replaced by each budget in turn).
    budgets
        Largest discretionary moves to try; default :func:`default_budgets` of the unlimited plan.
    time_limit_s, seed, workers
        Solver overrides for every solve.
    baseline_plan
        A plan folder as the baseline (over the scenario's ``continuity.baseline``).
    on_step
        Called with a short description before each solve (progress display).

    Returns
    -------
    list of FrontierPoint
        The unlimited solve first, then the budgets in increasing order.

    Raises
    ------
    models.errors.InputError
        Bad scenario or data.
    optimizer.InfeasibleError
        The scenario has no plan even without a move budget.
    """
    from territory.pipeline import Prepared, prepare, solve_prepared

    prepared = prepare(
        scenario_path, time_limit_s=time_limit_s, seed=seed, workers=workers, baseline_plan=baseline_plan
    )
    scenario = prepared.dataset.scenario
    owners = prepared.dataset.accounts["current_rep"]
    if not owners.isin(prepared.dataset.reps["rep_id"]).any():
        from models.errors import InputError

        if owners.isna().all():
            raise InputError.single(
                "the frontier needs a baseline, and no account has a current rep",
                file=prepared.loaded.path,
                column="continuity.baseline",
                hint="map columns.accounts.current_rep, or set continuity.baseline to a plan folder or scenario",
            )
        raise InputError.single(
            "every account with a baseline rep belongs to a rep who leaves: all their moves are forced, so there "
            "is no discretionary move for a budget to limit",
            file=prepared.loaded.path,
            column="headcount.remove",
            hint="solve the scenario with `territory solve` instead",
        )

    def with_budget(budget: int | None) -> Prepared:
        # moves are limited by the budget alone: a move penalty would blur what each extra move buys
        continuity = scenario.continuity.model_copy(update={"max_moved_accounts": budget, "move_penalty_km": 0.0})
        dataset = replace(prepared.dataset, scenario=scenario.model_copy(update={"continuity": continuity}))
        return Prepared(loaded=prepared.loaded, dataset=dataset, problem=build_problem(dataset))

    if on_step is not None:
        on_step("no move budget")
    free = solve_prepared(with_budget(None))
    points = [FrontierPoint(budget=None, status=free.report.status, plan=free)]
    moved = int(free.moves()["discretionary_moves"])
    if on_step is not None:
        on_step("the fewest moves a balanced plan needs")
    lowest, few = fewest_moves(with_budget(len(prepared.dataset.accounts)).problem, scenario.solver.time_limit_s)
    if budgets is None:
        budgets = default_budgets(lowest, moved)
    start = few
    for budget in sorted(set(budgets)):
        if on_step is not None:
            on_step(f"at most {budget} moves")
        step = with_budget(budget)
        point = _solve_at(step, budget, start)
        points.append(point)
        if point.plan is not None:
            # a plan within a budget is within every larger one: the next budget starts from it
            start = _unit_rep(point.plan, step.problem)
    return points


def _unit_rep(plan: Plan, problem: Problem) -> np.ndarray:
    """Rep row of every unit of the problem a plan answers (families or geographic units)."""
    if plan.unit_rep is not None:
        return plan.unit_rep
    unit_rep = np.zeros(problem.num_units, dtype=np.int64)
    unit_rep[problem.unit_of_account] = plan.rep_index
    return unit_rep


def _solve_at(prepared: Prepared, budget: int, few: np.ndarray | None) -> FrontierPoint:
    """One budget: the LP relaxation first (a quick proof when the budget is too small), then the solve.

    ``few`` (a plan that moves few accounts, or the previous budget's plan) starts the search when it fits.
    """
    from territory.pipeline import NoPlanError, solve_prepared

    try:
        solve_lp(prepared.problem)
    except LpInfeasibleError:
        return FrontierPoint(
            budget, "infeasible", None, "no plan within tolerance moves this few accounts (LP relaxation)"
        )
    accounts = next(b for b in prepared.problem.budgets if b.name == "accounts")
    hint = few if few is not None and accounts.moved_by(few) <= accounts.limit else None
    try:
        plan = solve_prepared(prepared, hint=hint)
    except InfeasibleError as exc:
        return FrontierPoint(budget, "infeasible", None, str(exc).splitlines()[0])
    except NoPlanError:
        return FrontierPoint(budget, "no plan in time", None, "no plan found in the time limit")
    return FrontierPoint(budget, plan.report.status, plan)


def frontier_table(points: Sequence[FrontierPoint]) -> pd.DataFrame:
    """One row per budget: status, moves, travel, worst deviation of every balanced metric, gap."""
    rows = []
    for point in points:
        row: dict[str, object] = {
            "max_moved_accounts": "none" if point.budget is None else point.budget,
            "status": point.status,
        }
        if point.plan is not None:
            summary = point.plan.summary()
            moves = summary["moves"]
            row.update(
                {
                    "discretionary_moves": moves["discretionary_moves"],
                    "accounts_moved": moves["accounts_moved"],
                    "potential_moved_pct": moves["potential_moved_pct"],
                    "workload_km": summary["compactness"]["workload_km"],
                    "mean_distance_km": summary["compactness"]["mean_distance_km"],
                    "objective": summary["objective"],
                    "gap_pct": None if summary["gap"] is None else round(100 * summary["gap"], 3),
                    "all_within_tolerance": summary["all_within_tolerance"],
                }
            )
            for name, metric in summary["metrics"].items():
                if metric.get("balanced"):
                    row[f"{name}_max_deviation_pct"] = metric["max_deviation_pct"]
        row["note"] = point.note
        rows.append(row)
    return pd.DataFrame(rows)


def write_frontier(points: Sequence[FrontierPoint], out_dir: Path | str, *, offline: bool = False) -> Path:
    """Write the frontier folder whole or not at all (``frontier.csv``, ``frontier.html``, ``plans/``)."""
    from maps.trade_off import line_chart
    from territory.pipeline import write_plan_folder

    table = frontier_table(points)
    found = table[table["status"].isin(["optimal", "feasible"])].sort_values("discretionary_moves")
    deviation_columns = [c for c in table.columns if c.endswith("_max_deviation_pct")]
    charts = []
    if len(found):
        x = found["discretionary_moves"].tolist()
        moved = label("discretionary_moves").text
        charts.append(
            line_chart(
                x,
                {"travel": found["workload_km"].tolist()},
                x_label=moved,
                y_label=label("workload_km").text,
                title="Travel against accounts moved",
                tips={"travel": "workload_km"},
            )
        )
        worst = {c.removesuffix("_max_deviation_pct"): c for c in deviation_columns}
        charts.append(
            line_chart(
                x,
                {name: found[c].tolist() for name, c in worst.items()},
                x_label=moved,
                y_label=label("max_deviation_pct").text,
                title="Balance against accounts moved",
                tips=worst,
            )
        )

    def fill(tmp: Path) -> None:
        links = {}
        for point in points:
            if point.plan is None:
                continue
            name = "no-budget" if point.budget is None else f"budget-{point.budget}"
            write_plan_folder(point.plan, tmp / "plans" / name, offline=offline)
            links[name] = f"plans/{name}/report.html"
        table.to_csv(tmp / "frontier.csv", index=False)
        page = _page(table, charts, links)
        write_atomic(tmp / "frontier.html", lambda path: path.write_text(page, encoding="utf-8"))

    folder = write_folder(out_dir, fill)
    logger.info("frontier of %d budgets written to %s", len(points), folder)
    return folder


def _page(table: pd.DataFrame, charts: list[str], links: dict[str, str]) -> str:
    from maps.tables import TABLE_CSS, html_table
    from maps.trade_off import CHART_CSS

    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(name)}</a></li>' for name, href in links.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Disruption frontier</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1a1a1a; }}
div.charts {{ display: flex; flex-wrap: wrap; }}
{TABLE_CSS}{CHART_CSS}
</style></head>
<body>
<h1>Disruption frontier</h1>
<p>Each row solves the scenario with at most that many accounts leaving reps who stay (a departing rep's accounts
always move). Every plan found keeps every balance tolerance; a budget without a plan is too small to restore
balance.</p>
<div class="charts">{"".join(charts)}</div>
{html_table(table)}
<p><a href="frontier.csv">frontier.csv</a> holds every figure in full.</p>
<h2>Plans</h2><ul>{items}</ul>
</body></html>
"""
