"""CP-SAT core: a scenario's data in, a balanced compact assignment out.

Knows nothing of files or HTML: :func:`build_problem` turns a
:class:`models.dataset.Dataset` into integer arrays, :func:`solve` runs
CP-SAT and returns a :class:`Result`, :func:`score` measures any assignment.
"""

from optimizer.problem import Problem, build_problem
from optimizer.result import InfeasibleError, Result, Status
from optimizer.score import Score, score
from optimizer.settings import ProgressCallback, ProgressEvent, SolveSettings
from optimizer.solver import solve

__all__ = [
    "InfeasibleError",
    "Problem",
    "ProgressCallback",
    "ProgressEvent",
    "Result",
    "Score",
    "SolveSettings",
    "Status",
    "build_problem",
    "score",
    "solve",
]
