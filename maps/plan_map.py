"""A plan on a Folium map: territory areas, accounts, home bases, legend.

The map is built from a :class:`~models.plan.Plan` alone: it never re-solves
and never reads scenario files. Every territory is one layer (named
``"<rep name> (<rep_id>)"``) that the layer control toggles; it holds

- the territory's area: its dissolved unit polygons when the plan was built
  on geographic units, else a concave hull around its accounts, lightly
  filled in the territory colour, with the territory KPIs on hover;
- its accounts: circles in the territory colour, sized by potential,
  outlined in black when the account moved away from its current rep;
- the rep's home base: a star in the territory colour (click: the KPIs).

A legend (bottom right) lists every rep with its loads and its largest
deviation from target; clicking a rep zooms to its territory ("All" zooms
back out). A title (top left) names the scenario and how the solve ended.

Accounts are sent once per page as compact columns (:class:`AccountTable`:
coordinates, radius, id, name, values), each territory as a list of rows
(:class:`AccountLayer`), and drawn by ``L.AccountDots`` (a few lines of
JavaScript here) on one canvas per map in one pass, with a tooltip built only
for the account under the pointer: a 100,000-account plan is about ten
megabytes and opens in a few seconds (``benchmarks/bench_render.py``).

Above :data:`ACCOUNT_DOTS_UP_TO` accounts one dot per account would make a
page too heavy to open (a million accounts: 99 MB): each territory's accounts
are then drawn as hexagons (H3 cells, coarser until at most
:data:`MAX_AGGREGATES` cell-territory pairs remain), one dot per hexagon in
the territory colour at its accounts' mean position, sized by their summed
potential, with the summed metrics in its tooltip (:class:`AggregateTable`);
the legend says so. Below the threshold nothing changes.

``offline=True`` writes a page that needs no network: no base map tiles, and
Leaflet and jQuery inlined from installed packages (see :mod:`maps.assets`).
"""

from __future__ import annotations

import html
import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import folium
import h3
import numpy as np
import pandas as pd
import shapely
import xyzservices
from branca.element import Figure, MacroElement, Template
from folium.utilities import JsCode
from shapely.geometry import MultiPoint, mapping
from shapely.geometry.base import BaseGeometry

from maps.assets import inline_assets
from maps.palette import territory_colors
from models.formatting import MISSING, compact, digits, number
from models.formatting import label as planner_label
from models.plan import Plan
from models.plan_io import write_atomic

logger = logging.getLogger(__name__)

#: Base tiles: a quiet, light web map that lets territory colours stand out (shown first) ...
BASE_TILES = "CartoDB positron"
#: ... and a keyless alternative in the layer control.
ALTERNATIVE_TILES = "OpenStreetMap"
#: Background of offline maps (no tiles): a pale paper tone.
OFFLINE_BACKGROUND = "#f4f3ef"
#: Concave-hull ratio (0: tightest, 1: convex hull).
CONCAVE_RATIO = 0.4
#: Fill opacity of territory areas.
AREA_FILL_OPACITY = 0.12
#: Account marker radius range in pixels (sqrt-scaled by potential).
MIN_RADIUS_PX = 3.0
MAX_RADIUS_PX = 9.0
#: Outline of accounts that moved away from their current rep.
MOVED_OUTLINE = {"color": "#000000", "weight": 2, "opacity": 1.0}
#: Above this many accounts, accounts are drawn as hexagons of accounts (:class:`AggregateTable`): a
#: 100,000-account map of dots (9.7 MB) rendered in 3.8-5.0 s in headless Chromium (benchmarks/bench_render.py),
#: at the 5 s a map may take.
ACCOUNT_DOTS_UP_TO = 100_000
#: Most hexagon-territory dots of an aggregated map: the H3 resolution coarsens from :data:`FINEST_H3` until
#: they fit.
MAX_AGGREGATES = 40_000
#: Finest H3 resolution of the hexagons (8: about 0.7 km2).
FINEST_H3 = 8
#: The layer control starts collapsed above this many territories (it would cover the map).
LAYER_CONTROL_OPEN_UP_TO = 20
#: Decimals of account coordinates in the page (5: about one metre).
COORD_DECIMALS = 5
#: Area padding as a share of the map's diagonal, and its bounds in degrees of latitude.
_PAD_SHARE = 0.015
_PAD_MIN_DEG = 0.003
_PAD_MAX_DEG = 0.25
#: Unit polygons are simplified to this share of the map's diagonal (invisible at any useful zoom).
_SIMPLIFY_SHARE = 2e-4
#: Keep every area beneath every account: on the shared canvas the last layer drawn takes the
#: mouse, so an area added later (another territory, or one toggled back on) would hide the
#: tooltips of the accounts under it.
_AREA_TO_BACK = JsCode("function (feature, layer) { layer.on('add', function () { layer.bringToBack(); }); }")
#: Five-pointed star (24 x 24 view box) for home bases.
_STAR_PATH = "M12 1.8l3.1 6.5 7.1.9-5.2 4.9 1.3 7-6.3-3.4-6.3 3.4 1.3-7-5.2-4.9 7.1-.9z"


def build_plan_map(
    plan: Plan,
    *,
    title: str | None = None,
    carto_api_key: str | None = None,
    offline: bool = False,
) -> folium.Map:
    """Draw a plan as a Folium map with one toggleable layer per territory.

    Parameters
    ----------
    plan
        The plan to draw.
    title
        Heading shown at the top of the map; default: the scenario name.
    carto_api_key
        Key for the CARTO basemaps (CARTO has required one since August
        2026; without it the positron tiles carry an "API key required"
        watermark). OpenStreetMap tiles are always offered as an alternative
        base layer in the layer control.
    offline
        Draw no base map tiles (they come from the web). Save the map with
        :func:`save_page` and ``offline=True`` to inline the scripts too.

    Returns
    -------
    folium.Map
        Ready to display in a notebook or to save with :func:`save_page`.

    Examples
    --------
    >>> m = build_plan_map(plan)  # doctest: +SKIP
    >>> save_page(m, "map.html")  # doctest: +SKIP
    """
    fmap = new_map(plan, carto_api_key=carto_api_key, offline=offline)
    draw_plan(fmap, plan, title=title)
    return fmap


