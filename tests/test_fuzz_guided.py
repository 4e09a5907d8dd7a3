"""Coverage-guided fuzzing (interpreted kernels) and replay of the kept
corpus against the compiled kernels, bounds-checked and as released, in
watchdog child processes (tests/fuzz_guided.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fuzz_guided as G

HERE = Path(__file__).resolve().parent

GUIDED_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, {here!r})
import fuzz_guided as G
print(json.dumps(G.guided({n}, seed={seed}, out_dir=Path({out!r}))))
"""


def _guided(n: int, seed: int, out: Path) -> dict:
    env = G.mode_env("interpreted")
    proc = subprocess.run([sys.executable, "-c", GUIDED_CHILD.format(here=str(HERE), n=n, seed=seed,
                                                                     out=str(out))],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def guided_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("guided")
    return out, _guided(500, seed=20261125, out=out)


def test_guided_fuzzing_finds_new_coverage_and_no_exception(guided_run):
    out, res = guided_run
    print(res)
    assert res["inputs"] == 500
    # interpreted, every index is checked: 0 IndexError (or any exception)
    assert res["findings"] == 0, res["finding_messages"]
    # the guidance works: mutations reached arcs the seeds did not
    assert res["kept_by_mutation"] > 0
    assert res["corpus"] == res["seed_kept"] + res["kept_by_mutation"]
    # most of the kernels' statements run (the rest: rare encodings, NEED_MORE
    # paths of parse_files' partial reads)
    assert res["lines_covered"] > res["function_lines"] // 2
    # every kernel module is traced, each mostly covered
    assert set(res["lines_by_file"]) == {"dicomparse.py", "dicomvr.py", "dicomvalues.py"}
    assert all(c > n // 2 for c, n in res["lines_by_file"].values()), res["lines_by_file"]
    assert sum(c for c, _ in res["lines_by_file"].values()) == res["lines_covered"]
    assert len(list((out / "corpus").glob("*.bin"))) == len(
        {p.read_bytes() for p in (out / "corpus").glob("*.bin")})
    assert 0 < len(list((out / "corpus").glob("*.bin"))) <= res["corpus"]
    assert not (out / "crashes").exists()
    labels = set(res["outcomes"])
    assert any(k.startswith("parsed") for k in labels)
    assert {"failed:truncated", "failed:malformed"} <= labels


def test_arc_tracer_separates_paths():
    """The tracer sees the kernels' branches (interpreted child): a valid
    file, a truncated one and too deep a nesting take different arcs."""
    code = f"""
import json, sys
sys.path.insert(0, {str(HERE)!r})
import fuzz_guided as G, fuzzing, structured
b = structured.pydicom_file("CT_small.dcm")
arcs = []
for blob in (b, b[:300], fuzzing.nested(65)):
    with G.ArcTracer() as t:
        G.exercise(blob)
    arcs.append(sorted(t.arcs))
print(json.dumps(arcs))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=G.mode_env("interpreted"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    full, cut, deep = (set(map(tuple, a)) for a in json.loads(proc.stdout.strip().splitlines()[-1]))
    assert len(full) > 100
    assert cut - full and deep - full and full - cut


@pytest.mark.parametrize("mode", ["boundscheck", "released"])
def test_replay_guided_corpus_compiled(guided_run, mode):
    out, res = guided_run
    n = len(list((out / "corpus").glob("*.bin")))
    rep = G.replay({"kind": "dir", "path": str(out / "corpus")}, mode)
    print({k: v for k, v in rep.items() if k != "outcomes"})
    assert rep["config"]["boundscheck"] == (mode == "boundscheck")
    assert not rep["config"]["disable_jit"]
    assert rep["inputs"] == n
    assert rep["crashes"] == [] and rep["hangs"] == [] and rep["exceptions"] == []
    assert sum(rep["outcomes"].values()) == n and "EXCEPTION" not in rep["outcomes"]


def test_replay_structured_inputs_bounds_checked():
    """Every structured input (tests/structured.py, pydicom's files) through
    the bounds-checked compiled kernels: an out-of-bounds index would raise."""
    import structured

    n = sum(1 for _ in structured.all_inputs("ci"))
    rep = G.replay({"kind": "structured", "scale": "ci"}, "boundscheck")
    print({k: v for k, v in rep.items() if k != "outcomes"}, rep["outcomes"])
    assert rep["config"]["boundscheck"]
    assert rep["inputs"] == n > 20000
    assert rep["crashes"] == [] and rep["hangs"] == [] and rep["exceptions"] == []
    assert "EXCEPTION" not in rep["outcomes"]


def test_watchdog_reports_crash_hang_and_exception_and_resumes():
    names = ["ok", "segv", "ok", "hang", "raise", "ok"]
    rep = G.replay({"kind": "selftest", "names": names, "harness": "watchdog-selftest"},
                   "released", input_timeout=3.0)
    assert [c["input"] for c in rep["crashes"]] == ["segv"]
    assert rep["crashes"][0]["rc"] == -11
    assert [h["input"] for h in rep["hangs"]] == ["hang"]
    assert [e["input"] for e in rep["exceptions"]] == ["raise"]
    assert rep["inputs"] == len(names)
    assert rep["children"] == 3 and rep["peak_rss_kib"] > 0
