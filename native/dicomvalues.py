"""Value kernels of the header parser (numba).

Conversion of the numeric values the element walker
(:mod:`pocketpacs.native.dicomparse`) finds: decimal strings (IS, DS,
backslash-separated) converted exactly when they fit the fast path (at most
18 significant digits, below 2**53, power of ten within +-22), binary US,
SS, UL and SL values; anything else is flagged for conversion in Python.  And
:func:`gather_values`, which copies one tag's value of many files into a
fixed-width matrix with flags (non-ASCII, multi-valued, ISO 2022, cut) for
text decoding by the caller, and :func:`copy_values`, which copies many
values into one buffer (a held batch's compaction).  Arithmetic over byte
buffers only.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel
from .dicomvr import _DS, _FD, _FL, _IS, _SL, _SS, _UL, _US, _u16, _u32

# ---- numeric flags -------------------------------------------------------
NUM_ABSENT = 0
NUM_OK = 1
NUM_PYTHON = 2  #: value present but outside the exact fast path: convert in Python

_POW10 = np.array([1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                   1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22])


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


@kernel
def copy_values(buf, src, lens, dst, out):
    """Copy ``lens[j]`` bytes at ``buf[src[j]]`` to ``out[dst[j]]`` for each ``j``
    (the values a parsed batch keeps when it drops its files' heads).

    Returns the number of copies skipped because they lie outside ``buf``
    or ``out`` (0 for a batch the parser made: its caller then keeps the
    heads).

    Parameters
    ----------
    buf, out : uint8[:]
    src, lens, dst : int64[:]
    """
    skipped = 0
    for j in range(src.shape[0]):
        a = src[j]
        b = dst[j]
        n = lens[j]
        if a < 0 or b < 0 or n < 0 or a + n > buf.shape[0] or b + n > out.shape[0]:
            skipped += 1
            continue
        for k in range(n):
            out[b + k] = buf[a + k]
    return skipped
