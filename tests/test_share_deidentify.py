"""De-identification of the whole real-data corpus (issue 15).

Every DICOM instance of ``../shared/corpus`` is imported into one archive and
exported de-identified; each output file is checked against an independent
transcription of DICOM PS3.15 Table E.1-1 (:data:`BASIC_PROFILE`, written from
the standard's table by keyword, not taken from ``pocketpacs.share``), for
private elements, for any trace of the original identifiers in its bytes
(ASCII, UTF-8, UTF-16-LE/BE, Latin-1) and name, and for byte-equal pixel data;
the export re-imports into a fresh archive with the same counts and geometry, and
a DICOMDIR medium of it (every file, the DICOMDIR included) holds no original
identifier either.  The options Full Dates and Clean Recognizable Visual Features
are checked on the whole corpus on both header paths.
"""
from __future__ import annotations

import io
import os
import re

import pydicom
import pytest

import pocketpacs
from pocketpacs.dicom.fallback import read_dataset_capped
from pocketpacs.share import export_dicom
from pocketpacs.share.private_allowlist import SAFE_PRIVATE

# Table E.1-1, Basic Profile column, for the attributes most often found in images
# (keyword -> action; "X/Z" etc. as in the standard: any of the listed actions conforms).
BASIC_PROFILE = {
    "AccessionNumber": "Z", "AcquisitionComments": "X", "AcquisitionDate": "X/Z", "AcquisitionDateTime": "X/Z/D",
    "AcquisitionDeviceProcessingDescription": "X/D", "AcquisitionProtocolDescription": "X",
    "AcquisitionTime": "X/Z", "AdditionalPatientHistory": "X", "AdmissionID": "X", "AdmittingDiagnosesDescription": "X",
    "Allergies": "X", "CassetteID": "X", "ConcatenationUID": "U", "ContentCreatorName": "Z", "ContentDate": "Z/D",
    "ContentSequence": "X", "ContentTime": "Z/D", "ContrastBolusAgent": "Z/D", "CountryOfResidence": "X",
    "CurrentPatientLocation": "X", "DateOfLastCalibration": "X", "DerivationDescription": "X", "DetectorID": "X",
    "DeviceSerialNumber": "X/Z/D", "DeviceUID": "U", "DimensionOrganizationUID": "U", "EthnicGroup": "X",
    "FrameComments": "X", "FrameOfReferenceUID": "U", "GantryID": "X", "GeneratorID": "X",
    "IconImageSequence": "X", "ImageComments": "X", "InstanceCreationDate": "X/D", "InstanceCreationTime": "X/Z/D",
    "InstanceCreatorUID": "U", "InstitutionAddress": "X", "InstitutionName": "X/Z/D",
    "InstitutionalDepartmentName": "X", "IrradiationEventUID": "U", "IssuerOfPatientID": "X",
    "MedicalAlerts": "X", "MilitaryRank": "X", "NameOfPhysiciansReadingStudy": "X", "Occupation": "X",
    "OperatorsName": "X/Z/D", "OtherPatientIDs": "X", "OtherPatientIDsSequence": "X", "OtherPatientNames": "X",
    "OverlayDate": "X", "OverlayTime": "X", "PatientAddress": "X", "PatientAge": "X", "PatientBirthDate": "Z",
    "PatientBirthName": "X", "PatientBirthTime": "X", "PatientComments": "X", "PatientID": "Z",
    "PatientMotherBirthName": "X", "PatientName": "Z", "PatientSex": "Z", "PatientSize": "X",
    "PatientTelephoneNumbers": "X", "PatientWeight": "X", "PerformedProcedureStepDescription": "X",
    "PerformedProcedureStepID": "X", "PerformedProcedureStepStartDate": "X", "PerformedProcedureStepStartTime": "X",
    "PerformedStationAETitle": "X", "PerformedStationName": "X", "PerformingPhysicianName": "X",
    "PhysiciansOfRecord": "X", "PlateID": "X", "PregnancyStatus": "X", "ProtocolName": "X/D",
    "ReasonForStudy": "X", "ReferencedPatientSequence": "X", "ReferencedSOPInstanceUID": "U",
    "ReferencedStudySequence": "X/Z", "ReferringPhysicianAddress": "X", "ReferringPhysicianName": "Z",
    "ReferringPhysicianTelephoneNumbers": "X", "RequestAttributesSequence": "X",
    "RequestedProcedureDescription": "X/Z", "RequestedProcedureID": "X", "RequestingPhysician": "X",
    "RequestingService": "X", "ScheduledProcedureStepDescription": "X", "SeriesDate": "X",
    "SeriesDescription": "X", "SeriesInstanceUID": "U", "SeriesTime": "X", "SmokingStatus": "X",
    "SoftwareVersions": "X", "SOPInstanceUID": "U", "StationName": "X/Z/D", "StudyComments": "X",
    "StudyDate": "Z", "StudyDescription": "X", "StudyID": "Z", "StudyInstanceUID": "U", "StudyTime": "Z",
    "TextComments": "X", "TimezoneOffsetFromUTC": "X", "UID": "U", "VerifyingObserverName": "D",
    "VerifyingOrganization": "X", "PersonName": "D", "DigitalSignaturesSequence": "X",
    "OriginalAttributesSequence": "X", "ModifiedAttributesSequence": "X", "MAC": "X",
}

