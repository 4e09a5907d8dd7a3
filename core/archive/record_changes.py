"""The unit of work of a write transaction on the archive's records.

:class:`RecordChanges` loads patient, study and series records once per
transaction, lets the import, removal and verification change them in
place, and writes them back at :meth:`~RecordChanges.flush` together with
their search-index entries (recomputed only when indexed values changed);
it also flips an instance's offline flag and the offline counts above it.
:func:`add_sorted` maintains the sorted value lists of study records
(modalities, series words, equipment, physicians).  :class:`SeriesOwners`
keeps, across the transactions of one import, the study and patient keys of
the series it adds files to.
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


def _accumulate(totals: dict[bytes, list[int]], key: bytes, n_instances: int, size: int) -> None:
    """Add to the ``[n_instances, size]`` of ``key`` in ``totals``."""
    d = totals.get(key)
    if d is None:
        totals[key] = [n_instances, size]
    else:
        d[0] += n_instances
        d[1] += size


_INDEXED_FIELDS = {
    "patients": ("name", "patient_id", "birth_date"),
    "studies": ("date", "modalities", "description", "series_words", "accession"),
}


def _snapshot(db: str, rec: dict) -> tuple:
    """The values of a record that its index entries depend on."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (rec.get(f) for f in _INDEXED_FIELDS[db]))


class SeriesOwners:
    """The study and patient keys of series, kept across the write transactions
    of one import.

    Files scattered over many series (a folder exported with hashed names)
    bring nearly every series into every transaction of a large import; the
    counts they add are patched into the stored records without decoding them
    (:meth:`RecordChanges.add_counts`), and these keys spare decoding the
    series record to find its study and patient.

    Valid only while the importer is the archive's only writer: :meth:`begin`
    forgets everything when the archive's generation is not the one the
    importer's last commit left (another write came between, or the last
    transaction was rolled back), and a series deleted through
    :class:`RecordChanges` is forgotten at once.
    """

    def __init__(self) -> None:
        self.keys: dict[bytes, tuple[bytes, bytes]] = {}   # series key -> (study key, patient key)
        self._next: bytes | None = None   # generation expected at the next transaction

    def begin(self, txn: Any) -> None:
        """Start a write transaction: keep the keys only when nothing else wrote since the last one."""
        gen = txn.get("meta", b"generation") or b"0"
        if gen != self._next:
            self.keys.clear()
        self._next = str(int(gen) + 1).encode()   # (what ``LmdbStore.write`` stores at its commit)


