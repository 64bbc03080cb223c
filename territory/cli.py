"""The ``territory`` command: a thin layer over the library.

Exit codes (DESIGN.md): 0 a plan was written (or the input is valid);
1 the scenario has no feasible plan, or none was found in time (the message
says why); 2 bad input or usage (the message says where and what to do).
SIGTERM exits 143 and writes nothing; Ctrl-C during a solve writes the best
plan found so far, marked as interrupted. Anything else is a bug and exits 70
with the traceback.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.live import Live
from rich.logging import RichHandler
from rich.table import Table

from models.errors import InputError
from models.formatting import TRAVEL_UNIT
from models.generate import write_instance
from models.plan import Plan
from models.scenario import scenario_json_schema
from optimizer import InfeasibleError, ProgressEvent
from territory.pipeline import NoPlanError, check, prepare, solve_prepared, write_plan_folder
from territory.terminal_table import fit_table

EXIT_OK, EXIT_INFEASIBLE, EXIT_INPUT, EXIT_BUG, EXIT_TERMINATED = 0, 1, 2, 70, 143

app = typer.Typer(
    name="territory",
    help=(
        "Sales territory and workload optimisation: balance accounts, revenue potential and workload "
        "across reps (in proportion to FTE), keep territories compact, respect SMB / enterprise fit, "
        "and write the plan as CSV, JSON and a Folium map.\n\n"
        "Exit codes: 0 plan written / input valid; 1 no feasible plan (the message says why); "
        "2 bad input or usage (the message says where and what to do)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console()
err_console = Console(stderr=True)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=verbose)],
        force=True,
    )


def _fail(code: int, title: str, message: str) -> typer.Exit:
    err_console.print(f"[bold red]{title}[/bold red]")
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


class _ProgressLine:
    """One live line during the search: time since the command started, the step or the best plan, bound, gap.

    It is re-drawn several times a second (``__rich__``), so the time moves on even while a long step (the
    clustered LP of a million accounts) reports nothing.
    """

    def __init__(self, live: Live, started: float) -> None:
        self.live = live
        self.started = started
        self.text = "searching..."
        live.update(self)

    def __call__(self, event: ProgressEvent) -> None:
        if event.phase:
            plan = "" if event.objective is None else f"  plan {event.objective:,.0f}"
            self.text = f"{event.phase}...{plan}"
        elif event.objective is None:
            self.text = f"searching...  bound {event.bound:,.0f}"
        else:
            gap = "" if event.gap is None else f"  gap {100 * event.gap:.3f} %"
            self.text = f"plan {event.objective:,.0f}  bound {event.bound:,.0f}{gap}"

    def __rich__(self) -> str:
        elapsed = time.perf_counter() - self.started
        hint = "[dim](workload-hour x km; Ctrl-C keeps the best plan)[/dim]"
        return f"[cyan]solving[/cyan] {elapsed:6.1f}s  {self.text}  {hint}"


class _Steps:
    """Long steps outside the search (loading, building, writing each file): one live line with the time since the
    command started, and a log line per step (shown with --verbose)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.text = ""
        self.live = Live(self, console=err_console, transient=True, refresh_per_second=4)

    def __enter__(self) -> _Steps:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    def __call__(self, text: str) -> None:
        self.text = text
        logging.getLogger("territory").info("%.1f s: %s", time.perf_counter() - self.started, text)

    def __rich__(self) -> str:
        return f"[cyan]{self.text}[/cyan] {time.perf_counter() - self.started:6.1f}s"


def summary_table(plan: Plan, width: int) -> Table:
    """Each balanced metric's total, smallest and largest load, worst deviation and tolerance."""
    summary = plan.summary()
    title = f"{summary['scenario']}: {summary['status']}, gap {100 * (summary['gap'] or 0):.3f} %"
    columns = ["total", "min", "max", "max_deviation_pct", "tolerance_pct", "within_tolerance"]
    rows = [{"metric": name, **{c: m[c] for c in columns}} for name, m in summary["metrics"].items() if m["balanced"]]
    return fit_table(
        pd.DataFrame(rows, columns=["metric", *columns]),
        width,
        title=title,
        headers={"max_deviation_pct": "worst dev. %", "tolerance_pct": "tolerance %"},
        style=lambda column, value: "red" if column == "within_tolerance" and value is False else None,
    )


_SOLVE_TIME = Annotated[
    float | None, typer.Option("--time-limit", help="Solver time limit per solve, seconds (overrides the scenarios).")
]
_SEED = Annotated[int | None, typer.Option("--seed", help="Random seed (overrides the scenarios).")]
_WORKERS = Annotated[int | None, typer.Option("--workers", help="Solver workers, 0 = every core.")]
_OFFLINE = Annotated[
    bool, typer.Option("--offline", help="Write pages that open without any network (no tiles, scripts inlined).")
]
_VERBOSE = Annotated[bool, typer.Option("--verbose", "-v", help="Log what each step does.")]


