"""Benchmark: delivery territory design (DTDP) instances, ours against published results and open-source peers.

Usage::

    pip install -e ".[bench]"
    python benchmarks/bench_dtdp.py ../shared/benchmarks/dtdp --time-limit 60
    python benchmarks/bench_dtdp.py ../shared/benchmarks/dtdp --time-limit 20 --instances planar500_G0 planar600_G3

The folder holds the instances (``planar{500,600}_G{0..9}.graphml``) and ``published.csv``
(best known, LNS 60 s, VNS, Gurobi 1 h); see its README. The instances are read from there, never copied.

Each instance: 10 territories, every activity (``n_customers``, ``demand``, ``workload``) within ±5 % of
its mean, minimise the largest territory diameter (largest shortest-path distance, edge weight
``distance``, between two nodes of one territory); contiguity not required.

* **ours**: :func:`optimizer.diameter.solve_diameter` on the instance as a
  :class:`~optimizer.problem.Problem` (the engine's path for ``compactness_measure: diameter``), two
  workers, the time limit given;
* **peers**, in the same run, one after the other: GerryChain ``recursive_tree_part`` and METIS
  (balancing one weight: the sum of the three activities, each divided by its mean), k-means-constrained
  on the node coordinates (cluster sizes within ±5 % of n / 10: it balances node counts, not activities),
  spopt's ``WardSpatial`` regionalisation on the coordinates (contiguous, no balance;
  ``RegionKMeansHeuristic`` took 115 s per instance on this machine, too slow for 20 instances).

Every assignment is scored by :func:`optimizer.score.score` (deviation on every activity, within
tolerance, largest diameter) and :func:`optimizer.score.disconnected` (contiguity on the Delaunay graph).
It prints Markdown tables with the machine and limits beside them.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from peers import (  # noqa: E402
    PeerError,
    gerrychain_parts,
    kmeans_constrained_parts,
    metis_parts,
    one_line,
    parse_seeds,
    ward_spatial_parts,
    yes,
)

from optimizer.diameter import diameter_problem, solve_diameter  # noqa: E402
from optimizer.problem import Problem  # noqa: E402
from optimizer.score import disconnected, score  # noqa: E402
from optimizer.settings import SolveSettings  # noqa: E402

ACTIVITIES = ("n_customers", "demand", "workload")
TERRITORIES = 10
TOLERANCE_PCT = 5.0


def load_instance(path: Path) -> tuple[Problem, nx.Graph, np.ndarray]:
    """The instance as a Problem (graph shortest-path distances), its graph on nodes ``0..n-1``, coordinates."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    raw = nx.read_graphml(path)
    nodes = sorted(raw.nodes, key=lambda v: (len(str(v)), str(v)))
    row = {v: i for i, v in enumerate(nodes)}
    n = len(nodes)
    values = {a: np.array([raw.nodes[v][a] for v in nodes], dtype=np.int64) for a in ACTIVITIES}
    coords = np.array([[raw.nodes[v]["x"], raw.nodes[v]["y"]] for v in nodes], dtype=float)
    edges = np.array([(row[a], row[b]) for a, b in raw.edges], dtype=np.int64)
    lengths = np.array([float(d["distance"]) for _, _, d in raw.edges(data=True)])
    matrix = coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(n, n))
    distance = shortest_path(matrix, directed=False)
    if not np.isfinite(distance).all():
        raise SystemExit(f"{path}: the graph is not connected; every diameter would be infinite")
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges.tolist())
    problem = diameter_problem(values, TOLERANCE_PCT, TERRITORIES, distance, edges=edges)
    return problem, graph, coords


def read_published(folder: Path) -> dict[str, dict[str, float]]:
    """``published.csv``: instance -> column -> value."""
    with open(folder / "published.csv", newline="") as handle:
        return {r["instance"]: {k: float(v) for k, v in r.items() if k != "instance"} for r in csv.DictReader(handle)}


def evaluate(problem: Problem, assignment: np.ndarray) -> dict[str, Any]:
    """The one score of any assignment, plus contiguity (not required here, reported for the peers' sake)."""
    s = score(problem, assignment)
    return {
        "deviation": s.max_deviation_pct,
        "within": all(s.within_tolerance.values()),
        "contiguous": not disconnected(problem, assignment),
        "diameter": s.diameter,
        "used": len(np.unique(assignment)),
    }


def combined_weight(problem: Problem) -> np.ndarray:
    """One weight per unit for single-weight peers: the activities, each divided by its mean, summed."""
    return sum(m.real / m.real.mean() for m in problem.metrics)


