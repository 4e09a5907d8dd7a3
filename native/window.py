"""Window/level to 8-bit grey (DICOM PS3.3 C.11.2.1.2 linear function).

``window_slice`` is single-threaded (one slice; no thread-pool wake-up, which
costs milliseconds after an idle pause); ``window_batch`` runs slices in
parallel for stacks of thumbnails or CPU rendering.  Both compute in float32:

    y = (x - (c - 0.5)) * 255 / (w - 1) + 127.5, clipped to [0, 255],
    rounded half up; MONOCHROME1 output is inverted (255 - y).

For ``w <= 1`` the function is a threshold at ``c - 0.5``.
``reference.window_u8`` is the NumPy oracle.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange


@kernel(inline="always")
def _params(center, width):
    if width <= 1.0:
        return np.float32(0.0), np.float32(center - 0.5), True
    scale = np.float32(255.0 / (width - 1.0))
    offset = np.float32(127.5 - (center - 0.5) * (255.0 / (width - 1.0)))
    return scale, offset, False


@kernel(inline="always")
def _map(x, scale, offset, thresh, invert):
    if thresh:
        y = np.float32(255.0) if np.float32(x) > offset else np.float32(0.0)
    else:
        y = np.float32(x) * scale + offset
        if y < 0.0:
            y = np.float32(0.0)
        elif y > 255.0:
            y = np.float32(255.0)
        y = np.floor(y + np.float32(0.5))
    if invert:
        y = np.float32(255.0) - y
    return np.uint8(y)


@kernel
def window_slice(src, center, width, invert, out):
    """Window one 2D slice into ``out`` (uint8, same shape), single-threaded.

    Parameters
    ----------
    src : ndarray (rows, cols)
        Values (any real dtype).
    center, width : float
        Window centre and width (DICOM semantics).
    invert : bool
        MONOCHROME1: invert the output.
    out : uint8 ndarray (rows, cols)

    Returns
    -------
    None
    """
    scale, offset, thresh = _params(center, width)
    for r in range(src.shape[0]):
        for c in range(src.shape[1]):
            out[r, c] = _map(src[r, c], scale, offset, thresh, invert)


@kernel(parallel=True)
def window_batch(src, center, width, invert, out):
    """Window a stack of slices in parallel (``prange`` over slices).

    Parameters
    ----------
    src : ndarray (k, rows, cols)
    center, width : float
    invert : bool
    out : uint8 ndarray (k, rows, cols)

    Returns
    -------
    None
    """
    scale, offset, thresh = _params(center, width)
    for k in prange(src.shape[0]):
        for r in range(src.shape[1]):
            for c in range(src.shape[2]):
                out[k, r, c] = _map(src[k, r, c], scale, offset, thresh, invert)


def window(src: np.ndarray, center: float, width: float, invert: bool = False,
           out: np.ndarray | None = None, parallel: bool | None = None) -> np.ndarray:
    """Window a 2D slice or a 3D stack to uint8.

    Parameters
    ----------
    src : ndarray, (rows, cols) or (k, rows, cols)
    center, width : float
    invert : bool
        Invert (MONOCHROME1).
    out : uint8 ndarray, optional
    parallel : bool, optional
        Use the parallel kernel; by default only for stacks of 4+ slices.

    Returns
    -------
    uint8 ndarray
    """
    if out is None:
        out = np.empty(src.shape, dtype=np.uint8)
    if src.ndim == 2:
        window_slice(src, float(center), float(width), bool(invert), out)
        return out
    if src.ndim != 3:
        raise ValueError("window() takes a 2D slice or a 3D stack")
    if parallel is None:
        parallel = src.shape[0] >= 4
    if parallel:
        window_batch(src, float(center), float(width), bool(invert), out)
    else:
        for k in range(src.shape[0]):
            window_slice(src[k], float(center), float(width), bool(invert), out[k])
    return out
