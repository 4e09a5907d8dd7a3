"""Open Other: NIfTI/Analyze/MGH, JPEG 2000, PNG/JPEG, DICOM folders, clear errors."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from conftest import peer
from pocketpacs.images.affine import LPS_TO_RAS
from pocketpacs.images.export import png_encode
from pocketpacs.images.openother import OpenOtherError, open_other, png_decode


@pytest.mark.parametrize("suffix,cls", [(".nii.gz", nib.Nifti1Image), (".nii", nib.Nifti2Image),
                                        (".mgz", nib.MGHImage), (".img", nib.AnalyzeImage)])
def test_nibabel_formats_keep_geometry(tmp_path, suffix, cls):
    data = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)
    aff = np.array([[0, 0, 2.0, -10], [-1.5, 0, 0, 20], [0, 1.2, 0, 5], [0, 0, 0, 1]])
    if cls is nib.AnalyzeImage:
        aff = np.diag([1.5, 1.2, 2.0, 1.0])
    p = tmp_path / f"x{suffix}"
    nib.save(cls(data, aff), p)
    v = open_other(p)[0]
    assert v.array.shape == (3, 5, 4)
    assert v.array[2, 4, 3] == data[3, 4, 2]
    np.testing.assert_allclose(v.affine_ras, nib.load(p).affine)
    np.testing.assert_allclose(v.affine_lps, LPS_TO_RAS @ nib.load(p).affine)
    # the voxel (i, j, k) lands where nibabel says
    np.testing.assert_allclose(v.affine_ras @ [3, 4, 2, 1], nib.load(p).affine @ [3, 4, 2, 1])


def test_png_roundtrip_grey_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    for img in (rng.integers(0, 256, (7, 9), dtype=np.uint8),
                rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)):
        data = png_encode(img)
        np.testing.assert_array_equal(png_decode(data), img)  # Pillow
        p = tmp_path / "x.png"
        p.write_bytes(data)
        v = open_other(p)[0]
        np.testing.assert_array_equal(v.array[0], img)
        assert v.report.notes and "uncalibrated" in v.report.notes[0] and v.calibration["kind"] == "none"


def test_jpeg_file(tmp_path):
    from pydicom_data import bundled_file as get_testdata_file
    import pydicom

    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frag = next(iter(pydicom.encaps.generate_fragmented_frames(ds.PixelData)))[0]
    p = tmp_path / "x.jpg"
    p.write_bytes(frag)
    v = open_other(p)[0]
    assert v.array.shape[1:3] == (ds.Rows, ds.Columns)


@pytest.mark.corpus
def test_corpus_nifti_and_j2k(corpus):
    n = 0
    for p in sorted((corpus / "nibabel_test_data").rglob("*.nii*")):
        try:
            v = open_other(p)[0]
        except OpenOtherError as exc:
            assert "no voxel grid" in str(exc)  # CIFTI-2 in a NIfTI-2 container
            continue
        img = nib.load(p)
        assert v.to_nifti_array().shape[:3] == img.shape[:3]
        np.testing.assert_allclose(v.affine_ras, img.affine)
        n += 1
    openjpeg = peer("openjpeg")
    for p in sorted((corpus / "pylibjpeg_data").rglob("*.j2k")):
        v = open_other(p)[0]
        np.testing.assert_array_equal(v.array[0], openjpeg.decode(p.read_bytes()))
        n += 1
    assert n >= 10


def test_dicom_folder(tmp_path):
    from pydicom_data import bundled_file as get_testdata_file

    v = open_other(get_testdata_file("CT_small.dcm"))[0]
    assert v.array.shape == (1, 128, 128) and v.modality == "CT"


@pytest.mark.parametrize("content,msg", [
    (b"", "empty"), (b"hello world" * 50, "not a readable"),
    (b"\x89PNG\r\n\x1a\nbroken", "bad.bin: not readable as png")])
def test_unreadable_files_say_why(tmp_path, content, msg):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    with pytest.raises(OpenOtherError, match=msg):
        open_other(p)
    if content.startswith(b"\x89PNG"):
        with pytest.raises(OpenOtherError, match="not a PNG"):
            png_decode(content[:4])
    with pytest.raises(OpenOtherError, match="no such file"):
        open_other(tmp_path / "missing.nii")


# ---- image bombs (issue 13, finding 7) -------------------------------------------------------
def _png(w: int, h: int, depth: int, ctype: int, rows) -> bytes:
    """A PNG whose IDAT is built from byte-aligned full-flush deflate blocks
    (one per distinct row, repeated): a gigabyte of rows costs milliseconds."""
    import struct
    import zlib

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    row, count = rows
    block = c.compress(row) + c.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(count):
        adler = zlib.adler32(row, adler)
    idat = b"\x78\xda" + block * count + c.flush() + struct.pack(">I", adler)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _nifti_bomb(path, shape=(1024, 1024, 1040)) -> None:
    """A .nii.gz of uint8 ``shape`` (over 1 GiB), its data gzip members of zeros."""
    import gzip

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.uint8)
    hdr.set_data_shape(shape)
    hdr["vox_offset"] = 352
    head = hdr.binaryblock + b"\0" * 4
    member = gzip.compress(bytes(1 << 24), 9)
    n = -(-int(np.prod(shape)) // (1 << 24))
    path.write_bytes(gzip.compress(head) + member * n)


def _j2k_bomb() -> bytes:
    """A real 64x64 JPEG 2000 codestream whose SIZ declares 60000x60000 (one tile)."""
    import struct

    from openjpeg import encode

    b = bytearray(encode(np.zeros((64, 64), dtype=np.uint8)))
    assert b[:4] == b"\xff\x4f\xff\x51"
    b[8:16] = struct.pack(">II", 60000, 60000)
    b[24:32] = struct.pack(">II", 60000, 60000)
    return bytes(b)


BOMB_CHILD = """
import json, resource, sys, time
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
from pocketpacs.images.openother import OpenOtherError, open_other, png_decode
open_other({warm!r})  # load the kernels first (a cold numba cache compiles)
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
base = peak_kib()
out = {{}}
for name, p in {paths!r}.items():
    t = time.perf_counter()
    try:
        if name.startswith("png_decode"):
            png_decode(open(p, "rb").read())
        else:
            open_other(p)
        out[name] = "opened"
    except OpenOtherError as e:
        out[name] = "OpenOtherError: " + str(e)
    except BaseException as e:
        out[name] = "OTHER " + type(e).__name__ + ": " + str(e)[:200]
