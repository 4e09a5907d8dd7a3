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

The manifest's fields are described in :mod:`pocketpacs.synth.manifest`.
Modules, by job: :mod:`~pocketpacs.synth.plan` decides every entity and
value, :mod:`~pocketpacs.synth.phantom` samples the phantom (whose kernels
are in :mod:`pocketpacs.native.phantom`), :mod:`~pocketpacs.synth.encoders`
compresses frames, :mod:`~pocketpacs.synth.datasets` builds the pydicom data
sets, :mod:`~pocketpacs.synth.writer` writes the files,
:mod:`~pocketpacs.synth.manifest` the manifest, :mod:`~pocketpacs.synth.options`
checks the options and :mod:`~pocketpacs.synth.cli` is the command line.
"""
from __future__ import annotations

from .cli import main
from .dicom_values import (
    CT_IMAGE_STORAGE,
    ENHANCED_CT_IMAGE_STORAGE,
    ENHANCED_MR_IMAGE_STORAGE,
    MR_IMAGE_STORAGE,
    TRANSFER_SYNTAXES,
)
from .encoders import encode_jpeg_lossless
from .options import PRESETS, count_files
from .phantom import expected_series_hu, phantom_hu, slice_points
from .plan import JUNK_KINDS
from .writer import generate

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
