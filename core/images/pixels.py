"""Frame access: read the pixels of many DICOM frames into one array.

Two routes, chosen per file by :attr:`PixelFormat.route`:

``native``
    Uncompressed little/big endian data at the offset the header parser
    recorded.  The frames are read here, in Python, with ``os.preadv``
    (``lseek`` + ``readv``, or ``FileIO.readinto`` on Windows) either
    straight into the output rows (stored dtype = output dtype) or into a
    small per-thread scratch buffer, in chunks of a few frames; each chunk is
    then converted while it is still in the CPU cache by a serial kernel of
    :mod:`pocketpacs.native.assemble` (bit correction, byte swap, planar
    colour, rescale, dtype, value range).  Two threads take chunks in turn
    (the reads and the kernels release the GIL), so reading and converting
    overlap.  No mmap; the scratch buffers are at most 1/16 of the output.
``pydicom``
    Everything else (JPEG, JPEG-LS, JPEG 2000/HTJ2K, RLE, deflate, 1-bit,
    subsampled YBR, gzip-wrapped files): decoded by pydicom's decoder
    plugins in worker *processes* (:class:`DecoderPool`).  Processes, not
    threads: pylibjpeg-openjpeg holds the GIL.  One single-threaded decoder
    per process: JPEG 2000 goes to pylibjpeg-openjpeg first, not to GDCM's
    multi-threaded OpenJPEG (:data:`SINGLE_THREAD_PLUGIN`), so a pool of one
    process per core scales with the cores.  A decoder that kills its
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

from ..errors import PocketPacsError
from ..log import logger

#: Uncompressed transfer syntaxes -> big endian.  The UIDs of this module's
#: hot paths and tables are spelled out rather than taken from ``pydicom.uid``:
#: importing pydicom (about 0.25 s) would come with every ``import pocketpacs``,
#: and reading plain uncompressed files never needs it.  tests/test_syntaxes.py
#: checks every one against ``pydicom.uid``.
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": False,  # implicit VR little endian -> big endian flag
    "1.2.840.10008.1.2.1": False,
    "1.2.840.10008.1.2.2": True,
}
_NATIVE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"}
#: A decode task that takes longer than this is killed and reported.
DECODE_TIMEOUT_S = 300.0


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


#: Bits Allocated values pixel data can have (PS3.5 8.1.1; pydicom's check).
VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)
#: Bytes an image may need beyond what its file could hold (uncompressed),
#: or beyond ``MAX_COMPRESSION_RATIO`` times the file (compressed).  Outputs
#: are allocated from the header's Rows x Columns x frames only within this
#: bound, so a bogus header cannot ask for gigabytes (reliability notes M12).
PIXEL_SLACK_BYTES = 128 * 1024 * 1024
MAX_COMPRESSION_RATIO = 2048
MAX_FRAMES = 1 << 24


def decoded_bytes(fmt: "PixelFormat") -> int:
    """Bytes all frames of ``fmt`` take decoded (1-bit frames rounded up)."""
    per = fmt.rows * fmt.cols * fmt.samples
    return -(-per * fmt.bits_allocated // 8) * fmt.nframes


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def format_problem(fmt: "PixelFormat", file_size: int, gzipped: bool = False) -> str | None:
    """Why ``fmt`` cannot describe the pixels of a ``file_size``-byte file
    (None when it can).  Checked before anything is allocated from it.
    ``gzipped``: the file is gzip-compressed (its pixels are compressed
    whatever the transfer syntax says)."""
    if not (1 <= fmt.rows <= 65535 and 1 <= fmt.cols <= 65535):
        return f"Rows x Columns {fmt.rows} x {fmt.cols} out of range"
    if fmt.samples not in (1, 3, 4):
        return f"Samples per Pixel {fmt.samples} not supported"
    if fmt.bits_allocated not in VALID_BITS_ALLOCATED:
        return f"Bits Allocated {fmt.bits_allocated} is not 1, 8, 16, 32 or 64"
    if not 1 <= fmt.nframes <= MAX_FRAMES:
        return f"Number of Frames {fmt.nframes} out of range"
    need = decoded_bytes(fmt)
    compressed = gzipped or fmt.encapsulated or fmt.transfer_syntax not in NATIVE_SYNTAXES
    if file_size >= 0:
        room = file_size * (MAX_COMPRESSION_RATIO if compressed else 1) + PIXEL_SLACK_BYTES
        if need > room:
            return (f"Rows x Columns x Frames x Bits Allocated need {need:,} bytes, "
                    f"more than a {file_size:,}-byte file can hold")
    return None


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
    batch : pocketpacs.dicom.batch.HeaderBatch

    Returns
    -------
    list of (PixelFormat or None)
    """
    cols = {k: batch.number(k) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
                                         "BitsStored", "PixelRepresentation",
                                         "PlanarConfiguration", "NumberOfFrames")}
    photo = batch.text("PhotometricInterpretation")
    ts = batch.transfer_syntax

    def ints(a: np.ndarray, default: int | np.ndarray) -> list[int]:
        ok = np.isfinite(a) & (np.abs(a) < 2 ** 62)
        return np.where(ok, np.trunc(np.where(ok, a, 0)), default).astype(np.int64).tolist()

    ba = ints(cols["BitsAllocated"], 16)
    bs = ints(cols["BitsStored"], np.where(np.isfinite(cols["BitsAllocated"]),
                                           cols["BitsAllocated"], 16))
    rows, ccols = ints(cols["Rows"], 0), ints(cols["Columns"], 0)
    smp, pr = ints(cols["SamplesPerPixel"], 1), ints(cols["PixelRepresentation"], 0)
    pc, nf = ints(cols["PlanarConfiguration"], 0), ints(cols["NumberOfFrames"], 1)
    native = (batch.status == 0).tolist()
    offs, lens = batch.pixel_offset.tolist(), batch.pixel_length.tolist()
    enc = batch.encapsulated.tolist()
    failed = (batch.status < 0).tolist()
    out: list[PixelFormat | None] = []
    for i in range(batch.n):
        if failed[i]:
            out.append(None)
            continue
        out.append(PixelFormat(
            rows=rows[i], cols=ccols[i], samples=smp[i], bits_allocated=ba[i],
            bits_stored=bs[i], signed=pr[i] == 1,
            photometric=(photo[i] or "MONOCHROME2").strip().upper(), planar=pc[i],
            nframes=max(1, nf[i]), transfer_syntax=(ts[i] or "1.2.840.10008.1.2").strip("\0 "),
            offset=offs[i] if native[i] else -1, length=lens[i], encapsulated=bool(enc[i])))
    return out


