"""Tests of the synthetic archive generator (pocketpacs.synth)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders import JPEGLosslessSV1Decoder

from conftest import peer
from pocketpacs import synth
from pocketpacs.synth.datasets import (
    _dataset_bytes,
    _pixel_value,
    _series_template,
    _slice_dataset,
    _stored_frame,
)
from pocketpacs.synth.dicom_values import IMPLEMENTATION_CLASS_UID, JPEG_LOSSLESS_SV1
from pocketpacs.synth.encoders import _encode_frame
from pocketpacs.synth.options import _options
from pocketpacs.synth.plan import _make_plan
from pocketpacs.synth.writer import _slice_bytes, _static_segments

REPO = Path(__file__).resolve().parents[1]

# 8 single-frame series (JPEG lossless, JPEG 2000, RLE, explicit and implicit
# VR), 4 enhanced series and one junk file of every kind; 35 files in all.
OPTS = dict(patients=2, studies=1, series=4, slices=3, rows=32, cols=40, seed=1,
            compressed_fraction=0.5, implicit_fraction=0.25, enhanced=4, junk=7)

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "archive"
    manifest = synth.generate(out, **OPTS)
    return out, manifest


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _dicom_entries(manifest: dict):
    for s in manifest["series"]:
        for i, rel in enumerate(s["files"]):
            yield s, i, rel


def _rescaled(arr: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    return arr.astype(np.float64) * slope + intercept


# ---------------------------------------------------------------- determinism


def test_same_options_same_bytes_and_names(archive, tmp_path):
    root, _ = archive
    again = tmp_path / "again"
    synth.generate(again, workers=2, **OPTS)  # worker count does not change the output
    a, b = _files(root), _files(again)
    assert sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a)


def test_other_seed_other_uids_and_names(archive, tmp_path):
    _, m1 = archive
    m2 = synth.generate(tmp_path / "s2", **{**OPTS, "seed": 2, "enhanced": 0, "junk": 0})
    uids1 = {u for s in m1["series"] for u in [s["series_instance_uid"], *s["sop_instance_uids"]]}
    uids2 = {u for s in m2["series"] for u in [s["series_instance_uid"], *s["sop_instance_uids"]]}
    assert not uids1 & uids2
    assert {f for s in m1["series"] for f in s["files"]} != {f for s in m2["series"] for f in s["files"]}


# ---------------------------------------------------------------- manifest


def test_manifest_matches_disk(archive):
    root, manifest = archive
    on_disk = set(_files(root)) - {"manifest.json"}
    listed = [rel for _, _, rel in _dicom_entries(manifest)] + [j["path"] for j in manifest["junk"]]
    assert len(listed) == len(set(listed))
    assert set(listed) == on_disk
    assert manifest["counts"]["files"] == len(on_disk) == synth.count_files(**OPTS) == 35
    assert json.loads((root / "manifest.json").read_text("utf-8")) == manifest
    assert {s["codec"] for s in manifest["series"]} == {"explicit", "implicit", "rle", "j2k",
                                                       "jpeg-lossless"}
    assert {s["kind"] for s in manifest["series"]} == {"single-frame", "enhanced"}
    sf = [s for s in manifest["series"] if s["kind"] == "single-frame"]
    assert sum(s["codec"] in ("rle", "j2k", "jpeg-lossless") for s in sf) == 4
    assert sum(s["codec"] == "implicit" for s in sf) == 2
    assert {s["modality"] for s in manifest["series"]} == {"CT", "MR"}
    assert {p["specific_character_set"] for p in manifest["patients"]} == {"ISO_IR 192", "ISO_IR 100"}
    for st in manifest["studies"]:
        assert st["series"] == [s["series_instance_uid"] for s in manifest["series"]
                                if s["study_instance_uid"] == st["study_instance_uid"]]


def test_uids_are_valid_and_unique(archive):
    _, manifest = archive
    uids = [st["study_instance_uid"] for st in manifest["studies"]]
    for s in manifest["series"]:
        uids += [s["series_instance_uid"], *s["sop_instance_uids"]]
    uids += [j[k] for j in manifest["junk"] for k in ("series_instance_uid", "sop_instance_uid") if k in j]
    assert len(uids) == len(set(uids))
    frames_of_ref = [s["frame_of_reference_uid"] for s in manifest["series"]]
    for u in uids + frames_of_ref + [IMPLEMENTATION_CLASS_UID]:
        assert len(u) <= 64 and UID_RE.match(u), u


def test_presets_and_orientation_mix():
    assert synth.count_files(**synth.PRESETS["demo"]) == 361
    assert synth.count_files(**synth.PRESETS["bench"]) == 5000
    assert synth.count_files(**synth.PRESETS["scale"]) == 100_000
    plan = _make_plan(_options(patients=10, studies=1, series=5, slices=2, junk=0, enhanced=0))
    orient = [s.orientation for s in plan.series]
    assert orient.count("oblique") == 1
    assert orient.count("coronal") >= 1 and orient.count("sagittal") >= 1
    assert orient.count("axial") > len(orient) / 2
    assert len({p.patient_id for p in plan.patients}) == 10


# ---------------------------------------------------------------- headers


def test_every_dicom_file_reads_back_with_intended_values(archive):
    root, manifest = archive
    patients = {p["patient_id"]: p for p in manifest["patients"]}
    studies = {st["study_instance_uid"]: st for st in manifest["studies"]}
    for s, i, rel in _dicom_entries(manifest):
        raw = (root / rel).read_bytes()
        assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
        ds = pydicom.dcmread(root / rel)
        meta = ds.file_meta
        assert meta.FileMetaInformationGroupLength > 0
        assert meta.TransferSyntaxUID == s["transfer_syntax_uid"]
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID == s["sop_class_uid"]
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == s["sop_instance_uids"][i]
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        p = patients[s["patient_id"]]
        st = studies[s["study_instance_uid"]]
        assert ds.SpecificCharacterSet == p["specific_character_set"]
        assert str(ds.PatientName) == p["patient_name"]
        assert ds.PatientID == p["patient_id"]
        assert ds.PatientBirthDate == p["birth_date"] and ds.PatientSex == p["sex"]
        assert ds.StudyInstanceUID == st["study_instance_uid"]
        assert ds.StudyDate == st["study_date"] and ds.AccessionNumber == st["accession_number"]
        assert ds.StudyDescription == st["study_description"]
        assert ds.SeriesInstanceUID == s["series_instance_uid"]
        assert ds.SeriesDescription == s["series_description"]
        assert ds.Modality == s["modality"] and int(ds.SeriesNumber) == s["series_number"]
        assert ds.FrameOfReferenceUID == s["frame_of_reference_uid"]
        for kw in ("StudyTime", "Manufacturer", "ManufacturerModelName", "StationName",
                   "InstitutionName", "ReferringPhysicianName", "PerformingPhysicianName",
                   "BodyPartExamined", "ProtocolName", "StudyID"):
            assert kw in ds and str(ds[kw].value) != "", kw
        assert (ds.Rows, ds.Columns) == (s["rows"], s["cols"])
        assert ds.SamplesPerPixel == 1 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.BitsAllocated == 16 and ds.BitsStored == s["bits_stored"] in (12, 16)
        assert ds.HighBit == ds.BitsStored - 1
        assert ds.PixelRepresentation == s["pixel_representation"]
        if s["kind"] == "single-frame":
            assert int(ds.InstanceNumber) == s["instance_numbers"][i] == i + 1
            assert "AcquisitionNumber" in ds
            assert [float(v) for v in ds.ImagePositionPatient] == s["positions"][i]
            assert [float(v) for v in ds.ImageOrientationPatient] == s["image_orientation_patient"]
            assert [float(v) for v in ds.PixelSpacing] == s["pixel_spacing"]
            assert float(ds.SliceThickness) == s["slice_thickness"]
            assert float(ds.RescaleSlope) == s["rescale_slope"]
            assert float(ds.RescaleIntercept) == s["rescale_intercept"]
            normal = np.cross(s["image_orientation_patient"][:3], s["image_orientation_patient"][3:])
            assert float(ds.SliceLocation) == pytest.approx(np.dot(s["positions"][i], normal), abs=1e-3)
            wc = ds.WindowCenter
            assert [float(v) for v in (wc if isinstance(wc, pydicom.multival.MultiValue) else [wc])] \
                == s["window_center"]
            if s["modality"] == "CT":
                assert s["rescale_intercept"] == -1024 and s["rescale_slope"] == 1
        else:
            assert ds.SOPClassUID in (synth.ENHANCED_CT_IMAGE_STORAGE, synth.ENHANCED_MR_IMAGE_STORAGE)
            assert int(ds.NumberOfFrames) == s["num_frames"] == OPTS["slices"]
            shared = ds.SharedFunctionalGroupsSequence[0]
            assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == s["pixel_spacing"]
            assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] \
                == s["image_orientation_patient"]
            pvt = shared.PixelValueTransformationSequence[0]
            assert (float(pvt.RescaleSlope), float(pvt.RescaleIntercept)) == \
                (s["rescale_slope"], s["rescale_intercept"])
            per_frame = ds.PerFrameFunctionalGroupsSequence
            assert len(per_frame) == s["num_frames"]
            for k, item in enumerate(per_frame):
                assert [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient] \
                    == s["positions"][k]
                assert "FrameContentSequence" in item
            # nested sequences of undefined length, with delimited items
            assert ds["PerFrameFunctionalGroupsSequence"].is_undefined_length
            assert ds["SharedFunctionalGroupsSequence"].is_undefined_length
            assert shared["PixelMeasuresSequence"].is_undefined_length
            assert raw.count(b"\xfe\xff\x0d\xe0\x00\x00\x00\x00") >= 3 * s["num_frames"]


def test_charsets_encode_names_in_the_declared_encoding(archive):
    root, manifest = archive
    encoding = {"ISO_IR 192": "utf-8", "ISO_IR 100": "latin-1"}
    patients = {p["patient_id"]: p for p in manifest["patients"]}
    seen = set()
    for s in manifest["series"]:
        p = patients[s["patient_id"]]
        raw = (root / s["files"][0]).read_bytes()
        assert p["patient_name"].encode(encoding[p["specific_character_set"]]) in raw
        assert any(ord(c) > 127 for c in p["patient_name"])
        seen.add(p["specific_character_set"])
    assert seen == {"ISO_IR 192", "ISO_IR 100"}


def test_non_ascii_names_of_all_fixed_patients(tmp_path):
    m = synth.generate(tmp_path, patients=9, series=1, slices=1, rows=8, cols=8, enhanced=0, junk=0)
    names = {p["patient_id"]: (p["patient_name"], p["specific_character_set"]) for p in m["patients"]}
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in {n for n, _ in names.values()}
    assert "Żółć^Łukasz" in {n for n, _ in names.values()}
    for s in m["series"]:
        ds = pydicom.dcmread(tmp_path / s["files"][0])
        assert (str(ds.PatientName), ds.SpecificCharacterSet) == names[ds.PatientID]
        # Latin-1 data sets hold only Latin-1 text
        if ds.SpecificCharacterSet == "ISO_IR 100":
            for elem in ds.iterall():
                if elem.VR in ("LO", "SH", "PN", "LT", "ST"):
                    str(elem.value).encode("latin-1")


def test_fast_writer_equals_pydicom_writer(archive):
    root, manifest = archive
    plan = _make_plan(_options(**OPTS))
    seen = set()
    for s in plan.series:
        if s.kind != "single-frame" or (s.codec, s.pixel_representation) in seen:
            continue
        seen.add((s.codec, s.pixel_representation))
        segs = _static_segments(_series_template(s), s.implicit)
        for i in range(len(s.paths)):
            fast = _slice_bytes(s, segs, i, _pixel_value(s, [_stored_frame(s, i)]))
            assert fast == _dataset_bytes(_slice_dataset(s, i))
            assert fast == (root / s.paths[i]).read_bytes()
    assert {c for c, _ in seen} == {"explicit", "implicit", "rle", "j2k", "jpeg-lossless"}


# ---------------------------------------------------------------- pixels


def test_pixels_equal_phantom_at_pixel_centres(archive):
    root, manifest = archive
    checked = set()
    for s, _i, rel in _dicom_entries(manifest):
        ds = pydicom.dcmread(root / rel)
        arr = ds.pixel_array
        if s["kind"] == "single-frame":
            frames = [(arr, ds.ImagePositionPatient)]
            iop, spacing = ds.ImageOrientationPatient, ds.PixelSpacing
            slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        else:
            shared = ds.SharedFunctionalGroupsSequence[0]
            iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
            spacing = shared.PixelMeasuresSequence[0].PixelSpacing
            pvt = shared.PixelValueTransformationSequence[0]
            slope, intercept = float(pvt.RescaleSlope), float(pvt.RescaleIntercept)
            frames = [(arr[k], item.PlanePositionSequence[0].ImagePositionPatient)
                      for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence)]
        for img, ipp in frames:
            expected = synth.phantom_hu(synth.slice_points(
                [float(v) for v in ipp], [float(v) for v in iop], [float(v) for v in spacing],
                ds.Rows, ds.Columns))
            np.testing.assert_array_equal(_rescaled(img, slope, intercept), expected)
            assert len(np.unique(expected)) >= 3  # the slice shows anatomy, not just air
        checked.add(s["codec"])
    assert checked == {"explicit", "implicit", "rle", "j2k", "jpeg-lossless"}


def test_expected_series_hu_matches_files(archive):
    root, manifest = archive
    for s in manifest["series"]:
        if s["kind"] != "single-frame":
            continue
        vol = synth.expected_series_hu(s)
        assert vol.shape == (len(s["files"]), s["rows"], s["cols"])
        for k, rel in enumerate(s["files"]):
            ds = pydicom.dcmread(root / rel)
            np.testing.assert_array_equal(
                ds.pixel_array * s["rescale_slope"] + s["rescale_intercept"], vol[k])


def test_phantom_is_asymmetric_and_shaped():
    marker = np.array([83.1, -51.7, 71.3])
    assert synth.phantom_hu(marker[None])[0] == 1200
    for flip in (np.array([-1, 1, 1]), np.array([1, -1, 1]), np.array([1, 1, -1]),
                 np.array([-1, -1, -1])):
        assert synth.phantom_hu((marker * flip)[None])[0] != 1200
    assert synth.phantom_hu(marker[[1, 0, 2]][None])[0] != 1200  # x/y swap
    pts = np.array([[0, 0, 0], [500, 0, 0], [63.9, 12.7, 48.3], [0, 78.3, 10.0], [-62.7, -14.3, -71.9]])
    hu = synth.phantom_hu(pts)
    assert hu.dtype == np.int16 and hu.shape == (5,)
    assert hu[0] == 40 and hu[1] == -1000 and hu[2] == -800 and hu[3] in (80, 900) and hu[4] == 62
    grid = synth.slice_points([-150, -150, 100.0], [1, 0, 0, 0, 1, 0], [3.0, 3.0], 100, 100)
    assert grid.shape == (100, 100, 3)
    values = synth.phantom_hu(grid)
    assert values.shape == (100, 100)
    assert (values >= 700).any() and (values <= -800).any()


def test_rle_frames_equal_pydicom_native_encoder():
    from pydicom.pixels.encoders import RLELosslessEncoder

    plan = _make_plan(_options(**OPTS))
    n = 0
    for s in plan.series:
        if s.codec != "rle":
            continue
        for i in range(len(s.positions)):
            arr = _stored_frame(s, i)
            native = RLELosslessEncoder.encode(
                arr, encoding_plugin="pydicom", rows=s.rows, columns=s.cols, samples_per_pixel=1,
                bits_allocated=16, bits_stored=s.bits_stored, pixel_representation=s.pixel_representation,
                photometric_interpretation="MONOCHROME2", number_of_frames=1)
            assert _encode_frame(s, arr) == native
            n += 1
    assert n >= 3


# ---------------------------------------------------------------- JPEG lossless


def _gdcm_decode(stream: bytes, arr: np.ndarray, precision: int) -> np.ndarray:
    peer("gdcm")  # pydicom's gdcm plugin needs python-gdcm
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEG_LOSSLESS_SV1
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 8 if precision <= 8 else 16
    ds.BitsStored = precision
    ds.HighBit = precision - 1
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out, _ = JPEGLosslessSV1Decoder.as_array(ds, decoding_plugin="gdcm")
    return out


def _jpeg_cases():
    rng = np.random.default_rng(7)
    yield "noise16", rng.integers(0, 65536, (37, 29)).astype(np.uint16), 16
    extreme = np.zeros((9, 11), np.uint16)
    extreme[:, 1::2] = 32768  # differences of +-32768: category 16, no extra bits
    extreme[1::2, ::3] = 65535
    yield "extreme16", extreme, 16
    yield "noise12", rng.integers(0, 4096, (20, 33)).astype(np.uint16), 12
    yield "const", np.full((16, 16), 1234, np.uint16), 12
    yield "one_pixel", np.array([[4095]], np.uint16), 12
    yield "row", rng.integers(0, 256, (1, 50)).astype(np.uint8), 8
    yield "column", rng.integers(0, 4, (40, 1)).astype(np.uint8), 2
    pts = synth.slice_points([-180, -180, 60.0], [1, 0, 0, 0, 1, 0], [2.8125, 2.8125], 128, 128)
    yield "phantom12", (synth.phantom_hu(pts).astype(np.int32) + 1024).astype(np.uint16), 12
    ff = np.zeros((8, 8), np.uint16)
    ff[::2, ::2] = 255  # many 0xFF bytes in the scan: byte stuffing
    yield "stuffing", ff, 8


@pytest.mark.parametrize("name,arr,precision", list(_jpeg_cases()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_jpeg_lossless_roundtrip_libjpeg_and_gdcm(name, arr, precision):
    import libjpeg

    stream = synth.encode_jpeg_lossless(arr, precision)
    assert stream[:4] == b"\xff\xd8\xff\xc3" and stream[-2:] == b"\xff\xd9"
    np.testing.assert_array_equal(libjpeg.decode(stream).reshape(arr.shape), arr)
    if precision >= 8:  # GDCM's DICOM layer aborts on Bits Stored < 8
        np.testing.assert_array_equal(_gdcm_decode(stream, arr, precision).reshape(arr.shape), arr)


def test_jpeg_lossless_rejects_bad_input():
    with pytest.raises(ValueError):
        synth.encode_jpeg_lossless(np.array([[4096]], np.uint16), 12)
    with pytest.raises(ValueError):
        synth.encode_jpeg_lossless(np.array([[-1]], np.int16), 16)
    with pytest.raises(ValueError):
        synth.encode_jpeg_lossless(np.zeros((2, 2, 2), np.uint16), 16)


def test_jpeg_lossless_series_decode_with_both_plugins(archive):
    peer("gdcm")  # pydicom's gdcm plugin needs python-gdcm
    root, manifest = archive
    for s in manifest["series"]:
        if s["codec"] != "jpeg-lossless":
            continue
        for rel in s["files"]:
            ds = pydicom.dcmread(root / rel)
            a, _ = JPEGLosslessSV1Decoder.as_array(ds, decoding_plugin="pylibjpeg")
            b, _ = JPEGLosslessSV1Decoder.as_array(ds, decoding_plugin="gdcm")
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- junk and names


def test_junk_files(archive):
    import libjpeg

    root, manifest = archive
    junk = {j["kind"]: j for j in manifest["junk"]}
    assert set(junk) == set(synth.JUNK_KINDS)
    data = {k: (root / j["path"]).read_bytes() for k, j in junk.items()}
    assert data["empty"] == b""
    assert data["text"].decode("utf-8").startswith("PocketPACS synthetic archive")
    assert data["jpeg"][:2] == b"\xff\xd8" and data["jpeg"][-2:] == b"\xff\xd9"
    assert libjpeg.decode(data["jpeg"]).shape[:2] == (32, 32)
    png = data["png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    idat = png.index(b"IDAT")
    length = int.from_bytes(png[idat - 4:idat], "big")
    assert len(zlib.decompress(png[idat + 4:idat + 4 + length])) == 32 * 33
    g = data["dicm_garbage"]
    assert g[:128] == b"\0" * 128 and g[128:132] == b"DICM" and len(g) > 200
    for kind in ("truncated_dicom", "truncated_pixels"):
        t = data[kind]
        assert t[128:132] == b"DICM"
        assert len(t) == junk[kind]["cut_at"] < junk[kind]["full_size"]
    # cut inside the header: pydicom cannot read it completely
    try:
        ds = pydicom.dcmread(root / junk["truncated_dicom"]["path"])
    except Exception:
        pass
    else:
        assert "PixelData" not in ds and "SeriesInstanceUID" not in ds
    # cut inside the pixel data: the header reads, the pixels do not
    ds = pydicom.dcmread(root / junk["truncated_pixels"]["path"], stop_before_pixels=True)
    assert ds.SOPInstanceUID == junk["truncated_pixels"]["sop_instance_uid"]
    assert ds.SeriesInstanceUID not in {s["series_instance_uid"] for s in manifest["series"]}
    # pydicom's message and type depend on its version and the pixel handler
    with pytest.raises(Exception):  # noqa: B017
        _ = pydicom.dcmread(root / junk["truncated_pixels"]["path"]).pixel_array


def test_file_names_carry_no_patient_data(archive):
    root, manifest = archive
    paths = [rel for _, _, rel in _dicom_entries(manifest)] + [j["path"] for j in manifest["junk"]]
    secrets = []
    for p in manifest["patients"]:
        secrets.append(p["patient_id"])
        secrets += [part for part in re.split(r"[\^=]", p["patient_name"]) if len(part) > 2]
    secrets += [st["accession_number"] for st in manifest["studies"]]
    name_re = re.compile(r"^[0-3][0-9a-f]/[0-9a-f]{2}/(IM_[0-9]{6,}|[0-9a-f]{16}(\.dcm)?)$")
    for rel in paths:
        assert name_re.match(rel), rel
        assert not any(x.lower() in rel.lower() for x in secrets), rel
    assert any(rel.endswith(".dcm") for rel in paths) and any(not rel.endswith(".dcm") for rel in paths)
    # the order of names does not follow the order of instances
    firsts = [s["files"] for s in manifest["series"] if len(s["files"]) > 1]
    assert any(f != sorted(f) for f in firsts)


# ---------------------------------------------------------------- command line


def test_cli_flat(tmp_path, capsys):
    out = tmp_path / "flat"
    rc = synth.main([str(out), "--patients", "1", "--series", "2", "--slices", "2", "--size", "8x8",
                     "--enhanced", "0", "--junk", "2", "--flat", "--seed", "5", "-q"])
    assert rc == 0
    assert "files/s" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    names = sorted(p.name for p in out.iterdir())
    assert all(p.is_file() for p in out.iterdir())
    assert len(names) == 1 + 2 * 2 + 2 == manifest["counts"]["files"] + 1
    assert manifest["options"]["nested"] is False and manifest["options"]["rows"] == 8
    with pytest.raises(SystemExit) as e:
        synth.main(["--help"])
    assert e.value.code == 0


def test_make_archive_script_help():
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_archive.py"), "--help"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert "--preset" in r.stdout and "--compressed-fraction" in r.stdout


def test_module_command_line_help():
    r = subprocess.run([sys.executable, "-m", "pocketpacs.synth", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "python -m pocketpacs.synth" in r.stdout and "--preset" in r.stdout


def test_bad_options_raise():
    with pytest.raises(ValueError):
        synth.count_files(compressed_fraction=1.5)
    with pytest.raises(ValueError):
        synth.count_files(patients=0)