def _check_time_limit(time_limit: float | None) -> None:
    """Refuse a time limit of zero or less (exit 2)."""
    if time_limit is not None and time_limit <= 0:
        raise _fail(EXIT_INPUT, "Bad option", "--time-limit must be above zero seconds")


def _run_reporting_errors(action):
    """Run ``action``, turning the library's errors into the CLI's exit codes and messages."""
    try:
        return action()
    except InputError as exc:
        raise _fail(EXIT_INPUT, "Bad input", str(exc)) from None
    except InfeasibleError as exc:
        raise _fail(EXIT_INFEASIBLE, "No feasible plan", str(exc)) from None
    except NoPlanError as exc:
        raise _fail(EXIT_INFEASIBLE, "No plan found", str(exc)) from None


@app.command()
def solve(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Plan folder to write (default: plans/<scenario file name>).")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option("--time-limit", help="Solver time limit in seconds (overrides the scenario).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (overrides the scenario).")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Solver workers, 0 = every core (overrides the scenario).")
    ] = None,
    no_time_limit: Annotated[
        bool,
        typer.Option(
            "--no-time-limit",
            help="Search without a time limit, stopping on deterministic criteria: the same scenario, seed and "
            "workers then give the same plan.",
        ),
    ] = False,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="A plan folder whose assignments are the plan in force (overrides continuity.baseline).",
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="Write map.html and report.html so they open without any network: no map tiles, "
            "scripts inlined from installed packages.",
        ),
    ] = False,
    split_by: Annotated[
        str | None,
        typer.Option(
            "--split-by",
            help="Solve region by region on a Dask cluster: the reps table's column holding each rep's region "
            "(territory/regions.py); a coarse solve shares the accounts between regions, borders are reconciled.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="With --split-by: a running Dask scheduler (default: a local cluster)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each step does.")] = False,
) -> None:
    """Solve a scenario and write the plan folder.

    Writes assignments.csv, territories.csv, summary.json, map.html,
    report.html and plan.xlsx into OUT, all at once: an existing plan there is replaced only by a complete new one.
    """
    _setup_logging(verbose)
    _check_time_limit(time_limit)
    out = out or Path("plans") / scenario.stem

    started = time.perf_counter()

    def run() -> tuple[Plan, Path]:
        with _Steps(started) as steps:
            prepared = prepare(
                scenario,
                time_limit_s=time_limit,
                seed=seed,
                workers=workers,
                no_time_limit=no_time_limit,
                baseline_plan=baseline,
                on_step=steps,
            )
        if split_by is not None:
            from territory.regions import solve_by_regions

            with err_console.status("splitting by region") as status:
                split = solve_by_regions(
                    prepared, split_by, address=address, on_step=lambda text: status.update(f"[cyan]{text}")
                )
            out_console.print(fit_table(split.regions, out_console.width, title="Regions"))
            plan = split.plan
        else:
            with Live(console=err_console, transient=True, refresh_per_second=4) as live:
                plan = solve_prepared(prepared, progress=_ProgressLine(live, started))
        with _Steps(started) as steps:
            return plan, write_plan_folder(plan, out, offline=offline, on_step=steps)

    plan, folder = _run_reporting_errors(run)
    out_console.print(summary_table(plan, out_console.width))
    if plan.report.interrupted:
        out_console.print("[yellow]Interrupted: this is the best plan found before Ctrl-C.[/yellow]")
    out_console.print(
        f"Plan written to [bold]{folder}[/bold] (assignments.csv, territories.csv, summary.json, map.html, "
        "report.html, plan.xlsx)"
    )


@app.command()
def validate(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each step does.")] = False,
) -> None:
    """Check a scenario and its data without solving.

    Reads the scenario and both tables, reports every problem found (file,
    row, column, what to do), and runs the quick feasibility checks.
    """
    _setup_logging(verbose)
    try:
        prepared = prepare(scenario, solve_baseline=False)
        check(prepared)
    except InputError as exc:
        raise _fail(EXIT_INPUT, "Bad input", str(exc)) from None
    except InfeasibleError as exc:
        raise _fail(EXIT_INFEASIBLE, "No feasible plan", str(exc)) from None
    data = prepared.dataset
    out_console.print(
        f"[green]OK[/green] {prepared.loaded.scenario.name}: {len(data.accounts):,} accounts in "
        f"{prepared.problem.num_units:,} units, {len(data.reps)} reps ({data.reps['fte'].sum():g} FTE), "
        f"{len(prepared.problem.pair_unit):,} allowed account-rep pairs"
    )


@app.command()
def compare(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Two or more scenario files (solved here) or plan folders.", show_default=False),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the comparison into.")] = Path(
        "plans/compare"
    ),
    time_limit: _SOLVE_TIME = None,
    seed: _SEED = None,
    workers: _WORKERS = None,
    offline: _OFFLINE = False,
    verbose: _VERBOSE = False,
) -> None:
    """Compare plans side by side: KPI table, change lists, each rep's loads, a synchronised map.

    Writes kpis.csv, reps.csv, changes.csv, compare.html, compare_map.html (and quota_changes.csv when the plans
    set quotas) into OUT, with the plan folder of every scenario solved under OUT/plans/. A scenario whose
    baseline is another scenario's plan takes it from the same run.
    """
    from territory.compare import gather_plans, kpi_table, write_comparison

    _setup_logging(verbose)
    _check_time_limit(time_limit)

    def run():
        with err_console.status("reading plans") as status:
            plans = gather_plans(
                sources,
                time_limit_s=time_limit,
                seed=seed,
                workers=workers,
                on_solve=lambda label, path: status.update(f"[cyan]solving[/cyan] {label} ({path})"),
            )
            status.update("writing the comparison")
            return plans, write_comparison(plans, out, offline=offline)

    plans, folder = _run_reporting_errors(run)
    kpis = kpi_table(plans)
    shown = ["plan", "status", "reps", "all_within_tolerance", "workload_km", "accounts_moved", "forced_moves"]
    view = fit_table(
        kpis[shown],
        out_console.width,
        title=f"{len(plans)} plans",
        caption=f"travel in {TRAVEL_UNIT}; forced moves: a departing rep's accounts",
        headers={"all_within_tolerance": "balance met", "workload_km": "travel", "forced_moves": "forced moves"},
    )
    out_console.print(view)
    out_console.print(f"Comparison written to [bold]{folder}[/bold] (open compare.html)")


