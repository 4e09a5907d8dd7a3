"""The window presets never wait for a histogram-kernel compile.

With an empty kernel cache (the first series after installing), the
histogram window is counted by the NumPy references and the kernels are
compiled into the cache by a detached child; once they are there, the
kernels count, with the same presets.  Run in a child process with its own
empty ``NUMBA_CACHE_DIR``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import time, numpy as np
    import pocketpacs.native._jit            # numba loaded, as in an app that has opened series
    from pocketpacs.images import windowkernels, windows
    from pocketpacs.native import histogram, reference

    rng = np.random.default_rng(7)
    vol = rng.integers(-1024, 3000, size=(24, 64, 64)).astype(np.int16)
    assert not windowkernels.ready()
    assert windowkernels.counter(vol.reshape(-1)) is reference
    first = windows.histogram_window(vol)
    assert all(not getattr(histogram, k).overloads for k in windowkernels._KERNELS), "compiled in the foreground"
    assert windowkernels._started.is_set()
    t = time.monotonic()
    while not windowkernels.ready():
        assert time.monotonic() - t < 600, "the background compile did not fill the cache"
        time.sleep(0.2)
    assert windowkernels.counter(vol.reshape(-1)) is histogram
    assert windows.histogram_window(vol).to_dict() == first.to_dict()
    print("ok")
""")


def test_presets_use_references_until_the_background_compile_is_in_the_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_DISABLE_JIT"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "kernels")
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"
