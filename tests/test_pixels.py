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

from conftest import peer
from pocketpacs.native import assemble
from pocketpacs.native import reference
from pocketpacs.images.decoders import DecoderPool
from pocketpacs.images.frames import _READERS, _platform_reader, decode_file, read_frames
from pocketpacs.images.pixelformat import PixelFormat


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
        assemble.gather_frames(buf, starts, dst, a, nbytes, signed, swap, bits, 1, 0, sl, ic, rescale)
        reference.gather_frames(buf, starts, dst, b, nbytes, signed, swap, bits, 1, 0, sl, ic, rescale)
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
    assemble.gather_frames(buf, starts, dst, a, 1, False, False, 8, 3, 1, one, zero, False)
    reference.gather_frames(buf, starts, dst, b, 1, False, False, 8, 3, 1, one, zero, False)
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
        assemble.convert_inplace(ref_src, out_a, bits, signed, sl, ic, rescale, True)
    else:
        mem = raw.copy()
        assemble.convert_inplace(mem.view(src_dt), mem.view(out_dt), bits, signed, sl, ic, rescale, True)
        out_a = mem.view(out_dt)
    mem2 = raw.copy()
    out_b = np.zeros(mem2.view(src_dt).shape, out_dt)
    reference.convert_inplace(mem2.view(src_dt), out_b, bits, signed, sl, ic, rescale, True)
    np.testing.assert_array_equal(out_a, out_b)


_RESCALES = {"none": (False, False), "int": (True, True), "float": (True, False)}


def _skip_unless_fits(lo, hi, out_dt, rescale):
    """Float values outside an integer output's range have no defined cast."""
    if np.dtype(out_dt).kind == "f" or rescale != "float":
        return
    info = np.iinfo(out_dt)
    if lo.min() < info.min or hi.max() > info.max:
        pytest.skip("values outside the integer output's range")


def _chunk_args(rng, k, nrows):
    dst = rng.permutation(nrows)[:k].astype(np.int64)
    sl = rng.choice([1.0, 2.0, 0.5], size=k)
    ic = rng.choice([-1024.0, 0.0, 7.25], size=k)
    return dst, sl, ic


@pytest.mark.parametrize("src_dt,out_dt,bits,signed", [
    (np.uint16, np.int16, 12, False), (np.int16, np.int16, 12, True),
    (np.uint16, np.float32, 16, False), (np.int32, np.float32, 20, True),
    (np.uint8, np.int16, 7, False), (np.int8, np.int32, 5, True), (np.uint32, np.int32, 32, False),
    (np.int16, np.int32, 16, True), (np.int16, np.uint16, 11, True)])
@pytest.mark.parametrize("rescale", list(_RESCALES))
def test_convert_rows_matches_reference(src_dt, out_dt, bits, signed, rescale):
    rng = np.random.default_rng(bits * 3 + signed)
    k, nrows, nvals = 4, 6, 97
    raw = rng.integers(0, 256, size=(k, nvals * np.dtype(src_dt).itemsize), dtype=np.uint8)
    src = raw.view(src_dt)
    dst, sl, ic = _chunk_args(rng, k, nrows)
    do, int_rescale = _RESCALES[rescale]
    if int_rescale:
        sl, ic = np.round(sl + 0.5), np.round(ic)
    fix_bits = bits < 8 * np.dtype(src_dt).itemsize
    a, b = np.zeros((nrows, nvals), out_dt), np.zeros((nrows, nvals), out_dt)
    lo_a, hi_a, lo_b, hi_b = (np.full(k, np.nan) for _ in range(4))
    with np.errstate(invalid="ignore"):
        reference.convert_rows(src, b, dst, bits, signed, fix_bits, sl, ic, do, int_rescale, lo_b, hi_b)
    _skip_unless_fits(lo_b, hi_b, out_dt, rescale)
    assemble.convert_rows(src, a, dst, bits, signed, fix_bits, sl, ic, do, int_rescale, lo_a, hi_a)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lo_a, lo_b)
    np.testing.assert_array_equal(hi_a, hi_b)


