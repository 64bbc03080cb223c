"""``territory serve``: the workbench as a local web app.

Why FastAPI (on Starlette) with uvicorn, not Dash: the page is one Leaflet map with a canvas of up to 100,000
accounts that the planner selects by click, box and lasso, beside a table that changes on every edit. That is
a few hundred lines of plain JavaScript talking JSON to a handful of routes; Dash would wrap the same Leaflet
map in React components and round-trip every selection through its callback graph, with far more to ship and
nothing gained. FastAPI validates request bodies with pydantic (as the scenario files are), streams solver
progress as server-sent events, serves Leaflet from the installed XStatic package (no network needed), and its
``TestClient`` runs the app in-process for the tests. uvicorn is the ASGI server FastAPI documents.

The web layer is thin: every route is a call to :class:`territory.workbench.Workbench`; the figures, edits,
solves and saves all happen there. Safety, as Datasette does it: the app binds to 127.0.0.1 by default; on any
other host it prints a one-time token and refuses every request without it (``?token=`` once, then a cookie).
State-changing requests must be JSON (``Content-Type: application/json``), which a page of another site cannot
send without the browser asking first, and local apps only answer requests addressed to a local host name (a
guard against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from models.errors import InputError
from territory.workbench import Workbench, WorkbenchError

logger = logging.getLogger(__name__)

#: Host names a local app answers to.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
#: Cookie holding the token after the first visit with ``?token=``.
TOKEN_COOKIE = "territory_token"
#: The page, its script and style (installed with the package).
STATIC = Path(__file__).with_name("static")
#: True once the page has drawn the plan, its table and the territory areas, and answers clicks.
PAGE_DRAWN = "window.workbenchReady === true && window.areasDrawn >= 1"
#: Seconds between progress checks of a streamed solve.
EVENT_POLL_S = 0.25


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | None = Field(None, description="The plan version the page shows (stale: 409).")


class AssignBody(_Body):
    """Move units (or the units of accounts) to a rep, pinning them."""

    rep: str
    units: list[int] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)


class UnitsBody(_Body):
    """Units (or the units of accounts) to unpin."""

    units: list[int] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)


class SolveBody(_Body):
    """Re-optimise: the move budget (accounts; null: none) and a time limit (null: the scenario's)."""

    budget: int | None = Field(None, ge=0)
    time_limit_s: float | None = Field(None, gt=0)


class SaveBody(_Body):
    """Save the plan folder (null: the default folder)."""

    folder: str | None = None


def _json(payload: Any, status: int = 200) -> Response:
    """JSON without FastAPI's per-element encoder (100,000-element lists go out as they are)."""
    return Response(json.dumps(payload, allow_nan=False), status_code=status, media_type="application/json")


def create_app(bench: Workbench, *, token: str | None = None, local: bool = True) -> FastAPI:
    """The workbench app over one session.

    Parameters
    ----------
    bench
        The session every route works on.
    token
        Required on every request when given (``?token=``, the cookie it sets, or ``Authorization: Bearer``).
    local
        Answer only requests addressed to a local host name.
    """
    app = FastAPI(title="territory workbench", docs_url=None, redoc_url=None, openapi_url=None)
    if local:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=[*LOCAL_HOSTS, "testserver"])

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        if token is not None:
            given = request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                given = header[7:]
            if not (given and secrets.compare_digest(given, token)):
                return _json({"detail": "this workbench needs its token: open the address it printed"}, 403)
        if request.method == "POST":  # the only method that changes anything (others: 405)
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return _json({"detail": "send JSON (Content-Type: application/json)"}, 415)
        response = await call_next(request)
        if token is not None and request.query_params.get("token") == token:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(WorkbenchError)
    async def refused(request: Request, exc: WorkbenchError) -> Response:
        return _json({"detail": str(exc)}, exc.status)

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        return _json({"detail": str(exc)}, 400)

    app.mount("/static/app", StaticFiles(directory=STATIC), name="app")
    app.mount("/static/leaflet", StaticFiles(directory=_package_dir("xstatic.pkg.leaflet")), name="leaflet")

    def units(body: AssignBody | UnitsBody) -> np.ndarray:
        found = bench.units_of(account_ids=body.accounts) if body.accounts else np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([np.asarray(body.units, dtype=np.int64), found]))

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "workbench.html").read_text(encoding="utf-8"))

    @app.get("/api/state")
    def state() -> Response:
        return Response(bench.page_json(), media_type="application/json")

    @app.get("/api/kpis")
    def kpis() -> Response:
        with bench.lock:
            return _json(bench.update())

    @app.get("/api/areas")
    def areas(reps: str = "") -> Response:
        rows = [bench.rep_row(r) for r in reps.split(",") if r] if reps else None
        return _json(bench.areas(rows))

    @app.get("/api/units")
    def unit_shapes() -> Response:
        return _json(bench.unit_shapes())

    @app.post("/api/assign")
    def assign(body: AssignBody) -> Response:
        return _json(bench.assign(units(body), body.rep, version=body.version))

    @app.post("/api/unpin")
    def unpin(body: UnitsBody) -> Response:
        return _json(bench.unpin(units(body), version=body.version))

    @app.post("/api/undo")
    def undo(body: _Body) -> Response:
        return _json(bench.undo(version=body.version))

    @app.post("/api/redo")
    def redo(body: _Body) -> Response:
        return _json(bench.redo(version=body.version))

    @app.post("/api/solve")
    def start_solve(body: SolveBody) -> Response:
        job = bench.start_solve(budget=body.budget, time_limit_s=body.time_limit_s, version=body.version)
        return _json({"job": job.id, "state": job.state}, 202)

    @app.get("/api/solve/{job_id}")
    def solve_state(job_id: str) -> Response:
        job = bench.job(job_id)
        return _json({"job": job.id, "state": job.state, "message": job.message, "events": job.events[-1:]})

    @app.get("/api/solve/{job_id}/events")
    async def solve_events(job_id: str) -> StreamingResponse:
        job = bench.job(job_id)

        async def stream() -> Any:
            sent = 0
            while True:
                state = job.state  # read before the events: a solve ending in between still sends its last one
                while sent < len(job.events):
                    yield f"event: progress\ndata: {json.dumps(job.events[sent])}\n\n"
                    sent += 1
                if state != "running":
                    yield f"event: end\ndata: {json.dumps({'state': state, 'message': job.message})}\n\n"
                    return
                await asyncio.sleep(EVENT_POLL_S)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/api/solve/{job_id}/cancel")
    def cancel(job_id: str) -> Response:
        job = bench.job(job_id)
        job.cancel.set()
        return _json({"job": job.id, "state": job.state}, 202)

    @app.get("/api/solve/{job_id}/changes")
    def changes(job_id: str) -> Response:
        return _json(bench.proposal_changes(bench.job(job_id)))

    @app.post("/api/solve/{job_id}/accept")
    def accept(job_id: str, body: _Body) -> Response:
        return _json(bench.accept(bench.job(job_id), version=body.version))

    @app.post("/api/solve/{job_id}/reject")
    def reject(job_id: str, body: _Body) -> Response:
        bench.reject(bench.job(job_id))
        return _json({"job": job_id, "state": "rejected"})

    @app.post("/api/save")
    def save(body: SaveBody) -> Response:
        folder = bench.save(body.folder, version=body.version)
        return _json(
            {"folder": str(folder), "version": bench.version, "files": sorted(p.name for p in folder.iterdir())}
        )

    @app.get("/compare", response_class=HTMLResponse)
    def compare(folder: str) -> HTMLResponse:
        return HTMLResponse(bench.compare_page(Path(folder)))

    return app


