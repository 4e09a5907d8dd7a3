"""Local security of the HTTP server and the bridge (issue 7, "Local security").

* Listening sockets: the ``pocketpacs serve`` process, and the desktop app's
  whole process tree (Python + Qt WebEngine children, under Xvfb), listen only
  on 127.0.0.1 (read from ``/proc/net/{tcp,tcp6,udp,udp6,raw,raw6}`` and the
  processes' ``/proc/<pid>/fd`` socket inodes).
* Every route of the server's real route table (:data:`pocketpacs.ui.server.ROUTES`,
  so a new route is covered as soon as it exists) is sent: no token, wrong
  tokens, a cookie where the header is needed, wrong ``Host``, foreign
  ``Origin``, cross-site fetch metadata, other methods and path traversal
  forms (``..``, ``%2e%2e``, encoded slashes, backslashes, absolute paths,
  NUL).  Requests go over raw sockets so nothing is normalised on the way.
* Bridge names outside the allowlist (dotted, dunder, underscore, pywebview's
  internal messages) are refused by :func:`bridge.call` and by pywebview's
  own entry point once :func:`bridge.install_guard` is in place.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

from pocketpacs.ui import bridge
from pocketpacs.ui import protocol
from pocketpacs.ui.server import (
    AUTH_COOKIE_OR_HEADER, AUTH_HEADER, AUTH_PAGE, COOKIE_PREFIX, CSP, ROUTES, TOKEN_HEADER, DataServer)

# --------------------------------------------------------------------------- sockets
_TCP_LISTEN = "0A"


def _proc_net() -> dict[int, tuple[str, str, str]]:
    """socket inode -> (table, local address, state) for every inet socket."""
    out: dict[int, tuple[str, str, str]] = {}
    for table in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], int(f[9])
            addr_hex, port_hex = local.split(":")
            if len(addr_hex) == 8:
                addr = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr_hex)[::-1])
            else:
                raw = bytes.fromhex(addr_hex)
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out[inode] = (table, f"{addr}:{int(port_hex, 16)}", state)
    return out


def _socket_inodes(pid: int) -> set[int]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def _tree(pid: int) -> list[int]:
    """*pid* and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def network_sockets(pids: list[int]) -> list[tuple[str, str, str]]:
    """Every inet socket (table, local address, state) held by *pids*."""
    net = _proc_net()
    socks = []
    for pid in pids:
        try:
            inodes = _socket_inodes(pid)
        except OSError:
            continue
        socks += [net[i] for i in inodes if i in net]
    return socks


def assert_loopback_only(socks: list[tuple[str, str, str]], port: int) -> None:
    listening = [s for s in socks if s[0].startswith("tcp") and s[2] == _TCP_LISTEN]
    assert ("tcp", f"127.0.0.1:{port}", _TCP_LISTEN) in listening, socks        # not vacuous
    assert all(s[0] == "tcp" and s[1].startswith("127.0.0.1:") for s in listening), listening
    # no datagram or raw socket bound to a non-loopback address either
    for table, local, _state in socks:
        if table.startswith(("udp", "raw")):
            assert local.startswith(("127.", "::1:", "0.0.0.0:0", ":::0")), (table, local)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return S.build_archive(tmp_path_factory.mktemp("sec_http"))


def test_serve_listens_only_on_loopback(served):
    assert_loopback_only(network_sockets(_tree(served.proc.pid)), served.port)


def test_the_data_server_refuses_other_addresses(built):
    for host in ("0.0.0.0", "::", "", "192.168.1.1", "::1"):
        with pytest.raises(ValueError):
            DataServer(object(), host=host)


