"""The workbench (``territory serve``): the session's figures, edits, re-solves and saves, through the web API.

The routes are called in-process with FastAPI's ``TestClient`` (no socket). The plan is the shipped example
solved once for the session (tests/conftest.py); re-solves use short time limits. Every refused request is checked
to leave the plan (its version) and the disk unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from maps.assets import remote_assets
from models.generate import write_instance
from territory.cli import app as cli
from territory.pipeline import solve_scenario
from territory.serve import TOKEN_COOKIE, create_app
from territory.workbench import ConflictError, Workbench, open_workbench
from tests.conftest import EXAMPLE, two_towns, write_scenario

LOCAL = "http://127.0.0.1"


@pytest.fixture
def bench(example_plan_folder: Path, tmp_path: Path) -> Workbench:
    """A fresh workbench on a copy of the example plan (each test may save over it)."""
    folder = tmp_path / "plan"
    shutil.copytree(example_plan_folder, folder)
    return open_workbench(folder)


@pytest.fixture
def client(bench: Workbench) -> Iterator[TestClient]:
    with TestClient(create_app(bench), base_url=LOCAL) as test_client:
        yield test_client


def _accounts(state: dict) -> pd.DataFrame:
    """The page's account columns as a table (one row per account)."""
    keys = ("id", "name", "unit", "segment", "baseline", "potential")
    return pd.DataFrame({key: state["accounts"][key] for key in keys})


def _rows(kpis: dict) -> pd.DataFrame:
    return pd.DataFrame(kpis["rows"]).set_index("rep_id")


def _assert_figures_match_the_plan(bench: Workbench) -> None:
    """The incrementally kept figures equal the plan's own KPIs computed from scratch."""
    plan = bench.plan()
    territories = plan.territories().set_index("rep_id")
    rows = _rows(bench.kpis())
    for column in ("accounts", "potential", "workload", "workload_target", "potential_deviation_pct"):
        np.testing.assert_allclose(rows[column], territories[column], rtol=1e-9, atol=1e-3)
    for column in ("workload_km", "mean_distance_km", "max_distance_km"):
        np.testing.assert_allclose(rows[column], territories[column], atol=0.51)  # rounded for the page
    summary = plan.summary()
    assert bench.kpis()["summary"]["accounts_moved"] == summary["moves"]["accounts_moved"]
    assert bench.kpis()["summary"]["all_within_tolerance"] == summary["all_within_tolerance"]
    per_rep = summary["moves"]["per_rep"]
    assert rows["gained"].to_dict() == {r: per_rep[r]["accounts_gained"] for r in rows.index}
    assert rows["lost"].to_dict() == {r: per_rep[r]["accounts_lost"] for r in rows.index}
    assert bench.objective() == pytest.approx(bench.rules.objective_of(bench.unit_rep), rel=1e-9)


def _smb_accounts(bench: Workbench, n: int) -> list[str]:
    """Ids of SMB accounts heading their family (a family under an enterprise account follows its hard rule)."""
    accounts = bench.dataset.accounts
    free = accounts[(accounts["segment"] == "smb") & (accounts["account_id"] == accounts["family_id"])]
    return free["account_id"].head(n).tolist()


def test_figures_follow_every_edit_undo_and_redo(bench: Workbench) -> None:
    _assert_figures_match_the_plan(bench)
    smb = _smb_accounts(bench, 40)
    bench.assign(bench.units_of(smb[:25]), "R007")
    _assert_figures_match_the_plan(bench)
    bench.assign(bench.units_of(smb[10:40]), "R012")
    bench.unpin(bench.units_of(smb[:5]))
    _assert_figures_match_the_plan(bench)
    bench.undo()
    bench.undo()
    _assert_figures_match_the_plan(bench)
    bench.redo()
    _assert_figures_match_the_plan(bench)
    assert bench.kpis()["summary"]["pinned_units"] == len(set(bench.units_of(smb[:40])))


