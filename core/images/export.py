"""Export: NIfTI volumes, PNG slices, JSON assembly reports.

NIfTI files get the world geometry dcm2niix gives: the voxel array in
``(col, row, slice[, volume])`` order with the row axis flipped (dcm2niix's
habit) and the matching RAS affine in both sform and qform (code 1,
scanner), so every voxel centre lands where the DICOM says.  Integer data
stays integer (``scl_slope`` 1), float data is float32.  An uncalibrated
image (no Pixel Spacing, Imager Pixel Spacing or ultrasound regions; PNG,
JPEG, JPEG 2000) keeps its 1 px = 1 voxel size, and the JSON report says so
in its ``warnings`` (each stack's ``calibration`` tells what a pixel measures).

What export writes is private: missing folders are created 0700
(:func:`~pocketpacs.paths.ensure_private_dir`), new files 0600; a file that
cannot be written raises an OSError naming it (e.g. a full disk).
"""
from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import PocketPacsError
from ..paths import ensure_private_dir
from . import calibration
from .volume import SeriesVolumes, Volume


class ExportError(PocketPacsError):
    """A volume cannot be exported in the requested format."""


def nifti_arrays(vol: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Data array and RAS affine of a volume as dcm2niix lays them out.

    Parameters
    ----------
    vol : Volume

    Returns
    -------
    data : ndarray
        ``(col, row, slice[, t])``, row axis flipped (a view).
    affine_ras : ndarray, (4, 4)
    """
    if vol.samples > 1:
        raise ExportError("colour volumes cannot be exported to NIfTI")
    data = vol.to_nifti_array()
    rows = data.shape[1]
    flip = np.eye(4)
    flip[1, 1] = -1.0
    flip[1, 3] = rows - 1
    aff = vol.affine_ras @ flip
    return data[:, ::-1], aff


def to_nifti(vol: Volume) -> Any:
    """A ``nibabel.Nifti1Image`` of the volume (see :func:`nifti_arrays`)."""
    import nibabel as nib

    data, aff = nifti_arrays(vol)
    if data.dtype not in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                          np.float32, np.float64):
        data = data.astype(np.float32)
    img = nib.Nifti1Image(np.asanyarray(data), aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["scl_slope"] = 1.0
    img.header["scl_inter"] = 0.0
    img.header["descrip"] = b"PocketPACS"
    return img


def stack_paths(out_path: str | os.PathLike[str], n: int) -> list[str]:
    """Output file names: ``out`` for one stack, ``out_1 .. out_n`` when split."""
    p = os.fspath(out_path)
    if n <= 1:
        return [p]
    for ext in (".nii.gz", ".nii"):
        if p.endswith(ext):
            stem = p[: -len(ext)]
            break
    else:
        stem, ext = os.path.splitext(p)
    return [f"{stem}_{i + 1}{ext}" for i in range(n)]


def export_nifti(volumes: SeriesVolumes | Sequence[Volume] | Volume,
                 out_path: str | os.PathLike[str], *, report: bool = False) -> list[str]:
    """Write each stack of a series to NIfTI (.nii or .nii.gz).

    Parameters
    ----------
    volumes : SeriesVolumes, sequence of Volume, or Volume
    out_path : path-like
        Target file; numbered ``_1``, ``_2`` ... when there are several stacks.
        Colour stacks are skipped (listed in the report).
    report : bool
        Also write the assembly report as JSON beside the first file
        (``<stem>.json``).

    Returns
    -------
    list of str
        Files written (the report last, when written).

    Raises
    ------
    ExportError
        When nothing could be exported.
    """
    import nibabel as nib

    if isinstance(volumes, Volume):
        vols, sv = [volumes], None
    elif isinstance(volumes, SeriesVolumes):
        vols, sv = list(volumes.volumes), volumes
    else:
        vols, sv = list(volumes), None
    vols = [v for v in vols if v.samples == 1]
    if not vols:
        raise ExportError("no greyscale stack to export")
    names = stack_paths(out_path, len(vols))
    for v, name in zip(vols, names):
        _private_parent(name)
        with _naming(name):
            os.close(_open_private(name))  # created 0600 here; nibabel writes into it
            nib.save(to_nifti(v), name)
    if report:
        p = names[0]
        stem = p[:-7] if p.endswith(".nii.gz") else os.path.splitext(p)[0]
        d = sv.report_dict() if sv is not None else volumes_report(vols)
        write_report_json(d, stem + ".json")
        return names + [stem + ".json"]
    return names


def volumes_report(vols: Sequence[Volume]) -> dict[str, Any]:
    """The report of volumes without an assembly report (Open Other): their stack
    reports, each with its ``calibration``, and a warning per uncalibrated stack."""
    from .assemblyreport import _jsonable

    d: dict[str, Any] = {"stacks": []}
    for i, v in enumerate(vols):
        st = dict(v.report.__dict__) if v.report is not None else {
            "index": i, "kind": v.kind, "shape": list(v.array.shape),
            "spacing_mm": [float(x) for x in v.spacing]}
        st["calibration"] = v.calibration
        d["stacks"].append(st)
        w = calibration.warning(v.calibration)
        if w:
            d.setdefault("warnings", []).append(f"stack {i}: {w}")
    return _jsonable(d)


def write_report_json(report: Any, path: str | os.PathLike[str]) -> str:
    """Write an assembly report (AssemblyReport, SeriesVolumes or dict) as JSON."""
    if isinstance(report, SeriesVolumes):
        d = report.report_dict()
    elif hasattr(report, "to_dict"):
        d = report.to_dict()
    else:
        from .assemblyreport import _jsonable

        d = _jsonable(report)
    _private_parent(path)
    with _naming(path), os.fdopen(_open_private(path), "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2)
    return os.fspath(path)


def _private_parent(path: str | os.PathLike[str]) -> None:
    """Create the missing folders above *path* owner-only (0700); existing ones are left as they are."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        ensure_private_dir(parent)


def _open_private(path: str | os.PathLike[str]) -> int:
    """Open *path* for writing (created 0600, or truncated; like ``open(path, "wb")``)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    return os.open(path, flags, 0o600)


@contextlib.contextmanager
def _naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """An OSError raised while writing *path* names it (a write to a full disk does not)."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or not e.errno:
            raise
        raise OSError(e.errno, e.strerror or os.strerror(e.errno), os.fspath(path)) from e


# --------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------
def png_encode(img: np.ndarray) -> bytes:
    """Encode an 8-bit grey ``(h, w)`` or RGB/RGBA ``(h, w, 3|4)`` image as PNG.

    Parameters
    ----------
    img : uint8 ndarray

    Returns
    -------
    bytes
    """
    a = np.ascontiguousarray(img)
    if a.dtype != np.uint8:
        raise ExportError("png_encode takes uint8 images")
    if a.ndim == 2:
        ctype, ch = 0, 1
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        ctype, ch = (2 if a.shape[2] == 3 else 6), a.shape[2]
    else:
        raise ExportError("png_encode takes (h, w) or (h, w, 3|4) arrays")
    h, w = a.shape[:2]
    raw = np.zeros((h, w * ch + 1), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = a.reshape(h, w * ch)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def slice_image(vol: Volume, index: int | None = None, *, volume_index: int = 0,
                center: float | None = None, width: float | None = None) -> np.ndarray:
    """One slice windowed to 8 bits; colour as 8-bit RGB.

    Colour slices (RGB, YBR as decoded to RGB) and PALETTE COLOR slices
    (their stored indices through :attr:`Volume.palette`) come out as the
    viewer shows them (:func:`pocketpacs.images.colour.display_rgb`): 8-bit
    samples unchanged, deeper ones narrowed to their top 8 bits, no window.

    Parameters
    ----------
    vol : Volume
    index : int, optional
        Slice index (default: the middle slice).
    volume_index : int
        For 4D volumes, which volume.
    center, width : float, optional
        Window (default: the volume's first preset).

    Returns
    -------
    uint8 ndarray, (rows, cols) or (rows, cols, 3)
    """
    from pocketpacs.native.window import window

    from .colour import rgb8

    a = vol.array[volume_index] if vol.is_4d else vol.array
    if index is None:
        index = a.shape[0] // 2
    if not 0 <= index < a.shape[0]:
        raise ExportError(f"slice index {index} outside 0..{a.shape[0] - 1}")
    sl = a[index]
    if getattr(vol, "palette", None) is not None:
        return rgb8(sl, vol.palette)
    if vol.samples > 1:
        # deeper than 8 bits: narrowed by the volume's top value, as the viewer does
        return rgb8(sl) if sl.dtype == np.uint8 else rgb8(a)[index]
    if center is None or width is None:
        p = vol.default_window()
        center = p.center if center is None else center
        width = p.width if width is None else width
    return window(np.ascontiguousarray(sl), float(center), float(width), vol.invert)


def export_png(vol: Volume, path: str | os.PathLike[str], index: int | None = None, **kw: Any
               ) -> str:
    """Write one slice as PNG with a window (see :func:`slice_image`)."""
    data = png_encode(slice_image(vol, index, **kw))
    _private_parent(path)
    with _naming(path), os.fdopen(_open_private(path), "wb") as f:
        f.write(data)
    return os.fspath(path)
