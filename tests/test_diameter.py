"""Min-max-diameter territories (``objective.compactness_measure: diameter``, :mod:`optimizer.diameter`)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from optimizer import Status, solve
from optimizer.diameter import (
    GAP_STEP,
    MAX_TARGET_STEP,
    clique_bound,
    diameter_problem,
    far_clique,
    radius_bound,
    step_cap,
)
from optimizer.problem import Problem
from optimizer.score import score, territory_diameters
from optimizer.settings import SolveSettings
from territory.cli import app

#: Reproducible search (no wall-clock limit), both workers.
DETERMINISTIC = SolveSettings(time_limit_s=None, workers=2, work_limit=5.0)


def _planar(points: np.ndarray) -> np.ndarray:
    return np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))


def _brute_force(problem: Problem) -> float:
    """Smallest largest diameter over every assignment that keeps every balance rule (tiny problems only)."""
    assert problem.diameter_distance is not None
    best = np.inf
    for labels in itertools.product(range(problem.num_reps), repeat=problem.num_units):
        unit_rep = np.array(labels)
        if score(problem, unit_rep).feasible:
            best = min(best, territory_diameters(problem.diameter_distance, unit_rep, problem.num_reps).max())
    return float(best)


def test_two_clusters_on_a_line_split_into_their_own_territories() -> None:
    """Units at 0, 1, 2 and 10, 11, 12 on a line, 2 territories of 3 units: optimum 2 (each cluster alone)."""
    position = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    problem = diameter_problem({"accounts": np.ones(6)}, 0, 2, np.abs(position[:, None] - position[None, :]))
    result = solve(problem, DETERMINISTIC)
    assert result.status is Status.OPTIMAL
    assert result.objective == pytest.approx(2.0)
    assert result.bound == pytest.approx(2.0)
    assert result.unit_rep is not None
    assert len(set(result.unit_rep[:3].tolist())) == 1 and len(set(result.unit_rep[3:].tolist())) == 1


def test_balance_forces_a_wider_territory() -> None:
    """Units at 0, 1, 2, 3 and 10, 11, 3 units each: one cluster must give a unit away; optimum 8 ({3, 10, 11})."""
    position = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 11.0])
    problem = diameter_problem({"accounts": np.ones(6)}, 0, 2, np.abs(position[:, None] - position[None, :]))
    result = solve(problem, DETERMINISTIC)
    assert result.status is Status.OPTIMAL
    assert result.objective == pytest.approx(8.0)
    assert result.unit_rep is not None and result.unit_rep[3] == result.unit_rep[4] == result.unit_rep[5]


def test_optimum_matches_enumeration_with_two_metrics() -> None:
    """Nine random points, three territories, two metrics within 25 %: the optimum equals brute force."""
    rng = np.random.default_rng(7)
    distance = _planar(rng.random((9, 2)) * 100)
    problem = diameter_problem(
        {"accounts": np.ones(9), "demand": rng.integers(5, 15, 9)}, 25, 3, distance, edges=np.zeros((0, 2))
    )
    result = solve(problem, DETERMINISTIC)
    assert result.status is Status.OPTIMAL
    assert result.objective == pytest.approx(_brute_force(problem))


def test_locked_units_and_forbidden_pairs_are_respected() -> None:
    """A unit allowed only in territory 0 and another forbidden there: both rules hold in the plan."""
    rng = np.random.default_rng(3)
    distance = _planar(rng.random((10, 2)) * 50)
    allowed = np.ones((10, 2), dtype=bool)
    allowed[0] = [True, False]  # locked to territory 0
    allowed[1, 0] = False  # may not go to territory 0
    problem = diameter_problem({"accounts": np.ones(10)}, 20, 2, distance, allowed=allowed)
    result = solve(problem, DETERMINISTIC)
    assert result.unit_rep is not None
    assert result.unit_rep[0] == 0 and result.unit_rep[1] == 1
    assert score(problem, result.unit_rep).feasible
    assert result.objective == pytest.approx(_brute_force(problem))


def test_far_clique_units_are_pairwise_beyond_the_threshold() -> None:
    rng = np.random.default_rng(0)
    distance = _planar(rng.random((60, 2)) * 100)
    clique = far_clique(distance, 40.0, 8, rng)
    sub = distance[np.ix_(clique, clique)]
    assert len(clique) >= 2
    assert (sub[np.triu_indices(len(clique), 1)] > 40.0).all()


def test_target_step_is_wide_far_above_the_bound_and_narrow_near_it() -> None:
    """Twice the lower bound: the step may reach GAP_STEP x 50 %; 2 % above it, the usual largest step."""
    assert step_cap(80.0, 40.0) == pytest.approx(max(MAX_TARGET_STEP, 0.5 * GAP_STEP))
    assert step_cap(40.8, 40.0) == pytest.approx(MAX_TARGET_STEP)
    assert step_cap(40.0, 40.0) == pytest.approx(MAX_TARGET_STEP)


def test_bounds_never_exceed_the_enumerated_optimum() -> None:
    rng = np.random.default_rng(11)
    distance = _planar(rng.random((8, 2)) * 100)
    values = rng.integers(1, 10, 8)
    problem = diameter_problem({"demand": values}, 30, 2, distance)
    optimum = _brute_force(problem)
    metric = problem.metrics[0]
    assert metric.lo is not None
    assert clique_bound(distance, 2, rng) <= optimum + 1e-9
    minimum = np.full((1, 8), int(metric.lo.min()))
    assert radius_bound(distance, values[None, :], minimum) <= optimum + 1e-9


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(5, 7),
    k=st.integers(2, 3),
    tolerance=st.sampled_from([10, 25, 50]),
)
def test_plans_keep_balance_and_bound_stays_below_objective(seed: int, n: int, k: int, tolerance: int) -> None:
    """Any plan returned is within every tolerance, and the bound never passes the objective or the optimum."""
    rng = np.random.default_rng(seed)
    problem = diameter_problem(
        {"accounts": np.ones(n), "demand": rng.integers(1, 20, n)}, tolerance, k, _planar(rng.random((n, 2)) * 100)
    )
    optimum = _brute_force(problem)
    try:
        result = solve(problem, SolveSettings(time_limit_s=None, workers=2, work_limit=2.0))
    except Exception as error:  # infeasible balance: only acceptable when enumeration finds no plan either
        assert not np.isfinite(optimum), f"refused a feasible problem: {error}"
        return
    assert result.unit_rep is not None
    assert score(problem, result.unit_rep).feasible
    assert result.bound <= result.objective + 1e-9
    assert result.bound <= optimum + 1e-9
    assert result.objective >= optimum - 1e-9


def test_territory_solve_with_diameter_scenario(scenario_writer, tmp_path: Path) -> None:
    """``compactness_measure: diameter`` end to end through ``territory solve``: a plan within tolerance."""
    rng = np.random.default_rng(2)
    towns = [(40.0, -90.0), (40.0, -88.0), (41.5, -89.0)]
    accounts = [
        {
            "id": f"a{i}",
            "latitude": towns[i % 3][0] + 0.1 * rng.standard_normal(),
            "longitude": towns[i % 3][1] + 0.1 * rng.standard_normal(),
            "segment": "smb",
            "potential": float(rng.integers(50, 150)),
            "workload": 10.0,
        }
        for i in range(30)
    ]
    reps = [{"id": f"R{j}", "name": f"Rep {j}", "segment": "any"} for j in range(3)]
    scenario = scenario_writer(
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 5}, "potential": {"tolerance_pct": 40}},
        objective={"compactness_measure": "diameter"},
        solver={"time_limit_s": 5, "workers": 2},
    )
    out = tmp_path / "plan"
    outcome = CliRunner().invoke(app, ["solve", str(scenario), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_within_tolerance"]
    territories = pd.read_csv(out / "territories.csv")
    # three towns 110+ km apart, ten accounts each: each territory is one town, far smaller than the gaps
    assert territories["diameter_km"].max() < 100
    assert summary["objective"] == pytest.approx(territories["diameter_km"].max(), abs=1.0)
    assert summary["bound"] <= summary["objective"] + 1e-6