def test_assigning_three_accounts_changes_the_table_by_exactly_their_loads(
    client: TestClient, bench: Workbench
) -> None:
    state = client.get("/api/state").json()
    before = _rows(state["kpis"])
    accounts = _accounts(state)
    picked = accounts[accounts["id"].isin(_smb_accounts(bench, 3))]
    units = sorted(set(picked["unit"]))
    reps = [state["reps"][state["unit_rep"][u]]["rep_id"] for u in units]
    target = next(r["rep_id"] for r in state["reps"] if r["segment"] == "smb" and r["rep_id"] not in reps)
    response = client.post("/api/assign", json={"units": units, "rep": target, "version": state["version"]})
    assert response.status_code == 200, response.text
    update = response.json()
    assert update["version"] == state["version"] + 1
    assert update["units"] == units and update["reps"] == [state["reps"].index(
        next(r for r in state["reps"] if r["rep_id"] == target))] * 3 and update["pins"] == update["reps"]  # fmt: skip
    after = _rows(update["kpis"])
    moved = accounts[accounts["unit"].isin(units)]
    assert after.loc[target, "accounts"] - before.loc[target, "accounts"] == len(moved)
    assert after.loc[target, "potential"] - before.loc[target, "potential"] == pytest.approx(moved["potential"].sum())
    for rep in set(reps):
        lost = moved[[reps[units.index(u)] == rep for u in moved["unit"]]]
        assert before.loc[rep, "potential"] - after.loc[rep, "potential"] == pytest.approx(lost["potential"].sum())
    untouched = [r for r in before.index if r not in {target, *reps}]
    pd.testing.assert_series_equal(before.loc[untouched, "potential"], after.loc[untouched, "potential"])
    assert update["kpis"]["summary"]["status"] == "edited"
    undone = client.post("/api/undo", json={"version": update["version"]}).json()
    pd.testing.assert_frame_equal(_rows(undone["kpis"])[["accounts", "potential"]], before[["accounts", "potential"]])
    assert undone["pins"] == [-1, -1, -1]


def test_bad_requests_are_refused_and_change_nothing(client: TestClient, bench: Workbench) -> None:
    version = client.get("/api/kpis").json()["version"]
    enterprise = bench.dataset.accounts.query("segment == 'enterprise'")["account_id"].iloc[0]
    smb_rep = bench.dataset.reps.query("segment == 'smb'")["rep_id"].iloc[0]
    cases = [
        ({"accounts": ["A0000001"], "rep": "R999"}, 404, "rep 'R999' is not in this plan"),
        ({"accounts": ["NOPE"], "rep": "R001"}, 404, "not in this plan: account 'NOPE'"),
        ({"units": [10**7], "rep": "R001"}, 404, "unit numbers run from 0"),
        ({"accounts": [enterprise], "rep": smb_rep}, 422, "hard segment rule (enterprise) does not allow"),
        ({"accounts": ["A0000001"], "rep": "R001", "version": version - 1}, 409, "reload the page"),
        ({"rep": "R001"}, 400, "select at least one"),
        ({"accounts": ["A0000001"], "rep": "R001", "colour": "red"}, 422, "colour"),
    ]
    for body, status, message in cases:
        response = client.post("/api/assign", json=body)
        assert response.status_code == status, (body, response.text)
        assert message in response.text
    assert client.post("/api/undo", json={}).status_code == 409  # nothing to undo
    assert client.post("/api/assign", content="rep=R001", headers={"content-type": "text/plain"}).status_code == 415
    assert client.get("/api/assign").status_code == 405
    assert client.put("/api/assign", json={}).status_code == 405
    assert client.delete("/api/state").status_code == 405
    assert client.get("/api/solve/nope").status_code == 404
    assert client.get("/").status_code == 200 and "Territory workbench" in client.get("/").text
    assert client.get("/static/leaflet/leaflet.js").status_code == 200
    assert client.get("/api/kpis").json()["version"] == version
    assert TestClient(create_app(bench), base_url="http://evil.example").get("/").status_code == 400


