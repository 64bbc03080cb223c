"""Build the CP-SAT model of a :class:`~optimizer.problem.Problem`.

The same builder serves the normal solve and the infeasibility analysis: in
the latter every rule group (each metric's balance, the locks, each hard
segment class) is guarded by a switch literal passed to CP-SAT as an
assumption, so that ``sufficient_assumptions_for_infeasibility`` names the
rules in conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from ortools.sat.python import cp_model

from optimizer.problem import MetricData, Problem, group_ratio


@dataclass
class CpModelParts:
    """The model and the variables callers read back.

    Attributes
    ----------
    model
        The CP-SAT model.
    pairs
        The problem's pairs that have a variable (all of them unless some
        units were held fixed), in order.
    x
        One boolean per entry of ``pairs``.
    loads
        ``loads[metric][r]``: the load variable of each rep.
    switches
        Rule name -> literal that switches the rule on (analysis mode only).
    """

    model: cp_model.CpModel
    pairs: np.ndarray
    x: list[cp_model.IntVar]
    loads: dict[str, list[cp_model.IntVar]] = field(default_factory=dict)
    switches: dict[str, cp_model.IntVar] = field(default_factory=dict)


def build_cp_model(
    problem: Problem,
    *,
    switchable: bool = False,
    forbidden: Mapping[str, np.ndarray] | None = None,
    objective: bool = True,
    free: np.ndarray | None = None,
    base: np.ndarray | None = None,
    hint: np.ndarray | None = None,
    reps: np.ndarray | None = None,
) -> CpModelParts:
    """Build the model.

    Parameters
    ----------
    problem
        The problem.
    switchable
        Guard each metric's balance rule by a switch literal named
        ``balance:<metric>``.
    forbidden
        Rule name -> boolean mask over the pairs that the rule forbids; each
        rule gets a switch literal (used by the analysis, which offers every
        pair and lets the rules take them away).
    objective
        Whether to add the objective (feasibility checks skip it).
    hint
        Rep row per unit to hint; every auxiliary variable (flows, roots,
        centres) gets the matching hint too, so that a feasible plan is a
        complete hint CP-SAT can take as its first solution.
    reps
        With ``free``: the reps the free units may go to (all by default).
        When every unit of these reps is free, their contiguity and centres
        are modelled inside the neighbourhood.
    free, base
        Optional neighbourhood: only units where ``free`` is true get
        variables; every other unit stays with its rep in ``base`` and enters
        the loads as a constant (large-neighbourhood search).

    Returns
    -------
    CpModelParts
    """
    model = cp_model.CpModel()
    if free is None:
        pairs = np.arange(len(problem.pair_unit))
        fixed_units = np.zeros(problem.num_units, dtype=bool)
    else:
        if base is None:
            raise ValueError("a neighbourhood (free) needs the base assignment")
        pairs = np.flatnonzero(free[problem.pair_unit] & (True if reps is None else reps[problem.pair_rep]))
        fixed_units = ~free
    pair_unit, pair_rep = problem.pair_unit[pairs], problem.pair_rep[pairs]
    x = [
        model.new_bool_var(f"x[{problem.unit_ids[u]},{problem.rep_ids[r]}]")
        for u, r in zip(pair_unit, pair_rep, strict=True)
    ]
    parts = CpModelParts(model=model, pairs=pairs, x=x)
    order = np.argsort(pair_unit, kind="stable")
    starts = np.searchsorted(pair_unit[order], np.arange(problem.num_units + 1))
    for u in np.flatnonzero(~fixed_units):
        model.add_exactly_one([x[p] for p in order[starts[u] : starts[u + 1]]])

    by_rep = [np.flatnonzero(pair_rep == r) for r in range(problem.num_reps)]
    for metric in problem.metrics:
        switch = model.new_bool_var(f"balance:{metric.name}") if switchable else None
        if switch is not None:
            parts.switches[f"balance:{metric.name}"] = switch
        constant = (
            np.bincount(base[fixed_units], weights=metric.values[fixed_units], minlength=problem.num_reps)
            if fixed_units.any() and base is not None
            else np.zeros(problem.num_reps)
        )
        parts.loads[metric.name] = _add_balance(
            model, problem, metric, x, pair_unit, by_rep, constant.astype(np.int64), switch
        )

    for budget in problem.budgets:
        # what leaves the baseline's reps who stay, units held fixed included as a constant
        moved = budget.moved(pair_unit, pair_rep)
        constant = 0
        if fixed_units.any() and base is not None:
            held = np.flatnonzero(fixed_units)
            constant = int(budget.moved(held, base[held]).sum())
        rule = model.add(cp_model.LinearExpr.weighted_sum(x, moved.tolist()) + constant <= budget.limit)
        if switchable:
            switch = model.new_bool_var(f"budget:{budget.name}")
            parts.switches[f"budget:{budget.name}"] = switch
            rule.only_enforce_if(switch)

    for name, mask in (forbidden or {}).items():
        switch = model.new_bool_var(name)
        parts.switches[name] = switch
        for p in np.flatnonzero(mask[pairs]):
            model.add(x[p] == 0).only_enforce_if(switch)

    if hint is not None:
        for k, p in enumerate(pairs):
            model.add_hint(x[k], bool(hint[problem.pair_unit[p]] == problem.pair_rep[p]))
        for metric in problem.metrics:
            loads = np.bincount(hint[hint >= 0], weights=metric.values[hint >= 0], minlength=problem.num_reps)
            for r, load in enumerate(parts.loads[metric.name]):
                model.add_hint(load, round(loads[r]))
    # contiguity and centres: the whole model, or a neighbourhood holding every unit of its reps
    whole = free is None or (
        reps is not None and base is not None and bool(free[np.isin(base, np.flatnonzero(reps))].all())
    )
    xs = {(int(problem.pair_unit[p]), int(problem.pair_rep[p])): x[k] for k, p in enumerate(pairs)}
    if problem.contiguous and whole:
        _add_contiguity(model, problem, xs, hint)
    centre_terms: list[cp_model.IntVar] = []
    if problem.centre_distance is not None and whole:
        centre_terms = _add_centres(model, problem, xs, hint)
    if objective:
        model.minimize(cp_model.LinearExpr.weighted_sum(x, problem.pair_cost[pairs].tolist()) + sum(centre_terms))
    return parts


def _flow_hint(problem: Problem, members: list[int]) -> tuple[int | None, dict[tuple[int, int], int]]:
    """Root and arc flows that make a connected territory feasible: subtree sizes of a BFS tree."""
    import networkx as nx

    inside = np.zeros(problem.num_units, dtype=bool)
    inside[members] = True
    graph = nx.Graph()
    graph.add_nodes_from(members)
    graph.add_edges_from(
        problem.unit_edges[inside[problem.unit_edges[:, 0]] & inside[problem.unit_edges[:, 1]]].tolist()
    )
    if not members or not nx.is_connected(graph):
        return None, {}
    root = members[0]
    tree = nx.bfs_tree(graph, root)
    flows: dict[tuple[int, int], int] = {}
    for node in reversed(list(nx.topological_sort(tree))):
        below = 1 + sum(flows[(node, child)] for child in tree.successors(node))
        for parent in tree.predecessors(node):
            flows[(parent, node)] = below
    return root, flows


def _add_contiguity(
    model: cp_model.CpModel,
    problem: Problem,
    xs: dict[tuple[int, int], cp_model.IntVar],
    hint: np.ndarray | None = None,
) -> None:
    """Every territory connected on each team layer: a single-commodity flow from one root unit per patch.

    Chosen over cuts added in rounds because CP-SAT then solves one model with
    its own search and bound; each round of cuts would restart the search.
    Key-account units take no part (they are assigned individually).
    For each rep and layer, units with a variable send flow only along edges whose both
    ends belong to the rep; every member but the root absorbs one unit of flow,
    so every member is reached from the root through members.
    """
    layer = problem.contiguity_layer
    by_rep: dict[int, list[int]] = {}
    for u, r in xs:
        if layer[u] >= 0:
            by_rep.setdefault(r, []).append(u)
    for r, units in sorted(by_rep.items()):
        for number in np.unique(layer[units]):
            nodes = sorted(u for u in units if layer[u] == number)
            _add_patch_flow(model, problem, xs, r, nodes, hint)


def _add_patch_flow(
    model: cp_model.CpModel,
    problem: Problem,
    xs: dict[tuple[int, int], cp_model.IntVar],
    r: int,
    nodes: list[int],
    hint: np.ndarray | None,
) -> None:
    """Flow constraints keeping rep ``r``'s units among ``nodes`` (one layer) connected."""
    big = len(nodes)
    hint_root, hint_flows = _flow_hint(problem, [u for u in nodes if hint[u] == r]) if hint is not None else (None, {})
    inflow: dict[int, list[cp_model.IntVar]] = {u: [] for u in nodes}
    outflow: dict[int, list[cp_model.IntVar]] = {u: [] for u in nodes}
    inside = np.zeros(problem.num_units, dtype=bool)
    inside[nodes] = True
    edges = problem.unit_edges[inside[problem.unit_edges[:, 0]] & inside[problem.unit_edges[:, 1]]]
    for a, b in edges.tolist():
        for i, j in ((a, b), (b, a)):
            flow = model.new_int_var(0, big - 1, "")
            if hint is not None:
                model.add_hint(flow, hint_flows.get((i, j), 0))
            model.add(flow <= (big - 1) * xs[(i, r)])
            model.add(flow <= (big - 1) * xs[(j, r)])
            outflow[i].append(flow)
            inflow[j].append(flow)
    roots = []
    for u in nodes:
        root = model.new_bool_var("")
        if hint is not None:
            model.add_hint(root, u == hint_root)
        model.add_implication(root, xs[(u, r)])
        roots.append(root)
        model.add(sum(inflow[u]) - sum(outflow[u]) >= xs[(u, r)] - big * root)
    model.add(sum(roots) <= 1)


