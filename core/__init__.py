"""PocketPACS: a local DICOM archive (mini-PACS) and fast 2D/3D viewer.

Public API
----------
The package grows issue by issue; what is here is documented in README.md.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    ArchiveError,
    ArchiveLocked,
    PocketPacsError,
    SchemaVersionMismatch,
)

__all__ = [
    "__version__",
    "PocketPacsError",
    "ArchiveError",
    "ArchiveLocked",
    "SchemaVersionMismatch",
]

from .archive.api import Archive, open_archive  # noqa: E402
from .archive.integrity import deep_check  # noqa: E402
from .archive.media import open_media  # noqa: E402

__all__ += ["Archive", "open_archive", "open_media", "deep_check"]

from .images.export import export_nifti, export_png  # noqa: E402
from .images.openother import open_other  # noqa: E402
from .images.volume import SeriesVolumes, Volume, assemble_path, assemble_series  # noqa: E402

__all__ += ["Volume", "SeriesVolumes", "assemble_series", "assemble_path", "open_other",
            "export_nifti", "export_png"]
