"""Archive records: patient, study, series, instance, file listing.

Patient, study and series records are small JSON objects (orjson) written
once per group of files; they are returned to callers as frozen
dataclasses (:class:`Patient`, :class:`Study`, :class:`Series`).

Instances are many, so their values are compact: a fixed binary head (one
row of :data:`INST_DTYPE`: flags, size, mtime, header fingerprint, pixel
data location and every numeric tag of the archive's tag set) followed by
the instance-level text values and the file paths joined with NUL.  A batch
of instance values is built with NumPy column assignments, and a series'
instances decode back into one structured array (:func:`instance_array`).

File listings (:class:`DirListing`: each file's name, size, mtime, instance
key and status per folder) live in :mod:`.listings` and are importable from
here too.

No I/O here.
"""
from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ..dicom import tags
from ..errors import REBUILD_ADVICE, ArchiveDamaged

if TYPE_CHECKING:
    import numpy as np


class DamagedRecord(ArchiveDamaged, ValueError):
    """A stored record does not decode (also a ValueError, as before)."""

RECORD_VERSION = 1

# ---- instance flags --------------------------------------------------------------
OFFLINE = 1        #: none of the instance's files was found at the last check
FALLBACK = 2       #: header parsed by the pydicom fallback
ENCAPSULATED = 4   #: compressed (encapsulated) pixel data
CONFLICT = 8       #: another file with this SOP Instance UID has different content

#: Numeric tags kept per instance, in the column order of ``tags.NUM_START``.
NUMERIC_KEYWORDS: tuple[str, ...] = tuple(t.keyword for t in tags.TAGS if t.nvals)

#: Text tags kept per instance (series/study/patient values live in their records).
#: (Everything else is read from the file when asked for: ``Archive.header``.)
#: The first three are stored before the paths; the others (what the viewer
#: needs to plan a stack without reading the files) after them, so records
#: written before they were added, which end with the paths, still decode
#: (without those keys), and older readers ignore them.
INSTANCE_TEXT: tuple[str, ...] = ("SOPInstanceUID", "SOPClassUID", "TransferSyntaxUID",
                                  "PhotometricInterpretation", "ImageType")
_NT_HEAD = 3

#: Bytes of an instance value's head row (``INST_DTYPE.itemsize``).
HEAD = 1 + 1 + 2 + 5 * 8 + 8 * tags.NUM_COLUMNS
_INST_DTYPE: list[Any] = []


def _inst_dtype() -> Any:
    """The NumPy dtype of a head row, made on first use (so that the commands
    that only read study and patient records start without NumPy)."""
    if not _INST_DTYPE:
        import numpy as np

        dt = np.dtype([
            ("ver", "u1"), ("flags", "u1"), ("nloc", "<u2"),
            ("size", "<i8"), ("mtime_ns", "<i8"), ("fingerprint", "<u8"),
            ("pixel_offset", "<i8"), ("pixel_length", "<i8"),
            ("nums", "<f8", (tags.NUM_COLUMNS,)),
        ])
        assert dt.itemsize == HEAD
        _INST_DTYPE.append(dt)
    return _INST_DTYPE[0]


def __getattr__(name: str) -> Any:
    """``INST_DTYPE``: the head row's dtype (:func:`_inst_dtype`)."""
    if name == "INST_DTYPE":
        return _inst_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dumps(obj: Any) -> bytes:
    """orjson encoding used for every JSON record (NaN becomes null)."""
    return orjson.dumps(obj)


#: First byte of a counted record (patient, study, series records since schema 6):
#: ``COUNTED``, then ``n_instances`` and ``size`` (two little-endian int64),
#: then the JSON object of the other values.  An import adding files to a
#: series changes only those two numbers of the series, its study and its
#: patient: :func:`add_counts` patches them without decoding the JSON (a
#: JSON object starts with ``{``, so both forms read back with :func:`loads`).
COUNTED = b"\x01"
_COUNTS = struct.Struct("<qq")
_COUNTED_AT = 1 + _COUNTS.size
#: Length of the counts of a record (``n_instances`` and ``size``; a counts entry of schema 8)
COUNTS_SIZE = _COUNTS.size


