"""Sharing: DICOM export, de-identification (PS3.15 Annex E) and CD/USB media.

:func:`export_dicom` copies or de-identifies archived patients, studies or
series into a folder, a DICOMDIR medium or a zip file
(:mod:`.export`, :mod:`.media`); :class:`Deidentifier` applies the Basic
Application Level Confidentiality Profile and its options to one data set
(:mod:`.deidentify`, the table in :mod:`.profile_table`), with pseudonyms
keyed by the archive's secret (:mod:`.pseudonyms`).  De-identified headers are
rewritten at the byte level (:mod:`.rewrite`; pydicom for the files it does
not handle); :func:`preview_deidentification` lists what an export would
change on one sample instance (:mod:`.preview`); media can carry a portable
viewer (:mod:`.portable`).  Named profiles (options, private allowlist
additions, rectangles of burned-in text to blank) live in the archive's
``share-profiles.json`` (:mod:`.settings`, :mod:`.blanking`).  The Clean
Recognizable Visual Features option refuses the series that may show a face
(:mod:`.visual_features`).
"""
from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the module that defines it, imported on first use: a command
#: line that only parses its options (``pocketpacs --help``) or the app's start
#: must not load the byte rewriter's numba kernel or pydicom.
_LAZY = {
    "BlankRule": "blanking", "BurnedInRefused": "deidentify", "Deidentifier": "deidentify",
    "ExportCancelled": "export", "ExportError": "export", "ExportResult": "export", "export_dicom": "export",
    "resolve_series": "export", "describe_changes": "preview", "preview_deidentification": "preview",
    "OPTIONS": "profile_table", "Pseudonyms": "pseudonyms", "deid_key": "pseudonyms",
    "ProfileSettingsError": "settings", "SharingProfile": "settings", "get_profile": "settings",
    "load_profiles": "settings", "save_profiles": "settings",
    "OptionsError": "profile_table", "VisualFeaturesRefused": "deidentify",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import the public name *name* from its module on first use (kept afterwards)."""
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{mod}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
