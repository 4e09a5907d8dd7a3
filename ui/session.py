"""The app session: the archive (or removable media), jobs, and the bridge commands.

One :class:`Session` per launch.  It implements every command of
:data:`pocketpacs.ui.bridge.ALLOWED` (bound with :func:`bridge.bind`) and the
three things :class:`~pocketpacs.ui.server.DataServer` asks for: commands over
HTTP, volume streams and thumbnails.  Long work (import, assembly, decoding,
thumbnails) runs on worker threads; commands only start it and answer at once.

Ids the page sees are opaque hex: series keys from the archive (hashes of
UIDs), random volume and job ids.  Paths never travel to the page in the
desktop app (the native pickers run here); in serve mode the page may *send*
a typed path (the user's own input) but never receives one.
"""
from __future__ import annotations

import base64
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from pocketpacs.errors import REBUILD_ADVICE

from . import bridge
from . import protocol as P
from .protocol import BridgeError
from .volumes import JobRegistry, VolumeJob

log = logging.getLogger("pocketpacs.ui.session")

THUMB_SIZE = 64
DAMAGED_NOTICE = f"The archive database is damaged. Close PocketPACS: {REBUILD_ADVICE}."
MAX_ROWS = 5000
#: Longest open_series waits for the volume header to answer with it.
HEADER_INLINE_WAIT_S = 0.25


def _looks_damaged(exc: BaseException) -> bool:
    """An LMDB error, or a stored record that does not decode."""
    if type(exc).__module__ == "lmdb":
        return True
    import orjson

    from pocketpacs.errors import ArchiveDamaged

    return isinstance(exc, (orjson.JSONDecodeError, UnicodeDecodeError, ArchiveDamaged))


def _display_name(pn: str) -> str:
    """DICOM person name ``Family^Given^Middle^Prefix^Suffix`` as ``Family, Given Middle``."""
    first = (pn or "").split("=")[0]
    parts = first.split("^")
    family = parts[0].strip()
    given = " ".join(p.strip() for p in parts[1:3] if p.strip())
    return f"{family}, {given}" if family and given else (family or given)


def _fmt_date(d: str) -> str:
    d = (d or "").strip()
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d


class ImportJob:
    """An import running on a worker thread, with progress for the page.

    Parameters
    ----------
    archive : Archive
        Target archive.
    path : str
        Folder to import.
    """

    def __init__(self, archive: Any, path: str):
        self.id = secrets.token_hex(16)
        self.archive = archive
        self.path = path
        self.cancel_event = threading.Event()
        self.started = time.monotonic()
        self.phase = "scanning"
        self.done_files = 0
        self.total_files = 0
        self.series_before = self._series_count()
        self.rate = 0.0
        self.eta = -1.0
        self.report: dict | None = None
        self.error: dict | None = None
        self.finished = False
        self._thread = threading.Thread(target=self._run, name="pocketpacs-import", daemon=True)

    def _series_count(self) -> int:
        try:
            return int(self.archive.stats().get("series", 0))
        except Exception:
            return 0

    def start(self) -> "ImportJob":
        """Start the worker.

        Returns
        -------
        ImportJob
            ``self``.
        """
        self._thread.start()
        return self

    def _progress(self, pr: Any) -> None:
        self.phase = {"walk": "scanning", "import": "importing"}.get(pr.phase, pr.phase)
        self.done_files = int(pr.done)
        self.total_files = int(pr.total if pr.total is not None else pr.seen)
        self.rate = float(pr.files_per_s)
        self.eta = float(pr.eta_s) if pr.eta_s is not None else -1.0

    def _run(self) -> None:
        try:
            rep = self.archive.import_folder(self.path, progress=self._progress,
                                             cancel=self.cancel_event)
            self.report = summarize_report(rep, self.path)
        except Exception as exc:
            log.warning("import failed: %s", type(exc).__name__)
            self.error = P.envelope_for_exception(exc)["error"]
        finally:
            self.phase = "cancelled" if self.cancel_event.is_set() else "done"
            self.finished = True

    def status(self) -> dict:
        """Progress for the page.

        Returns
        -------
        dict
            ``files_done``, ``files_total``, ``rate`` (files/s), ``eta_s``,
            ``series_added``, ``phase``, ``done``, ``cancelled``, ``report``, ``error``.
        """
        return {"job_id": self.id, "phase": self.phase, "files_done": self.done_files,
                "files_total": self.total_files, "rate": self.rate, "eta_s": self.eta,
                "series_added": max(self._series_count() - self.series_before, 0),
                "done": self.finished, "cancelled": self.cancel_event.is_set(),
                "report": self.report, "error": self.error}


