"""UI latency benchmark: `pocketpacs serve` driven by headless Chromium (Playwright).

Measures, on one generated series of ``--slices`` images of ``--size``²:

* **start**: from launching ``python -m pocketpacs.ui serve`` to the archive
  list drawn in the page (the page's ``performance.timeOrigin + tArchive``
  against the launch time), with a cold numba cache (empty
  ``NUMBA_CACHE_DIR``) and then warm (same cache, second launch);
* **first slice**: from the double-click on the series row to the first slice
  drawn on the canvas (``tFirst - tOpen``, both ``performance.now()`` in the page);
* **whole series**: from the click to the series loaded (``tLoaded - tOpen``:
  every slice uploaded, the histogram of the panels computed);
* **whole-series stream**: from the click to the last slice handed to the GPU
  (``tUploaded - tOpen``), as MB/s of voxels; then a ``gl.finish`` + one-pixel
  ``readPixels`` in the page says how long the GPU was still busy after the
  load (``GPU busy after``); the last byte's arrival (``tStreamed``) is kept too;
* **upload floor**: the same series' bytes (the page's own array, after the
  load: no network, no decode) uploaded again into a new texture of the same
  format with ``texSubImage3D`` alone, in one call, in ~16 MB calls, and in
  ~16 MB calls after the texture was zero-filled from a pixel-unpack buffer
  (the page's way, gl/textures.js: otherwise the browser clears the whole
  texture at the first partial upload, slowly on SwiftShader), and that again
  into a texture that held the series before (untimed: the page reuses the
  last series' texture for the next of its size, so the GPU process does not
  fault in new memory) -- the fastest counts -- synchronised the same way:
  the rate at which this browser can
  fill a texture of the series.  The whole-series stream is given as a ratio
  of it.
* **GPU bytes**: the volume textures alive after the load (the page's count,
  ``data-gpu-bytes``: width x height x depth x bytes per texel of each).
* **CPU by process**: per open, the CPU seconds the server, its helper
  processes and each Chromium process spent from the click to the load
  (:mod:`.process_cpu`), with the load average at the click: on a shared
  machine the wall-clock figures move with the others' load, these barely.

Before the warm start, the kernel cache is filled and every background compile
into it waited for (:func:`settle`): otherwise the server's compile of the
histogram kernels ran during the timed opens.  A wait that ends with the page's
error banner stops at once and says the page's message (:class:`PageFailed`);
one that times out says what the page had done and the errors it gave.

Targets (issue 5): start under 1.5 s warm; first slice under 150 ms.
(issue 16): the whole-series stream at least 0.5x the upload floor.

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

from pocketpacs.benchmarks.process_cpu import cpu_seconds, cpu_text

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
START_TARGET_S = 1.5
FIRST_SLICE_TARGET_MS = 150.0
STREAM_TARGET_RATIO = 0.5

#: The page's test hook (window.POCKETPACS_TEST_HOOK) with the default limits.
INIT_SCRIPT = "window.POCKETPACS_TEST_LIMITS = {};"

#: Wait for the GPU to finish what it was given: ms that took, and the page's texture count.
_SYNC_JS = r"""() => {
  const gl = window.POCKETPACS_TEST_HOOK.viewer.gl;
  const px = new Uint8Array(4);
  const t = performance.now();
  gl.finish();
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const d = document.getElementById('view').dataset;
  return [performance.now() - t, Number(d.gpuBytes || 0), d.gpuTextures || ''];
}"""

#: texSubImage3D of the loaded series' own bytes into a new texture of its
#: format: ms of one call for the whole volume and of ~16 MB calls, per repeat.
_FLOOR_JS = r"""async (repeats) => {
  const V = window.POCKETPACS_TEST_HOOK.viewer;
  const gl = V.gl;
  const { formatOf, unpackAlignment, zeroFill } = await import('/js/gl/textures.js');
  const h = V.vol.header, data = V.vol.data;
  const [nz, ny, nx] = h.shape;
  const n = nx * ny * (h.samples || 1);
  const fmt = formatOf(gl, h.dtype);
  const px = new Uint8Array(4);
  const sync = () => { gl.finish(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); };
  const chunked = Math.max(1, Math.floor((16 << 20) / (n * data.BYTES_PER_ELEMENT)));
  const align = unpackAlignment(nx * (h.samples || 1) * data.BYTES_PER_ELEMENT);
  const out = { whole: [], chunked: [], zeroed: [], reused: [], bytes: data.byteLength, chunk_slices: chunked };
  for (let r = 0; r < repeats; r++) {
    for (const [key, per] of [['whole', nz], ['chunked', chunked], ['zeroed', chunked], ['reused', chunked]]) {
      while (gl.getError() !== gl.NO_ERROR) { /* drain */ }
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_3D, tex);
      gl.texStorage3D(gl.TEXTURE_3D, 1, fmt[0], nx, ny, nz);
      if (gl.getError() !== gl.NO_ERROR) { gl.deleteTexture(tex); return { error: 'out of GPU memory for a second texture' }; }
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, align);
      if (key === 'reused') {
        // a texture that held a series already (the page reuses it for the next one
        // of its size): its memory is the GPU process's already, untimed
        gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, 0, nx, ny, nz, fmt[1], fmt[2], data, 0);
      }
      sync();
      const t = performance.now();
      if (key === 'zeroed' || key === 'reused') {
        // the page's way (gl/textures.js zeroFill): zeros copied from a pixel-unpack
        // buffer over the whole texture first, so no upload makes the browser clear it
        zeroFill(gl, fmt[0], [nx, ny, nz], data.BYTES_PER_ELEMENT * (h.samples || 1));
        gl.pixelStorei(gl.UNPACK_ALIGNMENT, align);
      }
      for (let z = 0; z < nz; z += per) {
        gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, z, nx, ny, Math.min(per, nz - z), fmt[1], fmt[2], data, z * n);
      }
      sync();
      out[key].push(performance.now() - t);
      const err = gl.getError();
      gl.deleteTexture(tex);
      if (err !== gl.NO_ERROR) return { error: `GL error ${err} while uploading` };
    }
  }
  return out;
}"""


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


#: Seconds between two looks at the page while waiting.  The times measured are
#: the page's own marks (performance.now() in the page), so this only says when
#: to read them: every look is a round trip through the browser, and at 5 ms they
#: took a third of a core (measured) from the stream being timed.
POLL_S = 0.05


#: The page's error banner while it is shown (its text), else '': a failed open
#: shows it and never sets the mark awaited.
_BANNER_JS = ("(() => { const b = document.getElementById('error-banner');"
              " return b && !b.hidden ? (document.getElementById('error-text').textContent"
              " || 'an error without a message') : ''; })()")

#: What the page was doing when a wait ended without its mark (for the message).
_STATE_JS = r"""() => {
  const d = document.getElementById('view').dataset;
  return ['vid', 'streamIn', 'ready', 'slices', 'tFirst', 'tStreamed', 'tUploaded', 'tLoaded']
    .map((k) => `${k}=${d[k] === undefined ? '-' : d[k]}`).join(' ');
}"""


class PageFailed(RuntimeError):
    """The page showed an error (its banner) instead of the mark awaited."""


def watch(page) -> list[str]:
    """Collect the page's uncaught errors, failed requests and console errors (for messages)."""
    seen: list[str] = []
    page.on("pageerror", lambda e: seen.append(f"uncaught: {e}"))
    page.on("console", lambda m: seen.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("requestfailed", lambda r: seen.append(f"request failed: {r.url.split('?')[0]} {r.failure}"))
    page.on("crash", lambda *_: seen.append("the page crashed"))
    PAGE_LOG[page] = seen
    return seen


#: The errors seen per page (watch()), for the messages of poll().
PAGE_LOG: dict = {}


def poll(page, expr: str, timeout: float = 600.0, proc: subprocess.Popen | None = None):
    """Wait for a JS expression to be truthy; return it.

    Raises PageFailed with the page's message as soon as the page shows its
    error banner (a failed open), and TimeoutError after `timeout` s or when
    the server `proc` has exited, saying what the page had done and the
    errors it gave (watch())."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v, banner = page.evaluate(f"[({expr}), {_BANNER_JS}]")
        if v:
            return v
        if banner:
            raise PageFailed(f"the page said {banner!r} while waiting for {expr} "
                             f"({page.evaluate(_STATE_JS)}){_log(page)}")
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(POLL_S)
    why = f"the server exited ({proc.returncode})" if proc is not None and proc.poll() is not None \
        else f"no answer in {timeout:.0f} s"
    raise TimeoutError(f"{why} while waiting for {expr} ({page.evaluate(_STATE_JS)}){_log(page)}")


def _log(page) -> str:
    seen = PAGE_LOG.get(page) or []
    return ("; the page's errors: " + " | ".join(seen[-8:])) if seen else ""


def start_to_list(browser, archive: Path, cache: str) -> tuple[float, subprocess.Popen, object]:
    proc, url, t0 = launch(archive, cache)
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    watch(page)
    page.add_init_script(INIT_SCRIPT)
    page.goto(url)
    t_list = poll(page, "document.body.dataset.tArchive && "
                        "(performance.timeOrigin + Number(document.body.dataset.tArchive)) / 1000", proc=proc)
    SERVER[page] = proc
    return float(t_list) - t0, proc, page


#: The server process of each page (start_to_list), for poll's messages.
SERVER: dict = {}


def open_series(page) -> tuple[float, float]:
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.evaluate("document.getElementById('error-banner').hidden = true")
    page.evaluate("document.getElementById('btn-archive').click()")
    cpu0, load0 = cpu_seconds(), os.getloadavg()[0]
    page.locator("#series-table tbody tr.series").first.dblclick()
    proc = SERVER.get(page)
    poll(page, "document.getElementById('view').dataset.tFirst", proc=proc)
    poll(page, "document.getElementById('view').dataset.tLoaded", proc=proc)
    CPU.append(f"{cpu_text(cpu0, cpu_seconds())}, load {load0:.1f}")
    busy, gpu_bytes, gpu_textures = page.evaluate(_SYNC_JS)
    d = page.evaluate("Object.assign({}, document.getElementById('view').dataset)")
    t_open = float(d["tOpen"])
    steps = [(k, float(d[k]) - t_open) for k in ("tReply", "tCall", "tHeader", "tSlice", "tFirst") if d.get(k)]
    STEPS.append(steps)
    GPU.append((gpu_bytes, gpu_textures))
    STREAM.append((float(d.get("tUploaded") or d["tLoaded"]) - t_open,
                   float(d["tStreamed"]) - t_open if d.get("tStreamed") else None, busy))
    return float(d["tFirst"]) - t_open, float(d["tLoaded"]) - t_open


def upload_floor(page, repeats: int) -> tuple[list[float], str]:
    """MB/s of texSubImage3D of the loaded series' bytes alone, per repeat (the
    fastest of one call, ~16 MB calls, ~16 MB calls into a zero-filled
    texture, and the same into a texture that held the series before: the
    page's way for the next series of a size), and what was measured; raises
    RuntimeError with the reason when the page could not measure it."""
    r = page.evaluate(_FLOOR_JS, repeats)
    if "error" in r:
        raise RuntimeError(r["error"])
    mb = r["bytes"] / 1e6
    out = [mb / min(ms) * 1000 for ms in zip(r["whole"], r["chunked"], r["zeroed"], r["reused"]) if min(ms) > 0]
    how = (f"one call {mb / statistics.median(r['whole']) * 1000:.0f} MB/s, "
           f"{r['chunk_slices']}-slice calls {mb / statistics.median(r['chunked']) * 1000:.0f} MB/s, "
           f"zero-filled first then {r['chunk_slices']}-slice calls {mb / statistics.median(r['zeroed']) * 1000:.0f} MB/s, "
           f"the same into a texture used before {mb / statistics.median(r['reused']) * 1000:.0f} MB/s")
    return out, how


def settle(cache: str, timeout: float = 300.0) -> float:
    """Fill the kernel cache `cache` with the histogram kernels and wait until no
    background compile for it runs; seconds taken.

    A server whose kernel cache lacks them counts with the NumPy references and
    starts ``python -m pocketpacs.images.windowkernels`` (a detached process, once
    per process) to compile them: with this benchmark's fresh cache, the cold
    server's, which outlives it, and the warm server's, which started at the
    second or third open.  Measured without this, they took 0.5-4 CPU seconds
    from each timed open (2 cores).  The compile is run here to its end first
    (the warm server then finds the kernels), and every such process of this
    cache waited for (Linux; elsewhere the compile only)."""
    t = time.monotonic()
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    subprocess.run([sys.executable, "-m", "pocketpacs.images.windowkernels"], env=env, timeout=timeout,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    mark = f"NUMBA_CACHE_DIR={cache}".encode()
    while time.monotonic() - t < timeout:
        busy = False
        for d in Path("/proc").glob("[0-9]*"):
            try:
                if b"pocketpacs.images.windowkernels" in (d / "cmdline").read_bytes() \
                        and mark in (d / "environ").read_bytes().split(b"\0"):
                    busy = True
                    break
            except OSError:
                continue
        if not busy:
            break
        time.sleep(0.5)
    return time.monotonic() - t


#: Per open: CPU seconds of each kind of process from the click to the load (cpu_seconds).
CPU: list[str] = []

#: Per open: (marker, ms after the click): open_series answered (tReply),
#: viewer switched to (tCall),
#: header received (tHeader), first slice's data received (tSlice), drawn (tFirst).
STEPS: list[list[tuple[str, float]]] = []
#: Per open: (bytes of the volume textures alive after the load, their list).
GPU: list[tuple[int, str]] = []
#: Per open: ms to the last slice handed to the GPU, to the last byte in, GPU busy after the load.
STREAM: list[tuple[float, float | None, float]] = []


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
        waited = settle(cache)
        warm, proc, page = start_to_list(browser, archive, cache)
        try:
            first, whole = open_series(page)           # first open of a fresh process
            firsts, wholes, streams = [], [], []
            for _ in range(a.repeats):
                f, w = open_series(page)
                firsts.append(f)
                wholes.append(w)
                streams.append(STREAM[-1])
            try:
                floors, how = upload_floor(page, a.repeats)
            except RuntimeError as e:
                floors, how = [], f"not measured: {e}"
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
    print(f"    (before the warm start: {waited:.1f} s to fill the kernel cache and end its background compiles)")
    print(f"click -> first slice, median of {a.repeats}      : {fm:7.1f} ms   "
          f"(target {FIRST_SLICE_TARGET_MS:.0f} ms: {fm / FIRST_SLICE_TARGET_MS:.2f}x of target)")
    for i in range(2, len(STEPS)):
        print(f"    repeat open {i - 1}: {_steps(i)} ms")
    for i in range(len(STREAM)):
        u, arrived, busy = STREAM[i]
        print(f"    open {i}: last slice on the GPU {u:.0f} ms ({mb / u * 1000:.0f} MB/s), "
              f"last byte in {arrived or 0:.0f} ms; {CPU[i]}")
    print(f"click -> whole series, first open       : {whole:7.1f} ms   ({mb / whole * 1000:.0f} MB/s)")
    print(f"click -> whole series, median of {a.repeats}     : {wm:7.1f} ms   ({mb / wm * 1000:.0f} MB/s)")
    um = statistics.median([u for u, _, _ in streams])
    print(f"click -> last slice on the GPU, median  : {um:7.1f} ms   ({mb / um * 1000:.0f} MB/s; last byte in "
          f"{statistics.median([x or 0 for _, x, _ in streams]):.0f} ms, GPU busy after "
          f"{statistics.median([b for _, _, b in streams]):.0f} ms)")
    if floors:
        fl = statistics.median(floors)
        print(f"texture upload floor, median of {a.repeats}      : {fl:7.0f} MB/s ({how})")
        print(f"whole-series stream / upload floor      : {mb / um * 1000 / fl:7.2f}x  (target {STREAM_TARGET_RATIO}x)")
    else:
        print(f"texture upload floor                    : {how}")
    print(f"GPU bytes after the load                : {GPU[-1][0]} ({GPU[-1][1]})")
    return 0


# ---- the suite's interface (pocketpacs bench ui) ----------------------------------------------

NAME = "ui"


def run(ctx) -> list:
    """App start to archive list (numba cache cold and warm); click to first slice and to the whole series."""
    from pocketpacs.benchmarks.bench_render import browser_missing
    from pocketpacs.benchmarks.results import add_ratio, from_samples, skipped

    slices, size = ctx.pick((50, 128), (1000, 512))
    repeats = ctx.reps(2, 3)
    starts = ctx.pick(2, 3)
    mb = slices * size * size * 2 / 1e6
    series = f"{slices} x {size}x{size} series ({mb:.0f} MB), headless Chromium"
    start_what = "app start -> archive list"
    reason = browser_missing()
    if reason:
        return [skipped(start_what, "numba cache warm", "s", reason, higher_is_better=False),
                skipped(f"click -> first slice, {series}", "later opens", "ms", reason, higher_is_better=False),
                skipped(f"whole-series stream onto the GPU, {series}", "click -> last slice on the GPU (later opens)", "MB/s",
                        reason, target=f">= {STREAM_TARGET_RATIO}x upload floor"),
                skipped(f"whole-series stream onto the GPU, {series}",
                        "upload floor: texSubImage3D of the series' bytes alone in the page", "MB/s", reason)]
    data = ctx.cached("ui", {"slices": slices, "size": size}, lambda d: prepare(d, slices, size),
                      sources=[prepare])
    archive = data / "archive"
    from playwright.sync_api import sync_playwright

    STEPS.clear()
    GPU.clear()
    STREAM.clear()
    CPU.clear()
    warm_s, first, firsts, wholes, streams = [], [], [], [], []
    floors, floor_why, how = [], "", ""
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
            settle(cache)
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
                            streams.append(STREAM[-1])
                        try:
                            floors, how = upload_floor(page, repeats)
                        except RuntimeError as e:
                            floor_why = str(e)
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
                        extra={"MB/s": mb / statistics.median(wholes) * 1000,
                               "GPU bytes": GPU[-1][0], "GPU textures": GPU[-1][1]}, **lo)]
    stream_what = f"whole-series stream onto the GPU, {series}"
    arrived = [a for _, a, _ in streams if a]
    stream = from_samples(stream_what, "click -> last slice on the GPU (later opens)", "MB/s",
                          [mb / u * 1000 for u, _, _ in streams if u > 0], headline=True,
                          target=f">= {STREAM_TARGET_RATIO}x upload floor",
                          extra={"ms": statistics.median([u for u, _, _ in streams]),
                                 **({"last byte in ms": statistics.median(arrived)} if arrived else {}),
                                 "GPU busy after ms": statistics.median([b for _, _, b in streams]),
                                 **({"CPU of the last open": CPU[-1]} if CPU else {})})
    floor_method = "upload floor: texSubImage3D of the series' bytes alone in the page"
    if floors:
        floor = from_samples(stream_what, floor_method, "MB/s", floors, extra={"calls": how})
        add_ratio(stream, floor, "upload floor")
        stream.met = stream.ratios.get("upload floor", 0.0) >= STREAM_TARGET_RATIO
    else:
        floor = skipped(stream_what, floor_method, "MB/s", floor_why or "the page measured nothing")
    out += [stream, floor]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
