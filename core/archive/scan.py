"""Filesystem walk: folders, their regular files with size and mtime, and
everything that cannot be a DICOM file, with a reason.

One ``os.scandir`` per folder and one ``stat`` per file (``DirEntry.stat``);
no file is opened here.  Symbolic links to files are followed; symbolic
links to folders are not (they could loop or leave the imported folder) and
are reported.  FIFOs, sockets and devices are reported and never opened.
"""
from __future__ import annotations

import errno
import os
import stat as stat_mod
from dataclasses import dataclass, field

from ..errors import Problem
from .records import DirListing


@dataclass
class Folder:
    """The regular files of one folder (in directory order)."""
    path: str
    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: the folder's stamp section, kept with its listing (:mod:`~pocketpacs.archive.dirstamps`; None: none)
    stamp: bytes | None = None


_S_IFMT = 0o170000
_S_IFREG = stat_mod.S_IFREG
_KIND = {stat_mod.S_IFIFO: "a FIFO", stat_mod.S_IFSOCK: "a socket", stat_mod.S_IFCHR: "a character device",
         stat_mod.S_IFBLK: "a block device"}


def _os_problem(path: str, e: OSError, what: str = "") -> Problem:
    if isinstance(e, FileNotFoundError):
        return Problem(path, "vanished", f"{path}: {what}vanished during the import")
    if isinstance(e, PermissionError):
        return Problem(path, "permission_denied", f"{path}: {what}permission denied")
    if e.errno == errno.ELOOP:
        return Problem(path, "unsupported", f"{path}: symbolic link loop")
    return Problem(path, "unreadable", f"{path}: {what}could not be read ({e.strerror or type(e).__name__})")


def list_folder(path: str, stat: bool = True) -> tuple[Folder, list[str]]:
    """List one folder: its regular files and its subfolders.

    Entries come in directory order (not sorted: sorting costs more than a
    rescan may spend; the stored listing of an unchanged folder has the
    same order).

    Parameters
    ----------
    path : str
        Folder path.
    stat : bool
        ``stat`` every file for its size and modification time (default).
        When False, files the directory entry already shows as regular are
        listed with size and mtime -1, to be taken from ``fstat`` once the
        file is open (a first import: a ``stat`` by path costs twice an
        ``fstat`` here); symbolic links and entries of unknown type are
        still ``stat``-ed.

    Returns
    -------
    (Folder, list of str)
        The folder's files and the paths of its subfolders.
    """
    folder = Folder(path)
    try:
        it = os.scandir(path)
    except OSError as e:
        folder.problems.append(_os_problem(path, e, "folder "))
        return folder, []
    entries: list[os.DirEntry] = []
    with it:
        try:
            entries.extend(it)   # (what was listed before an error is kept)
        except OSError as exc:
            folder.problems.append(_os_problem(path, exc, "folder "))
    return _sort_out(folder, entries, stat)


def folder_of_entries(path: str, entries: list[os.DirEntry], stat: bool = True) -> tuple[Folder, list[str]]:
    """:func:`list_folder` of a folder whose entries the caller has listed
    (``os.scandir`` of ``path``, without an error)."""
    return _sort_out(Folder(path), entries, stat)


def _sort_out(folder: Folder, entries: list[os.DirEntry], stat: bool) -> tuple[Folder, list[str]]:
    subdirs = _bulk(folder, entries, stat)
    if subdirs is None:  # a symbolic link, a FIFO, an error: entry by entry, with reasons
        subdirs = _one_by_one(folder, entries, stat)
    return folder, subdirs


def _bulk(folder: Folder, entries: list[os.DirEntry], stat: bool) -> list[str] | None:
    """The usual folder (subfolders and regular files only), in a few list
    comprehensions: about a third less Python work per file than
    :func:`_one_by_one` (a rescan is mostly this).  None when any entry
    needs more care."""
    try:
        is_dir = [e.is_dir(follow_symlinks=False) for e in entries]
        if any(is_dir):
            subdirs = [e.path for e, d in zip(entries, is_dir) if d]
            files = [e for e, d in zip(entries, is_dir) if not d]
        else:
            subdirs, files = [], entries
        if not stat:
            if not all([e.is_file(follow_symlinks=False) for e in files]):
                return None
            folder.names = [e.name for e in files]
            folder.sizes = [-1] * len(files)
            folder.mtimes = [-1] * len(files)
            return subdirs
        sts = [e.stat() for e in files]   # follows symbolic links (none is a folder: checked below)
    except OSError:
        return None
    if not all([st.st_mode & _S_IFMT == _S_IFREG for st in sts]):
        return None
    folder.names = [e.name for e in files]
    folder.sizes = [st.st_size for st in sts]
    folder.mtimes = [st.st_mtime_ns for st in sts]
    return subdirs


def _one_by_one(folder: Folder, entries: list[os.DirEntry], stat: bool) -> list[str]:
    """Each entry on its own, every problem reported with its reason."""
    subdirs: list[str] = []
    names = folder.names
    sizes = folder.sizes
    mtimes = folder.mtimes
    problems = folder.problems
    names.clear()   # (a partial bulk pass may have filled them)
    sizes.clear()
    mtimes.clear()
    S_ISREG = stat_mod.S_ISREG
    add_dir = subdirs.append
    add_name, add_size, add_mtime = names.append, sizes.append, mtimes.append
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                add_dir(e.path)
                continue
            if not stat and e.is_file(follow_symlinks=False):
                add_name(e.name)
                add_size(-1)
                add_mtime(-1)
                continue
            st = e.stat()  # follows symbolic links
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and e.is_symlink():
                problems.append(Problem(e.path, "vanished", f"{e.path}: broken symbolic link"))
            else:
                problems.append(_os_problem(e.path, exc))
            continue
        if S_ISREG(st.st_mode):
            add_name(e.name)
            add_size(st.st_size)
            add_mtime(st.st_mtime_ns)
        elif stat_mod.S_ISDIR(st.st_mode):
            problems.append(Problem(e.path, "unsupported",
                                    f"{e.path}: symbolic link to a folder (not followed)"))
        else:
            kind = _KIND.get(stat_mod.S_IFMT(st.st_mode), "not a regular file")
            problems.append(Problem(e.path, "unsupported", f"{e.path}: {kind}, not a regular file"))
    return subdirs


def unchanged_folder(path: str, raw: bytes) -> tuple[list[str], int] | None:
    """The rescan's fast path: a folder's subfolders and number of files when its regular files
    are exactly those of its stored listing ``raw`` (same names in the same
    order, sizes and mtimes, all indexed and present); None when anything
    differs or needs a closer look (then :func:`list_folder` lists it).

    The folder is listed and its files ``stat``-ed as :func:`list_folder`
    does, but nothing is built per file beyond what the comparison with the
    encoded listing needs (:meth:`~pocketpacs.archive.records.DirListing.unchanged`).
    """
    try:
        with os.scandir(path) as it:
            entries = list(it)
        is_dir = [e.is_dir(follow_symlinks=False) for e in entries]
        if True in is_dir:
            subdirs = [e.path for e, d in zip(entries, is_dir) if d]
            entries = [e for e, d in zip(entries, is_dir) if not d]
        else:
            subdirs = []
        sts = [e.stat() for e in entries]
    except OSError:
        return None
    if not DirListing.unchanged(raw, [e.name for e in entries], [st.st_size for st in sts],
                                [st.st_mtime_ns for st in sts]):
        return None
    if not all([st.st_mode & _S_IFMT == _S_IFREG for st in sts]):
        return None
    return subdirs, len(entries)
