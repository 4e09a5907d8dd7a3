"""A real window: `pocketpacs` (app mode) under Xvfb opens a pywebview Qt window.

The app's hidden ``--selftest FILE`` option makes it check itself from inside
once the page is up: the bridge answers ``hello``, names outside the
allowlist (dotted, underscore and dunder) are refused through pywebview's own
JS entry point, WebGL2 exists.  The test then grabs the X screen with Qt in a
separate process and checks it is not blank.  Skips without Xvfb or Qt
WebEngine, fails under CI=true.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

_GRAB = r"""
import json, sys
from PyQt6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv)
img = app.primaryScreen().grabWindow(0).toImage()
img.save(sys.argv[1])
w, h = img.width(), img.height()
colours = set()
lum = []
for y in range(0, h, 8):
    for x in range(0, w, 8):
        c = img.pixel(x, y) & 0xFFFFFF
        colours.add(c)
        lum.append(((c >> 16) & 255) + ((c >> 8) & 255) + (c & 255))
m = sum(lum) / len(lum)
var = sum((v - m) ** 2 for v in lum) / len(lum)
print(json.dumps({"w": w, "h": h, "colours": len(colours), "std": var ** 0.5}))
"""


@pytest.fixture
def xvfb():
    S.require_system(shutil.which("Xvfb") is not None, "Xvfb")
    S.require_qt_window()                   # Qt itself starts (xcb plugin and its libraries)
    proc, display = S.start_xvfb("1280x800x24")
    yield display
    proc.terminate()
    proc.wait(10)


def test_app_opens_a_qt_window_with_a_working_bridge(xvfb, tmp_path):
    built = S.build_archive(tmp_path / "a")
    out = tmp_path / "selftest.json"
    env = S.app_env(os.environ, xvfb)
    args = ["-m", "pocketpacs.ui", "--archive", str(built["archive"]), "app", "--selftest", str(out)]
    with S.app_selftest(args, env, out) as (app, report):
        time.sleep(1.0)   # let the compositor show the last frame
        shot = subprocess.run([sys.executable, "-c", _GRAB, str(tmp_path / "screen.png")],
                              env=dict(env, QT_QPA_PLATFORM="xcb"), capture_output=True, text=True,
                              timeout=120)
    log = app.stdout.read()
    assert report["guard_installed"] is True
    assert report["ready"] == "1", report
    assert report["transport"] == "bridge"
    hello = report["hello"]
    assert hello["ok"] is True and hello["data"]["mode"] == "app" and hello["data"]["dialogs"] is True
    assert set(report["refused"]) >= {"hello.__func__.__globals__", "__class__", "__init__"}
    for name, env_ in report["refused"].items():
        assert env_.get("ok") is False and env_["error"]["code"] == "not_allowed", (name, env_)
    assert report["webgl2"] is True
    assert int(report["rows"]) == len(built["manifest"]["series"]) + 1
    if os.geteuid() == 0:
        assert "sandbox of Qt WebEngine is disabled" in log
    assert shot.returncode == 0, shot.stderr
    stats = json.loads(shot.stdout.strip().splitlines()[-1])
    assert stats["colours"] > 10 and stats["std"] > 10, stats