def format_from_dataset(ds: Any, offset: int = -1, length: int = -1) -> PixelFormat:
    """Pixel format of a pydicom dataset (``offset`` only if known)."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or
             ImplicitVRLittleEndian)
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
        encapsulated=ts not in NATIVE_SYNTAXES and ts != DeflatedExplicitVRLittleEndian)


# --------------------------------------------------------------------------
# Worker processes (pydicom decoders)
# --------------------------------------------------------------------------
def _open_source(path: str) -> Any:
    """What pydicom reads for ``path``: gzip inflated in memory (capped at
    ``fallback.MAX_INFLATED_FILE``)."""
    if path.endswith(".gz"):
        from ..dicom.fallback import MAX_INFLATED_FILE, InflateCapError

        with gzip.open(path, "rb") as f:
            data = f.read(MAX_INFLATED_FILE + 1)
        if len(data) > MAX_INFLATED_FILE:
            raise InflateCapError(f"gzip file inflates past {MAX_INFLATED_FILE >> 20} MiB")
        return io.BytesIO(data)
    return path


#: Decoder plugin used first per transfer syntax in the workers.  pydicom
#: prefers GDCM for JPEG 2000 when python-gdcm is installed, and GDCM's
#: OpenJPEG decodes with a thread per CPU (measured: 1.65 cores busy per
#: process, 17.5 ms wall / 29 ms CPU per 512x512 lossless CT slice, against
#: 25.5 ms on one core for pylibjpeg-openjpeg).  The pool already uses one
#: process per core, so a threaded decoder only makes the processes fight
#: over the cores (a 2-process pool was 1.1x a 1-process one); the
#: single-threaded pylibjpeg-openjpeg gives ~1.9x and more frames per CPU
#: second.  When that plugin is missing or fails on a file, pydicom's default
#: order is used.
SINGLE_THREAD_PLUGIN = {uid: "pylibjpeg" for uid in (
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",  # JPEG 2000 (lossless / lossy)
    "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",  # JPEG 2000 multi-component
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",  # HTJ2K
    "1.2.840.10008.1.2.4.203")}


def _plugin_for(ds: Any) -> str:
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    name = SINGLE_THREAD_PLUGIN.get(ts, "")
    if not name:
        return ""
    try:
        from pydicom.pixels import get_decoder

        return name if name in get_decoder(ts).available_plugins else ""
    except Exception:
        return ""


def _decode_task_default_order(path: str, indices: list[int] | None) -> list[np.ndarray]:
    """:func:`_decode_task` with pydicom's default plugin order (crash retry)."""
    return _decode_task(path, indices, prefer=False)


def _decode_task(path: str, indices: list[int] | None, prefer: bool = True) -> list[np.ndarray]:
    """Decode frames of one file with pydicom (runs in a worker)."""
    import warnings

    from ..dicom.fallback import read_dataset_capped

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # gzip and deflated data sets inflate streamed, capped (deflate bombs)
        ds = read_dataset_capped(path, stop_before_pixels=False)
        plugin = _plugin_for(ds) if prefer else ""
        if plugin:
            try:
                return _decode_ds(ds, indices, plugin)
            except Exception:
                pass  # e.g. a codestream only GDCM reads: pydicom's default order
        return _decode_ds(ds, indices, "")


def _check_declared_sizes(ds: Any, nfr: int, indices: list[int] | None) -> None:
    """Compare each compressed frame's declared size with Rows x Columns
    before a decoder allocates from it (see :mod:`pocketpacs.dicom.codestreams`)."""
    from pydicom.encaps import generate_frames

    from ..dicom.codestreams import J2K_SYNTAXES, JPEG_SYNTAXES, check_frame

    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if ts not in J2K_SYNTAXES and ts not in JPEG_SYNTAXES:
        return
    rows, cols = _int(ds.get("Rows", 0), 0), _int(ds.get("Columns", 0), 0)
    bits = _int(ds.get("BitsAllocated", 0), 0)
    want = None if indices is None else set(indices)
    for i, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=nfr)):
        if want is None or i in want:
            check_frame(frame, ts, rows, cols, bits)


