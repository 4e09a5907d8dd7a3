"""Gather uncompressed DICOM frames into one preallocated array.

Two kernels, both parallel over frames (``prange``) with the GIL released:

``gather_frames``
    Frames given as byte ranges of a staging buffer: each element is read
    byte by byte (any alignment, either byte order), its unused high bits
    are cleared (unsigned) or sign-extended (signed) as pydicom does,
    planar colour is interleaved, and the per-frame rescale is applied on
    the way into the output rows.
``convert_inplace``
    The fast path: the frames were read straight into the output array's
    memory (same item size as stored); this re-interprets them in place
    (``src`` and ``out`` are two views of the same memory), applying the
    bit correction and the rescale.

``read_frames_native``
    The whole uncompressed route in one call: every output row's file is
    opened, its frame read with ``pread`` and converted while it is still in
    the CPU cache (bit correction, byte order, planar colour, rescale), in
    parallel over chunks of rows with the GIL released -- no Python work per
    file.  Frames whose stored item size equals the output's are read straight
    into the output row; others go through a one-frame scratch buffer per
    chunk.  Optionally records the min/max of every row's (rescaled) values
    so a caller can check that they fit the output dtype.

``reference.gather_frames`` / ``reference.convert_inplace`` are the NumPy
oracles of the first two; ``read_frames_native`` is checked against pydicom's
``pixel_array`` on every uncompressed test file (tests/test_pixels.py).
"""
from __future__ import annotations

import numpy as np
from numba import types

from ._jit import kernel, prange

# libc, resolved by symbol name when a kernel is linked (so kernels stay cacheable)
_c_open = types.ExternalFunction("open", types.intc(types.voidptr, types.intc))
_c_pread = types.ExternalFunction("pread", types.intp(types.intc, types.voidptr, types.uintp,
                                                      types.int64))
_c_close = types.ExternalFunction("close", types.intc(types.intc))


@kernel(inline="always")
def _read_elem(buf, p, nbytes, swap):
    v = np.uint64(0)
    if swap:
        for b in range(nbytes):
            v = (v << np.uint64(8)) | np.uint64(buf[p + b])
    else:
        for b in range(nbytes - 1, -1, -1):
            v = (v << np.uint64(8)) | np.uint64(buf[p + b])
    return v


@kernel(inline="always")
def _fix_bits(v, bits_stored, signed):
    """Clear unused high bits (unsigned) or sign-extend (signed)."""
    mask = (np.uint64(1) << np.uint64(bits_stored)) - np.uint64(1)
    u = v & mask
    if signed and (u >> np.uint64(bits_stored - 1)) & np.uint64(1):
        return np.int64(u) - (np.int64(1) << np.int64(bits_stored))
    return np.int64(u)


@kernel(parallel=True)
def gather_frames(buf, starts, dst, out, nbytes, signed, swap, bits_stored, samples, planar,
                  slopes, intercepts, rescale):
    """Decode uncompressed frames from a byte buffer into output rows.

    Parameters
    ----------
    buf : uint8[:]
        Staging buffer holding the frames' bytes.
    starts : int64[:]
        Byte offset of each frame in ``buf``.
    dst : int64[:]
        Output row of each frame.
    out : ndarray (nrows, npix * samples)
        Output rows, any numeric dtype.
    nbytes : int
        Bytes per stored sample (1, 2 or 4).
    signed : bool
        Pixel Representation 1.
    swap : bool
        Stored big endian.
    bits_stored : int
        Bits Stored (1..8*nbytes).
    samples : int
        Samples per pixel.
    planar : int
        Planar Configuration (1 = colour-by-plane, interleaved on output).
    slopes, intercepts : float64[:]
        Per-frame rescale (used when ``rescale`` is true).
    rescale : bool
        Apply ``value * slope + intercept``.

    Returns
    -------
    None
        ``out`` is written in place.
    """
    nfr = starts.shape[0]
    nvals = out.shape[1]
    npix = nvals // samples
    for f in prange(nfr):
        row = out[dst[f]]
        base = starts[f]
        s = slopes[f]
        b = intercepts[f]
        for i in range(nvals):
            if planar == 1 and samples > 1:
                pix = i // samples
                smp = i - pix * samples
                src_i = smp * npix + pix
            else:
                src_i = i
            v = _fix_bits(_read_elem(buf, base + src_i * nbytes, nbytes, swap), bits_stored,
                          signed)
            if rescale:
                row[i] = v * s + b
            else:
                row[i] = v


