"""DIMSE with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE and C-STORE as an SCU.

Every association goes through :func:`associate`, which first checks that
the port answers (a refused or unreachable port is said as such, not as a
vague abort) and turns a rejection into a message with the reason (unknown
called or calling AE title).  Retrieves propose one presentation context per
(SOP class, transfer syntax) so that the peer can send each file in its own
transfer syntax (no transcoding: pixel data arrive byte for byte), and the
received instances go to the archive's store (:mod:`.incoming`).
"""
from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydicom.dataset import Dataset

from . import tuning, wakeup
from .nodes import NetError, RemoteNode
from .watchdog import Watchdog

#: Transfer syntaxes a retrieve accepts, each in a context of its own (native first).
RETRIEVE_SYNTAXES = (
    "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
)
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
#: Presentation contexts one association may propose (PS3.8: odd ids 1..255).
MAX_CONTEXTS = 128
#: Seconds: TCP connect, association set-up, one DIMSE message, network silence.
CONNECT_TIMEOUT = 5
ACSE_TIMEOUT = 15
DIMSE_TIMEOUT = 60
NETWORK_TIMEOUT = 60

_REJECT_REASONS = {
    (1, 1): "no reason given", (1, 2): "application context name not supported",
    (1, 3): "our calling AE title is not recognised by the peer",
    (1, 7): "the called AE title is not recognised by the peer",
    (2, 1): "no reason given", (2, 2): "protocol version not supported",
    (3, 1): "the peer is temporarily congested", (3, 2): "the peer's local limit was exceeded",
}


def _who(node: RemoteNode) -> str:
    return f"remote {node.name!r} ({node.address()})"


def make_ae(calling_aet: str) -> Any:
    """A pynetdicom AE with PocketPACS's time-outs."""
    from pynetdicom import AE

    tuning.apply()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ACSE_TIMEOUT
    ae.dimse_timeout = DIMSE_TIMEOUT
    ae.network_timeout = NETWORK_TIMEOUT
    ae.connection_timeout = CONNECT_TIMEOUT
    ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs
    return ae


def check_reachable(host: str, port: int, what: str) -> None:
    """Raise :class:`NetError` saying why ``host:port`` does not accept a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except socket.timeout:
        raise NetError(f"{what}: no answer from {host}:{port} within {CONNECT_TIMEOUT} s "
                       "(a firewall, or the wrong address?)") from None
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise NetError(f"{what}: cannot connect to {host}:{port} ({reason.lower()}): is the server running and "
                       "is this its DICOM port?") from None


def nodelay(assoc: Any) -> None:
    """Turn Nagle's algorithm off on an association's socket, and wake its
    threads by events rather than 1 ms naps (:func:`.wakeup.attach`).

    DIMSE sends small PDUs (a command, then its data set) and waits for
    answers: with Nagle and delayed ACKs each exchange waits ~40 ms (C-STORE
    at about 20 instances/s, as DCMTK without ``TCP_NODELAY=1``)."""
    wakeup.attach(assoc)
    try:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def on_connection(event: Any) -> None:
    """``EVT_CONN_OPEN`` handler of our servers: :func:`nodelay` on each accepted connection."""
    nodelay(event.assoc)


def associate(node: RemoteNode, ae: Any, **kwargs: Any) -> Any:
    """Open an association with *node*; :class:`NetError` with the reason when it fails."""
    what = f"remote {node.name!r} ({node.address()})"
    check_reachable(node.host, node.port, what)
    ae.acse_timeout = min(ACSE_TIMEOUT, node.timeout)
    t0 = time.monotonic()
    # the largest PDU we take (AE.associate announces 16382 bytes unless told, whatever
    # ae.maximum_pdu_size says: a 0.5 MB instance then comes in 32 PDUs, not 4 of DCMTK's 128 KiB)
    kwargs.setdefault("max_pdu", ae.maximum_pdu_size)
    assoc = ae.associate(node.host, node.port, ae_title=node.aet, **kwargs)
    if assoc.is_established:
        nodelay(assoc)
        return assoc
    if not assoc.is_rejected and time.monotonic() - t0 >= ae.acse_timeout:
        raise NetError(f"{what}: no answer to the association request within {ae.acse_timeout:g} s (the time-out): "
                       "the peer may be stalled or overloaded; try again, or a longer --timeout")
    prim = getattr(assoc.acceptor, "primitive", None) if assoc.is_rejected else _unread_rejection(assoc)
    if assoc.is_rejected or prim is not None:
        src, diag = getattr(prim, "result_source", None), getattr(prim, "diagnostic", None)
        reason = _REJECT_REASONS.get((src, diag), f"source {src}, diagnostic {diag}")
        raise NetError(f"{what} rejected the association: {reason} (called AE {node.aet!r}, calling AE "
                       f"{node.calling_aet!r}: check both in the peer's configuration)")
    raise NetError(f"{what} ended the association before it was set up (it may refuse our calling AE "
                   f"{node.calling_aet!r}, or none of the proposed services)")


def _unread_rejection(assoc: Any) -> Any:
    """The peer's A-ASSOCIATE reject still queued for a requestor that gave up unread.

    pynetdicom races here: when the peer rejects and closes at once (Orthanc,
    DCMTK), its reactor thread can read the reject and the close before the
    requesting thread has looked whether the connection opened; that thread
    then finds it closed, aborts, and never reads the answer (about one in
    five under load).  The reject is still in the DUL's queue to the user."""
    from pynetdicom.pdu_primitives import A_ASSOCIATE

    dul = getattr(assoc, "dul", None)
    for prim in list(getattr(getattr(dul, "to_user_queue", None), "queue", ())):
        if isinstance(prim, A_ASSOCIATE) and prim.result in (0x01, 0x02):
            return prim
    return None


