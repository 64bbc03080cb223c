"""Balance targets: each rep's FTE-scaled fair share of a metric.

A metric is balanced either across all reps (``within: all``) or within the
reps that share a segment preference (``within: segment``: enterprise reps
against enterprise reps). In both cases a rep's target is its FTE share of
what its group holds:

    target_r = fte_r / sum(fte of r's group) * sum(load of r's group)

With one group this is the rep's FTE share of the input total. The optimizer's
scoring and the plan's KPIs both use these functions, so ours and a peer's
assignments are measured alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def balance_groups(rep_segments: Sequence[str], within: str) -> np.ndarray:
    """Group index of every rep for one metric.

    Parameters
    ----------
    rep_segments
        Segment preference of each rep.
    within
        ``"all"`` (one group) or ``"segment"`` (one group per preference).

    Returns
    -------
    numpy.ndarray
        Integer group per rep, numbered in order of first appearance.
    """
    if within == "all":
        return np.zeros(len(rep_segments), dtype=np.int64)
    order: dict[str, int] = {}
    return np.array([order.setdefault(s, len(order)) for s in rep_segments], dtype=np.int64)


def targets(loads: np.ndarray, fte: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """FTE-scaled target of every rep given the loads of the plan.

    Parameters
    ----------
    loads
        Metric total held by each rep.
    fte
        Capacity of each rep.
    groups
        Balance group of each rep (:func:`balance_groups`).

    Returns
    -------
    numpy.ndarray
        Target per rep, in the metric's units.

    Examples
    --------
    >>> targets(np.array([30.0, 10.0, 20.0]), np.array([1.0, 0.5, 1.0]), np.zeros(3, int))
    array([24., 12., 24.])
    """
    loads = np.asarray(loads, dtype=float)
    fte = np.asarray(fte, dtype=float)
    group_load = np.bincount(groups, weights=loads)
    group_fte = np.bincount(groups, weights=fte)
    return fte / group_fte[groups] * group_load[groups]


def deviation_pct(loads: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Signed deviation from target in % (0 where both are 0, inf where only the target is 0)."""
    loads = np.asarray(loads, dtype=float)
    target = np.asarray(target, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 100.0 * (loads - target) / target
    dev = np.where((target == 0) & (loads == 0), 0.0, dev)
    return np.where((target == 0) & (loads != 0), np.inf, dev)
