"""The import with the page cache dropped (issue 16): ``pocketpacs bench import``'s cold rows.

:func:`cold_import_rows` times, with the whole page cache dropped before each
run (root only), the import in this process and ``pocketpacs import`` as a
new process, against the read floors of :mod:`.bench_parse` (one thread, and
the deep-queue floor: 32 threads doing open + read 8 KB + close; target 0.8x).
``python benchmarks/bench_import.py --cold`` prints these rows alone.
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pocketpacs.benchmarks.import_measures import warm


def _cold_cli_import(root: Path, archive: Path) -> tuple[float, dict]:
    """``pocketpacs import --json`` of ``root`` into the (existing, empty)
    ``archive`` in a child process: (process wall seconds, its report)."""
    env = dict(os.environ, POCKETPACS_ARCHIVE=str(archive))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pocketpacs", "import", "--json", "--no-progress", str(root)],
                       capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t
    if r.returncode not in (0, 1):   # 1: some files were not indexed (the import still ran)
        raise RuntimeError(f"pocketpacs import failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return wall, json.loads(r.stdout)


def cold_import_rows(ctx, bench: Path, paths: list[str], work: Path, repeat: int) -> list:
    """The import with the page cache dropped, against the read floors.

    Before each run the whole page cache is dropped (root only; left out of
    ``--quick``).  Two figures: the import in this process, its program
    already loaded as the floors' is (``import_folder`` into an empty
    archive: walk, read, parse, commit), against the deep-queue read floor
    (32 threads doing open + read 8 KB + close over the file list) — the
    target; and ``pocketpacs import`` as the user runs it, a new process
    from start to exit, where the interpreter, numba and the kernel cache
    are read from the cold disk too.
    """
    from pocketpacs.benchmarks.bench_parse import FLOOR_THREADS, cold_reason, drop_page_cache, floor, floor_deep
    from pocketpacs.benchmarks.results import add_ratio, from_samples, rates, skipped

    import pocketpacs

    n = len(paths)
    what = f"import, {n} files, cold page cache"
    ours = "PocketPACS import (walk + parse + commit)"
    cli = "`pocketpacs import`, process start to exit"
    fl, fld = "read floor (first 8 KB)", f"deep-queue read floor ({FLOOR_THREADS} threads, first 8 KB)"
    reason = cold_reason(ctx)
    if reason:
        return [skipped(what, m, "files/s", reason) for m in (ours, cli, fld, fl)]
    times: dict[str, list[float]] = {ours: [], cli: [], fl: [], fld: []}
    inside: list[float] = []
    for i in range(repeat):
        for name, fn in ((fl, floor), (fld, floor_deep)):
            drop_page_cache()
            t = time.perf_counter()
            fn(paths)
            times[name].append(time.perf_counter() - t)
        archive = work / f"cold-{i}"
        shutil.rmtree(archive, ignore_errors=True)
        with pocketpacs.open_archive(archive) as ar:   # (making an archive is not part of an import)
            drop_page_cache()
            t = time.perf_counter()
            ar.import_folder(bench)
            times[ours].append(time.perf_counter() - t)
        shutil.rmtree(archive, ignore_errors=True)
        pocketpacs.open_archive(archive).close()
        drop_page_cache()
        wall, rep = _cold_cli_import(bench, archive)
        times[cli].append(wall)
        inside.append(max(1e-9, rep["elapsed_s"] - rep.get("compile_s", 0.0)))
        shutil.rmtree(archive, ignore_errors=True)
    warm(paths)  # leave the files cached for what follows
    rows = {k: from_samples(what, k, "files/s", rates(n, v)) for k, v in times.items()}
    o, c = rows[ours], rows[cli]
    o.headline = True
    for r in (o, c):
        add_ratio(r, rows[fld], "deep-queue floor")
        add_ratio(r, rows[fl], "cold read floor")
    o.target = ">= 0.8x the deep-queue floor"
    o.met = o.ratios.get("deep-queue floor", 0) >= 0.8
    # each run's import against the deep-queue floor measured just before it
    # (the floors of one run spread 2-5x on a shared machine: the pairs less so)
    paired = [f / t for f, t in zip(times[fld], times[ours])]
    o.extra = {"deep-queue floor / import, median of the runs' pairs": statistics.median(paired),
               "pairs min-max": f"{min(paired):.2f}-{max(paired):.2f}"}
    c.extra = {"the import itself (report's time), files/s": n / statistics.median(inside)}
    return [o, c, rows[fld], rows[fl]]