#: UID attributes that name classes or syntaxes (never patient data): not searched for
CLASS_UIDS = ("TransferSyntaxUID", "ImplementationClassUID", "CodingSchemeUID", "ContextUID", "MappingResourceUID")
#: identifying text attributes whose original values must not survive anywhere in the file
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
               "InstitutionAddress", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
               "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "NameOfPhysiciansReadingStudy",
               "PhysiciansOfRecord", "StationName", "DeviceSerialNumber", "RequestingPhysician")
DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate", "PatientBirthDate")
#: placeholder values of already-anonymised test files: not identifiers
PLACEHOLDERS = {"ANONYMOUS", "ANONYMIZED", "ANONYMISED", "UNKNOWN", "NONE", "TEST", "19000101"}


def _walk(ds):
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value or []:
                yield from _walk(item)


def _values(elem):
    if elem.value in (None, "", b""):
        return []
    vals = elem.value if elem.VM > 1 else [elem.value]
    return [str(v) for v in vals]


def identifiers(ds, retained: tuple[str, ...] = ()) -> set[str]:
    """The original identifying strings of a data set (nested sequences included), less
    those that are also the value of an attribute the profile keeps (a test file whose
    institution is its manufacturer's name, a name part equal to the body part) and those
    of the ``retained`` attributes (kept by an option)."""
    found: set[str] = set()
    kept: set[str] = set()
    for elem in _walk(ds):
        kw = elem.keyword or ""
        if kw in retained:
            kept.update(v.strip() for v in _values(elem))
            continue
        if elem.VR == "UI" and not kw.endswith("ClassUID") and kw not in CLASS_UIDS:
            found.update(v for v in _values(elem) if not v.startswith("1.2.840.10008."))
        elif kw in IDENTIFYING or kw in DATES:
            for v in _values(elem):
                found.add(v.strip())
                if elem.VR == "PN":
                    found.update(p.strip() for p in v.replace("=", "^").split("^"))
        elif elem.VR in ("CS", "LO", "SH") and kw not in BASIC_PROFILE and not elem.tag.is_private:
            kept.update(v.strip() for v in _values(elem))
    return {v for v in found if len(v) >= 4 and v.upper() not in PLACEHOLDERS and not any(v in k for k in kept)}


def encodings(s: str) -> set[bytes]:
    out = set()
    for enc in ("ascii", "utf-8", "utf-16-le", "utf-16-be", "latin-1"):
        try:
            out.add(s.encode(enc))
        except UnicodeEncodeError:
            pass
    return out