def _decode_ds(ds: Any, indices: list[int] | None, plugin: str) -> list[np.ndarray]:
    from pydicom.pixels import iter_pixels

    nfr = max(1, _int(ds.get("NumberOfFrames", 1), 1))
    _check_declared_sizes(ds, nfr, indices)
    if indices is None or nfr == 1:
        ds.pixel_array_options(decoding_plugin=plugin)
        arr = ds.pixel_array
        if nfr == 1 or indices is not None:
            return [np.ascontiguousarray(arr)]
        return [np.ascontiguousarray(a) for a in arr]
    opts = {"decoding_plugin": plugin} if plugin else {}
    return [np.ascontiguousarray(a) for a in iter_pixels(ds, indices=indices, **opts)]


def _convert_frame(arr: np.ndarray, dest: np.ndarray, rescale: bool, slope: float,
                   intercept: float) -> tuple[float, float]:
    """Write one decoded frame into ``dest`` (output dtype), rescaled; (min, max) written."""
    if rescale:
        if dest.dtype.kind in "iu" and slope == int(slope) and intercept == int(intercept):
            v = arr.astype(np.int64)
            if slope != 1:
                v *= int(slope)
            v += int(intercept)
        else:
            v = arr * np.float64(slope) + np.float64(intercept)
    else:
        v = arr
    if v.size == 0:
        return 0.0, 0.0
    lo, hi = float(v.min()), float(v.max())
    dest[...] = v
    return lo, hi


class _ShmCache:
    """The worker's attachment to the parent's shared output slots."""

    def __init__(self) -> None:
        self.name: str | None = None
        self.shm: Any = None

    def buf(self, name: str) -> Any:
        if name != self.name:
            self.close()
            from multiprocessing import shared_memory

            # spawned workers share the parent's resource tracker, which already
            # knows the segment: the parent unlinks it
            self.shm = shared_memory.SharedMemory(name=name)
            self.name = name
        return self.shm.buf

    def close(self) -> None:
        if self.shm is not None:
            try:
                self.shm.close()
            except Exception:
                pass
        self.shm, self.name = None, None


def _run_items(items: list, fn: Any, conv: dict | None, shm: _ShmCache) -> list:
    """Decode the items of one message (runs in a worker); per-item results."""
    res: list = []
    pos = 0  # next frame slot in the shared segment
    view = None
    if conv is not None and conv.get("shm"):
        buf = shm.buf(conv["shm"])
        fshape = tuple(conv["shape"])
        cap = conv["slot_frames"]
        view = np.ndarray((cap,) + fshape, dtype=np.dtype(conv["dtype"]), buffer=buf,
                          offset=conv["slot_offset"])
    for path, indices, params in items:
        try:
            frames = (fn or _decode_task)(path, indices)
        except BaseException as exc:  # report, never die on a Python error
            res.append(("error", f"{type(exc).__name__}: {_safe_msg(exc)}"))
            continue
        if conv is None:
            res.append(("ok", frames))
            continue
        fshape = tuple(conv["shape"])
        out_items = []
        for j, arr in enumerate(frames):
            if tuple(arr.shape) != fshape:
                out_items.append(("shape", tuple(arr.shape)))
                continue
            s, b = params[j] if params is not None and j < len(params) else (1.0, 0.0)
            if view is not None and pos < view.shape[0]:
                lo, hi = _convert_frame(arr, view[pos], conv["rescale"], s, b)
                out_items.append(("slot", pos, lo, hi))
                pos += 1
            else:
                dest = np.empty(fshape, dtype=np.dtype(conv["dtype"]))
                lo, hi = _convert_frame(arr, dest, conv["rescale"], s, b)
                out_items.append(("array", dest, lo, hi))
        res.append(("ok", out_items))
    return res


def _worker_main(conn: Any) -> None:
    # warm the decoders while the parent prepares the first message
    try:
        import pydicom  # noqa: F401
        import pydicom.pixels  # noqa: F401
    except Exception:
        pass
    shm = _ShmCache()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg is None:
            break
        tid, items, fn, conv = msg
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            res = _run_items(items, fn, conv, shm)
            # busy wall time and CPU time of this message (pool statistics)
            conn.send((tid, "ok", res, time.perf_counter() - t0, time.process_time() - c0))
        except BaseException as exc:  # e.g. a result that cannot be pickled
            conn.send((tid, "error", f"{type(exc).__name__}: {_safe_msg(exc)}",
                       time.perf_counter() - t0, time.process_time() - c0))
    shm.close()


def _safe_msg(exc: BaseException) -> str:
    s = str(exc).splitlines()[0] if str(exc) else ""
    return s[:200]


class _Worker:
    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: deque = deque()  # (tid, message entry, slot, sent time), oldest first
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


@dataclass
class _Msg:
    """Queued work: items ``(task index, path, frame indices)``; ``single``: split on crash.

    ``default_order``: decode with pydicom's default plugin order (no
    :data:`SINGLE_THREAD_PLUGIN`), the retry of a file that killed its worker.
    """

    items: list
    split: bool = True
    default_order: bool = False


