"""Measurements kept with a series: the ``annotations`` database.

One record per series, keyed by the series key (the 8-byte hash of its
Series Instance UID, so a rebuild of the archive from its folders finds the
record again): ``{"v": 1, "measurements": [...]}``.  Each measurement is a
distance, an angle or a rectangle/ellipse ROI with its points in patient
coordinates (LPS, mm, from the header's affine; px for an uncalibrated
image, which says so in ``unit``), the plane it was drawn on (``view``: the
viewer's plane key, ``plane``: the acquired slice or the reformat's axes),
the stack of the series and the result the viewer computed (length, angle,
ROI mean/SD/min/max/area).  :func:`check_measurements` refuses anything
else with a message naming the measurement and why.  :class:`ArchiveMeasurements`
adds ``measurements`` / ``save_measurements`` to the archive, and
:func:`to_csv` / :func:`to_json` export them.  Records hold no patient data.
"""
from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from ..errors import ArchiveError
from . import records

#: Layout version of an annotations record.
RECORD_VERSION = 1
#: Points per measurement type.
TYPES = {"distance": 2, "angle": 3, "rect": 2, "ellipse": 2}
#: Most measurements kept per series.
MAX_MEASUREMENTS = 2000
#: Number fields of a result (everything else in a result is refused).
RESULT_NUMBERS = ("mm", "px", "deg", "mean", "sd", "min", "max", "area", "n")
#: Text fields of a result.
RESULT_TEXTS = ("unit", "suffix")
#: Columns of the CSV export.
CSV_COLUMNS = ("index", "type", "value", "value_unit", "unit", "stack", "slice", "view",
               "mean", "sd", "min", "max", "area", "area_unit", "n",
               "x1", "y1", "z1", "x2", "y2", "z2", "x3", "y3", "z3")


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} is not a finite number")
    return float(v)


def _vec(v: Any, what: str) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise ValueError(f"{what} is not a point of three coordinates")
    return [_num(x, what) for x in v]


def _text(v: Any, what: str, n: int = 64) -> str:
    if not isinstance(v, str) or len(v) > n or "\x00" in v:
        raise ValueError(f"{what} is not a text of at most {n} characters")
    return v


def check_measurement(m: Any, i: int = 0) -> dict:
    """One measurement, checked and reduced to the stored fields.

    Parameters
    ----------
    m : dict
        ``type`` (distance, angle, rect, ellipse), ``points`` (2, or 3 for an
        angle, each ``[x, y, z]``), ``unit`` ("mm" or "px"), optional
        ``view`` (plane key), ``plane`` (``{"native": bool, "slice": int}`` or
        ``{"native": false, "u": [...], "v": [...]}``), ``stack``, ``slice`` and
        ``result``.
    i : int
        Its position (1-based) for messages.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        Naming the measurement and what is wrong with it.
    """
    what = f"measurement {i}"
    if not isinstance(m, dict):
        raise ValueError(f"{what} is not an object")
    typ = m.get("type")
    if typ not in TYPES:
        raise ValueError(f"{what}: type must be one of {', '.join(TYPES)}")
    pts = m.get("points")
    if not isinstance(pts, (list, tuple)) or len(pts) != TYPES[typ]:
        raise ValueError(f"{what}: a {typ} has {TYPES[typ]} points")
    out: dict[str, Any] = {"type": typ,
                           "points": [_vec(p, f"{what}: point {j + 1}") for j, p in enumerate(pts)]}
    unit = m.get("unit", "mm")
    if unit not in ("mm", "px"):
        raise ValueError(f"{what}: unit must be mm or px")
    out["unit"] = unit
    out["view"] = _text(m.get("view", ""), f"{what}: view")
    for k in ("stack", "slice"):
        v = m.get(k)
        if v is None:
            out[k] = None if k == "slice" else 0
        elif isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 24:
            raise ValueError(f"{what}: {k} is not a whole number >= 0")
        else:
            out[k] = v
    plane = m.get("plane")
    if plane is not None:
        if not isinstance(plane, dict) or not isinstance(plane.get("native"), bool):
            raise ValueError(f"{what}: plane must say whether it is the acquired slice (native)")
        if plane["native"]:
            s = plane.get("slice")
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ValueError(f"{what}: plane.slice is not a whole number >= 0")
            out["plane"] = {"native": True, "slice": s}
        else:
            out["plane"] = {"native": False, "u": _vec(plane.get("u"), f"{what}: plane.u"),
                            "v": _vec(plane.get("v"), f"{what}: plane.v")}
    res = m.get("result")
    if res is not None:
        if not isinstance(res, dict):
            raise ValueError(f"{what}: result is not an object")
        r: dict[str, Any] = {}
        for k, v in res.items():
            if k in RESULT_NUMBERS:
                if v is not None:   # an empty ROI has no mean: null
                    r[k] = _num(v, f"{what}: result.{k}")
                    if k == "n":
                        r[k] = int(r[k])
            elif k in RESULT_TEXTS:
                r[k] = _text(v, f"{what}: result.{k}")
            else:
                raise ValueError(f"{what}: result has an unknown field {k!r}")
        out["result"] = r
    return out


