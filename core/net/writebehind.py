"""Received instances written by a thread of their own, while the next one arrives.

A DIMSE retrieve is a ping-pong: the peer sends one C-STORE sub-operation and
waits for our answer before it sends the next.  Written in the
``EVT_C_STORE`` handler, each file's write (a 0.5 MB CT slice: about half a
millisecond of kernel copying) lies between the instance's last byte and our
answer, and the peer and pynetdicom's reader wait through it.
:class:`WriteBehind` takes the instance's bytes instead and writes them
(:meth:`.incoming.ReceivedStore.write`: atomic as ever) in its thread, which
holds no lock of Python's during the write itself, so the copy overlaps the
next transfer.  At most :data:`MAX_PENDING_BYTES` wait (the handler blocks
beyond that).  A write that fails is reported to ``on_error`` (the retrieve
lists that instance as failed, a retry fetches it); once a disk is full the
handler answers failure to what comes next (see ``refuse``).  Leaving the
``with`` block writes what is queued and ends the thread, so every file
answered for is whole in the store, or its failure known, before the store is
indexed for the last time.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

#: Bytes of received instances that may wait for their write (the handler blocks beyond it).
MAX_PENDING_BYTES = 64 * 1024 * 1024


class WriteBehind:
    """A queue of received instances and the thread that writes them.

    Parameters
    ----------
    write : callable
        ``write(data, series_uid, sop_uid)`` -> path; raises ``OSError``
        when the file cannot be written.
    on_written : callable
        ``on_written(sop_uid, path)``, in the writer thread, after each write.
    on_error : callable
        ``on_error(sop_uid, exc)``, in the writer thread, when a write failed.
    max_pending : int
        Bytes that may wait (:data:`MAX_PENDING_BYTES`).
    """

    def __init__(self, write: Callable[[Any, str, str], Any], on_written: Callable[[str, Any], None],
                 on_error: Callable[[str, BaseException], None], max_pending: int = MAX_PENDING_BYTES):
        self._write, self._on_written, self._on_error = write, on_written, on_error
        self.max_pending = max_pending
        self._queue: deque[tuple[Any, str, str]] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        #: An exception raised by ``on_written`` or ``on_error`` (the writes go on; the caller reports it).
        self.callback_error: BaseException | None = None

    def __enter__(self) -> "WriteBehind":
        self._thread = threading.Thread(target=self._loop, name="pocketpacs-writer", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def submit(self, data: Any, series_uid: str, sop_uid: str) -> None:
        """Queue one instance's Part-10 bytes (blocks while too many bytes wait)."""
        with self._cond:
            while self._queue and self._pending + len(data) > self.max_pending:
                self._cond.wait()
            self._queue.append((data, series_uid, sop_uid))
            self._pending += len(data)
            self._cond.notify_all()

    def close(self) -> None:
        """Write what is queued, then end the thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                data, se, sop = self._queue[0]
            try:
                try:
                    path = self._write(data, se, sop)
                except Exception as e:  # OSError (a full disk...) or anything else: said, never lost
                    self._on_error(sop, e)
                else:
                    self._on_written(sop, path)
            except BaseException as e:  # a callback's own failure (a progress callback that raised)
                self.callback_error = self.callback_error or e
            finally:
                with self._cond:
                    self._queue.popleft()
                    self._pending -= len(data)
                    self._cond.notify_all()