def new_map(
    plan: Plan,
    *,
    carto_api_key: str | None = None,
    offline: bool = False,
    **options: Any,
) -> folium.Map:
    """An empty Folium map centred on a plan, with the base layers (none offline).

    Parameters
    ----------
    plan
        The plan whose accounts and home bases set the centre.
    carto_api_key
        See :func:`build_plan_map`.
    offline
        Leave out the tile layers; the map shows a plain background.
    **options
        Further :class:`folium.Map` arguments (size and position in a page).
    """
    lat, lon = _all_points(plan)
    center = [float((lat.min() + lat.max()) / 2), float((lon.min() + lon.max()) / 2)] if len(lat) else [0.0, 0.0]
    fmap = folium.Map(location=center, zoom_start=6, tiles=None, control_scale=True, prefer_canvas=True, **options)
    if offline:
        HeadStyle(f".folium-map.leaflet-container {{background: {OFFLINE_BACKGROUND};}}").add_to(fmap)
        return fmap
    if carto_api_key:
        _positron_tiles(carto_api_key).add_to(fmap)
    # without a CARTO key, positron tiles carry a watermark: OpenStreetMap is the base map then
    folium.TileLayer(ALTERNATIVE_TILES, name=ALTERNATIVE_TILES).add_to(fmap)
    return fmap


def draw_plan(
    fmap: folium.Map,
    plan: Plan,
    *,
    title: str | None = None,
    highlight: np.ndarray | None = None,
    notes: Sequence[str] | None = None,
    status_note: str | None = None,
    collapse_layers: bool | None = None,
    table: AccountTable | None = None,
) -> folium.Map:
    """Add a plan's territories, accounts, home bases, legend and title to a map.

    Parameters
    ----------
    fmap
        The map to draw on (see :func:`new_map`).
    plan
        The plan to draw.
    title
        Heading of the map; default: the scenario name.
    highlight
        Accounts to outline in black, one flag per account row; default: the
        accounts that moved away from their current rep (``Plan.moved``).
    notes
        Per account, the text of the tooltip's "Baseline" line; default:
        ``moved from <rep>``, ``kept`` or ``no current rep``.
    status_note
        Extra text for the title's status line (default: the number moved).
    collapse_layers
        Start with the layer switch folded into its button; default: above
        :data:`LAYER_CONTROL_OPEN_UP_TO` territories.
    table
        The accounts' columns, shared by the maps of one page (the panes of a
        comparison): added to ``fmap`` unless an earlier map of the page holds
        it; default (or when it holds other accounts): a table of this plan's
        accounts.

    Returns
    -------
    folium.Map
        ``fmap``.
    """
    accounts = plan.dataset.accounts  # the input columns; Plan.assignments() would add what the map does not show
    territories = plan.territories()
    reps = plan.dataset.reps
    scenario = plan.dataset.scenario
    colors = territory_colors(len(reps))
    labels = [_rep_label(name, rep_id) for name, rep_id in zip(reps["name"], reps["rep_id"], strict=True)]
    if highlight is None:
        highlight = plan.moved
    if notes is None:
        notes = _baseline_notes(accounts["current_rep"], plan.moved)

    acc_lat = accounts["latitude"].to_numpy(float)
    acc_lon = accounts["longitude"].to_numpy(float)
    rep_lat = reps["latitude"].to_numpy(float)
    rep_lon = reps["longitude"].to_numpy(float)
    all_lat, all_lon = _all_points(plan)
    mid_lat = float((all_lat.min() + all_lat.max()) / 2) if len(all_lat) else 0.0
    lon_scale = math.cos(math.radians(mid_lat)) or 1.0
    pad = _area_padding(all_lon * lon_scale, all_lat)
    simplify = pad / _PAD_SHARE * _SIMPLIFY_SHARE
    cards = [_territory_card(plan, row, colors[i], labels[i]) for i, row in enumerate(territories.to_dict("records"))]
    members_of = _members_by_rep(plan.rep_index, len(reps))
    aggregated = len(accounts) > ACCOUNT_DOTS_UP_TO

    shapes = plan.territory_shapes  # dissolved unit polygons, where the plan was built on geographic units
    AccountDots().add_to(fmap)
    if table is None or not table.serves(plan):
        table = AggregateTable(plan) if aggregated else AccountTable(plan)
    if table._parent is None:  # sent with the first map that uses it, after L.AccountDots is defined
        table.add_to(fmap)
    bounds: list[list[list[float]] | None] = []
    layered = plan.layer_of_account
    layer_names = plan.layer_names if layered is not None else ("",)
    layer_shapes = plan.layer_shapes
    switch: dict[str, list[str]] = {name: [] for name in layer_names}
    for r, (color, label, members) in enumerate(zip(colors, labels, members_of, strict=True)):
        parts = _by_layer(members, layered, len(layer_names))
        home_layer = int(np.argmax([len(part) for part in parts]))
        areas = []
        for layer, part in enumerate(parts):
            if layered is not None and not len(part) and (layer_shapes is None or layer_shapes[layer][r] is None):
                continue  # nothing of this territory on this layer
            name = label if layered is None else f"{label} · {layer_names[layer]} layer"
            group = folium.FeatureGroup(name=html.escape(name), show=True).add_to(fmap)
            switch[layer_names[layer]].append(group.get_name())
            area = shapes[r] if layer_shapes is None else layer_shapes[layer][r]
            if area is not None and not area.is_empty:
                area = shapely.set_precision(shapely.simplify(area, simplify, preserve_topology=True), 1e-6)
            else:
                area = territory_area(acc_lon[part], acc_lat[part], pad=pad, lon_scale=lon_scale)
            if area is None:
                logger.debug("territory %s has no accounts with coordinates: no area drawn", name)
            else:
                _area_layer(area, str(reps["rep_id"].iloc[r]), color, cards[r]).add_to(group)
                areas.append(area)
            if isinstance(table, AggregateTable):
                # above the dot threshold: the territory's hexagon dots, drawn once with its home layer
                rows = table.rows_of[r] if layer == home_layer else []
                if len(rows):
                    AccountLayer(
                        table, rows, table.moved[rows] > 0, table.notes(rows), color=color, rep_label=label
                    ).add_to(group)
            elif len(part):
                AccountLayer(
                    table,
                    part,
                    np.asarray(highlight, dtype=bool)[part],
                    [notes[i] for i in part],
                    color=color,
                    rep_label=label,
                ).add_to(group)
            if layer == home_layer and math.isfinite(rep_lat[r]) and math.isfinite(rep_lon[r]):
                _home_marker(float(rep_lat[r]), float(rep_lon[r]), color, label, cards[r]).add_to(group)
        bounds.append(_bounds(shapely.union_all(areas) if areas else None, rep_lat[r], rep_lon[r]))
    if layered is not None:
        LayerSwitch(switch).add_to(fmap)

    if collapse_layers is None:
        collapse_layers = len(reps) > LAYER_CONTROL_OPEN_UP_TO
    folium.LayerControl(collapsed=collapse_layers).add_to(fmap)
    all_bounds = (
        [[float(all_lat.min()), float(all_lon.min())], [float(all_lat.max()), float(all_lon.max())]]
        if len(all_lat)
        else None
    )
    MapControl(_title_html(title or scenario.name, plan, status_note), position="topleft", css=_LEGEND_CSS).add_to(fmap)
    note = table.legend_note() if isinstance(table, AggregateTable) else ""
    legend = _legend_html(plan, territories, colors, labels, bounds, all_bounds, note)
    MapControl(legend, position="bottomright").add_to(fmap)
    if all_bounds is not None:
        fmap.fit_bounds(all_bounds, padding=(20, 20))
    logger.info("map of plan %r: %d territories, %d accounts", scenario.name, len(reps), len(accounts))
    return fmap


