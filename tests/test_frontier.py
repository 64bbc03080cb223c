"""``territory frontier``: growing move budgets, the table, the charts and a plan folder per budget with a plan.

Instances are the three towns of :mod:`tests.test_headcount`: a hire between
towns 0 and 1 needs exactly three accounts (12 over four reps within 20 %), so
budgets below three have no plan and three or more do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from territory.cli import app
from tests.conftest import two_towns, write_scenario
from tests.test_headcount import base_scenario, towns

runner = CliRunner()
STATUSES = {"optimal", "feasible", "infeasible", "no plan in time"}
HIRE = {"id": "HIRE-1", "latitude": 40.5, "longitude": -90.0}


def frontier(scenario: Path, out: Path, *extra: str) -> Result:
    """``territory frontier`` with a short time limit."""
    return runner.invoke(app, ["frontier", str(scenario), "--out", str(out), "--time-limit", "2", *extra])


def read_frontier(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "frontier.csv", dtype={"max_moved_accounts": str})


def plan_folder(out: Path, budget: str) -> Path:
    return out / "plans" / ("no-budget" if budget == "none" else f"budget-{budget}")


def discretionary_moves(folder: Path, departed: set[str] = frozenset()) -> int:
    """Accounts leaving a rep who stays, recounted from a plan folder's assignments.csv."""
    table = pd.read_csv(folder / "assignments.csv", dtype={"account_id": str, "rep_id": str, "current_rep": str})
    stays = table["current_rep"].notna() & ~table["current_rep"].isin(departed)
    return int((stays & (table["rep_id"] != table["current_rep"])).sum())


def check_rows(out: Path, departed: set[str] = frozenset()) -> pd.DataFrame:
    """Every row: a known status; a plan folder exactly where there is a plan, within its budget."""
    table = read_frontier(out)
    assert table["max_moved_accounts"].iloc[0] == "none"
    assert set(table["status"]) <= STATUSES
    for _, row in table.iterrows():
        budget, folder = row["max_moved_accounts"], plan_folder(out, row["max_moved_accounts"])
        if row["status"] in {"optimal", "feasible"}:
            moved = discretionary_moves(folder, departed)
            assert moved == row["discretionary_moves"], budget
            assert row["all_within_tolerance"]
            if budget != "none":
                assert moved <= int(budget), (budget, moved)
                summary = json.loads((folder / "summary.json").read_text())
                assert summary["moves"]["budget"]["max_moved_accounts"] == int(budget)
        else:
            assert not folder.exists(), budget
            assert isinstance(row["note"], str) and row["note"], budget
    return table


def test_budgets_give_one_row_each_plus_the_unlimited_row(tmp_path: Path) -> None:
    path = base_scenario(tmp_path, headcount={"add": [HIRE]})
    result = frontier(path, tmp_path / "out", "--budgets", "5,0,3,1")
    assert result.exit_code == 0, result.output
    table = check_rows(tmp_path / "out")
    assert table["max_moved_accounts"].tolist() == ["none", "0", "1", "3", "5"]
    status = dict(zip(table["max_moved_accounts"], table["status"], strict=True))
    assert status["0"] == status["1"] == "infeasible"  # the hire needs three accounts
    assert status["3"] in {"optimal", "feasible"} and status["5"] in {"optimal", "feasible"}
    assert table.set_index("max_moved_accounts").loc["3", "discretionary_moves"] == 3
    assert sorted(p.name for p in (tmp_path / "out" / "plans").iterdir()) == ["budget-3", "budget-5", "no-budget"]
    page = (tmp_path / "out" / "frontier.html").read_text()
    assert page.count("<svg") == 2  # travel and balance against accounts moved
    assert "plans/budget-3/report.html" in page and "plans/no-budget/report.html" in page
    assert "plans/budget-1/" not in page


