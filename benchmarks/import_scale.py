"""``bench_import --scale N``: a million small files against 100,000 of them (issue 16).

Import rate and peak RSS of a child process, a rescan, search p50/p99 with and
without the record cache, the archive's size per instance next to Orthanc's
SQLite index measured on this machine, and ``pocketpacs check`` / ``verify``
times.  Run through ``pocketpacs bench import --scale N`` or
``python benchmarks/bench_import.py --scale N``.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pocketpacs.benchmarks.import_measures import _RSS, list_files, walk_stat, warm


# ---- --scale N: a million instances (issue 16) -----------------------------------------------

#: --scale N data: the ``scale`` preset's shape (2 studies of 5 series of 50 slices per
#: patient, 20% compressed, 20% implicit VR), N / 500 patients, small files (32x32: one
#: 4 KiB block each, ~4 GB and a million inodes at N = 1,000,000)
SCALE_SHAPE = dict(synth_preset="scale", rows=32, cols=32)
#: files per patient of that shape
SCALE_FILES_PER_PATIENT = 2 * 5 * 50
#: Imports of the reference size (100,000 files) per run: two before the large
#: import and one after it; the ratio takes their median.
BASE_REPEATS = 3


def scale_params(n: int) -> dict:
    """The generator's parameters of a ``--scale n`` data set (n rounded to 500 files)."""
    return dict(SCALE_SHAPE, patients=max(1, round(n / SCALE_FILES_PER_PATIENT)))


def _make_scale(folder: Path, params: dict) -> None:
    """Write a ``--scale`` data set into *folder*: one worker process per CPU,
    progress on stderr every 5% (a million files take minutes)."""
    from pocketpacs import synth

    opts = dict(synth.PRESETS[params["synth_preset"]])
    opts.update({k: v for k, v in params.items() if k != "synth_preset"})
    step = [0.05]
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done >= step[0] * total:
            step[0] += 0.05
            dt = time.perf_counter() - t0
            print(f"    {done:,} of {total:,} files ({done / dt:,.0f} files/s)", file=sys.stderr, flush=True)

    synth.generate(folder, **opts, workers=os.cpu_count() or 1, progress=progress)


#: the child of a --scale import: loads the parser with a one-file import into a scratch
#: archive (not timed), then imports the folder into a new archive; prints one JSON line
#: (files seen and indexed, seconds without the parser's compile, peak RSS of itself before
#: and after the import, the read-ahead helper's private peak)
_SCALE_CHILD = _RSS.replace("""ar = pocketpacs.open_archive(sys.argv[1])
rep = ar.import_folder(sys.argv[2])
ar.close()
print(rep.seen, peak_kib(), helper[0])
""", """import json, os, tempfile, time
first = next(os.path.join(d, f) for d, _s, fs in os.walk(sys.argv[2]) for f in sorted(fs) if f != "manifest.json")
with tempfile.TemporaryDirectory() as tmp, pocketpacs.open_archive(os.path.join(tmp, "a")) as ar:
    ar.import_folder(first)  # loads the kernels
before = peak_kib()
ar = pocketpacs.open_archive(sys.argv[1])
t, c = time.perf_counter(), time.process_time()
rep = ar.import_folder(sys.argv[2])
dt, dc = time.perf_counter() - t, time.process_time() - c
with open("/proc/self/status") as f:
    now = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("RssAnon:", "RssFile:"))}
ar.close()
print(json.dumps({"cpu_s": dc, "anon_kib": now.get("RssAnon", 0), "file_kib": now.get("RssFile", 0), "seen": rep.seen, "indexed": rep.indexed, "failed": len(rep.failures), "seconds": dt,
                  "compile_s": rep.compile_s, "peak_before_kib": before, "peak_kib": peak_kib(),
                  "helper_kib": helper[0]}))
""")