def _add_centres(
    model: cp_model.CpModel,
    problem: Problem,
    xs: dict[tuple[int, int], cp_model.IntVar],
    hint: np.ndarray | None = None,
) -> list[cp_model.IntVar]:
    """Compactness from each territory's centre: a centre unit per rep, chosen among its members.

    ``z[u, r]`` is unit ``u``'s weighted distance to rep ``r``'s centre when
    ``u`` belongs to ``r`` (an element constraint on the centre's index), else 0.
    """
    assert problem.centre_distance is not None and problem.unit_weight is not None
    scaled = np.round(
        problem.compactness_weight * problem.cost_scale * problem.unit_weight[:, None] * problem.centre_distance
    ).astype(np.int64)
    terms = []
    for r in range(problem.num_reps):
        units = [u for u in range(problem.num_units) if (u, r) in xs]
        if not units:
            continue
        centre = model.new_int_var_from_domain(cp_model.Domain.from_values(units), f"centre[{problem.rep_ids[r]}]")
        hinted = [u for u in units if hint is not None and hint[u] == r]
        best = None
        if hinted:
            sub = problem.centre_distance[np.ix_(hinted, hinted)] * problem.unit_weight[hinted, None]
            best = hinted[int(sub.sum(axis=0).argmin())]
            model.add_hint(centre, best)
        member = [xs.get((u, r), 0) for u in range(problem.num_units)]
        model.add_element(centre, member, 1)
        for u in units:
            if problem.unit_weight[u] <= 0:
                continue
            row = scaled[u]
            z = model.new_int_var(0, int(row[units].max()), "")
            here = model.new_int_var(int(row[units].min()), int(row[units].max()), "")
            if best is not None:
                model.add_hint(here, int(row[best]))
                model.add_hint(z, int(row[best]) if hint is not None and hint[u] == r else 0)
            model.add_element(centre, row.tolist(), here)
            model.add(z >= here).only_enforce_if(xs[(u, r)])
            terms.append(z)
    return terms