@pytest.mark.slow
def test_desktop_app_process_tree_listens_only_on_loopback(built, tmp_path):
    """The app (pywebview + Qt WebEngine under Xvfb): one listening socket, 127.0.0.1."""
    S.require_system(shutil.which("Xvfb") is not None, "Xvfb")
    S.require_qt_window()
    xvfb, display = S.start_xvfb()
    out = tmp_path / "selftest.json"
    args = ["-m", "pocketpacs.ui", "--archive", str(built["archive"]), "app", "--selftest", str(out)]
    try:
        with S.app_selftest(args, S.app_env(os.environ, display), out) as (app, report):
            assert report["ready"] == "1" and report["transport"] == "bridge", report
            pids = _tree(app.pid)
            socks = network_sockets(pids)
            names = set()
            for p in pids:
                try:
                    names.add(Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")[0].decode())
                except OSError:
                    pass
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    assert any("QtWebEngine" in n for n in names), names       # the browser processes were inspected
    listening = [s for s in socks if s[2] == _TCP_LISTEN and s[0].startswith("tcp")]
    assert len(listening) == 1, socks                           # only the data server
    port = int(listening[0][1].rsplit(":", 1)[1])
    assert_loopback_only(socks, port)


# --------------------------------------------------------------------------- raw HTTP
def raw(port: int, method: str, target: str | bytes, headers: list[tuple[str, str]],
        body: bytes = b"") -> tuple[int, dict, bytes]:
    """Send one request byte for byte; return (status, headers, body)."""
    t = target.encode("utf-8") if isinstance(target, str) else target
    head = [method.encode() + b" " + t + b" HTTP/1.1"]
    head += [f"{k}: {v}".encode("latin-1") for k, v in headers]
    if body:
        head.append(f"Content-Length: {len(body)}".encode())
    head.append(b"Connection: close")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    head_raw, _, rest = data.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), v.strip())
    return status, hdrs, rest


class Client:
    def __init__(self, served: S.Served):
        self.port = served.port
        self.token = served.token
        self.host = f"127.0.0.1:{self.port}"
        self.cookie_name = f"{COOKIE_PREFIX}{self.port}"
        self.asset_key = ""             # the assets cookie's value, set by the fixture
        self.sent = 0

    def send(self, route, target=None, *, host="ok", token="ok", cookie=None, origin=None,
             extra=(), method=None):
        """One request to *route* (its example, or *target*) with the given credentials."""
        method = method or route.method
        hdrs = []
        if host == "ok":
            hdrs.append(("Host", self.host))
        elif host is not None:
            hdrs.append(("Host", host))
        if token == "ok":
            if route.auth == AUTH_PAGE:     # the page: the token in its URL (launch_url)
                target = target or self.target(route)
                target = target if "?" in target else f"{target}?token={self.token}"
            else:
                hdrs.append((TOKEN_HEADER, self.token))
        elif token is not None:
            hdrs.append((TOKEN_HEADER, token))
        if cookie:
            hdrs.append(("Cookie", cookie))
        if origin:
            hdrs.append(("Origin", origin))
        hdrs += list(extra)
        body = b""
        if method == "POST":
            body = b"{}"
            hdrs.append(("Content-Type", "application/json"))
        self.sent += 1
        status, h, data = raw(self.port, method, target or self.target(route), hdrs, body)
        # whatever the answer: the CSP, no CORS, no Python version in Server
        assert h.get("content-security-policy") == CSP, (target, h)
        assert "access-control-allow-origin" not in h and "access-control-allow-credentials" not in h
        assert "python" not in h.get("server", "").lower()
        return status, h, data

    def target(self, route) -> str:
        return route.example.format(**self.ids)


@pytest.fixture(scope="module")
def client(served):
    c = Client(served)
    hdr = [("Host", c.host), (TOKEN_HEADER, c.token), ("Content-Type", "application/json")]
    st, _, data = raw(c.port, "POST", "/v1/call/search", hdr, b"{}")
    rows = json.loads(data)["data"]["rows"]
    sid = next(r["series_id"] for r in rows if r["modality"] == "CT")
    st, _, data = raw(c.port, "POST", "/v1/call/open_series", hdr, json.dumps({"series_id": sid}).encode())
    vid = json.loads(data)["data"]["volume_id"]
    c.ids = {"volume_id": vid, "series_id": sid}
    st, h, _ = raw(c.port, "GET", f"/?token={c.token}", [("Host", c.host)], b"")
    name, _, c.asset_key = h["set-cookie"].split(";")[0].partition("=")
    assert st == 200 and name == c.cookie_name and c.asset_key and c.asset_key != c.token
    yield c
    print(f"\nHTTP: {len(ROUTES)} routes, {c.sent} requests sent by the security tests")


