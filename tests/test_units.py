"""Basic units: grouping accounts into units and finding neighbours, on small layers whose answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from models.errors import InputError
from models.scenario import Units
from models.units import UnitLayer, build_units

#: South-west corner and cell size (degrees) of the 3 x 3 test grid near 40N, 90W.
LON0, LAT0, SIZE = -90.0, 40.0, 0.1


def accounts_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A normalised accounts table (as :mod:`models.dataset` gives it) from a few fields per row."""
    frame = pd.DataFrame(rows)
    defaults: dict[str, Any] = {
        "segment": "smb",
        "potential": 1000.0,
        "workload": 10.0,
        "current_rep": pd.NA,
        "locked": False,
        "parent_id": pd.NA,
    }
    for column, value in defaults.items():
        if column not in frame:
            frame[column] = value
    frame["account_id"] = frame["account_id"].astype("string")
    frame["name"] = frame["account_id"]
    if "family_id" not in frame:
        frame["family_id"] = frame["account_id"]
    return frame


def square(row: int, col: int) -> shapely.Polygon:
    """Grid square ``(row, col)``; row 0 is the south row, column 0 the west one."""
    x, y = LON0 + col * SIZE, LAT0 + row * SIZE
    return shapely.box(x, y, x + SIZE, y + SIZE)


def centre(row: int, col: int) -> tuple[float, float]:
    """Latitude and longitude of the centre of grid square ``(row, col)``."""
    return LAT0 + (row + 0.5) * SIZE, LON0 + (col + 0.5) * SIZE


def grid_layer(extra: dict[str, shapely.Polygon] | None = None) -> gpd.GeoDataFrame:
    """The 3 x 3 grid of squares with ids ``Z<row><col>``, plus ``extra`` squares by id."""
    ids = [f"Z{r}{c}" for r in range(3) for c in range(3)]
    geoms = [square(r, c) for r in range(3) for c in range(3)]
    for unit_id, geom in (extra or {}).items():
        ids.append(unit_id)
        geoms.append(geom)
    return gpd.GeoDataFrame({"zone": ids, "code": range(101, 101 + len(ids))}, geometry=geoms, crs="EPSG:4326")


def write_layer(folder: Path, layer: gpd.GeoDataFrame, name: str = "zones.geojson") -> Path:
    path = folder / name
    layer.to_file(path, layer="zones") if path.suffix == ".gpkg" else layer.to_file(path)
    return path


def polygon_units(path: Path, **settings: Any) -> Units:
    body = {"source": "polygons", "path": path.name, "id_column": "zone", **settings}
    if path.suffix == ".gpkg":
        body.setdefault("layer", "zones")
    return Units.model_validate(body)


def edge_ids(layer: UnitLayer) -> set[frozenset[str]]:
    return {frozenset((str(layer.unit_ids[i]), str(layer.unit_ids[j]))) for i, j in layer.edges}


def unit_of(layer: UnitLayer) -> list[str]:
    return [str(layer.unit_ids[u]) for u in layer.unit_of_account]


def check_edge_array(layer: UnitLayer) -> None:
    """Edges are int64 pairs i < j, sorted, without duplicates, within range."""
    edges = layer.edges
    assert edges.dtype == np.int64 and edges.ndim == 2 and edges.shape[1] == 2
    if len(edges):
        assert (edges[:, 0] < edges[:, 1]).all()
        assert edges.max() < layer.num_units
        assert np.array_equal(edges, np.unique(edges, axis=0))


def one_account_per_square() -> pd.DataFrame:
    rows = []
    for r in range(3):
        for c in range(3):
            lat, lon = centre(r, c)
            rows.append({"account_id": f"A{r}{c}", "latitude": lat, "longitude": lon})
    return accounts_frame(rows)


# ---------------------------------------------------------------------------- polygons


