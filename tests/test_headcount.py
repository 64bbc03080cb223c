"""Headcount reruns: scenarios that extend another, team edits, and the baseline a rerun is measured against.

The instances are small towns lined up north to south (see :func:`towns`), so
each solve takes a fraction of a second and its answer is clear by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from models.dataset import load_dataset
from models.scenario import load_scenario
from territory.cli import app
from tests.conftest import EXAMPLE, write_scenario

runner = CliRunner()
#: Keys every small scenario of these tests sets: a short, single-threaded, seeded solve.
SOLVER = {"time_limit_s": 3, "workers": 1, "seed": 0}


def towns(n_reps: int = 3, per_town: int = 4) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One town per rep, a degree of latitude apart; each rep holds its own town's accounts today.

    Rep ``Rj`` lives at latitude ``40 + j``; its town's accounts ``tjai`` sit
    within a few km of it, with ``current_rep`` ``Rj``, potential ``100 + 10 i``
    and workload 10. Nothing is locked.
    """
    accounts, reps = [], []
    for j in range(n_reps):
        reps.append(
            {
                "id": f"R{j}",
                "name": f"Rep {j}",
                "latitude": 40.0 + j,
                "longitude": -90.0,
                "segment": "any",
                "fte": 1.0,
            }
        )
        for i in range(per_town):
            accounts.append(
                {
                    "id": f"t{j}a{i}",
                    "name": f"T{j}A{i}",
                    "latitude": 40.0 + j + 0.01 * i,
                    "longitude": -90.0 + 0.01 * i,
                    "segment": "smb",
                    "potential": 100.0 + 10 * i,
                    "workload": 10.0,
                    "current_rep": f"R{j}",
                    "locked": False,
                }
            )
    return accounts, reps


def write_yaml(path: Path, body: dict[str, Any]) -> Path:
    """Write a scenario mapping to ``path`` (folders made on the way)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def base_scenario(folder: Path, **keys: Any) -> Path:
    """The three-town scenario (accounts within 20 %) in ``folder``; ``keys`` replace top-level keys."""
    accounts, reps = towns()
    body: dict[str, Any] = {"balance": {"accounts": {"tolerance_pct": 20}}, "solver": SOLVER}
    body.update(keys)
    return write_scenario(folder, accounts, reps, **body)


def solve(scenario: Path, out: Path, *extra: str) -> dict[str, Any]:
    """``territory solve`` a scenario; return its summary.json."""
    result = runner.invoke(app, ["solve", str(scenario), "--out", str(out), "--time-limit", "3", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text())


def read_assignments(folder: Path) -> pd.DataFrame:
    """A plan folder's assignments.csv with ids as strings."""
    return pd.read_csv(folder / "assignments.csv", dtype={"account_id": str, "rep_id": str, "current_rep": str})


