"""Browser tests of measurements that last and of the 3D view's fit and window (issue 17).

`pocketpacs serve` on a small generated CT study (coronal, sagittal, oblique
and axial acquisitions of one phantom, 64x64 pixels, 48 slices), driven by
Playwright + Debian's Chromium (WebGL2 on SwiftShader).  Measurements are
drawn with the mouse, then checked on the page (panel, the labels drawn on
the overlay canvas, its pixels), in the archive (read with the Python API
while the app runs) and again after the series is reopened and after the
app is restarted on the same archive.
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 960, "height": 680}
ORANGE = "(p) => p[0] > 200 && p[1] > 140 && p[1] < 220 && p[2] < 90"   # the measurements' colour #ffb300


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two archives of the same files: one served to the module, one for the restart test."""
    import pocketpacs
    from pocketpacs import synth

    root = tmp_path_factory.mktemp("ui_measure")
    manifest = synth.generate(root / "files", patients=1, studies=1, series=4, slices=48, rows=64,
                              cols=64, junk=0, enhanced=0, seed=5)
    write_uncalibrated(root / "uncal")
    for name in ("archive", "archive2"):
        with pocketpacs.open_archive(root / name) as ar:
            ar.import_folder(root / "files")
            ar.import_folder(root / "uncal")
            ax = next(se for st in ar.studies() for se in ar.series(st) if se.description.startswith("AX"))
    return {"archive": root / "archive", "archive2": root / "archive2", "manifest": manifest,
            "ax_uid": ax.uid}


UNCAL_UID = "1.2.826.0.1.3680043.99.17.2"


def write_uncalibrated(folder):
    """Three CT slices without Pixel Spacing (nor Imager Pixel Spacing, nor ultrasound regions)."""
    import dicomgen

    folder.mkdir(parents=True)
    for i in range(1, 4):
        ds = dicomgen.dataset(series_uid=UNCAL_UID, sop_uid=f"{UNCAL_UID}.{i}", instance_number=i, z=float(i),
                              study_uid="1.2.826.0.1.3680043.99.17", series_desc="UNCAL", rows=32, cols=32)
        del ds.PixelSpacing
        (folder / f"U{i}.dcm").write_bytes(dicomgen.to_bytes(ds))


def new_page(browser, url):
    pg = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    S.wait_js(pg, "document.body.dataset.ready")
    assert pg.evaluate("document.body.dataset.ready") == "1", errors
    return pg, errors


@pytest.fixture
def page(browser, served):
    pg, errors = new_page(browser, served.url)
    yield pg
    pg.close()
    assert not errors, errors


def open_series(page, prefix="AX"):
    """Open the series whose description starts with *prefix*; wait until it is loaded
    and its kept measurements have arrived."""
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length > 0")
    descs = [r.get("series_description", "") for r in S.tree_rows(page)]
    idx = next(i for i, d in enumerate(descs) if d.startswith(prefix))
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.locator(S.SERIES_ROWS).nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded", 60)
    S.wait_js(page, "document.getElementById('view').dataset.measurementsLoaded === '1'")
    return S.fetch_header(page, S.dataset(page)["vid"])


def close_series(page):
    page.locator("#stage").focus()
    page.keyboard.press("Escape")
    S.wait_js(page, "document.getElementById('viewer').hidden")


def vp(page, i=0):
    d = S.dataset(page, f"#vp{i}")
    return {"kind": d["kind"], "rect": [int(v) for v in d["rect"].split(",")]}


def drag(page, a, b, steps=6, button="left"):
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down(button=button)
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=steps)
    page.mouse.up(button=button)


def click(page, xy, button="left"):
    box = page.locator("#view").bounding_box()
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1], button=button)


def saves(page):
    return int(S.dataset(page).get("measureSaves") or 0)


def wait_saved(page, before):
    S.wait_js(page, f"Number(document.getElementById('view').dataset.measureSaves || 0) > {before}")


def delete_all(page):
    """Delete every measurement with the Delete key; wait until the last change is saved
    (the next test opens the same series)."""
    page.locator("#stage").focus()
    while items(page):
        n = saves(page)
        page.keyboard.press("Delete")
        wait_saved(page, n)


def items(page):
    return page.evaluate("[...document.querySelectorAll('#measure-list li')].map(li => Object.assign({}, li.dataset))")


def labels(page, n=1):
    """The labels drawn on the overlay canvas, once there are *n* (drawn in the next frame)."""
    S.wait_js(page, f"JSON.parse(document.getElementById('overlay').dataset.labels || '[]').length === {n}")
    return json.loads(page.evaluate("document.getElementById('overlay').dataset.labels || '[]'"))


