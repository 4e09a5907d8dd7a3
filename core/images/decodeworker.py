"""The decoder worker: what runs inside each process of the decoder pool.

:func:`_worker_main` is the loop of one spawned worker process of
:class:`pocketpacs.images.decoders.DecoderPool`: it receives messages of
files (and frame indices), reads each file itself (gzip and deflate
inflated streamed, capped), compares every compressed frame's declared size
with the header before a decoder allocates from it, decodes with pydicom's
plugins (a single-threaded one first, :data:`SINGLE_THREAD_PLUGIN`, then
pydicom's default order), optionally rescales each frame into the output
dtype straight into the parent's shared-memory slot, and answers with a
result per file plus its busy wall and CPU time.  A Python error is
reported, never fatal; only a crashing decoder kills the process.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

def _int(v: Any, default: int) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return int(f) if np.isfinite(f) else default


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
        import pydicom
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
