"""Regional split: coarse solve, regions cut out of the national problem and solved on Dask, border
reconciliation; every rule of the whole problem kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from models.errors import InputError
from optimizer import SolveSettings, solve
from optimizer.problem import Problem
from optimizer.repair import violation
from territory import regions as regions_module
from territory.cli import app
from territory.pipeline import prepare
from territory.regions import (
    group_totals,
    region_bounds,
    rounded_lp_plan,
    solve_by_regions,
    subproblem,
    thin_pairs,
)
from tests.conftest import ScenarioWriter
from tests.test_sweep import write_small_instance


@pytest.fixture(scope="module")
def metros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 accounts and 5 reps in three metros (Chicago and Detroit: one enterprise and one SMB rep each;
    Minneapolis: a half-time SMB rep), balanced within segments."""
    return write_small_instance(tmp_path_factory.mktemp("metros"), 240)


@pytest.fixture
def towns(scenario_writer: ScenarioWriter) -> Problem:
    """Six SMB accounts in two towns (a0-a2 at lat 40, b0-b2 at lat 41) and one enterprise account (e0, at lat
    41, locked to RC); reps RA (SMB, town A), RB (SMB, town B) and RC (enterprise, town B, half time). SMB
    accounts may only go to SMB reps; accounts are balanced across all reps, workload within segments."""
    accounts = [
        {"id": f"{town}{i}", "name": f"{town}{i}", "latitude": lat + 0.01 * i, "longitude": -90.0, "segment": "smb"}
        for town, lat in (("a", 40.0), ("b", 41.0))
        for i in range(3)
    ] + [{"id": "e0", "name": "E0", "latitude": 41.02, "longitude": -90.01, "segment": "enterprise"}]
    for account in accounts:
        account.update(
            potential=100.0,
            workload=10.0 + (account["id"] == "e0") * 20.0,
            rep="RC" if account["id"] == "e0" else "RA",
            locked=account["id"] == "e0",
        )
    reps = [
        {"id": "RA", "name": "Rep A", "latitude": 40.0, "longitude": -90.0, "segment": "smb", "fte": 1.0},
        {"id": "RB", "name": "Rep B", "latitude": 41.0, "longitude": -90.0, "segment": "smb", "fte": 1.0},
        {"id": "RC", "name": "Rep C", "latitude": 41.0, "longitude": -90.02, "segment": "enterprise", "fte": 0.5},
    ]
    path = scenario_writer(
        accounts,
        reps,
        columns={"accounts": {"current_rep": "rep", "locked": "locked"}},
        balance={"accounts": {"tolerance_pct": 60}, "workload": {"tolerance_pct": 20, "within": "segment"}},
        segment_rules={
            "smb": {"reps": ["smb"], "mode": "hard"},
            "enterprise": {"reps": ["enterprise"], "mode": "soft"},
        },
    )
    return prepare(path).problem


