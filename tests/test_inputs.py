"""Reading accounts and reps: formats, column mapping, derived fields and the errors bad input raises.

Every error test checks *where* the problem is reported (file, spreadsheet row
with the header as row 1, column) as well as *what* is reported, because that is
what lets a planner fix a file in one pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from models.columns import normalise_ids
from models.dataset import Dataset, load_dataset
from models.errors import InputError, InputIssue
from models.scenario import load_scenario
from tests.conftest import ScenarioWriter, two_towns

FORMATS = ("csv", "xlsx", "parquet", "geojson", "gpkg")


def _load(path: Path) -> Dataset:
    return load_dataset(load_scenario(path))


def _error(path: Path) -> InputError:
    """Load a scenario folder that must fail and return the error."""
    with pytest.raises(InputError) as info:
        _load(path)
    assert info.value.issues, "an InputError must carry at least one issue"
    return info.value


def _find(error: InputError, *, column: str | None = None, row: int | None = None, text: str = "") -> InputIssue:
    """Return the one issue at ``row``/``column`` whose message contains ``text``."""
    found = [
        issue
        for issue in error.issues
        if (column is None or issue.column == column)
        and (row is None or issue.row == row)
        and text.lower() in issue.message.lower()
    ]
    assert len(found) == 1, f"expected one issue at row {row}, column {column!r} with {text!r}; got:\n{error}"
    return found[0]


def _rich_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two towns plus an owner, a lock and a parent, so every normalised column carries a value."""
    accounts, reps = two_towns()
    for account in accounts:
        account["current_rep"] = None
        account["locked"] = False
        account["parent_id"] = None
    accounts[1]["current_rep"] = "RA"
    accounts[1]["locked"] = True
    accounts[2]["current_rep"] = "RA"
    accounts[2]["parent_id"] = "a0"
    accounts[4]["current_rep"] = "RB"
    reps[1]["fte"] = 0.5
    return accounts, reps


# --------------------------------------------------------------------------- formats


@pytest.fixture
def csv_dataset(scenario_writer: ScenarioWriter) -> Dataset:
    """The rich two-towns case read from CSV: the reference every other format must reproduce."""
    accounts, reps = _rich_rows()
    return _load(scenario_writer(accounts, reps, folder="reference", balance={"potential": {"tolerance_pct": 20}}))


def test_csv_dataset_is_normalised(csv_dataset: Dataset) -> None:
    accounts, reps = csv_dataset.accounts, csv_dataset.reps
    assert list(accounts.columns) == [
        "account_id",
        "name",
        "latitude",
        "longitude",
        "segment",
        "potential",
        "workload",
        "current_rep",
        "locked",
        "parent_id",
        "family_id",
    ]
    assert list(reps.columns) == ["rep_id", "name", "latitude", "longitude", "segment", "fte"]
    assert accounts["account_id"].tolist() == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert accounts["latitude"].tolist() == pytest.approx([40.0, 40.01, 40.02, 41.0, 41.01, 41.02])
    assert accounts["current_rep"].tolist() == [pd.NA, "RA", "RA", pd.NA, "RB", pd.NA]
    assert accounts["locked"].tolist() == [False, True, False, False, False, False]
    assert accounts["family_id"].tolist() == ["a0", "a1", "a0", "b0", "b1", "b2"]
    assert reps["rep_id"].tolist() == ["RA", "RB"]
    assert reps["fte"].tolist() == [1.0, 0.5]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_accounts(fmt: str, scenario_writer: ScenarioWriter, csv_dataset: Dataset) -> None:
    accounts, reps = _rich_rows()
    path = scenario_writer(
        accounts, reps, folder=fmt, accounts_file=f"accounts.{fmt}", balance={"potential": {"tolerance_pct": 20}}
    )
    dataset = _load(path)
    pd.testing.assert_frame_equal(dataset.accounts, csv_dataset.accounts)
    pd.testing.assert_frame_equal(dataset.reps, csv_dataset.reps)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_reps(fmt: str, scenario_writer: ScenarioWriter, csv_dataset: Dataset) -> None:
    accounts, reps = _rich_rows()
    path = scenario_writer(
        accounts, reps, folder=fmt, reps_file=f"reps.{fmt}", balance={"potential": {"tolerance_pct": 20}}
    )
    dataset = _load(path)
    pd.testing.assert_frame_equal(dataset.reps, csv_dataset.reps)
    pd.testing.assert_frame_equal(dataset.accounts, csv_dataset.accounts)


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_geodata_points_become_latitude_and_longitude(fmt: str, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps, accounts_file=f"accounts.{fmt}", reps_file=f"reps.{fmt}")
    # the files really hold geometry, not coordinate columns
    on_disk = gpd.read_file(path.parent / f"accounts.{fmt}")
    assert "latitude" not in on_disk.columns
    assert set(on_disk.geom_type) == {"Point"}
    dataset = _load(path)
    assert dataset.accounts["latitude"].tolist() == pytest.approx([a["latitude"] for a in accounts], abs=1e-9)
    assert dataset.accounts["longitude"].tolist() == pytest.approx([a["longitude"] for a in accounts], abs=1e-9)
    assert dataset.reps["latitude"].tolist() == pytest.approx([40.0, 41.0], abs=1e-9)


