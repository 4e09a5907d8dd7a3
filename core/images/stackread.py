"""Reading a stack's frames into an array of the smallest exact dtype.

:func:`choose_dtype` picks the output dtype from the stored bits and the
rescale (stored dtype, else the smallest integer type that holds every
rescaled value, else float32); :func:`read_stack` reads a stack with
:func:`~pocketpacs.images.frames.read_frames` (int16 first while the kernels
record the value range, again only if the values do not fit), and
:func:`read_resampled` does the same while resampling along z a chunk at a
time, so the source and the result are never held together.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .decoders import DecoderPool, FrameError
from .frames import read_frames
from .pixelformat import PixelFormat
from .resample import blend, z_weights

def choose_dtype(formats: Sequence[PixelFormat], slopes: np.ndarray, intercepts: np.ndarray,
                 rescale: bool) -> tuple[np.dtype, bool]:
    """Output dtype of a stack and whether the rescale is applied.

    Parameters
    ----------
    formats : sequence of PixelFormat
        Formats of the stack's files.
    slopes, intercepts : ndarray
        Per-frame rescale.
    rescale : bool
        Whether the caller wants rescaled values.

    Returns
    -------
    dtype : numpy dtype
        Stored dtype (no rescale, colour, or identity rescale); else the
        smallest of int16, uint16, int32, uint32 that holds every value the
        stored bits can produce when the rescale is exact (integer slope and
        intercept), float32 otherwise.
    applied : bool
    """
    stored = np.result_type(*[f.stored_dtype for f in formats])
    identity = bool(np.all(slopes == 1.0) and np.all(intercepts == 0.0))
    if not rescale or any(f.samples > 1 for f in formats):
        return np.dtype(stored), False
    if identity:
        return np.dtype(stored), True
    exact = bool(np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts)))
    if not exact:
        return np.dtype(np.float32), True
    smin = min(-(1 << (f.bits_stored - 1)) if f.signed else 0 for f in formats)
    smax = max((1 << (f.bits_stored - 1)) - 1 if f.signed else (1 << f.bits_stored) - 1
               for f in formats)
    cand = np.concatenate([slopes * smin + intercepts, slopes * smax + intercepts])
    lo, hi = float(cand.min()), float(cand.max())
    for dt in (np.int16, np.uint16, np.int32, np.uint32):
        info = np.iinfo(dt)
        if lo >= info.min and hi <= info.max:
            return np.dtype(dt), True
    return np.dtype(np.float32), True


def _fits(dt: np.dtype, lo: float, hi: float) -> bool:
    if dt.kind == "f":
        return True
    info = np.iinfo(dt)
    return lo >= info.min and hi <= info.max


def read_stack(paths: list[str], formats: Sequence[PixelFormat | None], refs: np.ndarray,
               shape: tuple[int, ...], fmts: Sequence[PixelFormat], sl: np.ndarray,
               ic: np.ndarray, rescale: bool, pool: DecoderPool | None
               ) -> tuple[np.ndarray, bool, list[FrameError]]:
    """Read a stack's frames into a new array of the smallest exact dtype.

    :func:`choose_dtype` sizes the dtype from the range the stored bits can
    produce; when that calls for 32 bits but the rescale is exact, the frames
    are first read into int16 while the kernels record the actual value range
    (free: computed in the gather loop).  Only if the values do not fit are
    they read again into the smallest dtype that holds them.

    Returns
    -------
    array, rescale applied, frame errors
    """
    dtype, applied = choose_dtype(fmts, sl, ic, rescale)
    first = dtype
    if applied and dtype.kind in "iu" and dtype.itemsize > 2:
        first = np.dtype(np.int16)
    out = np.empty(shape, dtype=first)
    ranges: list[tuple[float, float]] = []
    errors = read_frames(paths, formats, refs, out,  # type: ignore[arg-type]
                         sl if applied else None, ic if applied else None, pool=pool,
                         ranges=ranges)
    if first != dtype:
        lo = min((r[0] for r in ranges), default=0.0)
        hi = max((r[1] for r in ranges), default=0.0)
        if not _fits(first, lo, hi):
            dt = next(d for d in map(np.dtype, (np.int16, np.uint16, np.int32, np.uint32,
                                                 np.float32)) if _fits(d, lo, hi))
            del out
            out = np.empty(shape, dtype=dt)
            errors = read_frames(paths, formats, refs, out,  # type: ignore[arg-type]
                                 sl, ic, pool=pool)
    return out, applied, errors


def read_resampled(paths: list[str], formats: Sequence[PixelFormat | None], refs: np.ndarray,
                   shape: tuple[int, ...], fmts: Sequence[PixelFormat], sl: np.ndarray,
                   ic: np.ndarray, rescale: bool, pool: DecoderPool | None,
                   z_source: np.ndarray, z_target: np.ndarray, chunk: int | None = None
                   ) -> tuple[np.ndarray, bool, list[FrameError]]:
    """Read a stack and resample it along z onto ``z_target``, a chunk at a time.

    The same values as :func:`read_stack` followed by
    :func:`pocketpacs.images.resample.resample_z`, without holding the source and
    the result together: only ``chunk + 1`` source slices are in memory
    besides the output (peak memory stays near the final array's size).

    Parameters
    ----------
    paths, formats, refs, fmts, sl, ic, rescale, pool
        As for :func:`read_stack`; ``refs`` in ascending ``z_source`` order.
    shape : tuple
        Source shape ``(k, rows, cols[, samples])``.
    z_source, z_target : ndarray
        Ascending source and target positions (mm).
    chunk : int, optional
        Source slices read per call (default: a sixteenth of the stack, 1-64).

    Returns
    -------
    array, rescale applied, frame errors
    """
    k, m = int(shape[0]), int(z_target.shape[0])
    j, w = z_weights(z_source, z_target)
    dtype, applied = choose_dtype(fmts, sl, ic, rescale)
    first = dtype
    if applied and dtype.kind in "iu" and dtype.itemsize > 2:
        first = np.dtype(np.int16)
    step = int(chunk) if chunk else max(1, min(64, k // 16))

    def one_pass(dt: np.dtype, ranges: list | None) -> tuple[np.ndarray, list[FrameError]]:
        out = np.empty((m,) + tuple(shape[1:]), dtype=dt)
        buf = np.empty((step + 1,) + tuple(shape[1:]), dtype=dt)
        errors: list[FrameError] = []
        s0, held, t = 0, 0, 0  # buf[:held] holds source slices s0 .. s0 + held - 1
        while t < m:
            s1 = min(k, s0 + step + 1)
            if s1 > s0 + held:
                errors.extend(read_frames(
                    paths, formats, refs[s0 + held:s1], buf[held:s1 - s0],  # type: ignore[arg-type]
                    sl[s0 + held:s1] if applied else None, ic[s0 + held:s1] if applied else None,
                    pool=pool, ranges=ranges))
            held = s1 - s0
            while t < m and j[t] + 1 < s1:
                blend(buf[j[t] - s0], buf[j[t] + 1 - s0], w[t], out=out[t])
                t += 1
            if t < m:
                if j[t] >= s1:        # sparser target: the slices in between are not needed
                    s0, held = int(j[t]), 0
                else:                 # j[t] == s1 - 1: carry the last slice read
                    buf[0] = buf[held - 1]
                    s0, held = s1 - 1, 1
        return out, errors

    ranges: list[tuple[float, float]] = []
    out, errors = one_pass(first, ranges if first != dtype else None)
    if first != dtype:
        lo = min((r[0] for r in ranges), default=0.0)
        hi = max((r[1] for r in ranges), default=0.0)
        if not _fits(first, lo, hi):
            del out
            dt = next(d for d in map(np.dtype, (np.int16, np.uint16, np.int32, np.uint32,
                                                 np.float32)) if _fits(d, lo, hi))
            out, errors = one_pass(dt, None)
    return out, applied, errors
