"""A folder compared with its stored listing, and runs of stamped folders at once.

The rescan's comparisons (:mod:`.rescan` walks, these compare): a folder
listed again and compared as bytes with its stored listing
(:func:`_listed_unchanged`), a folder whose stamp holds compared without
listing it (:func:`_stamped_unchanged`: one ``stat`` of the folder and of the
files its listing names), and runs of such folders, a few hundred files at a
time, compared at once (:func:`_stamped_run`: two C loops of ``stat`` and three
byte comparisons).  Each answers the subfolders to walk and the count of
unchanged files, or says the folder differs (the walk then lists it again and
hands it to the import).  Nothing here writes.
"""
from __future__ import annotations

import os
import struct
import sys
from array import array
from itertools import chain
from operator import attrgetter

import numpy as np

from . import dirstamps
from . import pathkeys
from . import records
from .scan import Folder

#: Folders of at least this many files (as last listed) are listed through a descriptor.
FD_FROM = 8

_TRANSIENT = np.zeros(256, dtype=bool)
_TRANSIENT[list(records.TRANSIENT)] = True
_TRANSIENT_CODES = frozenset(c & 0xFF for c in records.TRANSIENT)   # (as a listing's bytes)

_stat = os.DirEntry.stat          # follows a symbolic link (as list_folder does for files)
_is_dir = os.DirEntry.is_dir
_is_symlink = os.DirEntry.is_symlink
_name = attrgetter("name")
_os_stat = os.stat
_SECTION = records.SECTION
_HEAD = struct.Struct("<II").unpack_from   # (a listing's file count and names' length, at byte 3)
_STAMP_PACK = dirstamps.STAMP.pack
_stamp_fields = dirstamps.stamp_fields
#: ``n`` -> :func:`_packer` (folders of up to a few thousand files: a few kB each)
_PACKERS: dict = {}
_size = attrgetter("st_size")
_dev = attrgetter("st_dev")
_mtime = attrgetter("st_mtime_ns")
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_BY_FD = os.scandir in os.supports_fd   # (not on Windows)
_BIG_ENDIAN = sys.byteorder == "big"


def _entries(path: str) -> list[os.DirEntry] | None:
    """The entries of a folder, or None when it cannot be listed."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return None


def _folders_only(ents: list[os.DirEntry]) -> bool:
    """Whether these entries are all folders (no symbolic link among them)."""
    try:
        return True not in map(_is_symlink, ents) and False not in map(_is_dir, ents)
    except OSError:
        return False


def _listed_unchanged(path: str, raw: bytes) -> tuple[list[str], int] | None:
    """List a folder imported before and compare it with its stored listing ``raw``.

    The folder is listed (a large one through a descriptor) and its files
    ``stat``-ed; only their names, sizes and mtimes are taken, by C loops
    over the directory entries and ``stat`` results, and compared as bytes
    with the listing (:func:`~pocketpacs.archive.records.listing_unchanged`).
    An entry that is not a regular file (a FIFO, a socket, a device, or a
    link to one) never passes: its size is 0, and an indexed file is never
    empty (no ``st_mode`` is looked at).

    Returns
    -------
    (list of str, int) or None
        Its subfolders and its number of files, or -1 when they differ from
        the listing; None when the folder needs
        :func:`~pocketpacs.archive.scan.list_folder`'s care: it cannot be
        listed, holds a symbolic link to a folder, or a file could not be
        ``stat``-ed (a broken link, a file that vanished meanwhile).
    """
    fd = -1
    if _BY_FD and int.from_bytes(raw[3:7], "little") >= FD_FROM:
        # listed through a descriptor, so that each stat looks up a name
        # in the folder, not the whole path (fstatat): worth its two
        # more system calls in a folder of many files
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError:
            return None
    try:
        with os.scandir(path if fd < 0 else fd) as it:
            ents = list(it)
        isd = list(map(_is_dir, ents))   # (the entry's type: no system call but for links)
        if True in isd:
            subs = [e for e, s in zip(ents, isd) if s]
            if True in map(_is_symlink, subs):
                return None
            pre = _sub_prefix(path)
            subdirs = [pre + e.name for e in subs]
            ents = [e for e, s in zip(ents, isd) if not s]
        else:
            subdirs = []
        sts = list(map(_stat, ents))
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    n = len(ents)
    sizes = array("q", map(_size, sts))
    mtimes = array("q", map(_mtime, sts))
    if _BIG_ENDIAN:
        sizes.byteswap()
        mtimes.byteswap()
    same = (0 not in sizes and records.listing_unchanged(
        raw, n, "\0".join(map(_name, ents)).encode("utf-8", "surrogateescape"), sizes.tobytes(), mtimes.tobytes()))
    return subdirs, n if same else -1


def _sub_prefix(path: str) -> str:
    """What ``os.scandir(path)`` puts before its entries' names in their paths."""
    return path if path.endswith(os.sep) else path + os.sep


