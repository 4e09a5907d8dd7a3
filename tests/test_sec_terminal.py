"""Terminal output of the command line with hostile names and header values (issue 13, finding 8).

A file name, folder name, PatientName or SeriesDescription holding terminal
escape sequences (``ESC ] 0;title BEL`` retitles the terminal, ``ESC [2J``
clears it, the one-byte C1 CSI 0x9B, U+202E reorders the line) reached the
terminal raw from ``import``, ``show`` and ``search``, and pydicom's warnings
quoted header values (``Unknown encoding '<img ...>'``) on stderr.  Here
pydicom's bundled CT file is rewritten with such values, in a folder whose
name holds an escape sequence, and every human-readable output of the real
command (a child process: warnings and the crash guard as a user gets them)
is checked byte by byte: no control character but the newline, no C1, no
bidi control; the values are there, shown escaped.  The JSON outputs keep
the values exactly (escaped by JSON itself, pure ASCII).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pydicom_data import TEST_FILES

NAME = "Evil\x1b]0;TITLE\x07^\x1b[2J\u009b31mGiven\u202eeman"
SERIES_DESC = "Ser\x1b[2J\x07ies\u202edesc\u2066x\x7f"
STUDY_DESC = "Stu\x1b[31mdy\u0085\u200f"
FOLDER = "evil\x1b]0;pwned\x07dir\u202e"
FILE = "a\x1b[2Jfile\u202e.dcm"
JUNK = "junk\x1b]0;x\x07\u009b.txt"
BAD_CHARSET = "<img src=x onerror=alert(1)>"

#: what a terminal acts on: C0 but the newline, DEL, C1, the bidi controls
FORBIDDEN = {*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0)), "\u061c", "\u200e", "\u200f",
             *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))} - {"\n"}


def _write_files(folder: Path) -> dict:
    import warnings

    import pydicom
    from pydicom.uid import generate_uid

    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")  # about the values written here
    folder.mkdir(parents=True)
    src = TEST_FILES / "CT_small.dcm"
    ds = pydicom.dcmread(src)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = NAME
    ds.PatientID = "ID\x1b[1m"
    ds.SeriesDescription = SERIES_DESC
    ds.StudyDescription = STUDY_DESC
    ds.save_as(folder / FILE)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = 2
    ds.ImagePositionPatient = [float(x) for x in ds.ImagePositionPatient[:2]] + [
        float(ds.ImagePositionPatient[2]) + float(ds.SliceThickness or 5)]
    ds.save_as(folder / "b.dcm")
    # a second patient whose Specific Character Set pydicom quotes in a warning
    other = pydicom.dcmread(src)
    other.SpecificCharacterSet = BAD_CHARSET
    other.PatientName = "Other^Charset"
    other.PatientID = "OTHER"
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        setattr(other, kw, generate_uid())
    other.save_as(folder / "c.dcm")
    (folder / JUNK).write_bytes(b"not a DICOM file")
    return {"series": str(ds.SeriesInstanceUID), "study": str(ds.StudyInstanceUID),
            "other_series": str(other.SeriesInstanceUID)}


def _cli(*argv) -> subprocess.CompletedProcess:
    """``python -m pocketpacs ARGV`` as a user runs it; stdout and stderr as bytes."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("POCKETPACS_NO_GUARD", None)
    return subprocess.run([sys.executable, "-m", "pocketpacs", *map(str, argv)], capture_output=True,
                          env=env, timeout=300)


def _assert_inert(data: bytes, what: str) -> str:
    """*data* decodes as UTF-8 and holds no character a terminal acts on; returns the text."""
    text = data.decode("utf-8")  # strict: no stray byte either
    bad = sorted({c for c in text if c in FORBIDDEN})
    assert not bad, f"{what}: raw control characters {[hex(ord(c)) for c in bad]} in {text!r}"
    return text


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    base = tmp_path_factory.mktemp("term")
    root = base / "data"
    uids = _write_files(root / FOLDER)
    arch = base / "archive"
    res = _cli("--archive", arch, "import", "--no-progress", root / FOLDER)
    return {"root": root, "archive": arch, "import": res, **uids}


def test_import_output_is_escaped(evil):
    res = evil["import"]
    assert res.returncode == 1, res.stderr  # the junk file is not indexed
    out = _assert_inert(res.stdout, "import stdout")
    err = _assert_inert(res.stderr, "import stderr")
    assert "indexed 3" in out
    # the junk file's name and its folder, shown escaped
    assert "evil\\x1b]0;pwned\\x07dir\\u202e" in out and "junk\\x1b]0;x\\x07\\x9b.txt" in out
    assert "<img" not in err and "Warning" not in err, err


