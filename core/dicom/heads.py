"""Reading the first bytes (the head) of files: the one file-head reader.

``read_heads`` reads the heads of many files into one buffer (``open`` /
``fstat`` / ``preadv`` / ``close`` per file, never mmap); ``read_head``
reads one file and says exactly why it could not (vanished, permission
denied, not a regular file...).  Both the header parser
(:func:`pocketpacs.dicom.headers.parse_files`) and the import's read-ahead
helper process (:mod:`pocketpacs.archive.readahead`) read through them.  The
helper runs as ``python -S -I`` and loads this file by its path, so it must
stay standard-library only: no NumPy, no PocketPACS imports.
"""
from __future__ import annotations

import os

#: ``os.open`` flags for reading a file head (non-blocking: a FIFO does not hang).
OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
              | getattr(os, "O_NONBLOCK", 0))
HAVE_PREADV = hasattr(os, "preadv")

#: Codes :func:`read_heads` puts in place of the bytes read.
OPEN_FAILED = -1
NOT_REGULAR = -3
READ_FAILED = -4

_S_IFMT = 0o170000
_S_IFREG = 0o100000


_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None) if hasattr(os, "posix_fadvise") else None


def read_heads(paths, view, head: int, want_stat: bool = True, flags: int = OPEN_FLAGS,
               ahead: bool = False):
    """Read the first ``head`` bytes of every path into ``view``.

    File *i* goes to ``view[i * head:(i + 1) * head]``.  Returns three lists
    (bytes read or a negative code, size, mtime_ns).  Without ``want_stat``
    nothing is ``fstat``-ed (the caller knows the sizes: they stay 0) and a
    non-regular file is not told apart from one that cannot be read.
    Never raises for a file: read it again with :func:`read_head` for the
    reason.  With ``ahead`` (:func:`read_heads_ahead`) every file is opened
    and its head asked of the kernel first.
    """
    n = len(paths)
    got = [0] * n
    size = [0] * n
    mtime = [0] * n
    # os functions called directly, in one loop: a wrapper's call per file
    # costs about 1.5 % of an import (Windows: readv, a fresh descriptor is at
    # offset 0)
    os_open, close, fstat = os.open, os.close, os.fstat
    preadv = os.preadv if HAVE_PREADV else (lambda fd, views, _off: os.readv(fd, views))
    fds = _open_asking(paths, head, flags) if ahead and _WILLNEED is not None else None
    a = 0
    try:
        for i in range(n):
            if fds is None:
                try:
                    fd = os_open(paths[i], flags)
                except OSError:
                    got[i] = OPEN_FAILED
                    a += head
                    continue
            else:
                fd, fds[i] = fds[i], -1
                if fd < 0:
                    got[i] = OPEN_FAILED
                    a += head
                    continue
            try:
                if want_stat:
                    st = fstat(fd)
                    if st.st_mode & _S_IFMT != _S_IFREG:
                        got[i] = NOT_REGULAR
                        continue
                got[i] = preadv(fd, (view[a:a + head],), 0)
                if want_stat:
                    size[i] = st.st_size
                    mtime[i] = st.st_mtime_ns
            except OSError:
                got[i] = READ_FAILED
            finally:
                close(fd)
                a += head
    finally:
        if fds is not None:   # (only after an error outside the per-file handling)
            for fd in fds:
                if fd >= 0:
                    close(fd)
    return got, size, mtime


def _open_asking(paths, head: int, flags: int) -> list[int]:
    """Every path opened (-1 where it cannot be) and its first ``head``
    bytes asked of the kernel (``posix_fadvise(WILLNEED)``: the reads start
    at once, together)."""
    os_open, fadvise, willneed = os.open, os.posix_fadvise, _WILLNEED
    fds = [-1] * len(paths)
    for i, p in enumerate(paths):
        try:
            fd = fds[i] = os_open(p, flags)
        except OSError:
            continue
        try:
            fadvise(fd, 0, head, willneed)
        except OSError:   # (a FIFO: read_heads says what it is)
            pass
    return fds


def read_heads_ahead(paths, view, head: int, want_stat: bool = True, flags: int = OPEN_FLAGS):
    """:func:`read_heads` with every file open and its head asked of the
    kernel (``posix_fadvise(WILLNEED)``) before the first is read: on a cold
    disk the reads of all ``paths`` are in flight together, from one thread.
    Same layout, results and codes (where the kernel has no
    ``posix_fadvise``, it is :func:`read_heads`)."""
    return read_heads(paths, view, head, want_stat, flags, ahead=True)


def read_head(path: str, view: memoryview, want_stat: bool = True):
    """Read the head of ``path`` into ``view``.

    Returns (bytes_read, file_size, mtime_ns, reason, message): ``reason`` is
    None when the read worked, else one of ``vanished``,
    ``permission_denied``, ``unreadable`` or ``unsupported``, with a message.
    Without ``want_stat`` the size and mtime are returned as -1 (the caller
    knows them).
    """
    try:
        fd = os.open(path, OPEN_FLAGS)
    except FileNotFoundError:
        return 0, 0, 0, "vanished", "file vanished before it could be read"
    except PermissionError:
        return 0, 0, 0, "permission_denied", "permission denied"
    except OSError as e:
        return 0, 0, 0, "unreadable", f"could not be opened ({e.strerror or type(e).__name__})"
    try:
        if want_stat:
            st = os.fstat(fd)
            if st.st_mode & _S_IFMT != _S_IFREG:
                return 0, 0, 0, "unsupported", "not a regular file"
        if HAVE_PREADV:
            got = os.preadv(fd, [view], 0)
        else:  # Windows
            got = os.readv(fd, [view])
        if want_stat:
            return got, st.st_size, st.st_mtime_ns, None, None
        return got, -1, -1, None, None
    except OSError as e:
        return 0, 0, 0, "unreadable", f"read error ({e.strerror or type(e).__name__})"
    finally:
        os.close(fd)