def invalid(scenario: Path) -> str:
    """``territory validate`` a scenario that must be rejected as bad input; return the output."""
    result = runner.invoke(app, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    return result.output


# --------------------------------------------------------------------------- extends


def test_extends_overrides_only_what_the_child_sets(tmp_path: Path) -> None:
    """Mappings merge key by key, lists and plain values are replaced, unset keys come from the parent."""
    parent = base_scenario(
        tmp_path,
        name="annual",
        description="the annual plan",
        balance={"accounts": {"tolerance_pct": 20, "within": "segment"}, "workload": {"tolerance_pct": 30}},
        segment_rules={"smb": {"reps": ["smb", "enterprise"], "mode": "soft", "penalty_km": 80}},
        headcount={"remove": ["R0"]},
        solver={"time_limit_s": 3, "seed": 4},
    )
    child = write_yaml(
        tmp_path / "variant.yaml",
        {
            "extends": parent.name,
            "name": "variant",
            "balance": {"accounts": {"tolerance_pct": 40}},
            "segment_rules": {"smb": {"reps": ["smb"]}},
            "headcount": {"remove": ["R1"]},
            "solver": {"seed": 9},
        },
    )
    scenario = load_scenario(child).scenario
    assert scenario.name == "variant"
    assert scenario.description == "the annual plan"
    assert scenario.balance["accounts"].tolerance_pct == 40
    assert scenario.balance["accounts"].within == "segment"  # the parent's, beside the child's tolerance
    assert scenario.balance["workload"].tolerance_pct == 30  # a metric the child does not mention stays
    assert scenario.segment_rules["smb"].reps == ["smb"]  # a list is replaced, not appended to
    assert scenario.segment_rules["smb"].mode == "soft" and scenario.segment_rules["smb"].penalty_km == 80
    assert scenario.headcount.remove == ["R1"]
    assert scenario.solver.seed == 9 and scenario.solver.time_limit_s == 3
    # the parent itself is untouched
    assert load_scenario(parent).scenario.headcount.remove == ["R0"]


def test_extends_replaces_the_baseline_choice_whole(tmp_path: Path) -> None:
    """A child taking last year's plan folder over its parent's baseline scenario names one baseline, not two."""
    base_scenario(tmp_path)
    continuity = {"baseline": {"scenario": "scenario.yaml"}, "move_penalty_km": 300}
    write_yaml(tmp_path / "leave.yaml", {"extends": "scenario.yaml", "continuity": continuity})
    child = write_yaml(
        tmp_path / "from_plan.yaml", {"extends": "leave.yaml", "continuity": {"baseline": {"plan": "plans/annual"}}}
    )
    rules = load_scenario(child).scenario.continuity
    assert rules.baseline.plan == Path("plans/annual") and rules.baseline.scenario is None
    assert rules.move_penalty_km == 300  # the rest of continuity still merges
    write_yaml(tmp_path / "current.yaml", {"extends": "leave.yaml", "continuity": {"baseline": "current_rep"}})
    assert load_scenario(tmp_path / "current.yaml").scenario.continuity.baseline == "current_rep"


def test_extends_rebases_the_parents_relative_paths(tmp_path: Path) -> None:
    """A child in another folder (and its child in a third) reads the parent's data and baseline plan."""
    parent = base_scenario(tmp_path / "annual", continuity={"baseline": {"plan": "plans/last-year"}})
    child = write_yaml(
        tmp_path / "variants" / "leave.yaml",
        {"extends": "../annual/scenario.yaml", "name": "leave", "headcount": {"remove": ["R2"]}},
    )
    grandchild = write_yaml(
        tmp_path / "variants" / "deeper" / "leave_soft.yaml",
        {"extends": "../leave.yaml", "name": "leave soft", "balance": {"accounts": {"tolerance_pct": 50}}},
    )
    for path in (child, grandchild):
        loaded = load_scenario(path)
        scenario = loaded.scenario
        assert loaded.data_path(scenario.data.accounts).resolve() == (parent.parent / "accounts.csv").resolve()
        assert loaded.data_path(scenario.data.reps).resolve() == (parent.parent / "reps.csv").resolve()
        assert (
            loaded.data_path(scenario.continuity.baseline.plan).resolve()
            == (parent.parent / "plans" / "last-year").resolve()
        )
        assert scenario.headcount.remove == ["R2"]
    assert load_scenario(grandchild).scenario.balance["accounts"].tolerance_pct == 50
    # without the baseline plan the data load from the parent's folder
    write_yaml(
        tmp_path / "variants" / "current.yaml",
        {"extends": "../annual/scenario.yaml", "continuity": {"baseline": "current_rep"}},
    )
    dataset = load_dataset(load_scenario(tmp_path / "variants" / "current.yaml"))
    assert len(dataset.accounts) == 12 and list(dataset.reps["rep_id"]) == ["R0", "R1", "R2"]
    # the child's own data paths stay relative to the child
    pd.DataFrame(towns()[1][:2]).to_csv(tmp_path / "variants" / "two_reps.csv", index=False)
    write_yaml(
        tmp_path / "variants" / "own_reps.yaml",
        {
            "extends": "../annual/scenario.yaml",
            "data": {"reps": "two_reps.csv"},
            "continuity": {"baseline": "current_rep"},
        },
    )
    loaded = load_scenario(tmp_path / "variants" / "own_reps.yaml")
    assert loaded.data_path(loaded.scenario.data.reps).resolve() == (tmp_path / "variants" / "two_reps.csv").resolve()
    assert loaded.data_path(loaded.scenario.data.accounts).resolve() == (parent.parent / "accounts.csv").resolve()


@pytest.mark.parametrize("chain", [("a", "b"), ("a",), ("a", "b", "c")], ids=["two", "self", "three"])
def test_extends_loop_exits_2_naming_the_file_and_key(tmp_path: Path, chain: tuple[str, ...]) -> None:
    base_scenario(tmp_path)
    for name, parent in zip(chain, (*chain[1:], chain[0]), strict=True):
        write_yaml(tmp_path / f"{name}.yaml", {"extends": f"{parent}.yaml", "name": name})
    output = invalid(tmp_path / "a.yaml")
    assert "loop" in output and "extends" in output
    assert "a.yaml" in output and str(tmp_path) in output


def test_extends_missing_parent_exits_2_naming_the_file_and_key(tmp_path: Path) -> None:
    base_scenario(tmp_path)
    child = write_yaml(tmp_path / "child.yaml", {"extends": "annual.yaml", "name": "child"})
    output = invalid(child)
    assert "child.yaml" in output and "extends" in output and "annual.yaml" in output
    assert "does not exist" in output
    # a parent further up the chain is named in the file that points at it
    write_yaml(tmp_path / "grandchild.yaml", {"extends": "child.yaml"})
    output = invalid(tmp_path / "grandchild.yaml")
    assert "child.yaml" in output and "annual.yaml" in output


@pytest.mark.parametrize(
    ("name", "reps", "edit"),
    [("rep_leaves.yaml", 11, {"remove": ["R010"]}), ("two_hires.yaml", 14, {"add": ["HIRE-IND", "HIRE-CHI"]})],
)
def test_the_example_headcount_story_extends_the_annual_plan(name: str, reps: int, edit: dict[str, list[str]]) -> None:
    path = EXAMPLE.parent / name
    loaded = load_scenario(path)
    scenario, annual = loaded.scenario, load_scenario(EXAMPLE).scenario
    assert scenario.extends == Path("scenario.yaml")
    assert loaded.data_path(scenario.continuity.baseline.scenario).resolve() == EXAMPLE.resolve()
    assert scenario.balance == annual.balance and scenario.segment_rules == annual.segment_rules
    assert scenario.headcount.remove == edit.get("remove", [])
    assert [hire.id for hire in scenario.headcount.add] == edit.get("add", [])
    result = runner.invoke(app, ["validate", str(path)])  # checks the data; does not solve the annual plan
    assert result.exit_code == 0, result.output
    assert f"{reps} reps" in result.output and "2,000 accounts" in result.output


# --------------------------------------------------------------------------- headcount edits: bad input

#: A home base for hires between towns 1 and 2.
HOME = {"latitude": 41.5, "longitude": -90.0}


@pytest.mark.parametrize(
    ("headcount", "wanted"),
    [
        ({"remove": ["R9"]}, ["headcount.remove[0]", "R9"]),
        ({"remove": ["R1", "r2"]}, ["headcount.remove[1]", "r2"]),
        ({"change": {"R7": {"fte": 0.5}}}, ["headcount.change.R7", "R7"]),
        ({"add": [{"id": "R1", **HOME}]}, ["headcount.add[0].id", "R1"]),
        ({"add": [{"id": "H1", **HOME}, {"id": "H1", **HOME}]}, ["headcount.add", "H1", "twice"]),
        ({"add": [{"id": "H1", **HOME}, {"id": "H2"}]}, ["headcount.add[1]", "home"]),
        ({"remove": ["R1"], "change": {"R1": {"fte": 0.5}}}, ["R1", "removed and changed"]),
    ],
    ids=[
        "unknown-removed",
        "case-sensitive",
        "unknown-changed",
        "hire-reuses-id",
        "hire-twice",
        "hire-no-home",
        "both",
    ],
)
def test_bad_headcount_edits_exit_2_naming_the_key(
    tmp_path: Path, headcount: dict[str, Any], wanted: list[str]
) -> None:
    path = base_scenario(tmp_path, headcount=headcount)
    output = invalid(path)
    assert "scenario.yaml" in output
    for text in wanted:
        assert text in output, (text, output)


@pytest.mark.parametrize(
    ("headcount", "key"),
    [
        ({"add": [{"id": "H1", **HOME, "segment": "mid-market"}]}, "headcount.add[0]"),
        ({"change": {"R1": {"segment": "mid-market"}}}, "headcount.change.R1.segment"),
    ],
    ids=["hire", "change"],
)
def test_headcount_segment_not_in_the_rules_exits_2(tmp_path: Path, headcount: dict[str, Any], key: str) -> None:
    rules = {"smb": {"reps": ["smb"], "mode": "soft"}, "enterprise": {"reps": ["enterprise"], "mode": "hard"}}
    output = invalid(base_scenario(tmp_path, headcount=headcount, segment_rules=rules))
    assert key in output and "mid-market" in output and "segment rule" in output


def test_hires_need_no_home_base_when_no_rep_has_one(tmp_path: Path) -> None:
    accounts, reps = towns()
    for rep in reps:
        rep["latitude"] = rep["longitude"] = None
    path = write_scenario(
        tmp_path, accounts, reps, headcount={"add": [{"id": "H1"}]}, objective={"compactness_measure": "centre"}
    )
    dataset = load_dataset(load_scenario(path))
    assert list(dataset.reps["rep_id"]) == ["R0", "R1", "R2", "H1"]
    assert dataset.hires == ("H1",)


# --------------------------------------------------------------------------- headcount edits: what they do


def test_change_fte_and_segment_apply_to_the_team_not_the_file(tmp_path: Path) -> None:
    path = base_scenario(tmp_path, headcount={"change": {"R1": {"fte": 0.5}, "R2": {"segment": "Enterprise"}}})
    on_disk = (tmp_path / "reps.csv").read_text()
    dataset = load_dataset(load_scenario(path))
    reps = dataset.reps.set_index("rep_id")
    assert reps.loc["R1", "fte"] == 0.5 and reps.loc["R1", "segment"] == "any"
    assert reps.loc["R2", "segment"] == "enterprise" and reps.loc["R2", "fte"] == 1.0
    assert reps.loc["R0", "fte"] == 1.0
    assert (tmp_path / "reps.csv").read_text() == on_disk
    # a half-time rep's target is half: 12 accounts over 2.5 FTE, within 20 % -> R1 holds exactly 2
    summary = solve(path, tmp_path / "plan")
    territories = pd.read_csv(tmp_path / "plan" / "territories.csv").set_index("rep_id")
    assert territories.loc["R1", "accounts"] == 2 and territories.loc["R1", "fte"] == 0.5
    changes = pd.read_csv(tmp_path / "plan" / "changes.csv")
    assert len(changes) == summary["moves"]["accounts_moved"] >= 2
    assert set(changes["from_rep"]) == {"R1"} and set(changes["reason"]) == {"balance"}
    assert summary["moves"]["forced_moves"] == 0


def test_rep_changing_segment_hands_over_accounts_with_reason_segment(tmp_path: Path) -> None:
    """R2 moves from SMB to enterprise: its SMB town goes to SMB reps, the enterprise accounts come to it."""
    accounts, reps = towns()
    for rep in reps:
        rep["segment"] = "smb"
    for i in range(2):
        accounts.append(
            {
                **accounts[0],
                "id": f"ent{i}",
                "name": f"Enterprise {i}",
                "segment": "enterprise",
                "current_rep": "R0",
                "latitude": 40.02 + 0.01 * i,
            }
        )
    rules = {"smb": {"reps": ["smb"], "mode": "hard"}, "enterprise": {"reps": ["enterprise"], "mode": "hard"}}
    path = write_scenario(
        tmp_path,
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 99}},
        segment_rules=rules,
        headcount={"change": {"R2": {"segment": "enterprise"}}},
        solver=SOLVER,
    )
    solve(path, tmp_path / "plan")
    changes = pd.read_csv(tmp_path / "plan" / "changes.csv").set_index("account_id")
    town2 = [f"t2a{i}" for i in range(4)]
    assert set(changes.index) == {*town2, "ent0", "ent1"}
    assert set(changes.loc[town2, "to_rep"]) <= {"R0", "R1"}
    assert (changes.loc[["ent0", "ent1"], "to_rep"] == "R2").all()
    assert set(changes["reason"]) == {"segment"}