def test_show_search_stats_report_are_escaped(evil):
    a = ("--archive", evil["archive"])
    outputs = {}
    for argv in (("show",), ("show", evil["study"]), ("show", evil["series"]), ("search",),
                 ("search", "--series"), ("search", "--series", "--description", "Ser"), ("stats",),
                 ("verify",), ("report", evil["series"]), ("report", evil["root"] / FOLDER),
                 ("report", evil["other_series"])):
        res = _cli(*a, *argv)
        assert res.returncode == 0, (argv, res.stderr)
        outputs[argv] = _assert_inert(res.stdout, f"{argv} stdout")
        err = _assert_inert(res.stderr, f"{argv} stderr")
        assert "<img" not in err and "Warning" not in err, (argv, err)
    show = outputs[("show",)]
    assert "Evil\\x1b]0;TITLE\\x07^\\x1b[2J\\x9b31mGiven\\u202eeman" in show
    assert "Ser\\x1b[2J\\x07ies\\u202edesc\\u2066x\\x7f" in show and "Stu\\x1b[31mdy\\x85\\u200f" in show
    assert "id=ID\\x1b[1m" in show and "Other^Charset" in show
    assert "Ser\\x1b[2J\\x07ies\\u202edesc" in outputs[("search", "--series")]
    assert "Evil\\x1b]0;TITLE" in outputs[("search",)]
    assert "evil\\x1b]0;pwned\\x07dir\\u202e" in outputs[("stats",)]


def test_messages_with_hostile_arguments_are_escaped(evil):
    a = ("--archive", evil["archive"])
    cases = [(("import", evil["root"] / "missing\x1b]0;x\x07"), 2, "no such file or folder"),
             (("show", "no\x1b[2Jsuch\u202e"), 2, "no patient, study or series"),
             (("show", "x", "extra\x1b[2J\u202e"), 2, "unrecognized arguments"),
             (("report", "1.2\x1b[2J\u009b"), 2, "neither an existing path nor a series"),
             # the folder to export into is a file: the error names it
             (("export", evil["series"], evil["root"] / FOLDER / FILE / "out.nii"), 4, "a\\x1b[2Jfile\\u202e.dcm")]
    for argv, rc, says in cases:
        res = _cli(*a, *argv)
        assert res.returncode == rc, (argv, res.stderr)
        err = _assert_inert(res.stderr, f"{argv} stderr")
        _assert_inert(res.stdout, f"{argv} stdout")
        assert says in err and "\\x1b" in err, (argv, err)


def test_json_outputs_keep_the_values(evil):
    a = ("--archive", evil["archive"])
    res = _cli(*a, "search", "--series", "--json")
    assert res.returncode == 0
    # JSON escapes every control character itself (ensure_ascii: pure ASCII)
    assert res.stdout.isascii() and not any(b < 0x20 and b != 0x0A for b in res.stdout)
    doc = json.loads(res.stdout)
    assert res.stdout == (json.dumps(doc, indent=2, ensure_ascii=True) + "\n").encode()
    hit = next(h for h in doc["results"] if h["study"]["uid"] == evil["study"])
    assert hit["patient"]["name"] == NAME
    assert hit["series"][0]["description"] == SERIES_DESC
    res = _cli(*a, "show", "--json")
    rows = json.loads(res.stdout)
    assert res.stdout.isascii() and res.stdout == (json.dumps(rows, indent=2, ensure_ascii=True) + "\n").encode()
    assert NAME in {r["patient_name"] for r in rows}
    assert any(FOLDER in p and FILE in p for r in rows for p in r["paths"])
    res = _cli(*a, "import", "--json", evil["root"] / FOLDER)
    rep = json.loads(res.stdout)
    assert res.stdout.isascii() and any(f["path"].endswith(os.path.join(FOLDER, JUNK)) for f in rep["failed"])
    _assert_inert(res.stderr, "import --json stderr")


def test_safe_escapes_controls_and_keeps_the_rest():
    from pocketpacs.cli.output import _safe

    assert _safe("Müller^José 日本 \u00a0ok") == "Müller^José 日本 \u00a0ok"
    assert _safe("a\x1b]0;t\x07b\x9b\u202e\u2066\u200e\u061c\x7f\t\n") == \
        "a\\x1b]0;t\\x07b\\x9b\\u202e\\u2066\\u200e\\u061c\\x7f\\x09\\x0a"
    assert _safe("name\udcff\udc9b") == "name\\xff\\x9b"  # undecodable file-name bytes
    once = _safe("x\x1b[2J\u202e")
    assert _safe(once) == once  # escaping escaped text changes nothing


def test_safe_on_a_terminal_that_is_not_utf8():
    from pocketpacs.cli.output import _safe

    class Latin1:
        encoding = "latin-1"

    # 'ě' is C4 9B in UTF-8: decoding those bytes as Latin-1 would show a raw C1 CSI
    s = _safe("Dvořák ě \u202e\x1b", Latin1())
    assert s == "Dvo\\u0159ák \\u011b \\u202e\\x1b"
    assert not any(c in FORBIDDEN for c in s)


def test_pydicom_warnings_and_log_records_are_kept_out():
    """The app configures logging; pydicom's warnings and log records quote header values."""
    code = ("import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.WARNING)\n"
            "from pocketpacs.log import protect_patient_data; protect_patient_data()\n"
            "from pydicom.charset import convert_encodings\n"
            f"print(convert_encodings({BAD_CHARSET!r}))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['iso8859']"
    assert "<img" not in res.stderr and "pydicom" not in res.stderr, res.stderr
