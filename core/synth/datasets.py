"""The pydicom data sets of a planned series.

:func:`_series_template` holds everything of a single-frame file but the
per-slice elements and the pixels, :func:`_slice_dataset` a complete
single-frame file (the reference that the fast writer of
:mod:`pocketpacs.synth.writer` equals byte for byte) and
:func:`_enhanced_dataset` an Enhanced CT/MR multi-frame file.  The pixels
(:func:`_stored_frame`, :func:`_pixel_value`) sample the phantom.
"""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence

from .dicom_values import (
    _COMPRESSED_CODECS,
    _TAG_PIXEL_DATA,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    _tm,
    _uid,
)
from .encoders import _encode_frame
from .phantom import _stored_slice
from .plan import _ORIENT_CODE, _Series


def _file_meta(sop_class: str, sop_instance: str, ts: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _set_undefined_lengths(ds: Dataset) -> None:
    """Mark every sequence and item of *ds* (recursively) as undefined length."""
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
                _set_undefined_lengths(item)


def _common_dataset(s: _Series) -> Dataset:
    """Patient, study, series, equipment and image pixel attributes of a series."""
    st, pat = s.study, s.study.patient
    ds = Dataset()
    ds.SpecificCharacterSet = pat.charset
    ds.SOPClassUID = s.sop_class
    ds.StudyDate = st.date
    ds.SeriesDate = st.date
    ds.ContentDate = st.date
    ds.StudyTime = _tm(st.time_s)
    ds.SeriesTime = _tm(s.time_s)
    ds.ContentTime = _tm(s.time_s)
    ds.AccessionNumber = st.accession
    ds.Modality = s.modality
    ds.Manufacturer = s.manufacturer
    ds.InstitutionName = st.institution
    ds.ReferringPhysicianName = st.referring
    ds.StationName = s.station
    ds.StudyDescription = st.description
    ds.SeriesDescription = s.description
    ds.PerformingPhysicianName = s.performing
    ds.ManufacturerModelName = s.model
    ds.PatientName = pat.name
    ds.PatientID = pat.patient_id
    ds.PatientBirthDate = pat.birth_date
    ds.PatientSex = pat.sex
    age = int(st.date[:4]) - int(pat.birth_date[:4]) - (st.date[4:] < pat.birth_date[4:])
    ds.PatientAge = f"{max(age, 0):03d}Y"
    ds.BodyPartExamined = st.body_part
    ds.DeviceSerialNumber = f"SN{s.index % 97:04d}"
    ds.SoftwareVersions = "synth 1.0"
    ds.ProtocolName = s.protocol
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = st.uid
    ds.SeriesInstanceUID = s.uid
    ds.StudyID = st.study_id
    ds.SeriesNumber = str(s.number)
    ds.FrameOfReferenceUID = s.frame_of_reference
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = s.rows
    ds.Columns = s.cols
    ds.BitsAllocated = 16
    ds.BitsStored = s.bits_stored
    ds.HighBit = s.bits_stored - 1
    ds.PixelRepresentation = s.pixel_representation
    if s.private_block:
        block = ds.private_block(0x0009, "POCKETPACS SYNTH", create=True)
        block.add_new(0x01, "LO", "synthetic phantom")
        block.add_new(0x02, "DS", "1.5")
    return ds


def _series_template(s: _Series) -> Dataset:
    """Everything of a single-frame file except the per-slice elements and Pixel Data."""
    ds = _common_dataset(s)
    derived = s.orientation != "axial" and s.modality == "CT"
    ds.ImageType = (["DERIVED", "SECONDARY", "REFORMATTED"] if derived
                    else ["ORIGINAL", "PRIMARY", "AXIAL" if s.orientation == "axial" else "OTHER"])
    ds.AcquisitionDate = s.study.date
    code = Dataset()
    code.CodeValue = "ZZ" + str(s.study.index % 1000)
    code.CodingSchemeDesignator = "99SYNTH"
    code.CodeMeaning = s.study.description
    ds.ProcedureCodeSequence = DicomSequence([code])
    if s.procedure_undefined_length:
        _set_undefined_lengths(ds)
    ds.SliceThickness = s.thickness
    if s.modality == "CT":
        ds.KVP = "120"
        ds.ConvolutionKernel = s.description.split()[2] if len(s.description.split()) > 2 else "B30f"
        ds.GantryDetectorTilt = "0"
        ds.RescaleType = "HU"
    else:
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = "500" if s.description.startswith("T1") else "4000"
        ds.EchoTime = "12" if s.description.startswith("T1") else "95"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = "3" if "3T" in s.model else "1.5"
        ds.SpacingBetweenSlices = s.step
    ds.AcquisitionNumber = "1"
    ds.ImageOrientationPatient = s.iop
    ds.PixelSpacing = s.spacing
    ds.WindowCenter = s.window_center if len(s.window_center) > 1 else s.window_center[0]
    ds.WindowWidth = s.window_width if len(s.window_width) > 1 else s.window_width[0]
    ds.RescaleIntercept = s.intercept
    ds.RescaleSlope = s.slope
    return ds


def _slice_values(s: _Series, i: int) -> tuple[str, str, str, list[str], str]:
    """(SOPInstanceUID, AcquisitionTime, InstanceNumber, IPP, SliceLocation) of instance *i*."""
    return (s.sop_uids[i], _tm(s.time_s + 5.0 + 0.25 * i), str(i + 1), s.positions[i],
            s.slice_locations[i])


def _stored_frame(s: _Series, i: int) -> np.ndarray:
    return _stored_slice([float(v) for v in s.positions[i]], [float(v) for v in s.iop],
                         [float(v) for v in s.spacing], s.rows, s.cols, float(s.slope),
                         float(s.intercept), s.bits_stored, s.pixel_representation)


def _pixel_value(s: _Series, frames: list[np.ndarray]) -> bytes:
    """Pixel Data value: native little-endian words or encapsulated fragments."""
    if s.codec in _COMPRESSED_CODECS:
        return encapsulate([_encode_frame(s, f) for f in frames], has_bot=True)
    return b"".join(f.astype(f.dtype.newbyteorder("<"), copy=False).tobytes() for f in frames)


def _add_pixel_data(ds: Dataset, s: _Series, value: bytes) -> None:
    if s.codec in _COMPRESSED_CODECS:
        ds.add_new(_TAG_PIXEL_DATA, "OB", value)
        ds[_TAG_PIXEL_DATA].is_undefined_length = True
    else:
        ds.add_new(_TAG_PIXEL_DATA, "OW", value)


def _slice_dataset(s: _Series, i: int) -> Dataset:
    """The complete data set (with file meta) of instance *i* of a single-frame series.

    The fast writer produces exactly ``dcmwrite(..., enforce_file_format=True)``
    of this data set; the tests check that.
    """
    ds = _series_template(s)
    uid, acq, inst, ipp, loc = _slice_values(s, i)
    ds.SOPInstanceUID = uid
    ds.AcquisitionTime = acq
    ds.InstanceNumber = inst
    ds.ImagePositionPatient = ipp
    ds.SliceLocation = loc
    _add_pixel_data(ds, s, _pixel_value(s, [_stored_frame(s, i)]))
    ds.file_meta = _file_meta(s.sop_class, uid, s.ts)
    return ds


def _enhanced_dataset(s: _Series) -> Dataset:
    """The complete Enhanced CT/MR multi-frame data set of an enhanced series."""
    ds = _common_dataset(s)
    ct = s.modality == "CT"
    value3 = _ORIENT_CODE[s.orientation] if ct else "M"
    ds.ImageType = ["ORIGINAL", "PRIMARY", value3, "NONE"]
    ds.SOPInstanceUID = s.sop_uids[0]
    ds.AcquisitionDateTime = s.study.date + _tm(s.time_s)
    ds.InstanceNumber = "1"
    ds.ContentQualification = "PRODUCT"
    ds.NumberOfFrames = str(len(s.positions))
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.PixelPresentation = "MONOCHROME"
    if not ct:
        ds.ComplexImageComponent = "MAGNITUDE"
        ds.AcquisitionContrast = "T1" if s.description.startswith("T1") else (
            "T2" if s.description.startswith("T2") else "PROTON_DENSITY")
        ds.MagneticFieldStrength = "3" if "3T" in s.model else "1.5"
    else:
        ds.KVP = "120"

    dim_uid = _uid(b"", s.uid, "dimension-organization")
    org = Dataset()
    org.DimensionOrganizationUID = dim_uid
    ds.DimensionOrganizationSequence = DicomSequence([org])
    d1 = Dataset()
    d1.DimensionOrganizationUID = dim_uid
    d1.DimensionIndexPointer = 0x00209056  # Stack ID
    d1.FunctionalGroupPointer = 0x00209111  # Frame Content Sequence
    d2 = Dataset()
    d2.DimensionOrganizationUID = dim_uid
    d2.DimensionIndexPointer = 0x00209057  # In-Stack Position Number
    d2.FunctionalGroupPointer = 0x00209111
    ds.DimensionIndexSequence = DicomSequence([d1, d2])

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = s.spacing
    pm.SliceThickness = s.thickness
    pm.SpacingBetweenSlices = s.step
    shared.PixelMeasuresSequence = DicomSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = s.iop
    shared.PlaneOrientationSequence = DicomSequence([po])
    pvt = Dataset()
    pvt.RescaleIntercept = s.intercept
    pvt.RescaleSlope = s.slope
    pvt.RescaleType = "HU" if ct else "US"
    shared.PixelValueTransformationSequence = DicomSequence([pvt])
    voi = Dataset()
    voi.WindowCenter = s.window_center
    voi.WindowWidth = s.window_width
    shared.FrameVOILUTSequence = DicomSequence([voi])
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", value3, "NONE"]
    if ct:
        shared.CTImageFrameTypeSequence = DicomSequence([ft])
    else:
        shared.MRImageFrameTypeSequence = DicomSequence([ft])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    n = len(s.positions)
    for i, pos in enumerate(s.positions):
        item = Dataset()
        fc = Dataset()
        fc.FrameAcquisitionNumber = 1
        fc.FrameAcquisitionDateTime = s.study.date + _tm(s.time_s + 5.0 + 0.25 * i)
        fc.StackID = "1"
        # in-stack position 1 is at the low end of the stack along the normal
        in_stack = i + 1 if s.ascending else n - i
        fc.InStackPositionNumber = in_stack
        fc.DimensionIndexValues = [1, in_stack]
        item.FrameContentSequence = DicomSequence([fc])
        pp = Dataset()
        pp.ImagePositionPatient = pos
        item.PlanePositionSequence = DicomSequence([pp])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _set_undefined_lengths(ds)

    frames = [_stored_frame(s, i) for i in range(n)]
    _add_pixel_data(ds, s, _pixel_value(s, frames))
    ds.file_meta = _file_meta(s.sop_class, s.sop_uids[0], s.ts)
    return ds


def _dataset_bytes(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
