"""Linear programs built from numpy arrays in one call, solved by GLOP (OR-Tools' model builder).

Setting an LP's coefficients one call at a time from Python took about as long as GLOP's solve on the
clustered problems of large plans (100,000 accounts, 4,381 clusters, 360,289 pairs: 3.4 s to build, 4.7 s to
solve); here columns, rows and coefficients arrive as arrays and the matrix is handed over as one sparse matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import scipy.sparse
from ortools.linear_solver.python import model_builder as mb
from ortools.linear_solver.python import model_builder_helper as mbh

#: GLOP's dual simplex: about 10x faster than primal on these assignment LPs (0.5 s vs 4.3 s on the example;
#: 4.7 s vs 67 s on 4,381 clusters of 100,000 accounts).
GLOP_PARAMETERS = "use_dual_simplex: true"


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

    def solve(self, parameters: str = GLOP_PARAMETERS, seconds: float | None = None) -> LpAnswer:
        """Minimise with GLOP."""

        def joined(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0)

        rows = joined([r for r, _, _ in self._entries]).astype(np.int64)
        cols = joined([c for _, c, _ in self._entries]).astype(np.int64)
        vals = joined([v for _, _, v in self._entries])
        matrix = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(self.num_rows, self.num_columns))
        model = mb.Model()
        model.helper.fill_model_from_sparse_data(
            joined(self._lower), joined(self._upper), joined(self._cost),
            joined(self._row_lower), joined(self._row_upper), matrix,
        )  # fmt: skip
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
