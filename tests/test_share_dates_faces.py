"""The Retain Longitudinal Temporal Information with Full Dates (DCM 113106) and Clean
Recognizable Visual Features (DCM 113102) options of the de-identified export (issue 15).

Full dates: every date and time kept, recorded as ``UNMODIFIED``, the same on the byte
path and the pydicom path, refused together with Modified Dates.  Visual features:
PocketPACS does not deface, so the option refuses the series that may show a face (head
CT/MR volumes, photographs, screenshots) and records 113102 on what it exports.  Codes
and meanings are checked against pydicom's copy of CID 7050.  Real files: the GE 3D
T1 MPRAGE (130 slices of a head) and the Philips head CT of ``../shared/corpus``,
pydicom's bundled CT and secondary capture; the command line, the settings file and
the Python API.  (The whole corpus on both paths: ``test_share_deidentify.py``.)
"""
from __future__ import annotations

import io
import json
import os
import re

import pydicom
import pytest

import pocketpacs
from pocketpacs import cli
from pocketpacs.share import (
    Deidentifier,
    OptionsError,
    ProfileSettingsError,
    VisualFeaturesRefused,
    export_dicom,
    preview_deidentification,
    save_profiles,
)
from pocketpacs.share.export import dataset_bytes
from pocketpacs.share.profile_table import OPTIONS
from pocketpacs.share.rewrite import ByteRewriter
from pocketpacs.share.visual_features import MIN_SLICES, dataset_reason, face_reason
from pydicom_data import bundled_file as bundled
from test_share_deidentify import _differences
from test_share_profile import KEY, make

MPRAGE = "dcm_qa_ge_mprage"               # GE MR, 3D Ax T1 MP-RAGE, 130 slices of a head
HEAD_CT = "dcm_qa_ct_philips_S21570"      # Philips CT, STD BRAIN 5MM, 28 slices


def _codes(ds) -> list[str]:
    return [it.CodeValue for it in ds.DeidentificationMethodCodeSequence]


def test_the_codes_and_meanings_are_those_of_cid_7050():
    from pydicom.sr.codedict import codes

    full = codes.DCM.RetainLongitudinalTemporalInformationFullDatesOption
    visual = codes.DCM.CleanRecognizableVisualFeaturesOption
    assert OPTIONS["full-dates"][1:] == (full.value, full.meaning) == (
        "113106", "Retain Longitudinal Temporal Information Full Dates Option")
    assert OPTIONS["clean-visual-features"][1:] == (visual.value, visual.meaning) == (
        "113102", "Clean Recognizable Visual Features Option")


# ---- full dates -----------------------------------------------------------------------------------

def test_full_dates_keep_every_date_and_time_on_both_paths():
    src = make(AcquisitionDateTime="20240229101733.250000", ContentDate="20240228", SeriesTime="101700")
    ds = make(AcquisitionDateTime="20240229101733.250000", ContentDate="20240228", SeriesTime="101700")
    Deidentifier(KEY, ["full-dates"]).apply(ds, identity="p1")
    assert (ds.StudyDate, ds.StudyTime, ds.ContentDate, ds.SeriesTime) == ("20240229", "101500", "20240228",
                                                                           "101700")
    assert ds.AcquisitionDateTime == "20240229101733.250000"
    assert ds[0x00141020].value == "20240301"  # a date the table does not list: kept too
    assert ds.PatientBirthDate in ("", None)    # not a date of the acquisition: the option keeps none
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert _codes(ds) == ["113100", "113106"]
    assert "Retain Longitudinal Temporal Information Full Dates Option" in list(ds.DeidentificationMethod)
    assert str(ds.PatientName).startswith("ANON^") and ds.SOPInstanceUID != src.SOPInstanceUID
    # the byte-level rewriter gives the same elements and values
    fast, _w = ByteRewriter(Deidentifier(KEY, ["full-dates"])).rewrite(dataset_bytes(src), "p1")
    a, b = pydicom.dcmread(io.BytesIO(dataset_bytes(ds))), pydicom.dcmread(io.BytesIO(fast))
    assert not _differences(a, b), _differences(a, b)