OK_STATUS = {"_page": 200, "_favicon": 204}

SECRET_MARKERS = (b"root:x:0:0", b"[fonts]", b"import ", b"def ", b"lmdb", b"BEGIN ")


def test_every_route_answers_with_valid_credentials(client):
    """The table is the truth: each example works, so each row below tests a live route."""
    assert len(ROUTES) >= 8
    for route in ROUTES:
        st, h, body = client.send(route)
        assert st == OK_STATUS.get(route.handler, 200), (route.example, st, body[:200])
        if route.method == "GET":
            st2, _, body2 = client.send(route, method="HEAD")
            assert st2 == st and body2 == b""


def _bad_tokens(token: str) -> list[str]:
    return ["x" * len(token), token[:-1], token + "A", token.upper() if token.upper() != token else token.lower(),
            token[1:] + token[0], "", token[:20] + ("B" if token[20] != "B" else "C") + token[21:],
            token + token, "null", "undefined", "0" * 64]


def test_every_route_refuses_missing_and_wrong_tokens(client):
    refused = 0
    for route in ROUTES:
        st, _, body = client.send(route, token=None)
        assert st == 403, (route.example, "no token")
        refused += 1
        for bad in _bad_tokens(client.token):
            if route.auth == AUTH_PAGE:
                st, _, _ = client.send(route, token=None, cookie=f"{client.cookie_name}={bad}")
                assert st == 403, (route.example, bad)
                st, _, _ = client.send(route, f"/?token={bad}", token=None)
                assert st == 403, (route.example, bad)
                refused += 2
            else:
                st, _, _ = client.send(route, token=bad)
                assert st == 403, (route.example, bad)
                st, _, _ = client.send(route, token=None, cookie=f"{client.cookie_name}={bad}")
                assert st == 403, (route.example, bad)
                refused += 2
        if route.auth in (AUTH_HEADER, AUTH_PAGE):
            # the assets cookie opens neither the API nor the page (which holds the API token),
            # nor does the API token sent as a cookie, under any name (issue 13)
            for jar in (f"{client.cookie_name}={client.asset_key}", f"{client.cookie_name}={client.token}",
                        f"pocketpacs_token={client.token}"):
                st, _, _ = client.send(route, token=None, cookie=jar)
                assert st == 403, (route.example, jar)
                refused += 1
        if route.auth == AUTH_HEADER:
            # the token in the query string is not enough for the API
            t = client.target(route)
            st, _, _ = client.send(route, f"{t}?token={client.token}", token=None)
            assert st in (403, 404), route.example
            refused += 2
        elif route.auth == AUTH_COOKIE_OR_HEADER:
            t = client.target(route)
            st, _, _ = client.send(route, f"{t}?token={client.token}", token=None)
            assert st == 403, route.example
            refused += 1
    assert refused >= len(ROUTES) * 20
    print(f"\ntokens: {refused} requests without a valid credential, all 403")


def test_every_route_refuses_wrong_host_origin_and_cross_site(client):
    p = client.port
    hosts = ["evil.example", f"evil.example:{p}", f"127.0.0.1:{p + 1}", "127.0.0.1", "localhost",
             f"127.0.0.1:{p}.evil.example", f"0.0.0.0:{p}", f"[::1]:{p}", f"127.0.0.1:{p}@evil.example",
             f"127.0.0.2:{p}", f"LOCALHOST.:{p}", "", None]
    origins = ["http://evil.example", "null", f"http://127.0.0.1:{p + 1}", f"https://127.0.0.1:{p}",
               f"http://127.0.0.1:{p}.evil.example", f"http://localhost.evil.example:{p}", "file://",
               "http://127.0.0.1", f"http://[::1]:{p}", f"http://evil.example/http://127.0.0.1:{p}"]
    for route in ROUTES:
        for host in hosts:
            st, _, _ = client.send(route, host=host)
            assert st == 403, (route.example, "host", host)
        # a second, foreign Host header after the right one
        st, _, _ = client.send(route, extra=[("Host", "evil.example")])
        assert st == 403, (route.example, "two hosts")
        for origin in origins:
            st, _, _ = client.send(route, origin=origin)
            assert st == 403, (route.example, "origin", origin)
        for site in ("cross-site", "same-site"):
            st, _, _ = client.send(route, extra=[("Sec-Fetch-Site", site)])
            assert st == 403, (route.example, site)
        # and the same-origin ones pass (the refusals above are about the header)
        st, _, _ = client.send(route, origin=f"http://127.0.0.1:{p}", extra=[("Sec-Fetch-Site", "same-origin")])
        assert st == OK_STATUS.get(route.handler, 200), route.example
    n = len(ROUTES) * (len(hosts) + 1 + len(origins) + 2)
    print(f"\nHost/Origin/fetch-site: {n} requests ({len(hosts) + 1} Host, {len(origins)} Origin, 2 Sec-Fetch-Site"
          f" forms x {len(ROUTES)} routes), all 403")


