"""Terminal tables that fit the terminal without cutting a figure.

Rich shrinks a table that is too wide by cutting cells short (``307,000,…``). Here the widths are chosen
before rich sees the table: every figure keeps its full width, headers (in planner words,
:func:`models.formatting.label`) wrap between words, and when the full figures do not fit the width they are
written in compact form (``307 M``) instead. Only when even those do not fit are header words broken.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table
from rich.text import Text

from models.formatting import cell, compact, label

#: Characters a table adds per column (a border and one space of padding each side) and once (the last border).
PER_COLUMN, PER_TABLE = 3, 1


def fit_table(
    frame: pd.DataFrame,
    width: int,
    *,
    title: str | None = None,
    caption: str | None = None,
    headers: Mapping[str, str] | None = None,
    style: Callable[[str, Any], str | None] | None = None,
) -> Table:
    """A rich table of ``frame`` that fits ``width`` columns with every figure whole.

    Parameters
    ----------
    frame
        Columns named by their machine keys; values as in the CSV files (formatted here).
    width
        The terminal's width (``console.width``).
    title, caption
        The table's title, and a line below it (units the headers leave out).
    headers
        Column -> header text, where the planner words of :func:`models.formatting.label` do not suit.
    style
        (column, value) -> a rich style for that cell (``"red"``), or ``None``.

    Returns
    -------
    rich.table.Table
        Columns of fixed widths: figures right-aligned and whole.
    """
    columns = [str(c) for c in frame.columns]
    names = [(headers or {}).get(c, label(c).text) for c in columns]
    rows = list(frame.itertuples(index=False, name=None))
    figure = [bool(len(frame)) and all(_is_figure(v) or _is_blank(v) for v in frame[c]) for c in frame.columns]
    full = [[cell(v, c) for c, v in zip(columns, row, strict=True)] for row in rows]
    short = [[_shorter(v, text) for v, text in zip(*pair, strict=True)] for pair in zip(rows, full, strict=True)]
    room = width - PER_COLUMN * len(columns) - PER_TABLE
    for texts in (full, short):
        widths = _widths(names, texts, figure, room)
        if widths is not None:
            break
    else:
        texts = short
        widths = [_least(k, texts, figure) for k in range(len(columns))]
    table = Table(title=title, caption=caption)
    for k, name in enumerate(names):
        table.add_column(name, justify="right" if figure[k] else "left", width=widths[k], overflow="fold")
    for row, values in zip(texts, rows, strict=True):
        cells = []
        for column, text, value in zip(columns, row, values, strict=True):
            chosen = style(column, value) if style is not None else None
            cells.append(Text(text, style=chosen or ""))
        table.add_row(*cells)
    return table


def _widths(names: Sequence[str], texts: list[list[str]], figure: Sequence[bool], room: int) -> list[int] | None:
    """Column widths within ``room``: figures whole, then header words whole, then cells on one line; else None."""
    n = len(names)
    least = [_least(k, texts, figure) for k in range(n)]
    if sum(least) > room:
        return None
    wanted = [max(least[k], _longest_word(names[k])) for k in range(n)]
    natural = [max(wanted[k], *(len(row[k]) for row in texts)) if texts else wanted[k] for k in range(n)]
    widths = list(least)
    for goal in (wanted, natural):  # the columns that need least first, so that most headers stay whole
        for k in sorted(range(n), key=lambda k: goal[k] - widths[k]):
            spare = room - sum(widths)
            widths[k] += max(0, min(goal[k] - widths[k], spare))
    return widths


def _least(k: int, texts: list[list[str]], figure: Sequence[bool]) -> int:
    """The narrowest column ``k`` may be: its widest figure, or the longest word of its text."""
    if not texts:
        return 1
    if figure[k]:
        return max(1, *(len(row[k]) for row in texts))
    return max(1, *(_longest_word(row[k]) for row in texts))


def _shorter(value: Any, text: str) -> str:
    """A figure's compact form when it is shorter than its full one (``307 M`` for ``307,000,563``)."""
    if not _is_figure(value):
        return text
    short = compact(value)
    return short if len(short) < len(text) else text


def _longest_word(text: str) -> int:
    return max((len(word) for word in str(text).split()), default=0)


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_) and not pd.isna(value)


def _is_blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bool | np.bool_) and bool(pd.isna(value)))
