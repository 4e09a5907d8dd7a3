"""Header parsing speed: PocketPACS vs the read floor, pydicom and GDCM Scanner.

Generates (or reuses) a synthetic archive of at least 5,000 files of 512x512,
warms the page cache, then times, in one run and interleaved, the median of
``--repeat`` runs of:

- the floor: open + read the first 8 KB of every file + close;
- PocketPACS: ``pocketpacs.dicom.headers.parse_files`` (read + parse into the
  batch's record arrays), and the same plus decoding six text columns;
- pydicom ``dcmread(stop_before_pixels=True)`` in 1 and 2 processes;
- GDCM ``Scanner`` (python-gdcm) over the archive's main tags.

It also reports the numba compile time on first use (fresh cache, in a
subprocess) and the start time with a warm cache.

Usage::

    python benchmarks/bench_parse.py                 # 5,000 files in ./bench-data/parse
    python benchmarks/bench_parse.py --files 20000 --repeat 7
    python benchmarks/bench_parse.py --archive /path/to/dicom/folder --json
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

TEXT_COLUMNS = ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                "SOPInstanceUID", "Modality")
GDCM_TAGS = ((0x0010, 0x0010), (0x0010, 0x0020), (0x0010, 0x0030), (0x0008, 0x0020),
             (0x0008, 0x0060), (0x0020, 0x000D), (0x0020, 0x000E), (0x0008, 0x0018),
             (0x0020, 0x0013), (0x0020, 0x0032), (0x0020, 0x0037), (0x0028, 0x0010),
             (0x0028, 0x0011), (0x0028, 0x0030), (0x0028, 0x1052), (0x0028, 0x1053))


def list_files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f != "manifest.json":
                out.append(os.path.join(dirpath, f))
    out.sort()
    return out


def ensure_archive(path: Path, files: int, rows: int) -> Path:
    marker = path / "manifest.json"
    if marker.exists():
        return path
    from pocketpacs import synth

    patients = max(1, -(-files // 500))  # 5 series of 100 slices per patient
    print(f"generating {patients * 500} files of {rows}x{rows} in {path} ...", file=sys.stderr)
    t = time.perf_counter()
    synth.generate(path, patients=patients, studies=1, series=5, slices=100, rows=rows, cols=rows,
                   seed=1, junk=0, enhanced=0, workers=2)
    print(f"  done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return path


def warm(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def floor(paths: list[str]) -> None:
    buf = bytearray(8192)
    mv = memoryview(buf)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    for p in paths:
        fd = os.open(p, flags)
        try:
            os.preadv(fd, [mv], 0)
        finally:
            os.close(fd)


#: Reads in flight for the deep-queue floor (threads), as the import keeps on a cold disk.
FLOOR_THREADS = 32


def floor_deep(paths: list[str], threads: int = FLOOR_THREADS) -> None:
    """The deep-queue read floor: ``threads`` threads doing open + ``os.preadv``
    of the first 8 KB + close over the file list (the reads release the GIL:
    as many requests in flight as threads, which is what a cold disk needs)."""
    from concurrent.futures import ThreadPoolExecutor

    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    it = iter(range(len(paths)))   # shared: each next() is atomic

    def work() -> None:
        mv = memoryview(bytearray(8192))
        for i in it:
            fd = os.open(paths[i], flags)
            try:
                os.preadv(fd, [mv], 0)
            finally:
                os.close(fd)

    with ThreadPoolExecutor(threads) as ex:
        for f in [ex.submit(work) for _ in range(threads)]:
            f.result()


def pocketpacs_parse_deep(paths: list[str]):
    """``parse_files`` on heads read in process with many reads in flight once
    the files are not in the page cache (:class:`pocketpacs.archive.deepread.DeepReader`:
    what a small cold import, or one without the helper, reads with)."""
    import numpy as np

    from pocketpacs.archive import deepread, readahead
    from pocketpacs.dicom import heads
    from pocketpacs.dicom.headers import _HEAD, parse_files

    head = _HEAD.size
    n = len(paths)
    buf = np.empty(n * head, dtype=np.uint8)
    got, size, mtime = deepread.DeepReader(heads).read(paths, memoryview(buf), head)
    h = readahead.Heads(buf, head, np.asarray(got, dtype=np.int64), np.asarray(size, dtype=np.int64),
                        np.asarray(mtime, dtype=np.int64))
    return parse_files(paths, sizes=np.full(n, -1, dtype=np.int64), heads=h)


def pocketpacs_parse_cold(paths: list[str]):
    """``parse_files`` on heads read as a cold import reads them: handed to
    the import's helper process (:class:`pocketpacs.archive.coldreads.ColdReads`,
    many reads in flight) in chunks of the import's size, each chunk parsed
    once its heads are in while the next are read; where no helper can run,
    read in process by :class:`pocketpacs.archive.deepread.DeepReader`."""
    import numpy as np

    from pocketpacs.archive import coldimport, coldreads, deepread, ingest, readahead
    from pocketpacs.dicom import heads
    from pocketpacs.dicom.headers import _HEAD, parse_files

    head = _HEAD.size
    n = len(paths)
    chunk = ingest.CHUNK
    unknown = np.full(n, -1, dtype=np.int64)
    cr = None
    if readahead.available() and coldreads.ColdReads.fits(head, chunk, coldimport.COLD_AHEAD + 1):
        cr = coldreads.ColdReads(heads.OPEN_FLAGS, head, chunk, coldimport.COLD_AHEAD + 1)
    try:
        tags = list(range(0, n, chunk))
        for t, a in enumerate(tags[:coldimport.COLD_AHEAD] if cr else ()):
            cr.queue(t, 0, paths[a:a + chunk])
        out = []
        for t, a in enumerate(tags):
            part = paths[a:a + chunk]
            if cr is not None and t + coldimport.COLD_AHEAD < len(tags):   # keep COLD_AHEAD chunks queued
                b = tags[t + coldimport.COLD_AHEAD]
                cr.queue(t + coldimport.COLD_AHEAD, 0, paths[b:b + chunk])
            h = cr.wait(t, len(part)) if cr is not None else None
            if h is None:
                buf = np.empty(len(part) * head, dtype=np.uint8)
                got, size, mtime = deepread.DeepReader(heads).read(part, memoryview(buf), head)
                h = readahead.Heads(buf, head, np.asarray(got, dtype=np.int64), np.asarray(size, dtype=np.int64),
                                    np.asarray(mtime, dtype=np.int64))
            out.append(parse_files(part, sizes=unknown[a:a + len(part)].copy(), heads=h))
        return out
    finally:
        if cr is not None:
            cr.close()


def pocketpacs_parse(paths: list[str]):
    from pocketpacs.dicom.headers import parse_files

    return parse_files(paths)


def pocketpacs_parse_text(paths: list[str]):
    b = pocketpacs_parse(paths)
    for kw in TEXT_COLUMNS:
        b.text(kw)
    b.values("ImagePositionPatient")
    return b


def _pydicom_chunk(paths: list[str]) -> int:
    import pydicom

    n = 0
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        n += ds.get("InstanceNumber") is not None
    return n


def gdcm_scan(paths: list[str]) -> None:
    import gdcm

    s = gdcm.Scanner()
    for g, e in GDCM_TAGS:
        s.AddTag(gdcm.Tag(g, e))
    if not s.Scan(paths):
        raise RuntimeError("GDCM Scanner failed")


def timeit(fn, paths, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(paths)
        out.append(time.perf_counter() - t)
    return out


def compile_and_start_times(sample: str) -> dict:
    code = ("import time; t=time.perf_counter(); from pocketpacs.dicom.headers import parse_files; "
            "b=parse_files([%r]); b.text('PatientName'); print(time.perf_counter()-t)" % sample)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        cold = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True, check=True).stdout.strip())
        warm_t = float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                      text=True, check=True).stdout.strip())
    return {"first_use_compile_s": cold, "start_warm_cache_s": warm_t}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", type=Path, help="existing folder of DICOM files to use")
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data" / "parse",
                    help="where to generate the synthetic archive (default ./bench-data/parse)")
    ap.add_argument("--files", type=int, default=5000, help="files to generate (default 5000)")
    ap.add_argument("--rows", type=int, default=512, help="matrix size (default 512)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per method (default 5)")
    ap.add_argument("--skip", nargs="*", default=[], help="methods to skip: pydicom, pydicom2, gdcm")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--cold", action="store_true",
                    help="only the cold-cache rows (root: drops the page cache before every run)")
    args = ap.parse_args(argv)

    root = args.archive or ensure_archive(args.data, args.files, args.rows)
    paths = list_files(root)
    if not paths:
        print(f"no files under {root}", file=sys.stderr)
        return 2
    if args.cold:
        from pocketpacs.benchmarks.results import Context
        from pocketpacs.benchmarks.runner import table

        warm(paths)
        pocketpacs_parse(paths)  # compiles / loads the kernels
        from pocketpacs.benchmarks.bench_parse import cold_rows   # (defined below __main__)

        rows = cold_rows(Context(), paths, args.repeat)
        print(json.dumps([r.to_json() for r in rows], indent=1) if args.json else table(rows))
        return 0 if any(r.measured for r in rows) else 1
    warm(paths)
    b = pocketpacs_parse(paths)  # compiles / loads the kernels
    n = len(paths)

    methods = [("read floor (first 8 KB)", floor), ("PocketPACS parse", pocketpacs_parse),
               ("PocketPACS parse + 6 text columns", pocketpacs_parse_text)]
    if "gdcm" not in args.skip:
        try:
            import gdcm  # noqa: F401

            methods.append(("GDCM Scanner", gdcm_scan))
        except ImportError:
            print("python-gdcm not installed: GDCM Scanner skipped", file=sys.stderr)
    times: dict[str, list[float]] = {m: [] for m, _ in methods}
    # interleave the methods so load changes hit all of them alike
    for _ in range(args.repeat):
        for name, fn in methods:
            times[name] += timeit(fn, paths, 1)
    pyd_n = min(n, 2000)  # pydicom is slow: time a subset, report files/s
    if "pydicom" not in args.skip:
        times["pydicom dcmread (1 process)"] = [t * n / pyd_n for t in
                                                timeit(_pydicom_chunk, paths[:pyd_n], max(1, args.repeat // 2))]
    if "pydicom2" not in args.skip:
        ctx = mp.get_context("spawn")
        with ctx.Pool(2) as pool:
            pool.map(_pydicom_chunk, [paths[:10], paths[10:20]])
            half = pyd_n // 2
            chunks = [paths[i:i + 100] for i in range(0, pyd_n, 100)]

            def two(_p, chunks=chunks):
                pool.map(_pydicom_chunk, chunks)

            times["pydicom dcmread (2 processes)"] = [t * n / pyd_n for t in timeit(two, None, max(1, args.repeat // 2))]
            del half
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    pp = rate["PocketPACS parse"]
    startup = compile_and_start_times(paths[0])
    result = {
        "files": n, "native": b.n_native, "fallback": b.n_fallback, "failed": b.n_failed,
        "repeat": args.repeat, "files_per_s": rate,
        "ratios": {
            "pocketpacs_vs_gdcm": pp / rate["GDCM Scanner"] if "GDCM Scanner" in rate else None,
            "pocketpacs_vs_floor": pp / rate["read floor (first 8 KB)"],
            "pocketpacs_vs_pydicom_1p": pp / rate["pydicom dcmread (1 process)"] if "pydicom dcmread (1 process)" in rate else None,
            "pocketpacs_vs_pydicom_2p": pp / rate["pydicom dcmread (2 processes)"] if "pydicom dcmread (2 processes)" in rate else None,
        },
        **startup,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"\nHeader parsing, {n} files ({b.n_native} native, {b.n_fallback} fallback, "
          f"{b.n_failed} failed), warm cache, median of {args.repeat} runs, {os.cpu_count()} CPUs\n")
    print(f"{'method':<40} {'files/s':>12} {'PocketPACS parse is':>22}")
    for k, r in sorted(rate.items(), key=lambda kv: -kv[1]):
        print(f"{k:<40} {r:>12,.0f} {pp / r:>20.2f}x")
    g = result["ratios"]["pocketpacs_vs_gdcm"]
    f = result["ratios"]["pocketpacs_vs_floor"]
    print()
    if g is not None:
        print(f"target: PocketPACS >= 10x GDCM Scanner ............ {g:6.2f}x  {'PASS' if g >= 10 else 'MISS'}")
    print(f"target: PocketPACS >= 0.3x the read floor ......... {f:6.2f}x  {'PASS' if f >= 0.3 else 'MISS'}")
    print(f"numba compile on first use: {startup['first_use_compile_s']:.2f} s; "
          f"start with a warm cache: {startup['start_warm_cache_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---- the suite's interface (pocketpacs bench parse) -------------------------------------------

NAME = "parse"


def drop_page_cache() -> None:
    """Write dirty pages and drop the whole machine's page cache (root only; raises OSError otherwise)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cold_reason(ctx) -> str | None:
    """Why the page cache cannot be dropped for a cold-cache row (None: it can, and was just dropped)."""
    if ctx.quick:
        return "left out of --quick (it drops the whole machine's page cache)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root: the page cache cannot be dropped (run as root for the cold-cache figure)"
    try:
        drop_page_cache()
    except OSError as e:
        return f"the page cache cannot be dropped here (/proc/sys/vm/drop_caches: {e.strerror or e})"
    return None


