"""Realistic synthetic instances: accounts clustered around real Midwest metros.

The generator makes the shipped example (2,000 accounts, 12 reps) and the
benchmark instances (10k to 1M accounts) from one recipe, deterministic for a
seed:

* accounts cluster around 18 real metro areas of the US Midwest in proportion
  to their population (coordinates are public city centres); points that
  would fall into Lake Michigan or Lake Erie are reflected back onto land;
* segments: 65 % SMB, 25 % mid, 10 % enterprise; revenue potential is
  log-normal per segment (long-tailed: a few accounts hold much of it);
* reps live in the metros, about a third focused on enterprise, the rest on
  SMB; one rep in twelve works half time;
* the current owner (the plan in force today) is the nearest rep of the
  account's segment, with 15 % drift to another rep, so today's plan is
  plausible but unbalanced; a few strategic enterprise accounts are locked and
  about 3 % of accounts belong to a parent account nearby.

Columns use CRM-export names (``AccountId``, ``BillingLatitude``, ``OwnerId``
...) so the example shows the scenario's column mapping at work.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.geo import distance_matrix_km

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metro:
    """A metro area: centre, population in millions, and optional shoreline."""

    name: str
    latitude: float
    longitude: float
    population_m: float
    max_longitude: float | None = None  # lake to the east
    max_latitude: float | None = None  # lake to the north


METROS: tuple[Metro, ...] = (
    Metro("Chicago", 41.8781, -87.6298, 9.4, max_longitude=-87.53),
    Metro("Detroit", 42.3314, -83.0458, 4.3, max_longitude=-82.95),
    Metro("Minneapolis", 44.9778, -93.2650, 3.7),
    Metro("St. Louis", 38.6270, -90.1994, 2.8),
    Metro("Cincinnati", 39.1031, -84.5120, 2.3),
    Metro("Kansas City", 39.0997, -94.5786, 2.2),
    Metro("Columbus", 39.9612, -82.9988, 2.1),
    Metro("Indianapolis", 39.7684, -86.1581, 2.1),
    Metro("Cleveland", 41.4993, -81.6944, 2.1, max_latitude=41.50),
    Metro("Milwaukee", 43.0389, -87.9065, 1.6, max_longitude=-87.88),
    Metro("Louisville", 38.2527, -85.7585, 1.3),
    Metro("Grand Rapids", 42.9634, -85.6681, 1.1),
    Metro("Omaha", 41.2565, -95.9345, 1.0),
    Metro("Des Moines", 41.5868, -93.6250, 0.7),
    Metro("Madison", 43.0731, -89.4012, 0.7),
    Metro("Toledo", 41.6528, -83.5379, 0.6, max_latitude=41.70),
    Metro("Fort Wayne", 41.0793, -85.1394, 0.4),
    Metro("Peoria", 40.6936, -89.5890, 0.4),
)

SEGMENTS = ("SMB", "Mid", "Enterprise")
SEGMENT_SHARE = (0.65, 0.25, 0.10)
#: Log-normal potential per segment: (median in $, sigma).
POTENTIAL = {"SMB": (15_000.0, 0.9), "Mid": (90_000.0, 0.8), "Enterprise": (600_000.0, 1.0)}
DRIFT = 0.15
LOCKED_ENTERPRISE_SHARE = 0.10
CHILD_SHARE = 0.03

_PREFIX = (
    "Lakeside",
    "Prairie",
    "Heartland",
    "Riverbend",
    "Northstar",
    "Summit",
    "Great Lakes",
    "Keystone",
    "Maple",
    "Cedar",
    "Ironwood",
    "Bluestem",
    "Harbor",
    "Union",
    "Pioneer",
    "Crossroads",
    "Frontier",
    "Liberty",
    "Meridian",
    "Oakridge",
    "Silver Creek",
    "Twin Rivers",
    "Westfield",
    "Eastgate",
)
_TRADE = (
    "Dental",
    "Logistics",
    "Foods",
    "Manufacturing",
    "Health",
    "Auto Parts",
    "Insurance",
    "Builders",
    "Plastics",
    "Software",
    "Farms",
    "Legal",
    "Printing",
    "Energy",
    "Hospitality",
    "Steel",
    "Pharmacy",
    "Freight",
    "Retail",
    "Engineering",
    "Credit Union",
    "Veterinary",
    "Electric",
    "Packaging",
)
_SUFFIX = ("Inc", "LLC", "Group", "Co", "Partners", "Corp", "Holdings", "Services")
_FIRST = (
    "Avery",
    "Jordan",
    "Morgan",
    "Riley",
    "Casey",
    "Taylor",
    "Jamie",
    "Quinn",
    "Drew",
    "Reese",
    "Alex",
    "Sam",
    "Dana",
    "Robin",
    "Kendall",
    "Emerson",
    "Harper",
    "Rowan",
    "Skyler",
    "Parker",
)
_LAST = (
    "Nguyen",
    "Olsen",
    "Kowalski",
    "Garcia",
    "Schmidt",
    "Johnson",
    "Patel",
    "Murphy",
    "Novak",
    "Larsen",
    "Okafor",
    "Rivera",
    "Becker",
    "Hughes",
    "Lindqvist",
    "Moreau",
    "Brennan",
    "Watts",
    "Yamada",
    "Fischer",
)


def _allocate(weights: np.ndarray, n: int) -> np.ndarray:
    """Largest-remainder allocation of ``n`` items proportional to ``weights``."""
    exact = weights / weights.sum() * n
    counts = np.floor(exact).astype(int)
    remainder = n - counts.sum()
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def generate_reps(n_reps: int, rng: np.random.Generator) -> pd.DataFrame:
    """Reps living in the metros, about a third enterprise-focused.

    Parameters
    ----------
    n_reps
        How many reps.
    rng
        Random generator (explicit, for determinism).

    Returns
    -------
    pandas.DataFrame
        ``RepId, RepName, HomeLatitude, HomeLongitude, Focus, FTE, Metro``.
    """
    population = np.array([m.population_m for m in METROS])
    n_enterprise = max(1, round(n_reps / 3))
    n_smb = n_reps - n_enterprise
    rows = []
    # enterprise reps go to the largest metros (enterprise accounts concentrate there)
    top = np.argsort(-population, kind="stable")[: max(4, min(len(METROS), n_enterprise))]
    for focus, count, pool in (
        ("Enterprise", n_enterprise, top),
        ("SMB", n_smb, np.arange(len(METROS))),
    ):
        per_metro = _allocate(population[pool] ** 0.8, count)
        for metro_index, k in zip(pool, per_metro, strict=True):
            metro = METROS[metro_index]
            for j in range(k):
                jitter = rng.normal(0.0, 0.06, size=2) if j else np.zeros(2)
                rows.append((focus, metro.name, metro.latitude + jitter[0], metro.longitude + jitter[1]))
    frame = pd.DataFrame(rows, columns=["Focus", "Metro", "HomeLatitude", "HomeLongitude"])
    frame.insert(0, "RepId", [f"R{i + 1:03d}" for i in range(len(frame))])
    names = [f"{_FIRST[i % len(_FIRST)]} {_LAST[(i * 7 + 3) % len(_LAST)]}" for i in range(len(frame))]
    frame.insert(1, "RepName", names)
    fte = np.ones(len(frame))
    smb_rows = np.flatnonzero(frame["Focus"].to_numpy() == "SMB")
    part_time = smb_rows[-1::-12][: max(1, len(frame) // 12)] if len(smb_rows) else smb_rows
    fte[part_time] = 0.5
    frame["FTE"] = fte
    frame["HomeLatitude"] = frame["HomeLatitude"].round(5)
    frame["HomeLongitude"] = frame["HomeLongitude"].round(5)
    return frame[["RepId", "RepName", "HomeLatitude", "HomeLongitude", "Focus", "FTE", "Metro"]]


def generate_accounts(n_accounts: int, reps: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Accounts around the metros, with segments, potential, owners, locks and parents.

    Parameters
    ----------
    n_accounts
        How many accounts.
    reps
        Reps from :func:`generate_reps` (to draw today's owners).
    rng
        Random generator.

    Returns
    -------
    pandas.DataFrame
        ``AccountId, AccountName, BillingLatitude, BillingLongitude, Segment,
        AnnualRevenuePotential, OwnerId, IsLocked, ParentId, Metro``.
    """
    population = np.array([m.population_m for m in METROS])
    metro = rng.choice(len(METROS), size=n_accounts, p=population / population.sum())
    centre_lat = np.array([m.latitude for m in METROS])[metro]
    centre_lon = np.array([m.longitude for m in METROS])[metro]
    spread = (0.10 + 0.07 * np.sqrt(population))[metro]
    rural = rng.random(n_accounts) < 0.12
    spread = np.where(rural, spread * 3.5, spread)
    lat = centre_lat + rng.normal(0.0, 1.0, n_accounts) * spread
    lon = centre_lon + rng.normal(0.0, 1.0, n_accounts) * spread * 1.3
    max_lon = np.array([m.max_longitude if m.max_longitude is not None else np.inf for m in METROS])[metro]
    max_lat = np.array([m.max_latitude if m.max_latitude is not None else np.inf for m in METROS])[metro]
    lon = np.where(lon > max_lon, 2 * max_lon - lon, lon)  # reflect out of the lake
    lat = np.where(lat > max_lat, 2 * max_lat - lat, lat)

    segment = np.array(SEGMENTS)[rng.choice(3, size=n_accounts, p=SEGMENT_SHARE)]
    potential = np.empty(n_accounts)
    for label, (median, sigma) in POTENTIAL.items():
        mask = segment == label
        potential[mask] = median * np.exp(rng.normal(0.0, sigma, mask.sum()))
    potential = np.maximum(np.round(potential), 1000.0)

    # today's owner: nearest rep of the account's focus, with drift
    rep_focus = reps["Focus"].to_numpy()
    wants = np.where(segment == "Enterprise", "Enterprise", np.where(segment == "SMB", "SMB", ""))
    nearest = np.empty(n_accounts, dtype=np.int64)
    second = np.empty(n_accounts, dtype=np.int64)
    for start in range(0, n_accounts, 20_000):  # chunks bound the memory of the distance matrix
        stop = min(start + 20_000, n_accounts)
        dist = distance_matrix_km(
            lat[start:stop], lon[start:stop], reps["HomeLatitude"].to_numpy(), reps["HomeLongitude"].to_numpy()
        )
        misfit = (wants[start:stop, None] != "") & (rep_focus[None, :] != wants[start:stop, None])
        cost = dist + np.where(misfit, 1e6, 0.0)
        order = np.argsort(cost, axis=1)[:, :2] if len(reps) > 1 else np.zeros((stop - start, 2), dtype=np.int64)
        nearest[start:stop], second[start:stop] = order[:, 0], order[:, 1]
    drift = rng.random(n_accounts) < DRIFT
    owner = np.where(drift, second, nearest)

    ids = np.array([f"A{i + 1:07d}" for i in range(n_accounts)], dtype=object)
    names = (
        pd.Series(np.array(_PREFIX)[rng.integers(0, len(_PREFIX), n_accounts)])
        + " "
        + pd.Series(np.array(_TRADE)[rng.integers(0, len(_TRADE), n_accounts)])
        + " "
        + pd.Series(np.array(_SUFFIX)[rng.integers(0, len(_SUFFIX), n_accounts)])
    )
    enterprise = np.flatnonzero(segment == "Enterprise")
    locked = np.zeros(n_accounts, dtype=bool)
    locked[rng.choice(enterprise, size=int(len(enterprise) * LOCKED_ENTERPRISE_SHARE), replace=False)] = True

    # parents: a few non-enterprise accounts become subsidiaries of an enterprise account in their metro
    parent = np.full(n_accounts, "", dtype=object)
    candidates = np.flatnonzero((segment != "Enterprise") & ~locked)
    children = rng.choice(candidates, size=min(len(candidates), int(n_accounts * CHILD_SHARE)), replace=False)
    heads_by_metro = {m: enterprise[metro[enterprise] == m] for m in range(len(METROS))}
    for child in children:
        same_metro = heads_by_metro[int(metro[child])]
        if len(same_metro):
            head = same_metro[rng.integers(0, len(same_metro))]
            parent[child] = ids[head]
            owner[child] = owner[head]  # a family is owned as one today
    return pd.DataFrame(
        {
            "AccountId": ids,
            "AccountName": names.to_numpy(),
            "BillingLatitude": np.round(lat, 5),
            "BillingLongitude": np.round(lon, 5),
            "Segment": segment,
            "AnnualRevenuePotential": potential.astype(np.int64),
            "OwnerId": reps["RepId"].to_numpy()[owner],
            "IsLocked": np.where(locked, "true", "false"),
            "ParentId": parent,
            "Metro": np.array([m.name for m in METROS])[metro],
        }
    )


