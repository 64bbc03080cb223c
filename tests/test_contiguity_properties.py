"""Property: with contiguity on, every territory of every plan written is connected (random instances)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import InfeasibleError
from optimizer import solver as solver_module
from territory.pipeline import NoPlanError, prepare, solve_prepared
from tests.conftest import write_scenario


@st.composite
def instances(draw):
    """10-30 accounts scattered in a 2-degree box, 2-4 reps, workload balanced within 30-60 %."""
    n = draw(st.integers(10, 30))
    k = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    accounts = [
        {"id": f"a{i}", "latitude": 40 + 2 * rng.random(), "longitude": -90 + 2 * rng.random(), "segment": "smb",
         "potential": float(rng.integers(1, 100)), "workload": float(rng.integers(1, 20))}
        for i in range(n)
    ]  # fmt: skip
    reps = [
        {"id": f"R{j}", "latitude": 40 + 2 * rng.random(), "longitude": -90 + 2 * rng.random(), "segment": "any"}
        for j in range(k)
    ]
    tolerance = draw(st.sampled_from([30, 40, 60]))
    centre = draw(st.booleans())
    return accounts, reps, tolerance, centre


@pytest.mark.parametrize("path", ["one model", "region search"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=instances())
def test_every_territory_is_connected(case, path, tmp_path_factory, monkeypatch) -> None:
    accounts, reps, tolerance, centre = case
    monkeypatch.setattr(solver_module, "SMALL_SHAPED_PAIRS", 10**9 if path == "one model" else 0)
    folder = tmp_path_factory.mktemp("contig")
    scenario = write_scenario(
        folder,
        accounts,
        reps,
        balance={"workload": {"tolerance_pct": tolerance}},
        units={"source": "accounts"},
        territories={"contiguous": True},
        objective={"compactness_measure": "centre" if centre else "home_base"},
        solver={"time_limit_s": 4, "workers": 1},
    )
    prepared = prepare(scenario)
    try:
        plan = solve_prepared(prepared)
    except (InfeasibleError, NoPlanError) as exc:
        assert str(exc)
        return
    graph = prepared.dataset.units.graph()
    assert plan.unit_rep is not None
    for r in range(len(reps)):
        members = np.flatnonzero(plan.unit_rep == r).tolist()
        if members:
            assert nx.is_connected(graph.subgraph(members)), f"territory {r} is split"
    assert plan.summary()["all_within_tolerance"]
