"""PDLP in a process of its own: ``python -m optimizer.pdlp_worker TASK.npz ANSWER.npz``.

PDLP's Python binding holds the GIL for its whole solve, so :meth:`optimizer.sparse_lp.SparseLp.solve_approximately`
runs it here, beside the threads of the solve. The task holds the LP's arrays (the matrix as CSC parts), PDLP's
tolerance, threads and time limit (NaN: none); the answer holds
PDLP's termination reason, iterations, values and duals.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse
from ortools.pdlp import solve_log_pb2, solvers_pb2
from ortools.pdlp.python import pdlp


def solve(task: dict[str, np.ndarray]) -> dict[str, object]:
    """PDLP on the LP of ``task`` (see the module): reason, iterations, values and duals."""
    matrix = scipy.sparse.csc_matrix(
        (task["matrix_data"], task["matrix_indices"], task["matrix_indptr"]), shape=tuple(task["shape"])
    )
    qp = pdlp.QuadraticProgram()
    qp.resize_and_initialize(len(task["cost"]), len(task["row_lower"]))
    qp.objective_vector = task["cost"]
    qp.variable_lower_bounds, qp.variable_upper_bounds = task["lower"], task["upper"]
    qp.constraint_lower_bounds, qp.constraint_upper_bounds = task["row_lower"], task["row_upper"]
    qp.constraint_matrix = matrix
    params = solvers_pb2.PrimalDualHybridGradientParams()
    params.num_threads = int(task["threads"])
    criteria = params.termination_criteria.simple_optimality_criteria
    criteria.eps_optimal_relative, criteria.eps_optimal_absolute = float(task["tolerance"]), 0.0
    if np.isfinite(task["seconds"]):
        params.termination_criteria.time_sec_limit = max(float(task["seconds"]), 0.01)
    result = pdlp.primal_dual_hybrid_gradient(qp, params)
    return {
        "reason": solve_log_pb2.TerminationReason.Name(result.solve_log.termination_reason),
        "iterations": int(result.solve_log.iteration_count),
        "values": np.asarray(result.primal_solution, dtype=np.float64),
        "duals": np.asarray(result.dual_solution, dtype=np.float64),
    }


def main(arguments: list[str]) -> None:
    """Read the task file, solve, write the answer file."""
    task_file, answer_file = arguments
    with np.load(task_file) as task:
        answer = solve(dict(task))
    np.savez(answer_file, **answer)


if __name__ == "__main__":
    main(sys.argv[1:])
