"""The XXH64 kernel against the plain-Python reference and the xxhash package."""
from __future__ import annotations

import random

import numpy as np
import pytest

from conftest import peer
from pocketpacs.native import reference
from pocketpacs.native.hashing import hash_bytes, xxh64


@pytest.fixture(scope="module")
def xxhash():
    """The xxhash package: the independent implementation the kernel is checked against."""
    return peer("xxhash")

# Published XXH64 test vectors (seed 0) from the xxHash sanity checks.
KNOWN = {b"": 0xEF46DB3751D8E999, b"a": 0xD24EC4F1A98C6E5B, b"abc": 0x44BC2CF5AD770999}


@pytest.mark.parametrize("data,expected", sorted(KNOWN.items()))
def test_known_vectors(data, expected):
    assert hash_bytes(data) == expected
    assert reference.xxh64(data) == expected


def test_random_lengths_offsets_and_seeds(xxhash):
    rng = random.Random(5)
    for _ in range(400):
        n = rng.choice([rng.randrange(0, 40), rng.randrange(0, 300), rng.randrange(0, 5000)])
        off = rng.randrange(0, 9)
        seed = rng.choice([0, 1, 2**63 + 7, rng.randrange(2**64)])
        data = bytes(rng.randrange(256) for _ in range(n + off))
        arr = np.frombuffer(data, dtype=np.uint8)
        want = xxhash.xxh64_intdigest(data[off:], seed)
        assert int(xxh64(arr, off, n, np.uint64(seed))) == want
        assert reference.xxh64(data[off:], seed) == want


def test_many_matches_single(xxhash):
    rng = np.random.default_rng(1)
    buf = rng.integers(0, 256, 10000, dtype=np.uint8)
    starts = rng.integers(0, 5000, 300).astype(np.int64)
    lengths = rng.integers(0, 5000, 300).astype(np.int64)
    for s, n in zip(starts, lengths):
        assert int(xxh64(buf, s, n, np.uint64(0))) == xxhash.xxh64_intdigest(buf[s:s + n].tobytes())


def test_out_of_range_slices_are_clipped(xxhash):
    buf = np.arange(16, dtype=np.uint8)
    assert int(xxh64(buf, 10, 100, np.uint64(0))) == xxhash.xxh64_intdigest(buf[10:].tobytes())
    assert int(xxh64(buf, -5, 4, np.uint64(0))) == xxhash.xxh64_intdigest(buf[:4].tobytes())
    assert int(xxh64(buf, 99, 4, np.uint64(0))) == xxhash.xxh64_intdigest(b"")
