"""Window presets: header windows, modality defaults and a histogram window.

:data:`MODALITY_WINDOWS` is the one table of default windows by modality
(the viewer gets them through the volume header's ``windows``);
:func:`window_presets` lists a volume's presets (header windows first, then
the modality defaults for rescaled values, then :func:`histogram_window`,
the 0.5-99.5 percentile window of a subsample of the values).
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


#: Samples the histogram window looks at (a strided subsample of the volume).
HISTOGRAM_SAMPLES = 1 << 16
#: Samples looked at when the first subsample is nearly all background (a
#: sparse whole-body NM scan, a mostly empty 4D NIfTI).
SPARSE_SAMPLES = 1 << 22
#: The most common value is "background" (air, padding, zero outside the
#: body) when it is the lowest value and covers at least this share.
BACKGROUND_SHARE = 0.2
#: Header windows kept, most common first.
MAX_HEADER_WINDOWS = 3


def _strided(flat: np.ndarray, n: int) -> np.ndarray:
    sub = flat[::max(1, flat.size // n)]
    if sub.dtype.kind == "f":
        sub = sub[np.isfinite(sub)]
    return sub


def _resolution(values: np.ndarray, dtype: np.dtype) -> float:
    """The smallest step between values: 1 for integers, else the smallest gap seen."""
    if dtype.kind in "iub":
        return 1.0
    gaps = np.diff(np.unique(values))
    gaps = gaps[gaps > 0]
    return float(gaps.min()) if gaps.size else 0.0


def histogram_window(arr: np.ndarray, max_samples: int = HISTOGRAM_SAMPLES) -> WindowPreset:
    """Window from the 0.5-99.5 percentiles of the volume's values, background left out.

    A strided subsample of the whole volume is read (never only one slice).
    The most common value, when it is also the lowest and covers at least
    :data:`BACKGROUND_SHARE` of the samples (air, padding, the zeros around
    a body), is left out, and when little else is left a larger subsample is
    read, so a sparse scan does not collapse to the background.  The width is
    never below the data's resolution (1 for integers, the smallest step
    between float values).
    """
    flat = arr.reshape(-1)
    sub = _strided(flat, min(max_samples, max(1024, flat.size // 256)))
    if sub.size == 0:
        return WindowPreset("auto", 0.0, 1.0, "histogram")
    values, counts = np.unique(sub, return_counts=True)
    top = int(counts.argmax())
    if top == 0 and values.size > 1 and counts[0] >= BACKGROUND_SHARE * sub.size:
        background = values[0]
        rest = sub[sub != background]
        if rest.size < 64 and flat.size > sub.size:
            wide = _strided(flat, SPARSE_SAMPLES)
            rest = wide[wide != background]
        if rest.size:
            sub = rest
    lo, hi = (float(v) for v in np.percentile(sub, HISTOGRAM_PERCENTILES))
    if hi <= lo:
        lo, hi = float(sub.min()), float(sub.max())
    floor = _resolution(sub, arr.dtype)
    width = max(hi - lo, floor) if max(hi - lo, floor) > 0 else 1.0
    return WindowPreset("auto", (lo + hi) / 2.0, width, "histogram")


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
    out.append(histogram_window(arr))
    return out
