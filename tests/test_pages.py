"""Every page the engine writes, for the example, checked in Chromium as a planner would read it.

The example is compared (annual plan and R010 leaving) and its disruption frontier drawn, each with a short
time limit, through the commands a planner types; then ``map.html``, ``report.html``, ``compare.html``,
``compare_map.html`` and ``frontier.html`` are opened in headless Chromium (:mod:`maps.screenshot`, network
blocked). ``sweep.html`` is checked the same way (:func:`assert_page_reads_well`) by the example sweep of
:mod:`tests.test_sweep`, which already solves its 24 variants. Each page, with its embedded frames, must show:

- no number in scientific notation (``3.9e+06``) in any text, tooltip included;
- no legend or table wider than what holds it (a pane, a scroll box, the window): compared as scroll width
  against client width, and as the element's box against its clipping container's;
- chart legends and map legends whole: every label present in full, no axis text outside its chart.

The terminal tables of the same commands fit 80 columns with every figure whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import territory.cli
from maps.screenshot import chromium, open_page
from territory.cli import app, summary_table
from territory.compare import load_plan_folder
from tests.conftest import EXAMPLE

#: Seconds per solve: enough for a plan of the example on a loaded two-core machine.
TIME_LIMIT = "5"
#: Scientific notation as Python and pandas print it (3.906e+06, 1e-04).
SCIENTIFIC = re.compile(r"\d[eE][+-]\d")
#: Legend and table elements that must fit what holds them.
BOXES = "table, .plan-legend, .plan-title, .leaflet-control-layers, ul.chart-legend, figure, .facts"

# Per frame: all text a planner can read (tooltips too), and every element that overflows what clips it.
_INSPECT = """(selector) => {
    const clipOf = el => {
        for (let a = el.parentElement; a; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== "visible") { return a; }
        }
        return null;
    };
    const name = el => el.tagName.toLowerCase() + (typeof el.className === "string" && el.className
        ? "." + el.className.trim().split(/\\s+/).join(".") : "");
    const shown = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
    const problems = [];
    for (const el of document.querySelectorAll(selector)) {
        if (!shown(el)) { continue; }
        if (el.scrollWidth > el.clientWidth + 1) {
            problems.push(`${name(el)} scrolls: ${el.scrollWidth} px in ${el.clientWidth} px`);
        }
        const box = el.getBoundingClientRect(), clip = clipOf(el);
        const bound = clip ? clip.getBoundingClientRect() : {left: 0, right: document.documentElement.clientWidth};
        if (box.left < bound.left - 1 || box.right > bound.right + 1) {
            problems.push(`${name(el)} spans ${Math.round(box.left)}-${Math.round(box.right)} px, ` +
                          `outside ${clip ? name(clip) : "the window"} (${Math.round(bound.left)}-` +
                          `${Math.round(bound.right)} px)`);
        }
    }
    for (const svg of document.querySelectorAll("svg")) {
        if (!shown(svg)) { continue; }
        const b = svg.getBoundingClientRect();
        for (const t of svg.querySelectorAll("text")) {
            const r = t.getBoundingClientRect();
            const across = r.left < b.left - 1 || r.right > b.right + 1;
            if (r.width && (across || r.top < b.top - 1 || r.bottom > b.bottom + 1)) {
                problems.push(`svg text '${t.textContent}' is cut off by its chart`);
            }
        }
    }
    const texts = [document.body.innerText];
    document.querySelectorAll("svg text, title").forEach(t => texts.push(t.textContent));
    document.querySelectorAll("[title]").forEach(el => texts.push(el.getAttribute("title")));
    const legends = Array.from(document.querySelectorAll("ul.chart-legend li")).map(li => {
        const label = li.querySelector(".legend-label");
        return {text: label.textContent, whole: label.scrollWidth <= label.clientWidth + 1};
    });
    const reps = Array.from(document.querySelectorAll(".plan-legend td.rep")).filter(shown).map(td => td.textContent);
    return {problems, text: texts.join("\\n"), legends, reps};
}"""


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The example's pages, written by the commands a planner runs (see the module docstring)."""
    root = tmp_path_factory.mktemp("pages")
    runner = CliRunner()
    wide = Console(width=80)  # what `territory` prints on an 80-column terminal
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(territory.cli, "out_console", wide)
        compared = runner.invoke(
            app,
            [
                "compare",
                str(EXAMPLE),
                str(EXAMPLE.parent / "rep_leaves.yaml"),
                *("--out", str(root / "compare"), "--time-limit", TIME_LIMIT, "--offline"),
            ],
        )
        assert compared.exit_code == 0, compared.output
        frontier = runner.invoke(
            app,
            [
                "frontier",
                str(EXAMPLE.parent / "rep_leaves.yaml"),
                *("--baseline", str(root / "compare" / "plans" / "scenario"), "--budgets", "300"),
                *("--out", str(root / "frontier"), "--time-limit", TIME_LIMIT, "--offline"),
            ],
        )
        assert frontier.exit_code == 0, frontier.output
    yield {
        "root": root,
        "terminal": compared.output + frontier.output,
        "example": load_plan_folder(root / "compare" / "plans" / "scenario"),
        "rep_leaves": load_plan_folder(root / "compare" / "plans" / "rep_leaves"),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


def inspect(browser: Any, path: Path, shots: Path, width: int = 1400, height: int = 900) -> list[dict[str, Any]]:
    """Open a page (network blocked) at a window width; what every frame of it shows (see ``_INSPECT``)."""
    check, page = open_page(
        browser, path, screenshot=shots / f"{path.stem}-{width}.png", viewport={"width": width, "height": height}
    )
    try:
        assert check.errors == [] and check.blocked == [], (check.errors, check.blocked)
        return [frame.evaluate(_INSPECT, BOXES) for frame in page.frames]
    finally:
        page.context.close()


def assert_page_reads_well(browser: Any, path: Path, shots: Path, width: int = 1400) -> list[dict[str, Any]]:
    """Open a page and check it as :func:`assert_readable` does; return what each of its frames shows."""
    frames = inspect(browser, path, shots, width=width)
    assert_readable(frames, f"{path.name} at {width} px")
    return frames


def assert_readable(frames: list[dict[str, Any]], page: str) -> None:
    """No scientific notation, nothing overflowing, every chart legend label whole."""
    for frame in frames:
        assert frame["problems"] == [], (page, frame["problems"])
        found = SCIENTIFIC.findall(frame["text"])
        assert not found, (page, found, [line for line in frame["text"].splitlines() if SCIENTIFIC.search(line)][:5])
        for legend in frame["legends"]:
            assert legend["whole"] and "\u2026" not in legend["text"], (page, legend)


def rep_labels(plan: Any) -> list[str]:
    reps = plan.dataset.reps
    return [n if n == r else f"{n} ({r})" for n, r in zip(reps["name"], reps["rep_id"], strict=True)]


PAGES = {
    "map.html": "compare/plans/scenario/map.html",
    "report.html": "compare/plans/scenario/report.html",
    "compare.html": "compare/compare.html",
    "compare_map.html": "compare/compare_map.html",
    "frontier.html": "frontier/frontier.html",
}


@pytest.mark.parametrize("page", PAGES)
def test_page_reads_well_in_chromium(page: str, pages: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    frames = assert_page_reads_well(browser, pages["root"] / PAGES[page], tmp_path)
    maps = [f for f in frames if f["reps"]]
    if page in {"map.html", "report.html", "compare_map.html", "compare.html"}:  # a map, or one embedded
        assert maps and all(set(f["reps"]) <= set(rep_labels(pages["example"])) for f in maps)
        assert all(len(f["reps"]) >= len(pages["example"].dataset.reps) - 1 for f in maps)


@pytest.mark.parametrize("width", [1000, 720])
def test_side_by_side_legends_fit_narrow_panes(width: int, pages: dict[str, Any], browser: Any, tmp_path: Path) -> None:
    """Two panes of 500 and 360 px: each legend folds into a shorter form that fits its pane, every rep named."""
    (frame,) = assert_page_reads_well(browser, pages["root"] / PAGES["compare_map.html"], tmp_path, width=width)
    assert frame["reps"] == rep_labels(pages["example"]) + rep_labels(pages["rep_leaves"])


def test_pages_show_relative_paths_and_plans_in_command_line_order(pages: dict[str, Any]) -> None:
    page = (pages["root"] / PAGES["compare.html"]).read_text()
    assert str(pages["root"]) not in page and "file:" not in page and str(Path.cwd()) not in page
    row = re.search(r"title='source'>Source</th>(.*?)</tr>", page).group(1)
    sources = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert len(sources) == 2 and all(not s.startswith("/") and s.count("../") <= 2 for s in sources), sources
    head = re.search(r"<thead>(.*?)</thead>", page, flags=re.S).group(1)
    assert head.index(">scenario<") < head.index(">rep_leaves<")  # as given, not alphabetical
    reasons = page.split("<h2>Moves by reason</h2>", 1)[1].split("</thead>", 1)[0]
    assert reasons.index(">scenario<") < reasons.index(">rep_leaves<")
    kpis = pd.read_csv(pages["root"] / "compare" / "kpis.csv")
    assert f"{kpis['workload_km'].iloc[0]:,.0f}" in page  # the figure in full, with separators


def test_terminal_tables_fit_80_columns_with_every_figure_whole(pages: dict[str, Any]) -> None:
    lines = pages["terminal"].splitlines()
    assert lines and max(len(line) for line in lines) <= 80
    console = Console(width=80, record=True)
    console.print(summary_table(pages["example"], 80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for metric in pages["example"].summary()["metrics"].values():
        for figure in (metric["total"], metric["min"], metric["max"]):
            assert f"{figure:,.0f}" in text
    assert "\u2026" not in text and "\u2026" not in pages["terminal"]
