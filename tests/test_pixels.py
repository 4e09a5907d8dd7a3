"""Pixel reading: native kernels vs reference, every pydicom test file vs pydicom,
corpus per-file references, decoder crash isolation."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

from pocketpacs.native import assemble as K
from pocketpacs.native import reference as R
from pocketpacs.pixels import DecoderPool, PixelFormat, decode_file

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def pool():
    p = DecoderPool(2)
    yield p
    p.close()


# ---------------------------------------------------------------- kernels
@pytest.mark.parametrize("nbytes", [1, 2, 4])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("bits_frac", [1.0, 0.75])
def test_gather_frames_matches_reference(nbytes, signed, swap, bits_frac):
    rng = np.random.default_rng(nbytes * 7 + signed + 2 * swap)
    nfr, npix = 5, 37
    fb = npix * nbytes
    buf = rng.integers(0, 256, size=nfr * fb + 3, dtype=np.uint8)
    starts = (np.arange(nfr) * fb + 3).astype(np.int64)  # misaligned on purpose
    dst = np.array([4, 0, 3, 1, 2], dtype=np.int64)
    bits = max(1, int(8 * nbytes * bits_frac))
    sl = rng.uniform(0.5, 2, nfr)
    ic = rng.uniform(-100, 100, nfr)
    for rescale, dt in ((False, np.int64), (True, np.float64)):
        a = np.zeros((nfr, npix), dt)
        b = np.zeros((nfr, npix), dt)
        K.gather_frames(buf, starts, dst, a, nbytes, signed, swap, bits, 1, 0, sl, ic, rescale)
        R.gather_frames(buf, starts, dst, b, nbytes, signed, swap, bits, 1, 0, sl, ic, rescale)
        np.testing.assert_array_equal(a, b)


def test_gather_planar_rgb():
    rng = np.random.default_rng(3)
    npix = 20
    buf = rng.integers(0, 256, size=2 * npix * 3, dtype=np.uint8)
    starts = np.array([0, npix * 3], dtype=np.int64)
    dst = np.array([0, 1], dtype=np.int64)
    a = np.zeros((2, npix * 3), np.uint8)
    b = np.zeros((2, npix * 3), np.uint8)
    one, zero = np.ones(2), np.zeros(2)
    K.gather_frames(buf, starts, dst, a, 1, False, False, 8, 3, 1, one, zero, False)
    R.gather_frames(buf, starts, dst, b, 1, False, False, 8, 3, 1, one, zero, False)
    np.testing.assert_array_equal(a, b)
    # planar: first plane is R of every pixel
    assert a[0, 0::3].tolist() == buf[:npix].tolist()


@pytest.mark.parametrize("src_dt,out_dt,bits,signed", [
    (np.uint16, np.int16, 12, False), (np.int16, np.int16, 12, True),
    (np.uint16, np.uint16, 16, False), (np.int32, np.float32, 20, True),
    (np.uint8, np.uint8, 7, False)])
def test_convert_inplace_matches_reference(src_dt, out_dt, bits, signed):
    rng = np.random.default_rng(4)
    raw = rng.integers(0, 256, size=(3, 64 * np.dtype(src_dt).itemsize), dtype=np.uint8)
    sl = np.array([1.0, 2.0, 1.0])
    ic = np.array([-1024.0, 0.0, 5.0])
    rescale = np.dtype(out_dt).kind == "f" or out_dt != src_dt
    if np.dtype(out_dt).itemsize != np.dtype(src_dt).itemsize:
        ref_src = raw.copy().view(src_dt)
        out_a = np.zeros(ref_src.shape, out_dt)
        K.convert_inplace(ref_src, out_a, bits, signed, sl, ic, rescale, True)
    else:
        mem = raw.copy()
        K.convert_inplace(mem.view(src_dt), mem.view(out_dt), bits, signed, sl, ic, rescale, True)
        out_a = mem.view(out_dt)
    mem2 = raw.copy()
    out_b = np.zeros(mem2.view(src_dt).shape, out_dt)
    R.convert_inplace(mem2.view(src_dt), out_b, bits, signed, sl, ic, rescale, True)
    np.testing.assert_array_equal(out_a, out_b)


# ---------------------------------------------------------------- real files
def _pydicom_files():
    root = CORPUS / "pydicom_test_files"
    if not root.exists():
        return []
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


@pytest.mark.corpus
def test_every_pydicom_test_file_decodes_like_pydicom(pool):
    import pydicom

    files = _pydicom_files()
    if not files:
        pytest.skip("../shared/corpus is not present")
    same = 0
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(f, force=True)
                if "PixelData" not in ds:
                    continue
                ref = ds.pixel_array
            except Exception:
                continue  # pydicom cannot decode it either
        arr, errs = decode_file(f, pool=pool)
        assert not errs, (f, errs)
        assert arr.shape == ref.shape, f
        assert arr.dtype.kind == ref.dtype.kind and arr.dtype.itemsize == ref.dtype.itemsize, f
        np.testing.assert_array_equal(arr, ref, err_msg=f)
        same += 1
    assert same >= 80  # 89 decodable files in pydicom 3.0.2's set


@pytest.mark.corpus
def test_corpus_file_pixels_references(pool):
    man = CORPUS / "MANIFEST.shared.json"
    if not man.exists():
        pytest.skip("../shared/corpus is not present")
    m = json.loads(man.read_text())
    checked = 0
    for st in m["sets"]:
        for s in st["series"]:
            for rel, ref in (s.get("file_pixels") or {}).items():
                if ref.get("fallback_decoder") or not ref.get("raw_sha256"):
                    continue
                path = CORPUS / st["path"] / rel
                if not path.exists():
                    continue
                arr, errs = decode_file(str(path), pool=pool)
                assert not errs, (rel, errs)
                assert list(arr.shape) == ref["decoded_shape"], rel
                a = np.ascontiguousarray(arr).astype(np.dtype(ref["dtype"]).newbyteorder("<"))
                assert hashlib.sha256(a.tobytes()).hexdigest() == ref["raw_sha256"], rel
                checked += 1
    assert checked >= 30


# ---------------------------------------------------------------- crash isolation
def crashing_decoder(path, indices):
    """Decoder that really kills its process on some inputs (fault injection)."""
    if path.endswith("crash") or (indices is not None and 1 in indices):
        os.kill(os.getpid(), signal.SIGABRT)
    n = 1 if indices is None else len(indices)
    return [np.full((2, 2), len(path) + i, np.int16) for i in range(n)]


def test_decoder_crash_is_isolated(pool):
    got = {}

    def on_result(ti, idx, arrays):
        got[(ti, tuple(idx) if idx else None)] = arrays

    tasks = [("a/good", None), ("b/crash", None), ("c/multi", [0, 1, 2]), ("d/good2", None)]
    errs = pool.run(tasks, on_result, decode_fn=crashing_decoder)
    assert {(e.path, e.frame, e.crashed) for e in errs} == {("b/crash", -1, True),
                                                             ("c/multi", 1, True)}
    assert (0, None) in got and (3, None) in got
    assert (2, (0,)) in got and (2, (2,)) in got and (2, (1,)) not in got
    assert pool.crashes >= 2
    # the pool still works afterwards
    errs2 = pool.run([("e/good", None)], on_result, decode_fn=crashing_decoder)
    assert errs2 == [] and (0, None) in got


def test_decoder_python_error_is_reported(pool, tmp_path):
    p = tmp_path / "garbage.dcm"
    p.write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 50)
    fmt = PixelFormat(rows=4, cols=4, transfer_syntax="1.2.840.10008.1.2.4.90",
                      encapsulated=True)
    arr, errs = decode_file(str(p), fmt, pool=pool)
    assert len(errs) == 1 and not errs[0].crashed and errs[0].path == str(p)
    assert arr.shape == (4, 4) and not arr.any()
