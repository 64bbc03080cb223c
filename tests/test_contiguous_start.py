"""The contiguous first plan (optimizer.contiguous) on hand-made grids: every rule, and what blocks a plan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer import InfeasibleError, score
from optimizer.contiguous import Rules, first_plan, repair, seeded_start, tree_split_start
from optimizer.graph import Adjacency, patch_tree, split_patches
from territory.pipeline import prepare
from tests.conftest import write_scenario


def _grid(folder: Path, rows: int, cols: int, reps: list[dict], **scenario) -> Path:
    """One account per cell of a rows x cols grid (0.1 degree apart), units from a neighbour table (rook)."""
    import pandas as pd

    accounts = [
        {"id": f"c{r:02d}{c:02d}", "latitude": 40 + 0.1 * r, "longitude": -90 + 0.1 * c, "segment": "smb",
         "potential": float(1 + (r * cols + c) % 7), "workload": float(1 + (r + 2 * c) % 5), "current_rep": "",
         "locked": False}
        for r in range(rows)
        for c in range(cols)
    ]  # fmt: skip
    edges = [(f"c{r:02d}{c:02d}", f"c{r:02d}{c + 1:02d}") for r in range(rows) for c in range(cols - 1)]
    edges += [(f"c{r:02d}{c:02d}", f"c{r + 1:02d}{c:02d}") for r in range(rows - 1) for c in range(cols)]
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(edges, columns=["unit_a", "unit_b"]).to_csv(folder / "edges.csv", index=False)
    changes = scenario.pop("accounts", {})
    for account in accounts:
        account.update(changes.get(account["id"], {}))
    scenario.setdefault("units", {"source": "accounts", "adjacency": "edges.csv"})
    scenario.setdefault("territories", {"contiguous": True})
    return write_scenario(folder, accounts, reps, **scenario)


REPS = [
    {"id": "W", "latitude": 40.35, "longitude": -89.95, "segment": "any", "fte": 1.0},
    {"id": "E", "latitude": 40.35, "longitude": -89.25, "segment": "any", "fte": 1.0},
    {"id": "H", "latitude": 40.05, "longitude": -89.6, "segment": "any", "fte": 0.5},
]


def test_several_metrics_and_fte_shares(tmp_path: Path) -> None:
    """Three metrics at once, a half-time rep: a connected plan within every tolerance, found at once."""
    path = _grid(
        tmp_path,
        6,
        8,
        REPS,
        balance={
            "accounts": {"tolerance_pct": 10},
            "potential": {"tolerance_pct": 10},
            "workload": {"tolerance_pct": 10},
        },
    )
    problem = prepare(path).problem
    report = first_plan(problem, seed=1, max_attempts=20)
    assert report.plan is not None and score(problem, report.plan).feasible
    loads = np.bincount(report.plan, weights=problem.metrics[0].real, minlength=3)
    assert loads[2] == pytest.approx(loads[:2].mean() / 2, rel=0.21)  # half a share, within tolerances


def test_locked_units_seed_their_reps_territory_and_a_budget_holds(tmp_path: Path) -> None:
    """Locked cells at the far corners stay with their reps; at most 20 accounts leave their current reps."""
    owners = {
        f"c{r:02d}{c:02d}": {"current_rep": "W" if c < 3 else ("E" if c > 4 else "H")}
        for r in range(6)
        for c in range(8)
    }
    owners["c0000"].update(locked=True)
    owners["c0507"].update(locked=True, current_rep="E")
    owners["c0003"].update(locked=True, current_rep="H")
    path = _grid(
        tmp_path,
        6,
        8,
        REPS,
        accounts=owners,
        balance={"accounts": {"tolerance_pct": 15}},
        continuity={"max_moved_accounts": 20},
    )
    problem = prepare(path).problem
    report = first_plan(problem, seed=0, max_attempts=20)
    assert report.plan is not None and score(problem, report.plan).feasible
    ids = list(problem.unit_ids)
    assert report.plan[ids.index("c0000")] == 0
    assert report.plan[ids.index("c0507")] == 1
    assert report.plan[ids.index("c0003")] == 2
    assert problem.budgets[0].moved_by(report.plan) <= problem.budgets[0].limit


def test_grouped_metrics_and_hard_segment_rules(tmp_path: Path) -> None:
    """Enterprise cells only with the enterprise rep, accounts balanced within each segment team."""
    reps = [
        {"id": "S1", "latitude": 40.2, "longitude": -89.9, "segment": "smb"},
        {"id": "S2", "latitude": 40.2, "longitude": -89.4, "segment": "smb"},
        {"id": "X", "latitude": 40.4, "longitude": -89.6, "segment": "enterprise"},
    ]
    big = {f"c05{c:02d}": {"segment": "enterprise"} for c in range(8)}
    path = _grid(
        tmp_path,
        6,
        8,
        reps,
        accounts=big,
        balance={"accounts": {"tolerance_pct": 10, "within": "segment"}, "workload": {"tolerance_pct": 40}},
        segment_rules={
            "enterprise": {"reps": ["enterprise"], "mode": "hard"},
            "smb": {"reps": ["smb"], "mode": "soft"},
        },
    )
    problem = prepare(path).problem
    report = first_plan(problem, seed=0, max_attempts=20)
    assert report.plan is not None and score(problem, report.plan).feasible
    enterprise = [i for i, u in enumerate(problem.unit_ids) if str(u).startswith("c05")]
    assert (report.plan[enterprise] == 2).all()


def test_growth_starts_every_territory_at_its_home_unit(tmp_path: Path) -> None:
    """Seeded growth: each rep's territory holds the unit nearest its home base, and is one piece."""
    path = _grid(tmp_path, 6, 8, REPS[:2], balance={"accounts": {"tolerance_pct": 10}})
    problem = prepare(path).problem
    rules = Rules(problem)
    start = seeded_start(rules, np.random.default_rng(0))
    assert start is not None
    home = np.argmin(np.where(rules.allowed, rules.cost, np.inf), axis=0)
    assert start[home[0]] == 0 and start[home[1]] == 1
    assert split_patches(problem.adjacency, start, problem.contiguity_layer) == []


