"""Parse the DICOM headers of many files at once.

``parse_files(paths)`` reads the head of every file (``os.preadv`` into one
preallocated buffer; never mmap), parses the batch with the numba kernels in
:mod:`pocketpacs.native.dicomparse` (in parallel, GIL released), re-reads the
few files whose header is longer than the first read, and hands files the
fast path cannot decide (deflate, unknown transfer syntaxes, encodings that
switch) to pydicom (``stop_before_pixels``).  The result is a
:class:`HeaderBatch`: fixed-width arrays per batch, no Python object per
file until a caller asks for a column or a record.

No function here raises for a bad file: every file ends parsed (natively or
by the fallback) or failed with a reason code and a message that names the
file and the problem, never a header value.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import tags as T
from .heads import read_head, read_heads
from .text import BINARY_VRS, decode_value, join_values, normalise
from ..log import logger

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

_KERNEL_REASONS = {
    1: ("empty", "empty file"),
    2: ("not_dicom", "no DICOM preamble/marker and no recognisable data element"),
    3: ("truncated", "file ends inside the DICOM header"),
    4: ("malformed", "sequences nested deeper than 64 levels"),
    5: ("malformed", "malformed DICOM structure"),
    10: ("truncated", "pixel data runs past the end of the file"),
    11: ("not_dicom", "file meta information but no data set"),
}

_FALLBACK_REASONS = {
    5: "structure outside the fast path",
    6: "deflated transfer syntax",
    7: "transfer syntax not known to the fast path",
    8: "data set encoding differs from the transfer syntax",
    9: "unusual file meta information",
    12: "gzip-compressed file",
}

DEFAULT_HEAD = 8192
MAX_HEADER = 64 * 1024 * 1024  # never read more than this for a header

_UID_KEYWORDS = tuple(t.keyword for t in T.TAGS if t.vr == "UI")
_UID_COLS = np.full(len(T.TAGS), -1, dtype=np.int32)
for _j, _kw in enumerate(_UID_KEYWORDS):
    _UID_COLS[T.INDEX[_kw]] = _j
_UID_COL = {kw: j for j, kw in enumerate(_UID_KEYWORDS)}
_SCS = T.INDEX["SpecificCharacterSet"]


def _vr_str(code: int) -> str:
    return chr((code >> 8) & 0xFF) + chr(code & 0xFF)


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
        ntags = len(T.TAGS)
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
        self._nums = np.full((n, T.NUM_COLUMNS), np.nan)
        self._numflag = np.zeros((n, ntags), dtype=np.int8)
        self._uid_hash = np.zeros((n, len(_UID_KEYWORDS)), dtype=np.uint64)
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

    # ---- raw access ---------------------------------------------------------
    def raw(self, keyword: str, i: int) -> bytes | None:
        """Raw value bytes of one tag of a natively parsed file (None if absent)."""
        k = T.INDEX[keyword]
        ln = self._vlen[i, k]
        if ln < 0 or self.status[i] != NATIVE:
            return None
        buf = self._bufs[self._buf_id[i]]
        a = self._start[i] + self._voff[i, k]
        return buf[a:a + ln].tobytes()

    def _convert_slow(self, i: int, k: int, raw: bytes) -> Any:
        """Decode one value exactly as pydicom does (non-ASCII, odd numbers)."""
        spec = T.TAGS[k]
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
        from pocketpacs.native.dicomparse import gather_values

        k = T.INDEX[keyword]
        spec = T.TAGS[k]
        out: list[str | None] = [None] * self.n
        vlen = self._vlen[:, k]
        present = (vlen >= 0) & (self.status == NATIVE)
        rows_all = np.nonzero(present)[0]
        charset = spec.vr in T.CHARSET_VRS
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
        k = T.INDEX[keyword]
        c = int(T.NUM_START[k])
        if c < 0:
            raise KeyError(f"{keyword} is not a numeric tag of the archive")
        cnt = int(T.NUM_COUNT[k])
        out = self._nums[:, c:c + cnt].copy()
        slow = np.nonzero((self._numflag[:, k] == 2) & (self.status == NATIVE))[0]
        text_vr = T.TAGS[k].vr in ("DS", "IS")
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
        """XXH64 of a UID value (padding stripped), 0 when absent."""
        return self._uid_hash[:, _UID_COL[keyword]].copy()

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
        for k, spec in enumerate(T.TAGS):
            ln = self._vlen[i, k]
            if ln < 0:
                continue
            raw = self.raw(spec.keyword, i) or b""
            if not raw.strip(b" \0"):
                rec[spec.keyword] = self._convert_slow(i, k, raw)
            elif spec.nvals and self._numflag[i, k] == 1 and spec.vr in ("US", "IS", "DS"):
                c = int(T.NUM_START[k])
                vals = self._nums[i, c:c + int(T.NUM_COUNT[k])]
                nv = _count_values(raw, _vr_str(int(self._vrs[i, k])), int(T.NUM_COUNT[k]))
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


# ---- reading ------------------------------------------------------------------

_READ_THREADS = 1  # measured: extra reader threads lose to GIL contention
_EXECUTORS: dict[int, Any] = {}


def _executor(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    ex = _EXECUTORS.get(threads)
    if ex is None:
        ex = _EXECUTORS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="pp-read")
    return ex


def _kernel_args():
    return (T.TAG_ARRAY, T.VR_ARRAY, T.NUM_START, T.NUM_COUNT, _UID_COLS)


def parse_files(paths: Sequence[str | os.PathLike[str]], *, head_size: int | None = None,
                fallback: bool = True, parallel: bool | None = None,
                read_threads: int | None = None, sizes: np.ndarray | None = None,
                mtimes_ns: np.ndarray | None = None, heads: Any = None) -> HeaderBatch:
    """Parse the DICOM headers of ``paths``.

    Parameters
    ----------
    paths : sequence of path-like
        Files to parse; any kind of file is accepted.
    head_size : int, optional
        Bytes read at first from each file; longer headers are re-read.  By
        default the size adapts to the headers seen so far in this process
        (4 KB to start: one or two pages cover most headers, and reading
        less per file is measurably faster than 8 KB).
    fallback : bool
        Hand files outside the fast path to pydicom (default).  When False
        they are reported failed with reason ``unsupported``.
    parallel : bool, optional
        Force the parallel (prange) or serial kernel; by default the batch
        size decides.
    read_threads : int, optional
        Threads reading file heads (system calls release the GIL); by
        default 1 (measured faster than 2 on a 2-core machine: the per-file
        Python work holds the GIL).
    sizes, mtimes_ns : ndarray of int64, optional
        File sizes and modification times the caller already has (from a
        directory scan of regular files): the per-file ``fstat`` is skipped.
        A size of -1 means unknown: that file is ``fstat``-ed once open (a
        first import lists new folders without a ``stat`` per file).
    heads : pocketpacs.archive.readahead.Heads, optional
        The files' heads, already read (by the import's read-ahead helper);
        needs ``sizes``.  Files it could not read are read again here for
        the exact reason.

    Returns
    -------
    HeaderBatch
    """
    from pocketpacs.native import dicomparse as dp

    spaths = [os.fspath(p) for p in paths]
    batch = HeaderBatch(spaths)
    n = batch.n
    if n == 0:
        return batch
    adaptive = head_size is None
    if heads is not None:
        if heads.got.size != n or sizes is None:
            raise ValueError("heads must come with sizes and hold one row per path")
        head_size = heads.head
    elif adaptive:
        head_size = _HEAD.size
    buf = heads.buf if heads is not None else np.empty(n * head_size, dtype=np.uint8)
    mv = memoryview(buf)
    starts = np.arange(n, dtype=np.int64) * head_size
    lengths = np.zeros(n, dtype=np.int64)
    fsizes = np.zeros(n, dtype=np.int64)
    readable = np.zeros(n, dtype=bool)
    if sizes is not None:
        fsizes[:] = sizes
        batch.size[:] = sizes
        if mtimes_ns is not None:
            batch.mtime_ns[:] = mtimes_ns

    def read_range(lo: int, hi: int) -> None:
        if sizes is None:
            for i in range(lo, hi):
                a = i * head_size
                got, size, mtime, reason, msg = read_head(spaths[i], mv[a:a + head_size])
                if reason is not None:
                    batch.fail(i, reason, msg or reason)
                    continue
                lengths[i] = got
                readable[i] = True
                fsizes[i] = size
                batch.size[i] = size
                batch.mtime_ns[i] = mtime
            return
        # the caller has listed these regular files: the tight loop of the import
        # files listed without stat (a new folder): size and time from fstat
        want = bool((fsizes[lo:hi] < 0).any())
        got_l, size_l, mt_l = read_heads(spaths[lo:hi], mv[lo * head_size:hi * head_size],
                                         head_size, want)
        got = np.asarray(got_l, dtype=np.int64)
        ok = got >= 0  # failures: reported below with the exact reason
        if want:
            known = fsizes[lo:hi] >= 0
            fsizes[lo:hi] = np.where(known, fsizes[lo:hi], size_l)
            batch.size[lo:hi] = fsizes[lo:hi]
            batch.mtime_ns[lo:hi] = np.where(known, batch.mtime_ns[lo:hi], mt_l)
        lengths[lo:hi] = np.where(ok, got, 0)
        readable[lo:hi] = ok
        for j in np.nonzero(~readable[lo:hi])[0].tolist():
            i = lo + j
            _, _, _, reason, msg = read_head(spaths[i], mv[i * head_size:(i + 1) * head_size])
            batch.fail(i, reason or "unreadable", msg or "could not be read")

    def take_heads() -> None:
        """Heads a read-ahead helper has read (``pocketpacs.archive.readahead``)."""
        ok = heads.got >= 0
        lengths[ok] = heads.got[ok]
        readable[:] = ok
        unknown = fsizes < 0
        fsizes[unknown] = np.where(ok[unknown], heads.size[unknown], 0)
        batch.size[unknown] = fsizes[unknown]
        batch.mtime_ns[unknown] = np.where(ok[unknown], heads.mtime_ns[unknown], 0)
        for i in np.nonzero(~ok)[0].tolist():  # the exact reason, read again here
            _, _, _, reason, msg = read_head(spaths[i], mv[i * head_size:(i + 1) * head_size])
            batch.fail(i, reason or "unreadable", msg or "could not be read")

    threads = read_threads if read_threads is not None else (_READ_THREADS if n >= 512 else 1)
    if heads is not None:
        take_heads()
    elif threads > 1:
        step = -(-n // (threads * 4))
        list(_executor(threads).map(lambda lo: read_range(lo, min(n, lo + step)), range(0, n, step)))
    else:
        read_range(0, n)
    shrunk = readable & (lengths < head_size) & (lengths < fsizes)
    fsizes[shrunk] = lengths[shrunk]  # the file changed under us: trust what we read
    batch._bufs.append(buf)
    todo = np.nonzero(readable)[0].astype(np.int64)
    info = np.zeros((n, 13), dtype=np.int64)
    _run_kernel(dp, batch, buf, starts, lengths, fsizes, todo, info, parallel)
    batch._start[:] = starts

    # files whose header is longer than the first read
    for _round in range(8):
        need = np.nonzero(readable & (info[:, 0] == dp.NEED_MORE))[0]
        if need.size == 0:
            break
        sizes = np.minimum(np.maximum(info[need, 3], lengths[need] * 4), fsizes[need])
        sizes = np.minimum(sizes, MAX_HEADER)
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        buf2 = np.empty(int(sizes.sum()), dtype=np.uint8)
        mv2 = memoryview(buf2)
        bid = len(batch._bufs)
        batch._bufs.append(buf2)
        for j, i in enumerate(need.tolist()):
            a = int(offs[j])
            got, size, mtime, reason, msg = read_head(spaths[i], mv2[a:a + int(sizes[j])])
            if reason is not None:
                batch.fail(i, reason, msg or reason)
                readable[i] = False
                info[i, 0] = dp.FAILED
                continue
            lengths[i] = got
            starts[i] = a
            if got < sizes[j] and got < size:
                fsizes[i] = got
            batch._buf_id[i] = bid
            batch._start[i] = a
        todo2 = need[readable[need]].astype(np.int64)
        if todo2.size:
            _run_kernel(dp, batch, buf2, starts, lengths, fsizes, todo2, info, False)
        still = todo2[(info[todo2, 0] == dp.NEED_MORE) & (sizes[np.searchsorted(need, todo2)] >= MAX_HEADER)]
        for i in still.tolist():
            info[i, 0] = dp.FAILED
            info[i, 1] = dp.R_MALFORMED
    else:
        for i in np.nonzero(readable & (info[:, 0] == dp.NEED_MORE))[0].tolist():
            info[i, 0] = dp.FAILED
            info[i, 1] = dp.R_MALFORMED

    _finish(batch, info, readable, fallback)
    if adaptive:
        _HEAD.learn(batch, head_size)
    return batch


class _HeadSize:
    """The first-read size for the next batch, learned from header sizes.

    Grows to the 95th percentile of the headers seen (page-rounded) when
    more than 5 % of a batch needed a second read, and shrinks back when
    the headers are small.  Only speed depends on it, never results.
    """

    MIN = 4096
    MAX = 256 * 1024

    def __init__(self) -> None:
        self.size = self.MIN

    def learn(self, batch: HeaderBatch, used: int) -> None:
        ends = batch.header_end[batch.status == NATIVE]
        if ends.size < 16:
            return
        need = float(np.percentile(ends, 95)) + 16  # + the pixel data element header
        target = int(min(self.MAX, max(self.MIN, -(-need // 4096) * 4096)))
        reread = float(np.mean(ends + 16 > used))
        if reread > 0.05 or target < used // 2:
            self.size = target


_HEAD = _HeadSize()


def parse_bytes(blobs: Sequence[bytes], names: Sequence[str] | None = None, *,
                fallback: bool = True) -> HeaderBatch:
    """Parse DICOM headers held in memory (whole files as ``bytes``).

    Nothing touches the disk: this is what no-trace viewing and the fuzz
    tests use.  ``names`` label the blobs in messages (default ``<blob N>``).
    """
    from pocketpacs.native import dicomparse as dp

    n = len(blobs)
    labels = list(names) if names is not None else [f"<blob {i}>" for i in range(n)]
    batch = HeaderBatch(labels)
    batch._blobs = list(blobs)
    if n == 0:
        return batch
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    starts = np.zeros(n, dtype=np.int64)
    if n > 1:
        starts[1:] = np.cumsum(lengths)[:-1]
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8) if lengths.sum() else np.zeros(1, np.uint8)
    batch._bufs.append(buf)
    batch._start[:] = starts
    batch.size[:] = lengths
    readable = np.ones(n, dtype=bool)
    info = np.zeros((n, 13), dtype=np.int64)
    _run_kernel(dp, batch, buf, starts, lengths, lengths.copy(), np.arange(n, dtype=np.int64),
                info, None)
    _finish(batch, info, readable, fallback)
    return batch


def _finish(batch: HeaderBatch, info: np.ndarray, readable: np.ndarray, fallback: bool) -> None:
    """Turn the kernel's info rows into the batch's status/reason columns."""
    from pocketpacs.native import dicomparse as dp

    n = batch.n
    st = info[:, 0]
    ok = readable & (st == dp.OK)
    batch.status[ok] = NATIVE
    batch.fingerprint[:] = info[:, 11].view(np.uint64)
    batch.header_end[:] = info[:, 12]
    batch.pixel_offset[:] = np.where(ok, info[:, 8], -1)
    batch.pixel_length[:] = np.where(ok & (info[:, 10] == 0), info[:, 9], -1)
    batch.encapsulated[:] = ok & (info[:, 10] == 1)
    batch.little_endian[:] = info[:, 5] == 1
    batch.explicit_vr[:] = info[:, 6] == 1
    for i in np.nonzero(readable & (st == dp.FAILED))[0].tolist():
        reason, msg = _KERNEL_REASONS.get(int(info[i, 1]), ("malformed", "malformed DICOM structure"))
        off = int(info[i, 2])
        if off > 0:
            msg = f"{msg} (at byte {off})"
        batch.fail(i, reason, msg)
    fb = np.nonzero(readable & (st == dp.FALLBACK))[0].tolist()
    for i in fb:
        why = _FALLBACK_REASONS.get(int(info[i, 1]), "outside the fast path")
        batch.fallback_reason[i] = why
        if fallback:
            _parse_with_pydicom(batch, i, why)
        else:
            batch.fail(i, "unsupported", why)
    if fb:
        logger.debug("%d of %d files parsed by the pydicom fallback", len(fb), n)


def _run_kernel(dp, batch, buf, starts, lengths, fsizes, todo, info, parallel):
    if parallel is None:
        parallel = todo.size >= 256
    fn = dp.parse_batch if parallel else dp.parse_serial
    fn(buf, starts, lengths, fsizes, todo, *_kernel_args(), batch._voff, batch._vlen,
       batch._vrs, batch._nums, batch._numflag, batch._uid_hash, info)


#: Cap on the inflated bytes read for a header (deflated transfer syntax or
#: a .dcm.gz file): a deflate bomb stops here instead of filling memory
#: (reliability notes, M8).
MAX_INFLATED_HEADER = 16 * 1024 * 1024
#: Cap on the inflated size of a whole file (pixel decoding of a deflated
#: or gzip-compressed file).
MAX_INFLATED_FILE = 1024 * 1024 * 1024
MAX_GZIP = MAX_INFLATED_FILE  # former name
_DEFLATED_TS = "1.2.840.10008.1.2.1.99"
_INFLATE_CHUNK = 1 << 16


class InflateCapError(ValueError):
    """A deflated header or file inflates past its cap (a deflate bomb)."""


def _inflate_capped(fobj, cap: int, wbits: int) -> tuple[bytes, bool]:
    """Inflate ``fobj`` from its position, at most ``cap`` bytes.

    Returns (data, capped): ``capped`` when the stream holds more than
    ``cap`` bytes (only ``cap`` are returned).  Memory stays within the cap
    plus one input chunk, whatever the compression ratio.
    """
    import zlib

    d = zlib.decompressobj(wbits)
    out = bytearray()
    while True:
        inp = d.unconsumed_tail
        if not inp:
            if d.eof:
                break
            inp = fobj.read(_INFLATE_CHUNK)
            if not inp:
                out += d.flush()  # what zlib still holds: at most a window
                if len(out) > cap:
                    return bytes(out[:cap]), True
                break
        out += d.decompress(inp, cap + 1 - len(out))
        if len(out) > cap:
            return bytes(out[:cap]), True
        if d.eof:
            if wbits > 16 and d.unused_data:
                # concatenated gzip members: inflate the next one
                rest = d.unused_data
                d = zlib.decompressobj(wbits)
                out += d.decompress(rest, cap + 1 - len(out))
                if len(out) > cap:
                    return bytes(out[:cap]), True
                continue
            break
    return bytes(out), False


def _check_cap(bio, capped: bool, cap: int, what: str) -> None:
    """After a stop-before-pixels read of a capped prefix: fail when the
    header did not end inside the prefix."""
    if capped and bio.tell() >= cap - 16:
        raise InflateCapError(f"{what} inflates past {cap // (1024 * 1024)} MiB before the pixel data")


def read_dataset_capped(src, *, stop_before_pixels: bool = True, cap: int | None = None):
    """pydicom read of a file (path or bytes) with every inflation capped.

    Handles gzip-wrapped files and the deflated transfer syntax by
    streaming the inflation (pydicom would inflate the whole data set at
    once, unbounded): at most ``cap`` inflated bytes are held
    (``MAX_INFLATED_HEADER`` with ``stop_before_pixels``, else
    ``MAX_INFLATED_FILE``).  A header that does not end within the cap, or a
    whole file over it, raises :class:`InflateCapError`.
    """
    import io
    import zlib

    if cap is None:
        cap = MAX_INFLATED_HEADER if stop_before_pixels else MAX_INFLATED_FILE
    fobj = io.BytesIO(src) if isinstance(src, (bytes, bytearray, memoryview)) else open(src, "rb")
    with fobj:
        magic = fobj.read(2)
        fobj.seek(0)
        if magic == b"\x1f\x8b":
            data, capped = _inflate_capped(fobj, cap, 16 + zlib.MAX_WBITS)
            if capped and not stop_before_pixels:
                raise InflateCapError(f"gzip file inflates past {cap // (1024 * 1024)} MiB")
            return _read_plain(io.BytesIO(data), stop_before_pixels, cap, capped)
        return _read_plain(fobj, stop_before_pixels, cap, False)


def _read_plain(fobj, stop_before_pixels: bool, cap: int, capped: bool):
    """dcmread of a seekable file object, inflating a deflated data set capped."""
    import io
    import zlib

    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    start = fobj.tell()
    preamble = read_preamble(fobj, True)
    meta = _read_file_meta_info(fobj)
    ts = str(meta.get("TransferSyntaxUID", "") or "").rstrip("\0 ")
    if ts != _DEFLATED_TS:
        fobj.seek(start)
        ds = pydicom.dcmread(fobj, stop_before_pixels=stop_before_pixels, force=True,
                             defer_size=4096 if stop_before_pixels else None)
        if stop_before_pixels:
            _check_cap(fobj, capped, cap, "gzip file")
        return ds
    if capped:  # deflate inside gzip: the inner stream is truncated anyway
        raise InflateCapError("gzip file inflates past the cap")
    data, capped = _inflate_capped(fobj, cap, -zlib.MAX_WBITS)
    if capped and not stop_before_pixels:
        raise InflateCapError(f"deflated data set inflates past {cap // (1024 * 1024)} MiB")
    bio = io.BytesIO(data)
    stop = (lambda tag, vr, length: tag in (0x7FE00008, 0x7FE00009, 0x7FE00010)) \
        if stop_before_pixels else None
    dataset = read_dataset(bio, False, True, stop_when=stop,
                           defer_size=4096 if stop_before_pixels else None)
    if stop_before_pixels:
        _check_cap(bio, capped, cap, "deflated data set")
    ds = FileDataset(bio, dataset, preamble, meta, False, True)
    ds.set_original_encoding(False, True, dataset._character_set)
    return ds


def _dcmread_fallback(src):
    """pydicom read of one file or blob's header (gzip and deflate inflated, capped)."""
    return read_dataset_capped(src, stop_before_pixels=True)


