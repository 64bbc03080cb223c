"""The solver's view of a scenario: integer-scaled arrays, no files.

:func:`build_problem` turns a validated :class:`~models.dataset.Dataset` into a
:class:`Problem`:

* **units**: account families (an account and its descendants via
  ``parent_id``) move as one; a unit's metrics are its members' sums.
* **pairs**: the unit-rep assignments allowed (hard segment rules and locks
  remove pairs; ``solver.candidate_reps`` keeps only the nearest reps, and
  above :data:`AUTO_CANDIDATE_PAIRS` pairs a default limit applies),
  each with a cost = compactness + segment penalty, in workload-hour x km.
* **metrics**: values scaled once to integers. Scaling is exact (a power of
  ten) whenever the data have few decimals, else fine-grained with bounds
  pulled in by a safety margin.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from models.balance import balance_groups
from models.dataset import Dataset, metric_values
from models.geo import distance_matrix_km, haversine_km
from models.scenario import ANY_SEGMENT, Scenario
from optimizer.graph import Adjacency
from optimizer.sparse_lp import LpStatus, SparseLp

logger = logging.getLogger(__name__)

#: Largest integer metric total we let CP-SAT see (keeps products in int64).
MAX_SCALED_TOTAL = 10**10
#: Scaled cost of the most expensive pair.
COST_RESOLUTION = 10**6
#: Share of a target by which the bounds of inexactly scaled metrics are pulled in (absorbs their rounding).
INEXACT_MARGIN = Fraction(1, 10**4)
#: Account-rep distances computed at once while building pairs (bounds memory for large inputs).
CHUNK_CELLS = 4_000_000
#: Unit-rep pairs above which a scenario without ``solver.candidate_reps`` offers each unit only its nearest reps.
AUTO_CANDIDATE_PAIRS = 20_000_000
#: Nearest eligible reps offered to each unit above :data:`AUTO_CANDIDATE_PAIRS` (plus its current rep).
AUTO_CANDIDATE_REPS = 20
#: Side, in degrees, of the grid cells of the coarse plan whose reps the automatic limit offers too.
COARSE_CELL_DEG = 0.5
#: Most cells of the coarse plan (the side doubles until they fit): its LP stays a few seconds.
COARSE_MAX_CELLS = 2500
#: Shares of the within-segment tolerances the coarse plan's LP tries in turn: the exact rules first, then
#: looser ones that still offer far reps where the exact rules leave the cells' LP without a solution.
COARSE_TOLERANCE_FACTORS = (1.0, 2.0)
#: The coarse plan's LP starts from every cell's this many cheapest reps (then takes in those its duals price).
COARSE_FIRST_REPS = 60
#: Quantile bins per ratio axis of a unit's metric profile (:func:`metric_profile`), at most ``PROFILE_CLASSES``.
PROFILE_BINS = 3
#: Most profile classes: with more metrics, fewer bins per axis.
PROFILE_CLASSES = 9


@dataclass(frozen=True)
class MetricData:
    """One balanced metric, scaled.

    Attributes
    ----------
    name
        Metric name.
    values
        Integer value of every unit (``real * scale``, rounded).
    real
        Real value of every unit.
    scale
        Integer units per real unit.
    exact
        Whether ``values == real * scale`` exactly.
    tolerance
        Allowed relative deviation (0.05 for 5 %).
    groups
        Balance group of every rep (one group: targets are fixed numbers).
    lo, hi
        Integer bounds of every rep's load when there is one group;
        ``None`` otherwise (the solver then bounds loads against their group's total).
    """

    name: str
    values: np.ndarray
    real: np.ndarray
    scale: float
    exact: bool
    tolerance: float
    tolerance_exact: Fraction
    groups: np.ndarray
    lo: np.ndarray | None
    hi: np.ndarray | None

    @property
    def grouped(self) -> bool:
        """Whether targets depend on which accounts each group receives."""
        return bool(self.groups.max() > 0)


def _weight_at(sorted_keys: np.ndarray, weights: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Weight of each of ``keys`` in a sorted key table, 0 where the table lacks it."""
    out = np.zeros(len(keys), dtype=weights.dtype)
    if len(sorted_keys):
        pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
        hit = sorted_keys[pos] == keys
        out[hit] = weights[pos[hit]]
    return out


@dataclass(frozen=True)
class MoveBudget:
    """A hard limit on what may leave the baseline's reps who stay (``continuity.max_moved_*``).

    Attributes
    ----------
    name
        ``accounts`` or ``potential``.
    stay_key
        Sorted keys ``unit * num_reps + rep`` of the baseline: which rep each unit's accounts are with today.
    stay_weight
        Integer weight (accounts, or scaled potential) of the unit's accounts with that rep.
    unit_total
        Integer weight of every unit's accounts that have a baseline rep who stays.
    limit
        Largest integer weight that may move.
    scale
        Integer units per real unit.
    num_reps
        Reps of the problem (decodes ``stay_key``).
    reference
        What a percentage budget is a percentage of (the total potential), in real units.
    """

    name: str
    stay_key: np.ndarray
    stay_weight: np.ndarray
    unit_total: np.ndarray
    limit: int
    scale: float
    num_reps: int
    reference: float = 0.0

    def moved(self, pair_unit: np.ndarray, pair_rep: np.ndarray) -> np.ndarray:
        """Integer weight that moves when each unit of ``pair_unit`` goes to the rep of ``pair_rep``."""
        keys = np.asarray(pair_unit, dtype=np.int64) * self.num_reps + np.asarray(pair_rep, dtype=np.int64)
        return self.unit_total[pair_unit] - _weight_at(self.stay_key, self.stay_weight, keys)

    def moved_by(self, unit_rep: np.ndarray) -> int:
        """Integer weight an assignment moves."""
        return int(self.moved(np.arange(len(unit_rep)), unit_rep).sum())

    @property
    def real_limit(self) -> float:
        """The limit in real units (accounts, or potential)."""
        return self.limit / self.scale


@dataclass(frozen=True)
class Problem:
    """Integer data of one territory design problem.

    Attributes
    ----------
    unit_ids
        Id of every unit (the family's top account id).
    unit_of_account
        Unit row of every account row of the dataset.
    rep_ids, fte, fte_exact
        Reps, in dataset order, and their capacities.
    metrics
        The balanced metrics.
    pair_unit, pair_rep
        Allowed unit-rep pairs, sorted by unit then rep.
    pair_cost
        Integer objective coefficient of each pair (``real * cost_scale``).
    pair_compactness, pair_penalty
        Real workload-hour x km terms of each pair (before objective weights).
    cost_scale
        Integer objective units per workload-hour x km.
    unit_class, class_allowed, class_names
        Hard segment class of every unit (the hard-ruled segments among its
        accounts), which reps each class may go to, and a readable name.
    fixed_rep
        Rep row a unit is locked to, or -1.
    unit_edges, unit_key, contiguous
        Unit adjacency (pairs of unit rows), key-account units (exempt from
        contiguity), and whether every territory must be connected.
    unit_layer, layer_names
        Team layer of every unit (``units.team_layers``; -1 for key-account units) and the layers' names:
        contiguity holds for each territory on each layer apart (edges never join two layers). ``None``: one
        layer.
    centre_distance, unit_weight
        For compactness measured from each territory's centre: unit-to-unit
        distances in km and each unit's weight (workload hours); ``None`` when
        compactness is measured from home bases (``pair_compactness``).
    current_rep
        Rep row a unit is with today (its top account's current rep), or -1.
    pair_continuity
        Real cost of the accounts each pair moves away from their baseline rep
        (``continuity.move_penalty_km``, weighted by potential); ``None``: moves are free.
    budgets
        Hard limits on moves (``continuity.max_moved_accounts`` / ``max_moved_potential_pct``).
    unit_latitude, unit_longitude
        A point of every unit (its accounts' mean position, or the unit polygon's point), for clustering.
    diameter_distance
        Unit-to-unit distances in km when compactness is the largest territory diameter
        (``compactness_measure: diameter``, solved by :mod:`optimizer.diameter`), else ``None``.
    """

    unit_ids: np.ndarray
    unit_of_account: np.ndarray
    rep_ids: np.ndarray
    fte: np.ndarray
    fte_exact: tuple[Fraction, ...]
    metrics: tuple[MetricData, ...]
    pair_unit: np.ndarray
    pair_rep: np.ndarray
    pair_cost: np.ndarray
    pair_compactness: np.ndarray
    pair_penalty: np.ndarray
    cost_scale: float
    unit_class: np.ndarray
    class_allowed: np.ndarray
    class_names: tuple[str, ...]
    fixed_rep: np.ndarray
    current_rep: np.ndarray
    compactness_weight: float
    preference_weight: float
    unit_edges: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    unit_key: np.ndarray | None = None
    contiguous: bool = False
    centre_distance: np.ndarray | None = None
    unit_weight: np.ndarray | None = None
    pair_continuity: np.ndarray | None = None
    budgets: tuple[MoveBudget, ...] = ()
    unit_latitude: np.ndarray | None = None
    unit_longitude: np.ndarray | None = None
    diameter_distance: np.ndarray | None = None
    unit_layer: np.ndarray | None = None
    layer_names: tuple[str, ...] = ("general",)

    @property
    def num_units(self) -> int:
        """Number of units."""
        return len(self.unit_ids)

    @property
    def num_reps(self) -> int:
        """Number of reps."""
        return len(self.rep_ids)

    @functools.cached_property
    def adjacency(self) -> Adjacency:
        """Neighbour lists of the units (:mod:`optimizer.graph`)."""
        return Adjacency.of(self.num_units, self.unit_edges)

    @functools.cached_property
    def contiguity_layer(self) -> np.ndarray:
        """Layer each unit's territory must be connected on (-1: exempt, as key-account units are)."""
        key = self.unit_key if self.unit_key is not None else np.zeros(self.num_units, dtype=bool)
        layer = self.unit_layer if self.unit_layer is not None else np.zeros(self.num_units, dtype=np.int64)
        return np.where(key, -1, layer).astype(np.int64)

    def pairs_of(self, unit_rep: np.ndarray) -> np.ndarray:
        """Pair position of every unit's rep in an assignment; -1 where the pair is not allowed."""
        unit_rep = np.asarray(unit_rep, dtype=np.int64)
        keys, order = self._sorted_pair_keys
        wanted = np.arange(len(unit_rep)) * self.num_reps + unit_rep
        pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = (keys[pos] == wanted) & (unit_rep >= 0) & (unit_rep < self.num_reps)
        return np.where(found, pos if order is None else order[pos], -1)

    @functools.cached_property
    def unit_start(self) -> np.ndarray:
        """Position of every unit's first pair, and the pair count at the end (pairs are sorted by unit)."""
        return np.searchsorted(self.pair_unit, np.arange(self.num_units + 1))

    @functools.cached_property
    def _sorted_pair_keys(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Pair keys ``unit * reps + rep`` in ascending order, and the pair order that sorts them (``None``:
        the pairs are already sorted by unit then rep, as built; sorting 9 M keys on every call took 0.3 s)."""
        keys = self.pair_unit * self.num_reps + self.pair_rep
        if len(keys) < 2 or bool((keys[1:] > keys[:-1]).all()):
            return keys, None
        order = np.argsort(keys, kind="stable")
        return keys[order], order

    def restrict_pairs(self, keep: np.ndarray) -> Problem:
        """The problem with only the pairs where ``keep`` is true (every per-pair array cut alike)."""
        return replace(
            self,
            pair_unit=self.pair_unit[keep],
            pair_rep=self.pair_rep[keep],
            pair_cost=self.pair_cost[keep],
            pair_compactness=self.pair_compactness[keep],
            pair_penalty=self.pair_penalty[keep],
            pair_continuity=None if self.pair_continuity is None else self.pair_continuity[keep],
        )

    def centre_cost(self, unit_rep: np.ndarray) -> float:
        """Workload-weighted km from each territory's best centre unit (0 unless compactness is centre-based)."""
        if self.centre_distance is None or self.unit_weight is None:
            return 0.0
        total = 0.0
        for r in range(self.num_reps):
            members = np.flatnonzero(unit_rep == r)
            if len(members):
                sub = self.centre_distance[np.ix_(members, members)]
                total += float((self.unit_weight[members, None] * sub).sum(axis=0).min())
        return total

    def objective_of(self, unit_rep: np.ndarray) -> float:
        """Objective of an assignment in workload-hour x km (every pair must be allowed)."""
        pairs = self.pairs_of(unit_rep)
        return self.real_cost(pairs[pairs >= 0]) + self.compactness_weight * self.centre_cost(unit_rep)

    def real_cost(self, pairs: np.ndarray) -> float:
        """Objective in workload-hour x km of a set of chosen pairs."""
        continuity = 0.0 if self.pair_continuity is None else float(self.pair_continuity[pairs].sum())
        return float(
            self.compactness_weight * self.pair_compactness[pairs].sum()
            + self.preference_weight * self.pair_penalty[pairs].sum()
            + continuity
        )


def _exact_fraction(value: float) -> Fraction:
    """Decimal value as typed (``0.8`` -> 4/5), bounded denominator."""
    return Fraction(str(value)).limit_denominator(10**6)


def _scale_metric(real: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """Pick an integer scale: exact powers of ten when possible, else fine-grained."""
    total = float(real.sum())
    for digits in range(0, 4):
        scale = 10.0**digits
        scaled = real * scale
        if total * scale > MAX_SCALED_TOTAL:
            break
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return np.round(scaled).astype(np.int64), scale, True
    scale = MAX_SCALED_TOTAL / total if total > 0 else 1.0
    return np.round(real * scale).astype(np.int64), scale, False


def load_bounds(
    values: np.ndarray,
    scale: float,
    exact: bool,
    fte: np.ndarray,
    tolerance: float,
    fte_exact: tuple[Fraction, ...],
    tolerance_exact: Fraction,
) -> tuple[np.ndarray, np.ndarray]:
    """Integer load bounds of every rep for a metric balanced across all reps.

    Parameters
    ----------
    values
        The metric's integer value per unit.
    scale
        Integer units per input unit; the bounds are in integer units and do not depend on it.
    exact
        Whether ``values`` are the input exactly (else rounded: the bounds are pulled in by
        :data:`INEXACT_MARGIN` of the target).
    fte, tolerance
        FTE per rep and the tolerance as a share (0.05 for 5 %).
    fte_exact, tolerance_exact
        The same as exact fractions, for exact bounds.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lo, hi)``: ``int64`` per rep; a load within them is within the tolerance of the rep's target.
    """
    if exact:
        # exact rational bounds: a load exactly at the tolerance is allowed (4 of 10 accounts on one of
        # 3 reps is +20 %), as in the grouped rule and the plan's KPIs
        total = Fraction(int(values.sum()))
        fte_total = sum(fte_exact, Fraction(0))
        shares = [total * f / fte_total for f in fte_exact]
        lo_exact = [math.ceil(t * (1 - tolerance_exact)) for t in shares]
        hi_exact = [math.floor(t * (1 + tolerance_exact)) for t in shares]
        return np.array(lo_exact, dtype=np.int64), np.array(hi_exact, dtype=np.int64)
    total = float(values.sum())
    target = total * fte / fte.sum()
    lo_real = target * (1.0 - tolerance)
    hi_real = target * (1.0 + tolerance)
    # pull bounds in a hair so float error never lets a plan break the tolerance;
    # inexact scaling also absorbs its rounding error (at most 1e-4 of the target)
    margin = 1e-9 * target + (0.0 if exact else float(INEXACT_MARGIN) * target)
    lo = np.ceil(lo_real + margin).astype(np.int64)
    hi = np.floor(hi_real - margin).astype(np.int64)
    return lo, hi


def build_problem(dataset: Dataset) -> Problem:
    """Turn a dataset into integer arrays for the solver.

    Parameters
    ----------
    dataset
        Validated accounts, reps and scenario.

    Returns
    -------
    Problem
    """
    scenario = dataset.scenario
    acc, reps = dataset.accounts, dataset.reps
    n_reps = len(reps)
    family = acc["family_id"].to_numpy(dtype=object)
    layer = dataset.units
    if layer is None:
        unit_ids, unit_of_account = np.unique(family, return_inverse=True)
    else:
        unit_ids, unit_of_account = layer.unit_ids, layer.unit_of_account
    n_units = len(unit_ids)
    fte = reps["fte"].to_numpy(float)
    fte_exact = tuple(_exact_fraction(f) for f in fte)
    rep_segments = list(reps["segment"])

    # ---------------------------------------------------------------- metrics
    metrics = []
    for name, rule in scenario.balance.items():
        real = np.bincount(unit_of_account, weights=metric_values(acc, name), minlength=n_units)
        values, scale, exact = _scale_metric(real)
        groups = balance_groups(rep_segments, rule.within)
        tolerance = rule.tolerance_pct / 100.0
        tolerance_exact = _exact_fraction(rule.tolerance_pct) / 100
        lo, hi = (None, None)
        if groups.max() == 0:
            lo, hi = load_bounds(values, scale, exact, fte, tolerance, fte_exact, tolerance_exact)
        metrics.append(
            MetricData(
                name=name,
                values=values,
                real=real,
                scale=scale,
                exact=exact,
                tolerance=tolerance,
                tolerance_exact=tolerance_exact,
                groups=groups,
                lo=lo,
                hi=hi,
            )
        )

    # ------------------------------------------------------- locks and owners
    rep_row = {rep: i for i, rep in enumerate(reps["rep_id"])}
    top = acc["account_id"].to_numpy(dtype=object) == family
    owners = acc["current_rep"].to_numpy(dtype=object)
    current_rep = unit_owner(unit_of_account, owners, rep_row, n_units, top)
    fixed_rep = np.full(n_units, -1, dtype=np.int64)
    conflicts: dict[int, set[str]] = {}
    # a pin (models.pins: the whole unit, checked there) locks to its rep, over the lock to the current rep
    lock_to, locked = owners, acc["locked"].to_numpy(bool)
    if "pinned_rep" in acc:
        pinned = acc["pinned_rep"].notna().to_numpy()
        lock_to = np.where(pinned, acc["pinned_rep"].to_numpy(dtype=object, na_value=None), owners)
        locked = locked | pinned
    for i in np.flatnonzero(locked):
        u = unit_of_account[i]
        if fixed_rep[u] >= 0 and fixed_rep[u] != rep_row[lock_to[i]]:
            conflicts.setdefault(int(u), {str(reps["rep_id"].iloc[fixed_rep[u]])}).add(str(lock_to[i]))
        fixed_rep[u] = rep_row[lock_to[i]]
    if conflicts:
        from optimizer.result import InfeasibleError

        raise InfeasibleError(
            "The scenario has no feasible plan:",
            [
                f"unit '{unit_ids[u]}' holds accounts locked to different reps ({', '.join(sorted(r))}); a unit "
                "moves as a whole: unlock some, or use smaller units"
                for u, r in list(conflicts.items())[:5]
            ],
        )

    # ------------------------------------------------------------ eligibility
    workload = acc["workload"].to_numpy(float)
    hard_labels: list[str] = []
    hard_units: list[np.ndarray] = []
    fits_of: dict[str, np.ndarray] = {}
    soft: list[tuple[np.ndarray, np.ndarray, float]] = []  # (workload-hours of every unit, misfit reps, km)
    if scenario.segment_rules:
        segments = acc["segment"].to_numpy(dtype=object)
        for label, rule in scenario.segment_rules.items():
            members = segments == label
            if not members.any():
                continue
            fits = np.array([s == ANY_SEGMENT or s in rule.reps for s in rep_segments], dtype=bool)
            fits_of[label] = fits
            if rule.mode == "hard":
                # a family follows its top account: hard rules apply to the top account's segment
                hard = np.zeros(n_units, dtype=bool)
                hard[unit_of_account[members & top]] = True
                hard_labels.append(label)
                hard_units.append(hard)
            else:
                hours = np.bincount(unit_of_account[members], weights=workload[members], minlength=n_units)
                soft.append((hours, ~fits, rule.penalty_km))
    unit_class, class_names = _hard_classes(hard_units, hard_labels, n_units)
    if layer is not None and len(layer.layer_names) > 1:
        _empty_units_follow_their_layer(unit_class, layer.unit_layer, np.bincount(unit_of_account, minlength=n_units))
    class_allowed = np.ones((len(class_names), n_reps), dtype=bool)
    for c, name in enumerate(class_names):
        for label in filter(None, name.split("+")):
            class_allowed[c] &= fits_of[label]
    locked_units = np.flatnonzero(fixed_rep >= 0)

    # ------------------------------------------------ centre-based compactness
    # without any workload information every account weighs one hour: compactness is then plain distance
    weight = workload if workload.sum() > 0 else np.ones_like(workload)
    if workload.sum() <= 0:
        logger.info("no workload known: compactness weighs every account equally")
    centre_distance = unit_weight = None
    if scenario.objective.compactness_measure == "centre":
        unit_weight = np.bincount(unit_of_account, weights=weight, minlength=n_units)
        centre_distance = _unit_distances(dataset, unit_of_account, n_units, scenario.objective.distance)
    diameter_distance = None
    if scenario.objective.compactness_measure == "diameter":
        # the largest territory diameter is the objective (optimizer.diameter), not distances to home bases
        diameter_distance = _unit_distances(dataset, unit_of_account, n_units, scenario.objective.distance)

    # ------------------------------------------- pairs, built chunk by chunk
    unit_lat, unit_lon = _unit_points(dataset, unit_of_account, n_units)
    k = candidate_limit(scenario, n_units, n_reps)
    rules = _PairRules(
        unit_of_account=unit_of_account,
        latitude=acc["latitude"].to_numpy(float),
        longitude=acc["longitude"].to_numpy(float),
        weight=weight,
        hours=np.bincount(unit_of_account, weights=workload, minlength=n_units),
        rep_latitude=reps["latitude"].to_numpy(float),
        rep_longitude=reps["longitude"].to_numpy(float),
        unit_class=unit_class,
        class_allowed=class_allowed,
        fixed_rep=fixed_rep,
        current_rep=current_rep,
        max_distance_km=scenario.territories.max_distance_km,
        candidates=k,
        # the territory centre, not the home base, measures compactness by diameter
        home_base=scenario.objective.compactness_measure != "diameter",
    )
    if k is None or scenario.solver.candidate_reps is not None:
        pair_unit, pair_rep, pair_compactness = _pairs(rules)
    else:
        # nearest reps alone can leave a plan impossible: where a metro holds more accounts than its reps'
        # share, its outer accounts must go to another metro's reps, which are never among their nearest
        coarse_input = CoarseInput(
            metrics=metrics,
            latitude=unit_lat,
            longitude=unit_lon,
            weight=np.bincount(unit_of_account, weights=weight, minlength=n_units),
            soft=soft,
            unit_class=unit_class,
            class_allowed=class_allowed,
            fixed_rep=fixed_rep,
            rep_latitude=rules.rep_latitude,
            rep_longitude=rules.rep_longitude,
            fte=fte,
            compactness_weight=scenario.objective.compactness,
            preference_weight=scenario.objective.preference,
        )
        pair_unit, pair_rep, pair_compactness = _pairs_with_coarse_plan(rules, coarse_input)
    pair_penalty = np.zeros(len(pair_unit))
    for hours, misfit, penalty_km in soft:
        pair_penalty += np.where(misfit[pair_rep], hours[pair_unit] * penalty_km, 0.0)

    weights = scenario.objective
    baseline = _baseline_weights(dataset, unit_of_account, rep_row, n_units, weight)
    pair_continuity = None
    if baseline is not None and scenario.continuity.move_penalty_km > 0:
        pair_continuity = baseline["penalty"].moved_real(pair_unit, pair_rep)
    budgets = _budgets(scenario, baseline, n_reps, float(acc["potential"].sum()))
    real_cost = weights.compactness * pair_compactness + weights.preference * pair_penalty
    if pair_continuity is not None:
        real_cost = real_cost + pair_continuity
    top_cost = float(real_cost.max()) if len(real_cost) else 0.0
    if centre_distance is not None and unit_weight is not None:
        top_cost = max(top_cost, weights.compactness * float((unit_weight[:, None] * centre_distance).max(initial=0.0)))
    cost_scale = COST_RESOLUTION / top_cost if top_cost > 0 else 1.0
    pair_cost = np.round(real_cost * cost_scale).astype(np.int64)
    logger.info(
        "problem: %d accounts in %d units, %d reps, %d allowed pairs, %d locked units",
        len(acc),
        n_units,
        n_reps,
        len(pair_unit),
        len(locked_units),
    )
    return Problem(
        unit_ids=unit_ids,
        unit_of_account=unit_of_account.astype(np.int64),
        rep_ids=reps["rep_id"].to_numpy(dtype=object),
        fte=fte,
        fte_exact=fte_exact,
        metrics=tuple(metrics),
        pair_unit=pair_unit.astype(np.int64, copy=False),
        pair_rep=pair_rep.astype(np.int64, copy=False),
        pair_cost=pair_cost,
        pair_compactness=pair_compactness,
        pair_penalty=pair_penalty,
        cost_scale=cost_scale,
        unit_class=unit_class,
        class_allowed=class_allowed,
        class_names=class_names,
        fixed_rep=fixed_rep,
        current_rep=current_rep,
        compactness_weight=weights.compactness,
        preference_weight=weights.preference,
        unit_edges=layer.edges if layer is not None else np.zeros((0, 2), dtype=np.int64),
        unit_key=layer.key if layer is not None else None,
        unit_layer=layer.unit_layer if layer is not None else None,
        layer_names=layer.layer_names if layer is not None else ("general",),
        contiguous=scenario.territories.contiguous,
        centre_distance=centre_distance,
        unit_weight=unit_weight,
        diameter_distance=diameter_distance,
        pair_continuity=pair_continuity,
        budgets=budgets,
        unit_latitude=unit_lat,
        unit_longitude=unit_lon,
    )


def candidate_limit(scenario: Scenario, n_units: int, n_reps: int) -> int | None:
    """Nearest eligible reps offered to each unit, or ``None`` when every eligible rep is offered.

    ``solver.candidate_reps`` when the scenario sets it; else :data:`AUTO_CANDIDATE_REPS` once the problem has
    more than :data:`AUTO_CANDIDATE_PAIRS` unit-rep pairs (offering every rep would not fit in memory); the
    automatic limit also offers the reps of a coarse plan (:func:`coarse_plan`), which the build adds.

    Parameters
    ----------
    scenario
        The scenario.
    n_units, n_reps
        Size of the problem.

    Returns
    -------
    int or None
    """
    k = scenario.solver.candidate_reps
    if (
        k is None
        and n_units * n_reps > AUTO_CANDIDATE_PAIRS
        and scenario.objective.compactness_measure != "diameter"  # ranks reps by home-base distance
    ):
        k = AUTO_CANDIDATE_REPS
        if k < n_reps:
            logger.info(
                "%d units x %d reps is over %d pairs: each unit is offered its %d nearest eligible reps, its "
                "current rep and the reps a coarse plan gives its area (solver.candidate_reps sets another number)",
                n_units,
                n_reps,
                AUTO_CANDIDATE_PAIRS,
                k,
            )
    return k if k is not None and k < n_reps else None


def _empty_units_follow_their_layer(unit_class: np.ndarray, unit_layer: np.ndarray, accounts: np.ndarray) -> None:
    """Give units without accounts the hard segment class of their team layer (in place).

    A team layer tiles the map: its empty units (a postal code without enterprise accounts, on the enterprise
    layer) join territories of that team only, as the layer's accounts do.
    """
    for number in np.unique(unit_layer[unit_layer >= 0]):
        members = unit_layer == number
        held = unit_class[members & (accounts > 0)]
        if len(held):
            unit_class[members & (accounts == 0)] = np.bincount(held).argmax()


def _hard_classes(hard_units: list[np.ndarray], labels: list[str], n_units: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Hard segment class of every unit (the hard rules it falls under), numbered in order of first appearance.

    ``hard_units[i]`` marks the units under the hard rule for ``labels[i]``; a class is named by its sorted labels
    joined with ``+`` (``''``: no hard rule).
    """
    if n_units == 0:
        return np.zeros(0, dtype=np.int64), ()
    member = np.stack(hard_units, axis=1) if hard_units else np.zeros((n_units, 0), dtype=bool)
    rows, first, inverse = np.unique(member, axis=0, return_index=True, return_inverse=True)
    number = np.empty(len(rows), dtype=np.int64)
    number[np.argsort(first, kind="stable")] = np.arange(len(rows))
    names = [""] * len(rows)
    for row, c in zip(rows, number, strict=True):
        names[c] = "+".join(sorted(label for label, on in zip(labels, row, strict=True) if on))
    return number[inverse.ravel()], tuple(names)


@dataclass(frozen=True)
class _PairRules:
    """What decides the unit-rep pairs: account positions and weights, reps' home bases, the hard rules."""

    unit_of_account: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    weight: np.ndarray  # hours weighing each account's distance (1 each without workload)
    hours: np.ndarray  # workload-hours of every unit (ranks candidates; 0: rank by plain distance)
    rep_latitude: np.ndarray
    rep_longitude: np.ndarray
    unit_class: np.ndarray
    class_allowed: np.ndarray
    fixed_rep: np.ndarray
    current_rep: np.ndarray
    max_distance_km: float | None
    candidates: int | None
    home_base: bool  # whether compactness counts distances to home bases
    coarse: CoarsePlan | None = None  # reps offered besides the nearest: those of a coarse plan


def _pairs(rules: _PairRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allowed unit-rep pairs, sorted by unit then rep, and their compactness (workload-hour x km).

    Units are taken in chunks of whole units of about :data:`CHUNK_CELLS` account-rep distances, so memory stays
    bounded by the chunk, never by units x reps.
    """
    n_units, n_reps = len(rules.unit_class), len(rules.rep_latitude)
    counts = np.bincount(rules.unit_of_account, minlength=n_units)
    starts = np.concatenate([[0], np.cumsum(counts)])
    order = np.argsort(rules.unit_of_account, kind="stable")  # accounts by unit, in table order within a unit
    rows = max(CHUNK_CELLS // max(n_reps, 1), 1)
    out_unit, out_rep, out_compact = [], [], []
    beyond = 0
    u0 = 0
    while u0 < n_units:
        u1 = int(np.searchsorted(starts, starts[u0] + rows, side="right")) - 1
        u1 = min(max(u1, u0 + 1), u0 + rows, n_units)
        allowed, compact, farther = _chunk_pairs(rules, u0, u1, order[starts[u0] : starts[u1]])
        beyond += farther
        pu, pr = np.nonzero(allowed)
        out_unit.append(pu + u0)
        out_rep.append(pr)
        out_compact.append(compact[pu, pr])
        u0 = u1
    if rules.max_distance_km is not None:
        logger.info("max_distance_km %.0f: %d unit-rep pairs beyond it removed", rules.max_distance_km, beyond)
    if not out_unit:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    return (
        np.concatenate(out_unit).astype(np.int64, copy=False),
        np.concatenate(out_rep).astype(np.int64, copy=False),
        np.concatenate(out_compact),
    )


def _pairs_with_coarse_plan(rules: _PairRules, data: CoarseInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_pairs` with the reps of the coarse plan (:func:`coarse_plan`) offered too.

    Where every unit takes the nearest-pairs path (:func:`_nearest_pairs`: every place known, no distance
    limit), the coarse plan's LP runs in a thread while the nearest reps are ranked (GLOP releases the GIL; at
    1,000,000 accounts each takes about 20 s), and its reps join afterwards; the pairs are the same either way.
    """
    places = (rules.latitude, rules.longitude, rules.rep_latitude, rules.rep_longitude)
    if not (rules.home_base and rules.max_distance_km is None and not any(np.isnan(v).any() for v in places)):
        return _pairs(replace(rules, coarse=coarse_plan(data)))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="coarse-plan") as pool:
        future = pool.submit(coarse_plan, data)
        pair_unit, pair_rep, pair_compactness = _pairs(rules)
        coarse = future.result()
    if coarse is None:
        return pair_unit, pair_rep, pair_compactness
    return _add_coarse_pairs(rules, coarse, pair_unit, pair_rep, pair_compactness)


def _add_coarse_pairs(
    rules: _PairRules, coarse: CoarsePlan, pair_unit: np.ndarray, pair_rep: np.ndarray, compactness: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs with those the coarse plan offers (and the hard rules allow) merged in, in unit-then-rep order,
    their compactness summed over each unit's accounts in table order as :func:`_nearest_pairs` does."""
    n_units, n_reps = len(rules.unit_class), len(rules.rep_latitude)
    unit, rep = coarse.pairs(0, n_units)
    allowed = _hard_allows(rules, unit, rep)
    unit, rep = unit[allowed], rep[allowed]
    key, new_key = pair_unit * n_reps + pair_rep, unit * n_reps + rep
    at = np.searchsorted(key, new_key)
    known = at < len(key)
    known[known] = key[at[known]] == new_key[known]
    unit, rep, at = unit[~known], rep[~known], at[~known]
    order = np.argsort(rules.unit_of_account, kind="stable")  # accounts by unit, in table order within a unit
    first = np.concatenate([[0], np.cumsum(np.bincount(rules.unit_of_account, minlength=n_units))])
    positions, pair = expand_ranges(first[unit], first[unit + 1])  # every new pair's accounts, in table order
    account, pair_reps = order[positions], rep[pair]
    distance = haversine_km(rules.latitude[account], rules.longitude[account], rules.rep_latitude[pair_reps],
                            rules.rep_longitude[pair_reps])  # fmt: skip
    added = _UnitAccounts(pair, len(unit)).reduce(np.add, distance * rules.weight[account])
    return np.insert(pair_unit, at, unit), np.insert(pair_rep, at, rep), np.insert(compactness, at, added)


class _UnitAccounts:
    """The accounts of consecutive units (``local``: unit of each account, from 0), unit by unit in table order."""

    def __init__(self, local: np.ndarray, n_units: int) -> None:
        self.local, self.n_units = local, n_units
        self.counts = np.bincount(local, minlength=n_units)
        first = np.cumsum(self.counts) - self.counts
        place = np.arange(len(local)) - first[local]
        order = np.argsort(place, kind="stable")
        # ``levels[j]`` holds the j-th account of every unit that has one
        self.levels = np.split(order, np.flatnonzero(np.diff(place[order])) + 1) if len(order) else []

    def reduce(self, ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        """``ufunc`` over each unit's accounts in table order, as the sum ``0 + a + b ...`` (0 without accounts)."""
        out = np.zeros((self.n_units, *values.shape[1:]))
        for j, level in enumerate(self.levels):
            rows = self.local[level]
            out[rows] = values[level] if j == 0 else ufunc(out[rows], values[level])
        return out


def _chunk_pairs(rules: _PairRules, u0: int, u1: int, accounts: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Allowed-pair mask and compactness of units ``u0 .. u1 - 1`` (``accounts``: their rows, by unit).

    Also returns how many pairs ``max_distance_km`` removed.
    """
    shape = (u1 - u0, len(rules.rep_latitude))
    lat, lon = rules.latitude[accounts], rules.longitude[accounts]
    units = _UnitAccounts(rules.unit_of_account[accounts] - u0, shape[0])
    nearest_only = rules.candidates is not None and rules.home_base and rules.max_distance_km is None
    if nearest_only and not (np.isnan(lat).any() or np.isnan(lon).any() or _reps_unplaced(rules)):
        return _nearest_pairs(rules, u0, u1, accounts, units)
    dist = distance_matrix_km(lat, lon, rules.rep_latitude, rules.rep_longitude)
    # reps without a home base (allowed only when compactness does not count) cost nothing to reach
    missing = bool(np.isnan(dist[:1]).any() or np.isnan(lat).any() or np.isnan(lon).any())
    compact = units.reduce(np.add, dist * rules.weight[accounts, None])
    reach = dist  # distances with 0 for reps without a home base
    if missing:
        compact = np.nan_to_num(compact, nan=0.0)
        reach = np.nan_to_num(dist, nan=0.0)
    allowed = _hard_allowed(rules, u0, u1)
    beyond = 0
    if rules.max_distance_km is not None:
        farthest = units.reduce(np.maximum, reach)
        beyond = int((farthest > rules.max_distance_km).sum())
        allowed &= farthest <= rules.max_distance_km
    if not rules.home_base:
        compact = np.zeros(shape)
    if rules.candidates is not None:
        # rank by distance of the unit's workload-weighted position (compactness per hour)
        hours = rules.hours[u0:u1]
        # a unit without workload has zero compactness everywhere: rank its reps by plain distance instead
        plain = units.reduce(np.add, dist) if (hours <= 0).any() else 0.0
        per_hour = np.where((hours > 0)[:, None], compact / np.maximum(hours, 1e-9)[:, None], plain)
        allowed &= _offered(rules, u0, u1, np.where(allowed, per_hour, np.inf))
    return allowed, compact, beyond


def _reps_unplaced(rules: _PairRules) -> bool:
    """Whether some rep lacks a home base."""
    return bool(np.isnan(rules.rep_latitude).any() or np.isnan(rules.rep_longitude).any())


def _hard_allowed(rules: _PairRules, u0: int, u1: int) -> np.ndarray:
    """Pairs the hard segment rules and locks allow, for units ``u0 .. u1 - 1`` (a units x reps mask).

    A lock keeps the current rep only where the hard segment rules allow it; a lock to a rep the rules exclude
    leaves the unit no pair at all, which the presolve checks report.
    """
    return _hard_allows(rules, np.arange(u0, u1)[:, None], np.arange(len(rules.rep_latitude))[None, :])


def _hard_allows(rules: _PairRules, unit: np.ndarray, rep: np.ndarray) -> np.ndarray:
    """Whether the hard segment rules and locks allow each unit-rep pair (arrays that broadcast together)."""
    fixed = rules.fixed_rep[unit]
    return rules.class_allowed[rules.unit_class[unit], rep] & ((fixed < 0) | (fixed == rep))


def _offered(rules: _PairRules, u0: int, u1: int, key: np.ndarray) -> np.ndarray:
    """The pairs offered to units ``u0 .. u1 - 1``: each unit's ``candidates`` smallest by ``key`` (``inf``: not
    allowed), its current rep, and the reps the coarse plan gives its cell."""
    keep = smallest_per_row(key, rules.candidates)
    current = rules.current_rep[u0:u1]
    has_current = np.flatnonzero(current >= 0)
    keep[has_current, current[has_current]] = True
    if rules.coarse is not None:
        rows, reps = rules.coarse.pairs(u0, u1)
        keep[rows, reps] = True
    return keep


def _nearest_pairs(
    rules: _PairRules, u0: int, u1: int, accounts: np.ndarray, units: _UnitAccounts
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_chunk_pairs` when each unit is offered its nearest reps and every place is known.

    A unit of one account ranks the reps by the chord between unit vectors (one matrix product; the same order
    as great-circle distance), and only the pairs kept get their distance; units of several accounts rank by
    their compactness per hour, as in :func:`_chunk_pairs`. At 1,000,000 accounts and 500 reps the distances of
    every account-rep pair took 17 of the build's 69 s.
    """
    n_units = u1 - u0
    local = units.local
    lat, lon = rules.latitude[accounts], rules.longitude[accounts]
    single = units.counts[local] == 1  # accounts alone in their unit
    key = np.zeros((n_units, len(rules.rep_latitude)))  # units without accounts: every rep alike
    key[local[single]] = -(_unit_vectors(lat[single], lon[single]) @ _unit_vectors(rules.rep_latitude,
                                                                                   rules.rep_longitude).T)  # fmt: skip
    several = np.flatnonzero(~single)
    shared_rows = np.unique(local[several])
    compact_shared = None
    if len(shared_rows):
        grouped = _UnitAccounts(np.searchsorted(shared_rows, local[several]), len(shared_rows))
        dist = distance_matrix_km(lat[several], lon[several], rules.rep_latitude, rules.rep_longitude)
        compact_shared = grouped.reduce(np.add, dist * rules.weight[accounts[several], None])
        hours = rules.hours[u0 + shared_rows]
        plain = grouped.reduce(np.add, dist) if (hours <= 0).any() else 0.0
        key[shared_rows] = np.where((hours > 0)[:, None], compact_shared / np.maximum(hours, 1e-9)[:, None], plain)
    allowed = _hard_allowed(rules, u0, u1)
    allowed &= _offered(rules, u0, u1, np.where(allowed, key, np.inf))
    compact = np.zeros(allowed.shape)
    rows, reps = np.nonzero(allowed[local[single]])
    alone = accounts[single][rows]
    # the same operations as distance_matrix_km, so the same values
    distance = haversine_km(rules.latitude[alone], rules.longitude[alone], rules.rep_latitude[reps],
                            rules.rep_longitude[reps])  # fmt: skip
    compact[local[single][rows], reps] = distance * rules.weight[alone]
    if compact_shared is not None:
        compact[shared_rows] = compact_shared
    return allowed, compact, 0


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (n x 3) of latitudes and longitudes in degrees."""
    phi, lam = np.radians(np.asarray(lat, dtype=float)), np.radians(np.asarray(lon, dtype=float))
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


@dataclass(frozen=True)
class CoarseInput:
    """What the coarse plan needs: unit points and weights, hard rules, balance bounds, home bases."""

    metrics: list[MetricData]
    latitude: np.ndarray
    longitude: np.ndarray
    weight: np.ndarray  # hours weighing each unit's distance
    soft: list[tuple[np.ndarray, np.ndarray, float]]  # soft segment rules: (unit hours, misfit reps, km)
    unit_class: np.ndarray
    class_allowed: np.ndarray
    fixed_rep: np.ndarray
    rep_latitude: np.ndarray
    rep_longitude: np.ndarray
    fte: np.ndarray
    compactness_weight: float
    preference_weight: float


@dataclass(frozen=True)
class CoarsePlan:
    """Reps a coarse plan gives every unit's grid cell: cell ``c`` has ``reps[start[c] : start[c + 1]]``."""

    unit_cell: np.ndarray  # -1: locked unit
    start: np.ndarray
    reps: np.ndarray

    def pairs(self, u0: int, u1: int) -> tuple[np.ndarray, np.ndarray]:
        """Row (``unit - u0``) and rep of every pair the plan offers to units ``u0 .. u1 - 1``."""
        cells = self.unit_cell[u0:u1]
        rows = np.flatnonzero(cells >= 0)
        positions, owner = expand_ranges(self.start[cells[rows]], self.start[cells[rows] + 1])
        return rows[owner], self.reps[positions]


def coarse_plan(data: CoarseInput) -> CoarsePlan | None:
    """The LP plan of grid cells (:data:`COARSE_CELL_DEG`, larger past :data:`COARSE_MAX_CELLS`) by hard segment
    class and metric profile (:func:`metric_profile`): which reps each cell goes to.

    Each cell weighs its units' metrics and costs its hours x the distance of its centre from a home base
    (plus soft segment penalties); every balance rule holds as in the problem, locked units included. Spread
    over the cell's units, the LP plan is a fractional plan of the units, so offering every unit its cell's reps
    keeps the LP relaxation feasible where nearest reps alone would not. The within-segment tolerances are
    exact first; where the cells' LP has no solution even so, looser ones still offer far reps
    (:data:`COARSE_TOLERANCE_FACTORS`).

    Parameters
    ----------
    data
        The units, reps, metrics and rules the problem is built from.

    Returns
    -------
    CoarsePlan or None
        Every unit's cell and the reps the LP gives each cell; ``None`` when no LP has a solution.
    """
    free = data.fixed_rep < 0
    lat = np.nan_to_num(data.latitude[free], nan=0.0)
    lon = np.nan_to_num(data.longitude[free], nan=0.0)
    n_classes = max(len(data.class_allowed), 1)
    profile = metric_profile([m.values for m in data.metrics])[free]
    kind = profile * n_classes + data.unit_class[free]  # cells hold units of one hard class and one profile
    side = COARSE_CELL_DEG
    while True:  # a wide region gets larger cells: the LP stays small
        key = (np.floor(lat / side) * 1e5 + np.floor(lon / side)) * (n_classes * PROFILE_CLASSES) + kind
        cells, cell_of_free = np.unique(key, return_inverse=True)
        if len(cells) <= COARSE_MAX_CELLS or side >= 16:
            break
        side *= 2
    unit_cell = np.full(len(free), -1, dtype=np.int64)
    unit_cell[free] = cell_of_free
    n_cells = len(cells)
    hours = np.bincount(cell_of_free, weights=data.weight[free], minlength=n_cells)
    count = np.bincount(cell_of_free, minlength=n_cells)
    mass = np.where(hours > 0, hours, count)  # a cell without workload: its units weigh one each
    unit_mass = np.where(hours[cell_of_free] > 0, data.weight[free], 1.0)
    centre_lat = np.bincount(cell_of_free, weights=unit_mass * lat, minlength=n_cells) / mass
    centre_lon = np.bincount(cell_of_free, weights=unit_mass * lon, minlength=n_cells) / mass
    distance = np.nan_to_num(distance_matrix_km(centre_lat, centre_lon, data.rep_latitude, data.rep_longitude))
    cost = data.compactness_weight * hours[:, None] * distance
    for unit_hours, misfit, penalty_km in data.soft:
        cell_hours = np.bincount(cell_of_free, weights=unit_hours[free], minlength=n_cells)
        cost[:, misfit] += data.preference_weight * penalty_km * cell_hours[:, None]
    cell_class = (cells % (n_classes * PROFILE_CLASSES) % n_classes).astype(np.int64)
    pair_cell, pair_rep = np.nonzero(data.class_allowed[cell_class])

    cells_lp = _CoarseLp(data, free, cell_of_free, n_cells, pair_cell, pair_rep, cost)
    for tolerance_factor in COARSE_TOLERANCE_FACTORS:
        x = _coarse_lp(cells_lp, tolerance_factor)
        if x is not None:
            break
        logger.info("the coarse plan has no LP solution at %g x the within-segment tolerances", tolerance_factor)
    else:
        logger.warning("the coarse plan of %d grid cells has no LP solution: nearest reps only", n_cells)
        return None
    used = x > 1e-6
    order = np.lexsort((pair_rep[used], pair_cell[used]))
    start = np.concatenate([[0], np.cumsum(np.bincount(pair_cell[used], minlength=n_cells))])
    logger.info(
        "coarse plan: %d grid cells of %g degrees, %d cell-rep pairs offered besides the nearest reps",
        n_cells,
        side,
        used.sum(),
    )
    return CoarsePlan(unit_cell=unit_cell, start=start, reps=pair_rep[used][order].astype(np.int64))


@dataclass(frozen=True)
class _CoarseLp:
    """The coarse plan's cells: which free units each holds, the cell-rep pairs allowed and their costs."""

    data: CoarseInput
    free: np.ndarray
    cell_of_free: np.ndarray
    n_cells: int
    pair_cell: np.ndarray
    pair_rep: np.ndarray
    cost: np.ndarray


def _coarse_lp(cells: _CoarseLp, tolerance_factor: float) -> np.ndarray | None:
    """The coarse plan's LP with within-segment tolerances times ``tolerance_factor``: ``x`` per cell-rep pair.

    ``None`` when GLOP finds no optimal solution (infeasible, or numerics).
    """
    data, free, cell_of_free, n_cells = cells.data, cells.free, cells.cell_of_free, cells.n_cells
    pair_cell, pair_rep, cost = cells.pair_cell, cells.pair_rep, cells.cost
    n_reps = len(data.rep_latitude)
    lp = SparseLp()
    factor = max(float(cost.max(initial=1.0)), 1.0) / 1000.0
    x = lp.columns(0.0, 1.0, cost[pair_cell, pair_rep] / factor, count=len(pair_cell))
    lp.coefficients(lp.rows(1.0, 1.0, count=n_cells)[pair_cell], x, 1.0)
    locked = ~free
    for metric in data.metrics:
        values = np.bincount(cell_of_free, weights=metric.values[free], minlength=n_cells)
        held = np.bincount(data.fixed_rep[locked], weights=metric.values[locked], minlength=n_reps)
        scale = max(float(values.max(initial=1.0)), 1.0)  # rows of unit magnitude (as optimizer.relaxation)
        # every rep's load (locked units included) is a column: bounded, or tied to its group's total
        if metric.lo is not None and metric.hi is not None:
            load = lp.columns(metric.lo / scale, np.maximum(metric.hi, metric.lo) / scale)
        else:
            load = lp.columns(0.0, np.inf, count=n_reps)
        rows = lp.rows(held / scale, held / scale)
        lp.coefficients(rows, load, 1.0)
        lp.coefficients(rows[pair_rep], x, -values[pair_cell] / scale)
        if metric.lo is None or metric.hi is None:
            tolerance = min(tolerance_factor * float(metric.tolerance_exact), 0.99)
            for group in np.unique(metric.groups):
                members = np.flatnonzero(metric.groups == group)
                shares = data.fte[members] / data.fte[members].sum()
                lp.group_rows(load[members], (1.0 + tolerance) * shares, (1.0 - tolerance) * shares)
    # by column generation from every cell's nearest reps: the whole LP (every cell with every rep, 530,000
    # columns at 1,000,000 accounts) took GLOP 32-48 s
    pair_cost = cost[pair_cell, pair_rep]
    nearest = x[smallest_pairs(pair_cell, pair_cost, COARSE_FIRST_REPS)]
    first = np.concatenate([nearest, np.arange(len(x), lp.num_columns)])  # and every load column
    answer = lp.solve_by_columns(first)
    if answer.status is not LpStatus.OPTIMAL:
        logger.info("coarse plan LP: %s", answer.status.value)
        return None
    return answer.values[x]


def smallest_pairs(group: np.ndarray, key: np.ndarray, k: int) -> np.ndarray:
    """Positions of every group's ``k`` smallest entries by ``key`` (ties by position), in ascending order.

    Parameters
    ----------
    group
        Non-negative group index per entry.
    key
        Value per entry.
    k
        Entries to keep per group.

    Returns
    -------
    numpy.ndarray
        Positions of the entries kept.
    """
    order = np.lexsort((key, group))
    sorted_group = group[order]
    rank = np.arange(len(order)) - np.searchsorted(sorted_group, sorted_group)
    return np.sort(order[rank < k])


def smallest_per_row(key: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` smallest entries of every row, ties to the lower column (as a stable sort takes them).

    Parameters
    ----------
    key
        2-D array (NaN sorts last, ``inf`` allowed).
    k
        Entries to keep per row, at least 1 and at most the row length.

    Returns
    -------
    numpy.ndarray
        Boolean mask of ``key``'s shape with ``k`` true entries per row.
    """
    kth = np.partition(key, k - 1, axis=1)[:, k - 1, None]
    keep = key < kth
    tied = key == kth
    room = k - keep.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)  # more ties at the k-th value than places left
    if len(crowded):
        tied[crowded] &= np.cumsum(tied[crowded], axis=1) <= room[crowded, None]
    keep |= tied
    unsorted = np.flatnonzero(np.isnan(kth[:, 0]))  # NaN sorts last and equals nothing: sort these rows fully
    if len(unsorted):
        nearest = np.argsort(key[unsorted], axis=1, kind="stable")[:, :k]
        keep[unsorted] = False
        keep[unsorted[:, None], nearest] = True
    return keep


@dataclass(frozen=True)
class _Stays:
    """Real weight of each unit's accounts by baseline rep (reps who stay only)."""

    key: np.ndarray
    weight: np.ndarray
    total: np.ndarray
    num_reps: int

    def moved_real(self, pair_unit: np.ndarray, pair_rep: np.ndarray) -> np.ndarray:
        stays = _weight_at(self.key, self.weight, pair_unit * self.num_reps + pair_rep)
        return np.maximum(self.total[pair_unit] - stays, 0.0)


def _baseline_weights(
    dataset: Dataset, unit_of_account: np.ndarray, rep_row: dict[str, int], n_units: int, hours: np.ndarray
) -> dict[str, _Stays] | None:
    """Accounts, potential and move penalty of every unit's accounts, by the baseline rep they are with.

    Accounts of reps who leave (and accounts without a baseline) are left out: they must move, or have nowhere
    to stay, so they cost nothing and count against no budget.
    """
    acc = dataset.accounts
    owners = acc["current_rep"].to_numpy(dtype=object)
    rows = np.array([rep_row.get(o, -1) if isinstance(o, str) else -1 for o in owners], dtype=np.int64)
    has = rows >= 0
    if not has.any():
        return None
    n_reps = len(rep_row)
    potential = acc["potential"].to_numpy(float)
    mean_potential = float(potential.mean()) if len(potential) else 0.0
    mean_hours = float(hours.mean()) if len(hours) else 0.0
    # an account of average potential costs move_penalty_km x the average account's workload-hours
    relative = potential / mean_potential if mean_potential > 0 else np.ones(len(acc))
    penalty = dataset.scenario.continuity.move_penalty_km * max(mean_hours, 1e-9) * relative
    keys = unit_of_account[has] * n_reps + rows[has]
    unique, inverse = np.unique(keys, return_inverse=True)
    out = {}
    for name, values in (("accounts", np.ones(len(acc))), ("potential", potential), ("penalty", penalty)):
        out[name] = _Stays(
            key=unique,
            weight=np.bincount(inverse, weights=values[has], minlength=len(unique)),
            total=np.bincount(unit_of_account[has], weights=values[has], minlength=n_units),
            num_reps=n_reps,
        )
    return out


def _budgets(
    scenario: Scenario, baseline: dict[str, _Stays] | None, n_reps: int, total_potential: float
) -> tuple[MoveBudget, ...]:
    """The hard move budgets of the scenario, in exact integers where the data allow."""
    rules = scenario.continuity
    wanted = []
    if rules.max_moved_accounts is not None:
        wanted.append(("accounts", float(rules.max_moved_accounts)))
    if rules.max_moved_potential_pct is not None:
        wanted.append(("potential", rules.max_moved_potential_pct / 100.0 * total_potential))
    if not wanted:
        return ()
    if baseline is None:
        logger.warning("continuity budgets are set but no account has a baseline rep who stays: nothing can move")
        return ()
    out = []
    for name, limit in wanted:
        stays = baseline[name]
        values, scale, exact = _scale_metric(np.concatenate([stays.weight, stays.total]))
        weight, total = values[: len(stays.weight)], values[len(stays.weight) :]
        # an inexact scale rounds each value; pull the limit in so the real total never exceeds it
        margin = 0.0 if exact else 1e-4 * max(limit, 1.0) + len(stays.total)
        out.append(
            MoveBudget(
                name=name,
                stay_key=stays.key,
                stay_weight=weight,
                unit_total=total,
                limit=math.floor(limit * scale - margin + 1e-9),
                scale=scale,
                num_reps=n_reps,
                reference=total_potential,
            )
        )
    return tuple(out)


def unit_owner(
    unit_of_account: np.ndarray, owners: np.ndarray, rep_row: dict[str, int], n_units: int, top: np.ndarray
) -> np.ndarray:
    """Current rep of every unit: its top accounts' most common owner (-1 when none has one).

    Parameters
    ----------
    unit_of_account
        Unit index of every account.
    owners
        Current rep id of every account (anything but a string: none).
    rep_row
        Rep id -> rep row.
    n_units
        Number of units.
    top
        Whether each account is a top account (family head) whose owner counts.

    Returns
    -------
    numpy.ndarray
        ``int64`` rep row per unit, -1 without a current rep; ties go to the lower rep row.
    """
    current = np.full(n_units, -1, dtype=np.int64)
    rows = np.array([rep_row.get(o, -1) if isinstance(o, str) else -1 for o in owners], dtype=np.int64)
    keep = (rows >= 0) & top
    if not keep.any():
        return current
    n_reps = len(rep_row)
    # count (unit, owner) pairs sparsely: a units x reps table is 4 GB at a million units and 500 reps
    keys, counts = np.unique(unit_of_account[keep].astype(np.int64) * n_reps + rows[keep], return_counts=True)
    units, owner = np.divmod(keys, n_reps)
    order = np.lexsort((owner, -counts, units))  # per unit: most accounts first, ties to the lower rep row
    first = np.ones(len(order), dtype=bool)
    first[1:] = units[order][1:] != units[order][:-1]
    current[units[order][first]] = owner[order][first]
    return current


def _unit_points(dataset: Dataset, unit_of_account: np.ndarray, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """A point of every unit: the unit layer's, or the mean position of its accounts."""
    if dataset.units is not None:
        return dataset.units.latitude, dataset.units.longitude
    acc = dataset.accounts
    counts = np.maximum(np.bincount(unit_of_account, minlength=n_units), 1)
    lat = np.bincount(unit_of_account, weights=acc["latitude"].to_numpy(float), minlength=n_units) / counts
    lon = np.bincount(unit_of_account, weights=acc["longitude"].to_numpy(float), minlength=n_units) / counts
    return lat, lon


def _unit_distances(dataset: Dataset, unit_of_account: np.ndarray, n_units: int, measure: str) -> np.ndarray:
    """Unit-to-unit distances in km: great-circle between unit points, or shortest paths over the adjacency graph."""
    layer = dataset.units
    lat, lon = _unit_points(dataset, unit_of_account, n_units)
    direct = distance_matrix_km(lat, lon, lat, lon)
    if measure != "graph" or layer is None or len(layer.edges) == 0:
        return direct
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n_units))
    for a, b in layer.edges:
        graph.add_edge(int(a), int(b), km=float(direct[a, b]))
    out = np.full((n_units, n_units), np.inf)
    for source, lengths in nx.all_pairs_dijkstra_path_length(graph, weight="km"):
        out[source, list(lengths)] = list(lengths.values())
    # units the graph does not connect fall back to the direct distance
    return np.where(np.isfinite(out), out, direct)


def expand_ranges(begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every position of the ranges ``begin[i] : end[i]``, in order, and the ``i`` each position comes from.

    With ``Problem.unit_start`` it lists the pairs of chosen units (pairs are sorted by unit).
    """
    counts = np.asarray(end) - np.asarray(begin)
    positions = np.repeat(begin - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    return positions, np.repeat(np.arange(len(counts)), counts)


#: :func:`unique_keys` counts in an array of its bound when that is at most this many slots per key (plus a
#: floor), and sorts otherwise.
DENSE_KEYS_PER_KEY, DENSE_KEYS_FLOOR = 4, 1 << 20


def unique_keys(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``numpy.unique(keys, return_inverse=True, return_counts=True)`` for integer keys in ``[0, bound)``.

    When ``bound`` is not much more than the number of keys, the keys are counted in an array of ``bound``
    slots instead of sorted: the same answer in one pass (23,086,100 cluster-rep keys of 1,000,000 accounts,
    below 11,654 x 500: 0.3 s against 3.4 s for the sort).

    Parameters
    ----------
    keys
        Non-negative integers below ``bound``.
    bound
        One more than the largest key there may be.

    Returns
    -------
    tuple
        ``(sorted distinct keys, index of every key among them, how often each occurs)``.
    """
    if bound > DENSE_KEYS_PER_KEY * len(keys) + DENSE_KEYS_FLOOR:
        return np.unique(keys, return_inverse=True, return_counts=True)
    counts = np.bincount(keys, minlength=bound)
    unique = np.flatnonzero(counts)
    slot = np.cumsum(counts > 0) - 1
    return unique, slot[keys], counts[unique]


def first_minimum(values: np.ndarray, pair_unit: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's smallest pair value and the first pair reaching it, in one pass over unit-sorted pairs.

    Parameters
    ----------
    values
        A value per pair (``inf`` for pairs to leave out).
    pair_unit
        Unit of every pair, sorted, every unit holding at least one pair.
    starts
        Position of every unit's first pair (``searchsorted(pair_unit, arange(units))``).

    Returns
    -------
    tuple
        ``(minimum per unit, pair position per unit)``.
    """
    minimum = np.minimum.reduceat(values, starts)
    hits = np.flatnonzero(values <= minimum[pair_unit])
    hit_unit = pair_unit[hits]
    first = np.ones(len(hits), dtype=bool)  # the hits are in unit order: each unit's first one
    first[1:] = hit_unit[1:] != hit_unit[:-1]
    return minimum, hits[first]


def metric_profile(values: list[np.ndarray]) -> np.ndarray:
    """Profile class of every unit: the quantile bin of each metric's ratio to the first metric.

    Aggregating units (the coarse plan's grid cells, :func:`optimizer.aggregate.cluster_units`) fixes the mix of
    metrics a rep gets from an aggregate, so an LP over aggregates cannot give one group of reps the units
    richest in one metric. At 1,000,000 accounts the enterprise reps, whose locked accounts hold more potential
    than their share, must take the mid-market accounts with the most potential per workload hour; cells
    mixing those with SMB accounts made every LP over aggregates infeasible at the scenario's exact
    tolerance (:data:`PROFILE_BINS` bins per axis made it feasible). Units of different classes are aggregated
    apart.

    Parameters
    ----------
    values
        Every metric's value per unit (the same units in each).

    Returns
    -------
    numpy.ndarray
        Class per unit, ``0 .. PROFILE_CLASSES - 1``; all zero with one metric.
    """
    axes = len(values) - 1
    out = np.zeros(len(values[0]) if values else 0, dtype=np.int64)
    if axes <= 0 or not len(out):
        return out
    bins = PROFILE_BINS
    while bins > 2 and bins**axes > PROFILE_CLASSES:
        bins -= 1
    axes = max(1, min(axes, int(math.log(PROFILE_CLASSES, bins) + 1e-9)))  # 2 bins: at most 3 axes

    def relative(value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        return value / max(float(value.mean()), 1e-300) + 1e-9

    first = np.log(relative(values[0]))
    for value in values[1 : axes + 1]:
        ratio = np.round(np.log(relative(value)) - first, 9)  # equal ratios stay equal despite rounding
        edges = np.quantile(ratio, np.linspace(0.0, 1.0, bins + 1)[1:-1])
        out = out * bins + np.searchsorted(edges, ratio, side="right")
    return out


def group_ratio(metric: MetricData, share: Fraction, *, upper: bool) -> tuple[int, int]:
    """``(num, den)``: a rep's load may be at most (``upper``) or at least ``num / den`` times its group's load.

    The ratio is ``(1 +- tolerance) x share`` for metrics balanced within segment groups, pulled in by
    :data:`INEXACT_MARGIN` when the metric's integer values are rounded (inexact scaling), as :func:`load_bounds`
    does for fixed bounds: without it a plan at the integer bound broke the tolerance on real values by
    0.0002 % (1M accounts, potential within segment).
    """
    margin = Fraction(0) if metric.exact else INEXACT_MARGIN
    factor = (1 + metric.tolerance_exact - margin) if upper else (1 - metric.tolerance_exact + margin)
    return bound_ratio(factor * share, upper=upper)


def bound_ratio(fraction: Fraction, *, upper: bool) -> tuple[int, int]:
    """Return ``(num, den)`` of a ratio, rounded safely when the denominator is huge."""
    if fraction.denominator <= 10**6:
        return fraction.numerator, fraction.denominator
    den = 10**6
    num = math.floor(fraction * den) if upper else math.ceil(fraction * den)
    return num, den


def with_tolerance(problem: Problem, metric: str, tolerance_pct: float) -> Problem:
    """Return a copy of ``problem`` with one metric's tolerance changed (bounds recomputed)."""
    changed = []
    for data in problem.metrics:
        if data.name == metric:
            tolerance = tolerance_pct / 100.0
            tolerance_exact = _exact_fraction(tolerance_pct) / 100
            lo, hi = (None, None)
            if not data.grouped:
                lo, hi = load_bounds(
                    data.values, data.scale, data.exact, problem.fte, tolerance, problem.fte_exact, tolerance_exact
                )
            data = replace(data, tolerance=tolerance, tolerance_exact=tolerance_exact, lo=lo, hi=hi)
        changed.append(data)
    return replace(problem, metrics=tuple(changed))


def best_centres(problem: Problem, unit_rep: np.ndarray) -> np.ndarray | None:
    """Every territory's best centre: the member unit from which its workload-weighted distance is smallest.

    Parameters
    ----------
    problem
        The problem.
    unit_rep
        Rep row of every unit.

    Returns
    -------
    numpy.ndarray or None
        Unit row of every rep's centre (0 for a rep without units); ``None`` unless compactness is centre-based.
    """
    if problem.centre_distance is None or problem.unit_weight is None:
        return None
    centres = np.zeros(problem.num_reps, dtype=np.int64)
    for r in range(problem.num_reps):
        members = np.flatnonzero(unit_rep == r)
        if len(members):
            sub = problem.unit_weight[members, None] * problem.centre_distance[np.ix_(members, members)]
            centres[r] = members[int(sub.sum(axis=0).argmin())]
    return centres


def with_fixed_centres(problem: Problem, centres: np.ndarray | None) -> Problem:
    """Centre-based compactness with each territory's centre held at a given unit.

    The objective is then linear in the assignment (like distance to a home base), which CP-SAT and the LP
    solve far faster than choosing centres; recomputing the centres after each step makes the search a
    location-allocation alternation (the true objective, with the best centres, never rises).

    Parameters
    ----------
    problem
        The problem (returned as it is unless compactness is centre-based).
    centres
        Unit row of every rep's centre (:func:`best_centres`).

    Returns
    -------
    Problem
        The problem with pair costs measured from the centres and no centre term.
    """
    if problem.centre_distance is None or problem.unit_weight is None or centres is None:
        return problem
    compactness = (
        problem.unit_weight[problem.pair_unit] * problem.centre_distance[problem.pair_unit, centres[problem.pair_rep]]
    )
    cost = problem.compactness_weight * compactness + problem.preference_weight * problem.pair_penalty
    if problem.pair_continuity is not None:
        cost = cost + problem.pair_continuity
    return replace(
        problem,
        pair_compactness=compactness,
        pair_cost=np.round(cost * problem.cost_scale).astype(np.int64),
        centre_distance=None,
        unit_weight=None,
    )
