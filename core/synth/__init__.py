"""Deterministic synthetic DICOM archive generator.

Writes a fake archive of CT and MR studies for tests, benchmarks and the
app's demo: single-frame CT/MR Image Storage series (explicit and implicit VR
little endian, JPEG 2000 lossless, RLE lossless and JPEG lossless SV1),
Enhanced CT/MR multi-frame files, and junk files (text, images, empty,
truncated DICOM, ``DICM`` followed by garbage), under shuffled,
non-informative file names.  A ``manifest.json`` at the output root records
what was written and is the ground truth for tests.

Everything is a function of the options: the same options give the same
file names and byte-identical files (UIDs are ``2.25.<int>`` with the integer
taken from a BLAKE2b hash of the seed, the options and the entity's index, so
archives made with different options never share UIDs).

Pixel data sample one 3D phantom defined in patient coordinates (LPS, mm)
at each pixel centre, so axial, coronal, sagittal and oblique series show the
same anatomy; :func:`phantom_hu` evaluates it, :func:`slice_points` gives the
pixel centres of a slice and :func:`expected_series_hu` the expected volume of
a manifest series.  Stored values are ``(HU - intercept) / slope`` exactly, so
the rescaled pixel values of every lossless series equal :func:`phantom_hu`.

Command line: ``python -m pocketpacs.synth OUT [--preset demo|bench|scale]
[options]`` (see ``--help``).

Manifest
--------
``manifest.json`` (UTF-8; fake patient data) holds:

``format``, ``version``, ``manifest_file``
    ``"pocketpacs-synth-manifest"``, 1, ``"manifest.json"`` (the manifest is
    itself a non-DICOM file in the output folder).
``options``
    The generation options (``seed``, sizes, fractions, ``nested``...).
``counts``
    ``files`` (DICOM + junk, manifest excluded), ``dicom_files``,
    ``junk_files``, ``patients``, ``studies``, ``series``,
    ``single_frame_series``, ``enhanced_series``.
``patients``
    ``patient_id``, ``patient_name``, ``birth_date``, ``sex``,
    ``specific_character_set``, ``studies`` (Study Instance UIDs).
``studies``
    ``study_instance_uid``, ``patient_id``, ``study_date``, ``study_time``,
    ``accession_number``, ``study_id``, ``study_description``, ``modality``,
    ``institution_name``, ``referring_physician_name``,
    ``body_part_examined``, ``series`` (Series Instance UIDs).
``series``
    ``series_instance_uid``, ``study_instance_uid``, ``patient_id``,
    ``kind`` (``single-frame`` or ``enhanced``), ``modality``,
    ``sop_class_uid``, ``transfer_syntax_uid``, ``codec`` (``explicit``,
    ``implicit``, ``rle``, ``j2k``, ``jpeg-lossless``), ``implicit_vr``,
    ``orientation`` (``axial``, ``coronal``, ``sagittal``, ``oblique``),
    ``image_orientation_patient``, ``pixel_spacing``, ``slice_thickness``,
    ``spacing_between_slices``, ``rows``, ``cols``, ``bits_allocated``,
    ``bits_stored``, ``pixel_representation``, ``rescale_slope``,
    ``rescale_intercept``, ``window_center``, ``window_width`` (lists),
    ``frame_of_reference_uid``, ``series_number``, ``series_description``,
    ``manufacturer``, ``ascending`` (whether instance/frame 1 is at the low
    end along the slice normal), ``num_files``, ``num_frames``, and per
    file (single-frame: in instance-number order) ``files`` (paths relative
    to the output folder, ``/``-separated), ``sop_instance_uids``,
    ``instance_numbers``; ``positions`` is the Image Position (Patient) of
    each instance (single-frame) or frame (enhanced), as the floats written.
``junk``
    ``path``, ``kind`` (one of :data:`JUNK_KINDS`), ``description``; the
    truncated DICOM files add ``series_instance_uid`` and
    ``sop_instance_uid`` (of their own series, in no manifest series),
    ``full_size`` and ``cut_at`` (the file's length).
"""
from __future__ import annotations

import argparse
import bisect
import datetime as _dt
import hashlib
import json
import math
import os
import struct
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_data_element
from pydicom.pixels.encoders import JPEG2000LosslessEncoder, RLELosslessEncoder
from pydicom.sequence import Sequence as DicomSequence

from ..native._jit import kernel