def run_peers(problem: Problem, graph: nx.Graph, coords: np.ndarray, seeds: list[int]) -> list[dict[str, Any]]:
    """Every peer on one instance; one row per peer and seed."""
    k, tol = TERRITORIES, TOLERANCE_PCT / 100
    weight = combined_weight(problem)
    n = problem.num_units
    rows: list[dict[str, Any]] = []
    runs: list[tuple[str, int, Any]] = []
    for seed in seeds:
        runs.append(("gerrychain", seed, lambda s=seed: gerrychain_parts(graph, weight, k, tol, s)))
    for seed in seeds:
        runs.append(
            ("metis", seed, lambda s=seed: metis_parts(graph, np.round(weight * 1000), k, seed=s, contiguous=False))
        )
    # METIS can also balance each activity as its own constraint (multi-constraint partitioning)
    activities = np.stack([np.round(m.real / m.real.mean() * 1000) for m in problem.metrics], axis=1)
    for seed in seeds:
        runs.append(
            ("metis, 3 constraints", seed, lambda s=seed: metis_parts(graph, activities, k, seed=s, contiguous=False))
        )
    size_min, size_max = int(np.ceil(n / k * (1 - tol))), int(np.floor(n / k * (1 + tol)))
    for seed in seeds:
        runs.append(
            ("k-means-constrained", seed, lambda s=seed: kmeans_constrained_parts(coords, k, size_min, size_max, s))
        )
    runs.append(("spopt WardSpatial", 0, lambda: ward_spatial_parts(graph, coords, k)))
    for method, seed, call in runs:
        try:
            assignment, seconds = call()
        except PeerError as failure:
            rows.append({"method": method, "seed": seed, "seconds": failure.seconds, "failed": one_line(failure, 80)})
            continue
        rows.append({"method": method, "seed": seed, "seconds": seconds, **evaluate(problem, assignment)})
    return rows


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def deviation_text(row: dict[str, Any]) -> str:
    return " / ".join(f"{row['deviation'][a]:.2f}" for a in ACTIVITIES)


