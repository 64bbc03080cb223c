"""Shared fixtures: small named instances written as real scenario folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from optimizer.problem import Problem

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "scenarios" / "example" / "scenario.yaml"

ScenarioWriter = Callable[..., Path]


def write_scenario(
    folder: Path,
    accounts: pd.DataFrame | list[dict[str, Any]],
    reps: pd.DataFrame | list[dict[str, Any]],
    *,
    accounts_file: str = "accounts.csv",
    reps_file: str = "reps.csv",
    **scenario: Any,
) -> Path:
    """Write accounts, reps and a scenario YAML into ``folder``; return the scenario path.

    Keyword arguments become top-level scenario keys; ``name``, ``data`` and a
    default ``balance`` (accounts within 50 %) are filled in when absent.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in ((accounts, accounts_file), (reps, reps_file)):
        frame = pd.DataFrame(frame)
        path = folder / name
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        elif suffix == ".xlsx":
            frame.to_excel(path, index=False)
        elif suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:  # geodata: points from latitude/longitude
            import geopandas as gpd

            gdf = gpd.GeoDataFrame(
                frame.drop(columns=["latitude", "longitude"]),
                geometry=gpd.points_from_xy(frame["longitude"], frame["latitude"]),
                crs="EPSG:4326",
            )
            gdf.to_file(path)
    body: dict[str, Any] = {
        "name": scenario.pop("name", "test scenario"),
        "data": {"accounts": accounts_file, "reps": reps_file},
        "balance": {"accounts": {"tolerance_pct": 50}},
    }
    body.update(scenario)
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


@pytest.fixture
def scenario_writer(tmp_path: Path) -> ScenarioWriter:
    """Write a scenario folder under the test's temporary folder (see :func:`write_scenario`)."""

    def make(accounts: Any, reps: Any, *, folder: str = "case", **scenario: Any) -> Path:
        return write_scenario(tmp_path / folder, accounts, reps, **scenario)

    return make


@pytest.fixture(scope="session")
def example_plan_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped example solved for 4 s (2,000 accounts, 12 reps), written as an offline plan folder.

    Shared by the workbench's API and browser tests; a test that writes into it works on a copy.
    """
    from territory.pipeline import solve_scenario, write_plan_folder

    plan = solve_scenario(EXAMPLE, time_limit_s=4, workers=2)
    return write_plan_folder(plan, tmp_path_factory.mktemp("example") / "plan", offline=True)


def two_towns() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Six accounts, three near town A (lat 40.0) and three near town B (lat 41.0); one rep in each town.

    The optimum with balanced account counts is obvious by hand: each rep takes
    its own town's three accounts.
    """
    accounts = [
        {
            "id": f"a{i}",
            "name": f"A{i}",
            "latitude": 40.0 + 0.01 * i,
            "longitude": -90.0,
            "segment": "smb",
            "potential": 100.0,
            "workload": 10.0,
        }
        for i in range(3)
    ] + [
        {
            "id": f"b{i}",
            "name": f"B{i}",
            "latitude": 41.0 + 0.01 * i,
            "longitude": -90.0,
            "segment": "smb",
            "potential": 100.0,
            "workload": 10.0,
        }
        for i in range(3)
    ]
    reps = [
        {"id": "RA", "name": "Rep A", "latitude": 40.0, "longitude": -90.0, "segment": "any", "fte": 1.0},
        {"id": "RB", "name": "Rep B", "latitude": 41.0, "longitude": -90.0, "segment": "any", "fte": 1.0},
    ]
    return accounts, reps


def rich_and_plain(scenario_writer: ScenarioWriter) -> Problem:
    """One place, two reps: a locked account (potential 30) with R0, 10 rich (potential 10) and 10 plain (1) free.

    Accounts and potential within 5 % (10.5 accounts, 70 potential each): R0 must take more plain accounts
    than rich ones, e.g. 3 rich + 7 plain + the lock (11 accounts, potential 67) against R1's 7 + 3 (10, 73).
    """
    accounts = [{"id": "L", "potential": 30.0, "current_rep": "R0", "locked": True}]
    accounts += [{"id": f"r{i}", "potential": 10.0, "current_rep": None, "locked": False} for i in range(10)]
    accounts += [{"id": f"p{i}", "potential": 1.0, "current_rep": None, "locked": False} for i in range(10)]
    for row in accounts:
        row.update(name=row["id"], latitude=40.0, longitude=-90.0, segment="smb")
    reps = [
        {"id": f"R{i}", "name": f"Rep {i}", "latitude": 40.0, "longitude": -90.0, "segment": "any", "fte": 1.0}
        for i in range(2)
    ]
    balance = {"accounts": {"tolerance_pct": 5}, "potential": {"tolerance_pct": 5}}
    from territory.pipeline import prepare

    return prepare(scenario_writer(accounts, reps, balance=balance)).problem
