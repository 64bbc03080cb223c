"""Writing and reading plan folders, whole or not at all.

A plan folder holds ``assignments.csv``, ``territories.csv``, ``summary.json``,
``set_aside.csv`` (accounts left out as unusable; only a header when none),
``changes.csv`` (accounts moved against the baseline, with the reason)
and whatever renderers add (``map.html``). It is first written to a hidden
temporary folder beside the target and then renamed into place; an existing
plan is replaced only once the new one is complete, so a failed or killed run
never leaves a partial folder and never destroys a good plan.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from models.errors import InputError
from models.plan import Plan

logger = logging.getLogger(__name__)

PLAN_FILES = ("assignments.csv", "territories.csv", "summary.json", "set_aside.csv", "changes.csv")
#: The files a folder must hold to be read back as a plan (older folders have no changes.csv).
REQUIRED_FILES = PLAN_FILES[:4]
#: Files `territory solve` adds through ``extra`` writers (maps.write_plan_map, maps.report, models.plan_excel);
#: not required by :func:`read_plan`, so folders written without them still read.
RENDERED_FILES = ("map.html", "report.html", "plan.xlsx")

#: A writer gets the temporary plan folder and the plan, and writes one file into it.
ExtraWriter = Callable[[Path, Plan], None]


def write_atomic(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Write one file whole or not at all: ``write`` fills a temporary file beside it, renamed into place.

    Parameters
    ----------
    path
        The file to write; an existing file is replaced only once the new one is complete.
    write
        Called with the temporary path; writes the whole file there.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; a plan file is shared like any other
        with open(tmp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_plan(
    plan: Plan,
    out_dir: Path | str,
    extra: Mapping[str, ExtraWriter] | None = None,
    on_file: Callable[[str], None] | None = None,
) -> Path:
    """Write a plan folder atomically.

    Parameters
    ----------
    plan
        The plan to write.
    out_dir
        Target folder. If it exists it is replaced, but only after the new
        folder is complete.
    extra
        File name -> writer for further files (e.g. the map); each is called
        with the temporary folder and the plan.
    on_file
        Called with each file's name before it is written (progress of a large plan's files).

    Returns
    -------
    pathlib.Path
        The folder written.
    """

    def fill(tmp: Path) -> None:
        files: dict[str, ExtraWriter] = {
            "assignments.csv": lambda path, plan: plan.assignments().to_csv(path, index=False),
            "territories.csv": lambda path, plan: plan.territories().to_csv(path, index=False),
            "set_aside.csv": lambda path, plan: plan.dataset.set_aside.to_csv(path, index=False),
            "changes.csv": lambda path, plan: plan.changes().to_csv(path, index=False),
            "summary.json": lambda path, plan: _write_summary(path, plan),
            **(extra or {}),
        }
        for name, writer in files.items():
            if on_file is not None:
                on_file(name)
            writer(tmp / name, plan)

    out_dir = write_folder(out_dir, fill)
    logger.info("plan written to %s", out_dir)
    return out_dir


def _write_summary(path: Path, plan: Plan) -> None:
    path.write_text(json.dumps(plan.summary(), indent=2, default=_json_default) + "\n")


def write_folder(out_dir: Path | str, fill: Callable[[Path], None]) -> Path:
    """Write a folder whole or not at all: ``fill`` writes into a hidden temporary folder, renamed into place.

    Parameters
    ----------
    out_dir
        Target folder; an existing one is replaced only once the new one is complete.
    fill
        Called with the temporary folder; writes every file there.

    Returns
    -------
    pathlib.Path
        The folder written (resolved).

    Raises
    ------
    InputError
        When ``out_dir`` exists and is not a folder.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError.single(
            "the output path exists and is not a folder", file=out_dir, hint="choose another --out folder"
        )
    recover(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; an output folder is shared like any other
    try:
        fill(tmp)
        _fsync_tree(tmp)
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an old folder is moved aside first and removed after."""
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-{os.getpid()}-", dir=out_dir.parent))
    old.rmdir()
    os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old, out_dir)  # put the good plan back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(path: Path) -> int | None:
    """Pid embedded in a temporary folder name (``.plan.tmp-<pid>-xxxx``), if any."""
    parts = path.name.rsplit(".", 1)[-1].split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def recover(out_dir: Path | str) -> None:
    """Clean up after a run that was killed while writing ``out_dir``.

    A run killed between moving the old plan aside and renaming the new one in
    leaves the old plan in ``.<name>.old-<pid>-*``: it is put back. Temporary
    folders of runs that are no longer alive are removed. Folders of a run
    still alive are left alone.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return
    for kind in ("old", "tmp"):
        for path in sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*")):
            pid = _owner_pid(path)
            if pid is not None and pid != os.getpid() and _pid_alive(pid):
                continue
            # an old folder is set aside only once complete: with no folder in its place, the swap was cut short
            if kind == "old" and not out_dir.exists():
                os.replace(path, out_dir)
                logger.warning("restored the previous plan %s after an interrupted write", out_dir)
            else:
                shutil.rmtree(path, ignore_errors=True)
                logger.info("removed %s left by an interrupted run", path)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass(frozen=True)
class PlanFolder:
    """A finished plan read back from disk."""

    path: Path
    assignments: pd.DataFrame
    territories: pd.DataFrame
    summary: dict[str, Any]


def read_plan(folder: Path | str) -> PlanFolder:
    """Read a plan folder written by :func:`write_plan`.

    Raises
    ------
    InputError
        When the folder or one of its files is missing.
    """
    folder = Path(folder)
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError.single(
            f"not a plan folder: missing {', '.join(missing)}",
            file=folder,
            hint="point at a folder written by 'territory solve'",
        )
    return PlanFolder(
        path=folder,
        assignments=pd.read_csv(folder / "assignments.csv", dtype={"account_id": str, "rep_id": str}),
        territories=pd.read_csv(folder / "territories.csv", dtype={"rep_id": str}),
        summary=json.loads((folder / "summary.json").read_text()),
    )
