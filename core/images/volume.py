"""The Volume value and series assembly.

:func:`assemble_series` turns the files of one series into
:class:`Volume` objects, one per stack, with an
:class:`~pocketpacs.images.geometry.AssemblyReport` that says how the series was
split and what was corrected:

1. headers of every file (:func:`pocketpacs.dicom.headers.parse_files`; enhanced
   and legacy multi-frame files also through pydicom for their per-frame
   functional groups / Grid Frame Offset Vector);
2. a :class:`~pocketpacs.images.geometry.FrameTable` of every 2D frame, split and
   ordered by :func:`pocketpacs.images.geometry.plan_series`;
3. one preallocated array per stack, filled by
   :func:`pocketpacs.images.frames.read_frames` (stored values, rescaled per frame
   into int16 when the rescale is exact and fits, float32 otherwise);
4. gantry tilt / irregular spacing corrections, window presets.

Array layout: ``[slice][row][col]`` or ``[volume][slice][row][col]``, colour
samples last.  ``affine_lps`` maps ``(col, row, slice, 1)`` to LPS mm.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from . import geometry as G
from ..errors import PocketPacsError
from .decoders import DecoderPool, FrameError
from .frames import read_frames
from .pixelformat import PixelFormat, format_problem, formats_from_batch

#: Default windows by modality (only for rescaled CT values, in HU).
MODALITY_WINDOWS: dict[str, list[tuple[str, float, float]]] = {
    "CT": [("soft tissue", 40.0, 400.0), ("brain", 40.0, 80.0), ("lung", -600.0, 1500.0),
           ("bone", 400.0, 1800.0)],
}
#: Percentiles of the histogram preset.
HISTOGRAM_PERCENTILES = (0.5, 99.5)

_ENHANCED_HINT = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence")


class VolumeError(PocketPacsError):
    """A series (or file set) gives no volume at all."""


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
    """

    array: np.ndarray
    affine_lps: np.ndarray
    spacing: tuple[float, float, float]
    modality: str | None = None
    kind: str = "volume"
    window_presets: list[WindowPreset] = field(default_factory=list)
    report: G.StackReport | None = None
    photometric: str = "MONOCHROME2"
    rescaled: bool = True
    series_uid: str | None = None
    stack_index: int = 0
    errors: list[FrameError] = field(default_factory=list)

    @property
    def affine_ras(self) -> np.ndarray:
        """RAS affine (nibabel convention for the array transposed to (col, row, slice))."""
        return G.lps_to_ras(self.affine_lps)

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
        return G.corner_voxels_world(self.affine_ras if ras else self.affine_lps, (c, r, k))


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
    report: G.AssemblyReport
    errors: list[FrameError] = field(default_factory=list)

    def report_dict(self) -> dict[str, Any]:
        """The assembly report with frame errors, as a plain dict."""
        d = self.report.to_dict()
        d["errors"] = [e.to_dict() for e in self.errors]
        return d


# --------------------------------------------------------------------------
# Window presets
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Frame table from headers
# --------------------------------------------------------------------------
@dataclass
class _Frames:
    ft: G.FrameTable
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


def is_mosaic(image_type: str | None) -> bool:
    """Whether an Image Type value marks a Siemens mosaic (many slices tiled in one image)."""
    return bool(image_type) and "MOSAIC" in {t.strip().upper() for t in image_type.split("\\")}


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
            from ..dicom.headers import read_dataset_capped

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
    stack: list[str | None] = [None] * n
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared = shared[0] if shared else None
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and len(per) >= n:
        for i in range(n):
            f = per[i]

            def get(seq: str, attr: str) -> Any:
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
                nrm = G.normal_from_orientation(iop)
            except G.GeometryError:
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
            "temporal": temporal, "echo": echo, "wc": wc, "ww": ww, "stack": stack}


