"""Remote nodes: the PACS and DICOMweb stores PocketPACS talks to.

The nodes of an archive live in its folder: ``remotes.json`` (0600) holds
each node's name, protocol and address, and ``remote-credentials.json``
(0600, written only when a node has a password) holds the passwords, which
appear nowhere else (not in ``remotes.json``, not in ``--json`` output, not
in logs).  A DIMSE node is ``AET@HOST:PORT`` with the calling AE title we
present and how we retrieve (C-GET, or C-MOVE to our own listener on
``move_port``); a DICOMweb node is a base URL (http or https, certificates
checked) with an optional user.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PocketPacsError
from ..paths import ensure_private_dir, read_private_file, write_private_file

NODES_FILE = "remotes.json"
CREDENTIALS_FILE = "remote-credentials.json"
DEFAULT_CALLING_AET = "POCKETPACS"
DEFAULT_LISTEN_PORT = 11112
#: Seconds without a byte from or to a node before a command gives up (``--timeout``).
DEFAULT_TIMEOUT = 60.0

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_AET = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # printable ASCII without backslash, at most 16


class NetError(PocketPacsError):
    """A remote node cannot be reached, refuses us, or is configured wrongly."""


@dataclass
class RemoteNode:
    """One remote node (see the module docstring).

    Attributes
    ----------
    name : str
    kind : {"dimse", "dicomweb"}
    aet, host, port : DIMSE: the called AE title and address
    calling_aet : str
        The AE title PocketPACS presents (DIMSE).
    retrieve : {"get", "move"}
        C-GET, or C-MOVE with our listener (``calling_aet`` on ``move_port``) as destination.
    move_port : int
        The port of our listener for C-MOVE (the peer must know ``calling_aet`` at this port).
    url : str
        DICOMweb base URL (QIDO/WADO/STOW share it).
    user : str
        DICOMweb user (the password is in the credentials file).
    verify : bool
        Check https certificates (default True).
    timeout : float
        Seconds without a byte moving from or to the node before a command
        gives up (default :data:`DEFAULT_TIMEOUT`; ``--timeout``).
    """
    name: str
    kind: str
    aet: str = ""
    host: str = ""
    port: int = 0
    calling_aet: str = DEFAULT_CALLING_AET
    retrieve: str = "get"
    move_port: int = DEFAULT_LISTEN_PORT
    url: str = ""
    user: str = ""
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    has_password: bool = field(default=False)

    def to_json(self) -> dict[str, Any]:
        """The node as JSON (never with its password)."""
        d = asdict(self)
        if self.kind == "dimse":
            for k in ("url", "user", "verify"):
                d.pop(k)
        else:
            for k in ("aet", "host", "port", "calling_aet", "retrieve", "move_port"):
                d.pop(k)
        return d

    def address(self) -> str:
        """``AET@HOST:PORT`` or the URL, for messages."""
        return f"{self.aet}@{self.host}:{self.port}" if self.kind == "dimse" else self.url


def check_name(name: str) -> str:
    """Return *name* if it is a valid node name, else raise :class:`NetError`."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NetError(f"remote name {name!r}: use 1-64 letters, digits, '_', '.', '-' (starting with a letter "
                       "or digit)")
    return name


def check_aet(aet: str, what: str = "AE title") -> str:
    """Return *aet* if it is a valid AE title (1-16 printable ASCII, no backslash, not all spaces)."""
    if not isinstance(aet, str) or not _AET.fullmatch(aet) or not aet.strip():
        raise NetError(f"{what} {aet!r}: 1 to 16 printable ASCII characters, no backslash")
    return aet.strip()


def check_port(port: Any, what: str = "port") -> int:
    """Return *port* as an int in 1..65535, else raise :class:`NetError`."""
    try:
        p = int(port)
    except (TypeError, ValueError):
        raise NetError(f"{what} {port!r} is not a number") from None
    if not 1 <= p <= 65535:
        raise NetError(f"{what} {p} is not between 1 and 65535")
    return p


def parse_dimse(spec: str) -> tuple[str, str, int]:
    """``AET@HOST:PORT`` -> (aet, host, port).

    Raises
    ------
    NetError
        When *spec* is not of that form.
    """
    m = re.fullmatch(r"(.+)@(\[[^\]]+\]|[^:@]+):(\d+)", spec or "")
    if not m:
        raise NetError(f"--dimse {spec!r}: expected AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242")
    return check_aet(m.group(1), "called AE title"), m.group(2).strip("[]"), check_port(m.group(3))


