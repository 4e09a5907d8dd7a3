"""Planning one stack: slice order, spacing regularity, gantry tilt and the affine.

Works on a :class:`FrameTable` (plain per-frame arrays of one series, from
the native header parser, pydicom or a synthetic test) and the frames of one
stack that :func:`pocketpacs.images.stacksplit.plan_series` found.  A stack
with patient geometry becomes a ``volume`` (:func:`_volume_plan`): repeated
positions make 4D or are dropped as duplicates, slice spacing is checked
for uniformity and gaps, in-plane offsets between slices are a gantry tilt,
and the result is a :class:`StackPlan` (which frame goes where, the affine
of the final array, and the in-plane shift or z resampling to apply after
reading).  Frames without geometry become a ``sequence`` in acquisition
order.  Every tolerance is a named module constant.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .affine import (GeometryError, affine_from, lps_to_ras, normal_from_orientation,
                     orthonormal_cosines)
from .assemblyreport import StackReport

#: Slice spacing is uniform when ``max - min <= SPACING_ATOL_MM +
#: SPACING_RTOL * median``.
SPACING_ATOL_MM = 0.01
SPACING_RTOL = 0.01
#: A step larger than ``GAP_FACTOR * median`` spacing is a gap (missing slices).
GAP_FACTOR = 1.5
#: In-plane offsets between slices (after projecting out the normal) above
#: this are a gantry tilt / shear that needs correcting.
IN_PLANE_TOL_MM = 0.05
#: Irregular spacing is resampled only when that at most multiplies the
#: slice count by this; beyond it (a few far-apart slices) the slices are kept.
MAX_RESAMPLE_GROWTH = 2.0
#: Slice thickness assumed for a single-slice stack without any spacing tag.
DEFAULT_SLICE_SPACING_MM = 1.0


@dataclass
class FrameTable:
    """Per-frame header values of one series (one row per 2D frame).

    Parameters
    ----------
    file : ndarray of int, (n,)
        Index of the file holding the frame (into the caller's file list).
    frame : ndarray of int, (n,)
        Frame number inside that file (0 for single-frame files).
    position : ndarray of float, (n, 3)
        Image Position (Patient), NaN when absent.
    orientation : ndarray of float, (n, 6)
        Image Orientation (Patient), NaN when absent.
    pixel_spacing : ndarray of float, (n, 2)
        Pixel Spacing (row spacing, column spacing), NaN when absent.
    rows, cols : ndarray of int, (n,)
    samples : ndarray of int, (n,), optional
        Samples per pixel (default 1).
    echo, acquisition, temporal, instance : ndarray of float, (n,), optional
        Echo number, Acquisition Number, Temporal Position (Identifier or
        Index), Instance Number; NaN when absent.
    slice_thickness : ndarray of float, (n,), optional
    image_type : list of str, optional
        Image Type values joined by backslashes.
    stack_id : list of (str or None), optional
        Enhanced multi-frame Stack ID.
    """

    file: np.ndarray
    frame: np.ndarray
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    samples: np.ndarray | None = None
    echo: np.ndarray | None = None
    acquisition: np.ndarray | None = None
    temporal: np.ndarray | None = None
    instance: np.ndarray | None = None
    slice_thickness: np.ndarray | None = None
    image_type: list[str] | None = None
    stack_id: list[str | None] | None = None

    def __post_init__(self) -> None:
        n = int(np.asarray(self.file).shape[0])
        self.file = np.asarray(self.file, dtype=np.int64).reshape(n)
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(n)
        self.position = np.asarray(self.position, dtype=np.float64).reshape(n, 3)
        self.orientation = np.asarray(self.orientation, dtype=np.float64).reshape(n, 6)
        self.pixel_spacing = np.asarray(self.pixel_spacing, dtype=np.float64).reshape(n, 2)
        self.rows = np.asarray(self.rows, dtype=np.int64).reshape(n)
        self.cols = np.asarray(self.cols, dtype=np.int64).reshape(n)

        def col(a: Any, fill: float) -> np.ndarray:
            if a is None:
                return np.full(n, fill, dtype=np.float64)
            return np.asarray(a, dtype=np.float64).reshape(n)

        self.samples = col(self.samples, 1.0).astype(np.int64)
        self.echo = col(self.echo, np.nan)
        self.acquisition = col(self.acquisition, np.nan)
        self.temporal = col(self.temporal, np.nan)
        self.instance = col(self.instance, np.nan)
        self.slice_thickness = col(self.slice_thickness, np.nan)
        if self.image_type is None:
            self.image_type = [""] * n
        if self.stack_id is None:
            self.stack_id = [None] * n
        if len(self.image_type) != n or len(self.stack_id) != n:
            raise GeometryError("image_type / stack_id must have one entry per frame")

    @property
    def n(self) -> int:
        """Number of frames."""
        return int(self.file.shape[0])


@dataclass
class StackPlan:
    """How to build one stack's array from the frames of a :class:`FrameTable`.

    Attributes
    ----------
    frames : ndarray of int, (t, k)
        Frame-table row of each ``[volume][slice]`` of the source array;
        ``t == 1`` for a 3D stack or a sequence (then ``k`` = frames).
    kind : str
        ``"volume"`` or ``"sequence"``.
    rows, cols, samples : int
    affine_lps : ndarray, (4, 4)
        Affine of the *final* array (after any correction).
    spacing : tuple of float
        ``(col spacing, row spacing, slice spacing)`` in mm.
    in_plane_shift : ndarray, (k, 2) or None
        Per source slice, the shift ``(d_col, d_row)`` in pixels to apply to
        correct a gantry tilt: ``out[r, c] = src[r - d_row, c - d_col]``.
    z_source : ndarray or None
        Positions along the normal of the source slices (mm, ascending) when
        the stack is to be resampled to ``z_target``.
    z_target : ndarray or None
    report : StackReport
    """

    frames: np.ndarray
    kind: str
    rows: int
    cols: int
    samples: int
    affine_lps: np.ndarray
    spacing: tuple[float, float, float]
    report: StackReport
    in_plane_shift: np.ndarray | None = None
    z_source: np.ndarray | None = None
    z_target: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the final array."""
        t, k = self.frames.shape
        if self.z_target is not None:
            k = int(self.z_target.shape[0])
        shp: tuple[int, ...] = (k, self.rows, self.cols)
        if t > 1:
            shp = (t,) + shp
        if self.samples > 1:
            shp = shp + (self.samples,)
        return shp


def is_localizer(image_type: str | None) -> bool:
    """Whether an Image Type value marks a localizer / scout image."""
    if not image_type:
        return False
    toks = {t.strip().upper() for t in image_type.split("\\")}
    return bool(toks & {"LOCALIZER", "SCOUT", "TOPOGRAM", "SCANOGRAM"})


def _sort_keys(ft: FrameTable, idx: np.ndarray) -> np.ndarray:
    """Order of ``idx`` by (temporal, instance, acquisition, file, frame), NaN last."""
    def k(a: np.ndarray) -> np.ndarray:
        v = a[idx]
        return np.where(np.isfinite(v), v, np.inf)

    return idx[np.lexsort((ft.frame[idx], ft.file[idx], k(ft.acquisition), k(ft.instance),
                           k(ft.temporal)))]


def _sequence_order(ft: FrameTable, idx: np.ndarray) -> np.ndarray:
    def k(a: np.ndarray) -> np.ndarray:
        v = a[idx]
        return np.where(np.isfinite(v), v, np.inf)

    return idx[np.lexsort((ft.frame[idx], ft.file[idx], k(ft.instance)))]


def _key_of(ft: FrameTable, i: int, has_geo: bool) -> dict[str, Any]:
    key: dict[str, Any] = {
        "rows": int(ft.rows[i]), "cols": int(ft.cols[i]), "samples": int(ft.samples[i]),
        "localizer": is_localizer(ft.image_type[i]),
    }
    if has_geo:
        key["orientation"] = [round(float(v), 6) for v in ft.orientation[i]]
    if np.all(np.isfinite(ft.pixel_spacing[i])):
        key["pixel_spacing"] = [float(v) for v in ft.pixel_spacing[i]]
    if np.isfinite(ft.echo[i]):
        key["echo"] = float(ft.echo[i])
    if ft.stack_id[i] is not None:
        key["stack_id"] = ft.stack_id[i]
    return key


#: The planning note of a grid without any calibration (no Pixel Spacing, and
#: :func:`pocketpacs.images.calibration.fill_missing_spacing` found no Imager
#: Pixel Spacing or ultrasound region): the page's assembly panel says the same.
UNCALIBRATED_NOTE = ("uncalibrated (measured in px): no Pixel Spacing, Imager Pixel Spacing "
                     "or ultrasound region calibration")


def _pixel_spacing(ft: FrameTable, i: int, notes: list[str]) -> np.ndarray:
    ps = ft.pixel_spacing[i]
    if not np.all(np.isfinite(ps)) or np.any(ps <= 0):
        notes.append(UNCALIBRATED_NOTE)
        return np.array([1.0, 1.0])
    return ps.copy()


def _sequence_plan(ft: FrameTable, idx: np.ndarray, why: str, split_by: list[str]) -> StackPlan:
    order = _sequence_order(ft, idx)
    i0 = int(order[0])
    notes: list[str] = []
    ps = _pixel_spacing(ft, i0, notes)
    has_geo = np.all(np.isfinite(ft.position[i0])) and np.all(np.isfinite(ft.orientation[i0]))
    if has_geo:
        try:
            nrm = normal_from_orientation(ft.orientation[i0])
            aff = affine_from(ft.orientation[i0], ft.position[i0], ps, nrm)
        except GeometryError:
            has_geo = False
    if not has_geo:
        aff = affine_from([1, 0, 0, 0, 1, 0], [0, 0, 0], ps, [0, 0, 1.0])
        notes.append("no patient geometry: frames shown in acquisition order")
    rep = StackReport(index=0, kind="sequence", shape=[], n_frames=int(idx.size),
                      key=_key_of(ft, i0, has_geo), split_by=list(split_by), why_sequence=why,
                      n_positions=0, pixel_spacing_mm=[float(ps[0]), float(ps[1])],
                      spacing_mm=[float(ps[1]), float(ps[0]), 1.0], notes=notes)
    plan = StackPlan(frames=order[None, :], kind="sequence", rows=int(ft.rows[i0]),
                     cols=int(ft.cols[i0]), samples=int(ft.samples[i0]), affine_lps=aff,
                     spacing=(float(ps[1]), float(ps[0]), 1.0), report=rep)
    _finish_report(plan)
    return plan


def _finish_report(plan: StackPlan) -> None:
    plan.report.shape = list(plan.shape)
    plan.report.affine_lps = plan.affine_lps.tolist()
    plan.report.affine_ras = lps_to_ras(plan.affine_lps).tolist()


def _volume_plan(ft: FrameTable, idx: np.ndarray, iop: np.ndarray, nrm: np.ndarray,
                 d: np.ndarray, pos_label: np.ndarray, npos: int, counts: np.ndarray,
                 tilt: str, spacing: str, split_by: list[str]) -> StackPlan:
    notes: list[str] = []
    duplicates: list[dict[str, Any]] = []
    dropped = 0
    # position order: ascending projection (pos_label is already in that order)
    nvol = int(counts.min())
    fourth = None
    if counts.max() > 1:
        mode = Counter(counts.tolist()).most_common(1)[0][0]
        if mode == 1:
            nvol = 1
        else:
            nvol = int(counts.min())
    frames = np.empty((nvol, npos), dtype=np.int64)
    if counts.max() == 1:  # one frame per position (the common case): no per-slice work
        frames[0, pos_label] = idx
        npos_loop = 0
    else:
        npos_loop = npos
        order = np.argsort(pos_label, kind="stable")
        bounds = np.searchsorted(pos_label[order], np.arange(npos + 1))
    for p in range(npos_loop):
        members = _sort_keys(ft, idx[order[bounds[p]:bounds[p + 1]]])
        if members.size > nvol:
            extra = members[nvol:]
            dropped += int(extra.size)
            if nvol == 1:
                duplicates.append({"slice": p, "kept_frame": int(members[0]),
                                   "dropped_frames": [int(x) for x in extra]})
        frames[:, p] = members[:nvol]
    if duplicates:
        notes.append(f"{len(duplicates)} slice position(s) repeated: kept the first frame "
                     f"(by temporal position / instance number), dropped {dropped}")
    elif dropped:
        notes.append(f"incomplete 4D: {nvol} complete volume(s); {dropped} frame(s) of "
                     f"incomplete time points dropped")
    if nvol > 1:
        for name, col in (("temporal position", ft.temporal), ("instance number", ft.instance),
                          ("acquisition number", ft.acquisition)):
            v = col[frames[:, 0]]
            if np.all(np.isfinite(v)) and np.unique(v).size == nvol:
                fourth = name
                break
        fourth = fourth or "file order"
        notes.append(f"{nvol} volumes at {npos} repeated positions (4D, ordered by {fourth})")
        vdist = _echo_check(ft, frames)
        if vdist:
            notes.append(vdist)

    i0 = int(frames[0, 0])
    ps = _pixel_spacing(ft, i0, notes)
    rows, cols = int(ft.rows[i0]), int(ft.cols[i0])
    rvec, cvec, _ = orthonormal_cosines(iop)
    # positions of the first volume (representative)
    P = ft.position[frames[0]]
    dpos = P @ nrm
    p0 = P[0]
    rep = StackReport(index=0, kind="volume", shape=[], n_frames=int(idx.size),
                      key=_key_of(ft, i0, True), split_by=list(split_by), n_positions=npos,
                      n_volumes=nvol, fourth_axis=fourth,
                      pixel_spacing_mm=[float(ps[0]), float(ps[1])], duplicates=duplicates,
                      dropped_frames=dropped, notes=notes)
    plan = StackPlan(frames=frames, kind="volume", rows=rows, cols=cols,
                     samples=int(ft.samples[i0]), affine_lps=np.eye(4),
                     spacing=(float(ps[1]), float(ps[0]), 1.0), report=rep)
    if npos == 1:
        th = ft.slice_thickness[i0]
        dz = float(th) if np.isfinite(th) and th > 0 else DEFAULT_SLICE_SPACING_MM
        if not (np.isfinite(th) and th > 0):
            notes.append(f"single slice without Slice Thickness: {dz} mm assumed")
        rep.slice_spacing_mm = {"min": None, "median": None, "max": None, "uniform": True}
        plan.affine_lps = affine_from(iop, p0, ps, nrm * dz)
        plan.spacing = (float(ps[1]), float(ps[0]), dz)
        rep.spacing_mm = list(plan.spacing)
        _finish_report(plan)
        return plan

    steps = np.diff(dpos)
    med = float(np.median(steps))
    smin, smax = float(steps.min()), float(steps.max())
    uniform = (smax - smin) <= SPACING_ATOL_MM + SPACING_RTOL * med
    rep.slice_spacing_mm = {"min": round(smin, 4), "median": round(med, 4),
                            "max": round(smax, 4), "uniform": bool(uniform)}
    gaps = []
    for k in np.nonzero(steps > GAP_FACTOR * med)[0]:
        missing = int(round(steps[k] / med)) - 1
        gaps.append({"after_slice": int(k), "step_mm": round(float(steps[k]), 4),
                     "missing_slices": max(missing, 1)})
    rep.gaps = gaps
    if gaps:
        notes.append(f"{sum(g['missing_slices'] for g in gaps)} slice(s) missing in "
                     f"{len(gaps)} gap(s) (median spacing {med:.4g} mm)")

    # in-plane offsets of each slice relative to the first (tilt / shear)
    t = (P - p0) - np.outer(dpos - dpos[0], nrm)
    offs = np.linalg.norm(t, axis=1)
    rep.max_in_plane_offset_mm = round(float(offs.max()), 4)
    span = float(dpos[-1] - dpos[0])
    tilted = bool(offs.max() > IN_PLANE_TOL_MM)
    if tilted:
        rep.tilt_deg = round(math.degrees(math.atan2(float(np.linalg.norm(t[-1])), span)), 4)
    shear_vec = (P[-1] - p0) / (npos - 1)
    if tilted and tilt == "resample":
        shift = np.stack([-(t @ rvec) / ps[1], -(t @ cvec) / ps[0]], axis=1)
        plan.in_plane_shift = shift
        rep.tilt_action = "resampled"
        notes.append(f"gantry tilt {rep.tilt_deg:.3g} deg (slices shifted in-plane up to "
                     f"{rep.max_in_plane_offset_mm:.3g} mm): resampled onto a grid orthogonal "
                     f"to the slices")
    elif tilted:
        rep.tilt_action = "sheared"
        notes.append(f"gantry tilt {rep.tilt_deg:.3g} deg kept: affine is sheared")

    if uniform and not gaps:
        if tilted and tilt == "resample":
            svec = nrm * (span / (npos - 1))
        elif tilted:
            svec = shear_vec
        else:
            svec = (P[-1] - p0) / (npos - 1)
        plan.affine_lps = affine_from(iop, p0, ps, svec)
        dz = float(np.linalg.norm(svec))
    elif spacing == "resample" and int(round(span / med)) + 1 <= MAX_RESAMPLE_GROWTH * npos:
        dz = med
        nout = int(round(span / dz)) + 1
        plan.z_source = dpos - dpos[0]
        plan.z_target = np.arange(nout) * dz
        if plan.z_target[-1] > plan.z_source[-1]:
            plan.z_target = plan.z_target[plan.z_target <= plan.z_source[-1] + 1e-6]
        rep.spacing_action = (f"resampled to equal spacing {dz:.4g} mm "
                              f"({npos} -> {plan.z_target.shape[0]} slices, linear)")
        notes.append(f"slice spacing varies {smin:.4g}-{smax:.4g} mm: {rep.spacing_action}")
        if tilted and tilt == "shear":
            dirv = shear_vec / np.dot(shear_vec, nrm) * dz
        else:
            dirv = nrm * dz
        plan.affine_lps = affine_from(iop, p0, ps, dirv)
    else:
        svec = shear_vec if tilted and tilt == "shear" else nrm * (span / (npos - 1))
        plan.affine_lps = affine_from(iop, p0, ps, svec)
        dz = float(np.dot(svec, nrm))
        why = ("" if spacing == "keep" else
               f" (resampling would give more than {MAX_RESAMPLE_GROWTH:g}x the slices)")
        rep.spacing_action = (f"kept{why}: slice spacing varies {smin:.4g}-{smax:.4g} mm, affine "
                              f"uses the mean step {dz:.4g} mm")
        notes.append(rep.spacing_action)
    plan.spacing = (float(ps[1]), float(ps[0]), float(dz))
    rep.spacing_mm = [round(v, 6) for v in plan.spacing]
    _finish_report(plan)
    return plan


def _echo_check(ft: FrameTable, frames: np.ndarray) -> str | None:
    e = ft.echo[frames[:, 0]]
    if np.all(np.isfinite(e)) and np.unique(e).size > 1:
        return "volumes differ by echo number"
    return None