#: Generated deals per segment: mean sales cycle (days), open deals and closed deals per account (Poisson means).
OPPORTUNITY_PROFILE = {"SMB": (45.0, 0.35, 0.8), "Mid": (90.0, 0.7, 1.0), "Enterprise": (180.0, 1.2, 1.3)}
WIN_RATE = 0.35
OPEN_STAGES = ("Prospecting", "Qualification", "Proposal", "Negotiation")


def generate_opportunities(
    accounts: pd.DataFrame, rng: np.random.Generator, as_of: datetime.date, history_days: int = 730
) -> pd.DataFrame:
    """Deals for generated accounts: today's open pipeline and the closed deals of the past years.

    Each account gets a Poisson number of open and of closed deals by segment
    (:data:`OPPORTUNITY_PROFILE`); amounts are a log-normal fraction (median a
    quarter) of the account's potential, rounded to 100. Closed deals close on a
    uniform day of the last ``history_days`` after a gamma-distributed cycle
    whose mean is the segment's, and are won with probability
    :data:`WIN_RATE`; open deals were opened up to one and a half cycles ago,
    and their stage follows how far into the cycle they are.

    Parameters
    ----------
    accounts
        Accounts from :func:`generate_accounts` (``AccountId, Segment, AnnualRevenuePotential``).
    rng
        Random generator (explicit, for determinism).
    as_of
        The day the pipeline is exported: no deal is opened or closed after it.
    history_days
        How far back closed deals go.

    Returns
    -------
    pandas.DataFrame
        ``OpportunityId, AccountId, Amount, CreatedDate, StageName,
        ExpectedCloseDate, ClosedDate, IsWon`` (dates as YYYY-MM-DD, blank
        ``ClosedDate`` while open), ordered by account and opening date.
    """
    segment = accounts["Segment"].to_numpy(dtype=object)
    potential = accounts["AnnualRevenuePotential"].to_numpy(dtype=float)
    cycle = np.array([OPPORTUNITY_PROFILE[s][0] for s in segment])
    n_open = rng.poisson([OPPORTUNITY_PROFILE[s][1] for s in segment])
    n_closed = rng.poisson([OPPORTUNITY_PROFILE[s][2] for s in segment])
    frames = []
    for counts, is_open in ((n_open, True), (n_closed, False)):
        owner = np.repeat(np.arange(len(accounts)), counts)
        length = cycle[owner]
        if is_open:
            age = np.floor(rng.uniform(0.0, 1.5, len(owner)) * length)
            opened_ago, closed_ago = age, np.full(len(owner), np.nan)
            progress = age / length
            stage = np.array(OPEN_STAGES)[np.minimum((progress * len(OPEN_STAGES)).astype(int), len(OPEN_STAGES) - 1)]
            won = np.full(len(owner), "", dtype=object)
        else:
            duration = np.round(rng.gamma(4.0, length / 4.0))
            closed_ago = np.floor(rng.uniform(0.0, history_days, len(owner)))
            opened_ago = closed_ago + duration
            is_won = rng.random(len(owner)) < WIN_RATE
            stage = np.where(is_won, "Closed Won", "Closed Lost")
            won = np.where(is_won, "true", "false").astype(object)
        amount = np.maximum(np.round(potential[owner] * 0.25 * np.exp(rng.normal(0.0, 0.6, len(owner))), -2), 100.0)
        expected_after = np.round(length * rng.uniform(0.8, 1.2, len(owner)))
        frames.append(
            pd.DataFrame(
                {
                    "account": owner,
                    "AccountId": accounts["AccountId"].to_numpy()[owner],
                    "Amount": amount.astype(np.int64),
                    "opened_ago": opened_ago,
                    "StageName": stage,
                    "expected_ago": opened_ago - expected_after,
                    "closed_ago": closed_ago,
                    "IsWon": won,
                }
            )
        )
    deals = pd.concat(frames, ignore_index=True)
    deals = deals.sort_values(["account", "opened_ago"], ascending=[True, False], kind="stable").reset_index(drop=True)
    day = pd.Timestamp(as_of)

    def dates(days_ago: pd.Series) -> pd.Series:
        return (day - pd.to_timedelta(days_ago, unit="D")).dt.strftime("%Y-%m-%d").fillna("")

    return pd.DataFrame(
        {
            "OpportunityId": [f"O{i + 1:07d}" for i in range(len(deals))],
            "AccountId": deals["AccountId"],
            "Amount": deals["Amount"],
            "CreatedDate": dates(deals["opened_ago"]),
            "StageName": deals["StageName"],
            "ExpectedCloseDate": dates(deals["expected_ago"]),
            "ClosedDate": dates(deals["closed_ago"]),
            "IsWon": deals["IsWon"],
        }
    )


