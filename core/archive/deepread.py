"""Reading file heads with many reads in flight when the files are not cached.

A file head that is not in the page cache costs a disk request, and one
thread waits for each request in turn: the device queue holds one read at a
time.  Reads release the GIL, so threads can keep many requests in flight,
but when the files are cached (the usual warm import) each system call is a
few microseconds and threads only hand the GIL back and forth.  So
:class:`DeepReader` reads in the calling thread while the heads come from
the cache and gives the files that are not cached to :data:`DEPTH` threads,
each taking :data:`BLOCK` files at a time: it opens them all and asks the
kernel for their heads (``posix_fadvise(WILLNEED)``,
:func:`~pocketpacs.dicom.heads.read_heads_ahead`) before reading the first,
so that ``DEPTH * BLOCK`` reads are in flight from a few threads.  A folder that is mostly cached (files of it evicted
here and there) keeps the calling thread's pace: only its misses go to the
threads, all at once after the calling thread's pass.  Once the misses are
dense (:data:`DENSE`: a cold disk), the threads take the rest of the files
as well, since then even the calling thread's ``open`` waits for the disk.
Whether a file is cached is asked of the kernel, not timed: ``preadv`` with
``RWF_NOWAIT`` (Linux) fails with ``EAGAIN``, or reads short, instead of
waiting for the disk.  Where that flag is refused (tmpfs, which is memory
anyway; other systems) the calling thread reads everything, as before.

Standard library only, and no import of the package: the import's read-ahead
helper (``python -S -I``, :mod:`pocketpacs.archive.readahead`) loads this
file by its path and passes the file-head reader
(:mod:`pocketpacs.dicom.heads`) to :class:`DeepReader`.
"""
from __future__ import annotations

import errno
import os

#: Threads reading on a cold disk, and the files each takes at a time (all
#: of them asked for before the first is read): ``DEPTH * BLOCK`` reads in
#: flight.  Measured on 2 cores, 5,000 cold files read in process, against
#: the deep-queue floor (32 threads each reading one file at a time) read
#: just before, 10-12 alternating runs each: 32 threads of 4 files, read one
#: by one, 0.566x; 4 of 16 asked for together 1.83x; 4 of 32 1.71-1.88x;
#: 3 of 32 1.62x; 2 of 32 1.67x; 8 of 16 1.36x; 8 of 32 1.50x (200 files:
#: 0.853x against 2.19x with 4 of 16).  Fewer threads cost less CPU and
#: hand the GIL around less; the reads go to the disk together either way.
DEPTH = 4
BLOCK = 16
#: Misses that make a disk cold: at least ``DENSE[0]`` files not cached, one in
#: ``DENSE[1]`` or more of the files looked at; the threads then read the rest.
#: (A folder where a few percent of the files were evicted stays with the
#: calling thread: 32 threads on cached files only pass the GIL around; measured
#: at a million files, 4% of them evicted: 66 s of CPU in the threads.)
DENSE = (4, 4)

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_NOWAIT = getattr(os, "RWF_NOWAIT", 0) if hasattr(os, "preadv") else 0
#: errnos of a ``preadv`` that refuses ``RWF_NOWAIT`` (not a read error).
_REFUSED = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS})


def can_tell() -> bool:
    """Whether :func:`cached` can answer on this system at all (``RWF_NOWAIT``)."""
    return bool(_NOWAIT)


def cached(path, head: int = 4096) -> bool | None:
    """Whether the first ``head`` bytes of ``path`` are in the page cache:
    True, False, or None when the kernel cannot tell (no ``RWF_NOWAIT`` here,
    a file system that refuses it, a file that cannot be read)."""
    if not _NOWAIT:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        want = min(head, os.fstat(fd).st_size)
        return os.preadv(fd, (bytearray(head),), 0, _NOWAIT) >= want
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)


