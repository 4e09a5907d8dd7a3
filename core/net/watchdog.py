"""A time-out that counts silence, not message time, and a cancel that never waits for the peer.

pynetdicom's own time-outs count the time until a whole DIMSE message has
arrived (``dimse_timeout``) or until a PDU has (``network_timeout``): a large
instance coming slowly over a thin link is cut off although its bytes keep
coming, and a cancel is seen only when the next message arrives.
:class:`Watchdog` replaces both for the associations it watches (their own
time-outs are turned off): a thread looks five times a second at the bytes
the kernel has received and seen acknowledged on each socket (Linux
``TCP_INFO``; elsewhere the PDUs sent and received), and when none moved for
``timeout`` seconds, or when ``cancel`` is set, it aborts the associations:
an A-ABORT, then the socket shut down (a peer that stalled in the middle of a
PDU would otherwise keep pynetdicom's reader waiting), and any caller waiting
for a DIMSE message is woken.  :meth:`Watchdog.problem` then says why.

:class:`SocketWatch` does the same for HTTP (DICOMweb through requests, whose
read time-out counts only the wait for the server's next bytes: an upload
that the server keeps taking, slowly, sat in the socket's send buffer while
that time-out ran): it watches the sockets of the requests made while it is
:meth:`~SocketWatch.waiting`, and shuts them down after ``timeout`` seconds
in which no byte moved either way, or when ``cancel`` is set.
"""
from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

#: Seconds between two looks at the sockets.
POLL = 0.2
#: Seconds an aborted association gets to end by itself before its socket is shut down.
ABORT_GRACE = 0.5
#: Offsets of ``tcpi_bytes_acked`` and ``tcpi_bytes_received`` in Linux's ``struct tcp_info``.
_TCP_INFO_BYTES = 120
_TCP_INFO_LEN = 136


def check_timeout(value: Any, what: str = "--timeout") -> float:
    """Return *value* as a number of seconds (more than 0, at most a day).

    Raises
    ------
    ValueError
        When *value* is not such a number (the message names *what*).
    """
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r}: expected a number of seconds") from None
    if not 0 < t <= 86400:
        raise ValueError(f"{what} {value!r}: expected more than 0 and at most 86400 seconds")
    return t


def _raw_socket(assoc: Any) -> Any:
    return getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)


def _tcp_bytes(sock: Any) -> tuple[int, int] | None:
    """(bytes acknowledged by the peer, bytes received) of a TCP socket, or None where unknown."""
    opt = getattr(socket, "TCP_INFO", None)
    if sock is None or opt is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, opt, _TCP_INFO_LEN)
    except (OSError, ValueError):
        return None
    if len(raw) < _TCP_INFO_LEN:
        return None
    return struct.unpack_from("<QQ", raw, _TCP_INFO_BYTES)