@contextlib.contextmanager
def _closing(assoc: Any) -> Iterator[Any]:
    """Release *assoc* after its block; abort it when the block raised (Ctrl-C, an error)."""
    try:
        yield assoc
    except BaseException:
        if assoc.is_established:
            assoc.abort()
        raise
    if assoc.is_established:
        assoc.release()


def echo(node: RemoteNode) -> None:
    """C-ECHO; :class:`NetError` when the node does not answer with success."""
    from pynetdicom.sop_class import Verification

    ae = make_ae(node.calling_aet)
    ae.add_requested_context(Verification)
    assoc = associate(node, ae)
    with _closing(assoc), Watchdog(node.timeout, None, assoc) as wd:
        st = assoc.send_c_echo()
    code = getattr(st, "Status", None)
    if code is None and wd.problem(_who(node)):
        raise NetError(wd.problem(_who(node)))
    if code != 0:
        raise NetError(f"remote {node.name!r} answered C-ECHO with status "
                       f"{'none' if code is None else f'0x{code:04X}'}")


def _find(node: RemoteNode, ident: Dataset) -> list[Dataset]:
    return _finds(node, [ident])[0]


def _finds(node: RemoteNode, idents: list[Dataset]) -> list[list[Dataset]]:
    """The answers to each C-FIND of *idents*, asked one after the other on one association."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = make_ae(node.calling_aet)
    ae.add_requested_context(FIND)
    assoc = associate(node, ae)
    outs: list[list[Dataset]] = []
    with _closing(assoc), Watchdog(node.timeout, None, assoc) as wd:
        for ident in idents:
            out: list[Dataset] = []
            outs.append(out)
            for status, answer in assoc.send_c_find(ident, FIND):
                code = getattr(status, "Status", None)
                if code is None and wd.problem(_who(node)):
                    raise NetError(f"{wd.problem(_who(node))} (during C-FIND)")
                if code is None:
                    raise NetError(f"remote {node.name!r} closed the connection during C-FIND: it may not allow "
                                   f"queries from our AE title {node.calling_aet!r} (add it to the peer's known "
                                   "modalities, e.g. Orthanc's DicomModalities), or it stopped")
                if code in (0xFF00, 0xFF01):
                    if answer is not None:
                        out.append(answer)
                elif code != 0:
                    raise NetError(f"remote {node.name!r} refused the C-FIND (status 0x{code:04X})")
    return outs


def _text(ds: Dataset, kw: str) -> str:
    v = ds.get(kw)
    if v is None:
        return ""
    return str(v).strip()


def _multi(ds: Dataset, kw: str) -> list[str]:
    v = ds.get(kw)
    if v is None:
        return []
    vals = [v] if isinstance(v, (str, bytes)) else list(v)
    return [str(m).strip() for m in vals if str(m).strip()]


def _int(ds: Dataset, kw: str) -> int | None:
    try:
        return int(str(ds.get(kw)).strip())
    except (TypeError, ValueError):
        return None


def find_studies(node: RemoteNode, keys: dict[str, str]) -> list[dict[str, Any]]:
    """C-FIND at study level with matching *keys*; one dict per study."""
    ident = Dataset()
    ident.SpecificCharacterSet = "ISO_IR 192"
    ident.QueryRetrieveLevel = "STUDY"
    for kw in ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "StudyDate",
               "ModalitiesInStudy", "StudyDescription", "AccessionNumber", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances"):
        setattr(ident, kw, keys.get(kw, ""))
    out = []
    for a in _find(node, ident):
        mods = _multi(a, "ModalitiesInStudy")
        out.append({"study_instance_uid": _text(a, "StudyInstanceUID"), "patient_name": _text(a, "PatientName"),
                    "patient_id": _text(a, "PatientID"), "birth_date": _text(a, "PatientBirthDate"),
                    "study_date": _text(a, "StudyDate"), "modalities": mods,
                    "description": _text(a, "StudyDescription"), "accession": _text(a, "AccessionNumber"),
                    "n_series": _int(a, "NumberOfStudyRelatedSeries"),
                    "n_instances": _int(a, "NumberOfStudyRelatedInstances")})
    return out


def list_instances(node: RemoteNode, study_uid: str, series_uids: Iterable[str] | None = None
                   ) -> list[tuple[str, str, str]]:
    """(series UID, SOP Instance UID, SOP Class UID) of every instance of a study
    (or of the given series): C-FIND at series level, then at image level per series."""
    if not series_uids:
        ident = Dataset()
        ident.QueryRetrieveLevel = "SERIES"
        ident.StudyInstanceUID = study_uid
        ident.SeriesInstanceUID = ""
        series_uids = [_text(a, "SeriesInstanceUID") for a in _find(node, ident)]
    out = []
    for se in series_uids:
        ident = Dataset()
        ident.QueryRetrieveLevel = "IMAGE"
        ident.StudyInstanceUID = study_uid
        ident.SeriesInstanceUID = se
        ident.SOPInstanceUID = ""
        ident.SOPClassUID = ""
        for a in _find(node, ident):
            out.append((se, _text(a, "SOPInstanceUID"), _text(a, "SOPClassUID")))
    return out


def study_outline(node: RemoteNode, study_uid: str, series_uids: Iterable[str] | None = None
                  ) -> tuple[dict[str, int], set[str]] | None:
    """The series of a study (or the given ones) with their instance counts, and the
    study's SOP classes: one series-level and one study-level C-FIND (a few answers,
    not one per instance as :func:`list_instances`).

    Returns
    -------
    (dict, set) or None
        Series Instance UID -> NumberOfSeriesRelatedInstances, and SOPClassesInStudy;
        None when the node leaves out a count or the SOP classes (optional keys of
        PS3.4 C.6.1.1): the instances must then be listed.
    """
    se = Dataset()
    se.QueryRetrieveLevel = "SERIES"
    se.StudyInstanceUID = study_uid
    se.SeriesInstanceUID = ""
    se.NumberOfSeriesRelatedInstances = ""
    st = Dataset()
    st.QueryRetrieveLevel = "STUDY"
    st.StudyInstanceUID = study_uid
    st.SOPClassesInStudy = ""
    series_answers, study_answers = _finds(node, [se, st])
    wanted = set(series_uids or ())
    counts: dict[str, int] = {}
    for a in series_answers:
        uid = _text(a, "SeriesInstanceUID")
        if wanted and uid not in wanted:
            continue
        n = _int(a, "NumberOfSeriesRelatedInstances")
        if not uid or n is None:
            return None
        counts[uid] = n
    classes = {c for a in study_answers for c in _multi(a, "SOPClassesInStudy")}
    if not counts or not classes or (wanted and set(counts) != wanted):
        return None
    return counts, classes


def retrieve_requests(study_uid: str, wanted: dict[str, list[str]], complete: set[str],
                      chunk: int = 200) -> list[Dataset]:
    """Identifiers of C-GET/C-MOVE requests: a whole series when all of it is
    wanted (*complete*), else its wanted SOP Instance UIDs, *chunk* at a time."""
    out = []
    for se, sops in wanted.items():
        if se in complete:
            ds = Dataset()
            ds.QueryRetrieveLevel = "SERIES"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = se
            out.append(ds)
            continue
        for i in range(0, len(sops), chunk):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = se
            ds.SOPInstanceUID = sops[i:i + chunk]
            out.append(ds)
    return out


def storage_contexts(sop_classes: Iterable[str], room: int) -> list[tuple[str, list[str]]]:
    """(abstract syntax, [transfer syntax]) contexts: one per (class, syntax) while
    they fit in *room*, else the class with explicit/implicit VR little endian."""
    classes = sorted({c for c in sop_classes if c})
    per = len(RETRIEVE_SYNTAXES)
    out = []
    for i, c in enumerate(classes):
        left = room - len(out) - (len(classes) - i - 1)  # keep one context for each class after this
        if left >= per:
            out.extend((c, [ts]) for ts in RETRIEVE_SYNTAXES)
        elif left >= 1:
            out.append((c, [EXPLICIT_LE, IMPLICIT_LE]))
    return out


def _sub_status(status: Dataset) -> str:
    parts = []
    for kw, word in (("NumberOfCompletedSuboperations", "completed"), ("NumberOfFailedSuboperations", "failed"),
                     ("NumberOfWarningSuboperations", "warning")):
        v = status.get(kw)
        if v is not None:
            parts.append(f"{v} {word}")
    return ", ".join(parts)


def _run_retrieve(node: RemoteNode, assoc: Any, requests: list[Dataset], send: Callable[[Dataset], Any],
                  cancel: Any, on_request: Callable[[Dataset], Any] | None = None) -> str | None:
    """Send each request (*on_request* is told of it first), following its responses;
    return a problem text or None."""
    from .incoming import is_cancelled

    problem = None
    for ident in requests:
        if on_request is not None:
            on_request(ident)
        for status, _ in send(ident):
            if is_cancelled(cancel):
                assoc.abort()
                return "cancelled"
            code = getattr(status, "Status", None)
            if code is None:
                return (f"remote {node.name!r}: the connection was lost during the retrieve (the peer stopped, or "
                        f"does not allow retrieves by our AE title {node.calling_aet!r})")
            if code in (0xFF00, 0xFF01):
                continue
            if code == 0xB000:
                problem = f"remote {node.name!r}: some sub-operations failed ({_sub_status(status)})"
            elif code == 0xA801:
                return (f"remote {node.name!r} does not know the C-MOVE destination {node.calling_aet!r}: add it "
                        f"to the peer's modalities (our listener, port {node.move_port})")
            elif code != 0:
                return f"remote {node.name!r} refused the retrieve (status 0x{code:04X} {_sub_status(status)})"
        if not assoc.is_established:
            return f"remote {node.name!r}: the connection was lost during the retrieve"
    return problem


def c_get(node: RemoteNode, study_uid: str, requests: list[Dataset], sop_classes: Iterable[str],
          on_store: Callable[[Any], int], cancel: Any = None,
          on_request: Callable[[Dataset], Any] | None = None) -> str | None:
    """C-GET *requests* on one association; *on_store* handles each C-STORE
    sub-operation (pynetdicom event -> status); *on_request* is called with each
    request before it is sent.  Returns a problem text or None."""
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    ae = make_ae(node.calling_aet)
    ae.add_requested_context(GET)
    roles = []
    for cls, tss in storage_contexts(sop_classes, MAX_CONTEXTS - 1):
        ae.add_requested_context(cls, tss)
    for cls in {c for c, _ in storage_contexts(sop_classes, MAX_CONTEXTS - 1)}:
        roles.append(build_role(cls, scp_role=True))
    assoc = associate(node, ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    with _closing(assoc), Watchdog(node.timeout, cancel, assoc) as wd:
        problem = _run_retrieve(node, assoc, requests, lambda ds: assoc.send_c_get(ds, GET), cancel, on_request)
    return wd.problem(_who(node)) or problem


def storage_scp(ae: Any) -> None:
    """Make *ae* accept every storage SOP class in any transfer syntax pynetdicom knows, and C-ECHO."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, StoragePresentationContexts
    from pynetdicom.sop_class import Verification

    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)


