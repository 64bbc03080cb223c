"""Benchmark: contiguous, balanced, compact territories on real US county and census-tract maps, against GerryChain.

Usage::

    python benchmarks/bench_counties.py ../shared/benchmarks/counties                 # every instance, 60 s each
    python benchmarks/bench_counties.py ../shared/benchmarks/counties --peer-cap 10   # GerryChain seeds that fail on
                                                                                      # counties stop at 10 s
    python benchmarks/bench_counties.py ../shared/benchmarks/counties --time-limit 20 --only NC,OH
    python benchmarks/bench_counties.py ../shared/benchmarks/counties --skip-tracts --json /tmp/counties.json

The folder holds ``counties/XX.graphml`` (33 graphs) and ``tracts/XX.graphml`` (4 graphs), read with networkx:
nodes are areas with ``population``, ``latitude``, ``longitude``; edges are shared borders. Instances: k in
{4, 8, 16} territories on every county graph with at least 3k counties, k in {25, 50} on every tract graph;
population within ±5 % of total / k; every territory connected; compactness = sum over areas of population x
great-circle km to the territory's best centre area (a p-median with open centres).

Every instance goes through the public path a planner takes: a scenario folder (one account per area with
its population as a balanced column and as workload, k open territories without home bases, units from the
accounts with their neighbours from a neighbour table ``edges.csv``, ``territories.contiguous: true``,
``compactness_measure: centre``), read by ``territory.pipeline.prepare`` and solved by ``solve_prepared``.
Islands are linked to their nearest area by the engine (``units.islands: connect_nearest``); GerryChain gets
exactly the graph the engine built, links included.

In the same process, GerryChain's ``recursive_tree_part`` runs with 10 seeds (each capped at 60 s; a seed that
raises or times out is no plan), except on instances the engine proves infeasible, where no plan exists to find.
One scorer (``peers.score_partition``) scores every plan: balance,
contiguity, compactness. The table per instance and the summary print the plans found, the time to our first
plan, our compactness over GerryChain's best seed, and over the bound the engine proves.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from peers import PeerError, gerrychain_parts, one_line, parse_seeds, score_partition  # noqa: E402

COUNTY_KS = (4, 8, 16)
TRACT_KS = (25, 50)
TOLERANCE_PCT = 5.0


def instances(folder: Path, only: set[str] | None, tracts: bool) -> Iterator[tuple[str, Path, int]]:
    """``(name, graph file, k)`` of every instance, counties first."""
    layers = [("counties", COUNTY_KS)] + ([("tracts", TRACT_KS)] if tracts else [])
    for layer, ks in layers:
        for path in sorted((folder / layer).glob("*.graphml")):
            state = path.stem
            if only and state not in only:
                continue
            n = nx.read_graphml(path).number_of_nodes()
            for k in ks:
                if layer == "tracts" or n >= 3 * k:
                    yield f"{state} {layer} k={k}", path, k


def write_scenario(graph: nx.Graph, k: int, folder: Path, time_limit: float, seed: int) -> Path:
    """The instance as a planner's scenario folder; returns the scenario file."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(graph.nodes)
    data = graph.nodes
    pd.DataFrame(
        {
            "id": ids,
            "name": [data[i].get("name", i) for i in ids],
            "latitude": [data[i]["latitude"] for i in ids],
            "longitude": [data[i]["longitude"] for i in ids],
            "population": [data[i]["population"] for i in ids],
            "workload": [data[i]["population"] for i in ids],
        }
    ).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame({"id": [f"T{i + 1}" for i in range(k)], "fte": 1.0}).to_csv(folder / "reps.csv", index=False)
    pd.DataFrame(list(graph.edges), columns=["unit_a", "unit_b"]).to_csv(folder / "edges.csv", index=False)
    scenario = {
        "name": f"{folder.name}: {k} territories",
        "data": {"accounts": "accounts.csv", "reps": "reps.csv"},
        "balance": {"population": {"column": "population", "tolerance_pct": TOLERANCE_PCT}},
        "units": {"source": "accounts", "adjacency": "edges.csv", "islands": "connect_nearest"},
        "territories": {"contiguous": True},
        "objective": {"compactness": 1.0, "compactness_measure": "centre"},
        "solver": {"time_limit_s": time_limit, "seed": seed},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def time_cap(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread after ``seconds`` (GerryChain has no time limit of its own)."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"no plan in {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_ours(scenario: Path) -> dict[str, Any]:
    """Solve through the pipeline; the outcome, the plan in the units' order and the engine's own figures."""
    from optimizer import InfeasibleError
    from territory.pipeline import NoPlanError, prepare, solve_prepared

    start = time.perf_counter()
    prepared = prepare(scenario)
    build = time.perf_counter() - start
    units = prepared.dataset.units
    assert units is not None
    out: dict[str, Any] = {"build_seconds": build, "units": units, "problem": prepared.problem}
    try:
        plan = solve_prepared(prepared)
    except InfeasibleError as error:
        out.update(outcome="proven infeasible", reason=one_line(error, 400))
    except NoPlanError as error:
        out.update(outcome="no plan (blocked)", reason=one_line(error, 600))
    else:
        report = plan.report
        first = report.statistics.get("first_solution_seconds")
        out.update(
            outcome="plan",
            assignment=plan.unit_rep,
            bound=report.bound,
            objective=report.objective,
            first_seconds=first,
            bound_kind=report.statistics.get("bound", ""),
        )
    out["seconds"] = time.perf_counter() - start
    return out


def engine_graph(units: Any) -> nx.Graph:
    """The adjacency the engine solved on (neighbour table plus island links), nodes in the units' order."""
    graph = nx.Graph()
    graph.add_nodes_from(range(units.num_units))
    graph.add_edges_from(units.edges.tolist())
    return graph


def run_peers(graph: nx.Graph, weights: np.ndarray, k: int, seeds: list[int], cap: float) -> list[dict[str, Any]]:
    """GerryChain's recursive_tree_part with every seed, each within ``cap`` seconds."""
    rows = []
    for seed in seeds:
        began = time.perf_counter()
        try:
            with time_cap(cap):
                assignment, seconds = gerrychain_parts(graph, weights, k, TOLERANCE_PCT / 100, seed)
        except (PeerError, TimeoutError) as failure:
            rows.append({"seed": seed, "seconds": time.perf_counter() - began, "failed": one_line(failure, 80)})
            continue
        rows.append({"seed": seed, "seconds": seconds, "assignment": assignment})
    return rows


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` (linear interpolation), ``nan`` when empty."""
    return float(np.quantile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the counties benchmark folder (counties/ and tracts/ inside)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="our time limit per instance, s (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="our solver's seed (default 0)")
    parser.add_argument("--seeds", default="0-9", help="GerryChain seeds (default 0-9)")
    parser.add_argument(
        "--peer-cap", type=float, default=60.0, help="GerryChain's time per seed on county graphs, s (default 60)"
    )
    parser.add_argument(
        "--tract-peer-cap", type=float, default=60.0, help="GerryChain's time per seed on tract graphs, s (default 60)"
    )
    parser.add_argument("--only", help="states to run, e.g. NC,OH (default: all)")
    parser.add_argument("--skip-tracts", action="store_true", help="county graphs only")
    parser.add_argument("--skip-peers", action="store_true", help="ours only")
    parser.add_argument("--json", type=Path, help="also write every row as JSON here")
    args = parser.parse_args(argv)
    only = {s.strip().upper() for s in args.only.split(",")} if args.only else None
    seeds = [] if args.skip_peers else parse_seeds(args.seeds)
    began = time.perf_counter()
    print(f"Machine: {describe(('ortools', 'gerrychain', 'networkx', 'scipy'))}")
    print(
        f"Limits: ours {args.time_limit:g} s per instance (seed {args.seed}, all cores); GerryChain "
        f"recursive_tree_part, seeds {args.seeds if seeds else 'none'}, epsilon {TOLERANCE_PCT / 100:g}, "
        f"{args.peer_cap:g} s per seed on counties, {args.tract_peer_cap:g} s on tracts; "
        f"population within ±{TOLERANCE_PCT:g} %, contiguous"
    )
    print()
    print(
        "| instance | areas | ours | first plan (s) | ours total (s) | GerryChain plans | GerryChain best (s) "
        "| ours / best GerryChain | bound kind | ours / bound | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_counties_") as tmp:
        for name, path, k in instances(args.folder, only, not args.skip_tracts):
            graph_file = nx.read_graphml(path)
            folder = Path(tmp) / name.replace(" ", "_").replace("=", "")
            ours = run_ours(write_scenario(graph_file, k, folder, args.time_limit, args.seed))
            units = ours["units"]
            graph = engine_graph(units)
            population = ours["problem"].metrics[0].real
            coords = np.column_stack([units.latitude, units.longitude])
            # a proof of infeasibility (a unit above every share, or CP-SAT's) leaves GerryChain nothing to find
            peers = (
                []
                if ours["outcome"] == "proven infeasible"
                else run_peers(graph, population, k, seeds, args.tract_peer_cap if "tracts" in name else args.peer_cap)
            )
            for peer in peers:
                if "assignment" in peer:
                    peer["score"] = score_partition(peer["assignment"], population, coords, graph, k, TOLERANCE_PCT)
            valid = [p for p in peers if "score" in p and p["score"]["within_tolerance"] and p["score"]["contiguous"]]
            best = min(valid, key=lambda p: p["score"]["compactness"]) if valid else None
            row: dict[str, Any] = {
                "instance": name,
                "areas": units.num_units,
                "k": k,
                "layer": "tracts" if "tracts" in name else "counties",
                "outcome": ours["outcome"],
                "seconds": ours["seconds"],
                "build_seconds": ours["build_seconds"],
                "gerrychain_plans": len(valid),
                "gerrychain_seeds": len(peers),
            }
            note = ours.get("reason", "")
            if ours["outcome"] == "plan":
                score = score_partition(ours["assignment"], population, coords, graph, k, TOLERANCE_PCT)
                row.update(
                    valid=bool(score["within_tolerance"] and score["contiguous"]),
                    max_deviation_pct=score["max_deviation_pct"],
                    compactness=score["compactness"],
                    bound=ours["bound"],
                    bound_kind=ours["bound_kind"],
                    first_seconds=ours["first_seconds"],
                    ratio_bound=score["compactness"] / ours["bound"] if ours["bound"] > 0 else float("nan"),
                )
                if not row["valid"]:
                    note = f"ours breaks a rule (deviation {score['max_deviation_pct']:.2f} %)"
            if best is not None:
                row["gerrychain_best"] = best["score"]["compactness"]
                row["gerrychain_best_seconds"] = best["seconds"]
                if "compactness" in row:
                    row["ratio_peer"] = row["compactness"] / best["score"]["compactness"]
            row["note"] = note
            rows.append(row)
            print(
                f"| {name} | {row['areas']:,} | {row['outcome']} | {_fmt(row.get('first_seconds'), 2)} | "
                f"{row['seconds']:.1f} | {len(valid)}/{len(peers)} | {_fmt(row.get('gerrychain_best_seconds'), 2)} | "
                f"{_fmt(row.get('ratio_peer'), 4)} | {_bound_kind(row.get('bound_kind', ''))} | "
                f"{_fmt(row.get('ratio_bound'), 4)} | {note[:300]} |",
                flush=True,
            )
    print()
    summarise(rows)
    print(f"\nTotal wall time: {time.perf_counter() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float), encoding="utf-8")
    return 0


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _bound_kind(text: str) -> str:
    return "LP" if text.startswith("LP") else ("Lagrangian" if text.startswith("Lagrangian") else (text or "-"))


def summarise(rows: list[dict[str, Any]]) -> None:
    """The summary the issue asks for, per map layer."""
    for layer in ("counties", "tracts"):
        part = [r for r in rows if r["layer"] == layer]
        if not part:
            continue
        anyone = [r for r in part if r["outcome"] == "plan" or r["gerrychain_plans"]]
        ours = [r for r in part if r["outcome"] == "plan" and r.get("valid")]
        missed = [r["instance"] for r in anyone if not (r["outcome"] == "plan" and r.get("valid"))]
        firsts = [r["first_seconds"] for r in ours if r.get("first_seconds") is not None]
        peer = [r["ratio_peer"] for r in ours if "ratio_peer" in r]
        bound = [r["ratio_bound"] for r in ours if np.isfinite(r.get("ratio_bound", float("nan")))]
        print(f"### {layer}")
        print(f"- instances: {len(part)}; some method found a plan on {len(anyone)}; ours on {len(ours)}")
        print(f"- instances where a method found a plan but ours did not: {', '.join(missed) or 'none'}")
        if firsts:
            print(
                f"- first plan (s): median {statistics.median(firsts):.3f}, 90th percentile "
                f"{percentile(firsts, 0.9):.3f}, max {max(firsts):.3f}"
            )
        if peer:
            worse = [r["instance"] for r in ours if r.get("ratio_peer", 0) > 1 + 1e-9]
            print(
                f"- ours / GerryChain's best of its seeds (compactness, lower is better): median "
                f"{statistics.median(peer):.4f}, max {max(peer):.4f}; worse than GerryChain on: "
                f"{', '.join(worse) or 'none'}"
            )
        if bound:
            print(
                f"- ours / proven bound: median {statistics.median(bound):.4f}, 90th percentile "
                f"{percentile(bound, 0.9):.4f}, max {max(bound):.4f}"
            )
        for outcome in ("proven infeasible", "no plan (blocked)"):
            names = [r["instance"] for r in part if r["outcome"] == outcome]
            print(f"- {outcome}: {len(names)}" + (f" ({', '.join(names)})" if names else ""))
        print()


if __name__ == "__main__":
    raise SystemExit(main())
