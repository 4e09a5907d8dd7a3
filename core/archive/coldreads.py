"""The file heads of a cold import, read by a helper process folder by folder.

On a cold disk (:mod:`.coldimport`) the import hands each folder's new
files to :class:`ColdReads` as soon as the walk lists them: a helper
process of the same kind as :class:`~pocketpacs.archive.readahead.ReadAhead`
(``python -S -I``, standard library only, memory an anonymous ``memfd``)
that lists the folders ahead of the walk and reads the heads of each
folder's files as they come (:data:`COLD_THREADS` threads, one per core
from 2 to 8, each opening :data:`COLD_BLOCK` files and asking the kernel
for their heads before reading the first), writing them into the slot of
their chunk, so that reads never wait for a chunk to end.

Linux only (``os.memfd_create``), as :func:`~pocketpacs.archive.readahead.available` says.
"""
from __future__ import annotations

from collections.abc import Callable
import mmap
import os
import struct
import subprocess
import sys
import threading

import numpy as np

from ..dicom import heads
from .readahead import Heads, _close_pipes, _reap, _release

_COLD_CHILD = r"""
import mmap, os, struct, sys, _queue, _thread
heads = {"__name__": "heads"}
with open(sys.argv[3], "rb") as f:
    exec(compile(f.read(), sys.argv[3], "exec"), heads)
FAILED = heads["READ_FAILED"]
mfd, flags, depth, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4]), int(sys.argv[5])
crawlers = int(sys.argv[6])
# each thread opens a block of files and asks the kernel for their heads
# before it reads the first (the reads go to the disk together)
read_heads_ahead = heads["read_heads_ahead"]
REQ = struct.Struct("<qqqqqqqq")
DONE = struct.Struct("<qq")
mm = mmap.mmap(mfd, os.fstat(mfd).st_size)
mv = memoryview(mm)
out = sys.stdout.fileno()
jobs = _queue.SimpleQueue()
ended = _queue.SimpleQueue()
def work():
    try:
        while True:
            job = jobs.get()
            if job is None:
                return
            tag, paths, ho, go, so, to, head = job
            k = len(paths)
            try:
                got, size, mtime = read_heads_ahead(paths, mv[ho:ho + k * head], head, True, flags)
            except BaseException:
                got, size, mtime = [FAILED] * k, [0] * k, [0] * k
            fmt = "<%dq" % k
            struct.pack_into(fmt, mm, go, *got)
            struct.pack_into(fmt, mm, so, *size)
            struct.pack_into(fmt, mm, to, *mtime)
            os.write(out, DONE.pack(tag, k))
    finally:
        ended.put(1)
dirs = _queue.SimpleQueue()
crawling = [0]
crawl_lock = _thread.allocate_lock()
def crawl():
    # folders listed (and forgotten) ahead of the walk, so that it finds them
    # in the page cache; links to folders are not followed
    while True:
        d = dirs.get()
        if d is None:
            return
        subs = []
        try:
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        subs.append(e.path)
        except OSError:
            pass
        with crawl_lock:
            crawling[0] += len(subs) - 1
            end = not crawling[0]
        for s in subs:
            dirs.put(s)
        if end:
            for _ in range(crawlers):
                dirs.put(None)
for _ in range(depth):
    _thread.start_new_thread(work, ())
rin = sys.stdin.buffer
while True:
    hdr = rin.read(REQ.size)
    if len(hdr) < REQ.size:
        break
    tag, ho, go, so, to, n, head, plen = REQ.unpack(hdr)
    paths = rin.read(plen).split(b"\0")
    if tag < 0:
        if not crawling[0]:
            crawling[0] = len(paths)
            for d in paths:
                dirs.put(d)
            for _ in range(crawlers):
                _thread.start_new_thread(crawl, ())
        continue
    for lo in range(0, n, block):
        jobs.put((tag, paths[lo:lo + block], ho + lo * head, go + 8 * lo, so + 8 * lo, to + 8 * lo, head))
for _ in range(depth):
    jobs.put(None)
for _ in range(depth):
    ended.get()
"""