def dumps_counted(rec: dict) -> bytes:
    """A patient, study or series record as stored: its counts, then its other values as JSON."""
    body = {k: v for k, v in rec.items() if k != "n_instances" and k != "size"}
    return COUNTED + _COUNTS.pack(rec.get("n_instances", 0), rec.get("size", 0)) + orjson.dumps(body)


def add_counts(raw: bytes, n_instances: int, size: int) -> bytes:
    """A stored record (counted or plain JSON) with ``n_instances`` and ``size`` added to its counts.

    Raises
    ------
    DamagedRecord
        *raw* is not a record.
    """
    if raw[:1] == COUNTED and len(raw) > _COUNTED_AT:
        n, s = _COUNTS.unpack_from(raw, 1)
        return COUNTED + _COUNTS.pack(n + n_instances, s + size) + raw[_COUNTED_AT:]
    rec = loads(raw)
    if not isinstance(rec, dict):
        raise _damaged()
    rec["n_instances"] = rec.get("n_instances", 0) + n_instances
    rec["size"] = rec.get("size", 0) + size
    return dumps_counted(rec)


#: First byte of a record's body as LMDB stores it since schema 8: the JSON of
#: a counted record without its counts, which live in the record database's
#: counts database (``series_counts`` ...: key -> the two int64 of
#: :data:`COUNTED`).  An import that adds files to thousands of series
#: rewrites their small counts entries, not their records' pages.
#: :class:`~pocketpacs.archive.txn.Txn` joins the two on every read, so
#: the rest of the code sees :data:`COUNTED` records.
SPLIT = b"\x02"
#: The counts of a record whose counts entry is missing (a damaged archive: ``check`` says so).
NO_COUNTS = _COUNTS.pack(0, 0)


def split_counted(raw: bytes) -> tuple[bytes, bytes]:
    """``(body, counts)`` of a record to store: its :data:`SPLIT` body and
    its 16 bytes of counts (a counted record is cut, a plain JSON one decoded).

    Raises
    ------
    DamagedRecord
        *raw* is not a record.
    """
    if raw[:1] == COUNTED and len(raw) > _COUNTED_AT:
        return SPLIT + raw[_COUNTED_AT:], raw[1:_COUNTED_AT]
    rec = loads(raw)
    if not isinstance(rec, dict):
        raise _damaged()
    body = {k: v for k, v in rec.items() if k != "n_instances" and k != "size"}
    return SPLIT + orjson.dumps(body), _COUNTS.pack(rec.get("n_instances", 0), rec.get("size", 0))


def join_counted(body: bytes, counts: bytes | None) -> bytes:
    """The :data:`COUNTED` record of a stored body and counts entry (a body of
    another form, an archive not yet migrated, is returned as it is)."""
    if body[:1] != SPLIT:
        return body
    return COUNTED + (counts if counts is not None and len(counts) == _COUNTS.size else NO_COUNTS) + body[1:]


def damaged() -> DamagedRecord:
    """The error of a stored value that is not what its database holds (to raise)."""
    return _damaged()


def _damaged() -> DamagedRecord:
    return DamagedRecord(
        "a record of the archive database cannot be decoded: the database is damaged; "
        f"`pocketpacs check` says more, {REBUILD_ADVICE}")


def loads(raw: bytes) -> Any:
    """Decode a JSON record, or a counted one (:data:`COUNTED`) into one dict.

    Raises
    ------
    DamagedRecord
        The stored bytes are not a record (a damaged database file).
    """
    try:
        if raw[:1] == COUNTED:
            if len(raw) <= _COUNTED_AT:
                raise _damaged()
            rec = orjson.loads(memoryview(raw)[_COUNTED_AT:])
            if not isinstance(rec, dict):
                raise _damaged()
            rec["n_instances"], rec["size"] = _COUNTS.unpack_from(raw, 1)
            return rec
        if raw[:1] == SPLIT:   # (a body read past the Txn: its counts are elsewhere)
            return orjson.loads(memoryview(raw)[1:])
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _damaged() from None


def _clean(s: str | None) -> str:
    """Text value safe for a NUL-joined field."""
    if not s:
        return ""
    return s.replace("\0", "") if "\0" in s else s


