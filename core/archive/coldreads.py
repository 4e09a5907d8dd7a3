"""The cold import's reader: a forked helper that lists folders and reads file heads.

On a cold disk every folder listing and every file head is a disk request,
and one thread waits for each in turn.  :class:`ColdReads` keeps many in
flight from a helper process, so that its threads never compete with the
importer for the interpreter's lock:

* The helper is *forked* from the importing process: a fresh interpreter
  would first read its own start-up files from the same cold disk (measured
  75-240 ms before it could issue a read); a fork has everything loaded and
  runs at once.  It runs only :func:`_helper` (``os`` calls, ``struct``,
  built-in queues and threads), closes every descriptor but its own three,
  resets the signals and leaves with ``os._exit``.
* It lists the folders it is given and every folder below, the last found
  first as the walk takes them (8 threads), and on a first import asks the
  disk for the first bytes of each listed folder's regular files at once
  (``posix_fadvise(WILLNEED)``: the read starts, nothing waits), at most
  :data:`COLD_PREFETCH` files ahead of those the walk has queued.
* The walk queues each folder's new files (:meth:`ColdReads.queue`) into
  the slot of the chunk they belong to, in an anonymous ``memfd`` shared
  with the helper; its 8 threads read them (open, ``fstat``, ``preadv``,
  close; 16 files opened and asked for before the first is read) and say
  which chunk each block belongs to.  :meth:`ColdReads.wait` returns a
  chunk's heads once all are in.
* Paths go down a pipe, counts come back up another; the helper writes
  nothing else anywhere.  Any failure turns it off (:attr:`ColdReads.broken`):
  the caller then reads the chunk itself.  Results never depend on it.

Linux only (``memfd_create``, ``fork``); see :func:`pocketpacs.archive.readahead.available`.
"""
from __future__ import annotations

import mmap
import os
import signal
import struct
import sys
import threading
import time
import warnings
from collections.abc import Callable

import numpy as np

from ..dicom import heads as head_reader
from .readahead import Heads

#: Largest shared buffer of :class:`ColdReads` (all its chunk slots).
COLD_SHARED_MAX = 128 << 20
#: Threads of the helper, and files each opens (and asks the kernel for,
#: ``posix_fadvise(WILLNEED)``) before reading the first: up to
#: ``COLD_THREADS * COLD_BLOCK`` reads in flight.
COLD_THREADS = 8
COLD_BLOCK = 16
#: Files of the folders the helper lists ahead of the walk whose heads it
#: asks the disk for before the walk queues them (a first import): 128 MB of
#: page cache at 4 KB a head.
COLD_PREFETCH = 32768

_REQ = struct.Struct("<qqqqqqqq")   # tag, heads / got / size / mtime offsets, n, head, path bytes
_DONE = struct.Struct("<qq")        # tag, files read
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


