"""Trade-off charts as inline SVG: one value against another, one line per series.

Used by ``territory frontier`` (compactness and balance against accounts
moved) and by the sweep page (:mod:`maps.sweep_charts`). The SVG is drawn here
so the pages need nothing from the network. Each chart is a ``<figure>``: its
title, the SVG plot (ticks in compact figures such as ``3.8 M``, never
scientific notation) and an HTML legend below it that wraps instead of being
cut off (:data:`CHART_CSS` styles it).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.formatting import compact

#: Chart geometry (px).
WIDTH, HEIGHT = 600, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 45
#: Line colours, in series order.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
#: Style of the charts' figures and legends (include it in the page's ``<style>``).
CHART_CSS = f"""
figure.trade-off {{margin: 0.5em 1.5em 1.2em 0; width: {WIDTH}px; max-width: 100%;}}
figure.trade-off figcaption {{font-weight: 600; font-size: 14px; margin-bottom: 2px;}}
figure.trade-off svg {{display: block; max-width: 100%; height: auto;}}
ul.chart-legend {{list-style: none; margin: 4px 0 0 {LEFT}px; padding: 0; display: flex; flex-wrap: wrap;
  gap: 2px 18px; font-size: 12px;}}
ul.chart-legend li {{display: flex; align-items: center; gap: 6px;}}
ul.chart-legend .swatch {{width: 11px; height: 11px; flex: none; border-radius: 2px;}}
"""


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def no_points(title: str, text: str) -> str:
    """A chart's figure saying that it has nothing to show."""
    return (
        f'<figure class="trade-off"><figcaption>{html.escape(title)}</figcaption>'
        f'<svg role="img" aria-label="{html.escape(title)}" width="{WIDTH}" height="30"><text x="{LEFT}" y="20">'
        f"{html.escape(text)}</text></svg></figure>"
    )


@dataclass(frozen=True)
class Frame:
    """The value ranges a chart draws, mapped onto its plot area (px)."""

    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, value: float) -> float:
        """Horizontal pixel of an x value."""
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (WIDTH - LEFT - RIGHT)

    def py(self, value: float) -> float:
        """Vertical pixel of a y value."""
        plot_h = HEIGHT - TOP - BOTTOM
        return TOP + plot_h - (value - self.y0) / (self.y1 - self.y0) * plot_h


def open_chart(frame: Frame, *, x_label: str, y_label: str, title: str, links: bool = False) -> list[str]:
    """The opening ``<svg>``, axes, grid, ticks and axis labels of a chart (close it with ``</svg>``).

    ``links``: declare the xlink namespace (charts whose points are links).
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xlink = ' xmlns:xlink="http://www.w3.org/1999/xlink"' if links else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg"{xlink} role="img" aria-label="{html.escape(title)}" class="chart" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif" '
        'font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
    ]
    y_ticks = ticks(frame.y0, frame.y1)
    for tick in y_ticks:
        y = frame.py(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{compact(tick, step=_step(y_ticks))}</text>"
        )
    x_ticks = ticks(frame.x0, frame.x1)
    for tick in x_ticks:
        parts.append(
            f'<text class="tick" x="{frame.px(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{compact(tick, step=_step(x_ticks))}</text>"
        )
    parts.append(
        f'<text class="axis-title" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
        f'<text class="axis-title" transform="translate(14,{TOP + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{html.escape(y_label)}</text>'
    )
    return parts


def _step(values: Sequence[float]) -> float:
    return values[1] - values[0] if len(values) > 1 else abs(values[0]) if values else 1.0


def legend(entries: Sequence[tuple[str, str, str]]) -> str:
    """A chart's legend below its plot: one item per (label, colour, tooltip); items wrap, never cut off."""
    items = "".join(
        f'<li title="{html.escape(tip)}"><span class="swatch" style="background:{color}"></span>'
        f"<span class='legend-label'>{html.escape(text)}</span></li>"
        for text, color, tip in entries
    )
    return f'<ul class="chart-legend">{items}</ul>'


def figure(title: str, svg: str, entries: Sequence[tuple[str, str, str]]) -> str:
    """A chart's ``<figure>``: its title, the SVG and its legend."""
    return f'<figure class="trade-off"><figcaption>{html.escape(title)}</figcaption>{svg}{legend(entries)}</figure>'


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    x_label: str,
    y_label: str,
    title: str,
    tips: Mapping[str, str] | None = None,
) -> str:
    """An SVG line chart with markers; ``None`` values are gaps (e.g. budgets without a plan).

    Parameters
    ----------
    x
        X values, in drawing order.
    series
        Legend label -> y value per x (``None``: no point).
    x_label, y_label, title
        Axis labels and the chart title (also the SVG's accessible name).
    tips
        Legend label -> its tooltip (the machine key); default: the label.

    Returns
    -------
    str
        A ``<figure>`` holding the title, an ``<svg>`` and the legend.
    """
    points = [
        (float(a), float(b)) for values in series.values() for a, b in zip(x, values, strict=True) if b is not None
    ]
    if not points:
        return no_points(title, "no points")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    frame = Frame(x0, x1 if x1 > x0 else x0 + 1, y0, y1 if y1 > y0 else y0 + 1)
    parts = open_chart(frame, x_label=x_label, y_label=y_label, title=title)
    entries = []
    for k, (label, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        line = [(frame.px(float(a)), frame.py(float(b))) for a, b in zip(x, values, strict=True) if b is not None]
        if len(line) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in line)
            parts.append(f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{color}"/>' for a, b in line]
        entries.append((label, color, (tips or {}).get(label, label)))
    parts.append("</svg>")
    return figure(title, "".join(parts), entries)