def _parse_with_pydicom(batch: HeaderBatch, i: int, why: str) -> None:
    """Parse one file with pydicom (the fallback engine)."""
    import warnings


    from pocketpacs.native.hashing import hash_bytes

    path = batch.paths[i]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _dcmread_fallback(batch._blobs[i] if batch._blobs is not None else path)
            values: dict[str, Any] = {}
            meta = getattr(ds, "file_meta", None)
            for spec in T.TAGS:
                src = meta if spec.level == "meta" else ds
                if src is None or spec.tag not in src:
                    continue
                elem = src[spec.tag]
                v = elem.value
                if v is None and elem.VR not in BINARY_VRS:
                    v = ""
                values[spec.keyword] = normalise(v)
    except RecursionError:
        batch.fail(i, "malformed", "sequences nested too deeply")
        return
    except MemoryError:
        batch.fail(i, "malformed", "declared lengths exceed memory")
        return
    except InflateCapError as e:
        batch.fail(i, "malformed", f"{why}; {e}")
        return
    except Exception as e:  # pydicom raises many types on bad input
        batch.fail(i, "malformed", f"{why}; pydicom could not parse it either ({type(e).__name__})")
        return
    if not any(k in values for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID")):
        batch.fail(i, "not_dicom", f"{why}; no DICOM identifiers found")
        return
    batch.status[i] = FALLBACK
    batch._py[i] = values
    for kw, j in _UID_COL.items():
        v = values.get(kw)
        if isinstance(v, str) and v:
            batch._uid_hash[i, j] = hash_bytes(v.rstrip("\0 ").encode("latin-1", "replace"))
    ts = values.get("TransferSyntaxUID")
    batch.encapsulated[i] = bool(ts) and ts not in (
        "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
    # fingerprint: the first bytes of the file (deterministic for equal content)
    try:
        if batch._blobs is not None:
            head = batch._blobs[i][:DEFAULT_HEAD]
        else:
            with open(path, "rb") as f:
                head = f.read(DEFAULT_HEAD)
        batch.fingerprint[i] = hash_bytes(head)
    except OSError:
        pass