__all__ = [
    "CT_IMAGE_STORAGE",
    "MR_IMAGE_STORAGE",
    "ENHANCED_CT_IMAGE_STORAGE",
    "ENHANCED_MR_IMAGE_STORAGE",
    "TRANSFER_SYNTAXES",
    "PRESETS",
    "JUNK_KINDS",
    "phantom_hu",
    "slice_points",
    "expected_series_hu",
    "encode_jpeg_lossless",
    "count_files",
    "generate",
    "main",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

#: Codec name -> transfer syntax UID.
TRANSFER_SYNTAXES: dict[str, str] = {
    "implicit": IMPLICIT_VR_LE,
    "explicit": EXPLICIT_VR_LE,
    "jpeg-lossless": JPEG_LOSSLESS_SV1,
    "j2k": JPEG2000_LOSSLESS,
    "rle": RLE_LOSSLESS,
}
_COMPRESSED_CODECS = ("jpeg-lossless", "j2k", "rle")
#: Transfer syntaxes of the enhanced multi-frame series, in turn.
_ENHANCED_CODECS = ("explicit", "rle", "implicit", "j2k")
#: JPEG 2000 (OpenJPEG, 6 resolution levels) needs images at least this big;
#: smaller archives use JPEG lossless and RLE only.
_J2K_MIN_SIZE = 32

#: pylibjpeg-rle (a project dependency) makes the same bytes as pydicom's
#: native RLE encoder, three times faster; the tests check they agree.
_RLE_PLUGIN = "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"

UID_ROOT = "2.25"
#: (0002,0012) and (0002,0013) of every file written here.
IMPLEMENTATION_CLASS_UID = UID_ROOT + "." + str(
    int.from_bytes(hashlib.blake2b(b"pocketpacs.synth implementation", digest_size=16).digest(), "big"))
IMPLEMENTATION_VERSION_NAME = "POCKETPACS_SYN1"

#: Junk kinds, written in this order (cycling) for ``junk=n``.
JUNK_KINDS: tuple[str, ...] = (
    "text", "jpeg", "empty", "truncated_dicom", "dicm_garbage", "png", "truncated_pixels")
_JUNK_DESCRIPTIONS = {
    "text": "plain UTF-8 text file",
    "jpeg": "JPEG image file (lossless JPEG, SOI..EOI), not DICOM",
    "empty": "empty file (0 bytes)",
    "truncated_dicom": "valid DICOM file cut inside the data set header (inside an element)",
    "dicm_garbage": "128-byte preamble + 'DICM' followed by random bytes",
    "png": "8-bit greyscale PNG image file, not DICOM",
    "truncated_pixels": "valid DICOM header, file cut in the middle of the Pixel Data value",
}

#: Named option sets for the command line (explicit options override them).
PRESETS: dict[str, dict[str, Any]] = {
    # a small CT + MR archive for the app's demo: 2 patients, 361 files
    "demo": dict(patients=2, studies=1, series=3, slices=60, rows=128, cols=128,
                 compressed_fraction=0.5, implicit_fraction=0.17, enhanced=1, junk=0),
    # 5,000 files of 512x512
    "bench": dict(patients=10, studies=1, series=5, slices=100, rows=512, cols=512,
                  compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0),
    # 100,000 files of 64x64
    "scale": dict(patients=200, studies=2, series=5, slices=50, rows=64, cols=64,
                  compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0),
}

_DEFAULTS: dict[str, Any] = dict(
    patients=2, studies=1, series=2, slices=20, rows=64, cols=64, seed=0,
    compressed_fraction=0.25, implicit_fraction=0.25, enhanced=1, junk=5, nested=True)

# In-plane field of view (mm) and coverage along the slice normal (mm).
_FOV_MM = 360.0
_COVERAGE_MM = {"axial": 240.0, "coronal": 240.0, "sagittal": 320.0, "oblique": 240.0}

# Per-slice elements of single-frame files (sorted); Pixel Data follows them.
_TAG_SOP_INSTANCE_UID = 0x00080018
_TAG_ACQUISITION_TIME = 0x00080032
_TAG_INSTANCE_NUMBER = 0x00200013
_TAG_IPP = 0x00200032
_TAG_SLICE_LOCATION = 0x00201041
_TAG_PIXEL_DATA = 0x7FE00010
_SLICE_TAGS = (_TAG_SOP_INSTANCE_UID, _TAG_ACQUISITION_TIME, _TAG_INSTANCE_NUMBER,
               _TAG_IPP, _TAG_SLICE_LOCATION)

# --------------------------------------------------------------------------
# Fake people, places and devices
# --------------------------------------------------------------------------

# (PatientName, SpecificCharacterSet, PatientSex): the first patients of every
# archive, so that even tiny archives mix UTF-8 and Latin-1 encodings.
_FIXED_PATIENTS: tuple[tuple[str, str, str], ...] = (
    ("Müller^Jürgen", "ISO_IR 192", "M"),
    ("Gómez^María", "ISO_IR 100", "F"),
    ("Żółć^Łukasz", "ISO_IR 192", "M"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "ISO_IR 192", "M"),
    ("Παπαδοπούλου^Ελένη", "ISO_IR 192", "F"),
    ("Ødegård^Åse", "ISO_IR 100", "F"),
    ("Smith^John^A", "ISO_IR 100", "M"),
    ("Dubois^Amélie", "ISO_IR 192", "F"),
)
_FAMILY = ("Schneider", "Fischer", "Weiß", "Bäcker", "Lefèvre", "García", "Núñez", "Jensen",
           "Andersson", "Kowalski", "O'Connor", "Rossi", "Nowak", "Dvořák", "Šimić",
           "Иванова", "Öztürk", "Nguyen", "Brown", "Håkansson", "Papadakis", "Søndergaard")
_GIVEN_M = ("Jürgen", "José", "Lars", "Michał", "Jiří", "Ömer", "Thomas", "Luca", "Björn", "Seán")
_GIVEN_F = ("Anna", "Zoë", "Inès", "Agnieszka", "Ivana", "Ирина", "Mette", "Chloé", "Ayşe", "Sofia")
_INSTITUTIONS = ("Klinikum Süd", "Hôpital Saint-Éloi", "General Hospital", "Universitätsspital Nord",
                 "Clínica del Río", "Synthetic Medical Center")
_PHYSICIANS = ("Weiß^Anna^^Dr.", "O'Brien^Seán", "Dupont^Hélène", "Lindqvist^Per", "Kim^Min",
               "García^Lucía", "Novák^Petr")
_CT_DEVICES = (("PocketScan Medical", "PS-CT 64"), ("Nordlicht Medizintechnik", "Aurora CT 128"),
               ("Synthetic Imaging Co.", "SynCT Flash"))
_MR_DEVICES = (("PocketScan Medical", "PS-MR 1.5T"), ("Nordlicht Medizintechnik", "Polaris 3T"),
               ("Synthetic Imaging Co.", "SynMR Vida"))
_CT_STUDIES = ("CT Thorax/Abdomen mit KM", "CT Thorax ± Kontrast", "CT Chest", "CT Abdomen nativ")
_MR_STUDIES = ("MRT Abdomen", "MR Thorax", "MRT Oberbauch mit KM", "MR Body")
_BODY_PARTS = {"CT": ("CHEST", "ABDOMEN", "CHEST"), "MR": ("ABDOMEN", "CHEST")}
_ORIENT_ABBR = {"axial": "AX", "coronal": "COR", "sagittal": "SAG", "oblique": "OBL"}
_ORIENT_CODE = {"axial": "AXIAL", "coronal": "CORONAL", "sagittal": "SAGITTAL", "oblique": "OBLIQUE"}

# Pixel formats: (name, BitsStored, PixelRepresentation, RescaleSlope, RescaleIntercept).
_CT_FORMATS = (("ct12u", 12, 0, "1", "-1024"), ("ct16u", 16, 0, "1", "-1024"),
               ("ct16s", 16, 1, "1", "-1024"))
_MR_FORMATS = (("mr12s", 12, 1, "1", "0"), ("mr16s", 16, 1, "1", "0"),
               ("mr16u_scaled", 16, 0, "0.5", "-1000"))

# --------------------------------------------------------------------------
# The phantom
# --------------------------------------------------------------------------


# Shapes of the phantom (LPS, mm): centres and semi-axes; the kernel
# multiplies by the reciprocals (the values are what they are: the phantom is
# defined by this code, and phantom_hu and the writer share it).
_BODY = (0.0, 4.1, 0.0, 161.3, 113.7, 283.1)
_LIVER = (-62.7, -14.3, -71.9, 58.1, 51.3, 47.9)
_LUNG_L = (63.9, 12.7, 48.3, 39.1, 56.3, 68.7)
_LUNG_R = (-61.3, 10.9, 43.1, 45.7, 59.9, 73.3)
_RIBS = (143.9, 99.7, 150.3)  # semi-axes of the outer ellipse, half-length
_SPINE = (0.0, 78.3, 17.9, 240.7)  # centre x, y, radius, half-length
_MARKER = (83.1, -51.7, 71.3, 14.9)  # centre, half side


def _inv(shape: tuple[float, ...]) -> tuple[float, ...]:
    return shape[:3] + tuple(1.0 / v for v in shape[3:])


_BX, _BY, _BZ, _IBX, _IBY, _IBZ = _inv(_BODY)
_LVX, _LVY, _LVZ, _ILVX, _ILVY, _ILVZ = _inv(_LIVER)
_LLX, _LLY, _LLZ, _ILLX, _ILLY, _ILLZ = _inv(_LUNG_L)
_LRX, _LRY, _LRZ, _ILRX, _ILRY, _ILRZ = _inv(_LUNG_R)
_IRX, _IRY, _RZ = 1.0 / _RIBS[0], 1.0 / _RIBS[1], _RIBS[2]
_SX, _SY, _ISR, _SZ = _SPINE[0], _SPINE[1], 1.0 / _SPINE[2], _SPINE[3]
_MX, _MY, _MZ, _MH = _MARKER


@kernel(inline="always")
def _phantom_point(x, y, z):
    """HU value of the phantom at one point (LPS, mm).

    Written without early returns (selects rather than branches) so that the
    compiler can vectorise the loops that call it.
    """
    # body: ellipsoid; everything outside it is air
    bx = (x - _BX) * _IBX
    by = (y - _BY) * _IBY
    bz = (z - _BZ) * _IBZ
    body = bx * bx + by * by + bz * bz <= 1.0
    # liver: patient right (-x), slightly anterior, inferior
    lx = (x - _LVX) * _ILVX
    ly = (y - _LVY) * _ILVY
    lz = (z - _LVZ) * _ILVZ
    v = 62 if lx * lx + ly * ly + lz * lz <= 1.0 else 40
    # lungs (they do not overlap): the left one (+x) is smaller than the right one
    lx = (x - _LRX) * _ILRX
    ly = (y - _LRY) * _ILRY
    lz = (z - _LRZ) * _ILRZ
    v = -820 if lx * lx + ly * ly + lz * lz <= 1.0 else v
    lx = (x - _LLX) * _ILLX
    ly = (y - _LLY) * _ILLY
    lz = (z - _LLZ) * _ILLZ
    v = -800 if lx * lx + ly * ly + lz * lz <= 1.0 else v
    # ribs: an elliptic cylinder shell cut into bands; denser towards the head
    rx = x * _IRX
    ry = (y - _BY) * _IRY
    r2 = rx * rx + ry * ry
    zz = z + _RZ
    rib = ((abs(z) <= _RZ) & (r2 >= 0.81) & (r2 <= 1.0)
           & (zz - 19.3 * math.floor(zz * (1.0 / 19.3)) < 13.1))
    v = 700 + int(math.floor(zz * (300.0 / (2.0 * _RZ)) + 0.5)) if rib else v
    # spine: posterior cylinder of vertebrae separated by discs
    sx = (x - _SX) * _ISR
    sy = (y - _SY) * _ISR
    zs = z + _SZ
    spine = (sx * sx + sy * sy <= 1.0) & (abs(z) <= _SZ)
    disc = zs - 31.7 * math.floor(zs * (1.0 / 31.7)) < 4.1
    v = (80 if disc else 900) if spine else v
    # the asymmetric marker: a bright cube at patient left-anterior-superior
    marker = (abs(x - _MX) <= _MH) & (abs(y - _MY) <= _MH) & (abs(z - _MZ) <= _MH)
    v = 1200 if marker else v
    return v if body else -1000


@kernel
def _phantom_kernel(pts, out):
    for i in range(pts.shape[0]):
        out[i] = _phantom_point(pts[i, 0], pts[i, 1], pts[i, 2])


def phantom_hu(points_lps: np.ndarray) -> np.ndarray:
    """Evaluate the phantom at points in patient coordinates.

    The phantom is air (-1000 HU) outside an ellipsoidal body (40 HU) that
    holds a liver (62 HU, patient right, inferior), two lungs (-800 and
    -820 HU, the left one smaller), ribs (700..1000 HU, denser towards the
    head), a spine (900 HU, discs 80 HU) and a bright cube (1200 HU) at the
    patient's left-anterior-superior (x=83.1, y=-51.7, z=71.3 mm) so that any
    flipped or swapped axis shows.  All values are integers.

    Parameters
    ----------
    points_lps : ndarray, shape (..., 3)
        Points (x, y, z) in DICOM patient coordinates (LPS), millimetres.

    Returns
    -------
    ndarray of int16, shape ``points_lps.shape[:-1]``
        HU values.
    """
    p = np.ascontiguousarray(points_lps, dtype=np.float64)
    if p.shape[-1] != 3:
        raise ValueError("points_lps must have shape (..., 3)")
    flat = p.reshape(-1, 3)
    out = np.empty(flat.shape[0], dtype=np.int16)
    _phantom_kernel(flat, out)
    return out.reshape(p.shape[:-1])


def slice_points(ipp: Sequence[float], iop: Sequence[float], pixel_spacing: Sequence[float],
                 rows: int, cols: int) -> np.ndarray:
    """Return the patient coordinates of the pixel centres of one slice.

    Parameters
    ----------
    ipp : sequence of 3 float
        Image Position (Patient): the centre of the first pixel.
    iop : sequence of 6 float
        Image Orientation (Patient): row direction cosines (the direction of
        increasing column index) then column direction cosines.
    pixel_spacing : sequence of 2 float
        Pixel Spacing: distance between rows, then between columns (mm).
    rows, cols : int
        Image size.

    Returns
    -------
    ndarray of float64, shape (rows, cols, 3)
        ``ipp + c * spacing[1] * iop[:3] + r * spacing[0] * iop[3:]`` for
        each row ``r`` and column ``c``.
    """
    o = np.asarray(ipp, dtype=np.float64).reshape(1, 1, 3)
    d = np.asarray(iop, dtype=np.float64)
    row_dir, col_dir = d[:3].reshape(1, 1, 3), d[3:6].reshape(1, 1, 3)
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    c = (np.arange(cols, dtype=np.float64) * dc).reshape(1, cols, 1)
    r = (np.arange(rows, dtype=np.float64) * dr).reshape(rows, 1, 1)
    return o + c * row_dir + r * col_dir


def expected_series_hu(series: dict) -> np.ndarray:
    """Return the volume a manifest series should assemble to, in HU.

    Parameters
    ----------
    series : dict
        One entry of ``manifest["series"]``.

    Returns
    -------
    ndarray of int16, shape (n, rows, cols)
        One image per entry of ``series["positions"]``: in instance-number
        order for single-frame series, in frame order for enhanced ones.
    """
    return np.stack([
        phantom_hu(slice_points(p, series["image_orientation_patient"], series["pixel_spacing"],
                                series["rows"], series["cols"]))
        for p in series["positions"]])


@kernel
def _stored_slice_kernel(ipp, row, col, dr, dc, intercept, mul, out):
    """Stored values of one slice: ``(phantom - intercept) * mul`` at the pixel centres.

    The pixel centres are computed with the same floating-point operations,
    in the same order, as :func:`slice_points` (so the values are those of
    ``phantom_hu(slice_points(...))``).  Returns the smallest and largest
    stored value (before the cast to ``out.dtype``).
    """
    rows, cols = out.shape
    lo = 1 << 30
    hi = -(1 << 30)
    for r in range(rows):
        rr = r * dr
        for c in range(cols):
            cc = c * dc
            x = (ipp[0] + cc * row[0]) + rr * col[0]
            y = (ipp[1] + cc * row[1]) + rr * col[1]
            z = (ipp[2] + cc * row[2]) + rr * col[2]
            v = (_phantom_point(x, y, z) - intercept) * mul
            lo = min(lo, v)
            hi = max(hi, v)
            out[r, c] = v
    return lo, hi


def _stored_slice(ipp: Sequence[float], iop: Sequence[float], pixel_spacing: Sequence[float],
                  rows: int, cols: int, slope: float, intercept: float, bits_stored: int,
                  pixel_representation: int) -> np.ndarray:
    """Stored pixel values ``(phantom_hu - intercept) / slope`` of one slice.

    *slope* must be 1/k and *intercept* an integer (so the stored values are
    exact integers); raises if a value does not fit the pixel format.
    """
    mul = round(1.0 / slope)
    if mul * slope != 1.0 or intercept != int(intercept):
        raise ValueError("slope must be 1/k and intercept an integer")
    if pixel_representation:
        lo, hi, dtype = -(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1, np.int16
    else:
        lo, hi, dtype = 0, (1 << bits_stored) - 1, np.uint16
    d = np.asarray(iop, dtype=np.float64)
    out = np.empty((rows, cols), dtype=dtype)
    vmin, vmax = _stored_slice_kernel(np.asarray(ipp, dtype=np.float64), d[:3].copy(), d[3:6].copy(),
                                      float(pixel_spacing[0]), float(pixel_spacing[1]),
                                      int(intercept), int(mul), out)
    if vmin < lo or vmax > hi:
        raise AssertionError("phantom values do not fit the pixel format")
    return out


# --------------------------------------------------------------------------
# JPEG lossless (process 14, selection value 1) encoder
# --------------------------------------------------------------------------


@kernel
def _jpeg_ll_histogram(x, precision, hist):
    rows, cols = x.shape
    for r in range(rows):
        for c in range(cols):
            if r == 0:
                pred = (1 << (precision - 1)) if c == 0 else x[0, c - 1]
            elif c == 0:
                pred = x[r - 1, 0]
            else:
                pred = x[r, c - 1]
            d = (x[r, c] - pred) & 0xFFFF
            if d >= 0x8000:
                d -= 0x10000
            m = abs(d)
            s = 0
            while m:
                s += 1
                m >>= 1
            hist[s] += 1


@kernel
def _jpeg_ll_scan(x, precision, codes, sizes, out):
    rows, cols = x.shape
    acc = 0
    nacc = 0
    o = 0
    for r in range(rows):
        for c in range(cols):
            if r == 0:
                pred = (1 << (precision - 1)) if c == 0 else x[0, c - 1]
            elif c == 0:
                pred = x[r - 1, 0]
            else:
                pred = x[r, c - 1]
            d = (x[r, c] - pred) & 0xFFFF
            if d >= 0x8000:
                d -= 0x10000
            m = abs(d)
            s = 0
            while m:
                s += 1
                m >>= 1
            acc = (acc << sizes[s]) | codes[s]
            nacc += sizes[s]
            if s > 0 and s < 16:  # category 16 (difference 32768) has no extra bits
                extra = d if d > 0 else d - 1
                acc = (acc << s) | (extra & ((1 << s) - 1))
                nacc += s
            while nacc >= 8:
                nacc -= 8
                b = (acc >> nacc) & 0xFF
                out[o] = b
                o += 1
                if b == 0xFF:
                    out[o] = 0
                    o += 1
            acc &= (1 << nacc) - 1
    if nacc > 0:
        pad = 8 - nacc
        b = ((acc << pad) | ((1 << pad) - 1)) & 0xFF
        out[o] = b
        o += 1
        if b == 0xFF:
            out[o] = 0
            o += 1
    return o


def _huffman_table(hist: np.ndarray) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """Optimal length-limited Huffman table (ITU T.81 Annex K.2/K.3, as libjpeg).

    Returns ``bits`` (16 counts), ``huffval`` and per-symbol ``codes`` and
    ``sizes`` for the 17 difference categories.
    """
    nsym = len(hist)
    freq = [int(f) for f in hist] + [1]  # reserved symbol: no code is all ones
    n = nsym + 1
    codesize = [0] * n
    others = [-1] * n
    while True:
        c1, v = -1, None
        for i in range(n):
            if freq[i] and (v is None or freq[i] <= v):
                v, c1 = freq[i], i
        c2, v = -1, None
        for i in range(n):
            if freq[i] and i != c1 and (v is None or freq[i] <= v):
                v, c2 = freq[i], i
        if c2 < 0:
            break
        freq[c1] += freq[c2]
        freq[c2] = 0
        codesize[c1] += 1
        while others[c1] >= 0:
            c1 = others[c1]
            codesize[c1] += 1
        others[c1] = c2
        codesize[c2] += 1
        while others[c2] >= 0:
            c2 = others[c2]
            codesize[c2] += 1
    bits = [0] * 33
    for i in range(n):
        if codesize[i]:
            bits[codesize[i]] += 1
    i = 32
    while i > 16:
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
        i -= 1
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1  # drop the reserved symbol's code
    huffval = [s for length in range(1, 33) for s in range(nsym) if codesize[s] == length]
    codes = np.zeros(nsym, dtype=np.int64)
    sizes = np.zeros(nsym, dtype=np.int64)
    code, k = 0, 0
    for length in range(1, 17):
        for _ in range(bits[length]):
            codes[huffval[k]] = code
            sizes[huffval[k]] = length
            code += 1
            k += 1
        code <<= 1
    return bits[1:17], huffval, codes, sizes


def encode_jpeg_lossless(image: np.ndarray, precision: int) -> bytes:
    """Encode a greyscale image as JPEG lossless, process 14, predictor 1.

    This is the codestream of transfer syntax 1.2.840.10008.1.2.4.70 (JPEG
    Lossless, Non-Hierarchical, First-Order Prediction): SOI, SOF3 (one
    component), one optimal Huffman table (DHT), SOS with selection value 1
    and point transform 0, Huffman-coded DPCM differences (modulo 2**16) with
    byte stuffing, EOI.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Non-negative integer samples, all below ``2 ** precision``.
    precision : int
        Sample precision P in bits, 2..16 (the BitsStored of a DICOM image).

    Returns
    -------
    bytes
        The JPEG codestream.
    """
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0:
        raise ValueError("image must be a non-empty 2D array")
    if not 2 <= precision <= 16:
        raise ValueError("precision must be 2..16")
    rows, cols = a.shape
    if rows > 0xFFFF or cols > 0xFFFF:
        raise ValueError("image too large for JPEG")
    x = np.ascontiguousarray(a, dtype=np.int32)
    if int(x.min()) < 0 or int(x.max()) >= (1 << precision):
        raise ValueError(f"samples must lie in [0, 2**{precision})")
    hist = np.zeros(17, dtype=np.int64)
    _jpeg_ll_histogram(x, precision, hist)
    bits, huffval, codes, sizes = _huffman_table(hist)
    buf = np.empty(rows * cols * 8 + 16, dtype=np.uint8)
    n = _jpeg_ll_scan(x, precision, codes, sizes, buf)
    sof = b"\xff\xc3" + struct.pack(">HBHHB", 11, precision, rows, cols, 1) + bytes((1, 0x11, 0))
    dht = (b"\xff\xc4" + struct.pack(">H", 2 + 1 + 16 + len(huffval)) + b"\x00"
           + bytes(bits) + bytes(huffval))
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + bytes((1, 0x00, 1, 0, 0))
    return b"\xff\xd8" + sof + dht + sos + buf[:n].tobytes() + b"\xff\xd9"


# --------------------------------------------------------------------------
# Small helpers: UIDs, value formatting, hand-encoded elements
# --------------------------------------------------------------------------


def _uid(ns: bytes, *parts: object) -> str:
    """``2.25.<int>`` from a 120-bit hash of the namespace and *parts*."""
    h = hashlib.blake2b(ns + "|".join(map(str, parts)).encode(), digest_size=15).digest()
    return f"{UID_ROOT}.{int.from_bytes(h, 'big')}"


def _fmt(v: float, decimals: int = 4) -> str:
    """A short DS string for *v* (at most *decimals* decimals, no '-0')."""
    s = f"{v:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", ""):
        s = "0"
    return s


def _tm(seconds: float) -> str:
    """TM string ``HHMMSS.FFF`` for a time of day in seconds."""
    ms = int(round(seconds * 1000)) % (86400 * 1000)
    h, rem = divmod(ms, 3600_000)
    m, rem = divmod(rem, 60_000)
    s, f = divmod(rem, 1000)
    return f"{h:02d}{m:02d}{s:02d}.{f:03d}"


_S_IMPLICIT = struct.Struct("<HHI")
_S_EXPLICIT_SHORT = struct.Struct("<HH2sH")
_S_EXPLICIT_LONG = struct.Struct("<HH2sHI")


def _short_elem(tag: int, vr: bytes, value: bytes, implicit: bool) -> bytes:
    """Encode one little-endian element with a 2-byte-length VR (UI, IS, DS, TM, SH, UL)."""
    if len(value) & 1:
        value += b"\x00" if vr == b"UI" else b" "
    if implicit:
        return _S_IMPLICIT.pack(tag >> 16, tag & 0xFFFF, len(value)) + value
    return _S_EXPLICIT_SHORT.pack(tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def _file_meta_bytes(sop_class: str, sop_instance: str, ts: str) -> bytes:
    """Preamble, ``DICM`` and the file meta group, as pydicom writes them."""
    body = b"".join((
        _S_EXPLICIT_LONG.pack(0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
        _short_elem(0x00020002, b"UI", sop_class.encode(), False),
        _short_elem(0x00020003, b"UI", sop_instance.encode(), False),
        _short_elem(0x00020010, b"UI", ts.encode(), False),
        _short_elem(0x00020012, b"UI", IMPLEMENTATION_CLASS_UID.encode(), False),
        _short_elem(0x00020013, b"SH", IMPLEMENTATION_VERSION_NAME.encode(), False),
    ))
    return (b"\x00" * 128 + b"DICM" + _S_EXPLICIT_SHORT.pack(0x0002, 0x0000, b"UL", 4)
            + struct.pack("<I", len(body)) + body)


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


# --------------------------------------------------------------------------
# The plan: every entity and every value, decided before any pixel work
# --------------------------------------------------------------------------


@dataclass
class _Patient:
    index: int
    patient_id: str
    name: str
    charset: str
    sex: str
    birth_date: str
    studies: list[_Study] = field(default_factory=list)


@dataclass
class _Study:
    index: int
    patient: _Patient
    uid: str
    modality: str
    date: str
    time_s: float
    accession: str
    study_id: str
    description: str
    institution: str
    referring: str
    body_part: str
    series: list[_Series] = field(default_factory=list)


@dataclass
class _Series:
    index: int
    kind: str  # "single-frame" or "enhanced"
    study: _Study
    uid: str
    frame_of_reference: str
    number: int
    modality: str
    sop_class: str
    codec: str
    orientation: str
    iop: list[str]
    spacing: list[str]
    thickness: str
    step: str
    rows: int
    cols: int
    pixel_format: str
    bits_stored: int
    pixel_representation: int
    slope: str
    intercept: str
    window_center: list[str]
    window_width: list[str]
    description: str
    protocol: str
    manufacturer: str
    model: str
    station: str
    performing: str
    time_s: float
    private_block: bool
    procedure_undefined_length: bool
    ascending: bool
    positions: list[list[str]]  # per instance (single-frame) or frame (enhanced)
    slice_locations: list[str]
    sop_uids: list[str]
    paths: list[str] = field(default_factory=list)

    @property
    def ts(self) -> str:
        return TRANSFER_SYNTAXES[self.codec]

    @property
    def implicit(self) -> bool:
        return self.codec == "implicit"

    @property
    def charset(self) -> str:
        return self.study.patient.charset


@dataclass
class _Junk:
    index: int
    kind: str
    path: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Plan:
    options: dict[str, Any]
    ns: bytes
    patients: list[_Patient]
    studies: list[_Study]
    series: list[_Series]
    junk: list[_Junk]


def _latin1(s: str) -> bool:
    try:
        s.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _oblique_iop() -> list[str]:
    a, b = math.radians(17.0), math.radians(9.0)
    # R = Rx(a) @ Rz(b); rows = R[:, 0], columns = R[:, 1]
    row = (math.cos(b), math.cos(a) * math.sin(b), math.sin(a) * math.sin(b))
    col = (-math.sin(b), math.cos(a) * math.cos(b), math.sin(a) * math.cos(b))
    return [_fmt(v, 6) for v in row + col]


_IOP = {
    "axial": ["1", "0", "0", "0", "1", "0"],
    "coronal": ["1", "0", "0", "0", "0", "-1"],
    "sagittal": ["0", "1", "0", "0", "0", "-1"],
    "oblique": _oblique_iop(),
}


def _assign_counts(n: int, fraction: float) -> int:
    return max(0, min(n, int(round(fraction * n))))


def _make_plan(opts: dict[str, Any]) -> _Plan:
    seed = int(opts["seed"])
    key = json.dumps({k: opts[k] for k in sorted(opts) if k != "nested"}, sort_keys=True)
    ns = hashlib.blake2b(key.encode(), digest_size=16).digest()
    rng = np.random.default_rng([0x5EED, seed])
    P, S, R, N = opts["patients"], opts["studies"], opts["series"], opts["slices"]
    rows, cols = opts["rows"], opts["cols"]

    # ---- patients
    patients: list[_Patient] = []
    id_numbers = rng.choice(9_000_000, size=P, replace=False) + 1_000_000
    for p in range(P):
        if p < len(_FIXED_PATIENTS):
            name, charset, sex = _FIXED_PATIENTS[p]
        else:
            sex = "F" if rng.random() < 0.5 else "M"
            family = _FAMILY[int(rng.integers(len(_FAMILY)))]
            given = (_GIVEN_F if sex == "F" else _GIVEN_M)[int(rng.integers(10))]
            name = f"{family}^{given}"
            if rng.random() < 0.05:
                sex = "O"
            charset = "ISO_IR 192" if not _latin1(name) or rng.random() < 0.3 else "ISO_IR 100"
        birth = _dt.date(1930, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 75 * 365)))
        patients.append(_Patient(p, f"SYN{int(id_numbers[p])}", name, charset, sex,
                                 birth.strftime("%Y%m%d")))

    # ---- studies
    studies: list[_Study] = []
    acc_numbers = rng.choice(90_000_000, size=P * S, replace=False) + 10_000_000
    for pat in patients:
        for s in range(S):
            g = len(studies)
            modality = "CT" if (pat.index + s) % 2 == 0 else "MR"
            date = _dt.date(2012, 1, 1) + _dt.timedelta(days=int(rng.integers(0, 12 * 365)))
            st = _Study(
                index=g, patient=pat, uid=_uid(ns, "study", g), modality=modality,
                date=date.strftime("%Y%m%d"), time_s=float(rng.integers(7 * 3600, 19 * 3600)),
                accession=f"ACC{int(acc_numbers[g])}", study_id=str(int(rng.integers(1, 99999))),
                description=(_CT_STUDIES if modality == "CT" else _MR_STUDIES)[
                    int(rng.integers(4))],
                institution=_INSTITUTIONS[int(rng.integers(len(_INSTITUTIONS)))],
                referring=_PHYSICIANS[int(rng.integers(len(_PHYSICIANS)))],
                body_part=_BODY_PARTS[modality][int(rng.integers(len(_BODY_PARTS[modality])))],
            )
            pat.studies.append(st)
            studies.append(st)

    # ---- per-series assignments of the single-frame series
    n = len(studies) * R
    orient = ["axial"] * n
    extra = []
    if n >= 2:
        extra.append("oblique")
    if n >= 4:
        k = max(1, int(round(0.12 * n)))
        extra += ["coronal"] * k + ["sagittal"] * k
    orient[:len(extra)] = extra
    orient = [orient[i] for i in rng.permutation(n)]
    order = rng.permutation(n)
    n_comp = _assign_counts(n, opts["compressed_fraction"])
    rot = int(rng.integers(3))
    # OpenJPEG needs at least 32 pixels per side (6 resolution levels)
    codecs = _COMPRESSED_CODECS if min(rows, cols) >= _J2K_MIN_SIZE else ("jpeg-lossless", "rle")
    codec = ["explicit"] * n
    for j, i in enumerate(order[:n_comp]):
        codec[i] = codecs[(j + rot) % len(codecs)]
    uncompressed = [int(i) for i in order[n_comp:]]
    for i in uncompressed[:_assign_counts(n, opts["implicit_fraction"])]:
        codec[i] = "implicit"

    series: list[_Series] = []
    for st in studies:
        for r in range(R):
            g = len(series)
            series.append(_plan_series(rng, ns, g, "single-frame", st, r + 1, orient[g], codec[g],
                                       N, rows, cols))
    for k in range(opts["enhanced"]):
        st = studies[k % len(studies)]
        g = len(series)
        enh_orient = ("axial", "coronal", "sagittal")[k % 3]
        enh_codec = _ENHANCED_CODECS[k % len(_ENHANCED_CODECS)]
        if enh_codec == "j2k" and min(rows, cols) < _J2K_MIN_SIZE:
            enh_codec = "rle"
        series.append(_plan_series(rng, ns, g, "enhanced", st, 900 + k + 1, enh_orient,
                                   enh_codec, N, rows, cols))
    for s in series:
        s.study.series.append(s)

    junk = [_Junk(j, JUNK_KINDS[j % len(JUNK_KINDS)]) for j in range(opts["junk"])]

    # ---- file names: shuffled, non-informative, unique
    n_files = sum(len(s.sop_uids) if s.kind == "single-frame" else 1 for s in series) + len(junk)
    numbers = rng.permutation(n_files)
    used: set[str] = set()
    names = []
    for g in range(n_files):
        salt = 0
        while True:
            h = hashlib.blake2b(ns + f"file|{g}|{salt}".encode(), digest_size=12).digest()
            style = h[0] % 3
            if style == 0:
                base = f"IM_{int(numbers[g]) + salt * n_files:06d}"
            elif style == 1:
                base = h[3:11].hex() + ".dcm"
            else:
                base = h[3:11].hex()
            # 64 x 16 folders: few enough that creating them is cheap
            rel = f"{h[1] & 0x3F:02x}/{h[2] & 0x0F:02x}/{base}" if opts["nested"] else base
            if rel.lower() not in used and rel != "manifest.json":
                used.add(rel.lower())
                names.append(rel)
                break
            salt += 1
    it = iter(names)
    for s in series:
        s.paths = [next(it) for _ in (s.sop_uids if s.kind == "single-frame" else [0])]
    for j in junk:
        j.path = next(it)
    return _Plan(opts, ns, patients, studies, series, junk)


def _plan_series(rng: np.random.Generator, ns: bytes, g: int, kind: str, st: _Study, number: int,
                 orientation: str, codec: str, n: int, rows: int, cols: int) -> _Series:
    modality = st.modality
    formats = _CT_FORMATS if modality == "CT" else _MR_FORMATS
    if codec == "jpeg-lossless":  # JPEG lossless carries unsigned samples only
        formats = tuple(f for f in formats if f[2] == 0)
    fmt = formats[int(rng.integers(len(formats)))]
    devices = _CT_DEVICES if modality == "CT" else _MR_DEVICES
    manufacturer, model = devices[int(rng.integers(len(devices)))]
    iop = list(_IOP[orientation])
    iop_f = np.array([float(v) for v in iop])
    row_dir, col_dir = iop_f[:3], iop_f[3:]
    normal = np.cross(row_dir, col_dir)
    spacing = _fmt(_FOV_MM / max(rows, cols), 6)
    sp = float(spacing)
    step = _fmt(_COVERAGE_MM[orientation] / n, 4)
    if float(step) <= 0:
        step = "0.0001"
    stp = float(step)
    thickness = step if modality == "CT" else _fmt(stp * 0.9, 4)
    center = np.array([round(float(v), 1) for v in rng.uniform(-12.0, 12.0, 3)])
    ascending = bool(rng.random() < 0.5)
    positions, locations = [], []
    for i in range(n):
        k = i if ascending else n - 1 - i
        p = (center + (k - (n - 1) / 2.0) * stp * normal
             - ((cols - 1) / 2.0) * sp * row_dir - ((rows - 1) / 2.0) * sp * col_dir)
        ipp = [_fmt(v, 4) for v in p]
        positions.append(ipp)
        # Slice Location: the position along the slice normal
        locations.append(_fmt(sum(float(a) * float(b) for a, b in zip(ipp, normal)), 4))
    abbr = _ORIENT_ABBR[orientation]
    if modality == "CT":
        wc, ww = (["40", "-600"], ["400", "1500"]) if rng.random() < 0.3 else (["40"], ["400"])
        kernel_name = ("B30f", "STANDARD", "LUNG")[int(rng.integers(3))]
        mpr = "" if orientation == "axial" else " MPR"
        description = f"{abbr} {float(thickness):.1f} {kernel_name}{mpr}"
        protocol = f"{st.body_part.title()} Routine"
    else:
        wc, ww = ["100"], ["1500"]
        weight = ("T1", "T2", "PD")[int(rng.integers(3))]
        description = f"{weight} {abbr}"
        protocol = f"{weight}_{abbr}_{st.body_part.lower()}"
    if kind == "enhanced":
        description += " MF"
    if st.patient.charset == "ISO_IR 192" and rng.random() < 0.5:
        description += " – nativ"  # EN DASH: not in Latin-1
    if kind == "enhanced":
        sop_class = ENHANCED_CT_IMAGE_STORAGE if modality == "CT" else ENHANCED_MR_IMAGE_STORAGE
        sop_uids = [_uid(ns, "instance", g, 0)]
    else:
        sop_class = CT_IMAGE_STORAGE if modality == "CT" else MR_IMAGE_STORAGE
        sop_uids = [_uid(ns, "instance", g, i) for i in range(n)]
    return _Series(
        index=g, kind=kind, study=st, uid=_uid(ns, "series", g),
        frame_of_reference=_uid(ns, "frame-of-reference", g), number=number, modality=modality,
        sop_class=sop_class, codec=codec, orientation=orientation, iop=iop,
        spacing=[spacing, spacing], thickness=thickness, step=step, rows=rows, cols=cols,
        pixel_format=fmt[0], bits_stored=fmt[1], pixel_representation=fmt[2], slope=fmt[3],
        intercept=fmt[4], window_center=wc, window_width=ww, description=description,
        protocol=protocol, manufacturer=manufacturer, model=model,
        station=f"{modality}{int(rng.integers(1, 20)):02d}SYN",
        performing=_PHYSICIANS[int(rng.integers(len(_PHYSICIANS)))],
        time_s=st.time_s + 90.0 * number + float(rng.integers(0, 60)),
        private_block=bool(rng.random() < 0.5),
        procedure_undefined_length=bool(g % 2 == 0), ascending=ascending,
        positions=positions, slice_locations=locations, sop_uids=sop_uids,
    )


# --------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------


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


def _encode_frame(s: _Series, arr: np.ndarray) -> bytes:
    """The compressed codestream of one frame (for compressed codecs)."""
    if s.codec == "jpeg-lossless":
        return encode_jpeg_lossless(arr, s.bits_stored)
    kw = dict(rows=s.rows, columns=s.cols, samples_per_pixel=1, bits_allocated=16,
              bits_stored=s.bits_stored, pixel_representation=s.pixel_representation,
              photometric_interpretation="MONOCHROME2", number_of_frames=1)
    if s.codec == "j2k":
        return JPEG2000LosslessEncoder.encode(arr, encoding_plugin="pylibjpeg", **kw)
    if s.codec == "rle":
        return RLELosslessEncoder.encode(arr, encoding_plugin=_RLE_PLUGIN, **kw)
    raise ValueError(f"not a compressed codec: {s.codec}")


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


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _static_segments(template: Dataset, implicit: bool) -> list[bytes]:
    """Encode *template* once, split where the per-slice elements go."""
    encodings = convert_encodings(template.SpecificCharacterSet)
    segs = [bytearray() for _ in range(len(_SLICE_TAGS) + 1)]
    for elem in template:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = implicit
        write_data_element(fp, elem, encodings)
        segs[bisect.bisect_left(_SLICE_TAGS, elem.tag)] += fp.getvalue()
    return [bytes(b) for b in segs]


def _slice_bytes(s: _Series, segs: list[bytes], i: int, pixel_value: bytes) -> bytes:
    """One single-frame file: hand-encoded per-slice elements between the static segments."""
    imp = s.implicit
    uid, acq, inst, ipp, loc = _slice_values(s, i)
    if s.codec in _COMPRESSED_CODECS:
        pixel = (_S_EXPLICIT_LONG.pack(0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + pixel_value
                 + _S_IMPLICIT.pack(0xFFFE, 0xE0DD, 0))
    elif imp:
        pixel = _S_IMPLICIT.pack(0x7FE0, 0x0010, len(pixel_value)) + pixel_value
    else:
        pixel = _S_EXPLICIT_LONG.pack(0x7FE0, 0x0010, b"OW", 0, len(pixel_value)) + pixel_value
    return b"".join((
        _file_meta_bytes(s.sop_class, uid, s.ts),
        segs[0], _short_elem(_TAG_SOP_INSTANCE_UID, b"UI", uid.encode(), imp),
        segs[1], _short_elem(_TAG_ACQUISITION_TIME, b"TM", acq.encode(), imp),
        segs[2], _short_elem(_TAG_INSTANCE_NUMBER, b"IS", inst.encode(), imp),
        segs[3], _short_elem(_TAG_IPP, b"DS", "\\".join(ipp).encode(), imp),
        segs[4], _short_elem(_TAG_SLICE_LOCATION, b"DS", loc.encode(), imp),
        segs[5], pixel,
    ))


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_series(s: _Series, out_dir: str) -> tuple[int, int]:
    """Write every file of series *s*; return (files, bytes)."""
    if s.kind == "enhanced":
        data = _dataset_bytes(_enhanced_dataset(s))
        _write_file(os.path.join(out_dir, s.paths[0]), data)
        return 1, len(data)
    segs = _static_segments(_series_template(s), s.implicit)
    total = 0
    for i, rel in enumerate(s.paths):
        data = _slice_bytes(s, segs, i, _pixel_value(s, [_stored_frame(s, i)]))
        _write_file(os.path.join(out_dir, rel), data)
        total += len(data)
    return len(s.paths), total


def _write_series_task(args: tuple[_Series, str]) -> tuple[int, int]:
    return _write_series(*args)


def _element_starts(data: bytes, start: int, stop: int, implicit: bool) -> list[int]:
    """Offsets of the top-level elements of a little-endian data set in data[start:stop]."""
    out, pos = [], start
    long_vrs = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UT", b"UN", b"UC", b"UR", b"SV", b"UV"}
    while pos + 8 <= stop:
        out.append(pos)
        if implicit:
            length = struct.unpack_from("<I", data, pos + 4)[0]
            head = 8
        else:
            vr = data[pos + 4:pos + 6]
            if vr in long_vrs:
                length = struct.unpack_from("<I", data, pos + 8)[0]
                head = 12
            else:
                length = struct.unpack_from("<H", data, pos + 6)[0]
                head = 8
        if length == 0xFFFFFFFF:
            break  # sequences are not walked; the caller does not need them
        pos += head + length
    return out


def _junk_bytes(plan: _Plan, j: _Junk) -> bytes:
    """The content of junk file *j* (and its details in ``j.info``)."""
    rng = np.random.default_rng([0x1C4, int(plan.options["seed"]), j.index])
    if j.kind == "text":
        return (f"PocketPACS synthetic archive -- junk file #{j.index}.\n"
                "This is not a DICOM file; an importer should skip it.\n"
                "Übung macht den Meister. Ça va?\n").encode()
    if j.kind == "empty":
        return b""
    if j.kind == "dicm_garbage":
        return b"\x00" * 128 + b"DICM" + rng.integers(0, 256, 200 + 37 * j.index, dtype=np.uint8).tobytes()
    if j.kind in ("jpeg", "png"):
        pts = slice_points([-180.0, -180.0, 71.3], _IOP["axial"], [11.25, 11.25], 32, 32)
        img = ((phantom_hu(pts).astype(np.int32) + 1000) // 9).clip(0, 255).astype(np.uint8)
        if j.kind == "jpeg":
            return encode_jpeg_lossless(img, 8)

        def chunk(tag: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

        raw = b"".join(b"\x00" + row.tobytes() for row in img)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    # truncated DICOM files: a valid file of a dedicated series, then cut
    base = next((s for s in plan.series if s.kind == "single-frame"), None)
    if base is None:
        raise ValueError("truncated DICOM junk needs at least one single-frame series")
    uid = _uid(plan.ns, "junk-instance", j.index)
    junk_series = _Series(**{**base.__dict__, "uid": _uid(plan.ns, "junk-series", j.index),
                             "sop_uids": [uid], "positions": base.positions[:1],
                             "slice_locations": base.slice_locations[:1],
                             "codec": "explicit", "private_block": False})
    segs = _static_segments(_series_template(junk_series), False)
    data = _slice_bytes(junk_series, segs, 0, _pixel_value(junk_series, [_stored_frame(junk_series, 0)]))
    pixel_at = len(data) - 2 * junk_series.rows * junk_series.cols - 12
    j.info["series_instance_uid"] = junk_series.uid
    j.info["sop_instance_uid"] = uid
    j.info["full_size"] = len(data)
    if j.kind == "truncated_pixels":
        cut = pixel_at + 12 + junk_series.rows * junk_series.cols
    else:
        meta_end = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
        starts = _element_starts(data, meta_end, pixel_at, False)
        mid = meta_end + (pixel_at - meta_end) // 2
        cut = starts[max(0, bisect.bisect_right(starts, mid) - 1)] + 5
    j.info["cut_at"] = cut
    return data[:cut]


def _manifest(plan: _Plan) -> dict[str, Any]:
    series = []
    for s in plan.series:
        enhanced = s.kind == "enhanced"
        series.append({
            "series_instance_uid": s.uid,
            "study_instance_uid": s.study.uid,
            "patient_id": s.study.patient.patient_id,
            "kind": s.kind,
            "modality": s.modality,
            "sop_class_uid": s.sop_class,
            "transfer_syntax_uid": s.ts,
            "codec": s.codec,
            "implicit_vr": s.implicit,
            "orientation": s.orientation,
            "image_orientation_patient": [float(v) for v in s.iop],
            "pixel_spacing": [float(v) for v in s.spacing],
            "slice_thickness": float(s.thickness),
            "spacing_between_slices": float(s.step),
            "rows": s.rows,
            "cols": s.cols,
            "bits_allocated": 16,
            "bits_stored": s.bits_stored,
            "pixel_representation": s.pixel_representation,
            "rescale_slope": float(s.slope),
            "rescale_intercept": float(s.intercept),
            "window_center": [float(v) for v in s.window_center],
            "window_width": [float(v) for v in s.window_width],
            "frame_of_reference_uid": s.frame_of_reference,
            "series_number": s.number,
            "series_description": s.description,
            "manufacturer": s.manufacturer,
            "ascending": s.ascending,
            "num_files": len(s.paths),
            "num_frames": len(s.positions),
            "files": s.paths,
            "sop_instance_uids": s.sop_uids,
            "instance_numbers": [1] if enhanced else list(range(1, len(s.paths) + 1)),
            "positions": [[float(v) for v in p] for p in s.positions],
        })
    n_dicom = sum(len(s.paths) for s in plan.series)
    return {
        "format": "pocketpacs-synth-manifest",
        "version": 1,
        "manifest_file": "manifest.json",
        "options": plan.options,
        "uid_root": UID_ROOT,
        "phantom": "pocketpacs.synth.phantom_hu (rescaled pixel values equal it at pixel centres)",
        "counts": {
            "files": n_dicom + len(plan.junk),
            "dicom_files": n_dicom,
            "junk_files": len(plan.junk),
            "patients": len(plan.patients),
            "studies": len(plan.studies),
            "series": len(plan.series),
            "single_frame_series": sum(s.kind == "single-frame" for s in plan.series),
            "enhanced_series": sum(s.kind == "enhanced" for s in plan.series),
        },
        "patients": [{
            "patient_id": p.patient_id, "patient_name": p.name, "birth_date": p.birth_date,
            "sex": p.sex, "specific_character_set": p.charset,
            "studies": [st.uid for st in p.studies]} for p in plan.patients],
        "studies": [{
            "study_instance_uid": st.uid, "patient_id": st.patient.patient_id,
            "study_date": st.date, "study_time": _tm(st.time_s), "accession_number": st.accession,
            "study_id": st.study_id, "study_description": st.description, "modality": st.modality,
            "institution_name": st.institution, "referring_physician_name": st.referring,
            "body_part_examined": st.body_part,
            "series": [s.uid for s in st.series]} for st in plan.studies],
        "series": series,
        "junk": [{"path": j.path, "kind": j.kind, "description": _JUNK_DESCRIPTIONS[j.kind], **j.info}
                 for j in plan.junk],
    }


def _options(**kw: Any) -> dict[str, Any]:
    opts = dict(_DEFAULTS)
    opts.update(kw)
    for k in ("patients", "studies", "series", "slices", "rows", "cols", "seed", "enhanced", "junk"):
        opts[k] = int(opts[k])
    for k in ("compressed_fraction", "implicit_fraction"):
        opts[k] = float(opts[k])
        if not 0.0 <= opts[k] <= 1.0:
            raise ValueError(f"{k} must lie in [0, 1]")
    opts["nested"] = bool(opts["nested"])
    if min(opts["patients"], opts["studies"], opts["slices"]) < 1 or opts["series"] < 0:
        raise ValueError("patients, studies and slices must be >= 1, series >= 0")
    if not (1 <= opts["rows"] <= 4096 and 1 <= opts["cols"] <= 4096):
        raise ValueError("rows and cols must lie in 1..4096")
    if opts["enhanced"] < 0 or opts["junk"] < 0 or opts["seed"] < 0:
        raise ValueError("enhanced, junk and seed must be >= 0")
    if opts["junk"] and opts["series"] == 0 and any(
            JUNK_KINDS[j % len(JUNK_KINDS)].startswith("truncated") for j in range(opts["junk"])):
        raise ValueError("truncated-DICOM junk needs series >= 1")
    return opts


def count_files(**options: Any) -> int:
    """Number of files :func:`generate` writes for *options* (manifest not counted).

    Parameters
    ----------
    **options
        The keyword options of :func:`generate` (defaults for those left out).

    Returns
    -------
    int
    """
    o = _options(**options)
    return o["patients"] * o["studies"] * o["series"] * o["slices"] + o["enhanced"] + o["junk"]


def generate(out_dir: str | os.PathLike[str], *, patients: int = 2, studies: int = 1,
             series: int = 2, slices: int = 20, rows: int = 64, cols: int = 64, seed: int = 0,
             compressed_fraction: float = 0.25, implicit_fraction: float = 0.25,
             enhanced: int = 1, junk: int = 5, nested: bool = True, workers: int = 1,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write a synthetic DICOM archive and its ``manifest.json``.

    Parameters
    ----------
    out_dir : path
        Output folder (created if needed).  Existing files are not removed;
        files of the same names are overwritten.
    patients, studies, series, slices : int
        Patients; studies per patient; single-frame series per study; slices
        (files) per single-frame series, which is also the number of frames
        of each enhanced series.
    rows, cols : int
        Image size.
    seed : int
        Seed; with the other options it decides every value and file name.
    compressed_fraction : float
        Share of single-frame series that are compressed, in turn JPEG
        lossless SV1, JPEG 2000 lossless and RLE lossless (no JPEG 2000 when
        rows or cols < 32: OpenJPEG cannot encode such small images).
    implicit_fraction : float
        Share of single-frame series (of all of them, taken from the
        uncompressed ones) written in implicit VR little endian; the rest are
        explicit VR little endian.
    enhanced : int
        Number of extra Enhanced CT/MR multi-frame series (one file each),
        attached to the studies in turn; transfer syntaxes in turn explicit
        VR LE, RLE, implicit VR LE, JPEG 2000 lossless (RLE below 32 pixels).
    junk : int
        Number of junk files, kinds in the order of :data:`JUNK_KINDS`.
    nested : bool
        Files in two levels of folders (``3a/0c/name``, 64 x 16 folders) or
        all in *out_dir*.
    workers : int
        Processes writing series in parallel (the output does not depend on it).
    progress : callable, optional
        Called as ``progress(files_done, files_total)`` after each series.

    Returns
    -------
    dict
        The manifest (also written to ``out_dir/manifest.json``).
    """
    opts = _options(patients=patients, studies=studies, series=series, slices=slices, rows=rows,
                    cols=cols, seed=seed, compressed_fraction=compressed_fraction,
                    implicit_fraction=implicit_fraction, enhanced=enhanced, junk=junk,
                    nested=nested)
    plan = _make_plan(opts)
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    all_paths = [p for s in plan.series for p in s.paths] + [j.path for j in plan.junk]
    for d in sorted({os.path.dirname(p) for p in all_paths} - {""}):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    total = len(all_paths)
    done = 0
    tasks = [(s, out) for s in plan.series]
    if workers > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        phantom_hu(np.zeros((1, 3)))  # compile before forking
        encode_jpeg_lossless(np.zeros((2, 2), np.uint16), 12)
        ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
            for nf, _ in ex.map(_write_series_task, tasks, chunksize=1):
                done += nf
                if progress:
                    progress(done, total)
    else:
        for task in tasks:
            nf, _ = _write_series(*task)
            done += nf
            if progress:
                progress(done, total)
    for j in plan.junk:
        _write_file(os.path.join(out, j.path), _junk_bytes(plan, j))
        done += 1
    if progress and plan.junk:
        progress(done, total)
    manifest = _manifest(plan)
    with open(os.path.join(out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=1)
        f.write("\n")
    return manifest


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int]:
    try:
        r, _, c = text.lower().partition("x")
        return int(r), int(c or r)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size (ROWSxCOLS): {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pocketpacs.synth",
        description="Write a deterministic synthetic DICOM archive (fake patients) and manifest.json.",
        epilog="Presets: " + "; ".join(
            f"{k}: {count_files(**v)} files of {v['rows']}x{v['cols']}" for k, v in PRESETS.items())
        + ".  Explicit options override the preset.")
    p.add_argument("out", help="output folder")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named option set")
    p.add_argument("--patients", type=int)
    p.add_argument("--studies", type=int, help="studies per patient")
    p.add_argument("--series", type=int, help="single-frame series per study")
    p.add_argument("--slices", type=int, help="slices per series (frames per enhanced series)")
    p.add_argument("--size", type=_size, metavar="ROWSxCOLS", help="image size, e.g. 512x512")
    p.add_argument("--rows", type=int)
    p.add_argument("--cols", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--compressed-fraction", type=float, help="share of compressed series (0..1)")
    p.add_argument("--implicit-fraction", type=float, help="share of implicit VR series (0..1)")
    p.add_argument("--enhanced", type=int, help="number of enhanced multi-frame series")
    p.add_argument("--junk", type=int, help="number of junk files")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--flat", dest="nested", action="store_false", default=None,
                   help="all files directly in OUT")
    g.add_argument("--nested", dest="nested", action="store_true", default=None,
                   help="files in two levels of folders (default)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad options.
    """
    parser = _parser()
    a = parser.parse_args(argv)
    opts: dict[str, Any] = dict(PRESETS[a.preset]) if a.preset else {}
    if a.size:
        opts["rows"], opts["cols"] = a.size
    for k in ("patients", "studies", "series", "slices", "rows", "cols", "seed",
              "compressed_fraction", "implicit_fraction", "enhanced", "junk", "nested"):
        v = getattr(a, k)
        if v is not None:
            opts[k] = v
    try:
        total = count_files(**opts)
    except ValueError as e:
        parser.error(str(e))
    last = [0.0]
    t0 = time.perf_counter()

    def progress(done: int, n: int) -> None:
        now = time.perf_counter()
        if not a.quiet and (now - last[0] >= 1.0 or done == n):
            last[0] = now
            rate = done / max(now - t0, 1e-9)
            print(f"\r  {done}/{n} files ({rate:.0f} files/s)", end="", file=sys.stderr, flush=True)

    if not a.quiet:
        print(f"writing {total} files to {a.out} ...", file=sys.stderr)
    manifest = generate(a.out, workers=max(1, a.workers), progress=progress, **opts)
    dt = time.perf_counter() - t0
    if not a.quiet:
        print(file=sys.stderr)
    nbytes = 0
    for s in manifest["series"]:
        for rel in s["files"]:
            nbytes += os.path.getsize(os.path.join(a.out, rel))
    n = manifest["counts"]["files"]
    print(f"wrote {n} files ({manifest['counts']['series']} series, {nbytes / 2**20:.1f} MiB of DICOM) "
          f"to {a.out} in {dt:.2f} s: {n / dt:.0f} files/s, {nbytes / 2**20 / dt:.1f} MiB/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
