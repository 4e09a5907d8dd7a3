"""The rescan: which folders of an import changed since the last one.

An import walks its folder depth first.  A folder imported before has a
stored listing (:class:`~pocketpacs.archive.records.DirListing`: each file's
name, size, mtime and status, one database value per folder); the listings
of every folder under the import's root are read in one pass when the walk
starts (which also names the folders gone since).  Most listings also keep
their folder's stamp (device, inode, modification and change times, taken
before the folder was listed) and subfolders
(:mod:`~pocketpacs.archive.dirstamps`): a folder whose stamp still holds has
the entries it was listed with, so the walk does not list it again; it
``stat``-s the folder and the files its listing names (a file rewritten in
place keeps its folder's times), compares their sizes and mtimes as bytes
with the listing's and takes the subfolders from the stamp
(:func:`.foldercompare._stamped_unchanged`): one ``stat`` per folder instead of a
``scandir``, so that a rescan of an unchanged tree costs about what a plain
walk and ``stat`` of it cost.  Runs of such folders, a few hundred files at a
time, are compared at once (:func:`.foldercompare._stamped_run`: two C loops of ``stat`` and
three byte comparisons, none of the Python work per folder), and folders that
hold only folders (no listing) keep their stamps in one record per imported
folder (``meta``, :data:`~pocketpacs.archive.dirstamps.FOLDERS_KEY`), so an
unchanged tree has no folder listed at all.  A folder without a stamp that holds is listed
(one ``scandir``, a ``stat`` per file; a large folder through a descriptor,
so each ``stat`` looks up a name, not the whole path) and compared the same
way (:func:`.foldercompare._listed_unchanged`), and its stamp is stored for the next time.
Unchanged folders are only counted (no Python object per file is made for
them).  Folders that differ, new folders and anything unusual (a symbolic
link to a folder, a file that vanished, an error) are listed again by
:func:`~pocketpacs.archive.scan.list_folder` and handed to the import in
walk order (:meth:`RescanWalk._add_folder` sorts their files into unchanged,
changed and new); folders imported before and gone now are marked missing
(:meth:`RescanWalk._missing_folders`).  A rescan that finds nothing changed
(and every stamp stored) commits no transaction and loads neither numba nor
the parser.
"""
from __future__ import annotations

import os

import numpy as np

from . import commit
from . import deepread
from . import dirstamps
from . import pathkeys
from . import records
from .commit import PendingFolder
from .foldercompare import (_HEAD, _TRANSIENT, _entries, _folder_stat, _folders_only, _listed_unchanged,
                            _stampable, _stamped_run, _stamped_unchanged)
from .memstore import MemoryStore
from .report import Failure, public_reason
from .scan import Folder, folder_of_entries, list_folder

#: Unchanged files counted between two yields of the walk (the import checks for a cancel there).
BATCH = 4096
#: Files of a run of stamped folders compared at once (:func:`.foldercompare._stamped_run`): a few hundred
#: ``stat`` results held at a time (thousands cost more than they save: memory, measured).
RUN_FILES = 256
#: ``_add_folder`` was not given the folder's stored listing: it looks it up.
_NOT_LOOKED_UP = object()