def test_subproblem_cuts_pairs_costs_and_bounds_to_the_part(towns: Problem) -> None:
    units = np.flatnonzero(np.isin(towns.unit_ids, ["b0", "b1", "b2", "e0"]))
    reps = np.flatnonzero(np.isin(towns.rep_ids, ["RB", "RC"]))
    bounds = [(np.array([1, 0]), np.array([4, 2])), (np.array([10, 5]), np.array([40, 35]))]
    part = subproblem(towns, units, reps, bounds)

    assert list(part.unit_ids) == ["b0", "b1", "b2", "e0"] and list(part.rep_ids) == ["RB", "RC"]
    assert list(part.fte) == [1.0, 0.5] and part.cost_scale == towns.cost_scale
    # every pair of the part is a pair of the whole between the same unit and rep, at the same costs
    inside = np.isin(towns.pair_unit, units) & np.isin(towns.pair_rep, reps)
    assert len(part.pair_unit) == int(inside.sum())
    whole = {(int(u), int(r)): p for p, (u, r) in enumerate(zip(towns.pair_unit, towns.pair_rep, strict=True))}
    for p, (u, r) in enumerate(zip(part.pair_unit, part.pair_rep, strict=True)):
        q = whole[int(units[u]), int(reps[r])]
        assert part.pair_cost[p] == towns.pair_cost[q]
        assert part.pair_compactness[p] == towns.pair_compactness[q]
        assert part.pair_penalty[p] == towns.pair_penalty[q]
    # the hard rule and the lock come along: SMB accounts only with RB, e0 only with RC
    assert {
        (str(part.unit_ids[u]), str(part.rep_ids[r])) for u, r in zip(part.pair_unit, part.pair_rep, strict=True)
    } == {
        ("b0", "RB"),
        ("b1", "RB"),
        ("b2", "RB"),
        ("e0", "RC"),
    }
    assert part.fixed_rep.tolist() == [-1, -1, -1, 1]
    for metric, whole_metric, (lo, hi) in zip(part.metrics, towns.metrics, bounds, strict=True):
        assert not metric.grouped and metric.lo.tolist() == lo.tolist() and metric.hi.tolist() == hi.tolist()
        assert metric.values.tolist() == whole_metric.values[units].tolist()
    # the part's objective of a plan is that plan's share of the whole problem's objective
    plan = np.array([0, 0, 0, 1])
    whole_plan = np.zeros(towns.num_units, dtype=np.int64)
    whole_plan[units] = reps[plan]
    assert part.objective_of(plan) == pytest.approx(towns.real_cost(towns.pairs_of(whole_plan)[units]))
    # solved alone, or from its rounded LP, the part keeps its fixed bounds
    result = solve(part, SolveSettings(time_limit_s=None, work_limit=1))
    assert result.unit_rep is not None and violation(part, result.unit_rep) == 0
    rounded = rounded_lp_plan(part)
    assert rounded is not None and violation(part, rounded) == 0


def test_thin_pairs_keeps_cheapest_and_current_reps_and_enough_families_per_rep(towns: Problem) -> None:
    def pairs(problem: Problem) -> set[tuple[str, str]]:
        both = zip(problem.unit_ids[problem.pair_unit], problem.rep_ids[problem.pair_rep], strict=True)
        return {(str(u), str(r)) for u, r in both}

    # one cheapest rep per family, and its current one (RA for every SMB family); no rep cover
    thin = pairs(thin_pairs(towns, 1, cover=0.0))
    assert thin == {(a, "RA") for a in ("a0", "a1", "a2")} | {
        (b, r) for b in ("b0", "b1", "b2") for r in ("RA", "RB")
    } | {("e0", "RC")}
    # each rep keeps its cheapest families until they hold ``cover`` mean loads on every metric together: with
    # 1, RB's are town B's, kept already; with 2, RB also keeps town A's (each family is 0.76 of a mean load)
    assert pairs(thin_pairs(towns, 1, cover=1.0)) == thin
    assert pairs(thin_pairs(towns, 1, cover=2.0)) == thin | {(a, "RB") for a in ("a0", "a1", "a2")}
    # a generous cover keeps every pair
    assert pairs(thin_pairs(towns, 1, cover=100.0)) == pairs(towns)


def test_subproblem_refuses_accounts_without_a_rep_in_the_part(towns: Problem) -> None:
    units = np.flatnonzero(np.isin(towns.unit_ids, ["a0", "a1"]))
    reps = np.flatnonzero(towns.rep_ids == "RC")  # SMB accounts may not go to the enterprise rep
    bounds = [(np.array([0]), np.array([9]))] * 2
    with pytest.raises(ValueError, match=r"2 account families have no allowed rep.*'a0', 'a1'"):
        subproblem(towns, units, reps, bounds)