def check_url(url: str) -> str:
    """Return a DICOMweb base URL (http or https, with a host) without its trailing slash."""
    from urllib.parse import urlparse

    u = urlparse(url or "")
    if u.scheme not in ("http", "https") or not u.hostname:
        raise NetError(f"--dicomweb {url!r}: expected an http:// or https:// URL, e.g. "
                       "http://127.0.0.1:8042/dicom-web")
    if u.username or u.password:
        raise NetError("--dicomweb: give the user with --user and the password with --password-file, "
                       "not in the URL")
    return url.rstrip("/")


# ---- the files ---------------------------------------------------------------------------

def _read_json(path: Path) -> dict:
    try:
        raw = read_private_file(path)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise NetError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NetError(f"{path}: not valid JSON; fix or delete it") from None
    if not isinstance(d, dict):
        raise NetError(f"{path}: expected a JSON object; fix or delete it")
    return d


def _write_json(path: Path, obj: dict) -> None:
    ensure_private_dir(path.parent)
    write_private_file(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def load_nodes(folder: os.PathLike[str] | str) -> dict[str, RemoteNode]:
    """The nodes stored in archive folder *folder*, by name.

    Raises
    ------
    NetError
        The file cannot be read or is malformed (the message names it).
    """
    path = Path(folder) / NODES_FILE
    d = _read_json(path)
    creds = _read_json(Path(folder) / CREDENTIALS_FILE) if (Path(folder) / CREDENTIALS_FILE).exists() else {}
    out = {}
    known = set(RemoteNode.__dataclass_fields__)
    for name, rec in d.get("nodes", {}).items():
        if not isinstance(rec, dict) or rec.get("kind") not in ("dimse", "dicomweb"):
            raise NetError(f"{path}: node {name!r} is malformed; remove it with `pocketpacs remote rm`")
        try:
            node = RemoteNode(name=name, **{k: v for k, v in rec.items() if k in known and k != "name"})
        except TypeError:
            raise NetError(f"{path}: node {name!r} is malformed") from None
        node.has_password = name in creds
        out[name] = node
    return out


def get_node(folder: os.PathLike[str] | str, name: str) -> RemoteNode:
    """One node by name; :class:`NetError` naming the known ones when absent."""
    nodes = load_nodes(folder)
    if name not in nodes:
        known = ", ".join(sorted(nodes)) or "none; add one with `pocketpacs remote add`"
        raise NetError(f"no remote named {name!r} (known: {known})")
    return nodes[name]


def save_node(folder: os.PathLike[str] | str, node: RemoteNode, password: str | None = None,
              replace: bool = False) -> None:
    """Store *node* (and its password in the credentials file).

    Raises
    ------
    NetError
        A node of that name exists and *replace* is False.
    """
    folder = Path(folder)
    check_name(node.name)
    d = _read_json(folder / NODES_FILE)
    nodes = d.setdefault("nodes", {})
    if node.name in nodes and not replace:
        raise NetError(f"a remote named {node.name!r} exists; `pocketpacs remote rm {node.name}` first")
    rec = node.to_json()
    rec.pop("name")
    rec.pop("has_password", None)
    nodes[node.name] = rec
    creds_path = folder / CREDENTIALS_FILE
    creds = _read_json(creds_path)
    if password is not None:
        creds[node.name] = password
        _write_json(creds_path, creds)
    elif node.name in creds:
        del creds[node.name]
        _write_json(creds_path, creds)
    _write_json(folder / NODES_FILE, d)


def remove_node(folder: os.PathLike[str] | str, name: str) -> None:
    """Forget node *name* and its password; :class:`NetError` when there is none."""
    folder = Path(folder)
    get_node(folder, name)
    d = _read_json(folder / NODES_FILE)
    del d["nodes"][name]
    _write_json(folder / NODES_FILE, d)
    creds = _read_json(folder / CREDENTIALS_FILE)
    if name in creds:
        del creds[name]
        _write_json(folder / CREDENTIALS_FILE, creds)


def node_password(folder: os.PathLike[str] | str, name: str) -> str | None:
    """The stored password of node *name* (None: none)."""
    p = Path(folder) / CREDENTIALS_FILE
    if not p.exists():
        return None
    v = _read_json(p).get(name)
    return v if isinstance(v, str) else None
