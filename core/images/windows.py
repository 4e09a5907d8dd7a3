"""Window presets: header windows, modality defaults and a histogram window.

:data:`MODALITY_WINDOWS` is the one table of default windows by modality
(the viewer gets them through the volume header's ``windows``);
:func:`window_presets` lists a volume's presets (header windows first, then
the modality defaults for rescaled values, then :func:`histogram_window`,
the 0.5-99.5 percentile window of a histogram of every value of the volume,
its background left out: :func:`robust_range`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: Default windows by modality (only for rescaled CT values, in HU).
MODALITY_WINDOWS: dict[str, list[tuple[str, float, float]]] = {
    "CT": [("soft tissue", 40.0, 400.0), ("abdomen", 60.0, 360.0), ("brain", 40.0, 80.0), ("lung", -600.0, 1500.0),
           ("bone", 400.0, 1800.0)],
}
#: Percentiles of the histogram preset.
HISTOGRAM_PERCENTILES = (0.5, 99.5)


@dataclass
class WindowPreset:
    """A window (centre/width in the volume's value units).

    Attributes
    ----------
    name : str
    center, width : float
    source : str
        ``"header"``, ``"modality"`` or ``"histogram"``.
    """

    name: str
    center: float
    width: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict."""
        return {"name": self.name, "center": self.center, "width": self.width,
                "source": self.source}


#: Bins of each histogram pass over float (or wide-ranged integer) values.
FLOAT_BINS = 1 << 12
#: Integer values are counted one bin per value when their range is at most this.
EXACT_RANGE = 1 << 20
#: Values looked at for the resolution of float data (a strided subsample).
RESOLUTION_SAMPLES = 1 << 16
#: The most common value is "background" (air, padding, zero outside the
#: body) when it is the lowest value and covers at least this share.
BACKGROUND_SHARE = 0.2
#: Header windows kept, most common first.
MAX_HEADER_WINDOWS = 3


def _counter(flat: np.ndarray) -> Any:
    """The counting functions for ``flat`` (:func:`.windowkernels.counter`)."""
    from .windowkernels import counter

    return counter(flat)


def _range(flat: np.ndarray, drop: tuple[float, ...] = ()) -> tuple[float, float, int]:
    return _counter(flat).value_range(flat, drop)


def _cut(cum: np.ndarray, target: float) -> int:
    return min(int(np.searchsorted(cum, target, side="left")), cum.size - 1)


def _binned_percentiles(flat: np.ndarray, drop: tuple[float, ...], lo: float, hi: float, n: int,
                        qs: tuple[float, float]) -> tuple[float, float]:
    """Percentiles of the values of ``flat`` (without ``drop``) in ``[lo, hi]`` from two
    histogram passes: the bins holding them, then a histogram of those bins' span."""
    float_counts = _counter(flat).float_counts
    targets = [q / 100.0 * n for q in qs]
    edges = np.linspace(lo, hi, FLOAT_BINS + 1)
    counts = float_counts(flat, edges, drop)
    cum = np.cumsum(counts)
    i0, i1 = _cut(cum, targets[0]), _cut(cum, targets[1])
    a, b = float(edges[i0]), float(edges[i1 + 1])
    below = float(cum[i0 - 1]) if i0 else 0.0
    if b <= a:
        return a, b
    edges2 = np.linspace(a, b, FLOAT_BINS + 1)
    counts2 = float_counts(flat, edges2, drop)
    cum2 = np.cumsum(counts2) + below
    out = []
    for t in targets:
        j = _cut(cum2, t)
        prev = cum2[j - 1] if j else below
        frac = (t - prev) / counts2[j] if counts2[j] else 0.0
        out.append(float(edges2[j] + min(max(frac, 0.0), 1.0) * (edges2[j + 1] - edges2[j])))
    return out[0], out[1]


def robust_range(arr: np.ndarray, padding: float | None = None,
                 percentiles: tuple[float, float] | None = None) -> tuple[float, float]:
    """The low and high percentiles of every value of a volume, background left out.

    Every finite value of ``arr`` is counted (a 4D volume: every volume) by
    the parallel kernels of :mod:`pocketpacs.native.histogram`: integers
    exactly, one bin per value; floats (and integers of a range over
    :data:`EXACT_RANGE`) in two histogram passes, the second over the bins
    that hold the percentiles.  No subsample, so the answer does
    not depend on how the volume's size lines up with a stride.  Left out: the
    ``padding`` value, and the lowest value when it is the most common and
    covers at least :data:`BACKGROUND_SHARE` of the voxels (air, the zeros
    around a body, a sparse whole-body scan's empty field).  When what is left
    is a single value (a mask: background and one label), the full range.

    Parameters
    ----------
    arr : ndarray
    padding : float, optional
        Pixel Padding Value, in ``arr``'s units.
    percentiles : (float, float), optional
        Default :data:`HISTOGRAM_PERCENTILES`.

    Returns
    -------
    (float, float)
        ``lo <= hi``; ``(0.0, 0.0)`` when there is no finite value.
    """
    qs = percentiles or HISTOGRAM_PERCENTILES
    flat = np.asarray(arr).reshape(-1)
    if flat.dtype.kind == "b":
        flat = flat.view(np.uint8)
    full_lo, full_hi, n = _range(flat)
    if n == 0:
        return 0.0, 0.0
    if full_hi == full_lo:
        return full_lo, full_hi
    # one bin per integer value while the bins stay small beside the volume
    exact = flat.dtype.kind in "iu" and full_hi - full_lo < min(EXACT_RANGE, max(1 << 12, flat.size >> 6))
    if exact:
        counts = _counter(flat).int_counts(flat, int(full_lo), int(full_hi - full_lo) + 1)
        if padding is not None and full_lo <= padding <= full_hi and float(padding).is_integer():
            counts[int(padding - full_lo)] = 0
        first = int(np.flatnonzero(counts)[0]) if counts.any() else 0
        if counts[first] >= BACKGROUND_SHARE * n and counts[first] == counts.max():
            counts[first] = 0                                   # the background mode
        if np.count_nonzero(counts) < 2:                        # a mask, or constant
            return full_lo, full_hi
        cum = np.cumsum(counts)
        lo, hi = (full_lo + _cut(cum, q / 100.0 * cum[-1]) for q in qs)
        if hi <= lo:
            nz = np.flatnonzero(counts)
            lo, hi = full_lo + nz[0], full_lo + nz[-1]
        return float(lo), float(hi)
    drop: tuple[float, ...] = (float(padding),) if padding is not None and np.isfinite(padding) else ()
    lo, hi, m = _range(flat, drop)
    if m - _range(flat, drop + (full_lo,))[2] >= BACKGROUND_SHARE * n:   # the background: the lowest value
        drop = drop + (full_lo,)
        lo, hi, m = _range(flat, drop)
    if m == 0 or hi <= lo:                                      # a mask, or constant
        return full_lo, full_hi
    lo, hi = _binned_percentiles(flat, drop, lo, hi, m, qs)
    return (lo, hi) if hi > lo else (full_lo, full_hi)


def _resolution(arr: np.ndarray) -> float:
    """The smallest step between values: 1 for integers, else the smallest gap seen
    in a strided subsample."""
    if arr.dtype.kind in "iub":
        return 1.0
    flat = arr.reshape(-1)
    sub = flat[::max(1, flat.size // RESOLUTION_SAMPLES)]
    sub = sub[np.isfinite(sub)]
    gaps = np.diff(np.unique(sub))
    gaps = gaps[gaps > 0]
    return float(gaps.min()) if gaps.size else 0.0


def histogram_window(arr: np.ndarray, padding: float | None = None) -> WindowPreset:
    """Window over the 0.5-99.5 percentiles of the whole volume's values, background
    left out (:func:`robust_range`), never narrower than the data's resolution (1 for
    integers, the smallest step between float values).

    Parameters
    ----------
    arr : ndarray
        The values (rescaled when the viewer shows rescaled values); every
        volume of a 4D one.
    padding : float, optional
        Pixel Padding Value, in ``arr``'s units.

    Returns
    -------
    WindowPreset
        ``name "auto"``, ``source "histogram"``.
    """
    a = np.asarray(arr)
    lo, hi = robust_range(a, padding)
    width = max(hi - lo, _resolution(a))
    if not width > 0:
        width = 1.0
    return WindowPreset("auto", (lo + hi) / 2.0, float(width), "histogram")


def voted_header_windows(centers: np.ndarray, widths: np.ndarray,
                         most: int = MAX_HEADER_WINDOWS) -> list[tuple[float, float]]:
    """The header windows of a stack's frames, the most common first.

    Parameters
    ----------
    centers, widths : ndarray
        WindowCenter / WindowWidth of every frame of the stack (NaN: none).
    most : int
        How many distinct windows to keep.

    Returns
    -------
    list of (center, width)
        Ties keep the order of the frames.  A series whose middle slice says
        3010/6020 while most slices say 153/307 opens with 153/307.
    """
    c = np.asarray(centers, dtype=np.float64).reshape(-1)
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    ok = np.isfinite(c) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return []
    pairs = np.stack([c[ok], w[ok]], axis=1)
    uniq, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))[:most]
    return [(float(uniq[i, 0]), float(uniq[i, 1])) for i in order]


def window_presets(arr: np.ndarray, modality: str | None, header: Sequence[tuple[float, float]],
                   rescaled: bool, samples: int = 1) -> list[WindowPreset]:
    """Window presets: header windows, modality defaults, histogram.

    A header or modality window that covers none of the values of ``arr``
    (a DX saying 2725/5310 over values 32744-65535: a white image) is listed
    after the histogram window.

    Parameters
    ----------
    arr : ndarray
    modality : str or None
    header : sequence of (center, width)
        Windows found in the headers (already in ``arr``'s units).
    rescaled : bool
        Whether ``arr`` holds rescaled values (modality defaults need HU).
    samples : int
        Colour volumes get a plain 0-255 window.

    Returns
    -------
    list of WindowPreset
    """
    if samples > 1:
        return [WindowPreset("full", 127.5, 256.0, "modality")]
    out: list[WindowPreset] = []
    seen: set[tuple[float, float]] = set()
    for i, (c, w) in enumerate(header):
        if np.isfinite(c) and np.isfinite(w) and w > 0 and (c, w) not in seen:
            seen.add((c, w))
            out.append(WindowPreset(f"header {i + 1}" if i else "header", float(c), float(w),
                                    "header"))
    if rescaled and modality in MODALITY_WINDOWS:
        out.extend(WindowPreset(n, c, w, "modality") for n, c, w in MODALITY_WINDOWS[modality])
    # a window that misses every value shows one flat grey level: listed last
    lo, hi, _ = _range(np.asarray(arr).reshape(-1))
    off = [p for p in out if p.center + p.width / 2 < lo or p.center - p.width / 2 > hi]
    return [p for p in out if p not in off] + [histogram_window(arr)] + off
