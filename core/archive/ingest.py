"""Import orchestration: walk -> skip unchanged -> parse -> batched commits.

The walk (:mod:`pocketpacs.archive.scan`) lists each folder once and compares it
with the folder's stored listing (one read per folder): files whose path,
size and mtime are unchanged are skipped without being opened.  New and
changed files are parsed in chunks of :data:`CHUNK` files by the native
header parser (:func:`pocketpacs.dicom.headers.parse_files`, kernels in parallel,
no per-file ``stat``: the sizes and mtimes of the walk are passed in), and
committed by this, the only, writer: the first chunk in a write transaction
of its own, then up to :data:`COMMIT_CHUNKS` chunks per transaction
(more in an archive of hundreds of thousands of instances:
:func:`chunks_per_commit`; :func:`pocketpacs.archive.commit.commit_chunks`).  Readers see the first
series as soon as the first chunk commits.  A commit runs in a writer thread
while this one parses the next chunks (:data:`PIPELINE`): one commit at a time,
in order, each waited for before the next; LMDB writes its pages and syncs
them with the GIL released, so a large import's disk writes no longer stop
the parsing.  Files
named by a DICOMDIR are parsed and committed first; progress callbacks and
the :class:`~pocketpacs.archive.report.ImportReport` are made here.

Per chunk the Python work is per *group*: instances are grouped by series
hash with NumPy, patient/study/series records are built once per group from
one representative file, and instance values are built column-wise
(:func:`pocketpacs.archive.records.encode_instances`) and written with ``putmulti``.

Files whose SOP Instance UID is already known take the slow path
(:mod:`pocketpacs.archive.commit`):

- same path: unchanged (re-import after an interruption) or updated;
- same size and header fingerprint, old files gone: *relinked*;
- same size and fingerprint, old file still there: *duplicate* (one
  instance, several locations);
- different content: *conflict*, recorded and flagged, never overwritten.

On a cold disk (the first file's head is not in the page cache, as the
kernel says: :func:`pocketpacs.archive.deepread.cached`) the rest of the walk
is :mod:`pocketpacs.archive.coldimport`'s: a helper process lists the
folders ahead of the walk and reads each folder's new files as the walk
hands them over; each chunk is parsed and committed once its heads are in, while
the walk and later reads go on.  With the files cached, walk and reads stay in one thread.  A
rescan compares the folders with their stored listings in bulk
(:mod:`pocketpacs.archive.rescan`, whose :class:`~pocketpacs.archive.rescan.RescanWalk`
holds the walk and the sorting of each folder's files) and, when nothing
changed, commits no transaction and loads neither numba nor the parser.

Files that vanish are marked missing and their instances offline (never
deleted); they come back online when the files reappear.  A folder's
listing is written in the same transaction as the last of its files, so an
interrupted import (cancel, crash, kill -9) leaves a consistent archive and
the next import resumes: committed files are recognised by path.
"""
from __future__ import annotations

import collections
import contextvars
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import commit
from . import deepread
from . import pathkeys
from . import readahead
from .coldimport import ColdImport, _ColdChunk, _open_flags
from .coldreads import ColdReads
from .commit import PendingFolder
from .record_changes import SeriesOwners
from .report import Failure, ImportProgress, ImportReport
from .rescan import RescanWalk
from .scan import list_folder