class RescanWalk:
    """The walk and folder comparison of :class:`~pocketpacs.archive.ingest.Importer`
    (a mixin: the importer holds the state, the store and the report)."""

    #: ``{key: listing}`` of the folders under the walk's root, read when it
    #: starts; None once something is committed (the database is read then)
    _under: dict[bytes, bytes] | None = None
    #: ``(meta key, record)`` of the stamps of the root's folders of folders,
    #: set when the walk ends, stored with the next commit (:meth:`_with_folder_stamps`)
    _folders_todo: tuple[bytes, bytes] | None = None
    #: stamps taken by the walk, stored at its end (:meth:`_write_stamps`)
    _stamps: list[tuple[bytes, bytes, bytes]] | None = None

    # ---- walk -----------------------------------------------------------------------
    def _walk(self, root: str):
        """``(Folder, stored listing)`` of each folder to import, in walk order;
        ``(None, None)`` after folders found unchanged (counted here)."""
        stack = [root]
        real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
        exclude = frozenset(e for e in self.exclude if (e + os.sep).startswith(real_root))
        probed = not deepread.can_tell()
        walked = self._walked_keys
        key_max = pathkeys.PATH_KEY_MAX
        same = 0   # unchanged files not counted yet
        fkey = dirstamps.FOLDERS_KEY + pathkeys.path_key(root)
        with self.store.read() as t:   # every listing under the root, in one pass
            self._under = pathkeys.listings_under(t, root)
            stored_folders = t.get("meta", fkey)
        folders = dirstamps.decode_folders(stored_folders)   # stamps of its folders of folders
        seen: dict[bytes, bytes] = {}   # those that hold, and those taken by this walk
        listed: list = []   # [path, stat, entries] of a new folder _stamped_run listed
        get = self._getter()
        devs = dirstamps.trusted_devices()   # (empty: no folder is stamped, all are listed)
        trusting = bool(devs)
        settled = dirstamps.settled_before()
        stamps = self._stamps = []   # (key, head and names of its listing, stamp section) to store
        solo = 0   # folders to compare one at a time (a run of them differed)
        while stack:
            if trusting and not solo:
                # the usual rescan: runs of stamped folders compared at once
                known: list[tuple[str, bytes]] = []
                files, keys, taken = _stamped_run(stack, get, devs, exclude, RUN_FILES, self._walked, known,
                                                  folders, seen, settled, listed)
                if files >= 0 and taken:
                    walked.update(keys)
                    same += files
                    for kd, kraw in known:
                        self._rep.unchanged -= self._report_listed_failures(kd, kraw)
                    if same >= BATCH:
                        self._count_unchanged(same)
                        same = 0
                        yield None, None
                        get = self._getter()
                    continue
                if files < 0:
                    solo = taken   # (a folder of the run differs: each is compared on its own)
            elif solo:
                solo -= 1
            d = stack.pop()
            if exclude and os.path.realpath(d) in exclude:
                continue
            key = d.encode("utf-8", "surrogateescape")
            if len(key) > key_max:
                key = pathkeys.path_key(d)
                stampable = False   # (a stamp only follows a listing without a stored path)
            else:
                stampable = trusting
            raw = get(key)
            walked.add(key)
            st = None   # the folder's stat before it is listed, when it can be stamped
            sec = None  # the stamp section it keeps
            found = None
            if raw is not None and stampable:
                # a folder imported before: compared with its listing, without
                # listing it when its stamp says its entries are unchanged
                found = _stamped_unchanged(d, key, raw, devs)
                if found is not None and found[1] >= 0:   # the usual rescan: nothing changed here
                    # (no cold-disk probe here: whether its files' heads are
                    # in the page cache does not matter, none is read)
                    stack.extend(found[0])
                    same += found[1]
                    if same >= BATCH:
                        self._count_unchanged(same)
                        same = 0
                        yield None, None
                        get = self._getter()
                    continue
            if raw is not None and probed:
                # listed when its stamp does not hold (or it has none)
                held = found is not None   # (its stamp held: its entries are those of its listing)
                if not held:
                    if stampable:
                        st = _folder_stat(d, devs, settled)
                    found = _listed_unchanged(d, raw)
                    if found is not None and st is not None:
                        sec = dirstamps.section(st, [p.rpartition(os.sep)[2] for p in found[0]])
                        if found[1] >= 0 and sec != records.listing_section(raw):
                            stamps.append((key, raw[:11 + int.from_bytes(raw[7:11], "little")], sec))
                if found is not None:
                    stack.extend(found[0])
                    if found[1] >= 0:   # the usual rescan case: nothing changed here
                        same += found[1]
                        if same >= BATCH:
                            self._count_unchanged(same)
                            same = 0
                            yield None, None
                            get = self._getter()
                        continue
                    folder, _subdirs = list_folder(d, stat=True)   # (its subfolders are on the stack)
                    if held:   # (its stamp is kept with the listing the import writes)
                        sec = records.listing_section(raw)
                    if sec is not None and _stampable(folder):
                        folder.stamp = sec
                    if same:
                        self._count_unchanged(same)
                        same = 0
                    yield folder, raw
                    get = self._getter()
                    continue
            # a folder new to the archive is listed without a stat per file:
            # its files' sizes and times come from fstat when they are read
            if listed and listed[0] == d and raw is None:   # (stat-ed and listed by _stamped_run)
                _d, st, ents = listed
                listed.clear()
            else:
                if stampable and st is None:
                    st = _folder_stat(d, devs, settled)
                ents = _entries(d) if raw is None else None
            stat = raw is not None or not self._stat_free
            if ents is None:
                folder, subdirs = list_folder(d, stat=stat)   # (it says why a folder cannot be listed)
            elif _folders_only(ents):
                self._walked.add(d)   # only folders, none imported here: nothing to yield
                if st is not None:
                    seen[key] = dirstamps.section(st, [e.name for e in ents])
                stack.extend([e.path for e in ents])
                continue
            else:
                folder, subdirs = folder_of_entries(d, ents, stat)
            if st is not None and _stampable(folder):
                folder.stamp = dirstamps.section(st, [p.rpartition(os.sep)[2] for p in subdirs])
            stack.extend(subdirs)
            if same:
                self._count_unchanged(same)
                same = 0
            yield folder, raw
            get = self._getter()
            if not probed and folder.names and stack:
                # the first file's head not in the page cache: the folders are
                # most likely not either; list them with many reads in flight
                probed = True
                if deepread.cached(os.path.join(d, folder.names[0])) is False:
                    yield from self._walk_deep(stack, exclude)
                    return
        if same:
            self._count_unchanged(same)
        if trusting and seen != folders:   # (stored with the import's next commit, or at its end)
            self._folders_todo = (fkey, dirstamps.encode_folders(seen))

    def _count_unchanged(self, n: int) -> None:
        """Count ``n`` files found as stored."""
        prog, rep = self._prog, self._rep
        prog.seen += n
        rep.seen += n
        prog.unchanged += n
        rep.unchanged += n
        if self._progress_cb is not None:
            self._report_progress()

    # ---- folders ---------------------------------------------------------------------
    def _unchanged(self, path: str, n: int) -> None:
        """Count the ``n`` files of a folder that :func:`~.scan.unchanged_folder` found as stored."""
        self._walked.add(path)
        self._count_unchanged(n)

    def _add_folder(self, folder: Folder, partial: bool = False,
                    stored_listing: bytes | None | object = _NOT_LOOKED_UP) -> None:
        rep, prog = self._rep, self._prog
        for p in folder.problems:
            rep.failures.append(Failure(p.path, p.reason, p.message))
        prog.failed += len(folder.problems)
        self._walked.add(folder.path)
        if stored_listing is _NOT_LOOKED_UP:
            stored_listing = self._listing(pathkeys.path_key(folder.path))
        raw = stored_listing  # the folder's listing as the last import stored it (None: new folder)
        n = len(folder.names)
        if raw is not None and not partial and records.DirListing.unchanged(raw, folder.names, folder.sizes,
                                                                            folder.mtimes):
            self._keep_stamp(folder, raw)
            prog.seen += n  # the usual rescan case: nothing changed in this folder
            rep.seen += n
            prog.unchanged += n
            rep.unchanged += n
            self._report_progress()
            return
        stored = records.DirListing.decode(raw) if raw else None
        if any(nm.upper() == "DICOMDIR" for nm in folder.names):  # read as a hint, not an instance
            keep = [i for i, nm in enumerate(folder.names) if nm.upper() != "DICOMDIR"]
            folder.names = [folder.names[i] for i in keep]
            folder.sizes = [folder.sizes[i] for i in keep]
            folder.mtimes = [folder.mtimes[i] for i in keep]
        n = len(folder.names)
        if stored is None and n == 0:
            # no file here and none before (a patient or study folder of
            # subfolders): nothing to write, no transaction (a rescan of an
            # unchanged tree commits nothing)
            self._report_progress()
            return
        if (stored is not None and not partial and stored.names == folder.names
                and stored.mtime_ns.tolist() == folder.mtimes and stored.size.tolist() == folder.sizes
                and not stored.missing.any() and not _TRANSIENT[stored.code].any()):
            # the usual rescan case: nothing changed in this folder
            self._keep_stamp(folder, raw)
            prog.seen += n
            rep.seen += n
            prog.unchanged += n
            bad = np.nonzero(stored.code)[0]
            rep.unchanged += n - bad.size
            for i in bad.tolist():
                self._report_known(folder.path, folder.names[i], int(stored.code[i]))
            self._report_progress()
            return
        fs = PendingFolder(folder, stored, partial)
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
        elif not rows.size:   # (nothing to write: the folder's listing stays as it is)
            self._keep_stamp(folder, raw)
        self._report_progress()

    def _keep_stamp(self, folder: Folder, raw: bytes | None) -> None:
        """Store the stamp the walk took of a folder whose listing this import
        does not write (its files are as stored) at the end of the walk
        (:meth:`_write_stamps`), unless the listing keeps it already."""
        if folder.stamp is None or raw is None or self._stamps is None:
            return
        if records.listing_section(raw) != folder.stamp:
            self._stamps.append((pathkeys.path_key(folder.path), raw[:11 + int.from_bytes(raw[7:11], "little")],
                                 folder.stamp))

    def _listing(self, key: bytes) -> bytes | None:
        """A stored folder listing, read in one long read transaction per walk
        (LMDB: a snapshot costs nothing; memory store: short reads, so that
        other threads are not locked out during the walk)."""
        if self._under is not None:
            return self._under.get(key)
        if isinstance(self.store, MemoryStore):
            with self.store.read() as t:
                return t.get("dirs", key)
        return self._getter()(key)

    def _getter(self):
        """``get(key)`` of the ``dirs`` database: the listings read at the
        start of the walk, or after a commit (which may change them) the
        walk's read transaction; ask again after a yield."""
        if self._under is not None:
            return self._under.get
        if isinstance(self.store, MemoryStore):
            return self._listing
        if self._rt is None:
            self._rt_cm = self.store.read()
            self._rt = self._rt_cm.__enter__()
            self._get_listing = self._rt.getter("dirs")
        return self._get_listing

    def _end_read(self) -> None:
        """End the walk's read transaction (before a commit; the listings read
        at the start of the walk are dropped too: a commit may change them)."""
        self._under = None
        if self._rt is not None:
            self._rt = None
            self._get_listing = None
            self._rt_cm.__exit__(None, None, None)

    def _report_listed_failures(self, folder: str, raw: bytes) -> int:
        """Report the failed files of an unchanged folder's listing ``raw`` again
        (as :meth:`_add_folder` does); returns how many."""
        n, ln = _HEAD(raw, 3)
        p = 11 + ln
        names = raw[11:p].decode("utf-8", "surrogateescape").split("\0")
        bad = 0
        for i, c in enumerate(raw[p + 32 * n:p + 33 * n]):
            if c:
                self._report_known(folder, names[i], c - 256 if c > 127 else c)
                bad += 1
        return bad

    def _report_known(self, folder: str, name: str, code_i: int) -> None:
        """Report a file that failed (or conflicted) before and has not changed."""
        rep = self._rep
        code = records.CODES[code_i]
        path = os.path.join(folder, name)
        if code == "conflict":
            rep.conflicts.append(Failure(path, "conflict", f"{path}: same SOP Instance UID as an "
                                         "archived instance but different content (known)"))
        else:
            rep.failures.append(Failure(path, public_reason(code),
                                        f"{path}: {code.replace('_', ' ')} (unchanged since the last import)"))

    def _missing_folders(self, root: str) -> None:
        """Folders under ``root`` that were imported before and are gone now."""
        under = self._under   # (None when something was committed since the walk began)
        self._end_read()
        if under is not None:
            walked = self._walked_keys
            gone = [pathkeys.listing_folder(k, under[k]) for k in sorted(under.keys() - walked)]
        else:
            with self.store.read() as t:
                gone = [d for d, _k in pathkeys.folders_under(t, root, self._walked_keys)]
        gone = [d for d in gone if d not in self._walked and not os.path.isdir(d)]
        for d in gone:
            with self.store.read() as t:
                raw = pathkeys.get_listing(t, d)
            if raw is None:
                continue
            stored = records.DirListing.decode(raw)
            fs = PendingFolder(Folder(d), stored)
            res = self._write(lambda t, fs=fs: commit.commit_gone_folder(t, self.secret, fs), [d])
            self._rep.missing += res
        self._write_stamps()

    def _with_folder_stamps(self, fn):
        """``fn`` of a commit, storing the record of the stamps of the root's
        folders of folders first when the walk left one (:attr:`_folders_todo`;
        an empty one deletes it)."""
        todo = self._folders_todo
        if todo is None:
            return fn

        def with_stamps(t):
            if todo[1]:
                t.put("meta", *todo)
            else:
                t.delete("meta", todo[0])
            return fn(t)

        return with_stamps

    def _write_stamps(self) -> None:
        """Keep the stamps the walk took of folders whose listings it did not
        write (the folders it imported keep theirs with their listings) with
        those listings, in one transaction, if any: unchanged folders whose
        listing had no stamp (an archive of an older version, a folder changed
        shortly before the last import) or one that no longer holds (a
        ``chmod``).  A listing whose files are no longer those the folder was
        listed with (a commit after the walk) keeps no stamp.  The record of
        the stamps of folders of folders goes with them, if no commit took
        it (a rescan writes nothing else)."""
        stamps, self._stamps = self._stamps, None
        if not stamps:
            if self._folders_todo is not None:
                self._write(lambda t: None, [])
            return

        def changes(t) -> list[tuple[bytes, bytes]]:
            out = []
            for key, prefix, sec in stamps:
                raw = t.get("dirs", key)
                if raw is None or not raw.startswith(prefix) or records.listing_section(raw) == sec:
                    continue
                try:
                    out.append((key, records.listing_with_section(raw, sec)))
                except ValueError:   # (not a whole listing: left as it is)
                    continue
            return out

        with self.store.read() as t:
            if not changes(t):
                if self._folders_todo is not None:
                    self._write(lambda t: None, [])
                return

        def write(t) -> None:
            for key, value in changes(t):
                t.put("dirs", key, value)

        self._write(write, [])
