"""Scenario file in, plan out: the library calls the CLI strings together.

Everything the ``territory`` command does can be done from Python with these
functions::

    from territory.pipeline import solve_scenario, write_plan_folder
    plan = solve_scenario("scenarios/example/scenario.yaml", time_limit_s=20)
    write_plan_folder(plan, "plans/example")
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from maps import write_plan_map, write_report
from models.dataset import Dataset, load_dataset
from models.errors import InputError
from models.headcount import read_plan_assignments
from models.plan import Plan, SolveReport
from models.plan_excel import write_plan_excel
from models.plan_io import ExtraWriter, write_plan
from models.scenario import LoadedScenario, Scenario, load_scenario
from optimizer import Problem, ProgressCallback, ProgressEvent, SolveSettings, build_problem, solve
from optimizer.diagnose import presolve_checks
from optimizer.result import Result

logger = logging.getLogger(__name__)


class NoPlanError(Exception):
    """The solver stopped without a plan and without proving there is none (status UNKNOWN)."""


@dataclass(frozen=True)
class Prepared:
    """A scenario read, validated and turned into solver data."""

    loaded: LoadedScenario
    dataset: Dataset
    problem: Problem


def prepare(
    scenario_path: Path | str,
    *,
    time_limit_s: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    no_time_limit: bool = False,
    baseline_plan: Path | str | None = None,
    baselines: dict[Path, Plan] | None = None,
    solve_baseline: bool = True,
    on_step: Callable[[str], None] | None = None,
) -> Prepared:
    """Load a scenario and its data, apply solver overrides, build the problem.

    Parameters
    ----------
    scenario_path
        The scenario file.
    time_limit_s, seed, workers, no_time_limit
        Solver overrides (``None``: the scenario's own).
    baseline_plan
        A plan folder to use as the baseline, over the scenario's ``continuity.baseline``.
    baselines
        Plans already solved, by resolved scenario path: a scenario whose baseline is another scenario's plan
        takes it from here, and a baseline solved on the way is added (``territory compare`` shares them).
    solve_baseline
        Whether a baseline scenario that is not in ``baselines`` is solved first (``validate`` does not solve).
    on_step
        Called with the name of each long step as it starts (``loading data``, ``building the problem``).

    Raises
    ------
    models.errors.InputError
        Bad scenario or data.
    """
    loaded = load_scenario(scenario_path)
    scenario = loaded.scenario.with_solver(time_limit_s=time_limit_s, seed=seed, workers=workers)
    if no_time_limit:
        scenario = scenario.model_copy(update={"solver": scenario.solver.model_copy(update={"time_limit_s": None})})
    loaded = LoadedScenario(scenario=scenario, path=loaded.path)
    baseline, label, source_of_reps = None, "", None
    choice = scenario.continuity.baseline
    if baseline_plan is not None:
        baseline, label = read_plan_assignments(Path(baseline_plan)), f"plan folder {baseline_plan}"
    elif not isinstance(choice, str) and choice.scenario is not None:
        _check_baseline_chain(loaded)
        source = loaded.data_path(choice.scenario).resolve()
        known = (baselines or {}).get(source)
        if known is None and solve_baseline:
            logger.warning("solving the baseline scenario %s first (give --baseline PLAN_DIR to reuse a plan)", source)
            known = solve_prepared(
                prepare(source, time_limit_s=time_limit_s, seed=seed, workers=workers, baselines=baselines)
            )
            if baselines is not None:
                baselines[source] = known
        if known is not None:
            baseline = known.assignments()[["account_id", "rep_id"]].astype("string")
            label = f"plan of scenario {source.name}"
            source_of_reps = (loaded.path, "continuity.baseline.scenario")
    step = on_step or (lambda text: None)
    step("loading data")
    dataset = load_dataset(loaded, baseline=baseline, baseline_label=label, baseline_source=source_of_reps)
    step(f"building the problem ({len(dataset.accounts):,} accounts, {len(dataset.reps):,} reps)")
    return Prepared(loaded=loaded, dataset=dataset, problem=build_problem(dataset))


def _check_baseline_chain(loaded: LoadedScenario) -> None:
    """Raise when following ``continuity.baseline.scenario`` leads back to a scenario already on the way."""
    seen = [loaded.path]
    current = loaded
    while not isinstance(choice := current.scenario.continuity.baseline, str) and choice.scenario is not None:
        source = current.data_path(choice.scenario).resolve()
        if source in seen:
            chain = " -> ".join(path.name for path in (*seen, source))
            raise InputError.single(
                f"baseline scenarios lead back to {source.name} ({chain}): no plan can be solved first",
                file=current.path,
                column="continuity.baseline.scenario",
                hint="take the baseline from a scenario that does not depend on this one, or from a plan folder "
                "(continuity.baseline.plan, or --baseline)",
            )
        seen.append(source)
        current = load_scenario(source)


def check(prepared: Prepared) -> None:
    """Run the quick feasibility checks (raises :class:`optimizer.InfeasibleError`)."""
    presolve_checks(prepared.problem)


def plan_from_result(prepared: Prepared, result: Result) -> Plan:
    """Turn a solver result into a plan of accounts (units expanded to their accounts)."""
    if result.unit_rep is None:
        raise ValueError("the result holds no assignment")
    settings = prepared.dataset.scenario.solver
    report = SolveReport(
        status=result.status.value,
        objective=result.objective,
        bound=result.bound,
        gap=result.gap,
        solve_seconds=result.wall_seconds,
        time_limit_s=settings.time_limit_s,
        seed=settings.seed,
        workers=SolveSettings(workers=settings.workers).num_workers,
        units=prepared.problem.num_units,
        interrupted=result.interrupted,
        statistics=result.statistics,
    )
    return Plan(
        dataset=prepared.dataset,
        rep_index=result.unit_rep[prepared.problem.unit_of_account],
        report=report,
        unit_rep=result.unit_rep if prepared.dataset.units is not None else None,
    )


def solve_settings(scenario: Scenario) -> SolveSettings:
    """The solver settings of a scenario's ``solver`` section."""
    settings = scenario.solver
    return SolveSettings(
        time_limit_s=settings.time_limit_s,
        seed=settings.seed,
        workers=settings.workers,
        relative_gap=settings.relative_gap,
        work_limit=settings.work_limit,
    )


def solve_prepared(
    prepared: Prepared, progress: ProgressCallback | None = None, hint: np.ndarray | None = None
) -> Plan:
    """Solve a prepared scenario (``hint``: a rep row per unit to start from, when it keeps every rule).

    Raises
    ------
    optimizer.InfeasibleError
        No plan exists; the message says why.
    NoPlanError
        The time ran out before the first plan.
    """
    settings = prepared.dataset.scenario.solver
    result = solve(prepared.problem, solve_settings(prepared.dataset.scenario), progress=progress, hint=hint)
    if not result.has_plan:
        limit = settings.time_limit_s or 0.0
        stopped = "you stopped the search" if result.interrupted else f"the time limit of {limit:g} s"
        headline = (
            f"No plan was found before {stopped}, and the scenario was not proven infeasible either "
            f"(solver status {result.status.value})."
        )
        if result.advice:
            raise NoPlanError("\n".join([headline, *(f"  - {line}" for line in result.advice)]))
        raise NoPlanError(
            f"{headline} Try a longer limit (--time-limit {2 * limit:g}), looser tolerances, or "
            "solver.candidate_reps to shrink the model."
        )
    return plan_from_result(prepared, result)


def solve_scenario(
    scenario_path: Path | str,
    *,
    time_limit_s: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> Plan:
    """Read a scenario file, solve it and return the plan.

    Parameters
    ----------
    scenario_path
        The YAML scenario.
    time_limit_s, seed, workers
        Override the scenario's solver settings when given.
    progress
        Called with each better plan or bound.

    Returns
    -------
    models.plan.Plan
    """
    return solve_prepared(prepare(scenario_path, time_limit_s=time_limit_s, seed=seed, workers=workers), progress)


def write_plan_folder(
    plan: Plan,
    out_dir: Path | str,
    *,
    offline: bool = False,
    extra: Mapping[str, ExtraWriter] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Path:
    """Write the plan folder atomically: assignments, territories, summary, map, report and workbook.

    Parameters
    ----------
    plan
        The plan.
    out_dir
        The folder (replaced only once the new one is complete).
    offline
        Write ``map.html`` (and so the report's embedded map) so that it opens
        without any network: no tiles, scripts inlined from installed packages.
    extra
        Further files by name and their writers (the workbench adds its pins and scenario).
    on_step
        Called with ``writing <file>`` before each file.
    """
    writers = {
        "map.html": partial(write_plan_map, offline=offline),
        "report.html": write_report,
        "plan.xlsx": write_plan_excel,
        **(extra or {}),
    }
    on_file = None if on_step is None else (lambda name: on_step(f"writing {name}"))
    return write_plan(plan, out_dir, extra=writers, on_file=on_file)


__all__ = [
    "NoPlanError",
    "Prepared",
    "ProgressEvent",
    "check",
    "plan_from_result",
    "prepare",
    "solve_prepared",
    "solve_scenario",
    "solve_settings",
    "write_plan_folder",
]
