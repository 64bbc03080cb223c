"""Time ``plan.xlsx`` of a plan folder: the workbook alone, from the plan as ``territory compare`` reads it.

Usage::

    python benchmarks/bench_workbook.py /tmp/plan1m            # a folder `territory solve --out` wrote

Prints the seconds to read the plan, to make its tables (assignments, territories, summary) and to write the
workbook, the workbook's size, and the load average beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.plan_excel import write_plan_excel
from territory.compare import load_plan_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a plan folder (assignments.csv, summary.json, ...)")
    args = parser.parse_args()
    clock = time.perf_counter()
    plan = load_plan_folder(args.folder)
    read = time.perf_counter() - clock
    clock = time.perf_counter()
    plan.assignments(), plan.territories(), plan.summary()
    tables = time.perf_counter() - clock
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plan.xlsx"
        clock = time.perf_counter()
        write_plan_excel(path, plan)
        written = time.perf_counter() - clock
        size = path.stat().st_size / 1e6
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    accounts = len(plan.assignments())
    print(f"{accounts:,} accounts: read {read:.1f} s, tables {tables:.1f} s, plan.xlsx {written:.1f} s, {size:.1f} MB")
    print(f"load average {load}")


if __name__ == "__main__":
    main()