def print_method_summary(ours_rows: list[dict[str, Any]], peer_rows: dict[str, list[dict[str, Any]]]) -> None:
    """One line per method over every instance: how often within tolerance, deviations, contiguity, diameter."""
    by_method: dict[str, list[dict[str, Any]]] = (
        {"ours": [r for r in ours_rows if "diameter" in r]} if ours_rows else {}
    )
    for rows in peer_rows.values():
        for row in rows:
            by_method.setdefault(row["method"], []).append(row)
    print(
        "| method | runs | within ±5 % on every activity | largest deviation (%): min-max | contiguous "
        "| max diameter: mean | seconds: mean |"
    )
    print("|---|---|---|---|---|---|---|")
    for method, rows in by_method.items():
        ok = [r for r in rows if "diameter" in r]
        failed = f" ({len(rows) - len(ok)} failed)" if len(ok) < len(rows) else ""
        if not ok:
            print(f"| {method} | {len(rows)}{failed} | - | - | - | - | - |")
            continue
        worst = [max(r["deviation"].values()) for r in ok]
        print(
            f"| {method} | {len(rows)}{failed} | {sum(r['within'] for r in ok)} | {min(worst):.2f}-{max(worst):.2f} | "
            f"{sum(r['contiguous'] for r in ok)}/{len(ok)} | {np.mean([r['diameter'] for r in ok]):.3f} | "
            f"{np.mean([r['seconds'] for r in ok]):.2f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the DTDP folder (instances and published.csv)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="our time limit per instance, s (default 60)")
    parser.add_argument("--instances", nargs="*", help="instance names (default: every .graphml in the folder)")
    parser.add_argument("--seed", type=int, default=0, help="our solver's seed (default 0)")
    parser.add_argument("--workers", type=int, default=2, help="our CP-SAT workers (default 2)")
    parser.add_argument("--peer-seeds", default="0-2", help="peer seeds, e.g. 0-2 (default 0-2)")
    parser.add_argument("--skip-peers", action="store_true", help="run ours only")
    parser.add_argument("--skip-ours", action="store_true", help="run the peers only (prints their summary)")
    args = parser.parse_args(argv)
    folder = args.folder
    published = read_published(folder)
    names = args.instances or sorted(p.stem for p in folder.glob("*.graphml"))
    seeds = parse_seeds(args.peer_seeds)
    began = time.perf_counter()

    print(f"Machine: {describe(('ortools', 'gerrychain', 'pymetis', 'k-means-constrained', 'spopt', 'networkx'))}")
    print(
        f"Limits: ours {args.time_limit:g} s per instance, {args.workers} workers, seed {args.seed}; peers: seeds "
        f"{args.peer_seeds} (GerryChain epsilon {TOLERANCE_PCT / 100:g} on the combined weight, METIS default "
        f"ufactor on the combined weight and on the 3 activities as constraints, "
        f"k-means-constrained sizes n/10 ±{TOLERANCE_PCT:g} %, WardSpatial)"
    )
    print()
    if args.skip_ours:
        peers_only = {}
        for name in names:
            problem, graph, coords = load_instance(folder / f"{name}.graphml")
            peers_only[name] = run_peers(problem, graph, coords, seeds)
        print_method_summary([], peers_only)
        print(f"\nTotal wall time: {time.perf_counter() - began:.0f} s")
        return 0
    ours_rows: list[dict[str, Any]] = []
    peer_rows: dict[str, list[dict[str, Any]]] = {}
    print(
        "| instance | ours: max diameter | bound | max dev n_customers / demand / workload (%) | within ±5 % "
        "| time to best (s) | best known | LNS 60 s | VNS | Gurobi 1 h | ours / best known | better than VNS |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        problem, graph, coords = load_instance(folder / f"{name}.graphml")
        result = solve_diameter(
            problem, SolveSettings(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed)
        )
        pub = published.get(name, {})
        row: dict[str, Any] = {"instance": name, "seconds": result.wall_seconds, "bound": result.bound}
        row["best_seconds"] = result.statistics.get("best_solution_seconds")
        if result.unit_rep is not None:
            row.update(evaluate(problem, result.unit_rep))
        ours_rows.append(row)
        best = pub.get("best_known_lns")
        ratio = row.get("diameter", np.nan) / best if best else np.nan
        vns = pub.get("vns_aly2024")
        print(
            f"| {name} | {fmt(row.get('diameter'))} | {fmt(row['bound'])} | "
            f"{deviation_text(row) if 'deviation' in row else '-'} | {yes(row.get('within', False))} | "
            f"{fmt(row['best_seconds'], 1)} | {fmt(best)} | {fmt(pub.get('lns_60s'))} | {fmt(vns)} | "
            f"{fmt(pub.get('gurobi_1h_aly2024'))} | {fmt(ratio)} | "
            f"{'-' if vns is None or 'diameter' not in row else yes(row['diameter'] < vns)} |",
            flush=True,
        )
        if not args.skip_peers:
            peer_rows[name] = run_peers(problem, graph, coords, seeds)

    ok = [r for r in ours_rows if "diameter" in r]
    within3 = sum(
        r["within"] and r["diameter"] <= 1.03 * published[r["instance"]]["best_known_lns"] + 1e-9
        for r in ok
        if r["instance"] in published
    )
    beat_vns = sum(r["diameter"] < published[r["instance"]]["vns_aly2024"] for r in ok if r["instance"] in published)
    ratios = [r["diameter"] / published[r["instance"]]["best_known_lns"] for r in ok if r["instance"] in published]
    print()
    print(
        f"Ours: {within3}/{len(ours_rows)} instances within ±5 % and within 3 % of the best known; "
        f"{beat_vns}/{len(ours_rows)} better than VNS; ratio to best known: mean {np.mean(ratios):.4f}, "
        f"worst {np.max(ratios):.4f}"
        if ratios
        else "Ours: no plan"
    )

    if peer_rows:
        print()
        print(
            "| instance | method | seed | seconds | max dev n_customers / demand / workload (%) | within ±5 % "
            "| contiguous | territories | max diameter |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for row in ours_rows:
            if "diameter" in row:
                print(
                    f"| {row['instance']} | ours | {args.seed} | {row['seconds']:.1f} | {deviation_text(row)} | "
                    f"{yes(row['within'])} | {yes(row['contiguous'])} | {row['used']} | {row['diameter']:.3f} |"
                )
            for peer in peer_rows.get(row["instance"], []):
                if "failed" in peer:
                    print(
                        f"| {row['instance']} | {peer['method']} | {peer['seed']} | {peer['seconds']:.2f} | "
                        f"failed ({peer['failed']}) | - | - | - | - |"
                    )
                    continue
                print(
                    f"| {row['instance']} | {peer['method']} | {peer['seed']} | {peer['seconds']:.2f} | "
                    f"{deviation_text(peer)} | {yes(peer['within'])} | {yes(peer['contiguous'])} | {peer['used']} | "
                    f"{peer['diameter']:.3f} |"
                )
        print()
        print_method_summary(ours_rows, peer_rows)
        print()
        print(
            "| instance | ours | best peer within ±5 % on every activity | its max diameter | ours / peer "
            "| most compact peer (any balance) | its max diameter | ours / peer |"
        )
        print("|---|---|---|---|---|---|---|---|")
        met = 0
        for row in ours_rows:
            scored = [p for p in peer_rows.get(row["instance"], []) if "diameter" in p]
            valid = [p for p in scored if p["within"]]
            cells = ["none", "-", "-"]
            if not valid:
                met += bool(row.get("within"))
            else:
                peer = min(valid, key=lambda p: p["diameter"])
                ratio = row["diameter"] / peer["diameter"]
                met += bool(row.get("within")) and ratio <= 0.85
                cells = [f"{peer['method']} seed {peer['seed']}", f"{peer['diameter']:.3f}", f"{ratio:.3f}"]
            if scored:
                peer = min(scored, key=lambda p: p["diameter"])
                cells += [
                    f"{peer['method']} seed {peer['seed']}",
                    f"{peer['diameter']:.3f}",
                    f"{row['diameter'] / peer['diameter']:.3f}",
                ]
            else:
                cells += ["none", "-", "-"]
            print(f"| {row['instance']} | {fmt(row.get('diameter'))} | " + " | ".join(cells) + " |")
        within_any = sum(any(p.get("within") for p in peer_rows.get(r["instance"], [])) for r in ours_rows)
        print()
        print(
            f"Peers: a plan within ±5 % on every activity on {within_any}/{len(ours_rows)} instances; ours within "
            f"tolerance and at least 15 % more compact than the best such peer (or no peer within tolerance): "
            f"{met}/{len(ours_rows)}"
        )
    print(f"Total wall time: {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
