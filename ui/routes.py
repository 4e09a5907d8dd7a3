"""The server's route table: what it answers, to whom, and the files it may send.

Every answer of :mod:`pocketpacs.ui.server` comes from :data:`ROUTES`, each
route with the credential it needs (:data:`AUTH_PAGE`,
:data:`AUTH_COOKIE_OR_HEADER`, :data:`AUTH_HEADER`); the static files are
looked up by name in :func:`asset_table`, built at start-up from the names
:data:`_ASSET_NAME` allows, never by a path taken from the request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

WEB_ROOT = Path(__file__).resolve().parent / "web"
MIME = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".glsl": "text/plain; charset=utf-8",
}
_ASSET_NAME = re.compile(r"^(css|js|js/gl|js/views|js/viewer|shaders)/[A-Za-z0-9_.-]+\.(css|js|glsl)$")

#: Who may use a route: the page (``?token=``, the API token, in its URL),
#: static files (the assets cookie or the header), the data API (the header only).
AUTH_PAGE = "page"
AUTH_COOKIE_OR_HEADER = "cookie_or_header"
AUTH_HEADER = "header"


@dataclass(frozen=True)
class Route:
    """One entry of the server's route table.

    Parameters
    ----------
    method : str
        ``"GET"`` (also answers ``HEAD``) or ``"POST"``.
    pattern : re.Pattern
        Full match on the URL path (before ``?``).
    handler : str
        Name of the request-handler method.
    auth : str
        :data:`AUTH_PAGE`, :data:`AUTH_COOKIE_OR_HEADER` or :data:`AUTH_HEADER`.
    example : str
        A concrete path (``{placeholders}`` for ids) -- the security tests
        send every check to every route through it.
    """

    method: str
    pattern: re.Pattern
    handler: str
    auth: str
    example: str


#: Everything the server answers.  The dispatcher consults nothing else.
ROUTES: tuple[Route, ...] = (
    Route("GET", re.compile(r"^/(?:index\.html)?$"), "_page", AUTH_PAGE, "/"),
    Route("GET", re.compile(r"^/favicon\.ico$"), "_favicon", AUTH_COOKIE_OR_HEADER, "/favicon.ico"),
    Route("GET", re.compile(r"^/" + _ASSET_NAME.pattern[1:]), "_asset", AUTH_COOKIE_OR_HEADER,
          "/js/main.js"),
    Route("GET", re.compile(r"^/v1/volume/(?P<id>[^/]{1,128})/header$"), "_volume_header",
          AUTH_HEADER, "/v1/volume/{volume_id}/header"),
    Route("GET", re.compile(r"^/v1/volume/(?P<id>[^/]{1,128})/data$"), "_volume_data",
          AUTH_HEADER, "/v1/volume/{volume_id}/data"),
    Route("GET", re.compile(r"^/v1/volume/(?P<id>[^/]{1,128})/slice/(?P<z>\d{1,6})$"),
          "_volume_slice", AUTH_HEADER, "/v1/volume/{volume_id}/slice/0"),
    Route("GET", re.compile(r"^/v1/thumb/(?P<id>[^/]{1,128})$"), "_thumb_route", AUTH_HEADER,
          "/v1/thumb/{series_id}"),
    Route("POST", re.compile(r"^/v1/call/(?P<name>[a-z_]{1,40})$"), "_call", AUTH_HEADER,
          "/v1/call/hello"),
)


_CHARSET_UTF8 = re.compile(r'^charset\s*=\s*(?:utf-8|"utf-8")$', re.IGNORECASE)


def is_json_media_type(values: list[str]) -> bool:
    """Whether the request's ``Content-Type`` header(s) say JSON, parsed exactly.

    Parameters
    ----------
    values : list of str
        Every ``Content-Type`` header of the request.

    Returns
    -------
    bool
        True for exactly one header whose media type is ``application/json``
        (any case) with no parameter but an optional ``charset=utf-8``.
    """
    if len(values) != 1:
        return False
    mtype, *params = values[0].split(";")
    if mtype.strip().lower() != "application/json" or len(params) > 1:
        return False
    return all(_CHARSET_UTF8.match(p.strip()) for p in params)


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


__all__ = ["WEB_ROOT", "MIME", "AUTH_PAGE", "AUTH_COOKIE_OR_HEADER", "AUTH_HEADER", "Route", "ROUTES",
           "is_json_media_type", "asset_table"]
