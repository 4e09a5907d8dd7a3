"""Resampling after the pixels are read: in-plane slice shifts and linear z resampling.

:func:`shift_slices` undoes a gantry tilt (bilinear in-plane shift per
slice); :func:`resample_z` and its pieces :func:`z_weights` and
:func:`blend` bring irregularly spaced slices onto equal spacing, in float32
blocks (integers rounded and clipped), so temporaries stay small.
"""
from __future__ import annotations

import numpy as np

def shift_slices(arr: np.ndarray, shift: np.ndarray, fill: float, samples: int = 1) -> None:
    """Shift every slice in-plane, in place, by bilinear interpolation.

    Parameters
    ----------
    arr : ndarray, ([t,] k, rows, cols[, samples])
        3D/4D array; for 4D arrays every volume is shifted the same way.
    shift : ndarray, (k, 2)
        ``(d_col, d_row)`` in pixels: ``out[r, c] = src[r - d_row, c - d_col]``.
    fill : float
        Value for pixels that come from outside the source slice.
    samples : int
        Samples per pixel (a trailing colour axis when > 1).
    """
    k = shift.shape[0]
    tail = 3 if samples > 1 else 2
    vols = arr.reshape((-1, k) + arr.shape[arr.ndim - tail:])
    for v in range(vols.shape[0]):
        for s in range(k):
            dc, dr = float(shift[s, 0]), float(shift[s, 1])
            if abs(dc) < 1e-6 and abs(dr) < 1e-6:
                continue
            vols[v, s] = _shift2d(vols[v, s], dc, dr, fill)


def _shift2d(img: np.ndarray, dc: float, dr: float, fill: float) -> np.ndarray:
    rows, cols = img.shape[0], img.shape[1]
    src = img.astype(np.float32)
    # source coordinates of the output pixels
    sc = np.arange(cols, dtype=np.float64) - dc
    sr = np.arange(rows, dtype=np.float64) - dr
    c0 = np.floor(sc).astype(np.int64)
    r0 = np.floor(sr).astype(np.int64)
    fc = (sc - c0).astype(np.float32)
    fr = (sr - r0).astype(np.float32)

    def take_cols(a: np.ndarray, ci: np.ndarray) -> np.ndarray:
        ok = (ci >= 0) & (ci < cols)
        out = a[:, np.clip(ci, 0, cols - 1)]
        out[:, ~ok] = fill
        return out

    def take_rows(a: np.ndarray, ri: np.ndarray) -> np.ndarray:
        ok = (ri >= 0) & (ri < rows)
        out = a[np.clip(ri, 0, rows - 1)]
        out[~ok] = fill
        return out

    tail = (None,) * (img.ndim - 2)
    wc0, wc1 = (1 - fc)[(None, slice(None)) + tail], fc[(None, slice(None)) + tail]
    wr0, wr1 = (1 - fr)[(slice(None), None) + tail], fr[(slice(None), None) + tail]
    a = take_cols(src, c0) * wc0 + take_cols(src, c0 + 1) * wc1
    b = take_rows(a, r0) * wr0 + take_rows(a, r0 + 1) * wr1
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.rint(b), info.min, info.max).astype(img.dtype)
    return b.astype(img.dtype)


def resample_z(arr: np.ndarray, z_source: np.ndarray, z_target: np.ndarray,
               four_d: bool = False) -> np.ndarray:
    """Linear interpolation along the slice axis onto ``z_target``.

    Parameters
    ----------
    arr : ndarray, ([t,] k, rows, cols[, samples])
    z_source : ndarray, (k,)
        Ascending source slice positions (mm).
    z_target : ndarray, (m,)
        Target positions inside ``[z_source[0], z_source[-1]]``.
    four_d : bool
        Whether ``arr`` has a leading volume axis.

    Returns
    -------
    ndarray
        Same dtype as ``arr`` (integers rounded), slice axis of length m.
    """
    axis = 1 if four_d else 0
    j, w = z_weights(z_source, z_target)
    out_shape = list(arr.shape)
    out_shape[axis] = z_target.shape[0]
    out = np.empty(out_shape, dtype=arr.dtype)
    for m in range(z_target.shape[0]):
        dst = out[m] if axis == 0 else out[:, m]
        a, b = np.take(arr, j[m], axis=axis), np.take(arr, j[m] + 1, axis=axis)
        if dst.flags.c_contiguous:
            blend(a, b, w[m], out=dst)
        else:
            dst[...] = blend(a, b, w[m])
    return out


def z_weights(z_source: np.ndarray, z_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source pairs and weights of a linear resampling along z.

    Parameters
    ----------
    z_source : ndarray, (k,)
        Ascending source positions, ``k >= 2``.
    z_target : ndarray, (m,)
        Target positions.

    Returns
    -------
    j : ndarray of int, (m,)
        Target ``m`` lies between source slices ``j[m]`` and ``j[m] + 1``
        (non-decreasing in ``m`` for ascending targets).
    w : ndarray of float32, (m,)
        Weight of slice ``j[m] + 1``, in ``[0, 1]``.
    """
    k = z_source.shape[0]
    j = np.clip(np.searchsorted(z_source, z_target, side="right") - 1, 0, k - 2)
    w = ((z_target - z_source[j]) / (z_source[j + 1] - z_source[j])).astype(np.float32)
    return j, np.clip(w, 0.0, 1.0)


def blend(a: np.ndarray, b: np.ndarray, w: float, out: np.ndarray | None = None,
          block: int = 1 << 13) -> np.ndarray:
    """``a * (1 - w) + b * w`` computed in float32, rounded and clipped when
    ``a`` is an integer array, stored into *out*.

    Works through blocks of *block* elements, so the float32 temporaries stay
    small whatever the slice size (peak memory while resampling).

    Parameters
    ----------
    a, b : ndarray
        Two slices of the same shape and dtype.
    w : float
        Weight of ``b``.
    out : ndarray, optional
        Destination of ``a``'s shape (default: a new array of ``a``'s dtype).
    block : int
        Elements per step.

    Returns
    -------
    ndarray
        *out*.
    """
    if out is None:
        out = np.empty(a.shape, dtype=a.dtype)
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    w1, w0 = np.float32(w), np.float32(1) - np.float32(w)
    integer = np.issubdtype(a.dtype, np.integer)
    info = np.iinfo(a.dtype) if integer else None
    n = fa.shape[0]
    va = np.empty(min(block, n), dtype=np.float32)
    vb = np.empty_like(va)
    for i in range(0, n, block):
        e = min(n, i + block)
        x, y = va[:e - i], vb[:e - i]
        np.multiply(fa[i:e], w0, out=x, dtype=np.float32, casting="unsafe")
        np.multiply(fb[i:e], w1, out=y, dtype=np.float32, casting="unsafe")
        np.add(x, y, out=x)
        if info is not None:
            np.rint(x, out=x)
            np.clip(x, info.min, info.max, out=x)
        fo[i:e] = x
    return out
