"""One line describing the machine and the package versions a benchmark ran with."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def version(package: str) -> str:
    """Installed version of a package, or 'not installed'."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe(packages: tuple[str, ...] = ("ortools",)) -> str:
    """CPU model, cores, Python and the given packages' versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    libs = ", ".join(f"{p} {version(p)}" for p in packages)
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {libs}"
