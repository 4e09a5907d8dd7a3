"""Unit tests of the header parser on hand-built files: encodings, lengths,
pixel data location, re-reads of long headers, fallbacks and failures."""
from __future__ import annotations

import io
import os

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian)

from pocketpacs.dicom.batch import FAILED, FALLBACK, NATIVE
from pocketpacs.dicom.headers import parse_bytes, parse_files
from pocketpacs.native.dicomvalues import gather_values
from pocketpacs.native.hashing import hash_bytes


def make(ts=ExplicitVRLittleEndian, private_bytes=0, pixels=True, name="Doe^John"):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.3.4.5.6.7"
    ds.SeriesInstanceUID = "1.2.3.4.5.6"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.PatientName = name
    ds.ImagePositionPatient = ["-12.5", "3", "1e2"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.WindowCenter = ["40", "400"]
    ds.Rows = 2
    ds.Columns = 3
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    ds.InstanceNumber = "12"
    if private_bytes:
        ds.add_new(0x00291010, "OB", bytes(private_bytes))
    if pixels:
        ds.PixelData = np.arange(6, dtype=np.uint16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    return bio.getvalue()


@pytest.mark.parametrize("ts", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_encodings_values_and_pixel_location(ts):
    data = make(ts)
    hb = parse_bytes([data])
    assert hb.status[0] == NATIVE
    rec = hb.record(0)
    assert rec["PatientName"] == "Doe^John"
    assert rec["SOPInstanceUID"] == "1.2.3.4.5.6.7"
    assert rec["Rows"] == 2 and rec["Columns"] == 3 and rec["InstanceNumber"] == 12
    np.testing.assert_array_equal(hb.values("ImagePositionPatient")[0], [-12.5, 3.0, 100.0])
    np.testing.assert_array_equal(hb.values("ImageOrientationPatient")[0], [1, 0, 0, 0, 0, -1])
    assert hb.number("WindowCenter")[0] == 40.0
    # pixel data: the recorded offset/length point at the pixel bytes
    off, ln = hb.pixel_offset[0], hb.pixel_length[0]
    assert ln == 12
    assert data[off:off + ln] == np.arange(6, dtype=np.uint16).tobytes()  # as written
    assert hb.little_endian[0] == (ts != ExplicitVRBigEndian)
    assert hb.explicit_vr[0] == (ts != ImplicitVRLittleEndian)
    # fingerprint = XXH64 of the bytes before the pixel data element
    assert int(hb.fingerprint[0]) == hash_bytes(data[:hb.header_end[0]])
    assert hb.uid_hash("SOPInstanceUID")[0] == np.uint64(hash_bytes(b"1.2.3.4.5.6.7"))


def test_long_header_is_reread(tmp_path):
    data = make(private_bytes=100_000)
    p = tmp_path / "long.dcm"
    p.write_bytes(data)
    hb = parse_files([p], head_size=1024)
    assert hb.status[0] == NATIVE
    assert hb.record(0)["SOPInstanceUID"] == "1.2.3.4.5.6.7"
    assert hb.pixel_length[0] == 12
    assert data[hb.pixel_offset[0]:hb.pixel_offset[0] + 12] == np.arange(6, dtype="<u2").tobytes()
    assert hb.size[0] == len(data)


def _long_header_file(path, value_bytes: int) -> None:
    """A real file with a private UN value of ``value_bytes`` zeros before the
    pixel data (written sparse: no disk used)."""
    import struct

    data = make()
    pix = data.rindex(b"\xe0\x7f\x10\x00")
    with open(path, "wb") as f:
        f.write(data[:pix] + struct.pack("<HH2sHI", 0x7FD1, 0x1010, b"UN", 0, value_bytes))
        f.seek(value_bytes, 1)
        f.write(data[pix:])


def test_header_bytes_capped_per_file_and_per_batch(tmp_path):
    """Issue 13 (finding 9, header size): twelve files with 30 MiB headers
    were held at once (360 MiB for one batch; more files, more memory) and a
    header over the per-file cap failed as 'malformed DICOM structure' after
    64 MiB were read.  Now a batch holds at most MAX_BATCH_HEADER_BYTES of
    re-read headers (the values of parsed ones are copied out), with values
    equal to a parse of each file alone, and a header over MAX_HEADER_BYTES
    fails ``unsupported`` saying so, without being read."""
    from pocketpacs.dicom import headers

    paths = []
    for i in range(12):
        paths.append(tmp_path / f"h{i}.dcm")
        _long_header_file(paths[-1], 30 << 20)
    huge = tmp_path / "huge.dcm"
    _long_header_file(huge, headers.MAX_HEADER_BYTES + (1 << 20))
    hb = parse_files(paths + [huge], head_size=4096)
    assert hb.status.tolist() == [NATIVE] * 12 + [FAILED]
    assert hb.reason[12] == "unsupported" and "header longer than 64 MiB" in hb.message[12]
    held = sum(b.nbytes for b in hb._bufs)
    assert held <= headers.MAX_BATCH_HEADER_BYTES + 13 * 4096, held >> 20
    one = parse_files([paths[0]])
    for kw in ("SOPInstanceUID", "PatientName", "WindowCenter"):
        assert hb.text(kw)[:12] == one.text(kw) * 12, kw
    np.testing.assert_array_equal(hb.values("ImagePositionPatient")[:12],
                                  np.repeat(one.values("ImagePositionPatient"), 12, axis=0))
    assert (hb.pixel_offset[:12] == one.pixel_offset[0]).all()
    assert hb.record(5) == one.record(0)


def test_deflate_goes_to_fallback_with_reason(tmp_path):
    ds = pydicom.dcmread(io.BytesIO(make()))
    p = tmp_path / "dfl.dcm"
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(p, enforce_file_format=True)
    hb = parse_files([p])
    assert hb.status[0] == FALLBACK
    assert hb.fallback_reason[0] == "deflated transfer syntax"
    assert hb.text("PatientName") == ["Doe^John"]
    assert hb.values("ImagePositionPatient")[0].tolist() == [-12.5, 3.0, 100.0]


def test_failures_have_reasons(tmp_path):
    good = make()
    files = {
        "empty": b"",
        "text": b"hello, this is not DICOM at all\n" * 20,
        "truncated_header": good[:300],
        "truncated_pixels": good[:-4],
        "preamble_only": bytes(128) + b"DICM",
    }
    paths = []
    for name, blob in files.items():
        p = tmp_path / name
        p.write_bytes(blob)
        paths.append(p)
    paths.append(tmp_path / "does-not-exist")
    os.mkfifo(tmp_path / "fifo")
    paths.append(tmp_path / "fifo")
    hb = parse_files(paths)
    got = dict(zip([os.path.basename(p) for p in hb.paths], hb.reason))
    assert got == {"empty": "empty", "text": "not_dicom", "truncated_header": "truncated",
                   "truncated_pixels": "truncated", "preamble_only": "not_dicom",
                   "does-not-exist": "vanished", "fifo": "unsupported"}
    for i in range(hb.n):
        assert hb.status[i] == FAILED
        assert hb.message[i].startswith(str(hb.paths[i]))


def test_no_patient_data_in_messages(tmp_path):
    data = make(name="Secret^Person")
    p = tmp_path / "x.dcm"
    p.write_bytes(data[:-4])
    hb = parse_files([p])
    assert hb.status[0] == FAILED and "Secret" not in hb.message[0]


def test_undefined_length_sequences_are_skipped():
    ds = pydicom.dcmread(io.BytesIO(make()))
    inner = Dataset()
    inner.CodeValue = "1"
    item = Dataset()
    item.ConceptNameCodeSequence = [inner]
    ds.ContentSequence = [item, item]
    ds.ContentSequence.is_undefined_length = True
    for it in ds.ContentSequence:
        it.is_undefined_length_sequence_item = True
        it.ConceptNameCodeSequence.is_undefined_length = True
    ds.PatientID = "before-the-sequence"
    ds.RescaleSlope = "2"  # (0028,1053) comes after (0008,1032)-style sequences
    ds.ProcedureCodeSequence = [item]  # (0008,1032), undefined length, before the Rescale tags
    ds.ProcedureCodeSequence.is_undefined_length = True
    ds.ProcedureCodeSequence[0].is_undefined_length_sequence_item = True
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    hb = parse_bytes([bio.getvalue()])
    assert hb.status[0] == NATIVE
    assert hb.record(0)["PatientID"] == "before-the-sequence"
    assert hb.record(0)["RescaleSlope"] == 2.0
    assert hb.pixel_length[0] == 12


def test_gather_kernel_matches_python():
    blobs = [b"abc  ", b"  x\\y ", "é".encode("utf-8"), b"\x1b$B", b"", b"z" * 50]
    buf = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    lens = np.array([len(b) for b in blobs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    out = np.zeros((len(blobs), 8), dtype=np.uint8)
    flags = np.zeros(len(blobs), dtype=np.uint8)
    gather_values(buf, starts, np.zeros(len(blobs), np.int64), lens, np.arange(len(blobs)),
                  True, out, flags)
    got = [bytes(r).rstrip(b"\0") for r in out]
    want = [b.rstrip(b" \0").lstrip(b" ")[:8] for b in blobs]
    assert got == want
    assert flags.tolist() == [0, 2, 1, 4, 0, 8]


def test_ds_values_outside_fast_path_match_python():
    ds = pydicom.dcmread(io.BytesIO(make()))
    ds.SliceThickness = "9999999999999999"  # over 2**53: converted by Python
    ds.RescaleSlope = "1e-30"
    ds.RescaleIntercept = "-1024.0"
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    hb = parse_bytes([bio.getvalue()])
    assert hb.number("SliceThickness")[0] == float("9999999999999999")
    assert hb.number("RescaleSlope")[0] == 1e-30
    assert hb.number("RescaleIntercept")[0] == -1024.0


def test_big_batch_parallel_equals_serial():
    blobs = [make(name=f"P{i}^X") for i in range(300)]
    a = parse_bytes(blobs)
    b = parse_bytes(blobs[:10])
    assert a.text("PatientName")[:10] == b.text("PatientName")
    assert a.text("PatientName")[299] == "P299^X"
    assert (a.fingerprint[:10] == b.fingerprint).all()