def summarize_report(rep: Any, root: str) -> dict:
    """Reduce an :class:`~pocketpacs.archive.ingest.ImportReport` to what the page shows.

    Parameters
    ----------
    rep : ImportReport
        The archive's import report.
    root : str
        The imported folder; skipped files are named relative to it.

    Returns
    -------
    dict
        ``added``, ``unchanged``, ``skipped``, ``reasons`` (reason -> count),
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
    return {"added": c["indexed"], "unchanged": c["unchanged"], "skipped": c["failed"],
            "duplicates": c["duplicate"], "conflicts": c["conflict"], "reasons": reasons,
            "skipped_files": files, "cancelled": d["cancelled"]}


class Session:
    """State of one launch and the implementation of the bridge commands.

    Parameters
    ----------
    archive_path : str, optional
        Archive folder (the default location when None).
    readonly : bool
        Open the archive read-only.
    mode : {"app", "serve"}
        Desktop window or browser.
    """

    def __init__(self, archive_path: str | None = None, readonly: bool = False, mode: str = "serve"):
        self.archive_path = archive_path
        self.readonly = readonly
        self.mode = mode
        self.dialogs: Any = None
        self._archive: Any = None
        self._media: Any = None
        self._lock = threading.RLock()
        self.volumes = JobRegistry()
        self.imports: dict[str, ImportJob] = {}
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._thumb_lock = threading.Lock()
        self._labels: dict[str, dict] = {}
        self._warmed = False
        #: Why the archive is read-only or unusable (None when all is well);
        #: shown by the page and printed at startup.
        self.archive_notice: str | None = None
        self._damaged: str | None = None
        self._closed = False
        self._check_thread: threading.Thread | None = None
        self._warmup: threading.Thread | None = None
        self._closing = threading.Event()   # stops the warm-up and the background check
        #: seconds before the background check of the archive starts
        self.check_delay = 2.0
        bridge.bind({name: self._guarded(getattr(self, f"cmd_{name}")) for name in bridge.ALLOWED})

    def _guarded(self, fn: Any) -> Any:
        """``fn`` whose failures that smell of a damaged database (LMDB errors,
        records that do not decode) are confirmed by a deep check in a child
        process and then reported as a damaged archive."""
        def call(a: Any) -> Any:
            try:
                return fn(a)
            except Exception as exc:
                if self._media is None and self._damaged is None and _looks_damaged(exc):
                    self._confirm_damage()
                    if self._damaged is not None:
                        raise BridgeError(P.UNAVAILABLE, self._damaged) from None
                raise
        call.__name__ = getattr(fn, "__name__", "command")
        call.__doc__ = getattr(fn, "__doc__", None)
        return call

    def _confirm_damage(self) -> None:
        from pocketpacs.archive.integrity import deep_check

        arc = self._archive
        if arc is None or arc.path is None:
            return
        try:
            res = deep_check(arc.path)
        except Exception as exc:
            log.info("archive check skipped: %s", type(exc).__name__)
            return
        if res.status == "damaged":
            with self._lock:
                self._set_damaged()

    # ----------------------------------------------------------- archive
    @property
    def archive(self) -> Any:
        """The archive being browsed: the media session when one is open."""
        with self._lock:
            if self._media is not None:
                return self._media
            if self._damaged is not None:
                raise BridgeError(P.UNAVAILABLE, self._damaged)
            if self._archive is None:
                if self._closed:  # e.g. the warm-up thread after close(): never reopen
                    raise BridgeError(P.UNAVAILABLE, "The session is closed.")
                self._archive = self._open_archive()
                if getattr(self._archive, "unclean", False):
                    self.start_background_check(self.check_delay)
            return self._archive

    def _open_archive(self) -> Any:
        """Open the archive; fall back to read-only when another PocketPACS
        writes to it or its folder cannot be written; a damaged archive is
        reported (with the rebuild command), never opened."""
        import pocketpacs
        from pocketpacs.errors import ArchiveDamaged, ArchiveLocked, ArchiveReadOnly

        try:
            # after an unclean shutdown (a killed app) the whole-database
            # check runs in the background (startup_check), not before the list
            return pocketpacs.open_archive(self.archive_path, readonly=self.readonly,
                                           check_unclean=False)
        except (ArchiveLocked, ArchiveReadOnly) as exc:
            locked = isinstance(exc, ArchiveLocked)
            try:
                ar = pocketpacs.open_archive(self.archive_path, readonly=True)
            except pocketpacs.ArchiveError:
                raise exc from None
            self.readonly = True
            self.archive_notice = ("Another PocketPACS is writing to this archive: it is open read-only "
                                   "(browse and view only)." if locked else
                                   "The archive folder cannot be written: it is open read-only.")
            log.warning("archive opened read-only: %s", "in use by another process" if locked
                        else "folder not writable")
            return ar
        except ArchiveDamaged:
            self._set_damaged()
            raise BridgeError(P.UNAVAILABLE, self._damaged) from None

    def _set_damaged(self) -> None:
        self._damaged = self.archive_notice = DAMAGED_NOTICE
        log.warning("the archive database is damaged; %s", REBUILD_ADVICE)

    def start_background_check(self, delay: float = 2.0) -> threading.Thread | None:
        """Read the whole archive database in a child process (low priority)
        and, when it is damaged, stop using it and say so.

        A damaged file can make LMDB crash the process that reads it or
        return garbage; the child takes that risk instead of the app.  The
        open itself already refuses truncated files and checks the file
        after an unclean shutdown; this catches damage that happened
        otherwise (disk errors, other programs).

        Parameters
        ----------
        delay : float
            Seconds to wait first (the first search and frame go first).

        Returns
        -------
        threading.Thread or None
            The worker (None for media or a missing archive).
        """
        arc = self._archive
        if arc is None or arc.path is None:
            return None
        if self._check_thread is not None and self._check_thread.is_alive():
            return self._check_thread
        path = arc.path

        def work() -> None:
            from pocketpacs.archive.integrity import deep_check

            if delay:
                time.sleep(delay)
            if self._closed:
                return
            try:
                res = deep_check(path, nice=10, cancel=self._closing)
            except Exception as exc:
                log.info("background archive check skipped: %s", type(exc).__name__)
                return
            if res.status == "damaged":
                with self._lock:
                    self._set_damaged()
            elif res.status == "inconsistent":
                log.warning("archive check: %d invariant violation(s); `pocketpacs verify` repairs counts",
                            len(res.problems))

        t = threading.Thread(target=work, name="pocketpacs-archive-check", daemon=True)
        self._check_thread = t
        t.start()
        return t

    def startup_check(self, background: bool = True) -> str | None:
        """Open the archive now (not at the first command) and say what is wrong, if anything.

        With ``background`` the whole database is then read in a child
        process (:meth:`start_background_check`).

        Returns
        -------
        str or None
            The notice to show (read-only fallback, damaged archive), or None.
        """
        try:
            arc = self.archive
            if background or getattr(arc, "unclean", False):
                self.start_background_check(self.check_delay)
        except BridgeError:
            pass
        except Exception as exc:  # another archive error: the page reports it per command
            self.archive_notice = "The archive could not be opened."
            log.warning("the archive could not be opened: %s", type(exc).__name__)
            from pocketpacs.archive.integrity import deep_check
            from pocketpacs.paths import default_archive_dir

            path = self.archive_path or str(default_archive_dir())
            if os.path.exists(os.path.join(path, "data.mdb")):
                if deep_check(path).status == "damaged":   # in a child: this process is safe
                    self._set_damaged()
        return self.archive_notice

    def close(self) -> None:
        """Cancel work, wait (briefly) for the workers, and close the archive."""
        self._closing.set()
        self.volumes.clear(wait=10.0)
        for job in list(self.imports.values()):
            job.cancel_event.set()
        warm = self._warmup
        if warm is not None and warm is not threading.current_thread():
            warm.join(10.0)
        with self._lock:
            self._closed = True
            for a in (self._media, self._archive):
                if a is not None:
                    try:
                        a.close()
                    except Exception:
                        pass
            self._media = self._archive = None

    def start_warmup(self) -> threading.Thread:
        """Load the readers' compiled kernels in the background (after the first search).

        First what opening an archived series from its stored rows needs:
        the middle slice of the archive's first series is read that way
        (a series the rows cannot plan is left to the second step).  Then,
        only when the rows could not plan that series (records from before
        the rows held every needed value) and no volume has been asked for
        yet, the header parser's kernels, by parsing three files: loading
        them takes about half a second with the native lock held, which a
        series opened meanwhile would wait for.  Errors are ignored.

        Returns
        -------
        threading.Thread
            The (daemon) worker.
        """
        def busy() -> bool:
            return self.volumes.submitted > 0 or self._closing.is_set()

        def work() -> None:
            try:
                from .sources import NATIVE_LOCK, DicomSeriesSource, archive_rows

                arc = self.archive
                res = arc.search(level="series", limit=1)
                for key in [s.key for h in res.hits for s in h.series[:1]][:1]:
                    if busy():
                        return
                    got = archive_rows(arc, key)
                    if got is not None:
                        DicomSeriesSource(got[0], batch=got[1]).close()
                        return
                    from pocketpacs.dicom.headers import parse_files

                    paths = [os.fspath(p) for p in arc.series_files(key, check=False)][:3]
                    with NATIVE_LOCK:
                        if paths and not busy():
                            parse_files(paths)
                    if paths and not busy():
                        DicomSeriesSource(paths).close()
            except Exception as exc:
                log.info("warm-up skipped: %s", type(exc).__name__)

        t = threading.Thread(target=work, name="pocketpacs-warmup", daemon=True)
        self._warmup = t
        t.start()
        return t

    # ----------------------------------------------------------- server hooks
    def call(self, name: str, args: Any) -> dict:
        """Run a command for the HTTP transport (same table as the bridge).

        Parameters
        ----------
        name : str
        args : Any

        Returns
        -------
        dict
            Envelope.
        """
        return bridge.call(name, args)

    def volume_stream(self, vid: str) -> VolumeJob | None:
        """The volume job *vid*, or None.

        Parameters
        ----------
        vid : str

        Returns
        -------
        VolumeJob or None
        """
        return self.volumes.get(vid)

    def thumbnail(self, sid: str) -> bytes | None:
        """A uint8 thumbnail frame of series *sid* (cached), or None.

        Parameters
        ----------
        sid : str
            Series key.

        Returns
        -------
        bytes or None
        """
        with self._thumb_lock:
            if sid in self._thumbs:
                return self._thumbs[sid]
        try:
            img = self._make_thumbnail(sid)
        except Exception as exc:
            log.info("thumbnail failed: %s", type(exc).__name__)
            return None
        if img is None:
            return None
        frame = P.encode_frame({"shape": list(img.shape), "dtype": "uint8"}, img)
        with self._thumb_lock:
            self._thumbs[sid] = frame
            while len(self._thumbs) > 2000:
                self._thumbs.popitem(last=False)
        return frame

    def _make_thumbnail(self, sid: str) -> np.ndarray | None:
        from pocketpacs.native.reference import window_u8
        from pocketpacs.images.thumbs import shrink

        from .sources import open_dicom_series

        try:
            src = open_dicom_series(self.archive, sid)
        except FileNotFoundError:
            return None
        try:
            hdr = src.header()
            mid = hdr.shape[0] // 2
            whole = src.whole()
            if whole is not None:
                img = whole[mid]
            else:
                img = np.empty(hdr.shape[1:], dtype=hdr.dtype)
                src.read_into(mid, mid + 1, img[None])
        finally:
            src.close()
        w = hdr.windows[0] if hdr.windows else {"center": 0.0, "width": 1.0}
        # the window is in real units; apply it to stored values
        c = (w["center"] - hdr.intercept) / hdr.slope
        wd = w["width"] / abs(hdr.slope)
        # one slice, windowed by the NumPy reference of the window kernel (same
        # values, tested): thumbnails are asked for as the list appears, and
        # loading the compiled kernel there held the interpreter for 0.7-1 s
        # while the user's first open waited
        out = window_u8(np.ascontiguousarray(img), c, wd, hdr.invert)
        return shrink(out, THUMB_SIZE)

    # ----------------------------------------------------------- commands
    def cmd_hello(self, a: dict) -> dict:
        """Versions, mode and what the session is showing."""
        import pocketpacs

        return {"app": "PocketPACS", "version": pocketpacs.__version__,
                "protocol_version": P.PROTOCOL_VERSION, "mode": self.mode,
                "media": self._media is not None, "readonly": self.readonly or self._media is not None,
                "dialogs": self.dialogs is not None, "archive_notice": self.archive_notice}

    def cmd_stats(self, a: dict) -> dict:
        """Archive totals."""
        st = self.archive.stats()
        return {k: v for k, v in dict(st).items() if isinstance(v, (int, float, str, bool))}

    def cmd_search(self, a: dict) -> dict:
        """Series matching the filters, with their patient and study."""
        filters = {k: a[k] for k in ("name", "patient_id", "birth_date", "modality",
                                     "description", "accession") if a.get(k)}
        if a.get("date_from") or a.get("date_to"):
            filters["study_date"] = f"{a.get('date_from') or ''}-{a.get('date_to') or ''}"
        arc = self.archive
        try:
            res = arc.search(level="series", **filters)
        except ValueError as exc:
            if _looks_damaged(exc):
                raise
            raise BridgeError(P.BAD_REQUEST, "A search field is malformed.") from None
        rows = []
        for h in res.hits:
            p, st = h.patient, h.study
            for s in h.series:
                row = {"series_id": s.key, "patient_name": _display_name(p.name) or "(no name)",
                       "patient_id": p.patient_id, "birth_date": _fmt_date(p.birth_date),
                       "study_date": _fmt_date(st.date), "study_description": st.description,
                       "accession": st.accession, "modality": s.modality,
                       "series_description": s.description, "series_number": s.number,
                       "images": s.n_instances, "offline": s.n_offline > 0}
                rows.append(row)
                self._labels[s.key] = {
                    "patient_name": row["patient_name"], "patient_id": p.patient_id,
                    "birth_date": row["birth_date"], "study_description": st.description,
                    "study_date": row["study_date"], "series_description": s.description,
                    "modality": s.modality}
        if not self._warmed:          # after the first list is on its way, not before
            self._warmed = True
            self.start_warmup()
        truncated = len(rows) > a["limit"]
        rows = rows[:a["limit"]]
        counts = {"patients": res.n_patients,
                  "studies": res.n_studies, "series": res.n_series, "images": res.n_instances}
        return {"rows": rows, "counts": counts, "truncated": truncated}

    def _series_paths(self, sid: str) -> list[str]:
        paths = self.archive.series_files(sid)
        if not paths:
            raise BridgeError(P.NOT_FOUND, "That series has no files that can be read.")
        return [os.fspath(p) for p in paths]

    def cmd_open_series(self, a: dict) -> dict:
        """Start loading a series; answers at once with the volume id."""
        from .sources import open_dicom_series

        sid = a["series_id"]
        labels = self._labels.get(sid)
        arc = self.archive

        def make():
            try:
                return open_dicom_series(arc, sid, labels)
            except FileNotFoundError:
                raise BridgeError(P.NOT_FOUND, "That series has no files that can be read.") from None

        job = self.volumes.submit(VolumeJob(make, slot=a["slot"]))
        # a series planned from the archive's rows has its header within tens
        # of ms: it comes with the answer (one round trip less before the
        # first slice); a slow one is fetched from /v1/volume/<id>/header
        hdr = job.wait_header(HEADER_INLINE_WAIT_S)
        return {"volume_id": job.id, "header": hdr} if hdr is not None else {"volume_id": job.id}

    def cmd_volume_status(self, a: dict) -> dict:
        """Progress of a volume job."""
        job = self.volumes.get(a["volume_id"])
        if job is None:
            raise BridgeError(P.NOT_FOUND, "Unknown volume.")
        return job.status()

    def _job(self, vid: str) -> VolumeJob:
        job = self.volumes.get(vid)
        if job is None:
            raise BridgeError(P.NOT_FOUND, "Unknown volume.")
        if job.wait_header(30.0) is None:
            raise BridgeError(P.UNAVAILABLE, job.error_message())
        return job

    def cmd_volume_report(self, a: dict) -> dict:
        """The assembly report of a volume (stacks, splits, spacing, gaps, tilt), no paths."""
        job = self._job(a["volume_id"])
        return {"report": job.report}

    def cmd_instance_header(self, a: dict) -> dict:
        """Every element of the instance holding one slice of a volume (header browser)."""
        from pocketpacs.dicom.dicominfo import instance_elements

        job = self._job(a["volume_id"])
        path = job.slice_file(a["slice"])
        if path is None:
            raise BridgeError(P.NOT_FOUND, "This image has no DICOM header.")
        out = instance_elements(path)
        out["slice"] = a["slice"]
        return out

    def cmd_remove_series(self, a: dict) -> dict:
        """Remove a series from the archive (files on disk stay)."""
        if self._media is not None or self.readonly:
            raise BridgeError(P.READ_ONLY, "This archive is read-only.")
        self.archive.remove(series=a["series_id"])
        with self._thumb_lock:
            self._thumbs.pop(a["series_id"], None)
        return {"removed": a["series_id"]}

    def _ask(self, a: dict, picker: str) -> str | None:
        path = a.get("path")
        if path:
            return os.path.expanduser(path)
        if self.dialogs is None:
            raise BridgeError(P.BAD_REQUEST, "Type a path: this browser cannot show a file picker.")
        return getattr(self.dialogs, picker)()

    def cmd_import_start(self, a: dict) -> dict | None:
        """Import a folder (picked natively, or typed in serve mode)."""
        if self._media is not None:
            raise BridgeError(P.READ_ONLY, "Close the removable media to import into the archive.")
        if self.readonly:
            raise BridgeError(P.READ_ONLY, self.archive_notice or "This archive is open read-only.")
        path = self._ask(a, "pick_folder")
        if not path:
            return None
        if not os.path.isdir(path):
            raise BridgeError(P.NOT_FOUND, "That folder does not exist.")
        job = ImportJob(self.archive, path).start()
        self.imports[job.id] = job
        return {"job_id": job.id}

    def cmd_import_status(self, a: dict) -> dict:
        """Progress and, at the end, the report of an import."""
        job = self.imports.get(a["job_id"])
        if job is None:
            raise BridgeError(P.NOT_FOUND, "Unknown import.")
        return job.status()

    def cmd_import_cancel(self, a: dict) -> dict:
        """Ask an import to stop (files already imported stay)."""
        job = self.imports.get(a["job_id"])
        if job is None:
            raise BridgeError(P.NOT_FOUND, "Unknown import.")
        job.cancel_event.set()
        return {"cancelling": True}

    def cmd_open_other(self, a: dict) -> dict | None:
        """Open a NIfTI / JPEG 2000 / image file in the viewer (not archived)."""
        from .sources import ImageFileSource

        path = self._ask(a, "pick_file")
        if not path:
            return None
        if not os.path.isfile(path):
            raise BridgeError(P.NOT_FOUND, "That file does not exist.")
        job = self.volumes.submit(VolumeJob(lambda: ImageFileSource(path), slot=a["slot"]))
        return {"volume_id": job.id}

    def cmd_load_media(self, a: dict) -> dict | None:
        """Browse a CD/USB folder or DICOMDIR with nothing stored."""
        import pocketpacs

        path = self._ask(a, "pick_folder")
        if not path:
            return None
        if not os.path.exists(path):
            raise BridgeError(P.NOT_FOUND, "That folder does not exist.")
        media = pocketpacs.open_media(path)
        with self._lock:
            old, self._media = self._media, media
        if old is not None:
            old.close()
        self.volumes.clear()
        return self.cmd_hello({})

    def cmd_close_media(self, a: dict) -> dict:
        """Leave the media session and forget everything it loaded."""
        with self._lock:
            old, self._media = self._media, None
        if old is not None:
            self.volumes.clear()
            with self._thumb_lock:
                self._thumbs.clear()
            self._labels.clear()
            old.close()
        return self.cmd_hello({})

    def cmd_save_png(self, a: dict) -> dict:
        """Save a screenshot (desktop app: native save dialog)."""
        if self.dialogs is None:
            raise BridgeError(P.UNAVAILABLE, "Saving needs the desktop app.")
        raw = base64.b64decode(a["data"].split(",", 1)[1], validate=True)
        if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
            raise BridgeError(P.BAD_REQUEST, "Not a PNG image.")
        target = self.dialogs.save_file("pocketpacs-screenshot.png")
        if not target:
            return {"saved": False}
        Path(target).write_bytes(raw)
        return {"saved": True}
