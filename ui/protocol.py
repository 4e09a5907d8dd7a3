"""Versioned messages shared by the JS bridge and the local data server.

Every command answers with one *envelope*::

    {"ok": true,  "data": ..., "protocol_version": 1}
    {"ok": false, "error": {"code": "...", "message": "..."}, "protocol_version": 1}

Error messages are written here or in :mod:`pocketpacs.ui.bridge`, never
copied from an exception: exception text can hold file paths (which on a CD
often contain patient names) or header values.

Binary volume frames (served by :mod:`pocketpacs.ui.server`) are::

    uint32 little-endian  n        length of the JSON header in bytes (padded)
    n bytes               JSON     UTF-8, padded with spaces so 4 + n % 8 == 0
    remaining bytes       voxels   C order (slice, row, column), little-endian

so the voxels start 8-byte aligned and the page wraps them in a typed array
without copying.

Slices whose pixel data could not be decoded hold zeros, and the page is told
so three ways, never left to show them as a black image: the volume header's
``unreadable`` lists those known when it is sent (every one, for a volume
assembled whole), the ``volume_status`` command's ``unreadable`` every one
found so far while the slices are read, and the answer to
``GET /v1/volume/<id>/slice/<z>`` for such a slice carries the response
header ``X-PocketPACS-Unreadable: 1`` (:data:`UNREADABLE_HEADER`; its frame
header's ``unreadable`` then names the slice and why).  Each entry is
``{"slice", "volume", "reason"}``: the slice within its volume, the volume of
a 4D stack (0 otherwise), the decoder's message without any file path.
"""
from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import lmdb
import numpy as np

from pocketpacs.errors import REBUILD_ADVICE, ArchiveDamaged, ArchiveError, ArchiveLocked, ArchiveUnsafe
from pocketpacs.dicom.codestreams import CodestreamError
from pocketpacs.images.affine import GeometryError
from pocketpacs.images.export import ExportError
from pocketpacs.images.frames import PixelError
from pocketpacs.images.openother import OpenOtherError
from pocketpacs.images.volume import VolumeError

PROTOCOL_VERSION = 1

#: Opaque ids the server accepts in URLs: lowercase hex, nothing else.
OPAQUE_ID = re.compile(r"^[0-9a-f]{16,64}$")

#: Response header of a slice whose pixel data could not be decoded (value ``"1"``).
UNREADABLE_HEADER = "X-PocketPACS-Unreadable"

#: dtypes the page can upload as 16/32-bit textures ("uint8": colour only, ``samples`` 3).
WIRE_DTYPES = ("int16", "uint16", "float32", "uint8")

# Error codes (stable; the page switches on them).
BAD_REQUEST = "bad_request"
NOT_ALLOWED = "not_allowed"
NOT_FOUND = "not_found"
CANCELLED = "cancelled"
SUPERSEDED = "superseded"
UNAVAILABLE = "unavailable"
NOT_A_VOLUME = "not_a_volume"
UNREADABLE = "unreadable"
READ_ONLY = "read_only"
INTERNAL = "internal"


class BridgeError(Exception):
    """An error whose code and message are safe to show in the page.

    Parameters
    ----------
    code : str
        One of the error codes of this module.
    message : str
        Human-readable text written by PocketPACS (no paths, no header values).
    details : dict, optional
        Extra content for the page, passed on in the envelope's ``error``:
        for ``not_a_volume`` answers about objects without pixels, what the
        object says (:func:`pocketpacs.images.nonimage.describe`: ``kind``,
        ``title``, ``lines``, ``truncated``), shown on screen only, never logged.
    """

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


def ok(data: Any = None) -> dict:
    """Return a success envelope.

    Parameters
    ----------
    data : Any
        JSON-serialisable payload.

    Returns
    -------
    dict
        ``{"ok": True, "data": data, "protocol_version": PROTOCOL_VERSION}``.
    """
    return {"ok": True, "data": data, "protocol_version": PROTOCOL_VERSION}