def test_reoptimise_keeps_the_pins_within_the_budget_and_waits_for_accept(client: TestClient, bench: Workbench) -> None:
    state = client.get("/api/state").json()
    accounts = _accounts(state)
    smb_reps = [r["rep_id"] for r in state["reps"] if r["segment"] == "smb"]
    picked = accounts[accounts["id"].isin(_smb_accounts(bench, 101)[::50])]
    pinned = client.post("/api/assign", json={"accounts": picked["id"].tolist(), "rep": smb_reps[0]}).json()
    before = np.array(bench.unit_rep)
    started = client.post("/api/solve", json={"budget": 30, "time_limit_s": 8, "version": pinned["version"]})
    assert started.status_code == 202, started.text
    job = started.json()["job"]
    assert client.post("/api/solve", json={"budget": 30}).status_code == 409  # one solve at a time
    with client.stream("GET", f"/api/solve/{job}/events") as stream:
        lines = [line for line in stream.iter_lines() if line.startswith("data:")]
    events = [json.loads(line[5:]) for line in lines]
    assert events[-1]["state"] == "done", events[-1]
    assert any(e.get("objective") for e in events[:-1])  # progress came before the end
    assert np.array_equal(bench.unit_rep, before)  # nothing changes before the planner accepts
    changes = client.get(f"/api/solve/{job}/changes").json()
    assert changes["accounts_moved"] == len(changes["changes"]) <= 30
    assert {row["kpi"] for row in changes["kpis"]} >= {"status", "workload_km", "accounts_moved"}
    accepted = client.post(f"/api/solve/{job}/accept", json={"version": pinned["version"]})
    assert accepted.status_code == 200, accepted.text
    after = np.array(bench.unit_rep)
    moved = bench.accounts_of(np.flatnonzero(after != before))
    assert len(moved) == changes["accounts_moved"] <= 30
    for unit, rep in zip(pinned["units"], pinned["reps"], strict=True):
        assert after[unit] == rep  # the pins held
    assert bench.kpis()["summary"]["all_within_tolerance"]
    assert client.post(f"/api/solve/{job}/accept", json={}).status_code == 409  # accepted once
    undone = client.post("/api/undo", json={}).json()
    assert np.array_equal(bench.unit_rep, before) and undone["version"] == accepted.json()["version"] + 1


def test_a_solve_can_be_cancelled_and_rejected(bench: Workbench) -> None:
    job = bench.start_solve(budget=None, time_limit_s=60)
    for _ in range(200):  # until the first plan (or the end), then stop it
        if job.events or job.wait(0.1):
            break
    job.cancel.set()
    assert job.wait(30)
    assert job.state in {"done", "failed"}
    if job.state == "done":  # stopped early (or done before the cancel arrived): the plan found so far
        assert job.result is not None and job.result.wall_seconds < 30
    bench.reject(job)
    assert job.state == "rejected"
    with pytest.raises(ConflictError):
        bench.accept(job)


def test_save_writes_a_folder_that_reopens_as_the_same_plan(
    client: TestClient, bench: Workbench, tmp_path: Path
) -> None:
    state = client.get("/api/state").json()
    moved = client.post("/api/assign", json={"accounts": ["A0000001", "A0000002"], "rep": "R008"}).json()
    target = tmp_path / "edited"
    stale = client.post("/api/save", json={"folder": str(target), "version": state["version"]})
    assert stale.status_code == 409 and not target.exists()  # another tab's edit since this page loaded
    saved = client.post("/api/save", json={"folder": str(target), "version": moved["version"]})
    assert saved.status_code == 200, saved.text
    assert {"assignments.csv", "summary.json", "map.html", "pins.csv", "scenario.yaml", "workbench.json"} <= set(
        saved.json()["files"]
    )
    pins = pd.read_csv(target / "pins.csv", dtype=str)
    assert set(pins["rep_id"]) == {"R008"} and len(pins) == len(moved["units"])
    scenario = yaml.safe_load((target / "scenario.yaml").read_text())
    assert scenario["pins"] == "pins.csv" and (target / scenario["extends"]).resolve() == EXAMPLE.resolve()
    summary = json.loads((target / "summary.json").read_text())
    assert summary["status"] == "edited" and Path(summary["scenario_file"]) == target / "scenario.yaml"
    reopened = open_workbench(target)
    assert np.array_equal(reopened.unit_rep, bench.unit_rep)
    assert np.array_equal(reopened.pins, bench.pins)
    # a session may save where it saved or read last; once another session saved there, it is a conflict
    assert client.post("/api/save", json={"folder": str(target)}).status_code == 200
    with pytest.raises(ConflictError, match="another tab or app"):
        reopened.save(target)  # it read the folder before the save just made
    reopened = open_workbench(target)
    reopened.save(target)
    refused = client.post("/api/save", json={"folder": str(target)})
    assert refused.status_code == 409 and "another tab or app" in refused.text
    assert client.post("/api/save", json={"folder": str(bench.source)}).status_code == 200  # the folder it opened
    assert client.post("/api/save", json={"folder": str(tmp_path)}).status_code == 409  # a folder of other files