def test_departing_reps_accounts_all_move_and_their_locks_are_released(tmp_path: Path) -> None:
    accounts, reps = towns()
    accounts[0]["locked"] = True  # t0a0, locked to R0 who leaves
    accounts[5]["locked"] = True  # t1a1, locked to R1 who stays
    write_scenario(tmp_path, accounts, reps, balance={"accounts": {"tolerance_pct": 20}}, solver=SOLVER)
    leave = write_yaml(
        tmp_path / "leave.yaml",
        {
            "extends": "scenario.yaml",
            "name": "R0 leaves",
            "headcount": {"remove": ["R0"]},
            "continuity": {"move_penalty_km": 1000},
        },
    )
    summary = solve(leave, tmp_path / "plan")
    table = read_assignments(tmp_path / "plan").set_index("account_id")
    town0 = [f"t0a{i}" for i in range(4)]
    assert set(table["rep_id"]) == {"R1", "R2"}
    assert (table.loc[town0, "current_rep"] == "R0").all()
    assert (table.loc[town0, "move_reason"] == "departing rep").all()
    assert table.loc["t1a1", "rep_id"] == "R1"  # a lock with a rep who stays still holds
    changes = pd.read_csv(tmp_path / "plan" / "changes.csv")
    assert set(changes.loc[changes["from_rep"] == "R0", "account_id"]) == set(town0)
    assert set(changes.loc[changes["from_rep"] == "R0", "reason"]) == {"departing rep"}
    moves = summary["moves"]
    assert moves["departed_reps"] == ["R0"] and moves["forced_moves"] == 4
    assert moves["by_reason"]["departing rep"] == 4
    assert moves["per_rep"]["R0"]["departed"] is True and moves["per_rep"]["R0"]["accounts_lost"] == 4
    assert sum(r["accounts_gained"] for r in moves["per_rep"].values()) == moves["accounts_moved"]
    assert len(moves["notes"]) == 1
    assert "R0" in moves["notes"][0] and "t0a0" in moves["notes"][0] and "unlocked" in moves["notes"][0]
    assert "t1a1" not in moves["notes"][0]
    # 12 accounts over two reps within 20 %: R1 and R2 can absorb R0's town without losing their own, and with
    # moves this dear they do (without the penalty R1 would hand one of its own to R2 for shorter travel)
    assert moves["discretionary_moves"] == 0


