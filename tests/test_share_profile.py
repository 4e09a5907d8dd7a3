"""The de-identification rules on built data sets (issue 15): overlays and curves,
private blocks and the safe-private allowlist, Clean Descriptors, dates and UIDs the
table does not list, burned-in refusal, and the table's transcription itself."""
from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from pocketpacs.share import BurnedInRefused, Deidentifier, Pseudonyms
from pocketpacs.share.profile_table import GROUP_TABLE, OPTIONS, TABLE, resolve, row_for

KEY = bytes(range(32))


def make(**extra) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "SCANNER7"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
    ds.SOPInstanceUID = "1.2.3.4.100.1"
    ds.StudyInstanceUID = "1.2.3.4.100"
    ds.SeriesInstanceUID = "1.2.3.4.100.2"
    ds.FrameOfReferenceUID = "1.2.3.4.100.3"
    ds.Modality = "MR"
    ds.PatientName = "Doe^Johnathan"
    ds.PatientID = "MRN77821"
    ds.PatientBirthDate = "19610412"
    ds.PatientAge = "063Y"
    ds.StudyDate = "20240229"
    ds.StudyTime = "101500"
    ds.StudyDescription = "Brain Johnathan Doe follow-up"
    ds.InstitutionName = "St Elsewhere"
    ds.add_new(0x00141020, "DA", "20240301")  # ExpiryDate: a date the table does not list
    ds.add_new(0x00620021, "UI", "1.2.3.4.100.9")  # TrackingUID: a UID the table does not list
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.100.1"
    ds.ReferencedImageSequence = [ref]
    ds.add_new(0x60000010, "US", 8)          # overlay rows
    ds.add_new(0x60003000, "OW", b"\0" * 8)  # overlay data
    ds.add_new(0x50000005, "US", 1)          # a curve
    ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
    ds.add_new(0x0019100C, "IS", "1000")     # B_value: on the allowlist
    ds.add_new(0x00191008, "CS", "IMAGE NUM 4")  # not on it
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291001, "LO", "Doe^Johnathan")
    ds.add_new(0x00080000, "UL", 1234)       # a stale group length
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def test_basic_profile_on_a_built_data_set():
    ds = make()
    Deidentifier(KEY).apply(ds)
    names = Pseudonyms(KEY)
    assert not any(e.tag.group in (0x5000, 0x6000) for e in ds)  # overlays and curves gone
    assert not any(e.tag.is_private for e in ds)                  # every private element and creator
    assert "StudyDescription" not in ds and ds.InstitutionName in ("", None) and "PatientAge" not in ds  # X, X/Z/D, X
    assert ds.PatientBirthDate in ("", None) and ds.StudyDate in ("", None) and ds[0x00141020].value in ("", None)
    assert ds.SOPInstanceUID == names.uid("1.2.3.4.100.1") == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds[0x00620021].value == names.uid("1.2.3.4.100.9")  # unlisted UIDs too
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert 0x00080000 not in ds and "SourceApplicationEntityTitle" not in ds.file_meta
    assert ds.PatientIdentityRemoved == "YES" and ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert str(ds.PatientName).startswith("ANON^") and ds.PatientID.startswith("PP")
    # what is written reads back, and holds nothing of the patient
    from pocketpacs.share.export import dataset_bytes

    data = dataset_bytes(ds)
    for s in ("Doe", "Johnathan", "MRN77821", "19610412", "20240229", "St Elsewhere", "SCANNER7", "1.2.3.4.100"):
        assert s.encode() not in data, s
    assert pydicom.dcmread(__import__("io").BytesIO(data)).PatientIdentityRemoved == "YES"


