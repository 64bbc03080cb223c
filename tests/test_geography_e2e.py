"""The three unit sources end to end from a scenario file, with contiguity on."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from territory.pipeline import prepare, solve_prepared, write_plan_folder
from tests.conftest import write_scenario


def _grid_layer(folder: Path, n: int = 4) -> Path:
    """An n x n grid of 0.2-degree squares near (40N, 90W), ids 'c<row><col>'."""
    cells = [
        {"code": f"c{r}{c}", "geometry": box(-90 + 0.2 * c, 40 + 0.2 * r, -89.8 + 0.2 * c, 40.2 + 0.2 * r)}
        for r in range(n)
        for c in range(n)
    ]
    path = folder / "grid.geojson"
    folder.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame(cells, crs="EPSG:4326").to_file(path)
    return path


def _accounts(rng: np.random.Generator, n: int) -> list[dict]:
    return [
        {"id": f"a{i}", "latitude": 40.02 + 0.76 * rng.random(), "longitude": -89.98 + 0.76 * rng.random(),
         "segment": "smb", "potential": float(rng.integers(10, 50)), "workload": float(rng.integers(2, 9))}
        for i in range(n)
    ]  # fmt: skip


REPS = [
    {"id": "W", "name": "West", "latitude": 40.4, "longitude": -89.9, "segment": "any"},
    {"id": "E", "name": "East", "latitude": 40.4, "longitude": -89.3, "segment": "any"},
    {"id": "N", "name": "North", "latitude": 40.75, "longitude": -89.6, "segment": "any"},
]


@pytest.mark.parametrize(
    "units",
    [
        {"source": "polygons", "path": "grid.geojson", "id_column": "code"},
        {"source": "hexagons", "resolution": 7},
        {"source": "voronoi", "resolution": 7},
    ],
    ids=["polygons", "hexagons", "voronoi"],
)
def test_unit_source_solves_to_connected_territories(units: dict, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    folder = tmp_path / "case"
    _grid_layer(folder)
    scenario = write_scenario(
        folder,
        _accounts(rng, 80),
        REPS,
        balance={"workload": {"tolerance_pct": 15}},
        units=units,
        territories={"contiguous": True},
        solver={"time_limit_s": 8, "workers": 2},
    )
    prepared = prepare(scenario)
    plan = solve_prepared(prepared)
    graph = prepared.dataset.units.graph()
    assert plan.unit_rep is not None and len(plan.unit_rep) == prepared.dataset.units.num_units
    for r in range(len(REPS)):
        members = np.flatnonzero(plan.unit_rep == r).tolist()
        assert members and nx.is_connected(graph.subgraph(members)), f"territory {r} is not one area"
    out = write_plan_folder(plan, tmp_path / "plan")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all_within_tolerance"] and summary["geography"]["unit_source"] == units["source"]
    assert summary["geography"]["contiguous_required"] is True
    territories = pd.read_csv(out / "territories.csv")
    assert (territories["area_km2"] > 0).all()
    assert territories["polsby_popper"].between(0, 1).all()
    assert (territories["diameter_km"] >= 0).all()
    page = (out / "map.html").read_text()
    assert page.count('"kind": "territory"') == len(REPS)