def test_every_route_refuses_other_methods(client):
    for route in ROUTES:
        st, h, _ = client.send(route, method="OPTIONS")
        assert st == 403, route.example
        for m in ("PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"):
            st, _, _ = client.send(route, method=m)
            assert st in (405, 501), (route.example, m)
        other = "POST" if route.method == "GET" else "GET"
        st, _, _ = client.send(route, method=other)
        assert st == 405, (route.example, other)
    print(f"\nmethods: {len(ROUTES) * 7} requests (OPTIONS 403; PUT, DELETE, PATCH, TRACE, PROPFIND, other verb"
          " 405/501)")


TRAVERSAL = [
    "..", "../..", "../../../../../../etc/passwd", "%2e%2e", "%2E%2E/%2E%2E/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2f..%2fetc%2fpasswd", "..%252f..%252fetc%252fpasswd",
    "%252e%252e", "%2F", "%2fetc%2fpasswd", "/etc/passwd", "//etc/passwd", "..\\..\\..\\windows\\win.ini",
    "..%5c..%5cwindows%5cwin.ini", "%5c%5cserver%5cshare", "C:\\Windows\\win.ini", "C:%5cWindows%5cwin.ini",
    "c:/windows/win.ini", "\x00", "%00", "abc%00.js", "main.js%00.py", "..%00/", "..%c0%af..%c0%afetc",
    "%c0%ae%c0%ae", "....//....//etc", "..;/..;/etc", ".%2e/.%2e/etc", "%u002e%u002e", "~root",
    "file:///etc/passwd", "\u2025", "..%e2%80%a8",
]


def _variants(client, route) -> list[str]:
    """The route's example with each traversal form in its variable part(s), and around it."""
    t = client.target(route)
    ident = {client.ids["volume_id"], client.ids["series_id"]} & set(t.split("/"))
    head, _, last = t.rpartition("/")
    out = []
    for form in TRAVERSAL:
        if ident:
            i = ident.pop() if len(ident) == 1 else sorted(ident)[0]
            ident = {i}
            out += [t.replace(i, form), t.replace(i, f"{i}/{form}"), t.replace(i, f"{form}/{i}"),
                    t.replace(i, i + form)]
        else:
            out += [f"{head}/{form}", f"{head}/{form}/{last}", f"{t}/{form}", f"{t}{form}"]
        out.append(f"/{form}{t}")
    out += ["/../" + t[1:], "/./" + t[1:], "/%2e%2e/" + t[1:], "/%2e/" + t[1:], "//" + t[1:],
            "\\" + t[1:], "/.." + t, f"http://127.0.0.1:{client.port}{t}", f"http://evil.example{t}", "*",
            t.replace("/", "\\"), t.replace("/", "%2f"), t + "/", t + "/.", t + "/..", t + "\x00"]
    return sorted(set(v for v in out if v != t))


def test_every_route_refuses_path_traversal_forms(client):
    tried = 0
    for route in ROUTES:
        for target in _variants(client, route):
            st, _, body = client.send(route, target)
            tried += 1
            assert st in (400, 404), (route.example, target, st, body[:120])
            assert not any(m in body for m in SECRET_MARKERS), (target, body[:200])
    assert tried >= len(ROUTES) * len(TRAVERSAL) * 4
    print(f"\ntraversal: {len(TRAVERSAL)} forms, {tried} requests over {len(ROUTES)} routes, all 400/404")
    # and the static files are exactly the table built at start-up
    st, _, body = client.send(ROUTES[2], "/js/main.js")
    assert st == 200 and body == (Path(S.TESTS.parent) / "ui" / "web" / "js" / "main.js").read_bytes()


