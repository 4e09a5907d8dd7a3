"""Frame access: read the pixels of many DICOM frames into one array.

Two routes, chosen per file by :attr:`PixelFormat.route`:

``native``
    Uncompressed little/big endian data at the offset the header parser
    recorded.  Frames are read with ``os.preadv`` either straight into the
    output array (same item size as stored: then converted in place by
    :func:`pocketpacs.native.assemble.convert_inplace`) or through a small
    staging buffer (:func:`pocketpacs.native.assemble.gather_frames`: byte
    swap, planar colour, item size change).  No per-frame Python objects
    besides the read call; the staging buffer is at most a quarter of the
    output, so loading peaks at 1.25x the final array.
``pydicom``
    Everything else (JPEG, JPEG-LS, JPEG 2000/HTJ2K, RLE, deflate, 1-bit,
    subsampled YBR, gzip-wrapped files): decoded by pydicom's decoder
    plugins in worker *processes* (:class:`DecoderPool`).  Processes, not
    threads: pylibjpeg-openjpeg holds the GIL.  A decoder that kills its
    process (e.g. ``free(): invalid size`` abort in openjpeg on a broken
    codestream) only loses that task: the pool notices the dead worker,
    starts another, retries the task's frames one by one and reports the
    frame that crashes as a :class:`FrameError`.

Values are the *stored* values exactly as pydicom's ``pixel_array`` gives
them (unused high bits cleared or sign-extended, YBR converted to RGB,
colour samples last), then optionally rescaled per frame.
"""
from __future__ import annotations

import atexit
import gzip
import io
import multiprocessing as mp
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait as mp_wait
from typing import Any, Sequence

import numpy as np

from .errors import PocketPacsError
from .log import logger

NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": False,  # implicit VR little endian -> big endian flag
    "1.2.840.10008.1.2.1": False,
    "1.2.840.10008.1.2.2": True,
}
_NATIVE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"}
#: A decode task that takes longer than this is killed and reported.
DECODE_TIMEOUT_S = 300.0
#: Staging buffer cap for the native route (bytes).
STAGING_MAX_BYTES = 64 << 20


class PixelError(PocketPacsError):
    """Pixel data cannot be read at all (no frame could be decoded)."""


