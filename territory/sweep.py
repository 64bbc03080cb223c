"""Scenario sweeps: every combination of a few settings, solved on a Dask cluster, compared on one page.

A sweep file (YAML) names a base scenario and the axes to vary::

    base: scenario.yaml                        # relative to the sweep file
    set:                                       # applied to every variant (optional)
      solver: {time_limit_s: 10}
    axes:
      balance.workload.tolerance_pct: [3, 5, 10]      # a dotted scenario key and its values
      continuity.max_moved_accounts: [50, null]
      team:                                           # or named overrides, merged whole
        - {name: all-stay, set: {}}
        - {name: r010-leaves, set: {headcount: {remove: [R010]}}}

The variants are the cartesian product of the axes (here 3 x 2 x 2 = 12). Each variant's overrides are
deep-merged into the base scenario with the rule of ``extends`` (:func:`models.scenario.merge_mappings`:
mappings merge key by key, lists and values are replaced) and validated with
:func:`models.scenario.parse_scenario` before anything is solved; a bad value is reported against the sweep
file's key (``axes.balance.workload.tolerance_pct[2]``). Each variant gets a readable, stable id made of its
axis values (``workload_tolerance_pct-3__max_moved_accounts-none__team-r010-leaves``), a scenario file
``DIR/scenarios/<id>.yaml`` that extends the base (solve it alone with ``territory solve``), and a plan folder
``DIR/variants/<id>/`` written atomically. ``DIR/sweep.csv`` holds one row per variant (settings, status, gap,
worst deviation per metric, travel, moves, solve time, error) and is rewritten whole after every finished
variant, so a killed sweep keeps its finished rows; ``DIR/sweep.html`` holds the trade-off charts, each point
linking to its plan's map.

A variant's plan folder is complete when its ``summary.json`` carries the variant's settings hash (in the
scenario description); a rerun reuses such folders and solves only the rest. A variant that fails (no
feasible plan, no plan in time, bad input, a crash, a worker lost) is recorded in its row with the reason and
never stops the sweep.

Engine: Dask distributed, chosen over Ray by measurement on this 2-core machine (2 worker processes, 200
no-op tasks, Python 3.11, dask 2026.8 / ray 2.60; ``benchmarks/README.md``): a Dask ``LocalCluster`` starts in
3.0-3.7 s against Ray's 5.4-8.7 s and shuts down in 0.8 s against 1.5 s; Ray's per-task overhead is lower
(2 ms against 6-12 ms) but is noise beside solves of seconds. Dask is also a pure-Python install of a few MB
(Ray ships a ~70 MB binary with its own object store and raylet), its scheduler is started by one command
(``dask scheduler``) and its workers by another, and its futures API is all a sweep needs.
By default the sweep starts a ``LocalCluster`` sized to the cores (one process per core, one thread each, so
one CP-SAT search per process); ``address`` (``--address``, the ``TERRITORY_SCHEDULER`` environment variable or
the sweep file's ``scheduler``) connects to a running scheduler instead. Workers must see ``DIR`` and the
scenario's data at the same paths (a shared file system).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.errors import InputError, InputIssue, IssueCollector
from models.plan_io import write_atomic
from models.scenario import merge_mappings, parse_scenario, read_scenario_mapping

logger = logging.getLogger(__name__)

#: Environment variable naming a running Dask scheduler (``tcp://host:8786``).
SCHEDULER_ENV = "TERRITORY_SCHEDULER"
#: Statuses of a sweep row besides the solver's (optimal, feasible).
FAILED_STATUSES = ("infeasible", "no plan", "bad input", "error")


class NamedOverride(BaseModel):
    """One value of a named axis: a label and a scenario mapping merged over the base."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Label used in the variant id (letters, digits, '-', '_', '.').")
    set: dict[str, Any] = Field(default_factory=dict, description="Scenario keys to override (nested mapping).")

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
            raise ValueError(f"name '{value}' may hold only letters, digits, '-', '_' and '.' (it names a folder)")
        return value