def _stamped_unchanged(path: str, key: bytes, raw: bytes, devs: frozenset[int]
                       ) -> tuple[list[str], int] | None:
    """Compare a folder with its stored listing without listing it, when its stamp allows.

    The listing ``raw`` of a folder whose path is its ``key`` may end with
    the folder's stamp and subfolders (:mod:`~pocketpacs.archive.dirstamps`).
    When the folder's device is still trusted and its device, inode and
    times are those of the stamp, its entries are those the listing was
    made from: the files it names are ``stat``-ed by path and their sizes
    and mtimes compared as bytes with the listing's (packed by one C call),
    and the subfolders come from the stamp.  (No size is checked for 0, as
    :func:`_listed_unchanged` does: a listing that passes names indexed
    files only, never empty.)

    Returns
    -------
    (list of str, int) or None
        Its subfolders and its number of files, or -1 when a file differs
        from the listing (or the listing names a failure or a missing file);
        None when it has no stamp, its stamp differs, or a file cannot be
        ``stat``-ed: the folder is then listed.
    """
    if len(raw) < 11 or raw[:3] != b"DL1":
        return None
    n, ln = _HEAD(raw, 3)
    p = 11 + ln
    e = p + 34 * n
    if raw[e:e + 1] != _SECTION:
        return None
    try:
        st = _os_stat(key)
    except OSError:
        return None
    if st.st_dev not in devs or _STAMP_PACK(*_stamp_fields(st)) != raw[e + 1:e + 33]:
        return None
    same = True
    if n:
        pre = key + b"/" if key[-1:] != b"/" else key
        try:
            sts = list(map(_os_stat, (pre + raw[11:p].replace(b"\0", b"\0" + pre)).split(b"\0")))
        except OSError:
            return None
        packer = _PACKERS.get(n) or _packer(n)
        same = (raw[p:p + 16 * n] == packer(*map(_size, sts), *map(_mtime, sts))
                and raw[p + 32 * n:e].count(0) == 2 * n)
    subs = raw[e + 33:]
    if subs:
        pre_s = _sub_prefix(path)
        return [pre_s + s for s in subs.decode("utf-8", "surrogateescape").split("\0")], n if same else -1
    return [], n if same else -1


