"""The unit adjacency as arrays: neighbours, pieces of territories, cut units.

Contiguity is measured per territory and per team layer (:attr:`Problem.contiguity_layer`): the units of one
rep on one layer must form one connected piece of the adjacency graph; key-account units (layer -1) are exempt.
Everything here works on compressed neighbour lists (CSR) so that the checks stay cheap inside a local search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree


@dataclass(frozen=True)
class Adjacency:
    """Neighbour lists of every unit (both directions of every edge).

    Attributes
    ----------
    start
        ``neighbours[start[u]:start[u + 1]]`` are the neighbours of unit ``u``.
    neighbours
        Concatenated neighbour lists.
    edges
        The undirected edges ``(i, j)``, as given.
    """

    start: np.ndarray
    neighbours: np.ndarray
    edges: np.ndarray

    @classmethod
    def of(cls, num_units: int, edges: np.ndarray) -> Adjacency:
        """Build the neighbour lists of ``num_units`` units from undirected ``edges``."""
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        both = np.concatenate([edges, edges[:, ::-1]])
        order = np.lexsort((both[:, 1], both[:, 0]))
        both = both[order]
        start = np.searchsorted(both[:, 0], np.arange(num_units + 1))
        return cls(start=start, neighbours=both[:, 1].copy(), edges=edges)

    @property
    def num_units(self) -> int:
        """Number of units."""
        return len(self.start) - 1

    def of_unit(self, u: int) -> np.ndarray:
        """Neighbours of unit ``u``."""
        return self.neighbours[self.start[u] : self.start[u + 1]]


def pieces(adjacency: Adjacency, label: np.ndarray) -> np.ndarray:
    """Connected piece of every unit within its label (units of equal label joined by edges; -1: own piece).

    Parameters
    ----------
    adjacency
        The unit adjacency.
    label
        A label per unit (e.g. ``rep * layers + layer``); units with a negative label are pieces of their own.

    Returns
    -------
    numpy.ndarray
        Piece number of every unit.
    """
    n = adjacency.num_units
    i, j = adjacency.edges[:, 0], adjacency.edges[:, 1]
    keep = (label[i] == label[j]) & (label[i] >= 0)
    graph = coo_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def patch_labels(unit_rep: np.ndarray, layer: np.ndarray, num_layers: int) -> np.ndarray:
    """Label of every unit's patch: ``rep * num_layers + layer``, -1 for exempt or unassigned units."""
    return np.where((layer >= 0) & (unit_rep >= 0), unit_rep * max(num_layers, 1) + layer, -1)


