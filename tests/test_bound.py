"""The bound of large solves never exceeds an optimum that a full CP-SAT solve proves (small instances)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from optimizer import SolveSettings, solve
from optimizer import solver as solver_module
from optimizer.aggregate import clustered_start
from optimizer.disaggregation import disaggregation_rounds, pdlp_price_rounds
from optimizer.lagrange import group_ranges, lagrangian_bound
from optimizer.lns import assignment_cost
from optimizer.problem import Problem
from optimizer.relaxation import solve_lp
from optimizer.result import Status
from optimizer.score import score
from territory.pipeline import prepare
from tests.conftest import ScenarioWriter

TOWNS = ((40.0, -90.0), (40.6, -89.2), (39.5, -89.0))


def three_towns(scenario_writer: ScenarioWriter, seed: int, n_accounts: int = 240) -> Problem:
    """``n_accounts`` accounts scattered around three towns, four reps (two per segment) in two of them.

    Accounts within 15 %, potential within 10 % of each segment's reps, workload within 10 % across all: the
    rules bind (travel alone would give each rep its own town), as at scale, and a full CP-SAT solve proves the
    optimum in seconds.
    """
    rng = np.random.default_rng(seed)
    town = rng.integers(0, len(TOWNS), n_accounts)
    centre = np.array(TOWNS)[town]
    accounts: list[dict[str, Any]] = [
        {
            "id": f"a{i}",
            "name": f"A{i}",
            "latitude": float(centre[i, 0] + rng.normal(0, 0.15)),
            "longitude": float(centre[i, 1] + rng.normal(0, 0.15)),
            "segment": "enterprise" if rng.random() < 0.3 else "smb",
            "potential": float(round(rng.lognormal(10, 0.8))),
            "workload": float(rng.integers(2, 20)),
            "current_rep": None,
            "locked": False,
        }
        for i in range(n_accounts)
    ]
    homes = (TOWNS[0], TOWNS[1], TOWNS[0], TOWNS[1])
    reps = [
        {"id": f"R{i}", "name": f"Rep {i}", "latitude": lat, "longitude": lon, "segment": segment, "fte": 1.0}
        for i, ((lat, lon), segment) in enumerate(zip(homes, ("smb", "smb", "enterprise", "enterprise"), strict=True))
    ]
    balance = {
        "accounts": {"tolerance_pct": 15, "within": "segment"},
        "potential": {"tolerance_pct": 10, "within": "segment"},
        "workload": {"tolerance_pct": 10},
    }
    rules = {
        "enterprise": {"reps": ["enterprise"], "mode": "soft", "penalty_km": 50},
        "smb": {"reps": ["smb"], "mode": "soft", "penalty_km": 20},
    }
    path = scenario_writer(accounts, reps, balance=balance, segment_rules=rules, folder=f"towns{seed}")
    return prepare(path).problem


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bounds_never_exceed_a_proven_optimum(
    scenario_writer: ScenarioWriter, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Lagrangian bounds (from zero prices, from the clustered LP's prices and from PDLP's price rounds over the
    clusters) and the clustered solve's reported bound all lie at or below the optimum a full CP-SAT solve
    proves; the bound from prices is not weaker than from zero."""
    problem = three_towns(scenario_writer, seed)
    monkeypatch.setattr(solver_module, "FULL_MODEL_PAIRS", 10**9)
    full = solve(problem, SolveSettings(time_limit_s=60, workers=2, relative_gap=0.0))
    assert full.status is Status.OPTIMAL
    optimum = assignment_cost(problem, full.unit_rep)  # the integer objective CP-SAT minimised

    seen: list[np.ndarray] = []
    first = clustered_start(problem, deadline=None, on_clusters=seen.append)
    assert first.plan is not None and first.prices and len(seen) == 1
    priced = pdlp_price_rounds(problem, seen[0], deadline=None)
    assert priced is not None and priced[1].shape == first.prices[0].shape
    from_pdlp = lagrangian_bound(problem, (priced[1],), upper=optimum, seconds=5, max_steps=0)
    assert 0 < from_pdlp <= optimum and from_pdlp == pytest.approx(priced[0], rel=1e-8)
    for plan in (full.unit_rep, first.plan):
        assert_group_totals_in_range(problem, plan)
    rounds = disaggregation_rounds(problem, first.cluster, first.plan, deadline=None, max_rounds=3)
    assert rounds.bound <= optimum and rounds.cost >= optimum
    assert score(problem, rounds.plan).feasible and rounds.cost == assignment_cost(problem, rounds.plan)
    from_zero = lagrangian_bound(problem, None, upper=optimum, seconds=5, max_steps=100)
    from_prices = lagrangian_bound(problem, first.prices, upper=optimum, seconds=5, max_steps=0)
    searched = lagrangian_bound(problem, first.prices, upper=optimum, seconds=5, max_steps=100)
    print(
        f"optimum {optimum}, bounds: zero prices + 100 steps {from_zero:.0f}, clustered LP prices {from_prices:.0f},"
        f" PDLP's {from_pdlp:.0f}"
    )
    assert 0 < from_zero <= optimum
    no_time = lagrangian_bound(problem, first.prices, upper=optimum, seconds=0)
    cheapest = sum(int(problem.pair_cost[problem.pair_unit == u].min()) for u in range(problem.num_units))
    assert no_time == pytest.approx(cheapest, rel=1e-8) and no_time <= from_zero
    assert 0 < from_prices <= searched <= optimum

    monkeypatch.setattr(solver_module, "FULL_MODEL_PAIRS", 0)
    monkeypatch.setattr(solver_module, "AGGREGATE_PAIRS", 0)
    clustered = solve(problem, SolveSettings(time_limit_s=4, workers=1))
    assert clustered.statistics["bound"] == solver_module.AGGREGATED_BOUND
    assert clustered.bound <= full.objective * (1 + 1e-9)
    assert clustered.objective >= full.objective * (1 - 1e-9)


def assert_group_totals_in_range(problem: Problem, plan: np.ndarray) -> None:
    """Every group's total of a metric balanced within segment groups lies in :func:`group_ranges`; segment
    rules are soft here, so any unit may go to any group, and only the workload bounds narrow the ranges."""
    for metric in problem.metrics:
        if not metric.grouped:
            continue
        low, high = group_ranges(problem, metric)
        held = np.bincount(metric.groups[plan], weights=metric.values, minlength=len(low))
        assert np.all(low <= held) and np.all(held <= high), (metric.name, low, held, high)
        assert np.all(low > 0) and np.all(high < metric.values.sum()), (metric.name, low, high)


def test_rounds_end_at_the_units_lp(scenario_writer: ScenarioWriter) -> None:
    """Split until no cluster's members part ways, the rounds' bound is the LP relaxation over the units, and each
    round's bound is at least the one before."""
    problem = three_towns(scenario_writer, seed=4)
    first = clustered_start(problem, deadline=None)
    assert first.cluster is not None
    lp = solve_lp(problem)
    assert lp is not None
    bounds: list[float] = []
    rounds = disaggregation_rounds(
        problem, first.cluster, first.plan, deadline=None, max_rounds=50, on_round=lambda r: bounds.append(r.bound)
    )
    assert rounds.rounds < 50 and bounds == sorted(bounds)
    assert rounds.bound == pytest.approx(lp.objective, rel=1e-6)
    assert rounds.cost >= lp.objective - 1e-6
