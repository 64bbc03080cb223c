"""The chunked, sparse pair build gives exactly the pairs of the dense units x reps build it replaced.

``dense_reference`` is the former dense computation (units x reps arrays of compactness, segment penalties and
allowed pairs, then ``np.nonzero``), kept here as the oracle; every case compares it with
:func:`optimizer.problem.build_problem`, once with the default chunk size and once with chunks of a few accounts
(so families straddle the chunk boundaries the build must respect).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import optimizer.problem as problem_module
from models.dataset import Dataset, load_dataset
from models.generate import write_instance
from models.geo import distance_matrix_km, haversine_km
from models.plan import Plan, SolveReport
from models.scenario import ANY_SEGMENT, Solver, load_scenario
from optimizer.problem import COST_RESOLUTION, build_problem, candidate_limit, smallest_per_row, unique_keys
from tests.conftest import rich_and_plain


def dense_reference(dataset: Dataset) -> dict[str, Any]:
    """Pairs, their compactness and penalties, unit classes and owners as the dense build computed them."""
    scenario = dataset.scenario
    acc, reps = dataset.accounts, dataset.reps
    n_reps = len(reps)
    family = acc["family_id"].to_numpy(dtype=object)
    if dataset.units is None:
        _, unit_of_account = np.unique(family, return_inverse=True)
        n_units = int(unit_of_account.max()) + 1
    else:
        unit_of_account, n_units = dataset.units.unit_of_account, len(dataset.units.unit_ids)
    rep_segments = list(reps["segment"])
    rep_row = {rep: i for i, rep in enumerate(reps["rep_id"])}
    top = acc["account_id"].to_numpy(dtype=object) == family
    owners = acc["current_rep"].to_numpy(dtype=object)
    rows = np.array([rep_row.get(o, -1) if isinstance(o, str) else -1 for o in owners], dtype=np.int64)
    owned = (rows >= 0) & top
    counts = np.zeros((n_units, n_reps), dtype=np.int64)
    np.add.at(counts, (unit_of_account[owned], rows[owned]), 1)
    current_rep = np.full(n_units, -1, dtype=np.int64)
    has = counts.sum(axis=1) > 0
    current_rep[has] = counts[has].argmax(axis=1)
    fixed_rep = np.full(n_units, -1, dtype=np.int64)
    for i in np.flatnonzero(acc["locked"].to_numpy(bool)):
        fixed_rep[unit_of_account[i]] = rep_row[owners[i]]

    misfit = np.zeros((n_units, n_reps))
    workload = acc["workload"].to_numpy(float)
    hard_labels: list[list[str]] = [[] for _ in range(n_units)]
    fits_of: dict[str, np.ndarray] = {}
    segments = acc["segment"].to_numpy(dtype=object)
    for label, rule in scenario.segment_rules.items():
        members = segments == label
        if not members.any():
            continue
        fits = np.array([s == ANY_SEGMENT or s in rule.reps for s in rep_segments], dtype=bool)
        fits_of[label] = fits
        if rule.mode == "hard":
            for u in np.unique(unit_of_account[members & top]):
                hard_labels[u].append(label)
        else:
            hours = np.bincount(unit_of_account[members], weights=workload[members], minlength=n_units)
            misfit[:, ~fits] += hours[:, None] * rule.penalty_km
    class_index: dict[str, int] = {}
    unit_class = np.array(
        [class_index.setdefault("+".join(sorted(labels)), len(class_index)) for labels in hard_labels], dtype=np.int64
    )
    class_allowed = np.ones((len(class_index), n_reps), dtype=bool)
    for name, c in class_index.items():
        for label in filter(None, name.split("+")):
            class_allowed[c] &= fits_of[label]
    allowed = class_allowed[unit_class].copy()
    locked_units = np.flatnonzero(fixed_rep >= 0)
    lock_fits = allowed[locked_units, fixed_rep[locked_units]]
    allowed[locked_units, :] = False
    allowed[locked_units, fixed_rep[locked_units]] = lock_fits

    dist = distance_matrix_km(
        acc["latitude"].to_numpy(float),
        acc["longitude"].to_numpy(float),
        reps["latitude"].to_numpy(float),
        reps["longitude"].to_numpy(float),
    )
    weight = workload if workload.sum() > 0 else np.ones_like(workload)
    compact = np.zeros((n_units, n_reps))
    plain = np.zeros((n_units, n_reps))
    np.add.at(compact, unit_of_account, dist * weight[:, None])
    np.add.at(plain, unit_of_account, dist)
    compact = np.nan_to_num(compact, nan=0.0)
    limit = scenario.territories.max_distance_km
    if limit is not None:
        farthest = np.zeros((n_units, n_reps))
        np.maximum.at(farthest, unit_of_account, np.nan_to_num(dist, nan=0.0))
        allowed &= farthest <= limit
    if scenario.objective.compactness_measure == "diameter":
        compact = np.zeros_like(compact)
    k = scenario.solver.candidate_reps
    if k is not None and k < n_reps:
        hours = np.bincount(unit_of_account, weights=workload, minlength=n_units)
        per_hour = np.where((hours > 0)[:, None], compact / np.maximum(hours, 1e-9)[:, None], plain)
        keep = np.zeros_like(allowed)
        nearest = np.argsort(np.where(allowed, per_hour, np.inf), axis=1, kind="stable")[:, :k]
        np.put_along_axis(keep, nearest, True, axis=1)
        with_owner = np.flatnonzero(current_rep >= 0)
        keep[with_owner, current_rep[with_owner]] = True
        allowed &= keep
    pair_unit, pair_rep = np.nonzero(allowed)
    return {
        "pair_unit": pair_unit,
        "pair_rep": pair_rep,
        "pair_compactness": compact[pair_unit, pair_rep],
        "pair_penalty": misfit[pair_unit, pair_rep],
        "unit_class": unit_class,
        "class_names": tuple(class_index),
        "class_allowed": class_allowed,
        "current_rep": current_rep,
        "fixed_rep": fixed_rep,
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """generated_600x24: 600 generated accounts (families, locks, hard and soft segment rules), 24 reps."""
    return write_instance(tmp_path_factory.mktemp("generated"), 600, 24, seed=3)


def variant(base: Path, folder: Path, edit: dict[str, Any]) -> Path:
    """A copy of the generated scenario with top-level sections merged from ``edit``."""
    body = yaml.safe_load(base.read_text())
    for section, values in edit.items():
        body[section] = {**(body.get(section) or {}), **values}
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("accounts.csv", "reps.csv"):
        (folder / name).write_bytes((base.parent / name).read_bytes())
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


CASES: dict[str, dict[str, Any]] = {
    "as_generated": {},
    "candidate_reps_3": {"solver": {"candidate_reps": 3}},
    "max_distance_120km": {"territories": {"max_distance_km": 120}, "solver": {"candidate_reps": 5}},
    "move_penalty": {"continuity": {"move_penalty_km": 40}, "solver": {"candidate_reps": 4}},
    "no_workload_ranked_by_distance": {
        "workload": {"by_segment": {"enterprise": 0, "mid": 0, "smb": 0}},
        "solver": {"candidate_reps": 2},
    },
    "diameter": {"objective": {"compactness_measure": "diameter"}, "solver": {"candidate_reps": 3}},
    "hexagon_units_with_empty_cells": {
        "units": {"source": "hexagons", "resolution": 5},
        "territories": {"contiguous": True},  # contiguity adds empty cells joining the metros' cells
        "solver": {"candidate_reps": 3},
    },
}


@pytest.mark.parametrize("chunk_cells", [None, 7], ids=["default_chunks", "chunks_of_7_accounts"])
@pytest.mark.parametrize("case", list(CASES))
def test_sparse_build_matches_dense_reference(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, chunk_cells: int | None
) -> None:
    """Every pair array equals the dense build's, exactly, and the cost scale comes from the kept pairs."""
    dataset = load_dataset(load_scenario(variant(generated, tmp_path / case, CASES[case])))
    if chunk_cells is not None:
        monkeypatch.setattr(problem_module, "CHUNK_CELLS", chunk_cells * len(dataset.reps))
    built = build_problem(dataset)
    expected = dense_reference(dataset)
    assert len(built.pair_unit) > built.num_units  # the case offers more than one rep to some units
    for name in ("pair_unit", "pair_rep", "pair_compactness", "pair_penalty", "unit_class", "current_rep"):
        np.testing.assert_array_equal(getattr(built, name), expected[name], err_msg=name)
    np.testing.assert_array_equal(built.class_allowed, expected["class_allowed"])
    np.testing.assert_array_equal(built.fixed_rep, expected["fixed_rep"])
    assert built.class_names == expected["class_names"]
    weights = dataset.scenario.objective
    real = weights.compactness * expected["pair_compactness"] + weights.preference * expected["pair_penalty"]
    if built.pair_continuity is not None:
        real = real + built.pair_continuity
    if built.centre_distance is None:
        assert built.cost_scale == COST_RESOLUTION / real.max()
        np.testing.assert_array_equal(built.pair_cost, np.round(real * built.cost_scale).astype(np.int64))