#: Largest shared buffer of :class:`ColdReads` (all its chunk slots).
COLD_SHARED_MAX = 128 << 20


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: Threads of the :class:`ColdReads` helper reading heads, and files each
#: opens (and asks the kernel for, ``posix_fadvise(WILLNEED)``) before
#: reading the first: up to ``COLD_THREADS * COLD_BLOCK`` reads in flight.
#: One thread per usable core, 2 to 8: a cold read costs CPU in the kernel
#: (about as much as the deep-queue floor's reads), and on 2 cores the
#: helper's threads took it from the parser; 2 threads of 32 files against
#: 8 of 16 (the same reads in flight): helper CPU 281 -> 213 ms, import
#: 304 -> 255 ms, and 0.695x -> 0.842x the deep-queue floor (60 alternating
#: pairs, paired median +0.115, 48 of 60 better); 1 x 64, 3 x 32, 4 x 32 and
#: 2 x 16 measured no better than 2 x 32.  (Not measured on more cores:
#: there the CPU is not short, and more threads keep more opens in flight.)
COLD_THREADS = max(2, min(8, _usable_cpus()))
COLD_BLOCK = 32
#: Threads of the :class:`ColdReads` helper listing the folders ahead of the
#: walk (2, 4 and 16 measured no better than 8 with 2 reading threads).
COLD_CRAWLERS = 8

_COLD_REQ = struct.Struct("<qqqqqqqq")   # tag, heads / got / size / mtime offsets, n, head, path bytes
_COLD_DONE = struct.Struct("<qq")        # tag, files read


