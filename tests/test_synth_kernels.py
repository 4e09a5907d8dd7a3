"""The synthetic generator's kernels (native/phantom.py, native/jpeg_lossless.py) against
the NumPy / plain-Python references of native/reference.py, on random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from pocketpacs.native import reference
from pocketpacs.native.jpeg_lossless import jpeg_lossless_histogram, jpeg_lossless_scan
from pocketpacs.native.phantom import MARKER, phantom_points, phantom_slice
from pocketpacs.synth.encoders import _huffman_table

# ---------------------------------------------------------------- phantom


def _phantom_both(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    got = np.empty(len(pts), np.int16)
    phantom_points(np.ascontiguousarray(pts, dtype=np.float64), got)
    want = np.empty(len(pts), np.int16)
    reference.phantom_points(pts, want)
    return got, want


def test_phantom_points_random():
    rng = np.random.default_rng(11)
    # a box a little larger than the body (semi-axes 161.3, 113.7, 283.1 mm)
    pts = rng.uniform([-180, -130, -300], [180, 130, 300], size=(200_000, 3))
    got, want = _phantom_both(pts)
    np.testing.assert_array_equal(got, want)
    # every tissue of the phantom is among the random points
    assert {-1000, 40, 62, -800, -820, 80, 900, 1200} <= set(got.tolist())
    assert ((got >= 700) & (got <= 1000)).sum() > 100  # ribs


def test_phantom_points_on_grid_and_edges():
    # points on a 0.1 mm grid land on the shapes' boundaries and band edges
    rng = np.random.default_rng(12)
    pts = np.round(rng.uniform(-300, 300, size=(50_000, 3)), 1)
    pts = np.concatenate([pts, np.array([MARKER[:3]]) + np.array([[MARKER[3], 0, 0],
                                                                  [-MARKER[3], 0, 0], [0, 0, 0]])])
    got, want = _phantom_both(pts)
    np.testing.assert_array_equal(got, want)
    assert got[-1] == 1200


@pytest.mark.parametrize("dtype,intercept,mul", [(np.uint16, -1024, 1), (np.int16, 0, 1),
                                                 (np.uint16, -1000, 2), (np.int16, 0, 3)])
def test_phantom_slice_random(dtype, intercept, mul):
    rng = np.random.default_rng(13 + mul)
    for _ in range(6):
        rows, cols = (int(v) for v in rng.integers(1, 70, 2))
        # a random orthonormal row/column pair and a random origin and spacing
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        row, col = q[:, 0].copy(), q[:, 1].copy()
        ipp = rng.uniform(-200, 0, 3)
        dr, dc = (float(v) for v in rng.uniform(0.3, 6.0, 2))
        got = np.empty((rows, cols), dtype)
        want = np.empty((rows, cols), dtype)
        got_range = phantom_slice(ipp, row, col, dr, dc, intercept, mul, got)
        want_range = reference.phantom_slice(ipp, row, col, dr, dc, intercept, mul, want)
        np.testing.assert_array_equal(got, want)
        assert tuple(int(v) for v in got_range) == want_range


# ---------------------------------------------------------------- JPEG lossless


def _images():
    rng = np.random.default_rng(21)
    for precision in (2, 8, 12, 16):
        for shape in ((1, 1), (1, 37), (29, 1), (17, 23), (64, 48)):
            yield rng.integers(0, 1 << precision, shape), precision
    smooth = np.cumsum(rng.integers(-3, 4, (40, 40)), axis=1) + 2000
    yield smooth, 12
    extreme = np.zeros((9, 11), np.int64)
    extreme[:, 1::2] = 32768  # differences of +-32768: category 16, no extra bits
    extreme[1::2, ::3] = 65535
    yield extreme, 16
    stuffing = np.zeros((8, 8), np.int64)
    stuffing[::2, ::2] = 255  # many 0xFF bytes in the scan
    yield stuffing, 8


def test_jpeg_lossless_histogram_random():
    for image, precision in _images():
        x = np.ascontiguousarray(image, dtype=np.int32)
        got = np.full(17, 5, np.int64)  # both add to what is there
        want = got.copy()
        jpeg_lossless_histogram(x, precision, got)
        reference.jpeg_lossless_histogram(x, precision, want)
        np.testing.assert_array_equal(got, want)
        assert got.sum() == 17 * 5 + x.size


def test_jpeg_lossless_scan_random_and_optimal_tables():
    rng = np.random.default_rng(22)
    n_images = 0
    for image, precision in _images():
        x = np.ascontiguousarray(image, dtype=np.int32)
        hist = np.zeros(17, np.int64)
        jpeg_lossless_histogram(x, precision, hist)
        # random code lengths (any code below 2**size: the kernel does not need a prefix code)
        sizes = rng.integers(1, 17, 17).astype(np.int64)
        codes = np.array([int(rng.integers(0, 1 << int(s))) for s in sizes], np.int64)
        codes[0] = (1 << int(sizes[0])) - 1  # all ones: 0xFF bytes, stuffed
        tables = [(codes, sizes), _huffman_table(hist)[2:]]
        for codes, sizes in tables:
            got = np.zeros(x.size * 8 + 16, np.uint8)
            want = np.zeros_like(got)
            n = jpeg_lossless_scan(x, precision, codes, sizes, got)
            assert n == reference.jpeg_lossless_scan(x, precision, codes, sizes, want)
            np.testing.assert_array_equal(got, want)
        n_images += 1
    assert n_images == 23
