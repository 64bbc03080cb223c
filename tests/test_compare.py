"""``territory compare``: scenario files and plan folders side by side, and the files it writes.

One small headcount story (see :func:`story`) is compared once per module and
its outputs are checked by several tests; a few more runs cover plan folders,
mixes and bad input.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

import territory.pipeline
from territory.cli import app
from tests.test_headcount import base_scenario, write_yaml

runner = CliRunner()
#: Labels of the story's scenarios, in the order compared.
LABELS = ("annual", "rep_leaves", "one_hire")
#: Columns kpis.csv must hold (a balanced metric adds its deviation and tolerance).
KPI_COLUMNS = (
    "plan",
    "source",
    "scenario",
    "status",
    "gap_pct",
    "accounts",
    "reps",
    "all_within_tolerance",
    "accounts_max_deviation_pct",
    "accounts_tolerance_pct",
    "workload_km",
    "mean_distance_km",
    "baseline",
    "accounts_moved",
    "forced_moves",
    "potential_moved_pct",
    "departed_reps",
    "new_territories",
)
#: KPI columns that describe where a plan came from rather than the plan.
ORIGIN = ["plan", "source"]


def story(folder: Path) -> dict[str, Path]:
    """The annual plan of three towns, R0 leaving, and a hire; both variants take the annual plan as baseline."""
    base_scenario(folder, name="annual").rename(folder / "annual.yaml")
    variant: dict[str, Any] = {"extends": "annual.yaml", "continuity": {"baseline": {"scenario": "annual.yaml"}}}
    leave = write_yaml(
        folder / "rep_leaves.yaml",
        {**variant, "name": "R0 leaves", "headcount": {"remove": ["R0"]}},
    )
    hire = write_yaml(
        folder / "one_hire.yaml",
        {**variant, "name": "one hire", "headcount": {"add": [{"id": "HIRE-1", "latitude": 40.5, "longitude": -90.0}]}},
    )
    return {"annual": folder / "annual.yaml", "rep_leaves": leave, "one_hire": hire}


def compare(*sources: Path, out: Path) -> Result:
    """``territory compare`` with a short time limit."""
    return runner.invoke(app, ["compare", *map(str, sources), "--out", str(out), "--time-limit", "3"])


def count_solves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the scenario name of every solve the pipeline runs (the baseline solved on the way included)."""
    solves: list[str] = []
    real = territory.pipeline.solve_prepared

    def counted(prepared: territory.pipeline.Prepared, *args: Any, **kwargs: Any) -> Any:
        solves.append(prepared.dataset.scenario.name)
        return real(prepared, *args, **kwargs)

    monkeypatch.setattr(territory.pipeline, "solve_prepared", counted)
    return solves


def read_kpis(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "kpis.csv", keep_default_na=False, na_values=[""])


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Path], Path, list[str]]:
    """The story's three scenarios compared once: (scenario files, comparison folder, solves run)."""
    folder = tmp_path_factory.mktemp("story")
    files = story(folder)
    with pytest.MonkeyPatch.context() as monkeypatch:
        solves = count_solves(monkeypatch)
        result = compare(*files.values(), out=folder / "comparison")
    assert result.exit_code == 0, result.output
    return files, folder / "comparison", solves


def test_three_scenarios_write_every_file(three) -> None:
    _, out, _ = three
    for name in ("kpis.csv", "reps.csv", "changes.csv", "compare.html", "compare_map.html"):
        assert (out / name).is_file(), name
    for label in LABELS:
        for name in ("assignments.csv", "summary.json", "changes.csv", "map.html", "report.html"):
            assert (out / "plans" / label / name).is_file(), (label, name)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".comparison")], "temporary folders left"


