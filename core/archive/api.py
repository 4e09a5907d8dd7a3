"""The archive's Python API.

>>> import pocketpacs
>>> with pocketpacs.open_archive() as ar:                 # doctest: +SKIP
...     report = ar.import_folder("/data/dicom", progress=print)
...     for hit in ar.search(name="smith", modality="CT", study_date="2020-"):
...         print(hit.patient.name, hit.study.date, hit.study.n_instances)
...     files = ar.series_files(ar.series(hit.study)[0])

:func:`open_archive` opens (or creates) the LMDB archive in the user's data
folder, a folder given as argument, or ``$POCKETPACS_ARCHIVE``.
:func:`open_media` indexes removable media into memory for the session and
writes nothing anywhere.

The archive is a cache of the files it indexes: the files stay where they
are and are never modified or deleted by PocketPACS; ``remove`` forgets
archive entries only, and ``rebuild`` re-creates the whole index from the
remembered import folders.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import keys as K
from . import query as Q
from . import records as R
from ..errors import REBUILD_ADVICE, ArchiveDamaged, ArchiveError
from .ingest import Ctx, ImportProgress, ImportReport, Importer, remove_instances
from .integrity import (COUNT_FIELDS, add_child, check_invariants, deep_check, load_roots, move_damaged_aside,
                        save_roots, series_counts, stored_counts)
from ..log import logger
from ..paths import default_archive_dir
from .store import DBS, LmdbStore, MemoryStore


@dataclass
class VerifyReport:
    """Outcome of :meth:`Archive.verify`."""
    instances: int = 0
    locations: int = 0
    offline: int = 0
    went_offline: int = 0
    came_online: int = 0
    changed: int = 0
    repaired: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the database is consistent and every file is present and unchanged."""
        return not self.problems and self.offline == 0 and self.changed == 0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "instances": self.instances, "locations": self.locations,
                "offline": self.offline, "went_offline": self.went_offline,
                "came_online": self.came_online, "changed": self.changed, "repaired": self.repaired,
                "problems": list(self.problems)}


Ref = Any  # a record dataclass, a hex key, or a UID