class ColdReads:
    """File heads of a cold import read by a helper process, folder by folder.

    The walk queues each folder's new files (:meth:`queue`) as soon as it
    lists them, into the slot of the chunk they belong to; the helper's
    :data:`COLD_THREADS` threads read them in that order,
    :data:`COLD_BLOCK` files at a time (open all of them and ask for their
    heads, then ``fstat`` + ``preadv`` + close each), and say which chunk
    each block belongs to, so reads stay
    in flight during the walk and while earlier chunks are parsed and
    committed, and the helper's threads never compete with this process for
    its GIL.  :meth:`wait` returns a chunk's heads once all are in.

    The helper (``python -S -I``) loads only the file-head reader
    (:mod:`pocketpacs.dicom.heads`) and built-in or tiny standard modules;
    memory is an anonymous ``memfd`` of ``slots`` chunk slots.  Any failure
    turns it off (:attr:`broken`): :meth:`wait` then returns None and the
    caller reads the chunk itself.

    Parameters
    ----------
    flags : int
        ``os.open`` flags for the helper.
    head : int
        Bytes read from the start of each file.
    cap : int
        Files per chunk.
    slots : int
        Chunk slots (chunks queued and not yet collected, plus one).
    """

    def __init__(self, flags: int, head: int, cap: int, slots: int):
        self.flags, self.head, self.cap, self.slots = flags, head, cap, slots
        self.slot_bytes = cap * (head + 24)
        self.broken = False
        self._proc: subprocess.Popen | None = None
        self._mfd = -1
        self._mm: mmap.mmap | None = None
        self._done: dict[int, int] = {}
        self._buf = b""

    @staticmethod
    def fits(head: int, cap: int, slots: int) -> bool:
        """Whether ``slots`` chunk slots of ``cap`` heads of ``head`` bytes fit in :data:`COLD_SHARED_MAX`."""
        return slots * cap * (head + 24) <= COLD_SHARED_MAX

    def start(self) -> bool:
        """Start the helper; False (and :attr:`broken`) when it cannot."""
        if self._proc is not None or self.broken:
            return not self.broken
        try:
            self._mfd = os.memfd_create("pocketpacs-cold", os.MFD_CLOEXEC)
            os.ftruncate(self._mfd, self.slots * self.slot_bytes)
            self._mm = mmap.mmap(self._mfd, self.slots * self.slot_bytes)
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-I", "-c", _COLD_CHILD, str(self._mfd), str(self.flags),
                 heads.__file__, str(COLD_THREADS), str(COLD_BLOCK), str(COLD_CRAWLERS)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=(self._mfd,), close_fds=True, bufsize=0)
        except (OSError, ValueError):
            self._fail()
            return False
        try:   # the paths of several chunks fit in the pipe: queue() does not wait for the helper
            import fcntl

            fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
            fcntl.fcntl(self._proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        return True

    def _offsets(self, tag: int, row: int) -> tuple[int, int, int, int]:
        base = (tag % self.slots) * self.slot_bytes
        res = base + self.cap * self.head
        return (base + row * self.head, res + 8 * row, res + 8 * (self.cap + row),
                res + 8 * (2 * self.cap + row))

    def queue(self, tag: int, row: int, paths: list[str]) -> bool:
        """Queue ``paths`` as rows ``row``... of chunk ``tag`` (chunks are
        numbered 0, 1, ...; at most ``slots - 1`` uncollected at a time)."""
        return self._request(paths, lambda raw: _COLD_REQ.pack(tag, *self._offsets(tag, row), len(paths),
                                                               self.head, len(raw)))

    def crawl(self, folders: list[str]) -> bool:
        """Have the helper list ``folders`` and every folder under them ahead
        of the walk (once per helper; the listings are not kept: the walk then
        finds the folders in the page cache)."""
        return self._request(folders, lambda raw: _COLD_REQ.pack(-1, 0, 0, 0, 0, len(folders), 0, len(raw)))

    def _request(self, names: list[str], header: Callable[[bytes], bytes]) -> bool:
        """Send the helper one request: ``header(raw)`` then ``names`` NUL-joined
        (``raw``); False, and the helper off, when it cannot be sent."""
        if self.broken or not names:
            return False
        if self._proc is None and not self.start():
            return False
        try:
            raw = "\0".join(names).encode(sys.getfilesystemencoding(), "surrogateescape")
            self._send(header(raw) + raw)
        except (OSError, ValueError):
            self._fail()
            return False
        return True

    def _send(self, data: bytes) -> None:
        """Write all of ``data`` to the helper (an unbuffered pipe may take part of it)."""
        view = memoryview(data)
        while view:
            view = view[self._proc.stdin.write(view):]

    def ready(self, tag: int, n: int) -> bool:
        """Whether the first ``n`` rows of chunk ``tag`` are read (never waits)."""
        if self.broken or self._proc is None:
            return True   # (wait() says it failed at once)
        if self._done.get(tag, 0) >= n:
            return True
        import select

        out = self._proc.stdout
        try:
            while select.select([out], [], [], 0)[0]:
                more = out.read(1 << 16)
                if not more:
                    return True
                self._count(more)
        except (OSError, ValueError):
            return True
        return self._done.get(tag, 0) >= n

    def _count(self, more: bytes) -> None:
        buf = self._buf + more
        k = len(buf) - len(buf) % _COLD_DONE.size
        done = self._done
        for t, c in _COLD_DONE.iter_unpack(buf[:k]):
            done[t] = done.get(t, 0) + c
        self._buf = buf[k:]

    def wait(self, tag: int, n: int) -> Heads | None:
        """The heads of the first ``n`` rows of chunk ``tag`` (all queued),
        once the helper has read them; None when it failed."""
        if self.broken or self._proc is None:
            return None
        done, out = self._done, self._proc.stdout
        while done.get(tag, 0) < n:
            try:
                more = out.read(1 << 16)
            except (OSError, ValueError):
                more = b""
            if not more:
                self._fail()
                return None
            self._count(more)
        del done[tag]
        ho, go, so, to = self._offsets(tag, 0)
        mm = self._mm
        return Heads(np.frombuffer(mm, dtype=np.uint8, count=n * self.head, offset=ho).copy(), self.head,
                     np.frombuffer(mm, dtype="<i8", count=n, offset=go).astype(np.int64),
                     np.frombuffer(mm, dtype="<i8", count=n, offset=so).astype(np.int64),
                     np.frombuffer(mm, dtype="<i8", count=n, offset=to).astype(np.int64))

    def close(self, cancel: bool = False) -> None:
        """Stop the helper (``cancel``: at once, dropping the reads queued) and free the memory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if cancel:
                try:
                    proc.kill()
                except OSError:
                    pass
            _close_pipes(proc)
            threading.Thread(target=_reap, args=(proc,), name="pocketpacs-coldreads-reap", daemon=True).start()
        _release(self._mm, self._mfd)
        self._mm, self._mfd = None, -1

    def _fail(self) -> None:
        self.broken = True
        try:
            self.close(cancel=True)
        except Exception:
            pass


__all__ = ["ColdReads", "COLD_SHARED_MAX", "COLD_THREADS", "COLD_BLOCK", "COLD_CRAWLERS"]
