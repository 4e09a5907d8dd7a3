"""Where the viewer's voxels come from: DICOM series (progressively) and other files.

:class:`DicomSeriesSource` plans a series with the core's geometry
(:func:`pocketpacs.images.stacksplit.plan_series` over
:func:`pocketpacs.images.seriesframes.frames_from_batch`) and then reads slices on demand
with :func:`pocketpacs.images.frames.read_frames`, so the page can draw the first
slice before the series is complete.  Stacks that need a whole-volume
correction (gantry tilt, irregular spacing, 4D, colour) are assembled in one
go by :func:`pocketpacs.images.volume.assemble_series` instead.

When the rescale (slope/intercept) is the same for every frame the page gets
the *stored* values plus the rescale, applied on the GPU, so the value probe
can show both; otherwise the core rescales per frame and the page gets real
values with an identity rescale.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Sequence

import numpy as np

from . import protocol
from .volumes import ArraySource

#: Serialises the core's native readers across the UI's threads (volume jobs,
#: thumbnails, warm-up): numba's default threading layer does not support
#: parallel kernels launched from several threads at once.
NATIVE_LOCK = threading.RLock()

#: Units of rescaled values by modality.
UNITS = {"CT": "HU"}


def _windows(presets: Sequence[Any]) -> list[dict]:
    return [{"name": p.name, "center": float(p.center), "width": float(p.width)} for p in presets]


def _labels(extra: dict | None) -> dict:
    return {k: str(v) for k, v in (extra or {}).items() if v not in (None, "")}


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
            stack={"index": int(stack[0]), "count": int(stack[1])}, samples=3)
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
        stack={"index": int(stack[0]), "count": int(stack[1])})
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
            "spacing_action", "affine_lps", "notes")
    stacks = [{k: st.get(k) for k in keep} for st in d.get("stacks", [])]
    return {"n_files": d.get("n_files", 0), "n_frames": d.get("n_frames", 0),
            "split_by": d.get("split_by", []), "notes": d.get("notes", []), "stacks": stacks,
            "excluded": excluded}


class ArchiveRows:
    """The archive's stored header rows of a series, in the shape of a header batch.

    Stands in for :class:`pocketpacs.dicom.batch.HeaderBatch` where
    :func:`pocketpacs.images.seriesframes.frames_from_batch` and
    :func:`pocketpacs.images.pixelformat.formats_from_batch` read one, so a series is
    planned exactly as from its parsed headers without reading the files.
    Build it with :func:`archive_rows`.

    Parameters
    ----------
    rows : numpy.ndarray of records.INST_DTYPE
        One row per file.
    texts : list of dict
        Stored text values of each instance (``records.INSTANCE_TEXT``).
    series : dict
        Series-level text values (``Modality``, ``SeriesInstanceUID``).
    """

    def __init__(self, rows: np.ndarray, texts: list[dict], series: dict):
        from pocketpacs.archive import records

        self.n = int(rows.shape[0])
        self._rows = rows
        self._texts = texts
        self._series = series
        self.status = np.zeros(self.n, dtype=np.int8)          # every row: parsed natively
        self.reason: list[str | None] = [None] * self.n
        self.fallback_reason: list[str | None] = [None] * self.n    # never gzip: see archive_rows
        self.size = rows["size"].astype(np.int64)                   # checked against the files
        self.pixel_offset = rows["pixel_offset"].astype(np.int64)
        self.pixel_length = rows["pixel_length"].astype(np.int64)
        self.encapsulated = (rows["flags"] & records.ENCAPSULATED).astype(bool)

    def values(self, keyword: str) -> np.ndarray:
        """Numeric values of a tag, ``(n, nvals)`` float64 (NaN when absent)."""
        from pocketpacs.dicom import tags

        k = tags.INDEX[keyword]
        c, cnt = int(tags.NUM_START[k]), int(tags.NUM_COUNT[k])
        if c < 0:
            raise KeyError(f"{keyword} is not a numeric tag of the archive")
        return self._rows["nums"][:, c:c + cnt].astype(np.float64)

    def number(self, keyword: str) -> np.ndarray:
        """First value of a numeric tag."""
        return self.values(keyword)[:, 0]

    def text(self, keyword: str) -> list[str | None]:
        """Stored text values of a tag (None when absent); KeyError when not stored."""
        if keyword in self._series:
            return [self._series[keyword]] * self.n
        out = []
        for t in self._texts:
            v = t[keyword]                                     # KeyError: not stored
            out.append(v if v else None)
        return out

    @property
    def transfer_syntax(self) -> list[str | None]:
        """Transfer Syntax UID of each file."""
        return self.text("TransferSyntaxUID")


#: SOP classes whose frames are planned from per-frame values read with pydicom.
_PER_FRAME_SOP = ("1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2.1")


def archive_rows(archive: Any, series: str) -> tuple[list[str], ArchiveRows] | None:
    """Files and stored header rows of an archived series, when they can stand in for a parse.

    The rows are used only when every instance is a single-frame,
    uncompressed greyscale image the native readers take as stored
    (no fallback parse, conflict or offline flag, no enhanced SOP class or
    mosaic), its record holds every value the plan needs (records from
    before ``PhotometricInterpretation``/``ImageType`` were stored do not),
    and its file has the size and modification time it had when imported.
    Files are ordered as :meth:`pocketpacs.Archive.series_files` orders them.

    Parameters
    ----------
    archive : pocketpacs.Archive
    series : str
        Series key.

    Returns
    -------
    (paths, ArchiveRows) or None
        None: parse the files instead.
    """
    from pocketpacs.archive import records
    from pocketpacs.dicom import tags
    from pocketpacs.images.pixelformat import formats_from_batch
    from pocketpacs.images.seriesframes import is_mosaic

    if getattr(archive, "media", False):
        return None
    se = archive.get_series(series)
    _keys, rows, texts, locs = archive.series_table(series, text=True)
    n = int(rows.shape[0])
    if n == 0 or any(not p for p in locs):
        return None
    bad = records.OFFLINE | records.FALLBACK | records.ENCAPSULATED | records.CONFLICT
    if np.any(rows["flags"] & bad) or np.any(rows["pixel_offset"] < 0):
        return None
    if any(k not in t for t in texts for k in records.INSTANCE_TEXT):
        return None
    nf = rows["nums"][:, int(tags.NUM_START[tags.INDEX["NumberOfFrames"]])]
    if np.any(np.isfinite(nf) & (nf != 1)):
        return None
    for t in texts:
        sop = t["SOPClassUID"] or ""
        if sop.startswith(_PER_FRAME_SOP) or is_mosaic(t["ImageType"]):
            return None
    # files in series_files' order: instance number, then SOP Instance UID
    inum = rows["nums"][:, int(tags.NUM_START[tags.INDEX["InstanceNumber"]])]
    order = sorted(range(n), key=lambda i: (int(inum[i]) if np.isfinite(inum[i]) else 1 << 30,
                                            texts[i]["SOPInstanceUID"]))
    rows = rows[order]
    texts = [texts[i] for i in order]
    paths = [locs[i][0] for i in order]
    size, mtime = rows["size"].tolist(), rows["mtime_ns"].tolist()
    for i, p in enumerate(paths):
        if p.endswith(".gz"):
            return None
        try:
            st = os.stat(p)
        except OSError:
            return None
        if st.st_size != size[i] or st.st_mtime_ns != mtime[i]:
            return None                     # changed since it was imported
    batch = ArchiveRows(rows, texts, {"Modality": se.modality or None,
                                      "SeriesInstanceUID": se.uid or None})
    fmts = formats_from_batch(batch)
    if any(f is None or f.route != "native" or f.samples != 1 or f.nframes != 1 for f in fmts):
        return None
    return paths, batch


def open_dicom_series(archive: Any, series: str, labels: dict | None = None,
                      check: bool = True) -> "DicomSeriesSource":
    """A :class:`DicomSeriesSource` for an archived series: from its stored rows when they
    can stand in for the headers (:func:`archive_rows`), else from its parsed files.

    Parameters
    ----------
    archive : pocketpacs.Archive
    series : str
        Series key.
    labels : dict, optional
        Overlay texts.
    check : bool
        Passed to :meth:`~pocketpacs.Archive.series_files` on the parse path.

    Returns
    -------
    DicomSeriesSource

    Raises
    ------
    FileNotFoundError
        When the series has no file that can be read.
    """
    got = archive_rows(archive, series)
    if got is not None:
        return DicomSeriesSource(got[0], labels, batch=got[1])
    paths = [os.fspath(p) for p in archive.series_files(series, check=check)]
    if not paths:
        raise FileNotFoundError("no readable file in the series")
    return DicomSeriesSource(paths, labels)


class DicomSeriesSource:
    """Slices of the largest stack of one DICOM series, read on demand.

    Parameters
    ----------
    paths : sequence of str
        The series' files.
    labels : dict, optional
        Overlay texts (patient, study, series) from the archive.
    batch : HeaderBatch or ArchiveRows, optional
        Headers of ``paths`` (parsed here when None).
    """

    def __init__(self, paths: Sequence[str], labels: dict | None = None, batch: Any = None):
        from pocketpacs.dicom.headers import parse_files
        from pocketpacs.images.calibration import of_frame
        from pocketpacs.images.seriesframes import frames_from_batch
        from pocketpacs.images.stackread import choose_dtype
        from pocketpacs.images.stacksplit import plan_series
        from pocketpacs.images.volume import assemble_series, check_has_images, mosaic_groups
        from pocketpacs.images.windows import MODALITY_WINDOWS, voted_header_windows, window_presets

        self.paths = [os.fspath(p) for p in paths]
        self.from_rows = isinstance(batch, ArchiveRows)
        if batch is None:
            with NATIVE_LOCK:
                batch = parse_files(self.paths)
        fr = frames_from_batch(self.paths, batch)
        plans, report = plan_series(fr.ft, paths=self.paths)
        # NotAnImageError (reports, SR, RT, waveforms) or VolumeError when nothing is an image
        check_has_images(fr, len(self.paths), bool(plans or fr.mosaics))
        plan = plans[0] if plans else None
        self.labels = labels
        self.report = safe_report(report)
        self._whole: ArraySource | None = None
        self._mid = None
        # palette colour goes as RGB (header_for_volume): assembled, not read slice by slice
        palette = any(f is not None and f.photometric == "PALETTE COLOR" for f in fr.formats)
        simple = (plan is not None and not fr.mosaics and plan.frames.shape[0] == 1
                  and plan.samples == 1 and plan.in_plane_shift is None and plan.z_target is None
                  and not palette)
        if not simple:
            # mosaics, 4D, colour, tilt, irregular spacing: export's assembly, largest stack first
            with NATIVE_LOCK:
                sv = assemble_series(self.paths, batch=batch)
            vol = sv.volumes[0]
            self.report = safe_report(sv.report)
            if vol.report is not None and vol.report.key.get("mosaic"):
                size = vol.report.key.get("mosaic_size")
                group = next(g for g in mosaic_groups(fr)
                             if [fr.formats[g[0]].rows, fr.formats[g[0]].cols] == size)
                self._slice_files = [self.paths[i] for i in group]   # one file per volume
            else:  # the other volumes keep the plans' order: the first is plans[0]
                src_files = np.asarray(fr.ft.file)[plan.frames[0].reshape(-1)]
                self._slice_files = [self.paths[int(f)] for f in src_files]
            self._whole = ArraySource(*header_for_volume(vol, labels, stack=(0, len(sv.volumes))))
            return
        src_files = np.asarray(fr.ft.file)[plan.frames[0].reshape(-1)]
        self._slice_files = [self.paths[int(f)] for f in src_files]
        rows_idx = plan.frames.reshape(-1)
        self._fr = fr
        self._files = fr.ft.file[rows_idx]
        self._refs = np.stack([self._files, fr.ft.frame[rows_idx]], axis=1)
        sl, ic = fr.slope[rows_idx], fr.intercept[rows_idx]
        fmts = [fr.formats[int(f)] for f in np.unique(self._files)]
        uniform = bool(np.all(sl == sl[0]) and np.all(ic == ic[0]))
        if uniform:
            dtype, _ = choose_dtype(fmts, sl, ic, False)
            self._sl = self._ic = None
            slope, intercept = float(sl[0]), float(ic[0])
        else:
            dtype, applied = choose_dtype(fmts, sl, ic, True)
            self._sl, self._ic = (sl, ic) if applied else (None, None)
            slope, intercept = 1.0, 0.0
        self._read_dtype = np.dtype(dtype)
        if self._read_dtype.kind in "iu" and self._read_dtype.itemsize > 2:
            # 32-bit values (RT dose, uint16 with a negative intercept): the range is not
            # known before reading, and int16 would wrap them; float32 holds them
            self._wire_dtype = np.dtype(np.float32)
        else:
            probe = np.zeros(1, self._read_dtype)
            self._wire_dtype = protocol.to_wire(probe)[0].dtype
        k = int(plan.frames.shape[1])
        self._shape = (k, int(plan.rows), int(plan.cols))
        fi0 = int(fr.ft.file[int(plan.frames[0, 0])])
        modality = fr.modality[fi0] or "OT"
        fmt0 = fr.formats[fi0]
        mid = k // 2
        # the header's slice is converted by the NumPy references: a series
        # opened while numba loads (first open of a session) does not wait
        self._mid = self._read_range(mid, mid + 1, reference=True)
        real_mid = self._mid.astype(np.float64) * slope + intercept
        rescaled_ct = modality in MODALITY_WINDOWS and (slope != 1.0 or intercept != 0.0
                                                        or self._sl is not None)
        # the header windows most slices carry, the modality's defaults (rescaled
        # values), the histogram of the middle slice (the only one read yet)
        voted = voted_header_windows(fr.wc[rows_idx], fr.ww[rows_idx])
        presets = _windows(window_presets(real_mid, modality, voted, rescaled_ct))
        self._header = protocol.VolumeHeader(
            shape=self._shape, dtype=str(self._wire_dtype), affine_lps=plan.affine_lps.tolist(),
            spacing=list(plan.spacing), slope=slope, intercept=intercept,
            units=UNITS.get(modality, "") if rescaled_ct else "", windows=presets, kind=plan.kind,
            modality=modality, invert=bool(fmt0 is not None and fmt0.photometric == "MONOCHROME1"),
            labels=_labels(labels), value_range=[float(self._mid.min()), float(self._mid.max())],
            calibration=of_frame(fr.calibration, fr.ft, int(plan.frames[0, 0])),
            stack={"index": 0, "count": len(plans)})

    def _read_range(self, z0: int, z1: int, reference: bool = False) -> np.ndarray:
        from pocketpacs.images.frames import read_frames

        out = np.empty((z1 - z0,) + self._shape[1:], dtype=self._read_dtype)
        sl = None if self._sl is None else self._sl[z0:z1]
        ic = None if self._ic is None else self._ic[z0:z1]
        if reference:  # no compiled kernel: nothing to wait for
            read_frames(self.paths, self._fr.formats, self._refs[z0:z1], out, sl, ic,
                        reference_kernels=True)
            return out if out.dtype == self._wire_dtype else out.astype(self._wire_dtype)
        with NATIVE_LOCK:
            read_frames(self.paths, self._fr.formats, self._refs[z0:z1], out, sl, ic)
        return out if out.dtype == self._wire_dtype else out.astype(self._wire_dtype)

    def header(self) -> protocol.VolumeHeader:
        """Return the wire header.

        Returns
        -------
        VolumeHeader
        """
        return self._whole.header() if self._whole else self._header

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
        """Slices already read for the header (the middle one), by index.

        Returns
        -------
        dict
            Slice index -> ``(rows, cols)`` array of the wire dtype.
        """
        if self._whole is not None or self._mid is None:
            return {}
        return {self._shape[0] // 2: self._mid[0]}

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
        if z1 - z0 == 1 and z0 == self._shape[0] // 2 and self._mid is not None:
            out[:] = self._mid
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
        hdr, arr = header_for_volume(vol, {"series_description": name})
        super().__init__(hdr, arr)