@pytest.fixture(scope="module")
def source_archive(corpus, tmp_path_factory):
    ar = pocketpacs.open_archive(tmp_path_factory.mktemp("share") / "archive")
    ar.import_folder(corpus)
    yield ar
    ar.close()


@pytest.fixture(scope="module")
def basic_export(source_archive, tmp_path_factory):
    out = tmp_path_factory.mktemp("share") / "basic"
    uids = [st.uid for st in source_archive.studies()]
    res = export_dicom(source_archive, uids, out, deidentify=True, allow_burned_in=True)
    assert res.instances > 400 and res.refused == 0, res.warnings
    return res


@pytest.fixture(scope="module")
def basic_pairs(basic_export):
    """(source path, exported path, source data set, exported data set, exported bytes), read once."""
    out = []
    for src_path, out_path in basic_export.pairs:
        data = open(out_path, "rb").read()
        out.append((src_path, out_path, read_dataset_capped(src_path, stop_before_pixels=False),
                    pydicom.dcmread(out_path), data))
    return out


def test_every_instance_of_the_corpus_is_exported_and_readable(source_archive, basic_export, basic_pairs):
    assert basic_export.instances == source_archive.stats()["instances"]
    for _src, out, _s, ds, _b in basic_pairs:
        assert ds.PatientIdentityRemoved == "YES"
        codes = [it.CodeValue for it in ds.DeidentificationMethodCodeSequence]
        assert codes == ["113100"]  # Basic Application Confidentiality Profile, no option
        assert oct(os.stat(out).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.dirname(out)).st_mode & 0o777) == "0o700"


def _check_action(kw: str, action: str, src, out) -> str | None:
    """Why ``out`` does not follow ``action`` for attribute ``kw`` of ``src`` (None: it does)."""
    before = src[kw]
    after = out[kw] if kw in out else None
    old = _values(before)
    if action == "X":
        return None if after is None else "present"
    if action == "U":
        if after is None:
            return "absent"
        new = _values(after)
        if old and (new == old or not all(v.startswith("2.25.") or v.startswith("1.2.840.10008.") for v in new)):
            return f"not replaced by a new UID: {new}"
        return None
    allowed = set(action.split("/"))
    if after is None:
        return None if "X" in allowed else "absent"
    new = _values(after)
    if not new or not old:
        return None if ("Z" in allowed or not old) else "emptied"
    if set(new) & set(old) and before.VR != "SQ" and not {v.upper() for v in old} <= PLACEHOLDERS:
        return "original value kept"
    return None if ("D" in allowed or "Z" in allowed) else "a value where none is allowed"


def test_every_basic_profile_attribute_is_handled_as_the_standard_says(basic_pairs):
    problems = []
    checked = 0
    for _src_path, out_path, src, out, _b in basic_pairs:
        for kw, action in BASIC_PROFILE.items():
            if kw in src:
                checked += 1
                why = _check_action(kw, action, src, out)
                if why:
                    problems.append(f"{os.path.basename(out_path)} {kw} ({action}): {why}")
    assert checked > 5000
    assert not problems, problems[:20]


def test_no_private_element_is_left(basic_pairs):
    for _src, out, _s, ds, _b in basic_pairs:
        private = [str(e.tag) for e in _walk(ds) if e.tag.is_private]
        assert not private, (out, private[:5])


def test_no_original_identifier_anywhere_in_the_bytes_or_names(basic_export, basic_pairs):
    leaks = []
    searched = 0
    for _src_path, out_path, src, _o, data in basic_pairs:
        name = os.path.relpath(out_path, basic_export.out_dir).encode()
        if "PixelData" in src:  # the pixels are byte-equal by design: search the header only
            pixels = bytes(src["PixelData"].value)
            i = data.find(pixels)
            if i >= 0:
                data = data[:i] + data[i + len(pixels):]
        # our pseudonym UIDs (2.25. and 38 digits of HMAC) may hold any short digit run by chance
        data = re.sub(rb"2\.25\.\d+", b"", data)
        for s in identifiers(src):
            for b in encodings(s):
                searched += 1
                if b in data or b in name:
                    leaks.append(f"{os.path.basename(out_path)}: {s!r}")
    assert searched > 5000
    assert not leaks, sorted(set(leaks))[:20]


