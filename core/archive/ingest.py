"""Import orchestration: walk -> skip unchanged -> parse -> batched commits.

The walk (:mod:`pocketpacs.archive.scan`) lists each folder once and compares it
with the folder's stored listing (one read per folder): files whose path,
size and mtime are unchanged are skipped without being opened.  New and
changed files are parsed in chunks of :data:`CHUNK` files by the native
header parser (:func:`pocketpacs.dicom.headers.parse_files`, kernels in parallel,
no per-file ``stat``: the sizes and mtimes of the walk are passed in), and
each chunk is committed in one write transaction by this, the only, writer.
Readers see the first series as soon as the first chunk commits.

Per chunk the Python work is per *group*: instances are grouped by series
hash with NumPy, patient/study/series records are built once per group from
one representative file, and instance values are built column-wise
(:func:`pocketpacs.archive.records.encode_instances`) and written with ``putmulti``.

Files whose SOP Instance UID is already known take the slow path:

- same path: unchanged (re-import after an interruption) or updated;
- same size and header fingerprint, old files gone: *relinked*;
- same size and fingerprint, old file still there: *duplicate* (one
  instance, several locations);
- different content: *conflict*, recorded and flagged, never overwritten.

Files that vanish are marked missing and their instances offline (never
deleted); they come back online when the files reappear.  A folder's
listing is written in the same transaction as the last of its files, so an
interrupted import (cancel, crash, kill -9) leaves a consistent archive and
the next import resumes: committed files are recognised by path.
"""
from __future__ import annotations

import collections
import gc
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import keys as K  # noqa: E402
from . import readahead  # noqa: E402
from . import query as Q  # noqa: E402
from . import records as R  # noqa: E402
from ..dicom import tags as T  # noqa: E402
from .scan import Folder, list_folder  # noqa: E402
from .memstore import MemoryStore  # noqa: E402

#: Files parsed and committed per transaction.
CHUNK = 2000
#: Commit chunks in a writer thread while the next chunk is parsed.
PIPELINE = False
#: Read the next chunk's file heads in a helper process (``readahead``) while
#: this one is parsed and committed (Linux; off elsewhere or on any failure).
READ_AHEAD = True
#: New files listed before the helper is started (a rescan or a small import starts none).
READ_AHEAD_START = 500
#: Files the walk may list ahead of the parser.
WALK_AHEAD = 100_000
#: Seconds between progress callbacks.
PROGRESS_EVERY = 0.2

_NUM_KWS = tuple((kw, int(T.NUM_START[T.INDEX[kw]]), int(T.NUM_COUNT[T.INDEX[kw]]))
                 for kw in R.NUMERIC_KEYWORDS)
_TRANSIENT = np.zeros(256, dtype=bool)
_TRANSIENT[list(R.TRANSIENT)] = True
_REASON_PUBLIC = {"no_identifiers": "unsupported", "empty": "truncated"}


@dataclass
class Failure:
    """A file that was not indexed."""
    path: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "message": self.message}


@dataclass
class ImportProgress:
    """What an import has done so far (passed to the progress callback).

    Attributes
    ----------
    phase : str
        ``"walk"``, ``"import"`` or ``"done"``.
    seen : int
        Files found by the walk so far.
    total : int or None
        Files to look at, once the walk is complete.
    parsed, unchanged, failed, indexed : int
    files_per_s : float
    eta_s : float or None
    """
    phase: str = "walk"
    seen: int = 0
    total: int | None = None
    parsed: int = 0
    unchanged: int = 0
    failed: int = 0
    indexed: int = 0
    elapsed_s: float = 0.0
    files_per_s: float = 0.0
    eta_s: float | None = None

    @property
    def done(self) -> int:
        """Files dealt with (parsed or skipped)."""
        return self.parsed + self.unchanged


@dataclass
class ImportReport:
    """Outcome of one import.

    The JSON form (:meth:`to_json`) is what ``pocketpacs import --json``
    prints; its shape is stable.
    """
    root: str
    indexed: int = 0
    unchanged: int = 0
    relinked: int = 0
    duplicate: int = 0
    missing: int = 0
    online_again: int = 0
    seen: int = 0
    parsed: int = 0
    fallback: int = 0
    failures: list[Failure] = field(default_factory=list)
    conflicts: list[Failure] = field(default_factory=list)
    cancelled: bool = False
    elapsed_s: float = 0.0
    dicomdir: dict[str, Any] | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def files_per_s(self) -> float:
        return self.seen / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed_s, 3),
            "files_per_s": round(self.files_per_s, 1),
            "counts": {"seen": self.seen, "indexed": self.indexed, "unchanged": self.unchanged,
                       "relinked": self.relinked, "duplicate": self.duplicate, "conflict": len(self.conflicts),
                       "failed": self.failed, "missing": self.missing, "online_again": self.online_again},
            "failed": [f.to_json() for f in self.failures],
            "conflicts": [c.to_json() for c in self.conflicts],
            "dicomdir": self.dicomdir,
        }