def split_patches(adjacency: Adjacency, unit_rep: np.ndarray, layer: np.ndarray) -> list[tuple[int, int]]:
    """``(rep, layer)`` of every patch (a rep's units on one layer) that is in more than one piece."""
    num_layers = int(layer.max(initial=-1)) + 1
    label = patch_labels(unit_rep, layer, num_layers)
    piece = pieces(adjacency, label)
    inside = label >= 0
    pairs = np.unique(np.column_stack([label[inside], piece[inside]]), axis=0)
    labels, count = np.unique(pairs[:, 0], return_counts=True)
    return [(int(x) // num_layers, int(x) % num_layers) for x in labels[count > 1]]


def touching(num_reps: int, edges: np.ndarray, unit_rep: np.ndarray) -> np.ndarray:
    """Border edges shared by every two territories (a symmetric ``num_reps x num_reps`` count).

    Parameters
    ----------
    num_reps
        Number of territories.
    edges
        Unit adjacency pairs.
    unit_rep
        Territory of every unit (-1 where none).

    Returns
    -------
    numpy.ndarray
    """
    touch = np.zeros((num_reps, num_reps))
    if len(edges):
        a, b = unit_rep[edges[:, 0]], unit_rep[edges[:, 1]]
        keep = (a >= 0) & (b >= 0) & (a != b)
        np.add.at(touch, (a[keep], b[keep]), 1.0)
        np.add.at(touch, (b[keep], a[keep]), 1.0)
    return touch


def random_spanning_tree(adjacency: Adjacency, nodes: np.ndarray, rng: np.random.Generator) -> Adjacency:
    """A random spanning tree (forest) of the units ``nodes``: the minimum spanning tree under random weights.

    Random weights do not sample trees uniformly, but they draw a new tree in milliseconds, which is what
    the recursive splitting of :mod:`optimizer.contiguous` needs (exact uniform sampling with networkx took
    seconds on a state's counties).
    """
    n = adjacency.num_units
    inside = np.zeros(n, dtype=bool)
    inside[nodes] = True
    i, j = adjacency.edges[:, 0], adjacency.edges[:, 1]
    keep = inside[i] & inside[j]
    weights = rng.random(int(keep.sum())) + 1e-9  # zero weights would be dropped as missing edges
    tree = minimum_spanning_tree(coo_matrix((weights, (i[keep], j[keep])), shape=(n, n)).tocsr()).tocoo()
    return Adjacency.of(n, np.column_stack([tree.row, tree.col]))


@dataclass(frozen=True)
class PatchTree:
    """A depth-first tree of one connected patch, rooted at its anchor, and what hangs on each cut unit.

    Attributes
    ----------
    preorder
        The patch's units in depth-first preorder (the root first).
    size
        Size of the subtree below every preorder position (the unit itself included).
    position
        Preorder position of every unit.
    hanging
        Cut unit -> preorder positions of its children whose subtrees fall away from the root when the unit
        leaves (``low >= discovery`` of the unit); for the root, every child but the largest.
    """

    preorder: np.ndarray
    size: np.ndarray
    position: dict[int, int]
    hanging: dict[int, list[int]]

    def branch(self, u: int) -> np.ndarray:
        """Unit ``u`` and every unit that falls away from the root with it (``u`` alone when it is no cut unit)."""
        parts = [np.array([u], dtype=np.int64)]
        for child in self.hanging.get(u, ()):
            parts.append(self.preorder[child : child + self.size[child]])
        return np.concatenate(parts)


def patch_tree(adjacency: Adjacency, members: np.ndarray, inside: np.ndarray, root: int) -> PatchTree:
    """Depth-first tree of a connected patch from ``root``, with the cut units and what hangs on each.

    Parameters
    ----------
    adjacency
        The unit adjacency.
    members
        The patch's units (connected, holding ``root``).
    inside
        Boolean mask over all units that is true exactly on ``members`` (reused by the caller).
    root
        The unit that anchors the patch (a locked unit, or the one nearest the home base).

    Returns
    -------
    PatchTree
    """
    start, neighbours = adjacency.start, adjacency.neighbours
    order: dict[int, int] = {root: 0}
    low: dict[int, int] = {root: 0}
    parent: dict[int, int] = {root: -1}
    preorder = [root]
    children: dict[int, list[int]] = {}
    stack: list[tuple[int, int]] = [(root, int(start[root]))]
    while stack:
        node, cursor = stack[-1]
        end = int(start[node + 1])
        while cursor < end:
            nxt = int(neighbours[cursor])
            cursor += 1
            if not inside[nxt] or nxt == parent[node]:
                continue
            if nxt in order:
                low[node] = min(low[node], order[nxt])
                continue
            stack[-1] = (node, cursor)
            order[nxt] = low[nxt] = len(preorder)
            parent[nxt] = node
            preorder.append(nxt)
            children.setdefault(node, []).append(nxt)
            stack.append((nxt, int(start[nxt])))
            break
        else:
            stack.pop()
            up = parent[node]
            if up >= 0:
                low[up] = min(low[up], low[node])
    size = np.ones(len(preorder), dtype=np.int64)
    for node in reversed(preorder[1:]):
        size[order[parent[node]]] += size[order[node]]
    hanging: dict[int, list[int]] = {}
    for node, kids in children.items():
        if node == root:
            if len(kids) > 1:
                largest = max(kids, key=lambda c: size[order[c]])
                hanging[node] = [order[c] for c in kids if c != largest]
            continue
        fall = [order[c] for c in kids if low[c] >= order[node]]
        if fall:
            hanging[node] = fall
    return PatchTree(
        preorder=np.array(preorder, dtype=np.int64),
        size=size,
        position={u: i for i, u in enumerate(preorder)},
        hanging=hanging,
    )