@pytest.mark.parametrize("file_name", ["zones.geojson", "zones.gpkg"])
def test_grid_has_the_twelve_rook_neighbour_pairs(tmp_path: Path, file_name: str) -> None:
    """3 x 3 squares: 6 east-west and 6 north-south pairs; squares meeting only at a corner are not neighbours."""
    path = write_layer(tmp_path, grid_layer(), file_name)
    layer = build_units(one_account_per_square(), polygon_units(path), tmp_path, need_edges=True)
    expected = {frozenset((f"Z{r}{c}", f"Z{r}{c + 1}")) for r in range(3) for c in range(2)} | {
        frozenset((f"Z{r}{c}", f"Z{r + 1}{c}")) for r in range(2) for c in range(3)
    }
    assert len(layer.edges) == 12
    assert edge_ids(layer) == expected
    check_edge_array(layer)
    assert layer.unit_ids.tolist() == [f"Z{r}{c}" for r in range(3) for c in range(3)]
    assert unit_of(layer) == [f"Z{r}{c}" for r in range(3) for c in range(3)]
    assert layer.notes == []
    assert not layer.key.any()
    assert layer.geometry is not None and layer.geometry.crs.equals("EPSG:4326")
    assert nx.is_connected(layer.graph())
    assert layer.graph().nodes[4]["unit_id"] == "Z11"


def test_projected_layer_is_read_in_wgs84(tmp_path: Path) -> None:
    """A layer saved in Web Mercator gives the same units and neighbours."""
    path = write_layer(tmp_path, grid_layer().to_crs("EPSG:3857"))
    layer = build_units(one_account_per_square(), polygon_units(path), tmp_path, need_edges=True)
    assert len(layer.edges) == 12
    assert unit_of(layer) == [f"Z{r}{c}" for r in range(3) for c in range(3)]
    assert layer.geometry.total_bounds == pytest.approx([LON0, LAT0, LON0 + 3 * SIZE, LAT0 + 3 * SIZE])


def test_point_in_polygon_join_and_workload_weighted_points(tmp_path: Path) -> None:
    """Accounts join the square they lie in; a unit's point is their workload-weighted mean;
    squares without accounts are kept, with a point inside them."""
    path = write_layer(tmp_path, grid_layer())
    accounts = accounts_frame(
        [
            {"account_id": "a", "latitude": 40.01, "longitude": -89.99, "workload": 1.0},  # Z00
            {"account_id": "b", "latitude": 40.05, "longitude": -89.95, "workload": 3.0},  # Z00
            {"account_id": "c", "latitude": 40.25, "longitude": -89.75, "workload": 0.0},  # Z22
            {"account_id": "d", "latitude": 40.27, "longitude": -89.71, "workload": 0.0},  # Z22
        ]
    )
    layer = build_units(accounts, polygon_units(path), tmp_path, need_edges=True)
    assert unit_of(layer) == ["Z00", "Z00", "Z22", "Z22"]
    assert layer.num_units == 9  # squares without accounts connect territories
    z00, z22 = 0, 8
    assert layer.latitude[z00] == pytest.approx((40.01 * 1 + 40.05 * 3) / 4)
    assert layer.longitude[z00] == pytest.approx((-89.99 * 1 - 89.95 * 3) / 4)
    assert layer.latitude[z22] == pytest.approx(40.26)  # zero workload: plain mean
    assert layer.longitude[z22] == pytest.approx(-89.73)
    for u in range(9):
        assert layer.geometry.iloc[u].contains(shapely.Point(layer.longitude[u], layer.latitude[u]))
    assert nx.is_connected(layer.graph())


def test_join_by_code_column_compares_normalised_codes(tmp_path: Path) -> None:
    """Account codes 101 / '102' / 109.0 find units whose ids are the integers 101, 102, 109."""
    path = write_layer(tmp_path, grid_layer())
    accounts = accounts_frame(
        [
            {"account_id": "a", "latitude": 45.0, "longitude": -80.0, "zip": "101"},  # far away: the code decides
            {"account_id": "b", "latitude": 40.0, "longitude": -90.0, "zip": " 102 "},
            {"account_id": "c", "latitude": 40.0, "longitude": -90.0, "zip": 109.0},
        ]
    )
    units = polygon_units(path, id_column="code", account_column="zip")
    layer = build_units(accounts, units, tmp_path, need_edges=False)
    assert unit_of(layer) == ["101", "102", "109"]
    assert len(layer.edges) == 0


