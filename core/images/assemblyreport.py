"""The assembly report: what was found and done for each stack of a series.

:class:`StackReport` (one stack: kind, shape, the key it was split by,
spacing min/median/max, gaps, duplicates, gantry tilt and its correction,
affines, notes, slices that could not be decoded) and :class:`AssemblyReport` (the series: its stacks, the
attributes that split them, excluded files), both plain dataclasses that
turn into JSON-safe dicts (non-finite floats become None).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

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
    #: slices that could not be decoded (left as zeros): ``{"slice", "volume", "reason"}``
    #: each, ``slice`` within its volume, no file paths
    unreadable_frames: list[dict[str, Any]] = field(default_factory=list)


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
