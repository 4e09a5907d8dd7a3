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
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel, prange
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

# ---- numeric flags -------------------------------------------------------
NUM_ABSENT = 0
NUM_OK = 1
NUM_PYTHON = 2  #: value present but outside the exact fast path: convert in Python

# transfer syntax classes (``ts_class`` output)
TS_NONE = 0        #: no TransferSyntaxUID (encoding guessed)
TS_IMPLICIT = 1
TS_EXPLICIT = 2    #: explicit VR LE, native or encapsulated
TS_BIG = 3
TS_DEFLATE = 4
TS_OTHER = 5

_POW10 = np.array([1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                   1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22])

_PIXEL_FIRST = 0x7FE00008  # FloatPixelData; pydicom stops before any of 7FE0,0008/0009/0010
_ITEM = 0xFFFEE000
_ITEM_DELIM = 0xFFFEE00D
_SEQ_DELIM = 0xFFFEE0DD


@kernel(inline="always")
def _vr_code(a, b):
    return (np.int32(a) << 8) | np.int32(b)


# VR codes as ints ('O'<<8|'B' ...)
_OB = (79 << 8) | 66
_OD = (79 << 8) | 68
_OF = (79 << 8) | 70
_OL = (79 << 8) | 76
_OV = (79 << 8) | 86
_OW = (79 << 8) | 87
_SQ = (83 << 8) | 81
_SV = (83 << 8) | 86
_UC = (85 << 8) | 67
_UN = (85 << 8) | 78
_UR = (85 << 8) | 82
_UT = (85 << 8) | 84
_UV = (85 << 8) | 86
_US = (85 << 8) | 83
_SS = (83 << 8) | 83
_UL = (85 << 8) | 76
_SL = (83 << 8) | 76
_IS = (73 << 8) | 83
_DS = (68 << 8) | 83
_FL = (70 << 8) | 76
_FD = (70 << 8) | 68


@kernel(inline="always")
def _long_vr(vr):
    return (vr == _OB or vr == _OD or vr == _OF or vr == _OL or vr == _OV or vr == _OW
            or vr == _SQ or vr == _SV or vr == _UC or vr == _UN or vr == _UR or vr == _UT
            or vr == _UV)


@kernel(inline="always")
def _is_vr_byte(c):
    # pydicom: 0x40 < c < 0x5B
    return c > 0x40 and c < 0x5B


@kernel(inline="always")
def _u16(buf, p, little):
    if little:
        return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)
    return np.int64(buf[p + 1]) | (np.int64(buf[p]) << 8)


@kernel(inline="always")
def _u32(buf, p, little):
    if little:
        return (np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8) | (np.int64(buf[p + 2]) << 16)
                | (np.int64(buf[p + 3]) << 24))
    return (np.int64(buf[p + 3]) | (np.int64(buf[p + 2]) << 8) | (np.int64(buf[p + 1]) << 16)
            | (np.int64(buf[p]) << 24))


@kernel(inline="always")
def _tag(buf, p, little):
    return (_u16(buf, p, little) << 16) | _u16(buf, p + 2, little)


@kernel
def _find_tag(tags, tag):
    lo = 0
    hi = tags.shape[0] - 1
    while lo <= hi:
        mid = (lo + hi) >> 1
        t = np.int64(tags[mid])
        if t == tag:
            return mid
        if t < tag:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1


@kernel
def _uid_equals(buf, p, n, ref):
    """True when the UID value at buf[p:p+n] (padding stripped) equals ref."""
    while n > 0 and (buf[p + n - 1] == 0 or buf[p + n - 1] == 32):
        n -= 1
    if n != ref.shape[0]:
        return False
    for k in range(n):
        if buf[p + k] != ref[k]:
            return False
    return True


