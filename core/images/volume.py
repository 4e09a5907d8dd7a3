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
from typing import Any, Sequence

import numpy as np

from . import calibration
from .decoders import DecoderPool, FrameError
from .mosaic import assemble_mosaics, mosaic_groups
from .resample import resample_z, shift_slices, z_weights
from .seriesframes import _Frames, frames_from_batch
from .stackplan import StackPlan
from .stackread import read_resampled, read_stack
from .stacksplit import plan_series
from .unreadable import frames_list, resampled_rows, rows_of_errors
from .volumevalue import NotAnImageError, SeriesVolumes, Volume, VolumeError
from .windows import voted_header_windows, window_presets

__all__ = ["NotAnImageError", "SeriesVolumes", "Volume", "VolumeError", "assemble_path", "assemble_series",
           "check_has_images", "dicom_files_in", "not_an_image_kind", "series_groups"]

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
    untiled: list[int] = []
    whys: set[str] = set()
    for group in mosaic_groups(fr):  # one stack per mosaic size
        n_excluded = len(report.excluded)
        mv = assemble_mosaics(spaths, fr, group, rescale, pool, report)
        if mv is not None:
            vols.append(mv)
            all_errors.extend(mv.errors)
        else:  # its tiling is unknown (no CSA header: e.g. a de-identified copy)
            reasons = {str(e["reason"]) for e in report.excluded[n_excluded:]}
            del report.excluded[n_excluded:]
            untiled.extend(group)
            whys.update("UIH" + r.split("UIH", 1)[1][:-1] if "UIH" in r      # "... (UIH ...)"
                        else "the Siemens CSA header that gives the tiling is missing or damaged"
                        for r in reasons)
    untiled_note = (f"{len(untiled)} mosaic file(s) shown as stored, tiled: the slices cannot be told "
                    f"apart ({'; '.join(sorted(whys)) or 'mosaic geometry unreadable'})")
    if untiled:  # planned again, those files as the plain images they are stored as
        fr = frames_from_batch(spaths, batch, plain=frozenset(untiled))
        plans, report2 = plan_series(fr.ft, tilt=tilt, spacing=spacing, paths=spaths)
        report2.excluded.extend(fr.excluded)
        report2.notes = report.notes + [n for n in report2.notes if n not in report.notes] + [untiled_note]
        report = report2
    if not plans and not vols:
        check_has_images(fr, len(spaths), False)
    for plan in plans:
        vol = _build(plan, fr, spaths, rescale, pool)
        if untiled and vol.report is not None and \
                set(fr.ft.file[plan.frames.reshape(-1)].tolist()) & set(untiled):
            vol.report.notes.append(untiled_note)
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
