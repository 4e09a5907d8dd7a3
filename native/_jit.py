"""The only place that imports numba.

Sets the on-disk kernel cache to the user's cache folder (unless
``NUMBA_CACHE_DIR`` is already set) before numba is imported, so compiled
kernels are reused across runs and nothing is written beside the sources.
"""
from __future__ import annotations

import os


def _set_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    try:
        import platformdirs

        path = os.path.join(platformdirs.user_cache_dir("pocketpacs", appauthor=False), "numba")
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = path
    except OSError:
        pass  # numba falls back to __pycache__ or no cache


_set_cache_dir()

# Parallel kernels run on numba's OpenMP threads, which by default spin after
# each parallel region and take the core the caller's thread needs next; on a
# 2-core machine that cost 20-25 % of an import's wall time (measured).
# Passive waiting must be set before the OpenMP runtime loads; an explicit
# setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402

njit = numba.njit
prange = numba.prange


def kernel(*args, **kwargs):
    """``numba.njit`` with PocketPACS' defaults: ``cache=True, nogil=True``."""
    kwargs.setdefault("cache", True)
    kwargs.setdefault("nogil", True)
    if args and callable(args[0]):
        return numba.njit(**kwargs)(args[0])
    return numba.njit(*args, **kwargs)
