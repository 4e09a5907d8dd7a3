"""``pocketpacs verify`` reports instances archived under an empty UID (issue 12).

Imports refuse files whose SOP, Series or Study Instance UID is present but
empty; archives made before that may hold such instances under the UID "".
The test forges them through the archive's own write path
(:func:`pocketpacs.archive.commit.commit_chunk`, the importer's commit) with
a header batch that hashes a blank UID like any other value, as the
importer did before, and checks that ``verify`` (API and command line)
names how many there are and what to do, without a file name or patient
data.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pydicom

import pocketpacs
from pocketpacs.archive import keys
from pocketpacs.archive.commit import commit_chunk
from pocketpacs.dicom.batch import UID_COL
from pocketpacs.dicom.headers import parse_files
from pydicom_data import bundled_file


def _forge_blank(archive, path: str, blank: str) -> None:
    """Commit *path* (whose *blank* UID is empty) as an archive from before the refusal did."""
    batch = parse_files([path])
    base = type(batch)

    class BeforeRefusal(base):  # the old hashing: a blank UID hashed like the empty string
        def uid_hash(self, keyword):
            out = self._uid_hash[:, UID_COL[keyword]].copy()
            out[self.uid_blank(keyword)] = keys.uid_hash("")
            return out

    batch.__class__ = BeforeRefusal
    archive._store.write(lambda t: commit_chunk(t, archive._secret, [path], [], batch, []))


def test_verify_reports_instances_under_an_empty_uid(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(bundled_file("MR_small.dcm"), good / "mr.dcm")
    old = tmp_path / "old"
    old.mkdir()
    for i, kw in enumerate(("SeriesInstanceUID", "StudyInstanceUID")):
        ds = pydicom.dcmread(bundled_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.99.5.{i}"
        ds.PatientName = "Blank^Secret"
        setattr(ds, kw, "  ")
        ds.save_as(old / f"blank{i}.dcm")
    with pocketpacs.open_archive(tmp_path / "archive") as ar:
        rep = ar.import_folder(good)
        assert rep.to_json()["counts"]["indexed"] == 1
        assert ar.verify().blank_uid == 0
        # the importer refuses them now
        rep = ar.import_folder(old)
        assert rep.to_json()["counts"]["indexed"] == 0
        for i, kw in enumerate(("SeriesInstanceUID", "StudyInstanceUID")):
            _forge_blank(ar, str(old / f"blank{i}.dcm"), kw)
        v = ar.verify()
        assert v.blank_uid == 2 and not v.ok
        msg = "2 instances archived under an empty UID (SOP, Series or Study Instance UID); re-import or remove"
        assert msg in v.problems
        assert v.to_json()["blank_uid"] == 2
    # the command line says it too, and exits 1 (needs attention)
    cli = [sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "archive"), "verify"]
    r = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert msg in r.stdout + r.stderr
    assert "Blank" not in r.stdout + r.stderr and "blank0.dcm" not in r.stdout + r.stderr
    r = subprocess.run(cli + ["--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(r.stdout)["blank_uid"] == 2
