"""UI latency benchmark: `pocketpacs serve` driven by headless Chromium (Playwright).

Measures, on one generated series of ``--slices`` images of ``--size``²:

* **start**: from launching ``python -m pocketpacs.ui serve`` to the archive
  list drawn in the page (the page's ``performance.timeOrigin + tArchive``
  against the launch time), with a cold numba cache (empty
  ``NUMBA_CACHE_DIR``) and then warm (same cache, second launch);
* **first slice**: from the double-click on the series row to the first slice
  drawn on the canvas (``tFirst - tOpen``, both ``performance.now()`` in the page);
* **whole series**: from the click to the last slice uploaded (``tLoaded - tOpen``).

Targets (issue 5): start under 1.5 s warm; first slice under 150 ms.

Usage::

    python benchmarks/bench_ui.py                      # 1000 x 512 x 512 (about 500 MB of DICOM)
    python benchmarks/bench_ui.py --slices 100 --size 256 --repeats 3

The DICOM files and the archive are generated once under ``--data``
(default ``bench-data/ui-<slices>x<size>``) and reused.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
START_TARGET_S = 1.5
FIRST_SLICE_TARGET_MS = 150.0


def prepare(data: Path, slices: int, size: int) -> Path:
    """Generate the series and import it (once)."""
    import pocketpacs
    from pocketpacs import synth

    archive = data / "archive"
    mark = data / "ready"
    if mark.exists():
        return archive
    files = data / "files"
    t = time.perf_counter()
    print(f"generating {slices} x {size}x{size} ...", file=sys.stderr, flush=True)
    synth.generate(files, patients=1, studies=1, series=1, slices=slices, rows=size, cols=size,
                   compressed_fraction=0.0, implicit_fraction=0.0, enhanced=0, junk=0, seed=5)
    with pocketpacs.open_archive(archive) as ar:
        ar.import_folder(files)
    mark.write_text("ok\n")
    print(f"prepared in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return archive


def launch(archive: Path, numba_cache: str) -> tuple[subprocess.Popen, str, float]:
    """Start the server; return (process, url, launch time as epoch seconds)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=numba_cache, PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "pocketpacs.ui", "--archive", str(archive),
                             "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if m:
            return proc, m.group(1), t0
    raise RuntimeError("serve did not start")


def poll(page, expr: str, timeout: float = 600.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = page.evaluate(expr)
        if v:
            return v
        time.sleep(0.005)
    raise TimeoutError(expr)


def start_to_list(browser, archive: Path, cache: str) -> tuple[float, subprocess.Popen, object]:
    proc, url, t0 = launch(archive, cache)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(url)
    t_list = poll(page, "document.body.dataset.tArchive && "
                        "(performance.timeOrigin + Number(document.body.dataset.tArchive)) / 1000")
    return float(t_list) - t0, proc, page


def open_series(page) -> tuple[float, float]:
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.evaluate("document.getElementById('btn-archive').click()")
    page.locator("#series-table tbody tr.series").first.dblclick()
    poll(page, "document.getElementById('view').dataset.tFirst")
    poll(page, "document.getElementById('view').dataset.tLoaded")
    d = page.evaluate("Object.assign({}, document.getElementById('view').dataset)")
    t_open = float(d["tOpen"])
    steps = [(k, float(d[k]) - t_open) for k in ("tReply", "tCall", "tHeader", "tSlice", "tFirst") if d.get(k)]
    STEPS.append(steps)
    return float(d["tFirst"]) - t_open, float(d["tLoaded"]) - t_open


#: Per open: (marker, ms after the click): open_series answered (tReply),
#: viewer switched to (tCall),
#: header received (tHeader), first slice's data received (tSlice), drawn (tFirst).
STEPS: list[list[tuple[str, float]]] = []


def _steps(i: int) -> str:
    return ", ".join(f"{k[1:].lower()} {v:.0f}" for k, v in STEPS[i])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=1000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3, help="series opens measured (after the first)")
    ap.add_argument("--data", type=Path, default=None)
    a = ap.parse_args(argv)
    data = a.data or Path("bench-data") / f"ui-{a.slices}x{a.size}"
    data.mkdir(parents=True, exist_ok=True)
    archive = prepare(data, a.slices, a.size)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as cache:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        cold, proc, page = start_to_list(browser, archive, cache)
        try:
            first_cold, whole_cold = open_series(page)  # numba compiles the readers here
        finally:
            page.close()
            proc.terminate()
            proc.wait()
        warm, proc, page = start_to_list(browser, archive, cache)
        try:
            first, whole = open_series(page)           # first open of a fresh process
            firsts, wholes = [], []
            for _ in range(a.repeats):
                f, w = open_series(page)
                firsts.append(f)
                wholes.append(w)
        finally:
            page.close()
            proc.terminate()
            proc.wait()
            browser.close()
    mb = a.slices * a.size * a.size * 2 / 1e6
    print(f"\nseries: {a.slices} slices of {a.size}x{a.size} ({mb:.0f} MB of voxels); "
          f"headless Chromium, WebGL2 on SwiftShader")
    print(f"start -> archive list, numba cache cold : {cold:7.3f} s")
    print(f"start -> archive list, numba cache warm : {warm:7.3f} s   "
          f"(target {START_TARGET_S} s: {warm / START_TARGET_S:.2f}x of target)")
    fm, wm = statistics.median(firsts), statistics.median(wholes)
    print(f"click -> first slice, cold numba cache  : {first_cold:7.1f} ms")
    print(f"click -> whole series, cold numba cache : {whole_cold:7.1f} ms")
    print(f"click -> first slice, first open        : {first:7.1f} ms   ({_steps(1)} ms)")
    print(f"click -> first slice, median of {a.repeats}      : {fm:7.1f} ms   "
          f"(target {FIRST_SLICE_TARGET_MS:.0f} ms: {fm / FIRST_SLICE_TARGET_MS:.2f}x of target)")
    for i in range(2, len(STEPS)):
        print(f"    repeat open {i - 1}: {_steps(i)} ms")
    print(f"click -> whole series, first open       : {whole:7.1f} ms   ({mb / whole * 1000:.0f} MB/s)")
    print(f"click -> whole series, median of {a.repeats}     : {wm:7.1f} ms   ({mb / wm * 1000:.0f} MB/s)")
    return 0


