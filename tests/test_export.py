"""Export: NIfTI with dcm2niix's world geometry, PNG slices, JSON reports, thumbnails."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import peer
from pocketpacs.images.affine import affine_from, lps_to_ras
from pocketpacs.images.assemblyreport import AssemblyReport, StackReport
from pocketpacs.images.export import (ExportError, export_nifti, export_png, png_encode, stack_paths,
                                      write_report_json)
from pocketpacs.images.openother import png_decode
from pocketpacs.images.thumbs import thumbnail, thumbnail_png
from pocketpacs.images.volume import Volume, assemble_series, dicom_files_in


def small_volume(four_d=False):
    arr = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape((2, 3, 4, 5) if four_d else (6, 4, 5))
    aff = affine_from([0, 1, 0, 0, 0, -1], [1.0, 2.0, 3.0], [0.5, 0.8], [-2.0, 0, 0])
    from pocketpacs.images.windows import window_presets

    return Volume(array=arr, affine_lps=aff, spacing=(0.8, 0.5, 2.0), modality="MR",
                  window_presets=window_presets(arr, "MR", [(10.0, 20.0)], True))


@pytest.mark.parametrize("four_d", [False, True])
def test_nifti_voxels_land_at_the_same_world_points(tmp_path, four_d):
    v = small_volume(four_d)
    out = export_nifti(v, tmp_path / "v.nii.gz")
    img = nib.load(out[0])
    data = np.asanyarray(img.dataobj)
    assert img.header.get_sform(coded=True)[1] == 1 and img.header.get_qform(coded=True)[1] == 1
    k, r, c = v.array.shape[-3:]
    for kk, rr, cc in [(0, 0, 0), (k - 1, 1, 3), (2, r - 1, c - 1)]:
        world_dicom = lps_to_ras(v.affine_lps) @ [cc, rr, kk, 1]
        ijk = np.linalg.solve(img.affine, world_dicom)
        i, j, kk2 = np.rint(ijk[:3]).astype(int)
        np.testing.assert_allclose(ijk[:3], [i, j, kk2], atol=1e-6)
        got = data[i, j, kk2, 1] if four_d else data[i, j, kk2]
        want = v.array[1, kk, rr, cc] if four_d else v.array[kk, rr, cc]
        assert got == want


def test_numbered_files_when_split():
    assert stack_paths("a/out.nii.gz", 1) == ["a/out.nii.gz"]
    assert stack_paths("a/out.nii.gz", 2) == ["a/out_1.nii.gz", "a/out_2.nii.gz"]
    assert stack_paths("x.nii", 3)[2] == "x_3.nii"


def test_png_and_report_and_thumbs(tmp_path):
    v = small_volume()
    p = export_png(v, tmp_path / "s.png", 3, center=10.0, width=20.0)
    img = png_decode(Path(p).read_bytes())
    assert img.shape == (4, 5) and img.dtype == np.uint8
    from pocketpacs.native.reference import window_u8

    np.testing.assert_array_equal(img, window_u8(v.array[3], 10.0, 20.0))
    t = thumbnail(v, 2)
    assert max(t.shape) <= 2
    assert png_decode(thumbnail_png(v)).shape == thumbnail(v).shape
    rep = AssemblyReport(n_files=1, notes=["x"])
    d = json.loads(Path(write_report_json(rep, tmp_path / "r.json")).read_text())
    assert d["notes"] == ["x"]


# ---------------------------------------------------------------- PNG through an independent decoder
def pillow_decode(data: bytes):
    """Decode PNG bytes with Pillow (an independent decoder): ``(mode, array)``."""
    import io

    Image = peer("PIL.Image")
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        im.load()
        return im.mode, np.asarray(im)


@pytest.mark.parametrize("shape,mode", [((1, 1), "L"), ((7, 3), "L"), ((33, 64), "L"),
                                        ((5, 9, 3), "RGB"), ((16, 1, 3), "RGB"),
                                        ((6, 11, 4), "RGBA")])
def test_png_encode_pixels_equal_pillows_decode(shape, mode):
    """Every layout png_encode writes (8-bit grey, RGB, RGBA; it writes no
    16-bit PNG), full 0..255 range, read back by Pillow: identical values."""
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img.flat[0], img.flat[-1] = 0, 255
    got_mode, got = pillow_decode(png_encode(img))
    assert got_mode == mode
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, img)
    # a strided (non-contiguous) view is written as its values
    view = np.concatenate([img, img], axis=1)[:, ::2]
    np.testing.assert_array_equal(pillow_decode(png_encode(view))[1], view)


def test_png_encode_refuses_what_it_cannot_write():
    for bad in (np.zeros((4, 4), np.uint16), np.zeros((4, 4, 2), np.uint8), np.zeros(4, np.uint8)):
        with pytest.raises(ExportError):
            png_encode(bad)


def test_export_png_and_thumbnail_read_back_by_pillow(tmp_path):
    v = small_volume()
    p = export_png(v, tmp_path / "s.png", 2, center=30.0, width=50.0)
    mode, got = pillow_decode(Path(p).read_bytes())
    from pocketpacs.native.reference import window_u8

    assert mode == "L"
    np.testing.assert_array_equal(got, window_u8(v.array[2], 30.0, 50.0))
    mode, got = pillow_decode(thumbnail_png(v))
    assert mode == "L"
    np.testing.assert_array_equal(got, thumbnail(v))


def test_export_png_of_a_colour_volume_read_back_by_pillow(tmp_path):
    rgb = np.random.default_rng(9).integers(0, 256, (3, 6, 7, 3), dtype=np.uint8)
    rep = StackReport(index=0, kind="volume", shape=list(rgb.shape), n_frames=3,
                      key={"samples": 3})
    v = Volume(array=rgb, affine_lps=np.eye(4), spacing=(1.0, 1.0, 1.0), modality="OT",
               report=rep)
    assert v.samples == 3 and not v.is_4d
    mode, got = pillow_decode(Path(export_png(v, tmp_path / "c.png", 1)).read_bytes())
    assert mode == "RGB"
    np.testing.assert_array_equal(got, rgb[1])


@pytest.mark.corpus
def test_corpus_nifti_matches_dcm2niix_bit_for_bit(tmp_path, corpus):
    """GE fMRI (4D, 150 files): data and affine identical to the upstream dcm2niix NIfTI."""
    d = corpus / "dcm_qa_nih" / "In" / "20180918GE" / "mr_0004"
    m = json.loads((corpus / "MANIFEST.shared.json").read_text())
    s = next(s for st in m["sets"] for s in st["series"] if s["dir"] == "In/20180918GE/mr_0004")
    ref = s["expected"]["reference_volumes"][0]
    sv = assemble_series(dicom_files_in(d))
    out = export_nifti(sv, tmp_path / "ge.nii.gz", report=True)
    img = nib.load(out[0])
    data = np.ascontiguousarray(np.asanyarray(img.dataobj))
    assert list(img.shape) == ref["shape"]
    assert hashlib.sha256(data.tobytes()).hexdigest() == ref["data_sha256_unscaled"]
    np.testing.assert_allclose(img.affine, ref["affine_RAS"], atol=1e-3)
    rep = json.loads((tmp_path / "ge.json").read_text())
    assert rep["stacks"][0]["n_volumes"] == 10
    assert out == [str(tmp_path / "ge.nii.gz"), str(tmp_path / "ge.json")]   # the report is listed as written


def test_written_files_are_private_and_name_the_file_that_failed(tmp_path):
    """Missing folders 0700 and new files 0600 (NIfTI, PNG, JSON report); a full disk raises an
    OSError that names the file (issue 13)."""
    import errno
    import os
    import stat

    from conftest import require_system

    vol = small_volume()
    old = os.umask(0)
    try:
        names = export_nifti(vol, tmp_path / "a" / "b" / "v.nii.gz", report=True)
        assert [stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "a", tmp_path / "a" / "b", names[0])] == \
            [0o700, 0o700, 0o600]
        export_png(vol, tmp_path / "c" / "s.png")
        write_report_json({"stacks": []}, tmp_path / "c" / "r.json")
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in tmp_path.rglob("*")}
    assert modes == {"a": 0o700, "a/b": 0o700, "a/b/v.nii.gz": 0o600, "a/b/v.json": 0o600,
                     "c": 0o700, "c/s.png": 0o600, "c/r.json": 0o600}
    assert np.asarray(nib.load(names[0]).dataobj).shape == (5, 4, 6)
    require_system(os.path.exists("/dev/full"), "/dev/full (a device whose writes fail with ENOSPC)")
    for write in (lambda p: export_png(vol, p), lambda p: export_nifti(vol, p),
                  lambda p: write_report_json({"stacks": []}, p)):
        link = tmp_path / "full.nii"
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/full")
        with pytest.raises(OSError) as e:
            write(link)
        assert e.value.errno == errno.ENOSPC and e.value.filename == str(link)
