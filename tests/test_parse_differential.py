"""Differential test: every value the native parser extracts equals pydicom's.

Runs over pydicom's bundled test files, nibabel's test data, the shared
real-data corpus (when present) and a synthetic archive.  A file either
matches pydicom on every tag of the archive's tag set, or was routed to the
pydicom fallback with a stated reason, or failed with a reason for which
pydicom itself cannot produce a usable header.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from pocketpacs import synth
from pocketpacs.dicom import tags
from pocketpacs.dicom.batch import FAILED, FALLBACK
from pocketpacs.dicom.headers import parse_files


def _norm(value):
    from pydicom.multival import MultiValue
    from pydicom.valuerep import DSfloat, IS, PersonName

    if isinstance(value, (MultiValue, list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, DSfloat):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def pydicom_reference(path: str) -> dict | None:
    """Header values as pydicom reads them, normalised like HeaderBatch.record."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            force = data[128:132] != b"DICM"
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=force)
            out = {}
            for spec in tags.TAGS:
                src = ds.file_meta if spec.level == "meta" else ds
                if src is None or spec.tag not in src:
                    continue
                v = src[spec.tag].value
                if v is None and src[spec.tag].VR not in ("US", "SS", "UL", "SL", "FL", "FD"):
                    v = ""
                v = _norm(v)
                if spec.nvals and isinstance(v, list):
                    v = v[: spec.nvals]
                    if spec.nvals == 1:
                        v = v[0] if v else ""
                out[spec.keyword] = v
            return out
        except Exception:
            return None


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return float(a) == float(b) or (np.isnan(float(a)) and np.isnan(float(b)))
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def compare(paths: list[str]) -> dict:
    """Parse ``paths`` and compare with pydicom; returns counts and mismatches."""
    batch = parse_files(paths)
    stats = {"files": len(paths), "native": 0, "fallback": 0, "failed": 0, "fields": 0,
             "mismatches": [], "failed_but_pydicom_ok": [], "fallback_reasons": {}}
    for i, p in enumerate(paths):
        ref = pydicom_reference(p)
        st = batch.status[i]
        if st == FAILED:
            stats["failed"] += 1
            # pydicom may read a truncated file's header; we refuse it with a reason
            if ref and ref.get("SOPInstanceUID") and batch.reason[i] not in ("truncated", "malformed"):
                stats["failed_but_pydicom_ok"].append((p, batch.reason[i]))
            continue
        if st == FALLBACK:
            stats["fallback"] += 1
            r = batch.fallback_reason[i]
            stats["fallback_reasons"][r] = stats["fallback_reasons"].get(r, 0) + 1
            assert r, f"{p}: fallback without a reason"
        else:
            stats["native"] += 1
        ours = batch.record(i)
        if ref is None:
            stats["mismatches"].append((p, "*", "pydicom failed", ours.get("SOPInstanceUID")))
            continue
        for kw in set(ref) | set(ours):
            stats["fields"] += 1
            if not _same(ours.get(kw), ref.get(kw)):
                stats["mismatches"].append((p, kw, ours.get(kw), ref.get(kw)))
    # columns agree with records
    for kw in ("PatientName", "SOPInstanceUID", "Modality", "ImageType", "SeriesDescription",
               "StudyDate", "SpecificCharacterSet", "PatientID"):
        col = batch.text(kw)
        for i in range(batch.n):
            if batch.status[i] != FAILED:
                v = batch.record(i).get(kw)
                v = "\\".join(map(str, v)) if isinstance(v, list) else v
                assert col[i] == v
    return stats


def _assert_clean(stats: dict) -> None:
    print(f"\n{stats['files']} files: {stats['native']} native, {stats['fallback']} fallback "
          f"{stats['fallback_reasons']}, {stats['failed']} failed; {stats['fields']} fields compared")
    assert not stats["mismatches"], stats["mismatches"][:20]
    assert not stats["failed_but_pydicom_ok"], stats["failed_but_pydicom_ok"][:20]


def _dicom_like_files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.lower().endswith((".txt", ".md", ".json", ".py", ".nii", ".png", ".jpg", ".j2k",
                                   ".jp2", ".jph", ".raw", ".mgz", ".mgh", ".img", ".hdr",
                                   ".npy", ".bz2", ".zip", ".csv", ".gif", ".tif", ".bmp",
                                   ".pdf", ".xml", ".sha256", ".niml.dset")):
                continue
            out.append(os.path.join(dirpath, f))
    return sorted(out)


def test_pydicom_bundled_files():
    from pydicom_data import TEST_FILES as root

    # the files shipped in the wheel (get_testdata_files would try to download more)
    paths = _dicom_like_files(root)
    assert len(paths) > 20
    _assert_clean(compare(paths))


def test_nibabel_bundled_files():
    import nibabel

    root = Path(nibabel.__file__).parent
    paths = [p for p in _dicom_like_files(root) if "/tests/data" in p or "/nicom/" in p]
    paths = [p for p in paths if not p.endswith((".pyc", ".gz")) or p.endswith(".dcm.gz")]
    if not paths:
        pytest.skip("this nibabel install ships no DICOM test data")
    _assert_clean(compare(paths))


def test_corpus_headers_jsonl(corpus):
    """The values in HEADERS.jsonl (pydicom 3.0.2, same normalisation)."""
    recs = [json.loads(line) for line in open(corpus / "HEADERS.jsonl")]
    paths = [str(corpus / r["path"]) for r in recs]
    batch = parse_files(paths)
    fields = 0
    bad = []
    for i, r in enumerate(recs):
        if batch.status[i] == FAILED:
            assert batch.reason[i] in ("truncated",), (r["path"], batch.message[i])
            continue
        rec = batch.record(i)
        for kw in tags.KEYWORDS:
            if kw in r:
                fields += 1
                if not _same(rec.get(kw), r[kw]):
                    bad.append((r["path"], kw, rec.get(kw), r[kw]))
    print(f"\nHEADERS.jsonl: {len(recs)} files, {fields} fields compared, "
          f"{batch.n_native} native, {batch.n_fallback} fallback, {batch.n_failed} failed")
    assert not bad, bad[:20]
    assert batch.n_native > 0.9 * len(recs)


def test_corpus_all_tags(corpus):
    paths = [p for p in _dicom_like_files(corpus) if "/pylibjpeg_data/" not in p or p.endswith(".dcm")]
    _assert_clean(compare(paths))


def test_synthetic_archive(tmp_path):
    synth.generate(tmp_path, patients=2, studies=1, series=3, slices=4, rows=16, cols=16, seed=3)
    paths = [str(p) for p in tmp_path.rglob("*") if p.is_file() and p.name != "manifest.json"]
    stats = compare(paths)
    _assert_clean(stats)
    assert stats["native"] > 0


def test_pydicom_charset_files():
    """Specific Character Set decoding (ISO 8859-x, UTF-8, ISO 2022 JIS/KS X, GB18030...)."""
    from pydicom_data import bundled_files

    paths = bundled_files("*.dcm", folder="charset_files")
    assert len(paths) >= 15
    stats = compare(paths)
    _assert_clean(stats)
    batch = parse_files(paths)
    names = dict(zip([Path(p).name for p in paths], batch.text("PatientName")))
    assert names["chrGerm.dcm"] == "Äneas^Rüdiger"
    assert names["chrJapMulti.dcm"].startswith("やまだ^たろう") or "山田" in names["chrJapMulti.dcm"]
    assert names["chrRuss.dcm"] == "Люкceмбypг"
