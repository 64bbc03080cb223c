"""Same scenario, seed and workers with no time limit: the same plan, on both solve paths."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.generate import write_instance
from optimizer import solver as solver_module
from territory.pipeline import prepare, solve_prepared


@pytest.fixture(scope="module")
def midwest_150(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 generated accounts, 6 reps: big enough for real LNS neighbourhoods, small enough to be quick."""
    return write_instance(tmp_path_factory.mktemp("det"), 150, 6, seed=11)


def _solve_twice(path: Path, work_limit: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    plans = []
    for _ in range(2):
        prepared = prepare(path, workers=2, seed=3, no_time_limit=True)
        solver = prepared.dataset.scenario.solver.model_copy(update={"work_limit": work_limit, "relative_gap": 0.0})
        scenario = prepared.dataset.scenario.model_copy(update={"solver": solver})
        prepared = replace(prepared, dataset=replace(prepared.dataset, scenario=scenario))
        plans.append(solve_prepared(prepared).rep_ids.astype(str))
    return plans[0], plans[1]


def test_one_cp_sat_model_is_reproducible_without_time_limit(midwest_150: Path, monkeypatch) -> None:
    monkeypatch.setattr(solver_module, "FULL_MODEL_PAIRS", 10**9)
    first, second = _solve_twice(midwest_150)
    assert (first == second).all()


def test_lns_is_reproducible_without_time_limit(midwest_150: Path, monkeypatch) -> None:
    monkeypatch.setattr(solver_module, "FULL_MODEL_PAIRS", 0)
    monkeypatch.setattr("optimizer.lns.MIN_FREE", 15)
    monkeypatch.setattr("optimizer.lns.PATIENCE", 8)
    first, second = _solve_twice(midwest_150)
    assert (first == second).all()


def test_contiguous_search_is_reproducible_without_time_limit(tmp_path: Path, monkeypatch) -> None:
    """The contiguous path (first plan, descent, region search, restarts) gives the same plan twice."""
    monkeypatch.setattr("optimizer.lns.STEP_DTIME", 0.2)
    path = write_instance(tmp_path, 80, 3, seed=12)
    text = path.read_text()
    units = "units: {source: voronoi, resolution: 6, team_layers: true}"
    path.write_text(text + f"\n{units}\nterritories: {{contiguous: true}}\n")
    first, second = _solve_twice(path, work_limit=1.0)
    assert (first == second).all()
