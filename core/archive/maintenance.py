"""Maintaining the archive: verify, check, remove and rebuild.

:class:`ArchiveMaintenance` holds the maintenance side of
:class:`pocketpacs.Archive`: :meth:`~ArchiveMaintenance.verify` checks every
file (missing files mark their instances offline, files that are back mark
them online, changed files are counted) and recomputes the stored counts of
series, studies and patients with the same aggregation as the invariant
check (:func:`pocketpacs.archive.integrity.series_counts`);
:meth:`~ArchiveMaintenance.check` reports invariant violations;
:meth:`~ArchiveMaintenance.remove` forgets entries (never a file) and
:meth:`~ArchiveMaintenance.rebuild` re-creates the index from the imported
folders.  :class:`~pocketpacs.archive.api.Archive` combines it with the
import and browse sides; it is not used alone.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import pathkeys
from . import query
from . import records
from ..errors import ArchiveError
from .browse import Ref
from .record_changes import RecordChanges
from .removal import remove_instances
from .report import ImportProgress, ImportReport
from .integrity import COUNT_FIELDS, add_child, check_invariants, series_counts, stored_counts
from .integrity import blank_uid_instances, blank_uid_message
from .memstore import MemoryStore
from .store import DBS, LmdbStore
from .txn import COUNTS_DB, counts_without_record


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
    #: Instances archived under an empty UID (archives made before such files were refused).
    blank_uid: int = 0

    @property
    def ok(self) -> bool:
        """True when the database is consistent and every file is present and unchanged."""
        return not self.problems and self.offline == 0 and self.changed == 0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "instances": self.instances, "locations": self.locations,
                "offline": self.offline, "went_offline": self.went_offline,
                "came_online": self.came_online, "changed": self.changed, "repaired": self.repaired,
                "blank_uid": self.blank_uid, "problems": list(self.problems)}


class ArchiveMaintenance:
    """Maintenance methods of :class:`pocketpacs.Archive`."""

    _store: LmdbStore | MemoryStore
    _secret: bytes
    path: Path | None
    readonly: bool

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
                keys: list[bytes] = []
                paths_under: set[str] = set()
                under = pathkeys.folders_under(t, rp)
                dirs = [d for _ds, d in under]
                for ds, d in under:
                    lst = records.DirListing.decode(t.get("dirs", d))
                    for r in range(len(lst)):
                        if lst.code[r] == 0:
                            keys.append(lst.key(r))
                            paths_under.add(os.path.join(ds, lst.names[r]))
            else:
                keys = self._select_instances(t, patient, study, series, instance)
                dirs = []
                paths_under = set()

        def fn(t: Any) -> int:
            import numpy as np

            ctx = RecordChanges(t, self._secret)
            dropped_dirs: dict[str, set[str]] = {}
            full = []
            for k in keys:
                raw = t.get("instances", k)
                if raw is None:
                    continue
                head, tx, locs = records.split_instance(raw)
                if root is not None:
                    rest = [p for p in locs if p not in paths_under]
                    if rest:  # still has files elsewhere: only forget this folder's location
                        t.put("instances", k, records.join_instance(head, tx, rest))
                        continue
                for p in locs:
                    dropped_dirs.setdefault(os.path.dirname(p), set()).add(os.path.basename(p))
                full.append(k)
            n = remove_instances(ctx, full)
            for d, names in dropped_dirs.items():
                raw = pathkeys.get_listing(t, d)
                if raw is None:
                    continue
                lst = records.DirListing.decode(raw)
                pathkeys.put_listing(t, d, lst.select(np.array([nm not in names for nm in lst.names],
                                                               dtype=bool)))
            for d in dirs:
                t.delete("dirs", d)
            if root is not None:
                t.delete("roots", pathkeys.path_key(os.path.abspath(os.fspath(root))))
            ctx.flush()
            for sek in {k[:8] for k in full}:   # a series removed: its measurements go with it
                if t.get("series", sek) is None:
                    t.delete("annotations", sek)
            return n

        out = {"instances": self._store.write(fn)}
        if root is not None:
            self._sync_roots(drop=True)
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
        import numpy as np

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
                    lst = records.DirListing.decode(raw)
                    d = pathkeys.listing_folder(dk, raw)
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
                rep.offline += bool(v[1] & records.OFFLINE)
            if not self.readonly:  # what the repair above could not fix
                rep.problems.extend(check_invariants(t))
            rep.blank_uid = blank_uid_instances(t)
            if rep.blank_uid:
                rep.problems.append(blank_uid_message(rep.blank_uid))
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
        ctx = RecordChanges(t, self._secret)
        for _dk, folder, lst, missing in checks:
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
                _h, _t, locs = records.split_instance(raw)
                any_present = any(os.path.isfile(p) for p in locs)
                if ctx.set_offline(k, not any_present, raw):
                    if any_present:
                        rep.came_online += 1
                    else:
                        rep.went_offline += 1
            if changed:
                t.put("dirs", *pathkeys.encode_listing(folder, lst))
        ctx.flush()

    def _check_consistency(self, rep: VerifyReport) -> None:
        """Recompute the counts of series, studies and patients from their children."""
        def fn(t: Any) -> int:
            fixed = 0
            series_cnt = series_counts(t.range("instances"))
            study_cnt: dict[bytes, list[int]] = {}
            for k, v in list(t.range("series")):
                se = records.loads(v)
                c = series_cnt.get(k, [0, 0, 0])
                if c[0] == 0:
                    rep.problems.append(f"series {k.hex()} has no instances (removed)")
                    t.delete("series", k)
                    t.delete("study_series", bytes.fromhex(se["study_key"]) + k)
                    fixed += 1
                    continue
                if stored_counts("series", se) != c:
                    se.update(zip(COUNT_FIELDS["series"], c))
                    t.put("series", k, records.dumps_counted(se))
                    fixed += 1
                add_child(study_cnt, bytes.fromhex(se["study_key"]), c)
            for k in series_cnt:
                if t.get("series", k) is None:
                    rep.problems.append(f"instances of unknown series {k.hex()}")
            for db in COUNTS_DB:
                for k in counts_without_record(t, db):
                    rep.problems.append(f"counts entry {k.hex()} in {COUNTS_DB[db]} without its record (removed)")
                    t.delete(COUNTS_DB[db], k)
                    fixed += 1
            pat_cnt: dict[bytes, list[int]] = {}
            for k, v in list(t.range("studies")):
                st = records.loads(v)
                c = study_cnt.get(k, [0, 0, 0, 0])
                pk = bytes.fromhex(st["patient_key"])
                old = query.study_entries(k, st)
                if c[0] == 0:
                    t.delete("studies", k)
                    t.delete("pat_studies", pk + k)
                    query.reindex(t, old, set())
                    fixed += 1
                    continue
                if stored_counts("studies", st) != c:
                    st.update(zip(COUNT_FIELDS["studies"], c))
                    t.put("studies", k, records.dumps_counted(st))
                    fixed += 1
                add_child(pat_cnt, pk, c)
            for k, v in list(t.range("patients")):
                pa = records.loads(v)
                c = pat_cnt.get(k, [0, 0, 0, 0])
                if c[0] == 0:
                    t.delete("patients", k)
                    query.reindex(t, query.patient_entries(k, pa), set())
                    fixed += 1
                    continue
                if stored_counts("patients", pa) != c:
                    pa.update(zip(COUNT_FIELDS["patients"], c))
                    t.put("patients", k, records.dumps_counted(pa))
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
                if db not in ("meta", "roots", "annotations"):   # measurements survive (same series keys)
                    t.drop(db)

        self._store.write(fn)
        out = []
        for r in roots:
            if os.path.exists(r):
                out.append(self.import_folder(r, progress, cancel))
        self._sync_roots()
        return out

