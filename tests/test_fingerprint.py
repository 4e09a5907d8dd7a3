"""The header fingerprint depends on the file only, never on how much of it was read.

The fingerprint (XXH64 of the header) tells an unchanged or moved file at a
rescan.  A file without pixel data whose last elements ran past the first
read was hashed over bytes never read (left over in the batch buffer), so
its fingerprint changed from run to run and with the read size: such files
looked changed at every rescan.  Now the header is read as far as the
fingerprint covers: up to the pixel data, the end of the file, or the first
top-level value longer than ``BIG_VALUE`` (an encapsulated document).
"""
from __future__ import annotations

import glob
import io
import os

import numpy as np
import pydicom
import xxhash
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

import dicomgen
from pocketpacs.dicom.headers import parse_files
from pocketpacs.native import dicomparse

DATA = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files")
HEAD_SIZES = (512, 4096, 1 << 18)


def _fingerprints(paths, head_size):
    b = parse_files(paths, head_size=head_size)
    assert all(r is None for r in b.reason), b.reason
    return [int(f) for f in b.fingerprint]


def test_files_without_pixel_data_hash_their_whole_content_whatever_the_read_size():
    paths = [os.path.join(DATA, "test-SR.dcm")] + sorted(glob.glob(os.path.join(DATA, "dicomdirtests", "DICOMDIR*")))
    want = [xxhash.xxh64_intdigest(open(p, "rb").read()) for p in paths]
    for hs in HEAD_SIZES:
        for _ in range(2):
            assert _fingerprints(paths, hs) == want, hs


def test_images_hash_the_header_before_the_pixel_data(tmp_path):
    p = dicomgen.write(tmp_path / "im.dcm", rows=64, cols=64)
    data = open(p, "rb").read()
    end = data.index(b"\xe0\x7f\x10\x00")                           # the Pixel Data tag
    for hs in HEAD_SIZES:
        assert _fingerprints([str(p)], hs) == [xxhash.xxh64_intdigest(data[:end])]


def test_a_big_value_ends_what_the_fingerprint_covers(tmp_path):
    """An encapsulated document of 3 MiB: the fingerprint covers the header up to
    its value, so the file is not read whole to be hashed, and it is the same
    for every read size."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"                # Encapsulated PDF Storage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.3"
    ds.Modality = "DOC"
    ds.PatientName = "Doc^Test"
    ds.PatientID = "DOC1"
    ds.EncapsulatedDocument = bytes(np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8))
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    data = bio.getvalue()
    p = tmp_path / "doc.dcm"
    p.write_bytes(data)
    tag = data.index(b"\x42\x00\x11\x00OB")                          # (0042,0011) OB
    covered = tag + 12                                               # its element header included
    assert len(data) - covered > dicomparse.BIG_VALUE
    for hs in HEAD_SIZES:
        assert _fingerprints([str(p)], hs) == [xxhash.xxh64_intdigest(data[:covered])], hs
    # a change inside the document is past what is hashed (the file's size and time tell it)
    p.write_bytes(data[:-10] + b"0123456789")
    assert _fingerprints([str(p)], 4096) == [xxhash.xxh64_intdigest(data[:covered])]


def test_a_moved_pixel_less_file_is_relinked(tmp_path):
    """A moved file is found again by its size and fingerprint: with a fingerprint
    over unread bytes the moved SR and DICOMDIR-like files were new files."""
    import shutil

    import pocketpacs

    folder = tmp_path / "data"
    (folder / "a").mkdir(parents=True)
    shutil.copy(os.path.join(DATA, "test-SR.dcm"), folder / "a" / "sr.dcm")
    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        assert ar.import_folder(folder).indexed == 1
        for i in range(3):
            (folder / f"b{i}").mkdir()
            src = folder / ("a" if i == 0 else f"b{i - 1}") / "sr.dcm"
            shutil.move(src, folder / f"b{i}" / "sr.dcm")
            rep = ar.import_folder(folder)
            assert (rep.relinked, rep.indexed, len(rep.conflicts)) == (1, 0, 0), i
