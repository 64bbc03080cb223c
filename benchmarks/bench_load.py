"""Benchmark: reading and validating large accounts files (time and peak memory).

Usage::

    python benchmarks/bench_load.py                  # 100k and 1M accounts, CSV and Parquet
    python benchmarks/bench_load.py --sizes 1000000 --formats parquet

Each measurement runs in a fresh child process, so its peak resident memory
(``ru_maxrss``) is its own; the instance is generated first (not timed). It
prints a Markdown table with the machine beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INSTANCES = REPO / "benchmarks" / "instances"

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from models.dataset import load_dataset
from models.scenario import load_scenario
t1 = time.perf_counter()
dataset = load_dataset(load_scenario({scenario!r}))
t2 = time.perf_counter()
print(json.dumps({{"accounts": len(dataset.accounts), "reps": len(dataset.reps), "import_s": t1 - t0,
                  "load_s": t2 - t1, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def instance(n_accounts: int, n_reps: int, file_format: str) -> Path:
    """Generate (once) an instance and return its scenario path."""
    from models.generate import write_instance

    folder = INSTANCES / f"load-{n_accounts}-{file_format}"
    scenario = folder / "scenario.yaml"
    if not scenario.exists():
        write_instance(folder, n_accounts, n_reps, seed=7, file_format=file_format)
    return scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated account counts")
    parser.add_argument("--reps", type=int, default=0, help="reps (default: accounts / 2000, at least 20)")
    parser.add_argument("--formats", default="csv,parquet", help="csv and/or parquet")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe

    print(f"Machine: {describe()}")
    print()
    print("| accounts | reps | format | file MB | load + validate (s) | peak memory (MB) |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        reps = args.reps or max(20, size // 2000)
        for file_format in args.formats.split(","):
            scenario = instance(size, reps, file_format)
            data = scenario.parent / f"accounts.{file_format}"
            child = subprocess.run(
                [sys.executable, "-c", CHILD.format(repo=str(REPO), scenario=str(scenario))],
                capture_output=True,
                text=True,
                check=True,
            )
            stats = json.loads(child.stdout.strip().splitlines()[-1])
            print(
                f"| {stats['accounts']:,} | {stats['reps']} | {file_format} | {data.stat().st_size / 1e6:.1f} "
                f"| {stats['load_s']:.1f} | {stats['peak_mb']:,.0f} |"
            )


if __name__ == "__main__":
    main()