def fail(code: str, message: str, details: dict | None = None) -> dict:
    """Return an error envelope.

    Parameters
    ----------
    code : str
        Stable error code.
    message : str
        Safe human-readable message.
    details : dict, optional
        Extra content for the page (see :class:`BridgeError`); left out when None.

    Returns
    -------
    dict
        ``{"ok": False, "error": {"code", "message"[, "details"]}, "protocol_version"}``.
    """
    err: dict = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"ok": False, "error": err, "protocol_version": PROTOCOL_VERSION}


#: What the app says about an archive folder another local user could change
#: (:class:`~pocketpacs.errors.ArchiveUnsafe`; the log names the folder and why).
UNSAFE_ARCHIVE = ("The archive folder is not used: another user of this computer could change it (it is not "
                  "yours, or others may write to it). Choose a folder only you can write to; the log names "
                  "the folder and why.")


def envelope_for_exception(exc: BaseException) -> dict:
    """Map any exception to an error envelope without leaking its text.

    Parameters
    ----------
    exc : BaseException
        The exception a command raised.

    Returns
    -------
    dict
        An error envelope.  Only :class:`BridgeError` messages are passed on;
        everything else becomes a fixed message chosen by exception type.
    """
    if isinstance(exc, BridgeError):
        return fail(exc.code, exc.message, getattr(exc, "details", None))
    if isinstance(exc, (GeometryError, VolumeError)):
        return fail(NOT_A_VOLUME, "These images do not form a volume that can be displayed.")
    if isinstance(exc, (PixelError, CodestreamError)):
        return fail(UNREADABLE, "The image data of these files could not be read or decoded.")
    if isinstance(exc, OpenOtherError):
        return fail(UNREADABLE, "That file could not be opened as an image.")
    if isinstance(exc, ExportError):
        return fail(UNAVAILABLE, "The image could not be exported.")
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return fail(NOT_FOUND, "That file or folder does not exist.")
    if isinstance(exc, PermissionError):
        return fail(UNREADABLE, "Permission denied.")
    if isinstance(exc, ArchiveLocked):
        return fail(UNAVAILABLE, "Another program is writing to the archive.")
    if isinstance(exc, ArchiveUnsafe):
        return fail(UNAVAILABLE, UNSAFE_ARCHIVE)
    # LMDB's refusal of a key or value size is a bug of ours (internal), not damage
    if isinstance(exc, ArchiveDamaged) or (isinstance(exc, lmdb.Error)
                                           and not isinstance(exc, lmdb.BadValsizeError)):
        return fail(UNAVAILABLE, "The archive database could not be read and may be damaged. Close "
                                 f"PocketPACS and run `pocketpacs check`; {REBUILD_ADVICE}.")
    if isinstance(exc, ArchiveError):  # SchemaVersionMismatch, ArchiveReadOnly, ...
        return fail(UNAVAILABLE, "The archive could not be used.")
    return fail(INTERNAL, "Something went wrong; the details are in PocketPACS' log file "
                          "(`pocketpacs log` shows where it is).")


# ---------------------------------------------------------------- arguments
@dataclass(frozen=True)
class Arg:
    """One argument of a bridge command.

    Parameters
    ----------
    kind : type
        ``str``, ``int``, ``float``, ``bool``, ``list`` or ``dict``.
    required : bool
        Whether the key must be present.
    max_len : int
        Upper bound on string length or list length.
    lo, hi : float
        Inclusive bounds for numbers.
    pattern : str
        Regular expression a string must match in full.
    default : Any
        Value used when the key is absent.
    """

    kind: type
    required: bool = False
    max_len: int = 4096
    lo: float = -math.inf
    hi: float = math.inf
    pattern: str | None = None
    default: Any = None


