"""The launcher: environment detection, serve fallback, Qt flags only where needed, demo."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

from pocketpacs.ui import launch


UI_MODULE = ["-m", "pocketpacs.ui"]
CORE_MODULE = ["-m", "pocketpacs"]
CONSOLE = ["-c", "import sys; from pocketpacs.ui.launch import cli_main; sys.exit(cli_main())"]


def _serve_child(args, env, entry=UI_MODULE, timeout=180.0):
    proc = subprocess.Popen([sys.executable, *entry, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(timeout, proc.kill)       # no URL in time: stop waiting
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/\?token=(\S+))", line)
            if m:
                return proc, lines, m.group(1), m.group(3)
    finally:
        watchdog.cancel()
    proc.wait()
    raise AssertionError(f"exit status {proc.returncode}:\n" + "".join(lines))


def _hello(url: str, token: str) -> dict:
    base = url.split("/?")[0]
    req = urllib.request.Request(base + "/v1/call/search", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json",
                                          "X-PocketPACS-Token": token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("entry", [UI_MODULE, CORE_MODULE, CONSOLE],
                         ids=["python-m-ui", "python-m-pocketpacs", "console-entry"])
def test_without_a_display_the_app_says_so_and_serves_to_a_browser(tmp_path, entry):
    built = S.build_archive(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    proc, lines, url, token = _serve_child(["--archive", str(built["archive"])], env, entry)
    try:
        text = "".join(lines)
        assert "cannot open a window: there is no display" in text
        assert "Serving the UI to a browser instead" in text
        env_ = _hello(url, token)
        assert env_["ok"] and len(env_["data"]["rows"]) == len(built["manifest"]["series"]) + 1
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url, timeout=30) as r:          # the page at its URL, then the assets cookie
            page = r.read().decode()
        assert r.url == url and 'src="/js/main.js"' in page
        with opener.open(url.split("/?")[0] + "/css/app.css", timeout=30) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0


@pytest.mark.parametrize("order", ["before", "after"])
def test_serve_takes_the_archive_before_or_after_the_command(tmp_path, order):
    """`pocketpacs serve --archive X` (once refused: unrecognized arguments)."""
    built = S.build_archive(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1", POCKETPACS_ARCHIVE=str(tmp_path / "not-this-one"))
    archive = ["--archive", str(built["archive"])]
    args = [*archive, "serve"] if order == "before" else ["serve", *archive]
    proc, lines, url, token = _serve_child(args, env, CORE_MODULE)
    try:
        res = _hello(url, token)
        assert res["ok"] and len(res["data"]["rows"]) == len(built["manifest"]["series"]) + 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0
    assert not (tmp_path / "not-this-one").exists()


#: Environments where Qt cannot start: it would abort (SIGABRT, exit 134) in QApplication().
QT_FAILS = {
    "wayland-display-bogus": {"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "bogus"},
    "xcb-display-absent": {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":999", "WAYLAND_DISPLAY": "bogus"},
}


@pytest.mark.parametrize("case", sorted(QT_FAILS))
def test_where_qt_cannot_start_the_app_says_why_and_serves(tmp_path, case):
    """Qt is tried in a child first: the app says why no window opens and serves instead."""
    built = S.build_archive(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(QT_FAILS[case], PYTHONUNBUFFERED="1")
    proc, lines, url, token = _serve_child(["--archive", str(built["archive"])], env, CORE_MODULE)
    try:
        text = "".join(lines)
        assert "cannot open a window: Qt could not load its platform plugin" in text, text
        assert ("Wayland display bogus" if "wayland" in case else "X display :999") in text, text
        assert "Serving the UI to a browser instead" in text
        assert _hello(url, token)["ok"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0                                   # not 134 (SIGABRT)


_QT_XCB_FAILED = """\
qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the Qt xcb platform plugin.
qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though it was found.
This application failed to start because no Qt platform plugin could be initialized.
"""


def test_qt_failures_are_explained_with_the_missing_library(monkeypatch):
    """Qt names xcb-cursor0 whatever is missing; the loader (ldd) names the real one."""
    monkeypatch.setattr(launch, "missing_qt_libraries", lambda plugin="xcb": ["libxcb-icccm.so.4"])
    why = launch.explain_qt_failure(-6, _QT_XCB_FAILED, {"DISPLAY": ":0"})
    assert why.startswith("Qt could not load its platform plugin (xcb)")
    assert "libxcb-icccm.so.4 are missing" in why and "apt-get install libxcb-icccm4" in why
    assert "cursor" not in why
    monkeypatch.setattr(launch, "missing_qt_libraries", lambda plugin="xcb": [])
    why = launch.explain_qt_failure(-6, _QT_XCB_FAILED, {"DISPLAY": ":0"})
    assert all(pkg in why for pkg in launch.QT_SYSTEM_PACKAGES)
    why = launch.explain_qt_failure(
        3, "PROBE-IMPORT-ERROR ImportError: libnss3.so: cannot open shared object file: No such file", {})
    assert "Qt WebEngine" in why and "install libnss3" in why
    assert launch.explain_qt_failure(-11, "", {}) == "Qt stopped with SIGSEGV while starting"
    assert launch._ldd_missing("\tlibxcb-icccm.so.4 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n"
                               "\tlibxcb-cursor.so.0 => not found\n") == ["libxcb-cursor.so.0",
                                                                         "libxcb-icccm.so.4"]
    assert isinstance(launch.missing_qt_libraries(), list)                   # the real ldd


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libEGL.so.1", "libegl1"), ("libnss3.so", "libnss3"), ("libxcb-render-util.so.0", "libxcb-render-util0")])
def test_debian_package_names(soname, package):
    assert launch.debian_package(soname) == package
    assert package in launch.QT_SYSTEM_PACKAGES


def test_unreachable_display_is_reported(monkeypatch):
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":987")
    if sys.platform.startswith("linux"):
        assert launch.gui_problem() == "the X display :987 does not answer"


def test_qt_flags_are_added_only_where_needed(monkeypatch):
    for k in ("QTWEBENGINE_CHROMIUM_FLAGS", "QTWEBENGINE_DISABLE_SANDBOX", "POCKETPACS_SOFTWARE_GL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("QTWEBENGINE_REMOTE_DEBUGGING", "9222")
    notes = launch.configure_qt_environment(software_gl=True)
    assert "QTWEBENGINE_REMOTE_DEBUGGING" not in os.environ
    if not sys.platform.startswith("linux"):
        return
    flags = os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split()
    assert flags == list(launch.SOFTWARE_GL_FLAGS)
    launch.configure_qt_environment(software_gl=True)
    assert os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split() == flags             # not duplicated
    assert (os.environ.get("QTWEBENGINE_DISABLE_SANDBOX") == "1") == (os.geteuid() == 0)
    assert any("remote debugging" in n for n in notes)
    monkeypatch.delenv("QTWEBENGINE_CHROMIUM_FLAGS")
    launch.configure_qt_environment(software_gl=False)
    has_gpu_node = Path("/dev/dri").exists()
    assert ("QTWEBENGINE_CHROMIUM_FLAGS" in os.environ) == (not has_gpu_node)


@pytest.mark.slow
def test_demo_builds_its_archive_once_and_serves_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    proc, lines, url, token = _serve_child(["demo", "--dir", str(tmp_path), "--serve"], env)
    try:
        assert any("Building the demo archive" in line for line in lines)
        res = _hello(url, token)
        mods = {r["modality"] for r in res["data"]["rows"]}
        assert res["ok"] and {"CT", "MR"} <= mods
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    built_at = (tmp_path / "demo-complete").stat().st_mtime_ns
    assert launch.build_demo(tmp_path, progress=lambda s: None) == tmp_path / "archive"
    assert (tmp_path / "demo-complete").stat().st_mtime_ns == built_at               # not rebuilt


def test_sigterm_closes_cleanly_and_a_killed_app_starts_without_waiting(tmp_path):
    """`kill` (SIGTERM, as at logout) closes the archive cleanly: no
    unclean-shutdown mark is left.  After a kill -9 the mark stays; the next
    start opens the archive without reading it all first (the whole-database
    check runs in the background) and still answers."""
    from pocketpacs.archive.datafile import OPEN_MARK

    built = S.build_archive(tmp_path)
    archive = Path(built["archive"])
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    proc, lines, url, token = _serve_child(["--archive", str(archive), "serve"], env)
    assert _hello(url, token)["ok"]
    assert (archive / OPEN_MARK).exists()             # a writer has it open
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not (archive / OPEN_MARK).exists()
    proc, lines, url, token = _serve_child(["--archive", str(archive), "serve"], env)
    assert _hello(url, token)["ok"]
    proc.kill()
    proc.wait(30)
    assert (archive / OPEN_MARK).exists()
    proc, lines, url, token = _serve_child(["--archive", str(archive), "serve"], env)
    try:
        got = _hello(url, token)
        assert got["ok"] and got["data"]["rows"]
        assert "not closed cleanly" not in "".join(lines)   # nothing was checked before serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0 and not (archive / OPEN_MARK).exists()


# ------------------------------------------------------------------ remote debugging (issue 13)
@pytest.mark.parametrize("flags,kept", [
    ("--remote-debugging-port=9222", []),
    ("--remote-debugging-port 9222 --mute-audio", ["--mute-audio"]),
    ("-remote-debugging-port=9222 --mute-audio", ["--mute-audio"]),
    ("--REMOTE-DEBUGGING-PORT=9222", []),
    ("--remote-debugging-pipe --enable-logging", ["--enable-logging"]),
    ("--remote-debugging-pipe=cbor --remote-debugging-io-pipes=3,4", []),
    ("--remote-debugging-address=0.0.0.0 --remote-debugging-port=0", []),
    ("--remote-debugging-address 0.0.0.0 --remote-allow-origins * --x", ["--x"]),
    ("--remote-allow-origins=* --ignore-gpu-blocklist", ["--ignore-gpu-blocklist"]),
    ("--remote-debugging-socket-name=s --disable-gpu-compositing", ["--disable-gpu-compositing"]),
    ("--a=1 --remote-debugging-port=1 --b --remote-debugging-targets=x --c", ["--a=1", "--b", "--c"]),
    ("--remote-debugging-port=1 --remote-debugging-port=2", []),
    ("--no-remote-debugging --remote-debuggingx=1", ["--no-remote-debugging"]),
    ("--enable-features=RemoteDebugging --lang=remote-debugging-port",
     ["--enable-features=RemoteDebugging", "--lang=remote-debugging-port"]),
])
def test_remote_debugging_switches_are_stripped_and_the_rest_kept(flags, kept):
    got, removed = launch.strip_remote_debugging(flags.split())
    assert got == kept
    assert got + removed != [] and sorted(got + removed) == sorted(flags.split())
    names = [a.lstrip("-").split("=")[0].lower() for a in got if a.startswith("-")]
    assert not any(n.startswith("remote-debugging") or n == "remote-allow-origins" for n in names)


def test_configure_strips_remote_debugging_from_the_flags_and_the_arguments(monkeypatch):
    monkeypatch.setenv("QTWEBENGINE_CHROMIUM_FLAGS", "--mute-audio --remote-debugging-port=9333 "
                       "--remote-allow-origins=* --remote-debugging-address 0.0.0.0 --lang=en")
    monkeypatch.setenv("QTWEBENGINE_REMOTE_DEBUGGING", "9334")
    monkeypatch.setattr(sys, "argv", ["pocketpacs", "--remote-debugging-port=9335", "app"])
    notes = launch.configure_qt_environment(software_gl=False)
    flags = os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split()
    assert flags[:2] == ["--mute-audio", "--lang=en"] and "remote" not in " ".join(flags)
    assert "QTWEBENGINE_REMOTE_DEBUGGING" not in os.environ
    assert sys.argv == ["pocketpacs", "app"]
    assert sum("remote debugging stays off" in n for n in notes) == 3


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _process_tree(pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


@pytest.fixture
def xvfb_display():
    import shutil

    S.require_system(shutil.which("Xvfb") is not None, "Xvfb")
    S.require_qt_window()
    proc, display = S.start_xvfb()
    yield display
    proc.terminate()
    proc.wait(10)


@pytest.mark.slow
def test_the_app_hands_qt_no_remote_debugging_switch(xvfb_display, tmp_path):
    """QTWEBENGINE_CHROMIUM_FLAGS with remote-debugging switches: the running app's Qt WebEngine
    processes see none of them (environment and command lines), the DevTools port never
    listens, the other flags reach Qt (issue 13)."""
    import socket

    built = S.build_archive(tmp_path / "a")
    port = _free_port()
    env = S.app_env(os.environ, xvfb_display)
    env["QTWEBENGINE_CHROMIUM_FLAGS"] = (f"--mute-audio --remote-debugging-port={port} --remote-allow-origins=*"
                                         " --remote-debugging-address 127.0.0.1 --lang=en-GB")
    out = tmp_path / "selftest.json"
    args = [*UI_MODULE, "--archive", str(built["archive"]), "app", "--selftest", str(out)]
    with S.app_selftest(args, env, out) as (app, report):
        assert report["ready"] == "1", report
        environs, cmdlines = {}, {}
        for pid in _process_tree(app.pid)[1:]:
            try:
                cmdlines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                environs[pid] = dict(kv.split("=", 1) for kv in
                                     Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in kv)
            except OSError:
                continue
        with socket.socket() as s:
            s.settimeout(2)
            devtools = s.connect_ex(("127.0.0.1", port))
    log = app.stdout.read()
    web = [p for p, c in cmdlines.items() if "QtWebEngineProcess" in c]
    assert web, cmdlines                                            # the Chromium processes were read
    assert devtools != 0, "the DevTools port listens"
    for pid in web:
        assert "remote-debugging" not in cmdlines[pid] and "remote-allow-origins" not in cmdlines[pid]
        flags = environs[pid].get("QTWEBENGINE_CHROMIUM_FLAGS", "")
        assert "remote" not in flags and "QTWEBENGINE_REMOTE_DEBUGGING" not in environs[pid]
        assert "--mute-audio" in flags.split() and "--lang=en-GB" in flags.split(), flags   # the rest kept
    assert "remote debugging stays off" in log


@pytest.mark.slow
def test_sigterm_closes_the_desktop_app_cleanly(xvfb_display, tmp_path):
    """`kill` (SIGTERM, as at logout) of the desktop app: the window closes, the archive is closed
    cleanly (no unclean-shutdown mark) and the app exits 0, as `serve` does (issue 13)."""
    from pocketpacs.archive.datafile import OPEN_MARK

    built = S.build_archive(tmp_path / "a")
    archive = Path(built["archive"])
    out = tmp_path / "selftest.json"
    args = [*UI_MODULE, "--archive", str(archive), "app", "--selftest", str(out)]
    with S.app_selftest(args, S.app_env(os.environ, xvfb_display), out) as (app, report):
        assert report["ready"] == "1", report
        assert (archive / OPEN_MARK).exists()                       # a writer has it open
        app.send_signal(signal.SIGTERM)
        try:
            code = app.wait(60)
        except subprocess.TimeoutExpired:
            code = None
    assert code == 0, (code, app.stdout.read()[-2000:])
    assert not (archive / OPEN_MARK).exists()
