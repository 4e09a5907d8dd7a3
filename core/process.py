"""Settings for a process that PocketPACS owns (the command line, the app, benchmarks).

Importing the library changes nothing of the process; a program of ours
calls these once at start, before any kernel runs.
"""
from __future__ import annotations

import os
import sys


def prefer_passive_waits() -> None:
    """Make OpenMP threads sleep, not spin, between parallel regions.

    Parallel kernels run on numba's OpenMP threads, which by default spin
    after each parallel region and take the core the caller's thread needs
    next; on a 2-core machine that cost 20-25 % of an import's wall time
    (measured).  It must be set before the OpenMP runtime loads, so only a
    program that owns its process calls this, never the library on import.
    An explicit ``OMP_WAIT_POLICY`` in the environment wins.
    """
    if "numba.np.ufunc.omppool" in sys.modules:
        return  # the runtime is loaded: too late to matter
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