def _add_balance(
    model: cp_model.CpModel,
    problem: Problem,
    metric: MetricData,
    x: list[cp_model.IntVar],
    pair_unit: np.ndarray,
    by_rep: list[np.ndarray],
    constant: np.ndarray,
    switch: cp_model.IntVar | None,
) -> list[cp_model.IntVar]:
    """Add one metric's loads and balance rule (guarded by ``switch`` when given)."""
    total = int(metric.values.sum())
    loads = []
    for r in range(problem.num_reps):
        pairs = by_rep[r]
        load = model.new_int_var(int(constant[r]), total, f"load[{metric.name},{problem.rep_ids[r]}]")
        units = pair_unit[pairs]
        model.add(
            load
            == cp_model.LinearExpr.weighted_sum([x[p] for p in pairs], metric.values[units].tolist()) + int(constant[r])
        )
        if metric.lo is not None and metric.hi is not None:
            low = model.add(load >= int(metric.lo[r]))
            high = model.add(load <= int(metric.hi[r]))
            if switch is not None:
                low.only_enforce_if(switch)
                high.only_enforce_if(switch)
        loads.append(load)
    if metric.grouped:
        for g in np.unique(metric.groups):
            members = np.flatnonzero(metric.groups == g)
            group_fte = sum((problem.fte_exact[r] for r in members), Fraction(0))
            group_load = sum(loads[r] for r in members)
            for r in members:
                share = problem.fte_exact[r] / group_fte
                num, den = group_ratio(metric, share, upper=True)
                high = model.add(den * loads[r] <= num * group_load)
                num, den = group_ratio(metric, share, upper=False)
                low = model.add(den * loads[r] >= num * group_load)
                if switch is not None:
                    low.only_enforce_if(switch)
                    high.only_enforce_if(switch)
    return loads