def test_region_bounds_keep_national_bounds_and_share_group_totals(towns: Problem) -> None:
    reps = np.flatnonzero(np.isin(towns.rep_ids, ["RB", "RC"]))
    plan = np.array([0, 0, 0, 1, 1, 1, 2])  # a0-a2 with RA, b0-b2 with RB, e0 with RC
    accounts, workload = region_bounds(towns, reps, group_totals(towns, plan), margin=0.9)
    # accounts are balanced across all reps: the national bounds of RB and RC
    assert accounts[0].tolist() == towns.metrics[0].lo[reps].tolist()
    assert accounts[1].tolist() == towns.metrics[0].hi[reps].tolist()
    # workload within segments: RB's target is half the SMB reps' 60 hours, RC's the enterprise rep's 30 hours,
    # each within 0.9 x 20 % (workload scaled to integers by the problem)
    scale = towns.metrics[1].scale
    assert workload[0].tolist() == [round(30 * 0.82 * scale), round(30 * 0.82 * scale)]
    assert workload[1].tolist() == [round(30 * 1.18 * scale), round(30 * 1.18 * scale)]


def test_split_by_metro_keeps_every_rule_of_the_whole_problem(tmp_path: Path, metros: Path) -> None:
    out = tmp_path / "plan"
    result = CliRunner().invoke(
        app, ["solve", str(metros), "--out", str(out), "--split-by", "Metro", "--time-limit", "20"]
    )
    assert result.exit_code == 0, result.output
    for region in ("Chicago", "Detroit", "Minneapolis"):
        assert region in result.output  # the regions table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_within_tolerance"] is True
    for metric in summary["metrics"].values():
        if metric["balanced"]:
            assert metric["max_deviation_pct"] <= metric["tolerance_pct"] + 1e-6
    statistics = summary["solver"]["statistics"]
    assert statistics["regions"] == 3 and "regional split by 'Metro'" in statistics["method"]
    assert summary["objective"] <= statistics["merged_objective"] + 1e-6  # reconciling only improves
    assignments = pd.read_csv(out / "assignments.csv", dtype={"rep_id": str, "current_rep": str})
    assert len(assignments) == 240 and assignments["rep_id"].notna().all()
    locked = assignments[assignments["locked"]]
    assert (locked["rep_id"] == locked["current_rep"]).all()
    enterprise = assignments[assignments["segment"].str.lower() == "enterprise"]
    assert set(enterprise["rep_id"]) <= {"R001", "R002"}  # the hard segment rule holds across regions


def test_split_by_a_missing_column_names_the_reps_file(tmp_path: Path, metros: Path) -> None:
    result = CliRunner().invoke(app, ["solve", str(metros), "--out", str(tmp_path / "p"), "--split-by", "Region"])
    assert result.exit_code == 2
    assert "reps.csv" in result.output and "'Region'" in result.output and "Metro" in result.output


def test_split_refuses_a_hard_move_budget(tmp_path: Path, metros: Path) -> None:
    body = yaml.safe_load(metros.read_text())
    body["continuity"] = {"max_moved_accounts": 10}
    path = metros.parent / "budget.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    with pytest.raises(InputError, match="move budget"):
        solve_by_regions(prepare(path), "Metro")


def test_regions_without_a_plan_start_from_their_cheapest_reps_and_are_repaired(
    metros: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no room around the targets: every region's sub-problem has no plan
    monkeypatch.setattr(regions_module, "REGION_MARGIN", 0.0)
    split = solve_by_regions(prepare(metros), "Metro", workers=2)
    table = split.regions.set_index("region")
    assert set(table.index) == {"Chicago", "Detroit", "Minneapolis"}
    assert (table["status"] != "feasible").all() and (table["status"] != "optimal").all()
    assert (table["note"] != "").all()
    assert table["accounts"].sum() == 240
    statistics = split.plan.summary()["solver"]["statistics"]
    assert statistics["regions_without_plan"] == 3 and statistics["merged_plan_repaired"] is True
    summary = split.plan.summary()
    assert summary["all_within_tolerance"] is True
