"""Series thumbnails for the page's list.

:class:`Thumbnails` is the part of :class:`~pocketpacs.ui.session.Session`
that answers ``GET /v1/thumb/<series>``: the middle slice of a series, windowed
with the series' first window preset by the NumPy reference of the window
kernel (colour series: their 8-bit RGB, ``(h, w, 3)``, as the viewer shows
them) and shrunk to :data:`THUMB_SIZE` pixels, sent as a binary frame
(:func:`pocketpacs.ui.protocol.encode_frame`).  A series without image
pixels (a report, SR, presentation state, RT structure set...) answers an
empty frame whose header says ``not_image`` and what it is, so the page
draws an icon instead of a black square.  Frames are cached (up to 2000,
oldest dropped first); failures are logged and answer None.
"""
from __future__ import annotations

import logging

import numpy as np

from . import protocol

log = logging.getLogger("pocketpacs.ui.session")

THUMB_SIZE = 64


class Thumbnails:
    """Thumbnail frames of archived series, cached (a mixin of Session)."""

    def thumbnail(self, sid: str) -> bytes | None:
        """A uint8 thumbnail frame of series *sid* (cached), or None.

        Parameters
        ----------
        sid : str
            Series key.

        Returns
        -------
        bytes or None
        """
        with self._thumb_lock:
            if sid in self._thumbs:
                return self._thumbs[sid]
        from pocketpacs.images.volume import NotAnImageError

        try:
            img = self._make_thumbnail(sid)
        except NotAnImageError as exc:   # no pixels: the page shows an icon saying what it is
            frame = protocol.encode_frame({"shape": [0, 0], "dtype": "uint8", "not_image": True,
                                           "kind": exc.kind}, np.zeros((0, 0), np.uint8))
            with self._thumb_lock:
                self._thumbs[sid] = frame
            return frame
        except Exception as exc:
            log.info("thumbnail failed: %s", type(exc).__name__)
            return None
        if img is None:
            return None
        frame = protocol.encode_frame({"shape": list(img.shape), "dtype": "uint8"}, img)
        with self._thumb_lock:
            self._thumbs[sid] = frame
            while len(self._thumbs) > 2000:
                self._thumbs.popitem(last=False)
        return frame

    def _make_thumbnail(self, sid: str) -> np.ndarray | None:
        from pocketpacs.native.reference import window_u8
        from pocketpacs.images.thumbs import shrink

        from .sources import open_dicom_series

        try:
            src = open_dicom_series(self.archive, sid)
        except FileNotFoundError:
            return None
        try:
            hdr = src.header()
            mid = hdr.shape[0] // 2
            whole = src.whole()
            if whole is not None:
                img = whole[mid]
            else:
                img = np.empty(hdr.shape[1:], dtype=hdr.dtype)
                src.read_into(mid, mid + 1, img[None])
        finally:
            src.close()
        if getattr(hdr, "samples", 1) == 3:  # colour (RGB, YBR, palette): 8-bit RGB as shown
            return shrink(np.ascontiguousarray(img, dtype=np.uint8), THUMB_SIZE)
        w = hdr.windows[0] if hdr.windows else {"center": 0.0, "width": 1.0}
        # the window is in real units; apply it to stored values
        c = (w["center"] - hdr.intercept) / hdr.slope
        wd = w["width"] / abs(hdr.slope)
        # one slice, windowed by the NumPy reference of the window kernel (same
        # values, tested): thumbnails are asked for as the list appears, and
        # loading the compiled kernel there held the interpreter for 0.7-1 s
        # while the user's first open waited
        out = window_u8(np.ascontiguousarray(img), c, wd, hdr.invert)
        return shrink(out, THUMB_SIZE)