print(json.dumps({{"rows": out, "base_kib": base, "peak_kib": peak_kib()}}))
"""


def test_image_bombs_are_refused_before_decoding(tmp_path):
    """A PNG inflating to 1 GiB (about 1 MB), a Paeth-filtered 20000^2 PNG
    (the hand-written reader spent over 150 s in its filter loop), a 1 MB
    .nii.gz of over 1 GiB and a JPEG 2000 codestream declaring 60000^2: each
    refused from its header with a message naming the limit, quickly (the
    child's timeout), and the child's peak RSS stays far below the images."""
    import subprocess
    import sys

    files = {}
    big = _png(32768, 32768, 8, 0, (bytes(32769), 32768))
    paeth = _png(20000, 20000, 8, 0, (b"\x04" + bytes(20000), 20000))
    assert len(big) < 2 << 20 and len(paeth) < 2 << 20
    for name, data in (("png", big), ("png_paeth", paeth), ("png_decode", big),
                       ("png_decode_paeth", paeth), ("j2k", _j2k_bomb())):
        p = tmp_path / (name + (".j2k" if name == "j2k" else ".png"))
        p.write_bytes(data)
        files[name] = str(p)
    nii = tmp_path / "bomb.nii.gz"
    _nifti_bomb(nii)
    assert nii.stat().st_size < 2 << 20
    files["nifti"] = str(nii)
    warm = tmp_path / "warm.png"
    warm.write_bytes(png_encode(np.zeros((4, 4), dtype=np.uint8)))
    proc = subprocess.run([sys.executable, "-c", BOMB_CHILD.format(paths=files, warm=str(warm))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, row in out["rows"].items():
        assert row.startswith("OpenOtherError") and "limit" in row, (name, row)
    assert "60000x60000" in out["rows"]["j2k"] and "1024x1024x1040" in out["rows"]["nifti"]
    grew_mib = (out["peak_kib"] - out["base_kib"]) / 1024
    print(f"peak RSS growth {grew_mib:.0f} MiB")
    assert grew_mib < 128, out


def test_images_under_the_budget_still_open(tmp_path):
    """The budget refuses what is over it, nothing else: a 16-bit PNG, a JPEG
    2000 codestream and a scaled NIfTI open as before."""
    from openjpeg import encode
    from PIL import Image

    from pocketpacs.images import openother

    img = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) * 12)
    p = tmp_path / "x16.png"
    Image.fromarray(img).save(p)
    np.testing.assert_array_equal(open_other(p)[0].array[0], img)
    j = tmp_path / "x.j2k"
    j.write_bytes(encode(img.astype(np.uint8)))
    np.testing.assert_array_equal(open_other(j)[0].array[0], img.astype(np.uint8))
    n = tmp_path / "s.nii.gz"
    im = nib.Nifti1Image(np.ones((4, 5, 6), dtype=np.int16), np.eye(4))
    im.header.set_slope_inter(2.0, 1.0)
    nib.save(im, n)
    assert open_other(n)[0].array.max() == 3.0
    with pytest.raises(OpenOtherError, match="limit of 1024 MiB"):
        openother.check_budget((1 << 15, 1 << 15, 1), 2, "PNG")


def test_a_large_volume_opens_within_the_machines_budget_but_a_bomb_does_not(tmp_path):
    """A long fMRI run decodes to several GB: volumes may pass the 2D image
    limit (up to a quarter of memory) unless they inflate over 100x their file."""
    from pocketpacs.images import openother

    f = tmp_path / "run.nii.gz"
    with open(f, "wb") as fh:
        fh.truncate(20 << 20)                           # a 20 MiB file (sparse)
    big = (96, 96, 60, 600)                             # 1.24 GiB of float32 at 62x the file
    if openother.volume_budget() < 4 * int(np.prod(big)):
        pytest.skip("this computer's volume budget is below the test's volume")
    openother.check_volume_budget(big, 4, "Nifti1Image", str(f))       # no error
    with pytest.raises(OpenOtherError, match="decompression bomb"):
        openother.check_volume_budget((96, 96, 60, 6000), 1, "Nifti1Image", str(f))  # 3.1 GiB, 158x
    too_big = openother.volume_budget() // 4 + 1
    with pytest.raises(OpenOtherError, match="per volume on this computer"):
        openother.check_volume_budget((too_big, 1, 1), 4, "Nifti1Image", str(f))
