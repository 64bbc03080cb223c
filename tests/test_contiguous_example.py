"""The shipped contiguous example with every rule of the annual plan and team layers: the plan it writes is valid.

This pins validity, not speed (``benchmarks/README.md`` has the time and gap of a 60 s run): accounts ±10 % and
potential ±5 % within segment teams, workload ±5 %, enterprise accounts only with enterprise reps on a layer of
their own, locked accounts with their reps, and every territory one connected area on each layer.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from territory.pipeline import prepare, solve_prepared, write_plan_folder
from tests.conftest import EXAMPLE

CONTIGUOUS = EXAMPLE.parent / "contiguous.yaml"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """The example solved as shipped, but for a 15 s limit (its first plan comes in about a second)."""
    prepared = prepare(CONTIGUOUS, time_limit_s=15, workers=2)
    scenario = prepared.dataset.scenario
    assert scenario.units.team_layers and scenario.territories.contiguous
    assert {name: rule.within for name, rule in scenario.balance.items()} == {
        "accounts": "segment",
        "potential": "segment",
        "workload": "all",
    }
    plan = solve_prepared(prepared)
    return prepared, write_plan_folder(plan, tmp_path_factory.mktemp("contiguous") / "plan")


def test_every_rule_holds(written) -> None:
    _, out = written
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] in ("feasible", "optimal")
    assert summary["all_within_tolerance"]
    assert 0.0 <= summary["gap"] < 1.0 and summary["bound"] > 0
    assert summary["solver"]["statistics"]["bound"].startswith("LP of the assignment")
    layers = summary["geography"]["team_layers"]
    assert [layer["layer"] for layer in layers] == ["general", "enterprise"]
    assert all(not layer["territories_in_pieces"] for layer in layers)
    enterprise_reps = {"R001", "R002", "R003", "R004"}
    assert set(layers[1]["territories"]) == enterprise_reps

    assignments = pd.read_csv(out / "assignments.csv", dtype=str)
    accounts = pd.read_csv(EXAMPLE.parent / "accounts.csv", dtype=str)
    assert sorted(assignments["account_id"]) == sorted(accounts["AccountId"])
    rep_of = dict(zip(assignments["account_id"], assignments["rep_id"], strict=True))
    for _, row in accounts.iterrows():
        if row["Segment"] == "Enterprise":
            assert rep_of[row["AccountId"]] in enterprise_reps
        if row["IsLocked"] == "True":
            assert rep_of[row["AccountId"]] == row["OwnerId"]


def test_every_territory_is_one_area_on_each_layer(written) -> None:
    prepared, out = written
    units = prepared.dataset.units
    assignments = pd.read_csv(out / "assignments.csv", dtype=str)
    rep_ids = list(prepared.dataset.reps["rep_id"])
    row_of = {rep: i for i, rep in enumerate(rep_ids)}
    unit_rep = np.full(units.num_units, -1)
    order = pd.Index(prepared.dataset.accounts["account_id"])
    for account, rep in zip(assignments["account_id"], assignments["rep_id"], strict=True):
        unit_rep[units.unit_of_account[order.get_loc(account)]] = row_of[rep]
    graph = units.graph()
    for number, name in enumerate(units.layer_names):
        for r, rep in enumerate(rep_ids):
            members = np.flatnonzero((units.unit_layer == number) & (unit_rep == r)).tolist()
            if members:
                assert nx.is_connected(graph.subgraph(members)), f"{rep} is in pieces on the {name} layer"


def test_the_map_switches_each_layer(written) -> None:
    _, out = written
    page = (out / "map.html").read_text()
    assert "Team layers" in page
    assert "enterprise layer" in page and "general layer" in page
