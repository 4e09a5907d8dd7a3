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

import itertools
from typing import Any

import numpy as np

from . import keys as _keys
from . import query
from . import records
from . import sopindex


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
    counts they add go to the records' counts entries without reading the
    records (:meth:`RecordChanges.add_owned_counts`), and these keys spare
    decoding the series record to find its study and patient.  :meth:`lookup`
    finds them for a whole array of series at once.

    Valid only while the importer is the archive's only writer: :meth:`begin`
    forgets everything when the archive's generation is not the one the
    importer's last commit left (another write came between, or the last
    transaction was rolled back), and a series deleted through
    :class:`RecordChanges` is forgotten at once.
    """

    def __init__(self) -> None:
        self.keys: dict[bytes, tuple[bytes, bytes]] = {}   # series key -> (study key, patient key)
        self._next: bytes | None = None   # generation expected at the next transaction
        self._gen: bytes | None = None    # generation the last transaction began at
        self.sops = sopindex.ImportSops()   # the SOP keys archived, when the archive began empty
        self._forget_index()

    def _forget_index(self) -> None:
        # :meth:`lookup`'s arrays: the series hashes of the first ``_n`` keys, sorted, with
        # the index of each one's study and patient key in ``study_keys``/``patient_keys``
        self._n = 0
        self._h = np.zeros(0, dtype=np.uint64)
        self._st = np.zeros(0, dtype=np.int64)
        self._pa = np.zeros(0, dtype=np.int64)
        self.study_keys: list[bytes] = []
        self.patient_keys: list[bytes] = []
        self._st_i: dict[bytes, int] = {}
        self._pa_i: dict[bytes, int] = {}

    def begin(self, txn: Any) -> None:
        """Start a write transaction: keep the keys only when nothing else wrote since the last one."""
        gen = txn.get("meta", b"generation") or b"0"
        if gen != self._next:
            self.keys.clear()
            self._forget_index()
        # (a transaction run again after a rollback, the map grown, finds the generation the
        # last one found: the SOP keys it kept are then a superset, still good to ask)
        self.sops.begin(txn, gen == self._next or gen == self._gen)
        self._gen = gen
        self._next = str(int(gen) + 1).encode()   # (what ``LmdbStore.write`` stores at its commit)

    def forget(self, sek: bytes) -> None:
        """Forget one series (deleted): :meth:`lookup` indexes the keys again."""
        if self.keys.pop(sek, None) is not None:
            self._forget_index()

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(known, study, patient)`` of series given by their hashes (uint64,
        a series key's big-endian number): whether the series' keys are known,
        and for those that are, the index of their study key in
        :attr:`study_keys` and of their patient key in :attr:`patient_keys`
        (indices stay valid until :meth:`begin` or :meth:`forget` forgets)."""
        if len(self.keys) != self._n:
            self._index_new()
        h = self._h
        if not h.size:
            return np.zeros(hashes.size, dtype=bool), h.astype(np.int64), h.astype(np.int64)
        pos = np.minimum(np.searchsorted(h, hashes), h.size - 1)
        known = h[pos] == hashes
        pos = pos[known]
        return known, self._st[pos], self._pa[pos]

    def _index_new(self) -> None:
        """Add the keys added since the last :meth:`lookup` to its arrays (keys
        are only added between two :meth:`_forget_index`: a dict keeps their order)."""
        if len(self.keys) < self._n:
            self._forget_index()
        new = list(itertools.islice(self.keys.items(), self._n, None))
        st_i, pa_i = self._st_i, self._pa_i
        st, pa = [], []
        for _k, (sk, pk) in new:
            j = st_i.get(sk)
            if j is None:
                j = st_i[sk] = len(self.study_keys)
                self.study_keys.append(sk)
            st.append(j)
            j = pa_i.get(pk)
            if j is None:
                j = pa_i[pk] = len(self.patient_keys)
                self.patient_keys.append(pk)
            pa.append(j)
        h = np.concatenate([self._h, np.frombuffer(b"".join(k for k, _o in new), dtype=">u8").astype(np.uint64)])
        order = np.argsort(h, kind="stable")
        self._h = h[order]
        self._st = np.concatenate([self._st, np.array(st, dtype=np.int64)])[order]
        self._pa = np.concatenate([self._pa, np.array(pa, dtype=np.int64)])[order]
        self._n = len(self.keys)


def _sum_by(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unique keys, summed rows)``: the rows of ``counts`` (int64, one row per
    key) summed by key, keys sorted."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    start = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    return k[start], np.add.reduceat(counts[order], start, axis=0)


