"""DICOMweb with dicomweb-client: QIDO-RS, WADO-RS and STOW-RS.

:func:`client` makes a :class:`dicomweb_client.DICOMwebClient` for a node
(basic authentication with the stored password, certificate checks on for
https).  One difference from the library: query values keep a raw ``*``
(``PatientName=DOE*``).  dicomweb-client percent-encodes it (``DOE%2A``),
which Orthanc's DICOMweb plugin 1.7 matches literally (no results); a raw
``*`` is valid in a URL query and every server tried reads it as the
wildcard.  Retrieves ask for ``transfer-syntax=*`` so the server sends each
file as stored (pixel data byte for byte).

Faults: ``timeout`` counts silence (requests' read time-out is per read, so
a slow answer that keeps coming is never cut off, and a STOW-RS body is sent
in blocks, each with the whole time-out); a multipart answer is
read part by part with :func:`multipart_parts`, which hands out a part only
once the delimiter after it has arrived and raises :class:`CutShort` when the
answer ends before its closing delimiter (a server killed mid-answer, or a
connection dropped, may end the body cleanly: the last part would otherwise
be taken whole); every failure becomes a :class:`NetError` naming the node
and saying what happened (:class:`Unreachable` when the node stopped
answering: a time-out, a connection refused or cut).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote_plus

from .nodes import NetError, RemoteNode
from .watchdog import SOCKET_WATCH, SocketWatch

#: Instances per STOW-RS request.
STOW_BATCH = 50
#: Seconds of silence before a request fails, for a node without its own ``timeout``.
TIMEOUT = 60
#: Bytes of a streamed WADO-RS answer read at a time (a read waits for all of them, or the end):
#: an instance is handed on at most this much after its last byte arrived.
READ_CHUNK = 1 << 16
#: WADO-RS media type: each instance in the transfer syntax the server holds it in.
ANY_SYNTAX = (("application/dicom", "*"),)


class CutShort(OSError):
    """A multipart answer that ended before its closing delimiter (the connection was cut)."""


class Unreachable(NetError):
    """The node stopped answering: no connection, a time-out, or the connection cut mid-answer."""


def multipart_parts(chunks: Iterable[bytes], boundary: bytes) -> Iterator[bytes]:
    """The bodies of a ``multipart/related`` message's parts, read as its bytes arrive.

    A part is handed out only when the delimiter after it has arrived, so a
    part is always whole; the preamble and the epilogue are skipped.

    Parameters
    ----------
    chunks : iterable of bytes
        The message body in pieces of any size (as they come off the socket).
    boundary : bytes
        The boundary of the ``Content-Type`` header (without ``--``).

    Yields
    ------
    bytes
        Each part's body (its headers removed).

    Raises
    ------
    CutShort
        The body ended before the closing delimiter (``--boundary--``).
    """
    delim = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # the first delimiter may begin the body without a CRLF before it
    started = False
    pos = 0
    for chunk in chunks:
        buf += chunk
        while True:
            i = buf.find(delim, pos)
            if i < 0 or len(buf) < i + len(delim) + 2:  # no delimiter yet, or not known whether it closes
                pos = max(0, len(buf) - len(delim) - 1) if i < 0 else i
                break
            if started:
                part = bytes(buf[:i])
                head = part.find(b"\r\n\r\n")
                if head < 0:
                    raise CutShort("a part of the multipart answer has no header end (CRLF CRLF)")
                yield part[head + 4:]
            started = True
            if buf[i + len(delim):i + len(delim) + 2] == b"--":
                return
            del buf[:i + len(delim)]
            pos = 0
    raise CutShort("the multipart answer ended before its closing delimiter")


def _boundary(content_type: str) -> bytes | None:
    for item in content_type.split(";")[1:]:
        attr, _, value = item.strip().partition("=")
        if attr.lower() == "boundary":
            return value.strip().strip('"').encode("utf-8")
    return None


def _raw_star_query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    parts = []
    for k, v in params.items():
        for one in (v if isinstance(v, (list, tuple, set)) else [v]):
            parts.append(f"{k}={quote_plus(str(one), safe='*')}")
    return "?" + "&".join(parts)


def client(node: RemoteNode, password: str | None = None, cancel: Any = None) -> Any:
    """A DICOMweb client for *node* (user and password from the node's credentials).

    Parameters
    ----------
    node : RemoteNode
    password : str, optional
    cancel : threading.Event or callable, optional
        Cuts the client's connections when set (a request waiting then fails).

    Returns
    -------
    dicomweb_client.DICOMwebClient
        With a ``watch`` (:class:`~.watchdog.SocketWatch`) to enter around
        its use: its requests fail after ``node.timeout`` seconds in which
        no byte moved.
    """
    import requests
    from dicomweb_client.api import DICOMwebClient

    class _Client(DICOMwebClient):
        def _http_get_multipart_application_dicom(self, url: str, media_types: Any = None,  # type: ignore[override]
                                                   params: dict[str, Any] | None = None,
                                                   stream: bool = False) -> Any:
            # each part's bytes as the server sent them (a Part-10 file): not decoded into a
            # pydicom Dataset and encoded again; the parts are read while they stream in
            headers = {"Accept": self._build_multipart_accept_header_field_value(
                media_types or ANY_SYNTAX, {"*": "application/dicom"})}
            response = self._http_get(url, params=params, headers=headers, stream=stream)
            if response.headers.get("Content-Type", "").startswith("application/dicom"):
                return iter([response.content])  # a single part sent bare (some servers)
            return self._decode_multipart_message(response, stream=stream)

        def _decode_multipart_message(self, response: Any, stream: bool) -> Iterator[bytes]:  # type: ignore[override]
            # every part whole, and an answer cut short said as such (see multipart_parts)
            content_type = response.headers.get("Content-Type", "")
            if not content_type.lower().startswith("multipart/related"):
                raise ValueError(f"unexpected media type {content_type.split(';')[0]!r} (multipart/related expected)")
            boundary = _boundary(content_type)
            with response:
                if boundary is None:  # one part sent without a boundary: as is
                    yield response.content
                    return
                chunks = (_waited(response.iter_content(chunk_size=READ_CHUNK), watch) if stream
                          else iter([response.content]))
                yield from multipart_parts(chunks, boundary)

        def _http_post(self, url: str, data: bytes, headers: dict[str, str]) -> Any:  # type: ignore[override]
            # the body as a file (urllib3 sends it in blocks), the request watched for silence
            with watch.waiting():
                response = self._session.post(url, data=io.BytesIO(data), headers=headers, timeout=self._timeout)
            response.raise_for_status()
            return response

        def _http_get(self, url: str, params: dict[str, Any] | None = None,  # type: ignore[override]
                      headers: dict[str, str] | None = None, stream: bool = False) -> Any:
            with watch.waiting():
                return super()._http_get(url + _raw_star_query(params), None, headers, stream)

    timeout = node.timeout or TIMEOUT
    watch = SocketWatch(timeout, cancel)
    session = requests.Session()
    session.verify = bool(node.verify)
    if node.user:
        session.auth = (node.user, password or "")
    adapter = _watched_adapter(watch)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # the silence is counted by the watch (connect: by requests); a read time-out where it cannot see
    c = _Client(node.url, session=session, timeout=(timeout, None) if SOCKET_WATCH else timeout)
    c.set_http_retry_params(retry=False)
    c.watch = watch
    return c


def _waited(chunks: Iterable[bytes], watch: SocketWatch) -> Iterator[bytes]:
    """*chunks*, each wait for the next one counted by *watch* (not the time spent on each)."""
    it = iter(chunks)
    while True:
        with watch.waiting():
            chunk = next(it, None)
        if chunk is None:
            return
        yield chunk


def _watched_adapter(watch: SocketWatch) -> Any:
    """A requests adapter whose connections register their sockets with *watch* when made."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Plain(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    class Tls(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watch.add(self.sock)

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = Tls

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": PlainPool, "https": TlsPool}

    return Adapter()


def _timed_out(e: BaseException) -> bool:
    """A time-out, also as requests reports one met while an answer streams in (a
    ``ConnectionError`` around urllib3's ``ReadTimeoutError``)."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if isinstance(e, requests.exceptions.ConnectTimeout):
        return False  # said as "cannot connect"
    if isinstance(e, (requests.exceptions.Timeout, ReadTimeoutError)):
        return True
    return any(isinstance(a, ReadTimeoutError) for a in getattr(e, "args", ()))


def _hung_up(e: BaseException) -> bool:
    """A connection closed by the server before its answer (requests: a ``ConnectionError``
    around urllib3's ``ProtocolError``, "Connection aborted"), not one that could not be made."""
    import requests
    from urllib3.exceptions import ProtocolError

    return isinstance(e, requests.exceptions.ConnectionError) and any(isinstance(a, ProtocolError) for a in e.args)


def _error(node: RemoteNode, e: BaseException, doing: str, watch: SocketWatch | None = None) -> NetError:
    import requests

    what = f"remote {node.name!r} ({node.url})"
    if watch is not None and watch.cancelled:
        return NetError("cancelled")
    if isinstance(e, requests.exceptions.SSLError):
        return NetError(f"{what}: the https certificate could not be verified during {doing}")
    if _timed_out(e) or (watch is not None and watch.timed_out):
        return Unreachable(f"{what}: nothing received for {node.timeout or TIMEOUT:g} s (the time-out) during "
                           f"{doing}: the server may be stalled or the network down; run the same command again "
                           "(a longer --timeout for a slow server)")
    if isinstance(e, (CutShort, requests.exceptions.ChunkedEncodingError)) or _hung_up(e):
        return Unreachable(f"{what}: the connection was cut during {doing} (the server stopped, or the network "
                           "failed); run the same command again")
    if isinstance(e, requests.exceptions.ConnectionError):
        return Unreachable(f"{what}: cannot connect during {doing}: is the server running and the URL right?")
    if isinstance(e, requests.exceptions.HTTPError) and e.response is not None:
        code = e.response.status_code
        hint = " (check --user and the password file)" if code in (401, 403) else ""
        return NetError(f"{what}: HTTP {code} {e.response.reason} during {doing}{hint}")
    return NetError(f"{what}: {doing} failed ({type(e).__name__})")


def _call(node: RemoteNode, c: Any, doing: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, its requests watched by the client *c*'s watch; a failure as a :class:`NetError`."""
    import requests

    try:
        with c.watch:
            return fn()
    except (requests.exceptions.RequestException, OSError) as e:
        raise _error(node, e, doing, c.watch) from None


def echo(node: RemoteNode, password: str | None = None) -> None:
    """A QIDO-RS ping (``studies?limit=1``); :class:`NetError` when it fails."""
    c = client(node, password)
    _call(node, c, "a QIDO-RS query", lambda: c.search_for_studies(limit=1))


def _value(js: dict, tag: str) -> Any:
    el = js.get(tag) or {}
    vals = el.get("Value") or []
    if not vals:
        return ""
    v = vals[0]
    if isinstance(v, dict):  # PN
        return v.get("Alphabetic", "")
    return v


def _num(js: dict, tag: str) -> int | None:
    try:
        return int(_value(js, tag))
    except (TypeError, ValueError):
        return None


def find_studies(node: RemoteNode, keys: dict[str, str], password: str | None = None) -> list[dict[str, Any]]:
    """QIDO-RS study search with matching *keys*; one dict per study."""
    c = client(node, password)
    fields = ["PatientName", "PatientID", "PatientBirthDate", "StudyDate", "ModalitiesInStudy", "StudyDescription",
              "AccessionNumber", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
    answers = _call(node, c, "a QIDO-RS study search",
                    lambda: c.search_for_studies(search_filters=dict(keys), fields=fields))
    out = []
    for a in answers:
        mods = (a.get("00080061") or {}).get("Value") or []
        out.append({"study_instance_uid": str(_value(a, "0020000D")), "patient_name": str(_value(a, "00100010")),
                    "patient_id": str(_value(a, "00100020")), "birth_date": str(_value(a, "00100030")),
                    "study_date": str(_value(a, "00080020")), "modalities": [str(m) for m in mods if m],
                    "description": str(_value(a, "00081030")), "accession": str(_value(a, "00080050")),
                    "n_series": _num(a, "00201206"), "n_instances": _num(a, "00201208")})
    return out


def list_instances(node: RemoteNode, study_uid: str, series_uids: Iterable[str] | None = None,
                   password: str | None = None) -> list[tuple[str, str, str]]:
    """(series UID, SOP Instance UID, SOP Class UID) of the instances of a study (or of some series)."""
    c = client(node, password)
    out = []
    wanted = set(series_uids or ())
    found = _call(node, c, "a QIDO-RS instance search",
                  lambda: c.search_for_instances(study_instance_uid=study_uid, fields=["SeriesInstanceUID"]))
    for a in found:
        se = str(_value(a, "0020000E"))
        if wanted and se not in wanted:
            continue
        out.append((se, str(_value(a, "00080018")), str(_value(a, "00080016"))))
    return out


def retrieve(node: RemoteNode, study_uid: str, wanted: dict[str, list[str]], complete: set[str],
             on_instance: Callable[[Any], None], cancel: Any = None, password: str | None = None) -> str | None:
    """WADO-RS: a whole series when all of it is wanted (one multipart answer,
    read as it streams), else instance by instance; *on_instance* gets each
    instance's bytes as sent (a Part-10 file), whole.  *cancel* also cuts a
    request waiting on a stalled server.  Returns a problem text or None."""
    from .incoming import is_cancelled

    c = client(node, password, cancel)
    try:
        with c.watch:
            return _retrieve(c, study_uid, wanted, complete, on_instance, cancel)
    except Exception as e:
        import requests

        if isinstance(e, (requests.exceptions.RequestException, OSError)):
            if is_cancelled(cancel) or c.watch.cancelled:
                return "cancelled"
            return str(_error(node, e, "the WADO-RS retrieve", c.watch))
        raise


def _retrieve(c: Any, study_uid: str, wanted: dict[str, list[str]], complete: set[str],
              on_instance: Callable[[Any], None], cancel: Any) -> str | None:
    from .incoming import is_cancelled

    for se, sops in wanted.items():
        if se in complete:
            for ds in c.iter_series(study_uid, se, media_types=ANY_SYNTAX):
                on_instance(ds)
                if is_cancelled(cancel):
                    return "cancelled"
        else:
            for sop in sops:
                on_instance(c.retrieve_instance(study_uid, se, sop, media_types=ANY_SYNTAX))
                if is_cancelled(cancel):
                    return "cancelled"
    return None


def store(node: RemoteNode, datasets: Iterable[Any], password: str | None = None) -> None:
    """STOW-RS of *datasets* (pydicom Datasets) in one request; :class:`NetError` when refused."""
    c = client(node, password)
    _call(node, c, "STOW-RS", lambda: c.store_instances(datasets=list(datasets)))
