"""The series is on the GPU once, and MPR / 3D show its exact values (issue 16).

A small int16 CT series written with pydicom holds two 3x3x3 blocks of
values that half-float (R16F, the former MPR/3D texture) cannot represent:
stored 3073 (real 2049 with intercept -1024; R16F rounds both to a
multiple of 2) and stored -1 (real -1025; R16F gives -1024).  Served by
``pocketpacs serve`` and opened in headless Chromium (WebGL2 on
SwiftShader), the tests check that after the 2D, MPR and 3D views have
drawn only one volume texture of the series' size is alive (the count of
gl/textures.js), that the probe in an MPR viewport reads the stored value,
and that the MPR and 3D MIP pixels follow a one-unit-wide window around the
exact values (a rounded value would draw black or white instead of mid-grey).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

NX, NY, NZ = 32, 28, 24
INTERCEPT = -1024.0
HIGH = (12, 14, 10)        # (x, y, z) centre of the stored-3073 block: real 2049
LOW = (22, 8, 10)          # centre of the stored-(-1) block: real -1025
VIEWPORT = {"width": 900, "height": 640}


def volume() -> np.ndarray:
    """The stored values (z, y, x): a soft ramp and the two blocks."""
    z, y, x = np.mgrid[0:NZ, 0:NY, 0:NX]
    v = (1000 + x + 2 * y + 3 * z).astype(np.int16)          # real -24 .. 121
    for (cx, cy, cz), val in ((HIGH, 3073), (LOW, -1)):
        v[cz - 1:cz + 2, cy - 1:cy + 2, cx - 1:cx + 2] = val
    return v


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import dicomgen
    import pocketpacs

    root = tmp_path_factory.mktemp("ui_texture")
    vol = volume()
    series = "1.2.826.0.1.3680043.99.16.1"
    for k in range(NZ):
        ds = dicomgen.dataset(series_uid=series, sop_uid=f"{series}.{k + 1}", study_uid="1.2.826.0.1.3680043.99.16",
                              instance_number=k + 1, z=2.0 * k, rows=NY, cols=NX, series_desc="EXACT",
                              patient_name="Texture^Test", patient_id="TEX16")
        ds.PixelSpacing = [2.0, 2.0]
        ds.SliceThickness = 2.0
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = INTERCEPT
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.PixelData = vol[k].tobytes()
        (root / "files").mkdir(exist_ok=True)
        (root / "files" / f"IM{k + 1:05d}.dcm").write_bytes(dicomgen.to_bytes(ds))
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive"}


@pytest.fixture
def page(browser, served):
    pg = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.add_init_script("window.POCKETPACS_TEST_LIMITS = {};")      # the test hook, default limits
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    yield pg
    pg.close()
    assert not errors, errors


def open_series(page) -> dict:
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.locator("#series-table tbody tr.series").first.dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
    header = S.fetch_header(page, S.dataset(page)["vid"])
    assert header["shape"] == [NZ, NY, NX] and header["dtype"] == "int16", header
    return header


def set_layout(page, layout, single=None):
    page.select_option("#layout", layout)
    if single:
        page.select_option("#single", single)
    want = "2x2" if layout == "2x2" else single
    S.wait_js(page, f"document.getElementById('view').dataset.layout === '{want}'")
    page.wait_for_timeout(150)


def wait_3d(page, i):
    S.wait_js(page, f"Number(document.getElementById('vp{i}').dataset.renders || 0) > 0 && "
                    f"document.getElementById('vp{i}').dataset.quality === 'still'", 60)


def viewport(page, i):
    d = S.dataset(page, f"#vp{i}")
    out = {"kind": d["kind"], "rect": [int(v) for v in d["rect"].split(",")]}
    if d.get("map"):
        m = np.array([float(v) for v in d["map"].split(",")])
        out.update(O=m[:3], U=m[3:6], V=m[6:9])
    return out


def canvas_xy(vp, header, voxel):
    """Canvas pixel (device px, top-left origin) of a voxel centre in a plane viewport."""
    p = np.array(header["affine_lps"]) @ np.array([*voxel, 1.0])
    d = p[:3] - vp["O"]
    return np.array([d @ vp["U"] / (vp["U"] @ vp["U"]), d @ vp["V"] / (vp["V"] @ vp["V"])])


def texture_memory(page) -> dict:
    return page.evaluate("""async () => {
      const { textureMemory } = await import('/js/gl/textures.js');
      return textureMemory(window.POCKETPACS_TEST_HOOK.viewer.gl);
    }""")


def test_the_series_is_on_the_gpu_once_for_2d_mpr_and_3d(page):
    open_series(page)
    set_layout(page, "2x2")            # axial, coronal, sagittal MPR and 3D
    wait_3d(page, 3)
    mem = texture_memory(page)
    assert len(mem["textures"]) == 1, mem
    t = mem["textures"][0]
    assert t["dims"] == [NX, NY, NZ] and t["format"] == "R16I" and t["role"] == "series", t
    assert mem["bytes"] == NX * NY * NZ * 2
    assert page.evaluate("""(() => { const v = window.POCKETPACS_TEST_HOOK.viewer;
        return v.rv.tex === v.view.vt.tex && v.rv.own === null; })()""")
    d = S.dataset(page)
    assert d["gpuBytes"] == str(NX * NY * NZ * 2) and d["gpuTextures"] == f"{NX}x{NY}x{NZ} R16I series"
    assert d["tex3d"] == f"{NX}x{NY}x{NZ}" and not d.get("notice3d")
    # the single acquired-slice layout and back: still one texture
    set_layout(page, "1", "native")
    set_layout(page, "1", "3d")
    wait_3d(page, 0)
    assert len(texture_memory(page)["textures"]) == 1


def test_a_volume_beyond_the_limit_keeps_one_layer_and_one_reduced_copy(browser, served):
    pg = browser.new_page(viewport=VIEWPORT)
    pg.add_init_script("window.POCKETPACS_TEST_LIMITS = { max3d: 16 };")
    pg.goto(served.url)
    try:
        S.wait_js(pg, "document.body.dataset.ready")
        open_series(pg)
        mem = texture_memory(pg)
        roles = sorted((t["role"], t["format"], tuple(t["dims"])) for t in mem["textures"])
        assert roles == [("layer", "R16I", (NX, NY, 1)), ("reduced", "R16I", (16, 14, 12))], roles
        assert mem["bytes"] == (NX * NY + 16 * 14 * 12) * 2
        assert "reduced" in S.dataset(pg)["notice3d"]
    finally:
        pg.close()


def hover(page, xy):
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + xy[0] + 0.5, box["y"] + xy[1] + 0.5)
    return page.locator("#probe").inner_text()


def grey_at(page, xy) -> int:
    return int(S.read_canvas(page)[int(xy[1]), int(xy[0])])


@pytest.mark.parametrize("single", ["coronal", "sagittal"])
def test_mpr_probe_and_pixels_show_values_half_float_cannot_hold(page, single):
    header = open_series(page)
    set_layout(page, "1", single)
    V = "window.POCKETPACS_TEST_HOOK.viewer"
    for (x, y, z), stored in ((HIGH, 3073), (LOW, -1)):
        real = stored + INTERCEPT
        # the crosshair through the block: the MPR plane passes through its centre
        p = [float(v) for v in (np.array(header["affine_lps"]) @ [x, y, z, 1.0])[:3]]
        page.evaluate(f"{V}.setCross({p})")
        page.wait_for_timeout(100)
        vp = viewport(page, 0)
        xy = canvas_xy(vp, header, (x, y, z))
        probe = hover(page, xy)
        assert f"stored {stored}" in probe and f"value {int(real)} HU" in probe, probe
        # a window one unit wide, centred half a unit above the value: the exact
        # value draws mid-grey; a value rounded by 1 (R16F) draws black or white
        page.evaluate(f"{V}.setWindow({real + 0.5}, 2); {V}.render()")
        assert 120 <= grey_at(page, xy) <= 135, (probe, grey_at(page, xy))


def test_3d_mip_shows_the_exact_maximum(page):
    open_series(page)
    set_layout(page, "1", "3d")
    wait_3d(page, 0)
    V = "window.POCKETPACS_TEST_HOOK.viewer"
    page.evaluate(f"{V}.r3.mode = 'mip'; {V}.setWindow3d(2049.5, 2); {V}.interacting = false;"
                  f" {V}.dirty3d = true; {V}.render()")
    x, y, w, h = viewport(page, 0)["rect"]
    img = S.read_canvas(page)[y:y + h, x:x + w]
    grey = img[(img > 60) & (img < 200)]
    # rays through the block reach 2049 exactly (R16F: 2048, drawn black); other rays stay below
    assert grey.size > 50, np.unique(img)
    assert np.all(np.abs(grey.astype(int) - 127) <= 8), np.unique(grey)


def test_mpr_and_ray_programs_compile_for_every_voxel_type(page):
    """int16, uint16, float32 and colour (RGB8) series each get their own MPR / 3D program."""
    out = page.evaluate("""async () => {
      const { link } = await import('/js/gl/program.js');
      const { source, volumeShader } = await import('/js/gl/shaders.js');
      const gl = document.createElement('canvas').getContext('webgl2');
      const vs = await source('fullscreen.vert.glsl');
      const done = [];
      for (const dtype of ['int16', 'uint16', 'float32', 'uint8']) {
        for (const name of ['mpr.frag.glsl', 'ray.frag.glsl']) {
          const p = link(gl, vs, await volumeShader(name, dtype), ['fullscreen.vert.glsl', name]);
          done.push([dtype, name, ['uVol', 'uSlope', 'uIntercept', 'uDims'].every((u) => p.u[u])]);
        }
      }
      return done;
    }""")
    assert len(out) == 8 and all(ok for _, _, ok in out), out


def test_the_shading_gradient_equals_central_differences_of_six_trilinear_samples(page):
    """volume.glsl's cellGradient (32 fetches) against (value(g + e) - value(g - e)) / 2 per axis."""
    worst = page.evaluate("""async () => {
      const { link } = await import('/js/gl/program.js');
      const { source, volumeShader } = await import('/js/gl/shaders.js');
      const gl = document.createElement('canvas').getContext('webgl2');
      const [nx, ny, nz] = [7, 6, 5];
      const vol = new Int16Array(nx * ny * nz);
      for (let i = 0; i < vol.length; i++) vol[i] = ((i * 7919) % 4001) - 1500;   // rough, signed
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_3D, tex);
      gl.texStorage3D(gl.TEXTURE_3D, 1, gl.R16I, nx, ny, nz);
      gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);   // integer: never filtered
      gl.texParameteri(gl.TEXTURE_3D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      gl.texSubImage3D(gl.TEXTURE_3D, 0, 0, 0, 0, nx, ny, nz, gl.RED_INTEGER, gl.SHORT, vol);
      const fs = `#version 300 es
precision highp float;
precision highp int;
// @VOLUME@
out vec4 o;
void main() {
  // points inside and past the edges (clamping), one per fragment
  vec3 g = vec3(gl_FragCoord.x * 0.37, gl_FragCoord.y * 0.29, gl_FragCoord.x * 0.11 + gl_FragCoord.y * 0.07) - 1.3;
  vec3 a = cellGradient(cellAt(g));
  vec3 b = vec3(sampleVolume(g + vec3(1, 0, 0)) - sampleVolume(g - vec3(1, 0, 0)),
                sampleVolume(g + vec3(0, 1, 0)) - sampleVolume(g - vec3(0, 1, 0)),
                sampleVolume(g + vec3(0, 0, 1)) - sampleVolume(g - vec3(0, 0, 1))) * 0.5;
  vec3 d = abs(a - b);
  o = vec4(max(d.x, max(d.y, d.z)) * 100.0, length(b) > 1.0 ? 1.0 : 0.0, 0.0, 1.0);
}`;
      const src = (await volumeShader('mpr.frag.glsl', 'int16')).match(/\\/\\/ volume\\.glsl[\\s\\S]*/)[0];
      const p = link(gl, await source('fullscreen.vert.glsl'), fs.replace('// @VOLUME@', src.split('uniform vec3 uG0;')[0]),
                     ['fullscreen.vert.glsl', 'gradient-check.frag.glsl']);
      if (!gl.getExtension('EXT_color_buffer_float')) return [0, 0, 'no EXT_color_buffer_float'];
      const fb = gl.createFramebuffer(), rb = gl.createRenderbuffer();
      gl.bindRenderbuffer(gl.RENDERBUFFER, rb);
      gl.renderbufferStorage(gl.RENDERBUFFER, gl.RGBA32F, 24, 24);
      gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
      gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.RENDERBUFFER, rb);
      gl.viewport(0, 0, 24, 24);
      gl.useProgram(p.program);
      gl.uniform1i(p.u.uVol, 0);
      gl.uniform3f(p.u.uDims, nx, ny, nz);
      gl.uniform1f(p.u.uSlope, 1.5);
      gl.uniform1f(p.u.uIntercept, -7);
      gl.bindVertexArray(gl.createVertexArray());
      gl.drawArrays(gl.TRIANGLES, 0, 3);
      const px = new Float32Array(24 * 24 * 4);
      gl.readPixels(0, 0, 24, 24, gl.RGBA, gl.FLOAT, px);
      let worst = 0, steep = 0;
      for (let i = 0; i < px.length; i += 4) { worst = Math.max(worst, px[i] / 100); steep += px[i + 1]; }
      return [worst, steep, gl.getError()];
    }""")
    err, steep, gl_error = worst
    assert gl_error == 0 and steep > 400, worst          # real gradients were compared
    assert err < 1e-2, worst                              # float rounding only (values up to ~4000)