class ColdReads:
    """File heads of a cold import read by a forked helper, folder by folder.

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
        self._proc: _Child | None = None
        self._mfd = -1
        self._mm: mmap.mmap | None = None
        self._done: dict[int, int] = {}
        self._buf = b""

    @staticmethod
    def fits(head: int, cap: int, slots: int) -> bool:
        """Whether ``slots`` chunk slots of ``cap`` heads of ``head`` bytes fit in :data:`COLD_SHARED_MAX`."""
        return slots * cap * (head + 24) <= COLD_SHARED_MAX

    def start(self) -> bool:
        """Fork the helper; False (and :attr:`broken`) when it cannot start."""
        if self._proc is not None or self.broken:
            return not self.broken
        try:
            self._mfd = os.memfd_create("pocketpacs-cold", os.MFD_CLOEXEC)
            os.ftruncate(self._mfd, self.slots * self.slot_bytes)
            self._mm = mmap.mmap(self._mfd, self.slots * self.slot_bytes)
            self._proc = _Child.fork(self._mfd, (self.flags, COLD_THREADS, COLD_BLOCK, COLD_PREFETCH))
        except (OSError, ValueError):
            self._fail()
            return False
        return True

    def _offsets(self, tag: int, row: int) -> tuple[int, int, int, int]:
        base = (tag % self.slots) * self.slot_bytes
        res = base + self.cap * self.head
        return (base + row * self.head, res + 8 * row, res + 8 * (self.cap + row),
                res + 8 * (2 * self.cap + row))

    def queue(self, tag: int, row: int, paths: list[str]) -> bool:
        """Queue ``paths`` as rows ``row``... of chunk ``tag`` (chunks are
        numbered 0, 1, ...; at most ``slots - 1`` uncollected at a time)."""
        return self._request(paths, lambda raw: _REQ.pack(tag, *self._offsets(tag, row), len(paths),
                                                          self.head, len(raw)))

    def crawl(self, folders: list[str], prefetch: bool = False) -> bool:
        """Have the helper list ``folders`` and every folder under them ahead
        of the walk, the last listed first as the walk takes them (once per
        helper; the listings are not kept: the walk then finds the folders in
        the page cache).

        With ``prefetch`` (a first import: every file is new) the helper also
        asks the disk for the heads of each listed folder's regular files
        (``posix_fadvise(WILLNEED)``: many reads in flight, none waited for),
        at most :data:`COLD_PREFETCH` files ahead of those queued, so that
        the walk and :meth:`queue` find them in the page cache.
        """
        head = self.head if prefetch else 0
        return self._request(folders, lambda raw: _REQ.pack(-1, 0, 0, 0, 0, len(folders), head, len(raw)))

    def consumed(self, n: int) -> bool:
        """Say that ``n`` more files of those the helper asked the disk for
        were read elsewhere (its requests stay at most :data:`COLD_PREFETCH`
        files ahead of those queued or consumed)."""
        if self.broken or self._proc is None or n <= 0:
            return False
        try:
            self._send(_REQ.pack(-2, 0, 0, 0, 0, n, 0, 0))
        except (OSError, ValueError):
            self._fail()
            return False
        return True

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
        """Write all of ``data`` to the helper (a pipe may take part of it)."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._proc.to_child, view):]

    def ready(self, tag: int, n: int) -> bool:
        """Whether the first ``n`` rows of chunk ``tag`` are read (never waits)."""
        if self.broken or self._proc is None:
            return True   # (wait() says it failed at once)
        if self._done.get(tag, 0) >= n:
            return True
        import select

        fd = self._proc.from_child
        try:
            while select.select([fd], [], [], 0)[0]:
                more = os.read(fd, 1 << 16)
                if not more:
                    return True
                self._count(more)
        except (OSError, ValueError):
            return True
        return self._done.get(tag, 0) >= n

    def _count(self, more: bytes) -> None:
        buf = self._buf + more
        k = len(buf) - len(buf) % _DONE.size
        done = self._done
        for t, c in _DONE.iter_unpack(buf[:k]):
            done[t] = done.get(t, 0) + c
        self._buf = buf[k:]

    def wait(self, tag: int, n: int) -> Heads | None:
        """The heads of the first ``n`` rows of chunk ``tag`` (all queued),
        once the helper has read them; None when it failed."""
        if self.broken or self._proc is None:
            return None
        done, fd = self._done, self._proc.from_child
        while done.get(tag, 0) < n:
            try:
                more = os.read(fd, 1 << 16)
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
                proc.kill()
            proc.close_pipes()
            threading.Thread(target=proc.reap, name="pocketpacs-coldreads-reap", daemon=True).start()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._mfd >= 0:
            os.close(self._mfd)
            self._mfd = -1

    def _fail(self) -> None:
        self.broken = True
        try:
            self.close(cancel=True)
        except Exception:
            pass