@dataclass
class FrameError:
    """One frame (or file) that could not be decoded.

    Attributes
    ----------
    path : str
    frame : int
        Frame number in the file (-1: the whole file).
    reason : str
        Short description (never header values).
    crashed : bool
        The decoder process died on it.
    """

    path: str
    frame: int
    reason: str
    crashed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for reports)."""
        return {"file": self.path, "frame": self.frame, "reason": self.reason,
                "crashed": self.crashed}


@dataclass
class PixelFormat:
    """How a file stores its pixels.

    Attributes
    ----------
    rows, cols, samples, bits_allocated, bits_stored : int
    signed : bool
        Pixel Representation 1.
    photometric : str
    planar : int
    nframes : int
    transfer_syntax : str
    offset, length : int
        File offset / length of the Pixel Data value (-1 unknown).
    encapsulated : bool
    """

    rows: int
    cols: int
    samples: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    signed: bool = False
    photometric: str = "MONOCHROME2"
    planar: int = 0
    nframes: int = 1
    transfer_syntax: str = "1.2.840.10008.1.2.1"
    offset: int = -1
    length: int = -1
    encapsulated: bool = False

    @property
    def big_endian(self) -> bool:
        """Whether the data set is big endian."""
        return NATIVE_SYNTAXES.get(self.transfer_syntax, False)

    @property
    def frame_bytes(self) -> int:
        """Bytes per uncompressed frame."""
        return self.rows * self.cols * self.samples * self.bits_allocated // 8

    @property
    def stored_dtype(self) -> np.dtype:
        """NumPy dtype of the stored values (as pydicom returns them)."""
        ba = self.bits_allocated
        if ba <= 8:
            return np.dtype(np.int8 if self.signed else np.uint8)
        if ba <= 16:
            return np.dtype(np.int16 if self.signed else np.uint16)
        if ba <= 32:
            return np.dtype(np.int32 if self.signed else np.uint32)
        return np.dtype(np.int64 if self.signed else np.uint64)

    @property
    def route(self) -> str:
        """``"native"`` when the native kernels can read the frames."""
        if (self.transfer_syntax in NATIVE_SYNTAXES and not self.encapsulated
                and self.offset >= 0 and self.bits_allocated in (8, 16, 32)
                and self.photometric in _NATIVE_PHOTOMETRIC and self.samples in (1, 3, 4)
                and 1 <= self.bits_stored <= self.bits_allocated
                and self.rows > 0 and self.cols > 0
                and not (self.big_endian and self.bits_allocated == 8)  # OW word swap
                and (self.length < 0 or self.length >= self.frame_bytes * self.nframes)):
            return "native"
        return "pydicom"


def _int(v: Any, default: int) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return int(f) if np.isfinite(f) else default


def formats_from_batch(batch: Any) -> list[PixelFormat | None]:
    """Pixel formats of every file of a header batch (None for failed files).

    Parameters
    ----------
    batch : pocketpacs.headers.HeaderBatch

    Returns
    -------
    list of (PixelFormat or None)
    """
    cols = {k: batch.number(k) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
                                         "BitsStored", "PixelRepresentation",
                                         "PlanarConfiguration", "NumberOfFrames")}
    photo = batch.text("PhotometricInterpretation")
    ts = batch.transfer_syntax
    out: list[PixelFormat | None] = []
    for i in range(batch.n):
        if batch.status[i] < 0:
            out.append(None)
            continue
        ba = _int(cols["BitsAllocated"][i], 16)
        fmt = PixelFormat(
            rows=_int(cols["Rows"][i], 0), cols=_int(cols["Columns"][i], 0),
            samples=_int(cols["SamplesPerPixel"][i], 1), bits_allocated=ba,
            bits_stored=_int(cols["BitsStored"][i], ba),
            signed=_int(cols["PixelRepresentation"][i], 0) == 1,
            photometric=(photo[i] or "MONOCHROME2").strip().upper(),
            planar=_int(cols["PlanarConfiguration"][i], 0),
            nframes=max(1, _int(cols["NumberOfFrames"][i], 1)),
            transfer_syntax=(ts[i] or "1.2.840.10008.1.2").strip("\0 "),
            offset=int(batch.pixel_offset[i]) if batch.status[i] == 0 else -1,
            length=int(batch.pixel_length[i]),
            encapsulated=bool(batch.encapsulated[i]))
        out.append(fmt)
    return out


def format_from_dataset(ds: Any, offset: int = -1, length: int = -1) -> PixelFormat:
    """Pixel format of a pydicom dataset (``offset`` only if known)."""
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or
             "1.2.840.10008.1.2")
    ba = int(ds.get("BitsAllocated", 16) or 16)
    return PixelFormat(
        rows=int(ds.get("Rows", 0) or 0), cols=int(ds.get("Columns", 0) or 0),
        samples=int(ds.get("SamplesPerPixel", 1) or 1), bits_allocated=ba,
        bits_stored=int(ds.get("BitsStored", ba) or ba),
        signed=int(ds.get("PixelRepresentation", 0) or 0) == 1,
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper(),
        planar=int(ds.get("PlanarConfiguration", 0) or 0),
        nframes=max(1, _int(ds.get("NumberOfFrames", 1), 1)), transfer_syntax=ts,
        offset=offset, length=length,
        encapsulated=ts not in NATIVE_SYNTAXES and ts != "1.2.840.10008.1.2.1.99")


# --------------------------------------------------------------------------
# Worker processes (pydicom decoders)
# --------------------------------------------------------------------------
def _open_source(path: str) -> Any:
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return io.BytesIO(f.read())
    return path


def _decode_task(path: str, indices: list[int] | None) -> list[np.ndarray]:
    """Decode frames of one file with pydicom (runs in a worker)."""
    import warnings

    import pydicom
    from pydicom.pixels import iter_pixels

    src = _open_source(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src, force=True)
        nfr = max(1, _int(ds.get("NumberOfFrames", 1), 1))
        if indices is None:
            arr = ds.pixel_array
            if nfr == 1:
                return [np.ascontiguousarray(arr)]
            return [np.ascontiguousarray(a) for a in arr]
        if nfr == 1:
            return [np.ascontiguousarray(ds.pixel_array)]
        return [np.ascontiguousarray(a) for a in iter_pixels(ds, indices=indices)]


def _worker_main(conn: Any) -> None:
    # workers never need numba threads; keep them light
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        tid, path, indices, fn = msg
        try:
            res = (fn or _decode_task)(path, indices)
            conn.send((tid, "ok", res))
        except BaseException as exc:  # report, never die on a Python error
            conn.send((tid, "error", f"{type(exc).__name__}: {_safe_msg(exc)}"))


def _safe_msg(exc: BaseException) -> str:
    s = str(exc).splitlines()[0] if str(exc) else ""
    return s[:200]


class _Worker:
    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple | None = None
        self.started = 0.0

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(1)
        try:
            self.conn.close()
        except Exception:
            pass


class DecoderPool:
    """Worker processes running pydicom's decoders, with crash isolation.

    Parameters
    ----------
    workers : int, optional
        Number of processes (default: usable CPU cores).

    Notes
    -----
    Processes are started with the ``spawn`` method (safe in a threaded
    GUI process) on first use and kept for later calls; :meth:`close`
    stops them (also registered with ``atexit``).
    """

    def __init__(self, workers: int | None = None):
        if workers is None:
            try:
                workers = len(os.sched_getaffinity(0))
            except AttributeError:
                workers = os.cpu_count() or 1
        self.n = max(1, int(workers))
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self.crashes = 0

    def _ensure(self, n: int) -> None:
        self._workers = [w for w in self._workers if w.proc.is_alive()]
        while len(self._workers) < n:
            self._workers.append(_Worker(self._ctx))

    def close(self) -> None:
        """Stop all worker processes."""
        with self._lock:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except Exception:
                    pass
            for w in self._workers:
                w.proc.join(0.5)
                if w.proc.is_alive():
                    w.kill()
            self._workers = []

    def run(self, tasks: Sequence[tuple[str, list[int] | None]], on_result: Any,
            timeout_s: float = DECODE_TIMEOUT_S, decode_fn: Any = None) -> list[FrameError]:
        """Decode tasks ``(path, frame indices or None)``.

        Parameters
        ----------
        tasks : sequence of (str, list of int or None)
            ``None`` = all frames of the file.
        on_result : callable
            ``on_result(task_index, frame_indices, frames)`` for every decoded
            task (called in this thread; ``frames`` is a list of arrays).
        timeout_s : float
            Per-task limit; a worker over it is killed and the task reported.
        decode_fn : callable, optional
            A picklable module-level ``fn(path, indices) -> list of arrays``
            run instead of pydicom's decoders (other codecs, fault injection).

        Returns
        -------
        list of FrameError
        """
        errors: list[FrameError] = []
        with self._lock:
            queue: deque[tuple[int, str, list[int] | None, bool]] = deque(
                (i, p, ix, False) for i, (p, ix) in enumerate(tasks))
            self._ensure(min(self.n, max(1, len(queue))))
            busy: dict[int, _Worker] = {}
            tid_next = 0
            pending: dict[int, tuple[int, str, list[int] | None, bool]] = {}
            while queue or busy:
                for w in self._workers:
                    if not queue:
                        break
                    if id(w) in busy:
                        continue
                    task = queue.popleft()
                    tid = tid_next
                    tid_next += 1
                    try:
                        w.conn.send((tid, task[1], task[2], decode_fn))
                    except (BrokenPipeError, OSError):
                        queue.appendleft(task)
                        w.kill()
                        continue
                    w.task = (tid,) + task
                    w.started = time.monotonic()
                    busy[id(w)] = w
                    pending[tid] = task
                if not busy:
                    self._ensure(min(self.n, max(1, len(queue))))
                    continue
                waitables = []
                for w in busy.values():
                    waitables.extend([w.conn, w.proc.sentinel])
                ready = mp_wait(waitables, timeout=1.0)
                now = time.monotonic()
                for w in list(busy.values()):
                    tid, ti, path, idx, single = w.task  # type: ignore[misc]
                    got = None
                    if w.conn in ready:
                        try:
                            got = w.conn.recv()
                        except (EOFError, OSError):
                            got = None
                    if got is not None:
                        del busy[id(w)]
                        pending.pop(tid, None)
                        w.task = None
                        _, status, payload = got
                        if status == "ok":
                            on_result(ti, idx, payload)
                        else:
                            errors.append(FrameError(path, _frame_of(idx), payload))
                        continue
                    dead = not w.proc.is_alive() or w.proc.sentinel in ready
                    late = now - w.started > timeout_s
                    if dead or late:
                        if dead:
                            w.proc.join(1.0)
                        code = w.proc.exitcode
                        w.kill()
                        del busy[id(w)]
                        pending.pop(tid, None)
                        if w in self._workers:
                            self._workers.remove(w)
                        self.crashes += 1
                        why = ("decoder timed out" if late and not dead
                               else f"decoder process died (exit code {code})")
                        logger.warning("pixel decoder crashed on %s: %s", path, why)
                        if idx is not None and len(idx) > 1:
                            # isolate the bad frame(s)
                            for f in idx:
                                queue.append((ti, path, [f], True))
                        else:
                            errors.append(FrameError(path, _frame_of(idx), why, crashed=True))
                        self._ensure(min(self.n, max(1, len(queue) + len(busy))))
        return errors


def _frame_of(idx: list[int] | None) -> int:
    return idx[0] if idx is not None and len(idx) == 1 else -1


_POOL: DecoderPool | None = None
_POOL_LOCK = threading.Lock()


def decoder_pool() -> DecoderPool:
    """The process-wide :class:`DecoderPool` (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = DecoderPool()
            atexit.register(_POOL.close)
        return _POOL


# --------------------------------------------------------------------------
# Reading frames into an array
# --------------------------------------------------------------------------
def _preadv_into(fd: int, mv: memoryview, offset: int) -> int:
    got = 0
    n = len(mv)
    while got < n:
        r = os.preadv(fd, [mv[got:]], offset + got)
        if r <= 0:
            break
        got += r
    return got


def read_frames(paths: Sequence[str], formats: Sequence[PixelFormat], refs: np.ndarray,
                out: np.ndarray, slopes: np.ndarray | None = None,
                intercepts: np.ndarray | None = None, *, pool: DecoderPool | None = None,
                chunk_frames: int | None = None,
                ranges: list[tuple[float, float]] | None = None) -> list[FrameError]:
    """Read frames into the rows of a preallocated array.

    Parameters
    ----------
    paths : sequence of str
        Files.
    formats : sequence of PixelFormat
        Pixel format of each file (same rows/cols/samples for every frame
        referenced).
    refs : ndarray of int, (m, 2)
        ``(file index, frame index)`` of each output row.
    out : ndarray, (m, rows, cols[, samples])
        Output; written in place.  Its dtype decides the conversion.
    slopes, intercepts : ndarray of float64, (m,), optional
        Rescale per output row; when omitted the stored values are copied.
    pool : DecoderPool, optional
        Worker pool for compressed data (default: :func:`decoder_pool`).
    chunk_frames : int, optional
        Frames per decode task for multi-frame compressed files.
    ranges : list, optional
        When given, ``(min, max)`` tuples of the values written (after the
        rescale, before the cast to ``out.dtype``) are appended to it, so a
        caller can check that they fit ``out.dtype`` (see
        :func:`pocketpacs.volume.assemble_series`).

    Returns
    -------
    list of FrameError
        Frames that could not be read (their rows are filled with 0).
    """
    from pocketpacs.native import assemble as K

    m = int(refs.shape[0])
    if out.shape[0] != m:
        raise ValueError("out must have one row per frame reference")
    rescale = slopes is not None
    sl = np.ones(m) if slopes is None else np.asarray(slopes, dtype=np.float64)
    ic = np.zeros(m) if intercepts is None else np.asarray(intercepts, dtype=np.float64)
    if rescale and np.all(sl == 1.0) and np.all(ic == 0.0):
        rescale = False
    errors: list[FrameError] = []
    flat = out.reshape(m, -1)
    refs = np.asarray(refs, dtype=np.int64).reshape(m, 2)
    native_file = {fi: formats[fi] is not None and formats[fi].route == "native"
                   for fi in np.unique(refs[:, 0]).tolist()}
    is_native = np.fromiter((native_file[fi] for fi in refs[:, 0].tolist()), dtype=bool, count=m)
    native_rows = np.nonzero(is_native)[0].astype(np.int64)
    other: dict[int, list[tuple[int, int]]] = {}
    for row in np.nonzero(~is_native)[0].tolist():
        other.setdefault(int(refs[row, 0]), []).append((row, int(refs[row, 1])))
    if native_rows.size:
        errors.extend(_read_native(paths, formats, refs, native_rows, out, flat, sl, ic, rescale,
                                   K, ranges))
    if other:
        errors.extend(_read_pydicom(paths, formats, other, out, sl, ic, rescale,
                                    pool or decoder_pool(), chunk_frames, ranges))
    return errors


def _native_key(f: PixelFormat) -> tuple:
    return (f.bits_allocated, f.signed, f.big_endian, f.bits_stored, f.samples, f.planar,
            f.frame_bytes)


_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _read_native(paths, formats, refs, rows, out, flat, sl, ic, rescale, K,
                 ranges) -> list[FrameError]:
    """Uncompressed frames: one native call per stored format (no Python per file)."""
    errors: list[FrameError] = []
    ra = refs[rows]
    files = ra[:, 0]
    groups: dict[tuple, list[int]] = {}
    keys: dict[int, tuple] = {}
    for fi in np.unique(files).tolist():
        keys[fi] = _native_key(formats[fi])
    if len(set(keys.values())) == 1:
        groups[next(iter(keys.values()))] = list(range(rows.size))
    else:
        for j, fi in enumerate(files.tolist()):
            groups.setdefault(keys[fi], []).append(j)
    uniq = np.unique(files)
    enc = [os.fsencode(paths[int(fi)]) + b"\0" for fi in uniq]
    lens = np.fromiter((len(e) for e in enc), dtype=np.int64, count=len(enc))
    names = np.frombuffer(b"".join(enc), dtype=np.uint8)
    name_off = np.zeros(len(enc), dtype=np.int64)
    np.cumsum(lens[:-1], out=name_off[1:])
    local = np.searchsorted(uniq, files)  # file index -> position in names
    int_out = out.dtype.kind in "iu"
    nthreads = max(1, K.numba_threads())
    for key, js in groups.items():
        jj = np.asarray(js, dtype=np.int64)
        f = formats[int(files[jj[0]])]
        stored = f.stored_dtype
        nb = f.bits_allocated // 8
        dst = rows[jj]
        offs = np.fromiter((formats[int(fi)].offset for fi in files[jj].tolist()),
                           dtype=np.int64, count=jj.size) + ra[jj, 1] * f.frame_bytes
        interleaved = f.samples == 1 or f.planar == 0
        if out.dtype.itemsize == stored.itemsize and not f.big_endian and interleaved:
            mode = 0
        elif not f.big_endian and interleaved:
            mode = 1
        else:
            mode = 2
        nch = min(int(jj.size), 4 * nthreads)
        fb = f.frame_bytes if mode else 0
        stage = np.empty((nch, fb), dtype=np.uint8)
        stage_typed = stage.view(stored) if mode == 1 else np.empty((nch, 0), dtype=stored)
        src_view = flat.view(stored) if mode == 0 else flat[:0].view(np.uint8)
        s, b = sl[dst], ic[dst]
        int_rescale = bool(rescale and int_out and np.all(s == np.round(s))
                           and np.all(b == np.round(b)))
        got = np.zeros(jj.size, dtype=np.int64)
        vmin = np.full(jj.size, np.inf)
        vmax = np.full(jj.size, -np.inf)
        K.read_frames_native(names, name_off, local[jj], offs, dst, flat, src_view, stage,
                             stage_typed, mode, _O_READ, nb, bool(f.signed), bool(f.big_endian),
                             int(f.bits_stored), int(f.samples), int(f.planar),
                             bool(f.bits_stored < nb * 8), s, b, bool(rescale), int_rescale,
                             got, vmin, vmax)
        bad = np.nonzero(got < f.frame_bytes)[0]
        for j in bad.tolist():
            fi, fr = int(files[jj[j]]), int(ra[jj[j], 1])
            errors.append(FrameError(paths[fi], fr, _native_error(paths[fi], int(got[j]))))
            flat[dst[j]] = 0
            vmin[j], vmax[j] = 0.0, 0.0
        if ranges is not None and jj.size:
            ranges.append((float(vmin.min()), float(vmax.max())))
    _ybr_to_rgb(formats, refs, rows, out)
    return errors


def _native_error(path: str, got: int) -> str:
    if got >= 0:
        return "pixel data truncated"
    try:
        os.close(os.open(path, _O_READ))
    except OSError as exc:
        return _safe_msg(exc)
    return "file could not be opened"


def _ybr_to_rgb(formats, refs, rows, out) -> None:
    for r in rows:
        f = formats[int(refs[r, 0])]
        if f.photometric == "YBR_FULL" and f.samples == 3:
            from pydicom.pixels import convert_color_space

            out[r] = convert_color_space(np.asarray(out[r]), "YBR_FULL", "RGB")


def _read_pydicom(paths, formats, other, out, sl, ic, rescale, pool, chunk_frames,
                  ranges=None):
    tasks: list[tuple[str, list[int] | None]] = []
    task_rows: list[dict[int, int]] = []
    for fi, lst in other.items():
        frames = sorted({fr for _, fr in lst})
        f = formats[fi]
        nfr = f.nframes if f is not None else 1
        rows_of: dict[int, list[int]] = {}
        for row, fr in lst:
            rows_of.setdefault(fr, []).append(row)
        if nfr <= 1 or f is None:
            tasks.append((paths[fi], None))
            task_rows.append({0: rows_of.get(0, [lst[0][0]])})  # type: ignore[dict-item]
            continue
        cf = chunk_frames or max(1, min(64, -(-len(frames) // (2 * pool.n))))
        for a in range(0, len(frames), cf):
            part = frames[a:a + cf]
            tasks.append((paths[fi], part))
            task_rows.append({fr: rows_of[fr] for fr in part})  # type: ignore[misc]
    errors: list[FrameError] = []

    def on_result(ti: int, idx: list[int] | None, arrays: list[np.ndarray]) -> None:
        mapping = task_rows[ti]
        keys = idx if idx is not None else [0]
        if idx is None and len(arrays) > 1:
            keys = list(range(len(arrays)))
        for fr, arr in zip(keys, arrays):
            for row in mapping.get(fr, []):
                target = out[row]
                if arr.shape != target.shape:
                    errors.append(FrameError(tasks[ti][0], fr,
                                             f"decoded shape {arr.shape} != expected "
                                             f"{target.shape}"))
                    out[row] = 0
                    continue
                if rescale:
                    target[...] = arr * sl[row] + ic[row]
                else:
                    target[...] = arr

    errs = pool.run(tasks, on_result)
    # rows whose task failed: zero them
    for e in errs:
        for ti, (p, idx) in enumerate(tasks):
            if p != e.path:
                continue
            for fr, rws in task_rows[ti].items():
                if e.frame in (-1, fr):
                    for row in rws:
                        out[row] = 0
    return errors + errs


def decode_file(path: str, fmt: PixelFormat | None = None, *,
                pool: DecoderPool | None = None) -> tuple[np.ndarray, list[FrameError]]:
    """All frames of one file as stored values (pydicom ``pixel_array`` layout).

    Parameters
    ----------
    path : str
    fmt : PixelFormat, optional
        Taken from the header parser when omitted.
    pool : DecoderPool, optional

    Returns
    -------
    array : ndarray
        ``(rows, cols[, samples])`` for one frame, ``(frames, rows, cols[,
        samples])`` otherwise.
    errors : list of FrameError
    """
    if fmt is None:
        from .headers import parse_files

        batch = parse_files([path])
        f = formats_from_batch(batch)[0]
        if f is None:
            raise PixelError(f"{path}: {batch.message[0] or 'header could not be parsed'}")
        fmt = f
    shape: tuple[int, ...] = (fmt.nframes, fmt.rows, fmt.cols)
    if fmt.samples > 1:
        shape += (fmt.samples,)
    out = np.zeros(shape, dtype=fmt.stored_dtype)
    refs = np.stack([np.zeros(fmt.nframes, dtype=np.int64),
                     np.arange(fmt.nframes, dtype=np.int64)], axis=1)
    errs = read_frames([path], [fmt], refs, out, pool=pool)
    return (out[0] if fmt.nframes == 1 else out), errs
