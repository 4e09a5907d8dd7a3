"""Small DICOM file writer for the archive tests (pydicom, in the test process).

The archive tests need folders of real DICOM files with chosen patient,
study and series attributes; this writes them with pydicom so the files are
independent of PocketPACS' own parser.  Pixel data is tiny by default.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


def dataset(*, patient_name="Doe^John", patient_id="PID1", birth_date="19700101",
            study_uid="1.2.826.0.1.1", series_uid="1.2.826.0.1.1.1", sop_uid="1.2.826.0.1.1.1.1",
            modality="CT", study_date="20200102", study_desc="", series_desc="",
            accession="", series_number=1, instance_number=1, rows=4, cols=4,
            z=0.0, charset=None, extra=None) -> Dataset:
    """Return a minimal image dataset with the given attributes."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.SOPClassUID = MR_IMAGE if modality == "MR" else CT_IMAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession
    ds.Modality = modality
    ds.Manufacturer = "ACME"
    ds.StudyDescription = study_desc
    ds.SeriesDescription = series_desc
    if patient_name is not None:
        ds.PatientName = patient_name
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [0.5, 0.5]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    ds.PixelData = (np.arange(rows * cols, dtype=np.uint16) + instance_number).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """Encode a dataset as a DICOM file (preamble + meta)."""
    bio = io.BytesIO()
    ds.save_as(bio, enforce_file_format=True)
    return bio.getvalue()


def write(path: os.PathLike | str, **attrs) -> Path:
    """Write one file; ``attrs`` as for :func:`dataset`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(to_bytes(dataset(**attrs)))
    return p


def write_series(folder: os.PathLike | str, n: int, *, series_uid: str, prefix: str = "IM",
                 **attrs) -> list[Path]:
    """Write ``n`` slices of one series into ``folder``; SOP UIDs ``<series>.<i>``."""
    out = []
    for i in range(1, n + 1):
        out.append(write(Path(folder) / f"{prefix}{i:05d}.dcm", series_uid=series_uid,
                         sop_uid=f"{series_uid}.{i}", instance_number=i, z=float(i), **attrs))
    return out


def write_tree(root: os.PathLike | str, *, patients: int = 2, studies: int = 2, series: int = 2,
               slices: int = 3, rows: int = 4, cols: int = 4, seed: int = 0) -> int:
    """Write a small patient/study/series tree; return the number of files.

    Uses one template per series and patches only the per-slice values, so
    thousands of files are written quickly.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    n = 0
    for p in range(patients):
        for s in range(studies):
            for r in range(series):
                study_uid = f"1.2.826.0.2.{seed}.{p}.{s}"
                series_uid = f"{study_uid}.{r}"
                ds = dataset(patient_name=f"Patient{p}^Test", patient_id=f"ID{p:04d}",
                             birth_date=f"19{50 + p % 50:02d}0101", study_uid=study_uid,
                             series_uid=series_uid, modality=("CT", "MR")[r % 2],
                             study_date=f"20{10 + s:02d}0{1 + int(rng.integers(0, 9))}15",
                             study_desc=f"Study {s}", series_desc=f"Series {r}",
                             accession=f"A{p}{s}", series_number=r + 1, rows=rows, cols=cols)
                folder = root / f"p{p}" / f"s{s}" / f"r{r}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(1, slices + 1):
                    ds.SOPInstanceUID = f"{series_uid}.{i}"
                    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                    ds.InstanceNumber = i
                    ds.ImagePositionPatient = [0.0, 0.0, float(i)]
                    (folder / f"IM{i:05d}").write_bytes(to_bytes(ds))
                    n += 1
    return n
