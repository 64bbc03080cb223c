"""Forecast: each open deal's win probability and expected revenue.

Two models, chosen by ``forecast.model`` in the scenario:

``sales_cycle``
    A deal's win probability grows with the time it has been worked, measured
    against the average length of a sales cycle for its account's segment::

        probability = min(days worked / cycle days, cap)

    where days worked = ``forecast.as_of`` - opened date. A deal opened one
    month ago in a segment whose deals take four months counts at 25 % of its
    amount. The cap (``forecast.cap``, default 0.9) keeps an old deal that has
    outlived the average cycle from counting as certain: it is still open, so
    it has not been won. Each segment's cycle length is, in this order:
    ``forecast.cycle_days_by_segment``, ``forecast.cycle_days``, the mean
    opened-to-closed time of the segment's closed deals (won deals only when
    the table has a won column) when it has at least
    ``forecast.min_closed_deals`` of them, or that mean over all closed deals.
``stage_weights``
    The probability is given per sales stage (``forecast.stage_weights``).

A deal's expected revenue is its amount times its probability, rounded to
whole currency units; closed deals count zero (their revenue is booked, not
forecast). An account's expected revenue is the sum over its open deals, and
becomes the accounts' ``expected_revenue`` column: a metric that can be
balanced (``balance.expected_revenue``) and reported like any other.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.errors import InputError
from models.opportunities import read_opportunities
from models.scenario import Forecast, LoadedScenario

logger = logging.getLogger(__name__)

#: Shortest cycle an estimate may give (deals closed the day they opened would otherwise divide by zero).
MIN_CYCLE_DAYS = 1.0


@dataclass(frozen=True)
class CycleLength:
    """Average sales-cycle length of one segment and where it came from.

    Attributes
    ----------
    days
        Average days from opened to closed.
    source
        ``given`` (scenario), ``segment`` (estimated from the segment's closed
        deals) or ``all`` (estimated from every closed deal).
    deals
        Closed deals the estimate rests on (0 when given).
    """

    days: float
    source: str
    deals: int = 0


def sales_cycle_probability(
    worked_days: np.ndarray | Sequence[float], cycle_days: np.ndarray | Sequence[float] | float, cap: float = 0.9
) -> np.ndarray:
    """Win probability of open deals under the sales-cycle model.

    Parameters
    ----------
    worked_days
        Days since each deal was opened (negative values count as 0).
    cycle_days
        Average cycle length for each deal (or one for all), above zero.
    cap
        Highest probability an open deal can reach.

    Returns
    -------
    numpy.ndarray
        ``min(worked / cycle, cap)`` per deal.

    Examples
    --------
    >>> sales_cycle_probability([30, 120, 300], 120, cap=0.9)
    array([0.25, 0.9 , 0.9 ])
    """
    worked = np.maximum(np.asarray(worked_days, dtype=float), 0.0)
    cycle = np.asarray(cycle_days, dtype=float)
    if np.any(cycle <= 0):
        raise ValueError("cycle lengths must be above zero days")
    return np.minimum(worked / cycle, cap)


def stage_probability(stages: Sequence[str], weights: Mapping[str, float]) -> np.ndarray:
    """Win probability of each deal from its stage label (lower case, as read).

    Raises
    ------
    KeyError
        A stage without a weight (the opportunities reader refuses those with their row first).

    Examples
    --------
    >>> stage_probability(["proposal", "prospecting"], {"prospecting": 0.1, "proposal": 0.5})
    array([0.5, 0.1])
    """
    return np.array([weights[stage] for stage in stages], dtype=float)


def closed_deal_days(opportunities: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Opened-to-closed days of the deals that tell the cycle length, and their row positions.

    Closed deals with both dates count; when the table has a won column, only won ones.
    """
    closed = ~opportunities["is_open"].to_numpy(dtype=bool)
    won = opportunities["won"].fillna(True).to_numpy(dtype=bool)  # NA: no won column, every closed deal counts
    rows = np.flatnonzero(closed & won & opportunities["opened"].notna().to_numpy())
    days = (opportunities["closed"].iloc[rows] - opportunities["opened"].iloc[rows]).dt.days.to_numpy(dtype=float)
    return days, rows


