"""``pocketpacs listen``: a C-STORE and C-ECHO SCP that archives what it receives.

Instances pushed to the listener (by a modality, ``storescu``, a PACS
answering our C-MOVE) are written into the archive's store folder and
indexed while they arrive (:mod:`.incoming`).  Every storage SOP class is
accepted in any transfer syntax pynetdicom knows; with ``allow`` only those
calling AE titles may associate (others are rejected: "calling AE title not
recognised").  The listener binds to 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import errno
import ipaddress
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ..log import logger
from . import dimse
from .incoming import Indexer, ReceivedStore, event_part10, study_and_series
from .nodes import DEFAULT_CALLING_AET, DEFAULT_LISTEN_PORT, NetError, check_aet, check_port


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def check_bind(bind: str | None) -> str:
    """Return the address to listen on: ``""`` (every interface), an IPv4 or IPv6 address, or a host name.

    ``0.0.0.0`` and ``::`` mean every interface too (returned as given).

    Raises
    ------
    NetError
        When *bind* is none of these (the message says what is expected).
    """
    b = (bind or "").strip()
    if not b:
        return ""
    try:
        return str(ipaddress.ip_address(b.strip("[]")))
    except ValueError:
        pass
    if _HOST.fullmatch(b) and not b.replace(".", "").isdigit():
        return b
    raise NetError(f"bind address {bind!r}: expected an IP address (127.0.0.1, 0.0.0.0 for every interface, "
                   "::1) or a host name")


def is_loopback(bind: str) -> bool:
    """True when *bind* (checked by :func:`check_bind`) is only reachable from this computer."""
    if bind.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def exposure_warning(bind: str, port: int, allow: list[str] | None) -> str | None:
    """The warning to show when a listener on *bind* accepts associations from the network.

    Parameters
    ----------
    bind : str
        The address listened on (``""``: every interface).
    port : int
    allow : list of str or None
        The calling AE titles allowed (None or empty: any).

    Returns
    -------
    str or None
        None for a loopback address (only this computer can connect).
    """
    if bind and is_loopback(bind):
        return None
    where = "every interface" if bind in ("", "0.0.0.0", "::") else bind
    who = (f"only the calling AE titles {', '.join(allow)} are accepted (an AE title is not a password)"
           if allow else "any calling AE title is accepted (no --allow list)")
    return (f"listening on {where}: other computers on the network can connect to port {port} and store "
            f"instances into this archive; {who}")


@dataclass
class ListenerStatus:
    """Counts of a running listener (read them at any time)."""
    received: int = 0
    failed: int = 0
    refused_associations: int = 0
    indexed: int = 0
    #: Received files kept apart: an archived instance has their SOP Instance UID with other content.
    conflicts: int = 0
    by_caller: dict[str, int] = field(default_factory=dict)


class Listener:
    """A running listener; :func:`listen` starts one.  ``stop()`` ends it and
    indexes what arrived last; it is also a context manager."""

    def __init__(self, archive: Any, port: int, aet: str, bind: str, allow: list[str] | None):
        from pynetdicom import evt

        self.port = 0 if port == 0 else check_port(port)
        self.aet = check_aet(aet)
        self.bind = check_bind(bind)
        self.allow = [check_aet(a, "allowed AE title") for a in allow] if allow else None
        self.status = ListenerStatus()
        self.store = ReceivedStore(archive)
        self.store.clean_incoming()
        self._lock = threading.Lock()
        self._indexer = Indexer(self.store, progress=self._indexed)
        ae = dimse.make_ae(self.aet)
        ae.network_timeout = None  # an idle peer may keep its association open
        dimse.storage_scp(ae)
        if self.allow:
            ae.require_calling_aet = self.allow
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected),
                    (evt.EVT_CONN_OPEN, dimse.on_connection)]
        self._indexer.__enter__()
        try:
            self._server = ae.start_server((self.bind, self.port), block=False, evt_handlers=handlers)
        except OSError as e:
            self._indexer.__exit__(None, None, None)
            why = (e.strerror or str(e)).lower()
            hint = ("another program (another `pocketpacs listen`?) may use this port" if e.errno == errno.EADDRINUSE
                    else f"is {self.bind} an address of this computer?")
            raise NetError(f"cannot listen on {self.bind or '0.0.0.0'}:{self.port} ({why}): {hint}") from None
        self.port = self._server.server_address[1]
        #: What the listener exposes (None on a loopback address): see :func:`exposure_warning`.
        self.warning = exposure_warning(self.bind, self.port, self.allow)

    def _indexed(self, n: int) -> None:
        self.status.indexed = n
        self.status.conflicts = len(self._indexer.conflicts)

    def _on_rejected(self, event: Any) -> None:
        with self._lock:
            self.status.refused_associations += 1
        logger.info("an association was refused (calling AE title not allowed)")

    def _on_store(self, event: Any) -> int:
        try:
            study, series = study_and_series(event)
            sop = str(event.request.AffectedSOPInstanceUID)
            data = event_part10(event)
        except Exception as e:  # an instance we cannot read: refuse it, say so
            with self._lock:
                self.status.failed += 1
            logger.info("a received instance could not be read (%s)", type(e).__name__)
            return 0xC210  # cannot understand
        if not (study and series and sop):
            with self._lock:
                self.status.failed += 1
            return 0xC211
        try:
            self.store.write(data, study, series, sop)
        except OSError as e:
            with self._lock:
                self.status.failed += 1
            logger.warning("a received instance could not be written (%s)", e.strerror or type(e).__name__)
            return 0xA700
        caller = str(event.assoc.requestor.ae_title).strip()
        with self._lock:
            self.status.received += 1
            self.status.by_caller[caller] = self.status.by_caller.get(caller, 0) + 1
        return 0x0000

    def index_now(self) -> int:
        """Index what arrived so far (the thread does it twice a second); return the count indexed."""
        self._indexer.index_now()
        return self._indexer.indexed

    def stop(self) -> None:
        """Stop accepting associations and index what arrived."""
        self._server.shutdown()
        self._indexer.__exit__(None, None, None)
        self._indexed(self._indexer.indexed)

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def listen(archive: Any, port: int = DEFAULT_LISTEN_PORT, aet: str = DEFAULT_CALLING_AET,
           bind: str = "127.0.0.1", allow: list[str] | None = None) -> Listener:
    """Start a C-STORE/C-ECHO listener archiving what it receives (in background threads).

    Parameters
    ----------
    archive : Archive
        Opened for writing; received files go to its store folder.
    port : int
        0 picks a free port (``listener.port`` says which).
    aet : str
        Our AE title.
    bind : str
        The address to listen on (``""`` or ``0.0.0.0``: every interface).
    allow : list of str, optional
        Calling AE titles allowed to associate (default: any).

    Returns
    -------
    Listener
        Running; ``stop()`` ends it.

    Raises
    ------
    NetError
        A bad AE title or port, or the port cannot be used.
    """
    if archive.readonly:
        raise NetError("the archive is open read-only: the listener cannot store what it receives")
    return Listener(archive, port, aet, bind, allow)