SCENARIO_TEMPLATE = """\
# Territory scenario: generated by `territory generate` ({n_accounts} accounts, {n_reps} reps, seed {seed}).
# Every key is described in scenarios/scenario.schema.json.
name: {name}
description: >-
  Annual territory design for the Midwest sales team: SMB and enterprise reps,
  one of them half time, accounts clustered around the region's metros.

data:                      # paths are relative to this file
  accounts: {accounts_file}
  reps: {reps_file}

columns:                   # the CRM export's column names -> the engine's fields
  accounts:
    id: AccountId
    name: AccountName
    latitude: BillingLatitude
    longitude: BillingLongitude
    segment: Segment
    potential: AnnualRevenuePotential
    current_rep: OwnerId   # the plan in force today (the baseline)
    locked: IsLocked       # true: keep with the current rep
    parent_id: ParentId    # a family moves as one, with its top parent
  reps:
    id: RepId
    name: RepName
    latitude: HomeLatitude
    longitude: HomeLongitude
    segment: Focus         # smb, enterprise or any
    fte: FTE

workload:                  # hours per year per account, by segment
  by_segment: {{enterprise: 32, mid: 16, smb: 6}}

balance:                   # each rep within tolerance of its FTE-scaled target
  accounts:  {{tolerance_pct: 10, within: segment}}   # compared with reps of the same focus
  potential: {{tolerance_pct: 5, within: segment}}
  workload:  {{tolerance_pct: 5}}                     # hours are comparable across all reps

segment_rules:
  enterprise: {{reps: [enterprise], mode: hard}}       # only enterprise reps
  mid:        {{reps: [enterprise, smb], mode: soft}}  # anyone
  smb:        {{reps: [smb], mode: soft, penalty_km: 150}}

objective:
  compactness: 1.0         # workload-weighted km from the rep's home base
  preference: 1.0          # weight of soft segment penalties

solver:
  time_limit_s: {time_limit}
  relative_gap: 0.001      # stop once the plan is proven within 0.1 % of optimal
  seed: 0
  workers: 0               # 0: every core
"""