def test_pixel_data_is_byte_equal(basic_pairs):
    n = 0
    for _src_path, out_path, src, out, _b in basic_pairs:
        for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if kw in src:
                n += 1
                assert bytes(out[kw].value) == bytes(src[kw].value), out_path
                assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert n > 400


@pytest.fixture(scope="module")
def full_export(source_archive, tmp_path_factory):
    """Every option, as a DICOMDIR medium."""
    out = tmp_path_factory.mktemp("share") / "medium"
    uids = [st.uid for st in source_archive.studies()]
    opts = ["modified-dates", "clean-descriptors", "patient-characteristics", "device-identity", "safe-private"]
    res = export_dicom(source_archive, uids, out, deidentify=True, options=opts, dicomdir=True,
                       allow_burned_in=True)
    assert res.refused == 0, res.warnings
    return res


def test_options_are_recorded_and_dates_shift_by_one_amount_per_patient(full_export):
    import datetime as dt

    shifts: dict[str, set[int]] = {}
    for src_path, out_path in full_export.pairs:
        src = read_dataset_capped(src_path, stop_before_pixels=True)
        out = pydicom.dcmread(out_path, stop_before_pixels=True)
        codes = {it.CodeValue for it in out.DeidentificationMethodCodeSequence}
        assert codes == {"113100", "113107", "113105", "113108", "113109", "113111"}
        assert out.LongitudinalTemporalInformationModified == "MODIFIED"
        for e in _walk(out):
            if e.tag.is_private and not (0x10 <= (e.tag.element & 0xFFFF) <= 0xFF):
                creator = out.get(((e.tag.group << 16) | (e.tag.element >> 8)))
                assert creator is not None, (out_path, str(e.tag))
                assert (str(creator.value).strip().upper(), e.tag.group, e.tag.element & 0xFF) in SAFE_PRIVATE
        for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            a, b = str(src.get(kw, "") or ""), str(out.get(kw, "") or "")
            if len(a) == 8 and a.isdigit() and b:
                try:
                    days = (dt.date(int(b[:4]), int(b[4:6]), int(b[6:])) - dt.date(int(a[:4]), int(a[4:6]),
                                                                                    int(a[6:]))).days
                except ValueError:
                    continue
                shifts.setdefault(str(out.PatientID), set()).add(days)
                assert b != a
        assert "PatientAge" not in src or out.get("PatientAge") == src.PatientAge  # patient characteristics
    assert shifts
    assert all(len(s) == 1 and next(iter(s)) < 0 for s in shifts.values()), shifts


def test_medium_loads_in_the_cd_usb_path_with_every_series_and_the_same_geometry(source_archive, full_export):
    from pocketpacs.archive.media import open_media

    root = full_export.out_dir
    assert os.path.isfile(os.path.join(root, "DICOMDIR"))
    for d, _dirs, files in os.walk(root):  # the medium's names carry nothing but numbers
        assert oct(os.stat(d).st_mode & 0o777) == "0o700"
        for f in files:
            assert oct(os.stat(os.path.join(d, f)).st_mode & 0o777) == "0o600"
    src_stats = source_archive.stats()
    with open_media(os.path.join(root, "DICOMDIR")) as media:
        rep = media.last_import
        assert rep.dicomdir is not None and rep.dicomdir["missing"] == 0 and rep.dicomdir["rejected"] == 0
        assert rep.dicomdir["found"] == full_export.instances
        st = media.stats()
        assert (st["patients"], st["studies"], st["series"], st["instances"]) == (
            src_stats["patients"], src_stats["studies"], src_stats["series"], src_stats["instances"])
        # geometry: the series of the source and of the medium assemble to the same volumes
        out_series = {}
        for src_path, out_path in full_export.pairs:
            out_series.setdefault(pydicom.dcmread(out_path, stop_before_pixels=True).SeriesInstanceUID,
                                  set()).add(src_path)
        compared = 0
        for st_rec in source_archive.studies():
            for se in source_archive.series(st_rec):
                files = set(source_archive.series_files(se))
                match = [u for u, srcs in out_series.items() if srcs == files]
                assert len(match) == 1, se.uid
                if se.n_instances < 3:
                    continue
                try:
                    a = source_archive.volume(se)
                except Exception:
                    continue
                b = media.volume(match[0])
                assert len(a.volumes) == len(b.volumes)
                for va, vb in zip(a.volumes, b.volumes):
                    assert va.array.shape == vb.array.shape
                    assert (abs(va.affine_lps - vb.affine_lps) < 1e-4).all()
                compared += 1
        assert compared >= 8


