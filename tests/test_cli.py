"""The ``territory`` command end to end: exit codes, messages, files written."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from models.scenario import scenario_json_schema
from territory.cli import app
from tests.conftest import EXAMPLE, two_towns

runner = CliRunner()
PLAN_FILES = {"assignments.csv", "territories.csv", "summary.json", "map.html"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script as a user would."""
    exe = shutil.which("territory")
    command = [exe] if exe else [sys.executable, "-m", "territory.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def example_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The README's first command: solve the shipped example."""
    out = tmp_path_factory.mktemp("example") / "plan"
    return run("solve", str(EXAMPLE), "--out", str(out), "--time-limit", "30"), out


def test_example_solve_writes_the_four_files_within_tolerance(example_plan) -> None:
    result, out = example_plan
    assert result.returncode == 0, result.stderr
    assert {p.name for p in out.iterdir()} >= PLAN_FILES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] in {"optimal", "feasible"}
    assert summary["all_within_tolerance"] is True
    assert summary["gap"] is not None and 0 <= summary["gap"] <= 0.01
    assert summary["bound"] <= summary["objective"] + 1e-6
    for name in ("accounts", "potential", "workload"):
        metric = summary["metrics"][name]
        assert metric["max_deviation_pct"] <= metric["tolerance_pct"]
    assignments = pd.read_csv(out / "assignments.csv", dtype={"account_id": str, "rep_id": str})
    assert len(assignments) == 2000 and assignments["account_id"].is_unique
    for column in ("account_id", "rep_id", "segment", "potential", "workload", "distance_km", "current_rep"):
        assert column in assignments.columns
    territories = pd.read_csv(out / "territories.csv")
    assert len(territories) == 12
    assert territories["accounts"].sum() == 2000
    assert territories["potential"].sum() == pytest.approx(assignments["potential"].sum())
    for column in ("rep_id", "name", "segment", "fte", "accounts_deviation_pct", "workload_deviation_pct"):
        assert column in territories.columns
    page = (out / "map.html").read_text()
    assert all(name in page for name in territories["name"])
    assert "Plan written to" in result.stdout


def test_help_documents_every_command_and_option() -> None:
    top = run("--help")
    assert top.returncode == 0
    commands = get_command(app).commands  # typer's own click: commands and parameters carry their help
    assert set(commands) >= {"solve", "validate", "schema", "generate"}
    for name, command in commands.items():
        assert name in top.stdout
        assert command.help, f"command {name} has no help"
        for param in command.params:
            assert getattr(param, "help", None), f"parameter {param.name} of {name} has no help"
        page = runner.invoke(app, [name, "--help"])
        first_words = " ".join(command.help.split()[:3])
        assert page.exit_code == 0 and first_words in page.output


def test_solve_bad_input_exits_2_naming_file_row_and_column(scenario_writer) -> None:
    accounts, reps = two_towns()
    accounts[1]["latitude"] = "north"
    path = scenario_writer(accounts, reps)
    result = runner.invoke(app, ["solve", str(path), "--out", str(path.parent / "plan")])
    assert result.exit_code == 2
    assert "accounts.csv" in result.output and "row 3" in result.output and "latitude" in result.output
    assert not (path.parent / "plan").exists()


def test_solve_infeasible_exits_1_and_keeps_the_existing_plan(scenario_writer, tmp_path: Path) -> None:
    accounts, reps = two_towns()
    good = scenario_writer(accounts, reps, folder="good")
    out = tmp_path / "plan"
    assert runner.invoke(app, ["solve", str(good), "--out", str(out)]).exit_code == 0
    before = (out / "assignments.csv").read_text()
    # one account carries nearly all the potential: no split can be within 5 %
    accounts[0]["potential"] = 10_000.0
    bad = scenario_writer(accounts, reps, folder="bad", balance={"potential": {"tolerance_pct": 5}})
    result = runner.invoke(app, ["solve", str(bad), "--out", str(out)])
    assert result.exit_code == 1
    assert "No feasible plan" in result.output and "potential" in result.output
    assert (out / "assignments.csv").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".plan")], "temporary folders left behind"


def test_validate_reports_ok_and_bad_input(scenario_writer) -> None:
    ok = runner.invoke(app, ["validate", str(EXAMPLE)])
    assert ok.exit_code == 0 and "2,000 accounts" in ok.output
    missing = runner.invoke(app, ["validate", "does/not/exist.yaml"])
    assert missing.exit_code == 2 and "not found" in missing.output
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps, solver={"time_limt_s": 3})
    typo = runner.invoke(app, ["validate", str(path)])
    assert typo.exit_code == 2 and "time_limit_s" in typo.output


def test_usage_errors_exit_2() -> None:
    assert run("solve").returncode == 2
    assert run("solve", str(EXAMPLE), "--time-limit", "-1").returncode == 2
    assert run("frobnicate").returncode == 2


def test_schema_command_prints_the_published_schema(tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == scenario_json_schema()
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == scenario_json_schema()


def test_generate_makes_an_instance_that_validates(tmp_path: Path) -> None:
    folder = tmp_path / "gen"
    result = runner.invoke(app, ["generate", str(folder), "--accounts", "300", "--reps", "5", "--seed", "3"])
    assert result.exit_code == 0, result.output
    accounts = pd.read_csv(folder / "accounts.csv")
    assert len(accounts) == 300 and accounts["AccountId"].is_unique
    assert set(accounts["Segment"]) == {"SMB", "Mid", "Enterprise"}
    assert len(pd.read_csv(folder / "reps.csv")) == 5
    check = runner.invoke(app, ["validate", str(folder / "scenario.yaml")])
    assert check.exit_code == 0, check.output


def test_generator_is_deterministic_and_the_example_is_its_output(tmp_path: Path) -> None:
    """The shipped example is exactly what `territory generate` makes with seed 7."""
    folder = tmp_path / "again"
    assert (
        runner.invoke(app, ["generate", str(folder), "--accounts", "2000", "--reps", "12", "--seed", "7"]).exit_code
        == 0
    )
    shipped = EXAMPLE.parent
    for name in ("accounts.csv", "reps.csv"):
        assert (folder / name).read_bytes() == (shipped / name).read_bytes()


def test_no_plan_in_time_exits_1_with_the_limit_and_what_to_try(tmp_path: Path) -> None:
    """50 ms is too short for the example's LP start: status unknown, nothing written."""
    out = tmp_path / "plan"
    result = runner.invoke(app, ["solve", str(EXAMPLE), "--out", str(out), "--time-limit", "0.05"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "No plan found" in text and "time limit of 0.05 s" in text and "--time-limit" in text
    assert not out.exists()


def test_the_example_variants_validate() -> None:
    """The contiguous variant (Voronoi units) reads and passes the quick checks; the infeasible one is caught."""
    contiguous = runner.invoke(app, ["validate", str(EXAMPLE.parent / "contiguous.yaml")])
    assert contiguous.exit_code == 0, contiguous.output
    infeasible = runner.invoke(app, ["validate", str(EXAMPLE.parent / "infeasible.yaml")])
    assert infeasible.exit_code == 1 and "within segments" in " ".join(infeasible.output.split())
