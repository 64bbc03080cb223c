"""Trade-off charts as inline SVG: one value against another, one line per series.

Used by ``territory frontier`` (compactness and balance against accounts
moved). The SVG is drawn here so the pages need nothing from the network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

#: Chart geometry (px).
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 80, 150, 20, 45
#: Line colours, in series order.
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
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
        return (
            f'<svg role="img" aria-label="{html.escape(title)}" width="{WIDTH}" height="40"><text x="10" y="25">'
            f"{html.escape(title)}: no points</text></svg>"
        )
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(0.0, min(ys)), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(value: float) -> float:
        return LEFT + (value - x0) / (x1 - x0) * plot_w

    def py(value: float) -> float:
        return TOP + plot_h - (value - y0) / (y1 - y0) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(title)}" class="chart" '
        f'width="{WIDTH}" height="{HEIGHT}" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#444"/>',
    ]
    for tick in _ticks(y0, y1):
        parts.append(
            f'<line x1="{LEFT}" y1="{py(tick):.1f}" x2="{LEFT + plot_w}" y2="{py(tick):.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">{tick:,.4g}</text>'
        )
    for tick in _ticks(x0, x1):
        parts.append(f'<text x="{px(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{tick:,.4g}</text>')
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{html.escape(x_label)}</text>'
        f'<text transform="translate(14,{TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    for k, (label, values) in enumerate(series.items()):
        color = COLORS[k % len(COLORS)]
        line = [(px(float(a)), py(float(b))) for a, b in zip(x, values, strict=True) if b is not None]
        if len(line) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in line)
            parts.append(f'<polyline class="series" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        parts += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{color}"/>' for a, b in line]
        parts.append(
            f'<rect x="{WIDTH - RIGHT + 12}" y="{TOP + 16 * k}" width="10" height="10" fill="{color}"/>'
            f'<text x="{WIDTH - RIGHT + 27}" y="{TOP + 9 + 16 * k}">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
