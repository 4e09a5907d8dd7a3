"""Every element of one DICOM instance, as text rows (the viewer's header browser).

:func:`instance_elements` reads one file completely with pydicom and flattens
its data set -- file meta information, nested sequences included -- into rows
``{"tag", "keyword", "vr", "vm", "value", "depth"}``.  Values are plain text
(bulk binary values are summarised by their length), so a caller can show
them without interpreting them; nothing here renders markup.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

#: Longest value text kept per element (longer values end with an ellipsis).
MAX_VALUE_CHARS = 512
#: Most rows returned for one instance.
MAX_ELEMENTS = 20000
#: Binary VRs summarised as "<n bytes>".
_BULK_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW", "US or OW", "US or SS or OW"}


def _text(value: Any, vr: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if vr in _BULK_VRS and hasattr(value, "__len__") and not isinstance(value, str):
        return f"<{len(value)} values>"
    try:
        from pydicom.multival import MultiValue
    except ImportError:  # pragma: no cover - pydicom always has it
        MultiValue = list  # type: ignore[assignment,misc]
    if isinstance(value, (list, tuple, MultiValue)):
        s = "\\".join(str(v) for v in value)
    else:
        s = str(value)
    if len(s) > MAX_VALUE_CHARS:
        s = s[:MAX_VALUE_CHARS] + "…"
    return s


def _rows(ds: Any, depth: int) -> Iterator[dict]:
    for elem in ds:
        tag = int(elem.tag)
        row = {"tag": f"({tag >> 16:04X},{tag & 0xFFFF:04X})", "keyword": elem.keyword or "",
               "vr": str(elem.VR or ""), "vm": int(elem.VM) if elem.VR != "SQ" else len(elem.value or []),
               "depth": depth}
        if elem.VR == "SQ":
            items = elem.value or []
            row["value"] = f"{len(items)} item{'s' if len(items) != 1 else ''}"
            yield row
            for i, item in enumerate(items):
                yield {"tag": "(FFFE,E000)", "keyword": f"Item {i + 1}", "vr": "", "vm": 0,
                       "value": "", "depth": depth + 1}
                yield from _rows(item, depth + 2)
            continue
        try:
            if tag == 0x7FE00010 or elem.VR in _BULK_VRS:
                raw = elem.value
                n = len(raw) if raw is not None and hasattr(raw, "__len__") else 0
                row["value"] = f"<{n} bytes>"
            else:
                row["value"] = _text(elem.value, str(elem.VR))
        except Exception:  # a malformed value: list the element, not its value
            row["value"] = "<unreadable value>"
        yield row


def instance_elements(path: str | os.PathLike[str], limit: int = MAX_ELEMENTS) -> dict:
    """List every element of one DICOM file.

    Parameters
    ----------
    path : path-like
        The instance (read completely with pydicom, ``force=True``).
    limit : int
        Most rows returned.

    Returns
    -------
    dict
        ``{"elements": [row, ...], "truncated": bool}``; each row is
        ``{"tag": "(GGGG,EEEE)", "keyword", "vr", "vm", "value", "depth"}``,
        file meta information first, sequence items indented by ``depth``.

    Raises
    ------
    pydicom.errors.InvalidDicomError, OSError
        When the file cannot be read.
    """
    import pydicom

    ds = pydicom.dcmread(os.fspath(path), force=True)
    out: list[dict] = []
    truncated = False
    meta = getattr(ds, "file_meta", None)
    sources = ([meta] if meta is not None and len(meta) else []) + [ds]
    for src in sources:
        for row in _rows(src, 0):
            if len(out) >= limit:
                truncated = True
                break
            out.append(row)
        if truncated:
            break
    return {"elements": out, "truncated": truncated}


__all__ = ["instance_elements", "MAX_VALUE_CHARS", "MAX_ELEMENTS"]
