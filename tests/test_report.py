"""report.html: headline, KPI table, one chart per metric against its target band, map, moves, settings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from maps import build_report, territory_colors, write_report
from maps.assets import remote_assets
from maps.report import metric_chart
from models.dataset import Dataset
from models.plan import Plan
from territory.cli import app
from tests.conftest import ScenarioWriter, two_towns
from tests.test_maps import custom_metric_plan, three_cities_plan


@pytest.fixture(scope="module")
def three_cities() -> Plan:
    """See :func:`tests.test_maps.three_cities_plan` (accounts and potential balanced, workload not)."""
    return three_cities_plan()


def _charts(page: str) -> dict[str, str]:
    """Metric -> its chart's SVG, in page order."""
    pattern = r"<svg class='metric-chart' data-metric='([^']*)'.*?</svg>"
    return {m.group(1): m.group(0) for m in re.finditer(pattern, page, flags=re.S)}


def test_one_chart_per_metric_with_a_bar_per_territory(three_cities: Plan) -> None:
    charts = _charts(build_report(three_cities))
    assert list(charts) == ["accounts", "potential", "workload"]
    colors = territory_colors(3)
    for svg in charts.values():
        bars = re.findall(r"<rect class='bar'[^>]*fill='(#[0-9a-f]{6})'", svg)
        assert bars == colors
        assert svg.count("class='target'") == 3
    assert charts["accounts"].count("class='band'") == 3  # balanced: the tolerance band is drawn
    assert charts["workload"].count("class='band'") == 0  # not balanced: target tick only


def test_chart_bars_scale_with_the_load_and_flag_territories_outside_the_band() -> None:
    svg = metric_chart(
        "potential",
        np.array([100.0, 50.0]),
        np.array([75.0, 75.0]),
        ["Ana", "Bruno"],
        ["#111111", "#222222"],
        tolerance_pct=10,
    )
    widths = [float(w) for w in re.findall(r"<rect class='bar' x='[\d.]+' y='[\d.]+' width='([\d.]+)'", svg)]
    assert widths[0] == pytest.approx(2 * widths[1], rel=1e-3)
    assert svg.count("stroke='#c00000'") == 2  # both outside 75 +- 10 %
    band = re.findall(r"<rect class='band' x='([\d.]+)' y='[\d.]+' width='([\d.]+)'", svg)
    assert len(band) == 2
    assert "Ana: 100 (target 75, +33.3 %)" in svg
    inside = metric_chart("potential", np.array([74.0]), np.array([75.0]), ["Ana"], ["#111111"], tolerance_pct=10)
    assert "stroke='#c00000'" not in inside


def test_kpi_table_headline_moves_and_settings(three_cities: Plan) -> None:
    page = build_report(three_cities)
    kpi = re.search(r"<table class='kpi'>.*?</table>", page, flags=re.S).group(0)
    assert re.findall(r"<tr><td>(\w+)</td>", kpi) == ["Accounts", "Potential", "Workload"]
    assert "&plusmn;10 %" in kpi and "&plusmn;20 %" in kpi and "not balanced" in kpi
    assert "<h1>t</h1>" in page and ">optimal<" in page
    assert "1 of 9 accounts with a current rep change hands" in page
    assert page.count("<svg class='moves-chart'") == 1
    assert "<td>A4</td>" in page  # the moved account is listed
    assert "tolerance_pct: 10" in page  # scenario settings as YAML
    territories = three_cities.territories()
    for column in territories.columns:  # a header per column, in planner words, the key in its tooltip
        assert f"title='{column}'>" in page
    assert "title='workload_km'>Travel, workload-hour × km</th>" in page
    assert "<th class='group' colspan='3'>Potential</th>" in page


def test_map_embedded_from_the_plan_folder_or_left_out(three_cities: Plan) -> None:
    assert '<iframe class="plan-map" src="map.html"' in build_report(three_cities)
    assert "<iframe" not in build_report(three_cities, map_file=None)


def test_report_without_baseline_says_so() -> None:
    plan = three_cities_plan()
    accounts = plan.dataset.accounts.assign(
        current_rep=pd.Series(pd.NA, index=plan.dataset.accounts.index, dtype="string")
    )
    unowned = Plan(
        dataset=Dataset(accounts=accounts, reps=plan.dataset.reps, scenario=plan.dataset.scenario),
        rep_index=plan.rep_index,
        report=plan.report,
    )
    page = build_report(unowned)
    assert "no current rep: there is no baseline" in page and "moves-chart" not in page


def test_unsafe_names_are_escaped_and_custom_metrics_get_their_chart() -> None:
    page = build_report(custom_metric_plan(name="t & <u>", first_rep_name="<script>alert(1)</script>"))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "t &amp; &lt;u&gt;" in page
    assert list(_charts(page)) == ["accounts", "potential", "workload", "revenue_last_year"]


def test_write_report_writes_the_page_whole(three_cities: Plan, tmp_path: Path) -> None:
    path = write_report(tmp_path / "report.html", three_cities)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left behind


def test_solve_writes_report_and_workbook_and_offline_map(scenario_writer: ScenarioWriter, tmp_path: Path) -> None:
    """`territory solve --offline` end to end: report.html, plan.xlsx, and a map that loads nothing remote."""
    accounts, reps = two_towns()
    scenario = scenario_writer(accounts, reps)
    for offline in (False, True):
        out = tmp_path / f"plan-{offline}"
        args = ["solve", str(scenario), "--out", str(out), "--time-limit", "5"] + (["--offline"] if offline else [])
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert {"map.html", "report.html", "plan.xlsx"} <= {p.name for p in out.iterdir()}
        remote = remote_assets((out / "map.html").read_text(encoding="utf-8"))
        assert (remote == []) is offline
        assert "Rep A (RA)" in (out / "report.html").read_text(encoding="utf-8")
