"""Kernels of the JPEG lossless encoder (process 14, selection value 1).

Both walk the image in the order of the DPCM predictor of selection value 1
(left neighbour; the pixel above at the start of a row; ``2**(P-1)`` for the
first pixel) and take the differences modulo 2**16:
:func:`jpeg_lossless_histogram` counts the difference categories (for the
Huffman table) and :func:`jpeg_lossless_scan` writes the Huffman-coded,
byte-stuffed scan.  Arithmetic only; ``reference`` holds the plain-Python
versions the tests compare against.
"""
from __future__ import annotations

from ._jit import kernel


@kernel(inline="always")
def _difference(x, r, c, precision):
    """Predictor 1 difference of pixel (r, c) (modulo 2^16, signed) and its size category."""
    if r == 0:
        pred = (1 << (precision - 1)) if c == 0 else x[0, c - 1]
    elif c == 0:
        pred = x[r - 1, 0]
    else:
        pred = x[r, c - 1]
    d = (x[r, c] - pred) & 0xFFFF
    if d >= 0x8000:
        d -= 0x10000
    m = abs(d)
    s = 0
    while m:
        s += 1
        m >>= 1
    return d, s


@kernel
def jpeg_lossless_histogram(x, precision, hist):
    rows, cols = x.shape
    for r in range(rows):
        for c in range(cols):
            d, s = _difference(x, r, c, precision)
            hist[s] += 1


@kernel
def jpeg_lossless_scan(x, precision, codes, sizes, out):
    rows, cols = x.shape
    acc = 0
    nacc = 0
    o = 0
    for r in range(rows):
        for c in range(cols):
            d, s = _difference(x, r, c, precision)
            acc = (acc << sizes[s]) | codes[s]
            nacc += sizes[s]
            if s > 0 and s < 16:  # category 16 (difference 32768) has no extra bits
                extra = d if d > 0 else d - 1
                acc = (acc << s) | (extra & ((1 << s) - 1))
                nacc += s
            while nacc >= 8:
                nacc -= 8
                b = (acc >> nacc) & 0xFF
                out[o] = b
                o += 1
                if b == 0xFF:
                    out[o] = 0
                    o += 1
            acc &= (1 << nacc) - 1
    if nacc > 0:
        pad = 8 - nacc
        b = ((acc << pad) | ((1 << pad) - 1)) & 0xFF
        out[o] = b
        o += 1
        if b == 0xFF:
            out[o] = 0
            o += 1
    return o
