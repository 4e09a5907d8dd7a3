"""pynetdicom set up for bulk transfers: no debug-log work, whole PDUs per read.

pynetdicom's default ``LOG_HANDLER_LEVEL`` ("standard") binds logging
handlers to every PDU and DIMSE message: each received C-STORE copies its
whole data set (``data_set.getvalue()``, only to say "Present") and formats
its command set into text, whether or not a logger prints it.  Its socket
reads a PDU in 4 KiB ``recv`` calls appended to a ``bytearray`` (a 16 KiB
P-DATA PDU: five reads and copies).  :func:`apply` turns that logging off
unless the ``pocketpacs`` logger is at DEBUG (then pynetdicom's own log is
kept for diagnosis), and reads each PDU into one buffer of its full length
with ``recv_into``.  No PDU or DIMSE handling is changed.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

_lock = threading.Lock()
_patched = False


def _recv(self: Any, nr_bytes: int) -> bytearray:
    """``AssociationSocket.recv``: *nr_bytes* read into one buffer (shorter when the peer closed)."""
    sock = self.socket
    buf = bytearray(nr_bytes)
    view = memoryview(buf)
    got = 0
    while got < nr_bytes:
        n = sock.recv_into(view[got:], nr_bytes - got)
        if not n:  # the connection was closed: what arrived so far, as pynetdicom does
            del view
            del buf[got:]
            return buf
        got += n
    return buf


def apply() -> None:
    """Set pynetdicom up for PocketPACS (idempotent; call before creating an AE).

    - ``_config.LOG_HANDLER_LEVEL = "none"`` unless the ``pocketpacs``
      logger is enabled for DEBUG;
    - the ``pynetdicom`` logger at WARNING when nobody set its level;
    - ``AssociationSocket.recv`` reads a PDU with ``recv_into`` into one buffer.
    """
    global _patched
    from pynetdicom import _config
    from pynetdicom import transport

    debug = logging.getLogger("pocketpacs").isEnabledFor(logging.DEBUG)
    _config.LOG_HANDLER_LEVEL = "standard" if debug else "none"
    pn = logging.getLogger("pynetdicom")
    if pn.level == logging.NOTSET and not debug:
        pn.setLevel(logging.WARNING)
    with _lock:
        if not _patched:
            transport.AssociationSocket.recv = _recv  # type: ignore[method-assign]
            _patched = True
