"""Scenario files: the YAML schema, loading and validation.

A scenario names the data, maps the columns of real exports onto the
engine's vocabulary, and sets the balance rules, segment rules, objective and
solver settings. The schema is a pydantic model; its JSON Schema is published
as ``scenarios/scenario.schema.json`` (``territory schema`` prints it).
"""

from __future__ import annotations

import datetime
import difflib
import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.errors import InputError, InputIssue

logger = logging.getLogger(__name__)

#: Metrics every plan can balance without naming a column.
BUILTIN_METRICS = ("accounts", "potential", "workload")
#: The metric computed from the opportunities table by the forecast (see :mod:`models.forecast`).
FORECAST_METRIC = "expected_revenue"
#: The rep segment preference that accepts every account segment.
ANY_SEGMENT = "any"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountColumns(_Strict):
    """Which column of the accounts table holds each field.

    A field left unset uses the standard name (``id``, ``latitude`` ...) when
    the table has it; a field set explicitly must exist in the table.
    """

    id: str | None = Field(None, description="Unique account id (default column 'id').")
    name: str | None = Field(None, description="Account name (default 'name'; optional).")
    latitude: str | None = Field(None, description="Latitude in WGS84 degrees (default 'latitude').")
    longitude: str | None = Field(None, description="Longitude in WGS84 degrees (default 'longitude').")
    segment: str | None = Field(None, description="Account segment label (default 'segment').")
    potential: str | None = Field(None, description="Revenue potential (default 'potential').")
    workload: str | None = Field(
        None, description="Workload in hours per year (default 'workload'; else derived from segment)."
    )
    current_rep: str | None = Field(None, description="Rep id owning the account today (default 'current_rep').")
    locked: str | None = Field(None, description="Keep with the current rep when true (default 'locked').")
    parent_id: str | None = Field(None, description="Parent account id: a family moves as one (default 'parent_id').")


class RepColumns(_Strict):
    """Which column of the reps table holds each field (unset: standard name)."""

    id: str | None = Field(None, description="Unique rep id (default 'id').")
    name: str | None = Field(None, description="Rep name (default 'name'; optional).")
    latitude: str | None = Field(None, description="Home-base latitude (default 'latitude').")
    longitude: str | None = Field(None, description="Home-base longitude (default 'longitude').")
    segment: str | None = Field(None, description="Segment preference: a segment label or 'any' (default 'segment').")
    fte: str | None = Field(None, description="Capacity in FTE (default 'fte'; 1.0 when absent).")
    quota_floor: str | None = Field(
        None, description="This rep's lowest quota, overriding quota.floor (default 'quota_floor'; optional)."
    )
    quota_cap: str | None = Field(
        None, description="This rep's highest quota, overriding quota.cap (default 'quota_cap'; optional)."
    )


class OpportunityColumns(_Strict):
    """Which column of the opportunities table holds each field (unset: standard name)."""

    id: str | None = Field(None, description="Unique opportunity id (default 'id').")
    account_id: str | None = Field(None, description="Account id of the deal (default 'account_id').")
    amount: str | None = Field(None, description="Deal value, zero or more (default 'amount').")
    opened: str | None = Field(None, description="Date the deal was opened, YYYY-MM-DD (default 'opened').")
    stage: str | None = Field(None, description="Sales stage label (default 'stage'; required for stage weights).")
    expected_close: str | None = Field(
        None, description="Expected close date, YYYY-MM-DD (default 'expected_close'; optional)."
    )
    closed: str | None = Field(
        None, description="Date a closed deal was closed, blank while open (default 'closed'; optional)."
    )
    won: str | None = Field(None, description="Whether a closed deal was won, true/false (default 'won'; optional).")


class Columns(_Strict):
    """Column mapping for both tables."""

    accounts: AccountColumns = AccountColumns()
    reps: RepColumns = RepColumns()
    opportunities: OpportunityColumns = OpportunityColumns()