def write_instance(
    out_dir: Path | str,
    n_accounts: int,
    n_reps: int,
    seed: int = 7,
    *,
    file_format: str = "csv",
    time_limit_s: float = 30.0,
    name: str | None = None,
) -> Path:
    """Generate an instance and write its tables and scenario file.

    Parameters
    ----------
    out_dir
        Folder to write ``accounts.<fmt>``, ``reps.<fmt>`` and ``scenario.yaml`` into.
    n_accounts, n_reps
        Size of the instance.
    seed
        Seed of the random generator.
    file_format
        ``csv`` or ``parquet``.
    time_limit_s
        Solver time limit written into the scenario.
    name
        Scenario name (default: a description of the size).

    Returns
    -------
    pathlib.Path
        The scenario file.
    """
    if n_accounts < 1 or n_reps < 1:
        raise ValueError("an instance needs at least one account and one rep")
    if file_format not in {"csv", "parquet"}:
        raise ValueError("file_format must be 'csv' or 'parquet'")
    rng = np.random.default_rng(seed)
    reps = generate_reps(n_reps, rng)
    accounts = generate_accounts(n_accounts, reps, rng)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accounts_file, reps_file = f"accounts.{file_format}", f"reps.{file_format}"
    if file_format == "csv":
        accounts.to_csv(out / accounts_file, index=False)
        reps.to_csv(out / reps_file, index=False)
    else:
        accounts.to_parquet(out / accounts_file, index=False)
        reps.to_parquet(out / reps_file, index=False)
    scenario = out / "scenario.yaml"
    scenario.write_text(
        SCENARIO_TEMPLATE.format(
            n_accounts=n_accounts,
            n_reps=n_reps,
            seed=seed,
            name=name or f"Midwest {n_accounts:,} accounts / {n_reps} reps",
            accounts_file=accounts_file,
            reps_file=reps_file,
            time_limit=f"{time_limit_s:g}",
        )
    )
    logger.info("wrote %d accounts and %d reps to %s", n_accounts, len(reps), out)
    return scenario
