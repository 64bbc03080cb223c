"""Folium rendering of a plan: layers, areas, markers, legend, colours."""

from __future__ import annotations

import re
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from maps import build_plan_map, territory_colors, write_plan_map
from maps.plan_map import MOVED_OUTLINE, territory_area
from models.dataset import Dataset
from models.plan import Plan, SolveReport
from models.scenario import Scenario

CITIES = {"lisbon": (38.72, -9.14), "porto": (41.15, -8.61), "faro": (37.02, -7.93)}


def _scenario() -> Scenario:
    return Scenario.model_validate(
        {
            "name": "t",
            "data": {"accounts": "a.csv", "reps": "r.csv"},
            "balance": {"accounts": {"tolerance_pct": 10}, "potential": {"tolerance_pct": 20}},
        }
    )


def _report(units: int) -> SolveReport:
    return SolveReport(
        status="optimal",
        objective=1.0,
        bound=1.0,
        gap=0.0,
        solve_seconds=0.1,
        time_limit_s=10,
        seed=0,
        workers=1,
        units=units,
    )


def _accounts(rows: list[tuple[str, str, float, float, str, float, float, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["account_id", "name", "latitude", "longitude", "segment", "potential", "workload", "current_rep"]
    )
    frame["name"] = frame["name"].astype("string")
    frame["current_rep"] = frame["current_rep"].astype("string")
    frame["locked"] = False
    frame["parent_id"] = pd.Series(pd.NA, index=frame.index, dtype="string")
    frame["family_id"] = frame["account_id"]
    return frame


def _reps(rows: list[tuple[str, str, float, float, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["rep_id", "name", "latitude", "longitude", "segment", "fte"])
    frame["name"] = frame["name"].astype("string")
    return frame


@pytest.fixture(scope="module")
def three_cities() -> Plan:
    """Nine accounts around Lisbon (4), Porto (4) and Faro (1); one rep per city.

    Carla (Faro) holds a single account; A4 sits in Lisbon with Ana but its
    current rep is Bruno, so it is the one moved account.
    """
    rows = []
    for city, (lat, lon), owner, ids in (
        ("lisbon", CITIES["lisbon"], "R1", ["A1", "A2", "A3", "A4"]),
        ("porto", CITIES["porto"], "R2", ["A5", "A6", "A7", "A8"]),
        ("faro", CITIES["faro"], "R3", ["A9"]),
    ):
        for k, account_id in enumerate(ids):
            current: str | None = owner
            if account_id == "A4":
                current = "R2"
            rows.append(
                (
                    account_id,
                    f"{city.title()} customer {k}",
                    lat + 0.03 * (k % 2),
                    lon + 0.04 * (k // 2),
                    "smb" if k % 2 else "enterprise",
                    1000.0 * (k + 1),
                    10.0 + k,
                    current,
                )
            )
    reps = _reps(
        [
            ("R1", "Ana Lima", *CITIES["lisbon"], "any", 1.0),
            ("R2", "Bruno Costa", *CITIES["porto"], "any", 1.0),
            ("R3", "Carla Reis", *CITIES["faro"], "any", 0.5),
        ]
    )
    dataset = Dataset(accounts=_accounts(rows), reps=reps, scenario=_scenario())
    rep_index = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2])
    return Plan(dataset=dataset, rep_index=rep_index, report=_report(9))


def _groups(fmap: folium.Map) -> list[folium.FeatureGroup]:
    return [child for child in fmap._children.values() if isinstance(child, folium.FeatureGroup)]


def _geojson_features(group: folium.FeatureGroup, kind: str) -> list[dict]:
    return [
        feature
        for child in group._children.values()
        if isinstance(child, folium.GeoJson)
        for feature in child.data["features"]
        if feature["properties"].get("kind") == kind
    ]


def test_one_layer_per_territory_named_after_the_rep(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    names = [group.layer_name for group in _groups(fmap)]
    assert names == ["Ana Lima (R1)", "Bruno Costa (R2)", "Carla Reis (R3)"]
    controls = [child for child in fmap._children.values() if isinstance(child, folium.LayerControl)]
    assert len(controls) == 1
    assert controls[0].options["collapsed"] is False


def test_one_area_per_territory_covering_its_accounts(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    assignments = three_cities.assignments()
    for group, rep_id in zip(_groups(fmap), ["R1", "R2", "R3"], strict=True):
        areas = _geojson_features(group, "territory")
        assert len(areas) == 1
        polygon = shape(areas[0]["geometry"])
        assert polygon.geom_type == "Polygon" and polygon.is_valid and polygon.area > 0
        mine = assignments[assignments["rep_id"] == rep_id]
        points = shapely.points(mine["longitude"].to_numpy(), mine["latitude"].to_numpy())
        assert shapely.contains(polygon, points).all()
        assert areas[0]["properties"]["style"]["fillColor"] == territory_colors(3)[["R1", "R2", "R3"].index(rep_id)]


def test_one_marker_per_account_in_its_territory_layer(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    per_group = {group.layer_name: _geojson_features(group, "account") for group in _groups(fmap)}
    counts = {k: len(v) for k, v in per_group.items()}
    assert counts == {"Ana Lima (R1)": 4, "Bruno Costa (R2)": 4, "Carla Reis (R3)": 1}
    ids = sorted(f["properties"]["account_id"] for features in per_group.values() for f in features)
    assert ids == [f"A{i}" for i in range(1, 10)]
    html = fmap.get_root().render()
    assert html.count('"kind": "account"') == 9
    assert html.count("new L.CircleMarker(latlng, opts)") == 3  # one marker template per territory layer


def test_marker_radius_grows_with_potential_within_bounds(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    features = [f for group in _groups(fmap) for f in _geojson_features(group, "account")]
    by_potential = sorted(
        (float(f["properties"]["potential"].replace(",", "")), f["properties"]["style"]["radius"]) for f in features
    )
    radii = [radius for _, radius in by_potential]
    assert radii == sorted(radii)
    assert 3.0 <= radii[0] < radii[-1] == 9.0


def test_moved_account_has_a_black_outline(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    features = {f["properties"]["account_id"]: f for g in _groups(fmap) for f in _geojson_features(g, "account")}
    moved = features["A4"]
    assert moved["properties"]["moved"] is True
    assert moved["properties"]["baseline"] == "moved from R2"
    assert {k: moved["properties"]["style"][k] for k in MOVED_OUTLINE} == MOVED_OUTLINE
    for account_id, feature in features.items():
        if account_id != "A4":
            assert "color" not in feature["properties"]["style"], account_id
    assert features["A8"]["properties"]["baseline"] == "kept"
    html = fmap.get_root().render()
    assert html.count('"color": "#000000"') == 1


def test_home_bases_are_star_markers_in_the_territory_colour(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    colors = territory_colors(3)
    for group, color in zip(_groups(fmap), colors, strict=True):
        markers = [c for c in group._children.values() if isinstance(c, folium.Marker)]
        assert len(markers) == 1
        icon = next(c for c in markers[0]._children.values() if isinstance(c, folium.DivIcon))
        assert f'fill="{color}"' in icon.options["html"]
        popups = [c for c in markers[0]._children.values() if isinstance(c, folium.Popup)]
        assert len(popups) == 1


def test_territory_card_holds_kpis(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    carla = _groups(fmap)[2]
    area = next(c for c in carla._children.values() if isinstance(c, folium.GeoJson))
    tooltip = next(c for c in area._children.values() if isinstance(c, folium.Tooltip))
    territories = three_cities.territories().set_index("rep_id")
    assert "Carla Reis (R3)" in tooltip.text
    for metric in ("accounts", "potential", "workload"):
        assert f"{territories.loc['R3', f'{metric}_deviation_pct']:+.1f}%" in tooltip.text
    assert "Mean distance" in tooltip.text and "FTE 0.50" in tooltip.text


def test_legend_lists_every_rep_and_title_shows_status(three_cities: Plan) -> None:
    html = build_plan_map(three_cities).get_root().render()
    legend = re.search(r'<div id="plan-legend".*?</table>', html, flags=re.S)
    assert legend is not None
    rows = re.findall(r'<td class="rep">(.*?)</td>', legend.group(0))
    assert rows == ["Ana Lima (R1)", "Bruno Costa (R2)", "Carla Reis (R3)"]
    for color in territory_colors(3):
        assert f"background:{color}" in legend.group(0)
    title = re.search(r'<div id="plan-title".*?</div></div>', html, flags=re.S)
    assert title is not None
    assert ">t<" in title.group(0) and "status optimal" in title.group(0) and "gap 0.00%" in title.group(0)
    assert "1 moved" in title.group(0)


def test_legend_shows_largest_deviation_among_balanced_metrics(three_cities: Plan) -> None:
    html = build_plan_map(three_cities).get_root().render()
    territories = three_cities.territories().set_index("rep_id")
    devs = territories.loc["R3", ["accounts_deviation_pct", "potential_deviation_pct"]]
    worst = devs.abs().idxmax().removesuffix("_deviation_pct")
    assert f"{devs.loc[f'{worst}_deviation_pct']:+.1f}%" in html


def test_custom_title_and_fit_bounds(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities, title="Q3 redesign")
    html = fmap.get_root().render()
    assert "Q3 redesign" in html
    fits = [c for c in fmap._children.values() if type(c).__name__ == "FitBounds"]
    assert len(fits) == 1
    (south, west), (north, east) = fits[0].bounds
    assert south == pytest.approx(37.02) and north == pytest.approx(41.18)
    assert west == pytest.approx(-9.14) and east == pytest.approx(-7.93)


def test_write_plan_map_writes_a_page(three_cities: Plan, tmp_path: Path) -> None:
    path = tmp_path / "map.html"
    write_plan_map(path, three_cities)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "Carla Reis (R3)" in text and "plan-legend" in text


def test_degenerate_territories_and_unsafe_names() -> None:
    """A rep with no account, one with two accounts, one with collinear accounts; names with HTML."""
    accounts = _accounts(
        [
            ("B1", "<b>Acme</b> & `co` ${x}", 40.0, -8.0, "smb", 0.0, 1.0, "R1"),
            ("B2", "Beta", 40.1, -8.0, "smb", 0.0, 1.0, "R1"),
            ("C1", "Gamma", 41.0, -8.0, "smb", 0.0, 1.0, "R2"),
            ("C2", "Delta", 41.0, -7.9, "smb", 0.0, 1.0, "R2"),
            ("C3", "Epsilon", 41.0, -7.8, "smb", 0.0, 1.0, "R2"),
        ]
    )
    reps = _reps(
        [
            ("R1", "O'Neil <admin>", 40.0, -8.1, "any", 1.0),
            ("R2", "", 41.0, -8.1, "any", 1.0),
            ("R3", "Idle", 40.5, -8.5, "any", 1.0),
        ]
    )
    plan = Plan(
        dataset=Dataset(accounts=accounts, reps=reps, scenario=_scenario()),
        rep_index=np.array([0, 0, 1, 1, 1]),
        report=SolveReport(
            status="feasible",
            objective=2.0,
            bound=1.0,
            gap=0.5,
            solve_seconds=1.0,
            time_limit_s=1,
            seed=0,
            workers=1,
            units=5,
        ),
    )
    fmap = build_plan_map(plan)
    groups = _groups(fmap)
    assert [g.layer_name for g in groups] == ["O&#x27;Neil &lt;admin&gt; (R1)", "R2", "Idle (R3)"]
    assert [len(_geojson_features(g, "territory")) for g in groups] == [1, 1, 0]
    assert [len(_geojson_features(g, "account")) for g in groups] == [2, 3, 0]
    for group in groups[:2]:
        polygon = shape(_geojson_features(group, "territory")[0]["geometry"])
        assert polygon.geom_type == "Polygon" and polygon.area > 0
    html = fmap.get_root().render()
    names = [f["properties"]["name"] for f in _geojson_features(groups[0], "account")]
    assert names[0] == "&lt;b&gt;Acme&lt;/b&gt; &amp; &#96;co&#96; &#36;{x}"
    assert "<b>Acme</b>" not in html and "${x}" not in html
    assert "gap 50.00%" in html


def test_account_without_current_rep_is_drawn_as_unowned() -> None:
    """Regression: a blank current rep (pd.NA) is an account with no baseline, not a move."""
    accounts = _accounts(
        [("U1", "Unowned", 40.0, -8.0, "smb", 5.0, 1.0, None), ("U2", "Owned", 40.1, -8.0, "smb", 5.0, 1.0, "R1")]
    )
    reps = _reps([("R1", "Ana", 40.0, -8.1, "any", 1.0)])
    plan = Plan(
        dataset=Dataset(accounts=accounts, reps=reps, scenario=_scenario()),
        rep_index=np.array([0, 0]),
        report=_report(2),
    )
    features = {
        f["properties"]["account_id"]: f for g in _groups(build_plan_map(plan)) for f in _geojson_features(g, "account")
    }
    assert features["U1"]["properties"]["baseline"] == "no current rep"
    assert features["U1"]["properties"]["moved"] is False


@pytest.mark.parametrize("count", [1, 2, 3])
def test_territory_area_of_few_points_is_a_small_polygon(count: int) -> None:
    lon = np.array([-8.0, -7.9, -7.8])[:count]
    lat = np.array([41.0, 41.0, 41.0])[:count]
    area = territory_area(lon, lat, pad=0.01)
    assert area is not None and area.geom_type == "Polygon"
    assert shapely.contains(area, shapely.points(lon, lat)).all()
    assert territory_area(np.array([]), np.array([]), pad=0.01) is None


def test_territory_area_pads_round_at_high_latitude() -> None:
    lon_scale = float(np.cos(np.radians(60.0)))
    area = territory_area(np.array([10.0]), np.array([60.0]), pad=0.1, lon_scale=lon_scale)
    minx, miny, maxx, maxy = area.bounds
    assert (maxy - miny) == pytest.approx(0.2, rel=0.01)
    assert (maxx - minx) == pytest.approx(0.2 / lon_scale, rel=0.01)  # same ground distance east-west


def test_palette_is_deterministic_and_distinct() -> None:
    assert territory_colors(0) == []
    assert len(set(territory_colors(60))) == 60
    assert len(set(territory_colors(500))) == 500
    assert territory_colors(60) == territory_colors(60)
    assert territory_colors(60)[:25] == territory_colors(25)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in territory_colors(60))
    with pytest.raises(ValueError, match="zero or more"):
        territory_colors(-1)


def test_base_layers_openstreetmap_without_key_positron_first_with_carto_key(three_cities: Plan) -> None:
    tiles = [c for c in build_plan_map(three_cities)._children.values() if isinstance(c, folium.TileLayer)]
    assert [t.tile_name for t in tiles] == ["OpenStreetMap"]
    keyed = [
        c
        for c in build_plan_map(three_cities, carto_api_key="k1")._children.values()
        if isinstance(c, folium.TileLayer)
    ]
    assert [t.tile_name for t in keyed] == ["CartoDB positron", "OpenStreetMap"]
    assert "basemaps.cartocdn.com/light_all" in keyed[0].tiles
    assert keyed[0].tiles.endswith("key=k1")


def test_write_plan_map_works_as_an_extra_writer_of_a_plan_folder(three_cities: Plan, tmp_path: Path) -> None:
    from models.plan_io import write_plan

    folder = write_plan(three_cities, tmp_path / "plan", extra={"map.html": write_plan_map})
    assert (folder / "map.html").read_text(encoding="utf-8").count('"kind": "account"') == 9
