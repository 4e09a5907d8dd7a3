"""Export: NIfTI with dcm2niix's world geometry, PNG slices, JSON reports, thumbnails."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pocketpacs.images.affine import affine_from, lps_to_ras
from pocketpacs.images.assemblyreport import AssemblyReport
from pocketpacs.images.export import export_nifti, export_png, stack_paths, write_report_json
from pocketpacs.images.openother import png_decode
from pocketpacs.images.thumbs import thumbnail, thumbnail_png
from pocketpacs.images.volume import Volume, assemble_series, dicom_files_in

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


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


@pytest.mark.corpus
def test_corpus_nifti_matches_dcm2niix_bit_for_bit(tmp_path):
    """GE fMRI (4D, 150 files): data and affine identical to the upstream dcm2niix NIfTI."""
    d = CORPUS / "dcm_qa_nih" / "In" / "20180918GE" / "mr_0004"
    if not d.exists():
        pytest.skip("../shared/corpus is not present")
    m = json.loads((CORPUS / "MANIFEST.shared.json").read_text())
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
