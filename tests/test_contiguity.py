"""Contiguity and centre-based compactness in the CP-SAT model (hand-made graphs, answers known)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from optimizer import SolveSettings, build_problem, score, solve
from optimizer.problem import Problem
from optimizer.score import disconnected
from territory.pipeline import prepare


def _grid_edges(rows: int, cols: int) -> np.ndarray:
    edges = []
    for r in range(rows):
        for c in range(cols):
            u = r * cols + c
            if c + 1 < cols:
                edges.append((u, u + 1))
            if r + 1 < rows:
                edges.append((u, u + cols))
    return np.array(edges, dtype=np.int64)


@pytest.fixture
def strip_with_far_rep(scenario_writer) -> Path:
    """A 2 x 6 grid of accounts (one row per latitude band); two reps whose home bases pull them apart.

    Rep West lives at the west end, rep East far east but *north-west* of the middle so that, without
    contiguity, the cheapest balanced split interleaves columns; with contiguity each rep must hold one
    connected block of six.
    """
    accounts = [
        {"id": f"a{r}{c}", "latitude": 40.0 + 0.1 * r, "longitude": -90.0 + 0.1 * c, "segment": "smb",
         "potential": 10.0, "workload": 1.0}
        for r in range(2)
        for c in range(6)
    ]  # fmt: skip
    reps = [
        {"id": "W", "latitude": 40.05, "longitude": -90.3, "segment": "any", "fte": 1.0},
        {"id": "E", "latitude": 40.05, "longitude": -89.2, "segment": "any", "fte": 1.0},
    ]
    return scenario_writer(accounts, reps, balance={"accounts": {"tolerance_pct": 1}})


def _grid_problem(path: Path, **changes):
    problem = build_problem(prepare(path).dataset)
    order = np.argsort(problem.unit_ids)  # ids a{row}{col} sort in grid order
    assert (order == np.arange(12)).all()
    return replace(problem, unit_edges=_grid_edges(2, 6), **changes)


def test_contiguous_split_of_a_strip_is_two_blocks(strip_with_far_rep: Path) -> None:
    problem = _grid_problem(strip_with_far_rep, contiguous=True)
    result = solve(problem, SolveSettings(time_limit_s=10, workers=2))
    assert result.status.value == "optimal"
    assert disconnected(problem, result.unit_rep) == []
    west = set(np.flatnonzero(result.unit_rep == 0))
    assert west == {0, 1, 2, 6, 7, 8}  # the three western columns
    assert score(problem, result.unit_rep).feasible


def test_disconnected_detects_a_split_territory(strip_with_far_rep: Path) -> None:
    problem = _grid_problem(strip_with_far_rep, contiguous=True)
    checker = np.array([0, 1] * 3 + [1, 0] * 3)
    assert sorted(disconnected(problem, checker)) == [0, 1]
    assert any("not connected" in v for v in score(problem, checker).violations)


def test_key_units_are_exempt_from_contiguity(strip_with_far_rep: Path) -> None:
    """Unit 5 (far east, top row) is a key account: rep West may hold it across the map."""
    key = np.zeros(12, dtype=bool)
    key[5] = True
    problem = _grid_problem(strip_with_far_rep, contiguous=True, unit_key=key)
    locked = problem.fixed_rep.copy()
    locked[5] = 0
    pairs = ~((problem.pair_unit == 5) & (problem.pair_rep == 1))
    problem = replace(problem, fixed_rep=locked).restrict_pairs(pairs)
    result = solve(problem, SolveSettings(time_limit_s=10, workers=2))
    assert result.unit_rep[5] == 0
    assert disconnected(problem, result.unit_rep) == []


def test_centre_compactness_picks_the_best_centre(scenario_writer) -> None:
    """Open territories (no home base): two clusters of three accounts; each territory takes one cluster.

    The 1-median of three points on a line 0.01 deg apart is the middle one: cost = 2 x 1 h x ~1.11 km.
    """
    accounts = [
        {"id": f"{town}{i}", "latitude": lat + 0.01 * i, "longitude": -90.0, "segment": "smb", "potential": 1.0,
         "workload": 1.0}
        for town, lat in (("a", 40.0), ("b", 42.0))
        for i in range(3)
    ]  # fmt: skip
    reps = [{"id": "T1", "latitude": "", "longitude": "", "fte": 1.0}, {"id": "T2", "latitude": "", "fte": 1.0}]
    path = scenario_writer(
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 1}},
        objective={"compactness": 1.0, "compactness_measure": "centre"},
    )
    problem = build_problem(prepare(path).dataset)
    result = solve(problem, SolveSettings(time_limit_s=10, workers=2))
    assert result.status.value == "optimal"
    groups = {frozenset(np.flatnonzero(result.unit_rep == r)) for r in range(2)}
    assert groups == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}
    step = 6371.0088 * np.radians(0.01)
    assert result.objective == pytest.approx(4 * step, rel=1e-4)


def test_locked_units_that_cannot_be_joined_are_named(strip_with_far_rep: Path) -> None:
    """Rep West holds locked units at both ends of the strip while a hard rule keeps the middle from it."""
    from optimizer import InfeasibleError
    from optimizer.diagnose import presolve_checks

    problem = _grid_problem(strip_with_far_rep, contiguous=True)
    locked = problem.fixed_rep.copy()
    locked[[0, 5]] = 0
    keep = ~(((problem.pair_unit == 0) | (problem.pair_unit == 5)) & (problem.pair_rep == 1))
    keep &= ~(np.isin(problem.pair_unit, [2, 3, 8, 9]) & (problem.pair_rep == 0))  # middle columns closed to West
    problem = replace(problem, fixed_rep=locked).restrict_pairs(keep)
    with pytest.raises(InfeasibleError, match="rep 'W' has accounts locked in units that no chain") as error:
        presolve_checks(problem)
    assert "a00" in str(error.value) and "a05" in str(error.value)


def _eight_accounts_three_territories(scenario_writer, seed: int, weightless: tuple[int, ...] = ()) -> Problem:
    """Eight accounts with uneven workloads (none for ``weightless``) on a small random map, three open
    territories, accounts within ±40 %, centre-based compactness."""
    rng = np.random.default_rng(seed)
    accounts = [
        {
            "id": f"a{i}",
            "latitude": 40.0 + float(rng.uniform(0, 1)),
            "longitude": -90.0 + float(rng.uniform(0, 1)),
            "segment": "smb",
            "potential": 1.0,
            "workload": 0.0 if i in weightless else float(rng.integers(1, 5)),
        }
        for i in range(8)
    ]
    reps = [{"id": f"T{r}", "latitude": "", "longitude": "", "fte": 1.0} for r in range(3)]
    path = scenario_writer(
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 40}},
        objective={"compactness": 1.0, "compactness_measure": "centre"},
    )
    return build_problem(prepare(path).dataset)


def _best_by_enumeration(problem: Problem) -> tuple[float, np.ndarray | None]:
    """The cheapest assignment within tolerance, by trying all of them."""
    import itertools

    best, plan = np.inf, None
    for combo in itertools.product(range(problem.num_reps), repeat=problem.num_units):
        unit_rep = np.array(combo)
        if score(problem, unit_rep).feasible and problem.objective_of(unit_rep) < best:
            best, plan = problem.objective_of(unit_rep), unit_rep
    return best, plan


def test_centre_bound_is_below_every_feasible_plan_and_tight_on_clusters(scenario_writer) -> None:
    """The balanced p-median LP bounds centre-based compactness from below: checked against every assignment.

    Eight accounts with uneven workloads on a small random-looking map, three open territories, accounts within
    ±40 %: every one of the 3^8 assignments within tolerance costs at least the bound, and the bound is positive
    (CP-SAT's own bound for the centre model stays near zero on instances like North Carolina's).
    """
    from optimizer.relaxation import centre_bound

    problem = _eight_accounts_three_territories(scenario_writer, seed=5)
    bound = centre_bound(problem)
    assert bound is not None and bound > 0
    best, _ = _best_by_enumeration(problem)
    assert np.isfinite(best)
    assert bound <= best + 1e-6
    result = solve(problem, SolveSettings(time_limit_s=10, workers=2))
    assert result.bound <= result.objective + 1e-6
    assert result.bound >= bound - 1e-6 or result.status.value == "optimal"


@pytest.mark.parametrize("near", [(0.0, 1), (4.0, 50)])
def test_pmedian_lagrangian_is_below_every_feasible_plan(scenario_writer, monkeypatch, near) -> None:
    """The Lagrangian p-median bound never exceeds the best plan, checked against every assignment, with short
    candidate lists (every centre then needs the exact check beyond its list) and with whole lists; two
    accounts without workload (weightless units made every centre look unsure once, and stalled the search)."""
    from optimizer import pmedian

    monkeypatch.setattr(pmedian, "NEAR_FACTOR", near[0])
    monkeypatch.setattr(pmedian, "NEAR_MARGIN", near[1])
    problem = _eight_accounts_three_territories(scenario_writer, seed=11, weightless=(2, 6))
    best, plan = _best_by_enumeration(problem)
    assert plan is not None
    for start in (None, plan):  # from zero prices and from the best plan's
        bound = pmedian.pmedian_bound(problem, upper=best, seconds=5.0, iterations=300, plan=start)
        assert bound is not None and 0 < bound <= best + 1e-6