def kept(archive, uid):
    """The measurements the archive keeps (read-only open beside the running app)."""
    import pocketpacs

    with pocketpacs.open_archive(archive, readonly=True) as ar:
        return ar.measurements(uid)


def native_to_canvas(page, header, p):
    """Canvas px of a patient point on the acquired-slice view (its voxel index through the transform)."""
    A = np.array(header["affine_lps"])
    g = np.linalg.solve(A, np.r_[p, 1.0])[:3]
    sx, sy, ox, oy = (float(v) for v in S.dataset(page)["xform"].split(","))
    return np.array([ox + (g[0] + 0.5) * sx, oy + (g[1] + 0.5) * sy])


def orange_pixels(page, box=None):
    """Pixels of the measurements' colour on the overlay canvas (inside box [x, y, w, h])."""
    return page.evaluate(f"""(box) => {{
      const o = document.getElementById('overlay');
      const [x, y, w, h] = box || [0, 0, o.width, o.height];
      const d = o.getContext('2d').getImageData(Math.floor(x), Math.floor(y), Math.ceil(w), Math.ceil(h)).data;
      const hit = {ORANGE};
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && hit([d[i], d[i + 1], d[i + 2]])) n++;
      return n;
    }}""", box)


# ------------------------------------------------------------------ measurements that last
def test_distance_lasts_through_reopen_and_restart_moves_and_deletes(browser, built):
    arc, uid = built["archive2"], built["ax_uid"]
    srv = S.Served(arc)
    pages = []
    try:
        pg, errors = new_page(browser, srv.url)
        pages.append((pg, errors))
        header = open_series(pg)
        x, y, w, h = vp(pg)["rect"]
        a, b = (x + 0.35 * w, y + 0.4 * h), (x + 0.6 * w, y + 0.55 * h)
        assert S.dataset(pg, "#measure-kept")["kept"] == "archive"
        assert "Kept with the series in the archive" in pg.locator("#measure-kept").inner_text()
        pg.click("[data-tool=distance]")
        n = saves(pg)
        drag(pg, a, b)
        wait_saved(pg, n)
        first = items(pg)
        assert len(first) == 1 and first[0]["type"] == "distance"
        mm = float(first[0]["mm"])
        rec = kept(arc, uid)
        assert len(rec) == 1 and rec[0]["unit"] == "mm" and rec[0]["slice"] == int(S.dataset(pg)["slice"])
        assert rec[0]["result"]["mm"] == pytest.approx(mm)
        pts = np.array(rec[0]["points"])
        assert np.linalg.norm(pts[1] - pts[0]) == pytest.approx(mm, rel=1e-9)
        # the points are where they were drawn (canvas px -> patient mm -> canvas px)
        assert np.abs(native_to_canvas(pg, header, pts[0]) - a).max() < 1.0
        assert np.abs(native_to_canvas(pg, header, pts[1]) - b).max() < 1.0
        # the label is drawn at the line's end
        lab = labels(pg)
        assert len(lab) == 1 and lab[0]["text"] == [f"{mm:.1f} mm"]
        assert abs(lab[0]["x"] - (b[0] + 6)) < 2 and orange_pixels(pg, [lab[0][k] for k in "xywh"]) > 20

        # closed and reopened: same place, same value
        close_series(pg)
        open_series(pg)
        again = items(pg)
        assert len(again) == 1 and float(again[0]["mm"]) == pytest.approx(mm)
        assert labels(pg)[0]["x"] == pytest.approx(lab[0]["x"]) and labels(pg)[0]["y"] == pytest.approx(lab[0]["y"])
        pg.close()
        assert not errors, errors

        # the app restarted on the same archive: a new session finds it
        srv.stop()
        srv = S.Served(arc)
        pg, errors = new_page(browser, srv.url)
        pages.append((pg, errors))
        header = open_series(pg)
        again = items(pg)
        assert len(again) == 1 and float(again[0]["mm"]) == pytest.approx(mm)
        assert np.abs(native_to_canvas(pg, header, pts[1]) - b).max() < 1.0

        # moved by dragging its end: the value follows and is kept
        c = (b[0] + 0.1 * w, b[1] + 0.05 * h)
        n = saves(pg)
        drag(pg, b, c)                    # navigate tool (the default after open) grabs the handle
        wait_saved(pg, n)
        moved = items(pg)
        assert len(moved) == 1 and float(moved[0]["mm"]) > mm + 5
        rec = kept(arc, uid)
        pts2 = np.array(rec[0]["points"])
        assert np.allclose(pts2[0], pts[0]) and np.abs(native_to_canvas(pg, header, pts2[1]) - c).max() < 1.0
        assert rec[0]["result"]["mm"] == pytest.approx(float(moved[0]["mm"]))
        # the whole of it dragged from its middle: same length, both ends moved
        mid = ((a[0] + c[0]) / 2, (a[1] + c[1]) / 2)
        n = saves(pg)
        drag(pg, mid, (mid[0] - 30, mid[1] + 20))
        wait_saved(pg, n)
        rec = kept(arc, uid)
        pts3 = np.array(rec[0]["points"])
        assert float(items(pg)[0]["mm"]) == pytest.approx(float(moved[0]["mm"]), rel=1e-6)
        assert np.linalg.norm(pts3 - pts2, axis=1).min() > 5

        # selected by a click, deleted with the Delete key: gone after reopen
        mid = np.array(native_to_canvas(pg, header, pts3.mean(0)))
        click(pg, mid)
        S.wait_js(pg, "document.getElementById('view').dataset.selected !== ''")
        assert S.dataset(pg, "#measure-list li")["id"] == S.dataset(pg)["selected"]
        n = saves(pg)
        pg.keyboard.press("Delete")
        wait_saved(pg, n)
        assert items(pg) == [] and kept(arc, uid) == []
        close_series(pg)
        open_series(pg)
        assert items(pg) == [] and labels(pg, 0) == []
    finally:
        for p, _e in pages:
            if not p.is_closed():
                p.close()
        srv.stop()
    for _p, e in pages:
        assert not e, e