class Archive:
    """A DICOM archive: patients, studies, series and instances of files.

    Use :func:`open_archive` or :func:`open_media` rather than the
    constructor.  An archive is a context manager; :meth:`close` releases
    the database and the writer lock.
    """

    def __init__(self, store: LmdbStore | MemoryStore, secret: bytes, *, media: bool = False):
        self._store = store
        self._secret = secret
        self.media = media
        self.last_import: ImportReport | None = None
        self._cache: dict = {}          # decoded Study/Patient records for search
        self._cache_gen: bytes | None = None

    # ---- basics -----------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The archive folder (None for an in-memory media archive)."""
        return self._store.path

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    @property
    def unclean(self) -> bool:
        """The last writer did not close cleanly and the check was left to the
        caller (``open_archive(check_unclean=False)``)."""
        return bool(getattr(self._store, "unclean", False))

    @property
    def generation(self) -> int:
        """Changes with every committed write (for caches)."""
        return self._store.generation

    def close(self) -> None:
        """Close the archive (releases the writer lock; clears a media archive)."""
        self._store.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"<pocketpacs.Archive {where}{' read-only' if self.readonly else ''}>"

    def _exclude(self) -> frozenset[str]:
        return frozenset({os.path.realpath(self.path)}) if self.path is not None else frozenset()

    # ---- import ------------------------------------------------------------------------
    def import_folder(self, path: os.PathLike[str] | str,
                      progress: Callable[[ImportProgress], Any] | None = None,
                      cancel: Any = None) -> ImportReport:
        """Import a folder (or one file) into the archive.

        Parameters
        ----------
        path : path-like
            Folder to walk (or a single file).
        progress : callable, optional
            Called with an :class:`~pocketpacs.archive.ingest.ImportProgress` about
            five times a second and once at the end.
        cancel : threading.Event or callable, optional
            Checked between chunks; when set the import stops and the
            archive stays consistent (``report.cancelled`` is True).

        Returns
        -------
        ImportReport

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist.
        ArchiveError
            The archive is read-only.
        """
        if self.readonly:
            raise ArchiveError("the archive is open read-only")
        try:
            rep = Importer(self._store, self._secret, self._exclude()).run(path, progress, cancel)
        finally:
            self._sync_roots()
        self.last_import = rep
        return rep

    def _sync_roots(self) -> None:
        """Keep ``roots.json`` (the imported folders, for a rebuild when the
        database cannot be read) equal to the roots in the database."""
        if self.path is None or self.readonly:
            return
        try:
            roots = self.roots()
            if load_roots(self.path) != roots:
                save_roots(self.path, roots)
        except (OSError, ArchiveError):
            pass

    def roots(self) -> list[str]:
        """Every folder imported so far."""
        with self._store.read() as t:
            return [k.decode("utf-8", "surrogateescape") for k, _ in t.range("roots")]

    # ---- browse ------------------------------------------------------------------------
    def patients(self) -> list[R.Patient]:
        """All patients, sorted by name."""
        with self._store.read() as t:
            out = [R.patient_from(k, R.loads(v)) for k, v in t.range("patients")]
        out.sort(key=lambda p: (Q.fold(p.name), p.patient_id, p.key))
        return out

    def patient(self, ref: Ref) -> R.Patient:
        """One patient by :class:`Patient` or key.

        Raises
        ------
        KeyError
        """
        pk = self._patient_key(ref)
        with self._store.read() as t:
            raw = t.get("patients", pk)
        if raw is None:
            raise KeyError("no such patient")
        return R.patient_from(pk, R.loads(raw))

    def studies(self, patient: Ref | None = None) -> list[R.Study]:
        """Studies of a patient (all studies when None), by date."""
        with self._store.read() as t:
            if patient is None:
                out = [R.study_from(k, R.loads(v)) for k, v in t.range("studies")]
            else:
                pk = self._patient_key(patient)
                out = []
                for k, _ in t.range("pat_studies", pk):
                    raw = t.get("studies", k[16:])
                    if raw is not None:
                        out.append(R.study_from(k[16:], R.loads(raw)))
        out.sort(key=lambda s: (s.date, s.time, s.uid))
        return out

    def study(self, ref: Ref) -> R.Study:
        """One study by :class:`Study`, key or Study Instance UID."""
        with self._store.read() as t:
            sk = self._study_key(ref, t)
            raw = t.get("studies", sk)
        if raw is None:
            raise KeyError("no such study")
        return R.study_from(sk, R.loads(raw))

    def series(self, study: Ref) -> list[R.Series]:
        """Series of a study, by series number."""
        with self._store.read() as t:
            sk = self._study_key(study, t)
            out = []
            for k, _ in t.range("study_series", sk):
                raw = t.get("series", k[8:])
                if raw is not None:
                    out.append(R.series_from(k[8:], R.loads(raw)))
        out.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid))
        return out

    def get_series(self, ref: Ref) -> R.Series:
        """One series by :class:`Series`, key or Series Instance UID."""
        with self._store.read() as t:
            sek = self._series_key(ref, t)
            raw = t.get("series", sek)
        if raw is None:
            raise KeyError("no such series")
        return R.series_from(sek, R.loads(raw))

    def instances(self, series: Ref) -> list[R.Instance]:
        """Instances of a series, by instance number."""
        with self._store.read() as t:
            sek = self._series_key(series, t)
            out = [R.instance_from(k, v) for k, v in t.range("instances", sek)]
        out.sort(key=lambda i: (i.instance_number if i.instance_number is not None else 1 << 30,
                                i.sop_instance_uid))
        return out

    def instance(self, ref: Ref) -> R.Instance:
        """One instance by :class:`Instance`, key or SOP Instance UID."""
        with self._store.read() as t:
            ik = self._instance_key(ref, t)
            raw = t.get("instances", ik) if ik else None
        if raw is None:
            raise KeyError("no such instance")
        return R.instance_from(ik, raw)

    def series_table(self, series: Ref, *, text: bool = False) -> tuple:
        """Instance keys and stored header rows (:data:`records.INST_DTYPE`) of a series.

        The numeric tag values of every instance in one array: what volume
        assembly needs without reading the files.  With ``text=True`` also
        the instances' text values (dicts of :data:`records.INSTANCE_TEXT`;
        records written before a keyword was added lack it) and file paths:
        ``(keys, rows, texts, paths)``.
        """
        with self._store.read() as t:
            sek = self._series_key(series, t)
            items = list(t.range("instances", sek))
        keys, rows = [k for k, _ in items], R.instance_array([v for _, v in items])
        if not text:
            return keys, rows
        split = [R.split_instance(v) for _, v in items]
        return keys, rows, [s[1] for s in split], [s[2] for s in split]

    def series_files(self, series: Ref, *, check: bool = True) -> list[str]:
        """The file of each instance of a series, in instance-number order.

        Parameters
        ----------
        series : Series, key or Series Instance UID
        check : bool
            Check that the files exist: instances without a present file
            are left out and marked offline (writable archives); files that
            are back mark their instance online again.

        Returns
        -------
        list of str
        """
        out = []
        flips: list[tuple[bytes, bool]] = []
        for inst in self.instances(series):
            if not check:
                if inst.paths:
                    out.append(inst.paths[0])
                continue
            present = next((p for p in inst.paths if os.path.isfile(p)), None)
            if present is not None:
                out.append(present)
            if (present is None) != (not inst.online):
                flips.append((bytes.fromhex(inst.key), present is None))
        if flips and not self.readonly:
            def fn(t: Any) -> None:
                ctx = Ctx(t, self._secret)
                for k, off in flips:
                    ctx.set_offline(k, off)
                ctx.flush()
            self._store.write(fn)
        return out

    def volume(self, series: Ref, **kwargs: Any) -> Any:
        """Assemble a series into volumes (one per stack) from its files.

        Parameters
        ----------
        series : Series, key or Series Instance UID
        **kwargs
            Passed to :func:`pocketpacs.images.volume.assemble_series` (``tilt``,
            ``spacing``, ``rescale``).

        Returns
        -------
        pocketpacs.images.volume.SeriesVolumes
            ``.volumes`` (each a :class:`~pocketpacs.images.volume.Volume` with its
            array, LPS/RAS affines, spacing, window presets and report),
            ``.report`` and ``.errors``.

        Raises
        ------
        KeyError
            When the archive has no such series.
        ArchiveError
            When none of the series' files is present (offline media).
        """
        from ..images.volume import assemble_series

        self.get_series(series)  # KeyError when the archive has no such series
        files = self.series_files(series)
        if not files:
            raise ArchiveError("the files of this series are offline (folder or medium not present)")
        return assemble_series(files, **kwargs)

    def header(self, instance: Ref, *, from_file: bool = True) -> dict[str, Any]:
        """Header values of an instance (the archive's tag set).

        Parameters
        ----------
        instance : Instance, key or SOP Instance UID
        from_file : bool
            Re-read the header from the file (all tags of the tag set);
            when False, or when no file is present, the values stored in the
            archive are returned (numeric and instance-level text values
            plus the series, study and patient attributes).

        Returns
        -------
        dict
            keyword -> value.
        """
        inst = self.instance(instance)
        if from_file:
            from ..dicom.headers import parse_files

            for p in inst.paths:
                if os.path.isfile(p):
                    b = parse_files([p])
                    if b.status[0] >= 0:
                        return b.record(0)
        out: dict[str, Any] = {k: v for k, v in inst.text.items() if v}
        out.update({k: v for k, v in inst.values.items() if v is not None})
        se = self.get_series(inst.series_key)
        st = self.study(se.study_key)
        pa = self.patient(se.patient_key)
        out.update({"SeriesInstanceUID": se.uid, "Modality": se.modality, "SeriesDescription": se.description,
                    "StudyInstanceUID": st.uid, "StudyDate": st.date, "StudyDescription": st.description,
                    "AccessionNumber": st.accession, "PatientName": pa.name, "PatientID": pa.patient_id,
                    "PatientBirthDate": pa.birth_date})
        return out

    def iter_instances(self) -> Iterator[dict[str, Any]]:
        """Every instance with its patient, study and series attributes.

        Yields the rows of ``pocketpacs show --json`` (see the CLI docs).
        """
        with self._store.read() as t:
            studies: dict[bytes, dict] = {}
            patients: dict[bytes, dict] = {}
            for sek, sraw in t.range("series"):
                se = R.loads(sraw)
                sk = bytes.fromhex(se["study_key"])
                st = studies.get(sk)
                if st is None:
                    st = studies[sk] = R.loads(t.get("studies", sk) or b"{}")
                pk = bytes.fromhex(se["patient_key"])
                pa = patients.get(pk)
                if pa is None:
                    pa = patients[pk] = R.loads(t.get("patients", pk) or b"{}")
                for ik, raw in t.range("instances", sek):
                    inst = R.instance_from(ik, raw)
                    yield {
                        "patient_name": pa.get("name", ""), "patient_id": pa.get("patient_id", ""),
                        "birth_date": pa.get("birth_date", ""), "anonymous": pa.get("anonymous", False),
                        "study_instance_uid": st.get("uid", ""), "study_date": st.get("date", ""),
                        "series_instance_uid": se["uid"], "series_number": se.get("number"),
                        "sop_instance_uid": inst.sop_instance_uid, "instance_number": inst.instance_number,
                        "modality": se.get("modality", ""), "transfer_syntax": inst.transfer_syntax,
                        "online": inst.online, "conflict": inst.conflict, "paths": list(inst.paths),
                    }

    # ---- search -------------------------------------------------------------------------
    def search(self, **filters: Any) -> Q.SearchResults:
        """Search studies.

        Parameters
        ----------
        name, patient_id, birth_date, study_date, modality, description, accession : str
            Filters, combined with AND; see :mod:`pocketpacs.archive.query` for the
            matching rules (case/accent-insensitive words, prefixes, ``*``
            and ``?`` wildcards, dates ``YYYYMMDD`` or ranges ``FROM-TO``).
        level : {"study", "series"}
        sort : {"-date", "date", "name", "-name"}
        limit : int, optional

        Returns
        -------
        SearchResults
        """
        unknown = set(filters) - set(Q.FILTERS) - {"level", "sort", "limit"}
        if unknown:
            raise TypeError(f"unknown search filter(s): {', '.join(sorted(unknown))}")
        with self._store.read() as t:
            gen = t.get("meta", b"generation")
            if gen != self._cache_gen:  # records decoded for an older state are dropped
                self._cache = {}
                self._cache_gen = gen
            return Q.search(t, **filters, cache=self._cache)

    # ---- maintenance ------------------------------------------------------------------------
    def remove(self, *, patient: Ref | None = None, study: Ref | None = None, series: Ref | None = None,
               instance: Ref | None = None, root: str | os.PathLike[str] | None = None) -> dict[str, int]:
        """Forget archive entries; never deletes or changes any file.

        Exactly one of the arguments selects what to forget: a patient,
        study, series or instance (record, key or UID), or an imported
        folder (its instances and the folder itself from the roots).

        Returns
        -------
        dict
            ``{"instances": n}`` removed.
        """
        given = [x for x in (patient, study, series, instance, root) if x is not None]
        if len(given) != 1:
            raise TypeError("give exactly one of patient, study, series, instance, root")
        if self.readonly:
            raise ArchiveError("the archive is open read-only")
        with self._store.read() as t:
            if root is not None:
                rp = os.path.abspath(os.fspath(root))
                prefix = rp.rstrip(os.sep) + os.sep
                keys: list[bytes] = []
                paths_under: set[str] = set()
                dirs = [d for d, _ in t.range("dirs", prefix.encode("utf-8", "surrogateescape"))]
                if t.get("dirs", rp.encode("utf-8", "surrogateescape")) is not None:
                    dirs.append(rp.encode("utf-8", "surrogateescape"))
                for d in dirs:
                    lst = R.DirListing.decode(t.get("dirs", d))
                    ds = d.decode("utf-8", "surrogateescape")
                    for r in range(len(lst)):
                        if lst.code[r] == 0:
                            keys.append(lst.key(r))
                            paths_under.add(os.path.join(ds, lst.names[r]))
            else:
                keys = self._select_instances(t, patient, study, series, instance)
                dirs = []
                paths_under = set()

        def fn(t: Any) -> int:
            ctx = Ctx(t, self._secret)
            dropped_dirs: dict[str, set[str]] = {}
            full = []
            for k in keys:
                raw = t.get("instances", k)
                if raw is None:
                    continue
                head, tx, locs = R.split_instance(raw)
                if root is not None:
                    rest = [p for p in locs if p not in paths_under]
                    if rest:  # still has files elsewhere: only forget this folder's location
                        t.put("instances", k, R.join_instance(head, tx, rest))
                        continue
                for p in locs:
                    dropped_dirs.setdefault(os.path.dirname(p), set()).add(os.path.basename(p))
                full.append(k)
            n = remove_instances(ctx, full)
            for d, names in dropped_dirs.items():
                dk = d.encode("utf-8", "surrogateescape")
                raw = t.get("dirs", dk)
                if raw is None:
                    continue
                lst = R.DirListing.decode(raw)
                lst = lst.select(np.array([nm not in names for nm in lst.names], dtype=bool))
                if len(lst):
                    t.put("dirs", dk, lst.encode())
                else:
                    t.delete("dirs", dk)
            for d in dirs:
                t.delete("dirs", d)
            if root is not None:
                t.delete("roots", os.path.abspath(os.fspath(root)).encode("utf-8", "surrogateescape"))
            ctx.flush()
            return n

        out = {"instances": self._store.write(fn)}
        if root is not None:
            self._sync_roots()
        return out

    def _select_instances(self, t: Any, patient: Ref, study: Ref, series: Ref, instance: Ref) -> list[bytes]:
        if instance is not None:
            ik = self._instance_key(instance, t)
            return [ik] if ik else []
        series_keys: list[bytes] = []
        if series is not None:
            series_keys = [self._series_key(series, t)]
        else:
            study_keys = []
            if study is not None:
                study_keys = [self._study_key(study, t)]
            else:
                pk = self._patient_key(patient)
                study_keys = [k[16:] for k, _ in t.range("pat_studies", pk)]
            for sk in study_keys:
                series_keys.extend(k[8:] for k, _ in t.range("study_series", sk))
        out = []
        for sek in series_keys:
            out.extend(k for k, _ in t.range("instances", sek))
        return out

    def verify(self, progress: Callable[[dict], Any] | None = None) -> VerifyReport:
        """Check every file and the database's consistency.

        Files that are missing mark their instances offline; files that are
        back mark them online again; files whose size or mtime changed are
        counted (``changed``: re-import to re-index them).  Counts stored in
        series, studies and patients are recomputed and repaired.

        Returns
        -------
        VerifyReport
        """
        rep = VerifyReport()
        with self._store.read() as t:
            dir_keys = [k for k, _ in t.range("dirs")]
        done = 0
        for a in range(0, len(dir_keys), 64):
            part = dir_keys[a:a + 64]
            checks = []
            with self._store.read() as t:
                for dk in part:
                    raw = t.get("dirs", dk)
                    if raw is None:
                        continue
                    lst = R.DirListing.decode(raw)
                    d = dk.decode("utf-8", "surrogateescape")
                    missing = np.zeros(len(lst), dtype=bool)
                    for r, nm in enumerate(lst.names):
                        try:
                            st = os.stat(os.path.join(d, nm))
                        except OSError:
                            missing[r] = True
                            continue
                        if lst.code[r] == 0 and (st.st_size != lst.size[r] or st.st_mtime_ns != lst.mtime_ns[r]):
                            rep.changed += 1
                    checks.append((dk, d, lst, missing))
                    done += len(lst)
            if not self.readonly:
                self._store.write(lambda t, checks=checks: self._apply_checks(t, checks, rep))
            if progress is not None:
                progress({"files_checked": done})
        self._check_consistency(rep)
        with self._store.read() as t:
            for _k, v in t.range("instances"):
                rep.instances += 1
                rep.offline += bool(v[1] & R.OFFLINE)
            if not self.readonly:  # what the repair above could not fix
                rep.problems.extend(check_invariants(t))
        return rep

    def check(self) -> list[str]:
        """Check the archive's invariants (nothing is changed).

        Every instance has its series, study and patient; stored counts
        equal their children's; links and search indexes match the
        records; folder listings and conflicts point to instances.  See
        :func:`pocketpacs.archive.integrity.check_invariants`; for a check that
        also survives a damaged file, see
        :func:`pocketpacs.archive.integrity.deep_check` (``pocketpacs check``).

        Returns
        -------
        list of str
            Violations (record keys in hex, no patient data); empty when
            the archive is consistent.
        """
        with self._store.read() as t:
            return check_invariants(t)

    def _apply_checks(self, t: Any, checks: list, rep: VerifyReport) -> None:
        ctx = Ctx(t, self._secret)
        for dk, d, lst, missing in checks:
            changed = False
            for r in range(len(lst)):
                if lst.code[r] != 0:
                    continue
                rep.locations += 1
                if bool(lst.missing[r]) == bool(missing[r]):
                    continue
                lst.missing[r] = missing[r]
                changed = True
                k = lst.key(r)
                raw = t.get("instances", k)
                if raw is None:
                    continue
                _h, _t, locs = R.split_instance(raw)
                any_present = any(os.path.isfile(p) for p in locs)
                if ctx.set_offline(k, not any_present, raw):
                    if any_present:
                        rep.came_online += 1
                    else:
                        rep.went_offline += 1
            if changed:
                t.put("dirs", dk, lst.encode())
        ctx.flush()

    def _check_consistency(self, rep: VerifyReport) -> None:
        """Recompute the counts of series, studies and patients from their children."""
        def fn(t: Any) -> int:
            fixed = 0
            series_cnt = series_counts(t.range("instances"))
            study_cnt: dict[bytes, list[int]] = {}
            for k, v in list(t.range("series")):
                se = R.loads(v)
                c = series_cnt.get(k, [0, 0, 0])
                if c[0] == 0:
                    rep.problems.append(f"series {k.hex()} has no instances (removed)")
                    t.delete("series", k)
                    t.delete("study_series", bytes.fromhex(se["study_key"]) + k)
                    fixed += 1
                    continue
                if stored_counts("series", se) != c:
                    se.update(zip(COUNT_FIELDS["series"], c))
                    t.put("series", k, R.dumps(se))
                    fixed += 1
                add_child(study_cnt, bytes.fromhex(se["study_key"]), c)
            for k in series_cnt:
                if t.get("series", k) is None:
                    rep.problems.append(f"instances of unknown series {k.hex()}")
            pat_cnt: dict[bytes, list[int]] = {}
            for k, v in list(t.range("studies")):
                st = R.loads(v)
                c = study_cnt.get(k, [0, 0, 0, 0])
                pk = bytes.fromhex(st["patient_key"])
                old = Q.study_entries(k, st)
                if c[0] == 0:
                    t.delete("studies", k)
                    t.delete("pat_studies", pk + k)
                    Q.reindex(t, old, set())
                    fixed += 1
                    continue
                if stored_counts("studies", st) != c:
                    st.update(zip(COUNT_FIELDS["studies"], c))
                    t.put("studies", k, R.dumps(st))
                    fixed += 1
                add_child(pat_cnt, pk, c)
            for k, v in list(t.range("patients")):
                pa = R.loads(v)
                c = pat_cnt.get(k, [0, 0, 0, 0])
                if c[0] == 0:
                    t.delete("patients", k)
                    Q.reindex(t, Q.patient_entries(k, pa), set())
                    fixed += 1
                    continue
                if stored_counts("patients", pa) != c:
                    pa.update(zip(COUNT_FIELDS["patients"], c))
                    t.put("patients", k, R.dumps(pa))
                    fixed += 1
            return fixed

        if self.readonly:
            return
        rep.repaired += self._store.write(fn)

    def rebuild(self, progress: Callable[[ImportProgress], Any] | None = None,
                cancel: Any = None) -> list[ImportReport]:
        """Re-create the whole index from the imported folders.

        Every database except the roots and the schema is emptied, then each
        root that still exists is imported again.

        Returns
        -------
        list of ImportReport
            One per root that exists.
        """
        if self.readonly:
            raise ArchiveError("the archive is open read-only")
        roots = self.roots()

        def fn(t: Any) -> None:
            for db in DBS:
                if db not in ("meta", "roots"):
                    t.drop(db)

        self._store.write(fn)
        out = []
        for r in roots:
            if os.path.exists(r):
                out.append(self.import_folder(r, progress, cancel))
        self._sync_roots()
        return out

    def conflicts(self) -> list[dict[str, Any]]:
        """Files kept apart because their SOP Instance UID is archived with other content."""
        with self._store.read() as t:
            out = []
            for k, v in t.range("conflicts"):
                d = R.loads(v)
                out.append({"instance_key": k[:16].hex(), "path": k[16:].decode("utf-8", "surrogateescape"), **d})
        return out

    def stats(self) -> dict[str, Any]:
        """Counts and sizes of the archive."""
        with self._store.read() as t:
            size = 0
            offline = 0
            for _k, v in t.range("studies"):
                st = R.loads(v)
                size += st.get("size", 0)
                offline += st.get("n_offline", 0)
            out = {
                "path": None if self.path is None else str(self.path),
                "schema": self._store.schema_version,
                "patients": t.count("patients"), "studies": t.count("studies"),
                "series": t.count("series"), "instances": t.count("instances"),
                "offline": offline, "conflicts": t.count("conflicts"), "size": size,
                "folders": t.count("dirs"),
                "roots": [k.decode("utf-8", "surrogateescape") for k, _ in t.range("roots")],
            }
        info = self._store.info()
        out["database_bytes"] = info.get("file_size", 0)
        out["generation"] = self._store.generation
        return out

    # ---- reference resolution ------------------------------------------------------------------
    @staticmethod
    def _patient_key(ref: Ref) -> bytes:
        if isinstance(ref, R.Patient):
            return bytes.fromhex(ref.key)
        if isinstance(ref, (bytes, bytearray)) and len(ref) == 16:
            return bytes(ref)
        k = K.unhex(str(ref), 16)
        if k is None:
            raise KeyError("a patient is given by its record or key")
        return k

    @staticmethod
    def _uid_ref(ref: Ref, t: Any, db: str, cls: type) -> bytes:
        if isinstance(ref, cls):
            return bytes.fromhex(ref.key)
        if isinstance(ref, (bytes, bytearray)) and len(ref) == 8:
            return bytes(ref)
        s = str(ref)
        if len(s) == 16:
            k = K.unhex(s, 8)
            if k is not None and t.get(db, k) is not None:
                return k
        return K.uid_key(s)

    def _study_key(self, ref: Ref, t: Any) -> bytes:
        if isinstance(ref, Q.Hit):
            ref = ref.study
        return self._uid_ref(ref, t, "studies", R.Study)

    def _series_key(self, ref: Ref, t: Any) -> bytes:
        return self._uid_ref(ref, t, "series", R.Series)

    def _instance_key(self, ref: Ref, t: Any) -> bytes | None:
        if isinstance(ref, R.Instance):
            return bytes.fromhex(ref.key)
        s = str(ref)
        if len(s) == 32:
            k = K.unhex(s, 16)
            if k is not None and t.get("instances", k) is not None:
                return k
        sopk = K.uid_key(s)
        sek = t.get("sop", sopk)
        return None if sek is None else sek + sopk