class DecoderPool:
    """Worker processes running pydicom's decoders, with crash isolation.

    Parameters
    ----------
    workers : int, optional
        Number of processes (default: usable CPU cores).

    Notes
    -----
    Processes are started with the ``spawn`` method (safe in a threaded
    GUI process) on first use and kept (warm, decoders imported) for later
    calls; :meth:`close` stops them (also registered with ``atexit``).
    Every worker has up to :attr:`depth` messages queued so it never waits
    for the parent between files, and a message carries several files,
    fewer towards the end of a run (:attr:`tail`).  Workers open and read
    the files themselves; the parent only sends paths and copies finished
    frames out of the shared slots (about 1-2% of a run's wall time in CPU
    for 512x512 JPEG 2000, see :attr:`stats`).
    With ``convert``, workers rescale each frame into the output dtype and
    write it into a shared-memory slot of the parent (no pickled frames); the
    parent only copies the slot into the output rows.  The slots stay under
    an eighth of the output where one frame per slot allows it (short series
    get smaller messages, then one message in flight per worker), so peak
    memory stays near the final array's size; :attr:`stats` reports
    ``shm_bytes``.
    """

    #: Messages in flight per worker.
    depth = 2
    #: With ``batch > 1`` messages shrink towards the end of a run (guided
    #: scheduling): a message carries at most ``remaining tasks / (tail *
    #: workers)`` tasks, so the last messages are single files and no worker
    #: is left with a long queue while the other idles.
    tail = 4

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
        #: Statistics of the last :meth:`run`: ``wall`` (s), ``parent_cpu`` (CPU
        #: seconds of this process, all threads, during the run), ``worker_busy``
        #: / ``worker_cpu`` (sums over messages of the workers' wall / CPU time
        #: spent decoding), ``messages``, ``tasks``, ``workers``.
        self.stats: dict[str, float] = {}
        self._depth_now = self.depth

    def _ensure(self, n: int) -> None:
        self._workers = [w for w in self._workers if w.proc.is_alive()]
        while len(self._workers) < n:
            self._workers.append(_Worker(self._ctx))

    def start(self) -> None:
        """Start the worker processes now (they import the decoders in the background)."""
        with self._lock:
            self._ensure(self.n)

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

    def run(self, tasks: Sequence[tuple], on_result: Any,
            timeout_s: float = DECODE_TIMEOUT_S, decode_fn: Any = None, *,
            convert: dict | None = None, batch: int = 1) -> list[FrameError]:
        """Decode tasks ``(path, frame indices or None[, rescale params])``.

        Parameters
        ----------
        tasks : sequence of tuple
            ``(path, indices)``; ``None`` = all frames of the file.  With
            ``convert`` a third element gives ``(slope, intercept)`` per frame
            (or None).
        on_result : callable
            ``on_result(task_index, frame_indices, frames)`` for every decoded
            task (called in this thread; ``frames`` is a list of arrays).  With
            ``convert``: ``on_result(task_index, frame_indices, frames, ranges)``,
            the frames already in the output dtype (views valid only during the
            call; a frame of the wrong shape is given as None) and ``ranges`` a
            list of ``(min, max)``.
        timeout_s : float
            Per-task limit; a worker over it is killed and the task reported.
        decode_fn : callable, optional
            A picklable module-level ``fn(path, indices) -> list of arrays``
            run instead of pydicom's decoders (other codecs, fault injection).
        convert : dict, optional
            ``{"dtype", "shape", "rescale"}``: output dtype, frame shape and
            whether to apply the per-frame rescale, done in the workers.
        batch : int
            Tasks per message (several small files per round trip).

        Returns
        -------
        list of FrameError
        """
        errors: list[FrameError] = []
        tasks = list(tasks)
        batch = max(1, int(batch))
        t0, c0 = time.perf_counter(), time.process_time()
        depth = self.depth
        if convert is not None and tasks:
            # the shared slots (workers x depth messages of `batch` tasks) stay
            # under an eighth of the output where they can: short series get
            # smaller messages, then one message in flight per worker
            per = max(len(t[1]) if t[1] is not None else 1 for t in tasks)
            frame_bytes = max(1, int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize)
            budget = sum(len(t[1]) if t[1] is not None else 1 for t in tasks) * frame_bytes // 8
            batch = max(1, min(batch, budget // (self.n * depth * per * frame_bytes)))
            if self.n * depth * per * batch * frame_bytes > budget:
                depth = 1
        with self._lock:
            self._depth_now = depth
            queue: deque[_Msg] = deque()
            nw = min(self.n, max(1, -(-len(tasks) // batch)))
            a = 0
            while a < len(tasks):
                k = max(1, min(batch, (len(tasks) - a) // (self.tail * nw)))
                queue.append(_Msg([(ti, tasks[ti][0], tasks[ti][1])
                                   for ti in range(a, min(len(tasks), a + k))]))
                a += k
            nw = min(self.n, max(1, len(queue)))
            self._ensure(nw)
            shm, slot_frames, slots_free = None, 0, deque()
            if convert is not None:
                shm, slot_frames, slots_free = self._slots(tasks, batch, convert, nw)
            self.stats = {"wall": 0.0, "parent_cpu": 0.0, "worker_busy": 0.0,
                          "worker_cpu": 0.0, "messages": float(len(queue)),
                          "tasks": float(len(tasks)), "workers": float(nw),
                          "shm_bytes": float(shm.size) if shm is not None else 0.0}
            try:
                self._loop(queue, tasks, on_result, timeout_s, decode_fn, convert, shm,
                           slot_frames, slots_free, errors)
            finally:
                self.stats["wall"] = time.perf_counter() - t0
                self.stats["parent_cpu"] = time.process_time() - c0
                if shm is not None:
                    shm.close()
                    try:
                        shm.unlink()
                    except Exception:
                        pass
        return errors

    def _slots(self, tasks: list, batch: int, convert: dict, nw: int) -> tuple:
        from multiprocessing import shared_memory

        per = 1
        for t in tasks:
            per = max(per, len(t[1]) if t[1] is not None else 1)
        slot_frames = max(per, batch) if all(t[1] is None for t in tasks) else per * batch
        frame_bytes = int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize
        nslots = nw * self._depth_now
        try:
            shm = shared_memory.SharedMemory(create=True,
                                             size=max(1, nslots * slot_frames * frame_bytes))
        except OSError:  # no /dev/shm room: frames come back pickled
            return None, 0, deque()
        return shm, slot_frames, deque(range(nslots))

    def _loop(self, queue, tasks, on_result, timeout_s, decode_fn, convert, shm, slot_frames,
              slots_free, errors) -> None:
        tid_next = 0
        frame_bytes = 0
        if shm is not None:
            frame_bytes = int(np.prod(convert["shape"])) * np.dtype(convert["dtype"]).itemsize
        while queue or any(w.inflight for w in self._workers):
            # feed every worker up to `depth` messages
            for w in list(self._workers):
                while queue and len(w.inflight) < self._depth_now and (shm is None or slots_free):
                    msg = queue.popleft()
                    conv = None
                    slot = None
                    if convert is not None:
                        conv = dict(convert)
                        if shm is not None:
                            slot = slots_free.popleft()
                            conv.update(shm=shm.name, slot_frames=slot_frames,
                                        slot_offset=slot * slot_frames * frame_bytes)
                    items = [(p, ix, tasks[ti][2] if len(tasks[ti]) > 2 else None)
                             for ti, p, ix in msg.items]
                    tid = tid_next
                    tid_next += 1
                    try:
                        fn = decode_fn
                        if fn is None and msg.default_order:
                            fn = _decode_task_default_order
                        w.conn.send((tid, items, fn, conv))
                    except (BrokenPipeError, OSError):
                        queue.appendleft(msg)
                        if slot is not None:
                            slots_free.append(slot)
                        break
                    if not w.inflight:
                        w.started = time.monotonic()
                    w.inflight.append((tid, msg, slot))
            busy = [w for w in self._workers if w.inflight]
            if not busy:
                self._ensure(min(self.n, max(1, len(queue))))
                continue
            waitables = []
            for w in busy:
                waitables.extend([w.conn, w.proc.sentinel])
            ready = mp_wait(waitables, timeout=1.0)
            now = time.monotonic()
            for w in busy:
                got = None
                if w.conn in ready:
                    try:
                        got = w.conn.recv()
                    except (EOFError, OSError):
                        got = None
                if got is not None:
                    tid, msg, slot = w.inflight.popleft()
                    w.started = now
                    _, status, payload = got[:3]
                    if len(got) >= 5:
                        self.stats["worker_busy"] += got[3]
                        self.stats["worker_cpu"] += got[4]
                    if status != "ok":
                        payload = [("error", payload)] * len(msg.items)
                    view = None
                    if shm is not None and slot is not None:
                        view = np.ndarray((slot_frames,) + tuple(convert["shape"]),
                                          dtype=np.dtype(convert["dtype"]), buffer=shm.buf,
                                          offset=slot * slot_frames * frame_bytes)
                    for (ti, path, idx), (st, res) in zip(msg.items, payload):
                        if st != "ok":
                            errors.append(FrameError(path, _frame_of(idx), res))
                        elif convert is None:
                            on_result(ti, idx, res)
                        else:
                            frames, rng = [], []
                            for r in res:
                                if r[0] == "slot":
                                    frames.append(view[r[1]])
                                    rng.append((r[2], r[3]))
                                elif r[0] == "array":
                                    frames.append(r[1])
                                    rng.append((r[2], r[3]))
                                else:
                                    frames.append(None)
                                    rng.append((0.0, 0.0))
                            on_result(ti, idx, frames, rng)
                    del view
                    if slot is not None:
                        slots_free.append(slot)
                    continue
                dead = not w.proc.is_alive() or w.proc.sentinel in ready
                late = now - w.started > timeout_s
                if not (dead or late):
                    continue
                if dead:
                    w.proc.join(1.0)
                code = w.proc.exitcode
                w.kill()
                if w in self._workers:
                    self._workers.remove(w)
                self.crashes += 1
                why = ("decoder timed out" if late and not dead
                       else f"decoder process died (exit code {code})")
                # the oldest message was being decoded; the others never started
                first = True
                while w.inflight:
                    _tid, msg, slot = w.inflight.popleft()
                    if slot is not None:
                        slots_free.append(slot)
                    if not first:
                        queue.appendleft(msg)
                        continue
                    first = False
                    ti, path, idx = msg.items[0]
                    # no path: folder and file names can hold patient names (the
                    # FrameError returned to the caller carries it)
                    logger.warning("pixel decoder crashed on %s: %s", "one file"
                                   if len(msg.items) == 1 else f"one of {len(msg.items)} files",
                                   why)
                    if len(msg.items) > 1:  # isolate the bad file
                        for it in msg.items:
                            queue.append(_Msg([it]))
                    elif idx is not None and len(idx) > 1:  # isolate the bad frame(s)
                        for f in idx:
                            queue.append(_Msg([(ti, path, [f])], split=False))
                    elif dead and decode_fn is None and not msg.default_order:
                        # the preferred single-threaded plugin may be what crashed
                        # (an OpenJPEG abort): once more with pydicom's default order
                        queue.append(_Msg(list(msg.items), split=False, default_order=True))
                    else:
                        errors.append(FrameError(path, _frame_of(idx), why, crashed=True))
                self._ensure(min(self.n, max(1, len(queue))))


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
#: Output bytes per chunk of frames on the native route: read, then converted
#: while still in the CPU cache (8 frames of 512x512 int16; both threads' chunks
#: fit a 32 MB L3).  Smaller chunks cost more in kernel calls than they gain
#: (measured: 1 MB 0.76x the floor, 2-8 MB 0.83x).
CHUNK_BYTES = 4 << 20
#: At most this many frames per chunk.
CHUNK_MAX_FRAMES = 16
#: Threads of the native route (each reads and converts its own chunks, so
#: one's reading overlaps the other's converting; both release the GIL).
READ_THREADS = 2

_O_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _open_fd(path: str) -> Any:
    return os.open(path, _O_READ)


def _read_preadv(fd: int, mv: memoryview, offset: int) -> int:
    """``os.preadv`` into *mv* (Linux, BSD, macOS 11+); returns the bytes read."""
    got = 0
    n = len(mv)
    while got < n:
        r = os.preadv(fd, [mv[got:]], offset + got)
        if r <= 0:
            break
        got += r
    return got


def _read_readv(fd: int, mv: memoryview, offset: int) -> int:
    """``os.lseek`` + ``os.readv`` (POSIX without ``preadv``); one fd per thread."""
    os.lseek(fd, offset, os.SEEK_SET)
    got = 0
    n = len(mv)
    while got < n:
        r = os.readv(fd, [mv[got:]])
        if r <= 0:
            break
        got += r
    return got


def _open_raw(path: str) -> Any:
    return open(path, "rb", buffering=0)  # io.FileIO: readinto without a copy


def _read_readinto(f: Any, mv: memoryview, offset: int) -> int:
    """Seek + ``FileIO.readinto`` (Windows: no ``preadv``/``readv``)."""
    f.seek(offset)
    got = 0
    n = len(mv)
    while got < n:
        r = f.readinto(mv[got:])
        if not r:
            break
        got += r
    return got


def _close_raw(f: Any) -> None:
    f.close()


#: name -> (open, read into a memoryview at an offset, close)
_READERS = {
    "preadv": (_open_fd, _read_preadv, os.close),
    "readv": (_open_fd, _read_readv, os.close),
    "readinto": (_open_raw, _read_readinto, _close_raw),
}
#: The reader this platform uses (tests switch it to check the others).
_READER = ("preadv" if hasattr(os, "preadv") else "readv" if hasattr(os, "readv")
           else "readinto")


def read_frames(paths: Sequence[str], formats: Sequence[PixelFormat], refs: np.ndarray,
                out: np.ndarray, slopes: np.ndarray | None = None,
                intercepts: np.ndarray | None = None, *, pool: DecoderPool | None = None,
                chunk_frames: int | None = None,
                ranges: list[tuple[float, float]] | None = None,
                reference_kernels: bool = False) -> list[FrameError]:
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
        :func:`pocketpacs.images.volume.assemble_series`).
    reference_kernels : bool
        Convert uncompressed frames with the NumPy references of the
        kernels (:mod:`pocketpacs.native.reference`: the same values, the
        tests compare them) instead of the compiled ones.  For a frame or
        two wanted before numba is loaded: importing numba and loading the
        compiled kernels takes a quarter of a second or more, converting one
        512x512 frame in NumPy about a millisecond.

    Returns
    -------
    list of FrameError
        Frames that could not be read (their rows are filled with 0).
    """
    if reference_kernels:
        from pocketpacs.native import reference as K
    else:
        from pocketpacs.native import assemble as K

    m = int(refs.shape[0])
    if out.shape[0] != m:
        raise ValueError("out must have one row per frame reference")
    if not out.flags.c_contiguous:  # the rows are read into contiguous memory
        tmp = np.ascontiguousarray(out)
        errs = read_frames(paths, formats, refs, tmp, slopes, intercepts, pool=pool,
                           chunk_frames=chunk_frames, ranges=ranges,
                           reference_kernels=reference_kernels)
        out[...] = tmp
        return errs
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


def _read_native(paths, formats, refs, rows, out, flat, sl, ic, rescale, K,
                 ranges) -> list[FrameError]:
    """Uncompressed frames: read in Python (``os.preadv``), converted by the chunk kernels."""
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
    int_out = out.dtype.kind in "iu"
    for key, js in groups.items():
        jj = np.asarray(js, dtype=np.int64)
        f = formats[int(files[jj[0]])]
        dst = np.ascontiguousarray(rows[jj])
        offs = (np.fromiter((formats[int(fi)].offset for fi in files[jj].tolist()),
                            dtype=np.int64, count=jj.size) + ra[jj, 1] * f.frame_bytes)
        s, b = np.ascontiguousarray(sl[dst]), np.ascontiguousarray(ic[dst])
        int_rescale = bool(rescale and int_out and np.all(s == np.round(s))
                           and np.all(b == np.round(b)))
        got, vmin, vmax, why = _read_convert(paths, files[jj].tolist(), offs.tolist(), dst, f,
                                             flat, s, b, bool(rescale), int_rescale,
                                             ranges is not None, K)
        bad = np.nonzero(got < f.frame_bytes)[0]
        for j in bad.tolist():
            fi, fr = int(files[jj[j]]), int(ra[jj[j], 1])
            msg = why.get(j) or ("pixel data truncated" if got[j] >= 0
                                 else "file could not be opened")
            errors.append(FrameError(paths[fi], fr, msg))
            flat[dst[j]] = 0
            vmin[j], vmax[j] = 0.0, 0.0
        if ranges is not None and jj.size:
            ranges.append((float(vmin.min()), float(vmax.max())))
    _ybr_to_rgb(formats, refs, rows, out)
    return errors


def _read_convert(paths, fidx, offs, dst, f: PixelFormat, flat, s, b, rescale, int_rescale,
                  want_range, K):
    """Read frames of one stored format into ``flat``'s rows ``dst`` and convert them.

    Chunks of a few frames: a thread reads a chunk (into the output rows when
    the stored item size is the output's, else into its scratch buffer), then
    converts it with a serial kernel while it is in the cache.
    ``READ_THREADS`` threads take chunks in turn, so one reads while the other
    converts.

    Returns
    -------
    got : int64 array
        Bytes read per frame (-1: the file could not be opened / read).
    vmin, vmax : float64 arrays
        Min / max of the values written per frame.
    why : dict
        Frame position -> OS error message.
    """
    n = len(dst)
    stored = f.stored_dtype
    fb = f.frame_bytes
    nb = f.bits_allocated // 8
    fix_bits = bool(f.bits_stored < nb * 8)
    interleaved = f.samples == 1 or f.planar == 0
    if flat.dtype == stored and not f.big_endian and interleaved:
        mode = 0  # straight into the output rows, converted in place
    elif not f.big_endian and interleaved:
        mode = 1  # typed scratch -> output dtype
    else:
        mode = 2  # byte scratch, element by element
    out_fb = flat.shape[1] * flat.itemsize
    per = max(1, min(CHUNK_MAX_FRAMES, CHUNK_BYTES // max(out_fb, fb, 1)))
    nthreads = max(1, min(READ_THREADS, -(-n // per)))
    if mode:  # scratch of all threads at most 1/16 of the output (peak memory)
        per = max(1, min(per, flat.nbytes // (16 * fb * nthreads)))
    nchunks = -(-n // per)
    nthreads = min(nthreads, nchunks)
    convert = mode != 0 or fix_bits or rescale or want_range
    got = np.zeros(n, dtype=np.int64)
    vmin = np.full(n, np.inf)
    vmax = np.full(n, -np.inf)
    why: dict[int, str] = {}
    out_mv = memoryview(flat.reshape(-1).view(np.uint8)) if mode == 0 else None
    dst_l = dst.tolist()
    opener, read_at, closer = _READERS[_READER]
    signed, swap = bool(f.signed), bool(f.big_endian)
    bits, samples, planar = int(f.bits_stored), int(f.samples), int(f.planar)
    next_chunk = iter(range(nchunks)).__next__  # shared by the threads (atomic)

    def work() -> None:
        stage = np.empty((per, fb), dtype=np.uint8) if mode else None
        stage_mv = memoryview(stage.reshape(-1)) if stage is not None else None
        stage_typed = stage.view(stored) if mode == 1 else None
        while True:
            try:
                c = next_chunk()
            except StopIteration:
                return
            a = c * per
            e = min(n, a + per)
            cur, h, open_err = -1, None, ""
            try:
                for j in range(a, e):
                    fi = fidx[j]
                    if fi != cur:  # consecutive frames of one file share its descriptor
                        if h is not None:
                            closer(h)
                            h = None
                        cur = fi
                        try:
                            h = opener(paths[fi])
                        except OSError as exc:
                            open_err = _safe_msg(exc)
                    if h is None:
                        got[j] = -1
                        why[j] = open_err
                        continue
                    if mode == 0:
                        r0 = dst_l[j] * out_fb
                        mv = out_mv[r0:r0 + fb]  # type: ignore[index]
                    else:
                        mv = stage_mv[(j - a) * fb:(j - a + 1) * fb]  # type: ignore[index]
                    try:
                        got[j] = read_at(h, mv, offs[j])
                    except OSError as exc:
                        got[j] = -1
                        why[j] = _safe_msg(exc)
            finally:
                if h is not None:
                    closer(h)
            if not convert:
                continue
            d = dst[a:e]
            if mode == 0:
                K.convert_rows_inplace(flat, d, bits, signed, fix_bits, s[a:e], b[a:e], rescale,
                                       int_rescale, vmin[a:e], vmax[a:e])
            elif mode == 1:
                K.convert_rows(stage_typed[:e - a], flat, d, bits, signed, fix_bits, s[a:e],
                               b[a:e], rescale, int_rescale, vmin[a:e], vmax[a:e])
            else:
                K.convert_rows_bytes(stage[:e - a], flat, d, nb, swap, bits, signed, samples,
                                     planar, s[a:e], b[a:e], rescale, vmin[a:e], vmax[a:e])

    if nthreads == 1:
        work()
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(nthreads, thread_name_prefix="pocketpacs-read") as ex:
            futs = [ex.submit(work) for _ in range(nthreads)]
            for fu in futs:
                fu.result()
    return got, vmin, vmax, why


def _ybr_to_rgb(formats, refs, rows, out) -> None:
    for r in rows:
        f = formats[int(refs[r, 0])]
        if f.photometric == "YBR_FULL" and f.samples == 3:
            from pydicom.pixels import convert_color_space

            out[r] = convert_color_space(np.asarray(out[r]), "YBR_FULL", "RGB")


def _read_pydicom(paths, formats, other, out, sl, ic, rescale, pool, chunk_frames,
                  ranges=None):
    tasks: list[tuple] = []
    task_rows: list[dict[int, list[int]]] = []
    nfiles = len(other)
    for fi, lst in other.items():
        frames = sorted({fr for _, fr in lst})
        f = formats[fi]
        nfr = f.nframes if f is not None else 1
        rows_of: dict[int, list[int]] = {}
        for row, fr in lst:
            rows_of.setdefault(fr, []).append(row)
        if nfr <= 1 or f is None:
            rws = rows_of.get(0, [lst[0][0]])
            tasks.append((paths[fi], None, [(float(sl[rws[0]]), float(ic[rws[0]]))]))
            task_rows.append({0: rws})
            continue
        cf = chunk_frames or max(1, min(64, -(-len(frames) // (2 * pool.n))))
        for a in range(0, len(frames), cf):
            part = frames[a:a + cf]
            tasks.append((paths[fi], part, [(float(sl[rows_of[fr][0]]), float(ic[rows_of[fr][0]]))
                                            for fr in part]))
            task_rows.append({fr: rows_of[fr] for fr in part})
    errors: list[FrameError] = []
    flat_shape = tuple(out.shape[1:])
    done = np.zeros(out.shape[0], dtype=bool)
    lo_all, hi_all = [np.inf], [-np.inf]

    def on_result(ti: int, idx: list[int] | None, arrays: list, rng: list) -> None:
        mapping = task_rows[ti]
        keys = idx if idx is not None else [0]
        if idx is None and len(arrays) > 1:
            keys = list(range(len(arrays)))
        for fr, arr, (lo, hi) in zip(keys, arrays, rng):
            for row in mapping.get(fr, []):
                if arr is None:
                    errors.append(FrameError(tasks[ti][0], fr, "decoded shape differs from the "
                                             f"expected {flat_shape}"))
                    out[row] = 0
                    continue
                out[row] = arr
                done[row] = True
                lo_all[0] = min(lo_all[0], lo)
                hi_all[0] = max(hi_all[0], hi)

    # up to 8 files per message; the pool shrinks messages towards the end (guided
    # scheduling) so every worker stays busy to the end
    batch = min(8, max(1, nfiles)) if all(t[1] is None for t in tasks) else 1
    errs = pool.run(tasks, on_result, convert={"dtype": out.dtype.str, "shape": flat_shape,
                                               "rescale": bool(rescale)}, batch=batch)
    # rows whose task failed: zero them
    for e in errs:
        for ti, t in enumerate(tasks):
            if t[0] != e.path:
                continue
            for fr, rws in task_rows[ti].items():
                if e.frame in (-1, fr):
                    for row in rws:
                        out[row] = 0
    if ranges is not None and np.isfinite(lo_all[0]):
        ranges.append((lo_all[0], hi_all[0]))
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
        from ..dicom.headers import parse_files

        batch = parse_files([path])
        f = formats_from_batch(batch)[0]
        if f is None:
            raise PixelError(f"{path}: {batch.message[0] or 'header could not be parsed'}")
        fmt = f
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise PixelError(f"{path}: could not be read ({e.strerror or type(e).__name__})") from None
    problem = format_problem(fmt, size, gzipped=_is_gzip(path))
    if problem is not None:
        raise PixelError(f"{path}: {problem}")
    shape: tuple[int, ...] = (fmt.nframes, fmt.rows, fmt.cols)
    if fmt.samples > 1:
        shape += (fmt.samples,)
    out = np.zeros(shape, dtype=fmt.stored_dtype)
    refs = np.stack([np.zeros(fmt.nframes, dtype=np.int64),
                     np.arange(fmt.nframes, dtype=np.int64)], axis=1)
    errs = read_frames([path], [fmt], refs, out, pool=pool)
    return (out[0] if fmt.nframes == 1 else out), errs