def test_plain_medium_of_the_corpus_keeps_every_patient_study_and_series(source_archive, tmp_path):
    from pocketpacs.archive.media import open_media

    res = export_dicom(source_archive, [st.uid for st in source_archive.studies()], tmp_path / "cd", dicomdir=True)
    assert res.refused == 0 and res.instances == source_archive.stats()["instances"]
    with open_media(tmp_path / "cd") as media:
        a, b = media.stats(), source_archive.stats()
        assert [a[k] for k in ("patients", "studies", "series", "instances")] == [
            b[k] for k in ("patients", "studies", "series", "instances")]
    for src_path, out_path in res.pairs:
        src = read_dataset_capped(src_path, stop_before_pixels=False)
        if "PixelData" in src:
            assert bytes(pydicom.dcmread(out_path).PixelData) == bytes(src.PixelData), out_path


# ---- the byte-level rewriter gives what the pydicom path gives -----------------------------------

def _differences(a, b, where: str = "") -> list[str]:
    """Every element that differs between two data sets (nested sequences item by item)."""
    out = []
    ta, tb = set(a.keys()), set(b.keys())
    out += [f"{where}{t}: only in the {'pydicom' if t in ta else 'bytes'} output" for t in sorted(ta ^ tb)]
    for t in sorted(ta & tb):
        ea, eb = a[t], b[t]
        if "SQ" in (ea.VR, eb.VR):
            if ea.VR != eb.VR or len(ea.value) != len(eb.value):
                out.append(f"{where}{t} {ea.keyword}: sequences differ")
                continue
            for i, (x, y) in enumerate(zip(ea.value, eb.value)):
                out += _differences(x, y, f"{where}{t}[{i}].")
        elif ea.value != eb.value:
            out.append(f"{where}{t} {ea.keyword}: {ea.value!r:.40} != {eb.value!r:.40}")
    return out


ALL_OPTIONS = ["modified-dates", "clean-descriptors", "patient-characteristics", "device-identity", "safe-private"]
FULL_DATES = ["full-dates", "clean-descriptors", "patient-characteristics", "device-identity", "safe-private"]
#: dates and times that the Full Dates option keeps as they are (when the profile keeps the element at all)
KEPT_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime",
              "AcquisitionTime", "ContentTime", "AcquisitionDateTime")


