"""The import on a cold disk: folders listed and file heads read ahead of the parser.

When the first new file's head is not in the page cache (the kernel says so:
:func:`~pocketpacs.archive.deepread.cached`), :class:`ColdImport` (a mixin of
:class:`~pocketpacs.archive.ingest.Importer`) takes over the rest of the
walk: a helper process (:class:`~pocketpacs.archive.coldreads.ColdReads`)
lists the folders below ahead of the walk, walker threads here list the
next folders on the stack, and each folder's new files are handed to the
helper as soon as the walk takes the folder, into the slot of the chunk
they belong to (many reads in flight, none waiting for the walk or a chunk
to end).  A chunk is parsed and committed once its heads are in and the
helper has a whole chunk more to read meanwhile (or the walk has ended),
and a commit takes no more chunks than are read
(:meth:`ColdImport._more_in_commit`).  Folders are taken in exactly the
order of the one-thread walk (the archive never depends on whether the disk was cold).
A small cold import is read here by
:class:`~pocketpacs.archive.deepread.DeepReader`.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import deepread
from . import pathkeys
from . import readahead
from .coldreads import ColdReads
from .commit import PendingFolder
from .rescan import _entries, _folders_only
from .scan import Folder, folder_of_entries, list_folder, unchanged_folder

#: Chunks whose file heads are being read ahead of the one parsed (each
#: holds a chunk of heads in memory, 8 MB at 4 KB a head).
COLD_AHEAD = 8
#: New files listed before the helper that reads them starts (a small
#: import is read in this process, as a rescan of a few changed files).
COLD_START = 200
#: Files handed to the helper at a time (consecutive folders).
COLD_SEND = 64
#: Most files of a chunk on a cold disk (the parse and commit of the last
#: chunk, once every read is done, are what the import adds to the time the
#: disk takes; 1,000 measured no better than 2,000 with COLD_COMMIT_EARLY:
#: paired ratios to the deep-queue floor 0.873 / 0.778 against 0.892 / 0.781).
COLD_CHUNK = 2000
#: A commit on a cold disk takes no more chunks while the next one's heads
#: are not all read (it commits what it holds while the disk works; A/B in
#: one run, 5,000 files, median of each import / the deep-queue floor read
#: just before it: 0.795 -> 0.867 with 12 pairs, 0.869 -> 0.892 and 0.690 -> 0.781 with 10).
COLD_COMMIT_EARLY = True
#: Threads listing the folders next in the walk: few, as the helper lists
#: them ahead (32 cost more CPU, measured: 2,350 files/s against 2,680 with
#: 8, on the loaded 2-core machine; 4 and 16 measured no better than 8).
COLD_WALKERS = 8
#: Threads listing the folders next in the walk when no helper lists them
#: ahead, and twice that many folders listed ahead of the one taken.
WALK_DEPTH = 32


def _open_flags() -> int:
    from ..dicom.heads import OPEN_FLAGS

    return OPEN_FLAGS


class ColdImport:
    """The cold-disk part of :class:`~pocketpacs.archive.ingest.Importer` (a
    mixin: the importer holds the state, the store and the report; it sets
    ``_cap``, the files of a chunk, and ``_helpers``, whether helper
    processes may run, when an import starts)."""

    _cap: int
    _helpers: bool
    _cold: ColdReads | None
    _reader: deepread.DeepReader | None

    # ---- walk (the cold-disk part; the rest in rescan.RescanWalk) ---------------------
    def _walk_deep(self, stack: list[str], exclude: frozenset[str]):
        """The rest of the walk on a cold disk: threads (:data:`COLD_WALKERS`,
        or :data:`WALK_DEPTH` without the helper) list the folders next on
        the stack ahead of time (``scandir`` and ``stat`` release the GIL)
        while this thread looks up the stored
        listings (one read transaction) and takes the folders in exactly the
        order of the one-thread walk (the archive never depends on whether
        the disk was cold)."""
        from concurrent.futures import ThreadPoolExecutor

        self._cold_begin(stack)
        ahead = 2 * WALK_DEPTH   # folders listed ahead (their listings wait in memory)
        ex = ThreadPoolExecutor(COLD_WALKERS if self._cold is not None else WALK_DEPTH,
                                thread_name_prefix="pocketpacs-walk")
        asked: dict[str, tuple] = {}   # folder -> (future, stored listing)

        def ask(new: int = -1) -> None:
            """Submit the folders that came into the window of the stack's
            top ``ahead`` (all of it when ``new`` < 0): the ``new`` ones just
            pushed, or when none was, the one the pop brought in at its
            bottom (the others are asked already: not looked at again)."""
            if new < 0:
                todo = stack[-ahead:]
            elif new:
                todo = stack[-min(new, ahead):]
            else:
                todo = stack[-ahead:-ahead + 1] if len(stack) >= ahead else []
            for d in todo:
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
                if d not in asked:
                    stack.append(d)
                    ask(1)   # (not asked yet: now)
                    stack.pop()
                    if d not in asked:   # an excluded folder
                        continue
                fut, raw = asked.pop(d)
                folder, subdirs = fut.result()
                stack.extend(subdirs)
                ask(len(subdirs))
                if folder is None:   # only folders, none imported here
                    self._walked.add(d)
                elif isinstance(folder, int):
                    self._unchanged(d, folder)
                    yield None, None
                else:
                    yield folder, raw
        finally:
            ex.shutdown(wait=True, cancel_futures=True)

    # ---- heads read while the walk goes on ----------------------------------------------
    def _cold_begin(self, stack: list[str]) -> None:
        """The files are not in the page cache: a helper process
        (:class:`ColdReads`) lists the folders of ``stack`` and
        below ahead of the walk (on a first import asking the disk for their
        files' heads as it lists them), and each folder's new files are
        handed to it as soon as the walk lists them (reads in flight without
        waiting for the walk or a chunk to end); each chunk is parsed and
        committed once its heads are in, while later ones are read.  The
        chunk-at-a-time read-ahead helper is not used."""
        if (self._cold is not None or self._ahead is not None or not deepread.can_tell()
                or not readahead.available() or not self._helpers):
            return
        from ..dicom.headers import _HEAD

        head = _HEAD.size
        cap = min(self._cap, COLD_CHUNK)
        if not ColdReads.fits(head, cap, COLD_AHEAD + 1):
            return
        cr = ColdReads(_open_flags(), head, cap, COLD_AHEAD + 1)
        if not cr.crawl(list(stack)):
            cr.close()
            return
        self._cap = cap
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
        todo, chunks, cap = self._cold_todo, self._cold_chunks, self._cap
        for j in range(new, 0, -1):
            todo.append(self._pending[-j])
        if not todo or (not chunks and self._npending < COLD_START):
            return
        while todo:
            ck = chunks[-1] if chunks and chunks[-1].want < cap else None
            if ck is None:
                if len(chunks) >= COLD_AHEAD:
                    return
                ck = _ColdChunk(self._cold_seq)
                self._cold_seq += 1
                chunks.append(ck)
            fs, rows = todo[0]
            k = min(int(rows.size), cap - ck.want)
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

    def _cold_next(self) -> tuple[tuple[list[tuple[Any, np.ndarray]], list[str], list[PendingFolder]],
                                  readahead.Heads]:
        """The next chunk a cold import queued to the helper: ``(_take's
        answer, heads)``, waiting for the heads (read here if the helper
        failed)."""
        ck = self._cold_chunks.popleft()
        taken = self._take(ck.want)
        self._cold_feed(0)   # keep COLD_AHEAD chunks in flight
        self._cold_send()
        heads = self._cold.wait(ck.seq, ck.want)
        if heads is None:   # the helper failed: read here
            heads = self._read_here(taken[1])
        return taken, heads

    def _cold_ready(self) -> bool:
        """Whether the walk should stop to parse and commit the first queued
        chunk: it is whole and the reads ahead or the walk ahead are at
        their bound, or its heads are in and the helper has a whole chunk
        more to read meanwhile (a commit while it had none left the disk
        idle for the commit's length, measured: 45 ms of a 5,000-file
        import; the walk goes on queueing reads instead)."""
        chunks = self._cold_chunks
        return bool(chunks and chunks[0].want >= self._cap
                    and (len(chunks) >= COLD_AHEAD or self._npending >= self._walk_ahead
                         or (len(chunks) > 1 and chunks[1].want >= self._cap
                             and self._cold.ready(chunks[0].seq, self._cap))))

    def _more_in_commit(self) -> bool:
        """Whether a commit may take one more chunk: always, but on a cold
        disk while the next chunk's heads are not all read (the chunks held
        are committed meanwhile, so that the last commit, after the last
        read, holds one chunk)."""
        if self._cold is None or not COLD_COMMIT_EARLY:
            return True
        chunks = self._cold_chunks
        return not chunks or self._cold.ready(chunks[0].seq, chunks[0].want)

    def _cold_end(self) -> None:
        """Stop the helper (the reads of an interrupted import are dropped)."""
        if self._cold is not None:
            self._cold.close(cancel=True)
            self._cold = None
            self._cold_chunks.clear()
            self._cold_todo.clear()

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


class _ColdChunk:
    """A chunk whose files a cold import has queued to :class:`ColdReads`."""

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
