"""Regional split: coarse solve, regions on Dask, border reconciliation; every rule of the whole problem kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from models.errors import InputError
from territory.cli import app
from territory.pipeline import prepare
from territory.regions import solve_by_regions, split_tolerances
from tests.test_sweep import write_small_instance


@pytest.fixture(scope="module")
def metros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """240 accounts and 5 reps in three metros (Chicago and Detroit: one enterprise and one SMB rep each;
    Minneapolis: a half-time SMB rep), balanced within segments."""
    return write_small_instance(tmp_path_factory.mktemp("metros"), 240)


@pytest.mark.parametrize("tolerance", [0.5, 5.0, 15.0, 50.0, 120.0])
def test_split_tolerances_compose_within_the_scenarios(tolerance: float) -> None:
    coarse, regional = split_tolerances(tolerance)
    a, b, t = coarse / 100, regional / 100, tolerance / 100
    assert 0 < b <= a
    assert (1 + a) * (1 + b) <= 1 + t
    assert (1 - a) * (1 - b) >= 1 - t or t >= 1


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
