"""Render benchmark: 3D raycasting and MPR scrolling in headless Chromium.

For each ``--size`` N an axial CT phantom of N x N x N voxels is generated
(:mod:`pocketpacs.synth`), imported, served by ``python -m pocketpacs.ui
serve`` and opened in Chromium; then, with every frame forced to completion
(``gl.readPixels`` of one pixel):

* **3D still / 3D interactive**: volume rendering (CT bone, shading on) of
  the whole canvas while the camera turns, at full and at interaction quality;
* **3D MIP**: maximum intensity projection, still quality;
* **MPR scroll**: the coronal reformat (through the volume's affine) stepping
  one voxel per frame;
* **2D scroll**: the acquired axial slices, one per frame;
* **reference**: a trivial full-canvas shader pass of the same size
  (``shaders/flat.frag.glsl``).

Frames per second are printed for each.  On a software rasteriser
(SwiftShader, the default here) absolute rates say little, so each is also
given as a ratio to the reference pass (``frame time / reference time``);
on a real GPU pass ``--gpu`` to let Chromium use it and read the absolute
rates.

Usage::

    python benchmarks/bench_render.py                     # 256^3 and 512^3
    python benchmarks/bench_render.py --size 256 --json   # one size, JSON on stdout
    python benchmarks/bench_render.py --size 64 --frames 5 --canvas 256   # quick

The data are generated once under ``--data`` (default ``bench-data/render-<N>``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
SWIFTSHADER = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]
GPU = ["--no-sandbox", "--ignore-gpu-blocklist", "--enable-gpu", "--use-angle=default"]

_MEASURE_JS = r"""
async ([frames, mode]) => {
  const V = window.POCKETPACS_TEST_HOOK.viewer;
  const gl = V.gl;
  const px = new Uint8Array(4);
  const sync = () => gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  const { orbit } = await import('/js/mpr.js');
  const run = (step) => { step(0); sync(); const t = performance.now();
    for (let i = 1; i <= frames; i++) { step(i); sync(); } return (performance.now() - t) / frames; };
  const vp = () => V.vps[0];
  if (mode === 'reference') {
    const { link } = await import('/js/gl/program.js');
    const { source } = await import('/js/gl/shaders.js');
    const p = link(gl, await source('fullscreen.vert.glsl'), await source('flat.frag.glsl'), ['fullscreen.vert.glsl', 'flat.frag.glsl']);
    const vao = gl.createVertexArray();
    return run((i) => {
      gl.viewport(0, 0, gl.canvas.width, gl.canvas.height);
      gl.useProgram(p.program); gl.uniform4f(p.u.uColor, (i % 7) / 7, 0.2, 0.3, 1);
      if (p.u.uCanvasSize) gl.uniform2f(p.u.uCanvasSize, gl.canvas.width, gl.canvas.height);
      gl.bindVertexArray(vao); gl.drawArrays(gl.TRIANGLES, 0, 3);
    });
  }
  if (mode.startsWith('3d')) {
    V.setLayout('1', '3d'); V.render();
    V.r3.mode = mode === '3d-mip' ? 'mip' : 'dvr';
    V.interacting = mode === '3d-interactive';
    const ms = run(() => { V.ray.cam.R = orbit(V.ray.cam.R, 0.05, 0.0); V.dirty3d = true; V.render(); });
    V.interacting = false;
    return ms;
  }
  if (mode === 'mpr') {
    V.setLayout('1', 'coronal'); V.render();
    let dir = 1;
    return run(() => { const before = V.crossPt[1]; V.scroll(dir, 'coronal'); if (V.crossPt[1] === before) { dir = -dir; V.scroll(dir, 'coronal'); } V.render(); });
  }
  V.setLayout('1', 'native'); V.render();
  const nz = V.vol.header.shape[0];
  return run((i) => { V.s.slice = (V.s.slice + 1) % nz; V.render(); });
}
"""


def prepare(data: Path, n: int) -> Path:
    """Generate an n^3 axial CT phantom and import it (once)."""
    import pocketpacs
    from pocketpacs import synth

    archive = data / "archive"
    if (data / "ready").exists():
        return archive
    t = time.perf_counter()
    print(f"generating {n} x {n}x{n} ...", file=sys.stderr, flush=True)
    synth.generate(data / "files", patients=1, studies=1, series=1, slices=n, rows=n, cols=n,
                   compressed_fraction=0.0, implicit_fraction=0.0, enhanced=0, junk=0, seed=5,
                   workers=max(1, min(4, os.cpu_count() or 1)))
    with pocketpacs.open_archive(archive) as ar:
        ar.import_folder(data / "files")
    (data / "ready").write_text("ok\n")
    print(f"prepared in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return archive


def serve(archive: Path) -> tuple[subprocess.Popen, str]:
    """Start ``serve`` and return the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "pocketpacs.ui", "--archive", str(archive), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    end = time.monotonic() + 120
    while time.monotonic() < end:
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]+)", line or "")
        if m:
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("serve did not start")


