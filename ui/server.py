"""The local HTTP server: the page, its assets, voxels and (in serve mode) commands.

Security model (see ``../shared/notes/reliability.md`` §3.4):

* binds ``127.0.0.1`` on an ephemeral port, never a wildcard address;
* a per-launch 256-bit API token (``secrets.token_urlsafe(32)``), compared
  with :func:`hmac.compare_digest`.  The launch URL carries it
  (``/?token=...``) and only that URL answers the page, which holds it for
  api.js (in a ``<meta>`` element: page memory); every ``/v1/`` request
  needs it in the ``X-PocketPACS-Token`` header, which other pages cannot
  set.  The token is never put in a cookie: cookies do not isolate ports,
  and ``SameSite=Strict`` counts every port of 127.0.0.1 as the same site,
  so any other local server the browser visits would receive it.  The
  static files (code, no data) are authorised by an ``HttpOnly;
  SameSite=Strict`` cookie with a name per port and a separate per-launch
  value, which opens nothing else;
* ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (DNS
  rebinding), a foreign ``Origin`` or ``Sec-Fetch-Site: cross-site`` is
  refused (one ``Host`` header only; ``Sec-Fetch-Site`` must be
  ``same-origin`` or ``none``), there are no CORS headers, ``OPTIONS`` is refused;
* every answer comes from one route table (:data:`.routes.ROUTES`), each route with
  its credential; anything else is 404/405, request targets that are not
  plain origin-form paths (absolute-form, ``//``, backslashes, control
  characters, NUL) are 400, and http.server's own refusals carry the same
  JSON envelope and headers;
* no endpoint takes a path: assets are looked up by name in a table built at
  start-up, volumes and thumbnails by opaque hex ids;
* request bodies and the header block are capped, bodies are read by
  ``Content-Length`` only (``Transfer-Encoding`` is refused), sockets time
  out, responses carry the CSP;
* every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
  ``Cross-Origin-Embedder-Policy: require-corp``: the page is cross-origin
  isolated (it loads nothing from elsewhere), which gives it
  ``SharedArrayBuffer``, so its stream worker reads a volume straight into
  the array the page uploads from (``web/js/stream-worker.js``).

A slice whose pixel data could not be decoded is answered with its zeros and
the header ``X-PocketPACS-Unreadable: 1`` (:data:`pocketpacs.ui.protocol.UNREADABLE_HEADER`).
"""
from __future__ import annotations

import hmac
import http.client
import json
import logging
import re
import secrets
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs

from . import protocol
from .routes import (AUTH_COOKIE_OR_HEADER, AUTH_HEADER, AUTH_PAGE, MIME, ROUTES, WEB_ROOT, Route, asset_table,
                     is_json_media_type)

log = logging.getLogger("pocketpacs.ui.server")

TOKEN_HEADER = "X-PocketPACS-Token"
#: The assets cookie is ``<prefix><port>``: two servers never overwrite each other's.
COOKIE_PREFIX = "pocketpacs_assets_"
CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'none'")
MAX_BODY = 1 << 20
#: All request header lines together (http.server caps each line at 64 KiB and
#: their number at 100, which alone would let one request hold 6.4 MB).
MAX_HEADER_BYTES = 64 << 10


class Backend(Protocol):
    """What the server needs from the session (see :mod:`pocketpacs.ui.session`)."""

    def call(self, name: str, args: Any) -> dict: ...

    def volume_stream(self, vid: str): ...

    def thumbnail(self, sid: str): ...


def _same_secret(candidate: str | None, secret: str) -> bool:
    if not candidate or len(candidate) > 256:
        return False
    return hmac.compare_digest(candidate.encode("utf-8", "replace"), secret.encode("ascii"))