class DeepReader:
    """Reads the heads of many files, with :data:`DEPTH` reads in flight once
    one of them is not in the page cache.

    Parameters
    ----------
    heads : module
        The file-head reader, :mod:`pocketpacs.dicom.heads` (its
        ``read_heads``, ``OPEN_FLAGS`` and result codes).
    depth : int
        Threads reading once the files are found not cached; 1 reads
        everything in the calling thread.

    Attributes
    ----------
    deep_files : int
        Files read by the threads so far (not cached, or after the misses turned dense).
    nowait : bool
        The kernel tells cached from not cached here (``RWF_NOWAIT``); False
        once it refused the flag.
    """

    def __init__(self, heads, depth: int = DEPTH):
        self.heads = heads
        self.depth = max(1, int(depth))
        self.deep_files = 0
        self.nowait = bool(_NOWAIT) and self.depth > 1

    def read(self, paths, view, head: int, want_stat: bool = True, flags: int | None = None):
        """Read the first ``head`` bytes of every path into ``view``.

        Same contract as :func:`pocketpacs.dicom.heads.read_heads`: file *i*
        goes to ``view[i * head:(i + 1) * head]``; returns three lists (bytes
        read or a negative code, size, mtime_ns; sizes and times stay 0
        without ``want_stat``); never raises for a file.

        Parameters
        ----------
        paths : sequence of str or bytes
            Files to read.
        view : memoryview
            At least ``len(paths) * head`` writable bytes.
        head : int
            Bytes read from the start of each file.
        want_stat : bool
            Report each file's size and mtime (and tell non-regular files apart).
        flags : int, optional
            ``os.open`` flags (default: the head reader's ``OPEN_FLAGS``).

        Returns
        -------
        (list of int, list of int, list of int)
        """
        h = self.heads
        if flags is None:
            flags = h.OPEN_FLAGS
        n = len(paths)
        if not self.nowait:
            return h.read_heads(paths, view, head, want_stat, flags)
        got = [0] * n
        size = [0] * n
        mtime = [0] * n
        os_open, close, fstat, preadv = os.open, os.close, os.fstat, os.preadv
        nowait = _NOWAIT
        OPEN_FAILED, NOT_REGULAR, READ_FAILED = h.OPEN_FAILED, h.NOT_REGULAR, h.READ_FAILED
        cold = n   # where the threads take all the rest (a cold disk)
        misses: list[int] = []   # files before that one that were not cached
        dense_n, dense_every = DENSE
        a = 0
        for i in range(n):
            try:
                fd = os_open(paths[i], flags)
            except OSError:
                got[i] = OPEN_FAILED
                a += head
                continue
            try:
                st = fstat(fd)
                if st.st_mode & _S_IFMT != _S_IFREG:   # (without want_stat: as read_heads says)
                    got[i] = NOT_REGULAR if want_stat else READ_FAILED
                    continue
                try:
                    r = preadv(fd, (view[a:a + head],), 0, nowait)
                except BlockingIOError:
                    r = -1
                except OSError as e:
                    if e.errno not in _REFUSED:
                        raise
                    self.nowait = False   # this system cannot tell: read here, as before
                    cold = i
                    break
                if r < head and r < st.st_size:   # not cached, or only partly
                    misses.append(i)
                    if len(misses) >= dense_n and len(misses) * dense_every >= i + 1:
                        cold = i + 1
                        break
                    continue
                got[i] = r
                if want_stat:
                    size[i] = st.st_size
                    mtime[i] = st.st_mtime_ns
            except OSError:
                got[i] = READ_FAILED
            finally:
                close(fd)
                a += head
        if not self.nowait:
            for i in misses:
                g, s, m = h.read_heads(paths[i:i + 1], view[i * head:(i + 1) * head], head, want_stat, flags)
                got[i], size[i], mtime[i] = g[0], s[0], m[0]
            if cold < n:
                g, s, m = h.read_heads(paths[cold:], view[cold * head:n * head], head, want_stat, flags)
                got[cold:], size[cold:], mtime[cold:] = g, s, m
        elif misses or cold < n:
            self._deep(paths, view, head, want_stat, flags, misses, cold, got, size, mtime)
        return got, size, mtime

    def _deep(self, paths, view, head, want_stat, flags, misses, lo, got, size, mtime) -> None:
        """The files ``misses`` and ``lo:`` read by up to :attr:`depth` threads, the
        misses one at a time, then the rest :data:`BLOCK` files at a time
        (each block's heads asked for together: ``read_heads_ahead``)."""
        from concurrent.futures import ThreadPoolExecutor   # (only for files not cached)

        n = len(paths)
        read_heads = self.heads.read_heads_ahead
        parts = [(i, i + 1) for i in misses] + [(b, min(n, b + BLOCK)) for b in range(lo, n, BLOCK)]
        todo = iter(parts)   # shared: each next() is atomic

        def work() -> None:
            for b, e in todo:
                g, s, m = read_heads(paths[b:e], view[b * head:e * head], head, want_stat, flags)
                got[b:e], size[b:e], mtime[b:e] = g, s, m

        threads = min(self.depth, len(parts))
        with ThreadPoolExecutor(threads, thread_name_prefix="pocketpacs-read") as ex:
            futures = [ex.submit(work) for _ in range(threads)]
            for f in futures:
                f.result()
        self.deep_files += len(misses) + n - lo


__all__ = ["DeepReader", "can_tell", "cached", "DEPTH", "BLOCK", "DENSE"]