def write_plan_map(path: Path, plan: Plan, *, carto_api_key: str | None = None, offline: bool = False) -> None:
    """Save the map of a plan as an HTML page.

    The signature fits :data:`models.plan_io.ExtraWriter`, so
    ``write_plan(plan, out, extra={"map.html": write_plan_map})`` adds the map
    to a plan folder (bind the keywords with ``functools.partial``).

    Parameters
    ----------
    path
        The HTML file to write.
    plan
        The plan to draw.
    carto_api_key
        See :func:`build_plan_map`.
    offline
        Write a page that needs no network: no tiles, scripts inlined from
        installed packages (see :mod:`maps.assets`). By default Leaflet and
        the tiles load from the web when the page is opened.
    """
    save_page(build_plan_map(plan, carto_api_key=carto_api_key, offline=offline), path, offline=offline)


def page_html(element: folium.Map | Figure | MacroElement, *, offline: bool = False) -> str:
    """Render a Folium map (or the figure holding it) as a full HTML page.

    Parameters
    ----------
    element
        A map, or any element of the figure to render.
    offline
        Inline every script and style sheet from installed packages.
    """
    page = element.get_root().render()
    return inline_assets(page) if offline else page


def save_page(element: folium.Map | Figure | MacroElement, path: Path | str, *, offline: bool = False) -> Path:
    """Write :func:`page_html` to ``path``, whole or not at all; return the path."""
    path = Path(path)
    text = page_html(element, offline=offline)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    logger.info("page written to %s (%s)", path, "offline" if offline else "online")
    return path


