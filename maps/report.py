"""``report.html``: one self-contained page per solve, for the meeting where a plan is chosen.

The page holds, from top to bottom:

- the headline: scenario, solver status and gap, accounts, reps, whether every
  balance rule holds;
- a KPI table per metric (total, target, min, max, worst deviation, tolerance);
- a chart per metric: every territory's load as a bar in its map colour, the
  target as a tick and the tolerance band shaded (bars outside it in red);
- the map (``map.html`` of the same folder, embedded);
- moves against the baseline: totals, a chart of accounts gained and lost per
  rep, and the largest moved accounts;
- the territory table (every column of ``territories.csv``) and the scenario
  settings as YAML.

The charts are inline SVG drawn here, the styles inline: the page loads
nothing from the network and is the same online and offline (only the
embedded map differs, see :func:`maps.plan_map.write_plan_map`). Metrics and
columns are read from the plan, so metrics a scenario adds (a quota, a
forecast) appear without changes here.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from maps.palette import territory_colors
from maps.tables import TABLE_CSS, html_table
from maps.trade_off import ticks
from models.formatting import MISSING, compact, digits, number
from models.plan import Plan
from models.plan_io import write_atomic

logger = logging.getLogger(__name__)

#: Chart geometry (px).
CHART_WIDTH = 720
LABEL_WIDTH = 190
VALUE_WIDTH = 110
ROW_HEIGHT = 18
AXIS_HEIGHT = 22
#: Moved accounts listed by name (largest potential first).
TOP_MOVES = 25
#: Colours of the charts' marks.
BAND_COLOR = "#b8e0b8"
TARGET_COLOR = "#1a1a1a"
OVER_COLOR = "#c00000"
GAIN_COLOR = "#2e7d32"
LOSS_COLOR = "#c62828"


def write_report(path: Path | str, plan: Plan, *, map_file: str | None = "map.html") -> Path:
    """Write ``report.html`` for a plan, whole or not at all.

    The signature fits :data:`models.plan_io.ExtraWriter`, so
    ``write_plan(plan, out, extra={"report.html": write_report})`` adds the
    report to a plan folder.

    Parameters
    ----------
    path
        The HTML file to write.
    plan
        The plan to report.
    map_file
        The plan's map page, relative to the report (embedded in a frame);
        ``None`` leaves the map out.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    page = build_report(plan, map_file=map_file)
    write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    logger.info("report written to %s", path)
    return path


def build_report(plan: Plan, *, map_file: str | None = "map.html") -> str:
    """The report of a plan as one HTML page (see the module description).

    Parameters
    ----------
    plan
        The plan to report.
    map_file
        See :func:`write_report`.

    Returns
    -------
    str
        The page.
    """
    summary = plan.summary()
    territories = plan.territories()
    reps = plan.dataset.reps
    colors = territory_colors(len(reps))
    labels = [_label(name, rep_id) for name, rep_id in zip(reps["name"], reps["rep_id"], strict=True)]
    sections = [
        _headline(summary),
        _section("Balance", _metric_table(summary["metrics"]) + _charts(plan, labels, colors)),
    ]
    if map_file is not None:
        sections.append(
            _section(
                "Map",
                f'<iframe class="plan-map" src="{_text(map_file)}" title="map of the plan" loading="eager"></iframe>'
                f'<p class="note"><a href="{_text(map_file)}">Open the map on its own page</a>.</p>',
            )
        )
    sections.append(_section("Moves against the baseline", _moves(plan, summary["moves"], labels, colors)))
    sections.append(_section("Territories", _table(territories, plan.metrics)))
    settings = yaml.safe_dump(
        plan.dataset.scenario.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True
    )
    sections.append(_section("Scenario settings", f"<pre class='settings'>{_text(settings)}</pre>"))
    title = _text(summary["scenario"])
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}: plan report</title><style>{TABLE_CSS}{_CSS}</style></head><body>"
        + "".join(sections)
        + "</body></html>\n"
    )