def test_hire_gets_an_open_territory_with_reason_new_territory(tmp_path: Path) -> None:
    base_scenario(tmp_path)
    hire = {"id": "HIRE-1", "name": "Open territory", "latitude": 40.5, "longitude": -90.0, "segment": "any"}
    path = write_yaml(
        tmp_path / "hire.yaml",
        {"extends": "scenario.yaml", "name": "one hire", "headcount": {"add": [hire]}},
    )
    summary = solve(path, tmp_path / "plan")
    territories = pd.read_csv(tmp_path / "plan" / "territories.csv").set_index("rep_id")
    # 12 accounts over four reps within 20 %: exactly three each
    assert territories.loc["HIRE-1", "accounts"] == 3 and territories.loc["HIRE-1", "name"] == "Open territory"
    table = read_assignments(tmp_path / "plan")
    mine = table[table["rep_id"] == "HIRE-1"]
    assert len(mine) == 3 and set(mine["move_reason"]) == {"new territory"}
    assert mine["current_rep"].isin(["R0", "R1", "R2"]).all()
    moves = summary["moves"]
    assert moves["new_territories"] == ["HIRE-1"] and moves["forced_moves"] == 0
    assert moves["per_rep"]["HIRE-1"]["accounts_gained"] == 3
    assert moves["by_reason"]["new territory"] == 3
    assert "HIRE-1" not in (tmp_path / "reps.csv").read_text()