_TS_IMPLICIT = np.frombuffer(b"1.2.840.10008.1.2", dtype=np.uint8).copy()
_TS_EXPLICIT = np.frombuffer(b"1.2.840.10008.1.2.1", dtype=np.uint8).copy()
_TS_BIG = np.frombuffer(b"1.2.840.10008.1.2.2", dtype=np.uint8).copy()
_TS_DEFLATE = np.frombuffer(b"1.2.840.10008.1.2.1.99", dtype=np.uint8).copy()
_TS_ENCAP_PREFIX = np.frombuffer(b"1.2.840.10008.1.2.4.", dtype=np.uint8).copy()
_TS_RLE = np.frombuffer(b"1.2.840.10008.1.2.5", dtype=np.uint8).copy()


@kernel
def _classify_ts(buf, p, n):
    if _uid_equals(buf, p, n, _TS_IMPLICIT):
        return TS_IMPLICIT
    if _uid_equals(buf, p, n, _TS_EXPLICIT):
        return TS_EXPLICIT
    if _uid_equals(buf, p, n, _TS_BIG):
        return TS_BIG
    if _uid_equals(buf, p, n, _TS_DEFLATE):
        return TS_DEFLATE
    if _uid_equals(buf, p, n, _TS_RLE):
        return TS_EXPLICIT
    m = _TS_ENCAP_PREFIX.shape[0]
    while n > 0 and (buf[p + n - 1] == 0 or buf[p + n - 1] == 32):
        n -= 1
    if n > m:
        same = True
        for k in range(m):
            if buf[p + k] != _TS_ENCAP_PREFIX[k]:
                same = False
                break
        if same:
            # 1.2.840.10008.1.2.4.NN: every JPEG family syntax is explicit VR LE
            ok = True
            for k in range(m, n):
                c = buf[p + k]
                if not (48 <= c <= 57 or c == 46):
                    ok = False
            if ok:
                return TS_EXPLICIT
    return TS_OTHER


@kernel
def _parse_decimal(buf, p, end):
    """Parse one decimal number in buf[p:end] (spaces allowed around it).

    Returns (value, flag) with flag NUM_OK for an exactly converted value,
    NUM_PYTHON when the text is not a plain decimal or is outside the exact
    fast path (the caller converts it with Python), NUM_ABSENT when empty.
    """
    while p < end and (buf[p] == 32 or buf[p] == 0):
        p += 1
    while end > p and (buf[end - 1] == 32 or buf[end - 1] == 0):
        end -= 1
    if p >= end:
        return np.nan, NUM_ABSENT
    neg = False
    if buf[p] == 45:
        neg = True
        p += 1
    elif buf[p] == 43:
        p += 1
    mant = np.int64(0)
    ndig = 0
    sig = 0
    exp = 0
    seen_digit = False
    seen_dot = False
    while p < end:
        c = buf[p]
        if 48 <= c <= 57:
            seen_digit = True
            if mant == 0 and c == 48:
                if seen_dot:
                    exp -= 1
            else:
                if sig < 18:
                    mant = mant * 10 + (np.int64(c) - 48)
                    sig += 1
                    if seen_dot:
                        exp -= 1
                else:
                    # too many significant digits for the fast path
                    return np.nan, NUM_PYTHON
            ndig += 1
        elif c == 46 and not seen_dot:
            seen_dot = True
        else:
            break
        p += 1
    if not seen_digit:
        return np.nan, NUM_PYTHON
    if p < end:
        c = buf[p]
        if c == 101 or c == 69:
            p += 1
            eneg = False
            if p < end and (buf[p] == 45 or buf[p] == 43):
                eneg = buf[p] == 45
                p += 1
            # int64 from the start: interpreted (NUMBA_DISABLE_JIT), a plain 0
            # plus a uint8 byte stays uint8 under NumPy 2 and wraps at 256
            ev = np.int64(0)
            nd = 0
            while p < end and 48 <= buf[p] <= 57:
                if ev < 10000:
                    ev = ev * 10 + (np.int64(buf[p]) - 48)
                nd += 1
                p += 1
            if nd == 0:
                return np.nan, NUM_PYTHON
            exp += -ev if eneg else ev
        if p < end:
            return np.nan, NUM_PYTHON
    if mant == 0:
        v = 0.0
    elif mant >= 9007199254740992 or exp > 22 or exp < -22:
        return np.nan, NUM_PYTHON
    elif exp >= 0:
        v = np.float64(mant) * _POW10[exp]
    else:
        v = np.float64(mant) / _POW10[-exp]
    if neg:
        v = -v
    return v, NUM_OK


