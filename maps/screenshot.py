"""Open the engine's pages in headless Chromium: errors, render time, screenshots.

Used by the browser tests, the render benchmark and the README's pictures, so
all three see the pages the same way. It drives the system's Chromium (Debian's
``chromium`` package) through Playwright's Python package with
``executable_path``; it never downloads a browser. Requests that leave the
machine are blocked and recorded (file pages and localhost pass), so a page
that still needs the network shows up as blocked requests and broken rendering
instead of quietly loading from a CDN.

Make the README's pictures of a plan folder (written by ``territory solve``), and of the comparison,
frontier and sweep pages (written by ``territory compare``, ``frontier`` and ``sweep``)::

    python -m maps.screenshot plans/example --out docs
    python -m maps.screenshot --compare plans/headcount --frontier plans/frontier --sweep plans/sweep --out docs
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

#: Debian's chromium package; override with the CHROMIUM environment variable.
DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Headless, sandbox-free (root in CI), and quiet: no background traffic of the browser's own.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: Hosts a page may reach: this machine only.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: Browser window size for pages and screenshots.
VIEWPORT = {"width": 1400, "height": 900}

# Wait until the browser has painted twice after the load event: the canvas drawn by Leaflet is on screen.
_PAINTED = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"


@dataclass
class PageCheck:
    """What happened when a page was opened.

    Attributes
    ----------
    path
        The page opened.
    seconds
        From the start of navigation to the second paint after the load event
        (the load event waits for embedded frames such as the report's map).
    errors
        Uncaught JavaScript exceptions and console errors, of the page and its frames.
    blocked
        URLs of requests that tried to leave the machine (aborted).
    screenshot
        The PNG written, if one was asked for.
    """

    path: Path
    seconds: float
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def chromium_path() -> str:
    """The Chromium executable: ``$CHROMIUM``, else Debian's, else ``chromium`` on PATH.

    Raises
    ------
    FileNotFoundError
        No Chromium is installed; the message says how to install it.
    """
    candidate = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM
    if Path(candidate).is_file():
        return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise FileNotFoundError(
        f"no Chromium at {candidate}: install Debian's package (apt-get install -y chromium) "
        "or set CHROMIUM to the browser's path"
    )


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=list(CHROMIUM_ARGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def is_local(url: str) -> bool:
    """Whether a request stays on this machine (file, data and blob URLs, localhost)."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", "data", "blob", "about"):
        return True
    return parsed.hostname in LOCAL_HOSTS


def open_page(
    browser: Any,
    path: Path | str,
    *,
    screenshot: Path | str | None = None,
    viewport: dict[str, int] | None = None,
    timeout_s: float = 60.0,
    ready: str | None = None,
) -> tuple[PageCheck, Any]:
    """Open a page with the network blocked; return what happened and the live page.

    Parameters
    ----------
    browser
        From :func:`chromium`.
    path
        The HTML file, or the address of a page served on this machine (``http://127.0.0.1:...``).
    screenshot
        Write a PNG of the window here once the page has painted.
    viewport
        Window size; default :data:`VIEWPORT`.
    timeout_s
        Give up loading after this long.
    ready
        A JavaScript expression to wait for before the screenshot (a page that draws after its load event).

    Returns
    -------
    (PageCheck, playwright Page)
        The page stays open for further checks; close it (or its context) when done.
    """
    address = str(path) if str(path).startswith(("http://", "https://")) else Path(path).resolve().as_uri()
    path = Path(path).resolve() if not address.startswith("http") else Path(urlparse(address).path)
    context = browser.new_context(viewport=viewport or VIEWPORT)
    page = context.new_page()
    check = PageCheck(path=path, seconds=float("nan"))

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if is_local(url):
            request_route.continue_()
        else:
            check.blocked.append(url)
            request_route.abort()

    context.route("**/*", route)
    page.on("pageerror", lambda exc: check.errors.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: check.errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    start = time.perf_counter()
    page.goto(address, wait_until="load", timeout=timeout_s * 1000)
    if ready is not None:
        page.wait_for_function(ready, timeout=timeout_s * 1000)
    page.evaluate(_PAINTED)
    check.seconds = time.perf_counter() - start
    if screenshot is not None:
        check.screenshot = Path(screenshot)
        page.screenshot(path=str(check.screenshot))
    logger.info(
        "%s rendered in %.2f s (%d errors, %d blocked)", path.name, check.seconds, len(check.errors), len(check.blocked)
    )
    return check, page


def render(
    path: Path | str, *, screenshot: Path | str | None = None, viewport: dict[str, int] | None = None
) -> PageCheck:
    """Open one page in a fresh headless Chromium (see :func:`open_page`) and close it again."""
    with chromium() as browser:
        check, page = open_page(browser, path, screenshot=screenshot, viewport=viewport)
        page.context.close()
    return check


#: Pages of each folder pictured by :func:`main`: option, page, picture name, window height (px).
PICTURES = (
    ("plan", "map.html", "map", 900),
    ("plan", "report.html", "report", 1800),
    ("compare", "compare.html", "compare", 1750),
    ("frontier", "frontier.html", "frontier", 1000),
    ("sweep", "sweep.html", "sweep", 1250),
)


def main(argv: list[str] | None = None) -> int:
    """Screenshots for the README: a plan folder's map and report, and the comparison, frontier and sweep pages.

    Each picture is ``<out>/<prefix>-<page>.png`` (``docs/example-map.png``, ``docs/example-sweep.png``).
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("plan", type=Path, nargs="?", help="plan folder written by 'territory solve'")
    parser.add_argument("--compare", type=Path, help="folder written by 'territory compare'")
    parser.add_argument("--frontier", type=Path, help="folder written by 'territory frontier'")
    parser.add_argument("--sweep", type=Path, help="folder written by 'territory sweep'")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNGs (default: docs)")
    parser.add_argument("--prefix", default="example", help="file name prefix (default: example)")
    parser.add_argument("--width", type=int, default=1400, help="window width in px (default: 1400)")
    args = parser.parse_args(argv)
    folders = {"plan": args.plan, "compare": args.compare, "frontier": args.frontier, "sweep": args.sweep}
    if not any(folders.values()):
        parser.error("give a plan folder, or --compare, --frontier or --sweep")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        for option, page_name, picture, height in PICTURES:
            if folders[option] is None:
                continue
            target = args.out / f"{args.prefix}-{picture}.png"
            check, page = open_page(
                browser,
                folders[option] / page_name,
                screenshot=target,
                viewport={"width": args.width, "height": height},
            )
            page.context.close()
            if check.errors:
                logger.warning("%s: %s", target, "; ".join(check.errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