def _all_points(plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of every account and home base with coordinates."""
    accounts, reps = plan.dataset.accounts, plan.dataset.reps
    lat = np.concatenate([accounts["latitude"].to_numpy(float), reps["latitude"].to_numpy(float)])
    lon = np.concatenate([accounts["longitude"].to_numpy(float), reps["longitude"].to_numpy(float)])
    finite = np.isfinite(lat) & np.isfinite(lon)
    return lat[finite], lon[finite]


def _bounds(area: BaseGeometry | None, home_lat: float, home_lon: float) -> list[list[float]] | None:
    """[[south, west], [north, east]] of a territory's area and home base."""
    boxes = []
    if area is not None and not area.is_empty:
        west, south, east, north = area.bounds
        boxes.append((south, west, north, east))
    if math.isfinite(home_lat) and math.isfinite(home_lon):
        boxes.append((home_lat, home_lon, home_lat, home_lon))
    if not boxes:
        return None
    south, west, north, east = (f(b[k] for b in boxes) for k, f in enumerate((min, min, max, max)))
    return [[round(south, 6), round(west, 6)], [round(north, 6), round(east, 6)]]


def _coded(name: str, values: list[str]) -> dict[str, list[Any]]:
    """A column of few distinct values as ``{name + "s": distinct values, name: index of each}`` (a smaller page)."""
    distinct = list(dict.fromkeys(values))
    index = {value: k for k, value in enumerate(distinct)}
    return {f"{name}s": distinct, name: [index[v] for v in values]}


def _compact(value: float, digits: int = 2) -> float | int | None:
    """A number as short as JSON can write it: integers without '.0', ``digits`` decimals at most, None for NaN."""
    if not math.isfinite(value):
        return None
    rounded = round(value, digits)
    return int(rounded) if rounded.is_integer() else rounded


def _strings(column: pd.Series, keep: np.ndarray) -> list[str]:
    """A column as plain text for the page's data ('' where missing); the page escapes it where it shows it."""
    return column[keep].astype("string").fillna("").tolist()


def _baseline_notes(current: pd.Series, moved: np.ndarray) -> list[str]:
    """Per account: ``moved from <rep>``, ``kept`` or ``no current rep``."""
    out = []
    for rep, was_moved in zip(current.to_numpy(object, na_value=None), moved, strict=True):
        if was_moved:
            out.append(f"moved from {rep}")
        else:
            out.append("kept" if _present(rep) else "no current rep")
    return out


def _positron_tiles(api_key: str | None) -> folium.TileLayer:
    """CartoDB positron tiles, with the CARTO API key when one is given."""
    provider = xyzservices.providers.CartoDB.Positron
    with warnings.catch_warnings():
        # recent xyzservices warns that CARTO needs a key and drops the placeholder; we log our own message
        warnings.simplefilter("ignore", UserWarning)
        url = provider.build_url(fill_subdomain=False, scale_factor="{r}", **({"apikey": api_key} if api_key else {}))
    if api_key and "key=" not in url:  # xyzservices releases from before the key requirement
        url += ("&" if "?" in url else "?") + "key=" + quote(api_key, safe="")
    return folium.TileLayer(
        tiles=url,
        attr=provider.html_attribution,
        name=BASE_TILES,
        max_zoom=provider.get("max_zoom", 20),
        subdomains=provider.get("subdomains", "abcd"),
    )


# --------------------------------------------------------------------- geometry
def territory_area(lon: np.ndarray, lat: np.ndarray, *, pad: float, lon_scale: float = 1.0) -> BaseGeometry | None:
    """Polygon around a territory's accounts, in lon/lat.

    The hull is computed in an equirectangular plane (longitude scaled by
    ``lon_scale``, the cosine of the map's central latitude) so the padding
    is round rather than stretched east-west.

    Parameters
    ----------
    lon, lat
        The territory's account coordinates, degrees.
    pad
        Buffer around the hull, in degrees of latitude. One account becomes a
        disc of this radius, two (or a line of) accounts a capsule.
    lon_scale
        Factor applied to longitudes before the hull and undone after.

    Returns
    -------
    shapely geometry or None
        A polygon (a multipolygon only in degenerate cases), or ``None`` when
        no account has finite coordinates.
    """
    keep = np.isfinite(lon) & np.isfinite(lat)
    if not keep.any():
        return None
    points = MultiPoint(np.column_stack([np.asarray(lon, float)[keep] * lon_scale, np.asarray(lat, float)[keep]]))
    hull = shapely.concave_hull(points, ratio=CONCAVE_RATIO)
    if hull.is_empty or hull.geom_type != "Polygon" or not hull.is_valid:
        hull = points.convex_hull  # a point or a line for 1-2 accounts; the buffer makes it an area
    area = hull.buffer(pad, quad_segs=8)
    area = shapely.transform(area, lambda xy: xy / np.array([lon_scale, 1.0]))
    return shapely.set_precision(area, 1e-6)  # ~0.1 m: keeps the page small


def _area_padding(x: np.ndarray, y: np.ndarray) -> float:
    """Buffer distance: a small share of the map's extent, within sane bounds."""
    if len(x) == 0:
        return _PAD_MIN_DEG
    diagonal = math.hypot(float(x.max() - x.min()), float(y.max() - y.min()))
    return min(max(_PAD_SHARE * diagonal, _PAD_MIN_DEG), _PAD_MAX_DEG)


def _by_layer(members: np.ndarray, layer_of_account: np.ndarray | None, count: int) -> list[np.ndarray]:
    """A territory's accounts on each team layer (key accounts, on no layer, with the territory's first layer)."""
    if layer_of_account is None:
        return [members]
    layer = layer_of_account[members]
    first = int(layer[layer >= 0].min()) if (layer >= 0).any() else 0
    layer = np.where(layer >= 0, layer, first)
    return [members[layer == number] for number in range(count)]


def _members_by_rep(rep_index: np.ndarray, n_reps: int) -> list[np.ndarray]:
    """Account rows of every rep, in account order, in one sort."""
    order = np.argsort(rep_index, kind="stable")
    cuts = np.searchsorted(rep_index[order], np.arange(1, n_reps))
    return np.split(order, cuts)


def _marker_radii(potential: np.ndarray) -> np.ndarray:
    """Marker radius in px: sqrt-scaled by potential between the min and max radius."""
    values = np.nan_to_num(np.clip(potential, 0.0, None), nan=0.0)
    top = float(values.max()) if len(values) else 0.0
    if top <= 0:
        return np.full(len(values), (MIN_RADIUS_PX + MAX_RADIUS_PX) / 2)
    return np.round(MIN_RADIUS_PX + (MAX_RADIUS_PX - MIN_RADIUS_PX) * np.sqrt(values / top), 2)


def _tooltip_values(plan: Plan, accounts: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per account, the value of every metric the plan reports (except the account count)."""
    out = {}
    for metric in plan.metrics:
        if metric != "accounts" and metric in accounts:
            out[metric] = pd.to_numeric(accounts[metric], errors="coerce").to_numpy(float)
    return out


# ----------------------------------------------------------------------- layers
def _area_layer(area: BaseGeometry, rep_id: str, color: str, card: str) -> folium.GeoJson:
    feature = {
        "type": "Feature",
        "geometry": mapping(area),
        "properties": {
            "kind": "territory",
            "rep_id": rep_id,
            "style": {
                "color": color,
                "weight": 2,
                "opacity": 0.9,
                "fillColor": color,
                "fillOpacity": AREA_FILL_OPACITY,
            },
        },
    }
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": [feature]}, control=False, on_each_feature=_AREA_TO_BACK
    )
    folium.Tooltip(card, sticky=True, className="territory-tip").add_to(layer)  # the home base's popup pins it
    return layer


#: ``L.AccountDots``: a territory's accounts, kept as columns (no object per account) and drawn with every other
#: territory's on one canvas per map after each pan and zoom; the account under the pointer gets a tooltip.
_ACCOUNT_DOTS_JS = """
if (!L.AccountDots) {
    L.AccountDots = L.Layer.extend({
        initialize: function (data, style, outline) {
            this._d = data; this._t = L.AccountDots.tables[data.table]; this._style = style; this._outline = outline;
        },
        onAdd: function (map) { L.AccountDots.renderer(map).add(this); },
        onRemove: function (map) { L.AccountDots.renderer(map).remove(this); },
        count: function () { return this._d.rows.length; },
        highlighted: function () { return this._d.highlight.length; },
        // Screen positions of the territory's accounts (x, y: one entry per position in rows).
        _project: function (map) {
            var rows = this._d.rows, t = this._t, n = rows.length, crs = map.options.crs, i;
            if (!this._u) {  // the map's projection at scale 1, once: a zoom only scales it
                var unit = crs.scale(0);
                this._u = new Float64Array(n); this._v = new Float64Array(n);
                for (i = 0; i < n; i++) {
                    var p0 = crs.latLngToPoint(L.latLng(t.lat[rows[i]], t.lon[rows[i]]), 0);
                    this._u[i] = p0.x / unit; this._v[i] = p0.y / unit;
                }
            }
            var scale = crs.scale(map.getZoom()), origin = map.getPixelOrigin(), pane = map._getMapPanePos();
            var dx = pane.x - origin.x, dy = pane.y - origin.y;
            var x = this._x = new Float32Array(n), y = this._y = new Float32Array(n);
            for (i = 0; i < n; i++) { x[i] = this._u[i] * scale + dx; y[i] = this._v[i] * scale + dy; }
        },
        // The circles of the given positions (all when null) as one path.
        _path: function (ctx, positions, width, height) {
            var rows = this._d.rows, radius = this._t.radius, x = this._x, y = this._y;
            var n = positions ? positions.length : rows.length;
            ctx.beginPath();
            for (var j = 0; j < n; j++) {
                var k = positions ? positions[j] : j, r = radius[rows[k]];
                if (x[k] > -r && y[k] > -r && x[k] < width + r && y[k] < height + r) {
                    ctx.moveTo(x[k] + r, y[k]); ctx.arc(x[k], y[k], r, 0, 2 * Math.PI);
                }
            }
        },
        // The account under the pointer: [position, squared distance in px], or null.
        _nearest: function (px, py) {
            var rows = this._d.rows, radius = this._t.radius, best = null;
            for (var i = 0; i < rows.length; i++) {
                var dx = this._x[i] - px, dy = this._y[i] - py, dd = dx * dx + dy * dy, r = radius[rows[i]] + 1;
                if (dd <= r * r && (best === null || dd < best[1])) { best = [i, dd]; }
            }
            return best;
        },
        _latLng: function (i) { var row = this._d.rows[i]; return [this._t.lat[row], this._t.lon[row]]; },
        _card: function (i) {
            var d = this._d, t = this._t, row = d.rows[i];
            function esc(s) {
                return String(s).replace(/[&<>"']/g, function (c) {
                    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; });
            }
            function fmt(v, digits) {
                return (v === null) ? "\\u2013" : v.toLocaleString("en-US",
                    {minimumFractionDigits: digits, maximumFractionDigits: digits});
            }
            var head = t.labels || ["Account", "Id", "Segment"];
            var lines = [[head[0], t.name[row]], [head[1], t.id[row]], [head[2], t.segments[t.segment[row]]]];
            t.values.forEach(function (v) { lines.push([v.label, fmt(v.data[row], v.digits)]); });
            lines.push(["Rep", d.rep], ["Baseline", d.notes[d.note[i]]]);
            return "<table class='account-card'>" + lines.map(function (r) {
                return "<tr><th>" + esc(r[0]) + "</th><td>" + esc(r[1]) + "</td></tr>"; }).join("") + "</table>";
        }
    });
    L.AccountDots.tables = {};
    // One canvas per map for the accounts of every territory shown, drawn in one pass once per frame at most,
    // and one tooltip for the account under the pointer (territory tooltips hide meanwhile).
    L.AccountDots.renderer = function (map) {
        if (map._accountDots) { return map._accountDots; }
        var canvas = L.DomUtil.create("canvas", "account-dots leaflet-layer", map.getPane("overlayPane"));
        var tip = L.tooltip({direction: "top", offset: [0, -6], className: "account-tip"});
        var r = {layers: [], pending: null, shown: null};
        canvas.style.pointerEvents = "none";
        r.schedule = function () { if (!r.pending) { r.pending = L.Util.requestAnimFrame(r.draw); } };
        r.add = function (layer) { r.layers.push(layer); r.schedule(); };
        r.remove = function (layer) { r.layers.splice(r.layers.indexOf(layer), 1); r.unhover(); r.schedule(); };
        r.draw = function () {
            r.pending = null;
            var size = map.getSize(), ratio = window.devicePixelRatio || 1;
            L.DomUtil.setPosition(canvas, map.containerPointToLayerPoint([0, 0]));
            canvas.width = size.x * ratio; canvas.height = size.y * ratio;
            canvas.style.width = size.x + "px"; canvas.style.height = size.y + "px"; canvas.style.display = "";
            var ctx = canvas.getContext("2d");
            ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
            r.layers.forEach(function (layer) {
                var s = layer._style;
                layer._project(map);
                layer._path(ctx, null, size.x, size.y);
                ctx.globalAlpha = s.fillOpacity; ctx.fillStyle = s.fillColor; ctx.fill();
                ctx.globalAlpha = s.opacity; ctx.lineWidth = s.weight; ctx.strokeStyle = s.color; ctx.stroke();
            });
            r.layers.forEach(function (layer) {  // outlines last, above every territory's accounts
                var o = layer._outline;
                if (!layer._d.highlight.length) { return; }
                layer._path(ctx, layer._d.highlight, size.x, size.y);
                ctx.globalAlpha = o.opacity; ctx.lineWidth = o.weight; ctx.strokeStyle = o.color; ctx.stroke();
            });
            r.drawn = true;
        };
        r.unhover = function () {
            if (r.shown) { tip.close(); r.shown = null; }
            L.DomUtil.removeClass(map.getContainer(), "account-hover");
        };
        map.on("moveend zoomend resize viewreset", r.schedule);
        map.on("zoomstart", function () { canvas.style.display = "none"; r.drawn = false; r.unhover(); });
        map.on("mouseout", r.unhover);
        map.on("mousemove", function (e) {
            if (r.pending) { L.Util.cancelAnimFrame(r.pending); r.draw(); }  // positions of the current view
            if (!r.drawn) { return; }
            // the pointer itself: over a marker, Leaflet reports the marker's position instead
            var at = map.mouseEventToContainerPoint(e.originalEvent), best = null, owner = null;
            r.layers.forEach(function (layer) {
                var hit = layer._nearest(at.x, at.y);
                if (hit && (best === null || hit[1] <= best[1])) { best = hit; owner = layer; }
            });
            if (!best) { r.unhover(); return; }
            if (r.shown && r.shown[0] === owner && r.shown[1] === best[0]) { return; }
            r.shown = [owner, best[0]];
            L.DomUtil.addClass(map.getContainer(), "account-hover");
            tip.setLatLng(owner._latLng(best[0])).setContent(owner._card(best[0])).openOn(map);
        });
        map._accountDots = r;
        return r;
    };
}
"""


class AccountDots(MacroElement):
    """Defines ``L.AccountDots`` in the page (once, before the territories' :class:`AccountLayer` elements)."""

    _template = Template("{% macro script(this, kwargs) %}" + _ACCOUNT_DOTS_JS + "{% endmacro %}")

    def __init__(self) -> None:
        super().__init__()
        self._name = "AccountDots"


class AccountTable(MacroElement):
    """Every account's columns, sent once per page and shared by the territories' :class:`AccountLayer` elements.

    The side-by-side comparison shares one table between its panes when the
    plans hold the same accounts, so a page carries each account once.
    ``data`` holds ``lat``, ``lon``, ``radius``, ``id``, ``name``,
    ``segment`` (an index into ``segments``) and one list per metric under
    ``values``, as plain text that the page escapes where it shows it; tests
    and benchmarks read it back.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        L.AccountDots.tables[{{ this.key|tojson }}] = {{ this.data|tojson }};
        {% endmacro %}
        """
    )

    def __init__(self, plan: Plan) -> None:
        super().__init__()
        self._name = "AccountTable"
        self.key = self.get_name()
        accounts = plan.dataset.accounts
        everything = np.ones(len(accounts), dtype=bool)
        self.data: dict[str, Any] = {
            "lat": [_compact(x, COORD_DECIMALS) for x in accounts["latitude"].to_numpy(float).tolist()],
            "lon": [_compact(x, COORD_DECIMALS) for x in accounts["longitude"].to_numpy(float).tolist()],
            "radius": _marker_radii(accounts["potential"].to_numpy(float)).tolist(),
            "id": _strings(accounts["account_id"], everything),
            "name": _strings(accounts["name"], everything),
            **_coded("segment", _strings(accounts["segment"], everything)),
            "values": [
                {
                    "label": metric.replace("_", " ").capitalize(),
                    "digits": 0 if metric in ("accounts", "potential") else 1,
                    "data": [_compact(x) for x in column.tolist()],
                }
                for metric, column in _tooltip_values(plan, accounts).items()
            ],
        }
        self.account_ids = accounts["account_id"].to_numpy(object)

    def serves(self, plan: Plan) -> bool:
        """Whether this table holds exactly the plan's accounts, in the plan's order."""
        ids = plan.dataset.accounts["account_id"].to_numpy(object)
        return len(ids) == len(self.account_ids) and bool((ids == self.account_ids).all())


class AggregateTable(AccountTable):
    """Hexagons of accounts by territory, in the columns of :class:`AccountTable`: the dots of a large plan.

    Each row is one H3 cell's accounts held by one rep: its position is their mean, its radius follows their
    summed potential, ``name`` says how many accounts it holds, ``id`` is the H3 cell and ``values`` the summed
    metrics; ``labels`` renames the tooltip's first lines. ``rows_of[r]`` lists rep ``r``'s rows and ``moved``
    how many of each row's accounts moved away from their current rep.
    """

    def __init__(self, plan: Plan) -> None:
        MacroElement.__init__(self)
        self._name = "AccountTable"
        self.key = self.get_name()
        accounts = plan.dataset.accounts
        lat = accounts["latitude"].to_numpy(float)
        lon = accounts["longitude"].to_numpy(float)
        keep = np.isfinite(lat) & np.isfinite(lon)
        self.resolution = FINEST_H3
        cells = np.array([h3.latlng_to_cell(a, b, FINEST_H3) for a, b in zip(lat[keep], lon[keep], strict=True)])
        rep = np.asarray(plan.rep_index, dtype=np.int64)[keep]
        n_reps = len(plan.dataset.reps)
        # (codes by hashing: sorting and joining a million cell ids as strings took 8 s at 1,000,000 accounts)
        inverse, distinct = pd.factorize(cells)
        while self.resolution > 0 and len(np.unique(inverse * n_reps + rep)) > MAX_AGGREGATES:
            self.resolution -= 1
            parents = np.array([h3.cell_to_parent(c, self.resolution) for c in distinct])
            inverse, distinct = pd.factorize(parents[inverse])
        cells = np.asarray(distinct)[inverse]
        frame = pd.DataFrame(
            {
                "cell": cells,
                "rep": rep,
                "lat": lat[keep],
                "lon": lon[keep],
                "moved": np.asarray(plan.moved, dtype=bool)[keep],
                "dot_size": np.nan_to_num(pd.to_numeric(accounts["potential"], errors="coerce").to_numpy(float)[keep]),
                "segment": accounts["segment"].astype("string").fillna("")[keep].to_numpy(),
                **{m: np.nan_to_num(v[keep]) for m, v in _tooltip_values(plan, accounts).items()},
            }
        )
        grouped = frame.groupby(["rep", "cell"], sort=True)
        sums = grouped.sum(numeric_only=True)
        means = grouped[["lat", "lon"]].mean()
        count = grouped.size()
        # each row's segments, named once each in sorted order (one join per row, not a set per row)
        named = frame.loc[frame["segment"] != "", ["rep", "cell", "segment"]].drop_duplicates()
        joined = named.sort_values("segment").groupby(["rep", "cell"], sort=True)["segment"].agg(", ".join)
        segments = joined.reindex(count.index, fill_value="")
        reps = sums.index.get_level_values("rep").to_numpy()
        self.rows_of = _members_by_rep(reps, len(plan.dataset.reps))
        self.moved = sums["moved"].to_numpy(np.int64)
        self.count = len(count)
        self.accounts = int(keep.sum())
        self.data = {
            "labels": ["Accounts", "Hexagon (H3)", "Segments"],
            "lat": [_compact(x, COORD_DECIMALS) for x in means["lat"].tolist()],
            "lon": [_compact(x, COORD_DECIMALS) for x in means["lon"].tolist()],
            "radius": _marker_radii(sums["dot_size"].to_numpy(float)).tolist(),
            "id": sums.index.get_level_values("cell").astype(str).tolist(),
            "name": [f"{n:,} accounts" if n != 1 else "1 account" for n in count.tolist()],
            **_coded("segment", segments.tolist()),
            "values": [
                {
                    "label": f"{metric.replace('_', ' ').capitalize()} (sum)",
                    "digits": 0 if metric in ("accounts", "potential") else 1,
                    "data": [_compact(x) for x in sums[metric].tolist()],
                }
                for metric in _tooltip_values(plan, accounts)
            ],
        }
        self.account_ids = accounts["account_id"].to_numpy(object)

    def notes(self, rows: np.ndarray) -> list[str]:
        """The tooltip's "Baseline" line of each row: how many of its accounts moved."""
        return [f"{n:,} moved" if n else "none moved" for n in self.moved[rows].tolist()]

    def legend_note(self) -> str:
        """What the dots are, for the legend."""
        return (
            f"{self.accounts:,} accounts (over {ACCOUNT_DOTS_UP_TO:,}): each dot is one rep's accounts in one "
            f"hexagon (H3 resolution {self.resolution}, {self.count:,} dots), sized by their potential; "
            "outlined where some moved."
        )


class AccountLayer(MacroElement):
    """A territory's accounts, drawn with every other territory's on one canvas per map (``L.AccountDots``).

    Added to a territory's :class:`folium.FeatureGroup`, so the layer control
    toggles the accounts with their territory. ``data`` holds ``table`` (the
    key of the page's :class:`AccountTable`), ``rows`` (the territory's
    accounts with coordinates, as rows of that table), ``highlight`` (positions
    in ``rows`` to outline), ``note`` (an index into ``notes`` per position,
    the tooltip's "Baseline" line) and ``rep``; tests read it back.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        new L.AccountDots({{ this.data|tojson }}, {{ this.style|tojson }}, {{ this.outline|tojson }})
            .addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        table: AccountTable,
        rows: np.ndarray,
        highlight: np.ndarray,
        notes: Sequence[str],
        *,
        color: str,
        rep_label: str,
    ) -> None:
        super().__init__()
        self._name = "AccountLayer"
        self.table = table
        lat = np.array([table.data["lat"][r] is not None for r in rows], dtype=bool)
        lon = np.array([table.data["lon"][r] is not None for r in rows], dtype=bool)
        keep = lat & lon
        self.data: dict[str, Any] = {
            "table": table.key,
            "rep": rep_label,
            "rows": np.asarray(rows)[keep].tolist(),
            **_coded("note", [t for t, k in zip(notes, keep, strict=True) if k]),
            "highlight": np.flatnonzero(np.asarray(highlight, dtype=bool)[keep]).tolist(),
        }
        self.style = {"color": color, "weight": 1, "opacity": 0.9, "fillColor": color, "fillOpacity": 0.75}
        self.outline = MOVED_OUTLINE


class HeadStyle(MacroElement):
    """CSS for the head of whichever page the map ends up in (a map moved into a larger figure keeps it)."""

    _template = Template("{% macro header(this, kwargs) %}<style>{{ this.css }}</style>{% endmacro %}")

    def __init__(self, css: str) -> None:
        super().__init__()
        self._name = "HeadStyle"
        self.css = css


class MapControl(MacroElement):
    """Fixed HTML (legend, title) as a Leaflet control, so it stays inside its map (also side by side).

    A click on an element with a ``data-bounds`` attribute (``[[south, west],
    [north, east]]``) zooms the map there: the legend's fit-to-territory view.
    """

    _template = Template(
        """
        {% macro header(this, kwargs) %}{{ this.css }}{% endmacro %}
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var control = L.control({position: {{ this.position|tojson }}});
            control.onAdd = function () {
                var div = L.DomUtil.create("div", "plan-control");
                div.innerHTML = {{ this.html|tojson }};
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                L.DomEvent.on(div, "click", function (e) {
                    var target = e.target.closest("[data-bounds]");
                    if (target) { map.fitBounds(JSON.parse(target.getAttribute("data-bounds")), {padding: [20, 20]}); }
                });
                return div;
            };
            control.addTo(map);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, html_text: str, *, position: str, css: str = "") -> None:
        super().__init__()
        self._name = "MapControl"
        self.html = html_text
        self.position = position
        self.css = css


class LayerSwitch(MacroElement):
    """A box of check boxes that shows or hides a whole team layer: every territory's part on it at once.

    Each territory's part on each layer is its own entry of the layer control too (``"<rep> · <layer> layer"``);
    this switch adds and removes all the parts of one layer together, and the layer control follows.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }};
            var layers = {
            {%- for name, groups in this.layers.items() %}
                {{ name|tojson }}: [{% for g in groups %}{{ g }}{% if not loop.last %}, {% endif %}{% endfor %}],
            {%- endfor %}
            };
            var control = L.control({position: "topright"});
            control.onAdd = function () {
                var div = L.DomUtil.create("div", "plan-control team-layers");
                var title = L.DomUtil.create("div", "team-layers-title", div);
                title.textContent = "Team layers";
                Object.keys(layers).forEach(function (name) {
                    var row = L.DomUtil.create("label", "team-layer", div);
                    var box = L.DomUtil.create("input", "", row);
                    box.type = "checkbox";
                    box.checked = true;
                    box.setAttribute("data-layer", name);
                    row.appendChild(document.createTextNode(" " + name + " layer"));
                    L.DomEvent.on(box, "change", function () {
                        layers[name].forEach(function (group) {
                            if (box.checked) { map.addLayer(group); } else { map.removeLayer(group); }
                        });
                    });
                });
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            control.addTo(map);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, layers: dict[str, list[str]]) -> None:
        super().__init__()
        self._name = "LayerSwitch"
        self.layers = layers


def _home_marker(lat: float, lon: float, color: str, label: str, card: str) -> folium.Marker:
    icon = folium.DivIcon(
        html=(
            '<svg width="26" height="26" viewBox="0 0 24 24" aria-label="home base">'
            f'<path d="{_STAR_PATH}" fill="{color}" stroke="#222" stroke-width="1.4" stroke-linejoin="round"/>'
            "</svg>"
        ),
        icon_size=(26, 26),
        icon_anchor=(13, 13),
        class_name="territory-home",
    )
    return folium.Marker(
        location=[lat, lon],
        icon=icon,
        tooltip=folium.Tooltip(f"Home base of {_text(label)}"),
        popup=folium.Popup(card, max_width=380),
        z_index_offset=1000,
    )


# ---------------------------------------------------------------------- content
def _territory_card(plan: Plan, row: dict[str, Any], color: str, label: str) -> str:
    """KPI table of one territory (HTML), for tooltips and popups."""
    balance = plan.dataset.scenario.balance
    lines = [
        f'<div class="territory-card" style="font:12px/1.35 sans-serif;min-width:230px">'
        f'<div style="font-weight:600;margin-bottom:4px">{_swatch(color)} {_text(label)}</div>'
        f"<div>Segment: {_text(row['segment']) or '&ndash;'} &middot; FTE {_number(row['fte'], 2)}</div>"
        '<table style="border-collapse:collapse;margin-top:4px">'
        '<tr><th style="text-align:left;padding-right:8px">metric</th><th style="text-align:right">total</th>'
        '<th style="text-align:right;padding-left:8px">target</th>'
        '<th style="text-align:right;padding-left:8px">deviation</th></tr>'
    ]
    for metric in plan.metrics:
        rule = balance.get(metric)
        deviation = row[f"{metric}_deviation_pct"]
        tolerance = f" (&plusmn;{rule.tolerance_pct:g}%)" if rule is not None else ""
        places = digits(metric, row[metric])
        lines.append(
            f'<tr><td style="padding-right:8px">{_text(metric)}</td>'
            f'<td style="text-align:right">{_number(row[metric], places)}</td>'
            f'<td style="text-align:right;padding-left:8px">{_number(row[f"{metric}_target"], places)}</td>'
            f'<td style="text-align:right;padding-left:8px">{_deviation(deviation, rule)}{tolerance}</td></tr>'
        )
    lines.append(
        "</table>"
        f'<div style="margin-top:4px">Mean distance {_number(row["mean_distance_km"], 1)} km'
        f" &middot; max {_number(row['max_distance_km'], 1)} km</div>"
        "</div>"
    )
    return "".join(lines)


def _largest_deviation(plan: Plan, row: dict[str, Any]) -> tuple[str, float]:
    """The balanced metric furthest from its target for one territory, and by how much (%)."""
    best = ("", 0.0)
    for metric in plan.dataset.scenario.balance:
        deviation = float(row[f"{metric}_deviation_pct"])
        if math.isfinite(deviation) and (not best[0] or abs(deviation) > abs(best[1])):
            best = (metric, deviation)
    return best


def _legend_html(
    plan: Plan,
    territories: pd.DataFrame,
    colors: Sequence[str],
    labels: Sequence[str],
    bounds: Sequence[list[list[float]] | None],
    all_bounds: list[list[float]] | None,
    note: str = "",
) -> str:
    """Legend: one row per rep with its loads and largest deviation; a click on a row zooms to the territory.

    ``note``: a line under the heading (how accounts are drawn, when not one dot each).
    """
    balance = plan.dataset.scenario.balance
    metrics = plan.metrics
    rows = []
    for row, color, label_text, box in zip(territories.to_dict("records"), colors, labels, bounds, strict=True):
        metric, deviation = _largest_deviation(plan, row)
        rule = balance.get(metric)
        zoom = f' data-bounds="{json.dumps(box)}" title="zoom to this territory"' if box else ""
        named = f' <span class="dev-metric">{_text(metric)}</span>' if metric else ""
        cells = "".join(f'<td class="num load">{_figure(row[m], m)}</td>' for m in metrics)
        rows.append(
            f"<tr{zoom}>"
            f"<td>{_swatch(color)}</td>"
            f'<td class="rep">{_text(label_text)}</td>'
            f'<td class="wide">{_text(row["segment"])}</td>'
            f'<td class="num wide">{_number(row["fte"], 2)}</td>'
            f"{cells}"
            f'<td class="num" title="{_text(metric)}">{_deviation(deviation, rule)}{named}</td>'
            "</tr>"
        )
    headers = "".join(f'<th class="num load" title="{_text(m)}">{_text(planner_label(m).title)}</th>' for m in metrics)
    everything = (
        f' <button type="button" class="plan-zoom-all" data-bounds="{json.dumps(all_bounds)}">All</button>'
        if all_bounds
        else ""
    )
    return (
        '<div class="plan-legend"><details open><summary>Territories'
        f'<span class="plan-legend-hint"> (click a rep to zoom)</span>{everything}</summary>'
        + (f'<div class="plan-legend-note">{_text(note)}</div>' if note else "")
        + '<div class="plan-legend-body"><table>'
        f'<thead><tr><th></th><th>Rep</th><th class="wide">Segment</th><th class="num wide">FTE</th>{headers}'
        '<th class="num" title="largest deviation from target among balanced metrics">Max dev.</th></tr>'
        "</thead><tbody>" + "".join(rows) + "</tbody></table></div></details></div>"
    )


def _figure(value: Any, metric: str) -> str:
    """A legend figure in full (``58,250,831``) and, when shorter, compact (``58.3 M``) for narrow maps."""
    full = _number(value, digits(metric, value))
    short = compact(value) if full != "&ndash;" else full
    if len(short) >= len(full):
        return full
    return f'<span class="full">{full}</span><span class="short" title="{full}">{short}</span>'


def _title_html(heading: str, plan: Plan, status_note: str | None = None) -> str:
    """Heading and one status line: how the solve ended, size, moves, whether every balance rule holds."""
    gap = plan.report.gap
    parts = [
        f"status {_text(plan.report.status)}",
        f"gap {gap * 100:.2f}%" if gap is not None and math.isfinite(gap) else "gap n/a",
        f"{len(plan.dataset.accounts):,} accounts",
        f"{len(plan.dataset.reps):,} reps",
    ]
    if status_note is not None:
        parts.append(_text(status_note))
    elif plan.dataset.accounts["current_rep"].notna().any():
        parts.append(f"{int(plan.moved.sum()):,} moved (outlined)")
    balanced = [m for m in plan.metric_summary().values() if m["balanced"]]
    met = all(m["within_tolerance"] for m in balanced)
    parts.append("all balance rules met" if met else "some balance rules missed")
    return (
        '<div class="plan-title">'
        f'<div class="plan-title-heading">{_text(heading)}</div>'
        f'<div class="plan-title-status">{" &middot; ".join(parts)}</div></div>'
    )


_LEGEND_CSS = """
<style>
.plan-control {font: 12px/1.3 sans-serif;}
.folium-map.leaflet-container {container-type: inline-size;}
.plan-title {background: rgba(255,255,255,0.92); padding: 6px 12px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.35); font: 13px/1.35 sans-serif; max-width: min(46vw, calc(100cqw - 20px));
  box-sizing: border-box;}
