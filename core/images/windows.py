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


def histogram_window(arr: np.ndarray, max_samples: int = 1 << 16) -> WindowPreset:
    """Window from the 0.5-99.5 percentiles of (a subsample of) the values."""
    flat = arr.reshape(-1)
    # a small sample of a small array too (peak memory while loading)
    max_samples = min(max_samples, max(1024, flat.size // 256))
    step = max(1, flat.size // max_samples)
    sub = flat[::step]
    if sub.dtype.kind == "f":
        sub = sub[np.isfinite(sub)]
    if sub.size == 0:
        return WindowPreset("auto", 0.0, 1.0, "histogram")
    lo, hi = np.percentile(sub, HISTOGRAM_PERCENTILES)
    if hi <= lo:
        lo, hi = float(sub.min()), float(sub.max())
    width = max(float(hi - lo), 1.0)
    return WindowPreset("auto", float(lo + hi) / 2.0, width, "histogram")


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