def cold_rows(ctx, paths: list[str], repeat: int) -> list:
    """PocketPACS parse and the read floors with the page cache dropped before every run.

    Only in a full run as root on Linux: dropping the page cache slows every
    program on the machine for a while, so ``--quick`` leaves it out; the
    rows say why when they have no figure.  Two floors: one thread (a read
    waits for the one before), and :data:`FLOOR_THREADS` threads (the
    deep-queue floor, many reads in flight); ``parse_files`` reads with one
    thread, the import's cold reader (:class:`pocketpacs.archive.coldreads.ColdReads`,
    a helper process) with many.
    """
    from pocketpacs.benchmarks.results import add_ratio, from_samples, rates, skipped

    what = f"header parse, {len(paths)} files, cold page cache"
    ours, deep = "PocketPACS parse", "PocketPACS parse, import's cold reader (helper process)"
    here = "PocketPACS parse, in-process reader (reads in flight)"
    fl, fld = "read floor (first 8 KB)", f"deep-queue read floor ({FLOOR_THREADS} threads, first 8 KB)"
    reason = cold_reason(ctx)
    if reason:
        return [skipped(what, m, "files/s", reason) for m in (deep, here, ours, fld, fl)]
    times: dict[str, list[float]] = {ours: [], deep: [], here: [], fl: [], fld: []}
    for _ in range(repeat):
        for name, fn in ((fl, floor), (fld, floor_deep), (ours, pocketpacs_parse), (deep, pocketpacs_parse_cold),
                         (here, pocketpacs_parse_deep)):
            drop_page_cache()
            times[name] += timeit(fn, paths, 1)
    warm(paths)  # leave the files cached for what follows
    rows = {k: from_samples(what, k, "files/s", rates(len(paths), v)) for k, v in times.items()}
    rows[deep].headline = True
    add_ratio(rows[deep], rows[fld], "deep-queue floor")
    add_ratio(rows[deep], rows[fl], "cold read floor")
    for r in (rows[here], rows[ours]):
        add_ratio(r, rows[fld], "deep-queue floor")
        add_ratio(r, rows[fl], "cold read floor")
    rows[deep].target = ">= 0.8x the deep-queue floor"
    rows[deep].met = rows[deep].ratios.get("deep-queue floor", 0) >= 0.8
    return [rows[deep], rows[here], rows[ours], rows[fld], rows[fl]]