# --------------------------------------------------------------------------- baseline from a plan folder


def _last_years_plan(folder: Path) -> Path:
    """A plan folder (only assignments.csv) in which R1 held t0a0 and t0a1, and R0 held t1a0."""
    accounts, _ = towns()
    owner = {a["id"]: a["current_rep"] for a in accounts}
    owner.update({"t0a0": "R1", "t0a1": "R1", "t1a0": "R0"})
    folder.mkdir(parents=True)
    pd.DataFrame({"account_id": list(owner), "rep_id": list(owner.values())}).to_csv(
        folder / "assignments.csv", index=False
    )
    return folder


@pytest.mark.parametrize("how", ["option", "scenario"])
def test_baseline_plan_folder_is_what_moves_are_counted_against(tmp_path: Path, how: str) -> None:
    baseline = _last_years_plan(tmp_path / "last-year")
    keys: dict[str, Any] = {"balance": {"accounts": {"tolerance_pct": 50}}}
    if how == "scenario":
        keys["continuity"] = {"baseline": {"plan": "../last-year"}}
    path = base_scenario(tmp_path / "case", **keys)
    extra = ("--baseline", str(baseline)) if how == "option" else ()
    summary = solve(path, tmp_path / "plan", *extra)
    table = read_assignments(tmp_path / "plan").set_index("account_id")
    last_year = pd.read_csv(baseline / "assignments.csv", dtype=str).set_index("account_id")["rep_id"]
    assert (table["current_rep"] == last_year.reindex(table.index)).all()
    moved = table["rep_id"] != table["current_rep"]
    assert (table["moved"] == moved).all()
    moves = summary["moves"]
    assert moves["accounts_moved"] == int(moved.sum())
    assert "last-year" in moves["baseline"] and "plan folder" in moves["baseline"]
    changes = pd.read_csv(tmp_path / "plan" / "changes.csv").set_index("account_id")
    assert set(changes.index) == set(table.index[moved])
    assert (changes["from_rep"] == last_year.reindex(changes.index)).all()


