"""The one charset decoder (``pocketpacs.dicom.text``): every text value of
pydicom's charset test files decodes from its raw bytes to what pydicom
itself makes of the file."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pydicom.data
import pytest

from pocketpacs.dicom.text import (decode_text, decode_value, join_values, normalise,
                                   python_encodings)

CHARSET_FILES = sorted((Path(pydicom.data.__file__).parent / "charset_files").glob("*.dcm"))
TEXT_VRS = ("PN", "LO", "SH", "LT", "ST", "UT", "UC", "CS", "DA", "TM", "UI")


def _raw_and_decoded(path: Path):
    """(raw bytes, VR, raw Specific Character Set, pydicom's value) of the top-level text elements."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    scs_elem = ds.get_item(0x00080005)
    scs = scs_elem.value if scs_elem is not None else None
    if scs is not None and not isinstance(scs, bytes):  # already converted: re-encode as read
        scs = "\\".join([scs] if isinstance(scs, str) else scs).encode("latin-1")
    out = []
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not isinstance(raw.value, bytes) or raw.VR not in TEXT_VRS:
            continue
        out.append((raw.value, raw.VR, scs, ds[tag].value))
    return out


@pytest.mark.parametrize("path", CHARSET_FILES, ids=[p.name for p in CHARSET_FILES])
def test_decode_text_matches_pydicom_on_its_charset_files(path):
    values = _raw_and_decoded(path)
    assert any(vr == "PN" for _, vr, _, _ in values)
    for raw, vr, scs, expected in values:
        assert decode_text(raw, vr, scs) == join_values(normalise(expected)), (path.name, vr, raw)


def test_known_names_decode():
    assert decode_text("Äneas^Rüdiger".encode("latin-1"), "PN", b"ISO_IR 100") == "Äneas^Rüdiger"
    assert decode_text("Люкceмбypг".encode("iso8859-5"), "PN", b"ISO_IR 144") == "Люкceмбypг"
    assert decode_text("Müller\\Straße ".encode("utf-8"), "LO", b"ISO_IR 192") == "Müller\\Straße"


def test_encodings_default_and_unknown():
    assert python_encodings(None) == ["iso8859"]
    assert python_encodings(b"") == ["iso8859"]
    assert python_encodings(b"ISO_IR 192 ") == ["UTF8"]          # padding stripped
    assert python_encodings(b"ISO_IR 100\\ISO 2022 IR 87")[0] == "latin_1"
    with pytest.warns(UserWarning):                                 # pydicom's warning
        assert python_encodings(b"NOT A CHARSET") == ["iso8859"]

def test_empty_and_binary_values():
    assert decode_value(b"", "LO") == ""
    assert decode_value(b"", "US") is None
    assert decode_text(b"", "PN", None) == ""
    assert decode_value(b"\x00\x02", "US", little_endian=True) == 512
    assert decode_value(b"\x00\x02", "US", little_endian=False) == 2
    assert decode_value(b"1.5\\-2 ", "DS") == [1.5, -2.0]
