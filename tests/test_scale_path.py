"""The large-problem path: clustered LP start, balance repair, LNS among competing reps."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from ortools.sat.python import cp_model

from models.generate import write_instance
from optimizer import SolveSettings, score, solve
from optimizer import solver as solver_module
from optimizer.aggregate import aggregate, spread
from optimizer.lagrange import lagrangian_bound
from optimizer.lns import assignment_cost
from optimizer.model import build_cp_model
from optimizer.problem import INEXACT_MARGIN, Problem, group_ratio
from optimizer.relaxation import solve_lp
from optimizer.repair import descend, repair, violation
from optimizer.warmstart import greedy_assignment
from territory.pipeline import prepare
from tests.conftest import ScenarioWriter


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Problem:
    """3,000 generated accounts, 10 reps: segment rules, families, locks, metrics balanced within segments."""
    folder = tmp_path_factory.mktemp("generated")
    return prepare(write_instance(folder, 3000, 10, seed=5)).problem


def integer_model_accepts(problem: Problem, unit_rep: np.ndarray) -> bool:
    """Whether the CP-SAT model (exact integer bounds, as the LNS sees them) accepts the plan."""
    parts = build_cp_model(problem, objective=False)
    chosen = unit_rep[problem.pair_unit[parts.pairs]] == problem.pair_rep[parts.pairs]
    for var, on in zip(parts.x, chosen, strict=True):
        parts.model.add(var == int(on))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 20
    solver.parameters.num_workers = 1
    return solver.solve(parts.model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)


def test_repair_restores_every_tolerance_from_the_nearest_rep_plan(generated: Problem) -> None:
    """The greedy plan (current or nearest rep) breaks the tolerances; the repaired plan keeps every rule.

    Checked three ways: the scoring function, the CP-SAT model's exact integer bounds (grouped metrics as
    fractions of their group's load), and the hard rules (locked units stay, every pair is allowed).
    """
    problem = generated
    start = greedy_assignment(problem)
    assert violation(problem, start) > 0
    assert not score(problem, start).feasible
    repaired = repair(problem, start)
    assert repaired is not None
    assert violation(problem, repaired) == 0.0
    assert score(problem, repaired).feasible
    assert (problem.pairs_of(repaired) >= 0).all()
    locked = problem.fixed_rep >= 0
    assert locked.any()
    assert np.array_equal(repaired[locked], start[locked])
    assert integer_model_accepts(problem, repaired)


def test_repair_gives_up_when_no_plan_exists(scenario_writer: ScenarioWriter) -> None:
    """five_even: 5 identical accounts, 2 reps, accounts within 10 % (2.25..2.75 each): no plan can exist."""
    accounts = [
        {"id": f"a{i}", "name": f"A{i}", "latitude": 40.0, "longitude": -90.0 + 0.01 * i, "segment": "smb"}
        for i in range(5)
    ]
    reps = [
        {"id": f"R{i}", "name": f"Rep {i}", "latitude": 40.0, "longitude": -90.0, "segment": "any", "fte": 1.0}
        for i in range(2)
    ]
    problem = prepare(scenario_writer(accounts, reps, balance={"accounts": {"tolerance_pct": 10}})).problem
    assert repair(problem, np.zeros(5, dtype=np.int64)) is None


def test_spread_splits_a_fractional_cluster_in_proportion(scenario_writer: ScenarioWriter) -> None:
    """ten_alike: 10 identical accounts in one cluster that the LP gives 30 % to R0 and 70 % to R1: 3 and 7."""
    accounts = [
        {"id": f"a{i}", "name": f"A{i}", "latitude": 40.0, "longitude": -90.0, "segment": "smb", "potential": 5.0}
        for i in range(10)
    ]
    reps = [
        {"id": f"R{i}", "name": f"Rep {i}", "latitude": 40.0 + i, "longitude": -90.0, "segment": "any", "fte": 1.0}
        for i in range(2)
    ]
    problem = prepare(scenario_writer(accounts, reps)).problem
    cluster = np.zeros(problem.num_units, dtype=np.int64)
    coarse = aggregate(problem, cluster)
    assert coarse.num_units == 1
    x = np.where(coarse.pair_rep == 0, 0.3, 0.7)
    out = spread(problem, coarse, cluster, x)
    assert np.bincount(out, minlength=2).tolist() == [3, 7]


def test_clustered_path_finds_a_plan_within_tolerance(generated: Problem, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced onto the clustered path, the solve returns a plan within every tolerance and an honest bound."""
    problem = generated
    monkeypatch.setattr(solver_module, "AGGREGATE_PAIRS", 0)
    result = solve(problem, SolveSettings(time_limit_s=8, workers=1))
    assert result.has_plan
    assert result.statistics["method"].startswith("clustered LP start")
    assert result.statistics["clusters"] < problem.num_units
    checked = score(problem, result.unit_rep)
    assert checked.feasible
    assert result.objective == pytest.approx(checked.objective, rel=1e-9)
    assert 0 < result.bound <= result.objective
    assert integer_model_accepts(problem, result.unit_rep)


def test_lagrangian_bound_reaches_the_lp_and_stays_below_plans(generated: Problem) -> None:
    """The Lagrangian bound: the LP's own duals give the LP optimum; from zero prices the bundle method gets
    within 5 % of it; and no bound exceeds the cost of a plan within tolerance."""
    problem = generated
    lp = solve_lp(problem)
    assert lp is not None and lp.link_duals is not None
    plan = repair(problem, greedy_assignment(problem))
    assert plan is not None
    upper = float(assignment_cost(problem, plan))
    at_duals = lagrangian_bound(problem, lp.link_duals, upper=upper, seconds=5, max_steps=0)
    assert at_duals == pytest.approx(lp.objective, rel=1e-6)
    searched = lagrangian_bound(problem, None, upper=upper, seconds=30, max_steps=300)
    assert 0.95 * lp.objective <= searched <= lp.objective * (1 + 1e-9)
    assert searched <= upper


def test_descent_lowers_the_cost_and_keeps_every_rule(generated: Problem) -> None:
    """Single-move descent from a repaired plan: cheaper, still within every bound of the integer model."""
    problem = generated
    plan = repair(problem, greedy_assignment(problem))
    assert plan is not None
    better = descend(problem, plan)
    assert assignment_cost(problem, better) < assignment_cost(problem, plan)
    assert score(problem, better).feasible
    locked = problem.fixed_rep >= 0
    assert np.array_equal(better[locked], plan[locked])
    assert integer_model_accepts(problem, better)


def test_group_ratio_pulls_inexactly_scaled_metrics_in(generated: Problem) -> None:
    """Within-segment bounds: exact metrics get (1 +- tolerance) x share, rounded ones a 1e-4 margin inside."""
    grouped = next(m for m in generated.metrics if m.grouped)
    share = Fraction(1, 3)
    exact = dataclasses.replace(grouped, exact=True, tolerance_exact=Fraction(1, 20))
    rounded = dataclasses.replace(exact, exact=False)
    assert Fraction(*group_ratio(exact, share, upper=True)) == Fraction(21, 20) * share
    assert Fraction(*group_ratio(exact, share, upper=False)) == Fraction(19, 20) * share
    assert Fraction(*group_ratio(rounded, share, upper=True)) == (Fraction(21, 20) - INEXACT_MARGIN) * share
    assert Fraction(*group_ratio(rounded, share, upper=False)) == (Fraction(19, 20) + INEXACT_MARGIN) * share