def _check_after_unclean_shutdown(path: Path) -> str | None:
    """The last writer did not close cleanly: read the whole database in a
    child process before opening it.  Returns why it is damaged, or None."""
    logger.info("the archive was not closed cleanly last time: checking it in a child process")
    res = deep_check(path)
    if res.status == "damaged":
        return res.message
    if res.status == "inconsistent":
        logger.warning("archive check after an unclean shutdown: %d invariant violation(s)",
                       len(res.problems))
    return None


def open_archive(path: os.PathLike[str] | str | None = None, *, readonly: bool = False,
                 map_size: int | None = None, check_unclean: bool = True) -> Archive:
    """Open (or create) an archive.

    Parameters
    ----------
    path : path-like, optional
        Archive folder; default ``$POCKETPACS_ARCHIVE`` or the user's data
        folder.
    readonly : bool
        Open without the writer lock (browse and search while another
        process imports).
    map_size : int, optional
        Initial LMDB map size (grows by itself).
    check_unclean : bool
        After an unclean shutdown of the last writer, read the whole
        database in a child process before opening it (default).  When
        False the open goes on and ``archive.unclean`` says so, for a caller
        that checks it later (the app: in the background, so a killed
        app starts as fast as a closed one).

    Returns
    -------
    Archive

    Raises
    ------
    ArchiveLocked
        Another process is writing to the archive (writable opens only).
    ArchiveError
        No archive at ``path`` (read-only opens), or it cannot be opened.
    """
    p = Path(path).expanduser() if path is not None else default_archive_dir()
    store = LmdbStore(p, readonly=readonly, map_size=map_size,
                      on_unclean=_check_after_unclean_shutdown if check_unclean else None)
    try:
        if readonly:
            try:
                secret = (store.path / K.SECRET_FILE).read_bytes()
            except OSError:
                secret = b""
        else:
            secret = K.load_or_create_secret(store.path)
    except BaseException:
        store.close()
        raise
    ar = Archive(store, secret)
    try:
        ar._sync_roots()
    except BaseException as e:
        store.close()  # never leave the writer lock held by an archive nobody can close
        if type(e).__module__ == "lmdb" or isinstance(e, ValueError):
            raise ArchiveDamaged(
                f"the archive database at {store.path} is damaged (a record cannot be read: "
                f"{type(e).__name__}). {REBUILD_ADVICE}") from None
        raise
    return ar


