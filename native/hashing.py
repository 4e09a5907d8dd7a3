"""XXH64 hashing kernel.

Used for fixed-width archive keys derived from UIDs and for per-file header
fingerprints.  The algorithm is XXH64 (Yann Collet's xxHash, 64-bit
variant); ``reference.xxh64`` is a plain-Python implementation and the tests
check both against the ``xxhash`` package on test vectors.

All arithmetic is on ``uint64`` with wrap-around, as the algorithm requires.
"""
from __future__ import annotations

import numpy as np

from ._jit import kernel

import sys

_LITTLE_HOST = sys.byteorder == "little"

P1 = np.uint64(11400714785074694791)
P2 = np.uint64(14029467366897019727)
P3 = np.uint64(1609587929392839161)
P4 = np.uint64(9650029242287828579)
P5 = np.uint64(2870177450012600261)


@kernel(inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@kernel(inline="always")
def _read64(buf, i):
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@kernel(inline="always")
def _read32(buf, i):
    v = np.uint64(0)
    for k in range(4):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@kernel(inline="always")
def _round(acc, lane):
    acc = acc + lane * P2
    acc = _rotl(acc, 31)
    return acc * P1


@kernel(inline="always")
def _merge(acc, val):
    val = _round(np.uint64(0), val)
    acc ^= val
    return acc * P1 + P4


@kernel
def xxh64(buf, start, length, seed):
    """XXH64 of ``buf[start:start+length]``.

    Parameters
    ----------
    buf : uint8[:]
        Byte buffer.
    start, length : int
        The slice to hash; the caller guarantees it lies inside ``buf``
        (the function clips it to the buffer anyway).
    seed : uint64
        Hash seed.

    Returns
    -------
    uint64
    """
    n = buf.shape[0]
    if start < 0:
        start = 0
    if start > n:
        start = n
    if length < 0:
        length = 0
    if length > n - start:
        length = n - start
    seed = np.uint64(seed)
    p = start
    end = start + length
    if length >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        limit = end - 32
        nblk = (length // 32) * 32
        if _LITTLE_HOST and (start & 7) == 0 and (buf.ctypes.data & 7) == 0:
            # aligned: read whole 64-bit lanes (the host is little endian)
            w = buf[start:start + nblk].view(np.uint64)
            for j in range(0, nblk // 8, 4):
                v1 = _round(v1, w[j])
                v2 = _round(v2, w[j + 1])
                v3 = _round(v3, w[j + 2])
                v4 = _round(v4, w[j + 3])
            p += nblk
        while p <= limit:
            v1 = _round(v1, _read64(buf, p))
            v2 = _round(v2, _read64(buf, p + 8))
            v3 = _round(v3, _read64(buf, p + 16))
            v4 = _round(v4, _read64(buf, p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + P5
    h += np.uint64(length)
    while p + 8 <= end:
        k1 = _round(np.uint64(0), _read64(buf, p))
        h ^= k1
        h = _rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h ^= _read32(buf, p) * P1
        h = _rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h ^= np.uint64(buf[p]) * P5
        h = _rotl(h, 11) * P1
        p += 1
    h ^= h >> np.uint64(33)
    h *= P2
    h ^= h >> np.uint64(29)
    h *= P3
    h ^= h >> np.uint64(32)
    return h


def hash_bytes(data: bytes, seed: int = 0) -> int:
    """XXH64 of a bytes object (convenience wrapper, returns a Python int)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return int(xxh64(arr, 0, arr.shape[0], np.uint64(seed)))
