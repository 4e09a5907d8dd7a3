"""What a user waits for when typing ``pocketpacs ...``: process wall times.

Each figure is the wall time of a whole ``pocketpacs`` process, start to
exit (the median of several runs; warm page cache, warm kernel cache unless
said otherwise):

- ``pocketpacs --help``, ``pocketpacs stats`` and ``pocketpacs search``
  on an imported archive (target: under 0.3 s each);
- ``pocketpacs import`` of the already-imported folder (a rescan, nothing
  changed: no file is parsed);
- ``pocketpacs import`` of the whole folder into a new archive, against GDCM
  Scanner reading the same tags in an already-running process (the file
  list from ``os.walk`` included; target: at least 4x faster);
- the first run: ``pocketpacs import`` of 100 files with an empty kernel
  cache (``XDG_CACHE_HOME`` pointed at an empty folder; target: at most
  4 s), with the compile time the import reports (0 when the files were
  parsed by the interpreted kernels) and how long after it the background
  compile had filled the cache.

The folder is the ``bench`` preset of ``pocketpacs.synth`` (5,000 files of
512x512, shared with ``bench_import.py`` in ``--data``); ``--quick`` uses
500 files of 64x64 and 3 runs.  GDCM comes with ``pip install -e
".[bench]"``; without it that row says it was skipped.

Usage::

    python benchmarks/bench_startup.py            # 5,000 files in ./bench-data/import-bench
    python benchmarks/bench_startup.py --quick
    python benchmarks/bench_startup.py --json

:func:`run` returns the rows (``{"what", "value", "unit", "peer", "ratio",
"target"}``: ``peer`` the peer's figure in the same unit, ``ratio`` how many
times faster than the peer, ``target`` the issue's target as text) for a
benchmark runner; :func:`main` prints them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

#: The synthetic folders: the full run shares bench_import.py's archive.
FULL = ("import-bench", dict(patients=10, studies=1, series=5, slices=100, rows=512, cols=512,
                             compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0))
QUICK = ("startup-quick", dict(patients=2, studies=1, series=5, slices=50, rows=64, cols=64,
                               compressed_fraction=0.2, implicit_fraction=0.2, enhanced=0, junk=0))
FIRST_RUN = ("startup-first-run", dict(patients=1, studies=1, series=2, slices=50, rows=64, cols=64,
                                       compressed_fraction=0.0, implicit_fraction=0.5, enhanced=0, junk=0))


def _command() -> list[str]:
    """The installed ``pocketpacs`` console script beside this Python, else ``python -m pocketpacs``."""
    script = Path(sys.executable).with_name("pocketpacs")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pocketpacs"]


def _env(archive: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, POCKETPACS_ARCHIVE=str(archive), **extra)
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def _ensure(data: Path, spec: tuple[str, dict]) -> Path:
    from pocketpacs import synth

    path = data / spec[0]
    if not (path / "manifest.json").exists():
        print(f"generating {path} ...", file=sys.stderr)
        synth.generate(path, **spec[1], workers=os.cpu_count() or 1)
    return path


def _files(root: Path) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f != "manifest.json")
    return sorted(out)


def _warm(paths: list[str]) -> None:
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


def _wall(argv: list[str], env: dict[str, str], ok: tuple[int, ...] = (0, 1)) -> tuple[float, str]:
    """Wall seconds of one ``pocketpacs`` process, and its stdout."""
    t = time.perf_counter()
    r = subprocess.run(_command() + argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode not in ok:
        raise RuntimeError(f"pocketpacs {' '.join(argv)} exited {r.returncode}: {r.stderr[-2000:]}")
    return dt, r.stdout


def _median(fn, repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def _row(what: str, value: float | None, unit: str = "s", peer: float | None = None,
         ratio: float | None = None, target: str | None = None, note: str | None = None) -> dict:
    row = {"what": what, "value": value, "unit": unit, "peer": peer, "ratio": ratio, "target": target}
    if note:
        row["note"] = note
    return row


def run(quick: bool, data: Path | None = None) -> list[dict]:
    """Measure every row (see the module's docstring).

    Parameters
    ----------
    quick : bool
        500 small files and 3 runs per figure instead of the 5,000-file
        ``bench`` folder and 5 runs.
    data : Path, optional
        Where the synthetic folders are made or reused (default
        ``./bench-data`` of the repository).

    Returns
    -------
    list of dict
        One row per figure: ``what``, ``value`` (seconds, or None when
        skipped), ``unit``, ``peer`` (the peer's seconds), ``ratio`` (peer /
        value), ``target`` (text), and ``note`` where a row was skipped.
    """
    data = data or ROOT / "bench-data"
    repeat = 3 if quick else 5
    folder = _ensure(data, QUICK if quick else FULL)
    first = _ensure(data, FIRST_RUN)
    paths = _files(folder)
    n = len(paths)
    _warm(paths + _files(first))
    work = Path(tempfile.mkdtemp(prefix="pp-bench-startup-"))
    rows: list[dict] = []
    try:
        archive = work / "archive"
        env = _env(archive)
        # the archive, and a warm kernel cache (compiled now, not in the background)
        _wall(["import", "--no-progress", str(folder)], _env(archive, POCKETPACS_FIRST_RUN="compile"))
        rows.append(_row("pocketpacs --help", _median(lambda: _wall(["--help"], env)[0], repeat),
                         target="< 0.3 s"))
        rows.append(_row(f"pocketpacs stats ({n:,} instances)",
                         _median(lambda: _wall(["stats"], env)[0], repeat), target="< 0.3 s"))
        rows.append(_row(f"pocketpacs search --modality CT ({n:,} instances)",
                         _median(lambda: _wall(["search", "--modality", "CT"], env)[0], repeat),
                         target="< 0.3 s"))
        rows.append(_row(f"pocketpacs import, no-change rescan of {n:,} files",
                         _median(lambda: _wall(["import", "--no-progress", str(folder)], env)[0], repeat)))

        def fresh_import() -> float:
            shutil.rmtree(work / "fresh", ignore_errors=True)
            return _wall(["import", "--no-progress", str(folder)], _env(work / "fresh"))[0]

        t_imp = _median(fresh_import, repeat)
        try:
            import gdcm  # noqa: F401

            from bench_import import gdcm_scan
        except ImportError:
            rows.append(_row(f"pocketpacs import of {n:,} files, process start to exit vs GDCM Scanner", t_imp,
                             target=">= 4x GDCM", note="GDCM Scanner skipped: python-gdcm is not installed "
                                                        "(pip install -e '.[bench]')"))
        else:
            def scan() -> float:
                t = time.perf_counter()
                gdcm_scan(folder)
                return time.perf_counter() - t

            scan()
            t_gdcm = _median(scan, repeat)
            rows.append(_row(f"pocketpacs import of {n:,} files, process start to exit vs GDCM Scanner "
                             "(in a running process)", t_imp, peer=t_gdcm, ratio=t_gdcm / t_imp,
                             target=">= 4x GDCM"))

        nfirst = len(_files(first))

        def first_run() -> tuple[float, float, float | None]:
            tmp = Path(tempfile.mkdtemp(prefix="pp-first-run-", dir=work))
            env1 = _env(tmp / "archive", XDG_CACHE_HOME=str(tmp / "cache"))
            env1.pop("NUMBA_CACHE_DIR", None)
            dt, out = _wall(["import", "--json", "--no-progress", str(first)], env1)
            # a small first import parses interpreted and leaves the compile to a
            # background process: wait for the cache it fills before going on
            t = time.perf_counter()
            warm = None
            while time.perf_counter() - t < 300:
                names = {p.name.split("-")[0] for p in (tmp / "cache").rglob("*.nbi")}
                if {"dicomparse.parse_serial", "dicomvalues.gather_values"} <= names:
                    warm = time.perf_counter() - t
                    break
                time.sleep(0.2)
            time.sleep(1.0)  # the last data file of the index
            shutil.rmtree(tmp, ignore_errors=True)
            return dt, float(json.loads(out).get("compile_s", 0.0)), warm

        firsts = [first_run() for _ in range(repeat)]
        rows.append(_row(f"first run: pocketpacs import of {nfirst} files, empty kernel cache",
                         statistics.median(f[0] for f in firsts), target="<= 4 s"))
        rows.append(_row("  of which preparing the parser (compile, as the import reports it)",
                         statistics.median(f[1] for f in firsts)))
        warms = [f[2] for f in firsts if f[2] is not None]
        rows.append(_row("  background compile into the cache, done after the import ended",
                         statistics.median(warms) if warms else None,
                         note=None if warms else "the cache was not filled within 300 s"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the table (or ``--json``); returns 0."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 small files, 3 runs per figure")
    ap.add_argument("--data", type=Path, default=ROOT / "bench-data", help="where the synthetic folders are")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = run(args.quick, args.data)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'what':<78} {'value':>9} {'peer':>9} {'ratio':>7}  target")
    for r in rows:
        v = f"{r['value']:.3f} {r['unit']}" if r["value"] is not None else "-"
        p = f"{r['peer']:.3f} {r['unit']}" if r["peer"] is not None else ""
        q = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        print(f"{r['what']:<78} {v:>9} {p:>9} {q:>7}  {r['target'] or ''}")
        if r.get("note"):
            print(f"    {r['note']}")
    print(f"({os.cpu_count()} CPUs; medians; process wall times)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