class DataPaths(_Strict):
    """Input tables, relative to the scenario file."""

    accounts: Path = Field(description="Accounts table: .csv, .xlsx, .parquet, .geojson or .gpkg.")
    reps: Path = Field(description="Reps table: .csv, .xlsx, .parquet, .geojson or .gpkg.")
    accounts_sheet: str | None = Field(None, description="Excel sheet or GeoPackage layer of the accounts.")
    reps_sheet: str | None = Field(None, description="Excel sheet or GeoPackage layer of the reps.")
    opportunities: Path | None = Field(
        None, description="Optional opportunities table (.csv, .xlsx, .parquet): the pipeline the forecast uses."
    )
    opportunities_sheet: str | None = Field(None, description="Excel sheet of the opportunities.")
    unusable_accounts: Literal["fail", "set_aside"] = Field(
        "fail",
        description=(
            "Accounts with unusable values (no coordinates, bad potential or workload, a segment without a rule): "
            "'fail' stops with every problem listed; 'set_aside' plans without them and lists them in set_aside.csv."
        ),
    )


class Workload(_Strict):
    """How each account's workload (hours per year) is known."""

    by_segment: dict[str, float] | None = Field(
        None,
        description="Hours per year for each account segment, used when the accounts table has no workload column.",
    )

    @field_validator("by_segment")
    @classmethod
    def _non_negative(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        for label, hours in value.items():
            if not hours >= 0:
                raise ValueError(f"hours for segment '{label}' must be zero or more, got {hours}")
        return {str(k).strip().lower(): float(v) for k, v in value.items()}


class MetricRule(_Strict):
    """Balance rule for one metric."""

    tolerance_pct: float = Field(gt=0, lt=100, description="Allowed deviation from each rep's FTE-scaled target, in %.")
    within: Literal["all", "segment"] = Field(
        "all",
        description=(
            "'all': the target is the rep's FTE share of the whole total; 'segment': the rep's FTE share "
            "of what the reps with the same segment preference hold together."
        ),
    )
    column: str | None = Field(None, description="Column of the accounts table to balance (custom metrics only).")


class SegmentRule(_Strict):
    """Which reps may (hard) or should (soft) take accounts of one segment."""

    reps: list[str] = Field(min_length=1, description="Rep segment preferences that fit this account segment.")
    mode: Literal["hard", "soft"] = Field(
        "soft", description="'hard': only fitting reps; 'soft': others allowed at a penalty."
    )
    penalty_km: float = Field(
        100.0,
        ge=0,
        description="Soft rules: a misfit account costs as if it were this many km farther away.",
    )

    @field_validator("reps")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [str(v).strip().lower() for v in value]


class KeyAccounts(_Strict):
    """Accounts that stay units of their own, assigned individually across the map."""

    segments: list[str] = Field(default_factory=list, description="Account segments that are key accounts.")
    min_potential: float | None = Field(None, ge=0, description="Accounts with at least this potential.")

    @field_validator("segments")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [str(v).strip().lower() for v in value]


class Units(_Strict):
    """Basic units: the blocks that move as a whole and that contiguity is measured on."""

    source: Literal["accounts", "polygons", "points", "hexagons", "voronoi"] = Field(
        "accounts",
        description=(
            "'accounts': one account (family) per unit; 'polygons': a layer of postal codes, counties ... "
            "given in 'path'; 'points': units known by a point each (a table in 'path', or the codes of "
            "'account_column' placed at their accounts' mean), their neighbours from 'adjacency'; 'hexagons': H3 "
            "cells generated from account coordinates; 'voronoi': Voronoi cells around groups of nearby accounts, "
            "clipped to the area they cover."
        ),
    )
    path: Path | None = Field(
        None,
        description=(
            "'polygons': the polygon layer (GeoJSON, shapefile, GeoPackage); 'points': a table of unit points "
            "(.csv, .xlsx, .parquet with latitude/longitude columns, or a point layer)."
        ),
    )
    layer: str | None = Field(None, description="Layer of a GeoPackage (or sheet of an Excel table of points).")
    id_column: str | None = Field(None, description="Unit id column of the layer (default: its row number).")
    account_column: str | None = Field(
        None,
        description=(
            "Accounts column holding the unit id (e.g. a postal code); unset: join by point in polygon "
            "('polygons') or to the nearest unit point ('points')."
        ),
    )
    adjacency: Path | None = Field(
        None,
        description=(
            "Neighbour table (.csv, .xlsx, .parquet): one row per pair of neighbouring units (a postal-code "
            "neighbour table, a dual graph), in the columns of 'adjacency_columns'. It replaces the adjacency "
            "the engine would derive (shared borders, triangulation). For sources 'accounts', 'polygons', 'points'."
        ),
    )
    adjacency_columns: tuple[str, str] = Field(
        ("unit_a", "unit_b"), description="The two unit id columns of the neighbour table."
    )
    team_layers: bool = Field(
        False,
        description=(
            "Build one unit layer per team: accounts under a hard segment rule (e.g. enterprise accounts, which "
            "only enterprise reps may take) get units of their own, apart from the other accounts. Contiguity "
            "then holds for each territory on each layer: the enterprise territories tile the map on the "
            "enterprise layer, the others on theirs."
        ),
    )
    resolution: int = Field(5, ge=0, le=15, description="H3 resolution of generated hexagons / Voronoi groups.")
    key_accounts: KeyAccounts | None = Field(None, description="Accounts kept as units of their own.")
    islands: Literal["connect_nearest", "warn"] = Field(
        "connect_nearest",
        description=(
            "Units or groups with no shared border to the rest: 'connect_nearest' links each such group to its "
            "nearest unit (with a warning naming it); 'warn' only warns (contiguity may then be infeasible)."
        ),
    )
    extra_edges: list[tuple[str | int, str | int]] = Field(
        default_factory=list, description="Unit id pairs to treat as neighbours (ferries, bridges, exclaves)."
    )

    @model_validator(mode="after")
    def _source_needs(self) -> Units:
        if self.adjacency is not None and self.source in ("hexagons", "voronoi"):
            raise ValueError(
                f"units.adjacency names neighbours by unit id, but source '{self.source}' generates its units and "
                "their ids: use source 'points', 'polygons' or 'accounts' with a neighbour table"
            )
        if self.source == "points" and self.path is None and self.account_column is None:
            raise ValueError(
                "source 'points' needs units.path (a table of unit points) or units.account_column (the accounts "
                "column holding each account's unit code)"
            )
        return self


class Territories(_Strict):
    """Shape rules for territories."""

    contiguous: bool = Field(False, description="Every territory one connected area of units (hard).")
    max_distance_km: float | None = Field(
        None, gt=0, description="Hard limit: no unit farther than this from its rep's home base."
    )


class Objective(_Strict):
    """Weights of the objective terms (both in workload-hour x km)."""

    compactness: float = Field(1.0, ge=0, description="Weight of compactness (workload-weighted distance).")
    compactness_measure: Literal["home_base", "centre", "diameter"] = Field(
        "home_base",
        description=(
            "'home_base': workload-weighted distance of each unit from its rep's home base; 'centre': from the "
            "territory's centre unit, chosen by the solver (open territories, reps without home base); "
            "'diameter': minimise the largest territory diameter (the largest distance between two units of one "
            "territory, measured as set by 'distance')."
        ),
    )
    distance: Literal["great_circle", "graph"] = Field(
        "great_circle",
        description="'great_circle' between coordinates, or 'graph': shortest path over the unit adjacency graph.",
    )
    preference: float = Field(1.0, ge=0, description="Weight of soft segment-rule penalties.")


class Forecast(_Strict):
    """How each open opportunity's win probability, and so its expected revenue, is estimated."""

    model: Literal["sales_cycle", "stage_weights"] = Field(
        "sales_cycle",
        description=(
            "'sales_cycle': probability = days worked / average cycle length, capped; 'stage_weights': "
            "probability given per sales stage."
        ),
    )
    as_of: datetime.date | None = Field(
        None, description="Date the forecast is made (YYYY-MM-DD); opened dates after it are refused. Default: today."
    )
    cycle_days: float | None = Field(
        None, gt=0, description="Average sales cycle in days for every segment (sales_cycle model)."
    )
    cycle_days_by_segment: dict[str, float] | None = Field(
        None, description="Average sales cycle in days per account segment; wins over cycle_days."
    )
    min_closed_deals: int = Field(
        3,
        ge=1,
        description=(
            "Segments without a given cycle estimate it from their closed (won) deals when they have at least "
            "this many; else from all closed deals."
        ),
    )
    cap: float = Field(0.9, gt=0, le=1, description="Highest win probability the sales-cycle model gives an open deal.")
    stage_weights: dict[str, float] | None = Field(
        None, description="Win probability (0 to 1) of an open deal per sales stage label (stage_weights model)."
    )

    @field_validator("cycle_days_by_segment")
    @classmethod
    def _positive_cycles(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        for label, days in value.items():
            if not days > 0:
                raise ValueError(f"cycle length for segment '{label}' must be above zero days, got {days}")
        return {str(k).strip().lower(): float(v) for k, v in value.items()}

    @field_validator("stage_weights")
    @classmethod
    def _probabilities(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        for label, weight in value.items():
            if not 0 <= weight <= 1:
                raise ValueError(f"weight of stage '{label}' must be between 0 and 1, got {weight}")
        return {str(k).strip().lower(): float(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _model_needs(self) -> Forecast:
        if self.model == "stage_weights" and not self.stage_weights:
            raise ValueError("model 'stage_weights' needs forecast.stage_weights: {<stage>: <probability>, ...}")
        return self


class Quota(_Strict):
    """Quotas: the company target shared over territories in proportion to a blend of their metrics."""

    target: int = Field(gt=0, description="Company target: the quotas sum to exactly this.")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"potential": 1.0},
        description=(
            "Blend of territory shares: metric -> weight, e.g. {potential: 0.5, expected_revenue: 0.5}; a "
            "territory's quota is proportional to the weighted sum of its shares of each metric's total."
        ),
    )
    rounding: int = Field(1000, ge=1, description="Every quota is a multiple of this (the target must be too).")
    floor: float | None = Field(
        None, ge=0, description="Lowest quota of a full-time rep (scaled by FTE); a reps column may override it."
    )
    cap: float | None = Field(
        None, gt=0, description="Highest quota of a full-time rep (scaled by FTE); a reps column may override it."
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not weight >= 0:
                raise ValueError(f"weight of '{name}' must be zero or more, got {weight}")
        if not sum(value.values()) > 0:
            raise ValueError("at least one weight must be above zero")
        return value

    @model_validator(mode="after")
    def _multiple(self) -> Quota:
        if self.target % self.rounding:
            low = self.target // self.rounding * self.rounding
            raise ValueError(
                f"target {self.target:,} is not a multiple of rounding {self.rounding:,}, so rounded quotas "
                f"cannot sum to it: use {low:,} or {low + self.rounding:,}, or a finer rounding"
            )
        if self.floor is not None and self.cap is not None and self.floor > self.cap:
            raise ValueError(f"floor {self.floor:g} is above cap {self.cap:g}")
        return self


class Solver(_Strict):
    """CP-SAT settings."""

    time_limit_s: float | None = Field(
        30.0,
        gt=0,
        description=(
            "Wall-clock limit of the solve, seconds. null: no limit; the search then stops on deterministic "
            "criteria and the same scenario, seed and workers give the same plan."
        ),
    )
    seed: int = Field(0, ge=0, description="Random seed of the search.")
    workers: int = Field(0, ge=0, description="Search workers; 0 uses every core.")
    work_limit: float = Field(
        100.0,
        gt=0,
        description=(
            "Without a time limit (time_limit_s: null): CP-SAT deterministic time the search may use in all "
            "(about a second of work per unit on a typical core); reproducible, unlike wall-clock limits."
        ),
    )
    relative_gap: float = Field(
        0.0, ge=0, lt=1, description="Stop when the proven gap is at most this fraction (0: prove optimal)."
    )
    candidate_reps: int | None = Field(
        None,
        ge=1,
        description=(
            "Offer each account only its N nearest eligible reps (plus its current rep). None: all reps, except "
            "that problems of more than 20 million unit-rep pairs (e.g. 1M accounts x 500 reps) offer each "
            "account its 20 nearest eligible reps, its current rep and the reps that a coarse balanced plan of "
            "0.5-degree grid cells gives its cell (so metros with more accounts than reps can hand accounts to "
            "their neighbours); set a number to choose another limit."
        ),
    )


class NewRep(_Strict):
    """An open territory for a hire: a rep row the reps table does not hold yet."""

    id: str = Field(min_length=1, description="Id of the open territory (e.g. 'HIRE-1'); must be new.")
    name: str | None = Field(None, description="Name shown in reports (default: the id).")
    latitude: float | None = Field(None, ge=-90, le=90, description="Home-base latitude (WGS84).")
    longitude: float | None = Field(None, ge=-180, le=180, description="Home-base longitude (WGS84).")
    segment: str = Field(ANY_SEGMENT, description="Segment preference: a segment label or 'any'.")
    fte: float = Field(1.0, gt=0, description="Capacity in FTE.")

    @field_validator("segment")
    @classmethod
    def _lower(cls, value: str) -> str:
        return str(value).strip().lower() or ANY_SEGMENT


class RepChange(_Strict):
    """A change to an existing rep: part time, or a move to another segment."""

    fte: float | None = Field(None, gt=0, description="New capacity in FTE.")
    segment: str | None = Field(None, description="New segment preference.")

    @field_validator("segment")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return None if value is None else (str(value).strip().lower() or ANY_SEGMENT)


class Headcount(_Strict):
    """Headcount edits applied to the reps table (the table itself is left untouched)."""

    remove: list[str] = Field(
        default_factory=list,
        description="Ids of reps who leave: their accounts must move (their locks are released, with a warning).",
    )
    add: list[NewRep] = Field(default_factory=list, description="Open territories for hires.")
    change: dict[str, RepChange] = Field(default_factory=dict, description="Rep id -> new FTE and/or segment.")

    @field_validator("remove")
    @classmethod
    def _strip(cls, value: list[str]) -> list[str]:
        return [str(v).strip() for v in value]


class Baseline(_Strict):
    """Where the plan in force comes from, when it is not the accounts' current-rep column."""

    plan: Path | None = Field(None, description="A plan folder (its assignments.csv), relative to the scenario file.")
    scenario: Path | None = Field(
        None,
        description="Another scenario file whose plan is the baseline; it is solved first (or taken from a plan "
        "folder given with --baseline, or from the same `territory compare` run).",
    )

    @model_validator(mode="after")
    def _one(self) -> Baseline:
        if (self.plan is None) == (self.scenario is None):
            raise ValueError("give exactly one of 'plan' (a plan folder) or 'scenario' (a scenario file)")
        return self


class Continuity(_Strict):
    """Minimal disruption against the baseline (the plan in force)."""

    baseline: Literal["current_rep"] | Baseline = Field(
        "current_rep",
        description="'current_rep': the accounts' current-rep column; {plan: DIR}: a previous plan folder; "
        "{scenario: FILE}: the plan of another scenario.",
    )
    move_penalty_km: float = Field(
        0.0,
        ge=0,
        description=(
            "Cost of moving an account away from its baseline rep, weighted by potential: an account of average "
            "potential costs as if its workload lay this many km farther away (0: moves are free)."
        ),
    )
    max_moved_accounts: int | None = Field(
        None, ge=0, description="Hard budget: at most this many accounts leave a rep who stays."
    )
    max_moved_potential_pct: float | None = Field(
        None, ge=0, le=100, description="Hard budget: at most this % of the total potential leaves a rep who stays."
    )


class Scenario(_Strict):
    """A territory design scenario."""

    name: str = Field(description="Short name shown in reports.")
    description: str = Field("", description="What this scenario is for.")
    data: DataPaths
    columns: Columns = Columns()
    workload: Workload = Workload()
    balance: dict[str, MetricRule] = Field(
        description="Metrics to balance: 'accounts', 'potential', 'workload' or custom names with a column.",
        min_length=1,
    )
    segment_rules: dict[str, SegmentRule] = Field(
        default_factory=dict,
        description="One rule per account segment label; empty: segments are ignored.",
    )
    extends: Path | None = Field(
        None,
        description="A scenario file this one builds on (relative to this file): its keys apply unless set here; "
        "mappings merge key by key, lists and values are replaced.",
    )
    headcount: Headcount = Headcount()
    pins: Path | None = Field(
        None,
        description="Pins table (.csv, .xlsx, .parquet; relative to this file): columns account_id or unit_id, "
        "rep_id and an optional note. Each pin keeps its account's family or unit with that rep in every solve "
        "(a hard lock; it wins over the accounts table's lock).",
    )
    continuity: Continuity = Continuity()
    units: Units = Units()
    territories: Territories = Territories()
    objective: Objective = Objective()
    solver: Solver = Solver()
    forecast: Forecast | None = Field(
        None, description="Forecast model for the opportunities table (default with data.opportunities: sales_cycle)."
    )
    quota: Quota | None = Field(None, description="Quotas from a company target (written to territories.csv).")

    @field_validator("segment_rules")
    @classmethod
    def _lower_labels(cls, value: dict[str, SegmentRule]) -> dict[str, SegmentRule]:
        return {str(k).strip().lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _metric_columns(self) -> Scenario:
        for name, rule in self.balance.items():
            if name in BUILTIN_METRICS and rule.column is not None:
                raise ValueError(
                    f"balance.{name}: built-in metric '{name}' takes no column; map it under columns.accounts"
                )
            if name == FORECAST_METRIC:
                if rule.column is not None:
                    raise ValueError(f"balance.{name}: the forecast computes '{name}'; it takes no column")
                if self.data.opportunities is None:
                    raise ValueError(f"balance.{name}: needs an opportunities table (data.opportunities)")
                continue
            if name not in BUILTIN_METRICS and rule.column is None:
                raise ValueError(
                    f"balance.{name}: custom metric needs 'column' (built-in metrics: {', '.join(BUILTIN_METRICS)})"
                )
        return self

    @model_validator(mode="after")
    def _headcount_edits(self) -> Scenario:
        known = {ANY_SEGMENT} | {rep for rule in self.segment_rules.values() for rep in rule.reps}
        labels = [(f"headcount.add[{i}].segment", hire.segment) for i, hire in enumerate(self.headcount.add)]
        labels += [
            (f"headcount.change.{rep}.segment", edit.segment)
            for rep, edit in self.headcount.change.items()
            if edit.segment is not None
        ]
        for key, label in labels:
            if self.segment_rules and label not in known:
                raise ValueError(f"{key}: segment preference '{label}' is not named by any segment rule")
        ids = [hire.id for hire in self.headcount.add]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"headcount.add: ids used twice: {', '.join(twice)}")
        for rep in self.headcount.remove:
            if rep in self.headcount.change:
                raise ValueError(f"headcount: rep '{rep}' is both removed and changed; keep one")
        return self

    @model_validator(mode="after")
    def _forecast_inputs(self) -> Scenario:
        if self.forecast is not None and self.data.opportunities is None:
            raise ValueError("forecast: needs an opportunities table (data.opportunities)")
        if self.quota is not None:
            known = {*BUILTIN_METRICS, FORECAST_METRIC, *self.balance}
            for name in self.quota.weights:
                if name not in known:
                    raise ValueError(f"quota.weights.{name}: not a metric (use one of {', '.join(sorted(known))})")
            if self.quota.weights.get(FORECAST_METRIC, 0) > 0 and self.data.opportunities is None:
                raise ValueError(f"quota.weights.{FORECAST_METRIC}: needs an opportunities table (data.opportunities)")
        return self

    @property
    def forecast_settings(self) -> Forecast:
        """The forecast section, or its defaults when only an opportunities table is given."""
        return self.forecast or Forecast()

    def with_solver(self, **changes: Any) -> Scenario:
        """Return a copy with solver settings changed (``None`` values ignored)."""
        clean = {k: v for k, v in changes.items() if v is not None}
        if not clean:
            return self
        return self.model_copy(update={"solver": self.solver.model_copy(update=clean)})


class LoadedScenario(BaseModel):
    """A validated scenario and where it came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    scenario: Scenario
    path: Path

    @property
    def base_dir(self) -> Path:
        """Folder that data paths are relative to."""
        return self.path.parent

    def data_path(self, relative: Path) -> Path:
        """Resolve a data path of the scenario."""
        return relative if relative.is_absolute() else (self.base_dir / relative)


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the parent of ``loc`` in the schema."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field_info = current.model_fields.get(str(part))
            if field_info is None:
                return []
            current = field_info.annotation
        else:
            # dict[str, Model] values: the key is a user label; step into the value type
            args = getattr(current, "__args__", ())
            current = args[-1] if args else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _issue_from_pydantic(error: dict[str, Any], path: Path) -> InputIssue:
    loc = tuple(error.get("loc", ()))
    key = ".".join(str(p) for p in loc) or "(top level)"
    if error.get("type") == "extra_forbidden":
        valid = _valid_keys(Scenario, loc)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(valid)}"
        return InputIssue(f"unknown key '{loc[-1]}'", file=path, column=key, hint=hint)
    if error.get("type") == "missing":
        return InputIssue("required key is missing", file=path, column=key, hint="add it (see scenario.schema.json)")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict):
        message = f"{message} (got {error['input']!r})"
    return InputIssue(
        message,
        file=path,
        column=key,
        hint="fix the value (see scenario.schema.json)",
    )


def parse_scenario(data: Any, path: Path) -> Scenario:
    """Validate a scenario mapping.

    Parameters
    ----------
    data
        The parsed YAML document.
    path
        The file it came from, for messages.

    Raises
    ------
    InputError
        Listing every schema violation with its key path.
    """
    if not isinstance(data, dict):
        raise InputError.single(
            "a scenario file must be a YAML mapping of keys (name, data, balance, ...)",
            file=path,
            hint="see scenarios/example.yaml",
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise InputError([_issue_from_pydantic(e, path) for e in exc.errors()]) from None


#: Keys holding paths relative to the scenario file that declares them (rebased when a scenario extends another).
_PATH_KEYS = (
    ("data", "accounts"),
    ("data", "reps"),
    ("data", "opportunities"),
    ("units", "path"),
    ("pins",),
    ("continuity", "baseline", "plan"),
    ("continuity", "baseline", "scenario"),
    ("extends",),
)


def _read_yaml(path: Path) -> Any:
    """Parse one YAML file, with the file and line in every error."""
    if not path.is_file():
        raise InputError.single(
            "scenario file not found", file=path, hint="check the path; scenario files end in .yaml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError.single(f"cannot read the file: {exc}", file=path, hint="save it as UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError.single(
            f"YAML syntax error: {problem}", file=path, row=row, hint="fix the indentation or quoting on that line"
        ) from None


def _rebased(data: dict[str, Any], source_dir: Path, target_dir: Path) -> dict[str, Any]:
    """Copy of ``data`` whose relative paths, written for ``source_dir``, point the same way from ``target_dir``."""
    import copy
    import os

    out = copy.deepcopy(data)
    for keys in _PATH_KEYS:
        holder: Any = out
        for key in keys[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or not isinstance(holder.get(keys[-1]), str):
            continue
        value = Path(holder[keys[-1]])
        if not value.is_absolute():
            holder[keys[-1]] = os.path.relpath(source_dir.resolve() / value, target_dir.resolve())
    return out


#: Keys whose mapping is one choice among several (``{plan: DIR}`` or ``{scenario: FILE}``): replaced whole, since
#: merging a child's ``{plan: ...}`` into a parent's ``{scenario: ...}`` would hold both.
_REPLACED_WHOLE = {("continuity", "baseline")}


def merge_mappings(parent: Any, child: Any, _at: tuple[str, ...] = ()) -> Any:
    """Child keys over parent keys: mappings merge key by key; anything else (lists, values, null) is replaced.

    The rule of ``extends``, also used by ``territory sweep`` to apply a variant's overrides.
    ``continuity.baseline`` is replaced whole.
    """
    if isinstance(parent, dict) and isinstance(child, dict) and _at not in _REPLACED_WHOLE:
        out = dict(parent)
        for key, value in child.items():
            out[key] = merge_mappings(parent[key], value, (*_at, key)) if key in parent else value
        return out
    return child


def _extended(data: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """Resolve ``extends`` chains: the parent's keys (paths rebased to this file's folder), then this file's."""
    target = data["extends"]
    if not isinstance(target, str) or not target.strip():
        raise InputError.single(
            "extends must name a scenario file", file=path, column="extends", hint="e.g. extends: scenario.yaml"
        )
    parent_path = (path.parent / target).resolve() if not Path(target).is_absolute() else Path(target)
    if parent_path in seen:
        chain = " -> ".join(str(p.name) for p in (*seen, parent_path))
        raise InputError.single(
            f"scenarios extend each other in a loop ({chain})",
            file=path,
            column="extends",
            hint="remove 'extends' from one of them",
        )
    if not parent_path.is_file():
        raise InputError.single(
            f"the scenario it extends, {parent_path}, does not exist",
            file=path,
            column="extends",
            hint="the path is relative to this scenario file's folder",
        )
    parent = _read_yaml(parent_path)
    if not isinstance(parent, dict):
        raise InputError.single("a scenario file must be a YAML mapping of keys", file=parent_path)
    if parent.get("extends") is not None:
        parent = _extended(parent, parent_path, (*seen, parent_path))
    parent = _rebased({k: v for k, v in parent.items() if k != "extends"}, parent_path.parent, path.parent)
    # the parent's name and description describe the parent; the child keeps its own when it sets them
    merged = merge_mappings(parent, data)
    merged["extends"] = str(target)
    return merged


def read_scenario_mapping(path: Path | str) -> Any:
    """Read a scenario file as a mapping, its ``extends`` chain resolved, not yet validated.

    Parameters
    ----------
    path
        The scenario file; relative paths in the result are relative to its folder.

    Raises
    ------
    InputError
        Missing file, YAML syntax error (with line), or a broken ``extends`` chain.
    """
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict) and data.get("extends") is not None:
        data = _extended(data, path, seen=(path.resolve(),))
    return data


def load_scenario(path: Path | str) -> LoadedScenario:
    """Read and validate a scenario YAML file.

    Parameters
    ----------
    path
        The scenario file.

    Returns
    -------
    LoadedScenario
        The scenario and its path (data paths resolve against its folder).

    Raises
    ------
    InputError
        Missing file, YAML syntax error (with line) or schema violations.
    """
    path = Path(path)
    scenario = parse_scenario(read_scenario_mapping(path), path)
    logger.info("loaded scenario %r from %s", scenario.name, path)
    return LoadedScenario(scenario=scenario, path=path.resolve())


def scenario_json_schema() -> dict[str, Any]:
    """Return the published JSON Schema of scenario files."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Territory scenario"
    return schema