@pytest.mark.parametrize("dt,bits,signed", [(np.int16, 12, True), (np.uint16, 12, False),
                                            (np.int16, 16, True), (np.uint8, 6, False),
                                            (np.int32, 24, True), (np.uint32, 32, False)])
@pytest.mark.parametrize("rescale", list(_RESCALES))
def test_convert_rows_inplace_matches_reference(dt, bits, signed, rescale):
    rng = np.random.default_rng(bits + 11 * signed)
    k, nrows, nvals = 3, 5, 64
    raw = rng.integers(0, 256, size=(nrows, nvals * np.dtype(dt).itemsize), dtype=np.uint8)
    dst, sl, ic = _chunk_args(rng, k, nrows)
    do, int_rescale = _RESCALES[rescale]
    if int_rescale:
        sl, ic = np.round(sl + 0.5), np.round(ic)
    fix_bits = bits < 8 * np.dtype(dt).itemsize
    a, b = raw.copy().view(dt), raw.copy().view(dt)
    lo_a, hi_a, lo_b, hi_b = (np.full(k, np.nan) for _ in range(4))
    with np.errstate(invalid="ignore"):
        reference.convert_rows_inplace(b, dst, bits, signed, fix_bits, sl, ic, do, int_rescale, lo_b,
                               hi_b)
    _skip_unless_fits(lo_b, hi_b, dt, rescale)
    assemble.convert_rows_inplace(a, dst, bits, signed, fix_bits, sl, ic, do, int_rescale, lo_a, hi_a)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lo_a, lo_b)
    np.testing.assert_array_equal(hi_a, hi_b)
    untouched = np.setdiff1d(np.arange(nrows), dst)
    np.testing.assert_array_equal(a[untouched], raw.view(dt)[untouched])


@pytest.mark.parametrize("nbytes,swap,signed,bits,samples,planar,out_dt,rescale", [
    (2, True, True, 12, 1, 0, np.int16, "int"), (2, True, False, 16, 1, 0, np.uint16, "none"),
    (4, True, True, 20, 1, 0, np.float32, "float"), (1, False, False, 8, 3, 1, np.uint8, "none"),
    (2, False, False, 10, 3, 1, np.float32, "float"), (2, True, False, 16, 3, 0, np.int32, "int"),
    (1, False, True, 6, 1, 0, np.int16, "float")])
def test_convert_rows_bytes_matches_reference(nbytes, swap, signed, bits, samples, planar,
                                              out_dt, rescale):
    rng = np.random.default_rng(nbytes + 5 * samples + bits)
    k, nrows, npix = 3, 4, 29
    nvals = npix * samples
    buf = rng.integers(0, 256, size=(k, nvals * nbytes + 5), dtype=np.uint8)  # spare bytes
    dst, sl, ic = _chunk_args(rng, k, nrows)
    do = _RESCALES[rescale][0]
    a, b = np.zeros((nrows, nvals), out_dt), np.zeros((nrows, nvals), out_dt)
    lo_a, hi_a, lo_b, hi_b = (np.full(k, np.nan) for _ in range(4))
    assemble.convert_rows_bytes(buf, a, dst, nbytes, swap, bits, signed, samples, planar, sl, ic, do,
                         lo_a, hi_a)
    reference.convert_rows_bytes(buf, b, dst, nbytes, swap, bits, signed, samples, planar, sl, ic, do,
                         lo_b, hi_b)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(lo_a, lo_b)
    np.testing.assert_array_equal(hi_a, hi_b)


# ---------------------------------------------------------------- native route (file I/O)
def _readers():
    have = {"preadv": hasattr(os, "preadv"), "readinto": True}
    return [r for r in _READERS if have[r]]


@pytest.mark.parametrize("kernels", ["compiled", "reference"])
@pytest.mark.parametrize("reader", _readers())
@pytest.mark.parametrize("case", ["int16 in place", "float32 scratch", "big endian",
                                  "planar rgb"])
