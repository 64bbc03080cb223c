"""Every kind of bad input, through the CLI: exit code 2 and a message naming the place and a next step.

Each case starts from a sound scenario folder (four accounts, two reps, segment
rules, owners, a lock and a parent) and breaks one thing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from territory.cli import app
from tests.conftest import write_scenario

runner = CliRunner()


def sound() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """A small valid case: accounts, reps and scenario keys."""
    accounts = [
        {"id": "A1", "name": "Acme", "latitude": 41.88, "longitude": -87.63, "segment": "smb", "potential": 100,
         "workload": 5, "current_rep": "R1", "locked": "false", "parent_id": ""},
        {"id": "A2", "name": "Bolt", "latitude": 41.90, "longitude": -87.70, "segment": "smb", "potential": 120,
         "workload": 6, "current_rep": "R1", "locked": "true", "parent_id": ""},
        {"id": "A3", "name": "Cog", "latitude": 42.33, "longitude": -83.05, "segment": "enterprise",
         "potential": 900, "workload": 30, "current_rep": "R2", "locked": "false", "parent_id": ""},
        {"id": "A4", "name": "Dent", "latitude": 42.30, "longitude": -83.10, "segment": "smb", "potential": 90,
         "workload": 4, "current_rep": "R2", "locked": "false", "parent_id": "A3"},
    ]  # fmt: skip
    reps = [
        {"id": "R1", "name": "Ann", "latitude": 41.88, "longitude": -87.63, "segment": "smb", "fte": 1.0},
        {"id": "R2", "name": "Ben", "latitude": 42.33, "longitude": -83.05, "segment": "enterprise", "fte": 1.0},
    ]
    scenario = {
        "balance": {"accounts": {"tolerance_pct": 60}},
        "segment_rules": {
            "enterprise": {"reps": ["enterprise"], "mode": "hard"},
            "smb": {"reps": ["smb"], "mode": "soft"},
        },
        "solver": {"time_limit_s": 5, "workers": 1},
    }
    return accounts, reps, scenario


@dataclass
class Case:
    """One broken input and what the message must contain."""

    name: str
    breaks: Callable[[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], Path], Path | None]
    expect: list[str]
    code: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


def _set(rows: list[dict[str, Any]], index: int, **values: Any) -> None:
    rows[index].update(values)


def _write_raw(text: str) -> Callable[..., Path]:
    def make(accounts, reps, scenario, folder: Path) -> Path:
        path = folder / "scenario.yaml"
        path.write_text(text)
        return path

    return make


CASES = [
    Case("missing scenario file", lambda a, r, s, f: f / "nope.yaml", ["nope.yaml", "not found", "->"]),
    Case(
        "missing accounts file",
        lambda a, r, s, f: s["data"].update(accounts="gone.csv"),
        ["gone.csv", "file not found", "->"],
    ),
    Case(
        "unsupported format",
        lambda a, r, s, f: (f / "accounts.txt.bak").write_text("x") and s["data"].update(accounts="accounts.txt.bak"),
        ["accounts.txt.bak", "unsupported file type", "->"],
    ),
    Case(
        "damaged excel file",
        lambda a, r, s, f: (
            (f / "accounts.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
            and s["data"].update(accounts="accounts.xlsx")
        ),
        ["accounts.xlsx", "cannot read", "->"],
    ),
    Case(
        "yaml syntax error",
        _write_raw("name: x\ndata:\n  accounts: a.csv\n   reps: [\n"),
        ["scenario.yaml", "row ", "YAML"],
    ),
    Case(
        "misspelled scenario key",
        lambda a, r, s, f: s["balance"].update(accounts={"tolerence_pct": 10}),
        ["balance.accounts.tolerence_pct", "did you mean 'tolerance_pct'"],
    ),
    Case(
        "misspelled top-level key",
        lambda a, r, s, f: s.update(segment_rule={}),
        ["segment_rule", "did you mean 'segment_rules'"],
    ),
    Case(
        "missing required column",
        lambda a, r, s, f: [row.pop("latitude") for row in a] and None,
        ["accounts.csv", "required column 'latitude' is missing", "->"],
    ),
    Case(
        "mapping to a column that does not exist",
        lambda a, r, s, f: s.update(columns={"accounts": {"potential": "AnnualRevenue"}}),
        ["accounts.csv", "columns.accounts.potential", "AnnualRevenue", "->"],
    ),
    Case("blank latitude", lambda a, r, s, f: _set(a, 1, latitude=""), ["accounts.csv", "row 3", "latitude", "blank"]),
    Case(
        "text longitude",
        lambda a, r, s, f: _set(a, 2, longitude="west"),
        ["accounts.csv", "row 4", "longitude", "not a number", "->"],
    ),
    Case(
        "latitude out of range",
        lambda a, r, s, f: _set(a, 0, latitude=95),
        ["accounts.csv", "row 2", "latitude", "above 90", "->"],
    ),
    Case(
        "negative potential",
        lambda a, r, s, f: _set(a, 3, potential=-5),
        ["accounts.csv", "row 5", "potential", "below 0", "->"],
    ),
    Case(
        "text potential",
        lambda a, r, s, f: _set(a, 0, potential="12k"),
        ["accounts.csv", "row 2", "potential", "'12k' is not a number", "->"],
    ),
    Case(
        "NaN workload",
        lambda a, r, s, f: _set(a, 1, workload="NaN"),
        ["accounts.csv", "row 3", "workload", "->"],
    ),
    Case(
        "duplicate account id",
        lambda a, r, s, f: _set(a, 2, id="A1"),
        ["accounts.csv", "row 4", "duplicate account id 'A1'", "row 2", "->"],
    ),
    Case(
        "duplicate rep id",
        lambda a, r, s, f: _set(r, 1, id="R1"),
        ["reps.csv", "row 3", "duplicate rep id 'R1'", "->"],
    ),
    Case(
        "current owner who is not a rep",
        lambda a, r, s, f: _set(a, 0, current_rep="R9"),
        ["accounts.csv", "row 2", "current_rep", "'R9' is not in the reps table", "->"],
    ),
    Case(
        "locked account without an owner",
        lambda a, r, s, f: _set(a, 1, current_rep=""),
        ["accounts.csv", "row 3", "locked", "no current rep", "->"],
    ),
    Case(
        "segment label without a rule",
        lambda a, r, s, f: _set(a, 0, segment="Mid-Market"),
        ["accounts.csv", "row 2", "segment", "'mid-market' has no segment rule", "->"],
    ),
    Case(
        "zero reps",
        lambda a, r, s, f: r.clear(),
        ["reps.csv", "->"],
    ),
    Case(
        "zero accounts",
        lambda a, r, s, f: a.clear(),
        ["accounts.csv", "->"],
    ),
    Case("FTE of zero", lambda a, r, s, f: _set(r, 0, fte=0), ["reps.csv", "row 2", "fte", "above zero", "->"]),
    Case("negative FTE", lambda a, r, s, f: _set(r, 1, fte=-1), ["reps.csv", "row 3", "fte", "above zero", "->"]),
    Case(
        "tolerance of zero",
        lambda a, r, s, f: s["balance"].update(accounts={"tolerance_pct": 0}),
        ["balance.accounts.tolerance_pct", "greater than 0"],
    ),
    Case(
        "tolerance of 100 %",
        lambda a, r, s, f: s["balance"].update(accounts={"tolerance_pct": 100}),
        ["balance.accounts.tolerance_pct", "less than 100"],
    ),
    Case(
        "rep without a home base while compactness counts",
        lambda a, r, s, f: _set(r, 0, latitude=""),
        ["reps.csv", "row 2", "latitude", "home base", "objective.compactness: 0"],
    ),
    Case(
        "unknown parent",
        lambda a, r, s, f: _set(a, 3, parent_id="A99"),
        ["accounts.csv", "row 5", "parent_id", "'A99'", "->"],
    ),
    Case(
        "rep preference no rule names",
        lambda a, r, s, f: _set(r, 1, segment="enterprize"),
        ["reps.csv", "row 3", "enterprize", "did you mean 'enterprise'"],
    ),
    Case(
        "time limit of zero",
        lambda a, r, s, f: s["solver"].update(time_limit_s=0),
        ["solver.time_limit_s", "greater than 0"],
    ),
]


def _materialise(case: Case, tmp_path: Path) -> Path:
    accounts, reps, scenario = sound()
    folder = tmp_path / "case"
    folder.mkdir()
    scenario["data"] = {"accounts": "accounts.csv", "reps": "reps.csv"}
    override = case.breaks(accounts, reps, scenario, folder)
    columns_a = list(sound()[0][0])
    columns_r = list(sound()[1][0])
    pd.DataFrame(accounts, columns=[c for c in columns_a if not accounts or c in accounts[0]]).to_csv(
        folder / "accounts.csv", index=False
    )
    pd.DataFrame(reps, columns=columns_r).to_csv(folder / "reps.csv", index=False)
    if isinstance(override, Path):
        return override
    body = {"name": "bad input", **scenario}
    (folder / "scenario.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    return folder / "scenario.yaml"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("command", ["validate", "solve"])
def test_bad_input_is_refused_with_place_and_next_step(case: Case, command: str, tmp_path: Path) -> None:
    path = _materialise(case, tmp_path)
    args = [command, str(path)] + (["--out", str(tmp_path / "plan")] if command == "solve" else [])
    result = runner.invoke(app, args)
    assert result.exit_code == case.code, result.output
    text = " ".join(result.output.split())
    for expected in case.expect:
        assert expected in text, f"{expected!r} missing from: {text}"
    assert not (tmp_path / "plan").exists()


def test_the_sound_case_is_sound(tmp_path: Path) -> None:
    accounts, reps, scenario = sound()
    path = write_scenario(tmp_path / "ok", accounts, reps, **scenario)
    result = runner.invoke(app, ["solve", str(path), "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "plan" / "summary.json").read_text())
    assert summary["set_aside"]["accounts"] == 0


def test_several_problems_in_one_file_are_reported_together(tmp_path: Path) -> None:
    accounts, reps, scenario = sound()
    accounts[0]["latitude"] = ""
    accounts[1]["potential"] = "lots"
    accounts[2]["id"] = "A1"
    path = write_scenario(tmp_path / "many", accounts, reps, **scenario)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "row 2" in text and "row 3" in text and "row 4" in text


def test_unusable_accounts_can_be_set_aside_and_are_listed(tmp_path: Path) -> None:
    """Blank coordinates and text potential: set aside (with the family below them), listed, counted."""
    accounts, reps, scenario = sound()
    accounts[0]["latitude"] = ""
    accounts[2]["potential"] = "n/a"  # A3 is A4's parent: A4 goes too
    accounts.append({**accounts[3], "id": "A5", "name": "Edge", "parent_id": "", "segment": "enterprise"})
    scenario["data"] = {"accounts": "accounts.csv", "reps": "reps.csv", "unusable_accounts": "set_aside"}
    scenario["balance"] = {"accounts": {"tolerance_pct": 99}}
    folder = tmp_path / "aside"
    folder.mkdir()
    pd.DataFrame(accounts).to_csv(folder / "accounts.csv", index=False)
    pd.DataFrame(reps).to_csv(folder / "reps.csv", index=False)
    (folder / "scenario.yaml").write_text(yaml.safe_dump({"name": "aside", **scenario}))
    result = runner.invoke(app, ["solve", str(folder / "scenario.yaml"), "--out", str(tmp_path / "plan")])
    assert result.exit_code == 0, result.output
    plan = tmp_path / "plan"
    aside = pd.read_csv(plan / "set_aside.csv")
    assert list(aside["account_id"]) == ["A1", "A3", "A4"]
    assert list(aside["row"]) == [2, 4, 5]
    assert "latitude is blank" in aside["reason"].iloc[0]
    assert "parent account 'A3' is set aside" in aside["reason"].iloc[2]
    assert list(pd.read_csv(plan / "assignments.csv")["account_id"]) == ["A2", "A5"]
    summary = json.loads((plan / "summary.json").read_text())
    assert summary["set_aside"] == {"accounts": 3, "file": "set_aside.csv", "policy": "set_aside"}
    assert summary["accounts"] == 2
