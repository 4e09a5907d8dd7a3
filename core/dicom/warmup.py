"""The background compile of the header kernels (the first run after installing).

:func:`pocketpacs.dicom.kernels.warm_in_background` starts ``python -m
pocketpacs.dicom.warmup KERNEL...`` in a detached, low-priority process: it
parses a small synthetic header held in memory, in buffers of the types an
import uses, so that the compiled kernels (the parser, the value gatherer
and the helpers they call) land in the kernel cache for the next run.
Nothing is read, and nothing written but the kernel cache.
"""
from __future__ import annotations

import os
import sys

from .kernels import ENV_FIRST_RUN


def _sample_header() -> bytes:
    """A small explicit VR little endian Part 10 file (synthetic values only)."""
    import struct

    def el(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\0" if vr == b"UI" else b" "
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
            return struct.pack("<HH2sHI", group, elem, vr, 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr, len(value)) + value

    ts = b"1.2.840.10008.1.2.1"
    body = el(2, 0x10, b"UI", ts)
    meta = el(2, 0, b"UL", struct.pack("<I", len(body))) + body
    ds = (el(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.2") + el(8, 0x18, b"UI", b"2.25.1.3")
          + el(8, 0x60, b"CS", b"CT") + el(0x10, 0x10, b"PN", b"Warm^Up") + el(0x20, 0xD, b"UI", b"2.25.1.1")
          + el(0x20, 0xE, b"UI", b"2.25.1.2") + el(0x20, 0x32, b"DS", b"0\\0\\0")
          + el(0x28, 0x10, b"US", struct.pack("<H", 2)) + el(0x28, 0x11, b"US", struct.pack("<H", 2))
          + el(0x7FE0, 0x10, b"OW", bytes(8)))
    return bytes(128) + b"DICM" + meta + ds


def _warm(kernels: list[str]) -> None:
    """Compile the given parser kernels into the cache: parse a synthetic header
    held in memory, in buffers of the types :func:`~.headers.parse_files` uses
    (nothing is read or written but the cache), then decode a text and a
    number column (``gather_values``) and compact the batch (``copy_values``)."""
    import numpy as np

    try:
        os.nice(10)
    except OSError:
        pass
    from pocketpacs.native import dicomparse

    from . import headers
    from .batch import HeaderBatch

    blob = np.frombuffer(_sample_header(), dtype=np.uint8)
    for kernel in kernels:
        batch = HeaderBatch(["<warm-up 1>", "<warm-up 2>"])
        buf = np.empty(2 * blob.size, dtype=np.uint8)
        buf[:blob.size] = blob
        buf[blob.size:] = blob
        starts = np.arange(2, dtype=np.int64) * blob.size
        lengths = np.full(2, blob.size, dtype=np.int64)
        fsizes = lengths.copy()
        batch._bufs.append(buf)
        batch._start[:] = starts
        batch.size[:] = fsizes
        info = np.zeros((2, 13), dtype=np.int64)
        headers._run_kernel(dicomparse, batch, buf, starts, lengths, fsizes, np.arange(2, dtype=np.int64), info,
                            kernel == "parse_batch")
        headers._finish(batch, info, np.ones(2, dtype=bool), False)
        batch.text("PatientName")
        batch.values("ImagePositionPatient")
        from pocketpacs.native import dicomvalues   # (a held batch's compaction)

        out = np.zeros(8, dtype=np.uint8)
        dicomvalues.copy_values(buf, np.zeros(1, np.int64), np.full(1, 8, np.int64), np.zeros(1, np.int64), out)


def main(argv: list[str]) -> int:
    """Compile the kernels named in *argv* (``parse_serial``, ``parse_batch``); 0."""
    os.environ[ENV_FIRST_RUN] = "compile"
    _warm([k for k in argv if k in ("parse_serial", "parse_batch")] or ["parse_serial"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
