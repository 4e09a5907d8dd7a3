"""The text content of objects that are not images (issue 12).

Core: :func:`pocketpacs.images.nonimage.describe` on pydicom's bundled SR and
RT structure set files (the corpus holds the same files) and on objects
written here with pydicom (encapsulated PDF, presentation state, Siemens CSA
non-image with a Phoenix protocol), with its caps.  Bridge: a real
:class:`~pocketpacs.ui.session.Session` answers ``not_a_volume`` with the
object's lines in ``details``.  Browser: the served page shows them in the
viewport, with nothing of an earlier image left on screen.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pydicom_data import bundled_file

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

from pocketpacs.images.nonimage import MAX_BYTES, MAX_LINES, describe, describe_series

PATIENT = "Nonimage^Secret"


def _write(path: Path, sop_class: str, modality: str, fill) -> Path:
    """A minimal object of *sop_class* with its UIDs and patient, plus what *fill* adds."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = PATIENT
    ds.PatientID = "NI-1"
    ds.Modality = modality
    fill(ds)
    ds.save_as(path, enforce_file_format=True)
    return path


def _code(meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = "1", "99TEST", meaning
    return c


def write_pdf(path: Path, title: str = "Discharge letter", nbytes: int = 3000) -> Path:
    pdf = b"%PDF-1.4\n" + b"%" * (nbytes - 15) + b"\n%%EOF\n"

    def fill(ds):
        ds.DocumentTitle = title
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    return _write(path, "1.2.840.10008.5.1.4.1.1.104.1", "DOC", fill)


def write_pr(path: Path, series: list[tuple[str, int]]) -> Path:
    def fill(ds):
        ds.ContentLabel = "KEY_VIEW"
        ds.ContentDescription = "Window for the lesion"
        refs = []
        for uid, n in series:
            s = Dataset()
            s.SeriesInstanceUID = uid
            imgs = []
            for _ in range(n):
                i = Dataset()
                i.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
                i.ReferencedSOPInstanceUID = generate_uid()
                imgs.append(i)
            s.ReferencedImageSequence = Sequence(imgs)
            refs.append(s)
        ds.ReferencedSeriesSequence = Sequence(refs)
    return _write(path, "1.2.840.10008.5.1.4.1.1.11.1", "PR", fill)


def write_phoenix(path: Path, text: str) -> Path:
    def fill(ds):
        block = ds.private_block(0x0029, "SIEMENS CSA NON-IMAGE", create=True)
        block.add_new(0x08, "CS", "PHOENIX")
        raw = b"SV10\x04\x03\x02\x01" + b"\x00\x01\x02" + text.encode("ascii") + b"\x00\x7f\x80"
        block.add_new(0x20, "OB", raw + (b"\0" if len(raw) % 2 else b""))
    return _write(path, "1.3.12.2.1107.5.9.1", "MR", fill)


def write_sr(path: Path, n_items: int, text: str = "finding") -> Path:
    def fill(ds):
        ds.ValueType = "CONTAINER"
        ds.ConceptNameCodeSequence = Sequence([_code("Report")])
        items = []
        for i in range(n_items):
            it = Dataset()
            it.RelationshipType = "CONTAINS"
            it.ValueType = "TEXT"
            it.ConceptNameCodeSequence = Sequence([_code("Finding")])
            it.TextValue = f"{text} {i}"
            items.append(it)
        ds.ContentSequence = Sequence(items)
    return _write(path, "1.2.840.10008.5.1.4.1.1.88.11", "SR", fill)


# ------------------------------------------------------------------ core
def test_sr_content_is_flattened_to_indented_lines():
    d = describe(bundled_file("test-SR.dcm"))
    assert d["kind"] == "Comprehensive SR Storage" and d["title"] == "Diagnosis"
    lines = d["lines"]
    assert "  Text Code: A mass of" in lines                      # text, one level down
    assert "    Code: Sample Code 1" in lines                     # code, two levels down
    assert "  Diameter: 3 Length Unit" in lines                   # number with its unit
    assert "Some UID: 1.2.3.4.5" in lines and not d["truncated"]
    assert not any(PATIENT.split("^")[0] in x for x in lines)


def test_basic_text_sr_and_rt_structure_set():
    d = describe(bundled_file("reportsi.dcm"))
    assert d["kind"] == "Basic Text SR Storage" and "  Report Text: Enter text" in d["lines"]
    d = describe(bundled_file("rtstruct.dcm"))
    assert d["kind"] == "RT Structure Set Storage"
    assert d["lines"] == ["3 ROI(s)", "  1: patient", "  2: Isocenter 1", "  3: Isocenter 2"]


def test_pdf_presentation_state_and_phoenix_report(tmp_path):
    d = describe(write_pdf(tmp_path / "pdf.dcm", nbytes=3000))
    assert d["kind"] == "Encapsulated PDF Storage" and d["title"] == "Discharge letter"
    assert d["lines"] == ["PDF document", "Title: Discharge letter", "Size: 2.9 KB"]
    uid = generate_uid()
    d = describe(write_pr(tmp_path / "pr.dcm", [(uid, 3)]))
    assert d["kind"] == "Grayscale Softcopy Presentation State Storage" and d["title"] == "KEY_VIEW"
    assert d["lines"] == ["Window for the lesion", "Applies to 1 series:", f"  Series {uid}: 3 image(s)"]
    text = ("### ASCCONV BEGIN ###\nsProtConsistencyInfo.tBaselineString\t = \t\"N4_VE11C\"\n"
            "sSliceArray.lSize\t = \t36\n### ASCCONV END ###")
    d = describe(write_phoenix(tmp_path / "phoenix.dcm", "junk before " + text + " junk after"))
    assert d["kind"].startswith("Siemens CSA Non-Image Storage") and d["title"] == "Siemens Phoenix report"
    assert d["lines"][0] == "### ASCCONV BEGIN ###" and d["lines"][-1] == "### ASCCONV END ###"
    assert "sSliceArray.lSize = 36" in d["lines"] and not any("junk" in x for x in d["lines"])


def test_the_text_is_capped_and_says_so(tmp_path):
    d = describe(write_sr(tmp_path / "long.dcm", MAX_LINES + 50))
    assert len(d["lines"]) == MAX_LINES and d["truncated"]
    d = describe(write_sr(tmp_path / "wide.dcm", 400, text="x" * 380))
    assert sum(len(x.encode()) + 1 for x in d["lines"]) <= MAX_BYTES and d["truncated"]
    d = describe(write_sr(tmp_path / "short.dcm", 3))
    assert d["lines"] == ["Finding: finding 0", "Finding: finding 1", "Finding: finding 2"]
    assert not d["truncated"]


def test_several_objects_and_unreadable_files(tmp_path):
    a = write_sr(tmp_path / "a.dcm", 2)
    b = write_pdf(tmp_path / "b.dcm")
    d = describe_series([a, b])
    assert d["files"] == 2 and "— Report" in d["lines"] and "  Title: Discharge letter" in d["lines"]
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    d = describe(bad)
    assert d["kind"] == "unreadable" and d["lines"][0].startswith("bad.dcm: not readable as DICOM")


# ------------------------------------------------------------------ bridge and page
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("nonimage")
    files = root / "files"
    files.mkdir()
    shutil.copy(bundled_file("test-SR.dcm"), files / "sr.dcm")
    shutil.copy(bundled_file("rtstruct.dcm"), files / "rtstruct.dcm")
    write_pdf(files / "pdf.dcm")
    shutil.copy(bundled_file("CT_small.dcm"), files / "ct.dcm")
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
    return {"archive": root / "archive", "files": files}


def test_open_series_answers_with_the_objects_text(built):
    from pocketpacs.ui import protocol
    from pocketpacs.ui.session import Session

    s = Session(str(built["archive"]), mode="serve")
    try:
        got = {}
        for row in s.call("search", {})["data"]["rows"]:
            env = s.call("open_series", {"series_id": row["series_id"], "slot": "main"})
            job = s.volume_stream(env["data"]["volume_id"])
            if job.wait_header() is not None:
                continue
            err = job.status()["error"]
            assert err["code"] == protocol.NOT_A_VOLUME
            got[err["message"]] = err["details"]
    finally:
        s.close()
    assert set(got) == {"Not an image: Comprehensive SR Storage", "Not an image: RT Structure Set Storage",
                        "Not an image: Encapsulated PDF Storage"}
    assert "  Text Code: A mass of" in got["Not an image: Comprehensive SR Storage"]["lines"]
    assert got["Not an image: RT Structure Set Storage"]["lines"][0] == "3 ROI(s)"
    assert got["Not an image: Encapsulated PDF Storage"]["title"] == "Discharge letter"


@pytest.fixture
def page(browser, served):
    with S.open_page(browser, served.url, 900, 640) as pg:
        yield pg


def _open(page, modality):
    mods = [r.get("modality", "") for r in S.tree_rows(page)]
    page.locator(S.SERIES_ROWS).nth(mods.index(modality)).dblclick()


@pytest.mark.slow
def test_the_page_shows_an_sr_as_text_in_a_cleared_viewport(page):
    _open(page, "CT")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    assert S.read_canvas(page).max() > 0
    page.click("#btn-archive")
    _open(page, "SR")
    S.wait_js(page, "document.getElementById('view').dataset.nonimage")
    box = page.locator("#nonimage")
    assert box.is_visible()
    text = box.inner_text()
    assert text.startswith("Not an image: Comprehensive SR Storage")
    assert "Text Code: A mass of" in text and "Diagnosis" in text
    assert page.locator("#error-banner").is_hidden()
    assert not S.dataset(page).get("vid")                    # the CT is gone: no image, no overlay
    assert S.read_canvas(page).max() == 0
    assert all(not page.locator(f"#corner-{c}").inner_text() for c in ("tl", "tr", "bl", "br"))
    # the next open removes the text
    page.click("#btn-archive")
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    _open(page, "CT")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    assert box.is_hidden() and np.asarray(S.read_canvas(page)).max() > 0


def test_error_envelopes_carry_details_only_when_given():
    from pocketpacs.ui import protocol

    d = {"kind": "Comprehensive SR Storage", "title": "T", "lines": ["a"], "truncated": False}
    env = protocol.envelope_for_exception(protocol.BridgeError(protocol.NOT_A_VOLUME, "Not an image: x", d))
    assert env["error"] == {"code": protocol.NOT_A_VOLUME, "message": "Not an image: x", "details": d}
    assert "details" not in protocol.fail(protocol.NOT_FOUND, "Not found.")["error"]