def move_listener(node: RemoteNode, on_store: Callable[[Any], int], bind: str | None = None,
                  shared: bool = False, watchdog: Watchdog | None = None) -> Any:
    """Start the C-STORE SCP that receives our C-MOVEs on ``node.move_port`` (in threads).

    Parameters
    ----------
    node : RemoteNode
    on_store : callable
        The ``EVT_C_STORE`` handler.
    bind : str, optional
        The address (default: loopback for a peer on loopback, else every interface).
    shared : bool
        Bind with ``SO_REUSEPORT``: several processes of ours listen on the
        port at once and the kernel hands each incoming association to one
        of them (see :mod:`.parallel`).
    watchdog : Watchdog, optional
        Watches every association that delivers moved instances (they count
        as traffic of the retrieve).

    Returns
    -------
    pynetdicom.transport.ThreadedAssociationServer
        Running; ``shutdown()`` stops it.

    Raises
    ------
    NetError
        The port cannot be used (the message says what to do).
    """
    import threading

    from pynetdicom import evt
    from pynetdicom.transport import ThreadedAssociationServer

    class SharedPortServer(ThreadedAssociationServer):
        def server_bind(self) -> None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            super().server_bind()

    scp = make_ae(node.calling_aet)
    storage_scp(scp)
    if bind is None:
        bind = "127.0.0.1" if node.host in ("127.0.0.1", "localhost", "::1") else ""
    handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, on_connection)]
    if watchdog is not None:  # the moved instances' associations count as traffic too
        handlers.append((evt.EVT_CONN_OPEN, lambda event: watchdog.watch(event.assoc)))
    try:
        if not shared:
            return scp.start_server((bind, node.move_port), block=False, evt_handlers=handlers)
        server = scp.make_server((bind, node.move_port), evt_handlers=handlers, server_class=SharedPortServer)
    except OSError as e:
        raise NetError(f"cannot listen on port {node.move_port} for the C-MOVE ({(e.strerror or str(e)).lower()}); "
                       "is `pocketpacs listen` running there? (it receives moves itself) or use "
                       "--retrieve get") from None
    scp._servers.append(server)  # as start_server does: shutdown() removes it
    threading.Thread(target=server.serve_forever, name="pocketpacs-move-scp", daemon=True).start()
    return server