# ---- the suite's interface (pocketpacs bench ui) ----------------------------------------------

NAME = "ui"


def run(ctx) -> list:
    """App start to archive list (numba cache cold and warm); click to first slice and to the whole series."""
    from pocketpacs.benchmarks.bench_render import browser_missing
    from pocketpacs.benchmarks.results import from_samples, skipped

    slices, size = ctx.pick((50, 128), (1000, 512))
    repeats = ctx.reps(2, 3)
    starts = ctx.pick(2, 3)
    mb = slices * size * size * 2 / 1e6
    series = f"{slices} x {size}x{size} series ({mb:.0f} MB), headless Chromium"
    start_what = "app start -> archive list"
    reason = browser_missing()
    if reason:
        return [skipped(start_what, "numba cache warm", "s", reason, higher_is_better=False),
                skipped(f"click -> first slice, {series}", "later opens", "ms", reason, higher_is_better=False)]
    data = ctx.cached("ui", {"slices": slices, "size": size}, lambda d: prepare(d, slices, size),
                      sources=[prepare])
    archive = data / "archive"
    from playwright.sync_api import sync_playwright

    STEPS.clear()
    warm_s, first, firsts, wholes = [], [], [], []
    with sync_playwright() as p, tempfile.TemporaryDirectory() as cache:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            cold, proc, page = start_to_list(browser, archive, cache)
            try:
                first_cold, whole_cold = open_series(page)  # numba compiles the readers here
            finally:
                page.close()
                proc.terminate()
                proc.wait()
            for i in range(starts):
                w, proc, page = start_to_list(browser, archive, cache)
                warm_s.append(w)
                try:
                    f, _w = open_series(page)  # first open of a fresh process
                    first.append(f)
                    if i == 0:
                        for _ in range(repeats):
                            f, w2 = open_series(page)
                            firsts.append(f)
                            wholes.append(w2)
                finally:
                    page.close()
                    proc.terminate()
                    proc.wait()
        finally:
            browser.close()
    lo = dict(higher_is_better=False)
    out = [from_samples(start_what, "numba cache cold (empty NUMBA_CACHE_DIR)", "s", [cold], **lo),
           from_samples(start_what, "numba cache warm", "s", warm_s, target=f"<= {START_TARGET_S} s",
                        met=statistics.median(warm_s) <= START_TARGET_S, headline=True, **lo),
           from_samples(f"click -> first slice, {series}", "cold numba cache", "ms", [first_cold], **lo),
           from_samples(f"click -> first slice, {series}", "first open after start", "ms", first, **lo),
           from_samples(f"click -> first slice, {series}", "later opens", "ms", firsts,
                        target=f"<= {FIRST_SLICE_TARGET_MS:.0f} ms",
                        met=statistics.median(firsts) <= FIRST_SLICE_TARGET_MS, headline=True, **lo),
           from_samples(f"click -> whole series, {series}", "cold numba cache", "ms", [whole_cold], **lo),
           from_samples(f"click -> whole series, {series}", "later opens", "ms", wholes,
                        extra={"MB/s": mb / statistics.median(wholes) * 1000}, **lo)]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
