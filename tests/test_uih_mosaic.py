"""UIH ``VFRAME`` mosaics (fMRI/DTI grids) assemble as dcm2niix reads them (issue 12).

No UIH file is in the corpus: the files are written here with pydicom from a
known world function.  Each voxel's value is ``f(x, y, z)`` of the world
position the UIH conventions give it (as dcm2niix and GDCM read them): the
slice count in (0065,1050) "Number Of Images In Grid" under the private
creator "Image Private Header"; tiles fill a grid of ``ceil(sqrt(n))``
columns and ``ceil(n / columns)`` rows, row by row; Image Position (Patient)
is the first tile's first voxel (no Siemens mosaic-size correction); each
tile's position in the VFrame Sequence (0065,1051).  So the expected affine
follows from first principles, and every voxel of the assembled volume must
hold ``f`` of the position the affine gives it.
"""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from pocketpacs.images.volume import assemble_series

ROWS, COLS = 6, 8           # one tile
PS = (2.0, 1.5)             # Pixel Spacing: row spacing (between rows), column spacing
DZ = 3.0


def world_value(p: np.ndarray, t: int = 0) -> np.ndarray:
    """An integer function of the world position (mm) that no two voxels here share."""
    return np.round(p[..., 0] * 7 + p[..., 1] * 3 + p[..., 2] * 11 + 1000 * t).astype(np.int64) + 20000


def rotation() -> np.ndarray:
    a, b = np.deg2rad(20.0), np.deg2rad(-35.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def write_vframe(path, n: int, t: int = 0, descending: bool = False, with_seq: bool = True,
                 series_uid: str = "1.2.826.0.1.3680043.99.12.1", with_count: bool = True):
    """A UIH VFRAME grid of *n* slices (volume *t* of a run) and its tiles' true positions."""
    R = rotation()
    rdir, cdir = R[:, 0], R[:, 1]
    normal = np.cross(rdir, cdir)
    origin = np.array([-40.0, 25.0, 60.0])
    step = normal * DZ * (-1 if descending else 1)
    ncol = int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    img = np.zeros((nrow * ROWS, ncol * COLS), np.uint16)
    positions = []
    rr, cc = np.meshgrid(np.arange(ROWS), np.arange(COLS), indexing="ij")
    for k in range(n):
        ipp = origin + k * step
        positions.append(ipp)
        world = ipp + cc[..., None] * PS[1] * rdir + rr[..., None] * PS[0] * cdir
        r0, c0 = (k // ncol) * ROWS, (k % ncol) * COLS
        img[r0:r0 + ROWS, c0:c0 + COLS] = world_value(world, t)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.12"
    ds.SeriesInstanceUID = series_uid
    ds.PatientName, ds.PatientID, ds.Modality, ds.Manufacturer = "Uih^Grid", "UIH1", "MR", "UIH"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "VFRAME"]
    ds.InstanceNumber, ds.AcquisitionNumber = t + 1, t + 1
    ds.ImagePositionPatient = [f"{v:.6f}" for v in positions[0]]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([rdir, cdir])]
    ds.PixelSpacing = [str(PS[0]), str(PS[1])]
    ds.SliceThickness = str(DZ)
    ds.SpacingBetweenSlices = str(DZ)
    ds.Rows, ds.Columns = img.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    blk = ds.private_block(0x0065, "Image Private Header", create=True)
    if with_count:
        blk.add_new(0x50, "DS", str(n))
    if with_seq:
        items = []
        for p in positions:
            it = Dataset()
            it.ImagePositionPatient = [f"{v:.6f}" for v in p]
            items.append(it)
        blk.add_new(0x51, "SQ", Sequence(items))
    ds.PixelData = img.tobytes()
    ds.save_as(path, enforce_file_format=True)
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2], affine[:3, 3] = rdir * PS[1], cdir * PS[0], step, positions[0]
    return affine


def voxel_values_match(vol_array: np.ndarray, affine: np.ndarray, t: int = 0) -> bool:
    k, r, c = np.meshgrid(*[np.arange(s) for s in vol_array.shape], indexing="ij")
    pts = np.stack([c, r, k, np.ones_like(c)], -1) @ affine.T
    return bool(np.array_equal(vol_array.astype(np.int64), world_value(pts[..., :3], t)))


