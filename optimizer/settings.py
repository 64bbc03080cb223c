"""What a solve is told (its settings) and what it tells while it runs (progress events).

Shared by every search (:mod:`optimizer.solver`, :mod:`optimizer.diameter`) and the infeasibility
diagnosis (:mod:`optimizer.diagnose`), so none of them imports another for these.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SolveSettings:
    """Solver settings (see the scenario's ``solver`` section)."""

    time_limit_s: float | None = 30.0
    seed: int = 0
    workers: int = 0
    relative_gap: float = 0.0
    work_limit: float = 100.0

    def __post_init__(self) -> None:
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise ValueError("time_limit_s must be positive (or None: no limit, reproducible search)")
        if self.workers < 0:
            raise ValueError("workers must be zero (all cores) or more")

    @property
    def num_workers(self) -> int:
        """Workers actually used (0 means every core)."""
        return self.workers or (os.cpu_count() or 1)


@dataclass(frozen=True)
class ProgressEvent:
    """A new plan or a better bound during the search, or (``phase``) a long step starting before the first plan."""

    seconds: float
    objective: float | None
    bound: float
    gap: float | None
    solutions: int
    phase: str = ""


ProgressCallback = Callable[[ProgressEvent], None]
