"""Where the viewer's voxels come from: the wire side of the core's series reader, and other files.

:class:`DicomSeriesSource` adapts one stack of a
:class:`pocketpacs.series.SeriesReader` to the page: stacks the core reads slice
by slice are sent as they are read, so the page can draw the first slice before
the series is complete; stacks that need a whole-volume correction (gantry tilt,
irregular spacing, mosaics, colour) come whole from the reader's assembly, the
one export writes.  4D stacks send every volume, one after the other (the
header's ``volumes`` says how many and along what).  :class:`ImageFileSource`
does the same for files opened with Open Other (NIfTI, JPEG 2000, PNG...).

Slices whose pixel data could not be decoded are sent as zeros and listed:
the header's ``unreadable`` (every one for a stack assembled whole), and
:meth:`DicomSeriesSource.unreadable_frames` as the slices are read.

When the rescale (slope/intercept) is the same for every frame the page gets
the *stored* values plus the rescale, applied on the GPU, so the value probe
can show both; otherwise the core rescales per frame and the page gets real
values with an identity rescale.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

from pocketpacs.series import NATIVE_LOCK  # the core's lock around its native readers

from . import protocol
from .volumes import ArraySource

#: Units of rescaled values by modality.
UNITS = {"CT": "HU"}


def _windows(presets: Sequence[Any]) -> list[dict]:
    return [{"name": p.name, "center": float(p.center), "width": float(p.width)} for p in presets]


def _labels(extra: dict | None) -> dict:
    return {k: str(v) for k, v in (extra or {}).items() if v not in (None, "")}


def _unreadable_of(vol: Any, slices: int) -> list[dict]:
    """The header's ``unreadable`` of an assembled volume (*slices* per volume)."""
    from pocketpacs.images.unreadable import frames_list

    return frames_list(getattr(vol, "unreadable", None) or {}, slices)