def encode_instances(head: np.ndarray, texts: list[list[str | None]], paths: list[list[str]]
                     ) -> list[bytes]:
    """Encode instance values.

    Parameters
    ----------
    head : ndarray of INST_DTYPE
        One row per instance (``nloc`` is filled here).
    texts : list of list
        One list per :data:`INSTANCE_TEXT` keyword (column-wise).
    paths : list of list of str
        The file locations of each instance.

    Returns
    -------
    list of bytes
    """
    head["nloc"] = [len(p) for p in paths]
    head["ver"] = RECORD_VERSION
    raw = head.tobytes()
    cols = [[_clean(v) for v in col] for col in texts]
    cols = cols[:_NT_HEAD] + [["\0".join(p) for p in paths]] + cols[_NT_HEAD:]
    tails = ["\0".join(row) for row in zip(*cols)]
    return [raw[i * HEAD:(i + 1) * HEAD] + t.encode("utf-8", "surrogateescape")
            for i, t in enumerate(tails)]


def split_instance(raw: bytes) -> tuple[np.void, dict[str, str], list[str]]:
    """Decode one instance value into (head row, text values, paths)."""
    import numpy as np

    head = np.frombuffer(raw[:HEAD], dtype=_inst_dtype())[0]
    parts = raw[HEAD:].decode("utf-8", "surrogateescape").split("\0")
    nloc = int(head["nloc"])
    texts = dict(zip(INSTANCE_TEXT[:_NT_HEAD], parts[:_NT_HEAD]))
    paths = parts[_NT_HEAD:_NT_HEAD + nloc]
    extra = parts[_NT_HEAD + nloc:]
    if len(extra) == len(INSTANCE_TEXT) - _NT_HEAD:  # absent in records of older versions
        texts.update(zip(INSTANCE_TEXT[_NT_HEAD:], extra))
    return head, texts, paths


def join_instance(head: np.void | np.ndarray, texts: dict[str, str], paths: list[str]) -> bytes:
    """Inverse of :func:`split_instance`."""
    import numpy as np

    h = np.array(head, dtype=_inst_dtype()).reshape(1)
    h["nloc"] = len(paths)
    h["ver"] = RECORD_VERSION
    parts = [_clean(texts.get(k)) for k in INSTANCE_TEXT[:_NT_HEAD]] + list(paths)
    if all(k in texts for k in INSTANCE_TEXT[_NT_HEAD:]):  # else: an older record, kept as it was
        parts += [_clean(texts.get(k)) for k in INSTANCE_TEXT[_NT_HEAD:]]
    tail = "\0".join(parts)
    return h.tobytes() + tail.encode("utf-8", "surrogateescape")


def instance_array(raws: list[bytes]) -> np.ndarray:
    """Heads of many instance values as one structured array (no text)."""
    import numpy as np

    if not raws:
        return np.zeros(0, dtype=_inst_dtype())
    return np.frombuffer(b"".join(r[:HEAD] for r in raws), dtype=_inst_dtype()).copy()


_NUM_SLICES: list[tuple[str, int, int]] = []


def _num_slices() -> list[tuple[str, int, int]]:
    """``(keyword, start, count)`` of each numeric keyword in a head row's ``nums`` (made once)."""
    if not _NUM_SLICES:
        for kw in NUMERIC_KEYWORDS:
            k = tags.INDEX[kw]
            _NUM_SLICES.append((kw, int(tags.NUM_START[k]), int(tags.NUM_COUNT[k])))
    return _NUM_SLICES


def numeric_values(row: np.void | np.ndarray) -> dict[str, Any]:
    """Numeric tag values of one head row: keyword -> float, list, or None."""
    nums = row["nums"].tolist()  # one conversion; NaN (missing) is the value unequal to itself
    out: dict[str, Any] = {}
    for kw, c, n in _num_slices():
        vals = nums[c:c + n]
        if all(v != v for v in vals):
            out[kw] = None
        elif n == 1:
            out[kw] = vals[0]
        else:
            out[kw] = [None if v != v else v for v in vals]
    return out


# ---- public record types ----------------------------------------------------------------

#: How a patient without a name is shown, everywhere (CLI, UI, reports).
NO_NAME = "(no name)"


@dataclass(frozen=True)
class Patient:
    """A patient: identity plus counts over the archive."""
    key: str
    name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    anonymous: bool = False
    n_studies: int = 0
    n_series: int = 0
    n_instances: int = 0
    size: int = 0

    @property
    def display_name(self) -> str:
        """The name, or :data:`NO_NAME` (the one term the CLI and the UI use;
        :attr:`anonymous` tells a patient without name *and* ID)."""
        return (self.name or "").strip(" \t\r\n\0") or NO_NAME


