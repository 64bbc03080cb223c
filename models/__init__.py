"""The domain: accounts, reps, scenarios and plans; reading, validating, writing.

Knows nothing of CP-SAT or HTML.
"""

from models.dataset import Dataset, load_dataset
from models.errors import InputError, InputIssue
from models.plan import Plan, SolveReport
from models.plan_io import read_plan, write_plan
from models.scenario import LoadedScenario, Scenario, load_scenario

__all__ = [
    "Dataset",
    "InputError",
    "InputIssue",
    "LoadedScenario",
    "Plan",
    "Scenario",
    "SolveReport",
    "load_dataset",
    "load_scenario",
    "read_plan",
    "write_plan",
]