class _CappedHeaderReader:
    """The request stream while http.server reads the header block: stops it at
    :data:`MAX_HEADER_BYTES` (http.server answers 431, as our JSON envelope)."""

    def __init__(self, fp: Any, cap: int):
        self._fp = fp
        self._left = cap

    def readline(self, limit: int = -1) -> bytes:
        line = self._fp.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise http.client.HTTPException("request headers too large")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)


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
        # authorises the static files only; never the API token (see the module docstring)
        self.asset_key = secrets.token_urlsafe(32)
        self.assets = asset_table()
        self._index = (WEB_ROOT / "index.html").read_text("utf-8")
        self._httpd = _Server(("127.0.0.1", port), self._handler_class())
        self.port = self._httpd.server_address[1]
        self.cookie_name = f"{COOKIE_PREFIX}{self.port}"
        self.allowed_hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.allowed_origins = {f"http://{h}" for h in self.allowed_hosts}
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The server's origin, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def launch_url(self) -> str:
        """The page's URL, carrying the API token; opening it sets the assets cookie."""
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
        return _same_secret(candidate, self.token)

    def check_asset_key(self, candidate: str | None) -> bool:
        """Compare *candidate* with the assets cookie's value in constant time.

        Parameters
        ----------
        candidate : str or None
            Cookie value sent by the client.

        Returns
        -------
        bool
            True when it matches.
        """
        return _same_secret(candidate, self.asset_key)

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

    def log_message(self, format: str, *args: Any) -> None:
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
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")

    def _error(self, status: int, code: str, message: str) -> None:
        self.close_connection = True
        self._send(status, protocol.error_json(code, message), "application/json",
                   {"Connection": "close"})

    def parse_request(self) -> bool:
        """http.server's own parsing, with the whole header block capped."""
        rfile = self.rfile
        self.rfile = _CappedHeaderReader(rfile, MAX_HEADER_BYTES)
        try:
            return super().parse_request()
        finally:
            self.rfile = rfile

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (unknown method, malformed request line,
        oversized headers) get the same JSON envelope and headers as ours."""
        code_name = protocol.NOT_ALLOWED if code in (405, 501) else protocol.BAD_REQUEST
        try:
            self._error(code, code_name, "Not allowed." if code in (405, 501) else "Bad request.")
        except Exception:
            self.close_connection = True

    def _guard(self) -> bool:
        """Host, Origin and fetch-site checks shared by every method."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0] not in self.app.allowed_hosts:
            self._error(403, protocol.NOT_ALLOWED, "Wrong host.")
            return False
        origins = self.headers.get_all("Origin") or []
        if len(origins) > 1 or (origins and origins[0] not in self.app.allowed_origins):
            self._error(403, protocol.NOT_ALLOWED, "Foreign origin.")
            return False
        # "same-site" too: another port of 127.0.0.1 is the same site (and gets
        # SameSite=Strict cookies), but never the same origin as this page
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            self._error(403, protocol.NOT_ALLOWED, "Cross-site request.")
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
        m = c.get(self.app.cookie_name)
        return m.value if m else None

    # -------------------------------------------------------------- methods
    def do_OPTIONS(self) -> None:
        self._error(403, protocol.NOT_ALLOWED, "Not allowed.")

    def do_PUT(self) -> None:
        self._error(405, protocol.NOT_ALLOWED, "Method not allowed.")

    do_DELETE = do_PATCH = do_TRACE = do_CONNECT = do_PUT

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        """Guard, look the path up in :data:`ROUTES`, authorise, run its handler."""
        try:
            if not self._guard():
                return
            # bodies are read by Content-Length only: a chunked one would be
            # ignored, and its bytes taken for the next request on this connection
            if self.headers.get_all("Transfer-Encoding"):
                self._error(411, protocol.BAD_REQUEST, "Send the body with a Content-Length.")
                return
            # the request target as sent (http.server collapses a leading "//")
            words = self.requestline.split()
            target = words[1] if len(words) == 3 else ""
            # origin-form only ("/..."): no absolute-form, no "//host" authority,
            # no backslashes, no NUL or other control characters
            if (not target.startswith("/") or target.startswith("//") or "\\" in target
                    or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target)):
                self._error(400, protocol.BAD_REQUEST, "Bad request target.")
                return
            path, _, query = target.partition("?")
            path = path.partition("#")[0]
            found = None
            other_method = False
            for route in ROUTES:
                m = route.pattern.fullmatch(path)
                if m is None:
                    continue
                if route.method != method:
                    other_method = True
                    continue
                found = (route, m)
                break
            if found is None:
                if other_method:
                    self._error(405, protocol.NOT_ALLOWED, "Method not allowed.")
                else:
                    self._error(404, protocol.NOT_FOUND, "Not found.")
                return
            route, m = found
            if not self._authorised(route.auth, query):
                return
            getattr(self, route.handler)(m, query)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # never a traceback to the client
            log.warning("server: %s failed", method, exc_info=True)
            try:
                self._error(500, protocol.INTERNAL, "Internal error.")
            except Exception:
                self.close_connection = True

    def _authorised(self, auth: str, query: str) -> bool:
        """Check the route's credential; answers 403 itself when it is missing."""
        if auth == AUTH_PAGE:
            # only the launch URL's ?token= (no cookie: the page holds the API token)
            given = parse_qs(query).get("token", [])
            if len(given) == 1 and self.app.check_token(given[0]):
                return True
            self._error(403, protocol.NOT_ALLOWED, "Open the URL with its token.")
            return False
        if auth == AUTH_COOKIE_OR_HEADER:
            if (self.app.check_asset_key(self._cookie_token())
                    or self.app.check_token(self.headers.get(TOKEN_HEADER))):
                return True
        elif auth == AUTH_HEADER:
            if self.app.check_token(self.headers.get(TOKEN_HEADER)):
                return True
        self._error(403, protocol.NOT_ALLOWED, "Token required.")
        return False

    # -------------------------------------------------------------- handlers
    def _page(self, m: re.Match, query: str) -> None:
        # the URL keeps its ?token= (a reload works); the cookie opens the static files only
        cookie = f"{self.app.cookie_name}={self.app.asset_key}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, self.app.index_html(), MIME[".html"], {"Set-Cookie": cookie})

    def _favicon(self, m: re.Match, query: str) -> None:
        self._send(204, b"", "image/x-icon")

    def _asset(self, m: re.Match, query: str) -> None:
        file = self.app.assets.get(m.group(0))
        if file is None:
            self._error(404, protocol.NOT_FOUND, "Not found.")
            return
        self._send(200, file.read_bytes(), MIME[file.suffix])

    def _volume_header(self, m: re.Match, query: str) -> None:
        self._volume(m.group("id"), "header", None)

    def _volume_data(self, m: re.Match, query: str) -> None:
        self._volume(m.group("id"), "data", None, query)

    def _volume_slice(self, m: re.Match, query: str) -> None:
        self._volume(m.group("id"), "slice", m.group("z"), query)

    def _volume_index(self, query: str) -> int | None:
        """The ``t`` (volume of a 4D series) of a slice or stream query: 0 when absent;
        answers 400 itself and gives None when it is not one small number."""
        given = parse_qs(query).get("t", ["0"])
        if len(given) != 1 or not re.fullmatch(r"\d{1,6}", given[0]):
            self._error(400, protocol.BAD_REQUEST, "t must be a volume index.")
            return None
        return int(given[0])

    def _thumb_route(self, m: re.Match, query: str) -> None:
        self._thumb(m.group("id"))

    def _call(self, m: re.Match, query: str) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self._error(413, protocol.BAD_REQUEST, "Request too large.")
            return
        if not is_json_media_type(self.headers.get_all("Content-Type") or []):
            self._error(415, protocol.BAD_REQUEST, "JSON required.")
            return
        raw = self.rfile.read(length) if length else b"null"
        try:
            args = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply
            self._error(400, protocol.BAD_REQUEST, "Malformed JSON.")
            return
        reply = self.app.backend.call(m.group("name"), args)
        self._send(200, json.dumps(reply).encode("utf-8"), "application/json")

    def _volume(self, vid: str, what: str, z: str | None, query: str = "") -> None:
        t = self._volume_index(query)
        if t is None:
            return
        if not protocol.OPAQUE_ID.fullmatch(vid):
            self._error(404, protocol.NOT_FOUND, "Not found.")
            return
        job = self.app.backend.volume_stream(vid)
        if job is None:
            self._error(404, protocol.NOT_FOUND, "Not found.")
            return
        if what == "header":
            hdr = job.wait_header()
            if hdr is None:
                self._error(409, protocol.CANCELLED, job.error_message())
                return
            self._send(200, json.dumps(hdr).encode("utf-8"), "application/json")
            return
        if z is not None:
            frame = job.slice_frame(int(z), t)
            if frame is None:
                self._error(404, protocol.NOT_FOUND, "No such slice.")
                return
            # a slice whose pixel data could not be decoded (sent as zeros) says so
            bad = job.slice_unreadable(int(z), t) is not None
            self._send(200, frame, "application/octet-stream",
                       {protocol.UNREADABLE_HEADER: "1"} if bad else None)
            return
        prefix = job.data_prefix()
        if prefix is None:
            self._error(409, protocol.CANCELLED, job.error_message())
            return
        if not job.has_volume(t):
            self._error(404, protocol.NOT_FOUND, "No such volume.")
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
        for chunk in job.iter_data(t=t):
            self.wfile.write(chunk)
            sent += len(chunk)
        if sent != job.data_nbytes():  # cancelled mid-stream: the client sees a short body
            self.close_connection = True

    def _thumb(self, sid: str) -> None:
        if not protocol.OPAQUE_ID.fullmatch(sid):
            self._error(404, protocol.NOT_FOUND, "Not found.")
            return
        frame = self.app.backend.thumbnail(sid)
        if frame is None:
            self._error(404, protocol.NOT_FOUND, "Not found.")
            return
        self._send(200, frame, "application/octet-stream")


__all__ = ["DataServer", "asset_table", "Route", "ROUTES", "TOKEN_HEADER", "COOKIE_PREFIX", "CSP"]
