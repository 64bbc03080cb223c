"""The opportunities table: formats, column mapping, and every kind of bad row through the CLI.

Each bad-row case starts from a sound pipeline (six accounts in two towns, two
reps, four deals) and breaks one thing; ``territory validate`` must exit 2 and
name the file, the spreadsheet row (header = row 1), the column and what to do.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from models.dataset import load_dataset
from models.errors import InputError
from models.opportunities import read_opportunities
from models.scenario import load_scenario
from territory.cli import app
from tests.conftest import two_towns, write_scenario

runner = CliRunner()

AS_OF = datetime.date(2026, 6, 30)


def days_before(days: int) -> str:
    """The date ``days`` before :data:`AS_OF`, as YYYY-MM-DD (negative: after it)."""
    return (AS_OF - datetime.timedelta(days=days)).isoformat()


def sound_deals() -> list[dict[str, Any]]:
    """Four deals: three open (worked 30, 60 and 90 days), one closed won after 100 days."""
    return [
        {"id": "O1", "account_id": "a0", "amount": 1000, "opened": days_before(30), "stage": "Proposal",
         "expected_close": days_before(-60), "closed": "", "won": ""},
        {"id": "O2", "account_id": "a1", "amount": 2000, "opened": days_before(60), "stage": "Negotiation",
         "expected_close": "", "closed": "", "won": ""},
        {"id": "O3", "account_id": "b0", "amount": 4000, "opened": days_before(90), "stage": "Prospecting",
         "expected_close": "", "closed": "", "won": "false"},
        {"id": "O4", "account_id": "b1", "amount": 500, "opened": days_before(300), "stage": "Closed Won",
         "expected_close": "", "closed": days_before(200), "won": "true"},
    ]  # fmt: skip


def pipeline_case(
    folder: Path,
    deals: list[dict[str, Any]] | pd.DataFrame,
    *,
    accounts: list[dict[str, Any]] | None = None,
    forecast: dict[str, Any] | None = None,
    opportunities_file: str = "opportunities.csv",
    unusable_accounts: str = "fail",
    **scenario: Any,
) -> Path:
    """Write a scenario folder with an opportunities table; return the scenario path.

    Defaults: the two-towns accounts and reps (:func:`tests.conftest.two_towns`)
    and a sales-cycle forecast as of :data:`AS_OF` with a 120-day cycle.
    """
    town_accounts, reps = two_towns()
    path = write_scenario(
        folder,
        accounts if accounts is not None else town_accounts,
        reps,
        data={
            "accounts": "accounts.csv",
            "reps": "reps.csv",
            "opportunities": opportunities_file,
            "unusable_accounts": unusable_accounts,
        },
        forecast=forecast if forecast is not None else {"as_of": AS_OF.isoformat(), "cycle_days": 120},
        solver={"time_limit_s": 5, "workers": 1},
        **scenario,
    )
    frame = pd.DataFrame(deals)
    target = folder / opportunities_file
    if target.suffix == ".csv":
        frame.to_csv(target, index=False)
    elif target.suffix == ".xlsx":
        frame.to_excel(target, index=False)
    else:
        frame.to_parquet(target, index=False)
    return path


def validate(path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def test_sound_pipeline_validates(tmp_path: Path) -> None:
    code, output = validate(pipeline_case(tmp_path / "ok", sound_deals()))
    assert code == 0, output
    assert "OK" in output


@pytest.mark.parametrize("suffix", [".xlsx", ".parquet"])
def test_spreadsheet_and_parquet_tables_read_like_csv(tmp_path: Path, suffix: str) -> None:
    """Excel and Parquet give real dates and numbers, not text: the reader takes both."""
    deals = pd.DataFrame(sound_deals())
    for column in ("opened", "expected_close", "closed"):
        deals[column] = pd.to_datetime(deals[column].replace("", None))
    csv = load_dataset(load_scenario(pipeline_case(tmp_path / "csv", sound_deals())))
    other = load_dataset(
        load_scenario(pipeline_case(tmp_path / "other", deals, opportunities_file=f"opportunities{suffix}"))
    )
    assert other.accounts["expected_revenue"].tolist() == csv.accounts["expected_revenue"].tolist()
    assert other.forecast is not None and other.forecast.opportunities["is_open"].sum() == 3


def test_column_mapping_like_the_accounts_table(tmp_path: Path) -> None:
    names = {"id": "OpportunityId", "account_id": "AccountId", "amount": "Amount", "opened": "CreatedDate",
             "stage": "StageName", "expected_close": "CloseDate", "closed": "ClosedOn", "won": "IsWon"}  # fmt: skip
    deals = pd.DataFrame(sound_deals()).rename(columns=names)
    path = pipeline_case(tmp_path / "mapped", deals, columns={"opportunities": names})
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    assert list(dataset.forecast.opportunities["opportunity_id"]) == ["O1", "O2", "O3", "O4"]


def test_deals_of_set_aside_accounts_are_left_out(tmp_path: Path) -> None:
    accounts, _ = two_towns()
    accounts[0]["latitude"] = ""  # a0 becomes unusable
    path = pipeline_case(tmp_path / "aside", sound_deals(), accounts=accounts, unusable_accounts="set_aside")
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    assert "O1" not in set(dataset.forecast.opportunities["opportunity_id"])
    assert "a0" not in set(dataset.accounts["account_id"])


def test_a_scenario_extending_another_finds_its_opportunities(tmp_path: Path) -> None:
    """The opportunities path is relative to the file that names it, like the other data paths."""
    parent = pipeline_case(tmp_path / "base", sound_deals())
    child = tmp_path / "variants" / "tight.yaml"
    child.parent.mkdir()
    child.write_text("extends: ../base/scenario.yaml\nname: tighter\nbalance: {accounts: {tolerance_pct: 20}}\n")
    dataset = load_dataset(load_scenario(child))
    assert parent.is_file() and dataset.forecast is not None
    assert dataset.accounts["expected_revenue"].sum() == 4250.0


def _broken(**changes: Any) -> list[dict[str, Any]]:
    """The sound deals with ``changes`` applied: ``{"<row index>": {column: value}}``."""
    deals = sound_deals()
    for index, values in changes.items():
        deals[int(index.lstrip("r"))].update(values)
    return deals


BAD_ROWS = [
    # (case, deals, expected fragments)
    ("unknown account", _broken(r1={"account_id": "zz9"}),
     ["opportunities.csv", "row 3", "column 'account_id'", "account 'zz9' is not in the accounts table", "->"]),
    ("blank account", _broken(r0={"account_id": ""}),
     ["opportunities.csv", "row 2", "column 'account_id'", "account id is blank", "->"]),
    ("negative amount", _broken(r2={"amount": -50}),
     ["opportunities.csv", "row 4", "column 'amount'", "amount -50 is below 0", "->"]),
    ("text amount", _broken(r0={"amount": "1k"}),
     ["opportunities.csv", "row 2", "column 'amount'", "'1k' is not a number", "->"]),
    ("future opened date", _broken(r1={"opened": days_before(-3)}),
     ["opportunities.csv", "row 3", "column 'opened'", "after the forecast date 2026-06-30", "forecast.as_of"]),
    ("unparseable opened date", _broken(r0={"opened": "31/02/2026"}),
     ["opportunities.csv", "row 2", "column 'opened'", "'31/02/2026' is not a date", "YYYY-MM-DD"]),
    ("blank opened date", _broken(r2={"opened": ""}),
     ["opportunities.csv", "row 4", "column 'opened'", "opened date is blank", "->"]),
    ("unparseable closed date", _broken(r3={"closed": "last week"}),
     ["opportunities.csv", "row 5", "column 'closed'", "'last week' is not a date", "->"]),
    ("closed before opened", _broken(r3={"closed": days_before(400)}),
     ["opportunities.csv", "row 5", "column 'closed'", "before the opened date", "->"]),
    ("future closed date", _broken(r3={"closed": days_before(-1)}),
     ["opportunities.csv", "row 5", "column 'closed'", "after the forecast date", "->"]),
    ("expected close before opened", _broken(r0={"expected_close": days_before(31)}),
     ["opportunities.csv", "row 2", "column 'expected_close'", "before the opened date", "->"]),
    ("duplicate id", _broken(r2={"id": "O1"}),
     ["opportunities.csv", "row 4", "column 'id'", "duplicate opportunity id 'O1' (first at row 2)", "->"]),
    ("won flag that is not a flag", _broken(r3={"won": "maybe"}),
     ["opportunities.csv", "row 5", "column 'won'", "won flag 'maybe' is not true or false", "->"]),
    ("won without a closed date", _broken(r2={"won": "true"}),
     ["opportunities.csv", "row 4", "column 'closed'", "marked won but has no closed date", "->"]),
]  # fmt: skip


@pytest.mark.parametrize(("deals", "expect"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_refused_with_file_row_and_column(
    tmp_path: Path, deals: list[dict[str, Any]], expect: list[str]
) -> None:
    code, output = validate(pipeline_case(tmp_path / "bad", deals))
    assert code == 2, output
    flat = " ".join(output.split())
    for fragment in expect:
        assert fragment in flat, f"{fragment!r} missing from:\n{output}"


def test_every_bad_row_is_reported_at_once(tmp_path: Path) -> None:
    deals = _broken(r0={"account_id": "nobody"}, r1={"amount": -1}, r2={"opened": days_before(-10)})
    code, output = validate(pipeline_case(tmp_path / "many", deals))
    assert code == 2
    flat = " ".join(output.split())
    assert all(f"row {row}" in flat for row in (2, 3, 4)), output


def test_unknown_stage_under_stage_weights_names_row_and_column(tmp_path: Path) -> None:
    forecast = {"as_of": AS_OF.isoformat(), "model": "stage_weights",
                "stage_weights": {"prospecting": 0.1, "proposal": 0.5, "negotiation": 0.8}}  # fmt: skip
    deals = _broken(r1={"stage": "Negotiaton"})
    code, output = validate(pipeline_case(tmp_path / "stage", deals, forecast=forecast))
    assert code == 2
    flat = " ".join(output.split())
    assert "row 3" in flat and "column 'stage'" in flat
    assert "stage 'negotiaton' has no weight" in flat and "did you mean 'negotiation'?" in flat


def test_missing_required_column_suggests_the_mapping(tmp_path: Path) -> None:
    deals = pd.DataFrame(sound_deals()).rename(columns={"opened": "CreatedDate"})
    code, output = validate(pipeline_case(tmp_path / "nocol", deals))
    assert code == 2
    flat = " ".join(output.split())
    assert "required column 'opened' is missing" in flat and "columns.opportunities.opened" in flat


def test_scenario_refuses_forecast_metric_without_opportunities(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    path = write_scenario(tmp_path / "nodata", accounts, reps, balance={"expected_revenue": {"tolerance_pct": 20}})
    code, output = validate(path)
    assert code == 2
    assert "data.opportunities" in " ".join(output.split())


def test_reader_default_as_of_is_today(tmp_path: Path) -> None:
    """Without forecast.as_of a deal opened tomorrow is in the future."""
    tomorrow = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
    deals = _broken(r0={"opened": tomorrow, "expected_close": ""})
    path = pipeline_case(tmp_path / "today", deals, forecast={"cycle_days": 120})
    loaded = load_scenario(path)
    with pytest.raises(InputError, match="after the forecast date"):
        load_dataset(loaded)
    frame = read_opportunities(
        loaded.data_path(Path("opportunities.csv")),
        loaded.scenario,
        {"a0", "a1", "a2", "b0", "b1", "b2"},
        as_of=datetime.date.today() + datetime.timedelta(days=2),
    )
    assert len(frame) == 4