def test_full_and_modified_dates_exclude_each_other(tmp_path):
    with pytest.raises(OptionsError, match="full-dates and modified-dates exclude each other"):
        Deidentifier(KEY, ["modified-dates", "full-dates"])
    assert issubclass(OptionsError, ValueError)
    with pytest.raises(ProfileSettingsError,
                       match=r"share-profiles.json: profiles.both.options: the options full-dates and "
                             r"modified-dates exclude each other"):
        save_profiles(tmp_path / "share-profiles.json",
                      {"profiles": {"both": {"options": ["full-dates", "modified-dates"]}}})
    assert not (tmp_path / "share-profiles.json").exists()


# ---- which images may show a face ---------------------------------------------------------------

MR, CT = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"


@pytest.mark.parametrize("facts, refused", [
    (("MR", "HEAD", ["3D T1"], [MR], ["ORIGINAL\\PRIMARY"], 130), "BodyPartExamined: HEAD"),
    (("CT", "", ["", "STD BRAIN 5MM", ""], [CT], [""], 28), "descriptions name the head or neck (BRAIN)"),
    (("CT", "", ["Routine", "C-Spine bone"], [CT], [""], 60), "(CSPINE)"),
    (("MR", "", ["", "", ""], [MR], [""], 40), "no body part recorded"),
    (("MR", "SPINE", ["", "", ""], [MR], [""], 40), "does not know to be below the neck"),
    (("MR", "", ["fmri run"], [MR], ["ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC"], 1), "series of mosaics"),
    (("OT", "", [], ["1.2.840.10008.5.1.4.1.1.7"], [""], 1), "Secondary Capture Image Storage images may show"),
    (("XC", "", [], ["1.2.840.10008.5.1.4.1.1.77.1.4"], [""], 1), "VL Photographic Image Storage"),
    (("MR", "BRAIN", ["localizer"], [MR], [""], MIN_SLICES - 1), None),   # too few slices to render
    (("CT", "CHEST", ["Thorax"], [CT], [""], 300), None),
    (("CT", "", ["CT Abdomen Pelvis"], [CT], [""], 300), None),
    (("CR", "SKULL", ["Skull lat"], ["1.2.840.10008.5.1.4.1.1.1"], [""], 1), None),  # a projection
    (("US", "", [], ["1.2.840.10008.5.1.4.1.1.6.1"], [""], 1), None),
])
def test_which_series_may_show_a_face(facts, refused):
    why = face_reason(*facts)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why, why


def test_a_data_set_alone_is_judged_by_its_own_frames(corpus):
    """One slice of a head volume shows no face; a multi-frame head volume does."""
    one = pydicom.dcmread(sorted(p for p in (corpus / MPRAGE / "In").rglob("*") if p.is_file())[0])
    assert dataset_reason(one) is None
    ds = make(NumberOfFrames=176, BodyPartExamined="HEAD")
    with pytest.raises(VisualFeaturesRefused, match=r"refused \(clean-visual-features\): an MR series of 176 "
                                                    r"images of the head or neck"):
        Deidentifier(KEY, ["clean-visual-features"], allow_burned_in=True).apply(ds)
    sc = make(SOPClassUID="1.2.840.10008.5.1.4.1.1.7", Modality="OT")
    with pytest.raises(VisualFeaturesRefused, match="may show a face"):  # even with burned-in text allowed
        Deidentifier(KEY, ["clean-visual-features"], allow_burned_in=True).apply(sc)
    ok = make()
    Deidentifier(KEY, ["clean-visual-features"]).apply(ok)
    assert _codes(ok) == ["113100", "113102"]


