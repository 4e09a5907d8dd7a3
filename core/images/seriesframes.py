"""The per-frame table of a series, built from its header batch.

:func:`frames_from_batch` turns the parsed headers of a series' files into
one :class:`~pocketpacs.images.stackplan.FrameTable` row per 2D frame (position,
orientation, pixel spacing, size, echo, acquisition, temporal position,
instance, thickness, image type, stack id) plus per-frame rescale and window
columns, the files' pixel formats, and the files left out (with the reason)
or set aside as Siemens mosaics.  Enhanced and legacy multi-frame files are
read through pydicom for their per-frame functional groups / Grid Frame
Offset Vector (:func:`_multiframe_rows`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import calibration
from .affine import GeometryError, normal_from_orientation
from .pixelformat import PixelFormat, format_problem, formats_from_batch
from .stackplan import FrameTable

@dataclass
class _Frames:
    ft: FrameTable
    slope: np.ndarray
    intercept: np.ndarray
    wc: np.ndarray
    ww: np.ndarray
    formats: list[PixelFormat | None]
    modality: list[str | None]
    series_uid: list[str | None]
    excluded: list[dict[str, Any]]
    mosaics: list[int] = field(default_factory=list)
    batch: Any = None
    #: file index -> calibration of the files without Pixel Spacing (see calibration.py)
    calibration: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: the series' files (file indices of the frame table index it)
    paths: list[str] = field(default_factory=list)
    #: Diffusion b-value per frame where the frame table knows it (enhanced
    #: multi-frame MR: MR Diffusion Sequence), else NaN: see :func:`frame_bvalues`
    bvalue: np.ndarray = field(default_factory=lambda: np.zeros(0))


#: Image Type values of mosaics: Siemens ``MOSAIC``, UIH ``VFRAME`` (a grid of slices).
MOSAIC_TYPES = frozenset({"MOSAIC", "VFRAME"})


def is_mosaic(image_type: str | None) -> bool:
    """Whether an Image Type value marks a mosaic (many slices tiled in one image).

    Parameters
    ----------
    image_type : str or None
        The Image Type value (backslash-separated).

    Returns
    -------
    bool
        True for Siemens ``MOSAIC`` and UIH ``VFRAME`` (fMRI/DTI grids; their
        slice count is in private group 0065, see
        :func:`pocketpacs.images.mosaic.uih_grid_geometry`).
    """
    return bool(image_type) and not MOSAIC_TYPES.isdisjoint(
        t.strip().upper() for t in image_type.split("\\"))


def _fg(item: Any, seq: str, attr: str) -> Any:
    if item is None:
        return None
    s = item.get(seq)
    if not s:
        return None
    v = s[0].get(attr)
    return v


def _floats(v: Any, n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    if v is None or v == "":
        return out
    try:
        vals = list(v) if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(v, str) else [v]
        for i, x in enumerate(vals[:n]):
            out[i] = float(x)
    except (TypeError, ValueError):
        pass
    return out


def _multiframe_rows(path: str, fmt: PixelFormat, fi: int) -> dict[str, Any] | None:
    """Per-frame values of a multi-frame file via pydicom (None: not readable)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ..dicom.fallback import read_dataset_capped

            ds = read_dataset_capped(path, stop_before_pixels=True)
    except Exception:
        return None
    n = fmt.nframes
    pos = np.full((n, 3), np.nan)
    ori = np.full((n, 6), np.nan)
    ps = np.full((n, 2), np.nan)
    th = np.full(n, np.nan)
    sl = np.full(n, np.nan)
    ic = np.full(n, np.nan)
    temporal = np.full(n, np.nan)
    echo = np.full(n, np.nan)
    wc = np.full(n, np.nan)
    ww = np.full(n, np.nan)
    bval = np.full(n, np.nan)
    stack: list[str | None] = [None] * n
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and len(per) >= n:
        for i in range(n):
            f = per[i]

            def get(seq: str, attr: str, f: Any = f) -> Any:
                v = _fg(f, seq, attr)
                return v if v is not None else _fg(shared, seq, attr)

            pos[i] = _floats(get("PlanePositionSequence", "ImagePositionPatient"), 3)
            ori[i] = _floats(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
            ps[i] = _floats(get("PixelMeasuresSequence", "PixelSpacing"), 2)
            th[i] = _floats(get("PixelMeasuresSequence", "SliceThickness"), 1)[0]
            sl[i] = _floats(get("PixelValueTransformationSequence", "RescaleSlope"), 1)[0]
            ic[i] = _floats(get("PixelValueTransformationSequence", "RescaleIntercept"), 1)[0]
            temporal[i] = _floats(get("FrameContentSequence", "TemporalPositionIndex"), 1)[0]
            echo[i] = _floats(get("MREchoSequence", "EffectiveEchoTime"), 1)[0]
            wc[i] = _floats(get("FrameVOILUTSequence", "WindowCenter"), 1)[0]
            ww[i] = _floats(get("FrameVOILUTSequence", "WindowWidth"), 1)[0]
            bval[i] = _floats(get("MRDiffusionSequence", "DiffusionBValue"), 1)[0]
            sid = get("FrameContentSequence", "StackID")
            stack[i] = str(sid) if sid is not None else None
        # top-level fallbacks
        for arr, kw, cnt in ((pos, "ImagePositionPatient", 3), (ori, "ImageOrientationPatient", 6),
                             (ps, "PixelSpacing", 2)):
            if np.isnan(arr).all() and kw in ds:
                arr[:] = _floats(ds.get(kw), cnt)
    else:
        ipp = _floats(ds.get("ImagePositionPatient"), 3)
        iop = _floats(ds.get("ImageOrientationPatient"), 6)
        ps[:] = _floats(ds.get("PixelSpacing"), 2)
        th[:] = _floats(ds.get("SliceThickness"), 1)[0]
        sl[:] = _floats(ds.get("RescaleSlope"), 1)[0]
        ic[:] = _floats(ds.get("RescaleIntercept"), 1)[0]
        wc[:] = _floats(ds.get("WindowCenter"), 1)[0]
        ww[:] = _floats(ds.get("WindowWidth"), 1)[0]
        gfov = ds.get("GridFrameOffsetVector")
        if gfov is not None and np.all(np.isfinite(ipp)) and np.all(np.isfinite(iop)):
            off = _floats(gfov, n)
            try:
                nrm = normal_from_orientation(iop)
            except GeometryError:
                nrm = None
            if nrm is not None and np.all(np.isfinite(off)):
                if off[0] != 0.0:  # absolute offsets (axial only, PS3.3 C.8.8.3.2)
                    off = off - float(ipp @ nrm)
                pos[:] = ipp[None, :] + off[:, None] * nrm[None, :]
                ori[:] = iop
        elif n == 1:
            pos[0], ori[0] = ipp, iop
        # otherwise: frames without per-frame positions -> a sequence
    return {"pos": pos, "ori": ori, "ps": ps, "th": th, "sl": sl, "ic": ic,
            "temporal": temporal, "echo": echo, "wc": wc, "ww": ww, "stack": stack, "bval": bval}


def frames_from_batch(paths: Sequence[str], batch: Any, plain: frozenset[int] = frozenset()) -> _Frames:
    """Build the per-frame table of a series from a header batch.

    Parameters
    ----------
    paths : sequence of str
    batch : HeaderBatch
        Headers of ``paths`` (same order).
    plain : frozenset of int
        Files whose Image Type says mosaic but whose tiling cannot be known
        (no CSA header): planned as the plain images they are stored as.

    Returns
    -------
    _Frames
        The frame table plus rescale, window, format and exclusion columns.
    """
    formats = formats_from_batch(batch)
    V = batch.values
    ipp, iop, psp = V("ImagePositionPatient"), V("ImageOrientationPatient"), V("PixelSpacing")
    num = {k: batch.number(k) for k in ("SliceThickness", "EchoNumbers", "AcquisitionNumber",
                                        "TemporalPositionIdentifier", "InstanceNumber",
                                        "RescaleSlope", "RescaleIntercept", "WindowCenter",
                                        "WindowWidth")}
    itype = batch.text("ImageType")
    modality = batch.text("Modality")
    suid = batch.text("SeriesInstanceUID")
    sop = batch.text("SOPClassUID")
    excluded: list[dict[str, Any]] = []
    mosaics: list[int] = []
    # per file: -1 left out, 0 one frame from the batch columns, 1 per-frame values via pydicom
    how = np.full(batch.n, -1, dtype=np.int8)
    nfr = np.ones(batch.n, dtype=np.int64)
    mf_rows: dict[int, dict[str, Any] | None] = {}
    for i in range(batch.n):
        fmt = formats[i]
        if fmt is None:
            excluded.append({"file": str(paths[i]), "reason": batch.reason[i] or "unreadable"})
            continue
        if fmt.rows <= 0 or fmt.cols <= 0:
            excluded.append({"file": str(paths[i]), "reason": "no image pixels"})
            continue
        problem = format_problem(fmt, int(batch.size[i]),
                                 gzipped=batch.fallback_reason[i] == "gzip-compressed file")
        if problem is not None:  # bogus geometry: nothing is allocated from it
            excluded.append({"file": str(paths[i]), "reason": problem})
            continue
        if fmt.offset < 0 and batch.status[i] == 0 and not fmt.encapsulated:
            # before the mosaic check: a mosaic header without its pixels is no image
            excluded.append({"file": str(paths[i]), "reason": "no Pixel Data"})
            continue
        if fmt.nframes == 1 and itype[i] and is_mosaic(itype[i]) and i not in plain:
            mosaics.append(i)
            continue
        n = fmt.nframes
        nfr[i] = n
        sp = sop[i] or ""
        if n > 1 or sp.startswith("1.2.840.10008.5.1.4.1.1.4.1") or \
                sp == "1.2.840.10008.5.1.4.1.1.2.1":
            how[i] = 1
            mf_rows[i] = _multiframe_rows(str(paths[i]), fmt, i)
        else:
            how[i] = 0
    keep = np.nonzero(how >= 0)[0]
    counts = nfr[keep]
    file_col = np.repeat(keep, counts)
    m = int(file_col.size)
    starts = np.zeros(keep.size, dtype=np.int64)
    if keep.size:
        np.cumsum(counts[:-1], out=starts[1:])
    frame_col = np.arange(m, dtype=np.int64) - np.repeat(starts, counts)
    # the batch columns per frame (single-frame files: exactly their values)
    one = how[file_col] == 0
    nan3, nan6 = np.full(3, np.nan), np.full(6, np.nan)
    pos = np.where(one[:, None], ipp[file_col], nan3) if m else np.zeros((0, 3))
    ori = np.where(one[:, None], iop[file_col], nan6) if m else np.zeros((0, 6))
    col = {k: v[file_col] for k, v in num.items()}
    ps = psp[file_col]
    stack: list[str | None] = [None] * m
    bval = np.full(m, np.nan)
    g_rows, g_cols, g_smp = (np.array([(f.rows, f.cols, f.samples) if f is not None else (0, 0, 1)
                                       for f in formats], dtype=np.int64).reshape(-1, 3).T)
    for i, mf in mf_rows.items():
        j0 = int(starts[np.searchsorted(keep, i)])
        sel = slice(j0, j0 + int(nfr[i]))
        if mf is None:  # unreadable per-frame data: batch values for the first frame only
            if nfr[i] == 1:
                pos[sel], ori[sel] = ipp[i], iop[i]
            continue
        pos[sel], ori[sel], ps[sel] = mf["pos"], mf["ori"], mf["ps"]
        for key, name in (("th", "SliceThickness"), ("sl", "RescaleSlope"),
                          ("ic", "RescaleIntercept"), ("temporal", "TemporalPositionIdentifier")):
            col[name][sel] = mf[key]
        for key, name in (("echo", "EchoNumbers"), ("wc", "WindowCenter"), ("ww", "WindowWidth")):
            v = mf[key]
            col[name][sel] = np.where(np.isfinite(v), v, num[name][i])
        stack[sel] = mf["stack"]
        bval[sel] = mf["bval"]
    # no Pixel Spacing: Imager Pixel Spacing or ultrasound regions, else uncalibrated
    calib = calibration.fill_missing_spacing(paths, file_col, ps)
    it_list = [itype[i] or "" for i in file_col.tolist()]
    ft = FrameTable(
        file=file_col, frame=frame_col, position=pos.reshape(m, 3),
        orientation=ori.reshape(m, 6), pixel_spacing=ps.reshape(m, 2),
        rows=g_rows[file_col], cols=g_cols[file_col], samples=g_smp[file_col],
        echo=col["EchoNumbers"], acquisition=col["AcquisitionNumber"],
        temporal=col["TemporalPositionIdentifier"], instance=col["InstanceNumber"],
        slice_thickness=col["SliceThickness"], image_type=it_list, stack_id=stack)
    cols = {"sl": col["RescaleSlope"], "ic": col["RescaleIntercept"], "wc": col["WindowCenter"],
            "ww": col["WindowWidth"]}
    sl = np.array(cols["sl"], dtype=np.float64)
    ic = np.array(cols["ic"], dtype=np.float64)
    sl = np.where(np.isfinite(sl) & (sl != 0), sl, 1.0)
    ic = np.where(np.isfinite(ic), ic, 0.0)
    return _Frames(ft, sl, ic, np.array(cols["wc"], dtype=np.float64),
                   np.array(cols["ww"], dtype=np.float64), formats, modality, suid, excluded,
                   mosaics, batch, calib, [str(p) for p in paths], bval)


# --------------------------------------------------------------------------
# b-values (the 4th axis of diffusion series)
# --------------------------------------------------------------------------
#: Where a file's diffusion b-value is, in the order looked at (as dcm2niix
#: reads them): the standard Diffusion b-value (0018,9087, FD, also inside the
#: MR Diffusion Sequence of enhanced files), then the vendors' private
#: elements, each only in files of that manufacturer: Siemens "B_value"
#: (0019,100C, IS), GE "slop_int_6" (0043,1039, IS, its first value) and
#: Philips "Diffusion_B_Factor" (2001,1003, FL).
BVALUE_TAGS: tuple[tuple[int, str, str | None], ...] = (
    (0x00189087, "FD", None),
    (0x0019100C, "IS", "SIEMENS"),
    (0x00431039, "IS", "GE"),
    (0x20011003, "FL", "PHILIPS"),
)


def _element_number(value: Any, vr: str, little_endian: bool = True) -> float:
    """The first number of an element's value (decoded, or raw bytes of an UN element)."""
    import struct

    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
        end = "<" if little_endian else ">"
        if vr == "FD" and len(raw) >= 8:
            return float(struct.unpack(end + "d", raw[:8])[0])
        if vr == "FL" and len(raw) >= 4:
            return float(struct.unpack(end + "f", raw[:4])[0])
        value = raw.decode("ascii", "ignore").strip("\x00 ").split("\\")[0]
    elif isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, str)):
        value = list(value)[0] if len(list(value)) else None
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return v if np.isfinite(v) and v >= 0 else float("nan")


