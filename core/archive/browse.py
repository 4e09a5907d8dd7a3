"""Reading the archive: browse, search and reference resolution.

:class:`ArchiveBrowse` holds the read side of :class:`pocketpacs.Archive`
(patients, studies, series and instances with their files, stored header
rows and values, assembled volumes, search, conflicts and statistics) and
the resolution of the references callers pass (a record dataclass, a hex
key or a UID) to record keys.  :class:`~pocketpacs.archive.api.Archive`
combines it with the import and maintenance sides; it is not used alone.
The only writes here mark instances offline or online again when
:meth:`ArchiveBrowse.series_files` finds their files gone or back.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import keys
from . import pathkeys
from . import query
from . import records
from . import sopindex
from ..errors import ArchiveError
from .record_changes import RecordChanges
from .memstore import MemoryStore
from .store import LmdbStore

Ref = Any  # a record dataclass, a hex key, or a UID


class ArchiveBrowse:
    """Browse and search methods of :class:`pocketpacs.Archive`."""

    _store: LmdbStore | MemoryStore
    _secret: bytes
    _cache: dict
    _cache_gen: bytes | None
    path: Path | None
    readonly: bool

    # ---- browse ------------------------------------------------------------------------
    def patients(self) -> list[records.Patient]:
        """All patients, sorted by name."""
        with self._store.read() as t:
            out = [records.patient_from(k, records.loads(v)) for k, v in t.range("patients")]
        out.sort(key=lambda p: (query.fold(p.name), p.patient_id, p.key))
        return out

    def patient(self, ref: Ref) -> records.Patient:
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
        return records.patient_from(pk, records.loads(raw))

    def studies(self, patient: Ref | None = None) -> list[records.Study]:
        """Studies of a patient (all studies when None), by date."""
        with self._store.read() as t:
            if patient is None:
                out = [records.study_from(k, records.loads(v)) for k, v in t.range("studies")]
            else:
                pk = self._patient_key(patient)
                out = []
                for k, _ in t.range("pat_studies", pk):
                    raw = t.get("studies", k[16:])
                    if raw is not None:
                        out.append(records.study_from(k[16:], records.loads(raw)))
        out.sort(key=lambda s: (s.date, s.time, s.uid))
        return out

    def study(self, ref: Ref) -> records.Study:
        """One study by :class:`Study`, key or Study Instance UID."""
        with self._store.read() as t:
            sk = self._study_key(ref, t)
            raw = t.get("studies", sk)
        if raw is None:
            raise KeyError("no such study")
        return records.study_from(sk, records.loads(raw))

    def series(self, study: Ref) -> list[records.Series]:
        """Series of a study, by series number."""
        with self._store.read() as t:
            sk = self._study_key(study, t)
            out = []
            for k, _ in t.range("study_series", sk):
                raw = t.get("series", k[8:])
                if raw is not None:
                    out.append(records.series_from(k[8:], records.loads(raw)))
        out.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid))
        return out

    def get_series(self, ref: Ref) -> records.Series:
        """One series by :class:`Series`, key or Series Instance UID."""
        with self._store.read() as t:
            sek = self._series_key(ref, t)
            raw = t.get("series", sek)
        if raw is None:
            raise KeyError("no such series")
        return records.series_from(sek, records.loads(raw))

    def instances(self, series: Ref) -> list[records.Instance]:
        """Instances of a series, by instance number."""
        with self._store.read() as t:
            sek = self._series_key(series, t)
            out = [records.instance_from(k, v) for k, v in t.range("instances", sek)]
        out.sort(key=lambda i: (i.instance_number if i.instance_number is not None else 1 << 30,
                                i.sop_instance_uid))
        return out

    def instance(self, ref: Ref) -> records.Instance:
        """One instance by :class:`Instance`, key or SOP Instance UID."""
        with self._store.read() as t:
            ik = self._instance_key(ref, t)
            raw = t.get("instances", ik) if ik else None
        if raw is None:
            raise KeyError("no such instance")
        return records.instance_from(ik, raw)

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
        keys, rows = [k for k, _ in items], records.instance_array([v for _, v in items])
        if not text:
            return keys, rows
        split = [records.split_instance(v) for _, v in items]
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
                ctx = RecordChanges(t, self._secret)
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
                se = records.loads(sraw)
                sk = bytes.fromhex(se["study_key"])
                st = studies.get(sk)
                if st is None:
                    st = studies[sk] = records.loads(t.get("studies", sk) or b"{}")
                pk = bytes.fromhex(se["patient_key"])
                pa = patients.get(pk)
                if pa is None:
                    pa = patients[pk] = records.loads(t.get("patients", pk) or b"{}")
                for ik, raw in t.range("instances", sek):
                    inst = records.instance_from(ik, raw)
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
    def search(self, **filters: Any) -> query.SearchResults:
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
        unknown = set(filters) - set(query.FILTERS) - {"level", "sort", "limit"}
        if unknown:
            raise TypeError(f"unknown search filter(s): {', '.join(sorted(unknown))}")
        with self._store.read() as t:
            gen = t.get("meta", b"generation")
            if gen != self._cache_gen:  # records decoded for an older state are dropped
                self._cache = {}
                self._cache_gen = gen
            return query.search(t, **filters, cache=self._cache)


    def conflicts(self) -> list[dict[str, Any]]:
        """Files kept apart because their SOP Instance UID is archived with other content."""
        with self._store.read() as t:
            out = []
            for k, v in t.range("conflicts"):
                d = records.loads(v)
                path = pathkeys.conflict_path(k, d)
                d.pop("path_hex", None)
                out.append({"instance_key": k[:16].hex(), "path": path, **d})
        return out

    def stats(self) -> dict[str, Any]:
        """Counts and sizes of the archive."""
        with self._store.read() as t:
            size = 0
            offline = 0
            for _k, v in t.range("studies"):
                st = records.loads(v)
                size += st.get("size", 0)
                offline += st.get("n_offline", 0)
            out = {
                "path": None if self.path is None else str(self.path),
                "schema": self._store.schema_version,
                "patients": t.count("patients"), "studies": t.count("studies"),
                "series": t.count("series"), "instances": t.count("instances"),
                "offline": offline, "conflicts": t.count("conflicts"), "size": size,
                "folders": t.count("dirs"),
                "roots": pathkeys.roots(t),
            }
        info = self._store.info()
        out["database_bytes"] = info.get("file_size", 0)
        out["generation"] = self._store.generation
        return out

    # ---- reference resolution ------------------------------------------------------------------
    @staticmethod
    def _patient_key(ref: Ref) -> bytes:
        if isinstance(ref, records.Patient):
            return bytes.fromhex(ref.key)
        if isinstance(ref, (bytes, bytearray)) and len(ref) == 16:
            return bytes(ref)
        k = keys.unhex(str(ref), 16)
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
            k = keys.unhex(s, 8)
            if k is not None and t.get(db, k) is not None:
                return k
        return keys.uid_key(s)

    def _study_key(self, ref: Ref, t: Any) -> bytes:
        if isinstance(ref, query.Hit):
            ref = ref.study
        return self._uid_ref(ref, t, "studies", records.Study)

    def _series_key(self, ref: Ref, t: Any) -> bytes:
        return self._uid_ref(ref, t, "series", records.Series)

    def _instance_key(self, ref: Ref, t: Any) -> bytes | None:
        if isinstance(ref, records.Instance):
            return bytes.fromhex(ref.key)
        s = str(ref)
        if len(s) == 32:
            k = keys.unhex(s, 16)
            if k is not None and t.get("instances", k) is not None:
                return k
        sopk = keys.uid_key(s)
        sek = sopindex.series_key(t, sopk)
        return None if sek is None else sek + sopk


