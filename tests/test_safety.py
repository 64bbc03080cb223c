"""Plan folders appear whole or not at all; good plans survive failed, killed and interrupted runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from models.plan import Plan
from models.plan_io import PLAN_FILES, read_plan, recover, write_plan
from territory.pipeline import prepare, solve_prepared
from tests.conftest import EXAMPLE, two_towns


@pytest.fixture
def small_plan(scenario_writer) -> Plan:
    """The two-towns plan, solved."""
    accounts, reps = two_towns()
    return solve_prepared(prepare(scenario_writer(accounts, reps), time_limit_s=5, workers=1))


def _hidden(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".")]


def test_write_creates_the_folder_whole(small_plan: Plan, tmp_path: Path) -> None:
    out = write_plan(small_plan, tmp_path / "plan")
    assert {p.name for p in out.iterdir()} == set(PLAN_FILES)
    back = read_plan(out)
    assert len(back.assignments) == 6 and back.summary["status"] == "optimal"
    assert _hidden(tmp_path) == []


def test_a_failing_writer_leaves_nothing_and_keeps_the_old_plan(small_plan: Plan, tmp_path: Path) -> None:
    out = write_plan(small_plan, tmp_path / "plan")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(path: Path, plan: Plan) -> None:
        path.write_text("half a map")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_plan(small_plan, out, extra={"map.html": broken})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _hidden(tmp_path) == []
    with pytest.raises(RuntimeError):
        write_plan(small_plan, tmp_path / "fresh", extra={"map.html": broken})
    assert not (tmp_path / "fresh").exists()


def test_recover_restores_a_plan_moved_aside_by_a_killed_run(small_plan: Plan, tmp_path: Path) -> None:
    """A run killed between its two renames left the good plan in .plan.old-<dead pid>-x."""
    out = write_plan(small_plan, tmp_path / "plan")
    dead = _dead_pid()
    aside = tmp_path / f".plan.old-{dead}-abc123"
    out.rename(aside)
    (tmp_path / f".plan.tmp-{dead}-zzz999").mkdir()
    recover(out)
    assert {p.name for p in out.iterdir()} == set(PLAN_FILES)
    assert _hidden(tmp_path) == []


def test_recover_leaves_folders_of_live_runs_alone(tmp_path: Path) -> None:
    live = tmp_path / f".plan.tmp-{os.getppid()}-abc123"
    live.mkdir()
    recover(tmp_path / "plan")
    assert live.exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _start_solve(out: Path, time_limit: str = "60") -> subprocess.Popen[str]:
    """Start `territory solve` on the example set to search until the time limit (no gap target)."""
    scenario = yaml.safe_load(EXAMPLE.read_text())
    scenario["data"] = {key: str(EXAMPLE.parent / value) for key, value in scenario["data"].items()}
    scenario["solver"]["relative_gap"] = 0
    path = out.parent / "endless.yaml"
    path.write_text(yaml.safe_dump(scenario))
    code = "from territory.cli import main; main()"
    args = [sys.executable, "-c", code, "solve", str(path), "--out", str(out), "--time-limit", time_limit]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_search(process: subprocess.Popen[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"solve ended early: {process.communicate()}")
        time.sleep(0.2)


def test_kill_during_solve_leaves_no_folder_and_the_old_plan_intact(small_plan: Plan, tmp_path: Path) -> None:
    out = write_plan(small_plan, tmp_path / "plan")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    process = _start_solve(out)
    _wait_for_search(process, 8)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    recover(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in _hidden(tmp_path)] == []


def test_sigterm_during_solve_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    process = _start_solve(out)
    _wait_for_search(process, 8)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert not out.exists()
    assert _hidden(tmp_path) == []


def test_ctrl_c_during_solve_writes_the_best_plan_marked_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    process = _start_solve(out)
    _wait_for_search(process, 8)  # the first plan comes after about 3 s
    process.send_signal(signal.SIGINT)
    stdout, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["all_within_tolerance"] is True
    assert summary["solve_seconds"] < 60
    assert "Interrupted" in stdout
