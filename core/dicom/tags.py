"""The archive's tag set: the one table of DICOM attributes PocketPACS indexes.

Every other module (the native header parser, the pydicom fallback, the
archive records, the differential tests) reads this table; nothing else lists
tags.  Entries are sorted by tag so the parser can match elements in one pass.

Columns
-------
keyword : str
    pydicom keyword.
tag : int
    ``group << 16 | element``.
vr : str
    The dictionary VR (used for implicit VR files).
level : str
    ``meta``, ``patient``, ``study``, ``series``, ``instance`` or ``image``.
nvals : int
    For numeric attributes (US, IS, DS), how many values the parser keeps
    (0 for text attributes).
"""
from __future__ import annotations

from typing import NamedTuple


class TagSpec(NamedTuple):
    keyword: str
    tag: int
    vr: str
    level: str
    nvals: int = 0


def _t(group: int, element: int) -> int:
    return (group << 16) | element


TAGS: tuple[TagSpec, ...] = (
    TagSpec("MediaStorageSOPClassUID", _t(0x0002, 0x0002), "UI", "meta"),
    TagSpec("MediaStorageSOPInstanceUID", _t(0x0002, 0x0003), "UI", "meta"),
    TagSpec("TransferSyntaxUID", _t(0x0002, 0x0010), "UI", "meta"),
    TagSpec("SpecificCharacterSet", _t(0x0008, 0x0005), "CS", "instance"),
    TagSpec("ImageType", _t(0x0008, 0x0008), "CS", "image"),
    TagSpec("SOPClassUID", _t(0x0008, 0x0016), "UI", "instance"),
    TagSpec("SOPInstanceUID", _t(0x0008, 0x0018), "UI", "instance"),
    TagSpec("StudyDate", _t(0x0008, 0x0020), "DA", "study"),
    TagSpec("SeriesDate", _t(0x0008, 0x0021), "DA", "series"),
    TagSpec("AcquisitionDate", _t(0x0008, 0x0022), "DA", "image"),
    TagSpec("ContentDate", _t(0x0008, 0x0023), "DA", "image"),
    TagSpec("StudyTime", _t(0x0008, 0x0030), "TM", "study"),
    TagSpec("SeriesTime", _t(0x0008, 0x0031), "TM", "series"),
    TagSpec("AcquisitionTime", _t(0x0008, 0x0032), "TM", "image"),
    TagSpec("AccessionNumber", _t(0x0008, 0x0050), "SH", "study"),
    TagSpec("Modality", _t(0x0008, 0x0060), "CS", "series"),
    TagSpec("Manufacturer", _t(0x0008, 0x0070), "LO", "series"),
    TagSpec("InstitutionName", _t(0x0008, 0x0080), "LO", "study"),
    TagSpec("ReferringPhysicianName", _t(0x0008, 0x0090), "PN", "study"),
    TagSpec("StationName", _t(0x0008, 0x1010), "SH", "series"),
    TagSpec("StudyDescription", _t(0x0008, 0x1030), "LO", "study"),
    TagSpec("SeriesDescription", _t(0x0008, 0x103E), "LO", "series"),
    TagSpec("PerformingPhysicianName", _t(0x0008, 0x1050), "PN", "series"),
    TagSpec("ManufacturerModelName", _t(0x0008, 0x1090), "LO", "series"),
    TagSpec("PatientName", _t(0x0010, 0x0010), "PN", "patient"),
    TagSpec("PatientID", _t(0x0010, 0x0020), "LO", "patient"),
    TagSpec("PatientBirthDate", _t(0x0010, 0x0030), "DA", "patient"),
    TagSpec("PatientSex", _t(0x0010, 0x0040), "CS", "patient"),
    TagSpec("BodyPartExamined", _t(0x0018, 0x0015), "CS", "series"),
    TagSpec("SliceThickness", _t(0x0018, 0x0050), "DS", "image", 1),
    TagSpec("EchoTime", _t(0x0018, 0x0081), "DS", "image", 1),
    TagSpec("EchoNumbers", _t(0x0018, 0x0086), "IS", "image", 1),
    TagSpec("ProtocolName", _t(0x0018, 0x1030), "LO", "series"),
    TagSpec("GantryDetectorTilt", _t(0x0018, 0x1120), "DS", "image", 1),
    TagSpec("StudyInstanceUID", _t(0x0020, 0x000D), "UI", "study"),
    TagSpec("SeriesInstanceUID", _t(0x0020, 0x000E), "UI", "series"),
    TagSpec("StudyID", _t(0x0020, 0x0010), "SH", "study"),
    TagSpec("SeriesNumber", _t(0x0020, 0x0011), "IS", "series", 1),
    TagSpec("AcquisitionNumber", _t(0x0020, 0x0012), "IS", "image", 1),
    TagSpec("InstanceNumber", _t(0x0020, 0x0013), "IS", "instance", 1),
    TagSpec("ImagePositionPatient", _t(0x0020, 0x0032), "DS", "image", 3),
    TagSpec("ImageOrientationPatient", _t(0x0020, 0x0037), "DS", "image", 6),
    TagSpec("FrameOfReferenceUID", _t(0x0020, 0x0052), "UI", "series"),
    TagSpec("TemporalPositionIdentifier", _t(0x0020, 0x0100), "IS", "image", 1),
    TagSpec("SliceLocation", _t(0x0020, 0x1041), "DS", "image", 1),
    TagSpec("SamplesPerPixel", _t(0x0028, 0x0002), "US", "image", 1),
    TagSpec("PhotometricInterpretation", _t(0x0028, 0x0004), "CS", "image"),
    TagSpec("PlanarConfiguration", _t(0x0028, 0x0006), "US", "image", 1),
    TagSpec("NumberOfFrames", _t(0x0028, 0x0008), "IS", "image", 1),
    TagSpec("Rows", _t(0x0028, 0x0010), "US", "image", 1),
    TagSpec("Columns", _t(0x0028, 0x0011), "US", "image", 1),
    TagSpec("PixelSpacing", _t(0x0028, 0x0030), "DS", "image", 2),
    TagSpec("BitsAllocated", _t(0x0028, 0x0100), "US", "image", 1),
    TagSpec("BitsStored", _t(0x0028, 0x0101), "US", "image", 1),
    TagSpec("HighBit", _t(0x0028, 0x0102), "US", "image", 1),
    TagSpec("PixelRepresentation", _t(0x0028, 0x0103), "US", "image", 1),
    TagSpec("WindowCenter", _t(0x0028, 0x1050), "DS", "image", 1),
    TagSpec("WindowWidth", _t(0x0028, 0x1051), "DS", "image", 1),
    TagSpec("RescaleIntercept", _t(0x0028, 0x1052), "DS", "image", 1),
    TagSpec("RescaleSlope", _t(0x0028, 0x1053), "DS", "image", 1),
)