def test_compare_inside_the_app(client: TestClient, example_plan_folder: Path, tmp_path: Path) -> None:
    page = client.get("/compare", params={"folder": str(example_plan_folder)})
    assert page.status_code == 200
    assert page.text.count("L.map(") == 2 and "workbench" in page.text
    assert remote_assets(page.text) == []  # offline: scripts inlined from installed packages
    missing = client.get("/compare", params={"folder": str(tmp_path / "nothing")})
    assert missing.status_code == 400 and "not a plan folder" in missing.text


def test_a_token_guards_an_app_off_this_machine(bench: Workbench) -> None:
    with TestClient(create_app(bench, token="s3cret", local=False), base_url="http://10.0.0.5") as remote:
        assert remote.get("/").status_code == 403
        assert remote.get("/api/state", params={"token": "wrong"}).status_code == 403
        first = remote.get("/", params={"token": "s3cret"})
        assert first.status_code == 200 and remote.cookies.get(TOKEN_COOKIE) == "s3cret"
        assert remote.get("/api/kpis").status_code == 200  # the cookie carries it from now on
    with TestClient(create_app(bench, token="s3cret", local=False), base_url="http://10.0.0.5") as script:
        assert script.get("/api/kpis", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_saved_scenario_reproduces_its_plan_with_territory_solve(tmp_path: Path) -> None:
    """Deterministic solver settings: the workbench's re-solve without a budget is the saved scenario's solve."""
    scenario = write_instance(tmp_path / "small", 120, 6, seed=3)
    body = yaml.safe_load(scenario.read_text())
    body["solver"] = {"time_limit_s": None, "work_limit": 1, "workers": 1, "seed": 0}
    scenario.write_text(yaml.safe_dump(body))
    bench = open_workbench(scenario)
    smb = _smb_accounts(bench, 3)
    rep = bench.dataset.reps.query("segment != 'enterprise'")["rep_id"].iloc[-1]
    bench.assign(bench.units_of(smb), rep)
    job = bench.start_solve(budget=None)
    assert job.wait(120) and job.state == "done", job.message
    bench.accept(job)
    folder = bench.save(tmp_path / "saved")
    again = solve_scenario(folder / "scenario.yaml")
    assert np.array_equal(again.rep_index, bench.unit_rep[bench.unit_of_account])
    saved = pd.read_csv(folder / "assignments.csv", dtype=str).set_index("account_id")["rep_id"]
    assert (saved.loc[smb] == rep).all()


def test_territory_serve_off_this_machine_prints_a_token_and_checks_it(example_plan_folder: Path) -> None:
    """The real command: uvicorn listening on every address, the printed address carries the token."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "territory.cli", "serve", str(example_plan_folder), "--host", "0.0.0.0"]
    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}
    server = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line.startswith("Workbench of Midwest annual plan at http://127.0.0.1:"), line
        address = line.split(" at ")[1].split()[0]
        token = address.split("?token=")[1]
        base = address.split("?")[0]
        assert httpx.get(base + "api/kpis").status_code == 403
        assert httpx.get(base + "api/kpis", params={"token": token}).json()["version"] == 0
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def test_serve_refuses_a_missing_plan(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such plan folder or scenario file" in result.output


def test_an_edit_that_splits_a_contiguous_territory_is_flagged(tmp_path: Path) -> None:
    """Two towns of H3 cells, one rep each, contiguity on: a cell of town A given to B's rep splits B's territory."""
    accounts, reps = two_towns()
    scenario = write_scenario(
        tmp_path / "case", accounts, reps, units={"source": "hexagons", "resolution": 6},
        territories={"contiguous": True}, solver={"time_limit_s": 5, "workers": 1},
    )  # fmt: skip
    bench = open_workbench(scenario)
    assert bench.kpis()["summary"]["disconnected"] == []
    town_a = bench.units_of(["a0"])
    assert bench.rep_ids[bench.unit_rep[town_a][0]] == "RA"
    assert bench.assign(town_a, "RB")["kpis"]["summary"]["disconnected"] == ["RB"]
    assert bench.undo()["kpis"]["summary"]["disconnected"] == []
