"""A plan on a Folium map: territory areas, accounts, home bases, legend.

The map is built from a :class:`~models.plan.Plan` alone: it never re-solves
and never reads scenario files. Every territory is one layer (named
``"<rep name> (<rep_id>)"``) that the layer control toggles; it holds

- the territory's area: a concave hull around its accounts, lightly filled in
  the territory colour, with the territory KPIs on hover and click;
- its accounts: circle markers in the territory colour, sized by potential,
  outlined in black when the account moved away from its current rep;
- the rep's home base: a star in the territory colour.

A legend (bottom right) lists every rep with its loads and its largest
deviation from target; a title (top) names the scenario and how the solve
ended.

Accounts are drawn through one GeoJSON layer per territory whose point
features become ``L.CircleMarker`` objects on a canvas renderer, so maps of
thousands of accounts stay small and fast; per-account style (radius, move
outline) rides in each feature's ``style`` property.
"""

from __future__ import annotations

import html
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import folium
import numpy as np
import pandas as pd
import shapely
import xyzservices
from branca.element import MacroElement, Template
from folium.utilities import JsCode
from shapely.geometry import MultiPoint, mapping
from shapely.geometry.base import BaseGeometry

from maps.palette import territory_colors
from models.plan import Plan

logger = logging.getLogger(__name__)

#: Base tiles: a quiet, light web map that lets territory colours stand out (shown first) ...
BASE_TILES = "CartoDB positron"
#: ... and a keyless alternative in the layer control.
ALTERNATIVE_TILES = "OpenStreetMap"
#: Concave-hull ratio (0: tightest, 1: convex hull).
CONCAVE_RATIO = 0.4
#: Fill opacity of territory areas.
AREA_FILL_OPACITY = 0.12
#: Account marker radius range in pixels (sqrt-scaled by potential).
MIN_RADIUS_PX = 3.0
MAX_RADIUS_PX = 9.0
#: Outline of accounts that moved away from their current rep.
MOVED_OUTLINE = {"color": "#000000", "weight": 2, "opacity": 1.0}
#: Area padding as a share of the map's diagonal, and its bounds in degrees of latitude.
_PAD_SHARE = 0.015
_PAD_MIN_DEG = 0.003
_PAD_MAX_DEG = 0.25
#: Keep every area beneath every account: on the shared canvas the last layer drawn takes the
#: mouse, so an area added later (another territory, or one toggled back on) would hide the
#: tooltips of the accounts under it.
_AREA_TO_BACK = JsCode("function (feature, layer) { layer.on('add', function () { layer.bringToBack(); }); }")
#: Five-pointed star (24 x 24 view box) for home bases.
_STAR_PATH = "M12 1.8l3.1 6.5 7.1.9-5.2 4.9 1.3 7-6.3-3.4-6.3 3.4 1.3-7-5.2-4.9 7.1-.9z"