#: Pixel Data, recorded as an offset/length rather than a value.
PIXEL_DATA_TAG = _t(0x7FE0, 0x0010)

KEYWORDS: tuple[str, ...] = tuple(t.keyword for t in TAGS)
INDEX: dict[str, int] = {t.keyword: i for i, t in enumerate(TAGS)}
BY_TAG: dict[int, TagSpec] = {t.tag: t for t in TAGS}

#: Text VRs whose values are decoded with the Specific Character Set.
CHARSET_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC"})
#: Numeric VRs the parser converts itself.
NUMERIC_VRS = frozenset({"US", "IS", "DS"})

#: Start column of each tag in the numeric value matrix (-1 for text tags) and
#: its number of columns, as lists (the arrays below are made from them).
_NUM_START: list[int] = []
_NUM_COUNT: list[int] = []
_col = 0
for _t_ in TAGS:
    _NUM_START.append(_col if _t_.nvals else -1)
    _NUM_COUNT.append(_t_.nvals)
    _col += _t_.nvals
NUM_COLUMNS = _col
del _col, _t_

# Arrays handed to the native parser (module-level constants, read-only):
# ``TAG_ARRAY``, ``VR_ARRAY``, ``NUM_START`` and ``NUM_COUNT`` are made on
# first use (:func:`__getattr__`), so that reading this table does not import
# NumPy (the archive-reading commands start without it, issue 16).
_ARRAYS: dict[str, tuple[list[int], str]] = {
    "TAG_ARRAY": ([t.tag for t in TAGS], "uint32"),
    "VR_ARRAY": ([(ord(t.vr[0]) << 8) | ord(t.vr[1]) for t in TAGS], "uint16"),
    "NUM_START": (_NUM_START, "int32"),
    "NUM_COUNT": (_NUM_COUNT, "int32"),
}


def __getattr__(name: str):
    """``TAG_ARRAY``, ``VR_ARRAY``, ``NUM_START``, ``NUM_COUNT`` as NumPy arrays, made once."""
    spec = _ARRAYS.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import numpy as np

    arr = np.array(spec[0], dtype=spec[1])
    globals()[name] = arr
    return arr


assert _ARRAYS["TAG_ARRAY"][0] == sorted(_ARRAYS["TAG_ARRAY"][0]), "TAGS must be sorted by tag"
assert len(set(KEYWORDS)) == len(KEYWORDS)



