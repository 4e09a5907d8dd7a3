"""Open Other: NIfTI/Analyze/MGH, JPEG 2000, PNG/JPEG, DICOM folders, clear errors."""
from __future__ import annotations

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
        np.testing.assert_array_equal(png_decode(data), img)
        p = tmp_path / "x.png"
        p.write_bytes(data)
        v = open_other(p)[0]
        np.testing.assert_array_equal(v.array[0], img)
        assert v.report.notes and "1 mm" in v.report.notes[0]


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
    # the built-in reader's words, or Pillow's when it is installed
    (b"\x89PNG\r\n\x1a\nbroken", "bad.bin: (PNG without IHDR|not readable as png)")])
def test_unreadable_files_say_why(tmp_path, content, msg):
    p = tmp_path / "bad.bin"
    p.write_bytes(content)
    with pytest.raises(OpenOtherError, match=msg):
        open_other(p)
    if content.startswith(b"\x89PNG"):
        with pytest.raises(OpenOtherError, match="PNG without IHDR"):
            png_decode(content)
    with pytest.raises(OpenOtherError, match="no such file"):
        open_other(tmp_path / "missing.nii")