@pytest.fixture(scope="module")
def heads(corpus, tmp_path_factory):
    """An archive of the GE head MPRAGE, the Philips head CT and pydicom's CT_small and secondary capture."""
    root = tmp_path_factory.mktemp("faces")
    ar = pocketpacs.open_archive(root / "archive")
    ar.import_folder(corpus / MPRAGE)
    ar.import_folder(corpus / HEAD_CT)
    src = root / "singles"
    src.mkdir()
    for name in ("CT_small.dcm", "SC_rgb_rle.dcm"):
        (src / name).write_bytes(open(bundled(name), "rb").read())
    ar.import_folder(src)
    yield ar
    ar.close()


def _series_by(ar, pred):
    return [se for st in ar.studies() for se in ar.series(st) if pred(se)]


@pytest.mark.parametrize("engine", ["bytes", "pydicom"])
def test_an_export_refuses_the_head_volumes_names_them_and_records_113102_on_the_rest(heads, tmp_path, engine):
    mprage = _series_by(heads, lambda se: se.modality == "MR" and se.n_instances >= 100)
    brain_ct = _series_by(heads, lambda se: se.modality == "CT" and se.n_instances >= MIN_SLICES)
    assert len(mprage) == 1 and brain_ct
    uids = [st.uid for st in heads.studies()]
    res = export_dicom(heads, uids, tmp_path / "out", deidentify=True, options=["clean-visual-features"],
                       allow_burned_in=True, engine=engine)
    refused_files = {p for se in mprage + brain_ct for p in heads.series_files(se)}
    sc = _series_by(heads, lambda se: any(os.path.basename(p) == "SC_rgb_rle.dcm" for p in heads.series_files(se)))
    refused_files |= {p for se in sc for p in heads.series_files(se)}
    assert res.refused == len(refused_files)
    assert res.instances == heads.stats()["instances"] - len(refused_files) >= 1
    assert not {src for src, _out in res.pairs} & refused_files
    faces = [w for w in res.warnings if "refused (clean-visual-features)" in w]
    assert len(faces) == len(mprage) + len(brain_ct) + len(sc)
    assert any("an MR series of 130 images whose descriptions name the head or neck" in w
               or "an MR series of 130 images of the head or neck" in w for w in faces), faces
    assert any(w.endswith("(130 file(s))") for w in faces)
    assert any("Secondary Capture Image Storage images may show a face" in w for w in faces)
    assert all(w.startswith("series ") and "PocketPACS does not deface" in w for w in faces)
    for _src, out in res.pairs:
        ds = pydicom.dcmread(out, stop_before_pixels=True)
        assert "113102" in _codes(ds)
        assert "Clean Recognizable Visual Features Option" in list(ds.DeidentificationMethod)
    # the same series without the option: everything is exported
    plain = export_dicom(heads, uids, tmp_path / "plain", deidentify=True, allow_burned_in=True, engine=engine)
    assert plain.refused == 0 and plain.instances == heads.stats()["instances"]


def test_the_preview_says_a_head_volume_would_be_refused(heads):
    mprage, = _series_by(heads, lambda se: se.modality == "MR" and se.n_instances >= 100)
    study = heads.study(mprage.study_key)
    pv = preview_deidentification(heads, [study.uid], ["clean-visual-features"])
    assert pv["refused"].startswith("refused (clean-visual-features): an MR series of 130 images")
    assert pv["changes"]  # what would change is still listed
    ct_small, = _series_by(heads, lambda se: any(os.path.basename(p) == "CT_small.dcm"
                                                  for p in heads.series_files(se)))
    pv = preview_deidentification(heads, [ct_small.uid], ["clean-visual-features", "full-dates"])
    texts = [c["text"] for c in pv["changes"]]
    assert pv["refused"] is None and not [c for c in pv["changes"] if c["action"] == "shifted"]
    assert "LongitudinalTemporalInformationModified: added (UNMODIFIED)" in texts
    assert {"DeidentificationMethodCodeSequence[1].CodeValue: added (113102)",
            "DeidentificationMethodCodeSequence[2].CodeValue: added (113106)"} <= set(texts)


