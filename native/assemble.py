"""Convert uncompressed DICOM frames into the rows of one preallocated array.

Arithmetic over arrays only: the frames' bytes are read by the caller
(:mod:`pocketpacs.images.frames`, plain ``os.preadv``), these kernels convert them
-- clear the unused high bits (unsigned) or sign-extend (signed) as pydicom
does, swap the byte order, interleave planar colour, apply the per-frame
rescale, change the dtype -- and record the min/max of the values written
(so a caller can check that they fit the output dtype).

Chunk kernels (serial, GIL released; the caller reads a chunk of a few
frames, then converts it while it is still in the CPU cache, on two threads
so that reading and converting overlap):

``convert_rows_inplace``
    The frames were read straight into their output rows (output dtype is
    the stored dtype, native byte order, interleaved samples).
``convert_rows``
    From a typed scratch buffer (native byte order, interleaved samples),
    into an output of another dtype.
``convert_rows_bytes``
    From a byte scratch buffer, element by element (big endian, planar
    colour, any item size).

Whole-buffer kernels (parallel over frames):

``gather_frames``
    Frames given as byte ranges of a staging buffer, element by element.
``convert_inplace``
    Re-interpret frames in place (``src`` and ``out`` two views of the same
    memory), applying the bit correction and the rescale.

``reference.<name>`` is the NumPy oracle of each (tests/test_pixels.py).
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange


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
        if n == 0:
            return np.inf, -np.inf
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


@kernel
def convert_rows_inplace(out, dst, bits_stored, signed, fix_bits, slopes, intercepts, rescale,
                         int_rescale, vmin, vmax):
    """Convert frames that were read straight into their output rows.

    Serial (one chunk of a few rows, still in the CPU cache after the read;
    the caller runs chunks on several threads, the GIL is released).

    Parameters
    ----------
    out : ndarray (nrows, nvals)
        Output rows, stored dtype in native byte order (the stored values
        are replaced by the converted ones).
    dst : int64[:]
        The rows to convert (``k`` of them).
    bits_stored : int
    signed : bool
        Pixel Representation 1.
    fix_bits : bool
        Clear (unsigned) or sign-extend (signed) the bits above ``bits_stored``.
    slopes, intercepts : float64[:]
        Rescale of each of the ``k`` rows.
    rescale : bool
        Apply ``value * slope + intercept``.
    int_rescale : bool
        Slopes and intercepts are integers (exact integer arithmetic).
    vmin, vmax : float64[:]
        Out: min / max of the values written to each of the ``k`` rows
        (after the rescale, before the cast to ``out.dtype``).

    Returns
    -------
    None
    """
    for j in range(dst.shape[0]):
        row = out[dst[j]]
        # one array in and out: no aliasing for the vectoriser to fear
        lo, hi = _conv_typed(row, row, bits_stored, signed, fix_bits, slopes[j], intercepts[j],
                             rescale, int_rescale)
        vmin[j] = lo
        vmax[j] = hi


@kernel
def convert_rows(src, out, dst, bits_stored, signed, fix_bits, slopes, intercepts, rescale,
                 int_rescale, vmin, vmax):
    """Convert frames from a scratch buffer (stored dtype, native order) into output rows.

    Parameters
    ----------
    src : ndarray (k, nvals)
        Stored values of ``k`` frames (native byte order, interleaved samples).
    out : ndarray (nrows, nvals)
        Output rows, any numeric dtype.
    dst : int64[:]
        Output row of each of the ``k`` frames.
    bits_stored, signed, fix_bits, slopes, intercepts, rescale, int_rescale, vmin, vmax
        As for :func:`convert_rows_inplace`.

    Returns
    -------
    None
    """
    for j in range(dst.shape[0]):
        lo, hi = _conv_typed(src[j], out[dst[j]], bits_stored, signed, fix_bits, slopes[j],
                             intercepts[j], rescale, int_rescale)
        vmin[j] = lo
        vmax[j] = hi


@kernel
def convert_rows_bytes(buf, out, dst, nbytes, swap, bits_stored, signed, samples, planar, slopes,
                       intercepts, rescale, vmin, vmax):
    """Convert frames from a byte scratch buffer, element by element, into output rows.

    For what the typed kernels cannot do: big endian, planar colour.

    Parameters
    ----------
    buf : uint8[:, :]
        ``k`` frames' bytes (``buf.shape[1] >= nvals * nbytes``).
    out : ndarray (nrows, nvals)
        Output rows, any numeric dtype (``nvals`` values, samples last).
    dst : int64[:]
        Output row of each of the ``k`` frames.
    nbytes, swap, bits_stored, signed, samples, planar
        Stored format (see :func:`gather_frames`).
    slopes, intercepts, rescale, vmin, vmax
        As for :func:`convert_rows_inplace` (the rescale in float64).

    Returns
    -------
    None
    """
    nvals = out.shape[1]
    npix = nvals // samples
    for j in range(dst.shape[0]):
        row = out[dst[j]]
        s = slopes[j]
        b = intercepts[j]
        lo = np.inf
        hi = -np.inf
        for i in range(nvals):
            if planar == 1 and samples > 1:
                pix = i // samples
                smp = i - pix * samples
                src_i = smp * npix + pix
            else:
                src_i = i
            v = _fix_bits(_read_elem(buf[j], src_i * nbytes, nbytes, swap), bits_stored, signed)
            if rescale:
                f = v * s + b
                row[i] = f
                x = f
            else:
                row[i] = v
                x = np.float64(v)
            lo = min(lo, x)
            hi = max(hi, x)
        vmin[j] = lo
        vmax[j] = hi
