"""Territory colours: a deterministic palette that stays distinguishable past 50 territories.

The first colours come from a fixed list of well-separated, saturated hues that
read well on a light base map (pale pastels are left out: a lightly filled
pastel territory vanishes on CartoDB positron). Beyond the list, hues step
around the colour wheel by the golden ratio, with saturation and value cycling
through three levels, so neighbouring indices never look alike and no colour
repeats.
"""

from __future__ import annotations

import colorsys

#: Well-separated colours, most distinct first (after Trubetskoy's 20 distinct colours,
#: pastels swapped for mid tones).
BASE_COLORS: tuple[str, ...] = (
    "#e6194b",  # red
    "#4363d8",  # blue
    "#3cb44b",  # green
    "#f58231",  # orange
    "#911eb4",  # purple
    "#42d4f4",  # cyan
    "#f032e6",  # magenta
    "#9a6324",  # brown
    "#469990",  # teal
    "#000075",  # navy
    "#808000",  # olive
    "#800000",  # maroon
    "#bfef45",  # lime
    "#ffe119",  # yellow
    "#e377c2",  # pink
    "#5f5f5f",  # dark grey
    "#00c49a",  # aquamarine
    "#ffb347",  # light orange
    "#6a5acd",  # slate blue
    "#c71585",  # violet red
)

_GOLDEN = 0.618033988749895
#: (saturation, value) levels cycled beyond the fixed list.
_LEVELS = ((0.85, 0.85), (0.65, 0.60), (0.55, 0.95))


def territory_colors(n: int) -> list[str]:
    """Return ``n`` distinct hex colours, the same for the same ``n``.

    Parameters
    ----------
    n
        Number of territories.

    Returns
    -------
    list of str
        ``#rrggbb`` colours; the first ``n`` of any longer call (a plan with
        one more rep keeps everyone else's colour).

    Raises
    ------
    ValueError
        If ``n`` is negative.

    Examples
    --------
    >>> territory_colors(3)
    ['#e6194b', '#4363d8', '#3cb44b']
    >>> len(set(territory_colors(200)))
    200
    """
    if n < 0:
        raise ValueError(f"the number of colours must be zero or more, got {n}")
    colors = list(BASE_COLORS[:n])
    seen = set(colors)
    step = 0
    while len(colors) < n:
        hue = (0.11 + step * _GOLDEN) % 1.0
        saturation, value = _LEVELS[step % len(_LEVELS)]
        color = _hex(hue, saturation, value)
        nudge = 0
        while color in seen:  # 24-bit rounding can collide for very large n
            nudge += 1
            color = _hex((hue + nudge * 1e-3) % 1.0, saturation, value)
        colors.append(color)
        seen.add(color)
        step += 1
    return colors


def _hex(hue: float, saturation: float, value: float) -> str:
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in (red, green, blue)))