@app.command()
def frontier(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML file (with a baseline).", show_default=False)],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder to write (default: plans/<scenario>-frontier).")
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            "--budgets",
            help="Comma-separated move budgets to try (accounts besides a departing rep's); default: five budgets "
            "from the fewest moves a balanced plan needs towards what an unlimited plan moves.",
        ),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="A plan folder as the plan in force (overrides the scenario).")
    ] = None,
    time_limit: _SOLVE_TIME = None,
    seed: _SEED = None,
    workers: _WORKERS = None,
    offline: _OFFLINE = False,
    verbose: _VERBOSE = False,
) -> None:
    """Trade-off frontier: solve with growing move budgets; table and charts of travel and balance per move.

    Writes frontier.csv, frontier.html and a plan folder per budget with a plan into OUT.
    """
    from territory.frontier import frontier_table, solve_frontier, write_frontier

    _setup_logging(verbose)
    _check_time_limit(time_limit)
    wanted = None
    if budgets is not None:
        try:
            wanted = [int(b) for b in budgets.split(",") if b.strip()]
        except ValueError:
            raise _fail(EXIT_INPUT, "Bad option", "--budgets takes whole numbers separated by commas") from None
        if any(b < 0 for b in wanted):
            raise _fail(EXIT_INPUT, "Bad option", "--budgets must be zero or more")
    folder_out = out or Path("plans") / f"{scenario.stem}-frontier"

    def run():
        with err_console.status("preparing") as status:
            points = solve_frontier(
                scenario,
                wanted,
                time_limit_s=time_limit,
                seed=seed,
                workers=workers,
                baseline_plan=baseline,
                on_step=lambda text: status.update(f"[cyan]solving[/cyan] {text}"),
            )
            status.update("writing the frontier")
            return points, write_frontier(points, folder_out, offline=offline)

    points, folder = _run_reporting_errors(run)
    table = frontier_table(points)
    shown = [c for c in ("max_moved_accounts", "status", "discretionary_moves", "workload_km") if c in table]
    deviations = [c for c in table.columns if c.endswith("_max_deviation_pct")]
    headers = {c: f"{c.removesuffix('_max_deviation_pct').replace('_', ' ')} worst dev. %" for c in deviations}
    headers.update(max_moved_accounts="move budget", discretionary_moves="accounts moved", workload_km="travel")
    view = fit_table(
        table[shown + deviations],
        out_console.width,
        title="Disruption frontier",
        caption=f"travel in {TRAVEL_UNIT}; accounts moved besides a departing rep's",
        headers=headers,
    )
    out_console.print(view)
    out_console.print(f"Frontier written to [bold]{folder}[/bold] (open frontier.html)")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML file (base scenario + axes).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep folder to write (reruns reuse finished variants).")],
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="A running Dask scheduler (tcp://host:8786); default $TERRITORY_SCHEDULER, the sweep file's "
            "scheduler, else a local cluster started here.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Worker processes of the local cluster (default: cores).")
    ] = None,
    time_limit: _SOLVE_TIME = None,
    offline: _OFFLINE = False,
    verbose: _VERBOSE = False,
) -> None:
    """Solve every variant of a sweep on a Dask cluster: plan folders, sweep.csv and sweep.html with trade-offs.

    Each variant's plan folder is OUT/variants/<id>/; a variant that fails is recorded in its row and the sweep
    goes on. Exit 0 once every variant has a row (failed ones included), 2 on a bad sweep file.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from territory.sweep import run_sweep

    _setup_logging(verbose)
    import distributed  # noqa: F401  (its import sets its loggers' levels: quiet them after it)

    logging.getLogger("distributed").setLevel(logging.INFO if verbose else logging.ERROR)
    _check_time_limit(time_limit)
    columns = (TextColumn("[cyan]variants"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"))
    with Progress(*columns, TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("", total=None)

        def show(state) -> None:
            text = f"running {state.running}, failed {state.failed}, reused {state.reused}  [dim]{state.last}[/dim]"
            bar.update(task, total=state.total, completed=state.done, description=text)

        result = _run_reporting_errors(
            lambda: run_sweep(
                sweep_file,
                out,
                address=address,
                workers=workers,
                time_limit_s=time_limit,
                offline=offline,
                progress=show,
            )
        )
    counts = result.table["status"].value_counts()
    out_console.print(
        f"{len(result.table)} variants in {result.wall_seconds:.0f} s on {result.workers or 0} workers "
        f"({', '.join(f'{n} {s}' for s, n in counts.items())}; {result.reused} reused). "
        f"Written to [bold]{result.folder}[/bold] (sweep.csv, sweep.html, variants/)"
    )


@app.command()
def serve(
    source: Annotated[
        Path,
        typer.Argument(help="A plan folder (opened as is) or a scenario file (solved first).", show_default=False),
    ],
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; any but 127.0.0.1/localhost needs the printed token."),
    ] = "127.0.0.1",
    time_limit: _SOLVE_TIME = None,
    verbose: _VERBOSE = False,
) -> None:
    """Open the workbench: the plan on a map beside each rep's figures, to edit, re-optimise, compare and save.

    Every account or unit moved by hand is pinned to its new rep; re-optimising keeps the pins. Save writes
    the plan folder, pins.csv and a scenario extending the original with the pins. Ctrl-C stops the app.
    """
    from territory.serve import serve as run_app
    from territory.workbench import open_workbench

    _setup_logging(verbose)
    _check_time_limit(time_limit)

    def opened():
        if source.is_dir():
            with err_console.status(f"reading the plan {source}"):
                return open_workbench(source)
        with Live(console=err_console, transient=True, refresh_per_second=4) as live:
            return open_workbench(source, time_limit_s=time_limit, progress=_ProgressLine(live, time.perf_counter()))

    bench = _run_reporting_errors(opened)

    def ready(address: str) -> None:
        out_console.print(f"Workbench of [bold]{bench.dataset.scenario.name}[/bold] at {address}  (Ctrl-C stops it)")
        if "?token=" in address:
            out_console.print("From another machine, put this machine's name or address in place of 127.0.0.1.")

    try:
        run_app(bench, host=host, port=port, on_ready=ready)
    except OSError as exc:  # port taken, address not ours
        raise _fail(EXIT_INPUT, "Cannot listen", f"{host}:{port}: {exc}; choose another --port or --host") from None


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of scenario files."""
    text = json.dumps(scenario_json_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Folder to write accounts, reps and scenario.yaml into.")],
    accounts: Annotated[int, typer.Option("--accounts", min=1, help="Number of accounts.")] = 2000,
    reps: Annotated[int, typer.Option("--reps", min=1, help="Number of reps.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 7,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Time limit written into the scenario.")] = 30.0,
) -> None:
    """Generate a realistic instance (accounts around Midwest metros) with its scenario file."""
    if file_format not in {"csv", "parquet"}:
        raise _fail(EXIT_INPUT, "Bad option", "--format must be csv or parquet")
    path = write_instance(out, accounts, reps, seed, file_format=file_format, time_limit_s=time_limit)
    out_console.print(f"Wrote {accounts:,} accounts and {reps} reps; scenario: [bold]{path}[/bold]")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM: stop at once and write nothing (a plan folder being written is rolled back)."""
    raise SystemExit(EXIT_TERMINATED)


def main() -> None:
    """Console-script entry point: run the app, turning unexpected errors into exit code 70."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("Interrupted: nothing was written.")
        sys.exit(130)
    except Exception:
        err_console.print("[bold red]Internal error (a bug in territory; please report it):[/bold red]")
        err_console.print(traceback.format_exc(), markup=False, highlight=False)
        sys.exit(EXIT_BUG)


if __name__ == "__main__":
    main()