class Watchdog:
    """Aborts watched associations after *timeout* seconds of silence, or when *cancel* is set.

    Use as a context manager around the work on the associations; add each
    one with :meth:`watch` (the first may be given here).

    Parameters
    ----------
    timeout : float
        Seconds without a byte moving (either way) before the associations are aborted.
    cancel : threading.Event or callable, optional
        Aborts the associations as soon as it is set.
    assoc : pynetdicom Association, optional
        A first association to watch.
    """

    def __init__(self, timeout: float, cancel: Any = None, assoc: Any = None):
        self.timeout = float(timeout)
        self.cancel = cancel
        self.timed_out = False
        self.cancelled = False
        self._assocs: list[Any] = []
        self._state: tuple = ()
        self._pdus = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if assoc is not None:
            self.watch(assoc)

    def watch(self, assoc: Any) -> Any:
        """Watch *assoc* too (its own time-outs are turned off); return it."""
        assoc.dimse_timeout = None
        assoc.network_timeout = None
        sock = getattr(assoc.dul, "socket", None)
        if sock is not None and not getattr(sock, "_pp_counted", False):
            send, recv = sock.send, sock.recv

            def counted_send(data: Any) -> Any:
                out = send(data)
                self._pdus += 1
                return out

            def counted_recv(n: int) -> Any:
                out = recv(n)
                self._pdus += 1
                return out

            sock.send, sock.recv, sock._pp_counted = counted_send, counted_recv, True
        with self._lock:
            self._assocs.append(assoc)
            self._last = time.monotonic()
        if self._stopped_for_good():
            self._abort(assoc)
        return assoc

    def _stopped_for_good(self) -> bool:
        return self.timed_out or self.cancelled

    def __enter__(self) -> "Watchdog":
        self._thread = threading.Thread(target=self._loop, name="pocketpacs-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _moved(self) -> bool:
        """Whether a byte (or a PDU) moved on a watched association since the last look."""
        with self._lock:
            assocs = list(self._assocs)
        state = (self._pdus, *(_tcp_bytes(_raw_socket(a)) for a in assocs))
        moved = state != self._state
        self._state = state
        return moved

    def _loop(self) -> None:
        from .incoming import is_cancelled

        while not self._stop.wait(POLL):
            if is_cancelled(self.cancel):
                self.cancelled = True
            elif self._moved():
                self._last = time.monotonic()
                continue
            elif time.monotonic() - self._last >= self.timeout:
                self.timed_out = True
            else:
                continue
            with self._lock:
                assocs = list(self._assocs)
            for a in assocs:
                self._abort(a)
            # until the work ends: the association's own thread may have taken the wake-up
            # off the queue before it ended (a caller would then wait for ever)
            while not self._stop.wait(POLL):
                for a in assocs:
                    if a.dimse.msg_queue.empty():
                        a.dimse.msg_queue.put((None, None))
            return

    def _abort(self, assoc: Any) -> None:
        """A-ABORT, then the socket shut down if the association did not end; waiting callers woken."""
        try:
            if assoc.is_established:
                assoc.abort(block=False)
        except Exception:  # already ending
            pass
        end = time.monotonic() + ABORT_GRACE
        while time.monotonic() < end and assoc.dul.is_alive():
            time.sleep(0.02)
        sock = _raw_socket(assoc)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        assoc.is_established = False
        assoc.dimse.msg_queue.put((None, None))  # a send_c_* waiting for an answer returns

    def problem(self, who: str) -> str | None:
        """Why the associations were aborted (None: they were not).

        Parameters
        ----------
        who : str
            The peer, for the message (e.g. ``"remote 'pacs'"``).

        Returns
        -------
        str or None
            ``"cancelled"``, or a sentence about the time-out.
        """
        if self.cancelled:
            return "cancelled"
        if self.timed_out:
            return (f"{who}: nothing received or sent for {self.timeout:g} s (the time-out); the peer may be "
                    "stalled or the network down; run the same command again (a longer --timeout for a slow peer)")
        return None


#: Whether :class:`SocketWatch` can see bytes move (Linux ``TCP_INFO``); elsewhere a read time-out stays.
SOCKET_WATCH = sys.platform.startswith("linux") and hasattr(socket, "TCP_INFO")


class SocketWatch:
    """Shuts its sockets down after *timeout* seconds of silence while waiting, or when *cancel* is set.

    Use as a context manager around the work; register each socket with
    :meth:`add` (e.g. when an HTTP connection is made) and wrap each wait on
    the network in :meth:`waiting`: silence counts only then (the time spent
    between two requests, or handling what arrived, is ours).  A byte counts
    as moved when the peer acknowledged it or when it was received (Linux
    ``TCP_INFO``; see :data:`SOCKET_WATCH`).  Afterwards ``timed_out`` or
    ``cancelled`` says why the sockets were shut down.

    Parameters
    ----------
    timeout : float
        Seconds without a byte moving, while waiting, before the sockets are shut down.
    cancel : threading.Event or callable, optional
        Shuts the sockets down as soon as it is set.
    """

    def __init__(self, timeout: float, cancel: Any = None):
        self.timeout = float(timeout)
        self.cancel = cancel
        self.timed_out = False
        self.cancelled = False
        self._socks: list[Any] = []
        self._waiting = 0
        self._state: tuple = ()
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, sock: Any) -> None:
        """Watch *sock* too (shut down at once when the watch has fired already)."""
        with self._lock:
            self._socks.append(sock)
        if self.timed_out or self.cancelled:
            _shutdown(sock)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Count silence during this block (a request sent, an answer read)."""
        with self._lock:
            self._waiting += 1
            self._last = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def __enter__(self) -> "SocketWatch":
        if SOCKET_WATCH or self.cancel is not None:
            self._thread = threading.Thread(target=self._loop, name="pocketpacs-socketwatch", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        from .incoming import is_cancelled

        while not self._stop.wait(POLL):
            with self._lock:
                socks, waiting = list(self._socks), self._waiting
            if is_cancelled(self.cancel):
                self.cancelled = True
            elif not SOCKET_WATCH:
                continue
            else:
                state = tuple(_tcp_bytes(s) for s in socks)
                now = time.monotonic()
                if state != self._state or not waiting:
                    self._state = state
                    with self._lock:
                        self._last = now
                    continue
                with self._lock:
                    silent = now - self._last
                if silent < self.timeout:
                    continue
                self.timed_out = True
            for s in socks:
                _shutdown(s)
            return


def _shutdown(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
