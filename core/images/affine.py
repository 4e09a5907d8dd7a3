"""Patient-space geometry: slice normals, affines and their corners.

``affine_lps`` maps the index vector ``(col, row, slice, 1)`` to DICOM
patient coordinates (LPS, mm); ``affine_ras = diag(-1, -1, 1, 1) @
affine_lps``: with the array transposed to ``(col, row, slice[, t])`` it is
the affine nibabel expects.  The slice normal is ``n = row_cosines x
col_cosines``.  Also :class:`GeometryError`, raised for input that has no
geometry (degenerate orientation, bad frame-table arrays, unknown policy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import PocketPacsError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class GeometryError(PocketPacsError):
    """Frames cannot be given a geometry (bad input arrays)."""


def normal_from_orientation(iop: Sequence[float]) -> np.ndarray:
    """Slice normal ``row_cosines x col_cosines`` (unit vector).

    Parameters
    ----------
    iop : sequence of 6 float
        Image Orientation (Patient).

    Returns
    -------
    ndarray, (3,)

    Raises
    ------
    GeometryError
        When the two cosine vectors are degenerate (zero or parallel).
    """
    a = np.asarray(iop, dtype=np.float64)
    r, c = a[:3], a[3:6]
    n = np.cross(r, c)
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm < 1e-6:
        raise GeometryError("degenerate Image Orientation (Patient)")
    return n / norm


def orthonormal_cosines(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosines, column cosines (made orthogonal, unit) and the normal."""
    a = np.asarray(iop, dtype=np.float64)
    r = a[:3] / np.linalg.norm(a[:3])
    c = a[3:6] - np.dot(a[3:6], r) * r
    c = c / np.linalg.norm(c)
    return r, c, np.cross(r, c)


def affine_from(iop: Sequence[float], origin: Sequence[float], pixel_spacing: Sequence[float],
                slice_vector: Sequence[float]) -> np.ndarray:
    """LPS affine mapping ``(col, row, slice, 1)`` to mm.

    Parameters
    ----------
    iop : sequence of 6 float
        Image Orientation (Patient).
    origin : sequence of 3 float
        Position of voxel ``(0, 0, 0)``.
    pixel_spacing : sequence of 2 float
        Pixel Spacing (row spacing, column spacing).
    slice_vector : sequence of 3 float
        Displacement from one slice to the next.

    Returns
    -------
    ndarray, (4, 4)
    """
    a = np.asarray(iop, dtype=np.float64)
    m = np.eye(4)
    m[:3, 0] = a[:3] * float(pixel_spacing[1])
    m[:3, 1] = a[3:6] * float(pixel_spacing[0])
    m[:3, 2] = np.asarray(slice_vector, dtype=np.float64)
    m[:3, 3] = np.asarray(origin, dtype=np.float64)
    return m


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """``diag(-1, -1, 1, 1) @ affine_lps``."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def corner_voxels_world(affine: np.ndarray, shape_crk: Sequence[int]) -> np.ndarray:
    """World coordinates of the 8 corner voxel centres.

    Parameters
    ----------
    affine : ndarray, (4, 4)
        Maps ``(col, row, slice, 1)`` (or any ``(i, j, k, 1)``) to mm.
    shape_crk : sequence of 3 int
        Extent of each of the three indexed axes, in the affine's order.

    Returns
    -------
    ndarray, (8, 3)
        In index order ``(i, j, k)`` over ``{0, n-1}^3``.  Compare two grids
        that may index their axes differently with :func:`corner_distance`.
    """
    ijk = np.array([[i, j, k] for i in (0, shape_crk[0] - 1) for j in (0, shape_crk[1] - 1)
                    for k in (0, shape_crk[2] - 1)], dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    return ijk @ a[:3, :3].T + a[:3, 3]


def corner_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Hausdorff distance (mm) between two sets of corner points."""
    d = np.linalg.norm(np.asarray(a)[:, None, :] - np.asarray(b)[None, :, :], axis=2)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))