def scale_import(root: Path, archive: Path, timeout: float = 3600) -> tuple[dict, object]:
    """Import *root* into a new archive in a child process: (its JSON answer, its RSS curve).

    Raises
    ------
    RuntimeError
        The child failed (its last line of stderr in the message).
    """
    from pocketpacs.benchmarks.results import run_sampled

    shutil.rmtree(archive, ignore_errors=True)
    res, curve = run_sampled([sys.executable, "-c", _SCALE_CHILD, str(archive), str(root)], timeout=timeout)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the importing child exited with status {res.returncode}: {last}")
    return json.loads(res.stdout.strip().splitlines()[-1]), curve


def archive_size(archive: Path) -> dict:
    """Sizes of an archive's database: the file, the pages LMDB uses, the pages of
    its B-trees (``live_bytes``: the file less the pages LMDB keeps free for the
    next transactions), instances and entries."""
    import lmdb

    from pocketpacs.archive.store import DBS

    env = lmdb.open(str(archive), readonly=True, lock=False, max_dbs=64, subdir=True)
    try:
        info, st = env.info(), env.stat()
        used = (info["last_pgno"] + 1) * st["psize"]

        def pages(s: dict) -> int:
            return s["branch_pages"] + s["leaf_pages"] + s["overflow_pages"]

        live = pages(st)
        with env.begin() as t:
            inst = t.stat(env.open_db(b"instances", txn=t, create=False))["entries"]
            for name in DBS:
                try:
                    live += pages(t.stat(env.open_db(name.encode(), txn=t, create=False)))
                except lmdb.NotFoundError:
                    pass
    finally:
        env.close()
    return {"file_bytes": (archive / "data.mdb").stat().st_size, "used_bytes": used,
            "live_bytes": live * st["psize"], "map_bytes": info["map_size"], "instances": inst}