def check_measurements(items: Any) -> list[dict]:
    """A list of measurements checked with :func:`check_measurement`.

    Raises
    ------
    ValueError
        Not a list, too many, or one of them is malformed (named).
    """
    if not isinstance(items, (list, tuple)):
        raise ValueError("measurements must be a list")
    if len(items) > MAX_MEASUREMENTS:
        raise ValueError(f"at most {MAX_MEASUREMENTS} measurements are kept per series ({len(items)} given)")
    return [check_measurement(m, i + 1) for i, m in enumerate(items)]


class ArchiveMeasurements:
    """Measurement methods of :class:`pocketpacs.Archive`."""

    _store: Any
    readonly: bool

    def measurements(self, series: Any) -> list[dict]:
        """The measurements kept with a series (empty when none).

        Parameters
        ----------
        series : Series, str
            The series (record, hex key or Series Instance UID).

        Returns
        -------
        list of dict
            As saved (see :func:`check_measurement`).

        Raises
        ------
        KeyError
            No such series in the archive.
        """
        with self._store.read() as t:
            sek = self._series_key(series, t)   # type: ignore[attr-defined]
            if t.get("series", sek) is None:
                raise KeyError("no such series")
            raw = t.get("annotations", sek)
        if raw is None:
            return []
        rec = records.loads(raw)
        return list(rec.get("measurements") or []) if isinstance(rec, dict) else []

    def save_measurements(self, series: Any, items: list[dict]) -> int:
        """Replace the measurements kept with a series.

        Parameters
        ----------
        series : Series, str
            The series (record, hex key or Series Instance UID).
        items : list of dict
            Every measurement of the series (see :func:`check_measurement`);
            an empty list deletes the record.

        Returns
        -------
        int
            How many are kept.

        Raises
        ------
        KeyError
            No such series in the archive.
        ValueError
            A measurement is malformed (the message names it).
        ArchiveError
            The archive is open read-only.
        """
        if self.readonly:
            raise ArchiveError("the archive is open read-only: measurements cannot be saved")
        clean = check_measurements(items)

        def fn(t: Any) -> int:
            sek = self._series_key(series, t)   # type: ignore[attr-defined]
            if t.get("series", sek) is None:
                raise KeyError("no such series")
            if clean:
                t.put("annotations", sek, records.dumps({"v": RECORD_VERSION, "measurements": clean}))
            else:
                t.delete("annotations", sek)
            return len(clean)

        return self._store.write(fn)


def _value(m: dict) -> tuple[float | None, str]:
    """The main value of a measurement (length or angle) and its unit."""
    r = m.get("result") or {}
    if m["type"] == "angle":
        a, b, c = m["points"]
        u = [a[i] - b[i] for i in range(3)]
        v = [c[i] - b[i] for i in range(3)]
        nu, nv = math.hypot(*u), math.hypot(*v)
        d = sum(x * y for x, y in zip(u, v)) / ((nu * nv) or 1.0)
        return r.get("deg", math.degrees(math.acos(max(-1.0, min(1.0, d))))), "deg"
    if m["type"] == "distance":
        unit = r.get("unit") or m.get("unit", "mm")
        if unit in r:
            return r[unit], unit
        return math.dist(m["points"][0], m["points"][1]), m.get("unit", "mm")
    return None, ""


def to_rows(items: list[dict]) -> list[dict]:
    """One flat row per measurement (the CSV columns, :data:`CSV_COLUMNS`)."""
    rows = []
    for i, m in enumerate(items):
        r = m.get("result") or {}
        value, vunit = _value(m)
        row: dict[str, Any] = {"index": i + 1, "type": m["type"], "value": value, "value_unit": vunit,
                               "unit": m.get("unit", "mm"), "stack": m.get("stack", 0),
                               "slice": m.get("slice"), "view": m.get("view", "")}
        for k in ("mean", "sd", "min", "max", "area", "n"):
            row[k] = r.get(k)
        row["area_unit"] = f"{r.get('unit') or m.get('unit', 'mm')}2" if "area" in r else ""
        for j in range(3):
            p = m["points"][j] if j < len(m["points"]) else [None] * 3
            for a, v in zip("xyz", p):
                row[f"{a}{j + 1}"] = v
        rows.append(row)
    return rows


def to_csv(items: list[dict]) -> str:
    """The measurements as CSV text (header row :data:`CSV_COLUMNS`; points in
    the image's unit; ``slice`` is the 0-based index of the acquired slice in its
    stack, empty for a measurement drawn on a reformatted plane)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in to_rows(items):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def to_json(series_uid: str, items: list[dict]) -> str:
    """The measurements as JSON text: ``{"series_uid", "measurements"}``."""
    return json.dumps({"series_uid": series_uid, "measurements": items}, indent=2) + "\n"
