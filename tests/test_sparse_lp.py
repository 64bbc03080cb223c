"""LPs assembled from arrays (optimizer.sparse_lp): optima, duals and statuses known by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from optimizer.sparse_lp import LpAnswer, LpStatus, SparseLp

SOLVES = {"GLOP": SparseLp.solve, "HiGHS interior point": SparseLp.solve_interior}


@pytest.mark.parametrize("solve", SOLVES.values(), ids=SOLVES.keys())
def test_a_two_column_lp_has_its_hand_optimum_and_duals(solve: Callable[[SparseLp], LpAnswer]) -> None:
    """min x + 2y with x + y = 3 and x - y <= 0: x = y = 1.5, cost 4.5; duals 1.5 and -0.5 (coefficients given
    twice add up), from either exact method."""
    lp = SparseLp()
    x = lp.columns(0.0, 10.0, np.array([1.0, 2.0]))
    rows = lp.rows(np.array([3.0, -np.inf]), np.array([3.0, 0.0]))
    lp.coefficients(np.array([0, 0, 1, 1]), x[[0, 1, 0, 1]], np.array([0.5, 1.0, 1.0, -1.0]))
    lp.coefficients(rows[:1], x[:1], 0.5)
    answer = solve(lp)
    assert answer.status is LpStatus.OPTIMAL
    assert answer.objective == pytest.approx(4.5)
    assert answer.values == pytest.approx([1.5, 1.5])
    assert answer.duals == pytest.approx([1.5, -0.5])


@pytest.mark.parametrize("solve", SOLVES.values(), ids=SOLVES.keys())
def test_group_rows_keep_each_load_within_its_share_of_the_total(solve: Callable[[SparseLp], LpAnswer]) -> None:
    """Two loads whose sum is free, each within 40-60 % of it; the first costs more: 40/60 split of 10."""
    lp = SparseLp()
    loads = lp.columns(0.0, 100.0, np.array([2.0, 1.0]))
    lp.coefficients(lp.rows(10.0, 10.0, count=1).repeat(2), loads, 1.0)
    lp.group_rows(loads, np.array([0.6, 0.6]), np.array([0.4, 0.4]))
    answer = solve(lp)
    assert answer.status is LpStatus.OPTIMAL
    assert answer.values[loads] == pytest.approx([4.0, 6.0])


@pytest.mark.parametrize("solve", SOLVES.values(), ids=SOLVES.keys())
def test_an_infeasible_lp_says_so(solve: Callable[[SparseLp], LpAnswer]) -> None:
    lp = SparseLp()
    x = lp.columns(0.0, 1.0, 1.0, count=1)
    lp.coefficients(lp.rows(2.0, 3.0, count=1), x, 1.0)
    assert solve(lp).status is LpStatus.INFEASIBLE


def test_interior_point_meets_glop_at_a_vertex_with_duals_of_the_same_sign() -> None:
    """The transportation LPs below (ranged sink rows): HiGHS' interior point and crossover reach GLOP's optimum,
    its duals price every column at zero or above, and the dual objective they make (each ranged row at the
    bound its dual's sign picks) equals the optimum: the duals are in GLOP's convention on both sides of a
    range."""
    rng = np.random.default_rng(5)
    for trial in range(3):
        lp, _, _, _ = transportation_lp(rng)
        glop, interior = lp.solve(), lp.solve_interior()
        assert interior.status is LpStatus.OPTIMAL, trial
        assert interior.objective == pytest.approx(glop.objective, rel=1e-9), trial
        _, _, cost, row_lower, row_upper, matrix = lp.arrays()
        assert (cost - matrix.T @ interior.duals).min() >= -1e-6 * cost.max(), trial
        bound = np.where(interior.duals > 0, row_lower, np.where(interior.duals < 0, row_upper, 0.0))
        dual_objective = bound @ interior.duals
        assert dual_objective == pytest.approx(interior.objective, rel=1e-9), trial


def transportation_lp(rng: np.random.Generator) -> tuple[SparseLp, np.ndarray, np.ndarray, np.ndarray]:
    """40 sources of random supply, 6 sinks each within 90-110 % of an equal share, random costs: the LP, its
    costs (sources x sinks), the supplies and the source of every column."""
    sources, sinks = 40, 6
    lp = SparseLp()
    supply = rng.integers(1, 20, size=sources).astype(float)
    cost = rng.uniform(1.0, 100.0, size=(sources, sinks))
    source, sink = np.divmod(np.arange(sources * sinks), sinks)
    x = lp.columns(0.0, np.inf, cost.ravel())
    lp.coefficients(lp.rows(supply, supply)[source], x, 1.0)
    share = supply.sum() / sinks
    lp.coefficients(lp.rows(0.9 * share, 1.1 * share, count=sinks)[sink], x, 1.0)
    return lp, cost, supply, source


def test_column_generation_reaches_the_whole_lps_optimum_and_duals() -> None:
    """Transportation LPs (sources of random supply, sinks each within 90-110 % of an equal share, random costs)
    started from each source's three cheapest sinks: the generation ends at the whole LP's optimum, its duals
    price every column at zero or above, and it took columns in beyond the first ones."""
    rng = np.random.default_rng(7)
    grown = 0
    for trial in range(5):
        lp, cost, _, _ = transportation_lp(rng)
        whole = lp.solve()
        first = (np.argsort(cost, axis=1)[:, :3] + np.arange(len(cost))[:, None] * cost.shape[1]).ravel()
        answer = lp.solve_by_columns(first)
        assert answer.status is LpStatus.OPTIMAL, trial
        assert answer.objective == pytest.approx(whole.objective, rel=1e-9), trial
        _, _, column_cost, _, _, matrix = lp.arrays()
        reduced = column_cost - matrix.T @ answer.duals
        assert reduced.min() >= -1e-6 * column_cost.max(), trial
        grown += int((answer.values[np.setdiff1d(np.arange(len(column_cost)), first)] > 1e-9).any())
    assert grown > 0  # some optimum needed a column the start left out


def test_column_generation_says_infeasible_as_the_whole_lp_does() -> None:
    """Demand the columns cannot meet: the first columns have no solution, nor has the whole LP."""
    lp = SparseLp()
    x = lp.columns(0.0, 1.0, np.array([1.0, 2.0]))
    lp.coefficients(lp.rows(3.0, 3.0, count=1).repeat(2), x, 1.0)
    assert lp.solve_by_columns(np.array([0])).status is LpStatus.INFEASIBLE


def test_pdlp_comes_near_glops_optimum_and_knows_infeasibility() -> None:
    """The transportation LPs above: PDLP's objective within 1 % of GLOP's, its values within the column
    bounds and its rows off by little; an LP whose demand the columns cannot meet is infeasible to PDLP too."""
    rng = np.random.default_rng(11)
    for trial in range(3):
        lp, _, supply, source = transportation_lp(rng)
        exact, approximate = lp.solve(), lp.solve_approximately(tolerance=1e-4)
        assert approximate.status is LpStatus.OPTIMAL, trial
        assert approximate.objective == pytest.approx(exact.objective, rel=1e-2), trial
        assert approximate.values.min() >= 0.0, trial
        shipped = np.bincount(source, weights=approximate.values, minlength=len(supply))
        assert shipped == pytest.approx(supply, rel=1e-2), trial
    lp = SparseLp()
    x = lp.columns(0.0, 1.0, np.array([1.0, 2.0]))
    lp.coefficients(lp.rows(3.0, 3.0, count=1).repeat(2), x, 1.0)
    assert lp.solve_approximately().status is LpStatus.INFEASIBLE


def test_pdlp_ends_when_its_stop_event_is_set() -> None:
    """A set stop event ends PDLP's process: no answer, where the same LP unstopped has one."""
    lp, _, _, _ = transportation_lp(np.random.default_rng(5))
    stop = threading.Event()
    assert lp.solve_approximately(tolerance=1e-4, stop=stop).status is LpStatus.OPTIMAL
    stop.set()
    assert lp.solve_approximately(tolerance=1e-4, stop=stop).status is LpStatus.FAILED
