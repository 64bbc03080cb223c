"""Quotas: the company target shared over territories, and how quotas change between plans.

Scenario section ``quota`` (see :class:`models.scenario.Quota`)::

    quota:
      target: 60000000                                  # company target
      weights: {potential: 0.5, expected_revenue: 0.5}  # blend of territory shares
      rounding: 1000                                    # every quota a multiple of this
      floor: 2000000                                    # per full-time rep (optional)
      cap: 9000000                                      # per full-time rep (optional)

How a territory's quota is set:

1. **Blend share.** For each weighted metric, the territory's share of the
   plan's total (its potential / all potential ...); the blend share is the
   weighted mean of these shares (weights need not sum to 1). Metrics whose
   total is zero drop out; if every one does, the FTE share is used.
2. **FTE.** The blend shares are shares of territory totals, and balance
   gives every rep a book in proportion to their FTE, so a 0.5 FTE rep's book
   and hence quota are already about half a full-time rep's: the quota is NOT
   multiplied by FTE again (that would count it twice). FTE scales the global
   ``floor`` and ``cap``, which are per full-time rep (a 0.5 FTE rep's floor is
   half). A per-rep ``quota_floor`` / ``quota_cap`` column in the reps table
   overrides them for that rep as an absolute amount. ``territories.csv`` shows
   ``quota_per_fte`` so planners can see how even quotas are per FTE.
3. **Floors and caps.** Quotas are ``target x share``, except that reps whose
   quota would fall below their floor get the floor and reps above their cap
   get the cap; what that frees or uses up is redistributed over the other
   reps in proportion to their shares (water filling: quota = clip(lambda x
   share, floor, cap) with lambda chosen so the quotas sum to the target).
4. **Rounding.** Quotas are whole multiples of ``rounding`` (floors rounded up,
   caps down to it), by largest remainder: everyone gets the rounded-down
   amount, and the units left go to the reps with the largest remainders. The
   quotas sum to the target exactly (the target must be a multiple of the
   rounding unit).

Floors and caps that cannot meet the target (floors adding up to more, caps
to less) are refused as bad input before any solve.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.errors import IssueCollector

if TYPE_CHECKING:
    from models.scenario import Quota

logger = logging.getLogger(__name__)

#: Slack when rounding floors and caps to the rounding unit (float input like 2e6).
_EPS = 1e-9


class QuotaError(ValueError):
    """Floors and caps that no set of quotas summing to the target can meet."""


def blend_shares(loads: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Each territory's blend share: the weighted mean of its shares of every metric's total.

    Parameters
    ----------
    loads
        Metric name -> total per territory.
    weights
        Metric name -> weight (zero or more). Metrics with a zero total drop out.

    Returns
    -------
    numpy.ndarray
        Shares summing to 1, or all zeros when no weighted metric has a total.

    Examples
    --------
    >>> blend_shares({"potential": np.array([3.0, 1.0]), "expected_revenue": np.array([1.0, 1.0])},
    ...              {"potential": 1.0, "expected_revenue": 1.0})
    array([0.625, 0.375])
    """
    n = len(next(iter(loads.values()))) if loads else 0
    blend = np.zeros(n)
    used = 0.0
    for name, weight in weights.items():
        values = np.asarray(loads[name], dtype=float)
        total = values.sum()
        if weight > 0 and total > 0:
            blend += weight * values / total
            used += weight
    return blend / used if used > 0 else blend