def test_kpis_one_row_per_plan_with_its_moves(three) -> None:
    files, out, _ = three
    kpis = read_kpis(out)
    assert kpis["plan"].tolist() == list(LABELS)
    assert [Path(s) for s in kpis["source"]] == [files[label] for label in LABELS]
    for column in KPI_COLUMNS:
        assert column in kpis.columns, column
    kpis = kpis.set_index("plan")
    assert kpis["reps"].tolist() == [3, 2, 4]
    assert (kpis["accounts"] == 12).all()
    assert kpis["status"].isin(["optimal", "feasible"]).all() and kpis["all_within_tolerance"].all()
    assert (kpis["accounts_max_deviation_pct"] <= kpis["accounts_tolerance_pct"]).all()
    assert kpis.loc["annual", "baseline"] == "current_rep column" and kpis.loc["annual", "accounts_moved"] == 0
    for label in ("rep_leaves", "one_hire"):
        assert "annual.yaml" in kpis.loc[label, "baseline"]
    assert kpis.loc["rep_leaves", "departed_reps"] == "R0" and kpis.loc["rep_leaves", "forced_moves"] == 4
    assert kpis.loc["one_hire", "new_territories"] == "HIRE-1" and kpis.loc["one_hire", "forced_moves"] == 0
    # the hire takes three accounts (12 over four reps within 20 %), all of them moves
    assert kpis.loc["one_hire", "accounts_moved"] >= 3


def test_changes_agree_with_every_plans_assignments(three) -> None:
    _, out, _ = three
    changes = pd.read_csv(out / "changes.csv", dtype=str)
    for column in ("plan", "baseline", "account_id", "from_rep", "to_rep", "potential", "workload", "reason"):
        assert column in changes.columns, column
    assert set(changes["plan"]) <= set(LABELS)
    assert set(changes["reason"]) <= {"departing rep", "new territory", "segment", "balance"}
    kpis = read_kpis(out).set_index("plan")
    for label in LABELS:
        table = pd.read_csv(out / "plans" / label / "assignments.csv", dtype=str).set_index("account_id")
        mine = changes[changes["plan"] == label].set_index("account_id")
        moved = table[table["current_rep"].notna() & (table["rep_id"] != table["current_rep"])]
        assert set(mine.index) == set(moved.index), label
        assert (mine["from_rep"] == moved.loc[mine.index, "current_rep"]).all(), label
        assert (mine["to_rep"] == moved.loc[mine.index, "rep_id"]).all(), label
        assert len(mine) == kpis.loc[label, "accounts_moved"]
    leaves = changes[changes["plan"] == "rep_leaves"]
    assert set(leaves.loc[leaves["from_rep"] == "R0", "reason"]) == {"departing rep"}
    assert len(leaves[leaves["from_rep"] == "R0"]) == 4
    hire = changes[(changes["plan"] == "one_hire") & (changes["to_rep"] == "HIRE-1")]
    assert len(hire) == 3 and set(hire["reason"]) == {"new territory"}
    # both variants are measured against the one annual plan: its owners are their from_rep
    annual = pd.read_csv(out / "plans" / "annual" / "assignments.csv", dtype=str).set_index("account_id")["rep_id"]
    variants = changes[changes["plan"] != "annual"].set_index("account_id")
    assert (variants["from_rep"] == annual.loc[variants.index]).all()


def test_reps_table_holds_every_rep_of_every_plan(three) -> None:
    _, out, _ = three
    reps = pd.read_csv(out / "reps.csv")
    assert reps["rep_id"].tolist() == ["R0", "R1", "R2", "HIRE-1"]
    for label in LABELS:
        assert reps[f"accounts:{label}"].sum() == 12, label
        assert f"potential:{label}" in reps.columns and f"workload:{label}" in reps.columns
    by_rep = reps.set_index("rep_id")
    assert pd.isna(by_rep.loc["R0", "accounts:rep_leaves"]) and pd.isna(by_rep.loc["HIRE-1", "accounts:annual"])
    assert by_rep.loc["HIRE-1", "accounts:one_hire"] == 3


