"""Pixel formats: how a file stores its pixels, and whether its header's sizes hold.

:class:`PixelFormat` is what the header parser recorded about one file's
pixel data (rows, columns, samples, bits, sign, photometric interpretation,
planar configuration, frames, transfer syntax, offset and length of the
Pixel Data value); its :attr:`~PixelFormat.route` says how the frames are
read: ``native`` (uncompressed, read at the recorded offset and converted by
the kernels, :mod:`pocketpacs.images.frames`) or ``pydicom`` (decoded in
worker processes, :mod:`pocketpacs.images.decoders`).
:func:`formats_from_batch` builds the formats of every file of a header
batch, and :func:`format_problem` refuses sizes that a file of its size
cannot hold, before anything is allocated from them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: Uncompressed transfer syntaxes -> big endian.  The UIDs of the pixel
#: reader's hot paths and tables are spelled out rather than taken from
#: ``pydicom.uid``: importing pydicom (about 0.25 s) would come with every
#: ``import pocketpacs``, and reading plain uncompressed files never needs it.
#: tests/test_syntaxes.py checks every one against ``pydicom.uid``.
NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2": False,  # implicit VR little endian
    "1.2.840.10008.1.2.1": False,
    "1.2.840.10008.1.2.2": True,
}
_NATIVE_PHOTOMETRIC = {"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL"}


@dataclass
class PixelFormat:
    """How a file stores its pixels.

    Attributes
    ----------
    rows, cols, samples, bits_allocated, bits_stored : int
    signed : bool
        Pixel Representation 1.
    photometric : str
    planar : int
    nframes : int
    transfer_syntax : str
    offset, length : int
        File offset / length of the Pixel Data value (-1 unknown).
    encapsulated : bool
    """

    rows: int
    cols: int
    samples: int = 1
    bits_allocated: int = 16
    bits_stored: int = 16
    signed: bool = False
    photometric: str = "MONOCHROME2"
    planar: int = 0
    nframes: int = 1
    transfer_syntax: str = "1.2.840.10008.1.2.1"
    offset: int = -1
    length: int = -1
    encapsulated: bool = False

    @property
    def big_endian(self) -> bool:
        """Whether the data set is big endian."""
        return NATIVE_SYNTAXES.get(self.transfer_syntax, False)

    @property
    def frame_bytes(self) -> int:
        """Bytes per uncompressed frame."""
        return self.rows * self.cols * self.samples * self.bits_allocated // 8

    @property
    def stored_dtype(self) -> np.dtype:
        """NumPy dtype of the stored values (as pydicom returns them)."""
        ba = self.bits_allocated
        if ba <= 8:
            return np.dtype(np.int8 if self.signed else np.uint8)
        if ba <= 16:
            return np.dtype(np.int16 if self.signed else np.uint16)
        if ba <= 32:
            return np.dtype(np.int32 if self.signed else np.uint32)
        return np.dtype(np.int64 if self.signed else np.uint64)

    @property
    def route(self) -> str:
        """``"native"`` when the native kernels can read the frames."""
        if (self.transfer_syntax in NATIVE_SYNTAXES and not self.encapsulated
                and self.offset >= 0 and self.bits_allocated in (8, 16, 32)
                and self.photometric in _NATIVE_PHOTOMETRIC and self.samples in (1, 3, 4)
                and 1 <= self.bits_stored <= self.bits_allocated
                and self.rows > 0 and self.cols > 0
                and not (self.big_endian and self.bits_allocated == 8)  # OW word swap
                and (self.length < 0 or self.length >= self.frame_bytes * self.nframes)):
            return "native"
        return "pydicom"


#: Bits Allocated values pixel data can have (PS3.5 8.1.1; pydicom's check).
VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)
#: Bytes an image may need beyond what its file could hold (uncompressed),
#: or beyond ``MAX_COMPRESSION_RATIO`` times the file (compressed).  Outputs
#: are allocated from the header's Rows x Columns x frames only within this
#: bound, so a bogus header cannot ask for gigabytes (reliability notes M12).
PIXEL_SLACK_BYTES = 128 * 1024 * 1024
MAX_COMPRESSION_RATIO = 2048
MAX_FRAMES = 1 << 24


def decoded_bytes(fmt: "PixelFormat") -> int:
    """Bytes all frames of ``fmt`` take decoded (1-bit frames rounded up)."""
    per = fmt.rows * fmt.cols * fmt.samples
    return -(-per * fmt.bits_allocated // 8) * fmt.nframes


def _is_gzip(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def format_problem(fmt: "PixelFormat", file_size: int, gzipped: bool = False) -> str | None:
    """Why ``fmt`` cannot describe the pixels of a ``file_size``-byte file
    (None when it can).  Checked before anything is allocated from it.
    ``gzipped``: the file is gzip-compressed (its pixels are compressed
    whatever the transfer syntax says)."""
    if not (1 <= fmt.rows <= 65535 and 1 <= fmt.cols <= 65535):
        return f"Rows x Columns {fmt.rows} x {fmt.cols} out of range"
    if fmt.samples not in (1, 3, 4):
        return f"Samples per Pixel {fmt.samples} not supported"
    if fmt.bits_allocated not in VALID_BITS_ALLOCATED:
        return f"Bits Allocated {fmt.bits_allocated} is not 1, 8, 16, 32 or 64"
    if not 1 <= fmt.nframes <= MAX_FRAMES:
        return f"Number of Frames {fmt.nframes} out of range"
    need = decoded_bytes(fmt)
    compressed = gzipped or fmt.encapsulated or fmt.transfer_syntax not in NATIVE_SYNTAXES
    if file_size >= 0:
        room = file_size * (MAX_COMPRESSION_RATIO if compressed else 1) + PIXEL_SLACK_BYTES
        if need > room:
            return (f"Rows x Columns x Frames x Bits Allocated need {need:,} bytes, "
                    f"more than a {file_size:,}-byte file can hold")
    return None


def formats_from_batch(batch: Any) -> list[PixelFormat | None]:
    """Pixel formats of every file of a header batch (None for failed files).

    Parameters
    ----------
    batch : pocketpacs.dicom.batch.HeaderBatch

    Returns
    -------
    list of (PixelFormat or None)
    """
    cols = {k: batch.number(k) for k in ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
                                         "BitsStored", "PixelRepresentation",
                                         "PlanarConfiguration", "NumberOfFrames")}
    photo = batch.text("PhotometricInterpretation")
    ts = batch.transfer_syntax

    def ints(a: np.ndarray, default: int | np.ndarray) -> list[int]:
        ok = np.isfinite(a) & (np.abs(a) < 2 ** 62)
        return np.where(ok, np.trunc(np.where(ok, a, 0)), default).astype(np.int64).tolist()

    ba = ints(cols["BitsAllocated"], 16)
    bs = ints(cols["BitsStored"], np.where(np.isfinite(cols["BitsAllocated"]),
                                           cols["BitsAllocated"], 16))
    rows, ccols = ints(cols["Rows"], 0), ints(cols["Columns"], 0)
    smp, pr = ints(cols["SamplesPerPixel"], 1), ints(cols["PixelRepresentation"], 0)
    pc, nf = ints(cols["PlanarConfiguration"], 0), ints(cols["NumberOfFrames"], 1)
    native = (batch.status == 0).tolist()
    offs, lens = batch.pixel_offset.tolist(), batch.pixel_length.tolist()
    enc = batch.encapsulated.tolist()
    failed = (batch.status < 0).tolist()
    out: list[PixelFormat | None] = []
    for i in range(batch.n):
        if failed[i]:
            out.append(None)
            continue
        out.append(PixelFormat(
            rows=rows[i], cols=ccols[i], samples=smp[i], bits_allocated=ba[i],
            bits_stored=bs[i], signed=pr[i] == 1,
            photometric=(photo[i] or "MONOCHROME2").strip().upper(), planar=pc[i],
            nframes=max(1, nf[i]), transfer_syntax=(ts[i] or "1.2.840.10008.1.2").strip("\0 "),
            offset=offs[i] if native[i] else -1, length=lens[i], encapsulated=bool(enc[i])))
    return out
