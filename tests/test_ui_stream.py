"""The whole-volume stream read by the page's stream worker (issue 16).

The served page is cross-origin isolated (every response carries COOP
same-origin and COEP require-corp), so the viewer's whole-volume array is a
SharedArrayBuffer that ``web/js/stream-worker.js`` fills off the main thread
while the page uploads the slices already whole.  A small int16 series whose
values span the whole int16 range (both extremes, negative values, every
slice different) is served by ``pocketpacs serve`` and opened in headless
Chromium: the page's array must hold exactly the stored values, read by the
worker, and the same through the main-thread reader the page falls back to
(forced here with the test hook ``POCKETPACS_TEST_LIMITS.stream = 'page'``).
api.streamVolume itself is checked for what it reports while streaming, a
body cut short, and an unknown volume.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S
from served_http import req

pytestmark = pytest.mark.slow

NX, NY, NZ = 40, 36, 30


def volume() -> np.ndarray:
    """The stored values (z, y, x): random int16 with both extremes in every slice."""
    rng = np.random.default_rng(16)
    v = rng.integers(-32768, 32768, size=(NZ, NY, NX), dtype=np.int64).astype(np.int16)
    v[:, 0, 0] = -32768
    v[:, 0, 1] = 32767
    v[:, 1, 0] = np.arange(NZ)           # which slice this is, readable at a glance
    return v


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import dicomgen
    import pocketpacs

    root = tmp_path_factory.mktemp("ui_stream")
    vol = volume()
    series = "1.2.826.0.1.3680043.99.16.2"
    (root / "files").mkdir()
    for k in range(NZ):
        ds = dicomgen.dataset(series_uid=series, sop_uid=f"{series}.{k + 1}", study_uid="1.2.826.0.1.3680043.99.17",
                              instance_number=k + 1, z=1.5 * k, rows=NY, cols=NX, series_desc="STREAM",
                              patient_name="Stream^Test", patient_id="STR16")
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0.0
        ds.RescaleSlope = 1.0
        ds.PixelData = vol[k].tobytes()
        (root / "files" / f"IM{k + 1:05d}.dcm").write_bytes(dicomgen.to_bytes(ds))
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive"}


def open_page(browser, url, limits="{}"):
    pg = browser.new_page(viewport={"width": 800, "height": 600})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.add_init_script(f"window.POCKETPACS_TEST_LIMITS = {limits};")
    pg.goto(url)
    S.wait_js(pg, "document.body.dataset.ready")
    return pg, errors


def open_series(page) -> None:
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.locator(S.SERIES_ROWS).first.dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)


_PAGE_ARRAY_JS = """() => {
  const v = window.POCKETPACS_TEST_HOOK.viewer.vol;
  return { shared: typeof SharedArrayBuffer === 'function' && v.data.buffer instanceof SharedArrayBuffer,
           kind: v.data.constructor.name, values: Array.from(v.data), ready: Array.from(v.ready) };
}"""


def test_every_response_makes_the_page_cross_origin_isolated(served):
    r, _ = req(served, "GET", "/?token=" + served.token, token=False)
    assert r.status == 200
    for path in ("/?token=" + served.token, "/js/stream-worker.js", "/js/api.js"):
        r, _ = req(served, "GET", path)
        assert r.status == 200, path
        assert r.getheader("Cross-Origin-Opener-Policy") == "same-origin", path
        assert r.getheader("Cross-Origin-Embedder-Policy") == "require-corp", path
        assert r.getheader("Cross-Origin-Resource-Policy") == "same-origin", path


@pytest.mark.parametrize("path", ["worker", "page"])
def test_the_page_holds_exactly_the_stored_values(browser, served, path):
    limits = "{}" if path == "worker" else "{ stream: 'page' }"
    page, errors = open_page(browser, served.url, limits)
    try:
        assert page.evaluate("self.crossOriginIsolated") is True
        open_series(page)
        assert S.dataset(page)["streamIn"] == path
        got = page.evaluate(_PAGE_ARRAY_JS)
        assert got["shared"] is (path == "worker")
        assert got["kind"] == "Int16Array"
        assert got["ready"] == [1] * NZ
        assert np.array_equal(np.array(got["values"], dtype=np.int16).reshape(NZ, NY, NX), volume())
        assert S.dataset(page)["ready"] == str(NZ)
    finally:
        page.close()
    assert not errors, errors


#: api.streamVolume of volume `vid` into a buffer of the size of volume `sized` (from volumeBuffer).
_STREAM_JS = """async ([vid, sized]) => {
  const api = await import('/js/api.js');
  const h = await (await fetch(`/v1/volume/${sized}/header`, { headers: { 'X-PocketPACS-Token':
    document.querySelector('meta[name="pocketpacs-token"]').content } })).json();
  const buf = api.volumeBuffer(h.shape[0] * h.slice_bytes);
  const seen = [];
  try {
    const header = await api.streamVolume(vid, buf, (n) => seen.push(n));
    return { ok: true, shape: header.shape, seen, shared: buf instanceof SharedArrayBuffer,
             values: Array.from(new Int16Array(buf)) };
  } catch (e) {
    return { ok: false, code: e.code || e.name, message: e.message, seen };
  }
}"""


def test_the_stream_worker_reports_whole_slices_in_order_and_refuses_short_bodies(browser, served):
    page, errors = open_page(browser, served.url)
    try:
        open_series(page)
        vid = S.dataset(page)["vid"]
        r = page.evaluate(_STREAM_JS, [vid, vid])
        assert r["ok"], r
        assert r["shared"] and r["shape"] == [NZ, NY, NX]
        assert r["seen"] == sorted(set(r["seen"])) and r["seen"][-1] == NZ
        assert np.array_equal(np.array(r["values"], dtype=np.int16).reshape(NZ, NY, NX), volume())

        def cut(route):               # the server's real answer, cut in the middle of a slice
            body = route.fetch().body()
            route.fulfill(status=200, headers={"Content-Type": "application/octet-stream"},
                          body=body[:len(body) // 2 + 7])

        page.route("**/v1/volume/*/data", cut)
        r = page.evaluate(_STREAM_JS, [vid, vid])
        page.unroute("**/v1/volume/*/data")
        assert not r["ok"] and r["code"] == "cancelled" and "ended early" in r["message"], r
        assert r["seen"] and max(r["seen"]) < NZ          # only the whole slices were announced

        r = page.evaluate(_STREAM_JS, ["0" * 32, vid])
        assert not r["ok"] and r["code"] == "not_found" and r["seen"] == [], r
    finally:
        page.close()
    assert not errors, errors


_ZERO_FILLED_JS = """async () => {
  const gl = window.POCKETPACS_TEST_HOOK.viewer.gl;
  const { allocate3d, release, uploadSlices, formatOf } = await import('/js/gl/textures.js');
  const out = {};
  const fb = gl.createFramebuffer();
  for (const [dtype, T, ifmt, readFmt, readType, R] of [
      ['int16', Int16Array, gl.R16I, gl.RGBA_INTEGER, gl.INT, Int32Array],
      ['uint16', Uint16Array, gl.R16UI, gl.RGBA_INTEGER, gl.UNSIGNED_INT, Uint32Array]]) {
    const [nx, ny, nz] = [24, 20, 6];
    while (gl.getError() !== gl.NO_ERROR) { /* earlier errors */ }
    const tex = allocate3d(gl, ifmt, [nx, ny, nz], 'test');
    const data = new T(nx * ny * nz);
    for (let i = 2 * nx * ny; i < 3 * nx * ny; i++) data[i] = 1000 + (i % 777);   // slice 2 only
    uploadSlices(gl, { tex, nx, ny, samples: 1, fmt: formatOf(gl, dtype) }, data, 2, 3);
    const layers = [];
    gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
    for (let z = 0; z < nz; z++) {
      gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, tex, 0, z);
      const px = new R(nx * ny * 4);
      gl.readPixels(0, 0, nx, ny, readFmt, readType, px);
      const red = Array.from({ length: nx * ny }, (_, i) => px[4 * i]);
      const want = Array.from(data.subarray(z * nx * ny, (z + 1) * nx * ny));
      layers.push(red.every((v, i) => v === want[i]));
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    out[dtype] = { layers, error: gl.getError() };
    release(gl, tex);
  }
  gl.deleteFramebuffer(fb);
  return out;
}"""


def test_a_new_series_texture_holds_zeros_until_its_slices_come(browser, served):
    """gl/textures.js zero-fills every new volume texture from a pixel-unpack buffer (the
    browser's own clear is slow on SwiftShader): every layer reads back zeros but the one
    uploaded, which reads back its values."""
    page, errors = open_page(browser, served.url)
    try:
        got = page.evaluate(_ZERO_FILLED_JS)
        for dtype in ("int16", "uint16"):
            assert got[dtype] == {"layers": [True] * 6, "error": 0}, (dtype, got)
    finally:
        page.close()
    assert not errors, errors


def test_the_ui_benchmark_says_the_pages_error_instead_of_waiting(browser, served):
    """A failed open shows the page's error banner and never sets the mark the benchmark
    awaits: benchmarks/bench_ui.py stops at once and says the page's message (it used to
    poll for 600 s and report a time-out)."""
    from pocketpacs.benchmarks import bench_ui

    page = browser.new_page(viewport={"width": 800, "height": 600})
    bench_ui.watch(page)
    page.add_init_script(bench_ui.INIT_SCRIPT)
    try:
        page.goto(served.url)
        S.wait_js(page, "document.body.dataset.ready")

        def cut(route):               # the server's real answer, cut in the middle of a slice
            body = route.fetch().body()
            route.fulfill(status=200, headers={"Content-Type": "application/octet-stream"},
                          body=body[:len(body) // 2 + 7])

        page.route("**/v1/volume/*/data", cut)
        with pytest.raises(bench_ui.PageFailed, match="ended early") as failed:
            bench_ui.open_series(page)
        assert "tLoaded" in str(failed.value)
    finally:
        page.close()


def test_a_stream_worker_that_cannot_start_leaves_the_stream_to_the_page(browser, served):
    """The worker's script does not load: the stream is read on the page's thread
    (data-stream-in says so) into the same shared array, exactly, instead of waiting
    for a worker that never answers."""
    page, errors = open_page(browser, served.url)
    try:
        page.route("**/js/stream-worker.js", lambda route: route.fulfill(status=404, body="gone"))
        open_series(page)
        assert S.dataset(page)["streamIn"] == "page"
        got = page.evaluate(_PAGE_ARRAY_JS)
        assert got["shared"] is True and got["ready"] == [1] * NZ
        assert np.array_equal(np.array(got["values"], dtype=np.int16).reshape(NZ, NY, NX), volume())
    finally:
        page.close()
    assert not errors, errors


_REFILLED_JS = """async () => {
  const gl = window.POCKETPACS_TEST_HOOK.viewer.gl;
  const { allocate3d, release, uploadSlices, formatOf, zeroFill } = await import('/js/gl/textures.js');
  const [nx, ny, nz] = [24, 20, 7];
  const tex = allocate3d(gl, gl.R16I, [nx, ny, nz], 'test');
  const vt = { tex, nx, ny, samples: 1, fmt: formatOf(gl, 'int16') };
  const old = new Int16Array(nx * ny * nz).map((_, i) => (i % 5000) - 2500 || 7);
  uploadSlices(gl, vt, old, 0, nz);                 // the last series' values, every layer
  zeroFill(gl, gl.R16I, [nx, ny, nz], 2, 2 * nx * ny * 3 + 5);   // 3 layers per copy: 3 + 3 + 1
  const fb = gl.createFramebuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  const zero = [];
  for (let z = 0; z < nz; z++) {
    gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, tex, 0, z);
    const px = new Int32Array(nx * ny * 4);
    gl.readPixels(0, 0, nx, ny, gl.RGBA_INTEGER, gl.INT, px);
    zero.push(px.filter((_, i) => i % 4 === 0).every((v) => v === 0));
  }
  gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  gl.deleteFramebuffer(fb);
  const error = gl.getError();
  release(gl, tex);
  return { zero, error };
}"""


def test_zero_fill_in_runs_of_layers_clears_every_layer_of_a_used_texture(browser, served):
    """zeroFill copies one small zeroed buffer down the texture a few layers at a time:
    a texture holding another series' values in every layer reads back zeros in every
    layer, the last short run included (what a reused series texture relies on)."""
    page, errors = open_page(browser, served.url)
    try:
        assert page.evaluate(_REFILLED_JS) == {"zero": [True] * 7, "error": 0}
    finally:
        page.close()
    assert not errors, errors


#: Every layer of the viewer's series texture, read back: [values of layer z, ...] (int16 as int).
_TEXTURE_LAYERS_JS = """() => {
  const V = window.POCKETPACS_TEST_HOOK.viewer, gl = V.gl, vt = V.view.vt;
  const fb = gl.createFramebuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
  const layers = [];
  for (let z = 0; z < vt.layers; z++) {
    gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, vt.tex, 0, z);
    const px = new Int32Array(vt.nx * vt.ny * 4);
    gl.readPixels(0, 0, vt.nx, vt.ny, gl.RGBA_INTEGER, gl.INT, px);
    layers.push(Array.from(px.filter((_, i) => i % 4 === 0)));
  }
  gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  gl.deleteFramebuffer(fb);
  return layers;
}"""


def test_a_series_of_the_same_size_reuses_the_texture_and_never_shows_the_last_ones_values(browser, served):
    """The next series of the same size and type is uploaded into the last one's texture
    (kept aside by the open, not made anew), which is zero-filled first: while its stream
    is held, every layer but the first slice shown reads back 0 (none of the last
    series' values), and once loaded every layer holds exactly the stored values; the
    GPU holds that one texture."""
    page, errors = open_page(browser, served.url)
    held = []
    try:
        open_series(page)
        page.evaluate("window.__lastTexture = window.POCKETPACS_TEST_HOOK.viewer.view.vt.tex")
        assert np.array_equal(np.array(page.evaluate(_TEXTURE_LAYERS_JS)).reshape(NZ, NY, NX), volume())

        page.route("**/v1/volume/*/data", lambda route: held.append(route))
        page.evaluate("document.getElementById('btn-archive').click()")
        page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
        page.locator(S.SERIES_ROWS).first.dblclick()
        S.wait_js(page, "document.getElementById('view').dataset.tex3d")   # the series texture is set
        S.wait_js(page, "document.getElementById('view').dataset.streamIn")
        assert page.evaluate("window.POCKETPACS_TEST_HOOK.viewer.view.vt.tex === window.__lastTexture")
        mid = NZ // 2
        layers = np.array(page.evaluate(_TEXTURE_LAYERS_JS)).reshape(NZ, NY, NX)
        assert np.array_equal(layers[mid], volume()[mid])             # the first slice, drawn
        others = np.delete(layers, mid, axis=0)
        assert not others.any(), "a layer not yet streamed holds values of the last series"
        assert S.dataset(page)["tLoaded"] == ""

        assert len(held) == 1
        held[0].continue_()                                           # the stream goes on
        page.unroute("**/v1/volume/*/data")
        S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
        assert np.array_equal(np.array(page.evaluate(_TEXTURE_LAYERS_JS)).reshape(NZ, NY, NX), volume())
        d = S.dataset(page)
        assert d["gpuTextures"] == f"{NX}x{NY}x{NZ} R16I series" and d["gpuBytes"] == str(NX * NY * NZ * 2)
    finally:
        page.close()
    assert not errors, errors


_BUFFER_JS = """() => {
  const v = window.POCKETPACS_TEST_HOOK.viewer.vol;
  return { same: v.data.buffer === window.__lastBuffer, values: Array.from(v.data) };
}"""


def reopen_stream_held(page, held: list) -> None:
    """Note the viewer's whole-volume buffer (window.__lastBuffer), then open the first
    series again with its stream held (its route appended to `held`) until the page
    has asked for it."""
    page.evaluate("window.__lastBuffer = window.POCKETPACS_TEST_HOOK.viewer.vol.data.buffer")
    page.route("**/v1/volume/*/data", lambda route: held.append(route))
    page.evaluate("document.getElementById('btn-archive').click()")
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.locator(S.SERIES_ROWS).first.dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.streamIn")


@pytest.mark.parametrize("path", ["worker", "page"])
def test_a_series_of_the_same_size_reuses_the_buffer_zeroed(browser, served, path):
    """The next series of the same size streams into the last one's whole-volume buffer
    (no new memory to fault in), zeroed first: while its stream is held the array holds
    the first slice shown and zeros elsewhere (none of the last series' values); once
    loaded, exactly the stored values."""
    page, errors = open_page(browser, served.url, "{}" if path == "worker" else "{ stream: 'page' }")
    held = []
    try:
        open_series(page)
        reopen_stream_held(page, held)
        assert S.dataset(page)["streamIn"] == path
        got = page.evaluate(_BUFFER_JS)
        assert got["same"], "the last series' buffer was not reused"
        arr = np.array(got["values"], dtype=np.int16).reshape(NZ, NY, NX)
        mid = NZ // 2
        assert np.array_equal(arr[mid], volume()[mid])
        assert not np.delete(arr, mid, axis=0).any(), "the buffer holds values of the last series"

        assert len(held) == 1
        held[0].continue_()
        page.unroute("**/v1/volume/*/data")
        S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
        got = page.evaluate(_BUFFER_JS)
        assert got["same"]
        assert np.array_equal(np.array(got["values"], dtype=np.int16).reshape(NZ, NY, NX), volume())
    finally:
        page.close()
    assert not errors, errors


def test_a_buffer_shown_in_compare_is_never_reused(browser, served):
    """A Compare viewport that adopted the viewer's volume keeps showing it after the
    viewer opens another series of the same size: that buffer is not zeroed and reused."""
    page, errors = open_page(browser, served.url)
    held = []
    try:
        open_series(page)
        page.evaluate("window.POCKETPACS_TEST_HOOK.viewer.compare.setOn(true)")
        S.wait_js(page, "(() => { const v = window.POCKETPACS_TEST_HOOK.viewer, p = v.compare.panes[0];"
                        " return !!(p.vol && p.vol.data === v.vol.data); })()")
        page.evaluate("window.POCKETPACS_TEST_HOOK.viewer.compare.setOn(false)")
        reopen_stream_held(page, held)
        assert page.evaluate(_BUFFER_JS)["same"] is False
        pane = page.evaluate("Array.from(window.POCKETPACS_TEST_HOOK.viewer.compare.panes[0].vol.data)")
        assert np.array_equal(np.array(pane, dtype=np.int16).reshape(NZ, NY, NX), volume())
        for r in held:
            r.continue_()
        page.unroute("**/v1/volume/*/data")
        S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
    finally:
        page.close()
    assert not errors, errors
