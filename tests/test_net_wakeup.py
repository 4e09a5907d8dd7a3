"""The pause hand-shake of pynetdicom's association reactor (issue 14, the "30 s
stall": ``pocketpacs.net.wakeup``).

Before each ``send_c_*`` the calling thread clears the reactor's checkpoint and
waits for ``_is_paused``.  A reactor woken by the previous request's ``set()``
that had not run yet when the next request cleared the checkpoint again passed
it anyway (``threading.Event.wait`` returns True once notified) and took the
peer's answer off the DIMSE queue: the request then waited for an answer that
never came until the peer (Orthanc, ``DicomScpTimeout``) dropped the
association.  Here the wake-up and the new pause are made to happen while
the reactor cannot run (the event's lock is held), over a real association
with PocketPACS's own listener: the reactor must stay paused and leave the
queued answer for the requester.
"""
from __future__ import annotations

import contextlib
import time

import pocketpacs
from pocketpacs.net import dimse, listen
from pocketpacs.net.nodes import RemoteNode


def _wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextlib.contextmanager
def _verification_association(tmp_path):
    """An association asking for Verification with PocketPACS's own listener
    (on a new archive), which is stopped afterwards."""
    from pynetdicom.sop_class import Verification

    with pocketpacs.open_archive(tmp_path / "ar") as ar:
        lst = listen(ar, port=0)
        try:
            node = RemoteNode("self", "dimse", aet=lst.aet, host="127.0.0.1", port=lst.port)
            ae = dimse.make_ae("TESTER")
            ae.add_requested_context(Verification)
            yield dimse.associate(node, ae)
        finally:
            lst.stop()


def test_a_reactor_woken_then_paused_again_leaves_the_answer_alone(tmp_path):
    from pynetdicom.dimse_primitives import C_ECHO

    with _verification_association(tmp_path) as assoc:
        try:
            assert assoc.send_c_echo().Status == 0  # the hand-shake works as such
            checkpoint = assoc._reactor_checkpoint
            checkpoint.clear()  # a requester pauses the reactor...
            _wait_for(lambda: assoc._is_paused)
            time.sleep(0.1)  # ...which now blocks in checkpoint.wait()
            answer = C_ECHO()
            answer.MessageIDBeingRespondedTo = 1
            answer.Status = 0
            with checkpoint._cond:  # the previous request's set() and the next one's clear(),
                checkpoint._flag = True  # before the reactor thread gets to run
                checkpoint._cond.notify_all()
                checkpoint._flag = False
                assoc.dimse.msg_queue.put((1, answer))  # the peer's answer to the new request
            time.sleep(0.3)  # the reactor has had every chance to run its turn
            assert assoc._is_paused
            assert assoc.dimse.msg_queue.qsize() == 1, "the reactor took the requester's answer"
            assert assoc.dimse.msg_queue.get_nowait() == (1, answer)
            checkpoint.set()
            assert assoc.send_c_echo().Status == 0  # and the association still works
        finally:
            if assoc.is_established:
                assoc.release()


def test_a_message_queued_behind_an_abort_is_dropped_without_a_traceback(tmp_path, monkeypatch):
    """A C-STORE answer queued by another thread just as the user cancels reaches
    pynetdicom's reactor after the abort (state Sta13): pynetdicom raised
    ``InvalidEventError`` in its thread (a traceback on the terminal); it is dropped."""
    import threading

    from pynetdicom.pdu_primitives import A_ABORT, P_DATA

    raised = []
    monkeypatch.setattr(threading, "excepthook", lambda args: raised.append(args.exc_value))
    with _verification_association(tmp_path) as assoc:
        abort = A_ABORT()
        abort.abort_source = 0x00
        late = P_DATA()
        late.presentation_data_value_list = [[1, b"\x03\x00"]]
        q = assoc.dul.to_provider_queue
        with q.mutex:  # both at once: the reactor takes the abort, then the late message
            q.queue.extend([abort, late])
            q.not_empty.notify()
        assoc.dul._pp_wake_w.send(b"\0")
        _wait_for(lambda: not assoc.dul.is_alive() or assoc.dul.state_machine.current_state == "Sta1")
        assoc.kill()
    assert assoc.is_aborted or not assoc.is_established
    assert not raised, raised
