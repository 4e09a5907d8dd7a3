"""Coverage-guided fuzzing of the header parser, and watchdog replay.

atheris cannot instrument numba-compiled code, so the guidance runs on the
same kernels interpreted (``NUMBA_DISABLE_JIT=1``): :class:`ArcTracer`
records, with ``sys.settrace``, the line-to-line arcs (branch coverage)
taken inside the parser's kernel modules (:data:`KERNEL_MODULES`: the
element walker, its encoding helpers and value kernels), and
:func:`guided` keeps every
mutated input that takes an arc no earlier input took.  Interpreted, NumPy
checks every index, so an out-of-bounds read raises ``IndexError`` there.

The kept corpus is then replayed against the compiled kernels by
:func:`replay`, in a child process watched by the parent: built with
``NUMBA_BOUNDSCHECK=1`` (an out-of-bounds index raises instead of reading
memory) and as released.  A child that dies (a signal) is a crash, one
that makes no progress for ``input_timeout`` seconds is a hang; either way
the input is recorded and the replay resumes after it.

Used by tests/test_fuzz_guided.py (short runs) and benchmarks/fuzz_guided.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


#: The modules of the header parser's kernels, traced for coverage.
KERNEL_MODULES = ("pocketpacs.native.dicomparse", "pocketpacs.native.dicomvr",
                  "pocketpacs.native.dicomvalues")


def _origins() -> tuple[str, ...]:
    """The kernel modules' source files, where Python imports them from (the
    checkout with an editable install, site-packages otherwise)."""
    import importlib.util

    out = []
    for mod in KERNEL_MODULES:
        spec = importlib.util.find_spec(mod)
        out.append(spec.origin if spec and spec.origin
                   else str(ROOT / "native" / (mod.rsplit(".", 1)[1] + ".py")))
    return tuple(out)


#: One source file per kernel module, in :data:`KERNEL_MODULES` order.
KERNEL_FILES = _origins()
#: Each name code objects may give a kernel file (as found and resolved) -> its file name,
#: the label of its arcs and lines.
_LABELS = {f: Path(o).name for o in KERNEL_FILES for f in (o, str(Path(o).resolve()))}
TARGETS = tuple(_LABELS)

#: Tags whose values the harness decodes (text and numeric paths).
_TEXT_TAGS = ("PatientName", "SOPInstanceUID", "ImageType", "SpecificCharacterSet")
_NUM_TAGS = ("Rows", "ImagePositionPatient", "PixelSpacing", "NumberOfFrames")


def exercise(blob: bytes) -> str:
    """Run the parser paths on one input; returns its outcome label.

    Header parse (compiled or interpreted, whatever this process runs),
    value gathering and decoding of a few tags, and the fragment walk of
    encapsulated pixel data.  Any exception escaping is a finding.
    """
    import numpy as np

    from pocketpacs.dicom.headers import parse_bytes
    from pocketpacs.native.dicomparse import encapsulated_fragments

    hb = parse_bytes([blob], fallback=False)
    st = int(hb.status[0])
    if st == -1:
        if not (hb.reason[0] and hb.message[0]):
            raise AssertionError("failure without a reason or message")
        return f"failed:{hb.reason[0]}"
    for kw in _TEXT_TAGS:
        hb.text(kw)
    for kw in _NUM_TAGS:
        hb.values(kw)
    if hb.encapsulated[0] and hb.pixel_offset[0] >= 0:
        buf = np.frombuffer(blob, dtype=np.uint8)
        off = np.zeros(64, dtype=np.int64)
        ln = np.zeros(64, dtype=np.int64)
        k = encapsulated_fragments(buf, 0, len(blob), int(hb.pixel_offset[0]), off, ln)
        if k > 0 and (off[:k].min() < 0 or (off[:k] + ln[:k]).max() > len(blob)):
            raise AssertionError("fragment outside the file")
        return "parsed:encapsulated"
    return "parsed"


class ArcTracer:
    """Line-to-line arcs taken in ``files`` while active (``sys.settrace``),
    as (file label, from line, to line): ``files`` maps each path as code
    objects name it to its label (by default the kernel modules, labelled by
    file name).  Only functions are traced: the modules' bodies, run once at
    import, are not kernel paths (and how many there are would depend on how
    the kernels are split into modules)."""

    def __init__(self, files: dict[str, str] = _LABELS):
        self.files = dict(files)
        self.arcs: set[tuple[str, int, int]] = set()

    def _global(self, frame, event, arg):
        if event != "call" or frame.f_code.co_name == "<module>":
            return None
        label = self.files.get(frame.f_code.co_filename)
        if label is None:
            return None
        arcs = self.arcs
        last = [-frame.f_code.co_firstlineno]

        def local(frame, event, arg):
            if event == "line":
                ln = frame.f_lineno
                arcs.add((label, last[0], ln))
                last[0] = ln
            elif event == "return":
                arcs.add((label, last[0], 0))
            return local

        return local

    def __enter__(self):
        self.arcs = set()
        sys.settrace(self._global)
        return self

    def __exit__(self, *exc):
        sys.settrace(None)
        return False


def function_lines(paths: tuple[str, ...] = KERNEL_FILES) -> set[tuple[str, int]]:
    """The statements inside the functions of ``paths``, as (file name, line)."""
    import types

    out: set[tuple[str, int]] = set()
    for path in paths:
        label = Path(path).name
        top = compile(Path(path).read_text(encoding="utf-8"), path, "exec")
        todo = [c for c in top.co_consts if isinstance(c, types.CodeType)]
        while todo:
            code = todo.pop()
            out.update((label, ln) for _, _, ln in code.co_lines()
                       if ln is not None and ln != code.co_firstlineno)
            todo.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return out


def seed_inputs(corpus: Path | None = None) -> list[bytes]:
    """Seeds: the built-in headers of tests/fuzzing.py, pydicom's files cut
    after their header, and (when present) corpus files."""
    import fuzzing
    import structured

    out = list(fuzzing.seeds(corpus, limit=12))
    for name in structured.PYDICOM_FILES:
        b = structured.pydicom_file(name)
        out.append(b[:4096])
    out.append(fuzzing.nested(3))
    return [b[:16384] for b in out]


def _save(folder: Path, blob: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / (hashlib.sha1(blob).hexdigest()[:20] + ".bin")
    p.write_bytes(blob)
    return p


def _mutate(blob: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    import fuzzing

    if rng.random() < 0.1 and len(pool) > 1:  # cross-over with another corpus entry
        other = rng.choice(pool)
        a = rng.randrange(len(blob) + 1)
        b = rng.randrange(len(other) + 1)
        return blob[:a] + other[b:]
    for _ in range(rng.randrange(1, 4)):
        blob = fuzzing.mutate(blob, rng)
        if len(blob) > 65536:
            blob = blob[:65536]
    return blob


def guided(iterations: int, seed: int = 0, out_dir: Path | None = None,
           corpus: Path | None = None, max_seconds: float | None = None,
           resume: bool = False) -> dict:
    """Coverage-guided mutation loop (run with ``NUMBA_DISABLE_JIT=1``).

    Returns counts: inputs run, inputs kept (new arcs), arcs covered,
    statements covered of those in the kernel modules' functions (in all,
    and per file in ``lines_by_file``: [covered, statements]),
    findings (exceptions, saved under ``out_dir/crashes``), the slowest
    input (interpreted and traced: for ranking only).  Kept inputs are
    written to ``out_dir/corpus``; with ``resume`` the inputs already there
    seed the run (a long campaign continues where the last one stopped).
    """
    import numpy as np

    if os.environ.get("NUMBA_DISABLE_JIT") != "1":
        raise RuntimeError("guided fuzzing needs NUMBA_DISABLE_JIT=1 (interpreted kernels)")
    rng = random.Random(seed)
    tracer = ArcTracer()
    covered: set[tuple[int, int]] = set()
    pool: list[bytes] = []
    findings: list[str] = []
    outcomes: dict[str, int] = {}
    worst = 0.0
    corpus_dir = out_dir / "corpus" if out_dir else None
    crash_dir = out_dir / "crashes" if out_dir else None

    def run_one(blob: bytes) -> bool:
        nonlocal worst
        t = time.perf_counter()
        try:
            with tracer, np.errstate(all="ignore"):  # XXH64 wraps around on purpose
                label = exercise(blob)
        except Exception as e:  # an interpreted IndexError = an out-of-bounds read
            label = f"EXCEPTION:{type(e).__name__}"
            findings.append(f"{type(e).__name__}: {e}"[:300])
            if crash_dir:
                _save(crash_dir, blob)
        worst = max(worst, time.perf_counter() - t)
        outcomes[label] = outcomes.get(label, 0) + 1
        new = tracer.arcs - covered
        if new:
            covered.update(new)
            pool.append(blob)
            if corpus_dir:
                _save(corpus_dir, blob)
            return True
        return False

    t0 = time.perf_counter()
    seeds = seed_inputs(corpus)
    if resume and corpus_dir is not None and corpus_dir.is_dir():
        seeds += [p.read_bytes() for p in sorted(corpus_dir.glob("*.bin"))]
    for b in seeds:
        run_one(b)
    n_seed_kept = len(pool)
    done = len(seeds)
    kept_by_mutation = 0
    while done < iterations:
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
        # favour recent finds: they sit on the coverage frontier
        base = pool[-1 - min(int(rng.expovariate(0.05)), len(pool) - 1)]
        kept_by_mutation += run_one(_mutate(base, pool, rng))
        done += 1
    lines = function_lines()
    hit = {(f, ln) for f, _, ln in covered if (f, ln) in lines}
    by_file = {Path(p).name: [sum(1 for f, _ in hit if f == Path(p).name),
                              sum(1 for f, _ in lines if f == Path(p).name)] for p in KERNEL_FILES}
    return {"inputs": done, "seeds": len(seeds), "seed_kept": n_seed_kept,
            "lines_covered": len(hit), "function_lines": len(lines), "lines_by_file": by_file,
            "kept_by_mutation": kept_by_mutation, "corpus": len(pool), "arcs": len(covered),
            "findings": len(findings), "finding_messages": findings[:20],
            "outcomes": outcomes, "worst_traced_s": round(worst, 4),
            "seconds": round(time.perf_counter() - t0, 1)}


# ---- replay in a watchdog child ---------------------------------------------------------------
def boundscheck_cache_dir() -> str:
    """A numba cache for the bounds-checked build, apart from the released one."""
    try:
        import platformdirs

        base = platformdirs.user_cache_dir("pocketpacs", appauthor=False)
    except ImportError:
        base = os.path.join(os.path.expanduser("~"), ".cache", "pocketpacs")
    path = os.path.join(base, "numba-boundscheck")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def mode_env(mode: str) -> dict[str, str]:
    """Environment of a replay child: ``boundscheck``, ``released`` or ``interpreted``."""
    env = dict(os.environ)
    for k in ("NUMBA_BOUNDSCHECK", "NUMBA_DISABLE_JIT"):
        env.pop(k, None)
    if mode == "boundscheck":
        env["NUMBA_BOUNDSCHECK"] = "1"
        env["NUMBA_CACHE_DIR"] = boundscheck_cache_dir()
    elif mode == "interpreted":
        env["NUMBA_DISABLE_JIT"] = "1"
    elif mode != "released":
        raise ValueError(mode)
    return env


def job_inputs(job: dict):
    """The inputs of a replay job, in a deterministic order: (name, bytes)."""
    kind = job["kind"]
    if kind == "dir":
        for p in sorted(Path(job["path"]).rglob("*.bin")):
            yield p.name, p.read_bytes()
    elif kind == "files":
        for p in job["paths"]:
            yield Path(p).name, Path(p).read_bytes()
    elif kind == "mutations":
        # the random mutations of tests/fuzzing.py, one input at a time
        import fuzzing

        rng = random.Random(job["seed"])
        corpus = job.get("corpus")
        base = fuzzing.seeds(Path(corpus) if corpus else None)
        for i in range(job["count"]):
            d = rng.choice(base)
            for _ in range(rng.randrange(1, 4)):
                d = fuzzing.mutate(d, rng)
            yield f"mutation {job['seed']}/{i}", d
    elif kind == "selftest":
        for name in job["names"]:
            yield name, name.encode()
    elif kind == "structured":
        import structured

        corpus = job.get("corpus")
        yield from structured.all_inputs(job.get("scale", "ci"), Path(corpus) if corpus else None)
    else:
        raise ValueError(kind)


_CHILD = r"""
import json, resource, sys, time
# VmHWM, this process's own peak: after exec, ru_maxrss also counts the
# peak of the parent that spawned it (pytest, the benchmark driver)
def peak_kib():
    with open("/proc/self/status") as f:
        return int(next(l.split()[1] for l in f if l.startswith("VmHWM:")))
