"""The unit of work of a write transaction on the archive's records.

:class:`RecordChanges` loads patient, study and series records once per
transaction, lets the import, removal and verification change them in
place, and writes them back at :meth:`~RecordChanges.flush` together with
their search-index entries (recomputed only when indexed values changed);
it also flips an instance's offline flag and the offline counts above it.
:func:`add_sorted` maintains the sorted value lists of study records
(modalities, series words, equipment, physicians).
"""
from __future__ import annotations

from typing import Any

from . import query
from . import records


def add_sorted(lst: list, value: str) -> bool:
    """Add a non-empty value to a sorted list unless it is there; True if added."""
    if value and value not in lst:
        lst.append(value)
        lst.sort()
        return True
    return False


_INDEXED_FIELDS = {
    "patients": ("name", "patient_id", "birth_date"),
    "studies": ("date", "modalities", "description", "series_words", "accession"),
}


def _snapshot(db: str, rec: dict) -> tuple:
    """The values of a record that its index entries depend on."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (rec.get(f) for f in _INDEXED_FIELDS[db]))


class RecordChanges:
    """Records loaded and changed within one write transaction.

    Index entries are recomputed at :meth:`flush` only for records whose
    indexed values changed (most updates only change counts).
    """

    def __init__(self, txn: Any, secret: bytes):
        self.txn = txn
        self.secret = secret
        self.recs: dict[str, dict[bytes, dict | None]] = {"patients": {}, "studies": {}, "series": {}}
        self.orig: dict[tuple[str, bytes], tuple] = {}       # indexed values as loaded
        self.orig_rec: dict[tuple[str, bytes], dict] = {}    # copies of those values, for old entries
        self.dirty: set[tuple[str, bytes]] = set()

    def get(self, db: str, key: bytes) -> dict | None:
        cache = self.recs[db]
        if key in cache:
            return cache[key]
        raw = self.txn.get(db, key)
        rec = records.loads(raw) if raw is not None else None
        cache[key] = rec
        if rec is not None and db in _INDEXED_FIELDS:
            snap = _snapshot(db, rec)
            self.orig[(db, key)] = snap
            self.orig_rec[(db, key)] = dict(zip(_INDEXED_FIELDS[db], snap))
        return rec

    @staticmethod
    def _entries(db: str, key: bytes, rec: dict) -> set:
        return query.patient_entries(key, rec) if db == "patients" else query.study_entries(key, rec)

    def _old_entries(self, db: str, key: bytes) -> set:
        old = self.orig_rec.get((db, key))
        return set() if old is None else self._entries(db, key, old)

    def new(self, db: str, key: bytes, rec: dict) -> dict:
        self.recs[db][key] = rec
        self.dirty.add((db, key))
        return rec

    def touch(self, db: str, key: bytes) -> None:
        self.dirty.add((db, key))

    def delete(self, db: str, key: bytes) -> None:
        self.recs[db][key] = None
        self.dirty.add((db, key))

    def flush(self) -> None:
        txn = self.txn
        for db, key in sorted(self.dirty):
            rec = self.recs[db][key]
            indexed = db in _INDEXED_FIELDS
            if rec is None:
                txn.delete(db, key)
                if indexed:
                    query.reindex(txn, self._old_entries(db, key), set())
                    self.orig.pop((db, key), None)
                    self.orig_rec.pop((db, key), None)
                continue
            txn.put(db, key, records.dumps(rec))
            if indexed:
                snap = _snapshot(db, rec)
                if snap != self.orig.get((db, key)):
                    query.reindex(txn, self._old_entries(db, key), self._entries(db, key, rec))
                    self.orig[(db, key)] = snap
                    self.orig_rec[(db, key)] = dict(zip(_INDEXED_FIELDS[db], snap))
        self.dirty.clear()

    # ---- offline bookkeeping -------------------------------------------------------
    def set_offline(self, ikey: bytes, offline: bool, raw: bytes | None = None) -> bool:
        """Flip an instance's OFFLINE flag and the counts above it; True if changed."""
        txn = self.txn
        if raw is None:
            raw = txn.get("instances", ikey)
            if raw is None:
                return False
        flags = raw[1]
        if bool(flags & records.OFFLINE) == offline:
            return False
        flags = flags | records.OFFLINE if offline else flags & ~records.OFFLINE
        txn.put("instances", ikey, raw[:1] + bytes([flags]) + raw[2:])
        delta = 1 if offline else -1
        se = self.get("series", ikey[:8])
        if se is not None:
            se["n_offline"] = max(0, se.get("n_offline", 0) + delta)
            self.touch("series", ikey[:8])
            sk = bytes.fromhex(se["study_key"])
            st = self.get("studies", sk)
            if st is not None:
                st["n_offline"] = max(0, st.get("n_offline", 0) + delta)
                self.touch("studies", sk)
        return True
