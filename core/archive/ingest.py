"""Import orchestration: walk -> skip unchanged -> parse -> batched commits.

The walk (:mod:`pocketpacs.archive.scan`) lists each folder once and compares it
with the folder's stored listing (one read per folder): files whose path,
size and mtime are unchanged are skipped without being opened.  New and
changed files are parsed in chunks of :data:`CHUNK` files by the native
header parser (:func:`pocketpacs.dicom.headers.parse_files`, kernels in parallel,
no per-file ``stat``: the sizes and mtimes of the walk are passed in), and
committed by this, the only, writer: the first chunk in a write transaction
of its own, then up to :data:`COMMIT_CHUNKS` chunks per transaction
(:func:`pocketpacs.archive.commit.commit_chunks`).  Readers see the first
series as soon as the first chunk commits.  Files
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
is listed by threads while a helper process
(:class:`~pocketpacs.archive.readahead.ColdReads`) lists the folders below
ahead of it and reads the heads of each folder's new files as soon as the
walk hands them over, many reads in flight; each chunk is parsed and
committed once its heads are in, while the walk and later reads go on (a
small cold import reads with :class:`~pocketpacs.archive.deepread.DeepReader`
here).  With the files cached, walk and reads stay in one thread.  A
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
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import commit
from . import deepread
from . import pathkeys
from . import readahead
from .commit import PendingFolder
from .report import Failure, ImportProgress, ImportReport
from .rescan import RescanWalk, _entries, _folders_only
from .scan import Folder, folder_of_entries, list_folder, unchanged_folder

#: Files parsed at a time.
CHUNK = 2000
#: Most chunks committed in one write transaction: an import commits its first
#: chunk alone, then twice as many chunks per commit as the commit before, up
#: to this (fewer, larger commits: a chunk of files scattered over many series
#: rewrites most series, study and patient records of a large archive, once per
#: commit rather than once per chunk).
COMMIT_CHUNKS = 4
#: Read the next chunk's file heads in a helper process (``readahead``) while
#: this one is parsed and committed (Linux; off elsewhere or on any failure).
READ_AHEAD = True
#: New files listed before the helper is started (a rescan or a small import starts none).
READ_AHEAD_START = 500
#: Files the walk may list ahead of the parser.
WALK_AHEAD = 100_000
#: Seconds between progress callbacks.
PROGRESS_EVERY = 0.2
#: On a cold disk: chunks whose file heads are being read ahead of the one
#: parsed (each holds ``CHUNK`` heads in memory, 8 MB at 4 KB a head).
COLD_AHEAD = 8
#: On a cold disk: new files listed before the helper that reads them starts
#: (a small import is read in this process, as a rescan of a few changed files).
COLD_START = 200
#: On a cold disk: files handed to the helper at a time (consecutive folders).
COLD_SEND = 64
#: On a cold disk, threads listing the folders next in the walk: few, as the
#: helper lists them ahead (32 cost more CPU, measured: 2,350 files/s against
#: 2,680 with 8, on the loaded 2-core machine).
COLD_WALKERS = 8


def _compile_seconds() -> float:
    """Seconds this process has compiled the parser (an import reports its share apart)."""
    from ..dicom.headers import compile_seconds

    return compile_seconds()


def _open_flags() -> int:
    from ..dicom.heads import OPEN_FLAGS

    return OPEN_FLAGS


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


class Importer(RescanWalk):
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
        self._group = 1   # chunks in the next commit (see COMMIT_CHUNKS)
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
        self._cold: readahead.ColdReads | None = None   # a cold disk: heads read as the walk lists files
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
        if not known_root:  # (a commit costs a sync: only when new)
            self._write(lambda t: t.put("roots", rk, rv), [root_s])
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
                for folder, stored_listing in self._walk(root_s):
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
                        while (self._cold_chunks and self._cold_chunks[0].want >= CHUNK and not rep.cancelled
                               and (len(self._cold_chunks) >= COLD_AHEAD or self._npending >= WALK_AHEAD
                                    or self._cold.ready(self._cold_chunks[0].seq, CHUNK))):
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
            if not rep.cancelled and not single:
                self._missing_folders(root_s)
        finally:
            self._end_read()
            if self._cold is not None:
                self._cold.close(cancel=True)   # (the reads of an interrupted import are dropped)
                self._cold = None
                self._cold_chunks.clear()
                self._cold_todo.clear()
            if self._ra is not None:
                self._ra.close()
                self._ahead = None
            rep.elapsed_s = time.perf_counter() - t0
            rep.compile_s = min(rep.elapsed_s, _compile_seconds() - self._c0)
            prog.phase = "done"
            self._report_progress(force=True)
        return rep

    # ---- walk (the cold-disk part; the rest in rescan.RescanWalk) ---------------------
    def _walk_deep(self, stack: list[str], exclude: frozenset[str]):
        """The rest of the walk on a cold disk: :data:`deepread.DEPTH` threads
        list the folders next on the stack ahead of time (``scandir`` and
        ``stat`` release the GIL) while this thread looks up the stored
        listings (one read transaction) and takes the folders in exactly the
        order of the one-thread walk (the archive never depends on whether
        the disk was cold)."""
        from concurrent.futures import ThreadPoolExecutor

        self._cold_begin(stack)
        ahead = 2 * deepread.DEPTH   # folders listed ahead (their listings wait in memory)
        ex = ThreadPoolExecutor(COLD_WALKERS if self._cold is not None else deepread.DEPTH,
                                thread_name_prefix="pocketpacs-walk")
        asked: dict[str, tuple] = {}   # folder -> (future, stored listing)

        def ask() -> None:
            for d in stack[-ahead:]:
                if d in asked or (exclude and os.path.realpath(d) in exclude):
                    continue
                key = pathkeys.path_key(d)
                raw = self._listing(key)
                self._walked_keys.add(key)
                asked[d] = (ex.submit(_list, d, raw, raw is not None or not self._stat_free), raw)

        try:
            ask()
            while stack:
                d = stack.pop()
                if d not in asked:   # an excluded folder
                    continue
                fut, raw = asked.pop(d)
                folder, subdirs = fut.result()
                stack.extend(subdirs)
                ask()
                if folder is None:   # only folders, none imported here
                    self._walked.add(d)
                elif isinstance(folder, int):
                    self._unchanged(d, folder)
                    yield None, None
                else:
                    yield folder, raw
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

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
        twice as many per commit up to :data:`COMMIT_CHUNKS` (the records a
        commit touches are written once for all its chunks)."""
        parts = [self._parse_next(n)]
        early = 0   # files of this commit already counted as parsed in the progress
        while (len(parts) < self._group and (self._pending or self._ahead is not None)
               and not _is_cancelled(self._cancel)):
            if parts[-1][2] is not None:
                parts[-1][2].compact()   # held while the next parses: its values, not its heads
            parts.append(self._parse_next(n))
            if parts[-1][2] is not None:
                early += parts[-1][2].n
                self._prog.parsed += parts[-1][2].n
                self._report_progress()
        self._group = min(COMMIT_CHUNKS, 2 * self._group)
        parts[-1][3].extend(self._ready)
        self._ready = []
        self._end_read()
        paths = [p for part in parts for p in part[0]] + [fs.path for part in parts for fs in part[3]]
        res = self._write(lambda t: commit.commit_chunks(t, self.secret, parts), paths)
        self._apply(res, [part[2] for part in parts], early)

    def _parse_next(self, n: int) -> tuple[list[str], list[tuple[Any, np.ndarray]], Any, list[PendingFolder]]:
        """The next chunk of up to ``n`` files, parsed: ``(paths, take, batch, done_folders)``."""
        from ..dicom.headers import parse_files

        heads = None
        if self._cold_chunks:   # a cold disk: the next chunk's heads, read as the walk listed them
            ck = self._cold_chunks.popleft()
            take, paths, done_folders = self._take(ck.want)
            self._cold_feed(0)   # keep COLD_AHEAD chunks in flight
            self._cold_send()
            heads = self._cold.wait(ck.seq, ck.want)
            if heads is None:   # the helper failed: read here
                heads = self._read_here(paths)
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

    # ---- a cold disk: heads read while the walk goes on ---------------------------------
    def _cold_begin(self, stack: list[str]) -> None:
        """The files are not in the page cache: a helper process
        (:class:`readahead.ColdReads`) lists the folders of ``stack`` and
        below ahead of the walk, and each folder's new files are handed to it
        as soon as the walk lists them (reads in flight without waiting for
        the walk or a chunk to end); each chunk is parsed and committed once
        its heads are in, while later ones are read.  The chunk-at-a-time
        read-ahead helper is not used."""
        if (self._cold is not None or self._ahead is not None or not deepread.can_tell()
                or not readahead.available() or not READ_AHEAD):
            return
        from ..dicom.headers import _HEAD

        head = _HEAD.size
        if not readahead.ColdReads.fits(head, CHUNK, COLD_AHEAD + 1):
            return
        cr = readahead.ColdReads(_open_flags(), head, CHUNK, COLD_AHEAD + 1)
        if not cr.crawl(list(stack)):
            cr.close()
            return
        if self._ra is not None:
            self._ra.close()
            self._ra = None
        self._cold = cr
        self._cold_seq = 0
        self._cold_out: list[str] = []   # files not yet handed to the helper
        self._cold_at = (0, 0)   # (chunk, row) of the first of them
        self._cold_feed(len(self._pending))

    def _cold_feed(self, new: int) -> None:
        """Hand the helper the last ``new`` entries of the pending files
        (and those left waiting), up to :data:`COLD_AHEAD` chunks ahead;
        the first :data:`COLD_START` files wait (a small import, like a
        rescan of a few changed files, is read in this process)."""
        todo, chunks = self._cold_todo, self._cold_chunks
        for j in range(new, 0, -1):
            todo.append(self._pending[-j])
        if not todo or (not chunks and self._npending < COLD_START):
            return
        while todo:
            ck = chunks[-1] if chunks and chunks[-1].want < CHUNK else None
            if ck is None:
                if len(chunks) >= COLD_AHEAD:
                    return
                ck = _ColdChunk(self._cold_seq)
                self._cold_seq += 1
                chunks.append(ck)
            fs, rows = todo[0]
            k = min(int(rows.size), CHUNK - ck.want)
            if k < rows.size:
                todo[0] = (fs, rows[k:])
                rows = rows[:k]
            else:
                todo.popleft()
            if self._cold_out and self._cold_at[0] != ck.seq:
                self._cold_send()
            if not self._cold_out:
                self._cold_at = (ck.seq, ck.want)
            base, names = fs.path + os.sep, fs.names
            self._cold_out.extend([base + names[i] for i in rows.tolist()])
            ck.want += k
            if len(self._cold_out) >= COLD_SEND:
                self._cold_send()

    def _cold_send(self) -> None:
        """Hand the files gathered for the helper over (a few folders at a time)."""
        if self._cold_out:
            seq, row = self._cold_at
            self._cold.queue(seq, row, self._cold_out)
            self._cold_out = []

    def _read_here(self, paths: list[str]) -> readahead.Heads:
        """The heads of ``paths`` read in this process, with many reads in
        flight when they are not in the page cache (:mod:`.deepread`)."""
        from ..dicom import heads as head_reader
        from ..dicom.headers import _HEAD

        if self._reader is None:
            self._reader = deepread.DeepReader(head_reader)
        head = _HEAD.size
        buf = np.empty(len(paths) * head, dtype=np.uint8)
        got, size, mtime = self._reader.read(paths, memoryview(buf), head, True, _open_flags())
        return readahead.Heads(buf, head, np.asarray(got, dtype=np.int64), np.asarray(size, dtype=np.int64),
                               np.asarray(mtime, dtype=np.int64))

    def _write(self, fn: Callable[[Any], Any], paths: list[str]) -> Any:
        """``store.write(fn)`` for the entries of ``paths``: LMDB's refusal of a
        key size is our bug, reported as such (with the longest path's length),
        never as a damaged database."""
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


class _ColdChunk:
    """A chunk whose files a cold import has queued to :class:`readahead.ColdReads`."""

    __slots__ = ("seq", "want")

    def __init__(self, seq: int):
        self.seq = seq   # its number (the helper's slot: seq % slots)
        self.want = 0    # rows queued


def _list(path: str, raw: bytes | None, stat: bool) -> tuple[Folder | int | None, list[str]]:
    """A folder listed by a walker thread: ``(number of files, subfolders)``
    when it is unchanged since ``raw`` (its stored listing); ``(None,
    subfolders)`` for a new folder holding only folders (as the one-thread
    walk, nothing to import there); else :func:`list_folder`'s ``(Folder,
    subfolders)``."""
    if raw is not None:
        same = unchanged_folder(path, raw)
        if same is not None:
            return same[1], same[0]
        return list_folder(path, stat=stat)
    ents = _entries(path)
    if ents is None:
        return list_folder(path, stat=stat)    # (it says why a folder cannot be listed)
    if _folders_only(ents):
        return None, [e.path for e in ents]
    return folder_of_entries(path, ents, stat)


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

