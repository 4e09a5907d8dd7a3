"""Default windows (issue 12, "Windows"): header windows voted over the
series, an auto window from the whole volume without its background, never
narrower than the data's resolution."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread

from pocketpacs.images.volume import assemble_series
from pocketpacs.images.windows import histogram_window, voted_header_windows
from test_volume import write_series


def test_the_most_common_header_window_comes_first():
    centers = np.array([153.0] * 110 + [3010.0] * 20)
    widths = np.array([307.0] * 110 + [6020.0] * 20)
    order = np.r_[np.arange(0, 55), np.arange(110, 130), np.arange(55, 110)]  # the odd ones in the middle
    got = voted_header_windows(centers[order], widths[order])
    assert got == [(153.0, 307.0), (3010.0, 6020.0)]


def test_frames_without_a_window_and_bad_widths_are_not_votes():
    got = voted_header_windows(np.array([np.nan, 40.0, 40.0, 10.0]), np.array([80.0, 0.0, 400.0, -5.0]))
    assert got == [(40.0, 400.0)]
    assert voted_header_windows(np.array([np.nan]), np.array([np.nan])) == []


def test_series_opens_with_the_window_most_slices_carry(tmp_path):
    """A series whose middle slices say 3010/6020 and the rest 153/307."""
    positions = [(0.0, 0.0, float(z)) for z in range(13)]
    paths = write_series(tmp_path / "s", positions, (1, 0, 0, 0, 1, 0), slope=1.0, intercept=0.0)
    for i, p in enumerate(paths):
        ds = dcmread(p)
        ds.WindowCenter, ds.WindowWidth = (3010, 6020) if 5 <= i <= 7 else (153, 307)
        ds.save_as(p)
    vol = assemble_series(paths).volumes[0]
    first = vol.window_presets[0]
    assert (first.source, first.center, first.width) == ("header", 153.0, 307.0)
    assert any(w.center == 3010.0 for w in vol.window_presets if w.source == "header")


def test_a_sparse_scan_does_not_collapse_to_its_background():
    """Whole-body NM: a few hot voxels in zeros (the old window was W 1 at 0)."""
    rng = np.random.default_rng(3)
    arr = np.zeros((200, 128, 128), np.uint16)
    hot = rng.choice(arr.size, 300, replace=False)
    arr.reshape(-1)[hot] = rng.integers(100, 1000, hot.size)
    w = histogram_window(arr)
    lo, hi = w.center - w.width / 2, w.center + w.width / 2
    assert w.width > 300 and lo < 200 and hi > 800, w


def test_air_is_left_out_of_the_auto_window():
    """CT with most of the field air (-1000): the window is the body's values."""
    rng = np.random.default_rng(4)
    arr = np.full((40, 64, 64), -1000, np.int16)
    arr[:, 16:48, 16:48] = rng.normal(40, 30, (40, 32, 32)).astype(np.int16)
    w = histogram_window(arr)
    assert -100 < w.center < 180 and w.width < 400, w


@pytest.mark.parametrize("scale", [1e-3, 1e-6])
def test_float_data_gets_a_window_as_fine_as_its_values(scale):
    """Never a width of 1 for values spanning 0.01 (the old floor)."""
    arr = (np.random.default_rng(5).random((8, 32, 32)) * 10 * scale).astype(np.float32)
    w = histogram_window(arr)
    assert w.width < 20 * scale and w.width > 0, w


def test_constant_integer_data_gets_its_resolution_as_width():
    w = histogram_window(np.full((4, 8, 8), 7, np.int16))
    assert (w.center, w.width) == (7.0, 1.0)