@kernel(parallel=True)
def convert_inplace(src, out, bits_stored, signed, slopes, intercepts, rescale, fix_bits):
    """Re-interpret frames read straight into the output memory.

    Parameters
    ----------
    src : ndarray (nframes, nvals)
        The stored values (a view of the same memory as ``out``, same item
        size, stored dtype, native byte order).
    out : ndarray (nframes, nvals)
        Output view (output dtype).
    bits_stored : int
    signed : bool
        Pixel Representation 1.
    slopes, intercepts : float64[:]
        Per-frame rescale.
    rescale : bool
        Apply the rescale.
    fix_bits : bool
        Clear / sign-extend the bits above ``bits_stored``.

    Returns
    -------
    None
    """
    nfr = src.shape[0]
    nvals = src.shape[1]
    nb = src.itemsize * 8
    for f in prange(nfr):
        s = slopes[f]
        b = intercepts[f]
        for i in range(nvals):
            raw = src[f, i]
            if fix_bits:
                v = _fix_bits(np.uint64(np.int64(raw)) & np.uint64((1 << nb) - 1), bits_stored,
                              signed)
            else:
                v = np.int64(raw)
            if rescale:
                out[f, i] = v * s + b
            else:
                out[f, i] = v


def numba_threads() -> int:
    """Threads the parallel kernels use."""
    import numba

    return int(numba.get_num_threads())


@kernel(inline="always")
def _pread_full(fd, addr, n, off):
    got = 0
    while got < n:
        r = _c_pread(fd, addr + got, n - got, off + got)
        if r <= 0:
            break
        got += r
    return got


@kernel(inline="always")
def _conv_typed(src, dst, bits_stored, signed, fix_bits, s, b, rescale, int_rescale):
    """Stored values (native byte order) -> output row; returns (min, max) written.

    One tight loop per case (branches outside the loops, so they vectorise).
    """
    n = src.shape[0]
    sh = np.int64(64 - bits_stored)
    mask = (np.int64(1) << np.int64(bits_stored)) - np.int64(1)
    if not rescale or int_rescale:
        si = np.int64(s) if rescale else np.int64(1)
        bi = np.int64(b) if rescale else np.int64(0)
        ilo = np.int64(9223372036854775807)
        ihi = -ilo
        if fix_bits and signed:
            for i in range(n):
                v = ((np.int64(src[i]) << sh) >> sh) * si + bi
                dst[i] = v
                ilo = min(ilo, v)
                ihi = max(ihi, v)
        elif fix_bits:
            for i in range(n):
                v = (np.int64(src[i]) & mask) * si + bi
                dst[i] = v
                ilo = min(ilo, v)
                ihi = max(ihi, v)
        else:
            for i in range(n):
                v = np.int64(src[i]) * si + bi
                dst[i] = v
                ilo = min(ilo, v)
                ihi = max(ihi, v)
        return np.float64(ilo), np.float64(ihi)
    flo = np.inf
    fhi = -np.inf
    if fix_bits and signed:
        for i in range(n):
            f = ((np.int64(src[i]) << sh) >> sh) * s + b
            dst[i] = f
            flo = min(flo, f)
            fhi = max(fhi, f)
    elif fix_bits:
        for i in range(n):
            f = (np.int64(src[i]) & mask) * s + b
            dst[i] = f
            flo = min(flo, f)
            fhi = max(fhi, f)
    else:
        for i in range(n):
            f = np.int64(src[i]) * s + b
            dst[i] = f
            flo = min(flo, f)
            fhi = max(fhi, f)
    return flo, fhi


