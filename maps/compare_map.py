"""Plans side by side: one map per plan, panning and zooming together.

Each pane is the full plan map of :func:`maps.plan_map.draw_plan` (territory
areas, accounts, home bases, legend, layer switch), titled with the plan's
label. Accounts whose rep differs between the plans are outlined in black in
every pane, and their tooltip says where the other plan puts them, so the
planner sees at once what a change of plan moves. Moving or zooming one pane
moves every other pane to the same view (a few lines of Leaflet events, the
same thing ``folium.plugins.DualMap`` does with the Leaflet.Sync plugin, but
with nothing to fetch, so it works offline too).

Call it from Python::

    from maps import write_compare_map
    write_compare_map([plan_a, plan_b], ["today", "with two hires"], "compare.html")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from branca.element import Figure, MacroElement, Template

from maps.plan_map import AccountTable, draw_plan, new_map, save_page
from models.plan import Plan

logger = logging.getLogger(__name__)

#: Most plans shown side by side (beyond it the panes get too narrow to read).
MAX_PLANS = 4


def write_compare_map(
    plans: Sequence[Plan],
    labels: Sequence[str],
    path: Path | str,
    *,
    offline: bool = False,
    carto_api_key: str | None = None,
) -> Path:
    """Write an HTML page showing plans side by side with synchronised pan and zoom.

    Parameters
    ----------
    plans
        Two plans (up to :data:`MAX_PLANS`), usually of the same accounts
        (two scenarios, or the plan before and after a headcount change).
        Accounts are matched by ``account_id``; reps may differ.
    labels
        One short name per plan, shown as the pane's title (``"A"``, ``"B"``,
        a scenario name, a plan folder name).
    path
        The HTML file to write (whole or not at all).
    offline
        No tiles, every script inlined from installed packages (see
        :mod:`maps.assets`); default: Leaflet and tiles load from the web.
    carto_api_key
        See :func:`maps.plan_map.build_plan_map`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Fewer than two plans, more than :data:`MAX_PLANS`, or not one label per plan.
    """
    figure = build_compare_map(plans, labels, offline=offline, carto_api_key=carto_api_key)
    return save_page(figure, path, offline=offline)


def build_compare_map(
    plans: Sequence[Plan],
    labels: Sequence[str],
    *,
    offline: bool = False,
    carto_api_key: str | None = None,
) -> Figure:
    """Build the side-by-side page of :func:`write_compare_map` as a branca ``Figure``.

    Returns
    -------
    branca.element.Figure
        Holds one :class:`folium.Map` per plan (in order) and the element that
        keeps their views in step.
    """
    plans, labels = list(plans), [str(label) for label in labels]
    if not 2 <= len(plans) <= MAX_PLANS:
        raise ValueError(f"compare two to {MAX_PLANS} plans side by side, got {len(plans)}")
    if len(labels) != len(plans):
        raise ValueError(f"give one label per plan: {len(plans)} plans, {len(labels)} labels")
    rep_of = [pd.Series(plan.rep_ids, index=plan.dataset.accounts["account_id"].to_numpy(object)) for plan in plans]
    figure = Figure()
    table = AccountTable(plans[0])  # every pane of the same accounts draws from one copy of their columns
    width = 100.0 / len(plans)
    maps = []
    for k, (plan, label) in enumerate(zip(plans, labels, strict=True)):
        highlight, notes = changed_accounts(rep_of, k, labels)
        fmap = new_map(
            plan,
            offline=offline,
            carto_api_key=carto_api_key,
            width=f"{width:.4f}%",
            height="100%",
            left=f"{k * width:.4f}%",
            top="0%",
            position="absolute",
        )
        figure.add_child(fmap)
        draw_plan(
            fmap,
            plan,
            title=f"{label}: {plan.dataset.scenario.name}",
            highlight=highlight,
            notes=notes,
            status_note=f"{int(highlight.sum()):,} accounts placed differently (outlined)",
            collapse_layers=True,  # half a window: the open layer switch would cover the title
            table=table,
        )
        maps.append(fmap)
    maps[-1].add_child(SyncViews(maps))
    logger.info("comparison map of %s", ", ".join(labels))
    return figure


def changed_accounts(rep_of: Sequence[pd.Series], k: int, labels: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Accounts of plan ``k`` whose rep differs in another plan, and the tooltip note of each account.

    Parameters
    ----------
    rep_of
        Per plan, the rep id of every account, indexed by account id.
    k
        The plan whose accounts are described.
    labels
        The plans' labels.

    Returns
    -------
    (numpy.ndarray, list of str)
        A flag per account of plan ``k`` (in its row order) and its note:
        ``"B: R007"`` for every other plan placing it elsewhere, ``"same in B"``
        when every other plan agrees, ``"not in B"`` where another plan lacks it.
    """
    mine = rep_of[k]
    highlight = np.zeros(len(mine), dtype=bool)
    parts: list[list[str]] = [[] for _ in range(len(mine))]
    for j, other in enumerate(rep_of):
        if j == k:
            continue
        theirs = other.reindex(mine.index).to_numpy(object)
        present = pd.notna(theirs)
        differs = present & (theirs != mine.to_numpy(object))
        highlight |= differs
        for i in np.flatnonzero(differs | ~present):
            parts[i].append(f"{labels[j]}: {theirs[i]}" if present[i] else f"not in {labels[j]}")
    others = ", ".join(label for j, label in enumerate(labels) if j != k)
    notes = [", ".join(p) if p else f"same in {others}" for p in parts]
    return highlight, notes


class SyncViews(MacroElement):
    """Keeps several Leaflet maps at the same centre and zoom: moving one moves the others."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var maps = [{% for m in this.maps %}{{ m.get_name() }}{% if not loop.last %}, {% endif %}{% endfor %}];
            var syncing = false;
            function follow(source) {
                if (syncing) { return; }
                syncing = true;
                maps.forEach(function (target) {
                    if (target !== source) { target.setView(source.getCenter(), source.getZoom(), {animate: false}); }
                });
                syncing = false;
            }
            maps.forEach(function (m) { m.on("move zoomend", function () { follow(m); }); });
            follow(maps[0]);
        })();
        {% endmacro %}
        """
    )

    def __init__(self, maps: Sequence[MacroElement]) -> None:
        super().__init__()
        self._name = "SyncViews"
        self.maps = list(maps)