class RecordChanges:
    """Records loaded and changed within one write transaction.

    Index entries are recomputed at :meth:`flush` only for records whose
    indexed values changed (most updates only change counts).  Counts added
    with :meth:`add_counts` or :meth:`add_owned_counts` to a record nobody
    changed otherwise are written to its counts entry alone
    (:meth:`~pocketpacs.archive.txn.Txn.add_counts`): an import adding files
    to series already archived neither decodes nor rewrites their series,
    study and patient records.
    """

    def __init__(self, txn: Any, secret: bytes, owners: SeriesOwners | None = None):
        self.txn = txn
        self.secret = secret
        if owners is None:
            owners = SeriesOwners()
        else:
            owners.begin(txn)
        self._owners = owners
        self.owners = owners.keys   # series key -> (study key, patient key)
        # the SOP keys the import archived (ImportSops), when it keeps them
        self.import_sops = owners.sops if owners.sops.active else None
        self.recs: dict[str, dict[bytes, dict | None]] = {"patients": {}, "studies": {}, "series": {}}
        self.orig: dict[tuple[str, bytes], tuple] = {}       # indexed values as loaded
        self.orig_rec: dict[tuple[str, bytes], dict] = {}    # copies of those values, for old entries
        self.dirty: set[tuple[str, bytes]] = set()
        # counts added, not yet written: key -> [n_instances, size], by database
        self.deltas: dict[str, dict[bytes, list[int]]] = {"patients": {}, "studies": {}, "series": {}}
        # counts of series whose owners are known, not yet added to their study and
        # patient: (series hashes, their study and patient indices, [n_instances, size] rows)
        self._owned: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        # counts summed by _fold_owned, not yet in ``deltas``: (sorted keys, rows), by database
        self._folded: dict[str, list[tuple[list[bytes], np.ndarray]]] = {"patients": [], "studies": [],
                                                                          "series": []}

    def _settle(self) -> None:
        """Every count added so far in ``deltas`` (and in the records loaded)."""
        if self._owned:
            self._fold_owned()
        for db, parts in self._folded.items():
            deltas = self.deltas[db]
            for ks, rows in parts:
                for k, (n, size) in zip(ks, rows.tolist()):
                    _accumulate(deltas, k, n, size)
            parts.clear()

    def get(self, db: str, key: bytes) -> dict | None:
        if self._owned or any(self._folded.values()):
            self._settle()
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

    def add_owned_counts(self, seks: Any, counts: Any, sizes: Any) -> list[int]:
        """:meth:`add_counts` for each series of ``seks`` (8-byte keys, or their
        hashes as a uint64 array) whose study and patient keys are known
        (:attr:`owners`), and for its study and patient; returns the indices
        of the others (their records are read by the caller).

        The counts are summed per series, study and patient until a record is
        read or the transaction is flushed (:meth:`_fold_owned`, array
        operations): a transaction of many chunks scattered over the same
        series adds to each once, not once per chunk and series, and a large
        import's tens of thousands of series per commit cost no Python loop.
        """
        if not isinstance(seks, np.ndarray):
            seks = np.frombuffer(b"".join(seks), dtype=">u8")
        h = seks.astype(np.uint64)
        known, st, pa = self._owners.lookup(h)
        if st.size:
            rows = np.stack([np.asarray(counts, dtype=np.int64), np.asarray(sizes, dtype=np.int64)], axis=1)
            self._owned.append((h[known], st, pa, rows[known]))
        return np.flatnonzero(~known).tolist()

    def _fold_owned(self) -> None:
        """Sum the counts of :meth:`add_owned_counts` by series, study and
        patient (into ``_folded``), and add them to the records loaded."""
        owned, self._owned = self._owned, []
        h = np.concatenate([o[0] for o in owned])
        rows = np.concatenate([o[3] for o in owned])
        ow = self._owners
        for db, keys, names in (("series", h, None),
                                ("studies", np.concatenate([o[1] for o in owned]), ow.study_keys),
                                ("patients", np.concatenate([o[2] for o in owned]), ow.patient_keys)):
            u, sums = _sum_by(keys, rows)
            if names is None:
                ks = _keys.hashes_to_keys(u)
            else:
                ks = [names[j] for j in u.tolist()]
                order = sorted(range(len(ks)), key=ks.__getitem__)
                ks, sums = [ks[j] for j in order], sums[order]
            loaded = self.recs[db]
            if loaded:
                at = dict(zip(ks, range(len(ks))))
                for k, rec in loaded.items():
                    j = at.get(k)
                    if rec is not None and j is not None:
                        rec["n_instances"] += int(sums[j, 0])
                        rec["size"] += int(sums[j, 1])
            self._folded[db].append((ks, sums))

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
        self._settle()
        if db == "series":
            self._owners.forget(key)
        self.recs[db][key] = None
        self.dirty.add((db, key))

    def _flush_counts(self) -> None:
        """Write the counts added to records nobody changed otherwise: their
        counts entries alone (:meth:`~pocketpacs.archive.txn.Txn.add_counts`)."""
        txn = self.txn
        dirty = {}
        for db, k in self.dirty:
            dirty.setdefault(db, set()).add(k)
        if any(len(p) > 1 or (p and self.deltas[db]) for db, p in self._folded.items()):
            self._settle()   # (sums of several kinds: one by key, in ``deltas``)
        for db, deltas in self.deltas.items():
            parts = self._folded[db]
            if parts:         # (a large import's commit: one fold, arrays as they are)
                ks, rows = parts.pop()
            elif deltas:
                ks = sorted(deltas)
                rows = np.array([deltas[k] for k in ks], dtype=np.int64).reshape(-1, 2)
                deltas.clear()
            else:
                continue
            skip = dirty.get(db)
            if skip:   # (written whole by the flush, with their counts)
                keep = [k not in skip for k in ks]
                ks = [k for k, y in zip(ks, keep) if y]
                rows = rows[np.array(keep, dtype=bool)]
            # (a record removed in this transaction has no counts entry: skipped)
            txn.add_counts(db, ks, rows)

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
