"""Series geometry: split frames into stacks, order them, explain the result.

Everything here works on plain per-frame arrays (a :class:`FrameTable`), so
it does not care whether the values came from the native header parser,
from pydicom, or from a synthetic test.  The entry point is
:func:`plan_series`, which returns one :class:`StackPlan` per stack and an
:class:`AssemblyReport` that says what was done and why.

Conventions
-----------
* Arrays are stored ``[slice][row][col]`` (3D) or
  ``[volume][slice][row][col]`` (4D), colour samples last.
* ``affine_lps`` maps the index vector ``(col, row, slice, 1)`` to DICOM
  patient coordinates (LPS, mm).  ``affine_ras = diag(-1, -1, 1, 1) @
  affine_lps``: with the array transposed to ``(col, row, slice[, t])`` it is
  the affine nibabel expects.
* Slices are sorted by the projection of Image Position (Patient) on the
  normal ``n = row_cosines x col_cosines`` (ascending), never by Slice
  Location, z or Instance Number.
* Every tolerance is a named module constant.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import PocketPacsError

# --------------------------------------------------------------------------
# Tolerances
# --------------------------------------------------------------------------
#: Two Image Orientation (Patient) vectors are the same when every direction
#: cosine differs by at most this much (about 0.06 degrees).
ORIENTATION_TOL = 1e-3
#: Pixel spacings (mm) closer than this are the same.
PIXEL_SPACING_TOL_MM = 1e-3
#: Two frames whose positions along the normal differ by less than this are
#: at the same slice position (repeated position: 4D or duplicate).
POSITION_TOL_MM = 0.01
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

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

TILT_POLICIES = ("resample", "shear")
SPACING_POLICIES = ("resample", "keep")


class GeometryError(PocketPacsError):
    """Frames cannot be given a geometry (bad input arrays)."""


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------
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


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------
@dataclass
class StackReport:
    """What was found and done for one stack (JSON-serialisable)."""

    index: int
    kind: str
    shape: list[int]
    n_frames: int
    key: dict[str, Any]
    split_by: list[str] = field(default_factory=list)
    why_sequence: str | None = None
    n_positions: int = 0
    n_volumes: int = 1
    fourth_axis: str | None = None
    pixel_spacing_mm: list[float] = field(default_factory=list)
    slice_spacing_mm: dict[str, Any] = field(default_factory=dict)
    spacing_mm: list[float] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    dropped_frames: int = 0
    tilt_deg: float = 0.0
    max_in_plane_offset_mm: float = 0.0
    tilt_action: str = "none"
    spacing_action: str = "none"
    affine_lps: list[list[float]] = field(default_factory=list)
    affine_ras: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class AssemblyReport:
    """The assembly report of a series: its stacks and why.

    Attributes
    ----------
    n_files, n_frames : int
    stacks : list of StackReport
        Largest stack first.
    split_by : list of str
        The attributes that differ between stacks.
    excluded : list of dict
        Files or frames left out, each ``{"file": path, "reason": ...}``.
    notes : list of str
    """

    n_files: int = 0
    n_frames: int = 0
    stacks: list[StackReport] = field(default_factory=list)
    split_by: list[str] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (lists, floats, str only)."""
        return _jsonable(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent)


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


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return None if not math.isfinite(f) else round(f, 6)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return o


def normal_from_orientation(iop: Sequence[float]) -> np.ndarray:
    """Slice normal ``row_cosines x col_cosines`` (unit vector).

    Parameters
    ----------
    iop : sequence of 6 float
        Image Orientation (Patient).

    Returns
    -------
    ndarray, (3,)

    Raises
    ------
    GeometryError
        When the two cosine vectors are degenerate (zero or parallel).
    """
    a = np.asarray(iop, dtype=np.float64)
    r, c = a[:3], a[3:6]
    n = np.cross(r, c)
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm < 1e-6:
        raise GeometryError("degenerate Image Orientation (Patient)")
    return n / norm


