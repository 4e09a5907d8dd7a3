"""The JS bridge: an explicit allowlist of commands behind a walk-proof facade.

pywebview 6.2.1 resolves any dotted name sent from JavaScript on the
``js_api`` object with ``getattr`` (underscore and dunder names included), so
``hello.__func__.__globals__`` would reach this module's globals.  Three
controls stop that (``../shared/notes/reliability.md`` §3.3/3.4):

1. :class:`Api` has ``__slots__ = ()`` and no attributes; every method only
   forwards to :func:`_call`, which looks the command up in the module-private
   table :data:`_COMMANDS`.
2. :func:`install_guard` replaces ``webview.util.js_bridge_call`` (and the
   copy each platform module imported): an allowed name runs :func:`call`
   directly -- pywebview's ``getattr`` walk is never used -- and any other
   name (dotted, underscore, dunder, pywebview's internal messages) is refused
   with a ``not_allowed`` envelope.  Replies go through ``window.run_js``
   because pywebview's ``evaluate_js`` wraps code in ``eval``, which the
   page's CSP forbids; likewise the injected script is patched to build the
   API functions as closures instead of ``new Function``.
3. Every command catches everything and answers one envelope
   (:mod:`pocketpacs.ui.protocol`): no traceback, no path, no patient data.

The same table serves ``POST /v1/call/<name>`` in serve mode, so the page
talks to one API whichever transport carries it.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
from typing import Any, Callable

from . import protocol
from .protocol import Arg

log = logging.getLogger("pocketpacs.ui.bridge")

_ID = r"[0-9a-f]{16,64}"
_DATES = r"[0-9 .\-–—toTO]*"
_PROFILE = r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}"  # a profile name of share-profiles.json

#: name -> argument schema.  Nothing outside this table can be called.
SCHEMAS: dict[str, dict[str, Arg]] = {
    "hello": {},
    "stats": {},
    "search": {
        "name": Arg(str, max_len=128), "patient_id": Arg(str, max_len=128),
        # dates and ranges as the CLI takes them (pocketpacs.archive.query.parse_date_range)
        "birth_date": Arg(str, pattern=_DATES, max_len=32),
        "study_date": Arg(str, pattern=_DATES, max_len=32),
        "date_from": Arg(str, pattern=_DATES, max_len=10),
        "date_to": Arg(str, pattern=_DATES, max_len=10),
        "modality": Arg(str, max_len=16), "description": Arg(str, max_len=128),
        "accession": Arg(str, max_len=64),
        "limit": Arg(int, lo=1, hi=100000, default=5000),
    },
    "browse": {
        "name": Arg(str, max_len=128), "patient_id": Arg(str, max_len=128),
        "birth_date": Arg(str, pattern=_DATES, max_len=32),
        "study_date": Arg(str, pattern=_DATES, max_len=32),
        "modality": Arg(str, max_len=16), "description": Arg(str, max_len=128),
        "accession": Arg(str, max_len=64),
        "limit": Arg(int, lo=1, hi=100000, default=5000),
    },
    "open_series": {"series_id": Arg(str, required=True, pattern=_ID, max_len=64),
                    "stack": Arg(int, lo=0, hi=1 << 16, default=0),
                    "slot": Arg(str, pattern=r"[a-z0-9]{1,16}", default="main", max_len=16)},
    # the same patient's other studies with series of this one's modality (Compare: open prior)
    "priors": {"series_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "volume_status": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "volume_report": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "instance_header": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64),
                        "slice": Arg(int, required=True, lo=0, hi=1 << 20)},
    "remove_series": {"series_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "remove_study": {"study_key": Arg(str, required=True, pattern=_ID, max_len=64)},
    "remove_patient": {"patient_key": Arg(str, required=True, pattern=_ID, max_len=64)},
    "import_start": {"path": Arg(str, max_len=4096)},
    "import_status": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "import_cancel": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "open_other": {"path": Arg(str, max_len=4096),
                   "slot": Arg(str, pattern=r"[a-z0-9]{1,16}", default="main", max_len=16)},
    "load_media": {"path": Arg(str, max_len=4096)},
    "close_media": {},
    "copy_media": {"path": Arg(str, max_len=4096)},
    "save_png": {"data": Arg(str, required=True, max_len=64 << 20,
                             pattern=r"data:image/png;base64,[A-Za-z0-9+/=]+")},
    # measurements kept with a series (issue 17; checked by pocketpacs.archive.annotations)
    "measurements_get": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "measurements_save": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64),
                          "measurements": Arg(list, required=True, max_len=2000)},
    "measurements_export": {"volume_id": Arg(str, required=True, pattern=_ID, max_len=64),
                            "measurements": Arg(list, required=True, max_len=2000),
                            "format": Arg(str, required=True, pattern=r"json|csv", max_len=4)},
    # the share dialog (ui/share_commands.py): the row's series, its study or its patient
    "share_preview": {"series_id": Arg(str, required=True, pattern=_ID, max_len=64),
                      "scope": Arg(str, pattern=r"series|study|patient", default="series", max_len=8),
                      "options": Arg(list, max_len=16), "allow_burned_in": Arg(bool, default=False),
                      "profile": Arg(str, pattern=_PROFILE, max_len=64)},
    "share_start": {"series_id": Arg(str, required=True, pattern=_ID, max_len=64),
                    "scope": Arg(str, pattern=r"series|study|patient", default="series", max_len=8),
                    "deidentify": Arg(bool, default=False), "options": Arg(list, max_len=16),
                    "profile": Arg(str, pattern=_PROFILE, max_len=64),
                    "dicomdir": Arg(bool, default=False), "viewer": Arg(bool, default=False),
                    "zip": Arg(bool, default=False), "allow_burned_in": Arg(bool, default=False),
                    "path": Arg(str, max_len=4096)},
    "share_status": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "share_cancel": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "share_profiles": {},
    # the Network view (ui/network_commands.py); a password is only ever sent, never answered
    "net_nodes": {},
    "net_add": {"name": Arg(str, required=True, max_len=64), "kind": Arg(str, required=True,
                                                                          pattern=r"dimse|dicomweb"),
                "aet": Arg(str, max_len=16), "host": Arg(str, max_len=255), "port": Arg(int, lo=1, hi=65535),
                "calling_aet": Arg(str, max_len=16), "retrieve": Arg(str, pattern=r"get|move"),
                "move_port": Arg(int, lo=1, hi=65535), "url": Arg(str, max_len=2048),
                "user": Arg(str, max_len=256), "password": Arg(str, max_len=1024),
                "verify": Arg(bool, default=True), "replace": Arg(bool, default=False)},
    "net_remove": {"name": Arg(str, required=True, max_len=64)},
    "net_echo": {"name": Arg(str, required=True, max_len=64)},
    "net_find": {
        "node": Arg(str, required=True, max_len=64),
        "name": Arg(str, max_len=128), "patient_id": Arg(str, max_len=128),
        "birth_date": Arg(str, pattern=_DATES, max_len=32),
        "study_date": Arg(str, pattern=_DATES, max_len=32),
        "date_from": Arg(str, pattern=_DATES, max_len=10),
        "date_to": Arg(str, pattern=_DATES, max_len=10),
        "modality": Arg(str, max_len=16), "description": Arg(str, max_len=128),
        "accession": Arg(str, max_len=64),
        "limit": Arg(int, lo=1, hi=100000, default=1000),
    },
    "net_get": {"node": Arg(str, required=True, max_len=64),
                "study_uid": Arg(str, required=True, pattern=r"[0-9.]{1,64}", max_len=64),
                "series_uids": Arg(list, max_len=1000)},
    "net_send": {"node": Arg(str, required=True, max_len=64),
                 "series_id": Arg(str, required=True, pattern=_ID, max_len=64),
                 "scope": Arg(str, pattern=r"series|study", default="series")},
    "net_job": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "net_cancel": {"job_id": Arg(str, required=True, pattern=_ID, max_len=64)},
    "net_listen": {"on": Arg(bool, required=True), "port": Arg(int, lo=0, hi=65535, default=11112),
                   "aet": Arg(str, max_len=16, default="POCKETPACS"),
                   "bind": Arg(str, max_len=255, default="127.0.0.1"),   # checked as `listen --bind`
                   "allow": Arg(str, max_len=400, default="")},          # calling AE titles, as `--allow`
    "net_listener": {},
}

#: The allowlist: plain lower-case names only, never dotted or underscored.
ALLOWED = frozenset(SCHEMAS)

_NAME = re.compile(r"^[a-z][a-z_]{0,39}$")

# name -> handler(args) ; filled by bind().  Module-private: the facade holds no reference.
_COMMANDS: dict[str, Callable[[dict], Any]] = {}
_lock = threading.Lock()


def bind(handlers: dict[str, Callable[[dict], Any]]) -> None:
    """Connect command names to their implementations.

    Parameters
    ----------
    handlers : dict
        ``name -> callable(args) -> data``; every name must be in :data:`ALLOWED`.

    Raises
    ------
    ValueError
        For a name outside the allowlist or a missing one.
    """
    extra = set(handlers) - ALLOWED
    missing = ALLOWED - set(handlers)
    if extra or missing:
        raise ValueError(f"bridge handlers do not match the allowlist: {sorted(extra | missing)}")
    with _lock:
        _COMMANDS.clear()
        _COMMANDS.update(handlers)


def call(name: Any, args: Any = None) -> dict:
    """Run one command and return its envelope; never raises.

    Parameters
    ----------
    name : Any
        Command name sent by the page.
    args : Any
        Its argument object.

    Returns
    -------
    dict
        ``{"ok": True, "data": ...}`` or an error envelope.
    """
    try:
        if not isinstance(name, str) or name not in ALLOWED or not _NAME.match(name):
            return protocol.fail(protocol.NOT_ALLOWED, "Unknown command.")
        handler = _COMMANDS.get(name)
        if handler is None:
            return protocol.fail(protocol.UNAVAILABLE, "The application is not ready.")
        clean = protocol.validate_args(args, SCHEMAS[name])
        return protocol.ok(handler(clean))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        if not isinstance(exc, protocol.BridgeError):
            log.warning("bridge: command %s failed (%s)", name if name in ALLOWED else "?",
                        type(exc).__name__, exc_info=exc)
        return protocol.envelope_for_exception(exc)


def _make_method(name: str):
    def method(self, args=None):
        return call(name, args)

    method.__name__ = name
    method.__qualname__ = f"Api.{name}"
    method.__doc__ = f"Bridge command ``{name}``; returns an envelope."
    return method


class Api:
    """The object given to pywebview as ``js_api``.

    It has no state (``__slots__ = ()``) and one method per allowed command;
    each method forwards to :func:`call`.  Walking from a method (``__func__``,
    ``__globals__``...) is stopped by :func:`install_guard`, which refuses
    every name that is not exactly an allowed command.
    """

    __slots__ = ()


for _n in sorted(ALLOWED):
    setattr(Api, _n, _make_method(_n))
del _n


# ------------------------------------------------------------- pywebview guard
_SAFE_VALUE_ID = re.compile(r"^[0-9A-Za-z]{1,40}$")
_original: Callable | None = None


def _reply(window: Any, func_name: str, value_id: str, envelope: dict) -> None:
    """Resolve the page's pending promise with *envelope*.

    Uses ``window.run_js`` (plain script) rather than ``evaluate_js``, which
    wraps the code in ``eval`` and is therefore refused by the page's CSP.
    """
    payload = json.dumps(envelope, ensure_ascii=True).replace("\\", "\\\\").replace("'", "\\'")
    # the name as a JSON literal (ASCII, quotes and backslashes escaped): any
    # name the page sent, non-ASCII or quoting, is answered and none leaves its string
    key = json.dumps(func_name, ensure_ascii=True)
    js = ("(function(){var c=window.pywebview&&window.pywebview._returnValuesCallbacks"
          f"&&window.pywebview._returnValuesCallbacks[{key}];"
          f"if(c&&c['{value_id}']){{c['{value_id}']({{value:'{payload}'}});}}}})()")
    try:
        window.run_js(js)
    except Exception:
        log.info("bridge: the window went away before the reply")


def _json_name(func_name: Any) -> bool:
    """Whether a refused name can be written back as the page's callback key (any JSON value)."""
    try:
        json.dumps(func_name, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _bridge_args(param: Any) -> tuple[bool, Any]:
    """pywebview sends the JS arguments as a list; commands take one object."""
    if param is None:
        return True, None
    if isinstance(param, list):
        if len(param) == 0:
            return True, None
        if len(param) == 1:
            return True, param[0]
        return False, None
    return True, param


def guarded_js_bridge_call(window: Any, func_name: Any, param: Any, value_id: Any) -> None:
    """Replacement for ``webview.util.js_bridge_call`` that enforces the allowlist.

    Allowed names run :func:`call` on a worker thread (pywebview's own call
    path is never used, so no attribute lookup happens); every other name --
    dotted, underscore, dunder, and pywebview's internal ``pywebview*``
    messages -- is refused with a ``not_allowed`` envelope.

    Parameters
    ----------
    window : webview.Window
        The calling window.
    func_name : Any
        Name sent by the page.
    param : Any
        Decoded arguments (the JS arguments array).
    value_id : Any
        pywebview's callback id.
    """
    safe_id = isinstance(value_id, str) and bool(_SAFE_VALUE_ID.match(value_id))
    if isinstance(func_name, str) and func_name in ALLOWED and _NAME.match(func_name):
        def run() -> None:
            good, args = _bridge_args(param)
            env = (call(func_name, args) if good
                   else protocol.fail(protocol.BAD_REQUEST, "Pass one argument object."))
            if safe_id:
                _reply(window, func_name, value_id, env)

        threading.Thread(target=run, name="pocketpacs-bridge", daemon=True).start()
        return None
    log.warning("bridge: refused a call outside the allowlist")
    if safe_id and _json_name(func_name):
        env = protocol.fail(protocol.NOT_ALLOWED, "Unknown command.")
        threading.Thread(target=_reply, args=(window, func_name, value_id, env), daemon=True).start()
    return None


# pywebview builds each ``window.pywebview.api`` function with ``new Function``,
# which the page's CSP (``script-src 'self'``, no ``'unsafe-eval'``) forbids.
# The same function, built as a closure instead (no string evaluation):
_NEW_FUNCTION = re.compile(r"new Function\(\s*sanitize_params\(params\),\s*funcBody\s*\);")
_CLOSURE = """(function (fn) {
        return function () {
          var __id = (Math.random() + '').substring(2);
          var args = Array.prototype.slice.call(arguments);
          var promise = new Promise(function (resolve, reject) {
            window.pywebview._checkValue(fn, resolve, reject, __id);
          });
          window.pywebview._jsApiCallback(fn, args, __id);
          return promise;
        };
      })(funcName);"""
_original_load_js: Callable | None = None


def _csp_safe_load_js_files(*args: Any, **kw: Any) -> Any:
    """``webview.util.load_js_files`` with the API functions built without eval."""
    assert _original_load_js is not None
    js_code, finish = _original_load_js(*args, **kw)
    patched, n = _NEW_FUNCTION.subn(lambda m: _CLOSURE, js_code)
    if n != 1:
        log.warning("bridge: pywebview's API builder changed; the page falls back to HTTP")
    return patched, finish


def install_guard() -> None:
    """Route every pywebview bridge call through :func:`guarded_js_bridge_call`.

    Patches ``webview.util`` and every already-imported ``webview.platforms``
    module that imported ``js_bridge_call`` by name; platform modules imported
    later pick up the patched function from ``webview.util``.  Also makes
    pywebview's injected script build its API without ``new Function`` so it
    runs under the page's CSP.  Idempotent.
    """
    global _original, _original_load_js
    import webview.util as wu

    if wu.js_bridge_call is not guarded_js_bridge_call:
        _original = wu.js_bridge_call
        wu.js_bridge_call = guarded_js_bridge_call
    if wu.load_js_files is not _csp_safe_load_js_files:
        _original_load_js = wu.load_js_files
        wu.load_js_files = _csp_safe_load_js_files
    for modname, mod in list(sys.modules.items()):
        if modname.startswith("webview.platforms") and mod is not None:
            if getattr(mod, "js_bridge_call", None) not in (None, guarded_js_bridge_call):
                mod.js_bridge_call = guarded_js_bridge_call


def guard_installed() -> bool:
    """Return True when every loaded pywebview module uses the guard.

    Returns
    -------
    bool
    """
    import webview.util as wu

    if wu.js_bridge_call is not guarded_js_bridge_call:
        return False
    return all(getattr(m, "js_bridge_call", guarded_js_bridge_call) is guarded_js_bridge_call
               for n, m in list(sys.modules.items())
               if n.startswith("webview.platforms") and m is not None)
