"""Structured malformed inputs (reliability notes §1.4), each class as a
deterministic generator over real files (tests/structured.py): truncation
at every offset, length poisoning of every element, delimiter damage,
nesting, VR confusion, deflate/gzip bombs, bogus pixel geometry through the
pixel path, DICOMDIR escapes and offset loops, polyglot preambles.

Required outcome per input: a failure with a reason and a message, or a
parse; never an exception, a signal or an allocation from unchecked sizes.
The compiled kernels run here; tests/test_fuzz_guided.py replays the same
inputs bounds-checked in a watchdog child."""
from __future__ import annotations

import copy
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import structured as S

HERE = Path(__file__).resolve().parent

# real files of several kinds: explicit/implicit LE, big endian, encapsulated,
# sequences, private SQ, odd length RGB, no meta, RLE
FILES = S.PYDICOM_FILES


def _parse(blobs, fallback=False):
    from pocketpacs.dicom.headers import parse_bytes

    hb = parse_bytes(list(blobs), fallback=fallback)
    return hb


def _typed(hb) -> None:
    """Every input parsed, or failed with a reason code and a message."""
    st = hb.status
    assert set(np.unique(st).tolist()) <= {-1, 0, 1}
    for i in np.nonzero(st == -1)[0].tolist():
        assert hb.reason[i] and hb.message[i], i
    # values of the parsed ones decode without an exception
    hb.text("PatientName")
    hb.text("SOPInstanceUID")
    hb.values("ImagePositionPatient")
    hb.values("Rows")


def _chunks(items, n=2000):
    for a in range(0, len(items), n):
        yield items[a:a + n]


# ---- M2: truncation at every offset ----------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_truncation_at_every_offset(name):
    b = S.pydicom_file(name)
    full = _parse([b])
    he = int(full.header_end[0])
    pix_end = (int(full.pixel_offset[0]) + int(full.pixel_length[0])
               if full.pixel_length[0] >= 0 else len(b))
    bounds = S.top_level_boundaries(b) | {he}
    pairs = list(S.truncations(b, he + 300))
    assert len(pairs) >= min(len(b), he + 300)
    for chunk in _chunks(pairs):
        ks = [k for k, _ in chunk]
        hb = _parse(v for _, v in chunk)
        _typed(hb)
        for j, k in enumerate(ks):
            if hb.status[j] != 0:
                continue
            # a prefix parses only when it ends where a top-level element
            # starts (it is then a complete, shorter data set) or after the
            # pixel data / inside encapsulated fragments (checked when decoded)
            assert (k in bounds or k >= pix_end or full.encapsulated[0]
                    or k == len(b)), (name, k)
            if not full.encapsulated[0] and he < k < pix_end:
                raise AssertionError(f"{name}: cut inside the pixel data at {k} parsed")


def _corpus_files(corpus: Path) -> list[Path]:
    rows = [json.loads(line) for line in open(corpus / "HEADERS.jsonl")]
    want = ("dcm_qa_nih/", "dcm_qa_ge_mprage/", "dcm_qa_ct_philips_S21570/",
            "nibabel_test_data/dicom/nicom_tests_data/csa_slice_norm.dcm",
            "pylibjpeg_data/ds/JPEG2000/", "pylibjpeg_data/ds/LittleEndianExplicit/",
            "dcm_qa_ts/In/1.dcm", "dcm_qa_enh_siemens_xa10/")
    out: list[Path] = []
    for w in want:
        for r in rows:
            if r["path"].startswith(w) and r.get("read_mode") == "normal":
                out.append(corpus / r["path"])
                break
    return out


@pytest.mark.corpus
def test_truncation_of_corpus_files(corpus):
    """Every offset of the header of small-header corpus files; for the big
    (88-98 KB) Siemens headers, every offset inside and just after each
    element's tag, VR and length field, plus every 61st byte."""
    files = _corpus_files(corpus)
    assert len(files) >= 6
    total = 0
    for p in files:
        b = p.read_bytes()[:262144]
        he = S.header_end(b)
        if he <= 20000:
            ks = list(range(min(len(b), he + 300)))
        else:
            ks = set(range(0, len(b), 61))
            for el in S.elements(b):
                ks.update(range(el.offset, min(len(b), el.value_offset + 4)))
            ks = sorted(ks)
        for chunk in _chunks(ks, 1000):
            hb = _parse(b[:k] for k in chunk)
            _typed(hb)
            bounds = None
            for j, k in enumerate(chunk):
                if hb.status[j] == 0 and k < he:
                    bounds = bounds or S.top_level_boundaries(b)
                    assert k in bounds, (p.name, k)
        total += len(ks)
    assert total > 20000


