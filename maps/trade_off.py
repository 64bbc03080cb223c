"""Trade-off charts as inline SVG: one value against another, one line per series.

Used by ``territory frontier`` (compactness and balance against accounts
moved). The SVG is drawn here so the pages need nothing from the network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Chart geometry (px).
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 80, 150, 20, 45
#: Line colours, in series order.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


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
    """A one-line SVG saying that a chart has nothing to show."""
    return (
        f'<svg role="img" aria-label="{html.escape(title)}" width="{WIDTH}" height="40"><text x="10" y="25">'
        f"{html.escape(title)}: {html.escape(text)}</text></svg>"
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
    """The opening ``<svg>``, title, axes, grid, ticks and axis labels of a chart (close it with ``</svg>``).

    ``links``: declare the xlink namespace and print the title above the plot (charts whose points are links).
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    xlink = ' xmlns:xlink="http://www.w3.org/1999/xlink"' if links else ""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg"{xlink} role="img" aria-label="{html.escape(title)}" class="chart" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
    ]
    if links:
        parts.append(f'<text x="{LEFT}" y="13" font-weight="bold">{html.escape(title)}</text>')
    parts += [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
    ]
    for tick in ticks(frame.y0, frame.y1):
        y = frame.py(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,.4g}</text>'
        )
    for tick in ticks(frame.x0, frame.x1):
        parts.append(f'<text x="{frame.px(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick:,.4g}</text>')
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text transform="translate(14,{TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    return parts


def legend_entry(k: int, label: str, color: str) -> str:
    """The ``k``-th line of a chart's legend, right of the plot."""
    return (
        f'<rect x="{WIDTH - RIGHT + 12}" y="{TOP + 16 * k}" width="10" height="10" fill="{color}"/>'
        f'<text x="{WIDTH - RIGHT + 27}" y="{TOP + 9 + 16 * k}">{html.escape(label)}</text>'
    )


def line_chart(
    x: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    x_label: str,
    y_label: str,
    title: str,
) -> str:
    """An SVG line chart with markers; ``None`` values are gaps (e.g. budgets without a plan).

    Parameters
    ----------
    x
        X values, in drawing order.
    series
        Label -> y value per x (``None``: no point).
    x_label, y_label, title
        Axis labels and the chart title (also the SVG's accessible name).

    Returns
    -------
    str
        An ``<svg>`` element.
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
    for k, (label, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        line = [(frame.px(float(a)), frame.py(float(b))) for a, b in zip(x, values, strict=True) if b is not None]
        if len(line) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in line)
            parts.append(f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{color}"/>' for a, b in line]
        parts.append(legend_entry(k, label, color))
    parts.append("</svg>")
    return "".join(parts)
