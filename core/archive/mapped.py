"""Keeping the archive's memory map out of a long writer's resident set.

LMDB reads its database through a read-only shared memory map of
``data.mdb``.  Every page a transaction looks at (a write's B-tree descent
reads the leaf it changes first) stays mapped in the process afterwards and
counts in its RSS, so a process importing a million files ends up with the
whole database resident (about 1 KB per instance) although it never needs
more than the pages of one commit.  :func:`release_map_pages` tells the
kernel (``madvise(MADV_DONTNEED)``) that this process no longer needs those
pages: for a shared file mapping that only drops the page-table entries, the
pages stay in the page cache and the next access maps them again (a minor
fault), so nothing is lost and nothing is read from disk again.  Linux only;
elsewhere it does nothing.
"""
from __future__ import annotations

import os
import sys

_MADVISE = None


def _madvise():
    """libc's ``madvise`` with its argument types, or None where there is none."""
    global _MADVISE
    if _MADVISE is None:
        import ctypes

        try:
            fn = ctypes.CDLL(None, use_errno=True).madvise
        except (OSError, AttributeError):
            _MADVISE = False
            return None
        fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        fn.restype = ctypes.c_int
        _MADVISE = fn
    return _MADVISE or None


def mapped_ranges(path: os.PathLike[str] | str) -> list[tuple[int, int]]:
    """Address ranges at which this process maps the file *path* (Linux ``/proc/self/maps``).

    Parameters
    ----------
    path : path
        The mapped file (``data.mdb``).

    Returns
    -------
    list of (int, int)
        ``(start, end)`` of each mapping; empty where ``/proc`` has none.
    """
    real = os.path.realpath(os.fspath(path))
    out = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                parts = line.rstrip("\n").split(maxsplit=5)
                if len(parts) == 6 and parts[5] == real:
                    a, b = parts[0].split("-")
                    out.append((int(a, 16), int(b, 16)))
    except OSError:
        return []
    return out


def release_map_pages(path: os.PathLike[str] | str, ranges: list[tuple[int, int]] | None = None) -> int:
    """Drop this process's mapped pages of *path* from its RSS (they stay in the page cache).

    Parameters
    ----------
    path : path
        The mapped file (``data.mdb``), opened read-only and shared (LMDB
        without ``writemap``): nothing unwritten lives in those pages.
    ranges : list of (int, int), optional
        Its mappings as :func:`mapped_ranges` found them, when the caller
        knows they have not moved since (LMDB does not remap its file while a
        write transaction is open); read from ``/proc`` (about 1 ms) if not given.

    Returns
    -------
    int
        Bytes of address space advised (0 off Linux, or when the file is not mapped).
    """
    if not sys.platform.startswith("linux"):
        return 0
    fn = _madvise()
    if fn is None:
        return 0
    import mmap

    done = 0
    for a, b in (mapped_ranges(path) if ranges is None else ranges):
        if fn(a, b - a, mmap.MADV_DONTNEED) == 0:
            done += b - a
    return done
