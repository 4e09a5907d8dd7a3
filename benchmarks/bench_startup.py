"""What a user waits for when typing ``pocketpacs ...``: process wall times, start to exit.

Each figure is the wall time of a whole ``pocketpacs`` process, from its
start to its exit (the installed console script beside this Python, else
``python -m pocketpacs``; warm page cache, warm kernel cache unless said
otherwise), as the median of several runs with their min-max spread; the
runner records the machine's load average before and after:

- ``pocketpacs --help``, ``pocketpacs stats`` and ``pocketpacs search``
  on an imported archive (target: under 0.3 s each);
- ``pocketpacs import`` of the already-imported folder (a rescan, nothing
  changed: no file is parsed);
- ``pocketpacs import`` of a few new files (:data:`FEW` of the first run's
  files, into a new archive each time: the usual re-import after a scan;
  the interpreted kernels parse them, numba is not loaded);
- ``pocketpacs import`` of the whole folder into a new archive, against GDCM
  Scanner reading the same tags in an already-running process (the file
  list from ``os.walk`` included; runs interleaved; target: at least 4x
  faster), and the floor of the design beside it: a process that parses
  one file (:func:`floor_file`: the first of the folder that they parse)
  with the compiled kernels (:func:`floor_seconds`: Python, NumPy,
  numba and the kernels loaded from the cache), as a ratio of GDCM's time
  too: the most any import parsed by the compiled kernels can reach;
- the first run: ``pocketpacs import`` of 100 files with an empty kernel
  cache (``XDG_CACHE_HOME`` pointed at an empty folder; target: at most
  4 s), with the compile time the import reports (0 when the files were
  parsed by the interpreted kernels) and how long after its exit the
  background compile process it started had filled the cache and ended
  (the next run waits for it, so that it never loads another figure;
  ``--quick`` stops it after the import instead and does not time it).

The folder is the import benchmark's (``pocketpacs bench import``: 5,000
files of 512x512; ``--quick`` 1,000 of 128x128), from the same data cache;
the first run has its own 100 files of 64x64.  ``--data DIR`` puts your
own DICOM folder in place of the import benchmark's (the first run keeps
its 100 files); without files there the rows say so and carry no figure.
GDCM comes with ``pip install -e ".[bench]"``; without it that row says
it was skipped.

Usage::

    pocketpacs bench startup [--quick] [--json FILE]   # in the suite
    python benchmarks/bench_startup.py [--quick] [--json FILE]   # the same

:func:`run` is the suite's entry (rows of :mod:`.results`); the measuring
functions (:func:`wall`, :func:`first_run`, ...) are usable alone.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "startup"

#: The first run's folder: 100 small files, half implicit VR.
FIRST_RUN = dict(patients=1, studies=1, series=2, slices=50, rows=64, cols=64,
                 compressed_fraction=0.0, implicit_fraction=0.5, enhanced=0, junk=0)
#: Files of the "few new files" import (at most ``kernels.SMALL_MAX``: numba is not loaded).
FEW = 20
#: Kernels whose cache files mean the background compile has done its work.
WARM_KERNELS = frozenset({"dicomparse.parse_serial", "dicomvalues.gather_values"})
#: Seconds to wait for the background compile of one first run.
WARM_TIMEOUT_S = 300.0
#: Targets of issue 16.
COMMAND_TARGET_S = 0.3
IMPORT_RATIO_TARGET = 4.0
FIRST_RUN_TARGET_S = 4.0


def command() -> list[str]:
    """The installed ``pocketpacs`` console script beside this Python, else ``python -m pocketpacs``."""
    script = Path(sys.executable).with_name("pocketpacs")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pocketpacs"]


def child_env(archive: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``POCKETPACS_ARCHIVE`` = *archive* (and the kernels compiled).

    ``PYTHONDONTWRITEBYTECODE`` is left out: an installed PocketPACS has its
    modules' bytecode cached (pip compiles it at install; an editable install
    writes it at the first run), and a child told not to write it compiles
    every module from source at every start (~0.06 s more for ``stats`` on the
    development machine, more for ``import``).  The untimed first run of each
    figure writes it.
    """
    env = dict(os.environ, POCKETPACS_ARCHIVE=str(archive), **extra)
    env.pop("NUMBA_DISABLE_JIT", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _make_first_run(folder: Path) -> None:
    from pocketpacs import synth

    synth.generate(folder, **FIRST_RUN, workers=os.cpu_count() or 1)


def dicom_files(root: Path) -> list[str]:
    """Every file under *root* but the generator's ``manifest.json``, sorted."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f != "manifest.json")
    return sorted(out)


def warm_page_cache(paths: list[str]) -> None:
    """Read every file of *paths* whole (the figures are warm-cache figures)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def wall(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0, 1),
         cmd: list[str] | None = None) -> tuple[float, str]:
    """Wall seconds of one ``pocketpacs`` process from its start to its exit, and its stdout.

    Parameters
    ----------
    argv : list of str
        The arguments after ``pocketpacs``.
    env : dict
        The child's environment (:func:`child_env`).
    ok : tuple of int
        Exit statuses taken as success (1: some files were not indexed).
    cmd : list of str, optional
        The program in place of ``pocketpacs`` (:func:`command`).

    Returns
    -------
    (float, str)

    Raises
    ------
    RuntimeError
        The process exited with another status (its last stderr lines in the message).
    """
    t = time.perf_counter()
    r = subprocess.run((cmd or command()) + argv, env=env, capture_output=True, text=True, timeout=1800)
    dt = time.perf_counter() - t
    if r.returncode not in ok:
        raise RuntimeError(f"{'pocketpacs' if cmd is None else cmd[0]} {' '.join(argv[:1])} exited "
                           f"{r.returncode}: {r.stderr[-2000:]}")
    return dt, r.stdout


