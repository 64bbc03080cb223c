"""Benchmark: loading and building the problem at scale (100k accounts / 100 reps, 1M / 500), time and peak memory.

Usage::

    python benchmarks/bench_scale.py                       # both instances, load and build
    python benchmarks/bench_scale.py --instances load-1000000-parquet
    python benchmarks/bench_scale.py --solve --time-limit 600
    python benchmarks/bench_scale.py --candidates 5000 --k 8,20,40   # the default candidate rule against all reps

Each phase runs in a fresh child process, so its peak resident memory (``ru_maxrss``) is its own: ``load`` reads
and validates the scenario's data; ``build`` loads and then builds the problem (its peak covers both); ``solve``
(with ``--solve``) loads, builds and solves, and reports the time to the first plan and whether the plan is within
tolerance (:func:`optimizer.score`). It prints Markdown tables with the machine beside them. ``--candidates``
measures instead what the candidate rule costs the LP relaxation on a sample of the last instance's accounts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scipy.optimize import OptimizeResult

    from optimizer.problem import Problem

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "benchmarks" / "instances"
DEFAULT_INSTANCES = ("100000x100", "load-1000000-parquet")

CHILD = """
import json, logging, resource, sys, time
sys.path.insert(0, {repo!r})
logging.basicConfig(level=logging.WARNING)
from models.dataset import load_dataset
from models.scenario import load_scenario

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

out = {{}}
t0 = time.perf_counter()
dataset = load_dataset(load_scenario({scenario!r}))
out.update(accounts=len(dataset.accounts), reps=len(dataset.reps), load_s=time.perf_counter() - t0,
           load_peak_mb=peak_mb())
if {phase!r} in ("build", "solve"):
    from optimizer import build_problem
    t1 = time.perf_counter()
    problem = build_problem(dataset)
    out.update(units=problem.num_units, pairs=len(problem.pair_unit), build_s=time.perf_counter() - t1,
               build_peak_mb=peak_mb())
if {phase!r} == "solve":
    from optimizer import SolveSettings, score, solve
    first = []
    t2 = time.perf_counter()

    def progress(event):
        if event.objective is not None and not first:
            first.append(time.perf_counter() - t2)

    result = solve(problem, SolveSettings(time_limit_s={time_limit!r}), progress=progress)
    out.update(solve_s=time.perf_counter() - t2, status=result.status.value, first_plan_s=first[0] if first else None,
               solve_peak_mb=peak_mb())
    if result.unit_rep is not None:
        quality = score(problem, result.unit_rep)
        out.update(feasible=quality.feasible, gap=result.gap,
                   max_deviation_pct={{k: round(v, 3) for k, v in quality.max_deviation_pct.items()}})
