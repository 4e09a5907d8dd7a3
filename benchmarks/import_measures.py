"""Measuring pieces the import benchmarks share (``bench_import`` and ``import_scale``).

The file list and a warm page cache, the rescan's baseline (a plain walk +
stat), search latency over an archive, and the child process that imports a
folder and reports its peak RSS (VmHWM) and the read-ahead helper's private
memory.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path


def list_files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files)
    out.sort()
    return out


def warm(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def walk_stat(root: Path) -> int:
    """Plain walk + stat of every file (the rescan baseline)."""
    n = 0
    stack = [str(root)]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    e.stat()
                    n += 1
    return n


def search_latency(archive: Path, iterations: int) -> dict:
    import pocketpacs

    with pocketpacs.open_archive(archive, readonly=True) as ar:
        pats = ar.patients()
        studies = ar.studies()
        rng = random.Random(1)
        queries = []
        for _ in range(iterations):
            p = rng.choice(pats)
            s = rng.choice(studies)
            fam = (p.name.split("^")[0] or "x")[:3]
            y = s.date[:4] or "2020"
            queries += [
                {"name": fam},
                {"name": fam + "*", "modality": "CT"},
                {"patient_id": p.patient_id},
                {"study_date": f"{y}0101-{y}1231", "modality": "MR"},
                {"description": "thorax"},
                {"accession": s.accession or "none"},
                {"birth_date": f"{p.birth_date[:4] or '1950'}-{int(p.birth_date[:4] or 1950) + 10}"},
            ]
        for q in queries[:50]:  # warm
            ar.search(**q)
        times, cold = [], []
        for q in queries:
            t = time.perf_counter()
            ar.search(**q)
            times.append(time.perf_counter() - t)
        for q in queries:  # without the archive's decoded-record cache
            ar._cache_gen = None
            t = time.perf_counter()
            ar.search(**q)
            cold.append(time.perf_counter() - t)
    times.sort()
    cold.sort()
    return {"queries": len(times), "p50_ms": 1e3 * times[len(times) // 2],
            "p99_ms": 1e3 * times[int(len(times) * 0.99)], "max_ms": 1e3 * times[-1],
            "cold_p50_ms": 1e3 * cold[len(cold) // 2], "cold_p99_ms": 1e3 * cold[int(len(cold) * 0.99)],
            "instances": 0}


_RSS = """
import resource, sys, pocketpacs
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
# the read-ahead helper's private memory (RssAnon when it is stopped: it only
# grows); its shared memory and mapped files are already in the importer's RSS
from pocketpacs.archive import readahead
helper = [0]
_close = readahead.ReadAhead.close
def close(self, wait=False):
    if self._proc is not None:
        with open(f"/proc/{self._proc.pid}/status") as f:
            helper[0] = max(helper[0], int(next(l.split()[1] for l in f if l.startswith("RssAnon:"))))
    return _close(self, wait)
readahead.ReadAhead.close = close
ar = pocketpacs.open_archive(sys.argv[1])
rep = ar.import_folder(sys.argv[2])
ar.close()
print(rep.seen, peak_kib(), helper[0])
"""


def peak_rss(root: Path, archive: Path) -> tuple[int, float, float]:
    """(files seen, the importer's peak RSS in MB, the read-ahead helper's private MB)."""
    shutil.rmtree(archive, ignore_errors=True)
    out = subprocess.run([sys.executable, "-c", _RSS, str(archive), str(root)], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024.0, int(out[2]) / 1024.0  # KiB on Linux
