"""Display calibration: what one image pixel measures, as the DICOM standard says.

A stack's in-plane calibration is taken, in this order, from Pixel Spacing
(0028,0030: spacing in the patient, ``kind "patient"``); else Imager Pixel
Spacing (0018,1164: at the detector, ``"detector"``), divided by Estimated
Radiographic Magnification Factor (0018,1114) when that is given (at the
isocenter, estimated: ``"detector_corrected"``); else, for ultrasound, the
Sequence of Ultrasound Regions (0018,6011): the regions whose Physical Units
X and Y Direction are both 3 (cm) give PhysicalDeltaX/Y in cm per pixel,
valid inside their region only (``"us_region"``, spacing of the largest
such region, every region listed); otherwise the image is uncalibrated
(``"none"``): a unit (1 px) grid that the viewer shows in pixels, without
orientation letters or mm.  A calibration is a plain dict ``{"kind",
"spacing_mm": [row, col] or None, "note"}`` (plus ``"regions"`` for
ultrasound): :func:`from_dataset` applies the rules to a pydicom data set,
:func:`fill_missing_spacing` to the files of a frame table that have no
Pixel Spacing, :func:`of_frame` gives a planned stack's calibration.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

#: The kinds of calibration, most trusted first.
KINDS = ("patient", "detector", "detector_corrected", "us_region", "none")

#: Physical Units X/Y Direction code of centimetres (PS3.3 C.8.5.5.1.15).
US_UNITS_CM = 3

NOTES = {
    "patient": "Pixel Spacing: distances in the patient",
    "detector": "Imager Pixel Spacing: distances at the detector (not corrected for magnification)",
    "detector_corrected": "Imager Pixel Spacing corrected by the Estimated Radiographic "
                          "Magnification Factor: distances at the isocenter (estimated)",
    "us_region": "ultrasound region calibration: distances valid inside the calibrated region only",
    "none": "uncalibrated: no Pixel Spacing, Imager Pixel Spacing or ultrasound region "
            "calibration; distances in pixels",
}


def make(kind: str, spacing_mm: Sequence[float] | None = None, note: str | None = None,
         **extra: Any) -> dict[str, Any]:
    """A calibration dict.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    spacing_mm : sequence of 2 float, optional
        ``[row spacing, column spacing]`` in mm (None for ``"none"``).
    note : str, optional
        What the calibration means (default: the kind's note).
    **extra
        More keys (``regions`` for ultrasound, ``magnification``).

    Returns
    -------
    dict
    """
    if kind not in KINDS:
        raise ValueError(f"calibration kind must be one of {KINDS}")
    sp = None if kind == "none" or spacing_mm is None else [float(spacing_mm[0]), float(spacing_mm[1])]
    d: dict[str, Any] = {"kind": kind, "spacing_mm": sp, "note": note or NOTES[kind]}
    d.update(extra)
    return d


def patient(spacing_mm: Sequence[float]) -> dict[str, Any]:
    """Pixel Spacing calibration (``[row, col]`` mm)."""
    return make("patient", spacing_mm)


def uncalibrated(note: str | None = None) -> dict[str, Any]:
    """No calibration: pixels."""
    return make("none", None, note)


def is_calibrated(cal: dict[str, Any] | None) -> bool:
    """Whether distances in the image are in mm (any kind but ``"none"``)."""
    return bool(cal) and cal.get("kind") != "none"


def warning(cal: dict[str, Any] | None) -> str | None:
    """A warning for exports of an uncalibrated image (None when calibrated)."""
    if is_calibrated(cal):
        return None
    return ("uncalibrated image: no Pixel Spacing, Imager Pixel Spacing or ultrasound region "
            "calibration; the voxel size 1 is one pixel, not 1 mm")


def _pair(v: Any) -> list[float] | None:
    """Two positive finite floats from a DICOM multi-value, else None."""
    if v is None:
        return None
    try:
        vals = [float(x) for x in (v if hasattr(v, "__iter__") and not isinstance(v, str) else [v])]
    except (TypeError, ValueError):
        return None
    if len(vals) < 2 or not all(math.isfinite(x) and x > 0 for x in vals[:2]):
        return None
    return vals[:2]


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def us_regions(ds: Any) -> list[dict[str, Any]]:
    """The spatially calibrated regions of a Sequence of Ultrasound Regions.

    Returns
    -------
    list of dict
        ``{"bbox": [x0, y0, x1, y1], "spacing_mm": [dy, dx]}`` for each
        region whose Physical Units X and Y Direction are cm (PhysicalDelta
        converted from cm to mm), in the order of the sequence.
    """
    out: list[dict[str, Any]] = []
    seq = ds.get("SequenceOfUltrasoundRegions") if ds is not None else None
    for item in seq or []:
        try:
            ux, uy = int(item.get("PhysicalUnitsXDirection")), int(item.get("PhysicalUnitsYDirection"))
        except (TypeError, ValueError):
            continue
        if ux != US_UNITS_CM or uy != US_UNITS_CM:
            continue
        dx, dy = _number(item.get("PhysicalDeltaX")), _number(item.get("PhysicalDeltaY"))
        if dx is None or dy is None or dx == 0 or dy == 0:
            continue
        box = [_number(item.get(k)) for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                              "RegionLocationMaxX1", "RegionLocationMaxY1")]
        if any(b is None for b in box) or box[2] < box[0] or box[3] < box[1]:  # type: ignore[operator]
            continue
        out.append({"bbox": [int(b) for b in box],  # type: ignore[arg-type]
                    "spacing_mm": [abs(dy) * 10.0, abs(dx) * 10.0]})
    return out


def from_dataset(ds: Any) -> dict[str, Any]:
    """The calibration of one image (a pydicom data set) by the rules above.

    Parameters
    ----------
    ds : pydicom.Dataset

    Returns
    -------
    dict
        See :func:`make`.
    """
    ps = _pair(ds.get("PixelSpacing"))
    if ps is not None:
        return patient(ps)
    ips = _pair(ds.get("ImagerPixelSpacing"))
    if ips is not None:
        f = _number(ds.get("EstimatedRadiographicMagnificationFactor"))
        if f is not None and f > 0:
            return make("detector_corrected", [ips[0] / f, ips[1] / f], magnification=f)
        return make("detector", ips)
    regions = us_regions(ds)
    if regions:
        areas = [(r["bbox"][2] - r["bbox"][0] + 1) * (r["bbox"][3] - r["bbox"][1] + 1) for r in regions]
        best = int(np.argmax(areas))
        note = NOTES["us_region"]
        if len(regions) > 1:
            note += f" (the largest of {len(regions)} calibrated regions sets the grid; each region " \
                    "measures with its own spacing)"
        return make("us_region", regions[best]["spacing_mm"], note, regions=regions)
    return uncalibrated()


def of_file(path: str) -> dict[str, Any]:
    """The calibration of a DICOM file (its header read with pydicom); uncalibrated
    when the header cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ..dicom.fallback import read_dataset_capped

            ds = read_dataset_capped(path, stop_before_pixels=True)
    except Exception:
        return uncalibrated()
    return from_dataset(ds)


def fill_missing_spacing(paths: Sequence[str], file_col: np.ndarray,
                         pixel_spacing: np.ndarray) -> dict[int, dict[str, Any]]:
    """Calibrate the files of a frame table that have no Pixel Spacing.

    For each file whose frames have no valid Pixel Spacing, the header is
    read (:func:`of_file`) and, when it gives a spacing (Imager Pixel Spacing,
    an ultrasound region, or a Pixel Spacing only pydicom could read), that spacing is written into
    ``pixel_spacing`` (in place) so the stack is planned on it.

    Parameters
    ----------
    paths : sequence of str
    file_col : ndarray of int, (n,)
        File index of each frame.
    pixel_spacing : ndarray, (n, 2)
        Pixel Spacing of each frame (NaN when absent); filled in place.

    Returns
    -------
    dict
        File index -> calibration, for the files without Pixel Spacing.
    """
    out: dict[int, dict[str, Any]] = {}
    if pixel_spacing.size == 0:
        return out
    bad = ~np.all(np.isfinite(pixel_spacing) & (pixel_spacing > 0), axis=1)
    for f in np.unique(file_col[bad]).tolist():
        cal = of_file(str(paths[int(f)]))
        out[int(f)] = cal
        if cal["spacing_mm"] is not None:
            sel = (file_col == f) & bad
            pixel_spacing[sel] = cal["spacing_mm"]
    return out


def of_frame(calibrations: dict[int, dict[str, Any]], ft: Any, row: int) -> dict[str, Any]:
    """The calibration of a stack whose first frame is frame-table row ``row``.

    Parameters
    ----------
    calibrations : dict
        From :func:`fill_missing_spacing`.
    ft : FrameTable
    row : int

    Returns
    -------
    dict
    """
    cal = calibrations.get(int(ft.file[row]))
    if cal is not None:
        return cal
    ps = ft.pixel_spacing[row]
    if np.all(np.isfinite(ps)) and np.all(ps > 0):
        return patient([float(ps[0]), float(ps[1])])
    return uncalibrated()
