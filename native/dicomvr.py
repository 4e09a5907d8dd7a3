"""DICOM encoding vocabulary of the header kernels (numba).

What the element walker (:mod:`pocketpacs.native.dicomparse`) needs to read
an encoding: the VR codes (two ASCII letters as one int) and which VRs have
a 4-byte length, pydicom's test for VR bytes, little/big endian readers of
16- and 32-bit values and tags, the item and delimiter tags, the
transfer-syntax UIDs as byte strings and their classification (implicit,
explicit, big endian, deflate, other), pydicom's implicit/explicit check of
a first element, the lookup of a tag in the archive's sorted tag set and
the length of a UID value without its padding.  Arithmetic over byte
buffers only; the small helpers are inlined into the kernels that call them.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

# transfer syntax classes (``ts_class`` output)
TS_NONE = 0        #: no TransferSyntaxUID (encoding guessed)
TS_IMPLICIT = 1
TS_EXPLICIT = 2    #: explicit VR LE, native or encapsulated
TS_BIG = 3
TS_DEFLATE = 4
TS_OTHER = 5

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


@kernel(inline="always")
def _stripped_len(buf, p, n):
    while n > 0 and (buf[p + n - 1] == 0 or buf[p + n - 1] == 32):
        n -= 1
    return n


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


@kernel(inline="always")  # tiny, and called with constant flags: one copy per caller, no specialisations
def _peek_implicit(buf, p, end, little, assumed):
    """pydicom's check: the first element's VR bytes decide implicit/explicit."""
    if p + 6 > end:
        return assumed
    b0 = buf[p + 4]
    b1 = buf[p + 5]
    return not (_is_vr_byte(b0) and _is_vr_byte(b1))
