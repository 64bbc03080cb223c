"""Linear programs built from numpy arrays in one call, solved by GLOP (OR-Tools' model builder), HiGHS' interior
point method (scipy) or PDLP.

Setting an LP's coefficients one call at a time from Python took about as long as GLOP's solve on the
clustered problems of large plans (100,000 accounts, 4,381 clusters, 360,289 pairs: 3.4 s to build, 4.7 s to
solve); here columns, rows and coefficients arrive as arrays and the matrix is handed over as one sparse matrix.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse
from ortools.linear_solver.python import model_builder as mb
from ortools.linear_solver.python import model_builder_helper as mbh

#: GLOP's dual simplex: about 10x faster than primal on these assignment LPs (0.5 s vs 4.3 s on the example;
#: 4.7 s vs 67 s on 4,381 clusters of 100,000 accounts).
GLOP_PARAMETERS = "use_dual_simplex: true"
#: PDLP (:meth:`SparseLp.solve_approximately`), a first-order method: its relative tolerance and thread count.
#: On the exact clustered LP of 1,000,000 accounts / 500 reps (11,654 clusters, 205,696 pairs), one thread at
#: 1e-3 took 23 s where GLOP took 42 s, and the Lagrangian at its duals was 396.3 M against 176.6 M at GLOP's
#: (a vertex of a degenerate LP: extreme prices that the units of a cluster do not share); 1e-4 ran over 9 min.
PDLP_TOLERANCE, PDLP_THREADS = 1e-3, 1
#: How often a running PDLP process looks at its stop event (seconds).
POLL_SECONDS = 0.2
#: Column generation (:meth:`SparseLp.solve_by_columns`): a column left out joins when its reduced cost is below
#: minus this share of the largest cost; after this many rounds the whole LP is solved instead.
COLUMN_TOLERANCE, MAX_COLUMN_ROUNDS = 1e-7, 20

logger = logging.getLogger(__name__)

#: ``scipy.optimize.linprog``'s statuses: solved, and proven infeasible.
_LINPROG_OPTIMAL, _LINPROG_INFEASIBLE = 0, 2


class LpStatus(Enum):
    """What GLOP returned: solved, proven infeasible, or neither (numerics, limits)."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    FAILED = "failed"


@dataclass(frozen=True)
class LpAnswer:
    """An LP's outcome: status, and on ``OPTIMAL`` the objective, column values and row duals."""

    status: LpStatus
    objective: float = float("nan")
    values: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duals: np.ndarray = field(default_factory=lambda: np.zeros(0))