print(json.dumps(out))
"""


def run(scenario: Path, phase: str, time_limit: float) -> dict:
    """Run one phase in a fresh process and return its figures."""
    code = CHILD.format(repo=str(REPO), scenario=str(scenario), phase=phase, time_limit=time_limit)
    child = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
    )
    if child.returncode != 0:
        raise RuntimeError(f"{phase} of {scenario} failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def balance_lp(problem: Problem) -> OptimizeResult:
    """The LP relaxation of a problem (HiGHS): units split over their pairs, every balance rule, real costs.

    Variables: one per pair, then one load per metric and rep; a rule within groups ties each rep's load to its
    group's total (as :mod:`optimizer.relaxation` does), a rule across all reps bounds it.
    """
    import numpy as np
    import scipy.sparse as sparse
    from scipy.optimize import linprog

    n, n_reps, n_metrics = len(problem.pair_unit), problem.num_reps, len(problem.metrics)
    columns = np.arange(n)
    equal = [sparse.csr_matrix((np.ones(n), (problem.pair_unit, columns)), shape=(problem.num_units, n))]
    equal_rhs = [np.ones(problem.num_units)]
    below, below_rhs = [], []
    bounds = [(0.0, 1.0)] * n
    for m, metric in enumerate(problem.metrics):
        loads = n + m * n_reps + np.arange(n_reps)
        width = n + n_metrics * n_reps
        values = metric.real[problem.pair_unit]
        rows = np.concatenate([problem.pair_rep, np.arange(n_reps)])
        cells = np.concatenate([columns, loads])
        equal.append(sparse.csr_matrix((np.concatenate([values, -np.ones(n_reps)]), (rows, cells)), (n_reps, width)))
        equal_rhs.append(np.zeros(n_reps))
        if not metric.grouped:
            share = metric.real.sum() * problem.fte / problem.fte.sum()
            bounds += list(zip(share * (1 - metric.tolerance), share * (1 + metric.tolerance), strict=True))
            continue
        bounds += [(0.0, None)] * n_reps
        for group in np.unique(metric.groups):
            members = np.flatnonzero(metric.groups == group)
            shares = problem.fte[members] / problem.fte[members].sum()
            for sign, factor in ((1.0, 1.0 + metric.tolerance), (-1.0, 1.0 - metric.tolerance)):
                # sign x (load_r - factor x share_r x group total) <= 0 for every member r
                block = sign * (np.eye(len(members)) - factor * shares[:, None])
                row = np.repeat(np.arange(len(members)), len(members))
                below.append(
                    sparse.csr_matrix(
                        (block.ravel(), (row, np.tile(loads[members], len(members)))), (len(members), width)
                    )
                )
                below_rhs.append(np.zeros(len(members)))
    width = n + n_metrics * n_reps
    equal = [
        sparse.hstack([a, sparse.csr_matrix((a.shape[0], width - a.shape[1]))]) if a.shape[1] < width else a
        for a in equal
    ]
    cost = problem.compactness_weight * problem.pair_compactness + problem.preference_weight * problem.pair_penalty
    return linprog(
        np.concatenate([cost, np.zeros(n_metrics * n_reps)]),
        A_ub=sparse.vstack(below) if below else None,
        b_ub=np.concatenate(below_rhs) if below else None,
        A_eq=sparse.vstack(equal),
        b_eq=np.concatenate(equal_rhs),
        bounds=bounds,
    )


def candidate_lp(scenario: Path, sample: int, ks: list[int], seed: int = 1) -> None:
    """Print the LP relaxation against the candidate rule, on a sample of the instance's accounts with all its reps.

    The LP (:func:`balance_lp`): every unit assigned in fractions to its candidate reps, every balance rule of the
    scenario, cost = compactness + soft segment penalties. Rules compared: all reps, the
    ``k`` nearest eligible reps and the current rep (``solver.candidate_reps: k``), and the automatic default with
    ``k`` (those plus the reps of the coarse plan).
    """
    import dataclasses

    import numpy as np

    import optimizer.problem as problem_module
    from models.dataset import load_dataset
    from models.scenario import load_scenario

    dataset = load_dataset(load_scenario(scenario))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(dataset.accounts), sample, replace=False))
    accounts = dataset.accounts.iloc[rows].reset_index(drop=True).copy()
    accounts["family_id"] = accounts["account_id"]  # sampled accounts stand alone and unlocked
    accounts["parent_id"] = None
    accounts["locked"] = False
    dataset = dataclasses.replace(dataset, accounts=accounts)
    print(f"LP relaxation on {sample:,} sampled accounts of {scenario.parent.name} with all {len(dataset.reps)} reps:")
    print()
    print("| candidates | pairs | LP | LP objective | against all reps | worst rank used (of all reps, by cost) |")
    print("|---|---|---|---|---|---|")
    reference, all_keys, all_rank = None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rules = [("all reps", None, False)] + [(f"nearest {k} + current", k, False) for k in ks]
    rules += [(f"default: nearest {k} + current + coarse plan", k, True) for k in ks]
    for label, k, automatic in rules:
        solver = dataset.scenario.solver.model_copy(update={"candidate_reps": None if automatic else k})
        saved = problem_module.AUTO_CANDIDATE_PAIRS, problem_module.AUTO_CANDIDATE_REPS
        if automatic:
            problem_module.AUTO_CANDIDATE_PAIRS, problem_module.AUTO_CANDIDATE_REPS = 0, k
        try:
            problem = problem_module.build_problem(
                dataclasses.replace(dataset, scenario=dataset.scenario.model_copy(update={"solver": solver}))
            )
        finally:
            problem_module.AUTO_CANDIDATE_PAIRS, problem_module.AUTO_CANDIDATE_REPS = saved
        lp = balance_lp(problem)
        n = len(problem.pair_unit)
        cost = problem.compactness_weight * problem.pair_compactness + problem.preference_weight * problem.pair_penalty
        if lp.status != 0:
            print(f"| {label} | {n:,} | {'infeasible' if lp.status == 2 else lp.message} | - | - | - |")
            continue
        keys = problem.pair_unit * problem.num_reps + problem.pair_rep
        if reference is None:  # the first rule offers every rep: rank each unit's reps by cost once
            reference, all_keys = lp.fun, keys
            order = np.lexsort((cost, problem.pair_unit))
            starts = np.searchsorted(problem.pair_unit[order], np.arange(problem.num_units))
            all_rank = np.empty(n, dtype=np.int64)
            all_rank[order] = np.arange(n) - starts[problem.pair_unit[order]]
        rank = all_rank[np.searchsorted(all_keys, keys)]  # rank among all eligible reps (1: the cheapest)
        print(
            f"| {label} | {n:,} | optimal | {lp.fun:,.0f} | {100 * (lp.fun / reference - 1):+.2f} % "
            f"| {int(rank[lp.x[:n] > 1e-6].max()) + 1} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--instances", default=",".join(DEFAULT_INSTANCES), help="comma-separated folders of benchmarks/instances"
    )
    parser.add_argument("--solve", action="store_true", help="also solve, and report the time to the first plan")
    parser.add_argument("--time-limit", type=float, default=600.0, help="solver time limit with --solve, seconds")
    parser.add_argument(
        "--candidates",
        type=int,
        default=0,
        metavar="ACCOUNTS",
        help="instead: the workload LP against the candidate rule on this many sampled accounts of the last instance",
    )
    parser.add_argument("--k", default="8,20,40", help="candidate counts compared with --candidates")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe

    print(f"Machine: {describe(('ortools', 'numpy', 'pandas'))}")
    print()
    scenarios = [INSTANCES / name / "scenario.yaml" for name in args.instances.split(",")]
    if args.candidates:
        candidate_lp(scenarios[-1], args.candidates, [int(k) for k in args.k.split(",")])
        return
    print(
        "| instance | accounts | reps | units | pairs | load (s) | load peak (MB) | build (s) "
        "| load + build peak (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        load = run(scenario, "load", args.time_limit)
        build = run(scenario, "build", args.time_limit)
        print(
            f"| {scenario.parent.name} | {build['accounts']:,} | {build['reps']} | {build['units']:,} "
            f"| {build['pairs']:,} | {load['load_s']:.1f} | {load['load_peak_mb']:,.0f} | {build['build_s']:.1f} "
            f"| {build['build_peak_mb']:,.0f} |"
        )
    if not args.solve:
        return
    print()
    print(
        "| instance | time limit (s) | status | first plan (s) | within tolerance | max deviation % | gap | peak (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        solved = run(scenario, "solve", args.time_limit)
        first = "none" if solved["first_plan_s"] is None else f"{solved['first_plan_s']:.0f}"
        gap = solved.get("gap")
        deviation = " / ".join(f"{v:.2f}" for v in solved.get("max_deviation_pct", {}).values())
        print(
            f"| {scenario.parent.name} | {args.time_limit:g} | {solved['status']} | {first} "
            f"| {solved.get('feasible', 'no plan')} | {deviation} "
            f"| {'' if gap is None else f'{100 * gap:.2f} %'} | {solved['solve_peak_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