class SweepFile(BaseModel):
    """The sweep file: a base scenario, overrides for every variant, and the axes to vary."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="Title of the sweep page (default: the file name).")
    base: Path = Field(description="The base scenario file, relative to the sweep file.")
    set: dict[str, Any] = Field(default_factory=dict, description="Scenario keys applied to every variant.")
    axes: dict[str, list[Any]] = Field(
        min_length=1,
        description="Dotted scenario key -> list of values, or a label -> list of {name, set} overrides.",
    )
    scheduler: str | None = Field(None, description="Address of a running Dask scheduler (default: a local cluster).")

    @field_validator("axes", mode="before")
    @classmethod
    def _axis_kinds(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, values in value.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"axis '{key}' needs a non-empty list of values")
            named = [isinstance(v, dict) and "name" in v for v in values]
            if any(named) and not all(named):
                raise ValueError(f"axis '{key}' mixes named overrides ({{name, set}}) with plain values")
        return value


@dataclass(frozen=True)
class Axis:
    """One axis: its key in the sweep file, its column label, and each value's id part and overrides."""

    key: str
    label: str
    named: bool
    values: tuple[Any, ...]
    overrides: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Variant:
    """One combination of axis values.

    Attributes
    ----------
    id
        Stable, readable id (the folder name).
    settings
        Axis key -> the value (or the override's name) of this variant.
    overrides
        The scenario mapping merged over the base (the sweep's ``set`` and every axis value).
    settings_hash
        Hash of the fully merged scenario mapping: a plan folder carrying it was solved with these settings.
    """

    id: str
    settings: dict[str, Any]
    overrides: dict[str, Any]
    settings_hash: str


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the base scenario and every variant."""

    path: Path
    title: str
    base: Path
    axes: tuple[Axis, ...]
    variants: tuple[Variant, ...]
    scheduler: str | None
    sets_solver_workers: bool


def _nested(dotted: str, value: Any) -> dict[str, Any]:
    """``a.b.c``, v -> {a: {b: {c: v}}}."""
    out: Any = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def _value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-") or "x"


def _labels(keys: Sequence[str]) -> dict[str, str]:
    """A short label per axis: the last part of a dotted key, with more parts where two axes would clash."""
    labels = {}
    for key in keys:
        parts = key.split(".")
        depth = 1
        while depth < len(parts) and sum(k.split(".")[-depth:] == parts[-depth:] for k in keys) > 1:
            depth += 1
        labels[key] = "_".join(parts[-depth:])
    return labels


def _issue(sweep_path: Path, key: str, issue: InputIssue) -> InputIssue:
    """A scenario issue re-addressed to the sweep file's key that caused it."""
    where = f" (scenario key {issue.column})" if issue.column else ""
    return InputIssue(f"{issue.message}{where}", file=sweep_path, column=key, hint=issue.hint)