def test_unknown_account_code_names_the_row_and_column(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    accounts = accounts_frame(
        [
            {"account_id": "a", "latitude": 40.0, "longitude": -90.0, "zip": "Z00"},
            {"account_id": "b", "latitude": 40.0, "longitude": -90.0, "zip": "Z99"},
        ]
    )
    with pytest.raises(InputError) as caught:
        build_units(
            accounts,
            polygon_units(path, account_column="zip"),
            tmp_path,
            need_edges=True,
            accounts_file="accounts.csv",
        )
    (issue,) = caught.value.issues
    assert issue.row == 3 and issue.column == "zip" and str(issue.file) == "accounts.csv"
    assert "'Z99'" in issue.message and issue.hint


def test_missing_account_code_column_is_an_input_error(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    with pytest.raises(InputError, match="no column 'zip'"):
        build_units(one_account_per_square(), polygon_units(path, account_column="zip"), tmp_path, need_edges=True)


def test_account_just_outside_every_polygon_joins_the_nearest(tmp_path: Path) -> None:
    """An account 1 km east of the grid joins the square next to it, with a note naming the distance."""
    path = write_layer(tmp_path, grid_layer())
    lat = LAT0 + 1.5 * SIZE
    lon = LON0 + 3 * SIZE + 1.0 / (111.195 * np.cos(np.radians(lat)))  # 1 km east of square Z12
    accounts = accounts_frame([{"account_id": "out", "latitude": lat, "longitude": lon}])
    layer = build_units(accounts, polygon_units(path), tmp_path, need_edges=False)
    assert unit_of(layer) == ["Z12"]
    (note,) = layer.notes
    assert "1 account(s)" in note and "1.0 km" in note


def test_account_on_a_shared_border_joins_a_neighbouring_square(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    accounts = accounts_frame([{"account_id": "b", "latitude": LAT0 + 0.05, "longitude": LON0 + SIZE}])
    layer = build_units(accounts, polygon_units(path), tmp_path, need_edges=False)
    assert unit_of(layer)[0] in {"Z00", "Z01"}
    assert "0.0 km" in layer.notes[0]


def test_account_far_outside_every_polygon_is_an_input_error(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    accounts = accounts_frame(
        [
            {"account_id": "in", "latitude": 40.05, "longitude": -89.95},
            {"account_id": "far", "latitude": 41.0, "longitude": -89.95},
        ]
    )
    with pytest.raises(InputError) as caught:
        build_units(accounts, polygon_units(path), tmp_path, need_edges=True)
    (issue,) = caught.value.issues
    assert issue.row == 3
    assert "'far'" in issue.message and "km outside every unit polygon" in issue.message and "Z2" in issue.message


def test_duplicate_unit_ids_name_the_rows(tmp_path: Path) -> None:
    layer = grid_layer()
    layer.loc[4, "zone"] = "Z00"
    path = write_layer(tmp_path, layer)
    with pytest.raises(InputError) as caught:
        build_units(one_account_per_square(), polygon_units(path), tmp_path, need_edges=True)
    (issue,) = caught.value.issues
    assert issue.row == 6 and issue.column == "zone" and Path(issue.file).name == "zones.geojson"
    assert "duplicate unit id 'Z00' (first at row 2)" in issue.message


def test_missing_id_column_suggests_the_nearest(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    with pytest.raises(InputError, match="did you mean 'zone'"):
        build_units(one_account_per_square(), polygon_units(path, id_column="zones"), tmp_path, need_edges=True)


def test_missing_layer_file_names_units_path(tmp_path: Path) -> None:
    units = Units.model_validate({"source": "polygons", "path": "nowhere.geojson"})
    with pytest.raises(InputError) as caught:
        build_units(one_account_per_square(), units, tmp_path, need_edges=True)
    assert caught.value.issues[0].column == "units.path"


def test_row_numbers_are_unit_ids_without_id_column(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    units = Units.model_validate({"source": "polygons", "path": path.name})
    layer = build_units(one_account_per_square(), units, tmp_path, need_edges=True)
    assert layer.unit_ids.tolist() == [str(row) for row in range(2, 11)]  # first data row is row 2
    assert len(layer.edges) == 12


def island_layer() -> gpd.GeoDataFrame:
    """The grid plus square ISL three squares east of the middle row (0.2 degrees of open water from Z12)."""
    return grid_layer({"ISL": square(1, 5)})


def test_island_is_linked_to_its_nearest_square(tmp_path: Path) -> None:
    path = write_layer(tmp_path, island_layer())
    layer = build_units(one_account_per_square(), polygon_units(path), tmp_path, need_edges=True)
    assert len(layer.edges) == 13
    assert frozenset(("ISL", "Z12")) in edge_ids(layer)
    assert nx.is_connected(layer.graph())
    (note,) = layer.notes
    expected_km = 3 * SIZE * 111.195 * np.cos(np.radians(LAT0 + 1.5 * SIZE))  # centre to centre, three squares
    assert note.startswith("unit ISL (island of 1 unit) linked to Z12, ")
    assert f"{expected_km:.1f} km" in note


def test_islands_chain_to_their_nearest_neighbour_not_only_to_the_main_group(tmp_path: Path) -> None:
    """FAR lies beyond ISL: the shortest links are Z12 - ISL and ISL - FAR (a spanning tree over the groups)."""
    path = write_layer(tmp_path, grid_layer({"ISL": square(1, 5), "FAR": square(1, 8)}))
    layer = build_units(one_account_per_square(), polygon_units(path), tmp_path, need_edges=True)
    assert {frozenset(("ISL", "Z12")), frozenset(("FAR", "ISL"))} <= edge_ids(layer)
    assert len(layer.edges) == 14 and nx.is_connected(layer.graph())
    assert [note.split(",")[0] for note in layer.notes] == [
        "unit ISL (island of 1 unit) linked to Z12",
        "unit FAR (island of 1 unit) linked to ISL",
    ]


def test_island_with_warn_is_only_reported(tmp_path: Path) -> None:
    path = write_layer(tmp_path, island_layer())
    layer = build_units(one_account_per_square(), polygon_units(path, islands="warn"), tmp_path, need_edges=True)
    assert len(layer.edges) == 12
    assert nx.number_connected_components(layer.graph()) == 2
    (note,) = layer.notes
    assert "ISL (1 unit)" in note and "units.islands: connect_nearest" in note and "units.extra_edges" in note


def test_extra_edges_join_an_island_by_hand(tmp_path: Path) -> None:
    path = write_layer(tmp_path, island_layer())
    units = polygon_units(path, extra_edges=[["Z02", "ISL"]])
    layer = build_units(one_account_per_square(), units, tmp_path, need_edges=True)
    assert len(layer.edges) == 13
    assert frozenset(("ISL", "Z02")) in edge_ids(layer)
    assert layer.notes == []


def test_unknown_extra_edge_id_names_the_key_and_the_id(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    units = polygon_units(path, extra_edges=[["Z00", "Z11"], ["Z02", "NOPE"]])
    with pytest.raises(InputError) as caught:
        build_units(one_account_per_square(), units, tmp_path, need_edges=True)
    (issue,) = caught.value.issues
    assert "units.extra_edges" in issue.column and "'NOPE'" in issue.message


def test_sliver_gap_still_counts_as_a_shared_border(tmp_path: Path) -> None:
    """Two squares 1 cm apart (a digitising sliver) are neighbours; two meeting at a corner are not."""
    gap = 1e-7
    layer = gpd.GeoDataFrame(
        {"zone": ["W", "E", "NE"]},
        geometry=[
            shapely.box(0.0, 0.0, 1.0, 1.0),
            shapely.box(1.0 + gap, 0.0, 2.0, 1.0),
            shapely.box(2.0, 1.0, 3.0, 2.0),  # touches E at its north-east corner only
        ],
        crs="EPSG:4326",
    )
    path = write_layer(tmp_path, layer)
    accounts = accounts_frame([{"account_id": "a", "latitude": 0.5, "longitude": 0.5}])
    built = build_units(accounts, polygon_units(path, islands="warn"), tmp_path, need_edges=True)
    assert edge_ids(built) == {frozenset(("W", "E"))}


def test_border_with_an_extra_vertex_is_still_shared(tmp_path: Path) -> None:
    """One neighbour's border has a vertex half-way along the shared side; the other's has not."""
    west = shapely.Polygon([(0, 0), (1, 0), (1, 0.5), (1, 1), (0, 1)])
    east = shapely.box(1, 0, 2, 1)
    path = write_layer(tmp_path, gpd.GeoDataFrame({"zone": ["W", "E"]}, geometry=[west, east], crs="EPSG:4326"))
    accounts = accounts_frame([{"account_id": "a", "latitude": 0.5, "longitude": 0.5}])
    layer = build_units(accounts, polygon_units(path), tmp_path, need_edges=True)
    assert edge_ids(layer) == {frozenset(("W", "E"))}


def test_family_takes_the_unit_of_its_top_account(tmp_path: Path) -> None:
    path = write_layer(tmp_path, grid_layer())
    top_lat, top_lon = centre(0, 0)
    child_lat, child_lon = centre(2, 2)
    accounts = accounts_frame(
        [
            {"account_id": "child", "latitude": child_lat, "longitude": child_lon, "family_id": "top"},
            {"account_id": "top", "latitude": top_lat, "longitude": top_lon, "family_id": "top"},
            {"account_id": "solo", "latitude": child_lat, "longitude": child_lon},
        ]
    )
    layer = build_units(accounts, polygon_units(path), tmp_path, need_edges=True)
    assert unit_of(layer) == ["Z00", "Z00", "Z22"]


def test_key_accounts_get_units_of_their_own(tmp_path: Path) -> None:
    """Enterprise families and big accounts become ``key:<family>`` units with no neighbours."""
    path = write_layer(tmp_path, grid_layer())
    lat, lon = centre(1, 1)
    accounts = accounts_frame(
        [
            {"account_id": "ent", "latitude": lat, "longitude": lon, "segment": "enterprise"},
            {"account_id": "ent-branch", "latitude": 40.01, "longitude": -89.99, "family_id": "ent"},
            {"account_id": "big", "latitude": lat, "longitude": lon, "potential": 5e6},
            {"account_id": "small", "latitude": lat, "longitude": lon},
        ]
    )
    units = polygon_units(path, key_accounts={"segments": ["Enterprise"], "min_potential": 1e6})
    layer = build_units(accounts, units, tmp_path, need_edges=True)
    assert unit_of(layer) == ["key:ent", "key:ent", "key:big", "Z11"]
    assert layer.unit_ids.tolist()[-2:] == ["key:ent", "key:big"]
    assert layer.key.tolist() == [False] * 9 + [True, True]
    key_units = set(np.flatnonzero(layer.key))
    assert not any(int(i) in key_units or int(j) in key_units for i, j in layer.edges)
    assert len(layer.edges) == 12
    big = layer.num_units - 1
    disc = layer.geometry.iloc[big]
    assert disc.contains(shapely.Point(lon, lat)) and disc.area < 0.001
    assert layer.latitude[big] == pytest.approx(lat) and layer.longitude[big] == pytest.approx(lon)
    assert nx.is_connected(layer.graph().subgraph(range(9)))


# ---------------------------------------------------------------------------- hexagons


def two_clusters(rng: np.random.Generator, per_cluster: int = 15) -> pd.DataFrame:
    """Two tight clusters of accounts near 40N, 50 km apart east-west."""
    dlon = 50.0 / (111.195 * np.cos(np.radians(40.0)))
    lat = 40.0 + rng.normal(0.0, 0.02, 2 * per_cluster)
    lon = -90.0 + np.repeat([0.0, dlon], per_cluster) + rng.normal(0.0, 0.02, 2 * per_cluster)
    return accounts_frame(
        [
            {"account_id": f"H{k}", "latitude": float(la), "longitude": float(lo), "workload": float(k % 4)}
            for k, (la, lo) in enumerate(zip(lat, lon, strict=True))
        ]
    )


def test_hexagon_clusters_are_joined_by_empty_path_cells(tmp_path: Path) -> None:
    accounts = two_clusters(np.random.default_rng(7))
    units = Units.model_validate({"source": "hexagons", "resolution": 6})
    layer = build_units(accounts, units, tmp_path, need_edges=True)
    cells = [h3.latlng_to_cell(la, lo, 6) for la, lo in zip(accounts["latitude"], accounts["longitude"], strict=True)]
    assert unit_of(layer) == cells
    assert nx.is_connected(layer.graph())
    assert layer.notes == []  # path cells, not island links, join the clusters
    check_edge_array(layer)
    for i, j in layer.edges:
        assert h3.are_neighbor_cells(layer.unit_ids[i], layer.unit_ids[j])
    # every neighbouring pair of kept cells is an edge
    kept = set(layer.unit_ids.tolist())
    pairs = {frozenset((c, n)) for c in kept for n in h3.grid_disk(c, 1) if n in kept and n != c}
    assert edge_ids(layer) == pairs
    empty = np.bincount(layer.unit_of_account, minlength=layer.num_units) == 0
    assert empty.sum() >= 3  # 50 km of res-6 cells (about 6 km across) between the clusters
    for k, u in enumerate(layer.unit_of_account):
        assert layer.geometry.iloc[u].covers(shapely.Point(accounts["longitude"][k], accounts["latitude"][k]))
    for u in np.flatnonzero(empty):
        centre_lat, centre_lon = h3.cell_to_latlng(layer.unit_ids[u])
        assert (layer.latitude[u], layer.longitude[u]) == pytest.approx((centre_lat, centre_lon))


def test_hexagons_without_edges_add_no_empty_cells(tmp_path: Path) -> None:
    accounts = two_clusters(np.random.default_rng(7))
    units = Units.model_validate({"source": "hexagons", "resolution": 6})
    layer = build_units(accounts, units, tmp_path, need_edges=False)
    assert len(layer.edges) == 0
    assert (np.bincount(layer.unit_of_account, minlength=layer.num_units) > 0).all()


# ---------------------------------------------------------------------------- voronoi


def test_voronoi_cells_are_connected_and_hold_their_accounts(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    n = 300
    accounts = accounts_frame(
        [
            {
                "account_id": f"V{k}",
                "latitude": float(40.0 + rng.uniform(-0.5, 0.5)),
                "longitude": float(-90.0 + rng.uniform(-0.6, 0.6)),
                "workload": float(rng.integers(0, 5)),
            }
            for k in range(n)
        ]
    )
    units = Units.model_validate({"source": "voronoi", "resolution": 6})
    layer = build_units(accounts, units, tmp_path, need_edges=True)
    assert layer.num_units > 10
    assert nx.is_connected(layer.graph())
    assert layer.notes == []
    check_edge_array(layer)
    points = shapely.points(accounts["longitude"], accounts["latitude"])
    assert shapely.covers(layer.geometry.to_numpy()[layer.unit_of_account], points).all()
    # a tessellation: cells do not overlap and cover the accounts' hull
    union = shapely.union_all(layer.geometry.to_numpy())
    assert shapely.area(layer.geometry.to_numpy()).sum() == pytest.approx(union.area, rel=1e-6)
    assert union.covers(shapely.convex_hull(shapely.multipoints(points)))
    # unit ids are the H3 cells the groups started from
    assert all(h3.is_valid_cell(u) and h3.get_resolution(u) == 6 for u in layer.unit_ids)


def test_voronoi_with_one_group_is_one_unit(tmp_path: Path) -> None:
    accounts = accounts_frame([{"account_id": "a", "latitude": 40.0, "longitude": -90.0}])
    layer = build_units(accounts, Units.model_validate({"source": "voronoi"}), tmp_path, need_edges=True)
    assert layer.num_units == 1 and len(layer.edges) == 0
    assert layer.geometry.iloc[0].contains(shapely.Point(-90.0, 40.0))


# ---------------------------------------------------------------------------- accounts


def test_account_units_have_delaunay_edges_forming_a_connected_planar_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 200
    rows = [
        {
            "account_id": f"C{k}",
            "latitude": float(40.0 + rng.uniform(-1, 1)),
            "longitude": float(-90.0 + rng.uniform(-1, 1)),
        }
        for k in range(n)
    ]
    rows.append({"account_id": "twin", "latitude": rows[0]["latitude"], "longitude": rows[0]["longitude"]})
    accounts = accounts_frame(rows)
    layer = build_units(accounts, Units(), tmp_path, need_edges=True)
    units = layer.num_units
    assert units == n + 1 and layer.geometry is None
    graph = layer.graph()
    assert nx.is_connected(graph)
    assert len(layer.edges) <= 3 * units - 6
    assert nx.check_planarity(graph)[0]
    check_edge_array(layer)
    assert frozenset(("C0", "twin")) in edge_ids(layer)  # same address: still neighbours


def test_account_units_are_families_with_weighted_points(tmp_path: Path) -> None:
    accounts = accounts_frame(
        [
            {"account_id": "p", "latitude": 40.0, "longitude": -90.0, "workload": 3.0},
            {"account_id": "q", "latitude": 41.0, "longitude": -91.0, "workload": 1.0, "family_id": "p"},
            {"account_id": "r", "latitude": 42.0, "longitude": -92.0, "workload": 0.0},
            {"account_id": "s", "latitude": 43.0, "longitude": -92.0, "workload": 0.0, "family_id": "r"},
        ]
    )
    layer = build_units(accounts, Units(), tmp_path, need_edges=False)
    assert layer.unit_ids.tolist() == ["p", "r"]
    assert layer.unit_of_account.tolist() == [0, 0, 1, 1]
    assert layer.latitude.tolist() == pytest.approx([40.25, 42.5])
    assert layer.longitude.tolist() == pytest.approx([-90.25, -92.0])
    assert layer.edges.shape == (0, 2)


def test_collinear_account_units_form_a_chain(tmp_path: Path) -> None:
    accounts = accounts_frame([{"account_id": f"L{k}", "latitude": 40.0, "longitude": -90.0 + k} for k in range(4)])
    layer = build_units(accounts, Units(), tmp_path, need_edges=True)
    assert layer.edges.tolist() == [[0, 1], [1, 2], [2, 3]]


def test_same_input_gives_the_same_units(tmp_path: Path) -> None:
    accounts = two_clusters(np.random.default_rng(5))
    for source in ("accounts", "hexagons", "voronoi"):
        units = Units.model_validate({"source": source, "resolution": 6})
        first = build_units(accounts, units, tmp_path, need_edges=True)
        second = build_units(accounts, units, tmp_path, need_edges=True)
        assert first.unit_ids.tolist() == second.unit_ids.tolist()
        assert np.array_equal(first.unit_of_account, second.unit_of_account)
        assert np.array_equal(first.edges, second.edges)
        assert np.array_equal(first.latitude, second.latitude)


@pytest.mark.parametrize("source", ["accounts", "hexagons", "voronoi"])
def test_only_key_accounts_give_only_key_units(tmp_path: Path, source: str) -> None:
    accounts = accounts_frame(
        [
            {"account_id": "a", "latitude": 40.0, "longitude": -90.0, "segment": "enterprise"},
            {"account_id": "b", "latitude": 40.5, "longitude": -90.5, "segment": "enterprise"},
        ]
    )
    units = Units.model_validate({"source": source, "key_accounts": {"segments": ["enterprise"]}})
    layer = build_units(accounts, units, tmp_path, need_edges=True)
    assert layer.unit_ids.tolist() == ["key:a", "key:b"]
    assert layer.key.all() and len(layer.edges) == 0 and layer.notes == []