def cycle_lengths(
    opportunities: pd.DataFrame, segments: Sequence[str], settings: Forecast, scenario_file: Path | None = None
) -> dict[str, CycleLength]:
    """Average cycle length of every segment that has open deals.

    Parameters
    ----------
    opportunities
        Normalised deals with a ``segment`` column (their account's segment).
    segments
        Segments needing a length.
    settings
        The scenario's forecast section.
    scenario_file
        For messages.

    Returns
    -------
    dict
        Segment -> :class:`CycleLength`, given lengths first, then estimates.

    Raises
    ------
    InputError
        A segment with neither a given length nor enough closed deals to estimate one.
    """
    days, rows = closed_deal_days(opportunities)
    deal_segment = opportunities["segment"].to_numpy(dtype=object)[rows]
    minimum = settings.min_closed_deals
    overall = CycleLength(max(float(days.mean()), MIN_CYCLE_DAYS), "all", len(days)) if len(days) >= minimum else None
    given = settings.cycle_days_by_segment or {}
    out: dict[str, CycleLength] = {}
    missing: list[str] = []
    for segment in dict.fromkeys(segments):
        own = days[deal_segment == segment]
        if segment in given:
            out[segment] = CycleLength(given[segment], "given")
        elif settings.cycle_days is not None:
            out[segment] = CycleLength(settings.cycle_days, "given")
        elif len(own) >= minimum:
            out[segment] = CycleLength(max(float(own.mean()), MIN_CYCLE_DAYS), "segment", len(own))
        elif overall is not None:
            out[segment] = overall
        else:
            missing.append(segment)
    if missing:
        labels = ", ".join(f"'{s}'" for s in missing)
        raise InputError.single(
            f"no sales-cycle length for segment(s) {labels}: not given, and only {len(days)} closed deal(s) with "
            f"opened and closed dates to estimate one (forecast.min_closed_deals: {minimum})",
            file=scenario_file,
            column="forecast.cycle_days",
            hint="set forecast.cycle_days (or cycle_days_by_segment), or add closed deals with their opened and "
            "closed dates to the opportunities table (map columns.opportunities.closed)",
        )
    for segment, cycle in out.items():
        logger.info(
            "sales cycle of segment %r: %.1f days (%s, %d deals)", segment, cycle.days, cycle.source, cycle.deals
        )
    return out


