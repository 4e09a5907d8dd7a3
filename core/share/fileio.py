"""Reading and writing an export's files with few system calls.

:func:`_read_file` reads a file with one ``read`` of the size the archive
recorded; :func:`_prefetch` reads files ahead of the rewriting, in batches,
on an I/O thread (or in this thread through :class:`_Inline`);
:func:`_write_new` writes a new 0600 file with ``O_EXCL``/``O_NOFOLLOW`` and
one ``writev`` of the rewriter's pieces (no joined copy), removing it when the
write fails (never a half-written instance).  Used by
:func:`pocketpacs.share.export.export_dicom`.
"""
from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

#: Files read ahead of the one being rewritten.
READ_AHEAD = 16
#: Files read, or written, per task of the I/O thread (fewer hand-overs between threads).
IO_BATCH = 8


class _Inline:
    """A stand-in for the I/O thread pool that runs each call at once (``IO_THREADS = 0``)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _read_file(path: str, size: int = 0) -> bytes:
    """A file's contents with the fewest system calls: open, one read of the expected ``size``
    (the size the archive recorded; 0 when unknown), reads until the end, close."""
    fd = os.open(path, _READ_FLAGS)
    try:
        data = os.read(fd, size + 1 if size > 0 else 1 << 16)
        if data:
            more = os.read(fd, 1 << 16)
            if more:  # larger than recorded (or the size was unknown)
                chunks = [data, more]
                while more:
                    more = os.read(fd, 1 << 20)
                    chunks.append(more)
                data = b"".join(chunks)
    finally:
        os.close(fd)
    return data


def _read_all(paths: list[str], sizes: list[int] | None = None) -> list[bytes | Exception]:
    """The contents of each file, or the exception reading it raised (``sizes``: the
    expected size of each, a hint)."""
    out: list[bytes | Exception] = []
    for i, path in enumerate(paths):
        try:
            out.append(_read_file(path, sizes[i] if sizes is not None else 0))
        except Exception as e:  # reported for that file; the others go on
            out.append(e)
    return out


def _prefetch(pool: Any, paths: list[str], sizes: list[int] | None = None) -> Iterator[bytes | Exception]:
    """The contents of ``paths`` in order (or the exception reading one raised), read in
    ``pool`` IO_BATCH files per task, up to READ_AHEAD files ahead (``sizes``: the expected
    size of each file, a hint; read in this thread, one file at a time, when ``pool`` is
    :class:`_Inline`)."""
    if isinstance(pool, _Inline):
        for i, path in enumerate(paths):
            try:
                yield _read_file(path, sizes[i] if sizes is not None else 0)
            except Exception as e:  # reported for that file; the others go on
                yield e
        return
    batches = [paths[i:i + IO_BATCH] for i in range(0, len(paths), IO_BATCH)]
    size_batches = [sizes[i:i + IO_BATCH] if sizes is not None else None for i in range(0, len(paths), IO_BATCH)]
    ahead = max(1, READ_AHEAD // IO_BATCH)
    queue: collections.deque[Future[list[bytes | Exception]]] = collections.deque(
        pool.submit(_read_all, b, s) for b, s in zip(batches[:ahead], size_batches[:ahead]))
    nxt = ahead
    while queue:
        fut = queue.popleft()
        if nxt < len(batches):
            queue.append(pool.submit(_read_all, batches[nxt], size_batches[nxt]))
            nxt += 1
        yield from fut.result()


def _write_all(items: list[tuple[str, bytes]]) -> None:
    """:func:`_write_new` of each (path, data), in order."""
    for path, data in items:
        _write_new(path, data)


_WRITE_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                | getattr(os, "O_BINARY", 0))
_WRITEV = getattr(os, "writev", None)


def _write_new(path: str, data: bytes | Sequence[Any]) -> None:
    """Write a new file 0600 in a folder the export made (0700): created with ``O_EXCL`` and
    ``O_NOFOLLOW``, so nothing already there (a file, a planted link) is followed or overwritten.
    ``data``: bytes, or a list of byte buffers written in turn (one ``writev``: no joined copy);
    no fsync (an export is made again if the machine stops)."""
    fd = os.open(path, _WRITE_FLAGS, 0o600)
    try:
        if isinstance(data, list):
            total = sum(map(len, data))
            done = _WRITEV(fd, data) if _WRITEV is not None and 0 < len(data) <= 512 else 0
            if done < total:
                data = b"".join(data)[done:]
            else:
                data = b""
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(path)  # never a half-written instance
        raise
    os.close(fd)