def test_context_menu_deletes_a_measurement(page, built):
    open_series(page)
    x, y, w, h = vp(page)["rect"]
    page.click("[data-tool=rect]")
    n = saves(page)
    drag(page, (x + 0.3 * w, y + 0.3 * h), (x + 0.45 * w, y + 0.42 * h))
    wait_saved(page, n)
    assert len(items(page)) == 1
    click(page, (x + 0.38 * w, y + 0.36 * h), button="right")
    S.wait_js(page, "!!document.getElementById('measure-menu')")
    n = saves(page)
    page.click("#measure-menu button")
    wait_saved(page, n)
    assert items(page) == [] and kept(built["archive"], built["ax_uid"]) == []


def test_roi_statistics_are_drawn_beside_the_roi(page, built):
    open_series(page)
    x, y, w, h = vp(page)["rect"]
    page.click("[data-tool=ellipse]")
    n = saves(page)
    a, b = (x + 0.3 * w, y + 0.35 * h), (x + 0.42 * w, y + 0.5 * h)
    drag(page, a, b)
    wait_saved(page, n)
    li = items(page)[0]
    lab = labels(page)
    assert len(lab) == 1 and lab[0]["type"] == "ellipse"
    mean, sd, area = (float(li[k]) for k in ("mean", "sd", "area"))
    assert lab[0]["text"] == [f"mean {mean:.1f} HU", f"SD {sd:.1f}", f"area {area:.1f} mm²"]
    # beside the ROI: right of its box, at its top
    assert abs(lab[0]["x"] - (b[0] + 6)) < 2 and abs(lab[0]["y"] - a[1]) < 2
    assert orange_pixels(page, [lab[0][k] for k in "xywh"]) > 40
    delete_all(page)


def test_screenshot_png_has_the_annotations(page, tmp_path):
    from PIL import Image

    open_series(page)
    x, y, w, h = vp(page)["rect"]

    def shot(name):
        with page.expect_download() as dl:
            page.click("#btn-shot")
        path = tmp_path / name
        dl.value.save_as(path)
        return np.asarray(Image.open(path).convert("RGB")).astype(int)

    def orange(img):
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        return int(((r > 200) & (g > 140) & (g < 220) & (b < 90)).sum())

    plain = shot("plain.png")
    assert orange(plain) == 0          # a grey CT: no annotation colour without one
    page.click("[data-tool=distance]")
    n = saves(page)
    drag(page, (x + 0.3 * w, y + 0.3 * h), (x + 0.6 * w, y + 0.6 * h))
    wait_saved(page, n)
    marked = shot("marked.png")
    assert marked.shape == plain.shape and orange(marked) > 100
    delete_all(page)


