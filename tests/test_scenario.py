"""Scenario files: the shipped example, schema violations with their key paths, the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.dataset import load_dataset
from models.errors import InputError, InputIssue
from models.scenario import Scenario, load_scenario, parse_scenario, scenario_json_schema
from tests.conftest import EXAMPLE, REPO

SCHEMA_FILE = REPO / "scenarios" / "scenario.schema.json"
WHERE = Path("scenario.yaml")


def _minimal(**changes: Any) -> dict[str, Any]:
    """The smallest valid scenario mapping, with top-level keys replaced by ``changes``."""
    body: dict[str, Any] = {
        "name": "t",
        "data": {"accounts": "accounts.csv", "reps": "reps.csv"},
        "balance": {"accounts": {"tolerance_pct": 10}},
    }
    body.update(changes)
    return body


def _issues(data: Any) -> list[InputIssue]:
    with pytest.raises(InputError) as info:
        parse_scenario(data, WHERE)
    assert info.value.issues
    assert all(issue.file == WHERE for issue in info.value.issues)
    return info.value.issues


def _only(data: Any) -> InputIssue:
    issues = _issues(data)
    assert len(issues) == 1, "\n".join(map(str, issues))
    return issues[0]


# --------------------------------------------------------------------------- the shipped example


def test_shipped_example_loads_with_its_data() -> None:
    loaded = load_scenario(EXAMPLE)
    assert loaded.path == EXAMPLE.resolve()
    assert loaded.base_dir == EXAMPLE.parent.resolve()
    scenario = loaded.scenario
    assert set(scenario.balance) == {"accounts", "potential", "workload"}
    assert set(scenario.segment_rules) == {"enterprise", "mid", "smb"}
    assert scenario.workload.by_segment == {"enterprise": 32.0, "mid": 16.0, "smb": 6.0}
    dataset = load_dataset(loaded)
    assert len(dataset.accounts) == 2000
    assert len(dataset.reps) == 12
    assert dataset.accounts["account_id"].is_unique
    assert dataset.reps["rep_id"].is_unique
    assert (dataset.reps["fte"] == 0.5).sum() == 1
    assert set(dataset.reps["fte"]) == {0.5, 1.0}
    assert set(dataset.accounts["segment"]) <= set(scenario.segment_rules)
    assert set(dataset.accounts["workload"]) <= {32.0, 16.0, 6.0}
    assert set(dataset.accounts["current_rep"].dropna()) <= set(dataset.reps["rep_id"])
    assert dataset.accounts["latitude"].between(-90, 90).all()
    assert (dataset.accounts["potential"] >= 0).all()
    assert dataset.source == EXAMPLE.resolve()


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("changes", "key_path", "suggestion"),
    [
        ({"solvr": {}}, "solvr", "solver"),
        ({"balance": {"potential": {"tolerence_pct": 5}}}, "balance.potential.tolerence_pct", "tolerance_pct"),
        ({"solver": {"time_limt_s": 5}}, "solver.time_limt_s", "time_limit_s"),
        ({"columns": {"accounts": {"lattitude": "Lat"}}}, "columns.accounts.lattitude", "latitude"),
        ({"columns": {"reps": {"ftes": "FTE"}}}, "columns.reps.ftes", "fte"),
        ({"segment_rules": {"smb": {"reps": ["smb"], "penalty": 5}}}, "segment_rules.smb.penalty", "penalty_km"),
        (
            {"data": {"accounts": "a.csv", "reps": "r.csv", "acounts_sheet": "A"}},
            "data.acounts_sheet",
            "accounts_sheet",
        ),
        ({"objective": {"compactnes": 2}}, "objective.compactnes", "compactness"),
    ],
)
def test_unknown_key_suggests_the_nearest_valid_key(changes: dict[str, Any], key_path: str, suggestion: str) -> None:
    issues = _issues(_minimal(**changes))
    unknown = [issue for issue in issues if issue.column == key_path]
    assert len(unknown) == 1, "\n".join(map(str, issues))
    assert unknown[0].message == f"unknown key '{key_path.rsplit('.', 1)[-1]}'"
    assert unknown[0].hint == f"did you mean '{suggestion}'?"
    assert f"did you mean '{suggestion}'?" in str(InputError(issues))


def test_unknown_key_far_from_any_lists_the_valid_keys() -> None:
    issue = _only(_minimal(solver={"zzz": 1}))
    assert issue.column == "solver.zzz"
    assert issue.hint is not None
    for key in ("time_limit_s", "seed", "workers", "relative_gap", "candidate_reps"):
        assert key in issue.hint


def test_missing_required_keys_are_listed_together() -> None:
    issues = _issues({"description": "no name, no data, no balance"})
    assert {issue.column for issue in issues} == {"name", "data", "balance"}
    assert all("missing" in issue.message for issue in issues)


def test_scenario_that_is_not_a_mapping() -> None:
    issue = _only(["name", "data"])
    assert "mapping" in issue.message


# --------------------------------------------------------------------------- YAML files


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("name: t\ndata:\n  accounts: a.csv\n reps: r.csv\nbalance: {}\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_scenario(path)
    (issue,) = info.value.issues
    assert issue.file == path
    assert issue.row == 4
    assert issue.message.startswith("YAML syntax error")
    assert "row 4" in str(info.value)


def test_yaml_schema_violations_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "name: t\ndata: {accounts: a.csv, reps: r.csv}\nbalance:\n  accounts: {tolerance_pct: 0}\nsolver: {seeed: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        load_scenario(path)
    assert {issue.column for issue in info.value.issues} == {"balance.accounts.tolerance_pct", "solver.seeed"}
    assert all(issue.file == path for issue in info.value.issues)


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        load_scenario(tmp_path / "nowhere.yaml")
    (issue,) = info.value.issues
    assert issue.file == tmp_path / "nowhere.yaml"
    assert "not found" in issue.message


def test_data_paths_resolve_against_the_scenario_folder(tmp_path: Path) -> None:
    path = tmp_path / "plans" / "scenario.yaml"
    path.parent.mkdir()
    path.write_text(
        "name: t\ndata: {accounts: in/a.csv, reps: /abs/r.csv}\nbalance: {accounts: {tolerance_pct: 10}}\n",
        encoding="utf-8",
    )
    loaded = load_scenario(path)
    assert loaded.data_path(loaded.scenario.data.accounts) == path.parent.resolve() / "in" / "a.csv"
    assert loaded.data_path(loaded.scenario.data.reps) == Path("/abs/r.csv")


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("tolerance", [0, 100, -5, 250])
def test_tolerance_outside_zero_to_hundred_is_an_error(tolerance: float) -> None:
    body = _minimal(balance={"accounts": {"tolerance_pct": 10}, "potential": {"tolerance_pct": tolerance}})
    issue = _only(body)
    assert issue.column == "balance.potential.tolerance_pct"
    assert f"(got {tolerance})" in issue.message
    assert "than" in issue.message  # "greater than 0" / "less than 100"


@pytest.mark.parametrize(
    ("changes", "key_path"),
    [
        ({"solver": {"time_limit_s": 0}}, "solver.time_limit_s"),
        ({"solver": {"relative_gap": 1}}, "solver.relative_gap"),
        ({"solver": {"candidate_reps": 0}}, "solver.candidate_reps"),
        ({"objective": {"compactness": -1}}, "objective.compactness"),
        ({"workload": {"by_segment": {"smb": -2}}}, "workload.by_segment"),
        ({"segment_rules": {"smb": {"reps": []}}}, "segment_rules.smb.reps"),
        ({"segment_rules": {"smb": {"reps": ["smb"], "mode": "strict"}}}, "segment_rules.smb.mode"),
        ({"balance": {"accounts": {"tolerance_pct": 10, "within": "region"}}}, "balance.accounts.within"),
        ({"balance": {}}, "balance"),
    ],
)
def test_bad_values_name_their_key_path(changes: dict[str, Any], key_path: str) -> None:
    issue = _only(_minimal(**changes))
    assert issue.column == key_path
    assert issue.hint == "fix the value (see scenario.schema.json)"


def test_several_violations_are_reported_together() -> None:
    body = _minimal(
        balance={"accounts": {"tolerance_pct": 0}, "workload": {"tolerance_pct": 100}},
        solver={"time_limit_s": -1, "workerz": 2},
    )
    columns = {issue.column for issue in _issues(body)}
    assert columns == {
        "balance.accounts.tolerance_pct",
        "balance.workload.tolerance_pct",
        "solver.time_limit_s",
        "solver.workerz",
    }


def test_custom_metric_without_column_is_an_error() -> None:
    issue = _only(_minimal(balance={"revenue": {"tolerance_pct": 10}}))
    assert "balance.revenue" in issue.message
    assert "column" in issue.message


@pytest.mark.parametrize("metric", ["accounts", "potential", "workload"])
def test_builtin_metric_with_a_column_is_an_error(metric: str) -> None:
    issue = _only(_minimal(balance={metric: {"tolerance_pct": 10, "column": "Revenue"}}))
    assert f"balance.{metric}" in issue.message
    assert "takes no column" in issue.message


def test_custom_metric_with_column_is_valid() -> None:
    scenario = parse_scenario(_minimal(balance={"revenue": {"tolerance_pct": 10, "column": "Revenue"}}), WHERE)
    assert scenario.balance["revenue"].column == "Revenue"
    assert scenario.balance["revenue"].within == "all"


def test_labels_are_normalised_to_lower_case() -> None:
    scenario = parse_scenario(
        _minimal(
            segment_rules={" SMB ": {"reps": ["SMB", " Any"]}},
            workload={"by_segment": {"Enterprise": 30, "SMB": 5}},
        ),
        WHERE,
    )
    assert list(scenario.segment_rules) == ["smb"]
    assert scenario.segment_rules["smb"].reps == ["smb", "any"]
    assert scenario.workload.by_segment == {"enterprise": 30.0, "smb": 5.0}


def test_with_solver_changes_only_the_given_settings() -> None:
    scenario = parse_scenario(_minimal(solver={"time_limit_s": 10, "seed": 3}), WHERE)
    changed = scenario.with_solver(time_limit_s=2.5, seed=None)
    assert changed.solver.time_limit_s == 2.5
    assert changed.solver.seed == 3
    assert scenario.solver.time_limit_s == 10
    assert scenario.with_solver(seed=None) is scenario


# --------------------------------------------------------------------------- the published JSON Schema


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_json_schema_has_the_scenario_shape() -> None:
    schema = scenario_json_schema()
    json.dumps(schema)  # plain JSON, nothing pydantic-specific
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert {"name", "data", "balance", "solver", "columns", "segment_rules", "objective"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "data", "balance"}
    # unknown keys are rejected at every level, not only the top
    for name, definition in schema["$defs"].items():
        assert definition["type"] == "object", name
        assert definition["additionalProperties"] is False, name
    # every reference points at a definition that exists
    refs = _refs(schema)
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in schema["$defs"]
    tolerance = schema["$defs"]["MetricRule"]["properties"]["tolerance_pct"]
    assert tolerance["exclusiveMinimum"] == 0
    assert tolerance["exclusiveMaximum"] == 100


def test_published_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.is_file(), f"publish the schema: write scenario_json_schema() to {SCHEMA_FILE}"
    published = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert published == scenario_json_schema()


# --------------------------------------------------------------------------- round trip

_label = st.text(min_size=1, max_size=10)
_text = st.text(max_size=30)
_positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
_builtin_rule = st.fixed_dictionaries(
    {
        "tolerance_pct": st.floats(min_value=0, max_value=100, exclude_min=True, exclude_max=True),
        "within": st.sampled_from(["all", "segment"]),
    }
)
_custom_rule = st.fixed_dictionaries(
    {
        "tolerance_pct": st.floats(min_value=0, max_value=100, exclude_min=True, exclude_max=True),
        "within": st.sampled_from(["all", "segment"]),
        "column": _text,
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Random valid scenarios built through the schema itself."""
    builtin = draw(st.dictionaries(st.sampled_from(["accounts", "potential", "workload"]), _builtin_rule, max_size=3))
    custom = draw(st.dictionaries(_label.map(lambda s: f"m_{s}"), _custom_rule, max_size=2))
    balance = builtin | custom or {"accounts": {"tolerance_pct": 10.0}}
    column_names = st.none() | _text
    body = {
        "name": draw(_text),
        "description": draw(_text),
        "data": {
            "accounts": draw(st.sampled_from(["accounts.csv", "in/accounts.xlsx", "/abs/a.parquet"]) | _text),
            "reps": draw(st.sampled_from(["reps.csv", "./in//reps.gpkg"]) | _text),
            "accounts_sheet": draw(column_names),
            "reps_sheet": draw(column_names),
        },
        "columns": {
            "accounts": {key: draw(column_names) for key in ("id", "latitude", "potential", "parent_id")},
            "reps": {key: draw(column_names) for key in ("id", "segment", "fte")},
        },
        "workload": {
            "by_segment": draw(
                st.none() | st.dictionaries(_label, st.floats(min_value=0, max_value=1e4, allow_nan=False), max_size=3)
            )
        },
        "balance": balance,
        "segment_rules": draw(
            st.dictionaries(
                _label,
                st.fixed_dictionaries(
                    {
                        "reps": st.lists(_label, min_size=1, max_size=3),
                        "mode": st.sampled_from(["hard", "soft"]),
                        "penalty_km": st.floats(min_value=0, max_value=1e4, allow_nan=False),
                    }
                ),
                max_size=3,
            )
        ),
        "objective": {
            "compactness": draw(st.floats(min_value=0, max_value=1e3)),
            "preference": draw(st.floats(min_value=0, max_value=1e3)),
        },
        "solver": {
            "time_limit_s": draw(_positive),
            "seed": draw(st.integers(min_value=0, max_value=2**31 - 1)),
            "workers": draw(st.integers(min_value=0, max_value=64)),
            "relative_gap": draw(st.floats(min_value=0, max_value=1, exclude_max=True)),
            "candidate_reps": draw(st.none() | st.integers(min_value=1, max_value=50)),
        },
    }
    return Scenario.model_validate(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_scenario_round_trips_through_json(scenario: Scenario) -> None:
    dumped = scenario.model_dump(mode="json")
    json.loads(json.dumps(dumped))  # the dump is plain JSON
    again = parse_scenario(dumped, WHERE)
    assert again == scenario
    assert again.model_dump(mode="json") == dumped