#: The design's floor for an import parsed by the compiled kernels: a process
#: that starts, imports the parser (NumPy, numba) and parses one file, loading
#: the kernels it runs from the kernel cache; nothing else (no archive, no walk).
FLOOR_CODE = ("import sys\n"
              "from pocketpacs.dicom.headers import parse_files\n"
              "batch = parse_files(sys.argv[1:2])\n"
              "assert 'numba' in sys.modules and batch.n_native == 1, 'not parsed by the compiled kernels'\n")


def floor_seconds(path: str, env: dict[str, str]) -> float:
    """Wall seconds of :data:`FLOOR_CODE` over the one file *path*, process start to exit.

    What no ``pocketpacs import`` that needs the compiled kernels (more than
    :data:`pocketpacs.dicom.kernels.SMALL_MAX` new files) can take less than:
    Python's start, ``import numba`` and numba's set-up at the first kernel
    loaded from the cache.  Outside an import's first-run block the compiled
    kernels parse any batch, one file included.
    """
    return wall([path], env, ok=(0,), cmd=[sys.executable, "-c", FLOOR_CODE])[0]


def floor_file(paths: list[str], look: int = 64) -> str | None:
    """The first of the first *look* files of *paths* that the compiled kernels
    parse (a ``--data`` folder may begin with a file that is not DICOM), or None."""
    from pocketpacs.dicom.batch import NATIVE
    from pocketpacs.dicom.headers import parse_files

    batch = parse_files(paths[:look])
    native = [i for i in range(batch.n) if batch.status[i] == NATIVE]
    return paths[native[0]] if native else None


