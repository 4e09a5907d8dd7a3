"""The charset fast path of ``pocketpacs.dicom.text`` gives pydicom's strings (issue 16).

Values of the common charsets (the default repertoire, the single-byte ISO
8859 sets, UTF-8) are decoded without importing pydicom; every test here
compares them with what pydicom itself makes of the same bytes: every
charset name of the fast table against pydicom's own table, values made of
every byte of each charset in every text VR (padding, several values, PN
groups), pydicom's bundled files and the corpus, and a subprocess showing
pydicom stays unloaded.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import warnings

import pydicom
import pytest
from pydicom.charset import convert_encodings, python_encoding
from pydicom.dataelem import RawDataElement
from pydicom.values import convert_value

from pocketpacs.dicom import text
from pocketpacs.dicom.text import CHARSET_TEXT_VRS, FAST_ENCODINGS, decode_text, decode_value, normalise
from pydicom_data import bundled_files

#: pydicom warns for every byte a charset does not define and every odd element of the
#: corpus: this module feeds it such bytes on purpose, thousands of times.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _pydicom(raw: bytes, vr: str, scs: bytes | None):
    """What pydicom makes of *raw* (its own charset table and converters), as plain Python."""
    names = [v.strip().decode("latin-1") for v in (scs or b"").rstrip(b"\0 ").split(b"\\")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encodings = convert_encodings(names)
        if not raw:
            return "" if vr not in text.BINARY_VRS else None
        elem = RawDataElement(0x00100010, vr, len(raw), raw, 0, False, True, True, False)
        try:
            return normalise(convert_value(vr, elem, encodings))
        except Exception:
            return None


def test_the_fast_table_is_pydicoms():
    """Each fast charset decodes with pydicom's codec for it, and every single-byte
    ISO 8859 set and UTF-8 pydicom knows is in the table."""
    for name, codec in FAST_ENCODINGS.items():
        assert python_encoding[name.decode("ascii")] == codec, name
    single_byte = {n for n, c in python_encoding.items()
                   if c in ("iso8859", "latin_1", "UTF8") or c.startswith(("iso8859_", "iso_ir_"))}
    single_byte.discard("ISO 2022 IR 58")  # iso_ir_58 is GB 2312: two bytes a character
    assert {n.decode("ascii") for n in FAST_ENCODINGS} == single_byte


def _values(codec: str, rng: random.Random) -> list[bytes]:
    """Values of every byte of *codec*'s charset, with the separators and padding pydicom treats apart."""
    if codec == "UTF8":
        chars = "".join(chr(c) for c in range(0x20, 0x250)) + "日本語한국어中文Ωж\u20ac\U0001F600"
        alphabet = [ch.encode("utf-8") for ch in chars]
        alphabet += [b"\xff", b"\xc3"]  # invalid UTF-8: pydicom replaces (and warns): the slow path
    else:
        alphabet = [bytes([b]) for b in range(0x20, 0x100)]
    special = [b"\\", b"=", b"^", b" ", b"\0", b"\x1b$B"]
    out = [b"", b" ", b"\0", b"=", b"==", b"^", b"\\", b"\\ ", b" \\", b"A=B==", b"A\\B=C\\", b"=A", b"A^B=^C= \0"]
    out += [b"".join(alphabet[i:i + 40]) for i in range(0, len(alphabet), 40)]
    for _ in range(150):
        out.append(b"".join(rng.choice(alphabet if rng.random() < 0.8 else special) for _ in range(rng.randint(1, 24))))
    return out


@pytest.mark.parametrize("scs", sorted(FAST_ENCODINGS), ids=lambda s: s.decode() or "(none)")
def test_fast_path_decodes_as_pydicom(scs):
    rng = random.Random(scs)
    codec = FAST_ENCODINGS[scs]
    fast = 0
    values = _values(codec, rng)
    for raw in values:
        for vr in sorted(CHARSET_TEXT_VRS):
            for padded in (scs, scs + b" ", scs + b"\0"):
                want = _pydicom(raw, vr, padded)
                assert decode_value(raw, vr, padded) == want, (scs, vr, raw)
            fast += text._decode_fast(raw, vr, codec) is not None
    assert fast > len(values)  # (the fast path was taken: the rest had bytes the charset does not define)


