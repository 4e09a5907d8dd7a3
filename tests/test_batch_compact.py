"""HeaderBatch.compact: a batch held by a grouped commit gives the same values after it.

An import that commits several parsed chunks in one transaction compacts the
chunks it holds (their values kept, their 8 KB+ heads dropped).  Every
accessor must answer as before, on files nobody here wrote: pydicom's
bundled files (long headers re-read in a second buffer among them), its
character-set files, and the shared corpus when present.
"""
from __future__ import annotations

import os

import numpy as np

from pocketpacs.dicom import tags
from pocketpacs.dicom.batch import FAILED
from pocketpacs.dicom.headers import parse_files

_SKIP = (".txt", ".md", ".json", ".py", ".nii", ".png", ".jpg", ".j2k", ".jp2", ".raw", ".gz", ".bz2",
         ".zip", ".csv", ".npy", ".pdf", ".xml")


def _files(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                  if not f.lower().endswith(_SKIP))


def _everything(batch) -> dict:
    out = {"records": [batch.record(i) for i in range(batch.n)],
           "raw": [[batch.raw(spec.keyword, i) for spec in tags.TAGS] for i in range(batch.n)]}
    for kw in ("PatientName", "SOPInstanceUID", "Modality", "ImageType", "SeriesDescription", "StudyDate",
               "SpecificCharacterSet", "PatientID", "TransferSyntaxUID"):
        out[f"text {kw}"] = batch.text(kw)
    for kw in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID"):
        out[f"present {kw}"] = batch.uid_present(kw).tolist()
        out[f"blank {kw}"] = batch.uid_blank(kw).tolist()
    return out


def _check(paths: list[str]) -> None:
    batch = parse_files(paths)
    assert (batch.status != FAILED).sum() > 0
    before = _everything(batch)
    held = sum(b.nbytes for b in batch._bufs)
    batch.compact()
    assert len(batch._bufs) == 1
    assert batch._bufs[0].nbytes < held / 4, "compaction kept most of the heads"
    assert (batch._start == 0).all()
    assert _everything(batch) == before
    batch.compact()   # twice: nothing changes
    assert _everything(batch) == before


def test_pydicom_bundled_files():
    from pydicom_data import TEST_FILES

    paths = _files(TEST_FILES)
    assert len(paths) > 20
    batch = parse_files(paths)
    assert len(batch._bufs) > 1, "no header needed a second read: the re-read buffers are not covered"
    _check(paths)


def test_pydicom_charset_files():
    from pydicom_data import bundled_files

    paths = bundled_files("*.dcm", folder="charset_files")
    assert len(paths) >= 15
    _check(paths)


def test_corpus(corpus):
    paths = [p for p in _files(corpus) if "/pylibjpeg_data/" not in p or p.endswith(".dcm")]
    _check(paths[:3000])


def test_empty_values_and_no_native_rows(tmp_path):
    bad = tmp_path / "not-dicom.dcm"
    bad.write_bytes(b"\0" * 300)
    batch = parse_files([str(bad)])
    assert batch.status[0] == FAILED
    batch.compact()
    assert batch.record(0) == {}
    assert batch.text("PatientName") == [None]
    assert np.array_equal(batch.uid_present("SOPInstanceUID"), [False])
