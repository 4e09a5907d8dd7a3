"""pynetdicom set up for bulk transfers (issue 14, ``pocketpacs.net.tuning``): its
debug-log handlers are off unless PocketPACS logs at DEBUG, and a PDU is read
whole into one buffer over a real socket (in pieces, and short when the peer
closes, as pynetdicom's own read)."""
from __future__ import annotations

import logging
import socket
import threading

from pocketpacs.net import tuning


def test_log_handlers_follow_our_log_level():
    from pynetdicom import _config

    log = logging.getLogger("pocketpacs")
    old = log.level
    try:
        log.setLevel(logging.INFO)
        tuning.apply()
        assert _config.LOG_HANDLER_LEVEL == "none"
        log.setLevel(logging.DEBUG)
        tuning.apply()
        assert _config.LOG_HANDLER_LEVEL == "standard"
    finally:
        log.setLevel(old)
        tuning.apply()


class _Holder:
    def __init__(self, sock):
        self.socket = sock


def test_recv_reads_a_pdu_sent_in_pieces_and_stops_at_close():
    tuning.apply()
    from pynetdicom.transport import AssociationSocket

    assert AssociationSocket.recv is tuning._recv
    a, b = socket.socketpair()
    payload = bytes(range(256)) * 300  # 76,800 bytes

    def send():
        for i in range(0, len(payload), 7000):
            b.sendall(payload[i:i + 7000])
        b.close()

    t = threading.Thread(target=send)
    t.start()
    got = tuning._recv(_Holder(a), 50_000)
    assert bytes(got) == payload[:50_000]
    rest = tuning._recv(_Holder(a), 100_000)  # the peer closes after 26,800 more bytes
    t.join()
    assert bytes(rest) == payload[50_000:]
    assert bytes(tuning._recv(_Holder(a), 10)) == b""
    a.close()


def test_quick_switches_shortens_the_switch_interval_and_the_last_block_restores_it():
    import sys

    before = sys.getswitchinterval()
    with tuning.quick_switches():
        assert sys.getswitchinterval() == min(before, tuning.SWITCH_INTERVAL)
        with tuning.quick_switches():   # a second retrieve overlapping the first
            pass
        assert sys.getswitchinterval() == min(before, tuning.SWITCH_INTERVAL)
    assert sys.getswitchinterval() == before