def test_options_keep_clean_and_shift():
    ds = make()
    opts = ["safe-private", "clean-descriptors", "patient-characteristics", "modified-dates"]
    d = Deidentifier(KEY, opts, patient_name="Subject^7", patient_id="S7")
    d.apply(ds, identity="p1")
    assert ds[0x0019100C].value == "1000" and ds[0x00190010].value == "SIEMENS MR HEADER"
    assert 0x00191008 not in ds and 0x00290010 not in ds and 0x00291001 not in ds
    assert ds.StudyDescription == "Brain ********* *** follow-up"
    assert ds.PatientAge == "063Y"
    shift = Pseudonyms(KEY).day_shift("p1")
    import datetime as dt

    assert (dt.date(int(ds.StudyDate[:4]), int(ds.StudyDate[4:6]), int(ds.StudyDate[6:])) - dt.date(2024, 2, 29)
            ).days == shift < 0
    assert ds.StudyTime == "101500" and ds[0x00141020].value != "20240301"
    assert (str(ds.PatientName), ds.PatientID) == ("Subject^7", "S7")
    assert [it.CodeValue for it in ds.DeidentificationMethodCodeSequence] == [
        "113100", "113105", "113107", "113108", "113111"]
    # another patient of the same archive moves by its own amount; the same patient by the same
    assert Pseudonyms(KEY).day_shift("p1") == shift
    assert len({Pseudonyms(KEY).day_shift(f"p{i}") for i in range(20)}) > 1


def test_burned_in_text_is_refused():
    with pytest.raises(BurnedInRefused, match="BurnedInAnnotation is YES"):
        Deidentifier(KEY).apply(make(BurnedInAnnotation="YES"))
    with pytest.raises(BurnedInRefused, match="Secondary Capture"):
        Deidentifier(KEY).apply(make(SOPClassUID="1.2.840.10008.5.1.4.1.1.7", Modality="OT"))
    warnings = Deidentifier(KEY, allow_burned_in=True).apply(make(Modality="US"))
    assert warnings and "US" in warnings[0]


def test_the_table_names_its_tags_as_the_dicom_dictionary_does():
    from pydicom.datadict import keyword_for_tag

    assert len(TABLE) > 250
    for tag, row in TABLE.items():
        assert keyword_for_tag(tag) == row.keyword, hex(tag)
        assert row.basic in {"X", "Z", "D", "U", "K", "C", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"}, row
        assert set(row.options) <= {"uid", "dev", "inst", "pat", "full", "mod", "desc", "struct", "graph", "priv"}
    assert row_for(0x60023000).keyword == "OverlayData" and row_for(0x50041234).keyword == "CurveData"
    assert row_for(0x00191000) is None and len(GROUP_TABLE) == 3
    assert resolve(TABLE[0x00081010], frozenset()) == "Z"                      # StationName X/Z/D
    assert resolve(TABLE[0x00081010], frozenset({"device-identity"})) == "K"
    assert resolve(TABLE[0x00081140], frozenset()) == "U"                      # ReferencedImageSequence
    assert resolve(TABLE[0x00080020], frozenset({"modified-dates"})) == "C"
    assert set(OPTIONS) == {"modified-dates", "clean-descriptors", "patient-characteristics", "device-identity",
                            "safe-private", "retain-uids", "retain-institution", "clean-structured-content",
                            "clean-graphics", "full-dates", "clean-visual-features"}
    # each option's code and meaning as CID 7050 gives them (pydicom's copy of the DICOM code tables)
    from pydicom.sr.codedict import codes

    cid7050 = {getattr(codes.DCM, n).value: getattr(codes.DCM, n).meaning for n in dir(codes.DCM)
               if n.endswith("Option") or n.endswith("Profile")}
    from pocketpacs.share.profile_table import BASIC_PROFILE_CODE, CLEAN_PIXEL_CODE

    for value, meaning in [BASIC_PROFILE_CODE, CLEAN_PIXEL_CODE] + [o[1:] for o in OPTIONS.values()]:
        assert cid7050.get(value) == meaning, value
    # the column each option reads is the one its rows of Table E.1-1 use
    # (Retain Safe Private and Clean Recognizable Visual Features have no column: an allowlist, a series check)
    assert {o[0] for o in OPTIONS.values()} - {"priv", "visual"} <= {c for r in TABLE.values() for c in r.options}