def wait_js(page, expr: str, timeout: float) -> None:
    """Poll a JS expression until truthy (the page's CSP forbids wait_for_function's eval)."""
    end = time.monotonic() + timeout
    while not page.evaluate(expr):
        if time.monotonic() > end:
            raise TimeoutError(expr)
        time.sleep(0.05)


def measure(url: str, frames: int, canvas: int, gpu: bool, repeats: int = 1) -> dict:
    """Open the series and time each kind of frame; returns the results of one size.

    Each kind is timed *repeats* times (``frames`` frames each, kinds in turn);
    the figures are the medians, ``samples`` keeps every run's ms per frame.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=GPU if gpu else SWIFTSHADER)
        pg = b.new_page(viewport={"width": max(canvas, 1000), "height": canvas + 260})
        pg.add_init_script("window.POCKETPACS_TEST_LIMITS = {};")
        pg.goto(url)
        wait_js(pg, "document.body.dataset.ready === '1'", 120)
        renderer = pg.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl2');
            const e = gl.getExtension('WEBGL_debug_renderer_info');
            return e ? gl.getParameter(e.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); }""")
        t0 = time.perf_counter()
        pg.locator("#series-table tbody tr.series").first.dblclick()
        wait_js(pg, "document.getElementById('view').dataset.tLoaded", 600)
        load_s = time.perf_counter() - t0
        # a canvas of the requested size, whatever the toolbars take
        pg.evaluate("""(n) => { const s = document.getElementById('stage');
            Object.assign(s.style, { flex: '0 0 auto', width: n + 'px', height: n + 'px' }); }""", canvas)
        pg.wait_for_timeout(300)
        d = pg.evaluate("Object.assign({}, document.getElementById('view').dataset)")
        out = {"renderer": renderer, "load_s": round(load_s, 2), "texture_3d": d.get("tex3d"),
               "notice": d.get("notice3d", "")}
        modes = ("reference", "2d", "mpr", "3d-mip", "3d-interactive", "3d-still")
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(repeats):
            for mode in modes:
                samples[mode].append(pg.evaluate(_MEASURE_JS, [frames, mode]))
        ms = {m: statistics.median(v) for m, v in samples.items()}
        out["samples"] = samples
        out["canvas"] = pg.evaluate("[document.getElementById('view').width, document.getElementById('view').height]")
        b.close()
    ref = ms["reference"]
    out["fps"] = {k: round(1000.0 / v, 2) if v > 0 else None for k, v in ms.items()}
    out["ms_per_frame"] = {k: round(v, 3) for k, v in ms.items()}
    out["ratio_to_reference"] = {k: round(v / ref, 2) if ref > 0 else None for k, v in ms.items() if k != "reference"}
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, action="append", help="volume edge N (N^3 voxels); repeatable "
                    "(default: 256 and 512)")
    ap.add_argument("--frames", type=int, default=10, help="frames timed per measurement")
    ap.add_argument("--canvas", type=int, default=512, help="canvas edge in CSS pixels")
    ap.add_argument("--data", default=None, help="folder for generated data (default bench-data/render-N)")
    ap.add_argument("--gpu", action="store_true", help="let Chromium use the GPU instead of SwiftShader")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    a = ap.parse_args(argv)
    results = {}
    for n in a.size or [256, 512]:
        data = Path(a.data or f"bench-data/render-{n}")
        if a.data and len(a.size or []) > 1:
            data = data / str(n)
        archive = prepare(data, n)
        proc, url = serve(archive)
        try:
            results[f"{n}^3"] = r = measure(url, a.frames, a.canvas, a.gpu)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not a.json:
            print(f"{n}^3 on {r['renderer']} canvas {r['canvas'][0]}x{r['canvas'][1]}, "
                  f"loaded in {r['load_s']} s, 3D texture {r['texture_3d']} {r['notice']}")
            for k in r["fps"]:
                ratio = r["ratio_to_reference"].get(k)
                print(f"  {k:15s} {r['fps'][k]:9.2f} fps  {r['ms_per_frame'][k]:9.2f} ms"
                      + (f"  x{ratio} reference" if ratio is not None else ""))
    if a.json:
        print(json.dumps(results, indent=2))
    return 0


