"""Peak memory while loading a series, as a ratio of the final array (issue 4: at most 1.25x).

Each case runs in a fresh child process (warm: one load first, so the kernels
and decoders are in memory), then loads the series again and reports:

* **numpy peak**: tracemalloc's peak over the load (NumPy reports its
  allocations to it) divided by the final array's bytes;
* **shm**: the JPEG 2000 decoder pool's shared-memory slots (not seen by
  tracemalloc), same unit;
* **RSS growth**: the process's peak RSS over the load (``VmHWM``, reset
  before the load where Linux allows it) minus the RSS before it (the first
  load's array freed), same unit: what the operating system saw.  Not
  ``ru_maxrss``: after ``exec`` that also counts the peak of the parent that
  started the child (the benchmark runner, hundreds of MB).

Cases: an uncompressed series, the same series with every 7th slice left
out (resampled onto equal spacing while it is read), and two JPEG 2000
series; the data come from the benchmark cache (the same series as
``pocketpacs bench volume``, made when missing).  ``--data DIR`` measures
the series of ``DIR/*.dcm`` instead.  A case that cannot be measured says
why and has no figure; the worst peak is over the measured cases only, and
with none measured the benchmark has no figure and the run exits non-zero.

Usage::

    pocketpacs bench memory [--quick] [--repeats 3] [--data DIR]
    python benchmarks/bench_memory.py [the same options]
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

LIMIT = 1.25

CHILD = r"""
import gc, glob, json, resource, sys, tracemalloc
import numpy as np

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)

def peak_kb():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass

def main():
    from pocketpacs.images.decoders import DecoderPool
    from pocketpacs.images.volume import assemble_series
    folder, drop = sys.argv[1], sys.argv[2]
    paths = sorted(glob.glob(folder + "/*.dcm"))
    if drop == "every7":
        paths = [p for i, p in enumerate(paths) if i % 7 != 3]
    pool = DecoderPool(2)
    sv = assemble_series(paths, pool=pool)
    del sv
    gc.collect()
    base = rss_kb()
    reset_peak()
    resource_before = peak_kb()
    tracemalloc.start()
    tracemalloc.reset_peak()
    sv = assemble_series(paths, pool=pool)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    after = peak_kb()
    v = sv.volumes[0]
    n = v.array.nbytes
    print(json.dumps({"shape": list(v.array.shape), "numpy": peak / n,
                      "shm": pool.stats.get("shm_bytes", 0.0) / n,
                      "rss": (max(after, resource_before) - base) * 1024 / n,
                      "spacing": v.report.spacing_action}))
    pool.close()

if __name__ == "__main__":
    main()
"""


NAME = "memory"


def run(ctx) -> list:
    """Peak memory of a series load as a ratio of the final array (target: at most 1.25x)."""
    from pocketpacs.benchmarks.bench_volume import cached_series
    from pocketpacs.benchmarks.results import Row, run_sampled, skipped

    runs = ctx.reps(2, 3)
    if ctx.data is not None:
        cases = [(f"your series {ctx.data.name}", ctx.data, "none")]
    else:
        size, n_raw, n_j1, n_j2 = ctx.pick((256, 64, 32, 16), (512, 200, 64, 16))
        raw = Path(cached_series(ctx, n_raw, size)[0]).parent
        cases = [(f"uncompressed {n_raw} x {size}^2", raw, "none"),
                 ("gaps (every 7th slice missing), resampled", raw, "every7"),
                 (f"JPEG 2000, {n_j1} slices {size}^2", Path(cached_series(ctx, n_j1, size, j2k=True)[0]).parent, "none"),
                 (f"JPEG 2000, {n_j2} slices {size}^2", Path(cached_series(ctx, n_j2, size, j2k=True)[0]).parent, "none")]
    what = "peak memory of a series load (numpy + shm)"
    out = []
    for name, folder, drop in cases:
        method = f"assemble_series: {name}"
        kw = dict(higher_is_better=False, target=f"<= {LIMIT}x")
        if not folder.is_dir() or not any(folder.glob("*.dcm")):
            out.append(skipped(what, method, "x final array", f"no *.dcm files in {folder}", **kw))
            continue
        rs, error = [], None
        for i in range(runs):
            res, curve = run_sampled([sys.executable, "-c", CHILD, str(folder), drop], timeout=900)
            if res.returncode != 0:
                last = (res.stderr.strip().splitlines() or ["no message"])[-1]
                error = f"the child process failed (exit {res.returncode}): {last}"
                break
            rs.append(json.loads(res.stdout.strip().splitlines()[-1]))
            if i == 0:
                ctx.curve(f"{name} (child RSS: warm load, then measured load)", curve.t, curve.mb)
        if error:
            out.append(skipped(what, method, "x final array", error, **kw))
            continue
        totals = [r["numpy"] + r["shm"] for r in rs]
        med = {k: statistics.median(r[k] for r in rs) for k in ("numpy", "shm", "rss")}
        row = Row(what, method, "x final array", value=statistics.median(totals), low=min(totals),
                  high=max(totals), repeats=len(rs), met=statistics.median(totals) <= LIMIT,
                  extra={"shape": "x".join(map(str, rs[0]["shape"])), "numpy": med["numpy"], "shm": med["shm"],
                         "RSS growth": med["rss"]}, **kw)
        out.append(row)
    measured = [r for r in out if r.measured]
    if measured:
        w = max(measured, key=lambda r: r.value)
        out.append(Row(what, "worst case", "x final array", value=w.value, low=w.low, high=w.high,
                       repeats=w.repeats, higher_is_better=False, target=f"<= {LIMIT}x", met=w.value <= LIMIT,
                       headline=True, extra={"case": w.method.removeprefix("assemble_series: "),
                                             "cases measured": f"{len(measured)} of {len(cases)}"}))
    else:
        out.append(skipped(what, "worst case", "x final array", "no case could be measured (reasons above)",
                           higher_is_better=False, target=f"<= {LIMIT}x", headline=True))
    return out


def main(argv: list[str] | None = None) -> int:
    """``pocketpacs bench memory`` with *argv*; the exit status (1: nothing measured)."""
    from pocketpacs.benchmarks.runner import main as bench_main

    return bench_main(["memory", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