@pytest.mark.parametrize("options", [[], ALL_OPTIONS, FULL_DATES], ids=["basic", "all-options", "full-dates"])
def test_byte_rewriter_gives_the_same_elements_and_values_as_pydicom(source_archive, tmp_path, options):
    uids = [st.uid for st in source_archive.studies()]
    fast = export_dicom(source_archive, uids, tmp_path / "bytes", deidentify=True, options=options,
                        allow_burned_in=True, engine="bytes")
    slow = export_dicom(source_archive, uids, tmp_path / "pydicom", deidentify=True, options=options,
                        allow_burned_in=True, engine="pydicom")
    assert fast.refused == slow.refused == 0 and fast.instances == slow.instances
    assert fast.warnings == slow.warnings
    # the files the byte path hands over to pydicom are counted with their reasons; most are rewritten as bytes
    assert not slow.notes and len(fast.notes) == 1 and "deflated transfer syntax (1)" in fast.notes[0]
    assert int(fast.notes[0].split()[0]) < fast.instances // 5
    slow_out = dict(slow.pairs)
    problems = []
    for src, out in fast.pairs:
        a, b = pydicom.dcmread(slow_out[src]), pydicom.dcmread(out)
        diffs = _differences(a.file_meta, b.file_meta, "meta ") + _differences(a, b)
        problems += [f"{os.path.basename(out)}: {d}" for d in diffs]
        if "full-dates" in options:
            orig = read_dataset_capped(src, stop_before_pixels=True)
            assert b.LongitudinalTemporalInformationModified == "UNMODIFIED"
            assert "113106" in {it.CodeValue for it in b.DeidentificationMethodCodeSequence}
            for kw in KEPT_DATES:
                if kw in orig and kw in b:
                    assert b[kw].value == orig[kw].value, (out, kw)
    assert len(fast.pairs) == fast.instances > 400
    assert not problems, problems[:20]


def test_byte_rewriter_reads_its_own_output_defined_length_sequences(basic_export):
    """The rewriter writes rebuilt sequences with defined lengths (the corpus's are mostly
    undefined): rewriting its output again matches the pydicom path on that output."""
    from pocketpacs.share.deidentify import Deidentifier
    from pocketpacs.share.export import _read, dataset_bytes
    from pocketpacs.share.rewrite import ByteRewriter, NotRewritable

    compared = nested = 0
    for _src, out in basic_export.pairs[::7]:
        data = open(out, "rb").read()
        key = b"\x01" * 32
        try:
            fast, _w = ByteRewriter(Deidentifier(key, ["modified-dates"], True)).rewrite(data, None)
        except NotRewritable:  # a deflated file stays deflated
            continue
        ds = _read(out)
        Deidentifier(key, ["modified-dates"], True).apply(ds, None)
        a, b = pydicom.dcmread(io.BytesIO(dataset_bytes(ds))), pydicom.dcmread(io.BytesIO(fast))
        assert not _differences(a, b), (out, _differences(a, b)[:5])
        nested += any(e.VR == "SQ" and e.value for e in a)
        compared += 1
    assert compared > 50 and nested > 50


def test_byte_rewriter_hands_unusual_files_to_pydicom_with_the_reason():
    from pocketpacs.share.deidentify import Deidentifier
    from pocketpacs.share.rewrite import ByteRewriter, NotRewritable
    from pydicom_data import bundled_file as bundled

    rw = ByteRewriter(Deidentifier(b"\x02" * 32, allow_burned_in=True))
    for name, why in [("image_dfl.dcm", "deflated"), ("MR_small_bigendian.dcm", "big endian"),
                      ("rtplan.dcm", "")]:
        data = open(bundled(name), "rb").read()
        if why:
            with pytest.raises(NotRewritable, match=why):
                rw.rewrite(data, "x")
        else:
            rw.rewrite(data, "x")
    with pytest.raises(NotRewritable, match="preamble"):
        rw.rewrite(b"\0" * 64, "x")
    good = open(bundled("CT_small.dcm"), "rb").read()
    with pytest.raises(NotRewritable, match="longer than the data left"):
        rw.rewrite(good[:-100], "x")


def test_the_preview_lists_changes_without_any_original_value(source_archive):
    import json

    from pocketpacs.share import preview_deidentification

    previewed = 0
    for st in source_archive.studies():
        se = source_archive.series(st)[0]
        src = read_dataset_capped(source_archive.series_files(se)[0], stop_before_pixels=True)
        pv = preview_deidentification(source_archive, [st.uid], ["modified-dates"], allow_burned_in=True)
        blob = json.dumps(pv, ensure_ascii=False)
        leaked = [v for v in identifiers(src) if v in blob]
        assert not leaked, (st.uid, leaked)
        kinds = {c["action"] for c in pv["changes"]}
        assert {"pseudonym", "added"} <= kinds and pv["instances"] >= se.n_instances
        previewed += 1
    assert previewed >= 10


