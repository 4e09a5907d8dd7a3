"""Element table of a DICOM data set (numba): where every element, item and value is.

:func:`index_elements` walks the data set of one file held in a byte buffer
(implicit or explicit VR little endian; sequences and items of defined and
undefined length, nested; encapsulated pixel data skipped as a whole) and
fills one row per element and per sequence item, in the order of the file:
tag, VR code, parent row, start of the header, start and end of the value,
end of the element (delimiters included).  Elements of an item have the
item's row as parent, items the row of their sequence, top-level elements
-1.  It checks what the byte-level de-identification
(:mod:`pocketpacs.share.rewrite`) needs to copy elements verbatim: tags in
ascending order, no delimiter or zero tag among elements, lengths within the
bytes left, undefined lengths only on sequences and encapsulated pixel data,
nesting at most ``max_depth``; the first problem met ends the walk with a
reason code (``IDX_*``) and its offset.  Arithmetic on the buffer only; the
plain-Python reference is :func:`pocketpacs.native.reference.index_elements`.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .dicomvr import _ITEM, _ITEM_DELIM, _OB, _OW, _SEQ_DELIM, _SQ, _find_tag, _u16, _u32

# ---- columns of the element table --------------------------------------------------------
COL_TAG, COL_VR, COL_PARENT, COL_START, COL_VSTART, COL_VEND, COL_END = range(7)
NCOLS = 7

# ---- outcome codes (0: indexed) ----------------------------------------------------------
IDX_OK = 0
IDX_FULL = 1                #: more rows than the table holds: call again with a larger one
IDX_TOO_DEEP = 2
IDX_LEFT_OVER = 3
IDX_BAD_VR = 4
IDX_HEADER_PAST_END = 5
IDX_DELIM_LENGTH = 6
IDX_DELIM_OR_ZERO = 7
IDX_ORDER = 8
IDX_UNDEFINED = 9
IDX_LONGER = 10
IDX_NO_ITEM_DELIM = 11
IDX_SEQ_PAST_END = 12
IDX_NOT_ITEMS = 13
IDX_ITEM_LONGER = 14
IDX_FRAG_PAST_END = 15
IDX_FRAG_MALFORMED = 16

#: What each outcome means (the byte-level rewriter's reasons for the pydicom path).
REASONS = {
    IDX_TOO_DEEP: "sequences nested too deep",
    IDX_LEFT_OVER: "bytes left over after the last element",
    IDX_BAD_VR: "an element without a valid explicit VR (implicit data?)",
    IDX_HEADER_PAST_END: "an element header past the end",
    IDX_DELIM_LENGTH: "an item delimiter with a length",
    IDX_DELIM_OR_ZERO: "a delimiter or zero tag where an element should be",
    IDX_ORDER: "elements out of order or repeated",
    IDX_UNDEFINED: "an undefined length outside a sequence or encapsulated pixel data",
    IDX_LONGER: "an element longer than the data left",
    IDX_NO_ITEM_DELIM: "an item without its delimiter",
    IDX_SEQ_PAST_END: "a sequence that runs past the end",
    IDX_NOT_ITEMS: "a sequence holding something other than items",
    IDX_ITEM_LONGER: "an item longer than its sequence",
    IDX_FRAG_PAST_END: "encapsulated pixel data that runs past the end",
    IDX_FRAG_MALFORMED: "a malformed fragment of encapsulated pixel data",
}

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_ELEMS, _ITEMS = 0, 1           # frame kinds: a list of elements, the items of a sequence


def vr_kinds_table(vrs: dict[str, bool]) -> np.ndarray:
    """The table :func:`index_elements` checks explicit VRs with.

    Parameters
    ----------
    vrs : dict of str to bool
        Every valid VR and whether its length field is 4 bytes.

    Returns
    -------
    ndarray of uint8, shape (65536,)
        Indexed by ``first byte << 8 | second byte``: 0 not a VR, 1 a 2-byte length, 2 a 4-byte length.
    """
    out = np.zeros(65536, dtype=np.uint8)
    for vr, long_vr in vrs.items():
        b = vr.encode("ascii")
        out[b[0] << 8 | b[1]] = 2 if long_vr else 1
    return out


@kernel(nogil=False)  # a few microseconds: handing the GIL to the export's I/O thread costs more
def index_elements(buf, pos, end, implicit, vr_kinds, sq_tags, max_depth, out):
    """Index the elements and items of a data set.

    Parameters
    ----------
    buf : ndarray of uint8
        The file's bytes.
    pos, end : int
        Where the data set starts and ends in ``buf``.
    implicit : bool
        Implicit VR little endian (else explicit VR little endian).
    vr_kinds : ndarray of uint8
        From :func:`vr_kinds_table`.
    sq_tags : ndarray of int64
        Sorted tags whose dictionary VR is SQ (what an implicit VR element of defined length is).
    max_depth : int
        Deepest nesting of items allowed (top level 0).
    out : ndarray of int64, shape (rows, NCOLS)
        Filled with one row per element and item (``COL_*``); VR code 0 for items and implicit VR
        elements, else ``first byte << 8 | second byte``.

    Returns
    -------
    (int, int, int)
        Outcome (``IDX_OK`` or a problem), rows filled, and the offset where the walk stopped.
    """
    cap = out.shape[0]
    # the frames of the walk: kind, end, in_item (ELEMS) / defined end or -1 (ITEMS), depth,
    # the row their elements or items belong to, the last tag seen (ELEMS)
    nf = max_depth * 2 + 4
    f_kind = np.zeros(nf, np.int64)
    f_end = np.zeros(nf, np.int64)
    f_flag = np.zeros(nf, np.int64)
    f_depth = np.zeros(nf, np.int64)
    f_row = np.zeros(nf, np.int64)
    f_last = np.zeros(nf, np.int64)
    sp = 1
    f_kind[0] = _ELEMS
    f_end[0] = end
    f_flag[0] = 0
    f_depth[0] = 0
    f_row[0] = -1
    f_last[0] = -1
    n = 0
    while sp > 0:
        top = sp - 1
        fend = f_end[top]
        if f_kind[top] == _ELEMS:
            if pos >= fend:
                if f_flag[top] != 0:
                    return IDX_NO_ITEM_DELIM, n, pos
                sp -= 1
                if sp > 0:     # a defined-length item done: its row ends here
                    r = f_row[top]
                    out[r, COL_VEND] = pos
                    out[r, COL_END] = pos
                continue
            if fend - pos < 8:
                return IDX_LEFT_OVER, n, pos
            group = _u16(buf, pos, True)
            tag = (group << 16) | _u16(buf, pos + 2, True)
            vr = 0
            if implicit:
                length = _u32(buf, pos + 4, True)
                hdr = 8
                is_sq = group != 0xFFFE and _find_tag(sq_tags, tag) >= 0
            elif group == 0xFFFE:
                length = _u32(buf, pos + 4, True)
                hdr = 8
                is_sq = False
            else:
                vr = (np.int64(buf[pos + 4]) << 8) | np.int64(buf[pos + 5])
                kind = vr_kinds[vr]
                if kind == 0:
                    return IDX_BAD_VR, n, pos
                if kind == 2:
                    if fend - pos < 12:
                        return IDX_HEADER_PAST_END, n, pos
                    length = _u32(buf, pos + 8, True)
                    hdr = 12
                else:
                    length = _u16(buf, pos + 6, True)
                    hdr = 8
                is_sq = vr == _SQ
            if tag == _ITEM_DELIM and f_flag[top] != 0:
                if length != 0:
                    return IDX_DELIM_LENGTH, n, pos
                r = f_row[top]
                out[r, COL_VEND] = pos
                pos += 8
                out[r, COL_END] = pos
                sp -= 1
                continue
            if group == 0xFFFE or tag == 0:
                return IDX_DELIM_OR_ZERO, n, pos
            if tag <= f_last[top]:
                return IDX_ORDER, n, pos
            f_last[top] = tag
            if n >= cap:
                return IDX_FULL, n, pos
            r = n
            n += 1
            vstart = pos + hdr
            out[r, COL_TAG] = tag
            out[r, COL_VR] = vr
            out[r, COL_PARENT] = f_row[top]
            out[r, COL_START] = pos
            out[r, COL_VSTART] = vstart
            if length == _UNDEFINED:
                if is_sq:
                    # its items up to the sequence delimiter (ends set when the frame closes)
                    if sp >= nf:
                        return IDX_TOO_DEEP, n, pos
                    f_kind[sp] = _ITEMS
                    f_end[sp] = fend
                    f_flag[sp] = -1
                    f_depth[sp] = f_depth[top]
                    f_row[sp] = r
                    sp += 1
                    pos = vstart
                    continue
                if tag == _PIXEL_DATA and not implicit and (vr == _OB or vr == _OW):
                    p = vstart
                    while True:
                        if fend - p < 8:
                            return IDX_FRAG_PAST_END, n, p
                        ftag = (_u16(buf, p, True) << 16) | _u16(buf, p + 2, True)
                        flen = _u32(buf, p + 4, True)
                        if ftag == _SEQ_DELIM:
                            p += 8
                            break
                        if ftag != _ITEM or flen == _UNDEFINED or p + 8 + flen > fend:
                            return IDX_FRAG_MALFORMED, n, p
                        p += 8 + flen
                    out[r, COL_VEND] = p - 8
                    out[r, COL_END] = p
                    pos = p
                    continue
                return IDX_UNDEFINED, n, pos
            vend = vstart + length
            if vend > fend:
                return IDX_LONGER, n, pos
            out[r, COL_VEND] = vend
            out[r, COL_END] = vend
            if is_sq:
                if sp >= nf:
                    return IDX_TOO_DEEP, n, pos
                f_kind[sp] = _ITEMS
                f_end[sp] = vend
                f_flag[sp] = vend
                f_depth[sp] = f_depth[top]
                f_row[sp] = r
                sp += 1
                pos = vstart
                continue
            pos = vend
        else:
            defined_end = f_flag[top]
            if defined_end >= 0 and pos == defined_end:
                sp -= 1
                continue
            if fend - pos < 8:
                return IDX_SEQ_PAST_END, n, pos
            tag = (_u16(buf, pos, True) << 16) | _u16(buf, pos + 2, True)
            length = _u32(buf, pos + 4, True)
            if tag == _SEQ_DELIM and defined_end < 0:
                r = f_row[top]
                out[r, COL_VEND] = pos
                pos += 8
                out[r, COL_END] = pos
                sp -= 1
                continue
            if tag != _ITEM:
                return IDX_NOT_ITEMS, n, pos
            depth = f_depth[top] + 1
            iend = fend
            if length != _UNDEFINED:
                iend = pos + 8 + length
                if iend > fend:
                    return IDX_ITEM_LONGER, n, pos
            if depth > max_depth:
                return IDX_TOO_DEEP, n, pos
            if n >= cap:
                return IDX_FULL, n, pos
            r = n
            n += 1
            out[r, COL_TAG] = tag
            out[r, COL_VR] = 0
            out[r, COL_PARENT] = f_row[top]
            out[r, COL_START] = pos
            out[r, COL_VSTART] = pos + 8
            if sp >= nf:
                return IDX_TOO_DEEP, n, pos
            f_kind[sp] = _ELEMS
            f_depth[sp] = depth
            f_row[sp] = r
            f_last[sp] = -1
            f_end[sp] = iend
            f_flag[sp] = 1 if length == _UNDEFINED else 0
            sp += 1
            pos += 8
    return IDX_OK, n, pos