@pytest.mark.parametrize("table", ["accounts", "reps"])
def test_geojson_in_web_mercator_comes_back_in_wgs84_degrees(table: str, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps)
    rows = pd.DataFrame(accounts if table == "accounts" else reps)
    mercator = gpd.GeoDataFrame(
        rows.drop(columns=["latitude", "longitude"]),
        geometry=gpd.points_from_xy(rows["longitude"], rows["latitude"]),
        crs="EPSG:4326",
    ).to_crs("EPSG:3857")
    # metres, far outside the degree range: a reader that ignored the CRS would fail validation
    assert mercator.geometry.x.abs().max() > 1e6
    mercator.to_file(path.parent / f"{table}_3857.geojson")
    path.write_text(
        path.read_text().replace(f"{table}: {table}.csv", f"{table}: {table}_3857.geojson"), encoding="utf-8"
    )
    frame = getattr(_load(path), table)
    assert frame["latitude"].to_numpy() == pytest.approx(rows["latitude"].to_numpy(), abs=1e-6)
    assert frame["longitude"].to_numpy() == pytest.approx(rows["longitude"].to_numpy(), abs=1e-6)


def test_geopackage_layer_is_chosen_by_sheet(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps)
    frame = pd.DataFrame(accounts)
    gdf = gpd.GeoDataFrame(
        frame.drop(columns=["latitude", "longitude"]),
        geometry=gpd.points_from_xy(frame["longitude"], frame["latitude"]),
        crs="EPSG:4326",
    )
    gdf.iloc[:2].to_file(path.parent / "layers.gpkg", layer="decoy")
    gdf.to_file(path.parent / "layers.gpkg", layer="accounts")
    path.write_text(
        path.read_text().replace("accounts: accounts.csv", "accounts: layers.gpkg\n  accounts_sheet: accounts"),
        encoding="utf-8",
    )
    assert _load(path).accounts["account_id"].tolist() == ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_excel_sheet_is_chosen_by_name(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps)
    with pd.ExcelWriter(path.parent / "book.xlsx") as book:
        pd.DataFrame({"note": ["not the reps"]}).to_excel(book, sheet_name="Cover", index=False)
        pd.DataFrame(reps).to_excel(book, sheet_name="Reps", index=False)
    path.write_text(
        path.read_text().replace("reps: reps.csv", "reps: book.xlsx\n  reps_sheet: Reps"),
        encoding="utf-8",
    )
    assert _load(path).reps["rep_id"].tolist() == ["RA", "RB"]


# --------------------------------------------------------------------------- column mapping

CRM_COLUMNS = {
    "accounts": {
        "id": "AccountId",
        "latitude": "BillingLatitude",
        "longitude": "BillingLongitude",
        "potential": "AnnualRevenue",
        "current_rep": "OwnerId",
        "segment": "Segment",
        "locked": "IsLocked",
        "parent_id": "ParentId",
    },
    "reps": {"id": "RepId", "latitude": "HomeLat", "longitude": "HomeLon", "segment": "Focus", "fte": "FTE"},
}