@kernel(inline="always")
def _conv_bytes(buf, dst, nbytes, swap, bits_stored, signed, samples, planar, s, b, rescale):
    """Stored bytes (any order / planar colour) -> output row; returns (min, max)."""
    nvals = dst.shape[0]
    npix = nvals // samples
    lo = np.inf
    hi = -np.inf
    for i in range(nvals):
        if planar == 1 and samples > 1:
            pix = i // samples
            smp = i - pix * samples
            src_i = smp * npix + pix
        else:
            src_i = i
        v = _fix_bits(_read_elem(buf, src_i * nbytes, nbytes, swap), bits_stored, signed)
        if rescale:
            f = v * s + b
            dst[i] = f
            x = f
        else:
            dst[i] = v
            x = np.float64(v)
        lo = min(lo, x)
        hi = max(hi, x)
    return lo, hi


@kernel(parallel=True)
def read_frames_native(names, name_off, file_of, offsets, dst, out, src_view, stage, stage_typed,
                       mode, oflags, nbytes, signed, swap, bits_stored, samples, planar, fix_bits,
                       slopes, intercepts, rescale, int_rescale, got, vmin, vmax):
    """Read and convert uncompressed frames straight from their files.

    Parameters
    ----------
    names : uint8[:]
        NUL-terminated file system paths, concatenated.
    name_off : int64[:]
        Start of each file's path in ``names``.
    file_of, offsets, dst : int64[:]
        Per frame: file index, byte offset of the frame in the file, output row.
    out : ndarray (nrows, nvals)
        Output rows (any numeric dtype).
    src_view : ndarray (nrows, nvals)
        ``out``'s memory viewed as bytes (read target of mode 0).
    stage : uint8[:, :]
        One frame of scratch per chunk (modes 1 and 2; ``stage.shape[0]``
        is the number of chunks).
    stage_typed : ndarray (nchunks, nvals)
        ``stage`` viewed as the stored dtype (mode 1).
    mode : int
        0: read into the output row and convert in place (output dtype is
        the stored dtype, native byte order, interleaved samples); 1: read into the scratch
        frame and convert from its typed view (native byte order,
        interleaved); 2: scratch frame, element by element (byte swap,
        planar colour).
    oflags : int
        ``open`` flags (read-only, close-on-exec).
    nbytes, signed, swap, bits_stored, samples, planar, fix_bits
        Stored format (see :func:`gather_frames`); ``fix_bits``: clear or
        sign-extend the bits above ``bits_stored``.
    slopes, intercepts : float64[:]
        Per-frame rescale; ``int_rescale``: both are integers and the
        output is an integer dtype (exact integer arithmetic).
    got : int64[:]
        Out: bytes read per frame (-1: the file could not be opened).
    vmin, vmax : float64[:]
        Out: min / max of the values written per frame.

    Returns
    -------
    None
    """
    n = offsets.shape[0]
    nch = stage.shape[0]
    nvals = out.shape[1]
    fb = nvals * nbytes
    per = (n + nch - 1) // nch
    for c in prange(nch):
        a = c * per
        e = min(n, a + per)
        fd = -1
        cur = -1
        for j in range(a, e):
            fi = file_of[j]
            if fi != cur:
                if fd >= 0:
                    _c_close(fd)
                cur = fi
                fd = _c_open(names[name_off[fi]:].ctypes.data, oflags)
            if fd < 0:
                got[j] = -1
                cur = -1
                continue
            r = dst[j]
            if mode == 0:
                got[j] = _pread_full(fd, src_view[r].ctypes.data, fb, offsets[j])
            else:
                got[j] = _pread_full(fd, stage[c].ctypes.data, fb, offsets[j])
            if got[j] < fb:
                continue
            s = slopes[j]
            b = intercepts[j]
            if mode == 0:  # one array in and out: no aliasing for the vectoriser to fear
                lo, hi = _conv_typed(out[r], out[r], bits_stored, signed, fix_bits, s, b,
                                     rescale, int_rescale)
            elif mode == 1:
                lo, hi = _conv_typed(stage_typed[c], out[r], bits_stored, signed, fix_bits, s, b,
                                     rescale, int_rescale)
            else:
                lo, hi = _conv_bytes(stage[c], out[r], nbytes, swap, bits_stored, signed,
                                     samples, planar, s, b, rescale)
            vmin[j] = lo
            vmax[j] = hi
        if fd >= 0:
            _c_close(fd)
