"""The values series assembly returns: :class:`Volume`, :class:`SeriesVolumes` and their errors.

A :class:`Volume` is one stack's voxel array with its world geometry, window
presets, calibration and the assembly report; :class:`SeriesVolumes` is every
stack of a series with the series' report.  Made by
:func:`pocketpacs.images.volume.assemble_series` and
:func:`pocketpacs.images.mosaic.assemble_mosaics`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import PocketPacsError
from . import calibration
from .affine import corner_voxels_world, lps_to_ras
from .assemblyreport import AssemblyReport, StackReport
from .decoders import FrameError
from .unreadable import frames_list, summary
from .windows import WindowPreset, histogram_window

class VolumeError(PocketPacsError):
    """A series (or file set) gives no volume at all."""


class NotAnImageError(VolumeError):
    """Every file of a series is an object without image pixels.

    Reports and structured reports, RT objects, waveforms, presentation
    states, encapsulated documents, or image objects whose pixel data is
    missing.  :attr:`kind` names what they are (safe to show).

    Parameters
    ----------
    kind : str
        From the SOP Class UID's name, else the Modality (see
        :func:`not_an_image_kind`).
    """

    def __init__(self, kind: str):
        super().__init__(f"not an image: {kind}")
        self.kind = kind



@dataclass
class Volume:
    """A 3D/4D voxel array with its world geometry.

    Attributes
    ----------
    array : ndarray
        ``(k, rows, cols)``, ``(t, k, rows, cols)``, colour samples last.
    affine_lps : ndarray, (4, 4)
        Maps ``(col, row, slice, 1)`` to DICOM patient coordinates (mm).
    spacing : tuple of float
        ``(col, row, slice)`` spacing in mm.
    modality : str or None
    kind : str
        ``"volume"`` or ``"sequence"`` (frames in acquisition order).
    window_presets : list of WindowPreset
        Header windows first, then modality defaults, then the histogram.
    report : StackReport
    photometric : str
        ``MONOCHROME1`` volumes display inverted.
    rescaled : bool
        Values are modality-rescaled (e.g. HU) rather than stored values.
    series_uid : str or None
    stack_index : int
    errors : list of FrameError
        Frames that could not be decoded (left as zeros).
    unreadable : dict
        The slices those frames left without an image: index in the array
        (volume after volume: ``t * slices + z``) -> the reason, without the
        file's path (:mod:`pocketpacs.images.unreadable`); after a z
        resampling, every slice blended from one.
    calibration : dict
        What a pixel measures (:mod:`pocketpacs.images.calibration`):
        ``{"kind", "spacing_mm", "note"}``; ``kind "none"``: the affine is a
        unit (1 px) grid, not mm.  Left out, the volume is taken as
        calibrated in the patient by its spacing.
    palette : ndarray or None
        ``(n, 3)`` uint8 RGB of each stored value for PALETTE COLOR images
        (:func:`pocketpacs.images.colour.palette_of`); the array keeps the
        stored indices.
    """

    array: np.ndarray
    affine_lps: np.ndarray
    spacing: tuple[float, float, float]
    modality: str | None = None
    kind: str = "volume"
    window_presets: list[WindowPreset] = field(default_factory=list)
    report: StackReport | None = None
    photometric: str = "MONOCHROME2"
    rescaled: bool = True
    series_uid: str | None = None
    stack_index: int = 0
    errors: list[FrameError] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    palette: np.ndarray | None = None
    unreadable: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.calibration is None:
            self.calibration = calibration.patient([self.spacing[1], self.spacing[0]])

    @property
    def affine_ras(self) -> np.ndarray:
        """RAS affine (nibabel convention for the array transposed to (col, row, slice))."""
        return lps_to_ras(self.affine_lps)

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return tuple(self.array.shape)

    @property
    def samples(self) -> int:
        """Samples per pixel (3 for RGB)."""
        k = 4 if self.is_4d else 3
        return int(self.array.shape[k]) if self.array.ndim > k else 1

    @property
    def is_4d(self) -> bool:
        """Whether the array has a leading volume (time/echo) axis."""
        extra = 1 if (self.report is not None and self.report.key.get("samples", 1) > 1) else 0
        return self.array.ndim - extra == 4

    @property
    def invert(self) -> bool:
        """Whether display must invert grey levels (MONOCHROME1)."""
        return self.photometric == "MONOCHROME1"

    def default_window(self) -> WindowPreset:
        """The first window preset (a histogram window when there is none)."""
        if self.window_presets:
            return self.window_presets[0]
        return histogram_window(self.array)

    def to_nifti_array(self) -> np.ndarray:
        """The array in NIfTI order ``(col, row, slice[, t])`` (a view)."""
        if self.samples > 1:
            raise VolumeError("colour volumes have no NIfTI array")
        a = self.array
        if self.is_4d:
            return a.transpose(3, 2, 1, 0)
        return a.transpose(2, 1, 0)

    def corners_world(self, ras: bool = False) -> np.ndarray:
        """World coordinates of the 8 corner voxel centres (sorted rows)."""
        k, r, c = self.array.shape[(1 if self.is_4d else 0):(4 if self.is_4d else 3)]
        return corner_voxels_world(self.affine_ras if ras else self.affine_lps, (c, r, k))


@dataclass
class SeriesVolumes:
    """Result of :func:`assemble_series`.

    Attributes
    ----------
    volumes : list of Volume
        One per stack, largest first.
    report : AssemblyReport
    errors : list of FrameError
    """

    volumes: list[Volume]
    report: AssemblyReport
    errors: list[FrameError] = field(default_factory=list)

    def report_dict(self) -> dict[str, Any]:
        """The assembly report with frame errors, as a plain dict."""
        d = self.report.to_dict()
        d["errors"] = [e.to_dict() for e in self.errors]
        by_index = {v.stack_index: v.calibration for v in self.volumes}
        for v in self.volumes:
            if v.unreadable:
                n = int(np.prod(v.array.shape[:2 if v.is_4d else 1]))
                bad = ", ".join(str(f["slice"] + 1) + (f" (volume {f['volume'] + 1})" if v.is_4d else "")
                                for f in frames_list(v.unreadable, v.shape[1 if v.is_4d else 0])[:10])
                more = " ..." if len(v.unreadable) > 10 else ""
                d.setdefault("warnings", []).append(
                    f"stack {v.stack_index}: {summary(len(v.unreadable), n)}: slice {bad}{more}")
        for st in d.get("stacks", []):
            cal = by_index.get(st.get("index"))
            if cal is not None:
                st["calibration"] = cal
                w = calibration.warning(cal)
                if w:
                    d.setdefault("warnings", []).append(f"stack {st.get('index')}: {w}")
        return d
