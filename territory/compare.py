"""Side-by-side comparison of plans: scenario files solved on the way, or finished plan folders.

``territory compare A B [C ...] --out DIR`` writes, whole or not at all:

- ``kpis.csv`` and ``compare.html``: one row per plan (status, gap, worst
  deviation and tolerance of every metric, travel, moves against its
  baseline, quotas where set), each rep's loads in every plan, and links to
  every plan's map and report;
- ``changes.csv``: every plan's moves against its own baseline (account, from
  rep, to rep, potential and workload moved, reason);
- ``compare_map.html``: the plans side by side (up to four) with synchronised
  panning and zoom, moved accounts outlined;
- ``quota_changes.csv``: each rep's quota and expected revenue in every plan
  against the first one, when the plans set quotas;
- ``plans/<label>/``: the plan folder of every scenario solved for the comparison.

A scenario whose baseline is another scenario's plan (``continuity.baseline:
{scenario: ...}``) takes it from the same run, so an annual plan and its
headcount variants are compared in one command with one solve each.
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.dataset import load_dataset
from models.errors import InputError
from models.formatting import label as planner_label
from models.plan import Plan, SolveReport
from models.plan_io import read_plan, write_atomic, write_folder
from models.scenario import load_scenario
from optimizer import InfeasibleError

logger = logging.getLogger(__name__)

#: Most plans the comparison map shows side by side.
MAP_PLANS = 4


@dataclass(frozen=True)
class ComparedPlan:
    """One plan of a comparison.

    Attributes
    ----------
    label
        Short unique name (the scenario file's or plan folder's name).
    source
        The scenario file or plan folder it came from.
    plan
        The plan.
    solved
        Whether it was solved for the comparison (else read from a folder).
    """

    label: str
    source: Path
    plan: Plan
    solved: bool


def load_plan_folder(folder: Path | str) -> Plan:
    """Rebuild a :class:`~models.plan.Plan` from a finished plan folder.

    The folder's ``summary.json`` names the scenario file that made it; its
    data are read again and matched account by account with the folder's
    ``assignments.csv``, whose ``current_rep`` column restores the baseline the
    plan was measured against.

    Raises
    ------
    InputError
        The folder is not a plan, its scenario file is gone, or the data no
        longer match the plan (accounts or reps added or removed since).
    """
    folder = Path(folder)
    finished = read_plan(folder)
    scenario_file = finished.summary.get("scenario_file")
    if not scenario_file or not Path(scenario_file).is_file():
        raise InputError.single(
            "the plan folder does not name an existing scenario file (summary.json: scenario_file)",
            file=folder / "summary.json",
            hint="solve the scenario again, or compare the scenario file instead of the folder",
        )
    assignments = finished.assignments
    baseline = pd.DataFrame(
        {
            "account_id": assignments["account_id"].astype("string"),
            "rep_id": assignments["current_rep"].astype("string")
            if "current_rep" in assignments
            else pd.Series(pd.NA, index=assignments.index, dtype="string"),
        }
    ).dropna()
    moves = finished.summary.get("moves") or {}
    dataset = load_dataset(
        load_scenario(scenario_file),
        baseline=baseline,
        baseline_label=str(moves.get("baseline") or "plan folder"),
        baseline_source=(folder / "assignments.csv", "current_rep"),
    )
    rep_of = assignments.set_index(assignments["account_id"].astype(str))["rep_id"].astype(str)
    ids = dataset.accounts["account_id"].astype(str)
    reps = rep_of.reindex(ids)
    if reps.isna().any():
        missing = ", ".join(ids[reps.isna().to_numpy()].head(5))
        raise InputError.single(
            f"the scenario's data hold accounts the plan does not list ({missing} ...): the data changed since",
            file=folder / "assignments.csv",
            column="account_id",
            hint="solve the scenario again to compare the current data",
        )
    rep_row = {str(r): i for i, r in enumerate(dataset.reps["rep_id"])}
    rows = reps.map(rep_row)
    if rows.isna().any():
        unknown = ", ".join(sorted(set(reps[rows.isna()]))[:5])
        raise InputError.single(
            f"the plan gives accounts to reps the scenario does not have ({unknown})",
            file=folder / "assignments.csv",
            column="rep_id",
            hint="solve the scenario again to compare the current team",
        )
    rep_index = rows.to_numpy(dtype=np.int64)
    summary = finished.summary
    solver = dict(summary.get("solver") or {})
    report = SolveReport(
        status=str(summary.get("status", "feasible")),
        objective=float(summary.get("objective") or np.nan),
        bound=float(summary.get("bound") or np.nan),
        gap=float(summary.get("gap") if summary.get("gap") is not None else np.nan),
        solve_seconds=float(summary.get("solve_seconds") or 0.0),
        time_limit_s=solver.get("time_limit_s"),
        seed=int(solver.get("seed") or 0),
        workers=int(solver.get("workers") or 0),
        units=int(solver.get("units") or 0),
        interrupted=bool(summary.get("interrupted", False)),
        statistics=dict(solver.get("statistics") or {}),
    )
    unit_rep = _unit_reps(dataset, rep_index) if dataset.units is not None else None
    return Plan(dataset=dataset, rep_index=rep_index, report=report, unit_rep=unit_rep)


def _unit_reps(dataset, rep_index: np.ndarray) -> np.ndarray:
    """Rep of every unit: its accounts' rep; units without accounts take the rep of the nearest unit that has one."""
    layer = dataset.units
    unit_rep = np.full(len(layer.unit_ids), -1, dtype=np.int64)
    unit_rep[layer.unit_of_account] = rep_index
    empty = np.flatnonzero(unit_rep < 0)
    full = np.flatnonzero(unit_rep >= 0)
    if len(empty) and len(full):
        from models.geo import distance_matrix_km

        nearest = distance_matrix_km(
            layer.latitude[empty], layer.longitude[empty], layer.latitude[full], layer.longitude[full]
        ).argmin(axis=1)
        unit_rep[empty] = unit_rep[full[nearest]]
    return unit_rep


