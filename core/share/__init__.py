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
``share-profiles.json`` (:mod:`.settings`, :mod:`.blanking`).
"""
from __future__ import annotations

from .blanking import BlankRule
from .deidentify import BurnedInRefused, Deidentifier
from .export import ExportCancelled, ExportError, ExportResult, export_dicom, resolve_series
from .preview import describe_changes, preview_deidentification
from .profile_table import OPTIONS
from .pseudonyms import Pseudonyms, deid_key
from .settings import ProfileSettingsError, SharingProfile, get_profile, load_profiles, save_profiles

__all__ = ["OPTIONS", "BlankRule", "BurnedInRefused", "Deidentifier", "ExportCancelled", "ExportError",
           "ExportResult", "ProfileSettingsError", "Pseudonyms", "SharingProfile", "deid_key", "describe_changes",
           "export_dicom", "get_profile", "load_profiles", "preview_deidentification", "resolve_series",
           "save_profiles"]