# ---- the command line and the settings file --------------------------------------------------------

def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_export_help_offers_the_new_options(capsys):
    rc, out, _err = run(capsys, "export", "--help")
    assert rc == 0
    flat = re.sub(r"-\s+", "-", " ".join(out.split()))  # (argparse wraps lines at hyphens too)
    assert "full-dates" in flat and "clean-visual-features" in flat
    assert "refuses the series that may show a face" in flat and "PocketPACS does not deface" in flat


def test_cli_full_dates_visual_features_and_their_conflict(heads, tmp_path, capsys):
    a = heads.path
    ct_small, = _series_by(heads, lambda se: any(os.path.basename(p) == "CT_small.dcm"
                                                  for p in heads.series_files(se)))
    rc, out, err = run(capsys, "--archive", a, "export", ct_small.uid, tmp_path / "f", "--dicom", "--deidentify",
                       "--keep", "full-dates", "clean-visual-features", "--json")
    assert rc == 0, err
    d = json.loads(out)
    src, = heads.series_files(ct_small)
    before, after = pydicom.dcmread(src), pydicom.dcmread(d["written"][0])
    assert _codes(after) == ["113100", "113102", "113106"]
    assert after.LongitudinalTemporalInformationModified == "UNMODIFIED"
    for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "AcquisitionTime"):
        if kw in before:
            assert after[kw].value == before[kw].value, kw
    # the head MR study: refused (exit 1), the warning names the series and why
    mprage, = _series_by(heads, lambda se: se.modality == "MR" and se.n_instances >= 100)
    rc, out, err = run(capsys, "--archive", a, "export", mprage.uid, tmp_path / "m", "--dicom", "--deidentify",
                       "--keep", "clean-visual-features")
    assert rc == 1 and out.startswith("0 instance(s)")
    assert "warning: series 1: refused (clean-visual-features): an MR series of 130 images" in err
    assert not [f for _d, _s, f in os.walk(tmp_path / "m") if f]
    # both date options: a usage error before anything is written
    rc, _out, err = run(capsys, "--archive", a, "export", ct_small.uid, tmp_path / "x", "--dicom", "--deidentify",
                        "--keep", "full-dates", "--keep", "modified-dates")
    assert rc == 2 and "--keep: the options full-dates and modified-dates exclude each other" in err
    assert "Traceback" not in err and not (tmp_path / "x").exists()


def test_a_profile_with_the_new_options_and_one_that_conflicts_with_keep(heads, tmp_path, capsys):
    save_profiles(heads, {"profiles": {"longitudinal": {"description": "real dates, no faces",
                                                        "options": ["full-dates", "clean-visual-features"]}}})
    try:
        ct_small, = _series_by(heads, lambda se: any(os.path.basename(p) == "CT_small.dcm"
                                                      for p in heads.series_files(se)))
        res = export_dicom(heads, [ct_small.uid], tmp_path / "api", profile="longitudinal")
        ds = pydicom.dcmread(res.pairs[0][1])
        assert _codes(ds) == ["113100", "113102", "113106"]
        rc, out, err = run(capsys, "--archive", heads.path, "export", ct_small.uid, tmp_path / "cli", "--dicom",
                           "--profile", "longitudinal", "--json")
        assert rc == 0, err
        assert _codes(pydicom.dcmread(json.loads(out)["written"][0])) == ["113100", "113102", "113106"]
        rc, _out, err = run(capsys, "--archive", heads.path, "export", ct_small.uid, tmp_path / "bad", "--dicom",
                            "--profile", "longitudinal", "--keep", "modified-dates")
        assert rc == 2 and "--profile longitudinal with --keep: the options full-dates and modified-dates" in err
        assert not (tmp_path / "bad").exists()
    finally:
        os.unlink(heads.path / "share-profiles.json")