def test_reps_without_home_base_rank_last_for_units_without_workload(scenario_writer: Any) -> None:
    """no_home_no_workload: 12 accounts without workload, 6 reps of which 4 have no home base, ``candidate_reps: 5``.

    Ranking by plain distance gives the homeless reps NaN, which a stable sort puts after every rep with a home
    base; with only two of those, every unit keeps both and the first three homeless reps (as the dense build did).
    """
    accounts = [
        {"id": f"a{i}", "name": f"A{i}", "latitude": 40.0 + 0.1 * i, "longitude": -90.0, "potential": 1.0}
        for i in range(12)
    ]
    reps = [
        {"id": f"r{j}", "name": f"R{j}", "latitude": 40.0 + j if j < 2 else None, "longitude": -90.0 if j < 2 else None}
        for j in range(6)
    ]
    path = scenario_writer(accounts, reps, objective={"compactness": 0}, solver={"candidate_reps": 5})
    dataset = load_dataset(load_scenario(path))
    built = build_problem(dataset)
    expected = dense_reference(dataset)
    np.testing.assert_array_equal(built.pair_unit, expected["pair_unit"])
    np.testing.assert_array_equal(built.pair_rep, expected["pair_rep"])
    assert set(built.pair_rep[built.pair_unit == 0]) == {0, 1, 2, 3, 4}


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.sampled_from([0.0, 1.0, 2.0, 2.0, 3.5, np.inf, np.nan]), min_size=6, max_size=6),
        min_size=1,
        max_size=8,
    ),
    k=st.integers(min_value=1, max_value=6),
)
def test_smallest_takes_what_a_stable_sort_takes(rows: list[list[float]], k: int) -> None:
    """The k smallest of each row, ties to the lower column, infinities then NaN last: as ``argsort(stable)[:k]``."""
    key = np.array(rows)
    expected = np.zeros(key.shape, dtype=bool)
    np.put_along_axis(expected, np.argsort(key, axis=1, kind="stable")[:, :k], True, axis=1)
    np.testing.assert_array_equal(smallest_per_row(key, k), expected)