def _package_dir(module: str) -> Path:
    """The data folder of an installed XStatic package."""
    return Path(importlib.import_module(module).BASE_DIR)


@contextmanager
def running(bench: Workbench, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The app served in a background thread (``port=0``: any free port); yields its address.

    For tests, benchmarks and notebooks; ``territory serve`` runs :func:`serve` in the foreground instead.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(bench), host=host, port=port, log_level="warning"))
    bench.page_json()  # as serve() does: the page's data serialised before the first visit
    thread = threading.Thread(target=server.run, name="workbench-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the workbench app did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}/"
    finally:
        server.should_exit = True
        thread.join(10)


def serve(bench: Workbench, *, host: str = "127.0.0.1", port: int = 8000, on_ready: Any = None) -> None:
    """Run the app with uvicorn until Ctrl-C; ``on_ready`` gets the address (with the token off-machine)."""
    import uvicorn

    local = host in LOCAL_HOSTS
    token = None if local else secrets.token_urlsafe(24)
    app = create_app(bench, token=token, local=local)
    bench.page_json()  # the page's data serialised before the first visit
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    address = f"http://{shown if ':' not in shown or shown.startswith('[') else f'[{shown}]'}:{port}/"
    if token is not None:
        address += f"?token={token}"
    if on_ready is not None:
        on_ready(address)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def screenshot(bench: Workbench, path: Path | str, *, width: int = 1500, height: int = 900) -> Path:
    """A PNG of the workbench page as it stands (the README's picture): Chromium with the network blocked.

    Raises
    ------
    RuntimeError
        The page failed (a script error) or asked for something off the machine.
    """
    from maps.screenshot import chromium, open_page

    with running(bench) as address, chromium() as browser:
        check, page = open_page(
            browser, address, screenshot=path, viewport={"width": width, "height": height}, ready=PAGE_DRAWN
        )
        page.context.close()
    if check.errors or check.blocked:
        raise RuntimeError("; ".join([*check.errors, *(f"blocked {url}" for url in check.blocked)]))
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """The README's picture: a plan folder, a few accounts moved by hand (pinned), the page as a PNG."""
    import argparse

    from territory.workbench import open_workbench

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("plan", type=Path, help="plan folder written by 'territory solve'")
    parser.add_argument("--out", type=Path, default=Path("docs/workbench.png"))
    parser.add_argument("--move", nargs="*", default=[], help="account ids to move before the picture")
    parser.add_argument("--to", help="the rep they move to")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    bench = open_workbench(args.plan)
    if args.move and args.to:
        bench.assign(bench.units_of(args.move), args.to)
    screenshot(bench, args.out)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
