"""What the stacks of a series are, before their pixels are read.

:class:`StackInfo` (shape, kind, a picker label such as "axial, 40 slices,
echo 2") and :class:`FourthAxis` (the volumes of a 4D stack: how many, along
time, echo or plain volumes, and their values where the headers give them),
with the helpers that derive them from a stack plan or an assembled volume.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: The 4th axis of a stack by what ordered its volumes (the report's words).
AXIS_OF_ORDER = {"time": "time", "temporal position": "time", "acquisition number": "time",
                 "echo number": "echo", "instance number": "volume", "file order": "volume"}


@dataclass(frozen=True)
class FourthAxis:
    """The volumes of a 4D stack (one volume: ``count`` 1, ``axis`` None).

    Attributes
    ----------
    count : int
        Number of volumes.
    axis : str or None
        ``"time"``, ``"echo"``, ``"b-value"`` or ``"volume"`` (no known meaning).
    values : list of float or None
        The value of each volume along the axis (temporal position, acquisition
        number, echo number, diffusion b-value) where the headers give one per
        volume.
    by : str or None
        What ordered the volumes, in the assembly report's words.
    """

    count: int = 1
    axis: str | None = None
    values: list[float] | None = None
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The axis as a JSON-ready dict ``{count, axis, values, by}``.

        Returns
        -------
        dict
        """
        return {"count": int(self.count), "axis": self.axis,
                "values": None if self.values is None else [float(v) for v in self.values],
                "by": self.by}


@dataclass(frozen=True)
class StackInfo:
    """One stack of a series, before its pixels are read.

    Attributes
    ----------
    index : int
        Position in :attr:`SeriesReader.stacks` (0: the largest), the index of
        ``assemble_series(...).volumes``.
    kind : str
        ``"volume"`` or ``"sequence"``.
    shape : tuple of int
        ``(slices, rows, cols)`` of one volume.
    volumes : FourthAxis
        Its volumes (4D) and what they differ by.
    samples : int
        Samples per pixel (3: colour).
    label : str
        Short description for a picker, e.g. ``"axial, 40 slices"``.
    progressive : bool
        Whether :meth:`SeriesReader.slices` reads it slice by slice.
    """

    index: int
    kind: str
    shape: tuple[int, int, int]
    volumes: FourthAxis
    samples: int
    label: str
    progressive: bool

    def to_dict(self) -> dict[str, Any]:
        """The stack as a JSON-ready dict.

        Returns
        -------
        dict
        """
        return {"index": self.index, "kind": self.kind, "shape": list(self.shape),
                "volumes": self.volumes.to_dict(), "samples": self.samples, "label": self.label,
                "progressive": self.progressive}


def orientation_name(affine_lps: np.ndarray) -> str:
    """``"axial"``, ``"coronal"``, ``"sagittal"`` (``"oblique ..."`` past 25 degrees) of a plane.

    Parameters
    ----------
    affine_lps : ndarray, (4, 4)
        Voxel-to-LPS affine; its first two columns span the image plane.

    Returns
    -------
    str
        ``""`` when the plane is degenerate.
    """
    a = np.asarray(affine_lps, dtype=np.float64)
    n = np.cross(a[:3, 0], a[:3, 1])
    norm = float(np.linalg.norm(n))
    if not np.isfinite(norm) or norm == 0.0:
        return ""
    n = np.abs(n / norm)
    i = int(np.argmax(n))
    name = ("sagittal", "coronal", "axial")[i]
    return name if n[i] >= np.cos(np.radians(25.0)) else f"oblique {name}"


def stack_label(kind: str, shape: Sequence[int], affine_lps: np.ndarray, volumes: FourthAxis,
                key: dict[str, Any] | None = None, split_by: Sequence[str] = (),
                samples: int = 1) -> str:
    """A short label of a stack for a picker: orientation, size and what split it.

    Parameters
    ----------
    kind : str
        ``"volume"`` or ``"sequence"``.
    shape : sequence of int
        ``(slices, rows, cols)`` of one volume.
    affine_lps : ndarray, (4, 4)
    volumes : FourthAxis
    key : dict, optional
        The stack's key in the assembly report (echo, localizer, stack id...).
    split_by : sequence of str
        The attributes that split the series.
    samples : int

    Returns
    -------
    str
        E.g. ``"axial, 40 slices, echo 2"`` or ``"coronal, 12 frames, 256x256"``.
    """
    key = key or {}
    k, r, c = (int(v) for v in shape)
    parts = []
    # planes only where the headers place them (a stack without geometry has a unit grid)
    ori = orientation_name(affine_lps) if ("orientation" in key or key.get("mosaic")) else ""
    if ori:
        parts.append(ori)
    parts.append(f"{k} {'frame' if kind == 'sequence' else 'slice'}{'s' if k != 1 else ''}")
    if volumes.count > 1:
        noun = {"time": "time points", "echo": "echoes", "b-value": "b-values"}.get(volumes.axis or "",
                                                                                "volumes")
        parts.append(f"{volumes.count} {noun}")
    if {"rows", "cols"} & set(split_by):
        parts.append(f"{c}x{r}")
    if "echo" in split_by and key.get("echo") is not None:
        parts.append(f"echo {key['echo']:g}")
    if key.get("localizer"):
        parts.append("localizer")
    if key.get("stack_id") is not None and "stack_id" in split_by:
        parts.append(f"stack {key['stack_id']}")
    if samples > 1:
        parts.append("colour")
    return ", ".join(parts)


