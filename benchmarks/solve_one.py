"""Solve one scenario in one process: load, build, solve, score, peak memory (issue 6's 1M figure).

Usage::

    python benchmarks/solve_one.py benchmarks/instances/load-1000000-parquet/potential10.yaml --time-limit 480

Prints the load + build time, every progress event of the solve (seconds into the solve, objective, gap),
the result (status, objective, bound, gap, solver statistics), whether the plan is within every tolerance
with the largest deviation per metric, and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.dataset import load_dataset
from models.scenario import load_scenario
from optimizer import SolveSettings, build_problem, score, solve


def peak_gb() -> float:
    """Peak resident memory of this process, GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--time-limit", type=float, default=600.0)
    args = parser.parse_args()
    clock = time.perf_counter()
    problem = build_problem(load_dataset(load_scenario(args.scenario)))
    built = time.perf_counter() - clock
    print(f"load + build {built:.1f} s, {len(problem.pair_unit):,} pairs, peak {peak_gb():.2f} GB")

    def progress(event) -> None:
        plan = "no plan yet" if event.objective is None else f"objective {event.objective:,.0f}, gap {event.gap}"
        step = f"{event.phase}: " if event.phase else ""
        print(f"  {event.seconds:.1f} s into the solve: {step}{plan}", flush=True)

    result = solve(problem, SolveSettings(time_limit_s=args.time_limit), progress=progress)
    print(f"{result.status.value}: objective {result.objective:,.0f}, bound {result.bound:,.0f}, gap {result.gap:.4f}")
    print(f"statistics: {result.statistics}")
    if result.unit_rep is not None:
        checked = score(problem, result.unit_rep)
        deviations = ", ".join(f"{k} {v:.3f} %" for k, v in checked.max_deviation_pct.items())
        print(f"within every tolerance: {checked.feasible} ({deviations})")
    print(f"total {time.perf_counter() - clock:.1f} s, peak {peak_gb():.2f} GB")


if __name__ == "__main__":
    main()
