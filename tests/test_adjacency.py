"""Units whose neighbours come from a table, units known by a point, and team layers (models.units)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from models.errors import InputError
from models.scenario import Units
from models.units import build_units, team_of_segments
from territory.pipeline import prepare


def _accounts(n: int = 6) -> pd.DataFrame:
    """Accounts a0..a{n-1} on a line, one every 0.1 degree of longitude."""
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "latitude": [40.0] * n,
            "longitude": [-90.0 + 0.1 * i for i in range(n)],
            "segment": ["smb"] * n,
            "workload": [1.0] * n,
        }
    )


def _edges(folder: Path, rows: list[tuple[str, str]], columns: tuple[str, str] = ("unit_a", "unit_b")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edges.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_neighbour_table_replaces_the_triangulation(tmp_path: Path) -> None:
    """A ring a0-a1-...-a5-a0 from the table, although the points lie on a line."""
    ring = [(f"a{i}", f"a{(i + 1) % 6}") for i in range(6)]
    _edges(tmp_path, ring)
    layer = build_units(_accounts(), Units(adjacency=Path("edges.csv")), tmp_path, need_edges=True)
    pairs = {tuple(sorted((layer.unit_ids[a], layer.unit_ids[b]))) for a, b in layer.edges}
    assert pairs == {tuple(sorted(p)) for p in ring}


@pytest.mark.parametrize(
    ("rows", "row", "column", "words"),
    [
        ([("a0", "a1"), ("a1", "zz")], 3, "unit_b", "unit 'zz' is not a unit of this scenario"),
        ([("a0", "a1"), ("a2", "a2")], 3, "unit_b", "its own neighbour"),
        ([("a0", "a1"), ("a1", "a0")], 3, "unit_a", "listed twice (first at row 2"),
        ([("a0", "a1"), ("a1", "")], 3, "unit_b", "unit id is blank"),
    ],
    ids=["unknown unit", "self-loop", "repeated pair", "blank id"],
)
def test_bad_neighbour_rows_name_file_row_and_column(
    tmp_path: Path, rows: list[tuple[str, str]], row: int, column: str, words: str
) -> None:
    path = _edges(tmp_path, rows)
    with pytest.raises(InputError) as caught:
        build_units(_accounts(), Units(adjacency=Path("edges.csv")), tmp_path, need_edges=True)
    issue = caught.value.issues[0]
    assert Path(issue.file) == path and issue.row == row and issue.column == column
    assert words in issue.message


def test_neighbour_table_without_its_columns_suggests_the_nearest(tmp_path: Path) -> None:
    _edges(tmp_path, [("a0", "a1")], columns=("unit_a", "unit_bb"))
    with pytest.raises(InputError, match=r"no column 'unit_b'.*did you mean 'unit_bb'"):
        build_units(_accounts(), Units(adjacency=Path("edges.csv")), tmp_path, need_edges=True)


def test_generated_units_refuse_a_neighbour_table() -> None:
    with pytest.raises(ValueError, match="generates its units"):
        Units(source="hexagons", adjacency=Path("edges.csv"))


def test_point_units_from_a_table_keep_units_without_accounts(tmp_path: Path) -> None:
    """Postal codes P1-P2-P3 in a chain; no account lies in P2, which still joins P1 to P3."""
    pd.DataFrame(
        {"zip": ["P1", "P2", "P3"], "latitude": [40.0, 40.0, 40.0], "longitude": [-90.0, -89.5, -89.0]}
    ).to_csv(tmp_path / "zips.csv", index=False)
    _edges(tmp_path, [("P1", "P2"), ("P2", "P3")])
    accounts = _accounts(4).assign(zip=["P1", "P1", "P3", "P3"])
    units = Units(
        source="points", path=Path("zips.csv"), id_column="zip", account_column="zip", adjacency=Path("edges.csv")
    )
    layer = build_units(accounts, units, tmp_path, need_edges=True)
    assert layer.unit_ids.tolist() == ["P1", "P2", "P3"]
    assert layer.unit_of_account.tolist() == [0, 0, 2, 2]
    assert layer.edges.tolist() == [[0, 1], [1, 2]]
    assert layer.geometry is None and layer.latitude[1] == 40.0


def test_point_units_from_account_codes(tmp_path: Path) -> None:
    accounts = _accounts(4).assign(county=["X", "X", "Y", ""])
    with pytest.raises(InputError) as caught:
        build_units(accounts, Units(source="points", account_column="county"), tmp_path, need_edges=False)
    assert caught.value.issues[0].row == 5 and "blank" in caught.value.issues[0].message
    layer = build_units(accounts.iloc[:3], Units(source="points", account_column="county"), tmp_path, need_edges=True)
    assert layer.unit_ids.tolist() == ["X", "Y"]
    assert layer.longitude[0] == pytest.approx(-89.95)


def test_bad_point_table_rows_are_named(tmp_path: Path) -> None:
    pd.DataFrame({"zip": ["P1", "P2"], "latitude": [40.0, 95.0], "longitude": [-90.0, -89.0]}).to_csv(
        tmp_path / "zips.csv", index=False
    )
    with pytest.raises(InputError) as caught:
        build_units(
            _accounts(2), Units(source="points", path=Path("zips.csv"), id_column="zip"), tmp_path, need_edges=True
        )
    issue = caught.value.issues[0]
    assert (issue.row, issue.column) == (3, "latitude")


def test_team_layers_tile_the_map_on_each_layer(tmp_path: Path) -> None:
    """Four squares; enterprise accounts in two of them: both layers hold all four squares, edges stay apart."""
    import geopandas as gpd

    squares = [{"code": f"s{i}", "geometry": box(-90 + 0.2 * i, 40, -89.8 + 0.2 * i, 40.2)} for i in range(4)]
    gpd.GeoDataFrame(squares, crs="EPSG:4326").to_file(tmp_path / "squares.geojson")
    accounts = pd.DataFrame(
        {
            "account_id": ["e0", "e3", "s0", "s1", "s2", "s3"],
            "latitude": [40.1] * 6,
            "longitude": [-89.9, -89.3, -89.9, -89.7, -89.5, -89.3],
            "segment": ["enterprise", "enterprise", "smb", "smb", "smb", "smb"],
            "workload": [1.0] * 6,
        }
    )
    units = Units(source="polygons", path=Path("squares.geojson"), id_column="code", team_layers=True)
    teams = team_of_segments({"enterprise": ("hard", ["enterprise"]), "smb": ("soft", ["smb"])})
    layer = build_units(accounts, units, tmp_path, need_edges=True, teams=teams)
    assert layer.layer_names == ("general", "enterprise")
    assert layer.unit_ids.tolist() == [
        "s0",
        "s1",
        "s2",
        "s3",
        "enterprise:s0",
        "enterprise:s1",
        "enterprise:s2",
        "enterprise:s3",
    ]
    assert layer.unit_layer.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert layer.unit_of_account.tolist() == [4, 7, 0, 1, 2, 3]
    assert all(layer.unit_layer[a] == layer.unit_layer[b] for a, b in layer.edges)
    assert len(layer.edges) == 6  # a chain of four on each layer


def test_team_layers_give_empty_units_their_teams_segment_rule(scenario_writer) -> None:
    """An empty enterprise-layer cell may only go to enterprise reps, like the layer's accounts."""
    accounts = [
        {"id": f"s{i}", "latitude": 40.0, "longitude": -90 + 0.3 * i, "segment": "smb", "potential": 1.0}
        for i in range(4)
    ] + [
        {"id": f"e{i}", "latitude": 40.05, "longitude": -90 + 0.9 * i, "segment": "enterprise", "potential": 1.0}
        for i in range(2)
    ]
    reps = [
        {"id": "S", "latitude": 40.0, "longitude": -89.5, "segment": "smb"},
        {"id": "E", "latitude": 40.0, "longitude": -89.5, "segment": "enterprise"},
    ]
    path = scenario_writer(
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 50, "within": "segment"}},
        segment_rules={
            "enterprise": {"reps": ["enterprise"], "mode": "hard"},
            "smb": {"reps": ["smb"], "mode": "hard"},
        },
        units={"source": "hexagons", "resolution": 6, "team_layers": True},
        territories={"contiguous": True},
    )
    problem = prepare(path).problem
    layer = problem.unit_layer
    assert set(problem.layer_names) == {"enterprise", "smb"}
    for u in range(problem.num_units):
        reps_allowed = set(problem.rep_ids[problem.pair_rep[problem.pair_unit == u]])
        name = problem.layer_names[layer[u]]
        assert reps_allowed == ({"E"} if name == "enterprise" else {"S"}), (problem.unit_ids[u], reps_allowed)


