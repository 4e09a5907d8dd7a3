"""The text content of DICOM objects that are not images, for the viewer to show.

The viewer answers "Not an image: <kind>" for objects without image pixels
(:class:`pocketpacs.images.volume.NotAnImageError`).  :func:`describe` reads
one such file with pydicom and returns what it cheaply says as plain text
lines: a structured report's content tree (text, codes, numbers, dates,
references; indented by nesting), an encapsulated PDF's title and size, an
RT structure set's ROI names, a presentation state's referenced series, and
the ASCII text a Siemens CSA non-image object (a Phoenix protocol report)
carries.  The result is capped (:data:`MAX_LINES` lines, :data:`MAX_BYTES`
bytes).  It may hold clinical text (an SR's findings): it is meant for the
screen only and is never logged; patient identification (name, ID, birth
date) is never part of it.
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any, Sequence

#: Most lines returned.
MAX_LINES = 500
#: Most bytes of text returned (UTF-8, all lines together).
MAX_BYTES = 64 * 1024
#: Deepest SR content nesting followed.
MAX_DEPTH = 32
#: Longest single line (longer ones are cut with an ellipsis).
MAX_LINE = 400

PDF_SOP = "1.2.840.10008.5.1.4.1.1.104.1"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
CSA_NON_IMAGE_SOP = "1.3.12.2.1107.5.9.1"
#: SOP Class UID prefix of the presentation states (grayscale, colour, blending...).
PR_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
#: SOP Class UID prefix of the structured reports (and key object selections).
SR_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_PRINTABLE_RUN = re.compile(rb"[\t\x20-\x7e]{6,}")


class _Lines:
    """Lines under the caps; ``full`` once a cap is reached."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.nbytes = 0
        self.full = False

    def add(self, text: str, depth: int = 0) -> None:
        if self.full:
            return
        text = " ".join(str(text).split())            # one line, no control characters
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE - 1] + "…"
        line = "  " * depth + text
        n = len(line.encode("utf-8")) + 1
        if len(self.lines) >= MAX_LINES or self.nbytes + n > MAX_BYTES:
            self.full = True
            return
        self.lines.append(line)
        self.nbytes += n


def _read(path: str) -> Any:
    from ..dicom.fallback import InflateCapError, read_dataset_capped

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read_dataset_capped(path, stop_before_pixels=True)
        except InflateCapError:
            import pydicom

            # a header past the cap (a large encapsulated document): values read when used
            return pydicom.dcmread(path, stop_before_pixels=True, defer_size=1 << 16)


def _code(item: Any, seq: str = "ConceptNameCodeSequence") -> str:
    s = item.get(seq)
    if not s:
        return ""
    c = s[0]
    return str(c.get("CodeMeaning", "") or c.get("CodeValue", "") or "")


def _sr_value(item: Any) -> str:
    vt = str(item.get("ValueType", "") or "").upper()
    if vt == "TEXT":
        return str(item.get("TextValue", "") or "")
    if vt == "CODE":
        return _code(item, "ConceptCodeSequence")
    if vt == "NUM":
        mv = item.get("MeasuredValueSequence")
        if not mv:
            return "(no value)"
        m = mv[0]
        unit = _code(m, "MeasurementUnitsCodeSequence")
        return f"{m.get('NumericValue', '')} {unit}".strip()
    if vt in ("DATE", "TIME", "DATETIME"):
        return str(item.get({"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime"}[vt], "") or "")
    if vt == "PNAME":
        return str(item.get("PersonName", "") or "")
    if vt == "UIDREF":
        return str(item.get("UID", "") or "")
    if vt in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return f"({vt.lower()} reference)"
    if vt in ("SCOORD", "SCOORD3D", "TCOORD"):
        return f"({vt.lower()})"
    return ""


def _sr(ds: Any, out: _Lines, seq: Any, depth: int) -> None:
    for item in seq or []:
        if out.full:
            return
        name = _code(item)
        vt = str(item.get("ValueType", "") or "").upper()
        if vt == "CONTAINER":
            out.add(name or "(container)", depth)
        else:
            value = _sr_value(item)
            out.add(f"{name}: {value}" if name and value else (name or value or f"({vt.lower() or 'item'})"), depth)
        if depth < MAX_DEPTH and item.get("ContentSequence"):
            _sr(ds, out, item.ContentSequence, depth + 1)


def _pdf(ds: Any, out: _Lines) -> str:
    title = str(ds.get("DocumentTitle", "") or "").strip()
    mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "application/pdf")
    n = None
    if "EncapsulatedDocument" in ds:
        el = ds.get_item("EncapsulatedDocument") if hasattr(ds, "get_item") else None
        length = getattr(el, "length", None)
        n = int(length) if isinstance(length, int) and length >= 0 else len(ds.EncapsulatedDocument or b"")
    out.add("PDF document" if "pdf" in mime.lower() else f"Encapsulated document ({mime})")
    if title:
        out.add(f"Title: {title}")
    if n is not None:
        out.add(f"Size: {n / 1024:.1f} KB" if n >= 1024 else f"Size: {n} bytes")
    return title or "Encapsulated document"


def _rtstruct(ds: Any, out: _Lines) -> str:
    label = str(ds.get("StructureSetLabel", "") or "").strip()
    rois = ds.get("StructureSetROISequence") or []
    out.add(f"{len(rois)} ROI(s)")
    for r in rois:
        out.add(f"{r.get('ROINumber', '?')}: {r.get('ROIName', '') or '(no name)'}", 1)
    return label or "RT structure set"


