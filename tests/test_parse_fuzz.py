"""Fuzzing the compiled parser in a child process: no crash, no hang, only
typed outcomes (parsed / fallback / failed with a reason)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

CHILD = """
import json, sys
sys.path.insert(0, {here!r})
from pathlib import Path
import fuzzing
corpus = Path({corpus!r}) if {corpus!r} else None
print(json.dumps(fuzzing.run({count}, seed={seed}, corpus=corpus, fallback={fallback})))
"""


def _child(count: int, seed: int, corpus, fallback: bool, timeout: float, env=None) -> dict:
    code = CHILD.format(here=str(HERE), corpus=str(corpus) if corpus else "", count=count,
                        seed=seed, fallback=fallback)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"child died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("seeds", ["built-in", pytest.param("corpus", marks=pytest.mark.corpus)])
def test_fuzz_20000_mutated_headers_compiled(seeds, request):
    """Mutations of the built-in headers, and of the shared corpus's files (that
    case needs the ``corpus`` fixture: it skips where the corpus is absent)."""
    corpus = request.getfixturevalue("corpus") if seeds == "corpus" else None
    res = _child(20000, seed=20261125, corpus=corpus, fallback=False, timeout=600)
    print(res)
    assert res["count"] == 20000
    assert res["parsed"] + res["fallback"] + res["failed"] == 20000
    assert res["parsed"] > 1000 and res["failed"] > 1000  # the mutations hit both sides
    assert res["reasons"].get("malformed", 0) > 0 and res["reasons"].get("truncated", 0) > 0


def test_fuzz_with_pydicom_fallback():
    res = _child(1500, seed=7, corpus=None, fallback=True, timeout=600)
    assert res["parsed"] + res["fallback"] + res["failed"] == 1500


def test_fuzz_interpreted_bounds_checked():
    """The same kernels run as plain Python (NUMBA_DISABLE_JIT=1), where NumPy
    checks every index: an out-of-bounds read would raise IndexError."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = _child(600, seed=11, corpus=None, fallback=False, timeout=600, env=env)
    assert res["parsed"] + res["fallback"] + res["failed"] == 600


@pytest.mark.parametrize("depth,ok", [(64, True), (65, False), (1000, False), (100000, False)])
def test_nesting_limit(depth, ok):
    import fuzzing

    from pocketpacs.dicom.headers import parse_bytes

    hb = parse_bytes([fuzzing.nested(depth)], fallback=False)
    if ok:
        assert hb.status[0] == 0, hb.message[0]
        assert hb.record(0)["SOPInstanceUID"] == "1.2.3"
    else:
        assert hb.status[0] == -1 and hb.reason[0] == "malformed"
        assert "nested deeper than 64" in hb.message[0]
