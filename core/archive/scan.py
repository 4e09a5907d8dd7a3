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


@dataclass
class Folder:
    """The regular files of one folder (in directory order)."""
    path: str
    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mtimes: list[int] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


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
    subdirs: list[str] = []
    names = folder.names
    sizes = folder.sizes
    mtimes = folder.mtimes
    problems = folder.problems
    S_ISREG = stat_mod.S_ISREG
    try:
        it = os.scandir(path)
    except OSError as e:
        problems.append(_os_problem(path, e, "folder "))
        return folder, subdirs
    add_dir = subdirs.append
    add_name, add_size, add_mtime = names.append, sizes.append, mtimes.append
    with it:
        try:
            for e in it:
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
        except OSError as exc:
            problems.append(_os_problem(path, exc, "folder "))
    return folder, subdirs