def build_plan_map(plan: Plan, *, title: str | None = None, carto_api_key: str | None = None) -> folium.Map:
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

    Returns
    -------
    folium.Map
        Ready to display in a notebook or to save with ``Map.save``.

    Examples
    --------
    >>> m = build_plan_map(plan)  # doctest: +SKIP
    >>> m.save("map.html")  # doctest: +SKIP
    """
    accounts = plan.assignments()
    territories = plan.territories()
    reps = plan.dataset.reps
    scenario = plan.dataset.scenario
    colors = territory_colors(len(reps))
    labels = [_rep_label(name, rep_id) for name, rep_id in zip(reps["name"], reps["rep_id"], strict=True)]

    acc_lat = accounts["latitude"].to_numpy(float)
    acc_lon = accounts["longitude"].to_numpy(float)
    rep_lat = reps["latitude"].to_numpy(float)
    rep_lon = reps["longitude"].to_numpy(float)
    all_lat = np.concatenate([acc_lat, rep_lat])
    all_lon = np.concatenate([acc_lon, rep_lon])
    finite = np.isfinite(all_lat) & np.isfinite(all_lon)
    all_lat, all_lon = all_lat[finite], all_lon[finite]

    if len(all_lat):
        center = [float((all_lat.min() + all_lat.max()) / 2), float((all_lon.min() + all_lon.max()) / 2)]
    else:
        center = [0.0, 0.0]
    fmap = folium.Map(location=center, zoom_start=6, tiles=None, control_scale=True, prefer_canvas=True)
    if carto_api_key:
        _positron_tiles(carto_api_key).add_to(fmap)
    # without a CARTO key, positron tiles carry a watermark: OpenStreetMap is the base map then
    folium.TileLayer(ALTERNATIVE_TILES, name=ALTERNATIVE_TILES).add_to(fmap)

    lon_scale = math.cos(math.radians(center[0])) or 1.0
    pad = _area_padding(all_lon * lon_scale, all_lat)
    radii = _marker_radii(accounts["potential"].to_numpy(float))
    cards = [_territory_card(plan, row, colors[i], labels[i]) for i, row in enumerate(territories.to_dict("records"))]
    members_of = _members_by_rep(plan.rep_index, len(reps))

    shapes = plan.territory_shapes  # dissolved unit polygons, where the plan was built on geographic units
    for r, (color, label, members) in enumerate(zip(colors, labels, members_of, strict=True)):
        group = folium.FeatureGroup(name=html.escape(label), show=True).add_to(fmap)
        area = shapes[r]
        if area is None:
            area = territory_area(acc_lon[members], acc_lat[members], pad=pad, lon_scale=lon_scale)
        if area is None:
            logger.debug("territory %s has no accounts with coordinates: no area drawn", label)
        else:
            _area_layer(area, str(reps["rep_id"].iloc[r]), color, cards[r]).add_to(group)
        if len(members):
            _account_layer(accounts.iloc[members], radii[members], color, label).add_to(group)
        if math.isfinite(rep_lat[r]) and math.isfinite(rep_lon[r]):
            _home_marker(float(rep_lat[r]), float(rep_lon[r]), color, label, cards[r]).add_to(group)

    folium.LayerControl(collapsed=False).add_to(fmap)
    summary = plan.summary()
    _Overlay(_LEGEND_CSS, _legend_html(plan, territories, colors, labels)).add_to(fmap)
    _Overlay("", _title_html(title or scenario.name, summary)).add_to(fmap)
    if len(all_lat):
        fmap.fit_bounds(
            [[float(all_lat.min()), float(all_lon.min())], [float(all_lat.max()), float(all_lon.max())]],
            padding=(20, 20),
        )
    logger.info("map of plan %r: %d territories, %d accounts", scenario.name, len(reps), len(accounts))
    return fmap


def write_plan_map(path: Path, plan: Plan, *, carto_api_key: str | None = None) -> None:
    """Save the map of a plan as an HTML page (Leaflet and the tiles load from the web when opened).

    The signature fits :data:`models.plan_io.ExtraWriter`, so
    ``write_plan(plan, out, extra={"map.html": write_plan_map})`` adds the map
    to a plan folder (bind a key with ``functools.partial``).

    Parameters
    ----------
    path
        The HTML file to write.
    plan
        The plan to draw.
    carto_api_key
        See :func:`build_plan_map`.
    """
    path = Path(path)
    build_plan_map(plan, carto_api_key=carto_api_key).save(str(path))
    logger.info("map written to %s", path)


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
    folium.Tooltip(card, sticky=True).add_to(layer)
    folium.Popup(card, max_width=380).add_to(layer)
    return layer


def _account_layer(accounts: pd.DataFrame, radii: np.ndarray, color: str, rep_label: str) -> folium.GeoJson:
    """One GeoJSON layer of circle markers for a territory's accounts."""
    features = []
    rows = zip(
        accounts["account_id"].tolist(),
        accounts["name"].tolist(),
        accounts["segment"].tolist(),
        accounts["potential"].tolist(),
        accounts["workload"].tolist(),
        accounts["current_rep"].tolist(),
        accounts["moved"].tolist(),
        accounts["longitude"].tolist(),
        accounts["latitude"].tolist(),
        radii.tolist(),
        strict=True,
    )
    rep_text = _text(rep_label)
    for account_id, name, segment, potential, workload, current, moved, lon, lat, radius in rows:
        if not (math.isfinite(lon) and math.isfinite(lat)):
            continue
        style: dict[str, Any] = {"radius": radius}
        if moved:
            style.update(MOVED_OUTLINE)
            baseline = f"moved from {_text(current)}"
        else:
            baseline = "kept" if _present(current) else "no current rep"
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                "properties": {
                    "kind": "account",
                    "account_id": _text(account_id),
                    "name": _text(name),
                    "segment": _text(segment),
                    "potential": _number(potential),
                    "workload": _number(workload, 1),
                    "rep": rep_text,
                    "baseline": baseline,
                    "moved": bool(moved),
                    "style": style,
                },
            }
        )
    marker = folium.CircleMarker(
        radius=MIN_RADIUS_PX, color=color, weight=1, opacity=0.9, fill=True, fill_color=color, fill_opacity=0.75
    )
    tooltip = folium.GeoJsonTooltip(
        fields=["name", "account_id", "segment", "potential", "workload", "rep", "baseline"],
        aliases=["Account", "Id", "Segment", "Potential", "Workload", "Rep", "Baseline"],
        sticky=True,
    )
    return folium.GeoJson(
        {"type": "FeatureCollection", "features": features}, marker=marker, tooltip=tooltip, control=False
    )


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
        digits = 0 if metric in ("accounts", "potential") else 1
        lines.append(
            f'<tr><td style="padding-right:8px">{_text(metric)}</td>'
            f'<td style="text-align:right">{_number(row[metric], digits)}</td>'
            f'<td style="text-align:right;padding-left:8px">{_number(row[f"{metric}_target"], digits)}</td>'
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


def _legend_html(plan: Plan, territories: pd.DataFrame, colors: Sequence[str], labels: Sequence[str]) -> str:
    balance = plan.dataset.scenario.balance
    rows = []
    for row, color, label in zip(territories.to_dict("records"), colors, labels, strict=True):
        metric, deviation = _largest_deviation(plan, row)
        rule = balance.get(metric)
        rows.append(
            "<tr>"
            f"<td>{_swatch(color)}</td>"
            f'<td class="rep">{_text(label)}</td>'
            f"<td>{_text(row['segment'])}</td>"
            f'<td class="num">{_number(row["fte"], 2)}</td>'
            f'<td class="num">{_number(row["accounts"])}</td>'
            f'<td class="num">{_number(row["potential"])}</td>'
            f'<td class="num">{_number(row["workload"])}</td>'
            f'<td class="num" title="{_text(metric)}">{_deviation(deviation, rule)}'
            f"{' ' + _text(metric) if metric else ''}</td>"
            "</tr>"
        )
    return (
        '<div id="plan-legend" class="plan-legend"><details open><summary>Territories</summary>'
        '<div class="plan-legend-body"><table>'
        "<thead><tr><th></th><th>Rep</th><th>Segment</th><th>FTE</th><th>Accounts</th><th>Potential</th>"
        '<th>Workload</th><th title="largest deviation from target among balanced metrics">Max dev.</th></tr>'
        "</thead><tbody>" + "".join(rows) + "</tbody></table></div></details></div>"
    )


def _title_html(heading: str, summary: dict[str, Any]) -> str:
    gap = summary.get("gap")
    parts = [
        f"status {_text(summary.get('status'))}",
        f"gap {gap * 100:.2f}%" if gap is not None else "gap n/a",
        f"{summary.get('accounts', 0):,} accounts",
        f"{summary.get('reps', 0):,} reps",
    ]
    moves = summary.get("moves") or {}
    if moves.get("baseline"):
        parts.append(f"{moves.get('accounts_moved', 0):,} moved")
    within = summary.get("all_within_tolerance")
    parts.append("all balance rules met" if within else "some balance rules missed")
    return (
        '<div id="plan-title" class="plan-title">'
        f'<div class="plan-title-heading">{_text(heading)}</div>'
        f'<div class="plan-title-status">{" &middot; ".join(parts)}</div></div>'
    )


_LEGEND_CSS = """
<style>
.plan-title {position: fixed; top: 10px; left: 50%; transform: translateX(-50%); z-index: 1000;
  background: rgba(255,255,255,0.92); padding: 6px 14px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,0.35); font: 13px/1.35 sans-serif; text-align: center; pointer-events: none;}
.plan-title-heading {font-size: 16px; font-weight: 600;}
.plan-title-status {color: #444;}
.plan-legend {position: fixed; bottom: 24px; right: 10px; z-index: 1000; background: rgba(255,255,255,0.94);
  padding: 6px 8px; border-radius: 6px; box-shadow: 0 1px 5px rgba(0,0,0,0.35); font: 12px/1.3 sans-serif;}
.plan-legend summary {font-weight: 600; cursor: pointer;}
.plan-legend-body {max-height: 40vh; overflow-y: auto; margin-top: 4px;}
.plan-legend table {border-collapse: collapse;}
.plan-legend th {position: sticky; top: 0; background: #fff; text-align: left; padding: 1px 5px;}
.plan-legend td {padding: 1px 5px; white-space: nowrap;}
.plan-legend td.num {text-align: right;}
.plan-legend .over {color: #c00; font-weight: 600;}
.territory-home {background: none; border: none;}
</style>
"""


class _Overlay(MacroElement):
    """Fixed HTML (legend, title) laid over the map, with optional CSS in the page head."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}{{ this.css }}{% endmacro %}
        {% macro html(this, kwargs) %}{{ this.body }}{% endmacro %}
        """
    )

    def __init__(self, css: str, body: str) -> None:
        super().__init__()
        self._name = "PlanOverlay"
        self.css = css
        self.body = body


# ------------------------------------------------------------------- formatting
def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value is not pd.NA


def _text(value: Any) -> str:
    """Escape user text for HTML placed inside JavaScript template literals."""
    if not _present(value):
        return ""
    return html.escape(str(value)).replace("`", "&#96;").replace("$", "&#36;")


def _number(value: Any, digits: int = 0) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "&ndash;"
    if not math.isfinite(number):
        return "&ndash;"
    return f"{number:,.{digits}f}"


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
