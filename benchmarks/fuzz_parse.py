"""Fuzz the compiled header parser with 1,000,000 mutated headers (default).

Each chunk runs in a child process so a crash (a signal) or a hang is caught
and reported with its seed instead of taking this script down.  Mutations
are those of tests/fuzzing.py (truncation, length poisoning, delimiter
damage, VR confusion, deep nesting, byte flips, splices), seeded from
built-in headers and, when present, ../shared/corpus.

Usage::

    python benchmarks/fuzz_parse.py                  # 1,000,000 headers
    python benchmarks/fuzz_parse.py --count 100000 --chunk 50000 --seed 3
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
CORPUS = ROOT.parent / "shared" / "corpus"

CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
import fuzzing
c = Path({corpus!r})
import resource
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
res = fuzzing.run({count}, seed={seed}, corpus=c if c.is_dir() else None)
res["maxrss_kib"] = peak_kib()
print(json.dumps(res))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=100_000, help="headers per child process")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per chunk")
    args = ap.parse_args(argv)
    total = {"parsed": 0, "fallback": 0, "failed": 0}
    reasons: dict[str, int] = {}
    bad = 0
    done = 0
    worst_batch = 0.0
    peak_rss = 0
    t0 = time.perf_counter()
    chunk_no = 0
    while done < args.count:
        k = min(args.chunk, args.count - done)
        seed = args.seed * 1_000_003 + chunk_no
        code = CHILD.format(tests=str(TESTS), corpus=str(CORPUS), count=k, seed=seed)
        try:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"HANG: chunk seed {seed} did not finish in {args.timeout} s", file=sys.stderr)
            bad += 1
        else:
            if proc.returncode != 0:
                print(f"CRASH: chunk seed {seed} exited {proc.returncode}: {proc.stderr[-500:]}",
                      file=sys.stderr)
                bad += 1
            else:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                for key in total:
                    total[key] += res[key]
                for r, c in res["reasons"].items():
                    reasons[r] = reasons.get(r, 0) + c
                worst_batch = max(worst_batch, res["worst_batch_s"])
                peak_rss = max(peak_rss, res["maxrss_kib"])
        done += k
        chunk_no += 1
        rate = done / (time.perf_counter() - t0)
        print(f"{done:>9,} / {args.count:,} headers, {rate:,.0f}/s, {bad} bad chunks", file=sys.stderr)
    # crashes/hangs: chunks whose child died or timed out (0 required)
    print(json.dumps({"count": args.count, **total, "reasons": reasons, "bad_chunks": bad,
                      "worst_batch_s": round(worst_batch, 4), "batch": 2000,
                      "worst_per_input_bound_s": round(worst_batch, 4),
                      "peak_rss_mib": round(peak_rss / 1024, 1),
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
