"""Benchmark: time to the first plan within tolerance, and the proven gap, on generated instances.

Usage::

    python benchmarks/bench_solve.py                      # the shipped example, 3 seeds, 30 s
    python benchmarks/bench_solve.py --sizes 2000x12,10000x20 --seeds 0 --time-limit 60

For each instance and seed it runs, in the same process and one after the
other (so they share the machine's state):

* **ours**: the engine's solve (LP bound + LP start + CP-SAT LNS; one CP-SAT
  model for small problems);
* **cp-sat alone**: one CP-SAT model of the whole problem with CP-SAT's own
  portfolio and the same time limit, hinted with the greedy plan;
* **today's plan** (the current-owner column) and **greedy** (nearest allowed
  rep, then a balance repair pass), scored by the same function.

It prints Markdown tables with the machine and the limits beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from models.dataset import load_dataset  # noqa: E402
from models.generate import write_instance  # noqa: E402
from models.scenario import load_scenario  # noqa: E402
from optimizer import SolveSettings, build_problem, score, solve  # noqa: E402
from optimizer import solver as solver_module  # noqa: E402
from optimizer.warmstart import greedy_assignment  # noqa: E402

EXAMPLE = REPO / "scenarios" / "example" / "scenario.yaml"
INSTANCES = REPO / "benchmarks" / "instances"


def instance(size: str) -> Path:
    """Scenario path for ``NxR`` (the shipped example for 2000x12)."""
    n_accounts, n_reps = (int(v) for v in size.lower().split("x"))
    if (n_accounts, n_reps) == (2000, 12):
        return EXAMPLE
    folder = INSTANCES / f"{n_accounts}x{n_reps}"
    scenario = folder / "scenario.yaml"
    if not scenario.exists():
        fmt = "parquet" if n_accounts >= 100_000 else "csv"
        write_instance(folder, n_accounts, n_reps, seed=7, file_format=fmt)
    return scenario


def fmt_pct(value: float | None) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{100 * value:.3f} %"


def row(size: str, problem, method: str, seed: object, status: str, first: object, wall: float, unit_rep, bound, gap):
    """Print one table row, scoring the assignment with the engine's one scoring function."""
    s = score(problem, unit_rep)
    devs = " / ".join(f"{s.max_deviation_pct.get(m, float('nan')):.2f}" for m in ("accounts", "potential", "workload"))
    ok = "" if s.feasible else " (breaks rules)"
    first_text = f"{first:.1f}" if isinstance(first, float) else str(first)
    bound_text = "-" if bound is None else f"{bound:,.0f}"
    print(
        f"| {size} | {method} | {seed} | {status}{ok} | {first_text} | {wall:.1f} | {s.objective:,.0f} "
        f"| {bound_text} | {fmt_pct(gap)} | {devs} |"
    )


def result_row(size: str, problem, method: str, seed: int, result) -> None:
    """Print the row of a solver result (or its status when it holds no plan)."""
    if result.has_plan:
        first = result.statistics.get("first_solution_seconds")
        row(
            size,
            problem,
            method,
            seed,
            result.status.value,
            first,
            result.wall_seconds,
            result.unit_rep,
            result.bound,
            result.gap,
        )
    else:
        print(
            f"| {size} | {method} | {seed} | {result.status.value} (no plan) | - | {result.wall_seconds:.1f} "
            "| - | - | - | - |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000x12", help="comma-separated NxR sizes (accounts x reps)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve")
    parser.add_argument("--workers", type=int, default=0, help="solver workers (0: every core)")
    parser.add_argument("--no-cpsat-alone", action="store_true", help="skip the one-model CP-SAT peer")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    print(f"Machine: {describe()}")
    print(f"Limits: {args.time_limit:g} s per solve, workers {args.workers or os.cpu_count()}, seeds {seeds}")
    print()
    print(
        "| instance | method | seed | status | first plan within tolerance (s) | wall (s) | objective "
        "(workload-h x km) | bound | gap | max dev accounts / potential / workload (%) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        path = instance(size)
        start = time.perf_counter()
        dataset = load_dataset(load_scenario(path))
        problem = build_problem(dataset)
        prep = time.perf_counter() - start

        current = problem.current_rep.copy()
        if (current >= 0).all():
            row(size, problem, "today's plan", "-", "given", "-", 0.0, current, None, None)
        greedy = greedy_assignment(problem)
        row(size, problem, "greedy", "-", "heuristic", "-", 0.0, greedy, None, None)
        for seed in seeds:
            settings = SolveSettings(time_limit_s=args.time_limit, seed=seed, workers=args.workers)
            result = solve(problem, settings)
            result_row(size, problem, "ours", seed, result)
            if args.no_cpsat_alone:
                continue
            saved = solver_module.FULL_MODEL_PAIRS
            solver_module.FULL_MODEL_PAIRS = 10**12  # force one CP-SAT model
            try:
                alone = solve(problem, settings)
            finally:
                solver_module.FULL_MODEL_PAIRS = saved
            result_row(size, problem, "cp-sat alone", seed, alone)
        print(f"\n{size}: load + build {prep:.1f} s, {problem.num_units:,} units, {len(problem.pair_unit):,} pairs\n")


if __name__ == "__main__":
    main()