def _stamped_run(stack: list[str], get, devs: frozenset[int], exclude: frozenset[str], limit: int,
                 walked_dirs: set[str], known: list[tuple[str, bytes]], folders: dict[bytes, bytes],
                 seen: dict[bytes, bytes], settled: int, listed: list) -> tuple[int, list[bytes], int]:
    """Take the folders next on the walk's stack whose stamps can vouch for
    them, and compare them all with their listings at once.

    Folders are popped from ``stack`` (and their stamped subfolders pushed,
    as the one-folder walk does) while the next one has a stored listing
    (``get(key)``) that keeps a stamp and names no missing file and none
    whose failure may pass (a failed one is appended to ``known`` with its
    listing, for its failure to be reported again), its path is its key and
    it is not excluded, or has no listing and holds only folders: with its
    stamp in ``folders`` (checked as the others') or else listed here, as
    the one-folder walk does (and added to ``walked_dirs``; its new stamp,
    when it can have one, put in ``seen`` with those that hold), until
    ``limit`` files are taken.  A folder without a listing that holds files
    ends the run: it is left on the stack, and ``listed`` says ``[path,
    stat, entries]`` of it (not listed twice).  Then the folders and the
    files their listings name are ``stat``-ed by two C loops and compared with the
    stamps and the listings' sizes and mtimes by three byte comparisons:
    none of the per-folder Python work of :func:`_stamped_unchanged`.

    Returns
    -------
    (int, list of bytes, int)
        The files taken, the keys of the folders with a listing taken, and
        the number of folders taken (0: the next one cannot be taken, the
        stack is as it was).  When every one is as stored the stack holds
        what the one-folder walk would then hold; when one differs or cannot
        be ``stat``-ed the files are -1 and the stack is as it was: the
        caller compares those folders one by one.
    """
    keys: list[bytes] = []
    stamps: list[bytes] = []
    paths: list[bytes] = []    # each folder's files, NUL-joined
    sizes: list[bytes] = []
    mtimes: list[bytes] = []
    key_max = pathkeys.PATH_KEY_MAX
    saved = None
    files = taken = 0
    while stack and files < limit:
        d = stack[-1]
        if exclude and os.path.realpath(d) in exclude:
            break
        key = d.encode("utf-8", "surrogateescape")
        raw = get(key) if len(key) <= key_max else None
        if raw is None:
            # no listing: a folder of folders (its stamp checked, or listed
            # here as the walk does), or a folder new to the archive (it ends the run)
            sec = folders.get(key)
            if sec is not None and len(sec) >= 32 and len(key) <= key_max:
                if saved is None:
                    saved = stack[:]
                stack.pop()
                taken += 1
                keys.append(key)
                stamps.append(sec[:32])
                seen[key] = sec
                if len(sec) > 32:
                    pre_s = _sub_prefix(d)
                    stack.extend([pre_s + s for s in sec[32:].decode("utf-8", "surrogateescape").split("\0")])
                continue
            if listed and listed[0] == d:
                break   # (listed by the last run: it holds files)
            st = _folder_stat(d, devs, settled) if len(key) <= key_max else None
            ents = _entries(d)
            if ents is None or not _folders_only(ents):
                listed[:] = [d, st, ents]
                break
            if saved is None:
                saved = stack[:]
            stack.pop()
            walked_dirs.add(d)
            taken += 1
            if st is not None:
                seen[key] = dirstamps.section(st, [e.name for e in ents])
            stack.extend([e.path for e in ents])
            continue
        if len(raw) < 11 or not raw.startswith(b"DL1"):
            break
        n, ln = _HEAD(raw, 3)
        p = 11 + ln
        e = p + 34 * n
        if raw[e:e + 1] != _SECTION or len(raw) < e + 33:
            break
        if raw.count(0, p + 32 * n, e) != 2 * n:   # (codes and missing marks: all 0 in the usual case)
            if raw.count(0, p + 33 * n, e) != n:
                break   # (a file missing: listed)
            codes = raw[p + 32 * n:p + 33 * n]
            if not _TRANSIENT_CODES.isdisjoint(codes):
                break   # (tried again: listed)
            known.append((d, raw))
        if saved is None:
            saved = stack[:]
        stack.pop()
        taken += 1
        keys.append(key)
        stamps.append(raw[e + 1:e + 33])
        if n:
            pre = key + b"/" if key[-1:] != b"/" else key
            paths.append(pre + raw[11:p].replace(b"\0", b"\0" + pre))
            sizes.append(raw[p:p + 8 * n])
            mtimes.append(raw[p + 8 * n:p + 16 * n])
            files += n
        subs = raw[e + 33:]
        if subs:
            pre_s = _sub_prefix(d)
            stack.extend([pre_s + s for s in subs.decode("utf-8", "surrogateescape").split("\0")])
    if not keys:
        return 0, keys, taken   # (none taken, or folders of folders only: nothing to compare)
    try:
        dsts = list(map(_os_stat, keys))
        sts = list(map(_os_stat, b"\0".join(paths).split(b"\0"))) if paths else []
    except OSError:
        stack[:] = saved
        return -1, keys, taken
    got_stamps = array("q", chain.from_iterable(map(_stamp_fields, dsts)))
    got_sizes = array("q", map(_size, sts))
    got_mtimes = array("q", map(_mtime, sts))
    if _BIG_ENDIAN:
        for a in (got_stamps, got_sizes, got_mtimes):
            a.byteswap()
    if (devs.issuperset(map(_dev, dsts)) and got_stamps.tobytes() == b"".join(stamps)
            and got_sizes.tobytes() == b"".join(sizes) and got_mtimes.tobytes() == b"".join(mtimes)):
        return files, keys, taken
    stack[:] = saved
    return -1, keys, taken


def _packer(n: int):
    """``pack(*sizes, *mtimes)`` of ``n`` files: little-endian int64s, as a listing stores them."""
    f = _PACKERS[n] = struct.Struct(f"<{2 * n}q").pack
    return f


def _folder_stat(path: str, devs: frozenset[int], settled: int) -> os.stat_result | None:
    """The ``stat`` of a folder about to be listed, when a stamp of it can be
    recorded (a trusted device, times older than ``settled``); else None."""
    try:
        st = _os_stat(path)
    except OSError:
        return None
    if st.st_dev in devs and st.st_mtime_ns <= settled and st.st_ctime_ns <= settled:
        return st
    return None


def _stampable(folder: Folder) -> bool:
    """Whether a listed folder's stamp can be kept with its listing: only
    regular files and subfolders were found (nothing reported) and no
    DICOMDIR (read as a hint, never in the listing)."""
    return not folder.problems and not any(nm.upper() == "DICOMDIR" for nm in folder.names)
