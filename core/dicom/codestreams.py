"""Image sizes declared inside compressed frames, read before decoding.

A decoder allocates what the codestream declares: a JPEG 2000 frame whose
SIZ marker claims 2,490,880 rows (one damaged byte) made pylibjpeg-openjpeg
allocate 2.5 GB and decode for 20 s before pydicom noticed the mismatch.  The
decoder workers compare the declared size with the DICOM header's Rows,
Columns and SamplesPerPixel first and refuse a frame that disagrees.

Covered: JPEG 2000 / HTJ2K codestreams (raw or in a JP2 box), JPEG (SOF0-15)
and JPEG-LS (SOF55).  Other syntaxes (RLE, deflate) have no size of their own
to trust or distrust: they return None.
"""
from __future__ import annotations

import struct

from pydicom.uid import JPEG2000TransferSyntaxes, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

#: JPEG 2000 and HTJ2K syntaxes (codestreams with a SIZ marker).
J2K_SYNTAXES = frozenset(str(uid) for uid in JPEG2000TransferSyntaxes)
#: JPEG baseline / extended / lossless and JPEG-LS syntaxes (SOF markers).
JPEG_SYNTAXES = frozenset(str(uid) for uid in JPEGTransferSyntaxes + JPEGLSTransferSyntaxes)


class CodestreamError(ValueError):
    """A compressed frame whose declared size cannot be read or is not the header's."""


def _j2k_size(b: bytes) -> tuple[int, int, int, int]:
    start = 0
    if b[4:8] == b"jP  ":  # JP2 file: find the contiguous codestream box
        pos = 0
        while pos + 8 <= len(b):
            n, kind = struct.unpack(">I4s", b[pos:pos + 8])
            head = 8
            if n == 1 and pos + 16 <= len(b):
                n, head = struct.unpack(">Q", b[pos + 8:pos + 16])[0], 16
            if kind == b"jp2c":
                start = pos + head
                break
            if n < head:
                raise CodestreamError("JP2 box with a bad length")
            pos += n
        else:
            raise CodestreamError("JP2 file without a codestream box")
    if b[start:start + 4] != b"\xff\x4f\xff\x51" or len(b) < start + 42:
        raise CodestreamError("JPEG 2000 codestream without SOC/SIZ")
    xs, ys, xo, yo = struct.unpack(">IIII", b[start + 8:start + 24])
    (comps,) = struct.unpack(">H", b[start + 40:start + 42])
    if xs <= xo or ys <= yo:
        raise CodestreamError("JPEG 2000 image area is empty")
    ssiz = b[start + 42:start + 42 + 3 * min(comps, 4):3]
    prec = max(((v & 0x7F) + 1 for v in ssiz), default=0)
    return ys - yo, xs - xo, comps, prec


def j2k_declared_size(data: bytes) -> tuple[int, int, int, int]:
    """``(rows, columns, components, bits)`` a JPEG 2000 codestream or JP2
    file declares in its SIZ marker, read before any decoding.

    Raises
    ------
    CodestreamError
        No SOC/SIZ (or no codestream box in a JP2 file), or an empty image area.
    """
    return _j2k_size(data)


def _jpeg_size(b: bytes) -> tuple[int, int, int, int]:
    if b[:2] != b"\xff\xd8":
        raise CodestreamError("JPEG frame without SOI")
    pos = 2
    n = len(b)
    while pos + 4 <= n:
        if b[pos] != 0xFF:
            raise CodestreamError("JPEG marker expected")
        m = b[pos + 1]
        if m == 0xFF:  # fill byte
            pos += 1
            continue
        if m in (0x01,) or 0xD0 <= m <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", b[pos + 2:pos + 4])
        if (0xC0 <= m <= 0xCF and m not in (0xC4, 0xC8, 0xCC)) or m == 0xF7:
            if pos + 10 > n:
                break
            rows, cols = struct.unpack(">HH", b[pos + 5:pos + 9])
            return rows, cols, b[pos + 9], b[pos + 4]
        if m == 0xDA or length < 2:
            break
        pos += 2 + length
    raise CodestreamError("JPEG frame without a frame header (SOF)")


def declared_size(frame: bytes, transfer_syntax: str) -> tuple[int, int, int, int] | None:
    """``(rows, columns, components, bits per sample)`` declared by a compressed frame.

    Parameters
    ----------
    frame : bytes
        One frame's compressed bytes.
    transfer_syntax : str
        Its transfer syntax UID.

    Returns
    -------
    tuple or None
        None for syntaxes without a size of their own.  The bit depth is the
        largest of the first four components' (JPEG 2000) or the frame
        header's sample precision (JPEG, JPEG-LS).

    Raises
    ------
    CodestreamError
        The frame's header cannot be read.
    """
    if transfer_syntax in J2K_SYNTAXES:
        return _j2k_size(frame)
    if transfer_syntax in JPEG_SYNTAXES:
        return _jpeg_size(frame)
    return None


def check_frame(frame: bytes, transfer_syntax: str, rows: int, cols: int,
                bits_allocated: int | None = None) -> None:
    """Refuse a frame whose declared size is not the DICOM header's.

    Compared: rows and columns (what a decoder allocates from), a component
    count of 1 to 4, and a bit depth of at least 2 and at most
    *bits_allocated* (a damaged precision byte made GDCM abort the process
    with an uncaught C++ exception, for JPEG 2000 and JPEG-LS alike).
    Components are not matched with SamplesPerPixel: vendors disagree there.

    Raises
    ------
    CodestreamError
        With the declared and expected values.
    """
    got = declared_size(frame, transfer_syntax)
    if got is None:
        return
    r, c, k, bits = got
    if (r, c) != (rows, cols) or not 1 <= k <= 4:
        raise CodestreamError(f"compressed frame declares {r}x{c} pixels and {k} components, "
                              f"the header {rows}x{cols}")
    limit = bits_allocated if bits_allocated and bits_allocated >= 8 else 16
    if not 1 <= bits <= limit or (bits < 2 and transfer_syntax not in J2K_SYNTAXES):
        raise CodestreamError(f"compressed frame declares {bits}-bit samples, "
                              f"the header allocates {limit} bits")