# ---- the suite's interface (pocketpacs bench render) ------------------------------------------

NAME = "render"
MODES = {"2d": "2D scroll (acquired slices)", "mpr": "MPR scroll (coronal)", "3d-mip": "3D MIP, still",
         "3d-interactive": "3D DVR, interaction quality", "3d-still": "3D DVR, still quality"}


def browser_missing() -> str | None:
    """None when Chromium and Playwright are there, else the reason to give."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as e:
        return f"playwright not installed ({e}): pip install -e '.[bench]'"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no browser: {CHROMIUM} not found (apt-get install chromium)"
    return None


#: Largest volume edge measured when Chromium has no GPU (SwiftShader).
SOFTWARE_LIMIT = 256


def run(ctx) -> list:
    """3D and MPR frame rates in headless Chromium, as ratios to a trivial full-canvas pass.

    Without ``--gpu`` (not offered here) Chromium draws with SwiftShader, a CPU
    rasteriser: the ratios to the reference pass say more than the rates.
    """
    from pocketpacs.benchmarks.results import add_ratio, from_samples, skipped

    sizes, frames, canvas = ctx.pick(([64], 5, 256), ([256, 512], 10, 512))
    repeats = ctx.reps(3, 3)
    reason = browser_missing()
    out = []
    for n in sizes:
        what = f"{n}^3 CT phantom, canvas {canvas}px, SwiftShader (no GPU)"
        if reason:
            out += [skipped(what, label, "fps", reason) for label in MODES.values()]
            continue
        if out and SOFTWARE_LIMIT < n and "swiftshader" in str(out[0].extra.get("renderer", "")).lower():
            # the CPU rasteriser takes hours for a 512^3 raycast on 2 cores: say so, no figure
            why = (f"no GPU: Chromium renders with SwiftShader (a CPU rasteriser), too slow for {n}^3 "
                   f"(measured up to {SOFTWARE_LIMIT}^3); run on a machine with a GPU")
            out += [skipped(what, label, "fps", why) for label in MODES.values()]
            continue
        data = ctx.cached("render", {"size": n}, lambda d, n=n: prepare(d, n), sources=[prepare])
        proc, url = serve(data / "archive")
        try:
            r = measure(url, frames, canvas, False, repeats)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        soft = "swiftshader" in str(r["renderer"]).lower()
        what = (f"{n}^3 CT phantom, canvas {r['canvas'][0]}x{r['canvas'][1]}, "
                + ("SwiftShader (CPU, no GPU)" if soft else "GPU"))
        ref = from_samples(what, "reference: trivial full-canvas pass", "fps",
                           [1000.0 / v for v in r["samples"]["reference"] if v > 0],
                           extra={"renderer": r["renderer"]})
        out.append(ref)
        for mode, label in MODES.items():
            row = from_samples(what, label, "fps", [1000.0 / v for v in r["samples"][mode] if v > 0],
                               headline=mode in ("mpr", "3d-still"), x=n, x_label="volume edge (voxels)",
                               extra={"load s": r["load_s"]} if mode == "2d" else {})
            add_ratio(row, ref, "reference pass")
            out.append(row)
        ctx.log(f"{n}^3: 3D texture {r['texture_3d']} {r['notice']}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
