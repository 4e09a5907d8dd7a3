"""Series thumbnails: the middle slice windowed to 8 bits, made in memory.

Nothing is written to disk (no-trace mode): :func:`thumbnail` gives the
array, :func:`thumbnail_png` PNG bytes, :func:`shrink` the box filter.
"""
from __future__ import annotations

import numpy as np

from .volume import Volume

#: Longest side of a thumbnail (pixels).
THUMB_SIZE = 128


def thumbnail(vol: Volume, size: int = THUMB_SIZE) -> np.ndarray:
    """Middle slice of a volume, windowed with its default preset and shrunk.

    Parameters
    ----------
    vol : Volume
    size : int
        Longest side of the result (the image is never enlarged).

    Returns
    -------
    uint8 ndarray
        ``(h, w)`` grey or ``(h, w, 3)`` colour.
    """
    from .export import slice_image

    img = slice_image(vol)
    return shrink(img, size)


def shrink(img: np.ndarray, size: int) -> np.ndarray:
    """Shrink an 8-bit image so its longest side is at most ``size`` (box filter)."""
    h, w = img.shape[:2]
    f = int(np.ceil(max(h, w) / float(size)))
    if f <= 1:
        return np.ascontiguousarray(img)
    hh, ww = h // f, w // f
    a = img[: hh * f, : ww * f].astype(np.float32)
    a = a.reshape((hh, f, ww, f) + img.shape[2:]).mean(axis=(1, 3))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def thumbnail_png(vol: Volume, size: int = THUMB_SIZE) -> bytes:
    """:func:`thumbnail` encoded as PNG bytes (in memory)."""
    from .export import png_encode

    return png_encode(thumbnail(vol, size))