def run(ctx) -> list:
    """Header parsing against the read floor, pydicom and GDCM Scanner; compile and start times.

    Data: a synthetic archive (500 files of 128x128 with ``--quick``, 5,000 of
    512x512 otherwise) from the cache, or the folder given with ``--data``.
    """
    from pocketpacs.benchmarks.results import add_ratio, from_samples, peer_missing, rates, skipped

    files, size = ctx.pick((500, 128), (5000, 512))
    repeat = ctx.reps(3, 5)
    if ctx.data is not None:
        root = ctx.data
        what = f"header parse, your folder {root.name}"
    else:
        root = ctx.cached("parse", {"files": files, "rows": size}, lambda d: ensure_archive(d, files, size),
                          sources=[ensure_archive])
        what = f"header parse, {files} files {size}x{size}"
    paths = [p for p in list_files(root) if not os.path.basename(p).startswith(".")]
    if not paths:
        return [skipped(what, "PocketPACS parse", "files/s", f"no files under {root}")]
    warm(paths)
    b = pocketpacs_parse(paths)  # compiles / loads the kernels
    n = len(paths)
    if ctx.data is not None:
        what = f"header parse, {n} files of {root.name}"
    methods = [("read floor (first 8 KB)", floor), ("PocketPACS parse", pocketpacs_parse),
               ("PocketPACS parse + 6 text columns", pocketpacs_parse_text)]
    gdcm_reason = peer_missing("gdcm", "python-gdcm")
    if gdcm_reason is None:
        methods.append(("GDCM Scanner", gdcm_scan))
    times: dict[str, list[float]] = {m: [] for m, _ in methods}
    for _ in range(repeat):  # interleaved, as in main()
        for name, fn in methods:
            times[name] += timeit(fn, paths, 1)
    pyd_n = min(n, ctx.pick(300, 2000))
    pyd_rep = max(1, repeat // 2) if not ctx.quick else 2
    times["pydicom dcmread (1 process)"] = [t * n / pyd_n for t in timeit(_pydicom_chunk, paths[:pyd_n], pyd_rep)]
    mpctx = mp.get_context("spawn")
    with mpctx.Pool(2) as pool:
        pool.map(_pydicom_chunk, [paths[:10], paths[10:20]])
        chunks = [paths[i:i + 100] for i in range(0, pyd_n, 100)]
        times["pydicom dcmread (2 processes)"] = [
            t * n / pyd_n for t in timeit(lambda _p: pool.map(_pydicom_chunk, chunks), None, pyd_rep)]
    rows = {k: from_samples(what, k, "files/s", rates(n, v)) for k, v in times.items()}
    for k, procs in (("pydicom dcmread (1 process)", 1), ("pydicom dcmread (2 processes)", 2)):
        rows[k].x, rows[k].x_label, rows[k].line = procs, "processes", "pydicom dcmread"
    ours = rows["PocketPACS parse"]
    ours.headline = True
    floor_row = rows["read floor (first 8 KB)"]
    add_ratio(ours, floor_row)
    if gdcm_reason is None:
        add_ratio(ours, rows["GDCM Scanner"])
    else:
        rows["GDCM Scanner"] = skipped(what, "GDCM Scanner", "files/s", gdcm_reason)
    add_ratio(ours, rows["pydicom dcmread (1 process)"])
    g = ours.ratios.get("GDCM Scanner")
    f = ours.ratios.get("read floor (first 8 KB)")
    ours.target = ">= 10x GDCM Scanner, >= 0.3x the read floor"
    ours.met = (f is not None and f >= 0.3) and (g is None or g >= 10) if g is not None else None
    if g is None:
        ours.target = ">= 0.3x the read floor (GDCM not measured)"
        ours.met = f is not None and f >= 0.3
    ours.extra = {"native": b.n_native, "fallback": b.n_fallback, "failed": b.n_failed}
    out = list(rows.values())
    out += cold_rows(ctx, paths, repeat)
    ctx.log("numba compile on first use (fresh kernel cache, child process) ...")
    st = compile_and_start_times(paths[0])
    out.append(from_samples("numba compile on first use", "PocketPACS (fresh kernel cache)", "s",
                            [st["first_use_compile_s"]], higher_is_better=False, headline=True))
    out.append(from_samples("start with a warm kernel cache", "PocketPACS", "s",
                            [st["start_warm_cache_s"]], higher_is_better=False, headline=True))
    return out
