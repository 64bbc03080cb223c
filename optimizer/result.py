"""What a solve returns: status, assignment, objective, bound, gap, statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np


class Status(StrEnum):
    """Outcome of a solve, in the planner's words."""

    OPTIMAL = "optimal"
    """The plan is proven best."""
    FEASIBLE = "feasible"
    """A plan within every hard rule; stopped by the time limit or gap limit (see ``gap``)."""
    INFEASIBLE = "infeasible"
    """No plan satisfies the hard rules."""
    UNKNOWN = "unknown"
    """No plan found before the time limit, and infeasibility not proven either."""
    MODEL_INVALID = "model_invalid"
    """The model built was invalid: a bug in the engine."""

    @property
    def has_plan(self) -> bool:
        """Whether an assignment came with this status."""
        return self in (Status.OPTIMAL, Status.FEASIBLE)


class InfeasibleError(Exception):
    """The scenario has no plan; ``reasons`` say why and what to relax.

    The CLI maps this exception to exit code 1.
    """

    def __init__(self, headline: str, reasons: list[str] | None = None) -> None:
        self.headline = headline
        self.reasons = list(reasons or [])
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join([self.headline, *(f"  - {r}" for r in self.reasons)])


@dataclass(frozen=True)
class Result:
    """Outcome of :func:`optimizer.solve`.

    Attributes
    ----------
    status
        See :class:`Status`.
    unit_rep
        Rep row of every unit when a plan was found, else ``None``.
    objective, bound
        Objective of the plan and best proven bound, in workload-hour x km.
    gap
        Relative gap ``(objective - bound) / objective`` of the integer model.
    wall_seconds
        Solver wall time.
    interrupted
        Whether the user stopped the search (the plan is the best found so far).
    statistics
        Solver counters and the time of the first plan.
    advice
        Without a plan: what the engine found in the way and what to change, in the planner's words.
    """

    status: Status
    unit_rep: np.ndarray | None
    objective: float
    bound: float
    gap: float
    wall_seconds: float
    interrupted: bool = False
    statistics: dict[str, Any] = field(default_factory=dict)
    advice: tuple[str, ...] = ()

    @property
    def has_plan(self) -> bool:
        """Whether the result holds an assignment."""
        return self.unit_rep is not None