@dataclass(frozen=True)
class Study:
    """A study with its attributes and counts."""
    key: str
    uid: str = ""
    patient_key: str = ""
    date: str = ""
    time: str = ""
    description: str = ""
    accession: str = ""
    study_id: str = ""
    institution: str = ""
    referring_physician: str = ""
    physicians: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    manufacturers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    n_series: int = 0
    n_instances: int = 0
    size: int = 0
    n_offline: int = 0


@dataclass(frozen=True)
class Series:
    """A series with its attributes, instance count and size on disk."""
    key: str
    uid: str = ""
    study_key: str = ""
    patient_key: str = ""
    number: int | None = None
    modality: str = ""
    description: str = ""
    date: str = ""
    time: str = ""
    body_part: str = ""
    protocol: str = ""
    manufacturer: str = ""
    model: str = ""
    station: str = ""
    performing_physician: str = ""
    frame_of_reference: str = ""
    n_instances: int = 0
    size: int = 0
    n_offline: int = 0

    @property
    def online(self) -> bool:
        """True when every instance has a file present (at the last check)."""
        return self.n_offline == 0


@dataclass(frozen=True)
class Instance:
    """One SOP instance with its file location(s) and stored header values."""
    key: str
    series_key: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str
    instance_number: int | None
    paths: tuple[str, ...]
    online: bool
    size: int
    mtime_ns: int
    fingerprint: int
    pixel_offset: int
    pixel_length: int
    encapsulated: bool
    conflict: bool
    text: dict[str, str] = field(default_factory=dict, compare=False)
    values: dict[str, Any] = field(default_factory=dict, compare=False)


def _fields(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


_PATIENT_FIELDS = _fields(Patient)
_STUDY_FIELDS = _fields(Study)
_SERIES_FIELDS = _fields(Series)


def _tuple_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if str(f.type).startswith("tuple"))


_TUPLES = {Patient: _tuple_fields(Patient), Study: _tuple_fields(Study), Series: _tuple_fields(Series)}


def _build(cls: type, names: frozenset[str], key: bytes, d: dict) -> Any:
    kw = {k: v for k, v in d.items() if k in names}
    for f in _TUPLES[cls]:
        v = kw.get(f)
        if v is not None:
            kw[f] = tuple(v)
    return cls(key=key.hex(), **kw)


def patient_from(key: bytes, d: dict) -> Patient:
    """Patient dataclass from a stored record."""
    return _build(Patient, _PATIENT_FIELDS, key, d)


def study_from(key: bytes, d: dict) -> Study:
    """Study dataclass from a stored record."""
    return _build(Study, _STUDY_FIELDS, key, d)


def series_from(key: bytes, d: dict) -> Series:
    """Series dataclass from a stored record."""
    return _build(Series, _SERIES_FIELDS, key, d)


def instance_from(key: bytes, raw: bytes) -> Instance:
    """Instance dataclass from a stored compact value."""
    head, texts, paths = split_instance(raw)
    values = numeric_values(head)
    inum = values.get("InstanceNumber")
    flags = int(head["flags"])
    return Instance(
        key=key.hex(), series_key=key[:8].hex(), sop_instance_uid=texts.get("SOPInstanceUID", ""),
        sop_class_uid=texts.get("SOPClassUID", ""), transfer_syntax=texts.get("TransferSyntaxUID", ""),
        instance_number=None if inum is None else int(inum), paths=tuple(paths),
        online=not flags & OFFLINE, size=int(head["size"]), mtime_ns=int(head["mtime_ns"]),
        fingerprint=int(head["fingerprint"]), pixel_offset=int(head["pixel_offset"]),
        pixel_length=int(head["pixel_length"]), encapsulated=bool(flags & ENCAPSULATED),
        conflict=bool(flags & CONFLICT), text=texts, values=values)


# ---- folder listings (their own module, kept importable from here) -------------------------
from .listings import (CODE, CODES, SECTION, TRANSIENT, DirListing, _le, listing_end,  # noqa: E402,F401
                       listing_section, listing_unchanged, listing_with_section, listing_without_section)
