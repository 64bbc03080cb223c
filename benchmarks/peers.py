"""Peer partitioners and the one scoring function for contiguous-territory benchmarks.

Each peer takes a ``networkx`` graph whose nodes are ``0 .. n-1`` (the units in
the benchmark's order) and returns ``(assignment, seconds)``: an integer array
with the territory index ``0 .. k-1`` of every unit, and the wall time of the
partitioning call. A peer that gives up raises :class:`PeerError`, which
carries the seconds it spent and the peer's own message.

:func:`score_partition` scores any assignment (a peer's or ours) the same way,
so the benchmark compares like with like.

The peers need the benchmark extras (``gerrychain``, ``pymetis``,
``k-means-constrained``, ``spopt``); they are imported when a peer is called,
so scoring alone needs none of them. The small table helpers at the end are
shared by the benchmark scripts.
"""

from __future__ import annotations

import time
import warnings
from functools import partial
from typing import Any

import networkx as nx
import numpy as np

from models.geo import haversine_km


class PeerError(Exception):
    """A peer found no partition; ``seconds`` is the time it spent trying."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


def _check_nodes(graph: nx.Graph, n: int) -> None:
    if set(graph.nodes) != set(range(n)):
        raise ValueError(f"graph nodes must be 0 .. {n - 1} (the units' order), got {graph.number_of_nodes()} nodes")


def gerrychain_parts(
    graph: nx.Graph,
    pop: np.ndarray,
    k: int,
    epsilon: float,
    seed: int,
    *,
    node_repeats: int = 0,
    max_attempts: int = 10_000,
) -> tuple[np.ndarray, float]:
    """GerryChain's ``recursive_tree_part``: carve ``k`` parts off random spanning trees.

    Parameters
    ----------
    graph
        Unit adjacency, nodes ``0 .. n-1``.
    pop
        The balanced metric per unit (GerryChain sums it as given).
    k
        Number of parts.
    epsilon
        Allowed deviation from ``sum(pop) / k`` as a fraction (0.05 = ±5 %).
    seed
        Seed of GerryChain's random generator (``rng=seed``).
    node_repeats
        Extra roots tried per spanning tree; GerryChain 1.0's default cut finder
        searches each tree exhaustively, so 0 (redraw the tree) is its advice.
    max_attempts
        Spanning trees drawn per cut before giving up (GerryChain's default is
        100,000, which takes minutes to fail; 10,000 fails in seconds).

    Returns
    -------
    (assignment, seconds)

    Raises
    ------
    PeerError
        No balanced cut was found (GerryChain's ``RuntimeError`` or balance error).
    """
    from gerrychain import Graph
    from gerrychain.partition.initial_partition_generators import recursive_tree_part
    from gerrychain.tree import bipartition_tree

    pop = np.asarray(pop)
    _check_nodes(graph, len(pop))
    nx_graph = nx.Graph()
    nx_graph.add_nodes_from((i, {"pop": float(pop[i])}) for i in range(len(pop)))
    nx_graph.add_edges_from(graph.edges)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            flips = recursive_tree_part(
                Graph.from_networkx(nx_graph),
                list(range(k)),
                float(pop.sum()) / k,
                "pop",
                epsilon,
                node_repeats=node_repeats,
                bipartition_tree_fn=partial(bipartition_tree, max_attempts=max_attempts),
                rng=seed,
            )
    except Exception as exc:  # GerryChain signals failure with RuntimeError and its own balance errors
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise PeerError(message, time.perf_counter() - start) from exc
    seconds = time.perf_counter() - start
    assignment = np.full(len(pop), -1, dtype=np.int64)
    for node, part in flips.items():
        assignment[int(node)] = int(part)
    if (assignment < 0).any():
        raise PeerError(f"{int((assignment < 0).sum())} unit(s) left unassigned", seconds)
    return assignment, seconds


def metis_parts(
    graph: nx.Graph,
    weights: np.ndarray,
    k: int,
    *,
    seed: int | None = None,
    contiguous: bool = True,
    ufactor: int | None = None,
) -> tuple[np.ndarray, float]:
    """METIS k-way partitioning (``pymetis.part_graph``) minimising the edge cut.

    Parameters
    ----------
    graph
        Unit adjacency, nodes ``0 .. n-1``.
    weights
        Vertex weights, one per unit or one row of several per unit (one balance constraint per column, METIS's
        multi-constraint partitioning); rounded to integers (METIS needs integers).
    k
        Number of parts.
    seed
        METIS's random seed (``None``: its default).
    contiguous
        Ask METIS for connected parts (``METIS_OPTION_CONTIG``).
    ufactor
        METIS's allowed load imbalance in thousandths (its default for k-way is
        30: the heaviest part at most 1.03 x the mean); ``None``: METIS's default.
        METIS bounds only the heaviest part and treats it as a target, not a rule.

    Returns
    -------
    (assignment, seconds)
    """
    import pymetis

    weights = np.asarray(weights)
    _check_nodes(graph, len(weights))
    adjacency = [sorted(int(v) for v in graph.neighbors(u)) for u in range(len(weights))]
    vweights = [round(float(w)) for w in weights.ravel()]
    if weights.ndim == 2:
        # pymetis (2025.2) takes the number of constraints as len(vweights) // (units + 1): pad one unit's worth
        # of zeros, which METIS never reads, so that it comes out as the number of columns
        vweights += [0] * weights.shape[1]
    options = pymetis.Options()
    if seed is not None:
        options.seed = int(seed)
    if contiguous:
        options.contig = 1
    if ufactor is not None:
        options.ufactor = int(ufactor)
    start = time.perf_counter()
    _cut, parts = pymetis.part_graph(k, adjacency=adjacency, vweights=vweights, options=options)
    seconds = time.perf_counter() - start
    return np.asarray(parts, dtype=np.int64), seconds


def _distance_matrix(coords_km: np.ndarray, n: int) -> np.ndarray:
    coords = np.asarray(coords_km, dtype=float)
    if coords.shape == (n, n) and n != 2:
        return coords
    if coords.shape != (n, 2):
        raise ValueError(f"coords_km must be ({n}, 2) latitude/longitude degrees or an ({n}, {n}) km matrix")
    lat, lon = coords[:, 0], coords[:, 1]
    return haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])


def score_partition(
    assignment: np.ndarray,
    weights: np.ndarray,
    coords_km: np.ndarray,
    graph: nx.Graph,
    k: int,
    tolerance: float,
) -> dict[str, Any]:
    """Score an assignment of units to ``k`` territories the same way for every method.

    Parameters
    ----------
    assignment
        Territory index ``0 .. k-1`` per unit.
    weights
        The balanced metric per unit; it also weighs the compactness distances.
    coords_km
        Where distances in km come from: ``(n, 2)`` latitude/longitude in degrees
        (great-circle distances between them), or a precomputed ``(n, n)`` matrix
        of km (for ``n > 2``).
    graph
        Unit adjacency, nodes ``0 .. n-1``; contiguity is connectedness in it.
    k
        Number of territories asked for.
    tolerance
        Allowed deviation from the mean load, in percent (5 = ±5 %).

    Returns
    -------
    dict
        ``max_deviation_pct`` (max over territories of ``|load - mean| / mean``, in %,
        with ``mean = total / k``, so an empty territory counts as -100 %),
        ``within_tolerance``, ``contiguous`` (every used territory connected),
        ``disconnected`` (territories in more than one piece), ``territories_used``,
        ``compactness`` (sum over units of weight x km to its territory's centre,
        the centre being the member that minimises that sum: a weighted 1-median),
        ``diameter_km`` (largest distance between two members of one territory),
        ``mean_diameter_km``, ``loads`` and ``centres`` (unit index per territory,
        -1 when empty).
    """
    assignment = np.asarray(assignment, dtype=np.int64)
    weights = np.asarray(weights, dtype=float)
    n = len(assignment)
    if weights.shape != (n,):
        raise ValueError(f"weights must have one value per unit ({n}), got shape {weights.shape}")
    if n and (assignment.min() < 0 or assignment.max() >= k):
        raise ValueError(f"assignment values must lie in 0 .. {k - 1}")
    _check_nodes(graph, n)
    dist = _distance_matrix(coords_km, n)

    loads = np.bincount(assignment, weights=weights, minlength=k)
    mean = weights.sum() / k
    max_dev_pct = float(np.abs(loads - mean).max() / mean * 100) if mean > 0 else float("nan")

    compactness = 0.0
    diameters: list[float] = []
    centres = np.full(k, -1, dtype=np.int64)
    disconnected = 0
    for t in range(k):
        members = np.flatnonzero(assignment == t)
        if len(members) == 0:
            continue
        sub = dist[np.ix_(members, members)]
        cost = sub @ weights[members]  # cost[i]: weighted km of all members to candidate centre members[i]
        best = int(np.argmin(cost))
        centres[t] = members[best]
        compactness += float(cost[best])
        diameters.append(float(sub.max()))
        if not nx.is_connected(graph.subgraph(members.tolist())):
            disconnected += 1

    return {
        "max_deviation_pct": max_dev_pct,
        "within_tolerance": bool(max_dev_pct <= tolerance + 1e-9),
        "contiguous": disconnected == 0,
        "disconnected": disconnected,
        "territories_used": len(diameters),
        "compactness": compactness,
        "diameter_km": max(diameters, default=0.0),
        "mean_diameter_km": float(np.mean(diameters)) if diameters else 0.0,
        "loads": loads,
        "centres": centres,
    }


def kmeans_constrained_parts(
    coords: np.ndarray, k: int, size_min: int, size_max: int, seed: int
) -> tuple[np.ndarray, float]:
    """k-means with bounds on cluster sizes (``k_means_constrained.KMeansConstrained``), on point coordinates.

    Parameters
    ----------
    coords
        ``(n, 2)`` planar coordinates.
    k
        Number of clusters.
    size_min, size_max
        Fewest and most units per cluster (it balances unit counts, not metrics).
    seed
        ``random_state``.

    Returns
    -------
    (assignment, seconds)
    """
    from k_means_constrained import KMeansConstrained

    start = time.perf_counter()
    try:
        labels = KMeansConstrained(n_clusters=k, size_min=size_min, size_max=size_max, random_state=seed).fit_predict(
            np.asarray(coords, dtype=float)
        )
    except Exception as exc:  # infeasible size bounds or a solver failure inside the library
        raise PeerError(f"{type(exc).__name__}: {exc}", time.perf_counter() - start) from exc
    return np.asarray(labels, dtype=np.int64), time.perf_counter() - start


def ward_spatial_parts(graph: nx.Graph, coords: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """spopt's ``WardSpatial``: agglomerative clustering of coordinates under the graph's contiguity (no balance).

    Parameters
    ----------
    graph
        Unit adjacency, nodes ``0 .. n-1``.
    coords
        ``(n, 2)`` planar coordinates (the attributes clustered).
    k
        Number of regions.

    Returns
    -------
    (assignment, seconds)
    """
    import geopandas as gpd
    from libpysal.weights import W
    from spopt.region import WardSpatial

    coords = np.asarray(coords, dtype=float)
    _check_nodes(graph, len(coords))
    weights = W({u: sorted(int(v) for v in graph.neighbors(u)) for u in range(len(coords))}, silence_warnings=True)
    frame = gpd.GeoDataFrame(
        {"x": coords[:, 0], "y": coords[:, 1]}, geometry=gpd.points_from_xy(coords[:, 0], coords[:, 1])
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WardSpatial(frame, weights, ["x", "y"], k)
        model.solve()
    return np.asarray(model.labels_, dtype=np.int64), time.perf_counter() - start


def parse_seeds(text: str) -> list[int]:
    """``0-9`` or ``0,3,7`` (or a mix)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = (int(v) for v in part.split("-", 1))
            seeds.extend(range(low, high + 1))
        elif part:
            seeds.append(int(part))
    return seeds


def one_line(error: BaseException, limit: int = 300) -> str:
    """An error's message on one line for a Markdown table cell, cut to ``limit`` characters.

    Lines are joined by ``; ``, a heading's first item follows its colon (``no feasible plan: balance of ...``),
    list dashes go, and a ``|`` (which would end the cell) becomes ``/``.
    """
    text = ""
    for line in (line.strip() for line in str(error).splitlines()):
        if line:
            item = line.removeprefix("- ")
            text += item if not text else (" " if text.endswith(":") else "; ") + item
    text = text.replace("|", "/") or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def yes(flag: bool) -> str:
    """``yes``, or a bold ``no`` that stands out in a Markdown table."""
    return "yes" if flag else "**no**"
