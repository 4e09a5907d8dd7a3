"""Diffusion series show their b-values as the 4th axis (issue 12, "4D").

A DTI/DWI series' volumes differ by diffusion b-value, given by the standard
Diffusion b-value (0018,9087) or, as dcm2niix reads them, by Siemens
(0019,100C), GE (0043,1039) or Philips (2001,1003) private elements.  The
series reader's stack and the viewer's header (``volumes``) say axis
"b-value" with the values, for slices read one by one (synthetic files) and
for Siemens mosaics (nibabel's ``siemens_dwi_0/1000.dcm.gz`` in the corpus);
before, they said "time"/"volume".  A file's private b-value counts only in
files of that manufacturer; a 4D series without b-values keeps its axis.
"""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from pocketpacs.series import SeriesReader
from pocketpacs.ui.sources import DicomSeriesSource

MR = "1.2.840.10008.5.1.4.1.1.4"
BVALUES = [0.0, 500.0, 1000.0]


def _set_bvalue(ds: Dataset, where: str, b: float) -> None:
    if where == "standard":
        ds.DiffusionBValue = b
    elif where == "siemens":
        ds.Manufacturer = "SIEMENS"
        ds.add_new(0x00190010, "LO", "SIEMENS MR HEADER")
        ds.add_new(0x0019100C, "IS", str(int(b)))
    elif where == "ge":
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
        ds.add_new(0x00431039, "IS", [str(int(b)), "8", "0", "0"])
    elif where == "philips":
        ds.Manufacturer = "Philips Medical Systems"
        ds.add_new(0x20010010, "LO", "Philips Imaging DD 001")
        ds.add_new(0x20011003, "FL", float(b))
    elif where == "ge-tag-in-siemens":
        ds.Manufacturer = "SIEMENS"
        ds.add_new(0x00430010, "LO", "GEMS_PARM_01")
        ds.add_new(0x00431039, "IS", [str(int(b)), "8", "0", "0"])
    elif where != "none":
        raise ValueError(where)


def write_dwi(folder, where: str, bvalues=BVALUES, slices: int = 4, implicit: bool = False) -> list[str]:
    """Single-frame MR files: ``slices`` positions x one volume per b-value."""
    folder.mkdir(parents=True, exist_ok=True)
    suid, paths = generate_uid(), []
    for v, b in enumerate(bvalues):
        for k in range(slices):
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = MR
            ds.SOPClassUID = MR
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesInstanceUID = suid
            ds.Modality = "MR"
            ds.AcquisitionNumber = v + 1
            ds.InstanceNumber = v * slices + k + 1
            ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [2.0, 2.0]
            ds.Rows, ds.Columns = 8, 10
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            _set_bvalue(ds, where, b)
            ds.PixelData = np.full((8, 10), 100 + 10 * v + k, np.uint16).tobytes()
            p = folder / f"v{v}_s{k}.dcm"
            ds.save_as(p, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
            paths.append(str(p))
    return paths


@pytest.mark.parametrize("where,implicit", [("standard", False), ("siemens", False), ("ge", False),
                                            ("philips", False), ("philips", True), ("siemens", True)])
def test_dwi_volumes_are_along_b_values(tmp_path, where, implicit):
    paths = write_dwi(tmp_path / "dwi", where, implicit=implicit)
    reader = SeriesReader(paths)
    vols = reader.stacks[0].volumes
    assert (vols.count, vols.axis, vols.values) == (3, "b-value", BVALUES), (where, vols)
    assert "3 b-values" in reader.stacks[0].label
    hdr = DicomSeriesSource(paths).header().to_json()        # what the page gets
    assert hdr["volumes"]["axis"] == "b-value" and hdr["volumes"]["values"] == BVALUES


@pytest.mark.parametrize("where", ["none", "ge-tag-in-siemens"])
def test_4d_without_b_values_keeps_its_axis(tmp_path, where):
    paths = write_dwi(tmp_path / "fmri", where)
    vols = SeriesReader(paths).stacks[0].volumes
    assert vols.count == 3 and vols.axis != "b-value" and vols.axis in ("time", "volume"), vols


def test_equal_b_values_are_not_an_axis(tmp_path):
    """Every volume at b=1000 (repeats): what orders them stays the axis."""
    paths = write_dwi(tmp_path / "rep", "standard", bvalues=[1000.0] * 3)
    vols = SeriesReader(paths).stacks[0].volumes
    assert vols.count == 3 and vols.axis != "b-value", vols


def test_corpus_siemens_dwi_mosaics_show_b_0_and_1000(corpus):
    d = corpus / "nibabel_test_data" / "dicom" / "nicom_tests_data"
    files = [str(d / "siemens_dwi_0.dcm.gz"), str(d / "siemens_dwi_1000.dcm.gz")]
    if not all((d / f).exists() for f in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz")):
        pytest.skip("the corpus has no Siemens DWI mosaics")
    reader = SeriesReader(files)
    vols = reader.stacks[0].volumes
    assert (vols.count, vols.axis, vols.values) == (2, "b-value", [0.0, 1000.0]), vols
    hdr = DicomSeriesSource.of_reader(reader).header().to_json()
    assert hdr["volumes"]["axis"] == "b-value" and hdr["volumes"]["values"] == [0.0, 1000.0]
