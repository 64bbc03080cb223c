"""Forecast models on cases computed by hand, and expected revenue as a balance metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.dataset import load_dataset
from models.errors import InputError
from models.forecast import cycle_lengths, sales_cycle_probability, stage_probability
from models.plan import Plan, SolveReport
from models.scenario import Forecast, load_scenario
from optimizer import SolveSettings, build_problem, solve
from tests.conftest import two_towns
from tests.test_opportunities import AS_OF, days_before, pipeline_case, sound_deals


def _forecast(path: Path) -> dict[str, float]:
    """Expected revenue per opportunity id of a scenario folder."""
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    opps = dataset.forecast.opportunities
    return dict(zip(opps["opportunity_id"], opps["expected_revenue"], strict=True))


def test_one_month_of_a_four_month_cycle_is_25_percent() -> None:
    assert sales_cycle_probability([30], 120)[0] == pytest.approx(0.25)
    assert sales_cycle_probability([0], 120)[0] == 0.0


def test_probability_is_capped() -> None:
    """A deal worked longer than the average cycle is still open, so it is not certain."""
    assert sales_cycle_probability([90, 120, 400], 120, cap=0.9).tolist() == pytest.approx([0.75, 0.9, 0.9])
    assert sales_cycle_probability([400], 120, cap=1.0)[0] == 1.0


def test_cap_defaults_to_ninety_percent() -> None:
    assert Forecast().cap == 0.9


def test_sales_cycle_forecast_of_a_scenario(tmp_path: Path) -> None:
    """Deals worked 30, 60, 90 days on a 120-day cycle count at 25 %, 50 %, 75 %; the closed deal at 0."""
    revenue = _forecast(pipeline_case(tmp_path / "cycle", sound_deals()))
    assert revenue == {"O1": 250.0, "O2": 1000.0, "O3": 3000.0, "O4": 0.0}


def test_cycle_per_segment(tmp_path: Path) -> None:
    """The same 30 days are half of a 60-day SMB cycle and a sixth of a 180-day enterprise cycle."""
    accounts, _ = two_towns()
    for row in accounts[3:]:
        row["segment"] = "enterprise"
    deals = sound_deals()[:3]
    for deal in deals:
        deal["opened"] = days_before(30)
    forecast = {"as_of": AS_OF.isoformat(), "cycle_days_by_segment": {"SMB": 60, "Enterprise": 180}}
    revenue = _forecast(pipeline_case(tmp_path / "seg", deals, accounts=accounts, forecast=forecast))
    assert revenue == {"O1": 500.0, "O2": 1000.0, "O3": pytest.approx(4000 / 6, abs=0.5)}


def test_given_cycle_for_every_segment_fills_segments_not_listed(tmp_path: Path) -> None:
    accounts, _ = two_towns()
    accounts[3]["segment"] = "enterprise"
    forecast = {"as_of": AS_OF.isoformat(), "cycle_days": 60, "cycle_days_by_segment": {"enterprise": 360}}
    revenue = _forecast(pipeline_case(tmp_path / "mix", sound_deals()[:3], accounts=accounts, forecast=forecast))
    assert revenue == {"O1": 500.0, "O2": 1800.0, "O3": 1000.0}  # O2: 60/60 capped at 0.9; O3: 90/360


def _history(durations: list[int], won: list[bool], account: str = "b2") -> list[dict[str, object]]:
    """Closed deals that took ``durations`` days, closed 10 days before the forecast date."""
    return [
        {"id": f"C{i}", "account_id": account, "amount": 100, "opened": days_before(10 + d), "stage": "closed",
         "expected_close": "", "closed": days_before(10), "won": "true" if w else "false"}
        for i, (d, w) in enumerate(zip(durations, won, strict=True))
    ]  # fmt: skip


def test_cycle_estimated_from_won_deals(tmp_path: Path) -> None:
    """Won deals took 60, 90 and 120 days (mean 90); the lost 1,000-day deal does not count."""
    deals = sound_deals()[:3] + _history([60, 90, 120, 1000], [True, True, True, False])
    path = pipeline_case(tmp_path / "est", deals, forecast={"as_of": AS_OF.isoformat()})
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    cycle = dataset.forecast.cycles["smb"]
    assert (cycle.days, cycle.source, cycle.deals) == (90.0, "segment", 3)
    revenue = dict(zip(dataset.forecast.opportunities["opportunity_id"],
                       dataset.forecast.opportunities["expected_revenue"], strict=True))  # fmt: skip
    assert revenue["O1"] == pytest.approx(1000 / 3, abs=0.5)  # 30 of 90 days
    assert revenue["O2"] == pytest.approx(2000 * 2 / 3, abs=0.5)  # 60 of 90 days
    assert revenue["O3"] == 3600.0  # 90 of 90 days, capped at 0.9


def test_without_won_column_every_closed_deal_counts(tmp_path: Path) -> None:
    deals = sound_deals()[:3] + _history([60, 90, 120, 1000], [True, True, True, False])
    for deal in deals:
        deal.pop("won")
    path = pipeline_case(tmp_path / "nowon", deals, forecast={"as_of": AS_OF.isoformat()})
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    assert dataset.forecast.cycles["smb"].days == pytest.approx((60 + 90 + 120 + 1000) / 4)


def test_segment_with_too_few_deals_uses_all_closed_deals(tmp_path: Path) -> None:
    """Enterprise has one won deal (below min_closed_deals 3): it takes the mean over all won deals."""
    accounts, _ = two_towns()
    accounts[5]["segment"] = "enterprise"  # b2
    deals = [
        *sound_deals()[:1],
        {**sound_deals()[0], "id": "E1", "account_id": "b2"},
        *_history([40], [True], account="b2"),
        *_history([50, 60, 70], [True, True, True], account="a2"),
    ]
    for i, deal in enumerate(deals[2:]):
        deal["id"] = f"H{i}"
    path = pipeline_case(tmp_path / "few", deals, accounts=accounts, forecast={"as_of": AS_OF.isoformat()})
    dataset = load_dataset(load_scenario(path))
    assert dataset.forecast is not None
    cycles = dataset.forecast.cycles
    assert (cycles["smb"].days, cycles["smb"].source) == (60.0, "segment")
    assert (cycles["enterprise"].days, cycles["enterprise"].source, cycles["enterprise"].deals) == (55.0, "all", 4)


def test_no_cycle_and_too_few_closed_deals_is_an_input_error(tmp_path: Path) -> None:
    path = pipeline_case(tmp_path / "none", sound_deals(), forecast={"as_of": AS_OF.isoformat()})
    with pytest.raises(InputError) as error:
        load_dataset(load_scenario(path))
    text = str(error.value)
    assert "forecast.cycle_days" in text and "'smb'" in text and "->" in text


def test_given_cycle_wins_over_closed_deals() -> None:
    import pandas as pd

    opps = pd.DataFrame(
        {
            "is_open": [False, False, False],
            "won": pd.array([True, True, True], dtype="boolean"),
            "opened": pd.to_datetime(["2026-01-01"] * 3),
            "closed": pd.to_datetime(["2026-02-01"] * 3),
            "segment": ["smb"] * 3,
        }
    )
    given = cycle_lengths(opps, ["smb"], Forecast(cycle_days=200))
    estimated = cycle_lengths(opps, ["smb"], Forecast())
    assert given["smb"].days == 200 and estimated["smb"].days == 31


def test_stage_weights() -> None:
    weights = {"prospecting": 0.1, "proposal": 0.5, "negotiation": 0.8}
    assert stage_probability(["negotiation", "prospecting"], weights).tolist() == [0.8, 0.1]


def test_stage_weights_forecast_of_a_scenario(tmp_path: Path) -> None:
    forecast = {"as_of": AS_OF.isoformat(), "model": "stage_weights",
                "stage_weights": {"Prospecting": 0.1, "Proposal": 0.5, "Negotiation": 0.8}}  # fmt: skip
    revenue = _forecast(pipeline_case(tmp_path / "stages", sound_deals(), forecast=forecast))
    # the closed deal's stage 'Closed Won' needs no weight: closed deals are not forecast
    assert revenue == {"O1": 500.0, "O2": 1600.0, "O3": 400.0, "O4": 0.0}


def test_stage_weights_model_needs_weights() -> None:
    with pytest.raises(ValueError, match="stage_weights"):
        Forecast(model="stage_weights")


def test_expected_revenue_per_account_and_territory(tmp_path: Path) -> None:
    """Accounts sum their open deals; a territory sums its accounts (territories.csv column)."""
    deals = [*sound_deals(), {**sound_deals()[0], "id": "O5", "amount": 3000}]  # a0: two deals worked 30 days
    dataset = load_dataset(load_scenario(pipeline_case(tmp_path / "sum", deals)))
    per_account = dict(zip(dataset.accounts["account_id"], dataset.accounts["expected_revenue"], strict=True))
    assert per_account == {"a0": 1000.0, "a1": 1000.0, "a2": 0.0, "b0": 3000.0, "b1": 0.0, "b2": 0.0}
    report = SolveReport("feasible", 0.0, 0.0, 0.0, 0.0, None, 0, 1, 6)
    plan = Plan(dataset=dataset, rep_index=np.array([0, 0, 0, 1, 1, 1]), report=report)
    territories = plan.territories().set_index("rep_id")
    assert territories.loc["RA", "expected_revenue"] == 2000.0
    assert territories.loc["RB", "expected_revenue"] == 3000.0
    assert plan.summary()["forecast"]["expected_revenue"] == 5000.0


def test_expected_revenue_is_balanced_like_any_metric(tmp_path: Path) -> None:
    """Balancing expected revenue within 10 % forces the one split that shares it evenly.

    Town B holds all of it: b2 3,000, b0 900 and b1 1,800 (5,700; each rep's
    target 2,850, so 2,565 to 3,135). Compactness alone keeps each town whole;
    balance can only be met by one rep holding b2 and the other b0 and b1.
    """
    deals = [
        {"id": "O1", "account_id": "b2", "amount": 4000, "opened": days_before(90), "stage": "x"},
        {"id": "O2", "account_id": "b0", "amount": 1000, "opened": days_before(120), "stage": "x"},
        {"id": "O3", "account_id": "b1", "amount": 2000, "opened": days_before(120), "stage": "x"},
    ]  # expected revenue: b2 3000, b0 900, b1 1800 (cap 0.9)
    path = pipeline_case(
        tmp_path / "bal",
        deals,
        balance={"accounts": {"tolerance_pct": 50}, "expected_revenue": {"tolerance_pct": 10}},
    )
    dataset = load_dataset(load_scenario(path))
    problem = build_problem(dataset)
    assert [m.name for m in problem.metrics] == ["accounts", "expected_revenue"]
    result = solve(problem, SolveSettings(time_limit_s=None, workers=1, seed=0))
    report = SolveReport(result.status.value, result.objective, result.bound, result.gap, 0.0, None, 0, 1, 6)
    plan = Plan(dataset=dataset, rep_index=result.unit_rep[problem.unit_of_account], report=report)
    loads = plan.loads("expected_revenue")
    # 5,700 in all: each rep within 10 % of 2,850 -> B keeps b2 (3,000), A gets b0 and b1 (2,700)
    assert sorted(loads.tolist()) == [2700.0, 3000.0]
    assert plan.summary()["metrics"]["expected_revenue"]["within_tolerance"]