def header_for_volume(vol: Any, labels: dict | None = None,
                      stack: tuple[int, int] = (0, 1)) -> tuple[protocol.VolumeHeader, np.ndarray]:
    """Wire header and array of an assembled :class:`pocketpacs.images.volume.Volume`.

    Parameters
    ----------
    vol : pocketpacs.images.volume.Volume
        A 3D volume (4D: the first volume).  Colour (RGB, YBR, palette) goes
        as 8-bit RGB with ``samples`` 3 (:func:`pocketpacs.images.colour.display_rgb`).
    labels : dict, optional
        Overlay texts.
    stack : (int, int)
        Which stack of the series this is and how many it has.

    Returns
    -------
    header : VolumeHeader
    array : numpy.ndarray
        ``(slices, rows, cols)`` in a wire dtype; ``(slices, rows, cols, 3)``
        uint8 for colour.
    """
    from pocketpacs.images.colour import display_rgb

    rgb = display_rgb(vol)
    if rgb is not None:  # colour: RGB8, an identity window applied to each channel
        hdr = protocol.VolumeHeader(
            shape=rgb.shape[:3], dtype="uint8", affine_lps=np.asarray(vol.affine_lps).tolist(),
            spacing=list(vol.spacing), units="",
            windows=[{"name": "Colour as stored", "center": 128.0, "width": 256.0}],
            kind=vol.kind, modality=vol.modality or "OT", invert=False, labels=_labels(labels),
            value_range=[0.0, 255.0], calibration=getattr(vol, "calibration", None) or {},
            stack={"index": int(stack[0]), "count": int(stack[1])}, samples=3,
            unreadable=_unreadable_of(vol, rgb.shape[0]))
        return hdr, rgb
    arr = np.asarray(vol.array)
    if getattr(vol, "is_4d", False):
        arr = arr[0]
    if getattr(vol, "samples", 1) > 1:
        arr = (arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    if arr.ndim == 2:
        arr = arr[None]
    wire, slope, intercept = protocol.to_wire(arr)
    wire = np.ascontiguousarray(wire)
    modality = vol.modality or "OT"
    rescaled = bool(getattr(vol, "rescaled", True))
    finite = wire[np.isfinite(wire)] if wire.dtype.kind == "f" else wire
    vr = [float(finite.min()), float(finite.max())] if finite.size else [0.0, 0.0]
    hdr = protocol.VolumeHeader(
        shape=wire.shape, dtype=str(wire.dtype), affine_lps=np.asarray(vol.affine_lps).tolist(),
        spacing=list(vol.spacing), slope=slope, intercept=intercept,
        units=UNITS.get(modality, "") if rescaled else "",
        windows=_windows(vol.window_presets), kind=vol.kind, modality=modality,
        invert=bool(getattr(vol, "invert", False)), labels=_labels(labels), value_range=vr,
        calibration=getattr(vol, "calibration", None) or {},
        stack={"index": int(stack[0]), "count": int(stack[1])},
        unreadable=_unreadable_of(vol, wire.shape[0]))
    return hdr, wire


def safe_report(report: Any) -> dict:
    """The assembly report without file paths (safe to send to the page).

    Parameters
    ----------
    report : pocketpacs.images.assemblyreport.AssemblyReport
        The series' report.

    Returns
    -------
    dict
        ``n_files``, ``n_frames``, ``split_by``, ``notes``, ``stacks`` (the
        stack reports without affines in RAS) and ``excluded`` as counts by
        reason (paths left out: on removable media they often hold names).
    """
    d = report.to_dict()
    excluded: dict[str, int] = {}
    for e in d.get("excluded", []):
        r = str(e.get("reason", "excluded"))
        excluded[r] = excluded.get(r, 0) + 1
    keep = ("index", "kind", "shape", "n_frames", "split_by", "why_sequence", "n_positions",
            "n_volumes", "fourth_axis", "pixel_spacing_mm", "slice_spacing_mm", "spacing_mm", "gaps",
            "duplicates", "dropped_frames", "tilt_deg", "max_in_plane_offset_mm", "tilt_action",
            "spacing_action", "affine_lps", "notes", "unreadable_frames")
    stacks = [{k: st.get(k) for k in keep} for st in d.get("stacks", [])]
    return {"n_files": d.get("n_files", 0), "n_frames": d.get("n_frames", 0),
            "split_by": d.get("split_by", []), "notes": d.get("notes", []), "stacks": stacks,
            "excluded": excluded}


def stack_header(reader: Any, index: int) -> dict:
    """The header's ``stack``: which stack this is, how many, and each one's label.

    Parameters
    ----------
    reader : pocketpacs.series.SeriesReader
    index : int

    Returns
    -------
    dict
        ``{"index", "count", "labels"}``.
    """
    return {"index": int(index), "count": len(reader.stacks),
            "labels": [st.label for st in reader.stacks]}


def header_for_4d(vol: Any, labels: dict | None = None, stack: tuple[int, int] = (0, 1)
                  ) -> tuple[protocol.VolumeHeader, np.ndarray]:
    """Wire header and array of a volume, every volume of a 4D one included.

    The array holds the volumes one after the other, ``(volumes * slices, rows,
    cols)``; the header's shape is one volume's and its ``volumes`` says how many.

    Parameters
    ----------
    vol : pocketpacs.images.volume.Volume
    labels : dict, optional
        Overlay texts.
    stack : (int, int)
        Which stack of the series this is and how many it has.

    Returns
    -------
    header : VolumeHeader
    array : numpy.ndarray
    """
    from pocketpacs.series.stacks import _fourth_axis_of_volume

    if not getattr(vol, "is_4d", False):
        return header_for_volume(vol, labels, stack)
    a = np.asarray(vol.array)
    flat = dataclasses.replace(vol, array=a.reshape((-1,) + a.shape[2:]))
    hdr, wire = header_for_volume(flat, labels, stack)
    hdr.shape = (int(a.shape[1]),) + tuple(int(v) for v in hdr.shape[1:3])
    hdr.volumes = _fourth_axis_of_volume(vol).to_dict()
    hdr.unreadable = _unreadable_of(vol, int(a.shape[1]))
    return hdr, wire


def frame_of_reference(reader: Any, stack: int = 0) -> str:
    """The Frame of Reference UID of one stack of a series, from its headers.

    Parameters
    ----------
    reader : pocketpacs.series.SeriesReader
    stack : int
        Which stack (its files' value; the series' first one when they have none).

    Returns
    -------
    str
        The UID (planned from the archive's rows: its series record's), or
        ``""`` when the headers hold none.
    """
    try:
        values = reader.batch.text("FrameOfReferenceUID")
    except (KeyError, AttributeError):  # a batch without the tag; a reader without a batch
        return ""
    try:
        files = set(reader.slice_files(stack))
    except (IndexError, KeyError, ValueError):  # no such stack: any file's value
        files = set()
    mine = [v for p, v in zip(reader.paths, values) if v and p in files]
    anyv = [v for v in values if v]
    return str((mine or anyv or [""])[0])


def open_dicom_series(archive: Any, series: str, labels: dict | None = None,
                      check: bool = True, stack: int = 0) -> "DicomSeriesSource":
    """A :class:`DicomSeriesSource` for an archived series, through the core's series reader
    (:func:`pocketpacs.series.open_series`: the stored rows where they are exact, else the files).

    Parameters
    ----------
    archive : pocketpacs.Archive
    series : str
        Series key.
    labels : dict, optional
        Overlay texts.
    check : bool
        Passed to :meth:`~pocketpacs.Archive.series_files` on the parse path.
    stack : int
        Which stack (0: the largest).

    Returns
    -------
    DicomSeriesSource

    Raises
    ------
    FileNotFoundError
        When the series has no file that can be read.
    IndexError
        When the series has no such stack.
    """
    from pocketpacs.series import open_series

    with NATIVE_LOCK:
        reader = open_series(archive, series, check=check)
    return DicomSeriesSource.of_reader(reader, labels, stack)


class DicomSeriesSource:
    """Slices of one stack of one DICOM series, read on demand (the wire side of
    :class:`pocketpacs.series.SeriesReader`).

    A 4D stack's slices are numbered volume after volume (slice ``z`` of volume
    ``t`` at ``t * slices + z``); the header's shape is one volume's.

    Parameters
    ----------
    paths : sequence of str
        The series' files.
    labels : dict, optional
        Overlay texts (patient, study, series) from the archive.
    batch : HeaderBatch or ArchiveRows, optional
        Headers of ``paths`` (parsed here when None).
    stack : int
        Which stack (0: the largest).
    reader : pocketpacs.series.SeriesReader, optional
        The series already planned (then *paths* and *batch* are not used).
    """

    def __init__(self, paths: Sequence[str] = (), labels: dict | None = None, batch: Any = None,
                 stack: int = 0, reader: Any = None):
        from pocketpacs.series import SeriesReader

        if reader is None:
            reader = SeriesReader(paths, batch)
        self.reader = reader
        self.paths = reader.paths
        self.from_rows = reader.from_rows
        self.labels = labels
        info = reader.stacks[reader.check_stack(stack)]
        self.stack = info
        self.report = safe_report(reader.report)
        self._whole: ArraySource | None = None
        self._mid = None
        self._slice_files = reader.slice_files(info.index)
        ss = reader.slices(info.index)
        self._ss = ss
        if ss is None:
            # mosaics, colour, tilt, irregular spacing: export's assembly of this stack
            vol = reader.read_stack(info.index)
            self.report = safe_report(reader.report)
            hdr, arr = header_for_4d(vol, labels, stack=(info.index, len(reader.stacks)))
            hdr.stack = stack_header(reader, info.index)
            hdr.frame_of_reference = frame_of_reference(reader, info.index)
            if info.volumes.count > 1:  # the reader's axis (a mosaic DTI's b-values)
                hdr.volumes = info.volumes.to_dict()
            self._whole = ArraySource(hdr, arr)
            return
        self._read_dtype = ss.dtype
        if self._read_dtype.kind in "iu" and self._read_dtype.itemsize > 2:
            # 32-bit values (RT dose, uint16 with a negative intercept): the range is not
            # known before reading, and int16 would wrap them; float32 holds them
            self._wire_dtype = np.dtype(np.float32)
        else:
            self._wire_dtype = protocol.to_wire(np.zeros(1, self._read_dtype))[0].dtype
        self._shape = ss.shape                       # every volume, one after the other
        mid = self._mid_z = ss.volume_shape[0] // 2
        # the header's slice is converted by the NumPy references: a series
        # opened while numba loads (first open of a session) does not wait
        self._mid = self._wire(ss.read(mid, mid + 1, reference=True))
        self._header = protocol.VolumeHeader(
            shape=ss.volume_shape, dtype=str(self._wire_dtype), affine_lps=ss.affine_lps.tolist(),
            spacing=list(ss.spacing), slope=ss.slope, intercept=ss.intercept,
            units=UNITS.get(ss.modality, "") if ss.rescaled else "",
            windows=_windows(ss.presets(self._mid)), kind=ss.kind, modality=ss.modality,
            invert=ss.invert, labels=_labels(labels),
            value_range=[float(self._mid.min()), float(self._mid.max())],
            calibration=ss.calibration, stack=stack_header(reader, info.index),
            volumes=info.volumes.to_dict(), frame_of_reference=frame_of_reference(reader, info.index),
            unreadable=ss.unreadable_frames())

    @classmethod
    def of_reader(cls, reader: Any, labels: dict | None = None, stack: int = 0) -> "DicomSeriesSource":
        """The source of one stack of a series already planned.

        Parameters
        ----------
        reader : pocketpacs.series.SeriesReader
        labels : dict, optional
        stack : int

        Returns
        -------
        DicomSeriesSource
        """
        return cls(labels=labels, stack=stack, reader=reader)

    def _wire(self, arr: np.ndarray) -> np.ndarray:
        return arr if arr.dtype == self._wire_dtype else arr.astype(self._wire_dtype)

    def _read_range(self, z0: int, z1: int, reference: bool = False) -> np.ndarray:
        return self._wire(self._ss.read(z0, z1, reference=reference))

    def header(self) -> protocol.VolumeHeader:
        """Return the wire header.

        Returns
        -------
        VolumeHeader
        """
        return self._whole.header() if self._whole else self._header

    def unreadable_frames(self) -> list[dict]:
        """The slices found so far whose pixel data could not be decoded (sent as zeros).

        Returns
        -------
        list of dict
            ``{"slice", "volume", "reason"}`` each (no paths): every one for a
            stack assembled whole, those read so far for one read slice by slice.
        """
        if self._ss is None:
            return list(self.header().unreadable)
        return self._ss.unreadable_frames()

    def slice_file(self, z: int) -> str | None:
        """The file holding slice *z* (nearest source slice after resampling).

        Parameters
        ----------
        z : int
            Slice index of the wire volume.

        Returns
        -------
        str or None
            A path (kept on the Python side), or None when out of range.
        """
        n_out = int(self.header().shape[0])
        n_src = len(self._slice_files)
        if not 0 <= z < n_out or n_src == 0:
            return None
        k = z if n_out == n_src else int(round(z * (n_src - 1) / max(n_out - 1, 1)))
        return self._slice_files[min(max(k, 0), n_src - 1)]

    def cached_slices(self) -> dict[int, np.ndarray]:
        """Slices already read for the header (the middle one of the first volume), by index.

        Returns
        -------
        dict
            Slice index -> ``(rows, cols)`` array of the wire dtype.
        """
        if self._whole is not None or self._mid is None:
            return {}
        return {self._mid_z: self._mid[0]}

    def whole(self) -> np.ndarray | None:
        """The whole array when it had to be assembled in one go, else None.

        Returns
        -------
        numpy.ndarray or None
        """
        return self._whole.whole() if self._whole else None

    def read_into(self, z0: int, z1: int, out: np.ndarray) -> None:
        """Read slices ``[z0, z1)`` into *out*.

        Parameters
        ----------
        z0, z1 : int
            Slice range.
        out : numpy.ndarray
            ``(z1 - z0, rows, cols)`` destination.
        """
        if z1 - z0 == 1 and z0 == self._mid_z and self._mid is not None:
            out[:] = self._mid
            return
        if self._read_dtype == self._wire_dtype and out.dtype == self._wire_dtype and out.flags.c_contiguous:
            # straight into the volume: no chunk-sized temporary to fault in and copy
            self._ss.read(z0, z1, out=out)
            return
        out[:] = self._read_range(z0, z1)

    def close(self) -> None:
        """Release the cached middle slice."""
        self._mid = None


class ImageFileSource(ArraySource):
    """An image file opened with Open Other (NIfTI, JPEG 2000, PNG...).

    Parameters
    ----------
    path : str
        The file.
    """

    def __init__(self, path: str):
        from pocketpacs.images import openother

        with NATIVE_LOCK:
            vol = openother.open_other(path)[0]
        name = os.path.basename(path)
        hdr, arr = header_for_4d(vol, {"series_description": name})
        super().__init__(hdr, arr)
