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


def _orientation(arc, sid: str) -> str:
    """``axial``, ``coronal``, ``sagittal``, ``oblique`` or ``""`` (no orientation stored)
    of an archived series, from its first image's stored Image Orientation (Patient)."""
    import numpy as np

    from pocketpacs.dicom import tags

    try:
        _, rows = arc.series_table(sid)
    except KeyError:
        return ""
    c = int(tags.NUM_START[tags.INDEX["ImageOrientationPatient"]])
    if c < 0 or not len(rows):
        return ""
    iop = rows["nums"][:, c:c + 6].astype(np.float64)
    iop = iop[np.isfinite(iop).all(axis=1)]
    if not len(iop):
        return ""
    n = np.cross(iop[0, :3], iop[0, 3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        return ""
    n = np.abs(n) / norm
    axis = int(np.argmax(n))
    return ("sagittal", "coronal", "axial")[axis] if n[axis] > 0.8 else "oblique"


def _closeness(want_desc: str, want_orient: str, s, orient: str) -> tuple:
    """Sort key of a prior's series: the same orientation first, then the closest description."""
    from difflib import SequenceMatcher

    a, b = (want_desc or "").casefold().strip(), (s.description or "").casefold().strip()
    return (orient == want_orient and orient != "", SequenceMatcher(None, a, b).ratio() if a or b else 0.0)


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

    def _search_results(self, a: dict):
        """Run the archive search of the page's filters (shared by search and browse)."""
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
        if not self._warmed:          # after the first list is on its way, not before
            self._warmed = True
            self.start_warmup()
        return res

    def _series_row(self, p, st, s) -> dict:
        """The page's row of one series (and its labels kept for the viewer's overlay)."""
        row = {"series_id": s.key, "patient_name": _display_name(p.name) or records.NO_NAME,
               "patient_id": p.patient_id, "birth_date": _fmt_date(p.birth_date),
               "study_date": _fmt_date(st.date), "study_description": st.description,
               "accession": st.accession, "modality": s.modality,
               "series_description": s.description, "series_number": s.number,
               "images": s.n_instances, "offline": s.n_offline > 0}
        self._labels[s.key] = {
            "patient_name": row["patient_name"], "patient_id": p.patient_id,
            "birth_date": row["birth_date"], "study_description": st.description,
            "study_date": row["study_date"], "series_description": s.description,
            "modality": s.modality}
        return row

    def cmd_search(self, a: dict) -> dict:
        """Series matching the filters, with their patient and study."""
        res = self._search_results(a)
        rows = [self._series_row(h.patient, h.study, s) for h in res.hits for s in h.series]
        truncated = len(rows) > a["limit"]
        rows = rows[:a["limit"]]
        counts = {"patients": res.n_patients,
                  "studies": res.n_studies, "series": res.n_series, "images": res.n_instances}
        return {"rows": rows, "counts": counts, "truncated": truncated}

    def cmd_browse(self, a: dict) -> dict:
        """The matching series as a patient -> study -> series tree with counts.

        Same filters as ``search``; each patient and study carries the number
        of its matching studies, series and images.  At most ``limit`` series
        are listed (``truncated`` says when more matched).
        """
        res = self._search_results(a)
        patients: dict[str, dict] = {}
        n = 0
        truncated = False
        for h in res.hits:
            p, st = h.patient, h.study
            if n + len(h.series) > a["limit"]:
                truncated = True
                break
            pn = patients.get(p.key)
            if pn is None:
                pn = patients[p.key] = {
                    "patient_key": p.key, "patient_name": _display_name(p.name) or records.NO_NAME,
                    "patient_id": p.patient_id, "birth_date": _fmt_date(p.birth_date),
                    "studies": [], "n_studies": 0, "n_series": 0, "images": 0, "offline": False}
            series = [self._series_row(p, st, s) for s in h.series]
            n += len(series)
            images = sum(r["images"] for r in series)
            offline = any(r["offline"] for r in series)
            mods = " ".join(sorted({r["modality"] for r in series if r["modality"]}))
            pn["studies"].append({
                "study_key": st.key, "study_date": _fmt_date(st.date), "study_description": st.description,
                "accession": st.accession, "modality": mods,
                "n_series": len(series), "images": images, "offline": offline, "series": series})
            pn["n_studies"] += 1
            pn["n_series"] += len(series)
            pn["images"] += images
            pn["offline"] = pn["offline"] or offline
        counts = {"patients": res.n_patients,
                  "studies": res.n_studies, "series": res.n_series, "images": res.n_instances}
        return {"patients": list(patients.values()), "counts": counts, "truncated": truncated}

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

    def cmd_priors(self, a: dict) -> dict:
        """The same patient's other studies holding series of this series' modality: earlier
        studies first, the most recent of them first, then later ones; in each study its series
        of that modality and ``best``, the one closest to this series (same orientation, then
        the closest description)."""
        arc = self.archive
        try:
            cur = arc.get_series(a["series_id"])
            study = arc.study(cur.study_key)
            patient = arc.patient(cur.patient_key)
        except KeyError:
            raise BridgeError(protocol.NOT_FOUND, "No such series in the archive.") from None
        modality = cur.modality
        orient = _orientation(arc, cur.key)
        name = _display_name(patient.name) or records.NO_NAME
        found = []
        for st in arc.studies(patient.key):
            if st.key == study.key:
                continue
            same = [s for s in arc.series(st.key) if s.modality == modality]
            if not same:
                continue
            rows = []
            for s in same:
                o = _orientation(arc, s.key)
                rows.append((s, o))
                self._labels[s.key] = {
                    "patient_name": name, "patient_id": patient.patient_id,
                    "birth_date": _fmt_date(patient.birth_date), "study_description": st.description,
                    "study_date": _fmt_date(st.date), "series_description": s.description,
                    "modality": s.modality}
            best = max(rows, key=lambda r: _closeness(cur.description, orient, r[0], r[1]))[0]
            earlier = bool(st.date and study.date and st.date < study.date)
            found.append((earlier, st, rows, best))
        # earlier studies first, most recent first; then later (or undated) ones, most recent first
        earlier = sorted((f for f in found if f[0]), key=lambda f: (f[1].date, f[1].time), reverse=True)
        later = sorted((f for f in found if not f[0]), key=lambda f: (f[1].date, f[1].time), reverse=True)
        studies = [{"study_id": st.key, "study_date": _fmt_date(st.date), "study_description": st.description,
                    "prior": e, "best": best.key,
                    "series": [{"series_id": s.key, "series_description": s.description, "series_number": s.number,
                                "orientation": o, "images": s.n_instances} for s, o in rows]}
                   for e, st, rows, best in earlier + later]
        return {"modality": modality, "orientation": orient, "studies": studies}

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

    def _remove(self, kind: str, key: str) -> int:
        """Forget one patient, study or series of the archive; the number of images removed."""
        if self._media is not None or self.readonly:
            raise BridgeError(protocol.READ_ONLY, "This archive is read-only.")
        try:
            removed = self.archive.remove(**{kind: key})
        except KeyError:
            removed = {}
        if not removed.get("instances"):
            raise BridgeError(protocol.NOT_FOUND, f"No such {kind} in the archive.")
        with self._thumb_lock:
            self._thumbs.clear()
        return removed["instances"]

    def cmd_remove_series(self, a: dict) -> dict:
        """Remove a series from the archive (files on disk stay)."""
        images = self._remove("series", a["series_id"])
        return {"removed": a["series_id"], "images": images}

    def cmd_remove_study(self, a: dict) -> dict:
        """Remove a study and all its series from the archive (files on disk stay)."""
        images = self._remove("study", a["study_key"])
        return {"removed": a["study_key"], "images": images}

    def cmd_remove_patient(self, a: dict) -> dict:
        """Remove a patient and all their studies from the archive (files on disk stay)."""
        images = self._remove("patient", a["patient_key"])
        return {"removed": a["patient_key"], "images": images}

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
            self._media_root = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else path
        if old is not None:
            old.close()
        self.volumes.clear()
        return self.cmd_hello({})

    def cmd_copy_media(self, a: dict) -> dict | None:
        """Copy the loaded CD/USB into a folder (picked, or typed in serve mode), then import it.

        The copy keeps the medium's folder layout, makes folders 0700 and
        files 0600 and never overwrites a file already there; the job answers
        ``import_status`` / ``import_cancel`` like an import.
        """
        from .media_copy import CopyJob, inside

        src = getattr(self, "_media_root", None)
        if self._media is None or not src:
            raise BridgeError(protocol.BAD_REQUEST, "Load a CD/USB first: there is nothing to copy.")
        if self.readonly:
            raise BridgeError(protocol.READ_ONLY, self.archive_notice or "This archive is open read-only.")
        dest = self._ask(a, "pick_folder")
        if not dest:
            return None
        dest = os.path.abspath(dest)
        if inside(dest, src) or inside(src, dest):
            raise BridgeError(protocol.BAD_REQUEST, "Pick a folder outside the disc (and not one holding it).")
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise BridgeError(protocol.BAD_REQUEST, "The destination is a file, not a folder.")
        home = self._home_archive()
        job = CopyJob(src, dest, lambda folder: ImportJob(home, folder)).start()
        self.imports[job.id] = job
        return {"job_id": job.id}

    def _home_archive(self):
        """The archive on disk (not the media session's), opened when needed."""
        with self._lock:
            if self._damaged is not None:
                raise BridgeError(protocol.UNAVAILABLE, self._damaged)
            if self._archive is None:
                if self._closed:
                    raise BridgeError(protocol.UNAVAILABLE, "The session is closed.")
                self._archive = self._open_archive()
            return self._archive

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