sys.path.insert(0, {here!r})
import fuzz_guided as G
job = json.loads({job!r})
start = {start}
if job.get("harness") == "watchdog-selftest":
    G.exercise = G.selftest_exercise
else:
    G.warm_up()  # compile / load every kernel specialisation before timing
import numba
config = {{"boundscheck": bool(numba.config.BOUNDSCHECK), "disable_jit": bool(numba.config.DISABLE_JIT)}}
print("READY", flush=True)
out = sys.stdout
worst, worst_name, slow, n, outcomes = 0.0, "", 0, 0, {{}}
for i, (name, blob) in enumerate(G.job_inputs(job)):
    if i < start:
        continue
    out.write(f"S {{i}}\n"); out.flush()
    t = time.perf_counter()
    try:
        label = G.exercise(blob)
    except Exception as e:
        label = "EXCEPTION"
        out.write("E " + json.dumps([i, name, type(e).__name__, str(e)[:200]]) + "\n")
    dt = time.perf_counter() - t
    if dt > 0.005 and label != "EXCEPTION":
        # over 5 ms: time it again (a busy machine pauses any process;
        # a slow input stays slow), keep the fastest run
        for _ in range(3):
            t = time.perf_counter()
            G.exercise(blob)
            dt = min(dt, time.perf_counter() - t)
    n += 1
    outcomes[label] = outcomes.get(label, 0) + 1
    if dt > worst:
        worst, worst_name = dt, name
    if dt > 0.1 and len(blob) <= 262144:
        slow += 1