def _fourth_axis(fr: Any, plan: Any) -> FourthAxis:
    """The 4th axis of a planned stack from its frame table."""
    t = int(plan.frames.shape[0])
    if t <= 1:
        return FourthAxis()
    ft = fr.ft
    first = plan.frames[:, 0]
    e = ft.echo[first] if ft.echo is not None else None
    if e is not None and np.all(np.isfinite(e)) and np.unique(e).size == t:
        return FourthAxis(t, "echo", [float(v) for v in e], "echo number")
    by = plan.report.fourth_axis
    b = _bvalues(fr, first)
    if b is not None:
        return FourthAxis(t, "b-value", b, by)
    col = {"temporal position": ft.temporal, "acquisition number": ft.acquisition}.get(by or "")
    values = None
    if col is not None:
        v = col[first]
        if np.all(np.isfinite(v)):
            values = [float(x) for x in v]
    return FourthAxis(t, AXIS_OF_ORDER.get(by or "", "volume"), values, by)


def _bvalues(fr: Any, first: np.ndarray) -> list[float] | None:
    """The b-values of the volumes whose first frames are ``first`` when they differ
    (a diffusion series), else None."""
    from ..images.seriesframes import frame_bvalues

    if not hasattr(fr, "bvalue"):
        return None
    b = frame_bvalues(fr, first)
    if b is None or np.unique(b).size < 2:
        return None
    return [float(v) for v in b]


def _fourth_axis_of_volume(vol: Any, volume_files: Sequence[str] | None = None) -> FourthAxis:
    """The 4th axis of an assembled volume.

    Parameters
    ----------
    vol : pocketpacs.images.volume.Volume
    volume_files : sequence of str, optional
        One file per volume (mosaics): their b-values make a ``"b-value"``
        axis when they differ.

    Returns
    -------
    FourthAxis
    """
    if not vol.is_4d:
        return FourthAxis()
    rep = vol.report
    by = rep.fourth_axis if rep is not None else None
    t = int(vol.array.shape[0])
    if volume_files is not None and len(volume_files) == t:
        from ..images.seriesframes import bvalue_of_file

        b = [bvalue_of_file(str(f)) for f in volume_files[:1]]
        if np.isfinite(b[0]):
            b += [bvalue_of_file(str(f)) for f in volume_files[1:]]
            if np.all(np.isfinite(b)) and np.unique(b).size > 1:
                return FourthAxis(t, "b-value", [float(v) for v in b], by)
    mosaic = bool(rep is not None and rep.key.get("mosaic"))
    axis = "volume" if mosaic else AXIS_OF_ORDER.get(by or "", "volume")
    return FourthAxis(t, axis, None, by)


def mosaic_volume_files(fr: Any, paths: Sequence[str], vol: Any) -> list[str] | None:
    """The file of each volume of an assembled mosaic stack (None: not a mosaic).

    Parameters
    ----------
    fr : pocketpacs.images.seriesframes._Frames
        The series' frames.
    paths : sequence of str
        The series' files.
    vol : pocketpacs.images.volume.Volume
        One of its assembled stacks.

    Returns
    -------
    list of str or None
    """
    from ..images.mosaic import mosaic_groups

    rep = vol.report
    if rep is None or not rep.key.get("mosaic"):
        return None
    size = rep.key.get("mosaic_size")
    for g in mosaic_groups(fr):
        f = fr.formats[g[0]]
        if f is not None and [f.rows, f.cols] == size:
            return [str(paths[i]) for i in g]
    return None


def _planned_shape(plan: Any) -> tuple[int, int, int]:
    k = int(plan.frames.shape[1]) if plan.z_target is None else int(len(plan.z_target))
    return (k, int(plan.rows), int(plan.cols))


def _is_progressive(plan: Any) -> bool:
    """Whether a planned stack reads slice by slice: greyscale, no tilt or spacing correction."""
    return plan.samples == 1 and plan.in_plane_shift is None and plan.z_target is None


def describe_volume(index: int, vol: Any, split_by: Sequence[str] = (),
                    volume_files: Sequence[str] | None = None) -> StackInfo:
    """The :class:`StackInfo` of an assembled volume (export's, or an Open Other file's).

    Parameters
    ----------
    index : int
        Its stack index.
    vol : pocketpacs.images.volume.Volume
    split_by : sequence of str
        The attributes that split its series.
    volume_files : sequence of str, optional
        One file per volume of a 4D mosaic stack (for its b-values).

    Returns
    -------
    StackInfo
        ``progressive`` False: the volume is already whole.
    """
    vols = _fourth_axis_of_volume(vol, volume_files)
    a = vol.array
    shape = tuple(int(v) for v in a.shape[(1 if vol.is_4d else 0):][:3])
    key = vol.report.key if vol.report is not None else {}
    split = list(split_by) + (vol.report.split_by if vol.report is not None else [])
    label = stack_label(vol.kind, shape, vol.affine_lps, vols, key, split, vol.samples)
    if key.get("mosaic"):
        label += ", mosaic"
    return StackInfo(index, vol.kind, shape, vols, int(vol.samples), label, False)  # type: ignore[arg-type]
