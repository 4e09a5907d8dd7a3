"""PocketPACS: a local DICOM archive (mini-PACS) and fast 2D/3D viewer.

Public API
----------
What is here is documented in README.md ("Python API").

The names are imported on first use (:func:`__getattr__`), so that
``import pocketpacs`` -- and with it every ``pocketpacs`` command, which
imports this package first -- costs only what a command needs: ``pocketpacs
--help`` or ``stats`` never load the header parser, the image stack or numba.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ArchiveError, ArchiveLocked, PocketPacsError, SchemaVersionMismatch

if TYPE_CHECKING:  # what the lazy names are, for type checkers and readers
    from .archive.api import Archive, open_archive
    from .archive.integrity import deep_check
    from .archive.media import open_media
    from .images.export import export_nifti, export_png
    from .images.openother import open_other
    from .images.volume import SeriesVolumes, Volume, assemble_path, assemble_series

#: The package version (pyproject.toml reads it from here).
__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first use).
_LAZY = {
    "Archive": ".archive.api",
    "open_archive": ".archive.api",
    "deep_check": ".archive.integrity",
    "open_media": ".archive.media",
    "export_nifti": ".images.export",
    "export_png": ".images.export",
    "open_other": ".images.openother",
    "SeriesVolumes": ".images.volume",
    "Volume": ".images.volume",
    "assemble_path": ".images.volume",
    "assemble_series": ".images.volume",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name of the API on first use (PEP 562).

    Parameters
    ----------
    name : str
        An attribute of the package.

    Returns
    -------
    object
        The function or class of that name (kept in the package afterwards).

    Raises
    ------
    AttributeError
        When *name* is not part of the API.
    """
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'pocketpacs' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
