"""Quotas: rounding, floors, caps, an exact sum, the comparison of two plans, and the example end to end."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from models.dataset import load_dataset
from models.errors import InputError
from models.generate import generate_opportunities
from models.plan import Plan, SolveReport
from models.quota import QuotaError, allocate_quotas, blend_shares, compare_quotas
from models.scenario import load_scenario
from territory.cli import app
from tests.conftest import REPO, two_towns, write_scenario
from tests.test_opportunities import pipeline_case, sound_deals

runner = CliRunner()
EXAMPLE = REPO / "scenarios" / "example"


# ------------------------------------------------------------------ allocation
def test_proportional_quotas_rounded_to_the_unit() -> None:
    """10,000 shared 1 : 1 : 2 is 2,500 / 2,500 / 5,000; in thousands the spare thousand goes to the first
    of the two equal remainders, and the quotas still sum to 10,000."""
    assert allocate_quotas([1, 1, 2], 10_000).tolist() == [2500, 2500, 5000]
    assert allocate_quotas([1, 1, 2], 10_000, rounding=1000).tolist() == [3000, 2000, 5000]


def test_largest_remainder_goes_to_the_largest_fraction() -> None:
    """Exact shares 3.6 / 3.3 / 3.1 thousand: floors 3 / 3 / 3, one thousand left -> the 0.6 remainder."""
    assert allocate_quotas([36, 33, 31], 10_000, rounding=1000).tolist() == [4000, 3000, 3000]


def test_floor_lifts_a_small_territory_and_the_others_pay_in_proportion() -> None:
    """Shares 1 : 4 : 5 of 100 give 10 / 40 / 50; a floor of 20 takes 10 from the others, 4 : 5."""
    quotas = allocate_quotas([1, 4, 5], 100_000, rounding=1000, floors=[20_000, 0, 0])
    assert quotas.tolist() == [20_000, 36_000, 44_000]  # 35.6 / 44.4 rounded by largest remainder


def test_cap_holds_a_large_territory_and_the_rest_goes_to_uncapped_reps() -> None:
    """Shares 6 : 2 : 2 of 100 give 60 / 20 / 20; a cap of 40 spreads 20 over the others equally."""
    quotas = allocate_quotas([6, 2, 2], 100_000, rounding=1000, caps=[40_000, np.inf, np.inf])
    assert quotas.tolist() == [40_000, 30_000, 30_000]


def test_redistribution_can_push_another_rep_to_its_cap() -> None:
    """After rep 0 is capped at 40, rep 1 would get 40 of the rest but its cap is 35: rep 2 takes the rest."""
    quotas = allocate_quotas([6, 3, 1], 100_000, rounding=1000, caps=[40_000, 35_000, np.nan])
    assert quotas.tolist() == [40_000, 35_000, 25_000]


def test_floors_are_rounded_up_and_caps_down_to_the_unit() -> None:
    quotas = allocate_quotas([1, 9], 10_000, rounding=1000, floors=[2_500, 0], caps=[np.inf, 7_900])
    assert quotas.tolist() == [3_000, 7_000]


def test_reps_without_a_share_keep_their_floor() -> None:
    assert allocate_quotas([0, 1, 1], 10_000, rounding=1000, floors=[2_000, 0, 0]).tolist() == [2000, 4000, 4000]


def test_everyone_capped_but_a_rep_without_share_takes_the_rest() -> None:
    quotas = allocate_quotas([1, 1, 0], 10_000, rounding=1000, caps=[3000, 3000, np.inf])
    assert quotas.tolist() == [3000, 3000, 4000]


def test_no_shares_at_all_means_equal_quotas() -> None:
    assert allocate_quotas([0, 0, 0, 0], 8_000, rounding=1000).tolist() == [2000, 2000, 2000, 2000]


@pytest.mark.parametrize(
    ("floors", "caps", "message"),
    [
        ([6000, 6000], None, "floors add up to 12,000, more than the target 10,000"),
        (None, [4000, 4000], "caps add up to 8,000, less than the target 10,000"),
        ([5000, 0], [4000, np.inf], "floor 5,000 is above the quota cap 4,000"),
        ([0, 0], [4999, 5999], "caps add up to 9,000"),  # caps rounded down to the unit first
    ],
)
def test_infeasible_floors_and_caps_are_refused(floors: list[float], caps: list[float], message: str) -> None:
    with pytest.raises(QuotaError, match=message):
        allocate_quotas([1, 1], 10_000, rounding=1000, floors=floors, caps=caps)


def test_target_must_be_a_multiple_of_the_unit() -> None:
    with pytest.raises(QuotaError, match="multiple"):
        allocate_quotas([1, 1], 10_500, rounding=1000)


@st.composite
def quota_cases(draw: st.DrawFn) -> tuple[np.ndarray, int, int, np.ndarray, np.ndarray]:
    """Random shares, a target, a unit, and floors and caps that leave a feasible set (possibly tight)."""
    n = draw(st.integers(1, 12))
    unit = draw(st.sampled_from([1, 10, 1000]))
    units = draw(st.integers(n, 5000))
    shares = np.array(draw(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=n, max_size=n)))
    floors = np.zeros(n)
    caps = np.full(n, np.inf)
    for i in range(n):
        kind = draw(st.sampled_from(["none", "floor", "cap", "both"]))
        if kind in {"floor", "both"}:
            floors[i] = draw(st.floats(0, 2.0 * units / n)) * unit
        if kind in {"cap", "both"}:
            caps[i] = floors[i] + draw(st.floats(0, 2.0 * units / n)) * unit
    floor_units = np.ceil(floors / unit - 1e-9)
    cap_units = np.floor(caps / unit + 1e-9)
    if floor_units.sum() > units or cap_units.sum() < units or np.any(floor_units > cap_units):
        caps = np.full(n, np.inf)  # keep the floors; without caps any target above them is feasible
        units = max(units, int(floor_units.sum()))
    return shares, units * unit, unit, floors, caps


@settings(max_examples=300, deadline=None)
@given(quota_cases())
def test_quotas_always_sum_to_target_within_limits(case: tuple[np.ndarray, int, int, np.ndarray, np.ndarray]) -> None:
    shares, target, unit, floors, caps = case
    quotas = allocate_quotas(shares, target, unit, floors, caps)
    assert quotas.sum() == target
    assert np.all(quotas % unit == 0)
    assert np.all(quotas >= np.ceil(floors / unit - 1e-9) * unit)
    assert np.all(quotas <= np.where(np.isfinite(caps), np.floor(caps / unit + 1e-9) * unit, np.inf))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 1e6, allow_nan=False), min_size=1, max_size=15),
    st.integers(1, 10_000),
    st.sampled_from([1, 100, 1000]),
)
def test_unbounded_quotas_are_within_one_unit_of_proportional(shares: list[float], units: int, unit: int) -> None:
    quotas = allocate_quotas(shares, units * unit, unit)
    exact = np.asarray(shares) / sum(shares) * units * unit
    assert quotas.sum() == units * unit
    assert np.all(np.abs(quotas - exact) < unit + 1e-6 * units * unit)


def test_blend_shares_weigh_each_metrics_share() -> None:
    shares = blend_shares(
        {"potential": np.array([300.0, 100.0]), "expected_revenue": np.array([0.0, 50.0])},
        {"potential": 0.5, "expected_revenue": 0.5},
    )
    assert shares.tolist() == [0.375, 0.625]
    # a metric whose total is zero drops out
    assert blend_shares({"a": np.array([1.0, 3.0]), "b": np.zeros(2)}, {"a": 1, "b": 1}).tolist() == [0.25, 0.75]


# --------------------------------------------------------------- plans, files
def _plan(path: Path, rep_index: list[int]) -> Plan:
    dataset = load_dataset(load_scenario(path))
    report = SolveReport("feasible", 0.0, 0.0, 0.0, 0.0, None, 0, 1, len(dataset.accounts))
    return Plan(dataset=dataset, rep_index=np.array(rep_index), report=report)


def test_plan_quotas_blend_potential_and_expected_revenue(tmp_path: Path) -> None:
    """Town A: 300 of 600 potential and 1,250 of 4,250 expected revenue; half and half -> 27/68 of 100,000.

    39.7 and 60.3 thousand round down to 39 and 60; the spare thousand goes to the larger remainder (A's 0.7).
    """
    quota = {"target": 100_000, "weights": {"potential": 1, "expected_revenue": 1}, "rounding": 1000}
    plan = _plan(pipeline_case(tmp_path / "q", sound_deals(), quota=quota), [0, 0, 0, 1, 1, 1])
    territories = plan.territories().set_index("rep_id")
    assert territories["quota"].to_dict() == {"RA": 40_000, "RB": 60_000}
    assert list(territories.columns).count("expected_revenue") == 1
    summary = plan.summary()["quota"]
    assert summary["total"] == 100_000 and summary["per_rep"] == {"RA": 40_000, "RB": 60_000}


def test_global_floor_is_per_fte_and_a_reps_column_overrides_it(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    reps[0]["fte"] = 0.5
    reps[0]["quota_floor"] = ""
    reps[1]["quota_floor"] = 70_000
    quota = {"target": 100_000, "weights": {"potential": 1}, "rounding": 1000, "floor": 40_000}
    path = write_scenario(tmp_path / "fte", accounts, reps, quota=quota)
    plan = _plan(path, [0, 0, 0, 0, 0, 1])  # RA holds 5/6 of the potential
    territories = plan.territories().set_index("rep_id")
    # RA's share would give 83,000, RB's own floor of 70,000 wins: RA gets the rest (its floor is 20,000)
    assert territories["quota"].to_dict() == {"RA": 30_000, "RB": 70_000}
    assert territories.loc["RB", "quota_limit"] == "floor"
    assert territories.loc["RA", "quota_per_fte"] == 60_000


def test_floors_above_the_target_are_bad_input_before_solving(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    quota = {"target": 100_000, "floor": 60_000}
    path = write_scenario(tmp_path / "floors", accounts, reps, quota=quota)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "quota floors add up to 120,000, more than the target 100,000" in flat and "quota.floor" in flat


def test_a_reps_own_floor_above_its_cap_names_the_rep_and_column(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    reps[0].update(quota_floor=50_000, quota_cap=40_000)
    reps[1].update(quota_floor="", quota_cap="")
    path = write_scenario(tmp_path / "own", accounts, reps, quota={"target": 100_000})
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "reps.csv" in flat and "rep 'RA'" in flat and "quota floor 50,000 is above the quota cap 40,000" in flat


def test_target_not_a_multiple_of_rounding_is_a_scenario_error(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    path = write_scenario(tmp_path / "odd", accounts, reps, quota={"target": 1_234_567, "rounding": 1000})
    with pytest.raises(InputError) as error:
        load_scenario(path)
    assert "use 1,234,000 or 1,235,000" in str(error.value) and "quota" in str(error.value)


def test_quota_weight_on_an_unknown_metric_is_a_scenario_error(tmp_path: Path) -> None:
    accounts, reps = two_towns()
    path = write_scenario(tmp_path / "w", accounts, reps, quota={"target": 1000, "weights": {"revenue": 1}})
    with pytest.raises(InputError, match=r"quota\.weights\.revenue"):
        load_scenario(path)


def test_compare_two_plans_per_rep(tmp_path: Path) -> None:
    quota = {"target": 100_000, "weights": {"potential": 1, "expected_revenue": 1}, "rounding": 1000}
    path = pipeline_case(tmp_path / "cmp", sound_deals(), quota=quota)
    a = _plan(path, [0, 0, 0, 1, 1, 1])
    b = _plan(path, [0, 0, 0, 0, 1, 1])  # b0 (expected revenue 3,000) moves to RA: 2/3 and all of 4,250 -> 5/6
    table = compare_quotas(a, b)
    assert list(table["rep_id"]) == ["RA", "RB"]
    row = table.set_index("rep_id").loc["RA"]
    assert (row["quota_a"], row["quota_b"], row["quota_change"]) == (40_000, 83_000, 43_000)
    assert (row["expected_revenue_a"], row["expected_revenue_b"], row["expected_revenue_change"]) == (1250, 4250, 3000)
    assert row["expected_revenue_change_pct"] == 240.0
    # a territories table read back from a plan folder compares too, and a rep only in one plan is marked
    other = b.territories().iloc[:1].assign(rep_id="RC")
    mixed = compare_quotas(a.territories(), other)
    assert dict(zip(mixed["rep_id"], mixed["present"], strict=True)) == {"RA": "a only", "RB": "a only", "RC": "b only"}
    assert mixed["quota_change"].isna().all()


# ------------------------------------------------------------------ example
def test_example_opportunities_are_reproducible() -> None:
    accounts = pd.read_csv(EXAMPLE / "accounts.csv")
    fresh = generate_opportunities(accounts, np.random.default_rng(9), datetime.date(2026, 10, 1))
    shipped = pd.read_csv(EXAMPLE / "opportunities.csv", keep_default_na=False, dtype=str)
    pd.testing.assert_frame_equal(fresh.astype(str), shipped)


def test_example_quota_scenario_end_to_end(tmp_path: Path) -> None:
    """Solve quota.yaml briefly: every tolerance (expected revenue too) holds and quotas sum to the target."""
    out = tmp_path / "plan"
    result = runner.invoke(app, ["solve", str(EXAMPLE / "quota.yaml"), "--out", str(out), "--time-limit", "8"])
    assert result.exit_code == 0, result.output
    territories = pd.read_csv(out / "territories.csv")
    target = load_scenario(EXAMPLE / "quota.yaml").scenario.quota.target  # type: ignore[union-attr]
    assert territories["quota"].sum() == target
    assert (territories["quota"] % 1000 == 0).all()
    assert "expected_revenue" in territories.columns
    assert (territories["expected_revenue_deviation_pct"].abs() <= 15 + 1e-6).all()