def test_voronoi_cells_keep_accounts_locked_to_different_reps_apart(scenario_writer) -> None:
    """Two accounts in one H3 cell, locked to two reps: they get a unit each (a shared one could not move)."""
    accounts = [
        {"id": "a", "latitude": 41.88, "longitude": -87.63, "segment": "smb", "potential": 1.0, "current_rep": "R1",
         "locked": True},
        {"id": "b", "latitude": 41.881, "longitude": -87.631, "segment": "smb", "potential": 1.0, "current_rep": "R2",
         "locked": True},
        {"id": "c", "latitude": 42.5, "longitude": -88.5, "segment": "smb", "potential": 1.0},
        {"id": "d", "latitude": 41.2, "longitude": -86.9, "segment": "smb", "potential": 1.0},
    ]  # fmt: skip
    reps = [{"id": r, "latitude": 41.9, "longitude": -87.6, "segment": "any"} for r in ("R1", "R2")]
    path = scenario_writer(
        accounts,
        reps,
        balance={"accounts": {"tolerance_pct": 50}},
        units={"source": "voronoi", "resolution": 4},
        territories={"contiguous": True},
    )
    dataset = prepare(path).dataset
    units = dataset.units
    assert units is not None
    unit_of = dict(zip(dataset.accounts["account_id"], units.unit_of_account, strict=True))
    assert unit_of["a"] != unit_of["b"]
    assert np.isin(["@R1", "@R2"], [str(u)[-3:] for u in units.unit_ids]).all()
