"""HTTP requests to a served app (:class:`pocketpacs.ui.server.DataServer`) in tests.

One place for what every server test does: a request on 127.0.0.1 with the
launch token, the Host header and a JSON body, and a bridge call through
``POST /v1/call/<name>``.
"""
from __future__ import annotations

import http.client
import json

from pocketpacs.ui.server import TOKEN_HEADER


def req(srv, method, path, *, token=True, host=None, origin=None, body=None, headers=None,
        cookie=None, timeout=120):
    """One request; ``token``: True (the server's), a string, or False (none).

    Returns
    -------
    (http.client.HTTPResponse, bytes)
        The response (read) and its body.
    """
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)
    h = {"Host": host or f"127.0.0.1:{srv.port}"}
    if token is True:
        h[TOKEN_HEADER] = srv.token
    elif isinstance(token, str):
        h[TOKEN_HEADER] = token
    if origin:
        h["Origin"] = origin
    if cookie:
        h["Cookie"] = cookie
    if body is not None:
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def call(srv, name, args=None, **kw):
    """A bridge call: ``(status, envelope)``."""
    r, data = req(srv, "POST", f"/v1/call/{name}", body=args or {}, **kw)
    return r.status, json.loads(data) if data else None