#: Files parsed at a time.
CHUNK = 2000
#: Most chunks committed in one write transaction: an import commits its first
#: chunk alone, then twice as many chunks per commit as the commit before, up
#: to this (fewer, larger commits: a chunk of files scattered over many series
#: rewrites most series, study and patient records of a large archive, once per
#: commit rather than once per chunk).
COMMIT_CHUNKS = 4
#: ``(instances archived, most chunks per commit)``: larger archives take
#: larger commits.  Files scattered over the series of a large archive make
#: each commit change pages all over its B-trees (a chunk of a
#: million-instance archive touches about 2,000 series records and 4,000
#: B-tree pages of them and of the SOP index, where 100,000 instances keep
#: those in a few hundred); a page written carries more files when more
#: chunks share the commit.  The cost is memory: a commit holds its changed
#: pages until it is written (about 100 MB more at a million instances).  The
#: archive's size is a stand-in for how scattered its series are: a commit of
#: 8,000 files of a 20,000-series import meets about 6,600 series already past
#: 100,000 instances, so the larger commits start there (an A/B of five pairs
#: at a million files, against 250,000 and 500,000: 1-3 s of 31-37 s faster,
#: peak RSS 920-929 -> 944-950 MB).  An import of 100,000 files into an empty
#: archive keeps commits of :data:`COMMIT_CHUNKS` (its memory target is 400 MB);
#: one into an archive of 100,000 takes the larger commits and more memory
#: (110,000 files: peak RSS 470 -> 535-623 MB).
LARGE_ARCHIVE_COMMITS = ((100_000, 8), (200_000, 16))
#: Read the next chunk's file heads in a helper process (``readahead``) while
#: this one is parsed and committed (Linux; off elsewhere or on any failure).
READ_AHEAD = True
#: New files listed before the helper is started (a rescan or a small import starts none).
READ_AHEAD_START = 500
#: Files the walk may list ahead of the parser.
WALK_AHEAD = 100_000
#: Seconds between progress callbacks.
PROGRESS_EVERY = 0.2
#: Commit the chunks in a writer thread while the next ones are parsed (one
#: commit in flight; measured at a million files: the commits' page writes and
#: syncs took 13-20 s of 58 s in this thread).
PIPELINE = True
#: The importer parses the next chunks once the commit in flight has built its
#: records (see :meth:`Importer._gate`).
GATE = True
#: ... and lists the next folder of its walk only then too (:meth:`Importer._gated`).
GATE_WALK = True
#: With commits in the writer thread, the importer encodes each chunk's instance
#: records itself, while the commit before is written (:func:`commit.encode_chunk`).
ENCODE_AHEAD = True


def _compile_seconds() -> float:
    """Seconds this process has compiled the parser (an import reports its share apart)."""
    from ..dicom.headers import compile_seconds

    return compile_seconds()


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def chunks_per_commit(archived: int) -> int:
    """Most chunks per commit in an archive of *archived* instances
    (:data:`COMMIT_CHUNKS`, more in a large archive: :data:`LARGE_ARCHIVE_COMMITS`)."""
    most = COMMIT_CHUNKS
    for n, chunks in LARGE_ARCHIVE_COMMITS:
        if archived >= n:
            most = max(most, chunks)
    return most


