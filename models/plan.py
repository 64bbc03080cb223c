"""A plan: every account assigned to a rep, with the KPIs planners read.

The plan knows nothing of the solver; it takes a :class:`SolveReport` (status,
objective, bound, gap ...) that the optimizer fills in, and computes every KPI
from the input data in real units, so the numbers in the files do not depend on
how the solver scaled them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from models.balance import balance_groups, deviation_pct, targets
from models.dataset import Dataset, metric_values
from models.geo import haversine_km
from models.quota import QuotaResult, plan_quotas
from models.scenario import ANY_SEGMENT, BUILTIN_METRICS, FORECAST_METRIC

#: Slack when checking tolerances on floats computed from the same data.
TOLERANCE_EPS = 1e-9


@dataclass(frozen=True)
class SolveReport:
    """How the plan was found: solver status and quality figures.

    Attributes
    ----------
    status
        ``optimal`` or ``feasible`` (stopped at the time limit or gap limit).
    objective, bound
        Objective of the plan and the best proven lower bound, in
        workload-hour x km (compactness plus weighted segment penalties).
    gap
        ``(objective - bound) / objective`` (0 when optimal).
    solve_seconds
        Wall time of the solver.
    interrupted
        Whether the user stopped the search (the plan is the best found so far).
    """

    status: str
    objective: float
    bound: float
    gap: float
    solve_seconds: float
    time_limit_s: float | None
    seed: int
    workers: int
    units: int
    interrupted: bool = False
    solver: str = "OR-Tools CP-SAT"
    objective_unit: str = "workload-hour x km"
    statistics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """An assignment of every account of a dataset to one rep.

    Parameters
    ----------
    dataset
        The validated accounts and reps.
    rep_index
        For every account row, the row of its rep in ``dataset.reps``.
    report
        How the solver found it.
    unit_rep
        Rep row of every unit of ``dataset.units`` (units without accounts
        included), when the plan was built on geographic units.
    """

    dataset: Dataset
    rep_index: np.ndarray
    report: SolveReport
    unit_rep: np.ndarray | None = None

    def __post_init__(self) -> None:
        rep_index = np.asarray(self.rep_index, dtype=np.int64)
        if rep_index.shape != (len(self.dataset.accounts),):
            raise ValueError("rep_index needs one entry per account")
        if len(rep_index) and (rep_index.min() < 0 or rep_index.max() >= len(self.dataset.reps)):
            raise ValueError("rep_index holds a rep row that does not exist")
        object.__setattr__(self, "rep_index", rep_index)

    # ------------------------------------------------------------------ basics
    @property
    def rep_ids(self) -> np.ndarray:
        """Rep id of every account, aligned with ``dataset.accounts``."""
        return self.dataset.reps["rep_id"].to_numpy(dtype=object)[self.rep_index]

    @cached_property
    def distance_km(self) -> np.ndarray:
        """Great-circle distance of every account from its rep's home base."""
        acc, reps = self.dataset.accounts, self.dataset.reps
        return haversine_km(
            acc["latitude"].to_numpy(float),
            acc["longitude"].to_numpy(float),
            reps["latitude"].to_numpy(float)[self.rep_index],
            reps["longitude"].to_numpy(float)[self.rep_index],
        )

    @cached_property
    def moved(self) -> np.ndarray:
        """Whether each account leaves its current rep (False where it has none)."""
        current = self.dataset.accounts["current_rep"].to_numpy(object, na_value=None)
        return np.array([c is not None and c != r for c, r in zip(current, self.rep_ids, strict=True)], dtype=bool)

    @cached_property
    def segment_match(self) -> np.ndarray:
        """Whether each account's segment fits its rep's preference.

        Without segment rules every account fits. A rep preferring ``any`` fits
        every segment.
        """
        rules = self.dataset.scenario.segment_rules
        if not rules:
            return np.ones(len(self.rep_index), dtype=bool)
        rep_seg = self.dataset.reps["segment"].to_numpy(dtype=object)[self.rep_index]
        acc_seg = self.dataset.accounts["segment"].to_numpy(dtype=object)
        return np.array(
            [r == ANY_SEGMENT or r in rules[a].reps for a, r in zip(acc_seg, rep_seg, strict=True)], dtype=bool
        )

    @property
    def metrics(self) -> list[str]:
        """Metrics reported: the built-in ones, custom balanced ones, and expected revenue when forecast."""
        custom = [m for m in self.dataset.scenario.balance if m not in BUILTIN_METRICS]
        if FORECAST_METRIC in self.dataset.accounts and FORECAST_METRIC not in custom:
            custom.append(FORECAST_METRIC)
        return [*BUILTIN_METRICS, *custom]

    @cached_property
    def quotas(self) -> QuotaResult | None:
        """Quotas from the scenario's ``quota`` section (``None`` without one); see :mod:`models.quota`."""
        settings = self.dataset.scenario.quota
        if settings is None:
            return None
        return plan_quotas({m: self.loads(m) for m in settings.weights}, self.dataset.reps, settings)

    def loads(self, metric: str) -> np.ndarray:
        """Total of ``metric`` held by each rep."""
        return np.bincount(
            self.rep_index,
            weights=metric_values(self.dataset.accounts, metric),
            minlength=len(self.dataset.reps),
        )

    def targets(self, metric: str) -> np.ndarray:
        """Each rep's FTE-scaled target of ``metric`` (see :mod:`models.balance`)."""
        rule = self.dataset.scenario.balance.get(metric)
        within = rule.within if rule is not None else "all"
        groups = balance_groups(list(self.dataset.reps["segment"]), within)
        return targets(self.loads(metric), self.dataset.reps["fte"].to_numpy(float), groups)

    # ------------------------------------------------------------------ tables
    def assignments(self) -> pd.DataFrame:
        """One row per account: its rep and what it brings (a copy: the caller may change it)."""
        return self._assignments.copy()

    @cached_property
    def _assignments(self) -> pd.DataFrame:
        """:meth:`assignments`, built once: the CSV, the workbook and the report each read it (2 s apiece at
        1,000,000 accounts)."""
        acc = self.dataset.accounts
        table = pd.DataFrame(
            {
                "account_id": acc["account_id"],
                "name": acc["name"],
                "rep_id": self.rep_ids,
                "segment": acc["segment"],
                "potential": acc["potential"],
                "workload": acc["workload"],
                "distance_km": np.round(self.distance_km, 3),
                "current_rep": acc["current_rep"],
                "moved": self.moved,
                "move_reason": self.move_reasons,
                "locked": acc["locked"],
                "family_id": acc["family_id"],
                "segment_match": self.segment_match,
                "latitude": acc["latitude"],
                "longitude": acc["longitude"],
            }
        )
        for metric in self.metrics:
            if metric not in BUILTIN_METRICS:
                table[metric] = acc[metric]
        return table

    def territories(self) -> pd.DataFrame:
        """One row per rep: totals, targets and deviations of every metric, travel."""
        reps = self.dataset.reps
        n_reps = len(reps)
        table = pd.DataFrame(
            {
                "rep_id": reps["rep_id"],
                "name": reps["name"],
                "segment": reps["segment"],
                "fte": reps["fte"],
            }
        )
        for metric in self.metrics:
            loads = self.loads(metric)
            target = self.targets(metric)
            table[metric] = loads
            table[f"{metric}_target"] = np.round(target, 6)
            table[f"{metric}_deviation_pct"] = np.round(deviation_pct(loads, target), 4)
        weights = self.dataset.accounts["workload"].to_numpy(float)
        dist = self.distance_km
        counts = np.bincount(self.rep_index, minlength=n_reps)
        with np.errstate(invalid="ignore", divide="ignore"):
            table["mean_distance_km"] = np.round(
                np.bincount(self.rep_index, weights=dist, minlength=n_reps) / counts, 3
            )
        max_dist = np.zeros(n_reps)
        with np.errstate(invalid="ignore"):  # reps without a home base have NaN distances, and a NaN maximum
            np.maximum.at(max_dist, self.rep_index, dist)
        table["max_distance_km"] = np.round(max_dist, 3)
        table["workload_km"] = np.round(np.bincount(self.rep_index, weights=weights * dist, minlength=n_reps), 3)
        matches = np.bincount(self.rep_index, weights=self.segment_match.astype(float), minlength=n_reps)
        with np.errstate(invalid="ignore", divide="ignore"):
            table["segment_match_pct"] = np.round(100.0 * matches / counts, 3)
        for column, values in self.shape_kpis.items():
            table[column] = values
        if self.quotas is not None:
            table["quota"] = self.quotas.quota
            table["quota_per_fte"] = np.round(self.quotas.quota / reps["fte"].to_numpy(float), 2)
            table["quota_limit"] = self.quotas.limit
        return table

    @cached_property
    def territory_shapes(self) -> list[Any]:
        """Each rep's territory as one dissolved (multi)polygon of its units, or None (no unit polygons)."""
        units = self.dataset.units
        if units is None or units.geometry is None or self.unit_rep is None:
            return [None] * len(self.dataset.reps)
        import shapely

        geoms = np.asarray(units.geometry.values, dtype=object)
        return [
            shapely.union_all(geoms[self.unit_rep == r]) if (self.unit_rep == r).any() else None
            for r in range(len(self.dataset.reps))
        ]

    @cached_property
    def layer_of_account(self) -> np.ndarray | None:
        """Team layer of every account (index into ``layer_names``; -1 for key accounts), or ``None`` with one layer."""
        units = self.dataset.units
        if units is None or len(units.layer_names) < 2:
            return None
        return units.unit_layer[units.unit_of_account]

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the team layers (``units.team_layers``); one name when the plan has one layer."""
        units = self.dataset.units
        return units.layer_names if units is not None else ("general",)

    @cached_property
    def layer_shapes(self) -> list[list[Any]] | None:
        """Each rep's territory on each team layer (``[layer][rep]``): dissolved unit polygons, or None.

        ``None`` without team layers or without unit polygons.
        """
        units = self.dataset.units
        if self.layer_of_account is None or units is None or units.geometry is None or self.unit_rep is None:
            return None
        import shapely

        geoms = np.asarray(units.geometry.values, dtype=object)
        out = []
        for layer in range(len(units.layer_names)):
            on_layer = units.unit_layer == layer
            out.append(
                [
                    shapely.union_all(geoms[on_layer & (self.unit_rep == r)])
                    if (on_layer & (self.unit_rep == r)).any()
                    else None
                    for r in range(len(self.dataset.reps))
                ]
            )
        return out

    @cached_property
    def shape_kpis(self) -> dict[str, np.ndarray]:
        """Area, Polsby-Popper compactness and diameter per territory (where unit polygons exist)."""
        units = self.dataset.units
        n_reps = len(self.dataset.reps)
        if units is None or self.unit_rep is None:
            if self.dataset.scenario.objective.compactness_measure != "diameter":
                return {}
            # account-level plans optimised for the smallest diameter report it too, between accounts
            acc = self.dataset.accounts
            points = (acc["latitude"].to_numpy(float), acc["longitude"].to_numpy(float))
            return {"diameter_km": _diameters_km(*points, self.rep_index, n_reps)}
        out = {"diameter_km": _diameters_km(units.latitude, units.longitude, self.unit_rep, n_reps)}
        if units.geometry is None:
            return out
        import geopandas as gpd

        shapes = gpd.GeoSeries(self.territory_shapes, crs="EPSG:4326").to_crs("EPSG:6933")  # equal-area metres
        area = shapes.area.fillna(0.0).to_numpy() / 1e6
        perimeter = shapes.length.fillna(0.0).to_numpy() / 1e3
        with np.errstate(invalid="ignore", divide="ignore"):
            polsby = np.where(perimeter > 0, 4 * np.pi * area / perimeter**2, np.nan)
        out["area_km2"] = np.round(area, 3)
        out["polsby_popper"] = np.round(polsby, 4)
        return out

    # ----------------------------------------------------------------- summary
    def metric_summary(self) -> dict[str, dict[str, Any]]:
        """Per metric: total, target, min / max load, worst deviation, tolerance.

        ``target`` is the share of one full-time rep (a 0.5 FTE rep's target is
        half of it): one number when the metric is balanced across all reps, one
        number per rep segment preference when it is balanced within segments.
        """
        out: dict[str, dict[str, Any]] = {}
        for metric in self.metrics:
            loads = self.loads(metric)
            target = self.targets(metric)
            dev = deviation_pct(loads, target)
            rule = self.dataset.scenario.balance.get(metric)
            max_dev = float(np.max(np.abs(dev))) if len(dev) else 0.0
            entry: dict[str, Any] = {
                "total": float(loads.sum()),
                "balanced": rule is not None,
                "within": rule.within if rule is not None else None,
                "target": self._target_per_fte(target),
                "min": float(loads.min()),
                "max": float(loads.max()),
                "max_deviation_pct": round(max_dev, 4),
                "tolerance_pct": rule.tolerance_pct if rule is not None else None,
                "within_tolerance": (max_dev <= rule.tolerance_pct + TOLERANCE_EPS) if rule is not None else None,
            }
            out[metric] = entry
        return out

    def _target_per_fte(self, target: np.ndarray) -> float | dict[str, float]:
        per_fte = target / self.dataset.reps["fte"].to_numpy(float)
        segments = self.dataset.reps["segment"].to_numpy(dtype=object)
        by_segment = {str(s): float(per_fte[segments == s][0]) for s in dict.fromkeys(segments)}
        if np.allclose(per_fte, per_fte[0]):
            return float(per_fte[0])
        return by_segment

    def _geography_summary(self) -> dict[str, Any] | None:
        """Units, contiguity and shape totals (None without geographic units)."""
        units = self.dataset.units
        if units is None or self.unit_rep is None:
            return None
        kpis = self.shape_kpis
        scenario = self.dataset.scenario
        out: dict[str, Any] = {
            "unit_source": scenario.units.source,
            "units": len(units.unit_ids),
            "key_account_units": int(units.key.sum()),
            "contiguous_required": scenario.territories.contiguous,
            "max_diameter_km": float(kpis["diameter_km"].max()),
            "notes": list(units.notes),
        }
        if "area_km2" in kpis:
            out["total_area_km2"] = round(float(kpis["area_km2"].sum()), 3)
            out["mean_polsby_popper"] = _finite(float(np.nanmean(kpis["polsby_popper"])))
        if len(units.layer_names) > 1:
            out["team_layers"] = self._layer_summary()
        return out

    def _layer_summary(self) -> list[dict[str, Any]]:
        """Per team layer: its units and accounts, the territories on it and how many of them are one piece."""
        import networkx as nx

        units = self.dataset.units
        assert units is not None and self.unit_rep is not None
        graph = units.graph()
        reps = self.dataset.reps["rep_id"].astype(str).to_numpy()
        accounts = np.bincount(units.unit_of_account, minlength=units.num_units)
        out = []
        for number, name in enumerate(units.layer_names):
            on_layer = units.unit_layer == number
            holders = np.unique(self.unit_rep[on_layer])
            split = [
                str(reps[r])
                for r in holders
                if not nx.is_connected(graph.subgraph(np.flatnonzero(on_layer & (self.unit_rep == r)).tolist()))
            ]
            out.append(
                {
                    "layer": name,
                    "units": int(on_layer.sum()),
                    "accounts": int(accounts[on_layer].sum()),
                    "territories": [str(reps[r]) for r in holders],
                    "territories_in_pieces": split,
                }
            )
        return out

    @cached_property
    def move_reasons(self) -> np.ndarray:
        """Why each account moved ('' where it stayed or has no baseline).

        ``departing rep``: its baseline rep leaves; ``new territory``: it goes to
        an open territory for a hire; ``segment``: its baseline rep no longer
        fits its segment (e.g. the rep changed segment) and the new one does;
        ``balance``: moved to even out the loads (or shorten travel).
        """
        acc = self.dataset.accounts
        current = acc["current_rep"].to_numpy(object, na_value=None)
        out = np.full(len(acc), "", dtype=object)
        moved = self.moved
        if not moved.any():
            return out
        rules = self.dataset.scenario.segment_rules
        rep_segment = dict(zip(self.dataset.reps["rep_id"], self.dataset.reps["segment"], strict=True))
        departed, hires = set(self.dataset.departed), set(self.dataset.hires)
        segments = acc["segment"].to_numpy(dtype=object)
        rep_ids, segment_match = self.rep_ids, self.segment_match  # rep_ids builds an array per call
        for i in np.flatnonzero(moved):
            if current[i] in departed:
                out[i] = "departing rep"
            elif rep_ids[i] in hires:
                out[i] = "new territory"
            elif (
                rules
                and segments[i] in rules
                and segment_match[i]
                and not _fits(rules[segments[i]].reps, rep_segment.get(current[i]))
            ):
                out[i] = "segment"
            else:
                out[i] = "balance"
        return out

    def changes(self) -> pd.DataFrame:
        """One row per moved account: from rep, to rep, potential and workload moved, reason."""
        acc = self.dataset.accounts
        moved = self.moved
        return pd.DataFrame(
            {
                "account_id": acc["account_id"].to_numpy()[moved],
                "name": acc["name"].to_numpy()[moved],
                "segment": acc["segment"].to_numpy()[moved],
                "from_rep": acc["current_rep"].to_numpy(object)[moved],
                "to_rep": self.rep_ids[moved],
                "potential": acc["potential"].to_numpy(float)[moved],
                "workload": acc["workload"].to_numpy(float)[moved],
                "reason": self.move_reasons[moved],
            }
        )

    def moves(self) -> dict[str, Any]:
        """Moves against the baseline: totals, forced moves, reasons, and each rep's gains and losses."""
        acc = self.dataset.accounts
        has_base = acc["current_rep"].notna().to_numpy()
        moved = self.moved
        current = acc["current_rep"].to_numpy(object, na_value=None)
        potential = acc["potential"].to_numpy(float)
        workload = acc["workload"].to_numpy(float)
        reasons = self.move_reasons
        forced = reasons == "departing rep"
        # totals by rep row, in one pass over the accounts (a pass per rep took minutes at 1M accounts x 500 reps)
        rep_list = [*self.dataset.reps["rep_id"], *self.dataset.departed]
        row_of = {rep: i for i, rep in enumerate(rep_list)}
        to_row = self.rep_index[moved]
        from_row = np.array([row_of.get(c, -1) for c in current[moved]], dtype=np.int64)
        known = from_row >= 0

        def by_row(rows: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(rows, weights=weights, minlength=len(rep_list))

        totals = {
            "accounts_gained": by_row(to_row),
            "accounts_lost": by_row(from_row[known]),
            "potential_gained": by_row(to_row, potential[moved]),
            "potential_lost": by_row(from_row[known], potential[moved][known]),
            "workload_gained": by_row(to_row, workload[moved]),
            "workload_lost": by_row(from_row[known], workload[moved][known]),
        }
        per_rep: dict[str, dict[str, float]] = {}
        for i, rep in enumerate(rep_list):
            per_rep[str(rep)] = {
                name: int(values[i]) if name.startswith("accounts") else float(values[i])
                for name, values in totals.items()
            }
            per_rep[str(rep)]["departed"] = rep in self.dataset.departed
        total_potential = float(potential.sum())
        rules = self.dataset.scenario.continuity
        return {
            "baseline": self.dataset.baseline if has_base.any() else None,
            "accounts_with_baseline": int(has_base.sum()),
            "accounts_moved": int(moved.sum()),
            "forced_moves": int(forced.sum()),
            "discretionary_moves": int((moved & ~forced).sum()),
            "potential_moved": float(potential[moved].sum()),
            "potential_moved_pct": round(100.0 * potential[moved].sum() / total_potential, 4)
            if total_potential > 0
            else 0.0,
            "discretionary_potential_moved_pct": round(100.0 * potential[moved & ~forced].sum() / total_potential, 4)
            if total_potential > 0
            else 0.0,
            "workload_moved": float(workload[moved].sum()),
            "by_reason": {str(k): int(v) for k, v in zip(*np.unique(reasons[moved], return_counts=True), strict=True)},
            "departed_reps": list(self.dataset.departed),
            "new_territories": list(self.dataset.hires),
            "budget": {
                "max_moved_accounts": rules.max_moved_accounts,
                "max_moved_potential_pct": rules.max_moved_potential_pct,
                "counts": "accounts leaving reps who stay (a departing rep's accounts are not counted)",
            },
            "move_penalty_km": rules.move_penalty_km,
            "notes": list(self.dataset.notes),
            "per_rep": per_rep,
        }

    def summary(self) -> dict[str, Any]:
        """Everything ``summary.json`` holds."""
        scenario = self.dataset.scenario
        metrics = self.metric_summary()
        balanced = [m for m in metrics.values() if m["balanced"]]
        report = asdict(self.report)
        report.pop("status")
        return {
            "scenario": scenario.name,
            "scenario_file": None if self.dataset.source is None else str(self.dataset.source),
            "description": scenario.description,
            "status": self.report.status,
            "interrupted": report.pop("interrupted"),
            "objective": _finite(report.pop("objective")),
            "bound": _finite(report.pop("bound")),
            "gap": _finite(report.pop("gap")),
            "solve_seconds": round(report.pop("solve_seconds"), 3),
            "solver": report,
            "accounts": len(self.dataset.accounts),
            "reps": len(self.dataset.reps),
            "set_aside": {
                "accounts": len(self.dataset.set_aside),
                "file": "set_aside.csv",
                "policy": scenario.data.unusable_accounts,
            },
            "all_within_tolerance": all(m["within_tolerance"] for m in balanced),
            "metrics": metrics,
            "compactness": {
                "workload_km": _finite(round(float((self.distance_km * self.dataset.accounts["workload"]).sum()), 3)),
                "mean_distance_km": _finite(round(float(self.distance_km.mean()), 3)),
                "max_distance_km": _finite(round(float(self.distance_km.max()), 3)),
            },
            "segment_match_share": round(float(self.segment_match.mean()), 6),
            "geography": self._geography_summary(),
            "moves": self.moves(),
            "forecast": self.dataset.forecast.summary() if self.dataset.forecast is not None else None,
            "quota": self.quotas.summary(self.dataset.reps["rep_id"], self.dataset.reps["fte"].to_numpy(float))
            if self.quotas is not None
            else None,
        }


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _fits(allowed: list[str], rep_segment: str | None) -> bool:
    """Whether a rep of segment preference ``rep_segment`` fits a rule allowing ``allowed``."""
    return rep_segment is None or rep_segment == ANY_SEGMENT or rep_segment in allowed


def _diameters_km(lat: np.ndarray, lon: np.ndarray, labels: np.ndarray, n_reps: int) -> np.ndarray:
    """Largest great-circle distance between two points of each territory, km (0 below two points)."""
    diameter = np.zeros(n_reps)
    for r in range(n_reps):
        members = np.flatnonzero(labels == r)
        if len(members) > 1:
            la, lo = lat[members], lon[members]
            diameter[r] = haversine_km(la[:, None], lo[:, None], la[None, :], lo[None, :]).max()
    return np.round(diameter, 3)
