"""Sampling the phantom: HU at points, pixel centres of slices, stored pixel values.

The phantom itself (its shapes and HU values) is defined by the kernels of
:mod:`pocketpacs.native.phantom`.  :func:`phantom_hu` evaluates it at points
in patient coordinates (LPS, mm), :func:`slice_points` gives the pixel
centres of a slice, :func:`expected_series_hu` the volume a manifest series
should assemble to, and :func:`_stored_slice` the stored pixel values of one
slice (what the writer encodes): ``(HU - intercept) / slope`` exactly.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..native.phantom import phantom_points, phantom_slice


def phantom_hu(points_lps: np.ndarray) -> np.ndarray:
    """Evaluate the phantom at points in patient coordinates.

    The phantom is air (-1000 HU) outside an ellipsoidal body (40 HU) that
    holds a liver (62 HU, patient right, inferior), two lungs (-800 and
    -820 HU, the left one smaller), ribs (700..1000 HU, denser towards the
    head), a spine (900 HU, discs 80 HU) and a bright cube (1200 HU) at the
    patient's left-anterior-superior (x=83.1, y=-51.7, z=71.3 mm) so that any
    flipped or swapped axis shows.  All values are integers.

    Parameters
    ----------
    points_lps : ndarray, shape (..., 3)
        Points (x, y, z) in DICOM patient coordinates (LPS), millimetres.

    Returns
    -------
    ndarray of int16, shape ``points_lps.shape[:-1]``
        HU values.
    """
    p = np.ascontiguousarray(points_lps, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError("points_lps must have shape (..., 3)")
    flat = p.reshape(-1, 3)
    out = np.empty(flat.shape[0], dtype=np.int16)
    phantom_points(flat, out)
    return out.reshape(p.shape[:-1])


def slice_points(ipp: Sequence[float], iop: Sequence[float], pixel_spacing: Sequence[float],
                 rows: int, cols: int) -> np.ndarray:
    """Return the patient coordinates of the pixel centres of one slice.

    Parameters
    ----------
    ipp : sequence of 3 float
        Image Position (Patient): the centre of the first pixel.
    iop : sequence of 6 float
        Image Orientation (Patient): row direction cosines (the direction of
        increasing column index) then column direction cosines.
    pixel_spacing : sequence of 2 float
        Pixel Spacing: distance between rows, then between columns (mm).
    rows, cols : int
        Image size.

    Returns
    -------
    ndarray of float64, shape (rows, cols, 3)
        ``ipp + c * spacing[1] * iop[:3] + r * spacing[0] * iop[3:]`` for
        each row ``r`` and column ``c``.
    """
    o = np.asarray(ipp, dtype=np.float64).reshape(1, 1, 3)
    d = np.asarray(iop, dtype=np.float64)
    row_dir, col_dir = d[:3].reshape(1, 1, 3), d[3:6].reshape(1, 1, 3)
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    c = (np.arange(cols, dtype=np.float64) * dc).reshape(1, cols, 1)
    r = (np.arange(rows, dtype=np.float64) * dr).reshape(rows, 1, 1)
    return o + c * row_dir + r * col_dir


def expected_series_hu(series: dict) -> np.ndarray:
    """Return the volume a manifest series should assemble to, in HU.

    Parameters
    ----------
    series : dict
        One entry of ``manifest["series"]``.

    Returns
    -------
    ndarray of int16, shape (n, rows, cols)
        One image per entry of ``series["positions"]``: in instance-number
        order for single-frame series, in frame order for enhanced ones.
    """
    return np.stack([
        phantom_hu(slice_points(p, series["image_orientation_patient"], series["pixel_spacing"],
                                series["rows"], series["cols"]))
        for p in series["positions"]])


def _stored_slice(ipp: Sequence[float], iop: Sequence[float], pixel_spacing: Sequence[float],
                  rows: int, cols: int, slope: float, intercept: float, bits_stored: int,
                  pixel_representation: int) -> np.ndarray:
    """Stored pixel values ``(phantom_hu - intercept) / slope`` of one slice.

    *slope* must be 1/k and *intercept* an integer (so the stored values are
    exact integers); raises if a value does not fit the pixel format.
    """
    mul = round(1.0 / slope)
    if mul * slope != 1.0 or intercept != int(intercept):
        raise ValueError("slope must be 1/k and intercept an integer")
    if pixel_representation:
        lo, hi, dtype = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1, np.int16
    else:
        lo, hi, dtype = 0, (1 << bits_stored) - 1, np.uint16
    d = np.asarray(iop, dtype=np.float64)
    out = np.empty((rows, cols), dtype=dtype)
    vmin, vmax = phantom_slice(np.asarray(ipp, dtype=np.float64), d[:3].copy(), d[3:6].copy(),
                               float(pixel_spacing[0]), float(pixel_spacing[1]),
                               int(intercept), int(mul), out)
    if vmin < lo or vmax > hi:
        raise AssertionError("phantom values do not fit the pixel format")
    return out
