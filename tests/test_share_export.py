"""DICOM export (issue 15): plain copies, keyed pseudonyms, references inside
sequences, burned-in refusal, the ``export --dicom`` command line, zip and
DICOMDIR media read by DCMTK."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile

import pydicom
import pytest

import pocketpacs
from conftest import require_system
from pocketpacs import cli
from pocketpacs.share import ExportError, Pseudonyms, deid_key, export_dicom

CT = "dcm_qa_ct_philips_S21570"
TEST_FILES = "pydicom_test_files/test_files"
SINGLES = ("liver_1frame.dcm", "rtstruct.dcm", "examples_rgb_color.dcm")  # SEG, RTSTRUCT, US


def _archive(path, corpus):
    ar = pocketpacs.open_archive(path)
    ar.import_folder(corpus / CT)
    for name in SINGLES:
        ar.import_folder(corpus / TEST_FILES / name)
    return ar


@pytest.fixture(scope="module")
def arch(corpus, tmp_path_factory):
    ar = _archive(tmp_path_factory.mktemp("exp") / "a", corpus)
    yield ar
    ar.close()


def _study_of(ar, filename):
    for st in ar.studies():
        for se in ar.series(st):
            if any(os.path.basename(p) == filename for p in ar.series_files(se)):
                return st, se
    raise AssertionError(filename)


def _ct_study(ar):
    return max(ar.studies(), key=lambda s: s.n_instances)


def test_plain_copy_is_byte_for_byte_numbered_and_private(arch, tmp_path):
    st = _ct_study(arch)
    res = export_dicom(arch, [st.uid], tmp_path / "out")
    assert res.instances == st.n_instances and res.studies == 1 and res.warnings == []
    for src, out in res.pairs:
        assert open(src, "rb").read() == open(out, "rb").read()
        rel = os.path.relpath(out, tmp_path / "out")
        assert rel.startswith("PAT00001/STU00001/SER0000") and os.path.basename(out).startswith("IMG")
        assert os.stat(out).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(out)).st_mode & 0o777 == 0o700


def _ids(res):
    out = []
    for _src, p in sorted(res.pairs):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        out.append((str(ds.PatientID), str(ds.PatientName), ds.StudyInstanceUID, ds.SeriesInstanceUID,
                    ds.SOPInstanceUID, ds.FrameOfReferenceUID))
    return out


def test_same_archive_same_pseudonyms_other_archive_different(arch, corpus, tmp_path):
    st = _ct_study(arch)
    one = _ids(export_dicom(arch, [st.uid], tmp_path / "1", deidentify=True))
    two = _ids(export_dicom(arch, [st.uid], tmp_path / "2", deidentify=True))
    assert one == two
    assert len({r[2] for r in one}) == 1 and len({r[5] for r in one}) == 1  # one study, one frame of reference
    assert len({r[4] for r in one}) == len(one)
    with _archive(tmp_path / "b", corpus) as other:
        three = _ids(export_dicom(other, [st.uid], tmp_path / "3", deidentify=True))
    assert len(three) == len(one)
    for a, b in zip(one, three):
        assert all(x != y for x, y in zip(a, b))


def _ui_elements(ds, depth=0):
    for elem in ds:
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value):
                for path, e, d in _ui_elements(item, depth + 1):
                    yield (elem.keyword, i, *path), e, d
        elif elem.VR == "UI":
            yield (elem.keyword,), elem, depth


@pytest.mark.parametrize("name", ["liver_1frame.dcm", "rtstruct.dcm"])
def test_references_inside_sequences_get_the_same_pseudonyms_as_the_instances(arch, corpus, tmp_path, name):
    st, _se = _study_of(arch, name)
    res = export_dicom(arch, [st.uid], tmp_path / "o", deidentify=True)
    (src_path, out_path), = [(s, o) for s, o in res.pairs if os.path.basename(s) == name]
    src = pydicom.dcmread(src_path, stop_before_pixels=True, force=True)  # rtstruct.dcm has no file meta
    out = pydicom.dcmread(out_path, stop_before_pixels=True)
    names = Pseudonyms(deid_key(arch._secret))
    src_uids = {path: e for path, e, _ in _ui_elements(src)}
    nested = 0
    for path, e, depth in _ui_elements(out):
        kw = path[-1]
        if kw.endswith("ClassUID") or kw in ("TransferSyntaxUID", "CodingSchemeUID"):
            continue
        old = src_uids.get(path)
        if old is None or not old.value or str(old.value).startswith("1.2.840.10008."):
            continue
        assert e.value == names.uid(str(old.value)), path
        nested += depth > 0
    assert nested >= 2  # e.g. Referenced Series / Frame of Reference / Referenced SOP Instance UIDs
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == names.uid(src.SOPInstanceUID)


def test_burned_in_text_is_refused_unless_allowed(arch, tmp_path):
    st, _se = _study_of(arch, "examples_rgb_color.dcm")
    res = export_dicom(arch, [st.uid], tmp_path / "no", deidentify=True)
    assert res.instances == 0 and res.refused == 1
    assert "US" in res.warnings[0] and "refused" in res.warnings[0]
    assert not any(f for _d, _s, f in os.walk(tmp_path / "no"))
    res = export_dicom(arch, [st.uid], tmp_path / "yes", deidentify=True, allow_burned_in=True)
    assert res.instances == 1 and res.refused == 0 and "burned-in" in res.warnings[0]


def test_bad_requests_say_what_is_wrong(arch, tmp_path):
    with pytest.raises(ExportError, match="1.2.3.4.5.6.7: no patient, study or series"):
        export_dicom(arch, ["1.2.3.4.5.6.7"], tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ExportError, match="must be empty"):
        export_dicom(arch, [_ct_study(arch).uid], tmp_path / "full")
    with pytest.raises(ExportError, match="de-identified export only"):
        export_dicom(arch, [_ct_study(arch).uid], tmp_path / "y", options=["safe-private"])
    with pytest.raises(ValueError, match="unknown de-identification option"):
        export_dicom(arch, [_ct_study(arch).uid], tmp_path / "z", deidentify=True, options=["everything"])


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_dicom_mode_json_zip_and_usage(arch, tmp_path, capsys):
    a = arch.path
    st = _ct_study(arch)
    se = arch.series(st)[0]
    rc, out, err = run(capsys, "--archive", a, "export", st.uid, tmp_path / "o", "--dicom", "--deidentify",
                       "--keep", "modified-dates", "device-identity", "--keep", "safe-private", "--json")
    assert rc == 0, err
    d = json.loads(out)
    codes = {it.CodeValue for it in pydicom.dcmread(d["written"][0]).DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113109", "113111"}
    assert set(d) == {"written", "instances", "studies", "series", "warnings", "notes"}
    assert (d["instances"], d["studies"], d["series"]) == (st.n_instances, 1, st.n_series)
    assert all(os.path.isfile(p) for p in d["written"])
    # several UIDs, the last name is the folder; zip of a DICOMDIR medium
    us, _ = _study_of(arch, "examples_rgb_color.dcm")
    rc, out, err = run(capsys, "--archive", a, "export", se.uid, us.uid, tmp_path / "z", "--dicom", "--deidentify",
                       "--dicomdir", "--zip", "--json")
    assert rc == 1  # the ultrasound image was refused
    d = json.loads(out)
    assert d["written"] == [str(tmp_path / "z" / "export.zip")] and d["instances"] == se.n_instances
    assert any("refused" in w for w in d["warnings"])
    assert os.listdir(tmp_path / "z") == ["export.zip"]
    assert os.stat(tmp_path / "z" / "export.zip").st_mode & 0o777 == 0o600
    with zipfile.ZipFile(tmp_path / "z" / "export.zip") as z:
        names = z.namelist()
        assert "DICOMDIR" in names and len(names) == se.n_instances + 1
        z.extractall(tmp_path / "unz")
    pydicom.dcmread(tmp_path / "unz" / "DICOMDIR")
    # usage errors: DICOM flags without --dicom, --keep without --deidentify
    assert run(capsys, "--archive", a, "export", se.uid, tmp_path / "u", "--deidentify")[0] == 2
    rc, _out, err = run(capsys, "--archive", a, "export", se.uid, tmp_path / "u", "--dicom", "--keep", "safe-private")
    assert rc == 2 and "--deidentify" in err
    assert not (tmp_path / "u").exists()


def test_nifti_export_is_unchanged(arch, tmp_path, capsys):
    se = arch.series(_ct_study(arch))[0]
    rc, out, err = run(capsys, "--archive", arch.path, "export", se.uid, tmp_path / "v.nii.gz", "--json")
    assert rc == 0, err
    assert json.loads(out) == {"written": [str(tmp_path / "v.nii.gz")]}


def test_dicomdir_medium_is_read_by_dcmtk(arch, tmp_path):
    require_system(shutil.which("dcmdump") is not None, "DCMTK's dcmdump (apt-get install dcmtk)")
    uids = [st.uid for st in arch.studies()]
    res = export_dicom(arch, uids, tmp_path / "cd", deidentify=True, dicomdir=True, allow_burned_in=True)
    dd = tmp_path / "cd" / "DICOMDIR"
    assert sorted(os.listdir(tmp_path / "cd"))[0] == "DICOMDIR"  # pydicom's staging folder is gone
    assert all(n == "DICOMDIR" or n.startswith("PT") for n in os.listdir(tmp_path / "cd"))
    p = subprocess.run(["dcmdump", "-q", str(dd)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("ReferencedFileID") == res.instances
    assert p.stdout.count("DirectoryRecordType") == (res.instances + res.series + res.studies
                                                      + len(arch.patients()))
    for _src, out in res.pairs[:3]:
        assert subprocess.run(["dcmdump", "-q", out], capture_output=True).returncode == 0


def test_a_patient_key_exports_every_study_of_the_patient(arch, tmp_path):
    pa = max(arch.patients(), key=lambda p: p.n_instances)
    res = export_dicom(arch, [pa.key], tmp_path / "p", deidentify=True)
    assert (res.instances, res.studies, res.series) == (pa.n_instances, pa.n_studies, pa.n_series)
    assert len({pydicom.dcmread(o, stop_before_pixels=True).PatientID for _s, o in res.pairs}) == 1