@given(
    keys=st.lists(st.integers(min_value=0, max_value=40), max_size=30),
    spare=st.sampled_from([1, 10, 5_000_000]),
)
def test_unique_keys_counts_as_numpy_unique_sorts(keys: list[int], spare: int) -> None:
    """Distinct keys, every key's index among them and their counts: those of ``numpy.unique``, whether the keys
    are counted in an array of their bound (small bounds) or sorted (a bound far above their number)."""
    values = np.array(keys, dtype=np.int64)
    expected = np.unique(values, return_inverse=True, return_counts=True)
    for got, want in zip(unique_keys(values, 41 + spare), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_default_candidate_limit_only_above_the_pair_threshold(
    generated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Above AUTO_CANDIDATE_PAIRS unit-rep pairs a scenario without candidate_reps offers the nearest reps; it
    says so at INFO and names the key that changes it. Below, or with the key set, nothing changes."""
    scenario = load_scenario(generated).scenario
    threshold = problem_module.AUTO_CANDIDATE_PAIRS
    k = problem_module.AUTO_CANDIDATE_REPS
    assert candidate_limit(scenario, threshold // 500, 500) is None
    with caplog.at_level(logging.INFO, logger="optimizer.problem"):
        assert candidate_limit(scenario, threshold // 500 + 1, 500) == k
    assert "solver.candidate_reps" in caplog.text
    assert candidate_limit(scenario.with_solver(candidate_reps=40), threshold, 500) == 40
    assert candidate_limit(scenario, threshold, k) is None  # no more reps than the limit: all offered


@pytest.mark.parametrize("max_cells", [None, 40], ids=["half_degree_cells", "cells_grown_to_at_most_40"])
def test_default_candidate_limit_prunes_a_built_problem(
    generated: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, max_cells: int | None
) -> None:
    """With the threshold lowered below the generated instance's size, its build keeps the nearest reps, the
    current rep and the reps of the coarse plan: every pair of ``candidate_reps: 3`` and a few more. Too many
    grid cells for the coarse LP make the cells larger."""
    dataset = load_dataset(load_scenario(generated))
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_PAIRS", 1000)
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_REPS", 3)
    if max_cells is not None:
        monkeypatch.setattr(problem_module, "COARSE_MAX_CELLS", max_cells)
    with caplog.at_level(logging.INFO, logger="optimizer.problem"):
        built = build_problem(dataset)
    found = re.search(r"coarse plan: (\d+) grid cells of ([\d.]+) degrees", caplog.text)
    assert found is not None
    cells, side = int(found.group(1)), float(found.group(2))
    if max_cells is None:
        assert side == problem_module.COARSE_CELL_DEG
    else:
        assert cells <= max_cells and side > problem_module.COARSE_CELL_DEG
    nearest = dense_reference(replace(dataset, scenario=dataset.scenario.with_solver(candidate_reps=3)))
    keys = built.pair_unit * built.num_reps + built.pair_rep
    assert np.all(np.diff(keys) > 0)  # sorted by unit then rep
    assert np.isin(nearest["pair_unit"] * built.num_reps + nearest["pair_rep"], keys).all()
    assert len(nearest["pair_unit"]) < len(keys)
    if max_cells is None:  # small cells add few reps (a handful of cells across the region add many)
        assert len(keys) < 2 * len(nearest["pair_unit"])


def test_coarse_plan_reps_joining_after_the_nearest_give_the_same_pairs(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The coarse plan's LP runs in a thread while the nearest reps are ranked, and its reps join afterwards:
    the pairs and their costs equal, exactly, those of the path that offers its reps with the nearest (taken
    when a distance limit is set; one of 40,000 km excludes no rep)."""
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_PAIRS", 1000)
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_REPS", 3)
    threaded = build_problem(load_dataset(load_scenario(generated)))
    limited = variant(generated, tmp_path / "limited", {"territories": {"max_distance_km": 40_000}})
    sequential = build_problem(load_dataset(load_scenario(limited)))
    per_unit = np.bincount(threaded.pair_unit, minlength=threaded.num_units)
    assert per_unit.max() > 3 + 1  # the coarse plan added reps beyond the nearest three and the current one
    for name in ("pair_unit", "pair_rep", "pair_cost", "pair_compactness", "pair_penalty"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(sequential, name), err_msg=name)


def two_metros(reps_in_a: int = 4, accounts_in_a: int = 60, accounts_in_b: int = 10) -> tuple[list, list]:
    """Metro A (lat 40) with 60 accounts and 4 reps at one home base, metro B (lat 42) with 10 accounts and 1 rep.

    Each rep must hold 14 accounts (±10 %): 4 of A's accounts must go to B's rep, which is never among the
    4 nearest reps of an account in A.
    """
    accounts = [
        {"id": f"a{i}", "name": f"A{i}", "latitude": 40.0 + 0.001 * i, "longitude": -90.0, "potential": 1.0}
        for i in range(accounts_in_a)
    ] + [
        {"id": f"b{i}", "name": f"B{i}", "latitude": 42.0 + 0.001 * i, "longitude": -90.0, "potential": 1.0}
        for i in range(accounts_in_b)
    ]
    reps = [
        {"id": f"RA{j}", "name": f"RA{j}", "latitude": 40.0 + 0.0001 * j, "longitude": -90.0} for j in range(reps_in_a)
    ] + [{"id": "RB", "name": "RB", "latitude": 42.0, "longitude": -90.0}]
    return accounts, reps


def test_default_limit_offers_the_reps_a_balanced_plan_needs(
    scenario_writer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """two_metros: the 4 nearest reps leave no balanced plan; the automatic limit adds metro B's rep to metro A's
    accounts (the coarse plan sends part of A there), and the problem solves within tolerance."""
    from optimizer import SolveSettings, score, solve

    accounts, reps = two_metros()
    path = scenario_writer(accounts, reps, balance={"accounts": {"tolerance_pct": 10}})
    dataset = load_dataset(load_scenario(path))
    nearest = build_problem(replace(dataset, scenario=dataset.scenario.with_solver(candidate_reps=4)))
    assert 4 not in set(nearest.pair_rep[nearest.pair_unit < 60])  # B's rep is no A account's candidate
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_PAIRS", 100)
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_REPS", 4)
    built = build_problem(dataset)
    assert set(built.pair_rep[built.pair_unit < 60]) == {0, 1, 2, 3, 4}
    result = solve(built, SolveSettings(time_limit_s=5, workers=1))
    assert result.unit_rep is not None
    assert score(built, result.unit_rep).feasible


def test_unit_owner_is_the_most_common_owner_of_top_accounts_ties_to_lower_rep() -> None:
    """three_units: unit 0 owned 2:1 by rep 2, unit 1 tied between reps 3 and 1 (rep 1 wins), unit 2 unowned."""
    unit_of_account = np.array([0, 0, 0, 1, 1, 2])
    owners = np.array(["r2", "r2", "r0", "r3", "r1", None], dtype=object)
    rep_row = {f"r{i}": i for i in range(4)}
    current = problem_module.unit_owner(unit_of_account, owners, rep_row, 3, np.ones(6, dtype=bool))
    np.testing.assert_array_equal(current, [2, 1, -1])


def test_distance_matrix_equals_broadcast_haversine_bit_for_bit() -> None:
    """The in-place distance matrix the build uses gives the values of broadcasting ``haversine_km``."""
    rng = np.random.default_rng(5)
    lat_a, lon_a = rng.uniform(-60, 60, 301), rng.uniform(-180, 180, 301)
    lat_b, lon_b = rng.uniform(-60, 60, 37), rng.uniform(-180, 180, 37)
    lat_b[3] = lon_b[3] = np.nan  # a rep without a home base
    expected = haversine_km(lat_a[:, None], lon_a[:, None], lat_b[None, :], lon_b[None, :])
    np.testing.assert_array_equal(distance_matrix_km(lat_a, lon_a, lat_b, lon_b), expected)


def test_moves_per_rep_match_per_rep_masks(generated: Path) -> None:
    """generated_600x24 with a random plan: each rep's gains and losses, counted in one pass over the accounts,
    are what masking the moved accounts rep by rep gives."""
    dataset = load_dataset(load_scenario(generated))
    rng = np.random.default_rng(11)
    plan = Plan(
        dataset=dataset,
        rep_index=rng.integers(0, len(dataset.reps), len(dataset.accounts)),
        report=SolveReport("feasible", 0.0, 0.0, 0.0, 0.0, None, 0, 1, 0),
    )
    moves = plan.moves()
    current = dataset.accounts["current_rep"].to_numpy(object, na_value=None)
    potential = dataset.accounts["potential"].to_numpy(float)
    assert moves["accounts_moved"] > 0
    for rep in dataset.reps["rep_id"]:
        gained = plan.moved & (plan.rep_ids == rep)
        lost = plan.moved & (current == rep)
        got = moves["per_rep"][rep]
        assert (got["accounts_gained"], got["accounts_lost"]) == (gained.sum(), lost.sum())
        assert got["potential_gained"] == pytest.approx(potential[gained].sum())
        assert got["potential_lost"] == pytest.approx(potential[lost].sum())


def test_candidate_reps_description_states_the_default_limit() -> None:
    """The scenario reference (field description, hence the JSON Schema) gives the automatic limit's numbers."""
    text = Solver.model_fields["candidate_reps"].description or ""
    assert f"{problem_module.AUTO_CANDIDATE_PAIRS // 10**6} million unit-rep pairs" in text
    assert f"{problem_module.AUTO_CANDIDATE_REPS} nearest eligible reps" in text
    assert f"{problem_module.COARSE_CELL_DEG:g}-degree grid cells" in text


def test_coarse_plan_keeps_metric_mixes_apart_at_the_exact_tolerance(
    scenario_writer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich_and_plain (tests/test_scale_path.py), the candidate limit forced to 1 rep: the coarse plan puts the
    rich and the plain accounts of one place in different cells, and its LP holds the exact 5 % tolerances,
    which one mixed cell could not (R0's locked potential leaves it room only for more plain accounts)."""
    plans: list[Any] = []
    original = problem_module.coarse_plan

    def capture(data: Any) -> Any:
        plans.append(original(data))
        return plans[-1]

    monkeypatch.setattr(problem_module, "coarse_plan", capture)
    monkeypatch.setattr(problem_module, "COARSE_TOLERANCE_FACTORS", (1.0,))  # no looser fallback
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_PAIRS", 1)
    monkeypatch.setattr(problem_module, "AUTO_CANDIDATE_REPS", 1)
    problem = rich_and_plain(scenario_writer)
    (plan,) = plans
    assert plan is not None
    rich = np.isin(problem.unit_ids, [f"r{i}" for i in range(10)])
    plain = np.isin(problem.unit_ids, [f"p{i}" for i in range(10)])
    assert len(set(plan.unit_cell[rich])) == 1 and len(set(plan.unit_cell[plain])) == 1
    assert plan.unit_cell[rich][0] != plan.unit_cell[plain][0]
    assert set(problem.pair_rep.tolist()) == {0, 1}  # the plan offers both reps, beyond each unit's nearest
