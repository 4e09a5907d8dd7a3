"""pynetdicom's polling threads woken by what they wait for, not by 1 ms naps.

pynetdicom runs two threads per association that poll: the DUL reactor
(``DULServiceProvider.run_reactor``) sleeps ``_run_loop_delay`` (1 ms) each
time it finds nothing to do, and the association reactor
(``Association._run_reactor``) sleeps 1 ms per turn.  Every DIMSE message
waits for one or two of those naps, and on a loaded machine a 1 ms nap lasts
several: the transfer rate is set by the naps, not by the work.

:func:`attach` makes both threads of one association wait on what they
serve instead, with a :data:`IDLE_WAIT` time-out as a safety net: the DUL
thread waits on its TCP socket and on a wake-up socket that ``send_pdu``
pokes (an outgoing message); the association thread waits on its DIMSE
message queue and wakes when another thread asks it to pause (a
``send_c_*`` call).  It replaces the ``time`` module seen by
``pynetdicom.dul`` and ``pynetdicom.association`` with a copy whose
``sleep`` does that for the threads :func:`attach` marked and sleeps as
before for every other caller.  No PDU or DIMSE handling is changed.

It also closes a race of pynetdicom's pause hand-shake (the "30 s stall"
of issue 14).  Before each ``send_c_*`` the calling thread clears
``_reactor_checkpoint`` and waits until the association reactor says
``_is_paused``; the reactor sets ``_is_paused = True`` and then blocks in
``checkpoint.wait()``.  When the previous request ended with ``set()``, the
reactor is woken but, on a busy machine, may not run before the next
request clears the checkpoint again and reads the stale ``_is_paused``:
``threading.Event.wait`` then returns True although the event is clear
again, the reactor runs its turn and takes the peer's answer (a C-STORE-RSP)
off the DIMSE queue before ``send_c_store`` does.  The request then waits
for an answer that never comes, the peer (Orthanc) waits for our next
command, and after its ``DicomScpTimeout`` (30 s) it closes the association.
:func:`attach` gives the checkpoint of each association a ``wait`` that
checks the flag again after every wake-up and says ``_is_paused = False``
under the event's own lock, so ``clear()`` and the reactor's passage are
ordered.
"""
from __future__ import annotations

import queue
import select
import socket
import threading
import time as _time
import types
from typing import Any

#: Longest wait of a marked thread without a wake-up (seconds): the time-outs,
#: release and abort requests that come without one are seen within this.
IDLE_WAIT = 0.005

_installed = False
_lock = threading.Lock()


def _sleep(seconds: float) -> None:
    t = threading.current_thread()
    wake = getattr(t, "_pp_wake", None)
    if wake is not None:  # a DUL reactor: its socket or an outgoing message
        _dul_wait(t, wake)
        return
    cond = getattr(t, "_pp_cond", None)
    if cond is not None and seconds >= 0.001:  # an association reactor's turn
        _assoc_wait(t, cond)
        return
    _time.sleep(seconds)


def _dul_wait(dul: Any, wake: socket.socket) -> None:
    fds: list[Any] = [wake]
    sock = getattr(getattr(dul, "socket", None), "socket", None)
    try:
        if sock is not None and sock.fileno() >= 0:
            fds.append(sock)
        ready, _, _ = select.select(fds, [], [], IDLE_WAIT)
        if wake in ready:
            wake.recv(4096)
    except (OSError, ValueError):  # the socket closed meanwhile: nap as pynetdicom does
        _time.sleep(0.001)


def _assoc_wait(assoc: Any, cond: threading.Condition) -> None:
    q = assoc.dimse.msg_queue
    with cond:  # the queue's own lock: its length is read directly
        if not q.queue and assoc._reactor_checkpoint.is_set() and not assoc._kill:
            cond.wait(IDLE_WAIT)


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        import pynetdicom.association
        import pynetdicom.dul

        shim = types.ModuleType("time")
        shim.__dict__.update(_time.__dict__)
        shim.sleep = _sleep  # type: ignore[attr-defined]
        pynetdicom.dul.time = shim  # type: ignore[attr-defined]
        pynetdicom.association.time = shim  # type: ignore[attr-defined]
        _installed = True


def _gated_wait(assoc: Any, checkpoint: threading.Event) -> Any:
    """A ``wait`` for *checkpoint* that passes only while the flag is set (see the module docstring)."""
    cond = checkpoint._cond  # type: ignore[attr-defined]

    def wait(timeout: float | None = None) -> bool:
        deadline = None if timeout is None else _time.monotonic() + timeout
        with cond:
            while not checkpoint._flag:  # type: ignore[attr-defined]
                left = None if deadline is None else deadline - _time.monotonic()
                if left is not None and left <= 0:
                    return False
                cond.wait(left)
            assoc._is_paused = False  # under the lock that clear() takes: no stale "paused"
            return True

    return wait


def attach(assoc: Any) -> None:
    """Make the reactor threads of *assoc* wait on events instead of napping.

    Call it as soon as the association exists (an ``EVT_CONN_OPEN``
    handler, or after ``AE.associate``); a thread already napping finishes
    that nap first.  The wake-up sockets close with the association's
    objects.

    Parameters
    ----------
    assoc : pynetdicom.association.Association
    """
    _install()
    dul = assoc.dul
    if getattr(dul, "_pp_wake", None) is None:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        dul._pp_wake_w = w
        send_pdu = dul.send_pdu

        def send_and_wake(primitive: Any) -> None:
            send_pdu(primitive)
            try:
                w.send(b"\0")
            except OSError:  # full (it is woken anyway) or closed
                pass

        dul.send_pdu = send_and_wake
        dul._pp_wake = r
        _drop_late_data(dul.state_machine)
    if getattr(assoc, "_pp_cond", None) is None:
        cond = assoc.dimse.msg_queue.not_empty  # notified by every put
        checkpoint = assoc._reactor_checkpoint
        clear = checkpoint.clear

        def clear_and_wake() -> None:
            clear()
            with cond:
                cond.notify_all()

        checkpoint.clear = clear_and_wake
        checkpoint.wait = _gated_wait(assoc, checkpoint)
        assoc._pp_cond = cond


#: States in which the association is over: a message still queued to send is
#: dropped (Sta13: the transport is closing after an abort; Sta1: closed).
_OVER = frozenset({"Sta1", "Sta13"})


def _drop_late_data(machine: Any) -> None:
    """Drop a P-DATA request (``Evt9``) that reaches *machine* after the association ended.

    A C-STORE answered by another thread (the write-behind thread, a
    handler) while the user cancels can be queued just before the abort and
    processed just after: pynetdicom's reactor then raises
    ``InvalidEventError`` ("Evt9 for the current state Sta13") in its
    thread, which prints a traceback on the terminal.  There is nothing to
    send it to; it is taken off the outgoing queue (where the reactor only
    peeked at it) and dropped."""
    do_action = machine.do_action

    def do_action_unless_over(event: str) -> None:
        if event == "Evt9" and machine.current_state in _OVER:
            try:
                machine.dul.to_provider_queue.get(False)
            except queue.Empty:
                pass
            return
        do_action(event)

    machine.do_action = do_action_unless_over

