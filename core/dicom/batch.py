"""The result of parsing a batch of DICOM headers: :class:`HeaderBatch`.

Values are held column-wise in fixed-width arrays filled by the native
kernels (:mod:`pocketpacs.native.dicomparse`): raw value locations in the read
buffers, numbers already converted, XXH64 hashes of the UIDs; files the
pydicom fallback parsed keep a dict of plain values.  Text is decoded only when
a caller asks for a column (:meth:`HeaderBatch.text`, plain ASCII in bulk,
the rest through :mod:`pocketpacs.dicom.text` as pydicom decodes it) or for
one file's record.  :func:`pocketpacs.dicom.headers.parse_files` and
``parse_bytes`` make batches; the status codes and failure reasons a batch
reports are defined here.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import tags
from .text import decode_value, join_values

# Status of a file in a batch.
NATIVE = 0
FALLBACK = 1
FAILED = -1

#: Failure reason codes a batch can report, with their meaning.
FAILURE_REASONS: dict[str, str] = {
    "not_dicom": "not a DICOM file",
    "empty": "empty file",
    "truncated": "file ends inside the DICOM header or pixel data",
    "unreadable": "could not be read",
    "permission_denied": "permission denied",
    "vanished": "file vanished before it could be read",
    "unsupported": "not a regular file or an unsupported encoding",
    "malformed": "malformed DICOM structure",
}

#: The UI tags, in table order, and their column in a batch's UID hash
#: matrix (``UID_COL`` by keyword, ``UID_COLS`` by tag index, -1 for others).
UID_KEYWORDS = tuple(t.keyword for t in tags.TAGS if t.vr == "UI")
UID_COLS = np.full(len(tags.TAGS), -1, dtype=np.int32)
for _j, _kw in enumerate(UID_KEYWORDS):
    UID_COLS[tags.INDEX[_kw]] = _j
UID_COL = {kw: j for j, kw in enumerate(UID_KEYWORDS)}
_SCS = tags.INDEX["SpecificCharacterSet"]
#: Bytes a blank UID consists of (padding and white space).
_BLANK = b" \0\t\n\r\f\v"
_BLANK_BYTES = np.frombuffer(_BLANK, dtype=np.uint8)


def _vr_str(code: int) -> str:
    return chr((code >> 8) & 0xFF) + chr(code & 0xFF)


def copy_values_numpy(buf: np.ndarray, src: np.ndarray, lens: np.ndarray, dst: np.ndarray, out: np.ndarray) -> None:
    """``out[dst[j]:dst[j] + lens[j]] = buf[src[j]:src[j] + lens[j]]`` for each ``j``,
    in NumPy: the reference of the ``copy_values`` kernel, and what runs while
    that kernel is not compiled."""
    step = np.arange(int(lens.sum()), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
    out[np.repeat(dst, lens) + step] = buf[np.repeat(src, lens) + step]


def _copier() -> Any:
    """The compiled ``copy_values`` kernel when it runs without compiling (numba
    loaded by the parse, the kernel compiled or cached), else None: the NumPy
    copy (:func:`copy_values_numpy`) runs, and, within an import, a
    background process compiles the kernel for the next one."""
    import sys

    if "numba" not in sys.modules:
        return None
    from pocketpacs.native import dicomvalues

    from .kernels import _compiled_ready, _interpret_ok, warm_in_background

    if _compiled_ready(dicomvalues.copy_values):
        return dicomvalues.copy_values
    if _interpret_ok.get():
        warm_in_background("copy_values")
    return None


class HeaderBatch:
    """Header values of a batch of files, held column-wise.

    Attributes
    ----------
    n : int
        Number of files.
    paths : list of str
    status : ndarray of int8
        ``NATIVE`` (0), ``FALLBACK`` (1, parsed by pydicom) or ``FAILED`` (-1).
    reason, message : list of (str or None)
        Failure reason code (see ``FAILURE_REASONS``) and message, or None.
    fallback_reason : list of (str or None)
        Why a file went to the pydicom fallback.
    size, mtime_ns : ndarray of int64
        From ``fstat`` of the opened file.
    fingerprint : ndarray of uint64
        XXH64 of the header bytes (everything before the pixel data).
    pixel_offset, pixel_length : ndarray of int64
        File offset of the Pixel Data value and its length (-1 when absent
        or, for the length, undefined/encapsulated).
    encapsulated : ndarray of bool
    little_endian, explicit_vr : ndarray of bool
    """

    def __init__(self, paths: list[str]):
        n = len(paths)
        ntags = len(tags.TAGS)
        self.n = n
        self.paths = paths
        self.status = np.full(n, FAILED, dtype=np.int8)
        self.reason: list[str | None] = [None] * n
        self.message: list[str | None] = [None] * n
        self.fallback_reason: list[str | None] = [None] * n
        self.size = np.zeros(n, dtype=np.int64)
        self.mtime_ns = np.zeros(n, dtype=np.int64)
        self.fingerprint = np.zeros(n, dtype=np.uint64)
        self.pixel_offset = np.full(n, -1, dtype=np.int64)
        self.pixel_length = np.full(n, -1, dtype=np.int64)
        self.encapsulated = np.zeros(n, dtype=bool)
        self.little_endian = np.ones(n, dtype=bool)
        self.explicit_vr = np.ones(n, dtype=bool)
        self.header_end = np.zeros(n, dtype=np.int64)
        # raw value locations (native rows)
        self._buf_id = np.zeros(n, dtype=np.int32)
        self._start = np.zeros(n, dtype=np.int64)
        self._voff = np.full((n, ntags), -1, dtype=np.int64)
        self._vlen = np.full((n, ntags), -1, dtype=np.int64)
        self._vrs = np.zeros((n, ntags), dtype=np.uint16)
        self._nums = np.full((n, tags.NUM_COLUMNS), np.nan)
        self._numflag = np.zeros((n, ntags), dtype=np.int8)
        self._uid_hash = np.zeros((n, len(UID_KEYWORDS)), dtype=np.uint64)
        self._bufs: list[np.ndarray] = []
        # decoded values of fallback rows: row -> {keyword: value}
        self._py: dict[int, dict[str, Any]] = {}
        self._blobs: list[bytes] | None = None  # set by parse_bytes

    # ---- counts -----------------------------------------------------------
    @property
    def n_native(self) -> int:
        return int((self.status == NATIVE).sum())

    @property
    def n_fallback(self) -> int:
        return int((self.status == FALLBACK).sum())

    @property
    def n_failed(self) -> int:
        return int((self.status == FAILED).sum())

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of files whose header was parsed."""
        return self.status >= 0

    def fail(self, i: int, reason: str, message: str) -> None:
        self.status[i] = FAILED
        self.reason[i] = reason
        self.message[i] = f"{self.paths[i]}: {message}"

    def compact(self) -> None:
        """Keep only the bytes of the values found, in one small buffer.

        The parse leaves the batch holding every file's head (8 KB or more
        each); an import that commits several parsed chunks at once calls
        this on the chunks it holds, so that its memory grows by the values
        (a few hundred bytes per file), not the heads.  Every accessor gives
        the same result before and after.
        """
        if self._blobs is not None or not self._bufs:
            return
        rows, ks = np.nonzero(self._vlen >= 0)
        lens = self._vlen[rows, ks].astype(np.int64)
        dst = np.cumsum(lens) - lens
        out = np.empty(int(lens.sum()), dtype=np.uint8)
        src = (self._start[rows] + self._voff[rows, ks]).astype(np.int64)
        bid = self._buf_id[rows]
        copy = _copier()
        for b, buf in enumerate(self._bufs):
            sel = np.nonzero((bid == b) & (lens > 0))[0]
            if sel.size == 0:
                continue
            # (the kernel's one specialisation: a writable, contiguous buffer)
            if (copy is None or buf.dtype != np.uint8 or not buf.flags.writeable or not buf.flags.c_contiguous
                    or copy(buf, src[sel], lens[sel], dst[sel], out)):
                copy_values_numpy(buf, src[sel], lens[sel], dst[sel], out)
        self._voff[rows, ks] = dst
        self._start[:] = 0
        self._buf_id[:] = 0
        self._bufs = [out]

    # ---- raw access ---------------------------------------------------------
    def raw(self, keyword: str, i: int) -> bytes | None:
        """Raw value bytes of one tag of a natively parsed file (None if absent)."""
        k = tags.INDEX[keyword]
        ln = self._vlen[i, k]
        if ln < 0 or self.status[i] != NATIVE:
            return None
        buf = self._bufs[self._buf_id[i]]
        a = self._start[i] + self._voff[i, k]
        return buf[a:a + ln].tobytes()

    def _convert_slow(self, i: int, k: int, raw: bytes) -> Any:
        """Decode one value exactly as pydicom does (non-ASCII, odd numbers)."""
        spec = tags.TAGS[k]
        vr = _vr_str(int(self._vrs[i, k])) or spec.vr
        if vr == "UN" or not vr.isalpha():
            vr = spec.vr
        return decode_value(raw, vr, self.raw("SpecificCharacterSet", i), tag=spec.tag,
                            little_endian=bool(self.little_endian[i]),
                            implicit_vr=not self.explicit_vr[i])

    # ---- columns -------------------------------------------------------------
    def text(self, keyword: str) -> list[str | None]:
        """Decoded values of a text tag, one per file.

        Multi-valued values are joined with a backslash; padding is removed
        as pydicom removes it; PN values are in their ``str()`` form.
        ``None`` means absent (or the file failed), ``""`` present but empty.
        Plain ASCII values are decoded in bulk (one NumPy conversion per
        batch); others go through pydicom's decoders, once per distinct value.
        """
        from .kernels import choose

        gather_values = choose("dicomvalues", "gather_values", self.n).gather_values
        k = tags.INDEX[keyword]
        spec = tags.TAGS[k]
        out: list[str | None] = [None] * self.n
        vlen = self._vlen[:, k]
        present = (vlen >= 0) & (self.status == NATIVE)
        rows_all = np.nonzero(present)[0]
        charset = spec.vr in tags.CHARSET_VRS
        cache: dict[tuple[bytes, bytes], str | None] = {}
        slow: list[int] = []
        for bid, buf in enumerate(self._bufs):
            rows = rows_all[self._buf_id[rows_all] == bid].astype(np.int64)
            if rows.size == 0:
                continue
            width = int(max(1, min(int(vlen[rows].max()), 1024)))
            mat = np.zeros((rows.size, width), dtype=np.uint8)
            flags = np.zeros(rows.size, dtype=np.uint8)
            gather_values(buf, self._start, self._voff[:, k].copy(), vlen.copy(), rows,
                          spec.vr in ("DS", "IS"), mat, flags)
            plain = flags == 0
            if spec.vr not in ("SH", "LO", "UC", "DS", "IS"):
                # pydicom strips only the whole value of these VRs, so a
                # multi-valued ASCII value decodes as it is (e.g. ImageType)
                plain |= flags == 2
            if plain.any():
                strs = mat[plain].view(f"S{width}").ravel().astype(f"U{width}").tolist()
                for i, v in zip(rows[plain].tolist(), strs):
                    out[i] = v
            slow.extend(rows[~plain].tolist())
        for i in slow:
            raw = self.raw(keyword, i) or b""
            if raw.isascii() and b"\x1b" not in raw:
                out[i] = _ascii_text(raw, spec.vr)
                continue
            scs = (self.raw("SpecificCharacterSet", i) or b"") if charset else b""
            key = (scs, raw)
            if key not in cache:
                cache[key] = join_values(self._convert_slow(i, k, raw))
            out[i] = cache[key]
        for i, vals in self._py.items():
            out[i] = join_values(vals.get(keyword)) if keyword in vals else None
        return out

    def values(self, keyword: str) -> np.ndarray:
        """Numeric values of a US/IS/DS tag: float64 array (n, nvals), NaN when absent."""
        k = tags.INDEX[keyword]
        c = int(tags.NUM_START[k])
        if c < 0:
            raise KeyError(f"{keyword} is not a numeric tag of the archive")
        cnt = int(tags.NUM_COUNT[k])
        out = self._nums[:, c:c + cnt].copy()
        slow = np.nonzero((self._numflag[:, k] == 2) & (self.status == NATIVE))[0]
        text_vr = tags.TAGS[k].vr in ("DS", "IS")
        for i in slow.tolist():
            raw = self.raw(keyword, i) or b""
            if text_vr and _vr_str(int(self._vrs[i, k])) in ("DS", "IS"):
                # decimal strings outside the kernel's exact fast path (over 2**53,
                # exponents past 1e22): Python's float() is correctly rounded, as
                # pydicom's DSfloat is
                try:
                    parts = raw.decode("latin-1").strip(" \0").split("\\")
                    out[i] = _numbers([float(x) for x in parts], cnt)
                    continue
                except ValueError:
                    pass
            v = self._convert_slow(i, k, raw)
            out[i] = _numbers(v, cnt)
        for i, vals in self._py.items():
            out[i] = _numbers(vals.get(keyword), cnt)
        out[self.status == FAILED] = np.nan
        return out

    def number(self, keyword: str) -> np.ndarray:
        """First value of a numeric tag (float64, NaN when absent)."""
        return self.values(keyword)[:, 0]

    def uid_hash(self, keyword: str) -> np.ndarray:
        """XXH64 of a UID value (padding stripped), 0 when absent or blank.

        A UID present but empty, or only padding or white space
        (:meth:`uid_blank`), identifies nothing: it hashes to 0 like an absent
        one, so that it never becomes a key (files with such UIDs would
        otherwise all share the hash of the empty string).
        """
        out = self._uid_hash[:, UID_COL[keyword]].copy()
        out[self.uid_blank(keyword)] = 0
        return out

    def uid_present(self, keyword: str) -> np.ndarray:
        """Boolean mask of the files in which a tag is present (blank or not)."""
        k = tags.INDEX[keyword]
        out = (self._vlen[:, k] >= 0) & (self.status == NATIVE)
        for i, vals in self._py.items():
            out[i] = keyword in vals
        return out

    def uid_blank(self, keyword: str) -> np.ndarray:
        """Boolean mask of the files whose UID is present but blank.

        Blank: empty, or only NUL padding, spaces or other white space.
        Only values whose first byte is blank are looked at in Python.
        """
        k = tags.INDEX[keyword]
        out = np.zeros(self.n, dtype=bool)
        vlen = self._vlen[:, k]
        rows_all = np.nonzero((vlen >= 0) & (self.status == NATIVE))[0]
        out[rows_all[vlen[rows_all] == 0]] = True
        rows_all = rows_all[vlen[rows_all] > 0]
        for bid, buf in enumerate(self._bufs):
            rows = rows_all[self._buf_id[rows_all] == bid]
            if rows.size == 0:
                continue
            first = buf[self._start[rows] + self._voff[rows, k]]
            for i in rows[np.isin(first, _BLANK_BYTES)].tolist():
                out[i] = not (self.raw(keyword, i) or b"").strip(_BLANK)
        for i, vals in self._py.items():
            if keyword in vals:
                v = vals[keyword]
                out[i] = v is None or (isinstance(v, (str, bytes)) and not v.strip(
                    _BLANK.decode("ascii") if isinstance(v, str) else _BLANK))
        return out

    @property
    def transfer_syntax(self) -> list[str | None]:
        return self.text("TransferSyntaxUID")

    def record(self, i: int) -> dict[str, Any]:
        """All present tag values of file ``i`` as a dict (slow path)."""
        if self.status[i] == FAILED:
            return {}
        if self.status[i] == FALLBACK:
            return dict(self._py[i])
        rec: dict[str, Any] = {}
        for k, spec in enumerate(tags.TAGS):
            ln = self._vlen[i, k]
            if ln < 0:
                continue
            raw = self.raw(spec.keyword, i) or b""
            if not raw.strip(b" \0"):
                rec[spec.keyword] = self._convert_slow(i, k, raw)
            elif spec.nvals and self._numflag[i, k] == 1 and spec.vr in ("US", "IS", "DS"):
                c = int(tags.NUM_START[k])
                vals = self._nums[i, c:c + int(tags.NUM_COUNT[k])]
                nv = _count_values(raw, _vr_str(int(self._vrs[i, k])), int(tags.NUM_COUNT[k]))
                vals = [float(x) for x in vals[:nv]]
                if spec.vr in ("US", "IS"):
                    vals = [int(x) for x in vals]
                rec[spec.keyword] = vals[0] if len(vals) == 1 else vals
            elif raw.isascii() and b"\x1b" not in raw and not spec.nvals:
                s = _ascii_text(raw, spec.vr)
                parts = s.split("\\")
                rec[spec.keyword] = parts[0] if len(parts) == 1 else parts
            else:
                rec[spec.keyword] = self._convert_slow(i, k, raw)
        return rec


