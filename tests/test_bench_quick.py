"""`pocketpacs bench --quick`: every benchmark of the suite runs and gives figures or stated reasons (issue 18).

No timing threshold: the figures are checked for being there and well formed
(median inside its min-max spread), never for their size.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import IN_CI, REPO

from pocketpacs.benchmarks import REGISTRY
from pocketpacs.benchmarks.runner import benchmarks

pytestmark = pytest.mark.slow


def _check_rows(name: str, entry: dict) -> None:
    assert entry["rows"], f"{name}: no rows"
    for row in entry["rows"]:
        if row.get("skipped_reason"):
            assert "value" not in row and "ratios" not in row, f"{name}: a skipped row with a figure: {row}"
            assert row["repeats"] == 0
        else:
            v = row["value"]
            assert isinstance(v, (int, float)) and v == v, f"{name}: {row}"
            assert row["repeats"] >= 1
            assert row["low"] <= v <= row["high"], f"{name}: median outside its spread: {row}"
            assert row["unit"]


def test_quick_suite_runs_every_benchmark(tmp_path):
    out = tmp_path / "run.json"
    env = dict(os.environ, POCKETPACS_BENCH_CACHE=str(tmp_path / "cache"))
    p = subprocess.run([sys.executable, "-m", "pocketpacs", "bench", "--quick", "--json", str(out)],
                       capture_output=True, text=True, timeout=1500, env=env, cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr[-3000:]
    run = json.loads(out.read_text())
    names = list(benchmarks())
    assert len(names) == len(REGISTRY)
    assert list(run["benchmarks"]) == names
    for name, entry in run["benchmarks"].items():
        assert entry["status"] != "failed", f"{name} failed: {entry['error']}\n{p.stderr[-3000:]}"
        _check_rows(name, entry)
        assert f"== {name}:" in p.stdout
    unmeasured = [n for n, e in run["benchmarks"].items() if e["status"] == "skipped"]
    # exit 1 exactly when a benchmark measured nothing; its reasons are in its rows
    assert p.returncode == (1 if unmeasured else 0), (unmeasured, p.stdout[-3000:])
    if IN_CI:  # CI installs Chromium and Playwright: every benchmark must measure something
        assert not unmeasured, unmeasured
    m = run["machine"]
    for key in ("cpu", "cores", "memory_gb", "os", "python"):
        assert m[key], key
    for lib in ("numpy", "numba", "pydicom"):
        assert m["libraries"][lib], lib
    assert len(run["load_before"]) == 3 and len(run["load_after"]) == 3
    assert run["code"]["version"]
    if (REPO / ".git").exists():
        assert len(run["code"]["commit"]) == 40
    assert run["quick"] is True
    # memory over time was recorded for the import and the volume load
    for name in ("import", "volume", "memory"):
        assert run["benchmarks"][name]["curves"], name
    # start-up (issue 16): process wall times, start to exit, with the targets; the load is recorded
    startup = run["benchmarks"]["startup"]
    heads = [r for r in startup["rows"] if r["headline"]]
    assert {r["target"] for r in heads} >= {"< 0.3 s", "<= 4 s", ">= 4x GDCM Scanner"}, heads
    for r in heads:
        assert r["unit"] == "s" and not r["higher_is_better"] and "process start to exit" in r["method"], r
    # the floor of the design beside the import (a real parse: its process checks that numba parsed the file)
    floors = [r for r in heads if r["method"].startswith("floor of the design")]
    assert len(floors) == 1 and floors[0]["value"] > 0, heads
    assert len(startup["load_before"]) == 3 and len(startup["load_after"]) == 3
    # compare (issue 17): the linked step against the single viewer's
    linked = [r for r in run["benchmarks"]["compare"]["rows"] if r["headline"]]
    assert len(linked) == 1 and (linked[0].get("skipped_reason") or "single viewer" in linked[0]["ratios"])
    # the README table and the comparison work on a real run
    from pocketpacs.benchmarks.compare import compare
    from pocketpacs.benchmarks.readme_table import BEGIN, END, markdown

    table = markdown(run)
    assert table.startswith(BEGIN) and table.endswith(END)
    assert table.count("\n| ") >= len(names)
    same = compare(run, run)
    assert same and not any(e["beyond_spread"] for e in same)