def load_sweep(path: Path | str, *, time_limit_s: float | None = None) -> Sweep:
    """Read and validate a sweep file and every variant it defines.

    Parameters
    ----------
    path
        The sweep YAML file.
    time_limit_s
        Solver time limit of every variant, over the sweep file's (part of each variant's settings).

    Returns
    -------
    Sweep
        The base scenario, the axes and the variants (in cartesian-product order, first axis slowest).

    Raises
    ------
    InputError
        Every problem at once, each naming the sweep file and key (``axes.<key>[i]`` for a bad value, the
        variant id for a combination the scenario rejects).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError.single("sweep file not found", file=path, hint="check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError.single(
            f"YAML syntax error: {getattr(exc, 'problem', None) or exc}",
            file=path,
            row=None if mark is None else mark.line + 1,
            hint="fix the indentation or quoting on that line",
        ) from None
    if not isinstance(raw, dict):
        raise InputError.single("a sweep file must be a YAML mapping (base, axes, ...)", file=path)
    try:
        spec = SweepFile.model_validate(raw)
    except ValidationError as exc:
        issues = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error.get("loc", ())) or "(top level)"
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            if error.get("type") == "extra_forbidden":
                message, hint = f"unknown key '{key}'", f"valid keys: {', '.join(SweepFile.model_fields)}"
            else:
                hint = "see the sweep file format in README.md"
            issues.append(InputIssue(message, file=path, column=key, hint=hint))
        raise InputError(issues) from None

    if time_limit_s is not None:
        spec.set = merge_mappings(spec.set, {"solver": {"time_limit_s": time_limit_s}})
    base = (path.parent / spec.base).resolve()
    base_mapping = read_scenario_mapping(base)
    issues = IssueCollector()
    try:
        parse_scenario(merge_mappings(base_mapping, spec.set), base)
    except InputError as exc:
        issues.issues += [_issue(path, "set", i) for i in exc.issues]

    named_axes: dict[str, list[NamedOverride]] = {}
    for key, values in spec.axes.items():
        if isinstance(values[0], dict) and "name" in values[0]:
            named_axes[key] = []
            for i, value in enumerate(values):
                try:
                    named_axes[key].append(NamedOverride.model_validate(value))
                except ValidationError as exc:
                    for error in exc.errors():
                        where = ".".join(str(p) for p in error.get("loc", ()))
                        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
                        issues.add(message, file=path, column=f"axes.{key}[{i}].{where}", hint="give {name, set}")
    issues.raise_if_any()
    labels = _labels([k for k in spec.axes if k not in named_axes])
    axes = []
    for key, values in ((k, named_axes.get(k, v)) for k, v in spec.axes.items()):
        named = key in named_axes
        overrides = tuple(v.set if named else _nested(key, v) for v in values)
        shown = tuple(v.name if named else v for v in values)
        axes.append(Axis(key, key if named else labels[key], named, shown, overrides))
        for i, override in enumerate(overrides):
            try:
                parse_scenario(merge_mappings(merge_mappings(base_mapping, spec.set), override), base)
            except InputError as exc:
                issues.issues += [_issue(path, f"axes.{key}[{i}]", e) for e in exc.issues]
        parts = [_value_text(v) for v in shown]
        if len(set(parts)) < len(parts):
            issues.add(f"axis '{key}' has two values with the same name", file=path, column=f"axes.{key}")
    issues.raise_if_any()

    variants = []
    for combo in itertools.product(*(range(len(a.values)) for a in axes)):
        overrides = dict(spec.set)
        for axis, i in zip(axes, combo, strict=True):
            overrides = merge_mappings(overrides, axis.overrides[i])
        vid = "__".join(
            f"{a.label if not a.named else _value_text(a.key)}-{_value_text(a.values[i])}"
            for a, i in zip(axes, combo, strict=True)
        )
        merged = merge_mappings(base_mapping, overrides)
        try:
            parse_scenario(merged, base)
        except InputError as exc:
            issues.issues += [_issue(path, f"variant {vid}", e) for e in exc.issues]
            continue
        digest = hashlib.sha256(
            json.dumps({"base": str(base), "scenario": merged}, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        settings = {a.key: a.values[i] for a, i in zip(axes, combo, strict=True)}
        variants.append(Variant(vid, settings, overrides, digest))
    issues.raise_if_any()
    workers_set = any("workers" in (o.get("solver") or {}) for o in (spec.set, *(o for a in axes for o in a.overrides)))
    return Sweep(
        path=path.resolve(),
        title=spec.name or path.stem,
        base=base,
        axes=tuple(axes),
        variants=tuple(variants),
        scheduler=spec.scheduler,
        sets_solver_workers=workers_set,
    )


def write_variant_scenario(sweep: Sweep, variant: Variant, out_dir: Path) -> Path:
    """Write ``out_dir/scenarios/<id>.yaml``: extends the base scenario with the variant's overrides."""
    folder = out_dir / "scenarios"
    folder.mkdir(parents=True, exist_ok=True)
    base_name = read_scenario_mapping(sweep.base).get("name", sweep.base.stem)
    document = {
        "extends": os.path.relpath(sweep.base, folder.resolve()),
        **variant.overrides,
        "name": f"{base_name} [{variant.id}]",
        "description": f"Variant {variant.id} of sweep {sweep.path.name} (settings {variant.settings_hash})",
    }
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return write_atomic(folder / f"{variant.id}.yaml", lambda p: p.write_text(text, encoding="utf-8"))