class RecordChanges:
    """Records loaded and changed within one write transaction.

    Index entries are recomputed at :meth:`flush` only for records whose
    indexed values changed (most updates only change counts).  Counts added
    with :meth:`add_counts` to a record nobody changed otherwise are written
    by patching the stored bytes (:func:`records.add_counts`): an import
    adding files to series already archived neither decodes nor re-encodes
    their study and patient records.
    """

    def __init__(self, txn: Any, secret: bytes, owners: SeriesOwners | None = None):
        self.txn = txn
        self.secret = secret
        if owners is None:
            owners = SeriesOwners()
        else:
            owners.begin(txn)
        self.owners = owners.keys   # series key -> (study key, patient key)
        self.recs: dict[str, dict[bytes, dict | None]] = {"patients": {}, "studies": {}, "series": {}}
        self.orig: dict[tuple[str, bytes], tuple] = {}       # indexed values as loaded
        self.orig_rec: dict[tuple[str, bytes], dict] = {}    # copies of those values, for old entries
        self.dirty: set[tuple[str, bytes]] = set()
        # counts added, not yet written: key -> [n_instances, size], by database
        self.deltas: dict[str, dict[bytes, list[int]]] = {"patients": {}, "studies": {}, "series": {}}
        # counts of series whose owners are known, not yet added to their study and
        # patient: series key -> [n_instances, size, (study key, patient key)]
        self._owned: dict[bytes, list] = {}

    def get(self, db: str, key: bytes) -> dict | None:
        if self._owned:
            self._fold_owned()
        cache = self.recs[db]
        if key in cache:
            return cache[key]
        raw = self.txn.get(db, key)
        rec = records.loads(raw) if raw is not None else None
        cache[key] = rec
        if rec is not None:
            if db in _INDEXED_FIELDS:
                snap = _snapshot(db, rec)
                self.orig[(db, key)] = snap
                self.orig_rec[(db, key)] = dict(zip(_INDEXED_FIELDS[db], snap))
            d = self.deltas[db].get(key)
            if d is not None:     # counts added before it was loaded
                rec["n_instances"] += d[0]
                rec["size"] += d[1]
        return rec

    def add_counts(self, db: str, key: bytes, n_instances: int, size: int) -> None:
        """Add to the ``n_instances`` and ``size`` of a stored record, loaded or not.

        The loaded dict, if any, shows the new counts at once; a record that
        is neither stored nor made in this transaction is left alone.
        """
        rec = self.recs[db].get(key)
        if rec is not None:
            rec["n_instances"] += n_instances
            rec["size"] += size
        _accumulate(self.deltas[db], key, n_instances, size)

    def add_owned_counts(self, seks: list[bytes], counts: list[int], sizes: list[int]) -> list[int]:
        """:meth:`add_counts` for each series of ``seks`` whose study and patient
        keys are known (:attr:`owners`), and for its study and patient; returns
        the indices of the others (their records are read by the caller).

        The counts are summed per series until a record is read or the
        transaction is flushed (:meth:`_fold_owned`): a transaction of many
        chunks scattered over the same series adds to each study and patient
        once, not once per chunk and series.
        """
        owned, owners = self._owned, self.owners
        rest = []
        for g, sek in enumerate(seks):
            d = owned.get(sek)
            if d is not None:
                d[0] += counts[g]
                d[1] += sizes[g]
                continue
            owner = owners.get(sek)
            if owner is None:
                rest.append(g)
            else:
                owned[sek] = [counts[g], sizes[g], owner]
        return rest

    def _fold_owned(self) -> None:
        """Add the counts summed by :meth:`add_owned_counts` to the series, studies and patients."""
        owned, self._owned = self._owned, {}
        studies: dict[bytes, list[int]] = {}
        patients: dict[bytes, list[int]] = {}
        loaded, deltas = self.recs["series"], self.deltas["series"]
        for sek, (n, size, (sk, pk)) in owned.items():
            # (add_counts("series", ...) inlined: a commit of a large import meets tens of thousands)
            rec = loaded.get(sek)
            if rec is not None:
                rec["n_instances"] += n
                rec["size"] += size
            _accumulate(deltas, sek, n, size)
            _accumulate(studies, sk, n, size)
            _accumulate(patients, pk, n, size)
        for db, up in (("studies", studies), ("patients", patients)):
            for k, (n, size) in up.items():
                self.add_counts(db, k, n, size)

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
        if self._owned:
            self._fold_owned()
        if db == "series":
            self.owners.pop(key, None)
        self.recs[db][key] = None
        self.dirty.add((db, key))

    def _flush_counts(self) -> None:
        """Write the counts added to records nobody changed otherwise: their
        counts entries alone (:meth:`~pocketpacs.archive.txn.Txn.add_counts`)."""
        txn, dirty = self.txn, self.dirty
        for db, deltas in self.deltas.items():
            if not deltas:
                continue
            import numpy as np

            ks = sorted(k for k in deltas if (db, k) not in dirty)
            # (a record removed in this transaction has no counts entry: skipped)
            txn.add_counts(db, ks, np.array([deltas[k] for k in ks], dtype=np.int64).reshape(-1, 2))
            deltas.clear()

    def flush(self) -> None:
        txn = self.txn
        if self._owned:
            self._fold_owned()
        self._flush_counts()
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
            raw = records.dumps_counted(rec)
            txn.put(db, key, raw)
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
