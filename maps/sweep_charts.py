"""The sweep page: trade-off scatter charts as inline SVG, each point a link to its plan's map.

Used by ``territory sweep`` (:mod:`territory.sweep`). Like :mod:`maps.trade_off`, the SVG is drawn here so
the page needs nothing from the network. Axes and legends speak the planner's words ("travel, workload-hour
× km", "potential tolerance = 5 %"); the scenario keys they stand for are in the tooltips.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from maps.tables import TABLE_CSS, html_table
from maps.trade_off import CHART_CSS, COLORS, Frame, figure, no_points, open_chart
from models.formatting import label, quantity, setting

#: Statuses of rows that have a plan.
PLAN_STATUSES = ("optimal", "feasible")


@dataclass(frozen=True)
class Point:
    """One variant on a chart: its position, its name (tooltip) and the page it links to."""

    x: float
    y: float
    label: str
    href: str


@dataclass(frozen=True)
class Series:
    """Points of one colour: the legend's text (``potential tolerance = 5 %``) and its tooltip (the key)."""

    text: str
    tip: str
    points: list[Point]


def scatter_chart(series: Sequence[Series], *, x_key: str, y_key: str, title: str) -> str:
    """An SVG scatter chart whose points are links (``<a href>``) with a tooltip naming the variant.

    Parameters
    ----------
    series
        One colour each, in legend order.
    x_key, y_key
        The columns on the axes (their planner words label the axes, :func:`models.formatting.label`).
    title
        The chart title (also the SVG's accessible name).

    Returns
    -------
    str
        A ``<figure>``: title, ``<svg>``, legend.
    """
    points = [p for one in series for p in one.points if math.isfinite(p.x) and math.isfinite(p.y)]
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
    parts = open_chart(frame, x_label=label(x_key).text, y_label=label(y_key).text, title=title, links=True)
    entries = []
    for k, one in enumerate(series):
        color = COLORS[k % len(COLORS)]
        for p in one.points:
            if not (math.isfinite(p.x) and math.isfinite(p.y)):
                continue
            tip = html.escape(f"{p.label}\n{quantity(x_key, p.x)}\n{quantity(y_key, p.y)}")
            parts.append(
                f'<a class="point" href="{html.escape(p.href)}" xlink:href="{html.escape(p.href)}">'
                f'<circle cx="{frame.px(p.x):.1f}" cy="{frame.py(p.y):.1f}" r="5" fill="{color}" fill-opacity="0.75" '
                f'stroke="#222" stroke-width="0.5"><title>{tip}</title></circle></a>'
            )
        entries.append((one.text, color, one.tip))
    parts.append("</svg>")
    return figure(title, "".join(parts), entries)


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.replace({"none": None}), errors="coerce")


def _series(plans: pd.DataFrame, x: pd.Series, y: pd.Series, by: str | None) -> list[Series]:
    """Points of the rows with both values, grouped by the values of column ``by`` (one colour each)."""
    out: dict[str, Series] = {}
    for index, row in plans.iterrows():
        if pd.isna(x[index]) or pd.isna(y[index]):
            continue
        value = None if by is None else row[by]
        text = "plans" if by is None else setting(by, _setting_value(value))
        one = out.setdefault(text, Series(text, "every plan" if by is None else f"{by} = {value}", []))
        one.points.append(Point(float(x[index]), float(y[index]), str(row["variant"]), row["map"]))
    return list(out.values())


def _setting_value(value: object) -> object:
    """A sweep table's setting as its number when it is one (``"5"`` read back from ``sweep.csv`` is 5)."""
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return value if pd.isna(number) or isinstance(value, bool) else number.item()


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
                x_key=column,
                y_key="workload_km",
                title=f"Travel against {label(column).name}",
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
            x_key="accounts_moved",
            y_key="max_deviation_pct",
            title="Balance against accounts moved",
        )
    )
    return charts


def _other_axes(table: pd.DataFrame) -> list[str]:
    """Setting columns of the table: those between 'variant' and 'status'."""
    columns = list(table.columns)
    return columns[1 : columns.index("status")] if "status" in columns else []


#: Columns of ``sweep.csv`` left off the page's table (the link's tooltip names the variant).
PAGE_HIDDEN = ("variant", "reused", "wall_seconds")


def sweep_page(title: str, table: pd.DataFrame, numeric_axes: Sequence[str]) -> str:
    """The whole ``sweep.html``: counts by status, the charts, and the table with a link per plan."""
    charts = sweep_charts(table, numeric_axes)
    counts = table["status"].value_counts()
    summary = ", ".join(f"{n} {html.escape(str(status))}" for status, n in counts.items())
    shown = table.drop(columns=[c for c in PAGE_HIDDEN if c in table])
    shown["map"] = [
        f'<a href="{html.escape(h)}" title="{html.escape(str(v))}">map</a>' if h else ""
        for h, v in zip(table["map"].fillna(""), table["variant"], strict=True)
    ]
    body = html_table(shown, markup={"map"})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1a1a1a; }}
div.charts {{ display: flex; flex-wrap: wrap; }}
svg.chart a.point:hover circle {{ stroke-width: 2; }}
{TABLE_CSS}{CHART_CSS}
</style></head>
<body>
<h1>Sweep: {html.escape(title)}</h1>
<p>{len(table)} variants: {summary}. Each point is one variant's plan; click it to open the plan's map
(hover a point or a legend entry for the variant and its settings). Every plan keeps every balance tolerance of
its variant. <a href="sweep.csv">sweep.csv</a> holds every figure in full.</p>
<div class="charts">{"".join(charts)}</div>
<h2>Variants</h2>
{body}
</body></html>
"""