def frames_from_batch(paths: Sequence[str], batch: Any) -> _Frames:
    """Build the per-frame table of a series from a header batch.

    Parameters
    ----------
    paths : sequence of str
    batch : HeaderBatch
        Headers of ``paths`` (same order).

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
        if fmt.nframes == 1 and itype[i] and is_mosaic(itype[i]):
            mosaics.append(i)
            continue
        if fmt.offset < 0 and batch.status[i] == 0 and not fmt.encapsulated:
            excluded.append({"file": str(paths[i]), "reason": "no Pixel Data"})
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
    it_list = [itype[i] or "" for i in file_col.tolist()]
    ft = G.FrameTable(
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
                   mosaics, batch)


# --------------------------------------------------------------------------
# Output dtype
# --------------------------------------------------------------------------
def choose_dtype(formats: Sequence[PixelFormat], slopes: np.ndarray, intercepts: np.ndarray,
                 rescale: bool) -> tuple[np.dtype, bool]:
    """Output dtype of a stack and whether the rescale is applied.

    Parameters
    ----------
    formats : sequence of PixelFormat
        Formats of the stack's files.
    slopes, intercepts : ndarray
        Per-frame rescale.
    rescale : bool
        Whether the caller wants rescaled values.

    Returns
    -------
    dtype : numpy dtype
        Stored dtype (no rescale, colour, or identity rescale); else the
        smallest of int16, uint16, int32, uint32 that holds every value the
        stored bits can produce when the rescale is exact (integer slope and
        intercept), float32 otherwise.
    applied : bool
    """
    stored = np.result_type(*[f.stored_dtype for f in formats])
    identity = bool(np.all(slopes == 1.0) and np.all(intercepts == 0.0))
    if not rescale or any(f.samples > 1 for f in formats):
        return np.dtype(stored), False
    if identity:
        return np.dtype(stored), True
    exact = bool(np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts)))
    if not exact:
        return np.dtype(np.float32), True
    smin = min(-(1 << (f.bits_stored - 1)) if f.signed else 0 for f in formats)
    smax = max((1 << (f.bits_stored - 1)) - 1 if f.signed else (1 << f.bits_stored) - 1
               for f in formats)
    cand = np.concatenate([slopes * smin + intercepts, slopes * smax + intercepts])
    lo, hi = float(cand.min()), float(cand.max())
    for dt in (np.int16, np.uint16, np.int32, np.uint32):
        info = np.iinfo(dt)
        if lo >= info.min and hi <= info.max:
            return np.dtype(dt), True
    return np.dtype(np.float32), True


def _fits(dt: np.dtype, lo: float, hi: float) -> bool:
    if dt.kind == "f":
        return True
    info = np.iinfo(dt)
    return lo >= info.min and hi <= info.max


def read_stack(paths: list[str], formats: Sequence[PixelFormat | None], refs: np.ndarray,
               shape: tuple[int, ...], fmts: Sequence[PixelFormat], sl: np.ndarray,
               ic: np.ndarray, rescale: bool, pool: DecoderPool | None
               ) -> tuple[np.ndarray, bool, list[FrameError]]:
    """Read a stack's frames into a new array of the smallest exact dtype.

    :func:`choose_dtype` sizes the dtype from the range the stored bits can
    produce; when that calls for 32 bits but the rescale is exact, the frames
    are first read into int16 while the kernels record the actual value range
    (free: computed in the gather loop).  Only if the values do not fit are
    they read again into the smallest dtype that holds them.

    Returns
    -------
    array, rescale applied, frame errors
    """
    dtype, applied = choose_dtype(fmts, sl, ic, rescale)
    first = dtype
    if applied and dtype.kind in "iu" and dtype.itemsize > 2:
        first = np.dtype(np.int16)
    out = np.empty(shape, dtype=first)
    ranges: list[tuple[float, float]] = []
    errors = read_frames(paths, formats, refs, out,  # type: ignore[arg-type]
                         sl if applied else None, ic if applied else None, pool=pool,
                         ranges=ranges)
    if first != dtype:
        lo = min((r[0] for r in ranges), default=0.0)
        hi = max((r[1] for r in ranges), default=0.0)
        if not _fits(first, lo, hi):
            dt = next(d for d in map(np.dtype, (np.int16, np.uint16, np.int32, np.uint32,
                                                 np.float32)) if _fits(d, lo, hi))
            del out
            out = np.empty(shape, dtype=dt)
            errors = read_frames(paths, formats, refs, out,  # type: ignore[arg-type]
                                 sl, ic, pool=pool)
    return out, applied, errors


def read_resampled(paths: list[str], formats: Sequence[PixelFormat | None], refs: np.ndarray,
                   shape: tuple[int, ...], fmts: Sequence[PixelFormat], sl: np.ndarray,
                   ic: np.ndarray, rescale: bool, pool: DecoderPool | None,
                   z_source: np.ndarray, z_target: np.ndarray, chunk: int | None = None
                   ) -> tuple[np.ndarray, bool, list[FrameError]]:
    """Read a stack and resample it along z onto ``z_target``, a chunk at a time.

    The same values as :func:`read_stack` followed by
    :func:`pocketpacs.images.geometry.resample_z`, without holding the source and
    the result together: only ``chunk + 1`` source slices are in memory
    besides the output (peak memory stays near the final array's size).

    Parameters
    ----------
    paths, formats, refs, fmts, sl, ic, rescale, pool
        As for :func:`read_stack`; ``refs`` in ascending ``z_source`` order.
    shape : tuple
        Source shape ``(k, rows, cols[, samples])``.
    z_source, z_target : ndarray
        Ascending source and target positions (mm).
    chunk : int, optional
        Source slices read per call (default: a sixteenth of the stack, 1-64).

    Returns
    -------
    array, rescale applied, frame errors
    """
    k, m = int(shape[0]), int(z_target.shape[0])
    j, w = G.z_weights(z_source, z_target)
    dtype, applied = choose_dtype(fmts, sl, ic, rescale)
    first = dtype
    if applied and dtype.kind in "iu" and dtype.itemsize > 2:
        first = np.dtype(np.int16)
    step = int(chunk) if chunk else max(1, min(64, k // 16))

    def one_pass(dt: np.dtype, ranges: list | None) -> tuple[np.ndarray, list[FrameError]]:
        out = np.empty((m,) + tuple(shape[1:]), dtype=dt)
        buf = np.empty((step + 1,) + tuple(shape[1:]), dtype=dt)
        errors: list[FrameError] = []
        s0, held, t = 0, 0, 0  # buf[:held] holds source slices s0 .. s0 + held - 1
        while t < m:
            s1 = min(k, s0 + step + 1)
            if s1 > s0 + held:
                errors.extend(read_frames(
                    paths, formats, refs[s0 + held:s1], buf[held:s1 - s0],  # type: ignore[arg-type]
                    sl[s0 + held:s1] if applied else None, ic[s0 + held:s1] if applied else None,
                    pool=pool, ranges=ranges))
            held = s1 - s0
            while t < m and j[t] + 1 < s1:
                G.blend(buf[j[t] - s0], buf[j[t] + 1 - s0], w[t], out=out[t])
                t += 1
            if t < m:
                if j[t] >= s1:        # sparser target: the slices in between are not needed
                    s0, held = int(j[t]), 0
                else:                 # j[t] == s1 - 1: carry the last slice read
                    buf[0] = buf[held - 1]
                    s0, held = s1 - 1, 1
        return out, errors

    ranges: list[tuple[float, float]] = []
    out, errors = one_pass(first, ranges if first != dtype else None)
    if first != dtype:
        lo = min((r[0] for r in ranges), default=0.0)
        hi = max((r[1] for r in ranges), default=0.0)
        if not _fits(first, lo, hi):
            del out
            dt = next(d for d in map(np.dtype, (np.int16, np.uint16, np.int32, np.uint32,
                                                 np.float32)) if _fits(d, lo, hi))
            out, errors = one_pass(dt, None)
    return out, applied, errors


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------
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
        Gantry tilt correction (see :func:`pocketpacs.images.geometry.plan_series`).
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
    plans, report = G.plan_series(fr.ft, tilt=tilt, spacing=spacing, paths=spaths)
    report.excluded.extend(fr.excluded)
    vols: list[Volume] = []
    all_errors: list[FrameError] = []
    if fr.mosaics:
        mv = _assemble_mosaics(spaths, fr, rescale, pool, report)
        if mv is not None:
            vols.append(mv)
            all_errors.extend(mv.errors)
    if not plans and not vols:
        why = ""
        if fr.excluded:  # e.g. bogus geometry: say why (reasons name no header values)
            reasons = sorted({str(e["reason"]) for e in fr.excluded})
            why = "; " + "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else "")
        raise VolumeError(f"no image frames among {len(spaths)} file(s){why}")
    for plan in plans:
        vol = _build(plan, fr, spaths, rescale, pool)
        all_errors.extend(vol.errors)
        vols.append(vol)
    if fr.mosaics and plans:
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


def _build(plan: G.StackPlan, fr: _Frames, paths: list[str], rescale: bool,
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
            G.shift_slices(arr, plan.in_plane_shift, fill, plan.samples)
        if plan.z_target is not None and plan.z_source is not None:
            arr = G.resample_z(arr, plan.z_source, plan.z_target, four_d=t > 1)
    plan.report.shape = list(arr.shape)
    mid = int(plan.frames[0, plan.frames.shape[1] // 2])
    hdr = []
    for j in (mid,):
        c, w = fr.wc[j], fr.ww[j]
        if not applied and np.isfinite(c):
            s, b = fr.slope[j], fr.intercept[j]
            c, w = (c - b) / s, w / abs(s)
        hdr.append((c, w))
    i0 = int(plan.frames[0, 0])
    fi0 = int(fr.ft.file[i0])
    modality = fr.modality[fi0]
    fmt0 = fr.formats[fi0]
    presets = window_presets(arr, modality, hdr, applied, plan.samples)
    return Volume(array=arr, affine_lps=plan.affine_lps, spacing=plan.spacing, modality=modality,
                  kind=plan.kind, window_presets=presets, report=plan.report,
                  photometric=fmt0.photometric if fmt0 else "MONOCHROME2", rescaled=applied,
                  series_uid=fr.series_uid[fi0], errors=errors)


def _assemble_mosaics(paths: list[str], fr: _Frames, rescale: bool,
                      pool: DecoderPool | None, report: G.AssemblyReport) -> Volume | None:
    """Siemens mosaics: one file = one volume (slices tiled); several files = 4D."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

    idx = list(fr.mosaics)
    b = fr.batch
    inst = b.number("InstanceNumber")[idx]
    acq = b.number("AcquisitionNumber")[idx]
    order = np.lexsort((np.array(idx), np.where(np.isfinite(inst), inst, np.inf),
                        np.where(np.isfinite(acq), acq, np.inf)))
    idx = [idx[j] for j in order]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from ..dicom.headers import read_dataset_capped

            ds = read_dataset_capped(paths[idx[0]], stop_before_pixels=True)
            w = dicomwrappers.wrapper_from_data(ds)
            nsl = int(w.n_mosaic)
            aff_nib = np.asarray(w.affine, dtype=np.float64)
        except Exception as exc:
            for i in idx:
                report.excluded.append({"file": paths[i], "reason": "mosaic geometry unreadable "
                                        f"({type(exc).__name__})"})
            return None
    fmt = fr.formats[idx[0]]
    assert fmt is not None
    md = int(np.ceil(np.sqrt(nsl)))
    rows, cols = fmt.rows // md, fmt.cols // md
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
    applied = False
    for v in range(t):
        one, applied, errs = read_stack(paths, fr.formats, refs_all[v:v + 1],  # type: ignore[arg-type]
                                        (1, fmt.rows, fmt.cols), fmts_m, sl[v:v + 1],
                                        ic[v:v + 1], rescale, pool)
        errors.extend(errs)
        if arr is None or np.result_type(arr.dtype, one.dtype) != arr.dtype:
            dt = one.dtype if arr is None else np.result_type(arr.dtype, one.dtype)
            new_arr = np.empty((t, nsl, rows, cols), dtype=dt)
            if arr is not None:
                new_arr[:v] = arr[:v]
            arr = new_arr
        for k in range(nsl):
            r0, c0 = (k // md) * rows, (k % md) * cols
            arr[v, k] = one[0, r0:r0 + rows, c0:c0 + cols]
    assert arr is not None
    # nibabel's affine maps (row, col, slice); ours maps (col, row, slice)
    aff = aff_nib[:, [1, 0, 2, 3]].copy()
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
    rep = G.StackReport(index=0, kind="volume", shape=list(arr.shape), n_frames=t,
                        key={"rows": rows, "cols": cols, "samples": 1, "localizer": False,
                             "mosaic": True},
                        n_positions=nsl, n_volumes=t,
                        fourth_axis="acquisition number" if t > 1 else None,
                        pixel_spacing_mm=[spacing[1], spacing[0]],
                        spacing_mm=list(spacing), affine_lps=aff.tolist(),
                        affine_ras=G.lps_to_ras(aff).tolist(),
                        notes=[f"Siemens mosaic: {nsl} slices tiled {md}x{md} per file"
                               + (f", {t} volumes (4D)" if t > 1 else "")])
    i0 = idx[0]
    c, wdt = b.number("WindowCenter")[i0], b.number("WindowWidth")[i0]
    presets = window_presets(arr, fr.modality[i0], [(c, wdt)], applied)
    return Volume(array=arr, affine_lps=aff, spacing=spacing,  # type: ignore[arg-type]
                  modality=fr.modality[i0], kind="volume", window_presets=presets, report=rep,
                  photometric=fmt.photometric, rescaled=applied, series_uid=fr.series_uid[i0],
                  errors=errors)


def load_volume(paths: Sequence[str | os.PathLike[str]], **kwargs: Any) -> list[Volume]:
    """The volumes of a set of files of one series (see :func:`assemble_series`)."""
    return assemble_series(paths, **kwargs).volumes


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
        One per Series Instance UID, in the order first seen.
    """
    from ..dicom.headers import parse_files

    p = os.fspath(path)
    files = dicom_files_in(p) if os.path.isdir(p) else [p]
    batch = parse_files(files)
    uids = batch.text("SeriesInstanceUID")
    groups: dict[str, list[int]] = {}
    for i, u in enumerate(uids):
        if batch.status[i] < 0:
            continue
        groups.setdefault(u or "", []).append(i)
    out = []
    for _u, idx in groups.items():
        sub = [files[i] for i in idx]
        try:
            out.append(assemble_series(sub, **kwargs))
        except VolumeError:
            continue
    return out
