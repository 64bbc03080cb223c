"""HTML tables for people: planner words in the headers (the machine key in a tooltip), formatted figures.

Every table of the engine's pages (the report's territory table, the comparison, the frontier, the sweep) is
drawn here from a :class:`pandas.DataFrame` whose columns are the machine keys of the CSV files beside the
page, so a page and its CSV cannot drift apart. Headers wrap between words, figures never wrap, and long text
(notes, errors, variant ids) wraps inside its cell, so tables fit their page; :data:`TABLE_CSS` styles them.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.formatting import cell, label

#: Style of ``table.kpi`` (include it in the page's ``<style>``).
TABLE_CSS = """
table.kpi {border-collapse: collapse; margin: 8px 0; font-size: 13px;}
table.kpi th, table.kpi td {padding: 3px 6px; border-bottom: 1px solid #e6e6e6; text-align: left;
  vertical-align: top;}
table.kpi thead th {background: #f4f5f7; vertical-align: bottom; font-weight: 600; white-space: normal;
  max-width: 10em; min-width: 3em;}
table.kpi thead th.group {text-align: center; border-bottom: 1px solid #c8c8c8; max-width: none;}
table.kpi th.num, table.kpi td.num {text-align: right;}
table.kpi td {white-space: nowrap;}
table.kpi td.num {font-variant-numeric: tabular-nums;}
table.kpi td.text {white-space: normal; overflow-wrap: anywhere; min-width: 16em; max-width: 30em;}
table.kpi tbody th {text-align: left; font-weight: 600; white-space: normal; max-width: 18em;}
table.kpi .over {color: #c00000; font-weight: 600;}
"""
#: Text longer than this wraps inside its cell (class ``text``).
WRAP_AFTER = 24


def html_table(
    frame: pd.DataFrame,
    *,
    groups: Mapping[str, tuple[str, str]] | None = None,
    markup: Collection[str] = (),
    css_class: str = "kpi",
) -> str:
    """A ``<table>`` of a frame: one row per frame row, headers in planner words.

    Parameters
    ----------
    frame
        Columns named by their machine keys (``workload_km``, ``potential_max_deviation_pct``).
    groups
        Column -> (group title, sub-header): neighbouring columns of one group share a header cell above
        their sub-headers (``("Potential", "target")``); other columns span both header rows.
    markup
        Columns whose values are HTML already (links); the rest is escaped.
    css_class
        The table's class (:data:`TABLE_CSS` styles ``kpi``).

    Returns
    -------
    str
        The ``<table>`` element.
    """
    columns = [str(c) for c in frame.columns]
    numeric = {str(c): _numeric(frame[c]) for c in frame.columns}
    head = _head(columns, [numeric[c] for c in columns], groups or {})
    rows = []
    for values in frame.itertuples(index=False, name=None):
        pairs = zip(columns, values, strict=True)
        cells = [_td(value, column, is_html=column in markup, right=numeric[column]) for column, value in pairs]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='{css_class}'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def kpi_table(frame: pd.DataFrame, name_column: str, *, corner: str = "") -> str:
    """A ``<table>`` with one column per frame row (named by ``name_column``) and one row per other column.

    Each row is headed by the column's planner words (its key in a tooltip) and its figures are formatted
    for that column: the comparison's key figures, plans side by side in the order of the frame.
    """
    names = [str(n) for n in frame[name_column]]
    head = f"<tr><th>{html.escape(corner)}</th>" + "".join(f"<th class='num'>{html.escape(n)}</th>" for n in names)
    rows = []
    for column in frame.columns:
        if column == name_column:
            continue
        words = label(str(column))
        cells = "".join(_td(value, str(column)) for value in frame[column])
        key = html.escape(str(column))
        rows.append(f"<tr><th scope='row' title='{key}'>{html.escape(words.title)}</th>{cells}</tr>")
    return f"<table class='kpi'><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _head(columns: Sequence[str], numeric: Sequence[bool], groups: Mapping[str, tuple[str, str]]) -> str:
    def th(column: str, text: str, is_number: bool, extra: str = "") -> str:
        kind = " class='num'" if is_number else ""
        return f"<th{kind}{extra} title='{html.escape(column)}'>{html.escape(text)}</th>"

    if not any(c in groups for c in columns):
        return "<tr>" + "".join(th(c, label(c).title, n) for c, n in zip(columns, numeric, strict=True)) + "</tr>"
    top, bottom = [], []
    k = 0
    while k < len(columns):
        column = columns[k]
        if column not in groups:
            top.append(th(column, label(column).title, numeric[k], " rowspan='2'"))
            k += 1
            continue
        group = groups[column][0]
        span = 0
        while k + span < len(columns) and columns[k + span] in groups and groups[columns[k + span]][0] == group:
            sub = columns[k + span]
            bottom.append(th(sub, groups[sub][1], numeric[k + span]))
            span += 1
        top.append(f"<th class='group' colspan='{span}'>{html.escape(group)}</th>")
        k += span
    return "<tr>" + "".join(top) + "</tr><tr>" + "".join(bottom) + "</tr>"


def _td(value: Any, column: str, *, is_html: bool = False, right: bool = False) -> str:
    if is_html:
        return f"<td>{'' if value is None else value}</td>"
    text = cell(value, column)
    if _is_figure(value) or right:
        return f"<td class='num'>{html.escape(text)}</td>"
    wrap = " class='text'" if len(text) > WRAP_AFTER else ""
    return f"<td{wrap}>{html.escape(text)}</td>"


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _numeric(values: pd.Series) -> bool:
    """Whether a column holds figures (its header then sits right, over them); "none" stands for no limit."""
    present = [v for v in values.dropna() if not (isinstance(v, str) and v in ("", "none"))]
    return len(present) > 0 and all(_is_figure(v) for v in present)
