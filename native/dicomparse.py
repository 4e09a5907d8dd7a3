"""DICOM header parsing kernels (numba).

The kernels walk the data elements of DICOM files held in one byte buffer
(the heads of many files concatenated) and record, per file, where the
values of the archive's tags (``pocketpacs.dicom.tags``) are, their numeric
values, XXH64 hashes of the UIDs, a header fingerprint and the location of
the pixel data.  They only do arithmetic on the buffer: reading files,
decoding text and building records is the caller's job
(``pocketpacs.dicom.headers``).

Supported encodings: Part 10 preamble + file meta (explicit VR LE, or
implicit meta detected the way pydicom does), implicit VR little endian,
explicit VR little endian, explicit VR big endian, files without preamble or
meta (encoding guessed from the first element as pydicom does), undefined
length sequences and items (skipped, nested up to ``MAX_DEPTH``), UN with
undefined length (CP-246) and encapsulated pixel data.

Safety: every length is checked against the bytes left in the file's slice
of the buffer before it is used; the walk always advances, so it ends in at
most (bytes / 8) steps; nesting is capped.  Every outcome is one of the
status codes below with a reason code and the byte offset where it arose.

Here: the outcome codes, the walk of one file (:func:`parse_one`), its
parallel and serial batch kernels, and the walk of the items of
encapsulated pixel data (:func:`encapsulated_fragments`).  The encoding
vocabulary they use (VR codes, tags, byte readers, transfer syntaxes) is in
:mod:`pocketpacs.native.dicomvr`; the conversion of numeric values and the
gathering of text values for decoding in :mod:`pocketpacs.native.dicomvalues`.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange
from .dicomvalues import NUM_ABSENT, _store_numbers
from .dicomvr import (
    _ITEM,
    _ITEM_DELIM,
    _PIXEL_FIRST,
    _SEQ_DELIM,
    _UN,
    TS_BIG,
    TS_DEFLATE,
    TS_EXPLICIT,
    TS_IMPLICIT,
    TS_NONE,
    TS_OTHER,
    _classify_ts,
    _find_tag,
    _is_vr_byte,
    _long_vr,
    _peek_implicit,
    _stripped_len,
    _tag,
    _u16,
    _u32,
    _vr_code,
)
from .hashing import xxh64

# ---- status codes -------------------------------------------------------
OK = 0          #: parsed
NEED_MORE = 1   #: the head read is too short; ``need`` says how many bytes
FALLBACK = 2    #: valid-looking but outside the fast path (deflate, VR switch...)
FAILED = 3      #: not DICOM or malformed beyond recovery

# ---- reason codes -------------------------------------------------------
R_NONE = 0
R_EMPTY = 1            #: 0-byte file
R_NOT_DICOM = 2        #: no DICM marker and no plausible first element
R_TRUNCATED = 3        #: the file ends inside the header
R_NESTING = 4          #: sequences nested deeper than MAX_DEPTH
R_MALFORMED = 5        #: structure error (missing item tag, bad delimiter...)
R_DEFLATE = 6          #: deflated transfer syntax (fallback)
R_UNKNOWN_TS = 7       #: transfer syntax the fast path does not know (fallback)
R_VR_SWITCH = 8        #: dataset encoding differs from the declared one (fallback)
R_META = 9             #: odd file meta (implicit, big endian...) (fallback)
R_PIXEL_TRUNCATED = 10  #: pixel data runs past the end of the file
R_NO_DATASET = 11      #: file meta only, no dataset elements
R_GZIP = 12            #: gzip-compressed file (fallback inflates it)

REASON_NAMES = (
    "", "empty", "not_dicom", "truncated", "nesting_limit", "malformed", "deflate",
    "unknown_transfer_syntax", "vr_switch", "file_meta", "pixel_truncated", "no_dataset", "gzip",
)

#: Maximum sequence nesting depth (64 levels pass, 65 fail).
MAX_DEPTH = 64

#: A top-level value longer than this (an encapsulated document, a large
#: private blob) ends what the header fingerprint covers: the fingerprint
#: hashes the header up to that element's value, so files without pixel data
#: are not read whole only to be hashed.
BIG_VALUE = 1 << 20


@kernel(inline="always")
def _stop(info, status, reason, offset):
    """Record an outcome (status, reason, byte offset) and return the status."""
    info[0] = status
    info[1] = reason
    info[2] = offset
    return status


@kernel(inline="always")
def _need(info, nbytes):
    """Ask the caller for a longer head (``nbytes`` from the file start)."""
    info[0] = NEED_MORE
    info[3] = nbytes
    return NEED_MORE


@kernel
def parse_one(buf, s, n, fsize, tags, dict_vrs, num_start, num_count, uid_cols,
              voff, vlen, vrs, nums, numflag, uid_hash, info):
    """Parse the header of one file held in ``buf[s:s+n]``.

    Parameters
    ----------
    buf : uint8[:]
        Batch buffer.
    s, n : int
        Start and length of this file's head in ``buf``.
    fsize : int
        Size of the whole file (``n < fsize`` means only a head was read).
    tags, dict_vrs : uint32[:], uint16[:]
        The archive's tag set (sorted) and their dictionary VRs.
    num_start, num_count : int32[:]
        Column of each numeric tag in ``nums`` and how many values to keep.
    uid_cols : int32[:]
        For each tag, its column in ``uid_hash`` (-1 when not hashed).
    voff, vlen : int64[:], int64[:]
        Out: value offset (in the file) and length per tag; ``vlen = -1`` absent.
    vrs : uint16[:]
        Out: VR the value was read with.
    nums : float64[:]
        Out: numeric values (pre-filled with NaN).
    numflag : int8[:]
        Out: per tag, a NUM_ flag.
    uid_hash : uint64[:]
        Out: XXH64 of each hashed UID value, padding stripped (0 absent).
    info : int64[:]
        Out: [status, reason, offset, need, ts_class, little, explicit,
        pixel_tag_offset, pixel_value_offset, pixel_length, encapsulated,
        fingerprint (as int64 bits), header_end].

    Returns
    -------
    int
        The status (also in ``info[0]``).
    """
    for k in range(13):
        info[k] = 0
    info[7] = -1
    info[8] = -1
    info[9] = -1
    for k in range(vlen.shape[0]):
        vlen[k] = -1
        voff[k] = -1
        numflag[k] = NUM_ABSENT
    whole = n >= fsize
    end = s + n  # exclusive end of available bytes in buf
    if fsize == 0:
        return _stop(info, FAILED, R_EMPTY, 0)
    pos = s
    has_preamble = False
    if n >= 2 and buf[s] == 0x1F and buf[s + 1] == 0x8B:
        return _stop(info, FALLBACK, R_GZIP, 0)
    if n >= 132 and buf[s + 128] == 68 and buf[s + 129] == 73 and buf[s + 130] == 67 and buf[s + 131] == 77:
        pos = s + 132
        has_preamble = True
    elif n < 132 and not whole:
        return _need(info, 132)

    # ---- file meta (group 0002), explicit VR little endian ------------
    ts_class = TS_NONE
    if pos + 6 <= end and _u16(buf, pos, True) == 2:
        if _peek_implicit(buf, pos, end, True, False):
            return _stop(info, FALLBACK, R_META, pos - s)
        while True:
            if pos + 8 > end:
                if whole:
                    return _stop(info, FAILED, R_TRUNCATED, pos - s)
                return _need(info, pos - s + 4096)
            group = _u16(buf, pos, True)
            if group != 2:
                break
            tag = _tag(buf, pos, True)
            vr = _vr_code(buf[pos + 4], buf[pos + 5])
            if not (_is_vr_byte(buf[pos + 4]) and _is_vr_byte(buf[pos + 5])):
                return _stop(info, FALLBACK, R_META, pos - s)
            if _long_vr(vr):
                if pos + 12 > end:
                    if whole:
                        return _stop(info, FAILED, R_TRUNCATED, pos - s)
                    return _need(info, pos - s + 4096)
                length = _u32(buf, pos + 8, True)
                vpos = pos + 12
            else:
                length = _u16(buf, pos + 6, True)
                vpos = pos + 8
            if length == 0xFFFFFFFF:
                return _stop(info, FALLBACK, R_META, pos - s)
            if vpos - s + length > fsize:
                return _stop(info, FAILED, R_TRUNCATED, pos - s)
            if vpos + length > end:
                return _need(info, vpos - s + length + 4096)
            k = _find_tag(tags, tag)
            if k >= 0:
                voff[k] = vpos - s
                vlen[k] = length
                vrs[k] = vr
                if tag == 0x00020010:
                    ts_class = _classify_ts(buf, vpos, length)
            pos = vpos + length
    elif not has_preamble:
        # no preamble and no meta: must look like a dataset
        if pos + 8 > end:
            return _stop(info, FAILED, R_NOT_DICOM, 0)
        g = _u16(buf, pos, True)
        if not (g == 8 or g == 0x0800 or g == 0x0010 or g == 0x1000 or g == 0x0018 or g == 0x1800
                or g == 0x0020 or g == 0x2000 or g == 0x0028 or g == 0x2800):
            return _stop(info, FAILED, R_NOT_DICOM, 0)

    # ---- dataset encoding ----------------------------------------------
    little = True
    implicit = False
    if ts_class == TS_IMPLICIT:
        implicit = True
    elif ts_class == TS_EXPLICIT:
        implicit = False
    elif ts_class == TS_BIG:
        little = False
    elif ts_class == TS_DEFLATE:
        info[0] = FALLBACK
        info[1] = R_DEFLATE
        info[4] = ts_class
        return FALLBACK
    elif ts_class == TS_OTHER:
        info[0] = FALLBACK
        info[1] = R_UNKNOWN_TS
        info[4] = ts_class
        return FALLBACK
    else:
        # no transfer syntax: pydicom's guess from the first element
        if pos + 6 <= end:
            if _is_vr_byte(buf[pos + 4]) and _is_vr_byte(buf[pos + 5]):
                implicit = False
                if _u16(buf, pos, True) >= 1024:
                    little = False
            else:
                implicit = True
    info[4] = ts_class
    if pos + 6 <= end and ts_class != TS_NONE:
        if _peek_implicit(buf, pos, end, little, implicit) != implicit:
            return _stop(info, FALLBACK, R_VR_SWITCH, pos - s)
    info[5] = 1 if little else 0
    info[6] = 0 if implicit else 1

    # ---- element walk ----------------------------------------------------
    # Context stack: kind 0 = dataset, 1 = item (undefined length),
    # 2 = sequence/encapsulated (undefined length), 3 = sequence (defined end)
    # stack_end holds the end of a defined-length container.
    stack = np.empty((3, 2 * MAX_DEPTH + 4), dtype=np.int64)
    stack_kind = stack[0]
    stack_impl = stack[1]
    stack_end = stack[2]
    tag_lo = np.int64(tags[0])
    tag_hi = np.int64(tags[tags.shape[0] - 1])
    sp = 0
    stack_kind[0] = 0
    stack_impl[0] = 1 if implicit else 0
    depth = 0  # number of open sequences
    cur_impl = implicit
    n_elements = 0
    header_end = -1
    # the fingerprint covers the header up to the first top-level value longer
    # than BIG_VALUE (its element header included): a whole file's content
    # depends on nothing but the file, never on how much of it was read
    hash_end = -1
    while True:
        kind = stack_kind[sp]
        # defined-length sequence ends when its end is reached
        if kind == 3 and pos >= stack_end[sp]:
            if pos > stack_end[sp]:
                return _stop(info, FALLBACK, R_MALFORMED, pos - s)
            sp -= 1
            depth -= 1
            cur_impl = stack_impl[sp] != 0
            continue
        if pos >= s + fsize:
            # end of file
            if sp == 0:
                header_end = pos - s
                if pos > end and (hash_end < 0 or s + hash_end > end):
                    # values skipped past the read: the fingerprint needs them
                    return _need(info, pos - s)
                break
            return _stop(info, FAILED, R_TRUNCATED, pos - s)
        if pos + 8 > end:
            if pos + 8 > s + fsize:
                if sp == 0 and whole and pos + 8 > s + fsize and n_elements > 0:
                    # trailing garbage shorter than an element header
                    return _stop(info, FAILED, R_TRUNCATED, pos - s)
                return _stop(info, FAILED, R_TRUNCATED, pos - s)
            return _need(info, pos - s + 8192)
        tag = _tag(buf, pos, little)
        if kind == 2 or kind == 3:
            # inside a sequence (or encapsulated data): items or the delimiter
            ilen = _u32(buf, pos + 4, little)
            if tag == _SEQ_DELIM and kind == 2:
                pos += 8
                sp -= 1
                depth -= 1
                cur_impl = stack_impl[sp] != 0
                continue
            if tag != _ITEM:
                return _stop(info, FALLBACK, R_MALFORMED, pos - s)
            if ilen == 0xFFFFFFFF:
                if sp + 1 >= stack_kind.shape[0]:
                    return _stop(info, FAILED, R_NESTING, pos - s)
                pos += 8
                sp += 1
                stack_kind[sp] = 1
                # pydicom re-checks the encoding at the start of each item
                if pos + 6 <= end:
                    t2 = _tag(buf, pos, little)
                    if (t2 >> 16) != 0xFFFE:
                        found = _peek_implicit(buf, pos, end, little, cur_impl)
                        if found != cur_impl:
                            cur_impl = found
                stack_impl[sp] = 1 if cur_impl else 0
                continue
            if pos + 8 + ilen > s + fsize:
                return _stop(info, FAILED, R_TRUNCATED, pos - s)
            pos += 8 + ilen
            continue
        # dataset or item: a data element
        if kind == 1 and tag == _ITEM_DELIM:
            pos += 8
            sp -= 1
            cur_impl = stack_impl[sp] != 0
            continue
        if (tag >> 16) == 0xFFFE:
            return _stop(info, FALLBACK, R_MALFORMED, pos - s)
        if sp == 0 and tag >= _PIXEL_FIRST and tag <= 0x7FE00010:
            # pixel data: record where it is and stop (stop_before_pixels)
            header_end = pos - s
            if cur_impl:
                plen = _u32(buf, pos + 4, little)
                vpos = pos + 8
            else:
                if pos + 12 > end:
                    if pos + 12 > s + fsize:
                        return _stop(info, FAILED, R_TRUNCATED, pos - s)
                    return _need(info, pos - s + 16)
                pvr = _vr_code(buf[pos + 4], buf[pos + 5])
                if _long_vr(pvr):
                    plen = _u32(buf, pos + 8, little)
                    vpos = pos + 12
                else:
                    plen = _u16(buf, pos + 6, little)
                    vpos = pos + 8
            info[7] = pos - s
            info[8] = vpos - s
            if tag == 0x7FE00010:
                if plen == 0xFFFFFFFF:
                    info[9] = -1
                    info[10] = 1
                else:
                    info[9] = plen
                    if vpos - s + plen > fsize:
                        info[0] = FAILED
                        info[1] = R_PIXEL_TRUNCATED
                        info[2] = pos - s
                        info[12] = header_end
                        break
            else:
                info[9] = plen
            break
        n_elements += 1
        if cur_impl:
            length = _u32(buf, pos + 4, little)
            vpos = pos + 8
            vr = -1
        else:
            b0 = buf[pos + 4]
            b1 = buf[pos + 5]
            vr = _vr_code(b0, b1)
            if _long_vr(vr):
                if pos + 12 > end:
                    if pos + 12 > s + fsize:
                        return _stop(info, FAILED, R_TRUNCATED, pos - s)
                    return _need(info, pos - s + 8192)
                length = _u32(buf, pos + 8, little)
                vpos = pos + 12
            elif _is_vr_byte(b0) and _is_vr_byte(b1):
                length = _u16(buf, pos + 6, little)
                vpos = pos + 8
            else:
                return _stop(info, FALLBACK, R_VR_SWITCH, pos - s)
        k = -1
        if sp == 0 and tag >= tag_lo and tag <= tag_hi and (tag & 0x10000) == 0:
            k = _find_tag(tags, tag)
        if length == 0xFFFFFFFF:
            # undefined length: a sequence, UN (CP-246) or encapsulated data
            if depth + 1 > MAX_DEPTH or sp + 1 >= stack_kind.shape[0]:
                return _stop(info, FAILED, R_NESTING, pos - s)
            pos = vpos
            sp += 1
            depth += 1
            stack_kind[sp] = 2
            if vr == _UN:
                cur_impl = True  # CP-246: UN of undefined length is implicit VR LE
            stack_impl[sp] = 1 if cur_impl else 0
            continue
        if vpos - s + length > fsize:
            return _stop(info, FAILED, R_TRUNCATED, pos - s)
        if sp == 0 and hash_end < 0 and length > BIG_VALUE:
            hash_end = vpos - s
        if k >= 0:
            if vpos + length > end:
                return _need(info, vpos - s + length + 8192)
            voff[k] = vpos - s
            vlen[k] = length
            rvr = vr
            if cur_impl or vr == _UN:
                rvr = np.int32(dict_vrs[k])
            vrs[k] = rvr
            c = num_start[k]
            if c >= 0:
                numflag[k] = _store_numbers(buf, vpos, length, rvr, little, nums, c, num_count[k])
            c = uid_cols[k]
            if c >= 0:
                uid_hash[c] = xxh64(buf, vpos, _stripped_len(buf, vpos, length), np.uint64(0))
        pos = vpos + length

    if header_end < 0:
        header_end = pos - s
    if n_elements == 0:
        info[0] = FAILED
        info[1] = R_NO_DATASET if has_preamble or ts_class != TS_NONE else R_NOT_DICOM
        return FAILED
    info[12] = header_end
    hashed = header_end if hash_end < 0 or hash_end > header_end else hash_end
    info[11] = np.int64(xxh64(buf, s, hashed, np.uint64(0)))
    if info[0] == FAILED:
        return FAILED
    info[0] = OK
    return OK


@kernel(parallel=True)
def parse_batch(buf, starts, lengths, fsizes, todo, tags, dict_vrs, num_start, num_count,
                uid_cols, voff, vlen, vrs, nums, numflag, uid_hash, info):
    """Parse every file ``i`` with ``todo[i]`` set, in parallel.

    Arrays are per file (first axis): see :func:`parse_one`.
    """
    for j in prange(todo.shape[0]):
        i = todo[j]
        parse_one(buf, starts[i], lengths[i], fsizes[i], tags, dict_vrs, num_start, num_count,
                  uid_cols, voff[i], vlen[i], vrs[i], nums[i], numflag[i], uid_hash[i], info[i])


@kernel
def parse_serial(buf, starts, lengths, fsizes, todo, tags, dict_vrs, num_start, num_count,
                 uid_cols, voff, vlen, vrs, nums, numflag, uid_hash, info):
    """Single-threaded :func:`parse_batch` (for small batches)."""
    for j in range(todo.shape[0]):
        i = todo[j]
        parse_one(buf, starts[i], lengths[i], fsizes[i], tags, dict_vrs, num_start, num_count,
                  uid_cols, voff[i], vlen[i], vrs[i], nums[i], numflag[i], uid_hash[i], info[i])


@kernel
def encapsulated_fragments(buf, s, n, value_offset, out_off, out_len):
    """List the fragments of encapsulated pixel data held in ``buf[s:s+n]``.

    ``value_offset`` is the file offset of the first item (the Basic Offset
    Table).  Writes up to ``out_off.shape[0]`` fragment (offset, length)
    pairs (offset relative to the file), the offset table excluded, and
    returns their count, or ``-1`` when the items are malformed or run past
    the bytes given, ``-2`` when there are more fragments than room.
    """
    pos = s + value_offset
    end = s + n
    count = 0
    first = True
    while True:
        if pos + 8 > end:
            return -1
        tag = _tag(buf, pos, True)
        ilen = _u32(buf, pos + 4, True)
        if tag == _SEQ_DELIM:
            return count
        if tag != _ITEM or ilen == 0xFFFFFFFF:
            return -1
        if pos + 8 + ilen > end:
            return -1
        if first:
            first = False
        else:
            if count >= out_off.shape[0]:
                return -2
            out_off[count] = pos + 8 - s
            out_len[count] = ilen
            count += 1
        pos += 8 + ilen