def test_read_frames_native_route(tmp_path, monkeypatch, reader, case, kernels):
    """Chunks on two threads, multi-frame files, shuffled rows, a missing and a
    truncated file; each platform reader; the compiled kernels and their NumPy
    references (``reference_kernels``); against values computed with NumPy."""
    monkeypatch.setattr("pocketpacs.images.frames._READER", reader)
    # one frame per chunk: many chunks, 2 threads
    monkeypatch.setattr("pocketpacs.images.frames.CHUNK_BYTES", 1)
    rng = np.random.default_rng(len(case))
    rows, cols = 5, 7
    big = case == "big endian"
    samples, planar = (3, 1) if case == "planar rgb" else (1, 0)
    ts = "1.2.840.10008.1.2.2" if big else "1.2.840.10008.1.2.1"
    bits_alloc, bits, signed = (8, 8, False) if samples == 3 else (16, 12, True)
    sdt = np.dtype(np.uint8) if samples == 3 else np.dtype(">i2" if big else "<i2")
    nframes = [3, 1, 2, 1, 4]
    paths, formats, frames = [], [], []
    for i, nf in enumerate(nframes):
        vals = rng.integers(0, 1 << bits, size=(nf, samples, rows * cols))
        stored = vals + rng.integers(0, 2, size=vals.shape) * (1 << bits) if bits < 8 * sdt.itemsize else vals
        if samples == 1 or planar == 1:
            data = stored.astype(sdt).tobytes()
        else:
            data = stored.transpose(0, 2, 1).astype(sdt).tobytes()
        off = 100 + 3 * i  # odd offsets
        p = tmp_path / f"f{i}.dcm"
        p.write_bytes(b"x" * off + data)
        paths.append(str(p))
        formats.append(PixelFormat(rows=rows, cols=cols, samples=samples,
                                   bits_allocated=bits_alloc, bits_stored=bits, signed=signed,
                                   photometric="RGB" if samples == 3 else "MONOCHROME2",
                                   planar=planar, nframes=nf, transfer_syntax=ts, offset=off,
                                   length=len(data)))
        if signed:
            vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
        frames.append(vals.transpose(0, 2, 1).reshape(nf, rows, cols, samples))
    # a file that is gone, one that is truncated inside its second frame
    paths.append(str(tmp_path / "gone.dcm"))
    formats.append(formats[1])
    trunc = tmp_path / "short.dcm"
    trunc.write_bytes(open(paths[0], "rb").read()[:formats[0].offset + formats[0].frame_bytes + 5])
    paths.append(str(trunc))
    formats.append(formats[0])
    refs = [(fi, fr) for fi, nf in enumerate(nframes) for fr in range(nf)]
    refs += [(5, 0), (6, 0), (6, 1)]
    order = rng.permutation(len(refs))
    refs = np.array([refs[i] for i in order], dtype=np.int64)
    m = len(refs)
    sl, ic = rng.choice([1.0, 2.0], m), rng.choice([-1024.0, 3.0], m)
    if case == "float32 scratch":
        sl = sl * 0.5
    out_dt = {"int16 in place": np.int16, "float32 scratch": np.float32,
              "big endian": np.int32, "planar rgb": np.uint8}[case]
    shape = (m, rows, cols) + ((samples,) if samples > 1 else ())
    out = np.full(shape, 99, out_dt)
    ranges: list = []
    rescale = samples == 1
    errs = read_frames(paths, formats, refs, out, sl if rescale else None,
                       ic if rescale else None, ranges=ranges,
                       reference_kernels=kernels == "reference")
    want = np.zeros(shape, np.float64)
    for row, (fi, fr) in enumerate(refs.tolist()):
        if fi < 5:
            v = frames[fi][fr].astype(np.float64).reshape(shape[1:])
            want[row] = v * sl[row] + ic[row] if rescale else v
        elif fi == 6 and fr == 0:
            v = frames[0][0].astype(np.float64).reshape(shape[1:])
            want[row] = v * sl[row] + ic[row] if rescale else v
    np.testing.assert_array_equal(out, want.astype(out_dt))
    assert sorted((Path(e.path).name, e.frame) for e in errs) == [("gone.dcm", 0),
                                                                   ("short.dcm", 1)]
    assert {e.reason for e in errs if e.path.endswith("short.dcm")} == {"pixel data truncated"}
    assert ranges and ranges[0] == (min(want.min(), 0.0), max(want.max(), 0.0))


