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


def test_the_copy_kernel_copies_as_its_numpy_reference_and_skips_what_lies_outside():
    from pocketpacs.dicom.batch import copy_values_numpy
    from pocketpacs.native import dicomvalues

    rng = np.random.default_rng(7)
    buf = rng.integers(0, 256, 5000).astype(np.uint8)
    lens = rng.integers(0, 40, 300).astype(np.int64)
    src = rng.integers(0, buf.size - 40, 300).astype(np.int64)
    dst = (np.cumsum(lens) - lens).astype(np.int64)
    ref = np.zeros(int(lens.sum()), np.uint8)
    copy_values_numpy(buf, src, lens, dst, ref)
    out = np.zeros_like(ref)
    assert dicomvalues.copy_values(buf, src, lens, dst, out) == 0
    assert (out == ref).all()
    # a copy reaching past either buffer is skipped and counted, the others done
    src2, lens2 = src.copy(), lens.copy()
    src2[5], lens2[9], src2[11] = buf.size - 1, ref.size + 1, -3
    lens2[5] = max(lens2[5], 2)
    out2 = np.zeros_like(ref)
    assert dicomvalues.copy_values(buf, src2, lens2, dst, out2) == 3
    keep = np.ones(300, bool)
    keep[[5, 9, 11]] = False
    for j in np.nonzero(keep)[0]:
        assert (out2[dst[j]:dst[j] + lens[j]] == ref[dst[j]:dst[j] + lens[j]]).all()


def test_compaction_with_the_compiled_kernel_gives_the_same_values(monkeypatch):
    from pydicom_data import TEST_FILES

    from pocketpacs.dicom import batch as batch_mod
    from pocketpacs.native import dicomvalues

    calls = []

    def kernel(*args):
        calls.append(1)
        return dicomvalues.copy_values(*args)

    monkeypatch.setattr(batch_mod, "_copier", lambda: kernel)
    _check(_files(TEST_FILES))
    assert calls
