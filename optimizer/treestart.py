"""A contiguous, balanced first plan by recursive spanning-tree splitting.

CP-SAT alone finds no plan within 20 s on North Carolina's 100 counties in 8
contiguous territories (balance and connectivity together are hard to hit by
search, and identical open territories are symmetric). A random spanning tree
of the unit graph splits into two connected parts at any tree edge; cutting
off a subtree whose metrics are close to one territory's share, again and
again, gives connected, nearly balanced territories in milliseconds (the idea
of recursive tree partitioning, as in redistricting tools). The plan is a
hint for CP-SAT, which then improves compactness under the exact rules.
"""

from __future__ import annotations

import logging

import networkx as nx
import numpy as np

from optimizer.problem import Problem

logger = logging.getLogger(__name__)


def _subtree_sums(tree: nx.Graph, root: int, weights: np.ndarray) -> tuple[dict[int, int], dict[int, np.ndarray]]:
    """Parent of every node and the metric sums of every node's subtree (rooted at ``root``)."""
    parent = {root: -1}
    order = [root]
    for node in order:
        for nxt in tree.neighbors(node):
            if nxt not in parent:
                parent[nxt] = node
                order.append(nxt)
    sums = {node: weights[:, node].astype(float).copy() for node in order}
    for node in reversed(order[1:]):
        sums[parent[node]] += sums[node]
    return parent, sums


def _match_parts_to_reps(problem: Problem, unit_rep: np.ndarray, key: np.ndarray, key_load: np.ndarray) -> None:
    """Relabel the parts so each goes to the rep it suits best (home-base cost).

    Parts were cut to the shares of reps in table order; parts cut for reps of
    the same FTE and the same key-account load are interchangeable, so a
    minimum-cost matching within each such group puts territories near their
    reps' home bases without changing any rep's loads.
    """
    from ortools.graph.python import linear_sum_assignment

    big = int(problem.pair_cost.max(initial=0)) * max(problem.num_units, 1) + 1
    cost = np.full((problem.num_reps, problem.num_reps), big, dtype=np.int64)  # part x rep
    free = ~key
    for p, u, r in zip(range(len(problem.pair_unit)), problem.pair_unit, problem.pair_rep, strict=True):
        if free[u]:
            part = unit_rep[u]
            cost[part, r] = (0 if cost[part, r] == big else cost[part, r]) + int(problem.pair_cost[p])
    new_label = np.arange(problem.num_reps)
    signature = [(float(problem.fte[r]), *np.round(key_load[:, r], 6)) for r in range(problem.num_reps)]
    for kind in set(signature):
        group = np.array([r for r in range(problem.num_reps) if signature[r] == kind])
        if len(group) < 2:
            continue
        solver = linear_sum_assignment.SimpleLinearSumAssignment()
        for i, part in enumerate(group):
            for j, rep in enumerate(group):
                solver.add_arc_with_cost(i, j, int(min(cost[part, rep], 2**62)))
        if solver.solve() == solver.OPTIMAL:
            for i, part in enumerate(group):
                new_label[part] = group[solver.right_mate(i)]
    relabel = free & (unit_rep >= 0)
    unit_rep[relabel] = new_label[unit_rep[relabel]]


def tree_start(problem: Problem, *, seed: int = 0, attempts: int = 200, slack: float = 0.8) -> np.ndarray | None:
    """A contiguous plan close to balance, or None when no split was found.

    Only for problems whose metrics are balanced across all reps (fixed
    targets). Key-account units go to their cheapest allowed rep afterwards.

    Parameters
    ----------
    problem
        The problem (its unit adjacency is used).
    seed
        Seed of the random spanning trees.
    attempts
        Spanning trees tried for each cut.
    slack
        Fraction of each tolerance a cut may use (the rest absorbs rounding).
    """
    if any(m.grouped or m.lo is None for m in problem.metrics) or problem.num_reps < 2:
        return None
    rng = np.random.default_rng(seed)
    key = problem.unit_key if problem.unit_key is not None else np.zeros(problem.num_units, dtype=bool)
    graph = nx.Graph()
    graph.add_nodes_from(np.flatnonzero(~key).tolist())
    graph.add_edges_from(e for e in problem.unit_edges.tolist() if not key[e[0]] and not key[e[1]])
    if graph.number_of_nodes() == 0 or not nx.is_connected(graph):
        return None
    values = np.array([m.values for m in problem.metrics], dtype=float)  # metrics x units
    tolerance = np.array([m.tolerance for m in problem.metrics]) * slack
    remaining = set(graph.nodes)
    fte_left = float(problem.fte.sum())
    unit_rep = np.full(problem.num_units, -1, dtype=np.int64)
    # key-account units first, largest first, each to the allowed rep least loaded for its FTE (then the
    # cheaper one): the territories then share out what is left
    totals = np.maximum(values.sum(axis=1), 1e-9)
    fill = np.zeros(problem.num_reps)
    keys = np.flatnonzero(key)
    for u in keys[np.argsort(-(values[:, keys] / totals[:, None]).sum(axis=0), kind="stable")]:
        pairs = np.flatnonzero(problem.pair_unit == u)
        if len(pairs):
            reps = problem.pair_rep[pairs]
            load = (fill[reps] + (values[:, u] / totals).sum()) / problem.fte[reps]
            best = np.lexsort((problem.pair_cost[pairs], load))[0]
            unit_rep[u] = reps[best]
            fill[reps[best]] += (values[:, u] / totals).sum()
    placed = unit_rep >= 0
    key_load = np.zeros((len(problem.metrics), problem.num_reps))
    for m in range(len(problem.metrics)):
        key_load[m] = np.bincount(unit_rep[placed], weights=values[m, placed], minlength=problem.num_reps)
    for rep in range(problem.num_reps - 1):
        left = sorted(remaining)
        pool = values[:, left].sum(axis=1) + key_load[:, rep:].sum(axis=1)
        share = pool * problem.fte[rep] / fte_left - key_load[:, rep]
        if np.any(share <= 0):
            return None
        part = None
        for _ in range(attempts):
            sub = graph.subgraph(left)
            # random edge weights + minimum spanning tree: a random tree in milliseconds (exact uniform
            # sampling with networkx.random_spanning_tree took 24 s for North Carolina's counties)
            for a, b in sub.edges:
                graph.edges[a, b]["w"] = rng.random()
            tree = nx.minimum_spanning_tree(sub, weight="w")
            root = int(rng.choice(left))
            parent, sums = _subtree_sums(tree, root, values)
            fits = [
                node
                for node in parent
                if node != root and np.all(np.abs(sums[node] - share) <= tolerance * np.maximum(share, 1e-9))
            ]
            if fits:
                cut = fits[int(rng.integers(len(fits)))]
                below = {cut}
                stack = [cut]
                while stack:
                    node = stack.pop()
                    for nxt in tree.neighbors(node):
                        if nxt != parent[node] and nxt not in below:
                            below.add(nxt)
                            stack.append(nxt)
                part = below
                break
        if part is None:
            logger.info("tree start: no balanced cut for territory %d after %d trees", rep + 1, attempts)
            return None
        unit_rep[list(part)] = rep
        remaining -= part
        fte_left -= float(problem.fte[rep])
    unit_rep[list(remaining)] = problem.num_reps - 1
    _match_parts_to_reps(problem, unit_rep, key, key_load)
    logger.info("tree start: contiguous plan of %d territories", problem.num_reps)
    return unit_rep