# ------------------------------------------------------------------- sections
def _headline(summary: dict[str, Any]) -> str:
    gap = summary.get("gap")
    within = summary.get("all_within_tolerance")
    facts = [
        ("Status", _text(summary["status"]) + (" (interrupted)" if summary.get("interrupted") else "")),
        ("Gap", f"{100 * gap:.2f} %" if gap is not None else "n/a"),
        ("Objective", f"{_number(summary.get('objective'))} {_text(summary['solver'].get('objective_unit', ''))}"),
        ("Solve time", f"{_number(summary.get('solve_seconds'), 1)} s"),
        ("Accounts", _number(summary["accounts"])),
        ("Reps", _number(summary["reps"])),
        ("Set aside", _number(summary["set_aside"]["accounts"])),
        ("Balance rules", "all met" if within else "<span class='over'>some missed</span>"),
    ]
    compactness = summary.get("compactness") or {}
    facts.append(("Mean distance", f"{_number(compactness.get('mean_distance_km'), 1)} km"))
    geography = summary.get("geography")
    if geography:
        facts.append(("Units", f"{_number(geography.get('units'))} ({_text(geography.get('unit_source'))})"))
        for layer in geography.get("team_layers") or []:
            pieces = layer["territories_in_pieces"]
            facts.append(
                (
                    f"{_text(layer['layer']).capitalize()} layer",
                    f"{_number(len(layer['territories']))} territories, {_number(layer['units'])} units, "
                    f"{_number(layer['accounts'])} accounts"
                    + (
                        f", <span class='over'>{_number(len(pieces))} in pieces</span>" if pieces else ", each one area"
                    ),
                )
            )
    cells = "".join(f"<div class='fact'><div class='k'>{k}</div><div class='v'>{v}</div></div>" for k, v in facts)
    description = summary.get("description")
    return (
        f"<header><h1>{_text(summary['scenario'])}</h1>"
        + (f"<p class='description'>{_text(description)}</p>" if description else "")
        + f"<div class='facts'>{cells}</div></header>"
    )