def _water_fill(shares: np.ndarray, total: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Real quotas ``clip(lam * share, low, high)`` summing to ``total`` (``sum(low) <= total <= sum(high)``).

    ``g(lam) = sum(clip(lam * share, low, high))`` is piecewise linear and
    non-decreasing; its breakpoints are where a rep leaves its floor or reaches
    its cap, so ``lam`` is found exactly by interpolating between the two
    breakpoints around ``total``. Reps without a share stay at their floor
    unless the others cannot take the rest; it then goes evenly to reps with room.
    """

    def fill(lam: float) -> np.ndarray:
        return np.clip(lam * shares, low, high)

    positive = shares > 0
    if positive.any():
        finite_high = np.where(np.isfinite(high), high, np.inf)
        points = np.concatenate([low[positive] / shares[positive], finite_high[positive] / shares[positive]])
        points = np.unique(np.concatenate([[0.0], points[np.isfinite(points)]]))
        sums = np.array([fill(p).sum() for p in points])
        k = int(np.searchsorted(sums, total, side="left"))
        if k == 0:
            quotas = fill(points[0])
        elif k < len(points):
            lo_p, hi_p = points[k - 1], points[k]
            lam = lo_p + (hi_p - lo_p) * (total - sums[k - 1]) / (sums[k] - sums[k - 1])
            quotas = fill(lam)
        else:  # every rep with a share may grow past the last breakpoint unless capped
            free = positive & ~np.isfinite(high)
            if free.any():
                slope = shares[free].sum()
                quotas = fill(points[-1] + (total - sums[-1]) / slope)
            else:
                quotas = fill(points[-1])
    else:
        quotas = low.astype(float).copy()
    left = total - quotas.sum()
    if left > _EPS * max(total, 1.0):  # only reps without a share have room left: share the rest evenly
        room = (quotas < high).astype(float)
        quotas = _water_fill(room, total, quotas, high)
    return quotas


def allocate_quotas(
    shares: np.ndarray | Sequence[float],
    target: int,
    rounding: int = 1,
    floors: np.ndarray | Sequence[float] | None = None,
    caps: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """Share ``target`` in proportion to ``shares``, within floors and caps, in multiples of ``rounding``.

    Parameters
    ----------
    shares
        Non-negative weight of each rep (need not sum to 1). All zero: equal shares.
    target
        What the quotas sum to, exactly; a multiple of ``rounding``.
    rounding
        Every quota is a multiple of it.
    floors, caps
        Lowest / highest quota per rep (``nan`` or ``inf``: none). Floors are
        rounded up and caps down to the rounding unit.

    Returns
    -------
    numpy.ndarray
        Integer quotas, summing to ``target``.

    Raises
    ------
    QuotaError
        A floor above a cap, floors summing to more than the target, or caps to less.

    Examples
    --------
    >>> allocate_quotas([1, 1, 1], 10_000, rounding=1000).tolist()
    [4000, 3000, 3000]
    >>> allocate_quotas([8, 1, 1], 10_000, rounding=1000, caps=[5000, None, None]).tolist()
    [5000, 3000, 2000]
    """
    shares = np.asarray(shares, dtype=float)
    n = len(shares)
    if n == 0:
        raise QuotaError("there are no reps to give quotas to")
    if np.any(shares < 0) or not np.all(np.isfinite(shares)):
        raise ValueError("shares must be finite and zero or more")
    if target % rounding:
        raise QuotaError(f"target {target:,} is not a multiple of the rounding unit {rounding:,}")
    if shares.sum() == 0:
        shares = np.ones(n)
    shares = shares / shares.sum()
    shares[shares < 1e-15] = 0.0  # less than a millionth of a currency unit of any real target; avoids overflow
    units = target // rounding
    floor_units, cap_units = quota_limit_units(floors, caps, n, rounding)
    problems = quota_limit_problems(floor_units, cap_units, units, rounding)
    if problems:
        raise QuotaError("; ".join(message for _, message in problems))
    exact = _water_fill(shares, float(units), floor_units.astype(float), cap_units)
    quota = np.clip(np.floor(exact + _EPS), floor_units, np.minimum(cap_units, units)).astype(np.int64)
    left = int(units - quota.sum())
    remainder = exact - quota
    while left != 0:  # largest remainder: hand out (or take back) whole units, biggest remainders first
        if left > 0:
            order = [int(i) for i in np.argsort(-remainder, kind="stable") if quota[i] < cap_units[i]]
        else:
            order = [int(i) for i in np.argsort(remainder, kind="stable") if quota[i] > floor_units[i]]
        step = 1 if left > 0 else -1
        for i in order[: abs(left)]:
            quota[i] += step
            remainder[i] -= step
        left = int(units - quota.sum())
    return quota * rounding


def quota_limit_units(
    floors: np.ndarray | Sequence[float] | None, caps: np.ndarray | Sequence[float] | None, n: int, rounding: int
) -> tuple[np.ndarray, np.ndarray]:
    """Floors rounded up and caps rounded down to whole rounding units (0 and inf where none)."""
    floor = np.zeros(n) if floors is None else np.asarray(floors, dtype=float)
    cap = np.full(n, np.inf) if caps is None else np.asarray(caps, dtype=float)
    floor = np.where(np.isnan(floor), 0.0, floor)
    cap = np.where(np.isnan(cap), np.inf, cap)
    floor_units = np.ceil(floor / rounding - _EPS).astype(np.int64)
    cap_units = np.where(np.isfinite(cap), np.floor(cap / rounding + _EPS), np.inf)
    return floor_units, cap_units


def quota_limit_problems(
    floor_units: np.ndarray, cap_units: np.ndarray, units: int, rounding: int
) -> list[tuple[int | None, str]]:
    """Why no quotas within these limits sum to ``units`` x ``rounding``: (rep position or None, message)."""
    problems: list[tuple[int | None, str]] = []
    for i in np.flatnonzero(floor_units > cap_units):
        problems.append(
            (
                int(i),
                f"quota floor {floor_units[i] * rounding:,.0f} is above the quota cap {cap_units[i] * rounding:,.0f}",
            )
        )
    target = units * rounding
    if not problems:
        if floor_units.sum() > units:
            problems.append(
                (
                    None,
                    f"the quota floors add up to {floor_units.sum() * rounding:,.0f}, more than the target {target:,}",
                )
            )
        if cap_units.sum() < units:
            problems.append(
                (None, f"the quota caps add up to {cap_units.sum() * rounding:,.0f}, less than the target {target:,}")
            )
    return problems


def rep_limits(reps: pd.DataFrame, settings: Quota) -> tuple[np.ndarray, np.ndarray]:
    """Each rep's quota floor and cap: its own column value, else the scenario's per-FTE value x FTE.

    Returns
    -------
    tuple of numpy.ndarray
        Floors (0 where none) and caps (inf where none), in currency units.
    """
    fte = reps["fte"].to_numpy(dtype=float)
    floor = np.full(len(reps), 0.0 if settings.floor is None else settings.floor) * fte
    cap = np.full(len(reps), np.inf if settings.cap is None else settings.cap) * fte
    if "quota_floor" in reps:
        own = reps["quota_floor"].to_numpy(dtype=float)
        floor = np.where(np.isnan(own), floor, own)
    if "quota_cap" in reps:
        own = reps["quota_cap"].to_numpy(dtype=float)
        cap = np.where(np.isnan(own), cap, own)
    return floor, cap


def check_quota_limits(
    reps: pd.DataFrame,
    settings: Quota,
    *,
    reps_file: Path | str | None,
    scenario_file: Path | str | None,
    columns: tuple[str, str] = ("quota_floor", "quota_cap"),
) -> None:
    """Refuse floors and caps that no quotas summing to the target can meet (they do not depend on the plan).

    ``columns`` names the reps table's floor and cap columns as the file spells them, for messages.

    Raises
    ------
    InputError
        Naming the rep's row for a floor above its cap, or the scenario keys when the sums miss the target.
    """
    floors, caps = rep_limits(reps, settings)
    floor_units, cap_units = quota_limit_units(floors, caps, len(reps), settings.rounding)
    problems = quota_limit_problems(floor_units, cap_units, settings.target // settings.rounding, settings.rounding)
    issues = IssueCollector()
    for position, message in problems:
        if position is not None:  # only a rep's own column can put its floor above its cap
            column = columns[0] if "quota_floor" in reps else columns[1]
            issues.add(
                f"rep '{reps['rep_id'].iloc[position]}': {message}",
                file=reps_file,
                column=column,
                hint="lower the rep's floor or raise its cap (quota.floor / quota.cap apply where the cell is blank)",
            )
        else:
            issues.add(
                message,
                file=scenario_file,
                column="quota.floor" if "floors" in message else "quota.cap",
                hint="lower the floors or raise the caps (quota.floor / quota.cap are per full-time rep; the reps "
                "table's quota_floor / quota_cap columns override them), or change quota.target",
            )
    issues.raise_if_any()


@dataclass(frozen=True)
class QuotaResult:
    """Quotas of one plan.

    Attributes
    ----------
    quota
        Quota per rep (reps table order), summing to ``target``.
    share
        Blend share per rep.
    floor, cap
        Effective limits per rep (0 / inf where none).
    settings
        The scenario's quota section.
    """

    quota: np.ndarray
    share: np.ndarray
    floor: np.ndarray
    cap: np.ndarray
    settings: Quota

    @property
    def limit(self) -> np.ndarray:
        """``floor`` or ``cap`` for reps held at a limit, else an empty string."""
        rounding = self.settings.rounding
        floor_units, cap_units = quota_limit_units(self.floor, self.cap, len(self.quota), rounding)
        units = self.quota // rounding
        at_floor = (floor_units > 0) & (units <= floor_units)
        at_cap = units >= cap_units
        return np.where(at_cap, "cap", np.where(at_floor, "floor", ""))

    def summary(self, rep_ids: Sequence[str], fte: np.ndarray) -> dict[str, Any]:
        """What ``summary.json`` reports about quotas."""
        limit = self.limit
        ids = [str(r) for r in rep_ids]
        per_fte = self.quota / np.asarray(fte, dtype=float)
        return {
            "target": self.settings.target,
            "total": int(self.quota.sum()),
            "rounding": self.settings.rounding,
            "weights": dict(self.settings.weights),
            "floor_per_fte": self.settings.floor,
            "cap_per_fte": self.settings.cap,
            "at_floor": [r for r, lim in zip(ids, limit, strict=True) if lim == "floor"],
            "at_cap": [r for r, lim in zip(ids, limit, strict=True) if lim == "cap"],
            "per_fte_min": float(per_fte.min()),
            "per_fte_max": float(per_fte.max()),
            "per_rep": {r: int(q) for r, q in zip(ids, self.quota, strict=True)},
        }


def plan_quotas(loads: Mapping[str, np.ndarray], reps: pd.DataFrame, settings: Quota) -> QuotaResult:
    """Quotas of a plan's territories (see the module docstring).

    Parameters
    ----------
    loads
        Each weighted metric's total per rep (reps table order), e.g. ``Plan.loads(metric)``.
    reps
        The reps table (``fte``, and ``quota_floor`` / ``quota_cap`` when present).
    settings
        The scenario's ``quota`` section.

    Returns
    -------
    QuotaResult
        Quotas summing to ``settings.target``.

    Raises
    ------
    QuotaError
        Floors and caps cannot meet the target (checked when the data are read, so only for hand-built plans).
    """
    share = blend_shares({m: loads[m] for m in settings.weights}, settings.weights)
    if share.sum() == 0:
        logger.warning("no weighted quota metric has a total: quotas follow FTE")
        share = reps["fte"].to_numpy(dtype=float)
        share = share / share.sum()
    floor, cap = rep_limits(reps, settings)
    quota = allocate_quotas(share, settings.target, settings.rounding, floor, cap)
    return QuotaResult(quota=quota, share=share, floor=floor, cap=cap, settings=settings)


def _territories(plan: Any) -> pd.DataFrame:
    """The territories table of a Plan (method), a PlanFolder (attribute) or the table itself."""
    if isinstance(plan, pd.DataFrame):
        return plan
    table = plan.territories
    return table() if callable(table) else table


def compare_quotas(a: Any, b: Any) -> pd.DataFrame:
    """How each rep's quota and expected revenue change from plan ``a`` to plan ``b``.

    Parameters
    ----------
    a, b
        Plans: a :class:`models.plan.Plan`, a :class:`models.plan_io.PlanFolder`
        (:func:`models.plan_io.read_plan`) or a ``territories.csv`` table.

    Returns
    -------
    pandas.DataFrame
        One row per rep of either plan (reps of ``a`` first, in its order, then
        reps only in ``b``): ``rep_id, name, present`` (``both``, ``a only``,
        ``b only``), then for ``quota`` and ``expected_revenue``: ``<m>_a,
        <m>_b, <m>_change`` (b - a) and ``<m>_change_pct`` (change / a in %;
        NaN where ``a`` is 0 or the rep is in one plan only). A plan without
        quotas or forecast gives NaN for those columns.
    """
    left, right = _territories(a), _territories(b)
    keep = ["rep_id", "name", "quota", "expected_revenue"]
    frames = []
    for table, side in ((left, "a"), (right, "b")):
        part = pd.DataFrame({"rep_id": table["rep_id"].astype(str)})
        part[f"name_{side}"] = table["name"].to_numpy() if "name" in table else pd.NA
        for metric in keep[2:]:
            part[f"{metric}_{side}"] = table[metric].to_numpy(dtype=float) if metric in table else np.nan
        frames.append(part)
    merged = frames[0].merge(frames[1], on="rep_id", how="outer", sort=False, indicator=True)
    present = {"both": "both", "left_only": "a only", "right_only": "b only"}
    order = {rep: i for i, rep in enumerate(frames[0]["rep_id"])}
    later = {rep: len(order) + i for i, rep in enumerate(frames[1]["rep_id"])}
    merged["_order"] = merged["rep_id"].map(lambda r: order.get(r, later.get(r)))
    merged = merged.sort_values("_order", kind="stable").reset_index(drop=True)
    out = pd.DataFrame(
        {
            "rep_id": merged["rep_id"],
            "name": merged["name_a"].fillna(merged["name_b"]) if "name_a" in merged else merged["rep_id"],
            "present": merged["_merge"].map(present).astype(str),
        }
    )
    for metric in keep[2:]:
        before, after = merged[f"{metric}_a"], merged[f"{metric}_b"]
        out[f"{metric}_a"] = before
        out[f"{metric}_b"] = after
        out[f"{metric}_change"] = after - before
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = 100.0 * (after - before) / before
        out[f"{metric}_change_pct"] = pct.where(before != 0).round(4)
    return out


__all__ = [
    "QuotaError",
    "QuotaResult",
    "allocate_quotas",
    "blend_shares",
    "check_quota_limits",
    "compare_quotas",
    "plan_quotas",
    "rep_limits",
]
