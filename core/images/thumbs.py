"""Series thumbnails: the middle slice windowed to 8 bits, kept in memory.

Nothing is written to disk (no-trace mode): :class:`ThumbnailCache` is a
small in-memory LRU keyed by whatever the caller uses (e.g. a series id).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable

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


class ThumbnailCache:
    """In-memory LRU of PNG thumbnails (no disk).

    Parameters
    ----------
    max_items : int
    """

    def __init__(self, max_items: int = 512):
        self.max_items = max_items
        self._d: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """Cached PNG bytes or None."""
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: Hashable, png: bytes) -> None:
        """Store PNG bytes, evicting the least recently used entries."""
        with self._lock:
            self._d[key] = png
            self._d.move_to_end(key)
            while len(self._d) > self.max_items:
                self._d.popitem(last=False)

    def get_or_make(self, key: Hashable, make: Any) -> bytes:
        """Cached thumbnail, or ``make()`` (a Volume or PNG bytes) stored first."""
        v = self.get(key)
        if v is None:
            made = make()
            v = thumbnail_png(made) if isinstance(made, Volume) else bytes(made)
            self.put(key, v)
        return v

    def __len__(self) -> int:
        return len(self._d)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._d.clear()
