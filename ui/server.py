"""The local HTTP server: the page, its assets, voxels and (in serve mode) commands.

Security model (see ``../shared/notes/reliability.md`` §3.4):

* binds ``127.0.0.1`` on an ephemeral port, never a wildcard address;
* a per-launch 256-bit token (``secrets.token_urlsafe(32)``), compared with
  :func:`hmac.compare_digest`.  The URL carries it once (``/?token=...``);
  the server answers with an ``HttpOnly; SameSite=Strict`` cookie and a
  redirect to ``/`` (as Jupyter does).  The page and its static files are
  authorised by that cookie; every ``/v1/`` request additionally needs the
  ``X-PocketPACS-Token`` header, which cross-site pages cannot set;
* ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (DNS
  rebinding), a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site`` is
  refused, there are no CORS headers, ``OPTIONS`` is refused;
* no endpoint takes a path: assets are looked up by name in a table built at
  start-up, volumes and thumbnails by opaque hex ids;
* request bodies are capped, sockets time out, responses carry the CSP.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from . import protocol as P

log = logging.getLogger("pocketpacs.ui.server")

WEB_ROOT = Path(__file__).resolve().parent / "web"
TOKEN_HEADER = "X-PocketPACS-Token"
COOKIE_NAME = "pocketpacs_token"
CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
MAX_BODY = 1 << 20
MIME = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".glsl": "text/plain; charset=utf-8",
}
_ASSET_NAME = re.compile(r"^(css|js|js/gl|js/views|shaders)/[A-Za-z0-9_.-]+\.(css|js|glsl)$")
_CALL = re.compile(r"^/v1/call/([a-z_]{1,40})$")
_VOLUME = re.compile(r"^/v1/volume/([^/]{1,128})/(header|data|slice/(\d{1,6}))$")
_THUMB = re.compile(r"^/v1/thumb/([^/]{1,128})$")


class Backend(Protocol):
    """What the server needs from the session (see :mod:`pocketpacs.ui.session`)."""

    def call(self, name: str, args: Any) -> dict: ...  # noqa: D102

    def volume_stream(self, vid: str): ...  # noqa: D102

    def thumbnail(self, sid: str): ...  # noqa: D102


def asset_table(root: Path = WEB_ROOT) -> dict[str, Path]:
    """List the static files the server may send, keyed by URL path.

    Parameters
    ----------
    root : Path
        The ``web`` folder.

    Returns
    -------
    dict
        ``"/js/main.js" -> Path`` for every allowed file present at start-up.
    """
    table: dict[str, Path] = {}
    for p in root.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if _ASSET_NAME.match(rel):
            table["/" + rel] = p
    return table


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 64

    def handle_error(self, request, client_address):  # pragma: no cover - logging only
        log.warning("server: a connection failed")


class DataServer:
    """The token-protected local server.

    Parameters
    ----------
    backend : Backend
        Session answering commands, volumes and thumbnails.
    host : str
        Address to bind; must be a loopback address.
    port : int
        0 for an ephemeral port.
    token : str, optional
        Fixed token (tests); a fresh 256-bit one by default.
    """

    def __init__(self, backend: Backend, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None):
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the data server binds only to 127.0.0.1")
        self.backend = backend
        self.token = token or secrets.token_urlsafe(32)
        self.assets = asset_table()
        self._index = (WEB_ROOT / "index.html").read_text("utf-8")
        self._httpd = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self._httpd.server_address[1]
        self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.allowed_origins = {f"http://{h}" for h in self.allowed_hosts}
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The server's origin, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def launch_url(self) -> str:
        """The URL carrying the token once; opening it sets the cookie."""
        return f"{self.base_url}/?token={self.token}"

    def start(self) -> "DataServer":
        """Serve in a daemon thread.

        Returns
        -------
        DataServer
            ``self``.
        """
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="pocketpacs-http", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (or Ctrl-C)."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def check_token(self, candidate: str | None) -> bool:
        """Compare *candidate* with the launch token in constant time.

        Parameters
        ----------
        candidate : str or None
            Token sent by the client.

        Returns
        -------
        bool
            True when it matches.
        """
        if not candidate or len(candidate) > 256:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"),
                                   self.token.encode("ascii"))

    def index_html(self) -> bytes:
        """The page, with the token in a ``<meta>`` element for api.js.

        Returns
        -------
        bytes
            UTF-8 HTML.
        """
        meta = f'<meta name="pocketpacs-token" content="{self.token}">'
        return self._index.replace("<!--TOKEN-->", meta).encode("utf-8")

    def _handler_class(self):
        server = self

        class Handler(_Handler):
            app = server

        return Handler


class _Handler(BaseHTTPRequestHandler):
    app: DataServer
    timeout = 30
    server_version = "PocketPACS"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # keep-alive responses go out as two writes (headers, then body): without
    # TCP_NODELAY the body waits for the browser's delayed ACK of the headers
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Request lines may contain ids only, but keep the log quiet anyway.
        log.debug("http: %s", self.command)

    # -------------------------------------------------------------- helpers
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _common_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")

    def _error(self, status: int, code: str, message: str) -> None:
        self.close_connection = True
        self._send(status, P.error_json(code, message), "application/json",
                   {"Connection": "close"})

    def _guard(self) -> bool:
        """Host, Origin and fetch-site checks shared by every method."""
        host = self.headers.get("Host", "")
        if host not in self.app.allowed_hosts:
            self._error(403, P.NOT_ALLOWED, "Wrong host.")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self.app.allowed_origins:
            self._error(403, P.NOT_ALLOWED, "Foreign origin.")
            return False
        if self.headers.get("Sec-Fetch-Site", "same-origin") == "cross-site":
            self._error(403, P.NOT_ALLOWED, "Cross-site request.")
            return False
        return True

    def _cookie_token(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        try:
            c = SimpleCookie()
            c.load(raw)
        except Exception:
            return None
        m = c.get(COOKIE_NAME)
        return m.value if m else None

    # -------------------------------------------------------------- methods
    def do_OPTIONS(self) -> None:  # noqa: N802
        self._error(403, P.NOT_ALLOWED, "Not allowed.")

    def do_PUT(self) -> None:  # noqa: N802
        self._error(405, P.NOT_ALLOWED, "Method not allowed.")

    do_DELETE = do_PATCH = do_TRACE = do_CONNECT = do_PUT

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # never a traceback to the client
            log.warning("server: GET failed")
            try:
                self._error(500, P.INTERNAL, "Internal error.")
            except Exception:
                self.close_connection = True

    def do_POST(self) -> None:  # noqa: N802
        try:
            self._post()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.warning("server: POST failed")
            try:
                self._error(500, P.INTERNAL, "Internal error.")
            except Exception:
                self.close_connection = True

    def _get(self) -> None:
        if not self._guard():
            return
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            query = parse_qs(url.query)
            given = query.get("token", [None])[0]
            if given is not None:
                if not self.app.check_token(given):
                    self._error(403, P.NOT_ALLOWED, "Wrong token.")
                    return
                cookie = (f"{COOKIE_NAME}={self.app.token}; Path=/; HttpOnly; "
                          "SameSite=Strict")
                self._send(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})
                return
            if not self.app.check_token(self._cookie_token()):
                self._error(403, P.NOT_ALLOWED, "Open the URL with its token.")
                return
            self._send(200, self.app.index_html(), MIME[".html"])
            return
        if path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        if path in self.app.assets:
            if not (self.app.check_token(self._cookie_token())
                    or self.app.check_token(self.headers.get(TOKEN_HEADER))):
                self._error(403, P.NOT_ALLOWED, "Token required.")
                return
            file = self.app.assets[path]
            self._send(200, file.read_bytes(), MIME[file.suffix])
            return
        if not path.startswith("/v1/"):
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        if not self.app.check_token(self.headers.get(TOKEN_HEADER)):
            self._error(403, P.NOT_ALLOWED, "Token required.")
            return
        m = _VOLUME.match(path)
        if m:
            self._volume(m.group(1), m.group(2), m.group(3))
            return
        m = _THUMB.match(path)
        if m:
            self._thumb(m.group(1))
            return
        self._error(404, P.NOT_FOUND, "Not found.")

    def _post(self) -> None:
        if not self._guard():
            return
        if not self.app.check_token(self.headers.get(TOKEN_HEADER)):
            self._error(403, P.NOT_ALLOWED, "Token required.")
            return
        m = _CALL.match(urlsplit(self.path).path)
        if not m:
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(413, P.BAD_REQUEST, "Request too large.")
            return
        if "json" not in self.headers.get("Content-Type", ""):
            self._error(415, P.BAD_REQUEST, "JSON required.")
            return
        raw = self.rfile.read(length) if length else b"null"
        try:
            args = json.loads(raw)
        except ValueError:
            self._error(400, P.BAD_REQUEST, "Malformed JSON.")
            return
        reply = self.app.backend.call(m.group(1), args)
        self._send(200, json.dumps(reply).encode("utf-8"), "application/json")

    def _volume(self, vid: str, what: str, z: str | None) -> None:
        if not P.OPAQUE_ID.match(vid):
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        job = self.app.backend.volume_stream(vid)
        if job is None:
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        if what == "header":
            hdr = job.wait_header()
            if hdr is None:
                self._error(409, P.CANCELLED, job.error_message())
                return
            self._send(200, json.dumps(hdr).encode("utf-8"), "application/json")
            return
        if z is not None:
            frame = job.slice_frame(int(z))
            if frame is None:
                self._error(404, P.NOT_FOUND, "No such slice.")
                return
            self._send(200, frame, "application/octet-stream")
            return
        prefix = job.data_prefix()
        if prefix is None:
            self._error(409, P.CANCELLED, job.error_message())
            return
        total = len(prefix) + job.data_nbytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self._common_headers()
        self.end_headers()
        if self.command == "HEAD":
            return
        self.wfile.write(prefix)
        sent = 0
        for chunk in job.iter_data():
            self.wfile.write(chunk)
            sent += len(chunk)
        if sent != job.data_nbytes():  # cancelled mid-stream: the client sees a short body
            self.close_connection = True

    def _thumb(self, sid: str) -> None:
        if not P.OPAQUE_ID.match(sid):
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        frame = self.app.backend.thumbnail(sid)
        if frame is None:
            self._error(404, P.NOT_FOUND, "Not found.")
            return
        self._send(200, frame, "application/octet-stream")


__all__ = ["DataServer", "asset_table", "TOKEN_HEADER", "COOKIE_NAME", "CSP"]
