"""Archive import benchmark: PocketPACS vs GDCM Scanner and a pydicom + SQLite
indexer; rescan vs a plain walk + stat; search latency; peak memory.

Generates (or reuses) two synthetic archives with ``pocketpacs.synth``:

- ``bench``: 5,000 files of 512x512 (preset ``bench``);
- ``scale``: 100,000 files of 64x64 (preset ``scale``), for search latency
  and peak memory at 100,000 instances.

Warm page cache, methods interleaved, median of ``--repeat`` runs:

- PocketPACS end-to-end import (walk + parse + commit into a new, empty
  archive; creating the archive is not timed);
- GDCM ``Scanner`` over the archive's main tags (file list from ``os.walk``
  included, as the import includes its walk);
- a pydicom + SQLite indexer (``dcmread(stop_before_pixels=True)`` per file,
  rows into patient/study/series/instance tables, one transaction) on a
  subset, reported as files/s;
- rescan of the unchanged archive (``import_folder`` again) vs a plain
  ``os.scandir`` walk + ``stat`` of every file;
- search p50/p99 over typical queries at 100,000 instances (name prefix,
  name + modality, patient ID, date range + modality, description word,
  accession, birth-date range), with the archive's decoded-record cache and
  with it cleared before every query;
- peak RSS of a fresh process importing the 100,000 files (its VmHWM plus
  the private memory of the read-ahead helper process).

Usage::

    python benchmarks/bench_import.py                  # both archives in ./bench-data
    python benchmarks/bench_import.py --repeat 3 --skip-scale
    python benchmarks/bench_import.py --json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GDCM_TAGS = ((0x0010, 0x0010), (0x0010, 0x0020), (0x0010, 0x0030), (0x0008, 0x0020),
             (0x0008, 0x0060), (0x0020, 0x000D), (0x0020, 0x000E), (0x0008, 0x0018),
             (0x0020, 0x0013), (0x0020, 0x0032), (0x0020, 0x0037), (0x0028, 0x0010),
             (0x0028, 0x0011), (0x0028, 0x0030), (0x0028, 0x1052), (0x0028, 0x1053))


def ensure_archive(path: Path, preset: str) -> Path:
    if (path / "manifest.json").exists():
        return path
    from pocketpacs import synth

    print(f"generating the {preset!r} archive in {path} ...", file=sys.stderr)
    t = time.perf_counter()
    synth.generate(path, **synth.PRESETS[preset], workers=os.cpu_count() or 1)
    print(f"  done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return path


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


# ---- methods -------------------------------------------------------------------------

def pocketpacs_import(root: Path, archive: Path):
    """Import ``root`` into a new, empty archive; returns (report, seconds).

    The archive is created before the clock starts (creating it is a
    one-time cost, not part of an import); the time covers
    ``import_folder``: walk, parse and every commit.
    """
    import pocketpacs

    shutil.rmtree(archive, ignore_errors=True)
    with pocketpacs.open_archive(archive) as ar:
        t = time.perf_counter()
        rep = ar.import_folder(root)
        return rep, time.perf_counter() - t


def gdcm_scan(root: Path) -> int:
    import gdcm

    paths = list_files(root)
    s = gdcm.Scanner()
    for g, e in GDCM_TAGS:
        s.AddTag(gdcm.Tag(g, e))
    if not s.Scan(paths):
        raise RuntimeError("GDCM Scanner failed")
    return len(paths)


def pydicom_sqlite(paths: list[str], db: str) -> int:
    """The usual indexer: pydicom per file, rows into SQLite."""
    import warnings

    import pydicom

    if os.path.exists(db):
        os.unlink(db)
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE patients(id TEXT PRIMARY KEY, name TEXT, birth TEXT);
        CREATE TABLE studies(uid TEXT PRIMARY KEY, patient TEXT, date TEXT, descr TEXT, accession TEXT);
        CREATE TABLE series(uid TEXT PRIMARY KEY, study TEXT, modality TEXT, number INT, descr TEXT);
        CREATE TABLE instances(uid TEXT PRIMARY KEY, series TEXT, number INT, path TEXT, size INT, mtime INT);
        CREATE INDEX i_name ON patients(name); CREATE INDEX i_date ON studies(date);
    """)
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in paths:
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:
                continue
            st = os.stat(p)
            g = ds.get
            con.execute("INSERT OR IGNORE INTO patients VALUES (?,?,?)",
                        (str(g("PatientID", "")), str(g("PatientName", "")), str(g("PatientBirthDate", ""))))
            con.execute("INSERT OR IGNORE INTO studies VALUES (?,?,?,?,?)",
                        (str(g("StudyInstanceUID", "")), str(g("PatientID", "")), str(g("StudyDate", "")),
                         str(g("StudyDescription", "")), str(g("AccessionNumber", ""))))
            con.execute("INSERT OR IGNORE INTO series VALUES (?,?,?,?,?)",
                        (str(g("SeriesInstanceUID", "")), str(g("StudyInstanceUID", "")), str(g("Modality", "")),
                         int(g("SeriesNumber", 0) or 0), str(g("SeriesDescription", ""))))
            con.execute("INSERT OR REPLACE INTO instances VALUES (?,?,?,?,?,?)",
                        (str(g("SOPInstanceUID", "")), str(g("SeriesInstanceUID", "")),
                         int(g("InstanceNumber", 0) or 0), p, st.st_size, st.st_mtime_ns))
            n += 1
    con.commit()
    con.close()
    return n


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


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where the archives are generated")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per method (median)")
    ap.add_argument("--pydicom-files", type=int, default=1000, help="subset timed for pydicom + SQLite")
    ap.add_argument("--skip-scale", action="store_true", help="skip the 100,000-file archive")
    ap.add_argument("--skip-gdcm", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scale", type=int, metavar="N",
                    help="only the N-file run (e.g. 1000000 small files, cached in the benchmark data cache) "
                         "against 100,000 of them: rate, peak RSS, rescan, search, size, check, verify")
    args = ap.parse_args(argv)
    if args.scale:
        return main_scale(args.scale, args.json)

    import pocketpacs

    work = Path(tempfile.mkdtemp(prefix="pp-bench-"))
    res: dict = {"cpus": os.cpu_count(), "repeat": args.repeat}
    try:
        bench = ensure_archive(args.data / "import-bench", "bench")
        paths = list_files(bench)
        n = len(paths)
        warm(paths)
        pocketpacs_import(bench, work / "warmup")  # loads the kernels
        t_imp, t_gdcm, t_rescan, t_walk = [], [], [], []
        rep = None
        for _ in range(args.repeat):
            rep, dt = pocketpacs_import(bench, work / "a")
            t_imp.append(dt)
            if not args.skip_gdcm:
                t = time.perf_counter()
                gdcm_scan(bench)
                t_gdcm.append(time.perf_counter() - t)
            with pocketpacs.open_archive(work / "a") as ar:
                t = time.perf_counter()
                r2 = ar.import_folder(bench)
                t_rescan.append(time.perf_counter() - t)
                assert r2.parsed == 0
            t = time.perf_counter()
            walk_stat(bench)
            t_walk.append(time.perf_counter() - t)
        sub = paths[:args.pydicom_files]
        t = time.perf_counter()
        pydicom_sqlite(sub, str(work / "index.sqlite"))
        t_pyd = (time.perf_counter() - t) * n / len(sub)
        res["bench"] = {
            "files": n, "indexed": rep.indexed, "failed": rep.failed,
            "import_files_per_s": n / med(t_imp),
            "gdcm_files_per_s": n / med(t_gdcm) if t_gdcm else None,
            "pydicom_sqlite_files_per_s": n / t_pyd,
            "rescan_files_per_s": n / med(t_rescan),
            "walk_stat_files_per_s": n / med(t_walk),
        }
        if not args.skip_scale:
            scale = ensure_archive(args.data / "import-scale", "scale")
            sp = list_files(scale)
            warm(sp)
            t_s, t_sr, t_sw = [], [], []
            for _ in range(max(1, args.repeat // 2)):
                t_s.append(pocketpacs_import(scale, work / "s")[1])
                with pocketpacs.open_archive(work / "s") as ar:
                    t = time.perf_counter()
                    ar.import_folder(scale)
                    t_sr.append(time.perf_counter() - t)
                    inst = ar.stats()["instances"]
                t = time.perf_counter()
                walk_stat(scale)
                t_sw.append(time.perf_counter() - t)
            lat = search_latency(work / "s", 200)
            lat["instances"] = inst
            seen, rss, helper_mb = peak_rss(scale, work / "rss")
            rss += helper_mb
            res["scale"] = {"files": len(sp), "instances": inst, "import_files_per_s": len(sp) / med(t_s),
                            "rescan_files_per_s": len(sp) / med(t_sr), "walk_stat_files_per_s": len(sp) / med(t_sw),
                            "search": lat, "peak_rss_mb": rss, "helper_rss_mb": helper_mb}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    b = res["bench"]
    ratios = {
        "import_vs_gdcm": b["import_files_per_s"] / b["gdcm_files_per_s"] if b["gdcm_files_per_s"] else None,
        "import_vs_pydicom_sqlite": b["import_files_per_s"] / b["pydicom_sqlite_files_per_s"],
        "rescan_vs_walk_stat": b["rescan_files_per_s"] / b["walk_stat_files_per_s"],
    }
    res["ratios"] = ratios
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"\nArchive import, {b['files']:,} files of 512x512 (warm cache), median of {args.repeat} runs, "
          f"{res['cpus']} CPUs\n")
    print(f"{'measure':<52} {'value':>14} {'ratio':>9} {'target':>9}")
    print(f"{'PocketPACS import (walk+parse+commit), files/s':<52} {b['import_files_per_s']:>14,.0f}")
    if b["gdcm_files_per_s"]:
        g = ratios["import_vs_gdcm"]
        print(f"{'GDCM Scanner (walk + scan), files/s':<52} {b['gdcm_files_per_s']:>14,.0f} {g:>8.2f}x "
              f"{'>= 8x':>9} {'PASS' if g >= 8 else 'MISS'}")
    r = ratios["import_vs_pydicom_sqlite"]
    print(f"{'pydicom + SQLite indexer, files/s':<52} {b['pydicom_sqlite_files_per_s']:>14,.0f} {r:>8.1f}x")
    r = ratios["rescan_vs_walk_stat"]
    print(f"{'rescan unchanged archive, files/s':<52} {b['rescan_files_per_s']:>14,.0f} {r:>8.2f}x "
          f"{'>= 0.7x':>9} {'PASS' if r >= 0.7 else 'MISS'}")
    print(f"{'plain walk + stat, files/s':<52} {b['walk_stat_files_per_s']:>14,.0f}")
    if "scale" in res:
        s = res["scale"]
        lat = s["search"]
        print(f"\n{s['files']:,}-file archive (64x64), {s['instances']:,} instances:")
        print(f"{'PocketPACS import, files/s':<52} {s['import_files_per_s']:>14,.0f}")
        print(f"{'rescan / walk+stat, files/s':<52} {s['rescan_files_per_s']:>14,.0f} "
              f"{s['rescan_files_per_s'] / s['walk_stat_files_per_s']:>8.2f}x")
        print(f"{'search p50 (ms)':<52} {lat['p50_ms']:>14.3f}")
        print(f"{'search p99 (ms)':<52} {lat['p99_ms']:>14.3f} {'':>9} {'< 5 ms':>9} "
              f"{'PASS' if lat['p99_ms'] < 5 else 'MISS'}")
        print(f"{'search p50 / p99, record cache cleared (ms)':<52} "
              f"{lat['cold_p50_ms']:>6.3f} / {lat['cold_p99_ms']:.3f}")
        print(f"{'peak RSS importing 100,000 files (MB)':<52} {s['peak_rss_mb']:>14.0f} {'':>9} {'< 400':>9} "
              f"{'PASS' if s['peak_rss_mb'] < 400 else 'MISS'}")
        print(f"{'  of which the read-ahead helper (private, MB)':<52} {s['helper_rss_mb']:>14.0f}")
    return 0


def main_scale(n: int, as_json: bool) -> int:
    """``--scale N`` of the script: the suite's rows of :func:`run_scale`, as a table or JSON."""
    from pocketpacs.benchmarks import bench_import as mod  # the whole module (run as a script, this
    from pocketpacs.benchmarks.results import Context    # one stops at its __main__ guard)
    from pocketpacs.benchmarks.runner import table

    if n < 1:
        print("--scale must be 1 or more", file=sys.stderr)
        return 2
    ctx = Context(scale=n)
    rows = mod.run_scale(ctx, n)
    if as_json:
        print(json.dumps([r.to_json() for r in rows], indent=1))
    else:
        print(f"\nA {n:,}-file archive ({os.cpu_count()} CPUs; data cache {ctx.cache})\n")
        print(table(rows))
    return 0 if any(r.measured for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())


# ---- the suite's interface (pocketpacs bench import) ------------------------------------------

NAME = "import"

#: --quick: the two archives, smaller (1,000 files of 128x128; 5,000 of 64x64)
QUICK_BENCH = dict(synth_preset="bench", patients=2, rows=128, cols=128)
QUICK_SCALE = dict(synth_preset="scale", patients=50, slices=10)


def _make(folder: Path, params: dict) -> None:
    from pocketpacs import synth

    opts = dict(synth.PRESETS[params["synth_preset"]])
    opts.update({k: v for k, v in params.items() if k != "synth_preset"})
    synth.generate(folder, **opts, workers=os.cpu_count() or 1)


def run(ctx) -> list:
    """Import vs GDCM Scanner and pydicom + SQLite; rescan vs walk + stat; search; peak RSS over time.

    Data: the ``bench`` and ``scale`` synthetic archives (smaller with
    ``--quick``) from the cache; ``--data DIR`` replaces the first by your folder.
    """
    if getattr(ctx, "scale", None):
        return run_scale(ctx, ctx.scale)
    import pocketpacs
    from pocketpacs.benchmarks.results import (
        Row,
        add_ratio,
        from_samples,
        peer_missing,
        rates,
        run_sampled,
        skipped,
    )

    bench_p = ctx.pick(QUICK_BENCH, {"synth_preset": "bench"})
    scale_p = ctx.pick(QUICK_SCALE, {"synth_preset": "scale"})
    repeat = ctx.reps(3, 5)
    if ctx.data is not None:
        bench = ctx.data
    else:
        bench = ctx.cached("import-bench", bench_p, lambda d: _make(d, bench_p), sources=[_make])
    paths = [p for p in list_files(bench) if not os.path.basename(p).startswith(".")]
    out: list = []
    label = f"import, {len(paths)} files" + (f" of {bench.name}" if ctx.data is not None else "")
    if not paths:
        return [skipped(label, "PocketPACS import", "files/s", f"no files under {bench}")]
    n = len(paths)
    gdcm_reason = peer_missing("gdcm", "python-gdcm")
    work = Path(tempfile.mkdtemp(prefix="pp-bench-"))
    try:
        warm(paths)
        pocketpacs_import(bench, work / "warmup")  # loads the kernels
        t_imp, t_gdcm, t_rescan, t_walk = [], [], [], []
        rep = None
        for _ in range(repeat):  # interleaved, as in main()
            rep, dt = pocketpacs_import(bench, work / "a")
            t_imp.append(dt)
            if gdcm_reason is None:
                t = time.perf_counter()
                gdcm_scan(bench)
                t_gdcm.append(time.perf_counter() - t)
            with pocketpacs.open_archive(work / "a") as ar:
                t = time.perf_counter()
                ar.import_folder(bench)
                t_rescan.append(time.perf_counter() - t)
            t = time.perf_counter()
            walk_stat(bench)
            t_walk.append(time.perf_counter() - t)
        if rep.indexed == 0:
            return [skipped(label, "PocketPACS import", "files/s",
                            f"no DICOM file indexed among the {n} files under {bench}")]
        sub = paths[:ctx.pick(200, 1000)]
        t_pyd = []
        for _ in range(ctx.pick(1, 2)):
            t = time.perf_counter()
            pydicom_sqlite(sub, str(work / "index.sqlite"))
            t_pyd.append((time.perf_counter() - t) * n / len(sub))
        imp = from_samples(label, "PocketPACS import (walk + parse + commit)", "files/s", rates(n, t_imp),
                           x=n, x_label="files", headline=True,
                           extra={"indexed": rep.indexed, "failed": rep.failed})
        g = (from_samples(label, "GDCM Scanner (walk + scan)", "files/s", rates(n, t_gdcm)) if t_gdcm
             else skipped(label, "GDCM Scanner (walk + scan)", "files/s", gdcm_reason))
        pyd = from_samples(label, f"pydicom + SQLite indexer ({len(sub)}-file subset)", "files/s", rates(n, t_pyd))
        add_ratio(imp, g, "GDCM Scanner")
        add_ratio(imp, pyd, "pydicom + SQLite")
        if "GDCM Scanner" in imp.ratios:
            imp.target, imp.met = ">= 8x GDCM Scanner", imp.ratios["GDCM Scanner"] >= 8
        resc = from_samples(f"rescan of the unchanged archive, {n} files", "PocketPACS import again", "files/s",
                            rates(n, t_rescan), headline=True)
        walk = from_samples(f"rescan of the unchanged archive, {n} files", "plain walk + stat", "files/s",
                            rates(n, t_walk))
        add_ratio(resc, walk)
        resc.target = ">= 0.9x walk + stat"
        resc.met = resc.ratios.get("plain walk + stat", 0) >= 0.9
        out += [imp, g, pyd, resc, walk]
        out += cold_import_rows(ctx, bench, paths, work, repeat)

        scale = ctx.cached("import-scale", scale_p, lambda d: _make(d, scale_p), sources=[_make])
        sp = list_files(scale)
        ns = len(sp)
        warm(sp)
        t_s, t_sr, t_sw = [], [], []
        inst = 0
        for _ in range(ctx.pick(2, max(2, repeat // 2))):
            t_s.append(pocketpacs_import(scale, work / "s")[1])
            with pocketpacs.open_archive(work / "s") as ar:
                t = time.perf_counter()
                ar.import_folder(scale)
                t_sr.append(time.perf_counter() - t)
                inst = ar.stats()["instances"]
            t = time.perf_counter()
            walk_stat(scale)
            t_sw.append(time.perf_counter() - t)
        lbl = f"import, {ns} files 64x64"
        out.append(from_samples(lbl, "PocketPACS import (walk + parse + commit)", "files/s", rates(ns, t_s),
                                x=ns, x_label="files"))
        sres = from_samples(f"rescan of the unchanged archive, {ns} files", "PocketPACS import again", "files/s",
                            rates(ns, t_sr))
        swalk = from_samples(f"rescan of the unchanged archive, {ns} files", "plain walk + stat", "files/s",
                             rates(ns, t_sw))
        add_ratio(sres, swalk)
        out += [sres, swalk]
        lat = search_latency(work / "s", ctx.pick(30, 200))
        what = f"search at {inst} instances ({lat['queries']} queries)"
        out.append(Row(what, "Archive.search p50", "ms", value=lat["p50_ms"], repeats=1, higher_is_better=False,
                       extra={"cleared cache p50": lat["cold_p50_ms"]}))
        out.append(Row(what, "Archive.search p99", "ms", value=lat["p99_ms"], repeats=1, higher_is_better=False,
                       target="< 5 ms", met=lat["p99_ms"] < 5, headline=True,
                       extra={"max": lat["max_ms"], "cleared cache p99": lat["cold_p99_ms"]}))
        ctx.log(f"peak RSS of a child importing {ns} files ...")
        shutil.rmtree(work / "rss", ignore_errors=True)
        res, curve = run_sampled([sys.executable, "-c", _RSS, str(work / "rss"), str(scale)])
        if res.returncode != 0:
            out.append(skipped(f"peak RSS importing {ns} files", "PocketPACS import (child process)", "MB",
                               f"the child failed: {res.stderr.strip().splitlines()[-1:]}", higher_is_better=False))
        else:
            _seen, peak_kib, helper_kib = (int(x) for x in res.stdout.split()[:3])
            mb = peak_kib / 1024.0 + helper_kib / 1024.0
            full = ns >= 100_000
            out.append(Row(f"peak RSS importing {ns} files", "PocketPACS import (child process)", "MB", value=mb,
                           repeats=1, higher_is_better=False, headline=full,
                           target="< 400 MB at 100,000 files", met=(mb < 400) if full else None,
                           extra={"read-ahead helper": helper_kib / 1024.0}))
            ctx.curve(f"import of {ns} files (child RSS)", curve.t, curve.mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---- --scale N: a million instances (issue 16) -----------------------------------------------

#: --scale N data: the ``scale`` preset's shape (2 studies of 5 series of 50 slices per
#: patient, 20% compressed, 20% implicit VR), N / 500 patients, small files (32x32: one
#: 4 KiB block each, ~4 GB and a million inodes at N = 1,000,000)
SCALE_SHAPE = dict(synth_preset="scale", rows=32, cols=32)
#: files per patient of that shape
SCALE_FILES_PER_PATIENT = 2 * 5 * 50


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
    """Sizes of an archive's database: the file, the pages LMDB uses, instances and entries."""
    import lmdb

    env = lmdb.open(str(archive), readonly=True, lock=False, max_dbs=64, subdir=True)
    try:
        info, st = env.info(), env.stat()
        used = (info["last_pgno"] + 1) * st["psize"]
        with env.begin() as t:
            inst = t.stat(env.open_db(b"instances", txn=t, create=False))["entries"]
    finally:
        env.close()
    return {"file_bytes": (archive / "data.mdb").stat().st_size, "used_bytes": used,
            "map_bytes": info["map_size"], "instances": inst}


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
        runs = {}
        for k in (base_n, n):
            ctx.log(f"warming the page cache with the {k:,}-file data ...")
            warm(list_files(data[k]))
            ctx.log(f"importing {k:,} files in a child process ...")
            try:
                runs[k] = scale_import(data[k], work / f"a{k}")
            except (RuntimeError, subprocess.SubprocessError) as e:
                runs[k] = (None, str(e))
            if k != n:
                shutil.rmtree(work / f"a{k}", ignore_errors=True)
        big = work / f"a{n}"
        for k in (base_n, n):
            res, curve = runs[k]
            lbl = f"import of {k:,} files 32x32, child process"
            if res is None:
                out.append(skipped(lbl, "PocketPACS import (walk + parse + commit)", "files/s", curve))
                continue
            secs = res["seconds"] - res["compile_s"]
            row = from_samples(lbl, "PocketPACS import (walk + parse + commit)", "files/s", rates(res["seen"], [secs]),
                               x=k, x_label="files", line="import rate at scale", headline=k == n,
                               extra={"indexed": res["indexed"], "failed": res["failed"], "seconds": secs,
                                      "CPU ms per 1,000 files": 1e6 * res["cpu_s"] / max(1, res["seen"])})
            runs[k] = (res, curve, row)
            out.append(row)
        if len(runs[n]) == 3 and len(runs[base_n]) == 3:
            r_big, r_base = runs[n][2], runs[base_n][2]
            rel = r_big.value / r_base.value
            r_big.ratios[f"the {base_n:,}-file import"] = rel
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
                   extra={"used pages per instance": sz["used_bytes"] / ni, "file MB": sz["file_bytes"] / 2**20,
                          "used MB": sz["used_bytes"] / 2**20})
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


# ---- cold page cache (issue 16) -----------------------------------------------------------------

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
    c.extra = {"the import itself (report's time), files/s": n / statistics.median(inside)}
    return [o, c, rows[fld], rows[fl]]