@dataclass(frozen=True)
class ForecastResult:
    """Deals with their probability and expected revenue, and how they were computed.

    Attributes
    ----------
    opportunities
        The normalised deals (:mod:`models.opportunities`) plus ``segment``,
        ``worked_days``, ``cycle_days`` (sales-cycle model), ``probability``
        and ``expected_revenue`` (0 for closed deals).
    model
        ``sales_cycle`` or ``stage_weights``.
    as_of
        The date the forecast was made.
    cap
        Probability cap of the sales-cycle model.
    cycles
        Cycle length per segment (sales-cycle model).
    """

    opportunities: pd.DataFrame
    model: str
    as_of: datetime.date
    cap: float | None = None
    cycles: dict[str, CycleLength] = field(default_factory=dict)

    def by_account(self, account_ids: pd.Series | Sequence[str]) -> np.ndarray:
        """Expected revenue of each account (sum over its open deals), aligned with ``account_ids``."""
        totals = self.opportunities.groupby("account_id", observed=True)["expected_revenue"].sum()
        return pd.Series(list(account_ids), dtype="string").map(totals).fillna(0.0).to_numpy(dtype=float)

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` reports about the forecast."""
        opps = self.opportunities
        open_ = opps[opps["is_open"]]
        return {
            "model": self.model,
            "as_of": self.as_of.isoformat(),
            "opportunities": len(opps),
            "open_opportunities": len(open_),
            "open_pipeline": float(open_["amount"].sum()),
            "expected_revenue": float(open_["expected_revenue"].sum()),
            "cap": self.cap,
            "cycle_days": {
                segment: {"days": round(c.days, 3), "source": c.source, "closed_deals": c.deals}
                for segment, c in self.cycles.items()
            },
        }


def forecast_opportunities(
    opportunities: pd.DataFrame,
    segment_of_account: Mapping[str, str],
    settings: Forecast,
    as_of: datetime.date,
    scenario_file: Path | None = None,
) -> ForecastResult:
    """Win probability and expected revenue of every deal.

    Parameters
    ----------
    opportunities
        Normalised deals (:func:`models.opportunities.read_opportunities`).
    segment_of_account
        Account id -> segment label (for the sales-cycle length).
    settings
        The scenario's forecast section.
    as_of
        The date the forecast is made.
    scenario_file
        For messages.

    Returns
    -------
    ForecastResult
    """
    opps = opportunities.copy()
    opps["segment"] = opps["account_id"].map(dict(segment_of_account)).fillna("").astype(str)
    opps["worked_days"] = (pd.Timestamp(as_of) - opps["opened"]).dt.days.astype(float)
    is_open = opps["is_open"].to_numpy(dtype=bool)
    probability = np.zeros(len(opps))
    cycles: dict[str, CycleLength] = {}
    opps["cycle_days"] = np.nan
    if settings.model == "sales_cycle":
        cycles = cycle_lengths(opps, list(opps["segment"][is_open]), settings, scenario_file)
        cycle = opps["segment"].map({s: c.days for s, c in cycles.items()}).to_numpy(dtype=float)
        opps["cycle_days"] = cycle
        probability[is_open] = sales_cycle_probability(opps["worked_days"].to_numpy()[is_open], cycle[is_open],
                                                       settings.cap)  # fmt: skip
    else:
        probability[is_open] = stage_probability(list(opps["stage"][is_open]), settings.stage_weights or {})
    opps["probability"] = probability
    opps["expected_revenue"] = np.round(opps["amount"].to_numpy(dtype=float) * probability)
    logger.info(
        "forecast (%s): %d open deals, pipeline %.0f, expected revenue %.0f",
        settings.model,
        int(is_open.sum()),
        float(opps["amount"][is_open].sum()),
        float(opps["expected_revenue"].sum()),
    )
    return ForecastResult(
        opportunities=opps,
        model=settings.model,
        as_of=as_of,
        cap=settings.cap if settings.model == "sales_cycle" else None,
        cycles=cycles,
    )


def forecast_dataset(loaded: LoadedScenario, accounts: pd.DataFrame, set_aside_ids: set[str]) -> ForecastResult:
    """Read a scenario's opportunities table and forecast it.

    Parameters
    ----------
    loaded
        The scenario (``data.opportunities`` must be set).
    accounts
        The validated accounts (``account_id``, ``segment``).
    set_aside_ids
        Accounts set aside as unusable; their deals are left out.

    Raises
    ------
    InputError
        Bad opportunities rows, or a segment without a cycle length.
    """
    scenario = loaded.scenario
    if scenario.data.opportunities is None:
        raise ValueError("the scenario has no opportunities table")
    settings = scenario.forecast_settings
    as_of = settings.as_of or datetime.date.today()
    opportunities = read_opportunities(
        loaded.data_path(scenario.data.opportunities),
        scenario,
        set(accounts["account_id"]),
        as_of=as_of,
        set_aside_ids=set_aside_ids,
        sheet=scenario.data.opportunities_sheet,
    )
    segments = dict(zip(accounts["account_id"], accounts["segment"], strict=True))
    return forecast_opportunities(opportunities, segments, settings, as_of, loaded.path)
