"""The sweep page: trade-off scatter charts as inline SVG, each point a link to its plan's map.

Used by ``territory sweep`` (:mod:`territory.sweep`). Like :mod:`maps.trade_off`, the SVG is drawn here so
the page needs nothing from the network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from maps.trade_off import COLORS, Frame, legend_entry, no_points, open_chart

#: Statuses of rows that have a plan.
PLAN_STATUSES = ("optimal", "feasible")


@dataclass(frozen=True)
class Point:
    """One variant on a chart: its position, its name (tooltip) and the page it links to."""

    x: float
    y: float
    label: str
    href: str


def scatter_chart(series: Mapping[str, Sequence[Point]], *, x_label: str, y_label: str, title: str) -> str:
    """An SVG scatter chart whose points are links (``<a href>``) with a tooltip naming the variant.

    Parameters
    ----------
    series
        Legend label -> points (one colour per series).
    x_label, y_label, title
        Axis labels and the chart title (also the SVG's accessible name).

    Returns
    -------
    str
        An ``<svg>`` element.
    """
    points = [p for values in series.values() for p in values if math.isfinite(p.x) and math.isfinite(p.y)]
    if not points:
        return no_points(title, "no plans to show")
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1 = min(xs), max(xs)
    pad = 0.05 * (x1 - x0) if x1 > x0 else 1.0
    x0, x1 = x0 - pad, x1 + pad
    # trade-offs are differences of a few %: the y axis spans the values, not zero to the top
    y0, y1 = min(ys), max(ys)
    pad = 0.08 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.05, 1.0)
    frame = Frame(x0, x1, y0 - pad, y1 + pad)
    parts = open_chart(frame, x_label=x_label, y_label=y_label, title=title, links=True)
    for k, (label, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        for p in values:
            if not (math.isfinite(p.x) and math.isfinite(p.y)):
                continue
            tip = html.escape(f"{p.label}: {x_label} {p.x:,.4g}, {y_label} {p.y:,.4g}")
            parts.append(
                f'<a class="point" href="{html.escape(p.href)}" xlink:href="{html.escape(p.href)}">'
                f'<circle cx="{frame.px(p.x):.1f}" cy="{frame.py(p.y):.1f}" r="5" fill="{color}" fill-opacity="0.75" '
                f'stroke="#222" stroke-width="0.5"><title>{tip}</title></circle></a>'
            )
        parts.append(legend_entry(k, label, color))
    parts.append("</svg>")
    return "".join(parts)


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.replace({"none": None}), errors="coerce")


def _series(plans: pd.DataFrame, x: pd.Series, y: pd.Series, by: str | None) -> dict[str, list[Point]]:
    """Points of the rows with both values, grouped by the values of column ``by`` (one colour each)."""
    out: dict[str, list[Point]] = {}
    for index, row in plans.iterrows():
        if pd.isna(x[index]) or pd.isna(y[index]):
            continue
        name = "plans" if by is None else f"{'.'.join(by.split('.')[-2:])} {row[by]}"
        out.setdefault(name, []).append(Point(float(x[index]), float(y[index]), str(row["variant"]), row["map"]))
    return out


def sweep_charts(table: pd.DataFrame, numeric_axes: Sequence[str]) -> list[str]:
    """The trade-off charts of a sweep table (rows with a plan only).

    * travel (workload-hour x km) against every numeric axis with two values or more, and against the rep
      count when variants change the team;
    * the worst deviation from target (over the balanced metrics) against the accounts moved.

    Points are coloured by the first axis that is not on the chart's x axis.
    """
    plans = table[table["status"].isin(PLAN_STATUSES)]
    axes = _other_axes(table)
    charts = []
    # a chart per varied numeric axis even when no variant has a plan yet (it then says so)
    x_columns = [a for a in numeric_axes if a in table and _numeric(table[a]).nunique() > 1]
    if "reps" in plans and plans["reps"].nunique() > 1:
        x_columns.append("reps")
    workload = _numeric(plans["workload_km"]) if "workload_km" in plans else pd.Series(float("nan"), index=plans.index)
    for column in x_columns:
        by = next((a for a in axes if a != column and plans[a].nunique() > 1), None)
        charts.append(
            scatter_chart(
                _series(plans, _numeric(plans[column]), workload, by),
                x_label="rep count" if column == "reps" else column,
                y_label="travel (workload-hour x km)",
                title=f"Travel against {'rep count' if column == 'reps' else column}",
            )
        )
    deviations = [c for c in plans.columns if c.endswith("_max_deviation_pct")]
    missing = pd.Series(float("nan"), index=plans.index)
    worst = plans[deviations].apply(pd.to_numeric, errors="coerce").max(axis=1) if deviations else missing
    moved = _numeric(plans["accounts_moved"]) if "accounts_moved" in plans else missing
    by = next((a for a in axes if plans[a].nunique() > 1), None)
    charts.append(
        scatter_chart(
            _series(plans, moved, worst, by),
            x_label="accounts moved",
            y_label="worst deviation from target, %",
            title="Balance against accounts moved",
        )
    )
    return charts


def _other_axes(table: pd.DataFrame) -> list[str]:
    """Setting columns of the table: those between 'variant' and 'status'."""
    columns = list(table.columns)
    return columns[1 : columns.index("status")] if "status" in columns else []


def sweep_page(title: str, table: pd.DataFrame, numeric_axes: Sequence[str]) -> str:
    """The whole ``sweep.html``: counts by status, the charts, and the table with a link per plan."""
    charts = sweep_charts(table, numeric_axes)
    counts = table["status"].value_counts()
    summary = ", ".join(f"{n} {html.escape(str(status))}" for status, n in counts.items())
    shown = table.copy()
    shown["map"] = [f'<a href="{html.escape(h)}">map</a>' if h else "" for h in shown["map"].fillna("")]
    body = shown.to_html(
        index=False, border=0, classes="kpi", na_rep="", escape=False, float_format=lambda v: f"{v:,.4g}"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1a1a1a; }}
table.kpi {{ border-collapse: collapse; font-size: 13px; }}
table.kpi th, table.kpi td {{ padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
div.charts {{ display: flex; flex-wrap: wrap; }}
svg.chart {{ margin: 0.5em 1em 1em 0; }}
svg.chart a.point:hover circle {{ stroke-width: 2; }}
</style></head>
<body>
<h1>Sweep: {html.escape(title)}</h1>
<p>{len(table)} variants: {summary}. Each point is one variant's plan; click it to open the plan's map.
Every plan keeps every balance tolerance of its variant.</p>
<div class="charts">{"".join(charts)}</div>
<h2>Variants</h2>
{body}
</body></html>
"""
