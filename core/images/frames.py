"""Frame reading: the pixels of many DICOM frames into the rows of one array.

Two routes, chosen per file by :attr:`~pocketpacs.images.pixelformat.PixelFormat.route`:

``native``
    Uncompressed little/big endian data at the offset the header parser
    recorded.  The frames are read here, in Python, with ``os.preadv`` (or
    seek + ``FileIO.readinto`` where ``os`` has no ``preadv``, e.g. Windows)
    either straight into the output rows (stored dtype = output dtype) or
    into a small per-thread scratch buffer, in chunks of a few frames; each
    chunk is then converted while it is still in the CPU cache by a serial
    kernel of :mod:`pocketpacs.native.assemble` (bit correction, byte swap,
    planar colour, rescale, dtype, value range).  Two threads take chunks in
    turn (the reads and the kernels release the GIL), so reading and
    converting overlap.  No mmap; the scratch buffers are at most 1/16 of
    the output.
``pydicom``
    Everything else: decoded by pydicom's decoder plugins in worker
    processes (:class:`~pocketpacs.images.decoders.DecoderPool`), which
    rescale each frame into the output dtype; a decoder that crashes loses
    only its frame (reported as a :class:`~pocketpacs.images.decoders.FrameError`).

Values are the *stored* values exactly as pydicom's ``pixel_array`` gives
them (unused high bits cleared or sign-extended, YBR converted to RGB,
colour samples last), then optionally rescaled per frame.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import PocketPacsError
from .decoders import DecoderPool, FrameError, decoder_pool
from .decodeworker import _safe_msg
from .pixelformat import PixelFormat, _is_gzip, format_problem, formats_from_batch

class PixelError(PocketPacsError):
    """Pixel data cannot be read at all (no frame could be decoded)."""


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


def _open_raw(path: str) -> Any:
    return open(path, "rb", buffering=0)  # io.FileIO: readinto without a copy


def _read_readinto(f: Any, mv: memoryview, offset: int) -> int:
    """Seek + ``FileIO.readinto`` (where ``os`` has no ``preadv``, e.g. Windows;
    works everywhere); returns the bytes read."""
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
    "readinto": (_open_raw, _read_readinto, _close_raw),
}


def _platform_reader() -> str:
    """``"preadv"`` where ``os`` has ``preadv``, else ``"readinto"``."""
    return "preadv" if hasattr(os, "preadv") else "readinto"


#: The reader this platform uses (tests switch it to check the others).
_READER = _platform_reader()


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
        from pocketpacs.native import reference

        kernels = reference
    else:
        from pocketpacs.native import assemble

        kernels = assemble

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
                                   kernels, ranges))
    if other:
        errors.extend(_read_pydicom(paths, formats, other, out, sl, ic, rescale,
                                    pool or decoder_pool(), chunk_frames, ranges))
    return errors


def _native_key(f: PixelFormat) -> tuple:
    return (f.bits_allocated, f.signed, f.big_endian, f.bits_stored, f.samples, f.planar,
            f.frame_bytes)


def _read_native(paths, formats, refs, rows, out, flat, sl, ic, rescale, kernels,
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
    for js in groups.values():
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
                                             ranges is not None, kernels)
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
                  want_range, kernels):
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
                kernels.convert_rows_inplace(flat, d, bits, signed, fix_bits, s[a:e], b[a:e],
                                             rescale, int_rescale, vmin[a:e], vmax[a:e])
            elif mode == 1:
                kernels.convert_rows(stage_typed[:e - a], flat, d, bits, signed, fix_bits, s[a:e],
                                     b[a:e], rescale, int_rescale, vmin[a:e], vmax[a:e])
            else:
                kernels.convert_rows_bytes(stage[:e - a], flat, d, nb, swap, bits, signed,
                                           samples, planar, s[a:e], b[a:e], rescale, vmin[a:e],
                                           vmax[a:e])

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