def test_read_frames_into_a_non_contiguous_array(tmp_path):
    vals = np.arange(2 * 4 * 6, dtype="<u2").reshape(2, 4, 6)
    p = tmp_path / "a.dcm"
    p.write_bytes(b"\0" * 10 + vals.tobytes())
    fmt = PixelFormat(rows=4, cols=6, nframes=2, offset=10, length=vals.nbytes)
    big = np.zeros((2, 4, 12), np.uint16)
    read_frames([str(p)], [fmt], np.array([[0, 1], [0, 0]]), big[:, :, ::2])
    np.testing.assert_array_equal(big[:, :, ::2], vals[::-1])
    assert not big[:, :, 1::2].any()


def test_reader_without_preadv_seeks_and_reads_into(tmp_path, monkeypatch):
    """Where ``os`` has no ``preadv`` (Windows) the native route reads with seek +
    ``FileIO.readinto``: chosen for such a platform, reading whole frames at odd
    offsets, short at the end of a file, and through :func:`read_frames`."""
    assert _platform_reader() == ("preadv" if hasattr(os, "preadv") else "readinto")
    monkeypatch.delattr(os, "preadv", raising=False)
    assert _platform_reader() == "readinto"
    assert set(_READERS) == {"preadv", "readinto"}
    opener, read_at, closer = _READERS["readinto"]
    vals = np.arange(3 * 4 * 6, dtype="<i2").reshape(3, 4, 6) - 30
    p = tmp_path / "a.dcm"
    p.write_bytes(b"\1" * 13 + vals.tobytes())
    buf = np.zeros(4 * 6, "<i2")
    h = opener(str(p))
    try:
        assert read_at(h, memoryview(buf).cast("B"), 13 + 2 * vals[0].nbytes) == vals[0].nbytes
        np.testing.assert_array_equal(buf.reshape(4, 6), vals[2])
        assert read_at(h, memoryview(buf).cast("B"), 13 + 2 * vals[0].nbytes + 10) == \
            vals[0].nbytes - 10  # the file ends inside the frame
    finally:
        closer(h)
    monkeypatch.setattr("pocketpacs.images.frames._READER", _platform_reader())
    fmt = PixelFormat(rows=4, cols=6, nframes=3, signed=True, offset=13, length=vals.nbytes)
    out = np.zeros((3, 4, 6), np.int16)
    errs = read_frames([str(p)], [fmt], np.array([[0, 2], [0, 0], [0, 1]]), out)
    assert errs == []
    np.testing.assert_array_equal(out, vals[[2, 0, 1]])


# ---------------------------------------------------------------- real files
#: Lossy syntaxes: a decode is compared with other decoders' within a stated
#: tolerance, (max abs diff, mean abs diff) in stored-value units, never by hash --
#: the standards leave the last bits of a lossy decode to the implementation.
#: JPEG baseline / extended: IDCT and YCbCr->RGB rounding differ between
#: libjpeg builds (GDCM, Pillow and pylibjpeg-libjpeg differ by up to 3 grey
#: levels on pydicom's colour files, mean below 0.12).  JPEG 2000 irreversible
#: (9/7 wavelet): floating-point inverse transform, implementations may differ
#: by one level.  JPEG-LS near-lossless: the decoder is integer arithmetic fully
#: specified by ISO 14495-1, so conforming decoders agree exactly.
LOSSY_TOLERANCE = {
    "1.2.840.10008.1.2.4.50": (4, 0.25),   # JPEG baseline
    "1.2.840.10008.1.2.4.51": (4, 0.25),   # JPEG extended
    "1.2.840.10008.1.2.4.91": (2, 0.05),   # JPEG 2000 (lossy allowed)
    "1.2.840.10008.1.2.4.81": (0, 0.0),    # JPEG-LS near-lossless
}
REFERENCE_PLUGINS = ("gdcm", "pylibjpeg", "pillow", "pyjpegls")


