"""Header values of one parsed file as the archive's records store them.

:class:`FileHeaderValues` gives the values of one file of a
:class:`~pocketpacs.dicom.batch.HeaderBatch` (the representative file of a
new series), decoded on demand: plain ASCII from the raw bytes, other
character sets with :func:`decode_charset_text` (pydicom's decoders under the
file's Specific Character Set), numbers from the parsed numeric columns.
:func:`text_or_empty` and :func:`first_int_or_none` turn such values into
the strings and integers of patient/study/series records.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dicom import tags
from ..dicom.text import decode_text


def text_or_empty(v: Any) -> str:
    """A header value as a record's string: absent is ``""``, multiple values are joined with ``\\``."""
    if v is None:
        return ""
    if isinstance(v, list):
        return "\\".join("" if x is None else str(x) for x in v)
    return str(v)


def first_int_or_none(v: Any) -> int | None:
    """The (first) value as an integer; None if absent, not a number or not finite."""
    try:
        f = float(v[0] if isinstance(v, list) else v)
    except (TypeError, ValueError, IndexError):
        return None
    return int(f) if np.isfinite(f) else None


_REP_VRS = {t.keyword: t.vr for t in tags.TAGS}


class FileHeaderValues:
    """Text values of one file of a batch, decoded on demand.

    Plain ASCII values of natively parsed files are decoded here from the
    raw bytes (``HeaderBatch.raw``) with pydicom's padding rules, other
    character sets by :func:`decode_charset_text`; values of files parsed by
    the fallback come from ``HeaderBatch.record`` once per file.  Used for
    the one representative file of each new series.
    """

    __slots__ = ("b", "i", "nums", "_rec", "_cache")

    def __init__(self, b: Any, i: int, nums: np.ndarray | None = None):
        self.b, self.i, self.nums = b, i, nums
        self._rec: dict | None = None
        self._cache: dict[str, Any] = {}

    def _record(self) -> dict:
        if self._rec is None:
            self._rec = self.b.record(self.i)
        return self._rec

    def get(self, kw: str) -> Any:
        if kw in self._cache:
            return self._cache[kw]
        b, i = self.b, self.i
        v: Any
        if b.status[i] != 0:
            v = self._record().get(kw)
        else:
            vr = _REP_VRS[kw]
            if vr in ("US", "IS", "DS"):
                if self.nums is not None:  # the row's numeric values, already extracted
                    x = float(self.nums[int(tags.NUM_START[tags.INDEX[kw]])])
                else:
                    x = float(b.number(kw)[i])
                v = None if x != x else x
            else:
                raw = b.raw(kw, i)
                if raw is None:
                    v = None
                elif raw.isascii() and b"\x1b" not in raw:
                    t = raw.decode("ascii")
                    if "\\" in t and vr in ("SH", "LO", "UC"):
                        v = "\\".join(x.rstrip(" \0") for x in t.split("\\"))
                    else:
                        v = t.rstrip(" \0")
                else:
                    v = decode_charset_text(raw, vr, b.raw("SpecificCharacterSet", i))
        self._cache[kw] = v
        return v

    def text(self, kw: str) -> str:
        """The value as a record's string (see :func:`text_or_empty`)."""
        return text_or_empty(self.get(kw))

    def first_int(self, kw: str) -> int | None:
        """The (first) value as an integer (see :func:`first_int_or_none`)."""
        return first_int_or_none(self.get(kw))


_DECODED: dict[tuple[bytes, str, bytes | None], str | None] = {}


def decode_charset_text(raw: bytes, vr: str, scs: bytes | None) -> str | None:
    """Decode one text value with its Specific Character Set (as pydicom does).

    :func:`pocketpacs.dicom.text.decode_text` decodes; where pydicom cannot,
    the archive keeps the bytes read as Latin-1 rather than lose the value.
    """
    key = (raw, vr, scs)
    hit = _DECODED.get(key, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    out = decode_text(raw, vr, scs)
    if out is None and raw:
        out = raw.decode("latin-1").rstrip(" \0")
    if len(_DECODED) > 4096:
        _DECODED.clear()
    _DECODED[key] = out
    return out
