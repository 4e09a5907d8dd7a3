"""Decoding raw DICOM values as pydicom decodes them: the one charset decoder.

A raw Specific Character Set value (``b"ISO_IR 100"``, ``b"\\\\ISO 2022 IR
87"``...) becomes Python codec names (:func:`python_encodings`, pydicom's
``convert_encodings``, unknown names falling back to pydicom's default); a raw
value of any VR becomes what pydicom's ``convert_value`` makes of it, as plain
Python (:func:`decode_value`: str, int, float or a list of them, PN in its
``str()`` form); :func:`decode_text` gives a text value as one string,
multiple values joined with a backslash.  The header parser's slow path
(values that are not plain ASCII) decodes through here; anything else that
decodes header text should too, so the same bytes give the same string.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

#: pydicom's encoding when a file has no (or an unknown) Specific Character Set.
DEFAULT_ENCODINGS = ("iso8859",)

#: VRs whose empty value pydicom reads as None (text VRs read as "").
BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL",
                        "OV", "SV", "UV", "SQ", "UN"})


@lru_cache(maxsize=256)
def _encodings(specific_character_set: bytes) -> tuple[str, ...]:
    from pydicom.charset import convert_encodings

    if not specific_character_set:
        return DEFAULT_ENCODINGS
    names = [v.strip().decode("latin-1")
             for v in specific_character_set.rstrip(b"\0 ").split(b"\\")]
    try:
        return tuple(convert_encodings(names))
    except Exception:  # unknown charset names: pydicom's default
        return DEFAULT_ENCODINGS


def python_encodings(specific_character_set: bytes | None) -> list[str]:
    """Python codec names for a raw Specific Character Set value (None or
    empty: pydicom's default, ``iso8859``)."""
    return list(_encodings(specific_character_set or b""))


def decode_value(raw: bytes, vr: str, specific_character_set: bytes | None = None, *,
                 tag: int = 0, little_endian: bool = True, implicit_vr: bool = False) -> Any:
    """One raw value decoded exactly as pydicom does, as plain Python.

    An empty value is ``""`` for text VRs and None for binary ones (pydicom's
    empty values); a value pydicom cannot convert is None.  ``tag``,
    ``little_endian`` and ``implicit_vr`` matter only for binary VRs.
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.values import convert_value

    if not raw:
        return None if vr in BINARY_VRS else ""
    elem = RawDataElement(tag, vr, len(raw), raw, 0, implicit_vr, little_endian, True, False)
    try:
        value = convert_value(vr, elem, python_encodings(specific_character_set))
    except Exception:
        return None
    return normalise(value)


def decode_text(raw: bytes, vr: str, specific_character_set: bytes | None) -> str | None:
    """A text value of VR ``vr`` decoded with its Specific Character Set as
    pydicom does (ISO 8859-x, UTF-8, ISO 2022 with escapes, GB18030...).

    Padding is stripped per value as pydicom strips it, multiple values are
    joined with a backslash, PN is in its ``str()`` form.  None when pydicom
    cannot decode the value.
    """
    return join_values(decode_value(raw, vr, specific_character_set))


def normalise(value: Any) -> Any:
    """pydicom value -> plain Python (str / int / float / list)."""
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DSfloat, IS, PersonName

    if value is None:
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, DSfloat):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def join_values(v: Any) -> str | None:
    """A plain value (or list of them) as one string, values joined with a backslash."""
    if v is None:
        return None
    if isinstance(v, list):
        return "\\".join("" if x is None else str(x) for x in v)
    return str(v)