def bvalue_of_dataset(ds: Any) -> float:
    """A data set's diffusion b-value (s/mm²), NaN when it has none.

    Parameters
    ----------
    ds : pydicom.Dataset
        The header (pixels not needed).

    Returns
    -------
    float
        From :data:`BVALUE_TAGS` in order; private elements only in files of
        their manufacturer.
    """
    maker = str(ds.get("Manufacturer", "") or "").upper()
    little = bool(getattr(ds, "is_little_endian", True) in (True, None))
    for tag, vr, vendor in BVALUE_TAGS:
        if vendor is not None and vendor not in maker:
            continue
        el = ds.get(tag)
        if el is None:
            continue
        v = _element_number(el.value, vr, little)
        if np.isfinite(v):
            return v
    for grp in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        g = ds.get(grp)
        v = _floats(_fg(g[0] if g else None, "MRDiffusionSequence", "DiffusionBValue"), 1)[0]
        if np.isfinite(v):
            return float(v)
    return float("nan")


def bvalue_of_file(path: str) -> float:
    """The diffusion b-value of a DICOM file (:func:`bvalue_of_dataset`), NaN when it
    has none or cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ..dicom.fallback import read_dataset_capped

            ds = read_dataset_capped(path, stop_before_pixels=True)
    except Exception:
        return float("nan")
    return bvalue_of_dataset(ds)


def frame_bvalues(fr: _Frames, rows: np.ndarray) -> np.ndarray | None:
    """The b-values of some frames (e.g. the first frame of each volume of a stack).

    Enhanced files give theirs per frame (:attr:`_Frames.bvalue`); other files
    are read with pydicom, one read per file -- only when the first file has
    a b-value (an fMRI run of hundreds of volumes is read once, not per volume).

    Parameters
    ----------
    fr : _Frames
    rows : ndarray of int
        Frame-table rows.

    Returns
    -------
    ndarray or None
        One b-value per row; None when any is unknown.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size == 0:
        return None
    known = fr.bvalue[rows] if fr.bvalue.size else np.full(rows.size, np.nan)
    if np.all(np.isfinite(known)):
        return known.astype(np.float64)
    if not fr.paths:
        return None
    out = known.astype(np.float64).copy()
    cache: dict[int, float] = {}
    for j, r in enumerate(rows.tolist()):
        if np.isfinite(out[j]):
            continue
        f = int(fr.ft.file[r])
        if f not in cache:
            cache[f] = bvalue_of_file(fr.paths[f])
        out[j] = cache[f]
        if not np.isfinite(out[j]):
            return None          # the first file without one: none are read further
    return out
