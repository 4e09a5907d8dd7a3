"""The one series reader: how the viewer, export, report and thumbnails read a DICOM series.

``open_series(archive_or_paths, series_key=None)`` (and ``open_path(folder)``
for every series of a folder) plans a series (from the
archive's stored rows where they are exact, else from its files) into its
stacks, largest first as export orders them; each stack is read whole
(:meth:`SeriesReader.read_stack`, export's values) or slice by slice
(:meth:`SeriesReader.slices`); 4D stacks say what their volumes are
(:class:`FourthAxis`).  Modules: :mod:`.reader` (the reader), :mod:`.stacks`
(stack descriptions and labels), :mod:`.rows` (the archive's stored rows).
"""
from __future__ import annotations

from .reader import NATIVE_LOCK, SeriesOfflineError, SeriesReader, StackSlices, open_path, open_series
from .rows import ArchiveRows, archive_rows
from .stacks import FourthAxis, StackInfo, describe_volume, orientation_name, stack_label

__all__ = ["open_series", "open_path", "SeriesReader", "StackSlices", "StackInfo", "FourthAxis", "ArchiveRows",
           "archive_rows", "describe_volume", "orientation_name", "stack_label", "NATIVE_LOCK", "SeriesOfflineError"]
