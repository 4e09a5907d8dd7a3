"""The element index of a file's data set for the byte-level de-identification.

:func:`index_table` runs the numba kernel
:func:`pocketpacs.native.dicomindex.index_elements` over a file's bytes and
returns its element table (one row per element and per sequence item: tag,
VR code, parent row, start, value start, value end, end), or raises
:class:`NotRewritable` with the reason when the data set is outside what the
rewriter copies verbatim.  :func:`nested` turns the table into the nested
element tuples the rewriter's general walk uses; :func:`vr_of` names the VR of
a row (from the file, or from the dictionary for implicit VR files, as pydicom
reads them).
"""
from __future__ import annotations

import struct

import numpy as np

from ..native.dicomindex import (
    COL_PARENT,
    IDX_FULL,
    IDX_OK,
    NCOLS,
    REASONS,
    index_elements,
    vr_kinds_table,
)


class NotRewritable(Exception):
    """The file is outside what the byte-level rewriter handles (the reason says why)."""


#: explicit VRs whose length field is 4 bytes (after 2 reserved bytes)
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
VRS = LONG_VRS | frozenset({"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "PN", "SH",
                            "SL", "SS", "ST", "TM", "UI", "UL", "US"})
#: VR code (first byte << 8 | second byte) -> VR
VR_NAMES = {(ord(vr[0]) << 8) | ord(vr[1]): vr for vr in VRS}
ITEM = 0xFFFEE000
#: Deepest nesting of sequence items the rewriter follows.
MAX_DEPTH = 16
_VR_KINDS = vr_kinds_table({vr: vr in LONG_VRS for vr in VRS})
_SQ_TAGS: list[np.ndarray] = []

#: One indexed element, a tuple: tag, VR, start of its header, start and end of its value, end
#: of the element (delimiters included), its items (sequences: a list of element lists; else None).
TAG, VR, START, VSTART, VEND, END, ITEMS_OF = range(7)

#: tag -> its VR in the dictionary (implicit VR files), filled as tags are met
_DICT_VRS: dict[int, str] = {}


def dict_vr(tag: int, cache: dict[int, str] = _DICT_VRS) -> str:
    """The VR pydicom gives an implicit VR element.

    Parameters
    ----------
    tag : int
    cache : dict, optional
        Module-wide cache of the answers.

    Returns
    -------
    str
        The dictionary's VR; LO for private creators; UN for unknown tags.
    """
    vr = cache.get(tag)
    if vr is None:
        from pydicom.datadict import dictionary_VR

        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
        if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF:
            vr = "LO"  # private creators (pydicom reads them as LO)
        cache[tag] = vr
    return vr


def sq_tags() -> np.ndarray:
    """The tags whose dictionary VR is SQ (how the kernel knows an implicit VR sequence).

    Returns
    -------
    ndarray of int64
        Sorted; made once from pydicom's dictionary (curves' repeating groups included).
    """
    if not _SQ_TAGS:
        from pydicom.datadict import DicomDictionary

        tags = {int(t) for t in DicomDictionary if dict_vr(int(t)) == "SQ"}
        tags |= {g << 16 | 0x2600 for g in range(0x5000, 0x5100) if dict_vr(g << 16 | 0x2600) == "SQ"}  # curves
        _SQ_TAGS.append(np.array(sorted(tags), dtype=np.int64))
    return _SQ_TAGS[0]