# ---- Clean Recognizable Visual Features on the whole corpus ---------------------------------------

def test_clean_visual_features_refuses_the_same_series_on_both_paths(source_archive, tmp_path):
    """The head volumes of the corpus (GE MPRAGE, Philips head CT, Siemens mosaics, ...) and
    the secondary captures are refused whole, on both header paths alike; every exported
    instance records 113102 and is what the pydicom path writes."""
    uids = [st.uid for st in source_archive.studies()]
    kw = dict(deidentify=True, options=["clean-visual-features"], allow_burned_in=True)
    fast = export_dicom(source_archive, uids, tmp_path / "bytes", engine="bytes", **kw)
    slow = export_dicom(source_archive, uids, tmp_path / "pydicom", engine="pydicom", **kw)
    total = source_archive.stats()["instances"]
    assert fast.warnings == slow.warnings and fast.refused == slow.refused and fast.instances == slow.instances
    assert fast.instances + fast.refused == total and 130 < fast.refused < total - 50
    faces = [w for w in fast.warnings if "refused (clean-visual-features)" in w]
    assert any("an MR series of 130 images" in w for w in faces)      # the GE 3D T1 of a head
    assert any("an MR series of mosaics" in w for w in faces)         # Siemens EPI mosaics
    assert sum(int(re.search(r"\((\d+) file\(s\)\)$", w).group(1)) for w in faces) == fast.refused
    refused_series = {w.split(":")[0] for w in faces}
    assert len(refused_series) == len(faces)
    slow_out = dict(slow.pairs)
    problems = []
    for src, out in fast.pairs:
        a, b = pydicom.dcmread(slow_out[src]), pydicom.dcmread(out)
        assert "113102" in {it.CodeValue for it in b.DeidentificationMethodCodeSequence}
        problems += [f"{os.path.basename(out)}: {d}" for d in _differences(a, b)]
    assert not problems, problems[:20]


# ---- the "what must be shown": re-import, the medium's every byte and name ---------------

def _geometry_compared(source_archive, other, pairs, skip_mosaics: bool = False) -> tuple[int, int]:
    """Series of the source and of ``other`` (matched through the exported files) that
    assemble to volumes of the same shape and affine (the pixels are compared file by file);
    asserts as it goes.
    Returns (series compared, Siemens mosaic series skipped)."""
    out_series: dict[str, set[str]] = {}
    for src_path, out_path in pairs:
        out_series.setdefault(pydicom.dcmread(out_path, stop_before_pixels=True).SeriesInstanceUID,
                              set()).add(src_path)
    compared = skipped = 0
    for st_rec in source_archive.studies():
        for se in source_archive.series(st_rec):
            files = set(source_archive.series_files(se))
            match = [u for u, srcs in out_series.items() if srcs == files]
            assert len(match) == 1, se.uid
            if se.n_instances < 3:
                continue
            try:
                a = source_archive.volume(se)
            except Exception:
                continue
            if skip_mosaics and any("MOSAIC" in i.text.get("ImageType", "").upper()
                                    for i in source_archive.instances(se)):
                skipped += 1
                continue
            b = other.volume(match[0])
            assert len(a.volumes) == len(b.volumes)
            for va, vb in zip(a.volumes, b.volumes):
                assert va.array.shape == vb.array.shape
                assert (abs(va.affine_lps - vb.affine_lps) < 1e-4).all()
            compared += 1
    return compared, skipped


