"""XSS payloads for the UI tests (issue 7).

Each payload has a hook that shows when it runs or is taken as markup:
``__xss(N)`` (a function the test defines in the page), ``alert(N)`` /
``confirm(N)`` / ``prompt(N)`` (a dialog), or a request to
``//127.0.0.1:9/xssN`` (a network request the test sees; port 9 refuses at
once).  ``{n}`` is replaced by the payload's number.  Most are at most 64
characters so they fit LO and PN components unchanged.
"""
from __future__ import annotations

NET = "//127.0.0.1:9/xss{n}"

RAW = [
    # script elements
    "<script>__xss({n})</script>",
    "<ScRiPt>__xss({n})</sCrIpT>",
    "<script src={net}></script>",
    "<script>alert({n})</script>",
    "</td><script>__xss({n})</script>",
    "</title></textarea></style><script>__xss({n})</script>",
    "<scr<script>ipt>__xss({n})</script>",
    "<script\x0c>__xss({n})</script>",
    # event handlers
    "<img src=x onerror=__xss({n})>",
    "<img src=x onerror=\"__xss({n})\">",
    "<IMG SRC=x OnErRoR=__xss({n})>",
    "<img/src=x/onerror=__xss({n})>",
    "<img src={net}>",
    "<svg onload=__xss({n})>",
    "<svg><script>__xss({n})</script></svg>",
    "<svg><animate onbegin=__xss({n}) attributeName=x dur=1s>",
    "<body onload=__xss({n})>",
    "<iframe src=javascript:__xss({n})>",
    "<iframe srcdoc=\"<script>parent.__xss({n})</script>\">",
    "<details open ontoggle=__xss({n})>",
    "<input autofocus onfocus=__xss({n})>",
    "<video><source onerror=__xss({n})></video>",
    "<audio src=x onerror=__xss({n})>",
    "<marquee onstart=__xss({n})>x</marquee>",
    "<object data={net}></object>",
    "<embed src={net}>",
    "<link rel=stylesheet href={net}>",
    "<meta http-equiv=refresh content=\"0;url={net}\">",
    "<base href={net}/>",
    "<form action={net}><button>x</button></form>",
    "<math><mtext><img src=x onerror=__xss({n})>",
    "<div style=\"background:url({net})\">x</div>",
    # javascript: URLs
    "<a href=\"javascript:__xss({n})\">x</a>",
    "javascript:__xss({n})",
    "<a href=\"jav&#x09;ascript:__xss({n})\">x</a>",
    "data:text/html,<script>__xss({n})</script>",
    # attribute breakouts
    "\"><img src=x onerror=__xss({n})>",
    "'><img src=x onerror=__xss({n})>",
    "\" onmouseover=\"__xss({n})\" x=\"",
    "' onfocus='__xss({n})' autofocus='",
    "`><img src=x onerror=__xss({n})>",
    # template literals / JS string contexts
    "${{__xss({n})}}",
    "`${{__xss({n})}}`",
    "{{{{constructor.constructor('__xss({n})')()}}}}",
    "';__xss({n});//",
    "\";__xss({n});//",
    "</script><script>__xss({n})</script>",
    # CSS expressions
    "<style>@import '{net}';</style>",
    "<div style=\"width:expression(__xss({n}))\">",
    "<style>*{{background:url({net})}}</style>",
    # encoded and unicode variants
    "&lt;img src=x onerror=__xss({n})&gt;",
    "&#60;script&#62;__xss({n})&#60;/script&#62;",
    "%3Cscript%3E__xss({n})%3C/script%3E",
    "\uff1cscript\uff1e__xss({n})\uff1c/script\uff1e",
    "<img src=x onerror=\u005f_xss({n})>",
    "<scr\u0131pt>__xss({n})</scr\u0131pt>",
    "\u202e<img src=x onerror=__xss({n})>",
    "<img src=x onerror=&#95;&#95;xss({n})>",
    "<!--<img src=--><img src=x onerror=__xss({n})//-->",
    "<noscript><p title=\"</noscript><img src=x onerror=__xss({n})>\">",
]


def payloads() -> list[str]:
    """The corpus with each payload's number filled in (numbers from 1)."""
    out = []
    for i, p in enumerate(RAW, 1):
        out.append(p.replace("{net}", NET).format(n=i))
    return out


__all__ = ["payloads", "RAW", "NET"]