# ---- M3: length poisoning at every element ---------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_length_poisoning_every_element(name):
    b = S.pydicom_file(name)
    els = {el.offset: el for el in S.elements(b)}
    assert len(els) > 5
    variants = list(S.length_poisons(b))
    assert len(variants) >= 5 * len(els)
    for chunk in _chunks(variants):
        hb = _parse(v for _, v in chunk)
        _typed(hb)
        for j, (what, _) in enumerate(chunk):
            tag_s, rest = what.split(" ", 1)[1].split("@")
            off, val = rest.split("=")
            el = els[int(off)]
            val = int(val, 16)
            top = el.depth == 0 and el.tag not in (0x7FE00010, 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD)
            # a top-level length running past the end of the file never parses
            if top and val != 0xFFFFFFFF and el.value_offset + val > len(b):
                assert hb.status[j] == -1, what
                assert hb.reason[j] in ("truncated", "malformed", "unsupported"), what


def test_length_poisoning_with_pydicom_fallback():
    """The same variants with the fallback on: pydicom's exceptions stay typed."""
    b = S.pydicom_file("rtplan.dcm")
    variants = [v for _, v in S.length_poisons(b)][::3]
    hb = _parse(variants, fallback=True)
    _typed(hb)


# ---- M4: delimiters ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["rtplan.dcm", "nested_priv_SQ.dcm", "JPEG2000.dcm",
                                  "CT_small.dcm", "MR_small_RLE.dcm"])
def test_missing_and_misplaced_delimiters(name):
    b = S.pydicom_file(name)
    variants = list(S.delimiter_damage(b))
    assert variants
    hb = _parse(v for _, v in variants)
    _typed(hb)
    hb = _parse((v for _, v in variants), fallback=True)
    _typed(hb)


def test_undefined_length_sequence_without_delimiter_is_truncated():
    b = S.nested(3)
    cut = b[:-8]  # the last sequence delimiter is missing
    hb = _parse([cut])
    assert hb.status[0] == -1 and hb.reason[0] == "truncated"


# ---- M6: nesting ---------------------------------------------------------------------------
@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("depth,ok", [(64, True), (65, False), (1000, False), (100_000, False)])
def test_nesting(depth, ok, implicit):
    blob = S.nested(depth, implicit=implicit)
    for fallback in (False, True):
        hb = _parse([blob], fallback=fallback)
        if ok:
            assert hb.status[0] == 0, hb.message[0]
            assert hb.record(0)["SOPInstanceUID"] == "1.2.3"
        else:  # fails in the kernel: pydicom (recursive) never sees it
            assert hb.status[0] == -1 and hb.reason[0] == "malformed"
            assert "nested deeper than 64" in hb.message[0]
            assert f"at byte {len(S.nested(64, implicit)) - 16 * 64}" in hb.message[0]


# ---- M7: VR confusion ------------------------------------------------------------------------
@pytest.mark.parametrize("name", FILES)
def test_vr_confusion_every_element(name):
    b = S.pydicom_file(name)
    variants = [v for _, v in S.vr_confusions(b)]
    if not variants:
        pytest.skip("implicit VR file: no VR bytes to confuse")
    for chunk in _chunks(variants):
        _typed(_parse(chunk))
    _typed(_parse(variants[::7], fallback=True))


def _with_ul(blob: bytes, tag: int) -> bytes:
    """Rewrite the US element ``tag`` of an explicit LE file as UL (4 bytes)."""
    for el in S.elements(blob):
        if el.tag == tag and el.vr_offset > 0:
            v = struct.unpack_from("<H", blob, el.value_offset)[0]
            new = struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"UL", 4, v)
            return blob[:el.offset] + new + blob[el.value_offset + 2:]
    raise AssertionError("tag not found")


@pytest.mark.parametrize("tag,kw", [(0x00280010, "Rows"), (0x00280011, "Columns"),
                                    (0x00280100, "BitsAllocated")])
def test_us_ul_confusion_reads_like_pydicom(tag, kw, tmp_path):
    import pydicom

    b = _with_ul(S.pixel_file(rows=300, cols=200, pixel_bytes=120000), tag)
    p = tmp_path / "ul.dcm"
    p.write_bytes(b)
    hb = _parse([b])
    assert hb.status[0] == 0
    assert hb.number(kw)[0] == getattr(pydicom.dcmread(p, force=True), kw)


