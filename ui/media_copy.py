"""Copying a loaded CD/USB into a folder, then importing that folder.

"Copy this disc into the archive…" (CD/USB mode): the files of the medium
are copied into a folder the user picked, with the medium's folder layout,
folders made 0700 and files 0600, never overwriting anything already there
(a file of the same name is left as it is and counted); then the folder is
imported into the archive (the archive only indexes files where they are,
so the copy is what stays).  :class:`CopyJob` runs both on a worker thread
and answers ``import_status`` like an import job: a ``copying`` phase first,
then the import's own progress and report, with what the copy did added.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from .jobs import WorkerJob

log = logging.getLogger("pocketpacs.ui.session")

_CHUNK = 1 << 20


def copy_tree(src: str, dest: str, progress: Callable[[int, int], None] | None = None,
              cancel: threading.Event | None = None) -> dict:
    """Copy every file under *src* into *dest* with the same relative paths.

    Folders are created 0700 and files 0600 with ``O_EXCL``: an existing
    file (or link) is never overwritten nor followed, and folders that
    already exist (the destination the user picked) keep their mode.  Links
    in *src* are not followed.

    Parameters
    ----------
    src, dest : str
        The medium's folder and the destination folder.
    progress : callable, optional
        ``progress(done, total)`` after each file.
    cancel : threading.Event, optional
        Stops between files when set.

    Returns
    -------
    dict
        ``copied``, ``existing`` (left as they were), ``failed`` and ``bytes``.
    """
    files: list[str] = []
    for root, dirs, names in os.walk(src, followlinks=False):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(root, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(os.path.relpath(p, src))
    out = {"copied": 0, "existing": 0, "failed": 0, "bytes": 0}
    _make_dirs(dest)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for i, rel in enumerate(files):
        if cancel is not None and cancel.is_set():
            break
        target = os.path.join(dest, rel)
        try:
            _make_dirs(os.path.dirname(target))
            fd = os.open(target, flags, 0o600)
        except FileExistsError:
            out["existing"] += 1
        except OSError as exc:
            log.warning("copy: a file could not be created (%s)", type(exc).__name__)
            out["failed"] += 1
        else:
            try:
                with open(os.path.join(src, rel), "rb") as fin, os.fdopen(fd, "wb") as fout:
                    while True:
                        buf = fin.read(_CHUNK)
                        if not buf:
                            break
                        fout.write(buf)
                        out["bytes"] += len(buf)
                out["copied"] += 1
            except OSError as exc:
                log.warning("copy: a file could not be copied (%s)", type(exc).__name__)
                out["failed"] += 1
                try:
                    os.unlink(target)   # no half-written copy left behind
                except OSError:
                    pass
        if progress is not None:
            progress(i + 1, len(files))
    out["files"] = len(files)
    return out


def _make_dirs(path: str) -> None:
    """Create *path* and its missing parents, each 0700; existing folders are left as they are."""
    missing = []
    cur = os.path.abspath(path)
    while not os.path.isdir(cur):
        missing.append(cur)
        parent = os.path.dirname(cur)
        if parent == cur:
            break
        cur = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
            continue
        os.chmod(d, 0o700)      # whatever the umask


class CopyJob(WorkerJob):
    """Copy a medium into a folder, then import the folder (one job for the page).

    Parameters
    ----------
    src, dest : str
        The medium's folder and the destination.
    start_import : callable
        ``start_import(dest)`` returns the import job of the folder, not yet
        started (:class:`pocketpacs.ui.import_jobs.ImportJob`).
    """

    def __init__(self, src: str, dest: str, start_import: Callable[[str], Any]):
        super().__init__("copy")
        self.src, self.dest = src, dest
        self._start_import = start_import
        self.copy: dict | None = None
        self.importer: Any = None

    def _work(self) -> None:
        self.copy = copy_tree(self.src, self.dest, self._progress, self.cancel_event)
        if not self.cancel_event.is_set():
            job = self._start_import(self.dest)
            job.cancel_event = self.cancel_event   # one Cancel stops both
            self.importer = job.start()

    def status(self) -> dict:
        """Progress for the page, in the shape of an import job's status plus ``copy``."""
        imp = self.importer
        if imp is not None:
            st = imp.status()
            st["job_id"] = self.id
            st["copy"] = self.copy
            st["error"] = st["error"] or self.error
            return st
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 and self.total else -1.0
        return {"job_id": self.id, "phase": "copying", "files_done": self.done,
                "files_total": self.total, "rate": rate, "eta_s": eta, "series_added": 0,
                "done": self.finished, "cancelled": self.cancel_event.is_set(), "report": None,
                "error": self.error, "copy": self.copy}


def inside(a: str, b: str) -> bool:
    """Whether folder *a* is *b* or lies under it (after resolving links)."""
    ra, rb = Path(a).resolve(), Path(b).resolve()
    return ra == rb or rb in ra.parents