def assert_lossy_close(arr, ref, ts, what):
    """*arr* within the lossy syntax *ts*'s tolerance of the reference decode *ref*."""
    max_tol, mean_tol = LOSSY_TOLERANCE[ts]
    assert arr.shape == ref.shape, what
    d = np.abs(arr.astype(np.float64) - ref.astype(np.float64))
    assert d.max() <= max_tol and d.mean() <= mean_tol, \
        f"{what}: max abs diff {d.max()} (limit {max_tol}), mean {d.mean():.4f} (limit {mean_tol})"


def reference_decodes(path):
    """Every pydicom decoder plugin's decode of *path* that succeeds, by plugin name."""
    import pydicom
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(path, force=True)
    out = {}
    for plugin in REFERENCE_PLUGINS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out[plugin] = pixel_array(ds, decoding_plugin=plugin)
            except Exception:  # plugin not installed, or not for this syntax / precision
                continue
    return out


def _pydicom_files(corpus):
    root = corpus / "pydicom_test_files"
    if not root.exists():
        return []
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


@pytest.mark.corpus
def test_every_pydicom_test_file_decodes_like_pydicom(pool, corpus):
    """Equal to pydicom's decode; lossy syntaxes within LOSSY_TOLERANCE of it."""
    import pydicom

    files = _pydicom_files(corpus)
    assert files, "no pydicom_test_files in the corpus"
    same = lossy = 0
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
        ts = str(ds.file_meta.TransferSyntaxUID) if "TransferSyntaxUID" in ds.file_meta else ""
        if ts in LOSSY_TOLERANCE:
            assert_lossy_close(arr, ref, ts, f)
            lossy += 1
        else:
            np.testing.assert_array_equal(arr, ref, err_msg=f)
        same += 1
    assert same >= 80  # 89 decodable files in pydicom 3.0.2's set
    assert lossy >= 20  # 23 of them lossy JPEG / JPEG 2000 / JPEG-LS


@pytest.mark.corpus
def test_corpus_file_pixels_references(pool, corpus):
    """Lossless: the SHA-256 of the stored values pydicom decoded when the corpus
    was built.  Lossy: the manifest's decoder-independent stats and every other
    decoder's values, within LOSSY_TOLERANCE (the hash is only one decoder's)."""
    import pydicom

    m = json.loads((corpus / "MANIFEST.shared.json").read_text())
    checked = lossy = 0
    for st in m["sets"]:
        for s in st["series"]:
            for rel, ref in (s.get("file_pixels") or {}).items():
                if ref.get("fallback_decoder") or not ref.get("raw_sha256"):
                    continue
                path = corpus / st["path"] / rel
                if not path.exists():
                    continue
                arr, errs = decode_file(str(path), pool=pool)
                assert not errs, (rel, errs)
                assert list(arr.shape) == ref["decoded_shape"], rel
                ts = str(pydicom.dcmread(path, stop_before_pixels=True, force=True)
                         .file_meta.get("TransferSyntaxUID", ""))
                if ts in LOSSY_TOLERANCE:
                    max_tol, mean_tol = LOSSY_TOLERANCE[ts]
                    a = arr.astype(np.float64)
                    stt = ref["raw_stats"]
                    assert abs(a.min() - stt["min"]) <= max_tol, rel
                    assert abs(a.max() - stt["max"]) <= max_tol, rel
                    assert abs(a.mean() - stt["mean"]) <= mean_tol + 1e-6, rel  # stats rounded to 1e-6
                    others = reference_decodes(str(path))
                    assert others, f"{rel}: no pydicom plugin decodes it"
                    for plugin, other in others.items():
                        assert_lossy_close(arr, other, ts, f"{rel} vs {plugin}")
                    lossy += 1
                else:
                    a = np.ascontiguousarray(arr).astype(np.dtype(ref["dtype"]).newbyteorder("<"))
                    assert hashlib.sha256(a.tobytes()).hexdigest() == ref["raw_sha256"], rel
                checked += 1
    assert checked >= 30
    assert lossy >= 6  # JPEG baseline, 2 JPEG extended, 3 lossy JPEG 2000


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


