"""Whole-volume arrays of the server's volume jobs: made without stalls, and reused.

A volume job (:mod:`.volumes`) reads a series into one array of the whole
volume (524 MB for 1000 slices of 512x512 int16).  ``numpy.empty`` asks the
kernel for transparent huge pages on an array that large (``madvise``), and
with memory fragmented by the page cache the kernel then compacts memory as
the array is first written: 3.2-3.8 s of system time for 524 MB on the
development machine (0.06 s when huge pages happened to be free, so the cost
of an open varied tenfold from one open to the next).  :func:`new_array` maps
anonymous memory without that advice (ordinary pages: 0.3-0.9 s of page
faults for 524 MB), or hands back the array of a job the registry dropped
when it has the same size (:func:`recycle`: nothing to fault in at all).  At
most one such array is kept (:data:`POOL_ARRAYS`).
"""
from __future__ import annotations

import mmap
import threading
from math import prod

import numpy as np

#: Arrays of dropped jobs kept for the next job of the same size.
POOL_ARRAYS = 1
#: Smaller arrays come from numpy.empty (no pool: their faults cost little).
MAPPED_BYTES = 16 << 20

_pool: list[np.ndarray] = []
_lock = threading.Lock()


def new_array(shape: tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """An uninitialised C-contiguous array: a recycled one of the same byte size,
    else freshly mapped memory (numpy.empty below :data:`MAPPED_BYTES`).

    Parameters
    ----------
    shape : tuple of int
        Array shape.
    dtype : numpy.dtype or str
        Element type.

    Returns
    -------
    numpy.ndarray
        Writable; its values are undefined (a recycled array holds a dropped
        job's voxels until overwritten: the job marks slices ready only once read).
    """
    dt = np.dtype(dtype)
    nbytes = prod(shape) * dt.itemsize
    if nbytes < MAPPED_BYTES:
        return np.empty(shape, dtype=dt)
    with _lock:
        for i, a in enumerate(_pool):
            if a.nbytes == nbytes:
                base = _pool.pop(i)
                return base.view(np.uint8).view(dt).reshape(shape)
    buf = mmap.mmap(-1, nbytes)   # anonymous, private: no huge-page advice, zero pages on demand
    return np.frombuffer(buf, dtype=dt).reshape(shape)


def recycle(array: np.ndarray) -> None:
    """Keep the array of a dropped job for :func:`new_array` (only when the caller
    holds the last reference: see :meth:`VolumeJob.release_array`).

    Parameters
    ----------
    array : numpy.ndarray
        A job's whole-volume array, no longer readable through its job.
    """
    if array.nbytes < MAPPED_BYTES or not array.flags.c_contiguous or not array.flags.writeable:
        return
    with _lock:
        _pool.append(array.reshape(-1))
        del _pool[:-POOL_ARRAYS]


def pooled() -> int:
    """Number of arrays kept for reuse.

    Returns
    -------
    int
    """
    with _lock:
        return len(_pool)
