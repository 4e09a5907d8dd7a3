"""Encoders of the compressed transfer syntaxes the generator writes.

:func:`encode_jpeg_lossless` writes JPEG lossless (process 14, selection
value 1) codestreams with an optimal Huffman table; its histogram and scan
loops are the kernels of :mod:`pocketpacs.native.jpeg_lossless`.  RLE
lossless (pylibjpeg-rle, byte-identical to pydicom's own encoder) and JPEG
2000 lossless frames come from pydicom's encoders; :func:`_encode_frame`
encodes one frame of a series in the series' codec.
"""
from __future__ import annotations

import struct

import numpy as np
from pydicom.pixels.encoders import JPEG2000LosslessEncoder, RLELosslessEncoder

from ..native.jpeg_lossless import jpeg_lossless_histogram, jpeg_lossless_scan
from .plan import _Series

#: pylibjpeg-rle (a project dependency) makes the same bytes as pydicom's
#: native RLE encoder, three times faster; the tests check they agree.
_RLE_PLUGIN = "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"


def _huffman_table(hist: np.ndarray) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """Optimal length-limited Huffman table (ITU T.81 Annex K.2/K.3, as libjpeg).

    Returns ``bits`` (16 counts), ``huffval`` and per-symbol ``codes`` and
    ``sizes`` for the 17 difference categories.
    """
    nsym = len(hist)
    freq = [int(f) for f in hist] + [1]  # reserved symbol: no code is all ones
    n = nsym + 1
    codesize = [0] * n
    others = [-1] * n
    while True:
        c1, v = -1, None
        for i in range(n):
            if freq[i] and (v is None or freq[i] <= v):
                v, c1 = freq[i], i
        c2, v = -1, None
        for i in range(n):
            if freq[i] and i != c1 and (v is None or freq[i] <= v):
                v, c2 = freq[i], i
        if c2 < 0:
            break
        freq[c1] += freq[c2]
        freq[c2] = 0
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
    bits = [0] * 33
    for i in range(n):
        if codesize[i]:
            bits[codesize[i]] += 1
    i = 32
    while i > 16:
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        i -= 1
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # drop the reserved symbol's code
    huffval = [s for length in range(1, 33) for s in range(nsym) if codesize[s] == length]
    codes = np.zeros(nsym, dtype=np.int64)
    sizes = np.zeros(nsym, dtype=np.int64)
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            codes[huffval[k]] = code
            sizes[huffval[k]] = length
            code += 1
            k += 1
        code <<= 1
    return bits[1:17], huffval, codes, sizes


def encode_jpeg_lossless(image: np.ndarray, precision: int) -> bytes:
    """Encode a greyscale image as JPEG lossless, process 14, predictor 1.

    This is the codestream of transfer syntax 1.2.840.10008.1.2.4.70 (JPEG
    Lossless, Non-Hierarchical, First-Order Prediction): SOI, SOF3 (one
    component), one optimal Huffman table (DHT), SOS with selection value 1
    and point transform 0, Huffman-coded DPCM differences (modulo 2**16) with
    byte stuffing, EOI.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Non-negative integer samples, all below ``2 ** precision``.
    precision : int
        Sample precision P in bits, 2..16 (the BitsStored of a DICOM image).

    Returns
    -------
    bytes
        The JPEG codestream.
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise ValueError("image must be a non-empty 2D array")
    if not 2 <= precision <= 16:
        raise ValueError("precision must be 2..16")
    rows, cols = a.shape
    if rows > 0xFFFF or cols > 0xFFFF:
        raise ValueError("image too large for JPEG")
    x = np.ascontiguousarray(a, dtype=np.int32)
    if int(x.min()) < 0 or int(x.max()) >= (1 << precision):
        raise ValueError(f"samples must lie in [0, 2**{precision})")
    hist = np.zeros(17, dtype=np.int64)
    jpeg_lossless_histogram(x, precision, hist)
    bits, huffval, codes, sizes = _huffman_table(hist)
    buf = np.empty(rows * cols * 8 + 16, dtype=np.uint8)
    n = jpeg_lossless_scan(x, precision, codes, sizes, buf)
    sof = b"\xff\xc3" + struct.pack(">HBHHB", 11, precision, rows, cols, 1) + bytes((1, 0x11, 0))
    dht = (b"\xff\xc4" + struct.pack(">H", 2 + 1 + 16 + len(huffval)) + b"\x00"
           + bytes(bits) + bytes(huffval))
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes((1, 0x00, 1, 0, 0))
    return b"\xff\xd8" + sof + dht + sos + buf[:n].tobytes() + b"\xff\xd9"


def _encode_frame(s: _Series, arr: np.ndarray) -> bytes:
    """The compressed codestream of one frame (for compressed codecs)."""
    if s.codec == "jpeg-lossless":
        return encode_jpeg_lossless(arr, s.bits_stored)
    kw = dict(rows=s.rows, columns=s.cols, samples_per_pixel=1, bits_allocated=16,
              bits_stored=s.bits_stored, pixel_representation=s.pixel_representation,
              photometric_interpretation="MONOCHROME2", number_of_frames=1)
    if s.codec == "j2k":
        return JPEG2000LosslessEncoder.encode(arr, encoding_plugin="pylibjpeg", **kw)
    if s.codec == "rle":
        return RLELosslessEncoder.encode(arr, encoding_plugin=_RLE_PLUGIN, **kw)
    raise ValueError(f"not a compressed codec: {s.codec}")