def validate_args(args: Any, schema: Mapping[str, Arg]) -> dict:
    """Check a command's arguments against its schema.

    Parameters
    ----------
    args : Any
        What the page sent (``None`` or a dict).
    schema : Mapping[str, Arg]
        Allowed keys.

    Returns
    -------
    dict
        The arguments with defaults filled in.

    Raises
    ------
    BridgeError
        ``bad_request`` for unknown keys, wrong types or out-of-range values.
    """
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BridgeError(BAD_REQUEST, "Arguments must be an object.")
    unknown = [k for k in args if k not in schema]
    if unknown:
        raise BridgeError(BAD_REQUEST, "Unknown argument.")
    out: dict = {}
    for key, spec in schema.items():
        if key not in args or args[key] is None:
            if spec.required:
                raise BridgeError(BAD_REQUEST, f"Missing argument '{key}'.")
            out[key] = spec.default
            continue
        value = args[key]
        if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if spec.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, spec.kind) or (spec.kind in (int, float) and isinstance(value, bool)):
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' has the wrong type.")
        if isinstance(value, (str, list, dict)) and len(value) > spec.max_len:
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' is too long.")
        if isinstance(value, (int, float)) and not (spec.lo <= value <= spec.hi):
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' is out of range.")
        if isinstance(value, float) and not math.isfinite(value):
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' is not a number.")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' is malformed.")
        if isinstance(value, str) and "\x00" in value:
            raise BridgeError(BAD_REQUEST, f"Argument '{key}' is malformed.")
        out[key] = value
    return out


# ---------------------------------------------------------------- volumes
@dataclass
class VolumeHeader:
    """What the page needs to display a volume, sent before its voxels.

    Parameters
    ----------
    shape : tuple of int
        ``(slices, rows, columns)`` (colour samples are not part of it).
    dtype : str
        One of :data:`WIRE_DTYPES`; ``"uint8"`` only with ``samples`` 3.
    affine_lps : list of list of float
        4x4 matrix mapping ``(column, row, slice, 1)`` indices to LPS mm.
    spacing : list of float
        ``[column, row, slice]`` spacing in mm.
    slope, intercept : float
        Rescale from stored to real-world values (``real = stored*slope + intercept``).
    units : str
        Real-world units (``"HU"`` for CT), or ``""``.
    windows : list of dict
        Presets ``{"name", "center", "width"}`` in real-world units; the first is the default.
    kind : str
        ``"volume"`` or ``"sequence"``.
    modality : str
        DICOM modality or ``"OT"``.
    invert : bool
        True for MONOCHROME1 (display inverted by default).
    labels : dict
        Text for the overlay corners (patient, study, series...).  The page
        renders these with ``textContent``.
    value_range : list of float
        ``[min, max]`` of stored values (for histogram-less auto windows).
    calibration : dict
        What a pixel measures (:mod:`pocketpacs.images.calibration`):
        ``{"kind", "spacing_mm", "note"}`` with ``kind`` one of ``"patient"``
        (Pixel Spacing, or a NIfTI affine), ``"detector"`` (Imager Pixel
        Spacing: at the detector), ``"detector_corrected"`` (divided by the
        estimated magnification: at the isocenter), ``"us_region"`` (plus
        ``"regions"``: ``[{"bbox": [x0, y0, x1, y1], "spacing_mm": [dy, dx]}]``,
        each valid inside its box) or ``"none"`` (uncalibrated: the affine
        and ``spacing`` are a unit pixel grid, not mm; the page measures in
        px and shows no orientation letters).  Only ``"patient"`` gives
        orientation letters.  Default: uncalibrated.
    stack : dict
        ``{"index", "count"}``: which stack of the series this is (0: the
        largest) and how many stacks the series has; ``"labels"``: a short
        description of each stack (for a picker), when known.
    samples : int
        1 (greyscale: one value per voxel) or 3 (colour: RGB, ``uint8``,
        interleaved ``R, G, B`` per voxel, so a slice is ``rows * columns * 3``
        bytes).  RGB, YBR and PALETTE COLOR DICOM and colour images opened
        with Open Other are sent as RGB; slope/intercept are 1/0, ``units``
        is empty and ``windows`` hold one identity window (128/256) that
        the page applies to each channel alike.  MPR and 3D show the
        luminance (0.299 R + 0.587 G + 0.114 B).
    volumes : dict
        ``{"count", "axis", "values"}``: the volumes of a 4D stack (``count`` 1:
        a 3D one), along ``"time"``, ``"echo"``, ``"b-value"`` or ``"volume"``,
        with their values where the headers give them (else None).  Slice
        ``z`` of volume ``t`` is fetched with ``?t=``.
    frame_of_reference : str
        The series' Frame of Reference UID (``""`` when it has none, or for
        files opened with Open Other).  Two volumes with the same one share
        patient coordinates: the Compare view links them by world position.
    unreadable : list of dict
        Slices known, when the header is sent, to hold no image because their
        pixel data could not be decoded (they are sent as zeros): ``{"slice",
        "volume", "reason"}`` each (slice within its volume, volume 0 unless
        4D, the decoder's message without file paths).  Complete for a volume
        assembled whole; for one read slice by slice, ``volume_status`` and
        the slice answers' ``X-PocketPACS-Unreadable`` header tell the rest.
    """

    shape: tuple
    dtype: str
    affine_lps: list
    spacing: list
    slope: float = 1.0
    intercept: float = 0.0
    units: str = ""
    windows: list = field(default_factory=list)
    kind: str = "volume"
    modality: str = "OT"
    invert: bool = False
    labels: dict = field(default_factory=dict)
    value_range: list = field(default_factory=lambda: [0.0, 0.0])
    calibration: dict = field(default_factory=lambda: {"kind": "none", "spacing_mm": None,
                                                       "note": "uncalibrated"})
    stack: dict = field(default_factory=lambda: {"index": 0, "count": 1})
    samples: int = 1
    volumes: dict = field(default_factory=lambda: {"count": 1, "axis": None, "values": None})
    frame_of_reference: str = ""
    unreadable: list = field(default_factory=list)

    def to_json(self) -> dict:
        """Return the header as a JSON-ready dict.

        Returns
        -------
        dict
            The fields plus ``protocol_version`` and ``slice_bytes``.
        """
        nz, ny, nx = (int(v) for v in self.shape[:3])
        return {
            "protocol_version": PROTOCOL_VERSION,
            "shape": [nz, ny, nx],
            "dtype": self.dtype,
            "affine_lps": [[float(v) for v in row] for row in self.affine_lps],
            "spacing": [float(v) for v in self.spacing],
            "rescale": {"slope": float(self.slope), "intercept": float(self.intercept)},
            "units": self.units,
            "windows": [{"name": str(w["name"]), "center": float(w["center"]),
                         "width": float(w["width"])} for w in self.windows],
            "kind": self.kind,
            "modality": self.modality,
            "invert": bool(self.invert),
            "labels": {str(k): str(v) for k, v in self.labels.items()},
            "value_range": [float(self.value_range[0]), float(self.value_range[1])],
            "calibration": _calibration_json(self.calibration),
            "slice_bytes": ny * nx * np.dtype(self.dtype).itemsize * int(self.samples),
            "samples": int(self.samples),
            "stack": _stack_json(self.stack),
            "volumes": _volumes_json(self.volumes),
            "frame_of_reference": str(self.frame_of_reference or ""),
            "unreadable": unreadable_json(self.unreadable),
        }