def test_baseline_plan_may_name_departing_reps(tmp_path: Path) -> None:
    baseline = _last_years_plan(tmp_path / "last-year")
    path = base_scenario(tmp_path / "case", headcount={"remove": ["R0"]})
    summary = solve(path, tmp_path / "plan", "--baseline", str(baseline))
    # R0 held t0a2, t0a3 and t1a0 in last year's plan: exactly those are forced to move
    table = read_assignments(tmp_path / "plan")
    forced = table[table["move_reason"] == "departing rep"]
    assert set(forced["account_id"]) == {"t0a2", "t0a3", "t1a0"}
    assert summary["moves"]["forced_moves"] == 3


def test_baseline_plan_with_an_unknown_rep_exits_2_naming_row_and_column(tmp_path: Path) -> None:
    baseline = _last_years_plan(tmp_path / "last-year")
    table = pd.read_csv(baseline / "assignments.csv", dtype=str)
    table.loc[2, "rep_id"] = "R99"  # spreadsheet row 4
    table.to_csv(baseline / "assignments.csv", index=False)
    path = base_scenario(tmp_path / "case")
    result = runner.invoke(
        app, ["solve", str(path), "--out", str(tmp_path / "plan"), "--baseline", str(baseline), "--time-limit", "3"]
    )
    assert result.exit_code == 2, result.output
    output = result.output
    assert "assignments.csv" in output and "row 4" in output and "rep_id" in output and "R99" in output
    assert not (tmp_path / "plan").exists()
    # the same through the scenario's continuity.baseline.plan, caught by validate
    keyed = base_scenario(tmp_path / "keyed", continuity={"baseline": {"plan": "../last-year"}})
    output = invalid(keyed)
    assert "assignments.csv" in output and "row 4" in output and "rep_id" in output


