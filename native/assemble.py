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

``reference.gather_frames`` / ``reference.convert_inplace`` are the NumPy
oracles of both.
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
