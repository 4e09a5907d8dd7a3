"""The kernel cache: importing PocketPACS leaves the process alone, our kernels
are cached in a private folder of ours, other numba users keep their caching,
and an unsafe cache folder is never used."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import json, os, sys, warnings
    before = dict(os.environ)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        from pocketpacs.native import _jit
        import numpy as np
        from pocketpacs.native.window import window_slice as target
        target(np.arange(16, dtype=np.int16).reshape(4, 4), 4.0, 8.0, False, np.empty((4, 4), np.uint8))
    import numba
    from numba.core import caching
    src = sys.argv[1]
    ns = {}
    exec(compile(open(src).read(), src, "exec"), ns)
    ns["user_kernel"](3)
    user_locator = type(ns["user_kernel"]._cache._impl._locator).__name__
    ours = type(target._cache._impl._locator).__name__
    changed = sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))
    print(json.dumps({"changed": changed, "cache_dir": _jit.cache_dir(), "ours": ours,
                      "user_locator": user_locator, "warnings": [str(w.message) for w in caught]}))
""")


def _probe(tmp_path: Path, xdg_cache: Path) -> dict:
    user = tmp_path / "userpkg"
    user.mkdir(exist_ok=True)
    src = user / "userkernel.py"
    src.write_text("import numba\n@numba.njit(cache=True)\ndef user_kernel(x):\n    return x + 1\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "OMP_WAIT_POLICY") and not k.startswith("XDG_")}
    env["XDG_CACHE_HOME"] = str(xdg_cache)
    env["HOME"] = str(tmp_path / "home")
    r = subprocess.run([sys.executable, "-c", PROBE, str(src)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_import_sets_nothing_and_caches_in_a_private_folder(tmp_path):
    res = _probe(tmp_path, tmp_path / "xdg-cache")
    assert res["changed"] == [], f"importing PocketPACS changed the environment: {res['changed']}"
    assert res["ours"] == "PocketPacsCacheLocator"
    assert res["user_locator"] != "PocketPacsCacheLocator"  # another numba user is left alone
    cache = Path(res["cache_dir"])
    assert cache == tmp_path / "xdg-cache" / "pocketpacs" / "numba"
    assert any(cache.rglob("*.nbi")), "no kernel index written to the cache folder"
    for d in (tmp_path / "xdg-cache", tmp_path / "xdg-cache" / "pocketpacs", cache):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d  # made 0700 from the first missing parent
    assert not res["warnings"], res["warnings"]


def test_a_cache_folder_others_can_write_is_not_used(tmp_path):
    xdg = tmp_path / "xdg-cache"
    shared = xdg / "pocketpacs" / "numba"
    shared.mkdir(parents=True)
    shared.chmod(0o777)
    res = _probe(tmp_path, xdg)
    assert Path(res["cache_dir"]) != shared
    assert stat.S_IMODE(Path(res["cache_dir"]).stat().st_mode) == 0o700
    assert any("others may write" in w for w in res["warnings"]), res["warnings"]
    assert not any(shared.iterdir()), "kernels were cached in a folder others can write to"


def test_a_change_to_any_kernel_module_invalidates_the_cached_kernels(tmp_path, monkeypatch):
    """Kernels inline helpers from other modules of native/ (dicomparse uses
    dicomvr's): numba would compare only the kernel's own file and keep a
    stale kernel; our locator stamps every module of the folder."""
    from pocketpacs.native import _jit

    for name in ("kernels.py", "helpers.py"):
        (tmp_path / name).write_text("x = 1\n")
    monkeypatch.setattr(_jit, "_HERE", str(tmp_path))
    locator = _jit.PocketPacsCacheLocator.__new__(_jit.PocketPacsCacheLocator)
    before = locator.get_source_stamp()
    helper = tmp_path / "helpers.py"
    helper.write_text("x = 22\n")
    os.utime(helper, ns=(helper.stat().st_atime_ns, helper.stat().st_mtime_ns + 1_000_000))
    assert locator.get_source_stamp() != before
