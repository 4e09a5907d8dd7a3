"""Mutation fuzzing of the native header parser (used by tests/test_parse_fuzz.py
and benchmarks/fuzz_parse.py).

Seeds are valid headers built here with pydicom (explicit/implicit VR LE,
big endian, no meta, nested undefined-length sequences, encapsulated pixel
data) plus, when present, files of the shared corpus.  Mutations follow the
malformed-input classes of shared/notes/reliability.md: truncation,
length poisoning, bad delimiters, deep nesting, VR confusion, byte flips and
splices.
"""
from __future__ import annotations

import io
import random
import struct
import time
from pathlib import Path

import numpy as np

POISON = (0, 1, 3, 0x7FFFFFFF, 0xFFFFFFF0, 0xFFFFFFFF, 0xFFFF, 0xFFFE, 0x10000, 0x80000000)


def _seed_datasets() -> list[bytes]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                             JPEG2000Lossless)

    def base():
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.SOPInstanceUID = "1.2.3.4.5.6.7"
        ds.StudyInstanceUID = "1.2.3.4.5"
        ds.SeriesInstanceUID = "1.2.3.4.5.6"
        ds.PatientName = "Müller^Jürgen"
        ds.PatientID = "ID-1"
        ds.Modality = "CT"
        ds.ImagePositionPatient = [-125.5, -130.25, 42.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.InstanceNumber = 7
        ds.Rows = 4
        ds.Columns = 4
        ds.BitsAllocated = 16
        ds.PixelRepresentation = 1
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        inner = Dataset()
        inner.CodeValue = "123"
        inner.CodeMeaning = "nested"
        deeper = Dataset()
        deeper.CodeValue = "9"
        inner.PurposeOfReferenceCodeSequence = Sequence([deeper])
        ds.ProcedureCodeSequence = Sequence([inner, inner])
        ds.PixelData = np.arange(16, dtype=np.int16).tobytes()
        return ds

    out = []
    for ts, undefined in ((ExplicitVRLittleEndian, True), (ImplicitVRLittleEndian, True),
                          (ExplicitVRBigEndian, False), (ExplicitVRLittleEndian, False)):
        ds = base()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ProcedureCodeSequence.is_undefined_length = undefined
        for item in ds.ProcedureCodeSequence:
            item.is_undefined_length_sequence_item = undefined
        bio = io.BytesIO()
        if ts == ExplicitVRBigEndian:
            ds.PixelData = np.arange(16, dtype=">i2").tobytes()
        ds.save_as(bio, enforce_file_format=True, little_endian=ts != ExplicitVRBigEndian,
                   implicit_vr=ts == ImplicitVRLittleEndian)
        out.append(bio.getvalue())
    # no meta, explicit VR LE
    ds = base()
    bio = io.BytesIO()
    ds.save_as(bio, implicit_vr=False, little_endian=True)
    out.append(bio.getvalue())
    # encapsulated pixel data
    ds = base()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(40), b"\xff\x4f" + bytes(20)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    out.append(bio.getvalue())
    return out


def seeds(corpus: Path | None = None, limit: int = 40) -> list[bytes]:
    """Valid headers to mutate: built-in ones plus up to ``limit`` corpus files."""
    out = _seed_datasets()
    if corpus is not None and corpus.is_dir():
        files = sorted(p for p in (corpus / "pydicom_test_files").rglob("*.dcm") if p.stat().st_size < 200_000)
        rng = random.Random(1)
        for p in rng.sample(files, min(limit, len(files))):
            out.append(p.read_bytes()[:65536])
    return out


def nested(depth: int, explicit: bool = True) -> bytes:
    """A file whose data set nests ``depth`` undefined-length sequences."""
    pre = bytes(128) + b"DICM"
    ts = b"1.2.840.10008.1.2.1\0"
    meta = struct.pack("<HH2sH", 2, 0x10, b"UI", len(ts)) + ts
    head = struct.pack("<HH2sH", 8, 0x18, b"UI", 6) + b"1.2.3\0"
    open_sq = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_sq = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return pre + meta + head + open_sq * depth + close_sq * depth


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random mutation of ``data`` from the malformed-input classes."""
    b = bytearray(data)
    n = len(b)
    op = rng.randrange(9)
    if n == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    if op == 0:  # truncation anywhere
        return bytes(b[:rng.randrange(n)])
    if op == 1:  # length poisoning: 32-bit
        p = rng.randrange(max(1, n - 4))
        b[p:p + 4] = struct.pack("<I", rng.choice(POISON))
    elif op == 2:  # length poisoning: 16-bit
        p = rng.randrange(max(1, n - 2))
        b[p:p + 2] = struct.pack("<H", rng.choice(POISON) & 0xFFFF)
    elif op == 3:  # delimiter damage
        for tag in (b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0", b"\xfe\xff\x00\xe0"):
            p = b.find(tag)
            if p >= 0 and rng.random() < 0.7:
                b[p + rng.randrange(4)] ^= 1 << rng.randrange(8)
                if rng.random() < 0.5 and p + 8 <= n:
                    b[p + 4:p + 8] = struct.pack("<I", rng.choice(POISON))
    elif op == 4:  # VR confusion
        for _ in range(rng.randrange(1, 4)):
            p = rng.randrange(max(1, n - 1))
            b[p:p + 2] = rng.choice([b"SQ", b"UN", b"OB", b"ob", b"US", b"UL", b"\x00\x01", b"ZZ", b"UT"])
    elif op == 5:  # byte flips
        for _ in range(rng.randrange(1, 16)):
            b[rng.randrange(n)] = rng.randrange(256)
    elif op == 6:  # splice with itself
        p = rng.randrange(n)
        q = rng.randrange(n)
        b = b[:p] + b[q:q + rng.randrange(1, 512)] + b[p:]
    elif op == 7:  # deep nesting
        return nested(rng.choice([63, 64, 65, 200, 1000, 20000]))
    else:  # zero a region
        p = rng.randrange(n)
        b[p:p + rng.randrange(1, 64)] = bytes(min(64, n - p))
    return bytes(b)


def run(count: int, seed: int = 0, corpus: Path | None = None, batch: int = 2000,
        fallback: bool = False) -> dict:
    """Parse ``count`` mutated headers; returns counts by status and reason."""
    from pocketpacs.dicom.headers import parse_bytes

    rng = random.Random(seed)
    base = seeds(corpus)
    counts: dict[str, int] = {"parsed": 0, "fallback": 0, "failed": 0}
    reasons: dict[str, int] = {}
    done = 0
    worst_batch = 0.0
    # load the kernels before timing: the serial one and the parallel one
    # (batches of 256 files or more)
    parse_bytes(base[:2], fallback=fallback)
    parse_bytes((base * (256 // len(base) + 1))[:256], fallback=fallback)
    while done < count:
        k = min(batch, count - done)
        blobs = []
        for _ in range(k):
            d = rng.choice(base)
            for _ in range(rng.randrange(1, 4)):
                d = mutate(d, rng)
            blobs.append(d)
        t = time.perf_counter()
        hb = parse_bytes(blobs, fallback=fallback)
        worst_batch = max(worst_batch, time.perf_counter() - t)
        st = hb.status
        counts["parsed"] += int((st == 0).sum())
        counts["fallback"] += int((st == 1).sum())
        counts["failed"] += int((st == -1).sum())
        for r in hb.reason:
            if r:
                reasons[r] = reasons.get(r, 0) + 1
        # every failure has a reason and a message
        for i in np.nonzero(st == -1)[0]:
            assert hb.reason[i] and hb.message[i]
        # values of parsed files are readable without errors
        hb.text("PatientName")
        hb.values("ImagePositionPatient")
        done += k
    # worst_batch_s bounds the time of any single input from above
    return {"count": count, **counts, "reasons": reasons, "worst_batch_s": worst_batch,
            "batch": batch}