.plan-title-heading {font-size: 16px; font-weight: 600;}
.team-layers {background: rgba(255,255,255,0.94); padding: 6px 10px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.35);}
.team-layers-title {font-weight: 600; margin-bottom: 2px;}
.team-layer {display: block; white-space: nowrap; cursor: pointer;}
.plan-title-status {color: #444;}
.plan-legend {background: rgba(255,255,255,0.94); padding: 6px 8px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.35); max-width: calc(100cqw - 20px); box-sizing: border-box;}
.plan-legend summary {font-weight: 600; cursor: pointer;}
.plan-legend-hint {font-weight: normal; color: #666;}
.plan-legend-note {color: #444; max-width: 42em; white-space: normal; margin-top: 2px;}
.plan-legend-body {max-height: 40vh; overflow-y: auto; margin-top: 4px;}
.plan-legend table {border-collapse: collapse;}
.plan-legend th {position: sticky; top: 0; background: #fff; text-align: left; padding: 1px 5px;}
.plan-legend td {padding: 1px 5px; white-space: nowrap;}
.plan-legend tr[data-bounds] {cursor: zoom-in;}
.plan-legend tr[data-bounds]:hover {background: #eef;}
.plan-legend td.num {text-align: right;}
.plan-legend th.num {text-align: right;}
.plan-legend .over {color: #c00; font-weight: 600;}
.plan-legend .short {display: none;}
/* a narrow map (a pane of a comparison): figures in compact form, segment and FTE left to the tooltips */
@container (max-width: 680px) {
  .plan-legend .wide, .plan-legend .full, .plan-legend-hint, .plan-legend .dev-metric {display: none;}
  .plan-legend .short {display: inline;}
  .plan-legend th, .plan-legend td {padding: 1px 3px;}
  .plan-legend td.rep {white-space: normal; min-width: 8em;}
}
/* narrower still: each rep with its largest deviation */
@container (max-width: 440px) {
  .plan-legend .load {display: none;}
}
.plan-zoom-all {font: 11px sans-serif; margin-left: 6px; cursor: zoom-out;}
.account-card th {text-align: left; padding-right: 8px; font-weight: 600;}
.account-hover .territory-tip {display: none;}
.territory-home {background: none; border: none;}
</style>
"""


# ------------------------------------------------------------------- formatting
def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def _text(value: Any) -> str:
    """Escape user text for HTML placed inside JavaScript template literals."""
    if not _present(value):
        return ""
    return html.escape(str(value)).replace("`", "&#96;").replace("$", "&#36;")


def _number(value: Any, places: int = 0) -> str:
    text = number(value, places)
    return "&ndash;" if text == MISSING else text


def _deviation(value: Any, rule: Any) -> str:
    """Signed deviation in %, flagged when it breaks the metric's tolerance."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "&ndash;"
    if not math.isfinite(number):
        return "&ndash;"
    text = f"{number:+.1f}%"
    if rule is not None and abs(number) > rule.tolerance_pct + 1e-9:
        return f'<span class="over" style="color:#c00;font-weight:600">{text}</span>'
    return text


def _swatch(color: str) -> str:
    return (
        f'<span style="display:inline-block;width:12px;height:12px;background:{color};'
        'border:1px solid #333;border-radius:2px;vertical-align:middle"></span>'
    )


def _rep_label(name: Any, rep_id: Any) -> str:
    """``"<rep name> (<rep_id>)"``, or the bare id when the rep has no name of its own."""
    name_text = str(name).strip() if _present(name) else ""
    rep_text = str(rep_id)
    return rep_text if not name_text or name_text == rep_text else f"{name_text} ({rep_text})"
