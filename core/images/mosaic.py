"""Mosaic series: Siemens ``MOSAIC`` and UIH ``VFRAME`` files, each holding a tiled volume.

:func:`mosaic_groups` splits a series' mosaics by image size, each group in
volume order; :func:`assemble_mosaics` reads one group into a 3D (one file)
or 4D (several files) :class:`~pocketpacs.images.volumevalue.Volume`,
the slices tiled apart, with the geometry nibabel's CSA reader gives for
Siemens and :func:`uih_grid_geometry` (as dcm2niix reads it) for UIH.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from .affine import lps_to_ras
from .assemblyreport import AssemblyReport, StackReport
from .decoders import DecoderPool, FrameError
from .seriesframes import _Frames
from .stackread import read_stack
from .unreadable import frames_list, rows_of_errors
from .volumevalue import Volume
from .windows import window_presets


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


def assemble_mosaics(paths: list[str], fr: _Frames, idx: list[int], rescale: bool,
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