def unreadable_json(frames: Any) -> list:
    """Unreadable slices with plain JSON types, in slice order (``{"slice", "volume", "reason"}``).

    Parameters
    ----------
    frames : iterable of mapping
        Entries with ``slice``, ``volume`` (default 0) and ``reason``.

    Returns
    -------
    list of dict
    """
    out = [{"slice": int(f["slice"]), "volume": int(f.get("volume", 0)), "reason": str(f.get("reason", ""))}
           for f in frames or ()]
    return sorted(out, key=lambda f: (f["volume"], f["slice"]))


def _stack_json(stack: Mapping[str, Any]) -> dict:
    """The header's ``stack`` with plain JSON types (labels only when given)."""
    out: dict = {"index": int(stack["index"]), "count": int(stack["count"])}
    if stack.get("labels") is not None:
        out["labels"] = [str(x) for x in stack["labels"]]
    return out


def _volumes_json(vols: Mapping[str, Any]) -> dict:
    """The header's ``volumes`` with plain JSON types (unknown axes read as "volume")."""
    n = max(1, int(vols.get("count", 1)))
    axis = vols.get("axis")
    if n > 1 and axis not in ("time", "echo", "b-value", "volume"):
        axis = "volume"
    values = vols.get("values")
    if values is not None and len(values) != n:
        values = None
    return {"count": n, "axis": axis if n > 1 else None,
            "values": None if values is None else [float(v) for v in values]}


