"""The benchmark runner's honesty and tools (issue 18): missing inputs, the registry, the data
cache, ``--compare``, the README table and the plots."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from conftest import REPO

from pocketpacs.benchmarks import REGISTRY
from pocketpacs.benchmarks.compare import compare, compare_text
from pocketpacs.benchmarks.readme_table import BEGIN, END, markdown, replace_between_markers
from pocketpacs.benchmarks.results import Context, Row, from_samples, skipped
from pocketpacs.benchmarks.runner import benchmarks, status_of


def _bench(*args: str, cwd=None, env_cache=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if env_cache is not None:
        env["POCKETPACS_BENCH_CACHE"] = str(env_cache)
    return subprocess.run([sys.executable, "-m", "pocketpacs", "bench", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


@pytest.mark.parametrize("name", ["memory", "parse", "startup"])
def test_a_benchmark_with_missing_inputs_exits_nonzero_without_a_figure(tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "run.json"
    p = _bench(name, "--quick", "--data", str(empty), "--json", str(out), env_cache=tmp_path / "cache")
    assert p.returncode == 1, p.stdout + p.stderr
    entry = json.loads(out.read_text())["benchmarks"][name]
    assert entry["status"] == "skipped"
    assert entry["rows"]
    for row in entry["rows"]:
        assert row["skipped_reason"] and "value" not in row, row
    assert any(str(empty) in row["skipped_reason"] for row in entry["rows"])
    assert "not measured" in p.stdout and "PASS" not in p.stdout
    assert f"measured nothing: {name}" in p.stderr


def test_the_old_memory_script_no_longer_passes_work_it_never_did(tmp_path):
    """It printed a 0.000x 'worst' and exited 0 when its inputs were missing."""
    empty = tmp_path / "empty"
    empty.mkdir()
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_memory.py"), "--data", str(empty)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, POCKETPACS_BENCH_CACHE=str(tmp_path / "cache")))
    assert p.returncode == 1
    assert "0.000" not in p.stdout and "PASS" not in p.stdout
    assert "no case could be measured" in p.stdout


def test_unknown_benchmark_and_bad_compare_file_are_usage_errors(tmp_path):
    p = _bench("nosuch", env_cache=tmp_path)
    assert p.returncode == 2
    assert "unknown benchmark(s): nosuch" in p.stderr and "parse" in p.stderr
    bad = tmp_path / "old.json"
    bad.write_text("{}")
    p = _bench("parse", "--compare", str(bad), env_cache=tmp_path)
    assert p.returncode == 2
    assert str(bad) in p.stderr and "not a `pocketpacs bench --json` file" in p.stderr
    p = _bench("parse", "--json", str(tmp_path / "no" / "run.json"), env_cache=tmp_path)
    assert p.returncode == 2 and "its folder does not exist" in p.stderr
    p = _bench("parse", "--data", str(tmp_path / "none"), env_cache=tmp_path)
    assert p.returncode == 2 and "not a folder" in p.stderr


def test_list_from_the_cli_and_from_a_checkout():
    p = _bench("--list")
    assert p.returncode == 0
    names = [line.split()[0] for line in p.stdout.splitlines()]
    assert names == list(benchmarks())
    q = subprocess.run([sys.executable, "-m", "benchmarks", "--list"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert q.returncode == 0 and q.stdout == p.stdout


def test_registry_modules_have_the_interface():
    mods = benchmarks()
    assert len(mods) == len(REGISTRY)
    for name, mod in mods.items():
        assert mod.NAME == name
        assert callable(mod.run)
        assert (mod.__doc__ or "").strip(), name


def test_status_and_rows_without_figures():
    a = from_samples("x", "ours", "files/s", [3.0, 1.0, 2.0])
    assert (a.value, a.low, a.high, a.repeats) == (2.0, 1.0, 3.0, 3)
    s = skipped("x", "peer", "files/s", "peer not installed")
    d = s.to_json()
    assert "value" not in d and d["skipped_reason"] == "peer not installed"
    assert status_of([a, s]) == "partial" and status_of([s]) == "skipped" and status_of([a]) == "measured"
    # a value set on a skipped row is never written
    s.value = 5.0
    assert "value" not in s.to_json()


def _run(rows: dict[str, list[Row]], commit: str = "a" * 40) -> dict:
    return {"schema": "pocketpacs-bench/1", "started": "2026-01-01T00:00:00+00:00", "quick": True,
            "machine": {"cpu": "cpu", "cores": 2, "memory_gb": 4, "os": "Linux", "python": "3.11"},
            "code": {"commit": commit, "version": "0.1.0"}, "load_before": [0, 0, 0], "load_after": [0, 0, 0],
            "benchmarks": {n: {"status": status_of(r), "rows": [x.to_json() for x in r]} for n, r in rows.items()}}


def test_compare_flags_moves_beyond_the_spread_only():
    old = _run({"parse": [from_samples("w", "ours", "files/s", [100, 110, 120]),
                          from_samples("w", "steady", "files/s", [100, 110, 120]),
                          from_samples("w", "latency", "ms", [10, 11, 12], higher_is_better=False),
                          from_samples("w", "once", "s", [5.0]),
                          skipped("w", "peer", "files/s", "not installed")]})
    new = _run({"parse": [from_samples("w", "ours", "files/s", [150, 160, 170]),   # up, beyond
                          from_samples("w", "steady", "files/s", [115, 118, 125]),  # up, inside the spread
                          from_samples("w", "latency", "ms", [20, 21, 22], higher_is_better=False),  # worse
                          from_samples("w", "once", "s", [9.0]),  # one run: never flagged
                          from_samples("w", "peer", "files/s", [1, 2, 3]),
                          from_samples("w", "new row", "files/s", [1, 2, 3])]}, commit="b" * 40)
    by = {e["method"]: e for e in compare(old, new)}
    assert by["ours"]["beyond_spread"] and by["ours"]["better"]
    assert by["ours"]["change"] == pytest.approx(160 / 110 - 1)
    assert not by["steady"]["beyond_spread"]
    assert by["latency"]["beyond_spread"] and by["latency"]["better"] is False
    assert not by["once"]["beyond_spread"] and "no spread" in by["once"]["note"]
    assert by["peer"]["note"] == "not measured then"
    assert by["new row"]["note"] == "not in the earlier run"
    text = compare_text(old, new, "old.json")
    assert ">> better" in text and "<< worse" in text
    assert "2 of 6 rows moved beyond the measured spread" in text


def test_readme_table_from_a_run(tmp_path):
    run = _run({"parse": [from_samples("header parse", "PocketPACS parse", "files/s", [9e4, 1e5, 1.1e5],
                                       ratios={"GDCM Scanner": 16.5}, target=">= 10x GDCM Scanner", met=True,
                                       headline=True),
                          from_samples("header parse", "pydicom", "files/s", [3e3])],
                "render": [skipped("64^3", "3D DVR", "fps", "no browser: /usr/bin/chromium not found",
                                   headline=True)]})
    table = markdown(run, plots="docs/bench")
    assert table.startswith(BEGIN) and table.endswith(END)
    assert "| parse | header parse | PocketPACS parse | 100,000 files/s (90,000-110,000) | 16.5x GDCM Scanner |" in table
    assert "pydicom" not in table  # not a headline row
    assert "not measured: no browser: /usr/bin/chromium not found" in table
    assert "`pocketpacs bench --quick parse`" in table
    assert "![parse](docs/bench/parse.png)" in table and "![render]" not in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    src = tmp_path / "run.json"
    src.write_text(json.dumps(run))
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "readme_table.py"), str(src), "--write",
                        str(readme)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    text = readme.read_text()
    assert "old" not in text and text.endswith("\n\nafter\n") and "PocketPACS parse" in text
    with pytest.raises(ValueError, match="exactly one"):
        replace_between_markers("no markers", table)


def test_plots_or_a_stated_reason(tmp_path):
    from pocketpacs.benchmarks.plots import write_plots
    from pocketpacs.benchmarks.results import RssSampler

    with RssSampler(interval=0.001) as mem:
        bytearray(1 << 20)
    run = _run({"import": [from_samples("import", "ours", "files/s", [1, 2, 3], x=1000, x_label="files"),
                           from_samples("import", "ours", "files/s", [2, 3, 4], x=5000, x_label="files"),
                           from_samples("import", "GDCM", "files/s", [1, 1, 1])],
                "render": [skipped("r", "3D", "fps", "no browser")]})
    run["benchmarks"]["import"]["curves"] = {"rss": {"x": mem.t, "y": mem.mb, "x_label": "s", "y_label": "MB"}}
    lines = write_plots(run, tmp_path / "plots")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert lines == [lines[0]] and "matplotlib is not installed" in lines[0]
        assert not (tmp_path / "plots").exists()
        return
    png = tmp_path / "plots" / "import.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert "no plot for render: nothing measured" in lines
    assert not (tmp_path / "plots" / "render.png").exists()


def test_a_long_bar_label_is_wrapped_word_for_word():
    """A long method or "what" is wrapped (it pushed the bars out of the picture), nothing dropped."""
    from pocketpacs.benchmarks.plots import LABEL_WIDTH, _label

    method = "floor of the design: a process that parses 1 file with the compiled kernels (Python, NumPy, numba)"
    label = _label(method, "import of 5,000 files")
    lines = label.split("\n")
    assert len(lines) >= 3 and all(len(line) <= LABEL_WIDTH for line in lines)
    assert " ".join(lines).split() == (method + " import of 5,000 files").split()
    assert _label("ours") == "ours" and _label("") == ""


def test_data_cache_is_reused_keyed_and_private(tmp_path):
    ctx = Context(cache=tmp_path / "cache")
    made = []

    def make(folder):
        made.append(folder)
        (folder / "f").write_text("x")

    a = ctx.cached("d", {"n": 1}, make)
    assert ctx.cached("d", {"n": 1}, make) == a and len(made) == 1  # reused
    b = ctx.cached("d", {"n": 2}, make)
    assert b != a and len(made) == 2 and a.exists()  # other parameters: another folder, both kept
    assert stat.S_IMODE(a.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    # an interrupted generation (no marker) is made again
    (a.parent / f"{a.name}.ready").unlink()
    assert ctx.cached("d", {"n": 1}, make) == a and len(made) == 3
    # a change of the code behind the data: a new folder, the stale one of the same parameters removed
    src = tmp_path / "gen.py"
    src.write_text("v1")
    c = ctx.cached("d", {"n": 1}, make, sources=[src])
    assert c != a and not a.exists() and b.exists()


def test_data_cache_is_remade_for_a_new_archive_schema(tmp_path, monkeypatch):
    # a cached archive of an older schema cannot be opened read-only by newer code
    # (SchemaVersionMismatch): the schema version is part of the key
    from pocketpacs.archive import store

    ctx = Context(cache=tmp_path / "cache")
    made = []

    def make(folder):
        made.append(folder)

    a = ctx.cached("d", {"n": 1}, make)
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    b = ctx.cached("d", {"n": 1}, make)
    assert b != a and len(made) == 2 and not a.exists()  # the stale folder is removed