@kernel
def _store_numbers(buf, p, n, vr, little, nums, col, count):
    """Convert a numeric value into nums[col:col+count]; returns a NUM_ flag."""
    if n == 0:
        return NUM_ABSENT
    if vr == _IS or vr == _DS:
        end = p + n
        k = 0
        flag = NUM_OK
        start = p
        q = p
        while q <= end and k < count:
            if q == end or buf[q] == 92:  # backslash
                v, f = _parse_decimal(buf, start, q)
                if f == NUM_PYTHON:
                    return NUM_PYTHON
                if f == NUM_ABSENT:
                    # empty component: pydicom keeps '' -> let Python decide
                    return NUM_PYTHON
                nums[col + k] = v
                k += 1
                start = q + 1
            q += 1
        return flag
    size = 0
    if vr == _US or vr == _SS:
        size = 2
    elif vr == _UL or vr == _SL or vr == _FL:
        size = 4
    elif vr == _FD:
        size = 8
    else:
        return NUM_PYTHON
    if n % size != 0:
        return NUM_PYTHON
    k = 0
    q = p
    while q + size <= p + n and k < count:
        if size == 2:
            v = _u16(buf, q, little)
            if vr == _SS and v >= 32768:
                v -= 65536
            nums[col + k] = np.float64(v)
        elif vr == _UL or vr == _SL:
            v = _u32(buf, q, little)
            if vr == _SL and v >= 2147483648:
                v -= 4294967296
            nums[col + k] = np.float64(v)
        else:
            return NUM_PYTHON  # FL/FD on a US/IS/DS tag: rare, convert in Python
        k += 1
        q += size
    return NUM_OK


@kernel
def _peek_implicit(buf, p, end, little, assumed):
    """pydicom's check: the first element's VR bytes decide implicit/explicit."""
    if p + 6 > end:
        return assumed
    b0 = buf[p + 4]
    b1 = buf[p + 5]
    return not (_is_vr_byte(b0) and _is_vr_byte(b1))


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
    info[11] = np.int64(xxh64(buf, s, header_end, np.uint64(0)))
    if info[0] == FAILED:
        return FAILED
    info[0] = OK
    return OK


@kernel(inline="always")
def _stripped_len(buf, p, n):
    while n > 0 and (buf[p + n - 1] == 0 or buf[p + n - 1] == 32):
        n -= 1
    return n


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


@kernel
def gather_values(buf, starts, voff, vlen, rows, strip_leading, out, flags):
    """Copy one tag's value of each file in ``rows`` into a fixed-width matrix.

    Trailing spaces and NULs are dropped (leading spaces too when
    ``strip_leading``).  ``out`` is (len(rows), width) uint8, zero-filled;
    values longer than ``width`` are cut and flagged.  ``flags[j]`` bits:
    1 = non-ASCII byte, 2 = backslash (multi-valued), 4 = ESC (ISO 2022),
    8 = cut.

    Parameters
    ----------
    buf : uint8[:]
    starts, voff, vlen : int64[:]
        Per file: start of its bytes in ``buf``, value offset and length.
    rows : int64[:]
        Files to gather.
    """
    width = out.shape[1]
    for j in range(rows.shape[0]):
        i = rows[j]
        a = starts[i] + voff[i]
        n = vlen[i]
        if a < 0 or n < 0 or a + n > buf.shape[0]:
            continue
        while n > 0 and (buf[a + n - 1] == 32 or buf[a + n - 1] == 0):
            n -= 1
        if strip_leading:
            while n > 0 and buf[a] == 32:
                a += 1
                n -= 1
        f = 0
        if n > width:
            n = width
            f |= 8
        for k in range(n):
            c = buf[a + k]
            out[j, k] = c
            if c >= 128:
                f |= 1
            elif c == 92:
                f |= 2
            elif c == 27:
                f |= 4
        flags[j] = f