print("END " + json.dumps({{"n": n, "worst_s": worst, "worst_input": worst_name, "slow": slow,
                           "outcomes": outcomes, "config": config,
                           "maxrss_kib": peak_kib()}}),
      flush=True)
"""


def warm_up() -> None:
    """Run every kernel specialisation once (a replay child does this before
    it times inputs): the seeds (native, encapsulated, big endian...), an
    empty input (a writable buffer is another numba type than bytes) and a
    nesting failure."""
    import fuzzing

    for b in seed_inputs() + [b"", fuzzing.nested(65)]:
        exercise(b)


def replay(job: dict, mode: str, input_timeout: float = 10.0, startup_timeout: float = 600.0,
           max_restarts: int = 50) -> dict:
    """Replay a job's inputs in watchdog child processes (see module doc).

    Returns: inputs run, crashes and hangs (with the input names), stray
    exceptions, worst time per input (compiled, excluding start-up), inputs
    over 100 ms (of at most 256 KiB), peak RSS of the children (KiB) and the
    outcome counts.
    """
    env = mode_env(mode)
    start = 0
    res = {"mode": mode, "inputs": 0, "crashes": [], "hangs": [], "exceptions": [],
           "worst_s": 0.0, "worst_input": "", "over_100ms": 0, "peak_rss_kib": 0,
           "outcomes": {}, "children": 0}
    names: dict[int, str] = {}
    while True:
        res["children"] += 1
        code = _CHILD.format(here=str(HERE), job=json.dumps(job), start=start)
        errf = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=errf, env=env)
        fd = proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        current = -1
        ready = False
        ended = False
        deadline = time.monotonic() + startup_timeout
        hung = False
        pending = b""
        eof = False
        while not eof:
            left = deadline - time.monotonic()
            if left <= 0:
                hung = True
                break
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 1 << 16)  # raw reads: no line left unseen in a buffer
            if not chunk:
                eof = True
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if line.startswith("S "):
                    current = int(line[2:])
                    deadline = time.monotonic() + input_timeout
                elif line.startswith("READY"):
                    ready = True
                    deadline = time.monotonic() + input_timeout
                elif line.startswith("E "):
                    i, name, typ, msg = json.loads(line[2:])
                    res["exceptions"].append({"input": name, "index": i,
                                              "error": f"{typ}: {msg}"})
                elif line.startswith("END "):
                    end = json.loads(line[4:])
                    ended = True
                    res["inputs"] += end["n"]
                    res["over_100ms"] += end["slow"]
                    res["peak_rss_kib"] = max(res["peak_rss_kib"], end["maxrss_kib"])
                    if end["worst_s"] > res["worst_s"]:
                        res["worst_s"], res["worst_input"] = end["worst_s"], end["worst_input"]
                    res["config"] = end["config"]
                    for k, v in end["outcomes"].items():
                        res["outcomes"][k] = res["outcomes"].get(k, 0) + v
        sel.close()
        if hung:
            proc.kill()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if not ended:
            # died before reporting its own VmHWM: wait4's figure is an upper
            # bound (after exec it also counts the peak of this process)
            res["peak_rss_kib"] = max(res["peak_rss_kib"], usage.ru_maxrss)
        proc.stdout.close()
        errf.seek(0)
        err = errf.read().decode("utf-8", "replace")
        errf.close()
        if ended and proc.returncode == 0:
            break
        if not ready:
            raise RuntimeError(f"replay child ({mode}) did not start (rc={proc.returncode}): "
                               f"{err[-1500:]}")
        if current < start:
            raise RuntimeError(f"replay child ({mode}) stopped before its first input "
                               f"(rc={proc.returncode}): {err[-1500:]}")
        if current not in names:
            names[current] = _input_name(job, current)
        entry = {"index": current, "input": names[current], "rc": proc.returncode}
        (res["hangs"] if hung else res["crashes"]).append(entry)
        # the inputs before the bad one ran; count them and go on after it
        res["inputs"] += current + 1 - start
        start = current + 1
        if len(res["crashes"]) + len(res["hangs"]) > max_restarts:
            break
    return res


def selftest_exercise(blob: bytes) -> str:
    """Harness of the watchdog's own test: ``segv`` kills the child with
    SIGSEGV, ``hang`` sleeps, ``raise`` raises, anything else passes."""
    import signal

    if blob == b"segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if blob == b"hang":
        time.sleep(3600)
    if blob == b"raise":
        raise IndexError("selftest")
    return "ok"


def _input_name(job: dict, index: int) -> str:
    for i, (name, _) in enumerate(job_inputs(job)):
        if i == index:
            return name
    return f"#{index}"