class SparseLp:
    """A minimisation LP assembled from arrays: columns with bounds and costs, rows with bounds, coefficients."""

    def __init__(self) -> None:
        self._lower: list[np.ndarray] = []
        self._upper: list[np.ndarray] = []
        self._cost: list[np.ndarray] = []
        self._row_lower: list[np.ndarray] = []
        self._row_upper: list[np.ndarray] = []
        self._entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.num_columns = 0
        self.num_rows = 0

    def columns(
        self,
        lower: np.ndarray | float,
        upper: np.ndarray | float,
        cost: np.ndarray | float = 0.0,
        *,
        count: int | None = None,
    ) -> np.ndarray:
        """Add columns; returns their indices. Scalars broadcast to ``count`` columns (or to the arrays given)."""
        n = count if count is not None else max(np.size(lower), np.size(upper), np.size(cost))
        self._lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        self._cost.append(np.broadcast_to(np.asarray(cost, dtype=np.float64), (n,)))
        first, self.num_columns = self.num_columns, self.num_columns + n
        return np.arange(first, first + n)

    def rows(self, lower: np.ndarray | float, upper: np.ndarray | float, *, count: int | None = None) -> np.ndarray:
        """Add rows (``lower <= a . x <= upper``); returns their indices. Scalars broadcast to ``count`` rows."""
        n = count if count is not None else max(np.size(lower), np.size(upper))
        self._row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)))
        self._row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)))
        first, self.num_rows = self.num_rows, self.num_rows + n
        return np.arange(first, first + n)

    def coefficients(self, row: np.ndarray, column: np.ndarray, value: np.ndarray | float) -> None:
        """Set coefficients (entries given twice add up)."""
        row, column = np.asarray(row, dtype=np.int64), np.asarray(column, dtype=np.int64)
        value = np.broadcast_to(np.asarray(value, dtype=np.float64), row.shape)
        self._entries.append((row, column, value))

    def group_rows(self, loads: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> None:
        """``lower_r x total <= load_r <= upper_r x total`` for the load columns of one balance group, the group's
        total a new column (two sparse rows per rep: rows over every member made GLOP take minutes)."""
        n = len(loads)
        total = self.columns(0.0, np.inf, count=1)
        row = self.rows(0.0, 0.0, count=1)
        self.coefficients(np.repeat(row, n), loads, 1.0)
        self.coefficients(row, total, -1.0)
        for sign, ratio in ((1.0, upper), (-1.0, lower)):
            rows = self.rows(-np.inf, 0.0, count=n)
            self.coefficients(rows, loads, sign)
            self.coefficients(rows, np.repeat(total, n), -sign * np.asarray(ratio, dtype=np.float64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, scipy.sparse.csc_matrix]:
        """Column bounds and costs, row bounds, and the matrix (CSC) as assembled so far.

        Returns
        -------
        tuple
            ``(lower, upper, cost, row_lower, row_upper, matrix)``.
        """

        def joined(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0)

        rows = joined([r for r, _, _ in self._entries]).astype(np.int64)
        cols = joined([c for _, c, _ in self._entries]).astype(np.int64)
        vals = joined([v for _, _, v in self._entries])
        matrix = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(self.num_rows, self.num_columns))
        return (
            joined(self._lower), joined(self._upper), joined(self._cost),
            joined(self._row_lower), joined(self._row_upper), matrix,
        )  # fmt: skip

    def solve(self, parameters: str = GLOP_PARAMETERS, seconds: float | None = None) -> LpAnswer:
        """Minimise with GLOP."""
        return _glop(*self.arrays(), parameters=parameters, seconds=seconds)

    def solve_interior(self, seconds: float | None = None) -> LpAnswer:
        """Minimise with HiGHS' interior point method and its crossover (scipy's ``linprog``): a vertex, as
        :meth:`solve` gives, sooner on large degenerate LPs.

        On the clustered LP of 1,000,000 accounts / 500 reps (11,654 clusters, 205,696 pairs, 90 % of each
        tolerance) it took 23-30 s where GLOP's dual simplex took 38-44 s and HiGHS' own dual simplex 48 s, with
        the same objective and the same 2,862 fractional values.

        Parameters
        ----------
        seconds
            Time HiGHS may take (``None``: no limit); past it, no answer.

        Returns
        -------
        LpAnswer
            Row duals in :meth:`solve`'s convention (the objective's change per unit of a row's bound).
        """
        lower, upper, cost, row_lower, row_upper, matrix = self.arrays()
        matrix = matrix.tocsr()
        # linprog takes rows as A_ub x <= b_ub and A_eq x = b_eq: a ranged row is two of the first
        equal = row_lower == row_upper
        above = np.flatnonzero(~equal & np.isfinite(row_upper))
        below = np.flatnonzero(~equal & np.isfinite(row_lower))
        inequal, fixed = len(above) + len(below) > 0, bool(equal.any())
        options = {} if seconds is None else {"time_limit": max(seconds, 0.01)}
        result = scipy.optimize.linprog(
            cost,
            A_ub=scipy.sparse.vstack([matrix[above], -matrix[below]]).tocsr() if inequal else None,
            b_ub=np.concatenate([row_upper[above], -row_lower[below]]) if inequal else None,
            A_eq=matrix[equal] if fixed else None,
            b_eq=row_lower[equal] if fixed else None,
            bounds=np.stack([lower, upper], axis=1),
            method="highs-ipm",
            options=options,
        )
        logger.debug("HiGHS interior point: %s", result.message)
        if result.status == _LINPROG_INFEASIBLE:
            return LpAnswer(LpStatus.INFEASIBLE)
        if result.status != _LINPROG_OPTIMAL:
            return LpAnswer(LpStatus.FAILED)
        duals = np.zeros(self.num_rows)
        if fixed:
            duals[equal] = result.eqlin.marginals
        if inequal:
            duals[above] += result.ineqlin.marginals[: len(above)]
            duals[below] -= result.ineqlin.marginals[len(above) :]
        return LpAnswer(LpStatus.OPTIMAL, objective=float(result.fun), values=np.asarray(result.x), duals=duals)

    def solve_approximately(
        self,
        tolerance: float = PDLP_TOLERANCE,
        threads: int = PDLP_THREADS,
        seconds: float | None = None,
        stop: threading.Event | None = None,
    ) -> LpAnswer:
        """Minimise with PDLP to a relative tolerance: approximate values and duals, much sooner on large LPs.

        ``OPTIMAL`` here means optimal to ``tolerance`` (PDLP's relative optimality criteria): rows may be off by
        about that share, so the values are a start, not a plan, and the objective is no bound; any duals,
        though, give a valid Lagrangian bound (:mod:`optimizer.lagrange`). ``INFEASIBLE`` is PDLP's certificate.

        Parameters
        ----------
        tolerance
            PDLP's relative optimality tolerance.
        threads
            PDLP's threads.
        seconds
            Time PDLP may take (``None``: no limit); past it, no answer.
        stop
            When set, PDLP's process is ended and there is no answer.
        """
        lower, upper, cost, row_lower, row_upper, matrix = self.arrays()
        # in a process of its own (:mod:`optimizer.pdlp_worker`): PDLP's Python binding holds the GIL for the whole
        # solve, which would stop the thread that runs beside it (the first plan's GLOP, which releases it)
        with tempfile.TemporaryDirectory(prefix="pdlp-") as folder:
            task, answer = Path(folder) / "task.npz", Path(folder) / "answer.npz"
            np.savez(
                task, lower=lower, upper=upper, cost=cost, row_lower=row_lower, row_upper=row_upper,
                matrix_data=matrix.data, matrix_indices=matrix.indices, matrix_indptr=matrix.indptr,
                shape=np.array(matrix.shape), tolerance=tolerance, threads=threads,
                seconds=np.nan if seconds is None else seconds,
            )  # fmt: skip
            errors = Path(folder) / "errors.txt"
            with errors.open("w") as error_file:
                # this package's folder first on the path: the worker imports it even from an uninstalled checkout
                package_root = str(Path(__file__).resolve().parent.parent)
                path = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
                process = subprocess.Popen(
                    [sys.executable, "-m", "optimizer.pdlp_worker", str(task), str(answer)],
                    stdout=subprocess.DEVNULL, stderr=error_file, env={**os.environ, "PYTHONPATH": path},
                )  # fmt: skip
                stopped = stop if stop is not None else threading.Event()  # (never set: wait to the end)
                while process.poll() is None:
                    if stopped.wait(POLL_SECONDS):
                        process.kill()
                        process.wait()
                        return LpAnswer(LpStatus.FAILED)
            if process.returncode != 0:
                tail = errors.read_text(errors="replace").strip()[-500:]
                logger.warning("PDLP's process failed (%d): %s", process.returncode, tail)
                return LpAnswer(LpStatus.FAILED)
            with np.load(answer) as found:
                reason, iterations = str(found["reason"]), int(found["iterations"])
                values, duals = found["values"], found["duals"]
        logger.debug("PDLP: %s after %d iterations", reason, iterations)
        if reason == "TERMINATION_REASON_PRIMAL_INFEASIBLE":
            return LpAnswer(LpStatus.INFEASIBLE)
        if reason != "TERMINATION_REASON_OPTIMAL":
            return LpAnswer(LpStatus.FAILED)
        return LpAnswer(LpStatus.OPTIMAL, objective=float(cost @ values), values=values, duals=duals)

    def solve_by_columns(self, first: np.ndarray, parameters: str = GLOP_PARAMETERS) -> LpAnswer:
        """Minimise by column generation: GLOP on some columns, then with those the duals price below zero.

        When no column left out has a negative reduced cost, the answer is optimal for the whole LP (its duals
        price every column). When the first columns admit no solution, or GLOP fails on them, the whole LP is
        solved as :meth:`solve` does, so statuses (infeasible included) are the same.

        Parameters
        ----------
        first
            Columns to start from (indices or a boolean mask); those left out must allow zero.
        parameters
            As :meth:`solve`.

        Returns
        -------
        LpAnswer
            Values of every column (zero where left out) and a dual per row.
        """
        lower, upper, cost, row_lower, row_upper, matrix = self.arrays()
        used = np.zeros(self.num_columns, dtype=bool)
        used[first] = True
        if np.any(~used & ((lower > 0) | (upper < 0))):
            raise ValueError("column generation needs every column it leaves out to allow zero")
        tolerance = COLUMN_TOLERANCE * max(float(np.abs(cost).max(initial=0.0)), 1.0)
        for round_ in range(1, MAX_COLUMN_ROUNDS + 1):
            columns = np.flatnonzero(used)
            answer = _glop(
                lower[columns], upper[columns], cost[columns], row_lower, row_upper, matrix[:, columns],
                parameters=parameters, seconds=None,
            )  # fmt: skip
            if answer.status is not LpStatus.OPTIMAL:
                logger.debug("column generation round %d: %s", round_, answer.status.value)
                break
            reduced = cost - matrix.T @ answer.duals
            priced = np.flatnonzero(~used & (reduced < -tolerance))
            logger.debug(
                "column generation round %d: %d of %d columns, objective %.6g, %d more priced below zero",
                round_, len(columns), self.num_columns, answer.objective, len(priced),
            )  # fmt: skip
            if len(priced) == 0:
                values = np.zeros(self.num_columns)
                values[columns] = answer.values
                return LpAnswer(LpStatus.OPTIMAL, objective=answer.objective, values=values, duals=answer.duals)
            used[priced] = True
        logger.info("column generation gave no answer; solving the whole LP (%d columns)", self.num_columns)
        return _glop(lower, upper, cost, row_lower, row_upper, matrix, parameters=parameters, seconds=None)


def _glop(
    lower: np.ndarray,
    upper: np.ndarray,
    cost: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    matrix: scipy.sparse.spmatrix,
    *,
    parameters: str,
    seconds: float | None,
) -> LpAnswer:
    """Minimise ``cost @ x`` over ``lower <= x <= upper``, ``row_lower <= matrix @ x <= row_upper`` with GLOP."""
    model = mb.Model()
    model.helper.fill_model_from_sparse_data(lower, upper, cost, row_lower, row_upper, scipy.sparse.csr_matrix(matrix))
    solver = mbh.ModelSolverHelper("glop")
    solver.set_solver_specific_parameters(parameters)
    if seconds is not None:
        solver.set_time_limit_in_seconds(max(seconds, 0.01))
    solver.solve(model.helper)
    status = solver.status()
    if status == mbh.SolveStatus.INFEASIBLE:
        return LpAnswer(LpStatus.INFEASIBLE)
    if status != mbh.SolveStatus.OPTIMAL:
        return LpAnswer(LpStatus.FAILED)
    return LpAnswer(
        LpStatus.OPTIMAL,
        objective=float(solver.objective_value()),
        values=np.asarray(solver.variable_values(), dtype=np.float64),
        duals=np.asarray(solver.dual_values(), dtype=np.float64),
    )
