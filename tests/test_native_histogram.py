"""The value-range and value-count kernels against their NumPy references."""
from __future__ import annotations

import numpy as np
import pytest

from pocketpacs.native import histogram as H
from pocketpacs.native import reference as R

# the dtypes a volume is assembled in (each is a compiled specialisation: CI pays for each)
DTYPES = [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64]


def sample(dtype, n, rng):
    if n == 0:
        return np.zeros(0, dtype)
    if np.dtype(dtype).kind == "f":
        a = rng.normal(40.0, 300.0, n).astype(dtype)
        a[rng.integers(0, n, n // 50)] = np.nan
        a[rng.integers(0, n, 5)] = np.inf
        a[rng.integers(0, n, 5)] = -np.inf
        a[: n // 4] = -1024.0                      # a background of one value
        return a
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -3000), min(info.max, 3000)
    a = rng.integers(lo, hi + 1, n, dtype=np.int64).astype(dtype)
    a[: n // 4] = lo
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 70_001, 400_003])
def test_value_range_matches_the_reference(dtype, n):
    rng = np.random.default_rng(n + np.dtype(dtype).num)
    a = sample(dtype, n, rng)
    for drop in [(), (float(a.reshape(-1)[0]),) if n else (), (-1024.0, 17.0)]:
        assert H.value_range(a, drop) == R.value_range(a, drop), (dtype, n, drop)


def test_value_range_of_nothing_finite_and_of_booleans():
    assert H.value_range(np.full(100, np.nan)) == (np.inf, -np.inf, 0)
    assert H.value_range(np.array([np.inf, -np.inf], np.float32)) == (np.inf, -np.inf, 0)
    b = np.zeros((3, 50, 50), bool)
    b[1, 10:20, 10:20] = True
    assert H.value_range(b) == (0.0, 1.0, 7500)
    assert H.value_range(b, (0.0,)) == (1.0, 1.0, 100)


@pytest.mark.parametrize("dtype", [d for d in DTYPES if np.dtype(d).kind in "iu"])
@pytest.mark.parametrize("n", [1, 1000, 400_003])
def test_int_counts_match_the_reference(dtype, n):
    rng = np.random.default_rng(7 * n + np.dtype(dtype).num)
    a = sample(dtype, n, rng).reshape(-1, 1) if n > 1 else sample(dtype, n, rng)
    lo, hi, _ = R.value_range(a)
    for first, nbins in [(int(lo), int(hi - lo) + 1), (int(lo) + 5, 100), (0, 1)]:
        got = H.int_counts(a, first, nbins)
        assert got.dtype == np.int64 and got.shape == (nbins,)
        assert np.array_equal(got, R.int_counts(a, first, nbins)), (dtype, n, first, nbins)
    with pytest.raises(TypeError):
        H.int_counts(a.astype(np.float32), 0, 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("n", [1000, 100_000, 400_003])
def test_float_counts_match_numpy_histogram_exactly(dtype, n):
    rng = np.random.default_rng(3 * n + np.dtype(dtype).num)
    a = sample(dtype, n, rng)
    lo, hi, _ = R.value_range(a, (-1024.0,))
    for edges in [np.linspace(lo, hi, 4097), np.linspace(lo + 0.3 * (hi - lo), lo + 0.31 * (hi - lo), 4097),
                  np.linspace(-1.0, 1.0, 2)]:
        for drop in [(), (-1024.0,)]:
            got = H.float_counts(a, edges, drop)
            assert np.array_equal(got, R.float_counts(a, edges, drop)), (dtype, n, drop)


def test_float_counts_edge_values_land_where_numpy_puts_them():
    # values exactly on (and a rounding step beside) every edge
    edges = np.linspace(-0.1, 0.7, 9)
    a = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    assert np.array_equal(H.float_counts(a, edges), np.histogram(a, bins=edges)[0])
    with pytest.raises(ValueError):
        H.float_counts(a, np.array([1.0, 1.0]))