def _crm_export() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A CRM-style export: the engine's fields under the CRM's own column names, in mixed case."""
    accounts = [
        {
            "AccountId": "001A",
            "BillingLatitude": 41.88,
            "BillingLongitude": -87.63,
            "AnnualRevenue": 250000,
            "OwnerId": "R1",
            "Segment": "Enterprise",
            "IsLocked": "TRUE",
            "ParentId": "",
        },
        {
            "AccountId": "001B",
            "BillingLatitude": 41.90,
            "BillingLongitude": -87.65,
            "AnnualRevenue": 12000,
            "OwnerId": "R2",
            "Segment": "SMB",
            "IsLocked": "FALSE",
            "ParentId": "001A",
        },
        {
            "AccountId": "001C",
            "BillingLatitude": 42.33,
            "BillingLongitude": -83.05,
            "AnnualRevenue": 8000,
            "OwnerId": "",
            "Segment": " smb ",
            "IsLocked": "",
            "ParentId": "",
        },
    ]
    reps = [
        {"RepId": "R1", "HomeLat": 41.88, "HomeLon": -87.63, "Focus": "Enterprise", "FTE": 1.0},
        {"RepId": "R2", "HomeLat": 42.33, "HomeLon": -83.05, "Focus": "SMB", "FTE": 0.5},
    ]
    return accounts, reps


def test_crm_export_loads_through_the_column_mapping(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = _crm_export()
    path = scenario_writer(
        accounts,
        reps,
        columns=CRM_COLUMNS,
        workload={"by_segment": {"enterprise": 30, "smb": 6}},
        balance={"potential": {"tolerance_pct": 20}, "workload": {"tolerance_pct": 20}},
        segment_rules={"enterprise": {"reps": ["enterprise"], "mode": "hard"}, "smb": {"reps": ["smb"]}},
    )
    dataset = _load(path)
    got = dataset.accounts
    assert got["account_id"].tolist() == ["001A", "001B", "001C"]
    assert got["latitude"].tolist() == pytest.approx([41.88, 41.90, 42.33])
    assert got["longitude"].tolist() == pytest.approx([-87.63, -87.65, -83.05])
    assert got["potential"].tolist() == [250000.0, 12000.0, 8000.0]
    assert got["segment"].tolist() == ["enterprise", "smb", "smb"]
    assert got["workload"].tolist() == [30.0, 6.0, 6.0]
    assert got["current_rep"].tolist() == ["R1", "R2", pd.NA]
    assert got["locked"].tolist() == [True, False, False]
    assert got["parent_id"].tolist() == [pd.NA, "001A", pd.NA]
    assert got["family_id"].tolist() == ["001A", "001A", "001C"]
    # no name column anywhere: the id stands in
    assert got["name"].tolist() == ["001A", "001B", "001C"]
    reps_out = dataset.reps
    assert reps_out["rep_id"].tolist() == ["R1", "R2"]
    assert reps_out["latitude"].tolist() == [41.88, 42.33]
    assert reps_out["segment"].tolist() == ["enterprise", "smb"]
    assert reps_out["fte"].tolist() == [1.0, 0.5]


def test_crm_export_without_mapping_names_the_missing_standard_columns(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = _crm_export()
    error = _error(scenario_writer(accounts, reps, columns={"accounts": CRM_COLUMNS["accounts"]}))
    # the reps table is read first; its missing standard columns are listed together
    assert {issue.column for issue in error.issues} == {"id", "latitude", "longitude"}
    assert all(Path(str(issue.file)).name == "reps.csv" for issue in error.issues)
    assert all("columns.reps." in (issue.hint or "") for issue in error.issues)


def test_missing_standard_column_hint_names_the_column_in_any_case(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    frame = pd.DataFrame(accounts).rename(columns={"id": "ID", "latitude": "Lat"})
    error = _error(scenario_writer(frame, reps))
    assert len(error.issues) == 2
    assert _find(error, column="id", text="required column").hint == "map it in the scenario: columns.accounts.id: ID"
    lat = _find(error, column="latitude", text="required column")
    assert lat.hint == "map it in the scenario: columns.accounts.latitude: <column name>"
    assert Path(str(lat.file)).name == "accounts.csv"


@pytest.mark.parametrize(
    ("table", "key", "wrong", "closest"),
    [
        ("accounts", "latitude", "BillingLat", "BillingLatitude"),
        ("accounts", "current_rep", "OwnerID", "OwnerId"),
        ("reps", "fte", "Fte", "FTE"),
    ],
)
def test_mapping_to_a_missing_column_names_file_key_and_closest_column(
    table: str, key: str, wrong: str, closest: str, scenario_writer: ScenarioWriter
) -> None:
    accounts, reps = _crm_export()
    columns = {name: dict(mapping) for name, mapping in CRM_COLUMNS.items()}
    columns[table][key] = wrong
    error = _error(scenario_writer(accounts, reps, columns=columns))
    assert len(error.issues) == 1
    issue = error.issues[0]
    assert Path(str(issue.file)).name == f"{table}.csv"
    assert f"columns.{table}.{key}" in issue.message
    assert wrong in issue.message
    assert issue.column == wrong
    assert issue.hint == f"did you mean '{closest}'?"
    assert f"columns.{table}.{key}" in str(error)


def test_custom_metric_column_that_does_not_exist_is_named(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    error = _error(scenario_writer(accounts, reps, balance={"revenue": {"tolerance_pct": 10, "column": "potentail"}}))
    issue = _find(error, column="potentail")
    assert "balance.revenue.column" in issue.message
    assert issue.hint == "did you mean 'potential'?"


def test_custom_metric_is_read_as_a_float_column(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for i, account in enumerate(accounts):
        account["visits"] = str(i * 2)
    dataset = _load(
        scenario_writer(accounts, reps, balance={"visits_per_year": {"tolerance_pct": 10, "column": "visits"}})
    )
    assert dataset.accounts["visits_per_year"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert dataset.metric_values("visits_per_year").tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert dataset.metric_values("accounts").tolist() == [1.0] * 6


# --------------------------------------------------------------------------- workload by segment


def _without_workload() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    accounts, reps = two_towns()
    for account in accounts:
        del account["workload"]
    accounts[0]["segment"] = "Enterprise"
    accounts[3]["segment"] = "mid"
    return accounts, reps


def test_workload_is_derived_from_segment(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = _without_workload()
    path = scenario_writer(
        accounts,
        reps,
        workload={"by_segment": {"Enterprise": 32, "mid": 16, "smb": 6.5}},
        balance={"workload": {"tolerance_pct": 10}},
    )
    dataset = _load(path)
    assert dataset.accounts["segment"].tolist() == ["enterprise", "smb", "smb", "mid", "smb", "smb"]
    assert dataset.accounts["workload"].tolist() == [32.0, 6.5, 6.5, 16.0, 6.5, 6.5]
    assert dataset.metric_values("workload").sum() == pytest.approx(32 + 16 + 4 * 6.5)


def test_segment_missing_from_by_segment_names_the_row(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = _without_workload()
    accounts[5]["segment"] = "Strategic"
    path = scenario_writer(accounts, reps, workload={"by_segment": {"enterprise": 32, "smb": 6}})
    error = _error(path)
    assert len([i for i in error.issues if i.row is not None]) == 2
    assert "unusable_accounts: set_aside" in (_find(error, text="unusable values").hint or "")
    mid = _find(error, row=5, column="segment", text="'mid'")
    assert "workload.by_segment" in mid.message
    assert "enterprise, smb" in (mid.hint or "")
    strategic = _find(error, row=7, column="segment", text="'strategic'")
    assert Path(str(strategic.file)).name == "accounts.csv"


def test_workload_balance_without_column_or_rule_is_an_error(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = _without_workload()
    error = _error(scenario_writer(accounts, reps, balance={"workload": {"tolerance_pct": 10}}))
    issue = _find(error, column="workload", text="missing")
    assert "columns.accounts.workload" in (issue.hint or "")


# --------------------------------------------------------------------------- FTE


def test_fte_defaults_to_one_without_a_column(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for rep in reps:
        del rep["fte"]
    assert _load(scenario_writer(accounts, reps)).reps["fte"].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_blank_fte_means_full_time(fmt: str, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    reps[0]["fte"] = None
    reps[1]["fte"] = 0.8
    dataset = _load(scenario_writer(accounts, reps, reps_file=f"reps.{fmt}"))
    assert dataset.reps["fte"].tolist() == [1.0, 0.8]


def test_zero_or_negative_fte_is_an_error_with_its_row(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    reps[0]["fte"] = 0
    reps[1]["fte"] = -0.5
    reps.append({"id": "RC", "name": "Rep C", "latitude": 40.5, "longitude": -90.0, "segment": "any", "fte": "half"})
    error = _error(scenario_writer(accounts, reps))
    assert len(error.issues) == 3
    assert all(Path(str(issue.file)).name == "reps.csv" for issue in error.issues)
    zero = _find(error, row=2, column="fte", text="above zero")
    assert "0" in zero.message
    _find(error, row=3, column="fte", text="-0.5")
    _find(error, row=4, column="fte", text="not a number")


# --------------------------------------------------------------------------- bad values, reported together


def test_bad_account_values_are_reported_together(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["current_rep"] = ""
        account["locked"] = ""
    accounts[0]["latitude"] = ""  # row 2: blank latitude
    accounts[1]["latitude"] = "north"  # row 3: text latitude
    accounts[2]["latitude"] = 95  # row 4: out of range
    accounts[3]["potential"] = -5  # row 5: negative potential
    accounts[4]["potential"] = "12k"  # row 6: text potential
    accounts[5]["id"] = "a1"  # row 7: duplicate of row 3
    accounts[3]["current_rep"] = "RZ"  # row 5: no such rep
    accounts[4]["locked"] = "yes"  # row 6: locked, but no current rep
    accounts[0]["segment"] = "mid"  # row 2: no segment rule for 'mid'
    path = scenario_writer(
        accounts,
        reps,
        balance={"potential": {"tolerance_pct": 10}},
        segment_rules={"smb": {"reps": ["any"]}},
    )
    error = _error(path)
    assert all(Path(str(issue.file)) == path.parent / "accounts.csv" for issue in error.issues)
    rows = [issue for issue in error.issues if issue.row is not None]
    assert all(issue.column is not None for issue in rows)
    assert [i.message for i in error.issues if i.row is None] == ["5 account(s) have unusable values (listed above)"]
    _find(error, row=2, column="latitude", text="blank")
    _find(error, row=3, column="latitude", text="'north' is not a number")
    _find(error, row=4, column="latitude", text="above 90")
    _find(error, row=5, column="potential", text="below 0")
    _find(error, row=6, column="potential", text="'12k' is not a number")
    duplicate = _find(error, row=7, column="id", text="duplicate")
    assert "'a1'" in duplicate.message
    assert "first at row 3" in duplicate.message
    assert "'RZ'" in _find(error, row=5, column="current_rep", text="not in the reps table").message
    _find(error, row=6, column="locked", text="no current rep")
    assert "'mid'" in _find(error, row=2, column="segment", text="no segment rule").message
    assert len(rows) == 9
    # the message a planner sees names every place
    text = str(error)
    assert "accounts.csv, row 4, column 'latitude'" in text
    assert "accounts.csv, row 7, column 'id'" in text


def test_bad_rep_values_are_reported_together(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    reps.append({"id": "RA", "name": "Again", "latitude": 40.0, "longitude": 200, "segment": "enterprize", "fte": 1})
    reps.append({"id": "", "name": "Nobody", "latitude": "", "longitude": -90, "segment": "smb", "fte": 1})
    path = scenario_writer(accounts, reps, segment_rules={"smb": {"reps": ["smb", "enterprise"]}})
    error = _error(path)
    assert all(Path(str(issue.file)).name == "reps.csv" for issue in error.issues)
    assert "first at row 2" in _find(error, row=4, column="id", text="duplicate").message
    _find(error, row=4, column="longitude", text="above 180")
    preference = _find(error, row=4, column="segment", text="'enterprize' is not named by any segment rule")
    assert (preference.hint or "").startswith("did you mean 'enterprise'?")
    _find(error, row=5, column="id", text="blank")
    _find(error, row=5, column="latitude", text="blank")
    # 'any' is always a valid preference: rows 2 and 3 are fine
    assert {issue.row for issue in error.issues} == {4, 5}
    assert len(error.issues) == 5


def test_rep_preference_named_by_no_rule(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    reps[1]["segment"] = "Mid-Market"
    error = _error(scenario_writer(accounts, reps, segment_rules={"smb": {"reps": ["smb"]}}))
    issue = _find(error, row=3, column="segment", text="'mid-market'")
    assert "any, smb" in (issue.hint or "")
    assert len(error.issues) == 1


def test_locked_flag_that_is_not_a_boolean(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["current_rep"] = "RA"
        account["locked"] = "no"
    accounts[2]["locked"] = "maybe"
    error = _error(scenario_writer(accounts, reps))
    _find(error, row=4, column="locked", text="'maybe'")
    assert len(error.issues) == 1


def test_unknown_parent_id_names_the_row(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["parent_id"] = ""
    accounts[1]["parent_id"] = "a0"
    accounts[4]["parent_id"] = "zz9"
    error = _error(scenario_writer(accounts, reps))
    issue = _find(error, row=6, column="parent_id", text="'zz9' is not in the accounts table")
    assert Path(str(issue.file)).name == "accounts.csv"
    assert len(error.issues) == 1


def test_parent_cycle_names_every_member(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["parent_id"] = ""
    accounts[0]["parent_id"] = "a2"  # a0 -> a2 -> a1 -> a0
    accounts[1]["parent_id"] = "a0"
    accounts[2]["parent_id"] = "a1"
    accounts[3]["parent_id"] = "b0"  # its own parent: a top parent, not a cycle
    error = _error(scenario_writer(accounts, reps))
    assert {issue.row for issue in error.issues} == {2, 3, 4}
    assert all(issue.column == "parent_id" and "parent cycle" in issue.message for issue in error.issues)


def test_family_locked_to_two_reps_is_an_error(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account.update(current_rep="", locked=False, parent_id="")
    accounts[0].update(current_rep="RA", locked=True)  # top parent
    accounts[1].update(current_rep="RB", locked=True, parent_id="a2")  # grandchild
    accounts[2].update(current_rep="RA", parent_id="a0")  # child, unlocked
    accounts[3].update(current_rep="RB", locked=True)  # another family, one rep: fine
    accounts[4].update(current_rep="RB", locked=True, parent_id="b0")
    error = _error(scenario_writer(accounts, reps))
    issue = _find(error, column="locked", text="'a0'")
    assert issue.row == 2
    assert "RA, RB" in issue.message
    assert len(error.issues) == 1


@pytest.mark.parametrize("table", ["accounts", "reps"])
def test_empty_table_is_an_error(table: str, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    frames = {"accounts": pd.DataFrame(accounts), "reps": pd.DataFrame(reps)}
    frames[table] = frames[table].iloc[0:0]
    error = _error(scenario_writer(frames["accounts"], frames["reps"]))
    assert len(error.issues) == 1
    issue = error.issues[0]
    assert Path(str(issue.file)).name == f"{table}.csv"
    assert f"the {table} table has no rows" in issue.message


def test_missing_file_is_named(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps, data={"accounts": "crm/accounts.csv", "reps": "reps.csv"})
    error = _error(path)
    assert len(error.issues) == 1
    assert error.issues[0].file == path.parent / "crm" / "accounts.csv"
    assert "not found" in error.issues[0].message


def test_unsupported_suffix_lists_supported_ones(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps, data={"accounts": "accounts.csv", "reps": "reps.docx"})
    (path.parent / "reps.docx").write_bytes(b"not a table")
    error = _error(path)
    issue = error.issues[0]
    assert issue.file == path.parent / "reps.docx"
    assert "unsupported file type '.docx'" in issue.message
    assert ".xlsx" in (issue.hint or "")
    assert ".gpkg" in (issue.hint or "")


@pytest.mark.parametrize("content", [b"PK\x03\x04 truncated zip", b"id,latitude\n1,2\n"])
def test_damaged_excel_file_is_an_input_error(content: bytes, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    path = scenario_writer(accounts, reps, data={"accounts": "accounts.xlsx", "reps": "reps.csv"})
    (path.parent / "accounts.xlsx").write_bytes(content)
    error = _error(path)
    assert len(error.issues) == 1
    issue = error.issues[0]
    assert issue.file == path.parent / "accounts.xlsx"
    assert "cannot read the file as XLSX" in issue.message
    assert "damaged" in (issue.hint or "")


# --------------------------------------------------------------------------- parent families


def test_family_id_is_the_top_ancestor_of_a_three_level_chain(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["parent_id"] = ""
    # listed child-first, so a reader that relied on order would get it wrong
    accounts[0]["parent_id"] = "a1"  # grandchild -> child
    accounts[1]["parent_id"] = "a2"  # child -> top
    accounts[4]["parent_id"] = "b0"
    dataset = _load(scenario_writer(accounts, reps))
    assert dataset.accounts["family_id"].tolist() == ["a2", "a2", "a2", "b0", "b0", "b2"]
    assert dataset.accounts["parent_id"].tolist() == ["a1", "a2", pd.NA, pd.NA, "b0", pd.NA]


def test_family_id_follows_a_long_chain(scenario_writer: ScenarioWriter) -> None:
    """A deep ownership chain is not a cycle (regression: chains deeper than 65 levels were called cycles)."""
    accounts, reps = two_towns()
    base = accounts[0]
    chain = [dict(base, id=f"c{i:03d}", parent_id=f"c{i - 1:03d}" if i else "") for i in range(150)]
    chain.reverse()
    dataset = _load(scenario_writer(chain, reps))
    assert set(dataset.accounts["family_id"]) == {"c000"}


# --------------------------------------------------------------------------- id normalisation


def test_number_columns_read_as_numbers_report_blank_infinite_and_out_of_range_cells(
    scenario_writer: ScenarioWriter,
) -> None:
    """Parquet's float columns skip the text cleaning; their bad cells are named as the text path names them."""
    accounts, reps = two_towns()
    frame = pd.DataFrame(accounts)
    frame["latitude"] = frame["latitude"].astype(float)
    frame.loc[0, "latitude"] = np.nan
    frame.loc[1, "latitude"] = np.inf
    frame.loc[2, "latitude"] = 91.0
    frame["potential"] = frame["potential"].astype(float)
    frame.loc[3, "potential"] = -5.0
    error = _error(scenario_writer(frame, reps, accounts_file="accounts.parquet"))
    _find(error, row=2, column="latitude", text="blank")
    _find(error, row=3, column="latitude", text="'inf' is not a number")
    _find(error, row=4, column="latitude", text="above 90")
    _find(error, row=5, column="potential", text="below 0")


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_numeric_ids_lose_their_trailing_point_zero(fmt: str, scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    frame = pd.DataFrame(accounts)
    frame["id"] = [101.0, 102.0, 103.0, 201.0, 202.0, 203.0]
    # a blank owner makes the whole column float, as spreadsheets and pandas do
    frame["current_rep"] = [7.0, 7.0, None, 8.0, None, 8.0]
    frame["parent_id"] = [None, 101.0, 101.0, None, None, None]
    frame["locked"] = [True, False, False, False, False, False]
    rep_frame = pd.DataFrame(reps)
    rep_frame["id"] = ["7", "8"]  # text ids in the reps CSV
    dataset = _load(scenario_writer(frame, rep_frame, accounts_file=f"accounts.{fmt}"))
    got = dataset.accounts
    assert got["account_id"].tolist() == ["101", "102", "103", "201", "202", "203"]
    assert got["current_rep"].tolist() == ["7", "7", pd.NA, "8", pd.NA, "8"]
    assert got["parent_id"].tolist() == [pd.NA, "101", "101", pd.NA, pd.NA, pd.NA]
    assert got["family_id"].tolist() == ["101", "101", "101", "201", "202", "203"]
    assert set(got["current_rep"].dropna()) <= set(dataset.reps["rep_id"])


def test_numeric_rep_ids_from_excel_match_text_owners(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    for account in accounts:
        account["current_rep"] = "101"
    rep_frame = pd.DataFrame(reps)
    rep_frame["id"] = [101.0, 102.0]
    dataset = _load(scenario_writer(accounts, rep_frame, reps_file="reps.xlsx"))
    assert dataset.reps["rep_id"].tolist() == ["101", "102"]
    assert dataset.accounts["current_rep"].tolist() == ["101"] * 6


def test_ids_are_trimmed_and_non_integral_numbers_kept(scenario_writer: ScenarioWriter) -> None:
    accounts, reps = two_towns()
    accounts[0]["id"] = "  a0 "
    accounts[1]["id"] = 12.5
    accounts[2]["current_rep"] = " RA"
    frame = pd.DataFrame(accounts).astype({"id": object})
    dataset = _load(scenario_writer(frame, reps, accounts_file="accounts.xlsx"))
    assert dataset.accounts["account_id"].tolist()[:3] == ["a0", "12.5", "a2"]
    assert dataset.accounts["current_rep"].tolist()[2] == "RA"


def test_ids_read_as_text_and_as_mixed_values_normalise_alike() -> None:
    """Text columns (CSV, Parquet) take the column-wise path, mixed ones (Excel numbers) go value by value: both
    strip, blank out '', 'nan' and 'None', and give the same ids for the same text."""
    text = pd.Series([" a1 ", "", "nan", "None", None, "7", "B 2"], dtype=object)
    mixed = pd.Series([" a1 ", "", "NaN", "none", float("nan"), 7.0, "B 2"], dtype=object)
    expected = ["a1", None, None, None, None, "7", "B 2"]
    for series in (text, mixed, text.astype("string")):
        got = normalise_ids(series)
        assert str(got.dtype) == "string"
        assert [None if value is pd.NA else value for value in got] == expected
