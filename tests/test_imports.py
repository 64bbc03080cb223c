"""No module uses another module's underscore names.

The layers and the absence of import cycles are import-linter contracts (``[tool.importlinter]`` in
pyproject.toml, run by ``lint-imports`` in .ci/run); import-linter checks imports of modules, not of names,
so this test reads the source: ``from models.dataset import _helper`` and ``problem_module._helper`` are
refused anywhere in the packages, the tests and the benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("models", "optimizer", "maps", "territory", "tests", "benchmarks")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str, modules: set[str]) -> list[str]:
    """Uses of another module's underscore names in ``source``: ``from m import _x``, ``m._x``.

    Parameters
    ----------
    source
        Python source of one module.
    modules
        Dotted names of the project's modules (``models.dataset``); names from other modules are not checked.

    Returns
    -------
    list of str
        ``line: what`` for every use found.
    """
    tree = ast.parse(source)
    bound: dict[str, str] = {}  # local name -> project module it stands for
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in modules and node.level == 0:
            for alias in node.names:
                if _private(alias.name):
                    found.append((node.lineno, f"{node.lineno}: from {node.module} import {alias.name}"))
                if f"{node.module}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                found.append((node.lineno, f"{node.lineno}: {'.'.join([value.id, *reversed(chain)])}"))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "setattr" and len(node.args) >= 2:
            target, name = node.args[0], node.args[1]  # monkeypatch.setattr(module, "_name", ...)
            if (
                isinstance(target, ast.Name)
                and target.id in bound
                and isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and _private(name.value)
            ):
                found.append((node.lineno, f"{node.lineno}: setattr({target.id}, {name.value!r})"))
    return [use for _, use in sorted(found)]


def _project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_no_module_uses_another_modules_underscore_names() -> None:
    modules = _project_modules()
    assert {"models.dataset", "optimizer.problem", "maps", "territory.cli"} <= set(modules)
    found = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in sorted(modules.values())
        for use in private_uses(path.read_text(encoding="utf-8"), set(modules))
    ]
    assert found == [], "give what other modules use a public name:\n" + "\n".join(found)


def test_the_check_finds_each_kind_of_private_use() -> None:
    """Each form the check refuses is found (and a module's own or a third party's names are not)."""
    source = """
import optimizer.problem
import numpy as np
from models.dataset import _ids, read_reps
from optimizer import problem as problem_module
from models import dataset

optimizer.problem._bounds(1)
problem_module._smallest(2)
monkeypatch.setattr(dataset, "_CHUNK", 3)
np._private(4)
_own = read_reps
"""
    modules = {"models", "models.dataset", "optimizer", "optimizer.problem"}
    assert private_uses(source, modules) == [
        "4: from models.dataset import _ids",
        "8: optimizer.problem._bounds",
        "9: problem_module._smallest",
        "10: setattr(dataset, '_CHUNK')",
    ]
