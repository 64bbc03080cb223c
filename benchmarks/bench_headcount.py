"""Benchmark: headcount reruns on the shipped example, with continuity against a from-scratch solve.

Usage::

    python benchmarks/bench_headcount.py --time-limit 30

It solves, one after the other in one process:

1. the annual plan (``scenarios/example/scenario.yaml``): the baseline of the reruns;
2. **a rep leaves** (``rep_leaves.yaml``: R010 removed, move penalty on) and the
   same team **from scratch** (move penalty 0: the most compact plan, moves not
   considered);
3. **two hires** (``two_hires.yaml``: an enterprise and an SMB open territory,
   move penalty on) and the same team from scratch.

Every rerun is measured against the annual plan: accounts moved (forced: the
departing rep's; discretionary: the rest), the ratio of all moves to the
departing rep's book, potential moved, travel, and whether every metric is
within tolerance. It prints a Markdown table with the machine and the limits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402

from models.plan import Plan  # noqa: E402
from territory.pipeline import prepare, solve_prepared  # noqa: E402

EXAMPLE = REPO / "scenarios" / "example"


def _from_scratch(scenario: Path, folder: Path) -> Path:
    """A variant of ``scenario`` with moves free (the same baseline, so moves are still counted)."""
    path = folder / f"{scenario.stem}_from_scratch.yaml"
    path.write_text(yaml.safe_dump({"extends": str(scenario), "continuity": {"move_penalty_km": 0}}))
    return path


def _row(label: str, plan: Plan, seconds: float, book: int | None) -> str:
    summary = plan.summary()
    moves = summary["moves"]
    ratio = f"{moves['accounts_moved'] / book:.2f}" if book else "-"
    worst = ", ".join(
        f"{name} {m['max_deviation_pct']:.1f}/{m['tolerance_pct']:g}"
        for name, m in summary["metrics"].items()
        if m.get("balanced")
    )
    return (
        f"| {label} | {summary['reps']} | {summary['status']} | {'yes' if summary['all_within_tolerance'] else 'NO'} "
        f"| {worst} | {moves['accounts_moved']} | {moves['forced_moves']} | {moves['discretionary_moves']} "
        f"| {ratio} | {moves['potential_moved_pct']:.2f} | {summary['compactness']['workload_km']:,.0f} "
        f"| {seconds:.1f} |"
    )


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=30.0, help="seconds per solve")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    solved: dict[Path, Plan] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        annual_path = (EXAMPLE / "scenario.yaml").resolve()
        clock = time.perf_counter()
        annual = solve_prepared(prepare(annual_path, time_limit_s=args.time_limit, seed=args.seed))
        solved[annual_path] = annual
        rows.append(_row("annual plan (vs today's owners)", annual, time.perf_counter() - clock, None))
        book = int((annual.assignments()["rep_id"] == "R010").sum())
        for name, label in (("rep_leaves.yaml", "R010 leaves"), ("two_hires.yaml", "two hires")):
            for variant, path in (
                ("continuity", EXAMPLE / name),
                ("from scratch", _from_scratch((EXAMPLE / name).resolve(), Path(tmp))),
            ):
                clock = time.perf_counter()
                prepared = prepare(path, time_limit_s=args.time_limit, seed=args.seed, baselines=solved)
                plan = solve_prepared(prepared)
                leaving = book if "leaves" in label else None
                rows.append(_row(f"{label}, {variant}", plan, time.perf_counter() - clock, leaving))

    print(f"Machine: {describe()}")
    print(f"Time limit {args.time_limit:g} s per solve, seed {args.seed}; reruns measured against the annual plan.")
    print(f"R010 holds {book} accounts in the annual plan.\n")
    print(
        "| run | reps | status | within tolerance | worst deviation / tolerance, % | accounts moved | forced "
        "| discretionary | moved / R010's book | potential moved % | workload-hour x km | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
