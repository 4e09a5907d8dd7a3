"""The pywebview patches of :mod:`pocketpacs.ui.bridge` still apply to the installed pywebview (issue 11).

:func:`bridge.install_guard` replaces two pywebview internals:
``webview.util.js_bridge_call`` (and the copies platform modules imported by
name) and ``webview.util.load_js_files`` (whose output must lose its one
``new Function`` so the page's CSP lets the API script run).  A pywebview
release that renames, re-signs or rewrites either would silently undo the
guard or the bridge; these tests fail instead.  They pass with pywebview 6.0,
6.1, 6.2 and 6.2.1; they fail with 5.4 (its script has no
``_returnValuesCallbacks``, which the guard's replies resolve) and 5.0 (no
``webview.util.load_js_files``: :func:`bridge.install_guard` raises).
"""
from __future__ import annotations

import inspect
import json
import logging
import shutil
import subprocess
import sys
import textwrap

import pytest
import webview
import webview.util as wu

from pocketpacs.ui import bridge


def _platform_modules() -> list[str]:
    """pywebview platform modules that import here (Qt on Linux when PyQt is installed)."""
    out = []
    for name in ("webview.platforms.qt", "webview.platforms.gtk"):
        try:
            __import__(name)
        except Exception:
            continue
        out.append(name)
    return out


def test_the_patched_pywebview_internals_exist_with_the_expected_shape():
    assert callable(wu.js_bridge_call) and callable(wu.load_js_files)
    params = list(inspect.signature(bridge._original or wu.js_bridge_call).parameters)
    assert params == ["window", "func_name", "param", "value_id"]
    assert list(inspect.signature(bridge.guarded_js_bridge_call).parameters) == params
    # inject_pywebview looks load_js_files up in webview.util at call time, so
    # replacing the module attribute reaches it
    assert "load_js_files" in wu.inject_pywebview.__code__.co_names
    # every platform module that can be imported took js_bridge_call by name
    for name in _platform_modules():
        assert hasattr(sys.modules[name], "js_bridge_call"), name


def test_install_guard_patches_util_and_every_platform_module():
    loaded = _platform_modules()
    bridge.install_guard()
    original = bridge._original
    assert original is not None and original is not bridge.guarded_js_bridge_call
    assert wu.js_bridge_call is bridge.guarded_js_bridge_call
    assert wu.load_js_files is bridge._csp_safe_load_js_files
    for name in loaded:
        assert sys.modules[name].js_bridge_call is bridge.guarded_js_bridge_call, name
    assert bridge.guard_installed()
    bridge.install_guard()                                   # idempotent: the original is kept
    assert bridge._original is original and wu.js_bridge_call is bridge.guarded_js_bridge_call


def test_platform_modules_imported_after_the_guard_get_it():
    """In a fresh interpreter: guard first, then the Qt platform module."""
    if "webview.platforms.qt" not in _platform_modules():
        pytest.skip("pywebview's Qt platform module does not import here")
    code = textwrap.dedent("""
        from pocketpacs.ui import bridge
        bridge.install_guard()
        import webview.platforms.qt as qt
        assert qt.js_bridge_call is bridge.guarded_js_bridge_call
        assert bridge.guard_installed()
        print("guarded")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0 and r.stdout.strip() == "guarded", r.stderr[-2000:]


@pytest.fixture
def window():
    """A real pywebview Window (not shown: no GUI loop is started)."""
    win = webview.create_window("PocketPACS test", html="<p>test</p>")
    win.js_api_endpoint = None     # what Window._initialize sets without pywebview's HTTP server
    try:
        yield win
    finally:
        webview.windows.remove(win)


def test_api_script_is_built_without_new_function(window, caplog):
    bridge.install_guard()
    assert bridge._original_load_js is not None
    original_js, _ = bridge._original_load_js(window, "qtwebengine")
    # exactly the one construct the patch replaces, and the helpers its closure calls
    assert len(bridge._NEW_FUNCTION.findall(original_js)) == 1
    for helper in ("_checkValue: function", "_jsApiCallback: function", "_returnValuesCallbacks",
                   "var funcName = "):
        assert helper in original_js, helper
    with caplog.at_level(logging.WARNING, logger="pocketpacs.ui.bridge"):
        js, finish = wu.load_js_files(window, "qtwebengine")
    assert not [r for r in caplog.records if "API builder changed" in r.getMessage()]
    assert "new Function" not in js and "window.pywebview._jsApiCallback(fn, args, __id)" in js
    assert "_createApi" in finish


NODE_CHECK = r"""
const fs = require('fs');
const vm = require('vm');
const code = fs.readFileSync(process.argv[2], 'utf8');
const calls = [];
const sandbox = {};
sandbox.window = sandbox;
// like the page's CSP (no 'unsafe-eval'): eval and new Function throw
vm.createContext(sandbox, { codeGeneration: { strings: false, wasm: false } });
try { vm.runInContext(code, sandbox); } catch (e) { /* later scripts need a DOM; api.js ran first */ }
const pv = sandbox.pywebview;
pv._jsApiCallback = (name, args, id) => calls.push([name, args, typeof id]);
pv._createApi([{ func: 'hello', params: ['args'] }, { func: 'search', params: ['args'] }]);
const p = pv.api.search({ name: 'x' });
process.stdout.write(JSON.stringify({
  hello: typeof pv.api.hello, promise: typeof p.then === 'function',
  calls, callbacks: Object.keys(pv._returnValuesCallbacks.search).length,
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_patched_api_script_runs_where_string_evaluation_is_refused(window, tmp_path):
    bridge.install_guard()
    js, _ = wu.load_js_files(window, "qtwebengine")
    (tmp_path / "bundle.js").write_text(js)
    (tmp_path / "check.js").write_text(NODE_CHECK)
    r = subprocess.run(["node", str(tmp_path / "check.js"), str(tmp_path / "bundle.js")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out == {"hello": "function", "promise": True, "calls": [["search", [{"name": "x"}], "string"]],
                   "callbacks": 1}
    # and the unpatched script does not: the guard is what makes the page's API work
    original_js, _ = bridge._original_load_js(window, "qtwebengine")
    (tmp_path / "bundle.js").write_text(original_js)
    r = subprocess.run(["node", str(tmp_path / "check.js"), str(tmp_path / "bundle.js")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "EvalError" in r.stderr
