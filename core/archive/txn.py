"""The transaction object of the LMDB store: named databases, and records whose counts live apart.

:class:`Txn` wraps a py-lmdb transaction: ``get``/``put``/``delete``/
``putmulti``/``getmulti`` and ordered ``range`` scans over the named
databases of :data:`~pocketpacs.archive.store.DBS`.

Patient, study and series records are stored in two parts since schema 8
(:data:`~pocketpacs.archive.records.SPLIT`): the JSON body in the record's
database, and ``n_instances`` and ``size`` in its counts database
(:data:`COUNTS_DB`, 16 bytes per record).  Every read here joins them into
the :data:`~pocketpacs.archive.records.COUNTED` form the rest of the code
knows, and every write of a record writes both; :meth:`Txn.add_counts`
changes the counts alone.  An import scattered over thousands of series adds
files to most of them in every commit: it rewrites their counts entries (a
few hundred pages) instead of their records (thousands of pages).
"""
from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from . import records
from .mapped import mapped_ranges, over_ceiling, release_map_pages

#: The counts database of each record database (key -> the record's counts, 16 bytes).
COUNTS_DB = {"patients": "patients_counts", "studies": "studies_counts", "series": "series_counts"}


def counts_without_record(t: Any, db: str) -> list[bytes]:
    """Keys of the counts entries of ``db`` (patients, studies or series) whose
    record is not stored (a damaged archive: ``check`` reports them, ``verify`` removes them)."""
    if not t.splits_records:
        return []
    keys = [k for k, _v in t.range(COUNTS_DB[db])]
    have = t.found(db, keys)
    return [k for k in keys if k not in have]


def records_without_counts(t: Any, db: str) -> list[bytes]:
    """Keys of the records of ``db`` stored without a counts entry, or with
    one that is not 16 bytes (a damaged archive: such a record reads with
    counts of 0, ``check`` reports it, ``verify`` counts it again)."""
    if not t.splits_records:
        return []
    keys = [k for k, _v in t.range(db)]
    have = dict(t.getmulti(COUNTS_DB[db], keys))
    return [k for k in keys if len(have.get(k, b"")) != records.COUNTS_SIZE]


def counts_problems(t: Any) -> list[str]:
    """What ``check`` says of the counts entries of patients, studies and series."""
    out = []
    for db, one in (("series", "series"), ("studies", "study"), ("patients", "patient")):
        out += [f"{one} {k.hex()}: its counts entry is missing or malformed" for k in records_without_counts(t, db)]
        out += [f"counts entry {k.hex()} in {COUNTS_DB[db]}: no {one} record" for k in counts_without_record(t, db)]
    return out


