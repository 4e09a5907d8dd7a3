"""Splitting a series into stacks: the entry point of series geometry.

:func:`plan_series` splits the frames of a series (a
:class:`~pocketpacs.images.stackplan.FrameTable`) by what makes them
incompatible (patient geometry or none, orientation, size, samples, pixel
spacing, localizers, echo, stack id), separates repeated positions by
acquisition or temporal position where that makes complete stacks, and
plans each stack (:mod:`pocketpacs.images.stackplan`); it returns one
:class:`~pocketpacs.images.stackplan.StackPlan` per stack, largest first,
and an :class:`~pocketpacs.images.assemblyreport.AssemblyReport` that says
what was done and why.

Conventions
-----------
* Arrays are stored ``[slice][row][col]`` (3D) or
  ``[volume][slice][row][col]`` (4D), colour samples last.
* Slices are sorted by the projection of Image Position (Patient) on the
  normal ``n = row_cosines x col_cosines`` (ascending), never by Slice
  Location, z or Instance Number.
* Every tolerance is a named module constant.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .affine import GeometryError, orthonormal_cosines
from .assemblyreport import AssemblyReport
from .stackplan import FrameTable, StackPlan, _sequence_plan, _volume_plan, is_localizer

#: Two Image Orientation (Patient) vectors are the same when every direction
#: cosine differs by at most this much (about 0.06 degrees).
ORIENTATION_TOL = 1e-3
#: Pixel spacings (mm) closer than this are the same.
PIXEL_SPACING_TOL_MM = 1e-3
#: Two frames whose positions along the normal differ by less than this are
#: at the same slice position (repeated position: 4D or duplicate).
POSITION_TOL_MM = 0.01


TILT_POLICIES = ("resample", "shear")
SPACING_POLICIES = ("resample", "keep")


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