# --------------------------------------------------------------------------- bridge
OUTSIDE = [
    "hello.__func__.__globals__", "hello.__func__.__globals__.clear", "hello.__func__", "hello.__call__",
    "hello.__self__", "search.__self__.__class__", "__class__", "__class__.__subclasses__", "__init__",
    "__dict__", "__getattribute__", "__reduce__", "_COMMANDS", "_COMMANDS.clear", "_reply", "call", "bind",
    "install_guard", "Api", "SCHEMAS", "cmd_hello", "hello.", ".hello", "hello..", "HELLO", "Hello",
    "hello ", " hello", "hello\x00", "hello\n", "hel-lo", "search/../hello", "import_start.__doc__",
    "pywebviewMoveWindow", "pywebviewEventHandler", "pywebviewAsyncResponse", "", "a" * 1000, None, 1,
    ["hello"], {"name": "hello"},
]


class _RecordingWindow:
    """Enough of a pywebview ``Window`` for its ``js_bridge_call``; records what reaches it."""

    def __init__(self):
        self._js_api = bridge.Api()
        self._functions: dict = {}
        self.js: list[str] = []
        self.moved: list = []
        self.events: list = []

    def run_js(self, code):
        self.js.append(code)

    def evaluate_js(self, code, *a, **k):
        self.js.append(code)

    def move(self, *a):
        self.moved.append(a)


def test_bridge_refuses_names_outside_the_allowlist(served):
    for name in OUTSIDE:
        env = bridge.call(name, {})
        assert env == protocol.fail(protocol.NOT_ALLOWED, "Unknown command."), name
    assert bridge.ALLOWED and all(n.isidentifier() and n.islower() and not n.startswith("_")
                                  and "." not in n for n in bridge.ALLOWED)
    assert not any(k for k in dir(bridge.Api) if not k.startswith("__") and k not in bridge.ALLOWED)
    assert bridge.Api.__slots__ == ()


def test_pywebview_entry_point_refuses_them_once_guarded():
    import webview.util as wu

    bridge.install_guard()
    assert bridge.guard_installed() and wu.js_bridge_call is bridge.guarded_js_bridge_call
    commands_before = dict(bridge._COMMANDS)
    win = _RecordingWindow()
    for i, name in enumerate(OUTSIDE):
        wu.js_bridge_call(win, name, [{}], f"id{i}")
    end = time.monotonic() + 10
    def replies() -> list:
        return [j for j in win.js if "_returnValuesCallbacks" in j]
    expected = len(OUTSIDE)                                  # every refusal is answered (issue 13)
    while len(replies()) < expected and time.monotonic() < end:
        time.sleep(0.02)
    assert len(replies()) == expected > 20
    for js in replies():
        assert "not_allowed" in js and "Unknown command." in js
        assert "Traceback" not in js and "__globals__" not in js.split("{value:")[-1]
    assert win.moved == []                                   # pywebviewMoveWindow was not honoured
    assert dict(bridge._COMMANDS) == commands_before         # "_COMMANDS.clear" did nothing
    assert hasattr(bridge, "ALLOWED") and hasattr(bridge, "call")  # "__globals__.clear" did nothing
    print(f"\nbridge: {len(OUTSIDE)} names outside the allowlist refused by bridge.call and by pywebview's"
          " guarded entry point")


NON_ASCII = ["h\u00e9llo", "hello\u202e", "\u540d\u524d", "hello\u2028", "hello\u2029", "\U0001f600",
             "x'y", "a\\b", "</script><script>alert(1)</script>", "\\u0027", "hello\x00", "\ufeffhello",
             "\u0441earch"]


