"""Import jobs: a folder imported into the archive on a worker thread.

:class:`ImportJob` runs :meth:`Archive.import_folder` on a daemon thread and
keeps the progress the page polls (files done, rate, ETA, series added);
:func:`summarize_report` reduces the archive's import report to what the page
shows (counts, skip reasons, up to 200 skipped files named relative to the
imported folder, never absolute paths).  The session's ``import_*`` commands
start, poll and cancel these jobs.
"""
from __future__ import annotations

import os
from typing import Any

from .jobs import WorkerJob


class ImportJob(WorkerJob):
    """An import running on a worker thread, with progress for the page.

    Parameters
    ----------
    archive : Archive
        Target archive.
    path : str
        Folder to import.
    """

    def __init__(self, archive: Any, path: str):
        super().__init__("import")
        self.archive = archive
        self.path = path
        self.phase = "scanning"
        self.series_before = self._series_count()
        self.files_per_s = 0.0
        self.eta = -1.0
        self.report: dict | None = None

    def _series_count(self) -> int:
        try:
            return int(self.archive.stats().get("series", 0))
        except Exception:
            return 0

    def _import_progress(self, pr: Any) -> None:
        self.phase = {"walk": "scanning", "import": "importing"}.get(pr.phase, pr.phase)
        self._progress(pr.done, pr.total if pr.total is not None else pr.seen)
        self.files_per_s = float(pr.files_per_s)
        self.eta = float(pr.eta_s) if pr.eta_s is not None else -1.0

    def _work(self) -> None:
        rep = self.archive.import_folder(self.path, progress=self._import_progress, cancel=self.cancel_event)
        self.report = summarize_report(rep, self.path)

    def _finish(self) -> None:
        self.phase = "cancelled" if self.cancel_event.is_set() else "done"

    def status(self) -> dict:
        """Progress for the page.

        Returns
        -------
        dict
            ``files_done``, ``files_total``, ``rate`` (files/s), ``eta_s``,
            ``series_added``, ``phase``, ``done``, ``cancelled``, ``report``, ``error``.
        """
        return {"job_id": self.id, "phase": self.phase, "files_done": self.done,
                "files_total": self.total, "rate": self.files_per_s, "eta_s": self.eta,
                "series_added": max(self._series_count() - self.series_before, 0),
                "done": self.finished, "cancelled": self.cancel_event.is_set(),
                "report": self.report, "error": self.error}


def summarize_report(rep: Any, root: str) -> dict:
    """Reduce an :class:`~pocketpacs.archive.report.ImportReport` to what the page shows.

    Parameters
    ----------
    rep : ImportReport
        The archive's import report.
    root : str
        The imported folder; skipped files are named relative to it.

    Returns
    -------
    dict
        ``seen`` (files looked at), which ``added``, ``unchanged``,
        ``relinked`` (moved files found again), ``duplicates`` (a second
        copy of an archived instance), ``conflicts`` (same UID, other
        content) and ``skipped`` add up to; ``reasons`` (reason -> count),
        ``skipped_files`` (up to 200 ``{"name", "reason"}``).
    """
    d = rep.to_json()
    c = d["counts"]
    reasons: dict[str, int] = {}
    files = []
    for f in d["failed"]:
        reasons[f["reason"]] = reasons.get(f["reason"], 0) + 1
        if len(files) < 200:
            try:
                name = os.path.relpath(f["path"], root)
            except ValueError:
                name = os.path.basename(f["path"])
            # names that are not valid UTF-8 (surrogate escapes) are shown with U+FFFD
            name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            files.append({"name": name, "reason": f["reason"]})
    return {"seen": c["seen"], "added": c["indexed"], "unchanged": c["unchanged"],
            "relinked": c["relinked"], "skipped": c["failed"],
            "duplicates": c["duplicate"], "conflicts": c["conflict"], "reasons": reasons,
            "skipped_files": files, "cancelled": d["cancelled"]}
