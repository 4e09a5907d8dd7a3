"""The Volume value and series assembly.

:func:`assemble_series` turns the files of one series into
:class:`Volume` objects, one per stack, with an
:class:`~pocketpacs.images.assemblyreport.AssemblyReport` that says how the series was
split and what was corrected:

1. headers of every file (:func:`pocketpacs.dicom.headers.parse_files`; enhanced
   and legacy multi-frame files also through pydicom for their per-frame
   functional groups / Grid Frame Offset Vector);
2. a :class:`~pocketpacs.images.stackplan.FrameTable` of every 2D frame
   (:func:`pocketpacs.images.seriesframes.frames_from_batch`), split and
   ordered by :func:`pocketpacs.images.stacksplit.plan_series`;
3. one preallocated array per stack, filled by
   :func:`pocketpacs.images.frames.read_frames` (stored values, rescaled per frame
   into int16 when the rescale is exact and fits, float32 otherwise);
4. gantry tilt / irregular spacing corrections, window presets.

Array layout: ``[slice][row][col]`` or ``[volume][slice][row][col]``, colour
samples last.  ``affine_lps`` maps ``(col, row, slice, 1)`` to LPS mm.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import PocketPacsError
from . import calibration
from .affine import corner_voxels_world, lps_to_ras
from .assemblyreport import AssemblyReport, StackReport
from .decoders import DecoderPool, FrameError
from .resample import resample_z, shift_slices, z_weights
from .seriesframes import _Frames, frames_from_batch
from .stackplan import StackPlan
from .stackread import read_resampled, read_stack
from .stacksplit import plan_series
from .unreadable import frames_list, resampled_rows, rows_of_errors, summary
from .windows import WindowPreset, histogram_window, voted_header_windows, window_presets

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


#: Reasons of :func:`~pocketpacs.images.seriesframes.frames_from_batch` for a
#: file that holds no image pixels.
NO_PIXEL_REASONS = ("no image pixels", "no Pixel Data")
_SAFE_MODALITY = re.compile(r"^[A-Z0-9_ ]{1,16}$")
#: Names of private SOP classes of objects without pixels (pydicom knows none).
PRIVATE_SOP_NAMES = {"1.3.12.2.1107.5.9.1": "Siemens CSA Non-Image Storage (e.g. a Phoenix report)"}


def _kind_of(sop: str | None, modality: str | None) -> str:
    from pydicom.uid import UID

    name = PRIVATE_SOP_NAMES.get(sop or "", "")
    if sop and not name:
        try:
            n = UID(sop).name
        except Exception:
            n = ""
        name = n if n and n != sop else ""
    if not name and modality and _SAFE_MODALITY.match(modality):
        name = modality.strip()
    name = name or "unknown object"
    if name.endswith(" Image Storage"):  # an image object whose pixels are missing
        name += " without pixel data"
    return name


def not_an_image_kind(fr: _Frames) -> str | None:
    """What a series is when none of its files holds image pixels, else None.

    Parameters
    ----------
    fr : _Frames
        The series' frames (:func:`~pocketpacs.images.seriesframes.frames_from_batch`).

    Returns
    -------
    str or None
        The SOP Class name (pydicom's dictionary: fixed text, no header value)
        of every such file, else its Modality when that is a plain code, joined
        by ", " when they differ; None when some file holds an image (or is
        left out for another reason, such as bogus geometry).
    """
    if fr.ft.n or fr.mosaics or not fr.excluded:
        return None
    if any(str(e.get("reason")) not in NO_PIXEL_REASONS for e in fr.excluded):
        return None
    b = fr.batch
    try:
        sops = b.text("SOPClassUID")
    except KeyError:
        sops = [None] * len(fr.modality)
    kinds = list(dict.fromkeys(_kind_of(s, m) for s, m in zip(sops, fr.modality)))
    return ", ".join(kinds[:3]) + (" ..." if len(kinds) > 3 else "")


def check_has_images(fr: _Frames, n_paths: int, has_images: bool) -> None:
    """Raise when a series' frames give no volume at all.

    Parameters
    ----------
    fr : _Frames
    n_paths : int
        Files of the series.
    has_images : bool
        Whether stacks were planned (or mosaics read) from ``fr``: then this
        returns at once.

    Raises
    ------
    NotAnImageError
        When no file holds image pixels (reports, SR, RT, waveforms...).
    VolumeError
        When no frame can be used for another reason (said without header values).
    """
    if has_images:
        return
    kind = not_an_image_kind(fr)
    if kind is not None:
        raise NotAnImageError(kind)
    why = ""
    if fr.excluded:  # e.g. bogus geometry: say why (reasons name no header values)
        reasons = sorted({str(e["reason"]) for e in fr.excluded})
        why = "; " + "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else "")
    raise VolumeError(f"no image frames among {n_paths} file(s){why}")


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


def assemble_series(paths: Sequence[str | os.PathLike[str]], *, tilt: str = "resample",
                    spacing: str = "resample", rescale: bool = True,
                    pool: DecoderPool | None = None, batch: Any = None) -> SeriesVolumes:
    """Assemble the files of one series into volumes (one per stack).

    Parameters
    ----------
    paths : sequence of path-like
        Files of one series (any order; non-image files are excluded and
        reported).
    tilt : {"resample", "shear"}
        Gantry tilt correction (see :func:`pocketpacs.images.stacksplit.plan_series`).
    spacing : {"resample", "keep"}
        Irregular spacing policy.
    rescale : bool
        Apply Rescale Slope/Intercept (default).  With False the arrays hold
        the stored values in their stored dtype.
    pool : DecoderPool, optional
        Worker pool for compressed pixel data.
    batch : HeaderBatch, optional
        Headers already parsed for ``paths``.

    Returns
    -------
    SeriesVolumes

    Raises
    ------
    VolumeError
        When no file holds an image.
    """
    from ..dicom.headers import parse_files

    spaths = [os.fspath(p) for p in paths]
    if batch is None:
        batch = parse_files(spaths)
    fr = frames_from_batch(spaths, batch)
    plans, report = plan_series(fr.ft, tilt=tilt, spacing=spacing, paths=spaths)
    report.excluded.extend(fr.excluded)
    vols: list[Volume] = []
    all_errors: list[FrameError] = []
    for group in mosaic_groups(fr):  # one stack per mosaic size
        mv = _assemble_mosaics(spaths, fr, group, rescale, pool, report)
        if mv is not None:
            vols.append(mv)
            all_errors.extend(mv.errors)
    if not plans and not vols:
        check_has_images(fr, len(spaths), False)
    for plan in plans:
        vol = _build(plan, fr, spaths, rescale, pool)
        all_errors.extend(vol.errors)
        vols.append(vol)
    if fr.mosaics and len(vols) > 1:  # mosaics and stacks, or mosaics of several sizes
        vols.sort(key=lambda v: -v.array.size)
    for si, v in enumerate(vols):
        v.stack_index = si
        if v.report is not None:
            v.report.index = si
    report.stacks = [v.report for v in vols if v.report is not None]
    report.n_frames += len(fr.mosaics)
    if all_errors:
        report.notes.append(f"{len(all_errors)} frame(s)/file(s) could not be decoded "
                            f"(left as zeros; see errors)")
    return SeriesVolumes(vols, report, all_errors)


def _build(plan: StackPlan, fr: _Frames, paths: list[str], rescale: bool,
           pool: DecoderPool | None) -> Volume:
    rows_idx = plan.frames.reshape(-1)
    files = fr.ft.file[rows_idx]
    fmts = [fr.formats[int(f)] for f in np.unique(files)]
    sl, ic = fr.slope[rows_idx], fr.intercept[rows_idx]
    t, k = plan.frames.shape
    shape: tuple[int, ...] = (t * k, plan.rows, plan.cols)
    if plan.samples > 1:
        shape += (plan.samples,)
    refs = np.stack([files, fr.ft.frame[rows_idx]], axis=1)
    if (plan.z_target is not None and plan.z_source is not None and t == 1
            and plan.in_plane_shift is None and k >= 2):
        # resampled while reading: never the source and the result together
        arr, applied, errors = read_resampled(paths, fr.formats, refs, shape, fmts,  # type: ignore[arg-type]
                                              sl, ic, rescale, pool, plan.z_source,
                                              plan.z_target)
    else:
        out, applied, errors = read_stack(paths, fr.formats, refs, shape, fmts,  # type: ignore[arg-type]
                                          sl, ic, rescale, pool)
        arr = out.reshape(((t,) if t > 1 else ()) + (k,) + shape[1:])
        if plan.in_plane_shift is not None:
            fill = float(arr.min()) if arr.size else 0.0
            shift_slices(arr, plan.in_plane_shift, fill, plan.samples)
        if plan.z_target is not None and plan.z_source is not None:
            arr = resample_z(arr, plan.z_source, plan.z_target, four_d=t > 1)
    plan.report.shape = list(arr.shape)
    # the slices undecodable frames left as zeros (after resampling: those blended from one)
    unreadable = rows_of_errors(paths, refs, errors)
    if unreadable and plan.z_target is not None and plan.z_source is not None and k >= 2:
        unreadable = resampled_rows(unreadable, k, *z_weights(plan.z_source, plan.z_target))
    plan.report.unreadable_frames = frames_list(unreadable, arr.shape[1 if t > 1 else 0])
    mid = int(plan.frames[0, plan.frames.shape[1] // 2])
    stack_frames = plan.frames.reshape(-1)
    hdr = []
    # the windows most frames of the stack carry, not the middle slice's alone
    for c, w in voted_header_windows(fr.wc[stack_frames], fr.ww[stack_frames]):
        if not applied:
            s, b = fr.slope[mid], fr.intercept[mid]
            c, w = (c - b) / s, w / abs(s)
        hdr.append((c, w))
    i0 = int(plan.frames[0, 0])
    fi0 = int(fr.ft.file[i0])
    modality = fr.modality[fi0]
    fmt0 = fr.formats[fi0]
    presets = window_presets(arr, modality, hdr, applied, plan.samples)
    cal = calibration.of_frame(fr.calibration, fr.ft, i0)
    if cal["kind"] != "patient" and cal["note"] not in plan.report.notes:
        plan.report.notes.append(cal["note"])
    palette = None
    if fmt0 is not None and fmt0.photometric == "PALETTE COLOR" and plan.samples == 1:
        from .colour import ColourError, palette_of

        try:
            palette = palette_of(paths[fi0])
        except ColourError:  # shown as its indices, and the report says why (no path: it
            # reaches the page)
            plan.report.notes.append("PALETTE COLOR without a usable palette: shown as stored values")
    return Volume(array=arr, affine_lps=plan.affine_lps, spacing=plan.spacing, modality=modality,
                  kind=plan.kind, window_presets=presets, report=plan.report,
                  photometric=fmt0.photometric if fmt0 else "MONOCHROME2", rescaled=applied,
                  series_uid=fr.series_uid[fi0], errors=errors, calibration=cal, palette=palette,
                  unreadable=unreadable)


def mosaic_groups(fr: _Frames) -> list[list[int]]:
    """The mosaic files of a series by image size, each group in volume order.

    Mosaics of different sizes (a series holding two acquisitions) are
    different stacks: they are never read into one array.

    Parameters
    ----------
    fr : _Frames

    Returns
    -------
    list of list of int
        Indices into the series' files (:func:`mosaic_order`), one list per
        ``(rows, cols)`` of the stored image, in the order the sizes are first seen.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i in fr.mosaics:
        f = fr.formats[i]
        groups.setdefault((f.rows, f.cols) if f is not None else (0, 0), []).append(i)
    return [mosaic_order(fr, g) for g in groups.values()]


def mosaic_order(fr: _Frames, idx: Sequence[int] | None = None) -> list[int]:
    """Mosaic files of a series in volume order (acquisition, instance, file).

    Parameters
    ----------
    fr : _Frames
    idx : sequence of int, optional
        The files to order (default: every mosaic of the series).

    Returns
    -------
    list of int
        Indices into the series' files.
    """
    idx = list(fr.mosaics if idx is None else idx)
    b = fr.batch
    inst = b.number("InstanceNumber")[idx]
    acq = b.number("AcquisitionNumber")[idx]
    order = np.lexsort((np.array(idx), np.where(np.isfinite(inst), inst, np.inf),
                        np.where(np.isfinite(acq), acq, np.inf)))
    return [idx[j] for j in order]


#: Private creator of the UIH image header (group 0065).
UIH_CREATOR = "Image Private Header"


def _uih_private(ds: Any, element: int) -> Any:
    """Value of UIH private element (0065,xxNN) under :data:`UIH_CREATOR`, or None."""
    try:
        blk = ds.private_block(0x0065, UIH_CREATOR)
        tag = blk.get_tag(element)
    except KeyError:
        tag = 0x00651000 | element          # no creator element: the usual block 0x10
    el = ds.get(tag)
    return None if el is None else el.value


def uih_grid_geometry(ds: Any, rows: int, cols: int) -> tuple[int, int, int, np.ndarray, str]:
    """Slice count, grid and affine of a UIH ``VFRAME`` mosaic (an fMRI/DTI grid).

    As dcm2niix and GDCM read them: the slice count is (0065,1050) "Number
    Of Images In Grid" (DS, private creator "Image Private Header"); the
    tiles fill a grid of ``ceil(sqrt(n))`` columns and ``ceil(n / columns)``
    rows, row by row; unlike Siemens mosaics, Image Position (Patient) is
    that of the first tile (no mosaic-size correction: dcm2niix applies it to
    Siemens only).  The slice vector comes from the per-tile positions of
    the VFrame Sequence (0065,1051) when it has one item per slice (first to
    last), else the normal ``row x column`` direction times Spacing Between
    Slices (else Slice Thickness).

    Parameters
    ----------
    ds : pydicom.Dataset
        The mosaic's header.
    rows, cols : int
        Stored image size (the whole grid).

    Returns
    -------
    n : int
        Slices.
    ncol, nrow : int
        Tiles per grid row, grid rows.
    affine_lps : ndarray, (4, 4)
        Maps ``(col, row, slice, 1)`` of the tiled-apart volume to LPS mm.
    note : str
        How the slice vector was found.

    Raises
    ------
    ValueError
        When the slice count, orientation or spacing is missing or does not fit the image.
    """
    n_raw = _uih_private(ds, 0x50)
    if isinstance(n_raw, (list, tuple)) or hasattr(n_raw, "__len__") and not isinstance(n_raw, (str, bytes)):
        n_raw = None                                 # (0065,1050) read as a sequence: not the count
    seq = _uih_private(ds, 0x51)
    seq = list(seq) if seq is not None and not isinstance(seq, (str, bytes, int, float)) else []
    try:
        n = int(round(float(n_raw))) if n_raw not in (None, "") else len(seq)
    except (TypeError, ValueError):
        n = len(seq)
    if n < 1:
        raise ValueError("UIH VFRAME without its slice count (0065,1050)")
    ncol = int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    if rows % nrow or cols % ncol:
        raise ValueError(f"UIH VFRAME of {rows}x{cols} does not divide into {nrow}x{ncol} tiles of {n} slices")
    iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
    ps = [float(v) for v in ds.PixelSpacing]
    rdir, cdir = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(rdir, cdir)
    pos = []
    for item in seq:
        ipp = item.get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            pos = []
            break
        pos.append([float(v) for v in ipp])
    if len(pos) == n and n > 1:
        first = np.asarray(pos[0])
        step = (np.asarray(pos[-1]) - first) / (n - 1)
        note = "slice vector from the VFrame Sequence's first and last positions"
    else:
        first = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        dz = ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
        if dz in (None, "") or float(dz) <= 0:
            raise ValueError("UIH VFRAME without per-slice positions or slice spacing")
        step = normal * float(dz)
        note = "slice vector: the row x column normal times the slice spacing"
    aff = np.eye(4)
    aff[:3, 0] = rdir * ps[1]
    aff[:3, 1] = cdir * ps[0]
    aff[:3, 2] = step
    aff[:3, 3] = first
    return n, ncol, nrow, aff, note


def _assemble_mosaics(paths: list[str], fr: _Frames, idx: list[int], rescale: bool,
                      pool: DecoderPool | None, report: AssemblyReport) -> Volume | None:
    """Mosaics of one size (``idx``, in volume order): one file = one volume (slices
    tiled); several files = 4D.  Siemens ``MOSAIC`` (geometry by nibabel's CSA
    reader) or UIH ``VFRAME`` (:func:`uih_grid_geometry`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    b = fr.batch
    fmt = fr.formats[idx[0]]
    assert fmt is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from ..dicom.fallback import read_dataset_capped

            ds = read_dataset_capped(paths[idx[0]], stop_before_pixels=True)
            itype = {str(v).strip().upper() for v in (ds.get("ImageType") or [])}
            uih = "VFRAME" in itype and "MOSAIC" not in itype
            if uih:
                nsl, ncol, nrow, aff, how = uih_grid_geometry(ds, fmt.rows, fmt.cols)
            else:
                w = dicomwrappers.wrapper_from_data(ds)
                nsl = int(w.n_mosaic)
                # nibabel's affine maps (row, col, slice); ours maps (col, row, slice)
                aff = np.asarray(w.affine, dtype=np.float64)[:, [1, 0, 2, 3]].copy()
                ncol = nrow = int(np.ceil(np.sqrt(nsl)))
        except Exception as exc:
            why = str(exc) if isinstance(exc, ValueError) and str(exc).startswith("UIH") else type(exc).__name__
            for i in idx:
                report.excluded.append({"file": paths[i], "reason": f"mosaic geometry unreadable ({why})"})
            return None
    rows, cols = fmt.rows // nrow, fmt.cols // ncol
    sl = b.number("RescaleSlope")[idx]
    ic = b.number("RescaleIntercept")[idx]
    sl = np.where(np.isfinite(sl) & (sl != 0), sl, 1.0)
    ic = np.where(np.isfinite(ic), ic, 0.0)
    t = len(idx)
    fmts_m = [fr.formats[i] for i in idx]
    refs_all = np.stack([np.array(idx, dtype=np.int64), np.zeros(t, dtype=np.int64)], axis=1)
    # one mosaic at a time into the tiled-apart array: peak = the array + one mosaic
    arr = None
    errors: list[FrameError] = []
    bad_volumes: dict[int, str] = {}        # a mosaic that could not be read: every slice of its volume
    applied = False
    for v in range(t):
        one, applied, errs = read_stack(paths, fr.formats, refs_all[v:v + 1],  # type: ignore[arg-type]
                                        (1, fmt.rows, fmt.cols), fmts_m, sl[v:v + 1],
                                        ic[v:v + 1], rescale, pool)
        errors.extend(errs)
        for why in rows_of_errors(paths, refs_all[v:v + 1], errs).values():
            bad_volumes.setdefault(v, why)
        if arr is None or np.result_type(arr.dtype, one.dtype) != arr.dtype:
            dt = one.dtype if arr is None else np.result_type(arr.dtype, one.dtype)
            new_arr = np.empty((t, nsl, rows, cols), dtype=dt)
            if arr is not None:
                new_arr[:v] = arr[:v]
            arr = new_arr
        for k in range(nsl):
            r0, c0 = (k // ncol) * rows, (k % ncol) * cols
            arr[v, k] = one[0, r0:r0 + rows, c0:c0 + cols]
    assert arr is not None
    r_c = np.cross(aff[:3, 0], aff[:3, 1])
    if np.dot(r_c, aff[:3, 2]) < 0:  # store slices in ascending order along the normal
        for k in range(nsl // 2):  # reverse the slices in place (no second array)
            tmp = arr[:, k].copy()
            arr[:, k] = arr[:, nsl - 1 - k]
            arr[:, nsl - 1 - k] = tmp
        aff[:3, 3] = aff[:3, 3] + (nsl - 1) * aff[:3, 2]
        aff[:3, 2] = -aff[:3, 2]
    if t == 1:
        arr = arr[0]
    arr = np.ascontiguousarray(arr)
    spacing = tuple(float(np.linalg.norm(aff[:3, j])) for j in range(3))
    rep = StackReport(index=0, kind="volume", shape=list(arr.shape), n_frames=t,
                      key={"rows": rows, "cols": cols, "samples": 1, "localizer": False,
                           "mosaic": True, "mosaic_size": [fmt.rows, fmt.cols]},
                      n_positions=nsl, n_volumes=t,
                      fourth_axis="acquisition number" if t > 1 else None,
                      pixel_spacing_mm=[spacing[1], spacing[0]],
                      spacing_mm=list(spacing), affine_lps=aff.tolist(),
                      affine_ras=lps_to_ras(aff).tolist(),
                      notes=[(f"UIH VFRAME grid: {nsl} slices tiled {nrow}x{ncol} per file ({how})" if uih
                              else f"Siemens mosaic: {nsl} slices tiled {ncol}x{nrow} per file")
                             + (f", {t} volumes (4D)" if t > 1 else "")])
    unreadable = {v * nsl + z: why for v, why in sorted(bad_volumes.items()) for z in range(nsl)}
    rep.unreadable_frames = frames_list(unreadable, nsl)
    i0 = idx[0]
    c, wdt = b.number("WindowCenter")[i0], b.number("WindowWidth")[i0]
    presets = window_presets(arr, fr.modality[i0], [(c, wdt)], applied)
    return Volume(array=arr, affine_lps=aff, spacing=spacing,  # type: ignore[arg-type]
                  modality=fr.modality[i0], kind="volume", window_presets=presets, report=rep,
                  photometric=fmt.photometric, rescaled=applied, series_uid=fr.series_uid[i0],
                  errors=errors, unreadable=unreadable)


def dicom_files_in(folder: str | os.PathLike[str]) -> list[str]:
    """Regular files under a folder (recursively), sorted; DICOMDIRs left out."""
    out: list[str] = []
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if f.upper() == "DICOMDIR":
                continue
            out.append(os.path.join(root, f))
    return sorted(out)


def assemble_path(path: str | os.PathLike[str], **kwargs: Any) -> list[SeriesVolumes]:
    """Assemble every series found in a file or folder (no archive needed).

    Parameters
    ----------
    path : path-like
        A DICOM file or a folder of DICOM files (several series allowed).
    **kwargs
        Passed to :func:`assemble_series`.

    Returns
    -------
    list of SeriesVolumes
        One per Series Instance UID, in the order first seen.  A file
        without a usable Series Instance UID (absent, or empty: only padding
        or white space) is never grouped with other files: it is read on its
        own, and its report notes which file and why.
    """
    out = []
    for sub, note in series_groups(path):
        try:
            sv = assemble_series(sub, **kwargs)
        except VolumeError:
            continue
        if note and sv.report is not None:
            sv.report.notes.append(note)
        out.append(sv)
    return out


def series_groups(path: str | os.PathLike[str]) -> list[tuple[list[str], str | None]]:
    """The files of a file or folder grouped by series (what :func:`assemble_path` assembles).

    Parameters
    ----------
    path : path-like
        A DICOM file or a folder of DICOM files.

    Returns
    -------
    list of (files, note)
        One group per Series Instance UID, in the order first seen; a file
        without a usable Series Instance UID (absent, or empty: only padding or
        white space) is a group of its own, with a note saying which file and
        why (else the note is None).  Files that are not DICOM are left out.
    """
    from ..dicom.headers import parse_files

    p = os.fspath(path)
    files = dicom_files_in(p) if os.path.isdir(p) else [p]
    batch = parse_files(files)
    uids = batch.text("SeriesInstanceUID")
    blank = batch.uid_blank("SeriesInstanceUID")
    groups: dict[str | int, list[int]] = {}
    alone: dict[int, str] = {}  # file index -> why it has no series to join
    for i, u in enumerate(uids):
        if batch.status[i] < 0:
            continue
        if u is None or blank[i]:
            alone[i] = "no SeriesInstanceUID" if u is None else "empty SeriesInstanceUID"
            groups[i] = [i]
            continue
        groups.setdefault(u, []).append(i)
    return [([files[i] for i in idx],
             f"{files[g]}: {alone[g]}: read on its own, not grouped with other files"
             if isinstance(g, int) else None)
            for g, idx in groups.items()]
