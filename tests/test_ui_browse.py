"""The archive browser of issue 17 in headless Chromium: the patient -> study ->
series tree (counts, collapse, sorting, keyboard), remove from a right-click
menu with a confirmation naming what goes, the series strip of the open study,
icons for series without images, the empty archive, the layout at desktop sizes,
the keyboard help, drag-and-drop and copying a CD/USB into the archive.

Real parts only: `pocketpacs serve` on a generated archive (ppui_support) and
Debian's Chromium; skips without Chromium, fails under CI=true.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "ui"))
import ppui_support as S

pytestmark = pytest.mark.slow

RM_PID = "REMOVE1"
SIZES = [(1280, 800), (1366, 768), (900, 640)]


def write_removable_patient(folder: Path) -> None:
    """Patient Remove^Me: study A (2 series, 3 + 2 images) and study B (1 series, 2 images)."""
    import dicomgen

    common = dict(patient_name="Remove^Me", patient_id=RM_PID, rows=16, cols=16)
    dicomgen.write_series(folder / "a1", 3, series_uid="1.2.826.0.1.3680043.99.7.1.1", study_uid="1.2.826.0.1.3680043.99.7.1",
                          study_date="20190304", study_desc="Study A", series_desc="A one", series_number=1, **common)
    dicomgen.write_series(folder / "a2", 2, series_uid="1.2.826.0.1.3680043.99.7.1.2", study_uid="1.2.826.0.1.3680043.99.7.1",
                          study_date="20190304", study_desc="Study A", series_desc="A two", series_number=2, **common)
    dicomgen.write_series(folder / "b1", 2, series_uid="1.2.826.0.1.3680043.99.7.2.1", study_uid="1.2.826.0.1.3680043.99.7.2",
                          study_date="20210506", study_desc="Study B", series_desc="B one", series_number=1, **common)


def write_non_images(folder: Path) -> None:
    """A structured report (modality SR) and an image object without pixel data (modality OT)."""
    import dicomgen
    import pydicom_data

    folder.mkdir(parents=True)
    shutil.copy(pydicom_data.TEST_FILES / "test-SR.dcm", folder / "sr.dcm")
    ds = dicomgen.dataset(patient_name="Nopix^Olga", patient_id="NOPIX1", modality="OT",
                          study_uid="1.2.826.0.1.3680043.99.8", series_uid="1.2.826.0.1.3680043.99.8.1",
                          sop_uid="1.2.826.0.1.3680043.99.8.1.1", series_desc="no pixels")
    del ds.PixelData
    ds.save_as(folder / "nopix.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import pocketpacs

    root = tmp_path_factory.mktemp("ui_browse")
    out = S.build_archive(root)
    write_removable_patient(root / "remove")
    write_non_images(root / "nonimg")
    with pocketpacs.open_archive(out["archive"]) as ar:
        ar.import_folder(root / "remove")
        ar.import_folder(root / "nonimg")
    return out


def new_page(browser, served, width=900, height=640):
    pg = browser.new_page(viewport={"width": width, "height": height})
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
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


def tree(page):
    """Every row of the tree: level, key, shown, expanded, its data-col cells and the rest."""
    return page.evaluate("""[...document.querySelectorAll('#series-table tbody tr')].map(tr => ({
        level: tr.className.split(' ')[0], key: tr.dataset.key, shown: !tr.hidden,
        expanded: tr.getAttribute('aria-expanded'), selected: tr.classList.contains('selected'),
        cells: Object.fromEntries([...tr.querySelectorAll('td[data-col]')].map(td => [td.dataset.col, td.textContent])),
        count: tr.querySelector('td.c-count').textContent}))""")


def row_locator(page, key):
    return page.locator(f"#series-table tbody tr[data-key='{key}']")


def patient_key(page, pid):
    return next(r["key"] for r in tree(page) if r["level"] == "patient" and r["cells"].get("patient_id") == pid)


def research(page, field, value):
    page.evaluate("document.body.dataset.tArchive = ''")
    page.fill(f"#search input[name={field}]", value)
    S.wait_js(page, "document.body.dataset.tArchive")


# ------------------------------------------------------------------ the tree
def test_the_tree_groups_series_under_studies_under_patients_with_counts(page, built):
    rows = tree(page)
    m = built["manifest"]
    series = [r for r in rows if r["level"] == "series"]
    assert len(series) == len(m["series"]) + 1 + 3 + 2          # synth + markup + Remove^Me + SR and OT
    # each patient and study row counts what is under it
    for i, r in enumerate(rows):
        if r["level"] == "series":
            continue
        below = []
        for x in rows[i + 1:]:
            if x["level"] == "patient" or (r["level"] == "study" and x["level"] == "study"):
                break
            below.append(x)
        ser = [x for x in below if x["level"] == "series"]
        images = sum(int(x["cells"]["images"]) for x in ser)
        assert f"{len(ser)} series · {images} img" in r["count"], r
        if r["level"] == "patient":
            n_st = sum(x["level"] == "study" for x in below)
            assert r["count"].startswith(f"{n_st} stud"), r
    rm = next(r for r in rows if r["cells"].get("patient_id") == RM_PID)
    assert rm["count"] == "2 studies · 3 series · 7 img"
    # the bridge answers the same tree; search keeps its flat rows for scripts
    data = page.evaluate("""async () => { const t = document.querySelector('meta[name="pocketpacs-token"]').content;
        const call = async (n) => (await (await fetch('/v1/call/' + n, {method: 'POST', headers: {'X-PocketPACS-Token': t,
            'Content-Type': 'application/json'}, body: '{}'})).json()).data;
        return [await call('browse'), await call('search')]; }""")
    browse, flat = data
    assert sum(len(st["series"]) for p in browse["patients"] for st in p["studies"]) == len(flat["rows"]) == len(series)
    assert browse["counts"] == flat["counts"]
    p = next(p for p in browse["patients"] if p["patient_id"] == RM_PID)
    assert (p["n_studies"], p["n_series"], p["images"]) == (2, 3, 7)


def test_patients_and_studies_collapse_and_expand(page):
    key = patient_key(page, RM_PID)
    tr = row_locator(page, key)
    box = tr.locator("td.tree").bounding_box()
    page.mouse.click(box["x"] + 8, box["y"] + box["height"] / 2)            # the twisty
    rows = tree(page)
    i = next(j for j, r in enumerate(rows) if r["key"] == key)
    assert rows[i]["expanded"] == "false"
    assert not any(r["shown"] for r in rows[i + 1:i + 6])                  # 2 studies + 3 series hidden
    # kept across a search (the user's choice, not the default)
    research(page, "modality", "CT")
    rows = tree(page)
    i = next(j for j, r in enumerate(rows) if r["key"] == key)
    assert rows[i]["expanded"] == "false" and not rows[i + 1]["shown"]
    research(page, "modality", "")
    row_locator(page, key).click(position={"x": 200, "y": 5})
    page.keyboard.press("ArrowRight")                                     # expand
    rows = tree(page)
    i = next(j for j, r in enumerate(rows) if r["key"] == key)
    assert rows[i]["expanded"] == "true" and all(r["shown"] for r in rows[i + 1:i + 6])


def test_keyboard_walks_expands_collapses_and_opens(page):
    key = patient_key(page, RM_PID)
    row_locator(page, key).click(position={"x": 200, "y": 5})
    sel = lambda: next(r for r in tree(page) if r["selected"])  # noqa: E731
    page.keyboard.press("ArrowRight")                  # expanded already: go to its first study
    assert sel()["level"] == "study" and sel()["cells"]["study_description"] in ("Study A", "Study B")
    page.keyboard.press("ArrowLeft")                   # collapse the study
    assert sel()["expanded"] == "false"
    page.keyboard.press("ArrowLeft")                   # collapsed: up to the patient
    assert sel()["key"] == key
    page.keyboard.press("ArrowLeft")                   # collapse the patient
    assert sel()["expanded"] == "false"
    page.keyboard.press("Enter")                       # Enter toggles a patient
    assert sel()["expanded"] == "true"
    page.keyboard.press("Home")
    assert sel()["key"] == tree(page)[0]["key"]
    page.keyboard.press("End")
    shown = [r for r in tree(page) if r["shown"]]
    assert sel()["key"] == shown[-1]["key"] and sel()["level"] == "series"
    page.keyboard.press("ArrowUp")
    assert sel()["key"] == shown[-2]["key"]
    # Enter on a series opens it
    page.keyboard.press("Home")
    while sel()["level"] != "series" or sel()["cells"].get("modality") not in ("CT", "MR"):
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    S.wait_js(page, "!document.getElementById('viewer').hidden && document.getElementById('view').dataset.drawn")


def test_a_column_header_sorts_and_the_sort_stays_across_searches(page):
    def patient_names():
        return [r["cells"]["patient_name"] for r in tree(page) if r["level"] == "patient"]

    page.click("#series-table th[data-sort=name]")
    names = patient_names()
    key = lambda s: s.lower()  # noqa: E731
    assert names == sorted(names, key=key) and len(names) >= 4
    assert page.get_attribute("#series-table th[data-sort=name]", "aria-sort") == "ascending"
    page.click("#series-table th[data-sort=name]")
    assert patient_names() == sorted(names, key=key, reverse=True)
    assert page.get_attribute("#series-table th[data-sort=name]", "aria-sort") == "descending"
    research(page, "study_date", "2000-")                  # a search keeps the sort
    got = patient_names()
    assert got == sorted(got, key=key, reverse=True) and 0 < len(got) < len(names)
    assert page.get_attribute("#series-table th[data-sort=name]", "aria-sort") == "descending"
    research(page, "study_date", "")
    # study date: studies within a patient, patients by their first study
    page.click("#series-table th[data-sort=study_date]")
    rows = tree(page)
    rm = next(i for i, r in enumerate(rows) if r["cells"].get("patient_id") == RM_PID)
    dates = [r["cells"]["study_date"] for r in rows[rm + 1:] if r["level"] == "study"][:2]
    assert dates == ["2019-03-04", "2021-05-06"]
    firsts = [next(x["cells"]["study_date"] for x in rows[i + 1:] if x["level"] == "study")
              for i, r in enumerate(rows) if r["level"] == "patient"]
    assert firsts == sorted(firsts, key=lambda d: (d == "", d))          # no date: last
    # description: series within a study
    page.click("#series-table th[data-sort=description]")
    page.click("#series-table th[data-sort=description]")
    rows = tree(page)
    a = [r["cells"]["series_description"] for r in rows if r["cells"].get("series_description", "").startswith("A ")]
    assert a == ["A two", "A one"]


def test_series_without_images_get_an_icon(page):
    icons = page.evaluate("""[...document.querySelectorAll('#series-table tr.series')].map(tr =>
        [tr.querySelector('td[data-col=modality]').textContent, !!tr.querySelector('.thumb.no-image'),
         !!tr.querySelector('canvas.thumb')])""")
    sr = [i for i in icons if i[0] == "SR"]
    assert sr == [["SR", True, False]]                        # by its modality, no thumbnail asked
    # an image object without pixel data: its thumbnail answer says so, and becomes an icon
    S.wait_js(page, """(() => { const tr = [...document.querySelectorAll('#series-table tr.series')].find(tr =>
        tr.querySelector('td[data-col=modality]').textContent === 'OT'); return tr && tr.querySelector('.thumb.no-image'); })()""")
    title = page.evaluate("""[...document.querySelectorAll('#series-table tr.series')].find(tr =>
        tr.querySelector('td[data-col=modality]').textContent === 'OT').querySelector('.thumb.no-image').title""")
    assert title.startswith("Not an image")
    # images keep their thumbnails
    assert sum(1 for i in icons if i[2]) >= 5


def test_an_empty_archive_says_what_to_do_next(browser, tmp_path):
    import pocketpacs

    with pocketpacs.open_archive(tmp_path / "empty"):
        pass
    srv = S.Served(tmp_path / "empty")
    try:
        pg, errors = new_page(browser, srv)
        box = pg.locator("#empty-archive")
        assert box.is_visible() and not pg.locator("#series-table").is_visible()
        text = box.inner_text()
        assert "Import DICOM…" in text and "Open Other…" in text and "pocketpacs demo" in text
        pg.click("#empty-archive button[data-do=import]")                # the toolbar's Import
        S.wait_js(pg, "document.getElementById('path-dialog').open")
        assert "Folder to import" in pg.locator("#path-prompt").inner_text()
        pg.close()
        assert not errors, errors
    finally:
        srv.stop()


# ------------------------------------------------------------------ remove
def confirm_text(page):
    S.wait_js(page, "document.getElementById('confirm-dialog').open")
    return page.locator("#confirm-text").inner_text()


def test_remove_from_the_context_menu_names_what_goes(page, built):
    import pocketpacs

    rows = tree(page)
    study_a = next(r for r in rows if r["level"] == "study" and r["cells"].get("study_description") == "Study A")
    row_locator(page, study_a["key"]).click(button="right")
    S.wait_js(page, "!document.getElementById('row-menu').hidden")
    page.click("#row-menu [data-act=remove]")
    text = confirm_text(page)
    for part in ("Remove, Me", "2019-03-04", "Study A", "2 series", "5 images"):
        assert part in text.replace("Remove the study", ""), text
    page.click("#confirm-dialog button[value=cancel]")
    S.wait_js(page, "!document.getElementById('confirm-dialog').open")
    assert any(r["key"] == study_a["key"] for r in tree(page))            # nothing removed
    # Delete on a series opens the same confirmation, naming the series
    b1 = next(r for r in tree(page) if r["cells"].get("series_description") == "B one")
    row_locator(page, b1["key"]).click(position={"x": 200, "y": 5})
    page.keyboard.press("Delete")
    text = confirm_text(page)
    for part in ("B one", "2 images", "Remove, Me", "2021-05-06", "Study B"):
        assert part in text, text
    page.click("#confirm-ok")
    S.wait_js(page, f"!document.querySelector(\"#series-table tr[data-key='{b1['key']}']\")")
    # then the whole patient, through the menu opened from the keyboard
    key = patient_key(page, RM_PID)
    row_locator(page, key).click(position={"x": 200, "y": 5})
    page.keyboard.press("ContextMenu")
    S.wait_js(page, "!document.getElementById('row-menu').hidden")
    page.click("#row-menu [data-act=remove]")
    text = confirm_text(page)
    for part in ("patient Remove, Me", f"ID {RM_PID}", "1 study", "2 series", "5 images"):
        assert part in text, text
    page.click("#confirm-ok")
    S.wait_js(page, f"!document.querySelector(\"#series-table tr[data-key='{key}']\")")
    assert not [r for r in tree(page) if r["cells"].get("patient_id") == RM_PID]
    with pocketpacs.open_archive(built["archive"], readonly=True) as ar:
        assert not ar.search(patient_id=RM_PID).hits
    # the files on disk stay
    assert len(list((built["archive"].parent / "remove").rglob("*.dcm"))) == 7


def test_remove_study_and_patient_commands_answer_not_found_for_unknown_keys(served):
    import json
    import urllib.request

    from pocketpacs.ui import protocol

    for name, arg in (("remove_study", "study_key"), ("remove_patient", "patient_key")):
        req = urllib.request.Request(f"{served.base}/v1/call/{name}", data=json.dumps({arg: "0" * 32}).encode(),
                                     headers={"X-PocketPACS-Token": served.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            env = json.loads(r.read())
        assert env["ok"] is False and env["error"]["code"] == protocol.NOT_FOUND, env


# ------------------------------------------------------------------ series strip
def test_the_series_strip_opens_another_series_of_the_study(page, built):
    ct = S.manifest_series(built["manifest"], modality="CT", orientation="axial")
    rows = S.tree_rows(page)
    idx = next(i for i, r in enumerate(rows) if r["series_description"] == ct["series_description"])
    page.locator(S.SERIES_ROWS).nth(idx).dblclick()
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    strip = page.locator("#series-strip")
    assert strip.is_visible()
    siblings = [r for r in rows if r["patient_id"] == rows[idx]["patient_id"] and r["study_date"] == rows[idx]["study_date"]]
    items = page.evaluate("[...document.querySelectorAll('#series-strip .strip-item')].map(b => [b.textContent, b.classList.contains('current')])")
    assert len(items) == len(siblings) >= 2
    assert [c for t, c in items].count(True) == 1
    assert next(t for t, c in items if c).find(ct["series_description"]) >= 0
    vid = S.dataset(page)["vid"]
    other = page.locator("#series-strip .strip-item:not(.current)").first
    want = other.locator(".strip-text").inner_text()
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    other.click()
    S.wait_js(page, f"document.getElementById('view').dataset.drawn && document.getElementById('view').dataset.vid !== '{vid}'")
    labels = S.fetch_header(page, S.dataset(page)["vid"])["labels"]
    assert want.endswith(labels["series_description"])
    cur = page.evaluate("document.querySelector('#series-strip .strip-item.current').textContent")
    assert labels["series_description"] in cur
    # MPR and 3D layouts keep the whole height: no strip there
    page.select_option("#layout", "2x2")
    S.wait_js(page, "document.getElementById('series-strip').hidden")
    page.select_option("#layout", "1")
    S.wait_js(page, "!document.getElementById('series-strip').hidden")
    page.keyboard.press("Escape")
    S.wait_js(page, "document.getElementById('series-strip').hidden")


# ------------------------------------------------------------------ fits the screen
def overflow_report(page):
    return page.evaluate("""() => {
        const out = {scroll: document.documentElement.scrollWidth, inner: innerWidth, outside: []};
        for (const b of document.querySelectorAll('#toolbar button, #viewer-tools button, #viewer-tools select, #viewer-tools input')) {
            if (b.hidden || !b.offsetParent) continue;
            const r = b.getBoundingClientRect();
            if (r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight) out.outside.push(b.id || b.textContent);
        }
        const t = document.getElementById('series-table'), w = document.getElementById('table-wrap');
        out.table = t.offsetParent ? [t.scrollWidth, w.clientWidth] : null;
        return out; }""")


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_layout_fits_the_window(browser, served, built, size):
    pg, errors = new_page(browser, served, *size)
    try:
        rep = overflow_report(pg)
        assert rep["scroll"] <= rep["inner"] and not rep["outside"], rep
        if size[0] >= 1280:
            assert rep["table"][0] <= rep["table"][1], rep          # no column cut off
        # the error banner floats over the page: the browser does not move
        top = pg.evaluate("document.getElementById('browser').getBoundingClientRect().top")
        pg.click("#btn-other")
        pg.fill("#path-input", "/nonexistent/" + "a-long-folder-name/" * 8 + "scan.nii")
        pg.click("#path-ok")
        S.wait_js(pg, "!document.getElementById('error-banner').hidden")
        assert "does not exist" in pg.locator("#error-text").inner_text()
        assert pg.evaluate("document.getElementById('browser').getBoundingClientRect().top") == top
        rep = overflow_report(pg)
        assert rep["scroll"] <= rep["inner"] and not rep["outside"], rep
        pg.click("#error-dismiss")
        # the viewer's tools wrap inside the window
        ct = S.manifest_series(built["manifest"], modality="CT", orientation="axial")
        idx = next(i for i, r in enumerate(S.tree_rows(pg)) if r["series_description"] == ct["series_description"])
        pg.locator(S.SERIES_ROWS).nth(idx).dblclick()
        S.wait_js(pg, "document.getElementById('view').dataset.drawn")
        rep = overflow_report(pg)
        assert rep["scroll"] <= rep["inner"] and not rep["outside"], rep
    finally:
        pg.close()
    assert not errors, errors


def test_overlay_text_is_outlined_and_header_values_wrap_on_their_own():
    css = (Path(__file__).resolve().parents[1] / "ui" / "web" / "css" / "app.css").read_text()
    assert "--outline:" in css and css.count("text-shadow: var(--outline)") >= 3
    assert "#header-table td.value { overflow-wrap: anywhere; }" in css
    assert "word-break: break-all" not in css


# ------------------------------------------------------------------ keyboard help
def test_question_mark_shows_the_shortcuts_and_escape_closes_them(page):
    page.locator(S.SERIES_ROWS).first.click()
    page.keyboard.press("?")
    S.wait_js(page, "document.getElementById('help-dialog').open")
    text = page.locator("#help-dialog").inner_text()
    for want in ("Archive list", "Viewer", "Remove the patient, study or series", "Expand", "Window presets", "Esc"):
        assert want in text, text
    # generated from the table the key handler uses: one line per entry
    n_rows = page.evaluate("document.querySelectorAll('#help-dialog table.shortcuts tr').length")
    n_table = page.evaluate("import('/js/shortcuts.js').then(m => m.SHORTCUTS.length)")
    assert n_rows == n_table
    page.keyboard.press("Escape")
    S.wait_js(page, "!document.getElementById('help-dialog').open")
    page.keyboard.press("?")                                  # the toolbar's ? button too
    S.wait_js(page, "document.getElementById('help-dialog').open")
    page.keyboard.press("?")
    S.wait_js(page, "!document.getElementById('help-dialog').open")
    # typing ? into a search field types it
    page.click("#search input[name=description]")
    page.keyboard.press("?")
    assert not page.evaluate("document.getElementById('help-dialog').open")
    assert page.input_value("#search input[name=description]") == "?"


# ------------------------------------------------------------------ drag-and-drop
DROP_JS = """([name, path]) => {
    const dt = new DataTransfer();
    const f = new File([new Uint8Array(4)], name);
    if (path) f.pywebviewFullPath = path;           // what pywebview gives a dropped file in the desktop app
    dt.items.add(f);
    const target = document.getElementById('browser').hidden ? document.getElementById('stage') : document.getElementById('table-wrap');
    target.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true, cancelable: true}));
    const shown = !document.getElementById('drop-zone').hidden;
    target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    return shown;
}"""


def test_a_drop_without_a_path_says_to_use_import(page):
    """In a browser (served mode) a dropped file has no path: the page says what to do instead."""
    assert page.evaluate(DROP_JS, ["scans", None]) is True             # the drop zone showed while dragging
    S.wait_js(page, "!document.getElementById('error-banner').hidden")
    assert "desktop app" in page.locator("#error-text").inner_text()
    assert "Import DICOM…" in page.locator("#error-text").inner_text()
    assert page.evaluate("document.getElementById('drop-zone').hidden")
    assert not page.evaluate("document.querySelector('dialog[open]')")


def test_a_dropped_folder_with_its_desktop_path_is_imported_and_an_image_file_opened(page, tmp_path, request):
    """The desktop path logic: a File carrying pywebviewFullPath (the real API shape)."""
    import nibabel
    from pocketpacs import synth

    synth.generate(tmp_path / "dropped", patients=1, studies=1, series=1, slices=8, rows=32, cols=32,
                   junk=0, enhanced=0, seed=321)
    n_before = len(S.tree_rows(page))
    page.evaluate(DROP_JS, ["dropped", str(tmp_path / "dropped")])
    S.wait_js(page, "document.getElementById('import-dialog').dataset.done", timeout=60)
    assert page.evaluate("document.body.dataset.dropped") == "import"
    assert "added 8" in page.locator("#import-report").inner_text()
    page.click("#import-close")
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length === {n_before + 1}")
    # an image file: Open Other
    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    if not path.exists():
        path = request.getfixturevalue("corpus") / "nibabel_test_data" / "nifti" / "anatomical.nii"
    page.evaluate("document.getElementById('view').dataset.drawn = ''")
    page.evaluate(DROP_JS, ["anatomical.nii", str(path)])
    S.wait_js(page, "document.getElementById('view').dataset.drawn")
    assert page.evaluate("document.body.dataset.dropped") == "open"
    assert S.fetch_header(page, S.dataset(page)["vid"])["labels"]["series_description"] == "anatomical.nii"
    assert page.locator("#series-strip").is_hidden()                   # not an archived study


def test_the_desktop_app_hands_dropped_paths_to_the_page(page, tmp_path):
    """In the desktop app the page's File objects carry no path: pywebview gives
    them to a Python drop handler (ui/app.py), which hands them to the page;
    a folder is imported, an image file opened."""
    from pocketpacs import synth
    from pocketpacs.ui.app import drop_script, dropped_items

    synth.generate(tmp_path / "dropped2", patients=1, studies=1, series=1, slices=6, rows=32, cols=32,
                   junk=0, enhanced=0, seed=322)
    # the event as pywebview's util.js_bridge_call gives it to a DOM drop handler
    event = {"type": "drop", "dataTransfer": {"files": [
        {"name": "dropped2", "pywebviewFullPath": str(tmp_path / "dropped2")},
        {"name": "no-path.txt"}]}}
    items = dropped_items(event)
    assert items == [{"path": str(tmp_path / "dropped2"), "dir": True}]
    n_before = len(S.tree_rows(page))
    page.evaluate(drop_script(items))
    S.wait_js(page, "document.getElementById('import-dialog').dataset.done", timeout=60)
    assert page.evaluate("document.body.dataset.dropped") == "import"
    assert "added 6" in page.locator("#import-report").inner_text()
    page.click("#import-close")
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length === {n_before + 1}")
    assert dropped_items({"type": "drop", "dataTransfer": {}}) == []


# ------------------------------------------------------------------ CD/USB: copy into the archive
def test_copy_this_disc_into_the_archive(page, built, tmp_path):
    import os

    from pocketpacs import synth

    media = tmp_path / "cdrom"
    synth.generate(media, patients=1, studies=1, series=1, slices=6, rows=32, cols=32, junk=1,
                   enhanced=0, seed=77)
    src_files = sorted(p.relative_to(media) for p in media.rglob("*") if p.is_file())
    dest = tmp_path / "copies" / "disc1"
    # a file already at the destination is never overwritten
    clash_rel = next(r for r in src_files if r.name == "manifest.json")
    clash = dest / clash_rel
    clash.parent.mkdir(parents=True)
    clash.write_bytes(b"mine")
    existing = {d: stat_mode(d) for d in [clash.parent, *clash.parent.parents] if str(d).startswith(str(tmp_path))}
    page.click("#btn-media")
    S.wait_js(page, "document.getElementById('path-dialog').open")
    page.fill("#path-input", str(media))
    page.click("#path-ok")
    S.wait_js(page, "!document.getElementById('media-banner').hidden")
    # the list is the disc's once its search has answered (the banner comes first)
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length === 1")
    imp = page.locator("#btn-import")
    assert imp.is_disabled() and imp.get_attribute("aria-disabled") == "true"
    assert float(page.evaluate("getComputedStyle(document.getElementById('btn-import')).opacity")) < 0.6
    # the list is the disc's once its search has answered (the banner comes first)
    S.wait_js(page, f"document.querySelectorAll('{S.SERIES_ROWS}').length === 1")
    disc = S.tree_rows(page)
    assert len(disc) == 1
    page.click("#btn-copy-media")
    S.wait_js(page, "document.getElementById('path-dialog').open")
    page.fill("#path-input", str(dest))
    page.click("#path-ok")
    S.wait_js(page, "document.getElementById('import-dialog').dataset.done", timeout=60)
    report = page.locator("#import-report").inner_text()
    n = len(src_files)
    assert f"Copied {n - 1} of {n} files from the disc; 1 already in the folder were left as they were." in report
    page.click("#import-close")
    # the disc is closed and the archive shows the copy
    S.wait_js(page, "document.getElementById('media-banner').hidden")
    assert not imp.is_disabled() and imp.get_attribute("aria-disabled") == "false"
    assert clash.read_bytes() == b"mine"
    for rel in (r for r in src_files if r != clash_rel):
        c = dest / rel
        assert c.read_bytes() == (media / rel).read_bytes()
        assert stat_mode(c) == 0o600
        d = c.parent
        while d != tmp_path:
            assert stat_mode(d) == existing.get(d, 0o700), d      # made here: 0700; the user's: as they were
            d = d.parent
    import pocketpacs

    pid = disc[0]["patient_id"]
    S.wait_js(page, f"[...document.querySelectorAll('#series-table td[data-col=patient_id]')].some(td => td.textContent === '{pid}')")
    with pocketpacs.open_archive(built["archive"], readonly=True) as ar:
        hits = ar.search(patient_id=pid, level="series").hits
        assert [s.n_instances for h in hits for s in h.series] == [6]
    assert os.path.isdir(dest)


def stat_mode(p):
    return p.stat().st_mode & 0o777


def test_copy_media_refuses_without_a_disc_and_into_the_disc(tmp_path):
    """The command alone (no browser): nothing to copy without a loaded disc; a
    destination inside the disc (or holding it) is refused before anything is written."""
    import pocketpacs
    from pocketpacs import synth
    from pocketpacs.ui import protocol
    from pocketpacs.ui.session import Session

    with pocketpacs.open_archive(tmp_path / "archive"):
        pass
    media = tmp_path / "usb"
    synth.generate(media, patients=1, studies=1, series=1, slices=2, rows=16, cols=16, junk=0,
                   enhanced=0, seed=5)
    s = Session(str(tmp_path / "archive"), mode="serve")
    try:
        env = s.call("copy_media", {"path": str(tmp_path / "out")})
        assert env["ok"] is False and env["error"]["code"] == protocol.BAD_REQUEST
        assert "Load a CD/USB first" in env["error"]["message"]
        assert s.call("load_media", {"path": str(media)})["ok"]
        before = sorted(p for p in media.rglob("*"))
        for dest in (media / "copy", media, tmp_path):
            env = s.call("copy_media", {"path": str(dest)})
            assert env["ok"] is False and "outside the disc" in env["error"]["message"], (dest, env)
        assert sorted(p for p in media.rglob("*")) == before and not (tmp_path / "out").exists()
    finally:
        s.close()