def _open_flags() -> int:
    from ..dicom.headers import _O_FLAGS

    return _O_FLAGS


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _s(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "\\".join("" if x is None else str(x) for x in v)
    return str(v)


def _int_or_none(v: Any) -> int | None:
    try:
        f = float(v[0] if isinstance(v, list) else v)
    except (TypeError, ValueError, IndexError):
        return None
    return int(f) if np.isfinite(f) else None


def _add_sorted(lst: list, value: str) -> bool:
    if value and value not in lst:
        lst.append(value)
        lst.sort()
        return True
    return False


_REP_VRS = {t.keyword: t.vr for t in T.TAGS}


class _RowValues:
    """Text values of one file of a batch, decoded on demand.

    Plain ASCII values of natively parsed files are decoded here from the
    raw bytes (``HeaderBatch.raw``) with pydicom's padding rules; anything
    else (other character sets, fallback files) comes from
    ``HeaderBatch.record`` once per file.  Used for the one representative
    file of each new series.
    """

    __slots__ = ("b", "i", "nums", "_rec", "_cache")

    def __init__(self, b: Any, i: int, nums: np.ndarray | None = None):
        self.b, self.i, self.nums = b, i, nums
        self._rec: dict | None = None
        self._cache: dict[str, Any] = {}

    def _record(self) -> dict:
        if self._rec is None:
            self._rec = self.b.record(self.i)
        return self._rec

    def get(self, kw: str) -> Any:
        if kw in self._cache:
            return self._cache[kw]
        b, i = self.b, self.i
        v: Any
        if b.status[i] != 0:
            v = self._record().get(kw)
        else:
            vr = _REP_VRS[kw]
            if vr in ("US", "IS", "DS"):
                if self.nums is not None:  # the row's numeric values, already extracted
                    x = float(self.nums[int(T.NUM_START[T.INDEX[kw]])])
                else:
                    x = float(b.number(kw)[i])
                v = None if x != x else x
            else:
                raw = b.raw(kw, i)
                if raw is None:
                    v = None
                elif raw.isascii() and b"\x1b" not in raw:
                    t = raw.decode("ascii")
                    if "\\" in t and vr in ("SH", "LO", "UC"):
                        v = "\\".join(x.rstrip(" \0") for x in t.split("\\"))
                    else:
                        v = t.rstrip(" \0")
                else:
                    v = _decode_text(raw, vr, b.raw("SpecificCharacterSet", i))
        self._cache[kw] = v
        return v


_DECODED: dict[tuple[bytes, str, bytes | None], str | None] = {}


def _decode_text(raw: bytes, vr: str, scs: bytes | None) -> str | None:
    """Decode one text value with its Specific Character Set (as pydicom does)."""
    key = (raw, vr, scs)
    hit = _DECODED.get(key, False)
    if hit is not False:
        return hit  # type: ignore[return-value]
    from pydicom.charset import convert_encodings, decode_bytes
    from pydicom.valuerep import PersonName

    try:
        names = [v.strip().decode("latin-1") for v in (scs or b"").rstrip(b"\0 ").split(b"\\")] if scs else []
        try:
            encodings = convert_encodings(names) if names else ["iso8859"]
        except Exception:
            encodings = ["iso8859"]
        if vr == "PN":
            out: str | None = str(PersonName(raw, encodings).decode())
        else:
            delims = {0x5C} if vr in ("SH", "LO", "UC") else set()
            out = decode_bytes(raw, encodings, delims)
        out = out.rstrip(" \0") if out is not None else None
    except Exception:
        out = raw.decode("latin-1").rstrip(" \0")
    if len(_DECODED) > 4096:
        _DECODED.clear()
    _DECODED[key] = out
    return out


class _FolderState:
    """A walked folder waiting for its files to be committed."""

    __slots__ = ("path", "names", "size", "mtime", "keys", "code", "missing", "pending",
                 "stored", "reappeared", "partial")

    def __init__(self, folder: Folder, stored: R.DirListing | None, partial: bool = False):
        n = len(folder.names)
        self.path = folder.path
        self.names = folder.names
        self.size = np.asarray(folder.sizes, dtype=np.int64)
        self.mtime = np.asarray(folder.mtimes, dtype=np.int64)
        self.keys = np.zeros((n, 16), dtype=np.uint8)
        self.code = np.zeros(n, dtype=np.int8)
        self.missing = np.zeros(n, dtype=bool)
        self.pending = 0
        self.stored = stored
        self.reappeared: list[bytes] = []
        self.partial = partial


_INDEXED_FIELDS = {
    "patients": ("name", "patient_id", "birth_date"),
    "studies": ("date", "modalities", "description", "series_words", "accession"),
}


def _snapshot(db: str, rec: dict) -> tuple:
    """The values of a record that its index entries depend on."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in (rec.get(f) for f in _INDEXED_FIELDS[db]))


class Ctx:
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
        rec = R.loads(raw) if raw is not None else None
        cache[key] = rec
        if rec is not None and db in _INDEXED_FIELDS:
            snap = _snapshot(db, rec)
            self.orig[(db, key)] = snap
            self.orig_rec[(db, key)] = dict(zip(_INDEXED_FIELDS[db], snap))
        return rec

    @staticmethod
    def _entries(db: str, key: bytes, rec: dict) -> set:
        return Q.patient_entries(key, rec) if db == "patients" else Q.study_entries(key, rec)

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
                    Q.reindex(txn, self._old_entries(db, key), set())
                    self.orig.pop((db, key), None)
                    self.orig_rec.pop((db, key), None)
                continue
            txn.put(db, key, R.dumps(rec))
            if indexed:
                snap = _snapshot(db, rec)
                if snap != self.orig.get((db, key)):
                    Q.reindex(txn, self._old_entries(db, key), self._entries(db, key, rec))
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
        if bool(flags & R.OFFLINE) == offline:
            return False
        flags = flags | R.OFFLINE if offline else flags & ~R.OFFLINE
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


class Importer:
    """Imports folders into a store (on disk or in memory).

    Parameters
    ----------
    store : LmdbStore or MemoryStore
    secret : bytes
        The archive's HMAC secret (patient keys).
    exclude : frozenset of str
        Real paths of folders never walked (the archive folder).
    """

    def __init__(self, store: Any, secret: bytes, exclude: frozenset[str] = frozenset()):
        self.store = store
        self.secret = secret
        self.exclude = exclude

    # ---- entry point ----------------------------------------------------------------
    def run(self, root: os.PathLike[str] | str, progress: Callable[[ImportProgress], Any] | None = None,
            cancel: Any = None, *, use_dicomdir: bool = True) -> ImportReport:
        """Import ``root`` (a folder, or a single file).

        Raises
        ------
        FileNotFoundError
            ``root`` does not exist.
        """
        root_s = os.path.abspath(os.fspath(root))
        if not os.path.exists(root_s):
            raise FileNotFoundError(f"{root_s}: no such file or folder")
        t0 = time.perf_counter()
        # the import allocates millions of short-lived objects and makes no
        # reference cycles: the cyclic GC would only rescan the heap (tens of
        # ms per full collection with numba and pydicom loaded)
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(root_s, t0, progress, cancel, use_dicomdir)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _run(self, root_s: str, t0: float, progress: Callable[[ImportProgress], Any] | None, cancel: Any,
             use_dicomdir: bool) -> ImportReport:
        rep = ImportReport(root=root_s)
        prog = ImportProgress()
        self._rep, self._prog, self._t0 = rep, prog, t0
        self._progress_cb, self._last_cb = progress, 0.0
        self._pending: collections.deque[tuple[_FolderState, np.ndarray]] = collections.deque()
        self._npending = 0
        self._ready: list[_FolderState] = []
        self._hint_done: dict[str, tuple[int, bytes]] = {}
        self._walked: set[str] = set()
        self._rt = None
        self._writer: threading.Thread | None = None
        self._ra = (readahead.ReadAhead(_open_flags()) if READ_AHEAD and readahead.available()
                    else None)
        self._ahead: tuple | None = None
        # new folders are listed without a stat per file: the reader takes
        # sizes and times from the open file (fstat), which costs less than a
        # stat by path (measured); on Windows the listing has them for free
        self._stat_free = os.name != "nt"
        single = os.path.isfile(root_s)

        rk = root_s.encode("utf-8", "surrogateescape")
        with self.store.read() as t:
            known_root = t.get("roots", rk) is not None
        if not known_root:  # (a commit costs a sync: only when new)
            self.store.write(lambda t: t.put("roots", rk, R.dumps({"added": time.time()})))
        try:
            if use_dicomdir and not single:
                self._dicomdir_phase(root_s, cancel)
            if single:
                folder, _ = list_folder(os.path.dirname(root_s))
                name = os.path.basename(root_s)
                keep = [i for i, n in enumerate(folder.names) if n == name]
                folder.names = [folder.names[i] for i in keep]
                folder.sizes = [folder.sizes[i] for i in keep]
                folder.mtimes = [folder.mtimes[i] for i in keep]
                folder.problems = [p for p in folder.problems if p.path == root_s]
                self._add_folder(folder, partial=True)
            else:
                for folder, raw in self._walk(root_s):
                    if _is_cancelled(cancel):
                        rep.cancelled = True
                        break
                    self._add_folder(folder, raw=raw)
                    if self._ra is not None and self._npending >= READ_AHEAD_START:
                        if not self._ra.started:
                            self._ra.start()     # ready by the time a chunk is listed
                        elif self._npending >= CHUNK:
                            self._read_ahead()   # read during the rest of the walk
                    # walk first (fast), so the import knows its total and ETA; very
                    # large trees start committing during the walk to bound memory
                    while self._npending >= WALK_AHEAD and not rep.cancelled:
                        self._flush(CHUNK)
                        if _is_cancelled(cancel):
                            rep.cancelled = True
            prog.total = prog.seen
            prog.phase = "import"
            while (self._pending or self._ready or self._ahead is not None) and not rep.cancelled:
                self._flush(CHUNK)
                if _is_cancelled(cancel):
                    rep.cancelled = True
            self._stop_writer()
            if not rep.cancelled and not single:
                self._missing_folders(root_s)
        finally:
            self._end_read()
            if self._ra is not None:
                self._ra.close()
                self._ahead = None
            if self._writer is not None:
                try:
                    self._stop_writer()
                except BaseException:
                    pass
            rep.elapsed_s = time.perf_counter() - t0
            prog.phase = "done"
            self._report_progress(force=True)
        return rep

    # ---- walk -----------------------------------------------------------------------
    def _walk(self, root: str):
        stack = [root]
        real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
        exclude = frozenset(e for e in self.exclude if (e + os.sep).startswith(real_root))
        while stack:
            d = stack.pop()
            if exclude and os.path.realpath(d) in exclude:
                continue
            # a folder imported before is stat()ed file by file (its stored
            # listing is compared); a new one is not: its files' sizes and
            # times come from fstat when they are read
            raw = self._listing(d.encode("utf-8", "surrogateescape"))
            folder, subdirs = list_folder(d, stat=raw is not None or not self._stat_free)
            yield folder, raw
            stack.extend(subdirs)

    def _add_folder(self, folder: Folder, partial: bool = False, raw: Any = False) -> None:
        rep, prog = self._rep, self._prog
        for p in folder.problems:
            rep.failures.append(Failure(p.path, p.reason, p.message))
        prog.failed += len(folder.problems)
        self._walked.add(folder.path)
        if raw is False:
            raw = self._listing(folder.path.encode("utf-8", "surrogateescape"))
        n = len(folder.names)
        if raw is not None and not partial and R.DirListing.unchanged(raw, folder.names, folder.sizes,
                                                                       folder.mtimes):
            prog.seen += n  # the usual rescan case: nothing changed in this folder
            rep.seen += n
            prog.unchanged += n
            rep.unchanged += n
            self._report_progress()
            return
        stored = R.DirListing.decode(raw) if raw else None
        if any(nm.upper() == "DICOMDIR" for nm in folder.names):  # read as a hint, not an instance
            keep = [i for i, nm in enumerate(folder.names) if nm.upper() != "DICOMDIR"]
            folder.names = [folder.names[i] for i in keep]
            folder.sizes = [folder.sizes[i] for i in keep]
            folder.mtimes = [folder.mtimes[i] for i in keep]
        n = len(folder.names)
        if (stored is not None and not partial and stored.names == folder.names
                and stored.mtime_ns.tolist() == folder.mtimes and stored.size.tolist() == folder.sizes
                and not stored.missing.any() and not _TRANSIENT[stored.code].any()):
            # the usual rescan case: nothing changed in this folder
            prog.seen += n
            rep.seen += n
            prog.unchanged += n
            bad = np.nonzero(stored.code)[0]
            rep.unchanged += n - bad.size
            for i in bad.tolist():
                self._report_known(folder.path, folder.names[i], int(stored.code[i]))
            self._report_progress()
            return
        fs = _FolderState(folder, stored, partial)
        prog.seen += n
        rep.seen += n
        todo = np.ones(n, dtype=bool)
        unchanged_folder = False
        if stored is not None and len(stored) and n:
            if stored.names == fs.names:  # the usual case: same files
                idx = np.arange(n, dtype=np.int64)
                known = np.ones(n, dtype=bool)
            else:
                idx = np.fromiter((stored.index.get(nm, -1) for nm in fs.names), dtype=np.int64, count=n)
                known = idx >= 0
            j = idx[known]
            same = np.zeros(n, dtype=bool)
            same[known] = ((stored.size[j] == fs.size[known]) & (stored.mtime_ns[j] == fs.mtime[known])
                           & ~_TRANSIENT[stored.code[j]])
            unchanged_folder = (bool(same.all()) and len(stored) == n and not stored.missing.any())
            rows = np.nonzero(same)[0]
            js = idx[rows]
            fs.keys[rows] = stored.keys[js]
            fs.code[rows] = stored.code[js]
            todo[rows] = False
            back = rows[stored.missing[js] & (stored.code[js] == 0)]
            fs.reappeared = [fs.keys[i].tobytes() for i in back.tolist()]
            unchanged_ok = int((stored.code[js] == 0).sum())
            rep.unchanged += unchanged_ok
            prog.unchanged += len(rows)
            for i in rows[stored.code[js] != 0].tolist():
                self._report_known(fs.path, fs.names[i], int(fs.code[i]))
        if self._hint_done:
            for i in np.nonzero(todo)[0].tolist():
                hit = self._hint_done.get(os.path.join(fs.path, fs.names[i]))
                if hit is not None:
                    fs.code[i] = hit[0]
                    fs.keys[i] = np.frombuffer(hit[1], dtype=np.uint8)
                    todo[i] = False
        rows = np.nonzero(todo)[0]
        fs.pending = int(rows.size)
        if rows.size:
            self._pending.append((fs, rows))
            self._npending += int(rows.size)
        if not rows.size and not (unchanged_folder and not fs.partial):
            self._ready.append(fs)
        self._report_progress()

    def _listing(self, key: bytes) -> bytes | None:
        """A stored folder listing, read in one long read transaction per walk
        (LMDB: a snapshot costs nothing; memory store: short reads, so that
        other threads are not locked out during the walk)."""
        if isinstance(self.store, MemoryStore):
            with self.store.read() as t:
                return t.get("dirs", key)
        if self._rt is None:
            self._rt_cm = self.store.read()
            self._rt = self._rt_cm.__enter__()
        return self._rt.get("dirs", key)

    def _end_read(self) -> None:
        if self._rt is not None:
            self._rt = None
            self._rt_cm.__exit__(None, None, None)

    def _report_known(self, folder: str, name: str, code_i: int) -> None:
        """Report a file that failed (or conflicted) before and has not changed."""
        rep = self._rep
        code = R.CODES[code_i]
        path = os.path.join(folder, name)
        if code == "conflict":
            rep.conflicts.append(Failure(path, "conflict", f"{path}: same SOP Instance UID as an "
                                         "archived instance but different content (known)"))
        else:
            rep.failures.append(Failure(path, _REASON_PUBLIC.get(code, code),
                                        f"{path}: {code.replace('_', ' ')} (unchanged since the last import)"))

    # ---- chunks -------------------------------------------------------------------------
    def _take(self, n: int) -> tuple[list[tuple[Any, np.ndarray]], list[str], list[_FolderState]]:
        """Pop whole runs of folder rows (splitting the last one) up to n files.

        Returns the runs, their paths, and the folders whose last rows these are
        (finished by the commit of this chunk).
        """
        take: list[tuple[Any, np.ndarray]] = []
        cnt = 0
        while self._pending and cnt < n:
            fs, rows = self._pending[0]
            k = min(int(rows.size), n - cnt)
            if k == rows.size:
                self._pending.popleft()
            else:
                self._pending[0] = (fs, rows[k:])
                rows = rows[:k]
            take.append((fs, rows))
            cnt += k
        self._npending -= cnt
        paths: list[str] = []
        done_folders = []
        for fs, rows in take:
            base = fs.path + os.sep
            names = fs.names
            paths.extend([base + names[i] for i in rows.tolist()])
            fs.pending -= int(rows.size)
            if fs.pending == 0:
                done_folders.append(fs)
        return take, paths, done_folders

    def _read_ahead(self) -> None:
        """Hand the next chunk to the read-ahead helper (it reads while this
        process parses and commits); only for imports of at least a chunk."""
        ra = self._ra
        if ra is None or ra.broken or self._ahead is not None or not self._pending:
            return
        if self._npending < CHUNK and not ra.started:
            return  # a small import: not worth starting a process
        from ..dicom.headers import _HEAD

        chunk = self._take(CHUNK)
        self._ahead = (chunk, ra.submit(chunk[1], _HEAD.size))

    def _flush(self, n: int) -> None:
        from ..dicom.headers import parse_files

        heads = None
        if self._ahead is not None:
            (take, paths, done_folders), submitted = self._ahead
            self._ahead = None
            heads = self._ra.collect() if submitted else None
        else:
            take, paths, done_folders = self._take(n)
        self._read_ahead()   # the next chunk is read while this one is parsed and committed
        batch = None
        if take:
            sizes = np.concatenate([fs.size[rows] for fs, rows in take])
            mt = np.concatenate([fs.mtime[rows] for fs, rows in take])
            batch = parse_files(paths, sizes=sizes, mtimes_ns=mt, heads=heads)
            if (sizes < 0).any():  # listed without stat: the sizes and times fstat gave
                off = 0
                for fs, rows in take:
                    k = int(rows.size)
                    fs.size[rows] = batch.size[off:off + k]
                    fs.mtime[rows] = batch.mtime_ns[off:off + k]
                    off += k
        done_folders.extend(self._ready)
        self._ready = []
        self._end_read()
        if not PIPELINE:
            res = self.store.write(lambda t: self._commit(t, paths, take, batch, done_folders))
            self._apply(res, batch)
            return
        if self._writer is None:
            self._start_writer()
        self._jobs.put((paths, take, batch, done_folders))  # blocks while two chunks wait
        self._drain()

    # ---- the writer thread -------------------------------------------------------------
    # Chunks are committed by one writer thread while the calling thread walks,
    # reads and parses the next chunk (file reads and the parse kernels release
    # the GIL).  Results come back through a queue and are applied (counts,
    # progress callbacks) in the calling thread.

    def _start_writer(self) -> None:
        self._jobs: queue.Queue = queue.Queue(maxsize=2)
        self._done: queue.Queue = queue.Queue()
        self._werr: BaseException | None = None
        self._writer = threading.Thread(target=self._writer_loop, name="pocketpacs-import-writer", daemon=True)
        self._writer.start()

    def _writer_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._werr is not None:
                continue  # an earlier chunk failed: drop the rest
            paths, take, batch, done_folders = job
            try:
                res = self.store.write(lambda t: self._commit(t, paths, take, batch, done_folders))
                self._done.put((res, batch))
            except BaseException as e:  # re-raised in the calling thread
                self._werr = e

    def _drain(self) -> None:
        while True:
            try:
                res, batch = self._done.get_nowait()
            except queue.Empty:
                break
            self._apply(res, batch)
        if self._werr is not None:
            err, self._werr = self._werr, None
            raise err

    def _stop_writer(self) -> None:
        """Wait for the queued chunks to be committed, then apply their results."""
        if self._writer is None:
            return
        self._jobs.put(None)
        self._writer.join()
        self._writer = None
        self._drain()

    def _apply(self, res: dict, batch: Any) -> None:
        rep, prog = self._rep, self._prog
        for k in ("indexed", "unchanged", "relinked", "duplicate", "missing", "online_again"):
            setattr(rep, k, getattr(rep, k) + res[k])
        rep.failures.extend(res["failures"])
        rep.conflicts.extend(res["conflicts"])
        if batch is not None:
            rep.parsed += batch.n
            rep.fallback += batch.n_fallback
            prog.parsed += batch.n
        prog.failed += len(res["failures"])
        prog.indexed = rep.indexed + rep.relinked + rep.duplicate
        self._report_progress()

    def _report_progress(self, force: bool = False) -> None:
        cb = self._progress_cb
        if cb is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_cb < PROGRESS_EVERY:
            return
        self._last_cb = now
        prog = self._prog
        prog.elapsed_s = now - self._t0
        prog.files_per_s = prog.done / prog.elapsed_s if prog.elapsed_s > 0 else 0.0
        total = prog.total if prog.total is not None else prog.seen
        left = max(0, total - prog.done)
        prog.eta_s = left / prog.files_per_s if prog.files_per_s > 0 and prog.total is not None else None
        cb(prog)

    # ---- the write transaction of one chunk ---------------------------------------------
    def _commit(self, txn: Any, paths: list[str], take: list[tuple[Any, np.ndarray]], batch: Any,
                done_folders: list[_FolderState]) -> dict:
        ctx = Ctx(txn, self.secret)
        res: dict[str, Any] = {"indexed": 0, "unchanged": 0, "relinked": 0, "duplicate": 0, "missing": 0,
                               "online_again": 0, "failures": [], "conflicts": []}
        relinked_from: dict[str, set[str]] = {}
        if batch is not None and batch.n:
            self._index_batch(ctx, batch, paths, take, res, relinked_from)
        for fs in done_folders:
            self._finish_folder(ctx, fs, res)
        for d, names in relinked_from.items():
            dk = d.encode("utf-8", "surrogateescape")
            raw = txn.get("dirs", dk)
            if raw is None:
                continue
            lst = R.DirListing.decode(raw)
            keep = np.array([nm not in names for nm in lst.names], dtype=bool)
            lst = lst.select(keep)
            if len(lst):
                txn.put("dirs", dk, lst.encode())
            else:
                txn.delete("dirs", dk)
        ctx.flush()
        return res

    def _index_batch(self, ctx: Ctx, b: Any, paths: list[str], take: list[tuple[Any, np.ndarray]],
                     res: dict, relinked_from: dict[str, set[str]]) -> None:
        txn = ctx.txn
        n = b.n
        ok = b.status >= 0
        sop_h = b.uid_hash("SOPInstanceUID")
        ser_h = b.uid_hash("SeriesInstanceUID")
        st_h = b.uid_hash("StudyInstanceUID")
        noid = ok & ((sop_h == 0) | (ser_h == 0) | (st_h == 0))
        ok &= ~noid
        codes = np.zeros(n, dtype=np.int8)
        # failures
        for i in np.nonzero(~ok)[0].tolist():
            if noid[i]:
                reason, msg = "no_identifiers", f"{paths[i]}: no SOP/series/study instance UID (not an archivable instance)"
            else:
                reason, msg = b.reason[i] or "malformed", b.message[i] or f"{paths[i]}: {b.reason[i]}"
            codes[i] = R.CODE.get(reason, R.CODE["malformed"])
            res["failures"].append(Failure(paths[i], _REASON_PUBLIC.get(reason, reason), msg))
        ikeys = K.instance_keys(ser_h, sop_h)
        sopk = K.hashes_to_keys(sop_h)
        # old locations of changed files that pointed at another instance
        j0 = 0
        for fs, rows in take:
            st = fs.stored
            if st is not None:
                for j, i in enumerate(rows.tolist(), j0):
                    r = st.index.get(fs.names[i], -1)
                    if r >= 0 and st.code[r] == 0:
                        old = st.keys[r].tobytes()
                        if old != ikeys[j] or not ok[j]:
                            self._drop_location(ctx, old, paths[j])
            j0 += rows.size
        # classify: fresh (SOP unknown, first of its UID in the chunk) or known
        okr = np.nonzero(ok)[0]
        fresh = np.zeros(n, dtype=bool)
        if okr.size:
            _u, first = np.unique(sop_h[okr], return_index=True)
            fresh[okr[first]] = True  # first file of each SOP UID in the chunk
            known = txn.found("sop", [sopk[i] for i in okr[first].tolist()])
            if known:
                for i in okr[first].tolist():
                    if sopk[i] in known:
                        fresh[i] = False
        special = np.nonzero(ok & ~fresh)[0].tolist()
        texts = [b.text(kw) for kw in R.INSTANCE_TEXT]
        rows = np.nonzero(fresh)[0]
        if rows.size:
            self._index_fresh(ctx, b, rows, paths, ikeys, sopk, ser_h, st_h, texts, res)
        for i in special:
            codes[i] = self._index_known(ctx, b, i, paths, ikeys, sopk, ser_h, st_h, texts, res,
                                         relinked_from)
        keys_arr = np.frombuffer(b"".join(ikeys), dtype=np.uint8).reshape(n, 16).copy()
        keys_arr[codes != 0] = 0
        j0 = 0
        for fs, rows in take:
            j1 = j0 + rows.size
            fs.code[rows] = codes[j0:j1]
            fs.keys[rows] = keys_arr[j0:j1]
            j0 = j1

    def _head_rows(self, b: Any, rows: np.ndarray) -> np.ndarray:
        head = np.zeros(rows.size, dtype=R.INST_DTYPE)
        head["size"] = b.size[rows]
        head["mtime_ns"] = b.mtime_ns[rows]
        head["fingerprint"] = b.fingerprint[rows]
        head["pixel_offset"] = b.pixel_offset[rows]
        head["pixel_length"] = b.pixel_length[rows]
        head["flags"] = (np.where(b.status[rows] == 1, R.FALLBACK, 0)
                         | np.where(b.encapsulated[rows], R.ENCAPSULATED, 0)).astype(np.uint8)
        nums = head["nums"]
        for kw, c, cnt in _NUM_KWS:
            nums[:, c:c + cnt] = b.values(kw)[rows]
        head["nums"] = nums
        return head

    def _index_fresh(self, ctx: Ctx, b: Any, rows: np.ndarray, paths: list[str], ikeys: list[bytes],
                     sopk: list[bytes], ser_h: np.ndarray, st_h: np.ndarray, texts: list, res: dict) -> None:
        txn = ctx.txn
        # key order (series, SOP): sorted inserts are the cheapest for LMDB
        sop_h = b.uid_hash("SOPInstanceUID")
        rows = rows[np.lexsort((sop_h[rows], ser_h[rows]))]
        head = self._head_rows(b, rows)
        rl = rows.tolist()
        vals = R.encode_instances(head, [[col[i] for i in rl] for col in texts], [[paths[i]] for i in rl])
        txn.putmulti("instances", list(zip([ikeys[i] for i in rl], vals)))
        by_sop = np.argsort(sop_h[rows], kind="stable")
        sk8 = K.hashes_to_keys(ser_h[rows][by_sop])
        txn.putmulti("sop", list(zip([sopk[i] for i in rows[by_sop].tolist()], sk8)))
        # group by series
        uniq, first, inv = np.unique(ser_h[rows], return_index=True, return_inverse=True)
        counts = np.bincount(inv, minlength=uniq.size)
        sizes = np.bincount(inv, weights=b.size[rows].astype(np.float64), minlength=uniq.size)
        for g in range(uniq.size):
            j = int(first[g])
            i = int(rows[j])
            self._add_to_series(ctx, b, i, ikeys[i][:8], st_h[i], int(counts[g]), int(sizes[g]),
                                head["nums"][j])
        res["indexed"] += rows.size

    def _add_to_series(self, ctx: Ctx, b: Any, i: int, sek: bytes, st_hash: np.uint64, count: int,
                       size: int, nums: np.ndarray | None = None) -> None:
        """Create or update the series/study/patient records of a group of new instances."""
        se = ctx.get("series", sek)
        if se is None:
            rec = _RowValues(b, i, nums)
            sk = K.uid_key(int(st_hash))
            st = ctx.get("studies", sk)
            if st is None:
                pk = K.patient_key(self.secret, _s(rec.get("PatientID")), _s(rec.get("PatientName")),
                                   _s(rec.get("PatientBirthDate")), _s(rec.get("StudyInstanceUID")))
                pa = ctx.get("patients", pk)
                if pa is None:
                    pa = ctx.new("patients", pk, {
                        "name": _s(rec.get("PatientName")), "patient_id": _s(rec.get("PatientID")),
                        "birth_date": _s(rec.get("PatientBirthDate")), "sex": _s(rec.get("PatientSex")),
                        "anonymous": K.is_anonymous(_s(rec.get("PatientID")), _s(rec.get("PatientName"))),
                        "n_studies": 0, "n_series": 0, "n_instances": 0, "size": 0})
                st = ctx.new("studies", sk, {
                    "uid": _s(rec.get("StudyInstanceUID")), "patient_key": pk.hex(),
                    "date": _s(rec.get("StudyDate")), "time": _s(rec.get("StudyTime")),
                    "description": _s(rec.get("StudyDescription")), "accession": _s(rec.get("AccessionNumber")),
                    "study_id": _s(rec.get("StudyID")), "institution": _s(rec.get("InstitutionName")),
                    "referring_physician": _s(rec.get("ReferringPhysicianName")), "physicians": [],
                    "modalities": [], "series_words": [], "manufacturers": [], "models": [], "stations": [],
                    "n_series": 0, "n_instances": 0, "size": 0, "n_offline": 0})
                _add_sorted(st["physicians"], st["referring_physician"])
                pa["n_studies"] += 1
                ctx.touch("patients", pk)
                ctx.txn.put("pat_studies", pk + sk, b"")
            pk = bytes.fromhex(st["patient_key"])
            se = ctx.new("series", sek, {
                "uid": _s(rec.get("SeriesInstanceUID")), "study_key": sk.hex(), "patient_key": pk.hex(),
                "number": _int_or_none(rec.get("SeriesNumber")), "modality": _s(rec.get("Modality")),
                "description": _s(rec.get("SeriesDescription")), "date": _s(rec.get("SeriesDate")),
                "time": _s(rec.get("SeriesTime")), "body_part": _s(rec.get("BodyPartExamined")),
                "protocol": _s(rec.get("ProtocolName")), "manufacturer": _s(rec.get("Manufacturer")),
                "model": _s(rec.get("ManufacturerModelName")), "station": _s(rec.get("StationName")),
                "performing_physician": _s(rec.get("PerformingPhysicianName")),
                "frame_of_reference": _s(rec.get("FrameOfReferenceUID")),
                "n_instances": 0, "size": 0, "n_offline": 0})
            ctx.txn.put("study_series", sk + sek, b"")
            st["n_series"] += 1
            _add_sorted(st["modalities"], se["modality"].strip().upper())
            for w in Q.words(se["description"]):
                _add_sorted(st["series_words"], w)
            _add_sorted(st["manufacturers"], se["manufacturer"])
            _add_sorted(st["models"], se["model"])
            _add_sorted(st["stations"], se["station"])
            _add_sorted(st["physicians"], se["performing_physician"])
            pa = ctx.get("patients", pk)
            if pa is not None:
                pa["n_series"] += 1
        sk = bytes.fromhex(se["study_key"])
        st = ctx.get("studies", sk)
        pk = bytes.fromhex(se["patient_key"])
        pa = ctx.get("patients", pk)
        se["n_instances"] += count
        se["size"] += size
        ctx.touch("series", sek)
        for db, key, rec in (("studies", sk, st), ("patients", pk, pa)):
            if rec is not None:
                rec["n_instances"] += count
                rec["size"] += size
                ctx.touch(db, key)

    def _index_known(self, ctx: Ctx, b: Any, i: int, paths: list[str], ikeys: list[bytes],
                     sopks: list[bytes], ser_h: np.ndarray, st_h: np.ndarray, texts: list, res: dict,
                     relinked_from: dict[str, set[str]]) -> int:
        """A file whose SOP Instance UID is already archived: returns its listing code."""
        txn = ctx.txn
        path, ikey, sopk = paths[i], ikeys[i], sopks[i]
        sek = txn.get("sop", sopk)
        kex = (sek or ikey[:8]) + sopk
        raw = txn.get("instances", kex)
        if raw is None:  # dangling SOP entry: index as new
            txn.delete("sop", sopk)
            self._index_fresh(ctx, b, np.array([i]), paths, ikeys, sopks, ser_h, st_h, texts, res)
            return 0
        head, tx, locs = R.split_instance(raw)
        same = kex == ikey and int(head["size"]) == int(b.size[i]) and int(head["fingerprint"]) == int(b.fingerprint[i])
        if path in locs:
            if same:
                res["unchanged"] += 1
                return 0
            if kex == ikey:  # the file changed in place: take the new values
                new_head = self._head_rows(b, np.array([i]))[0]
                new_head["flags"] |= head["flags"] & (R.CONFLICT | R.OFFLINE)
                ntext = {kw: texts[j][i] for j, kw in enumerate(R.INSTANCE_TEXT)}
                txn.put("instances", kex, R.join_instance(new_head, ntext, locs))
                delta = int(b.size[i]) - int(head["size"])
                self._adjust_size(ctx, kex, delta)
                res["indexed"] += 1
                return 0
        if same:
            alive = [p for p in locs if p != path and os.path.lexists(p)]
            if not alive:
                for p in locs:
                    relinked_from.setdefault(os.path.dirname(p), set()).add(os.path.basename(p))
                locs = [path]
                res["relinked"] += 1
            else:
                locs = locs + [path]
                res["duplicate"] += 1
            txn.put("instances", kex, R.join_instance(head, tx, locs))
            ctx.set_offline(kex, False)
            return 0
        # same UID, different content: a conflict; the archived instance stays
        flags = int(head["flags"]) | R.CONFLICT
        if flags != int(head["flags"]):
            txn.put("instances", kex, raw[:1] + bytes([flags]) + raw[2:])
        txn.put("conflicts", kex + path.encode("utf-8", "surrogateescape"), R.dumps({
            "size": int(b.size[i]), "fingerprint": int(b.fingerprint[i]),
            "series_differs": kex != ikey}))
        res["conflicts"].append(Failure(path, "conflict", f"{path}: same SOP Instance UID as an archived "
                                        "instance but different content; kept apart, not overwritten"))
        return R.CODE["conflict"]

    def _adjust_size(self, ctx: Ctx, ikey: bytes, delta: int) -> None:
        if not delta:
            return
        se = ctx.get("series", ikey[:8])
        if se is None:
            return
        se["size"] += delta
        ctx.touch("series", ikey[:8])
        for db, k in (("studies", bytes.fromhex(se["study_key"])), ("patients", bytes.fromhex(se["patient_key"]))):
            rec = ctx.get(db, k)
            if rec is not None:
                rec["size"] += delta
                ctx.touch(db, k)

    def _drop_location(self, ctx: Ctx, ikey: bytes, path: str) -> None:
        """Remove ``path`` from an instance; an instance left without files is removed."""
        txn = ctx.txn
        raw = txn.get("instances", ikey)
        if raw is None:
            return
        head, tx, locs = R.split_instance(raw)
        if path not in locs:
            return
        locs = [p for p in locs if p != path]
        if locs:
            txn.put("instances", ikey, R.join_instance(head, tx, locs))
            return
        remove_instances(ctx, [ikey])

    def _finish_folder(self, ctx: Ctx, fs: _FolderState, res: dict) -> None:
        """Write a folder's listing; mark vanished files missing, reappeared ones online."""
        txn = ctx.txn
        cur = R.DirListing(list(fs.names), fs.size, fs.mtime, fs.keys, fs.code, fs.missing)
        st = fs.stored
        gone = None
        if st is not None and len(st) and not fs.partial:
            present = set(fs.names)
            mask = np.array([nm not in present for nm in st.names], dtype=bool)
            mask &= st.code == 0  # failed files that vanished are forgotten
            if mask.any():
                gone = st.select(mask)
        elif st is not None and fs.partial:
            present = set(fs.names)
            mask = np.array([nm not in present for nm in st.names], dtype=bool)
            if mask.any():
                gone = st.select(mask)  # not looked at: kept as they were
        for k in fs.reappeared:
            if ctx.set_offline(k, False):
                res["online_again"] += 1
        if gone is not None:
            keep = np.ones(len(gone), dtype=bool)
            if not fs.partial:
                for r in range(len(gone)):
                    if gone.missing[r]:
                        continue
                    k = gone.key(r)
                    path = os.path.join(fs.path, gone.names[r])
                    raw = txn.get("instances", k)
                    if raw is None:
                        keep[r] = False
                        continue
                    _h, _t, locs = R.split_instance(raw)
                    if path not in locs:
                        keep[r] = False
                        continue
                    gone.missing[r] = True
                    res["missing"] += 1
                    if not any(p != path and os.path.exists(p) for p in locs):
                        ctx.set_offline(k, True, raw)
            gone = gone.select(keep)
            # present files in directory order (the rescan fast path compares
            # it), then the missing ones
            cur = R.DirListing(cur.names + gone.names, np.concatenate([cur.size, gone.size]),
                               np.concatenate([cur.mtime_ns, gone.mtime_ns]),
                               np.concatenate([cur.keys, gone.keys]), np.concatenate([cur.code, gone.code]),
                               np.concatenate([cur.missing, gone.missing]))
        dk = fs.path.encode("utf-8", "surrogateescape")
        if len(cur):
            txn.put("dirs", dk, cur.encode())
        else:
            txn.delete("dirs", dk)

    def _missing_folders(self, root: str) -> None:
        """Folders under ``root`` that were imported before and are gone now."""
        self._end_read()
        prefix = root.rstrip(os.sep) + os.sep
        with self.store.read() as t:
            gone = [k.decode("utf-8", "surrogateescape") for k, _ in
                    t.range("dirs", prefix.encode("utf-8", "surrogateescape"))]
            rk = root.encode("utf-8", "surrogateescape")
            if t.get("dirs", rk) is not None:
                gone.append(root)
        gone = [d for d in gone if d not in self._walked and not os.path.isdir(d)]
        for d in gone:
            with self.store.read() as t:
                raw = t.get("dirs", d.encode("utf-8", "surrogateescape"))
            if raw is None:
                continue
            stored = R.DirListing.decode(raw)
            fs = _FolderState(Folder(d), stored)
            res = self.store.write(lambda t, fs=fs: self._finish_gone(t, fs))
            self._rep.missing += res

    def _finish_gone(self, txn: Any, fs: _FolderState) -> int:
        ctx = Ctx(txn, self.secret)
        res = {"missing": 0, "online_again": 0}
        self._finish_folder(ctx, fs, res)
        ctx.flush()
        return res["missing"]

    # ---- DICOMDIR -------------------------------------------------------------------------
    def _dicomdir_phase(self, root: str, cancel: Any) -> None:
        from ..dicom.dicomdir import read_dicomdir

        info = read_dicomdir(root)
        if info is None:
            return
        rep = self._rep
        rep.dicomdir = info.summary()
        for p in info.problems:
            rep.failures.append(Failure(p.path, p.reason, p.message))
        # parse the referenced files first, so their series appear first;
        # the walk that follows finds whatever the DICOMDIR misses
        from ..dicom.headers import parse_files

        refs = info.files
        for a in range(0, len(refs), CHUNK):
            if _is_cancelled(cancel):
                break
            part = refs[a:a + CHUNK]
            batch = parse_files(part)
            take = [(_HintRow(), _ROW0) for _j in range(len(part))]
            res = self.store.write(lambda t: self._hint_commit(t, part, take, batch))
            for j, p in enumerate(part):
                self._hint_done[p] = (int(take[j][0].code[0]), take[j][0].key)
            # counts are made when the walk reaches these files
            rep.failures.extend(res["failures"])
            rep.conflicts.extend(res["conflicts"])
            for k in ("indexed", "relinked", "duplicate"):
                setattr(rep, k, getattr(rep, k) + res[k])
            rep.parsed += batch.n

    def _hint_commit(self, txn: Any, paths: list[str], take: list, batch: Any) -> dict:
        ctx = Ctx(txn, self.secret)
        res: dict[str, Any] = {"indexed": 0, "unchanged": 0, "relinked": 0, "duplicate": 0, "missing": 0,
                               "online_again": 0, "failures": [], "conflicts": []}
        relinked_from: dict[str, set[str]] = {}
        self._index_batch(ctx, batch, paths, take, res, relinked_from)
        ctx.flush()
        return res


_ROW0 = np.zeros(1, dtype=np.int64)


class _HintRow:
    """Stand-in folder state for one file parsed from a DICOMDIR hint."""

    __slots__ = ("code", "keys", "names", "stored", "path")

    def __init__(self) -> None:
        self.code = np.zeros(1, dtype=np.int8)
        self.keys = np.zeros((1, 16), dtype=np.uint8)
        self.names = [""]
        self.stored = None
        self.path = ""

    @property
    def key(self) -> bytes:
        return self.keys[0].tobytes()


def remove_instances(ctx: Ctx, ikeys: list[bytes]) -> int:
    """Delete instances and update (or delete) their series, studies, patients.

    Never touches files.  Returns the number of instances removed.
    """
    txn = ctx.txn
    n = 0
    for ikey in ikeys:
        raw = txn.get("instances", ikey)
        if raw is None:
            continue
        head, _t, _locs = R.split_instance(raw)
        txn.delete("instances", ikey)
        if txn.get("sop", ikey[8:]) == ikey[:8]:
            txn.delete("sop", ikey[8:])
        for k, _ in list(txn.range("conflicts", ikey)):
            txn.delete("conflicts", k)
        n += 1
        size = int(head["size"])
        off = 1 if int(head["flags"]) & R.OFFLINE else 0
        sek = ikey[:8]
        se = ctx.get("series", sek)
        if se is None:
            continue
        sk = bytes.fromhex(se["study_key"])
        pk = bytes.fromhex(se["patient_key"])
        se["n_instances"] -= 1
        se["size"] -= size
        se["n_offline"] = max(0, se.get("n_offline", 0) - off)
        st = ctx.get("studies", sk)
        pa = ctx.get("patients", pk)
        for rec in (st, pa):
            if rec is not None:
                rec["n_instances"] -= 1
                rec["size"] -= size
        if st is not None:
            st["n_offline"] = max(0, st.get("n_offline", 0) - off)
        if se["n_instances"] <= 0:
            ctx.delete("series", sek)
            txn.delete("study_series", sk + sek)
            if st is not None:
                st["n_series"] -= 1
                _recompute_study_lists(ctx, sk, st)
            if pa is not None:
                pa["n_series"] -= 1
            if st is not None and st["n_series"] <= 0:
                ctx.delete("studies", sk)
                txn.delete("pat_studies", pk + sk)
                if pa is not None:
                    pa["n_studies"] -= 1
                st = None
            if pa is not None and pa["n_studies"] <= 0:
                ctx.delete("patients", pk)
                pa = None
        else:
            ctx.touch("series", sek)
        if st is not None:
            ctx.touch("studies", sk)
        if pa is not None:
            ctx.touch("patients", pk)
    return n


def _recompute_study_lists(ctx: Ctx, sk: bytes, st: dict) -> None:
    """Rebuild a study's modality/word/equipment lists from its series."""
    lists: dict[str, list] = {k: [] for k in ("modalities", "series_words", "manufacturers", "models",
                                               "stations", "physicians")}
    _add_sorted(lists["physicians"], st.get("referring_physician", ""))
    for k, _ in ctx.txn.range("study_series", sk):
        se = ctx.get("series", k[8:])
        if se is None:
            continue
        _add_sorted(lists["modalities"], se["modality"].strip().upper())
        for w in Q.words(se["description"]):
            _add_sorted(lists["series_words"], w)
        _add_sorted(lists["manufacturers"], se["manufacturer"])
        _add_sorted(lists["models"], se["model"])
        _add_sorted(lists["stations"], se["station"])
        _add_sorted(lists["physicians"], se["performing_physician"])
    st.update(lists)