def rebuild_damaged(path: os.PathLike[str] | str, progress: Callable[[Any], Any] | None = None,
                    cancel: Any = None, roots: list[str] | None = None) -> tuple[str, list[Any]]:
    """Move a damaged database aside and re-create the archive from its folders.

    ``data.mdb`` and ``lock.mdb`` go to ``damaged-<time>/`` inside the
    archive folder (kept, for inspection; delete it when done:
    :func:`pocketpacs.archive.integrity.move_damaged_aside`); the secret
    stays, so patient keys are unchanged.  The folders come from ``roots``,
    else from ``roots.json``.

    Returns
    -------
    (str, list of ImportReport)
        The folder holding the damaged files, and one report per folder
        that still exists.

    Raises
    ------
    ArchiveLocked
        Another process is writing to the archive.
    """
    d = Path(path).expanduser().absolute()
    roots = list(roots) if roots else load_roots(d)
    aside = move_damaged_aside(d)
    reports = []
    with open_archive(d) as ar:
        for r in roots:
            if os.path.exists(r):
                reports.append(ar.import_folder(r, progress, cancel))
        if not ar.roots():
            save_roots(d, roots)  # no folder exists now: remember them for a later rebuild
    return os.fspath(aside), reports


def open_media(path: os.PathLike[str] | str, progress: Callable[[ImportProgress], Any] | None = None,
               cancel: Any = None) -> Archive:
    """Index removable media (a folder or a DICOMDIR) into memory.

    Nothing is written anywhere: the index lives in memory for the session,
    patient keys use a per-session secret, and the medium is only read.
    The import report is ``archive.last_import``.

    Parameters
    ----------
    path : path-like
        The media folder, or its DICOMDIR file.

    Returns
    -------
    Archive
        An in-memory archive (``archive.media`` is True); close it to drop
        the index.
    """
    p = os.fspath(path)
    if os.path.isfile(p) and os.path.basename(p).upper() == "DICOMDIR":
        p = os.path.dirname(os.path.abspath(p))
    ar = Archive(MemoryStore(), K.new_session_secret(), media=True)
    ar.import_folder(p, progress, cancel)
    return ar
