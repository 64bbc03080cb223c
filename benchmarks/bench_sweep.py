"""Sweep and regional-split benchmarks (results and the command in benchmarks/README.md).

* ``--part sweep``: wall time of the example sweep (``scenarios/example/sweep.yaml``, 24 variants) on a local
  Dask cluster of 1 worker (2 CP-SAT threads per variant) against 2 workers (1 thread each), with the same
  per-variant time limit.
* ``--part engines``: why Dask and not Ray: start-up, per-task overhead and shutdown of a local cluster of 2
  worker processes running 200 no-op tasks (needs ``pip install ray`` besides the project's Dask).
* ``--part regions``: the 100k-account instance (``territory generate --accounts 100000 --reps 100``) solved
  whole and region by region (``--split-by Metro``) with the same time limit: wall time, objective, balance.

Usage::

    python benchmarks/bench_sweep.py --part sweep --time-limit 8
    python benchmarks/bench_sweep.py --part regions --time-limit 60
    python benchmarks/bench_sweep.py --part engines
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from models.generate import write_instance  # noqa: E402

EXAMPLE_SWEEP = REPO / "scenarios" / "example" / "sweep.yaml"
INSTANCE = REPO / "benchmarks" / "instances" / "100000x100"


def bench_sweep(time_limit: float) -> None:
    """The example sweep on 1 and on 2 local workers."""
    from territory.sweep import run_sweep

    print("| workers | CP-SAT threads per variant | variants | statuses | wall s |")
    print("|---|---|---|---|---|")
    for workers in (1, 2):
        out = Path(tempfile.mkdtemp(prefix=f"bench-sweep-{workers}-"))
        try:
            result = run_sweep(EXAMPLE_SWEEP, out, workers=workers, time_limit_s=time_limit)
            counts = ", ".join(f"{n} {s}" for s, n in result.table["status"].value_counts().items())
            print(f"| {workers} | {2 // workers} | {len(result.table)} | {counts} | {result.wall_seconds:.1f} |")
        finally:
            shutil.rmtree(out, ignore_errors=True)


def _noop(i: int) -> int:
    return i


def bench_engines(tasks: int = 200) -> None:
    """Dask LocalCluster against Ray on the same 2 worker processes: start, per-task overhead, shutdown."""
    from dask.distributed import Client, LocalCluster

    print("| engine | start s | per task ms | shutdown s |")
    print("|---|---|---|---|")
    clock = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = Client(cluster)
    started = time.perf_counter()
    client.gather(client.map(_noop, range(tasks), pure=False))
    ran = time.perf_counter()
    client.close()
    cluster.close()
    print(f"| dask | {started - clock:.2f} | {1000 * (ran - started) / tasks:.2f} | {time.perf_counter() - ran:.2f} |")
    try:
        import ray
    except ImportError:
        print("| ray | not installed (pip install ray) | | |")
        return
    clock = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_noop)
    ray.get(remote.remote(0))  # Ray starts its workers lazily: count the first task as start-up
    started = time.perf_counter()
    ray.get([remote.remote(i) for i in range(tasks)])
    ran = time.perf_counter()
    ray.shutdown()
    print(f"| ray | {started - clock:.2f} | {1000 * (ran - started) / tasks:.2f} | {time.perf_counter() - ran:.2f} |")


def _row(label: str, plan, seconds: float) -> str:
    summary = plan.summary()
    worst = max(m["max_deviation_pct"] for m in summary["metrics"].values() if m["balanced"])
    return (
        f"| {label} | {summary['status']} | {seconds:.1f} | {summary['objective']:,.0f} | "
        f"{summary['compactness']['workload_km']:,.0f} | {worst:.2f} | {summary['all_within_tolerance']} |"
    )


def bench_regions(time_limit: float, column: str, accounts: int, reps: int) -> None:
    """A generated instance (default 100k accounts): regional split against one solve of the whole problem."""
    from territory.pipeline import prepare, solve_prepared
    from territory.regions import solve_by_regions

    folder = INSTANCE.parent / f"{accounts}x{reps}"
    scenario = folder / "scenario.yaml"
    if not scenario.is_file():
        write_instance(folder, accounts, reps, seed=7, time_limit_s=time_limit)
    print(f"instance: {accounts:,} accounts, {reps} reps (territory generate, seed 7)")
    print("| method | status | wall s | objective | workload_km | worst deviation % | within tolerance |")
    print("|---|---|---|---|---|---|---|")
    clock = time.perf_counter()
    split = None
    try:
        split = solve_by_regions(prepare(scenario, time_limit_s=time_limit), column)
        regional_seconds = time.perf_counter() - clock
        print(_row(f"regional split by {column} ({len(split.regions)} regions)", split.plan, regional_seconds))
        statistics = split.plan.summary()["solver"]["statistics"]
        print(
            f"<!-- coarse {split.coarse_seconds:.1f} s, regions {split.regions_seconds:.1f} s, reconcile "
            f"{split.reconcile_seconds:.1f} s; merged objective {split.merged_objective:,.0f}, merged plan within "
            f"tolerance {statistics.get('merged_within_tolerance')}, repaired {statistics.get('merged_plan_repaired')}"
            f", regions without a plan {statistics['regions_without_plan']} -->"
        )
        print("<!--\n" + split.regions.to_string(index=False) + "\n-->")
    except Exception as exc:  # the single solve is still worth measuring
        print(f"| regional split | {type(exc).__name__}: {exc} | {time.perf_counter() - clock:.1f} | | | | |")
    clock = time.perf_counter()
    try:
        single = solve_prepared(prepare(scenario, time_limit_s=time_limit))
        single_seconds = time.perf_counter() - clock
        print(_row("single solve", single, single_seconds))
        if split is not None:
            lost = split.plan.summary()["objective"] / single.summary()["objective"] - 1
            print(f"\nquality lost by the split: {100 * lost:+.2f} % objective")
            print(f"wall time of the split / the single solve: {regional_seconds / single_seconds:.2f}")
    except Exception as exc:
        print(f"| single solve | {type(exc).__name__}: {exc} | {time.perf_counter() - clock:.1f} | | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("sweep", "regions", "engines"), required=True)
    parser.add_argument("--time-limit", type=float, default=8.0, help="Seconds per variant / per whole solve.")
    parser.add_argument("--column", default="Metro", help="Reps column that names regions (regions part).")
    parser.add_argument("--accounts", type=int, default=100_000, help="Accounts of the instance (regions part).")
    parser.add_argument("--reps", type=int, default=100, help="Reps of the instance (regions part).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    print(describe(("ortools", "dask", "distributed")))
    print(f"time limit {args.time_limit:g} s; the machine was shared with other engineers' runs")
    if args.part == "sweep":
        bench_sweep(args.time_limit)
    elif args.part == "engines":
        bench_engines()
    else:
        bench_regions(args.time_limit, args.column, args.accounts, args.reps)


if __name__ == "__main__":  # Dask's worker processes import this module again: run only as the main script
    main()