def plan_is_complete(folder: Path, settings_hash: str) -> dict[str, Any] | None:
    """The summary of a finished plan folder solved with these settings, or ``None``."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if f"(settings {settings_hash})" not in str(summary.get("description", "")):
        return None
    if not (folder / "map.html").is_file():
        return None
    return summary


def kpis(summary: dict[str, Any]) -> dict[str, Any]:
    """A sweep row's results from a plan's ``summary.json``: status, gap, balance, travel, moves, time."""
    moves = summary.get("moves") or {}
    row: dict[str, Any] = {
        "status": summary["status"],
        "gap_pct": None if summary.get("gap") is None else round(100 * summary["gap"], 3),
        "reps": summary.get("reps"),
        "all_within_tolerance": summary.get("all_within_tolerance"),
    }
    for name, metric in summary.get("metrics", {}).items():
        if metric.get("balanced"):
            row[f"{name}_max_deviation_pct"] = metric["max_deviation_pct"]
    row["workload_km"] = summary["compactness"]["workload_km"]
    row["accounts_moved"] = moves.get("accounts_moved")
    row["solve_seconds"] = summary.get("solve_seconds")
    return row


def solve_variant(
    scenario_file: str, plan_dir: str, settings_hash: str, workers: int | None, offline: bool = False
) -> dict[str, Any]:
    """Solve one variant and write its plan folder (the task each Dask worker runs).

    Returns the row's results; a failure is returned as a status and an error message, never raised, so one
    variant cannot stop the sweep.
    """
    from maps import write_plan_map
    from models.plan_io import write_plan
    from optimizer import InfeasibleError
    from territory.pipeline import NoPlanError, prepare, solve_prepared

    clock = time.perf_counter()
    folder = Path(plan_dir)
    done = plan_is_complete(folder, settings_hash)
    if done is not None:
        return {**kpis(done), "reused": True, "error": "", "wall_seconds": 0.0}
    try:
        plan = solve_prepared(prepare(scenario_file, workers=workers))
        # the tables, summary.json and map.html: report.html and plan.xlsx would take several times the
        # solve's own time on a sweep; `territory solve` on the variant's scenario file writes them
        write_plan(plan, folder, extra={"map.html": partial(write_plan_map, offline=offline)})
        row = {**kpis(plan.summary()), "reused": False, "error": ""}
    except InfeasibleError as exc:
        row = {"status": "infeasible", "error": " ".join(line.strip() for line in str(exc).splitlines())}
    except NoPlanError as exc:
        row = {"status": "no plan", "error": str(exc)}
    except InputError as exc:
        row = {"status": "bad input", "error": str(exc).replace("\n", "; ")}
    except Exception as exc:
        logger.exception("variant %s crashed", folder.name)
        row = {"status": "error", "error": f"{type(exc).__name__}: {exc} | {traceback.format_exc(limit=-1).strip()}"}
    row["wall_seconds"] = round(time.perf_counter() - clock, 3)
    return row


@dataclass
class SweepProgress:
    """Counts shown while a sweep runs."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    reused: int = 0
    last: str = ""


