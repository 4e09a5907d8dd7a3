"""Browser tests of the viewer in depth: MPR, crosshair, measurements, 3D, panels, big volumes.

`pocketpacs serve` on a small generated CT study (coronal, sagittal, oblique
and axial acquisitions of the same phantom, 64x64 pixels of 5.625 mm, 48
slices), driven by Playwright + Debian's Chromium (WebGL2 on SwiftShader).
Ground truth is the phantom itself (:func:`pocketpacs.synth.phantom_hu`) and
the volume's affine; checks read the canvas pixels back.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

MARKER = np.array([83.1, -51.7, 71.3])      # centre of the 1200 HU cube (synth.phantom_hu)
BODY_AXIS = np.array([0.0, 4.1])             # centre of the body ellipse in axial planes
VIEWPORT = {"width": 960, "height": 680}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs
    from pocketpacs import synth

    root = tmp_path_factory.mktemp("ui_viewer3d")
    manifest = synth.generate(root / "files", patients=1, studies=1, series=4, slices=48, rows=64,
                              cols=64, junk=0, enhanced=0, seed=5)
    with pocketpacs.open_archive(root / "archive") as ar:
        ar.import_folder(root / "files")
    return {"archive": root / "archive", "manifest": manifest}


def new_page(browser, served, init_script=None):
    pg = browser.new_page(viewport=VIEWPORT)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    if init_script:
        pg.add_init_script(init_script)
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    assert pg.evaluate("document.body.dataset.ready") == "1", errors
    return pg, errors


@pytest.fixture
def page(browser, served):
    pg, errors = new_page(browser, served)
    yield pg
    pg.close()
    assert not errors, errors


def open_series(page, prefix):
    """Open the series whose description starts with *prefix*; wait until it is all loaded."""
    descs = page.evaluate("""[...document.querySelectorAll('#series-table tbody tr.series')].map(tr =>
        tr.querySelector('td[data-col=series_description]').textContent)""")
    idx = next(i for i, d in enumerate(descs) if d.startswith(prefix))
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
    return S.fetch_header(page, S.dataset(page)["vid"])


def set_layout(page, layout, single=None):
    page.select_option("#layout", layout)
    if single:
        page.select_option("#single", single)
    want = "2x2" if layout == "2x2" else single
    S.wait_js(page, f"document.getElementById('view').dataset.layout === '{want}'")
    # the 3D tool row may have changed the stage's size: wait for the redraw at the new size
    page.wait_for_timeout(150)
    S.wait_js(page, "(() => { const c = document.getElementById('view'); const r = document.getElementById('vp0').dataset.rect;"
                    " return r && c.width === Math.round(c.clientWidth * devicePixelRatio) && c.height === Math.round(c.clientHeight * devicePixelRatio); })()")


def select_window(page, name):
    val = page.evaluate(f"[...document.querySelectorAll('#preset option')].find(o => o.textContent.toLowerCase().startsWith('{name.lower()}')).value")
    page.select_option("#preset", val)
    page.wait_for_timeout(50)


def vp(page, i):
    """Kind, rect (canvas px) and plane mapping of viewport i."""
    d = S.dataset(page, f"#vp{i}")
    out = {"kind": d["kind"], "rect": [int(v) for v in d["rect"].split(",")]}
    if d.get("map"):
        m = np.array([float(v) for v in d["map"].split(",")])
        out.update(O=m[:3], U=m[3:6], V=m[6:9])
    if d.get("pos"):
        out["pos"] = float(d["pos"])
    return out


def to_canvas(v, p):
    d = np.asarray(p, float) - v["O"]
    return np.array([d @ v["U"] / (v["U"] @ v["U"]), d @ v["V"] / (v["V"] @ v["V"])])


def to_world(v, xy):
    return v["O"] + xy[0] * v["U"] + xy[1] * v["V"]


def blob(img, rect, lo, hi=256):
    """Centroid (x, y canvas px, pixel centres) and size of pixels in [lo, hi) inside rect."""
    x, y, w, h = rect
    sub = img[y:y + h, x:x + w]
    ys, xs = np.nonzero((sub >= lo) & (sub < hi))
    if xs.size == 0:
        return None, 0
    return np.array([xs.mean() + x + 0.5, ys.mean() + y + 0.5]), xs.size


def click(page, xy, button="left"):
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1], button=button)


def drag(page, a, b, steps=6):
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=steps)
    page.mouse.up()


def renders(page, i=0):
    return int(S.dataset(page, f"#vp{i}").get("renders") or 0)


def wait_still(page, i, before):
    S.wait_js(page, f"Number(document.getElementById('vp{i}').dataset.renders || 0) > {before} && "
                    f"document.getElementById('vp{i}').dataset.quality === 'still'", 60)
    page.wait_for_timeout(30)


MARKER_GRAY = S.predicted_gray(np.array(1100.0), 400, 1800)   # bone window: only the 1200 HU cube is above


# ------------------------------------------------------------------ MPR
def test_mpr_of_a_sagittal_acquisition_puts_the_marker_where_the_affine_does(page):
    header = open_series(page, "SAG")
    A = np.array(header["affine_lps"])
    assert abs(A[0, 2]) > 6 and abs(A[2, 1]) > 5          # slices along x, rows along -z
    set_layout(page, "2x2")
    select_window(page, "Bone")
    S.wait_js(page, "document.getElementById('vp0').dataset.map")
    axial = vp(page, 0)
    assert axial["kind"] == "axial"
    # scroll the axial plane up to the marker's level
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 30)
    for _ in range(40):
        if vp(page, 0)["pos"] >= MARKER[2] - 2.9:
            break
        page.mouse.wheel(0, 100)
        page.wait_for_timeout(20)
    axial = vp(page, 0)
    assert abs(axial["pos"] - MARKER[2]) <= 2.9
    img = S.read_canvas(page)
    c, n = blob(img, axial["rect"], MARKER_GRAY)
    assert n > 20
    want = to_canvas(axial, MARKER)
    px_per_mm = 1 / np.linalg.norm(axial["U"])
    voxel = max(header["spacing"]) * px_per_mm
    assert np.abs(c - want).max() <= 0.75 * voxel, (c, want, voxel)
    letters = {k: page.locator(f"#vp0 .orient.{k}").inner_text() for k in ("left", "right", "top", "bottom")}
    assert letters["right"] == "L" and letters["top"] == "A"
    assert c[0] > axial["rect"][0] + axial["rect"][2] / 2 and c[1] < axial["rect"][1] + axial["rect"][3] / 2
    # link: click the marker in the axial view; coronal and sagittal go through it
    page.click("[data-tool=cross]")
    click(page, c)
    S.wait_js(page, "document.getElementById('vp1').dataset.map")
    page.wait_for_timeout(100)
    clicked = to_world(axial, c)
    cross = np.array([float(v) for v in S.dataset(page)["cross"].split(",")])
    assert np.allclose(cross[:2], clicked[:2], atol=0.01)
    coronal, sagittal = vp(page, 1), vp(page, 2)
    assert abs(coronal["pos"] - cross[1]) < 1e-3 and abs(sagittal["pos"] - cross[0]) < 1e-3
    img = S.read_canvas(page)
    for v, right, top in ((coronal, "L", "S"), (sagittal, "P", "S")):
        c2, n2 = blob(img, v["rect"], MARKER_GRAY)
        assert n2 > 20, v["kind"]
        want = to_canvas(v, MARKER)
        k = 1 / np.linalg.norm(v["U"])
        assert np.abs(c2 - want).max() <= 0.75 * max(header["spacing"]) * k, (v["kind"], c2, want)
        i = 1 if v is coronal else 2
        assert page.locator(f"#vp{i} .orient.right").inner_text() == right
        assert page.locator(f"#vp{i} .orient.top").inner_text() == top


def test_crosshair_click_moves_the_other_views_to_the_point(page):
    open_series(page, "OBL")
    set_layout(page, "2x2")
    S.wait_js(page, "document.getElementById('vp1').dataset.map")
    page.click("[data-tool=cross]")
    cor = vp(page, 1)
    x, y, w, h = cor["rect"]
    target = np.array([x + 0.35 * w, y + 0.6 * h])
    before = S.dataset(page)["cross"]
    click(page, target)
    S.wait_js(page, f"document.getElementById('view').dataset.cross !== '{before}'")   # the 3D view fills its viewport: a slower frame
    p = to_world(cor, target)
    cross = np.array([float(v) for v in S.dataset(page)["cross"].split(",")])
    assert np.allclose(cross, [p[0], cor["pos"], p[2]], atol=0.01)
    ax, sag = vp(page, 0), vp(page, 2)
    assert abs(ax["pos"] - p[2]) < 0.01 and abs(sag["pos"] - p[0]) < 0.01
    # every 2D view's plane now contains the clicked point, inside its viewport
    for v in (ax, sag, vp(page, 1)):
        n = np.cross(v["U"], v["V"])
        assert abs((cross - v["O"]) @ n / np.linalg.norm(n)) < 1e-3
        q = to_canvas(v, cross)
        rx, ry, rw, rh = v["rect"]
        assert rx <= q[0] <= rx + rw and ry <= q[1] <= ry + rh


# ------------------------------------------------------------------ measurements
def _marker_slice(page, header):
    A = np.array(header["affine_lps"])
    nz, ny, nx = header["shape"]
    zs = [(A @ [nx / 2, ny / 2, k, 1])[2] for k in range(nz)]
    target = int(np.argmin(np.abs(np.array(zs) - MARKER[2])))
    page.locator("#stage").focus()
    page.keyboard.press("Home")
    for _ in range(target):
        page.keyboard.press("ArrowDown")
    S.wait_js(page, f"document.getElementById('view').dataset.drawn === '{target}'")
    return target


def test_distance_between_phantom_features_is_their_true_length(page):
    header = open_series(page, "AX")
    _marker_slice(page, header)
    rect = vp(page, 0)["rect"]
    select_window(page, "Bone")
    marker, n = blob(S.read_canvas(page), rect, MARKER_GRAY)
    assert n > 20
    select_window(page, "Lung")                 # body (lungs included) bright, air dark
    lung = S.predicted_gray(np.array([-1000.0, -800.0]), -600, 1500)
    body, nb = blob(S.read_canvas(page), rect, lung.mean())
    assert nb > 2000
    page.click("[data-tool=distance]")
    drag(page, body, marker)
    S.wait_js(page, "document.querySelectorAll('#measure-list li').length === 1")
    li = S.dataset(page, "#measure-list li")
    assert li["type"] == "distance"
    truth = float(np.hypot(*(MARKER[:2] - BODY_AXIS)))
    half_voxel = 0.5 * min(header["spacing"][:2])
    assert abs(float(li["mm"]) - truth) <= half_voxel, (li["mm"], truth)
    assert f"{float(li['mm']):.1f} mm" in page.locator("#measure-list li").inner_text()
    # listed in the panel, and removable there
    page.click("#btn-panel")
    page.click("#measure-list li button.remove")
    S.wait_js(page, "document.querySelectorAll('#measure-list li').length === 0")


def test_roi_statistics_match_numpy_on_the_same_voxels(page):
    from pocketpacs.synth import phantom_hu

    header = open_series(page, "AX")
    z = _marker_slice(page, header)
    A = np.array(header["affine_lps"])
    _, ny, nx = header["shape"]
    cc, rr = np.meshgrid(np.arange(nx), np.arange(ny))
    hu = phantom_hu((np.stack([cc, rr, np.full_like(cc, z), np.ones_like(cc)], -1) @ A.T)[..., :3]).astype(float)
    # a box across the marker's edge: several phantom values inside
    mi = np.argwhere(hu == 1200)
    r0, c0 = mi.min(0)
    results, boxes = {}, {}
    for tool in ("rect", "ellipse"):
        sx, sy, ox, oy = (float(v) for v in S.dataset(page)["xform"].split(","))
        a = np.array([ox + (c0 - 2.3) * sx, oy + (r0 - 1.6) * sy])
        b = np.array([ox + (c0 + 3.7) * sx, oy + (r0 + 2.9) * sy])
        page.click(f"[data-tool={tool}]")
        drag(page, a, b)
        S.wait_js(page, f"document.querySelectorAll('#measure-list li[data-type={tool}]').length === 1")
        results[tool] = S.dataset(page, f"#measure-list li[data-type={tool}]")
        i0, i1 = sorted(((a[0] - ox) / sx - 0.5, (b[0] - ox) / sx - 0.5))
        j0, j1 = sorted(((a[1] - oy) / sy - 0.5, (b[1] - oy) / sy - 0.5))
        boxes[tool] = (i0, i1, j0, j1)
    masks = {}
    for tool, (i0, i1, j0, j1) in boxes.items():
        inside = (cc >= i0) & (cc <= i1) & (rr >= j0) & (rr <= j1)
        if tool == "ellipse":
            ic, jc, ra, rb = (i0 + i1) / 2, (j0 + j1) / 2, (i1 - i0) / 2, (j1 - j0) / 2
            inside &= ((cc - ic) / ra) ** 2 + ((rr - jc) / rb) ** 2 <= 1
        masks[tool] = inside
    for tool, mask in masks.items():
        vals = hu[mask]
        got = results[tool]
        assert len(np.unique(vals)) >= 2
        assert int(got["n"]) == vals.size
        assert float(got["mean"]) == pytest.approx(vals.mean(), rel=1e-9, abs=1e-9)
        assert float(got["sd"]) == pytest.approx(vals.std(), rel=1e-9, abs=1e-9)
        assert float(got["min"]) == vals.min() and float(got["max"]) == vals.max()
    i0, i1, j0, j1 = boxes["rect"]
    w_mm, h_mm = (i1 - i0) * header["spacing"][0], (j1 - j0) * header["spacing"][1]
    assert float(results["rect"]["area"]) == pytest.approx(w_mm * h_mm, rel=2e-3)   # mouse positions are rounded
    i0, i1, j0, j1 = boxes["ellipse"]
    w_mm, h_mm = (i1 - i0) * header["spacing"][0], (j1 - j0) * header["spacing"][1]
    assert float(results["ellipse"]["area"]) == pytest.approx(np.pi * w_mm * h_mm / 4, rel=2e-3)
    assert "HU" in page.locator("#measure-list li[data-type=rect]").inner_text()


def test_angle_tool_measures_a_right_angle(page):
    open_series(page, "AX")
    x, y, w, h = vp(page, 0)["rect"]
    page.click("[data-tool=angle]")
    p1, p2, p3 = (x + 0.3 * w, y + 0.3 * h), (x + 0.3 * w, y + 0.6 * h), (x + 0.6 * w, y + 0.6 * h)
    drag(page, p1, p2)
    click(page, p3)
    S.wait_js(page, "document.querySelectorAll('#measure-list li[data-type=angle]').length === 1")
    # the acquired axial view has square pixels: a right angle on screen is one in the patient
    assert float(S.dataset(page, "#measure-list li[data-type=angle]")["deg"]) == pytest.approx(90.0, abs=0.01)


# ------------------------------------------------------------------ 3D
def test_3d_view_draws_rotates_projects_and_clips(page):
    open_series(page, "AX")
    set_layout(page, "1", "3d")
    wait_still(page, 0, 0)
    rect = vp(page, 0)["rect"]
    x, y, w, h = rect

    def view():
        return S.read_canvas(page)[y:y + h, x:x + w].astype(float)

    dvr = view()
    assert np.ptp(dvr) > 100 and (dvr > 30).mean() > 0.02
    # rotate: drag across the view
    n = renders(page)
    drag(page, (x + w * 0.5, y + h * 0.5), (x + w * 0.75, y + h * 0.45), steps=5)
    wait_still(page, 0, n)
    rotated = view()
    assert np.abs(rotated - dvr).mean() > 3
    # reset, then MIP differs from DVR
    n = renders(page)
    page.click("#btn-reset3d")
    wait_still(page, 0, n)
    assert np.abs(view() - dvr).max() <= 2
    n = renders(page)
    page.select_option("#render-mode", "mip")
    wait_still(page, 0, n)
    mip = view()
    assert np.abs(mip - dvr).mean() > 5 and (mip > 30).mean() > 0.05
    # clip box: keep the patient's right half (volume column axis runs R -> L)
    hdr = S.fetch_header(page, S.dataset(page)["vid"])
    assert hdr["affine_lps"][0][0] > 0
    n = renders(page)
    page.locator("#clip-x1").fill("50")
    wait_still(page, 0, n)
    clipped = view()
    # anterior view: screen right is the patient's left
    centre_x = w // 2
    margin = w // 20
    right = (slice(None), slice(centre_x + margin, w))
    left = (slice(None), slice(0, centre_x - margin))
    assert mip[right].mean() > 20
    assert clipped[right].max() <= 2, "the clipped half still shows"
    assert np.abs(clipped[left] - mip[left]).max() <= 2, "the kept half changed"


def test_volume_beyond_the_3d_texture_limit_loads_reduced_with_a_notice(browser, served):
    pg, errors = new_page(browser, served, "window.POCKETPACS_TEST_LIMITS = { max3d: 32 };")
    try:
        open_series(pg, "AX")
        d = S.dataset(pg)
        assert d["tex3d"] == "32x32x24"
        notice = pg.locator("#notice-3d").inner_text()
        assert "reduced" in notice and "32" in notice
        assert d["drawn"]                                   # the 2D view still shows full-resolution slices
        set_layout(pg, "2x2")
        assert pg.locator("#notice-3d").is_visible()
        wait_still(pg, 3, 0)
        r = vp(pg, 3)["rect"]
        img = S.read_canvas(pg)[r[1]:r[1] + r[3], r[0]:r[0] + r[2]]
        assert np.ptp(img) > 100
        assert pg.evaluate("document.getElementById('view').getContext('webgl2').isContextLost()") is False
    finally:
        pg.close()
    assert not errors, errors


def test_lost_context_is_restored_and_drawn_again(page):
    open_series(page, "AX")
    before = S.read_canvas(page)
    page.evaluate("""() => { const gl = document.getElementById('view').getContext('webgl2');
        window.__lc = gl.getExtension('WEBGL_lose_context'); window.__lc.loseContext(); }""")
    S.wait_js(page, "document.getElementById('view').dataset.contextLost === '1'")
    assert page.locator("#gl-notice").is_visible()
    page.evaluate("window.__lc.restoreContext()")
    S.wait_js(page, "document.getElementById('view').dataset.restored === '1'", 30)
    page.wait_for_timeout(200)
    assert np.abs(S.read_canvas(page).astype(int) - before).max() <= 2


def test_shader_compile_errors_carry_the_info_log(page):
    msg = page.evaluate("""async () => {
      const { link } = await import('/js/gl/program.js');
      const gl = document.createElement('canvas').getContext('webgl2');
      try { link(gl, '#version 300 es\\nvoid main() { gl_Position = vec4(0.0); }',
                 '#version 300 es\\nprecision highp float;\\nout vec4 o;\\nvoid main() { o = undefined_thing; }',
                 ['a.vert.glsl', 'broken.frag.glsl']); return 'no error'; }
      catch (e) { return e.message; }
    }""")
    assert "broken.frag.glsl" in msg and "undefined_thing" in msg


# ------------------------------------------------------------------ panels
def test_header_browser_and_assembly_panel(page, built):
    open_series(page, "SAG")
    page.click("#btn-panel")
    page.click("[data-tab=header]")
    S.wait_js(page, "Number(document.getElementById('header-table').dataset.rows || 0) > 40", 30)
    page.fill("#header-search", "PatientName")
    S.wait_js(page, "document.getElementById('header-table').dataset.rows === '1'")
    row = page.locator("#header-table tbody tr").inner_text()
    assert "(0010,0010)" in row and "PN" in row
    page.fill("#header-search", "0020,0037")
    S.wait_js(page, "document.getElementById('header-table').dataset.rows === '1'")
    assert "ImageOrientationPatient" in page.locator("#header-table tbody tr").inner_text()
    assert page.evaluate("document.querySelectorAll('#header-table tbody *:not(tr):not(td)').length") == 0
    page.click("[data-tab=assembly]")
    S.wait_js(page, "document.getElementById('report-body').dataset.stacks === '1'", 30)
    text = page.locator("#report-body").inner_text()
    assert "48 files" in text and "Gaps" in text and "Gantry tilt" in text
    assert "6.667" in text                               # sagittal slice spacing (mm)
    hist = S.dataset(page, "#histogram")
    d = S.dataset(page)
    assert hist["window"] == f"{d['wc']},{d['ww']}"
    assert float(hist["lo"]) == -1000 and float(hist["hi"]) == 1200


def test_reset_3d_also_resets_the_clip_box(page):
    open_series(page, "AX")
    set_layout(page, "1", "3d")
    wait_still(page, 0, 0)
    x, y, w, h = vp(page, 0)["rect"]

    def view():
        return S.read_canvas(page)[y:y + h, x:x + w].astype(float)

    def clip_state():
        return [float(v) for v in S.dataset(page, "#vp0")["state"].split(",")[3:9]]

    whole = view()
    assert clip_state() == [0, 0, 0, 1, 1, 1]
    n = renders(page)
    page.locator("#clip-x1").fill("50")
    wait_still(page, 0, n)
    assert clip_state() == [0, 0, 0, 0.5, 1, 1]
    assert np.abs(view() - whole).max() > 50
    n = renders(page)
    page.click("#btn-reset3d")
    wait_still(page, 0, n)
    assert clip_state() == [0, 0, 0, 1, 1, 1]
    assert [page.input_value(f"#clip-{a}{e}") for e in "01" for a in "xyz"] == ["0"] * 3 + ["100"] * 3
    assert np.abs(view() - whole).max() <= 2


def test_a_failed_open_clears_every_view_of_the_2x2_layout(browser, served, tmp_path):
    pg, errors = new_page(browser, served, "window.POCKETPACS_TEST_LIMITS = {};")   # the test hook
    try:
        open_series(pg, "AX")
        set_layout(pg, "2x2")
        wait_still(pg, 3, 0)
        assert np.ptp(S.read_canvas(pg)) > 100
        assert pg.evaluate("window.POCKETPACS_TEST_HOOK.viewer.rv !== null")
        pg.click("#btn-other")
        pg.fill("#path-input", str(tmp_path / "gone.nii"))
        pg.click("#path-ok")
        S.wait_js(pg, "!document.getElementById('error-banner').hidden")
        pg.wait_for_timeout(300)
        # textures of the previous volume dropped: slice, MPR and 3D
        assert pg.evaluate("""(() => { const v = window.POCKETPACS_TEST_HOOK.viewer;
            return v.vol === null && v.rv === null && v.view.vt === null && v.view.header === null; })()""")
        assert S.read_canvas(pg).max() == 0
        for i in range(4):
            d = S.dataset(pg, f"#vp{i}")
            assert not d.get("map") and not d.get("state") and not d.get("pos"), d
        texts = pg.evaluate("""[...document.querySelectorAll('#stage .corner, #stage .vp-info, #stage .orient, '
            + '#tools-3d [data-axis], #notice-3d')].map(e => e.textContent).filter(t => t.trim())""")
        assert texts == []
    finally:
        pg.close()
    assert not errors, errors