def _metric_table(metrics: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, m in metrics.items():
        places = digits(name)
        target = m["target"]
        target_text = (
            ", ".join(f"{_text(k)} {_number(v, places)}" for k, v in target.items())
            if isinstance(target, dict)
            else _number(target, places)
        )
        ok = m["within_tolerance"]
        tolerance = f"&plusmn;{m['tolerance_pct']:g} %" if m["balanced"] else "not balanced"
        if m.get("within") == "segment":
            tolerance += " within segment"
        rows.append(
            "<tr>"
            f"<td>{_text(_title(name))}</td>"
            f"<td class='num'>{_number(m['total'], places)}</td>"
            f"<td class='num'>{target_text}</td>"
            f"<td class='num'>{_number(m['min'], places)}</td>"
            f"<td class='num'>{_number(m['max'], places)}</td>"
            f"<td class='num'>{_number(m['max_deviation_pct'], 2)} %</td>"
            f"<td class='num'>{tolerance}</td>"
            f"<td>{'&ndash;' if ok is None else ('yes' if ok else '<span class=over>NO</span>')}</td>"
            "</tr>"
        )
    return (
        "<table class='kpi'><thead><tr><th>Metric</th><th>Total</th><th>Target per FTE</th><th>Min</th><th>Max</th>"
        "<th>Worst deviation</th><th>Tolerance</th><th>Met</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _charts(plan: Plan, labels: Sequence[str], colors: Sequence[str]) -> str:
    charts = []
    for metric in plan.metrics:
        rule = plan.dataset.scenario.balance.get(metric)
        charts.append(
            metric_chart(
                metric,
                plan.loads(metric),
                plan.targets(metric),
                labels,
                colors,
                tolerance_pct=rule.tolerance_pct if rule is not None else None,
            )
        )
    return "<div class='charts'>" + "".join(charts) + "</div>"


def metric_chart(
    metric: str,
    loads: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    colors: Sequence[str],
    *,
    tolerance_pct: float | None,
) -> str:
    """An inline SVG bar chart of one metric: every territory against its target band.

    Parameters
    ----------
    metric
        The metric's name (chart title and ``data-metric`` attribute).
    loads, targets
        Per territory, its load and its FTE-scaled target.
    labels, colors
        Per territory, its label and map colour.
    tolerance_pct
        The band drawn around each target (``None``: the metric is not
        balanced, only the target tick is drawn).

    Returns
    -------
    str
        A ``<figure>`` holding one ``<svg class="metric-chart">`` with one
        bar (``rect.bar``) per territory.
    """
    loads = np.asarray(loads, float)
    targets = np.asarray(targets, float)
    tol = (tolerance_pct or 0.0) / 100.0
    upper = targets * (1 + tol)
    finite = np.concatenate([loads[np.isfinite(loads)], upper[np.isfinite(upper)], [0.0]])
    top = float(finite.max()) * 1.05 or 1.0
    plot_width = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    height = AXIS_HEIGHT + ROW_HEIGHT * len(loads) + 4
    places = digits(metric)

    def x(value: float) -> float:
        return LABEL_WIDTH + plot_width * max(value, 0.0) / top

    parts = [
        f"<svg class='metric-chart' data-metric='{_text(metric)}' role='img' width='{CHART_WIDTH}' height='{height}'"
        f" viewBox='0 0 {CHART_WIDTH} {height}' xmlns='http://www.w3.org/2000/svg'>"
        f"<title>{_text(_title(metric))} per territory against its target</title>"
    ]
    marks = ticks(0.0, top, 4)
    step = marks[1] - marks[0] if len(marks) > 1 else top
    for tick in marks:
        tx = x(tick)
        parts.append(
            f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{AXIS_HEIGHT - 4}' y2='{height - 4}' class='grid'/>"
            f"<text x='{tx:.1f}' y='{AXIS_HEIGHT - 8}' class='tick'>{compact(tick, step=step)}</text>"
        )
    for i, (load, target, label, color) in enumerate(zip(loads, targets, labels, colors, strict=True)):
        y = AXIS_HEIGHT + i * ROW_HEIGHT
        inside = tolerance_pct is None or abs(load - target) <= tol * abs(target) + 1e-9
        deviation = 100.0 * (load - target) / target if target else float("nan")
        tip = f"{label}: {number(load, places)} (target {number(target, places)}, {deviation:+.1f} %)"
        outline = "" if inside else f" stroke='{OVER_COLOR}' stroke-width='2'"
        parts.append(
            f"<text x='{LABEL_WIDTH - 6}' y='{y + ROW_HEIGHT - 5}' class='label'>{_text(_clip(label))}</text>"
            f"<rect class='bar' x='{LABEL_WIDTH}' y='{y + 4}' width='{max(x(load) - LABEL_WIDTH, 0):.1f}'"
            f" height='{ROW_HEIGHT - 8}' fill='{color}'{outline}><title>{_text(tip)}</title></rect>"
        )
        if tolerance_pct is not None and math.isfinite(target):
            low, high = x(target * (1 - tol)), x(target * (1 + tol))
            parts.append(
                f"<rect class='band' x='{low:.1f}' y='{y + 1}' width='{max(high - low, 1):.1f}'"
                f" height='{ROW_HEIGHT - 2}' fill='{BAND_COLOR}' fill-opacity='0.55'/>"
            )
        if math.isfinite(target):
            parts.append(
                f"<line class='target' x1='{x(target):.1f}' x2='{x(target):.1f}' y1='{y + 1}'"
                f" y2='{y + ROW_HEIGHT - 1}' stroke='{TARGET_COLOR}' stroke-width='2'/>"
            )
        value_class = "value" if inside else "value over-text"
        parts.append(
            f"<text x='{CHART_WIDTH - VALUE_WIDTH + 8}' y='{y + ROW_HEIGHT - 5}' class='{value_class}'>"
            f"{compact(load)} ({deviation:+.1f} %)</text>"
        )
    parts.append("</svg>")
    band = f"band: target &plusmn;{tolerance_pct:g} %" if tolerance_pct is not None else "not balanced: target only"
    caption = f"<figcaption><b>{_text(_title(metric))}</b> &middot; bar: load &middot; tick: target &middot; {band}"
    return f"<figure class='chart'>{caption}</figcaption>{''.join(parts)}</figure>"


def _moves(plan: Plan, moves: dict[str, Any], labels: Sequence[str], colors: Sequence[str]) -> str:
    if not moves.get("baseline"):
        return "<p class='note'>The accounts table has no current rep: there is no baseline to compare with.</p>"
    intro = (
        f"<p>{_number(moves['accounts_moved'])} of {_number(moves['accounts_with_baseline'])} accounts with a "
        f"current rep change hands, carrying {_number(moves['potential_moved'])} of potential "
        f"({_number(moves['potential_moved_pct'], 1)} %) and {_number(moves['workload_moved'], 1)} hours of workload."
        " Moved accounts are outlined in black on the map.</p>"
    )
    per_rep = moves["per_rep"]
    rep_ids = [str(r) for r in plan.dataset.reps["rep_id"]]
    gained = np.array([per_rep[r]["accounts_gained"] for r in rep_ids], float)
    lost = np.array([per_rep[r]["accounts_lost"] for r in rep_ids], float)
    chart = moves_chart(gained, lost, labels)
    rows = "".join(
        f"<tr><td>{_text(label)}</td><td class='num'>{_number(per_rep[r]['accounts_gained'])}</td>"
        f"<td class='num'>{_number(per_rep[r]['accounts_lost'])}</td>"
        f"<td class='num'>{_number(per_rep[r]['potential_gained'])}</td>"
        f"<td class='num'>{_number(per_rep[r]['potential_lost'])}</td></tr>"
        for r, label in zip(rep_ids, labels, strict=True)
    )
    table = (
        "<table class='kpi'><thead><tr><th>Rep</th><th>Accounts gained</th><th>Accounts lost</th>"
        f"<th>Potential gained</th><th>Potential lost</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    return intro + "<div class='charts'>" + chart + table + "</div>" + _top_moves(plan)


def moves_chart(gained: np.ndarray, lost: np.ndarray, labels: Sequence[str]) -> str:
    """Inline SVG: accounts gained (right, green) and lost (left, red) per rep."""
    top = float(max(gained.max(initial=0), lost.max(initial=0))) or 1.0
    half = (CHART_WIDTH - LABEL_WIDTH) / 2 - 40
    middle = LABEL_WIDTH + half + 40
    height = AXIS_HEIGHT + ROW_HEIGHT * len(labels) + 4
    parts = [
        f"<svg class='moves-chart' role='img' width='{CHART_WIDTH}' height='{height}'"
        f" viewBox='0 0 {CHART_WIDTH} {height}' xmlns='http://www.w3.org/2000/svg'>"
        "<title>Accounts gained and lost per rep</title>"
        f"<text x='{middle - half:.1f}' y='{AXIS_HEIGHT - 8}' class='tick' text-anchor='start'>&#8592; lost</text>"
        f"<text x='{middle + half:.1f}' y='{AXIS_HEIGHT - 8}' class='label'>gained &#8594;</text>"
        f"<line x1='{middle}' x2='{middle}' y1='{AXIS_HEIGHT - 4}' y2='{height - 4}' class='axis'/>"
    ]
    for i, (g, lo, label) in enumerate(zip(gained, lost, labels, strict=True)):
        y = AXIS_HEIGHT + i * ROW_HEIGHT
        wl, wg = half * lo / top, half * g / top
        parts.append(
            f"<text x='{LABEL_WIDTH - 6}' y='{y + ROW_HEIGHT - 5}' class='label'>{_text(_clip(label))}</text>"
            f"<rect x='{middle - wl:.1f}' y='{y + 4}' width='{wl:.1f}' height='{ROW_HEIGHT - 8}' fill='{LOSS_COLOR}'>"
            f"<title>{_text(label)} loses {int(lo)}</title></rect>"
            f"<rect x='{middle:.1f}' y='{y + 4}' width='{wg:.1f}' height='{ROW_HEIGHT - 8}' fill='{GAIN_COLOR}'>"
            f"<title>{_text(label)} gains {int(g)}</title></rect>"
            f"<text x='{middle - wl - 4:.1f}' y='{y + ROW_HEIGHT - 5}' class='label'>{int(lo) or ''}</text>"
            f"<text x='{middle + wg + 4:.1f}' y='{y + ROW_HEIGHT - 5}' class='tick' text-anchor='start'>"
            f"{int(g) or ''}</text>"
        )
    parts.append("</svg>")
    caption = "<figcaption><b>Accounts gained and lost</b></figcaption>"
    return "<figure class='chart'>" + caption + "".join(parts) + "</figure>"


def _top_moves(plan: Plan) -> str:
    moved = plan.assignments()[plan.moved]
    if moved.empty:
        return ""
    top = moved.sort_values("potential", ascending=False).head(TOP_MOVES)
    rows = "".join(
        f"<tr><td>{_text(r.account_id)}</td><td>{_text(r.name)}</td><td>{_text(r.segment)}</td>"
        f"<td class='num'>{_number(r.potential)}</td><td>{_text(r.current_rep)}</td><td>{_text(r.rep_id)}</td></tr>"
        for r in top.itertuples(index=False)
    )
    return (
        f"<h3>Largest moves ({len(top)} of {len(moved):,}, by potential)</h3>"
        "<table class='kpi'><thead><tr><th>Account</th><th>Name</th><th>Segment</th><th>Potential</th>"
        f"<th>From</th><th>To</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _table(frame: pd.DataFrame, metrics: Sequence[str]) -> str:
    """The territory table: every column of ``territories.csv``, each metric's total, target and deviation grouped."""
    groups = {}
    for metric in metrics:
        title = _title(metric)
        for column, sub in ((metric, "total"), (f"{metric}_target", "target"), (f"{metric}_deviation_pct", "dev. %")):
            if column in frame:
                groups[column] = (title, sub)
    return f"<div class='scroll'>{html_table(frame, groups=groups)}</div>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_text(title)}</h2>{body}</section>"


# ----------------------------------------------------------------- formatting
def _text(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value))


def _number(value: Any, places: int = 0) -> str:
    text = number(value, places)
    return "&ndash;" if text == MISSING else text


def _title(metric: str) -> str:
    return metric.replace("_", " ").capitalize()


def _label(name: Any, rep_id: Any) -> str:
    text = "" if name is None or name is pd.NA or (isinstance(name, float) and math.isnan(name)) else str(name).strip()
    return str(rep_id) if not text or text == str(rep_id) else f"{text} ({rep_id})"


def _clip(label: str, width: int = 26) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


_CSS = """
body {font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1d1d1f; margin: 0 auto;
  max-width: 1200px; padding: 16px 28px 60px;}
h1 {margin: 8px 0 2px; font-size: 26px;} h2 {margin-top: 34px; border-bottom: 2px solid #e4e4e4;
  padding-bottom: 4px;} h3 {margin-top: 22px;}
.description {color: #555; margin: 0 0 10px;}
.facts {display: flex; flex-wrap: wrap; gap: 10px;}
.fact {background: #f4f5f7; border-radius: 6px; padding: 6px 12px; min-width: 110px;}
.fact .k {font-size: 11px; text-transform: uppercase; color: #666; letter-spacing: .04em;}
.fact .v {font-size: 17px; font-weight: 600;}
.over {color: #c00000; font-weight: 600;}
.charts {display: flex; flex-wrap: wrap; gap: 18px 28px; align-items: flex-start;}
figure.chart {margin: 8px 0;} figcaption {font-size: 13px; color: #444; margin-bottom: 2px;}
svg .label {font: 11px sans-serif; text-anchor: end; fill: #222;}
svg .tick, svg .value {font: 10px sans-serif; fill: #555;}
svg .tick {text-anchor: middle;} svg .over-text {fill: #c00000; font-weight: 600;}
svg .grid {stroke: #e8e8e8;} svg .axis {stroke: #999;}
iframe.plan-map {width: 100%; height: 640px; border: 1px solid #ccc; border-radius: 6px; box-sizing: border-box;}
.scroll {overflow-x: auto;}
pre.settings {background: #f6f8fa; padding: 10px 14px; border-radius: 6px; font-size: 12px; overflow-x: auto;}
.note {color: #555;}
"""