def walls(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    """:func:`wall` of *repeats* runs (after one untimed run)."""
    wall(argv, env)
    return [wall(argv, env)[0] for _ in range(repeats)]


# ---- the background compile of a first run ----------------------------------------------

def _proc_text(pid: str, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def warmup_pids(cache_home: Path) -> list[int]:
    """Processes of ``python -m pocketpacs.dicom.warmup`` started with ``XDG_CACHE_HOME`` = *cache_home*.

    Linux only (``/proc``): elsewhere an empty list.  The folder is unique
    to one first run, so no other process is ever picked.
    """
    mark = b"XDG_CACHE_HOME=" + os.fsencode(cache_home)
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()) if os.path.isdir("/proc") else ():
        if b"pocketpacs.dicom.warmup" not in _proc_text(pid, "cmdline"):
            continue
        if mark in _proc_text(pid, "environ").split(b"\0"):
            out.append(int(pid))
    return out


def _running(pid: int) -> bool:
    stat = _proc_text(str(pid), "stat")
    if not stat:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"  # a zombie has finished


def cached_kernels(cache_home: Path) -> set[str]:
    """Names (``module.kernel``) of the kernels in the kernel cache under *cache_home*."""
    return {p.name.split("-")[0] for p in cache_home.rglob("*.nbi")}


def wait_background_compile(cache_home: Path, pids: list[int], timeout: float = WARM_TIMEOUT_S) -> float | None:
    """Seconds until the background compile processes *pids* ended with the kernels in the cache.

    Returns None when they did not end within *timeout* or ended without
    filling the cache (:data:`WARM_KERNELS`).
    """
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if not any(_running(p) for p in pids):
            done = time.perf_counter() - t
            return done if WARM_KERNELS <= cached_kernels(cache_home) else None
        time.sleep(0.05)
    return None


def _stop(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM the background compile processes *pids* still running, and wait for them to end."""
    for p in pids:
        if _running(p):
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.monotonic() + timeout
    while any(_running(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)


def first_run(folder: Path, work: Path, wait: bool = True) -> dict:
    """One ``pocketpacs import`` of *folder* with an empty kernel cache, and its background compile.

    Parameters
    ----------
    folder : Path
        The files to import.
    work : Path
        A private folder for the archive and the empty cache (removed after).
    wait : bool
        Wait for the background compile the import started and time it;
        False stops it at once (``--quick``: it takes tens of seconds).
        Either way it has ended before this returns, so it never loads the
        next figure.

    Returns
    -------
    dict
        ``wall`` (seconds, process start to exit), ``compile_s`` (what the
        import reports as preparing the parser), ``background`` (seconds
        from the import's exit to the end of the background compile, None
        when it failed or did not finish) and ``started`` (number of
        background compile processes found).
    """
    tmp = Path(tempfile.mkdtemp(prefix="pp-first-run-", dir=work))
    try:
        cache = tmp / "cache"
        env = child_env(tmp / "archive", XDG_CACHE_HOME=str(cache))
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("POCKETPACS_FIRST_RUN", None)
        dt, out = wall(["import", "--json", "--no-progress", str(folder)], env)
        pids = warmup_pids(cache)
        background = wait_background_compile(cache, pids) if pids and wait else None
        _stop(pids)  # one stopped, or that overran its time, must not load the next figure
        compile_s = float(json.loads(out).get("compile_s", 0.0) or 0.0)
        return {"wall": dt, "compile_s": compile_s, "background": background, "started": len(pids)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def gdcm_seconds(folder: Path) -> float:
    """Seconds of GDCM Scanner over *folder* (the import benchmark's tags and walk) in this process."""
    from pocketpacs.benchmarks.bench_import import gdcm_scan

    t = time.perf_counter()
    gdcm_scan(folder)
    return time.perf_counter() - t


# ---- the suite's interface (pocketpacs bench startup) -------------------------------------

def run(ctx) -> list:
    """Process wall times of --help, stats, search, a rescan, import vs GDCM Scanner, the first run."""
    from pocketpacs.benchmarks.bench_import import QUICK_BENCH, _make
    from pocketpacs.benchmarks.results import add_ratio, from_samples, peer_missing, skipped

    params = ctx.pick(QUICK_BENCH, {"synth_preset": "bench"})
    repeats = ctx.reps(3, 5)
    first_repeats = ctx.reps(2, 3)
    lo = dict(higher_is_better=False)
    if ctx.data is not None:
        folder, of = ctx.data, " of --data"
    else:
        folder, of = ctx.cached("import-bench", params, lambda d: _make(d, params), sources=[_make]), ""
    paths = dicom_files(folder)
    if not paths:
        reason = f"no files under {folder}"
        return [skipped("pocketpacs --help", "process start to exit", "s", reason, headline=True, **lo),
                skipped(f"import into a new archive{of}", "pocketpacs import, process start to exit", "s", reason,
                        target=f">= {IMPORT_RATIO_TARGET:g}x GDCM Scanner", headline=True, **lo)]
    first = ctx.cached("startup-first-run", FIRST_RUN, _make_first_run, sources=[_make_first_run])
    first_paths = dicom_files(first)
    n, nfirst = len(paths), len(first_paths)
    warm_page_cache(paths + first_paths)
    rows: list = []
    work = Path(tempfile.mkdtemp(prefix="pp-bench-startup-"))
    try:
        archive = work / "archive"
        env = child_env(archive)
        ctx.log(f"importing {n:,} files (kernels compiled in the foreground: a warm kernel cache) ...")
        wall(["import", "--no-progress", str(folder)], child_env(archive, POCKETPACS_FIRST_RUN="compile"))

        def command_row(what: str, argv: list[str]) -> None:
            s = walls(argv, env, repeats)
            rows.append(from_samples(what, "process start to exit", "s", s, target=f"< {COMMAND_TARGET_S} s",
                                     met=statistics.median(s) < COMMAND_TARGET_S, headline=True, **lo))

        ctx.log("pocketpacs --help, stats, search ...")
        command_row("pocketpacs --help", ["--help"])
        command_row(f"pocketpacs stats, {n:,} files{of} imported", ["stats"])
        command_row(f"pocketpacs search --modality CT, {n:,} files{of} imported", ["search", "--modality", "CT"])
        ctx.log("no-change rescan ...")
        rows.append(from_samples(f"pocketpacs import, no-change rescan of {n:,} files{of}", "process start to exit",
                                 "s", walls(["import", "--no-progress", str(folder)], env, repeats), **lo))
        few = work / "few"
        few.mkdir()
        for p in first_paths[:FEW]:
            shutil.copy2(p, few / os.path.basename(p))
        nfew = len(os.listdir(few))
        ctx.log(f"import of {nfew} new files ...")

        def few_import() -> float:
            shutil.rmtree(work / "few-archive", ignore_errors=True)
            return wall(["import", "--no-progress", str(few)], child_env(work / "few-archive"))[0]

        few_import()  # untimed
        rows.append(from_samples(f"pocketpacs import of {nfew} new files into a new archive", "process start to exit",
                                 "s", [few_import() for _ in range(repeats)], **lo))

        what = f"import of {n:,} files{of} into a new archive"
        gdcm_reason = peer_missing("gdcm", "python-gdcm")

        inside: list[float] = []  # the import itself, as the process reports it
        compiled: list[float] = []

        def fresh_import() -> float:
            shutil.rmtree(work / "fresh", ignore_errors=True)
            dt, out = wall(["import", "--json", "--no-progress", str(folder)], child_env(work / "fresh"))
            rep = json.loads(out)
            inside.append(float(rep["elapsed_s"]))
            compiled.append(float(rep.get("compile_s") or 0.0))
            return dt

        ctx.log(f"import of {n:,} files vs GDCM Scanner, interleaved ...")
        ours_s, gdcm_s, floor_s = [], [], []
        one = floor_file(paths)
        if gdcm_reason is None:
            gdcm_seconds(folder)  # untimed: GDCM's own first use
        for _ in range(repeats):
            ours_s.append(fresh_import())
            if one is not None:
                floor_s.append(floor_seconds(one, env))
            if gdcm_reason is None:
                gdcm_s.append(gdcm_seconds(folder))
        ours = from_samples(what, "pocketpacs import, process start to exit", "s", ours_s,
                            target=f">= {IMPORT_RATIO_TARGET:g}x GDCM Scanner", headline=True,
                            extra={"of it the import itself (s)": statistics.median(inside),
                                   "compile (s)": max(compiled)}, **lo)
        peer_method = "GDCM Scanner in a running process (walk included)"
        peer = (from_samples(what, peer_method, "s", gdcm_s, **lo) if gdcm_s
                else skipped(what, peer_method, "s", gdcm_reason, **lo))
        add_ratio(ours, peer, "GDCM Scanner")
        ours.met = ours.ratios["GDCM Scanner"] >= IMPORT_RATIO_TARGET if ours.ratios else None
        floor_method = ("floor of the design, process start to exit: 1 file parsed by the compiled kernels "
                        "(Python, NumPy, numba, the kernels from the cache)")
        floor = (from_samples(what, floor_method, "s", floor_s, headline=True, **lo) if floor_s
                 else skipped(what, floor_method, "s", "none of the folder's first 64 files was parsed by the "
                              "compiled kernels", headline=True, **lo))
        add_ratio(floor, peer, "GDCM Scanner")
        rows += [ours, peer, floor]

        wait = not ctx.quick
        ctx.log(f"first run: import of {nfirst} files with an empty kernel cache, {first_repeats} times "
                + ("(each waits for its background compile) ..." if wait else "(background compile stopped) ..."))
        firsts = [first_run(first, work, wait) for _ in range(first_repeats)]
        fwhat = f"first run: pocketpacs import of {nfirst} files, empty kernel cache"
        w = [f["wall"] for f in firsts]
        rows.append(from_samples(fwhat, "process start to exit", "s", w, target=f"<= {FIRST_RUN_TARGET_S:g} s",
                                 met=statistics.median(w) <= FIRST_RUN_TARGET_S, headline=True, **lo))
        rows.append(from_samples(fwhat, "of which preparing the parser (compile, as the import reports it)", "s",
                                 [f["compile_s"] for f in firsts], **lo))
        bmethod = "background compile: done after the import's exit"
        backs = [f["background"] for f in firsts if f["background"] is not None]
        if not wait:
            rows.append(skipped(fwhat, bmethod, "s", "not timed under --quick (it takes tens of seconds): "
                                "the background compile is stopped after the import", **lo))
        elif len(backs) == len(firsts):
            rows.append(from_samples(fwhat, bmethod, "s", backs, **lo))
        elif not any(f["started"] for f in firsts):
            rows.append(skipped(fwhat, bmethod, "s", "the import started no background compile "
                                "(it compiled in the foreground, or /proc is not there to find it)", **lo))
        else:
            rows.append(skipped(fwhat, bmethod, "s", f"{len(firsts) - len(backs)} of {len(firsts)} background "
                                f"compiles did not fill the kernel cache within {WARM_TIMEOUT_S:.0f} s", **lo))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """``pocketpacs bench startup`` with *argv* (``--quick``, ``--json FILE``, ...); the exit status."""
    from pocketpacs.benchmarks.runner import main as bench_main

    return bench_main(["startup", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
