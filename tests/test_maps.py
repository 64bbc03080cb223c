"""Folium rendering of a plan: layers, areas, markers, legend, colours, offline pages, side-by-side maps.

The small named plans here (:func:`three_cities_plan`) are shared with the report, workbook and browser tests.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from maps import build_compare_map, build_plan_map, territory_colors, write_compare_map, write_plan_map
from maps.assets import OfflineAssetError, inline_assets, remote_assets
from maps.compare_map import SyncViews, changed_accounts
from maps.plan_map import MOVED_OUTLINE, AccountLayer, MapControl, territory_area
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


def three_cities_plan() -> Plan:
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


def custom_metric_plan(*, name: str = "t", first_rep_name: str | None = None) -> Plan:
    """The three cities with a custom balanced metric (``revenue_last_year``), as a scenario may add."""
    plan = three_cities_plan()
    reps = plan.dataset.reps.copy()
    if first_rep_name is not None:
        reps.loc[0, "name"] = first_rep_name
    accounts = plan.dataset.accounts.assign(revenue_last_year=np.arange(9, dtype=float) * 10.5)
    scenario = Scenario.model_validate(
        {
            "name": name,
            "data": {"accounts": "a.csv", "reps": "r.csv"},
            "balance": {
                "accounts": {"tolerance_pct": 10},
                "revenue_last_year": {"column": "LastYear", "tolerance_pct": 15},
            },
        }
    )
    return Plan(
        dataset=Dataset(accounts=accounts, reps=reps, scenario=scenario), rep_index=plan.rep_index, report=plan.report
    )


@pytest.fixture(scope="module")
def three_cities() -> Plan:
    """See :func:`three_cities_plan`."""
    return three_cities_plan()


def _groups(fmap: folium.Map) -> list[folium.FeatureGroup]:
    return [child for child in fmap._children.values() if isinstance(child, folium.FeatureGroup)]


def _account_layers(group: folium.FeatureGroup) -> list[AccountLayer]:
    return [child for child in group._children.values() if isinstance(child, AccountLayer)]


def _accounts_drawn(fmap: folium.Map) -> dict[str, dict]:
    """Account id -> what the page gets for it (its territory layer's entry and its row of the account table)."""
    out = {}
    for group in _groups(fmap):
        for layer in _account_layers(group):
            data, table = layer.data, layer.table.data
            for i, row in enumerate(data["rows"]):
                out[table["id"][row]] = {
                    "layer": group.layer_name,
                    "name": table["name"][row],
                    "radius": table["radius"][row],
                    "note": data["notes"][data["note"][i]],
                    "highlight": i in data["highlight"],
                    "values": {v["label"]: v["data"][row] for v in table["values"]},
                }
    return out


def _controls(fmap: folium.Map) -> dict[str, str]:
    """'legend' and 'title' HTML of the map's controls."""
    out = {}
    for child in fmap._children.values():
        if isinstance(child, MapControl):
            out["legend" if "plan-legend" in child.html else "title"] = child.html
    return out


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
    drawn = _accounts_drawn(fmap)
    assert sorted(drawn) == [f"A{i}" for i in range(1, 10)]
    counts = {
        layer: sum(1 for a in drawn.values() if a["layer"] == layer) for layer in {a["layer"] for a in drawn.values()}
    }
    assert counts == {"Ana Lima (R1)": 4, "Bruno Costa (R2)": 4, "Carla Reis (R3)": 1}
    assert [len(_account_layers(g)) for g in _groups(fmap)] == [1, 1, 1]
    page = fmap.get_root().render()
    assert page.count("new L.AccountDots(") == 3  # one account layer script per territory


def test_account_columns_carry_every_reported_metric(three_cities: Plan) -> None:
    drawn = _accounts_drawn(build_plan_map(three_cities))
    assert drawn["A2"]["values"] == {"Potential": 2000.0, "Workload": 11.0}
    assert drawn["A2"]["name"] == "Lisbon customer 1"


def test_marker_radius_grows_with_potential_within_bounds(three_cities: Plan) -> None:
    drawn = _accounts_drawn(build_plan_map(three_cities))
    by_potential = sorted((a["values"]["Potential"], a["radius"]) for a in drawn.values())
    radii = [radius for _, radius in by_potential]
    assert radii == sorted(radii)
    assert 3.0 <= radii[0] < radii[-1] == 9.0


def test_moved_account_has_a_black_outline(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities)
    drawn = _accounts_drawn(fmap)
    assert [k for k, a in drawn.items() if a["highlight"]] == ["A4"]
    assert drawn["A4"]["note"] == "moved from R2"
    assert drawn["A8"]["note"] == "kept"
    layers = [layer for g in _groups(fmap) for layer in _account_layers(g)]
    assert all(layer.outline == MOVED_OUTLINE for layer in layers)
    assert "1 moved (outlined)" in _controls(fmap)["title"]


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
    controls = _controls(build_plan_map(three_cities))
    legend = controls["legend"]
    rows = re.findall(r'<td class="rep">(.*?)</td>', legend)
    assert rows == ["Ana Lima (R1)", "Bruno Costa (R2)", "Carla Reis (R3)"]
    for color in territory_colors(3):
        assert f"background:{color}" in legend
    headers = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", legend)
    assert headers[:6] == ["", "Rep", "Segment", "FTE", "Accounts", "Potential"] and headers[6] == "Workload"
    title = controls["title"]
    assert ">t<" in title and "status optimal" in title and "gap 0.00%" in title


def test_legend_shows_largest_deviation_among_balanced_metrics(three_cities: Plan) -> None:
    legend = _controls(build_plan_map(three_cities))["legend"]
    territories = three_cities.territories().set_index("rep_id")
    devs = territories.loc["R3", ["accounts_deviation_pct", "potential_deviation_pct"]]
    worst = devs.abs().idxmax().removesuffix("_deviation_pct")
    carla = re.search(r"<tr[^>]*>(?:(?!</tr>).)*Carla Reis \(R3\).*?</tr>", legend).group(0)
    assert f"{devs.loc[f'{worst}_deviation_pct']:+.1f}%" in carla
    assert carla.endswith(f' <span class="dev-metric">{worst}</span></td></tr>')


def test_legend_rows_zoom_to_their_territory(three_cities: Plan) -> None:
    """Fit-to-territory view: each legend row carries its territory's bounds, 'All' the whole plan's."""
    legend = _controls(build_plan_map(three_cities))["legend"]
    boxes = [json.loads(b) for b in re.findall(r'<tr data-bounds="(.*?)"', legend)]
    assert len(boxes) == 3
    (south, west), (north, east) = boxes[2]  # Carla: one account at Faro and her home base there
    assert south < 37.02 < north and west < -7.93 < east
    assert north - south < 0.2
    everything = json.loads(re.search(r'class="plan-zoom-all" data-bounds="(.*?)"', legend).group(1))
    assert everything == [[pytest.approx(37.02), pytest.approx(-9.14)], [pytest.approx(41.18), pytest.approx(-7.93)]]


def test_custom_title_and_fit_bounds(three_cities: Plan) -> None:
    fmap = build_plan_map(three_cities, title="Q3 redesign")
    assert "Q3 redesign" in _controls(fmap)["title"]
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
    assert [sum(len(layer.data["rows"]) for layer in _account_layers(g)) for g in groups] == [2, 3, 0]
    for group in groups[:2]:
        polygon = shape(_geojson_features(group, "territory")[0]["geometry"])
        assert polygon.geom_type == "Polygon" and polygon.area > 0
    html = fmap.get_root().render()
    names = _account_layers(groups[0])[0].table.data["name"]
    assert names[0] == "<b>Acme</b> & `co` ${x}"  # plain text in the data, escaped by the page where shown
    assert "<b>Acme</b>" not in html
    # ${x} may only sit in the accounts' JSON data (a plain string there), never in a JavaScript template literal
    assert all(line.strip().startswith("L.AccountDots.tables[") for line in html.splitlines() if "${x}" in line)
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
    drawn = _accounts_drawn(build_plan_map(plan))
    assert drawn["U1"]["note"] == "no current rep"
    assert drawn["U1"]["highlight"] is False


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
    page = (folder / "map.html").read_text(encoding="utf-8")
    assert page.count("new L.AccountDots(") == 3 and page.count('"kind": "territory"') == 3


def test_territory_drawn_as_its_unit_polygons_when_the_plan_has_them() -> None:
    """A plan built on geographic units draws each territory as its dissolved units, not a hull of its accounts."""
    plan = three_cities_plan()
    squares = [shapely.box(-9.5, 38.5, -8.8, 39.0), shapely.box(-8.9, 40.9, -8.3, 41.5), None]
    plan.__dict__["territory_shapes"] = squares  # what Plan.territory_shapes gives for a unit plan
    groups = _groups(build_plan_map(plan))
    for group, square in zip(groups[:2], squares[:2], strict=True):
        drawn = shape(_geojson_features(group, "territory")[0]["geometry"])
        assert drawn.equals(square)
    carla = shape(_geojson_features(groups[2], "territory")[0]["geometry"])  # no unit shape: hull of her account
    assert carla.contains(shapely.Point(-7.93, 37.02))


def test_offline_page_loads_nothing_from_the_network(three_cities: Plan, tmp_path: Path) -> None:
    online = build_plan_map(three_cities).get_root().render()
    assert any("leaflet.js" in url for url in remote_assets(online))
    write_plan_map(tmp_path / "map.html", three_cities, offline=True)
    page = (tmp_path / "map.html").read_text(encoding="utf-8")
    assert remote_assets(page) == []
    assert "tile.openstreetmap.org" not in page and "basemaps.cartocdn.com" not in page
    assert "/* leaflet.js */" in page and "/* jquery-3.7.1.min.js */" in page and "/* leaflet.css */" in page
    assert "url(data:image/png;base64," in page  # the layer switch icon of leaflet.css, inlined
    assert "bootstrap" not in page.lower()


def test_compare_map_of_different_accounts_sends_each_plan_its_own_table(three_cities: Plan) -> None:
    plan = three_cities_plan()
    fewer = Plan(
        dataset=Dataset(
            accounts=plan.dataset.accounts.iloc[:8].reset_index(drop=True),
            reps=plan.dataset.reps,
            scenario=plan.dataset.scenario,
        ),
        rep_index=plan.rep_index[:8],
        report=plan.report,
    )
    figure = build_compare_map([three_cities, fewer], ["nine", "eight"])
    page = figure.render()
    assert page.count('L.AccountDots.tables["') == 2
    right = [c for c in figure._children.values() if isinstance(c, folium.Map)][1]
    drawn = _accounts_drawn(right)
    assert sorted(drawn) == [f"A{i}" for i in range(1, 9)]
    assert all(a["note"] == "same in nine" for a in drawn.values())


def test_offline_refuses_a_remote_asset_no_package_provides() -> None:
    page = '<html><head><script src="https://example.org/lib/unknown-plugin.js"></script></head></html>'
    with pytest.raises(OfflineAssetError, match=r"unknown-plugin\.js"):
        inline_assets(page)
    cluster = '<script src="https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js"></script>'
    assert "MarkerClusterGroup" in inline_assets(cluster)


def _moved_plan(plan: Plan, moves: dict[int, int]) -> Plan:
    """The same accounts with some of them given to another rep (account row -> rep row)."""
    rep_index = plan.rep_index.copy()
    for row, rep in moves.items():
        rep_index[row] = rep
    return Plan(dataset=plan.dataset, rep_index=rep_index, report=plan.report)


def test_changed_accounts_names_where_the_other_plan_puts_them(three_cities: Plan) -> None:
    other = _moved_plan(three_cities, {0: 1})  # A1: Ana -> Bruno
    rep_of = [pd.Series(p.rep_ids, index=p.dataset.accounts["account_id"]) for p in (three_cities, other)]
    flags, notes = changed_accounts(rep_of, 0, ["A", "B"])
    assert flags.tolist() == [True] + [False] * 8
    assert notes[0] == "B: R2" and notes[1] == "same in B"
    flags, notes = changed_accounts(rep_of, 1, ["A", "B"])
    assert flags.sum() == 1 and notes[0] == "A: R1"
    fewer = rep_of[1].drop("A9")
    flags, notes = changed_accounts([rep_of[0], fewer], 0, ["A", "B"])
    assert notes[8] == "not in B" and not flags[8]


def test_compare_map_two_synchronised_maps_with_changes_outlined(three_cities: Plan, tmp_path: Path) -> None:
    other = _moved_plan(three_cities, {0: 1, 4: 0})
    figure = build_compare_map([three_cities, other], ["today", "proposal"])
    maps = [c for c in figure._children.values() if isinstance(c, folium.Map)]
    assert len(maps) == 2
    assert [m.left for m in maps] == [(0.0, "%"), (50.0, "%")]
    sync = [c for c in maps[1]._children.values() if isinstance(c, SyncViews)]
    assert len(sync) == 1 and sync[0].maps == maps
    for fmap in maps:
        drawn = _accounts_drawn(fmap)
        assert sorted(k for k, a in drawn.items() if a["highlight"]) == ["A1", "A5"]
        assert "2 accounts placed differently" in _controls(fmap)["title"]
    assert "proposal: t" in _controls(maps[1])["title"]
    path = write_compare_map([three_cities, other], ["today", "proposal"], tmp_path / "compare.html", offline=True)
    page = path.read_text(encoding="utf-8")
    assert remote_assets(page) == [] and page.count("new L.AccountDots(") == 6
    assert page.count('L.AccountDots.tables["') == 1  # the panes share one copy of the accounts' columns
    with pytest.raises(ValueError, match="two to"):
        build_compare_map([three_cities], ["only"])
    with pytest.raises(ValueError, match="one label per plan"):
        build_compare_map([three_cities, other], ["a"])