def test_bridge_answers_non_ascii_and_quoting_names_with_the_refusal():
    """A name the page cannot have meant (non-ASCII, quotes, backslashes, line separators) still gets
    its answer: the page's promise is settled with the refusal, not left pending (issue 13)."""
    bridge.install_guard()
    win = _RecordingWindow()
    for i, name in enumerate(NON_ASCII):
        bridge.guarded_js_bridge_call(win, name, [{}], f"na{i}")
    end = time.monotonic() + 10
    while len(win.js) < len(NON_ASCII) and time.monotonic() < end:
        time.sleep(0.02)
    assert len(win.js) == len(NON_ASCII), win.js
    for i, name in enumerate(NON_ASCII):
        js = next(j for j in win.js if f"['na{i}']" in j)
        assert js.isascii() and "\u2028" not in js and "\x00" not in js
        # the name is a JSON string literal (quotes and backslashes escaped: no way out of it)
        assert "[" + json.dumps(name, ensure_ascii=True) + "]" in js, (name, js)
        assert "not_allowed" in js and "Unknown command." in js


# --------------------------------------------------------------------------- cookie scope (issue 13)
class _Spy:
    """Another local server (another port of 127.0.0.1): records every header the browser sends it."""

    def __init__(self):
        import http.server
        import threading

        seen = self.seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(list(self.headers.items()))
                body = (b"<!doctype html><title>spy</title><img src='/img.png'>"
                        b"<script>fetch('/fetch', {credentials: 'include'});"
                        b"document.title = 'spy:' + document.cookie;</script>")
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_another_local_origin_captures_nothing_that_opens_the_api(browser, served, client):
    """The PocketPACS page is opened, then the same browser visits another server on another
    127.0.0.1 port (cookies do not isolate ports; SameSite=Strict counts it as the same site).
    Everything that server received -- the Cookie header, each cookie value, every header value --
    is replayed against every route: no API route, and not the page (which holds the API token),
    accepts any of it; no asset answer carries the token (issue 13)."""
    spy = _Spy()
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(served.url)
        S.wait_js(page, "document.body.dataset.ready")
        assert page.evaluate("document.body.dataset.ready") == "1"
        page.goto(f"http://127.0.0.1:{spy.port}/")              # same tab, top-level navigation
        other = ctx.new_page()
        other.goto(f"http://127.0.0.1:{spy.port}/page2")        # a new tab
        end = time.monotonic() + 20
        while len(spy.seen) < 6 and time.monotonic() < end:      # 2 pages, 2 images, 2 fetches
            time.sleep(0.05)
        titles = [page.title(), other.title()]
        jar = ctx.cookies()
    finally:
        ctx.close()
        spy.stop()
    assert len(spy.seen) >= 4, spy.seen
    cookie_headers = sorted({v for req in spy.seen for k, v in req if k.lower() == "cookie"})
    values = set()
    for raw_cookie in cookie_headers:
        for part in raw_cookie.split(";"):
            name, _, value = part.strip().partition("=")
            values |= {value, name, part.strip()}
    values |= {v for req in spy.seen for _k, v in req}
    values |= {t.partition(":")[2] for t in titles}
    values.discard("")
    assert all(client.token not in v for v in values), "the API token reached another origin"
    assert all(client.token not in c["value"] for c in jar)   # not in any cookie at all
    refused = 0
    for route in ROUTES:
        t = client.target(route)
        tries = [dict(token=None, cookie=c) for c in cookie_headers]
        tries += [dict(token=v) for v in values if v.isascii() and "\r" not in v and "\n" not in v]
        tries += [dict(target=f"{t}?token={v}", token=None, cookie=c)
                  for v in values if v.isascii() and " " not in v and "#" not in v
                  for c in (cookie_headers or [None])[:1]]
        for kw in tries:
            st, _, body = client.send(route, kw.pop("target", None), **kw)
            if route.auth == AUTH_COOKIE_OR_HEADER and st in (200, 204):   # code and icon, no data
                assert client.token.encode() not in body, route.example
                continue
            assert st in (403, 404), (route.example, kw, st, body[:200])
            refused += 1
    assert refused > len(ROUTES)
    print(f"\ncookie scope: another 127.0.0.1 port received {len(cookie_headers)} Cookie headers,"
          f" {len(values)} values; {refused} replays against {len(ROUTES)} routes, all refused")