class Importer(ColdImport, RescanWalk):
    """Imports folders into a store (on disk or in memory).

    Parameters
    ----------
    store : LmdbStore or MemoryStore
    secret : bytes
        The archive's HMAC secret (patient keys).
    exclude : frozenset of str
        Real paths of folders never walked (the archive folder).
    """

    _root_todo: tuple[bytes, bytes] | None = None   # a new root's record, until the first commit

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
        from ..dicom.kernels import first_run_interpreted

        try:
            with first_run_interpreted():  # the first run after installing: see dicom.kernels
                return self._run(root_s, t0, progress, cancel, use_dicomdir)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _run(self, root_s: str, t0: float, progress: Callable[[ImportProgress], Any] | None, cancel: Any,
             use_dicomdir: bool) -> ImportReport:
        rep = ImportReport(root=root_s)
        prog = ImportProgress()
        self._rep, self._prog, self._t0 = rep, prog, t0
        self._c0 = _compile_seconds()
        self._progress_cb, self._last_cb = progress, 0.0
        self._cancel = cancel
        self._cap, self._helpers, self._walk_ahead = CHUNK, READ_AHEAD, WALK_AHEAD   # (read at each import)
        self._group = 1   # chunks in the next commit (see COMMIT_CHUNKS)
        self._writer: Any = None   # the writer thread's executor (PIPELINE), made at the first commit
        # (future, batches, early, built) of that commit; built: set once its records are built
        self._inflight: tuple[Any, list[Any], int, threading.Event] | None = None
        self._archived = 0   # instances in the archive after the last commit
        self._owners = SeriesOwners()   # study and patient keys of the series written to
        self._pending: collections.deque[tuple[PendingFolder, np.ndarray]] = collections.deque()
        self._npending = 0
        self._ready: list[PendingFolder] = []
        self._hint_done: dict[str, tuple[int, bytes]] = {}
        self._walked: set[str] = set()
        self._walked_keys: set[bytes] = set()   # (their keys: not decoded again at the end)
        self._rt = None
        self._ra = (readahead.ReadAhead(_open_flags()) if READ_AHEAD and readahead.available()
                    else None)
        self._ahead: tuple | None = None
        self._reader: deepread.DeepReader | None = None   # reads in this process (no helper)
        self._cold: ColdReads | None = None   # a cold disk: heads read as the walk lists files
        self._cold_todo: collections.deque[tuple[PendingFolder, np.ndarray]] = collections.deque()
        self._cold_chunks: collections.deque[_ColdChunk] = collections.deque()
        # new folders are listed without a stat per file: the reader takes
        # sizes and times from the open file (fstat), which costs less than a
        # stat by path (measured); on Windows the listing has them for free
        self._stat_free = os.name != "nt"
        single = os.path.isfile(root_s)

        rk, rv = pathkeys.root_record(root_s, {"added": time.time()})
        with self.store.read() as t:
            known_root = t.get("roots", rk) is not None
        # a new root is recorded in the import's first commit (a commit of its
        # own would cost a sync before the first folder is listed)
        self._root_todo = None if known_root else (rk, rv)
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
                for folder, stored_listing in self._gated(self._walk(root_s)):
                    if cancel is not None and _is_cancelled(cancel):
                        rep.cancelled = True
                        break
                    if folder is None:   # unchanged, counted by the walk
                        continue
                    queued = len(self._pending)
                    self._add_folder(folder, stored_listing=stored_listing)
                    if self._cold is not None:   # a cold disk: read its files now, parse as they arrive
                        self._cold_feed(len(self._pending) - queued)
                        # a chunk whose heads are in is parsed and committed
                        # while the walk and the reads go on
                        while not rep.cancelled and self._cold_ready():
                            self._flush(CHUNK)
                            if _is_cancelled(cancel):
                                rep.cancelled = True
                        continue
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
            self._drain()
            if self._root_todo is not None:   # (nothing committed)
                self._write(lambda t: None, [root_s])
            if not rep.cancelled and not single:
                self._missing_folders(root_s)
        finally:
            # (the normal end counted the last commit; here an error is on its way:
            # the commit in flight is waited for, its own outcome left to the next import)
            self._inflight = None
            self._end_read()   # (first: a store whose reads lock out writes waits for none)
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            self._cold_end()
            if self._ra is not None:
                self._ra.close()
                self._ahead = None
            rep.elapsed_s = time.perf_counter() - t0
            rep.compile_s = min(rep.elapsed_s, _compile_seconds() - self._c0)
            prog.phase = "done"
            self._report_progress(force=True)
        return rep

    # ---- chunks -------------------------------------------------------------------------
    def _take(self, n: int) -> tuple[list[tuple[Any, np.ndarray]], list[str], list[PendingFolder]]:
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
        """Parse the next chunks of ``n`` files and commit them in one write
        transaction: one chunk at first (the first series show at once), then
        twice as many per commit up to :func:`chunks_per_commit` (the records
        and pages a commit touches are written once for all its chunks)."""
        self._gate()
        parts = [self._parse_next(n)]
        # the records of each chunk are encoded here, while the commit before is
        # written (ENCODE_AHEAD; the commit in this thread makes its own)
        encoded = [commit.encode_chunk(parts[0][2], parts[0][0])] if PIPELINE and ENCODE_AHEAD else None
        early = 0   # files of this commit already counted as parsed in the progress
        while (len(parts) < self._group and (self._pending or self._ahead is not None)
               and not _is_cancelled(self._cancel) and self._more_in_commit()):
            if parts[-1][2] is not None:
                parts[-1][2].compact()   # held while the next parses: its values, not its heads
            parts.append(self._parse_next(n))
            if encoded is not None:
                encoded.append(commit.encode_chunk(parts[-1][2], parts[-1][0]))
            if parts[-1][2] is not None:
                early += parts[-1][2].n
                self._prog.parsed += parts[-1][2].n
                self._report_progress()
        in_flight = 0 if self._inflight is None else sum(b.n for b in self._inflight[1] if b is not None)
        self._group = min(chunks_per_commit(self._archived + in_flight), 2 * self._group)
        parts[-1][3].extend(self._ready)
        self._ready = []
        self._end_read()
        paths = [p for part in parts for p in part[0]] + [fs.path for part in parts for fs in part[3]]
        owners = self._owners

        built = threading.Event()

        def fn(t: Any) -> tuple[dict, int]:
            out = commit.commit_chunks(t, self.secret, parts, owners, encoded), t.count("instances")
            # (LMDB writes and syncs the pages now, the interpreter's lock released; a
            # failed build sets it when the commit ends: one that grows the map runs
            # again, and the map grows only once no other thread reads it)
            built.set()
            return out

        batches = [part[2] for part in parts]
        if not PIPELINE:
            res, self._archived = self._write(fn, paths)
            self._apply(res, batches, early)
            return
        self._drain()   # (the last commit: one in flight at a time, in order)
        fn = self._commit_fn(fn)
        if self._writer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._writer = ThreadPoolExecutor(1, thread_name_prefix="pocketpacs-commit")
        # (in this thread's context: the kernel choices of :func:`first_run_interpreted` hold there too)
        run = contextvars.copy_context().run
        fut = self._writer.submit(run, self._store_write, fn, paths)
        fut.add_done_callback(lambda _f: built.set())
        self._inflight = (fut, batches, early, built)

    def _gate(self) -> None:
        """With a commit in flight (:data:`PIPELINE`), wait until its records are
        built (:data:`GATE`): the next chunks' Python work then runs while LMDB
        writes and syncs the commit's pages with the interpreter's lock
        released, not in turns with the commit's own (two threads wanting the
        lock run one after the other)."""
        job = self._inflight
        if GATE and job is not None and not job[3].is_set():
            # (the walk's read ends first: the in-memory store of a CD/USB session
            # locks writes out while a read is open)
            self._end_read()
            job[3].wait()

    def _gated(self, walk: Iterator[Any]) -> Iterator[Any]:
        """The walk's folders, each listed once the commit in flight has built its
        records (:data:`GATE_WALK`): a walk that runs ahead of a large import lists
        tens of folders while each commit builds, and the listing's Python work
        would take turns with the commit's, as the parse did (:meth:`_gate`)."""
        try:
            while True:
                if GATE_WALK:
                    self._gate()
                try:
                    item = next(walk)
                except StopIteration:
                    return
                yield item
        finally:
            walk.close()   # (as a for loop over the walk would, when the import stops early)

    def _drain(self) -> None:
        """Wait for the commit in flight (:data:`PIPELINE`), count it; its error is raised here."""
        job = self._inflight
        if job is None:
            return
        self._inflight = None
        # the walk's read transaction ends first: the commit may change what it read, and
        # the in-memory store of a CD/USB session locks writes out while a read is open
        self._end_read()
        fut, batches, early, _built = job
        res, self._archived = fut.result()
        self._apply(res, batches, early)

    def _parse_next(self, n: int) -> tuple[list[str], list[tuple[Any, np.ndarray]], Any, list[PendingFolder]]:
        """The next chunk of up to ``n`` files, parsed: ``(paths, take, batch, done_folders)``."""
        from ..dicom.headers import parse_files

        heads = None
        if self._cold_chunks:   # a cold disk: the next chunk's heads, read as the walk listed them
            (take, paths, done_folders), heads = self._cold_next()
        elif self._ahead is not None:
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
            if heads is None and deepread.cached(paths[-1]) is False:
                # no helper (a small import, or it failed) and a cold disk: read
                # here with many reads in flight (cached: parse_files reads)
                heads = self._read_here(paths)
            batch = parse_files(paths, sizes=sizes, mtimes_ns=mt, heads=heads)
            if (sizes < 0).any():  # listed without stat: the sizes and times fstat gave
                off = 0
                for fs, rows in take:
                    k = int(rows.size)
                    fs.size[rows] = batch.size[off:off + k]
                    fs.mtime[rows] = batch.mtime_ns[off:off + k]
                    off += k
        return paths, take, batch, done_folders

    def _write(self, fn: Callable[[Any], Any], paths: list[str]) -> Any:
        """``store.write(fn)`` for the entries of ``paths``, in this thread, after
        the commit in flight: LMDB's refusal of a key size is our bug, reported
        as such (with the longest path's length), never as a damaged database."""
        self._drain()
        return self._store_write(self._commit_fn(fn), paths)

    def _commit_fn(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``fn`` with what goes with the next commit: the new root's record (the
        first commit) and the walk's stamps of folders of folders (once it ended);
        both are taken: a failed commit ends the import with its error."""
        root = self._root_todo
        if root is not None:   # the root record goes with the first commit
            def fn(t: Any, fn: Callable[[Any], Any] = fn) -> Any:
                t.put("roots", *root)
                return fn(t)
        fn = self._with_folder_stamps(fn)
        self._root_todo = self._folders_todo = None
        return fn

    def _store_write(self, fn: Callable[[Any], Any], paths: list[str]) -> Any:
        try:
            return self.store.write(fn)
        except Exception as e:
            if pathkeys.is_key_size_error(e):
                raise pathkeys.key_size_error(e, paths) from e
            raise

    def _apply(self, res: dict, batches: list[Any], early: int = 0) -> None:
        """Count a commit in the report and the progress (``early``: files of
        it the progress has already counted as parsed)."""
        rep, prog = self._rep, self._prog
        for k in ("indexed", "unchanged", "relinked", "duplicate", "missing", "online_again"):
            setattr(rep, k, getattr(rep, k) + res[k])
        rep.failures.extend(res["failures"])
        rep.conflicts.extend(res["conflicts"])
        for batch in batches:
            if batch is not None:
                rep.parsed += batch.n
                rep.fallback += batch.n_fallback
                prog.parsed += batch.n
        prog.parsed -= early
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
        prog.compile_s = min(prog.elapsed_s, _compile_seconds() - self._c0)
        work = prog.elapsed_s - prog.compile_s
        prog.files_per_s = prog.done / work if work > 0 else 0.0
        total = prog.total if prog.total is not None else prog.seen
        left = max(0, total - prog.done)
        prog.eta_s = left / prog.files_per_s if prog.files_per_s > 0 and prog.total is not None else None
        cb(prog)


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
            res = self._write(lambda t, part=part, take=take, batch=batch:
                              commit.commit_hint_files(t, self.secret, part, take, batch), part)
            for j, p in enumerate(part):
                self._hint_done[p] = (int(take[j][0].code[0]), take[j][0].key)
            # counts are made when the walk reaches these files
            rep.failures.extend(res["failures"])
            rep.conflicts.extend(res["conflicts"])
            for k in ("indexed", "relinked", "duplicate"):
                setattr(rep, k, getattr(rep, k) + res[k])
            rep.parsed += batch.n


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