@pytest.mark.parametrize("n", [20, 7])      # 20: 5x4 tiles (256x320 in the example); 7: 3x3, two empty
def test_one_grid_is_a_volume_with_dcm2niix_geometry(tmp_path, n):
    want = write_vframe(tmp_path / "grid.dcm", n)
    sv = assemble_series([tmp_path / "grid.dcm"])
    assert len(sv.volumes) == 1
    vol = sv.volumes[0]
    assert vol.array.shape == (n, ROWS, COLS) and vol.kind == "volume"
    assert np.allclose(vol.affine_lps, want, atol=1e-4)
    assert np.allclose(vol.spacing, (PS[1], PS[0], DZ))
    assert voxel_values_match(vol.array, vol.affine_lps)
    assert any("UIH VFRAME grid" in note for note in vol.report.notes)


def test_descending_positions_are_stored_ascending_and_keep_every_voxel_in_place(tmp_path):
    write_vframe(tmp_path / "grid.dcm", 9, descending=True)
    vol = assemble_series([tmp_path / "grid.dcm"]).volumes[0]
    A = vol.affine_lps
    assert np.dot(np.cross(A[:3, 0], A[:3, 1]), A[:3, 2]) > 0        # ascending along the normal
    assert voxel_values_match(vol.array, A)


def test_without_the_vframe_sequence_the_normal_and_spacing_give_the_slices(tmp_path):
    want = write_vframe(tmp_path / "grid.dcm", 12, with_seq=False)
    vol = assemble_series([tmp_path / "grid.dcm"]).volumes[0]
    assert vol.array.shape == (12, ROWS, COLS)
    assert np.allclose(vol.affine_lps, want, atol=1e-4)
    assert voxel_values_match(vol.array, vol.affine_lps)


def test_several_grids_make_4d(tmp_path):
    for t in range(3):
        want = write_vframe(tmp_path / f"vol{t}.dcm", 20, t=t)
    vol = assemble_series(sorted(tmp_path.glob("*.dcm"))).volumes[0]
    assert vol.array.shape == (3, 20, ROWS, COLS) and vol.is_4d
    assert np.allclose(vol.affine_lps, want, atol=1e-4)
    for t in range(3):
        assert voxel_values_match(vol.array[t], vol.affine_lps, t)


def test_a_grid_without_its_slice_count_is_shown_tiled_with_the_reason(tmp_path):
    write_vframe(tmp_path / "grid.dcm", 6, with_seq=False, with_count=False)
    sv = assemble_series([tmp_path / "grid.dcm"])        # the stored image, tiled, said so
    (vol,) = sv.volumes
    assert vol.array.shape[0] == 1 and not sv.report.excluded
    assert any(n.startswith("1 mosaic file(s) shown as stored, tiled: the slices cannot be told apart (UIH VFRAME "
                            "without its slice count (0065,1050))") for n in vol.report.notes), vol.report.notes
    from pocketpacs.dicom.headers import parse_files
    from pocketpacs.images.assemblyreport import AssemblyReport
    from pocketpacs.images.seriesframes import frames_from_batch
    from pocketpacs.images.mosaic import assemble_mosaics

    p = str(tmp_path / "grid.dcm")
    fr = frames_from_batch([p], parse_files([p]))
    rep = AssemblyReport()
    assert fr.mosaics == [0] and assemble_mosaics([p], fr, [0], True, None, rep) is None
    assert rep.excluded[0]["reason"] == "mosaic geometry unreadable (UIH VFRAME without its slice count (0065,1050))"


def test_the_viewer_opens_a_uih_grid_as_export_assembles_it(tmp_path):
    from pocketpacs.ui.sources import DicomSeriesSource

    for t in range(2):
        write_vframe(tmp_path / f"vol{t}.dcm", 20, t=t)
    files = sorted(str(p) for p in tmp_path.glob("*.dcm"))
    vol = assemble_series(files).volumes[0]
    src = DicomSeriesSource(files)
    hdr = src.header()
    assert tuple(hdr.shape) == (20, ROWS, COLS)
    assert np.allclose(hdr.affine_lps, vol.affine_lps)
    assert hdr.volumes["count"] == 2                  # every volume, one after the other
    real = src.whole().astype(np.float64) * hdr.slope + hdr.intercept
    assert np.array_equal(real.reshape((2,) + real.shape[:0] + (20, ROWS, COLS)),
                          vol.array.astype(np.float64))
