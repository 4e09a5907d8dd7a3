"""The "Export / Share…" bridge commands: preview, start and follow a DICOM export.

:class:`ShareCommands` is the part of :class:`~pocketpacs.ui.session.Session`
behind the share dialog: ``share_preview`` de-identifies one sample instance
of the series, study or patient of a browser row in memory and lists what
would change (values masked to their length, :mod:`pocketpacs.share.preview`);
``share_start`` runs :func:`pocketpacs.share.export_dicom` on a worker thread
(:class:`ShareJob`) into the folder the user picked (a native picker in the
desktop app, a typed path in serve mode; a new, dated sub-folder when that
folder is not empty); ``share_status`` reports progress and, at the end, the
counts, warnings and notes; ``share_cancel`` stops an export between two files
and removes what it wrote; ``share_profiles`` lists the named profiles of the
archive's ``share-profiles.json`` (:mod:`pocketpacs.share.settings`), which
``share_preview`` and ``share_start`` take by name.  No path and no patient
value travels to the page.
"""
from __future__ import annotations

import os
import time
from typing import Any

from . import protocol
from .jobs import WorkerJob
from .protocol import BridgeError


SCOPES = ("series", "study", "patient")


class ShareJob(WorkerJob):
    """An export running on a worker thread, with progress for the page.

    Parameters
    ----------
    archive : Archive
    uids : list of str
        What to export (as :func:`pocketpacs.share.export_dicom` takes it).
    out_dir : str
        The export folder (empty or absent).
    options : dict
        Keyword arguments of ``export_dicom`` (deidentify, options, dicomdir, viewer, zip, allow_burned_in).
    """

    def __init__(self, archive: Any, uids: list[str], out_dir: str, options: dict):
        super().__init__("share")
        self.archive, self.uids, self.out_dir, self.options = archive, uids, out_dir, options
        self.result: dict | None = None
        self.cancelled = False

    def _work(self) -> None:
        from pocketpacs.share import ExportCancelled, ExportError, export_dicom

        try:
            res = export_dicom(self.archive, self.uids, self.out_dir, progress=self._progress,
                               cancel=self.cancel_event.is_set, **self.options)
        except ExportCancelled:
            self.cancelled = True
            return
        except ExportError as exc:  # its message names no patient data; the folder is not shown
            self.error = protocol.fail(protocol.UNAVAILABLE, str(exc).replace(self.out_dir, "the export folder"))[
                "error"]
            return
        self.result = {"instances": res.instances, "studies": res.studies, "series": res.series,
                       "refused": res.refused, "files": len(res.written), "warnings": res.warnings[:500],
                       "more_warnings": max(0, len(res.warnings) - 500), "notes": res.notes,
                       "folder": os.path.basename(self.out_dir)}

    def status(self) -> dict:
        """Progress for the page.

        Returns
        -------
        dict
            ``job_id``, ``files_done``, ``files_total``, ``rate`` (files/s), ``done``, ``result``, ``error``,
            ``cancelled`` (the export stopped on request; what it wrote is removed).
        """
        return {"job_id": self.id, "files_done": self.done, "files_total": self.total,
                "rate": self.rate(), "done": self.finished, "result": self.result, "error": self.error,
                "cancelled": self.cancelled}