def test_a_departing_reps_accounts_are_not_counted(tmp_path: Path) -> None:
    """R0 leaves and a hire joins near town 0: the hire can take R0's town, so budget 0 has a plan."""
    path = base_scenario(tmp_path, headcount={"remove": ["R0"], "add": [HIRE]})
    result = frontier(path, tmp_path / "out", "--budgets", "0,2")
    assert result.exit_code == 0, result.output
    table = check_rows(tmp_path / "out", departed={"R0"}).set_index("max_moved_accounts")
    assert table.loc["0", "status"] in {"optimal", "feasible"}
    assert table.loc["0", "discretionary_moves"] == 0 and table.loc["0", "accounts_moved"] == 4


def test_default_budgets_from_a_baseline_plan_folder(tmp_path: Path) -> None:
    """Every town is held by the next town's rep in last year's plan: each 3-cycle sent home shortens travel."""
    accounts, _ = towns()
    baseline = tmp_path / "last-year"
    baseline.mkdir()
    pd.DataFrame(
        {"account_id": [a["id"] for a in accounts], "rep_id": [f"R{(int(a['id'][1]) + 1) % 3}" for a in accounts]}
    ).to_csv(baseline / "assignments.csv", index=False)
    path = base_scenario(tmp_path / "case")
    result = frontier(path, tmp_path / "out", "--baseline", str(baseline))
    assert result.exit_code == 0, result.output
    table = check_rows(tmp_path / "out")
    budgets = [int(b) for b in table["max_moved_accounts"].iloc[1:]]
    assert budgets == sorted(set(budgets)) and len(budgets) >= 2
    unlimited = table.iloc[0]
    assert unlimited["discretionary_moves"] == 12  # everything goes home
    assert budgets[0] == 0 and budgets[-1] < 12
    # baseline owners come from the folder, not from the accounts' current_rep column
    table_0 = pd.read_csv(plan_folder(tmp_path / "out", "0") / "assignments.csv", dtype=str)
    assert (table_0["current_rep"] == table_0["rep_id"]).all()
    assert (table_0["current_rep"].str[1] != table_0["account_id"].str[1]).all()
    # loads stay equal only when moves go round all three towns: an optimal plan sends home as many 3-cycles as
    # its budget allows, and each extra cycle shortens travel
    found = table[table["status"] == "optimal"].iloc[1:]
    assert len(found) >= 2
    assert (found["discretionary_moves"] == [3 * (int(b) // 3) for b in found["max_moved_accounts"]]).all()
    assert found["workload_km"].is_monotonic_decreasing
    assert (found["workload_km"] > unlimited["workload_km"]).all()


def test_a_scenario_without_baseline_exits_2(tmp_path: Path) -> None:
    accounts, reps = two_towns()  # no current_rep column
    path = write_scenario(tmp_path, accounts, reps)
    result = frontier(path, tmp_path / "out", "--budgets", "0,1")
    assert result.exit_code == 2, result.output
    assert "baseline" in result.output and "scenario.yaml" in result.output
    assert not (tmp_path / "out").exists()


def test_a_scenario_whose_every_move_is_forced_exits_2(tmp_path: Path) -> None:
    """R0 holds every account and leaves: nothing is left for a budget to limit."""
    accounts, reps = towns(n_reps=2)
    for row in accounts:
        row["current_rep"] = "R0"
    path = write_scenario(tmp_path, accounts, reps, headcount={"remove": ["R0"], "add": [HIRE]})
    result = frontier(path, tmp_path / "out", "--budgets", "0,2")
    assert result.exit_code == 2, result.output
    assert "headcount.remove" in result.output and "forced" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("budgets", ["1,two", "-1", "1.5"])
def test_bad_budgets_exit_2(tmp_path: Path, budgets: Any) -> None:
    path = base_scenario(tmp_path, headcount={"add": [HIRE]})
    result = frontier(path, tmp_path / "out", "--budgets", budgets)
    assert result.exit_code == 2, result.output
    assert "--budgets" in result.output
    assert not (tmp_path / "out").exists()