class Txn:
    """A transaction over the named databases (LMDB-backed)."""

    __slots__ = ("_t", "_dbs", "write", "_map_file", "map_ranges")
    #: Patient, study and series records are stored in two parts (see the module docstring).
    splits_records = True

    def __init__(self, txn: Any, dbs: dict[str, Any], write: bool, map_file: Path | None = None):
        self._t = txn
        self._dbs = dbs
        self.write = write
        self._map_file = map_file
        self.map_ranges: list[tuple[int, int]] | None = None   # (a write's map cannot move: found once)

    def release_pages(self) -> None:
        """Drop the database map pages this process has read from its RSS (see
        :mod:`~pocketpacs.archive.mapped`); safe within a transaction, whose
        written pages are never in the map (no ``writemap``).  A long write
        transaction calls it between its parts: each random page it reads maps
        its 16 neighbours too, so a transaction of tens of thousands of random
        inserts would otherwise hold most of a large database in its RSS."""
        if self._map_file is not None:
            if self.map_ranges is None and self.write:
                self.map_ranges = mapped_ranges(self._map_file)
            release_map_pages(self._map_file, self.map_ranges)

    def trim_map(self) -> None:
        """:meth:`release_pages` when the process is over its resident-set
        ceiling (:func:`~pocketpacs.archive.mapped.over_ceiling`), else nothing:
        a long write transaction calls it between its parts."""
        if self._map_file is not None and over_ceiling(self._map_file):
            self.release_pages()

    # ---- records and their counts --------------------------------------------------
    def _counts(self, db: str) -> Any:
        return self._dbs[COUNTS_DB[db]]

    def _joined(self, db: str, key: bytes, body: bytes | None) -> bytes | None:
        if body is None or body[:1] != records.SPLIT:
            return body
        return records.join_counted(body, self._t.get(key, db=self._counts(db)))

    def _put_record(self, db: str, key: bytes, value: bytes) -> None:
        body, counts = records.split_counted(value)
        self._t.put(key, body, db=self._dbs[db])
        self._t.put(key, counts, db=self._counts(db))

    def add_counts(self, db: str, keys: list[bytes], deltas: Any) -> None:
        """Add ``deltas[i]`` (``n_instances``, ``size``: an int64 array of
        shape ``(len(keys), 2)``) to the counts of the stored record of
        ``keys[i]`` in ``db`` (patients, studies or series; sorted keys
        insert fastest), leaving the records' bodies alone; a key with no
        counts entry is skipped (no stored record; or a damaged archive,
        which ``check`` reports).

        Raises
        ------
        DamagedRecord
            A stored counts entry is not one.
        """
        import numpy as np

        if not keys:
            return
        size = records.COUNTS_SIZE
        with self._t.cursor(db=self._counts(db)) as c:
            got = c.getmulti(keys)
            if not got:
                return
            if any(len(v) != size for _k, v in got):
                raise records.damaged()
            counts = np.frombuffer(b"".join([v for _k, v in got]), dtype="<i8").reshape(-1, 2)
            if len(got) == len(keys):
                found, add = keys, deltas
            else:   # (records removed or never stored: skipped)
                found = [k for k, _v in got]
                where = dict(zip(keys, range(len(keys))))
                add = deltas[np.fromiter((where[k] for k in found), dtype=np.intp, count=len(found))]
            new = (counts + add).astype("<i8").tobytes()
            out = [new[j:j + size] for j in range(0, len(new), size)]
            c.putmulti(list(zip(found, out)))

    # ---- the named databases -------------------------------------------------------
    def get(self, db: str, key: bytes) -> bytes | None:
        """Value of ``key`` in ``db`` (a copy) or None."""
        v = self._t.get(key, db=self._dbs[db])
        return self._joined(db, key, v) if db in COUNTS_DB else v

    def getter(self, db: str) -> Callable[[bytes], bytes | None]:
        """A fast ``get(key)`` bound to one database (for hot loops)."""
        if db in COUNTS_DB:
            return functools.partial(self.get, db)
        return functools.partial(self._t.get, db=self._dbs[db])

    def found(self, db: str, keys: list[bytes]) -> set[bytes]:
        """The subset of ``keys`` present in ``db`` (one C call: ``getmulti``)."""
        with self._t.cursor(db=self._dbs[db]) as c:
            return {k for k, _v in c.getmulti(keys)}

    def getmulti(self, db: str, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of each of ``keys`` present in ``db``, in their order (one C call)."""
        with self._t.cursor(db=self._dbs[db]) as c:
            got = c.getmulti(keys)
        if db in COUNTS_DB:
            return [(k, self._joined(db, k, v)) for k, v in got]
        return got

    def put(self, db: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key`` (a record of ``db``: its body and its counts)."""
        if db in COUNTS_DB:
            self._put_record(db, key, value)
        else:
            self._t.put(key, value, db=self._dbs[db])

    def putmulti(self, db: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Store many items at once (sorted items insert fastest)."""
        if db in COUNTS_DB:
            for k, v in items:
                self._put_record(db, k, v)
            return
        with self._t.cursor(db=self._dbs[db]) as c:
            c.putmulti(items)

    def delete(self, db: str, key: bytes) -> bool:
        """Delete ``key`` (a record of ``db``: with its counts); return whether it existed."""
        if db in COUNTS_DB:
            self._t.delete(key, db=self._counts(db))
        return self._t.delete(key, db=self._dbs[db])

    def range(self, db: str, prefix: bytes = b"", start: bytes | None = None,
              stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Items whose key starts with ``prefix`` and lies in [start, stop)."""
        lo = max(prefix, start) if start is not None else prefix
        joined = db in COUNTS_DB
        with self._t.cursor(db=self._dbs[db]) as c:
            if not c.set_range(lo):
                return
            for k, v in c.iternext():
                if not k.startswith(prefix) or (stop is not None and k >= stop):
                    return
                yield k, (self._joined(db, k, v) if joined else v)

    def range_items(self, db: str, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        """The items whose key lies in [start, stop), as :meth:`range` gives
        them, read by C loops (no Python code runs per item: a rescan reads
        the listings of every folder under its root this way)."""
        if db in COUNTS_DB:
            return list(self.range(db, start=start, stop=stop))
        with self._t.cursor(db=self._dbs[db]) as c:
            if not c.set_range(start):
                return []
            # ((stop,) > (key, value): key < stop)
            return list(itertools.takewhile(functools.partial(operator.gt, (stop,)), c.iternext()))

    def count(self, db: str) -> int:
        """Number of entries in ``db``."""
        return self._t.stat(self._dbs[db])["entries"]

    def drop(self, db: str) -> None:
        """Delete every entry of ``db`` (a record database: with its counts)."""
        if db in COUNTS_DB:
            self._t.drop(self._counts(db), delete=False)
        self._t.drop(self._dbs[db], delete=False)