def orthonormal_cosines(iop: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosines, column cosines (made orthogonal, unit) and the normal."""
    a = np.asarray(iop, dtype=np.float64)
    r = a[:3] / np.linalg.norm(a[:3])
    c = a[3:6] - np.dot(a[3:6], r) * r
    c = c / np.linalg.norm(c)
    return r, c, np.cross(r, c)


def affine_from(iop: Sequence[float], origin: Sequence[float], pixel_spacing: Sequence[float],
                slice_vector: Sequence[float]) -> np.ndarray:
    """LPS affine mapping ``(col, row, slice, 1)`` to mm.

    Parameters
    ----------
    iop : sequence of 6 float
        Image Orientation (Patient).
    origin : sequence of 3 float
        Position of voxel ``(0, 0, 0)``.
    pixel_spacing : sequence of 2 float
        Pixel Spacing (row spacing, column spacing).
    slice_vector : sequence of 3 float
        Displacement from one slice to the next.

    Returns
    -------
    ndarray, (4, 4)
    """
    a = np.asarray(iop, dtype=np.float64)
    m = np.eye(4)
    m[:3, 0] = a[:3] * float(pixel_spacing[1])
    m[:3, 1] = a[3:6] * float(pixel_spacing[0])
    m[:3, 2] = np.asarray(slice_vector, dtype=np.float64)
    m[:3, 3] = np.asarray(origin, dtype=np.float64)
    return m


def lps_to_ras(affine_lps: np.ndarray) -> np.ndarray:
    """``diag(-1, -1, 1, 1) @ affine_lps``."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def corner_voxels_world(affine: np.ndarray, shape_crk: Sequence[int]) -> np.ndarray:
    """World coordinates of the 8 corner voxel centres.

    Parameters
    ----------
    affine : ndarray, (4, 4)
        Maps ``(col, row, slice, 1)`` (or any ``(i, j, k, 1)``) to mm.
    shape_crk : sequence of 3 int
        Extent of each of the three indexed axes, in the affine's order.

    Returns
    -------
    ndarray, (8, 3)
        In index order ``(i, j, k)`` over ``{0, n-1}^3``.  Compare two grids
        that may index their axes differently with :func:`corner_distance`.
    """
    ijk = np.array([[i, j, k] for i in (0, shape_crk[0] - 1) for j in (0, shape_crk[1] - 1)
                    for k in (0, shape_crk[2] - 1)], dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    return ijk @ a[:3, :3].T + a[:3, 3]


def corner_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Hausdorff distance (mm) between two sets of corner points."""
    d = np.linalg.norm(np.asarray(a)[:, None, :] - np.asarray(b)[None, :, :], axis=2)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()))


def is_localizer(image_type: str | None) -> bool:
    """Whether an Image Type value marks a localizer / scout image."""
    if not image_type:
        return False
    toks = {t.strip().upper() for t in image_type.split("\\")}
    return bool(toks & {"LOCALIZER", "SCOUT", "TOPOGRAM", "SCANOGRAM"})


def _cluster_rows(values: np.ndarray, tol: float) -> np.ndarray:
    """Greedy clustering of rows of ``values`` (NaN rows get their own label -1)."""
    n = values.shape[0]
    labels = np.full(n, -1, dtype=np.int64)
    finite = np.all(np.isfinite(values), axis=1)
    reps: list[np.ndarray] = []
    todo = np.nonzero(finite)[0]
    while todo.size:
        rep = values[todo[0]]
        close = np.all(np.abs(values[todo] - rep) <= tol, axis=1)
        labels[todo[close]] = len(reps)
        reps.append(rep)
        todo = todo[~close]
    return labels


def _label_values(a: np.ndarray) -> np.ndarray:
    """Integer labels of a float column (NaN is one value)."""
    b = np.where(np.isfinite(a), a, -1e308)
    _, inv = np.unique(b, return_inverse=True)
    return inv.reshape(-1)


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


# --------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------
_SPLIT_KEYS = ("geometry", "orientation", "rows", "cols", "samples", "pixel_spacing",
               "localizer", "echo", "stack_id")


def plan_series(ft: FrameTable, *, tilt: str = "resample", spacing: str = "resample",
                paths: Sequence[str] | None = None) -> tuple[list[StackPlan], AssemblyReport]:
    """Split a series' frames into stacks and plan each stack's array.

    Parameters
    ----------
    ft : FrameTable
        The frames of one series.
    tilt : {"resample", "shear"}
        What to do about a gantry tilt (slices shifted in-plane along the
        stack): resample onto a regular grid orthogonal to the slices, or
        keep the data and return a sheared affine.
    spacing : {"resample", "keep"}
        What to do about irregular slice spacing (including missing
        slices): resample to equal spacing (the median step), or keep the
        slices and describe them by their mean step (reported).
    paths : sequence of str, optional
        File paths (only used in the report's notes).

    Returns
    -------
    plans : list of StackPlan
        Largest stack first.
    report : AssemblyReport

    Raises
    ------
    GeometryError
        For an unknown policy.
    """
    if tilt not in TILT_POLICIES:
        raise GeometryError(f"tilt policy must be one of {TILT_POLICIES}")
    if spacing not in SPACING_POLICIES:
        raise GeometryError(f"spacing policy must be one of {SPACING_POLICIES}")
    n = ft.n
    report = AssemblyReport(n_files=int(np.unique(ft.file).size) if n else 0, n_frames=n)
    if n == 0:
        return [], report

    has_geo = np.all(np.isfinite(ft.position), axis=1) & np.all(np.isfinite(ft.orientation), axis=1)
    # drop degenerate orientations from the geometric set
    if has_geo.any():
        r = ft.orientation[:, :3]
        c = ft.orientation[:, 3:]
        cr = np.linalg.norm(np.cross(r, c), axis=1)
        has_geo &= np.isfinite(cr) & (cr > 1e-6)
    labels = {
        "geometry": has_geo.astype(np.int64),
        "orientation": np.where(has_geo, _cluster_rows(np.where(has_geo[:, None], ft.orientation,
                                                                np.nan), ORIENTATION_TOL), -1),
        "rows": _label_values(ft.rows.astype(float)),
        "cols": _label_values(ft.cols.astype(float)),
        "samples": _label_values(ft.samples.astype(float)),
        "pixel_spacing": _cluster_rows(np.nan_to_num(ft.pixel_spacing, nan=-1.0),
                                       PIXEL_SPACING_TOL_MM),
        "localizer": np.array([is_localizer(t) for t in ft.image_type], dtype=np.int64),
        "echo": _label_values(ft.echo),
        "stack_id": _label_values(np.array([hash(s) if s is not None else np.nan
                                            for s in ft.stack_id], dtype=np.float64)),
    }
    keymat = np.stack([labels[k] for k in _SPLIT_KEYS], axis=1)
    groups, ginv = np.unique(keymat, axis=0, return_inverse=True)
    ginv = ginv.reshape(-1)
    split_by = [k for j, k in enumerate(_SPLIT_KEYS) if np.unique(groups[:, j]).size > 1]
    report.split_by = split_by

    plans: list[StackPlan] = []
    for g in range(groups.shape[0]):
        idx = np.nonzero(ginv == g)[0]
        plans.extend(_plan_group(ft, idx, bool(groups[g, 0]), tilt, spacing, split_by, report))
    plans.sort(key=lambda p: (-p.frames.size, p.kind != "volume"))
    for i, p in enumerate(plans):
        p.report.index = i
    report.stacks = [p.report for p in plans]
    if len(plans) > 1:
        report.notes.append(f"series split into {len(plans)} stacks by "
                            f"{', '.join(sorted(set(split_by + _extra_splits(plans)))) or 'position'}")
    return plans, report


def _extra_splits(plans: list[StackPlan]) -> list[str]:
    out: list[str] = []
    for p in plans:
        out.extend(s for s in p.report.split_by if s not in out)
    return out


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


def _pixel_spacing(ft: FrameTable, i: int, notes: list[str]) -> np.ndarray:
    ps = ft.pixel_spacing[i]
    if not np.all(np.isfinite(ps)) or np.any(ps <= 0):
        notes.append("no Pixel Spacing: 1 mm pixels assumed")
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


def _plan_group(ft: FrameTable, idx: np.ndarray, has_geo: bool, tilt: str, spacing: str,
                split_by: list[str], report: AssemblyReport) -> list[StackPlan]:
    if not has_geo:
        return [_sequence_plan(ft, idx, "frames lack Image Position/Orientation (Patient)",
                               split_by)]
    iop = ft.orientation[idx].mean(axis=0)
    _, _, nrm = orthonormal_cosines(iop)
    d = ft.position[idx] @ nrm
    # cluster positions along the normal
    order = np.argsort(d, kind="stable")
    ds = d[order]
    newpos = np.concatenate([[True], np.diff(ds) > POSITION_TOL_MM])
    pos_label_sorted = np.cumsum(newpos) - 1
    pos_label = np.empty_like(pos_label_sorted)
    pos_label[order] = pos_label_sorted
    npos = int(pos_label_sorted[-1]) + 1
    counts = np.bincount(pos_label, minlength=npos)
    if npos > 1 and counts.max() > 1 and counts.min() != counts.max():
        # unequal repeats: try to separate them by acquisition / temporal position
        for name, col in (("acquisition", ft.acquisition), ("temporal", ft.temporal)):
            vals = col[idx]
            if not np.all(np.isfinite(vals)):
                continue
            u = np.unique(vals)
            if u.size < 2:
                continue
            ok = True
            for v in u:
                sub = pos_label[vals == v]
                if np.bincount(sub).max() > 1:
                    ok = False
                    break
            if ok:
                out: list[StackPlan] = []
                for v in u:
                    sub_idx = idx[vals == v]
                    for p in _plan_group(ft, sub_idx, True, tilt, spacing, split_by, report):
                        if name not in p.report.split_by:
                            p.report.split_by.append(name)
                        p.report.key[name] = float(v)
                        out.append(p)
                return out
    return [_volume_plan(ft, idx, iop, nrm, d, pos_label, npos, counts, tilt, spacing,
                         split_by)]


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


# --------------------------------------------------------------------------
# Resampling (applied after the pixels are read)
# --------------------------------------------------------------------------
def shift_slices(arr: np.ndarray, shift: np.ndarray, fill: float, samples: int = 1) -> None:
    """Shift every slice in-plane, in place, by bilinear interpolation.

    Parameters
    ----------
    arr : ndarray, ([t,] k, rows, cols[, samples])
        3D/4D array; for 4D arrays every volume is shifted the same way.
    shift : ndarray, (k, 2)
        ``(d_col, d_row)`` in pixels: ``out[r, c] = src[r - d_row, c - d_col]``.
    fill : float
        Value for pixels that come from outside the source slice.
    samples : int
        Samples per pixel (a trailing colour axis when > 1).
    """
    k = shift.shape[0]
    tail = 3 if samples > 1 else 2
    vols = arr.reshape((-1, k) + arr.shape[arr.ndim - tail:])
    for v in range(vols.shape[0]):
        for s in range(k):
            dc, dr = float(shift[s, 0]), float(shift[s, 1])
            if abs(dc) < 1e-6 and abs(dr) < 1e-6:
                continue
            vols[v, s] = _shift2d(vols[v, s], dc, dr, fill)


def _shift2d(img: np.ndarray, dc: float, dr: float, fill: float) -> np.ndarray:
    rows, cols = img.shape[0], img.shape[1]
    src = img.astype(np.float32)
    # source coordinates of the output pixels
    sc = np.arange(cols, dtype=np.float64) - dc
    sr = np.arange(rows, dtype=np.float64) - dr
    c0 = np.floor(sc).astype(np.int64)
    r0 = np.floor(sr).astype(np.int64)
    fc = (sc - c0).astype(np.float32)
    fr = (sr - r0).astype(np.float32)

    def take_cols(a: np.ndarray, ci: np.ndarray) -> np.ndarray:
        ok = (ci >= 0) & (ci < cols)
        out = a[:, np.clip(ci, 0, cols - 1)]
        out[:, ~ok] = fill
        return out

    def take_rows(a: np.ndarray, ri: np.ndarray) -> np.ndarray:
        ok = (ri >= 0) & (ri < rows)
        out = a[np.clip(ri, 0, rows - 1)]
        out[~ok] = fill
        return out

    tail = (None,) * (img.ndim - 2)
    wc0, wc1 = (1 - fc)[(None, slice(None)) + tail], fc[(None, slice(None)) + tail]
    wr0, wr1 = (1 - fr)[(slice(None), None) + tail], fr[(slice(None), None) + tail]
    a = take_cols(src, c0) * wc0 + take_cols(src, c0 + 1) * wc1
    b = take_rows(a, r0) * wr0 + take_rows(a, r0 + 1) * wr1
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.rint(b), info.min, info.max).astype(img.dtype)
    return b.astype(img.dtype)


def resample_z(arr: np.ndarray, z_source: np.ndarray, z_target: np.ndarray,
               four_d: bool = False) -> np.ndarray:
    """Linear interpolation along the slice axis onto ``z_target``.

    Parameters
    ----------
    arr : ndarray, ([t,] k, rows, cols[, samples])
    z_source : ndarray, (k,)
        Ascending source slice positions (mm).
    z_target : ndarray, (m,)
        Target positions inside ``[z_source[0], z_source[-1]]``.
    four_d : bool
        Whether ``arr`` has a leading volume axis.

    Returns
    -------
    ndarray
        Same dtype as ``arr`` (integers rounded), slice axis of length m.
    """
    axis = 1 if four_d else 0
    j, w = z_weights(z_source, z_target)
    out_shape = list(arr.shape)
    out_shape[axis] = z_target.shape[0]
    out = np.empty(out_shape, dtype=arr.dtype)
    for m in range(z_target.shape[0]):
        dst = out[m] if axis == 0 else out[:, m]
        a, b = np.take(arr, j[m], axis=axis), np.take(arr, j[m] + 1, axis=axis)
        if dst.flags.c_contiguous:
            blend(a, b, w[m], out=dst)
        else:
            dst[...] = blend(a, b, w[m])
    return out


def z_weights(z_source: np.ndarray, z_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source pairs and weights of a linear resampling along z.

    Parameters
    ----------
    z_source : ndarray, (k,)
        Ascending source positions, ``k >= 2``.
    z_target : ndarray, (m,)
        Target positions.

    Returns
    -------
    j : ndarray of int, (m,)
        Target ``m`` lies between source slices ``j[m]`` and ``j[m] + 1``
        (non-decreasing in ``m`` for ascending targets).
    w : ndarray of float32, (m,)
        Weight of slice ``j[m] + 1``, in ``[0, 1]``.
    """
    k = z_source.shape[0]
    j = np.clip(np.searchsorted(z_source, z_target, side="right") - 1, 0, k - 2)
    w = ((z_target - z_source[j]) / (z_source[j + 1] - z_source[j])).astype(np.float32)
    return j, np.clip(w, 0.0, 1.0)


def blend(a: np.ndarray, b: np.ndarray, w: float, out: np.ndarray | None = None,
          block: int = 1 << 13) -> np.ndarray:
    """``a * (1 - w) + b * w`` computed in float32, rounded and clipped when
    ``a`` is an integer array, stored into *out*.

    Works through blocks of *block* elements, so the float32 temporaries stay
    small whatever the slice size (peak memory while resampling).

    Parameters
    ----------
    a, b : ndarray
        Two slices of the same shape and dtype.
    w : float
        Weight of ``b``.
    out : ndarray, optional
        Destination of ``a``'s shape (default: a new array of ``a``'s dtype).
    block : int
        Elements per step.

    Returns
    -------
    ndarray
        *out*.
    """
    if out is None:
        out = np.empty(a.shape, dtype=a.dtype)
    fa, fb, fo = a.reshape(-1), b.reshape(-1), out.reshape(-1)
    w1, w0 = np.float32(w), np.float32(1) - np.float32(w)
    integer = np.issubdtype(a.dtype, np.integer)
    info = np.iinfo(a.dtype) if integer else None
    n = fa.shape[0]
    va = np.empty(min(block, n), dtype=np.float32)
    vb = np.empty_like(va)
    for i in range(0, n, block):
        e = min(n, i + block)
        x, y = va[:e - i], vb[:e - i]
        np.multiply(fa[i:e], w0, out=x, dtype=np.float32, casting="unsafe")
        np.multiply(fb[i:e], w1, out=y, dtype=np.float32, casting="unsafe")
        np.add(x, y, out=x)
        if info is not None:
            np.rint(x, out=x)
            np.clip(x, info.min, info.max, out=x)
        fo[i:e] = x
    return out
