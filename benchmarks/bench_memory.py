"""Peak memory while loading a series, as a ratio of the final array (issue 4: at most 1.25x).

Each case runs in a fresh child process (warm: one load first, so the kernels
and decoders are in memory), then loads the series again and reports:

* **numpy peak**: tracemalloc's peak over the load (NumPy reports its
  allocations to it) divided by the final array's bytes;
* **shm**: the JPEG 2000 decoder pool's shared-memory slots (not seen by
  tracemalloc), same unit;
* **RSS growth**: ``ru_maxrss`` after the load minus the RSS before it (the
  first load's array freed), same unit: what the operating system saw.

Cases: an uncompressed series (``bench-data/volume/raw_512x512x200`` from
``bench_volume.py``), the same series with every 7th slice left out (resampled
onto equal spacing while it is read), and the JPEG 2000 series of 64 and 16
slices (``j2k2_512x512x64``, ``j2k_512x512x16``).  Run
``python benchmarks/bench_volume.py`` once first: it writes those folders.

Usage::

    python benchmarks/bench_memory.py [--dir bench-data/volume] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

LIMIT = 1.25

CHILD = r"""
import gc, glob, json, resource, sys, tracemalloc
import numpy as np

def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)

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
    resource_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    tracemalloc.reset_peak()
    sv = assemble_series(paths, pool=pool)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
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


def run_case(folder: Path, drop: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), drop], capture_output=True,
                         text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", type=Path, default=Path("bench-data/volume"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    cases = [("uncompressed 200 x 512^2", "raw_512x512x200", "none"),
             ("gaps (every 7th slice missing), resampled", "raw_512x512x200", "every7"),
             ("JPEG 2000, 64 slices", "j2k2_512x512x64", "none"),
             ("JPEG 2000, 16 slices", "j2k_512x512x16", "none")]
    print(f"{'case':<44} {'shape':>16} {'numpy':>7} {'shm':>6} {'total':>7} {'RSS':>6}  "
          f"(x final array; limit {LIMIT})")
    worst = 0.0
    for name, sub, drop in cases:
        folder = a.dir / sub
        if not folder.is_dir():
            print(f"{name:<44} missing {folder}: run benchmarks/bench_volume.py first")
            continue
        rs = [run_case(folder, drop) for _ in range(a.runs)]
        med = {k: statistics.median(r[k] for r in rs) for k in ("numpy", "shm", "rss")}
        total = med["numpy"] + med["shm"]
        worst = max(worst, total)
        shape = "x".join(map(str, rs[0]["shape"]))
        print(f"{name:<44} {shape:>16} {med['numpy']:7.3f} {med['shm']:6.3f} {total:7.3f} "
              f"{med['rss']:6.3f}  {'PASS' if total <= LIMIT else 'MISS'}")
    print(f"worst numpy + shm peak: {worst:.3f}x the final array (limit {LIMIT}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
