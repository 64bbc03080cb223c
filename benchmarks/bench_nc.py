"""Benchmark: North Carolina's 100 counties in 8 contiguous territories balanced on births, against peers.

Usage::

    python benchmarks/bench_nc.py                    # peers and ours (ours reports if the engine refuses)
    python benchmarks/bench_nc.py --skip-ours        # peers only
    python benchmarks/bench_nc.py --seeds 0-19 --time-limit 60 --keep-scenario /tmp/nc

The counties come from libpysal's bundled ``sids2`` example (the shapefile
ships inside the libpysal wheel, no download); ``BIR74`` (births 1974-78) is
the balanced metric. The shapefile has no ``.prj``: its coordinates are NAD27
longitude/latitude (EPSG:4267), reprojected here to WGS84.

On one rook adjacency graph (counties sharing a border of positive length),
in the same process and one after the other, it runs:

* **GerryChain** ``recursive_tree_part`` (one row per seed; a seed that finds
  no plan is a failure row);
* **METIS** k-way (``pymetis.part_graph``, vertex weights = births, contiguous
  parts requested, METIS's own imbalance factor; one row per seed);
* **ours**: the instance written as a scenario folder (one account per county,
  8 open territories without home bases, counties as the unit layer,
  ``territories.contiguous: true``, compactness around each territory's centre)
  and solved with ``territory.pipeline``. Each account's workload is its births
  too, so the engine's objective (workload x km to the centre) is the score's
  compactness.

Every assignment is scored by :func:`peers.score_partition`. It prints Markdown
tables with the machine, versions and limits beside them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from peers import PeerError, gerrychain_parts, metis_parts, one_line, parse_seeds, score_partition, yes  # noqa: E402

#: NC State Plane (metres), for border lengths and representative points.
PROJECTED_CRS = "EPSG:32119"
#: The sids2 shapefile's undeclared datum: NAD27 longitude/latitude.
SOURCE_CRS = "EPSG:4267"
ID_COLUMN = "FIPS"
METRIC = "BIR74"


def load_counties() -> gpd.GeoDataFrame:
    """The 100 counties in WGS84, with ``latitude``/``longitude`` of a representative point inside each.

    The point is shapely's ``point_on_surface`` in longitude/latitude, the point the engine gives a polygon
    unit, so the engine's distances and the score's are the same.
    """
    from libpysal import examples

    path = examples.get_path("sids2.shp")
    counties = gpd.read_file(path)
    if counties.crs is None:
        counties = counties.set_crs(SOURCE_CRS)
    counties = counties.to_crs("EPSG:4326").reset_index(drop=True)
    points = shapely.point_on_surface(counties.geometry.to_numpy())  # as the engine places a polygon unit
    counties["latitude"] = shapely.get_y(points)
    counties["longitude"] = shapely.get_x(points)
    counties[METRIC] = counties[METRIC].astype(float)
    if not counties[ID_COLUMN].is_unique:
        raise SystemExit(f"county ids in column {ID_COLUMN} are not unique")
    return counties


def rook_graph(counties: gpd.GeoDataFrame) -> tuple[nx.Graph, int]:
    """Counties sharing a border of positive length; also the number of point-only (queen) contacts left out."""
    geoms = counties.to_crs(PROJECTED_CRS).geometry.to_numpy()
    left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    shared = shapely.intersection(shapely.boundary(geoms[left]), shapely.boundary(geoms[right]))
    border = shapely.length(shared) > 0
    graph = nx.Graph()
    graph.add_nodes_from(range(len(counties)))
    graph.add_edges_from(zip(left[border].tolist(), right[border].tolist(), strict=True))
    return graph, int((~border).sum())


def write_scenario(
    folder: Path, counties: gpd.GeoDataFrame, k: int, tolerance_pct: float, time_limit_s: float, seed: int
) -> Path:
    """Write the instance as a scenario folder; return the scenario file."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = counties[ID_COLUMN].astype(str)
    pd.DataFrame(
        {
            "id": ids,
            "name": counties["NAME"],
            "latitude": counties["latitude"].round(6),
            "longitude": counties["longitude"].round(6),
            "segment": "any",
            "potential": counties[METRIC],
            "workload": counties[METRIC],
            "county": ids,
        }
    ).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(
        {
            "id": [f"T{i + 1}" for i in range(k)],
            "name": [f"Territory {i + 1}" for i in range(k)],
            "latitude": [None] * k,
            "longitude": [None] * k,
            "segment": "any",
            "fte": 1.0,
        }
    ).to_csv(folder / "reps.csv", index=False)
    layer = counties[[ID_COLUMN, "NAME", METRIC, "geometry"]].copy()
    layer[ID_COLUMN] = layer[ID_COLUMN].astype(str)
    layer.to_file(folder / "counties.geojson", driver="GeoJSON")
    scenario = {
        "name": f"North Carolina, {k} territories",
        "data": {"accounts": "accounts.csv", "reps": "reps.csv"},
        "balance": {"potential": {"tolerance_pct": tolerance_pct}},
        "units": {
            "source": "polygons",
            "path": "counties.geojson",
            "id_column": ID_COLUMN,
            "account_column": "county",
        },
        "territories": {"contiguous": True},
        "objective": {"compactness": 1.0, "compactness_measure": "centre"},
        "solver": {"time_limit_s": time_limit_s, "seed": seed},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path


def run_ours(scenario: Path, counties: gpd.GeoDataFrame, k: int) -> tuple[np.ndarray, float, str, float]:
    """Solve the scenario with the engine; return (assignment per county, seconds, status, proven bound)."""
    from territory.pipeline import prepare, solve_prepared

    start = time.perf_counter()
    plan = solve_prepared(prepare(scenario))
    seconds = time.perf_counter() - start
    territory_of = {f"T{i + 1}": i for i in range(k)}
    rep_of_account = dict(
        zip(plan.dataset.accounts["account_id"].astype(str), (str(r) for r in plan.rep_ids), strict=True)
    )
    ids = counties[ID_COLUMN].astype(str)
    missing = [i for i in ids if i not in rep_of_account]
    if missing:
        raise RuntimeError(f"the plan has no territory for {len(missing)} county(ies), e.g. {missing[0]}")
    assignment = np.array([territory_of[rep_of_account[i]] for i in ids], dtype=np.int64)
    return assignment, seconds, plan.report.status, plan.report.bound


COLUMNS = [
    "method",
    "seed",
    "status",
    "seconds",
    "max deviation (%)",
    "within ±{tol:g} %",
    "contiguous",
    "territories",
    "compactness (births x km)",
    "diameter (km)",
]


def header(tol: float, first: str | None = None) -> str:
    names = ([first] if first else []) + [c.format(tol=tol) for c in COLUMNS]
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def table_row(method: str, seed: object, status: str, seconds: float | None, score: dict[str, Any] | None) -> str:
    secs = "-" if seconds is None else f"{seconds:.3f}"
    if score is None:
        return f"| {method} | {seed} | {status} | {secs} | - | - | - | - | - | - |"
    return (
        f"| {method} | {seed} | {status} | {secs} | {score['max_deviation_pct']:.2f} | "
        f"{yes(score['within_tolerance'])} | {yes(score['contiguous'])} | {score['territories_used']} | "
        f"{score['compactness']:,.0f} | {score['diameter_km']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=8, help="territories (default 8)")
    parser.add_argument("--tolerance-pct", type=float, default=5.0, help="balance tolerance, %% (default 5)")
    parser.add_argument("--seeds", default="0-9", help="GerryChain and METIS seeds, e.g. 0-9 or 0,4,7 (default 0-9)")
    parser.add_argument("--node-repeats", type=int, default=0, help="GerryChain node_repeats (default 0)")
    parser.add_argument(
        "--max-attempts", type=int, default=10_000, help="GerryChain spanning trees per cut before failing"
    )
    parser.add_argument(
        "--metis-ufactor", type=int, help="METIS imbalance factor in thousandths (default: METIS's own, 30)"
    )
    parser.add_argument("--time-limit", type=float, default=30.0, help="our solver's time limit, s (default 30)")
    parser.add_argument("--ours-seed", type=int, default=0, help="our solver's seed (default 0)")
    parser.add_argument("--skip-ours", action="store_true", help="run the peers only")
    parser.add_argument("--keep-scenario", type=Path, help="write our scenario folder here (default: a temp dir)")
    args = parser.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    tol = args.tolerance_pct
    began = time.perf_counter()

    counties = load_counties()
    graph, point_contacts = rook_graph(counties)
    weights = counties[METRIC].to_numpy(dtype=float)
    coords = counties[["latitude", "longitude"]].to_numpy(dtype=float)
    k = args.k

    def score(assignment: np.ndarray) -> dict[str, Any]:
        return score_partition(assignment, weights, coords, graph, k, tol)

    print(f"Machine: {describe(('ortools', 'gerrychain', 'pymetis', 'libpysal', 'networkx'))}")
    print(
        f"Instance: North Carolina, {len(counties)} counties (libpysal sids2), metric {METRIC} "
        f"(total {weights.sum():,.0f}, mean per territory {weights.sum() / k:,.0f}, largest county "
        f"{weights.max() / (weights.sum() / k):.0%} of it), {k} territories within ±{tol:g} %"
    )
    print(
        f"Rook graph: {graph.number_of_edges()} edges (shared border > 0; {point_contacts} point-only contacts "
        f"left out), connected: {'yes' if nx.is_connected(graph) else 'NO'}"
    )
    if args.metis_ufactor is None:
        metis_balance = "its default ufactor (30: heaviest part <= 1.03 x mean)"
    else:
        metis_balance = f"ufactor {args.metis_ufactor} (heaviest part <= {1 + args.metis_ufactor / 1000:g} x mean)"
    print(
        f"Limits: GerryChain recursive_tree_part epsilon {tol / 100:g}, node_repeats {args.node_repeats}, "
        f"max_attempts {args.max_attempts:,} per cut; METIS k-way, contiguous, {metis_balance}, no time limit; "
        f"ours: time limit {args.time_limit:g} s, "
        f"seed {args.ours_seed}, all cores"
    )
    print()
    print(header(tol))

    results: list[dict[str, Any]] = []
    for seed in seeds:
        try:
            assignment, seconds = gerrychain_parts(
                graph,
                weights,
                k,
                tol / 100,
                seed,
                node_repeats=args.node_repeats,
                max_attempts=args.max_attempts,
            )
        except PeerError as failure:
            results.append({"method": "gerrychain", "seed": seed, "failed": one_line(failure)})
            print(table_row("gerrychain", seed, f"failed ({one_line(failure, 80)})", failure.seconds, None))
            continue
        s = score(assignment)
        results.append({"method": "gerrychain", "seed": seed, "seconds": seconds, "score": s})
        print(table_row("gerrychain", seed, "plan", seconds, s))
    for seed in seeds:
        assignment, seconds = metis_parts(graph, weights, k, seed=seed, contiguous=True, ufactor=args.metis_ufactor)
        s = score(assignment)
        results.append({"method": "metis", "seed": seed, "seconds": seconds, "score": s})
        print(table_row("metis", seed, "plan", seconds, s))

    ours: dict[str, Any] | None = None
    ours_error: str | None = None
    if not args.skip_ours:
        with tempfile.TemporaryDirectory(prefix="bench_nc_") as tmp:
            folder = args.keep_scenario or Path(tmp) / "nc"
            scenario = write_scenario(folder, counties, k, tol, args.time_limit, args.ours_seed)
            start = time.perf_counter()
            try:
                assignment, seconds, status, bound = run_ours(scenario, counties, k)
            except Exception as error:  # the engine may refuse the scenario until contiguity lands
                ours_error = f"{type(error).__name__}: {one_line(error)}"
                print(table_row("ours", args.ours_seed, "not available", time.perf_counter() - start, None))
            else:
                ours = {
                    "method": "ours",
                    "seed": args.ours_seed,
                    "seconds": seconds,
                    "score": score(assignment),
                    "bound": bound,
                }
                print(table_row("ours", args.ours_seed, status, seconds, ours["score"]))

    print()
    if ours_error is not None:
        print(f"ours: not available yet ({ours_error})")
    elif args.skip_ours:
        print("ours: skipped (--skip-ours)")

    gc = [r for r in results if r["method"] == "gerrychain"]
    failures = [r for r in gc if "failed" in r]
    line = f"GerryChain: {len(gc) - len(failures)}/{len(gc)} seeds found a plan"
    if failures:
        line += "; failures: " + "; ".join(f"seed {r['seed']} ({r['failed']})" for r in failures)
    print(line)
    metis = [r for r in results if r["method"] == "metis"]
    metis_ok = sum(r["score"]["within_tolerance"] and r["score"]["contiguous"] for r in metis)
    metis_dev = sorted(r["score"]["max_deviation_pct"] for r in metis)
    print(
        f"METIS: {metis_ok}/{len(metis)} seeds within ±{tol:g} % and contiguous; "
        f"max deviation {metis_dev[0]:.2f}-{metis_dev[-1]:.2f} %"
    )

    valid = [r for r in gc if "score" in r and r["score"]["within_tolerance"] and r["score"]["contiguous"]]
    best = min(valid, key=lambda r: r["score"]["compactness"]) if valid else None
    print()
    print(header(tol, first="summary"))
    label = "best GerryChain seed within tolerance by compactness"
    if best is None:
        print(f"| {label} | gerrychain | - | none within tolerance | - | - | - | - | - | - | - |")
    else:
        print(f"| {label} " + table_row("gerrychain", best["seed"], "plan", best["seconds"], best["score"]))
    if ours is not None:
        print("| ours " + table_row("ours", ours["seed"], "plan", ours["seconds"], ours["score"]))
    ratio = "-"
    if ours is not None and best is not None:
        ratio = f"{ours['score']['compactness'] / best['score']['compactness']:.3f}"
        if not (ours["score"]["within_tolerance"] and ours["score"]["contiguous"]):
            ratio += " (ours breaks a rule)"
    print()
    print(f"Compactness ratio ours / best GerryChain: {ratio}")
    if ours is not None and ours.get("bound"):
        bound = ours["bound"]
        print(
            f"Lower bound proven by the engine (LP of a balanced p-median: no plan within ±{tol:g} %, contiguous or "
            f"not, is more compact): {bound:,.0f}; ours is within {ours['score']['compactness'] / bound - 1:.1%} of it"
        )
        if best is not None:
            print(
                f"So no plan can be more than {1 - bound / best['score']['compactness']:.1%} more compact than the "
                "best GerryChain seed"
            )
    print(f"Total wall time: {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
