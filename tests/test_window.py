"""Window/level kernels against the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from pocketpacs.native import reference
from pocketpacs.native.window import window, window_batch, window_slice


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32, np.int32, np.uint8])
@pytest.mark.parametrize("cw", [(40.0, 400.0), (-600.0, 1500.0), (0.5, 1.0), (100.0, 2.0),
                                (1000.0, 0.5), (127.5, 256.0)])
@pytest.mark.parametrize("invert", [False, True])
def test_slice_matches_reference(dtype, cw, invert):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    lo, hi = (max(info.min, -3000), min(info.max, 4000)) if info else (-3000, 4000)
    src = rng.integers(lo, hi, size=(37, 53)).astype(dtype)
    out = np.empty(src.shape, np.uint8)
    window_slice(src, cw[0], cw[1], invert, out)
    np.testing.assert_array_equal(out, reference.window_u8(src, cw[0], cw[1], invert))


def test_batch_equals_slices_and_reference():
    rng = np.random.default_rng(2)
    src = rng.normal(0, 800, size=(6, 64, 48)).astype(np.float32)
    out = np.empty(src.shape, np.uint8)
    window_batch(src, 40.0, 400.0, False, out)
    np.testing.assert_array_equal(out, reference.window_u8(src, 40.0, 400.0))
    for k in range(src.shape[0]):
        np.testing.assert_array_equal(window(src[k], 40.0, 400.0), out[k])
    np.testing.assert_array_equal(window(src, 40.0, 400.0, parallel=False), out)


def test_dicom_linear_function_endpoints():
    # PS3.3 C.11.2.1.2: x <= c - 0.5 - (w-1)/2 -> min; x > c - 0.5 + (w-1)/2 -> max
    c, w = 40.0, 400.0
    x = np.array([[c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2 + 1e-3, c - 0.5, -5000, 5000]],
                 dtype=np.float32)
    y = window(x, c, w)
    assert y.tolist() == [[0, 255, 128, 0, 255]]
    assert window(x, c, w, invert=True).tolist() == [[255, 0, 127, 255, 0]]


def test_window_rejects_4d():
    with pytest.raises(ValueError):
        window(np.zeros((2, 2, 2, 2), np.int16), 0, 1)