# ---------------------------------------------------------------- scaling
def _j2k_file(tmp_path, name="j2k.dcm"):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    peer("openjpeg")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 32, 48, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    img = np.random.default_rng(5).integers(0, 4096, (32, 48)).astype(np.uint16)
    ds.PixelData = img.tobytes()
    ds.compress(JPEG2000Lossless, img)
    p = tmp_path / name
    ds.save_as(p, enforce_file_format=True)
    return str(p), img


def test_j2k_workers_use_the_single_thread_decoder(tmp_path, monkeypatch):
    """GDCM's JPEG 2000 decoder is multi-threaded: the workers ask for pylibjpeg first
    (one process per core), and fall back to pydicom's default order when it fails."""
    import pydicom

    from pocketpacs.images import decodeworker

    path, img = _j2k_file(tmp_path)
    ds = pydicom.dcmread(path)
    assert decodeworker._plugin_for(ds) == "pylibjpeg"
    used = []
    real = decodeworker._decode_ds

    def spy(ds, indices, plugin):
        used.append(plugin)
        return real(ds, indices, plugin)

    monkeypatch.setattr(decodeworker, "_decode_ds", spy)
    (arr,) = decodeworker._decode_task(path, None)
    np.testing.assert_array_equal(arr, img)
    assert used == ["pylibjpeg"]

    def failing(ds, indices, plugin):
        used.append(plugin)
        if plugin:
            raise RuntimeError("plugin failed")
        return real(ds, indices, plugin)

    used.clear()
    (arr,) = decodeworker._decode_task_default_order(path, None)  # the retry after a worker crash
    np.testing.assert_array_equal(arr, img)
    assert used == [""]

    used.clear()
    monkeypatch.setattr(decodeworker, "_decode_ds", failing)
    (arr,) = decodeworker._decode_task(path, None)
    np.testing.assert_array_equal(arr, img)
    assert used == ["pylibjpeg", ""]


def plain_decoder(path, indices):
    n = 1 if indices is None else len(indices)
    return [np.full((2, 2), len(path), np.int16) for _ in range(n)]


def test_pool_messages_shrink_towards_the_end_and_stats(pool):
    got = []
    tasks = [(f"f{i:03d}", None) for i in range(64)]
    errs = pool.run(tasks, lambda ti, idx, arrays: got.append(ti), decode_fn=plain_decoder,
                    batch=8)
    assert errs == [] and sorted(got) == list(range(64))
    st = pool.stats
    # 8 per message at first, single tasks at the end: more than 64 / 8 messages
    assert 64 / 8 < st["messages"] < 64
    assert st["tasks"] == 64 and st["workers"] == 2
    assert st["wall"] > 0 and st["worker_busy"] > 0 and st["parent_cpu"] >= 0


def test_a_dead_worker_keeps_its_messages_until_they_are_reported():
    """Two workers crashing close together: replacing the second while the
    first one's crash was handled dropped it with its messages in flight (a
    file neither decoded nor reported, about 1 run in 25 of the test below)."""
    from pocketpacs.images import decoders

    p = DecoderPool(2)
    try:
        p._ensure(2)
        dead = p._workers[0]
        dead.inflight.append((0, decoders._Msg([(5, "f005crash", None)]), None))
        dead.kill()
        p._ensure(2)
        assert dead in p._workers, "a dead worker with work in flight was dropped unreported"
        assert sum(w.proc.is_alive() for w in p._workers) == 2
        dead.inflight.clear()
        p._ensure(2)
        assert dead not in p._workers
    finally:
        p.close()


def test_pool_crash_in_a_batch_loses_only_that_file(pool):
    got = []
    tasks = [(f"f{i:03d}", None) for i in range(40)]
    tasks[5] = ("f005crash", None)
    tasks[37] = ("f037crash", None)  # in the single-task tail
    errs = pool.run(tasks, lambda ti, idx, arrays: got.append(ti), decode_fn=crashing_decoder,
                    batch=8)
    assert {(e.path, e.crashed) for e in errs} == {("f005crash", True), ("f037crash", True)}
    assert sorted(got) == [i for i in range(40) if i not in (5, 37)]
