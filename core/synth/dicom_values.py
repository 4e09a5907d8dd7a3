"""DICOM identifiers and value formats of the synthetic archives.

SOP classes and transfer syntaxes (by codec name), the implementation UID of
every file meta group, the tags of the per-slice elements that the fast
writer encodes by hand, and the helpers that make values: ``2.25`` UIDs from
a hash (:func:`_uid`), short DS strings (:func:`_fmt`) and TM strings
(:func:`_tm`).
"""
from __future__ import annotations

import hashlib

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

#: Codec name -> transfer syntax UID.
TRANSFER_SYNTAXES: dict[str, str] = {
    "implicit": IMPLICIT_VR_LE,
    "explicit": EXPLICIT_VR_LE,
    "jpeg-lossless": JPEG_LOSSLESS_SV1,
    "j2k": JPEG2000_LOSSLESS,
    "rle": RLE_LOSSLESS,
}
_COMPRESSED_CODECS = ("jpeg-lossless", "j2k", "rle")
#: Transfer syntaxes of the enhanced multi-frame series, in turn.
_ENHANCED_CODECS = ("explicit", "rle", "implicit", "j2k")
#: JPEG 2000 (OpenJPEG, 6 resolution levels) needs images at least this big;
#: smaller archives use JPEG lossless and RLE only.
_J2K_MIN_SIZE = 32

UID_ROOT = "2.25"
#: (0002,0012) and (0002,0013) of every file written here.
IMPLEMENTATION_CLASS_UID = UID_ROOT + "." + str(
    int.from_bytes(hashlib.blake2b(b"pocketpacs.synth implementation", digest_size=16).digest(), "big"))
IMPLEMENTATION_VERSION_NAME = "POCKETPACS_SYN1"

# Per-slice elements of single-frame files (sorted); Pixel Data follows them.
_TAG_SOP_INSTANCE_UID = 0x00080018
_TAG_ACQUISITION_TIME = 0x00080032
_TAG_INSTANCE_NUMBER = 0x00200013
_TAG_IPP = 0x00200032
_TAG_SLICE_LOCATION = 0x00201041
_TAG_PIXEL_DATA = 0x7FE00010
_SLICE_TAGS = (_TAG_SOP_INSTANCE_UID, _TAG_ACQUISITION_TIME, _TAG_INSTANCE_NUMBER,
               _TAG_IPP, _TAG_SLICE_LOCATION)


def _uid(ns: bytes, *parts: object) -> str:
    """``2.25.<int>`` from a 120-bit hash of the namespace and *parts*."""
    h = hashlib.blake2b(ns + "|".join(map(str, parts)).encode(), digest_size=15).digest()
    return f"{UID_ROOT}.{int.from_bytes(h, 'big')}"


def _fmt(v: float, decimals: int = 4) -> str:
    """A short DS string for *v* (at most *decimals* decimals, no '-0')."""
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


def _tm(seconds: float) -> str:
    """TM string ``HHMMSS.FFF`` for a time of day in seconds."""
    ms = int(round(seconds * 1000)) % (86400 * 1000)
    h, rem = divmod(ms, 3600_000)
    m, rem = divmod(rem, 60_000)
    s, f = divmod(rem, 1000)
    return f"{h:02d}{m:02d}{s:02d}.{f:03d}"
