"""DICOMweb with dicomweb-client: QIDO-RS, WADO-RS and STOW-RS.

:func:`client` makes a :class:`dicomweb_client.DICOMwebClient` for a node
(basic authentication with the stored password, certificate checks on for
https).  One difference from the library: query values keep a raw ``*``
(``PatientName=DOE*``).  dicomweb-client percent-encodes it (``DOE%2A``),
which Orthanc's DICOMweb plugin 1.7 matches literally (no results); a raw
``*`` is valid in a URL query and every server tried reads it as the
wildcard.  Retrieves ask for ``transfer-syntax=*`` so the server sends each
file as stored (pixel data byte for byte).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote_plus

from .nodes import NetError, RemoteNode

#: Instances per STOW-RS request.
STOW_BATCH = 50
#: Seconds of silence before a request fails, for a node without its own ``timeout``.
TIMEOUT = 60
#: WADO-RS media type: each instance in the transfer syntax the server holds it in.
ANY_SYNTAX = (("application/dicom", "*"),)


def _raw_star_query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    parts = []
    for k, v in params.items():
        for one in (v if isinstance(v, (list, tuple, set)) else [v]):
            parts.append(f"{k}={quote_plus(str(one), safe='*')}")
    return "?" + "&".join(parts)


def client(node: RemoteNode, password: str | None = None) -> Any:
    """A DICOMweb client for *node* (user and password from the node's credentials)."""
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

        def _http_get(self, url: str, params: dict[str, Any] | None = None,  # type: ignore[override]
                      headers: dict[str, str] | None = None, stream: bool = False) -> Any:
            return super()._http_get(url + _raw_star_query(params), None, headers, stream)

    session = requests.Session()
    session.verify = bool(node.verify)
    if node.user:
        session.auth = (node.user, password or "")
    c = _Client(node.url, session=session, timeout=node.timeout or TIMEOUT)
    c.set_http_retry_params(retry=False)
    return c


def _error(node: RemoteNode, e: BaseException, doing: str) -> NetError:
    import requests

    what = f"remote {node.name!r} ({node.url})"
    if isinstance(e, requests.exceptions.SSLError):
        return NetError(f"{what}: the https certificate could not be verified during {doing}")
    if isinstance(e, requests.exceptions.ConnectionError):
        return NetError(f"{what}: cannot connect during {doing}: is the server running and the URL right?")
    if isinstance(e, requests.exceptions.Timeout):
        return NetError(f"{what}: nothing received for {node.timeout or TIMEOUT:g} s (the time-out) during {doing}; "
                        "a longer --timeout for a slow server")
    if isinstance(e, requests.exceptions.HTTPError) and e.response is not None:
        code = e.response.status_code
        hint = " (check --user and the password file)" if code in (401, 403) else ""
        return NetError(f"{what}: HTTP {code} {e.response.reason} during {doing}{hint}")
    return NetError(f"{what}: {doing} failed ({type(e).__name__})")


def _call(node: RemoteNode, doing: str, fn: Callable[[], Any]) -> Any:
    import requests

    try:
        return fn()
    except (requests.exceptions.RequestException, OSError) as e:
        raise _error(node, e, doing) from None


def echo(node: RemoteNode, password: str | None = None) -> None:
    """A QIDO-RS ping (``studies?limit=1``); :class:`NetError` when it fails."""
    c = client(node, password)
    _call(node, "a QIDO-RS query", lambda: c.search_for_studies(limit=1))


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
    answers = _call(node, "a QIDO-RS study search",
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
    found = _call(node, "a QIDO-RS instance search",
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
    instance's bytes as sent (a Part-10 file).  Returns a problem text or None."""
    from .incoming import is_cancelled

    c = client(node, password)
    try:
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
    except Exception as e:
        import requests

        if isinstance(e, (requests.exceptions.RequestException, OSError)):
            return str(_error(node, e, "the WADO-RS retrieve"))
        raise
    return None


def store(node: RemoteNode, datasets: Iterable[Any], password: str | None = None) -> None:
    """STOW-RS of *datasets* (pydicom Datasets) in one request; :class:`NetError` when refused."""
    c = client(node, password)
    _call(node, "STOW-RS", lambda: c.store_instances(datasets=list(datasets)))