def index_table(data: bytes, pos: int, implicit: bool) -> tuple[np.ndarray, int]:
    """The element table of the data set that starts at ``pos`` in ``data``.

    Parameters
    ----------
    data : bytes
        The whole file.
    pos : int
        Where the data set starts (after the file meta).
    implicit : bool
        Implicit VR little endian (else explicit VR little endian).

    Returns
    -------
    (ndarray of int64, int)
        The table (``pocketpacs.native.dicomindex.COL_*`` columns) and its number of rows.

    Raises
    ------
    NotRewritable
        The data set is malformed or outside what the rewriter copies (the reason says which).
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    end = len(data)
    table = np.empty((256, NCOLS), dtype=np.int64)
    code, n, _where = index_elements(buf, pos, end, implicit, _VR_KINDS, sq_tags(), MAX_DEPTH, table)
    if code == IDX_FULL:  # every row takes at least 8 bytes: this one is large enough
        table = np.empty(((end - pos) // 8 + 2, NCOLS), dtype=np.int64)
        code, n, _where = index_elements(buf, pos, end, implicit, _VR_KINDS, sq_tags(), MAX_DEPTH, table)
    if code != IDX_OK:
        raise NotRewritable(REASONS.get(code, "a data set that cannot be indexed"))
    return table, n


def vr_of(tag: int, code: int, implicit: bool) -> str:
    """The VR of a row of an element table.

    Parameters
    ----------
    tag, code : int
        The row's tag and VR code.
    implicit : bool

    Returns
    -------
    str
        "" for items; the dictionary's VR in implicit VR files.
    """
    if tag == ITEM:
        return ""
    return dict_vr(tag) if implicit else VR_NAMES[code]


def nested(table: np.ndarray, n: int, implicit: bool) -> list[tuple]:
    """The top-level elements of a table as element tuples (``TAG`` ... ``ITEMS_OF``), items nested.

    Parameters
    ----------
    table : ndarray
    n : int
        Rows of ``table`` in use.
    implicit : bool

    Returns
    -------
    list of tuple
    """
    rows = table[:n].tolist()
    top: list[tuple] = []
    lists: dict[int, list] = {-1: top}   # row of an item -> its elements
    items_of: dict[int, list] = {}       # row of a sequence -> its items
    for r, (tag, code, parent, start, vstart, vend, end) in enumerate(rows):
        if tag == ITEM and parent in items_of:
            lists[r] = []
            items_of[parent].append(lists[r])
            continue
        vr = vr_of(tag, code, implicit)
        items = None
        if vr == "SQ":
            items = items_of[r] = []
        lists[parent].append((tag, vr, start, vstart, vend, end, items))
    return top


def children(table: np.ndarray, n: int) -> dict[int, list[int]]:
    """The rows of each parent in a table.

    Parameters
    ----------
    table : ndarray
    n : int
        Rows in use.

    Returns
    -------
    dict of int to list of int
        Parent row (-1: the data set) -> its rows, in order.
    """
    out: dict[int, list[int]] = {-1: []}
    for r, parent in enumerate(table[:n, COL_PARENT].tolist()):
        out.setdefault(parent, []).append(r)
    return out


def element(tag: int, vr: str, value: bytes, implicit: bool) -> bytes:
    """An element's bytes.

    Parameters
    ----------
    tag : int
    vr : str
    value : bytes
        Already padded to an even length.
    implicit : bool

    Returns
    -------
    bytes

    Raises
    ------
    NotRewritable
        A value too long for the VR's 2-byte length field.
    """
    if implicit:
        return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value
    if vr in LONG_VRS:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    if len(value) > 0xFFFF:
        raise NotRewritable(f"a {vr} value too long for its VR")
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def pad(b: bytes, vr: str) -> bytes:
    """A value padded to an even length.

    Parameters
    ----------
    b : bytes
    vr : str
        UI values are padded with a NUL, others with a space.

    Returns
    -------
    bytes
    """
    return b + (b"\0" if vr == "UI" else b" ") if len(b) & 1 else b


def sequence(tag: int, items: list[bytes], implicit: bool) -> bytes:
    """A sequence element of defined length.

    Parameters
    ----------
    tag : int
    items : list of bytes
        Each item's encoded elements.
    implicit : bool

    Returns
    -------
    bytes
    """
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(it)) + it for it in items)
    return element(tag, "SQ", body, implicit)


__all__ = ["ITEM", "NotRewritable", "children", "dict_vr", "element", "index_table", "nested", "pad", "sequence",
           "vr_of"]