def test_export_json_and_csv(page, built, tmp_path):
    open_series(page)
    x, y, w, h = vp(page)["rect"]
    page.click("[data-tool=distance]")
    n = saves(page)
    drag(page, (x + 0.3 * w, y + 0.3 * h), (x + 0.55 * w, y + 0.45 * h))
    wait_saved(page, n)
    page.click("[data-tool=rect]")
    n = saves(page)
    drag(page, (x + 0.4 * w, y + 0.5 * h), (x + 0.5 * w, y + 0.6 * h))
    wait_saved(page, n)
    li = items(page)
    page.click("#btn-panel")
    got = {}
    for fmt in ("json", "csv"):
        with page.expect_download() as dl:
            page.click(f"#btn-measure-{fmt}")
        assert dl.value.suggested_filename == f"measurements.{fmt}"
        path = tmp_path / f"m.{fmt}"
        dl.value.save_as(path)
        got[fmt] = path.read_text()
    d = json.loads(got["json"])
    assert d["series_uid"] == built["ax_uid"]
    assert [m["type"] for m in d["measurements"]] == ["distance", "rect"]
    assert d["measurements"][0]["result"]["mm"] == pytest.approx(float(li[0]["mm"]))
    assert d["measurements"] == kept(built["archive"], built["ax_uid"])
    rows = list(csv.DictReader(io.StringIO(got["csv"])))
    assert [r["type"] for r in rows] == ["distance", "rect"]
    assert float(rows[0]["value"]) == pytest.approx(float(li[0]["mm"])) and rows[0]["value_unit"] == "mm"
    assert float(rows[1]["mean"]) == pytest.approx(float(li[1]["mean"])) and rows[1]["area_unit"] == "mm2"
    delete_all(page)


def test_measurements_on_cd_usb_are_kept_in_memory_only(page, built, tmp_path):
    from pocketpacs import synth

    media = tmp_path / "cdrom"
    synth.generate(media, patients=1, studies=1, series=1, slices=10, rows=32, cols=32, junk=0,
                   enhanced=0, seed=123)
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length > 0")
    before = S.archive_snapshot(built["archive"])
    media_before = S.archive_snapshot(media)
    home_before = set(os.listdir(os.path.expanduser("~")))
    page.click("#btn-media")
    page.fill("#path-input", str(media))
    page.click("#path-ok")
    S.wait_js(page, "!document.getElementById('media-banner').hidden")
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length === 1")
    open_series(page, "")
    assert S.dataset(page, "#measure-kept")["kept"] == "media"
    assert "memory only" in page.locator("#measure-kept").text_content()
    x, y, w, h = vp(page)["rect"]
    page.click("[data-tool=distance]")
    drag(page, (x + 0.3 * w, y + 0.3 * h), (x + 0.6 * w, y + 0.6 * h))
    S.wait_js(page, "document.querySelectorAll('#measure-list li').length === 1")
    mm = float(items(page)[0]["mm"])
    close_series(page)
    open_series(page, "")                # kept by the page for the session
    assert len(items(page)) == 1 and float(items(page)[0]["mm"]) == pytest.approx(mm)
    page.click("#btn-media-close")
    S.wait_js(page, "document.getElementById('media-banner').hidden")
    assert S.archive_snapshot(built["archive"]) == before
    assert S.archive_snapshot(media) == media_before
    assert set(os.listdir(os.path.expanduser("~"))) == home_before


def test_uncalibrated_image_keeps_px_and_says_so(page, built):
    open_series(page, "UNCAL")
    x, y, w, h = vp(page)["rect"]
    page.click("[data-tool=distance]")
    n = saves(page)
    drag(page, (x + 0.3 * w, y + 0.3 * h), (x + 0.6 * w, y + 0.5 * h))
    wait_saved(page, n)
    rec = kept(built["archive"], UNCAL_UID)
    assert len(rec) == 1 and rec[0]["unit"] == "px" and rec[0]["result"]["unit"] == "px"
    px = rec[0]["result"]["px"]
    assert labels(page)[0]["text"] == [f"{px:.1f} px (uncalibrated)"]
    assert "mm" not in page.locator("#measure-list li").inner_text()
    close_series(page)
    open_series(page, "UNCAL")
    assert labels(page)[0]["text"] == [f"{px:.1f} px (uncalibrated)"]
    delete_all(page)


# ------------------------------------------------------------------ 3D: fills the view, its own window
def set_3d(page, mode=None):
    page.select_option("#layout", "1")
    page.select_option("#single", "3d")
    S.wait_js(page, "document.getElementById('view').dataset.layout === '3d'")
    if mode:
        page.select_option("#render-mode", mode)
    wait_still(page)


def wait_still(page, before=None):
    """Wait for a full-quality 3D frame after *before* renders, and until no other follows."""
    n = renders(page) if before is None else before
    page.wait_for_timeout(250)
    S.wait_js(page, f"Number(document.getElementById('vp0').dataset.renders || 0) > {n - 1 if before is None else n} && "
                    "document.getElementById('vp0').dataset.quality === 'still'", 60)
    last = None
    while True:      # a machine under load may draw a still frame between two pointer moves
        page.wait_for_timeout(400)
        now = (S.dataset(page, "#vp0").get("state"), renders(page), S.dataset(page, "#vp0").get("quality"))
        if now == last and now[2] == "still":
            return
        last = now


