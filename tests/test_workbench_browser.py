"""The workbench in real Chromium, with no network: select on the map, assign, undo, re-optimise, save, reopen.

The app runs in a background thread (:func:`territory.serve.running`) on the shipped example solved for 4 s;
Chromium (Debian's, driven by Playwright as :mod:`maps.screenshot` does) opens it with every request that
would leave the machine aborted and recorded. The planner's loop is followed with the mouse: three accounts
clicked on the map (shift adds), moved to another rep, the table checked against their loads, undone, done
again, re-optimised with a move budget and accepted (the pins hold), saved, and the saved folder reopened in a
second app showing the same plan.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maps.screenshot import PageCheck, chromium, open_page
from territory.serve import PAGE_DRAWN, running
from territory.workbench import open_workbench

# Every rep row of the KPI table: rep id -> {column key: the number shown}.
_TABLE = """() => Object.fromEntries(Array.from(document.querySelectorAll("#kpis tr.rep")).map(tr => [
    tr.dataset.repId,
    Object.fromEntries(Array.from(tr.querySelectorAll("td[data-key]")).map(td =>
        [td.dataset.key, Number(td.textContent.replace(/,/g, "").replace("−", "-"))]))]))"""

# Accounts whose dot is the one under the pointer (not under a home base's star).
_CLICKABLE = """(ids) => ids.filter(id => {
    const at = workbench.screenPoint(id);
    const box = document.getElementById("map").getBoundingClientRect();
    return at && at[0] > box.left + 40 && at[0] < box.right - 40 && at[1] > box.top + 80 && at[1] < box.bottom - 40
        && workbench.accountAt(at[0], at[1]) === id
        && !document.elementFromPoint(at[0], at[1]).closest(".leaflet-marker-icon");
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def _open(browser: Any, address: str, checks: list[PageCheck]) -> Any:
    check, page = open_page(browser, address, viewport={"width": 1500, "height": 900}, ready=PAGE_DRAWN)
    checks.append(check)  # its errors and blocked requests keep growing while the page is used
    return page


def test_the_planners_loop_in_chromium(browser: Any, example_plan_folder: Path, tmp_path: Path) -> None:
    bench = open_workbench(example_plan_folder)
    accounts = bench.dataset.accounts
    alone = accounts["family_id"].map(accounts["family_id"].value_counts()) == 1  # an account family of one
    free = accounts[(accounts["segment"] == "smb") & alone]
    checks: list[PageCheck] = []
    with running(bench) as address:
        page = _open(browser, address, checks)
        page.screenshot(path=str(tmp_path / "opened.png"))
        picked = page.evaluate(_CLICKABLE, free["account_id"].tolist())[:3]
        assert len(picked) == 3
        for k, account in enumerate(picked):
            x, y = page.evaluate("(id) => workbench.screenPoint(id)", account)
            if k:
                page.keyboard.down("Shift")
            page.mouse.click(x, y)
            page.keyboard.up("Shift")
        assert page.locator("#selection").inner_text() == "3 accounts selected"

        rows = free.set_index("account_id").loc[picked]
        owners = [bench.rep_ids[bench.unit_rep[u]] for u in bench.units_of(picked)]
        smb_reps = bench.dataset.reps.query("segment == 'smb'")["rep_id"].tolist()
        target = next(r for r in smb_reps if r not in owners)
        before = page.evaluate(_TABLE)
        page.select_option("#rep", str(bench.rep_row(target)))
        assert f"({target}, smb)" in page.locator("#rep option:checked").inner_text()
        page.click("#assign")
        page.wait_for_function("workbench.version === 1")
        after = page.evaluate(_TABLE)
        assert after[target]["accounts"] - before[target]["accounts"] == 3
        assert after[target]["potential"] - before[target]["potential"] == pytest.approx(rows["potential"].sum(), abs=1)
        for owner in set(owners):
            lost = rows[[o == owner for o in owners]]
            assert before[owner]["accounts"] - after[owner]["accounts"] == len(lost)
            lost_potential = before[owner]["potential"] - after[owner]["potential"]
            assert lost_potential == pytest.approx(lost["potential"].sum(), abs=1)
        unchanged = [r for r in before if r not in {target, *owners}]
        assert all(after[r]["potential"] == before[r]["potential"] for r in unchanged)

        page.click("#undo")
        page.wait_for_function("workbench.version === 2")
        assert page.evaluate(_TABLE) == before
        page.keyboard.press("Control+y")  # redo: moved and pinned again
        page.wait_for_function("workbench.version === 3")
        assert page.evaluate(_TABLE) == after

        page.eval_on_selector("#budget", "(el) => { el.value = '40'; el.dispatchEvent(new Event('input')); }")
        page.fill("#time-limit", "8")
        page.click("#solve")
        page.wait_for_selector("#proposal:not([hidden])", timeout=60_000)
        assert "accounts would move" in page.locator("#proposal-title").inner_text()
        assert page.locator("#proposal-changes tbody tr").count() <= 40
        page.click("#accept")
        page.wait_for_function("workbench.version === 4")
        units = bench.units_of(picked)
        assert all(bench.rep_ids[bench.unit_rep[u]] == target for u in units)  # the pins held
        shown_reps = page.evaluate("(us) => us.map(u => workbench.unitRep[u])", units.tolist())
        assert shown_reps == bench.unit_rep[units].tolist()

        saved = tmp_path / "saved"
        page.click("#files summary")  # open "Save and compare"
        page.fill("#folder", str(saved))
        page.click("#save")
        page.wait_for_function("document.getElementById('message').textContent.startsWith('saved to')")
        page.screenshot(path=str(tmp_path / "saved.png"))
        shown = page.evaluate("Array.from(workbench.unitRep)")
        page.context.close()

    reopened = open_workbench(saved)
    with running(reopened) as address:
        page = _open(browser, address, checks)
        assert page.evaluate("Array.from(workbench.unitRep)") == shown
        assert page.evaluate("(us) => us.map(u => workbench.pins[u])", units.tolist()) == [bench.rep_row(target)] * len(
            units
        )
        page.context.close()
    assert [url for check in checks for url in check.blocked] == []
    assert [error for check in checks for error in check.errors] == []
