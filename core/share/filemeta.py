"""The Part 10 file meta of a de-identified file: read from the source bytes, built for the output.

:class:`.rewrite.ByteRewriter` reads only the transfer syntax from a
source file's meta (:func:`read_meta`) and writes a new meta for each output
file (:func:`file_meta`), as :meth:`.deidentify.Deidentifier.apply` does
through pydicom: version, SOP class and instance, transfer syntax, and
PocketPACS's implementation UID and name.  :func:`out_uid` finds a UID among
the rewritten elements for it.
"""
from __future__ import annotations

import struct
from typing import Any

from .deidentify import IMPLEMENTATION_CLASS_UID
from .elements import LONG_VRS, NotRewritable
from .elements import element as _element
from .elements import pad as _pad

_UNDEFINED = 0xFFFFFFFF
_EXPL = struct.Struct("<HH2sH")
_U32 = struct.Struct("<I")
_LONG_VR_BYTES = frozenset(vr.encode("latin-1") for vr in LONG_VRS)
_PREAMBLE = b"\0" * 128 + b"DICM"
_META_START = _PREAMBLE + struct.pack("<HH2sH", 0x0002, 0x0000, b"UL", 4)  # the group length's header
_META_VERSION = _element(0x00020001, "OB", b"\x00\x01", False)


def read_meta(mv: memoryview) -> tuple[dict[int, str], int]:
    """The file meta's transfer syntax UID and the position of the data set.

    Parameters
    ----------
    mv : memoryview
        The whole file, preamble and ``DICM`` included.

    Returns
    -------
    meta : dict
        ``{0x00020010: transfer syntax UID}`` when the meta has one (the only
        meta element the rewriter reads).
    pos : int
        Offset of the first data-set element.

    Raises
    ------
    NotRewritable
        The meta is not explicit VR, or an element runs past the end.
    """
    pos, end = 132, len(mv)
    meta: dict[int, str] = {}
    unpack, long_vrs = _EXPL.unpack_from, _LONG_VR_BYTES
    while end - pos >= 8:
        group, el, vrb, length = unpack(mv, pos)
        if group != 0x0002:
            break
        if vrb in long_vrs:
            length, hdr = _U32.unpack_from(mv, pos + 8)[0], 12
        elif vrb.isalpha() and vrb.isupper():
            hdr = 8
        else:
            raise NotRewritable("file meta not in explicit VR")
        if length == _UNDEFINED or pos + hdr + length > end:
            raise NotRewritable("a file meta element past the end")
        if el == 0x0010 and vrb == b"UI":
            meta[0x00020000 | el] = bytes(mv[pos + hdr:pos + hdr + length]).decode("ascii", "replace").rstrip("\0 ")
        pos += hdr + length
    return meta, pos


def out_uid(out: list[tuple[int, Any]], tag: int) -> str | None:
    """The UID value of ``tag`` among rewritten ``(tag, element bytes)`` pieces (8-byte header), or None.

    Parameters
    ----------
    out : list of (int, bytes-like)
        Rewritten elements, each with its header (a UI element's header is
        8 bytes in implicit and explicit VR alike).
    tag : int
        The element wanted.

    Returns
    -------
    str or None
    """
    for t, piece in out:
        if t == tag:
            return bytes(piece)[8:].decode("ascii", "replace").rstrip("\0 ") or None
    return None


def file_meta(ts: str, sop_class: str, sop_instance: str,
              cache: dict[tuple[str, str], tuple[bytes, bytes, int]] = {}) -> bytes:  # noqa: B006 (module-wide)
    """Preamble, ``DICM`` and the file meta of a de-identified file (as Deidentifier's ``_new_file_meta``).

    Parameters
    ----------
    ts, sop_class, sop_instance : str
        Transfer syntax, SOP Class and SOP Instance UIDs of the output file.
    cache : dict
        Module-wide: the elements but the instance UID are the same for every
        file of a syntax and class.

    Returns
    -------
    bytes
    """
    known = cache.get((ts, sop_class))
    if known is None:
        head = _META_VERSION + _element(0x00020002, "UI", _pad(sop_class.encode(), "UI"), False)
        tail = (_element(0x00020010, "UI", _pad(ts.encode(), "UI"), False)
                + _element(0x00020012, "UI", _pad(IMPLEMENTATION_CLASS_UID.encode(), "UI"), False)
                + _element(0x00020013, "SH", _pad(b"POCKETPACS", "SH"), False))
        if len(cache) > 256:
            cache.clear()
        known = cache[(ts, sop_class)] = (head, tail, len(head) + len(tail))
    inst = _element(0x00020003, "UI", _pad(sop_instance.encode(), "UI"), False)
    return b"".join((_META_START, _U32.pack(known[2] + len(inst)), known[0], inst, known[1]))
