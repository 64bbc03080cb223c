"""Pins in scenario files (``pins: pins.csv``): held by every solve, bad pins refused with row and column.

The cases start from :func:`tests.conftest.two_towns` (three accounts near each of two reps; the optimum keeps
each town with its own rep) or the sound case of :mod:`tests.test_bad_input` (segment rules, a lock, a family).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from models.errors import InputError
from optimizer import InfeasibleError
from territory.cli import app
from territory.pipeline import prepare, solve_prepared, solve_scenario
from tests.conftest import ScenarioWriter, two_towns, write_scenario
from tests.test_bad_input import sound

runner = CliRunner()


def _pins(folder: Path, rows: list[dict[str, Any]], name: str = "pins.csv") -> str:
    pd.DataFrame(rows).to_csv(folder / name, index=False)
    return name


def _rep_of(plan: Any) -> dict[str, str]:
    table = plan.assignments()
    return dict(zip(table["account_id"], table["rep_id"], strict=True))


def test_a_pin_moves_an_account_against_the_optimum(tmp_path: Path) -> None:
    """Unpinned, a0 stays with RA (its town); pinned to RB, every plan puts it with RB and balances the rest."""
    accounts, reps = two_towns()
    folder = tmp_path / "case"
    folder.mkdir()
    scenario = write_scenario(
        folder,
        accounts,
        reps,
        pins=_pins(folder, [{"account_id": "a0", "rep_id": "RB", "note": "client asked"}]),
        balance={"accounts": {"tolerance_pct": 20}},
    )
    plan = solve_scenario(scenario, time_limit_s=5, workers=1)
    rep_of = _rep_of(plan)
    assert rep_of["a0"] == "RB"
    assert sorted(rep_of.values()).count("RB") == 3  # 3 each (within 20 %): RB gives one of its own to RA
    assert plan.summary()["all_within_tolerance"]


def test_a_unit_pin_holds_the_whole_family(tmp_path: Path) -> None:
    """A pin by unit id (a family's top account) holds every member; a member's own pin holds the family too."""
    accounts, reps = two_towns()
    accounts[1]["parent_id"] = "a0"  # a1 belongs to a0's family
    folder = tmp_path / "case"
    folder.mkdir()
    scenario = write_scenario(folder, accounts, reps, pins=_pins(folder, [{"unit_id": "a0", "rep_id": "RB"}]))
    prepared = prepare(scenario, time_limit_s=5, workers=1)
    pinned = prepared.dataset.accounts.set_index("account_id")["pinned_rep"]
    assert pinned["a0"] == "RB" and pinned["a1"] == "RB" and pd.isna(pinned["a2"])
    rep_of = _rep_of(solve_prepared(prepared))
    assert rep_of["a0"] == rep_of["a1"] == "RB"
    _pins(folder, [{"account_id": "a1", "rep_id": "RB"}])  # the child's pin pins its family
    assert _rep_of(solve_scenario(scenario, time_limit_s=5, workers=1))["a0"] == "RB"


def test_a_pin_wins_over_the_lock_with_a_note(tmp_path: Path) -> None:
    accounts, reps, keys = sound()  # A2 is locked to R1
    folder = tmp_path / "case"
    folder.mkdir()
    pins = _pins(folder, [{"account_id": "A2", "rep_id": "R2"}])
    scenario = write_scenario(folder, accounts, reps, pins=pins, **keys)
    prepared = prepare(scenario)
    assert any("locked account(s) away from their current rep: 'A2' (R1 -> R2)" in n for n in prepared.dataset.notes)
    assert _rep_of(solve_prepared(prepared))["A2"] == "R2"


def test_pins_follow_extends_from_another_folder(tmp_path: Path) -> None:
    """A child scenario in another folder names its own pins file; the parent's data paths are rebased."""
    accounts, reps = two_towns()
    parent = write_scenario(tmp_path / "base", accounts, reps)
    child_dir = tmp_path / "edits"
    child_dir.mkdir()
    _pins(child_dir, [{"account_id": "b2", "rep_id": "RA"}])
    child = child_dir / "pinned.yaml"
    child.write_text(yaml.safe_dump({"extends": "../base/scenario.yaml", "pins": "pins.csv"}))
    assert _rep_of(solve_scenario(child, time_limit_s=5, workers=1))["b2"] == "RA"
    assert "pins" not in yaml.safe_load(parent.read_text())


BAD_PINS = [
    ("unknown account", [{"account_id": "A9", "rep_id": "R1"}], "row 2, column 'account_id': account 'A9' is not in"),
    ("unknown rep", [{"account_id": "A1", "rep_id": "R3"}], "row 2, column 'rep_id': rep 'R3' is not in the reps"),
    ("close rep", [{"account_id": "A1", "rep_id": "r1"}], "did you mean 'R1'?"),
    (
        "two pins for one account",
        [{"account_id": "A1", "rep_id": "R1"}, {"account_id": "A1", "rep_id": "R2"}],
        "row 3, column 'account_id': two pins for account 'A1' (first at row 2)",
    ),
    (
        "family pinned two ways",
        [{"account_id": "A3", "rep_id": "R2"}, {"account_id": "A4", "rep_id": "R1"}],
        "row 3, column 'rep_id': account family 'A3' is pinned to 'R1' here and to 'R2' at row 2",
    ),
    (
        "hard segment rule",
        [{"account_id": "A3", "rep_id": "R1"}],
        "row 2, column 'rep_id': account 'A3' is enterprise, whose hard segment rule allows only enterprise reps; "
        "'R1' prefers smb -> pin it to a rep preferring enterprise, or make segment_rules.enterprise soft",
    ),
    (
        "hard rule through the family",  # A4 is smb, but follows its top account A3 (enterprise)
        [{"account_id": "A4", "rep_id": "R1"}],
        "account 'A3' is enterprise, whose hard segment rule",
    ),
    ("no account nor unit", [{"account_id": None, "rep_id": "R1"}], "row 2, column 'account_id': the pin names no"),
    ("blank rep", [{"account_id": "A1", "rep_id": None}], "row 2, column 'rep_id': rep id is blank"),
    ("unknown unit", [{"unit_id": "A4", "rep_id": "R2"}], "unit 'A4' is not a unit of this plan -> units are account"),
    ("misspelt column", [{"acount_id": "A1", "rep_id": "R1"}], "unknown column 'acount_id' -> did you mean"),
]


@pytest.mark.parametrize(("rows", "expect"), [case[1:] for case in BAD_PINS], ids=[case[0] for case in BAD_PINS])
def test_bad_pins_are_refused_with_row_and_column(rows: list[dict[str, Any]], expect: str, tmp_path: Path) -> None:
    accounts, reps, keys = sound()
    folder = tmp_path / "case"
    folder.mkdir()
    scenario = write_scenario(folder, accounts, reps, pins=_pins(folder, rows), **keys)
    result = runner.invoke(app, ["validate", str(scenario)])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert str(folder / "pins.csv") in text.replace(" ", "") or "pins.csv" in text
    assert expect in text


def test_a_pin_to_a_departing_rep_is_refused(tmp_path: Path) -> None:
    accounts, reps, keys = sound()
    folder = tmp_path / "case"
    folder.mkdir()
    reps.append({"id": "R3", "name": "Cy", "latitude": 41.0, "longitude": -87.0, "segment": "smb", "fte": 1.0})
    scenario = write_scenario(
        folder, accounts, reps, pins=_pins(folder, [{"account_id": "A1", "rep_id": "R3"}]),
        headcount={"remove": ["R3"]}, **keys,
    )  # fmt: skip
    with pytest.raises(InputError, match=r"rep 'R3' leaves \(headcount.remove\)"):
        prepare(scenario)


def test_a_pin_beyond_the_largest_distance_is_refused(tmp_path: Path) -> None:
    accounts, reps = two_towns()  # the towns are 111 km apart
    folder = tmp_path / "case"
    folder.mkdir()
    pins = _pins(folder, [{"account_id": "a0", "rep_id": "RB"}])
    scenario = write_scenario(folder, accounts, reps, pins=pins, territories={"max_distance_km": 50})
    with pytest.raises(InputError, match=r"row 2, column 'rep_id': account 'a0' lies more than 50 km"):
        prepare(scenario)


def test_pins_that_break_the_balance_are_explained(scenario_writer: ScenarioWriter, tmp_path: Path) -> None:
    """Four of six accounts pinned to RA: with accounts within 20 % (2.4 to 3.6 each) no plan exists."""
    accounts, reps = two_towns()
    folder = tmp_path / "case"
    folder.mkdir()
    rows = [{"account_id": a, "rep_id": "RA"} for a in ("a0", "a1", "b0", "b1")]
    scenario = write_scenario(
        folder, accounts, reps, pins=_pins(folder, rows), balance={"accounts": {"tolerance_pct": 20}}
    )
    with pytest.raises(InfeasibleError) as caught:
        solve_scenario(scenario, time_limit_s=5, workers=1)
    assert "accounts locked or pinned to rep 'RA' hold 4, above its upper bound 3" in str(caught.value)
    result = runner.invoke(app, ["solve", str(scenario), "--out", str(tmp_path / "plan")])
    assert result.exit_code == 1 and not (tmp_path / "plan").exists()


def test_pins_in_excel(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    folder = tmp_path / "case"
    folder.mkdir()
    pd.DataFrame([{"account_id": "b0", "rep_id": "RA", "note": "kept"}]).to_excel(folder / "pins.xlsx", index=False)
    scenario = write_scenario(folder, accounts, reps, pins="pins.xlsx")
    assert _rep_of(solve_scenario(scenario, time_limit_s=5, workers=1))["b0"] == "RA"


def test_a_unit_pin_holds_every_account_of_a_geographic_unit(tmp_path: Path) -> None:
    """H3 cells as units: a pin by unit id pins every account in the cell, and a solve keeps them together."""
    accounts, reps = two_towns()
    folder = tmp_path / "case"
    folder.mkdir()
    units = {"source": "hexagons", "resolution": 6}
    scenario = write_scenario(folder, accounts, reps, units=units)
    layer = prepare(scenario).dataset.units
    cell = str(layer.unit_ids[layer.unit_of_account[0]])  # a0's cell (town A)
    members = [a["id"] for a, u in zip(accounts, layer.unit_of_account, strict=True) if str(layer.unit_ids[u]) == cell]
    write_scenario(folder, accounts, reps, units=units, pins=_pins(folder, [{"unit_id": cell, "rep_id": "RB"}]))
    rep_of = _rep_of(solve_scenario(scenario, time_limit_s=5, workers=1))
    assert len(members) >= 1 and all(rep_of[a] == "RB" for a in members)
    _pins(folder, [{"unit_id": "8f2830828052d25", "rep_id": "RB"}])
    with pytest.raises(InputError, match="unit '8f2830828052d25' is not a unit of this plan -> use a unit id"):
        prepare(scenario)
