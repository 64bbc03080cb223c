"""Scenario sweeps on Dask: the sweep file, variants, the local and the remote cluster, failures and reruns."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from maps.screenshot import chromium
from models.errors import InputError
from models.formatting import setting
from models.generate import write_instance
from territory.cli import app
from territory.sweep import SCHEDULER_ENV, load_sweep, run_sweep
from tests.conftest import REPO
from tests.test_pages import assert_page_reads_well

EXAMPLE_SWEEP = REPO / "scenarios" / "example" / "sweep.yaml"
PLAN_STATUSES = {"optimal", "feasible"}
KNOWN_STATUSES = PLAN_STATUSES | {"infeasible", "no plan", "bad input", "error"}


def write_small_instance(folder: Path, accounts: int) -> Path:
    """A generated instance with 5 reps (2 enterprise) in three metros, balanced within segments.

    Solved without a wall-clock limit, on deterministic work (a few seconds), so that statuses do not depend
    on how loaded the machine is.
    """
    path = write_instance(folder, accounts, 5, seed=3)
    body = yaml.safe_load(path.read_text())
    body["balance"] = {
        "accounts": {"tolerance_pct": 25, "within": "segment"},
        "potential": {"tolerance_pct": 25, "within": "segment"},
        "workload": {"tolerance_pct": 15, "within": "segment"},
    }
    body["solver"].update({"time_limit_s": None, "work_limit": 2, "relative_gap": 0.01})
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 accounts, 5 reps (:func:`write_small_instance`)."""
    return write_small_instance(tmp_path_factory.mktemp("small"), 200)


def _enterprise_reps(base: Path) -> list[str]:
    reps = pd.read_csv(base.parent / "reps.csv")
    return reps.loc[reps["Focus"].str.lower() == "enterprise", "RepId"].tolist()