def test_tree_split_and_repair_on_a_one_layer_map(tmp_path: Path) -> None:
    path = _grid(tmp_path, 6, 8, REPS, balance={"workload": {"tolerance_pct": 5}})
    problem = prepare(path).problem
    rules = Rules(problem)
    rng = np.random.default_rng(3)
    start = next(s for s in (tree_split_start(rules, rng, None) for _ in range(20)) if s is not None)
    assert split_patches(problem.adjacency, start, problem.contiguity_layer) == []
    plan, violation = repair(rules, start, rng, deadline=None)
    assert violation == 0.0 and score(problem, plan).feasible


def test_branch_of_a_cut_unit_is_what_falls_away_with_it() -> None:
    """A path 0-1-2-3 with a spur 1-4: from root 0, unit 1 carries 2, 3 and 4 with it; 3 goes alone."""
    adjacency = Adjacency.of(5, np.array([[0, 1], [1, 2], [2, 3], [1, 4]]))
    inside = np.ones(5, dtype=bool)
    tree = patch_tree(adjacency, np.arange(5), inside, root=0)
    assert sorted(tree.branch(1).tolist()) == [1, 2, 3, 4]
    assert tree.branch(3).tolist() == [3]
    assert set(tree.hanging) == {1, 2}


def test_contiguity_not_balance_is_named_when_it_blocks(tmp_path: Path) -> None:
    """Two reps on a 1 x 5 strip of workloads 10, 1, 2, 1, 10: each needs 12 (±5 %), which {10, 2} and
    {10, 1, 1} give, but no two connected pieces of the strip do (10, 11, 13 or 14 at one end)."""
    cells = {f"c00{c:02d}": {"workload": w} for c, w in enumerate((10.0, 1.0, 2.0, 1.0, 10.0))}
    path = _grid(
        tmp_path,
        1,
        5,
        REPS[:2],
        accounts=cells,
        balance={"workload": {"tolerance_pct": 5}},
        solver={"time_limit_s": 10, "workers": 1},
    )
    from territory.pipeline import solve_prepared

    with pytest.raises(InfeasibleError) as caught:
        solve_prepared(prepare(path))
    text = str(caught.value)
    assert "contiguity blocks it" in text
    assert "with territories in pieces (a plan was found)" in text
    assert "a connected plan exists at ±10 % (now ±5 %)" in text
