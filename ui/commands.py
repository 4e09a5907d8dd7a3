"""The bridge commands: one ``cmd_<name>`` method per name of the allowlist.

:class:`Commands` is the part of :class:`~pocketpacs.ui.session.Session` that
implements every command of :data:`pocketpacs.ui.bridge.ALLOWED` (the session
binds ``cmd_<name>`` for each allowed name, and nothing else): hello, stats,
search, opening series and other image files, volume status / report / header,
removing series, imports, removable media and saving screenshots.  Commands
answer at once; long work is started on worker threads (volume jobs, import
jobs).  Ids the page sees are opaque hex and paths never travel to the page.
Errors the page may show are raised as :class:`~pocketpacs.ui.protocol.BridgeError`.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

from pocketpacs.archive import records

from . import protocol
from .health import _looks_damaged
from .import_jobs import ImportJob
from .protocol import BridgeError
from .volumes import VolumeJob

#: Longest open_series waits for the volume header to answer with it.
HEADER_INLINE_WAIT_S = 0.25


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


def _nonimage_details(arc, sid: str) -> dict | None:
    """What the objects of a series without pixels say (text for the page only), or None."""
    from pocketpacs.images.nonimage import describe_series

    try:
        paths = [os.fspath(p) for p in arc.series_files(sid, check=False)]
        return describe_series(paths) if paths else None
    except Exception:  # the answer stays "Not an image: <kind>" without its content
        return None


class Commands:
    """The bridge commands (a mixin of Session)."""

    def cmd_hello(self, a: dict) -> dict:
        """Versions, mode and what the session is showing."""
        import pocketpacs

        return {"app": "PocketPACS", "version": pocketpacs.__version__,
                "protocol_version": protocol.PROTOCOL_VERSION, "mode": self.mode,
                "media": self._media is not None, "readonly": self.readonly or self._media is not None,
                "dialogs": self.dialogs is not None, "archive_notice": self.archive_notice}

    def cmd_stats(self, a: dict) -> dict:
        """Archive totals."""
        st = self.archive.stats()
        return {k: v for k, v in dict(st).items() if isinstance(v, (int, float, str, bool))}

    def cmd_search(self, a: dict) -> dict:
        """Series matching the filters, with their patient and study."""
        from pocketpacs.archive.query import parse_date_range

        filters = {k: a[k] for k in ("name", "patient_id", "birth_date", "study_date", "modality",
                                     "description", "accession") if a.get(k)}
        if a.get("date_from") or a.get("date_to"):   # two fields, as before study_date
            filters["study_date"] = f"{a.get('date_from') or ''} to {a.get('date_to') or ''}".strip()
        for k, label in (("birth_date", "Birth date"), ("study_date", "Study date")):
            if k in filters:
                try:
                    parse_date_range(filters[k])
                except ValueError:
                    raise BridgeError(protocol.BAD_REQUEST, f"{label}: not a date or a range of dates "
                                      "(YYYY, YYYY-MM, YYYY-MM-DD, FROM-TO).") from None
        arc = self.archive
        try:
            res = arc.search(level="series", **filters)
        except ValueError as exc:
            if _looks_damaged(exc):
                raise
            raise BridgeError(protocol.BAD_REQUEST, "A search field is malformed.") from None
        rows = []
        for h in res.hits:
            p, st = h.patient, h.study
            for s in h.series:
                row = {"series_id": s.key, "patient_name": _display_name(p.name) or records.NO_NAME,
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

    def cmd_open_series(self, a: dict) -> dict:
        """Start loading a series (one stack of it: ``stack``, 0 the largest); answers at once
        with the volume id."""
        from pocketpacs.images.volume import NotAnImageError

        from .sources import open_dicom_series

        sid = a["series_id"]
        stack = int(a.get("stack") or 0)
        labels = self._labels.get(sid)
        arc = self.archive

        def make():
            try:
                arc.get_series(sid)
            except KeyError:  # removed meanwhile
                raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.") from None
            try:
                return open_dicom_series(arc, sid, labels, stack=stack)
            except IndexError:
                raise BridgeError(protocol.NOT_FOUND, "That series has no such stack.") from None
            except FileNotFoundError:
                raise BridgeError(protocol.NOT_FOUND, "That series has no files that can be read.") from None
            except NotAnImageError as exc:  # a report, SR, RT object, waveform...: say what it is
                raise BridgeError(protocol.NOT_A_VOLUME, f"Not an image: {exc.kind}",
                                  _nonimage_details(arc, sid)) from None

        job = VolumeJob(make, slot=a["slot"])
        job.series_id = sid   # its measurements are kept with the series (issue 17)
        job = self.volumes.submit(job)
        # a series planned from the archive's rows has its header within tens
        # of ms: it comes with the answer (one round trip less before the
        # first slice); a slow one is fetched from /v1/volume/<id>/header
        hdr = job.wait_header(HEADER_INLINE_WAIT_S)
        return {"volume_id": job.id, "header": hdr} if hdr is not None else {"volume_id": job.id}

    def cmd_volume_status(self, a: dict) -> dict:
        """Progress of a volume job."""
        job = self.volumes.get(a["volume_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown volume.")
        return job.status()

    def _job(self, vid: str) -> VolumeJob:
        job = self.volumes.get(vid)
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown volume.")
        if job.wait_header(30.0) is None:
            raise BridgeError(protocol.UNAVAILABLE, job.error_message())
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
            raise BridgeError(protocol.NOT_FOUND, "This image has no DICOM header.")
        out = instance_elements(path)
        out["slice"] = a["slice"]
        return out

    def cmd_remove_series(self, a: dict) -> dict:
        """Remove a series from the archive (files on disk stay)."""
        if self._media is not None or self.readonly:
            raise BridgeError(protocol.READ_ONLY, "This archive is read-only.")
        removed = self.archive.remove(series=a["series_id"])
        if not removed.get("instances"):
            raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.")
        with self._thumb_lock:
            self._thumbs.pop(a["series_id"], None)
        return {"removed": a["series_id"]}

    def _ask(self, a: dict, picker: str) -> str | None:
        path = a.get("path")
        if path:
            return os.path.expanduser(path)
        if self.dialogs is None:
            raise BridgeError(protocol.BAD_REQUEST, "Type a path: this browser cannot show a file picker.")
        return getattr(self.dialogs, picker)()

    def cmd_import_start(self, a: dict) -> dict | None:
        """Import a folder (picked natively, or typed in serve mode)."""
        if self._media is not None:
            raise BridgeError(protocol.READ_ONLY, "Close the removable media to import into the archive.")
        if self.readonly:
            raise BridgeError(protocol.READ_ONLY, self.archive_notice or "This archive is open read-only.")
        path = self._ask(a, "pick_folder")
        if not path:
            return None
        if not os.path.isdir(path):
            raise BridgeError(protocol.NOT_FOUND, "That folder does not exist.")
        job = ImportJob(self.archive, path).start()
        self.imports[job.id] = job
        return {"job_id": job.id}

    def cmd_import_status(self, a: dict) -> dict:
        """Progress and, at the end, the report of an import."""
        job = self.imports.get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown import.")
        return job.status()

    def cmd_import_cancel(self, a: dict) -> dict:
        """Ask an import to stop (files already imported stay)."""
        job = self.imports.get(a["job_id"])
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown import.")
        job.cancel_event.set()
        return {"cancelling": True}

    def cmd_open_other(self, a: dict) -> dict | None:
        """Open a NIfTI / JPEG 2000 / image file in the viewer (not archived)."""
        from .sources import ImageFileSource

        path = self._ask(a, "pick_file")
        if not path:
            return None
        if not os.path.isfile(path):
            raise BridgeError(protocol.NOT_FOUND, "That file does not exist.")
        job = self.volumes.submit(VolumeJob(lambda: ImageFileSource(path), slot=a["slot"]))
        return {"volume_id": job.id}

    def cmd_load_media(self, a: dict) -> dict | None:
        """Browse a CD/USB folder or DICOMDIR with nothing stored."""
        import pocketpacs

        path = self._ask(a, "pick_folder")
        if not path:
            return None
        if not os.path.exists(path):
            raise BridgeError(protocol.NOT_FOUND, "That folder does not exist.")
        from pocketpacs.log import pause_log_file

        pause_log_file(True)  # nothing of a media session reaches the disk, not even the log
        try:
            media = pocketpacs.open_media(path)
        except BaseException:
            with self._lock:
                in_media = self._media is not None
            pause_log_file(in_media)
            raise
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
        from pocketpacs.log import pause_log_file

        pause_log_file(False)
        return self.cmd_hello({})

    def cmd_save_png(self, a: dict) -> dict:
        """Save a screenshot (desktop app: native save dialog)."""
        if self.dialogs is None:
            raise BridgeError(protocol.UNAVAILABLE, "Saving needs the desktop app.")
        raw = base64.b64decode(a["data"].split(",", 1)[1], validate=True)
        if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
            raise BridgeError(protocol.BAD_REQUEST, "Not a PNG image.")
        target = self.dialogs.save_file("pocketpacs-screenshot.png")
        if not target:
            return {"saved": False}
        Path(target).write_bytes(raw)
        return {"saved": True}

    # ---- measurements kept with the series (issue 17) -----------------------------------
    def _measured(self, vid: str) -> tuple:
        """The series of a volume and where its measurements live:
        ``(archive or None, series id or None, kept)`` where ``kept`` is
        "archive", "media" or "readonly" (the page keeps them in memory, nothing
        is stored) or "none" (a file opened with Open Other: no series)."""
        job = self.volumes.get(vid)
        if job is None:
            raise BridgeError(protocol.NOT_FOUND, "Unknown volume.")
        sid = getattr(job, "series_id", None)
        if sid is None:
            return None, None, "none"
        arc = self.archive
        kept = "media" if self._media is not None else "readonly" if arc.readonly else "archive"
        return arc, sid, kept

    def cmd_measurements_get(self, a: dict) -> dict:
        """The measurements kept with the series of a volume, and where they are kept."""
        arc, sid, kept = self._measured(a["volume_id"])
        items: list = []
        if arc is not None:
            try:
                items = arc.measurements(sid)
            except KeyError:   # removed meanwhile
                items = []
        return {"kept": kept, "series": sid, "measurements": items}

    def cmd_measurements_save(self, a: dict) -> dict:
        """Replace the measurements of the series of a volume in the archive;
        removable media and a read-only archive store nothing (the page keeps
        them in memory)."""
        arc, sid, kept = self._measured(a["volume_id"])
        if kept != "archive":
            return {"kept": kept, "saved": 0}
        try:
            n = arc.save_measurements(sid, a["measurements"])
        except KeyError:
            raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.") from None
        except ValueError as exc:
            raise BridgeError(protocol.BAD_REQUEST, f"Measurements not saved: {exc}.") from None
        return {"kept": kept, "saved": n}

    def cmd_measurements_export(self, a: dict) -> dict:
        """The measurements as JSON or CSV text (what ``pocketpacs measurements``
        prints); the desktop app asks where to save them."""
        from pocketpacs.archive import annotations

        try:
            items = annotations.check_measurements(a["measurements"])
        except ValueError as exc:
            raise BridgeError(protocol.BAD_REQUEST, f"Measurements not exported: {exc}.") from None
        arc, sid, _kept = self._measured(a["volume_id"])
        uid = ""
        if arc is not None:
            try:
                uid = arc.get_series(sid).uid
            except KeyError:
                uid = ""
        fmt = a["format"]
        text = annotations.to_json(uid, items) if fmt == "json" else annotations.to_csv(items)
        if self.dialogs is None:
            return {"saved": False, "text": text, "name": f"measurements.{fmt}"}
        target = self.dialogs.save_file(f"measurements.{fmt}")
        if not target:
            return {"saved": False}
        from pocketpacs.paths import write_private_file

        write_private_file(target, text.encode("utf-8"))
        return {"saved": True}
