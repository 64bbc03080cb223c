"""CP-SAT core: a scenario's data in, a balanced compact assignment out.

Knows nothing of files or HTML: :func:`build_problem` turns a
:class:`models.dataset.Dataset` into integer arrays, :func:`solve` runs
CP-SAT and returns a :class:`Result`, :func:`score` measures any assignment.
"""

from optimizer.problem import Problem, build_problem
from optimizer.result import InfeasibleError, Result, Status
from optimizer.score import Score, score
from optimizer.solver import ProgressEvent, SolveSettings, solve

__all__ = [
    "InfeasibleError",
    "Problem",
    "ProgressEvent",
    "Result",
    "Score",
    "SolveSettings",
    "Status",
    "build_problem",
    "score",
    "solve",
]
