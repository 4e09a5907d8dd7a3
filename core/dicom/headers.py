"""Parse the DICOM headers of many files at once.

``parse_files(paths)`` reads the head of every file (``os.preadv`` into one
preallocated buffer; never mmap), parses the batch with the numba kernels in
:mod:`pocketpacs.native.dicomparse` (in parallel, GIL released), re-reads the
few files whose header is longer than the first read, and hands files the
fast path cannot decide (deflate, unknown transfer syntaxes, encodings that
switch) to pydicom (``stop_before_pixels``, :mod:`pocketpacs.dicom.fallback`).
The result is a :class:`~pocketpacs.dicom.batch.HeaderBatch`: fixed-width
arrays per batch, no Python object per file until a caller asks for a column
or a record.  File heads are read by :mod:`pocketpacs.dicom.heads`.

No function here raises for a bad file: every file ends parsed (natively or
by the fallback) or failed with a reason code and a message that names the
file and the problem, never a header value.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import tags
from .batch import NATIVE, UID_COLS, HeaderBatch
from .fallback import parse_with_pydicom
from .heads import read_head, read_heads
from .kernels import choose, parser_module
from ..log import logger

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

#: The most bytes of one file read as its header (everything before the pixel
#: data): a file whose header is longer fails with reason ``unsupported``.
MAX_HEADER_BYTES = 64 * 1024 * 1024
#: The most bytes of long headers (those re-read past the first read) a batch
#: holds at once: past it, the values of the parsed headers are copied out
#: (a few KB a file) and their buffers dropped, so a batch of many large
#: headers stays within this plus the first read (at most 256 KiB a file).
MAX_BATCH_HEADER_BYTES = 256 * 1024 * 1024


# ---- reading ------------------------------------------------------------------

_READ_THREADS = 1  # measured: extra reader threads lose to GIL contention
_EXECUTORS: dict[int, Any] = {}


def _executor(threads: int):
    from concurrent.futures import ThreadPoolExecutor

    ex = _EXECUTORS.get(threads)
    if ex is None:
        ex = _EXECUTORS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="pp-read")
    return ex


def compile_seconds() -> float:
    """Seconds this process has spent compiling the parser's kernels (numba).

    Zero until the kernels are first needed, and zero on a machine whose
    kernel cache is warm; the first import after installing spends a few
    seconds here, which its report gives apart (``preparing the parser``).
    Never imports numba itself.

    Returns
    -------
    float
        Seconds, cumulative over the process: take differences.
    """
    import sys

    # another thread may be importing it right now (the app's warm-up): a module
    # still running its body has no ``compile_seconds`` yet, and nothing compiled
    fn = getattr(sys.modules.get("pocketpacs.native._jit"), "compile_seconds", None)
    return fn() if fn is not None else 0.0


def _kernel_args():
    return (tags.TAG_ARRAY, tags.VR_ARRAY, tags.NUM_START, tags.NUM_COUNT, UID_COLS)


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
    spaths = [os.fspath(p) for p in paths]
    batch = HeaderBatch(spaths)
    n = batch.n
    dicomparse = parser_module(n)  # (a small batch: the interpreted kernels, numba not loaded)
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
        for j in np.nonzero(~ok)[0].tolist():
            read_again(lo + j, want and not known[j])

    def read_again(i: int, unknown: bool) -> None:
        """A file the batch's read could not read, read again alone: its
        exact reason, or its head when it reads now (a failure of the moment,
        as too many files open at once, is no reason to report a file)."""
        got, size, mtime, reason, msg = read_head(spaths[i], mv[i * head_size:(i + 1) * head_size])
        if reason is not None:
            batch.fail(i, reason, msg or reason)
            return
        lengths[i] = got
        readable[i] = True
        if unknown:   # (listed without stat)
            fsizes[i] = batch.size[i] = size
            batch.mtime_ns[i] = mtime

    def take_heads() -> None:
        """Heads a read-ahead helper has read (``pocketpacs.archive.readahead``)."""
        ok = heads.got >= 0
        lengths[ok] = heads.got[ok]
        readable[:] = ok
        unknown = fsizes < 0
        was_unknown = unknown.copy()
        fsizes[unknown] = np.where(ok[unknown], heads.size[unknown], 0)
        batch.size[unknown] = fsizes[unknown]
        batch.mtime_ns[unknown] = np.where(ok[unknown], heads.mtime_ns[unknown], 0)
        for i in np.nonzero(~ok)[0].tolist():  # the exact reason, read again here
            read_again(i, bool(was_unknown[i]))

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
    _run_kernel(dicomparse, batch, buf, starts, lengths, fsizes, todo, info, parallel)
    batch._start[:] = starts

    # files whose header is longer than the first read
    held = 0  # bytes of re-read buffers the batch keeps
    for _round in range(8):
        need = np.nonzero(readable & (info[:, 0] == dicomparse.NEED_MORE))[0]
        for i in need[info[need, 3] > MAX_HEADER_BYTES].tolist():
            _header_too_long(batch, i, readable, info, dicomparse)
        need = need[readable[need]]
        if need.size == 0:
            break
        sizes = np.minimum(np.maximum(info[need, 3], lengths[need] * 4), fsizes[need])
        sizes = np.minimum(sizes, MAX_HEADER_BYTES)
        # groups of at most MAX_BATCH_HEADER_BYTES; when the round does not fit
        # beside what the batch holds, each group's values are copied out after
        # its parse and its buffer dropped
        compact = held + int(sizes.sum()) > MAX_BATCH_HEADER_BYTES
        group = np.zeros(need.size, dtype=np.int64)
        acc = 0
        for j, sz in enumerate(sizes.tolist() if compact else ()):
            if acc and acc + sz > MAX_BATCH_HEADER_BYTES:
                group[j:] += 1
                acc = 0
            acc += sz
        for g in np.unique(group).tolist():
            sel = group == g
            _reread(batch, spaths, need[sel], sizes[sel], readable, info, lengths, starts, fsizes,
                    dicomparse, compact)
        if not compact:
            held += int(sizes.sum())
        done = need[readable[need]]
        still = done[(info[done, 0] == dicomparse.NEED_MORE)
                     & (sizes[readable[need]] >= MAX_HEADER_BYTES)]
        for i in still.tolist():
            _header_too_long(batch, i, readable, info, dicomparse)
    else:
        for i in np.nonzero(readable & (info[:, 0] == dicomparse.NEED_MORE))[0].tolist():
            info[i, 0] = dicomparse.FAILED
            info[i, 1] = dicomparse.R_MALFORMED

    _finish(batch, info, readable, fallback)
    if adaptive:
        _HEAD.learn(batch, head_size)
    return batch


def _header_too_long(batch: HeaderBatch, i: int, readable: np.ndarray, info: np.ndarray,
                     dicomparse) -> None:
    batch.fail(i, "unsupported", f"header longer than {MAX_HEADER_BYTES >> 20} MiB "
                                 f"(the most read of one file)")
    readable[i] = False
    info[i, 0] = dicomparse.FAILED


def _reread(batch: HeaderBatch, spaths: list[str], rows: np.ndarray, sizes: np.ndarray,
            readable: np.ndarray, info: np.ndarray, lengths: np.ndarray, starts: np.ndarray,
            fsizes: np.ndarray, dicomparse, compact: bool) -> None:
    """Read ``rows`` again, ``sizes`` bytes each, into one buffer and parse them."""
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    buf2 = np.empty(int(sizes.sum()), dtype=np.uint8)
    mv2 = memoryview(buf2)
    bid = len(batch._bufs)
    batch._bufs.append(buf2)
    for j, i in enumerate(rows.tolist()):
        a = int(offs[j])
        got, size, mtime, reason, msg = read_head(spaths[i], mv2[a:a + int(sizes[j])])
        if reason is not None:
            batch.fail(i, reason, msg or reason)
            readable[i] = False
            info[i, 0] = dicomparse.FAILED
            continue
        lengths[i] = got
        starts[i] = a
        if got < sizes[j] and got < size:
            fsizes[i] = got
        batch._buf_id[i] = bid
        batch._start[i] = a
    todo = rows[readable[rows]].astype(np.int64)
    if todo.size:
        _run_kernel(dicomparse, batch, buf2, starts, lengths, fsizes, todo, info, False)
    if compact:
        _compact(batch, rows, bid)


def _compact(batch: HeaderBatch, rows: np.ndarray, bid: int) -> None:
    """Copy the values of ``rows`` out of buffer ``bid`` into a buffer of
    their own (value bytes only) and drop the big one."""
    buf = batch._bufs[bid]
    parts = []
    pos = 0
    for i in rows.tolist():
        if batch._buf_id[i] != bid:
            continue
        a = int(batch._start[i])
        for k in np.nonzero(batch._vlen[i] >= 0)[0].tolist():
            off, ln = int(batch._voff[i, k]), int(batch._vlen[i, k])
            parts.append(buf[a + off:a + off + ln])
            batch._voff[i, k] = pos
            pos += ln
        batch._start[i] = 0
    batch._bufs[bid] = np.concatenate(parts) if parts else np.zeros(1, dtype=np.uint8)


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
    from pocketpacs.native import dicomparse

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
    # a writable buffer, as parse_files': a read-only one is another
    # specialisation of every kernel to compile and cache (issue 16)
    buf = np.frombuffer(bytearray().join(blobs), dtype=np.uint8) if lengths.sum() else np.zeros(1, np.uint8)
    batch._bufs.append(buf)
    batch._start[:] = starts
    batch.size[:] = lengths
    readable = np.ones(n, dtype=bool)
    info = np.zeros((n, 13), dtype=np.int64)
    _run_kernel(dicomparse, batch, buf, starts, lengths, lengths.copy(), np.arange(n, dtype=np.int64),
                info, None)
    _finish(batch, info, readable, fallback)
    return batch


def _finish(batch: HeaderBatch, info: np.ndarray, readable: np.ndarray, fallback: bool) -> None:
    """Turn the kernel's info rows into the batch's status/reason columns."""
    n = batch.n
    dicomparse = parser_module(n)
    st = info[:, 0]
    ok = readable & (st == dicomparse.OK)
    batch.status[ok] = NATIVE
    batch.fingerprint[:] = info[:, 11].view(np.uint64)
    batch.header_end[:] = info[:, 12]
    batch.pixel_offset[:] = np.where(ok, info[:, 8], -1)
    batch.pixel_length[:] = np.where(ok & (info[:, 10] == 0), info[:, 9], -1)
    batch.encapsulated[:] = ok & (info[:, 10] == 1)
    batch.little_endian[:] = info[:, 5] == 1
    batch.explicit_vr[:] = info[:, 6] == 1
    for i in np.nonzero(readable & (st == dicomparse.FAILED))[0].tolist():
        reason, msg = _KERNEL_REASONS.get(int(info[i, 1]), ("malformed", "malformed DICOM structure"))
        off = int(info[i, 2])
        if off > 0:
            msg = f"{msg} (at byte {off})"
        batch.fail(i, reason, msg)
    fb = np.nonzero(readable & (st == dicomparse.FALLBACK))[0].tolist()
    for i in fb:
        why = _FALLBACK_REASONS.get(int(info[i, 1]), "outside the fast path")
        batch.fallback_reason[i] = why
        if fallback:
            parse_with_pydicom(batch, i, why)
        else:
            batch.fail(i, "unsupported", why)
    if fb:
        logger.debug("%d of %d files parsed by the pydicom fallback", len(fb), n)


def _run_kernel(dicomparse, batch, buf, starts, lengths, fsizes, todo, info, parallel):
    if parallel is None:
        parallel = todo.size >= 256
    name = "parse_batch" if parallel else "parse_serial"
    # the first run after installing: a small batch runs the kernels
    # interpreted while they compile in the background (kernels.choose)
    module = choose("dicomparse", name, int(todo.size), int(lengths[todo].sum()))
    with np.errstate(all="ignore"):  # interpreted, uint64 hashing wraps as compiled
        getattr(module, name)(buf, starts, lengths, fsizes, todo, *_kernel_args(), batch._voff, batch._vlen,
                              batch._vrs, batch._nums, batch._numflag, batch._uid_hash, info)
