"""The machine and the code a benchmark run was made on, for its JSON.

:func:`machine` describes the computer (CPU model, cores, memory, OS,
Python and the versions of the libraries that decide the figures) and
:func:`code` the code measured: the git commit when the benchmarks run from a
checkout (with whether it had uncommitted changes), else the installed
package version.  The load average is taken by the runner before and after
the run: on a shared machine other work changes every figure.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Libraries whose version is recorded (missing ones as None).
LIBRARIES = ("numpy", "numba", "pydicom", "lmdb", "gdcm", "SimpleITK", "playwright", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):
        return None


def _version(name: str) -> str | None:
    from importlib import metadata

    dist = {"gdcm": "python-gdcm"}.get(name, name)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python and library versions.

    Returns
    -------
    dict
        ``{"cpu", "cores", "memory_gb", "os", "python", "libraries": {name: version}}``.
    """
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": {n: _version(n) for n in LIBRARIES},
    }


def code() -> dict[str, Any]:
    """The code measured: ``{"version", "commit", "dirty"}`` (commit None outside a checkout)."""
    import pocketpacs

    out: dict[str, Any] = {"version": pocketpacs.__version__, "commit": None, "dirty": None}
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return out
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=20)
        if head.returncode == 0:
            out["commit"] = head.stdout.strip()
            st = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=20)
            out["dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out