def _text_elements(path: str):
    """(raw, VR, raw Specific Character Set, pydicom's value) of the charset-text elements of a file, nested ones too."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return []
    out = []

    def walk(d, scs):
        item = d.get_item(0x00080005)
        if item is not None:
            v = item.value
            scs = v if isinstance(v, bytes) else "\\".join([v] if isinstance(v, str) else v).encode("latin-1")
        for tag in list(d.keys()):
            raw = d.get_item(tag)
            if raw.VR == "SQ":
                for sub in d[tag].value:
                    walk(sub, scs)
            elif raw.VR in CHARSET_TEXT_VRS and isinstance(raw.value, bytes):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out.append((raw.value, raw.VR, scs, normalise(d[tag].value)))
    try:
        walk(ds, None)
    except Exception:  # a file pydicom cannot walk: nothing to compare with
        return out
    return out


def _same_as_pydicom(paths: list[str]) -> tuple[int, int]:
    n = fast = 0
    for p in paths:
        for raw, vr, scs, want in _text_elements(p):
            assert decode_value(raw, vr, scs) == want, (p, vr, raw)
            n += 1
            fast += text._fast_codec(scs) is not None
    return n, fast


def test_pydicoms_bundled_files_decode_as_pydicom():
    n, fast = _same_as_pydicom(bundled_files(folder="charset_files") + bundled_files())
    assert n > 500 and fast > 300


@pytest.mark.corpus
def test_the_corpus_decodes_as_pydicom(corpus):
    n, fast = _same_as_pydicom(sorted(str(p) for p in corpus.rglob("*") if p.is_file() and p.suffix != ".json"))
    assert n > 1000 and fast > 1000


_CHILD = r"""
import json, sys
from pocketpacs.dicom.text import decode_text, decode_value
out = [decode_text("Äneas^Rüdiger=".encode("latin-1"), "PN", b"ISO_IR 100"),
       decode_value("Люк\\Müller ".encode("iso8859-5", "replace"), "LO", b"ISO_IR 144"),
       decode_text("日本\\語 ".encode("utf-8"), "SH", b"ISO_IR 192"),
       decode_text(b"caf\xe9  ", "LT", None)]
first = "pydicom" in sys.modules
out.append(decode_text(b"\x1b$B;3ED\x1b(B", "PN", b"\\ISO 2022 IR 87"))  # escapes: pydicom
print(json.dumps([first, "pydicom" in sys.modules, out]))
"""


def test_the_fast_path_does_not_import_pydicom():
    r = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, later, out = json.loads(r.stdout)
    assert (first, later) == (False, True)
    assert out[:4] == ["Äneas^Rüdiger", ["Люк", "M?ller"], "日本\\語", "café"]
    assert out[4] == "山田"


def test_escapes_undefined_bytes_and_other_charsets_go_to_pydicom():
    assert text._decode_fast(b"A\x1b(BB", "LO", "latin_1") is None
    assert text._decode_fast(b"\xa5", "LO", "iso8859_3") is None  # not defined in ISO 8859-3: pydicom replaces
    assert decode_value(b"\xa5", "LO", b"ISO_IR 109") == _pydicom(b"\xa5", "LO", b"ISO_IR 109")
    for scs in (b"ISO_IR 100\\ISO 2022 IR 87", b"ISO_IR 13", b"GB18030", b"NOT A CHARSET", b"iso_ir 100"):
        assert text._fast_codec(scs) is None
    assert decode_text("中文".encode("gb18030"), "PN", b"GB18030") == "中文"


def test_decoded_strings_are_plain_python():
    v = decode_value(b"A^B\\C^D", "PN", b"ISO_IR 100")
    assert v == ["A^B", "C^D"] and all(type(x) is str for x in v)
    assert type(decode_value(b"Ab ", "LO", None)) is str