def test_the_export_re_imports_into_a_fresh_archive_with_the_same_counts_and_geometry(
        source_archive, basic_export, tmp_path):
    with pocketpacs.open_archive(tmp_path / "fresh") as fresh:
        rep = fresh.import_folder(basic_export.out_dir)
        assert not getattr(rep, "errors", None), rep
        a, b = fresh.stats(), source_archive.stats()
        assert [a[k] for k in ("patients", "studies", "series", "instances")] == [
            b[k] for k in ("patients", "studies", "series", "instances")]
        # Siemens mosaics keep their tiling in the private CSA header, which the Basic Profile
        # removes: their geometry is compared on the medium, made with Retain Safe Private
        # (test_the_medium_re_imports_with_every_mosaic_and_the_same_geometry)
        compared, mosaics = _geometry_compared(source_archive, fresh, basic_export.pairs, skip_mosaics=True)
        assert compared >= 8 and mosaics >= 2


#: ISO 9660 names of a DICOM medium (PS3.10 8.5 / PS3.12 Annex F): up to 8 of A-Z 0-9 _
MEDIUM_NAME = re.compile(r"^[A-Z0-9_]{1,8}$")


def test_the_medium_holds_no_original_identifier_in_any_file_or_name(full_export):
    """Every file of the de-identified medium (its instances are written by pydicom's
    FileSet, not the byte path) and every name in it: none of the original identifiers in
    any encoding; pixel data byte-equal to the source.  The DICOMDIR: the records above
    each instance (patient, study, series, image) hold none of its source's identifiers."""
    from pydicom.fileset import FileSet

    retained = ("StationName", "DeviceSerialNumber")  # kept by device-identity
    root = full_export.out_dir
    ids_of: dict[str, set[str]] = {}
    leaks = []
    pixels = 0
    for src_path, out_path in full_export.pairs:
        src = read_dataset_capped(src_path, stop_before_pixels=False)
        data = open(out_path, "rb").read()
        rel = os.path.relpath(out_path, root)
        assert all(MEDIUM_NAME.match(part) for part in rel.split(os.sep)), rel
        for kw in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if kw in src:
                pixels += 1
                assert bytes(pydicom.dcmread(out_path)[kw].value) == bytes(src[kw].value), out_path
                i = data.find(bytes(src[kw].value))
                if i >= 0:
                    data = data[:i] + data[i + len(bytes(src[kw].value)):]
        data = re.sub(rb"2\.25\.\d+", b"", data)
        ids = ids_of[os.path.normpath(out_path)] = identifiers(src, retained)
        for v in ids:
            for b in encodings(v):
                if b in data or b in rel.encode():
                    leaks.append(f"{rel}: {v!r}")
    assert pixels > 400
    records = 0
    for inst in FileSet(pydicom.dcmread(os.path.join(root, "DICOMDIR"))):
        texts = []
        for node in [inst.node, *inst.node.ancestors]:
            rec = getattr(node, "_record", None)
            if rec is None:
                continue
            records += 1
            texts += [str(e.value) for e in rec.iterall() if e.VR not in ("SQ", "OB", "UL", "US")
                      and not str(e.value).startswith("2.25.")]
        blob = "\n".join(texts)
        leaks += [f"DICOMDIR above {os.path.relpath(inst.path, root)}: {v!r}"
                  for v in ids_of[os.path.normpath(inst.path)] if v in blob]
    assert records >= 4 * full_export.instances
    names = [os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files]
    assert "DICOMDIR" in names and all(all(MEDIUM_NAME.match(p) for p in n.split(os.sep)) for n in names), names[:5]
    assert not leaks, sorted(set(leaks))[:20]


def test_the_medium_re_imports_with_every_mosaic_and_the_same_geometry(source_archive, full_export):
    """With Retain Safe Private (the Siemens mosaic geometry on the allowlist) every series,
    the mosaics included, assembles from a fresh archive of the medium as from the source."""
    from pocketpacs.archive.media import open_media

    with open_media(os.path.join(full_export.out_dir, "DICOMDIR")) as media:
        compared, skipped = _geometry_compared(source_archive, media, full_export.pairs)
    assert skipped == 0 and compared >= 10
