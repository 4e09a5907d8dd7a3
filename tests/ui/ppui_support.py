"""Shared helpers of the UI tests: a generated archive, `pocketpacs serve`, Chromium.

Import from test modules after ``sys.path.insert(0, <this folder>)``.  Nothing
here fakes PocketPACS: the archive is real (synthetic DICOM from
:mod:`pocketpacs.synth` imported with :func:`pocketpacs.open_archive`), the
server is the real ``serve`` command in a child process, and the browser is
Debian's Chromium (WebGL2 on SwiftShader).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from conftest import require_system  # noqa: E402  (after the sys.path line above)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
MARKUP_NAME = "<b>Bold</b><img src>^<script>x()</script>"
MARKUP_DISPLAY = "<b>Bold</b><img src>, <script>x()</script>"
MARKUP_PID = "MARKUP1"
SYNTH = dict(patients=2, studies=1, series=2, slices=24, rows=64, cols=64, junk=2, enhanced=0,
             seed=7)


def start_xvfb(screen: str = "1024x700x24") -> tuple[subprocess.Popen, str]:
    """Start Xvfb on a free display; return (process, ``":N"``).  Stop it with
    ``terminate()``."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp"],
                            pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    num = b""
    while not num.endswith(b"\n"):
        ch = os.read(r, 1)
        if not ch:
            break
        num += ch
    os.close(r)
    return proc, f":{num.decode().strip()}"


def app_env(base: dict, display: str) -> dict:
    """*base* for a desktop-app child on *display* (no Wayland, no inherited Qt WebEngine flags)."""
    env = {k: v for k, v in base.items() if not k.startswith("QTWEBENGINE_") and k != "WAYLAND_DISPLAY"}
    env.update(DISPLAY=display, PYTHONUNBUFFERED="1")
    return env


@contextlib.contextmanager
def app_selftest(args: list, env: dict, report: Path, merge_stderr: bool = True,
                 timeout: float = 150.0):
    """Run ``python *args`` (the desktop app with ``--selftest report``) until
    its self-test report is written; yield ``(process, report dict)`` while
    the window is open; then ask it to close and wait for it (killed if it
    does not exit)."""
    app = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + timeout
        while not report.exists() and app.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
        assert report.exists(), app.stdout.read() if app.poll() is not None else "no self-test report"
        yield app, json.loads(report.read_text())
        Path(str(report) + ".close").write_text("")
        app.wait(60)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


@functools.lru_cache(maxsize=None)
def qt_window_problem() -> str | None:
    """Why the desktop window's Qt cannot start under Xvfb here, or None when it can.

    Qt is started in a child process (the app's own check,
    :func:`pocketpacs.ui.launch.probe_qt`) on a fresh Xvfb, with the
    environment the app children get (:func:`app_env`): importing Qt
    WebEngine is not enough, the xcb platform plugin needs its system
    libraries, and without them Qt aborts the process that tried.
    """
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed"
    from pocketpacs.ui.launch import probe_qt

    proc, display = start_xvfb()
    try:
        return probe_qt(app_env(os.environ, display), timeout=120)
    finally:
        proc.terminate()
        proc.wait(10)


def require_qt_window() -> None:
    """Skip (fail under CI=true) where no Qt window can open under Xvfb."""
    problem = qt_window_problem()
    require_system(problem is None, f"a Qt window under Xvfb ({problem})")


def have_chromium() -> bool:
    """Whether Debian's Chromium is installed."""
    return os.path.exists(CHROMIUM)


def write_markup_series(folder: Path) -> None:
    """Three small CT slices of a patient whose name and descriptions contain markup."""
    import dicomgen

    dicomgen.write_series(folder, 3, series_uid="1.2.826.0.1.3680043.99.1.1",
                          patient_name=MARKUP_NAME, patient_id=MARKUP_PID,
                          study_uid="1.2.826.0.1.3680043.99.1", study_desc="<script>x()</script>",
                          series_desc="<i>series</i>", rows=16, cols=16)


def build_archive(root: Path) -> dict:
    """Generate synthetic DICOM plus the markup series and import them.

    Returns
    -------
    dict
        ``{"archive", "files", "manifest"}``.
    """
    import pocketpacs
    from pocketpacs import synth

    files = root / "files"
    manifest = synth.generate(files, **SYNTH)
    write_markup_series(root / "markup")
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(files)
        ar.import_folder(root / "markup")
    return {"archive": root / "archive", "files": files, "manifest": manifest}