def _labels(sources: Sequence[Path]) -> list[str]:
    """Short unique labels: file stems or folder names, numbered when they repeat."""
    labels: list[str] = []
    for source in sources:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", source.stem if source.is_file() else source.name) or "plan"
        label, n = base, 2
        while label in labels:
            label, n = f"{base}-{n}", n + 1
        labels.append(label)
    return labels


def gather_plans(
    sources: Sequence[Path | str],
    *,
    time_limit_s: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    on_solve: Callable[[str, Path], None] | None = None,
) -> list[ComparedPlan]:
    """Solve the scenario files and read the plan folders of a comparison, in the order given.

    Parameters
    ----------
    sources
        Scenario files (``.yaml``/``.yml``) and plan folders; at least two.
    time_limit_s, seed, workers
        Solver overrides for the scenarios solved.
    on_solve
        Called with the label and scenario file before each solve (progress display).

    Raises
    ------
    InputError
        Fewer than two sources, a source that is neither, or bad input in one of them.
    optimizer.InfeasibleError, territory.pipeline.NoPlanError
        A scenario has no plan (the message names it).
    """
    from territory.pipeline import NoPlanError, prepare, solve_prepared

    paths = [Path(s) for s in sources]
    if len(paths) < 2:
        raise InputError.single(
            "compare needs at least two plans", hint="give two or more scenario files or plan folders"
        )
    for path in paths:
        if not (path.is_dir() or (path.is_file() and path.suffix.lower() in {".yaml", ".yml"})):
            raise InputError.single(
                "not a scenario file (.yaml) or a plan folder",
                file=path,
                hint="give scenario files to solve, or folders written by `territory solve`",
            )
    labels = _labels(paths)
    solved: dict[Path, Plan] = {}
    out = []
    for label, path in zip(labels, paths, strict=True):
        if path.is_dir():
            out.append(ComparedPlan(label=label, source=path, plan=load_plan_folder(path), solved=False))
            continue
        key = path.resolve()
        if key not in solved:
            if on_solve is not None:
                on_solve(label, path)
            try:
                prepared = prepare(path, time_limit_s=time_limit_s, seed=seed, workers=workers, baselines=solved)
                solved[key] = solve_prepared(prepared)
            except InfeasibleError as exc:
                raise InfeasibleError(f"{label} ({path}): {exc.headline}", exc.reasons) from None
            except NoPlanError as exc:
                raise NoPlanError(f"{label} ({path}): {exc}") from None
        out.append(ComparedPlan(label=label, source=path, plan=solved[key], solved=True))
    return out


