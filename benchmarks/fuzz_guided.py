"""Coverage-guided fuzzing of the header parser, then watchdog replay.

1. Guided phase (a child with ``NUMBA_DISABLE_JIT=1``): mutations of
   tests/fuzzing.py, kept when they take a line-to-line arc of the parser's
   kernel functions (native/dicomparse.py, dicomvr.py, dicomvalues.py) that
   no earlier input took (``sys.settrace``);
   interpreted, NumPy bounds-checks every index.  The kept corpus is saved
   to ``bench-data/fuzz-guided/corpus`` (gitignored); ``--resume`` goes on
   from it.
2. Replay phase: the kept corpus, then every structured input of
   tests/structured.py (truncation at every offset, length poisoning of
   every element, delimiter damage, VR confusion, nesting, polyglots; over
   pydicom's files and, with ``--scale long``, 60 corpus files), through the
   compiled kernels built with ``NUMBA_BOUNDSCHECK=1`` and as released, in
   watchdog child processes: a signal is a crash, no progress for
   ``--input-timeout`` seconds a hang.

Prints the figures as JSON and as README table rows.  Exit status 1 when
anything crashed, hung or raised.

Usage::

    python benchmarks/fuzz_guided.py                       # 20,000 guided inputs, long scale
    python benchmarks/fuzz_guided.py --iterations 100000 --resume
    python benchmarks/fuzz_guided.py --iterations 2000 --scale ci
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
sys.path.insert(0, str(TESTS))

import fuzz_guided as G  # noqa: E402

GUIDED_CHILD = """
import json, resource, sys
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
from pathlib import Path
sys.path.insert(0, {tests!r})
import fuzz_guided as G
c = Path({corpus!r})
res = G.guided({n}, seed={seed}, out_dir=Path({out!r}), corpus=c if c.is_dir() else None,
               max_seconds={secs}, resume={resume})
res["maxrss_kib"] = peak_kib()
print(json.dumps(res))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20_000, help="guided inputs")
    ap.add_argument("--seconds", type=float, default=None, help="cap on the guided phase")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench-data" / "fuzz-guided")
    ap.add_argument("--resume", action="store_true", help="seed with the corpus already kept")
    ap.add_argument("--scale", choices=("ci", "long", "none"), default="long",
                    help="structured inputs: pydicom's files (ci), + 60 corpus files (long)")
    ap.add_argument("--mutations", type=int, default=0,
                    help="also replay this many random mutations (tests/fuzzing.py), one "
                         "input at a time under the watchdog")
    ap.add_argument("--modes", default="boundscheck,released")
    ap.add_argument("--input-timeout", type=float, default=10.0)
    ap.add_argument("--no-guided", action="store_true",
                    help="skip the guided phase: replay the corpus already kept")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    code = GUIDED_CHILD.format(tests=str(TESTS), corpus=str(CORPUS), n=args.iterations,
                               seed=args.seed, out=str(args.out), secs=args.seconds,
                               resume=args.resume)
    guided = None
    if not args.no_guided:
        print(f"guided phase: {args.iterations:,} inputs (interpreted, traced)...", file=sys.stderr)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=G.mode_env("interpreted"),
                              timeout=(args.seconds or 86400) + 900)
        if proc.returncode != 0:
            print(f"guided child failed (rc={proc.returncode}): {proc.stderr[-2000:]}", file=sys.stderr)
            return 1
        guided = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps({k: v for k, v in guided.items() if k != "outcomes"}), file=sys.stderr)
    corpus_dir = args.out / "corpus"
    corpus = str(CORPUS) if CORPUS.is_dir() else None
    jobs = {}
    if corpus_dir.is_dir():
        jobs["guided corpus"] = {"kind": "dir", "path": str(corpus_dir)}
    if args.scale != "none":
        jobs["structured"] = {"kind": "structured", "scale": args.scale, "corpus": corpus}
    if args.mutations:
        jobs["mutations"] = {"kind": "mutations", "count": args.mutations, "seed": args.seed,
                             "corpus": corpus}
    replays = {}
    for mode in args.modes.split(","):
        for name, job in jobs.items():
            t = time.perf_counter()
            print(f"replay {name} ({mode})...", file=sys.stderr)
            r = G.replay(job, mode, input_timeout=args.input_timeout)
            r["seconds"] = round(time.perf_counter() - t, 1)
            replays[f"{name} / {mode}"] = r
            print(json.dumps({k: v for k, v in r.items() if k != "outcomes"}), file=sys.stderr)
    bad = (guided["findings"] if guided else 0) + sum(len(r["crashes"]) + len(r["hangs"]) + len(r["exceptions"])
                                   for r in replays.values())
    summary = {"guided": guided, "replays": replays, "bad": bad,
               "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(summary, indent=2))
    cmd = "python benchmarks/fuzz_guided.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print("\n| check | figure | command |\n|---|---|---|")
    if guided:
        per_file = ", ".join(f"{name} {c}/{n}" for name, (c, n) in guided["lines_by_file"].items())
        print(f"| coverage-guided fuzzing, interpreted kernels (NUMBA_DISABLE_JIT=1) | "
              f"{guided['inputs']:,} inputs, {guided['arcs']:,} arcs and "
              f"{guided['lines_covered']} of {guided['function_lines']} kernel lines ({per_file}) "
              f"covered, {guided['corpus']:,} inputs kept, {guided['findings']} exceptions | "
              f"`{cmd.strip()}` |")
    for name, r in replays.items():
        print(f"| replay {name} | {r['inputs']:,} inputs, {len(r['crashes'])} crashes, "
              f"{len(r['hangs'])} hangs, {len(r['exceptions'])} exceptions, worst "
              f"{r['worst_s'] * 1000:.1f} ms/input, {r['over_100ms']} over 100 ms, peak RSS "
              f"{r['peak_rss_kib'] / 1024:.0f} MiB | `{cmd.strip()}` |")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
