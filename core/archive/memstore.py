"""In-memory storage with the interface of the LMDB store.

:class:`MemoryStore` keeps every named database of
:data:`~pocketpacs.archive.store.DBS` in a dictionary (with a sorted key list
for ordered ``range`` scans, rebuilt after inserts) and hands out
:class:`MemTxn` transactions, whose undo log rolls back a write that raises.
The no-trace media sessions (:func:`pocketpacs.open_media`) use it, so
nothing is written to disk; it is always at the current schema version.
"""
from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ArchiveError
from . import records
from .store import DBS, SCHEMA_VERSION, Txn


class _MemDB:
    __slots__ = ("data", "_sorted")

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._sorted: list[bytes] | None = []

    def keys_sorted(self) -> list[bytes]:
        if self._sorted is None:
            self._sorted = sorted(self.data)
        return self._sorted


class MemTxn(Txn):
    """A transaction over a :class:`MemoryStore` (undo log for aborts)."""

    __slots__ = ("_undo",)
    splits_records = False   # (records stay whole: no counts databases)

    def __init__(self, dbs: dict[str, _MemDB], write: bool):
        super().__init__(None, dbs, write)
        self._undo: list[tuple[str, bytes, bytes | None]] = []

    def get(self, db: str, key: bytes) -> bytes | None:
        return self._dbs[db].data.get(key)

    def getter(self, db: str) -> Callable[[bytes], bytes | None]:
        return self._dbs[db].data.get

    def found(self, db: str, keys: list[bytes]) -> set[bytes]:
        data = self._dbs[db].data
        return {k for k in keys if k in data}

    def getmulti(self, db: str, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        data = self._dbs[db].data
        return [(k, data[k]) for k in keys if k in data]

    def put(self, db: str, key: bytes, value: bytes) -> None:
        d = self._dbs[db]
        old = d.data.get(key)
        if old is None:
            d._sorted = None
        self._undo.append((db, key, old))
        d.data[key] = bytes(value)

    def putmulti(self, db: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        for k, v in items:
            self.put(db, k, v)

    def delete(self, db: str, key: bytes) -> bool:
        d = self._dbs[db]
        old = d.data.pop(key, None)
        if old is None:
            return False
        d._sorted = None
        self._undo.append((db, key, old))
        return True

    def add_counts(self, db: str, keys: list[bytes], deltas: Any) -> None:
        # (records stay whole here: their counted bytes are patched)
        data = self._dbs[db].data
        for k, (n, size) in zip(keys, deltas.tolist()):
            raw = data.get(k)
            if raw is not None:
                self.put(db, k, records.add_counts(raw, n, size))

    def range(self, db: str, prefix: bytes = b"", start: bytes | None = None,
              stop: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        d = self._dbs[db]
        keys = d.keys_sorted()
        lo = max(prefix, start) if start is not None else prefix
        i = bisect.bisect_left(keys, lo)
        out = []
        for k in keys[i:]:
            if not k.startswith(prefix) or (stop is not None and k >= stop):
                break
            v = d.data.get(k)
            if v is not None:
                out.append((k, v))
        return iter(out)

    def range_items(self, db: str, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        return list(self.range(db, start=start, stop=stop))

    def count(self, db: str) -> int:
        return len(self._dbs[db].data)

    def drop(self, db: str) -> None:
        for k in list(self._dbs[db].data):
            self.delete(db, k)

    def _rollback(self) -> None:
        for db, key, old in reversed(self._undo):
            d = self._dbs[db]
            if old is None:
                d.data.pop(key, None)
            else:
                d.data[key] = old
            d._sorted = None
        self._undo.clear()


class MemoryStore:
    """In-memory store with the interface of :class:`LmdbStore`.

    Nothing is written to disk.  A write that raises is rolled back.
    """

    def __init__(self) -> None:
        self.path = None
        self.readonly = False
        self._dbs = {name: _MemDB() for name in DBS}
        self._lock = threading.RLock()
        self._closed = False
        self._dbs["meta"].data[b"schema"] = str(SCHEMA_VERSION).encode()
        self._dbs["meta"].data[b"generation"] = b"0"
        self._dbs["meta"]._sorted = None

    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    @contextmanager
    def read(self) -> Iterator[Txn]:
        if self._closed:
            raise ArchiveError("the archive is closed")
        with self._lock:
            yield MemTxn(self._dbs, False)

    def write(self, fn: Callable[[Txn], Any]) -> Any:
        if self._closed:
            raise ArchiveError("the archive is closed")
        with self._lock:
            t = MemTxn(self._dbs, True)
            try:
                out = fn(t)
            except BaseException:
                t._rollback()
                raise
            meta = self._dbs["meta"].data
            meta[b"generation"] = str(int(meta.get(b"generation", b"0")) + 1).encode()
            return out

    @property
    def generation(self) -> int:
        return int(self._dbs["meta"].data.get(b"generation", b"0"))

    def info(self) -> dict:
        return {"map_size": 0, "file_size": 0}

    def close(self) -> None:
        self._closed = True
        for d in self._dbs.values():
            d.data.clear()
            d._sorted = []

    def __enter__(self) -> "MemoryStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
