"""The kernel cache: importing PocketPACS leaves the process alone, our kernels
are cached in a private folder of ours, other numba users keep their caching,
and an unsafe cache folder is never used: not one others may write, nor one
under a folder another user owns or may write (issue 13: they could rename
the folder away and plant pickles numba loads), and numba's own shared
fallbacks (``~/.cache/numba``, ``__pycache__``) never hold our kernels."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from conftest import require_system

NOBODY = 65534

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
    assert any("may be written by other users" in w for w in res["warnings"]), res["warnings"]
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


AS_NOBODY = textwrap.dedent("""
    import json, os, sys, warnings
    # as root, like test_sec_perms: the interpreter lives in a root-only
    # folder; no kernel module is loaded yet, so no cache folder is chosen
    import numba, numpy, pocketpacs
    from pocketpacs.native import _jit
    numba.njit(lambda a: (a * 2.5).astype(numpy.uint8).sum())(numpy.ones((2, 2), numpy.int16))  # numba's registries
    assert _jit._cache_dir is None                 # no cache folder chosen yet
    home = sys.argv[1]
    os.setgroups([])
    os.setgid(%(uid)d)
    os.setuid(%(uid)d)
    assert os.getuid() == %(uid)d and os.geteuid() == %(uid)d
    os.umask(0o022)
    os.environ["HOME"] = home
    os.environ["XDG_CACHE_HOME"] = os.path.join(home, ".cache")
    os.environ.pop("NUMBA_CACHE_DIR", None)
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import numpy as np
        from pocketpacs.native.window import window_slice as target
        out = np.empty((4, 4), np.uint8)
        target(np.arange(16, dtype=np.int16).reshape(4, 4), 4.0, 8.0, False, out)
    locator = target._cache._impl._locator
    print(json.dumps({"cache_dir": _jit.cache_dir(), "locator": type(locator).__name__,
                      "kernel_dir": locator.get_cache_path(), "out": out.tolist(),
                      "warnings": [str(w.message) for w in caught]}))
""") % {"uid": NOBODY}


def _plant(home: Path, case: str) -> list[Path]:
    """Plant an unsafe cache chain for uid 65534 under *home*; return the planted folders."""
    cache = home / ".cache"
    top = cache / "pocketpacs"
    leaf = top / "numba"
    leaf.mkdir(parents=True)
    for d in (home, cache, top, leaf):
        os.chown(d, NOBODY, NOBODY)
        d.chmod(0o700)
    if case == "others-may-write-pocketpacs":
        top.chmod(0o777)              # anyone may rename numba/ away and plant their own
    elif case == "pocketpacs-owned-by-another-user":
        os.chown(top, 0, 0)           # root stands for "another user" of uid 65534
        top.chmod(0o755)
    elif case == "others-may-write-dot-cache":
        cache.chmod(0o777)            # anyone may rename pocketpacs/ away
    elif case == "leaf-not-writable":
        leaf.chmod(0o500)             # numba would fall back to ~/.cache/numba
    return [top, leaf]


@pytest.mark.parametrize("case", ["others-may-write-pocketpacs", "pocketpacs-owned-by-another-user",
                                  "others-may-write-dot-cache", "leaf-not-writable"])
def test_another_users_cache_chain_is_refused_as_a_second_uid(case):
    """As uid 65534: a cache chain another user can change (a world-writable or
    root-owned ``~/.cache/pocketpacs``, a world-writable ``~/.cache``) is not
    used, nor is numba's ``~/.cache/numba`` when the leaf cannot be written:
    the kernels go to a private temporary folder of the user, with a warning."""
    require_system(os.geteuid() == 0, "root, to run a child as uid 65534 (CI runs as root)")
    base = Path(tempfile.mkdtemp(prefix="pp-jit-"))
    base.chmod(0o755)
    kernel_dir = None
    try:
        home = base / "home"
        home.mkdir()
        planted = _plant(home, case)
        r = subprocess.run([sys.executable, "-c", AS_NOBODY, str(home)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        res = json.loads(r.stdout.strip().splitlines()[-1])
        kernel_dir = res["cache_dir"]
        assert res["locator"] == "PocketPacsCacheLocator"
        assert res["out"][0][0] == 0 and res["out"][3][3] == 255   # the kernel ran
        used = Path(res["cache_dir"])
        assert not str(used).startswith(str(home)), res
        assert Path(res["kernel_dir"]).is_relative_to(used)
        st = used.stat()
        assert st.st_uid == NOBODY and stat.S_IMODE(st.st_mode) == 0o700
        assert any(used.rglob("*.nbi")), "no kernel index in the private folder"
        assert any("private temporary folder" in w for w in res["warnings"]), res["warnings"]
        for d in planted:
            assert not any(d.rglob("*.nb*")), f"kernels were cached in {d}"
        assert not (home / ".cache" / "numba").exists(), "numba fell back to ~/.cache/numba"
    finally:
        if kernel_dir and kernel_dir.startswith(tempfile.gettempdir() + os.sep + "pocketpacs-numba-"):
            shutil.rmtree(kernel_dir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