def timed_cli(archive: Path, *command: str, timeout: float = 3600) -> tuple[float, int, str]:
    """Wall time of ``pocketpacs --archive ARCHIVE COMMAND...`` in a fresh process:
    (seconds, exit status, its last output line)."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pocketpacs", "--archive", str(archive), *command],
                         capture_output=True, text=True, timeout=timeout)
    dt = time.perf_counter() - t
    last = ((res.stdout + res.stderr).strip().splitlines() or [""])[-1]
    return dt, res.returncode, last


def orthanc_index_size(root: Path, n_files: int) -> tuple[dict | None, str | None]:
    """Orthanc's SQLite index per instance, measured: the files of the first series of
    *root*'s manifest (whole patients, up to *n_files* files) uploaded into a fresh local
    Orthanc (REST), index file size after minus before, over the instances.

    Returns
    -------
    (dict or None, str or None)
        The figures, or None and why they could not be measured.
    """
    from pocketpacs.benchmarks.bench_network import orthanc_support

    N, why = orthanc_support()
    if N is None:
        return None, why
    man = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    files: list[Path] = []
    for p in man["patients"]:
        pfiles = [root / f for s in man["series"] if s["patient_id"] == p["patient_id"] for f in s["files"]]
        if files and len(files) + len(pfiles) > n_files:
            break
        files += pfiles
    tmp = Path(tempfile.mkdtemp(prefix="pp-bench-orthanc-"))
    (tmp / "orthanc").mkdir()
    o = N.Orthanc(tmp / "orthanc")
    try:
        o.start()
        index = tmp / "orthanc" / "db" / "index"
        empty = sum(f.stat().st_size for f in index.parent.glob("index*"))
        t = time.perf_counter()
        o.upload(files)
        up = time.perf_counter() - t
        n = o.rest("/statistics")["CountInstances"]
        o.stop()  # SQLite's journal folded into the index
        size = sum(f.stat().st_size for f in index.parent.glob("index*"))
    except Exception as e:  # Orthanc refused or failed: say so in the row
        return None, f"Orthanc failed: {type(e).__name__}: {e}"
    finally:
        o.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if not n:
        return None, "Orthanc stored no instance"
    return {"instances": n, "bytes": size - empty, "per_instance": (size - empty) / n, "upload_s": up,
            "empty_bytes": empty}, None


def scale_search_latency(archive: Path, iterations: int) -> dict:
    """:func:`search_latency`'s queries, timed by wall clock and by this thread's CPU
    time (on a loaded machine the wall-clock tail is the scheduler's), with the kind
    of query whose CPU-time p99 is the highest."""
    import pocketpacs

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return 1e3 * xs[min(len(xs) - 1, int(len(xs) * q))]

    with pocketpacs.open_archive(archive, readonly=True) as ar:
        pats, studies = ar.patients(), ar.studies()
        rng = random.Random(1)
        queries = []
        for _ in range(iterations):
            p, s = rng.choice(pats), rng.choice(studies)
            fam = (p.name.split("^")[0] or "x")[:3]
            y = s.date[:4] or "2020"
            by = p.birth_date[:4] or "1950"
            queries += [("name", {"name": fam}), ("name + modality", {"name": fam + "*", "modality": "CT"}),
                        ("patient ID", {"patient_id": p.patient_id}),
                        ("year + modality", {"study_date": f"{y}0101-{y}1231", "modality": "MR"}),
                        ("description", {"description": "thorax"}), ("accession", {"accession": s.accession or "none"}),
                        ("birth decade", {"birth_date": f"{by}-{int(by) + 10}"})]
        for _k, q in queries[:50]:  # warm
            ar.search(**q)
        out: dict = {}
        for cold in (False, True):
            wall, cpu, kinds = [], [], {}
            for k, q in queries:
                if cold:
                    ar._cache_gen = None  # the decoded-record cache is dropped
                t, c = time.perf_counter(), time.thread_time()
                ar.search(**q)
                dc, dt = time.thread_time() - c, time.perf_counter() - t
                wall.append(dt)
                cpu.append(dc)
                kinds.setdefault(k, []).append(dc)
            pre = "cold_" if cold else ""
            out.update({f"{pre}p50_ms": pct(wall, 0.5), f"{pre}p99_ms": pct(wall, 0.99), f"{pre}max_ms": pct(wall, 1),
                        f"{pre}cpu_p50_ms": pct(cpu, 0.5), f"{pre}cpu_p99_ms": pct(cpu, 0.99)})
            if not cold:
                worst = max(kinds, key=lambda k: pct(kinds[k], 0.99))
                out["slowest"] = f"{worst} (CPU p99 {pct(kinds[worst], 0.99):.2f} ms)"
    out["queries"] = len(queries)
    return out


def run_scale(ctx, n: int) -> list:
    """``--scale N``: import N small files vs the 100,000-file import of the same run, peak
    RSS, rescan, search latency, the archive's size per instance (next to Orthanc's SQLite
    index, measured here: its documentation gives no figure), ``check`` and ``verify``.

    The imports run in child processes (peak RSS; the parser is loaded before the clock
    starts); one import per size (a million files take minutes).
    """
    from pocketpacs.benchmarks.results import Row, from_samples, rates, skipped

    base_n = 100_000 if n > 100_000 else max(SCALE_FILES_PER_PATIENT, n // 10)
    data = {}
    for k in (base_n, n):
        p = scale_params(k)
        data[k] = ctx.cached("import-scale-n", p, lambda d, p=p: _make_scale(d, p), sources=[_make_scale])
    work = Path(tempfile.mkdtemp(prefix="pp-bench-scale-"))
    out: list = []
    try:
        # the reference import runs BASE_REPEATS times, before and after the large one
        # (one import of a few seconds is at the mercy of a busy moment: the ratio
        # takes their median), the large one once (minutes)
        done: dict[int, list] = {base_n: [], n: []}
        for j, k in enumerate([base_n] * (BASE_REPEATS - 1) + [n] + [base_n]):
            ctx.log(f"warming the page cache with the {k:,}-file data ...")
            warm(list_files(data[k]))
            ctx.log(f"importing {k:,} files in a child process ...")
            try:
                done[k].append(scale_import(data[k], work / f"a{k}-{j}"))
            except (RuntimeError, subprocess.SubprocessError) as e:
                done[k].append((None, str(e)))
            if k != n:
                shutil.rmtree(work / f"a{k}-{j}", ignore_errors=True)
            else:
                big = work / f"a{k}-{j}"
        runs: dict[int, tuple] = {}
        for k in (base_n, n):
            lbl = f"import of {k:,} files 32x32, child process"
            ok = [(res, curve) for res, curve in done[k] if res is not None]
            if not ok:
                out.append(skipped(lbl, "PocketPACS import (walk + parse + commit)", "files/s", done[k][-1][1]))
                runs[k] = done[k][-1]
                continue
            secs = [res["seconds"] - res["compile_s"] for res, _c in ok]
            mid = sorted(range(len(ok)), key=secs.__getitem__)[len(ok) // 2]   # (the median run's details)
            res, curve = ok[mid]
            extra = {"indexed": res["indexed"], "failed": res["failed"], "seconds": secs[mid],
                     "CPU ms per 1,000 files": 1e6 * res["cpu_s"] / max(1, res["seen"])}
            if len(ok) > 1:
                extra["every run, seconds"] = " / ".join(f"{t:.2f}" for t in secs)
            row = from_samples(lbl, "PocketPACS import (walk + parse + commit)", "files/s",
                               [r for (rs, _c), t in zip(ok, secs) for r in rates(rs["seen"], [t])],
                               x=k, x_label="files", line="import rate at scale", headline=k == n, extra=extra)
            # (peak RSS: the largest of the runs)
            peak = max(ok, key=lambda rc: rc[0]["peak_kib"] + rc[0]["helper_kib"])
            runs[k] = (peak[0], peak[1], row)
            out.append(row)
        if len(runs[n]) == 3 and len(runs[base_n]) == 3:
            r_big, r_base = runs[n][2], runs[base_n][2]
            rel = r_big.value / r_base.value
            r_big.ratios[f"the {base_n:,}-file import (median of {r_base.repeats})"] = rel
            r_big.target, r_big.met = f">= 0.8x the {base_n:,}-file rate", rel >= 0.8
        for k in (base_n, n):
            lbl = f"peak RSS importing {k:,} files"
            if len(runs[k]) != 3:
                out.append(skipped(lbl, "PocketPACS import (child process)", "MB", "the import failed (above)",
                                   higher_is_better=False))
                continue
            res, curve, _row = runs[k]
            mb = (res["peak_kib"] + res["helper_kib"]) / 1024.0
            out.append(Row(lbl, "PocketPACS import (child process)", "MB", value=mb, repeats=1,
                           higher_is_better=False, headline=k == n, x=k, x_label="files", line="peak RSS",
                           target="< 1 GB" if k == n else "", met=(mb < 1024) if k == n else None,
                           extra={"before the import": res["peak_before_kib"] / 1024.0,
                                  "read-ahead helper": res["helper_kib"] / 1024.0,
                                  "at the end: anonymous": res["anon_kib"] / 1024.0,
                                  "mapped files": res["file_kib"] / 1024.0}))
            ctx.curve(f"import of {k:,} files (child RSS)", curve.t, curve.mb)
        if len(runs[n]) != 3:
            return out
        import pocketpacs

        # rescan of the unchanged data, against a plain walk + stat
        t_r, t_w = [], []
        for _ in range(ctx.reps(1, 1)):
            with pocketpacs.open_archive(big) as ar:
                t = time.perf_counter()
                ar.import_folder(data[n])
                t_r.append(time.perf_counter() - t)
            t = time.perf_counter()
            walk_stat(data[n])
            t_w.append(time.perf_counter() - t)
        nf = runs[n][0]["seen"]
        resc = from_samples(f"rescan of the unchanged {nf:,} files", "PocketPACS import again", "files/s",
                            rates(nf, t_r))
        walk = from_samples(f"rescan of the unchanged {nf:,} files", "plain walk + stat", "files/s", rates(nf, t_w))
        resc.ratios["plain walk + stat"] = resc.value / walk.value
        out += [resc, walk]
        # search
        ctx.log("search latency ...")
        with pocketpacs.open_archive(big, readonly=True) as ar:
            st = ar.stats()
        lat = scale_search_latency(big, ctx.pick(30, 200))
        what = (f"search at {st['instances']:,} instances, {st['studies']:,} studies, {st['patients']:,} patients "
                f"({lat['queries']} queries)")
        out.append(Row(what, "Archive.search p50", "ms", value=lat["p50_ms"], repeats=1, higher_is_better=False,
                       extra={"cleared cache p50": lat["cold_p50_ms"]}))
        out.append(Row(what, "Archive.search p99", "ms", value=lat["p99_ms"], repeats=1, higher_is_better=False,
                       target="< 5 ms", met=lat["p99_ms"] < 5, headline=True,
                       extra={"max": lat["max_ms"], "CPU time p99": lat["cpu_p99_ms"],
                              "slowest kind": lat["slowest"]}))
        out.append(Row(what, "Archive.search p99, record cache cleared before each query", "ms",
                       value=lat["cold_p99_ms"], repeats=1, higher_is_better=False,
                       extra={"cleared cache p50": lat["cold_p50_ms"], "CPU time p99": lat["cold_cpu_p99_ms"]}))
        # size per instance, ours and Orthanc's
        sz = archive_size(big)
        ni = max(1, sz["instances"])
        ours = Row(f"archive size per instance, {sz['instances']:,} instances", "PocketPACS data.mdb (file)", "bytes",
                   value=sz["file_bytes"] / ni, repeats=1, higher_is_better=False, headline=True,
                   extra={"used pages per instance": sz["used_bytes"] / ni,
                          "B-tree pages per instance (free pages left out)": sz["live_bytes"] / ni,
                          "file MB": sz["file_bytes"] / 2**20, "used MB": sz["used_bytes"] / 2**20})
        out.append(ours)
        ctx.log("Orthanc's SQLite index for comparison ...")
        o, why = orthanc_index_size(data[base_n], 1000)
        owhat = "Orthanc's SQLite index per instance (its documentation gives no figure)"
        if o is None:
            out.append(skipped(owhat, "Orthanc SQLite index", "bytes", why, higher_is_better=False))
        else:
            orow = Row(f"{owhat}, {o['instances']:,} instances uploaded", "Orthanc SQLite index (measured)", "bytes",
                       value=o["per_instance"], repeats=1, higher_is_better=False,
                       extra={"index growth MB": o["bytes"] / 2**20, "empty index KB": o["empty_bytes"] / 1024})
            out.append(orow)
            ours.ratios["Orthanc SQLite index"] = o["per_instance"] / ours.value
        # check and verify, each in a fresh process
        for cmd, doc in (("check", "pocketpacs check (deep check, child process)"),
                         ("verify", "pocketpacs verify (every file stat()ed, counts recomputed)")):
            ctx.log(f"pocketpacs {cmd} ...")
            try:
                dt, rc, last = timed_cli(big, cmd)
            except subprocess.TimeoutExpired:
                out.append(skipped(f"{cmd} of {sz['instances']:,} instances", doc, "s", "ran past an hour",
                                   higher_is_better=False))
                continue
            out.append(Row(f"{cmd} of {sz['instances']:,} instances", doc, "s", value=dt, repeats=1,
                           higher_is_better=False, headline=True,
                           extra={"exit status": rc, "instances/s": sz["instances"] / dt}))
            if rc != 0:
                ctx.log(f"  pocketpacs {cmd} exited with status {rc}: {last}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