@pytest.mark.parametrize("command", ["validate", "solve"])
def test_baseline_scenarios_in_a_loop_exit_2(tmp_path: Path, command: str) -> None:
    """A scenario cannot wait for its own plan: itself, or through another scenario, as its baseline."""
    path = base_scenario(tmp_path, continuity={"baseline": {"scenario": "other.yaml"}})
    for name, baseline in (("other", "scenario.yaml"), ("itself", "itself.yaml")):
        write_yaml(
            tmp_path / f"{name}.yaml", {"extends": "scenario.yaml", "continuity": {"baseline": {"scenario": baseline}}}
        )
    options = ["--out", str(tmp_path / "plan")] if command == "solve" else []
    for start, chain in (
        (path, "scenario.yaml -> other.yaml -> scenario.yaml"),
        (tmp_path / "itself.yaml", "itself.yaml -> itself.yaml"),
    ):
        result = runner.invoke(app, [command, str(start), *options])
        assert result.exit_code == 2, result.output
        assert "continuity.baseline.scenario" in result.output and chain in result.output
    assert not (tmp_path / "plan").exists()


def test_baseline_scenario_with_a_rep_the_variant_lacks_exits_2_naming_the_key(tmp_path: Path) -> None:
    """A variant that drops R2 from its reps file instead of listing R2 under headcount.remove."""
    base_scenario(tmp_path)
    pd.DataFrame(towns()[1][:2]).to_csv(tmp_path / "two_reps.csv", index=False)
    variant = write_yaml(
        tmp_path / "variant.yaml",
        {
            "extends": "scenario.yaml",
            "data": {"reps": "two_reps.csv", "accounts": "unowned.csv"},
            "continuity": {"baseline": {"scenario": "scenario.yaml"}},
        },
    )
    accounts = pd.read_csv(tmp_path / "accounts.csv").assign(current_rep=None)
    accounts.to_csv(tmp_path / "unowned.csv", index=False)
    result = runner.invoke(app, ["solve", str(variant), "--out", str(tmp_path / "plan"), "--time-limit", "2"])
    assert result.exit_code == 2, result.output
    assert "variant.yaml" in result.output and "continuity.baseline.scenario" in result.output
    assert "'R2'" in result.output and "headcount.remove" in result.output
    assert result.output.count("'R2' of the baseline plan") == 1  # one message per rep, not per account


def test_baseline_folder_without_assignments_exits_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    path = base_scenario(tmp_path / "case", continuity={"baseline": {"plan": "../empty"}})
    output = invalid(path)
    assert "assignments.csv" in output and "empty" in output


def test_baseline_plan_listing_an_account_twice_exits_2(tmp_path: Path) -> None:
    baseline = _last_years_plan(tmp_path / "last-year")
    table = pd.read_csv(baseline / "assignments.csv", dtype=str)
    pd.concat([table, table.iloc[[3]]]).to_csv(baseline / "assignments.csv", index=False)  # t0a3 again, row 14
    output = invalid(base_scenario(tmp_path / "case", continuity={"baseline": {"plan": "../last-year"}}))
    assert "assignments.csv" in output and "row 14" in output and "account_id" in output and "t0a3" in output


def test_baseline_option_overrides_the_scenarios_plan_folder(tmp_path: Path) -> None:
    _last_years_plan(tmp_path / "last-year")
    (tmp_path / "empty").mkdir()  # the scenario's own baseline folder would be rejected
    path = base_scenario(tmp_path / "case", continuity={"baseline": {"plan": "../empty"}})
    summary = solve(path, tmp_path / "plan", "--baseline", str(tmp_path / "last-year"))
    assert "last-year" in summary["moves"]["baseline"]