def kpi_table(plans: Sequence[ComparedPlan]) -> pd.DataFrame:
    """One row per plan: status, gap, worst deviation of every metric, travel, moves, quotas."""
    rows = []
    for item in plans:
        summary = item.plan.summary()
        moves = summary["moves"]
        row: dict[str, object] = {
            "plan": item.label,
            "source": str(item.source),
            "scenario": summary["scenario"],
            "status": summary["status"],
            "gap_pct": None if summary["gap"] is None else round(100 * summary["gap"], 3),
            "accounts": summary["accounts"],
            "reps": summary["reps"],
            "all_within_tolerance": summary["all_within_tolerance"],
        }
        for name, metric in summary["metrics"].items():
            if metric.get("balanced"):
                row[f"{name}_max_deviation_pct"] = metric["max_deviation_pct"]
                row[f"{name}_tolerance_pct"] = metric["tolerance_pct"]
        row.update(
            {
                "workload_km": summary["compactness"]["workload_km"],
                "mean_distance_km": summary["compactness"]["mean_distance_km"],
                "max_distance_km": summary["compactness"]["max_distance_km"],
                "segment_match_pct": round(100 * summary["segment_match_share"], 3),
                "baseline": moves["baseline"],
                "accounts_moved": moves["accounts_moved"],
                "forced_moves": moves["forced_moves"],
                "potential_moved_pct": moves["potential_moved_pct"],
                "departed_reps": " ".join(moves["departed_reps"]),
                "new_territories": " ".join(moves["new_territories"]),
            }
        )
        territories = item.plan.territories()
        if "quota" in territories:
            row["quota_total"] = float(territories["quota"].sum())
        rows.append(row)
    return pd.DataFrame(rows)


def rep_table(plans: Sequence[ComparedPlan]) -> pd.DataFrame:
    """Each rep's load of every metric in every plan (reps of all plans, in order of first appearance)."""
    frames = []
    for item in plans:
        table = item.plan.territories()
        keep = ["rep_id", "name", "segment", "fte", *item.plan.metrics]
        keep += [c for c in ("quota",) if c in table]
        part = table[[c for c in keep if c in table]].copy()
        part.insert(0, "plan", item.label)
        frames.append(part)
    long = pd.concat(frames, ignore_index=True)
    values = [c for c in long.columns if c not in {"plan", "rep_id", "name", "segment", "fte"}]
    wide = long.pivot_table(index="rep_id", columns="plan", values=values, aggfunc="first", sort=False)
    wide.columns = [f"{metric}:{plan}" for metric, plan in wide.columns]
    order = list(dict.fromkeys(long["rep_id"]))
    names = long.drop_duplicates("rep_id").set_index("rep_id")["name"]
    wide = wide.reindex(order)
    ordered = [f"{m}:{p.label}" for m in values for p in plans if f"{m}:{p.label}" in wide.columns]
    wide = wide[ordered]
    wide.insert(0, "name", names.reindex(order).to_numpy())
    return wide.reset_index()


def change_table(plans: Sequence[ComparedPlan]) -> pd.DataFrame:
    """Every plan's moves against its own baseline, with a ``plan`` column first."""
    frames = []
    for item in plans:
        changes = item.plan.changes()
        changes.insert(0, "plan", item.label)
        changes.insert(1, "baseline", item.plan.dataset.baseline)
        frames.append(changes)
    return pd.concat(frames, ignore_index=True)


def quota_table(plans: Sequence[ComparedPlan]) -> pd.DataFrame | None:
    """Quota and expected revenue of every rep in each plan against the first plan; ``None`` without quotas."""
    if not any("quota" in p.plan.territories() for p in plans):
        return None
    from models.quota import compare_quotas

    frames = []
    first = plans[0]
    for item in plans[1:]:
        table = compare_quotas(first.plan, item.plan)
        table.insert(0, "plan_a", first.label)
        table.insert(1, "plan_b", item.label)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def write_comparison(plans: Sequence[ComparedPlan], out_dir: Path | str, *, offline: bool = False) -> Path:
    """Write the comparison folder whole or not at all (see the module docstring for its files).

    Returns
    -------
    pathlib.Path
        The folder written.
    """
    from maps import write_compare_map
    from territory.pipeline import write_plan_folder

    kpis, reps, changes, quotas = kpi_table(plans), rep_table(plans), change_table(plans), quota_table(plans)

    def fill(tmp: Path) -> None:
        links: dict[str, Path] = {}
        for item in plans:
            if item.solved:
                target = tmp / "plans" / item.label
                write_plan_folder(item.plan, target, offline=offline)
                links[item.label] = Path("plans") / item.label
            else:
                links[item.label] = relative_to(item.source, out_dir)
        kpis.to_csv(tmp / "kpis.csv", index=False)
        reps.to_csv(tmp / "reps.csv", index=False)
        changes.to_csv(tmp / "changes.csv", index=False)
        if quotas is not None:
            quotas.to_csv(tmp / "quota_changes.csv", index=False)
        shown = plans[:MAP_PLANS]
        write_compare_map([p.plan for p in shown], [p.label for p in shown], tmp / "compare_map.html", offline=offline)
        shown_kpis = kpis.assign(source=[shown_path(p.source, out_dir) for p in plans])
        page = compare_page(shown_kpis, reps, changes, links)
        write_atomic(tmp / "compare.html", lambda path: path.write_text(page, encoding="utf-8"))

    folder = write_folder(out_dir, fill)
    logger.info("comparison of %d plans written to %s", len(plans), folder)
    return folder


