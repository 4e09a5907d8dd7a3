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

Mapping a page again costs a minor fault (about 3 us, the kernel mapping
its neighbours too): a million-file import that dropped its map pages after
every chunk of 2,000 files took about 840,000 faults.  So a writer drops
them only while the process is over a ceiling (:func:`over_ceiling`, which
reads ``/proc/self/statm``): the archive file's size plus
:data:`SMALL_CEILING`, at most :data:`MAP_RSS_CEILING`.  Below it the pages
stay mapped and later parts of the import find them there (a million files:
about 765,000 faults; in-process imports about 1 s faster of 25-29 s).
"""
from __future__ import annotations

import mmap
import os
import sys

_MADVISE = None
#: Resident set (bytes) above which a writer always drops the map pages it has
#: read (:func:`ceiling`; a quarter of the machine's memory where that is less).
#: A million-file import peaks 60-100 MB above it (what is mapped between two looks).
MAP_RSS_CEILING = 850 << 20
#: Below that, a writer drops them above this plus the archive file's size:
#: a small archive's import keeps a small resident set (100,000 files:
#: 363-365 MB against 370-371 MB dropping after every chunk; 388-389 MB with
#: 256 MB here, against a target of 400 MB).
SMALL_CEILING = 224 << 20
_LARGEST: list[int] = []


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
    done = 0
    for a, b in (mapped_ranges(path) if ranges is None else ranges):
        if fn(a, b - a, mmap.MADV_DONTNEED) == 0:
            done += b - a
    return done


def _largest() -> int:
    """:data:`MAP_RSS_CEILING`, or a quarter of the physical memory where that is less."""
    if not _LARGEST:
        try:
            phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            phys = 0
        _LARGEST.append(min(MAP_RSS_CEILING, phys // 4) if phys > 0 else MAP_RSS_CEILING)
    return _LARGEST[0]


def ceiling(archive_bytes: int) -> int:
    """The resident set (bytes) above which a writer of an archive file of
    *archive_bytes* drops its map pages: :data:`SMALL_CEILING` plus the
    file's size, at most :data:`MAP_RSS_CEILING` (or a quarter of the
    machine's memory where that is less)."""
    return min(_largest(), SMALL_CEILING + max(0, archive_bytes))


def resident_bytes() -> int | None:
    """This process's resident set in bytes (``/proc/self/statm``), or None where there is none."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * mmap.PAGESIZE   # (statm counts pages)
    except (OSError, ValueError, IndexError):
        return None


def over_ceiling(path: os.PathLike[str] | str) -> bool:
    """Whether a writer of the archive file *path* (``data.mdb``) should drop
    its map pages now: the process is over :func:`ceiling` for the file's
    size, or its resident set cannot be read (then always: where there is
    nothing to drop, dropping costs nothing)."""
    rss = resident_bytes()
    if rss is None:
        return True
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    return rss > ceiling(size)