def renders(page):
    return int(S.dataset(page, "#vp0").get("renders") or 0)


def test_3d_fills_its_view_at_open_and_after_a_resize(page):
    open_series(page)
    set_3d(page, "mip")
    for size in (VIEWPORT, {"width": 700, "height": 760}):
        if size is not VIEWPORT:
            n = renders(page)
            page.set_viewport_size(size)
            wait_still(page, n)
        x, y, w, h = vp(page)["rect"]
        bx0, by0, bx1, by1 = (float(v) for v in S.dataset(page, "#vp0")["bbox"].split(","))
        # the box projected from the front fills the viewport in one direction, inside it in both
        fill = max((bx1 - bx0) / w, (by1 - by0) / h)
        assert 0.88 <= fill <= 0.95, (fill, size)
        assert bx0 >= x - 1 and bx1 <= x + w + 1 and by0 >= y - 1 and by1 <= y + h + 1
        img = S.read_canvas(page)[y:y + h, x:x + w]
        ys, xs = np.nonzero(img > 20)
        # the phantom's body (inside the box) spans most of the view
        assert max((xs.max() - xs.min()) / w, (ys.max() - ys.min()) / h) > 0.6


def test_mip_has_its_own_window_and_a_brain_window_does_not_saturate_it(page):
    header = open_series(page)
    val = page.evaluate("[...document.querySelectorAll('#preset option')].find(o => o.textContent.startsWith('brain')).value")
    page.select_option("#preset", val)
    S.wait_js(page, "document.getElementById('view').dataset.ww === '80'")
    set_3d(page, "mip")
    x, y, w, h = vp(page)["rect"]
    img = S.read_canvas(page)[y:y + h, x:x + w].astype(int)
    body = img[img > 10]
    assert body.size > 0.05 * img.size
    assert (body >= 250).mean() < 0.3, "MIP saturated"
    assert len(np.unique(body)) > 30
    auto = next(p for p in header["windows"] if p["name"] == "auto")
    state = S.dataset(page, "#vp0")["state"].split(",")
    assert float(state[-2]) == pytest.approx(auto["center"]) and float(state[-1]) == pytest.approx(auto["width"])
    info = page.locator("#corner-bl").inner_text()
    assert f"W {round(auto['width'])} L {round(auto['center'])}" in info
    # right-drag in the 3D view: its window changes, the 2D one does not
    n = renders(page)
    drag(page, (x + w / 2, y + h / 2), (x + w / 2 + 80, y + h / 2 - 40), button="right")
    wait_still(page, n)
    state = S.dataset(page, "#vp0")["state"].split(",")
    assert float(state[-1]) > auto["width"] and float(state[-2]) < auto["center"]
    assert S.dataset(page)["ww"] == "80" and S.dataset(page)["wc"] == "40"
    assert f"W {round(float(state[-1]))} L {round(float(state[-2]))}" in page.locator("#corner-bl").inner_text()


def test_clip_box_is_labelled_pairs_with_a_reset(page):
    open_series(page)
    set_3d(page, "mip")
    pairs = page.evaluate("""[...document.querySelectorAll('#tools-3d .clip-axis')].map(a =>
        [a.querySelector('[data-axis]').textContent, ...[...a.querySelectorAll('label')].map(l => l.textContent.trim())])""")
    assert [p[1:] for p in pairs] == [["from", "to"]] * 3
    assert all(p[0] for p in pairs)
    assert page.get_attribute("#clip-x0", "aria-label") == f"{pairs[0][0]} from"
    assert page.get_attribute("#clip-z1", "aria-label") == f"{pairs[2][0]} to"
    n = renders(page)
    page.locator("#clip-x1").fill("50")
    page.locator("#clip-y0").fill("20")
    wait_still(page, n)
    assert [float(v) for v in S.dataset(page, "#vp0")["state"].split(",")[3:9]] == [0, 0.2, 0, 0.5, 1, 1]
    n = renders(page)
    page.click("#btn-clip-reset")
    wait_still(page, n)
    assert [float(v) for v in S.dataset(page, "#vp0")["state"].split(",")[3:9]] == [0, 0, 0, 1, 1, 1]
    assert [page.input_value(f"#clip-{a}{e}") for e in "01" for a in "xyz"] == ["0"] * 3 + ["100"] * 3