class _Child:
    """The forked helper: its process id and the two pipe ends this process holds."""

    def __init__(self, pid: int, to_child: int, from_child: int):
        self.pid, self.to_child, self.from_child = pid, to_child, from_child
        self._status: int | None = None

    @classmethod
    def fork(cls, mfd: int, args: tuple[int, int, int, int]) -> _Child:
        """Fork a helper running :func:`_helper` over the shared memory ``mfd``."""
        r_in, w_in = os.pipe()     # requests: this process -> helper
        r_out, w_out = os.pipe()   # counts: helper -> this process
        try:
            with warnings.catch_warnings():   # (the helper never touches the other threads' state)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:
            for fd in (r_in, w_in, r_out, w_out):
                os.close(fd)
            raise
        if pid == 0:   # the helper
            code = 1
            try:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                    signal.signal(sig, signal.SIG_DFL)
                keep = sorted({mfd, r_in, w_out})
                os.closerange(3, keep[0])
                for lo, hi in zip(keep, keep[1:] + [os.sysconf("SC_OPEN_MAX")]):
                    os.closerange(lo + 1, hi)
                _helper(mfd, r_in, w_out, *args)
                code = 0
            finally:
                os._exit(code)
        os.close(r_in)
        os.close(w_out)
        try:   # the paths of several chunks fit in the pipe: queue() does not wait for the helper
            import fcntl

            fcntl.fcntl(w_in, fcntl.F_SETPIPE_SZ, 1 << 20)
            fcntl.fcntl(r_out, fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        return cls(pid, w_in, r_out)

    def kill(self) -> None:
        """Kill the helper at once."""
        if self._status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the helper to end (at most ``timeout`` seconds); its exit status, or None."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._status is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if end is None else os.WNOHANG)
            except ChildProcessError:
                self._status = -1
                break
            if pid:
                self._status = status
            elif time.monotonic() >= end:
                return None
            else:
                time.sleep(0.005)
        return self._status

    def close_pipes(self) -> None:
        """Close this process's pipe ends (the helper ends when its input closes)."""
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_child = self.from_child = -1

    def reap(self) -> None:
        """Collect the helper's exit; one that does not end within 5 s is killed."""
        if self.wait(5) is None:
            self.kill()
            self.wait()


def _read_block(paths: list[bytes], view: memoryview, head: int, flags: int):
    """The heads of a block of files: every file opened and its head asked
    for (``posix_fadvise(WILLNEED)``: the reads go to the disk together)
    before the first is read; as :func:`pocketpacs.dicom.heads.read_heads`
    (bytes read or a negative code, size, mtime)."""
    k = len(paths)
    got, size, mtime, fds = [0] * k, [0] * k, [0] * k, [-1] * k
    for i in range(k):
        try:
            fds[i] = os.open(paths[i], flags)
        except OSError:
            got[i] = head_reader.OPEN_FAILED
            continue
        if _WILLNEED is not None:
            try:
                os.posix_fadvise(fds[i], 0, head, _WILLNEED)
            except OSError:
                pass
    for i in range(k):
        fd = fds[i]
        if fd < 0:
            continue
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000:
                got[i] = head_reader.NOT_REGULAR
                continue
            got[i] = os.preadv(fd, (view[i * head:(i + 1) * head],), 0)
            size[i], mtime[i] = st.st_size, st.st_mtime_ns
        except OSError:
            got[i] = head_reader.READ_FAILED
        finally:
            os.close(fd)
    return got, size, mtime


def _helper(mfd: int, rin: int, out: int, flags: int, depth: int, block: int, ahead: int) -> None:
    """The helper's life: requests from ``rin`` until it closes, counts to ``out``."""
    import _queue
    import _thread

    mm = mmap.mmap(mfd, os.fstat(mfd).st_size)
    mv = memoryview(mm)
    jobs: _queue.SimpleQueue = _queue.SimpleQueue()
    ended: _queue.SimpleQueue = _queue.SimpleQueue()
    failed = head_reader.READ_FAILED

    def work() -> None:
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                tag, paths, ho, go, so, to, head = job
                k = len(paths)
                try:
                    got, size, mtime = _read_block(paths, mv[ho:ho + k * head], head, flags)
                except BaseException:
                    got, size, mtime = [failed] * k, [0] * k, [0] * k
                fmt = "<%dq" % k
                struct.pack_into(fmt, mm, go, *got)
                struct.pack_into(fmt, mm, so, *size)
                struct.pack_into(fmt, mm, to, *mtime)
                os.write(out, _DONE.pack(tag, k))
        finally:
            ended.put(1)

    stack: list[bytes] = []   # folders to list: the last found first, as the walk
    tokens: _queue.SimpleQueue = _queue.SimpleQueue()
    lock = _thread.allocate_lock()
    crawling = [0]   # folders found and not yet listed
    fetched, queued = [0], [0]   # files asked for by the crawl; files queued by the walk

    def push(ds: list[bytes]) -> None:
        with lock:
            stack.extend(ds)
        for _ in ds:
            tokens.put(1)

    def prefetch(files: list[bytes], head: int) -> None:
        # each file's first `head` bytes asked of the disk (the read starts
        # and this goes on), at most `ahead` files ahead of the walk's queue
        while fetched[0] - queued[0] > ahead:
            time.sleep(0.002)
        for p in files:
            try:
                fd = os.open(p, flags)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, head, _WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)
        with lock:
            fetched[0] += len(files)

    def crawl(head: int) -> None:
        # folders listed (and forgotten) ahead of the walk, so that it finds
        # them in the page cache; links to folders are not followed
        while tokens.get() is not None:
            with lock:
                d = stack.pop()
            subs: list[bytes] = []
            files: list[bytes] = []
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.is_dir(follow_symlinks=False):
                            subs.append(e.path)
                        elif head and e.is_file(follow_symlinks=False):
                            files.append(e.path)
            except OSError:
                pass
            with lock:
                crawling[0] += len(subs) - 1
                end = not crawling[0]
            push(subs)
            if files:
                prefetch(files, head)
            if end:
                for _ in range(depth):
                    tokens.put(None)

    for _ in range(depth):
        _thread.start_new_thread(work, ())
    with open(rin, "rb", closefd=False) as reqs:
        while True:
            hdr = reqs.read(_REQ.size)
            if len(hdr) < _REQ.size:
                break
            tag, ho, go, so, to, n, head, plen = _REQ.unpack(hdr)
            if tag == -2:   # files read by the importer itself
                queued[0] += n
                continue
            paths = reqs.read(plen).split(b"\0")
            if tag < 0:
                if not crawling[0]:
                    crawling[0] = len(paths)
                    push(paths[::-1])
                    for _ in range(depth):
                        _thread.start_new_thread(crawl, (head if _WILLNEED is not None else 0,))
                continue
            queued[0] += n
            for lo in range(0, n, block):
                jobs.put((tag, paths[lo:lo + block], ho + lo * head, go + 8 * lo, so + 8 * lo, to + 8 * lo, head))
    for _ in range(depth):
        jobs.put(None)
    for _ in range(depth):
        ended.get()


__all__ = ["ColdReads", "COLD_SHARED_MAX", "COLD_THREADS", "COLD_BLOCK", "COLD_PREFETCH"]