def write_sweep(folder: Path, base: Path, axes: dict[str, Any], **extra: Any) -> Path:
    """A sweep file in ``folder`` over ``base`` (written with a relative path, as users do)."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {"base": os.path.relpath(base, folder), "axes": axes, **extra}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def failing_sweep(folder: Path, base: Path) -> Path:
    """Six variants: two tolerances x {as is, every enterprise rep leaves (infeasible), a missing column}."""
    return write_sweep(
        folder,
        base,
        {
            "balance.workload.tolerance_pct": [10, 20],
            "team": [
                {"name": "as-is", "set": {}},
                {"name": "no-enterprise", "set": {"headcount": {"remove": _enterprise_reps(base)}}},
                {
                    "name": "bad-column",
                    "set": {"balance": {"revenue": {"column": "NoSuchColumn", "tolerance_pct": 20}}},
                },
            ],
        },
    )


def test_example_sweep_file_defines_24_stable_readable_variants() -> None:
    sweep = load_sweep(EXAMPLE_SWEEP)
    again = load_sweep(EXAMPLE_SWEEP)
    ids = [v.id for v in sweep.variants]
    assert len(ids) == 24 and len(set(ids)) == 24
    assert ids == [v.id for v in again.variants]
    assert [v.settings_hash for v in sweep.variants] == [v.settings_hash for v in again.variants]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", i) for i in ids)
    leaves = next(v for v in sweep.variants if v.settings["team"] == "r010-leaves")
    assert "team-r010-leaves" in leaves.id
    assert leaves.overrides["headcount"] == {"remove": ["R010"]}
    assert leaves.overrides["solver"]["relative_gap"] == 0.01  # the sweep's `set` reaches every variant
    # a different time limit is a different setting: a rerun with it does not reuse the plans
    faster = load_sweep(EXAMPLE_SWEEP, time_limit_s=5)
    assert {v.settings_hash for v in faster.variants}.isdisjoint(v.settings_hash for v in sweep.variants)


def test_bad_sweep_values_are_named_by_their_sweep_key(tmp_path: Path, small_base: Path) -> None:
    path = write_sweep(
        tmp_path,
        small_base,
        {
            "balance.workload.tolerance_pct": [5, -1],
            "solver.time_limt_s": [3],
            "team": [{"name": "bad name!", "set": {}}],
        },
    )
    with pytest.raises(InputError) as caught:
        load_sweep(path)
    text = str(caught.value)
    assert "sweep.yaml" in text
    assert "axes.team[0].name" in text


def test_bad_axis_values_name_axis_and_index(tmp_path: Path, small_base: Path) -> None:
    path = write_sweep(tmp_path, small_base, {"balance.workload.tolerance_pct": [5, -1], "solver.time_limt_s": [3]})
    with pytest.raises(InputError) as caught:
        load_sweep(path)
    messages = {issue.column: issue.message for issue in caught.value.issues}
    assert "axes.balance.workload.tolerance_pct[1]" in messages
    assert "axes.balance.workload.tolerance_pct[0]" not in messages
    assert "did you mean 'time_limit_s'" in str(caught.value)
    assert all(str(issue.file).endswith("sweep.yaml") for issue in caught.value.issues)


def test_unknown_sweep_key_and_missing_base_are_bad_input(tmp_path: Path, small_base: Path) -> None:
    path = write_sweep(tmp_path, small_base, {"solver.seed": [0]}, axis={"x": [1]})
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "unknown key 'axis'" in result.output
    path = write_sweep(tmp_path / "b", tmp_path / "nowhere.yaml", {"solver.seed": [0]})
    result = CliRunner().invoke(app, ["sweep", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "scenario file not found" in result.output


def test_example_sweep_of_24_variants_on_a_local_cluster_started_by_the_command(tmp_path: Path) -> None:
    """The README's sweep, with a 3 s limit per variant (the shipped file has none: it is reproducible but slow).

    On a loaded machine some variants find no plan in 3 s; every one still gets its row, status and reason.
    """
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["sweep", str(EXAMPLE_SWEEP), "--out", str(out), "--time-limit", "3"])
    assert result.exit_code == 0, result.output
    assert "24 variants" in result.output and "on 2 workers" in result.output
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert len(table) == 24
    assert set(table["status"]) <= KNOWN_STATUSES
    # a hire at 5 % workload tolerance leaves too few enterprise hours: proven at once, recorded in its row
    tight_hire = table["team"].eq("hire-dayton") & table["balance.workload.tolerance_pct"].eq(5)
    assert set(table.loc[tight_hire, "status"]) == {"infeasible"}
    assert all("enterprise" in e for e in table.loc[tight_hire, "error"])
    assert (table.loc[table["status"].eq("no plan"), "error"] != "").all()
    page = (out / "sweep.html").read_text()
    # travel against each of the three numeric axes (in planner words, the key as tooltip), balance against moves
    for title in ("Travel against workload tolerance", "Travel against smb misfit penalty", "Balance against accounts"):
        assert title in page
    assert "balance.workload.tolerance_pct" in page and "travel, workload-hour × km" in page
    assert page.count("<svg") >= 4
    planned = table[table["status"].isin(PLAN_STATUSES)]
    assert page.count('class="point"') >= 4 * len(planned)
    for _, row in planned.iterrows():
        assert row["map"] == f"variants/{row['variant']}/map.html"
        assert (out / row["map"]).is_file()
        assert f'href="{row["map"]}"' in page
        assert float(row["workload_max_deviation_pct"]) <= float(row["balance.workload.tolerance_pct"]) + 1e-6
        summary = json.loads((out / "variants" / row["variant"] / "summary.json").read_text())
        assert summary["status"] == row["status"]
    assert all((out / "scenarios" / f"{v}.yaml").is_file() for v in table["variant"])
    # in Chromium: figures for people, nothing cut off, and each colour's legend naming its value
    with chromium() as browser:
        frames = assert_page_reads_well(browser, out / "sweep.html", tmp_path)
    legends = {legend["text"] for frame in frames for legend in frame["legends"]}
    for value in planned["balance.workload.tolerance_pct"].unique():
        assert setting("balance.workload.tolerance_pct", value) in legends, legends  # "workload tolerance = 5 %"


def test_remote_scheduler_by_address_records_failures_in_their_rows(
    tmp_path: Path, small_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dask.distributed import LocalCluster

    path = failing_sweep(tmp_path, small_base)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        result = run_sweep(path, tmp_path / "out")
    assert result.workers == 1  # the one-worker cluster started here, not a local cluster of the cores
    table = result.table.set_index("team")
    assert set(table.loc["as-is", "status"]) <= PLAN_STATUSES
    assert set(table.loc["no-enterprise", "status"]) == {"infeasible"}
    assert set(table.loc["bad-column", "status"]) == {"bad input"}
    assert all("NoSuchColumn" in e for e in table.loc["bad-column", "error"])
    assert result.failed == 4
    written = pd.read_csv(tmp_path / "out" / "sweep.csv", keep_default_na=False)
    assert len(written) == 6 and (written["status"] != "pending").all()
    page = (tmp_path / "out" / "sweep.html").read_text()
    assert "Travel against workload tolerance" in page and "Balance against accounts moved" in page
    for link in written.loc[written["status"].isin(PLAN_STATUSES), "map"]:
        assert page.count(f'href="{link}"') >= 3  # a point on both charts and the table's link
        assert (tmp_path / "out" / link).is_file()
    assert (written.loc[~written["status"].isin(PLAN_STATUSES), "map"] == "").all()


def _finished(out: Path) -> dict[str, float]:
    """Variant id -> summary.json modification time, for every finished plan folder."""
    folders = (out / "variants").glob("*/summary.json")
    return {p.parent.name: p.stat().st_mtime for p in folders if not p.parent.name.startswith(".")}


def test_killing_a_worker_mid_sweep_loses_no_finished_variant_and_a_rerun_completes(
    tmp_path: Path, small_base: Path
) -> None:
    from dask.distributed import Client, LocalCluster

    path = write_sweep(tmp_path, small_base, {"balance.workload.tolerance_pct": [8, 12, 16], "solver.seed": [0, 1]})
    out = tmp_path / "out"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        outcome: dict[str, Any] = {}
        runner = threading.Thread(
            target=lambda: outcome.update(result=run_sweep(path, out, address=cluster.scheduler_address))
        )
        runner.start()
        deadline = time.monotonic() + 120
        while not _finished(out) and time.monotonic() < deadline:
            time.sleep(0.1)
        before = _finished(out)
        assert before, "no variant finished in two minutes"
        victim = next(iter(client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=300)
        assert not runner.is_alive()
    result = outcome["result"]
    after = _finished(out)
    assert all(after.get(k) == mtime for k, mtime in before.items())  # finished variants kept as they were
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 6 and (table["status"] != "pending").all()
    assert set(table["status"]) <= KNOWN_STATUSES and len(result.table) == 6
    rerun = run_sweep(path, out, workers=1)
    assert set(rerun.table["status"]) <= PLAN_STATUSES
    assert rerun.reused >= len(before)
    assert all(_finished(out).get(k) == mtime for k, mtime in before.items())


def test_a_killed_sweep_keeps_finished_rows_and_a_rerun_solves_only_the_rest(tmp_path: Path, small_base: Path) -> None:
    path = write_sweep(tmp_path, small_base, {"balance.workload.tolerance_pct": [8, 16], "solver.seed": [0, 1]})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "territory.cli", "sweep", str(path), "--out", str(out), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _finished(out) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the command, its scheduler and its worker, all at once
        process.wait()
    before = _finished(out)
    assert before, "no variant finished in four minutes"
    rows = pd.read_csv(out / "sweep.csv")
    done = set(rows.loc[rows["status"].isin(PLAN_STATUSES), "variant"])
    assert done <= set(before) and len(rows) == 4  # every finished row was written as it arrived
    rerun = run_sweep(path, out, workers=1)
    assert set(rerun.table["status"]) <= PLAN_STATUSES
    assert rerun.reused >= len(before)
    assert set(rerun.table.loc[rerun.table["reused"], "variant"]) >= set(before)
    assert all(_finished(out)[k] == mtime for k, mtime in before.items())
