"""Browser tests: `pocketpacs serve` on a generated archive, driven by Playwright + Chromium.

Chromium renders WebGL2 on SwiftShader; pixel checks read the canvas back and
compare with the phantom (:func:`pocketpacs.synth.phantom_hu`) through the
DICOM window the shader applies.  Skips without Chromium, fails under CI=true.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return S.build_archive(tmp_path_factory.mktemp("ui_browser"))


@pytest.fixture
def page(browser, served):
    pg = browser.new_page(viewport={"width": 900, "height": 640})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(served.url)
    S.wait_js(pg, "document.body.dataset.ready")
    assert pg.evaluate("document.body.dataset.ready") == "1", errors
    yield pg
    pg.close()
    assert not errors, errors


def rows(page):
    return S.tree_rows(page)


def search(page, field, value):
    before = page.evaluate("document.body.dataset.tArchive")
    page.fill(f"#search input[name={field}]", value)
    page.evaluate("document.body.dataset.tArchive = ''")
    S.wait_js(page, "document.body.dataset.tArchive")
    return before


def open_row(page, pred):
    idx = next(i for i, r in enumerate(rows(page)) if pred(r))
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    vid = S.dataset(page)["vid"]
    return S.fetch_header(page, vid)


def check_pixels(page, header, z, center, width, seed=0):
    pts, hu = S.sample_points(page, header, z, seed=seed)
    assert len(hu) >= 20
    img = S.read_canvas(page)
    got = img[pts[:, 1], pts[:, 0]].astype(float)
    want = S.predicted_gray(hu, center, width)
    assert np.abs(got - want).max() <= 3.0, (got, want)
    return got


def axial_ct(built):
    return S.manifest_series(built["manifest"], modality="CT", orientation="axial")


# ------------------------------------------------------------------ browser
def test_search_filters_narrow_the_list(page, built):
    m = built["manifest"]
    everything = rows(page)
    assert len(everything) == len(m["series"]) + 1
    counts = page.locator("#counts").inner_text()
    assert f"{len(everything)} series" in counts
    search(page, "modality", "MR")
    mr = rows(page)
    assert 0 < len(mr) < len(everything) and {r["modality"] for r in mr} == {"MR"}
    assert len(mr) == sum(s["modality"] == "MR" for s in m["series"])
    page.fill("#search input[name=modality]", "")
    p0 = m["patients"][0]
    search(page, "patient_id", p0["patient_id"])
    assert {r["patient_id"] for r in rows(page)} == {p0["patient_id"]}
    search(page, "patient_id", "")
    search(page, "description", "nosuchdescriptionatall")
    assert rows(page) == []


def test_patient_name_with_markup_shows_as_text(page):
    mk = [r for r in rows(page) if r["patient_id"] == S.MARKUP_PID]
    assert len(mk) == 1
    assert mk[0]["patient_name"] == S.MARKUP_DISPLAY
    assert mk[0]["study_description"] == "<script>x()</script>"
    assert page.evaluate("document.querySelectorAll('#series-table tbody b, #series-table tbody img,"
                         " #series-table tbody script, #series-table tbody i').length") == 0
    open_row(page, lambda r: r["patient_id"] == S.MARKUP_PID)
    assert page.locator("#corner-tl").inner_text().startswith(S.MARKUP_DISPLAY)
    assert page.evaluate("document.querySelectorAll('#stage b, #stage img, #stage script').length") == 0


def test_keyboard_navigation_opens_the_selected_series(page):
    page.locator("#series-table tbody tr.series").first.click()
    page.keyboard.press("ArrowDown")
    sel = page.evaluate("document.querySelector('#series-table tbody tr.series.selected').dataset.seriesId")
    second = page.evaluate("document.querySelectorAll('#series-table tbody tr.series')[1].dataset.seriesId")
    assert sel == second
    page.keyboard.press("Enter")
    S.wait_js(page, "!document.getElementById('viewer').hidden && document.getElementById('view').dataset.drawn")
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")


def test_opening_a_series_draws_the_phantom_and_wl_drag_follows_the_window(page, built):
    header = open_row(page, lambda r: r["series_description"] == axial_ct(built)["series_description"])
    d = S.dataset(page)
    z = int(d["slice"])
    c0, w0 = float(d["wc"]), float(d["ww"])
    check_pixels(page, header, z, c0, w0)
    # value probe: stored and rescaled (HU) under the pointer
    pts, hu = S.sample_points(page, header, z, n=1, seed=3)
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + pts[0, 0] + 0.5, box["y"] + pts[0, 1] + 0.5)
    probe = page.locator("#probe").inner_text()
    slope, icpt = header["rescale"]["slope"], header["rescale"]["intercept"]
    assert f"stored {int(round((hu[0] - icpt) / slope))}" in probe and f"value {int(hu[0])} HU" in probe
    # right-drag: right = wider, down = higher level
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx + 80, cy + 40, steps=4)
    page.mouse.up(button="right")
    page.wait_for_timeout(100)
    d = S.dataset(page)
    c1, w1 = float(d["wc"]), float(d["ww"])
    assert w1 > w0 and c1 > c0
    check_pixels(page, header, z, c1, w1, seed=1)


def test_wheel_and_keys_scroll_through_slices(page, built):
    header = open_row(page, lambda r: r["series_description"] == axial_ct(built)["series_description"])
    d = S.dataset(page)
    z0, c, w = int(d["slice"]), float(d["wc"]), float(d["ww"])
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + 20, box["y"] + 20)
    page.mouse.wheel(0, 100)
    S.wait_js(page, f"document.getElementById('view').dataset.drawn === '{z0 + 1}'")
    check_pixels(page, header, z0 + 1, c, w)
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    S.wait_js(page, f"document.getElementById('view').dataset.drawn === '{z0 - 1}'")
    check_pixels(page, header, z0 - 1, c, w)
    page.keyboard.press("End")
    S.wait_js(page, f"document.getElementById('view').dataset.drawn === '{header['shape'][0] - 1}'")
    assert page.locator("#corner-bl").inner_text().startswith(f"Slice {header['shape'][0]} / {header['shape'][0]}")


def test_the_marker_appears_on_the_patients_left_anterior_side(page, built):
    header = open_row(page, lambda r: r["series_description"] == axial_ct(built)["series_description"])
    A = np.array(header["affine_lps"])
    nz, ny, nx = header["shape"]
    zs = [(A @ [nx / 2, ny / 2, k, 1])[2] for k in range(nz)]
    target = int(np.argmin(np.abs(np.array(zs) - 71.3)))          # the cube's centre (synth.phantom_hu)
    page.locator("#stage").focus()
    page.keyboard.press("Home")
    for _ in range(target):
        page.keyboard.press("ArrowDown")
    S.wait_js(page, f"document.getElementById('view').dataset.drawn === '{target}'")
    bone = page.evaluate("[...document.querySelectorAll('#preset option')].find(o => o.textContent.toLowerCase().startsWith('bone')).value")
    page.select_option("#preset", bone)
    page.wait_for_timeout(100)
    img = S.read_canvas(page)
    ys, xs = np.nonzero(img >= S.predicted_gray(np.array(1100.0), 400, 1800))   # only the 1200 HU cube
    assert xs.size > 20
    letters = {k: page.locator(f"#orient-{k}").inner_text() for k in ("left", "right", "top", "bottom")}
    h, w = img.shape
    side_x = "right" if xs.mean() > w / 2 else "left"
    side_y = "top" if ys.mean() < h / 2 else "bottom"
    assert "L" in letters[side_x] and "A" in letters[side_y], (letters, side_x, side_y)


def test_open_other_shows_a_nifti_file(page, request):
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.exists():  # wheels without nibabel's test data: the corpus's copy
        path = request.getfixturevalue("corpus") / "nibabel_test_data" / "nifti" / "anatomical.nii"
    shape = nibabel.load(str(path)).shape
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.click("#btn-other")
    page.fill("#path-input", str(path))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    hdr = S.fetch_header(page, S.dataset(page)["vid"])
    assert sorted(hdr["shape"]) == sorted(shape[:3])
    assert hdr["labels"]["series_description"] == "anatomical.nii"
    img = S.read_canvas(page)
    assert np.ptp(img) > 50 and (img > 30).mean() > 0.05


def test_date_fields_take_what_the_table_shows_and_wait_for_a_whole_date(page, built):
    """Dates are typed as the table shows them (YYYY-MM-DD), or as the CLI takes
    them (YYYY, YYYYMM, YYYYMMDD, ranges); a date still being typed holds the
    search back with a hint, never an error banner (issue 17)."""
    everything = rows(page)
    day = everything[0]["study_date"]
    assert len(day) == 10 and day[4] == day[7] == "-"
    page.evaluate("document.body.dataset.searchHeld = ''")
    page.fill("#search input[name=study_date]", day[:3])             # "202": not a date yet
    S.wait_js(page, "document.body.dataset.searchHeld === '1'")
    assert "finish the date" in page.locator("#counts").inner_text()
    assert page.evaluate("document.getElementById('error-banner').hidden")
    assert len(rows(page)) == len(everything)                        # the list stays as it was
    search(page, "study_date", day)
    got = rows(page)
    assert got and {r["study_date"] for r in got} == {day}
    assert got == [r for r in everything if r["study_date"] == day]
    search(page, "study_date", day.replace("-", "") + "-")           # from that day on, CLI form
    assert rows(page) == [r for r in everything if r["study_date"] >= day]
    search(page, "study_date", f"{day[:4]}-01 to {day[:4]}-12")      # the months of that year
    assert rows(page) == [r for r in everything if r["study_date"][:4] == day[:4]]
    assert page.evaluate("document.getElementById('error-banner').hidden")
    search(page, "study_date", "")


def test_import_shows_progress_and_new_series(page, tmp_path):
    from pocketpacs import synth

    n_before = len(rows(page))
    synth.generate(tmp_path / "new", patients=1, studies=1, series=2, slices=12, rows=32, cols=32,
                   junk=3, enhanced=0, seed=99)
    page.click("#btn-import")
    page.fill("#path-input", str(tmp_path / "new"))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('import-dialog').dataset.done", timeout=60)
    d = S.dataset(page, "#import-dialog")
    assert int(d["filesDone"]) >= 24 and int(d["seriesAdded"]) == 2
    text = page.locator("#import-text").inner_text()
    assert "files/s" in text and "ETA" in text
    report = page.locator("#import-report").inner_text()
    # 3 junk files plus the generator's manifest.json are skipped, each with a reason
    assert "28 files: added 24, already present 0, skipped 4" in report
    assert "not_dicom" in report
    page.click("#import-close")
    S.wait_js(page, f"document.querySelectorAll('#series-table tbody tr.series').length === {n_before + 2}")


def test_load_from_cd_usb_stores_nothing(page, built, tmp_path):
    from pocketpacs import synth

    media = tmp_path / "cdrom"
    synth.generate(media, patients=1, studies=1, series=1, slices=10, rows=32, cols=32, junk=0,
                   enhanced=0, seed=123)
    before = S.archive_snapshot(built["archive"])
    n_archive = len(rows(page))
    home_before = set(os.listdir(os.path.expanduser("~")))
    page.click("#btn-media")
    page.fill("#path-input", str(media))
    page.click("#path-ok")
    S.wait_js(page, "!document.getElementById('media-banner').hidden")
    assert "NOT SAVED" in page.locator("#media-banner").inner_text()
    S.wait_js(page, "document.querySelectorAll('#series-table tbody tr.series').length === 1")
    assert page.locator("#btn-import").is_disabled()
    open_row(page, lambda r: True)
    img = S.read_canvas(page)
    assert np.ptp(img) > 50
    page.click("#btn-media-close")
    S.wait_js(page, "document.getElementById('media-banner').hidden")
    S.wait_js(page, f"document.querySelectorAll('#series-table tbody tr.series').length === {n_archive}")
    assert S.archive_snapshot(built["archive"]) == before
    assert set(os.listdir(os.path.expanduser("~"))) == home_before


# ------------------------------------------------------------------ viewer safety (issue 12)
DOOMED_PID = "DOOMED1"


def import_folder(page, folder):
    """Import *folder* through the Import dialog; wait until its rows are listed."""
    n_before = len(rows(page))
    page.click("#btn-import")
    page.fill("#path-input", str(folder))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('import-dialog').dataset.done", timeout=60)
    page.click("#import-close")
    S.wait_js(page, f"document.querySelectorAll('#series-table tbody tr.series').length > {n_before}")


def open_by_keyboard(page, pred):
    """Select a row with a click, park the pointer off the stage, open it with Enter."""
    idx = next(i for i, r in enumerate(rows(page)) if pred(r))
    page.locator("#series-table tbody tr.series").nth(idx).click()
    page.mouse.move(2, 2)
    page.evaluate("document.getElementById('view').dataset.tLoaded = ''")
    page.keyboard.press("Enter")
    S.wait_js(page, "document.getElementById('view').dataset.tLoaded")
    return S.fetch_header(page, S.dataset(page)["vid"])


def hover_probe(page, header):
    pts, _ = S.sample_points(page, header, int(S.dataset(page)["slice"]), n=1, seed=3)
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + pts[0, 0] + 0.5, box["y"] + pts[0, 1] + 0.5)
    return page.locator("#probe").inner_text()


def overlay_texts(page):
    """Every text written over the images: corners, per-view info, orientation letters, probe."""
    return page.evaluate("""[...document.querySelectorAll('#stage .corner, #stage .vp-info, #stage .orient,'
        + ' #probe, #load-progress, #notice-3d, #tools-3d [data-axis], #measure-list li, #preset option')]
        .map(e => e.textContent).filter(t => t.trim())""")


def overlay_canvas_ink(page):
    """Largest alpha on the 2D overlay canvas (crosshair, measurements)."""
    return page.evaluate("""() => { const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let m = 0; for (let i = 3; i < d.length; i += 4) m = Math.max(m, d[i]); return m; }""")


def test_a_failed_open_clears_the_viewport_and_says_why_until_dismissed(page, built, tmp_path):
    import dicomgen

    doomed = dicomgen.write_series(tmp_path / "doomed", 4, series_uid="1.2.826.0.1.3680043.99.2.1",
                                   patient_name="Doomed^Patient", patient_id=DOOMED_PID,
                                   study_uid="1.2.826.0.1.3680043.99.2", series_desc="doomed",
                                   rows=16, cols=16)
    import_folder(page, tmp_path / "doomed")
    ct = axial_ct(built)
    header = open_row(page, lambda r: r["series_description"] == ct["series_description"])
    assert np.ptp(S.read_canvas(page)) > 50
    patient = page.locator("#corner-tl").inner_text()
    assert ct["patient_id"] in patient
    assert "HU" in hover_probe(page, header)
    # a measurement and the crosshair on the overlay canvas
    page.click("[data-tool=distance]")
    box = page.locator("#view").bounding_box()
    page.mouse.move(box["x"] + 300, box["y"] + 250)
    page.mouse.down()
    page.mouse.move(box["x"] + 420, box["y"] + 330, steps=4)
    page.mouse.up()
    S.wait_js(page, "document.querySelectorAll('#measure-list li').length === 1")
    assert overlay_canvas_ink(page) > 0
    # the series' files disappear (a removed disc, a deleted folder): its open fails
    for f in doomed:
        f.unlink()
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")
    idx = next(i for i, r in enumerate(rows(page)) if r["patient_id"] == DOOMED_PID)
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "!document.getElementById('error-banner').hidden")
    banner = page.locator("#error-banner")
    assert "no files that can be read" in banner.inner_text()
    page.wait_for_timeout(300)
    d = S.dataset(page)
    assert not d.get("vid") and not d.get("drawn") and not d.get("tLoaded")
    assert S.read_canvas(page).max() == 0                 # no previous image
    assert overlay_canvas_ink(page) == 0                  # no previous measurement or crosshair
    texts = overlay_texts(page)
    assert texts == [], texts                             # no previous patient, window, probe, letters
    assert page.evaluate("document.getElementById('measure-list').children.length") == 0
    # the viewer shows nothing of the previous series when the user comes back to it
    page.evaluate("document.getElementById('viewer').hidden = false")
    page.wait_for_timeout(100)
    assert S.read_canvas(page).max() == 0 and overlay_texts(page) == []
    page.evaluate("document.getElementById('viewer').hidden = true")
    # the message stays until dismissed: no timeout
    page.wait_for_timeout(10500)
    assert banner.is_visible() and "no files that can be read" in banner.inner_text()
    page.click("#error-dismiss")
    S.wait_js(page, "document.getElementById('error-banner').hidden")
    # the next open works as before
    open_row(page, lambda r: r["series_description"] == ct["series_description"])
    assert np.ptp(S.read_canvas(page)) > 50
    assert page.locator("#corner-tl").inner_text() == patient


def test_the_overlay_names_only_the_series_on_screen_while_another_loads(page, built):
    ct = axial_ct(built)
    open_row(page, lambda r: r["series_description"] == ct["series_description"])
    assert ct["patient_id"] in page.locator("#corner-tl").inner_text()
    held = []
    page.route("**/v1/call/open_series", lambda route: held.append(route))
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")
    idx = next(i for i, r in enumerate(rows(page)) if r["patient_id"] == S.MARKUP_PID)
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "!document.getElementById('viewer').hidden")
    end = 50
    while not held and end:
        page.wait_for_timeout(100)
        end -= 1
    assert held, "open_series was not called"
    # the answer is not here yet: nothing of the previous patient on screen
    page.wait_for_timeout(200)
    assert S.read_canvas(page).max() == 0
    assert overlay_texts(page) == []
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    held[0].continue_()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    assert page.locator("#corner-tl").inner_text().startswith(S.MARKUP_DISPLAY)
    assert ct["patient_id"] not in page.locator("#corner-tl").inner_text()


def test_the_window_box_says_custom_after_a_right_drag(page, built):
    open_row(page, lambda r: r["series_description"] == axial_ct(built)["series_description"])
    chosen = "document.querySelector('#preset').selectedOptions[0].textContent"
    first = page.evaluate(chosen)
    box = page.locator("#view").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx + 60, cy + 30, steps=4)
    page.mouse.up(button="right")
    page.wait_for_timeout(100)
    d = S.dataset(page)
    shown = page.evaluate(chosen)
    assert shown != first
    assert shown == f"Custom ({round(float(d['wc']))}/{round(float(d['ww']))})", shown
    # a preset chosen again is named again; the custom entry goes
    page.locator("#stage").focus()
    page.keyboard.press("1")
    page.wait_for_timeout(50)
    assert page.evaluate(chosen) == first
    assert page.evaluate("[...document.querySelectorAll('#preset option')].every(o => !o.textContent.startsWith('Custom'))")


def test_the_value_probe_is_cleared_on_open_and_uses_the_new_units(page, built):
    ct = axial_ct(built)
    header = open_by_keyboard(page, lambda r: r["series_description"] == ct["series_description"])
    assert "HU" in hover_probe(page, header)
    page.mouse.move(2, 2)
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")
    mr = S.manifest_series(built["manifest"], modality="MR")
    header = open_by_keyboard(page, lambda r: r["series_description"] == mr["series_description"])
    assert header["units"] != "HU"
    assert page.locator("#probe").inner_text() == ""
    probe = hover_probe(page, header)
    assert "value" in probe and "HU" not in probe, probe


def test_a_volume_stream_that_breaks_clears_the_viewport(page, built):
    ct = axial_ct(built)
    open_row(page, lambda r: r["series_description"] == ct["series_description"])

    def cut(route):                   # the server's real answer, cut short (a connection that died)
        body = route.fetch().body()
        route.fulfill(status=200, headers={"Content-Type": "application/octet-stream"}, body=body[:len(body) // 2])

    page.route("**/v1/volume/*/data", cut)
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('browser').hidden")
    idx = next(i for i, r in enumerate(rows(page)) if r["patient_id"] == S.MARKUP_PID)
    page.locator("#series-table tbody tr.series").nth(idx).dblclick()
    S.wait_js(page, "!document.getElementById('error-banner').hidden")
    assert "ended early" in page.locator("#error-text").inner_text()
    page.wait_for_timeout(300)
    d = S.dataset(page)
    assert not d.get("vid") and not d.get("drawn") and not d.get("tLoaded")
    assert S.read_canvas(page).max() == 0
    assert overlay_texts(page) == []
    assert not page.locator("#viewer").is_visible()


def test_a_refused_open_other_clears_the_viewport(page, built, tmp_path):
    ct = axial_ct(built)
    open_row(page, lambda r: r["series_description"] == ct["series_description"])
    page.click("#btn-other")
    page.fill("#path-input", str(tmp_path / "no-such-file.nii"))
    page.click("#path-ok")
    S.wait_js(page, "!document.getElementById('error-banner').hidden")
    message = page.locator("#error-banner").inner_text()
    assert "does not exist" in message
    page.wait_for_timeout(300)
    assert not S.dataset(page).get("vid")
    assert S.read_canvas(page).max() == 0
    assert overlay_texts(page) == []
    page.wait_for_timeout(8500)
    assert page.locator("#error-banner").is_visible()
    assert page.locator("#error-banner").inner_text() == message