def _ascii_text(raw: bytes, vr: str) -> str:
    """Decode an ASCII value and strip padding the way pydicom does per VR."""
    s = raw.decode("ascii")
    if vr in ("SH", "LO", "UC"):  # pydicom strips every value of a text VR
        if "\\" in s:
            return "\\".join(p.rstrip(" \0") for p in s.split("\\"))
        return s.rstrip(" \0")
    if vr in ("DS", "IS"):
        s = s.strip(" \0")
        if "\\" in s:
            return "\\".join(p.strip(" \0") for p in s.split("\\"))
        return s
    return s.rstrip(" \0")  # AE AS CS DA DT TM UI PN: only the whole value


def _count_values(raw: bytes, vr: str, cap: int) -> int:
    if vr in ("US", "SS"):
        return min(cap, len(raw) // 2)
    if vr in ("UL", "SL"):
        return min(cap, len(raw) // 4)
    return min(cap, raw.count(b"\\") + 1)


def _numbers(v: Any, cnt: int) -> np.ndarray:
    out = np.full(cnt, np.nan)
    if v is None or v == "":
        return out
    vals = v if isinstance(v, list) else [v]
    for j, x in enumerate(vals[:cnt]):
        try:
            out[j] = float(x)
        except (TypeError, ValueError):
            pass
    return out