@dataclass
class SweepResult:
    """What a sweep wrote: the folder, the table and how many variants failed."""

    folder: Path
    table: pd.DataFrame
    failed: int
    reused: int
    wall_seconds: float
    workers: int
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def dask_client(address: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A Dask client: connected to ``address`` when given, else to a new local cluster.

    Parameters
    ----------
    address
        A running scheduler (``tcp://127.0.0.1:8786``); ``None`` starts a ``LocalCluster``.
    workers
        Worker processes of the local cluster (default: the cores); one thread each.
    """
    from dask.distributed import Client, LocalCluster

    if address:
        logger.info("connecting to the Dask scheduler at %s", address)
        with Client(address, timeout="20s") as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    logger.info("starting a local Dask cluster of %d worker processes", n)
    with (
        LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield client


def cluster_workers(client: Any) -> int:
    """Worker threads of the cluster (each solves one variant at a time)."""
    return max(sum(client.nthreads().values()), 1)


def sweep_table(sweep: Sweep, rows: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per variant in sweep order: id, settings, results (blank until solved), plan link."""
    records = []
    for variant in sweep.variants:
        record: dict[str, Any] = {"variant": variant.id}
        for axis in sweep.axes:
            value = variant.settings[axis.key]
            record[axis.key] = "none" if value is None else value
        result = rows.get(variant.id, {"status": "pending"})
        record.update({k: v for k, v in result.items() if k not in {"error", "reused", "wall_seconds"}})
        record["reused"] = result.get("reused", False)
        record["wall_seconds"] = result.get("wall_seconds")
        record["error"] = result.get("error", "")
        record["map"] = f"variants/{variant.id}/map.html" if result.get("status") in {"optimal", "feasible"} else ""
        records.append(record)
    table = pd.DataFrame(records)
    order = [c for c in table.columns if c not in {"reused", "wall_seconds", "error", "map"}]
    return table[[*order, "reused", "wall_seconds", "error", "map"]]


def _write_csv(table: pd.DataFrame, out_dir: Path) -> None:
    write_atomic(out_dir / "sweep.csv", lambda p: table.to_csv(p, index=False))


def run_sweep(
    sweep_path: Path | str,
    out_dir: Path | str,
    *,
    address: str | None = None,
    workers: int | None = None,
    time_limit_s: float | None = None,
    offline: bool = False,
    progress: Callable[[SweepProgress], None] | None = None,
) -> SweepResult:
    """Solve every variant of a sweep on a Dask cluster; write plan folders, ``sweep.csv`` and ``sweep.html``.

    Parameters
    ----------
    sweep_path
        The sweep file.
    out_dir
        The sweep folder (created; reused variants are kept).
    address
        A running Dask scheduler; default ``$TERRITORY_SCHEDULER``, then the sweep file's ``scheduler``, then a
        local cluster started here.
    workers
        Worker processes of the local cluster (default: the cores); ignored with an address.
    time_limit_s
        Solver time limit of every variant, over the sweep file's.
    offline
        Write maps that open without network.
    progress
        Called whenever the counts change (the CLI draws them).

    Returns
    -------
    SweepResult

    Raises
    ------
    InputError
        A bad sweep file or scenario (before anything is solved).
    """
    from dask.distributed import wait

    clock = time.perf_counter()
    sweep = load_sweep(sweep_path, time_limit_s=time_limit_s)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    files = {v.id: write_variant_scenario(sweep, v, out) for v in sweep.variants}
    address = address or os.environ.get(SCHEDULER_ENV) or sweep.scheduler
    state = SweepProgress(total=len(sweep.variants))
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for variant in sweep.variants:
        summary = plan_is_complete(out / "variants" / variant.id, variant.settings_hash)
        if summary is not None:
            rows[variant.id] = {**kpis(summary), "reused": True, "error": "", "wall_seconds": 0.0}
            state.done += 1
            state.reused += 1
        else:
            todo.append(variant)
    _write_csv(sweep_table(sweep, rows), out)

    def notify() -> None:
        if progress is not None:
            progress(state)

    notify()
    n_workers = 0
    if todo:
        with dask_client(address, workers) as client:
            n_workers = cluster_workers(client)
            per_variant = None if sweep.sets_solver_workers else max((os.cpu_count() or 1) // n_workers, 1)
            if address:
                per_variant = None if sweep.sets_solver_workers else 1
            futures = {
                client.submit(
                    solve_variant,
                    str(files[v.id]),
                    str(out / "variants" / v.id),
                    v.settings_hash,
                    per_variant,
                    offline,
                    key=f"variant-{v.id}-{v.settings_hash}",
                    pure=False,
                ): v
                for v in todo
            }
            pending = set(futures)
            while pending:
                try:
                    finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing finished in this half second: refresh the running count
                    finished = set()
                for future in finished:
                    variant = futures[future]
                    try:
                        row = future.result()
                    except Exception as exc:  # the worker died (KilledWorker) or the task could not run
                        row = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                    rows[variant.id] = row
                    state.done += 1
                    state.failed += row["status"] in FAILED_STATUSES
                    state.last = f"{variant.id}: {row['status']}"
                if finished:
                    _write_csv(sweep_table(sweep, rows), out)
                processing = client.processing()
                keys = {f.key for f in pending}
                state.running = sum(1 for tasks in processing.values() for k in tasks if k in keys)
                notify()
    table = sweep_table(sweep, rows)
    _write_csv(table, out)
    write_sweep_page(sweep, table, out)
    state.running = 0
    notify()
    wall = time.perf_counter() - clock
    logger.info("sweep of %d variants done in %.1f s (%d failed)", len(table), wall, state.failed)
    return SweepResult(
        folder=out, table=table, failed=state.failed, reused=state.reused, wall_seconds=wall, workers=n_workers
    )


def write_sweep_page(sweep: Sweep, table: pd.DataFrame, out_dir: Path) -> Path:
    """Write ``sweep.html``: trade-off charts (points link to plan maps) and the table."""
    from maps.sweep_charts import sweep_page

    page = sweep_page(sweep.title, table, [a.key for a in sweep.axes if not a.named])
    return write_atomic(out_dir / "sweep.html", lambda p: p.write_text(page, encoding="utf-8"))


__all__ = [
    "SCHEDULER_ENV",
    "Sweep",
    "SweepFile",
    "SweepProgress",
    "SweepResult",
    "Variant",
    "dask_client",
    "kpis",
    "load_sweep",
    "run_sweep",
    "solve_variant",
    "sweep_table",
]