def relative_to(path: Path | str, folder: Path | str) -> Path:
    """``path`` as seen from ``folder`` (where a page is written): relative, so the page can move with its files.

    A path on another drive (Windows) stays absolute.
    """
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve()))
    except ValueError:
        return Path(path).resolve()


def shown_path(path: Path | str, folder: Path | str, climb: int = 2) -> str:
    """``path`` as a planner reads it on a page written in ``folder``.

    Relative to the page when it is near (at most ``climb`` folders up); otherwise the file with its
    folder's name (``example/scenario.yaml``), never an absolute path that tells of the machine it ran on.
    """
    shown = relative_to(path, folder)
    if shown.is_absolute() or shown.parts.count("..") > climb:
        return Path(*Path(path).resolve().parts[-2:]).as_posix()
    return shown.as_posix()


def compare_page(kpis: pd.DataFrame, reps: pd.DataFrame, changes: pd.DataFrame, links: dict[str, Path]) -> str:
    """A readable HTML page of the comparison: KPIs, moves by reason (plans as columns, in order), reps' loads.

    Parameters
    ----------
    kpis
        :func:`kpi_table` (its ``source`` as the page should show it).
    reps, changes
        :func:`rep_table` and :func:`change_table`.
    links
        Plan label -> its plan folder, relative to the page (in the order of the comparison).
    """
    from maps.tables import TABLE_CSS, html_table, kpi_table

    order = list(kpis["plan"])
    counts = changes.groupby(["plan", "reason"]).size().unstack(fill_value=0) if len(changes) else pd.DataFrame()
    by_reason = counts.reindex(order, fill_value=0).astype("int64").rename_axis(index="plan", columns=None)
    by_reason.insert(by_reason.shape[1], "accounts_moved", by_reason.sum(axis=1))
    groups = {}
    for column in reps.columns:
        metric, _, plan = str(column).partition(":")
        if plan:
            groups[column] = (planner_label(metric).title, plan)
    link_items = []
    for name, target in links.items():
        href = target.as_posix() if not target.is_absolute() else target.as_uri()
        link_items.append(
            f'<li><b>{html.escape(name)}</b>: <a href="{html.escape(href)}/map.html">map</a> · '
            f'<a href="{html.escape(href)}/report.html">report</a> · '
            f'<a href="{html.escape(href)}/assignments.csv">assignments.csv</a></li>'
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Plan comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #1a1a1a; }}
iframe {{ width: 100%; height: 620px; border: 1px solid #ccc; box-sizing: border-box; }}
{TABLE_CSS}
</style></head>
<body>
<h1>Plan comparison</h1>
<p>{len(kpis)} plans. Moves are counted against each plan's own baseline; forced moves are a departing rep's
accounts. Files (every figure in full): <a href="kpis.csv">kpis.csv</a>, <a href="reps.csv">reps.csv</a>,
<a href="changes.csv">changes.csv</a>.</p>
<ul>{"".join(link_items)}</ul>
<h2>Key figures</h2>
{kpi_table(kpis, "plan", corner="plan")}
<h2>Moves by reason</h2>
{kpi_table(by_reason.reset_index(), "plan", corner="reason")}
<h2>Side by side</h2>
<iframe src="compare_map.html" title="Plans side by side"></iframe>
<h2>Every rep in every plan</h2>
{html_table(reps, groups=groups)}
</body></html>
"""
