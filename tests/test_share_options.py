"""Sharing options (issue 15): named profiles in the archive's settings file, the
further PS3.15 options (Retain UIDs, Retain Institution Identity, Clean Structured
Content, Clean Graphics), blanking of burned-in text by rules (Clean Pixel Data)
and cancelling an export.

Real files only: pydicom's bundled ultrasound images (native RGB and JPEG YBR
multi-frame), its SR and overlay MR, and the Philips CT of ``../shared/corpus``.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest

import pocketpacs
from pocketpacs import cli
from pocketpacs.dicom.fallback import read_dataset_capped
from pocketpacs.share import (
    ExportCancelled,
    ProfileSettingsError,
    export_dicom,
    load_profiles,
    preview_deidentification,
    save_profiles,
)
from pocketpacs.share.blanking import BlankRule, blank_rectangles
from pydicom_data import bundled_file as bundled

US_RGB = "examples_rgb_color.dcm"     # US, GE LOGIQ 700, 240x320 RGB, explicit VR LE
US_JPEG = "examples_ybr_color.dcm"    # US, SonoSite Turbo, 240x320 YBR_FULL_422 JPEG baseline, 30 frames
SR = "test-SR.dcm"
OVERLAY = "examples_overlay.dcm"
RECT = [10, 20, 100, 30]  # x, y, w, h


def _codes(ds) -> set[str]:
    return {it.CodeValue for it in ds.DeidentificationMethodCodeSequence}


def _import(tmp_path, names):
    src = tmp_path / "src"
    src.mkdir()
    for n in names:
        (src / n).write_bytes(open(bundled(n), "rb").read())
    ar = pocketpacs.open_archive(tmp_path / "archive")
    ar.import_folder(src)
    return ar


def _uids_of(ar, name):
    for st in ar.studies():
        for se in ar.series(st):
            if any(os.path.basename(p) == name for p in ar.series_files(se)):
                return [se.uid]
    raise AssertionError(name)


SETTINGS = {
    "profiles": {
        "research": {"description": "dates shifted, device kept",
                     "options": ["modified-dates", "device-identity"],
                     "private": [{"creator": "GEMS_ACQU_01", "tag": "0019,xx10"}]},
        "teaching": {"options": ["retain-institution"],
                     "blanking": [{"name": "logiq top bar", "rows": 240, "columns": 320,
                                   "manufacturer": "G.E. Medical Systems", "model": "LOGIQ 700",
                                   "modality": "US", "rectangles": [RECT]}]},
    },
    "blanking": [{"name": "sonosite header", "rows": 240, "columns": 320, "manufacturer": "SonoSite, Inc.",
                  "rectangles": [RECT, [300, 0, 100, 10]]}],
}


# ---- the settings file -----------------------------------------------------------------------

def test_profiles_are_saved_private_and_read_back(tmp_path):
    path = tmp_path / "share-profiles.json"
    save_profiles(path, SETTINGS)
    assert os.stat(path).st_mode & 0o777 == 0o600
    profiles = load_profiles(path)
    assert sorted(profiles) == ["research", "teaching"]
    r = profiles["research"]
    assert r.options == ("modified-dates", "device-identity", "safe-private")  # the allowlist implies it
    assert r.private == {("GEMS_ACQU_01", 0x0019, 0x10)} and r.description == "dates shifted, device kept"
    t = profiles["teaching"]
    assert [b.name for b in t.blanking] == ["logiq top bar", "sonosite header"]  # its own rules, then the shared
    assert t.blanking[1].rectangles == ((10, 20, 100, 30), (300, 0, 20, 10))  # clipped to the image
    assert load_profiles(tmp_path / "absent.json") == {}


@pytest.mark.parametrize("doc, key, why", [
    ({"profiles": {"a": {"options": ["modified-dates", "retain-everything"]}}}, "profiles.a.options[1]",
     "unknown option"),
    ({"profiles": {"a": {"option": []}}}, "profiles.a.option", "unknown key"),
    ({"profiles": {"a": {"private": [{"creator": "X", "tag": "0010,xx10"}]}}}, "profiles.a.private[0].tag",
     "private element"),
    ({"profiles": {"a": {"blanking": [{"rows": 10, "columns": 10, "manufacturer": "M",
                                       "rectangles": [[0, 0, 5]]}]}}}, "profiles.a.blanking[0].rectangles[0]",
     "[x, y, w, h]"),
    ({"blanking": [{"rows": 10, "columns": 10, "rectangles": [[0, 0, 5, 5]]}]}, "blanking[0].manufacturer",
     "missing"),
    ({"blanking": [{"rows": 10, "columns": 10, "manufacturer": "M", "rectangles": [[12, 0, 5, 5]]}]},
     "blanking[0].rectangles[0]", "outside the 10x10 image"),
    ({"profiles": {"a": {"allow_burned_in": "yes"}}}, "profiles.a.allow_burned_in", "true or false"),
    ({"profiles": {"../x": {}}}, "profiles.../x", "profile name"),
])
def test_a_bad_settings_file_names_the_file_and_the_key(tmp_path, doc, key, why):
    path = tmp_path / "share-profiles.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileSettingsError) as e:
        load_profiles(path)
    assert str(e.value).startswith(f"{path}: {key}: ") and why in str(e.value)


def test_a_settings_file_that_is_not_json_says_where(tmp_path):
    path = tmp_path / "share-profiles.json"
    path.write_text('{"profiles": {"a": {"options": [}}}')
    with pytest.raises(ProfileSettingsError, match=r"share-profiles.json: not valid JSON \(line 1, column"):
        load_profiles(path)


# ---- blanking rectangles on real ultrasound images ------------------------------------------------

def test_native_rgb_ultrasound_is_blanked_in_place_other_bytes_equal():
    ds = pydicom.dcmread(bundled(US_RGB))
    before = ds.pixel_array.copy()
    raw = bytes(ds.PixelData)
    rule = BlankRule("r", 240, 320, "G.E. Medical Systems", ((10, 20, 100, 30),))
    assert rule.covers(ds) and not BlankRule("r", 240, 321, "G.E. Medical Systems", ((0, 0, 1, 1),)).covers(ds)
    warnings = blank_rectangles(ds, rule)
    assert warnings == ["pixels blanked in 1 rectangle(s) by rule 'r'"]
    after = np.frombuffer(bytes(ds.PixelData), np.uint8).reshape(before.shape)
    assert before[20:50, 10:110].any() and not after[20:50, 10:110].any()
    mask = np.ones(before.shape[:2], bool)
    mask[20:50, 10:110] = False
    assert np.array_equal(after[mask], before[mask])
    changed = np.flatnonzero(np.frombuffer(raw, np.uint8) != np.frombuffer(bytes(ds.PixelData), np.uint8))
    rows, cols = np.unravel_index(changed // 3, (240, 320))
    assert rows.min() >= 20 and rows.max() < 50 and cols.min() >= 10 and cols.max() < 110


def _decoders_for(ds) -> bool:
    try:
        return ds.pixel_array is not None
    except Exception:
        return False


def test_profile_export_blanks_covered_ultrasound_and_refuses_the_rest(tmp_path):
    """A profile's rules cover the two ultrasound files: both are exported without
    allow_burned_in, their rectangles blanked (the JPEG one decoded and written
    uncompressed), recorded as Clean Pixel Data; without the profile they are refused."""
    ar = _import(tmp_path, [US_RGB, US_JPEG])
    try:
        save_profiles(ar, SETTINGS)
        uids = _uids_of(ar, US_RGB) + _uids_of(ar, US_JPEG)
        plain = export_dicom(ar, uids, tmp_path / "refused", deidentify=True)
        assert plain.instances == 0 and plain.refused == 2
        assert all("refused: modality US commonly carries burned-in text" in w for w in plain.warnings)

        res = export_dicom(ar, uids, tmp_path / "out", profile="teaching")
        assert res.instances == 2 and res.refused == 0, res.warnings
        assert any("by rule 'logiq top bar'" in w for w in res.warnings)
        jpeg_note = [w for w in res.warnings if "sonosite header" in w]
        assert jpeg_note and "written uncompressed (explicit VR little endian)" in jpeg_note[0]
        for src, out in res.pairs:
            a, b = pydicom.dcmread(src), pydicom.dcmread(out)
            assert {"113100", "113101", "113112"} <= _codes(b), _codes(b)
            assert b.PatientIdentityRemoved == "YES"
            if os.path.basename(src) == US_RGB:
                assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
                assert b.InstitutionName == a.InstitutionName  # retain-institution
            else:
                if not _decoders_for(a):
                    continue
                assert b.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
                assert b.PhotometricInterpretation == "RGB"
            pa, pb = a.pixel_array, b.pixel_array
            assert pa.shape == pb.shape
            frames_a = pa.reshape((-1,) + pa.shape[-3:]) if pa.ndim == 4 else pa[np.newaxis]
            frames_b = pb.reshape((-1,) + pb.shape[-3:]) if pb.ndim == 4 else pb[np.newaxis]
            for fa, fb in zip(frames_a, frames_b):
                assert not fb[20:50, 10:110].any()
                keep = np.ones(fa.shape[:2], bool)
                keep[20:50, 10:110] = False
                if os.path.basename(src) == US_JPEG:
                    keep[0:10, 300:320] = False
                    assert not fb[0:10, 300:320].any()
                assert np.array_equal(fa[keep], fb[keep])  # decoded-equal (byte-equal for the native one)

        pv = preview_deidentification(ar, _uids_of(ar, US_RGB), profile="teaching")
        assert pv["refused"] is None
        assert any(c["element"] == "PixelData" and "pixels blanked" in c["text"] for c in pv["changes"])
        with pytest.raises(ProfileSettingsError, match="profiles.nope: no such profile"):
            export_dicom(ar, uids, tmp_path / "x", profile="nope")
    finally:
        ar.close()


# ---- the further PS3.15 options ------------------------------------------------------------------

def test_retain_uids_keeps_every_uid_and_warns(tmp_path):
    ar = _import(tmp_path, ["CT_small.dcm"])
    try:
        uids = [st.uid for st in ar.studies()]
        res = export_dicom(ar, uids, tmp_path / "out", deidentify=True, options=["retain-uids"])
        assert res.warnings[0].startswith("retain-uids: the exported files keep their original UIDs")
        (src, out), = res.pairs
        a, b = pydicom.dcmread(src), pydicom.dcmread(out)
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            assert b[kw].value == a[kw].value
        assert b.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
        assert "113110" in _codes(b) and b.PatientName != a.PatientName
    finally:
        ar.close()


def _text_items(ds):
    for item in ds.get("ContentSequence", []):
        if item.get("ValueType") == "TEXT":
            yield item
        yield from _text_items(item)


def test_clean_structured_content_keeps_the_sr_tree_without_identifying_words(tmp_path):
    """pydicom's SR document with a patient name given and written into one of its
    TEXT items: the content tree is kept, that text is cleaned, person names emptied."""
    src = tmp_path / "src"
    src.mkdir()
    ds = pydicom.dcmread(bundled(SR))
    ds.PatientName = "Rossi^Maria"
    item = next(_text_items(ds))
    item.TextValue = "Maria Rossi reported pain on the left side"
    ds.save_as(src / "sr.dcm")
    ar = pocketpacs.open_archive(tmp_path / "archive")
    try:
        ar.import_folder(src)
        uids = [st.uid for st in ar.studies()]
        basic = export_dicom(ar, uids, tmp_path / "basic", deidentify=True)
        assert "ContentSequence" not in pydicom.dcmread(basic.pairs[0][1])
        res = export_dicom(ar, uids, tmp_path / "out", deidentify=True, options=["clean-structured-content"])
        out = pydicom.dcmread(res.pairs[0][1])
        assert "113104" in _codes(out)
        assert len(out.ContentSequence) == len(ds.ContentSequence)
        texts = [str(i.TextValue) for i in _text_items(out)]
        assert "***** ***** reported pain on the left side" in texts
        blob = open(res.pairs[0][1], "rb").read()
        assert b"Rossi" not in blob and b"Maria" not in blob
        pn = [e for it in out.ContentSequence for e in it.iterall() if e.VR == "PN"]
        assert all(not e.value for e in pn)
        assert "file(s) de-identified through pydicom" in res.notes[0]  # the byte path hands it over
    finally:
        ar.close()


def test_clean_graphics_keeps_overlays_and_says_so(tmp_path):
    ar = _import(tmp_path, [OVERLAY])
    try:
        uids = [st.uid for st in ar.studies()]
        basic = export_dicom(ar, uids, tmp_path / "basic", deidentify=True)
        assert not [t for t in pydicom.dcmread(basic.pairs[0][1]).keys() if 0x6000 <= t.group <= 0x60FF]
        res = export_dicom(ar, uids, tmp_path / "out", deidentify=True, options=["clean-graphics"])
        a, b = pydicom.dcmread(res.pairs[0][0]), pydicom.dcmread(res.pairs[0][1])
        assert b[0x60003000].value == a[0x60003000].value and "113103" in _codes(b)
        assert any("overlay data kept (clean-graphics)" in w for w in res.warnings)
    finally:
        ar.close()


@pytest.mark.parametrize("engine", ["bytes", "pydicom"])
def test_a_profile_adds_private_elements_to_the_allowlist(tmp_path, engine):
    ar = _import(tmp_path, ["CT_small.dcm"])
    try:
        save_profiles(ar, {"profiles": {"ge": {"private": [
            {"creator": "GEMS_ACQU_01", "tag": "0019,xx24"}, {"creator": "gems_imag_01", "tag": "(0027,xx41)"}]}}})
        res = export_dicom(ar, [st.uid for st in ar.studies()], tmp_path / "out", profile="ge", engine=engine)
        assert not res.notes  # (no file handed over from the byte path)
        a, b = pydicom.dcmread(res.pairs[0][0]), pydicom.dcmread(res.pairs[0][1])
        private = sorted(int(t) for t in b.keys() if t.is_private)
        assert private == [0x00190010, 0x00191024, 0x00270010, 0x00271041]
        assert b[0x00191024].value == a[0x00191024].value and b[0x00271041].value == a[0x00271041].value
        assert "113111" in _codes(b)  # the addition implies Retain Safe Private
    finally:
        ar.close()


NEW_OPTIONS = ["retain-uids", "retain-institution", "clean-structured-content", "clean-graphics",
               "modified-dates", "clean-descriptors"]


def test_byte_rewriter_and_pydicom_agree_with_the_new_options_on_the_corpus(corpus, tmp_path):
    from test_share_deidentify import _differences

    ar = pocketpacs.open_archive(tmp_path / "a")
    try:
        ar.import_folder(corpus)
        uids = [st.uid for st in ar.studies()]
        fast = export_dicom(ar, uids, tmp_path / "bytes", deidentify=True, options=NEW_OPTIONS,
                            allow_burned_in=True, engine="bytes")
        slow = export_dicom(ar, uids, tmp_path / "pydicom", deidentify=True, options=NEW_OPTIONS,
                            allow_burned_in=True, engine="pydicom")
        assert fast.refused == slow.refused == 0 and fast.instances == slow.instances > 400
        assert fast.warnings == slow.warnings
        # most files still take the byte path; those the clean options act on are handed over
        assert int(fast.notes[0].split()[0]) < fast.instances // 5
        slow_out = dict(slow.pairs)
        problems = []
        for src, out in fast.pairs:
            a, b = pydicom.dcmread(slow_out[src]), pydicom.dcmread(out)
            problems += [f"{os.path.basename(out)}: {d}"
                         for d in _differences(a.file_meta, b.file_meta, "meta ") + _differences(a, b)]
            assert a.get("StudyInstanceUID") == read_dataset_capped(src, stop_before_pixels=True).get(
                "StudyInstanceUID")  # retain-uids
        assert not problems, problems[:20]
    finally:
        ar.close()


# ---- the command line and cancelling ----------------------------------------------------------------

def test_cli_profile_and_a_bad_settings_file(tmp_path, capsys):
    ar = _import(tmp_path, [US_RGB, "CT_small.dcm"])
    uid = _uids_of(ar, US_RGB)[0]
    save_profiles(ar, SETTINGS)
    path = ar.path / "share-profiles.json"
    ar.close()
    rc = cli.main(["--archive", str(tmp_path / "archive"), "export", uid, str(tmp_path / "out"), "--dicom",
                   "--profile", "teaching", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["instances"] == 1 and any("logiq top bar" in w for w in doc["warnings"])
    assert _codes(pydicom.dcmread(doc["written"][0])) >= {"113101", "113112"}
    path.write_text(json.dumps({"profiles": {"teaching": {"options": ["retain-all"]}}}))
    rc = cli.main(["--archive", str(tmp_path / "archive"), "export", uid, str(tmp_path / "out2"), "--dicom",
                   "--profile", "teaching"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{path}: profiles.teaching.options[0]: unknown option" in err
    assert "Traceback" not in err and not (tmp_path / "out2").exists()


def test_a_cancelled_export_removes_what_it_wrote(corpus, tmp_path):
    ar = pocketpacs.open_archive(tmp_path / "a")
    try:
        ar.import_folder(corpus / "dcm_qa_ct_philips_S21570")
        uids = [st.uid for st in ar.studies()]
        calls = []

        def cancel():
            calls.append(1)
            return len(calls) > 3  # after three files
        for out, kw in [(tmp_path / "new", {}), (tmp_path / "empty", {"deidentify": True}),
                        (tmp_path / "z", {"zip": True})]:
            if out.name == "empty":
                out.mkdir()
            calls.clear()
            with pytest.raises(ExportCancelled, match="export cancelled after 3 of"):
                export_dicom(ar, uids, out, cancel=cancel, **kw)
            if out.name == "empty":
                assert out.is_dir() and os.listdir(out) == []  # the user's folder stays, emptied
            else:
                assert not out.exists()
        res = export_dicom(ar, uids, tmp_path / "whole", cancel=lambda: False)
        assert res.instances > 3
    finally:
        ar.close()
