"""Reading file heads in a helper process while the importer parses and commits.

An import spends about a third of its time in the ``open`` / ``fstat`` /
``preadv`` / ``close`` of every new file, and the interpreter holds the GIL
between those system calls, so a reader *thread* only slows the committing
thread down (measured).  A small helper process has its own interpreter: it
reads the heads of the next chunk into shared memory while this process
parses and commits the current one.

* The helper is ``python -S -I -c <script>``: only ``os``, ``sys``, ``mmap``
  and ``struct``, no NumPy, no PocketPACS package: it loads the one file-head
  reader, :mod:`pocketpacs.dicom.heads`, and :mod:`pocketpacs.archive.deepread`
  (both standard library only) by their paths (it starts in about 20 ms,
  during the walk).
* On a cold disk the helper keeps many reads in flight:
  :class:`~pocketpacs.archive.deepread.DeepReader` reads in the helper's
  main thread while the heads are in the page cache and hands the rest of
  the chunk to 32 threads (within the helper, writing into the same shared
  slot) at the first one that is not.
* Shared memory is an anonymous ``memfd`` passed to the helper by descriptor:
  no file exists anywhere (Load from CD/USB leaves no trace).
* Paths go down a pipe, per-file results (bytes read, size, mtime, or a
  negative code) come back up another; the helper writes nothing else.
* Any failure (no ``memfd_create``, the helper dies, a short answer) turns
  the read-ahead off for the rest of the import: the chunk is read in
  process as before.  Results never depend on it, only speed.

On a cold disk the import uses :class:`ColdReads` instead: a helper of the
same kind that lists the folders ahead of the walk and reads the heads of
each folder's files as the walk hands them over (8 threads, each opening 16
files and asking the kernel for their heads before reading the first),
writing them into the slot of their chunk, so that reads never wait for a
chunk to end.

Linux only (``os.memfd_create``); elsewhere :func:`available` is False.
"""
from __future__ import annotations

from collections.abc import Callable
import mmap
import os
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass

import numpy as np

from ..dicom import heads
from . import deepread

#: Largest shared buffer (both slots); chunks that would need more are read in process.
MAX_SHARED = 64 << 20

_REQ = struct.Struct("<qqqqq")   # slot offset, n files, head size, path bytes, mapping size

_CHILD = r"""
import mmap, struct, sys
from importlib.util import module_from_spec, spec_from_file_location
def load(name, path):
    spec = spec_from_file_location(name, path)
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
heads = load("heads", sys.argv[3])
reader = load("deepread", sys.argv[4]).DeepReader(heads)
REQ = struct.Struct("<qqqqq")
mfd, flags = int(sys.argv[1]), int(sys.argv[2])
rin, wout = sys.stdin.buffer, sys.stdout.buffer
mm = None
mv = None
size = 0
while True:
    hdr = rin.read(REQ.size)
    if len(hdr) < REQ.size:
        break
    base, n, head, plen, total = REQ.unpack(hdr)
    paths = rin.read(plen).split(b"\0")
    if total != size:
        if mv is not None:
            mv.release()
            mm.close()
        mm = mmap.mmap(mfd, total)
        mv = memoryview(mm)
        size = total
    got, sizes, mtimes = reader.read(paths, mv[base:base + n * head], head, True, flags)
    wout.write(struct.pack("<%dq" % (3 * n), *got, *sizes, *mtimes))
    wout.flush()
"""


def available() -> bool:
    """Whether a read-ahead helper can run here (Linux: ``memfd_create``, ``preadv``)."""
    return (sys.platform.startswith("linux") and hasattr(os, "memfd_create")
            and hasattr(os, "preadv") and bool(sys.executable)
            and not getattr(sys, "frozen", False))   # a frozen app's executable is the app


@dataclass
class Heads:
    """File heads read ahead, in the layout :func:`pocketpacs.dicom.headers.parse_files` reads into.

    ``buf[i * head:(i + 1) * head]`` holds file *i*'s first bytes; ``got`` the
    bytes read or a negative code (``heads.OPEN_FAILED``, ``NOT_REGULAR``,
    ``READ_FAILED``); ``size`` / ``mtime_ns`` what ``fstat`` said.
    """

    buf: np.ndarray
    head: int
    got: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray


