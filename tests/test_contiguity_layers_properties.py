"""Property: every contiguous plan written keeps four promises, on random planar maps with team layers.

Accounts are scattered at random; their units are the accounts themselves with neighbours from the Delaunay
triangulation (a planar graph), or from a neighbour table; enterprise accounts may only go to enterprise reps,
and with team layers on they form a layer of their own. Some accounts are locked. For every plan written to a
plan folder:

1. contiguity: each territory is one connected piece on each team layer;
2. balance: every metric within its tolerance (the summary and the territories table agree);
3. locks: every locked account stays with its current rep;
4. no unit lost: every account appears exactly once in ``assignments.csv``, with a rep.

A scenario may also have no plan: then the engine must say so (exit-code-1 errors), never write a broken plan.
"""

from __future__ import annotations

import json

import networkx as nx
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from optimizer import InfeasibleError
from territory.pipeline import NoPlanError, prepare, solve_prepared, write_plan_folder
from tests.conftest import write_scenario


@st.composite
def maps(draw):
    """12-40 accounts in a 2-degree box, a quarter enterprise; 2 SMB and 1-2 enterprise reps; a few locks."""
    n = draw(st.integers(12, 40))
    seed = draw(st.integers(0, 100_000))
    rng = np.random.default_rng(seed)
    enterprise = rng.random(n) < 0.25
    enterprise[:2] = True  # the enterprise team always has work
    smb_reps = 2
    enterprise_reps = draw(st.integers(1, 2))
    reps = [
        {"id": f"S{j}", "latitude": 40 + 2 * rng.random(), "longitude": -90 + 2 * rng.random(), "segment": "smb"}
        for j in range(smb_reps)
    ] + [
        {"id": f"E{j}", "latitude": 40 + 2 * rng.random(), "longitude": -90 + 2 * rng.random(), "segment": "enterprise"}
        for j in range(enterprise_reps)
    ]
    locked = rng.random(n) < draw(st.sampled_from([0.0, 0.1]))
    accounts = []
    for i in range(n):
        team = "E" if enterprise[i] else "S"
        owner = f"{team}{int(rng.integers(enterprise_reps if enterprise[i] else smb_reps))}"
        accounts.append(
            {
                "id": f"a{i:02d}",
                "latitude": 40 + 2 * rng.random(),
                "longitude": -90 + 2 * rng.random(),
                "segment": "enterprise" if enterprise[i] else "smb",
                "potential": float(rng.integers(1, 100)),
                "workload": float(rng.integers(1, 20)),
                "current_rep": owner,
                "locked": bool(locked[i]),
            }
        )
    layers = draw(st.booleans())
    table = draw(st.booleans())
    tolerance = draw(st.sampled_from([40, 60, 80]))
    return accounts, reps, layers, table, tolerance


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=maps())
def test_every_plan_written_keeps_its_promises(case, tmp_path_factory) -> None:
    accounts, reps, layers, table, tolerance = case
    folder = tmp_path_factory.mktemp("layers")
    units: dict = {"source": "accounts", "team_layers": layers}
    if table:
        # the Delaunay neighbours, given as a neighbour table (the engine then reads them back)
        from models.scenario import Units
        from models.units import build_units

        frame = pd.DataFrame(accounts).rename(columns={"id": "account_id"})
        tri = build_units(frame, Units(), folder, need_edges=True)
        pd.DataFrame(tri.unit_ids[tri.edges], columns=["unit_a", "unit_b"]).to_csv(folder / "edges.csv", index=False)
        units["adjacency"] = "edges.csv"
    scenario = write_scenario(
        folder,
        accounts,
        reps,
        balance={
            "workload": {"tolerance_pct": tolerance},
            "accounts": {"tolerance_pct": tolerance, "within": "segment"},
        },
        segment_rules={
            "enterprise": {"reps": ["enterprise"], "mode": "hard"},
            "smb": {"reps": ["smb"], "mode": "soft", "penalty_km": 50},
        },
        units=units,
        territories={"contiguous": True},
        solver={"time_limit_s": 4, "workers": 1},
    )
    prepared = prepare(scenario)
    try:
        plan = solve_prepared(prepared)
    except (InfeasibleError, NoPlanError) as exc:
        assert "plan" in str(exc)
        event(f"no plan ({type(exc).__name__})")
        return
    event("plan written")
    out = write_plan_folder(plan, folder / "plan")
    assignments = pd.read_csv(out / "assignments.csv", dtype={"account_id": str, "rep_id": str})
    summary = json.loads((out / "summary.json").read_text())

    # 4. no unit lost: every account once, with a rep
    assert sorted(assignments["account_id"]) == sorted(a["id"] for a in accounts)
    assert assignments["rep_id"].notna().all()
    # 3. locks
    rep_of = dict(zip(assignments["account_id"], assignments["rep_id"], strict=True))
    for account in accounts:
        if account["locked"]:
            assert rep_of[account["id"]] == account["current_rep"]
    # 2. balance, as the summary and the territories table report it
    assert summary["all_within_tolerance"]
    territories = pd.read_csv(out / "territories.csv")
    for metric, rule in (("workload", tolerance), ("accounts", tolerance)):
        assert (territories[f"{metric}_deviation_pct"].abs() <= rule + 1e-6).all()
    # 1. contiguity on each team layer, on the graph the engine built
    layer_units = prepared.dataset.units
    graph = layer_units.graph()
    unit_rep = plan.unit_rep
    for number in range(len(layer_units.layer_names)):
        on_layer = layer_units.unit_layer == number
        for r in range(len(reps)):
            members = np.flatnonzero(on_layer & (unit_rep == r)).tolist()
            if members:
                assert nx.is_connected(graph.subgraph(members)), (layer_units.layer_names[number], reps[r]["id"])
    # the units follow the accounts' layers: enterprise accounts with enterprise reps
    for account in accounts:
        if account["segment"] == "enterprise":
            assert rep_of[account["id"]].startswith("E")