def c_move(node: RemoteNode, study_uid: str, requests: list[Dataset], on_store: Callable[[Any], int],
           cancel: Any = None, bind: str | None = None, first_id: int = 1) -> str | None:
    """C-MOVE *requests* to our own AE (``node.calling_aet``), received by a
    listener started for the retrieve on ``node.move_port``.  Returns a problem text or None."""
    wd = Watchdog(node.timeout, cancel)
    server = move_listener(node, on_store, bind, watchdog=wd)
    try:
        return move_requests(node, requests, cancel, wd, first_id)
    finally:
        server.shutdown()


def move_requests(node: RemoteNode, requests: list[Dataset], cancel: Any = None,
                  wd: Watchdog | None = None, first_id: int = 1) -> str | None:
    """The C-MOVE requests themselves, on one association (our listener must be running),
    watched for silence by *wd* (a new :class:`~.watchdog.Watchdog` when None); their
    Message IDs are *first_id*, *first_id* + 1... (each moved instance names the one it
    was moved for: Move Originator Message ID).  Returns a problem text or None."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    if wd is None:
        wd = Watchdog(node.timeout, cancel)
    ae = make_ae(node.calling_aet)
    ae.add_requested_context(MOVE)
    assoc = associate(node, ae)
    ids = {id(ds): first_id + i for i, ds in enumerate(requests)}
    with _closing(assoc), wd:
        wd.watch(assoc)
        problem = _run_retrieve(node, assoc, requests,
                                lambda ds: assoc.send_c_move(ds, node.calling_aet, MOVE, msg_id=ids[id(ds)]),
                                cancel)
    return wd.problem(_who(node)) or problem
