"""Value ranges and value counts of a whole volume, in parallel.

The histogram window (``pocketpacs.images.windows.robust_range``) counts every
value of a volume: a 1000 x 512 x 512 CT is half a gigabyte, and NumPy's
``min``/``max``/``bincount`` over it took several passes and most of the
series' assembly time.  These kernels make one pass each, over parts of the
flat array in parallel (each part keeps its own result, merged at the end):

* :func:`value_range`: the lowest and highest finite value, and how many
  finite values there are, leaving out the values of ``drop`` (with nothing
  left out, NumPy's vectorised ``min``/``max`` when both are finite);
* :func:`int_counts`: one bin per integer value from ``lo`` (integers only);
* :func:`float_counts`: counts over equally spaced edges of the finite
  values not in ``drop``, values outside left out, exactly as
  ``numpy.histogram`` bins them (its index ``floor((v - lo) * bins / (hi -
  lo))`` corrected against the edges, the last bin closed).

Only arithmetic here; ``reference.value_range``, ``reference.int_counts`` and
``reference.float_counts`` are the NumPy oracles the tests compare against.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange


@kernel(inline="always")
def _dropped(v, drop):
    for j in range(drop.size):
        if v == drop[j]:
            return True
    return False


@kernel(parallel=True)
def _range_parts(flat, drop, parts, lo_out, hi_out, n_out):
    size = flat.size
    step = (size + parts - 1) // parts
    for p in prange(parts):
        lo = np.inf
        hi = -np.inf
        n = 0
        for i in range(p * step, min(size, (p + 1) * step)):
            v = np.float64(flat[i])
            if v - v != 0.0 or _dropped(v, drop):     # NaN or infinite, or left out
                continue
            n += 1
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        lo_out[p] = lo
        hi_out[p] = hi
        n_out[p] = n


@kernel(parallel=True)
def _int_count_parts(flat, lo, counts):
    parts, nbins = counts.shape
    size = flat.size
    step = (size + parts - 1) // parts
    for p in prange(parts):
        for i in range(p * step, min(size, (p + 1) * step)):
            k = np.int64(flat[i]) - lo
            if 0 <= k < nbins:
                counts[p, k] += 1


@kernel(parallel=True)
def _float_count_parts(flat, drop, edges, counts):
    parts, nbins = counts.shape
    size = flat.size
    step = (size + parts - 1) // parts
    lo = edges[0]
    hi = edges[nbins]
    norm = nbins / (hi - lo)
    for p in prange(parts):
        for i in range(p * step, min(size, (p + 1) * step)):
            v = np.float64(flat[i])
            if v - v != 0.0 or v < lo or v > hi or _dropped(v, drop):
                continue
            k = np.int64((v - lo) * norm)
            if k >= nbins:
                k = nbins - 1
            # numpy.histogram's correction for rounding against the edges
            if v < edges[k]:
                k -= 1
            elif k < nbins - 1 and v >= edges[k + 1]:
                k += 1
            counts[p, k] += 1


def _parts(flat: np.ndarray, bins: int = 0) -> int:
    """Parts to split ``flat`` into: one per thread, fewer for small arrays, and
    per-part bins kept to a sixteenth of the array's bytes."""
    import numba

    n = max(1, min(numba.get_num_threads(), flat.size // (1 << 16) or 1))
    if bins:
        n = max(1, min(n, flat.nbytes // (16 * 8 * bins)))
    return n


def _flat(arr: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(arr).reshape(-1)
    return flat.view(np.uint8) if flat.dtype.kind == "b" else flat


def value_range(arr: np.ndarray, drop: tuple[float, ...] = ()) -> tuple[float, float, int]:
    """The lowest and highest finite value of ``arr`` and their count, ``drop`` left out.

    Parameters
    ----------
    arr : ndarray
        Any shape; integers, floats or booleans.
    drop : tuple of float
        Values not counted (a padding value, the background).

    Returns
    -------
    (float, float, int)
        ``(inf, -inf, 0)`` when no value is left.
    """
    flat = _flat(arr)
    parts = _parts(flat)
    if not drop and flat.size:
        # nothing left out: NumPy's vectorised min and max beat one branchy pass,
        # and stand when they are finite (no NaN or infinity among the values)
        lo_v, hi_v = float(flat.min()), float(flat.max())
        if np.isfinite(lo_v) and np.isfinite(hi_v):
            return lo_v, hi_v, int(flat.size)
    lo, hi, n = np.empty(parts), np.empty(parts), np.zeros(parts, np.int64)
    _range_parts(flat, np.asarray(drop, np.float64), parts, lo, hi, n)
    return float(lo.min()), float(hi.max()), int(n.sum())


def int_counts(arr: np.ndarray, lo: int, nbins: int) -> np.ndarray:
    """How many values of ``arr`` equal ``lo``, ``lo + 1``, ... ``lo + nbins - 1``.

    Parameters
    ----------
    arr : ndarray of integers (or booleans)
    lo : int
    nbins : int

    Returns
    -------
    ndarray of int64, shape (nbins,)
        Values outside the bins are not counted.
    """
    flat = _flat(arr)
    if flat.dtype.kind not in "iu":
        raise TypeError("int_counts counts integer values")
    counts = np.zeros((_parts(flat, nbins), int(nbins)), np.int64)
    _int_count_parts(flat, np.int64(lo), counts)
    return counts.sum(axis=0)


def float_counts(arr: np.ndarray, edges: np.ndarray, drop: tuple[float, ...] = ()) -> np.ndarray:
    """``numpy.histogram(values, bins=edges)[0]`` of the finite values of ``arr`` not in ``drop``.

    Parameters
    ----------
    arr : ndarray
    edges : ndarray of float64
        Equally spaced, increasing edges (``numpy.linspace(lo, hi, bins + 1)``);
        the last bin includes its right edge; values outside are not counted.
    drop : tuple of float

    Returns
    -------
    ndarray of int64, shape (len(edges) - 1,)
    """
    edges = np.asarray(edges, np.float64)
    if edges.size < 2 or not edges[-1] > edges[0]:
        raise ValueError("float_counts needs at least two increasing edges")
    flat = _flat(arr)
    bins = edges.size - 1
    counts = np.zeros((_parts(flat, bins), bins), np.int64)
    _float_count_parts(flat, np.asarray(drop, np.float64), edges, counts)
    return counts.sum(axis=0)