def _calibration_json(cal: Mapping[str, Any]) -> dict:
    """The calibration dict with plain JSON types (kinds outside the known set read as none)."""
    kinds = ("patient", "detector", "detector_corrected", "us_region", "none")
    kind = str(cal.get("kind", "none"))
    if kind not in kinds:
        kind = "none"
    sp = cal.get("spacing_mm")
    out: dict = {"kind": kind, "spacing_mm": None if sp is None or kind == "none"
                 else [float(sp[0]), float(sp[1])], "note": str(cal.get("note", ""))}
    if kind == "us_region":
        out["regions"] = [{"bbox": [int(v) for v in r["bbox"]],
                           "spacing_mm": [float(v) for v in r["spacing_mm"]]}
                          for r in cal.get("regions", [])]
    return out


def frame_prefix(header: Mapping[str, Any]) -> bytes:
    """Encode the length word and padded JSON header of a binary frame.

    Parameters
    ----------
    header : Mapping
        JSON-serialisable header.

    Returns
    -------
    bytes
        ``uint32 n`` + JSON padded with spaces; its length is a multiple of 8.
    """
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    pad = (-(4 + len(text))) % 8
    text += b" " * pad
    return struct.pack("<I", len(text)) + text


def encode_frame(header: Mapping[str, Any], voxels: np.ndarray) -> bytes:
    """Encode a complete frame (header and little-endian voxels).

    Parameters
    ----------
    header : Mapping
        JSON-serialisable header.
    voxels : numpy.ndarray
        Array written in C order, little-endian.

    Returns
    -------
    bytes
        The frame.
    """
    arr = np.ascontiguousarray(voxels)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return frame_prefix(header) + arr.tobytes()


def decode_frame(buf: bytes) -> tuple[dict, memoryview]:
    """Split a frame into its header and voxel bytes (for tests and tools).

    Parameters
    ----------
    buf : bytes
        A frame as produced by :func:`encode_frame`.

    Returns
    -------
    header : dict
        The decoded JSON header.
    voxels : memoryview
        The voxel bytes (8-byte aligned offset within *buf*).

    Raises
    ------
    ValueError
        When the frame is truncated or its header is not JSON.
    """
    if len(buf) < 4:
        raise ValueError("truncated frame")
    (n,) = struct.unpack_from("<I", buf, 0)
    if 4 + n > len(buf) or (4 + n) % 8:
        raise ValueError("bad frame header length")
    header = json.loads(bytes(buf[4:4 + n]).decode("ascii"))
    return header, memoryview(buf)[4 + n:]


def to_wire(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Convert an array to a dtype the page can texture, exactly where possible.

    Parameters
    ----------
    array : numpy.ndarray
        Stored voxel values of any numeric dtype.

    Returns
    -------
    wire : numpy.ndarray
        ``int16``/``uint16`` arrays unchanged; ``uint8``/``int8`` widened to
        ``int16``; other integers narrowed to ``int16``/``uint16`` when their
        range allows; everything else as ``float32``.
    slope, intercept : float
        Extra rescale the conversion introduced (``1, 0`` when exact).
    """
    dt = array.dtype
    if dt.kind == "b":
        return array.astype(np.int16), 1.0, 0.0
    if dt in (np.int16, np.uint16) and dt.byteorder in ("=", "<", "|"):
        return array, 1.0, 0.0
    if dt.kind in "iu":
        if dt.itemsize <= 2:
            return array.astype(np.int16 if dt.kind == "i" or dt.itemsize == 1 else np.uint16), 1.0, 0.0
        lo = int(array.min()) if array.size else 0
        hi = int(array.max()) if array.size else 0
        if -32768 <= lo and hi <= 32767:
            return array.astype(np.int16), 1.0, 0.0
        if 0 <= lo and hi <= 65535:
            return array.astype(np.uint16), 1.0, 0.0
    return array.astype(np.float32), 1.0, 0.0


def error_json(code: str, message: str) -> bytes:
    """Serialise an error envelope for an HTTP body.

    Parameters
    ----------
    code, message : str
        As for :func:`fail`.

    Returns
    -------
    bytes
        UTF-8 JSON.
    """
    return json.dumps(fail(code, message)).encode("utf-8")


Handler = Callable[[dict], Any]