def _pr(ds: Any, out: _Lines) -> str:
    label = str(ds.get("ContentLabel", "") or "").strip()
    desc = str(ds.get("ContentDescription", "") or "").strip()
    if desc:
        out.add(desc)
    refs = ds.get("ReferencedSeriesSequence") or []
    out.add(f"Applies to {len(refs)} series:")
    for s in refs:
        imgs = s.get("ReferencedImageSequence") or []
        out.add(f"Series {s.get('SeriesInstanceUID', '?')}: {len(imgs)} image(s)", 1)
    return label or "Presentation state"


def _ascii_text(raw: bytes, out: _Lines) -> None:
    """ASCII text of a private blob: an ASCCONV section when there is one, else printable runs."""
    a = raw.find(b"### ASCCONV BEGIN")
    if a >= 0:
        b = raw.find(b"### ASCCONV END", a)
        e = len(raw) if b < 0 else b + 15
        while b >= 0 and e < len(raw) and raw[e:e + 1] in b" #":   # the marker's own " ###"
            e += 1
        raw = raw[a:e]
    for run in _PRINTABLE_RUN.findall(raw):
        for line in run.decode("ascii").splitlines():
            if line.strip():
                out.add(line.rstrip())
        if out.full:
            return


def _csa(ds: Any, out: _Lines) -> str:
    kind = ""
    blobs: list[bytes] = []
    for el in ds.iterall():
        if not el.tag.is_private or el.tag.element < 0x1000:
            continue
        v = el.value
        if isinstance(v, (bytes, bytearray)) and len(v) > 16:
            blobs.append(bytes(v))
        elif isinstance(v, str) and el.tag.element & 0xFF == 0x08:   # CSA Data Type (e.g. PHOENIX)
            kind = kind or v.strip()
    for b in blobs:
        _ascii_text(b, out)
        if out.full:
            break
    if not out.lines:
        out.add("(no text found)")
    return f"Siemens {kind.title()} report" if kind else "Siemens report"


def describe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a non-image DICOM object says, as text lines for the viewer.

    Parameters
    ----------
    path : path-like
        A DICOM file without image pixels (SR, encapsulated PDF, RT
        structure set, presentation state, Siemens CSA non-image, ...).

    Returns
    -------
    dict
        ``{"kind", "title", "lines", "truncated"}``: ``kind`` the SOP Class
        name (as in "Not an image: <kind>"), ``title`` a short heading,
        ``lines`` at most :data:`MAX_LINES` strings (indented by two spaces
        per SR nesting level; :data:`MAX_BYTES` in all), ``truncated`` True
        when the caps cut it.  Objects this module has no reader for give
        one line saying so.  A file that cannot be read gives its kind
        ``"unreadable"`` and one line naming the file's name and why.
    """
    from .volume import _kind_of

    p = os.fspath(path)
    out = _Lines()
    try:
        ds = _read(p)
    except Exception as exc:
        return {"kind": "unreadable", "title": "Not readable",
                "lines": [f"{os.path.basename(p)}: not readable as DICOM ({type(exc).__name__})"],
                "truncated": False}
    sop = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "")
    kind = _kind_of(sop or None, modality or None)
    try:
        if sop == PDF_SOP or "EncapsulatedDocument" in ds:
            title = _pdf(ds, out)
        elif sop == RTSTRUCT_SOP or "StructureSetROISequence" in ds:
            title = _rtstruct(ds, out)
        elif sop.startswith(PR_SOP_PREFIX):
            title = _pr(ds, out)
        elif sop == CSA_NON_IMAGE_SOP:
            title = _csa(ds, out)
        elif sop.startswith(SR_SOP_PREFIX) or "ContentSequence" in ds:
            title = _code(ds) or "Structured report"
            _sr(ds, out, ds.get("ContentSequence"), 0)
            if not out.lines:
                out.add("(no content)")
        else:
            title = kind
            out.add("No text content is shown for this kind of object.")
    except Exception as exc:  # a malformed object: say so, keep what was read
        title = kind
        out.full = False
        out.add(f"(the rest could not be read: {type(exc).__name__})")
    return {"kind": kind, "title": title, "lines": out.lines, "truncated": out.full}


def describe_series(paths: Sequence[str | os.PathLike[str]], max_files: int = 8) -> dict[str, Any]:
    """:func:`describe` of the first files of a series, their lines joined under the caps.

    Parameters
    ----------
    paths : sequence of path-like
        The series' files (all objects without image pixels).
    max_files : int
        Most files read.

    Returns
    -------
    dict
        As :func:`describe`; with several files, each file's lines follow a
        heading line of its title, and ``files`` says how many there are.
    """
    paths = list(paths)
    if len(paths) == 1:
        return describe(paths[0])
    out = _Lines()
    first: dict[str, Any] | None = None
    for p in paths[:max_files]:
        d = describe(p)
        first = first or d
        out.add(f"— {d['title']}")
        for line in d["lines"]:
            out.add(line, 1)
        if out.full:
            break
    if len(paths) > max_files:
        out.add(f"({len(paths) - max_files} more object(s) not shown)")
    assert first is not None or not paths
    if first is None:
        return {"kind": "unknown object", "title": "No files", "lines": [], "truncated": False}
    return {"kind": first["kind"], "title": first["title"], "lines": out.lines,
            "truncated": out.full or first["truncated"], "files": len(paths)}