class ShareCommands:
    """The share bridge commands (a mixin of Session)."""

    def _share_archive(self) -> Any:
        if self._media is not None:
            raise BridgeError(protocol.READ_ONLY, "Close the removable media to export from the archive.")
        return self.archive

    def _share_uids(self, arc: Any, a: dict) -> list[str]:
        """What the row's series, its study or its patient is, as export_dicom takes it."""
        try:
            se = arc.get_series(a["series_id"])
        except KeyError:
            raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.") from None
        scope = a.get("scope") or "series"
        if scope == "series":
            return [se.uid]
        if scope == "study":
            return [arc.study(se.study_key).uid]
        return [se.patient_key]

    def _share_options(self, a: dict) -> list[str]:
        from pocketpacs.share.profile_table import OPTIONS

        opts = list(a.get("options") or [])
        bad = [o for o in opts if not isinstance(o, str) or o not in OPTIONS]
        if bad:
            raise BridgeError(protocol.BAD_REQUEST, "Unknown de-identification option.")
        return opts

    def _share_check(self, opts: list[str], profile: Any) -> None:
        """Options (with the profile's) that exclude each other are a bad request."""
        from pocketpacs.share.profile_table import OptionsError, check_options

        try:
            check_options([*(profile.options if profile is not None else ()), *opts])
        except OptionsError:
            raise BridgeError(protocol.BAD_REQUEST, "Dates kept as they are and dates shifted exclude each "
                                                    "other: choose one.") from None

    def _share_profile(self, arc: Any, a: dict) -> Any:
        """The named profile of the request (None when it names none)."""
        from pocketpacs.share import ProfileSettingsError, get_profile

        name = a.get("profile")
        if not name:
            return None
        try:
            return get_profile(arc, name)
        except ProfileSettingsError as exc:  # the file is named by its name, not its path
            raise BridgeError(protocol.BAD_REQUEST, _without_paths(str(exc), arc)) from None

    def cmd_share_profiles(self, a: dict) -> dict:
        """The named profiles of the archive's share-profiles.json (and why it could not be read, if so)."""
        from pocketpacs.share import ProfileSettingsError, load_profiles

        arc = self._share_archive()
        try:
            profiles = load_profiles(arc) if getattr(arc, "path", None) is not None else {}
        except ProfileSettingsError as exc:
            return {"profiles": [], "error": _without_paths(str(exc), arc)}
        return {"profiles": [p.summary() for p in profiles.values()], "error": None}

    def cmd_share_cancel(self, a: dict) -> dict:
        """Stop an export before its next file; it removes what it wrote and reports ``cancelled``."""
        job = self.shares.get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown export.")
        job.cancel()
        return job.status()

    def cmd_share_preview(self, a: dict) -> dict:
        """What de-identifying the row's series, study or patient would change, on one sample instance."""
        from pocketpacs.share import ExportError
        from pocketpacs.share.preview import preview_deidentification

        arc = self._share_archive()
        uids = self._share_uids(arc, a)
        profile = self._share_profile(arc, a)
        opts = self._share_options(a)
        self._share_check(opts, profile)
        try:
            return preview_deidentification(arc, uids, opts, bool(a.get("allow_burned_in")), profile=profile)
        except ExportError as exc:
            raise BridgeError(protocol.NOT_FOUND, str(exc)) from None

    def cmd_share_start(self, a: dict) -> dict | None:
        """Export the row's series, study or patient into a folder (picked natively, or typed in serve mode)."""
        arc = self._share_archive()
        uids = self._share_uids(arc, a)
        opts = self._share_options(a)
        profile = self._share_profile(arc, a)
        self._share_check(opts, profile)
        deidentify = bool(a.get("deidentify")) or profile is not None
        if opts and not deidentify:
            raise BridgeError(protocol.BAD_REQUEST, "Options apply to a de-identified export.")
        path = self._ask(a, "pick_folder")
        if not path:
            return None
        path = os.path.abspath(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise BridgeError(protocol.BAD_REQUEST, "That is a file, not a folder.")
        if os.path.isdir(path) and os.listdir(path):
            # a folder with files in it: the export goes into a new, dated folder there
            base = os.path.join(path, "PocketPACS export " + time.strftime("%Y-%m-%d %H%M%S"))
            out, n = base, 1
            while os.path.exists(out):
                n += 1
                out = f"{base} ({n})"
            path = out
        elif not os.path.isdir(os.path.dirname(path)):
            raise BridgeError(protocol.NOT_FOUND, "The folder above that one does not exist.")
        job = ShareJob(arc, uids, path, {"deidentify": deidentify, "options": opts,
                                         "dicomdir": bool(a.get("dicomdir")), "zip": bool(a.get("zip")),
                                         "viewer": bool(a.get("dicomdir")) and bool(a.get("viewer")),
                                         "allow_burned_in": bool(a.get("allow_burned_in")),
                                         "profile": profile}).start()
        self.shares[job.id] = job
        return {"job_id": job.id, "folder": os.path.basename(path)}

    def cmd_share_status(self, a: dict) -> dict:
        """Progress and, at the end, the counts, warnings and notes of an export."""
        job = self.shares.get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown export.")
        return job.status()


def _without_paths(message: str, arc: Any) -> str:
    """A settings error for the page: the archive's folder is not shown."""
    folder = str(getattr(arc, "path", "") or "")
    return message.replace(folder + os.sep, "").replace(folder, "the archive folder") if folder else message
