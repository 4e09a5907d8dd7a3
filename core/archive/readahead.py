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

On a cold disk the import uses
:class:`~pocketpacs.archive.coldreads.ColdReads` instead, a helper of the
same kind that reads folder by folder as the walk lists them.

Linux only (``os.memfd_create``); elsewhere :func:`available` is False.
"""
from __future__ import annotations

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
            _close_pipes(proc)
            if wait:
                _reap(proc)
            else:
                threading.Thread(target=_reap, args=(proc,), name="pocketpacs-readahead-reap",
                                 daemon=True).start()
        _release(self._mm, self._mfd)
        self._mm, self._mfd = None, -1

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


def _close_pipes(proc: subprocess.Popen) -> None:
    """Close this end of a helper's input and output (it ends when its input closes)."""
    for f in (proc.stdin, proc.stdout):
        try:
            if f:
                f.close()
        except OSError:
            pass


def _release(mm: mmap.mmap | None, mfd: int) -> None:
    """Unmap a helper's shared memory and close its ``memfd`` (which frees it)."""
    if mm is not None:
        mm.close()
    if mfd >= 0:
        os.close(mfd)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


__all__ = ["ReadAhead", "Heads", "available", "MAX_SHARED"]