class Served:
    """``python -m pocketpacs.ui --archive A serve`` in a child process."""

    def __init__(self, archive: Path, extra_env: dict | None = None):
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pocketpacs.ui", "--archive", str(archive), "serve"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = None
        end = time.monotonic() + 60
        lines = []
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+))", line)
            if m:
                self.url, self.port, self.token = m.group(1), int(m.group(2)), m.group(3)
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("serve did not print its URL:\n" + "".join(lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the child (SIGINT, then kill)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


#: The archive browser's series rows (the tree's third level; patients and studies are rows too).
SERIES_ROWS = "#series-table tbody tr.series"

_TREE_ROWS_JS = """(full) => {
  const cells = (tr) => Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map(td =>
      [td.dataset.col, full ? [td.textContent, td.childElementCount] : td.textContent]));
  const out = []; let p = {}, s = {};
  for (const tr of document.querySelectorAll('#series-table tbody tr')) {
    if (tr.classList.contains('patient')) { p = cells(tr); s = {}; }
    else if (tr.classList.contains('study')) s = cells(tr);
    else if (tr.classList.contains('series')) {
      const c = {...p, ...s, ...cells(tr)};
      out.push(full ? {id: tr.dataset.seriesId, cells: c} : c);
    }
  }
  return out;
}"""


def tree_rows(page, full: bool = False) -> list:
    """One dict per series row of the archive browser, with the cells of its
    patient and study rows merged in (``{col: text}``; with *full*,
    ``{"id", "cells": {col: [text, child element count]}}``)."""
    return page.evaluate(_TREE_ROWS_JS, full)


def wait_js(page, expr: str, timeout: float = 30.0):
    """Poll a JS expression until truthy (no eval in the page: the CSP forbids it)."""
    end = time.monotonic() + timeout
    while True:
        v = page.evaluate(expr)
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {expr}")
        time.sleep(0.05)


def dataset(page, sel: str = "#view") -> dict:
    """The data-* attributes of an element."""
    return page.evaluate(f"Object.assign({{}}, document.querySelector('{sel}').dataset)")


def read_canvas(page) -> np.ndarray:
    """The view canvas as an (h, w) uint8 array of its red channel (top row first)."""
    raw = page.evaluate("""() => {
      const c = document.getElementById('view');
      const gl = c.getContext('webgl2');
      const px = new Uint8Array(c.width * c.height * 4);
      gl.readPixels(0, 0, c.width, c.height, gl.RGBA, gl.UNSIGNED_BYTE, px);
      let s = '';
      for (let i = 0; i < px.length; i += 4) s += String.fromCharCode(px[i]);
      return [c.width, c.height, btoa(s)];
    }""")
    import base64

    w, h, b64 = raw
    a = np.frombuffer(base64.b64decode(b64), dtype=np.uint8).reshape(h, w)
    return a[::-1].copy()


def predicted_gray(real: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """DICOM linear window (PS3.3 C.11.2.1.2.1) as the shader applies it, 0..255."""
    y = np.clip((real - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)
    if invert:
        y = 1.0 - y
    return y * 255.0


def sample_points(page, header: dict, z: int, n: int = 40, seed: int = 0):
    """Canvas pixels at voxel centres whose 3x3 voxel neighbourhood has one phantom value.

    Returns (canvas_xy, hu) for up to ``n`` points of slice ``z``.
    """
    from pocketpacs.synth import phantom_hu

    d = dataset(page)
    sx, sy, ox, oy = (float(v) for v in d["xform"].split(","))
    _, ny, nx = header["shape"]
    A = np.array(header["affine_lps"])
    cc, rr = np.meshgrid(np.arange(nx), np.arange(ny))
    pts = np.stack([cc, rr, np.full_like(cc, z), np.ones_like(cc)], -1).reshape(-1, 4) @ A.T
    hu = phantom_hu(pts[:, :3]).reshape(ny, nx).astype(float)
    # voxels whose 8 neighbours hold the same value: bilinear filtering cannot change them
    ok = np.zeros_like(hu, dtype=bool)
    core = hu[1:-1, 1:-1]
    same = np.ones_like(core, dtype=bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            same &= hu[1 + dr:ny - 1 + dr, 1 + dc:nx - 1 + dc] == core
    ok[1:-1, 1:-1] = same
    rows, cols = np.nonzero(ok)
    rng = np.random.default_rng(seed)
    pick = rng.choice(rows.size, size=min(n, rows.size), replace=False)
    r, c = rows[pick], cols[pick]
    px = np.floor(ox + (c + 0.5) * sx).astype(int)
    py = np.floor(oy + (r + 0.5) * sy).astype(int)
    return np.stack([px, py], 1), hu[r, c]


def fetch_header(page, vid: str) -> dict:
    """A volume's header, fetched by the page (same origin, token header)."""
    return page.evaluate("""async (vid) => {
      const t = document.querySelector('meta[name="pocketpacs-token"]').content;
      const r = await fetch(`/v1/volume/${vid}/header`, {headers: {'X-PocketPACS-Token': t}});
      return r.json();
    }""", vid)


def archive_snapshot(path: Path) -> dict:
    """Names, sizes and contents (sha256) of every file under *path*.

    LMDB's ``lock.mdb`` is left out: it is the reader table, which changes
    whenever the app's own threads read the archive (a health check, the
    thumbnails of a previous test's import), and holds no stored data.
    """
    import hashlib

    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != "lock.mdb":
            out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def manifest_series(manifest: dict, **match) -> dict:
    """The first manifest series whose fields equal *match*."""
    for s in manifest["series"]:
        if all(s.get(k) == v for k, v in match.items()):
            return s
    raise LookupError(match)


__all__ = ["require_system", "json"]


@contextlib.contextmanager
def open_page(browser, url: str, width: int = 900, height: int = 640):
    """A page of the served app, ready (``body[data-ready]``); on leaving, closed, and
    the test fails if the page raised an uncaught error meanwhile."""
    pg = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    wait_js(pg, "document.body.dataset.ready")
    try:
        yield pg
    finally:
        pg.close()
    assert not errors, errors
