"""The desktop window: pywebview (Qt WebEngine on Linux) around the local server.

:func:`open_window` starts the :class:`~pocketpacs.ui.session.Session`, the
token-protected :class:`~pocketpacs.ui.server.DataServer` on 127.0.0.1, the
bridge guard, and one pywebview window that loads the page from that server
(``/?token=...``: the page holds the API token; a cookie of its own opens
the static files only).  pywebview's own HTTP server is not
used.  The window runs with ``private_mode=True`` (off-the-record profile:
no disk cache, no cookies on disk) and ``debug=False``.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pocketpacs.paths import write_private_file

from . import bridge

log = logging.getLogger("pocketpacs.ui.app")

#: File-type filter of Open Other.
OTHER_TYPES = ("Images (*.nii;*.nii.gz;*.jp2;*.j2k;*.png;*.jpg;*.jpeg;*.tif;*.tiff)",
               "All files (*.*)")

# Run from the page by --selftest: calls an allowed command and several names
# outside the allowlist through pywebview's own entry point.
_SELFTEST_JS = r"""
(async () => {
  const out = { refused: {} };
  try { const h = await window.pywebview.api.hello({}); out.hello = h; } catch (e) { out.hello_error = String(e); }
  const probe = (name) => new Promise((resolve) => {
    const id = String(Math.random()).slice(2, 12);
    const cbs = window.pywebview._returnValuesCallbacks;
    cbs[name] = cbs[name] || {};
    cbs[name][id] = (r) => { try { resolve(JSON.parse(r.value)); } catch (e) { resolve({ raw: String(r.value) }); } };
    window.pywebview._jsApiCallback(name, [], id);
    setTimeout(() => resolve({ timeout: true }), 4000);
  });
  for (const n of ['hello.__func__.__globals__', 'hello.__func__', '__class__', '__init__', '_refuse',
                   'search.__call__']) {
    out.refused[n] = await probe(n);
  }
  const c = document.createElement('canvas');
  out.webgl2 = !!c.getContext('webgl2');
  out.rows = document.body.dataset.archiveRows || '';
  out.transport = document.body.dataset.transport || '';
  document.body.dataset.selftest = JSON.stringify(out);
})();
"""


class WebviewDialogs:
    """Native pickers of the pywebview window (paths stay in Python).

    Parameters
    ----------
    window : webview.Window
        The app window.
    """

    def __init__(self, window: Any):
        self.window = window

    def _ask(self, kind: int, **kw: Any) -> str | None:
        res = self.window.create_file_dialog(kind, **kw)
        if not res:
            return None
        return res if isinstance(res, str) else res[0]

    def pick_folder(self) -> str | None:
        """Ask for a folder.

        Returns
        -------
        str or None
            The folder, or None when cancelled.
        """
        import webview

        return self._ask(webview.FileDialog.FOLDER)

    def pick_file(self) -> str | None:
        """Ask for an image file (Open Other).

        Returns
        -------
        str or None
        """
        import webview

        return self._ask(webview.FileDialog.OPEN, file_types=OTHER_TYPES)

    def save_file(self, name: str) -> str | None:
        """Ask where to save a file.

        Parameters
        ----------
        name : str
            Suggested file name.

        Returns
        -------
        str or None
        """
        import webview

        return self._ask(webview.FileDialog.SAVE, save_filename=name)


def dropped_items(event: dict) -> list[dict]:
    """The paths of a drop event as pywebview gives it to a Python handler.

    pywebview adds ``pywebviewFullPath`` to the files of a drop event it hands
    to a handler registered through ``window.dom`` (never to the page's own
    File objects).

    Parameters
    ----------
    event : dict
        The event: ``{"dataTransfer": {"files": [{"name", "pywebviewFullPath"}, ...]}}``.

    Returns
    -------
    list of dict
        ``{"path", "dir"}`` for each dropped file or folder that has a path.
    """
    out = []
    files = ((event or {}).get("dataTransfer") or {}).get("files") or []
    for f in files:
        path = f.get("pywebviewFullPath") if isinstance(f, dict) else None
        if isinstance(path, str) and path:
            out.append({"path": path, "dir": os.path.isdir(path)})
    return out


def drop_script(items: list[dict]) -> str:
    """The page call that hands dropped paths over (JSON: every path a string literal)."""
    return f"window.pocketpacsDropped && window.pocketpacsDropped({json.dumps(items)})"


def _listen_for_drops(window: Any) -> None:
    """Hand the paths of files dropped onto the window to the page (import / Open Other)."""
    try:
        from webview.dom import DOMEventHandler
    except ImportError:         # a pywebview without the DOM API: the page says to use Import
        return

    def on_drop(event: dict) -> None:
        items = dropped_items(event)
        if items:
            window.evaluate_js(drop_script(items))

    try:
        window.dom.document.events.drop += DOMEventHandler(on_drop, True, True)
    except Exception as exc:  # a backend without DOM events: the page says to use Import
        log.info("drag-and-drop of paths unavailable: %s", type(exc).__name__)


def _wait_js(window: Any, expr: str, timeout: float) -> Any:
    end = time.monotonic() + timeout
    value = None
    while time.monotonic() < end:
        try:
            value = window.run_js(expr)
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.2)
    return value


def _selftest(window: Any, out_path: str) -> None:
    """Check the running window from inside: page ready, bridge answers, names refused."""
    result: dict[str, Any] = {"guard_installed": bridge.guard_installed()}
    try:
        result["ready"] = _wait_js(window, "document.body && document.body.dataset.ready || ''", 90)
        window.run_js(_SELFTEST_JS)
        raw = _wait_js(window, "document.body.dataset.selftest || ''", 60)
        result.update(json.loads(raw) if raw else {"selftest": "no answer"})
    except Exception as exc:  # the test reads the file; report what failed
        result["error"] = type(exc).__name__
    write_private_file(out_path, json.dumps(result).encode())
    # keep the window up until the test has taken its screenshot
    close_flag = Path(out_path + ".close")
    end = time.monotonic() + 120
    while time.monotonic() < end and not close_flag.exists() and not window.events.closed.is_set():
        time.sleep(0.2)
    if not window.events.closed.is_set():
        window.destroy()


def open_window(archive: str | None = None, readonly: bool = False,
                selftest: str | None = None) -> int:
    """Open the PocketPACS window and block until it is closed.

    Parameters
    ----------
    archive : str, optional
        Archive folder (default location when None).
    readonly : bool
        Open the archive read-only.
    selftest : str, optional
        Write a self-check report to this file once the page is up (tests).

    Returns
    -------
    int
        Exit status.
    """
    import webview

    from .server import DataServer
    from .session import Session

    bridge.install_guard()
    session = Session(archive, readonly=readonly, mode="app")
    notice = session.startup_check()
    if notice:
        print(f"pocketpacs: {notice}", flush=True)
    server = DataServer(session).start()
    window = webview.create_window("PocketPACS", url=server.launch_url, js_api=bridge.Api(),
                                   width=1280, height=800, min_size=(800, 500),
                                   background_color="#15171a", text_select=True)
    session.dialogs = WebviewDialogs(window)

    def after_start() -> None:
        bridge.install_guard()      # platform module now imported: patch its copy too
        _listen_for_drops(window)
        if selftest:
            _selftest(window, selftest)

    def close_window() -> None:
        window.events.shown.wait(60)
        window.destroy()

    def on_term(signum: int, frame: object) -> None:
        # a logout or `kill`: close the window, so that the archive is closed
        # cleanly below and the app exits 0 (as `serve` does).  Runs on the main
        # thread (pywebview's Qt loop lets Python run every 500 ms); the window
        # is closed from another thread, as pywebview expects.
        threading.Thread(target=close_window, name="pocketpacs-sigterm", daemon=True).start()

    previous = signal.signal(signal.SIGTERM, on_term)
    gui = "qt" if sys.platform.startswith("linux") else None
    try:
        webview.start(after_start, gui=gui, debug=False, private_mode=True)
    finally:
        server.stop()
        session.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


__all__ = ["open_window", "WebviewDialogs"]
