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

Text of the common charsets (the default repertoire, the single-byte ISO
8859 sets of ``ISO_IR 100``... and ``ISO 2022 IR 100``..., and UTF-8, each
alone in Specific Character Set, in a value without an escape byte) is
decoded here without pydicom, exactly as pydicom decodes it
(:data:`FAST_ENCODINGS`; importing pydicom costs 0.1-0.25 s, more than the
rest of a small import's start-up, issue 16); anything else (ISO 2022
escapes, several charsets, unknown names, bytes the charset does not define,
other VRs) goes to pydicom.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

#: pydicom's encoding when a file has no (or an unknown) Specific Character Set.
DEFAULT_ENCODINGS = ("iso8859",)

#: VRs whose empty value pydicom reads as None (text VRs read as "").
BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "OB", "OW", "OF", "OD", "OL",
                        "OV", "SV", "UV", "SQ", "UN"})


#: The Python codec pydicom decodes each of these Specific Character Sets with
#: (``pydicom.charset.python_encoding``; the tests check every entry against
#: it): the charsets decoded without pydicom, when alone and the value holds
#: no escape byte.  Multi-byte charsets (Japanese, Korean, Chinese) are not here.
FAST_ENCODINGS: dict[bytes, str] = {
    b"": "iso8859", b"ISO_IR 6": "iso8859", b"ISO 2022 IR 6": "iso8859",
    **{pre + num: codec for num, codec in (
        (b"100", "latin_1"), (b"101", "iso8859_2"), (b"109", "iso8859_3"), (b"110", "iso8859_4"),
        (b"126", "iso_ir_126"), (b"127", "iso_ir_127"), (b"138", "iso_ir_138"), (b"144", "iso_ir_144"),
        (b"148", "iso_ir_148"), (b"166", "iso_ir_166")) for pre in (b"ISO_IR ", b"ISO 2022 IR ")},
    b"ISO_IR 192": "UTF8",
}
#: The VRs whose values are decoded with the Specific Character Set (pydicom's
#: ``PN`` and ``CUSTOMIZABLE_CHARSET_VR``), and of them those split into values.
CHARSET_TEXT_VRS = frozenset({"PN", "SH", "LO", "UC", "ST", "LT", "UT"})
_SPLIT_VRS = frozenset({"PN", "SH", "LO", "UC"})


def _fast_codec(specific_character_set: bytes | None) -> str | None:
    """The codec of a raw Specific Character Set decoded without pydicom, or None."""
    scs = (specific_character_set or b"").rstrip(b"\0 ").strip()
    return FAST_ENCODINGS.get(scs)


def _decode_fast(raw: bytes, vr: str, codec: str) -> Any:
    """*raw* of text VR *vr* as pydicom decodes it with *codec* (plain Python:
    a str, or a list of them); None when pydicom must say (an escape byte, a
    byte the charset does not define: pydicom warns and replaces it)."""
    if b"\x1b" in raw:
        return None
    if vr == "PN":
        raw = raw.rstrip(b"\0 ")
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        return None
    if vr not in _SPLIT_VRS:
        return text.rstrip("\0 ")
    if vr == "PN":  # a PersonName's str(): its "=" groups, trailing empty ones dropped
        values = []
        for v in text.split("\\"):
            groups = v.split("=")
            while groups and not groups[-1]:
                groups.pop()
            values.append("=".join(groups))
    else:
        values = [v.rstrip("\0 ") for v in text.split("\\")]
    return values[0] if len(values) == 1 else values


@lru_cache(maxsize=256)
def _encodings(specific_character_set: bytes) -> tuple[str, ...]:
    if not specific_character_set:
        return DEFAULT_ENCODINGS
    fast = _fast_codec(specific_character_set)
    if fast is not None:
        return (fast,)
    from pydicom.charset import convert_encodings

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
    if not raw:
        return None if vr in BINARY_VRS else ""
    if vr in CHARSET_TEXT_VRS:
        codec = _fast_codec(specific_character_set)
        if codec is not None:
            value = _decode_fast(raw, vr, codec)
            if value is not None:
                return value
    from pydicom.dataelem import RawDataElement
    from pydicom.values import convert_value

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
