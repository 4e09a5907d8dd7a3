"""The synthetic phantom: its shapes and the kernels that sample it.

The phantom of :mod:`pocketpacs.synth` is defined here, in patient coordinates
(LPS, mm): an ellipsoidal body with a liver, two lungs, ribs, a spine and a
bright marker cube.  :func:`phantom_point` gives the HU value at one point,
:func:`phantom_points` at many, and :func:`phantom_slice` the stored pixel
values ``(HU - intercept) * mul`` of one slice at its pixel centres.
Arithmetic only; ``reference`` holds the NumPy versions the tests compare
against.
"""
from __future__ import annotations

import math

from ._jit import kernel

# Shapes of the phantom (LPS, mm): centres and semi-axes; the kernel
# multiplies by the reciprocals (the values are what they are: the phantom is
# defined by this code, and phantom_hu and the writer share it).
BODY = (0.0, 4.1, 0.0, 161.3, 113.7, 283.1)
LIVER = (-62.7, -14.3, -71.9, 58.1, 51.3, 47.9)
LUNG_L = (63.9, 12.7, 48.3, 39.1, 56.3, 68.7)
LUNG_R = (-61.3, 10.9, 43.1, 45.7, 59.9, 73.3)
RIBS = (143.9, 99.7, 150.3)  # semi-axes of the outer ellipse, half-length
SPINE = (0.0, 78.3, 17.9, 240.7)  # centre x, y, radius, half-length
MARKER = (83.1, -51.7, 71.3, 14.9)  # centre, half side


def _inv(shape: tuple[float, ...]) -> tuple[float, ...]:
    return shape[:3] + tuple(1.0 / v for v in shape[3:])


_BX, _BY, _BZ, _IBX, _IBY, _IBZ = _inv(BODY)
_LVX, _LVY, _LVZ, _ILVX, _ILVY, _ILVZ = _inv(LIVER)
_LLX, _LLY, _LLZ, _ILLX, _ILLY, _ILLZ = _inv(LUNG_L)
_LRX, _LRY, _LRZ, _ILRX, _ILRY, _ILRZ = _inv(LUNG_R)
_IRX, _IRY, _RZ = 1.0 / RIBS[0], 1.0 / RIBS[1], RIBS[2]
_SX, _SY, _ISR, _SZ = SPINE[0], SPINE[1], 1.0 / SPINE[2], SPINE[3]
_MX, _MY, _MZ, _MH = MARKER


@kernel(inline="always")
def phantom_point(x, y, z):
    """HU value of the phantom at one point (LPS, mm).

    Written without early returns (selects rather than branches) so that the
    compiler can vectorise the loops that call it.
    """
    # body: ellipsoid; everything outside it is air
    bx = (x - _BX) * _IBX
    by = (y - _BY) * _IBY
    bz = (z - _BZ) * _IBZ
    body = bx * bx + by * by + bz * bz <= 1.0
    # liver: patient right (-x), slightly anterior, inferior
    lx = (x - _LVX) * _ILVX
    ly = (y - _LVY) * _ILVY
    lz = (z - _LVZ) * _ILVZ
    v = 62 if lx * lx + ly * ly + lz * lz <= 1.0 else 40
    # lungs (they do not overlap): the left one (+x) is smaller than the right one
    lx = (x - _LRX) * _ILRX
    ly = (y - _LRY) * _ILRY
    lz = (z - _LRZ) * _ILRZ
    v = -820 if lx * lx + ly * ly + lz * lz <= 1.0 else v
    lx = (x - _LLX) * _ILLX
    ly = (y - _LLY) * _ILLY
    lz = (z - _LLZ) * _ILLZ
    v = -800 if lx * lx + ly * ly + lz * lz <= 1.0 else v
    # ribs: an elliptic cylinder shell cut into bands; denser towards the head
    rx = x * _IRX
    ry = (y - _BY) * _IRY
    r2 = rx * rx + ry * ry
    zz = z + _RZ
    rib = ((abs(z) <= _RZ) & (r2 >= 0.81) & (r2 <= 1.0)
           & (zz - 19.3 * math.floor(zz * (1.0 / 19.3)) < 13.1))
    v = 700 + int(math.floor(zz * (300.0 / (2.0 * _RZ)) + 0.5)) if rib else v
    # spine: posterior cylinder of vertebrae separated by discs
    sx = (x - _SX) * _ISR
    sy = (y - _SY) * _ISR
    zs = z + _SZ
    spine = (sx * sx + sy * sy <= 1.0) & (abs(z) <= _SZ)
    disc = zs - 31.7 * math.floor(zs * (1.0 / 31.7)) < 4.1
    v = (80 if disc else 900) if spine else v
    # the asymmetric marker: a bright cube at patient left-anterior-superior
    marker = (abs(x - _MX) <= _MH) & (abs(y - _MY) <= _MH) & (abs(z - _MZ) <= _MH)
    v = 1200 if marker else v
    return v if body else -1000


@kernel
def phantom_points(pts, out):
    """HU values of the phantom at the points ``pts[i]`` (LPS, mm) into ``out[i]``."""
    for i in range(pts.shape[0]):
        out[i] = phantom_point(pts[i, 0], pts[i, 1], pts[i, 2])


@kernel
def phantom_slice(ipp, row, col, dr, dc, intercept, mul, out):
    """Stored values of one slice: ``(phantom - intercept) * mul`` at the pixel centres.

    The pixel centres are computed with the same floating-point operations,
    in the same order, as :func:`pocketpacs.synth.slice_points` (so the values
    are those of ``phantom_hu(slice_points(...))``).  Returns the smallest and largest
    stored value (before the cast to ``out.dtype``).
    """
    rows, cols = out.shape
    lo = 1 << 30
    hi = -(1 << 30)
    for r in range(rows):
        rr = r * dr
        for c in range(cols):
            cc = c * dc
            x = (ipp[0] + cc * row[0]) + rr * col[0]
            y = (ipp[1] + cc * row[1]) + rr * col[1]
            z = (ipp[2] + cc * row[2]) + rr * col[2]
            v = (phantom_point(x, y, z) - intercept) * mul
            lo = min(lo, v)
            hi = max(hi, v)
            out[r, c] = v
    return lo, hi