def test_pages_name_every_plan(three) -> None:
    _, out, _ = three
    page = (out / "compare.html").read_text()
    figure = (out / "compare_map.html").read_text()
    for label in LABELS:
        assert label in page and label in figure, label
        assert f'href="plans/{label}/map.html"' in page
    assert "R0 leaves" in page and "one hire" in page


def test_a_shared_baseline_is_solved_once(three) -> None:
    _, _, solves = three
    # the annual plan, listed first, is the baseline of both variants: three solves, not five
    assert solves == ["annual", "R0 leaves", "one hire"]


def test_two_variants_solve_their_shared_baseline_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the annual scenario in the list, its plan is solved on the way, once, for both variants."""
    files = story(tmp_path)
    solves = count_solves(monkeypatch)
    result = compare(files["rep_leaves"], files["one_hire"], out=tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(solves) == ["R0 leaves", "annual", "one hire"]
    kpis = read_kpis(tmp_path / "out")
    assert kpis["plan"].tolist() == ["rep_leaves", "one_hire"]
    assert kpis["baseline"].str.contains("annual.yaml").all()
    assert not (tmp_path / "out" / "plans" / "annual").exists()  # only the plans compared are written


def test_a_baseline_solved_on_the_way_is_reused_when_listed_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = story(tmp_path)
    solves = count_solves(monkeypatch)
    result = compare(files["rep_leaves"], files["annual"], out=tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert solves == ["annual", "R0 leaves"]
    annual = pd.read_csv(tmp_path / "out" / "plans" / "annual" / "assignments.csv", dtype=str)
    changes = pd.read_csv(tmp_path / "out" / "changes.csv", dtype=str)
    owner = annual.set_index("account_id")["rep_id"]
    assert (changes["from_rep"] == owner.loc[changes["account_id"]].to_numpy()).all()


def test_plan_folders_reproduce_the_kpis_of_the_solved_scenarios(three, tmp_path: Path) -> None:
    _, out, _ = three
    folders = [out / "plans" / label for label in LABELS]
    result = compare(*folders, out=tmp_path / "again")
    assert result.exit_code == 0, result.output
    solved, read = read_kpis(out), read_kpis(tmp_path / "again")
    assert read["plan"].tolist() == list(LABELS)
    assert [Path(s) for s in read["source"]] == folders
    pd.testing.assert_frame_equal(read.drop(columns=ORIGIN), solved.drop(columns=ORIGIN))
    again = pd.read_csv(tmp_path / "again" / "changes.csv", dtype=str)
    pd.testing.assert_frame_equal(again, pd.read_csv(out / "changes.csv", dtype=str))
    assert pd.read_csv(tmp_path / "again" / "reps.csv").equals(pd.read_csv(out / "reps.csv"))
    assert not (tmp_path / "again" / "plans").exists()  # folders are linked, not copied
    page = (tmp_path / "again" / "compare.html").read_text()
    for folder in folders:  # linked relative to the page, so the page still works when both move together
        relative = Path(os.path.relpath(folder.resolve(), (tmp_path / "again").resolve())).as_posix()
        assert f'href="{relative}/map.html"' in page
    assert "file:" not in page and str(tmp_path) not in page


def test_a_plan_folder_beside_a_scenario_file(three, tmp_path: Path) -> None:
    files, out, _ = three
    result = compare(out / "plans" / "rep_leaves", files["one_hire"], out=tmp_path / "mix")
    assert result.exit_code == 0, result.output
    kpis = read_kpis(tmp_path / "mix")
    assert kpis["plan"].tolist() == ["rep_leaves", "one_hire"]
    assert kpis["departed_reps"].fillna("").tolist() == ["R0", ""]
    assert (tmp_path / "mix" / "plans" / "one_hire" / "assignments.csv").is_file()
    assert not (tmp_path / "mix" / "plans" / "rep_leaves").exists()
    solved = read_kpis(out).set_index("plan").loc["rep_leaves"]
    row = kpis.set_index("plan").loc["rep_leaves"]
    assert row["workload_km"] == solved["workload_km"] and row["accounts_moved"] == solved["accounts_moved"]


def test_the_same_scenario_twice_gets_two_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = story(tmp_path)
    solves = count_solves(monkeypatch)
    result = compare(files["annual"], files["annual"], out=tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert read_kpis(tmp_path / "out")["plan"].tolist() == ["annual", "annual-2"]
    assert solves == ["annual"]


# --------------------------------------------------------------------------- bad input


def test_fewer_than_two_sources_exits_2(tmp_path: Path) -> None:
    files = story(tmp_path)
    result = compare(files["annual"], out=tmp_path / "out")
    assert result.exit_code == 2 and "at least two" in result.output
    assert runner.invoke(app, ["compare", "--out", str(tmp_path / "out")]).exit_code == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["empty folder", "csv file", "missing"])
def test_a_source_that_is_no_plan_exits_2_naming_it(tmp_path: Path, kind: str) -> None:
    files = story(tmp_path)
    bad = {"empty folder": tmp_path / "not-a-plan", "csv file": tmp_path / "accounts.csv", "missing": tmp_path / "x"}[
        kind
    ]
    if kind == "empty folder":
        bad.mkdir()
    result = compare(files["annual"], bad, out=tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert bad.name in result.output
    assert "plan folder" in result.output
    assert not (tmp_path / "out").exists()


def test_a_plan_folder_whose_scenario_is_gone_exits_2(three, tmp_path: Path) -> None:
    _, out, _ = three
    folder = Path(shutil.copytree(out / "plans" / "annual", tmp_path / "copy"))
    summary = (folder / "summary.json").read_text().replace("annual.yaml", "gone.yaml")
    (folder / "summary.json").write_text(summary)
    result = compare(folder, out / "plans" / "rep_leaves", out=tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "summary.json" in result.output and "scenario_file" in result.output


def test_a_plan_folder_whose_team_changed_exits_2_naming_row_and_column(three, tmp_path: Path) -> None:
    """R2 left the reps file since the plan was solved: the plan's current_rep column still names R2."""
    files, out, _ = three
    story_folder = files["annual"].parent
    for name in ("annual.yaml", "one_hire.yaml", "accounts.csv", "reps.csv"):
        shutil.copy(story_folder / name, tmp_path / name)
    folder = Path(shutil.copytree(out / "plans" / "one_hire", tmp_path / "plan"))
    summary = (folder / "summary.json").read_text().replace(str(files["one_hire"]), str(tmp_path / "one_hire.yaml"))
    (folder / "summary.json").write_text(summary)
    table = pd.read_csv(folder / "assignments.csv", dtype=str)
    table.loc[0, "current_rep"] = None  # an account without baseline above: rows below must keep their file rows
    table.to_csv(folder / "assignments.csv", index=False)
    accounts = pd.read_csv(tmp_path / "accounts.csv")
    accounts.loc[accounts["current_rep"] == "R2", "current_rep"] = "R1"
    accounts.to_csv(tmp_path / "accounts.csv", index=False)
    reps = pd.read_csv(tmp_path / "reps.csv")
    reps[reps["id"] != "R2"].to_csv(tmp_path / "reps.csv", index=False)
    result = compare(folder, out / "plans" / "annual", out=tmp_path / "out")
    assert result.exit_code == 2, result.output
    rows = [int(i) + 2 for i in table.index[table["current_rep"] == "R2"]]
    assert rows and all(f"row {row}, column 'current_rep'" in result.output for row in rows), result.output
    assert str(folder / "assignments.csv") in result.output and "'R2'" in result.output


def test_a_scenario_without_plan_exits_1_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    files = story(tmp_path)
    tight = write_yaml(
        tmp_path / "tight.yaml", {"extends": "one_hire.yaml", "name": "tight", "continuity": {"max_moved_accounts": 1}}
    )
    result = compare(files["annual"], tight, out=tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "tight (" in result.output and "tight.yaml" in result.output
    assert "continuity.max_moved_accounts" in result.output
    assert not (tmp_path / "out").exists()