class ReadAhead:
    """One helper process with two shared slots (one read while the other is used).

    Parameters
    ----------
    flags : int
        ``os.open`` flags for the helper.
    """

    def __init__(self, flags: int):
        self.flags = flags
        self.broken = False
        self._proc: subprocess.Popen | None = None
        self._mfd = -1
        self._mm: mmap.mmap | None = None
        self._size = 0
        self._slot = 0
        self._pending: tuple[int, int, int] | None = None   # (offset, n, head)

    # -- life cycle -------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """The helper process has been started (and not closed)."""
        return self._proc is not None

    def start(self) -> bool:
        """Start the helper (it takes about 20 ms to be ready, on the other core);
        False when it cannot start (the read-ahead is then off)."""
        if self._proc is not None or self.broken:
            return not self.broken
        try:
            self._mfd = os.memfd_create("pocketpacs-heads", os.MFD_CLOEXEC)
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-I", "-c", _CHILD, str(self._mfd), str(self.flags),
                 heads.__file__, deepread.__file__],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                pass_fds=(self._mfd,), close_fds=True)
        except (OSError, ValueError):
            self._fail()
            return False
        try:  # a chunk's paths fit in the pipe: submit() does not wait for the helper
            import fcntl

            fcntl.fcntl(self._proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        return True

    def _ensure_size(self, total: int) -> None:
        if total <= self._size:
            return
        if self._mm is not None:
            self._mm.close()
        os.ftruncate(self._mfd, total)
        self._mm = mmap.mmap(self._mfd, total)
        self._size = total

    def close(self, wait: bool = False) -> None:
        """Stop the helper (it ends when its input closes) and free the memory.

        The helper's exit (about 10 ms) is waited for by a daemon thread
        unless ``wait``; one that does not end within 5 s is killed.
        """
        proc, self._proc = self._proc, None
        self._pending = None
        if proc is not None:
            for f in (proc.stdin, proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass
            if wait:
                _reap(proc)
            else:
                threading.Thread(target=_reap, args=(proc,), name="pocketpacs-readahead-reap",
                                 daemon=True).start()
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._mfd >= 0:
            os.close(self._mfd)
            self._mfd = -1

    # -- one chunk at a time ----------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A chunk has been submitted and not collected yet."""
        return self._pending is not None

    def submit(self, paths: list[str], head: int) -> bool:
        """Ask the helper to read ``head`` bytes of every path; False when it cannot."""
        if self.broken or self._pending is not None or not paths:
            return False
        n = len(paths)
        slot_bytes = n * head
        if 2 * slot_bytes > MAX_SHARED:
            return False
        try:
            if self._proc is None and not self.start():
                return False
            raw = "\0".join(paths).encode(sys.getfilesystemencoding(), "surrogateescape")
            need = 2 * max(slot_bytes, self._size // 2)
            self._ensure_size(need)
            off = self._slot * (self._size // 2)
            self._proc.stdin.write(_REQ.pack(off, n, head, len(raw), self._size) + raw)
            self._proc.stdin.flush()
        except (OSError, ValueError):
            self._fail()
            return False
        self._pending = (off, n, head)
        self._slot ^= 1
        return True

    def collect(self) -> Heads | None:
        """Wait for the submitted chunk; None when the helper failed (read it in process)."""
        if self._pending is None:
            return None
        off, n, head = self._pending
        self._pending = None
        try:
            data = self._proc.stdout.read(24 * n)
        except (OSError, ValueError):
            data = b""
        if len(data) != 24 * n:
            self._fail()
            return None
        res = np.frombuffer(data, dtype="<i8").reshape(3, n)   # got, sizes, mtimes
        # a copy: the slot is reused two chunks later, while the batch may live on
        buf = np.frombuffer(self._mm, dtype=np.uint8, count=n * head, offset=off).copy()
        return Heads(buf, head, res[0].copy(), res[1].copy(), res[2].copy())

    def _fail(self) -> None:
        self.broken = True
        try:
            self.close()
        except Exception:
            pass


_COLD_CHILD = r"""
import mmap, os, struct, sys, _queue, _thread
heads = {"__name__": "heads"}
with open(sys.argv[3], "rb") as f:
    exec(compile(f.read(), sys.argv[3], "exec"), heads)
OPEN_FAILED, NOT_REGULAR, FAILED = heads["OPEN_FAILED"], heads["NOT_REGULAR"], heads["READ_FAILED"]
mfd, flags, depth, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[4]), int(sys.argv[5])
WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)
def read_heads(paths, view, head):
    # read_heads of pocketpacs.dicom.heads, with every file of the block open
    # and its head asked for (fadvise WILLNEED: the reads go to the disk
    # together) before the first is read
    k = len(paths)
    got, size, mtime, fds = [0] * k, [0] * k, [0] * k, [-1] * k
    for i in range(k):
        try:
            fds[i] = os.open(paths[i], flags)
        except OSError:
            got[i] = OPEN_FAILED
            continue
        if WILLNEED is not None:
            try:
                os.posix_fadvise(fds[i], 0, head, WILLNEED)
            except OSError:
                pass
    for i in range(k):
        fd = fds[i]
        if fd < 0:
            continue
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o170000 != 0o100000:
                got[i] = NOT_REGULAR
                continue
            got[i] = os.preadv(fd, (view[i * head:(i + 1) * head],), 0)
            size[i], mtime[i] = st.st_size, st.st_mtime_ns
        except OSError:
            got[i] = FAILED
        finally:
            os.close(fd)
    return got, size, mtime
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
                got, size, mtime = read_heads(paths, mv[ho:ho + k * head], head)
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
            for _ in range(depth):
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
            for _ in range(depth):
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
#: Threads of the :class:`ColdReads` helper, and files each opens (and asks
#: the kernel for, ``posix_fadvise(WILLNEED)``) before reading the first:
#: up to ``COLD_THREADS * COLD_BLOCK`` reads in flight.
COLD_THREADS = 8
COLD_BLOCK = 16

_COLD_REQ = struct.Struct("<qqqqqqqq")   # tag, heads / got / size / mtime offsets, n, head, path bytes
_COLD_DONE = struct.Struct("<qq")        # tag, files read


class ColdReads:
    """File heads of a cold import read by a helper process, folder by folder.

    The walk queues each folder's new files (:meth:`queue`) as soon as it
    lists them, into the slot of the chunk they belong to; the helper's
    :data:`~pocketpacs.archive.deepread.DEPTH` threads read them in that
    order (open + ``fstat`` + ``preadv`` + close, :data:`deepread.BLOCK`
    files at a time) and say which chunk each block belongs to, so reads stay
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
                 heads.__file__, str(COLD_THREADS), str(COLD_BLOCK)],
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
            for f in (proc.stdin, proc.stdout):
                try:
                    if f:
                        f.close()
                except OSError:
                    pass
            threading.Thread(target=_reap, args=(proc,), name="pocketpacs-coldreads-reap", daemon=True).start()
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


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


__all__ = ["ReadAhead", "ColdReads", "Heads", "available", "MAX_SHARED", "COLD_SHARED_MAX"]
