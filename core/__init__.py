"""PocketPACS: a local DICOM archive (mini-PACS) and fast 2D/3D viewer.

Public API
----------
What is here is documented in README.md ("Python API").
"""
from __future__ import annotations

from .archive.api import Archive, open_archive
from .archive.integrity import deep_check
from .archive.media import open_media
from .errors import ArchiveError, ArchiveLocked, PocketPacsError, SchemaVersionMismatch
from .images.export import export_nifti, export_png
from .images.openother import open_other
from .images.volume import SeriesVolumes, Volume, assemble_path, assemble_series

#: The package version (pyproject.toml reads it from here).
__version__ = "0.1.0"

__all__ = [
    "__version__",
    "PocketPacsError",
    "ArchiveError",
    "ArchiveLocked",
    "SchemaVersionMismatch",
    "Archive",
    "open_archive",
    "open_media",
    "deep_check",
    "Volume",
    "SeriesVolumes",
    "assemble_series",
    "assemble_path",
    "open_other",
    "export_nifti",
    "export_png",
]