# ---- M8: deflate / gzip bombs ----------------------------------------------------------------
BOMB_CHILD = """
import json, resource, sys
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
sys.path.insert(0, {here!r})
import structured as S
from pocketpacs.dicom.headers import parse_bytes, parse_files
import gzip
# load the kernels and pydicom first: the baseline is a warm parser
open({gz!r}, "wb").write(gzip.compress(S.pydicom_file("CT_small.dcm")))
parse_files([{gz!r}])
parse_bytes([S.deflated_file(), S.pydicom_file("CT_small.dcm")])
base = peak_kib()
out = {{}}
bomb = S.deflate_bomb(4 << 30)
hb = parse_bytes([bomb])
out["deflate"] = [int(hb.status[0]), hb.reason[0], hb.message[0]]
open({gz!r}, "wb").write(S.gzip_bomb(4 << 30))
open({dfl!r}, "wb").write(bomb)
hb = parse_files([{gz!r}, {dfl!r}])
out["files"] = [[int(s), r, m] for s, r, m in zip(hb.status, hb.reason, hb.message)]
out["bomb_bytes"] = len(bomb)
out["base_kib"] = base
out["peak_kib"] = peak_kib()
print(json.dumps(out))
"""


def test_deflate_and_gzip_bombs_are_capped(tmp_path):
    """A 4 MB deflated file whose data set inflates to 4 GiB, and a gzip
    file of the same: the inflated header is capped at 16 MiB, the file
    fails with a reason, and the child's peak RSS grows by far less than
    the inflated size (pydicom alone inflates the whole data set)."""
    code = BOMB_CHILD.format(here=str(HERE), gz=str(tmp_path / "b.dcm.gz"),
                             dfl=str(tmp_path / "b.dcm"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bomb_bytes"] < 8 << 20
    st, reason, msg = out["deflate"]
    assert st == -1 and reason == "malformed" and "inflates past 16 MiB" in msg
    for st, reason, msg in out["files"]:
        assert st == -1 and reason == "malformed" and "inflates past 16 MiB" in msg
    grew_mib = (out["peak_kib"] - out["base_kib"]) / 1024
    print(f"peak RSS growth {grew_mib:.0f} MiB")
    assert grew_mib < 128  # the 16 MiB cap plus the 4 MB inputs and their copies


def test_deflated_files_still_parse():
    import pydicom
    from pydicom_data import bundled_file as get_testdata_file

    hb = _parse([S.pydicom_file("image_dfl.dcm"), S.deflated_file()], fallback=True)
    assert list(hb.status) == [1, 1]
    ref = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    assert hb.record(0)["SOPInstanceUID"] == ref.SOPInstanceUID
    assert hb.record(1)["SOPInstanceUID"] == "1.2.3.4.5.6"


def test_deflated_pixels_decode_like_pydicom():
    """The pixel path reads deflated files through the capped reader too."""
    import pydicom
    from pydicom_data import bundled_file as get_testdata_file

    from pocketpacs.images.frames import decode_file

    p = get_testdata_file("image_dfl.dcm")
    arr, errs = decode_file(p)
    assert errs == [] and np.array_equal(arr, pydicom.dcmread(p).pixel_array)


def test_inflate_caps_in_the_reader():
    import gzip

    from pocketpacs.dicom.fallback import InflateCapError, read_dataset_capped

    bomb = S.deflate_bomb(64 << 20)
    with pytest.raises(InflateCapError):
        read_dataset_capped(bomb, stop_before_pixels=True, cap=1 << 20)
    with pytest.raises(InflateCapError):
        read_dataset_capped(bomb, stop_before_pixels=False, cap=32 << 20)
    # a header that ends inside the cap reads, although the file goes on
    big = S.pydicom_file("CT_small.dcm")
    ds = read_dataset_capped(gzip.compress(big + bytes(4 << 20)), cap=1 << 20)
    assert ds.SOPInstanceUID == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


# ---- M15: zero-filled and sparse files (issue 13, finding 6) --------------------------------
ZERO_CHILD = """
import json, sys
from pocketpacs.dicom.headers import parse_files
hb = parse_files({paths!r})
print(json.dumps([[int(s), r, m] for s, r, m in zip(hb.status, hb.reason, hb.message)]))
"""


def _zero_filled_files(root: Path) -> dict[str, Path]:
    """A real header followed by zeros: 64 MiB written, 4 GiB sparse (no disk
    used), 4 GiB sparse after an open undefined-length sequence, and a whole
    file (pixel data included) followed by a 4 GiB sparse tail."""
    b = S.pydicom_file("CT_small.dcm")
    he = S.header_end(b)
    sq = struct.pack("<HH2sHI", 0x0029, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    root.mkdir()
    out = {}
    for name, head, size in (("zeros64m", b[:he], he + (64 << 20)), ("sparse4g", b[:he], 4 << 30),
                             ("sequence4g", b[:he] + sq, 4 << 30), ("tail4g", b, 4 << 30)):
        p = out[name] = root / f"{name}.dcm"
        with open(p, "wb") as f:
            f.write(head)
            if name == "zeros64m":
                f.write(bytes(size - len(head)))
            f.truncate(size)
    return out


def test_zero_filled_and_sparse_files_finish_in_seconds(tmp_path):
    """A real header followed by zeros made pydicom walk every zero element:
    64 MiB took 32 s, a 4 GiB sparse file about 35 minutes, for the import's
    parser and for ``report`` alike.  Now the fallback stops at the first zero
    element (top level: the data set ends there) or refuses the file (inside a
    sequence), and the parse, ``report`` and ``import`` all finish well within
    their timeouts (generous for a loaded 2-core machine)."""
    files = _zero_filled_files(tmp_path / "z")
    paths = [str(p) for p in files.values()]
    proc = subprocess.run([sys.executable, "-c", ZERO_CHILD.format(paths=paths)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = dict(zip(files, json.loads(proc.stdout.strip().splitlines()[-1])))
    # the header before the zeros is a data set: parsed, its pixel data missing
    for name in ("zeros64m", "sparse4g", "tail4g"):
        assert rows[name][0] in (0, 1), (name, rows[name])
    st, reason, msg = rows["sequence4g"]
    assert st == -1 and reason == "malformed" and "zero-filled data" in msg, msg
    for name in ("zeros64m", "sparse4g", "tail4g"):
        rep = subprocess.run([sys.executable, "-m", "pocketpacs", "report", "--json",
                              str(files[name])], capture_output=True, text=True, timeout=60)
        assert rep.returncode in (0, 4), (name, rep.stderr[-2000:])
    imp = subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(tmp_path / "a"),
                          "import", str(tmp_path / "z")], capture_output=True, text=True,
                         timeout=60)
    assert "zero-filled data" in imp.stdout + imp.stderr, imp.stdout[-2000:]


def test_zero_filled_region_in_the_reader():
    """read_dataset_capped: zeros at the top level end the data set; zeros in
    a sequence (items of nothing) are refused with the byte they start at; a
    header is never read past its cap."""
    from pocketpacs.dicom.fallback import HeaderLimitError, read_dataset_capped

    b = S.pydicom_file("CT_small.dcm")
    he = S.header_end(b)
    ds = read_dataset_capped(b[:he] + bytes(1 << 20))
    assert ds.SOPInstanceUID == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert "PixelData" not in ds
    full = read_dataset_capped(b + bytes(1 << 20), stop_before_pixels=False)
    assert len(full.PixelData) == 128 * 128 * 2
    sq = struct.pack("<HH2sHI", 0x0029, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    for stop in (True, False):
        with pytest.raises(HeaderLimitError, match="zero-filled data"):
            read_dataset_capped(b[:he] + sq + bytes(1 << 20), stop_before_pixels=stop)
    # a header running past the cap (a long private value, read element by element)
    long = b[:he] + struct.pack("<HH2sH", 0x7FD1, 0x1010, b"LT", 2000) + b"x" * 2000
    with pytest.raises(HeaderLimitError, match="runs past its first"):
        read_dataset_capped(long, cap=he + 64)
    assert read_dataset_capped(long).SOPInstanceUID == ds.SOPInstanceUID


# ---- M12: bogus pixel geometry through the pixel path -----------------------------------------
GEOMETRY = [
    ("rows x cols 65535^2", dict(rows=65535, cols=65535), "more than"),
    ("65535^2 x 100000 frames", dict(rows=65535, cols=65535, frames="100000"), "more than"),
    ("frames 1e9", dict(frames="1e9"), "Number of Frames"),
    ("frames 2^31-1, 64 bits", dict(rows=65535, cols=65535, frames="2147483647", bits=64),
     "Number of Frames"),
    ("bits 0", dict(bits=0), "Bits Allocated 0"),
    ("bits 3", dict(bits=3), "Bits Allocated 3"),
    ("bits 12", dict(bits=12), "Bits Allocated 12"),
    ("bits 2048", dict(bits=2048), "Bits Allocated 2048"),
    ("encapsulated 65535^2 x 1e6", dict(rows=65535, cols=65535, frames="1000000",
                                        ts="1.2.840.10008.1.2.4.90", encapsulated=True),
     "more than"),
    ("encapsulated 16384^2", dict(rows=16384, cols=16384, ts="1.2.840.10008.1.2.4.90",
                                 encapsulated=True), "more than"),
]

GEOMETRY_CHILD = """
import json, resource, sys
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
from pocketpacs.images import frames, volume
out = []
def main():
    # compile or load the kernels first (a cold numba cache compiles here,
    # and LLVM wants address space), then cap it: a regression fails, not the machine
    volume.assemble_series([{warm!r}])
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    for p in {paths!r}:
        row = {{}}
        try:
            frames.decode_file(p)
            row["decode"] = "ok"
        except frames.PixelError as e:
            row["decode"] = "PixelError: " + str(e)
        except Exception as e:
            row["decode"] = "OTHER " + type(e).__name__ + ": " + str(e)
        try:
            volume.assemble_series([p])
            row["assemble"] = "ok"
        except volume.VolumeError as e:
            row["assemble"] = "VolumeError: " + str(e)
        except Exception as e:
            row["assemble"] = "OTHER " + type(e).__name__ + ": " + str(e)
        out.append(row)
    print(json.dumps({{"rows": out, "peak_kib": peak_kib()}}))
if __name__ == "__main__":
    main()
"""


def test_bogus_geometry_is_refused_before_allocation(tmp_path):
    paths = []
    for i, (_, kw, _) in enumerate(GEOMETRY):
        p = tmp_path / f"g{i}.dcm"
        p.write_bytes(S.pixel_file(**kw))
        paths.append(str(p))
    warm = tmp_path / "ok.dcm"
    warm.write_bytes(S.pixel_file())
    script = tmp_path / "child.py"
    script.write_text(GEOMETRY_CHILD.format(paths=paths, warm=str(warm)))
    # a first child fills numba's cache (compiling on a cold cache peaks near
    # 1 GiB of RSS on its own); the measured child loads the kernels from it
    warm_up = subprocess.run([sys.executable, "-c", "from pocketpacs.images import volume; "
                              f"volume.assemble_series([{str(warm)!r}])"],
                             capture_output=True, text=True, timeout=600)
    assert warm_up.returncode == 0, warm_up.stderr[-2000:]
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for (name, _, why), row in zip(GEOMETRY, out["rows"]):
        assert row["decode"].startswith("PixelError") and why in row["decode"], (name, row)
        assert row["assemble"].startswith("VolumeError") and why in row["assemble"], (name, row)
    print(f"peak RSS {out['peak_kib'] / 1024:.0f} MiB")
    assert out["peak_kib"] < 1024 * 1024  # nothing near the GiBs the headers ask for


def test_format_problem_bounds():
    from pocketpacs.images.pixelformat import PixelFormat, format_problem

    ok = PixelFormat(rows=512, cols=512, bits_allocated=16, nframes=10)
    assert format_problem(ok, 512 * 512 * 2 * 10 + 1000) is None
    # uncompressed: the file must be able to hold the frames (plus the slack)
    huge = PixelFormat(rows=65535, cols=65535, bits_allocated=16, nframes=1)
    assert "more than" in format_problem(huge, 10_000)
    assert format_problem(huge, 65535 * 65535 * 2) is None
    # gzip-compressed: bounded by the compression ratio instead
    assert format_problem(huge, 10_000_000, gzipped=True) is None
    assert "more than" in format_problem(huge, 10_000, gzipped=True)
    # 1-bit frames round up to whole bytes
    bits1 = PixelFormat(rows=3, cols=3, bits_allocated=1)
    assert format_problem(bits1, 100) is None
    for bad in (dict(rows=0, cols=4), dict(rows=4, cols=70000), dict(rows=4, cols=4, samples=2),
                dict(rows=4, cols=4, nframes=0), dict(rows=4, cols=4, bits_allocated=24)):
        assert format_problem(PixelFormat(**bad), 1 << 20) is not None, bad


def test_gzipped_image_decodes_beyond_its_file_size(tmp_path):
    """A .dcm.gz holds more pixel bytes than its size: not refused."""
    import gzip

    from pocketpacs.images.frames import decode_file
    from pocketpacs.images.volume import assemble_series

    raw = S.pixel_file(rows=512, cols=512, pixel_bytes=512 * 512 * 2)
    p = tmp_path / "img.dcm.gz"
    p.write_bytes(gzip.compress(raw))
    assert p.stat().st_size < 512 * 512 * 2 // 10
    arr, errs = decode_file(str(p))
    assert arr.shape == (512, 512) and errs == []
    assert assemble_series([str(p)]).volumes[0].array.shape == (1, 512, 512)


def test_valid_small_images_still_decode(tmp_path):
    from pocketpacs.images.frames import decode_file

    p = tmp_path / "ok.dcm"
    p.write_bytes(S.pixel_file(rows=4, cols=4, frames="2", pixel_bytes=64))
    arr, errs = decode_file(str(p))
    assert arr.shape == (2, 4, 4) and errs == []


# ---- M13: DICOMDIR escapes and offset loops ----------------------------------------------------
def _fileset(tmp_path: Path) -> Path:
    import dicomgen
    from pydicom import dcmread
    from pydicom.fileset import FileSet

    paths = dicomgen.write_series(tmp_path / "src", 3, series_uid="1.2.840.99.7",
                                  extra={"StudyID": "1"})
    fs = FileSet()
    for p in paths:
        fs.add(dcmread(p))
    fs.write(tmp_path / "cd")
    return tmp_path / "cd"


def _patch_offset(raw: bytes, record_offset: int, elem: int, value: int) -> bytes:
    pat = struct.pack("<HH", 0x0004, elem) + b"UL" + struct.pack("<H", 4)
    p = raw.index(pat, record_offset)
    b = bytearray(raw)
    struct.pack_into("<I", b, p + 8, value)
    return bytes(b)


DIRCHILD = """
import json, sys
from pocketpacs.dicom.dicomdir import read_dicomdir
i = read_dicomdir({root!r})
print(json.dumps({{"reader": i.reader, "files": len(i.files), "summary": i.summary(),
                  "problems": [p.message for p in i.problems]}}))
"""


def _read_dicomdir_child(root: Path) -> dict:
    # a child with a timeout: a loop must fail this test, not hang the suite
    proc = subprocess.run([sys.executable, "-c", DIRCHILD.format(root=str(root))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_dicomdir_offset_loops_terminate(tmp_path):
    from pydicom import dcmread

    root = _fileset(tmp_path)
    raw = (root / "DICOMDIR").read_bytes()
    recs = list(dcmread(root / "DICOMDIR").DirectoryRecordSequence)
    offs = [r.seq_item_tell for r in recs]
    kinds = [r.DirectoryRecordType for r in recs]
    assert kinds == ["PATIENT", "STUDY", "SERIES", "IMAGE", "IMAGE", "IMAGE"]
    cases = {
        "root record points to itself": _patch_offset(raw, offs[0], 0x1400, offs[0]),
        "last image points back to the first": _patch_offset(raw, offs[5], 0x1400, offs[3]),
        "series' lower level points to the study": _patch_offset(raw, offs[2], 0x1420, offs[1]),
        "offset to no record": _patch_offset(raw, offs[5], 0x1400, 7),
    }
    for what, data in cases.items():
        (root / "DICOMDIR").write_bytes(data)
        res = _read_dicomdir_child(root)
        assert res["reader"] == "records", what
        assert res["files"] == 3, what
        assert any("loop" in m or "points to no record" in m for m in res["problems"]), what
    (root / "DICOMDIR").write_bytes(raw)
    assert _read_dicomdir_child(root)["reader"] == "fileset"


def test_dicomdir_offset_problem_on_pydicom_dicomdirs():
    import pydicom
    from pydicom_data import bundled_files

    from pocketpacs.dicom.dicomdir import offset_problem

    files = [f for f in bundled_files() if "DICOMDIR" in f]
    assert len(files) >= 5
    for f in files:
        ds = pydicom.dcmread(f, force=True)
        if "DirectoryRecordSequence" in ds:
            assert offset_problem(ds) is None, f


def test_dicomdir_references_escaping_the_root(tmp_path):
    from pydicom import dcmread

    from pocketpacs.dicom.dicomdir import read_dicomdir

    root = _fileset(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(b"x" * 200)
    os.symlink(outside / "secret.dcm", root / "LINKFILE")
    os.symlink(outside, root / "LINKDIR")
    ddir = dcmread(root / "DICOMDIR")
    recs = [r for r in ddir.DirectoryRecordSequence if "ReferencedFileID" in r]
    good = list(recs[0].ReferencedFileID)
    refs = [["..", "outside", "secret.dcm"], ["/etc/passwd"], ["C:", "WINDOWS"],
            ["LINKFILE"], ["LINKDIR", "secret.dcm"], ["A"] * 9, [""]]
    new = []
    for ref in refs:
        r = copy.deepcopy(recs[0])
        r.ReferencedFileID = ref
        new.append(r)
    ddir.DirectoryRecordSequence.extend(new)
    ddir.save_as(root / "DICOMDIR")
    info = read_dicomdir(str(root))
    shown = [p.message for p in info.problems]
    assert info.rejected == len(refs), shown
    assert all(str(outside) not in f and "passwd" not in f for f in info.files)
    assert any(f.endswith("/".join(good)) or f.endswith(os.sep.join(good)) for f in info.files)


# ---- M14: polyglot preambles -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["CT_small.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm"])
def test_polyglot_preambles_parse_as_data(name, tmp_path):
    b = S.pydicom_file(name)
    variants = list(S.polyglots(b))
    assert [n for n, _ in variants] == ["elf", "pe", "tiff", "ff", "dicm"]
    hb = _parse([b] + [v for _, v in variants])
    assert list(hb.status) == [0] * 6
    want = hb.record(0)
    for i in range(1, 6):
        assert hb.record(i) == want
        assert hb.pixel_offset[i] == hb.pixel_offset[0]


def test_polyglot_pixels_equal(tmp_path):
    from pocketpacs.images.frames import decode_file

    b = S.pydicom_file("CT_small.dcm")
    (tmp_path / "plain.dcm").write_bytes(b)
    want, _ = decode_file(str(tmp_path / "plain.dcm"))
    for name, v in S.polyglots(b):
        p = tmp_path / f"{name}.dcm"
        p.write_bytes(v)
        got, errs = decode_file(str(p))
        assert errs == [] and np.array_equal(got, want), name


# ---- found by the guided fuzzer ----------------------------------------------------------------
DS_VALUES = {"ImagePositionPatient": b"1.5e-3\\-2E+2\\7e-1 ", "PixelSpacing": b"1e-22\\3.25E1",
             "RescaleSlope": b"1e999 ", "RescaleIntercept": b"-1024e-0", "SliceThickness": b"5e+21 "}

DS_CHILD = """
import json, sys
sys.path.insert(0, {here!r})
import numpy as np
import test_fuzz_structured as T
from pocketpacs.dicom.headers import parse_bytes
hb = parse_bytes([T.ds_exponent_file()], fallback=False)
print(json.dumps({{k: [None if np.isnan(x) else x for x in hb.values(k)[0].tolist()]
                  for k in T.DS_VALUES}}))
"""


def ds_exponent_file() -> bytes:
    from pocketpacs.dicom import tags as T

    body = S._small_dataset()
    for kw, raw in sorted(DS_VALUES.items(), key=lambda kv: T.TAGS[T.INDEX[kv[0]]].tag):
        raw = raw + (b" " if len(raw) % 2 else b"")
        body += S._explicit(T.TAGS[T.INDEX[kw]].tag, b"DS", raw)
    return S._meta(b"1.2.840.10008.1.2.1") + body


def test_ds_exponents_interpreted_equal_compiled():
    """Interpreted (NUMBA_DISABLE_JIT=1, the reference mode) the exponent of
    a DS value was a uint8 under NumPy 2: any negative exponent raised
    OverflowError and exponents wrapped at 256.  Both modes must agree, with
    Python's float()."""
    import fuzz_guided as G

    outs = []
    for mode in ("interpreted", "released"):
        proc = subprocess.run([sys.executable, "-c", DS_CHILD.format(here=str(HERE))],
                              capture_output=True, text=True, env=G.mode_env(mode), timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    for kw, raw in DS_VALUES.items():
        want = [float(x) for x in raw.decode().strip().split("\\")]
        got = [x for x in outs[1][kw] if x is not None]
        assert got == want, kw
